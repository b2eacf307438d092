//! `emu-bench hosts`: many machines, one cluster (issue 18), with emulated hosts. Prints figures,
//! asserts nothing; every ratio is against a baseline measured in the same run.
//!
//! 1. `emu up --hosts 3 --nodes 6` against `emu up --nodes 6` (one host), interleaved, with the
//!    steps that differ (`Joining hosts`, `Waiting for pods to be Running`), and their `emu down`:
//!    medians and max.
//! 2. In a cluster of 3 hosts × 2 nodes (`bnchhosts`: node-1, node-2 on host-1; node-3, node-4 on
//!    host-2), from a client pod on node-1 (host-1):
//!    - iperf3 to a server pod on node-3 (another host: through the VXLAN overlay, MTU 1450)
//!      against one on node-2 (the same host, another node) and one on node-1 (the same node);
//!      goal: ratio across hosts / same host ≥ 0.7;
//!    - new connections per second through a ClusterIP whose only endpoint is on node-3, on
//!      node-2, on node-1 (one nginx pod each), one HTTP/1.0 GET per connection, and the p50/p99
//!      of one connection (connect, request, whole response, close).
//!
//!    The servers are real pods (nginx; networkstatic/iperf3, whose iperf3 is the host's, as the
//!    image catalog has it). The client pod only sleeps: the benchmark runs iperf3 and its connection loop in
//!    that pod's network namespace (`nsenter --net`, `setns` on a dedicated thread), which is
//!    all the data path sees of a pod, so `emu exec` is not measured.
//! 3. `emu leave` and the join command `emu token create --print-join-command` prints, for host-2
//!    (2 nodes), each run as on that machine (in host-2's mount and network namespaces), timed
//!    from the command's start until it returns with the nodes Ready: median and p99.
//!
//! Both clusters are removed at the end, also when a step fails (`emu down --cluster NAME`).

use anyhow::{anyhow, bail, Context as _};
use emu_api::naming;
use emu_tests::bench::{bench_pod, bench_service, one_get, running};
use emu_tests::{bench::poll, emu, emu_path, Run};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The multi-host cluster and the one-host cluster `emu up` is compared with.
const HOSTS_CLUSTER: &str = "bnchhosts";
const ONE_HOST_CLUSTER: &str = "bnchhost1";

/// `emu up` of each shape, interleaved.
const UP_RUNS: usize = 7;
/// iperf3 runs of `IPERF_SECONDS` per place, interleaved.
const IPERF_RUNS: usize = 5;
const IPERF_SECONDS: u32 = 3;
/// Connection rounds per place, interleaved.
const CONN_RUNS: usize = 9;
const CONN_LENGTH: Duration = Duration::from_secs(2);
/// `emu leave` + join of host-2.
const JOIN_RUNS: usize = 20;

/// The client's node, and the server nodes: the same node, another node of the same host,
/// a node of another host.
const CLIENT_NODE: &str = "node-1";
const PLACES: [(&str, &str); 3] = [("other host", "node-3"), ("same host", "node-2"), ("same node", "node-1")];

/// A cluster of this benchmark, removed when dropped (also on an error or a panic) unless
/// [`Owned::down`] removed it already.
struct Owned {
    name: String,
    removed: bool,
}

impl Owned {
    /// `emu up --cluster NAME ARGS`, how long it took, and what it printed.
    fn up(name: &str, args: &[&str]) -> anyhow::Result<(Owned, Duration, String)> {
        // A crashed earlier run may have left the same name behind.
        emu(&["down", "--cluster", name]);
        let c = Owned { name: name.to_string(), removed: false };
        let started = Instant::now();
        let r = c.emu(&[&["up"][..], args].concat());
        let took = started.elapsed();
        if r.code != 0 {
            bail!("emu up --cluster {name} {} failed:\n{}{}", args.join(" "), r.stdout, r.stderr);
        }
        Ok((c, took, r.stdout))
    }

    /// `emu ARGS --cluster NAME`.
    fn emu(&self, args: &[&str]) -> Run {
        emu(&[args, &["--cluster", &self.name]].concat())
    }

    /// `emu down`, and how long it took.
    fn down(mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let r = emu(&["down", "--cluster", &self.name]);
        let took = started.elapsed();
        self.removed = true;
        if r.code != 0 {
            bail!("emu down --cluster {} failed:\n{}{}", self.name, r.stdout, r.stderr);
        }
        Ok(took)
    }

