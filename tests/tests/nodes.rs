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
    c.wait_for("the node Ready again", Duration::from_secs(10), || {
        (!c.emu(&["get", "node", &victim_node]).ok().stdout.contains("NotReady")).then_some(())
    });
    c.wait_for("the evicted pods to go", Duration::from_secs(20), || {
        let names: Vec<String> = c.pods("app=web").iter().map(name).collect();
        (!lost.iter().any(|l| names.contains(l))).then_some(())
    });
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");
}

/// `--kill`: a power loss rather than a freeze. The node's processes die (its namespaces and
/// links stay, down); `start` boots it: the agent comes back and restarts the pods still bound
/// to it, each container's restart count one higher, as kubelet counts them after a reboot.
#[test]
fn a_killed_node_restarts_its_pods_when_started() {
    let c = Cluster::up("tnodekill", &["--nodes", "2"]);
    c.apply(
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  nodeName: node-2\n  containers: [{name: nginx, image: nginx}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  nodeName: node-1\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    )
    .ok();
    let web = c.ready_pod("web");
    c.ready_pod("client");
    let ip = emu_tests::pod_ip(&web);
    let before = emu_tests::container_pid(&c.name, &web, "nginx");
    let agent = emu_tests::daemon_pid(&c.name, "nodes/node-2/agent.pid");

    let r = c.emu(&["node", "stop", "node-2", "--kill"]).ok();
    assert_eq!(r.stdout, "node/node-2 stopped: agent and pods killed, links down\n");
    // Dead, or a zombie that its new parent has not reaped yet.
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    };
    assert!(!alive(before) && !alive(agent), "nginx ({before}) and the agent ({agent}) are gone");
    assert!(c.emu(&["fault", "list"]).ok().stdout.contains("agent and pods killed, links down"));
    assert_ne!(c.emu(&["exec", "client", "--", "ping", "-c", "1", "-W", "1", &ip]).code, 0, "the node is unreachable");

    assert_eq!(c.emu(&["node", "start", "node-2"]).ok().stdout, "node/node-2 started\n");
    let web = c.wait_for("web restarted", Duration::from_secs(15), || {
        let p = c.pods("").into_iter().find(|p| name(p) == "web")?;
        (is_ready(&p) && p["status"]["containerStatuses"][0]["restartCount"] == 1).then_some(p)
    });
    assert_eq!(emu_tests::pod_ip(&web), ip, "the pod keeps its IP");
    assert_ne!(emu_tests::container_pid(&c.name, &web, "nginx"), before);
    // Ready once started (it has no readiness probe), so nginx may not listen yet: a few tries.
    c.wait_for("nginx to answer again", Duration::from_secs(5), || {
        let page = c.emu(&["exec", "client", "--", "wget", "-q", "-O", "-", &format!("http://{ip}")]).stdout;
        page.contains("Welcome to nginx!").then_some(())
    });
    assert_eq!(c.emu(&["fault", "list"]).ok().stdout, "No faults in force.\n");
}

/// `emu node remove`: the node, its processes and namespaces go; the controller deletes its
/// pods (Kubernetes' pod garbage collector) and the ReplicaSet replaces them; the faults that
/// named it are cleared; the other nodes drop their route to its pods.
#[test]
fn a_removed_node_leaves_the_cluster_and_its_pods_are_replaced() {
    let c = Cluster::up("tnoderm", &["--nodes", "3"]);
    c.apply(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    )
    .ok();
    let pods = c.ready_pods("app=web", 2);
    let victim = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let lost = name(&pods[0]);
    let survivor = ["node-1", "node-2", "node-3"].into_iter().find(|n| *n != victim).unwrap();
    let other = ["node-1", "node-2", "node-3"].into_iter().find(|n| *n != victim && *n != survivor).unwrap();
    c.emu(&["fault", "partition", &victim, survivor]).ok();
    c.emu(&["fault", "delay", survivor, "5ms"]).ok();
    let victim_cidr = c.emu(&["get", "node", &victim, "-o", "jsonpath={.spec.podCIDR}"]).ok().stdout;

    assert_eq!(c.emu(&["node", "remove", &victim]).ok().stdout, format!("node/{victim} removed\n"));
    let nodes = c.emu(&["get", "nodes", "-o", "name"]).ok().stdout;
    assert!(!nodes.contains(&victim) && nodes.contains(survivor) && nodes.contains(other), "{nodes}");
    c.wait_for("a replacement", Duration::from_secs(15), || {
        let pods = c.pods("app=web");
        (pods.len() == 2 && pods.iter().all(|p| is_ready(p) && p["spec"]["nodeName"] != victim.as_str() && name(p) != lost)).then_some(())
    });
    // The faults naming it are gone, the others stay.
    let faults = c.emu(&["fault", "list"]).ok().stdout;
    assert!(!faults.contains("partition") && faults.contains("delay-1"), "{faults}");
    // Nothing of it is left: namespaces, processes, routes to its pods.
    let namespaces = String::from_utf8(std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    assert!(!namespaces.contains(&format!("emu-{}-node-{victim}", c.name)), "{namespaces}");
    assert!(emu_tests::emu_processes(&c.name).iter().all(|p| !p.contains(&format!("--node {victim}"))));
    c.wait_for("the route to its pods to go", Duration::from_secs(5), || {
        (!c.emu(&["ssh", other, "--", "ip", "route"]).ok().stdout.contains(&victim_cidr)).then_some(())
    });
    let r = c.emu(&["node", "start", &victim]);
    assert_eq!(
        (r.code, r.stderr.trim_end().to_string()),
        (
            1,
            format!(
                "error: node \"{victim}\" not found in the cluster (nodes: {})",
                [survivor, other].iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
            )
        )
    );
}
