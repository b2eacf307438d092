//! Benchmark of the cluster DNS (issue 4): prints figures, asserts nothing. `sudo ./scripts/bench`
//! runs it after `emu-bench-proxy`; alone: `cargo build --workspace --release && sudo
//! target/release/emu-bench-dns`. Needs `dnsperf` and `dnsmasq` (`EMU_WITH_BENCH=1` in
//! scripts/deps.sh installs them).
//!
//! In a 2-node cluster of its own (`bnchdns`), deleted at the end, also on failure:
//! 1. 1,000 selectorless ClusterIP Services `svcN` in one apply, until one DNS pod (emu-dns, a pod
//!    of Deployment kube-system/coredns) answers the last one.
//! 2. dnsperf from a client pod's network namespace against that DNS pod's IP (not the Service,
//!    so that one server is measured) and, in the same run, against dnsmasq serving the same
//!    1,000 A records from a pod of the same kind on the same node (goals: emu ≥ dnsmasq's qps,
//!    p99 ≤ 1 ms):
//!    - queries per second at saturation: no rate limit, `-c 4` clients, up to 100 queries
//!      outstanding (dnsperf's default), 5 s a run;
//!    - latency p50/p99/p99.9 at fixed offered loads (`-Q`), from dnsperf's per-query report
//!      (`-v`: one line per answer with its latency). dnsperf 2.10 has no histogram option, and
//!      at saturation the latency is set by the number of queries kept outstanding
//!      (outstanding / qps), so percentiles are taken where both servers get the same load.
//!
//!    Runs alternate emu / dnsmasq, 3 rounds, so that a drift of the machine's load hits both.
//! 3. Memory (VmRSS) of the emu-dns process of both DNS pods at 1,000 services and after growing
//!    to 10,000 in one more apply (once both pods answer the last one and are idle again), and of
//!    dnsmasq at 1,000. During the growth a probe asks both servers for an unchanged name every
//!    10 ms (PROBE_EVERY): whether the DNS keeps answering while it takes in 9,000 changes (dnsmasq, whose
//!    records do not change, shows what the machine's load alone does).
//!    Then the qps of emu over all 10,000 names.

use anyhow::{anyhow, bail, Context as _};
use emu_api::naming;
use emu_tests::{
    bench::{apply, cluster_with_client, poll},
    emu_path, is_ready, require_root, Cluster,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLUSTER: &str = "bnchdns";
const SERVICES: usize = 1000;
const MORE_SERVICES: usize = 10_000;
/// Rounds of emu / dnsmasq runs, interleaved.
const ROUNDS: usize = 3;
/// Seconds of one dnsperf run.
const RUN_SECS: u32 = 5;
/// dnsperf clients (UDP sockets), all on one dnsperf thread: on 2 cores, more threads only take
/// CPU from the server under test (measured: `-c 4 -T 1` gave the highest rate here).
const CLIENTS: u32 = 4;
/// Offered loads of the latency runs, queries per second.
const RATES: [u32; 2] = [1000, 10_000];
/// The container of Deployment kube-system/coredns's pods, which runs emu-dns as `/coredns`.
const DNS_CONTAINER: &str = "coredns";

fn main() {
    require_root();
    // Others' builds and clusters on the same machine show in the figures: say how busy it was.
    println!("emu DNS benchmark ({} cores, load average {})", std::thread::available_parallelism().map_or(1, |n| n.get()), loadavg());
    for (program, package) in [("dnsperf", "dnsperf"), ("/usr/sbin/dnsmasq", "dnsmasq-base")] {
        let found = Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            println!("    skipped: {program} is missing (apt-get install {package}, or run scripts/bench)");
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let scratch = Scratch::new();
    if let Err(e) = dns_bench(&rt, &scratch) {
        println!("    failed: {e:#}");
    }
}

/// The 1-minute load average of the machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// A directory of the benchmark's own for the query files; removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("emu-bench-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One figure line: what was measured, in a column, then the figures.
fn row(what: &str, figures: String) {
    println!("    {what:<40} {figures}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p`th percentile (nearest rank) of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.saturating_sub(1).min(sorted.len() - 1)]
}

/// Milliseconds, or "lost" for a query that got no answer (counted as infinitely slow).
fn ms(secs: f64) -> String {
    if secs.is_finite() {
        format!("{:.3} ms", secs * 1000.0)
    } else {
        "lost".into()
    }
}

/// Pods of one namespace as JSON; empty when `emu get` fails (the caller polls).
fn pods(cluster: &Cluster, namespace: &str) -> Vec<Value> {
    let r = cluster.emu(&["get", "pods", "-n", namespace, "-o", "json"]);
    serde_json::from_str::<Value>(&r.stdout).ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string() && is_ready(p)
}

fn pod_ip(p: &Value) -> anyhow::Result<Ipv4Addr> {
    p["status"]["podIP"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("pod {} has no IPv4 podIP", p["metadata"]["name"]))
}

fn pod_netns(p: &Value) -> String {
    naming::netns_pod(CLUSTER, p["metadata"]["uid"].as_str().unwrap_or(""))
}

/// A pod of `image` on `node` running `command`.
fn pod(name: &str, node: &str, image: &str, command: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                 "containers": [{"name": "main", "image": image, "command": command}]}})
}

