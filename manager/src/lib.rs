//! shoal's manager: the encrypted Raft-replicated store and the components
//! that act on it. Components never call each other: they read the store,
//! watch its committed changes and write back (see ARCHITECTURE.md).

pub mod ca;
pub mod ids;
pub mod seal;
pub mod raft;
pub mod store;
pub mod orchestrator;
pub mod scheduler;
pub mod allocator;
pub mod taskreaper;
pub mod controlapi;
pub mod dispatcher;
pub mod runtime;
