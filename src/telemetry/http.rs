//! A tiny HTTP/1.1 responder for `/metrics`, `/healthz`, `/readyz` and the triage page
//! (`/`, `/alerts`, `/triage/identities/{identity}`, see [`crate::triage`]): one request per
//! connection, GET only. Enough for Prometheus, orchestrator probes and an analyst's browser;
//! no framework needed.
//! Whoever can reach the port is not trusted to behave: each connection has a deadline and the
//! number open is capped ([`Limits`]), so idle sockets cannot exhaust the process's descriptors.

use super::Telemetry;
use crate::triage::{self, recent::RecentAlerts, Page};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Requests larger than this are answered with 431; probes and scrapes send a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8192;

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

/// What the triage routes read, shared with the service loop.
#[derive(Default)]
pub struct Routes {
    pub recent: Arc<RecentAlerts>,
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
        let (telemetry, routes, open) = (Arc::clone(&telemetry), Arc::clone(&routes), Arc::clone(&open));
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
        "/" => page(&mut stream, triage::list::page(&routes.recent.newest_first(), query, routes.recent.capacity())).await,
        "/alerts" => page(&mut stream, triage::list::json(&routes.recent.newest_first(), query)).await,
        _ => match path.strip_prefix(triage::IDENTITY_PATH) {
            Some(rest) => {
                let answer = match triage::identity_of_path(rest) {
                    Ok(identity) => triage::identity::page(&identity, None, &routes.recent.newest_first(), query),
                    Err(reason) => Page::bad_request(&reason),
                };
                page(&mut stream, answer).await
            }
            None => write(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
        },
    }
}

async fn page(stream: &mut TcpStream, page: Page) -> std::io::Result<()> {
    write(stream, page.status, page.content_type, &page.body).await
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
        let server = tokio::spawn(serve_with(listener, Arc::clone(&telemetry), Arc::default(), limits));
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
        let server = tokio::spawn(serve(listener, Arc::clone(&telemetry), Arc::default()));

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
}
