//! One struct per occurrence: `emit()` logs it and updates its metric.

//!
//! Text that can carry bytes from a record (decode errors, librdkafka errors, which may echo
//! record data) is escaped with [`escape_control`] before it reaches the log, so a record cannot
//! clear an operator's terminal or forge a log line.

use super::Telemetry;
use crate::alert::Severity;
use crate::decode::DecodeError;
use crate::detect::Detector;
use crate::text::escape_control;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

/// `text` as it may be logged: its control characters escaped.
pub fn printable(text: &dyn std::fmt::Display) -> String {
    escape_control(&text.to_string()).into_owned()
}

pub struct InputCounted<'a> {
    pub topic: &'a str,
    /// Messages read.
    pub consumed: u64,
    /// Records (a message may carry several) the engine judged, after the order stage.
    pub processed: u64,
}

impl InputCounted<'_> {
    pub fn emit(&self, t: &Telemetry) {
        t.metrics.records_consumed.with_label_values(&[self.topic]).inc_by(self.consumed);
        t.metrics.records_processed.with_label_values(&[self.topic]).inc_by(self.processed);
    }
}

/// A batch of messages was taken in and decoded into the order stage in `elapsed` (the engine's
/// time is added by `Core::run_engine`).
pub struct BatchProcessed {
    pub elapsed: Duration,
}

impl BatchProcessed {
    pub fn emit(&self, t: &Telemetry) {
        t.metrics.processing_seconds.inc_by(self.elapsed.as_secs_f64());
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
            reason = self.error.kind(), error = %printable(self.error), "Record rejected.");
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

/// A suppression rule kept `count` more findings out of alerts and incidents.
pub struct FindingsSuppressed<'a> {
    pub rule: &'a str,
    pub count: u64,
}

impl FindingsSuppressed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(rule = self.rule, count = self.count, "Findings suppressed.");
        t.metrics.suppressed_by_rule.with_label_values(&[self.rule]).inc_by(self.count);
    }
}

/// A delivery failed in a way a retry can fix (broker down, leader moving, timeout, topic
/// missing); it is retried, and the input offset waits for it.
pub struct DeliveryFailed<'a> {
    pub topic: &'a str,
    pub error: &'a KafkaError,
    pub retry_in: Duration,
}

impl DeliveryFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        t.metrics.delivery_errors.with_label_values(&[self.topic]).inc();
        let Some(held_back) = t.log_limits.delivery_failed.allow() else { return };
        let error = printable(self.error);
        let retry_in_ms = self.retry_in.as_millis() as u64;
        let unknown_topic = matches!(
            self.error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
        );
        if unknown_topic {
            tracing::error!(topic = self.topic, %error, retry_in_ms, held_back,
                "Delivery failed: the topic does not exist; create it. Outputs are held, not lost, and retried.");
        } else {
            tracing::warn!(topic = self.topic, %error, retry_in_ms, held_back, "Delivery failed, retrying.");
        }
    }
}

/// An output the broker or producer refused for good (too large, not authorized, invalid):
/// counted, logged, noted on the dead-letter topic if it was an alert, and its input released.
pub struct OutputRefused<'a> {
    pub topic: &'a str,
    /// `Some((alert_id, detector))` for an alert, `None` for a dead-letter record.
    pub alert: Option<(&'a str, Detector)>,
    /// Bounded name of the error, the metric label.
    pub reason: &'static str,
    pub error: &'a KafkaError,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl OutputRefused<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let metric = if self.alert.is_some() { &t.metrics.alerts_dropped } else { &t.metrics.dead_letters_dropped };
        metric.with_label_values(&[self.reason]).inc();
        let Some(held_back) = t.log_limits.output_refused.allow() else { return };
        let error = printable(self.error);
        let (alert_id, detector) = self.alert.map_or(("", ""), |(id, d)| (id, d.name()));
        tracing::warn!(topic = self.topic, reason = self.reason, %error, alert_id, detector,
            source_topic = self.source_topic, source_partition = self.source_partition,
            source_offset = self.source_offset, held_back,
            "Output refused for good; not retried, and its input offset released.");
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
        tracing::warn!(error = %printable(self.error), retry_in_ms = self.retry_in.as_millis() as u64,
            "Consumer error.");
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

/// The result of a metadata probe: whether a broker answered in time.
pub struct BrokerAnswering<'a> {
    /// `None` if it answered, else the probe's error.
    pub error: Option<&'a KafkaError>,
}

impl BrokerAnswering<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let was = t.health.broker_answering.swap(self.error.is_none(), Ordering::Relaxed);
        match (was, self.error) {
            (false, None) => tracing::info!("Brokers answer metadata requests."),
            (true, Some(error)) => tracing::warn!(error = %printable(error),
                "Brokers do not answer metadata requests; not ready until they do."),
            _ => {}
        }
    }
}

/// The output topics the brokers do not know, from a metadata probe (empty when all exist).
pub struct TopicsMissing<'a> {
    pub topics: &'a [String],
}

impl TopicsMissing<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let mut missing = t.health.missing_topics.lock().unwrap_or_else(PoisonError::into_inner);
        if missing.as_slice() == self.topics {
            return;
        }
        if self.topics.is_empty() {
            tracing::info!("Output topics exist again.");
        } else {
            tracing::error!(topics = ?self.topics,
                "Output topics missing on the brokers; create them. Alerts are held, not lost, and retried.");
        }
        *missing = self.topics.to_vec();
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

