//! `overreach run`: the engine fed from Kafka, alerts written back to Kafka, at least once.
//!
//! One path per record: consume → `decode_line` → `Engine::process` → produce each alert
//! (and a dead-letter copy of a bad record) → once the broker has acknowledged all of them, or
//! refused one for good ([`delivery`]), release the input offset for commit, in order per
//! partition ([`OffsetTracker`]).
//!
//! Restart without relearning or re-alerting: the snapshot holds the engine state and the
//! per-partition position it covers, taken only when no delivery is in flight; partitions are
//! assigned starting at that position (see `ServiceContext::rebalance`). Committed offsets
//! keep the at-least-once promise for a run without `--state`, and show the group's progress.
//!
//! Nothing here waits without bound: a snapshot due while deliveries are in flight pauses
//! consumption until they finish (shutdown is still heard), and shutdown waits for in-flight
//! deliveries at most `shutdown_timeout_s`, then for the commit and group leave at most
//! [`CLOSE_TIMEOUT`].

use crate::alert::Alert;
use crate::config::ServiceConfig;
use crate::decode::{decode_line, DecodeError, Limits};
use crate::engine::Engine;
use crate::explain;
use crate::kafka::delivery::{self, AlertInfo, Delivered, Deliverer, Output};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::probe::{self, OutputTopic};
use crate::kafka::snapshot::{self, Positions};
use crate::kafka::{create_consumer, create_producer, Backoff, ServiceContext, TopicPartition};
use crate::model::Origin;
use crate::state_file;
use crate::telemetry::events::{
    AlertsDelivered, BatchProcessed, ConsumerFailed, FindingsSuppressed, RecordConsumed, RecordRejected,
    SnapshotFailed, SnapshotWritten, StateRestored,
};
use crate::telemetry::{http, Telemetry};
use crate::triage::recent::RecentAlerts;
use anyhow::Context as _;
use futures_util::future::{BoxFuture, FutureExt as _};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Input records whose outputs are not yet acknowledged; past this the consumer waits, so a
/// slow or absent broker holds memory bounded instead of piling up deliveries.
const MAX_IN_FLIGHT: usize = 10_000;
/// Records handled from one wake-up of the loop when more are already fetched: the offsets,
/// positions and counters they touch are written once per batch, not once per record.
const MAX_BATCH: usize = 1_024;
/// How often gauges fed from the engine (identities, snapshot age) are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound on the final commit and leaving the group, which wait for a broker.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts of one run, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub records: u64,
    pub rejected: u64,
    pub alerts: u64,
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

/// Runs the service until `shutdown` resolves, then stops fetching, finishes in-flight
/// deliveries (for at most `shutdown_timeout_s`), snapshots and commits. Errors only when it
/// cannot start (state file unreadable or unwritable, an output topic missing, HTTP address in
/// use, invalid librdkafka option); broker outages are waited out.
pub async fn run(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} for HTTP", config.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?,
        "Serving /metrics, /healthz, /readyz, /identities/{{identity}} and the triage page at /.");
    let (identities, answers) = explain::channel();
    let routes = Arc::new(http::Routes { recent: Arc::default(), identities });
    let server = tokio::spawn(http::serve(listener, Arc::clone(&telemetry), Arc::clone(&routes)));
    let result = run_pipeline(config, telemetry, Arc::clone(&routes.recent), answers, shutdown).await;
    server.abort();
    result
}

