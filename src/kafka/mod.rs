//! Kafka plumbing of the service: client settings and creation, the consumer callbacks
//! (assignment and revocation handed to the partitions' owner, lag and broker reachability
//! from librdkafka statistics), librdkafka's own text logged with secrets scrubbed out,
//! reading a partition to its end, creating the service's own topics, delivery of the
//! outputs, the metadata probe, the offset bookkeeping and the local state snapshot.

pub mod delivery;
pub mod handover;
pub mod offsets;
pub mod probe;
pub mod secrets;
pub mod snapshot;

use crate::config::ServiceConfig;
use crate::telemetry::events::{BrokerReachability, ConsumerLag, PartitionsAssigned, PartitionsRevoked};
use crate::telemetry::Telemetry;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use secrets::Secrets;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// A typed key for per-partition state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The producer of alerts and dead letters.
pub type AlertProducer = FutureProducer<ClientLog>;

/// Why a Kafka client could not be created, in librdkafka's words with every secret scrubbed
/// out (a configuration error quotes the offending value).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Kafka {client}: {reason}")]
pub struct ClientError {
    client: &'static str,
    reason: String,
}

/// Who holds the state of the partitions the group assigns: told of every assignment and
/// revocation, inside the rebalance, before the consumer reads from them or lets them go.
pub trait PartitionOwner: Send + Sync {
    /// Partitions newly assigned: restore their state and set in `tpl` the offset each
    /// resumes from (left unset, the group's committed offset).
    fn assigned(&self, tpl: &mut TopicPartitionList);
    /// Partitions about to be revoked: checkpoint what can be, and let go of their state;
    /// returns the offsets to commit for them before they go.
    fn revoked(&self, tpl: &TopicPartitionList) -> TopicPartitionList;
}

/// The service's group consumer, with the callbacks of [`ServiceContext`]; `topics` are the
/// topics whose lag it reports. Its rebalances go to the owner set later with
/// [`ServiceContext::set_owner`], once the state it restores into exists.
pub fn create_consumer(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    topics: Vec<String>,
) -> Result<StreamConsumer<ServiceContext>, ClientError> {
    let client_log = ClientLog::new(config);
    let context = ServiceContext { telemetry, owner: OnceLock::new(), topics, client_log: client_log.clone() };
    consumer_config(config).create_with_context(context).map_err(|e| client_log.client_error("consumer", &e))
}

/// A consumer outside the group, for the topics every instance reads whole (grants, verdicts,
/// the fleet table) and for reading a partition back: nothing is committed.
pub fn create_reader(config: &ServiceConfig, purpose: &str) -> Result<BaseConsumer<ClientLog>, ClientError> {
    let client_log = ClientLog::new(config);
    reader_config(config, purpose)
        .create_with_context(client_log.clone())
        .map_err(|e| client_log.client_error("reader", &e))
}

/// The same, as a stream for the service loop.
pub fn create_stream_reader(config: &ServiceConfig, purpose: &str) -> Result<StreamConsumer<ClientLog>, ClientError> {
    let client_log = ClientLog::new(config);
    reader_config(config, purpose)
        .create_with_context(client_log.clone())
        .map_err(|e| client_log.client_error("reader", &e))
}

/// A reader in a group of its own (the repartition stage) that is told which partitions a
/// rebalance took from it (`RevokeLog::take_revoked`).
pub fn create_group_reader(config: &ServiceConfig, purpose: &str) -> Result<StreamConsumer<RevokeLog>, ClientError> {
    let log = RevokeLog { client_log: ClientLog::new(config), revoked: Arc::default() };
    let client_log = log.client_log.clone();
    reader_config(config, purpose).create_with_context(log).map_err(|e| client_log.client_error("reader", &e))
}

/// The callbacks of a group reader: librdkafka's log as [`ClientLog`] has it, and the
/// partitions each rebalance revoked, until its owner takes them.
pub struct RevokeLog {
    client_log: ClientLog,
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
}

impl RevokeLog {
    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<TopicPartition> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for RevokeLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.client_log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client_log.error(error, reason);
    }
}

impl ConsumerContext for RevokeLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
            for e in tpl.elements() {
                revoked.push(TopicPartition { topic: e.topic().to_string(), partition: e.partition() });
            }
        }
    }
}

/// librdkafka's wait before fetching again once its queue is full (1 s by default, which left
/// a service behind its topic idle most of each second: docs/service.md says why).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

