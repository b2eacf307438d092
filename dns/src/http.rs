//! A minimal HTTP/1.1 responder for the metrics, health and readiness endpoints: one GET per
//! connection, answered and closed. Enough for Prometheus, `curl` and the kubelet's probes, and
//! far smaller than an HTTP stack.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read; anything longer is not one of our clients.
const MAX_REQUEST_HEAD: usize = 8192;
/// A client that sends nothing is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }

    pub fn not_found() -> Self {
        Self::text(404, "404 page not found\n")
    }
}

/// Maps a request path (without query string) to a reply.
pub type Router = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, router: Router) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let router = router.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &router).await {
                        tracing::debug!(error = %e, "HTTP request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection");
                // Out of file descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, router: &Router) -> std::io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request head"))??;
    let reply = match parse_request_line(&head) {
        Some(("GET" | "HEAD", path)) => router(path),
        Some(_) => Reply::text(405, "405 method not allowed\n"),
        None => Reply::text(400, "400 bad request\n"),
    };
    let head_only = head.starts_with("HEAD ");
    stream.write_all(render(&reply, head_only).as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_REQUEST_HEAD {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `GET /metrics?x=1 HTTP/1.1` → `("GET", "/metrics")`.
pub fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    Some((method, target.split('?').next().unwrap_or(target)))
}

pub fn render(reply: &Reply, head_only: bool) -> String {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let body = if head_only { "" } else { reply.body.as_str() };
    format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reply.status,
        reply.content_type,
        reply.body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed() {
        assert_eq!(parse_request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/metrics")));
        assert_eq!(parse_request_line("GET /ready?verbose HTTP/1.0\r\n\r\n"), Some(("GET", "/ready")));
        assert_eq!(parse_request_line("GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(""), None);
    }

    #[test]
    fn replies_carry_length_and_close() {
        let text = render(&Reply::text(200, "OK"), false);
        assert_eq!(text, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        assert!(render(&Reply::text(200, "OK"), true).ends_with("\r\n\r\n"));
    }
}