    /// The pods of namespace default.
    fn pods(&self) -> Vec<Value> {
        self.pods_in(&["get", "pods", "-o", "json"])
    }

    /// The pods of every namespace.
    fn pods_everywhere(&self) -> Vec<Value> {
        self.pods_in(&["get", "pods", "-A", "-o", "json"])
    }

    fn pods_in(&self, args: &[&str]) -> Vec<Value> {
        let r = self.emu(args);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    fn nodes(&self) -> Vec<Value> {
        let r = self.emu(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.removed {
            let r = emu(&["down", "--cluster", &self.name]);
            if r.code != 0 {
                eprintln!("emu down --cluster {} failed: {}{}", self.name, r.stdout, r.stderr);
            }
        }
    }
}

/// `emu ARGS` run as on emulated host `host` of cluster `cluster`: in its mount namespace
/// (pinned by `emu up`) and its network namespace, as its user would run it there.
fn emu_on_host(cluster: &str, host: &str, args: &[&str]) -> anyhow::Result<Run> {
    let out = Command::new("nsenter")
        .arg(format!("--mount=/run/emu/{cluster}/hosts/{host}.mnt"))
        .arg(format!("--net=/run/netns/emu-{cluster}-{host}"))
        .arg(emu_path())
        .args(args)
        .env_remove("EMU_CLUSTER")
        .env("KUBECONFIG", emu_tests::suite_kubeconfig())
        .output()
        .context("running nsenter")?;
    Ok(Run::from(out))
}

fn row(what: &str, figures: String) {
    println!("    {what:<52} {figures}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p`th percentile (nearest rank).
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    super::percentile(&mut v, p)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

/// `a / b` of the medians, and the spread of the ratios of the interleaved pairs.
fn ratio(a: &[f64], b: &[f64]) -> String {
    let pairs: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    format!("{:.2} (pairs {:.2}–{:.2})", median(a) / median(b), pairs.iter().copied().fold(f64::MAX, f64::min), max(&pairs))
}

/// The machine's load averages (1, 5, 15 min), to tell a quiet run from a noisy one.
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub fn run(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    println!("  many machines, one cluster (emulated hosts on a LAN, VXLAN between them); load average {}", load());
    up_times()?;
    let (cluster, _, _) = Owned::up(HOSTS_CLUSTER, &["--hosts", "3", "--nodes", "6"])?;
    let result = data_path(rt, &cluster).and_then(|()| join_times(&cluster));
    if result.is_err() {
        eprintln!("{}", logs(&cluster.name));
    }
    let down = cluster.down();
    result?;
    down?;
    println!("  load average at the end {}", load());
    Ok(())
}

/// Section 1: `emu up` with 3 hosts against one host, same nodes, interleaved.
fn up_times() -> anyhow::Result<()> {
    let (mut one, mut three, mut one_down, mut three_down) = (vec![], vec![], vec![], vec![]);
    let (mut one_wait, mut three_wait, mut joining) = (vec![], vec![], vec![]);
    for _ in 0..UP_RUNS {
        let (c, took, out) = Owned::up(ONE_HOST_CLUSTER, &["--nodes", "6"])?;
        one.push(ms(took));
        one_wait.extend(super::step_ms(&out, "Waiting for pods to be Running"));
        one_down.push(ms(c.down()?));
        let (c, took, out) = Owned::up(HOSTS_CLUSTER, &["--hosts", "3", "--nodes", "6"])?;
        three.push(ms(took));
        three_wait.extend(super::step_ms(&out, "Waiting for pods to be Running"));
        joining.extend(super::step_ms(&out, "Joining hosts"));
        three_down.push(ms(c.down()?));
    }
    let spread = |v: &[f64]| format!("p50: {:7.1} ms   max: {:7.1} ms", median(v), max(v));
    row("emu up --nodes 6 (one host)", format!("{}   ({UP_RUNS} runs)", spread(&one)));
    row("emu up --hosts 3 --nodes 6", format!("{}   ratio {} (3 hosts / 1 host)", spread(&three), ratio(&three, &one)));
    // Where the time goes: with hosts, the DNS pods start on host-1 while the others join.
    if joining.len() == UP_RUNS && one_wait.len() == UP_RUNS && three_wait.len() == UP_RUNS {
        row("  its step \"Joining hosts host-2, host-3\"", spread(&joining));
        row("  step \"Waiting for pods to be Running\", one host", spread(&one_wait));
        row("  step \"Waiting for pods to be Running\", 3 hosts", spread(&three_wait));
    }
    row("emu down, one host", spread(&one_down));
    row("emu down, 3 hosts", spread(&three_down));
    Ok(())
}

/// The network namespace of a pod: its name under /run/netns where the pod's node shares this
/// mount namespace (host-1), else that of a process in the pod's cgroup (a pod of a joined host,
/// whose /run/netns is private to the host's mount namespace). The cgroup is found from the
/// processes' side (`/proc/PID/cgroup`), which names it the same whatever this machine mounts
/// at /sys/fs/cgroup.
fn pod_netns(cluster: &str, pod: &Value) -> anyhow::Result<PathBuf> {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let named = PathBuf::from("/run/netns").join(naming::netns_pod(cluster, uid));
    if named.exists() {
        return Ok(named);
    }
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let cgroup = format!("/{}/node-{node}/pods/{uid}", naming::cgroup_name(cluster));
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("cgroup")) else { continue };
        if text.lines().any(|l| l.strip_prefix("0::").is_some_and(|path| path.ends_with(&cgroup))) {
            return Ok(entry.path().join("ns/net"));
        }
    }
    bail!("pod {uid} on {node}: no {} and no process in cgroup {cgroup}", named.display())
}

/// One iperf3 run of `IPERF_SECONDS` from network namespace `netns` to `ip:5201`, in Gbit/s as
/// the receiver counted. Retries while the server is still starting or busy.
fn iperf3(netns: &std::path::Path, ip: Ipv4Addr) -> anyhow::Result<f64> {
    let (ip, secs) = (ip.to_string(), IPERF_SECONDS.to_string());
    let args = ["iperf3", "-c", &ip, "-p", "5201", "-t", &secs, "-J"];
    let what = format!("nsenter --net={} {}", netns.display(), args.join(" "));
    emu_tests::bench::iperf3_gbps(
        || {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", netns.display())).args(args);
            c
        },
        &what,
    )
}

/// Source ports of the connection loop, one range per target, used in turn (as in
/// emu-bench-proxy: a tuple comes back to the same server only from the same range, with later
/// TCP timestamps, which its TIME_WAIT and the nodes' conntrack accept as a new connection).
/// Below the ephemeral range (32768–60999), where iperf3's sockets may still linger.
fn port_range(place: usize) -> std::ops::Range<u16> {
    let start = 11_000 + 7_000 * place as u16;
    start..start + 7_000
}

/// One round of the connection loop.
struct Round {
    per_sec: f64,
    /// Each successful connection's time (ms).
    latencies: Vec<f64>,
    failed: usize,
}

/// New connections from inside `netns` to `addr` during `length`, one at a time; source ports
/// from `ports`, starting after `*next`, which is left for the next round. Runs on a dedicated
/// thread that enters the namespace (never a tokio worker: docs/architecture.md,
/// "Conventions"); its sockets are created there.
fn connections(
    netns: &std::path::Path,
    addr: SocketAddrV4,
    ports: std::ops::Range<u16>,
    next: &mut usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let path = netns.to_path_buf();
    let mut cursor = *next;
    let (round, cursor) = std::thread::spawn(move || -> anyhow::Result<(Round, usize)> {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it changes
        // only this short-lived thread's network namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns into {}: {}", path.display(), std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 4096];
        let (mut latencies, mut failed) = (Vec::with_capacity(20_000), 0usize);
        let start = Instant::now();
        while start.elapsed() < length {
            let port = ports.start + (cursor % ports.len()) as u16;
            cursor += 1;
            let t = Instant::now();
            match one_get(addr, port, &mut buf) {
                Ok(()) => latencies.push(ms(t.elapsed())),
                Err(_) => failed += 1,
            }
        }
        let per_sec = latencies.len() as f64 / start.elapsed().as_secs_f64();
        Ok((Round { per_sec, latencies, failed }, cursor))
    })
    .join()
    .map_err(|_| anyhow!("the connection loop in {} panicked", netns.display()))??;
    *next = cursor;
    Ok(round)
}

/// Section 2: iperf3 and new connections per second, from a pod on node-1 to pods on another
/// host, on the same host, on the same node.
fn data_path(rt: &tokio::runtime::Runtime, cluster: &Owned) -> anyhow::Result<()> {
    let hosts: Vec<(String, String)> = cluster
        .nodes()
        .iter()
        .map(|n| (emu_tests::name(n), n["metadata"]["labels"]["emu.dev/host"].as_str().unwrap_or("?").to_string()))
        .collect();
    let host_of = |node: &str| hosts.iter().find(|(n, _)| n == node).map_or("?", |(_, h)| h.as_str()).to_string();
    println!(
        "  {HOSTS_CLUSTER}: 3 hosts × 2 nodes; client pod on {CLIENT_NODE} ({}), servers on {}",
        host_of(CLIENT_NODE),
        PLACES.iter().map(|(_, n)| format!("{n} ({})", host_of(n))).collect::<Vec<_>>().join(", ")
    );
    let mut objects = vec![bench_pod("bench-client", CLIENT_NODE, "busybox", &["sleep", "100000"])];
    for (_, node) in PLACES {
        objects.push(bench_pod(&format!("iperf-{node}"), node, "networkstatic/iperf3", &["iperf3", "-s"]));
        objects.push(bench_pod(&format!("web-{node}"), node, "nginx", &[]));
        objects.push(bench_service(&format!("web-{node}"), 80));
    }
    let socket = emu_logic::cluster::Paths::new(&cluster.name).socket();
    rt.block_on(async {
        let mut client = emu_proto::connect_unix(&socket).await.with_context(|| format!("connecting to {}", socket.display()))?;
        emu_tests::bench::apply(&mut client, &objects).await
    })?;
    let want = 1 + 2 * PLACES.len();
    let pods = poll(&format!("{want} bench pods Running"), Duration::from_secs(60), Duration::from_millis(100), || {
        let pods = cluster.pods();
        (pods.iter().filter(|p| running(p)).count() == want).then_some(pods)
    })?;
    let pod = |name: &str| pods.iter().find(|p| p["metadata"]["name"] == name).ok_or_else(|| anyhow!("no pod {name}"));
    let pod_ip = |name: &str| -> anyhow::Result<Ipv4Addr> {
        pod(name)?["status"]["podIP"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("pod {name} has no IPv4 podIP"))
    };
    let client_ns = pod_netns(&cluster.name, pod("bench-client")?)?;
    // The traffic must be the pods' own: the namespace found holds the client pod's address.
    let client_ip = pod_ip("bench-client")?;
    let addrs = Command::new("nsenter").arg(format!("--net={}", client_ns.display())).args(["ip", "-4", "-o", "addr"]).output()?;
    if !String::from_utf8_lossy(&addrs.stdout).contains(&format!("inet {client_ip}/")) {
        bail!("{} does not hold the client pod's address {client_ip}", client_ns.display());
    }
    let cluster_ip = |svc: &str| -> anyhow::Result<Ipv4Addr> {
        let r = cluster.emu(&["get", "service", svc, "-o", "jsonpath={.spec.clusterIP}"]);
        r.stdout.trim().parse().map_err(|_| anyhow!("service {svc} has no clusterIP: {}{}", r.stdout, r.stderr))
    };

    // iperf3, interleaved so that a drift of the machine's load hits every place alike.
    let servers: Vec<Ipv4Addr> = PLACES.iter().map(|(_, node)| pod_ip(&format!("iperf-{node}"))).collect::<anyhow::Result<_>>()?;
    let mut gbits = vec![vec![]; PLACES.len()];
    for _ in 0..IPERF_RUNS {
        for (i, ip) in servers.iter().enumerate() {
            gbits[i].push(iperf3(&client_ns, *ip)?);
        }
    }
    for (i, (place, node)) in PLACES.iter().enumerate() {
        let figures = format!(
            "{:6.2} Gbit/s   (median of {IPERF_RUNS} × {IPERF_SECONDS} s; min {:.2}, max {:.2})",
            median(&gbits[i]),
            percentile(&gbits[i], 0.0),
            max(&gbits[i])
        );
        row(&format!("iperf3 pod → pod, {place} ({node})"), figures);
    }
    row("  ratio other host / same host", format!("{}   (goal ≥ 0.7)", ratio(&gbits[0], &gbits[1])));
    row("  ratio other host / same node", ratio(&gbits[0], &gbits[2]));

    // New connections through each ClusterIP; first until its rules on the client's node answer.
    let targets: Vec<SocketAddrV4> = PLACES
        .iter()
        .map(|(_, node)| cluster_ip(&format!("web-{node}")).map(|ip| SocketAddrV4::new(ip, 80)))
        .collect::<anyhow::Result<_>>()?;
    let mut next = vec![0usize; PLACES.len()];
    for (i, addr) in targets.iter().enumerate() {
        poll(&format!("ClusterIP {addr} to answer from {CLIENT_NODE}"), Duration::from_secs(30), Duration::from_millis(100), || {
            connections(&client_ns, *addr, port_range(i), &mut next[i], Duration::from_millis(50)).ok().filter(|r| !r.latencies.is_empty())
        })?;
    }
    let mut rounds: Vec<Vec<Round>> = (0..PLACES.len()).map(|_| vec![]).collect();
    for _ in 0..CONN_RUNS {
        for (i, addr) in targets.iter().enumerate() {
            rounds[i].push(connections(&client_ns, *addr, port_range(i), &mut next[i], CONN_LENGTH)?);
        }
    }
    let rates: Vec<Vec<f64>> = rounds.iter().map(|r| r.iter().map(|r| r.per_sec).collect()).collect();
    for (i, (place, node)) in PLACES.iter().enumerate() {
        let latencies: Vec<f64> = rounds[i].iter().flat_map(|r| r.latencies.iter().copied()).collect();
        let failed: usize = rounds[i].iter().map(|r| r.failed).sum();
        let figures = format!(
            "{:6.0} /s   one connection p50: {:5.2} ms   p99: {:5.2} ms   ({CONN_RUNS} × {} s, one client thread{})",
            median(&rates[i]),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            CONN_LENGTH.as_secs(),
            if failed > 0 { format!(", {failed} failed") } else { String::new() }
        );
        row(&format!("new connections via ClusterIP, {place} ({node})"), figures);
    }
    row("  ratio other host / same host", ratio(&rates[0], &rates[1]));
    row("  ratio other host / same node", ratio(&rates[0], &rates[2]));
    Ok(())
}

/// Section 3: host-2 leaves and joins again with the printed join command, `JOIN_RUNS` times.
fn join_times(cluster: &Owned) -> anyhow::Result<()> {
    const HOST: &str = "host-2";
    let mine: Vec<String> =
        cluster.nodes().iter().filter(|n| n["metadata"]["labels"]["emu.dev/host"] == HOST).map(emu_tests::name).collect();
    if mine.is_empty() {
        bail!("no node of {HOST} in {}", cluster.name);
    }
    let (mut leaves, mut joins, mut drained) = (vec![], vec![], vec![]);
    for _ in 0..JOIN_RUNS {
        let on_host = |p: &Value| mine.iter().any(|n| p["spec"]["nodeName"] == n.as_str());
        drained.push(cluster.pods_everywhere().iter().filter(|p| on_host(p)).count());
        let started = Instant::now();
        let r = emu_on_host(&cluster.name, HOST, &["leave"])?;
        let took = started.elapsed();
        if r.code != 0 {
            bail!("emu leave on {HOST} failed:\n{}{}", r.stdout, r.stderr);
        }
        leaves.push(ms(took));
        let r = cluster.emu(&["token", "create", "--print-join-command"]);
        if r.code != 0 {
            bail!("emu token create --print-join-command failed:\n{}{}", r.stdout, r.stderr);
        }
        let command = r.stdout;
        let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
        args.extend(["--host", HOST]);
        for n in &mine {
            args.extend(["--node", n.as_str()]);
        }
        let started = Instant::now();
        let r = emu_on_host(&cluster.name, HOST, &args)?;
        let took = started.elapsed();
        if r.code != 0 {
            bail!("emu join on {HOST} failed:\n{}{}", r.stdout, r.stderr);
        }
        joins.push(ms(took));
        // The command returns once its nodes are Ready; check that they are, as the API says.
        let ready = cluster
            .nodes()
            .iter()
            .filter(|n| mine.contains(&emu_tests::name(n)))
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        if ready != mine.len() {
            bail!("emu join on {HOST} returned with {ready} of its {} nodes Ready", mine.len());
        }
    }
    let figures = |v: &[f64]| format!("p50: {:7.1} ms   p99: {:7.1} ms", median(v), percentile(v, 99.0));
    row(
        &format!("emu join, {HOST} ({} nodes) → Ready", mine.len()),
        format!("{}   ({JOIN_RUNS} runs, command start → nodes Ready, p99 = max; goal ≤ 1000 ms)", figures(&joins)),
    );
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    row(
        &format!("emu leave, {HOST} (drain, remove)"),
        format!("{}   ({JOIN_RUNS} runs; pods drained in each: {})", figures(&leaves), list(&drained)),
    );
    Ok(())
}

/// The last lines of the cluster's controller log, for a failure.
fn logs(cluster: &str) -> String {
    let path = emu_logic::cluster::Paths::new(cluster).controller_log();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    format!("--- {} (last lines)\n{}", path.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
}
