//! `overreach demo`: a simulated fleet streamed through the real Kafka service.
//!
//! Starts librdkafka's in-process mock cluster (or uses `--brokers`), creates the topics,
//! runs [`crate::service::run`] — the same code as `overreach run` — and, beside it, produces
//! the fleet's grant and access events and prints each alert as it arrives on the alert topic.
//! Ends with a summary: events, alerts by detector, injected incidents caught.

use crate::config::ServiceConfig;
use crate::service::{self, RunSummary};
use crate::telemetry::Telemetry;
use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Use this Kafka cluster instead of the embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,
}

/// Partitions of each demo topic.
const PARTITIONS: i32 = 3;
/// The demo must end by itself; each wait gives up after this.
const WAIT_LIMIT: Duration = Duration::from_secs(40);

/// The fleet: access events and grant events in event-time order, and the injected incidents.
/// Same shape as the simulator's output.
#[derive(Debug, Deserialize)]
struct Fleet {
    events: Vec<Value>,
    grants: Vec<Value>,
    labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
struct Label {
    incident_id: String,
    class: String,
    identity: String,
    event_ids: Vec<String>,
}

// TODO(simulate): replace with `crate::simulate::generate` once the simulator lands on main.
fn fleet() -> anyhow::Result<Fleet> {
    Ok(serde_json::from_str(include_str!("../tests/fixtures/kafka_demo_fleet.json"))?)
}

struct Topics {
    access: String,
    grants: String,
    alerts: String,
    dlq: String,
}

impl Topics {
    fn all(&self) -> [&str; 4] {
        [&self.access, &self.grants, &self.alerts, &self.dlq]
    }
}

pub fn command(args: &DemoArgs) -> anyhow::Result<()> {
    // The alerts go to stdout; the service's own log stays quiet unless RUST_LOG asks.
    crate::telemetry::init_logging(crate::config::LogFormat::Human, "warn");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Fresh topic names, so a demo against a real cluster never reads an earlier run's alerts.
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let name = |what: &str| format!("overreach-demo-{run_id}-{what}");
    let topics = Topics { access: name("access"), grants: name("grants"), alerts: name("alerts"), dlq: name("dlq") };
    // The mock cluster lives until the demo returns.
    let mock;
    let brokers = match &args.brokers {
        Some(brokers) => {
            create_topics(brokers, &topics).await?;
            brokers.clone()
        }
        None => {
            mock = MockCluster::new(1).context("cannot start the embedded Kafka mock cluster")?;
            for topic in topics.all() {
                mock.create_topic(topic, PARTITIONS, 1).with_context(|| format!("cannot create topic {topic}"))?;
            }
            mock.bootstrap_servers()
        }
    };
    println!("overreach demo: Kafka at {brokers}, topics {}, {}, {}", topics.access, topics.grants, topics.alerts);

    let fleet = fleet()?;
    let config = service_config(&brokers, &topics)?;
    let telemetry = Arc::new(Telemetry::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (expect, expected) = tokio::sync::watch::channel(None);
    let printer = tokio::spawn(print_alerts(brokers.clone(), topics.alerts.clone(), expected));

    let service = service::run(&config, Arc::clone(&telemetry), async {
        let _ = stopped.await;
    });
    let feed = async {
        let fed = feed(&brokers, &topics, &fleet, &telemetry).await;
        let _ = stop.send(());
        fed
    };
    let (summary, fed) = tokio::join!(service, feed);
    let summary: RunSummary = summary?;
    fed?;

    // The service has stopped, so every alert it delivered is on the topic: read up to that count.
    expect.send_replace(Some(summary.alerts));
    let alerts = tokio::time::timeout(WAIT_LIMIT, printer).await.context("alerts did not arrive in time")???;
    print_summary(&fleet, &summary, &alerts, started.elapsed());
    Ok(())
}

async fn create_topics(brokers: &str, topics: &Topics) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("cannot create the admin client")?;
    let new: Vec<NewTopic> =
        topics.all().iter().map(|n| NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Timeout::After(Duration::from_secs(10))));
    for result in admin.create_topics(&new, &options).await.context("cannot create the demo topics")? {
        if let Err((topic, code)) = result {
            anyhow::bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

fn service_config(brokers: &str, topics: &Topics) -> anyhow::Result<ServiceConfig> {
    let mut config: ServiceConfig = toml::from_str(&format!(
        "brokers = {brokers:?}\ninput_topics = [{:?}]\ngrants_topic = {:?}\nalert_topic = {:?}\n\
         dlq_topic = {:?}\ngroup = \"overreach-demo\"\nhttp_addr = \"127.0.0.1:0\"\n",
        topics.access, topics.grants, topics.alerts, topics.dlq
    ))?;
    // Short fetch waits and statistics: a demo is about seeing alerts promptly.
    config.kafka_consumer.insert("fetch.wait.max.ms".into(), "10".into());
    config.kafka_producer.insert("linger.ms".into(), "5".into());
    Ok(config)
}

/// Produces the fleet in event-time order. Access and grant events go to different topics,
/// which the service reads in arrival order; so at each grant event the feed first waits
/// until the service has read everything produced before it, then until it read the grant.
async fn feed(brokers: &str, topics: &Topics, fleet: &Fleet, telemetry: &Telemetry) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .context("cannot create the demo producer")?;
    let time = |v: &Value| v.get("time").and_then(crate::time::parse_json_time).unwrap_or(i64::MIN);
    let mut grants = fleet.grants.iter().peekable();
    let (mut produced, mut produced_grants) = (0u64, 0u64);
    for event in &fleet.events {
        while let Some(grant) = grants.next_if(|g| time(g) <= time(event)) {
            wait_consumed(telemetry, &topics.access, produced).await?;
            send(&producer, &topics.grants, grant).await?;
            produced_grants += 1;
            wait_consumed(telemetry, &topics.grants, produced_grants).await?;
        }
        send(&producer, &topics.access, event).await?;
        produced += 1;
    }
    for grant in grants {
        send(&producer, &topics.grants, grant).await?;
        produced_grants += 1;
    }
    wait_consumed(telemetry, &topics.access, produced).await?;
    wait_consumed(telemetry, &topics.grants, produced_grants).await
}

async fn send(producer: &FutureProducer, topic: &str, value: &Value) -> anyhow::Result<()> {
    let key = value.get("identity").and_then(Value::as_str).unwrap_or_default();
    let payload = value.to_string();
    producer
        .send(FutureRecord::to(topic).key(key).payload(&payload), Timeout::After(Duration::from_secs(10)))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("cannot produce to {topic}: {e}"))?;
    Ok(())
}

async fn wait_consumed(telemetry: &Telemetry, topic: &str, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_LIMIT;
    while telemetry.metrics.records_consumed.with_label_values(&[topic]).get() < count {
        anyhow::ensure!(Instant::now() < deadline, "the service did not read {count} records from {topic} in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// An alert as the demo shows it.
#[derive(Debug, Deserialize)]
struct Shown {
    detector: String,
    severity: String,
    time: String,
    identity: String,
    summary: String,
    event_ids: Vec<String>,
}

/// Reads the alert topic from the start and prints each alert as it arrives, until it has
/// seen as many as `expected` says the service delivered (known once the service stopped).
async fn print_alerts(
    brokers: String,
    topic: String,
    mut expected: tokio::sync::watch::Receiver<Option<u64>>,
) -> anyhow::Result<Vec<Shown>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut seen = Vec::new();
    while expected.borrow().is_none_or(|n| (seen.len() as u64) < n) {
        tokio::select! {
            message = consumer.recv() => {
                let message = message?;
                let Some(alert) = message.payload().and_then(|p| serde_json::from_slice::<Shown>(p).ok()) else {
                    continue;
                };
                println!("{}  {:<8}  {:<20}  {}", alert.time, alert.severity.to_uppercase(), alert.detector,
                    alert.identity);
                println!("    {}", alert.summary);
                seen.push(alert);
            }
            changed = expected.changed() => changed?,
        }
    }
    Ok(seen)
}

fn print_summary(fleet: &Fleet, run: &RunSummary, alerts: &[Shown], elapsed: Duration) {
    let mut by_detector: BTreeMap<&str, u64> = BTreeMap::new();
    for a in alerts {
        *by_detector.entry(&a.detector).or_default() += 1;
    }
    let alerted: BTreeSet<(&str, &str)> =
        alerts.iter().flat_map(|a| a.event_ids.iter().map(move |id| (a.identity.as_str(), id.as_str()))).collect();
    println!();
    println!(
        "Summary: {} access events and {} grant events through Kafka in {:.1} s; {} records read, {} rejected.",
        fleet.events.len(),
        fleet.grants.len(),
        elapsed.as_secs_f64(),
        run.records,
        run.rejected
    );
    println!("Alerts: {}", alerts.len());
    for (detector, n) in &by_detector {
        println!("  {detector:<22} {n}");
    }
    let caught = fleet.labels.iter().filter(|l| l.event_ids.iter().any(|id| alerted.contains(&(&l.identity, id))));
    let caught: Vec<&Label> = caught.collect();
    println!("Incidents caught: {} of {} injected", caught.len(), fleet.labels.len());
    for label in &fleet.labels {
        let mark = if caught.iter().any(|c| c.incident_id == label.incident_id) { "caught" } else { "missed" };
        println!("  {:<8} {:<12} {:<22} {}", mark, label.incident_id, label.class, label.identity);
    }
}
