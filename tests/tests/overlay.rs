//! The VXLAN overlay between hosts (issue 18 item 2), on real kernels, as root: two emulated
//! hosts on a LAN of their own, each with a fabric joined to the other's by VXLAN devices whose
//! sockets live in the hosts, and a node on each fabric. Every namespace is named
//! `emu-vxt<pid>-…` and removed by a guard, also when an assertion fails; the host's own
//! namespace is not touched.
//!
//! ```text
//!  emu-vxt<pid>-lan: bridge lan0
//!        |                                  |
//!  h1: eth0 192.0.2.1/24              h2: eth0 192.0.2.2/24      (underlay; VXLAN sockets :4789)
//!  f1: bridge fabric0 + vx-fabric <=> f2: bridge fabric0 + vx-fabric   (VNI 42)
//!        |                                  |
//!  n1: eth0 172.18.0.2/16             n2: eth0 172.18.0.3/16     (MTU: the LAN's - 50)
//! ```

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use emu_host::net::{self, NamespaceGuard};
use emu_host::overlay::{self, VXLAN_PORT};
use emu_tests::Run;
use socket2::{Domain, Protocol, Socket, Type};

const H1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const H2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const N1: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const N2: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);
const VNI: u32 = 42;
const VX: &str = "vx-fabric";
/// Set in the child that [`vxlan_underlay_of_this_process`] starts inside a namespace: the
/// path of the target namespace.
const CHILD_ENV: &str = "EMU_VXT_TARGET";

/// Runs `body` (unless not root) with a guard of namespaces named `emu-vxt<pid>-<test>-…`, then
/// checks that they are all gone and that the host's own namespace has the links it had.
async fn isolated<F: Future<Output = ()>>(test: &str, body: impl FnOnce(NamespaceGuard) -> F) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the overlay test needs root (namespaces, links)");
        return;
    }
    let root_before = root_links();
    let g = NamespaceGuard::new(format!("emu-vxt{}-{test}-", std::process::id()));
    let prefix = g.prefix().to_string();
    body(g).await; // the guard is dropped with the body's future, also when it panics
    assert_eq!(net::list_named_netns(&prefix).unwrap(), Vec::<String>::new(), "every namespace is gone");
    assert_eq!(root_links(), root_before, "the host namespace's links changed");
}

/// Runs `args` (the program first) to the end.
fn cmd(args: &[&str]) -> Run {
    Run::from(Command::new(args[0]).args(&args[1..]).output().expect("spawn"))
}

fn ns_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).expect("netns name")
}

/// `ip netns exec NS ARGS...`
fn exec_run(ns: &Path, args: &[&str]) -> Run {
    let mut argv = vec!["ip", "netns", "exec", ns_name(ns)];
    argv.extend_from_slice(args);
    cmd(&argv)
}

/// The output of `ip netns exec NS ARGS...`, which must succeed.
fn exec(ns: &Path, args: &[&str]) -> String {
    exec_run(ns, args).ok().stdout
}

/// The names of the host namespace's links.
fn root_links() -> Vec<String> {
    let out = cmd(&["ip", "-o", "link", "show"]).ok().stdout;
    let mut names: Vec<String> = out.lines().filter_map(|l| l.split(": ").nth(1)).map(String::from).collect();
    names.sort();
    names
}

/// Busybox ping (the host has no iputils), a few tries: the first may wait for ARP.
fn ping(ns: &Path, dst: Ipv4Addr) -> bool {
    let dst = dst.to_string();
    (0..3).any(|_| exec_run(ns, &["busybox", "ping", "-c1", "-W1", &dst]).code == 0)
}

/// Runs `f` on a fresh std thread that entered namespace `ns` (the thread is the test's own).
fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        net::enter_netns(&ns).expect("enter netns");
        f()
    })
}

#[derive(Debug, PartialEq, Eq)]
enum DfPing {
    Reply,
    /// Sent, never answered: dropped on the way.
    NoReply,
    /// Refused by the sender's own kernel: larger than the route's MTU.
    TooBig,
}

