//! Producing the outputs of one input record (its alerts, its dead-letter copy) and telling
//! the service when the record is done.
//!
//! A failure a retry can fix (broker down, leader moving, timeout, topic not there yet) is
//! retried with backoff, and the input offset waits: at least once. A failure no retry can fix
//! (the record is too large, invalid, or the client is not authorized for the topic) is
//! *refused*: retrying the same bytes forever would block the partition for good, so it is
//! counted, logged, an alert's refusal is noted on the dead-letter topic, and the record is done.

use super::AlertProducer;
use super::{Backoff, TopicPartition};
use crate::alert::Severity;
use crate::decode::DecodeError;
use crate::detect::Detector;
use crate::telemetry::events::{DeliveryFailed, OutputRefused};
use crate::telemetry::Telemetry;
use futures_util::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;
use std::sync::Arc;

/// Header values carrying text from a record or from librdkafka are cut to this many bytes.
const MAX_HEADER_TEXT: usize = 1024;

/// One record to produce: an alert, a dead-letter record, or part of a checkpoint.
pub struct Output {
    pub topic: String,
    /// The partition, when the output must land in a given one (checkpoints); else by key.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone: a deletion on a compacted topic.
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
    /// Set for an alert: what its delivery counts as, and what a refusal note names.
    pub alert: Option<AlertInfo>,
}

pub struct AlertInfo {
    pub alert_id: String,
    pub detector: Detector,
    pub severity: Severity,
}

/// Where outputs go: the producer, the telemetry, and the dead-letter topic for refusal notes.
pub struct Deliverer {
    pub producer: AlertProducer,
    pub telemetry: Arc<Telemetry>,
    pub dead_letter_topic: Option<String>,
}

/// Why an output was refused for good.
struct Refused {
    reason: &'static str,
    error: KafkaError,
}

/// The bounded reason of an error no retry can fix, or `None` for a transient one. Everything
/// not listed is retried: a wrong guess here costs a retry loop, not a lost alert.
fn refusal_reason(error: &KafkaError) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    Some(match error.rdkafka_error_code()? {
        C::MessageSizeTooLarge => "message_too_large",
        C::InvalidMessageSize => "invalid_message_size",
        C::MessageBatchTooLarge => "record_list_too_large",
        C::InvalidRecord => "invalid_record",
        C::BadMessage => "bad_message",
        C::InvalidTimestamp => "invalid_timestamp",
        C::UnsupportedForMessageFormat => "unsupported_for_message_format",
        C::PolicyViolation => "policy_violation",
        C::InvalidTopic => "invalid_topic",
        C::TopicAuthorizationFailed => "topic_authorization_failed",
        C::ClusterAuthorizationFailed => "cluster_authorization_failed",
        _ => return None,
    })
}

impl Deliverer {
    /// Enqueues the first attempt of every output now, in order, so one identity's alerts and
    /// one partition's dead letters reach the broker in the order they were made although
    /// their deliveries finish on tasks of their own; [`Deliverer::deliver`] awaits them.
    pub fn enqueue(&self, outputs: Vec<Output>) -> Enqueued {
        let attempts = outputs
            .iter()
            .map(|output| self.producer.send_result(record(output, output.payload.as_deref(), None)).ok())
            .collect();
        Enqueued { outputs, attempts }
    }

    /// Resolves once every enqueued output of the input record at `offset` of `tp` (`None`
    /// for outputs of no record: a checkpoint) is acknowledged or refused, with the alerts
    /// the broker acknowledged (refused ones are counted where they are refused).
    pub async fn deliver(
        self: Arc<Self>,
        enqueued: Enqueued,
        source: Option<(TopicPartition, i64)>,
    ) -> Vec<(Detector, Severity)> {
        let Enqueued { outputs, attempts } = enqueued;
        let results = join_all(outputs.iter().zip(attempts).map(|(output, first)| self.send(output, first))).await;
        let mut alerts = Vec::new();
        for (output, result) in outputs.iter().zip(results) {
            match (result, &output.alert) {
                (Ok(()), Some(alert)) => alerts.push((alert.detector, alert.severity)),
                (Ok(()), None) => {}
                (Err(refused), alert) => self.refused(output, alert.as_ref(), &refused, source.as_ref()).await,
            }
        }
        alerts
    }

    /// Counts and logs a refusal; a refused alert is noted on the dead-letter topic, whose own
    /// refusal of the note is only counted (there is nowhere further to send it).
    async fn refused(
        &self,
        output: &Output,
        alert: Option<&AlertInfo>,
        refused: &Refused,
        source: Option<&(TopicPartition, i64)>,
    ) {
        self.count_refused(&output.topic, alert, refused, source);
        let (Some(alert), Some(dlq), Some((tp, offset))) = (alert, &self.dead_letter_topic, source) else { return };
        let note = refusal_note(dlq, output, alert, refused, tp, *offset);
        if let Err(again) = self.send(&note, None).await {
            self.count_refused(dlq, None, &again, source);
        }
    }

    fn count_refused(
        &self,
        topic: &str,
        alert: Option<&AlertInfo>,
        refused: &Refused,
        source: Option<&(TopicPartition, i64)>,
    ) {
        let (source_topic, source_partition, source_offset) = match source {
            Some((tp, offset)) => (tp.topic.as_str(), tp.partition, *offset),
            None => ("", -1, -1),
        };
        OutputRefused {
            topic,
            alert: alert.map(|a| (a.alert_id.as_str(), a.detector)),
            reason: refused.reason,
            error: &refused.error,
            source_topic,
            source_partition,
            source_offset,
        }
        .emit(&self.telemetry);
    }

