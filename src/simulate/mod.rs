//! A labelled, realistic workload: a fleet of delegated machine identities of the
//! five kinds, their grants, a month of their calls, and injected incidents with
//! the ids of the events that belong to each.
//!
//! Deterministic for a seed: the PRNG is our own ([`rng`]), every identity draws
//! from its own stream, and nothing is ordered by a hash map.
//!
//! Real attack detonations ([`detonation`]) can be spliced into chosen identities
//! ([`SimConfig::attacks`]), each labelled as a `real_attack` incident.

mod calendar;
pub mod cloudtrail;
pub mod detonation;
mod fleet;
mod incidents;
mod kinds;
pub mod rng;
mod splice;
mod world;

use crate::model::{AccessEvent, Millis};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub identities: usize,
    pub days: u32,
    pub seed: u64,
    /// First day, at midnight UTC.
    pub start: Millis,
    /// Real attacks to splice in; `None` leaves the fleet exactly as without them.
    pub attacks: Option<Attacks>,
}

/// 2026-03-02T00:00:00Z, a Monday.
pub const DEFAULT_START: Millis = 1_772_409_600_000;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { identities: 100, days: 30, seed: 7, start: DEFAULT_START, attacks: None }
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
    /// A real attack detonation spliced into an identity ([`SimConfig::attacks`]).
    RealAttack,
}

impl IncidentClass {
    pub const ALL: [IncidentClass; 11] = [
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
        IncidentClass::RealAttack,
    ];

    /// The classes the simulator injects on its own, in every fleet: all but the
    /// spliced real attacks, which come only from `SimConfig::attacks`.
    pub const SIMULATED: &'static [IncidentClass] = IncidentClass::ALL.split_at(10).0;

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
            IncidentClass::RealAttack => "real_attack",
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

/// How a spliced real attack reaches the identity. Names are stable: labels use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackVariant {
    /// A stolen credential used elsewhere: a new session and credential, from a hosting
    /// provider's network the identity never used, with the attacker's own client.
    Foreign,
    /// Abuse from inside the runner or pod: the identity's own session, credential,
    /// address and client; only the calls differ.
    Own,
}

impl AttackVariant {
    pub const ALL: [AttackVariant; 2] = [AttackVariant::Foreign, AttackVariant::Own];

    pub fn name(self) -> &'static str {
        match self {
            AttackVariant::Foreign => "foreign",
            AttackVariant::Own => "own",
        }
    }
}

impl fmt::Display for AttackVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttackVariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AttackVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown attack variant `{s}` (expected foreign or own)"))
    }
}

/// Real attack detonations to splice into a fleet, and the variants to splice each in.
#[derive(Debug, Clone, PartialEq)]
pub struct Attacks {
    pub detonations: Vec<detonation::Detonation>,
    pub variants: Vec<AttackVariant>,
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
    /// A spliced real attack's technique: its detonation file's name without `.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<AttackVariant>,
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
