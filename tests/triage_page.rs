//! The triage page in a real browser: the service runs on the embedded mock cluster, fed a
//! simulated fleet as `overreach demo` feeds it, plus one identity whose name is markup; then
//! headless Chromium (Debian's `chromium`, installed by `scripts/test.sh`) loads the pages.
//!
//! Checks that an injected incident appears on `/`, that its identity's view renders its
//! pictures with the new call marked, and that a hostile identity name shows as text with no
//! script element from it. Saves the screenshots the README shows (`docs/triage*.png`).

use futures_util::FutureExt as _;
use overreach::alert::Alert;
use overreach::backtest::score::LabelIndex;
use overreach::demo::{self, Topics};
use overreach::service;
use overreach::simulate::{self, SimConfig};
use overreach::telemetry::Telemetry;
use overreach::triage::identity_link;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A name a log can carry: if the page wrote it as markup, the browser would run it.
const HOSTILE: &str = "<script>alert(1)</script>";
/// Guards on waits that must end: a hung browser or service fails the test, it measures nothing.
const WAIT_LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_an_injected_incident_its_identity_view_and_hostile_names_as_text() {
    let sim = simulate::generate(&SimConfig { identities: 20, days: 12, seed: 7, ..SimConfig::default() });
    let mock = MockCluster::new(1).unwrap();
    let topics = Topics::under("triage-page");
    for topic in topics.all() {
        mock.create_topic(topic, demo::PARTITIONS, 1).unwrap();
    }
    let brokers = mock.bootstrap_servers();
    let mut config = demo::service_config(&brokers, &topics).unwrap();
    let addr = free_addr();
    config.http_addr = addr;
    let telemetry = Arc::new(Telemetry::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn({
        let telemetry = Arc::clone(&telemetry);
        async move {
            service::run(&config, telemetry, async {
                let _ = stopped.await;
            })
            .await
        }
    });

    // Whatever fails, the service is stopped, so the runtime can shut down and report it.
    let checked = std::panic::AssertUnwindSafe(check(&brokers, &topics, &sim, &telemetry, addr)).catch_unwind().await;
    let _ = stop.send(());
    let summary = tokio::time::timeout(WAIT_LIMIT, service).await.unwrap().unwrap().unwrap();
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(summary.rejected, 0);
}

async fn check(brokers: &str, topics: &Topics, sim: &simulate::Simulation, telemetry: &Telemetry, addr: SocketAddr) {
    demo::feed(brokers, topics, sim, telemetry).await.unwrap();
    // The hostile identity through the real decoder: offboarded, then acting (`post_purpose`).
    let end = sim.events.last().unwrap().time;
    let at = |offset: i64| overreach::time::format_rfc3339(end + offset);
    let offboarded =
        json!({"kind": "identity_offboarded", "time": at(60_000), "identity": HOSTILE, "event_id": "off-hostile"});
    produce(brokers, &topics.grants, &offboarded).await;
    wait_for(|| {
        telemetry.metrics.records_processed.with_label_values(&[&topics.grants]).get() > sim.grants.len() as u64
    })
    .await;
    let access = json!({"event_id": "hostile-1", "time": at(120_000), "identity": HOSTILE, "target": "s3", "action": "GetObject"});
    produce(brokers, &topics.access, &access).await;

    let base = format!("http://{addr}");
    wait_for(|| recent_alerts(addr).iter().any(|a| a.identity == HOSTILE)).await;
    let alerts = recent_alerts(addr);

    // An injected incident with a new call among its signals, as the service holds it now.
    let labels = LabelIndex::new(&sim.labels);
    let incident = alerts
        .iter()
        .find(|a| {
            let novel =
                a.incident.as_ref().is_some_and(|i| i.signals.iter().any(|s| s.detector.name() == "novel_call"));
            novel && !labels.incidents_of(&a.event_ids).is_empty()
        })
        .expect("an injected incident with a novel_call signal among the recent alerts");
    let new_call = incident.incident.as_ref().unwrap().signals.iter().find(|s| s.detector.name() == "novel_call");
    let new_call = new_call.unwrap().observed["call"].as_str().unwrap().to_string();

    let list = dump_dom(&format!("{base}/"));
    let link = identity_link(&incident.identity, Some(&incident.alert_id));
    assert!(list.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))), "no link to {link} in:\n{list}");
    assert!(list.contains(&incident.identity), "{list}");
    let filtered = dump_dom(&format!("{base}/?detector=post_purpose"));
    assert!(filtered.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !filtered.contains(&link), "{filtered}");

    let view_url = format!("{base}{link}");
    let view = dump_dom(&view_url);
    assert!(view.matches("<svg").count() >= 4, "hours, days, calls and networks drawn:\n{view}");
    // The marked row's tooltip names the call whole (its label may be cut).
    let marked_call = format!("<g class=\"marked\"><title>{}: ", new_call.replace('&', "&amp;").replace('<', "&lt;"));
    assert!(view.contains(&marked_call), "the new call {new_call} is not the marked row:\n{view}");
    assert!(view.contains("class=\"marktext\" text-anchor=\"middle\""), "the alert's hour is not marked:\n{view}");

    // The hostile name is text wherever it shows, and the page holds no script at all.
    for url in [format!("{base}/"), format!("{base}{}", identity_link(HOSTILE, None))] {
        let dom = dump_dom(&url);
        assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{url}:\n{dom}");
        assert!(!dom.to_ascii_lowercase().contains("<script"), "{url} holds a script element:\n{dom}");
    }

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    screenshot(&view_url, &docs.join("triage.png"));
    screenshot(&format!("{base}/"), &docs.join("triage-list.png"));
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn produce(brokers: &str, topic: &str, record: &serde_json::Value) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let payload = record.to_string();
    let key = record["identity"].as_str().unwrap_or_default();
    producer.send(FutureRecord::to(topic).key(key).payload(&payload), Timeout::After(WAIT_LIMIT)).await.unwrap();
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting after {WAIT_LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/alerts`, read without the browser: the test needs the alert ids to know what to look for.
fn recent_alerts(addr: SocketAddr) -> Vec<Alert> {
    tokio::task::block_in_place(|| get_alerts(addr))
}

fn get_alerts(addr: SocketAddr) -> Vec<Alert> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /alerts HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("application/json"), "{head}");
    serde_json::from_str(body).unwrap()
}

/// The DOM after Chromium loaded `url`, serialized.
fn dump_dom(url: &str) -> String {
    chromium(&["--dump-dom", url])
}

fn screenshot(url: &str, file: &Path) {
    let _ = std::fs::remove_file(file);
    chromium(&[&format!("--screenshot={}", file.display()), "--window-size=1280,900", "--hide-scrollbars", url]);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no screenshot of {url} at {} ({size} bytes)", file.display());
}

/// Runs headless Chromium with its own profile; its stdout when it succeeds. The test's
/// worker thread waits (`block_in_place`), so the service's tasks keep answering meanwhile.
fn chromium(args: &[&str]) -> String {
    tokio::task::block_in_place(|| run_chromium(args))
}

fn run_chromium(args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    // To files, not pipes: a page larger than a pipe's buffer would stall the browser.
    let (stdout, stderr) = (profile.path().join("stdout"), profile.path().join("stderr"));
    let mut child = Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}); scripts/test.sh installs it with apt-get"));
    let deadline = Instant::now() + WAIT_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {args:?} did not finish in {WAIT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    let errors = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "chromium {args:?} failed: {errors}");
    std::fs::read_to_string(&stdout).unwrap()
}
