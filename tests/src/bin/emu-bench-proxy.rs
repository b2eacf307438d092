//! Benchmark of the service proxy: prints figures, asserts nothing. `sudo ./scripts/bench` runs
//! it after `emu-bench`; alone: `cargo build --workspace --release && sudo
//! target/release/emu-bench-proxy`.
//!
//! 1. The nft rules alone, in a private network namespace (`emu-bench-proxy-<pid>`, entered by one
//!    dedicated thread and deleted at the end, also on panic), never the host's. The endpoints of
//!    each Service sit on three nodes and the rules are those of the first node, as in a
//!    three-node cluster:
//!    - one endpoint change at 1,000 Services: `render_update` + `nft -f -`, p50/p99 over 100
//!      changes;
//!    - full sync (`nft -f -` of `render_full` into a fresh table) at 1,000 and 10,000 Services ×
//!      3 endpoints, median of 3, against the same Services in kube-proxy's shape (one anonymous
//!      `numgen … vmap {}` per Service) loaded the same way in the same run (goals: ≤ 1.5 s at
//!      10k, ≥ 10× faster than kube-proxy's shape).
//! 2. One endpoint change in a real cluster of 3 nodes (`bnchep`) holding 1,000 selectorless
//!    Services × 3 endpoints (Endpoints objects, mirrored into EndpointSlices by the controller):
//!    from the write of one Endpoints object (the API call `emu apply` makes) until every node has
//!    committed the nft transaction that holds the new endpoint, as `nft monitor` in each node's
//!    namespace reports it; p50/p99 over 100 changes (goal: p99 ≤ 50 ms). `endpoint --services N
//!    --nodes N` changes the size (emu-bench-scale: 10,000 Services on 10 nodes).
//! 3. The data path through a ClusterIP against the pod IP directly, in a cluster of 2 nodes
//!    (`bnchdp`), from a client pod on the other node and on the same node: iperf3 throughput each
//!    way (goal: ratio ≥ 0.95) and new connections per second, one HTTP/1.0 GET to nginx each
//!    (goal: ratio ≥ 0.9).
//!
//! Clusters are deleted at the end of their section, also when it fails.

use anyhow::{anyhow, bail, Context as _};
use emu_api::naming;
use emu_dataplane::proxy::{render_full, render_update, EndpointModel, PortModel, Protocol, ProxyInput, ServiceModel};
use emu_host::nft::{NftRunner, RealNft};
use emu_logic::ipam::Ipv4Cidr;
use emu_tests::bench::{bench_pod, bench_service, one_get, running};
use emu_tests::{
    bench::{apply, cluster_with_client, poll},
    require_root,
};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["node-0", "node-1", "node-2"];

/// The bench's network namespace; deleted when dropped (also while unwinding from a panic).
struct BenchNetns {
    name: String,
}

