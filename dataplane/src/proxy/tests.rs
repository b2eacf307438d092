//! Tests of the proxy without root: the model, golden scripts, the packet tracer over the
//! rendered rules, and updates checked against full renders.

use super::trace::{self, load, Origin, Outcome, Packet, Proto, Table};
use super::*;
use emu_logic::ipam::Ipv4Cidr;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::PathBuf;

const NODE: &str = "node-a";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test IP")
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("test CIDR")
}

/// A Service object; `ports` are (name, protocol, port).
fn service(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, &str, u16)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, port)| {
            let mut v = json!({"protocol": p, "port": port, "targetPort": port});
            if !n.is_empty() {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "ports": ports},
    })
}

/// Endpoint conditions of a slice entry.
#[derive(Clone, Copy)]
enum Cond {
    Ready,
    NotReady,
    /// Shutting down but still passing its readiness probe.
    Terminating,
    /// Shutting down and no longer serving.
    Gone,
}

/// An EndpointSlice of `svc`; `ports` are (name, protocol, port), endpoints (ip, node, cond).
fn slice(ns: &str, svc: &str, name: &str, ports: &[(&str, &str, u16)], eps: &[(&str, &str, Cond)]) -> Value {
    let ports: Vec<Value> = ports.iter().map(|(n, p, port)| json!({"name": n, "protocol": p, "port": port})).collect();
    let eps: Vec<Value> = eps
        .iter()
        .map(|(ip, node, cond)| {
            let (ready, serving, terminating) = match cond {
                Cond::Ready => (true, true, false),
                Cond::NotReady => (false, false, false),
                Cond::Terminating => (false, true, true),
                Cond::Gone => (false, false, true),
            };
            let mut v = json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            });
            if !node.is_empty() {
                v["nodeName"] = json!(node);
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": ports, "endpoints": eps,
    })
}

fn input(services: &[Value], slices: &[Value]) -> ProxyInput {
    input_from_objects(NODE, cidr("10.244.0.0/16"), cidr("10.96.0.0/12"), services, slices)
}

