//! The service's pipeline state: what the loop and the rebalance callbacks
//! share, behind one lock that is never held across an await.
//!
//! One path per record, as in replay: a message is decoded and its records
//! pushed into the order stage under their partition; what the stage lets
//! out goes through the engine, and each alert is produced. A message is done
//! once every record it held has been through the engine and every output it
//! caused is acknowledged; then its offset is released, in order per
//! partition (`PartitionOffsets`). It is committed once a checkpoint covering it
//! is acknowledged too: the group's committed offset never runs ahead of the
//! state topic, so an instance killed before its first checkpoint leaves its
//! successor the offset to start from with no state, not past records it
//! would never learn from.
//!
//! State per input partition: each identity belongs to the partition its
//! records come from (the engine's `Shard`), and a partition's checkpoint (its
//! changed identities, its position and what the order stage holds of it) is
//! published to the state topic at quiescent points and when it is revoked;
//! the instance it is assigned to next restores from there (`assigned`).

use super::poll_times::PollTimes;
use crate::alert::Alert;
use crate::config::ServiceConfig;
use crate::decode::{decode_line, DecodeError, Decoded, Limits};
use crate::engine::{Engine, Shard};
use crate::feedback::Refused;
use crate::kafka::delivery::{self, AlertInfo, Deliverer, Output};
use crate::kafka::handover::{self, Checkpoint, FactValue, HeldRecord, Key, PartitionValue, ShareValue, StateValue};
use crate::kafka::offsets::PartitionOffsets;
use crate::kafka::snapshot::{self, Positions};
use crate::kafka::{self, ClientLog, PartitionOwner, TopicPartition};
use crate::model::{Millis, Origin, Record};
use crate::order::{InputId, Order, OrderCounts};
use crate::telemetry::events::{
    AlertsDelivered, CheckpointPublished, HandedOver, InputCounted, OrderCounted, PartitionsHeld, RecordRejected,
    Restoring, SnapshotFailed, SnapshotWritten, StateRestoreFailed, VerdictNotHeld,
};
use crate::telemetry::Telemetry;
use crate::triage::recent::RecentAlerts;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long restoring one partition from the state topic may wait for a broker.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// How full the order stage (`Order::fill`) gets before partitions ahead of the one it waits
/// for are paused, and how empty before they are read again.
const PAUSE_AT: f64 = 0.5;
const RESUME_AT: f64 = 0.25;

/// What an input partition is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Access logs, from the group: its identities' state is this instance's.
    Access { shard: Shard },
    /// Grant and lifecycle events, read whole by every instance.
    Grants,
    /// Analyst verdicts, read whole by every instance.
    Feedback,
}

/// One partition the service reads into the order stage.
struct Input {
    tp: TopicPartition,
    /// The topic name every record's origin shares, so a record allocates none.
    topic: Arc<str>,
    role: Role,
    id: InputId,
    /// The next offset to read: everything before it is in the engine or held by the stage.
    position: Option<i64>,
    /// Messages consumed, and records the engine judged, since the last flush (for the metrics).
    consumed: u64,
    processed: u64,
    /// The next offset with every record before it judged and its outputs acknowledged.
    released: Option<i64>,
    /// The position the last acknowledged checkpoint of this partition covers.
    checkpointed: Option<i64>,
    /// The offset last stored for commit: the lower of the two above.
    stored: Option<i64>,
    /// Read to its end (the consumer said so) and when it last gave a message.
    at_end: bool,
    /// Not fetched for now: ahead in event time of the input the order stage waits for (`pace`).
    paused: bool,
    last_message: Instant,
    /// When the records the order stage holds were polled.
    polls: PollTimes,
    /// Lifecycle facts its logs stated, until they are published to the fleet topic
    /// (`publish_fleet_news`, or the partition's checkpoint if that comes first).
    facts: Vec<(String, FactValue)>,
    /// After a restore: identities whose state already holds their records before an offset
    /// (a checkpoint cut short by a crash wrote them, not the partition's position).
    ahead: HashMap<String, i64>,
    /// Each message received, in offset order, with its units of work left: records the engine
    /// has not had yet, plus deliveries of its outputs in flight. Kept with the partition, so
    /// that a record's bookkeeping copies and hashes no partition name; a queue, where a hash
    /// map of a full order stage's messages missed the cache on every record (perf: 6% of the
    /// service's thread).
    offsets: PartitionOffsets,
}

impl Input {
    /// The offset the group may commit: judged, acknowledged and covered by a checkpoint.
    fn committable(&self) -> Option<i64> {
        Some(self.released?.min(self.checkpointed?))
    }
}

/// Outputs of one delivery, and of what.
pub enum Work {
    /// The outputs of records of the message at `offset` of an input partition.
    Record { tp: TopicPartition, offset: i64, consumed_at: Instant },
    /// A checkpoint of partitions, each with the position it covers (none for the fleet news
    /// published between checkpoints).
    Checkpoint { covers: Vec<(TopicPartition, i64)> },
}

/// The detector and severity of each alert a delivery had acknowledged.
type AckedAlerts = Vec<(crate::detect::Detector, crate::alert::Severity)>;

/// Deliveries that have finished, waiting for the loop (or a revocation) to take them.
#[derive(Default)]
pub struct Finished {
    queue: Mutex<Vec<(Work, AckedAlerts)>>,
    pub notify: tokio::sync::Notify,
}

