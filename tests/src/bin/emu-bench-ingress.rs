//! Benchmark of the ingress add-on (issue 21): prints figures, asserts nothing. `sudo
//! ./scripts/bench` runs it after `emu-bench-api`; alone: `cargo build --workspace --release &&
//! sudo target/release/emu-bench-ingress [load] [apply] [endpoint] [reload]`.
//!
//! One cluster of 2 nodes (`bnching`) with `emu addons enable ingress`, a Deployment `web` of 3
//! agnhost `netexec` pods (each answers `GET /hostname` with its pod's name) and an Ingress routing
//! host `web.bench` to Service `web` and host `pool.bench` to Service `pool` (the `web` pods
//! labelled `pool=in`). Every client is in the outside world, as an Ingress's users are: the load
//! generator runs there with `emu outside -- wrk`, the probes from a thread that enters its network
//! namespace; nothing in the outside world reaches a pod IP or a ClusterIP.
//!
//! 1. `load`: the same wrk (2 threads, 16 keep-alive connections, 10 s, `GET /hostname`) against
//!    (a) the Ingress: the controller Service's balancer address with `Host: web.bench`, nginx in
//!    the controller pod proxying to the 3 pods; (b) one pod straight: a NodePort Service
//!    (`externalTrafficPolicy: Local`) that selects that pod alone, at its node's ExternalIP — the
//!    same one DNAT on the pod's node as the balancer's path to nginx, without nginx; (c) Service
//!    `web`'s NodePort at the same node (the 3 pods through the service proxy). Three rounds,
//!    interleaved; medians of requests/s, p50 and p99 (wrk's `--latency`), and the ratio
//!    ingress/direct.
//! 2. `apply`: an Ingress for a new host (routing to the ready Service `web`) applied 30 times;
//!    the timer starts when the apply returns and stops at the first 200 of a probe through the
//!    balancer address with that host (a new connection every 5 ms; 404 until then). Also when its
//!    `status.loadBalancer.ingress` is written (polled every 2 ms): emu-ingress writes it after it
//!    has signalled nginx, which splits the time into the controller's part and nginx's reload.
//!    The Ingress is deleted (and its host answers 404 again) between runs.
//! 3. `endpoint`: pod X of `web` joins Service `pool` (which holds one other pod) by a label
//!    (`emu label pod X pool=in`), 20 times, and leaves it (`pool-`) as often. The timer starts when
//!    `pool`'s EndpointSlice lists (or no longer lists) X's address, as a reflector like the
//!    ingress controller's sees it, and stops at the first answer from X through the Ingress (probes
//!    every 5 ms) — or, when X leaves, at the last answer from X within 1.5 s (nginx round-robins
//!    over 2 pods, so the change took effect before the next probe but one). The label command's
//!    own time until the slice changed is printed beside it.
//! 4. `reload`: nginx's graceful reload alone: SIGHUP to the controller pod's nginx master (found
//!    in /proc by its network namespace) until its new worker process exists, and until the old
//!    worker is gone, 20 times. Until then the old worker still accepts connections with the old
//!    configuration: nginx's master tells it to quit only 100 ms after starting the new one
//!    (`ngx_msleep(100)`, "allow new processes to start", in ngx_master_process_cycle). A bare
//!    SIGHUP shows that delay; emu-ingress's own reloads tell the old workers to quit as soon as a
//!    new one exists (`hasten_handover`), so a leaving endpoint (section 3) is not reached for
//!    those 100 ms.
//!
//! The cluster is deleted at the end, also when a section fails.

use anyhow::{anyhow, bail, Context as _};
use emu_api::fault::parse_duration_ms;
use emu_api::naming;
use emu_proto::reflector::{self, Snapshot};
use emu_tests::bench::{apply, cluster_with_client, poll, running, ApiClient};
use emu_tests::{require_root, Cluster};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLUSTER: &str = "bnching";
const APPLY_RUNS: usize = 30;
const ENDPOINT_RUNS: usize = 20;
const RELOAD_RUNS: usize = 20;
const LOAD_ROUNDS: usize = 3;
/// wrk's arguments, the same for every target.
const WRK: [&str; 5] = ["-t2", "-c16", "-d10s", "--latency", "--timeout=2s"];
/// The probes' pace: a new connection every 5 ms.
const PROBE_EVERY: Duration = Duration::from_millis(5);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (nearest rank) of `v`, which must not be empty.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[idx.saturating_sub(1).min(v.len() - 1)]
}

