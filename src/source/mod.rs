//! Where records come from. Files here; Kafka in `kafka`.

pub mod file;
pub mod merge;
