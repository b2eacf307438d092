//! Daemons die and come back: the store persists, pods keep running, agents re-adopt their pods.

use emu_tests::{container_pid, daemon_pid, sigkill, Cluster};
use serde_json::Value;
use std::time::Duration;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

fn summary(pods: &[Value]) -> Vec<(String, String, String, i64)> {
    let mut v: Vec<_> = pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn controller_sigkill_keeps_objects_and_pods() {
    let c = Cluster::up("tctl", &[SCENARIO]);
    let pods = c.pods("");
    let pids: Vec<i32> = pods.iter().map(|p| container_pid(&c.name, p, "my-nginx")).collect();
    let deploy_before: Value = serde_json::from_str(&c.emu(&["get", "deployment", "my-nginx", "-o", "json"]).ok().stdout).unwrap();

    sigkill(daemon_pid(&c.name, "controller.pid"));
    assert_ne!(c.emu(&["get", "pods"]).code, 0, "the API is down while the controller is dead");
    c.emu(&["restart", "controller"]).ok();

    let deploy_after: Value = serde_json::from_str(&c.emu(&["get", "deployment", "my-nginx", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(deploy_before["metadata"]["uid"], deploy_after["metadata"]["uid"]);
    assert_eq!(deploy_before["metadata"]["creationTimestamp"], deploy_after["metadata"]["creationTimestamp"]);
    // Same pods, same IPs, no restarts, same processes.
    std::thread::sleep(Duration::from_secs(2));
    let after = c.pods("");
    assert_eq!(summary(&pods), summary(&after));
    let pids_after: Vec<i32> = after.iter().map(|p| container_pid(&c.name, p, "my-nginx")).collect();
    let mut a = pids.clone();
    let mut b = pids_after.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the containers never stopped");
    // The restarted controller still works: scaling creates a pod.
    c.emu(&["scale", "deployment", "my-nginx", "--replicas=3"]).ok();
    c.wait_for("a third pod Running", Duration::from_secs(30), || {
        let p = c.pods("run=my-nginx");
        (p.len() == 3 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
    // A live controller, with every agent and DNS pod watching, stops on SIGTERM by itself
    // (`emu restart` kills it only after 5 s): its watch streams end with it.
    let started = std::time::Instant::now();
    c.emu(&["restart", "controller"]).ok();
    assert!(started.elapsed() < Duration::from_secs(4), "restart took {:?}", started.elapsed());
    let log = std::fs::read_to_string(format!("/run/emu/{}/controller.log", c.name)).unwrap();
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    c.wait_for("pods listed again", Duration::from_secs(10), || (c.pods("run=my-nginx").len() == 3).then_some(()));
}

#[test]
fn agent_sigkill_readopts_pods() {
    let c = Cluster::up("tagent", &[SCENARIO]);
    let pods = c.pods("");
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let pid = container_pid(&c.name, &pods[0], "my-nginx");

    sigkill(daemon_pid(&c.name, &format!("nodes/{node}/agent.pid")));
    std::thread::sleep(Duration::from_millis(500));
    // The pod keeps serving while its agent is dead.
    let other = &pods[1];
    let url = format!("http://{}/", pods[0]["status"]["podIP"].as_str().unwrap());
    let out = c.emu(&["exec", other["metadata"]["name"].as_str().unwrap(), "--", "curl", "-s", "--max-time", "5", &url]).ok().stdout;
    assert!(out.contains("Welcome to nginx!"));

    c.emu(&["restart", "agent", &node]).ok();
    std::thread::sleep(Duration::from_secs(2));
    let after = c.pods("");
    assert_eq!(summary(&pods), summary(&after), "no duplicates, no restarts, same IPs");
    assert_eq!(container_pid(&c.name, &pods[0], "my-nginx"), pid, "the same container process");
    // The agent works again: a deleted pod is stopped and replaced.
    c.emu(&["delete", "pod", pods[0]["metadata"]["name"].as_str().unwrap()]).ok();
    c.wait_for("a replacement pod", Duration::from_secs(30), || {
        let p = c.pods("run=my-nginx");
        (p.len() == 2 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
    let shims = std::fs::read_dir(format!("/run/emu/{}/nodes/{node}/pods", c.name)).unwrap().count()
        + std::fs::read_dir(format!("/run/emu/{}/nodes/{}/pods", c.name, pods[1]["spec"]["nodeName"].as_str().unwrap())).unwrap().count();
    let all_pods = c.emu(&["get", "pods", "-A", "-o", "name"]).ok().stdout.lines().count();
    assert_eq!(shims, all_pods, "exactly one sandbox per pod (the DNS pods included)");
}