impl Finished {
    fn push(&self, work: Work, alerts: AckedAlerts) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push((work, alerts));
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<(Work, AckedAlerts)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Counts of one run, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub records: u64,
    pub rejected: u64,
    pub alerts: u64,
    /// Records judged out of event-time order (later than `lateness_s`) and records the full
    /// order stage let go before their allowance ran out, as replay's summary counts them.
    pub order: OrderCounts,
    /// Input records whose outputs were still unacknowledged when the shutdown timeout ended
    /// the wait; a restart reads them again.
    pub unacknowledged: u64,
    /// The snapshot at shutdown was due and could not be written (or was skipped because
    /// deliveries were unacknowledged): the next start resumes from an older one.
    pub final_snapshot_missing: bool,
}

impl RunSummary {
    /// `Err` when the stop was not clean, for the exit status.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.unacknowledged > 0 {
            anyhow::bail!(
                "stopped with the outputs of {} input records unacknowledged; they are read again at the next start",
                self.unacknowledged
            );
        }
        if self.final_snapshot_missing {
            anyhow::bail!("the final state snapshot could not be written; the next start resumes from an older one");
        }
        Ok(())
    }
}

pub struct Core {
    config: Arc<ServiceConfig>,
    limits: Limits,
    pub telemetry: Arc<Telemetry>,
    pub engine: Engine,
    order: Order,
    inputs: Vec<Input>,
    deliverer: Arc<Deliverer>,
    pub finished: Arc<Finished>,
    /// Deliveries in flight: of records' outputs, and of checkpoints.
    in_flight: usize,
    checkpoints_in_flight: usize,
    recent: Arc<RecentAlerts>,
    pub summary: RunSummary,
    /// What the local snapshot held for partitions not yet assigned: their position and the
    /// records its order stage held (their identities are in the engine, in their shard).
    cached: BTreeMap<TopicPartition, PartitionValue>,
    /// Partitions of the input topics, over all instances: all held here means a verdict
    /// about an alert this instance does not know is unknown everywhere.
    partitions_total: usize,
    /// Where the global reader is in each partition it reads (grants, verdicts, fleet table).
    global_positions: Positions,
    /// Reads a partition of the state topic back when it is assigned.
    restorer: Option<BaseConsumer<ClientLog>>,
    last_snapshot: Option<Instant>,
    started: Instant,
    /// Per suppression rule, the engine's count the metric has been given.
    suppressed_reported: BTreeMap<String, u64>,
    /// The order stage's counts the metrics have been given.
    order_reported: OrderCounts,
    /// Stopping: the final checkpoint is written, and leaving the group hands nothing over.
    closing: bool,
}

/// Where the service stands at start: the engine (from the local snapshot, or new) and what
/// the snapshot says of each partition.
pub struct Start {
    pub engine: Engine,
    pub positions: Positions,
    pub held: BTreeMap<TopicPartition, Vec<HeldRecord>>,
}

impl Core {
    pub fn new(
        config: Arc<ServiceConfig>,
        telemetry: Arc<Telemetry>,
        start: Start,
        deliverer: Arc<Deliverer>,
        recent: Arc<RecentAlerts>,
        partitions_total: usize,
    ) -> anyhow::Result<Core> {
        let Start { mut engine, positions, mut held } = start;
        engine.collect_fleet_news();
        let judged = config.judged_topics();
        let access: Vec<&String> = judged.iter().collect();
        let mut cached = BTreeMap::new();
        let mut global_positions = Positions::new();
        for (tp, position) in positions {
            if access.contains(&&tp.topic) {
                let held = held.remove(&tp).unwrap_or_default();
                cached.insert(tp, PartitionValue { version: handover::VERSION, position, held });
            } else {
                global_positions.insert(tp, position);
            }
        }
        let suppressed_reported = engine.stats().suppressed_by_rule.clone();
        Ok(Core {
            limits: config.limits(),
            order: Order::new(config.lateness_s as Millis * 1000),
            restorer: Some(kafka::create_reader(&config, "restore")?),
            config,
            telemetry,
            engine,
            inputs: Vec::new(),
            deliverer,
            finished: Arc::default(),
            in_flight: 0,
            checkpoints_in_flight: 0,
            recent,
            summary: RunSummary::default(),
            cached,
            partitions_total,
            global_positions,
            last_snapshot: None,
            started: Instant::now(),
            suppressed_reported,
            order_reported: OrderCounts::default(),
            closing: false,
        })
    }

    /// True while more records may be taken in: deliveries in flight are bounded, so a slow
    /// broker holds memory bounded instead of piling up outputs.
    pub fn accepting(&self, max_in_flight: usize) -> bool {
        self.in_flight < max_in_flight
    }

    pub fn quiescent(&self) -> bool {
        self.in_flight == 0
    }

    /// Where the global reader starts each partition of a topic read whole.
    pub fn global_start(&self, tp: &TopicPartition) -> Offset {
        self.global_positions.get(tp).map_or(Offset::Beginning, |&next| Offset::Offset(next))
    }

    fn input_index(&self, topic: &str, partition: i32) -> Option<usize> {
        self.inputs.iter().position(|i| i.tp.partition == partition && crate::text::same(&i.tp.topic, topic))
    }

