//! `overreach run`: the engine fed from Kafka, alerts written back to Kafka, at least once,
//! on the same path as replay (source → order → engine → sink; see `core`).
//!
//! Several instances with the same group share the input partitions (cooperative-sticky
//! assignment). Each partition's state is checkpointed to the state topic and restored by
//! whichever instance it is assigned to next, inside the rebalance; every instance reads the
//! fleet topic whole, so peer, rollout and credential judgements see every identity wherever
//! it is held (docs/service.md, "Scaling out"). The local `--state` file is a cache that makes
//! a restart fast.
//!
//! Nothing here waits without bound: a checkpoint or snapshot due while deliveries are in
//! flight pauses consumption until they finish (shutdown is still heard), and shutdown waits
//! for in-flight deliveries at most `shutdown_timeout_s`, then for the commit and group leave
//! at most [`CLOSE_TIMEOUT`].

mod core;
mod decoder;
mod poll_times;
mod repartition;

pub use self::core::RunSummary;
use self::core::{Core, Owner, Role, Start};
use crate::config::ServiceConfig;
use crate::engine::Engine;
use crate::explain;
use crate::kafka::delivery::Deliverer;
use crate::kafka::probe::{self, OutputTopic};
use crate::kafka::snapshot;
use crate::kafka::{
    self as kafka_io, create_consumer, create_producer, Backoff, ServiceContext, ServiceTopic, TopicPartition,
};
use crate::state_file;
use crate::telemetry::events::{BatchProcessed, ConsumerFailed, StateRestored};
use crate::telemetry::{http, Telemetry};
use crate::triage::recent::RecentAlerts;
use anyhow::Context as _;
use futures_util::future::FutureExt as _;
use futures_util::StreamExt as _;
use rdkafka::consumer::{CommitMode, Consumer, MessageStream, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, TopicPartitionList};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Input records whose outputs are not yet acknowledged; past this the consumer waits, so a
/// slow or absent broker holds memory bounded instead of piling up deliveries.
const MAX_IN_FLIGHT: usize = 10_000;
/// Messages decoded at a time, and batches taken in from one wake-up of the loop when more
/// are already fetched: the order stage, offsets and counters they touch are worked once per
/// wake-up, not once per message, and a batch is decoded while the one before it is judged
/// (`decoder`).
const BATCH: usize = 512;
const MAX_BATCHES: usize = 16;
/// How often gauges fed from the engine (identities, snapshot age) are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// How often the shares other instances judge by (a new operation or credential) and the
/// logs' lifecycle facts are published ahead of the checkpoint (`Core::publish_fleet_news`):
/// they reach the other instances this long after they were judged plus a produce and a
/// fetch, not a checkpoint interval. An identity is published at most this often.
const FLEET_NEWS_INTERVAL: Duration = Duration::from_millis(200);
/// Upper bound on the final commit and leaving the group, which wait for a broker.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start may wait for the brokers' view of the input topics.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the service until `shutdown` resolves, then stops fetching, finishes in-flight
/// deliveries (for at most `shutdown_timeout_s`), checkpoints, snapshots and commits. Errors
/// only when it cannot start (state file unreadable or unwritable, an output topic missing,
/// HTTP address in use, invalid librdkafka option); broker outages are waited out.
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

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
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
    let start = restore_local(config, &telemetry)?;
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
    let counts = topic_partitions(config, &config.input_topics).await?;
    let widest = counts.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let compacted = |name: String| ServiceTopic { name, compacted: true };
    let mut own = vec![compacted(config.state_topic()), compacted(config.fleet_topic())];
    if config.repartition {
        own.push(ServiceTopic { name: config.repartition_topic(), compacted: false });
    }
    kafka_io::ensure_service_topics(config, &own, widest).await?;
    let judged = config.judged_topics();
    let judged_counts = topic_partitions(config, &judged).await?;
    let total: usize = judged_counts.iter().map(|(_, n)| *n as usize).sum();

    let deliverer = Arc::new(Deliverer {
        producer: producer.clone(),
        telemetry: Arc::clone(&telemetry),
        dead_letter_topic: config.dlq_topic.clone(),
    });
    let shared = Arc::new(config.clone());
    let core = Core::new(shared, Arc::clone(&telemetry), start, Arc::clone(&deliverer), recent, total)?;
    let core = Arc::new(Mutex::new(core));
    let finished = Arc::clone(&lock(&core).finished);

    let global = Arc::new(kafka_io::create_stream_reader(config, "global")?);
    assign_global(config, &global, &core).await?;
    let consumer = Arc::new(create_consumer(config, Arc::clone(&telemetry), judged.clone())?);
    consumer.context().set_owner(Arc::new(Owner(Arc::clone(&core))));
    let topics: Vec<&str> = judged.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe to the input topics")?;
    let (stop_repartition, repartition_stopped) = tokio::sync::watch::channel(false);
    let repartition = config.repartition.then(|| {
        tokio::spawn(repartition::run(
            Arc::new(config.clone()),
            Arc::clone(&telemetry),
            Arc::clone(&deliverer),
            // Created with the inputs' width, or wider by the operator beforehand.
            judged_counts[0].1,
            repartition_stopped,
            Duration::from_secs(config.shutdown_timeout_s),
        ))
    });
    tracing::info!(topics = ?topics, group = %config.group, "Consuming.");
    let watcher = tokio::spawn(probe::watch(
        producer.clone(),
        outputs.into_iter().map(|t| t.name).collect(),
        Arc::clone(&telemetry),
    ));

    let every = |s: u64| Duration::from_secs(s);
    let ticker = |period: Duration| tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut snapshot_timer = ticker(every(config.snapshot_interval_s));
    let mut checkpoint_timer = ticker(every(config.checkpoint_interval_s));
    let mut gauge_timer = ticker(GAUGE_INTERVAL);
    let mut news_timer = ticker(FLEET_NEWS_INTERVAL);
    let mut idle_timer = ticker(Duration::from_millis((config.idle_ms / 2).max(10)));
    let (mut snapshot_due, mut checkpoint_due) = (false, false);
    let mut backoff = Backoff::default();
    let mut decoder = decoder::Decoder::start(config.limits()).context("cannot start the decoding thread")?;
    // One stream for the whole loop: `recv` makes a stream per message, and registering and
    // dropping its waker took a lock twice per message (4% of the loop's thread).
    let mut messages = consumer.stream();

    loop {
        // A checkpoint or snapshot due waits for the deliveries in flight: consumption pauses.
        let accepting = {
            let core = lock(&core);
            core.accepting(MAX_IN_FLIGHT) && !((snapshot_due || checkpoint_due) && !core.quiescent())
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = finished.notify.notified() => lock(&core).take_finished(),
            _ = checkpoint_timer.tick() => checkpoint_due = true,
            _ = snapshot_timer.tick(), if config.state.is_some() => snapshot_due = true,
            _ = gauge_timer.tick() => lock(&core).update_gauges(),
            _ = news_timer.tick() => lock(&core).publish_fleet_news(),
            _ = idle_timer.tick() => {
                let mut core = lock(&core);
                core.mark_idle();
                core.run_engine();
            }
            // Between batches, and while idle or paused: the engine is never shared.
            query = answers.next() => lock(&core).answer(query),
            message = global.recv() => match message {
                Ok(message) => global_message(config, &core, &message),
                Err(KafkaError::PartitionEOF(partition)) => lock(&core).at_end(partition, false),
                Err(error) => tracing::debug!(%error, "Reader of the topics read whole: consumer error."),
            },
            message = messages.next(), if accepting => {
                let message = message.expect("a consumer's stream never ends");
                let started = Instant::now();
                let mut engine_time = Duration::ZERO;
                let mut batches = 1;
                // What librdkafka has already fetched is taken now, a batch at a time, without a
                // turn of the loop per message. While the helper decodes a batch, this thread
                // judges what the batch before it let out of the order stage and polls the next
                // (the lock is let go before each poll, in which a rebalance may run its
                // callbacks: see `Core::take_in` for messages polled before one).
                let mut polled = Some(poll_batch(&mut messages, message, &mut decoder, config));
                while let Some(batch) = polled.take() {
                    let judging = Instant::now();
                    let judged = lock(&core).run_engine();
                    engine_time += judging.elapsed();
                    decoder.recycle(judged);
                    if batch.error.is_none() && batches < MAX_BATCHES && lock(&core).accepting(MAX_IN_FLIGHT) {
                        if let Some(first) = next_ready(&mut messages) {
                            polled = Some(poll_batch(&mut messages, first, &mut decoder, config));
                            batches += 1;
                        }
                    }
                    let decoded = decoder.receive(payloads(&batch.messages, config));
                    let failed = {
                        let mut core = lock(&core);
                        for (message, records) in batch.messages.iter().zip(decoded) {
                            core.take_in(message, records, batch.polled_at);
                        }
                        match batch.error {
                            None => None,
                            Some(KafkaError::PartitionEOF(partition)) => {
                                core.at_end(partition, true);
                                None
                            }
                            Some(error) => Some(error),
                        }
                    };
                    match failed {
                        None => backoff.reset(),
                        Some(error) => {
                            let retry_in = backoff.next_delay();
                            ConsumerFailed { error: &error, retry_in }.emit(&telemetry);
                            tokio::time::sleep(retry_in).await;
                        }
                    }
                }
                // Taking in counted here; the engine's time is counted where it runs.
                BatchProcessed { elapsed: started.elapsed().saturating_sub(engine_time) }.emit(&telemetry);
                let mut core = lock(&core);
                core.mark_idle();
                core.run_engine();
            }
        }
        let mut core = lock(&core);
        core.flush(&consumer);
        core.pace(&consumer);
        if checkpoint_due && core.checkpoint_all() {
            checkpoint_due = false;
        }
        if snapshot_due && core.quiescent() {
            snapshot_due = false;
            core.snapshot();
        }
    }

    if let Some(task) = repartition {
        let _ = stop_repartition.send(true);
        if let Ok(Err(error)) = task.await {
            tracing::error!(error = %format!("{error:#}"), "Repartition stage failed.");
        }
    }
    lock(&core).drain();
    let timeout = Duration::from_secs(config.shutdown_timeout_s);
    tracing::info!(timeout_s = timeout.as_secs(), "Shutting down: finishing in-flight deliveries.");
    let summary = {
        let core = Arc::clone(&core);
        let config_has_state = config.state.is_some();
        tokio::task::spawn_blocking(move || {
            let mut core = lock(&core);
            let unacknowledged = core.wait_for_deliveries(timeout);
            if unacknowledged > 0 {
                // The state holds records whose alerts are not acknowledged: a checkpoint or
                // snapshot of it would skip them at the next start. The last good ones stay.
                tracing::error!(
                    unacknowledged,
                    "Deliveries still unacknowledged at the shutdown timeout; no final checkpoint."
                );
                core.summary.unacknowledged = unacknowledged as u64;
                core.summary.final_snapshot_missing = config_has_state;
            } else {
                core.checkpoint_all();
                core.wait_for_deliveries(timeout);
                core.summary.final_snapshot_missing = !core.snapshot();
            }
            core.close();
            core.summary.order = core.order_counts();
            core.summary
        })
        .await?
    };
    watcher.abort();
    {
        let mut core = lock(&core);
        core.flush(&consumer);
    }
    drop(messages);
    close(consumer).await;
    Ok(summary)
}

