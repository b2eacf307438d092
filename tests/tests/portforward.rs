//! `emu port-forward` (issue 6): the host reaches a pod only through it, on 127.0.0.1.

use emu_tests::{emu_path, name, Cluster};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the forward if the test ends early.
struct Forward(Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn port_forward_to_a_service_and_losing_its_pod() {
    let c = Cluster::up("tportfwd", &["--nodes", "1"]);
    c.apply(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: my-nginx}\nspec:\n  replicas: 1\n  selector: {matchLabels: {run: my-nginx}}\n  \
         template:\n    metadata: {labels: {run: my-nginx}}\n    spec: {containers: [{name: nginx, image: nginx, ports: [{name: http, containerPort: 80}]}]}\n",
    )
    .ok();
    let pod = c.ready_pods("run=my-nginx", 1).remove(0);
    c.emu(&["expose", "deployment/my-nginx", "--port", "8080", "--target-port", "http"]).ok();

    let local = 20000 + std::process::id() % 10000;
    let mut child = Command::new(emu_path())
        .args(["port-forward", "service/my-nginx", &format!("{local}:8080"), "--cluster", &c.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emu port-forward");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let mut forward = Forward(child);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // The Service's port 8080 is the pod's named port http, 80.
    assert_eq!(first, format!("Forwarding from 127.0.0.1:{local} -> 80\n"));
    for _ in 0..2 {
        let page = Command::new("curl").args(["-sS", "-m", "5", &format!("http://127.0.0.1:{local}/")]).output().unwrap();
        assert!(String::from_utf8_lossy(&page.stdout).contains("Welcome to nginx!"), "{}", String::from_utf8_lossy(&page.stderr));
    }
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, format!("Handling connection for {local}\n"));

    // Its pod goes: the forward ends as kubectl's does.
    c.emu(&["delete", "pod", &name(&pod)]).ok();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = forward.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the forward outlived its pod");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    BufReader::new(stderr).read_line(&mut err).unwrap();
    assert_eq!(err, "error: lost connection to pod\n");
    // Only loopback.
    let r = c.emu(&["port-forward", "service/my-nginx", "8080", "--address", "0.0.0.0"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("loopback only"), "{}", r.stderr);
}
