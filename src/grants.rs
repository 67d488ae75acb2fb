//! Declared delegations and lifecycle facts: what each identity may do, and
//! what has ended. The declared detectors ask the registry; they learn nothing.

use crate::baseline::intern::FastMap;
use crate::model::{Grant, GrantEndReason, Lifecycle, Millis, Scope, TimeWindow};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A grant as the registry knows it: when it was declared, and whether it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantState {
    pub grant: Grant,
    /// Event time the grant was declared; `None` for a static policy grant.
    pub declared_at: Option<Millis>,
    pub ended: Option<(Millis, GrantEndReason)>,
    /// The scope's patterns, split for matching: derived from `grant.scope` (`Registry::insert`).
    #[serde(skip)]
    patterns: ScopePatterns,
}

/// A scope's patterns by axis, ready to match (see `Patterns`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopePatterns {
    pub targets: Patterns,
    pub actions: Patterns,
    pub resources: Patterns,
    pub environments: Patterns,
}

impl ScopePatterns {
    fn of(scope: &Scope) -> ScopePatterns {
        ScopePatterns {
            targets: Patterns::of(&scope.targets),
            actions: Patterns::of(&scope.actions),
            resources: Patterns::of(&scope.resources),
            environments: Patterns::of(&scope.environments),
        }
    }
}

/// One axis of a scope: plain names apart from globs. Most patterns are plain
/// names, and a name of another length is ruled out without reading it; this
/// runs for every pattern of every live grant on every call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patterns {
    names: Vec<Box<str>>,
    globs: Vec<Glob>,
}