fn reader_config(config: &ServiceConfig, purpose: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", format!("{}-{purpose}", config.group))
        .set("client.id", "overreach")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .set("auto.offset.reset", "earliest");
    for (k, v) in config.kafka.iter().chain(&config.kafka_consumer) {
        c.set(k, v);
    }
    c
}

/// How long a partition read back must stay quiet past its reported end before it counts as
/// read whole: some brokers report an end below the last record for a moment after a write.
const READ_BACK_QUIET: Duration = Duration::from_millis(300);

/// Reads partitions of `topic` from their beginnings to their ends, all at once, handing each
/// record's partition, key and value (`None`: a tombstone) to `f`; an error when no broker
/// answers within `timeout`. One read for every partition a rebalance assigns: the quiet wait
/// past the end is paid once, not once per partition.
pub fn read_partitions(
    reader: &BaseConsumer<ClientLog>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    mut f: impl FnMut(i32, &[u8], Option<&[u8]>),
) -> Result<(), KafkaError> {
    // Each partition with records, and the end it reported.
    let mut ends = HashMap::new();
    for &partition in partitions {
        let (low, high) = reader.fetch_watermarks(topic, partition, timeout)?;
        if high > low {
            ends.insert(partition, high);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for &partition in ends.keys() {
        tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut reached_end = HashSet::new();
    let mut quiet_since = Instant::now();
    loop {
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                use rdkafka::Message;
                let partition = message.partition();
                f(partition, message.key().unwrap_or_default(), message.payload());
                if ends.get(&partition).is_some_and(|&high| message.offset() + 1 >= high) {
                    reached_end.insert(partition);
                }
                quiet_since = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                reached_end.insert(partition);
            }
            Some(Err(error)) => tracing::debug!(%error, topic, "Reading back: consumer error."),
            None => {}
        }
        let all_read = reached_end.len() >= ends.len();
        if all_read && quiet_since.elapsed() >= READ_BACK_QUIET {
            break;
        }
        if !all_read && Instant::now() > deadline {
            return Err(KafkaError::Canceled);
        }
    }
    reader.unassign()?;
    Ok(())
}

/// One of the service's own topics: the state and fleet topics are compacted (`cleanup.policy =
/// compact`: the latest value of each key is what counts), the repartition topic is a log.
pub struct ServiceTopic {
    pub name: String,
    pub compacted: bool,
}

/// Creates each of the service's own topics that does not exist yet, with `partitions`
/// partitions (or as many as an existing repartition topic has, if more); an existing one with
/// fewer partitions than the judged topics need is an error naming it.
pub async fn ensure_service_topics(
    config: &ServiceConfig,
    topics: &[ServiceTopic],
    partitions: i32,
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let counts = service_topic_partitions(config, &names).await?;
    // An existing repartition topic (the one log among them) is what the group judges: the
    // state and fleet topics need a partition for each of its partitions, however wide.
    let partitions =
        topics.iter().zip(&counts).filter(|(t, _)| !t.compacted).map(|(_, (_, n))| *n).fold(partitions, i32::max);
    let missing: Vec<&ServiceTopic> =
        topics.iter().zip(&counts).filter(|(_, (_, n))| *n == 0).map(|(t, _)| t).collect();
    if !missing.is_empty() {
        let client_log = ClientLog::new(config);
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers).set("client.id", "overreach");
        for (k, v) in &config.kafka {
            c.set(k, v);
        }
        let admin: AdminClient<ClientLog> =
            c.create_with_context(client_log.clone()).map_err(|e| client_log.client_error("admin client", &e))?;
        let replication = config.service_topic_replication;
        let new: Vec<NewTopic> = missing
            .iter()
            .map(|t| {
                NewTopic::new(&t.name, partitions, TopicReplication::Fixed(replication))
                    .set("cleanup.policy", if t.compacted { "compact" } else { "delete" })
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|error| anyhow::anyhow!("cannot create the service topics {}: {error}", names.join(", ")))?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(topic, partitions, "Created the service topic."),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, error)) => anyhow::bail!("cannot create the service topic `{topic}`: {error}"),
            }
        }
    }
    for (topic, count) in service_topic_partitions(config, &names).await? {
        if count < partitions {
            anyhow::bail!(
                "the service topic `{topic}` has {count} partitions, and the judged topics need {partitions}: \
                 give the service topics of at least {partitions} partitions (`state_topic`, `fleet_topic`, \
                 `repartition_topic`)"
            );
        }
    }
    Ok(())
}

