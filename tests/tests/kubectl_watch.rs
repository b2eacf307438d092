//! The real kubectl watches an emu cluster over the REST API (issue 17): `kubectl get pods -w`
//! prints a pod created meanwhile, `kubectl get pod x -w` follows one pod to its deletion,
//! `kubectl wait --for=delete` returns when the pod is gone, and a watch from a version the
//! controller no longer keeps gets the ERROR event with kube-apiserver's 410 Expired.
//!
//! kubectl runs on the host with the kubeconfig `emu kubeconfig` prints, a discovery cache of
//! its own, and always under a deadline: a stream that never ends cannot hang the suite.

use emu_tests::{Cluster, Run};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A directory for the test's files, removed on drop, also when the test fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kubectl_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECACHEDIR", dir.join("cache"));
    cmd
}

/// `kubectl ARGS` to its end, killed after `limit`.
fn kubectl(dir: &Path, limit: Duration, args: &[&str]) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &limit.as_secs().to_string()]);
    let inner = kubectl_cmd(dir, args);
    cmd.arg(inner.get_program()).args(inner.get_args()).env_remove("KUBECONFIG").env("KUBECACHEDIR", dir.join("cache"));
    Run::from(cmd.output().expect("running kubectl"))
}

/// A kubectl left running (a watch): its output lines as they come; killed on drop.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(dir: &Path, args: &[&str]) -> Streaming {
        let mut child = kubectl_cmd(dir, args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("starting kubectl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines, seen: Vec::new() }
    }

    /// Waits up to `limit` for a line `f` accepts; panics with what came otherwise.
    fn expect(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what} within {limit:?}; kubectl printed:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: watched\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n"
    )
}

#[test]
fn kubectl_watches_pods() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tkwatch-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let c = Cluster::up("tkwatch", &[]);
    std::fs::write(dir.0.join("kubeconfig"), c.emu(&["kubeconfig"]).ok().stdout).unwrap();
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
