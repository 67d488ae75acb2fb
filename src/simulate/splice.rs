//! Real attacks spliced into the fleet: every detonation in every variant becomes one
//! `real_attack` incident on an identity of its own, taken alternately from quiet CI
//! roles and busy workloads, with a baseline of history before it.
//!
//! The detonation gives the calls: their order, their spacing (a gap over
//! [`MAX_GAP`] is cut to it, so an episode stays short), their resources and their
//! outcomes (denied and failed calls stay so). The victim gives everything else, as
//! its own events carry it: identity, type, delegation, environment. The variant
//! decides the rest ([`AttackVariant`]).

use super::calendar::Calendar;
use super::detonation::{Detonation, DetonationCall};
use super::fleet::{account, key_id, Credentials, Identity, Kind};
use super::incidents::{settled, BASELINE, HOSTILE_NETWORKS};
use super::rng::Rng;
use super::world::Member;
use super::{AttackVariant, Attacks, IncidentClass, Label};
use crate::model::{AccessEvent, EventText, Millis};
use crate::time::{DAY, HOUR, MINUTE, SECOND};
use std::collections::BTreeMap;

/// The longest pause kept between two calls of a detonation.
pub const MAX_GAP: Millis = 10 * MINUTE;

/// The two populations attacks alternate between.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Victims {
    /// CI roles: a few runs a day, the same calls every run. The hard, common case.
    QuietCi,
    /// Integrations, data platforms and federated workloads: calls all day long.
    BusyWorkload,
}

impl Victims {
    /// The k-th (technique, variant) pair: techniques alternate, and the variants of
    /// one technique land on different populations.
    fn alternate(k: usize) -> Victims {
        if k % 2 == 0 {
            Victims::QuietCi
        } else {
            Victims::BusyWorkload
        }
    }

    fn other(self) -> Victims {
        match self {
            Victims::QuietCi => Victims::BusyWorkload,
            Victims::BusyWorkload => Victims::QuietCi,
        }
    }

    fn admit(self, kind: Kind) -> bool {
        match self {
            Victims::QuietCi => kind == Kind::Pipeline,
            Victims::BusyWorkload => matches!(kind, Kind::Integration | Kind::DataPlatform | Kind::Federated),
        }
    }
}

#[derive(Debug, Default)]
pub struct Spliced {
    pub events: Vec<AccessEvent>,
    pub labels: Vec<Label>,
}

/// Splices every (detonation, variant) pair. `own[i]` holds member i's events and
/// `taken[i]` says whether an incident already uses it; incident ids are numbered
/// from `first_number`. A pair with no free settled identity in either population
/// is left out (its label is missing).
pub fn splice(
    attacks: &Attacks,
    cal: &Calendar,
    members: &mut [Member],
    own: &[&[AccessEvent]],
    mut taken: Vec<bool>,
    first_number: usize,
    rng: &mut Rng,
) -> Spliced {
    // After the baseline, and a day before the end so a whole episode fits.
    let window = (cal.start + BASELINE, cal.end() - DAY);
    let mut spliced = Spliced::default();
    if window.0 >= window.1 {
        return spliced;
    }
    for (t, detonation) in attacks.detonations.iter().enumerate() {
        for (v, &variant) in attacks.variants.iter().enumerate() {
            let victims = Victims::alternate(t + v);
            let chosen = match variant {
                AttackVariant::Foreign => foreign(detonation, victims, window, members, own, &taken, rng),
                AttackVariant::Own => from_inside(detonation, victims, window, members, own, &taken, rng),
            };
            let Some(Chosen { member, start, disguise }) = chosen else { continue };
            taken[member] = true;
            let incident_id = format!("inc-{:04}", first_number + spliced.labels.len());
            let identity = &members[member].identity;
            let events = episode(detonation, &incident_id, start, &disguise, identity, variant);
            spliced.labels.push(Label {
                incident_id,
                class: IncidentClass::RealAttack,
                identity: identity.name.clone(),
                start: events.first().map_or(start, |e| e.time),
                end: events.last().map_or(start, |e| e.time),
                event_ids: events.iter().map(|e| e.event_id.to_string()).collect(),
                technique: Some(detonation.technique.clone()),
                variant: Some(variant),
            });
            spliced.events.extend(events);
        }
    }
    spliced
}

