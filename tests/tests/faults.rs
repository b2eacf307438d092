//! Network faults (issue 7): `emu fault partition|delay|loss|link|list|clear`, applied by the node
//! agents to the emulated links only.

use emu_tests::{pod_ip, Cluster};
use std::time::Duration;

/// A busybox pod pinned to `node`.
fn pinned(c: &Cluster, name: &str, node: &str) -> String {
    c.apply(
        &format!("{name}.yaml"),
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: busybox, command: [sleep, '3600']}}]\n"),
    )
    .ok();
    pod_ip(&c.ready_pod(name))
}

fn pings(c: &Cluster, from: &str, to: &str) -> bool {
    c.emu(&["exec", from, "--", "ping", "-c", "1", "-W", "1", to]).code == 0
}

#[test]
fn partition_cuts_across_and_clear_restores() {
    let c = Cluster::up("tfpart", &["--nodes", "3"]);
    let ip1 = pinned(&c, "p1", "node-1");
    let ip2 = pinned(&c, "p2", "node-2");
    let ip3 = pinned(&c, "p3", "node-3");
    assert!(pings(&c, "p1", &ip2) && pings(&c, "p2", &ip3));

    let made = c.emu(&["fault", "partition", "node-1", "node-2,node-3"]).ok().stdout;
    assert_eq!(made, "fault/partition-1 created: node-1 <-> node-2,node-3 both ways\n");
    c.wait_for("the partition", Duration::from_secs(5), || (!pings(&c, "p1", &ip2)).then_some(()));
    assert!(!pings(&c, "p2", &ip1) && !pings(&c, "p3", &ip1) && !pings(&c, "p1", &ip3), "nothing crosses it");
    assert!(pings(&c, "p2", &ip3) && pings(&c, "p3", &ip2), "each side still talks within itself");
    let listed = c.emu(&["fault", "list"]).ok().stdout;
    assert!(listed.starts_with("NAME") && listed.contains("partition-1   partition   node-1 <-> node-2,node-3   both ways"), "{listed}");

    c.emu(&["fault", "clear"]).ok();
    c.wait_for("the partition to heal", Duration::from_secs(5), || (pings(&c, "p1", &ip2) && pings(&c, "p3", &ip1)).then_some(()));
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");

    // One way: node-1 → node-2 is dropped, so a ping from node-2's pod gets no reply either,
    // while node-2 → node-3 is untouched.
    c.emu(&["fault", "partition", "node-1", "node-2", "--one-way"]).ok();
    c.wait_for("the one-way partition", Duration::from_secs(5), || (!pings(&c, "p1", &ip2)).then_some(()));
    assert!(!pings(&c, "p2", &ip1) && pings(&c, "p2", &ip3) && pings(&c, "p1", &ip3));
    // Link down: node-3 is cut off entirely; up again restores it.
    c.emu(&["fault", "clear"]).ok();
    c.emu(&["fault", "link", "node-3", "down"]).ok();
    c.wait_for("node-3's link down", Duration::from_secs(5), || (!pings(&c, "p2", &ip3)).then_some(()));
    c.emu(&["fault", "link", "node-3", "up"]).ok();
    c.wait_for("node-3's link up", Duration::from_secs(5), || pings(&c, "p2", &ip3).then_some(()));

    // Bad input names what is wrong and records nothing.
    let r = c.emu(&["fault", "partition", "node-1", "node-9"]);
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "error: fault partition-1: spec.partition.b: node \"node-9\" is not in the cluster (nodes: node-1, node-2, node-3)")
    );
    let r = c.emu(&["fault", "loss", "node-1", "120%"]);
    assert_eq!((r.code, r.stderr.trim_end()), (1, "error: invalid percentage \"120%\": between 0% and 100%"));
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");
}

/// The average round-trip time of `count` pings, in milliseconds.
fn rtt_ms(c: &Cluster, from: &str, to: &str, count: u32) -> f64 {
    let out = c.emu(&["exec", from, "--", "ping", "-c", &count.to_string(), "-i", "0.2", "-W", "2", to]).ok().stdout;
    // busybox: "round-trip min/avg/max = 0.061/0.083/0.113 ms"
    let line = out.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("{out}"));
    line.split('=').nth(1).unwrap().trim().split('/').nth(1).unwrap().parse().unwrap()
}

