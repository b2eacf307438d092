//! emu's scale benchmark (issue 22): builds large clusters and prints figures, asserts nothing.
//! `sudo ./scripts/bench` runs it with `--size full`; alone: `cargo build --workspace --release &&
//! sudo target/release/emu-bench-scale [--size small|full] [nodes] [pods] [proxy] [mininet] [burst]`.
//!
//! - `nodes`: an empty cluster of 100 nodes (small: 10): `emu up` time (goal ≤ 5 s) and the PSS
//!   of the controller and its agents (goal ≤ 300 MB at 100 nodes); `emu down` time.
//! - `pods`: a Deployment of busybox pods brought up with the cluster (`emu up` of a scenario, as
//!   a user would): 1,000 pods on 10 nodes (goal ≤ 10 s, 100 pods/s) and 10,000 pods on 100
//!   nodes (small: 100 pods on 3 nodes): `emu up` time and pods/s, PSS of the controller, the
//!   agents, the pods' shims (emu's own memory per pod, goal ≤ 0.5 MB) and the containers,
//!   `emu get pods -A` time (median of 3), `emu down` time (goal ≤ 1 s at 1,000 pods).
//! - `proxy`: runs `emu-bench-proxy endpoint` with 10,000 Services × 3 endpoints on 10 nodes
//!   (small: 300 Services on 3 nodes): the rules of every Service on every node (full sync) and an
//!   endpoint change until every node has it, p50/p99.
//! - `mininet`: Mininet's `mn --topo single,100` and `single,1000` (small: 100) with Linux
//!   bridges, create and destroy, in a network namespace of the bench's own (`emu-bench-mn-PID`,
//!   deleted afterwards), against emu with the same number of pods (the `pods` figure of this run
//!   when it has that many pods, otherwise a cluster of one node per 100 pods measured here).
//! - `burst` (only when named; scripts/bench runs it in `emu-bench`): runs `emu-bench pods`, 100
//!   pods at once on 4 nodes, p50/p99 to Running.
//!
//! Clusters are named `bnchscale*` and deleted at the end of their section, also when it fails.