/// The tutorial's cluster seen from node-a: `kubernetes`, `kube-dns` (UDP and TCP 53) and
/// `my-nginx` with one pod here and one on node-b.
fn tutorial() -> ProxyInput {
    input(
        &[
            service("default", "kubernetes", "10.96.0.1", &[("https", "TCP", 443)]),
            service("kube-system", "kube-dns", "10.96.0.10", &[("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]),
            service("default", "my-nginx", "10.96.0.20", &[("", "TCP", 80)]),
        ],
        &[
            slice("default", "kubernetes", "kubernetes", &[("https", "TCP", 6443)], &[("172.18.0.1", "", Cond::Ready)]),
            slice(
                "kube-system",
                "kube-dns",
                "kube-dns-abcde",
                &[("dns", "UDP", 53), ("dns-tcp", "TCP", 53)],
                &[("10.244.0.2", "node-a", Cond::Ready), ("10.244.1.2", "node-b", Cond::Ready)],
            ),
            slice(
                "default",
                "my-nginx",
                "my-nginx-fghij",
                &[("", "TCP", 80)],
                &[("10.244.1.5", "node-b", Cond::Ready), ("10.244.0.5", "node-a", Cond::Ready)],
            ),
        ],
    )
}

/// ClientIP affinity: `sticky` (default timeout) and `sticky-short` (60 s).
fn affinity() -> ProxyInput {
    let mut sticky = service("default", "sticky", "10.96.0.30", &[("http", "TCP", 80)]);
    sticky["spec"]["sessionAffinity"] = json!("ClientIP");
    let mut short = service("default", "sticky-short", "10.96.0.31", &[("", "UDP", 5000)]);
    short["spec"]["sessionAffinity"] = json!("ClientIP");
    short["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
    input(
        &[sticky, short],
        &[
            slice(
                "default",
                "sticky",
                "sticky-1",
                &[("http", "TCP", 8080)],
                &[("10.244.0.5", "node-a", Cond::Ready), ("10.244.1.5", "node-b", Cond::Ready)],
            ),
            slice("default", "sticky-short", "sticky-short-1", &[("", "UDP", 5000)], &[("10.244.1.6", "node-b", Cond::Ready)]),
        ],
    )
}

/// The corner cases: no endpoints, only not-ready ones, internalTrafficPolicy Local with and
/// without a local endpoint, terminating fallback, SCTP, and a named port that resolves to
/// different numbers on different pods.
fn edge() -> ProxyInput {
    let mut local_none = service("apps", "local-none", "10.96.1.3", &[("", "TCP", 80)]);
    local_none["spec"]["internalTrafficPolicy"] = json!("Local");
    let mut local_here = service("apps", "local-here", "10.96.1.4", &[("", "TCP", 80)]);
    local_here["spec"]["internalTrafficPolicy"] = json!("Local");
    input(
        &[
            service("apps", "empty", "10.96.1.1", &[("", "TCP", 80)]),
            service("apps", "unready", "10.96.1.2", &[("", "TCP", 80)]),
            local_none,
            local_here,
            service("apps", "draining", "10.96.1.5", &[("", "TCP", 80)]),
            service("apps", "signal", "10.96.1.6", &[("", "SCTP", 9999)]),
            service("apps", "named", "10.96.1.7", &[("http", "TCP", 80)]),
        ],
        &[
            slice("apps", "empty", "empty-1", &[], &[]),
            slice("apps", "unready", "unready-1", &[("", "TCP", 80)], &[("10.244.0.10", "node-a", Cond::NotReady)]),
            slice("apps", "local-none", "local-none-1", &[("", "TCP", 80)], &[("10.244.1.11", "node-b", Cond::Ready)]),
            slice(
                "apps",
                "local-here",
                "local-here-1",
                &[("", "TCP", 80)],
                &[("10.244.0.12", "node-a", Cond::Ready), ("10.244.1.12", "node-b", Cond::Ready)],
            ),
            slice(
                "apps",
                "draining",
                "draining-1",
                &[("", "TCP", 80)],
                &[
                    ("10.244.0.13", "node-a", Cond::Terminating),
                    ("10.244.1.13", "node-b", Cond::Gone),
                    ("10.244.2.13", "node-c", Cond::Terminating),
                ],
            ),
            slice("apps", "signal", "signal-1", &[("", "SCTP", 9999)], &[("10.244.1.14", "node-b", Cond::Ready)]),
            slice("apps", "named", "named-1", &[("http", "TCP", 8080)], &[("10.244.0.15", "node-a", Cond::Ready)]),
            slice("apps", "named", "named-2", &[("http", "TCP", 9090)], &[("10.244.1.15", "node-b", Cond::Ready)]),
        ],
    )
}

fn empty() -> ProxyInput {
    input(&[], &[])
}

// ---------------------------------------------------------------------------------------------
// The model

#[test]
fn input_keeps_services_with_a_cluster_ip_sorted() {
    let mut headless = service("default", "headless", "None", &[("", "TCP", 80)]);
    headless["spec"]["clusterIP"] = json!("None");
    let mut external = service("default", "external", "", &[]);
    external["spec"] = json!({"type": "ExternalName", "externalName": "example.com"});
    let mut node_port = service("default", "np", "10.96.0.7", &[("", "TCP", 80)]);
    node_port["spec"]["type"] = json!("NodePort");
    let mut lb = service("b", "lb", "10.96.0.8", &[("", "TCP", 80)]);
    lb["spec"]["type"] = json!("LoadBalancer");
    let mut v6 = service("default", "v6", "fd00::1", &[("", "TCP", 80)]);
    v6["spec"]["clusterIP"] = json!("fd00::1");
    let no_ip = service("default", "pending", "", &[("", "TCP", 80)]);
    let model = input(&[lb, headless, external, node_port, v6, no_ip, service("a", "z", "10.96.0.9", &[])], &[]);
    let names: Vec<(&str, &str)> = model.services.iter().map(|s| (s.namespace.as_str(), s.name.as_str())).collect();
    assert_eq!(names, [("a", "z"), ("b", "lb"), ("default", "np")]);
    assert_eq!(model.services[2].cluster_ip, ip("10.96.0.7"));
    assert_eq!(model.node_name, NODE);
}

#[test]
fn input_reads_affinity_and_traffic_policy() {
    let model = affinity();
    assert_eq!(model.services[0].affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
    assert_eq!(model.services[1].affinity_timeout, Some(60));
    assert!(!model.services[0].internal_local);
    let edge = edge();
    let local = edge.services.iter().find(|s| s.name == "local-none").expect("local-none");
    assert!(local.internal_local);
    assert_eq!(local.affinity_timeout, None);
}

#[test]
fn input_matches_slice_ports_by_name_and_protocol() {
    let svc = service("ns", "web", "10.96.0.40", &[("http", "TCP", 80), ("dns", "UDP", 53), ("", "TCP", 81)]);
    let slices = [
        // Other namespace, other Service, no label: ignored.
        slice("other", "web", "web-x", &[("http", "TCP", 1)], &[("10.244.9.9", "n", Cond::Ready)]),
        slice("ns", "webby", "webby-x", &[("http", "TCP", 2)], &[("10.244.9.8", "n", Cond::Ready)]),
        // Same name, other protocol: not the "http" port.
        slice("ns", "web", "web-b", &[("http", "UDP", 3), ("dns", "UDP", 5353)], &[("10.244.0.2", "node-a", Cond::Ready)]),
        slice("ns", "web", "web-a", &[("http", "TCP", 8080)], &[("10.244.0.3", "node-a", Cond::Ready)]),
        slice("ns", "web", "web-c", &[("", "TCP", 8081)], &[("10.244.0.4", "node-a", Cond::Ready)]),
    ];
    let mut unlabelled = slices[3].clone();
    unlabelled["metadata"]["labels"] = json!({});
    let mut slices = slices.to_vec();
    slices.push(unlabelled);
    let model = input(&[svc], &slices);
    let ports = &model.services[0].ports;
    let eps = |i: usize| -> Vec<(Ipv4Addr, u16)> { ports[i].endpoints.iter().map(|e| (e.ip, e.port)).collect() };
    assert_eq!((ports[0].name.as_str(), ports[0].protocol, ports[0].port), ("http", Protocol::Tcp, 80));
    assert_eq!(eps(0), [(ip("10.244.0.3"), 8080)]);
    assert_eq!(eps(1), [(ip("10.244.0.2"), 5353)]);
    assert_eq!(eps(2), [(ip("10.244.0.4"), 8081)]);
}

#[test]
fn input_reads_conditions_with_api_defaults_and_dedupes() {
    let mut s = slice("ns", "web", "web-a", &[("", "TCP", 80)], &[]);
    s["endpoints"] = json!([
        {"addresses": ["10.244.0.9"]},
        {"addresses": ["10.244.0.8"], "conditions": {"ready": false, "terminating": true}, "nodeName": "node-b"},
        {"addresses": ["fd00::1"]},
        {"addresses": []},
    ]);
    // The same endpoint again in another slice, now ready: the ready entry wins.
    let again = slice("ns", "web", "web-b", &[("", "TCP", 80)], &[("10.244.0.8", "node-b", Cond::Ready)]);
    let mut v6 = slice("ns", "web", "web-c", &[("", "TCP", 80)], &[("10.244.0.7", "node-b", Cond::Ready)]);
    v6["addressType"] = json!("IPv6");
    let model = input(&[service("ns", "web", "10.96.0.41", &[("", "TCP", 80)])], &[s, again, v6]);
    let eps = &model.services[0].ports[0].endpoints;
    assert_eq!(
        eps,
        &[
            EndpointModel {
                ip: ip("10.244.0.8"),
                port: 80,
                node_name: Some("node-b".into()),
                ready: true,
                serving: true,
                terminating: false
            },
            EndpointModel { ip: ip("10.244.0.9"), port: 80, node_name: None, ready: true, serving: true, terminating: false },
        ]
    );
}

#[test]
fn input_sorts_endpoints_by_ip_then_port() {
    let model = edge();
    let named = model.services.iter().find(|s| s.name == "named").expect("named");
    let eps: Vec<(Ipv4Addr, u16)> = named.ports[0].endpoints.iter().map(|e| (e.ip, e.port)).collect();
    assert_eq!(eps, [(ip("10.244.0.15"), 8080), (ip("10.244.1.15"), 9090)]);
    let nginx = tutorial();
    let eps: Vec<Ipv4Addr> = nginx.services[1].ports[0].endpoints.iter().map(|e| e.ip).collect();
    assert_eq!(eps, [ip("10.244.0.5"), ip("10.244.1.5")]);
}

fn ep(ip_: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> EndpointModel {
    EndpointModel { ip: ip(ip_), port: 80, node_name: Some(node.to_string()), ready, serving, terminating }
}

fn ips(b: &Backends) -> Vec<String> {
    match b {
        Backends::Use(eps) => eps.iter().map(|e| e.ip.to_string()).collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn usable_endpoints_are_ready_else_serving_terminating() {
    let eps =
        [ep("10.244.0.1", NODE, true, true, false), ep("10.244.0.2", NODE, false, true, true), ep("10.244.0.3", NODE, false, false, false)];
    assert_eq!(ips(&usable_endpoints(NODE, false, &eps)), ["10.244.0.1"]);
    assert_eq!(ips(&usable_endpoints(NODE, false, &eps[1..])), ["10.244.0.2"]);
    // Terminating and no longer serving, or just not ready: nothing to use.
    let gone = [ep("10.244.0.4", NODE, false, false, true), eps[2].clone()];
    assert_eq!(usable_endpoints(NODE, false, &gone), Backends::None);
    assert_eq!(usable_endpoints(NODE, false, &[]), Backends::None);
    // Serving but not terminating (not ready for another reason) is no fallback.
    assert_eq!(usable_endpoints(NODE, false, &[ep("10.244.0.5", NODE, false, true, false)]), Backends::None);
}

#[test]
fn usable_endpoints_with_local_policy_stay_on_the_node() {
    let eps = [
        ep("10.244.0.1", NODE, true, true, false),
        ep("10.244.1.1", "node-b", true, true, false),
        ep("10.244.0.2", NODE, false, true, true),
    ];
    assert_eq!(ips(&usable_endpoints(NODE, true, &eps)), ["10.244.0.1"]);
    assert_eq!(ips(&usable_endpoints("node-b", true, &eps)), ["10.244.1.1"]);
    // node-a's fallback is its own terminating endpoint, not node-b's ready one.
    assert_eq!(ips(&usable_endpoints(NODE, true, &eps[1..])), ["10.244.0.2"]);
    assert_eq!(usable_endpoints("node-c", true, &eps), Backends::NoneLocal);
    assert_eq!(usable_endpoints("node-c", true, &[]), Backends::None);
}

// ---------------------------------------------------------------------------------------------
// Golden scripts

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/proxy/testdata").join(name)
}

fn golden(name: &str, input: &ProxyInput) {
    let got = render_full(input);
    let path = testdata(&format!("{name}.nft"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("testdata dir")).expect("mkdir testdata");
        std::fs::write(&path, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        got == want,
        "render_full differs from {} (UPDATE_GOLDEN=1 rewrites it after review):\n{}",
        path.display(),
        first_difference(&want, &got)
    );
    // Every golden script is also in the tracer's (and so the checks') reach.
    load(&got).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
    format!("line {}:\n  want: {:?}\n  got:  {:?}", i + 1, w.get(i).unwrap_or(&"<end>"), g.get(i).unwrap_or(&"<end>"))
}

#[test]
fn golden_empty() {
    golden("empty", &empty());
}

#[test]
fn golden_tutorial() {
    golden("tutorial", &tutorial());
}

#[test]
fn golden_affinity() {
    golden("affinity", &affinity());
}

#[test]
fn golden_edge() {
    golden("edge", &edge());
}

#[test]
fn names_fit_nft_and_read_as_one_identifier() {
    let long = "a".repeat(63);
    let mut svc = service(&long, &long, "10.96.0.50", &[("", "SCTP", 65535)]);
    svc["spec"]["sessionAffinity"] = json!("ClientIP");
    let s = slice(&long, &long, "s", &[("", "SCTP", 65535)], &[("255.255.255.254", NODE, Cond::Ready)]);
    let model = input(&[svc], &[s]);
    let (svc, port) = (&model.services[0], &model.services[0].ports[0]);
    let ep = &port.endpoints[0];
    for name in [service_chain_name(svc, port), endpoint_chain_name(svc, port, ep), affinity_set_name(svc, port, ep)] {
        assert!(name.len() < 256, "{name} is {} bytes", name.len());
        assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "./-".contains(c)), "{name}");
    }
    load(&render_full(&model)).expect("long names load");
}

#[test]
fn names_with_characters_nft_cannot_read_are_left_out() {
    let model = input(&[service("default", "Bad Name", "10.96.0.51", &[("", "TCP", 80)])], &[]);
    assert!(model.services.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The tracer over rendered rules

fn table(input: &ProxyInput) -> Table {
    load(&render_full(input)).unwrap_or_else(|e| panic!("{e}"))
}

fn pod(src: &str, dst: &str, proto: Proto, dport: u16) -> Packet {
    Packet::new(Origin::Pod, ip(src), ip(dst), proto, dport)
}

fn trace(t: &Table, p: &Packet) -> Outcome {
    t.trace(p).unwrap_or_else(|e| panic!("{e}"))
}

/// The endpoints of a DNAT outcome with their masquerade flags.
fn dnat(out: &Outcome) -> Vec<(String, bool)> {
    match out {
        Outcome::Dnat { candidates } => candidates.iter().map(|c| (format!("{}:{}", c.ip, c.port), c.masquerade)).collect(),
        other => panic!("expected a DNAT, got {other:?}"),
    }
}

fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(a, m)| (a.to_string(), *m)).collect()
}

#[test]
fn pod_to_cluster_ip_reaches_every_endpoint_without_snat() {
    let t = table(&tutorial());
    let out = trace(&t, &pod("10.244.0.9", "10.96.0.20", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.5:80", false), ("10.244.1.5:80", false)]));
    // A pod on another node is in the pod network too.
    let out = trace(&t, &pod("10.244.3.9", "10.96.0.20", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.5:80", false), ("10.244.1.5:80", false)]));
}

#[test]
fn node_originated_traffic_is_masqueraded() {
    let t = table(&tutorial());
    for src in ["172.18.0.2", "10.244.0.1"] {
        let p = Packet::new(Origin::Node, ip(src), ip("10.96.0.20"), Proto::Tcp, 80);
        assert_eq!(dnat(&trace(&t, &p)), pairs(&[("10.244.0.5:80", true), ("10.244.1.5:80", true)]), "from the node's {src}");
    }
    let https = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.96.0.1"), Proto::Tcp, 443);
    assert_eq!(dnat(&trace(&t, &https)), pairs(&[("172.18.0.1:6443", true)]));
}

#[test]
fn traffic_from_outside_the_pod_network_is_masqueraded() {
    let t = table(&tutorial());
    let out = trace(&t, &pod("198.51.100.7", "10.96.0.20", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.5:80", true), ("10.244.1.5:80", true)]));
}

#[test]
fn hairpin_is_masqueraded_only_when_the_pod_reaches_itself() {
    let t = table(&tutorial());
    let out = trace(&t, &pod("10.244.0.5", "10.96.0.20", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.5:80", true), ("10.244.1.5:80", false)]));
}

#[test]
fn service_without_endpoints_rejects() {
    let t = table(&edge());
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.1.1", Proto::Tcp, 80)), Outcome::Reject);
    // Only a not-ready endpoint: the same.
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.1.2", Proto::Tcp, 80)), Outcome::Reject);
    let from_node = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.96.1.1"), Proto::Tcp, 80);
    assert_eq!(trace(&t, &from_node), Outcome::Reject);
}

#[test]
fn undefined_port_of_a_cluster_ip_rejects() {
    let t = table(&tutorial());
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.0.20", Proto::Tcp, 81)), Outcome::Reject);
    // kube-dns has 53/UDP and 53/TCP, nothing on SCTP.
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.0.10", Proto::Sctp, 53)), Outcome::Reject);
    let from_node = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.96.0.20"), Proto::Tcp, 8080);
    assert_eq!(trace(&t, &from_node), Outcome::Reject);
}

#[test]
fn unallocated_service_address_drops() {
    let t = table(&tutorial());
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.0.99", Proto::Tcp, 80)), Outcome::Drop);
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.111.255.254", Proto::Udp, 53)), Outcome::Drop);
    let from_node = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.96.0.99"), Proto::Tcp, 80);
    assert_eq!(trace(&t, &from_node), Outcome::Drop);
    // Just outside the service CIDR: not ours.
    let out = trace(&t, &pod("10.244.0.9", "10.112.0.1", Proto::Tcp, 80));
    assert_eq!(out, Outcome::Untouched { masquerade: false });
}

#[test]
fn ping_of_a_cluster_ip_gets_port_unreachable_never_an_echo() {
    // NET-1, nftables mode: the echo request is never DNATed; it meets the reject of invalid
    // ClusterIP ports, so ping reports "Destination Port Unreachable" at once.
    let t = table(&tutorial());
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.0.20", Proto::IcmpEcho, 0)), Outcome::Reject);
    let from_node = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.96.0.10"), Proto::IcmpEcho, 0);
    assert_eq!(trace(&t, &from_node), Outcome::Reject);
}

#[test]
fn pod_to_pod_traffic_is_untouched() {
    let t = table(&tutorial());
    let out = trace(&t, &pod("10.244.0.9", "10.244.1.5", Proto::Tcp, 80));
    assert_eq!(out, Outcome::Untouched { masquerade: false });
    let from_node = Packet::new(Origin::Node, ip("172.18.0.2"), ip("10.244.1.5"), Proto::Tcp, 80);
    assert_eq!(trace(&t, &from_node), Outcome::Untouched { masquerade: false });
}

#[test]
fn affinity_remembers_and_returns_clients() {
    let t = table(&affinity());
    let out = trace(&t, &pod("10.244.2.9", "10.96.0.30", Proto::Tcp, 80));
    let Outcome::Dnat { candidates } = &out else { panic!("expected DNAT, got {out:?}") };
    let got: Vec<(String, Option<String>)> =
        candidates.iter().map(|c| (format!("{}:{}", c.ip, c.port), c.affinity_timeout.clone())).collect();
    assert_eq!(
        got,
        [("10.244.0.5:8080".to_string(), Some("10800s".to_string())), ("10.244.1.5:8080".to_string(), Some("10800s".to_string())),]
    );
    for remembered in [(ip("10.244.0.5"), 8080), (ip("10.244.1.5"), 8080)] {
        let p = pod("10.244.2.9", "10.96.0.30", Proto::Tcp, 80).remembered_by(remembered);
        assert_eq!(trace(&t, &p).endpoints(), [remembered]);
    }
    let short = trace(&t, &pod("10.244.2.9", "10.96.0.31", Proto::Udp, 5000));
    let Outcome::Dnat { candidates } = short else { panic!("expected DNAT") };
    assert_eq!(candidates[0].affinity_timeout.as_deref(), Some("60s"));
    // Without affinity nothing is recorded.
    let plain = trace(&table(&tutorial()), &pod("10.244.0.9", "10.96.0.20", Proto::Tcp, 80));
    let Outcome::Dnat { candidates } = plain else { panic!("expected DNAT") };
    assert!(candidates.iter().all(|c| c.affinity_timeout.is_none()));
}

#[test]
fn internal_local_uses_local_endpoints_and_drops_without_one() {
    let t = table(&edge());
    assert_eq!(trace(&t, &pod("10.244.0.9", "10.96.1.3", Proto::Tcp, 80)), Outcome::Drop);
    let out = trace(&t, &pod("10.244.0.9", "10.96.1.4", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.12:80", false)]));
}

#[test]
fn terminating_endpoints_take_traffic_only_when_none_is_ready() {
    let t = table(&edge());
    let out = trace(&t, &pod("10.244.0.9", "10.96.1.5", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.13:80", false), ("10.244.2.13:80", false)]));
    let mut model = edge();
    let draining = model.services.iter_mut().find(|s| s.name == "draining").expect("draining");
    draining.ports[0].endpoints.push(EndpointModel {
        ip: ip("10.244.3.13"),
        port: 80,
        node_name: Some("node-d".into()),
        ready: true,
        serving: true,
        terminating: false,
    });
    let out = trace(&table(&model), &pod("10.244.0.9", "10.96.1.5", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.3.13:80", false)]));
}

#[test]
fn udp_and_sctp_services_are_translated_per_protocol() {
    let t = table(&tutorial());
    let dns = pairs(&[("10.244.0.2:53", false), ("10.244.1.2:53", false)]);
    assert_eq!(dnat(&trace(&t, &pod("10.244.0.9", "10.96.0.10", Proto::Udp, 53))), dns);
    assert_eq!(dnat(&trace(&t, &pod("10.244.0.9", "10.96.0.10", Proto::Tcp, 53))), dns);
    let rules = t.chain_rules("svc-kube-system/kube-dns/udp/53").expect("udp service chain");
    assert_eq!(rules.last(), Some(&"meta l4proto udp dnat ip to 10.244.1.2:53"));
    let edge = table(&edge());
    assert_eq!(dnat(&trace(&edge, &pod("10.244.0.9", "10.96.1.6", Proto::Sctp, 9999))), pairs(&[("10.244.1.14:9999", false)]));
    assert_eq!(trace(&edge, &pod("10.244.0.9", "10.96.1.6", Proto::Tcp, 9999)), Outcome::Reject);
}

#[test]
fn named_port_reaches_each_pod_on_its_own_target_port() {
    let t = table(&edge());
    let out = trace(&t, &pod("10.244.0.9", "10.96.1.7", Proto::Tcp, 80));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.15:8080", false), ("10.244.1.15:9090", false)]));
}

#[test]
fn endpoint_choice_is_uniform() {
    // Rule k catches 1/(N-k) of what reaches it: each of N endpoints gets 1/N.
    let eps: Vec<(String, String, Cond)> = (0..5).map(|i| (format!("10.244.0.{}", 20 + i), NODE.to_string(), Cond::Ready)).collect();
    let refs: Vec<(&str, &str, Cond)> = eps.iter().map(|(a, n, c)| (a.as_str(), n.as_str(), *c)).collect();
    let model =
        input(&[service("ns", "five", "10.96.0.60", &[("", "TCP", 80)])], &[slice("ns", "five", "five-1", &[("", "TCP", 80)], &refs)]);
    let t = table(&model);
    let rules = t.chain_rules("svc-ns/five/tcp/80").expect("service chain");
    let mut reach = 1.0f64;
    let mut shares = Vec::new();
    for rule in &rules {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let take = match words.as_slice() {
            ["numgen", "random", "mod", m, "==", "0", "goto", _] => 1.0 / m.parse::<f64>().expect("modulus"),
            ["goto", _] => 1.0,
            other => panic!("unexpected rule {other:?}"),
        };
        shares.push(reach * take);
        reach *= 1.0 - take;
    }
    assert_eq!(shares.len(), 5);
    assert!(shares.iter().all(|s| (s - 0.2).abs() < 1e-12), "{shares:?}");
}

#[test]
fn endpoint_chains_only_where_more_than_a_dnat_is_needed() {
    let t = table(&tutorial());
    // The local endpoint can be its own client: hairpin check, then DNAT.
    let local = t.chain_rules("ep-default/my-nginx/tcp/80/10.244.0.5/80").expect("local ep");
    assert_eq!(local, ["ip saddr 10.244.0.5 jump mark-for-masquerade", "meta l4proto tcp dnat ip to 10.244.0.5:80"]);
    // The remote one cannot: the service chain DNATs to it directly.
    assert_eq!(t.chain_rules("ep-default/my-nginx/tcp/80/10.244.1.5/80"), None);
    let svc = t.chain_rules("svc-default/my-nginx/tcp/80").expect("service chain");
    assert_eq!(
        svc,
        ["numgen random mod 2 == 0 goto ep-default/my-nginx/tcp/80/10.244.0.5/80", "meta l4proto tcp dnat ip to 10.244.1.5:80"]
    );
    // The kubernetes endpoint has no node: treated as local, to be safe.
    let api = t.chain_rules("ep-default/kubernetes/tcp/443/172.18.0.1/6443").expect("api ep");
    assert_eq!(api[0], "ip saddr 172.18.0.1 jump mark-for-masquerade");
    // With affinity every endpoint has a chain (it records the client).
    let sticky = table(&affinity());
    let remote = sticky.chain_rules("ep-default/sticky/tcp/80/10.244.1.5/8080").expect("affinity ep");
    assert_eq!(
        remote,
        ["update @aff-default/sticky/tcp/80/10.244.1.5/8080 { ip saddr timeout 10800s }", "meta l4proto tcp dnat ip to 10.244.1.5:8080"]
    );
}

// ---------------------------------------------------------------------------------------------
// Full syncs and updates

fn apply(t: &mut Table, script: &str, what: &str) {
    t.apply(script).unwrap_or_else(|e| panic!("{what}: {e}\n--- script ---\n{script}"));
}

/// `render_full(old)` + `render_update(old, new)` must be `render_full(new)`.
fn check_update(old: &ProxyInput, new: &ProxyInput, what: &str) -> String {
    let mut t = table(old);
    let update = render_update(old, new);
    apply(&mut t, &update, what);
    let fresh = table(new);
    assert!(
        t == fresh,
        "{what}: update differs from a full render\n--- after update ---\n{}\n--- fresh ---\n{}\n--- update ---\n{update}",
        trace::describe(&t),
        trace::describe(&fresh)
    );
    update
}

fn with_service(mut model: ProxyInput, f: impl FnOnce(&mut ServiceModel), name: &str) -> ProxyInput {
    f(model.services.iter_mut().find(|s| s.name == name).expect("service"));
    model
}

#[test]
fn full_render_is_idempotent() {
    for model in [empty(), tutorial(), affinity(), edge()] {
        let mut t = table(&model);
        let once = t.clone();
        apply(&mut t, &render_full(&model), "second full sync");
        assert_eq!(t, once);
    }
}

#[test]
fn update_with_nothing_changed_is_empty() {
    assert_eq!(render_update(&tutorial(), &tutorial()), "");
    assert_eq!(render_update(&empty(), &empty()), "");
}

#[test]
fn updates_equal_full_renders() {
    let tut = tutorial();
    let one_less = with_service(
        tut.clone(),
        |s| {
            s.ports[0].endpoints.remove(1);
        },
        "my-nginx",
    );
    let none_ready = with_service(tut.clone(), |s| s.ports[0].endpoints.iter_mut().for_each(|e| e.ready = false), "my-nginx");
    let sticky = with_service(tut.clone(), |s| s.affinity_timeout = Some(10800), "my-nginx");
    let sticky_short = with_service(sticky.clone(), |s| s.affinity_timeout = Some(30), "my-nginx");
    let local = with_service(tut.clone(), |s| s.internal_local = true, "my-nginx");
    let moved = with_service(tut.clone(), |s| s.cluster_ip = ip("10.96.0.21"), "my-nginx");
    let extra_port = with_service(
        tut.clone(),
        |s| {
            let mut p = s.ports[0].clone();
            p.port = 8443;
            p.name = "tls".into();
            s.ports.push(p);
        },
        "my-nginx",
    );
    let mut added = tut.clone();
    added.services.extend(edge().services);
    added.services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut removed = tut.clone();
    removed.services.retain(|s| s.name != "kube-dns");
    let mut new_cidr = tut.clone();
    new_cidr.service_cidr = cidr("10.100.0.0/16");
    // The address of a removed Service taken over by a new one in the same update.
    let mut reused = removed.clone();
    let mut heir = tut.services.iter().find(|s| s.name == "kube-dns").expect("kube-dns").clone();
    heir.name = "dns-2".into();
    reused.services.insert(0, heir);
    let (nothing, aff, edge) = (empty(), affinity(), edge());
    let moved_away = with_service(tut.clone(), |s| s.ports[0].endpoints[0].node_name = Some("node-c".into()), "my-nginx");
    // Two Services claiming one address (a broken store): the first in order keeps the map
    // entries, in full renders and updates alike.
    let mut twins = tut.clone();
    let mut twin = tut.services.iter().find(|s| s.name == "my-nginx").expect("my-nginx").clone();
    twin.name = "my-nginx-twin".into();
    twin.ports[0].endpoints.truncate(1);
    twins.services.push(twin);
    let twins_changed = with_service(twins.clone(), |s| s.ports[0].endpoints.clear(), "my-nginx");
    let cases: Vec<(&str, &ProxyInput, &ProxyInput)> = vec![
        ("endpoint removed", &tut, &one_less),
        ("endpoint added", &one_less, &tut),
        ("no endpoint ready", &tut, &none_ready),
        ("endpoints ready again", &none_ready, &tut),
        ("affinity on", &tut, &sticky),
        ("affinity off", &sticky, &tut),
        ("affinity timeout", &sticky, &sticky_short),
        ("internal local", &tut, &local),
        ("cluster IP changed", &tut, &moved),
        ("port added", &tut, &extra_port),
        ("services added", &tut, &added),
        ("services removed", &added, &tut),
        ("service removed", &tut, &removed),
        ("address reused", &tut, &reused),
        ("service CIDR", &tut, &new_cidr),
        ("from nothing", &nothing, &added),
        ("to nothing", &added, &nothing),
        ("affinity services", &aff, &edge),
        ("endpoint now remote", &tut, &moved_away),
        ("shared address appears", &tut, &twins),
        ("shared address, first changes", &twins, &twins_changed),
        ("shared address goes", &twins_changed, &tut),
    ];
    for (what, old, new) in cases {
        check_update(old, new, what);
    }
    // Chained updates keep converging.
    let mut t = table(&tut);
    for (old, new) in [(&tut, &sticky), (&sticky, &one_less), (&one_less, &added), (&added, &tut)] {
        apply(&mut t, &render_update(old, new), "chained update");
    }
    assert_eq!(t, table(&tut));
}

#[test]
fn one_endpoint_change_among_a_thousand_services_is_a_tiny_update() {
    let services: Vec<Value> = (0..1000)
        .map(|i| service("bench", &format!("svc-{i}"), &format!("10.96.{}.{}", i / 250, i % 250 + 1), &[("", "TCP", 80)]))
        .collect();
    let slices: Vec<Value> = (0..1000)
        .map(|i| {
            let eps: Vec<String> = (0..3).map(|k| format!("10.244.{k}.{}", i % 250 + 2)).collect();
            // The second endpoint of each Service runs on this node (so it has a chain).
            let eps: Vec<(&str, &str, Cond)> =
                eps.iter().enumerate().map(|(k, e)| (e.as_str(), if k == 1 { NODE } else { "node-b" }, Cond::Ready)).collect();
            slice("bench", &format!("svc-{i}"), &format!("svc-{i}-1"), &[("", "TCP", 8080)], &eps)
        })
        .collect();
    let old = input(&services, &slices);
    let new = with_service(old.clone(), |s| s.ports[0].endpoints[1].ready = false, "svc-500");
    let update = check_update(&old, &new, "one endpoint not ready");
    let commands = update.lines().filter(|l| !l.starts_with('#')).count();
    // flush the service chain, its two rules, flush and delete the endpoint chain.
    assert!(commands <= 6, "{commands} commands:\n{update}");
    assert!(update.contains("delete chain ip emu ep-bench/svc-500/tcp/80/10.244.1.2/8080"), "{update}");
}

#[test]
fn syncs_keep_affinity_entries_of_endpoints_that_stay() {
    let model = affinity();
    let (svc, port) = (&model.services[0], &model.services[0].ports[0]);
    let stays = affinity_set_name(svc, port, &port.endpoints[0]);
    let goes = affinity_set_name(svc, port, &port.endpoints[1]);
    let mut t = table(&model);
    t.add_dynamic_element(&stays, "10.244.2.9").expect("affinity set");
    t.add_dynamic_element(&goes, "10.244.2.8").expect("affinity set");
    apply(&mut t, &render_full(&model), "full sync");
    assert_eq!(t.set_elements(&stays), Some(vec!["10.244.2.9".to_string()]));
    let fewer = with_service(
        model.clone(),
        |s| {
            s.ports[0].endpoints.remove(1);
        },
        "sticky",
    );
    apply(&mut t, &render_update(&model, &fewer), "update");
    assert_eq!(t.set_elements(&stays), Some(vec!["10.244.2.9".to_string()]));
    assert_eq!(t.set_elements(&goes), None);
    apply(&mut t, &render_full(&fewer), "full sync");
    assert_eq!(t.set_elements(&stays), Some(vec!["10.244.2.9".to_string()]));
}

/// What `nft -t list table ip emu` would show of a table: names only.
fn listing(t: &Table) -> String {
    let mut out = String::from("table ip emu {\n");
    for name in t.set_names() {
        let kind = if ["service-ips", "no-endpoint-services", "service-nodeports", "no-endpoint-nodeports"].contains(&name) {
            "map"
        } else {
            "set"
        };
        out.push_str(&format!("\t{kind} {name} {{\n\t\ttype ipv4_addr\n\t}}\n\n"));
    }
    for name in t.chain_names() {
        out.push_str(&format!("\tchain {name} {{\n\t\tjump x\n\t}}\n\n"));
    }
    out.push_str("}\n");
    out
}

#[test]
fn resync_deletes_what_is_no_longer_wanted() {
    let old = tutorial();
    let new = with_service(affinity(), |s| s.affinity_timeout = None, "sticky");
    let mut t = table(&affinity());
    apply(&mut t, &render_update(&affinity(), &old), "update");
    // A plain full sync converges behaviour but cannot know the leftovers' names...
    let mut plain = t.clone();
    apply(&mut plain, &render_full(&new), "full sync");
    let leftovers = trace::missing(&plain, &table(&new));
    assert!(leftovers.contains("svc-default/my-nginx/tcp/80"), "{leftovers:?}");
    assert_eq!(plain.chain_rules("svc-default/my-nginx/tcp/80"), Some(vec![]));
    // ...a resync with the listing deletes them.
    let existing = parse_listing(&listing(&t));
    assert!(existing.chains.contains("svc-default/my-nginx/tcp/80"));
    assert!(existing.maps.contains("service-ips"));
    apply(&mut t, &render_resync(&new, &existing), "resync");
    assert_eq!(t, table(&new));
}

#[test]
fn recreate_starts_from_an_empty_table() {
    let mut t = table(&tutorial());
    let set = affinity_set_name(&affinity().services[0], &affinity().services[0].ports[0], &affinity().services[0].ports[0].endpoints[0]);
    apply(&mut t, &render_full(&affinity()), "full");
    t.add_dynamic_element(&set, "10.244.2.9").expect("set");
    apply(&mut t, &render_recreate(&affinity()), "recreate");
    assert_eq!(t, table(&affinity()));
    assert_eq!(t.set_elements(&set), Some(vec![]));
}

#[test]
fn parse_listing_reads_only_table_ip_emu() {
    let text = "table inet other {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n\
        table ip emu {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 10.96.0.20 . tcp . 80 : goto svc-a/b/tcp/80 }\n\t}\n\n\
        \tset aff-a/b/tcp/80/10.244.0.5/80 {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t}\n\n\
        \tchain svc-a/b/tcp/80 {\n\t\tgoto ep-a/b/tcp/80/10.244.0.5/80\n\t}\n}\ntable ip nat {\n\tchain POSTROUTING {\n\t}\n}\n";
    let found = parse_listing(text);
    assert_eq!(found.chains.iter().collect::<Vec<_>>(), ["svc-a/b/tcp/80"]);
    assert_eq!(found.maps.iter().collect::<Vec<_>>(), ["service-ips"]);
    assert_eq!(found.sets.iter().collect::<Vec<_>>(), ["aff-a/b/tcp/80/10.244.0.5/80"]);
    assert_eq!(parse_listing(""), TableObjects::default());
}

// ---------------------------------------------------------------------------------------------
// The tracer's own checks (the update tests rely on them)

#[test]
fn loader_refuses_what_the_kernel_refuses() {
    let base = render_full(&tutorial());
    let bad = [
        ("referenced chain", "delete chain ip emu svc-default/my-nginx/tcp/80"),
        ("chain used by a rule", "delete chain ip emu ep-default/my-nginx/tcp/80/10.244.0.5/80"),
        ("missing chain", "add rule ip emu nope accept"),
        ("goto a missing chain", "add rule ip emu services goto nope"),
        ("missing set", "add rule ip emu services ip saddr @nope accept"),
        ("element of a missing chain", "add element ip emu service-ips { 10.96.0.77 . tcp . 80 : goto nope }"),
        ("element with another value", "add element ip emu service-ips { 10.96.0.20 . tcp . 80 : drop }"),
        ("missing element", "delete element ip emu cluster-ips { 10.96.0.77 }"),
        ("set in use", "delete map ip emu service-ips"),
        ("base chain redeclared", "add chain ip emu nat-output { type nat hook output priority 0 ; policy accept ; }"),
        ("dnat without protocol", "add rule ip emu services dnat ip to 10.0.0.1:80"),
        ("unknown syntax", "add rule ip emu services tcp dport 80 accept"),
    ];
    for (what, cmd) in bad {
        let mut t = load(&base).expect("base");
        let before = t.clone();
        assert!(t.apply(cmd).is_err(), "{what}: `{cmd}` was accepted");
        assert_eq!(t, before, "{what}: a failed script changed the table");
    }
    assert!(load("add chain ip emu x").is_err(), "a chain needs its table");
    let ok = "add chain ip emu services\nflush chain ip emu svc-default/my-nginx/tcp/80\n\
        delete element ip emu service-ips { 10.96.0.20 . tcp . 80 }\ndelete chain ip emu svc-default/my-nginx/tcp/80";
    load(&base).expect("base").apply(ok).expect("flushed and unreferenced chains can go");
}

#[test]
fn tracer_follows_jumps_returns_and_marks() {
    let script = "add table ip emu\n\
        add chain ip emu pre { type nat hook prerouting priority -100 ; policy accept ; }\n\
        add chain ip emu post { type nat hook postrouting priority 100 ; policy accept ; }\n\
        add chain ip emu sub\nadd chain ip emu mark\n\
        add rule ip emu mark meta mark set meta mark | 0x10\n\
        add rule ip emu sub ip saddr 10.0.0.1 return\n\
        add rule ip emu sub jump mark\n\
        add rule ip emu pre jump sub\n\
        add rule ip emu pre meta l4proto tcp dnat ip to 10.0.0.9:80\n\
        add rule ip emu post meta mark & 0x10 == 0 return\nadd rule ip emu post masquerade";
    let t = load(script).expect("script");
    let marked = trace(&t, &pod("10.0.0.2", "10.0.0.3", Proto::Tcp, 1));
    assert_eq!(dnat(&marked), pairs(&[("10.0.0.9:80", true)]));
    let returned = trace(&t, &pod("10.0.0.1", "10.0.0.3", Proto::Tcp, 1));
    assert_eq!(dnat(&returned), pairs(&[("10.0.0.9:80", false)]));
    assert_eq!(trace(&t, &pod("10.0.0.1", "10.0.0.3", Proto::Udp, 1)), Outcome::Untouched { masquerade: false });
}

/// The model cache gives what `input_from_objects` gives, and models again only the Services
/// whose object or slices are new objects.
#[test]
fn model_cache_reuses_the_models_of_unchanged_services() {
    use std::sync::Arc;
    let services: Vec<Arc<Value>> = [
        service("default", "kubernetes", "10.96.0.1", &[("https", "TCP", 443)]),
        service("default", "my-nginx", "10.96.0.20", &[("", "TCP", 80)]),
        service("default", "headless", "None", &[("", "TCP", 80)]),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let nginx_slice =
        |ip: &str| Arc::new(slice("default", "my-nginx", "my-nginx-fghij", &[("", "TCP", 80)], &[(ip, "node-b", Cond::Ready)]));
    let mut slices = vec![
        Arc::new(slice("default", "kubernetes", "kubernetes", &[("https", "TCP", 6443)], &[("172.18.0.1", "", Cond::Ready)])),
        nginx_slice("10.244.1.5"),
    ];
    let expected = |services: &[Arc<Value>], slices: &[Arc<Value>]| {
        let plain = |v: &[Arc<Value>]| v.iter().map(|o| (**o).clone()).collect::<Vec<_>>();
        input(&plain(services), &plain(slices))
    };
    let mut cache = ModelCache::default();
    let cached = |cache: &mut ModelCache, services: &[Arc<Value>], slices: &[Arc<Value>]| {
        cache.input(NODE, cidr("10.244.0.0/16"), cidr("10.96.0.0/12"), services, slices)
    };

    assert_eq!(cached(&mut cache, &services, &slices), expected(&services, &slices));
    assert_eq!(cache.remodelled(), 3);
    // The same objects: nothing is modelled again.
    assert_eq!(cached(&mut cache, &services, &slices), expected(&services, &slices));
    assert_eq!(cache.remodelled(), 0);
    // An endpoint change: only its Service.
    slices[1] = nginx_slice("10.244.1.6");
    let after = cached(&mut cache, &services, &slices);
    assert_eq!(after, expected(&services, &slices));
    assert_eq!(cache.remodelled(), 1);
    assert_eq!(after.services[1].ports[0].endpoints[0].ip.to_string(), "10.244.1.6");
    // A slice going away and a Service going away.
    slices.pop();
    assert_eq!(cached(&mut cache, &services[..1], &slices), expected(&services[..1], &slices));
    assert_eq!(cache.remodelled(), 0);
    assert_eq!(cached(&mut cache, &services, &slices), expected(&services, &slices));
    assert_eq!(cache.remodelled(), 2);
}

// ---------------------------------------------------------------------------------------------
// Node ports (NET-6)

/// The tutorial's NodePort Service `my-nginx` (http 8080 → 80 on 31704, https 443 on 32453) with
/// a pod on node-a and one on node-b; `local-web` (externalTrafficPolicy Local, 30080) with its
/// only pod on node-b; `idle` (30090) without endpoints. Seen from node-a, whose node ports
/// answer on its InternalIP and ExternalIP.
fn nodeports() -> ProxyInput {
    let exposed = |mut svc: Value, node_ports: &[u16], local: bool| {
        svc["spec"]["type"] = json!("NodePort");
        if local {
            svc["spec"]["externalTrafficPolicy"] = json!("Local");
        }
        for (p, n) in svc["spec"]["ports"].as_array_mut().unwrap().iter_mut().zip(node_ports) {
            p["nodePort"] = json!(n);
        }
        svc
    };
    let mut input = input(
        &[
            exposed(service("default", "my-nginx", "10.96.0.20", &[("http", "TCP", 8080), ("https", "TCP", 443)]), &[31704, 32453], false),
            exposed(service("default", "local-web", "10.96.0.30", &[("", "TCP", 80)]), &[30080], true),
            exposed(service("default", "idle", "10.96.0.40", &[("", "TCP", 80)]), &[30090], false),
        ],
        &[
            slice(
                "default",
                "my-nginx",
                "my-nginx-1",
                &[("http", "TCP", 80), ("https", "TCP", 443)],
                &[("10.244.0.5", NODE, Cond::Ready), ("10.244.1.5", "node-b", Cond::Ready)],
            ),
            slice("default", "local-web", "local-web-1", &[("", "TCP", 80)], &[("10.244.1.7", "node-b", Cond::Ready)]),
        ],
    );
    input.node_ips = vec![ip("172.18.0.2"), ip("198.51.100.2")];
    input
}

#[test]
fn golden_nodeports() {
    golden("nodeports", &nodeports());
}

#[test]
fn node_ports_answer_on_the_nodes_addresses_with_snat_for_cluster_policy() {
    let t = table(&nodeports());
    for node_ip in ["198.51.100.2", "172.18.0.2"] {
        // From outside (arrives on an interface): any endpoint, SNAT to this node.
        let out = trace(&t, &pod("198.51.100.1", node_ip, Proto::Tcp, 31704));
        assert_eq!(dnat(&out), pairs(&[("10.244.0.5:80", true), ("10.244.1.5:80", true)]), "{node_ip}");
        let out = trace(&t, &pod("198.51.100.1", node_ip, Proto::Tcp, 32453));
        assert_eq!(dnat(&out), pairs(&[("10.244.0.5:443", true), ("10.244.1.5:443", true)]), "{node_ip}");
    }
    // A process of the node itself, to its own address.
    let p = Packet::new(Origin::Node, ip("172.18.0.2"), ip("172.18.0.2"), Proto::Tcp, 31704);
    assert_eq!(dnat(&trace(&t, &p)), pairs(&[("10.244.0.5:80", true), ("10.244.1.5:80", true)]));
    // Not on other addresses (loopback, another node's), not on other ports, not for UDP.
    for (dst, port, proto) in [
        ("127.0.0.1", 31704, Proto::Tcp),
        ("198.51.100.3", 31704, Proto::Tcp),
        ("198.51.100.2", 31705, Proto::Tcp),
        ("198.51.100.2", 31704, Proto::Udp),
    ] {
        assert_eq!(trace(&t, &pod("198.51.100.1", dst, proto, port)), Outcome::Untouched { masquerade: false }, "{dst}:{port}");
    }
}

#[test]
fn local_policy_keeps_the_client_and_drops_without_a_local_endpoint() {
    // node-a has no pod of local-web: it drops (the client times out).
    let t = table(&nodeports());
    assert_eq!(trace(&t, &pod("198.51.100.1", "198.51.100.2", Proto::Tcp, 30080)), Outcome::Drop);
    // node-b has one: only it, the client's address kept.
    let mut on_b = nodeports();
    on_b.node_name = "node-b".into();
    on_b.node_ips = vec![ip("172.18.0.3"), ip("198.51.100.3")];
    let t = table(&on_b);
    let out = trace(&t, &pod("198.51.100.1", "198.51.100.3", Proto::Tcp, 30080));
    assert_eq!(dnat(&out), pairs(&[("10.244.1.7:80", false)]));
    // The ClusterIP still balances cluster-wide (externalTrafficPolicy is about node ports).
    let t = table(&nodeports());
    assert_eq!(dnat(&trace(&t, &pod("10.244.0.9", "10.96.0.30", Proto::Tcp, 80))), pairs(&[("10.244.1.7:80", false)]));
}

#[test]
fn node_ports_without_endpoints_reject() {
    let t = table(&nodeports());
    assert_eq!(trace(&t, &pod("198.51.100.1", "198.51.100.2", Proto::Tcp, 30090)), Outcome::Reject);
}

#[test]
fn node_port_updates_equal_full_renders() {
    let np = nodeports();
    check_update(&tutorial(), &np, "tutorial → node ports");
    check_update(&np, &tutorial(), "node ports → tutorial");
    // Back to ClusterIP: the node port goes, the ClusterIP stays.
    let closed = with_service(np.clone(), |s| s.ports.iter_mut().for_each(|p| p.node_port = None), "my-nginx");
    check_update(&np, &closed, "node ports closed");
    let t = table(&closed);
    assert_eq!(trace(&t, &pod("198.51.100.1", "198.51.100.2", Proto::Tcp, 31704)), Outcome::Untouched { masquerade: false });
    // Cluster → Local and back.
    let local = with_service(np.clone(), |s| s.external_local = true, "my-nginx");
    check_update(&np, &local, "to Local");
    check_update(&local, &np, "to Cluster");
    let t = table(&local);
    assert_eq!(dnat(&trace(&t, &pod("198.51.100.1", "198.51.100.2", Proto::Tcp, 31704))), pairs(&[("10.244.0.5:80", false)]));
}

#[test]
fn load_balancer_addresses_are_handled_on_the_node_like_its_node_ports() {
    let np = nodeports();
    let lb = with_service(np.clone(), |s| s.load_balancer_ips = vec![ip("203.0.113.1")], "my-nginx");
    check_update(&np, &lb, "balancer address added");
    check_update(&lb, &np, "balancer address gone");
    let t = table(&lb);
    // From a pod: the external chain (Cluster: SNAT), never out to the balancer.
    let out = trace(&t, &pod("10.244.0.9", "203.0.113.1", Proto::Tcp, 443));
    assert_eq!(dnat(&out), pairs(&[("10.244.0.5:443", true), ("10.244.1.5:443", true)]));
    // Ports the Service does not have are left alone.
    assert_eq!(trace(&t, &pod("10.244.0.9", "203.0.113.1", Proto::Tcp, 444)), Outcome::Untouched { masquerade: false });
    let local = with_service(lb, |s| s.external_local = true, "my-nginx");
    assert_eq!(dnat(&trace(&table(&local), &pod("10.244.0.9", "203.0.113.1", Proto::Tcp, 8080))), pairs(&[("10.244.0.5:80", false)]));
}
