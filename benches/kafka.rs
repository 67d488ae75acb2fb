//! Kafka benchmark: `overreach run` end to end against a bare librdkafka consumer, on one tansu
//! broker in one run, plus consume-to-alert latency at a fixed input rate, beside a bare relay's,
//! on tansu and again on librdkafka's mock cluster (the same protocol without tansu's fetch
//! cycle, which shows how much of the latency is the broker's).
//!
//! `cargo bench --bench kafka` (needs tansu, see `scripts/test.sh`). `KAFKA_BENCH_EVENTS`
//! sets N (default 200000; 0 measures latency only), `KAFKA_BENCH_RATE` the fixed rate in
//! events/s (default 2000; the issue asks for 10000).

#[path = "common/events.rs"]
mod events;
#[path = "../tests/common/tansu.rs"]
mod tansu;

use overreach::config::ServiceConfig;
use overreach::service;
use overreach::telemetry::Telemetry;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
const IDENTITIES: usize = 1_000;
/// One identity in this many is offboarded at the start; its every access then alerts
/// (`post_purpose`, one per identity per suppression window).
const OFFBOARDED_EVERY: usize = 50;
const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Event `i` of the bench's fleet.
fn event(i: usize) -> (String, String) {
    events::native(i, IDENTITIES)
}

/// Event `i` as one CloudTrail record (a message per record, as log shippers write them): the
/// same identities and calls as [`event`], from assumed-role sessions.
fn cloudtrail_event(i: usize) -> (String, String) {
    let role = format!("arn:aws:iam::104729384756:role/svc-{}", i % IDENTITIES);
    let calls = [
        ("s3.amazonaws.com", "GetObject"),
        ("s3.amazonaws.com", "PutObject"),
        ("sts.amazonaws.com", "AssumeRole"),
        ("kms.amazonaws.com", "Decrypt"),
        ("ecr.amazonaws.com", "BatchGetImage"),
    ];
    let (source, name) = calls[(i / IDENTITIES) % calls.len()];
    let time = overreach::time::format_rfc3339(T0 + 3_600_000 + i as i64 * 1_000);
    let v = json!({"eventVersion": "1.08", "eventTime": time, "eventSource": source, "eventName": name,
        "awsRegion": "eu-west-1", "sourceIPAddress": "10.0.0.1", "userAgent": "aws-sdk-go-v2/1.30.1",
        "eventID": format!("e-{i}"), "eventType": "AwsApiCall", "recipientAccountId": "104729384756",
        "readOnly": true, "managementEvent": true,
        "userIdentity": {"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:s-{}", i / 20),
            "arn": format!("arn:aws:sts::104729384756:assumed-role/svc-{}/s-{}", i % IDENTITIES, i / 20),
            "accountId": "104729384756",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role, "accountId": "104729384756"},
                "attributes": {"creationDate": time, "mfaAuthenticated": "false"}}},
        "requestParameters": {"bucketName": "bench-data", "key": format!("objects/{}", i % 97)},
        "responseElements": null});
    (role, v.to_string())
}

