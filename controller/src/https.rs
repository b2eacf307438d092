//! The API server's HTTPS endpoint: what a pod finds behind `https://kubernetes.default.svc`.
//!
//! emu's real API is gRPC on a Unix socket; this endpoint exists so that what in-cluster clients
//! probe first works as it does against kube-apiserver for an anonymous client: the TLS handshake
//! against the cluster CA, `/version`, the health checks, and a `403 Forbidden` Status for
//! everything else (anonymous users may read only those paths under Kubernetes' default RBAC
//! role `system:public-info-viewer`).
//!
//! Deliberately tiny: one request per connection (`Connection: close`), no HTTP library. The
//! answer to a request is a pure function of its head ([`respond`]); the socket side only reads
//! the head, writes the answer and closes.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A whole connection (handshake, request, answer) must be done within this; a slow or stuck
/// client is dropped so it cannot hold a connection slot.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog. Bounds memory whatever the clients
/// do (each TLS connection costs some tens of KiB).
const MAX_CONNECTIONS: usize = 256;
/// Longest request head accepted (Go's net/http, behind kube-apiserver, allows 1 MiB; nothing a
/// client sends to these paths comes close to this).
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("serving certificate: {0}")]
    Cert(rustls::pki_types::pem::Error),
    #[error("serving certificate: no certificate in the PEM given")]
    NoCert,
    #[error("serving key: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS acceptor presenting `cert_pem` (the serving certificate, optionally followed by
/// intermediates) with `key_pem`, offering HTTP/1.1 only.
pub fn acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, HttpsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(HttpsError::Cert)?;
    if chain.is_empty() {
        return Err(HttpsError::NoCert);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(HttpsError::Key)?;
    // The provider is named rather than taken from the process default, which would be ambiguous
    // (and panic) if another crate in the binary ever enabled aws-lc-rs too.
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // Clients such as kubectl offer h2 first; answering with http/1.1 keeps them on the only
    // protocol spoken here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves HTTPS on `listener` until `shutdown` completes; connections still open then are
/// dropped. `version` is the Kubernetes version to report, e.g. `v1.33.0`. Never fails: a client
/// that misbehaves only loses its own connection, and accept errors (such as running out of file
/// descriptors) are logged and retried.
/// Who presented a bearer token: its user, or None when the token is not valid.
pub type Authenticator = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub async fn serve(listener: TcpListener, tls: TlsAcceptor, version: &'static str, authn: Authenticator, shutdown: impl Future) {
    serve_with(listener, tls, version, authn, shutdown, CONNECTION_TIMEOUT).await
}

async fn serve_with(listener: TcpListener, tls: TlsAcceptor, version: &'static str, authn: Authenticator, shutdown: impl Future, timeout: Duration) {
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while let Some(done) = connections.try_join_next() {
            if let Err(e) = done {
                tracing::warn!(error = %e, "https connection task failed");
            }
        }
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning; they usually pass.
                    tracing::warn!(error = %e, "https accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tls, authn) = (tls.clone(), authn.clone());
        connections.spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(timeout, connection(&tls, stream, peer, version, &*authn)).await {
                Ok(Ok(())) => {}
                // Port scanners, plain-HTTP clients and clients that distrust our CA end here;
                // that is their problem, not the server's, hence debug.
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https connection failed"),
                Err(_) => tracing::debug!(%peer, "https client too slow; connection dropped"),
            }
        });
    }
    tracing::debug!(open = connections.len(), "https endpoint shutting down");
}

