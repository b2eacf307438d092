//! The API server's HTTPS endpoint: what a pod finds behind `https://kubernetes.default.svc`,
//! and what kubectl reaches with the kubeconfig `emu up` writes.
//!
//! It serves the Kubernetes REST API ([`crate::rest`]) as kube-apiserver does: the TLS
//! handshake against the cluster CA, who the client is (a client certificate of that CA, a
//! service-account or bootstrap bearer token, or no one: `system:anonymous`), what they may do, then
//! `/version`, the health checks, discovery, OpenAPI (v2 and v3) and the resources.
//!
//! HTTP/1.1 is hyper's, over tokio-rustls. The answer to a request is decided from the request,
//! its whole body included, the client's certificate and the store ([`Router::route`]): a body
//! written whole, a body streamed as it is produced (watch, logs: chunked, each chunk flushed),
//! an answer that waits for a node's agent, or the switch to WebSocket (exec: the 101 is written
//! here, the session then runs on hyper's upgraded connection). The socket side only accepts,
//! shakes hands, reads the body and hands the request to the router.

use crate::rest::authz::{self, Decision, User};
use crate::rest::request::RequestInfo;
use crate::rest::status::ApiError;
use crate::rest::{self, discovery};
use crate::state::Shared;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a client may take for the TLS handshake, for each request head (which bounds how
/// long an idle kept-alive connection stays open) and for each request body; a slow or stuck
/// client is dropped so it cannot hold a connection slot.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog. Bounds memory whatever the clients
/// do (each TLS connection costs some tens of KiB).
const MAX_CONNECTIONS: usize = 256;
/// Longest request head accepted, else 431 (Go's net/http, behind kube-apiserver, allows 1 MiB;
/// nothing a client sends to these paths comes close to this).
const MAX_HEAD: usize = 16 * 1024;
/// Longest request body read, else 413: kube-apiserver's limit for a write (3 MiB), as for the
/// objects of a gRPC apply.
const MAX_BODY: usize = crate::api::MAX_OBJECT_BYTES;

/// An answer's body: whole, or streamed as it is produced (watch, logs).
pub type Body = BoxBody<Bytes, io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("serving certificate: {0}")]
    Cert(rustls::pki_types::pem::Error),
    #[error("serving certificate: no certificate in the PEM given")]
    NoCert,
    #[error("serving key: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("cluster CA: {0}")]
    Ca(rustls::pki_types::pem::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS acceptor presenting `cert_pem` (the serving certificate, optionally followed by
/// intermediates) with `key_pem`, offering HTTP/1.1 only. It asks for a client certificate and
/// accepts only those `client_ca_pem` (the cluster CA) signed, but lets clients without one in,
/// as kube-apiserver does: they are then authenticated by a bearer token, or anonymous.
pub fn acceptor(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Result<TlsAcceptor, HttpsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(HttpsError::Cert)?;
    if chain.is_empty() {
        return Err(HttpsError::NoCert);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(HttpsError::Key)?;
    // The provider is named rather than taken from the process default, which would be ambiguous
    // (and panic) if another crate in the binary ever enabled aws-lc-rs too.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots.add(ca.map_err(HttpsError::Ca)?)?;
    }
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).allow_unauthenticated().build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)?;
    // Clients such as kubectl offer h2 first; answering with http/1.1 keeps them on the only
    // protocol served here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Who presented a bearer token: its user and groups (`system:authenticated` among them), or None
/// when the token is not valid.
pub type Authenticator = Arc<dyn Fn(&str) -> Option<User> + Send + Sync>;

/// Serves HTTPS on `listener` until `shutdown` completes; connections still open then are
/// dropped. `version` is the Kubernetes version to report, e.g. `v1.33.0`; the resources are
/// `shared`'s store. Never fails: a client that misbehaves only loses its own connection, and
/// accept errors (such as running out of file descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    version: &'static str,
    authn: Authenticator,
    shared: Shared,
    shutdown: impl Future,
) {
    serve_with(listener, tls, Arc::new(Router { version, authn, shared: Some(shared) }), shutdown, CONNECTION_TIMEOUT).await
}

async fn serve_with(listener: TcpListener, tls: TlsAcceptor, router: Arc<Router>, shutdown: impl Future, timeout: Duration) {
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
        // An answer leaves in several writes (TLS records, chunks of a long body): with Nagle's
        // algorithm the last small one waits for the client's delayed ACK, 40 ms on Linux. kube-apiserver's
        // (Go's) sockets have TCP_NODELAY too.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "setting TCP_NODELAY");
        }
        let (tls, router) = (tls.clone(), router.clone());
        connections.spawn(async move {
            let _slot = slot;
            // Port scanners, plain-HTTP clients and clients that distrust our CA end here; that
            // is their problem, not the server's, hence debug.
            if let Err(e) = connection(&tls, stream, peer, router, timeout).await {
                tracing::debug!(%peer, error = %e, "https connection failed");
            }
        });
    }
    tracing::debug!(open = connections.len(), "https endpoint shutting down");
}