/// What the order stage counted since it was last reported.
pub struct OrderCounted<'a> {
    pub counts: crate::order::OrderCounts,
    pub reported: &'a mut crate::order::OrderCounts,
}

impl OrderCounted<'_> {
    pub fn emit(self, t: &Telemetry) {
        let (now, before) = (self.counts, *self.reported);
        if now.late > before.late {
            tracing::debug!(late = now.late - before.late, "Records later than the lateness allowance.");
            t.metrics.records_late.inc_by(now.late - before.late);
        }
        if now.released_early > before.released_early {
            t.metrics.records_released_early.inc_by(now.released_early - before.released_early);
        }
        *self.reported = now;
    }
}

/// A partition's checkpoint was handed to the producer.
pub struct CheckpointPublished<'a> {
    pub tp: &'a crate::kafka::TopicPartition,
    pub identities: usize,
    pub state_bytes: usize,
    pub elapsed: Duration,
}

impl CheckpointPublished<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(topic = %self.tp.topic, partition = self.tp.partition, identities = self.identities,
            state_bytes = self.state_bytes, elapsed_ms = self.elapsed.as_millis() as u64, "Checkpoint published.");
        let labels = [self.tp.topic.as_str(), &self.tp.partition.to_string()];
        t.metrics.checkpoint_bytes.with_label_values(&labels).set(self.state_bytes as i64);
        t.metrics.partition_identities.with_label_values(&labels).set(self.identities as i64);
        t.metrics.checkpoints.inc();
    }
}

/// A partition changed hands: taken over with its state (`incoming`), or let go.
pub struct HandedOver<'a> {
    pub tp: &'a crate::kafka::TopicPartition,
    pub incoming: bool,
    /// Where the state came from (`state_topic`, `local`, `none`) or how it was left
    /// (`checkpoint`, `last_checkpoint`).
    pub source: &'static str,
    pub identities: usize,
    pub elapsed: Duration,
}

impl HandedOver<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let direction = if self.incoming { "in" } else { "out" };
        tracing::info!(topic = %self.tp.topic, partition = self.tp.partition, direction, source = self.source,
            identities = self.identities, elapsed_ms = self.elapsed.as_millis() as u64, "Partition handed over.");
        t.metrics.handovers.with_label_values(&[direction, self.source]).inc();
        t.metrics.handover_seconds.observe(self.elapsed.as_secs_f64());
        let labels = [self.tp.topic.as_str(), &self.tp.partition.to_string()];
        let identities = if self.incoming { self.identities as i64 } else { 0 };
        t.metrics.partition_identities.with_label_values(&labels).set(identities);
    }
}

/// How many input partitions this instance holds, after a rebalance.
pub struct PartitionsHeld {
    pub count: usize,
}

impl PartitionsHeld {
    pub fn emit(&self, t: &Telemetry) {
        tracing::info!(count = self.count, "Input partitions held.");
        t.health.partitions_assigned.store(self.count > 0, Ordering::Relaxed);
    }
}

/// Restoring assigned partitions' state begins (`true`) or ends.
pub struct Restoring(pub bool);

impl Restoring {
    pub fn emit(&self, t: &Telemetry) {
        t.health.restoring.store(self.0, Ordering::Relaxed);
    }
}

/// A record of the state or fleet topic (or the topic itself) could not be read.
pub struct StateRestoreFailed<'a> {
    pub tp: &'a crate::kafka::TopicPartition,
    pub what: &'static str,
    pub error: &'a str,
}

impl StateRestoreFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::warn!(topic = %self.tp.topic, partition = self.tp.partition, what = self.what,
            error = %printable(&self.error), "State not read.");
        t.metrics.state_read_errors.with_label_values(&[self.what]).inc();
    }
}

/// A verdict about an alert this instance does not know, while other instances hold partitions.
pub struct VerdictNotHeld;

impl VerdictNotHeld {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!("Verdict about an alert not held here; another instance holds its identity.");
        t.metrics.verdicts_not_held.inc();
    }
}

pub struct PartitionsAssigned {
    pub count: usize,
    /// Partitions started at the position recorded in the state snapshot rather than the committed offset.
    pub from_snapshot: usize,
}

impl PartitionsAssigned {
    pub fn emit(&self, _: &Telemetry) {
        tracing::info!(count = self.count, from_snapshot = self.from_snapshot, "Partitions assigned.");
    }
}

pub struct PartitionsRevoked {
    pub count: usize,
}

impl PartitionsRevoked {
    pub fn emit(&self, _: &Telemetry) {
        tracing::info!(count = self.count, "Partitions revoked.");
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
        *t.health.snapshot_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A snapshot could not be written: not ready until one is, and the age keeps growing.
pub struct SnapshotFailed<'a> {
    pub path: &'a Path,
    pub error: &'a dyn std::error::Error,
}

impl SnapshotFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::error!(path = %self.path.display(), error = %self.error, "State snapshot failed; will retry.");
        t.metrics.snapshot_failures.inc();
        *t.health.snapshot_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.error.to_string());
    }
}
