//! The proxy's health endpoints, as kube-proxy serves them: for each LoadBalancer Service with
//! `externalTrafficPolicy: Local`, HTTP on its `healthCheckNodePort` answering 200 while this
//! node has a ready endpoint of it and 503 otherwise (SVC-15, what cloud balancers probe), and
//! `:10256/healthz` (and `/livez`) for the proxy itself (NET-10). The agent lives in its node's
//! network namespace, so the listeners are the node's.

use bytes::Bytes;
use emu_api::time::now;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// kube-proxy's `--healthz-bind-address` port.
pub const PROXY_HEALTHZ_PORT: u16 = 10256;
/// A client that sends no request head within this is dropped (a cloud's health checker sends
/// its request at once).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What one health check node port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    pub namespace: String,
    pub name: String,
    /// Ready endpoints of the Service on this node.
    pub local_endpoints: usize,
}

#[derive(Default)]
struct State {
    services: HashMap<u16, ServiceHealth>,
    /// When the rules were last synced (unix seconds), for `/healthz`.
    last_updated: i64,
}

/// The listeners and what they answer; [`HealthServer::update`] after every sync.
pub struct HealthServer {
    state: Arc<Mutex<State>>,
    listeners: HashMap<u16, tokio::task::JoinHandle<()>>,
}

impl HealthServer {
    /// Starts `:10256`.
    pub fn start() -> HealthServer {
        let mut server = HealthServer { state: Arc::default(), listeners: HashMap::new() };
        server.listen(PROXY_HEALTHZ_PORT);
        server
    }

    /// The health check node ports and their Services now (also marks the rules fresh):
    /// listeners start and stop to match.
    pub fn update(&mut self, services: BTreeMap<u16, ServiceHealth>) {
        if let Ok(mut s) = self.state.lock() {
            s.last_updated = now();
            s.services = services.clone().into_iter().collect();
        }
        let gone: Vec<u16> = self.listeners.keys().copied().filter(|p| *p != PROXY_HEALTHZ_PORT && !services.contains_key(p)).collect();
        for port in gone {
            if let Some(task) = self.listeners.remove(&port) {
                task.abort();
            }
        }
        for port in services.keys() {
            if !self.listeners.contains_key(port) {
                self.listen(*port);
            }
        }
    }

    fn listen(&mut self, port: u16) {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let listener = match TcpListener::bind(("0.0.0.0", port)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "health check port cannot listen");
                    return;
                }
            };
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                tokio::spawn(connection(conn, state.clone(), port));
            }
        });
        self.listeners.insert(port, task);
    }
}

/// One request per connection, answered whatever its method, as kube-proxy's handlers do.
async fn connection(conn: TcpStream, state: Arc<Mutex<State>>, port: u16) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = match state.lock() {
            Ok(s) => respond(&s, port, request.uri().path()),
            Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "unavailable".into()),
        };
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let served = http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        // As Go's servers write them (`Content-Type`), for people reading the raw answer.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(conn), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(port, error = %e, "health check request failed");
    }
}

fn respond(state: &State, port: u16, path: &str) -> Response<Full<Bytes>> {
    if port == PROXY_HEALTHZ_PORT {
        return match path {
            "/healthz" | "/livez" => {
                let body = format!(
                    "{{\"lastUpdated\": {:?},\"currentTime\": {:?}, \"nodeEligible\": true}}",
                    emu_api::time::rfc3339(state.last_updated),
                    emu_api::time::rfc3339(now())
                );
                reply(StatusCode::OK, "application/json", body)
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "404 page not found\n".into()),
        };
    }
    match state.services.get(&port) {
        Some(s) => service_response(s),
        None => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "no service".into()),
    }
}

/// kube-proxy's answer on a health check node port: any path, JSON with the local endpoint
/// count, 200 only with local endpoints.
fn service_response(s: &ServiceHealth) -> Response<Full<Bytes>> {
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {:?},\n\t\t\"name\": {:?}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": true\n}}",
        s.namespace, s.name, s.local_endpoints
    );
    let status = if s.local_endpoints > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = reply(status, "application/json", body);
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("x-load-balancing-endpoint-weight", HeaderValue::from(s.local_endpoints));
    response
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `request` sent to a health port of `state` listening on loopback, and the raw answer.
    async fn exchange(services: &[(u16, ServiceHealth)], request: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = State { services: services.iter().map(|(_, s)| (port, s.clone())).collect(), last_updated: 0 };
        let server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            connection(conn, Arc::new(Mutex::new(state)), port).await
        });
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer)).await.expect("closed after one answer").unwrap();
        server.await.unwrap();
        // The date changes; everything else is kube-proxy's answer to the letter.
        answer.lines().filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn a_service_answers_as_kube_proxy_does() {
        let s = ServiceHealth { namespace: "default".into(), name: "my-nginx".into(), local_endpoints: 1 };
        let r = exchange(&[(0, s.clone())], "GET /healthz HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n").await;
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\nContent-Type: application/json\nX-Content-Type-Options: nosniff\nX-Load-Balancing-Endpoint-Weight: 1\nConnection: close\nContent-Length: 119\n\n{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"my-nginx\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"
        );
        // Any path and method; 503 without a local endpoint.
        let none =
            exchange(&[(0, ServiceHealth { local_endpoints: 0, ..s })], "POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .await;
        assert!(none.starts_with("HTTP/1.1 503 Service Unavailable\n") && none.contains("\"localEndpoints\": 0"), "{none}");
        assert!(none.contains("X-Load-Balancing-Endpoint-Weight: 0\n"), "{none}");
        // A port whose Service has gone.
        let gone = exchange(&[], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(gone.starts_with("HTTP/1.1 503 Service Unavailable\n") && gone.ends_with("\n\nno service"), "{gone}");
    }

    #[test]
    fn the_proxys_own_health() {
        let state = State { services: HashMap::new(), last_updated: 0 };
        let r = respond(&state, PROXY_HEALTHZ_PORT, "/healthz");
        assert_eq!((r.status(), r.headers()[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "application/json"));
        assert_eq!(respond(&state, PROXY_HEALTHZ_PORT, "/foo").status(), StatusCode::NOT_FOUND);
    }
}
