//! `overreach run` against a broker that speaks only TLS (and SASL SCRAM over TLS), and the
//! promise that no configured secret reaches the log. The broker is tansu behind a TLS
//! terminator on loopback (`tests/common/tls.rs`), with a throwaway CA made by the test.

#[path = "common/tansu.rs"]
mod tansu;
#[path = "common/tls.rs"]
mod tls;

use overreach::alert::incident_id;
use overreach::config::{RunArgs, ServiceConfig};
use overreach::kafka::{create_consumer, create_producer};
use overreach::telemetry::Telemetry;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tansu::{free_port, Tansu};
use tls::{Pki, TlsTerminator};

const PASSWORD: &str = "scram-pw-7f3e9a";

/// A tansu broker reachable only through TLS, with its CA.
struct TlsBroker {
    pki: Pki,
    broker: Tansu,
    _terminator: TlsTerminator,
    tls_port: u16,
    _dir: tempfile::TempDir,
}

impl TlsBroker {
    async fn start() -> TlsBroker {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let tls_port = free_port();
        let broker = Tansu::sqlite_behind(&dir.path().join("tansu.db"), tls_port);
        let terminator = TlsTerminator::start(&pki, tls_port, broker.port()).await;
        TlsBroker { pki, broker, _terminator: terminator, tls_port, _dir: dir }
    }

