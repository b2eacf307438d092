//! The DNS server: our own request handler, which asks [`answer`](crate::answer::answer) and
//! sends the result, behind a UDP loop of our own and hickory-server's TCP loop; plus the
//! metrics, health and readiness endpoints.
//!
//! UDP is served by one thread that receives (several queries per system call when they queue
//! up), answers and sends, with no task or channel per query: hickory-server's UDP loop spawns a task per query and hands each answer to the
//! socket's task through a channel, which made emu answer fewer queries a second than dnsmasq
//! on the same machine.
//!
//! UDP answers are cut to 512 bytes, or to the size the client's EDNS record offers, by
//! hickory's encoder, which sets the TC bit on a cut answer; the client then asks again over
//! TCP, where answers go out whole.

use crate::answer::{self, Response};
use crate::catalog::Catalog;
use crate::http::{self, Reply, Router};
use crate::metrics::{Metrics, Observation, Transport};
use crate::udp_batch::BatchReceiver;
use hickory_proto::op::{emit_message_parts, Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

/// The catalog the server answers from, replaced whole on every change. Readers take an `Arc`
/// and never wait for a rebuild; a writer holds the lock only for the pointer swap.
pub struct SharedCatalog {
    current: RwLock<Arc<Catalog>>,
}

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> Self {
        Self { current: RwLock::new(Arc::new(catalog)) }
    }

    pub fn load(&self) -> Arc<Catalog> {
        // A poisoned lock still holds a complete catalog: the swap cannot panic half-way.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self, catalog: Catalog) {
        let new = Arc::new(catalog);
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), new);
        // Freeing a large catalog takes a while: not while readers wait for the lock.
        drop(old);
    }
}

/// Where to listen. `None` leaves an HTTP endpoint off.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// UDP and TCP, same address. Port 0 picks one free port for both (tests).
    pub dns: SocketAddr,
    /// `/metrics`, Prometheus text (CoreDNS: `prometheus :9153`).
    pub metrics: Option<SocketAddr>,
    /// `/health`, 200 while the process runs (CoreDNS: `health`, port 8080).
    pub health: Option<SocketAddr>,
    /// `/ready`, 200 once synced with the controller, 503 before (CoreDNS: `ready`, port 8181).
    pub ready: Option<SocketAddr>,
    /// A TCP connection that sends no query for this long is closed.
    pub tcp_idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        Self {
            dns: any(53),
            metrics: Some(any(9153)),
            health: Some(any(8080)),
            ready: Some(any(8181)),
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The addresses actually bound (ports resolved when 0 was asked for).
#[derive(Debug, Clone)]
pub struct BoundAddrs {
    pub dns_udp: SocketAddr,
    pub dns_tcp: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub health: Option<SocketAddr>,
    pub ready: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {what} on {addr}: {source} (is another DNS server running there?)")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("DNS server stopped: {0}")]
    Stopped(String),
}

/// A bound server; [`DnsServer::run`] serves until the DNS sockets fail.
pub struct DnsServer {
    /// TCP only; UDP is `udp`.
    dns: hickory_server::Server<Handler>,
    udp: UdpLoop,
    http: JoinSet<()>,
    addrs: BoundAddrs,
}

/// `/metrics` is served with the version of the text format it uses.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Per TCP connection: answers queued before the writer sends them.
const TCP_RESPONSE_BUFFER: usize = 32;

impl DnsServer {
    /// Binds every socket (so that errors show at start-up) and starts the HTTP endpoints.
    pub async fn bind(options: &ServerOptions, catalog: Arc<SharedCatalog>) -> Result<Self, ServerError> {
        let (udp, tcp) = bind_dns(options.dns).await?;
        let dns_udp = udp.local_addr().map_err(|source| ServerError::Bind { what: "DNS over UDP", addr: options.dns, source })?;
        let dns_tcp = tcp.local_addr().map_err(|source| ServerError::Bind { what: "DNS over TCP", addr: options.dns, source })?;
        let metrics = Arc::new(Metrics::new(format!("dns://{}", display_listen(dns_udp))));

        let mut http = JoinSet::new();
        let metrics_addr =
            bind_http(&mut http, "metrics endpoint", options.metrics, metrics_router(metrics.clone(), catalog.clone())).await?;
        let health = bind_http(&mut http, "health endpoint", options.health, health_router()).await?;
        let ready = bind_http(&mut http, "readiness endpoint", options.ready, ready_router(catalog.clone())).await?;

        let handler = Handler { catalog, metrics };
        let socket = udp.into_std().map_err(|source| ServerError::Bind { what: "DNS over UDP", addr: dns_udp, source })?;
        let udp =
            UdpLoop::start(socket, handler.clone()).map_err(|source| ServerError::Bind { what: "DNS over UDP", addr: dns_udp, source })?;
        let mut dns = hickory_server::Server::new(handler);
        dns.register_listener(tcp, options.tcp_idle_timeout, TCP_RESPONSE_BUFFER);
        Ok(Self { dns, udp, http, addrs: BoundAddrs { dns_udp, dns_tcp, metrics: metrics_addr, health, ready } })
    }

    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// Serves until the DNS sockets fail (the HTTP endpoints stop with it).
    pub async fn run(mut self) -> Result<(), ServerError> {
        let result = tokio::select! {
            r = self.dns.block_until_done() => r.map_err(|e| ServerError::Stopped(e.to_string())),
            e = &mut self.udp.failed => Err(ServerError::Stopped(match e {
                Ok(e) => format!("DNS over UDP: {e}"),
                Err(_) => "the DNS over UDP thread ended".to_string(),
            })),
        };
        self.http.abort_all();
        result
    }
}

/// The thread serving DNS over UDP; told to stop when the server is dropped.
struct UdpLoop {
    stop: Arc<AtomicBool>,
    /// The error the thread stopped on.
    failed: tokio::sync::oneshot::Receiver<std::io::Error>,
}

/// How often the UDP thread looks whether it should stop.
const UDP_STOP_CHECK: Duration = Duration::from_millis(500);

impl UdpLoop {
    fn start(socket: std::net::UdpSocket, handler: Handler) -> std::io::Result<UdpLoop> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(UDP_STOP_CHECK))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, failed) = tokio::sync::oneshot::channel();
        let stopping = stop.clone();
        std::thread::Builder::new().name("dns-udp".into()).spawn(move || {
            if let Err(e) = serve_udp(&socket, &handler, &stopping) {
                tracing::error!(error = %e, "DNS over UDP stopped");
                let _ = tx.send(e);
            }
        })?;
        Ok(UdpLoop { stop, failed })
    }
}

