//! A tiny HTTP/1.1 responder for `/metrics`, `/healthz`, `/readyz`, `/identities/{identity}`
//! (what the engine holds for one identity, as JSON: `explain`) and the triage page (`/`,
//! `/alerts`, `/triage/identities/{identity}`: [`crate::triage`]): one request per connection,
//! GET only. Enough for Prometheus, orchestrator probes and an analyst's browser; no framework
//! needed.
//! Whoever can reach the port is not trusted to behave: each connection has a deadline and the
//! number open is capped ([`Limits`]), so idle sockets cannot exhaust the process's descriptors.

use super::Telemetry;
use crate::explain::{Identities, Unanswered};
use crate::triage::{self, recent::RecentAlerts, Page};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Requests larger than this are answered with 431; probes and scrapes send a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8192;
/// Longest identity asked for, decoded; longer is answered with 414.
pub const MAX_IDENTITY_BYTES: usize = 2048;

/// Bounds on what clients can hold: every connection is a file descriptor, and the process
/// needs descriptors for its state snapshots and broker connections too.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; one more closes the oldest, so idle sockets cannot starve a
    /// probe (which sends its request at once and is never the oldest for long).
    pub max_connections: usize,
    /// Time a connection gets to send its request and take the answer.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 64, deadline: Duration::from_secs(10) }
    }
}

/// What the routes read besides telemetry, shared with the service loop: the recent alerts it
/// fills, and the way to ask it about an identity.
pub struct Routes {
    pub recent: Arc<RecentAlerts>,
    pub identities: Identities,
}

/// Serves with the default [`Limits`] until the task is dropped.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>, routes: Arc<Routes>) {
    serve_with(listener, telemetry, routes, Limits::default()).await
}

/// Open connections, oldest first, each with the means to close it.
type Open = Arc<Mutex<VecDeque<(u64, oneshot::Sender<()>)>>>;

pub async fn serve_with(listener: TcpListener, telemetry: Arc<Telemetry>, routes: Arc<Routes>, limits: Limits) {
    let open: Open = Arc::default();
    for id in 0u64.. {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (close, closed) = oneshot::channel();
        {
            let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
            while open.len() >= limits.max_connections.max(1) {
                if let Some((_, oldest)) = open.pop_front() {
                    let _ = oldest.send(());
                    telemetry.metrics.http_connections_evicted.inc();
                }
            }
            open.push_back((id, close));
            telemetry.metrics.http_connections.set(open.len() as i64);
        }
        let (telemetry, open, routes) = (Arc::clone(&telemetry), Arc::clone(&open), Arc::clone(&routes));
        tokio::spawn(async move {
            tokio::select! {
                answered = tokio::time::timeout(limits.deadline, respond(stream, &telemetry, &routes)) => match answered {
                    Ok(Err(e)) => tracing::debug!(error = %e, "HTTP connection failed."),
                    Err(_) => tracing::debug!("HTTP connection closed at its deadline."),
                    Ok(Ok(())) => {}
                },
                // Evicted at the cap (or the server stopped): dropping the stream closes it.
                _ = closed => {}
            }
            let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
            open.retain(|(other, _)| *other != id);
            telemetry.metrics.http_connections.set(open.len() as i64);
        });
    }
}

