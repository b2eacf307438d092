//! The tutorial's first section on a real emulated cluster: pods on two nodes, a flat pod network
//! without NAT, and pods that are isolated processes.

use emu_tests::Cluster;
use serde_json::Value;
use std::time::Duration;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

fn ip(p: &Value) -> String {
    p["status"]["podIP"].as_str().unwrap_or("").to_string()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or("").to_string()
}

#[test]
fn tutorial_pods_spread_and_talk_without_nat() {
    let c = Cluster::up("ttut", &[SCENARIO]);
    let pods = c.pods("run=my-nginx");
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));

    // Two different nodes, each pod's IP inside its node's pod CIDR.
    let nodes: Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    let cidr_of = |node: &str| -> String {
        nodes["items"].as_array().unwrap().iter().find(|n| n["metadata"]["name"] == node).unwrap()["spec"]["podCIDR"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let n0 = pods[0]["spec"]["nodeName"].as_str().unwrap();
    let n1 = pods[1]["spec"]["nodeName"].as_str().unwrap();
    assert_ne!(n0, n1, "the two replicas must be on different nodes");
    for p in &pods {
        let cidr = cidr_of(p["spec"]["nodeName"].as_str().unwrap());
        let prefix = cidr.trim_end_matches("0/24");
        assert!(ip(p).starts_with(prefix), "pod IP {} not in its node's CIDR {cidr}", ip(p));
    }

    // kubectl's layout for `get pods -l run=my-nginx -o wide`.
    let table = c.emu(&["get", "pods", "-l", "run=my-nginx", "-o", "wide"]).ok().stdout;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("NAME ") && header.contains("   READY   STATUS    RESTARTS   AGE   IP "), "header: {header:?}");
    assert!(header.contains("   NODE   ") && header.ends_with("NOMINATED NODE   READINESS GATES"), "header: {header:?}");
    for p in &pods {
        let row = table.lines().find(|l| l.starts_with(&name(p))).expect("row for pod");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[1..4], &["1/1", "Running", "0"], "row: {row}");
        assert_eq!(cols[5], ip(p));
        assert_eq!(cols[6], p["spec"]["nodeName"].as_str().unwrap());
    }
    assert!(table.lines().all(|l| !l.ends_with(' ')), "no trailing spaces");

    // Pod to pod across nodes: the page, and the client's own IP in the server's access log.
    let (a, b) = (&pods[0], &pods[1]);
    let out = c.emu(&["exec", &name(a), "--", "curl", "-s", "--max-time", "5", &format!("http://{}/", ip(b))]).ok().stdout;
    assert!(out.contains("Welcome to nginx!"), "curl output: {out}");
    let logs = c.wait_for("the access log line", Duration::from_secs(5), || {
        let l = c.emu(&["logs", &name(b)]).ok().stdout;
        l.contains(&ip(a)).then_some(l)
    });
    assert!(logs.contains("\"GET / HTTP/1.1\" 200"), "access log: {logs}");

    // Isolation: own hostname, own processes, own files, no network admin.
    assert_eq!(c.emu(&["exec", &name(a), "--", "hostname"]).ok().stdout.trim(), name(a));
    let ps = c.emu(&["exec", &name(a), "--", "sh", "-c", "ls /proc | grep -E '^[0-9]+$'"]).ok().stdout;
    let pids: Vec<&str> = ps.lines().collect();
    assert!(pids.contains(&"1"), "pid 1 (nginx) must be visible: {pids:?}");
    assert!(pids.len() < 10, "the pod sees only its own processes: {pids:?}");
    let comm = c.emu(&["exec", &name(a), "--", "cat", "/proc/1/comm"]).ok().stdout;
    assert_eq!(comm.trim(), "nginx");
    let host_file = c.emu(&["exec", &name(a), "--", "ls", env!("CARGO_MANIFEST_DIR")]);
    assert_ne!(host_file.code, 0, "the host's files must be invisible: {}", host_file.stdout);
    let link = c.emu(&["exec", &name(a), "--", "ip", "link", "add", "dummy0", "type", "dummy"]);
    assert_ne!(link.code, 0, "ip link add must fail without CAP_NET_ADMIN");
    assert!(link.stderr.contains("Operation not permitted"), "stderr: {}", link.stderr);
    // exec passes the exit code through.
    assert_eq!(c.emu(&["exec", &name(a), "--", "sh", "-c", "exit 7"]).code, 7);
}