/// "median … p90 … p99 … max" of milliseconds, with the number of samples.
fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    format!(
        "median {:6.1} ms   p90 {:6.1} ms   p99 {:6.1} ms   max {:6.1} ms   ({} runs)",
        percentile(v, 50.0),
        percentile(v, 90.0),
        percentile(v, 99.0),
        percentile(v, 100.0),
        v.len()
    )
}

fn row(what: &str, figures: String) {
    println!("    {what:<46} {figures}");
}

/// `emu-bench-ingress [load] [apply] [endpoint] [reload]`: the sections to run (default: all).
fn main() {
    require_root();
    let sections = ["load", "apply", "endpoint", "reload"];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(bad) = args.iter().find(|a| !sections.contains(&a.as_str())) {
        eprintln!("error: unknown section {bad:?}; usage: emu-bench-ingress [load] [apply] [endpoint] [reload]");
        std::process::exit(2);
    }
    let run = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    println!("emu ingress benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let (cluster, mut client) = match cluster_with_client(&rt, CLUSTER, 2) {
        Ok(c) => c,
        Err(e) => {
            println!("    failed: {e:#}");
            return;
        }
    };
    let bench = match Bench::set_up(&rt, &cluster, &mut client) {
        Ok(b) => b,
        Err(e) => {
            println!("    failed to set the cluster up: {e:#}\n{}", cluster.logs());
            return;
        }
    };
    let results = [
        ("load", run("load").then(|| bench.load())),
        ("apply", run("apply").then(|| bench.apply_to_first_200(&rt, &mut client))),
        ("endpoint", run("endpoint").then(|| bench.endpoint_change())),
        ("reload", run("reload").then(|| bench.nginx_reload())),
    ];
    for (section, result) in results {
        if let Some(Err(e)) = result {
            println!("    the {section} section failed: {e:#}");
        }
    }
    drop(cluster);
}

/// The cluster's objects and addresses once it is ready.
struct Bench<'a> {
    cluster: &'a Cluster,
    /// The outside world's network namespace.
    outside: String,
    /// The controller Service's balancer address, port 80.
    ingress: SocketAddrV4,
    /// Node port of Service `direct` (one pod) and of Service `web`, at that pod's node.
    direct: SocketAddrV4,
    node_port: SocketAddrV4,
    /// The pod that joins and leaves Service `pool`, and its address.
    mover: (String, Ipv4Addr),
    /// The ingress controller pod's network namespace.
    controller_netns: String,
}

fn objects() -> Vec<Value> {
    let service = |name: &str, selector: Value, extra: Value| {
        let mut spec = json!({"selector": selector, "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]});
        spec.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    };
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                        "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080}]}]}}}}),
        service("web", json!({"app": "web"}), json!({"type": "NodePort"})),
        service("direct", json!({"app": "web", "direct": "yes"}), json!({"type": "NodePort", "externalTrafficPolicy": "Local"})),
        service("pool", json!({"app": "web", "pool": "in"}), json!({})),
        ingress("bench", &[("web.bench", "web"), ("pool.bench", "pool")]),
    ]
}

/// An Ingress of class nginx routing each (host, Service) to the Service's port 80.
fn ingress(name: &str, rules: &[(&str, &str)]) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .map(|(host, svc)| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "default"},
        "spec": {"ingressClassName": "nginx", "rules": rules}})
}

/// `emu get KIND NAME -o json` (in `namespace`).
fn get_json(cluster: &Cluster, kind: &str, name: &str, namespace: &str) -> anyhow::Result<Value> {
    let r = cluster.emu(&["get", kind, name, "-n", namespace, "-o", "json"]);
    if r.code != 0 {
        bail!("emu get {kind} {name}: {}{}", r.stdout, r.stderr);
    }
    Ok(serde_json::from_str(&r.stdout)?)
}

