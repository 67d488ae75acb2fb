//! A labelled, realistic workload: a fleet of delegated machine identities of the
//! five kinds, their grants, a month of their calls, and injected incidents with
//! the ids of the events that belong to each.
//!
//! Deterministic for a seed: the PRNG is our own ([`rng`]), every identity draws
//! from its own stream, and nothing is ordered by a hash map.

mod calendar;
pub mod cloudtrail;
mod fleet;
mod incidents;
mod kinds;
pub mod rng;
mod world;

use crate::model::{AccessEvent, Millis};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub identities: usize,
    pub days: u32,
    pub seed: u64,
    /// First day, at midnight UTC.
    pub start: Millis,
}

/// 2026-03-02T00:00:00Z, a Monday.
pub const DEFAULT_START: Millis = 1_772_409_600_000;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { identities: 100, days: 30, seed: 7, start: DEFAULT_START }
    }
}

/// The injected incident classes. Names are stable: labels and scripts use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentClass {
    StolenTokenOutsideWindow,
    AgentNewPath,
    PostRevocationActivity,
    RevokedOrExpiredCredential,
    FanoutDiscovery,
    ExfiltrationBurst,
    SharedCredential,
    DormantReactivation,
    ScopeViolation,
    NewDelegator,
}

impl IncidentClass {
    pub const ALL: [IncidentClass; 10] = [
        IncidentClass::StolenTokenOutsideWindow,
        IncidentClass::AgentNewPath,
        IncidentClass::PostRevocationActivity,
        IncidentClass::RevokedOrExpiredCredential,
        IncidentClass::FanoutDiscovery,
        IncidentClass::ExfiltrationBurst,
        IncidentClass::SharedCredential,
        IncidentClass::DormantReactivation,
        IncidentClass::ScopeViolation,
        IncidentClass::NewDelegator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IncidentClass::StolenTokenOutsideWindow => "stolen_token_outside_window",
            IncidentClass::AgentNewPath => "agent_new_path",
            IncidentClass::PostRevocationActivity => "post_revocation_activity",
            IncidentClass::RevokedOrExpiredCredential => "revoked_or_expired_credential",
            IncidentClass::FanoutDiscovery => "fanout_discovery",
            IncidentClass::ExfiltrationBurst => "exfiltration_burst",
            IncidentClass::SharedCredential => "shared_credential",
            IncidentClass::DormantReactivation => "dormant_reactivation",
            IncidentClass::ScopeViolation => "scope_violation",
            IncidentClass::NewDelegator => "new_delegator",
        }
    }
}

impl fmt::Display for IncidentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IncidentClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        IncidentClass::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| format!("unknown incident class `{s}`"))
    }
}

/// One injected incident: `labels.jsonl` holds one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub incident_id: String,
    pub class: IncidentClass,
    pub identity: String,
    /// Time of the first and last event of the incident.
    pub start: Millis,
    pub end: Millis,
    /// Every event of the sessions the incident consists of.
    pub event_ids: Vec<String>,
}

/// A simulated fleet: its calls, its grant and lifecycle events, and the labels.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Sorted by time, then event id.
    pub events: Vec<AccessEvent>,
    /// Grant and lifecycle events in the grants format, sorted by time.
    pub grants: Vec<serde_json::Value>,
    /// Sorted by incident id.
    pub labels: Vec<Label>,
}

/// Simulates a fleet. Same config, same simulation, byte for byte.
pub fn generate(config: &SimConfig) -> Simulation {
    world::generate(config)
}

/// How `simulate` writes access events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// The native format: `decode::native` reads each line back as the same event.
    Native,
    /// One CloudTrail record per line.
    Cloudtrail,
}

/// Writes items as JSON lines (native events, grants, labels).
pub fn write_json_lines<T: Serialize>(items: &[T], w: &mut dyn Write) -> io::Result<()> {
    for item in items {
        serde_json::to_writer(&mut *w, item).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes access events in the chosen format, one per line.
pub fn write_events(events: &[AccessEvent], format: EventFormat, w: &mut dyn Write) -> io::Result<()> {
    match format {
        EventFormat::Native => write_json_lines(events, w),
        EventFormat::Cloudtrail => {
            for event in events {
                serde_json::to_writer(&mut *w, &cloudtrail::record(event)).map_err(io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}