#[test]
fn containers_of_a_pod_share_localhost() {
    let c = Cluster::up("tlocal", &["--nodes", "1"]);
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata: { name: two, labels: { app: two, }, }
spec:
  containers:
  - name: web
    image: nginx:1.25
  - name: client
    image: radial/busyboxplus:curl
    command: ["sh", "-c", "sleep 3600"]
"#;
    let r = c.apply("two.yaml", manifest).ok();
    assert_eq!(r.stdout.trim(), "pod/two created");
    c.wait_for("pod two Running", Duration::from_secs(20), || {
        let p = c.pods("app=two");
        (p.len() == 1
            && p[0]["status"]["phase"] == "Running"
            && p[0]["status"]["containerStatuses"].as_array().is_some_and(|cs| cs.iter().all(|s| s["ready"] == true)))
        .then_some(())
    });
    let out = c.emu(&["exec", "two", "-c", "client", "--", "curl", "-s", "http://localhost/"]).ok().stdout;
    assert!(out.contains("Welcome to nginx!"), "{out}");
    // NET_RAW is granted, as by container runtimes: ping works (to the node's side of the pod link).
    let pod = &c.pods("app=two")[0];
    let gateway = format!("{}.1", ip(pod).rsplit_once('.').unwrap().0);
    let ping = c.emu(&["exec", "two", "-c", "client", "--", "ping", "-c", "1", "-W", "2", &gateway]).ok().stdout;
    assert!(ping.contains("1 packets received"), "{ping}");
}

#[test]
fn restarts_replacements_and_scaling() {
    let c = Cluster::up("tlife", &[SCENARIO]);
    let pods = c.pods("run=my-nginx");
    let victim = name(&pods[0]);

    // Kill the container's main process: it restarts and RESTARTS counts up.
    let pid = emu_tests::container_pid(&c.name, &pods[0], "my-nginx");
    emu_tests::sigkill(pid);
    c.wait_for("a restart", Duration::from_secs(20), || {
        let p = c.pods("run=my-nginx").into_iter().find(|p| name(p) == victim)?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64() == Some(1) && p["status"]["containerStatuses"][0]["ready"] == true)
            .then_some(())
    });
    let table = c.emu(&["get", "pods", &victim]).ok().stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[3], "1", "RESTARTS: {table}");

    // Delete a pod of the Deployment: a new pod with a new name and IP replaces it.
    let before: Vec<(String, String)> = c.pods("run=my-nginx").iter().map(|p| (name(p), ip(p))).collect();
    let r = c.emu(&["delete", "pod", &victim]).ok();
    assert_eq!(r.stdout.trim(), format!("pod \"{victim}\" deleted"));
    let after = c.wait_for("a replacement pod", Duration::from_secs(30), || {
        let p = c.pods("run=my-nginx");
        (p.len() == 2 && p.iter().all(|p| p["status"]["phase"] == "Running" && !ip(p).is_empty())).then_some(p)
    });
    let replacement = after.iter().find(|p| !before.iter().any(|(n, _)| *n == name(p))).expect("a new pod");
    assert!(!before.iter().any(|(_, i)| *i == ip(replacement)), "new pod must have a new IP");

    // Scale to 0 and back to 2.
    assert_eq!(c.emu(&["scale", "deployment", "my-nginx", "--replicas=0"]).ok().stdout.trim(), "deployment.apps/my-nginx scaled");
    c.wait_for("no pods", Duration::from_secs(40), || c.pods("run=my-nginx").is_empty().then_some(()));
    assert_eq!(c.emu(&["scale", "deployment/my-nginx", "--replicas=2"]).ok().stdout.trim(), "deployment.apps/my-nginx scaled");
    let fresh = c.wait_for("two running pods", Duration::from_secs(30), || {
        let p = c.pods("run=my-nginx");
        (p.len() == 2 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(p)
    });
    assert!(fresh.iter().all(|p| !after.iter().any(|a| name(a) == name(p))), "scaling back creates new pods");
    let deploy = c.emu(&["get", "deployments"]).ok().stdout;
    assert!(deploy.lines().nth(1).unwrap().starts_with("my-nginx   2/2     2            2"), "{deploy}");
}
