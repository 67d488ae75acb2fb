//! The real `overreach run` binary as a child process, for the Kafka tests and benchmarks.
#![allow(dead_code)] // each user takes the helpers it needs

use overreach::config::ServiceConfig;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `config` as the TOML file the binary reads; returns its path and the HTTP address.
pub fn write_config(dir: &std::path::Path, config: &ServiceConfig) -> (std::path::PathBuf, String) {
    let path = dir.join("overreach.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    (path, config.http_addr.to_string())
}

/// The real binary as a child process, configured by a TOML file.
pub struct Binary {
    pub child: Child,
    http: String,
}

impl Binary {
    pub fn start(config_file: &std::path::Path, http: &str) -> Binary {
        Binary::spawn(config_file, http, "info", Stdio::inherit())
    }

    /// With its log (human format, at `rust_log`) written to `log`.
    pub fn start_logged(config_file: &std::path::Path, http: &str, rust_log: &str, log: &std::path::Path) -> Binary {
        Binary::spawn(config_file, http, rust_log, std::fs::File::create(log).unwrap().into())
    }

    fn spawn(config_file: &std::path::Path, http: &str, rust_log: &str, stderr: Stdio) -> Binary {
        let child = Command::new(env!("CARGO_BIN_EXE_overreach"))
            .args(["run", "--config"])
            .arg(config_file)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Binary { child, http: http.to_string() }
    }

    /// The answer to `GET path`, or "" while the service is not listening.
    pub fn get(&self, path: &str) -> String {
        let Ok(mut s) = std::net::TcpStream::connect(&self.http) else { return String::new() };
        let _ = s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }

    /// Waits until `/readyz` answers with `status` and a body containing `reason`. Generous:
    /// an instance that follows a killed one is ready only once the broker has expired the
    /// dead member and rebalanced, which took over 40 s twice in the suite on a 2-core VM
    /// with every test's broker and services sharing the cores (12 s alone).
    pub fn wait_readyz(&self, status: &str, reason: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = self.get("/readyz");
            if answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.contains(reason) {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz stayed `{answer}`, expected {status} `{reason}`");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A counter or gauge from /metrics (0 if absent or the service is not up yet).
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self.get("/metrics");
        text.lines().find_map(|l| l.strip_prefix(name_and_labels).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    }

    pub fn wait_metric(&self, name_and_labels: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.metric(name_and_labels) < at_least {
            assert!(Instant::now() < deadline, "{name_and_labels} stayed below {at_least}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The sum of every metric line whose name and labels start with `prefix` (a counter over
    /// all its label values, say), 0 while the service is not up.
    pub fn metric_sum(&self, prefix: &str) -> f64 {
        let text = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |sum, v| sum + v)
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Binary {
    /// Never leaves a service behind: a test that fails, or a benchmark that ends, kills it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
