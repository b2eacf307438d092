//! Faults of emulated hosts (issue 18 item 3), on `emu up` of a scenario with `hosts: 3` and six
//! nodes: a host partitioned from the others in their LAN (its nodes NotReady, its pods replaced
//! on the other hosts, back Ready once healed), a host stopped under load (requests through a
//! Service from a client on host-1 keep succeeding after the detection time; back once started),
//! bad host faults refused with nothing changed, `emu test scenarios/hosts.yaml`, and nothing
//! left after `emu down`. Measured times are printed (`cargo test … -- --nocapture`).

use emu_tests::{name, Cluster, HostState, Scratch};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CLUSTER: &str = "thostf";

/// The tests that time failures run one at a time (two 6-node clusters at once on a small
/// machine would stretch the detection times they measure).
static SERIAL: Mutex<()> = Mutex::new(());

/// Heartbeats missed for 2 s: NotReady; evicted 2 s later.
const SCENARIO: &str = "nodes: 6\nhosts: 3\nnodeFailure: {notReadyAfter: 2s, evictAfter: 2s}\n";

/// The scenario `text` in a directory of the test's own (removed when the returned guard drops).
fn scenario_file(test: &str, text: &str) -> (Scratch, std::path::PathBuf) {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-host-faults-{test}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join(format!("{test}.yaml"));
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn nodes(c: &Cluster) -> Vec<Value> {
    let v: Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ready(n: &Value) -> bool {
    n["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Each node's host.
fn node_hosts(c: &Cluster) -> BTreeMap<String, String> {
    nodes(c).iter().map(|n| (name(n), n["metadata"]["labels"]["emu.dev/host"].as_str().unwrap_or_default().to_string())).collect()
}

/// Waits until every node of `host` is Ready (`want`) or not, and the others Ready; returns how
/// long that took.
fn wait_nodes(c: &Cluster, host: &str, want: bool, timeout: Duration) -> Duration {
    let started = Instant::now();
    let hosts = node_hosts(c);
    c.wait_for(&format!("the nodes of {host} {}", if want { "Ready" } else { "NotReady" }), timeout, || {
        nodes(c).iter().all(|n| ready(n) == (want || hosts[&name(n)] != host)).then_some(())
    });
    started.elapsed()
}

/// The web pods not being deleted, Ready, by host.
fn live_web_pods_by_host(c: &Cluster) -> BTreeMap<String, usize> {
    let hosts = node_hosts(c);
    let mut out = BTreeMap::new();
    for p in c.pods("app=web") {
        if p["metadata"]["deletionTimestamp"].is_string() || !emu_tests::is_ready(&p) {
            continue;
        }
        let host = p["spec"]["nodeName"].as_str().and_then(|n| hosts.get(n)).cloned().unwrap_or_default();
        *out.entry(host).or_insert(0) += 1;
    }
    out
}

/// The LAN's table, as nft lists it in the LAN's namespace.
fn lan_table() -> String {
    let out = Command::new("ip").args(["netns", "exec", &format!("emu-{CLUSTER}-lan"), "nft", "list", "ruleset"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client on host-1 requesting the ClusterIP every 100 ms for `seconds`: each line is the
/// request's start by the machine's clock (`/proc/uptime`, which the test reads too) and curl's
/// HTTP code (000 for none).
fn start_load(c: &Cluster, seconds: u32) -> std::process::Child {
    let script = format!(
        "end=$(( $(cut -d. -f1 /proc/uptime) + {seconds} )); \
         while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do \
           t=$(cut -d' ' -f1 /proc/uptime); \
           code=$(curl -s -m 1 -o /dev/null -w '%{{http_code}}' http://$WEB_SERVICE_HOST/); \
           echo \"$t $code\"; sleep 0.1; \
         done"
    );
    Command::new(emu_tests::emu_path())
        .args(["exec", "--cluster", &c.name, "client", "--", "sh", "-c", &script])
        .env("KUBECONFIG", emu_tests::suite_kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn host_partitions_and_stops_on_emulated_hosts() {
    emu_tests::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let host_before = HostState::capture();
    let (_scratch, file) = scenario_file("hosts", SCENARIO);
    // `hosts:` of the scenario makes the hosts, as `--hosts 3` does.
    let c = Cluster::up(CLUSTER, &[file.to_str().unwrap()]);
    let hosts = node_hosts(&c);
    assert_eq!(hosts.values().filter(|h| *h == "host-2").count(), 2, "{hosts:?}");
    c.emu(&["apply", "-f", &emu_tests::scenario_path("web.yaml")]).ok();
    c.emu(&["scale", "deployment", "web", "--replicas=6"]).ok();
    c.emu(&["apply", "-f", &emu_tests::scenario_path("client.yaml")]).ok();
    c.ready_pod("client");
    c.wait_for("six web replicas, on every host", Duration::from_secs(30), || {
        let by_host = live_web_pods_by_host(&c);
        (by_host.values().sum::<usize>() == 6 && by_host.len() == 3).then_some(())
    });

    refused_with_nothing_changed(&c);

    // host-2 partitioned from the others in their LAN.
    let r = c.emu(&["fault", "partition", "host/host-2", "host/host-1,host/host-3"]).ok();
    let cut_at = Instant::now();
    assert_eq!(r.stdout.trim(), "fault/partition-1 created: host/host-2 <-> host/host-1,host/host-3 both ways, in the LAN");
    let table = lan_table();
    assert!(table.contains("ip saddr 192.0.2.2 ip daddr { 192.0.2.1, 192.0.2.3 } drop"), "{table}");
    let list = c.emu(&["fault", "list"]).ok().stdout;
    assert!(list.lines().any(|l| l.starts_with("partition-1 ") && l.contains(" Applied ") && l.contains(" LAN ")), "{list}");
    wait_nodes(&c, "host-2", false, Duration::from_secs(20));
    println!("host partition → host-2's nodes NotReady: {:?}", cut_at.elapsed());
    c.wait_for("host-2's replicas replaced on host-1 and host-3", Duration::from_secs(20), || {
        let by_host = live_web_pods_by_host(&c);
        (!by_host.contains_key("host-2") && by_host.values().sum::<usize>() == 6).then_some(())
    });
    println!("host partition → its 2 replicas replaced on the other hosts (6 Ready there): {:?}", cut_at.elapsed());

    // Healed: the table goes, host-2's nodes are Ready again, its evicted pods go.
    let r = c.emu(&["fault", "clear", "partition-1"]).ok();
    let healed_at = Instant::now();
    assert_eq!(r.stdout.trim(), "fault/partition-1 cleared");
    assert!(!lan_table().contains("emu-faults"), "{}", lan_table());
    wait_nodes(&c, "host-2", true, Duration::from_secs(30));
    println!("heal → host-2's nodes Ready: {:?}", healed_at.elapsed());
    c.wait_for("the evicted replicas to go", Duration::from_secs(20), || (c.pods("app=web").len() == 6).then_some(()));

    // host-3 stopped under load: requests through the Service keep succeeding after the
    // detection time.
    let load = start_load(&c, 12);
    std::thread::sleep(Duration::from_secs(2));
    let r = c.emu(&["host", "stop", "host-3"]).ok();
    let (stopped_at, stopped_clock) = (Instant::now(), uptime());
    assert_eq!(r.stdout.trim(), "host/host-3 stopped: LAN link down, nodes node-5, node-6 frozen");
    let frozen = std::fs::read_to_string(format!("/sys/fs/cgroup/unified/emu-{CLUSTER}/node-node-5/cgroup.events"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/emu-{CLUSTER}/node-node-5/cgroup.events")))
        .unwrap();
    assert!(frozen.contains("frozen 1"), "{frozen}");
    let list = c.emu(&["fault", "list"]).ok().stdout;
    assert!(list.contains("host-stop-host-3   host-stop"), "{list}");
    wait_nodes(&c, "host-3", false, Duration::from_secs(20));
    println!("host stop → host-3's nodes NotReady: {:?}", stopped_at.elapsed());
    let out = load.wait_with_output().unwrap();
    let lines: Vec<(f64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, code) = l.split_once(' ')?;
            Some((t.parse().ok()?, code.to_string()))
        })
        .collect();
    let failed: Vec<f64> = lines.iter().filter(|(_, code)| code != "200").map(|(t, _)| t - stopped_clock).collect();
    let after: Vec<&(f64, String)> = lines.iter().filter(|(t, _)| *t - stopped_clock > 4.0).collect();
    println!(
        "load through the ClusterIP from host-1: {} requests, {} failed (at {:?} s after the stop)",
        lines.len(),
        failed.len(),
        failed.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>()
    );
    assert!(lines.iter().filter(|(t, _)| *t < stopped_clock).all(|(_, code)| code == "200"), "all served before the stop: {lines:?}");
    assert!(after.len() >= 20, "requests after the detection time: {after:?}");
    assert!(after.iter().all(|(_, code)| code == "200"), "every request from 4 s after the stop succeeds: {lines:?}");

    let r = c.emu(&["host", "start", "host-3"]).ok();
    let started_at = Instant::now();
    assert_eq!(r.stdout.trim(), "host/host-3 started");
    wait_nodes(&c, "host-3", true, Duration::from_secs(20));
    println!("host start → host-3's nodes Ready: {:?}", started_at.elapsed());
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout.trim(), "No faults in force.");
    c.wait_for("the evicted replicas to go", Duration::from_secs(20), || (c.pods("app=web").len() == 6).then_some(()));

    // A power loss (--kill): the host's agents and pods are killed; `emu fault clear` starts it
    // (as `emu host start`), its agents start again on the host and restart its pods.
    let r = c.emu(&["host", "stop", "host-2", "--kill"]).ok();
    assert_eq!(r.stdout.trim(), "host/host-2 stopped: LAN link down, nodes node-3, node-4 killed");
    let agents = |node: &str| emu_tests::emu_processes(CLUSTER).iter().filter(|p| p.contains(&format!("--node {node}"))).count();
    assert_eq!(agents("node-3"), 0);
    assert_eq!(c.emu(&["fault", "clear"]).ok().stdout.trim(), "fault/host-stop-host-2 cleared");
    assert_eq!(agents("node-3"), 1, "{:?}", emu_tests::emu_processes(CLUSTER));
    wait_nodes(&c, "host-2", true, Duration::from_secs(20));
    c.wait_for("the pods of host-2 running again", Duration::from_secs(20), || {
        let by_host = live_web_pods_by_host(&c);
        (by_host.values().sum::<usize>() == 6 && by_host.contains_key("host-2")).then_some(())
    });

    // Nothing left, the machine's own namespace untouched.
    drop(c);
    assert_eq!(HostState::capture().links, host_before.links);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&format!("emu-{CLUSTER}-")));
    assert!(emu_tests::emu_processes(CLUSTER).is_empty());
    assert!(emu_tests::emu_mounts(CLUSTER).is_empty(), "{:?}", emu_tests::emu_mounts(CLUSTER));
}

/// Round trips from the client (host-1) to a web pod of host-3, by ping: (ms of each reply,
/// replies received of `count`).
fn ping_host_3(c: &Cluster, count: usize, interval: &str) -> (Vec<f64>, usize) {
    let hosts = node_hosts(c);
    let target = c
        .pods("app=web")
        .into_iter()
        .find(|p| p["spec"]["nodeName"].as_str().and_then(|n| hosts.get(n)).is_some_and(|h| h == "host-3") && emu_tests::is_ready(p))
        .expect("a web pod on host-3");
    let ip = target["status"]["podIP"].as_str().unwrap().to_string();
    let r = c.emu(&["exec", "client", "--", "ping", "-c", &count.to_string(), "-i", interval, "-W", "2", &ip]);
    let times: Vec<f64> = r.stdout.lines().filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    let received = times.len();
    (times, received)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The queue rules in host-3's namespace (its LAN link's), as iptables lists them.
fn host_3_rules() -> String {
    let ns = format!("emu-{LAN_CLUSTER}-host-3");
    let out = Command::new("ip").args(["netns", "exec", &ns, "iptables-save", "-t", "mangle"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster of the LAN link test: kubelet's default grace, so that a lossy link does not turn
/// host-3's nodes NotReady (heartbeats cross it too) while the pings measure it.
const LAN_CLUSTER: &str = "thostlan";

/// host-3's LAN link delayed, then also lossy: every packet it sends or receives over the LAN
/// (here, a client's pings from host-1 to a pod of host-3, through the overlay) is held 50 ms
/// each way, a share of them lost; cleared, the link is as before and its rules are gone.
#[test]
fn a_hosts_lan_link_delayed_and_lossy() {
    emu_tests::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_scratch, file) = scenario_file("lan", "nodes: 6\nhosts: 3\n");
    let c = &Cluster::up(LAN_CLUSTER, &[file.to_str().unwrap()]);
    c.emu(&["apply", "-f", &emu_tests::scenario_path("web.yaml")]).ok();
    c.emu(&["scale", "deployment", "web", "--replicas=6"]).ok();
    c.emu(&["apply", "-f", &emu_tests::scenario_path("client.yaml")]).ok();
    c.ready_pod("client");
    c.wait_for("six web replicas, on every host", Duration::from_secs(30), || {
        let by_host = live_web_pods_by_host(c);
        (by_host.values().sum::<usize>() == 6 && by_host.len() == 3).then_some(())
    });
    let (times, _) = ping_host_3(c, 5, "0.2");
    let before = median(&times);
    let r = c.emu(&["fault", "delay", "host/host-3", "50ms"]).ok();
    assert_eq!(r.stdout.trim(), "fault/delay-1 created: host/host-3 delay 50ms");
    let list = c.emu(&["fault", "list"]).ok().stdout;
    assert!(list.lines().any(|l| l.starts_with("delay-1 ") && l.contains(" Applied ") && l.contains(" LAN ")), "{list}");
    let rules = host_3_rules();
    assert!(rules.contains("-A POSTROUTING -o eth0 -j NFQUEUE --queue-num 300 --queue-bypass"), "{rules}");
    let (times, received) = ping_host_3(c, 5, "0.2");
    assert_eq!(received, 5, "a delay loses nothing");
    let slowed = median(&times);
    println!("host-3's LAN link delayed 50 ms: ping host-1 → host-3 {before:.2} ms → {slowed:.2} ms");
    assert!(slowed >= before + 95.0 && slowed < before + 300.0, "{before} → {slowed}");

    // 20 % lost each way: a ping and its reply both cross it, so about a third go unanswered.
    let r = c.emu(&["fault", "loss", "host/host-3", "20%"]).ok();
    assert_eq!(r.stdout.trim(), "fault/loss-1 created: host/host-3 loss 20%");
    let (times, received) = ping_host_3(c, 60, "0.05");
    println!("host-3's LAN link also losing 20 %: {received} of 60 pings answered");
    assert!((15..=55).contains(&received), "{received} of 60");
    assert!(median(&times) >= before + 95.0, "still delayed");

    let r = c.emu(&["fault", "clear", "delay-1", "loss-1"]).ok();
    assert_eq!(r.stdout.trim(), "fault/delay-1 cleared\nfault/loss-1 cleared");
    assert!(!host_3_rules().contains("NFQUEUE"), "{}", host_3_rules());
    let (times, received) = ping_host_3(c, 5, "0.2");
    assert_eq!(received, 5);
    assert!(median(&times) < before + 30.0, "{before} → {times:?}");
    wait_nodes(c, "host-3", true, Duration::from_secs(20));
    c.wait_for("six web replicas Ready", Duration::from_secs(20), || {
        (live_web_pods_by_host(c).values().sum::<usize>() == 6 && c.pods("app=web").len() == 6).then_some(())
    });
}

/// Bad host faults: each refused with the field and the fix, and no fault recorded.
fn refused_with_nothing_changed(c: &Cluster) {
    let cases: [(&[&str], &str); 7] = [
        (&["fault", "partition", "host/host-9", "host/host-1"], "host \"host-9\" is not in the cluster (hosts: host-1, host-2, host-3)"),
        (&["fault", "partition", "host/host-2", "host/host-2,host/host-3"], "host \"host-2\" is on both sides"),
        (&["fault", "partition", "host/host-2", "node-1"], "give nodes on both sides, or hosts (`host/NAME`) on both sides"),
        (&["host", "stop", "host-1"], "host \"host-1\" runs the control plane"),
        (&["host", "stop", "host-7"], "host \"host-7\" is not in the cluster"),
        (&["fault", "delay", "host/host-9", "50ms"], "spec.netem.host: host \"host-9\" is not in the cluster"),
        (&["fault", "link", "host/host-2", "down"], "`emu fault link` takes a node; to take host host-2's LAN link down, stop the host"),
    ];
    for (args, message) in cases {
        let r = c.emu(args);
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
    }
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout.trim(), "No faults in force.");
    assert_eq!(c.emu(&["host", "start", "host-2"]).ok().stdout.trim(), "host/host-2 is not stopped");
}

#[test]
fn host_faults_need_emulated_hosts() {
    emu_tests::require_root();
    let c = Cluster::up("thostf1", &["--nodes", "1"]);
    for args in [&["fault", "partition", "host/host-2", "host/host-1"][..], &["host", "stop", "host-2"]] {
        let r = c.emu(args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains("this cluster has no emulated hosts") && r.stderr.contains("--hosts N"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout.trim(), "No faults in force.");
}

#[test]
fn the_hosts_scenario_passes() {
    emu_tests::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let r = emu_tests::emu(&["test", "--cluster", "thostsc", &emu_tests::scenario_path("hosts.yaml")]);
    println!("{}{}(emu test scenarios/hosts.yaml in {:?})", r.stdout, r.stderr, started.elapsed());
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 scenario: 1 passed, 0 failed in "), "{}", r.stdout);
    assert!(!std::path::Path::new("/run/emu/thostsc").exists());
    assert!(emu_tests::emu_processes("thostsc").is_empty());
}