fn service_name(i: usize) -> String {
    format!("svc{i}")
}

fn fqdn(i: usize) -> String {
    format!("{}.default.svc.cluster.local", service_name(i))
}

/// A selectorless ClusterIP Service: its A record is its ClusterIP, endpoints or not.
fn service(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(i), "namespace": "default"},
        "spec": {"ports": [{"protocol": "TCP", "port": 80}]}})
}

/// ClusterIPs of the default namespace's Services, by name.
fn cluster_ips(cluster: &Cluster) -> anyhow::Result<HashMap<String, Ipv4Addr>> {
    let r = cluster.emu(&["get", "services", "-o", "json"]);
    let v: Value = serde_json::from_str(&r.stdout).with_context(|| format!("emu get services -o json: {}", r.stderr.trim()))?;
    Ok(v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["metadata"]["name"].as_str()?.to_string(), s["spec"]["clusterIP"].as_str()?.parse().ok()?)))
        .collect())
}

/// One A query with dig from `netns` to `server`; the answer's addresses.
fn dig(netns: &str, server: Ipv4Addr, name: &str) -> Vec<String> {
    Command::new("ip")
        .args(["netns", "exec", netns, "dig", "+short", "+time=1", "+tries=1"])
        .arg(format!("@{server}"))
        .args([name, "A"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits until `server` answers `name` with `ip`; the time it took.
fn wait_answer(netns: &str, server: Ipv4Addr, name: &str, ip: Ipv4Addr, timeout: Duration) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let want = ip.to_string();
    poll(&format!("{server} to answer {name} A {ip}"), timeout, Duration::from_millis(100), || {
        dig(netns, server, name).contains(&want).then_some(())
    })?;
    Ok(t.elapsed())
}

/// What one dnsperf run reports.
#[derive(Default)]
struct Perf {
    qps: f64,
    sent: u64,
    completed: u64,
    /// Average latency in seconds.
    avg: f64,
    /// `response codes` as dnsperf prints them, e.g. `NOERROR 150304 (100.00%)`.
    rcodes: String,
    /// Average response size in bytes.
    response_bytes: f64,
    /// Per-query latencies in seconds (with `-v`).
    latencies: Vec<f64>,
}

fn field<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.trim_start().strip_prefix(label)).map(str::trim)
}

fn first_number(s: &str) -> Option<f64> {
    s.split(|c: char| !(c.is_ascii_digit() || c == '.')).find(|t| !t.is_empty()).and_then(|t| t.parse().ok())
}

fn parse_dnsperf(out: &str) -> anyhow::Result<Perf> {
    let num = |label: &str| field(out, label).and_then(first_number).ok_or_else(|| anyhow!("no {label:?} in dnsperf's output:\n{out}"));
    let response_bytes =
        field(out, "Average packet size:").and_then(|s| s.split("response").nth(1)).and_then(first_number).unwrap_or(f64::NAN);
    // `-v`: `> NOERROR svc1.default.svc.cluster.local A 0.000280` per answer.
    let latencies =
        out.lines().filter_map(|l| l.strip_prefix("> ")).filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok()).collect();
    Ok(Perf {
        qps: num("Queries per second:")?,
        sent: num("Queries sent:")? as u64,
        completed: num("Queries completed:")? as u64,
        avg: num("Average Latency (s):")?,
        rcodes: field(out, "Response codes:").unwrap_or("").to_string(),
        response_bytes,
        latencies,
    })
}