use anyhow::{bail, Context as _};
use emu_tests::bench::{cluster_up, proc_mb};
use emu_tests::{emu, require_root, Cluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CLUSTER: &str = "bnchscale";

/// The sizes of one run: `--size small` tries every section in a minute or two; `full` is the
/// issue's.
struct Sizes {
    /// Nodes of the empty cluster.
    empty_nodes: usize,
    /// (pods, nodes) of each Deployment cluster.
    pods: Vec<(usize, usize)>,
    /// (Services, nodes) of the proxy section.
    proxy: (usize, usize),
    /// Hosts of each Mininet `single,N`.
    mininet: Vec<usize>,
}

impl Sizes {
    fn of(name: &str) -> Option<Sizes> {
        match name {
            "small" => Some(Sizes { empty_nodes: 10, pods: vec![(100, 3)], proxy: (300, 3), mininet: vec![100] }),
            "full" => {
                Some(Sizes { empty_nodes: 100, pods: vec![(1000, 10), (10_000, 100)], proxy: (10_000, 10), mininet: vec![100, 1000] })
            }
            _ => None,
        }
    }
}

const SECTIONS: [&str; 5] = ["nodes", "pods", "proxy", "mininet", "burst"];

fn main() {
    require_root();
    let mut args = std::env::args().skip(1);
    let (mut size, mut sections) = ("small".to_string(), Vec::new());
    while let Some(a) = args.next() {
        if a == "--size" {
            size = args.next().unwrap_or_default();
        } else if let Some(s) = a.strip_prefix("--size=") {
            size = s.to_string();
        } else if SECTIONS.contains(&a.as_str()) {
            sections.push(a);
        } else {
            usage(&format!("unknown section {a:?}"));
        }
    }
    let Some(sizes) = Sizes::of(&size) else { usage(&format!("unknown size {size:?}")) };
    // `burst` runs only when named: scripts/bench has it already from emu-bench.
    let run = |s: &str| (sections.is_empty() && s != "burst") || sections.iter().any(|a| a == s);
    println!("emu scale benchmark, --size {size} ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut measured: Vec<PodsFigures> = Vec::new();
    if run("nodes") {
        report("empty cluster", empty_cluster(sizes.empty_nodes));
    }
    if run("pods") {
        for &(pods, nodes) in &sizes.pods {
            match pods_cluster(pods, nodes) {
                Ok(f) => {
                    f.print();
                    measured.push(f);
                }
                Err(e) => println!("    {pods} pods on {nodes} nodes failed: {e:#}"),
            }
        }
    }
    if run("proxy") {
        let (services, nodes) = sizes.proxy;
        let (s, n) = (services.to_string(), nodes.to_string());
        report("emu-bench-proxy", sibling("emu-bench-proxy", &["endpoint", "--services", &s, "--nodes", &n]));
    }
    if run("mininet") {
        report("mininet", mininet(&sizes.mininet, &mut measured));
    }
    if run("burst") {
        report("emu-bench pods", sibling("emu-bench", &["pods"]));
    }
}

fn usage(error: &str) -> ! {
    eprintln!("error: {error}; usage: emu-bench-scale [--size small|full] [nodes] [pods] [proxy] [mininet] [burst]");
    std::process::exit(2);
}

fn report(what: &str, r: anyhow::Result<()>) {
    if let Err(e) = r {
        println!("    {what} failed: {e:#}");
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Another benchmark of this workspace, run next to this one with its output shown as it comes.
fn sibling(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let path = std::env::current_exe()?.with_file_name(program);
    let status = Command::new(&path).args(args).status().with_context(|| format!("running {}", path.display()))?;
    if !status.success() {
        bail!("{} {} exited with {status}", path.display(), args.join(" "));
    }
    Ok(())
}

/// A timed `emu ARGS`, failing with its output.
fn timed(cluster: &Cluster, args: &[&str]) -> anyhow::Result<(Duration, String)> {
    let t = Instant::now();
    let r = cluster.emu(args);
    let elapsed = t.elapsed();
    if r.code != 0 {
        bail!("emu {} failed:\n{}{}", args.join(" "), r.stdout, r.stderr);
    }
    Ok((elapsed, r.stdout))
}

/// `emu down` of a cluster the section is done with, timed; the guard's own `emu down` then finds
/// nothing left.
fn down(cluster: &Cluster) -> anyhow::Result<Duration> {
    timed(cluster, &["down"]).map(|(d, _)| d)
}

/// PSS (MB) of the processes of one cluster, by what they are, from its cgroups (every process a
/// cluster starts lives under its cgroup).
#[derive(Default, Debug)]
struct Memory {
    controller: f64,
    agents: f64,
    /// The pods' shims: emu's own cost of a pod.
    shims: f64,
    shim_count: usize,
    /// Everything else: the containers' programs (busybox here, emu-dns).
    containers: f64,
}

impl Memory {
    fn of(cluster: &str) -> Memory {
        let mut m = Memory::default();
        let Ok(root) = emu_host::cgroup::cluster_dir(cluster) else { return m };
        let mut pids = vec![];
        cgroup_pids(&root, &mut pids);
        for pid in pids {
            let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| b.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
                .unwrap_or_default();
            let program = argv.first().and_then(|a| Path::new(a).file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let pss = proc_mb(pid, "smaps_rollup", "Pss:");
            match (program.as_str(), argv.get(1).map(String::as_str)) {
                ("emu-controller", _) => m.controller += pss,
                ("emu-nodeagent", Some("shim")) => {
                    m.shims += pss;
                    m.shim_count += 1;
                }
                ("emu-nodeagent", _) => m.agents += pss,
                _ => m.containers += pss,
            }
        }
        m
    }
}

/// Every PID in `dir`'s cgroup and those below it.
fn cgroup_pids(dir: &Path, out: &mut Vec<i32>) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            cgroup_pids(&e.path(), out);
        }
    }
}

fn empty_cluster(nodes: usize) -> anyhow::Result<()> {
    let name = format!("{CLUSTER}n");
    let t = Instant::now();
    let cluster = cluster_up(&name, nodes)?;
    let up = t.elapsed();
    let mem = Memory::of(&name);
    let down = down(&cluster)?;
    let goal = if nodes >= 100 { "; goals ≤ 5 s, ≤ 300 MB" } else { "; goals at 100 nodes: ≤ 5 s, ≤ 300 MB" };
    println!(
        "  empty cluster of {nodes} nodes: emu up {:6.2} s   PSS controller + {nodes} agents {:6.1} MB ({:.1} + {:.1})   emu down {:5.2} s{goal}",
        secs(up),
        mem.controller + mem.agents,
        mem.controller,
        mem.agents,
        secs(down)
    );
    Ok(())
}

/// What one Deployment cluster measured.
struct PodsFigures {
    pods: usize,
    nodes: usize,
    up: Duration,
    mem: Memory,
    get_all: Duration,
    listed: usize,
    down: Duration,
}

impl PodsFigures {
    fn print(&self) {
        let (p, n) = (self.pods, self.nodes);
        let m = &self.mem;
        println!(
            "  {p} busybox pods (one Deployment) on {n} nodes: emu up → all Running {:6.2} s   {:6.1} pods/s   (goal at 1,000 on 10: ≤ 10 s)",
            secs(self.up),
            p as f64 / secs(self.up)
        );
        println!(
            "    PSS: controller {:.1} MB, {n} agents {:.1} MB, {} shims {:.1} MB ({:.2} MB each), containers {:.1} MB",
            m.controller,
            m.agents,
            m.shim_count,
            m.shims,
            m.shims / m.shim_count.max(1) as f64,
            m.containers
        );
        // As the issue counts it: what emu itself (not the pods' programs) costs per pod.
        println!(
            "    emu's own memory per pod, (controller + agents + shims) / pods: {:.2} MB   (goal ≤ 0.5 MB)",
            (m.controller + m.agents + m.shims) / self.pods as f64
        );
        println!(
            "    emu get pods -A: {:6.3} s for {} rows (median of 3)   emu down: {:6.2} s   (goal at 1,000 pods: ≤ 1 s)",
            secs(self.get_all),
            self.listed,
            secs(self.down)
        );
    }

    /// `emu up` and `emu down`: what Mininet's create-and-destroy is set against.
    fn up_and_down(&self) -> Duration {
        self.up + self.down
    }
}

/// A scenario of `nodes` nodes and one Deployment of `pods` busybox pods, in `dir`.
fn write_scenario(dir: &Path, pods: usize, nodes: usize) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
    std::fs::write(dir.join("scale.yaml"), format!("name: scale\nnodes: [{}]\nmanifests:\n  - deployment.yaml\n", names.join(", ")))?;
    std::fs::write(
        dir.join("deployment.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: scale}}\nspec:\n  replicas: {pods}\n  selector: {{matchLabels: {{app: scale}}}}\n  template:\n    metadata: {{labels: {{app: scale}}}}\n    spec:\n      containers: [{{name: main, image: busybox, command: [sleep, '1000000']}}]\n"
        ),
    )?;
    Ok(dir.join("scale.yaml"))
}

fn pods_cluster(pods: usize, nodes: usize) -> anyhow::Result<PodsFigures> {
    let name = format!("{CLUSTER}p");
    emu(&["down", "--cluster", &name]);
    let cluster = Cluster { name: name.clone() };
    let scenario = write_scenario(&cluster.scratch_dir(), pods, nodes)?;
    // emu up waits for every pod; 10,000 may take minutes on a loaded machine.
    let timeout = (60 + pods / 10).to_string();
    let (up, _) = timed(&cluster, &["up", "--timeout", &timeout, scenario.to_str().context("path")?])?;
    let mem = Memory::of(&name);
    let mut gets = vec![];
    let mut listed = 0;
    for _ in 0..3 {
        let (d, out) = timed(&cluster, &["get", "pods", "-A"])?;
        listed = out.lines().count().saturating_sub(1);
        gets.push(d);
    }
    gets.sort();
    let down = down(&cluster)?;
    Ok(PodsFigures { pods, nodes, up, mem, get_all: gets[1], listed, down })
}

/// Mininet's Python, run as `mn` runs, with two of its functions replaced: `fixLimits` raises
/// machine-wide sysctls (kernel.pty.max, fs.file-max, net.core.*), which no namespace contains,
/// and `cleanup` (run when mn fails) kills processes by name machine-wide and removes
/// /tmp/*.log. Neither builds the network that is timed; the open-file limit fixLimits raises is
/// this process's own and is raised here too (1,000 hosts hold more than 1,024 descriptors).
const MN_WRAPPER: &str = r#"
import resource, runpy, sys
import mininet.net, mininet.clean
def limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(16384, hard)), hard))
mininet.net.fixLimits = limits
mininet.clean.cleanup = lambda: None
mininet.clean.Cleanup.cleanup = classmethod(lambda cls: None)
mn = sys.argv[1]
sys.argv = ["mn"] + sys.argv[2:]
runpy.run_path(mn, run_name="__main__")
"#;

