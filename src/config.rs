//! Configuration of the Kafka service (`overreach run`).
//!
//! Layers, each overriding the one before: the defaults named below < the TOML file
//! (`--config`) < environment (`OVERREACH_...`) < command-line flags. Flags and their
//! environment variables are declared together in [`RunArgs`] (clap reads both, the flag
//! winning); `[engine]` and `[kafka]` keys can also be set from the environment as
//! `OVERREACH_ENGINE__<FIELD>` and `OVERREACH_KAFKA__<KEY>` (`_` stands for `.` in
//! librdkafka keys, e.g. `OVERREACH_KAFKA__SASL_PASSWORD` sets `sasl.password`).

use crate::decode::{Format, Limits};
use crate::engine::EngineConfig;
use crate::kafka::secrets::{is_secret_key, MASK};
use crate::ocsf::AlertFormat;
use crate::suppress::Rules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The resolved service configuration. Every field is documented with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Bootstrap brokers, `HOST:PORT[,HOST:PORT...]`. Default `localhost:9092`.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Topics of access logs. Required (at least one).
    #[serde(default)]
    pub input_topics: Vec<String>,
    /// Topic of grant and lifecycle events (`schemas/grant-event.v1.schema.json`). Default: none.
    #[serde(default)]
    pub grants_topic: Option<String>,
    /// Topic of analyst verdicts (`schemas/verdict.v1.schema.json`, docs/feedback.md). Default: none.
    #[serde(default)]
    pub feedback_topic: Option<String>,
    /// Topic the alerts are written to. Required.
    #[serde(default)]
    pub alert_topic: String,
    /// Dead-letter topic for records that cannot be decoded. Default: none (they are counted and logged only).
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Consumer group id. Default `overreach`. Instances with the same group share the input
    /// partitions and hand them over with their state (docs/service.md, "Scaling out").
    #[serde(default = "default_group")]
    pub group: String,
    /// Compacted topic of each input partition's checkpoint (identity states and position),
    /// created when missing. Default `<group>-state`.
    #[serde(default)]
    pub state_topic: Option<String>,
    /// Compacted topic every instance reads whole: each identity's share of the fleet facts and
    /// lifecycle facts read from the logs, created when missing. Default `<group>-fleet`.
    #[serde(default)]
    pub fleet_topic: Option<String>,
    /// The input is not keyed by identity (a shipper writes with no key, or keys by account or
    /// host): every instance first moves each record to the repartition topic, keyed and
    /// partitioned by identity, and judges that topic, so one identity's baseline lives on one
    /// instance (docs/service.md, "Unkeyed input"). Default false.
    #[serde(default)]
    pub repartition: bool,
    /// The repartition topic, created when missing with as many partitions as the widest input
    /// topic. Default `<group>-by-identity`.
    #[serde(default)]
    pub repartition_topic: Option<String>,
    /// Replication factor of the state, fleet and repartition topics when the service creates
    /// them. Default 1.
    #[serde(default = "default_service_topic_replication")]
    pub service_topic_replication: i32,
    /// Seconds between checkpoints of each partition to the state and fleet topics (only what
    /// changed is written; one is also written when a partition is revoked or the service
    /// stops). Default 5.
    #[serde(default = "default_checkpoint_interval_s")]
    pub checkpoint_interval_s: u64,
    /// Disorder within a partition, in seconds of event time, reordered before detection, as
    /// replay's `--lateness-s`: a record waits this long in event time before it is judged.
    /// Default 0 (records of one message, a CloudTrail `Records` array, are always put in
    /// order; partitions are always merged by event time).
    #[serde(default)]
    pub lateness_s: u64,
    /// A partition read to its end and quiet for this many milliseconds holds the others back
    /// no longer. Default 200.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// Pause input partitions that run ahead in event time of the one the order stage waits
    /// for, so a backlog is judged in event-time order (`Core::pace`). Default off: why is in
    /// docs/service.md, "Order and lateness".
    #[serde(default)]
    pub pause_ahead: bool,
    /// Format of the input topics: `auto` (decided per record), `native`, `cloudtrail`. Default `auto`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Alert encoding on the alert topic: `native` (`schemas/alert.v1.schema.json`) or `ocsf`
    /// (OCSF 1.5.0 Detection Finding). Default `native`.
    #[serde(default)]
    pub alert_format: AlertFormat,
    /// Snapshot file of the engine state and consumer positions. Default: none (no state across restarts).
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Seconds between periodic snapshots (one is always written on shutdown). Default 60.
    #[serde(default = "default_snapshot_interval_s")]
    pub snapshot_interval_s: u64,
    /// On SIGTERM, seconds to wait for in-flight deliveries before exiting without them (their
    /// input offsets are then neither committed nor snapshotted, so a restart reads them again). Default 30.
    #[serde(default = "default_shutdown_timeout_s")]
    pub shutdown_timeout_s: u64,
    /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`). Default `127.0.0.1:9464`.
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    /// Log format: `human` or `json`. Default `human`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// A record larger than this many bytes is rejected (`line_too_long`). Default 1 MiB.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// An identity, target or action longer than this many bytes is rejected. Default 1024.
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Emit the findings suppression rules match, marked `status: suppressed`. Default false
    /// (they are only counted).
    #[serde(default)]
    pub show_suppressed: bool,
    /// Detection settings: learning period, suppression window, thresholds (see `EngineConfig`).
    #[serde(default)]
    pub engine: EngineConfig,
    /// librdkafka options passed to the consumer and the producer unchanged (SASL, TLS, timeouts).
    /// They override the service's own settings. Default: empty.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
    /// librdkafka options for the consumer only (e.g. `fetch.wait.max.ms`), over `[kafka]`. Default: empty.
    #[serde(default)]
    pub kafka_consumer: BTreeMap<String, String>,
    /// librdkafka options for the producer only (e.g. `linger.ms`), over `[kafka]`. Default: empty.
    #[serde(default)]
    pub kafka_producer: BTreeMap<String, String>,
    /// Suppression rules, `[[suppress]]` tables (see `suppress`). Last: TOML writes arrays of
    /// tables after every other key. Default: none.
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub suppress: Rules,
}

fn default_brokers() -> String {
    "localhost:9092".to_string()
}

fn default_group() -> String {
    "overreach".to_string()
}

fn default_format() -> Format {
    Format::Auto
}

fn default_snapshot_interval_s() -> u64 {
    60
}

fn default_service_topic_replication() -> i32 {
    1
}

fn default_checkpoint_interval_s() -> u64 {
    5
}

fn default_idle_ms() -> u64 {
    200
}

fn default_shutdown_timeout_s() -> u64 {
    30
}

fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

fn default_max_record_bytes() -> usize {
    Limits::default().max_line_bytes
}

fn default_max_field_bytes() -> usize {
    Limits::default().max_field_bytes
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`, expected human or json")),
        }
    }
}

