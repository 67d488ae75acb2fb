//! Whether a broker answers and the output topics exist, asked with a metadata request and a
//! short timeout: once at start, where a missing topic stops the start (every alert would wait
//! for it forever), then every few seconds for readiness. librdkafka's statistics alone lag
//! behind a hung broker: its TCP connection stays up, so it counts as up until
//! `socket.timeout.ms` (60 s) passes. A broker that creates a topic when asked about it
//! (`auto.create.topics.enable`) makes the topic exist, which is fine.

use super::AlertProducer;
use super::Backoff;
use crate::telemetry::events::{BrokerAnswering, TopicsMissing};
use crate::telemetry::Telemetry;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// How often readiness asks.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a broker may take to answer before it counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// At start a first connection (DNS, TLS, SASL) may take longer than a probe.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// An output topic and what it is for, as named in a start-up error.
pub struct OutputTopic {
    pub role: &'static str,
    pub name: String,
}

/// A topic the brokers do not offer, and what they said about it.
struct TopicProblem {
    topic: String,
    error: RDKafkaErrorCode,
}

/// Asks for each topic's metadata; an error if no broker answered within `timeout`.
fn problems(producer: &AlertProducer, topics: &[String], timeout: Duration) -> KafkaResult<Vec<TopicProblem>> {
    let mut problems = Vec::new();
    for topic in topics {
        let metadata = producer.client().fetch_metadata(Some(topic), timeout)?;
        let error = match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) => t.error().map(RDKafkaErrorCode::from),
            None => Some(RDKafkaErrorCode::UnknownTopicOrPartition),
        };
        // A topic being created has no leader for a moment; it exists.
        if let Some(error) = error.filter(|e| *e != RDKafkaErrorCode::LeaderNotAvailable) {
            problems.push(TopicProblem { topic: topic.clone(), error });
        }
    }
    Ok(problems)
}

/// [`problems`] on a blocking thread: `fetch_metadata` blocks for up to `timeout`.
async fn probe(producer: &AlertProducer, topics: &[String], timeout: Duration) -> KafkaResult<Vec<TopicProblem>> {
    let (producer, topics) = (producer.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || problems(&producer, &topics, timeout))
        .await
        // Only when the runtime shuts down under the probe.
        .unwrap_or(Err(KafkaError::Canceled))
}

/// Waits until a broker answers, then fails if an output topic does not exist. While no broker
/// answers it retries (an outage at start is waited out like one later, never a crash loop).
pub async fn check_output_topics(
    producer: &AlertProducer,
    brokers: &str,
    topics: &[OutputTopic],
    telemetry: &Telemetry,
) -> anyhow::Result<()> {
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let mut backoff = Backoff::default();
    loop {
        match probe(producer, &names, START_TIMEOUT).await {
            Ok(problems) => {
                BrokerAnswering { error: None }.emit(telemetry);
                return match problems.is_empty() {
                    true => Ok(()),
                    false => Err(anyhow::anyhow!(missing_message(topics, &problems, brokers))),
                };
            }
            Err(error) => {
                BrokerAnswering { error: Some(&error) }.emit(telemetry);
                let retry_in = backoff.next_delay();
                tracing::warn!(
                    retry_in_ms = retry_in.as_millis() as u64,
                    "No broker answered; the output topics are checked once one does."
                );
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

fn missing_message(topics: &[OutputTopic], problems: &[TopicProblem], brokers: &str) -> String {
    let mut message = String::new();
    for p in problems {
        let role = topics.iter().find(|t| t.name == p.topic).map_or("output topic", |t| t.role);
        let _ = write!(message, "{role} `{}` is not available on the brokers ({}); ", p.topic, p.error);
    }
    let example = &problems[0].topic;
    let _ = write!(
        message,
        "create it (e.g. `kafka-topics.sh --bootstrap-server {brokers} --create --topic {example}`) or grant this \
         client access to it, then start again; overreach creates only its own state and fleet topics"
    );
    message
}

/// Probes every [`PROBE_INTERVAL`] until the task is aborted, updating readiness.
pub async fn watch(producer: AlertProducer, topics: Vec<String>, telemetry: Arc<Telemetry>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        match probe(&producer, &topics, PROBE_TIMEOUT).await {
            Ok(problems) => {
                BrokerAnswering { error: None }.emit(&telemetry);
                let missing: Vec<String> = problems.into_iter().map(|p| p.topic).collect();
                TopicsMissing { topics: &missing }.emit(&telemetry);
            }
            Err(error) => BrokerAnswering { error: Some(&error) }.emit(&telemetry),
        }
    }
}
