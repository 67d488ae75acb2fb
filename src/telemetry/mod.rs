//! Telemetry of the service: Prometheus metrics, health flags and log set-up.
//!
//! Each occurrence worth counting is a small struct in [`events`] whose `emit()` writes
//! the log line and updates the metric, so the two never disagree.

pub mod events;
pub mod http;

use crate::config::LogFormat;
use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Every metric the service exports. Labels come only from bounded sets:
/// topic, partition, reason, detector, severity, and rule (suppression rule
/// names: operator configuration, at most `suppress::MAX_RULES` of 64 bytes).
pub struct Metrics {
    registry: Registry,
    pub records_consumed: IntCounterVec,
    pub records_processed: IntCounterVec,
    pub records_rejected: IntCounterVec,
    pub processing_seconds: Counter,
    pub alerts_emitted: IntCounterVec,
    pub suppressed_by_rule: IntCounterVec,
    pub alert_latency: Histogram,
    pub delivery_errors: IntCounterVec,
    pub alerts_dropped: IntCounterVec,
    pub dead_letters_dropped: IntCounterVec,
    pub consumer_errors: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub identities_tracked: IntGauge,
    pub snapshot_age: Gauge,
    pub snapshot_size: IntGauge,
    pub snapshot_failures: IntCounter,
    pub http_connections: IntGauge,
    pub http_connections_evicted: IntCounter,
    pub records_late: IntCounter,
    pub records_released_early: IntCounter,
    pub handovers: IntCounterVec,
    pub handover_seconds: Histogram,
    pub partition_identities: IntGaugeVec,
    pub partitions_paused: IntGauge,
    pub checkpoint_bytes: IntGaugeVec,
    pub checkpoints: IntCounter,
    pub fleet_news: IntCounter,
    pub state_read_errors: IntCounterVec,
    pub verdicts_not_held: IntCounter,
}