/// An ICMP echo of `payload` bytes (IP packet: payload + 28) from `ns` to `dst` with Don't
/// Fragment (`ping -M do -s PAYLOAD`), up to `tries` times, a second each.
fn df_ping(ns: &Path, dst: Ipv4Addr, payload: usize, tries: u16) -> DfPing {
    in_netns(ns, move || {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("raw ICMP socket");
        let pmtudisc_do: libc::c_int = libc::IP_PMTUDISC_DO;
        // SAFETY: a valid socket, a pointer to a c_int that outlives the call, and its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&pmtudisc_do as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let id = (std::process::id() as u16) ^ (payload as u16);
        for seq in 0..tries {
            match sock.send_to(&echo_request(id, seq, payload), &SocketAddr::from((dst, 0)).into()) {
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return DfPing::TooBig,
                Err(e) => panic!("send echo to {dst}: {e}"),
                Ok(_) => {}
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut buf = [0u8; 65536];
            while Instant::now() < deadline {
                let Ok(n) = (&sock).read(&mut buf) else { continue };
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                let (src, icmp) = (Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]), &buf[ihl..n]);
                let echo_reply = icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes();
                if src == dst && echo_reply {
                    assert_eq!(n, payload + 28, "the reply is as large as the request");
                    return DfPing::Reply;
                }
            }
        }
        DfPing::NoReply
    })
    .join()
    .expect("ping thread")
}

fn echo_request(id: u16, seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    let mut sum: u32 = p.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

/// Sends `size` bytes over TCP from `from` to `to_ip:port` in namespace `to` and returns (the
/// time from connect to the last byte received, the sender's MSS). The receiver checks every
/// byte.
fn tcp_transfer(from: &Path, to: &Path, to_ip: Ipv4Addr, port: u16, size: usize) -> (Duration, u32) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = in_netns(to, move || {
        let listener = TcpListener::bind((to_ip, port)).expect("bind");
        ready_tx.send(()).unwrap();
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::with_capacity(size);
        conn.read_to_end(&mut got).expect("read the transfer");
        let done = Instant::now();
        assert_eq!(got.len(), size, "bytes received");
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8), "the bytes arrive intact");
        done
    });
    ready.recv_timeout(Duration::from_secs(5)).expect("listener ready");
    let client = in_netns(from, move || {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let start = Instant::now();
        let mut conn = TcpStream::connect_timeout(&SocketAddr::from((to_ip, port)), Duration::from_secs(5)).expect("connect");
        conn.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        conn.write_all(&data).expect("send the transfer");
        let mut mss: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket, a pointer to a c_int and its size, both outliving the call.
        let rc = unsafe {
            libc::getsockopt(conn.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MAXSEG, (&mut mss as *mut libc::c_int).cast(), &mut len)
        };
        assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
        (start, mss as u32)
    });
    let (start, mss) = client.join().expect("client thread");
    let done = server.join().expect("server thread");
    (done - start, mss)
}

/// The destinations of the all-zeros entries of `bridge fdb show dev VX` in `ns` (each must be
/// `self permanent`), and whether any learned (non-zero MAC) entry is there.
fn fdb(ns: &Path) -> (Vec<String>, bool) {
    let out = exec(ns, &["bridge", "fdb", "show", "dev", VX]);
    let dst = |l: &str| l.split_whitespace().skip_while(|w| *w != "dst").nth(1).map(String::from);
    let zeros: Vec<&str> = out.lines().filter(|l| l.starts_with("00:00:00:00:00:00 ")).collect();
    assert!(zeros.iter().all(|l| l.ends_with("self permanent")), "{out}");
    let learned = out.lines().any(|l| !l.starts_with("00:00:00:00:00:00 ") && l.contains(" dst "));
    (zeros.into_iter().filter_map(dst).collect(), learned)
}

fn ifindex(ns: &Path, link: &str) -> String {
    exec(ns, &["ip", "-o", "link", "show", link]).split(':').next().unwrap().to_string()
}

/// The namespaces of the module's picture, and the overlay MTU.
struct TwoHosts {
    lan: PathBuf,
    h1: PathBuf,
    f1: PathBuf,
    n1: PathBuf,
    n2: PathBuf,
    mtu: u32,
}

