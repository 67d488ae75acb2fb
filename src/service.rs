//! `overreach run`: the engine fed from Kafka, alerts written back to Kafka, at least once.
//!
//! One path per record: consume → `decode_line` → `Engine::process` → produce each alert
//! (and a dead-letter copy of a bad record) → once the broker has acknowledged all of them,
//! release the input offset for commit, in order per partition ([`OffsetTracker`]).
//!
//! Restart without relearning or re-alerting: the snapshot holds the engine state and the
//! per-partition position it covers, taken only when no delivery is in flight; partitions are
//! assigned starting at that position (see `ServiceContext::rebalance`). Committed offsets
//! keep the at-least-once promise for a run without `--state`, and show the group's progress.

use crate::alert::{Alert, Severity};
use crate::config::ServiceConfig;
use crate::decode::{decode_line, DecodeError, Format, Limits};
use crate::detect::Detector;
use crate::engine::Engine;
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::snapshot::{self, Positions};
use crate::kafka::{create_consumer, create_producer, AlertProducer, Backoff, ServiceContext, TopicPartition};
use crate::model::Origin;
use crate::telemetry::events::{
    AlertsDelivered, ConsumerFailed, DeliveryFailed, RecordConsumed, RecordRejected, SnapshotFailed, SnapshotWritten,
    StateRestored,
};
use crate::telemetry::{http, Telemetry};
use anyhow::Context as _;
use futures_util::future::{join_all, BoxFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Input records whose outputs are not yet acknowledged; past this the consumer waits, so a
/// slow or absent broker holds memory bounded instead of piling up deliveries.
const MAX_IN_FLIGHT: usize = 10_000;
/// How often gauges fed from the engine (identities, snapshot age) are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound on the final producer flush; everything was acknowledged before it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts of one run, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub records: u64,
    pub rejected: u64,
    pub alerts: u64,
}

/// Runs the service until `shutdown` resolves, then stops fetching, finishes in-flight
/// deliveries, flushes, commits and snapshots. Errors only when it cannot start (bad state
/// file, HTTP address in use, invalid librdkafka option); broker outages are waited out.
pub async fn run(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} for HTTP", config.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "Serving /metrics, /healthz, /readyz.");
    let server = tokio::spawn(http::serve(listener, Arc::clone(&telemetry)));
    let result = run_pipeline(config, telemetry, shutdown).await;
    server.abort();
    result
}

async fn run_pipeline(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let (engine, positions) = restore(config, &telemetry)?;
    let positions = Arc::new(Mutex::new(positions));
    let consumer = create_consumer(config, Arc::clone(&telemetry), Arc::clone(&positions))?;
    let producer = create_producer(config)?;
    let topics: Vec<&str> = config.input_topics.iter().chain(&config.grants_topic).map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe to the input topics")?;
    tracing::info!(topics = ?topics, group = %config.group, "Consuming.");

    let mut pipeline = Pipeline {
        config,
        limits: config.limits(),
        telemetry,
        engine,
        positions,
        tracker: OffsetTracker::default(),
        producer,
        in_flight: FuturesUnordered::new(),
        last_snapshot: None,
        summary: RunSummary::default(),
    };
    let snapshot_every = Duration::from_secs(config.snapshot_interval_s);
    let mut snapshot_timer = tokio::time::interval_at(tokio::time::Instant::now() + snapshot_every, snapshot_every);
    let mut gauge_timer = tokio::time::interval(GAUGE_INTERVAL);
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);

    loop {
        let event = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = pipeline.in_flight.next() => Event::Delivered(done),
            _ = snapshot_timer.tick(), if config.state.is_some() => Event::SnapshotDue,
            _ = gauge_timer.tick() => Event::GaugesDue,
            message = consumer.recv(), if pipeline.in_flight.len() < MAX_IN_FLIGHT => Event::Received(message),
        };
        match event {
            Event::Delivered(done) => pipeline.finish(&consumer, done),
            Event::SnapshotDue => pipeline.snapshot(&consumer).await,
            Event::GaugesDue => pipeline.update_gauges(),
            Event::Received(Ok(message)) => {
                backoff.reset();
                pipeline.handle(&consumer, &message);
            }
            Event::Received(Err(error)) => {
                let retry_in = backoff.next_delay();
                ConsumerFailed { error: &error, retry_in }.emit(&pipeline.telemetry);
                tokio::time::sleep(retry_in).await;
            }
        }
    }

    tracing::info!(in_flight = pipeline.in_flight.len(), "Shutting down: finishing in-flight deliveries.");
    pipeline.drain(&consumer).await;
    if let Err(error) = pipeline.producer.flush(Timeout::After(FLUSH_TIMEOUT)) {
        tracing::warn!(%error, "Producer flush did not complete.");
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("Offsets committed."),
        // Nothing was stored since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, "Final commit failed; the next start re-reads from the last commit."),
    }
    pipeline.snapshot(&consumer).await;
    consumer.unsubscribe();
    Ok(pipeline.summary)
}