/// `overreach run` flags. Each flag can also come from the environment variable named beside it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// TOML configuration file (keys as in docs/service.md).
    #[arg(long, env = "OVERREACH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "OVERREACH_BROKERS")]
    pub brokers: Option<String>,
    /// Topic of access logs; repeat for several (environment: comma-separated).
    #[arg(long = "input-topic", env = "OVERREACH_INPUT_TOPICS", value_delimiter = ',')]
    pub input_topics: Vec<String>,
    /// Topic of grant and lifecycle events.
    #[arg(long, env = "OVERREACH_GRANTS_TOPIC")]
    pub grants_topic: Option<String>,
    /// Topic of analyst verdicts (benign or malicious, per alert).
    #[arg(long, env = "OVERREACH_FEEDBACK_TOPIC")]
    pub feedback_topic: Option<String>,
    /// Topic the alerts are written to.
    #[arg(long, env = "OVERREACH_ALERT_TOPIC")]
    pub alert_topic: Option<String>,
    /// Dead-letter topic for records that cannot be decoded.
    #[arg(long, env = "OVERREACH_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// Consumer group id.
    #[arg(long, env = "OVERREACH_GROUP")]
    pub group: Option<String>,
    /// Input format: auto, native, cloudtrail.
    #[arg(long, env = "OVERREACH_FORMAT")]
    pub format: Option<Format>,
    /// Alert encoding: native or ocsf.
    #[arg(long, env = "OVERREACH_ALERT_FORMAT")]
    pub alert_format: Option<AlertFormat>,
    /// Snapshot file of the engine state and consumer positions.
    #[arg(long, env = "OVERREACH_STATE")]
    pub state: Option<PathBuf>,
    /// Seconds between periodic snapshots.
    #[arg(long, env = "OVERREACH_SNAPSHOT_INTERVAL_S")]
    pub snapshot_interval_s: Option<u64>,
    /// Address of the HTTP port: /metrics, /healthz, /readyz, /identities/{identity} and the triage page.
    #[arg(long, env = "OVERREACH_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Log format: human or json.
    #[arg(long, env = "OVERREACH_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Emit the findings suppression rules match, marked `status: suppressed`.
    #[arg(long, env = "OVERREACH_SHOW_SUPPRESSED")]
    pub show_suppressed: bool,
    /// The input is not keyed by identity: repartition it through an internal topic first.
    #[arg(long, env = "OVERREACH_REPARTITION")]
    pub repartition: bool,
}

