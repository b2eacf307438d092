//! Bad input gets a clear error and changes nothing.

use emu_tests::{emu, emu_path, Cluster};
use std::path::PathBuf;
use std::time::Duration;

thread_local! {
    /// The calling test's own directory, removed when its thread (the test) ends.
    static SCRATCH: emu_tests::Scratch = {
        let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
        emu_tests::Scratch(std::env::temp_dir().join(format!("emu-bad-{}-{test}", std::process::id())))
    };
}

/// Writes `text` to the file `name` in the calling test's own directory.
fn write(name: &str, text: &str) -> PathBuf {
    let dir = SCRATCH.with(|s| s.0.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn nothing_left(cluster: &str) {
    assert!(!std::path::Path::new(&format!("/run/emu/{cluster}")).exists(), "runtime dir left behind");
    let out = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&format!("emu-{cluster}-")), "namespaces left behind");
}

#[test]
fn bad_scenarios_change_nothing() {
    emu_tests::require_root();
    // A scenario naming a missing manifest file.
    let s = write("missing.yaml", "nodes: 2\nmanifests:\n  - does-not-exist.yaml\n");
    let r = emu(&["up", "--cluster", "tbad1", s.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("manifests[0]") && r.stderr.contains("does-not-exist.yaml") && r.stderr.contains("does not exist"),
        "{}",
        r.stderr
    );
    nothing_left("tbad1");

    // Malformed YAML: the document number and line.
    write(
        "broken.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [b\n",
    );
    let s = write("s-broken.yaml", "nodes: 1\nmanifests: [broken.yaml]\n");
    let r = emu(&["up", "--cluster", "tbad2", s.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("broken.yaml") && r.stderr.contains("document 2") && r.stderr.contains("line"), "{}", r.stderr);
    nothing_left("tbad2");

    // Unknown kind.
    write("kind.yaml", "apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n");
    let s = write("s-kind.yaml", "nodes: 1\nmanifests: [kind.yaml]\n");
    let r = emu(&["up", "--cluster", "tbad3", s.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no matches for kind \"Frobnicator\" in version \"v1\""), "{}", r.stderr);
    nothing_left("tbad3");

    // Selector that does not match the template labels: Kubernetes' message.
    write(
        "sel.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {run: web}}\n  template:\n    metadata: {labels: {run: other}}\n    spec:\n      containers: [{name: web, image: nginx}]\n",
    );
    let s = write("s-sel.yaml", "nodes: 1\nmanifests: [sel.yaml]\n");
    let r = emu(&["up", "--cluster", "tbad4", s.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("The Deployment \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"run\":\"other\"}: `selector` does not match template `labels`"),
        "{}",
        r.stderr
    );
    nothing_left("tbad4");
}

#[test]
fn bad_manifests_against_a_running_cluster() {
    let c = Cluster::up("tbadrun", &["--nodes", "1"]);
    // Missing containers.
    let p = write("nocontainers.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec: {}\n");
    let r = c.emu(&["apply", "-f", p.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("The Pod \"empty\" is invalid") && r.stderr.contains("spec.containers: Required value"), "{}", r.stderr);
    // A multi-document file with one bad document creates nothing.
    let p = write(
        "half.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: half}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {}\n",
    );
    assert_ne!(c.emu(&["apply", "-f", p.to_str().unwrap()]).code, 0);
    let ns = c.emu(&["get", "namespaces"]).ok().stdout;
    assert!(!ns.contains("half"), "nothing applied: {ns}");

    // A ConfigMap over 1 MiB (as JSON, which has no byte budget of its own) and a Secret: refused
    // with kube-apiserver's messages, nothing stored, listings still work (issue 19).
    let huge =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge1"}, "data": {"k": "A".repeat(20 << 20)}});
    let p = write("huge1.json", &huge.to_string());
    let r = c.emu(&["apply", "-f", p.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("The ConfigMap \"huge1\" is invalid: []: Too long: may not be more than 1048576 bytes"), "{}", r.stderr);
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "huge2"}, "stringData": {"k": "A".repeat((1 << 20) + 1)}});
    let p = write("huge2.json", &secret.to_string());
    let r = c.emu(&["apply", "-f", p.to_str().unwrap()]);
    assert!(r.stderr.contains("The Secret \"huge2\" is invalid: data: Too long: may not be more than 1048576 bytes"), "{}", r.stderr);
    let listed = c.emu(&["get", "cm,secrets", "-A"]).ok().stdout;
    assert!(!listed.contains("huge1") && !listed.contains("huge2"), "{listed}");

    // An unknown image: the pod shows ErrImagePull, and the message lists the catalog.
    let r = c.emu(&["run", "ghost", "--image=example.com/no-such-image:1"]).ok();
    assert_eq!(r.stdout.trim(), "pod/ghost created");
    let pod = c.wait_for("ErrImagePull", Duration::from_secs(20), || {
        c.pods("run=ghost").into_iter().find(|p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull")
    });
    let msg = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("nginx") && msg.contains("busybox"), "message lists the catalog: {msg}");
    let table = c.emu(&["get", "pods", "ghost"]).ok().stdout;
    assert!(table.contains("ErrImagePull"), "{table}");
}

#[test]
fn not_root_gets_one_line() {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(emu_path())
        .args(["get", "pods"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("must run as root") && err.contains("sudo"), "{err}");
}
