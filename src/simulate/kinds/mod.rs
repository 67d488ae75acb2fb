//! The behaviour of each kind of delegated identity. A kind builds an identity
//! (its grants, sources, credentials) and plans its sessions; `fleet` turns the
//! planned calls into events, so every kind logs the same way.

mod agent;
mod data_platform;
mod federated;
mod integration;
mod pipeline;

use super::calendar::Calendar;
pub use super::fleet::Plan;
use super::fleet::{Call, Identity, Kind};
use super::rng::Rng;
use crate::model::Millis;
use serde_json::Value;

pub use federated::DISCOVERY;
pub use integration::VENDORS;

/// Fleet-wide changes decided once for the whole organisation.
#[derive(Debug, Clone, Default)]
pub struct FleetChanges {
    /// Releases that add one call for every identity of a kind, from a time on.
    pub drift: Vec<(Kind, Millis)>,
    /// A vendor moves its egress to a new network at a time.
    pub vendor_move: Option<(&'static str, Millis)>,
}

/// Grant and lifecycle records as (time, record).
pub type Records = Vec<(Millis, Value)>;

#[derive(Debug, Clone)]
pub enum Behaviour {
    Pipeline(pipeline::Pipeline),
    Agent(agent::Agent),
    Integration(integration::Integration),
    DataPlatform(data_platform::DataPlatform),
    Federated(federated::Federated),
}

/// Builds the identity of a kind: its name, grants (into `records`), sources,
/// credentials and behaviour. The grants start at `identity.active_from`.
pub fn build(
    identity: &mut Identity,
    cal: &Calendar,
    changes: &FleetChanges,
    rng: &mut Rng,
    records: &mut Records,
) -> Behaviour {
    match identity.kind {
        Kind::Pipeline => Behaviour::Pipeline(pipeline::build(identity, rng, records)),
        Kind::Agent => Behaviour::Agent(agent::build(identity, rng, records)),
        Kind::Integration => Behaviour::Integration(integration::build(identity, cal, changes, rng, records)),
        Kind::DataPlatform => Behaviour::DataPlatform(data_platform::build(identity, cal, rng, records)),
        Kind::Federated => Behaviour::Federated(federated::build(identity, cal, rng, records)),
    }
}

impl Behaviour {
    /// The sessions this identity starts on one day, in its normal rhythm.
    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        match self {
            Behaviour::Pipeline(p) => p.day(identity, cal, day, rng),
            Behaviour::Agent(a) => a.day(identity, cal, day, rng),
            Behaviour::Integration(i) => i.day(identity, cal, day, rng),
            Behaviour::DataPlatform(d) => d.day(identity, cal, day, rng),
            Behaviour::Federated(f) => f.day(identity, cal, day, rng),
        }
    }

    /// One ordinary session started at `t`, whatever the rhythm says.
    pub fn session(&self, identity: &Identity, cal: &Calendar, t: Millis, rng: &mut Rng) -> Plan {
        match self {
            Behaviour::Pipeline(p) => p.run(identity, t, None, rng),
            Behaviour::Agent(a) => a.task(identity, t, rng),
            Behaviour::Integration(i) => i.sync(identity, cal, t, rng),
            Behaviour::DataPlatform(d) => d.job(identity, t, None, rng),
            Behaviour::Federated(f) => f.request(identity, t, None, rng),
        }
    }

    /// The call a fleet-wide release adds for this identity.
    pub fn drift_call(&self, identity: &Identity) -> Call {
        match self {
            Behaviour::Pipeline(p) => p.drift_call(identity),
            Behaviour::Agent(_) => agent::drift_call(),
            Behaviour::Integration(_) => integration::drift_call(),
            Behaviour::DataPlatform(_) => data_platform::drift_call(identity),
            Behaviour::Federated(f) => f.drift_call(identity),
        }
    }

    /// A call that reads one more item of the data this identity may read: the
    /// unit of an exfiltration burst. `None` for kinds that read no bulk data.
    pub fn bulk_read(&self, identity: &Identity, t: Millis, rng: &mut Rng) -> Option<Call> {
        match self {
            Behaviour::Integration(i) => Some(i.bulk_read(identity, t, rng)),
            Behaviour::DataPlatform(d) => Some(d.bulk_read(identity, t, rng)),
            Behaviour::Federated(f) => Some(f.bulk_read(identity)),
            Behaviour::Pipeline(_) | Behaviour::Agent(_) => None,
        }
    }

    /// Calls this identity's grant does not allow (its environment, prefix or actions).
    pub fn out_of_scope(&self, identity: &Identity, cal: &Calendar, t: Millis, rng: &mut Rng) -> Option<Plan> {
        match self {
            Behaviour::Pipeline(p) => p.unapproved_run(identity, cal, t, rng),
            Behaviour::Integration(i) => Some(i.out_of_scope(identity, cal, t, rng)),
            Behaviour::DataPlatform(d) => Some(d.job(identity, t, Some(d.foreign_unit(rng)), rng)),
            Behaviour::Agent(_) | Behaviour::Federated(_) => None,
        }
    }

    pub fn pipeline(&self) -> Option<&pipeline::Pipeline> {
        match self {
            Behaviour::Pipeline(p) => Some(p),
            _ => None,
        }
    }

    pub fn agent(&self) -> Option<&agent::Agent> {
        match self {
            Behaviour::Agent(a) => Some(a),
            _ => None,
        }
    }

    pub fn data_platform(&self) -> Option<&data_platform::DataPlatform> {
        match self {
            Behaviour::DataPlatform(d) => Some(d),
            _ => None,
        }
    }
}

/// Spaces calls a few seconds apart from `t`, as one client executes them.
pub fn spaced(t: Millis, calls: Vec<Call>, gap_s: (i64, i64), rng: &mut Rng) -> Vec<(Millis, Call)> {
    let mut now = t;
    calls
        .into_iter()
        .map(|c| {
            let at = now;
            now += rng.range(gap_s.0, gap_s.1) * 1000;
            (at, c)
        })
        .collect()
}