/// Builds the module's picture in `g`, each step `times` times.
async fn two_hosts(g: &mut NamespaceGuard, times: usize) -> TwoHosts {
    let mut add = |tag| g.add(tag).expect("create netns");
    let lan = add("lan");
    let (h1, h2) = (add("h1"), add("h2"));
    let (f1, f2) = (add("f1"), add("f2"));
    let (n1, n2) = (add("n1"), add("n2"));
    let mut mtu = 0;
    for _ in 0..times {
        // The LAN and the hosts on it (the underlay), then the overlay at its MTU.
        net::setup_lan(&lan).await.unwrap();
        net::connect_host(&lan, &h1, "veth-h1", H1, 24).await.unwrap();
        net::connect_host(&lan, &h2, "veth-h2", H2, 24).await.unwrap();
        mtu = overlay::overlay_mtu(net::link_mtu(&h1, "eth0").await.unwrap());
        for (host, fabric, node, local, port, ip) in [(&h1, &f1, &n1, H1, "veth-n0", N1), (&h2, &f2, &n2, H2, "veth-n1", N2)] {
            net::setup_fabric(fabric).await.unwrap();
            net::connect_node_mtu(fabric, node, port, ip, 16, Some(mtu)).await.unwrap();
            overlay::create_vxlan(host, fabric, VX, VNI, local, VXLAN_PORT, net::FABRIC_BRIDGE, mtu).await.unwrap();
        }
        overlay::sync_vxlan_peers(&f1, VX, &[H2]).await.unwrap();
        overlay::sync_vxlan_peers(&f2, VX, &[H1]).await.unwrap();
    }
    TwoHosts { lan, h1, f1, n1, n2, mtu }
}

