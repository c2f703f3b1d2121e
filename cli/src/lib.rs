pub mod client;
pub mod commands;
pub mod compose;
pub mod output;
