//! Unkeyed input (`repartition = true`): each instance moves the access-log records it is
//! given to the repartition topic, keyed and partitioned by identity, where the group judges
//! them (docs/service.md, "Unkeyed input").
//!
//! Many shippers write access logs with no key, or keyed by account or host, so one
//! identity's records spread over every partition and its baseline would be split between
//! instances. This stage reads the input topics in a group of its own (`<group>-repartition`),
//! decodes each message in the input's format, and produces every record, as decoded (format
//! `record`), to partition `stable_hash(identity) % n` of the repartition topic. A message's
//! offset is committed once all its records are acknowledged: at least once, like the alerts.
//! Bad records are rejected here, with their place, as the group would reject them.
//!
//! Order: the records of one input partition reach each repartition partition in their input
//! order. Records of one identity read from several input partitions interleave in the order
//! the stage reads them; the judging side's order stage puts them back in event time within
//! `lateness_s`, so an unkeyed input spread over several partitions wants a lateness as wide
//! as the partitions drift apart.

use crate::config::ServiceConfig;
use crate::decode::decode_line;
use crate::kafka::delivery::{self, Deliverer, Output};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::{self as kafka_io, Backoff, TopicPartition};
use crate::model::{Lifecycle, Record};
use crate::telemetry::events::{ConsumerFailed, InputCounted, RecordRejected};
use crate::telemetry::Telemetry;
use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Messages whose records are still being produced; past it, reading pauses.
const MAX_IN_FLIGHT: usize = 10_000;
/// How often acknowledged positions are committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the stage until `stop` turns true, then waits (at most `timeout`) for the records in
/// flight and commits what they covered.
pub async fn run(
    config: Arc<ServiceConfig>,
    telemetry: Arc<Telemetry>,
    deliverer: Arc<Deliverer>,
    partitions: i32,
    mut stop: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let consumer = kafka_io::create_group_reader(&config, "repartition")?;
    let topics: Vec<&str> = config.input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe to the input topics to repartition them")?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(TopicPartition, i64)>();
    let mut stage = Stage {
        config: &config,
        telemetry: &telemetry,
        partitions,
        tracker: OffsetTracker::default(),
        in_flight: 0,
        released: BTreeMap::new(),
    };
    let mut commit_timer = tokio::time::interval(COMMIT_INTERVAL);
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some((tp, offset)) = done_rx.recv() => stage.done(tp, offset),
            _ = commit_timer.tick() => stage.commit(&consumer),
            message = consumer.recv(), if stage.in_flight < MAX_IN_FLIGHT => match message {
                Ok(message) => {
                    backoff.reset();
                    // A rebalance runs inside `recv`: what it took is forgotten before the
                    // next message, which may be of a partition given back at another offset.
                    stage.forget(consumer.context().take_revoked());
                    if let Some((tp, offset, outputs)) = stage.route(&message) {
                        let enqueued = deliverer.enqueue(outputs);
                        let (deliverer, done) = (Arc::clone(&deliverer), done_tx.clone());
                        tokio::spawn(async move {
                            deliverer.deliver(enqueued, Some((tp.clone(), offset))).await;
                            let _ = done.send((tp, offset));
                        });
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(error) => {
                    let retry_in = backoff.next_delay();
                    ConsumerFailed { error: &error, retry_in }.emit(&telemetry);
                    tokio::time::sleep(retry_in).await;
                }
            },
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while stage.in_flight > 0 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((tp, offset))) => stage.done(tp, offset),
            _ => break,
        }
    }
    stage.commit(&consumer);
    if stage.in_flight > 0 {
        tracing::warn!(
            in_flight = stage.in_flight,
            "Repartition: records still unacknowledged at the shutdown timeout; read again at the next start."
        );
    }
    Ok(())
}

struct Stage<'a> {
    config: &'a ServiceConfig,
    telemetry: &'a Telemetry,
    /// Partitions of the repartition topic.
    partitions: i32,
    tracker: OffsetTracker,
    in_flight: usize,
    /// The next offset to commit per input partition, acknowledged since the last commit.
    released: BTreeMap<TopicPartition, i64>,
}

impl Stage<'_> {
    /// One input message as outputs: each record to its identity's partition, the message to
    /// the dead-letter topic if any of it was bad. `None` when there is nothing to produce.
    fn route(&mut self, message: &BorrowedMessage<'_>) -> Option<(TopicPartition, i64, Vec<Output>)> {
        let tp = TopicPartition { topic: message.topic().to_string(), partition: message.partition() };
        let offset = message.offset();
        InputCounted { topic: &tp.topic, consumed: 1, processed: 0 }.emit(self.telemetry);
        let payload = message.payload().unwrap_or_default();
        let mut outputs = Vec::new();
        let mut errors = Vec::new();
        for result in decode_line(payload, self.config.format_of(&tp.topic), &self.config.limits()) {
            match result {
                Ok(record) => outputs.push(self.moved(&record)),
                Err(error) => errors.push(error),
            }
        }
        for error in &errors {
            RecordRejected { topic: &tp.topic, partition: tp.partition, offset, error }.emit(self.telemetry);
        }
        if let (Some(dlq), false) = (&self.config.dlq_topic, errors.is_empty()) {
            outputs.push(delivery::rejected_record(dlq, message, &tp, offset, &errors));
        }
        self.tracker.begin(&tp, offset);
        if outputs.is_empty() {
            self.done_now(tp, offset);
            return None;
        }
        self.in_flight += 1;
        Some((tp, offset, outputs))
    }

    /// A record on its way to the repartition topic.
    fn moved(&self, record: &Record) -> Output {
        let key = routing_key(record);
        let partition = (crate::baseline::stable_hash(key) % self.partitions.max(1) as u64) as i32;
        Output {
            topic: self.config.repartition_topic(),
            partition: Some(partition),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(serde_json::to_vec(record).unwrap_or_default()),
            headers: Vec::new(),
            alert: None,
        }
    }

    /// Lets go of revoked partitions: nothing more of theirs is committed from here.
    fn forget(&mut self, revoked: Vec<TopicPartition>) {
        for tp in revoked {
            self.tracker.forget(&tp);
            self.released.remove(&tp);
        }
    }

    fn done(&mut self, tp: TopicPartition, offset: i64) {
        self.in_flight -= 1;
        self.done_now(tp, offset);
    }

    fn done_now(&mut self, tp: TopicPartition, offset: i64) {
        if let Some(next) = self.tracker.complete(&tp, offset) {
            self.released.insert(tp, next);
        }
    }

    fn commit(&mut self, consumer: &rdkafka::consumer::StreamConsumer<kafka_io::RevokeLog>) {
        self.forget(consumer.context().take_revoked());
        if self.released.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in std::mem::take(&mut self.released) {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(next));
        }
        // A partition revoked meanwhile fails to commit; its new reader moves its records again
        // (at least once).
        if let Err(error) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(%error, "Repartition: offsets not committed.");
        }
    }
}

/// What places a record: its identity; a fact of the whole fleet (a grant, a revoked
/// credential) goes with the identity it names, or else to one partition for all.
fn routing_key(record: &Record) -> &str {
    match record {
        Record::Access(event) => &event.identity,
        Record::Lifecycle { fact, .. } => match &**fact {
            // Both with the identity, so that its deletion and its creation stay in order.
            Lifecycle::IdentityOffboarded { identity } | Lifecycle::IdentityActivated { identity } => identity,
            _ => "",
        },
        Record::Verdict(_) => "",
    }
}