async fn connection(
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    version: &str,
    authn: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> io::Result<()> {
    let mut stream = tls.accept(stream).await?;
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if let Some(end) = head_end(&buf) {
            break Some(end);
        }
        if buf.len() >= MAX_HEAD {
            break None;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(()); // closed before finishing a request: nothing to answer
        }
    };
    let response = match head_len {
        Some(end) => respond(&buf[..end], version, authn),
        None => Response::text(431, "Request Header Fields Too Large", "431 Request Header Fields Too Large"),
    };
    tracing::trace!(%peer, status = response.status, "https request");
    stream.write_all(&response.to_bytes(SystemTime::now())).await?;
    // Sends TLS close_notify, then FIN: the client sees a clean end of the answer.
    stream.shutdown().await?;
    // Closing with unread request bytes (a body we never looked at) would make the kernel send a
    // reset, which can destroy the answer before the client has read it. Wait briefly for the
    // client to close first, discarding what it still sends.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

/// Where the request head ends (the index just past its blank line), if it has ended. Accepts
/// bare LF line ends as well as CRLF, as HTTP allows recipients to.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// An answer to one request.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    /// Answer to HEAD: headers only.
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Response {
        Response { status, reason, content_type: "text/plain; charset=utf-8", body: body.to_owned(), head_only: false }
    }

    fn json(status: u16, reason: &'static str, body: String) -> Response {
        Response { status, reason, content_type: "application/json", body, head_only: false }
    }

    /// The response as sent, headers as kube-apiserver sends them (minus its audit id).
    fn to_bytes(&self, now: SystemTime) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nCache-Control: no-cache, private\r\nContent-Type: {}\r\nX-Content-Type-Options: nosniff\r\nDate: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            http_date(now),
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to a request whose head (request line and headers, up to the blank line) is `head`.
/// A bearer token is checked first, as kube-apiserver authenticates before it authorizes: one
/// that `authn` does not accept gets 401 whatever the path; a valid one makes the request its
/// user's, which (with no RBAC bindings in emu) may see what anonymous users may see.
fn respond(head: &[u8], version: &str, authn: &dyn Fn(&str) -> Option<String>) -> Response {
    let Some(request) = Request::parse(head) else {
        return Response::text(400, "Bad Request", "400 Bad Request");
    };
    let user = match request.bearer {
        None => "system:anonymous".to_string(),
        Some(token) => match authn(token) {
            Some(user) => user,
            None => {
                let mut r = Response::json(401, "Unauthorized", status_json(401, "Unauthorized", "Unauthorized".into(), false, request.pretty));
                r.head_only = request.method == "HEAD";
                return r;
            }
        },
    };
    let mut response = match (request.method, request.path) {
        // The non-resource URLs `system:public-info-viewer` lets anyone GET.
        ("GET", "/version" | "/version/") => Response::json(200, "OK", version_json(version)),
        ("GET", "/healthz" | "/livez" | "/readyz") => Response::text(200, "OK", "ok"),
        (method, path) => {
            // RBAC's verb for a non-resource request is the lower-cased HTTP method.
            let verb = method.to_ascii_lowercase();
            Response::json(403, "Forbidden", forbidden_json(&user, &verb, path, request.pretty))
        }
    };
    response.head_only = request.method == "HEAD";
    response
}

struct Request<'a> {
    method: &'a str,
    /// The path without the query string.
    path: &'a str,
    /// Whether kube-apiserver would indent a JSON answer to this request.
    pretty: bool,
    /// The token of an `Authorization: Bearer` header.
    bearer: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn parse(head: &'a [u8]) -> Option<Request<'a>> {
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.lines();
        let mut parts = lines.next()?.split(' ');
        let (method, target, protocol) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !protocol.starts_with("HTTP/1.") {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !path.starts_with('/') {
            return None;
        }
        let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim(), v.trim())).collect();
        let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        let user_agent = header("user-agent").unwrap_or("");
        let bearer = header("authorization").and_then(|v| v.split_once(' ')).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim());
        // kube-apiserver indents for `?pretty=true` and for clients that show JSON to a person.
        let pretty = query.split('&').any(|p| matches!(p, "pretty=true" | "pretty=1" | "pretty"))
            || ["curl", "Wget", "Mozilla/"].iter().any(|p| user_agent.starts_with(p));
        Some(Request { method, path, pretty, bearer })
    }
}

/// kube-apiserver's `version.Info`, in its field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo<'a> {
    major: &'a str,
    minor: &'a str,
    git_version: &'a str,
    git_commit: &'a str,
    git_tree_state: &'a str,
    build_date: &'a str,
    go_version: &'a str,
    compiler: &'a str,
    platform: String,
}

