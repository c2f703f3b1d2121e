//! shoal's protocols: the generated protobuf types and tonic services, plus
//! the few helpers that every user of a type needs (names of states, parsing
//! of ids). No logic beyond that lives here.

/// The label naming a service's or network's stack (Docker's key, so
/// `docker`-style filters and tools keep working).
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// The largest message any shoal client or server decodes (tonic's default
/// is 4 MiB): at 100,000 tasks a task list, netd's network view and a Raft
/// snapshot are tens of MiB. Every client and server sets it.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The UDP port of the overlays' VXLAN traffic between nodes (IANA's, as
/// Swarm's default `--data-path-port`); netd binds it, `shoal info` shows it.
pub const DATA_PATH_PORT: u16 = 4789;

pub mod types {
    pub mod v1 {
        tonic::include_proto!("shoal.types.v1");
    }
}
pub mod control {
    pub mod v1 {
        tonic::include_proto!("shoal.control.v1");
    }
}
pub mod dispatcher {
    pub mod v1 {
        tonic::include_proto!("shoal.dispatcher.v1");
    }
}
pub mod ca {
    pub mod v1 {
        tonic::include_proto!("shoal.ca.v1");
    }
}
pub mod raft {
    pub mod v1 {
        tonic::include_proto!("shoal.raft.v1");
    }
}
pub mod netd {
    pub mod v1 {
        tonic::include_proto!("shoal.netd.v1");
    }
}

pub mod capabilities;
pub mod log_driver;
pub mod placeholders;
pub mod rfc3339;
mod task_state;
pub mod units;
pub use task_state::*;