/// The partition counts of the service's own topics (0: not there).
async fn service_topic_partitions(config: &ServiceConfig, topics: &[String]) -> anyhow::Result<Vec<(String, i32)>> {
    let probe = create_reader(config, "probe")?;
    let topics = topics.to_vec();
    Ok(tokio::task::spawn_blocking(move || partition_counts(&probe, &topics, Duration::from_secs(10))).await??)
}

/// The number of partitions of each topic, from the brokers.
pub fn partition_counts(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, i32)>, KafkaError> {
    let mut counts = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let partitions = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
        counts.push((topic.clone(), partitions as i32));
    }
    Ok(counts)
}

/// The service's producer.
pub fn create_producer(config: &ServiceConfig) -> Result<AlertProducer, ClientError> {
    let client_log = ClientLog::new(config);
    producer_config(config).create_with_context(client_log.clone()).map_err(|e| client_log.client_error("producer", &e))
}

/// Consumer settings: the at-least-once pair (auto-commit of *stored* offsets only, stored by
/// the service after delivery), cooperative-sticky assignment (a rebalance moves only the
/// partitions that must move, and the others keep being read), the end of a partition
/// reported (an input read to its end holds the order stage back no longer), then the user's
/// `[kafka]` and `[kafka_consumer]` tables.
fn consumer_config(config: &ServiceConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("client.id", "overreach")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "true")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        // Drives consumer lag and broker reachability (see `ServiceContext::stats`).
        .set("statistics.interval.ms", "5000");
    for (k, v) in config.kafka.iter().chain(&config.kafka_consumer) {
        c.set(k, v);
    }
    c
}

/// Producer settings: idempotent with `acks=all`, so a retried alert is written once per send,
/// then the user's `[kafka]` and `[kafka_producer]` tables.
fn producer_config(config: &ServiceConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", "overreach")
        .set("enable.idempotence", "true")
        .set("acks", "all");
    for (k, v) in config.kafka.iter().chain(&config.kafka_producer) {
        c.set(k, v);
    }
    c
}

/// librdkafka's log lines and error reports, logged through `tracing` with every configured
/// secret scrubbed out; the callbacks of the producer, and part of the consumer's.
#[derive(Clone)]
pub struct ClientLog {
    secrets: Arc<Secrets>,
}

impl ClientLog {
    fn new(config: &ServiceConfig) -> ClientLog {
        ClientLog { secrets: Arc::new(Secrets::of(config)) }
    }

    fn client_error(&self, client: &'static str, error: &KafkaError) -> ClientError {
        ClientError { client, reason: self.secrets.scrub(&error.to_string()).into_owned() }
    }
}

impl ConsumerContext for ClientLog {}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let message = self.secrets.scrub(message);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is news the reading loop takes from the stream, not a fault.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        let error = error.to_string();
        tracing::warn!(error = %self.secrets.scrub(&error), reason = &*self.secrets.scrub(reason), "librdkafka error.");
    }
}

/// Callbacks of the service's consumer.
pub struct ServiceContext {
    telemetry: Arc<Telemetry>,
    /// Who holds the partitions' state; rebalances before it is set assign nothing.
    owner: OnceLock<Arc<dyn PartitionOwner>>,
    /// The input topics, whose lag is reported.
    topics: Vec<String>,
    client_log: ClientLog,
}

impl ServiceContext {
    pub fn set_owner(&self, owner: Arc<dyn PartitionOwner>) {
        let _ = self.owner.set(owner);
    }
}

impl ClientContext for ServiceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.client_log.log(level, facility, message);
    }

    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        BrokerReachability { up }.emit(&self.telemetry);
        for (name, topic) in &stats.topics {
            if !self.topics.contains(name) {
                continue;
            }
            // Partition -1 is librdkafka's internal placeholder; a lag of -1 means not known yet.
            for p in topic.partitions.values().filter(|p| p.partition >= 0 && p.consumer_lag >= 0) {
                ConsumerLag { topic: name, partition: p.partition, lag: p.consumer_lag }.emit(&self.telemetry);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            BrokerReachability { up: false }.emit(&self.telemetry);
        }
        self.client_log.error(error, reason);
    }
}

