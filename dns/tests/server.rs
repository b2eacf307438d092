//! The server over real sockets, on loopback with ports chosen by the kernel and a fixed
//! catalog (no controller): what `dig` or a pod's resolver would see over UDP and TCP, a
//! truncated UDP answer asked again over TCP, catalog swaps, and the HTTP endpoints.

use emu_dns::{Catalog, CatalogConfig, DnsServer, ServerOptions, SharedCatalog};
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Enough endpoints that their A records do not fit in 512 bytes (16 bytes each with name
/// compression, plus the name and header).
const BIG_HEADLESS_ENDPOINTS: usize = 60;

fn objects() -> Vec<Value> {
    let endpoints: Vec<Value> = (0..BIG_HEADLESS_ENDPOINTS)
        .map(|i| json!({"addresses": [format!("10.244.1.{}", i + 10)], "conditions": {"ready": true}}))
        .collect();
    vec![
        json!({"kind": "Namespace", "metadata": {"name": "default"}}),
        json!({"kind": "Service", "metadata": {"name": "my-nginx", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        json!({"kind": "Service", "metadata": {"name": "big", "namespace": "default"}, "spec": {"clusterIP": "None", "ports": []}}),
        json!({"kind": "EndpointSlice", "metadata": {"name": "big-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "big"}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": null}),
    ]
}

fn synced_catalog(objects: &[Value]) -> Catalog {
    Catalog::build(objects, CatalogConfig::default(), 1)
}

fn loopback_options() -> ServerOptions {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    ServerOptions { dns: loopback, metrics: Some(loopback), health: Some(loopback), ready: Some(loopback), ..ServerOptions::default() }
}

/// Starts a server; it stops when the test's runtime ends.
async fn start(catalog: Catalog) -> (emu_dns::BoundAddrs, Arc<SharedCatalog>) {
    let shared = Arc::new(SharedCatalog::new(catalog));
    let server = DnsServer::bind(&loopback_options(), shared.clone()).await.expect("bind on loopback");
    let addrs = server.addrs().clone();
    assert_eq!(addrs.dns_udp.port(), addrs.dns_tcp.port(), "UDP and TCP share the port");
    tokio::spawn(server.run());
    (addrs, shared)
}

fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::new(0x1234, hickory_proto::op::MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        m.edns = Some(edns);
    }
    m
}

async fn ask_udp(server: SocketAddr, message: &Message) -> (Message, usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&message.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(TIMEOUT, socket.recv_from(&mut buf)).await.expect("UDP answer in time").unwrap();
    (Message::from_vec(&buf[..n]).expect("a DNS message"), n)
}

/// DNS over TCP: each message behind a two-byte length.
async fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = message.to_vec().unwrap();
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut len)).await.expect("TCP answer in time").unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).expect("a DNS message")
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_string(&mut text)).await.expect("HTTP reply in time").unwrap();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let (addrs, _) = start(synced_catalog(&objects())).await;
    let q = query("My-Nginx.default.svc.cluster.local.", RecordType::A, None);
    for m in [ask_udp(addrs.dns_udp, &q).await.0, ask_tcp(addrs.dns_tcp, &q).await] {
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired && !m.metadata.recursion_available && !m.metadata.truncation);
        assert_eq!(m.queries[0].name().to_ascii(), "My-Nginx.default.svc.cluster.local.", "question echoed as asked");
        assert_eq!(a_records(&m), ["10.96.0.11"]);
        assert_eq!(m.answers[0].name.to_ascii(), "My-Nginx.default.svc.cluster.local.");
        assert_eq!(m.answers[0].ttl, 30);
    }
    // The answer's name is a pointer to the question: header 12 + question 36 + 4, answer
    // 2 + 10 + 4 bytes, as CoreDNS and dnsmasq send it.
    assert_eq!(ask_udp(addrs.dns_udp, &q).await.1, 68, "UDP answer compressed");
}

