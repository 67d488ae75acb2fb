//! `overreach demo`: a simulated fleet streamed through the real Kafka service.
//!
//! Starts librdkafka's in-process mock cluster (or uses `--brokers`), creates the topics,
//! runs [`crate::service::run`] — the same code as `overreach run` — and, beside it, produces
//! the grant and access events of a fleet from [`crate::simulate::generate`] and prints each
//! alert as it arrives on the alert topic. Ends with a summary: events, alerts by detector,
//! and the injected incidents caught per class, scored as `overreach backtest` scores them.

use crate::alert::{Alert, IncidentStatus, Severity};
use crate::backtest::score::{self, Hit, LabelIndex, Truth};
use crate::config::ServiceConfig;
use crate::detect::Detector;
use crate::model::Millis;
use crate::service::{self, RunSummary};
use crate::simulate::{self, Label, SimConfig, Simulation};
use crate::telemetry::Telemetry;
use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Use this Kafka cluster instead of the embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Identities in the simulated fleet.
    #[arg(long, default_value_t = 60, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub identities: usize,
    /// Days of activity to simulate (incidents need at least 9: eight days of history first).
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Seed of the simulation: the same seed gives the same fleet.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Partitions of each demo topic.
pub const PARTITIONS: i32 = 3;
/// The demo must end by itself; each wait gives up after this.
const WAIT_LIMIT: Duration = Duration::from_secs(40);
/// Access events produced but not yet acknowledged before the feed waits for the broker.
const MAX_PENDING: usize = 10_000;

/// The demo's topics; the triage page test streams a fleet through them too.
pub struct Topics {
    pub access: String,
    pub grants: String,
    pub alerts: String,
    pub dlq: String,
    /// The service's own topics: partition state and fleet facts (see docs/service.md).
    pub state: String,
    pub fleet: String,
}

impl Topics {
    /// `{prefix}-access`, `{prefix}-grants` ...
    pub fn under(prefix: &str) -> Topics {
        let name = |what: &str| format!("{prefix}-{what}");
        Topics {
            access: name("access"),
            grants: name("grants"),
            alerts: name("alerts"),
            dlq: name("dlq"),
            state: name("state"),
            fleet: name("fleet"),
        }
    }

