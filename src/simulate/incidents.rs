//! Injected incidents: which identity, when, and what happens. Planning comes
//! before normal behaviour because some incidents change an identity's life (a
//! grant revoked, an identity left to go dormant); realizing them after it adds
//! the incident's events and its label.

use super::calendar::Calendar;
use super::fleet::{
    credential_revoked, grant_ended, key_id, retire, Credentials, Delegation, Identity, Key, Kind, Plan, Source,
};
use super::kinds::Records;
use super::rng::{mix, Rng};
use super::world::{Member, INCIDENT_STREAM};
use super::{IncidentClass, Label};
use crate::model::{AccessEvent, Millis, Outcome};
use crate::time::{DAY, HOUR, MINUTE};

/// Incidents start after this much history, so every identity has a baseline.
pub const BASELINE: Millis = 8 * DAY;

/// One incident per class for every 5,000 identity-days (six in a 1000 x 30 run).
const IDENTITY_DAYS_PER_INCIDENT: f64 = 5000.0;

/// Networks attackers come from (hosting providers), and their clients.
pub const HOSTILE_NETWORKS: [&str; 8] =
    ["45.137.21", "185.220.101", "194.26.192", "5.188.206", "91.219.236", "103.75.201", "146.70.38", "23.94.61"];
const HOSTILE_CLIENTS: [&str; 4] = [
    "python-requests/2.31.0",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.12.2",
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off",
    "curl/8.4.0",
];

#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub class: IncidentClass,
    pub member: usize,
    pub at: Millis,
    /// Each class has two ways of happening; this picks one.
    pub variant: bool,
}

/// Chooses the incidents: per class, times spread after the baseline period, each
/// on a different identity that fits the class.
pub fn plan(seed: u64, cal: &Calendar, members: &mut [Member], records: &mut Records) -> Vec<Incident> {
    let mut rng = Rng::stream(seed, INCIDENT_STREAM);
    let per_class = ((members.len() as f64 * cal.days as f64) / IDENTITY_DAYS_PER_INCIDENT).round().max(1.0) as usize;
    let mut taken = vec![false; members.len()];
    let mut planned = Vec::new();
    for &class in IncidentClass::SIMULATED {
        for _ in 0..per_class {
            // A dormant identity needs a baseline, then a long silence.
            let silence = if class == IncidentClass::DormantReactivation { rng.range(9, 14) * DAY } else { 0 };
            let earliest = cal.start + BASELINE + silence;
            let latest = cal.end() - DAY;
            if earliest >= latest {
                break;
            }
            let at = rng.range(earliest, latest);
            let eligible: Vec<usize> =
                (0..members.len()).filter(|&i| !taken[i] && fits(class, &members[i], at - silence, at)).collect();
            if eligible.is_empty() {
                continue;
            }
            let member = *rng.pick(&eligible);
            taken[member] = true;
            let incident =
                Incident { id: format!("inc-{:04}", planned.len() + 1), class, member, at, variant: rng.chance(0.5) };
            prepare(&incident, &mut members[member].identity, silence, records, &mut rng);
            planned.push(incident);
        }
    }
    planned
}

/// Whether a member can suffer this class of incident at `at`: the right kind, and
/// a normal life around it (active for a baseline before `quiet_from`, not retired).
fn fits(class: IncidentClass, m: &Member, quiet_from: Millis, at: Millis) -> bool {
    let kind = m.identity.kind;
    settled(&m.identity, quiet_from, at)
        && match class {
            IncidentClass::StolenTokenOutsideWindow => kind == Kind::Pipeline,
            IncidentClass::AgentNewPath => kind == Kind::Agent,
            IncidentClass::PostRevocationActivity
            | IncidentClass::RevokedOrExpiredCredential
            | IncidentClass::DormantReactivation => true,
            IncidentClass::FanoutDiscovery => matches!(kind, Kind::DataPlatform | Kind::Federated | Kind::Agent),
            IncidentClass::ExfiltrationBurst | IncidentClass::SharedCredential => {
                matches!(kind, Kind::Integration | Kind::DataPlatform | Kind::Federated)
            }
            IncidentClass::ScopeViolation => match kind {
                Kind::Pipeline => m.behaviour.pipeline().is_some_and(|p| p.unapproved_environment().is_some()),
                _ => matches!(kind, Kind::Integration | Kind::DataPlatform),
            },
            IncidentClass::NewDelegator => matches!(kind, Kind::DataPlatform | Kind::Federated),
            // Spliced from detonation files, never planned here.
            IncidentClass::RealAttack => false,
        }
}