/// The `/version` document for `version` (`v1.33.0` → major `1`, minor `33`), indented as
/// kube-apiserver writes it.
fn version_json(version: &str) -> String {
    let mut numbers = version.trim_start_matches('v').split('.');
    let info = VersionInfo {
        major: numbers.next().unwrap_or(""),
        minor: numbers.next().unwrap_or(""),
        git_version: version,
        git_commit: "",
        git_tree_state: "clean",
        build_date: "",
        go_version: "",
        compiler: "gc",
        platform: format!("linux/{}", go_arch(std::env::consts::ARCH)),
    };
    serde_json::to_string_pretty(&info).expect("serializing plain strings cannot fail")
}

/// Go's name (GOARCH) for a Rust target architecture.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `metav1.Status`, in the field order kube-apiserver writes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: String,
    reason: &'static str,
    /// A 403 has empty details; a 401 none.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Empty>,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

/// A failure Status: compact with a trailing newline, or indented without one when `pretty`, as
/// kube-apiserver's JSON serializer writes it.
fn status_json(code: u16, reason: &'static str, message: String, details: bool, pretty: bool) -> String {
    let status =
        Status { kind: "Status", api_version: "v1", metadata: Empty {}, status: "Failure", message, reason, details: details.then_some(Empty {}), code };
    if pretty {
        serde_json::to_string_pretty(&status).expect("serializing plain strings cannot fail")
    } else {
        serde_json::to_string(&status).expect("serializing plain strings cannot fail") + "\n"
    }
}

/// The Status kube-apiserver answers a request for a path its user may not see.
fn forbidden_json(user: &str, verb: &str, path: &str, pretty: bool) -> String {
    status_json(403, "Forbidden", format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""), true, pretty)
}