/// A victim, when its attack starts, and who the calls appear to come from: an event
/// whose who-and-where fields every call of the episode takes.
struct Chosen {
    member: usize,
    start: Millis,
    disguise: AccessEvent,
}

/// A stolen credential used elsewhere, at any hour of any day of the evaluation period.
fn foreign(
    detonation: &Detonation,
    victims: Victims,
    window: (Millis, Millis),
    members: &mut [Member],
    own: &[&[AccessEvent]],
    taken: &[bool],
    rng: &mut Rng,
) -> Option<Chosen> {
    let at = rng.range(window.0 / SECOND, window.1 / SECOND) * SECOND;
    let fits = |i: usize| {
        !taken[i]
            && settled(&members[i].identity, at, at)
            && own[i].iter().any(|e| e.time < at)
            && !unused_networks(own[i]).is_empty()
    };
    let member = pick(victims, members, fits, rng)?;
    let identity = &mut members[member].identity;
    let live = identity.delegations_at(at).first().copied().unwrap_or(0);
    let delegation = identity.delegations[live].clone();
    let networks = unused_networks(own[member]);
    let source_ip = format!("{}.{}", rng.pick(&networks), rng.range(2, 250));
    // A new session of the role, named as its sessions are.
    let prefix =
        own[member].iter().find_map(|e| e.session_id.as_deref()?.rsplit_once('-')).map_or("session", |(p, _)| p);
    let session_id = identity.new_session(prefix);
    // A stolen access key, or session credentials valid an hour past the last call:
    // an episode that outlasted its token would show an expiry, not the attack.
    let (credential_id, credential_expires_at) = match identity.credentials {
        Credentials::Keys(_) => (key_id("AKIA", rng.next_u64()), None),
        _ => {
            let last = offsets(detonation).last().copied().unwrap_or(0);
            (key_id("ASIA", rng.next_u64()), Some(at + last + HOUR))
        }
    };
    let disguise = AccessEvent {
        identity: identity.name.as_str().into(),
        identity_type: Some(identity.kind.identity_type().into()),
        on_behalf_of: Some(delegation.on_behalf_of.into()),
        chain: delegation.chain.into_iter().map(EventText::from).collect(),
        grant_id: delegation.grant_id.map(EventText::from),
        credential_id: Some(credential_id.into()),
        credential_expires_at,
        environment: usual_environment(own[member], at).map(EventText::from),
        session_id: Some(session_id.into()),
        source_ip: Some(source_ip.into()),
        ..AccessEvent::default()
    };
    Some(Chosen { member, start: at, disguise })
}

/// Abuse from inside the runner or pod: 1 to 5 minutes after one of the identity's
/// own calls in the evaluation period, as that call: same session, credential,
/// address and client. Only calls whose credential outlives the episode qualify: a
/// token past its expiry would be refused, and would show an expiry, not the attack.
fn from_inside(
    detonation: &Detonation,
    victims: Victims,
    window: (Millis, Millis),
    members: &[Member],
    own: &[&[AccessEvent]],
    taken: &[bool],
    rng: &mut Rng,
) -> Option<Chosen> {
    let (earliest, latest) = (MINUTE, 5 * MINUTE);
    let span = offsets(detonation).last().copied().unwrap_or(0);
    let anchors = |i: usize| {
        let identity = &members[i].identity;
        own[i].iter().filter(move |e| {
            window.0 <= e.time
                && e.time < window.1
                && settled(identity, e.time, e.time)
                && e.credential_expires_at.is_none_or(|expiry| e.time + latest + span < expiry)
        })
    };
    let member = pick(victims, members, |i| !taken[i] && anchors(i).next().is_some(), rng)?;
    let candidates: Vec<&AccessEvent> = anchors(member).collect();
    let anchor = *rng.pick(&candidates);
    let start = anchor.time + rng.range(earliest / SECOND, latest / SECOND + 1) * SECOND;
    Some(Chosen { member, start, disguise: anchor.clone() })
}

