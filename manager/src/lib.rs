//! shoal's manager: the encrypted Raft-replicated store and the components
//! that act on it. Components never call each other: they read the store,
//! watch its committed changes and write back (see ARCHITECTURE.md).

pub mod allocator;
pub mod ca;
pub mod clock;
pub mod controlapi;
pub mod dispatcher;
pub mod error;
#[cfg(test)]
mod harness;
pub mod heartbeats;
pub mod ids;
pub mod keykeeper;
pub mod leader;
pub mod logbroker;
pub mod orchestrator;
pub mod raft;
pub mod restart;
pub mod revisions;
pub mod rolemanager;
pub mod runtime;
pub mod scheduler;
pub mod seal;
pub mod store;
pub mod taskreaper;
pub mod tls;
