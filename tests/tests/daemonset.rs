//! DaemonSets as kube-controller-manager runs them (issue 20, item 2), on a cluster of two
//! emulated hosts (`emu up --hosts 2 --nodes 3`: node-1 and node-2 on host-1, node-3 on host-2),
//! so that nodes can come and go: one pod on every node, none on a node with a NoSchedule taint
//! it does not tolerate (one once the taint goes), a rolling update that never has more than
//! maxUnavailable nodes without a ready pod, `emu rollout status|history`, `emu get ds` and
//! `emu describe ds` as the real kubectl prints them, a node removed (`emu node remove`) losing
//! its pod and a machine joining with one node more (`emu leave`, then `emu join` with
//! node-3 and node-4) gaining theirs.
//!
//! Nodes join only through `emu join`: a single-machine cluster has no command that adds a node,
//! so the test uses emulated hosts, as tests/tests/hosts.rs does.

mod kubectl_support;

use emu_tests::{is_ready, Cluster, Scratch};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "tds1";

fn agent(version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels: {{app: agent}}
spec:
  selector:
    matchLabels: {{app: agent}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: nginx
        image: nginx
        env: [{{name: VERSION, value: \"{version}\"}}]
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet: {{path: /, port: 80}}
          periodSeconds: 1
"
    )
}

fn daemon_set(c: &Cluster) -> Value {
    serde_json::from_str(&c.emu(&["get", "ds", "agent", "-o", "json"]).ok().stdout).unwrap()
}

/// The agent's pods that are not terminating.
fn live_pods(c: &Cluster) -> Vec<Value> {
    c.pods("app=agent").into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
}

fn node_of(p: &Value) -> String {
    p["spec"]["nodeName"].as_str().unwrap_or_default().to_string()
}

/// Waits until the agent runs one ready pod on each of `nodes` and on no other, and its status
/// says so; returns the pods.
fn one_ready_pod_on(c: &Cluster, nodes: &[&str]) -> Vec<Value> {
    let want: BTreeSet<String> = nodes.iter().map(|n| n.to_string()).collect();
    let started = Instant::now();
    loop {
        let all = c.pods("app=agent");
        let ready = live_pods(c).into_iter().filter(is_ready).collect::<Vec<_>>();
        let on: BTreeSet<String> = ready.iter().map(node_of).collect();
        let status = daemon_set(c)["status"].clone();
        let n = nodes.len() as i64;
        let settled = status["desiredNumberScheduled"] == n && status["numberAvailable"] == n && status["numberReady"] == n;
        if all.len() == nodes.len() && ready.len() == nodes.len() && on == want && settled {
            return ready;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let seen: Vec<(String, String, bool, bool)> = all
                .iter()
                .map(|p| (p["metadata"]["name"].to_string(), node_of(p), is_ready(p), p["metadata"]["deletionTimestamp"].is_null()))
                .collect();
            panic!("no single ready agent pod on each of {nodes:?} within 60 s: pods {seen:?}, status {status}\n{}", c.logs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn emu_inside_host(host: &str, args: &[&str]) -> emu_tests::Run {
    let mnt = format!("--mount=/run/emu/{CLUSTER}/hosts/{host}.mnt");
    let net = format!("--net=/run/netns/emu-{CLUSTER}-{host}");
    emu_tests::Run::from(
        Command::new("nsenter").args([&mnt, &net]).arg(emu_tests::emu_path()).args(args).env_remove("EMU_CLUSTER").output().unwrap(),
    )
}

/// A describe's text with the Events' ages blanked (they tick between two runs).
fn without_event_ages(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_events = false;
    for line in text.lines() {
        if line.starts_with("Events:") {
            in_events = true;
        }
        if in_events && (line.starts_with("  Normal") || line.starts_with("  Warning")) {
            let cells: Vec<&str> = line.split_whitespace().collect();
            out.push(format!("{} {} _ {}", cells[0], cells[1], cells[3..].join(" ")));
        } else if in_events && line.starts_with("  ----") {
            out.push("----".into());
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

#[test]
fn a_daemon_set_runs_one_pod_on_every_node() {
    let c = Cluster::up(CLUSTER, &["--hosts", "2", "--nodes", "3"]);
    let dir = Scratch(std::env::temp_dir().join(format!("emu-{CLUSTER}-kubectl-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("kubeconfig"), c.emu(&["kubeconfig"]).ok().stdout).unwrap();
    let kubectl = |args: &[&str]| kubectl_support::kubectl(&dir.0, Duration::from_secs(60), args);

    // A node with a taint the pods do not tolerate gets none; once the taint goes, it gets one.
    c.emu(&["patch", "node", "node-2", "-p", r#"{"spec":{"taints":[{"key":"dedicated","value":"db","effect":"NoSchedule"}]}}"#]).ok();
    c.apply("agent.yaml", &agent("1")).ok();
    one_ready_pod_on(&c, &["node-1", "node-3"]);
    assert_eq!(daemon_set(&c)["status"]["desiredNumberScheduled"], 2);
    c.emu(&["patch", "node", "node-2", "-p", r#"{"spec":{"taints":null}}"#]).ok();
    let pods = one_ready_pod_on(&c, &["node-1", "node-2", "node-3"]);

    // Each pod pinned to its node by node affinity (the scheduler bound it), with the daemon
    // tolerations and the revision's labels; the revision is a ControllerRevision.
    let ds = daemon_set(&c);
    for p in &pods {
        let terms = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(terms[0]["matchFields"][0]["values"][0], p["spec"]["nodeName"], "{p}");
        let tolerations = p["spec"]["tolerations"].to_string();
        assert!(tolerations.contains("node.kubernetes.io/unschedulable") && tolerations.contains("node.kubernetes.io/unreachable"), "{p}");
        assert_eq!(p["metadata"]["labels"]["pod-template-generation"], "1", "{p}");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    }
    let hash = pods[0]["metadata"]["labels"]["controller-revision-hash"].as_str().unwrap().to_string();
    let revision: Value =
        serde_json::from_str(&c.emu(&["get", "controllerrevision", &format!("agent-{hash}"), "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(revision["revision"], 1, "{revision}");
    assert_eq!(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1, "defaults: {ds}");
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    let status = &ds["status"];
    for (k, v) in [("desiredNumberScheduled", 3), ("currentNumberScheduled", 3), ("updatedNumberScheduled", 3), ("numberMisscheduled", 0)] {
        assert_eq!(status[k], v, "{k}: {status}");
    }
    let done = c.emu(&["rollout", "status", "ds/agent", "--timeout", "30s"]).ok().stdout;
    assert_eq!(done, "daemon set \"agent\" successfully rolled out\n");

    // `get ds` and `describe ds`, emu's and kubectl's, of the same cluster.
    let row = |t: &str| {
        t.lines().map(|l| l.split_whitespace().filter(|c| !emu_tests::is_age(c)).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>()
    };
    let ours = c.emu(&["get", "ds", "-o", "wide"]).ok().stdout;
    let theirs = kubectl(&["get", "ds", "-o", "wide"]).ok().stdout;
    println!("emu get ds -o wide:\n{ours}");
    assert_eq!(row(&ours), row(&theirs), "kubectl:\n{theirs}");
    let ours = c.emu(&["describe", "ds", "agent"]).ok().stdout;
    let theirs = kubectl(&["describe", "ds", "agent"]).ok().stdout;
    println!("emu describe ds agent:\n{ours}");
    assert_eq!(without_event_ages(&ours), without_event_ages(&theirs), "kubectl:\n{theirs}");
    assert!(ours.contains("Desired Number of Nodes Scheduled: 3\n") && ours.contains("Created pod: agent-"), "{ours}");

    // Refused as kube-apiserver refuses them: a restartPolicy other than Always, a selector
    // changed; the kubectl apply of the same gets the same words.
    let never = agent("1")
        .replace("      terminationGracePeriodSeconds: 2\n", "      terminationGracePeriodSeconds: 2\n      restartPolicy: Never\n");
    let r = c.apply("never.yaml", &never);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#),
        "{}",
        r.stderr
    );
    let moved = agent("1")
        .replace("    matchLabels: {app: agent}", "    matchLabels: {app: agent, tier: node}")
        .replace("    metadata:\n      labels: {app: agent}", "    metadata:\n      labels: {app: agent, tier: node}");
    let r = c.apply("moved.yaml", &moved);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("The DaemonSet \"agent\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"tier\":\"node\"}"), "{}", r.stderr);
    assert!(r.stderr.contains(": field is immutable"), "{}", r.stderr);
    let path = c.scratch_dir().join("moved.yaml");
    let theirs = kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        theirs
            .stderr
            .contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"tier\":\"node\"}"),
        "{}",
        theirs.stderr
    );

    // A rolling update: one node at a time without a ready pod (maxUnavailable 1), while
    // `emu rollout status` follows it.
    c.apply("agent.yaml", &agent("2")).ok();
    let follow = Command::new(emu_tests::emu_path())
        .args(["rollout", "status", "daemonset/agent", "--timeout", "120s", "--cluster", CLUSTER])
        .env_remove("EMU_CLUSTER")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut worst = 3;
    loop {
        let live = live_pods(&c);
        let ready = live.iter().filter(|p| is_ready(p)).count();
        worst = worst.min(ready);
        let updated = live.iter().filter(|p| is_ready(p) && p["metadata"]["labels"]["pod-template-generation"] == "2").count();
        if updated == 3 && live.len() == 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "rolling update stuck: {live:?}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("rolling update of 3 nodes: {:?}, at least {worst} ready pods throughout", started.elapsed());
    assert!(worst >= 2, "maxUnavailable 1: at least 2 of 3 nodes kept a ready pod, saw {worst}");
    let out = follow.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    println!("emu rollout status daemonset/agent:\n{lines}");
    assert!(out.status.success(), "{lines}");
    assert!(lines.contains("Waiting for daemon set \"agent\" rollout to finish: "), "{lines}");
    assert!(lines.ends_with("daemon set \"agent\" successfully rolled out\n"), "{lines}");
    let theirs = kubectl(&["rollout", "status", "daemonset/agent", "--timeout", "60s"]).ok().stdout;
    assert_eq!(theirs, "daemon set \"agent\" successfully rolled out\n");
    let history = c.emu(&["rollout", "history", "ds/agent"]).ok().stdout;
    assert_eq!(history, kubectl(&["rollout", "history", "ds/agent"]).ok().stdout);
    assert!(history.contains("\n1         <none>\n2         <none>\n"), "{history}");

    // Undo: revision 1's template back (as revision 3), its pods labelled with its hash again.
    assert_eq!(c.emu(&["rollout", "undo", "ds/agent"]).ok().stdout, "daemonset.apps/agent rolled back\n");
    c.wait_for("revision 1's pods back", Duration::from_secs(60), || {
        let live = live_pods(&c);
        (live.len() == 3 && live.iter().all(|p| is_ready(p) && p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str()))
            .then_some(())
    });
    let history = c.emu(&["rollout", "history", "ds/agent"]).ok().stdout;
    assert!(history.contains("\n2         <none>\n3         <none>\n"), "{history}");

    // A node removed loses its pod.
    c.emu(&["node", "remove", "node-2"]).ok();
    one_ready_pod_on(&c, &["node-1", "node-3"]);

    // host-2 leaves (node-3's pod goes with it), then joins with one node more: both get one.
    let r = emu_inside_host("host-2", &["leave"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    one_ready_pod_on(&c, &["node-1"]);
    let command = c.emu(&["token", "create", "--print-join-command"]).ok().stdout;
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--host", "host-2", "--node", "node-3", "--node", "node-4"]);
    let r = emu_inside_host("host-2", &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let pods = one_ready_pod_on(&c, &["node-1", "node-3", "node-4"]);
    assert!(
        pods.iter().all(|p| p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str()),
        "new nodes get the current template"
    );
}
