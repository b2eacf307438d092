//! The proxy's health endpoints, as kube-proxy serves them: for each LoadBalancer Service with
//! `externalTrafficPolicy: Local`, HTTP on its `healthCheckNodePort` answering 200 while this
//! node has a ready endpoint of it and 503 otherwise (SVC-15, what cloud balancers probe), and
//! `:10256/healthz` (and `/livez`) for the proxy itself (NET-10). The agent lives in its node's
//! network namespace, so the listeners are the node's.

use emu_api::time::now;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// kube-proxy's `--healthz-bind-address` port.
pub const PROXY_HEALTHZ_PORT: u16 = 10256;

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
                let Ok((mut conn, _)) = listener.accept().await else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    // The request line is enough; wait for the end of the headers to be polite.
                    while read < buf.len() {
                        match conn.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => read += n,
                        }
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let path = String::from_utf8_lossy(&buf[..read]).split_whitespace().nth(1).unwrap_or("/").to_string();
                    let response = match state.lock() {
                        Ok(s) => respond(&s, port, &path),
                        Err(_) => http(503, "text/plain", &[], "unavailable"),
                    };
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        self.listeners.insert(port, task);
    }
}

fn respond(state: &State, port: u16, path: &str) -> String {
    if port == PROXY_HEALTHZ_PORT {
        return match path {
            "/healthz" | "/livez" => {
                let body = format!(
                    "{{\"lastUpdated\": {:?},\"currentTime\": {:?}, \"nodeEligible\": true}}",
                    emu_api::time::rfc3339(state.last_updated),
                    emu_api::time::rfc3339(now())
                );
                http(200, "application/json", &[], &body)
            }
            _ => http(404, "text/plain; charset=utf-8", &[], "404 page not found\n"),
        };
    }
    match state.services.get(&port) {
        Some(s) => service_response(s),
        None => http(503, "text/plain", &[], "no service"),
    }
}

/// kube-proxy's answer on a health check node port: any path, JSON with the local endpoint
/// count, 200 only with local endpoints.
pub fn service_response(s: &ServiceHealth) -> String {
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {:?},\n\t\t\"name\": {:?}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": true\n}}",
        s.namespace, s.name, s.local_endpoints
    );
    let weight = s.local_endpoints.to_string();
    let status = if s.local_endpoints > 0 { 200 } else { 503 };
    http(status, "application/json", &[("X-Content-Type-Options", "nosniff"), ("X-Load-Balancing-Endpoint-Weight", &weight)], &body)
}

fn http(status: u16, content_type: &str, headers: &[(&str, &str)], body: &str) -> String {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_answers_as_kube_proxy_does() {
        let s = ServiceHealth { namespace: "default".into(), name: "my-nginx".into(), local_endpoints: 1 };
        let r = service_response(&s);
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: 1\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"my-nginx\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"), "{r}");
        let none = service_response(&ServiceHealth { local_endpoints: 0, ..s });
        assert!(none.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && none.contains("\"localEndpoints\": 0"), "{none}");
    }
}