impl Patterns {
    fn of(patterns: &[String]) -> Patterns {
        let (globs, names): (Vec<&String>, Vec<&String>) = patterns.iter().partition(|p| is_glob(p));
        Patterns {
            names: names.into_iter().map(|n| Box::from(n.as_str())).collect(),
            globs: globs.into_iter().map(|g| Glob::new(g)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.globs.is_empty()
    }

    /// True when some pattern matches `text` (`glob_match`, ignoring ASCII case if `fold_case`).
    pub fn matches(&self, text: &str, fold_case: bool) -> bool {
        let same_name = |name: &str| {
            name.len() == text.len() && if fold_case { name.eq_ignore_ascii_case(text) } else { name == text }
        };
        self.names.iter().any(|n| same_name(n)) || self.globs.iter().any(|g| g.matches(text, fold_case))
    }
}

/// A scope glob with its literal start (up to the first wildcard) apart. Most are a
/// literal and a final `*` (`s3:Get*`, `arn:aws:s3:::bucket/*`): that start is compared
/// at once, not a byte at a time by the matcher, which was half of matching a scope.
#[derive(Debug, Clone, PartialEq)]
struct Glob {
    pattern: Box<str>,
    literal: usize,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob { pattern: pattern.into(), literal: pattern.find(['*', '?']).unwrap_or(pattern.len()) }
    }

    /// `glob_match` (or `glob_match_ignore_case` if `fold_case`) of the pattern and `text`.
    fn matches(&self, text: &str, fold_case: bool) -> bool {
        let (pattern, text) = (self.pattern.as_bytes(), text.as_bytes());
        let Some(start) = text.get(..self.literal) else { return false };
        let (literal, pattern, text) = (&pattern[..self.literal], &pattern[self.literal..], &text[self.literal..]);
        if fold_case {
            literal.eq_ignore_ascii_case(start) && glob_match_by(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
        } else {
            literal == start && glob_match_by(pattern, text, |a, b| a == b)
        }
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

impl GrantState {
    /// When and why the grant stopped being usable, if it had by `t`.
    pub fn ended_by(&self, t: Millis) -> Option<(Millis, GrantEndReason)> {
        let explicit = self.ended.filter(|(at, _)| *at <= t);
        let expired = self.grant.expires_at.filter(|at| *at <= t).map(|at| (at, GrantEndReason::Expired));
        match (explicit, expired) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn declared_by(&self, t: Millis) -> bool {
        self.declared_at.is_none_or(|at| at <= t)
    }

    pub fn patterns(&self) -> &ScopePatterns {
        &self.patterns
    }

    /// True when the grant's dates and windows admit a call at `t`.
    pub fn admits_time(&self, t: Millis) -> bool {
        self.grant.not_before.is_none_or(|nb| nb <= t)
            && (self.grant.windows.is_empty() || self.grant.windows.iter().any(|w| in_window(w, t)))
    }
}

/// The lifecycle facts known so far, in event time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    grants: GrantTable,
    #[serde(serialize_with = "crate::baseline::sorted::serialize")]
    offboarded: FastMap<String, Millis>,
    #[serde(serialize_with = "crate::baseline::sorted::serialize")]
    revoked: FastMap<String, Millis>,
    #[serde(serialize_with = "crate::baseline::sorted::serialize")]
    expiries: FastMap<String, Millis>,
    /// Grants (their places in `grants`) by exact identity, and those whose identity is a
    /// glob: derived from `grants`, so a call looks up its grants without a scan.
    #[serde(skip)]
    by_identity: FastMap<String, Vec<usize>>,
    #[serde(skip)]
    glob_grants: Vec<usize>,
    /// The last segment of each offboarded key (`last_segment`), and some of keys no
    /// longer held: asked on every call, building an identity's key cost an allocation
    /// each time; an identity whose last segment is not here was not offboarded.
    #[serde(skip)]
    offboarded_names: FastMap<String, ()>,
}

/// Grants by id, each in a place of its own that never changes (grants are replaced, never
/// removed): the identity index holds places, so a call finds its grants with one lookup
/// of its identity, not one more of each grant's id. Saved as a map by id, sorted.
#[derive(Debug, Clone, Default)]
struct GrantTable {
    states: Vec<GrantState>,
    places: FastMap<String, usize>,
}

impl GrantTable {
    fn get(&self, id: &str) -> Option<&GrantState> {
        self.places.get(id).map(|&at| &self.states[at])
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut GrantState> {
        self.places.get(id).map(|&at| &mut self.states[at])
    }

    /// Puts `state` in its id's place: the place, and the grant it replaced if any.
    fn insert(&mut self, state: GrantState) -> (usize, Option<GrantState>) {
        match self.places.get(&state.grant.grant_id) {
            Some(&at) => (at, Some(std::mem::replace(&mut self.states[at], state))),
            None => {
                self.places.insert(state.grant.grant_id.clone(), self.states.len());
                self.states.push(state);
                (self.states.len() - 1, None)
            }
        }
    }
}

/// The same grants, whatever places they hold.
impl PartialEq for GrantTable {
    fn eq(&self, other: &GrantTable) -> bool {
        self.states.len() == other.states.len()
            && self.states.iter().all(|s| other.get(&s.grant.grant_id).is_some_and(|o| o == s))
    }
}

impl Serialize for GrantTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let by_id: std::collections::BTreeMap<&str, &GrantState> =
            self.states.iter().map(|state| (state.grant.grant_id.as_str(), state)).collect();
        by_id.serialize(s)
    }
}

/// In the order of their ids, as saved; `Registry::reindex` derives the rest.
impl<'de> Deserialize<'de> for GrantTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GrantTable, D::Error> {
        let by_id = std::collections::BTreeMap::<String, GrantState>::deserialize(d)?;
        let mut table = GrantTable::default();
        for state in by_id.into_values() {
            table.insert(state);
        }
        Ok(table)
    }
}

/// The same facts, whatever order the indexes derived from them hold (a registry read
/// back from a save lists its grants by id, one built from events as they were declared).
impl PartialEq for Registry {
    fn eq(&self, other: &Registry) -> bool {
        self.grants == other.grants
            && self.offboarded == other.offboarded
            && self.revoked == other.revoked
            && self.expiries == other.expiries
    }
}

/// Which of an identity's grants bear on one call. Kept inline up to a few grants (an
/// identity mostly has one or two): asked on every call, two vectors on the heap were
/// two of its dozen allocations.
pub struct Applicable<'a> {
    /// Grants naming this identity (or the call's `grant_id`) declared by the call's time.
    pub all: SmallVec<[&'a GrantState; 4]>,
    /// Those not ended or expired at the call's time.
    pub live: SmallVec<[&'a GrantState; 4]>,
}

impl Registry {
    pub fn add_static(&mut self, grants: Vec<Grant>) {
        for grant in grants {
            self.insert(GrantState { grant, declared_at: None, ended: None, patterns: ScopePatterns::default() });
        }
    }

    fn insert(&mut self, mut state: GrantState) {
        state.patterns = ScopePatterns::of(&state.grant.scope);
        let identity = state.grant.identity.clone();
        let (at, old) = self.grants.insert(state);
        if let Some(old) = old {
            self.unindex(at, &old.grant.identity);
        }
        self.index(at, identity);
    }

    fn index(&mut self, at: usize, identity: String) {
        if is_glob(&identity) {
            self.glob_grants.push(at);
        } else {
            self.by_identity.entry(identity).or_default().push(at);
        }
    }

    fn unindex(&mut self, at: usize, identity: &str) {
        self.glob_grants.retain(|&g| g != at);
        if let Some(places) = self.by_identity.get_mut(identity) {
            places.retain(|&g| g != at);
        }
    }

    /// Rebuilds the lookup indexes after the registry was deserialized (in the order of
    /// the grants' ids, as saved: the glob grants' order is the order `applicable` lists
    /// them in), and each grant's patterns.
    pub fn reindex(&mut self) {
        self.by_identity.clear();
        self.glob_grants.clear();
        for at in 0..self.grants.states.len() {
            let state = &mut self.grants.states[at];
            state.patterns = ScopePatterns::of(&state.grant.scope);
            let identity = state.grant.identity.clone();
            self.index(at, identity);
        }
        self.index_offboarded_names();
    }

    fn index_offboarded_names(&mut self) {
        self.offboarded_names = self.offboarded.keys().map(|key| (last_segment(key).to_string(), ())).collect();
    }

    pub fn apply(&mut self, time: Millis, fact: &Lifecycle) {
        match fact {
            Lifecycle::Grant(g) => {
                self.insert(GrantState {
                    grant: g.clone(),
                    declared_at: Some(time),
                    ended: None,
                    patterns: ScopePatterns::default(),
                });
            }
            Lifecycle::GrantEnded { grant_id, reason } => {
                if let Some(state) = self.grants.get_mut(grant_id) {
                    state.ended = Some((time, *reason));
                }
            }
            // An end holds from the first time it was recorded: a second record of it, later
            // in event time (a retry, a duplicate, a hostile grants stream), must not excuse
            // the calls in between that are judged after it. Only an activation, which the
            // logs state for a create or enable call (never the grants file), lifts it.
            Lifecycle::IdentityOffboarded { identity } => {
                let key = offboard_key(identity).into_owned();
                self.offboarded_names.insert(last_segment(&key).to_string(), ());
                keep_earliest(&mut self.offboarded, key, time, "offboardings");
                // Activations and the bound forget keys and leave their names, which cost
                // only a lookup each, until there are many more names than keys.
                if self.offboarded_names.len() > 2 * self.offboarded.len() + 64 {
                    self.index_offboarded_names();
                }
            }
            Lifecycle::IdentityActivated { identity } => lift(&mut self.offboarded, &offboard_key(identity), time),
            Lifecycle::CredentialRevoked { credential_id } => {
                keep_earliest(&mut self.revoked, credential_id.clone(), time, "revocations");
            }
            Lifecycle::CredentialActivated { credential_id } => lift(&mut self.revoked, credential_id, time),
            // Every session an STS or token endpoint hands out is one: a busy organisation
            // issues hundreds of thousands a day, each kept until long past its expiry.
            Lifecycle::CredentialIssued { credential_id, expires_at, .. } => {
                self.expiries.insert(credential_id.clone(), *expires_at);
                forget_oldest(&mut self.expiries, MAX_FACTS, "credential expiries");
            }
        }
    }

    pub fn offboarded_at(&self, identity: &str, t: Millis) -> Option<Millis> {
        // Asked for every call: the key is built only for a name that was offboarded.
        if self.offboarded.is_empty() || !self.offboarded_names.contains_key(last_segment(identity)) {
            return None;
        }
        self.offboarded.get(offboard_key(identity).as_ref()).copied().filter(|at| *at <= t)
    }

    pub fn revoked_at(&self, credential: &str, t: Millis) -> Option<Millis> {
        self.revoked.get(credential).copied().filter(|at| *at <= t)
    }

    pub fn expiry(&self, credential: &str) -> Option<Millis> {
        self.expiries.get(credential).copied()
    }

    pub fn applicable(
        &self,
        identity: &str,
        grant_id: Option<&str>,
        on_behalf_of: Option<&str>,
        t: Millis,
    ) -> Applicable<'_> {
        let by_id = grant_id.and_then(|id| self.grants.get(id));
        // Without the call's grant: grants indexed under the identity name it exactly; only
        // the globs need matching.
        let by_identity = by_id.is_none().then(|| {
            let states = &self.grants.states;
            let named = self.by_identity.get(identity).into_iter().flatten().map(|&at| &states[at]);
            let globbed = self.glob_grants.iter().map(|&at| &states[at]);
            named.chain(globbed.filter(|s| glob_match(&s.grant.identity, identity))).filter(|s| {
                match (&s.grant.on_behalf_of, on_behalf_of) {
                    (Some(declared), Some(actual)) => glob_match(declared, actual),
                    _ => true,
                }
            })
        });
        let all: SmallVec<[&GrantState; 4]> =
            by_id.into_iter().chain(by_identity.into_iter().flatten()).filter(|s| s.declared_by(t)).collect();
        let live = all.iter().copied().filter(|s| s.ended_by(t).is_none()).collect();
        Applicable { all, live }
    }

    /// The delegators this identity's grants name (empty: grants name none, or
    /// there are no grants).
    pub fn declared_delegators(&self, identity: &str) -> Vec<&str> {
        self.applicable(identity, None, None, Millis::MAX)
            .all
            .iter()
            .filter_map(|s| s.grant.on_behalf_of.as_deref())
            .collect()
    }

    /// True when some grant of this identity declares that it acts for `delegator`.
    pub fn declares_delegator(&self, identity: &str, delegator: &str) -> bool {
        self.applicable(identity, None, None, Millis::MAX)
            .all
            .iter()
            .any(|s| s.grant.on_behalf_of.as_deref().is_some_and(|d| glob_match(d, delegator)))
    }

    /// Drops facts that can no longer matter: credential expiries long past.
    pub fn forget_before(&mut self, cutoff: Millis) {
        self.expiries.retain(|_, at| *at >= cutoff);
    }

    pub fn grant_count(&self) -> usize {
        self.grants.states.len()
    }
}

/// Most facts of each kind keyed by a name (offboarded identities, revoked credentials,
/// credential expiries) the registry holds. Each name is at most `max_field_bytes` long, so
/// a stream of distinct hostile facts costs a bounded map; an organisation's own ends over a
/// state's lifetime are far fewer. Past it the oldest go, for expiries the credentials that
/// expired longest ago: the least likely to be used again.
const MAX_FACTS: usize = 200_000;

fn keep_earliest(ends: &mut FastMap<String, Millis>, key: String, time: Millis, kind: &str) {
    let at = ends.entry(key).or_insert(time);
    *at = (*at).min(time);
    forget_oldest(ends, MAX_FACTS, kind);
}

/// Forgets the end of `key` recorded by `time`: an activation lifts an end before it, never
/// one after.
fn lift(ends: &mut FastMap<String, Millis>, key: &str, time: Millis) {
    if ends.get(key).is_some_and(|&at| at <= time) {
        ends.remove(key);
    }
}

/// Past `max` facts, forgets the oldest (then the lowest key: deterministic) down to `max`
/// less a sixteenth, so that a flood costs one pass per sixteenth of `max` new facts.
fn forget_oldest(ends: &mut FastMap<String, Millis>, max: usize, kind: &str) {
    if ends.len() <= max {
        return;
    }
    let mut by_age: Vec<(Millis, &String)> = ends.iter().map(|(key, &at)| (at, key)).collect();
    let excess = ends.len() - (max - max / 16);
    by_age.select_nth_unstable(excess - 1);
    let gone: Vec<String> = by_age[..excess].iter().map(|(_, key)| (*key).clone()).collect();
    for key in &gone {
        ends.remove(key);
    }
    tracing::warn!(
        kind,
        forgotten = gone.len(),
        kept = ends.len(),
        "Over {max} lifecycle facts of one kind: the oldest forgotten."
    );
}

/// AWS role and user ARNs may carry a path (`role/service-role/x`) where the
/// deletion event only names the role; both reduce to the ARN without the path.
fn offboard_key(identity: &str) -> std::borrow::Cow<'_, str> {
    let Some((_account, name)) = identity.strip_prefix("arn:aws:iam::").and_then(|rest| rest.split_once(':')) else {
        return identity.into();
    };
    match name.split_once('/') {
        Some(("role" | "user", path)) if path.contains('/') => {
            let last = path.rsplit('/').next().unwrap_or(path);
            // The identity up to its path is `arn:aws:iam::ACCOUNT:KIND/`. Joined without
            // `format!`: every call of every identity with a path looks its key up.
            let kind_end = identity.len() - path.len();
            [&identity[..kind_end], last].concat().into()
        }
        _ => identity.into(),
    }
}

/// What follows an identity's last `/` (all of it without one): the same for an identity
/// and its `offboard_key`.
fn last_segment(identity: &str) -> &str {
    identity.rsplit('/').next().unwrap_or(identity)
}

/// Checks a window's times are `HH:MM`; returns the reason when not.
pub fn check_window(w: &TimeWindow) -> Result<(), String> {
    for t in [&w.start, &w.end] {
        parse_hhmm(t).ok_or_else(|| format!("`{t}` is not a time of day HH:MM"))?;
    }
    for d in &w.days {
        if day_index(d).is_none() {
            return Err(format!("`{d}` is not a day (mon, tue, wed, thu, fri, sat, sun)"));
        }
    }
    Ok(())
}

/// "HH:MM" to minutes since midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    // Lazily: `h` may be any `u32` here, and `h * 60` would overflow before the check.
    (h < 24 && m < 60 && s.len() == 5).then(|| h * 60 + m)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(d: &str) -> Option<usize> {
    DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.get(..3).unwrap_or(d)))
}