    /// With SCRAM-SHA-512 required and one user, `overreach` with [`PASSWORD`].
    async fn start_with_scram_user() -> TlsBroker {
        let mut b = TlsBroker::start().await;
        b.broker.create_scram_user("overreach", PASSWORD);
        b.broker.require_authentication();
        b
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// The librdkafka options a client needs here, as `(key, value)`: TLS trusting the test CA,
    /// plus `extra` (SASL settings).
    fn options(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let protocol = if extra.is_empty() { "ssl" } else { "sasl_ssl" };
        let mut options = vec![
            ("security.protocol".to_string(), protocol.to_string()),
            ("ssl.ca.location".to_string(), self.pki.ca_pem.display().to_string()),
        ];
        options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        options
    }

    fn client(&self, extra: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        for (k, v) in self.options(extra) {
            c.set(k, v);
        }
        c
    }
}

fn scram(password: &str) -> [(&str, &str); 3] {
    [("sasl.mechanisms", "SCRAM-SHA-512"), ("sasl.username", "overreach"), ("sasl.password", password)]
}

/// True when a client with these settings can fetch the cluster's metadata.
fn reaches(client: &ClientConfig) -> bool {
    let consumer: BaseConsumer = client.create().unwrap();
    consumer.fetch_metadata(None, Duration::from_secs(5)).is_ok()
}

async fn create_topics(client: &ClientConfig, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await.unwrap() {
        result.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// Produces the records to partition 0 in order; returns the end offset (last + 1).
async fn produce(client: &ClientConfig, topic: &str, records: &[serde_json::Value]) -> i64 {
    let producer: FutureProducer = client.create().unwrap();
    let mut end = 0;
    for record in records {
        let payload = record.to_string();
        let sent = producer.send(FutureRecord::<(), _>::to(topic).partition(0).payload(&payload), Timeout::Never).await;
        end = sent.unwrap_or_else(|(e, _)| panic!("test producer failed: {e}")).offset + 1;
    }
    end
}

fn committed(client: &ClientConfig, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = client.clone().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    match consumer.committed_offsets(tpl, Duration::from_secs(10)).ok()?.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// The `alert_id` of every alert on `topic`, read from the start until `expected` is among them.
async fn alert_ids(client: &ClientConfig, topic: &str, expected: &str) -> Vec<String> {
    let consumer: StreamConsumer =
        client.clone().set("group.id", format!("{topic}-reader")).set("fetch.wait.max.ms", "10").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ids.iter().any(|id| id == expected) && Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            let alert: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            ids.push(alert["alert_id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// `overreach run` as a child process, its stderr collected.
struct Service {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Service {
    fn start(config: &Path, env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_overreach"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, collected) = (child.stderr.take().unwrap(), Arc::clone(&log));
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Service { child, log, reader }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no `{text}` in the log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM; the exit status and the whole log.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap(); // the pipe closed with the process: every line is read
        (status, Arc::into_inner(self.log).unwrap().into_inner().unwrap())
    }
}

/// Runs `overreach run` with `kafka` as its `[kafka]` table and `env`, feeds it an access after
/// offboarding, and checks the alert arrives and the input offset is committed. Returns the log.
async fn alerts_and_commits_through(
    broker: &TlsBroker,
    client: &ClientConfig,
    kafka: &[(String, String)],
    env: &[(&str, &str)],
) -> String {
    let id = format!("sec-{}", free_port());
    let (input, alerts, group) = (format!("{id}-in"), format!("{id}-alerts"), format!("{id}-group"));
    create_topics(client, &[&input, &alerts]).await;
    let dir = tempfile::tempdir().unwrap();
    let table: serde_json::Map<String, serde_json::Value> =
        kafka.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let config = json!({
        "brokers": broker.brokers(), "input_topics": [input], "alert_topic": alerts, "group": group,
        "http_addr": format!("127.0.0.1:{}", free_port()), "kafka": table,
        "kafka_consumer": {"fetch.wait.max.ms": "10", "auto.commit.interval.ms": "200", "session.timeout.ms": "6000"},
        "kafka_producer": {"linger.ms": "1"},
    });
    let config_file = dir.path().join("overreach.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let service = Service::start(&config_file, env);

    let records = [
        json!({"kind": "identity_offboarded", "time": "2026-03-01T00:00:00Z", "identity": "agent-1", "event_id": "off-1"}),
        json!({"event_id": "ev-late", "time": "2026-03-01T02:00:00Z", "identity": "agent-1", "target": "crm", "action": "Export"}),
    ];
    let end = produce(client, &input, &records).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(client, &group, &input) != Some(end) {
        assert!(Instant::now() < deadline, "committed {:?}, input ends at {end}", committed(client, &group, &input));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected = incident_id("agent-1", "ev-late");
    assert_eq!(alert_ids(client, &alerts, &expected).await, [expected], "the one alert, read back over TLS");
    let (status, log) = service.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status:?}\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_alerts_arrive_and_offsets_commit() {
    let broker = TlsBroker::start().await;
    let client = broker.client(&[]);
    alerts_and_commits_through(&broker, &client, &broker.options(&[]), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_client_or_one_that_does_not_trust_the_ca_is_refused() {
    let broker = TlsBroker::start().await;
    assert!(reaches(&broker.client(&[])), "control: TLS trusting the test CA works");
    let plain = ClientConfig::new().set("bootstrap.servers", broker.brokers()).clone();
    assert!(!reaches(&plain), "plain TCP against the TLS port must fail");
    let untrusted =
        ClientConfig::new().set("bootstrap.servers", broker.brokers()).set("security.protocol", "ssl").clone();
    assert!(!reaches(&untrusted), "TLS without the test CA (system trust store only) must fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_sasl_ssl_with_scram_the_service_authenticates_and_never_logs_the_password() {
    let broker = TlsBroker::start_with_scram_user().await;
    assert!(!reaches(&broker.client(&scram("wrong-password"))), "a wrong SCRAM password must be refused");
    let client = broker.client(&scram(PASSWORD));
    // The password comes from the environment, as docs/service.md advises.
    let kafka: Vec<(String, String)> =
        broker.options(&scram(PASSWORD)).into_iter().filter(|(k, _)| k != "sasl.password").collect();
    let log =
        alerts_and_commits_through(&broker, &client, &kafka, &[("OVERREACH_KAFKA__SASL_PASSWORD", PASSWORD)]).await;
    assert!(log.contains("sasl.password"), "the start-up log shows the key:\n{log}");
    assert!(!log.contains(PASSWORD), "the password is in the log:\n{log}");
}

/// Writes a config for a service that cannot reach any broker, with `kafka` as its `[kafka]` table.
fn unreachable_config(dir: &Path, kafka: &str) -> std::path::PathBuf {
    let text = format!(
        "brokers = \"127.0.0.1:{}\"\ninput_topics = [\"in\"]\nalert_topic = \"alerts\"\nhttp_addr = \"127.0.0.1:{}\"\n[kafka]\n{kafka}",
        free_port(),
        free_port()
    );
    let path = dir.join("overreach.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_errors_in_the_log_never_carry_a_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    // librdkafka rejects this unsecured-JWT config at its first token refresh and quotes the
    // rest of it from where it stopped: the extension value would be in the error reason.
    let config = unreachable_config(
        dir.path(),
        "\"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanisms\" = \"OAUTHBEARER\"\n\
         \"enable.sasl.oauthbearer.unsecure.jwt\" = \"true\"\n\
         \"sasl.oauthbearer.config\" = \"principal=svc tenant=acme extension_token=xt-77c1d0\"\n",
    );
    let service = Service::start(&config, &[]);
    service.wait_for_log("Failed to acquire SASL OAUTHBEARER token").await;
    let (status, log) = service.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("Unrecognized sasl.oauthbearer.config beginning at: ***"), "{log}");
    for secret in ["xt-77c1d0", "tenant=acme"] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
}

#[test]
fn a_client_creation_error_at_start_names_the_key_but_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    // A Java client's setting, as a Confluent Cloud console offers it: librdkafka has no such
    // key, and its error quotes the value.
    let config = unreachable_config(
        dir.path(),
        "\"sasl.jaas.config\" = \"org.apache.kafka.common.security.plain.PlainLoginModule required username='K' password='jaas-pw-31d';\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_overreach")).args(["run", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot create the Kafka") && stderr.contains("sasl.jaas.config"), "{stderr}");
    assert!(!stderr.contains("jaas-pw-31d"), "the password is in the error:\n{stderr}");
}

#[tokio::test]
async fn the_tls_and_sasl_examples_in_the_service_docs_create_their_clients() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/service.md")).unwrap();
    let examples: Vec<&str> = docs
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(toml, _)| toml))
        .filter(|toml| toml.contains("security.protocol"))
        .collect();
    assert_eq!(examples.len(), 3, "MSK, Confluent Cloud, private CA");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    for example in examples {
        // The example's CA file and snapshot path are not this machine's.
        let text: String = example
            .replace("/etc/overreach/kafka-ca.pem", &pki.ca_pem.display().to_string())
            .lines()
            .filter(|line| !line.starts_with("state = "))
            .map(|line| format!("{line}\n"))
            .collect();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, &text).unwrap();
        let args = RunArgs { config: Some(path), ..RunArgs::default() };
        let env = [("OVERREACH_KAFKA__SASL_PASSWORD".to_string(), "from-the-environment".to_string())];
        let config = ServiceConfig::resolve(&args, env).unwrap_or_else(|e| panic!("{e}\n{text}"));
        if let Err(e) = create_consumer(&config, Arc::new(Telemetry::new()), Vec::new()) {
            panic!("{e}\n{text}");
        }
        if let Err(e) = create_producer(&config) {
            panic!("{e}\n{text}");
        }
    }
}