/// One client's connection: the TLS handshake, then as many requests as it sends (HTTP/1.1
/// keep-alive) until it closes, asks to close, or is silent for `timeout`.
async fn connection(
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::time::timeout(timeout, tls.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    // The handshake verified a certificate the client presented against the cluster CA: it
    // speaks for its subject on every request of the connection. One without a common name
    // authenticates no one, as in kube-apiserver (a token may still, or the client is anonymous).
    let client: Option<Arc<User>> = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(|cert| {
        let (common_name, organizations) = subject_names(cert.as_ref())?;
        Some(Arc::new(User::from_certificate(&common_name?, &organizations)))
    });
    let service = service_fn(move |request: Request<Incoming>| {
        let (router, client) = (router.clone(), client.clone());
        async move {
            let (head, body) = request.into_parts();
            // The whole body first, so the router is a plain function and an unread body cannot
            // turn the connection's close into a reset that destroys the answer.
            let body = match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY).collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Ok(too_large()),
                // A body that fails or stalls: hyper closes the connection without an answer.
                Ok(Err(e)) => return Err(io::Error::other(e)),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "request body timed out")),
            };
            let mut request = Request::from_parts(head, body);
            // exec and attach ask to switch to WebSocket; the switch happens once the answer
            // (101) is written.
            let upgrade = request.headers().contains_key(header::UPGRADE).then(|| hyper::upgrade::on(&mut request));
            let started = std::time::Instant::now();
            let response = router.route(&request, client.as_deref(), upgrade).await;
            tracing::trace!(%peer, method = %request.method(), path = request.uri().path(), status = response.status().as_u16(),
                elapsed_us = started.elapsed().as_micros() as u64, "https request");
            Ok::<_, io::Error>(response)
        }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_header_size(MAX_HEAD)
        // As Go writes them (`Content-Type`), for clients and people that read the raw answer.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        // exec, attach and port-forward switch the connection to WebSocket.
        .with_upgrades()
        .await?;
    Ok(())
}

/// What a request is answered from: the endpoint's state, shared by every connection.
struct Router {
    /// The Kubernetes version reported, e.g. `v1.33.0`.
    version: &'static str,
    authn: Authenticator,
    /// The API server's state; without it (in tests of the endpoint alone) no resource is found.
    shared: Option<Shared>,
}

impl Router {
    /// The answer to `request` from `client` (the user of the connection's client certificate,
    /// if it presented one). As kube-apiserver: authentication first (a certificate, else a
    /// bearer token, which gets 401 if `authn` does not accept it, else anonymous), then
    /// authorization of the request's attributes ([`authz::authorize`]), then the answer.
    async fn route(&self, request: &Request<Bytes>, client: Option<&User>, upgrade: Option<OnUpgrade>) -> Response<Body> {
        let mut response = self.answer(request, client, upgrade).await;
        let refused = matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if let Some(warning) = deprecation_warning(request).filter(|_| !refused) {
            response.headers_mut().append(header::WARNING, HeaderValue::from_static(warning));
        }
        response
    }

    async fn answer(&self, request: &Request<Bytes>, client: Option<&User>, upgrade: Option<OnUpgrade>) -> Response<Body> {
        let pretty = pretty(request);
        let user = match (client, bearer(request)) {
            (Some(user), _) => user.clone(),
            (None, None) => User::anonymous(),
            (None, Some(token)) => match (self.authn)(&token) {
                Some(user) => user,
                None => return failure(&ApiError::unauthorized(), pretty),
            },
        };
        // RBAC over the store's roles and bindings; without a store, the default policy.
        let defaults;
        let stored;
        let policy: &dyn emu_logic::rbac::Policy = match &self.shared {
            Some(shared) => {
                stored = authz::Stored(&shared.store);
                &stored
            }
            None => {
                defaults = crate::rbac_defaults::Defaults::new();
                &defaults
            }
        };
        // `kubectl --as`, `--as-group`: the request acts as someone else if its user may.
        let headers = request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let user = match authz::impersonate(&user, &authz::Impersonation::from_headers(headers), policy) {
            Ok(user) => user,
            Err(e) => return failure(&e, pretty),
        };
        let (path, query) = (request.uri().path(), request.uri().query().unwrap_or(""));
        let mut info = match RequestInfo::parse(request.method().as_str(), path, query) {
            Ok(info) => info,
            Err(message) => return failure(&ApiError::bad_request(message), pretty),
        };
        info.user_agent = header_text(request, header::USER_AGENT);
        // A node's requests: the Node authorizer first, then RBAC for what it has no opinion on.
        let node_decision = match (&self.shared, rest::node_authz::node_of(&user)) {
            (Some(shared), Some(node)) => rest::node_authz::authorize(node, &user, &info, &shared.store),
            _ => rest::node_authz::NodeDecision::NoOpinion,
        };
        if let rest::node_authz::NodeDecision::Deny(e) = node_decision {
            return failure(&e, pretty);
        }
        let decision = match node_decision {
            rest::node_authz::NodeDecision::Allow => Decision::Allow(String::new()),
            _ => authz::authorize(&user, &info, policy),
        };
        if let Decision::Deny(reason) = decision {
            let message = authz::forbidden_message(&user, &info, &reason);
            let (group, resource) = if info.resource_request { (info.group.as_str(), info.resource.as_str()) } else { ("", "") };
            return failure(&ApiError::forbidden(message, group, resource, &info.name), pretty);
        }
        if !info.resource_request {
            return self.non_resource(request, pretty);
        }
        let content_type = header_text(request, header::CONTENT_TYPE);
        let sent = rest::Sent { body: request.body(), content_type: &content_type };
        // A role or binding may grant only what its author holds (RBAC's escalation check).
        // A PATCH is checked on what it would make of the stored object.
        let live = (info.verb == "patch" && info.group == emu_api::defaults::RBAC_GROUP)
            .then(|| {
                let rk = emu_api::kinds::KINDS.iter().find(|k| k.group == info.group && k.plural == info.resource)?;
                let namespace = if rk.namespaced { info.namespace.clone() } else { String::new() };
                let key = crate::store::ObjectKey { kind: rk.kind.to_string(), namespace, name: info.name.clone() };
                self.shared.as_ref()?.store.get_shared(&key)
            })
            .flatten();
        if let Err(e) = authz::confirm_no_escalation(&user, &info, sent, policy, live.as_deref()) {
            return failure(&e, pretty);
        }
        // The reviews a client asks about itself need who it is, which only the router knows.
        if let Some(answer) = rest::review::answer(&user, &info, sent, pretty, policy, self.shared.as_ref().map(|s| &s.store)) {
            return match answer {
                Ok(answer) => reply(status_code(answer.status), answer.content_type, answer.body),
                Err(e) => failure(&e, pretty),
            };
        }
        let Some(shared) = &self.shared else { return failure(&ApiError::no_such_path(), pretty) };
        let accept = header_text(request, header::ACCEPT);
        let Some(output) = rest::negotiate(&accept) else { return failure(&ApiError::not_acceptable(), pretty) };
        match rest::serve(shared, &info, query, output, pretty, emu_api::time::now(), sent) {
            Ok(served) => deliver(served, pretty, upgrade, request.headers()).await,
            Err(e) => failure(&e, pretty),
        }
    }

