//! overreach: watches what delegated machine identities do and says, in time,
//! when one of them oversteps.
//!
//! The data's way: `source` (files, Kafka) → `decode` (one file per log format)
//! → `model` (the normalized record) → `engine` (`baseline` + `grants` →
//! `detect`, one file per detector) → `alert` (`sanitize`: `redact`, bound) → sinks.

pub mod alert;
pub mod backtest;
pub mod baseline;
pub mod decode;
pub mod detect;
pub mod engine;
pub mod explain;
pub mod facts;
pub mod features;
pub mod feedback;
pub mod grants;
pub mod incident;
pub mod model;
pub mod ocsf;
pub mod order;
pub mod paths;
pub mod redact;
pub mod replay;
pub mod sanitize;
pub mod sensitive;
pub mod simulate;
pub mod source;
pub mod state_file;
pub mod suppress;
pub mod text;
pub mod time;

pub mod config;
pub mod demo;
pub mod kafka;
pub mod service;
pub mod telemetry;
pub mod triage;

/// Every binary built on the library (the command, its benchmarks and tests) allocates
/// through mimalloc: a decoded record is a score of small strings made on one thread and
/// freed soon after, where the system allocator's bookkeeping was a sixth of replay's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