impl Metrics {
    fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let records_consumed = counter(
            "overreach_records_consumed_total",
            "Messages read from the input, grants and feedback topics.",
            &["topic"],
        )?;
        let records_processed = counter(
            "overreach_records_processed_total",
            "Records the engine judged, once the order stage let them out (a CloudTrail message carries several).",
            &["topic"],
        )?;
        let records_rejected = counter(
            "overreach_records_rejected_total",
            "Records that could not be decoded, by reason (sent to the dead-letter topic if one is set).",
            &["topic", "reason"],
        )?;
        let processing_seconds = Counter::new(
            "overreach_processing_seconds_total",
            "Time the service's loop spends on records: taking them in (and waiting for the thread that \
             decodes them) and running the engine; its rate near 1 means the loop, not Kafka, bounds the throughput.",
        )?;
        registry.register(Box::new(processing_seconds.clone()))?;
        let alerts_emitted = counter(
            "overreach_alerts_emitted_total",
            "Alerts acknowledged by the broker on the alert topic.",
            &["detector", "severity"],
        )?;
        let suppressed_by_rule = counter(
            "overreach_suppressed_by_rule_total",
            "Findings a suppression rule kept out of alerts and incidents, by rule name.",
            &["rule"],
        )?;
        let delivery_errors = counter(
            "overreach_delivery_errors_total",
            "Failed deliveries to the alert or dead-letter topic that are retried (broker down, timeouts, missing topic).",
            &["topic"],
        )?;
        let alerts_dropped = counter(
            "overreach_alerts_dropped_total",
            "Alerts the alert topic refused for good (too large, not authorized, invalid), by reason; each is \
             noted on the dead-letter topic if one is set, and its input offset released.",
            &["reason"],
        )?;
        let dead_letters_dropped = counter(
            "overreach_dead_letters_dropped_total",
            "Dead-letter records (rejected inputs, notes of refused alerts) the dead-letter topic refused for good, by reason.",
            &["reason"],
        )?;
        let consumer_errors =
            counter("overreach_consumer_errors_total", "Errors returned by the consumer, by reason.", &["reason"])?;
        let alert_latency = Histogram::with_opts(
            HistogramOpts::new(
                "overreach_alert_latency_seconds",
                "Time from consuming a record to the broker acknowledging the last alert it caused.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        registry.register(Box::new(alert_latency.clone()))?;
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "overreach_consumer_lag_messages",
                "Messages between the consumer position and the partition end.",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(consumer_lag.clone()))?;
        let identities_tracked =
            IntGauge::new("overreach_identities_tracked", "Identities the engine holds state for.")?;
        registry.register(Box::new(identities_tracked.clone()))?;
        let snapshot_age = Gauge::new(
            "overreach_state_snapshot_age_seconds",
            "Seconds since the last successful state snapshot (since start if none succeeded yet).",
        )?;
        registry.register(Box::new(snapshot_age.clone()))?;
        let snapshot_size = IntGauge::new("overreach_state_snapshot_size_bytes", "Size of the last state snapshot.")?;
        registry.register(Box::new(snapshot_size.clone()))?;
        let snapshot_failures =
            IntCounter::new("overreach_state_snapshot_failures_total", "State snapshots that could not be written.")?;
        registry.register(Box::new(snapshot_failures.clone()))?;
        let http_connections = IntGauge::new(
            "overreach_http_connections_open",
            "Open connections to the HTTP port (probes, metrics, explain, triage page).",
        )?;
        registry.register(Box::new(http_connections.clone()))?;
        let http_connections_evicted = IntCounter::new(
            "overreach_http_connections_evicted_total",
            "HTTP connections closed to make room at the connection cap (the oldest goes first).",
        )?;
        registry.register(Box::new(http_connections_evicted.clone()))?;
        let int_counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let int_gauges = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let records_late = int_counter(
            "overreach_records_late_total",
            "Records later than the lateness allowance (or from a partition that was idle), judged out of event-time order.",
        )?;
        let records_released_early = int_counter(
            "overreach_records_released_early_total",
            "Records the full order stage let go before their lateness allowance ran out.",
        )?;
        let handovers = counter(
            "overreach_handovers_total",
            "Partitions taken over (direction in, by where their state came from: state_topic, local, none) and \
             handed over (direction out, by checkpoint or last_checkpoint).",
            &["direction", "source"],
        )?;
        let handover_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "overreach_handover_seconds",
                "Time to restore a partition's state when it is assigned, or to checkpoint and release it when revoked.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 18)?),
        )?;
        registry.register(Box::new(handover_seconds.clone()))?;
        let partition_identities = int_gauges(
            "overreach_partition_identities",
            "Identities whose state this instance holds, per input partition.",
            &["topic", "partition"],
        )?;
        let partitions_paused = IntGauge::new(
            "overreach_partitions_paused",
            "Input partitions not read for now: they are ahead in event time of one the order stage waits for.",
        )?;
        registry.register(Box::new(partitions_paused.clone()))?;
        let checkpoint_bytes = int_gauges(
            "overreach_checkpoint_state_bytes",
            "Bytes of identity state the last checkpoint of a partition wrote (only what changed is written).",
            &["topic", "partition"],
        )?;
        let checkpoints =
            int_counter("overreach_checkpoints_total", "Partition checkpoints published to the state topic.")?;
        let fleet_news = int_counter(
            "overreach_fleet_news_total",
            "Shares and lifecycle facts published to the fleet topic ahead of their partition's checkpoint.",
        )?;
        let state_read_errors = counter(
            "overreach_state_read_errors_total",
            "Records of the state or fleet topic that could not be read (or a state topic that could not be \
             read at all), by what they held.",
            &["what"],
        )?;
        let verdicts_not_held = int_counter(
            "overreach_verdicts_not_held_total",
            "Verdicts about alerts this instance does not know, left to the instance that holds the identity \
             (dead-lettered only when one instance holds every partition).",
        )?;
        Ok(Metrics {
            records_late,
            records_released_early,
            handovers,
            handover_seconds,
            partition_identities,
            partitions_paused,
            checkpoint_bytes,
            checkpoints,
            fleet_news,
            state_read_errors,
            verdicts_not_held,
            registry,
            records_consumed,
            records_processed,
            records_rejected,
            processing_seconds,
            alerts_emitted,
            suppressed_by_rule,
            alert_latency,
            delivery_errors,
            alerts_dropped,
            dead_letters_dropped,
            consumer_errors,
            consumer_lag,
            identities_tracked,
            snapshot_age,
            snapshot_size,
            snapshot_failures,
            http_connections,
            http_connections_evicted,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// What `/readyz` reports: ready once the state is loaded, partitions are assigned, a broker is
/// up and answers, the output topics exist and the last snapshot (if any was due) succeeded.
#[derive(Default)]
pub struct Health {
    pub state_loaded: AtomicBool,
    pub partitions_assigned: AtomicBool,
    /// Restoring the state of newly assigned partitions: not ready until every partition held has its state.
    pub restoring: AtomicBool,
    /// From librdkafka statistics: some broker connection is up.
    pub broker_up: AtomicBool,
    /// From the metadata probe: a broker answered within the probe's timeout. A hung broker
    /// keeps its connection up, so statistics alone notice it only after `socket.timeout.ms`.
    pub broker_answering: AtomicBool,
    /// Output topics (alert, dead-letter) the brokers do not know, from the metadata probe.
    pub missing_topics: Mutex<Vec<String>>,
    /// Why the last snapshot failed, until one succeeds.
    pub snapshot_error: Mutex<Option<String>>,
}

impl Health {
    /// `Ok` when ready, otherwise what is wrong.
    pub fn readiness(&self) -> Result<(), String> {
        let missing = self.missing_topics.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot_error = self.snapshot_error.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.state_loaded.load(Ordering::Relaxed) {
            Err("state not loaded".into())
        } else if self.restoring.load(Ordering::Relaxed) {
            Err("restoring the state of assigned partitions".into())
        } else if let Some(error) = snapshot_error.as_deref() {
            Err(format!("state snapshot failing: {error}"))
        } else if !self.broker_up.load(Ordering::Relaxed) {
            Err("no broker reachable".into())
        } else if !self.broker_answering.load(Ordering::Relaxed) {
            Err("brokers not answering metadata requests".into())
        } else if !missing.is_empty() {
            Err(format!("output topics missing on the brokers: {}", missing.join(", ")))
        } else if !self.partitions_assigned.load(Ordering::Relaxed) {
            Err("no partitions assigned".into())
        } else {
            Ok(())
        }
    }
}

/// Lets a log line through at most once per interval and counts the ones held back, so a
/// failure shared by thousands of records in flight costs one line per interval, not one each.
pub struct LogLimit {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    pub fn every(interval: Duration) -> LogLimit {
        LogLimit { interval, state: Mutex::new((None, 0)) }
    }

    /// `Some(lines held back since the last one let through)` if this line may be written.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < self.interval) {
            *held += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(held))
    }
}

/// The rate-limited log lines, one limit per kind of line.
pub struct LogLimits {
    pub delivery_failed: LogLimit,
    pub output_refused: LogLimit,
}

impl Default for LogLimits {
    fn default() -> Self {
        let every = || LogLimit::every(Duration::from_secs(10));
        LogLimits { delivery_failed: every(), output_refused: every() }
    }
}

/// Metrics and health of one service instance, shared by the service, the Kafka callbacks and HTTP.
pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
    pub log_limits: LogLimits,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        // Registering fixed, distinct names with valid label sets cannot fail.
        let metrics = Metrics::new().expect("metric definitions are valid");
        Telemetry { metrics, health: Health::default(), log_limits: LogLimits::default() }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// Installs the `tracing` subscriber: human-readable or JSON lines on stderr, filtered by `RUST_LOG`
/// (default `default_filter`, e.g. `info`).
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: in a file or a log collector they are escape bytes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second call (tests running several services in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_limit_lets_one_line_through_per_interval_and_counts_the_rest() {
        let limit = LogLimit::every(Duration::from_secs(3600));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!((limit.allow(), limit.allow()), (None, None));
        let open = LogLimit::every(Duration::ZERO);
        assert_eq!((open.allow(), open.allow()), (Some(0), Some(0)));
    }

    #[test]
    fn readiness_names_what_is_wrong() {
        let health = Health::default();
        for flag in [&health.state_loaded, &health.broker_up, &health.broker_answering, &health.partitions_assigned] {
            flag.store(true, Ordering::Relaxed);
        }
        assert_eq!(health.readiness(), Ok(()));
        *health.missing_topics.lock().unwrap() = vec!["alerts".into()];
        assert_eq!(health.readiness(), Err("output topics missing on the brokers: alerts".into()));
        *health.snapshot_error.lock().unwrap() = Some("disk full".into());
        assert_eq!(health.readiness(), Err("state snapshot failing: disk full".into()));
        *health.snapshot_error.lock().unwrap() = None;
        health.missing_topics.lock().unwrap().clear();
        health.broker_answering.store(false, Ordering::Relaxed);
        assert_eq!(health.readiness(), Err("brokers not answering metadata requests".into()));
    }
}