async fn respond(mut stream: TcpStream, telemetry: &Telemetry, routes: &Routes) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST_BYTES {
            return write(&mut stream, "431 Request Header Fields Too Large", "text/plain", "too large\n").await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // Probes may add a query string; the path alone decides, the triage routes read it.
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if method != "GET" {
        return write(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n").await;
    }
    match path {
        "/metrics" => {
            let body = telemetry.metrics.render();
            write(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        "/healthz" => write(&mut stream, "200 OK", "text/plain", "ok\n").await,
        "/readyz" => match telemetry.health.readiness() {
            Ok(()) => write(&mut stream, "200 OK", "text/plain", "ready\n").await,
            Err(why) => {
                write(&mut stream, "503 Service Unavailable", "text/plain", &format!("not ready: {why}\n")).await
            }
        },
        "/" => {
            let recent = &routes.recent;
            page(&mut stream, triage::list::page(&recent.newest_first(), query, recent.capacity())).await
        }
        "/alerts" => page(&mut stream, triage::list::json(&routes.recent.newest_first(), query)).await,
        _ => {
            if let Some(encoded) = path.strip_prefix("/identities/") {
                identity(&mut stream, &routes.identities, encoded).await
            } else if let Some(encoded) = path.strip_prefix(triage::IDENTITY_PATH) {
                page(&mut stream, identity_page(routes, encoded, query).await).await
            } else {
                write(&mut stream, "404 Not Found", "text/plain", "not found\n").await
            }
        }
    }
}

/// `GET /triage/identities/{identity}`: its view, asked of the service loop, drawn with its
/// recent alerts.
async fn identity_page(routes: &Routes, encoded: &str, query: &str) -> Page {
    let name = match identity_in_path(encoded) {
        Ok(name) => name,
        Err(bad) => return Page { status: bad.status(), ..Page::bad_request(&format!("identity: {bad}")) },
    };
    match routes.identities.view(&name).await {
        Ok(view) => triage::identity::page(&name, view.as_ref(), &routes.recent.newest_first(), query),
        Err(why) => Page { status: "503 Service Unavailable", ..Page::bad_request(&why.to_string()) },
    }
}

async fn page(stream: &mut TcpStream, page: Page) -> std::io::Result<()> {
    write(stream, page.status, page.content_type, &page.body).await
}

/// `GET /identities/{identity}`: the engine's view of it as JSON, asked of the service loop.
async fn identity(stream: &mut TcpStream, identities: &Identities, encoded: &str) -> std::io::Result<()> {
    let name = match identity_in_path(encoded) {
        Ok(name) => name,
        Err(bad) => return write(stream, bad.status(), "text/plain", &format!("identity: {bad}\n")).await,
    };
    match identities.view(&name).await {
        Ok(Some(view)) => match serde_json::to_string(&view) {
            Ok(body) => write(stream, "200 OK", "application/json", &body).await,
            Err(e) => write(stream, "500 Internal Server Error", "text/plain", &format!("{e}\n")).await,
        },
        // The name is not echoed: it is the caller's, and a reader of the body need not trust it.
        Ok(None) => write(stream, "404 Not Found", "text/plain", "no baseline for this identity\n").await,
        Err(why @ (Unanswered::Busy | Unanswered::Stopped)) => {
            write(stream, "503 Service Unavailable", "text/plain", &format!("{why}\n")).await
        }
    }
}

/// Why a percent-encoded part of a request (a path segment, a query value) cannot be read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BadEncoding {
    #[error("too long once decoded")]
    TooLong,
    #[error("not percent-encoded UTF-8")]
    Encoding,
}

impl BadEncoding {
    /// The status line a request with it is answered with.
    pub fn status(&self) -> &'static str {
        match self {
            BadEncoding::TooLong => "414 URI Too Long",
            BadEncoding::Encoding => "400 Bad Request",
        }
    }
}

/// An identity from a path segment (an ARN's `/` and `:` arrive encoded or not), at most
/// [`MAX_IDENTITY_BYTES`] once decoded.
pub fn identity_in_path(encoded: &str) -> Result<String, BadEncoding> {
    percent_decoded(encoded, MAX_IDENTITY_BYTES)
}

/// `%XX` decoded, strictly: a `%` not followed by two hex digits is an error, not a literal,
/// and so is a result over `max_bytes` or not UTF-8. The one decoder of request parts.
pub fn percent_decoded(encoded: &str, max_bytes: usize) -> Result<String, BadEncoding> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().min(max_bytes));
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                i += 2;
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(BadEncoding::Encoding)?
            }
            b => b,
        };
        out.push(byte);
        if out.len() > max_bytes {
            return Err(BadEncoding::TooLong);
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BadEncoding::Encoding)
}