    /// Adds a partition read into the order stage, with what it already held.
    fn add_input(&mut self, tp: TopicPartition, role: Role, position: Option<i64>, restored: Restored) {
        let Restored { held, ahead, .. } = restored;
        let id = self.order.add_input();
        let topic: Arc<str> = tp.topic.as_str().into();
        // A restored record's message is before the restored position: nothing of it is
        // committed from here, so it has no place among the partition's pending offsets.
        for h in held {
            let origin = Origin::Kafka { topic: Arc::clone(&topic), partition: tp.partition, offset: h.offset };
            self.order.push(id, (h.record, origin), 0);
        }
        self.inputs.push(Input {
            tp,
            topic,
            role,
            id,
            position,
            consumed: 0,
            processed: 0,
            released: None,
            checkpointed: None,
            stored: None,
            at_end: false,
            paused: false,
            last_message: Instant::now(),
            polls: PollTimes::default(),
            facts: Vec::new(),
            ahead,
            offsets: PartitionOffsets::default(),
        });
    }

    /// A partition of a topic every instance reads whole (grants, verdicts) joins the stage.
    pub fn add_global_input(&mut self, tp: TopicPartition, role: Role) {
        if self.input_index(&tp.topic, tp.partition).is_none() {
            self.add_input(tp, role, None, Restored::default());
        }
    }

    /// Decodes one message of an input partition and takes it in (see `take_in`).
    pub fn receive(&mut self, message: &BorrowedMessage<'_>) {
        let format = self.config.format_of(message.topic());
        let decoded = decode_line(message.payload().unwrap_or_default(), format, &self.limits);
        self.take_in(message, decoded, Instant::now());
    }

    /// Takes in one message of an input partition, polled at `consumed_at`, as decoded: its
    /// records go into the order stage (its lifecycle facts also to the fleet topic,
    /// `publish_fleet_news`), its rejects are counted and dead-lettered.
    pub fn take_in(&mut self, message: &BorrowedMessage<'_>, decoded: Decoded, consumed_at: Instant) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let Some(index) = self.input_index(topic, partition) else { return };
        let input = &mut self.inputs[index];
        // Polled before a rebalance that took the partition away and gave it back: the
        // restored position is past it, and the consumer reads it again from there.
        if input.position.is_some_and(|next| offset < next) {
            return;
        }
        self.summary.records += 1;
        input.consumed += 1;
        input.position = Some(offset + 1);
        input.at_end = false;
        input.last_message = consumed_at;
        let origin = Origin::Kafka { topic: Arc::clone(&input.topic), partition, offset };
        let payload = message.payload().unwrap_or_default();
        let good = decoded.iter().filter(|r| r.is_ok()).count();
        if good > 0 {
            input.polls.polled(offset, consumed_at);
        }
        let mut errors = Vec::new();
        for result in decoded {
            match result {
                Ok(record) => {
                    if let (Role::Access { .. }, Record::Lifecycle { time, event_id, fact }) = (input.role, &record) {
                        let value = FactValue { version: handover::VERSION, time: *time, fact: (**fact).clone() };
                        input.facts.push((event_id.clone(), value));
                    }
                    self.order.push(input.id, (record, origin.clone()), payload.len() / good.max(1));
                }
                Err(error) => errors.push(error),
            }
        }
        for error in &errors {
            RecordRejected { topic, partition, offset, error }.emit(&self.telemetry);
        }
        if !errors.is_empty() {
            self.summary.rejected += 1;
        }
        let dead_letter = self.config.dlq_topic.as_deref().filter(|_| !errors.is_empty()).map(|dlq| {
            let tp = input.tp.clone();
            (delivery::rejected_record(dlq, message, &tp, offset, &errors), Work::Record { tp, offset, consumed_at })
        });
        // Only the group's partitions are committed; the ones read whole are not.
        if matches!(input.role, Role::Access { .. }) {
            let units = good as u32 + u32::from(dead_letter.is_some());
            input.offsets.begin(offset, units);
            if units == 0 {
                self.release(index, offset);
            }
        }
        if let Some((output, work)) = dead_letter {
            self.deliver(vec![output], work);
        }
    }

    /// The consumer reached the end of `partition` (of some topic it reads, with `roles`).
    pub fn at_end(&mut self, partition: i32, access: bool) {
        for input in self.inputs.iter_mut().filter(|i| i.tp.partition == partition) {
            if matches!(input.role, Role::Access { .. }) == access {
                input.at_end = true;
            }
        }
    }

    /// Inputs read to their end and quiet for `idle_ms` hold the stage back no longer. A
    /// paused input is quiet because it is paused: it still holds the stage back.
    pub fn mark_idle(&mut self) {
        let idle = Duration::from_millis(self.config.idle_ms);
        for input in &self.inputs {
            let quiet = input.at_end && !input.paused && input.last_message.elapsed() >= idle;
            self.order.set_idle(input.id, quiet);
        }
    }

    /// A clean stop: every input counts as ended, so what the order stage holds is judged
    /// now, as replay judges what is left at the end of its files.
    pub fn drain(&mut self) {
        for input in &self.inputs {
            self.order.end(input.id);
        }
        self.run_engine();
    }

