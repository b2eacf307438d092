//! Benchmark of the nftables service proxy (`sudo cargo run --release -p emu-tests --bin
//! emu-bench-proxy`): prints figures, asserts nothing. Runs in a private network namespace
//! (`emu-bench-proxy-<pid>`, deleted at the end and on panic), never in the host's.
//!
//! 1. Full sync (`nft -f -` of `render_full` into a fresh table) at 1,000 and 10,000 Services × 3
//!    endpoints, median of 3, against the same Services in kube-proxy's shape (one anonymous
//!    `numgen … vmap {}` per Service) loaded the same way in the same run
//!    (goals: ≤ 1.5 s at 10k, ≥ 10× faster than kube-proxy's shape).
//! 2. One endpoint change at 1,000 Services: `render_update` + `nft -f -`, p50/p99 over 100
//!    changes (goal: p99 ≤ 50 ms).
//!
//! The endpoints of each Service sit on three nodes and the rules are those of the first node,
//! as in a three-node cluster.

use emu_core::ipam::Ipv4Cidr;
use emu_core::proxy::{
    render_full, render_update, EndpointModel, PortModel, Protocol, ProxyInput, ServiceModel,
};
use emu_nodeagent::nft::{NftRunner, RealNft};
use emu_tests::require_root;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["node-0", "node-1", "node-2"];

/// The bench's network namespace; deleted when dropped (also while unwinding from a panic).
struct BenchNetns {
    name: String,
}

impl BenchNetns {
    /// Creates the namespace and moves this (single-threaded) process into it, so that every
    /// `nft` it starts acts there, as in a node agent.
    fn enter() -> BenchNetns {
        let name = format!("emu-bench-proxy-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip netns add {name} failed"
        );
        let ns = BenchNetns { name };
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("open the netns");
        // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it only
        // changes this thread's network namespace (the only thread: no runtime has started).
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            ns.name,
            std::io::Error::last_os_error()
        );
        ns
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        // `ip netns del` removes the name; the namespace itself ends with this process.
        let ok = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "could not delete netns {}: run `ip netns del {}`",
                self.name, self.name
            );
        }
    }
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("CIDR")
}

fn nth(base: Ipv4Addr, n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + u32::try_from(n).expect("small index"))
}