/// Messages polled at once, sent to the decoder and not yet taken in.
struct Batch<'c> {
    messages: Vec<BorrowedMessage<'c>>,
    /// The consumer error (or end of a partition) that ended the batch.
    error: Option<KafkaError>,
    polled_at: Instant,
}

/// `first` and the messages librdkafka has already fetched after it, up to [`BATCH`] or the
/// first consumer error, sent to the decoder.
fn poll_batch<'c>(
    consumer: &mut MessageStream<'c, ServiceContext>,
    first: Result<BorrowedMessage<'c>, KafkaError>,
    decoder: &mut decoder::Decoder,
    config: &ServiceConfig,
) -> Batch<'c> {
    let polled_at = Instant::now();
    let mut messages = Vec::with_capacity(BATCH);
    let mut error = None;
    let mut next = Some(first);
    while let Some(polled) = next.take() {
        match polled {
            Ok(message) => messages.push(message),
            Err(e) => error = Some(e),
        }
        if error.is_none() && messages.len() < BATCH {
            next = next_ready(consumer);
        }
    }
    decoder.send(payloads(&messages, config));
    Batch { messages, error, polled_at }
}

/// A message (or consumer error) librdkafka already holds, without waiting.
fn next_ready<'c>(messages: &mut MessageStream<'c, ServiceContext>) -> Option<Result<BorrowedMessage<'c>, KafkaError>> {
    messages.next().now_or_never().map(|next| next.expect("a consumer's stream never ends"))
}