    /// Hands every record the order stage lets out to the engine, and produces what it says.
    /// Returns the judged records, for the caller to drop on the thread that decoded them
    /// (see `decoder`); dropping them at once is fine too.
    pub fn run_engine(&mut self) -> Vec<Record> {
        let started = Instant::now();
        let mut judged = Vec::new();
        while let Some(released) = self.order.pop() {
            let Origin::Kafka { offset, .. } = released.origin else { continue };
            let Some(index) = self.inputs.iter().position(|i| i.id == released.input) else { continue };
            let input = &mut self.inputs[index];
            input.processed += 1;
            let polled_at = input.polls.released(offset).unwrap_or(input.last_message);
            let role = input.role;
            let shard = match role {
                Role::Access { shard } => Some(shard),
                _ => None,
            };
            let already = match &released.record {
                Record::Access(e) if !input.ahead.is_empty() => {
                    input.ahead.get(e.identity.as_str()).is_some_and(|&upto| offset < upto)
                }
                _ => false,
            };
            let mut outputs = Vec::new();
            if !already {
                match self.engine.apply_in(&released.record, &released.origin, shard) {
                    Ok(alerts) => {
                        for alert in alerts {
                            outputs.push(self.alert_output(&alert));
                            self.recent.push(alert);
                        }
                    }
                    Err(refused) => {
                        let tp = self.inputs[index].tp.clone();
                        if let Some(output) = self.refused_verdict(refused, &released.record, &tp, offset) {
                            outputs.push(output);
                        }
                    }
                }
            }
            if matches!(role, Role::Access { .. }) {
                if !outputs.is_empty() {
                    self.inputs[index].offsets.add_unit(offset);
                }
                self.release(index, offset);
            }
            if !outputs.is_empty() {
                let work = Work::Record { tp: self.inputs[index].tp.clone(), offset, consumed_at: polled_at };
                self.deliver(outputs, work);
            }
            judged.push(released.record);
        }
        OrderCounted { counts: self.order.counts(), reported: &mut self.order_reported }.emit(&self.telemetry);
        self.telemetry.metrics.processing_seconds.inc_by(started.elapsed().as_secs_f64());
        judged
    }

    /// A verdict the engine could not apply: rejected with its place like a bad record, and
    /// dead-lettered, when this instance holds every input partition (the alert is unknown
    /// everywhere); otherwise another instance may hold its identity, and it is only counted.
    fn refused_verdict(
        &mut self,
        refused: Refused,
        record: &Record,
        tp: &TopicPartition,
        offset: i64,
    ) -> Option<Output> {
        let held_here = self.inputs.iter().filter(|i| matches!(i.role, Role::Access { .. })).count();
        if matches!(refused, Refused::UnknownAlert(_)) && held_here < self.partitions_total {
            VerdictNotHeld.emit(&self.telemetry);
            return None;
        }
        let error = DecodeError::from(refused);
        RecordRejected { topic: &tp.topic, partition: tp.partition, offset, error: &error }.emit(&self.telemetry);
        self.summary.rejected += 1;
        let dlq = self.config.dlq_topic.as_ref()?;
        // The verdict as decoded: the message it came in was taken apart by the order stage.
        Some(Output {
            topic: dlq.clone(),
            partition: None,
            key: None,
            payload: Some(serde_json::to_vec(record).unwrap_or_default()),
            headers: vec![
                ("reason", error.kind().to_string()),
                ("error", crate::text::printable(&error.to_string(), 1024)),
                ("source_topic", tp.topic.clone()),
                ("source_partition", tp.partition.to_string()),
                ("source_offset", offset.to_string()),
            ],
            alert: None,
        })
    }

    /// The alert as produced: JSON, keyed by identity so one identity's alerts stay in order,
    /// with `detector`, `severity` and `alert_id` headers for routing without parsing.
    fn alert_output(&self, alert: &Alert) -> Output {
        Output {
            topic: self.config.alert_topic.clone(),
            partition: None,
            key: Some(alert.identity.as_bytes().to_vec()),
            payload: Some(crate::ocsf::render(alert, self.config.alert_format).into_bytes()),
            headers: vec![
                ("detector", alert.detector.name().to_string()),
                ("severity", alert.severity.name().to_string()),
                ("alert_id", alert.alert_id.clone()),
            ],
            alert: Some(AlertInfo {
                alert_id: alert.alert_id.clone(),
                detector: alert.detector,
                severity: alert.severity,
            }),
        }
    }

    fn deliver(&mut self, outputs: Vec<Output>, work: Work) {
        let source = match &work {
            Work::Record { tp, offset, .. } => Some((tp.clone(), *offset)),
            Work::Checkpoint { .. } => None,
        };
        match work {
            Work::Record { .. } => self.in_flight += 1,
            Work::Checkpoint { .. } => self.checkpoints_in_flight += 1,
        }
        let enqueued = self.deliverer.enqueue(outputs);
        let deliverer = Arc::clone(&self.deliverer);
        let finished = Arc::clone(&self.finished);
        tokio::spawn(async move {
            let alerts = deliverer.deliver(enqueued, source).await;
            finished.push(work, alerts);
        });
    }

    /// Takes in every delivery that finished.
    pub fn take_finished(&mut self) {
        for (work, alerts) in self.finished.take() {
            match work {
                Work::Checkpoint { covers } => {
                    self.checkpoints_in_flight -= 1;
                    for (tp, position) in covers {
                        if let Some(i) = self.input_index(&tp.topic, tp.partition) {
                            self.inputs[i].checkpointed = Some(position);
                        }
                    }
                }
                Work::Record { tp, offset, consumed_at } => {
                    self.in_flight -= 1;
                    AlertsDelivered { alerts: &alerts, latency: consumed_at.elapsed() }.emit(&self.telemetry);
                    self.summary.alerts += alerts.len() as u64;
                    if let Some(i) = self.input_index(&tp.topic, tp.partition).filter(|&i| self.is_access(i)) {
                        self.release(i, offset);
                    }
                }
            }
        }
    }

    fn is_access(&self, index: usize) -> bool {
        matches!(self.inputs[index].role, Role::Access { .. })
    }

    /// One unit of the work of the message at `offset` of input `index` is done; at the
    /// last, the message is.
    fn release(&mut self, index: usize, offset: i64) {
        let input = &mut self.inputs[index];
        if let Some(next) = input.offsets.complete(offset) {
            input.released = Some(next);
        }
    }

