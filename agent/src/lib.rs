//! shoal's node agent: keeps the node's session with the managers and runs
//! the tasks assigned to it through containerd, in network namespaces that
//! netd makes. The agent never writes cluster state: it only reports what
//! it observes.

pub mod container_options;
pub mod executor;
pub mod health;
pub mod local_api;
pub mod log_publisher;
pub mod logs;
pub mod node_resources;
pub mod renewal;
pub mod reporter;
pub mod role;
pub mod session;
pub mod task_files;
pub mod task_runner;
pub mod task_templates;
