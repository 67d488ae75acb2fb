//! Detection settings: the `[engine]` table of a configuration file. Every
//! field has a documented default (see README) and is checked by `validate`.

use super::Detector;
use crate::baseline::counts::{Decay, Minute};
use serde::{Deserialize, Serialize};

/// Detection settings. Every field has a documented default (see README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// An identity learns until it has this many days of history...
    pub learning_days: f64,
    /// ...and this many events. Learned detectors are silent while it learns.
    pub learning_events: u64,
    /// Old behaviour fades: a count loses half its weight after this many days.
    pub half_life_days: f64,
    /// Behaviour not seen for this many days is forgotten.
    pub forget_after_days: f64,
    /// Cap on identities held. Past it, identities still learning go first
    /// (oldest first); learned ones only make room for newly learned ones,
    /// least recently seen first (see `baseline::admission`).
    pub max_identities: usize,
    /// Repeats of the same finding for the same identity within this many
    /// seconds of event time are counted, not emitted.
    pub suppression_window_s: i64,
    /// Novelty detectors alert when the estimated probability of what they saw
    /// is at most this.
    pub novelty_max_probability: f64,
    /// Weight of the peer group's repertoire in a call's probability.
    pub peer_weight: f64,
    /// A new call that this many peers also started making within the rollout
    /// window is a rollout, not an incident.
    pub rollout_min_peers: u32,
    pub rollout_window_days: f64,
    /// Length of the rate and fan-out windows, in seconds.
    pub window_s: i64,
    /// Past active windows needed before rate and fan-out detectors judge.
    pub min_windows: u32,
    /// Rate and fan-out detectors alert when the tail probability is at most this.
    pub burst_max_probability: f64,
    /// `rare_transition` alerts when a session's never-taken steps together
    /// have at most this probability...
    pub path_max_probability: f64,
    /// ...and the step leaves an operation the identity has left this often.
    pub path_min_departures: f64,
    /// Rate and fan-out also need at least this multiple of the usual window:
    /// legitimate load bursts are rarely this far above the mean. Calls held over two
    /// windows in a row need half of it in each (`detect::window_burst`).
    pub volume_min_ratio: f64,
    pub fanout_min_ratio: f64,
    pub volume_min_calls: u32,
    pub fanout_min_distinct: u32,
    /// Active hours of history needed before `off_hours` judges.
    pub off_hours_min_active_hours: u64,
    /// `off_hours` alerts when an hour of the day is at most this fraction as
    /// likely as it would be for an identity active evenly around the clock.
    pub off_hours_max_ratio: f64,
    /// `dormant_reactivation` needs a silence of at least this many days, and
    /// one that the identity's longest silence makes at most
    /// `novelty_max_probability` likely.
    pub dormant_min_days: f64,
    /// Clients active within this many seconds count as concurrent.
    pub concurrency_window_s: i64,
    /// A credential used by two identities within this many seconds is shared.
    pub credential_reuse_window_s: i64,
    /// Tolerance for clock differences when judging expiry, in seconds.
    pub clock_skew_s: i64,
    /// Detectors switched off.
    pub disabled: Vec<Detector>,
    /// What the engine emits: `incidents` (one alert per episode, updated as
    /// evidence joins; see `incident`), `findings` (one alert per finding
    /// that passes its detector's own threshold, repeats suppressed), or `both`.
    pub alerts: AlertMode,
    /// A learned detector reports a signal (evidence for an incident, never
    /// an alert alone) when what it saw had at most this probability.
    pub signal_max_probability: f64,
    /// An episode's signals together raise an incident when Fisher's
    /// combination of their probabilities is at most this.
    pub incident_max_probability: f64,
    /// An episode ends, and its incident closes, after this many seconds of
    /// event time without evidence.
    pub incident_close_after_s: i64,
    /// An incident that keeps gathering evidence is sent again at least this
    /// often (in seconds of event time), so an ongoing one stays visible.
    pub incident_update_interval_s: i64,
}

/// What the engine emits (`EngineConfig::alerts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AlertMode {
    #[default]
    Incidents,
    Findings,
    Both,
}

impl AlertMode {
    pub fn findings(self) -> bool {
        matches!(self, AlertMode::Findings | AlertMode::Both)
    }

    pub fn incidents(self) -> bool {
        matches!(self, AlertMode::Incidents | AlertMode::Both)
    }
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
            novelty_max_probability: 0.01,
            peer_weight: 0.1,
            rollout_min_peers: 2,
            rollout_window_days: 3.0,
            window_s: 600,
            min_windows: 10,
            burst_max_probability: 1e-4,
            path_max_probability: 1e-3,
            path_min_departures: 5.0,
            volume_min_ratio: 8.0,
            fanout_min_ratio: 4.0,
            volume_min_calls: 30,
            fanout_min_distinct: 8,
            off_hours_min_active_hours: 40,
            off_hours_max_ratio: 0.02,
            dormant_min_days: 7.0,
            concurrency_window_s: 300,
            credential_reuse_window_s: 86_400,
            clock_skew_s: 60,
            disabled: Vec::new(),
            alerts: AlertMode::Incidents,
            signal_max_probability: 0.05,
            incident_max_probability: 1e-5,
            incident_close_after_s: 6 * 3600,
            incident_update_interval_s: 6 * 3600,
        }
    }
}

