//! A tansu broker (Apache Kafka protocol) on a free loopback port, for integration tests.
//!
//! Finds `tansu` on PATH or in `~/.cargo/bin` (`scripts/test.sh` installs it), starts it with
//! in-memory or SQLite storage, waits until it accepts connections, and kills it on drop.

// The tests and the Kafka benchmark each use only some of these helpers.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tansu {
    child: Option<Child>,
    port: u16,
    storage: String,
    log: PathBuf,
}

impl Tansu {
    /// A broker whose data lives in memory.
    pub fn memory() -> Tansu {
        Tansu::start(free_port(), "memory://tansu/".to_string())
    }

    /// A broker whose data survives a restart, in the SQLite file `db`.
    pub fn sqlite(db: &Path) -> Tansu {
        // tansu drops one slash after `sqlite://`: an absolute path needs `sqlite:///` + `/abs/path`.
        Tansu::start(free_port(), format!("sqlite:///{}", db.display()))
    }

    fn start(port: u16, storage: String) -> Tansu {
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let mut tansu = Tansu { child: None, port, storage, log };
        tansu.spawn();
        tansu
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(&self.log).expect("tansu log file");
        let child = Command::new(binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
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