    /// The non-resource URLs: version, health checks and discovery. HEAD is answered as GET
    /// without the body (by hyper).
    fn non_resource(&self, request: &Request<Bytes>, pretty: bool) -> Response<Body> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let e = ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: "the server does not allow this method on the requested resource".into(),
                details: Some(Default::default()),
            };
            return failure(&e, pretty);
        }
        let path = request.uri().path();
        let aggregated = discovery::wants_aggregated(&header_text(request, header::ACCEPT));
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let document = match (path, segments.as_slice()) {
            ("/version" | "/version/", _) => return json(StatusCode::OK, version_json(self.version)),
            ("/healthz" | "/livez" | "/readyz", _) => return text(StatusCode::OK, "ok"),
            (_, ["api"]) if aggregated => return aggregated_discovery(request, true, pretty),
            (_, ["apis"]) if aggregated => return aggregated_discovery(request, false, pretty),
            (_, ["api"]) => Some(discovery::api_versions(&header_text(request, header::HOST), pretty)),
            (_, ["apis"]) => Some(discovery::group_list(pretty)),
            (_, ["api", version]) => discovery::resource_list("", version, pretty),
            (_, ["apis", group]) => discovery::group(group, pretty),
            (_, ["apis", group, version]) => discovery::resource_list(group, version, pretty),
            (_, ["openapi", "v2"]) => return openapi_v2(request),
            (_, ["openapi", "v3"]) => Some(rest::openapi::root()),
            (_, ["openapi", "v3", ..]) => return openapi_document(request, pretty),
            _ => None,
        };
        match document {
            Some(body) => json(StatusCode::OK, body),
            None => failure(&ApiError::no_such_path(), pretty),
        }
    }
}

