pub mod client;
pub mod commands;
pub mod compose;
pub mod context;
pub mod env_file;
pub mod file_reference;
pub mod output;
pub mod units;
