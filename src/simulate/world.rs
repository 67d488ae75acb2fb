//! Builds the organisation (its calendar, fleet-wide changes and identities with
//! their churn), runs everyone's normal behaviour, and injects the incidents.

use super::calendar::Calendar;
use super::fleet::{retire, rollout_time, Identity, Kind};
use super::incidents;
use super::kinds::{self, Behaviour, FleetChanges, Records, VENDORS};
use super::rng::Rng;
use super::splice;
use super::{Label, SimConfig, Simulation};
use crate::model::AccessEvent;
use crate::time::{DAY, HOUR};

/// Independent PRNG streams: one per part of the world, identities after these.
const CALENDAR_STREAM: u64 = 1;
const CHANGES_STREAM: u64 = 2;
pub const INCIDENT_STREAM: u64 = 3;
/// Its own stream, so splicing attacks leaves everything else as it was.
const SPLICE_STREAM: u64 = 4;
const IDENTITY_STREAMS: u64 = 1 << 20;
const ACTIVITY_STREAMS: u64 = 2 << 20;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "us-west-2"];

/// An identity and how it behaves.
pub struct Member {
    pub identity: Identity,
    pub behaviour: Behaviour,
}

pub fn generate(config: &SimConfig) -> Simulation {
    let cal = Calendar::new(config.start, config.days, &mut Rng::stream(config.seed, CALENDAR_STREAM));
    let changes = fleet_changes(&cal, &mut Rng::stream(config.seed, CHANGES_STREAM));
    let mut records: Records = Vec::new();
    let mut members: Vec<Member> = (0..config.identities)
        .map(|i| {
            let mut rng = Rng::stream(config.seed, IDENTITY_STREAMS + i as u64);
            member(i, config.seed, &cal, &changes, &mut rng, &mut records)
        })
        .collect();
    let planned = incidents::plan(config.seed, &cal, &mut members, &mut records);

    let mut events = Vec::new();
    let mut labels: Vec<Label> = Vec::new();
    // Where each member's events are in `events`.
    let mut spans = Vec::with_capacity(members.len());
    for (i, m) in members.iter_mut().enumerate() {
        let mut rng = Rng::stream(config.seed, ACTIVITY_STREAMS + i as u64);
        let mut own = normal_activity(m, &cal, &mut rng);
        for incident in planned.iter().filter(|p| p.member == i) {
            labels.push(incidents::realize(incident, m, &cal, &mut own, &mut rng));
        }
        spans.push(events.len()..events.len() + own.len());
        events.extend(own);
    }
    if let Some(attacks) = &config.attacks {
        let own: Vec<&[AccessEvent]> = spans.into_iter().map(|span| &events[span]).collect();
        let mut taken = vec![false; members.len()];
        planned.iter().for_each(|p| taken[p.member] = true);
        let mut rng = Rng::stream(config.seed, SPLICE_STREAM);
        let spliced = splice::splice(attacks, &cal, &mut members, &own, taken, planned.len() + 1, &mut rng);
        events.extend(spliced.events);
        labels.extend(spliced.labels);
    }
    events.sort_by(|a: &AccessEvent, b: &AccessEvent| (a.time, &a.event_id).cmp(&(b.time, &b.event_id)));
    // Stable: records of the same time keep the order they were made in.
    records.sort_by_key(|(t, _)| *t);
    labels.sort_by(|a, b| a.incident_id.cmp(&b.incident_id));
    Simulation { events, grants: records.into_iter().map(|(_, r)| r).collect(), labels }
}

/// The organisation-wide changes: two releases that each add a call for a whole
/// kind, and one vendor moving its network. None in the first ten days, so the
/// learning period is calm.
fn fleet_changes(cal: &Calendar, rng: &mut Rng) -> FleetChanges {
    let kinds = [Kind::Pipeline, Kind::Agent, Kind::Integration, Kind::DataPlatform, Kind::Federated];
    let mut changes = FleetChanges::default();
    if cal.days < 13 {
        return changes;
    }
    let day = |rng: &mut Rng| cal.day_start(10 + rng.below(cal.days as u64 - 12) as u32) + 9 * HOUR;
    for kind in rng.sample(&kinds, 2) {
        let at = day(rng);
        changes.drift.push((kind, at));
    }
    let at = day(rng);
    changes.vendor_move = Some((rng.pick(&VENDORS).0, at));
    changes
}

fn member(
    index: usize,
    seed: u64,
    cal: &Calendar,
    changes: &FleetChanges,
    rng: &mut Rng,
    records: &mut Records,
) -> Member {
    let total: u64 = Kind::MIX.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    let kind = Kind::MIX
        .iter()
        .find(|(_, w)| {
            roll < *w || {
                roll -= w;
                false
            }
        })
        .map_or(Kind::Federated, |(k, _)| *k);
    let mut identity = Identity::new(index, kind, String::new(), rng.pick::<&str>(&REGIONS), seed);
    identity.active_from = cal.start;
    // Some identities join mid-way...
    if rng.chance(0.08) && cal.days > 6 {
        identity.active_from = cal.day_start(2 + rng.below(cal.days as u64 - 5) as u32) + rng.range(8, 18) * HOUR;
    }
    let behaviour = kinds::build(&mut identity, cal, changes, rng, records);
    // ...some are retired properly: grant ended, offboarded, then silent...
    let lived = (cal.end() - identity.active_from) / DAY;
    if rng.chance(0.05) && lived > 3 {
        let at = identity.active_from + rng.range(2 * DAY, lived * DAY);
        retire(&mut identity, at, records);
    }
    // ...and a release freeze silences some pipelines for a week or so.
    if kind == Kind::Pipeline && rng.chance(0.15) && cal.days > 10 {
        let from = cal.day_start(2 + rng.below(cal.days as u64 - 9) as u32);
        identity.quiet.push((from, from + rng.range(4, 10) * DAY));
    }
    for (drift_kind, at) in &changes.drift {
        if *drift_kind == kind {
            identity.drift = Some((rollout_time(*at, rng), behaviour.drift_call(&identity)));
        }
    }
    Member { identity, behaviour }
}

/// Everything an identity does in its normal rhythm while it is active. A session
/// runs only if it starts and ends inside the active time.
fn normal_activity(m: &mut Member, cal: &Calendar, rng: &mut Rng) -> Vec<AccessEvent> {
    let mut events = Vec::new();
    for day in 0..cal.days {
        for plan in m.behaviour.day(&m.identity, cal, day, rng) {
            if m.identity.is_active(plan.start()) && m.identity.is_active(plan.end()) {
                let ctx = m.identity.context(&plan, rng);
                events.extend(m.identity.emit(&plan, &ctx, rng));
            }
        }
    }
    events
}