async fn run_pipeline(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    recent: Arc<RecentAlerts>,
    mut answers: explain::Answers,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    if let Some(path) = &config.state {
        state_file::check_writable(path).with_context(|| {
            format!(
                "state file {}: snapshots could not be saved there; fix the path or its permissions",
                path.display()
            )
        })?;
    }
    let (engine, positions) = restore(config, &telemetry)?;
    let producer = create_producer(config)?;
    tokio::pin!(shutdown);
    let outputs: Vec<OutputTopic> =
        std::iter::once(OutputTopic { role: "alert topic", name: config.alert_topic.clone() })
            .chain(config.dlq_topic.iter().map(|t| OutputTopic { role: "dead-letter topic", name: t.clone() }))
            .collect();
    tokio::select! {
        biased;
        () = &mut shutdown => return Ok(RunSummary::default()),
        checked = probe::check_output_topics(&producer, &config.brokers, &outputs, &telemetry) => checked?,
    }

    let positions = Arc::new(Mutex::new(positions));
    let consumer = Arc::new(create_consumer(config, Arc::clone(&telemetry), Arc::clone(&positions))?);
    let topics: Vec<&str> = config.input_topics().map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe to the input topics")?;
    tracing::info!(topics = ?topics, group = %config.group, "Consuming.");
    let watcher = tokio::spawn(probe::watch(
        producer.clone(),
        outputs.into_iter().map(|t| t.name).collect(),
        Arc::clone(&telemetry),
    ));

    let deliverer = Arc::new(Deliverer {
        producer,
        telemetry: Arc::clone(&telemetry),
        dead_letter_topic: config.dlq_topic.clone(),
    });
    // The counter counts this process's suppressions, as every counter does.
    let suppressed_reported = engine.stats().suppressed_by_rule.clone();
    let mut pipeline = Pipeline {
        config,
        limits: config.limits(),
        telemetry,
        engine,
        suppressed_reported,
        recent,
        positions,
        tracker: OffsetTracker::default(),
        partitions: Vec::new(),
        deliverer,
        in_flight: FuturesUnordered::new(),
        started: Instant::now(),
        last_snapshot: None,
        snapshot_due: false,
        summary: RunSummary::default(),
    };
    let snapshot_every = Duration::from_secs(config.snapshot_interval_s);
    let mut snapshot_timer = tokio::time::interval_at(tokio::time::Instant::now() + snapshot_every, snapshot_every);
    let mut gauge_timer = tokio::time::interval(GAUGE_INTERVAL);
    let mut backoff = Backoff::default();

    loop {
        let event = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = pipeline.in_flight.next() => Event::Delivered(done),
            _ = snapshot_timer.tick(), if config.state.is_some() => Event::SnapshotDue,
            _ = gauge_timer.tick() => Event::GaugesDue,
            // Between batches, and while idle or paused: the engine is never shared.
            query = answers.next() => Event::Query(query),
            message = consumer.recv(), if pipeline.accepting() => Event::Received(message),
        };
        match event {
            Event::Delivered(done) => {
                pipeline.finish(done);
                // Deliveries acknowledged together (one produce batch) are released together.
                while let Some(Some(done)) = pipeline.in_flight.next().now_or_never() {
                    pipeline.finish(done);
                }
            }
            Event::SnapshotDue => pipeline.snapshot_due = true,
            Event::GaugesDue => pipeline.update_gauges(),
            Event::Query(query) => query.answer(&pipeline.engine),
            Event::Received(Ok(message)) => {
                backoff.reset();
                let started = Instant::now();
                pipeline.handle(&message);
                drop(message);
                // What librdkafka has already fetched is handled now, without a turn of the
                // loop per record; a consumer error ends the batch and is met on the next turn.
                for _ in 1..MAX_BATCH {
                    if !pipeline.accepting() {
                        break;
                    }
                    match consumer.recv().now_or_never() {
                        Some(Ok(message)) => pipeline.handle(&message),
                        _ => break,
                    }
                }
                BatchProcessed { elapsed: started.elapsed() }.emit(&pipeline.telemetry);
                pipeline.report_suppressed();
            }
            Event::Received(Err(error)) => {
                let retry_in = backoff.next_delay();
                ConsumerFailed { error: &error, retry_in }.emit(&pipeline.telemetry);
                tokio::time::sleep(retry_in).await;
            }
        }
        pipeline.flush(&consumer);
        if pipeline.snapshot_due && pipeline.in_flight.is_empty() {
            pipeline.snapshot_due = false;
            pipeline.snapshot();
        }
    }

    let timeout = Duration::from_secs(config.shutdown_timeout_s);
    tracing::info!(
        in_flight = pipeline.in_flight.len(),
        timeout_s = timeout.as_secs(),
        "Shutting down: finishing in-flight deliveries."
    );
    let unacknowledged = pipeline.drain_within(&consumer, timeout).await;
    watcher.abort();
    if unacknowledged > 0 {
        // The state holds records whose alerts are not acknowledged: a snapshot of it would
        // skip them at the next start. The last good snapshot stays, and so do their offsets.
        tracing::error!(unacknowledged, "Deliveries still unacknowledged at the shutdown timeout; no final snapshot.");
        pipeline.summary.unacknowledged = unacknowledged as u64;
        pipeline.summary.final_snapshot_missing = config.state.is_some();
    } else {
        pipeline.summary.final_snapshot_missing = !pipeline.snapshot();
    }
    close(consumer).await;
    Ok(pipeline.summary)
}