/// `GET /openapi/v2`: the whole API in OpenAPI v2, as JSON or as the protobuf client-go's
/// discovery asks for, as kube-openapi's handler serves it: one ETag for both forms (`Vary:
/// Accept`), 304 when the client has it, 406 (no body) for a form it does not write.
fn openapi_v2(request: &Request<Bytes>) -> Response<Body> {
    use rest::openapi_v2::{negotiate, serve};
    let Some(format) = negotiate(&header_text(request, header::ACCEPT)) else {
        return reply(StatusCode::NOT_ACCEPTABLE, "text/plain; charset=utf-8", Bytes::new());
    };
    let (body, etag) = serve(format);
    let etag = format!("\"{etag}\"");
    let mut response = if header_text(request, header::IF_NONE_MATCH) == etag {
        reply(StatusCode::NOT_MODIFIED, format.content_type(), Bytes::new())
    } else {
        reply(StatusCode::OK, format.content_type(), body)
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex digits make a header value"));
    response
}

/// A group version's OpenAPI v3 document (`/openapi/v3/api/v1?hash=H`), as kube-apiserver serves
/// it: with the current hash it may be cached for good (`immutable`), with another one the client
/// is sent to the current URL (301).
fn openapi_document(request: &Request<Bytes>, pretty: bool) -> Response<Body> {
    let path = request.uri().path().trim_start_matches("/openapi/v3/").trim_end_matches('/');
    let Some((body, hash)) = rest::openapi::document(path) else { return failure(&ApiError::no_such_path(), pretty) };
    let asked = request.uri().query().unwrap_or("").split('&').find_map(|p| p.strip_prefix("hash="));
    let mut response = match asked {
        Some(h) if h != hash => {
            let mut moved = reply(StatusCode::MOVED_PERMANENTLY, "application/json", String::new());
            let location = format!("/openapi/v3/{path}?hash={hash}");
            moved.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a path and hex digits"));
            return moved;
        }
        Some(_) => {
            let mut fresh = json(StatusCode::OK, body);
            fresh.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            fresh
        }
        None => json(StatusCode::OK, body),
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::ETAG, HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex digits make a header value"));
    response
}

/// The answer to a resource request: written whole, streamed, waited for (what a node's agent
/// must say first), or the switch to another protocol, whose handler then gets the connection.
async fn deliver(mut served: rest::Served, pretty: bool, mut upgrade: Option<OnUpgrade>, headers: &header::HeaderMap) -> Response<Body> {
    loop {
        served = match served {
            rest::Served::Reply(answer) => {
                let warnings = rest::warning::headers(&answer.warnings);
                let mut response = reply(status_code(answer.status), answer.content_type, answer.body);
                for warning in warnings {
                    // A header takes any text the recorder lets through (no control characters).
                    if let Ok(value) = HeaderValue::from_bytes(warning.as_bytes()) {
                        response.headers_mut().append(header::WARNING, value);
                    }
                }
                return response;
            }
            rest::Served::Stream(stream) => return streamed(stream),
            rest::Served::Proxied(answer) => return proxied(answer),
            rest::Served::Later(pending) => match pending.await {
                Ok(next) => next,
                Err(e) => return failure(&e, pretty),
            },
            rest::Served::Upgrade(switch) => {
                let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("");
                let websocket = text(header::UPGRADE).eq_ignore_ascii_case("websocket");
                let (Some(on), true, key) = (upgrade.take(), websocket, text(header::SEC_WEBSOCKET_KEY)) else {
                    return failure(&ApiError::bad_request("Upgrade request required"), pretty);
                };
                let offered: Vec<&str> = text(header::SEC_WEBSOCKET_PROTOCOL).split(',').map(str::trim).collect();
                // A 101 without a subprotocol the client offered makes kubectl fall back to
                // SPDY, which emu does not serve: better an error it shows.
                let Some(protocol) = switch.protocols.iter().copied().find(|p| offered.contains(p)) else {
                    let message = format!(
                        "unable to upgrade: none of the offered WebSocket subprotocols is served (served: {})",
                        switch.protocols.join(", ")
                    );
                    return failure(&ApiError::bad_request(message), pretty);
                };
                let accept = websocket_accept(key);
                tokio::spawn(async move {
                    match on.await {
                        Ok(upgraded) => (switch.run)(TokioIo::new(upgraded), protocol).await,
                        Err(e) => tracing::debug!(error = %e, "switch to WebSocket failed"),
                    }
                });
                let mut response = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = response.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
                h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a header value"));
                return response;
            }
        }
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 section 4.2.2).
fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, format!("{}{GUID}", key.trim()).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// An aggregated discovery document, with kube-apiserver's ETag: a client that already has it
/// (`If-None-Match`) gets 304 without the body.
fn aggregated_discovery(request: &Request<Bytes>, core: bool, pretty: bool) -> Response<Body> {
    let body = discovery::aggregated(core, pretty);
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let etag = format!("\"{}\"", digest.as_ref()[..16].iter().map(|b| format!("{b:02X}")).collect::<String>());
    let fresh = header_text(request, header::IF_NONE_MATCH).split(',').any(|t| t.trim() == etag);
    let (status, body) = if fresh { (StatusCode::NOT_MODIFIED, String::new()) } else { (StatusCode::OK, body) };
    let mut response = reply(status, discovery::AGGREGATED_CONTENT_TYPE, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex digits make a header value"));
    response
}

/// A request header as text ("" when absent or not text).
fn header_text(request: &Request<Bytes>, name: header::HeaderName) -> String {
    request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// kube-apiserver's answer to a failed request: the Status, with its code as the HTTP status.
fn failure(e: &ApiError, pretty: bool) -> Response<Body> {
    json(status_code(e.code), e.to_json(pretty))
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive).
fn bearer(request: &Request<Bytes>) -> Option<String> {
    let value = String::from_utf8_lossy(request.headers().get(header::AUTHORIZATION)?.as_bytes()).into_owned();
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// Whether kube-apiserver would indent a JSON answer to this request: for `?pretty=true` and for
/// clients that show JSON to a person.
fn pretty(request: &Request<Bytes>) -> bool {
    let query = request.uri().query().unwrap_or("");
    let user_agent = request.headers().get(header::USER_AGENT).map(HeaderValue::as_bytes).unwrap_or_default();
    query.split('&').any(|p| matches!(p, "pretty=true" | "pretty=1" | "pretty"))
        || [&b"curl"[..], b"Wget", b"Mozilla/"].iter().any(|p| user_agent.starts_with(p))
}

/// kube-apiserver's `Warning` header for a request to a deprecated API, which its handler adds to
/// every answer past authorization (kubectl prints it as `Warning: …`): core v1 Endpoints since
/// Kubernetes 1.33, the version emu reports.
fn deprecation_warning(request: &Request<Bytes>) -> Option<&'static str> {
    // The request was parsed once already; only one naming endpoints is worth parsing again.
    if !request.uri().path().split('/').any(|segment| segment == "endpoints") {
        return None;
    }
    let info = RequestInfo::parse(request.method().as_str(), request.uri().path(), request.uri().query().unwrap_or("")).ok()?;
    (info.resource_request && info.group.is_empty() && info.version == "v1" && info.resource == "endpoints")
        .then_some("299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\"")
}

/// An answer with the headers kube-apiserver sends (minus its audit id); hyper adds `Date` and
/// `Content-Length`.
fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    with_headers(status, content_type, Full::new(body.into()).map_err(|never| match never {}).boxed())
}

/// What a pod answered through the proxy subresource, with its own headers (hyper sets the
/// length).
fn proxied(answer: rest::Proxied) -> Response<Body> {
    let mut response = Response::new(Full::new(answer.body).map_err(|never| match never {}).boxed());
    *response.status_mut() = status_code(answer.status);
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    response
}

/// A streamed answer: hyper writes the head at once and the body in chunks as they come
/// (`Transfer-Encoding: chunked`), each flushed, until the stream ends.
fn streamed(stream: rest::Stream) -> Response<Body> {
    let chunks = futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(stream.body), |bytes| Ok(Frame::data(bytes)));
    with_headers(status_code(stream.status), stream.content_type, StreamBody::new(chunks).boxed())
}

fn with_headers(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    reply(status, "application/json", body)
}

/// kube-apiserver's answer to a body over [`MAX_BODY`].
fn too_large() -> Response<Body> {
    failure(&ApiError::too_large(MAX_BODY), false)
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

pub(crate) use emu_proto::x509::subject_names;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ClusterPki;
    use rustls::pki_types::ServerName;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    /// An authenticator that accepts no token.
    fn no_tokens(_: &str) -> Option<User> {
        None
    }

    /// The 403 an anonymous-style non-resource denial gets, compact.
    fn forbidden_body(user: &str, verb: &str, path: &str) -> String {
        ApiError::forbidden(format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""), "", "", "").to_json(false)
    }

    fn admin() -> User {
        User::from_certificate("kubernetes-admin", &["system:masters".to_string()])
    }

    #[test]
    fn client_certificates_speak_for_their_subject() {
        let r = router(Arc::new(no_tokens));
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        // system:masters may do everything; without a store no resource is found.
        let (status, content_type, body) = ask_as(&r, Some(&admin()), "GET", "/api", &[("Accept", aggregated)]);
        assert_eq!((status, content_type.as_str()), (200, discovery::AGGREGATED_CONTENT_TYPE));
        assert!(body.starts_with("{\"kind\":\"APIGroupDiscoveryList\""), "{body}");
        let (status, _, body) = ask_as(&r, Some(&admin()), "GET", "/api/v1/namespaces/default/pods", &[]);
        assert_eq!(status, 404, "{body}");
        // A certificate wins over a token that would be refused, as kube-apiserver's union of
        // authenticators stops at the first that succeeds.
        assert_eq!(ask_as(&r, Some(&admin()), "GET", "/apis", &[("Authorization", "Bearer forged")]).0, 200);
        // Another user of the CA: authenticated, so discovery, but nothing else.
        let alice = User::from_certificate("alice", &["dev".to_string()]);
        assert_eq!(ask_as(&r, Some(&alice), "GET", "/apis/apps/v1", &[]).0, 200);
        let (status, _, body) = ask_as(&r, Some(&alice), "GET", "/apis/apps/v1/namespaces/ns/deployments/d", &[]);
        assert_eq!(status, 403);
        assert!(
            body.contains("\"message\":\"deployments.apps \\\"d\\\" is forbidden: User \\\"alice\\\" cannot get resource \\\"deployments\\\" in API group \\\"apps\\\" in the namespace \\\"ns\\\"\""),
            "{body}"
        );
        assert!(body.contains("\"details\":{\"name\":\"d\",\"group\":\"apps\",\"kind\":\"deployments\"}"), "{body}");
    }

    #[test]
    fn resources_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("store.redb")).unwrap();
        let config = serde_json::from_value(serde_json::json!({"name": "t", "nodes": [], "fabricCidr": "172.18.0.0/16",
            "podCidr": "10.244.0.0/16", "nodePrefix": 24, "serviceCidr": "10.96.0.0/12"}))
        .unwrap();
        let shared = Shared::new(store, config);
        shared
            .store
            .create(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "c"}]}}))
            .unwrap();
        let r = Router { version: VERSION, authn: Arc::new(no_tokens), shared: Some(shared) };
        let get = |target: &str, accept: &str| ask_as(&r, Some(&admin()), "GET", target, &[("Accept", accept)]);
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let (status, content_type, body) = get("/api/v1/namespaces/default/pods?limit=500", table);
        assert_eq!((status, content_type.as_str()), (200, "application/json;as=Table;v=v1;g=meta.k8s.io"));
        assert!(body.starts_with("{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\""), "{body}");
        let (status, content_type, body) = get("/api/v1/namespaces/default/pods/web", "application/json");
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(body.contains("\"name\":\"web\""), "{body}");
        let (status, _, body) = get("/api/v1/namespaces/default/pods/nope", table);
        assert_eq!(status, 404);
        assert!(body.contains("\"message\":\"pods \\\"nope\\\" not found\""), "{body}");
        let (status, _, body) = get("/api/v1/pods", "application/vnd.kubernetes.protobuf");
        assert_eq!((status, body.contains("\"reason\":\"NotAcceptable\"")), (406, true), "{body}");
        // The anonymous user is refused before anything is looked up.
        assert_eq!(ask(&r, "GET", "/api/v1/namespaces/default/pods/nope", &[]).0, 403);
    }

    #[test]
    fn discovery_documents_by_path_and_accept() {
        let r = router(Arc::new(no_tokens));
        let get = |target: &str, headers: &[(&str, &str)]| ask_as(&r, Some(&admin()), "GET", target, headers);
        let (status, content_type, body) = get("/api", &[("Host", "127.0.0.1:6443")]);
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(body.contains("\"kind\":\"APIVersions\"") && body.contains("\"serverAddress\":\"127.0.0.1:6443\""), "{body}");
        assert!(get("/apis", &[]).2.contains("\"kind\":\"APIGroupList\""));
        assert!(get("/api/v1", &[]).2.contains("\"kind\":\"APIResourceList\""));
        assert!(get("/apis/apps", &[]).2.contains("\"kind\":\"APIGroup\""));
        assert!(get("/apis/discovery.k8s.io/v1", &[]).2.contains("\"groupVersion\":\"discovery.k8s.io/v1\""));
        for missing in ["/apis/policy", "/apis/apps/v2", "/api/v2", "/metrics", "/apis/apps/v1/x/y"] {
            let (status, _, body) = get(missing, &[]);
            assert_eq!(status, 404, "{missing}");
            assert!(body.contains("the server could not find the requested resource"), "{body}");
        }
        assert_eq!(ask_as(&r, Some(&admin()), "POST", "/api", &[]).0, 405);

        // The aggregated form carries an ETag; asking again with it gets 304 and no body.
        let accept = ("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
        let request = Request::get("/apis").header(accept.0, accept.1).body(Bytes::new()).unwrap();
        let response = futures::executor::block_on(r.route(&request, Some(&admin()), None));
        assert_eq!(response.status(), 200);
        let etag = response.headers()[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(response.headers()[header::VARY], "Accept");
        let again = Request::get("/apis").header(accept.0, accept.1).header("If-None-Match", &etag).body(Bytes::new()).unwrap();
        let (status, _, body) = {
            let response = futures::executor::block_on(r.route(&again, Some(&admin()), None));
            let status = response.status().as_u16();
            let body = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
            (status, (), body)
        };
        assert_eq!((status, body.len()), (304, 0));
    }

    #[test]
    fn openapi_v2_as_json_or_protobuf() {
        let r = router(Arc::new(no_tokens));
        let get = |headers: &[(&str, &str)]| {
            let mut request = Request::get("/openapi/v2");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = futures::executor::block_on(r.route(&request.body(Bytes::new()).unwrap(), Some(&admin()), None));
            let text = |name| response.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_string()).unwrap_or_default();
            let (status, content_type, etag) = (response.status().as_u16(), text(header::CONTENT_TYPE), text(header::ETAG));
            let body = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
            (status, content_type, etag, body)
        };
        let (status, content_type, etag, body) = get(&[]);
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["swagger"], "2.0");
        assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");
        // What client-go's discovery asks for: gnostic's protobuf, under kube-apiserver's media type.
        let (status, content_type, pb_etag, body) = get(&[("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")]);
        assert_eq!((status, content_type.as_str(), &pb_etag), (200, rest::openapi_v2::PROTOBUF, &etag));
        let doc = <emu_proto::openapi_v2::Document as prost::Message>::decode(body).unwrap();
        assert_eq!(doc.swagger, "2.0");
        let (status, _, _, body) = get(&[("Accept", "application/json"), ("If-None-Match", &etag)]);
        assert_eq!((status, body.len()), (304, 0));
        assert_eq!(get(&[("Accept", "text/html")]).0, 406);
    }

    #[test]
    fn certificate_subjects() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        // (rcgen keeps one value per attribute type: one O here.)
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
        params.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes-admin");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_names(cert.der()), Some((Some("kubernetes-admin".to_string()), vec!["system:masters".to_string()])));
        let mut bare = rcgen::CertificateParams::default();
        bare.distinguished_name = rcgen::DistinguishedName::new();
        assert_eq!(subject_names(bare.self_signed(&key).unwrap().der()), Some((None, vec![])));
        assert_eq!(subject_names(b"\x30\x03\x02\x01"), None);
        assert_eq!(subject_names(&[]), None);
    }

    #[test]
    fn websocket_accept_key() {
        // RFC 6455's example.
        assert_eq!(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn router(authn: Authenticator) -> Router {
        Router { version: VERSION, authn, shared: None }
    }

    /// `method target` with `headers`, routed: (status, content type, body).
    fn ask(router: &Router, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        ask_as(router, None, method, target, headers)
    }

    /// [`ask`] on a connection whose client certificate is `client`'s.
    fn ask_as(router: &Router, client: Option<&User>, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let mut request = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = futures::executor::block_on(router.route(&request.body(Bytes::new()).unwrap(), client, None));
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();
        let status = response.status().as_u16();
        let body = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn routes() {
        let r = router(Arc::new(no_tokens));
        let get = |target: &str, headers: &[(&str, &str)]| ask(&r, "GET", target, headers);
        let (status, content_type, body) = get("/version?timeout=32s", &[("Host", "kubernetes")]);
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(body.contains("\"gitVersion\": \"v1.33.0\""));
        for path in ["/healthz", "/livez", "/readyz"] {
            assert_eq!(get(path, &[]), (200, "text/plain; charset=utf-8".into(), "ok".into()), "{path}");
        }
        let (status, _, body) = get("/api", &[("User-Agent", "kubectl/v1.33.0")]);
        assert_eq!(status, 403);
        assert_eq!(
            body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/api\\\"\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
        );
        // A write to an allowed path is forbidden too, with RBAC's verb in the message; so is HEAD.
        let (status, _, body) = ask(&r, "POST", "/version", &[("Content-Length", "0")]);
        assert_eq!(status, 403);
        assert!(body.contains("cannot post path \\\"/version\\\""), "{body}");
        assert!(ask(&r, "HEAD", "/healthz", &[]).2.contains("cannot head path \\\"/healthz\\\""));
        // Sub-checks are not public, as under the default RBAC roles.
        assert_eq!(get("/readyz/ping", &[]).0, 403);
    }

    #[test]
    fn answers_carry_kube_apiservers_headers() {
        let response = futures::executor::block_on(router(Arc::new(no_tokens)).route(
            &Request::get("/healthz").body(Bytes::new()).unwrap(),
            None,
            None,
        ));
        let headers: Vec<(&str, &str)> = response.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        assert_eq!(
            headers,
            [("cache-control", "no-cache, private"), ("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")]
        );
    }

    #[test]
    fn bearer_tokens_are_authenticated_before_anything_is_authorized() {
        let r = router(Arc::new(|t: &str| (t == "good").then(|| User::from_token("system:serviceaccount:default:default"))));
        let (status, _, body) = ask(&r, "GET", "/api/v1/namespaces/default/pods", &[("Authorization", "Bearer good")]);
        assert_eq!(status, 403);
        assert_eq!(
            body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods is forbidden: User \\\"system:serviceaccount:default:default\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" in the namespace \\\"default\\\"\",\"reason\":\"Forbidden\",\"details\":{\"kind\":\"pods\"},\"code\":403}\n"
        );
        // An authenticated user may read discovery (system:discovery), an anonymous one not.
        assert_eq!(ask(&r, "GET", "/api", &[("Authorization", "Bearer good")]).0, 200);
        assert_eq!(ask(&r, "GET", "/version", &[("authorization", "bearer good")]).0, 200);
        // A token it does not accept: 401 wherever it goes, kube-apiserver's Status without details.
        for path in ["/version", "/api"] {
            let (status, _, body) = ask(&r, "GET", path, &[("Authorization", "Bearer forged")]);
            assert_eq!(status, 401, "{path}");
            assert_eq!(body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n");
        }
        // Bytes that are not text do not make a valid token either.
        let value = HeaderValue::from_bytes(b"Bearer go\xffod").unwrap();
        let request = Request::get("/version").header(header::AUTHORIZATION, value).body(Bytes::new()).unwrap();
        assert_eq!(futures::executor::block_on(r.route(&request, None, None)).status(), 401);
    }

    #[test]
    fn curl_gets_indented_json() {
        let (_, _, body) = ask(&router(Arc::new(no_tokens)), "GET", "/api/v1/pods?pretty", &[("user-agent", "curl/7.88.1")]);
        assert_eq!(
            body,
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"status\": \"Failure\",\n  \"message\": \"pods is forbidden: User \\\"system:anonymous\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" at the cluster scope\",\n  \"reason\": \"Forbidden\",\n  \"details\": {\n    \"kind\": \"pods\"\n  },\n  \"code\": 403\n}"
        );
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
        let tls = acceptor(&cert, &key, pki.ca_pem()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_with(listener, tls, Arc::new(router(Arc::new(no_tokens))), stopped, timeout));
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

    /// A client certificate for CN `user` in O `group`, issued by the cluster CA in `dir` as the
    /// kubeconfig's is ([`crate::pki::ClusterPki::client_cert`]), or self-signed: (certificate,
    /// key) DER.
    fn client_cert(dir: &Path, user: &str, group: &str, by_ca: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        if by_ca {
            let (cert, key) = crate::pki::ClusterPki::load(dir).unwrap().client_cert(user, group).unwrap();
            return (CertificateDer::from_pem_slice(cert.as_bytes()).unwrap(), PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap());
        }
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, group);
        params.distinguished_name.push(rcgen::DnType::CommonName, user);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), PrivateKeyDer::try_from(key.serialize_der()).unwrap())
    }

    /// GET `path` over TLS presenting `identity`'s certificate: (status, body).
    async fn get_with_cert(
        port: u16,
        ca_pem: &str,
        identity: (CertificateDer<'static>, PrivateKeyDer<'static>),
        path: &str,
    ) -> io::Result<(u16, String)> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![identity.0], identity.1)
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("kubernetes").unwrap(), tcp).await?;
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        tls.flush().await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        Ok((head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned()))
    }

    #[tokio::test]
    async fn client_certificates_of_the_cluster_ca_authenticate_over_tls() {
        let server = start(CONNECTION_TIMEOUT).await;
        let (dir, ca) = (server.dir.path(), server.ca_pem.as_str());
        // The admin: system:masters reads discovery and everything (no store here: 404).
        let (status, body) =
            get_with_cert(server.port, ca, client_cert(dir, "kubernetes-admin", "system:masters", true), "/apis").await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            get_with_cert(server.port, ca, client_cert(dir, "kubernetes-admin", "system:masters", true), "/api/v1/pods").await.unwrap().0,
            404
        );
        // Another user of the CA is that user.
        let (status, body) = get_with_cert(server.port, ca, client_cert(dir, "alice", "dev", true), "/api/v1/pods").await.unwrap();
        assert_eq!(status, 403);
        assert!(body.contains(r#"User \"alice\" cannot list resource \"pods\""#), "{body}");
        // A certificate the cluster CA did not sign ends the handshake.
        assert!(get_with_cert(server.port, ca, client_cert(dir, "mallory", "system:masters", false), "/apis").await.is_err());
    }

    /// Sends `request` as written over TLS (SNI `kubernetes.default.svc`) and reads until the
    /// server closes; read_to_string fails on a close without close_notify, so this also checks a
    /// clean end.
    async fn raw(port: u16, ca_pem: Option<&str>, request: &[u8]) -> io::Result<String> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("kubernetes.default.svc").unwrap();
        let mut tls = client(ca_pem).connect(name, tcp).await?;
        tls.write_all(request).await?;
        // A TLS stream may keep written records buffered until flushed.
        tls.flush().await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// GET `path` as an in-cluster client would; (status, body).
    async fn get(port: u16, ca_pem: Option<&str>, path: &str) -> io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: kubernetes.default.svc\r\nUser-Agent: emu-test\r\nConnection: close\r\n\r\n");
        let answer = raw(port, ca_pem, request.as_bytes()).await?;
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
    async fn the_answer_on_the_wire() {
        let server = start(CONNECTION_TIMEOUT).await;
        let ca = Some(server.ca_pem.as_str());
        let answer = raw(server.port, ca, b"GET /healthz HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n").await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let mut lines: Vec<&str> = head.lines().collect();
        let date = lines.iter().position(|l| l.starts_with("Date: ")).expect("a Date header");
        assert!(lines.remove(date).ends_with(" GMT"), "{head}");
        assert_eq!(
            lines,
            [
                "HTTP/1.1 200 OK",
                "Cache-Control: no-cache, private",
                "Content-Type: text/plain; charset=utf-8",
                "X-Content-Type-Options: nosniff",
                "Connection: close",
                "Content-Length: 2"
            ]
        );
        assert_eq!(body, "ok");
        // HEAD: the headers of the answer GET would get, the length included, and no body.
        let answer = raw(server.port, ca, b"HEAD /version HTTP/1.1\r\nHost: kubernetes\r\nUser-Agent: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 403 Forbidden\r\n")
                && answer.contains(&format!("Content-Length: {}\r\n", forbidden_body("system:anonymous", "head", "/version").len()))
                && answer.ends_with("\r\n\r\n"),
            "{answer:?}"
        );
        // Bare LF line ends are accepted, as HTTP allows recipients to.
        let answer = raw(server.port, ca, b"GET /healthz HTTP/1.0\n\n").await.unwrap();
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n") && answer.ends_with("\r\n\r\nok"), "{answer:?}");
    }

    #[tokio::test]
    async fn requests_on_one_connection() {
        let server = start(CONNECTION_TIMEOUT).await;
        let ca = Some(server.ca_pem.as_str());
        // Kept alive: three requests, a body the router is given whole, the last asking to close.
        let requests = "GET /healthz HTTP/1.1\r\nHost: k\r\n\r\nPOST /api/v1/namespaces HTTP/1.1\r\nHost: k\r\nUser-Agent: x\r\nContent-Length: 5\r\n\r\nhello\
                        GET /livez HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n";
        let answer = raw(server.port, ca, requests.as_bytes()).await.unwrap();
        let statuses: Vec<&str> = answer.match_indices("HTTP/1.1 ").map(|(i, _)| &answer[i + 9..i + 12]).collect();
        assert_eq!(statuses, ["200", "403", "200"], "{answer}");
        assert!(answer.contains("cannot create resource \\\"namespaces\\\" in API group \\\"\\\" at the cluster scope"), "{answer}");
        // A body over the limit: kube-apiserver's 413.
        let head = format!("POST /api/v1/namespaces HTTP/1.1\r\nHost: k\r\nUser-Agent: x\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        let tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        let mut tls = client(ca).connect(ServerName::try_from("kubernetes").unwrap(), tcp).await.unwrap();
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&vec![b'x'; MAX_BODY + 1]).await.unwrap();
        tls.flush().await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tls.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{answer}");
        assert!(
            answer.ends_with(
                "\"message\":\"Request entity too large: limit is 3145728\",\"reason\":\"RequestEntityTooLarge\",\"code\":413}\n"
            ),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn malformed_requests_get_400() {
        let server = start(CONNECTION_TIMEOUT).await;
        let ca = Some(server.ca_pem.as_str());
        for request in [
            &b"GET\r\n\r\n"[..],
            b"GET /version\r\n\r\n",
            b"GET /version SPDY/3\r\n\r\n",
            b"\x00\x01\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let answer = raw(server.port, ca, request).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{request:?}: {answer:?}");
        }
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
        // So does one that shakes hands and then says nothing, or stops in the middle of a body.
        for request in [&b""[..], b"POST /api HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"] {
            let tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
            let mut tls = client(ca).connect(ServerName::try_from("kubernetes").unwrap(), tcp).await.unwrap();
            tls.write_all(request).await.unwrap();
            tls.flush().await.unwrap();
            let mut sink = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut sink)).await;
            assert!(closed.is_ok(), "a silent client must be dropped after the timeout ({request:?})");
        }
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
