//! The identities of the simulated organisation and what every kind shares:
//! delegations (each backed by a grant), sources, credentials, and the way one
//! identity's calls become [`AccessEvent`]s.

use super::rng::{mix, Rng};
use crate::model::{AccessEvent, EventText, Millis, Outcome};
use crate::time::{format_rfc3339, DAY, HOUR, MINUTE};
use serde_json::{json, Value};

/// The five ways organisations delegate trust to machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipeline,
    Agent,
    Integration,
    DataPlatform,
    Federated,
}

impl Kind {
    /// Shares of the fleet, in the order identities are assigned.
    pub const MIX: [(Kind, u64); 5] = [
        (Kind::Pipeline, 25),
        (Kind::Agent, 15),
        (Kind::Integration, 20),
        (Kind::DataPlatform, 15),
        (Kind::Federated, 25),
    ];

    /// The stable `identity_type` of every event of this kind.
    pub fn identity_type(self) -> &'static str {
        match self {
            Kind::Pipeline => "ci_pipeline",
            Kind::Agent => "ai_agent",
            Kind::Integration => "saas_integration",
            Kind::DataPlatform => "data_platform",
            Kind::Federated => "federated_workload",
        }
    }
}

/// Accounts by environment: each environment is its own AWS account, so an
/// environment shows in resource ARNs too (which CloudTrail keeps).
pub const ACCOUNTS: [(&str, &str); 4] =
    [("tooling", "104729384756"), ("dev", "210938475610"), ("staging", "318274659012"), ("prod", "427365901834")];

pub fn account(environment: &str) -> &'static str {
    ACCOUNTS.iter().find(|(env, _)| *env == environment).map_or(ACCOUNTS[0].1, |(_, acct)| acct)
}

/// One downstream call as a kind describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub target: &'static str,
    pub action: &'static str,
    pub resource: Option<String>,
}

impl Call {
    pub fn new(target: &'static str, action: &'static str, resource: Option<String>) -> Call {
        Call { target, action, resource }
    }
}

/// One session as a kind plans it: for whom, in which environment, and its
/// calls with their times.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Session ids start with this (`run`, `task`, `sync`, `job`, `req`).
    pub prefix: &'static str,
    pub delegation: usize,
    pub environment: Option<String>,
    pub calls: Vec<(Millis, Call)>,
}

impl Plan {
    pub fn start(&self) -> Millis {
        self.calls.first().map_or(0, |(t, _)| *t)
    }

    pub fn end(&self) -> Millis {
        self.calls.last().map_or(0, |(t, _)| *t)
    }
}

/// Acting for one delegator, under one grant.
#[derive(Debug, Clone)]
pub struct Delegation {
    pub on_behalf_of: String,
    pub chain: Vec<String>,
    /// `None` when the identity acts for a delegator without any grant.
    pub grant_id: Option<String>,
    /// The identity acts for this delegation in [since, until): a grant starts to
    /// apply, and a re-approval replaces it with a new one.
    pub since: Millis,
    pub until: Millis,
}

impl Delegation {
    pub fn new(on_behalf_of: String, chain: Vec<String>, grant_id: String, since: Millis) -> Delegation {
        Delegation { on_behalf_of, chain, grant_id: Some(grant_id), since, until: Millis::MAX }
    }
}

/// Where calls come from: an IPv4 /24, a few hosts in it, and a client.
#[derive(Debug, Clone)]
pub struct Source {
    pub prefix: String,
    pub hosts: Vec<u8>,
    pub user_agent: String,
    pub from: Millis,
    pub until: Millis,
}

impl Source {
    pub fn new(prefix: String, hosts: Vec<u8>, user_agent: &str) -> Source {
        Source { prefix, hosts, user_agent: user_agent.to_string(), from: Millis::MIN, until: Millis::MAX }
    }

    pub fn ip(&self, rng: &mut Rng) -> String {
        format!("{}.{}", self.prefix, rng.pick(&self.hosts))
    }
}

/// A long-lived access key, in use from `from` on.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub from: Millis,
}

/// How a kind's credentials live.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Long-lived access keys, rotated now and then (the newest one in use).
    Keys(Vec<Key>),
    /// Short-lived STS credentials, one per run, issued when the run starts.
    PerSession { lifetime: Millis },
    /// Short-lived STS credentials refreshed every `every`, each valid a little longer.
    Refreshed { every: Millis, lifetime: Millis },
}

/// The credential an event carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub id: String,
    pub expires_at: Option<Millis>,
}

/// Everything one session's calls share.
#[derive(Debug, Clone)]
pub struct Context {
    pub session_id: String,
    pub delegation: usize,
    pub source: Source,
    pub credential: Credential,
    pub environment: Option<String>,
}

