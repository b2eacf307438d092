//! Helpers for the end-to-end tests in `tests/tests/`: run the real `emu` binary against a
//! cluster of the test's own name, and always tear it down (also when the test panics).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod terminal;

/// The workspace's target directory holding `emu` and the programs it runs
/// (`emu_logic::images::companion_programs`; test binaries live in `target/<profile>/deps`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let here = exe.parent().expect("binary directory").to_path_buf();
    // Binaries of the workspace sit in target/<profile>; test binaries one level down, in deps/.
    let candidates = [here.clone(), here.parent().map(PathBuf::from).unwrap_or_default()];
    candidates
        .into_iter()
        .find(|d| d.join("emu").exists())
        .unwrap_or_else(|| panic!("no `emu` next to {}: run `cargo build --workspace` first", here.display()))
}

pub fn emu_path() -> PathBuf {
    bin_dir().join("emu")
}

/// Root is needed for namespaces; the suite is run as root (README, CI).
pub fn require_root() {
    assert!(nix_is_root(), "the end-to-end tests must run as root (sudo ./scripts/test)");
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// The kubeconfig every `emu` of the suite writes to. `emu up` merges its cluster's context into
/// the user's kubeconfig (`emu down` takes it out), and the suite must leave the user's alone:
/// under `sudo ./scripts/test` that is the developer's own `~/.kube/config`. One file for the
/// whole suite, which `emu` locks while it writes; tests/tests/kubeconfig.rs uses files of its own.
pub fn suite_kubeconfig() -> PathBuf {
    std::env::temp_dir().join("emu-tests-kubeconfig")
}

/// Runs `emu ARGS` (no cluster flag) and returns its exit code and output.
pub fn emu(args: &[&str]) -> Run {
    Run::from(
        Command::new(emu_path()).args(args).env_remove("EMU_CLUSTER").env("KUBECONFIG", suite_kubeconfig()).output().expect("running emu"),
    )
}

/// A cluster for one test, removed on drop.
pub struct Cluster {
    pub name: String,
}

impl Cluster {
    /// `emu up ARGS --cluster NAME`, asserting success.
    pub fn up(name: &str, args: &[&str]) -> Cluster {
        require_root();
        let c = Cluster { name: name.to_string() };
        // A previous crashed run may have left the same name behind.
        emu(&["down", "--cluster", name]);
        let mut all = vec!["up", "--cluster", name];
        all.extend_from_slice(args);
        let r = emu(&all);
        assert_eq!(r.code, 0, "emu up failed\nstdout:\n{}\nstderr:\n{}\n{}", r.stdout, r.stderr, c.logs());
        c
    }

    /// `emu ARGS --cluster NAME`.
    pub fn emu(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        let pos = all.iter().position(|a| *a == "--").unwrap_or(all.len());
        all.insert(pos, &self.name);
        all.insert(pos, "--cluster");
        emu(&all)
    }

    /// The daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let root = PathBuf::from("/run/emu").join(&self.name);
        let mut out = String::new();
        let mut files = vec![root.join("controller.log")];
        if let Ok(nodes) = std::fs::read_dir(root.join("nodes")) {
            files.extend(nodes.flatten().map(|n| n.path().join("agent.log")));
        }
        for f in files {
            if let Ok(t) = std::fs::read_to_string(&f) {
                let tail: Vec<&str> = t.lines().rev().take(30).collect();
                out.push_str(&format!("--- {} (last lines)\n", f.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Pods as JSON (`emu get pods -o json`), optionally by label selector.
    pub fn pods(&self, selector: &str) -> Vec<serde_json::Value> {
        let mut args = vec!["get", "pods", "-o", "json"];
        if !selector.is_empty() {
            args.extend(["-l", selector]);
        }
        let r = self.emu(&args).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("get pods -o json");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Writes `yaml` to a file of this test's own and applies it.
    pub fn apply(&self, file: &str, yaml: &str) -> Run {
        let dir = self.scratch_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, yaml).unwrap();
        self.emu(&["apply", "-f", path.to_str().unwrap()])
    }

    /// A directory of this test's own for the files it writes; removed with the cluster.
    pub fn scratch_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("emu-{}-{}", self.name, std::process::id()))
    }

    /// A Service's ClusterIP.
    pub fn cluster_ip(&self, svc: &str) -> String {
        self.emu(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"]).ok().stdout.trim().to_string()
    }

    /// Waits until the pod `pod` (default namespace) is Running and Ready; returns it.
    pub fn ready_pod(&self, pod: &str) -> serde_json::Value {
        self.wait_for(&format!("pod {pod} ready"), Duration::from_secs(20), || {
            self.pods("").into_iter().find(|p| name(p) == pod && is_ready(p))
        })
    }

    /// Waits for `count` ready pods with this label selector.
    pub fn ready_pods(&self, selector: &str, count: usize) -> Vec<serde_json::Value> {
        self.wait_for(&format!("{count} ready pods {selector}"), Duration::from_secs(20), || {
            let pods = self.pods(selector);
            (pods.len() == count && pods.iter().all(is_ready)).then_some(pods)
        })
    }

    /// Polls `f` until it returns Some, or panics with `what` and the daemons' logs.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {:?} waiting for {what}\n{}", timeout, self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let r = emu(&["down", "--cluster", &self.name]);
        let _ = std::fs::remove_dir_all(self.scratch_dir());
        if r.code != 0 && !std::thread::panicking() {
            panic!("emu down failed: {}{}", r.stdout, r.stderr);
        }
    }
}

/// A snapshot of what the host shows, to prove a cluster left nothing behind and never touched
/// the host's own network namespace.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    pub links: String,
    pub addrs: String,
    pub routes: String,
    pub nft: String,
    pub forwarding: String,
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl HostState {
    pub fn capture() -> HostState {
        HostState {
            links: sh("ip -o link show | sed 's/ state [A-Z]*//' | awk '{print $2}' | sort"),
            addrs: sh("ip -o addr show | awk '{print $2, $4}' | sort"),
            routes: sh("ip route show table all | sort"),
            nft: sh("nft list ruleset 2>/dev/null"),
            // The host's IP sysctls (forwarding, per-interface defaults); counters are left out.
            forwarding: sh("for f in /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/* /proc/sys/net/ipv4/conf/default/* /proc/sys/net/ipv6/conf/all/*; do printf '%s=' \"$f\"; cat \"$f\" 2>/dev/null | tr '\\n' ' '; echo; done"),
        }
    }
}

/// Mount points of one cluster (its runtime directory and its named network namespaces).
pub fn emu_mounts(cluster: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&format!("/run/emu/{cluster}")) || m.starts_with(&format!("/run/netns/emu-{cluster}-")))
        .collect()
}

/// PIDs of processes whose executable is one of emu's daemons, for a given cluster name.
pub fn emu_processes(cluster: &str) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if (cmd.contains("emu-controller") || cmd.contains("emu-nodeagent"))
            && (cmd.contains(&format!("--cluster {cluster} ")) || cmd.contains(&format!("/run/emu/{cluster}/")))
        {
            out.push(format!("{} {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// The host PID of a container's main process, from the pod's shim state file.
pub fn container_pid(cluster: &str, pod: &serde_json::Value, container: &str) -> i32 {
    let dir = PathBuf::from("/run/emu")
        .join(cluster)
        .join("nodes")
        .join(pod["spec"]["nodeName"].as_str().expect("scheduled pod"))
        .join("pods")
        .join(pod["metadata"]["uid"].as_str().expect("uid"));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state.json")).expect("state json");
    state["containers"].as_array().expect("containers").iter().find(|c| c["name"] == container).expect("container")["pid"]
        .as_i64()
        .expect("running container has a pid") as i32
}

pub fn sigkill(pid: i32) {
    // SAFETY: kill has no memory-safety preconditions; the PID belongs to a process this test's
    // cluster started.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}");
}

/// PID from a daemon's pid file under /run/emu/<cluster>.
pub fn daemon_pid(cluster: &str, rel: &str) -> i32 {
    std::fs::read_to_string(PathBuf::from("/run/emu").join(cluster).join(rel)).expect("pid file").trim().parse().expect("pid")
}

/// An object's name.
pub fn name(v: &serde_json::Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// A pod's IP.
pub fn pod_ip(p: &serde_json::Value) -> String {
    p["status"]["podIP"].as_str().unwrap_or("").to_string()
}

/// Whether a pod is Ready and not being deleted.
pub fn is_ready(p: &serde_json::Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// What the benchmark binaries share.
pub mod bench {
    use super::{emu, Cluster};
    use anyhow::bail;
    use std::time::{Duration, Instant};

    /// A cluster of the benchmark's own, deleted when dropped (also while unwinding from a panic).
    pub fn cluster_up(name: &str, nodes: usize) -> anyhow::Result<Cluster> {
        // A crashed earlier run may have left the same name behind.
        emu(&["down", "--cluster", name]);
        let c = Cluster { name: name.to_string() };
        let r = c.emu(&["up", "--nodes", &nodes.to_string()]);
        if r.code != 0 {
            bail!("emu up --cluster {name} --nodes {nodes} failed:\n{}{}\n{}", r.stdout, r.stderr, c.logs());
        }
        Ok(c)
    }

    /// One new connection from source port `port`: connect, `GET /` over HTTP/1.0, read the
    /// response until the server closes, close (the connection benchmarks' unit of work).
    pub fn one_get(addr: std::net::SocketAddrV4, port: u16, buf: &mut [u8]) -> std::io::Result<()> {
        use socket2::{Domain, Socket, Type};
        use std::io::{Read, Write};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(socket2::Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port).into())?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(1))?;
        let mut s: std::net::TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")?;
        let n = s.read(buf)?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other("not a 200 response"));
        }
        while s.read(buf)? > 0 {}
        Ok(())
    }

    /// A pod of a benchmark placed on `node` (through the scheduler, which also allocates its
    /// IP), labelled `app: NAME`.
    pub fn bench_pod(name: &str, node: &str, image: &str, command: &[&str]) -> serde_json::Value {
        let mut container = serde_json::json!({"name": "main", "image": image});
        if !command.is_empty() {
            container["command"] = serde_json::json!(command);
        }
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "containers": [container]}})
    }

    /// A Service in front of [`bench_pod`] `name`, on `port`.
    pub fn bench_service(name: &str, port: u16) -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"protocol": "TCP", "port": port, "targetPort": port}]}})
    }

    /// Whether a pod runs, has its IP and is Ready.
    pub fn running(v: &serde_json::Value) -> bool {
        v["status"]["phase"] == "Running"
            && v["status"]["podIP"].is_string()
            && v["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }

    /// The receiver's Gbit/s of an `iperf3 -c … -J` that `command` makes (run inside a pod's
    /// namespace), retried while the server is still starting or busy; `what` names the run in
    /// errors.
    pub fn iperf3_gbps(mut command: impl FnMut() -> std::process::Command, what: &str) -> anyhow::Result<f64> {
        use anyhow::Context as _;
        let mut last_error = String::new();
        for _ in 0..10 {
            let out = command().output().context("running iperf3 (apt-get install iperf3)")?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if out.status.success() {
                return v["end"]["sum_received"]["bits_per_second"]
                    .as_f64()
                    .map(|b| b / 1e9)
                    .ok_or_else(|| anyhow::anyhow!("{what}: no end.sum_received in its JSON"));
            }
            last_error = v["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
            std::thread::sleep(Duration::from_millis(300));
        }
        bail!("`{what}` failed: {last_error}")
    }

    /// The controller's gRPC client.
    pub type ApiClient = emu_proto::api_client::ApiClient<tonic::transport::Channel>;

    /// [`cluster_up`] and a client of its controller.
    pub fn cluster_with_client(rt: &tokio::runtime::Runtime, name: &str, nodes: usize) -> anyhow::Result<(Cluster, ApiClient)> {
        use anyhow::Context as _;
        let cluster = cluster_up(name, nodes)?;
        let socket = emu_logic::cluster::Paths::new(name).socket();
        let client = rt.block_on(emu_proto::connect_unix(&socket)).with_context(|| format!("connecting to {}", socket.display()))?;
        Ok((cluster, client))
    }

    /// One ApplyRequest with every object: what `emu apply -f` of a multi-document file sends.
    pub async fn apply(client: &mut ApiClient, objects: &[serde_json::Value]) -> anyhow::Result<()> {
        let objects_json = objects.iter().map(|v| emu_proto::Object { json: v.to_string() }).collect();
        client
            .apply(emu_proto::ApplyRequest { objects: objects_json, create_only: false, dry_run: false })
            .await
            .map_err(|s| anyhow::anyhow!("apply of {} objects: {}", objects.len(), s.message()))?;
        Ok(())
    }

    /// A process's memory in MB from one of its /proc files: `field` (kB) of `file`
    /// (`status` `VmRSS:`, `smaps_rollup` `Pss:`); 0 when it cannot be read.
    pub fn proc_mb(pid: i32, file: &str, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
            .unwrap_or(0.0)
            / 1024.0
    }

    /// Polls `f` every `every` until it returns Some, or fails naming `what`.
    pub fn poll<T>(what: &str, timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(every);
        }
    }
}

/// A directory for a test's files (kubeconfigs, keys, manifests), removed on drop, also when
/// the test fails.
pub struct Scratch(pub std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of the repository's `scenarios/FILE`.
pub fn scenario_path(file: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(file).to_str().unwrap().to_string()
}

/// Whether a table cell reads as an age (`0s`, `21s`, `2m30s`, `5d`, `3h5m`).
pub fn is_age(cell: &str) -> bool {
    let mut rest = cell;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[digits..].chars().next();
        if digits == 0 || !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'y')) {
            return false;
        }
        rest = &rest[digits + 1..];
        parts += 1;
    }
    (1..=2).contains(&parts)
}

/// A table's cells line by line with every age replaced by `AGE`: what two runs a moment apart
/// print alike (an age, and with it a column's width, may tick between them).
pub fn table_cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(|c| if is_age(c) { "AGE".to_string() } else { c.to_string() }).collect()).collect()
}
