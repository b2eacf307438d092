//! Node loss (issue 7): `emu node stop` freezes a node; it turns NotReady after the scenario's
//! grace, its pods leave the endpoints and are evicted and replaced after the eviction timeout;
//! `emu node start` brings it back and the evicted pods go.

use emu_tests::{is_ready, name, Cluster};
use std::time::{Duration, Instant};

#[test]
fn a_stopped_node_loses_its_pods_to_the_others() {
    let dir = std::env::temp_dir().join(format!("emu-tnodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("loss.yaml");
    std::fs::write(
        &scenario,
        "nodes: 2\nnodeFailure: {notReadyAfter: 3s, evictAfter: 4s}\nmanifests:\n  - |\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n    spec:\n      replicas: 2\n      selector: {matchLabels: {app: web}}\n      template:\n        metadata: {labels: {app: web}}\n        spec: {containers: [{name: web, image: nginx}]}\n  - |\n    apiVersion: v1\n    kind: Service\n    metadata: {name: web}\n    spec: {selector: {app: web}, ports: [{port: 80}]}\n",
    )
    .unwrap();
    let c = Cluster::up("tnodes", &[scenario.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let pods = c.ready_pods("app=web", 2);
    let victim_node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let lost: Vec<String> = pods.iter().filter(|p| p["spec"]["nodeName"] == victim_node.as_str()).map(name).collect();
    let endpoints = |c: &Cluster| c.emu(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]).ok().stdout;

    let r = c.emu(&["node", "stop", &victim_node]).ok();
    assert_eq!(r.stdout, format!("node/{victim_node} stopped: agent and pods frozen, links down\n"));
    let stopped = Instant::now();
    assert!(c.emu(&["fault", "list"]).ok().stdout.contains(&format!("node-stop   node/{victim_node}")));
    c.wait_for("the node to turn NotReady", Duration::from_secs(10), || {
        let row = c.emu(&["get", "node", &victim_node]).ok().stdout;
        row.contains("NotReady").then_some(())
    });
    let not_ready = stopped.elapsed();
    // Its pods leave the endpoints at once.
    let lost_ips: Vec<String> = pods.iter().filter(|p| p["spec"]["nodeName"] == victim_node.as_str()).map(emu_tests::pod_ip).collect();
    c.wait_for("the lost pods to leave the endpoints", Duration::from_secs(5), || {
        let eps = endpoints(&c);
        (!lost_ips.iter().any(|ip| eps.contains(ip.as_str()))).then_some(())
    });
    let described = c.emu(&["describe", "node", &victim_node]).ok().stdout;
    assert!(described.contains("node.kubernetes.io/unreachable:NoExecute"), "{described}");
    // Evicted after 4 s, replaced on the node that is left.
    c.wait_for("replacements on the other node", Duration::from_secs(15), || {
        let pods = c.pods("app=web");
        let fresh: Vec<&serde_json::Value> = pods.iter().filter(|p| is_ready(p) && p["spec"]["nodeName"] != victim_node.as_str()).collect();
        (fresh.len() == 2).then_some(())
    });
    println!("NotReady after {not_ready:?}, replaced after {:?}", stopped.elapsed());
    assert_eq!(endpoints(&c).split_whitespace().count(), 2, "both endpoints on the node that is left");

    c.emu(&["node", "start", &victim_node]).ok();
    c.wait_for("the node Ready again", Duration::from_secs(10), || (!c.emu(&["get", "node", &victim_node]).ok().stdout.contains("NotReady")).then_some(()));
    c.wait_for("the evicted pods to go", Duration::from_secs(20), || {
        let names: Vec<String> = c.pods("app=web").iter().map(name).collect();
        (!lost.iter().any(|l| names.contains(l))).then_some(())
    });
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");
}
