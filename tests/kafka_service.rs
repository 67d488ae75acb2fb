//! `overreach run` against a real Kafka-protocol broker (tansu), and `overreach demo` on the
//! embedded mock cluster. Each test has its own broker, topics and group.
//!
//! Alerts come from the declared and lifecycle detectors, which fire from the first event:
//! an access after `identity_offboarded` → `post_purpose`; an access outside a grant's scope
//! → `scope_violation`.

#[path = "common/binary.rs"]
mod binary;
#[path = "common/schema.rs"]
mod schema;
#[path = "common/tansu.rs"]
mod tansu;

use binary::{write_config, Binary};
use overreach::alert::alert_id;
use overreach::config::ServiceConfig;
use overreach::detect::{self, Detector};
use overreach::service::{self, RunSummary};
use overreach::telemetry::Telemetry;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tansu::{free_port, Tansu};

const PARTITIONS: i32 = 3;

/// Topics and group of one test, unique per test.
struct Names {
    input: String,
    grants: String,
    alerts: String,
    dlq: String,
    group: String,
}

impl Names {
    fn new(test: &str) -> Names {
        let id = format!("{test}-{}", free_port());
        Names {
            input: format!("{id}-in"),
            grants: format!("{id}-grants"),
            alerts: format!("{id}-alerts"),
            dlq: format!("{id}-dlq"),
            group: format!("{id}-group"),
        }
    }
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap()
}

async fn create_topics(brokers: &str, names: &Names) {
    create(brokers, &[&names.input, &names.grants, &names.alerts, &names.dlq]).await;
}

async fn create(brokers: &str, names: &[&str]) {
    let topics: Vec<NewTopic> =
        names.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1))).collect();
    for result in admin(brokers).create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        result.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// The service's config for these tests. They pin delivery, offsets and rejects per
/// alert, so they alert per finding, whose ids they can name; incidents on this path
/// are tested on their own.
fn config(brokers: &str, names: &Names) -> ServiceConfig {
    let text = format!(
        "brokers = {brokers:?}\ninput_topics = [{:?}]\ngrants_topic = {:?}\nalert_topic = {:?}\ndlq_topic = {:?}\n\
         group = {:?}\nhttp_addr = \"127.0.0.1:{}\"\nsnapshot_interval_s = 1\n\
         [kafka_consumer]\n\"fetch.wait.max.ms\" = \"10\"\n\"statistics.interval.ms\" = \"500\"\n\
         \"session.timeout.ms\" = \"6000\"\n\"auto.commit.interval.ms\" = \"200\"\n[kafka_producer]\n\"linger.ms\" = \"1\"\n\
         [engine]\nalerts = \"findings\"\n",
        names.input,
        names.grants,
        names.alerts,
        names.dlq,
        names.group,
        free_port()
    );
    toml::from_str(&text).unwrap()
}

/// Produces `(key, payload)` records; returns, per partition, the end offset (last + 1).
async fn produce(brokers: &str, topic: &str, records: &[(String, Vec<u8>)]) -> BTreeMap<i32, i64> {
    produce_batched(brokers, topic, records, "10000", |_| None).await
}

/// Produces records in batches of at most `batch` messages, each to the partition
/// `partition_of` its key gives (by default the key's).
async fn produce_batched(
    brokers: &str,
    topic: &str,
    records: &[(String, Vec<u8>)],
    batch: &str,
    partition_of: impl Fn(&str) -> Option<i32>,
) -> BTreeMap<i32, i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "5")
        .set("batch.num.messages", batch)
        // In the order given: a send that finds the queue full waits and is enqueued after
        // later ones.
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let sends = records.iter().map(|(key, payload)| {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        record.partition = partition_of(key);
        producer.send(record, Timeout::After(Duration::from_secs(60)))
    });
    let mut ends = BTreeMap::new();
    for result in futures_util::future::join_all(sends).await {
        let delivery = result.unwrap_or_else(|(e, _)| panic!("test producer failed: {e}"));
        let end = ends.entry(delivery.partition).or_insert(0);
        *end = (*end).max(delivery.offset + 1);
    }
    ends
}

fn json_records(values: &[Value]) -> Vec<(String, Vec<u8>)> {
    values.iter().map(|v| (v["identity"].as_str().unwrap_or("none").to_string(), v.to_string().into_bytes())).collect()
}

/// Reads `topic` from the start until `enough` holds, then a little longer to catch extras.
async fn read_topic(brokers: &str, topic: &str, enough: impl Fn(&[OwnedMessage]) -> bool) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader-{}", free_port()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&consumer, topic) {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut satisfied_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > deadline || satisfied_at.is_some_and(|t| now > t + Duration::from_millis(500)) {
            return got;
        }
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
            got.push(m.detach());
        }
        if satisfied_at.is_none() && enough(&got) {
            satisfied_at = Some(Instant::now());
        }
    }
}

/// Every partition `topic` has: some tests create topics wider than `PARTITIONS`.
fn partitions(consumer: &impl Consumer, topic: &str) -> Vec<i32> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    metadata.topics()[0].partitions().iter().map(|p| p.id()).collect()
}

fn committed(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&consumer, topic) {
        tpl.add_partition(topic, p);
    }
    let offsets = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    offsets
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn alerts_of(messages: &[OwnedMessage]) -> Vec<Value> {
    messages.iter().map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap()).collect()
}

/// The ids of the alerts `overreach replay` with `args` gives for `file`.
fn replayed_alert_ids(args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["replay", "--quiet"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let alerts = String::from_utf8(out.stdout).unwrap();
    alerts
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["alert_id"].as_str().unwrap().to_string())
        .collect()
}

fn alert_ids(messages: &[OwnedMessage]) -> BTreeSet<String> {
    alerts_of(messages).iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect()
}

fn offboarded(identity: &str, time: &str) -> Value {
    json!({"kind": "identity_offboarded", "time": time, "identity": identity, "event_id": format!("off-{identity}")})
}

fn access(event_id: &str, identity: &str, time: &str, target: &str, action: &str) -> Value {
    json!({"event_id": event_id, "time": time, "identity": identity, "target": target, "action": action})
}

/// The service running in-process, with its telemetry at hand.
struct Running {
    telemetry: Arc<Telemetry>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<RunSummary>>,
}

/// A service on a fresh in-memory broker with its topics made, ready to read: `adjust` changes
/// the test's config before it starts.
async fn ready_service(label: &str, adjust: impl FnOnce(&mut ServiceConfig)) -> (Tansu, Names, Running) {
    let broker = Tansu::memory();
    let names = Names::new(label);
    create_topics(&broker.brokers(), &names).await;
    let mut config = config(&broker.brokers(), &names);
    adjust(&mut config);
    let service = Running::start(config);
    service.wait_ready().await;
    (broker, names, service)
}