    /// Stores the offsets both released and checkpointed, and counts what was consumed and
    /// judged, once for all records handled since the last flush.
    pub fn flush(&mut self, consumer: &StreamConsumer<kafka::ServiceContext>) {
        let mut tpl = TopicPartitionList::new();
        for input in &mut self.inputs {
            if input.consumed > 0 || input.processed > 0 {
                InputCounted { topic: &input.tp.topic, consumed: input.consumed, processed: input.processed }
                    .emit(&self.telemetry);
                (input.consumed, input.processed) = (0, 0);
            }
            let Some(next) = input.committable().filter(|&next| Some(next) > input.stored) else { continue };
            input.stored = Some(next);
            if let Err(error) = tpl.add_partition_offset(&input.tp.topic, input.tp.partition, Offset::Offset(next)) {
                tracing::debug!(%error, topic = %input.tp.topic, partition = input.tp.partition, "Offset not stored.");
            }
        }
        if tpl.count() > 0 {
            if let Err(error) = consumer.store_offsets(&tpl) {
                // A partition was revoked meanwhile; its new owner resumes from its checkpoint.
                tracing::debug!(%error, "Offsets not stored.");
            }
        }
        self.report_suppressed();
    }

    /// Keeps the order stage from filling up when partitions deliver unevenly (a broker may
    /// answer a fetch with one partition's backlog whole): past half full, every access
    /// partition but the one the stage waits for is paused, so the stage lets records go in
    /// event-time order instead of early; under a quarter full, all read again. The one the
    /// stage waits for is never paused, so the stage always moves on. Only with `pause_ahead`
    /// (off by default: `ServiceConfig::pause_ahead` says why).
    pub fn pace(&mut self, consumer: &StreamConsumer<kafka::ServiceContext>) {
        if !self.config.pause_ahead {
            return;
        }
        let fill = self.order.fill();
        let waited_for = self.order.lagging();
        // Lists made only when something changes: this runs at every turn of the loop.
        let (mut pause, mut resume) = (None, None);
        for input in self.inputs.iter_mut().filter(|i| matches!(i.role, Role::Access { .. })) {
            // One read to its end has nothing to hold back, and must be free to go idle.
            let ahead = !input.at_end && Some(input.id) != waited_for;
            let paused = ahead && (fill >= PAUSE_AT || input.paused && fill > RESUME_AT);
            if paused == input.paused {
                continue;
            }
            input.paused = paused;
            if !paused {
                // Quiet while paused is not idle: a resumed partition has `idle_ms` to give again.
                input.last_message = Instant::now();
            }
            // librdkafka resumes a partition at the message after the last one polled.
            let list = if paused { &mut pause } else { &mut resume };
            list.get_or_insert_with(TopicPartitionList::new).add_partition(&input.tp.topic, input.tp.partition);
        }
        let results = [pause.map(|list| consumer.pause(&list)), resume.map(|list| consumer.resume(&list))];
        for error in results.into_iter().flatten().filter_map(Result::err) {
            // A partition revoked meanwhile: its next assignment starts it unpaused.
            tracing::debug!(%error, "Partitions not paused or resumed.");
        }
        let paused = self.inputs.iter().filter(|i| i.paused).count();
        self.telemetry.metrics.partitions_paused.set(paused as i64);
    }

    /// Adds what the suppression rules matched since the last report to their counter: once
    /// per flush, from the engine's counts, so no record pays for it.
    fn report_suppressed(&mut self) {
        for (rule, &count) in &self.engine.stats().suppressed_by_rule {
            let reported = self.suppressed_reported.entry(rule.clone()).or_default();
            if count > *reported {
                crate::telemetry::events::FindingsSuppressed { rule, count: count - *reported }.emit(&self.telemetry);
                *reported = count;
            }
        }
    }

    /// A message of the fleet topic: another instance's share of an identity it holds, or a
    /// lifecycle fact from its logs. What concerns partitions held here is this instance's own.
    pub fn fleet_record(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = Key::parse(key) else { return };
        if self.input_index(&key.tp().topic, key.tp().partition).is_some() {
            return;
        }
        match (key, value) {
            (Key::Share { identity, .. }, None) => self.engine.set_remote(&identity, None),
            (Key::Share { identity, tp }, Some(bytes)) => match handover::read::<ShareValue>(bytes) {
                Ok(v) => self.engine.set_remote(&identity, Some(v.share)),
                Err(e) => {
                    StateRestoreFailed { tp: &tp, what: "fleet share", error: &e.to_string() }.emit(&self.telemetry)
                }
            },
            (Key::Fact { tp, .. }, Some(bytes)) => match handover::read::<FactValue>(bytes) {
                Ok(v) => self.engine.remote_fact(v.time, v.fact),
                Err(e) => {
                    StateRestoreFailed { tp: &tp, what: "fleet fact", error: &e.to_string() }.emit(&self.telemetry)
                }
            },
            _ => {}
        }
    }

    /// The global reader's position in a partition it reads whole, for the local snapshot.
    pub fn global_read(&mut self, tp: TopicPartition, next: i64) {
        self.global_positions.insert(tp, next);
    }