/// One machine identity and its life in the simulated window.
#[derive(Debug, Clone)]
pub struct Identity {
    pub index: usize,
    pub kind: Kind,
    /// Role ARN (user ARN for integrations holding access keys), as CloudTrail names it.
    pub name: String,
    pub region: &'static str,
    pub delegations: Vec<Delegation>,
    pub sources: Vec<Source>,
    pub credentials: Credentials,
    /// Normal activity happens inside [from, until).
    pub active_from: Millis,
    pub active_until: Millis,
    /// Stretches without normal activity (a release freeze, an abandoned identity).
    pub quiet: Vec<(Millis, Millis)>,
    /// A fleet-wide release that adds one call for this identity from a time on.
    pub drift: Option<(Millis, Call)>,
    salt: u64,
    events_made: u64,
    sessions_made: u64,
}

impl Identity {
    pub fn new(index: usize, kind: Kind, name: String, region: &'static str, seed: u64) -> Identity {
        Identity {
            index,
            kind,
            name,
            region,
            delegations: Vec::new(),
            sources: Vec::new(),
            credentials: Credentials::PerSession { lifetime: HOUR },
            active_from: Millis::MIN,
            active_until: Millis::MAX,
            quiet: Vec::new(),
            drift: None,
            salt: mix(seed ^ 0xE7E7_0000_0000_0000),
            events_made: 0,
            sessions_made: 0,
        }
    }

    /// Declares a delegation: the grant record (into `records`), and the delegation
    /// the identity acts under from `since`, its chain reaching it through `hop`.
    pub fn delegate(&mut self, grant: &GrantSpec, hop: &str, since: Millis, records: &mut Vec<(Millis, Value)>) {
        records.push((grant.time, grant.to_json(&self.name)));
        let delegator = grant.on_behalf_of.to_string();
        let chain = vec![delegator.clone(), hop.to_string()];
        self.delegations.push(Delegation::new(delegator, chain, grant.grant_id.to_string(), since));
    }

    /// Whether normal behaviour runs at `t`.
    pub fn is_active(&self, t: Millis) -> bool {
        self.active_from <= t && t < self.active_until && !self.quiet.iter().any(|&(a, b)| a <= t && t < b)
    }

    /// The delegations in force at `t`.
    pub fn delegations_at(&self, t: Millis) -> Vec<usize> {
        (0..self.delegations.len())
            .filter(|&i| self.delegations[i].since <= t && t < self.delegations[i].until)
            .collect()
    }

    pub fn source_at(&self, t: Millis, rng: &mut Rng) -> Source {
        let live: Vec<&Source> = self.sources.iter().filter(|s| s.from <= t && t < s.until).collect();
        let live = if live.is_empty() { self.sources.iter().collect() } else { live };
        (*rng.pick(&live)).clone()
    }

    /// The calls of the fleet-wide release, once it reached this identity.
    pub fn drift_at(&self, t: Millis) -> Option<&Call> {
        self.drift.as_ref().filter(|(since, _)| *since <= t).map(|(_, call)| call)
    }

    /// A fresh session id; unique per identity (and, for the salt, per run).
    pub fn new_session(&mut self, prefix: &str) -> String {
        self.sessions_made += 1;
        format!("{prefix}-{:012x}", mix(self.salt ^ ((self.index as u64) << 32) ^ self.sessions_made) >> 16)
    }

    /// The credential a session started at `session_start` holds at `t`.
    pub fn credential_at(&self, t: Millis, session_start: Millis) -> Credential {
        match &self.credentials {
            Credentials::Keys(keys) => {
                let key = keys.iter().rev().find(|k| k.from <= t).unwrap_or(&keys[0]);
                Credential { id: key.id.clone(), expires_at: None }
            }
            Credentials::PerSession { lifetime } => self.sts_credential(session_start, *lifetime),
            Credentials::Refreshed { every, lifetime } => self.sts_credential(t.div_euclid(*every) * every, *lifetime),
        }
    }

    /// The STS credential issued to this identity at `issued`.
    pub fn sts_credential(&self, issued: Millis, lifetime: Millis) -> Credential {
        let id = key_id("ASIA", mix(self.salt ^ ((self.index as u64) << 40) ^ issued as u64));
        Credential { id, expires_at: Some(issued + lifetime) }
    }

    /// Starts a planned session: a new id, a source and the credential it holds.
    pub fn context(&mut self, plan: &Plan, rng: &mut Rng) -> Context {
        let t = plan.start();
        Context {
            session_id: self.new_session(plan.prefix),
            delegation: plan.delegation,
            source: self.source_at(t, rng),
            credential: self.credential_at(t, t),
            environment: plan.environment.clone(),
        }
    }

    /// The events of a planned session run in `ctx`.
    pub fn emit(&mut self, plan: &Plan, ctx: &Context, rng: &mut Rng) -> Vec<AccessEvent> {
        plan.calls.iter().map(|(t, call)| self.event(*t, call, ctx, rng)).collect()
    }