/// Each message's payload and the format of its topic, for the decoder.
fn payloads<'m>(
    messages: &'m [BorrowedMessage<'_>],
    config: &'m ServiceConfig,
) -> impl Iterator<Item = (&'m [u8], crate::decode::Format)> + use<'m> {
    messages.iter().map(|m| (m.payload().unwrap_or_default(), config.format_of(m.topic())))
}

/// The partition counts of topics, asked of the brokers (retried while none answers).
async fn topic_partitions(config: &ServiceConfig, topics: &[String]) -> anyhow::Result<Vec<(String, i32)>> {
    let reader = kafka_io::create_reader(config, "metadata")?;
    let topics = topics.to_vec();
    let counts = tokio::task::spawn_blocking(move || kafka_io::partition_counts(&reader, &topics, METADATA_TIMEOUT))
        .await?
        .context("cannot read the input topics' partitions from the brokers")?;
    if let Some((topic, _)) = counts.iter().find(|(_, n)| *n == 0) {
        anyhow::bail!("input topic `{topic}` does not exist on the brokers; create it, then start again");
    }
    Ok(counts)
}

/// Assigns the reader of the topics every instance reads whole: grants and verdicts (into the
/// order stage, by event time) and the fleet table, each from where the local snapshot left it.
async fn assign_global(
    config: &ServiceConfig,
    global: &StreamConsumer<kafka_io::ClientLog>,
    core: &Mutex<Core>,
) -> anyhow::Result<()> {
    let mut topics: Vec<(String, Option<Role>)> = vec![(config.fleet_topic(), None)];
    topics.extend(config.grants_topic.iter().map(|t| (t.clone(), Some(Role::Grants))));
    topics.extend(config.feedback_topic.iter().map(|t| (t.clone(), Some(Role::Feedback))));
    let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
    let counts = topic_partitions(config, &names).await?;
    let mut tpl = TopicPartitionList::new();
    let mut core = lock(core);
    for ((topic, role), (_, partitions)) in topics.iter().zip(counts) {
        for partition in 0..partitions {
            let tp = TopicPartition { topic: topic.clone(), partition };
            tpl.add_partition_offset(topic, partition, core.global_start(&tp))?;
            if let Some(role) = role {
                core.add_global_input(tp, *role);
            }
        }
    }
    global.assign(&tpl).context("cannot read the grants, feedback and fleet topics")?;
    Ok(())
}

/// A message of a topic read whole: the fleet table's, or a grant or verdict for the order stage.
fn global_message(config: &ServiceConfig, core: &Mutex<Core>, message: &rdkafka::message::BorrowedMessage<'_>) {
    let mut core = lock(core);
    let tp = TopicPartition { topic: message.topic().to_string(), partition: message.partition() };
    if message.topic() == config.fleet_topic() {
        core.fleet_record(message.key().unwrap_or_default(), message.payload());
    } else {
        core.receive(message);
        core.run_engine();
    }
    core.global_read(tp, message.offset() + 1);
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
            "Commit and group leave did not finish in time; exiting without them (the checkpoint and the last commit stand).");
    }
}

/// Loads the local snapshot if there is one; a snapshot that exists but cannot be read stops
/// the start, since silently relearning would re-alert on everything it already alerted on.
fn restore_local(config: &ServiceConfig, telemetry: &Telemetry) -> anyhow::Result<Start> {
    let restored = match &config.state {
        Some(path) => snapshot::read(path, config.engine.clone())?,
        None => None,
    };
    let (path, mut engine, positions, held) = match restored {
        Some((engine, positions, held)) => (config.state.as_deref(), engine, positions, held),
        None => (None, Engine::new(config.engine.clone()), Default::default(), Default::default()),
    };
    engine.set_suppression(config.suppression());
    StateRestored { path, partitions: positions.len(), identities: engine.stats().identities }.emit(telemetry);
    Ok(Start { engine, positions, held })
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
        late = summary.order.late,
        released_early = summary.order.released_early,
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