impl Drop for UdpLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Receives, answers, sends, until `stop` (Ok) or an error the socket cannot recover from.
fn serve_udp(socket: &std::net::UdpSocket, handler: &Handler, stop: &AtomicBool) -> std::io::Result<()> {
    // Datagrams up to the largest there is: a longer request would be cut and fail to parse.
    // Only the bytes received are ever touched, so the buffers cost little resident memory.
    let mut batch = BatchReceiver::new(UDP_BATCH, usize::from(u16::MAX));
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(socket) {
            Ok(received) => received,
            Err(e) if socket_unusable(&e) => return Err(e),
            // The stop check's timeout, a signal, an ICMP error about an earlier answer's client:
            // the socket still works.
            Err(_) => continue,
        };
        for (raw, src) in (0..received).filter_map(|i| batch.datagram(i)) {
            if let Some(reply) = handler.answer_datagram(raw, src) {
                if let Err(e) = socket.send_to(&reply, src) {
                    tracing::debug!(error = %e, client = %src, "sending a DNS response");
                }
            }
        }
    }
    Ok(())
}

/// Queries taken from the socket with one system call at most.
const UDP_BATCH: usize = 16;

/// CoreDNS labels its server `dns://:53` when it listens on every address.
fn display_listen(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!(":{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// UDP and TCP on the same port; with port 0, retries until both get the same free port.
async fn bind_dns(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), ServerError> {
    let udp_error = |source| ServerError::Bind { what: "DNS over UDP", addr, source };
    let tcp_error = |source| ServerError::Bind { what: "DNS over TCP", addr, source };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(udp_error)?;
        let tcp = TcpListener::bind(addr).await.map_err(tcp_error)?;
        return Ok((udp, tcp));
    }
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr).await.map_err(udp_error)?;
        let port = udp.local_addr().map_err(udp_error)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => attempts += 1,
            Err(e) => return Err(tcp_error(e)),
        }
    }
}

async fn bind_http(
    tasks: &mut JoinSet<()>,
    what: &'static str,
    addr: Option<SocketAddr>,
    router: Router,
) -> Result<Option<SocketAddr>, ServerError> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, source })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Bind { what, addr, source })?;
    tasks.spawn(http::serve(listener, router));
    Ok(Some(bound))
}

fn metrics_router(metrics: Arc<Metrics>, catalog: Arc<SharedCatalog>) -> Router {
    Arc::new(move |path| match path {
        "/metrics" => Reply { status: 200, content_type: METRICS_CONTENT_TYPE, body: metrics.render(&catalog_gauges(&catalog.load())) },
        _ => Reply::not_found(),
    })
}

/// emu's own gauges: what the catalog holds, and whether it is synced.
fn catalog_gauges(catalog: &Catalog) -> String {
    let (services, endpoints) = catalog.counts();
    format!(
        "# HELP emu_dns_synced Whether the server has the controller's full list of objects (1) or not yet (0).\n\
         # TYPE emu_dns_synced gauge\nemu_dns_synced {}\n\
         # HELP emu_dns_services Services in the catalog.\n# TYPE emu_dns_services gauge\nemu_dns_services {services}\n\
         # HELP emu_dns_endpoints Ready endpoint addresses in the catalog.\n# TYPE emu_dns_endpoints gauge\nemu_dns_endpoints {endpoints}\n",
        u8::from(catalog.is_synced())
    )
}

fn health_router() -> Router {
    Arc::new(|path| match path {
        "/health" => Reply::text(200, "OK"),
        _ => Reply::not_found(),
    })
}

