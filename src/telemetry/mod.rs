//! Telemetry of the service: Prometheus metrics, health flags and log set-up.
//!
//! Each occurrence worth counting is a small struct in [`events`] whose `emit()` writes
//! the log line and updates the metric, so the two never disagree.

pub mod events;
pub mod http;

use crate::config::LogFormat;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::atomic::{AtomicBool, Ordering};

/// Every metric the service exports. Labels come only from bounded sets:
/// topic, partition, reason, detector, severity.
pub struct Metrics {
    registry: Registry,
    pub records_consumed: IntCounterVec,
    pub records_rejected: IntCounterVec,
    pub alerts_emitted: IntCounterVec,
    pub alert_latency: Histogram,
    pub delivery_errors: IntCounterVec,
    pub consumer_errors: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub identities_tracked: IntGauge,
    pub snapshot_age: Gauge,
    pub snapshot_size: IntGauge,
}

impl Metrics {
    fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let records_consumed =
            counter("overreach_records_consumed_total", "Records read from the input and grants topics.", &["topic"])?;
        let records_rejected = counter(
            "overreach_records_rejected_total",
            "Records that could not be decoded, by reason (sent to the dead-letter topic if one is set).",
            &["topic", "reason"],
        )?;
        let alerts_emitted = counter(
            "overreach_alerts_emitted_total",
            "Alerts acknowledged by the broker on the alert topic.",
            &["detector", "severity"],
        )?;
        let delivery_errors = counter(
            "overreach_delivery_errors_total",
            "Failed deliveries to the alert or dead-letter topic (each is retried).",
            &["topic"],
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
        let snapshot_age =
            Gauge::new("overreach_state_snapshot_age_seconds", "Seconds since the last state snapshot.")?;
        registry.register(Box::new(snapshot_age.clone()))?;
        let snapshot_size = IntGauge::new("overreach_state_snapshot_size_bytes", "Size of the last state snapshot.")?;
        registry.register(Box::new(snapshot_size.clone()))?;
        Ok(Metrics {
            registry,
            records_consumed,
            records_rejected,
            alerts_emitted,
            alert_latency,
            delivery_errors,
            consumer_errors,
            consumer_lag,
            identities_tracked,
            snapshot_age,
            snapshot_size,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// What `/readyz` reports: ready once the state is loaded, partitions are assigned and a broker is up.
#[derive(Default)]
pub struct Health {
    pub state_loaded: AtomicBool,
    pub partitions_assigned: AtomicBool,
    pub broker_up: AtomicBool,
}

impl Health {
    /// `Ok` when ready, otherwise what is missing.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if !self.state_loaded.load(Ordering::Relaxed) {
            Err("state not loaded")
        } else if !self.broker_up.load(Ordering::Relaxed) {
            Err("no broker reachable")
        } else if !self.partitions_assigned.load(Ordering::Relaxed) {
            Err("no partitions assigned")
        } else {
            Ok(())
        }
    }
}

/// Metrics and health of one service instance, shared by the service, the Kafka callbacks and HTTP.
pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        // Registering fixed, distinct names with valid label sets cannot fail.
        let metrics = Metrics::new().expect("metric definitions are valid");
        Telemetry { metrics, health: Health::default() }
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second call (tests running several services in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