#[test]
fn delay_and_loss_show_inside_pods() {
    let c = Cluster::up("tfnetem", &["--nodes", "2"]);
    let ip1 = pinned(&c, "p1", "node-1");
    let ip2 = pinned(&c, "p2", "node-2");
    assert!(rtt_ms(&c, "p1", &ip2, 3) < 20.0);

    // 100 ms ± 10 ms on node-1's link, each way: a round trip through it takes 200 ms more,
    // seen from either side.
    c.emu(&["fault", "delay", "node-1", "100ms", "--jitter", "10ms"]).ok();
    c.wait_for("the delay", Duration::from_secs(5), || (rtt_ms(&c, "p2", &ip1, 1) > 150.0).then_some(()));
    for (from, to) in [("p1", &ip2), ("p2", &ip1)] {
        let rtt = rtt_ms(&c, from, to, 10);
        assert!((180.0..=240.0).contains(&rtt), "{from} → {to}: average RTT {rtt} ms");
    }
    c.emu(&["fault", "clear"]).ok();
    c.wait_for("the delay to go", Duration::from_secs(5), || (rtt_ms(&c, "p2", &ip1, 1) < 20.0).then_some(()));

    // A pod's link: everything the pod sends or receives, from its own node's pods too (their
    // traffic never leaves the node's bridge), and nothing else.
    pinned(&c, "p3", "node-1");
    let ip3 = pod_ip(&c.ready_pod("p3"));
    c.emu(&["fault", "delay", "pod/p1", "50ms"]).ok();
    c.wait_for("the pod's delay", Duration::from_secs(5), || (rtt_ms(&c, "p3", &ip1, 1) > 80.0).then_some(()));
    for (from, to) in [("p3", &ip1), ("p2", &ip1), ("p1", &ip2)] {
        let rtt = rtt_ms(&c, from, to, 5);
        assert!((95.0..=130.0).contains(&rtt), "{from} → {to}: average RTT {rtt} ms");
    }
    assert!(rtt_ms(&c, "p2", &ip3, 3) < 20.0, "p3's link is not p1's");
    c.emu(&["fault", "clear"]).ok();
    c.wait_for("the pod's delay to go", Duration::from_secs(5), || (rtt_ms(&c, "p3", &ip1, 1) < 20.0).then_some(()));

    // 20% loss: 1,000 pings from p2 to p1 cross node-1's link one way; p1's own counter of
    // echo requests received tells how many made it.
    c.emu(&["fault", "loss", "node-1", "20%"]).ok();
    c.wait_for("the loss", Duration::from_secs(5), || (c.emu(&["fault", "list"]).ok().stdout.contains("loss 20%")).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    let before = in_echos(&c, "p1");
    c.emu(&["exec", "p2", "--", "ping", "-q", "-c", "1000", "-i", "0.005", "-W", "2", &ip1]);
    let got = (in_echos(&c, "p1") - before) as f64;
    let lost = 100.0 * (1000.0 - got) / 1000.0;
    println!("lost {lost}% of 1000 probes");
    assert!((15.0..=25.0).contains(&lost), "20% loss showed as {lost}%");
}

/// The echo requests a pod has received (`Icmp: InEchos` of its /proc/net/snmp).
fn in_echos(c: &Cluster, pod: &str) -> u64 {
    let snmp = c.emu(&["exec", pod, "--", "cat", "/proc/net/snmp"]).ok().stdout;
    let icmp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Icmp:")).collect();
    let (names, values) = (icmp[0].split_whitespace(), icmp[1].split_whitespace());
    names.zip(values).find(|(n, _)| *n == "InEchos").map(|(_, v)| v.parse().unwrap()).expect("InEchos")
}

/// A counter of `/proc/net/snmp` (`Icmp: InEchoReps`) or `/proc/net/netstat` (`TcpExt: …`) in a pod.
fn counter(c: &Cluster, pod: &str, file: &str, group: &str, name: &str) -> u64 {
    let text = c.emu(&["exec", pod, "--", "cat", file]).ok().stdout;
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(group)).collect();
    let (names, values) = (rows[0].split_whitespace(), rows[1].split_whitespace());
    names.zip(values).find(|(n, _)| *n == name).map(|(_, v)| v.parse().unwrap()).unwrap_or_else(|| panic!("{group} {name}"))
}