/// Not ready before the first sync, so that the Service sends no queries to a replica that
/// would answer SERVFAIL. CoreDNS names the plugin that is not ready yet.
fn ready_router(catalog: Arc<SharedCatalog>) -> Router {
    Arc::new(move |path| match path {
        "/ready" if catalog.load().is_synced() => Reply::text(200, "OK"),
        "/ready" => Reply::text(503, "kubernetes"),
        _ => Reply::not_found(),
    })
}

/// Errors after which receiving again cannot succeed.
fn socket_unusable(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL))
}

/// Answers requests: those of the UDP thread, and those hickory-server's TCP loop parsed.
#[derive(Clone)]
struct Handler {
    catalog: Arc<SharedCatalog>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let started = Instant::now();
        let query = single_query(request);
        let (metadata, response) = self.respond(request, query);
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let message = builder.build(metadata, &response.answers, &response.authorities, [], &response.additionals);
        let info = match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, client = %request.src(), "sending a DNS response");
                let mut failed = metadata;
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata: failed, counts: HeaderCounts::default() })
            }
        };
        self.metrics.record(&Observation {
            transport: if request.protocol() == Protocol::Tcp { Transport::Tcp } else { Transport::Udp },
            ipv6_client: request.src().is_ipv6(),
            qtype: query.map(Query::query_type),
            rcode: info.response_code,
            in_cluster_zone: response.in_cluster_zone,
            elapsed: started.elapsed(),
        });
        info
    }
}

impl Handler {
    /// The bytes to send back for one UDP datagram; None when nothing is to be sent (not a DNS
    /// request: shorter than a header, or a response).
    fn answer_datagram(&self, raw: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let started = Instant::now();
        let header = Header::read(&mut BinDecoder::new(raw)).ok()?;
        if header.metadata.message_type == MessageType::Response {
            // Never answer a response: no reflection of our own answers.
            return None;
        }
        let request = match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(error = %e, client = %src, "unparsable DNS request");
                let none = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
                let message = MessageResponseBuilder::new(&none, None).error_msg(&header.metadata, ResponseCode::FormErr);
                let mut bytes = Vec::with_capacity(512);
                message.destructive_emit(&mut BinEncoder::new(&mut bytes)).ok()?;
                return Some(bytes);
            }
        };
        let query = single_query(&request);
        let (metadata, response) = self.respond(&request, query);
        let edns = response_edns(&request);
        // As hickory's encoder does for UDP: cut to what the client offers (RFC 6891), or to 512
        // bytes without EDNS (RFC 1035 4.2.1); a cut answer has TC set.
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(edns.as_ref().map_or(512, Edns::max_payload));
        // The question is encoded like the records (not copied from the request as hickory-server
        // does), so that answer names point at it: 65 bytes for an A answer instead of 97, as
        // CoreDNS and dnsmasq send.
        let encoded = emit_message_parts(
            &metadata,
            &mut request.queries.queries().iter().map(|q| q.original()),
            &mut response.answers.iter(),
            &mut response.authorities.iter(),
            &mut response.additionals.iter(),
            edns.as_ref(),
            None,
            &mut encoder,
        );
        let rcode = match encoded {
            Ok(header) => header.metadata.response_code,
            Err(e) => {
                tracing::warn!(error = %e, client = %src, "encoding a DNS response");
                bytes.clear();
                let message = MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, ResponseCode::ServFail);
                message.destructive_emit(&mut BinEncoder::new(&mut bytes)).ok()?;
                ResponseCode::ServFail
            }
        };
        self.metrics.record(&Observation {
            transport: Transport::Udp,
            ipv6_client: src.is_ipv6(),
            qtype: query.map(Query::query_type),
            rcode,
            in_cluster_zone: response.in_cluster_zone,
            elapsed: started.elapsed(),
        });
        Some(bytes)
    }

    /// The header and records to send. Synchronous: the random generator used for shuffling
    /// must not be held across an await.
    fn respond(&self, request: &Request, query: Option<&Query>) -> (Metadata, Response) {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let response = match query {
            _ if request.metadata.op_code != OpCode::Query => Response { rcode: ResponseCode::NotImp, ..Response::outside() },
            None => Response { rcode: ResponseCode::FormErr, ..Response::outside() },
            Some(query) => {
                let mut response = answer::answer(&self.catalog.load(), query);
                answer::shuffle_addresses(&mut response, &mut rand::rng());
                response
            }
        };
        metadata.response_code = response.rcode;
        metadata.authoritative = response.authoritative;
        // RA stays clear: this server does not recurse (CoreDNS's kubernetes answers do not set
        // it either, hence dig's "recursion requested but not available").
        (metadata, response)
    }
}

/// The question, if the request has exactly one (anything else is FORMERR, as RFC 9619 has it).
fn single_query(request: &Request) -> Option<&Query> {
    match request.queries.queries() {
        [query] => Some(query.original()),
        _ => None,
    }
}

/// An OPT record answers one in the request, offering the client's own UDP size, which is what
/// the encoder then cuts UDP answers to (at least 512 bytes, RFC 6891).
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref()?;
    let mut edns = Edns::new();
    edns.set_max_payload(request.max_payload());
    Some(edns)
}