/// Commits the stored offsets (all acknowledged) and leaves the group, for at most
/// [`CLOSE_TIMEOUT`]: both wait for a broker, which may be down.
async fn close(consumer: Arc<StreamConsumer<ServiceContext>>) {
    let closing = tokio::task::spawn_blocking(move || {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("Offsets committed."),
            // Nothing was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(error = %crate::telemetry::events::printable(&error),
                "Final commit failed; the next start re-reads from the last commit."),
        }
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!(timeout_s = CLOSE_TIMEOUT.as_secs(),
            "Commit and group leave did not finish in time; exiting without them (the snapshot and the last commit stand).");
    }
}

/// Loads the snapshot if there is one; a snapshot that exists but cannot be read stops the
/// start, since silently relearning would re-alert on everything it already alerted on.
fn restore(config: &ServiceConfig, telemetry: &Telemetry) -> anyhow::Result<(Engine, Positions)> {
    let restored = match &config.state {
        Some(path) => snapshot::read(path, config.engine.clone())?,
        None => None,
    };
    let (path, mut engine, positions) = match restored {
        Some((engine, positions)) => (config.state.as_deref(), engine, positions),
        None => (None, Engine::new(config.engine.clone()), Positions::new()),
    };
    engine.set_suppression(config.suppression());
    StateRestored { path, partitions: positions.len(), identities: engine.stats().identities }.emit(telemetry);
    Ok((engine, positions))
}

/// One input partition as the loop sees it.
struct PartitionState {
    tp: TopicPartition,
    /// The topic name shared by every record's [`Origin`], so a record allocates none.
    topic: Arc<str>,
    /// Records handled since the last flush.
    consumed: u64,
    /// Where the engine state ends on this partition, if it moved since the last flush.
    position: Option<i64>,
    /// The offset released for commit since the last flush.
    release: Option<i64>,
}

enum Event<'a> {
    Delivered(Delivered),
    SnapshotDue,
    GaugesDue,
    Query(explain::Query),
    Received(Result<BorrowedMessage<'a>, KafkaError>),
}

struct Pipeline<'a> {
    config: &'a ServiceConfig,
    limits: Limits,
    telemetry: Arc<Telemetry>,
    engine: Engine,
    /// Per suppression rule, the engine's count the metric has been given.
    suppressed_reported: BTreeMap<String, u64>,
    /// The alerts the triage page lists, filled as they are handed to the alert topic.
    recent: Arc<RecentAlerts>,
    /// Where the engine state ends per partition; shared with the rebalance callback.
    positions: Arc<Mutex<Positions>>,
    tracker: OffsetTracker,
    /// Per input partition, its place and what the next [`Pipeline::flush`] writes.
    partitions: Vec<PartitionState>,
    deliverer: Arc<Deliverer>,
    in_flight: FuturesUnordered<BoxFuture<'static, Delivered>>,
    started: Instant,
    last_snapshot: Option<Instant>,
    /// A snapshot is due: consumption pauses until the deliveries in flight finish.
    snapshot_due: bool,
    summary: RunSummary,
}

