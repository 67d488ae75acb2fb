//! What a detector is, apart from what it checks: its stable name, whether it
//! learns, what it maps to (OWASP NHI, ATT&CK, OCSF) and what an analyst should
//! do. Each detector's file holds its own `SPEC`; `detect::REGISTRY` lists them.

use super::{Context, Finding, REGISTRY};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// The judgement itself: reads the call and the baseline, never changes them.
pub type Check = fn(&Context) -> Option<Finding>;

/// Learned detectors need a baseline and stay silent while an identity learns;
/// declared (and lifecycle) detectors apply a rule and fire from the first event.
/// Learned sorts first: reports have always listed them before declared ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Learned,
    Declared,
}

/// How the detector's finding reads in OCSF: a stable title and how the anomaly
/// analysis names what was measured. Observation types and patterns use the
/// examples of the OCSF `anomaly` and `baseline` objects; declared detectors
/// judge a rule, not a distribution, so they name none.
#[derive(Debug)]
pub struct OcsfKind {
    pub title: &'static str,
    pub parameter: &'static str,
    pub observation_type: Option<&'static str>,
    pub observed_pattern: Option<&'static str>,
}

/// Everything about one detector, in one place.
#[derive(Debug)]
pub struct Spec {
    /// The stable snake_case name. Scripts and SIEM rules depend on it.
    pub name: &'static str,
    pub kind: Kind,
    /// OWASP Non-Human Identity Top 10 (2025) risks the detector surfaces.
    pub owasp_nhi: &'static [&'static str],
    /// MITRE ATT&CK techniques the behaviour is consistent with.
    pub attack: &'static [&'static str],
    /// What an analyst should do first.
    pub recommended_action: &'static str,
    pub ocsf: OcsfKind,
    /// Stays silent on a call `post_purpose` already alerted on: once the
    /// purpose is over every call is out of bounds, and one alert says so.
    pub yields_to_post_purpose: bool,
    pub check: Check,
}

impl Spec {
    /// The detector's id, for findings and alerts.
    pub const fn detector(&'static self) -> Detector {
        Detector(self)
    }
}

/// A detector's id: small and `Copy`, written as its name (serde, `Display`,
/// `FromStr`). Two ids are equal when their names are. They sort learned
/// before declared, each in registry order, which is how every sorted output
/// (stats, state) has always listed them.
#[derive(Clone, Copy)]
pub struct Detector(&'static Spec);

impl Detector {
    pub fn name(self) -> &'static str {
        self.0.name
    }

    pub fn spec(self) -> &'static Spec {
        self.0
    }

    pub fn is_learned(self) -> bool {
        self.0.kind == Kind::Learned
    }

    fn rank(self) -> (Kind, usize) {
        let position = REGISTRY.iter().position(|d| *d == self).expect("every detector is registered");
        (self.0.kind, position)
    }
}

impl PartialEq for Detector {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Detector {}

impl Hash for Detector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}

impl Ord for Detector {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Detector {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Detector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        REGISTRY.iter().copied().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = REGISTRY.iter().map(|d| d.name()).collect();
            format!("unknown detector `{s}`, expected one of {}", names.join(", "))
        })
    }
}

impl Serialize for Detector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Detector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_snake_case_and_declared_run_first() {
        let names: Vec<&str> = REGISTRY.iter().map(|d| d.name()).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[..i].contains(name), "`{name}` registered twice");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "`{name}` is not snake_case");
        }
        // `post_purpose` must judge a call before the detectors that yield to it.
        let first_learned = REGISTRY.iter().position(|d| d.is_learned()).unwrap_or(REGISTRY.len());
        assert!(REGISTRY[first_learned..].iter().all(|d| d.is_learned()), "declared detectors run first: {names:?}");
        let post_purpose = REGISTRY.iter().position(|d| d.name() == "post_purpose").unwrap();
        for (i, d) in REGISTRY.iter().enumerate() {
            assert!(!d.spec().yields_to_post_purpose || i > post_purpose, "{d} runs before post_purpose");
        }
    }

    #[test]
    fn every_spec_says_what_it_maps_to() {
        for d in REGISTRY {
            let spec = d.spec();
            assert!(!spec.owasp_nhi.is_empty() && spec.owasp_nhi.iter().all(|id| id.ends_with(":2025")), "{d}");
            assert!(!spec.attack.is_empty() && spec.attack.iter().all(|id| id.starts_with('T')), "{d}");
            assert!(spec.recommended_action.ends_with('.'), "{d}");
            // A learned detector measures a distribution; a declared one applies a rule.
            assert_eq!(spec.ocsf.observation_type.is_some(), d.is_learned(), "{d}");
        }
    }

    #[test]
    fn a_detector_is_written_and_read_as_its_name() {
        for &d in REGISTRY {
            assert_eq!(d.to_string().parse::<Detector>(), Ok(d));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(d.name()));
            assert_eq!(serde_json::from_value::<Detector>(serde_json::json!(d.name())).unwrap(), d);
        }
        let unknown = "novel_calls".parse::<Detector>().unwrap_err();
        assert!(unknown.contains("`novel_calls`") && unknown.contains("scope_violation"), "{unknown}");
        assert!(serde_json::from_value::<Detector>(serde_json::json!("NovelCall")).is_err());
    }

    /// Stats and saved state list detectors in this order; scripts diff them.
    #[test]
    fn detectors_sort_learned_first_each_in_registry_order() {
        let mut sorted = REGISTRY.to_vec();
        sorted.sort();
        let learned = REGISTRY.iter().copied().filter(|d| d.is_learned());
        let declared = REGISTRY.iter().copied().filter(|d| !d.is_learned());
        assert_eq!(sorted, learned.chain(declared).collect::<Vec<_>>());
        let stats: std::collections::BTreeMap<Detector, u64> = REGISTRY.iter().map(|&d| (d, 1)).collect();
        let text = serde_json::to_string(&stats).unwrap();
        assert!(text.starts_with(r#"{"novel_call":1,"rare_transition":1,"#), "{text}");
        assert!(text.ends_with(r#""outside_window":1,"scope_violation":1}"#), "{text}");
    }
}
