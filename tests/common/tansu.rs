//! A tansu broker (Apache Kafka protocol) on a free loopback port, for integration tests.
//!
//! Finds `tansu` on PATH or in `~/.cargo/bin` (`scripts/test.sh` installs it), starts it with
//! in-memory or SQLite storage, waits until it accepts connections, and kills it on drop.
//!
//! tansu 0.6 takes `--cert`/`--key` but still serves plain TCP, so a TLS test puts a TLS
//! terminator (`tests/common/tls.rs`) in front of the broker and has the broker advertise the
//! terminator's port; SASL is tansu's own (`--authentication`, SCRAM users made beforehand).

// The tests and the Kafka benchmark each use only some of these helpers.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tansu {
    child: Option<Child>,
    port: u16,
    /// The port metadata sends clients to: the broker's own, or a TLS terminator's.
    advertised_port: u16,
    storage: String,
    log: PathBuf,
    /// Clients must authenticate with SASL (tansu 0.6 checks SCRAM passwords against the users
    /// of [`Tansu::create_scram_user`]; PLAIN it accepts with any password).
    authentication: bool,
}

impl Tansu {
    /// A broker whose data lives in memory.
    pub fn memory() -> Tansu {
        let port = free_port();
        Tansu::start(port, port, "memory://tansu/".to_string())
    }

    /// A broker whose data survives a restart, in the SQLite file `db`.
    pub fn sqlite(db: &Path) -> Tansu {
        let port = free_port();
        Tansu::start(port, port, sqlite_url(db))
    }

    /// A broker in the SQLite file `db` that clients reach through a TLS terminator on
    /// `advertised_port` (SQLite, since SCRAM users need storage that keeps them).
    pub fn sqlite_behind(db: &Path, advertised_port: u16) -> Tansu {
        Tansu::start(free_port(), advertised_port, sqlite_url(db))
    }

    fn start(port: u16, advertised_port: u16, storage: String) -> Tansu {
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let mut tansu = Tansu { child: None, port, advertised_port, storage, log, authentication: false };
        tansu.spawn();
        tansu
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let log = std::fs::File::create(&self.log).expect("tansu log file");
        let child = Command::new(binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", &self.storage])
            .args(self.authentication.then_some("--authentication"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("tansu log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu: {e}"));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}; see {}", self.log.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id, for signals (SIGSTOP makes a hung broker).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("tansu is running").id()
    }

    /// The broker's own (plain TCP) port, which a TLS terminator forwards to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds a SCRAM-SHA-512 user; needs a broker that does not require authentication yet.
    pub fn create_scram_user(&self, user: &str, password: &str) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let status = Command::new(binary())
            .args(["user", "create", "--broker", &url, user, password, "--mechanism", "scram512"])
            .status()
            .unwrap_or_else(|e| panic!("cannot run tansu user create: {e}"));
        assert!(status.success(), "tansu user create {user}: {status}");
    }

    /// Restarts the broker requiring SASL authentication from now on.
    pub fn require_authentication(&mut self) {
        self.authentication = true;
        self.restart();
    }

    /// Kills the broker (its SQLite data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// tansu drops one slash after `sqlite://`: an absolute path needs `sqlite:///` + `/abs/path`.
fn sqlite_url(db: &Path) -> String {
    format!("sqlite:///{}", db.display())
}

/// The tansu binary: on PATH, else where `cargo install` puts it.
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    let in_cargo = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"));
    on_path
        .or(in_cargo.filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("tansu not found on PATH or in ~/.cargo/bin; install it with scripts/test.sh"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