/// True when `t` falls in the window (UTC). A window whose end is before its
/// start runs past midnight into the next day.
pub fn in_window(w: &TimeWindow, t: Millis) -> bool {
    let (day, minute) = crate::time::weekday_and_minute(t);
    let (Some(start), Some(end)) = (parse_hhmm(&w.start), parse_hhmm(&w.end)) else { return false };
    let on = |d: usize| w.days.is_empty() || w.days.iter().any(|x| day_index(x) == Some(d));
    if start <= end {
        on(day) && (start..end).contains(&minute)
    } else {
        (on(day) && minute >= start) || (on((day + 6) % 7) && minute < end)
    }
}

/// IAM-style glob: `*` matches any run of characters (including `/` and `:`),
/// `?` exactly one. Iterative, so hostile patterns cannot blow the stack.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob_match_by(pattern.as_bytes(), text.as_bytes(), |a, b| a == b)
}

/// `glob_match` ignoring ASCII case, without lowercased copies of either side (this runs
/// for every grant pattern on every call).
pub fn glob_match_ignore_case(pattern: &str, text: &str) -> bool {
    glob_match_by(pattern.as_bytes(), text.as_bytes(), |a, b| a.eq_ignore_ascii_case(&b))
}

fn glob_match_by(p: &[u8], t: &[u8], same: impl Fn(u8, u8) -> bool) -> bool {
    // Most globs end in `*` (`arn:aws:s3:::bucket/*`), and what is left once their literal
    // start matched is that star: it takes any text at once, not a byte at a time.
    if p.first() == Some(&b'*') && p.iter().all(|&c| c == b'*') {
        return true;
    }
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || same(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A static policy file: the same grants as grant events, without a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    grant: Vec<PolicyGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyGrant {
    grant_id: String,
    identity: String,
    on_behalf_of: Option<String>,
    #[serde(default)]
    scope: crate::model::Scope,
    not_before: Option<String>,
    expires_at: Option<String>,
    #[serde(default)]
    windows: Vec<TimeWindow>,
}

/// Reads `--policy delegations.toml`: `[[grant]]` tables with the fields of a
/// grant event (times as RFC 3339 strings).
pub fn load_policy(text: &str) -> Result<Vec<Grant>, String> {
    let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
    file.grant
        .into_iter()
        .map(|g| {
            let time = |field: &str, v: Option<String>| -> Result<Option<Millis>, String> {
                v.map(|s| {
                    crate::time::parse_rfc3339(&s)
                        .ok_or_else(|| format!("grant `{}`: `{field}` is not an RFC 3339 time: {s}", g.grant_id))
                })
                .transpose()
            };
            for w in &g.windows {
                check_window(w).map_err(|e| format!("grant `{}`: {e}", g.grant_id))?;
            }
            Ok(Grant {
                not_before: time("not_before", g.not_before.clone())?,
                expires_at: time("expires_at", g.expires_at.clone())?,
                grant_id: g.grant_id,
                identity: g.identity,
                on_behalf_of: g.on_behalf_of,
                scope: g.scope,
                windows: g.windows,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    #[test]
    fn globs_match_like_iam() {
        let cases = [
            ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c", true),
            ("arn:aws:s3:::bucket/*", "arn:aws:s3:::other/a", false),
            ("s3:Get*", "s3:GetObject", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("*a*b*c*", "xxaxxbxxc", true),
            ("*a*b*c*", "xxaxxcxxb", false),
            ("exact", "exact", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
            assert_eq!(glob_match_ignore_case(p, t), want, "{p} vs {t}, ignoring case");
        }
        assert!(glob_match_ignore_case("S3:get*", "s3:GetObject"));
        assert!(!glob_match("S3:get*", "s3:GetObject"));
        assert!(!glob_match_ignore_case("s3:Get?", "s3:Get"));
    }

    /// `*` any run of characters, `?` any one, the rest itself: glob matching by its definition.
    fn glob_by_definition(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|skip| glob_by_definition(rest, &t[skip..])),
            Some((&c, rest)) => t.first().is_some_and(|&d| c == '?' || c == d) && glob_by_definition(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        /// The matcher and its shortcuts (a glob of stars alone) agree with the definition.
        #[test]
        fn globs_match_by_their_definition(pattern in "[ab*?]{0,6}", text in "[ab]{0,8}") {
            let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
            proptest::prop_assert_eq!(glob_match(&pattern, &text), glob_by_definition(&p, &t));
        }

        /// A scope's glob, its literal start compared apart, matches as `glob_match` does.
        #[test]
        fn scope_globs_match_as_glob_match(pattern in "[aAb*?é]{0,6}", text in "[aAbBé]{0,8}") {
            let glob = Glob::new(&pattern);
            proptest::prop_assert_eq!(glob.matches(&text, false), glob_match(&pattern, &text));
            proptest::prop_assert_eq!(glob.matches(&text, true), glob_match_ignore_case(&pattern, &text));
        }
    }

    #[test]
    /// Only `HH:MM` is a time of day. An hour past `u32::MAX / 60` overflowed while the check
    /// was being made (cargo-fuzz's `grants` target found it; a panic in a debug build).
    fn times_of_day_are_hh_mm_only() {
        assert_eq!(parse_hhmm("08:30"), Some(510));
        for bad in ["24:00", "08:60", "8:30", "000000200000020:00", "4294967295:00", "08:30:00", "x"] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_follow_days_and_wrap_midnight() {
        let w = |days: &[&str], start: &str, end: &str| TimeWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
        };
        let t = |s: &str| parse_rfc3339(s).unwrap();
        // 2026-03-02 is a Monday.
        let release = w(&["mon", "wed"], "14:00", "16:00");
        assert!(in_window(&release, t("2026-03-02T14:00:00Z")));
        assert!(!in_window(&release, t("2026-03-02T16:00:00Z")));
        assert!(!in_window(&release, t("2026-03-03T15:00:00Z")));
        let night = w(&["fri"], "22:00", "02:00");
        assert!(in_window(&night, t("2026-03-06T23:00:00Z")));
        assert!(in_window(&night, t("2026-03-07T01:00:00Z")));
        assert!(!in_window(&night, t("2026-03-06T01:00:00Z")));
        assert!(check_window(&w(&["someday"], "10:00", "11:00")).is_err());
    }

    #[test]
    fn policy_files_parse_and_report_errors() {
        let grants = load_policy(
            r#"
            [[grant]]
            grant_id = "deploy"
            identity = "ci-*"
            expires_at = "2026-04-01T00:00:00Z"
            scope = { targets = ["s3"], resources = ["arn:aws:s3:::releases/*"] }
            windows = [{ days = ["mon"], start = "14:00", end = "16:00" }]
            "#,
        )
        .unwrap();
        assert_eq!(grants[0].scope.resources, vec!["arn:aws:s3:::releases/*"]);
        assert_eq!(grants[0].expires_at, parse_rfc3339("2026-04-01T00:00:00Z"));
        let err = load_policy("[[grant]]\ngrant_id = \"g\"\nidentity = \"i\"\nexpires_at = \"soon\"\n").unwrap_err();
        assert_eq!(err, "grant `g`: `expires_at` is not an RFC 3339 time: soon");
        assert!(load_policy("[[grant]]\ngrant_id = \"g\"\n").unwrap_err().contains("identity"));
    }

    #[test]
    fn registry_tracks_ends_and_expiry() {
        let mut r = Registry::default();
        let g = Grant {
            grant_id: "g".into(),
            identity: "ci".into(),
            on_behalf_of: None,
            scope: Default::default(),
            not_before: None,
            expires_at: Some(1_000),
            windows: vec![],
        };
        r.apply(0, &Lifecycle::Grant(g));
        assert_eq!(r.applicable("ci", None, None, 500).live.len(), 1);
        assert_eq!(r.applicable("ci", None, None, 1_500).live.len(), 0);
        assert_eq!(
            r.applicable("ci", None, None, 1_500).all[0].ended_by(1_500),
            Some((1_000, GrantEndReason::Expired))
        );
        r.apply(200, &Lifecycle::GrantEnded { grant_id: "g".into(), reason: GrantEndReason::Revoked });
        assert_eq!(r.applicable("ci", None, None, 300).all[0].ended_by(300), Some((200, GrantEndReason::Revoked)));
        assert!(r.applicable("other", None, None, 300).all.is_empty());
        r.apply(50, &Lifecycle::IdentityOffboarded { identity: "ci".into() });
        assert_eq!(r.offboarded_at("ci", 40), None);
        assert_eq!(r.offboarded_at("ci", 60), Some(50));
        let role = "arn:aws:iam::111122223333:role/service-role/etl";
        r.apply(70, &Lifecycle::IdentityOffboarded { identity: "arn:aws:iam::111122223333:role/etl".into() });
        assert_eq!(r.offboarded_at(role, 80), Some(70));
        // Recorded again later, an end keeps its first time; recorded earlier, it moves back.
        r.apply(90, &Lifecycle::IdentityOffboarded { identity: role.into() });
        assert_eq!(r.offboarded_at(role, 80), Some(70));
        r.apply(100, &Lifecycle::CredentialRevoked { credential_id: "AKIA1".into() });
        r.apply(300, &Lifecycle::CredentialRevoked { credential_id: "AKIA1".into() });
        assert_eq!(r.revoked_at("AKIA1", 200), Some(100));
        r.apply(60, &Lifecycle::CredentialRevoked { credential_id: "AKIA1".into() });
        assert_eq!(r.revoked_at("AKIA1", 80), Some(60));
        // Set active again, the key is usable; an activation before the revocation is not.
        r.apply(50, &Lifecycle::CredentialActivated { credential_id: "AKIA1".into() });
        assert_eq!(r.revoked_at("AKIA1", 80), Some(60));
        r.apply(310, &Lifecycle::CredentialActivated { credential_id: "AKIA1".into() });
        assert_eq!(r.revoked_at("AKIA1", 400), None);
        // Created again under its name (with or without the path), the identity acts anew;
        // an activation recorded before the offboarding does not undo it.
        r.apply(40, &Lifecycle::IdentityActivated { identity: "ci".into() });
        assert_eq!(r.offboarded_at("ci", 60), Some(50));
        r.apply(95, &Lifecycle::IdentityActivated { identity: "arn:aws:iam::111122223333:role/etl".into() });
        assert_eq!(r.offboarded_at(role, 100), None);
        assert_eq!(r.offboarded_at("ci", 100), Some(50));
    }

    /// Past the bound, the oldest ends go first, and the same ones whatever the order they
    /// came in.
    #[test]
    fn ends_past_the_bound_forget_the_oldest() {
        let fill = |order: &[i64]| {
            let mut ends = FastMap::default();
            for &t in order {
                ends.insert(format!("k{t:02}"), t);
                forget_oldest(&mut ends, 16, "test");
            }
            let mut kept: Vec<(String, Millis)> = ends.into_iter().collect();
            kept.sort();
            kept
        };
        let kept = fill(&(0..17).collect::<Vec<_>>());
        assert_eq!(kept.len(), 15, "down to the bound less a sixteenth");
        assert_eq!(kept.first().map(|(_, t)| *t), Some(2), "the two oldest went");
        assert_eq!(fill(&(0..17).rev().collect::<Vec<_>>()), kept);
    }

    /// Credential expiries are bounded like ends: past the bound the credentials that
    /// expired longest ago are forgotten, recent ones kept.
    #[test]
    fn expiries_past_the_bound_forget_the_longest_expired() {
        let mut r = Registry::default();
        for i in 0..=MAX_FACTS as i64 {
            let issued =
                Lifecycle::CredentialIssued { credential_id: format!("ASIA{i}"), identity: None, expires_at: i };
            r.apply(i, &issued);
        }
        assert_eq!(r.expiries.len(), MAX_FACTS - MAX_FACTS / 16);
        assert_eq!(r.expiry("ASIA0"), None, "the longest expired went");
        assert_eq!(r.expiry(&format!("ASIA{MAX_FACTS}")), Some(MAX_FACTS as i64));
    }

    /// A grant declared again under its id takes the old one's place, for its new identity
    /// only; a saved registry reads back to the same grants, found the same way.
    #[test]
    fn redeclared_grants_replace_and_saved_registries_read_back() {
        let grant = |id: &str, identity: &str| Grant {
            grant_id: id.into(),
            identity: identity.into(),
            on_behalf_of: None,
            scope: Default::default(),
            not_before: None,
            expires_at: None,
            windows: vec![],
        };
        let mut r = Registry::default();
        for (id, identity) in [("b", "ci"), ("a", "ci"), ("c", "deploy-*"), ("b", "etl")] {
            r.apply(0, &Lifecycle::Grant(grant(id, identity)));
        }
        let ids = |r: &Registry, identity: &str| -> Vec<String> {
            r.applicable(identity, None, None, 10).all.iter().map(|s| s.grant.grant_id.clone()).collect()
        };
        assert_eq!(r.grant_count(), 3);
        assert_eq!(ids(&r, "ci"), ["a"]);
        assert_eq!(ids(&r, "etl"), ["b"]);
        assert_eq!(ids(&r, "deploy-7"), ["c"]);
        assert_eq!(r.applicable("ci", Some("c"), None, 10).all[0].grant.identity, "deploy-*");

        let saved = serde_json::to_string(&r).unwrap();
        assert!(saved.starts_with(r#"{"grants":{"a":"#), "saved by id: {saved}");
        let mut back: Registry = serde_json::from_str(&saved).unwrap();
        back.reindex();
        assert_eq!(back, r);
        for identity in ["ci", "etl", "deploy-7", "other"] {
            assert_eq!(ids(&back, identity), ids(&r, identity), "{identity}");
        }
        assert_eq!(serde_json::to_string(&back).unwrap(), saved);
    }

    /// The names that spare a call building its key hold every offboarded identity, after a
    /// save too, and do not grow with offboardings lifted again and again.
    #[test]
    fn offboarded_names_follow_the_offboardings() {
        let role = |n: usize| format!("arn:aws:iam::111122223333:role/ci/runner-{n}");
        let mut r = Registry::default();
        for n in 0..1_000 {
            r.apply(10, &Lifecycle::IdentityOffboarded { identity: role(n) });
            r.apply(20, &Lifecycle::IdentityActivated { identity: role(n) });
        }
        r.apply(30, &Lifecycle::IdentityOffboarded { identity: "arn:aws:iam::111122223333:role/etl".into() });
        assert!(r.offboarded_names.len() <= 2 * r.offboarded.len() + 64, "{} names", r.offboarded_names.len());
        assert_eq!(r.offboarded_at(&role(7), 40), None);
        assert_eq!(r.offboarded_at("arn:aws:iam::111122223333:role/data/etl", 40), Some(30));
        let mut back: Registry = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        back.reindex();
        assert_eq!(back.offboarded_at("arn:aws:iam::111122223333:role/data/etl", 40), Some(30));
    }
}