    /// Publishes, for every partition held, what changed since its last checkpoint; only at a
    /// quiescent point (no delivery in flight), so the state it describes has had every alert
    /// it caused acknowledged. Returns false when one is still being delivered.
    pub fn checkpoint_all(&mut self) -> bool {
        if self.checkpoints_in_flight > 0 || !self.quiescent() {
            return false;
        }
        let indices: Vec<usize> = (0..self.inputs.len()).filter(|&i| self.is_access(i)).collect();
        for index in indices {
            let outputs = self.checkpoint(index);
            if !outputs.is_empty() {
                let covers = self.covers(&[index]);
                self.deliver(outputs, Work::Checkpoint { covers });
            }
        }
        true
    }

    /// The positions a checkpoint of these inputs covers.
    fn covers(&self, indices: &[usize]) -> Vec<(TopicPartition, i64)> {
        indices.iter().filter_map(|&i| Some((self.inputs[i].tp.clone(), self.inputs[i].position?))).collect()
    }

    /// The records of one partition's checkpoint: changed identities' states and shares,
    /// deletions of evicted ones, new lifecycle facts, and last the partition's position with
    /// what the order stage holds of it.
    fn checkpoint(&mut self, index: usize) -> Vec<Output> {
        let started = Instant::now();
        let input = &mut self.inputs[index];
        let Role::Access { shard } = input.role else { return Vec::new() };
        let Some(position) = input.position else { return Vec::new() };
        let tp = input.tp.clone();
        let facts = std::mem::take(&mut input.facts);
        let changed = self.engine.take_changed(shard);
        let (state_topic, fleet_topic) = (self.config.state_topic(), self.config.fleet_topic());
        let output = |topic: &str, key: Key, payload: Option<Vec<u8>>| handover_output(topic, &tp, key, payload);
        let mut outputs = Vec::new();
        let mut bytes = 0;
        for identity in changed.touched {
            let (Some(state), Some(share)) = (self.engine.export(&identity), self.engine.share_of(&identity)) else {
                continue;
            };
            let state = serde_json::to_vec(&StateValue { version: handover::VERSION, position, state });
            let share = serde_json::to_vec(&ShareValue { version: handover::VERSION, share });
            let (Ok(state), Ok(share)) = (state, share) else { continue };
            bytes += state.len();
            outputs.push(output(&state_topic, Key::State { tp: tp.clone(), identity: identity.clone() }, Some(state)));
            outputs.push(output(&fleet_topic, Key::Share { tp: tp.clone(), identity }, Some(share)));
        }
        for identity in changed.gone {
            outputs.push(output(&state_topic, Key::State { tp: tp.clone(), identity: identity.clone() }, None));
            outputs.push(output(&fleet_topic, Key::Share { tp: tp.clone(), identity }, None));
        }
        for (id, fact) in facts {
            if let Ok(value) = serde_json::to_vec(&fact) {
                outputs.push(output(&fleet_topic, Key::Fact { tp: tp.clone(), id }, Some(value)));
            }
        }
        let held: Vec<HeldRecord> = self
            .order
            .held_of(self.inputs[index].id)
            .into_iter()
            .filter_map(|(record, origin)| match origin {
                Origin::Kafka { offset, .. } => Some(HeldRecord { offset: *offset, record: record.clone() }),
                _ => None,
            })
            .collect();
        let partition = PartitionValue { version: handover::VERSION, position, held };
        if let Ok(value) = serde_json::to_vec(&partition) {
            outputs.push(output(&state_topic, Key::Partition { tp: tp.clone() }, Some(value)));
        }
        let identities = self.engine.identities_in(shard).len();
        CheckpointPublished { tp: &tp, identities, state_bytes: bytes, elapsed: started.elapsed() }
            .emit(&self.telemetry);
        outputs
    }

    /// Publishes, ahead of their partitions' checkpoints, what other instances judge by and
    /// would otherwise learn only a checkpoint interval later: the shares of identities that
    /// took up an operation or a credential, and the lifecycle facts the logs stated. The
    /// checkpoint publishes those shares again with the rest (each is the identity's latest,
    /// under the same key); a fact goes out once, here. Nothing is committed by it.
    pub fn publish_fleet_news(&mut self) {
        let fleet_topic = self.config.fleet_topic();
        let mut outputs = Vec::new();
        for (shard, identity) in self.engine.take_fleet_news() {
            let Some(input) = self.inputs.iter().find(|i| i.role == Role::Access { shard }) else { continue };
            let Some(share) = self.engine.share_of(&identity) else { continue };
            let Ok(value) = serde_json::to_vec(&ShareValue { version: handover::VERSION, share }) else { continue };
            let key = Key::Share { tp: input.tp.clone(), identity };
            outputs.push(handover_output(&fleet_topic, &input.tp, key, Some(value)));
        }
        for input in self.inputs.iter_mut() {
            for (id, fact) in std::mem::take(&mut input.facts) {
                if let Ok(value) = serde_json::to_vec(&fact) {
                    let key = Key::Fact { tp: input.tp.clone(), id };
                    outputs.push(handover_output(&fleet_topic, &input.tp, key, Some(value)));
                }
            }
        }
        if !outputs.is_empty() {
            self.telemetry.metrics.fleet_news.inc_by(outputs.len() as u64);
            self.deliver(outputs, Work::Checkpoint { covers: Vec::new() });
        }
    }