fn label(cluster: &Cluster, pod: &str, change: &str) -> anyhow::Result<()> {
    let r = cluster.emu(&["label", "pod", pod, change, "--overwrite"]);
    if r.code != 0 {
        bail!("emu label pod {pod} {change}: {}{}", r.stdout, r.stderr);
    }
    Ok(())
}

impl<'a> Bench<'a> {
    fn set_up(rt: &tokio::runtime::Runtime, cluster: &'a Cluster, client: &mut ApiClient) -> anyhow::Result<Bench<'a>> {
        let r = cluster.emu(&["addons", "enable", "ingress"]);
        if r.code != 0 {
            bail!("emu addons enable ingress: {}{}", r.stdout, r.stderr);
        }
        rt.block_on(apply(client, &objects()))?;
        let balancer = poll("the controller Service's balancer address", Duration::from_secs(60), Duration::from_millis(100), || {
            let svc = get_json(cluster, "service", "ingress-nginx-controller", "ingress-nginx").ok()?;
            svc.pointer("/status/loadBalancer/ingress/0/ip")?.as_str()?.parse::<Ipv4Addr>().ok()
        })?;
        let pods = poll("3 ready web pods", Duration::from_secs(60), Duration::from_millis(100), || {
            let pods: Vec<Value> = cluster.pods("app=web").into_iter().filter(running).collect();
            (pods.len() == 3).then_some(pods)
        })?;
        let controller = poll("the ingress controller pod ready", Duration::from_secs(60), Duration::from_millis(100), || {
            let r = cluster.emu(&["get", "pods", "-n", "ingress-nginx", "-o", "json"]);
            let v: Value = serde_json::from_str(&r.stdout).ok()?;
            v["items"].as_array()?.iter().find(|p| running(p)).cloned()
        })?;
        let name = |p: &Value| p["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ip = |p: &Value| p["status"]["podIP"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()).ok_or_else(|| anyhow!("no podIP"));
        // Pod 0 is the one reached straight, pod 1 stays in `pool`, pod 2 joins and leaves it.
        let (direct_pod, base_pod, mover) = (name(&pods[0]), name(&pods[1]), name(&pods[2]));
        label(cluster, &direct_pod, "direct=yes")?;
        label(cluster, &base_pod, "pool=in")?;
        let node = pods[0]["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        let node_ip = get_json(cluster, "node", &node, "default")?["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "ExternalIP"))
            .and_then(|a| a["address"].as_str()?.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| anyhow!("node {node} has no ExternalIP"))?;
        let node_port = |svc: &str| -> anyhow::Result<u16> {
            get_json(cluster, "service", svc, "default")?
                .pointer("/spec/ports/0/nodePort")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| anyhow!("service {svc} has no nodePort"))
        };
        let bench = Bench {
            cluster,
            outside: naming::netns_outside(CLUSTER),
            ingress: SocketAddrV4::new(balancer, 80),
            direct: SocketAddrV4::new(node_ip, node_port("direct")?),
            node_port: SocketAddrV4::new(node_ip, node_port("web")?),
            mover: (mover, ip(&pods[2])?),
            controller_netns: naming::netns_pod(CLUSTER, controller["metadata"]["uid"].as_str().unwrap_or_default()),
        };
        // Every path answers before anything is measured.
        let ready = |what: &str, addr: SocketAddrV4, host: &str, want: &str| {
            let want = want.to_string();
            bench.probe(addr, host, Duration::from_secs(60), move |a| a.body == want).map_err(|e| anyhow!("{what}: {e}"))
        };
        ready("the Ingress's pool.bench", bench.ingress, "pool.bench", &base_pod)?;
        ready("the direct node port", bench.direct, "direct", &direct_pod)?;
        bench.probe(bench.ingress, "web.bench", Duration::from_secs(60), |a| a.status == 200)?;
        bench.probe(bench.node_port, "web", Duration::from_secs(60), |a| a.status == 200)?;
        Ok(bench)
    }