/// Why the configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

const ENV_ENGINE: &str = "OVERREACH_ENGINE__";
const ENV_KAFKA: &str = "OVERREACH_KAFKA__";

impl ServiceConfig {
    /// Resolves file < environment < flags. `env` is the process environment (passed in for tests).
    pub fn resolve(args: &RunArgs, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = match &args.config {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let mut config: ServiceConfig =
            table.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        config.apply_args(args);
        config.validate()?;
        Ok(config)
    }

    fn apply_args(&mut self, args: &RunArgs) {
        let a = args.clone();
        if let Some(v) = a.brokers {
            self.brokers = v;
        }
        if !a.input_topics.is_empty() {
            self.input_topics = a.input_topics;
        }
        if a.grants_topic.is_some() {
            self.grants_topic = a.grants_topic;
        }
        if a.feedback_topic.is_some() {
            self.feedback_topic = a.feedback_topic;
        }
        if let Some(v) = a.alert_topic {
            self.alert_topic = v;
        }
        if a.dlq_topic.is_some() {
            self.dlq_topic = a.dlq_topic;
        }
        if let Some(v) = a.group {
            self.group = v;
        }
        if let Some(v) = a.format {
            self.format = v;
        }
        if let Some(v) = a.alert_format {
            self.alert_format = v;
        }
        if a.state.is_some() {
            self.state = a.state;
        }
        if let Some(v) = a.snapshot_interval_s {
            self.snapshot_interval_s = v;
        }
        if let Some(v) = a.http_addr {
            self.http_addr = v;
        }
        if let Some(v) = a.log_format {
            self.log_format = v;
        }
        self.show_suppressed |= a.show_suppressed;
        self.repartition |= a.repartition;
    }

    /// The suppression rules and whether what they match is shown, for the engine.
    pub fn suppression(&self) -> crate::engine::Suppression {
        crate::engine::Suppression { rules: self.suppress.clone(), show: self.show_suppressed }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let missing = |what: &str, flag: &str, env: &str| {
            ConfigError::Invalid(format!("{what} is required: set {flag}, {env} or `{what}` in the config file"))
        };
        if self.input_topics.is_empty() {
            return Err(missing("input_topics", "--input-topic", "OVERREACH_INPUT_TOPICS"));
        }
        if self.alert_topic.is_empty() {
            return Err(missing("alert_topic", "--alert-topic", "OVERREACH_ALERT_TOPIC"));
        }
        if self.format == Format::Grants {
            return Err(ConfigError::Invalid(
                "format `grants` is for the grants topic; use --grants-topic for grant events".into(),
            ));
        }
        if self.format == Format::Feedback {
            return Err(ConfigError::Invalid(
                "format `feedback` is for the feedback topic; use --feedback-topic for verdicts".into(),
            ));
        }
        let mut outputs = vec![&self.alert_topic];
        outputs.extend(&self.dlq_topic);
        for topic in self.input_topics.iter().chain(&self.grants_topic).chain(&self.feedback_topic) {
            if outputs.contains(&topic) {
                return Err(ConfigError::Invalid(format!("topic `{topic}` is both read and written")));
            }
        }
        // Records are decoded by the topic they come from: verdicts only from their own.
        if let Some(topic) = &self.feedback_topic {
            if self.input_topics.contains(topic) || self.grants_topic.as_ref() == Some(topic) {
                return Err(ConfigError::Invalid(format!("topic `{topic}` is the feedback topic and another input")));
            }
        }
        if self.snapshot_interval_s == 0 {
            return Err(ConfigError::Invalid("snapshot_interval_s must be at least 1".into()));
        }
        if self.checkpoint_interval_s == 0 {
            return Err(ConfigError::Invalid("checkpoint_interval_s must be at least 1".into()));
        }
        let mut own = vec![self.state_topic(), self.fleet_topic()];
        if self.repartition {
            own.push(self.repartition_topic());
        }
        for topic in self.input_topics().chain([&self.alert_topic]).chain(&self.dlq_topic) {
            if own.contains(topic) {
                return Err(ConfigError::Invalid(format!(
                    "topic `{topic}` is the service's own state, fleet or repartition topic"
                )));
            }
        }
        self.engine.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// Every topic the service reads: access logs, then grants and verdicts.
    pub fn input_topics(&self) -> impl Iterator<Item = &String> {
        self.input_topics.iter().chain(&self.grants_topic).chain(&self.feedback_topic)
    }

    /// The state topic (see `state_topic`).
    pub fn state_topic(&self) -> String {
        self.state_topic.clone().unwrap_or_else(|| format!("{}-state", self.group))
    }

    /// The fleet topic (see `fleet_topic`).
    pub fn fleet_topic(&self) -> String {
        self.fleet_topic.clone().unwrap_or_else(|| format!("{}-fleet", self.group))
    }

    /// The repartition topic (see `repartition_topic`).
    pub fn repartition_topic(&self) -> String {
        self.repartition_topic.clone().unwrap_or_else(|| format!("{}-by-identity", self.group))
    }

    /// The topics the group's instances share and judge: the access-log topics, or, when they
    /// are repartitioned, the repartition topic.
    pub fn judged_topics(&self) -> Vec<String> {
        if self.repartition {
            vec![self.repartition_topic()]
        } else {
            self.input_topics.clone()
        }
    }

    /// How a record of `topic` is decoded.
    pub fn format_of(&self, topic: &str) -> Format {
        match Some(topic) {
            t if t == self.grants_topic.as_deref() => Format::Grants,
            t if t == self.feedback_topic.as_deref() => Format::Feedback,
            _ if self.repartition && topic == self.repartition_topic() => Format::Record,
            _ => self.format,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits { max_line_bytes: self.max_record_bytes, max_field_bytes: self.max_field_bytes }
    }

    /// The configuration as TOML with the value of every secret key (see [`is_secret_key`])
    /// replaced by `***`, for the start-up log.
    pub fn masked(&self) -> String {
        let mut shown = self.clone();
        for (key, value) in shown.kafka.iter_mut().chain(&mut shown.kafka_consumer).chain(&mut shown.kafka_producer) {
            if is_secret_key(key) {
                *value = MASK.to_string();
            }
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("<config not printable: {e}>"))
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    text.parse::<toml::Table>().map_err(|source| ConfigError::Parse { path: path.into(), source })
}

/// Applies `OVERREACH_ENGINE__*` and `OVERREACH_KAFKA__*`; the top-level variables are clap's.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    for (var, raw) in env {
        if let Some(field) = var.strip_prefix(ENV_ENGINE) {
            // Engine fields are numbers; a value that is not a TOML literal stays a string
            // and the engine's own deserializer then names the field and the expected type.
            let value = format!("v = {raw}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw));
            sub_table(table, "engine", &var)?.insert(field.to_ascii_lowercase(), value);
        } else if let Some(key) = var.strip_prefix(ENV_KAFKA) {
            let key = key.to_ascii_lowercase().replace('_', ".");
            sub_table(table, "kafka", &var)?.insert(key, toml::Value::String(raw));
        }
    }
    Ok(())
}

fn sub_table<'a>(table: &'a mut toml::Table, name: &str, var: &str) -> Result<&'a mut toml::Table, ConfigError> {
    table.entry(name).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut().ok_or_else(|| {
        ConfigError::Env { var: var.to_string(), reason: format!("`{name}` in the file is not a table") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs { input_topics: vec!["in".into()], alert_topic: Some("alerts".into()), ..RunArgs::default() }
    }

    fn file(text: &str) -> (tempfile::NamedTempFile, RunArgs) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        let a = RunArgs { config: Some(f.path().into()), ..RunArgs::default() };
        (f, a)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = ServiceConfig::resolve(&args(), []).unwrap();
        assert_eq!(c.brokers, "localhost:9092");
        assert_eq!(c.group, "overreach");
        assert_eq!(c.format, Format::Auto);
        assert_eq!(c.snapshot_interval_s, 60);
        assert_eq!(c.shutdown_timeout_s, 30);
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(c.engine, EngineConfig::default());
    }

    #[test]
    fn file_then_env_then_flags() {
        let (_f, mut a) = file(
            "brokers = \"file:9092\"\ngroup = \"file-group\"\ninput_topics = [\"a\"]\nalert_topic = \"al\"\n\
             [engine]\nlearning_days = 3.0\nlearning_events = 10\n[kafka]\n\"security.protocol\" = \"ssl\"\n",
        );
        let env = [
            ("OVERREACH_ENGINE__LEARNING_EVENTS".to_string(), "20".to_string()),
            ("OVERREACH_KAFKA__SASL_PASSWORD".to_string(), "hunter2".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        // clap resolves flag-over-env for these; the flag value arrives here as an arg.
        a.group = Some("flag-group".into());
        let c = ServiceConfig::resolve(&a, env).unwrap();
        assert_eq!(c.brokers, "file:9092");
        assert_eq!(c.group, "flag-group");
        assert_eq!(c.input_topics, ["a"]);
        assert_eq!(c.engine.learning_days, 3.0);
        assert_eq!(c.engine.learning_events, 20);
        assert_eq!(c.kafka["security.protocol"], "ssl");
        assert_eq!(c.kafka["sasl.password"], "hunter2");
        let shown = c.masked();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"sasl.password\" = \"***\""), "{shown}");
        assert!(shown.contains("\"security.protocol\" = \"ssl\""), "{shown}");
    }

    #[test]
    fn the_start_up_log_masks_every_credential_and_shows_the_settings() {
        let (_f, a) = file(
            "input_topics = [\"a\"]\nalert_topic = \"al\"\n[kafka]\n\"security.protocol\" = \"sasl_ssl\"\n\
             \"sasl.mechanisms\" = \"OAUTHBEARER\"\n\"sasl.oauthbearer.extensions\" = \"logicalCluster=lkc-s1\"\n\
             \"ssl.key.pem\" = \"-----BEGIN PRIVATE KEY-----s2\"\n\"ssl.key.location\" = \"/etc/o/client.key\"\n\
             [kafka_consumer]\n\"ssl.keystore.password\" = \"s3\"\n\
             [kafka_producer]\n\"sasl.oauthbearer.client.secret\" = \"s4\"\n\"sasl.jaas.config\" = \"password='s5';\"\n",
        );
        let shown = ServiceConfig::resolve(&a, []).unwrap().masked();
        for secret in ["lkc-s1", "-----BEGIN PRIVATE KEY-----s2", "\"s3\"", "\"s4\"", "s5"] {
            assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
        }
        assert_eq!(shown.matches("= \"***\"").count(), 5, "{shown}");
        for setting in ["\"security.protocol\" = \"sasl_ssl\"", "\"ssl.key.location\" = \"/etc/o/client.key\""] {
            assert!(shown.contains(setting), "{setting} missing in:\n{shown}");
        }
    }

    #[test]
    fn unknown_keys_and_missing_topics_are_errors() {
        let (_f, a) = file("input_topics = [\"a\"]\nalert_topic = \"al\"\nbrokerz = \"x\"\n");
        let err = ServiceConfig::resolve(&a, []).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        let err = ServiceConfig::resolve(&RunArgs::default(), []).unwrap_err().to_string();
        assert!(err.contains("input_topics is required"), "{err}");
        let mut a = args();
        a.dlq_topic = Some("in".into());
        let err = ServiceConfig::resolve(&a, []).unwrap_err().to_string();
        assert!(err.contains("both read and written"), "{err}");
    }

    #[test]
    fn the_repartition_topic_is_judged_in_record_form_and_may_not_be_an_input() {
        let mut a = RunArgs { repartition: true, group: Some("g".into()), ..args() };
        let c = ServiceConfig::resolve(&a, []).unwrap();
        assert_eq!(c.judged_topics(), ["g-by-identity"]);
        assert_eq!(c.format_of("g-by-identity"), Format::Record);
        assert_eq!(c.format_of("in"), Format::Auto);
        a.input_topics = vec!["g-by-identity".into()];
        let err = ServiceConfig::resolve(&a, []).unwrap_err().to_string();
        assert!(err.contains("repartition topic"), "{err}");
    }

    #[test]
    fn suppression_rules_are_read_from_the_service_file_and_a_bad_one_names_itself() {
        let base =
            "input_topics = [\"a\"]\nalert_topic = \"al\"\nshow_suppressed = true\n[engine]\nlearning_days = 3.0\n";
        let rule = "[[suppress]]\nname = \"office\"\nreason = \"Expected.\"\nnetwork = \"10.0.0.0/8\"\n";
        let (_f, a) = file(&format!("{base}{rule}"));
        let c = ServiceConfig::resolve(&a, []).unwrap();
        let suppression = c.suppression();
        assert!(suppression.show && suppression.rules.contains("office"));
        assert_eq!(c.engine.learning_days, 3.0);
        // The start-up log shows the rules as written.
        let shown = c.masked();
        assert!(shown.contains("[[suppress]]") && shown.contains("network = \"10.0.0.0/8\""), "{shown}");
        let (_f, a) = file(&format!("{base}{}", rule.replace("10.0.0.0/8", "10.0.0.0/99")));
        let err = ServiceConfig::resolve(&a, []).unwrap_err().to_string();
        assert!(err.contains("suppress rule `office`: `network` is not a CIDR block"), "{err}");
    }

    #[test]
    fn a_bad_engine_value_names_the_field() {
        let env = [("OVERREACH_ENGINE__LEARNING_DAYS".to_string(), "soon".to_string())];
        let err = ServiceConfig::resolve(&args(), env).unwrap_err().to_string();
        assert!(err.contains("learning_days") || err.contains("invalid type"), "{err}");
    }
}