/// Whether an identity leads a normal life around an incident at `at`: active for a
/// baseline before `quiet_from`, not retired within a day after, and no quiet
/// stretch in between.
pub fn settled(id: &Identity, quiet_from: Millis, at: Millis) -> bool {
    id.active_from <= quiet_from - BASELINE
        && id.active_until > at + DAY
        && id.quiet.iter().all(|&(a, b)| b < quiet_from - BASELINE || a > at + DAY)
}

/// Changes to an identity's life that must be known before its normal behaviour runs.
fn prepare(incident: &Incident, identity: &mut Identity, silence: Millis, records: &mut Records, rng: &mut Rng) {
    let at = incident.at;
    match incident.class {
        IncidentClass::PostRevocationActivity if identity.kind == Kind::Integration => {
            // The contract ends and the grant is revoked, but the vendor's scheduler keeps
            // syncing for hours until someone finally revokes the key.
            let live = identity.delegations_at(at);
            for grant_id in live.iter().filter_map(|&d| identity.delegations[d].grant_id.clone()) {
                records.push((at, grant_ended(at, &grant_id, "revoked")));
            }
            let cut_off = at + rng.range(5, 12) * HOUR;
            identity.active_until = cut_off;
            if let Credentials::Keys(keys) = &identity.credentials {
                records.push((cut_off, credential_revoked(cut_off, &keys[keys.len() - 1].id)));
            }
        }
        IncidentClass::PostRevocationActivity => {
            // Retired properly a few days before; something still holds its access.
            retire(identity, at - rng.range(DAY, 4 * DAY), records);
        }
        IncidentClass::RevokedOrExpiredCredential if identity.kind == Kind::Integration => {
            // A key rotation; the old key is revoked, but one forgotten worker keeps it.
            if let Credentials::Keys(keys) = &mut identity.credentials {
                let rotated = at - rng.range(DAY, 3 * DAY);
                // This rotation replaces one planned after it (and that one's revocation of
                // the first key): the keys stay one succession, the newest last, so the key
                // the forgotten worker holds (`emit`) is the one revoked here. Kept, a later
                // rotation made the worker use this rotation's new, unrevoked key.
                if let Some(dropped) = keys.iter().find(|k| k.from > rotated) {
                    let (first, revoked_at) = (keys[0].id.clone(), dropped.from + DAY);
                    records.retain(|(t, r)| !(*t == revoked_at && r["credential_id"] == first.as_str()));
                    keys.retain(|k| k.from <= rotated);
                }
                let old = keys[keys.len() - 1].id.clone();
                keys.push(Key { id: key_id("AKIA", mix(rng.next_u64())), from: rotated });
                records.push((rotated + 2 * HOUR, credential_revoked(rotated + 2 * HOUR, &old)));
            }
        }
        IncidentClass::DormantReactivation => {
            // Its workload was switched off without offboarding: an orphaned identity.
            identity.active_until = at - silence;
        }
        _ => {}
    }
}

