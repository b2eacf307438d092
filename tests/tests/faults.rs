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
    assert_eq!((r.code, r.stderr.trim_end()), (1, "error: fault partition-1: spec.partition.b: node \"node-9\" is not in the cluster (nodes: node-1, node-2, node-3)"));
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