const MN: &str = "/usr/bin/mn";

/// The bench's network namespace for Mininet; deleted when dropped (also on a panic), which also
/// removes any link or bridge mn left in it.
struct MnNetns(String);

impl Drop for MnNetns {
    fn drop(&mut self) {
        if !Command::new("ip").args(["netns", "del", &self.0]).status().is_ok_and(|s| s.success()) {
            eprintln!("could not delete netns {}: run `ip netns del {}`", self.0, self.0);
        }
    }
}

/// One `mn --topo single,HOSTS --switch lxbr --controller none --test none` in its own
/// namespace: create and destroy.
fn mininet_run(hosts: usize) -> anyhow::Result<Duration> {
    let name = format!("emu-bench-mn-{}", std::process::id());
    if !Command::new("ip").args(["netns", "add", &name]).status()?.success() {
        bail!("ip netns add {name} failed");
    }
    let ns = MnNetns(name);
    // The Python mn names on its first line (Debian's, which has the mininet module), not the
    // first python3 on PATH.
    let mn = std::fs::read_to_string(MN)?;
    let python = mn.lines().next().and_then(|l| l.strip_prefix("#!")).map_or("/usr/bin/python3", str::trim);
    let topo = format!("single,{hosts}");
    let t = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, python, "-c", MN_WRAPPER])
        .args([MN, "--topo", &topo, "--switch", "lxbr", "--controller", "none", "--test", "none"])
        .output()
        .context("running mn")?;
    let elapsed = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    // mn logs to stderr and exits 0 even when it gave up: its last line says it completed.
    if !out.status.success() || !err.contains("completed in") {
        bail!("mn --topo {topo} failed ({}):\n{err}", out.status);
    }
    Ok(elapsed)
}

fn mininet(sizes: &[usize], measured: &mut Vec<PodsFigures>) -> anyhow::Result<()> {
    if !Path::new(MN).exists() || Command::new("brctl").arg("--version").output().is_err() {
        println!("  Mininet not installed: no baseline (apt-get install --no-install-recommends mininet bridge-utils)");
        return Ok(());
    }
    for &hosts in sizes {
        let mn = mininet_run(hosts)?;
        if !measured.iter().any(|f| f.pods == hosts) {
            measured.push(pods_cluster(hosts, hosts.div_ceil(100))?);
        }
        let f = measured.iter().find(|f| f.pods == hosts).expect("measured above");
        println!(
            "  Mininet mn --topo single,{hosts} --switch lxbr, create and destroy {:6.2} s   emu {hosts} pods on {} node{}, up and down {:6.2} s   emu / Mininet {:.2}",
            secs(mn),
            f.nodes,
            if f.nodes == 1 { "" } else { "s" },
            secs(f.up_and_down()),
            secs(f.up_and_down()) / secs(mn)
        );
    }
    Ok(())
}