/// An HTTP `Date` value (IMF-fixdate, always GMT), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras that start
    // on 1 March so that the leap day falls at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT", WEEKDAYS[days.rem_euclid(7) as usize], MONTHS[(month - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ClusterPki;
    use rustls::pki_types::ServerName;
    use std::path::Path;

    const VERSION: &str = "v1.33.0";

    #[test]
    fn version_document_is_kube_apiservers() {
        let expected = format!(
            "{{\n  \"major\": \"1\",\n  \"minor\": \"33\",\n  \"gitVersion\": \"v1.33.0\",\n  \"gitCommit\": \"\",\n  \"gitTreeState\": \"clean\",\n  \"buildDate\": \"\",\n  \"goVersion\": \"\",\n  \"compiler\": \"gc\",\n  \"platform\": \"linux/{}\"\n}}",
            go_arch(std::env::consts::ARCH)
        );
        assert_eq!(version_json(VERSION), expected);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn routes() {
        let get = |head: &str| respond(head.as_bytes(), VERSION, &no_tokens);
        let ok = get("GET /version?timeout=32s HTTP/1.1\r\nHost: kubernetes\r\n\r\n");
        assert_eq!((ok.status, ok.content_type), (200, "application/json"));
        assert!(ok.body.contains("\"gitVersion\": \"v1.33.0\""));
        for path in ["/healthz", "/livez", "/readyz"] {
            let r = get(&format!("GET {path} HTTP/1.1\r\n\r\n"));
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{path}");
        }
        let api = get("GET /api HTTP/1.1\r\nUser-Agent: kubectl/v1.33.0\r\n\r\n");
        assert_eq!(api.status, 403);
        assert_eq!(
            api.body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/api\\\"\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
        );
        // A write to an allowed path is forbidden too, with RBAC's verb in the message.
        let post = get("POST /version HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(post.status, 403);
        assert!(post.body.contains("cannot post path \\\"/version\\\""), "{}", post.body);
        // Sub-checks are not public, as under the default RBAC roles.
        assert_eq!(get("GET /readyz/ping HTTP/1.1\r\n\r\n").status, 403);
        // Bare LF line ends are accepted.
        assert_eq!(get("GET /healthz HTTP/1.0\n\n").status, 200);
    }

    /// An authenticator that accepts no token.
    fn no_tokens(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn bearer_tokens_are_authenticated_before_anything_is_authorized() {
        let authn = |t: &str| (t == "good").then(|| "system:serviceaccount:default:default".to_string());
        let get = |head: &str| respond(head.as_bytes(), VERSION, &authn);
        let r = get("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nAuthorization: Bearer good\r\n\r\n");
        assert_eq!(r.status, 403);
        assert!(r.body.contains("User \\\"system:serviceaccount:default:default\\\" cannot get path \\\"/api/v1/namespaces/default/pods\\\""), "{}", r.body);
        assert_eq!(get("GET /version HTTP/1.1\r\nauthorization: bearer good\r\n\r\n").status, 200);
        // A token it does not accept: 401 wherever it goes, kube-apiserver's Status without details.
        for path in ["/version", "/api"] {
            let r = get(&format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer forged\r\n\r\n"));
            assert_eq!(r.status, 401, "{path}");
            assert_eq!(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n");
        }
    }

    #[test]
    fn curl_gets_indented_json() {
        let r = respond(b"GET /api/v1/pods?pretty HTTP/1.1\r\nuser-agent: curl/7.88.1\r\n\r\n", VERSION, &no_tokens);
        assert_eq!(
            r.body,
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"status\": \"Failure\",\n  \"message\": \"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/api/v1/pods\\\"\",\n  \"reason\": \"Forbidden\",\n  \"details\": {},\n  \"code\": 403\n}"
        );
    }

    #[test]
    fn malformed_requests_get_400() {
        for head in [
            "",
            "GET\r\n\r\n",
            "GET /version\r\n\r\n",
            "get /version HTTP/1.1\r\n\r\n",
            "GET version HTTP/1.1\r\n\r\n",
            "GET /version SPDY/3\r\n\r\n",
            "\u{0}\u{1}\r\n\r\n",
        ] {
            assert_eq!(respond(head.as_bytes(), VERSION, &no_tokens).status, 400, "{head:?}");
        }
        assert_eq!(respond(b"GET /\xff HTTP/1.1\r\n\r\n", VERSION, &no_tokens).status, 400);
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
    }

    #[test]
    fn response_bytes() {
        let mut r = Response::text(200, "OK", "ok");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            String::from_utf8(r.to_bytes(t)).unwrap(),
            "HTTP/1.1 200 OK\r\nCache-Control: no-cache, private\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        r.head_only = true;
        assert!(String::from_utf8(r.to_bytes(t)).unwrap().ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn http_dates() {
        let at = |secs| http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_767_225_599), "Wed, 31 Dec 2025 23:59:59 GMT");
    }

    /// A running endpoint on 127.0.0.1 with a fresh CA; stops when `stop` is dropped or sent.
    struct Server {
        port: u16,
        ca_pem: String,
        dir: tempfile::TempDir,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(timeout: Duration) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path()).unwrap();
        let (cert, key) = pki.server_cert(&["10.96.0.1".into(), "172.18.0.1".into(), "127.0.0.1".into()]).unwrap();
        let tls = acceptor(&cert, &key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_with(listener, tls, VERSION, Arc::new(no_tokens), stopped, timeout));
        Server { port, ca_pem: pki.ca_pem().to_owned(), dir, stop: Some(stop), task }
    }

    fn client(ca_pem: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = ca_pem {
            roots.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// GET `path` as an in-cluster client would (SNI `kubernetes.default.svc`); (status, body).
    async fn get(port: u16, ca_pem: Option<&str>, path: &str) -> io::Result<(u16, String)> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("kubernetes.default.svc").unwrap();
        let mut tls = client(ca_pem).connect(name, tcp).await?;
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: kubernetes.default.svc\r\nUser-Agent: emu-test\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        // A TLS stream may keep written records buffered until flushed.
        tls.flush().await?;
        let mut answer = String::new();
        // read_to_string fails on a close without close_notify, so this also checks a clean end.
        tls.read_to_string(&mut answer).await?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        Ok((status, body.to_owned()))
    }

    #[tokio::test]
    async fn serves_in_cluster_clients_that_trust_the_cluster_ca() {
        let server = start(CONNECTION_TIMEOUT).await;
        let ca = Some(server.ca_pem.as_str());

        let (status, body) = get(server.port, ca, "/version").await.unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["major"].as_str(), v["minor"].as_str(), v["gitVersion"].as_str()), (Some("1"), Some("33"), Some("v1.33.0")));
        assert_eq!(get(server.port, ca, "/healthz").await.unwrap(), (200, "ok".to_owned()));
        let (status, body) = get(server.port, ca, "/api").await.unwrap();
        assert_eq!(status, 403);
        let s: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["message"], "forbidden: User \"system:anonymous\" cannot get path \"/api\"");
        assert_eq!(s["code"], 403);

        // Many clients at once.
        let many = (0..50).map(|_| get(server.port, ca, "/readyz"));
        for r in futures::future::join_all(many).await {
            assert_eq!(r.unwrap().0, 200);
        }

        // A client without the cluster CA refuses the server.
        let err = get(server.port, None, "/version").await.unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        // ... and so does one that trusts another cluster's CA.
        let other = ClusterPki::load_or_create(&server.dir.path().join("other")).unwrap();
        assert!(get(server.port, Some(other.ca_pem()), "/version").await.is_err());

        // The server is still fine after those failures, and stops when told.
        assert_eq!(get(server.port, ca, "/livez").await.unwrap().0, 200);
        let Server { mut stop, task, .. } = server;
        stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve returns on shutdown").unwrap();
    }

    #[tokio::test]
    async fn bad_clients_do_not_stop_the_server() {
        let server = start(Duration::from_millis(300)).await;
        let ca = Some(server.ca_pem.as_str());

        // Plain HTTP to the TLS port, and garbage.
        for junk in [&b"GET /version HTTP/1.1\r\n\r\n"[..], b"\x16\x03\x01\xff\xff garbage"] {
            let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
            tcp.write_all(junk).await.unwrap();
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        }
        // A client that connects and says nothing holds its connection only until the timeout,
        // and others are served meanwhile.
        let mut idle = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        assert_eq!(get(server.port, ca, "/healthz").await.unwrap().0, 200);
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "an idle client must be dropped after the timeout");
        // A head that never ends is cut off at MAX_HEAD.
        let tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        let mut tls = client(ca).connect(ServerName::try_from("kubernetes").unwrap(), tcp).await.unwrap();
        let long = format!("GET /version HTTP/1.1\r\nX-Filler: {}\r\n", "a".repeat(MAX_HEAD));
        tls.write_all(long.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

        assert_eq!(get(server.port, ca, "/version").await.unwrap().0, 200);
    }

    /// The check a person would make, with curl trusting the CA file (skipped without curl).
    #[tokio::test]
    async fn curl_trusts_the_ca_file() {
        if std::process::Command::new("curl").arg("--version").output().is_err() {
            return;
        }
        let server = start(CONNECTION_TIMEOUT).await;
        let ca_file = server.dir.path().join(crate::pki::CA_CERT_FILE);
        let curl = |ca: Option<&Path>, path: &str| {
            let mut cmd = tokio::process::Command::new("curl");
            cmd.args(["-sS", "--resolve", &format!("kubernetes:{}:127.0.0.1", server.port)]);
            if let Some(ca) = ca {
                cmd.arg("--cacert").arg(ca);
            }
            cmd.arg(format!("https://kubernetes:{}{path}", server.port));
            cmd.output()
        };
        let out = curl(Some(&ca_file), "/version").await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), version_json(VERSION));
        let out = curl(Some(&ca_file), "/api").await.unwrap();
        assert!(String::from_utf8(out.stdout).unwrap().contains("\"reason\": \"Forbidden\""));
        // Without the CA, curl refuses the certificate (exit 60).
        let out = curl(None, "/version").await.unwrap();
        assert_eq!(out.status.code(), Some(60), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