/// `n` Services with one TCP port and three ready endpoints each, one per node.
fn synthetic(n: usize) -> ProxyInput {
    let services = (0..n)
        .map(|i| {
            let endpoints = (0..3)
                .map(|k| EndpointModel {
                    ip: nth(Ipv4Addr::new(10, 244, 0, 2), 3 * i + k),
                    port: 8080,
                    node_name: Some(NODES[k].to_string()),
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect();
            ServiceModel {
                namespace: format!("bench-{}", i % 10),
                name: format!("svc-{i:05}"),
                cluster_ip: nth(Ipv4Addr::new(10, 96, 0, 2), i),
                affinity_timeout: None,
                internal_local: false,
                ports: vec![PortModel {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: 80,
                    endpoints,
                }],
            }
        })
        .collect::<Vec<_>>();
    let mut input = ProxyInput {
        node_name: NODES[0].into(),
        cluster_pod_cidr: cidr("10.244.0.0/16"),
        service_cidr: cidr("10.96.0.0/12"),
        services,
    };
    input
        .services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    input
}

/// The same Services as kube-proxy's nftables mode writes them: a service chain with the
/// masquerade check and one anonymous `numgen random mod N vmap { … }`, endpoint chains with
/// the hairpin check and the DNAT, and a verdict map of ClusterIPs.
fn kube_proxy_shape(input: &ProxyInput) -> String {
    let mut out = String::from(
        "add table ip emu\n\
         add chain ip emu nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }\n\
         add chain ip emu services\n\
         add chain ip emu mark-for-masquerade\n\
         add map ip emu service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
         add rule ip emu nat-prerouting jump services\n\
         add rule ip emu services ip daddr . meta l4proto . th dport vmap @service-ips\n\
         add rule ip emu mark-for-masquerade meta mark set meta mark | 0x4000\n",
    );
    let mut elements = Vec::new();
    for svc in &input.services {
        for port in &svc.ports {
            let chain = format!(
                "service-{}/{}/{}/{}",
                svc.namespace, svc.name, port.protocol, port.port
            );
            let eps: Vec<(String, &EndpointModel)> = port
                .endpoints
                .iter()
                .map(|ep| {
                    (
                        format!(
                            "endpoint-{}/{}/{}__{}/{}",
                            svc.namespace, svc.name, port.protocol, ep.ip, ep.port
                        ),
                        ep,
                    )
                })
                .collect();
            writeln!(out, "add chain ip emu {chain}").expect("string");
            for (name, _) in &eps {
                writeln!(out, "add chain ip emu {name}").expect("string");
            }
            writeln!(
                out,
                "add rule ip emu {chain} ip daddr {} {} dport {} ip saddr != {} jump mark-for-masquerade",
                svc.cluster_ip, port.protocol, port.port, input.cluster_pod_cidr
            )
            .expect("string");
            let vmap: Vec<String> = eps
                .iter()
                .enumerate()
                .map(|(k, (name, _))| format!("{k} : goto {name}"))
                .collect();
            writeln!(
                out,
                "add rule ip emu {chain} numgen random mod {} vmap {{ {} }}",
                eps.len(),
                vmap.join(", ")
            )
            .expect("string");
            for (name, ep) in &eps {
                writeln!(
                    out,
                    "add rule ip emu {name} ip saddr {} jump mark-for-masquerade",
                    ep.ip
                )
                .expect("string");
                writeln!(
                    out,
                    "add rule ip emu {name} meta l4proto {} dnat ip to {}:{}",
                    port.protocol, ep.ip, ep.port
                )
                .expect("string");
            }
            elements.push(format!(
                "{} . {} . {} : goto {chain}",
                svc.cluster_ip, port.protocol, port.port
            ));
        }
    }
    writeln!(
        out,
        "add element ip emu service-ips {{ {} }}",
        elements.join(", ")
    )
    .expect("string");
    out
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[idx.saturating_sub(1).min(v.len() - 1)]
}

fn fresh_table(nft: &RealNft) {
    nft.apply("add table ip emu\ndelete table ip emu\n")
        .expect("delete the table");
}

/// Median time of loading `script` into a fresh table, over 3 runs.
fn full_sync(nft: &RealNft, script: &str) -> Duration {
    let runs = (0..3)
        .map(|_| {
            fresh_table(nft);
            let t = Instant::now();
            nft.apply(script)
                .unwrap_or_else(|e| panic!("full sync: {e}"));
            t.elapsed()
        })
        .collect();
    fresh_table(nft);
    median(runs)
}

/// The pod behind endpoint `k` of Service `s` is replaced by a new one (a new IP): one endpoint
/// chain goes, one comes, the service chain is rewritten.
fn replace_endpoint(input: &ProxyInput, change: usize) -> ProxyInput {
    let mut next = input.clone();
    let s = (change * 7919) % next.services.len();
    let eps = &mut next.services[s].ports[0].endpoints;
    let k = change % eps.len();
    eps[k].ip = nth(Ipv4Addr::new(10, 244, 200, 0), change);
    eps.sort_by_key(|e| (e.ip, e.port));
    next
}

fn main() {
    require_root();
    let ns = BenchNetns::enter();
    let nft = RealNft::new();
    println!(
        "emu-bench-proxy: nftables service proxy, in netns {}",
        ns.name
    );

    let mut current = synthetic(1000);
    nft.apply(&render_full(&current))
        .expect("full sync at 1000");
    let (mut times, mut render_times, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for change in 0..100 {
        let next = replace_endpoint(&current, change);
        let t = Instant::now();
        let script = render_update(&current, &next);
        render_times.push(t.elapsed());
        nft.apply(&script)
            .unwrap_or_else(|e| panic!("update {change}: {e}"));
        times.push(t.elapsed());
        lines.push(script.lines().count());
        current = next;
    }
    lines.sort();
    println!(
        "single endpoint change at 1000 services (render_update + nft -f -), 100 changes: p50 {:.1} ms, p99 {:.1} ms (script {} lines)",
        percentile(&times, 50.0).as_secs_f64() * 1000.0,
        percentile(&times, 99.0).as_secs_f64() * 1000.0,
        lines[lines.len() / 2]
    );
    println!(
        "  of which render_update: p50 {:.2} ms (the rest is the nft process: start, cache, commit, and an RCU grace period when it closes its socket after deleting rules)",
        percentile(&render_times, 50.0).as_secs_f64() * 1000.0
    );
    for n in [1000, 10_000] {
        let input = synthetic(n);
        let t = Instant::now();
        let ours = render_full(&input);
        let render = t.elapsed();
        let emu = full_sync(&nft, &ours);
        let theirs = kube_proxy_shape(&input);
        let kube = full_sync(&nft, &theirs);
        println!(
            "nft full sync, {n} services x 3 endpoints: emu {:.2} s, kube-proxy shape {:.2} s ({:.1}x)",
            secs(emu),
            secs(kube),
            secs(kube) / secs(emu)
        );
        // What the locality of the hairpin rule saves: the same rules with one on every endpoint.
        let mut unknown_nodes = input.clone();
        for svc in &mut unknown_nodes.services {
            svc.ports[0]
                .endpoints
                .iter_mut()
                .for_each(|e| e.node_name = None);
        }
        let every = full_sync(&nft, &render_full(&unknown_nodes));
        println!(
            "  render_full {:.0} ms, script {:.1} MB ({} lines); with a hairpin rule on every endpoint: {:.2} s",
            render.as_secs_f64() * 1000.0,
            ours.len() as f64 / 1e6,
            ours.lines().count(),
            secs(every)
        );
    }

    println!("goals: full sync <= 1.5 s at 10k and >= 10x faster than kube-proxy's shape; single change p99 <= 50 ms");
    drop(ns);
}