    pub fn all(&self) -> [&str; 6] {
        [&self.access, &self.grants, &self.alerts, &self.dlq, &self.state, &self.fleet]
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
    let sim = simulate::generate(&SimConfig {
        identities: args.identities,
        days: args.days,
        seed: args.seed,
        ..SimConfig::default()
    });
    println!(
        "overreach demo: a simulated fleet of {} identities over {} days (seed {}): {} access events, \
         {} grant and lifecycle events, {} injected incidents.",
        args.identities,
        args.days,
        args.seed,
        sim.events.len(),
        sim.grants.len(),
        sim.labels.len()
    );
    // Fresh topic names, so a demo against a real cluster never reads an earlier run's alerts.
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let topics = Topics::under(&format!("overreach-demo-{run_id}"));
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
    println!("Kafka at {brokers}, topics {}, {}, {}.", topics.access, topics.grants, topics.alerts);
    println!(
        "Alerts as they arrive: in order per identity, interleaved across partitions; each detector's \
         recommended action under its first high or critical alert.\n"
    );

    let sim = Arc::new(sim);
    let config = service_config(&brokers, &topics)?;
    let telemetry = Arc::new(Telemetry::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (expect, expected) = tokio::sync::watch::channel(None);
    let printer = tokio::spawn(print_alerts(brokers.clone(), topics.alerts.clone(), Arc::clone(&sim), expected));

    let service = service::run(&config, Arc::clone(&telemetry), async {
        let _ = stopped.await;
    });
    let feed = async {
        let fed = feed(&brokers, &topics, &sim, &telemetry).await;
        let _ = stop.send(());
        fed
    };
    let (summary, fed) = tokio::join!(service, feed);
    let summary: RunSummary = summary?;
    fed?;

    // The service has stopped, so every alert it delivered is on the topic: read up to that count.
    expect.send_replace(Some(summary.alerts));
    let hits = tokio::time::timeout(WAIT_LIMIT, printer).await.context("alerts did not arrive in time")???;
    print_summary(&sim, &summary, &hits, started.elapsed());
    Ok(())
}

async fn create_topics(brokers: &str, topics: &Topics) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("cannot create the admin client")?;
    let compacted = [topics.state.as_str(), topics.fleet.as_str()];
    let new: Vec<NewTopic> = topics
        .all()
        .iter()
        .map(|n| {
            let topic = NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1));
            if compacted.contains(n) {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Timeout::After(Duration::from_secs(10))));
    for result in admin.create_topics(&new, &options).await.context("cannot create the demo topics")? {
        if let Err((topic, code)) = result {
            anyhow::bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

/// The service as the demo runs it: HTTP on a free loopback port, short fetch waits.
pub fn service_config(brokers: &str, topics: &Topics) -> anyhow::Result<ServiceConfig> {
    let mut config: ServiceConfig = toml::from_str(&format!(
        "brokers = {brokers:?}\ninput_topics = [{:?}]\ngrants_topic = {:?}\nalert_topic = {:?}\n\
         dlq_topic = {:?}\ngroup = \"overreach-demo\"\nhttp_addr = \"127.0.0.1:0\"\n",
        topics.access, topics.grants, topics.alerts, topics.dlq
    ))?;
    // Short fetch waits and statistics: a demo is about seeing alerts promptly.
    config.kafka_consumer.insert("fetch.wait.max.ms".into(), "10".into());
    (config.state_topic, config.fleet_topic) = (Some(topics.state.clone()), Some(topics.fleet.clone()));
    config.kafka_producer.insert("linger.ms".into(), "5".into());
    Ok(config)
}

/// Produces the fleet in event-time order. Access and grant events go to different topics,
/// which the service reads in arrival order; so before each grant event the feed waits until
/// the service has read every access event produced before it, then until it has read the
/// grant. Access events of the same millisecond as a grant go first, as in `replay`'s merge.
pub async fn feed(brokers: &str, topics: &Topics, sim: &Simulation, telemetry: &Telemetry) -> anyhow::Result<()> {
    let mut sender = Sender::new(brokers)?;
    let grant_time = |g: &Value| g.get("time").and_then(crate::time::parse_json_time).unwrap_or(Millis::MIN);
    let mut grants = sim.grants.iter().peekable();
    let (mut produced, mut produced_grants) = (0u64, 0u64);
    for event in &sim.events {
        while let Some(grant) = grants.next_if(|g| grant_time(g) < event.time) {
            sender.acknowledged().await?;
            wait_consumed(telemetry, &topics.access, produced).await?;
            sender.send(&topics.grants, grant_key(grant), &grant.to_string()).await?;
            produced_grants += 1;
            sender.acknowledged().await?;
            wait_consumed(telemetry, &topics.grants, produced_grants).await?;
        }
        sender.send(&topics.access, &event.identity, &serde_json::to_string(event)?).await?;
        produced += 1;
    }
    for grant in grants {
        sender.send(&topics.grants, grant_key(grant), &grant.to_string()).await?;
        produced_grants += 1;
    }
    sender.acknowledged().await?;
    wait_consumed(telemetry, &topics.access, produced).await?;
    wait_consumed(telemetry, &topics.grants, produced_grants).await
}

/// Grant events are keyed by the identity they concern; `grant_ended` and
/// `credential_revoked` name none.
fn grant_key(grant: &Value) -> &str {
    grant.get("identity").and_then(Value::as_str).unwrap_or_default()
}

/// The feed's producer: enqueues without waiting for each record, and waits for the broker's
/// acknowledgements only where the order across the two topics matters.
struct Sender {
    producer: FutureProducer,
    pending: Vec<DeliveryFuture>,
}

impl Sender {
    fn new(brokers: &str) -> anyhow::Result<Sender> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            // A retried request never overtakes a later one: each partition keeps event-time order.
            .set("enable.idempotence", "true")
            .create()
            .context("cannot create the demo producer")?;
        Ok(Sender { producer, pending: Vec::new() })
    }

    async fn send(&mut self, topic: &str, key: &str, payload: &str) -> anyhow::Result<()> {
        if self.pending.len() >= MAX_PENDING {
            self.acknowledged().await?;
        }
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let delivery =
            self.producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("cannot produce to {topic}: {e}"))?;
        self.pending.push(delivery);
        Ok(())
    }

    /// Waits until the broker has acknowledged everything sent so far.
    async fn acknowledged(&mut self) -> anyhow::Result<()> {
        for delivery in std::mem::take(&mut self.pending) {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, message))) => anyhow::bail!("cannot produce to {}: {e}", message.topic()),
                Err(_) => anyhow::bail!("the demo producer was dropped before a delivery finished"),
            }
        }
        Ok(())
    }
}