async fn write(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    // The pages carry log values: even if one escaped its escaping, the browser runs no
    // script and fetches nothing (`default-src 'none'`), and the identity in the address
    // does not leak to other sites.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn routes(identities: Identities) -> Arc<Routes> {
        Arc::new(Routes { recent: Arc::default(), identities })
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    async fn start(limits: Limits) -> (std::net::SocketAddr, Arc<Telemetry>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let server =
            tokio::spawn(serve_with(listener, Arc::clone(&telemetry), routes(crate::explain::channel().0), limits));
        (addr, telemetry, server)
    }

    /// Reads until the server closes the connection; a hang here (no close) fails the test
    /// through its guard, which only bounds the wait and measures nothing.
    async fn closed_by_server(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn idle_connections_over_the_cap_close_the_oldest_and_probes_still_answer() {
        let cap = 8;
        let (addr, telemetry, server) =
            start(Limits { max_connections: cap, deadline: Duration::from_secs(600) }).await;
        let mut idle = Vec::new();
        for _ in 0..cap * 3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        // Every connection but the newest `cap - 1` idle ones was closed to make room.
        let evictable = idle.len() + 1 - cap;
        for (i, s) in idle.iter_mut().take(evictable).enumerate() {
            assert!(closed_by_server(s).await, "idle connection {i} is still open");
        }
        assert!(telemetry.metrics.http_connections.get() <= cap as i64);
        assert!(telemetry.metrics.http_connections_evicted.get() >= evictable as u64);
        server.abort();
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_a_request_is_closed_at_its_deadline() {
        let (addr, _telemetry, server) =
            start(Limits { max_connections: 64, deadline: Duration::from_millis(200) }).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_server(&mut silent).await);
        // Half a request line and then silence (slowloris) is closed too.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /hea").await.unwrap();
        assert!(closed_by_server(&mut slow).await);
        server.abort();
    }

    #[tokio::test]
    async fn answers_probes_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        telemetry.metrics.records_consumed.with_label_values(&["in"]).inc();
        let server = tokio::spawn(serve(listener, Arc::clone(&telemetry), routes(crate::explain::channel().0)));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503") && not_ready.contains("state not loaded"), "{not_ready}");
        let health = &telemetry.health;
        for flag in [&health.state_loaded, &health.broker_up, &health.broker_answering, &health.partitions_assigned] {
            flag.store(true, Ordering::Relaxed);
        }
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("overreach_records_consumed_total{topic=\"in\"} 1"), "{metrics}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }

    #[test]
    fn identities_in_paths_are_decoded_and_bounded() {
        let ok = |s: &str| identity_in_path(s).unwrap();
        assert_eq!(ok("arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fci"), "arn:aws:iam::1:role/ci");
        assert_eq!(ok("arn:aws:iam::1:role/ci"), "arn:aws:iam::1:role/ci");
        assert_eq!(ok("%3cscript%3E"), "<script>");
        assert_eq!(ok("caf%C3%A9"), "café");
        for bad in ["%", "%4", "%zz", "%FF", "a%C3"] {
            assert_eq!(identity_in_path(bad), Err(BadEncoding::Encoding), "{bad}");
        }
        assert_eq!(identity_in_path(&"a".repeat(MAX_IDENTITY_BYTES)).map(|s| s.len()), Ok(MAX_IDENTITY_BYTES));
        assert_eq!(identity_in_path(&"%41".repeat(MAX_IDENTITY_BYTES + 1)), Err(BadEncoding::TooLong));
    }

    #[tokio::test]
    async fn identities_are_answered_by_the_engine_owner_and_unknown_ones_are_404() {
        use crate::engine::{Engine, EngineConfig};
        use crate::model::{AccessEvent, Origin, Record};
        let mut engine = Engine::new(EngineConfig::default());
        let event = AccessEvent {
            event_id: "e1".into(),
            time: 1_772_410_347_000,
            identity: "role/ci".into(),
            target: "s3.amazonaws.com".into(),
            action: "GetObject".into(),
            ..AccessEvent::default()
        };
        engine.process(&Record::Access(Box::new(event)), &Origin::File { path: "t".into(), line: 1 });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (identities, mut answers) = crate::explain::channel();
        let server = tokio::spawn(serve(listener, Arc::new(Telemetry::new()), routes(identities)));
        let owner = tokio::spawn(async move {
            loop {
                answers.next().await.answer(&engine);
            }
        });
        let found = get(addr, "/identities/role%2Fci").await;
        assert!(found.starts_with("HTTP/1.1 200") && found.contains("application/json"), "{found}");
        let body: serde_json::Value = serde_json::from_str(found.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["identity"], "role/ci");
        assert_eq!(body["calls"]["top"][0]["value"], "s3.amazonaws.com GetObject");
        assert!(get(addr, "/identities/role%2Fother").await.starts_with("HTTP/1.1 404"));
        assert!(get(addr, "/identities/%zz").await.starts_with("HTTP/1.1 400"));
        owner.abort();
        let _ = owner.await;
        assert!(get(addr, "/identities/role%2Fci").await.starts_with("HTTP/1.1 503"));
        server.abort();
    }
}