/// A free identity that fits, from the wanted population, else from the other.
fn pick(victims: Victims, members: &[Member], fits: impl Fn(usize) -> bool, rng: &mut Rng) -> Option<usize> {
    [victims, victims.other()].into_iter().find_map(|population| {
        let eligible: Vec<usize> =
            (0..members.len()).filter(|&i| population.admit(members[i].identity.kind) && fits(i)).collect();
        (!eligible.is_empty()).then(|| *rng.pick(&eligible))
    })
}

/// The detonation's calls, re-attributed: who and where from `disguise`, what from
/// the detonation, spaced as it was from `start`.
fn episode(
    detonation: &Detonation,
    incident_id: &str,
    start: Millis,
    disguise: &AccessEvent,
    identity: &Identity,
    variant: AttackVariant,
) -> Vec<AccessEvent> {
    let width = detonation.calls.len().to_string().len();
    let victim_account = match disguise.environment.as_deref() {
        Some(environment) => account(environment),
        None => identity.name.split(':').nth(4).unwrap_or_default(),
    };
    detonation
        .calls
        .iter()
        .zip(offsets(detonation))
        .enumerate()
        .map(|(n, (call, offset))| {
            let user_agent = match variant {
                AttackVariant::Foreign => call.event.user_agent.clone(),
                AttackVariant::Own => disguise.user_agent.clone(),
            };
            AccessEvent {
                event_id: compact_str::format_compact!("{incident_id}-{:0width$}", n + 1),
                time: start + offset,
                target: call.event.target.clone(),
                action: call.event.action.clone(),
                resource: call
                    .event
                    .resource
                    .as_deref()
                    .map(|r| rehome(r, call, victim_account, identity.region).into()),
                outcome: call.event.outcome,
                user_agent,
                ..disguise.clone()
            }
        })
        .collect()
}

/// Each call's time after the first, as detonated, with every pause cut to [`MAX_GAP`].
fn offsets(detonation: &Detonation) -> Vec<Millis> {
    let times: Vec<Millis> = detonation.calls.iter().map(|c| c.event.time).collect();
    let mut offset = 0;
    let gaps = times.windows(2).map(|w| (w[1] - w[0]).clamp(0, MAX_GAP));
    std::iter::once(0)
        .chain(gaps.map(|gap| {
            offset += gap;
            offset
        }))
        .collect()
}

/// An ARN of the detonation's account and region, moved to the victim's; other
/// resource names are kept as they are.
fn rehome(resource: &str, call: &DetonationCall, account: &str, region: &str) -> String {
    let mut fields: Vec<&str> = resource.splitn(6, ':').collect();
    if fields.len() < 6 || fields[0] != "arn" {
        return resource.to_string();
    }
    if call.region.as_deref() == Some(fields[3]) {
        fields[3] = region;
    }
    if call.account.as_deref() == Some(fields[4]) {
        fields[4] = account;
    }
    fields.join(":")
}

/// Hosting-provider /24s none of these events came from.
fn unused_networks(own: &[AccessEvent]) -> Vec<&'static str> {
    HOSTILE_NETWORKS
        .into_iter()
        .filter(|network| {
            !own.iter().any(|e| {
                e.source_ip
                    .as_deref()
                    .is_some_and(|ip| ip.strip_prefix(network).is_some_and(|host| host.starts_with('.')))
            })
        })
        .collect()
}