    /// Writes the local snapshot; only at a quiescent point. `false` if it failed (there is
    /// no snapshot without `--state`, which counts as success).
    pub fn snapshot(&mut self) -> bool {
        let Some(path) = self.config.state.clone() else { return true };
        if !self.quiescent() {
            return false;
        }
        let mut positions = self.global_positions.clone();
        let mut held = BTreeMap::new();
        for input in self.inputs.iter().filter(|i| matches!(i.role, Role::Access { .. })) {
            let Some(position) = input.position else { continue };
            positions.insert(input.tp.clone(), position);
            let records = self.order.held_of(input.id).into_iter().filter_map(|(record, origin)| match origin {
                Origin::Kafka { offset, .. } => Some(HeldRecord { offset: *offset, record: record.clone() }),
                _ => None,
            });
            held.insert(input.tp.clone(), records.collect());
        }
        for (tp, cached) in &self.cached {
            positions.insert(tp.clone(), cached.position);
            held.insert(tp.clone(), cached.held.clone());
        }
        let started = Instant::now();
        let written = match snapshot::write(&path, &self.engine, &positions, &held) {
            Ok(bytes) => {
                self.last_snapshot = Some(Instant::now());
                SnapshotWritten { path: &path, bytes, partitions: positions.len(), elapsed: started.elapsed() }
                    .emit(&self.telemetry);
                true
            }
            Err(error) => {
                SnapshotFailed { path: &path, error: &error }.emit(&self.telemetry);
                false
            }
        };
        self.update_gauges();
        written
    }

    pub fn update_gauges(&self) {
        let metrics = &self.telemetry.metrics;
        metrics.identities_tracked.set(self.engine.stats().identities as i64);
        if self.config.state.is_some() {
            // From start until a snapshot succeeds: a state that is never saved must look old.
            metrics.snapshot_age.set(self.last_snapshot.unwrap_or(self.started).elapsed().as_secs_f64());
        }
        for input in self.inputs.iter() {
            if let Role::Access { shard } = input.role {
                let n = self.engine.identities_in(shard).len();
                metrics
                    .partition_identities
                    .with_label_values(&[&input.tp.topic, &input.tp.partition.to_string()])
                    .set(n as i64);
            }
        }
    }

    /// What the order stage has counted so far.
    pub fn order_counts(&self) -> OrderCounts {
        self.order.counts()
    }