impl Running {
    fn start(config: ServiceConfig) -> Running {
        let telemetry = Arc::new(Telemetry::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let t = Arc::clone(&telemetry);
        let task = tokio::spawn(async move {
            service::run(&config, t, async {
                let _ = stopped.await;
            })
            .await
        });
        Running { telemetry, stop, task }
    }

    fn processed(&self, topic: &str) -> u64 {
        self.telemetry.metrics.records_processed.with_label_values(&[topic]).get()
    }

    async fn wait_processed(&self, topic: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.processed(topic) < n {
            assert!(Instant::now() < deadline, "service judged {} of {n} records from {topic}", self.processed(topic));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(why) = self.telemetry.health.readiness() {
            assert!(Instant::now() < deadline, "service not ready: {why}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/readyz` would answer 503 with a reason containing `reason`.
    async fn wait_not_ready(&self, reason: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.telemetry.health.readiness() {
                Err(why) if why.contains(reason) => return why,
                state => assert!(Instant::now() < deadline, "readiness stayed {state:?}, expected `{reason}`"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks it to stop and waits for the end of the run.
    async fn finish(self) -> anyhow::Result<RunSummary> {
        let _ = self.stop.send(());
        Running::join(self.task).await
    }

    /// Waits for the run to end by itself (it fails to start, say), without asking it to stop.
    async fn ended(self) -> anyhow::Result<RunSummary> {
        let _keep_running = self.stop;
        Running::join(self.task).await
    }

    /// The guard only catches a hang; it measures nothing.
    async fn join(task: tokio::task::JoinHandle<anyhow::Result<RunSummary>>) -> anyhow::Result<RunSummary> {
        match tokio::time::timeout(Duration::from_secs(120), task).await {
            Ok(joined) => joined.unwrap(),
            Err(_) => panic!("the service did not stop"),
        }
    }

    async fn stop(self) -> RunSummary {
        let summary = self.finish().await.unwrap();
        summary.check().unwrap();
        summary
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_reach_the_alert_topic_and_a_clean_stop_commits_the_end_of_input() {
    let (broker, names, service) = ready_service("alerts", |_| {}).await;

    // A grant-topic fact first, read before the accesses it governs.
    produce(&broker.brokers(), &names.grants, &json_records(&[offboarded("agent-1", "2026-03-01T00:00:00Z")])).await;
    service.wait_processed(&names.grants, 1).await;
    let grant = json!({"kind": "grant", "time": "2026-03-01T00:00:00Z", "grant_id": "g-ci", "identity": "ci-1",
        "scope": {"targets": ["s3.amazonaws.com"], "actions": ["GetObject"]}});
    let mut input = vec![grant];
    for i in 0..50 {
        input.push(access(&format!("ok-{i}"), "ci-1", "2026-03-01T01:00:00Z", "s3.amazonaws.com", "GetObject"));
    }
    input.push(access("ev-late", "agent-1", "2026-03-01T02:00:00Z", "crm.internal", "ExportCustomers"));
    let mut out_of_scope = access("ev-scope", "ci-1", "2026-03-01T03:00:00Z", "iam.amazonaws.com", "CreateUser");
    out_of_scope["grant_id"] = json!("g-ci");
    input.push(out_of_scope);
    let ends = produce(&broker.brokers(), &names.input, &json_records(&input)).await;
    service.wait_processed(&names.input, input.len() as u64).await;
    let summary = service.stop().await;
    assert_eq!(summary.records, input.len() as u64 + 1);
    assert_eq!(summary.rejected, 0);

    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), ends, "committed offsets = end of input");

    let expected: BTreeSet<String> = [
        alert_id(detect::post_purpose::SPEC.detector(), "agent-1", "ev-late"),
        alert_id(detect::scope_violation::SPEC.detector(), "ci-1", "ev-scope"),
    ]
    .into();
    let messages = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&expected)).await;
    assert_eq!(alert_ids(&messages), expected, "exactly the declared/lifecycle alerts");
    for (m, alert) in messages.iter().zip(alerts_of(&messages)) {
        schema::assert_valid_alert(&alert);
        assert_eq!(m.key(), alert["identity"].as_str().map(str::as_bytes), "keyed by identity");
        assert_eq!(header(m, "detector").as_deref(), alert["detector"].as_str());
        assert_eq!(header(m, "severity").as_deref(), alert["severity"].as_str());
    }
    assert_eq!(summary.alerts, messages.len() as u64);
}

/// The shares other instances judge by (an identity that took up an operation or a credential)
/// reach the fleet topic ahead of the partition's checkpoint: another instance's rollout and
/// reuse judgements learn of them within a fraction of a second, not a checkpoint interval.
/// Checkpoints are an hour apart here, so a share on the fleet topic is that early publication.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_operation_and_credential_reach_the_fleet_topic_before_the_partitions_checkpoint() {
    let mut fleet_topic = String::new();
    let (broker, names, service) = ready_service("news", |config| {
        config.checkpoint_interval_s = 3600;
        fleet_topic = config.fleet_topic();
    })
    .await;

    let mut first = access("n-1", "ci-news", "2026-03-01T01:00:00Z", "s3.amazonaws.com", "GetObject");
    first["credential_id"] = json!("AKIANEWS00000001");
    let second = access("n-2", "ci-news", "2026-03-01T01:05:00Z", "sqs.amazonaws.com", "SendMessage");
    produce(&broker.brokers(), &names.input, &json_records(&[first, second])).await;
    service.wait_processed(&names.input, 2).await;

    let shares = |messages: &[OwnedMessage]| -> Vec<Value> {
        messages
            .iter()
            .filter(|m| m.key().is_some_and(|k| k.starts_with(b"share/") && k.ends_with(b"/ci-news")))
            .filter_map(|m| serde_json::from_slice::<Value>(m.payload()?).ok())
            .collect()
    };
    let ops = |share: &Value| share["share"]["ops"].as_array().map_or(0, Vec::len);
    let messages = read_topic(&broker.brokers(), &fleet_topic, |m| shares(m).iter().any(|s| ops(s) == 2)).await;
    let latest = shares(&messages).pop().expect("a share of ci-news on the fleet topic");
    assert_eq!(ops(&latest), 2, "both operations: {latest}");
    assert_eq!(latest["share"]["credentials"].as_array().map(Vec::len), Some(1), "{latest}");
    assert!(!latest.to_string().contains("AKIANEWS"), "the credential goes by its hash only: {latest}");
    assert_eq!(service.telemetry.metrics.checkpoints.get(), 0, "published before any checkpoint");
    assert!(service.telemetry.metrics.fleet_news.get() >= 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_go_to_the_dead_letter_topic_and_good_ones_around_them_are_processed() {
    let (broker, names, service) = ready_service("poison", |config| config.max_record_bytes = 64 * 1024).await;

    let good = |i: usize| {
        let v = access(&format!("late-{i}"), "agent-9", &format!("2026-03-01T0{i}:00:00Z"), "crm", "Export");
        v.to_string().into_bytes()
    };
    let huge = format!("{{\"identity\":\"agent-9\",\"pad\":\"{}\"}}", "x".repeat(100 * 1024)).into_bytes();
    let missing = br#"{"identity":"agent-9","time":"2026-03-01T05:00:00Z","target":"crm"}"#.to_vec();
    // All on one key, so one partition holds them in this order.
    let records: Vec<(String, Vec<u8>)> = [
        offboarded("agent-9", "2026-03-01T00:00:00Z").to_string().into_bytes(),
        good(1),
        b"this is not json".to_vec(),
        good(2),
        huge.clone(),
        good(3),
        missing.clone(),
        good(4),
    ]
    .into_iter()
    .map(|payload| ("agent-9".to_string(), payload))
    .collect();
    let ends = produce(&broker.brokers(), &names.input, &records).await;
    service.wait_processed(&names.input, records.len() as u64 - 3).await;
    let rejected =
        |reason: &str| service.telemetry.metrics.records_rejected.with_label_values(&[&names.input, reason]).get();
    assert_eq!((rejected("invalid_json"), rejected("line_too_long"), rejected("missing_field")), (1, 1, 1));
    let summary = service.stop().await;
    assert_eq!(summary.rejected, 3);
    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), ends, "the consumer moved past them");

    let dead = read_topic(&broker.brokers(), &names.dlq, |m| m.len() >= 3).await;
    let got: Vec<(String, Vec<u8>, String)> = dead
        .iter()
        .map(|m| {
            (
                header(m, "reason").unwrap(),
                m.payload().unwrap_or_default().to_vec(),
                header(m, "source_offset").unwrap(),
            )
        })
        .collect();
    let (partition, _) = ends.iter().next().unwrap();
    let expected = vec![
        ("invalid_json".to_string(), b"this is not json".to_vec(), "2".to_string()),
        ("line_too_long".to_string(), huge, "4".to_string()),
        ("missing_field".to_string(), missing, "6".to_string()),
    ];
    assert_eq!(got, expected, "original bytes, reason and source offset of each bad record");
    for m in &dead {
        assert_eq!(header(m, "source_topic").as_deref(), Some(names.input.as_str()));
        assert_eq!(header(m, "source_partition"), Some(partition.to_string()));
        assert!(header(m, "error").is_some_and(|e| !e.is_empty()));
    }

    // The good records around the poison were judged: each access after offboarding alerts.
    let expected: BTreeSet<String> =
        (1..=4).map(|i| alert_id(detect::post_purpose::SPEC.detector(), "agent-9", &format!("late-{i}"))).collect();
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| !alert_ids(m).is_empty()).await;
    let ids = alert_ids(&alerts);
    assert!(!ids.is_empty() && ids.is_subset(&expected), "alerts {ids:?} not from the good records {expected:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hard_kill_mid_stream_and_restart_loses_no_alert_and_restores_baselines() {
    let broker = Tansu::memory();
    let names = Names::new("kill");
    create_topics(&broker.brokers(), &names).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.brokers(), &names);
    config.state = Some(dir.path().join("state.snap"));
    let (config_file, http) = write_config(dir.path(), &config);
    let consumed = format!("overreach_records_consumed_total{{topic=\"{}\"}}", names.input);

    // Batch 1: the offboarding of 30 agents, which only the snapshot carries over a restart.
    const AGENTS: usize = 30;
    let batch1: Vec<Value> = (0..AGENTS).map(|i| offboarded(&format!("agent-{i}"), "2026-03-01T00:00:00Z")).collect();
    let batch1_ends = produce(&broker.brokers(), &names.input, &json_records(&batch1)).await;
    let first = Binary::start(&config_file, &http);
    first.wait_metric(&consumed, AGENTS as f64);
    first.wait_metric("overreach_state_snapshot_size_bytes", 1.0);

    // Batch 2: many ordinary events with one late access per agent spread among them.
    let mut batch2 = Vec::new();
    for i in 0..60_000 {
        if i % 2_000 == 0 && i / 2_000 < AGENTS {
            let agent = format!("agent-{}", i / 2_000);
            batch2.push(access(&format!("late-{agent}"), &agent, "2026-03-01T02:00:00Z", "crm", "Export"));
        }
        batch2.push(access(&format!("n-{i}"), &format!("svc-{}", i % 50), "2026-03-01T01:00:00Z", "s3", "GetObject"));
    }
    let records = json_records(&batch2);
    let (head, tail) = records.split_at(records.len() / 2);
    let mut ends = produce(&broker.brokers(), &names.input, head).await;
    first.wait_metric(&consumed, (AGENTS + 1_000) as f64);
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL: no flush, no commit, no final snapshot
    first.child.wait().unwrap();
    merge_ends(&mut ends, produce(&broker.brokers(), &names.input, tail).await);
    merge_ends(&mut ends, batch1_ends);

    let second = Binary::start(&config_file, &http);
    wait_committed(&broker.brokers(), &names.group, &names.input, &ends).await;
    // Resumed from the snapshot, not from the start: batch 1 was not read again.
    assert!(second.metric(&consumed) < (AGENTS + batch2.len()) as f64);
    let status = second.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), ends);

    let expected: BTreeSet<String> = (0..AGENTS)
        .map(|i| alert_id(detect::post_purpose::SPEC.detector(), &format!("agent-{i}"), &format!("late-agent-{i}")))
        .collect();
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&expected)).await;
    assert_eq!(alert_ids(&alerts), expected, "every alert delivered, none invented");
    // Duplicates are allowed only as repeats of the same alert_id, with the same content.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for alert in alerts_of(&alerts) {
        schema::assert_valid_alert(&alert);
        let first_seen = by_id.entry(alert["alert_id"].as_str().unwrap().to_string()).or_insert(alert.clone());
        assert_eq!(first_seen["event_ids"], alert["event_ids"]);
    }
}

