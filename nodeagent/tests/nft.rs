//! Real-kernel tests of the service proxy's nft scripts (need root). Every test works in network
//! namespaces of its own, `emu-nfttest-<pid>-<n>`, removed by a guard also when an assertion
//! fails; nft runs through `ip netns exec`, so the host's namespace is never touched.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use emu_dataplane::proxy::{
    affinity_set_name, parse_listing, render_full, render_resync, render_update, EndpointModel, PortModel, Protocol, ProxyInput,
    ServiceModel,
};
use emu_host::nft::{NftRunner, RealNft};
use emu_logic::ipam::Ipv4Cidr;

const NODE: &str = "node-a";

/// A network namespace of this test process, deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("emu-nfttest-{}-{n}", std::process::id());
        ok(&["ip", "netns", "add", &name]);
        Netns { name }
    }

    fn nft(&self) -> RealNft {
        RealNft::with_command(&["ip", "netns", "exec", &self.name, "nft"])
    }

    fn apply(&self, script: &str, what: &str) {
        self.nft().apply(script).unwrap_or_else(|e| panic!("{what} in {}: {e}", self.name));
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip", "netns", "exec", &self.name];
        argv.extend_from_slice(args);
        ok(&argv)
    }

    fn listing(&self) -> String {
        self.exec(&["nft", "list", "table", "ip", "emu"])
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip").args(["netns", "del", &self.name]).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("cleanup: could not delete netns {}", self.name);
        }
    }
}

fn ok(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// A listing with what legitimately differs between equal tables taken out: the order of
/// chains, sets and maps (creation order), the order of set elements, and their expiry times.
fn normalise(listing: &str) -> String {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut depth = 0usize;
    for line in listing.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let opens_block = depth == 1 && line.ends_with('{');
        if opens_block {
            blocks.push(Vec::new());
        }
        // Inside a chain, set or map (not the table's own braces).
        if depth >= 2 || opens_block {
            if let Some(block) = blocks.last_mut() {
                block.push(line.to_string());
            }
        }
        depth = (depth + line.matches('{').count()).saturating_sub(line.matches('}').count());
    }
    let mut out: Vec<String> = blocks.into_iter().map(|b| sort_elements(&b.join("\n"))).collect();
    out.sort();
    out.join("\n\n")
}

/// `elements = { a, b }` (possibly over several lines) with sorted elements, minus `expires …`.
fn sort_elements(block: &str) -> String {
    let Some(start) = block.find("elements = {") else {
        return block.to_string();
    };
    let inner_start = start + "elements = {".len();
    let end = inner_start + block[inner_start..].find('}').expect("elements end");
    let mut items: Vec<String> = block[inner_start..end]
        .split(',')
        .map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut skip = false;
            for w in words {
                if skip {
                    skip = false;
                } else if w == "expires" {
                    skip = true;
                } else {
                    kept.push(w);
                }
            }
            kept.join(" ")
        })
        .collect();
    items.sort();
    format!("{}elements = {{ {} }}{}", &block[..start], items.join(", "), &block[end + 1..])
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test IP")
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("test CIDR")
}

fn ep(addr: &str, port: u16, node: &str) -> EndpointModel {
    EndpointModel { ip: ip(addr), port, node_name: Some(node.to_string()), ready: true, serving: true, terminating: false }
}

fn port(protocol: Protocol, number: u16, endpoints: Vec<EndpointModel>) -> PortModel {
    PortModel { name: String::new(), protocol, port: number, node_port: None, endpoints }
}

fn service(name: &str, cluster_ip: &str, ports: Vec<PortModel>) -> ServiceModel {
    ServiceModel {
        namespace: "default".into(),
        name: name.into(),
        cluster_ip: ip(cluster_ip),
        affinity_timeout: None,
        internal_local: false,
        ports,
        external_local: false,
        load_balancer_ips: vec![],
        health_check_node_port: None,
    }
}

fn model(mut services: Vec<ServiceModel>) -> ProxyInput {
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    ProxyInput {
        node_name: NODE.into(),
        cluster_pod_cidr: cidr("10.244.0.0/16"),
        service_cidr: cidr("10.96.0.0/12"),
        services,
        node_ips: vec![],
    }
}

/// A web Service with three endpoints, DNS on UDP and TCP, a Service without endpoints and a
/// Local one whose only endpoint is elsewhere.
fn base() -> ProxyInput {
    let web_eps = vec![ep("10.244.0.5", 8080, NODE), ep("10.244.1.5", 8080, "node-b"), ep("10.244.2.5", 8080, "node-c")];
    let dns_eps = || vec![ep("10.244.0.2", 53, NODE), ep("10.244.1.2", 53, "node-b")];
    let mut local = service("local", "10.96.0.40", vec![port(Protocol::Tcp, 80, vec![ep("10.244.1.9", 80, "node-b")])]);
    local.internal_local = true;
    model(vec![
        service("web", "10.96.0.20", vec![port(Protocol::Tcp, 80, web_eps)]),
        service("dns", "10.96.0.10", vec![port(Protocol::Udp, 53, dns_eps()), port(Protocol::Tcp, 53, dns_eps())]),
        service("empty", "10.96.0.30", vec![port(Protocol::Tcp, 80, vec![])]),
        local,
    ])
}