/// Loads the snapshot if there is one; a snapshot that exists but cannot be read stops the
/// start, since silently relearning would re-alert on everything it already alerted on.
fn restore(config: &ServiceConfig, telemetry: &Telemetry) -> anyhow::Result<(Engine, Positions)> {
    let restored = match &config.state {
        Some(path) => snapshot::read(path, config.engine.clone())?,
        None => None,
    };
    let (path, engine, positions) = match restored {
        Some((engine, positions)) => (config.state.as_deref(), engine, positions),
        None => (None, Engine::new(config.engine.clone()), Positions::new()),
    };
    StateRestored { path, partitions: positions.len(), identities: engine.stats().identities }.emit(telemetry);
    Ok((engine, positions))
}

enum Event<'a> {
    Delivered(Delivered),
    SnapshotDue,
    GaugesDue,
    Received(Result<BorrowedMessage<'a>, KafkaError>),
}

/// An input record whose outputs were all acknowledged.
struct Delivered {
    tp: TopicPartition,
    offset: i64,
    alerts: Vec<(Detector, Severity)>,
    consumed_at: Instant,
}

/// One record to produce: an alert, or the dead-letter copy of a bad input record.
struct Output {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    alert: Option<(Detector, Severity)>,
}

struct Pipeline<'a> {
    config: &'a ServiceConfig,
    limits: Limits,
    telemetry: Arc<Telemetry>,
    engine: Engine,
    /// Where the engine state ends per partition; shared with the rebalance callback.
    positions: Arc<Mutex<Positions>>,
    tracker: OffsetTracker,
    producer: AlertProducer,
    in_flight: FuturesUnordered<BoxFuture<'static, Delivered>>,
    last_snapshot: Option<Instant>,
    summary: RunSummary,
}

impl Pipeline<'_> {
    fn handle(&mut self, consumer: &StreamConsumer<ServiceContext>, message: &BorrowedMessage<'_>) {
        let consumed_at = Instant::now();
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        RecordConsumed { topic }.emit(&self.telemetry);
        self.summary.records += 1;
        let format =
            if self.config.grants_topic.as_deref() == Some(topic) { Format::Grants } else { self.config.format };
        let payload = message.payload().unwrap_or_default();
        let origin = Origin::Kafka { topic: topic.into(), partition, offset };

        let mut outputs = Vec::new();
        let mut errors = Vec::new();
        for decoded in decode_line(payload, format, &self.limits) {
            match decoded {
                Ok(record) => outputs.extend(self.engine.process(&record, &origin).iter().map(|a| self.alert(a))),
                Err(error) => {
                    RecordRejected { topic, partition, offset, error: &error }.emit(&self.telemetry);
                    errors.push(error);
                }
            }
        }
        if !errors.is_empty() {
            self.summary.rejected += 1;
            if let Some(dlq) = &self.config.dlq_topic {
                outputs.push(dead_letter(dlq, message, &origin, &errors));
            }
        }

        let tp = TopicPartition { topic: topic.to_string(), partition };
        self.positions.lock().unwrap_or_else(PoisonError::into_inner).insert(tp.clone(), offset + 1);
        self.tracker.begin(&tp, offset);
        if outputs.is_empty() {
            self.release(consumer, &tp, offset);
        } else {
            let work = deliver(self.producer.clone(), Arc::clone(&self.telemetry), outputs, tp, offset, consumed_at);
            self.in_flight.push(Box::pin(work));
        }
    }

    /// The alert as produced: JSON, keyed by identity so one identity's alerts stay in order,
    /// with `detector` and `severity` headers for routing without parsing.
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
            alert: Some((alert.detector, alert.severity)),
        }
    }

    fn finish(&mut self, consumer: &StreamConsumer<ServiceContext>, done: Delivered) {
        AlertsDelivered { alerts: &done.alerts, latency: done.consumed_at.elapsed() }.emit(&self.telemetry);
        self.summary.alerts += done.alerts.len() as u64;
        self.release(consumer, &done.tp, done.offset);
    }

    /// Marks a record done and stores the offset the tracker releases, if any.
    fn release(&mut self, consumer: &StreamConsumer<ServiceContext>, tp: &TopicPartition, offset: i64) {
        let Some(next) = self.tracker.complete(tp, offset) else { return };
        let mut tpl = TopicPartitionList::new();
        let stored = tpl
            .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(next))
            .and_then(|()| consumer.store_offsets(&tpl));
        if let Err(error) = stored {
            // The partition was revoked meanwhile; its new owner re-reads from the last commit.
            tracing::debug!(%error, topic = %tp.topic, partition = tp.partition, "Offset not stored.");
        }
    }

    async fn drain(&mut self, consumer: &StreamConsumer<ServiceContext>) {
        while let Some(done) = self.in_flight.next().await {
            self.finish(consumer, done);
        }
    }

    /// Waits for every delivery in flight, so the engine state and the positions describe the
    /// same records and all their alerts are acknowledged, then writes the snapshot.
    async fn snapshot(&mut self, consumer: &StreamConsumer<ServiceContext>) {
        let Some(path) = &self.config.state else { return };
        self.drain(consumer).await;
        let positions = self.positions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let started = Instant::now();
        match snapshot::write(path, &self.engine, &positions) {
            Ok(bytes) => {
                self.last_snapshot = Some(Instant::now());
                SnapshotWritten { path, bytes, partitions: positions.len(), elapsed: started.elapsed() }
                    .emit(&self.telemetry);
            }
            Err(error) => SnapshotFailed { path, error: &error }.emit(&self.telemetry),
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let metrics = &self.telemetry.metrics;
        metrics.identities_tracked.set(self.engine.stats().identities as i64);
        if let Some(at) = self.last_snapshot {
            metrics.snapshot_age.set(at.elapsed().as_secs_f64());
        }
    }
}