    /// One call of a session at `t`, as the downstream system logs it.
    pub fn event(&mut self, t: Millis, call: &Call, ctx: &Context, rng: &mut Rng) -> AccessEvent {
        self.events_made += 1;
        let delegation = &self.delegations[ctx.delegation];
        let credential = match &self.credentials {
            // Refreshed credentials change within a long session; per-run ones do not.
            Credentials::Refreshed { .. } => self.credential_at(t, t),
            _ => ctx.credential.clone(),
        };
        AccessEvent {
            event_id: self.event_id(self.events_made).into(),
            time: t,
            identity: self.name.as_str().into(),
            identity_type: Some(self.kind.identity_type().into()),
            on_behalf_of: Some(delegation.on_behalf_of.as_str().into()),
            chain: delegation.chain.iter().map(|hop| hop.as_str().into()).collect(),
            grant_id: delegation.grant_id.as_deref().map(EventText::from),
            credential_id: Some(credential.id.into()),
            credential_expires_at: credential.expires_at,
            target: call.target.into(),
            action: call.action.into(),
            resource: call.resource.as_deref().map(EventText::from),
            environment: ctx.environment.as_deref().map(EventText::from),
            // Native output names no region, so simulated files stay as they were; the
            // CloudTrail form still writes `awsRegion` from the resource's ARN.
            region: None,
            session_id: Some(ctx.session_id.as_str().into()),
            source_ip: Some(ctx.source.ip(rng).into()),
            user_agent: Some(ctx.source.user_agent.as_str().into()),
            outcome: Outcome::Success,
        }
    }

    /// Event ids look opaque, like a log's, yet never collide: `mix` is a bijection
    /// and (index, count) is unique.
    fn event_id(&self, n: u64) -> String {
        let a = mix(self.salt ^ ((self.index as u64) << 36 | n));
        let b = mix(a ^ self.salt);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 50),
            b & 0xffff_ffff_ffff
        )
    }
}

/// An AWS-style key id: a prefix and 16 characters of base32.
pub fn key_id(prefix: &str, x: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = (x as u128) << 16 | (mix(x) & 0xffff) as u128;
    let body: String = (0..16).map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char).collect();
    format!("{prefix}{body}")
}

/// Spreads a fleet-wide change over a day or two, as a real rollout does.
pub fn rollout_time(at: Millis, rng: &mut Rng) -> Millis {
    at + rng.range(0, 2 * DAY / MINUTE) * MINUTE
}

/// A grant record in the grants format.
pub struct GrantSpec<'a> {
    pub time: Millis,
    pub grant_id: &'a str,
    pub on_behalf_of: &'a str,
    pub targets: Vec<&'a str>,
    pub actions: Vec<&'a str>,
    pub resources: Vec<String>,
    pub environments: Vec<&'a str>,
    pub expires_at: Option<Millis>,
    pub windows: Vec<Value>,
}

impl GrantSpec<'_> {
    pub fn to_json(&self, identity: &str) -> Value {
        let mut targets = self.targets.clone();
        targets.sort_unstable();
        targets.dedup();
        let mut actions = self.actions.clone();
        actions.sort_unstable();
        actions.dedup();
        let mut grant = json!({
            "kind": "grant",
            "time": format_rfc3339(self.time),
            "grant_id": self.grant_id,
            "identity": identity,
            "on_behalf_of": self.on_behalf_of,
            "scope": {"targets": targets, "actions": actions, "resources": self.resources, "environments": self.environments},
            "not_before": format_rfc3339(self.time),
        });
        if let Some(expires) = self.expires_at {
            grant["expires_at"] = json!(format_rfc3339(expires));
        }
        if !self.windows.is_empty() {
            grant["windows"] = json!(self.windows);
        }
        grant
    }
}

pub fn grant_ended(time: Millis, grant_id: &str, reason: &str) -> Value {
    json!({"kind": "grant_ended", "time": format_rfc3339(time), "grant_id": grant_id, "reason": reason})
}

pub fn identity_offboarded(time: Millis, identity: &str) -> Value {
    json!({"kind": "identity_offboarded", "time": format_rfc3339(time), "identity": identity})
}

pub fn credential_revoked(time: Millis, credential_id: &str) -> Value {
    json!({"kind": "credential_revoked", "time": format_rfc3339(time), "credential_id": credential_id})
}

/// Retires an identity properly: the grant ends, the identity is offboarded, and it
/// falls silent.
pub fn retire(identity: &mut Identity, at: Millis, records: &mut Vec<(Millis, Value)>) {
    identity.active_until = identity.active_until.min(at);
    for grant_id in identity.delegations.iter().filter(|d| d.until > at).filter_map(|d| d.grant_id.as_ref()) {
        records.push((at, grant_ended(at, grant_id, "purpose_ended")));
    }
    records.push((at + MINUTE, identity_offboarded(at + MINUTE, &identity.name)));
}