fn change(mut m: ProxyInput, name: &str, f: impl FnOnce(&mut ServiceModel)) -> ProxyInput {
    f(m.services.iter_mut().find(|s| s.name == name).expect("service"));
    m
}

fn one_endpoint_removed() -> ProxyInput {
    change(base(), "web", |s| {
        s.ports[0].endpoints.remove(1);
    })
}

fn service_added() -> ProxyInput {
    let mut m = base();
    m.services.push(service("api", "10.96.0.50", vec![port(Protocol::Sctp, 9000, vec![ep("10.244.1.7", 9001, "node-b")])]));
    model(m.services)
}

fn affinity_on() -> ProxyInput {
    change(base(), "web", |s| s.affinity_timeout = Some(10800))
}

#[test]
fn full_sync_applies_on_an_empty_namespace_and_is_idempotent() {
    let ns = Netns::new();
    assert_eq!(ns.nft().list().expect("list without a table"), "");
    ns.apply(&render_full(&base()), "first full sync");
    let first = ns.listing();
    assert!(first.contains("chain svc-default/web/tcp/80 {"), "{first}");
    assert!(first.contains("10.96.0.30 . tcp . 80 : goto reject-chain"), "{first}");
    ns.apply(&render_full(&base()), "second full sync");
    assert_eq!(normalise(&ns.listing()), normalise(&first));
    // The terse listing names every chain.
    let objects = parse_listing(&ns.nft().list().expect("list"));
    assert!(objects.chains.contains("ep-default/web/tcp/80/10.244.0.5/8080"), "{objects:?}");
    assert!(objects.maps.contains("service-ips"), "{objects:?}");
}

#[test]
fn updates_give_the_same_table_as_a_full_sync() {
    let cases =
        [("one endpoint removed", one_endpoint_removed()), ("service added", service_added()), ("affinity turned on", affinity_on())];
    for (what, new) in cases {
        let updated = Netns::new();
        updated.apply(&render_full(&base()), "full sync of the old state");
        let update = render_update(&base(), &new);
        assert!(!update.is_empty(), "{what}: empty update");
        updated.apply(&update, what);
        let fresh = Netns::new();
        fresh.apply(&render_full(&new), "full sync of the new state");
        let (got, want) = (normalise(&updated.listing()), normalise(&fresh.listing()));
        assert!(got == want, "{what}:\n--- after update ---\n{got}\n--- full sync ---\n{want}");
        // A full sync on top of updates is still a no-op.
        updated.apply(&render_full(&new), "full sync after the update");
        assert_eq!(normalise(&updated.listing()), want, "{what}: full sync after update");
    }
}

#[test]
fn resync_deletes_leftovers() {
    let old = service_added();
    let new = one_endpoint_removed();
    let ns = Netns::new();
    ns.apply(&render_full(&old), "old state");
    let existing = parse_listing(&ns.nft().list().expect("list"));
    ns.apply(&render_resync(&new, &existing), "resync");
    let fresh = Netns::new();
    fresh.apply(&render_full(&new), "fresh");
    assert_eq!(normalise(&ns.listing()), normalise(&fresh.listing()));
}

#[test]
fn affinity_entries_survive_syncs_and_updates() {
    let sticky = affinity_on();
    let web = sticky.services.iter().find(|s| s.name == "web").expect("web");
    let set = affinity_set_name(web, &web.ports[0], &web.ports[0].endpoints[0]);
    let ns = Netns::new();
    ns.apply(&render_full(&sticky), "full sync");
    ns.apply(&format!("add element ip emu {set} {{ 10.244.3.3 timeout 1h }}\n"), "a client remembered");
    let remembered = |ns: &Netns| ns.exec(&["nft", "list", "set", "ip", "emu", &set]).contains("10.244.3.3");
    assert!(remembered(&ns));
    ns.apply(&render_full(&sticky), "second full sync");
    assert!(remembered(&ns), "a full sync lost the affinity entry");
    let fewer = change(sticky.clone(), "web", |s| {
        s.ports[0].endpoints.remove(2);
    });
    ns.apply(&render_update(&sticky, &fewer), "endpoint removed");
    assert!(remembered(&ns), "an update lost the affinity entry");
}

// ---------------------------------------------------------------------------------------------
// The rules on a real data path: one node with two pods on its bridge.