impl Pipeline<'_> {
    fn accepting(&self) -> bool {
        !self.snapshot_due && self.in_flight.len() < MAX_IN_FLIGHT
    }

    fn handle(&mut self, message: &BorrowedMessage<'_>) {
        let consumed_at = Instant::now();
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let index = self.partition_index(topic, partition);
        let state = &mut self.partitions[index];
        state.consumed += 1;
        state.position = Some(offset + 1);
        let origin = Origin::Kafka { topic: Arc::clone(&state.topic), partition, offset };
        self.summary.records += 1;
        let payload = message.payload().unwrap_or_default();

        let mut outputs = Vec::new();
        let mut errors = Vec::new();
        for decoded in decode_line(payload, self.config.format_of(topic), &self.limits) {
            // A verdict the engine cannot apply is rejected like a bad record, with its place.
            let applied = decoded.and_then(|record| self.engine.apply(&record, &origin).map_err(DecodeError::from));
            match applied {
                Ok(emitted) => {
                    for alert in emitted {
                        outputs.push(self.alert(&alert));
                        self.recent.push(alert);
                    }
                }
                Err(error) => {
                    RecordRejected { topic, partition, offset, error: &error }.emit(&self.telemetry);
                    errors.push(error);
                }
            }
        }
        if !errors.is_empty() {
            self.summary.rejected += 1;
            if let Some(dlq) = &self.config.dlq_topic {
                outputs.push(delivery::rejected_record(dlq, message, &self.partitions[index].tp, offset, &errors));
            }
        }

        self.tracker.begin(&self.partitions[index].tp, offset);
        if outputs.is_empty() {
            self.release(index, offset);
        } else {
            let tp = self.partitions[index].tp.clone();
            let work = Arc::clone(&self.deliverer).deliver(outputs, tp, offset, consumed_at);
            self.in_flight.push(Box::pin(work));
        }
    }

    /// The index of a partition's state, added on its first record. Linear: an instance holds
    /// a few dozen partitions at most, and this is cheaper than hashing the topic name.
    fn partition_index(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self.partitions.iter().position(|p| p.tp.partition == partition && p.tp.topic == topic) {
            return i;
        }
        self.partitions.push(PartitionState {
            tp: TopicPartition { topic: topic.to_string(), partition },
            topic: topic.into(),
            consumed: 0,
            position: None,
            release: None,
        });
        self.partitions.len() - 1
    }

    /// The alert as produced: JSON, keyed by identity so one identity's alerts stay in order,
    /// with `detector`, `severity` and `alert_id` headers for routing without parsing.
    fn alert(&self, alert: &Alert) -> Output {
        Output {
            topic: self.config.alert_topic.clone(),
            key: Some(alert.identity.as_bytes().to_vec()),
            payload: crate::ocsf::render(alert, self.config.alert_format).into_bytes(),
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

    fn finish(&mut self, done: Delivered) {
        AlertsDelivered { alerts: &done.alerts, latency: done.consumed_at.elapsed() }.emit(&self.telemetry);
        self.summary.alerts += done.alerts.len() as u64;
        let index = self.partition_index(&done.tp.topic, done.tp.partition);
        self.release(index, done.offset);
    }

    /// Marks a record done; the offset the tracker releases, if any, is stored at the next flush.
    fn release(&mut self, index: usize, offset: i64) {
        if let Some(next) = self.tracker.complete(&self.partitions[index].tp, offset) {
            self.partitions[index].release = Some(next);
        }
    }

    /// Writes what the records handled since the last flush changed, once for all of them:
    /// the consumed counters, the positions the engine state ends at (read by the rebalance
    /// callback, which runs only inside `recv`, so they are current whenever it looks), and
    /// the released offsets, stored with one call.
    fn flush(&mut self, consumer: &StreamConsumer<ServiceContext>) {
        let mut positions = None;
        let mut tpl = TopicPartitionList::new();
        for state in &mut self.partitions {
            if state.consumed > 0 {
                RecordConsumed { topic: &state.tp.topic, count: state.consumed }.emit(&self.telemetry);
                state.consumed = 0;
            }
            if let Some(next) = state.position.take() {
                positions
                    .get_or_insert_with(|| self.positions.lock().unwrap_or_else(PoisonError::into_inner))
                    .insert(state.tp.clone(), next);
            }
            if let Some(next) = state.release.take() {
                if let Err(error) = tpl.add_partition_offset(&state.tp.topic, state.tp.partition, Offset::Offset(next))
                {
                    tracing::debug!(%error, topic = %state.tp.topic, partition = state.tp.partition, "Offset not stored.");
                }
            }
        }
        drop(positions);
        if tpl.count() > 0 {
            if let Err(error) = consumer.store_offsets(&tpl) {
                // A partition was revoked meanwhile; its new owner re-reads from the last commit.
                tracing::debug!(%error, "Offsets not stored.");
            }
        }
    }

    /// Finishes in-flight deliveries for at most `timeout`; returns how many are left.
    async fn drain_within(&mut self, consumer: &StreamConsumer<ServiceContext>, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let left = loop {
            match tokio::time::timeout_at(deadline, self.in_flight.next()).await {
                Ok(Some(done)) => self.finish(done),
                Ok(None) => break 0,
                Err(_) => break self.in_flight.len(),
            }
        };
        self.flush(consumer);
        left
    }

    /// Writes the snapshot; called only with no delivery in flight, so the engine state and
    /// the positions describe the same records and all their alerts are acknowledged. `false`
    /// if it failed (there is no snapshot to write without `--state`, which counts as success).
    fn snapshot(&mut self) -> bool {
        let Some(path) = &self.config.state else { return true };
        debug_assert!(self.in_flight.is_empty(), "a snapshot with deliveries in flight");
        let positions = self.positions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let started = Instant::now();
        let written = match snapshot::write(path, &self.engine, &positions) {
            Ok(bytes) => {
                self.last_snapshot = Some(Instant::now());
                SnapshotWritten { path, bytes, partitions: positions.len(), elapsed: started.elapsed() }
                    .emit(&self.telemetry);
                true
            }
            Err(error) => {
                SnapshotFailed { path, error: &error }.emit(&self.telemetry);
                false
            }
        };
        self.update_gauges();
        written
    }

    /// Adds what the suppression rules matched since the last report to their counter: once
    /// per batch, from the engine's counts, so no record pays for it.
    fn report_suppressed(&mut self) {
        for (rule, &count) in &self.engine.stats().suppressed_by_rule {
            let reported = match self.suppressed_reported.get_mut(rule) {
                Some(reported) => reported,
                None => self.suppressed_reported.entry(rule.clone()).or_default(),
            };
            if count > *reported {
                FindingsSuppressed { rule, count: count - *reported }.emit(&self.telemetry);
                *reported = count;
            }
        }
    }

    fn update_gauges(&self) {
        let metrics = &self.telemetry.metrics;
        metrics.identities_tracked.set(self.engine.stats().identities as i64);
        if self.config.state.is_some() {
            // From start until a snapshot succeeds: a state that is never saved must look old.
            metrics.snapshot_age.set(self.last_snapshot.unwrap_or(self.started).elapsed().as_secs_f64());
        }
    }
}

/// `overreach run`: resolves the configuration, logs it (secrets masked) and runs until
/// SIGINT or SIGTERM.
pub fn command(args: &crate::config::RunArgs) -> anyhow::Result<()> {
    let config = ServiceConfig::resolve(args, std::env::vars())?;
    crate::telemetry::init_logging(config.log_format, "info");
    tracing::info!(config = %config.masked(), "Resolved configuration.");
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(run(&config, Arc::new(Telemetry::new()), shutdown_signal()))?;
    // A commit or group leave given up on at the close timeout must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!(
        records = summary.records,
        rejected = summary.rejected,
        alerts = summary.alerts,
        unacknowledged = summary.unacknowledged,
        "Stopped."
    );
    summary.check()
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "Cannot listen for SIGTERM; only SIGINT stops the service.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("Signal received; stopping.");
}
