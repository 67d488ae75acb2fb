//! A tiny HTTP/1.1 responder for `/metrics`, `/healthz` and `/readyz`: one request per
//! connection, GET only. Enough for Prometheus and orchestrator probes; no framework needed.

use super::Telemetry;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests larger than this are answered with 431; probes and scrapes send a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8192;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let telemetry = Arc::clone(&telemetry);
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &telemetry).await {
                        tracing::debug!(error = %e, "HTTP connection failed.");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed.");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, telemetry: &Telemetry) -> std::io::Result<()> {
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
    // Probes may add a query string; the path alone decides.
    let path = path.split('?').next().unwrap_or("");
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
        _ => write(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn write(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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

    #[tokio::test]
    async fn answers_probes_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        telemetry.metrics.records_consumed.with_label_values(&["in"]).inc();
        let server = tokio::spawn(serve(listener, Arc::clone(&telemetry)));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503") && not_ready.contains("state not loaded"), "{not_ready}");
        for flag in [&telemetry.health.state_loaded, &telemetry.health.broker_up, &telemetry.health.partitions_assigned]
        {
            flag.store(true, Ordering::Relaxed);
        }
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("overreach_records_consumed_total{topic=\"in\"} 1"), "{metrics}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