#[tokio::test]
async fn negative_answers_carry_the_soa_and_outside_names_are_nxdomain() {
    let (addrs, _) = start(synced_catalog(&objects())).await;
    let (m, _) = ask_udp(addrs.dns_udp, &query("my-nginx.default.svc.cluster.local.", RecordType::AAAA, None)).await;
    assert_eq!((m.metadata.response_code, m.answers.len(), m.authorities.len()), (ResponseCode::NoError, 0, 1));
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    let started = std::time::Instant::now();
    let (m, _) = ask_udp(addrs.dns_udp, &query("www.example.com.", RecordType::A, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authoritative && !m.metadata.recursion_available);
    assert!(started.elapsed() < Duration::from_secs(1), "answered at once, never forwarded");
}

#[tokio::test]
async fn large_udp_answer_is_truncated_and_whole_over_tcp() {
    let (addrs, _) = start(synced_catalog(&objects())).await;
    let q = query("big.default.svc.cluster.local.", RecordType::A, None);
    let (udp, size) = ask_udp(addrs.dns_udp, &q).await;
    assert!(udp.metadata.truncation, "TC set");
    assert!(size <= 512, "no EDNS: at most 512 bytes, got {size}");
    assert!(udp.answers.len() < BIG_HEADLESS_ENDPOINTS);

    // What a resolver does next: the same question over TCP.
    let tcp = ask_tcp(addrs.dns_tcp, &q).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(a_records(&tcp).len(), BIG_HEADLESS_ENDPOINTS);

    // A client offering a larger UDP size through EDNS gets it all over UDP, with an OPT back.
    let (udp, size) = ask_udp(addrs.dns_udp, &query("big.default.svc.cluster.local.", RecordType::A, Some(4096))).await;
    assert!(!udp.metadata.truncation && size > 512);
    assert_eq!(a_records(&udp).len(), BIG_HEADLESS_ENDPOINTS);
    assert_eq!(udp.edns.as_ref().map(Edns::max_payload), Some(4096));
}

#[tokio::test]
async fn a_new_catalog_is_answered_at_once() {
    let (addrs, shared) = start(synced_catalog(&objects())).await;
    let q = query("late.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(ask_udp(addrs.dns_udp, &q).await.0.metadata.response_code, ResponseCode::NXDomain);
    let mut objects = objects();
    objects.push(json!({"kind": "Service", "metadata": {"name": "late", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.99"}}));
    shared.store(synced_catalog(&objects));
    assert_eq!(a_records(&ask_udp(addrs.dns_udp, &q).await.0), ["10.96.0.99"]);
}

#[tokio::test]
async fn malformed_requests_get_errors() {
    let (addrs, _) = start(synced_catalog(&objects())).await;
    let mut no_question = query("x.", RecordType::A, None);
    no_question.queries.clear();
    assert_eq!(ask_udp(addrs.dns_udp, &no_question).await.0.metadata.response_code, ResponseCode::FormErr);
    let mut notify = query("cluster.local.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(ask_udp(addrs.dns_udp, &notify).await.0.metadata.response_code, ResponseCode::NotImp);
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let (addrs, _) = start(synced_catalog(&objects())).await;
    ask_udp(addrs.dns_udp, &query("my-nginx.default.svc.cluster.local.", RecordType::A, None)).await;
    ask_udp(addrs.dns_udp, &query("nope.default.svc.cluster.local.", RecordType::A, None)).await;
    ask_tcp(addrs.dns_tcp, &query("_http._tcp.my-nginx.default.svc.cluster.local.", RecordType::SRV, None)).await;

    let (status, text) = http_get(addrs.metrics.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let base = format!("server=\"dns://{}\",zone=\".\",view=\"\"", addrs.dns_udp);
    for expected in [
        format!("coredns_dns_requests_total{{{base},proto=\"udp\",family=\"1\",type=\"A\"}} 2"),
        format!("coredns_dns_requests_total{{{base},proto=\"tcp\",family=\"1\",type=\"SRV\"}} 1"),
        format!("coredns_dns_responses_total{{{base},rcode=\"NOERROR\",plugin=\"kubernetes\"}} 2"),
        format!("coredns_dns_responses_total{{{base},rcode=\"NXDOMAIN\",plugin=\"kubernetes\"}} 1"),
        format!("coredns_dns_request_duration_seconds_count{{{base},type=\"A\"}} 2"),
        "emu_dns_synced 1".to_string(),
        "emu_dns_services 2".to_string(),
    ] {
        assert!(text.lines().any(|l| l == expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains(&format!("coredns_dns_request_duration_seconds_bucket{{{base},type=\"A\",le=\"+Inf\"}} 2")));
    assert_eq!(http_get(addrs.metrics.unwrap(), "/other").await.0, 404);
    assert_eq!(http_get(addrs.health.unwrap(), "/health").await, (200, "OK".to_string()));
    assert_eq!(http_get(addrs.ready.unwrap(), "/ready").await, (200, "OK".to_string()));
}

#[tokio::test]
async fn before_the_first_sync_cluster_names_fail_and_the_server_is_not_ready() {
    let (addrs, shared) = start(Catalog::unsynced(CatalogConfig::default())).await;
    let q = query("my-nginx.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(ask_udp(addrs.dns_udp, &q).await.0.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(http_get(addrs.ready.unwrap(), "/ready").await.0, 503);
    shared.store(synced_catalog(&objects()));
    assert_eq!(a_records(&ask_udp(addrs.dns_udp, &q).await.0), ["10.96.0.11"]);
    assert_eq!(http_get(addrs.ready.unwrap(), "/ready").await.0, 200);
}