/// Runs `f` on a new thread inside the namespace at `path` (the thread is ours alone).
fn in_netns<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(path).expect("open netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

fn connect(path: &str, to: (Ipv4Addr, u16), timeout: Duration) -> (std::io::Result<()>, Duration) {
    in_netns(path, move || {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(&SocketAddr::from(to), timeout).map(drop);
        (r, t.elapsed())
    })
    .join()
    .expect("connect thread")
}

#[test]
fn data_path_dnat_reject_drop_hairpin() {
    let (node, client, server) = (Netns::new(), Netns::new(), Netns::new());
    node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    node.exec(&["ip", "link", "add", "cni0", "type", "bridge"]);
    node.exec(&["ip", "addr", "add", "10.244.0.1/24", "dev", "cni0"]);
    node.exec(&["ip", "link", "set", "cni0", "up"]);
    // The node's own traffic to ClusterIPs needs a route before nft sees it (see render.rs).
    node.exec(&["ip", "route", "add", "10.96.0.0/12", "dev", "cni0"]);
    for (pod, veth, addr) in [(&client, "vclient", "10.244.0.2/24"), (&server, "vserver", "10.244.0.3/24")] {
        node.exec(&["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name]);
        node.exec(&["ip", "link", "set", veth, "master", "cni0", "up"]);
        // Hairpin: the bridge may send a frame back out of the port it came from (NET-5).
        node.exec(&["ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on"]);
        pod.exec(&["ip", "addr", "add", addr, "dev", "eth0"]);
        pod.exec(&["ip", "link", "set", "eth0", "up"]);
        pod.exec(&["ip", "link", "set", "lo", "up"]);
        pod.exec(&["ip", "route", "add", "default", "via", "10.244.0.1"]);
    }
    let rules = model(vec![
        service("web", "10.96.0.20", vec![port(Protocol::Tcp, 80, vec![ep("10.244.0.3", 8080, NODE)])]),
        service("empty", "10.96.0.30", vec![port(Protocol::Tcp, 80, vec![])]),
    ]);
    node.apply(&render_full(&rules), "rules");

    // The server: reports the peer of every connection it accepts.
    let (tx, rx) = mpsc::channel();
    let (listening_tx, listening) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_server = stop.clone();
    let server_thread = in_netns(&server.path(), move || {
        let listener = TcpListener::bind("0.0.0.0:8080").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let _ = listening_tx.send(());
        while !stop_server.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((_, peer)) => {
                    let _ = tx.send(peer.ip());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let peer = |what: &str| rx.recv_timeout(Duration::from_secs(2)).unwrap_or_else(|_| panic!("{what}: no connection arrived"));
    let short = Duration::from_secs(2);
    // Connecting before the server thread has bound its port is refused (a loaded CI machine
    // showed it).
    listening.recv_timeout(Duration::from_secs(5)).expect("the server listening");

    // Pod → ClusterIP: DNAT to the endpoint, the client's own address kept (NET-4).
    let (r, _) = connect(&client.path(), (ip("10.96.0.20"), 80), short);
    r.expect("client -> web ClusterIP");
    assert_eq!(peer("client -> web").to_string(), "10.244.0.2");

    // Hairpin: the server reaches itself through its Service and sees the node's address.
    let (r, _) = connect(&server.path(), (ip("10.96.0.20"), 80), short);
    r.expect("server -> its own ClusterIP");
    assert_eq!(peer("hairpin").to_string(), "10.244.0.1");

    // From the node itself: masqueraded to a node address.
    let (r, _) = connect(&node.path(), (ip("10.96.0.20"), 80), short);
    r.expect("node -> web ClusterIP");
    assert_eq!(peer("node -> web").to_string(), "10.244.0.1");

    // No endpoints, and a port the Service does not have: refused at once (NET-1, NET-2).
    for (to, what) in [((ip("10.96.0.30"), 80), "no endpoints"), ((ip("10.96.0.20"), 81), "undefined port")] {
        let (r, took) = connect(&client.path(), to, short);
        let kind = r.expect_err(what).kind();
        assert_eq!(kind, std::io::ErrorKind::ConnectionRefused, "{what}");
        assert!(took < Duration::from_millis(500), "{what}: refused only after {took:?}");
    }

    // An unallocated service address: silently dropped, the client times out.
    let (r, took) = connect(&client.path(), (ip("10.96.0.99"), 80), Duration::from_millis(700));
    assert_eq!(r.expect_err("unallocated").kind(), std::io::ErrorKind::TimedOut);
    assert!(took >= Duration::from_millis(600), "{took:?}");

    // No echo reply from a ClusterIP.
    let out =
        Command::new("ip").args(["netns", "exec", &client.name, "busybox", "ping", "-c1", "-W1", "10.96.0.20"]).output().expect("ping");
    assert!(!out.status.success(), "ping of a ClusterIP was answered");

    stop.store(true, Ordering::SeqCst);
    server_thread.join().expect("server thread");
}