impl BenchNetns {
    /// Creates the namespace and moves the calling thread into it, so that every `nft` the thread
    /// starts acts there, as in a node agent. Call it on a dedicated thread: `setns` changes only
    /// the calling thread, and the rest of the benchmark stays in the host's namespace.
    fn enter() -> BenchNetns {
        let name = format!("emu-bench-proxy-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(status.is_ok_and(|s| s.success()), "ip netns add {name} failed");
        let ns = BenchNetns { name };
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("open the netns");
        // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it only
        // changes the calling thread's network namespace, and that thread is the benchmark's own.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {}: {}", ns.name, std::io::Error::last_os_error());
        ns
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        // `ip netns del` removes the name; the namespace itself ends with this process.
        let ok = Command::new("ip").args(["netns", "del", &self.name]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("could not delete netns {}: run `ip netns del {}`", self.name, self.name);
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
                external_local: false,
                load_balancer_ips: vec![],
                health_check_node_port: None,
                ports: vec![PortModel { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None, endpoints }],
            }
        })
        .collect::<Vec<_>>();
    let mut input = ProxyInput {
        node_name: NODES[0].into(),
        cluster_pod_cidr: cidr("10.244.0.0/16"),
        service_cidr: cidr("10.96.0.0/12"),
        services,
        node_ips: vec![],
    };
    input.services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
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
            let chain = format!("service-{}/{}/{}/{}", svc.namespace, svc.name, port.protocol, port.port);
            let eps: Vec<(String, &EndpointModel)> = port
                .endpoints
                .iter()
                .map(|ep| (format!("endpoint-{}/{}/{}__{}/{}", svc.namespace, svc.name, port.protocol, ep.ip, ep.port), ep))
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
            let vmap: Vec<String> = eps.iter().enumerate().map(|(k, (name, _))| format!("{k} : goto {name}")).collect();
            writeln!(out, "add rule ip emu {chain} numgen random mod {} vmap {{ {} }}", eps.len(), vmap.join(", ")).expect("string");
            for (name, ep) in &eps {
                writeln!(out, "add rule ip emu {name} ip saddr {} jump mark-for-masquerade", ep.ip).expect("string");
                writeln!(out, "add rule ip emu {name} meta l4proto {} dnat ip to {}:{}", port.protocol, ep.ip, ep.port).expect("string");
            }
            elements.push(format!("{} . {} . {} : goto {chain}", svc.cluster_ip, port.protocol, port.port));
        }
    }
    writeln!(out, "add element ip emu service-ips {{ {} }}", elements.join(", ")).expect("string");
    out
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The `p`th percentile (nearest rank); zero for no samples.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut v = v.to_vec();
    v.sort();
    let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[idx.saturating_sub(1).min(v.len() - 1)]
}

fn fresh_table(nft: &RealNft) {
    nft.apply("add table ip emu\ndelete table ip emu\n").expect("delete the table");
}

