pub mod fixtures;
pub mod lab;