/// The dead-letter copy: the original key and bytes, with headers naming why and where from.
fn dead_letter(dlq: &str, message: &BorrowedMessage<'_>, origin: &Origin, errors: &[DecodeError]) -> Output {
    let Origin::Kafka { topic, partition, offset } = origin else { unreachable!("Kafka records have a Kafka origin") };
    let first = &errors[0];
    Output {
        topic: dlq.to_string(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers: vec![
            ("reason", first.kind().to_string()),
            ("error", first.to_string()),
            ("rejected_records", errors.len().to_string()),
            ("source_topic", topic.to_string()),
            ("source_partition", partition.to_string()),
            ("source_offset", offset.to_string()),
        ],
        alert: None,
    }
}

/// Produces every output of one input record and resolves once the broker acknowledged all.
async fn deliver(
    producer: AlertProducer,
    telemetry: Arc<Telemetry>,
    outputs: Vec<Output>,
    tp: TopicPartition,
    offset: i64,
    consumed_at: Instant,
) -> Delivered {
    join_all(outputs.iter().map(|output| send_until_acknowledged(&producer, &telemetry, output))).await;
    Delivered { tp, offset, alerts: outputs.iter().filter_map(|o| o.alert).collect(), consumed_at }
}

/// Sends one output, retrying with backoff until the broker acknowledges it: a failed delivery
/// is never dropped, since the input offset waits for it. One exception: a dead-letter copy
/// too large for the producer is sent without its payload (header `payload_dropped_bytes`).
async fn send_until_acknowledged(producer: &AlertProducer, telemetry: &Telemetry, output: &Output) {
    let mut backoff = Backoff::default();
    let mut payload: &[u8] = &output.payload;
    let mut extra_header = None;
    loop {
        let mut headers = OwnedHeaders::new_with_capacity(output.headers.len() + 1);
        for (key, value) in output.headers.iter().chain(&extra_header) {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let mut record = FutureRecord::to(&output.topic).payload(payload).headers(headers);
        if let Some(key) = &output.key {
            record = record.key(key);
        }
        let error = match producer.send(record, Timeout::Never).await {
            Ok(_) => return,
            Err((error, _)) => error,
        };
        let too_large = matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));
        if too_large && output.alert.is_none() && !payload.is_empty() {
            extra_header = Some(("payload_dropped_bytes", payload.len().to_string()));
            payload = &[];
            continue;
        }
        let retry_in = backoff.next_delay();
        DeliveryFailed { topic: &output.topic, error: &error, retry_in }.emit(telemetry);
        tokio::time::sleep(retry_in).await;
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
    tracing::info!(records = summary.records, rejected = summary.rejected, alerts = summary.alerts, "Stopped.");
    Ok(())
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