impl EngineConfig {
    pub fn decay(&self) -> Decay {
        Decay { half_life_min: self.half_life_days * 1440.0 }
    }

    pub fn rollout_window_min(&self) -> Minute {
        (self.rollout_window_days * 1440.0) as Minute
    }

    /// Checks every setting against what it can mean. A NaN, a negative
    /// duration or a probability of 0 would not fail anywhere: it would quietly
    /// switch detectors off (or on for everything), so it is refused up front.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |key, ok: bool, value: &dyn std::fmt::Display, expected| match ok {
            true => Ok(()),
            false => Err(InvalidSetting { key, value: value.to_string(), expected }),
        };
        // A zero length is a setting (learn nothing, suppress nothing) except
        // where the detector divides by it or needs a window to count in.
        let days = |key, v: f64, zero: Zero| {
            let ok = v.is_finite() && v <= MAX_DAYS && (v > 0.0 || (v == 0.0 && zero == Zero::Allowed));
            check(key, ok, &v, zero.pick("a number of days from 0 to 36525", "a number of days above 0, at most 36525"))
        };
        let seconds = |key, v: i64, zero: Zero| {
            let ok = v <= MAX_SECONDS && (v > 0 || (v == 0 && zero == Zero::Allowed));
            check(
                key,
                ok,
                &v,
                zero.pick("a number of seconds from 0 to 3155760000", "a number of seconds from 1 to 3155760000"),
            )
        };
        let probability = |key, v: f64| check(key, v > 0.0 && v <= 1.0, &v, "a probability above 0, at most 1");
        let non_negative = |key, v: f64, expected| check(key, v.is_finite() && v >= 0.0, &v, expected);
        days("learning_days", self.learning_days, Zero::Allowed)?;
        days("half_life_days", self.half_life_days, Zero::Refused)?;
        days("forget_after_days", self.forget_after_days, Zero::Refused)?;
        days("rollout_window_days", self.rollout_window_days, Zero::Allowed)?;
        days("dormant_min_days", self.dormant_min_days, Zero::Allowed)?;
        seconds("suppression_window_s", self.suppression_window_s, Zero::Allowed)?;
        seconds("window_s", self.window_s, Zero::Refused)?;
        seconds("concurrency_window_s", self.concurrency_window_s, Zero::Allowed)?;
        seconds("credential_reuse_window_s", self.credential_reuse_window_s, Zero::Allowed)?;
        seconds("clock_skew_s", self.clock_skew_s, Zero::Allowed)?;
        seconds("incident_close_after_s", self.incident_close_after_s, Zero::Allowed)?;
        seconds("incident_update_interval_s", self.incident_update_interval_s, Zero::Refused)?;
        check("max_identities", self.max_identities >= 1, &self.max_identities, "at least 1")?;
        let peers = self.rollout_min_peers;
        check("rollout_min_peers", peers >= 1, &peers, "at least 1 (0 makes every new call a rollout)")?;
        let windows = self.min_windows;
        check("min_windows", windows >= 1, &windows, "at least 1 (a burst is judged against past windows)")?;
        probability("novelty_max_probability", self.novelty_max_probability)?;
        probability("burst_max_probability", self.burst_max_probability)?;
        probability("path_max_probability", self.path_max_probability)?;
        probability("signal_max_probability", self.signal_max_probability)?;
        probability("incident_max_probability", self.incident_max_probability)?;
        let weight = self.peer_weight;
        check("peer_weight", (0.0..=1.0).contains(&weight), &weight, "a weight from 0 to 1")?;
        non_negative("path_min_departures", self.path_min_departures, "a count of 0 or more")?;
        non_negative("volume_min_ratio", self.volume_min_ratio, "a ratio of 0 or more")?;
        non_negative("fanout_min_ratio", self.fanout_min_ratio, "a ratio of 0 or more")?;
        non_negative("off_hours_max_ratio", self.off_hours_max_ratio, "a ratio of 0 or more")?;
        Ok(())
    }
}

/// Whether a duration setting may be 0.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Refused,
}

impl Zero {
    fn pick(self, allowed: &'static str, refused: &'static str) -> &'static str {
        match self {
            Zero::Allowed => allowed,
            Zero::Refused => refused,
        }
    }
}

/// The longest duration a setting may hold, a century: long past any real
/// history, and short enough that every product in milliseconds or minutes
/// stays far inside its integer type.
const MAX_DAYS: f64 = 36_525.0;
const MAX_SECONDS: i64 = 36_525 * 86_400;

/// A detection setting outside what it can mean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("engine setting `{key}` is {value}; expected {expected}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Reads the `[engine]` table of a TOML configuration file; other tables (the
/// service's) are left to their readers.
pub fn config_from_toml(text: &str) -> Result<EngineConfig, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        engine: EngineConfig,
    }
    toml::from_str::<File>(text).map(|f| f.engine).map_err(|e| e.to_string())
}