async fn wait_consumed(telemetry: &Telemetry, topic: &str, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_LIMIT;
    while telemetry.metrics.records_consumed.with_label_values(&[topic]).get() < count {
        anyhow::ensure!(Instant::now() < deadline, "the service did not read {count} records from {topic} in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Reads the alert topic from the start and prints each alert as it arrives, until it has
/// seen as many as `expected` says the service delivered (known once the service stopped).
/// Returns each alert as the scorer sees it: detector, event time, incidents it names.
async fn print_alerts(
    brokers: String,
    topic: String,
    sim: Arc<Simulation>,
    mut expected: tokio::sync::watch::Receiver<Option<u64>>,
) -> anyhow::Result<Vec<Hit>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let index = LabelIndex::new(&sim.labels);
    let mut actions_shown = BTreeSet::new();
    let mut hits = Vec::new();
    while expected.borrow().is_none_or(|n| (hits.len() as u64) < n) {
        tokio::select! {
            message = consumer.recv() => {
                let message = message?;
                let place = || format!("{}/{}/{}", message.topic(), message.partition(), message.offset());
                let alert: Alert = serde_json::from_slice(message.payload().unwrap_or_default())
                    .with_context(|| format!("{}: expected an alert.v1 JSON object", place()))?;
                let time = crate::time::parse_rfc3339(&alert.time)
                    .with_context(|| format!("{}: expected an RFC 3339 time, found {:?}", place(), alert.time))?;
                let incidents = index.incidents_of(&alert.event_ids);
                let labels: Vec<&Label> = incidents.iter().map(|&i| &sim.labels[i]).collect();
                print_alert(&alert, time, &labels, &mut actions_shown);
                hits.push(Hit { alert_id: alert.alert_id.clone(), detector: alert.detector.name().to_string(), time, incidents });
            }
            changed = expected.changed() => changed?,
        }
    }
    Ok(hits)
}

/// One line per alert: time, severity, detector, identity and the rest of the summary. Under
/// it, the injected incidents it names, and the detector's recommended action the first time
/// the detector fires at high or critical (the action is the same for every alert of it).
fn print_alert(alert: &Alert, time: Millis, incidents: &[&Label], actions_shown: &mut BTreeSet<Detector>) {
    let when = chrono::DateTime::from_timestamp_millis(time)
        .map_or_else(|| alert.time.clone(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    let severity = alert.severity.name().to_uppercase();
    // Summaries name the identity first; print it once. A later send of an
    // incident already printed says only what changed.
    let summary = match &alert.incident {
        Some(incident) if incident.status != IncidentStatus::Open => {
            let signals: Vec<&str> = incident.signals.iter().map(|s| s.detector.name()).collect();
            let status = if incident.status == IncidentStatus::Closed { "closed" } else { "updated" };
            format!(
                "{}: incident {status} (send {}): {} signal(s) ({}) in {} event(s) since {}, combined probability {:.2e}",
                alert.identity,
                incident.update + 1,
                signals.len(),
                signals.join(", "),
                incident.events,
                incident.started,
                incident.combined_probability
            )
        }
        _ if alert.summary.starts_with(alert.identity.as_str()) => alert.summary.clone(),
        _ => format!("{}: {}", alert.identity, alert.summary),
    };
    println!("{when}  {severity:<8}  {:<20}  {summary}", alert.detector.name());
    for label in incidents {
        println!("    ^ injected incident {} ({})", label.incident_id, label.class);
    }
    if alert.severity >= Severity::High && actions_shown.insert(alert.detector) {
        println!("    > {}", alert.recommended_action);
    }
}

fn print_summary(sim: &Simulation, run: &RunSummary, hits: &[Hit], elapsed: Duration) {
    let mut spans: BTreeMap<&str, (Millis, Millis)> = BTreeMap::new();
    for e in &sim.events {
        let span = spans.entry(&e.identity).or_insert((e.time, e.time));
        *span = (span.0.min(e.time), span.1.max(e.time));
    }
    let truths: Vec<Truth> = sim.labels.iter().map(Truth::from).collect();
    let scores = score::score(&truths, hits, score::identity_days(spans.into_values()));
    let overall = &scores.overall;
    println!();
    println!(
        "Summary: {} access events and {} grant and lifecycle events through Kafka; {} records read, {} rejected; \
         {:.1} s in all.",
        sim.events.len(),
        sim.grants.len(),
        run.records,
        run.rejected,
        elapsed.as_secs_f64()
    );
    println!("Alerts: {} ({} on injected incidents' events)", overall.alerts, overall.alerts - overall.false_alerts);
    for (detector, d) in &scores.detectors {
        println!("  {detector:<22} {:>6}  ({} on incidents)", d.alerts, d.alerts - d.false_alerts);
    }
    println!("Incidents caught: {} of {} injected", overall.caught, overall.incidents);
    for (class, c) in &scores.classes {
        let detected = match c.median_time_to_detect_s {
            Some(_) => format!("median time to detect {}", crate::backtest::duration(c.median_time_to_detect_s)),
            None => "missed".to_string(),
        };
        println!("  {:<30} {} of {}  {detected}", class.name(), c.caught, c.incidents);
    }
}
