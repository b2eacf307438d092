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

/// Paths that would leave a volume, and fields emu cannot honour, are refused at admission with
/// kube-apiserver's messages (emu's own, Forbidden, for what Kubernetes allows but emu does not
/// do), for a Pod and a Deployment's template alike, and nothing is created (issue 19).
#[test]
fn unsupported_and_escaping_pod_fields_are_refused() {
    let c = Cluster::up("tbadpod", &["--nodes", "1"]);
    let pod = |name: &str, spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{spec}");
    let web = "  containers:\n  - name: web\n    image: nginx\n";
    let cm = "  volumes:\n  - name: cm\n    configMap:\n      name: c\n";
    let cases = [
        (
            "items",
            format!("{web}  volumes:\n  - name: cm\n    configMap:\n      name: c\n      items: [{{key: k, path: ../../../../tmp/x}}]\n"),
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../../../../tmp/x\": must not contain '..'",
        ),
        (
            "subpath",
            format!("{web}    volumeMounts: [{{name: cm, mountPath: /etc/x, subPath: ../../etc}}]\n{cm}"),
            "spec.containers[0].volumeMounts.subPath: Invalid value: \"../../etc\": must not contain '..'",
        ),
        (
            "hostnetwork",
            format!("  hostNetwork: true\n{web}"),
            "spec.hostNetwork: Forbidden: emu does not support host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service",
        ),
        (
            "hostpid",
            format!("  hostPID: true\n{web}"),
            "spec.hostPID: Forbidden: emu does not support sharing the host's process namespace: remove hostPID (or set it to false)",
        ),
        (
            "hostipc",
            format!("  hostIPC: true\n{web}"),
            "spec.hostIPC: Forbidden: emu does not support sharing the host's IPC namespace: remove hostIPC (or set it to false)",
        ),
        (
            "hostpath",
            format!("{web}    volumeMounts: [{{name: host, mountPath: /host}}]\n  volumes:\n  - name: host\n    hostPath: {{path: /}}\n"),
            "spec.volumes[0].hostPath: Forbidden: emu does not support hostPath volumes: put the files in a ConfigMap or Secret and mount that instead",
        ),
        (
            "privileged",
            format!("{web}    securityContext: {{privileged: true}}\n"),
            "spec.containers[0].securityContext.privileged: Forbidden: emu does not support privileged containers: remove privileged (or set it to false)",
        ),
        (
            "capabilities",
            format!("{web}    securityContext: {{capabilities: {{add: [NET_ADMIN]}}}}\n"),
            "spec.containers[0].securityContext.capabilities.add: Forbidden: emu does not support adding capabilities beyond the container runtime's default set (\"NET_ADMIN\"): remove them from capabilities.add",
        ),
        (
            "hostport",
            format!("{web}    ports: [{{containerPort: 80, hostPort: 8080}}]\n"),
            "spec.containers[0].ports[0].hostPort: Forbidden: emu does not support hostPort: remove it and reach the port through a NodePort Service instead",
        ),
    ];
    for (name, spec, cause) in &cases {
        let r = c.apply(&format!("{name}.yaml"), &pod(name, spec));
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert_eq!(r.stderr, format!("The Pod {name:?} is invalid: {cause}\n"));
    }
    // A Deployment's template is a pod's spec: refused the same way, at its own path.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      hostNetwork: true\n      containers: [{name: web, image: nginx, ports: [{containerPort: 80, hostPort: 80}]}]\n";
    let r = c.apply("deployment.yaml", deployment);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "The Deployment \"web\" is invalid: \n\
         * spec.template.spec.containers[0].ports[0].hostPort: Forbidden: emu does not support hostPort: remove it and reach the port through a NodePort Service instead\n\
         * spec.template.spec.hostNetwork: Forbidden: emu does not support host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service\n"
    );
    let listed = c.emu(&["get", "pods,deployments,replicasets", "-o", "name"]).ok();
    assert_eq!(listed.stdout, "", "nothing created");

    // The same fields switched off, and capabilities a container has anyway, are accepted.
    let off = pod(
        "off",
        "  hostNetwork: false\n  hostPID: false\n  hostIPC: false\n  containers:\n  - name: web\n    image: nginx\n    ports: [{containerPort: 80, hostPort: 0}]\n    securityContext:\n      privileged: false\n      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}\n",
    );
    assert_eq!(c.apply("off.yaml", &off).ok().stdout, "pod/off created\n");
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

/// What the probe of issue 19 found refused stays refused, with an error and nothing stored: a
/// YAML alias bomb (a billion laughs), nesting 10,000 deep in YAML and 100,000 deep in JSON. The
/// CLI ends with an error, not a crash, and the cluster keeps answering.
#[test]
fn bombs_and_deep_nesting_are_refused_and_change_nothing() {
    let c = Cluster::up("tbadbomb", &["--nodes", "1"]);
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nlaughs:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        bomb += &format!("  l{i}: &l{i} [{}]\n", [prev.as_str(); 10].join(", "));
    }
    let deep_yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\nx: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let deep_json = format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {{\"name\": \"deepj\"}}, \"x\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (file, text) in [("bomb.yaml", bomb), ("deep.yaml", deep_yaml), ("deep.json", deep_json)] {
        let p = write(file, &text);
        let r = c.emu(&["apply", "-f", p.to_str().unwrap()]);
        // An exit code of 1 (an error said), not a signal's (-1) or a stack overflow's abort.
        assert_eq!(r.code, 1, "{file}: stdout {} stderr {}", r.stdout, r.stderr);
        assert!(r.stderr.starts_with("error:"), "{file}: {}", r.stderr);
    }
    let listed = c.emu(&["get", "configmaps"]).ok().stdout;
    assert!(!listed.contains("bomb") && !listed.contains("deep"), "{listed}");
}