/// iperf3 for `secs` seconds from `from` to `to_ip` (a server in `to`); bits per second.
fn iperf3(from: &Path, to: &Path, to_ip: Ipv4Addr, secs: u32) -> f64 {
    let mut server = Command::new("ip")
        .args(["netns", "exec", ns_name(to), "iperf3", "-s", "-1", "-B", &to_ip.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exec(to, &["ss", "-tln"]).contains(&format!("{to_ip}:5201 ")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = exec_run(from, &["iperf3", "-c", &to_ip.to_string(), "-t", &secs.to_string(), "-J"]);
    let _ = server.kill(); // ours; it exits by itself after one test (-1)
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_str(&out.ok().stdout).expect("iperf3 -J");
    json["end"]["sum_received"]["bits_per_second"].as_f64().expect("bits_per_second")
}

/// The issue's benchmark: iperf3 node to node across the two hosts against node to node on
/// one host (a third node on host 1's fabric, at the default MTU).
/// `cargo test -p emu-tests --test overlay -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_iperf3_across_hosts_vs_one_host() {
    isolated("bench", |mut g| async move {
        let n3 = g.add("n3").expect("create netns");
        let t = two_hosts(&mut g, 1).await;
        let n3_ip = Ipv4Addr::new(172, 18, 0, 4);
        net::connect_node(&t.f1, &n3, "veth-n2", n3_ip, 16).await.unwrap();
        assert!(ping(&t.n1, N2) && ping(&t.n1, n3_ip));
        let across = iperf3(&t.n1, &t.n2, N2, 3);
        let one_host = iperf3(&t.n1, &n3, n3_ip, 3);
        eprintln!(
            "iperf3 node to node: across hosts (VXLAN, MTU {}) {:.2} Gbit/s, on one host {:.2} Gbit/s, ratio {:.2}",
            t.mtu,
            across / 1e9,
            one_host / 1e9,
            across / one_host
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_fabric_over_vxlan() {
    isolated("two", |mut g| async move {
        // Each step twice: each is idempotent.
        let TwoHosts { lan, h1, f1, n1, n2, mtu } = two_hosts(&mut g, 2).await;
        assert_eq!(mtu, 1450, "the overlay MTU on a LAN of 1500");
        for (ns, link) in [(&n1, "eth0"), (&f1, "veth-n0"), (&f1, VX), (&f1, net::FABRIC_BRIDGE)] {
            assert_eq!(net::link_mtu(ns, link).await.unwrap(), 1450, "{link} in {}", ns_name(ns));
        }
        let details = exec(&f1, &["ip", "-d", "link", "show", VX]);
        assert!(details.contains("vxlan id 42 local 192.0.2.1") && details.contains("dstport 4789"), "{details}");
        assert!(details.contains("master fabric0") && details.contains("link-netns"), "{details}");

        // Node to node across the hosts, on their fabric addresses.
        assert!(ping(&n1, N2), "node 1 -> node 2 across the overlay");
        assert!(ping(&n2, N1), "node 2 -> node 1 across the overlay");

        // The VXLAN socket is in the host (underlay) namespace, not in the fabric.
        assert!(exec(&h1, &["ss", "-uln"]).contains(&format!(":{VXLAN_PORT} ")), "socket in host 1");
        assert!(!exec(&f1, &["ss", "-uln"]).contains(&format!(":{VXLAN_PORT} ")), "no socket in fabric 1");

        // A full-size TCP transfer crosses at the overlay MTU.
        let size = 4 << 20;
        let (took, mss) = tcp_transfer(&n1, &n2, N2, 5201, size);
        let mbit = size as f64 * 8.0 / took.as_secs_f64() / 1e6;
        eprintln!("TCP {} MiB node 1 -> node 2 across hosts: {took:?} ({mbit:.0} Mbit/s), MSS {mss}", size >> 20);
        assert!(mss <= mtu - 40, "MSS {mss} fits the overlay MTU");

        // Don't Fragment at the largest size that fits: 1422 + 8 (ICMP) + 20 (IP) = 1450.
        assert_eq!(df_ping(&n1, N2, 1422, 3), DfPing::Reply, "largest DF ping");
        assert_eq!(df_ping(&n1, N2, 1423, 1), DfPing::TooBig, "one byte more is refused by the node");
        // The MTU matters: a node left at 1500 sends full-size packets that the fabric bridge
        // drops at the VXLAN port, silently (no error, no answer), while small ones pass.
        net::set_mtu(&n1, "eth0", 1500).await.unwrap();
        net::set_mtu(&f1, "veth-n0", 1500).await.unwrap();
        assert_eq!(df_ping(&n1, N2, 1472, 2), DfPing::NoReply, "a black hole at MTU 1500");
        assert_eq!(df_ping(&n1, N2, 1422, 3), DfPing::Reply, "small enough still crosses");
        // connect_node_mtu on the existing pair puts both ends back.
        net::connect_node_mtu(&f1, &n1, "veth-n0", N1, 16, Some(mtu)).await.unwrap();
        assert_eq!((net::link_mtu(&n1, "eth0").await.unwrap(), net::link_mtu(&f1, "veth-n0").await.unwrap()), (mtu, mtu));
        assert_eq!(df_ping(&n1, N2, 1422, 3), DfPing::Reply);
        // A LAN narrower than the overlay was sized for (1400 on host 1's side): the full-size
        // DF ping fails, and the kernel's VXLAN device, a bridge port, answers the sender with
        // "fragmentation needed" (RFC 4459), so the node learns the path MTU (1400 - 50).
        let lan_side = [(&h1, "eth0"), (&lan, "veth-h1")];
        for (ns, link) in lan_side {
            net::set_mtu(ns, link, 1400).await.unwrap();
        }
        assert_ne!(df_ping(&n1, N2, 1422, 2), DfPing::Reply, "full size on a narrower LAN");
        let route = exec(&n1, &["ip", "route", "get", &N2.to_string()]);
        assert!(route.contains("mtu 1350"), "the node learned the path MTU: {route}");
        assert_eq!(df_ping(&n1, N2, 1322, 3), DfPing::Reply, "the path MTU crosses");
        for (ns, link) in lan_side {
            net::set_mtu(ns, link, 1500).await.unwrap();
        }
        exec(&n1, &["ip", "route", "flush", "cache"]);
        assert_eq!(df_ping(&n1, N2, 1422, 3), DfPing::Reply, "full size again");

        // The replication list: exactly the peers given, learned entries left alone.
        let (zeros, learned) = fdb(&f1);
        assert_eq!(zeros, ["192.0.2.2"]);
        assert!(learned, "node 2's MAC was learned behind 192.0.2.2");
        let nine = Ipv4Addr::new(192, 0, 2, 9);
        overlay::sync_vxlan_peers(&f1, VX, &[H2, nine]).await.unwrap();
        let (mut zeros, _) = fdb(&f1);
        zeros.sort();
        assert_eq!(zeros, ["192.0.2.2", "192.0.2.9"]);
        overlay::sync_vxlan_peers(&f1, VX, &[nine]).await.unwrap();
        let (zeros, learned) = fdb(&f1);
        assert_eq!(zeros, ["192.0.2.9"]);
        assert!(learned, "learned entries survive a sync");
        overlay::sync_vxlan_peers(&f1, VX, &[H2]).await.unwrap();
        overlay::sync_vxlan_peers(&f1, VX, &[H2]).await.unwrap();
        assert_eq!(fdb(&f1).0, ["192.0.2.2"]);

        // Same settings: the device is kept; other settings: it is replaced (and its peers go).
        let index = ifindex(&f1, VX);
        overlay::create_vxlan(&h1, &f1, VX, VNI, H1, VXLAN_PORT, net::FABRIC_BRIDGE, mtu).await.unwrap();
        assert_eq!(ifindex(&f1, VX), index, "kept");
        overlay::create_vxlan(&h1, &f1, VX, VNI + 1, H1, VXLAN_PORT, net::FABRIC_BRIDGE, mtu).await.unwrap();
        assert!(exec(&f1, &["ip", "-d", "link", "show", VX]).contains("vxlan id 43 "), "replaced");
        assert_eq!(fdb(&f1).0, Vec::<String>::new());
        overlay::create_vxlan(&h1, &f1, VX, VNI, H1, VXLAN_PORT, net::FABRIC_BRIDGE, mtu).await.unwrap();
        overlay::sync_vxlan_peers(&f1, VX, &[H2]).await.unwrap();
        assert!(ping(&n1, N2), "after re-creating the device");

        // Errors say what is missing.
        let err = overlay::create_vxlan(&h1, &lan, VX, VNI, H1, VXLAN_PORT, net::FABRIC_BRIDGE, mtu).await.unwrap_err().to_string();
        assert!(err.contains("bridge fabric0 does not exist") && err.contains(ns_name(&lan)), "{err}");
    })
    .await;
}

/// `create_vxlan` with the namespace of the calling process as the underlay (a real machine's
/// root namespace, `/proc/self/ns/net`). So as not to touch this machine's own namespace, the
/// test runs itself again inside a namespace of its own (`ip netns exec`), where that namespace
/// is "the process's".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_underlay_of_this_process() {
    if let Ok(target) = std::env::var(CHILD_ENV) {
        // The child: /proc/self/ns/net is the test's "host" namespace.
        let (own, target) = (Path::new("/proc/self/ns/net"), PathBuf::from(target));
        let mut indexes = Vec::new();
        for _ in 0..2 {
            overlay::create_vxlan(own, &target, VX, 7, Ipv4Addr::new(192, 0, 2, 7), VXLAN_PORT, net::FABRIC_BRIDGE, 1450).await.unwrap();
            indexes.push(ifindex(&target, VX));
        }
        assert_eq!(indexes[0], indexes[1], "the second call keeps the device");
        return;
    }
    isolated("self", |mut g| async move {
        let (host, fabric) = (g.add("host").expect("create netns"), g.add("fabric").expect("create netns"));
        net::setup_fabric(&fabric).await.unwrap();
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", ns_name(&host)])
            .arg(&exe)
            .args(["--exact", "vxlan_underlay_of_this_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &fabric)
            .output()
            .expect("run the test in a namespace");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "child: {text}");
        let details = exec(&fabric, &["ip", "-d", "link", "show", VX]);
        assert!(
            details.contains("vxlan id 7 local 192.0.2.7") && details.contains("master fabric0") && details.contains("mtu 1450"),
            "{details}"
        );
        assert!(exec(&host, &["ss", "-uln"]).contains(&format!(":{VXLAN_PORT} ")), "socket in the child's own namespace");
        assert!(!exec(&fabric, &["ss", "-uln"]).contains(&format!(":{VXLAN_PORT} ")), "no socket in the fabric");
    })
    .await;
}