/// Adds the incident's events for a member (whose normal events are `own`) and
/// returns its label.
pub fn realize(
    incident: &Incident,
    m: &mut Member,
    cal: &Calendar,
    own: &mut Vec<AccessEvent>,
    rng: &mut Rng,
) -> Label {
    let at = incident.at;
    let Member { identity, behaviour } = m;
    let mut events: Vec<AccessEvent> = Vec::new();
    match incident.class {
        IncidentClass::StolenTokenOutsideWindow => {
            // A misconfigured OIDC trust lets an outsider mint the pipeline's credentials.
            let pipeline = behaviour.pipeline().expect("planned for pipelines only");
            let t = pipeline.outside_window(cal, at, rng);
            let plan = behaviour.session(identity, cal, t, rng);
            let mut ctx = identity.context(&plan, rng);
            ctx.source = hostile_source(rng);
            ctx.credential = identity.sts_credential(t, HOUR);
            events = identity.emit(&plan, &ctx, rng);
        }
        IncidentClass::AgentNewPath => {
            let agent = behaviour.agent().expect("planned for agents only");
            let plan = agent.hijacked_task(identity, at, incident.variant, rng);
            let ctx = identity.context(&plan, rng);
            events = identity.emit(&plan, &ctx, rng);
        }
        IncidentClass::PostRevocationActivity if identity.kind == Kind::Integration => {
            // Its own normal syncs after the revocation are the incident.
            events = own.iter().filter(|e| e.time >= at).cloned().collect();
            own.retain(|e| e.time < at);
            if events.is_empty() {
                let plan = behaviour.session(identity, cal, at + 10 * MINUTE, rng);
                let ctx = identity.context(&plan, rng);
                events = identity.emit(&plan, &ctx, rng);
            }
        }
        IncidentClass::PostRevocationActivity | IncidentClass::DormantReactivation => {
            // A forgotten deployment (or someone who found the credential) acts again.
            for k in 0..1 + rng.below(2) {
                let plan = behaviour.session(identity, cal, at + k as Millis * rng.range(5, 60) * MINUTE, rng);
                let mut ctx = identity.context(&plan, rng);
                if incident.variant {
                    ctx.source = hostile_source(rng);
                }
                events.extend(identity.emit(&plan, &ctx, rng));
            }
        }
        IncidentClass::RevokedOrExpiredCredential if identity.kind == Kind::Integration => {
            let plan = behaviour.session(identity, cal, at, rng);
            let mut ctx = identity.context(&plan, rng);
            // `prepare` rotated the keys and revoked the one before the newest:
            // the forgotten worker uses that one.
            if let Credentials::Keys(keys) = &identity.credentials {
                let old = &keys[keys.len().saturating_sub(2)];
                ctx.credential.id = old.id.clone();
            }
            events = identity.emit(&plan, &ctx, rng);
        }
        IncidentClass::RevokedOrExpiredCredential => {
            // A session token lifted from a log days ago is replayed; it no longer works.
            let mut plan = behaviour.session(identity, cal, at, rng);
            plan.calls.truncate(2 + rng.below(4) as usize);
            let mut ctx = identity.context(&plan, rng);
            ctx.source = hostile_source(rng);
            let issued = (at - rng.range(DAY, 5 * DAY)).div_euclid(HOUR) * HOUR;
            let lifted = identity.sts_credential(issued, HOUR);
            ctx.credential = lifted.clone();
            events = identity.emit(&plan, &ctx, rng);
            for e in &mut events {
                // The lifted token on every call: `emit` picks a refreshed credential per
                // call, which left a federated workload's replay holding a valid one.
                (e.credential_id, e.credential_expires_at) = (Some(lifted.id.as_str().into()), lifted.expires_at);
                e.outcome = Outcome::Failure;
            }
        }
        IncidentClass::FanoutDiscovery => {
            let plan = discovery(identity, behaviour, at, rng);
            let ctx = identity.context(&plan, rng);
            events = identity.emit(&plan, &ctx, rng);
            if let Some(platform) = behaviour.data_platform() {
                for e in &mut events {
                    if !platform.serves(e.resource.as_deref().unwrap_or("")) {
                        e.outcome = Outcome::Denied;
                    }
                }
            } else {
                for e in &mut events {
                    if rng.chance(0.6) {
                        e.outcome = Outcome::Denied;
                    }
                }
            }
        }
        IncidentClass::ExfiltrationBurst => {
            // Its own allowed read, hundreds of times within the hour, from its usual host.
            let count = rng.range(300, 1000);
            let span = rng.range(30, 90) * MINUTE;
            let mut calls: Vec<(Millis, _)> = (0..count)
                .map(|_| {
                    let t = at + rng.range(0, span / 1000) * 1000;
                    (t, behaviour.bulk_read(identity, at, rng).expect("planned for kinds that read data"))
                })
                .collect();
            calls.sort_by_key(|(t, _)| *t);
            let delegation = *identity.delegations_at(at).first().unwrap_or(&0);
            let plan = Plan { prefix: "job", delegation, environment: Some("prod".into()), calls };
            let ctx = identity.context(&plan, rng);
            events = identity.emit(&plan, &ctx, rng);
        }
        IncidentClass::SharedCredential => {
            // A copy of the credential runs the same work from a second client.
            let second = hostile_source(rng);
            let until = at + rng.range(2, 6) * HOUR;
            let mut t = at;
            while t < until {
                let plan = behaviour.session(identity, cal, t, rng);
                let mut ctx = identity.context(&plan, rng);
                ctx.source = second.clone();
                events.extend(identity.emit(&plan, &ctx, rng));
                t += rng.range(10, 40) * MINUTE;
            }
        }
        IncidentClass::ScopeViolation => {
            let plan = behaviour.out_of_scope(identity, cal, at, rng).expect("planned for kinds with a scope to break");
            let ctx = identity.context(&plan, rng);
            events = identity.emit(&plan, &ctx, rng);
        }
        IncidentClass::NewDelegator => {
            // Acts for a delegator it never served and holds no grant for (a confused deputy).
            let platform = behaviour.data_platform();
            let (delegator, sessions) = match platform {
                Some(platform) => (format!("bu:{}", platform.foreign_unit(rng)), rng.range(1, 4)),
                None => (
                    format!("app:{}", rng.pick(&["partner-portal", "internal-tools", "legacy-batch"])),
                    rng.range(5, 20),
                ),
            };
            let hop = identity.delegations[0].chain.last().cloned().unwrap_or_default();
            identity.delegations.push(Delegation {
                on_behalf_of: delegator.clone(),
                chain: vec![delegator.clone(), hop],
                grant_id: None,
                since: Millis::MAX,
                until: Millis::MAX,
            });
            let delegation = identity.delegations.len() - 1;
            for k in 0..sessions {
                let t = at + k * rng.range(3, 15) * MINUTE;
                let mut plan = match platform {
                    Some(platform) => platform.job(identity, t, delegator.strip_prefix("bu:"), rng),
                    None => behaviour.session(identity, cal, t, rng),
                };
                plan.delegation = delegation;
                let ctx = identity.context(&plan, rng);
                events.extend(identity.emit(&plan, &ctx, rng));
            }
        }
        IncidentClass::RealAttack => unreachable!("`fits` never plans a real attack; `splice` makes them"),
    }
    let label = Label {
        incident_id: incident.id.clone(),
        class: incident.class,
        identity: identity.name.clone(),
        start: events.iter().map(|e| e.time).min().unwrap_or(at),
        end: events.iter().map(|e| e.time).max().unwrap_or(at),
        event_ids: events.iter().map(|e| e.event_id.to_string()).collect(),
        technique: None,
        variant: None,
    };
    own.extend(events);
    label
}