impl ConsumerContext for ServiceContext {
    /// On assignment, the owner restores each partition's state (from the state topic or the
    /// local snapshot) and says where it resumes, so records the state holds are not counted
    /// twice and records it lacks are read again; on revocation it checkpoints and lets go,
    /// before the partitions move on. Both run inside the rebalance, as Kafka Streams does.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(owner) = self.owner.get() {
                    owner.assigned(tpl);
                }
                let from_state = tpl.elements().iter().filter(|e| matches!(e.offset(), Offset::Offset(_))).count();
                let result = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(error) = result {
                    tracing::error!(%error, "Assigning partitions failed.");
                }
                // librdkafka keeps a partition paused across a revocation: one the owner paused
                // (it was ahead of the others) starts unpaused when it comes back.
                if let Err(error) = consumer.resume(tpl) {
                    tracing::debug!(%error, "Assigned partitions not resumed.");
                }
                BrokerReachability { up: true }.emit(&self.telemetry);
                PartitionsAssigned { count: tpl.count(), from_snapshot: from_state }.emit(&self.telemetry);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Some(owner) = self.owner.get() {
                    let commit = owner.revoked(tpl);
                    // Committed now, while the partitions are still ours: their next owner
                    // finds the offset its checkpoint covers.
                    if commit.count() > 0 {
                        if let Err(error) = consumer.commit(&commit, rdkafka::consumer::CommitMode::Sync) {
                            tracing::warn!(%error, "Committing revoked partitions' offsets failed.");
                        }
                    }
                }
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(error) = result {
                    tracing::error!(%error, "Revoking partitions failed.");
                }
                PartitionsRevoked { count: tpl.count() }.emit(&self.telemetry);
            }
            other => {
                // librdkafka's advice on a rebalance error: drop the assignment and let the group recover.
                tracing::error!(error = ?other, "Rebalance failed; unassigning.");
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "Unassigning failed.");
                }
                PartitionsRevoked { count: tpl.count() }.emit(&self.telemetry);
            }
        }
    }
}

/// Exponential backoff for retries against an unavailable broker: 100 ms doubling to 5 s.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let ms = 100u64.saturating_mul(1 << self.failures.min(6)).min(5_000);
        self.failures += 1;
        Duration::from_millis(ms)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    fn service_config() -> ServiceConfig {
        toml::from_str("input_topics=[\"i\"]\nalert_topic=\"a\"").unwrap()
    }

    #[test]
    fn librdkafka_is_built_with_tls_sasl_and_the_compression_codecs() {
        let features = ClientConfig::new().create_native_config().unwrap().get("builtin.features").unwrap();
        let features: Vec<&str> = features.split(',').collect();
        for wanted in ["ssl", "sasl_plain", "sasl_scram", "sasl_oauthbearer", "gzip", "snappy", "lz4", "zstd"] {
            assert!(features.contains(&wanted), "`{wanted}` missing from librdkafka's builtin.features {features:?}");
        }
    }

    #[test]
    fn a_client_creation_error_names_the_key_but_not_the_secret() {
        let mut config = service_config();
        // The Java form a Confluent Cloud console offers: librdkafka has no such key, and the
        // error quotes the value, password included.
        let jaas =
            "org.apache.kafka.common.security.plain.PlainLoginModule required username='ABCD' password='s3cr3t-pw';";
        config.kafka.insert("sasl.jaas.config".into(), jaas.into());
        let consumer = create_consumer(&config, Arc::new(Telemetry::new()), Vec::new()).err();
        let producer = create_producer(&config).err();
        for error in [consumer, producer] {
            let error = error.expect("an unknown key is a creation error").to_string();
            assert!(error.contains("sasl.jaas.config"), "{error}");
            assert!(!error.contains("s3cr3t-pw") && error.contains("***"), "{error}");
        }
    }

    #[test]
    fn user_options_override_the_service_settings() {
        let mut config = service_config();
        config.kafka.insert("security.protocol".into(), "sasl_ssl".into());
        config.kafka_consumer.insert("statistics.interval.ms".into(), "1000".into());
        config.kafka_producer.insert("linger.ms".into(), "1".into());
        let c = consumer_config(&config);
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        for c in [&c, &reader_config(&config, "global")] {
            assert_eq!(c.get("fetch.queue.backoff.ms"), Some(FETCH_QUEUE_BACKOFF_MS));
        }
        assert_eq!(c.get("statistics.interval.ms"), Some("1000"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("linger.ms"), None);
        let p = producer_config(&config);
        assert_eq!((p.get("enable.idempotence"), p.get("acks")), (Some("true"), Some("all")));
        assert_eq!(p.get("linger.ms"), Some("1"));
        assert_eq!(p.get("statistics.interval.ms"), None);
    }
}