    /// Waits for the deliveries of records in flight, for at most `timeout`; returns how many
    /// are left. Blocks the thread: for the rebalance callback and shutdown.
    pub fn wait_for_deliveries(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.take_finished();
            if self.in_flight == 0 && self.checkpoints_in_flight == 0 || Instant::now() >= deadline {
                return self.in_flight;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Restores newly assigned partitions and sets where each resumes (see `PartitionOwner`).
    fn assign(&mut self, tpl: &mut TopicPartitionList) {
        Restoring(true).emit(&self.telemetry);
        let assigned: Vec<TopicPartition> = tpl
            .elements()
            .iter()
            .map(|e| TopicPartition { topic: e.topic().to_string(), partition: e.partition() })
            .filter(|tp| self.config.judged_topics().contains(&tp.topic))
            .filter(|tp| self.input_index(&tp.topic, tp.partition).is_none())
            .collect();
        let started = Instant::now();
        let mut checkpoints = self.read_checkpoints(&assigned);
        for tp in assigned {
            let checkpoint = checkpoints.remove(&tp).unwrap_or_default();
            let restored = self.restore(&tp, checkpoint);
            if let Some(position) = restored.position {
                if let Err(error) = tpl.set_partition_offset(&tp.topic, tp.partition, Offset::Offset(position)) {
                    tracing::error!(%error, topic = %tp.topic, partition = tp.partition, "Cannot set the offset to resume from.");
                }
            }
            let shard = shard_of(&tp);
            let identities = self.engine.identities_in(shard).len();
            let source = restored.source;
            HandedOver { tp: &tp, incoming: true, source, identities, elapsed: started.elapsed() }
                .emit(&self.telemetry);
            self.add_input(tp, Role::Access { shard }, restored.position, restored);
        }
        // The local snapshot's partitions that went to other instances: what it held of them
        // is theirs now (counted as remote until they publish it).
        for (tp, _) in std::mem::take(&mut self.cached) {
            for identity in self.engine.identities_in(shard_of(&tp)) {
                self.engine.release(&identity);
            }
        }
        PartitionsHeld { count: self.held_partitions() }.emit(&self.telemetry);
        Restoring(false).emit(&self.telemetry);
    }

    fn held_partitions(&self) -> usize {
        self.inputs.iter().filter(|i| matches!(i.role, Role::Access { .. })).count()
    }

    /// The checkpoints of newly assigned partitions, read from the state topic in one pass
    /// (each input partition's checkpoint is in the state topic's partition of its number).
    fn read_checkpoints(&self, assigned: &[TopicPartition]) -> HashMap<TopicPartition, Checkpoint> {
        let mut checkpoints: HashMap<TopicPartition, Checkpoint> =
            assigned.iter().map(|tp| (tp.clone(), Checkpoint::default())).collect();
        let Some(reader) = &self.restorer else { return checkpoints };
        let mut partitions: Vec<i32> = assigned.iter().map(|tp| tp.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let read = tokio::task::block_in_place(|| {
            kafka::read_partitions(reader, &self.config.state_topic(), &partitions, RESTORE_TIMEOUT, |p, key, value| {
                for (tp, checkpoint) in checkpoints.iter_mut().filter(|(tp, _)| tp.partition == p) {
                    checkpoint.add(tp, key, value);
                }
            })
        });
        if let Err(error) = read {
            // Without its checkpoint a partition would relearn from nothing and alert again on
            // what it had learned; the local state, if any, is the best there is.
            for tp in assigned {
                StateRestoreFailed { tp, what: "state topic", error: &error.to_string() }.emit(&self.telemetry);
            }
        }
        checkpoints
    }

    /// A partition's state, from wherever it is newest: the local snapshot (already in the
    /// engine) or its checkpoint from the state topic.
    fn restore(&mut self, tp: &TopicPartition, mut checkpoint: Checkpoint) -> Restored {
        let shard = shard_of(tp);
        let local = self.cached.remove(tp);
        for problem in &checkpoint.unreadable {
            StateRestoreFailed { tp, what: "checkpoint", error: problem }.emit(&self.telemetry);
        }
        let local_position = local.as_ref().map(|l| l.position);
        if let (Some(local), true) = (local, local_position >= checkpoint.position()) {
            return Restored {
                position: Some(local.position),
                held: local.held,
                ahead: HashMap::new(),
                source: "local",
            };
        }
        // The state topic is newer: what the local snapshot held of this partition is not.
        for identity in self.engine.identities_in(shard) {
            self.engine.release(&identity);
        }
        let Some(partition) = checkpoint.partition.take() else { return Restored::default() };
        let mut ahead = HashMap::new();
        for (identity, bytes) in std::mem::take(&mut checkpoint.states) {
            let imported = handover::read::<StateValue>(&bytes).map_err(|e| e.to_string()).and_then(|value| {
                let position = value.position;
                self.engine.import(value.state, Some(shard)).map(|()| position).map_err(|e| e.to_string())
            });
            match imported {
                Ok(position) if position > partition.position => {
                    ahead.insert(identity, position);
                }
                Ok(_) => {}
                Err(error) => StateRestoreFailed { tp, what: "identity state", error: &error }.emit(&self.telemetry),
            }
        }
        Restored { position: Some(partition.position), held: partition.held, ahead, source: "state_topic" }
    }

    /// After the final checkpoint: the revocation that leaving the group brings has nothing
    /// left to write.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Checkpoints revoked partitions (if their deliveries finish in time) and lets them go;
    /// returns the offsets to commit for them, as far as their checkpoints cover.
    fn revoke(&mut self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut commit = TopicPartitionList::new();
        if self.closing {
            return commit;
        }
        let revoked: Vec<usize> = tpl
            .elements()
            .iter()
            .filter_map(|e| self.input_index(e.topic(), e.partition()))
            .filter(|&i| self.is_access(i))
            .collect();
        if revoked.is_empty() {
            return commit;
        }
        // Each partition's hand-over time runs from here: the wait for deliveries and the
        // checkpoint are what the rebalance waits for.
        let started = Instant::now();
        let timeout = Duration::from_secs(self.config.shutdown_timeout_s);
        let left = tokio::task::block_in_place(|| self.wait_for_deliveries(timeout));
        let mut outputs = Vec::new();
        for &index in &revoked {
            if left == 0 {
                outputs.extend(self.checkpoint(index));
            }
        }
        if !outputs.is_empty() {
            let covers = self.covers(&revoked);
            self.deliver(outputs, Work::Checkpoint { covers });
            tokio::task::block_in_place(|| self.wait_for_deliveries(timeout));
        }
        let mut revoked: Vec<usize> = revoked;
        revoked.sort_unstable_by(|a, b| b.cmp(a));
        for index in revoked {
            let input = self.inputs.remove(index);
            if let Some(next) = input.committable() {
                let _ = commit.add_partition_offset(&input.tp.topic, input.tp.partition, Offset::Offset(next));
            }
            self.order.remove(input.id);
            let Role::Access { shard } = input.role else { continue };
            let identities = self.engine.identities_in(shard);
            for identity in &identities {
                self.engine.release(identity);
            }
            let source = if left == 0 { "checkpoint" } else { "last_checkpoint" };
            HandedOver {
                tp: &input.tp,
                incoming: false,
                source,
                identities: identities.len(),
                elapsed: started.elapsed(),
            }
            .emit(&self.telemetry);
        }
        PartitionsHeld { count: self.held_partitions() }.emit(&self.telemetry);
        commit
    }

    /// Answers an explain query from the engine.
    pub fn answer(&self, query: crate::explain::Query) {
        query.answer(&self.engine);
    }
}

/// What restoring a partition found.
struct Restored {
    /// Where reading resumes; `None`: the group's committed offset.
    position: Option<i64>,
    held: Vec<HeldRecord>,
    ahead: HashMap<String, i64>,
    /// Where the state came from, for the hand-over metric.
    source: &'static str,
}

impl Default for Restored {
    fn default() -> Self {
        Restored { position: None, held: Vec::new(), ahead: HashMap::new(), source: "none" }
    }
}

/// A record of the state or fleet topic about input partition `tp`, on the same partition
/// number (both topics are at least as wide as the inputs).
fn handover_output(topic: &str, tp: &TopicPartition, key: Key, payload: Option<Vec<u8>>) -> Output {
    Output {
        topic: topic.to_string(),
        partition: Some(tp.partition),
        key: Some(key.to_bytes()),
        payload,
        headers: Vec::new(),
        alert: None,
    }
}

/// A partition's shard: a stable number from its topic and partition, the same on every
/// instance and across restarts (identities keep it in the local snapshot).
pub fn shard_of(tp: &TopicPartition) -> Shard {
    crate::baseline::stable_hash_parts(&[&tp.topic, &tp.partition.to_string()]) as Shard
}

/// The rebalance callbacks' way to the pipeline state.
pub struct Owner(pub Arc<Mutex<Core>>);

impl PartitionOwner for Owner {
    fn assigned(&self, tpl: &mut TopicPartitionList) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).assign(tpl);
    }

    fn revoked(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).revoke(tpl)
    }
}
