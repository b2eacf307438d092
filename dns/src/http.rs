//! The metrics, health and readiness endpoints: HTTP/1.1 by hyper, one request per connection
//! (answered with `Connection: close`), each path's answer a [`Reply`] from a [`Router`]. Enough
//! for Prometheus, `curl` and the kubelet's probes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A client that sends no request head within this is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read, else 431; anything longer is not one of our clients.
const MAX_REQUEST_HEAD: usize = 8192;

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
                tokio::spawn(connection(stream, router.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection");
                // Out of file descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, router: Router) {
    let service =
        service_fn(move |request: Request<hyper::body::Incoming>| std::future::ready(Ok::<_, Infallible>(respond(&router, &request))));
    let served = http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_header_size(MAX_REQUEST_HEAD)
        // As Go's servers write them (`Content-Type`), for people reading the raw answer.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP request failed");
    }
}

/// GET and HEAD (hyper leaves out the body) are routed by path; other methods get 405.
fn respond<B>(router: &Router, request: &Request<B>) -> Response<Full<Bytes>> {
    let reply = match *request.method() {
        Method::GET | Method::HEAD => router(request.uri().path()),
        _ => Reply::text(405, "405 method not allowed\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn router() -> Router {
        Arc::new(|path: &str| match path {
            "/ready" => Reply::text(200, "OK"),
            _ => Reply::not_found(),
        })
    }

    /// `method target` answered: (status, body).
    async fn ask(method: &str, target: &str) -> (u16, String) {
        let response = respond(&router(), &Request::builder().method(method).uri(target).body(()).unwrap());
        let status = response.status().as_u16();
        (status, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn methods_and_paths() {
        assert_eq!(ask("GET", "/ready?verbose").await, (200, "OK".into()));
        assert_eq!(ask("HEAD", "/ready").await.0, 200);
        assert_eq!(ask("GET", "/metrics").await, (404, "404 page not found\n".into()));
        assert_eq!(ask("POST", "/ready").await, (405, "405 method not allowed\n".into()));
    }

    /// Sends `request` and reads the answer until the server closes.
    async fn exchange(request: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, router()));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await.expect("closed after one answer").unwrap();
        server.abort();
        answer
    }

    #[tokio::test]
    async fn replies_carry_length_and_close() {
        let answer = exchange("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let mut lines: Vec<&str> = head.lines().filter(|l| !l.starts_with("Date: ")).collect();
        lines.sort();
        assert_eq!(lines, ["Connection: close", "Content-Length: 2", "Content-Type: text/plain; charset=utf-8", "HTTP/1.1 200 OK"]);
        assert_eq!(body, "OK");
        let answer = exchange("HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.contains("Content-Length: 2\r\n") && answer.ends_with("\r\n\r\n"), "{answer:?}");
        assert!(exchange("GET /metrics\r\n\r\n").await.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    }
}
