//! The leader's components: the control loop that turns desired state into
//! running tasks. They run only on the Raft leader, under the
//! [`Supervisor`], and talk to each other only through the store.
//!
//! Every component has one shape ([`Component`]): built from the
//! [`LeaderEnv`] each time it starts (nothing survives a failed run but
//! what the store holds), then run until leadership ends. A component's
//! `run` returns only when the store is gone, or with an error it cannot
//! retry; the supervisor logs either and starts it again.

mod supervisor;

use std::future::Future;
use std::sync::Arc;

use crate::error::ManagerError;
use crate::heartbeats::Heartbeats;
use crate::raft::Membership;
use crate::store::Store;

pub use supervisor::{Restarts, Spec, Supervisor};

// The set of components is the runtime's to choose
// (`runtime::leader_components`): this module only gives them one shape.

/// What leader components are built from.
#[derive(Clone)]
pub struct LeaderEnv {
    pub store: Arc<Store>,
    /// Sessions and heartbeats of nodes, fed by the dispatcher.
    pub heartbeats: Arc<Heartbeats>,
    /// The Raft group, for the role manager.
    pub membership: Arc<dyn Membership>,
}

pub trait Component: Sized + Send + 'static {
    const NAME: &'static str;
    fn build(env: &LeaderEnv) -> Self;
    fn run(self) -> impl Future<Output = Result<(), ManagerError>> + Send;
}