#[test]
fn duplication_copies_packets_both_ways_and_connections_survive_it() {
    let c = Cluster::up("tfdup", &["--nodes", "2"]);
    let ip1 = pinned(&c, "p1", "node-1");
    pinned(&c, "p2", "node-2");
    c.apply(
        "web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  nodeName: node-2\n  containers: [{name: nginx, image: nginx}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    )
    .ok();
    c.ready_pod("web");

    // 50% on node-1's link, each way: p1 receives 1.5 echo requests per ping sent by p2, and
    // p2 receives 1.5 replies per request p1 got (2.25 per ping).
    let made = c.emu(&["fault", "duplicate", "node-1", "50%"]).ok().stdout;
    assert_eq!(made, "fault/duplicate-1 created: node/node-1 duplicate 50%\n");
    c.wait_for("the duplication", Duration::from_secs(5), || {
        c.emu(&["exec", "p2", "--", "ping", "-c", "5", "-i", "0.05", &ip1]).ok().stdout.contains("DUP!").then_some(())
    });
    let (requests, replies) = (in_echos(&c, "p1"), counter(&c, "p2", "/proc/net/snmp", "Icmp:", "InEchoReps"));
    c.emu(&["exec", "p2", "--", "ping", "-q", "-c", "1000", "-i", "0.005", "-W", "2", &ip1]);
    let requests = (in_echos(&c, "p1") - requests) as f64 / 1000.0;
    let replies = (counter(&c, "p2", "/proc/net/snmp", "Icmp:", "InEchoReps") - replies) as f64 / 1000.0;
    println!("per ping: {requests} requests at p1, {replies} replies at p2");
    assert!((1.4..=1.6).contains(&requests), "{requests} echo requests per ping");
    assert!((2.0..=2.5).contains(&replies), "{replies} echo replies per ping");

    // Through a Service from p1 (node-1) to the pod on node-2: requests leave node-1 translated
    // already, replies arrive untranslated; copies of both must be what the originals are (a
    // copy conntrack took for a new connection would be dropped, one sent untranslated would
    // reset the connection). Then p1's own link duplicates too.
    let url = format!("http://{}", c.cluster_ip("web"));
    let requests = |n: usize| -> u64 {
        let before = counter(&c, "web", "/proc/net/netstat", "TcpExt:", "TCPDSACKOldSent");
        for i in 0..n {
            let r = c.emu(&["exec", "p1", "--", "timeout", "5", "wget", "-q", "-O", "-", &url]);
            assert!(r.code == 0 && r.stdout.contains("Welcome to nginx!"), "request {i}: exit {} {}", r.code, r.stderr);
        }
        counter(&c, "web", "/proc/net/netstat", "TcpExt:", "TCPDSACKOldSent") - before
    };
    let dups = requests(60);
    println!("web saw {dups} duplicate segments in 60 requests through node-1's link");
    // About 25 (a request's data segment is copied half the time); 6 when copies are dropped.
    assert!(dups >= 14, "web saw {dups} duplicate segments");
    c.emu(&["fault", "duplicate", "pod/p1", "50%"]).ok();
    let dups = requests(20);
    println!("web saw {dups} duplicate segments in 20 requests through p1's and node-1's links");
    assert!(dups >= 8, "web saw {dups} duplicate segments");

    c.emu(&["fault", "clear"]).ok();
    c.wait_for("the duplication to go", Duration::from_secs(5), || {
        (!c.emu(&["exec", "p2", "--", "ping", "-c", "20", "-i", "0.05", &ip1]).ok().stdout.contains("DUP!")).then_some(())
    });
}

/// Each ping's round-trip time in milliseconds (busybox: `… seq=3 ttl=62 time=50.123 ms`).
fn rtts(c: &Cluster, from: &str, args: &[&str]) -> Vec<f64> {
    let out = c.emu(&[&["exec", from, "--", "ping"], args].concat()).stdout;
    out.lines().filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn corruption_reordering_and_rate_show_inside_pods() {
    let c = Cluster::up("tfcorrupt", &["--nodes", "2"]);
    let ip1 = pinned(&c, "p1", "node-1");
    pinned(&c, "p2", "node-2");

    // 30% corruption on node-1's link: a bit of the payload flips, so p1 counts the echo
    // requests that reach it with a bad ICMP checksum (and answers only the others).
    c.emu(&["fault", "corrupt", "node-1", "30%"]).ok();
    c.wait_for("the corruption", Duration::from_secs(5), || c.emu(&["fault", "list"]).ok().stdout.contains("corrupt 30%").then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    let bad = counter(&c, "p1", "/proc/net/snmp", "Icmp:", "InCsumErrors");
    // Ended by `timeout`: busybox ping takes the send time in a corrupted reply as it is and
    // may wait for ever (its own -w too) for the last replies.
    c.emu(&["exec", "p2", "--", "timeout", "5", "ping", "-q", "-c", "300", "-i", "0.005", &ip1]);
    let bad = counter(&c, "p1", "/proc/net/snmp", "Icmp:", "InCsumErrors") - bad;
    println!("{bad} of 300 echo requests corrupted");
    assert!((45..=135).contains(&bad), "{bad} of 300 echo requests corrupted");
    c.emu(&["fault", "clear"]).ok();

    // Reordering: half the packets go at once, the others wait 50 ms, each way; round trips
    // take about 0, 50 or 100 ms.
    c.emu(&["fault", "reorder", "node-1", "50%", "--delay", "50ms"]).ok();
    c.wait_for("the reordering", Duration::from_secs(5), || (rtts(&c, "p2", &["-c", "3", &ip1]).iter().any(|t| *t > 40.0)).then_some(()));
    let times = rtts(&c, "p2", &["-c", "40", "-i", "0.05", &ip1]);
    let fast = times.iter().filter(|t| **t < 20.0).count();
    let slow = times.iter().filter(|t| **t > 90.0).count();
    println!("round trips: {fast} fast, {slow} slow of {}", times.len());
    assert!(times.len() >= 35 && fast >= 3 && slow >= 3, "{times:?}");
    c.emu(&["fault", "clear"]).ok();

    // 1 Mbit/s on p1's link: a 1,428-byte packet takes 11.4 ms to pass each way.
    c.emu(&["fault", "rate", "pod/p1", "1mbit"]).ok();
    c.wait_for("the rate limit", Duration::from_secs(5), || {
        (rtts(&c, "p2", &["-c", "1", "-s", "1400", &ip1]).iter().any(|t| *t > 15.0)).then_some(())
    });
    let times = rtts(&c, "p2", &["-c", "10", "-i", "0.2", "-s", "1400", &ip1]);
    let average = times.iter().sum::<f64>() / times.len() as f64;
    println!("1,428-byte round trips at 1 Mbit/s: {average:.1} ms on average");
    assert!(times.len() == 10 && (20.0..=35.0).contains(&average), "{times:?}");
    let small = rtts(&c, "p2", &["-c", "5", "-i", "0.2", &ip1]);
    assert!(small.iter().sum::<f64>() / 5.0 < 10.0, "84-byte packets pass quickly: {small:?}");
}

/// `emu ARGS`, timed: the run and how long it took to return.
fn timed(c: &Cluster, args: &[&str]) -> (emu_tests::Run, Duration) {
    let start = std::time::Instant::now();
    let r = c.emu(args);
    (r, start.elapsed())
}

/// A Fault as JSON.
fn fault_json(c: &Cluster, name: &str) -> serde_json::Value {
    serde_json::from_str(&c.emu(&["get", "fault", name, "-o", "json"]).ok().stdout).expect("fault as JSON")
}

/// The nodes a Fault's status says it is in effect on (`status.appliedOn[*].node`).
fn applied_on(f: &serde_json::Value) -> Vec<String> {
    f["status"]["appliedOn"].as_array().into_iter().flatten().map(|e| e["node"].as_str().unwrap_or_default().to_string()).collect()
}

/// Its finalizers, sorted.
fn finalizers(f: &serde_json::Value) -> Vec<String> {
    let mut list: Vec<String> =
        f["metadata"]["finalizers"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
    list.sort();
    list
}

/// Issue 15: `emu fault …` returns once every affected node's agent has applied the fault (or,
/// for clear, reverted it), so the next command sees it at its first try, with no retry.
#[test]
fn fault_commands_return_once_the_agents_have_applied_or_reverted_them() {
    let c = Cluster::up("tfwait", &["--nodes", "3"]);
    let ip1 = pinned(&c, "p1", "node-1");
    let ip2 = pinned(&c, "p2", "node-2");
    let ip3 = pinned(&c, "p3", "node-3");
    assert!(pings(&c, "p1", &ip2) && pings(&c, "p1", &ip3));

    for round in 1..=3 {
        let (r, took) = timed(&c, &["fault", "partition", "node-1", "node-2,node-3"]);
        assert_eq!(r.ok().stdout, "fault/partition-1 created: node-1 <-> node-2,node-3 both ways\n");
        assert!(!pings(&c, "p1", &ip2), "round {round}: the partition is in effect once `emu fault partition` returned ({took:?})");
        assert!(!pings(&c, "p3", &ip1), "round {round}: both ways");
        let (r, took_clear) = timed(&c, &["fault", "clear"]);
        assert_eq!(r.ok().stdout, "fault/partition-1 cleared\n");
        assert!(pings(&c, "p1", &ip2) && pings(&c, "p3", &ip1), "round {round}: healed once `emu fault clear` returned ({took_clear:?})");
        println!("round {round}: partition returned in {took:?}, clear in {took_clear:?}");
    }

    // The Fault says where it is in effect: each agent writes its own entry of status.appliedOn
    // (for the spec's generation) after putting its finalizer on; node-3 is not in it.
    c.emu(&["fault", "partition", "node-1", "node-2"]).ok();
    let f = fault_json(&c, "partition-1");
    assert_eq!(applied_on(&f), ["node-1", "node-2"], "{f}");
    assert!(f["status"]["appliedOn"].as_array().unwrap().iter().all(|e| e["observedGeneration"] == 1 && e["since"].is_string()), "{f}");
    assert_eq!(finalizers(&f), ["emu.dev/agent-node-1", "emu.dev/agent-node-2"]);
    let listed = c.emu(&["fault", "list"]).ok().stdout;
    assert!(listed.lines().next().unwrap().contains("STATUS") && listed.contains("both ways   Applied   node-1,node-2"), "{listed}");
    c.emu(&["fault", "clear", "partition-1"]).ok();
    assert_eq!(c.emu(&["get", "fault", "partition-1"]).code, 1, "gone once the clear returned");

    // Link impairments (the link emulator has bound its queues) and a link going down.
    c.emu(&["fault", "delay", "pod/p3", "50ms"]).ok();
    let rtt = rtt_ms(&c, "p2", &ip3, 1);
    assert!(rtt > 90.0, "the pod's delay is in effect at once: {rtt} ms");
    assert_eq!(applied_on(&fault_json(&c, "delay-1")), ["node-3"], "a pod's fault is applied by its node's agent");
    c.emu(&["fault", "clear"]).ok();
    let rtt = rtt_ms(&c, "p2", &ip3, 1);
    assert!(rtt < 20.0, "and gone at once: {rtt} ms");
    c.emu(&["fault", "link", "node-3", "down"]).ok();
    assert!(!pings(&c, "p2", &ip3));
    c.emu(&["fault", "link", "node-3", "up"]).ok();
    assert!(pings(&c, "p2", &ip3), "the link is up, its routes back, once `emu fault link … up` returned");

    // An agent that is not running: the command says which node has not confirmed; with
    // --wait=false it returns at once, the fault recorded but applied nowhere yet. The agent
    // applies it when it runs again.
    emu_tests::sigkill(emu_tests::daemon_pid("tfwait", "nodes/node-2/agent.pid"));
    let (r, took) = timed(&c, &["fault", "delay", "node-2", "10ms", "--timeout=1s"]);
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "error: fault/delay-1 created, but the agent of node node-2 has not applied it within 1s: is it running (`emu get nodes`)? The fault stays recorded until `emu fault clear delay-1`")
    );
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let (r, took) = timed(&c, &["fault", "loss", "node-2", "10%", "--wait=false"]);
    assert_eq!(r.ok().stdout, "fault/loss-1 created: node/node-2 loss 10%\n");
    assert!(applied_on(&fault_json(&c, "loss-1")).is_empty(), "--wait=false returned ({took:?}) before any agent applied it");
    c.emu(&["restart", "agent", "node-2"]).ok();
    c.wait_for("the restarted agent to apply both", Duration::from_secs(10), || {
        (applied_on(&fault_json(&c, "delay-1")) == ["node-2"] && applied_on(&fault_json(&c, "loss-1")) == ["node-2"]).then_some(())
    });
    // A held fault is not deleted until its agent reverted it: --wait=false returns while it is
    // (or was) Terminating; without --wait=false, clear waits for the agents.
    emu_tests::sigkill(emu_tests::daemon_pid("tfwait", "nodes/node-2/agent.pid"));
    let r = c.emu(&["fault", "clear", "loss-1", "--wait=false"]).ok();
    assert_eq!(r.stdout, "fault/loss-1 cleared\n");
    assert!(fault_json(&c, "loss-1")["metadata"]["deletionTimestamp"].is_string(), "Terminating while node-2's agent holds it");
    let r = c.emu(&["fault", "clear", "--timeout=500ms"]);
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "error: the agent of node node-2 has not reverted fault/delay-1, fault/loss-1 within 500ms: is it running (`emu get nodes`)? The fault stays (Terminating) until it has")
    );
    assert!(c.emu(&["fault", "list"]).ok().stdout.contains("Terminating"));
    c.emu(&["restart", "agent", "node-2"]).ok();
    let (r, took) = timed(&c, &["fault", "clear"]);
    assert_eq!(r.ok().stdout, "fault/delay-1 cleared\nfault/loss-1 cleared\n", "waited {took:?} for the restarted agent");
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");
}