fn merge_ends(into: &mut BTreeMap<i32, i64>, more: BTreeMap<i32, i64>) {
    for (p, end) in more {
        let e = into.entry(p).or_insert(end);
        *e = (*e).max(end);
    }
}

async fn wait_committed(brokers: &str, group: &str, topic: &str, ends: &BTreeMap<i32, i64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = committed(brokers, group, topic);
        if &now == ends {
            return;
        }
        assert!(Instant::now() < deadline, "committed {now:?}, input ends at {ends:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_stopped_and_restarted_mid_stream_the_service_recovers_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::sqlite(&dir.path().join("tansu.db"));
    let names = Names::new("outage");
    create_topics(&broker.brokers(), &names).await;
    let service = Running::start(config(&broker.brokers(), &names));
    service.wait_ready().await;

    const AGENTS: usize = 10;
    let late = |i: usize| access(&format!("late-{i}"), &format!("agent-{i}"), "2026-03-01T02:00:00Z", "crm", "Export");
    let noise = |i: usize| access(&format!("n-{i}"), &format!("svc-{}", i % 20), "2026-03-01T01:00:00Z", "s3", "Get");
    let mut batch1: Vec<Value> =
        (0..AGENTS).map(|i| offboarded(&format!("agent-{i}"), "2026-03-01T00:00:00Z")).collect();
    batch1.extend((0..1_000).map(noise));
    batch1.extend((0..AGENTS / 2).map(late));
    let mut ends = produce(&broker.brokers(), &names.input, &json_records(&batch1)).await;
    service.wait_processed(&names.input, batch1.len() as u64).await;

    broker.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.telemetry.health.readiness().is_ok() {
        assert!(Instant::now() < deadline, "/readyz still ready with the broker down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!service.task.is_finished(), "the service must wait out the outage, not exit");

    broker.restart();
    let mut batch2: Vec<Value> = (1_000..2_000).map(noise).collect();
    batch2.extend((AGENTS / 2..AGENTS).map(late));
    merge_ends(&mut ends, produce(&broker.brokers(), &names.input, &json_records(&batch2)).await);
    service.wait_processed(&names.input, (batch1.len() + batch2.len()) as u64).await;
    service.wait_ready().await;
    service.stop().await;
    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), ends);

    let expected: BTreeSet<String> = (0..AGENTS)
        .map(|i| alert_id(detect::post_purpose::SPEC.detector(), &format!("agent-{i}"), &format!("late-{i}")))
        .collect();
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&expected)).await;
    assert_eq!(alert_ids(&alerts), expected);
}

/// What identifies one send of an incident: its id, status and update number.
fn incident_sends(alerts: &[Value]) -> Vec<(String, String, u64)> {
    alerts
        .iter()
        .filter_map(|a| {
            let incident = a.get("incident")?;
            Some((
                a["alert_id"].as_str()?.to_string(),
                incident["status"].as_str()?.to_string(),
                incident["update"].as_u64()?,
            ))
        })
        .collect()
}

/// In incidents mode (the default) an offboarded identity that keeps acting for seven hours
/// is one incident on the alert topic: opened, updated under the same id after the update
/// interval, and closed once six hours of event time pass without evidence, as `replay`
/// tells it from the same records.
#[tokio::test(flavor = "multi_thread")]
async fn an_ongoing_incident_is_opened_updated_and_closed_under_one_id_as_replay_tells_it() {
    let (broker, names, service) =
        ready_service("incident", |config| config.engine.alerts = overreach::engine::AlertMode::Incidents).await;

    let mut input = vec![offboarded("agent-1", "2026-03-01T00:00:00Z")];
    for i in 0..15 {
        let time = format!("2026-03-01T{:02}:{:02}:00Z", 2 + i / 2, 30 * (i % 2));
        input.push(access(&format!("a-{i}"), "agent-1", &time, "crm.internal", "ExportCustomers"));
    }
    let mut ends = produce(&broker.brokers(), &names.input, &json_records(&input)).await;
    service.wait_processed(&names.input, input.len() as u64).await;
    // Another identity, hours later: event time passes, the quiet incident closes. Sent once
    // the rest is consumed, since partitions are read side by side, not in event time.
    let later = access("later", "svc-2", "2026-03-01T18:00:00Z", "s3.amazonaws.com", "GetObject");
    merge_ends(&mut ends, produce(&broker.brokers(), &names.input, &json_records(std::slice::from_ref(&later))).await);
    input.push(later);
    service.wait_processed(&names.input, input.len() as u64).await;
    service.stop().await;
    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), ends);

    let id = overreach::alert::incident_id("agent-1", "a-0");
    let expected: Vec<(String, String, u64)> =
        [("open", 0), ("updated", 1), ("closed", 2)].iter().map(|(s, u)| (id.clone(), s.to_string(), *u)).collect();
    let messages = read_topic(&broker.brokers(), &names.alerts, |m| incident_sends(&alerts_of(m)).len() >= 3).await;
    let alerts = alerts_of(&messages);
    for alert in &alerts {
        schema::assert_valid_alert(alert);
    }
    assert_eq!(incident_sends(&alerts), expected, "one id, three sends, in order");
    let last = &alerts[alerts.len() - 1]["incident"];
    assert_eq!(last["events"], 15, "every access after the offboarding is evidence");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.jsonl");
    std::fs::write(&file, input.iter().map(|v| format!("{v}\n")).collect::<String>()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_overreach")).arg("replay").arg("--quiet").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(incident_sends(&replayed), expected, "replay tells the same incident");
}

