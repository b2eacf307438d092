//! emu's failure benchmark (issue 7): prints figures, asserts nothing.
//!
//! 1. Pod kill: from `emu delete pod --grace-period 0` until no node's rules send a new
//!    connection to the pod any more (its address gone from every node's table `ip emu`), over
//!    20 kills of one of 2 replicas.
//! 2. Node stop: from `emu node stop` until the other node's rules no longer send new
//!    connections to the stopped node's pod (NotReady detection, 2 s here, plus the endpoint
//!    change), over 20 stops; meanwhile a client in the outside world sends a request every
//!    20 ms to the surviving node's node port and the failed ones are counted.
//! 3. A scripted scenario (`emu test scenarios/test-node-loss.yaml`): its wall time against the
//!    time its steps take, and against the cluster's start and removal.
//!
//!   sudo target/release/emu-bench-faults [kill] [stop] [scenario]

use emu_tests::bench::{cluster_up, poll};
use emu_tests::{emu, emu_path, is_ready, name, pod_ip, Cluster};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;

fn main() -> anyhow::Result<()> {
    emu_tests::require_root();
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let run = |part: &str| wanted.is_empty() || wanted.iter().any(|w| w == part);
    println!("== emu failure benchmark ({RUNS} runs each)");
    if run("kill") {
        pod_kill()?;
    }
    if run("stop") {
        node_stop()?;
    }
    if run("scenario") {
        scenario()?;
    }
    Ok(())
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Whether the table `ip emu` of `node` still DNATs to `ip`.
fn rules_reach(cluster: &str, node: &str, ip: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", &emu_api::naming::netns_node(cluster, node), "nft", "list", "table", "ip", "emu"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).contains(&format!("to {ip}:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.0} ms, p99 {:.0} ms, min {:.0} ms, max {:.0} ms ({} runs)",
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn web(c: &Cluster) -> anyhow::Result<Vec<serde_json::Value>> {
    poll("2 ready web pods", Duration::from_secs(60), Duration::from_millis(50), || {
        let pods = c.pods("app=web");
        let ready: Vec<serde_json::Value> =
            pods.into_iter().filter(|p| is_ready(p) && p["metadata"]["deletionTimestamp"].is_null()).collect();
        (ready.len() == 2).then_some(ready)
    })
}

fn pod_kill() -> anyhow::Result<()> {
    let c = cluster_up("bkill", 2)?;
    let web_yaml = scenarios().join("web.yaml");
    c.emu(&["apply", "-f", web_yaml.to_str().unwrap()]).ok();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let pods = web(&c)?;
        let victim = &pods[0];
        let ip = pod_ip(victim);
        // Wait until every node routes to it, so the measurement starts from a steady state.
        poll("rules for the pod", Duration::from_secs(10), Duration::from_millis(10), || {
            ["node-1", "node-2"].iter().all(|n| rules_reach(&c.name, n, &ip)).then_some(())
        })?;
        let start = Instant::now();
        c.emu(&["delete", "pod", &name(victim), "--grace-period", "0", "--wait=false"]).ok();
        poll("the killed pod out of every node's rules", Duration::from_secs(10), Duration::from_millis(2), || {
            (!["node-1", "node-2"].iter().any(|n| rules_reach(&c.name, n, &ip))).then_some(())
        })?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    summary("pod kill → no new connection reaches it (both nodes' rules)", times);
    Ok(())
}

fn node_stop() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("emu-bench-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let scenario = dir.join("stop.yaml");
    std::fs::write(
        &scenario,
        format!(
            "nodes: 2\nnodeFailure: {{notReadyAfter: 2s, evictAfter: 10m}}\nmanifests:\n  - {}\n",
            scenarios().join("web.yaml").display()
        ),
    )?;
    emu(&["down", "--cluster", "bstop"]);
    let c = Cluster { name: "bstop".into() };
    let up = c.emu(&["up", scenario.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(up.code == 0, "emu up: {}{}", up.stdout, up.stderr);
    // The client: a request every 20 ms to node-1's node port, one line per request.
    // Its own process group, so that the shell loop goes with it at the end.
    let mut client = Command::new(emu_path())
        .args([
            "outside",
            "--cluster",
            &c.name,
            "--",
            "sh",
            "-c",
            "while true; do if curl -s -m 1 -o /dev/null http://198.51.100.2:30080/; then echo ok; else echo fail; fi; sleep 0.02; done",
        ])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = client.stdout.take().expect("piped");
    let counter = std::thread::spawn(move || {
        use std::io::BufRead;
        let (mut ok, mut failed) = (0usize, 0usize);
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "ok" {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        (ok, failed)
    });
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let pods = web(&c)?;
        // The stopped node is the one of a pod (node-2 when they are spread).
        let Some(victim) = pods.iter().find(|p| p["spec"]["nodeName"] == "node-2") else {
            anyhow::bail!("no web pod on node-2 to lose: {:?}", pods.iter().map(|p| p["spec"]["nodeName"].clone()).collect::<Vec<_>>());
        };
        let ip = pod_ip(victim);
        poll("node-1's rules for the pod", Duration::from_secs(10), Duration::from_millis(10), || {
            rules_reach(&c.name, "node-1", &ip).then_some(())
        })?;
        let start = Instant::now();
        c.emu(&["node", "stop", "node-2"]).ok();
        poll("the stopped node's pod out of node-1's rules", Duration::from_secs(30), Duration::from_millis(5), || {
            (!rules_reach(&c.name, "node-1", &ip)).then_some(())
        })?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        c.emu(&["node", "start", "node-2"]).ok();
        poll("node-2's pod back in node-1's rules", Duration::from_secs(30), Duration::from_millis(20), || {
            rules_reach(&c.name, "node-1", &ip).then_some(())
        })?;
    }
    // SAFETY: kill(2) of the process group this program started (its pid is the group's id).
    unsafe { libc::kill(-(client.id() as i32), libc::SIGKILL) };
    let _ = client.wait();
    let (ok, failed) = counter.join().map_err(|_| anyhow::anyhow!("client counter panicked"))?;
    summary("node stop → no new connection reaches its pod (NotReady after 2 s)", times);
    println!(
        "requests to the surviving node during {RUNS} node losses (2 replicas, one lost each time): {failed} failed of {} ({:.2} per loss)",
        ok + failed,
        failed as f64 / RUNS as f64
    );
    Ok(())
}

fn scenario() -> anyhow::Result<()> {
    let file = scenarios().join("test-node-loss.yaml");
    let junit = std::env::temp_dir().join(format!("emu-bench-junit-{}.xml", std::process::id()));
    let start = Instant::now();
    let r = emu(&["test", file.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    let wall = start.elapsed().as_secs_f64();
    anyhow::ensure!(r.code == 0, "emu test failed:\n{}{}", r.stdout, r.stderr);
    let xml = std::fs::read_to_string(&junit)?;
    let _ = std::fs::remove_file(&junit);
    // <testcase name="…" … time="1.234">
    let mut steps = 0.0;
    let mut cluster = 0.0;
    for case in xml.split("<testcase ").skip(1) {
        let attr = |key: &str| case.split(&format!("{key}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
        let t: f64 = attr("time").parse().unwrap_or(0.0);
        if attr("name").starts_with("cluster ") {
            cluster += t;
        } else {
            steps += t;
        }
    }
    println!(
        "scenario test-node-loss: wall {wall:.1} s; its steps {steps:.1} s ({:.0}%), cluster up and down {cluster:.1} s, emu test itself {:.1} s",
        100.0 * steps / wall,
        (wall - steps - cluster).max(0.0)
    );
    Ok(())
}