/// Issue 15: `emu node stop|start` return once in effect: the node's links down (up, with its
/// routes), and after a start its agent caught up with the faults that changed while it was
/// stopped. Nothing waits for a stopped node's agent.
#[test]
fn node_stop_and_start_return_once_in_effect_and_stopped_agents_catch_up() {
    let c = Cluster::up("tfnodewait", &["--nodes", "2"]);
    let ip1 = pinned(&c, "p1", "node-1");
    let ip2 = pinned(&c, "p2", "node-2");

    let (r, took) = timed(&c, &["node", "stop", "node-2"]);
    assert_eq!(r.ok().stdout, "node/node-2 stopped: agent and pods frozen, links down\n");
    assert!(!pings(&c, "p1", &ip2), "node-2 unreachable once `emu node stop` returned ({took:?})");
    // A fault made while node-2 is stopped: applied by node-1 now, by node-2 when started.
    let r = c.emu(&["fault", "partition", "node-1", "node-2"]).ok();
    assert_eq!(r.stdout, "fault/partition-1 created: node-1 <-> node-2 both ways (node-2 is stopped: it applies the fault when started)\n");
    assert_eq!(applied_on(&fault_json(&c, "partition-1")), ["node-1"]);
    let (r, took) = timed(&c, &["node", "start", "node-2"]);
    assert_eq!(r.ok().stdout, "node/node-2 started\n");
    println!("node stop/start returned in {took:?}");
    assert_eq!(
        applied_on(&fault_json(&c, "partition-1")),
        ["node-1", "node-2"],
        "node-2's agent caught up before `emu node start` returned"
    );

    // Cleared while node-2 is stopped: node-1 reverts it now, node-2 when started; until then
    // the Fault stays, Terminating, held by node-2's finalizer.
    c.emu(&["node", "stop", "node-2"]).ok();
    let r = c.emu(&["fault", "clear", "partition-1"]).ok();
    assert_eq!(r.stdout, "fault/partition-1 cleared (node-2 is stopped: it reverts the fault when started)\n");
    let f = fault_json(&c, "partition-1");
    assert_eq!((finalizers(&f), applied_on(&f)), (vec!["emu.dev/agent-node-2".to_string()], vec!["node-2".to_string()]));
    assert!(c.emu(&["fault", "list"]).ok().stdout.contains("Terminating   node-2"));
    c.emu(&["node", "start", "node-2"]).ok();
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n", "reverted by node-2 before `emu node start` returned");
    assert!(pings(&c, "p1", &ip2) && pings(&c, "p2", &ip1), "links up, routes back, partition gone");

    // Killed and started: the new agent applies the node's faults again before start returns.
    c.emu(&["fault", "delay", "node-2", "50ms"]).ok();
    c.emu(&["node", "stop", "node-2", "--kill"]).ok();
    let (r, took) = timed(&c, &["node", "start", "node-2"]);
    r.ok();
    let rtt = rtt_ms(&c, "p1", &ip2, 1);
    assert!(rtt > 90.0, "the delay is in effect again once `emu node start` returned ({took:?}): {rtt} ms");
    c.emu(&["fault", "clear"]).ok();

    // --wait=false: stop and start still take the links down and up themselves.
    c.emu(&["node", "stop", "node-2", "--wait=false"]).ok();
    assert!(!pings(&c, "p1", &ip2));
    c.emu(&["node", "start", "node-2", "--wait=false"]).ok();
    assert!(pings(&c, "p1", &ip2));

    // A removed node's agent is gone for good: what it held is let go, so the faults naming it
    // go as soon as the other agents have reverted them.
    c.emu(&["fault", "partition", "node-1", "node-2"]).ok();
    c.emu(&["node", "stop", "node-2"]).ok();
    c.emu(&["node", "remove", "node-2"]).ok();
    c.wait_for("the partition to go", Duration::from_secs(5), || {
        (c.emu(&["fault", "list"]).ok().stdout == "No faults in force.\n").then_some(())
    });
}