/// A count printed after `prefix` at the start of a line of the demo's output.
fn demo_count(stdout: &str, prefix: &str) -> u64 {
    let line =
        stdout.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no `{prefix}` in:\n{stdout}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{prefix}{line}`"))
}

/// `caught of injected` from a per-class line of the demo's summary (`  <class>  1 of 2  ...`).
fn demo_class_counts(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let of = words.iter().position(|w| *w == "of").unwrap_or_else(|| panic!("no `of` in `{line}`"));
    (words[of - 1].parse().unwrap(), words[of + 1].parse().unwrap())
}

#[test]
fn demo_runs_on_the_embedded_broker_and_catches_incidents() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_overreach")).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(60), "the demo must finish within a minute");

    // Every alert the service delivered is printed, one line each: time, severity, detector, summary.
    let severities = ["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"];
    let printed = stdout
        .lines()
        .filter(|l| l.starts_with("20") && l.split_whitespace().nth(2).is_some_and(|s| severities.contains(&s)))
        .count() as u64;
    let alerts = demo_count(&stdout, "Alerts: ");
    assert!(alerts > 0 && printed == alerts, "{printed} alert lines printed, summary says {alerts}:\n{stdout}");

    // The summary: alerts by detector add up, and incidents per class add up to caught of injected.
    let (summary, _) = stdout.split_once("\nSummary: ").unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let tail = &stdout[summary.len()..];
    let section = |header: &str| -> Vec<&str> {
        let from = tail.find(header).unwrap_or_else(|| panic!("no `{header}` in:\n{tail}"));
        tail[from..].lines().skip(1).take_while(|l| l.starts_with("  ")).collect()
    };
    let by_detector: u64 = section("Alerts: ")
        .iter()
        .map(|l| {
            let name = l.split_whitespace().next().unwrap();
            assert!(name.parse::<Detector>().is_ok(), "not a detector: `{l}`");
            l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(by_detector, alerts, "alerts by detector do not add up:\n{tail}");
    let header = tail.lines().find_map(|l| l.strip_prefix("Incidents caught: "));
    let (caught, injected) = demo_class_counts(header.unwrap_or_else(|| panic!("no incidents in:\n{tail}")));
    let classes = section("Incidents caught: ");
    assert!(!classes.is_empty(), "no incident classes in:\n{tail}");
    let (class_caught, class_injected) =
        classes.iter().map(|l| demo_class_counts(l)).fold((0, 0), |(c, i), (cc, ci)| (c + cc, i + ci));
    assert_eq!((class_caught, class_injected), (caught, injected), "classes do not add up:\n{tail}");
    assert!(injected > 0 && caught > 0, "caught {caught} of {injected}:\n{stdout}");
}

/// Sends `signal` (e.g. `-STOP`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
}

/// The producer's `message.max.bytes` in the oversized-alert test: above an ordinary alert
/// (972 bytes of JSON here, about 1.1 KB with key and headers), below an alert echoing five
/// huge fields even when each is cut to 256 bytes (over 2.1 KB).
const SMALL_MESSAGE_MAX_BYTES: &str = "2000";

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_the_producer_refuses_is_noted_on_the_dead_letter_topic_and_the_partition_moves_on() {
    let (broker, names, service) = ready_service("refused", |config| {
        config.kafka_producer.insert("message.max.bytes".into(), SMALL_MESSAGE_MAX_BYTES.into());
    })
    .await;

    let late = |i: usize| access(&format!("late-{i}"), "agent-7", &format!("2026-03-01T0{i}:00:00Z"), "crm", "Export");
    let big_field = || "r".repeat(120 * 1024);
    let mut huge = late(2);
    for field in ["resource", "user_agent", "session_id", "environment", "on_behalf_of"] {
        huge[field] = json!(big_field());
    }
    // All on one key, so one partition holds them in this order.
    let records: Vec<(String, Vec<u8>)> =
        [offboarded("agent-7", "2026-03-01T00:00:00Z"), late(1), huge, late(3), late(4)]
            .iter()
            .map(|v| ("agent-7".to_string(), v.to_string().into_bytes()))
            .collect();
    let ends = produce(&broker.brokers(), &names.input, &records).await;
    service.wait_processed(&names.input, records.len() as u64).await;
    wait_committed(&broker.brokers(), &names.group, &names.input, &ends).await;
    let dropped = service.telemetry.metrics.alerts_dropped.with_label_values(&["message_too_large"]).get();
    assert_eq!(dropped, 1);
    let summary = service.stop().await;
    assert_eq!(summary.alerts, 3, "the alerts before and after the refused one were delivered");

    let refused_id = alert_id(detect::post_purpose::SPEC.detector(), "agent-7", "late-2");
    let notes = read_topic(&broker.brokers(), &names.dlq, |m| !m.is_empty()).await;
    assert_eq!(notes.len(), 1, "one note on the dead-letter topic");
    let note = &notes[0];
    assert_eq!(header(note, "alert_id"), Some(refused_id.clone()));
    assert_eq!(header(note, "reason").as_deref(), Some("message_too_large"));
    assert_eq!(header(note, "detector").as_deref(), Some("post_purpose"));
    assert_eq!(header(note, "source_topic"), Some(names.input.clone()));
    assert_eq!(header(note, "source_offset").as_deref(), Some("2"));
    let (partition, _) = ends.iter().next().unwrap();
    assert_eq!(header(note, "source_partition"), Some(partition.to_string()));
    assert!(header(note, "alert_bytes").unwrap().parse::<usize>().unwrap() > 2000);

    let expected: BTreeSet<String> = [1, 3, 4]
        .iter()
        .map(|i| alert_id(detect::post_purpose::SPEC.detector(), "agent-7", &format!("late-{i}")))
        .collect();
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&expected)).await;
    assert_eq!(alert_ids(&alerts), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_output_topic_stops_the_start_with_an_error_naming_it() {
    let broker = Tansu::memory();
    let names = Names::new("missing");
    create(&broker.brokers(), &[&names.input, &names.grants, &names.dlq]).await;
    let service = Running::start(config(&broker.brokers(), &names));
    let err = format!("{:#}", service.ended().await.expect_err("started without its alert topic"));
    assert!(err.contains(&format!("alert topic `{}`", names.alerts)) && err.contains("create it"), "{err}");

    let names = Names::new("missing-dlq");
    create(&broker.brokers(), &[&names.input, &names.grants, &names.alerts]).await;
    let service = Running::start(config(&broker.brokers(), &names));
    let err = format!("{:#}", service.ended().await.expect_err("started without its dead-letter topic"));
    assert!(err.contains(&format!("dead-letter topic `{}`", names.dlq)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_alert_topic_turns_readiness_off_and_shutdown_keeps_what_was_not_acknowledged() {
    let broker = Tansu::memory();
    let names = Names::new("deleted");
    create_topics(&broker.brokers(), &names).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.snap");
    let mut config = config(&broker.brokers(), &names);
    config.state = Some(state.clone());
    config.shutdown_timeout_s = 2;
    // tansu accepts writes to a deleted topic (Kafka refuses them); with no propagation delay
    // librdkafka fails them itself once metadata says the topic is gone.
    config.kafka_producer.insert("topic.metadata.propagation.max.ms".into(), "0".into());
    let engine_config = config.engine.clone();
    let service = Running::start(config);
    service.wait_ready().await;

    let first =
        produce(&broker.brokers(), &names.input, &json_records(&[offboarded("agent-3", "2026-03-01T00:00:00Z")])).await;
    service.wait_processed(&names.input, 1).await;
    wait_committed(&broker.brokers(), &names.group, &names.input, &first).await;

    let deleted = admin(&broker.brokers()).delete_topics(&[&names.alerts], &AdminOptions::new()).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let why = service.wait_not_ready("output topics missing").await;
    assert!(why.contains(&names.alerts), "{why}");

    // An alert for the missing topic is held: retried, never acknowledged.
    let late = access("late-3", "agent-3", "2026-03-01T02:00:00Z", "crm", "Export");
    let ends = produce(&broker.brokers(), &names.input, &json_records(&[late])).await;
    service.wait_processed(&names.input, 2).await;
    let retried = || service.telemetry.metrics.delivery_errors.with_label_values(&[&names.alerts]).get();
    let deadline = Instant::now() + Duration::from_secs(30);
    while retried() < 2 {
        assert!(Instant::now() < deadline, "the held alert was not retried ({} failures)", retried());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = service.finish().await.unwrap();
    assert_eq!(summary.unacknowledged, 1);
    assert!(summary.final_snapshot_missing);
    assert!(summary.check().is_err(), "an unclean stop must show in the exit status");

    // Neither the commit nor the snapshot covers the held record: a restart reads it again.
    let (partition, &end) = ends.iter().next().unwrap();
    let committed = committed(&broker.brokers(), &names.group, &names.input);
    assert!(committed.get(partition).is_none_or(|&c| c < end), "committed {committed:?} past the held record");
    let (_, positions, _) = overreach::kafka::snapshot::read(&state, engine_config).unwrap().unwrap();
    let covered = positions.iter().find(|(tp, _)| tp.partition == *partition).map(|(_, &next)| next);
    assert!(covered.is_none_or(|next| next < end), "snapshot covers {covered:?}, the held record ends at {end}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_state_path_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let names = Names::new("unwritable");
    // No broker is needed: the check comes first.
    let mut config = config("127.0.0.1:1", &names);
    config.state = Some(not_a_dir.join("state.snap"));
    let err = format!("{:#}", Running::start(config).ended().await.expect_err("started with an unwritable state"));
    assert!(err.contains("file/state.snap") && err.contains("could not be saved"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_snapshot_turns_readiness_off_until_one_succeeds_and_a_failed_final_one_fails_the_exit() {
    let broker = Tansu::memory();
    let names = Names::new("snapfail");
    create_topics(&broker.brokers(), &names).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.brokers(), &names);
    config.state = Some(dir.path().join("state.snap"));
    let (config_file, http) = write_config(dir.path(), &config);
    let service = Binary::start(&config_file, &http);
    service.wait_readyz("200", "ready");
    service.wait_metric("overreach_state_snapshot_size_bytes", 1.0);

    // A directory where the writer's temporary file goes makes every snapshot fail, even for root.
    let blocker = dir.path().join("state.snap.tmp");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), "").unwrap();
    service.wait_readyz("503", "state snapshot failing");
    service.wait_metric("overreach_state_snapshot_failures_total", 2.0);
    // The age counts from the last success, not from the last attempt.
    service.wait_metric("overreach_state_snapshot_age_seconds", 2.0);

    std::fs::remove_dir_all(&blocker).unwrap();
    service.wait_readyz("200", "ready");

    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), "").unwrap();
    service.wait_readyz("503", "state snapshot failing");
    let status = service.terminate();
    assert!(!status.success(), "the final snapshot failed, yet the exit status is {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_broker_turns_readiness_off_and_back_on_when_it_answers_again() {
    let (broker, _, service) = ready_service("hung", |_| {}).await;

    signal(broker.pid(), "-STOP");
    let why = service.wait_not_ready("not answering").await;
    signal(broker.pid(), "-CONT");
    assert!(why.contains("brokers not answering"), "{why}");
    service.wait_ready().await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_a_record_reach_neither_the_log_nor_the_dead_letter_headers_raw() {
    let broker = Tansu::memory();
    let names = Names::new("inject");
    create_topics(&broker.brokers(), &names).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.brokers(), &names);
    let (config_file, http) = write_config(dir.path(), &config);
    let log = dir.path().join("service.log");
    let service = Binary::start_logged(&config_file, &http, "debug", &log);
    service.wait_readyz("200", "ready");

    let forged = "\x1b[2J\r\nFORGED 2026-03-01T00:00:00Z  INFO overreach: all clear";
    let mut bad_outcome = access("inj-1", "agent-1", "2026-03-01T01:00:00Z", "crm", "Export");
    bad_outcome["outcome"] = json!(forged);
    let bad_kind = json!({"kind": forged, "time": "2026-03-01T00:00:00Z", "identity": "agent-1"});
    produce(&broker.brokers(), &names.input, &json_records(&[bad_outcome])).await;
    produce(&broker.brokers(), &names.grants, &json_records(&[bad_kind])).await;
    let dead = read_topic(&broker.brokers(), &names.dlq, |m| m.len() >= 2).await;
    assert_eq!(dead.len(), 2);
    let status = service.terminate();
    assert!(status.success(), "{status:?}");

    for m in &dead {
        let error = header(m, "error").unwrap();
        assert!(error.contains("FORGED"), "the header names the bad value: {error}");
        for h in m.headers().unwrap().iter() {
            let value = h.value.unwrap_or_default();
            assert!(!value.iter().any(|b| b.is_ascii_control()), "raw control byte in header {}: {value:?}", h.key);
        }
    }
    let text = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("FORGED"), "the rejection is logged at debug:\n{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "raw ESC or CR in the log");
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "a record forged a log line");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suppression_rule_counts_its_findings_and_shows_them_marked_when_asked() {
    let broker = Tansu::memory();
    let names = Names::new("suppress");
    create_topics(&broker.brokers(), &names).await;
    let mut config = config(&broker.brokers(), &names);
    let rules = "[[suppress]]\nname = \"agent-1-wind-down\"\nreason = \"Finishes its queue after offboarding.\"\n\
                 identity = \"agent-1\"\ndetector = \"post_purpose\"\n";
    config.suppress = overreach::suppress::rules_from_toml(rules).unwrap();
    config.show_suppressed = true;
    let service = Running::start(config);
    service.wait_ready().await;

    let facts = [offboarded("agent-1", "2026-03-01T00:00:00Z"), offboarded("agent-2", "2026-03-01T00:00:00Z")];
    produce(&broker.brokers(), &names.grants, &json_records(&facts)).await;
    service.wait_processed(&names.grants, 2).await;
    let input = [
        access("ev-1", "agent-1", "2026-03-01T02:00:00Z", "crm.internal", "ExportCustomers"),
        access("ev-2", "agent-2", "2026-03-01T02:00:00Z", "crm.internal", "ExportCustomers"),
    ];
    produce(&broker.brokers(), &names.input, &json_records(&input)).await;
    service.wait_processed(&names.input, 2).await;
    let counted = service.telemetry.metrics.suppressed_by_rule.with_label_values(&["agent-1-wind-down"]).get();
    assert_eq!(counted, 1);
    assert!(service
        .telemetry
        .metrics
        .render()
        .contains("overreach_suppressed_by_rule_total{rule=\"agent-1-wind-down\"} 1"));
    service.stop().await;

    let messages = read_topic(&broker.brokers(), &names.alerts, |m| m.len() >= 2).await;
    let alerts = alerts_of(&messages);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for alert in &alerts {
        schema::assert_valid_alert(alert);
        assert_eq!(alert["detector"], "post_purpose");
        match alert["identity"].as_str() {
            Some("agent-1") => {
                assert_eq!(
                    (alert["status"].as_str(), alert["suppression_rule"].as_str()),
                    (Some("suppressed"), Some("agent-1-wind-down"))
                );
            }
            _ => assert!(alert.get("status").is_none() && alert.get("suppression_rule").is_none(), "{alert}"),
        }
    }
}

/// `GET path` on the service's HTTP port: (status line, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_endpoint_explains_a_consumed_identity_and_404s_an_unknown_one() {
    let mut addr = None;
    let (broker, names, service) = ready_service("explain", |config| addr = Some(config.http_addr)).await;
    let addr = addr.expect("the config names its HTTP address");

    let identity = "arn:aws:iam::1:role/ci-explain";
    let mut input: Vec<Value> = (1..=5)
        .map(|h| {
            access(&format!("s3-{h}"), identity, &format!("2026-03-01T0{h}:00:00Z"), "s3.amazonaws.com", "GetObject")
        })
        .collect();
    input.push(access("iam-1", identity, "2026-03-01T06:00:00Z", "iam.amazonaws.com", "ListRoles"));
    produce(&broker.brokers(), &names.input, &json_records(&input)).await;
    service.wait_processed(&names.input, input.len() as u64).await;

    let (status, body) = http_get(addr, "/identities/arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fci-explain").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/identity-explain.v1.schema.json")).expect("schema is JSON");
    let validator = jsonschema::draft202012::options().should_validate_formats(true).build(&schema).unwrap();
    assert!(validator.is_valid(&view), "{view}");
    assert_eq!(view["identity"], identity);
    assert_eq!(view["events"], input.len());
    assert_eq!(view["calls"]["total"], 2);
    assert_eq!(view["calls"]["top"][0]["value"], "s3.amazonaws.com GetObject");
    assert_eq!(view["calls"]["top"][0]["active_hours"], 5);
    assert_eq!(view["rhythm"]["hour_of_day"][3], 1);

    let (status, _) = http_get(addr, "/identities/arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fnobody").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_benign_verdict_on_the_feedback_topic_stops_the_repeat_and_an_unknown_one_is_dead_lettered() {
    let broker = Tansu::memory();
    let names = Names::new("feedback");
    create_topics(&broker.brokers(), &names).await;
    let feedback_topic = format!("{}-feedback", names.group);
    create(&broker.brokers(), &[&feedback_topic]).await;
    let mut config = config(&broker.brokers(), &names);
    config.feedback_topic = Some(feedback_topic.clone());
    let service = Running::start(config);
    service.wait_ready().await;

    let facts = [offboarded("agent-1", "2026-03-01T00:00:00Z"), offboarded("agent-2", "2026-03-01T00:00:00Z")];
    produce(&broker.brokers(), &names.grants, &json_records(&facts)).await;
    service.wait_processed(&names.grants, 2).await;
    let post = detect::post_purpose::SPEC.detector();
    let first = access("ev-1", "agent-1", "2026-03-01T02:00:00Z", "crm.internal", "ExportCustomers");
    produce(&broker.brokers(), &names.input, &json_records(&[first])).await;
    service.wait_processed(&names.input, 1).await;

    // The analyst judges the alert benign; a verdict naming no alert is rejected.
    let verdict = |alert_id: &str| json!({"time": "2026-03-01T02:30:00Z", "alert_id": alert_id, "verdict": "benign", "scope": "alert", "by": "ana"});
    let verdicts = [verdict(&alert_id(post, "agent-1", "ev-1")), verdict(&"f".repeat(32))];
    produce(&broker.brokers(), &feedback_topic, &json_records(&verdicts)).await;
    service.wait_processed(&feedback_topic, 2).await;

    // Hours later, past the suppression window: agent-1's repeat is quiet, agent-2 alerts.
    let later = [
        access("ev-2", "agent-1", "2026-03-01T05:00:00Z", "crm.internal", "ExportCustomers"),
        access("ev-3", "agent-2", "2026-03-01T05:00:00Z", "crm.internal", "ExportCustomers"),
    ];
    produce(&broker.brokers(), &names.input, &json_records(&later)).await;
    service.wait_processed(&names.input, 3).await;
    let summary = service.stop().await;
    assert_eq!(summary.rejected, 1, "the verdict for an unknown alert");

    let expected: BTreeSet<String> = [alert_id(post, "agent-1", "ev-1"), alert_id(post, "agent-2", "ev-3")].into();
    let messages = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&expected)).await;
    assert_eq!(alert_ids(&messages), expected, "no alert for agent-1's repeat");
    let dead = read_topic(&broker.brokers(), &names.dlq, |m| !m.is_empty()).await;
    assert_eq!(dead.len(), 1);
    let reason = header(&dead[0], "error").unwrap_or_default();
    assert!(reason.contains("unknown alert_id"), "{reason}");
}

/// The unkeyed path, end to end: CloudTrail exports (`Records` arrays of many roles, each
/// array out of order) written with no key to one partition, repartitioned by identity over
/// four, give exactly the alerts `replay` gives for the same file: the same record order
/// within a message, the same fleet-wide judgements across partitions.
#[tokio::test(flavor = "multi_thread")]
async fn unkeyed_cloudtrail_batches_are_repartitioned_by_identity_and_alert_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, grants, labels) = (dir.path().join("ct.jsonl"), dir.path().join("g"), dir.path().join("l"));
    let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["simulate", "--identities", "30", "--days", "14", "--seed", "5", "--format", "cloudtrail"])
        .arg("--out")
        .arg(&lines)
        .arg("--grants-out")
        .arg(&grants)
        .arg("--labels-out")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Batches of 20 records, each reversed: disorder within every message, none across them.
    let records: Vec<String> = std::fs::read_to_string(&lines).unwrap().lines().map(String::from).collect();
    let messages: Vec<String> = records
        .chunks(20)
        .map(|batch| {
            let reversed: Vec<&str> = batch.iter().rev().map(String::as_str).collect();
            format!("{{\"Records\":[{}]}}", reversed.join(","))
        })
        .collect();
    let batches = dir.path().join("batches.json");
    std::fs::write(&batches, messages.iter().map(|m| format!("{m}\n")).collect::<String>()).unwrap();
    let replayed = replayed_alert_ids(&["--format", "cloudtrail"], &batches);
    assert!(replayed.len() >= 3, "the fleet alerts in replay: {replayed:?}");

    let broker = Tansu::memory();
    let names = Names::new("unkeyed");
    let by_identity = format!("{}-by-identity", names.group);
    let one = NewTopic::new(&names.input, 1, TopicReplication::Fixed(1));
    let four = NewTopic::new(&by_identity, 4, TopicReplication::Fixed(1));
    for result in admin(&broker.brokers()).create_topics(&[one, four], &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
    create(&broker.brokers(), &[&names.grants, &names.alerts, &names.dlq]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for message in &messages {
        let record: FutureRecord<'_, (), str> = FutureRecord::to(&names.input).payload(message.as_str());
        producer.send(record, Timeout::Never).await.unwrap();
    }

    let mut config = config(&broker.brokers(), &names);
    config.engine.alerts = overreach::engine::AlertMode::default();
    config.format = overreach::decode::Format::Cloudtrail;
    config.repartition = true;
    // The repartition stage fills the four partitions at its own pace: a partition it has not
    // reached yet must not count as idle while the others are judged (docs/service.md, "Order
    // and lateness"), so this test allows pauses of seconds, not the default 200 ms.
    config.idle_ms = 3_000;
    let service = Running::start(config);
    service.wait_ready().await;
    service.wait_processed(&by_identity, records.len() as u64).await;
    let metrics = &service.telemetry.metrics;
    assert_eq!((metrics.records_late.get(), metrics.records_released_early.get()), (0, 0), "judged in event time");
    let summary = service.stop().await;
    assert_eq!(summary.rejected, 0);
    assert_eq!(
        committed(&broker.brokers(), &format!("{}-repartition", names.group), &names.input),
        [(0, messages.len() as i64)].into()
    );

    let got = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&replayed)).await;
    assert_eq!(alert_ids(&got), replayed, "the same alerts as replay");
    // Every identity's records were judged on one partition: its alerts came from there only.
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for message in &read_topic(&broker.brokers(), &by_identity, |m| m.len() >= records.len()).await {
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        partitions.entry(key).or_default().insert(message.partition());
    }
    assert!(partitions.len() > 4 && partitions.values().all(|p| p.len() == 1), "{partitions:?}");
    assert!(partitions.values().flatten().collect::<BTreeSet<_>>().len() > 1, "spread over partitions");
}

/// Events of a simulated fleet (`simulate`, native form) split at the given times, each part
/// as keyed records; the grant and lifecycle file and the alert ids of one `replay` of it all.
struct Fleet {
    parts: Vec<Vec<(String, Vec<u8>)>>,
    grants: Vec<(String, Vec<u8>)>,
    replayed: Vec<Value>,
}

fn simulated_fleet(dir: &std::path::Path, args: &[&str], cuts: &[&str]) -> Fleet {
    let (events, grants) = (dir.join("events.jsonl"), dir.join("grants.jsonl"));
    let run = |command: &mut Command| {
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(Command::new(env!("CARGO_BIN_EXE_overreach"))
        .arg("simulate")
        .args(args)
        .arg("--out")
        .arg(&events)
        .arg("--grants-out")
        .arg(&grants)
        .arg("--labels-out")
        .arg(dir.join("labels.jsonl")));
    let findings = dir.join("findings.toml");
    std::fs::write(&findings, "[engine]\nalerts = \"findings\"\n").unwrap();
    let replayed = run(Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["replay", "--quiet", "--config"])
        .arg(&findings)
        .arg("--grants")
        .arg(&grants)
        .arg(&events));
    let cuts: Vec<i64> = cuts.iter().map(|t| overreach::time::parse_rfc3339(t).unwrap()).collect();
    let mut parts = vec![Vec::new(); cuts.len() + 1];
    for line in std::fs::read_to_string(&events).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let part = cuts.iter().filter(|&&cut| event["time"].as_i64().unwrap() >= cut).count();
        parts[part].push((event["identity"].as_str().unwrap().to_string(), line.as_bytes().to_vec()));
    }
    let grants = std::fs::read_to_string(&grants).unwrap().lines().map(|l| (String::new(), l.into())).collect();
    let replayed = replayed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    Fleet { parts, grants, replayed }
}

/// Issue 11, as a user scales out: three instances in one group share an 8-partition input;
/// one is killed with SIGKILL mid-stream and a fourth joins. The partitions move with their
/// baselines (restored from the state topic), so every alert one replay gives is given,
/// learned ones after the hand-over included, and repeats after the kill carry the same ids.
/// The only alerts replay does not give are new calls that peers held by other instances took
/// up at about the same event time (a rollout their shares told this instance too late).
#[tokio::test(flavor = "multi_thread")]
async fn instances_killed_and_added_hand_partitions_over_with_their_baselines_and_alert_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cuts = ["2026-03-12T00:00:00Z", "2026-03-14T00:00:00Z"];
    let fleet = simulated_fleet(dir.path(), &["--identities", "40", "--days", "21", "--seed", "3"], &cuts);
    let learned_after_cut: Vec<&Value> = fleet
        .replayed
        .iter()
        .filter(|a| a["time"].as_str().unwrap() >= cuts[1])
        .filter(|a| {
            let detector: Detector = a["detector"].as_str().unwrap().parse().unwrap();
            detector.spec().kind == detect::Kind::Learned
        })
        .collect();
    assert!(learned_after_cut.len() >= 3, "the fleet has learned alerts after the hand-over: {learned_after_cut:?}");
    let replayed: BTreeSet<String> = fleet.replayed.iter().map(|a| a["alert_id"].as_str().unwrap().into()).collect();

    let broker = Tansu::memory();
    let names = Names::new("scale");
    let eight = NewTopic::new(&names.input, 8, TopicReplication::Fixed(1));
    for result in admin(&broker.brokers()).create_topics(&[eight], &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
    create(&broker.brokers(), &[&names.grants, &names.alerts, &names.dlq]).await;
    produce(&broker.brokers(), &names.grants, &fleet.grants).await;

    let mut config = config(&broker.brokers(), &names);
    config.checkpoint_interval_s = 1;
    let start = |n: usize| {
        let home = dir.path().join(format!("instance-{n}"));
        std::fs::create_dir(&home).unwrap();
        let mut config = config.clone();
        config.http_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        config.state = Some(home.join("state.snap"));
        let (file, http) = write_config(&home, &config);
        Binary::start_logged(&file, &http, "info", &home.join("log"))
    };
    let processed = format!("overreach_records_processed_total{{topic=\"{}\"}}", names.input);
    let total = |instances: &[&Binary]| instances.iter().map(|b| b.metric(&processed)).sum::<f64>();
    let mut instances: Vec<Binary> = (0..3).map(start).collect();
    // Ready means holding partitions: all three are, so the input is spread over them.
    for instance in &instances {
        instance.wait_readyz("200", "");
    }
    let mut ends = produce(&broker.brokers(), &names.input, &fleet.parts[0]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&instances.iter().collect::<Vec<_>>()) < fleet.parts[0].len() as f64 {
        assert!(Instant::now() < deadline, "the first part was not judged");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(instances.iter().all(|b| b.metric(&processed) > 0.0), "partitions spread over all three");
    // Each instance checkpoints its partitions once more, now covering the first part: what
    // the one about to be killed learned from it is in the state topic, not only in its memory.
    let checkpoints = |b: &Binary| b.metric("overreach_checkpoints_total");
    let before: Vec<f64> = instances.iter().map(checkpoints).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while instances.iter().zip(&before).any(|(b, &n)| checkpoints(b) <= n) {
        assert!(Instant::now() < deadline, "no checkpoint after the first part");
        std::thread::sleep(Duration::from_millis(100));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Mid-stream: the second part is on its way when one instance dies without a word.
    merge_ends(&mut ends, produce(&broker.brokers(), &names.input, &fleet.parts[1]).await);
    let mut killed = instances.remove(0);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    instances.push(start(3));
    merge_ends(&mut ends, produce(&broker.brokers(), &names.input, &fleet.parts[2]).await);
    wait_committed(&broker.brokers(), &names.group, &names.input, &ends).await;

    let restored: f64 =
        instances.iter().map(|b| b.metric("overreach_handovers_total{direction=\"in\",source=\"state_topic\"}")).sum();
    assert!(restored >= 1.0, "the killed instance's partitions were restored from the state topic");
    for instance in instances {
        assert!(instance.terminate().success(), "a graceful stop exits 0");
    }
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&replayed)).await;
    let got = alert_ids(&alerts);
    let told = |a: &Value| format!("{} {} {} {}", a["alert_id"], a["time"], a["detector"], a["identity"]);
    let only_replay: Vec<String> =
        fleet.replayed.iter().filter(|a| !got.contains(a["alert_id"].as_str().unwrap())).map(told).collect();
    assert_eq!(only_replay, Vec::<String>::new(), "alerts replay gave and the instances did not");
    // What may differ: a new call or step that peers on other instances took up at about the
    // same event time is a rollout in replay, and an alert here when their shares had not
    // reached this instance yet (docs/service.md, "Fleet facts", how consistent). Nothing else.
    let service_alerts = alerts_of(&alerts);
    let only_service: Vec<&Value> =
        service_alerts.iter().filter(|a| !replayed.contains(a["alert_id"].as_str().unwrap())).collect();
    let rollout_judged = ["novel_call", "rare_transition"];
    assert!(
        only_service.iter().all(|a| rollout_judged.contains(&a["detector"].as_str().unwrap())),
        "alerts only the service gave, beyond rollout judgements: {:?}",
        only_service.iter().map(|a| told(a)).collect::<Vec<_>>()
    );
    // Repeats (sent again after the kill) are the same alert under the same id.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for alert in alerts_of(&alerts) {
        schema::assert_valid_alert(&alert);
        let first = by_id.entry(alert["alert_id"].as_str().unwrap().to_string()).or_insert(alert.clone());
        assert_eq!((&first["event_ids"], &first["detector"]), (&alert["event_ids"], &alert["detector"]));
    }
    eprintln!(
        "{} alerts delivered for {} distinct ({} repeats): all {} of replay's, and {} judged before peers' shares came: {:?}",
        alerts.len(),
        got.len(),
        alerts.len() - got.len(),
        replayed.len(),
        only_service.len(),
        only_service.iter().map(|a| told(a)).collect::<Vec<_>>()
    );
}

/// An instance killed before its first checkpoint has committed nothing: the group's committed
/// offset never runs ahead of the state topic. Its successor finds no checkpoint, reads the
/// partitions from their start, and learns what the killed one had learned, so the alerts are
/// replay's (without that rule the offsets the killed one had auto-committed would skip the
/// records its learning came from).
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_before_its_first_checkpoint_leaves_its_successor_every_record_to_learn_from() {
    let dir = tempfile::tempdir().unwrap();
    let fleet =
        simulated_fleet(dir.path(), &["--identities", "40", "--days", "21", "--seed", "3"], &["2026-03-14T00:00:00Z"]);
    let replayed: BTreeSet<String> = fleet.replayed.iter().map(|a| a["alert_id"].as_str().unwrap().into()).collect();
    let broker = Tansu::memory();
    let names = Names::new("early");
    create(&broker.brokers(), &[&names.input, &names.grants, &names.alerts, &names.dlq]).await;
    produce(&broker.brokers(), &names.grants, &fleet.grants).await;

    let start = |n: usize, checkpoint_interval_s: u64| {
        let home = dir.path().join(format!("instance-{n}"));
        std::fs::create_dir(&home).unwrap();
        let mut config = config(&broker.brokers(), &names);
        config.checkpoint_interval_s = checkpoint_interval_s;
        // A join the broker leaves unanswered while the killed member is still in the group
        // is retried after this (plus 3 s), not after librdkafka's default of 5 minutes: the
        // successor stayed without partitions for the whole wait in some runs.
        config.kafka_consumer.insert("max.poll.interval.ms".into(), "10000".into());
        let (file, http) = write_config(&home, &config);
        Binary::start_logged(&file, &http, "info", &home.join("log"))
    };
    // No checkpoint in the first one's life: its interval is an hour.
    let mut first = start(0, 3600);
    first.wait_readyz("200", "");
    produce(&broker.brokers(), &names.input, &fleet.parts[0]).await;
    let processed = format!("overreach_records_processed_total{{topic=\"{}\"}}", names.input);
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.metric(&processed) < fleet.parts[0].len() as f64 {
        assert!(Instant::now() < deadline, "the first part was not judged");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Auto-commit runs every 200 ms here: a second of it would commit any stored offset.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(committed(&broker.brokers(), &names.group, &names.input), BTreeMap::new(), "nothing committed");
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = start(1, 1);
    second.wait_readyz("200", "");
    let ends = produce(&broker.brokers(), &names.input, &fleet.parts[1]).await;
    wait_committed(&broker.brokers(), &names.group, &names.input, &ends).await;
    assert!(
        second.metric("overreach_handovers_total{direction=\"in\",source=\"none\"}") >= 1.0,
        "the partitions were taken with no checkpoint"
    );
    assert!(second.terminate().success());
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&replayed)).await;
    assert_eq!(alert_ids(&alerts), replayed, "the alerts of one replay, learned ones included");
}

/// A backlog whose partitions run at different speeds in event time: one partition's records
/// are ten seconds apart, another's one second, and the consumer takes about as many of each
/// at a time, so the first runs ahead and its records wait in the order stage for the second
/// to catch up, more of them than the stage may hold. The partition ahead is paused until the
/// one behind catches up, so no record is let go early or judged late, and the alerts are
/// exactly replay's of the same records.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_ahead_in_event_time_is_paused_and_the_backlog_is_judged_as_replay() {
    let broker = Tansu::memory();
    let names = Names::new("paced");
    create_topics(&broker.brokers(), &names).await;
    const PER_PARTITION: i64 = 130_000;
    let calls = [("s3", "GetObject"), ("s3", "PutObject"), ("sts", "AssumeRole"), ("kms", "Decrypt"), ("ecr", "Pull")];
    let start = overreach::time::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
    let access = |kind: &str, i: i64, step_ms: i64| {
        let (target, action) = calls[(i / 700) as usize % calls.len()];
        json!({"event_id": format!("{kind}-{i}"), "time": start + 60_000 + i * step_ms, "identity": format!("{kind}-{}", i % 100),
            "target": target, "action": action, "source_ip": "10.0.0.1", "session_id": format!("{kind}-s-{}", i / 20)})
    };
    // Two identities of each kind are offboarded first: each of their accesses after is a finding.
    let mut records: Vec<Value> = ["sparse-0", "sparse-1", "dense-0", "dense-1"]
        .iter()
        .map(|identity| json!({"kind": "identity_offboarded", "time": start, "identity": identity}))
        .collect();
    records.extend((0..PER_PARTITION).map(|i| access("sparse", i, 10_000)));
    // Half a second off the sparse ones' times: no two records tie, so any merge by time is replay's.
    records.extend((0..PER_PARTITION).map(|i| access("dense", i, 1_000)).map(|mut v| {
        v["time"] = json!(v["time"].as_i64().unwrap() + 500);
        v
    }));
    records.sort_by_key(|v| v["time"].as_i64().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let findings = dir.path().join("findings.toml");
    std::fs::write(&findings, "[engine]\nalerts = \"findings\"\n").unwrap();
    let replayed = replayed_alert_ids(&["--lateness-s", "0", "--config", findings.to_str().unwrap()], &file);
    assert!(replayed.len() >= 4, "the offboarded identities alert: {}", replayed.len());

    // The whole backlog is on the broker before the service starts, dense identities in
    // partition 0 and sparse ones in 1, one message per batch: tansu 0.6 answers a fetch from
    // the middle of a batch with the next batch (the rest is skipped), and a partition resumed
    // after a pause is fetched from the message after the last one polled, wherever that is.
    let partition_of = |key: &str| Some(i32::from(key.starts_with("sparse")));
    produce_batched(&broker.brokers(), &names.input, &json_records(&records), "1", partition_of).await;
    let mut config = config(&broker.brokers(), &names);
    config.pause_ahead = true;
    let service = Running::start(config);
    service.wait_ready().await;
    service.wait_processed(&names.input, records.len() as u64).await;
    let summary = service.stop().await;
    assert_eq!(summary.order.released_early, 0, "records let go before their turn");
    assert_eq!(summary.order.late, 0, "records judged after later ones");
    let alerts = read_topic(&broker.brokers(), &names.alerts, |m| alert_ids(m).is_superset(&replayed)).await;
    assert_eq!(alert_ids(&alerts), replayed, "the service's alerts are replay's");
}

/// A broker that never answers the request creating the service's own topics (librdkafka's mock
/// cluster creates topics only through its own interface): once librdkafka's request timeout
/// (`socket.timeout.ms`) has passed, the service stops with an error that names the topics
/// (librdkafka's own, `OperationTimedOut`, named none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_topics_the_broker_does_not_create_stop_the_start_naming_them() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in ["in", "alerts"] {
        mock.create_topic(topic, 3, 1).unwrap();
    }
    let brokers = mock.bootstrap_servers();
    let config: ServiceConfig = toml::from_str(&format!(
        "brokers = {brokers:?}\ninput_topics = [\"in\"]\nalert_topic = \"alerts\"\ngroup = \"g\"\n\
         http_addr = \"127.0.0.1:0\"\n[kafka]\n\"socket.timeout.ms\" = \"3000\"\n"
    ))
    .unwrap();
    let run = service::run(&config, Arc::new(Telemetry::new()), std::future::pending());
    let outcome = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the start ends within a minute");
    let error = format!("{:#}", outcome.expect_err("the start fails"));
    assert!(error.contains("cannot create the service topics g-state, g-fleet"), "{error}");
}
