//! Scale-out benchmark: `overreach run` as 1, 2 and 3 instances (the real binary, as child
//! processes) in one group over an 8-partition topic on one tansu broker, and the time a
//! hand-over takes when an instance joins one that holds every partition.
//!
//! `cargo bench --bench scale` (needs tansu, see `scripts/test.sh`). `SCALE_BENCH_EVENTS` sets
//! the throughput run's events (default 400000, over 1,000 identities); `SCALE_BENCH_HANDOVER`
//! the identities of each hand-over run (default `10000,100000`, five events each).
//!
//! Throughput is timed from the first event sent (once every instance holds partitions) to the
//! last judged (the sum of the instances' `overreach_records_processed_total`); start-up and
//! the group's join are printed beside it. A hand-over is timed by the
//! instances' own `overreach_handover_seconds`: on the joining instance the restore of the
//! partitions it takes (reading their checkpoints from the state topic and importing their
//! identities), on the one giving them up the wait for deliveries and the checkpoints on revoke.

#[path = "../tests/common/binary.rs"]
mod binary;
#[path = "common/events.rs"]
mod events;
#[path = "../tests/common/tansu.rs"]
mod tansu;

use binary::{write_config, Binary};
use overreach::config::ServiceConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use std::path::Path;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 8;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn create_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await.expect("create topics") {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

async fn produce(brokers: &str, topic: &str, events: usize, identities: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for start in (0..events).step_by(10_000) {
        let chunk: Vec<(String, String)> =
            (start..events.min(start + 10_000)).map(|i| events::native(i, identities)).collect();
        let sends = chunk.iter().map(|(k, v)| p.send(FutureRecord::to(topic).key(k).payload(v), Timeout::Never));
        for r in futures_util::future::join_all(sends).await {
            r.unwrap_or_else(|(e, _)| panic!("bench producer failed: {e}"));
        }
    }
}

/// Starts one `overreach run` of the group, with its own HTTP port, config and log in `dir/name`.
fn start(dir: &Path, name: &str, brokers: &str, input: &str, group: &str) -> Binary {
    let home = dir.join(name);
    std::fs::create_dir(&home).expect("instance dir");
    let http = format!("127.0.0.1:{}", tansu::free_port());
    let mut c: ServiceConfig = toml::from_str(&format!(
        "brokers = {brokers:?}\ninput_topics = [{input:?}]\nalert_topic = \"bench-alerts\"\ngroup = {group:?}\n\
         http_addr = {http:?}\n"
    ))
    .expect("bench config");
    // tansu 0.6 answers fetches slowly unless the consumer asks for short waits.
    c.kafka_consumer.insert("fetch.wait.max.ms".into(), "10".into());
    c.kafka_producer.insert("linger.ms".into(), "5".into());
    let (file, http) = write_config(&home, &c);
    Binary::start_logged(&file, &http, "warn", &home.join("log"))
}

fn ready(instance: &Binary) -> bool {
    instance.get("/readyz").starts_with("HTTP/1.1 200")
}

fn processed(instances: &[Binary], input: &str) -> f64 {
    let name = format!("overreach_records_processed_total{{topic=\"{input}\"}}");
    instances.iter().map(|i| i.metric_sum(&name)).sum()
}

/// Waits until `done` holds, polling every 20 ms; panics after `limit`.
fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "bench: {what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Instant::now()
}

/// For 1, 2 and 3 instances: a fresh topic and group; once every instance holds partitions,
/// the events are produced, and timed from the first sent to the last judged.
async fn throughput(dir: &Path, brokers: &str, events: usize) {
    for n in 1..=3 {
        let (input, group) = (format!("bench-scale-{n}"), format!("bench-scale-{n}"));
        create_topics(brokers, &[&input]).await;
        let instances: Vec<Binary> =
            (0..n).map(|k| start(dir, &format!("{group}-{k}"), brokers, &input, &group)).collect();
        let started = Instant::now();
        wait(Duration::from_secs(120), "every instance holding partitions", || instances.iter().all(ready));
        let joined = started.elapsed().as_secs_f64();
        let sending = Instant::now();
        produce(brokers, &input, events, 1_000).await;
        let sent = sending.elapsed().as_secs_f64();
        let last =
            wait(Duration::from_secs(600), "every record judged", || processed(&instances, &input) >= events as f64);
        let total = last.duration_since(sending).as_secs_f64();
        let name = format!("overreach_records_processed_total{{topic=\"{input}\"}}");
        let shares: Vec<String> = instances.iter().map(|i| format!("{:.0}", i.metric_sum(&name))).collect();
        println!(
            "{n} instance(s): {events} events judged {total:.2} s after the first was sent = {:.0} events/s \
             (sending took {sent:.2} s; start-up and group join before it {joined:.2} s); records per instance {}",
            events as f64 / total,
            shares.join(" / ")
        );
    }
}

async fn handover(dir: &Path, brokers: &str, identities: usize) {
    let input = format!("bench-handover-{identities}");
    create_topics(brokers, &[&input]).await;
    let events = identities * 5;
    produce(brokers, &input, events, identities).await;
    let group = format!("bench-handover-{identities}");
    let first = start(dir, &format!("{group}-a"), brokers, &input, &group);
    let limit = Duration::from_secs(900);
    wait(limit, "the first instance judging every record", || {
        processed(std::slice::from_ref(&first), &input) >= events as f64
    });
    // Its checkpoints cover everything before the second instance joins (interval 5 s).
    std::thread::sleep(Duration::from_secs(7));
    let joined = Instant::now();
    let second = start(dir, &format!("{group}-b"), brokers, &input, &group);
    let ready = wait(limit, "the second instance ready", || {
        ready(&second) && second.metric_sum("overreach_handovers_total{direction=\"in\"") >= 1.0
    });
    let restored_from_topic = second.metric_sum("overreach_handovers_total{direction=\"in\",source=\"state_topic\"}");
    let imported = second.metric_sum("overreach_partition_identities");
    let given_up = first.metric_sum("overreach_handovers_total{direction=\"out\"");
    // The partitions of one rebalance are restored (and checkpointed) together and each is timed
    // from the rebalance, so the mean of the histogram is the hand-over's wall time. The first
    // instance's own start-up restores found nothing (`source="none"`) and took no measurable time.
    let restore_s = second.metric_sum("overreach_handover_seconds_sum") / restored_from_topic.max(1.0);
    let revoke_s = first.metric_sum("overreach_handover_seconds_sum") / given_up.max(1.0);
    println!(
        "hand-over, {identities} identities ({events} events, {PARTITIONS} partitions): the joining instance took \
         {restored_from_topic:.0} partitions from the state topic with {imported:.0} identities in {restore_s:.2} s \
         ({:.0} identities/s); the instance giving them up checkpointed and let go of {given_up:.0} partitions in \
         {revoke_s:.2} s; from the second start to it ready: {:.2} s",
        imported / restore_s.max(1e-9),
        ready.duration_since(joined).as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let events: usize = env_or("SCALE_BENCH_EVENTS", "400000").parse().expect("SCALE_BENCH_EVENTS");
    let handovers: Vec<usize> = env_or("SCALE_BENCH_HANDOVER", "10000,100000")
        .split(',')
        .map(|n| n.trim().parse().expect("SCALE_BENCH_HANDOVER"))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = tansu::Tansu::memory();
    let brokers = broker.brokers();
    create_topics(&brokers, &["bench-alerts"]).await;
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {machine} cores, shared by the broker, the bench and every instance");
    throughput(dir.path(), &brokers, events).await;
    for identities in handovers {
        handover(dir.path(), &brokers, identities).await;
    }
}