/// One dnsperf run of `RUN_SECS` from `netns` against `server`, at `rate` queries per second
/// (None: as fast as answers come back), with per-query latencies when `verbose`.
fn dnsperf(netns: &str, server: Ipv4Addr, queries: &Path, rate: Option<u32>, verbose: bool) -> anyhow::Result<Perf> {
    let mut args: Vec<String> = [
        "dnsperf",
        "-s",
        &server.to_string(),
        "-d",
        &queries.display().to_string(),
        "-l",
        &RUN_SECS.to_string(),
        "-c",
        &CLIENTS.to_string(),
        "-T",
        "1",
        // A lost query counts as lost after 1 s (it would not be in the latencies otherwise).
        "-t",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(q) = rate {
        args.extend(["-Q".into(), q.to_string()]);
    }
    if verbose {
        args.push("-v".into());
    }
    let out =
        Command::new("ip").args(["netns", "exec", netns]).args(&args).output().context("running dnsperf (apt-get install dnsperf)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "`ip netns exec {netns} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_dnsperf(&stdout).with_context(|| format!("`{}`", args.join(" ")))
}

/// The host PID of a container's main process, from the pod's shim state file, checked to be in
/// the pod's network namespace and to run `program`.
fn container_pid(pod: &Value, container: &str, program: &str) -> anyhow::Result<i32> {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    let state_file = Path::new("/run/emu").join(CLUSTER).join("nodes").join(node).join("pods").join(uid).join("state.json");
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).with_context(|| format!("reading {}", state_file.display()))?)
        .with_context(|| format!("parsing {}", state_file.display()))?;
    let pid = state["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["pid"].as_i64())
        .ok_or_else(|| anyhow!("{}: no running container {container:?}", state_file.display()))? as i32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    if !String::from_utf8_lossy(argv0).ends_with(program) {
        bail!("PID {pid} of container {container:?} runs {:?}, not {program}", String::from_utf8_lossy(argv0));
    }
    let pod_ns = std::fs::metadata(format!("/run/netns/{}", pod_netns(pod)))?.ino();
    let proc_ns = std::fs::metadata(format!("/proc/{pid}/ns/net"))?.ino();
    if pod_ns != proc_ns {
        bail!("PID {pid} is not in the network namespace of pod {}", pod_netns(pod));
    }
    Ok(pid)
}

/// `(VmRSS, RssAnon)` of a process in MB.
fn rss_mb(pid: i32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(first_number).ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
    };
    Ok((kb("VmRSS:")? / 1024.0, kb("RssAnon:")? / 1024.0))
}

fn rss_text(pid: i32) -> String {
    match rss_mb(pid) {
        Ok((rss, anon)) => format!("{rss:5.1} MB (anonymous {anon:4.1} MB)"),
        Err(e) => format!("unknown: {e:#}"),
    }
}

/// The A query file of dnsperf for services `0..n`.
fn query_file(dir: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("queries-{n}.txt"));
    let text: String = (0..n).map(|i| format!("{} A\n", fqdn(i))).collect();
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The figures of one server over the interleaved runs.
fn summary(runs: &[Perf]) -> (f64, String) {
    let qps = median(runs.iter().map(|p| p.qps).collect());
    let lost: u64 = runs.iter().map(|p| p.sent - p.completed).sum();
    let avg = median(runs.iter().map(|p| p.avg).collect());
    let detail = format!("mean latency {}, {lost} lost, response {:.0} B, {}", ms(avg), runs[0].response_bytes, runs[0].rcodes);
    (qps, detail)
}

fn dns_bench(rt: &tokio::runtime::Runtime, scratch: &Scratch) -> anyhow::Result<()> {
    println!("  one emu DNS pod against dnsmasq in a pod of the same kind, 2-node cluster ({CLUSTER})");
    let (cluster, mut client) = cluster_with_client(rt, CLUSTER, 2)?;

    let dns_pods = poll("2 ready DNS pods (kube-system/coredns)", Duration::from_secs(60), Duration::from_millis(100), || {
        let mut p: Vec<Value> =
            pods(&cluster, "kube-system").into_iter().filter(|p| p["metadata"]["labels"]["k8s-app"] == "kube-dns" && running(p)).collect();
        p.sort_by_key(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string());
        (p.len() == 2).then_some(p)
    })
    .map_err(|e| anyhow!("{e}\n{}", cluster.logs()))?;
    // The measured DNS pod, and the client and dnsmasq on its node: the same path to both.
    let (measured, other) = (&dns_pods[0], &dns_pods[1]);
    let node = measured["spec"]["nodeName"].as_str().unwrap_or("node-1");
    let emu_ip = pod_ip(measured)?;

    // dnsmasq waits for its hosts file, then runs in the foreground as the container's process:
    // `--keep-in-foreground` is dnsmasq's production mode without the fork (`--no-daemon` is its
    // debug mode); root, because the pod's /etc/passwd has no `dnsmasq` user; no upstream, no
    // /etc/hosts; answers with the TTL emu gives (30 s), so that the answers are alike.
    let dnsmasq = "while [ ! -f /tmp/hosts ]; do sleep 0.1; done; \
        exec /usr/sbin/dnsmasq --keep-in-foreground --user=root --pid-file= --log-facility=- \
        --no-resolv --no-hosts --addn-hosts=/tmp/hosts --local-ttl=30";
    rt.block_on(apply(
        &mut client,
        &[pod("bench-client", node, "busybox", &["sleep", "100000"]), pod("bench-dnsmasq", node, "4km3/dnsmasq", &["sh", "-c", dnsmasq])],
    ))?;
    let bench_pods = poll("pods bench-client and bench-dnsmasq Running", Duration::from_secs(60), Duration::from_millis(100), || {
        let p = pods(&cluster, "default");
        (p.iter().filter(|p| running(p)).count() == 2).then_some(p)
    })
    .map_err(|e| anyhow!("{e}\n{}", cluster.logs()))?;
    let by_name = |name: &str| bench_pods.iter().find(|p| p["metadata"]["name"] == name).ok_or_else(|| anyhow!("no pod {name}"));
    let netns = pod_netns(by_name("bench-client")?);
    let dnsmasq_pod = by_name("bench-dnsmasq")?;
    let dnsmasq_ip = pod_ip(dnsmasq_pod)?;

    // 1. 1,000 Services in one apply, until the measured DNS pod answers the last one.
    let t = Instant::now();
    rt.block_on(apply(&mut client, &(0..SERVICES).map(service).collect::<Vec<_>>()))?;
    let applied = t.elapsed();
    let ips = cluster_ips(&cluster)?;
    let last = service_name(SERVICES - 1);
    let last_ip = *ips.get(&last).ok_or_else(|| anyhow!("service {last} has no ClusterIP"))?;
    wait_answer(&netns, emu_ip, &fqdn(SERVICES - 1), last_ip, Duration::from_secs(60))?;
    let answered = t.elapsed();
    row(
        &format!("{SERVICES} services: apply → answered"),
        format!(
            "{:.2} s   (the apply itself {:.2} s; the measured pod answers {last} with its ClusterIP)",
            answered.as_secs_f64(),
            applied.as_secs_f64()
        ),
    );

    // dnsmasq's records: the same names and ClusterIPs, written into its pod's /tmp.
    let mut hosts = String::new();
    for i in 0..SERVICES {
        let ip = ips.get(&service_name(i)).ok_or_else(|| anyhow!("service {} has no ClusterIP", service_name(i)))?;
        hosts.push_str(&format!("{ip} {}\n", fqdn(i)));
    }
    write_into_pod("bench-dnsmasq", "/tmp/hosts", hosts.as_bytes())?;
    wait_answer(&netns, dnsmasq_ip, &fqdn(SERVICES - 1), last_ip, Duration::from_secs(30))?;

    let emu_pid = container_pid(measured, DNS_CONTAINER, "/coredns")?;
    let other_pid = container_pid(other, DNS_CONTAINER, "/coredns")?;
    let dnsmasq_pid = container_pid(dnsmasq_pod, "main", "dnsmasq")?;
    let idle_rss = rss_text(emu_pid);

    // 2. Throughput, then latency at fixed loads; emu and dnsmasq in turn.
    let queries = query_file(&scratch.0, SERVICES)?;
    println!(
        "    dnsperf from pod bench-client ({node}) to emu-dns {emu_ip} and dnsmasq {dnsmasq_ip} (same node), {SERVICES} names, -c {CLIENTS} -T 1, {RUN_SECS} s a run"
    );
    let (mut emu_runs, mut dnsmasq_runs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        emu_runs.push(dnsperf(&netns, emu_ip, &queries, None, false)?);
        dnsmasq_runs.push(dnsperf(&netns, dnsmasq_ip, &queries, None, false)?);
    }
    let (emu_qps, emu_detail) = summary(&emu_runs);
    let (dm_qps, dm_detail) = summary(&dnsmasq_runs);
    let pairs: Vec<f64> = emu_runs.iter().zip(&dnsmasq_runs).map(|(e, d)| e.qps / d.qps).collect();
    let (lo, hi) = pairs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    row(
        "queries per second, no rate limit",
        format!(
            "emu: {emu_qps:8.0}   dnsmasq: {dm_qps:8.0}   emu/dnsmasq {:.2} (pairs {lo:.2}–{hi:.2})   (medians of {ROUNDS} × {RUN_SECS} s; goal ≥ 1)",
            emu_qps / dm_qps
        ),
    );
    println!("      emu:     {emu_detail}");
    println!("      dnsmasq: {dm_detail}");
    for rate in RATES {
        let (mut emu_lat, mut dm_lat) = (Vec::new(), Vec::new());
        let (mut emu_lost, mut dm_lost) = (0, 0);
        for _ in 0..ROUNDS {
            for (server, lat, lost) in [(emu_ip, &mut emu_lat, &mut emu_lost), (dnsmasq_ip, &mut dm_lat, &mut dm_lost)] {
                let p = dnsperf(&netns, server, &queries, Some(rate), true)?;
                let missing = p.sent.saturating_sub(p.latencies.len() as u64);
                *lost += p.sent - p.completed;
                lat.extend(p.latencies);
                // A query without an answer is slower than any answered one.
                lat.extend(std::iter::repeat_n(f64::INFINITY, missing as usize));
            }
        }
        emu_lat.sort_by(f64::total_cmp);
        dm_lat.sort_by(f64::total_cmp);
        let fig =
            |v: &[f64]| format!("p50 {}  p99 {}  p99.9 {}", ms(percentile(v, 50.0)), ms(percentile(v, 99.0)), ms(percentile(v, 99.9)));
        row(
            &format!("latency at {rate} queries/s"),
            format!(
                "emu: {}   dnsmasq: {}   p99 emu/dnsmasq {:.2}   ({} + {} queries of {ROUNDS} × {RUN_SECS} s{}; goal p99 ≤ 1 ms)",
                fig(&emu_lat),
                fig(&dm_lat),
                percentile(&emu_lat, 99.0) / percentile(&dm_lat, 99.0),
                emu_lat.len(),
                dm_lat.len(),
                if emu_lost + dm_lost > 0 { format!(", lost: emu {emu_lost}, dnsmasq {dm_lost}") } else { String::new() }
            ),
        );
    }

    // 3. Memory at 1,000 and 10,000 services.
    row(
        &format!("RSS at {SERVICES} services"),
        format!(
            "emu-dns: {} after the runs, {idle_rss} before; other replica {}; dnsmasq {}",
            rss_text(emu_pid),
            rss_text(other_pid),
            rss_text(dnsmasq_pid)
        ),
    );
    let cpu_before = [cpu_secs(emu_pid), cpu_secs(other_pid)];
    let builds_before = catalog_builds(&cluster, measured);
    let probe = Probe::start(&netns, &[emu_ip, dnsmasq_ip], &fqdn(0));
    let t = Instant::now();
    let grown = rt.block_on(apply(&mut client, &(SERVICES..MORE_SERVICES).map(service).collect::<Vec<_>>()));
    let applied = t.elapsed();
    let answered = grown.and_then(|()| {
        let ips = cluster_ips(&cluster)?;
        let last = service_name(MORE_SERVICES - 1);
        let last_ip = *ips.get(&last).ok_or_else(|| anyhow!("service {last} has no ClusterIP"))?;
        let timeout = Duration::from_secs(600);
        wait_answer(&netns, emu_ip, &fqdn(MORE_SERVICES - 1), last_ip, timeout)?;
        let answered = t.elapsed();
        wait_answer(&netns, pod_ip(other)?, &fqdn(MORE_SERVICES - 1), last_ip, timeout)?;
        Ok((answered, t.elapsed()))
    });
    let probes = probe.stop();
    let (answered, both) = answered?;
    row(
        &format!("{} more services: apply → answered", MORE_SERVICES - SERVICES),
        format!(
            "{:.2} s by the measured pod, {:.2} s by both   (the apply itself {:.2} s)",
            answered.as_secs_f64(),
            both.as_secs_f64(),
            applied.as_secs_f64()
        ),
    );
    for (server, answers) in ["emu", "dnsmasq"].iter().zip(&probes) {
        let mut ok: Vec<f64> = answers.iter().filter_map(|a| *a).collect();
        ok.sort_by(f64::total_cmp);
        row(
            &format!("  {server}: {} meanwhile", fqdn(0)),
            format!(
                "{} probes, {} unanswered within 1 s; answered: p50 {}  p99 {}  max {}",
                answers.len(),
                answers.len() - ok.len(),
                ms(percentile(&ok, 50.0)),
                ms(percentile(&ok, 99.0)),
                ms(ok.last().copied().unwrap_or(f64::NAN))
            ),
        );
    }
    println!(
        "      CPU of emu-dns during the growth: {:.1} s (measured pod), {:.1} s (other replica); catalogs the measured pod built from a whole list: {}",
        cpu_secs(emu_pid) - cpu_before[0],
        cpu_secs(other_pid) - cpu_before[1],
        catalog_builds(&cluster, measured).saturating_sub(builds_before)
    );
    // Memory and the next runs once both DNS processes are idle. The node agents may still be
    // writing the rules of 10,000 services (tens of seconds per sync at that size), which this
    // benchmark does not wait for; their share of the CPU is printed instead.
    let t = Instant::now();
    let settled = poll("both emu-dns processes to go idle", Duration::from_secs(120), Duration::ZERO, || {
        (cpu_share(&[emu_pid, other_pid], Duration::from_secs(1)) < 0.02).then_some(())
    });
    let agents = cpu_share(&daemon_pids(&cluster), Duration::from_secs(1));
    println!(
        "      emu-dns idle (< 2% of a core over 1 s) {}; the controller and node agents meanwhile use {:.0}% of a core",
        match settled {
            Ok(()) => format!("after {:.1} s more", t.elapsed().as_secs_f64()),
            Err(e) => format!("never: {e}"),
        },
        agents * 100.0
    );
    let more_queries = query_file(&scratch.0, MORE_SERVICES)?;
    let before_runs = rss_text(emu_pid);
    let runs = (0..ROUNDS).map(|_| dnsperf(&netns, emu_ip, &more_queries, None, false)).collect::<anyhow::Result<Vec<_>>>()?;
    let (qps, detail) = summary(&runs);
    row(
        &format!("RSS at {MORE_SERVICES} services"),
        format!("emu-dns: {} after the runs below, {before_runs} before; other replica {}", rss_text(emu_pid), rss_text(other_pid)),
    );
    row(&format!("emu queries per second, {MORE_SERVICES} names"), format!("{qps:8.0}   ({detail}; median of {ROUNDS} × {RUN_SECS} s)"));
    drop(cluster);
    Ok(())
}

/// Writes `data` to `path` inside pod `pod` (default namespace) with `emu exec -i`, through a
/// temporary name, so that a reader waiting for `path` never sees half a file.
fn write_into_pod(pod: &str, path: &str, data: &[u8]) -> anyhow::Result<()> {
    let script = format!("cat > {path}.part && mv {path}.part {path}");
    let argv = ["exec", "-i", "--cluster", CLUSTER, pod, "--", "sh", "-c", &script];
    let mut child = Command::new(emu_path())
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `emu {}`", argv.join(" ")))?;
    child.stdin.take().expect("piped stdin").write_all(data).with_context(|| format!("writing to `emu {}`", argv.join(" ")))?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("`emu {}` failed ({}): {}", argv.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// How often the probe asks during the growth. The growth takes a few seconds: at 10 ms that is
/// some hundreds of answers per server, enough for a p99 that is not just the slowest one.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// Asks each server for one name every [`PROBE_EVERY`], from a thread in the client pod's network
/// namespace, until stopped: per server, the latency of each answer in seconds, None when none
/// came within 1 s.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Vec<Vec<Option<f64>>>>>,
}

impl Probe {
    fn start(netns: &str, servers: &[Ipv4Addr], name: &str) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, servers, query) = (format!("/run/netns/{netns}"), servers.to_vec(), dns_query(name));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it
            // changes only this thread's network namespace, a thread of the probe's own.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns into {path}: {}", std::io::Error::last_os_error());
            }
            let sockets = servers
                .iter()
                .map(|ip| {
                    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
                    s.connect((*ip, 53))?;
                    s.set_read_timeout(Some(Duration::from_millis(50)))?;
                    Ok(s)
                })
                .collect::<std::io::Result<Vec<_>>>()
                .context("UDP sockets for the probe")?;
            let mut answers = vec![Vec::new(); servers.len()];
            let mut id: u16 = 0;
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                for (socket, answers) in sockets.iter().zip(&mut answers) {
                    id = id.wrapping_add(1);
                    let mut q = query.clone();
                    q[..2].copy_from_slice(&id.to_be_bytes());
                    let sent = Instant::now();
                    socket.send(&q).context("sending a probe")?;
                    let mut answer = None;
                    while sent.elapsed() < Duration::from_secs(1) {
                        match socket.recv(&mut buf) {
                            // Late answers to earlier probes carry another id.
                            Ok(n) if n >= 4 && buf[..2] == id.to_be_bytes() => {
                                answer = Some(sent.elapsed().as_secs_f64());
                                break;
                            }
                            _ => {}
                        }
                    }
                    answers.push(answer);
                }
                std::thread::sleep(PROBE_EVERY);
            }
            Ok(answers)
        });
        Probe { stop, thread }
    }

    fn stop(self) -> Vec<Vec<Option<f64>>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(answers)) => answers,
            Ok(Err(e)) => {
                println!("      (the probe failed: {e:#})");
                Vec::new()
            }
            Err(_) => {
                println!("      (the probe panicked)");
                Vec::new()
            }
        }
    }
}

/// A DNS query for `name` A IN, recursion desired, id 0 (the probe sets it).
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// PIDs of the cluster's controller and node agents.
fn daemon_pids(cluster: &Cluster) -> Vec<i32> {
    let root = Path::new("/run/emu").join(&cluster.name);
    let mut files = vec![root.join("controller.pid")];
    if let Ok(nodes) = std::fs::read_dir(root.join("nodes")) {
        files.extend(nodes.flatten().map(|n| n.path().join("agent.pid")));
    }
    files.iter().filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok()).collect()
}

/// CPU time (user + system) of a process in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// CPU time (user + system) of a process in seconds.
fn cpu_secs(pid: i32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    cpu_ticks(pid) as f64 / hz
}

/// The share of one core that `pids` used together over `window`.
fn cpu_share(pids: &[i32], window: Duration) -> f64 {
    let before: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    std::thread::sleep(window);
    let after: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    (after - before).max(0.0) / window.as_secs_f64()
}

/// How many catalogs a DNS pod has built from a whole list of the controller's objects: emu-dns
/// logs one "catalog synced" line per list (the first, and one after a watch that could not
/// resume); other changes update the records they touch, at debug level.
fn catalog_builds(cluster: &Cluster, pod: &Value) -> usize {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    cluster.emu(&["logs", "-n", "kube-system", name]).stdout.matches("catalog synced").count()
}
