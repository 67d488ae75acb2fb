//! Kafka plumbing of the service: client settings and creation, the consumer callbacks
//! (assignment from the snapshot position, lag and broker reachability from librdkafka
//! statistics), librdkafka's own text logged with secrets scrubbed out, delivery of the
//! outputs, the metadata probe, the offset bookkeeping and the state snapshot.

pub mod delivery;
pub mod offsets;
pub mod probe;
pub mod secrets;
pub mod snapshot;

use crate::config::ServiceConfig;
use crate::telemetry::events::{BrokerReachability, ConsumerLag, PartitionsAssigned, PartitionsRevoked};
use crate::telemetry::Telemetry;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use secrets::Secrets;
use serde::{Deserialize, Serialize};
use snapshot::Positions;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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

/// The service's consumer, with the callbacks of [`ServiceContext`]; `positions` is where the
/// engine state ends per partition, shared with the processing loop.
pub fn create_consumer(
    config: &ServiceConfig,
    telemetry: Arc<Telemetry>,
    positions: Arc<Mutex<Positions>>,
) -> Result<StreamConsumer<ServiceContext>, ClientError> {
    let client_log = ClientLog::new(config);
    let context = ServiceContext {
        telemetry,
        positions,
        topics: config.input_topics().cloned().collect(),
        client_log: client_log.clone(),
    };
    consumer_config(config).create_with_context(context).map_err(|e| client_log.client_error("consumer", &e))
}

/// The service's producer.
pub fn create_producer(config: &ServiceConfig) -> Result<AlertProducer, ClientError> {
    let client_log = ClientLog::new(config);
    producer_config(config).create_with_context(client_log.clone()).map_err(|e| client_log.client_error("producer", &e))
}

/// Consumer settings: the at-least-once pair (auto-commit of *stored* offsets only, stored by
/// the service after delivery), then the user's `[kafka]` and `[kafka_consumer]` tables.
fn consumer_config(config: &ServiceConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("client.id", "overreach")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
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
        let error = error.to_string();
        tracing::warn!(error = %self.secrets.scrub(&error), reason = &*self.secrets.scrub(reason), "librdkafka error.");
    }
}

/// Callbacks of the service's consumer.
pub struct ServiceContext {
    telemetry: Arc<Telemetry>,
    /// Per partition, where the engine state ends; shared with the processing loop, which
    /// advances it record by record.
    positions: Arc<Mutex<Positions>>,
    /// The input topics, whose lag is reported.
    topics: Vec<String>,
    client_log: ClientLog,
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
    /// On assignment, every partition the engine state has seen starts where that state ends
    /// (the snapshot position at start, the live position after a re-assignment), not at the
    /// committed offset: records the state already holds must not be counted twice, and
    /// records it lacks must be read again.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let positions = self.positions.lock().unwrap_or_else(PoisonError::into_inner);
                let assigned: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                let mut from_snapshot = 0;
                for (topic, partition) in &assigned {
                    let tp = TopicPartition { topic: topic.clone(), partition: *partition };
                    if let Some(&next) = positions.get(&tp) {
                        if tpl.set_partition_offset(topic, *partition, Offset::Offset(next)).is_ok() {
                            from_snapshot += 1;
                        }
                    }
                }
                drop(positions);
                let result = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(error) = result {
                    tracing::error!(%error, "Assigning partitions failed.");
                }
                BrokerReachability { up: true }.emit(&self.telemetry);
                PartitionsAssigned { count: assigned.len(), from_snapshot }.emit(&self.telemetry);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
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
        let consumer = create_consumer(&config, Arc::new(Telemetry::new()), Arc::default()).err();
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
        assert_eq!(c.get("statistics.interval.ms"), Some("1000"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("linger.ms"), None);
        let p = producer_config(&config);
        assert_eq!((p.get("enable.idempotence"), p.get("acks")), (Some("true"), Some("all")));
        assert_eq!(p.get("linger.ms"), Some("1"));
        assert_eq!(p.get("statistics.interval.ms"), None);
    }
}
