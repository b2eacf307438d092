//! The real kubectl watches an emu cluster over the REST API (issue 17): `kubectl get pods -w`
//! prints a pod created meanwhile, `kubectl get pod x -w` follows one pod to its deletion,
//! `kubectl wait --for=delete` returns when the pod is gone, and a watch from a version the
//! controller no longer keeps gets the ERROR event with kube-apiserver's 410 Expired.
//!
//! kubectl runs on the host with the kubeconfig `emu kubeconfig` prints, a discovery cache of
//! its own, and always under a deadline: a stream that never ends cannot hang the suite.

mod kubectl_support;

use kubectl_support::{kubectl, Streaming};
use std::time::Duration;

fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: watched\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n"
    )
}

#[test]
fn kubectl_watches_pods() {
    let (c, dir) = kubectl_support::cluster("tkwatch");
    let d = dir.0.as_path();
    let short = Duration::from_secs(30);

    // A list, then the events after it: a pod created meanwhile shows up.
    let mut all = Streaming::start(d, &["get", "pods", "-w"]);
    // kubectl says "No resources found" on stderr and waits; give it time to start watching.
    std::thread::sleep(Duration::from_secs(2));
    c.apply("w1.yaml", &pod_yaml("w1")).ok();
    all.expect("w1", short, |l| l.starts_with("w1 "));
    all.expect("w1 Running", short, |l| l.starts_with("w1 ") && l.contains("Running"));
    c.ready_pod("w1");

    // One pod: its table, then its changes until it is gone.
    let mut one = Streaming::start(d, &["get", "pod", "w1", "-w"]);
    one.expect("the pod's table", short, |l| l.starts_with("w1 "));
    let wait = {
        let d = d.to_path_buf();
        std::thread::spawn(move || kubectl(&d, Duration::from_secs(60), &["wait", "--for=delete", "pod/w1", "--timeout=50s"]))
    };
    std::thread::sleep(Duration::from_secs(2));
    c.emu(&["delete", "pod", "w1", "--wait=false"]).ok();
    one.expect("w1 Terminating", short, |l| l.starts_with("w1 ") && l.contains("Terminating"));
    all.expect("w1 Terminating", short, |l| l.starts_with("w1 ") && l.contains("Terminating"));
    let waited = wait.join().unwrap();
    assert_eq!(waited.code, 0, "kubectl wait --for=delete\nstdout:\n{}\nstderr:\n{}", waited.stdout, waited.stderr);
    assert!(waited.stdout.contains("pod/w1 condition met"), "{}", waited.stdout);
    drop((all, one));

    // The raw stream: newline-terminated events, the first as ADDED for a current object.
    c.apply("w2.yaml", &pod_yaml("w2")).ok();
    let raw = kubectl(d, short, &["get", "--raw", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=2&labelSelector=app%3Dwatched"]);
    assert_eq!(raw.code, 0, "{}{}", raw.stdout, raw.stderr);
    let first: serde_json::Value = serde_json::from_str(raw.stdout.lines().next().unwrap()).unwrap();
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("w2")), "{}", raw.stdout);

    // A restarted controller keeps no history from before: a watch from version 1 is too old.
    c.emu(&["restart", "controller"]).ok();
    let oldest = c.wait_for("the API after the restart", short, || {
        let r = kubectl(d, short, &["get", "--raw", "/api/v1/namespaces/default/pods"]);
        let list: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
        list["metadata"]["resourceVersion"].as_str().map(str::to_string)
    });
    let raw = kubectl(d, short, &["get", "--raw", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=1"]);
    assert_eq!(raw.code, 0, "{}{}", raw.stdout, raw.stderr);
    let lines: Vec<&str> = raw.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", raw.stdout);
    let e: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(
        (e["object"]["kind"].as_str(), e["object"]["reason"].as_str(), e["object"]["code"].as_i64()),
        (Some("Status"), Some("Expired"), Some(410))
    );
    let message = e["object"]["message"].as_str().unwrap();
    assert!(message.starts_with("too old resource version: 1 (") && oldest.parse::<u64>().is_ok(), "{message}");
}