fn offboardings() -> Vec<(String, String)> {
    (0..IDENTITIES)
        .step_by(OFFBOARDED_EVERY)
        .map(|n| {
            let identity = format!("svc-{n}");
            let v = json!({"kind": "identity_offboarded", "time": T0, "identity": identity});
            (identity, v.to_string())
        })
        .collect()
}

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for r in admin.create_topics(&[new], &AdminOptions::new()).await.expect("create topics") {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

fn producer(brokers: &str, linger_ms: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

async fn produce_all(brokers: &str, topic: &str, records: &[(String, String)]) {
    let p = producer(brokers, "20");
    for chunk in records.chunks(10_000) {
        let sends = chunk.iter().map(|(k, v)| p.send(FutureRecord::to(topic).key(k).payload(v), Timeout::Never));
        for r in futures_util::future::join_all(sends).await {
            r.unwrap_or_else(|(e, _)| panic!("bench producer failed: {e}"));
        }
    }
}

fn service_config(brokers: &str, input: &str, alerts: &str, group: &str) -> ServiceConfig {
    let mut c: ServiceConfig = toml::from_str(&format!(
        "brokers = {brokers:?}\ninput_topics = [{input:?}]\nalert_topic = {alerts:?}\ngroup = {group:?}\n\
         http_addr = \"127.0.0.1:0\"\n"
    ))
    .expect("bench config");
    // tansu 0.6 answers fetches slowly unless the consumer asks for short waits.
    c.kafka_consumer.insert("fetch.wait.max.ms".into(), "10".into());
    c.kafka_producer.insert("linger.ms".into(), "5".into());
    c
}

/// A consumer of every partition of `topic` from its start, without group membership.
fn from_beginning(brokers: &str, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// A bare librdkafka consumer loop: the transport's own speed. With `parse`, each record is
/// parsed into a `serde_json::Value` and counted per role (`userIdentity.arn`), the reference
/// a typed CloudTrail decoder should beat.
async fn bare_consumer(brokers: &str, topic: &str, n: u64, parse: bool) -> Duration {
    let consumer = from_beginning(brokers, "bare", topic);
    let mut count = 0u64;
    let mut per_role: HashMap<String, u64> = HashMap::new();
    let mut first = None;
    while count < n {
        let m = consumer.recv().await.expect("bare consumer");
        first.get_or_insert_with(Instant::now);
        let payload = m.payload().unwrap_or_default();
        if parse {
            let v: serde_json::Value = serde_json::from_slice(payload).expect("bench record");
            let role = v["userIdentity"]["arn"].as_str().unwrap_or_default();
            match per_role.get_mut(role) {
                Some(c) => *c += 1,
                None => {
                    per_role.insert(role.to_string(), 1);
                }
            }
        }
        count += 1;
    }
    first.map(|t| t.elapsed()).unwrap_or_default()
}

/// What one `overreach run` over the topic took.
struct RunTimes {
    /// From start to the first consumed record: metadata probe, group join, first fetch.
    start_up: Duration,
    /// From the first consumed record until the service has stopped after the last one:
    /// stopping waits for every alert to be acknowledged (and commits, which adds a few ms).
    run: Duration,
    /// Of `run`, until the last record was consumed; the rest is the stop (the last alerts
    /// acknowledged, the final commit, leaving the group).
    consumed: Duration,
    /// From the stop asked for to the service stopped: what the order stage still held
    /// judged, the last alerts acknowledged, the final checkpoint, leaving the group.
    stop: Duration,
    /// Of `run`, the time the service's loop spent taking records in and in the engine (its own
    /// metric; decoding runs on a helper thread, counted while the loop waits for it).
    processing: Duration,
    alerts: u64,
    /// Records the order stage let go early (its bound on records held was reached) or judged
    /// later than the lateness allowance: where these differ, so may the alerts.
    order: overreach::order::OrderCounts,
}

async fn overreach_run(config: ServiceConfig, records: u64) -> RunTimes {
    let telemetry = Arc::new(Telemetry::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let t = Arc::clone(&telemetry);
    let topic = config.input_topics[0].clone();
    let started = Instant::now();
    let task = tokio::spawn(async move { service::run(&config, t, async { stopped.await.unwrap_or(()) }).await });
    let consumed = || telemetry.metrics.records_consumed.with_label_values(&[&topic]).get();
    while consumed() == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let first = Instant::now();
    while consumed() < records {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let consumed_all = first.elapsed();
    let stopping = Instant::now();
    let _ = stop.send(());
    let summary = task.await.expect("service task").expect("service");
    RunTimes {
        start_up: first - started,
        run: first.elapsed(),
        consumed: consumed_all,
        stop: stopping.elapsed(),
        processing: Duration::from_secs_f64(telemetry.metrics.processing_seconds.get()),
        alerts: summary.alerts,
        order: summary.order,
    }
}

/// What turns the latency bench's input into alerts: the service, or the bare relay that
/// shows what the broker and the clients cost on their own.
enum Pipeline {
    Relay,
    Service,
}

/// The broker a latency run goes through: tansu by its address, or the mock cluster, whose
/// topics are made through its own interface (admin requests to create them timed out).
enum Broker<'a> {
    Tansu(&'a str),
    Mock(&'a rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
}

impl Broker<'_> {
    fn name(&self) -> &'static str {
        match self {
            Broker::Tansu(_) => "tansu",
            Broker::Mock(_) => "mock cluster",
        }
    }

    fn brokers(&self) -> String {
        match self {
            Broker::Tansu(brokers) => brokers.to_string(),
            Broker::Mock(mock) => mock.bootstrap_servers(),
        }
    }

    async fn create_topic(&self, topic: &str) {
        match self {
            Broker::Tansu(brokers) => create_topic(brokers, topic).await,
            Broker::Mock(mock) => mock.create_topic(topic, PARTITIONS, 1).expect("mock topic"),
        }
    }
}

/// At a fixed input rate, time from sending an event to reading its alert, through `pipeline`
/// on fresh topics: the bare relay (a consumer that forwards each alerting record with the
/// service's producer settings, doing nothing else) or the service, with its own consume-to-ack
/// histogram. The relay is the floor two trips through the broker set.
async fn latency(broker: &Broker<'_>, rate: u64, pipeline: Pipeline) {
    let brokers = &broker.brokers();
    let label = match pipeline {
        Pipeline::Relay => "relay",
        Pipeline::Service => "service",
    };
    let (input, alerts) = (format!("lat-{label}-in"), format!("lat-{label}-alerts"));
    broker.create_topic(&input).await;
    broker.create_topic(&alerts).await;
    let telemetry = Arc::new(Telemetry::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = match pipeline {
        Pipeline::Relay => tokio::spawn(relay(brokers.to_string(), input.clone(), alerts.clone(), stopped)),
        Pipeline::Service => {
            produce_all(brokers, &input, &offboardings()).await;
            let t = Arc::clone(&telemetry);
            let config = service_config(brokers, &input, &alerts, "lat-group");
            for topic in [config.state_topic(), config.fleet_topic()] {
                broker.create_topic(&topic).await;
            }
            let stopped = async { stopped.await.unwrap_or(()) };
            let task = tokio::spawn(async move { service::run(&config, t, stopped).await.map(|_| ()) });
            while telemetry.health.readiness().is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            task
        }
    };
    let reader = from_beginning(brokers, &format!("lat-{label}-reader"), &alerts);

    // One event in ALERT_EVERY comes from an offboarded identity and alerts, cycling over them
    // with event times far enough apart that no repeat is suppressed; the rest are ordinary
    // calls of the other identities, which the engine must get through on the way.
    const ALERT_EVERY: u64 = 100;
    let events = rate * 5;
    let count = events / ALERT_EVERY;
    let p = producer(brokers, "0");
    let mut sent_at: HashMap<String, (u64, Instant)> = HashMap::new();
    let reading = async {
        let mut latencies = Vec::new();
        while (latencies.len() as u64) < count {
            // Alerts that do not come within 5 s are not coming; report what arrived.
            let Ok(m) = tokio::time::timeout(Duration::from_secs(5), reader.recv()).await else { break };
            let m = m.expect("alert reader");
            let alert: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).expect("alert");
            // An incident's later updates (its close after an hour of quiet in event time) carry
            // the first alert's event but were caused by later records: only the first counts.
            if alert["incident"]["update"].as_u64().is_some_and(|update| update > 0) {
                continue;
            }
            // The service's alert names the event; the relay forwards the event itself.
            let id = alert["event_ids"][0].as_str().or(alert["event_id"].as_str()).unwrap_or_default();
            latencies.push((id.to_string(), Instant::now()));
        }
        latencies
    };
    let sending = async {
        let start = Instant::now();
        for i in 0..events {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let n = i as usize;
            let (identity, action) = if i % ALERT_EVERY == 0 {
                let k = n / ALERT_EVERY as usize;
                (format!("svc-{}", (k % (IDENTITIES / OFFBOARDED_EVERY)) * OFFBOARDED_EVERY), "Export")
            } else {
                (format!("svc-{}", n % IDENTITIES + usize::from(n % OFFBOARDED_EVERY == 0)), "GetObject")
            };
            let id = format!("lat-{i}");
            let v = json!({"event_id": id, "time": T0 + 3_600_000 + i as i64 * 40_000, "identity": identity,
                "target": "crm", "action": action});
            if i % ALERT_EVERY == 0 {
                sent_at.insert(id, (i, Instant::now()));
            }
            let _ = p.send_result(FutureRecord::to(&input).key(&identity).payload(&v.to_string()));
        }
    };
    let (received, ()) = tokio::join!(reading, sending);
    // The first second is the warm-up (the idempotent producer gets its id, the first fetches
    // and the group settle); it is reported apart from the steady state after it.
    let (mut warm_up, mut steady): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (id, at) in &received {
        let Some((i, sent)) = sent_at.get(id) else { continue };
        let ms = (*at - *sent).as_secs_f64() * 1e3;
        if *i < rate {
            warm_up.push(ms)
        } else {
            steady.push(ms)
        }
    }
    print!(
        "{}: latency at {rate} events/s through the {label}, {} alerts: send→alert read after the first second p50 {:.1} ms, \
         p99 {:.1} ms; in the first second p50 {:.1} ms, p99 {:.1} ms",
        broker.name(),
        received.len(),
        quantile(&mut steady, 0.50),
        quantile(&mut steady, 0.99),
        quantile(&mut warm_up, 0.50),
        quantile(&mut warm_up, 0.99),
    );
    let h = &telemetry.metrics.alert_latency;
    match pipeline {
        Pipeline::Relay => println!(),
        Pipeline::Service => println!(
            "; service consume→ack over the run mean {:.2} ms, p50 ≤ {:.1} ms, p99 ≤ {:.1} ms (histogram bucket bounds)",
            h.get_sample_sum() / h.get_sample_count().max(1) as f64 * 1e3,
            bucket_bound(h, 0.50) * 1e3,
            bucket_bound(h, 0.99) * 1e3,
        ),
    }
    let _ = stop.send(());
    task.await.expect("pipeline task").expect("pipeline");
}

/// The bare relay: reads `input` as the service does (its fetch settings) and forwards every
/// alerting record (`"action":"Export"`) under its key to `output` with the service's producer settings
/// (idempotent, `acks=all`, the bench's `linger.ms`), without waiting for each send.
async fn relay(
    brokers: String,
    input: String,
    output: String,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let consumer = from_beginning(&brokers, "relay", &input);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("relay producer");
    let forwarding = async {
        loop {
            let m = consumer.recv().await.expect("relay consumer");
            let payload = m.payload().unwrap_or_default();
            if payload.windows(17).any(|w| w == b"\"action\":\"Export\"") {
                let key = m.key().unwrap_or_default();
                let _ = producer.send_result(FutureRecord::to(&output).key(key).payload(payload));
            }
        }
    };
    tokio::select! {
        _ = forwarding => {}
        _ = stop => {}
    }
    producer.flush(Timeout::After(Duration::from_secs(5)))?;
    Ok(())
}

/// The upper bound of the histogram bucket that holds its `p` quantile (infinite past the last,
/// NaN when empty).
fn bucket_bound(h: &prometheus::Histogram, p: f64) -> f64 {
    use prometheus::core::Collector;
    let families = h.collect();
    let histogram = families[0].get_metric()[0].get_histogram();
    if histogram.get_sample_count() == 0 {
        return f64::NAN;
    }
    let wanted = (histogram.get_sample_count() as f64 * p).ceil() as u64;
    histogram.get_bucket().iter().find(|b| b.cumulative_count() >= wanted).map_or(f64::INFINITY, |b| b.upper_bound())
}

/// The `p` quantile of `values` (NaN when empty).
fn quantile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

/// Loads `n` events of one format (native after the offboarding facts) into a topic, then reads it with a
/// bare consumer and with `overreach run`, and prints both side by side.
async fn compare(brokers: &str, format: &str, n: u64, make: fn(usize) -> (String, String)) {
    let (input, alerts) = (format!("bench-{format}"), format!("bench-{format}-alerts"));
    create_topic(brokers, &input).await;
    create_topic(brokers, &alerts).await;
    // Offboarding facts are native records: CloudTrail input carries no such facts here.
    let mut records = if format == "native" { offboardings() } else { Vec::new() };
    records.extend((0..n as usize).map(make));
    let total = records.len() as u64;
    let loading = Instant::now();
    produce_all(brokers, &input, &records).await;
    println!(
        "{format}: loaded {total} records into {input} ({PARTITIONS} partitions) in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    drop(records);

    let parse = format == "cloudtrail";
    let bare = bare_consumer(brokers, &input, total, parse).await;
    let mut config = service_config(brokers, &input, &alerts, &format!("bench-{format}"));
    if parse {
        config.format = format.parse().expect("a format name");
    }
    let times = overreach_run(config, total).await;
    let rate_of = |d: Duration| total as f64 / d.as_secs_f64();
    let bare_kind = if parse { "parsing each record into a serde_json::Value, counting per role" } else { "counting" };
    println!(
        "{format}: bare rdkafka consumer ({bare_kind}): {total} records in {:.2} s = {:.0} records/s",
        bare.as_secs_f64(),
        rate_of(bare)
    );
    println!(
        "{format}: overreach run: {total} records in {:.2} s = {:.0} records/s ({} alerts acked, {} records released early, {} late; start-up before the first record {:.2} s, stop after the last {:.2} s)",
        times.run.as_secs_f64(),
        rate_of(times.run),
        times.alerts,
        times.order.released_early,
        times.order.late,
        times.start_up.as_secs_f64(),
        times.stop.as_secs_f64()
    );
    // The stop is a fixed cost like the start-up: over the run it counts, to the last record
    // taken in it does not (what the order stage still holds then is judged in the stop).
    println!(
        "{format}: ratio overreach / bare: {:.2} over the run; {:.2} to the last record taken in",
        rate_of(times.run) / rate_of(bare),
        rate_of(times.consumed) / rate_of(bare)
    );
    println!(
        "{format}: of which consuming the last record at {:.2} s, taking in + engine {:.2} s ({:.0}% of the run; {:.0} records per second of it)",
        times.consumed.as_secs_f64(),
        times.processing.as_secs_f64(),
        100.0 * times.processing.as_secs_f64() / times.run.as_secs_f64(),
        rate_of(times.processing)
    );
}

#[tokio::main]
async fn main() {
    let n = env_or("KAFKA_BENCH_EVENTS", 200_000);
    let rate = env_or("KAFKA_BENCH_RATE", 2_000);
    let broker = tansu::Tansu::memory();
    let brokers = broker.brokers();
    if n > 0 {
        compare(&brokers, "native", n, event).await;
        compare(&brokers, "cloudtrail", n, cloudtrail_event).await;
    }
    for pipeline in [Pipeline::Relay, Pipeline::Service] {
        latency(&Broker::Tansu(&brokers), rate, pipeline).await;
    }
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    for pipeline in [Pipeline::Relay, Pipeline::Service] {
        latency(&Broker::Mock(&mock), rate, pipeline).await;
    }
}