    /// Sends one output (its `first` attempt already enqueued, if it could be), retrying
    /// transient failures with backoff until the broker acknowledges it. A dead-letter copy too
    /// large for the producer is sent again without its payload (header
    /// `payload_dropped_bytes`) before it counts as refused.
    async fn send(&self, output: &Output, mut first: Option<DeliveryFuture>) -> Result<(), Refused> {
        let mut backoff = Backoff::default();
        let mut payload: Option<&[u8]> = output.payload.as_deref();
        let mut extra_header = None;
        loop {
            let error = match first.take() {
                Some(attempt) => match attempt.await {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err((error, _))) => error,
                    // The producer went away with the attempt queued: sent again below.
                    Err(_) => KafkaError::Canceled,
                },
                None => {
                    match self.producer.send(record(output, payload, extra_header.as_ref()), Timeout::Never).await {
                        Ok(_) => return Ok(()),
                        Err((error, _)) => error,
                    }
                }
            };
            if let Some(reason) = refusal_reason(&error) {
                let too_large = reason == "message_too_large";
                let dead_letter = output.alert.is_none() && output.partition.is_none();
                if let Some(bytes) = payload.filter(|p| too_large && dead_letter && !p.is_empty()) {
                    extra_header = Some(("payload_dropped_bytes", bytes.len().to_string()));
                    payload = Some(&[]);
                    continue;
                }
                return Err(Refused { reason, error });
            }
            let retry_in = backoff.next_delay();
            DeliveryFailed { topic: &output.topic, error: &error, retry_in }.emit(&self.telemetry);
            tokio::time::sleep(retry_in).await;
        }
    }
}

/// Outputs whose first attempt is enqueued on the producer.
pub struct Enqueued {
    outputs: Vec<Output>,
    /// Each output's first attempt; `None` where the producer's queue refused it at once (it
    /// is retried like any failure).
    attempts: Vec<Option<DeliveryFuture>>,
}

/// The producer record of `output`, with `payload` in place of its own and an extra header.
fn record<'a>(
    output: &'a Output,
    payload: Option<&'a [u8]>,
    extra_header: Option<&'a (&'static str, String)>,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(output.headers.len() + 1);
    for (key, value) in output.headers.iter().chain(extra_header) {
        headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output.topic).headers(headers);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    if let Some(key) = &output.key {
        record = record.key(&key[..]);
    }
    if let Some(partition) = output.partition {
        record = record.partition(partition);
    }
    record
}

/// The dead-letter copy of a bad input record: the original key and bytes, with headers naming
/// why and where from.
pub fn rejected_record(
    dlq: &str,
    message: &BorrowedMessage<'_>,
    tp: &TopicPartition,
    offset: i64,
    errors: &[DecodeError],
) -> Output {
    let first = &errors[0];
    Output {
        topic: dlq.to_string(),
        partition: None,
        key: message.key().map(<[u8]>::to_vec),
        payload: Some(message.payload().unwrap_or_default().to_vec()),
        headers: vec![
            ("reason", first.kind().to_string()),
            ("error", header_text(&first.to_string())),
            ("rejected_records", errors.len().to_string()),
            ("source_topic", tp.topic.clone()),
            ("source_partition", tp.partition.to_string()),
            ("source_offset", offset.to_string()),
        ],
        alert: None,
    }
}

/// The dead-letter note of an alert the alert topic refused: no payload (the alert may be what
/// was too large), headers naming the alert, the reason and the input record that caused it,
/// which can be read again from its topic/partition/offset.
fn refusal_note(
    dlq: &str,
    alert: &Output,
    info: &AlertInfo,
    refused: &Refused,
    tp: &TopicPartition,
    offset: i64,
) -> Output {
    Output {
        topic: dlq.to_string(),
        partition: None,
        key: alert.key.clone(),
        payload: Some(Vec::new()),
        headers: vec![
            ("reason", refused.reason.to_string()),
            ("error", header_text(&refused.error.to_string())),
            ("alert_id", info.alert_id.clone()),
            ("detector", info.detector.name().to_string()),
            ("severity", info.severity.name().to_string()),
            ("alert_bytes", alert.payload.as_ref().map_or(0, Vec::len).to_string()),
            ("alert_topic", alert.topic.clone()),
            ("source_topic", tp.topic.clone()),
            ("source_partition", tp.partition.to_string()),
            ("source_offset", offset.to_string()),
        ],
        alert: None,
    }
}

/// Text for a header: control characters escaped (a record must not reach a terminal that
/// prints headers raw), then bounded.
fn header_text(text: &str) -> String {
    crate::text::printable(text, MAX_HEADER_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode as C;

    #[test]
    fn errors_no_retry_can_fix_are_refused_and_the_rest_retried() {
        let produce = KafkaError::MessageProduction;
        let cases = [
            (C::MessageSizeTooLarge, Some("message_too_large")),
            (C::MessageBatchTooLarge, Some("record_list_too_large")),
            (C::InvalidRecord, Some("invalid_record")),
            (C::TopicAuthorizationFailed, Some("topic_authorization_failed")),
            (C::MessageTimedOut, None),
            (C::AllBrokersDown, None),
            (C::NotLeaderForPartition, None),
            (C::UnknownTopicOrPartition, None),
            (C::UnknownTopic, None),
            (C::QueueFull, None),
        ];
        for (code, want) in cases {
            assert_eq!(refusal_reason(&produce(code)), want, "{code:?}");
        }
        assert_eq!(refusal_reason(&KafkaError::Canceled), None);
    }

    #[test]
    fn header_text_is_escaped_and_bounded() {
        assert_eq!(header_text("found `\x1b[2J\r\nforged`"), "found `\\u{1b}[2J\\u{d}\\u{a}forged`");
        let long = header_text(&"x".repeat(10_000));
        assert!(long.len() <= MAX_HEADER_TEXT && long.ends_with("bytes]"), "{long}");
    }
}