    /// Probes `GET /hostname` with `Host: host` at `addr` from the outside world every
    /// [`PROBE_EVERY`], each on a new connection, until `done` accepts an answer (failed
    /// requests are answers of status 0) or `limit` passes; every answer, in order.
    fn probe(
        &self,
        addr: SocketAddrV4,
        host: &str,
        limit: Duration,
        done: impl FnMut(&Answer) -> bool + Send + 'static,
    ) -> anyhow::Result<Vec<Answer>> {
        self.probe_in_thread(addr, host, limit, done).join().map_err(|_| anyhow!("the probe thread panicked"))?
    }

    /// [`Bench::probe`] on a thread of its own, started at once.
    fn probe_in_thread(
        &self,
        addr: SocketAddrV4,
        host: &str,
        limit: Duration,
        mut done: impl FnMut(&Answer) -> bool + Send + 'static,
    ) -> std::thread::JoinHandle<anyhow::Result<Vec<Answer>>> {
        let (path, host) = (format!("/run/netns/{}", self.outside), host.to_string());
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: setns with a valid namespace fd that `file` keeps open for the call; it
            // changes only this thread's network namespace, and the thread ends with the probe.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns into {path}: {}", std::io::Error::last_os_error());
            }
            let start = Instant::now();
            let mut answers = Vec::new();
            loop {
                let sent = Instant::now();
                let (status, body) = get(addr, &host).unwrap_or((0, String::new()));
                let answer = Answer { at: Instant::now(), status, body };
                let finished = done(&answer);
                answers.push(answer);
                if finished {
                    return Ok(answers);
                }
                if start.elapsed() > limit {
                    bail!("no expected answer from {addr} (Host: {host}) within {limit:?}; last: {:?}", answers.last());
                }
                std::thread::sleep(PROBE_EVERY.saturating_sub(sent.elapsed()));
            }
        })
    }

    /// Section 1: wrk against the Ingress, one pod straight, and the Service's node port.
    fn load(&self) -> anyhow::Result<()> {
        println!(
            "  load from the outside world: wrk {} GET /hostname, {LOAD_ROUNDS} rounds interleaved (3 agnhost netexec pods, nginx 1 worker)",
            WRK.join(" ")
        );
        let targets = [
            ("Ingress (balancer → nginx → 3 pods)", self.ingress, "web.bench"),
            ("one pod straight (node port, Local)", self.direct, "direct"),
            ("Service node port (3 pods)", self.node_port, "web"),
        ];
        let mut results: Vec<Vec<Wrk>> = vec![Vec::new(); targets.len()];
        for _ in 0..LOAD_ROUNDS {
            for (i, (_, addr, host)) in targets.iter().enumerate() {
                results[i].push(self.wrk(*addr, host)?);
            }
        }
        let medians: Vec<(f64, f64, f64)> = results
            .iter()
            .map(|runs| {
                let of = |f: fn(&Wrk) -> f64| percentile(&runs.iter().map(f).collect::<Vec<_>>(), 50.0);
                (of(|w| w.rps), of(|w| w.p50_ms), of(|w| w.p99_ms))
            })
            .collect();
        for (i, (what, _, _)) in targets.iter().enumerate() {
            let (rps, p50, p99) = medians[i];
            let non_2xx: usize = results[i].iter().map(|w| w.non_2xx).sum();
            let socket = results[i].iter().fold([0; 4], |sum, w| std::array::from_fn(|k| sum[k] + w.socket_errors[k]));
            let errors = if non_2xx + socket.iter().sum::<usize>() > 0 {
                let [connect, read, write, timeout] = socket;
                format!("   ({non_2xx} non-2xx; socket errors: connect {connect}, read {read}, write {write}, timeout {timeout})")
            } else {
                String::new()
            };
            row(what, format!("{rps:8.0} req/s   p50 {p50:6.2} ms   p99 {p99:6.2} ms{errors}"));
        }
        let ((ing_rps, ing_p50, ing_p99), (dir_rps, dir_p50, dir_p99)) = (medians[0], medians[1]);
        row(
            "ratio Ingress / one pod straight",
            format!(
                "req/s {:.2}   p50 {:.2}×   p99 {:.2}×   (medians of {LOAD_ROUNDS} × 10 s)",
                ing_rps / dir_rps,
                ing_p50 / dir_p50,
                ing_p99 / dir_p99
            ),
        );
        Ok(())
    }

    /// One wrk run from the outside world.
    fn wrk(&self, addr: SocketAddrV4, host: &str) -> anyhow::Result<Wrk> {
        let header = format!("Host: {host}");
        let url = format!("http://{addr}/hostname");
        let mut args = vec!["outside", "--", "wrk"];
        args.extend(WRK);
        args.extend(["-H", &header, &url]);
        let r = self.cluster.emu(&args);
        if r.code != 0 {
            bail!("emu outside -- wrk … {url} failed (apt-get install wrk): {}{}", r.stdout, r.stderr);
        }
        Wrk::parse(&r.stdout).ok_or_else(|| anyhow!("unexpected wrk output:\n{}", r.stdout))
    }

    /// Section 2: Ingress apply → first 200.
    fn apply_to_first_200(&self, rt: &tokio::runtime::Runtime, client: &mut ApiClient) -> anyhow::Result<()> {
        println!("  Ingress apply → first 200 through the balancer ({APPLY_RUNS} new Ingresses for a new host each, Service web ready)");
        let (mut to_200, mut to_status, mut status_to_200, mut probes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..APPLY_RUNS {
            let (name, host) = (format!("apply-{run}"), format!("apply-{run}.bench"));
            rt.block_on(apply(client, &[ingress(&name, &[(&host, "web")])]))?;
            let applied = Instant::now();
            let prober = self.probe_in_thread(self.ingress, &host, Duration::from_secs(10), |a| a.status == 200);
            // Meanwhile: when emu-ingress writes the Ingress's status, after its SIGHUP to nginx.
            let r = emu_proto::ObjectRef { kind: "Ingress".into(), namespace: "default".into(), name: name.clone() };
            let status = rt.block_on(async {
                let limit = applied + Duration::from_secs(10);
                while Instant::now() < limit {
                    let obj = client.get(r.clone()).await.map(|o| o.into_inner().json).unwrap_or_default();
                    let v: Value = serde_json::from_str(&obj).unwrap_or_default();
                    if v.pointer("/status/loadBalancer/ingress/0").is_some() {
                        return Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                None
            });
            let answers = prober.join().map_err(|_| anyhow!("the probe thread panicked"))??;
            let first = answers.last().expect("the probe returns its last answer");
            to_200.push(ms(first.at - applied));
            probes.push(answers.len() as f64);
            if let Some(s) = status {
                to_status.push(ms(s - applied));
                status_to_200.push(ms(first.at.saturating_duration_since(s)));
            }
            rt.block_on(client.delete(emu_proto::DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: -1 }))
                .map_err(|e| anyhow!("deleting Ingress {name}: {}", e.message()))?;
            // Gone from nginx (the default backend's 404) before the next one, and a pause so that
            // the next apply is not coalesced with this deletion's render.
            self.probe(self.ingress, &host, Duration::from_secs(10), |a| a.status == 404)?;
            std::thread::sleep(Duration::from_millis(300));
        }
        row("apply returned → first 200", spread(&to_200) + "   goal p99 ≤ 300 ms");
        row("apply returned → status.loadBalancer written", spread(&to_status));
        row("status written → first 200 (nginx's reload)", spread(&status_to_200));
        println!(
            "      (probes per run: median {:.0}; the status is written once emu-ingress has waited its RENDER_DELAY, rendered, written the files and sent SIGHUP)",
            percentile(&probes, 50.0)
        );
        Ok(())
    }

    /// Section 3: an endpoint joins and leaves Service `pool`; when the Ingress routes to it.
    fn endpoint_change(&self) -> anyhow::Result<()> {
        let (mover, mover_ip) = self.mover.clone();
        println!("  endpoint change → routed through the Ingress (pod {mover} joins and leaves Service pool, which keeps one other pod; {ENDPOINT_RUNS} each)");
        let slices = SliceWatch::start(CLUSTER, "pool")?;
        let (mut join, mut join_label, mut leave, mut leave_label, mut missed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..ENDPOINT_RUNS {
            for joining in [true, false] {
                slices.drain();
                let who = mover.clone();
                let prober = if joining {
                    self.probe_in_thread(self.ingress, "pool.bench", Duration::from_secs(10), move |a| a.body == who)
                } else {
                    let started = Instant::now();
                    // A fixed window: the last answer from the pod tells when it stopped.
                    self.probe_in_thread(self.ingress, "pool.bench", Duration::from_secs(3), move |a| {
                        a.at - started > Duration::from_millis(1500)
                    })
                };
                let labelled = Instant::now();
                label(self.cluster, &mover, if joining { "pool=in" } else { "pool-" })?;
                let changed = slices.until(|ips| ips.contains(&mover_ip) == joining, Duration::from_secs(5));
                let answers = prober.join().map_err(|_| anyhow!("the probe thread panicked"))??;
                let Some(changed) = changed else {
                    missed += 1;
                    continue;
                };
                if joining {
                    let routed = answers.last().expect("the probe returns its last answer").at;
                    join.push(ms(routed.saturating_duration_since(changed)));
                    join_label.push(ms(changed - labelled));
                } else {
                    let last = answers.iter().filter(|a| a.body == mover).map(|a| a.at).max();
                    // Answers from it before the slice changed do not count; none after: 0.
                    let stopped = last.map_or(changed, |l| l.max(changed));
                    leave.push(ms(stopped - changed));
                    leave_label.push(ms(changed - labelled));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        row("EndpointSlice lists the pod → first answer", spread(&join) + "   goal p99 ≤ 100 ms");
        row("EndpointSlice drops the pod → last answer", spread(&leave) + "   goal p99 ≤ 100 ms");
        println!("      (a change reaches nginx after emu-ingress's RENDER_DELAY and a reload, whose old workers emu-ingress tells to quit once a new one exists)");
        println!(
            "      before that: `emu label` started → slice changed: join median {:.1} ms, leave median {:.1} ms{}",
            percentile(&join_label, 50.0),
            percentile(&leave_label, 50.0),
            if missed > 0 { format!("; {missed} changes not seen in the slice within 5 s") } else { String::new() }
        );
        Ok(())
    }

    /// Section 4: SIGHUP to nginx's master in the controller pod → its new worker process.
    fn nginx_reload(&self) -> anyhow::Result<()> {
        println!("  nginx's graceful reload in the controller pod (SIGHUP to the master → a new worker process; {RELOAD_RUNS} runs)");
        let master = nginx_master(&self.controller_netns)?;
        let (mut times, mut old_gone) = (Vec::new(), Vec::new());
        for _ in 0..RELOAD_RUNS {
            let before = children(master);
            let start = Instant::now();
            // SAFETY: kill(2) of the nginx master of this benchmark's own cluster; SIGHUP makes it
            // reload its configuration, nothing ends but its old workers, gracefully.
            if unsafe { libc::kill(master, libc::SIGHUP) } != 0 {
                bail!("SIGHUP to nginx {master}: {}", std::io::Error::last_os_error());
            }
            poll("a new nginx worker", Duration::from_secs(5), Duration::from_micros(200), || {
                children(master).difference(&before).next().is_some().then_some(())
            })?;
            times.push(ms(start.elapsed()));
            // The old worker accepts new connections until the master tells it to quit, and
            // ends once it has none (probes keep none open).
            poll("the old nginx worker gone", Duration::from_secs(5), Duration::from_micros(200), || {
                children(master).is_disjoint(&before).then_some(())
            })?;
            old_gone.push(ms(start.elapsed()));
            std::thread::sleep(Duration::from_millis(100));
        }
        row("SIGHUP → new nginx worker", spread(&times));
        row("SIGHUP → old worker gone", spread(&old_gone));
        Ok(())
    }
}

/// One probe's outcome: when it was answered, the status (0: failed) and the body.
#[derive(Debug)]
struct Answer {
    at: Instant,
    status: u16,
    body: String,
}

/// `GET /hostname` over HTTP/1.0 on a new connection: the status and body.
fn get(addr: SocketAddrV4, host: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(format!("GET /hostname HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string()).unwrap_or_default();
    Ok((status, body))
}

/// What wrk printed.
#[derive(Clone, Debug)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx/3xx responses, and socket errors: connect, read, write, timeout.
    non_2xx: usize,
    socket_errors: [usize; 4],
}

impl Wrk {
    fn parse(out: &str) -> Option<Wrk> {
        let field = |prefix: &str| out.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix).map(str::trim));
        let rps = field("Requests/sec:")?.parse().ok()?;
        // `812.00us`, `1.23ms`, `2.00s` (minutes never: --timeout is 2 s).
        let p50_ms = parse_duration_ms(field("50%")?).ok()?;
        let p99_ms = parse_duration_ms(field("99%")?).ok()?;
        let non_2xx: usize = field("Non-2xx or 3xx responses:").and_then(|n| n.parse().ok()).unwrap_or(0);
        // "Socket errors: connect 0, read 0, write 0, timeout 0"
        let mut socket_errors = [0; 4];
        if let Some(line) = field("Socket errors:") {
            for (n, part) in socket_errors.iter_mut().zip(line.split(',')) {
                *n = part.split_whitespace().nth(1)?.parse().ok()?;
            }
        }
        Some(Wrk { rps, p50_ms, p99_ms, non_2xx, socket_errors })
    }
}

/// The ready addresses of a Service's EndpointSlices as a reflector sees them (the one the
/// ingress controller runs), with the instant of each change, from a thread of its own.
struct SliceWatch {
    changes: mpsc::Receiver<(Instant, BTreeSet<Ipv4Addr>)>,
}

impl SliceWatch {
    fn start(cluster: &str, service: &str) -> anyhow::Result<SliceWatch> {
        let socket = emu_logic::cluster::Paths::new(cluster).socket();
        let service = service.to_string();
        let (tx, changes) = mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // The thread ends when the receiver is dropped (the next send fails).
        std::thread::spawn(move || {
            rt.block_on(async move {
                let (stx, mut srx) = tokio::sync::watch::channel(Snapshot::default());
                tokio::spawn(reflector::run(socket, vec!["EndpointSlice".to_string()], String::new(), stx));
                let mut last = None;
                while srx.changed().await.is_ok() {
                    let at = Instant::now();
                    let snapshot = srx.borrow_and_update().clone();
                    if !snapshot.synced {
                        continue;
                    }
                    let ips = ready_addresses(&snapshot, &service);
                    if last.as_ref() != Some(&ips) {
                        last = Some(ips.clone());
                        if tx.send((at, ips)).is_err() {
                            return;
                        }
                    }
                }
            })
        });
        Ok(SliceWatch { changes })
    }

    /// Forgets the changes seen so far.
    fn drain(&self) {
        while self.changes.try_recv().is_ok() {}
    }

    /// When the addresses first satisfy `want` (among the changes since the last drain).
    fn until(&self, want: impl Fn(&BTreeSet<Ipv4Addr>) -> bool, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let (at, ips) = self.changes.recv_timeout(deadline.checked_duration_since(Instant::now())?).ok()?;
            if want(&ips) {
                return Some(at);
            }
        }
    }
}

/// The ready endpoint addresses of the EndpointSlices of Service default/`service`.
fn ready_addresses(snapshot: &Snapshot, service: &str) -> BTreeSet<Ipv4Addr> {
    snapshot
        .objects
        .iter()
        .filter(|((kind, ns, _), v)| {
            kind == "EndpointSlice"
                && ns == "default"
                && v.pointer("/metadata/labels/kubernetes.io~1service-name").and_then(Value::as_str) == Some(service)
        })
        .flat_map(|(_, v)| v["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false))
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect()
}

/// The pid of the nginx master in network namespace `netns` (a pod's).
fn nginx_master(netns: &str) -> anyhow::Result<i32> {
    let ns = std::fs::metadata(format!("/run/netns/{netns}")).with_context(|| format!("netns {netns}"))?.ino();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"nginx: master process") && std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ns) {
            return Ok(pid);
        }
    }
    bail!("no nginx master process in netns {netns}")
}

/// The pids of a process's children.
fn children(pid: i32) -> BTreeSet<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