/// Enumeration: a data platform lists prefixes across the whole lake; other
/// kinds describe and list services they never use, in several regions.
fn discovery(identity: &Identity, behaviour: &super::kinds::Behaviour, at: Millis, rng: &mut Rng) -> Plan {
    let mut calls = Vec::new();
    let mut t = at;
    if let Some(platform) = behaviour.data_platform() {
        for _ in 0..rng.range(30, 120) {
            calls.push((t, platform.lake_listing(rng)));
            t += rng.range(2, 15) * 1000;
        }
    } else {
        let services = rng.range(10, 16) as usize;
        for (target, action) in rng.sample(&super::kinds::DISCOVERY, services) {
            for _ in 0..1 + rng.below(3) {
                calls.push((t, super::fleet::Call::new(target, action, None)));
                t += rng.range(1, 20) * 1000;
            }
        }
    }
    let delegation = *identity.delegations_at(at).first().unwrap_or(&0);
    Plan { prefix: "job", delegation, environment: Some("prod".into()), calls }
}

fn hostile_source(rng: &mut Rng) -> Source {
    Source::new(
        rng.pick(&HOSTILE_NETWORKS).to_string(),
        vec![rng.range(2, 250) as u8],
        rng.pick::<&str>(&HOSTILE_CLIENTS),
    )
}