/// Median time of loading `script` into a fresh table, over 3 runs.
fn full_sync(nft: &RealNft, script: &str) -> Duration {
    let runs = (0..3)
        .map(|_| {
            fresh_table(nft);
            let t = Instant::now();
            nft.apply(script).unwrap_or_else(|e| panic!("full sync: {e}"));
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

/// One figure line: what was measured, in a column, then the figures.
fn row(what: &str, figures: String) {
    println!("    {what:<44} {figures}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `emu-bench-proxy [nft] [endpoint] [datapath]`: the sections to run (default: all).
fn main() {
    require_root();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let (ep_services, ep_nodes) = (take_count(&mut args, "--services", EP_SERVICES), take_count(&mut args, "--nodes", EP_NODES));
    if let Some(bad) = args.iter().find(|a| !["nft", "endpoint", "datapath"].contains(&a.as_str())) {
        eprintln!("error: unknown section {bad:?}; usage: emu-bench-proxy [nft] [endpoint [--services N] [--nodes N]] [datapath]");
        std::process::exit(2);
    }
    let run = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    println!("emu proxy benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Section 1 enters its own network namespace: on a thread of its own.
    if run("nft") && std::thread::spawn(nft_alone).join().is_err() {
        println!("    (the nft section failed; see above)");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if run("endpoint") {
        if let Err(e) = endpoint_change_in_cluster(&rt, ep_services, ep_nodes) {
            println!("    failed: {e:#}");
        }
    }
    if run("datapath") {
        if let Err(e) = data_path(&rt) {
            println!("    failed: {e:#}");
        }
    }
}

/// Removes `flag N` from `args` and returns N, or `default` without the flag.
fn take_count(args: &mut Vec<String>, flag: &str, default: usize) -> usize {
    let Some(i) = args.iter().position(|a| a == flag) else { return default };
    match args.get(i + 1).and_then(|n| n.parse().ok()).filter(|n: &usize| *n > 0) {
        Some(n) => {
            args.drain(i..=i + 1);
            n
        }
        None => {
            eprintln!("error: {flag} needs a positive number");
            std::process::exit(2);
        }
    }
}

/// Section 1: the rules of one node, loaded by `nft` into a private namespace.
fn nft_alone() {
    let ns = BenchNetns::enter();
    let nft = RealNft::new();
    println!("  nft rules alone: one node's table in a private netns ({}), no cluster", ns.name);
    let mut current = synthetic(1000);
    nft.apply(&render_full(&current)).expect("full sync at 1000");
    let (mut times, mut render_times, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for change in 0..100 {
        let next = replace_endpoint(&current, change);
        let t = Instant::now();
        let script = render_update(&current, &next);
        render_times.push(t.elapsed());
        nft.apply(&script).unwrap_or_else(|e| panic!("update {change}: {e}"));
        times.push(t.elapsed());
        lines.push(script.lines().count());
        current = next;
    }
    lines.sort();
    row(
        "one endpoint change at 1000 services",
        format!(
            "p50: {:6.1} ms   p99: {:6.1} ms   (render_update + nft -f - of a {}-line script, 100 changes)",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 99.0)),
            lines[lines.len() / 2]
        ),
    );
    println!(
        "      render_update p50 {:.2} ms; the rest is the nft process: start, cache, commit, and an RCU grace period when it closes its socket after deleting rules",
        ms(percentile(&render_times, 50.0))
    );
    for n in [1000, 10_000] {
        let input = synthetic(n);
        let t = Instant::now();
        let ours = render_full(&input);
        let render = t.elapsed();
        let emu = full_sync(&nft, &ours);
        let theirs = kube_proxy_shape(&input);
        let kube = full_sync(&nft, &theirs);
        let goal = if n == 10_000 { "; goals ≤ 1.5 s and ≥ 10×" } else { "" };
        row(
            &format!("full sync, {n} services × 3 endpoints"),
            format!(
                "emu: {:6.2} s   kube-proxy's shape: {:6.2} s   {:.1}× faster   (median of 3{goal})",
                secs(emu),
                secs(kube),
                secs(kube) / secs(emu)
            ),
        );
        // What the locality of the hairpin rule saves: the same rules with one on every endpoint.
        let mut unknown_nodes = input.clone();
        for svc in &mut unknown_nodes.services {
            svc.ports[0].endpoints.iter_mut().for_each(|e| e.node_name = None);
        }
        let every = full_sync(&nft, &render_full(&unknown_nodes));
        println!(
            "      render_full {:.0} ms, script {:.1} MB ({} lines); with a hairpin rule on every endpoint: {:.2} s",
            ms(render),
            ours.len() as f64 / 1e6,
            ours.lines().count(),
            secs(every)
        );
    }

    drop(ns);
}

/// `ip netns exec NETNS ARGS…`, its stdout; an error carries the argv and stderr.
fn in_netns(netns: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .with_context(|| format!("running `ip netns exec {netns} {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!("`ip netns exec {netns} {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const EP_CLUSTER: &str = "bnchep";
/// The endpoint section's size unless `--services N` and `--nodes N` say otherwise
/// (emu-bench-scale runs it with 10,000 Services on 10 nodes).
const EP_NODES: usize = 3;
const EP_SERVICES: usize = 1000;
const EP_CHANGES: usize = 100;
const EP_TARGET_PORT: u16 = 8080;

fn ep_service_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// A Service without selector: its endpoints are what the Endpoints object of the same name says.
fn ep_service(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": ep_service_name(i), "namespace": "default"},
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": EP_TARGET_PORT}]}})
}

/// The Endpoints of Service `i`: one address per node (so that each node's rules have the
/// hairpin check for one endpoint and a plain DNAT for the others, as with pods).
fn ep_endpoints(i: usize, ips: &[Ipv4Addr]) -> Value {
    let addresses: Vec<Value> =
        ips.iter().enumerate().map(|(k, ip)| json!({"ip": ip.to_string(), "nodeName": format!("node-{}", k + 1)})).collect();
    json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": ep_service_name(i), "namespace": "default"},
        "subsets": [{"addresses": addresses, "ports": [{"name": "http", "protocol": "TCP", "port": EP_TARGET_PORT}]}]})
}

/// `nft monitor` in one node's namespace, its lines stamped on arrival and sent to a channel;
/// killed when dropped.
struct Monitor {
    child: Child,
}

impl Monitor {
    fn start(netns: &str, node: usize, tx: mpsc::Sender<(usize, Instant, String)>) -> anyhow::Result<Monitor> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting `ip netns exec {netns} nft monitor`"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        // nft flushes each event line, so a line's arrival is the event's time (± a wakeup).
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((node, Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Monitor { child })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // `ip netns exec` execs nft, so this is nft's own PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Section 2: one endpoint change, measured until the rules of every node have it.
fn endpoint_change_in_cluster(rt: &tokio::runtime::Runtime, ep_services: usize, ep_nodes: usize) -> anyhow::Result<()> {
    println!(
        "  one endpoint change in a {ep_nodes}-node cluster ({EP_CLUSTER}) with {ep_services} selectorless services × {ep_nodes} endpoints"
    );
    let (cluster, mut client) = cluster_with_client(rt, EP_CLUSTER, ep_nodes)?;
    let nodes: Vec<String> = (1..=ep_nodes).map(|i| naming::netns_node(EP_CLUSTER, &format!("node-{i}"))).collect();

    // Endpoint IPs outside the pod and service ranges, as for external backends.
    let base = Ipv4Addr::new(10, 250, 0, 0);
    let mut ips: Vec<Vec<Ipv4Addr>> = (0..ep_services).map(|i| (0..ep_nodes).map(|k| nth(base, ep_nodes * i + k)).collect()).collect();
    let mut objects: Vec<Value> = (0..ep_services).map(ep_service).collect();
    objects.extend((0..ep_services).map(|i| ep_endpoints(i, &ips[i])));
    let t = Instant::now();
    rt.block_on(apply(&mut client, &objects))?;
    let applied = t.elapsed();
    // Every node has a service chain per Service with endpoints.
    let prefix = "chain svc-default/bench-";
    poll(&format!("the rules of {ep_services} services on every node"), Duration::from_secs(300), Duration::from_millis(100), || {
        nodes
            .iter()
            .all(|ns| in_netns(ns, &["nft", "list", "chains", "ip"]).is_ok_and(|out| out.matches(prefix).count() == ep_services))
            .then_some(())
    })
    .map_err(|e| anyhow!("{e}\n{}", cluster.logs()))?;
    let loaded = t.elapsed();

    let (tx, rx) = mpsc::channel();
    let _monitors: Vec<Monitor> =
        nodes.iter().enumerate().map(|(n, ns)| Monitor::start(ns, n, tx.clone())).collect::<anyhow::Result<_>>()?;
    // Let the monitors subscribe and the controller finish its passes over the initial load.
    std::thread::sleep(Duration::from_secs(2));

    let (mut all_nodes, mut first_node, mut acked) = (Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0;
    let mut last = None;
    for change in 0..EP_CHANGES {
        let s = (change * 389) % ep_services;
        let k = change % ep_nodes;
        // Past the initial endpoints, so that each change's address is new to the rules.
        let new_ip = nth(base, ep_services * ep_nodes + 1 + change);
        ips[s][k] = new_ip;
        // Unique in the rules: `dnat to IP:PORT` (or `ip:port` in an endpoint chain's DNAT).
        let needle = format!("{new_ip}:{EP_TARGET_PORT}");
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        rt.block_on(apply(&mut client, &[ep_endpoints(s, &ips[s])]))?;
        acked.push(t0.elapsed());
        // Per node: the new endpoint seen, then the end of its transaction (the kernel announces
        // a new generation once the batch is committed).
        let mut seen = vec![false; ep_nodes];
        let mut done: Vec<Option<Duration>> = vec![None; ep_nodes];
        let deadline = t0 + Duration::from_secs(10);
        while done.iter().any(Option::is_none) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let Ok((n, at, line)) = rx.recv_timeout(left) else {
                break;
            };
            if line.contains(&needle) {
                seen[n] = true;
            } else if seen[n] && line.starts_with("# new generation") && done[n].is_none() {
                done[n] = Some(at.duration_since(t0));
            }
        }
        match done.iter().copied().collect::<Option<Vec<Duration>>>() {
            Some(d) => {
                all_nodes.push(d.iter().copied().max().expect("nodes"));
                first_node.push(d.iter().copied().min().expect("nodes"));
            }
            None => missed += 1,
        }
        last = Some((s, needle));
        // Changes one at a time, not coalesced by the agents.
        std::thread::sleep(Duration::from_millis(100));
    }
    // Cross-check the last change with a plain listing of every node's service chain.
    let (s, needle) = last.expect("at least one change");
    let chain = format!("svc-default/{}/tcp/80", ep_service_name(s));
    let jump = needle.replace(':', "/");
    let listed = nodes
        .iter()
        .filter(|ns| {
            in_netns(ns, &["nft", "list", "chain", "ip", "emu", &chain]).is_ok_and(|out| out.contains(&needle) || out.contains(&jump))
        })
        .count();
    if all_nodes.is_empty() {
        bail!("no change reached all {ep_nodes} nodes within 10 s\n{}", cluster.logs());
    }
    row(
        &format!("Endpoints write → rules on all {ep_nodes} nodes"),
        format!(
            "p50: {:6.1} ms   p99: {:6.1} ms   ({} changes{}; goal p99 ≤ 50 ms)",
            ms(percentile(&all_nodes, 50.0)),
            ms(percentile(&all_nodes, 99.0)),
            all_nodes.len(),
            if missed > 0 { format!(", {missed} more not on every node within 10 s") } else { String::new() },
        ),
    );
    println!(
        "      first node's rules p50 {:.1} ms; the write itself (apply acknowledged) p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&first_node, 50.0)),
        ms(percentile(&acked, 50.0)),
        ms(percentile(&acked, 99.0)),
    );
    println!("      (commits seen with `nft monitor` in each node's netns; the last change also in `nft list chain` on {listed} of {ep_nodes} nodes)");
    println!(
        "      initial load: {ep_services} services + Endpoints in one apply ({:.2} s) → rules on all nodes {:.2} s (polled every 0.1 s)",
        secs(applied),
        secs(loaded)
    );
    drop(cluster);
    Ok(())
}

const DP_CLUSTER: &str = "bnchdp";
/// iperf3 runs of 3 s per target and direction, interleaved pod IP / ClusterIP.
const IPERF_RUNS: usize = 5;
/// Rounds of 1 s of new connections per target, interleaved likewise.
const CONN_RUNS: usize = 5;

/// Medians of runs by pod IP and by ClusterIP, taken in pairs one after the other, and their
/// ratio (ClusterIP / pod IP) with the range of the pairs' ratios: on a shared machine the spread
/// says how far a single ratio can be trusted.
fn compare(by_pod: &[f64], by_svc: &[f64]) -> (f64, f64, String) {
    let (p, s) = (median_f64(by_pod.to_vec()), median_f64(by_svc.to_vec()));
    let pairs: Vec<f64> = by_pod.iter().zip(by_svc).map(|(p, s)| s / p).collect();
    let (lo, hi) = pairs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    (p, s, format!("{:.2} (pairs {lo:.2}–{hi:.2})", s / p))
}

/// One iperf3 run of 3 s from `netns` to `ip:5201` (`reverse`: the server sends), in Gbit/s as
/// the receiver counted. Retries while the server is still starting or busy.
fn iperf3(netns: &str, ip: Ipv4Addr, reverse: bool) -> anyhow::Result<f64> {
    let ip = ip.to_string();
    let mut args = vec!["iperf3", "-c", &ip, "-p", "5201", "-t", "3", "-J"];
    if reverse {
        args.push("-R");
    }
    let what = format!("ip netns exec {netns} {}", args.join(" "));
    emu_tests::bench::iperf3_gbps(
        || {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns]).args(&args);
            c
        },
        &what,
    )
}

/// Source ports of the connection loop, one range per target, used in turn. The server and the
/// nodes' conntrack see connections by pod IP and by ClusterIP alike (client → pod), so a
/// shared port would let a ClusterIP connection meet the server's TIME_WAIT of a pod IP one
/// (the server closes first) with TCP timestamps of another offset (Linux derives the offset
/// from the address pair, and the client's differ): PAWS drops its SYN and the retransmission
/// costs a second. Within one range a tuple comes back with the same offset and later
/// timestamps, which TIME_WAIT and conntrack accept as a new connection.
/// Both lie below the ephemeral range (32768–60999), where iperf3's sockets may still linger.
const PORTS_BY_POD: std::ops::Range<u16> = 12_000..22_000;
const PORTS_BY_SVC: std::ops::Range<u16> = 22_000..32_000;

/// New connections per second from inside `netns` to `addr` during `length`, one at a time,
/// and the number that failed; source ports from `ports`, starting after `*next`, which is
/// left for the next round. Runs on a dedicated thread that enters the namespace (never a tokio
/// worker: docs/architecture.md, "Conventions"); its sockets are created there.
fn connections_per_sec(
    netns: &str,
    addr: SocketAddrV4,
    ports: std::ops::Range<u16>,
    next: &mut usize,
    length: Duration,
) -> anyhow::Result<(f64, usize)> {
    let path = format!("/run/netns/{netns}");
    let mut cursor = *next;
    let (rate, failed, cursor) = std::thread::spawn(move || -> anyhow::Result<(f64, usize, usize)> {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it changes
        // only this short-lived thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!("setns into {path}: {}", std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 4096];
        let (mut ok, mut failed) = (0usize, 0usize);
        let start = Instant::now();
        while start.elapsed() < length {
            let port = ports.start + (cursor % ports.len()) as u16;
            cursor += 1;
            match one_get(addr, port, &mut buf) {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        Ok((ok as f64 / start.elapsed().as_secs_f64(), failed, cursor))
    })
    .join()
    .map_err(|_| anyhow!("the connection loop in {netns} panicked"))??;
    *next = cursor;
    Ok((rate, failed))
}

/// Section 3: the same server pods reached by pod IP and by ClusterIP.
fn data_path(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    println!("  data path in a 2-node cluster ({DP_CLUSTER}): client pod → server pod by pod IP and by ClusterIP (one endpoint)");
    let (cluster, mut client) = cluster_with_client(rt, DP_CLUSTER, 2)?;
    // The iperf3 server is a real pod: networkstatic/iperf3 runs the host's /usr/bin/iperf3.
    // The clients are pods that sleep; the benchmark runs iperf3 and its connection loop in
    // their network namespaces with `ip netns exec`/setns, which is all the data path sees of
    // a pod (this measures the network path, not `emu exec`).
    let objects = vec![
        bench_pod("bench-iperf", "node-2", "networkstatic/iperf3", &["iperf3", "-s"]),
        bench_pod("bench-web", "node-2", "nginx", &[]),
        bench_pod("bench-far", "node-1", "busybox", &["sleep", "100000"]),
        bench_pod("bench-near", "node-2", "busybox", &["sleep", "100000"]),
        bench_service("bench-iperf", 5201),
        bench_service("bench-web", 80),
    ];
    rt.block_on(apply(&mut client, &objects))?;
    let pods = poll("4 pods Running", Duration::from_secs(60), Duration::from_millis(100), || {
        let pods = cluster.pods("");
        (pods.iter().filter(|p| running(p)).count() == 4).then_some(pods)
    })
    .map_err(|e| anyhow!("{e}\n{}", cluster.logs()))?;
    let pod = |name: &str| pods.iter().find(|p| p["metadata"]["name"] == name).expect("pod");
    let pod_ip = |name: &str| -> anyhow::Result<Ipv4Addr> {
        pod(name)["status"]["podIP"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("pod {name} has no IPv4 podIP"))
    };
    let pod_netns = |name: &str| naming::netns_pod(DP_CLUSTER, pod(name)["metadata"]["uid"].as_str().unwrap_or(""));
    let cluster_ip = |name: &str| -> anyhow::Result<Ipv4Addr> {
        let r = cluster.emu(&["get", "service", name, "-o", "json"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["spec"]["clusterIP"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("service {name} has no clusterIP: {}{}", r.stdout, r.stderr))
    };
    let (iperf_pod, iperf_svc) = (pod_ip("bench-iperf")?, cluster_ip("bench-iperf")?);
    let (web_pod, web_svc) = (pod_ip("bench-web")?, cluster_ip("bench-web")?);
    // Both nodes' rules must send the ClusterIPs to the pods before anything is measured.
    for node in ["node-1", "node-2"] {
        let ns = naming::netns_node(DP_CLUSTER, node);
        for (svc, ip, port) in [("bench-iperf", iperf_pod, 5201), ("bench-web", web_pod, 80)] {
            let chain = format!("svc-default/{svc}/tcp/{port}");
            // A DNAT to the pod, or (on the pod's node) a jump to its endpoint chain.
            let (dnat, jump) = (format!("{ip}:{port}"), format!("/{ip}/{port}"));
            poll(&format!("{chain} → {dnat} on {node}"), Duration::from_secs(30), Duration::from_millis(100), || {
                in_netns(&ns, &["nft", "list", "chain", "ip", "emu", &chain])
                    .is_ok_and(|out| out.contains(&dnat) || out.contains(&jump))
                    .then_some(())
            })
            .map_err(|e| anyhow!("{e}\n{}", cluster.logs()))?;
        }
    }

    let clients = [("other node", pod_netns("bench-far")), ("same node", pod_netns("bench-near"))];
    for (place, netns) in &clients {
        for (reverse, what) in [(false, "client → server"), (true, "server → client")] {
            let (mut by_pod, mut by_svc) = (Vec::new(), Vec::new());
            // Interleaved, so that a drift of the machine's load hits both alike.
            for _ in 0..IPERF_RUNS {
                by_pod.push(iperf3(netns, iperf_pod, reverse)?);
                by_svc.push(iperf3(netns, iperf_svc, reverse)?);
            }
            let (p, s, ratio) = compare(&by_pod, &by_svc);
            row(
                &format!("iperf3 {what}, {place}"),
                format!(
                    "pod IP: {p:6.2} Gbit/s   ClusterIP: {s:6.2} Gbit/s   ratio {ratio}   (medians of {IPERF_RUNS} × 3 s; goal ≥ 0.95)"
                ),
            );
        }
    }
    for (place, netns) in &clients {
        let (mut by_pod, mut by_svc, mut failed) = (Vec::new(), Vec::new(), 0);
        let (mut next_pod, mut next_svc) = (0, 0);
        for _ in 0..CONN_RUNS {
            let (rate, f) =
                connections_per_sec(netns, SocketAddrV4::new(web_pod, 80), PORTS_BY_POD, &mut next_pod, Duration::from_secs(1))?;
            by_pod.push(rate);
            failed += f;
            let (rate, f) =
                connections_per_sec(netns, SocketAddrV4::new(web_svc, 80), PORTS_BY_SVC, &mut next_svc, Duration::from_secs(1))?;
            by_svc.push(rate);
            failed += f;
        }
        let (p, s, ratio) = compare(&by_pod, &by_svc);
        row(
            &format!("new connections per second, {place}"),
            format!(
                "pod IP: {p:6.0} /s       ClusterIP: {s:6.0} /s       ratio {ratio}   (medians of {CONN_RUNS} × 1 s, an HTTP/1.0 GET each, one client thread{}; goal ≥ 0.9)",
                if failed > 0 { format!(", {failed} failed") } else { String::new() }
            ),
        );
    }
    drop(cluster);
    Ok(())
}
