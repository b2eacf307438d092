//! Real-kernel tests of the network plumbing (need root). Every namespace is named
//! `emu-nettest<pid>-...` and removed by a guard, also when an assertion fails.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use emu_host::net::{self, netns_path};

/// Deletes the namespaces it created when dropped.
struct Namespaces {
    prefix: String,
    names: Vec<String>,
}

impl Namespaces {
    /// Namespaces of one test: `emu-nettest<pid>-<test>-...` (tests run in parallel).
    fn new(test: &str) -> Self {
        Namespaces { prefix: format!("emu-nettest{}-{test}-", std::process::id()), names: Vec::new() }
    }
    /// Creates `<prefix><tag>` and returns its path.
    fn add(&mut self, tag: &str) -> PathBuf {
        let name = format!("{}{tag}", self.prefix);
        self.names.push(name.clone());
        net::create_named_netns(&name).expect("create netns");
        netns_path(&name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = net::delete_named_netns(name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ok(args: &[&str]) -> String {
    let (success, out) = run(args);
    assert!(success, "{args:?} failed: {out}");
    out
}

fn ns_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).expect("netns name")
}

/// `ip -n NS ARGS...`
fn ip(ns: &Path, args: &[&str]) -> String {
    let mut argv = vec!["ip", "-n", ns_name(ns)];
    argv.extend_from_slice(args);
    ok(&argv)
}

/// One ping (busybox: the host has no ping) from `ns` to `dst`, retried a few times (the first
/// one may wait for ARP).
fn ping(ns: &Path, dst: Ipv4Addr) -> bool {
    ping_tries(ns, dst, 3)
}

/// A ping that is expected to fail is tried once.
fn no_ping(ns: &Path, dst: Ipv4Addr) -> bool {
    !ping_tries(ns, dst, 1)
}

fn ping_tries(ns: &Path, dst: Ipv4Addr, tries: usize) -> bool {
    let dst = dst.to_string();
    let mut out = String::new();
    let reached = (0..tries).any(|_| {
        let (success, text) = run(&["ip", "netns", "exec", ns_name(ns), "busybox", "ping", "-c1", "-W1", &dst]);
        out = text;
        success
    });
    if !reached && tries > 1 {
        eprintln!("ping {dst} from {}: {out}", ns_name(ns));
    }
    reached
}

/// The host namespace as a user sees it (lifetimes, which tick, left out).
fn host_snapshot() -> String {
    let addr: String = ok(&["ip", "addr"]).lines().filter(|l| !l.contains("_lft")).map(|l| format!("{l}\n")).collect();
    ok(&["ip", "-br", "link"]) + &ok(&["ip", "route"]) + &addr
}

/// Runs `f` on a fresh std thread that entered namespace `ns` (test-only: the thread is ours).
fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(ns).expect("open netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

const A_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);
const A_GW: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
const B_GW: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 1);
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);
const POD_B2: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_two_nodes_and_pods() {
    let host_before = host_snapshot();
    let mut g = Namespaces::new("topo");
    let fabric = g.add("fabric");
    let (node_a, node_b) = (g.add("node-a"), g.add("node-b"));
    let (pod_a, pod_b, pod_b2) = (g.add("pod-a"), g.add("pod-b"), g.add("pod-b2"));
    net::create_named_netns(ns_name(&fabric)).expect("create is idempotent");
    let prefix = g.prefix.clone();
    assert_eq!(net::list_named_netns(&prefix).unwrap().len(), 6);

    // Everything twice: each step is idempotent.
    for _ in 0..2 {
        net::setup_fabric(&fabric).await.unwrap();
        net::connect_node(&fabric, &node_a, "port-a", A_IP, 16).await.unwrap();
        net::connect_node(&fabric, &node_b, "port-b", B_IP, 16).await.unwrap();
        net::setup_node(&node_a, A_GW, 24).await.unwrap();
        net::setup_node(&node_b, B_GW, 24).await.unwrap();
        net::route_service_cidr(&node_a, Ipv4Addr::new(10, 96, 0, 0), 12).await.unwrap();
        net::sync_routes(&node_a, &[(Ipv4Addr::new(10, 244, 2, 0), 24, B_IP)]).await.unwrap();
        net::sync_routes(&node_b, &[(Ipv4Addr::new(10, 244, 1, 0), 24, A_IP)]).await.unwrap();
        net::setup_pod(&node_a, &pod_a, "veth-a1", POD_A, 24, A_GW).await.unwrap();
        net::setup_pod(&node_b, &pod_b, "veth-b1", POD_B, 24, B_GW).await.unwrap();
    }
    net::setup_pod_with_ip_commands(&node_b, &pod_b2, "veth-b2", POD_B2, 24, B_GW).unwrap();

    // The node's routes are exactly: the fabric, its pod CIDR, the other node's pod CIDR.
    assert_eq!(
        ip(&node_a, &["route"]),
        "10.96.0.0/12 dev eth0 scope link \n\
         10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1 \n\
         10.244.2.0/24 via 172.18.0.3 dev eth0 proto 69 \n\
         172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.2 \n"
    );
    // A pod's only route is its default route via the node (no route for its own /24: even
    // same-node traffic is routed by the node, so the service proxy sees both directions).
    assert_eq!(ip(&pod_a, &["route"]), "default via 10.244.1.1 dev eth0 onlink \n");
    assert_eq!(ip(&pod_b2, &["route"]), "default via 10.244.2.1 dev eth0 onlink \n");
    let addr = ip(&pod_a, &["addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.244.1.2/24 ") && addr.contains("scope global noprefixroute eth0"), "{addr}");
    for ns in [&fabric, &node_a, &node_b] {
        assert_eq!(ip(ns, &["route", "show", "default"]), "", "{ns:?} must have no default route");
    }
    assert_eq!(ip(&fabric, &["-4", "addr", "show", "scope", "global"]), "", "the fabric is L2 only");
    // Nothing leads out: not from a node, and a pod's default route ends in its node.
    let (reachable, out) = run(&["ip", "-n", ns_name(&node_a), "route", "get", "8.8.8.8"]);
    assert!(!reachable && out.contains("unreachable"), "{out}");
    assert!(no_ping(&pod_a, Ipv4Addr::new(192, 0, 2, 1)));
    assert!(ip(&node_a, &["-d", "link", "show", "veth-a1"]).contains("hairpin on"));
    assert_eq!(ok(&["ip", "netns", "exec", ns_name(&node_a), "cat", "/proc/sys/net/ipv4/ip_forward"]), "1\n");

    // Pod to pod across nodes, routed, from either kind of set-up.
    assert!(ping(&pod_a, POD_B), "pod a -> pod b");
    assert!(ping(&pod_a, POD_B2), "pod a -> pod b2 (ip commands)");
    assert!(ping(&pod_b2, POD_B), "pod b2 -> pod b (same node)");

    // No NAT: pod b sees pod a's own address as the source of a connection.
    let listener = in_netns(&pod_b, || {
        let l = TcpListener::bind("0.0.0.0:8080").expect("bind");
        l.set_nonblocking(false).expect("blocking");
        l.accept().map(|(_, peer)| peer)
    });
    std::thread::sleep(Duration::from_millis(100));
    let client = in_netns(&pod_a, || TcpStream::connect_timeout(&SocketAddr::from((POD_B, 8080)), Duration::from_secs(2)).map(drop));
    client.join().unwrap().expect("connect pod a -> pod b:8080");
    assert_eq!(listener.join().unwrap().expect("accept").ip(), POD_A);

    // sync_routes: changes ours, deletes ours that are gone, keeps others'.
    ip(&node_a, &["route", "add", "10.99.0.0/16", "via", "172.18.0.3"]);
    let changed = [(Ipv4Addr::new(10, 244, 2, 0), 24, Ipv4Addr::new(172, 18, 0, 9)), (Ipv4Addr::new(10, 244, 3, 0), 24, B_IP)];
    net::sync_routes(&node_a, &changed).await.unwrap();
    let routes = ip(&node_a, &["route"]);
    assert!(routes.contains("10.244.2.0/24 via 172.18.0.9 dev eth0 proto 69"), "{routes}");
    assert!(routes.contains("10.244.3.0/24 via 172.18.0.3 dev eth0 proto 69"), "{routes}");
    net::sync_routes(&node_a, &changed[1..]).await.unwrap();
    let routes = ip(&node_a, &["route"]);
    assert!(!routes.contains("10.244.2.0/24") && routes.contains("10.244.3.0/24"), "{routes}");
    assert!(routes.contains("10.99.0.0/16 via 172.18.0.3"), "not ours, kept: {routes}");
    net::sync_routes(&node_a, &[(Ipv4Addr::new(10, 244, 2, 0), 24, B_IP)]).await.unwrap();

    // A node whose eth0 is down is cut off; up again (and its routes, which the kernel dropped
    // with the link, re-synced), it is back.
    net::set_link_up(&node_b, "eth0", false).await.unwrap();
    assert!(no_ping(&pod_a, POD_B));
    net::set_link_up(&node_b, "eth0", true).await.unwrap();
    assert!(!ip(&node_b, &["route"]).contains("10.244.1.0/24"), "the kernel flushed it");
    net::sync_routes(&node_b, &[(Ipv4Addr::new(10, 244, 1, 0), 24, A_IP)]).await.unwrap();
    assert!(ping(&pod_a, POD_B), "after eth0 up again");

    // The host saw none of it.
    assert_eq!(host_snapshot(), host_before, "host network namespace changed");

    // Teardown removes both ends; twice is fine; set-up works again afterwards.
    net::teardown_pod(&node_a, "veth-a1").await.unwrap();
    net::teardown_pod(&node_a, "veth-a1").await.unwrap();
    assert!(!ip(&node_a, &["-br", "link"]).contains("veth-a1"));
    assert!(!ip(&pod_a, &["-br", "link"]).contains("eth0"));
    net::setup_pod(&node_a, &pod_a, "veth-a1", POD_A, 24, A_GW).await.unwrap();
    assert!(ping(&pod_a, POD_B), "after re-setup");

    // Ends that are not each other's peer (no dummy driver here: stray veths) are rebuilt.
    net::teardown_pod(&node_a, "veth-a1").await.unwrap();
    ip(&pod_a, &["link", "add", "eth0", "type", "veth", "peer", "name", "stray0"]);
    ip(&node_a, &["link", "add", "veth-a1", "type", "veth", "peer", "name", "stray1"]);
    net::setup_pod(&node_a, &pod_a, "veth-a1", POD_A, 24, A_GW).await.unwrap();
    assert!(ping(&pod_a, POD_B), "after rebuilding a broken pair");
    assert!(!ip(&pod_a, &["-br", "link"]).contains("stray0"));

    // Errors name the namespace and what to do.
    let err = net::setup_pod(&fabric, &pod_a, "veth-x", POD_A, 24, A_GW).await.unwrap_err().to_string();
    assert!(err.contains(ns_name(&fabric)) && err.contains("cni0") && err.contains("setup_node"), "{err}");

    drop(g);
    assert!(net::list_named_netns(&prefix).unwrap().is_empty());
    net::delete_named_netns(&format!("{prefix}fabric")).expect("delete is idempotent");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times 100 pod set-ups with netlink and 100 with `ip` commands (pod namespaces made beforehand,
/// not timed). `cargo test -p emu-nodeagent --test net -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_pod_setup_netlink_vs_ip() {
    const N: usize = 100;
    let mut g = Namespaces::new("bench");
    let node = g.add("node");
    net::setup_node(&node, A_GW, 16).await.unwrap();
    let pods: Vec<PathBuf> = (0..2 * N).map(|i| g.add(&format!("pod{i}"))).collect();
    let pod_ip = |i: usize| Ipv4Addr::new(10, 244, 1 + (i / 200) as u8, 2 + (i % 200) as u8);

    let mut netlink = Vec::with_capacity(N);
    for (i, pod) in pods[..N].iter().enumerate() {
        let t = Instant::now();
        net::setup_pod(&node, pod, &format!("bn{i}"), pod_ip(i), 16, A_GW).await.unwrap();
        netlink.push(t.elapsed());
    }
    let mut ipcmd = Vec::with_capacity(N);
    for (i, pod) in pods[N..].iter().enumerate() {
        let t = Instant::now();
        net::setup_pod_with_ip_commands(&node, pod, &format!("bi{i}"), pod_ip(N + i), 16, A_GW).unwrap();
        ipcmd.push(t.elapsed());
    }
    assert!(ping(&pods[0], pod_ip(2 * N - 1)), "a netlink pod reaches an ip-command pod");
    eprintln!("pod set-up, median of {N}: netlink {:?}, ip commands {:?}", median(netlink), median(ipcmd));
}
