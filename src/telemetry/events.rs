//! One struct per occurrence: `emit()` logs it and updates its metric.

use super::Telemetry;
use crate::alert::Severity;
use crate::decode::DecodeError;
use crate::detect::Detector;
use rdkafka::error::KafkaError;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub struct RecordConsumed<'a> {
    pub topic: &'a str,
}

impl RecordConsumed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        t.metrics.records_consumed.with_label_values(&[self.topic]).inc();
    }
}

pub struct RecordRejected<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a DecodeError,
}

impl RecordRejected<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(topic = self.topic, partition = self.partition, offset = self.offset,
            reason = self.error.kind(), error = %self.error, "Record rejected.");
        t.metrics.records_rejected.with_label_values(&[self.topic, self.error.kind()]).inc();
    }
}

/// Every alert caused by one input record was acknowledged by the broker.
pub struct AlertsDelivered<'a> {
    pub alerts: &'a [(Detector, Severity)],
    /// From consuming the record to the last acknowledgement.
    pub latency: Duration,
}

impl AlertsDelivered<'_> {
    pub fn emit(&self, t: &Telemetry) {
        for (detector, severity) in self.alerts {
            tracing::debug!(detector = detector.name(), severity = severity.name(), "Alert delivered.");
            t.metrics.alerts_emitted.with_label_values(&[detector.name(), severity.name()]).inc();
        }
        if !self.alerts.is_empty() {
            t.metrics.alert_latency.observe(self.latency.as_secs_f64());
        }
    }
}

pub struct DeliveryFailed<'a> {
    pub topic: &'a str,
    pub error: &'a KafkaError,
    pub retry_in: Duration,
}

impl DeliveryFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::warn!(topic = self.topic, error = %self.error, retry_in_ms = self.retry_in.as_millis() as u64,
            "Delivery failed, retrying.");
        t.metrics.delivery_errors.with_label_values(&[self.topic]).inc();
    }
}

pub struct ConsumerFailed<'a> {
    pub error: &'a KafkaError,
    pub retry_in: Duration,
}

impl ConsumerFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        // The error code is a closed set; the message text is not, so it only goes to the log.
        let reason = self.error.rdkafka_error_code().map(|c| format!("{c:?}")).unwrap_or_else(|| "other".into());
        tracing::warn!(error = %self.error, retry_in_ms = self.retry_in.as_millis() as u64, "Consumer error.");
        t.metrics.consumer_errors.with_label_values(&[&reason]).inc();
    }
}

pub struct BrokerReachability {
    pub up: bool,
}

impl BrokerReachability {
    pub fn emit(&self, t: &Telemetry) {
        let was = t.health.broker_up.swap(self.up, Ordering::Relaxed);
        match (was, self.up) {
            (false, true) => tracing::info!("Broker reachable."),
            (true, false) => tracing::warn!("No broker reachable; librdkafka keeps retrying."),
            _ => {}
        }
    }
}

pub struct ConsumerLag<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub lag: i64,
}

impl ConsumerLag<'_> {
    pub fn emit(&self, t: &Telemetry) {
        t.metrics.consumer_lag.with_label_values(&[self.topic, &self.partition.to_string()]).set(self.lag);
    }
}

pub struct PartitionsAssigned {
    pub count: usize,
    /// Partitions started at the position recorded in the state snapshot rather than the committed offset.
    pub from_snapshot: usize,
}

impl PartitionsAssigned {
    pub fn emit(&self, t: &Telemetry) {
        tracing::info!(count = self.count, from_snapshot = self.from_snapshot, "Partitions assigned.");
        t.health.partitions_assigned.store(self.count > 0, Ordering::Relaxed);
    }
}

pub struct PartitionsRevoked {
    pub count: usize,
}

impl PartitionsRevoked {
    pub fn emit(&self, t: &Telemetry) {
        tracing::info!(count = self.count, "Partitions revoked.");
        t.health.partitions_assigned.store(false, Ordering::Relaxed);
    }
}

pub struct StateRestored<'a> {
    /// `None` when there was no snapshot to restore and the engine starts empty.
    pub path: Option<&'a Path>,
    pub partitions: usize,
    pub identities: u64,
}

impl StateRestored<'_> {
    pub fn emit(&self, t: &Telemetry) {
        match self.path {
            Some(path) => tracing::info!(path = %path.display(), partitions = self.partitions,
                identities = self.identities, "State restored from snapshot."),
            None => tracing::info!("No state snapshot; starting with empty baselines."),
        }
        t.metrics.identities_tracked.set(self.identities as i64);
        t.health.state_loaded.store(true, Ordering::Relaxed);
    }
}

pub struct SnapshotWritten<'a> {
    pub path: &'a Path,
    pub bytes: u64,
    pub partitions: usize,
    pub elapsed: Duration,
}

impl SnapshotWritten<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::info!(path = %self.path.display(), bytes = self.bytes, partitions = self.partitions,
            elapsed_ms = self.elapsed.as_millis() as u64, "State snapshot written.");
        t.metrics.snapshot_size.set(self.bytes as i64);
        t.metrics.snapshot_age.set(0.0);
    }
}

pub struct SnapshotFailed<'a> {
    pub path: &'a Path,
    pub error: &'a std::io::Error,
}

impl SnapshotFailed<'_> {
    pub fn emit(&self, _t: &Telemetry) {
        tracing::error!(path = %self.path.display(), error = %self.error, "State snapshot failed; will retry.");
    }
}