/// The environment most of the identity's calls before `at` went to (the first by
/// name on a tie).
fn usual_environment(own: &[AccessEvent], at: Millis) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for environment in own.iter().filter(|e| e.time < at).filter_map(|e| e.environment.as_deref()) {
        *counts.entry(environment).or_default() += 1;
    }
    let most = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, n)| n == most).map(|(environment, _)| environment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn call(time: Millis, action: &str, resource: Option<&str>) -> DetonationCall {
        DetonationCall {
            event: AccessEvent {
                event_id: "orig".into(),
                time,
                identity: "arn:aws:iam::229654561268:user/christophe".into(),
                target: "iam.amazonaws.com".into(),
                action: action.into(),
                resource: resource.map(Into::into),
                user_agent: Some("stratus".into()),
                outcome: Outcome::Denied,
                ..AccessEvent::default()
            },
            account: Some("229654561268".into()),
            region: Some("ap-isob-central-3r".into()),
        }
    }

    #[test]
    fn an_episode_keeps_order_and_spacing_with_long_gaps_cut() {
        let detonation = Detonation {
            technique: "t".into(),
            calls: (0..12)
                .map(|i| {
                    call(
                        [0, 5, 5, 3_600, 3_601, 3_602, 3_603, 3_604, 3_605, 3_606, 3_607, 3_608][i] * SECOND,
                        "A",
                        None,
                    )
                })
                .collect(),
        };
        let identity = Identity::new(0, Kind::Pipeline, "arn:aws:iam::104729384756:role/ci/x".into(), "eu-west-1", 1);
        let disguise = AccessEvent {
            identity: identity.name.as_str().into(),
            session_id: Some("run-1".into()),
            source_ip: Some("10.0.0.1".into()),
            user_agent: Some("own-client".into()),
            environment: Some("prod".into()),
            ..AccessEvent::default()
        };
        let start = 1_000_000 * SECOND;
        let events = episode(&detonation, "inc-0042", start, &disguise, &identity, AttackVariant::Own);
        let offsets: Vec<Millis> = events.iter().map(|e| (e.time - start) / SECOND).collect();
        assert_eq!(offsets, [0, 5, 5, 605, 606, 607, 608, 609, 610, 611, 612, 613]);
        assert_eq!(events[0].event_id, "inc-0042-01");
        assert_eq!(events[11].event_id, "inc-0042-12");
        assert!(events.iter().all(|e| e.user_agent.as_deref() == Some("own-client") && e.outcome == Outcome::Denied));
        assert!(events.iter().all(|e| e.session_id.as_deref() == Some("run-1") && e.identity == identity.name));
        let foreign = episode(&detonation, "inc-0042", start, &disguise, &identity, AttackVariant::Foreign);
        assert_eq!(foreign[0].user_agent.as_deref(), Some("stratus"), "the attacker's own client");
    }

    #[test]
    fn resources_move_to_the_victims_account_and_region() {
        let c = call(0, "A", None);
        let prod = account("prod");
        assert_eq!(
            rehome("arn:aws:ssm:ap-isob-central-3r:229654561268:parameter/a/b:c", &c, prod, "eu-west-1"),
            format!("arn:aws:ssm:eu-west-1:{prod}:parameter/a/b:c")
        );
        assert_eq!(
            rehome("arn:aws:iam::229654561268:user/new", &c, prod, "eu-west-1"),
            format!("arn:aws:iam::{prod}:user/new")
        );
        assert_eq!(
            rehome("arn:aws:iam::aws:policy/AdministratorAccess", &c, prod, "x"),
            "arn:aws:iam::aws:policy/AdministratorAccess"
        );
        assert_eq!(rehome("malicious-iam-user", &c, prod, "eu-west-1"), "malicious-iam-user");
    }

    #[test]
    fn networks_and_environments_come_from_the_identitys_own_history() {
        let event = |time, ip: &str, env: &str| AccessEvent {
            time,
            source_ip: Some(ip.into()),
            environment: Some(env.into()),
            ..AccessEvent::default()
        };
        let own = [
            event(1, "45.137.21.9", "dev"),
            event(2, "45.137.210.9", "prod"),
            event(3, "10.0.0.1", "prod"),
            event(9, "1.1.1.1", "staging"),
            event(10, "1.1.1.1", "staging"),
            event(11, "1.1.1.1", "staging"),
        ];
        let unused = unused_networks(&own);
        assert!(!unused.contains(&"45.137.21"), "used");
        assert_eq!(unused.len(), HOSTILE_NETWORKS.len() - 1, "45.137.210.9 is another /24");
        assert_eq!(usual_environment(&own, 5).as_deref(), Some("prod"));
        assert_eq!(usual_environment(&own, 2).as_deref(), Some("dev"));
        assert_eq!(usual_environment(&own, 1), None);
    }

    #[test]
    fn variants_of_a_technique_land_on_different_populations() {
        assert_eq!(Victims::alternate(0), Victims::QuietCi);
        assert_eq!(Victims::alternate(1), Victims::BusyWorkload);
        assert_eq!(Victims::alternate(0).other(), Victims::BusyWorkload);
        assert!(Victims::QuietCi.admit(Kind::Pipeline) && !Victims::QuietCi.admit(Kind::Federated));
        assert!(!Victims::BusyWorkload.admit(Kind::Agent), "agents are neither");
    }
}
