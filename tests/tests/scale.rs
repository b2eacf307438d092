//! Large clusters stay usable (issue 22, item 4), at a size a test can afford: 10 nodes and 300
//! pods. `emu get pods -A` lists every pod, `emu describe node` of a busy node shows all of its
//! pods in kubectl's layout, a watch (`emu get pods -w`) under churn sees every change and no
//! error, and `emu down` leaves nothing behind. The benchmark (emu-bench-scale) measures the same
//! at 1,000 and 10,000 pods; this test asserts behaviour, not time.

use emu_tests::{emu_mounts, emu_processes, name, Cluster, HostState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

const CLUSTER: &str = "tscale";
const NODES: usize = 10;
const PODS: usize = 300;
/// Replicas after the scale-down of the churn; scaled back to PODS after it.
const FEWER: usize = 200;

/// busybox `sleep` as PID 1 ignores SIGTERM: a short grace period keeps the scale-down quick.
fn deployment(replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: scale}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: scale}}}}\n  template:\n    metadata: {{labels: {{app: scale}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: main, image: busybox, command: [sleep, '1000000']}}]\n"
    )
}

/// Every pod of the cluster, all namespaces, as JSON.
fn all_pods(c: &Cluster) -> Vec<Value> {
    let r = c.emu(&["get", "pods", "-A", "-o", "json"]).ok();
    serde_json::from_str::<Value>(&r.stdout).expect("get pods -A -o json")["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the Deployment's `count` pods are all Ready and no other of its pods is left.
fn settled(c: &Cluster, count: usize) -> Vec<Value> {
    c.wait_for(&format!("{count} ready pods of the Deployment, no other"), Duration::from_secs(60), || {
        let pods = c.pods("app=scale");
        (pods.len() == count && pods.iter().all(emu_tests::is_ready)).then_some(pods)
    })
}

#[test]
fn a_cluster_of_300_pods_stays_usable() {
    let before = HostState::capture();
    let c = Cluster::up(CLUSTER, &["--nodes", &NODES.to_string()]);
    c.apply("scale.yaml", &deployment(PODS)).ok();
    let first: BTreeSet<String> = settled(&c, PODS).iter().map(name).collect();

    // emu get pods -A: one row per pod of every namespace, each Running.
    let everything = all_pods(&c);
    let table = c.emu(&["get", "pods", "-A"]).ok().stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let rows: BTreeSet<(String, String)> =
        lines.map(|l| l.split_whitespace().collect::<Vec<_>>()).map(|cells| (cells[0].to_string(), cells[1].to_string())).collect();
    let expected: BTreeSet<(String, String)> =
        everything.iter().map(|p| (p["metadata"]["namespace"].as_str().unwrap_or("").to_string(), name(p))).collect();
    assert_eq!(rows, expected, "emu get pods -A:\n{table}");
    assert!(first.iter().all(|p| rows.contains(&("default".to_string(), p.clone()))));
    assert_eq!(table.lines().skip(1).filter(|l| l.split_whitespace().nth(3) == Some("Running")).count(), everything.len(), "{table}");

    // emu describe node of the busiest node: every pod on it, in kubectl's layout.
    let mut by_node: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in &everything {
        by_node.entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string()).or_default().push(p);
    }
    let (node, on_node) = by_node.iter().max_by_key(|(_, pods)| pods.len()).expect("pods on nodes");
    assert!(on_node.len() >= PODS / NODES, "the busiest node has at least its share: {}", on_node.len());
    let described = c.emu(&["describe", "node", node]).ok().stdout;
    let section = described.split_once("Non-terminated Pods:").map(|(_, rest)| rest).expect("a Non-terminated Pods section");
    let (count_line, rest) = section.split_once('\n').expect("pods table");
    assert_eq!(count_line.trim(), format!("({} in total)", on_node.len()), "{described}");
    let pod_rows: Vec<Vec<&str>> = rest.lines().take_while(|l| l.starts_with("  ")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        pod_rows[0],
        ["Namespace", "Name", "CPU", "Requests", "CPU", "Limits", "Memory", "Requests", "Memory", "Limits", "Age"],
        "{described}"
    );
    let listed: BTreeSet<(String, String)> = pod_rows[2..].iter().map(|r| (r[0].to_string(), r[1].to_string())).collect();
    let there: BTreeSet<(String, String)> =
        on_node.iter().map(|p| (p["metadata"]["namespace"].as_str().unwrap_or("").to_string(), name(p))).collect();
    assert_eq!(listed, there, "{described}");
    assert!(described[described.find("Non-terminated Pods:").unwrap()..].contains("\nAllocated resources:\n"), "{described}");

    // A watch while the Deployment scales down and back up: every pod that goes is seen DELETED,
    // every new one ADDED and then Running, and the watch runs on without an error.
    let dir = c.scratch_dir();
    let (out, err) = (dir.join("watch.out"), dir.join("watch.err"));
    let mut watch = Command::new(emu_tests::emu_path())
        .args(["get", "pods", "-l", "app=scale", "-w", "--output-watch-events", "--cluster", CLUSTER])
        .env("KUBECONFIG", emu_tests::suite_kubeconfig())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("emu get pods -w");
    // The table of the PODS pods first: the watch is under way once it is printed.
    c.wait_for("the watch's first table", Duration::from_secs(20), || {
        (std::fs::read_to_string(&out).unwrap_or_default().lines().count() > PODS).then_some(())
    });
    c.apply("scale.yaml", &deployment(FEWER)).ok();
    let kept: BTreeSet<String> = settled(&c, FEWER).iter().map(name).collect();
    c.apply("scale.yaml", &deployment(PODS)).ok();
    let last: BTreeSet<String> = settled(&c, PODS).iter().map(name).collect();
    let gone: BTreeSet<&String> = first.difference(&kept).collect();
    let new: BTreeSet<&String> = last.difference(&kept).collect();
    assert_eq!((gone.len(), new.len()), (PODS - FEWER, PODS - FEWER));
    // Each pod's last line must show it Running; let the last events arrive.
    let lines = c.wait_for("every change in the watch", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mut deleted = BTreeSet::new();
        let mut last_status: BTreeMap<String, String> = BTreeMap::new();
        for cells in text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|c| c.len() >= 4) {
            match cells[0] {
                "DELETED" => {
                    deleted.insert(cells[1].to_string());
                }
                "ADDED" | "MODIFIED" => {
                    last_status.insert(cells[1].to_string(), cells[3].to_string());
                }
                _ => {}
            }
        }
        let all_gone = gone.iter().all(|p| deleted.contains(*p));
        let all_new_running = new.iter().all(|p| last_status.get(*p).is_some_and(|s| s == "Running"));
        let nothing_else_deleted = deleted.iter().all(|p| gone.contains(p));
        (all_gone && all_new_running && nothing_else_deleted).then_some(text)
    });
    assert!(watch.try_wait().unwrap().is_none(), "the watch ended during the churn:\n{lines}");
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "", "the watch printed an error");
    // Every event line names a pod of the Deployment, laid out as kubectl's --output-watch-events.
    let header: Vec<&str> = lines.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    for l in lines.lines().skip(1) {
        let event = l.split_whitespace().next().unwrap_or("");
        assert!(["ADDED", "MODIFIED", "DELETED"].contains(&event), "{l}");
    }

    // emu down (the guard's, which asserts it succeeds): nothing of the cluster is left, and the
    // host is as it was.
    drop(c);
    assert!(emu_mounts(CLUSTER).is_empty(), "mounts left: {:?}", emu_mounts(CLUSTER));
    assert!(emu_processes(CLUSTER).is_empty(), "processes left: {:?}", emu_processes(CLUSTER));
    let netns = Command::new("ip").args(["netns", "list"]).stderr(Stdio::null()).output().unwrap();
    let left: Vec<String> =
        String::from_utf8_lossy(&netns.stdout).lines().filter(|l| l.starts_with(&format!("emu-{CLUSTER}-"))).map(str::to_string).collect();
    assert!(left.is_empty(), "network namespaces left: {left:?}");
    assert!(emu_host::cgroup::cluster_dir(CLUSTER).is_ok_and(|d| !d.exists()), "the cluster's cgroup is left");
    assert!(!std::path::Path::new("/run/emu").join(CLUSTER).exists(), "/run/emu/{CLUSTER} is left");
    let after = HostState::capture();
    assert_eq!(before, after, "the host's network namespace changed");
}
