//! How large a pod's volumes may be (issue 19): their tmpfs is as large as the pod may use memory
//! (its memory limit, or the node's allocatable memory, as kubelet sizes memory-backed volumes),
//! and volumes that do not fit leave the pod in ContainerCreating with kubelet's `FailedMount`
//! event, a log that says so a few times rather than ten times a second, and a start once they
//! fit.

use emu_tests::{is_ready, name, Cluster};
use std::time::{Duration, Instant};

/// Bytes of each large ConfigMap: under the API's 1 MiB, six of them over 4 MiB.
const PART: usize = 1_000_000;

/// A ConfigMap `big-<i>` with one key `part-<i>` of `bytes` letters.
fn part(i: usize, bytes: usize) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big-{i}}}\ndata:\n  part-{i}: \"{}\"\n", "A".repeat(bytes))
}

/// A pod mounting the six ConfigMaps as one projected volume at /data, with `limits` as each
/// container's `resources`.
fn pod(name: &str, limits: &str) -> String {
    let sources: String = (0..6).map(|i| format!("      - configMap: {{name: big-{i}}}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    \
         command: [sleep, \"3600\"]\n    resources: {limits}\n    volumeMounts: [{{name: parts, mountPath: /data}}]\n  \
         volumes:\n  - name: parts\n    projected:\n      sources:\n{sources}"
    )
}

/// The size in KiB of the filesystem holding `path` in `pod`, as `df -k` shows it.
fn df_kib(c: &Cluster, pod: &str, path: &str) -> u64 {
    let out = c.emu(&["exec", pod, "--", "df", "-k", path]).ok().stdout;
    let line = out.lines().nth(1).unwrap_or_else(|| panic!("df -k {path} in {pod}: {out}"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("df -k {path} in {pod}: {out}"))
}

/// The agent's log lines about `pod`'s volumes.
fn volume_log_lines(c: &Cluster, pod: &str) -> Vec<String> {
    let root = std::path::PathBuf::from("/run/emu").join(&c.name).join("nodes");
    let mut lines = Vec::new();
    for node in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let log = strip_ansi(&std::fs::read_to_string(node.path().join("agent.log")).unwrap_or_default());
        lines.extend(log.lines().filter(|l| l.contains(&format!("pod={pod}")) && l.contains("volume")).map(String::from));
    }
    lines
}

/// `text` without its terminal colours (the daemons' log fields are styled).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            // CSI: ESC [ parameters, then a final letter.
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(ch);
        }
    }
    out
}

#[test]
fn volumes_are_as_large_as_the_pod_may_use_and_say_when_they_do_not_fit() {
    let c = Cluster::up("tvollimit", &["--nodes", "1"]);
    for i in 0..6 {
        c.apply(&format!("big-{i}.yaml"), &part(i, PART)).ok();
    }

    // Without a memory limit: the node's allocatable memory (2Gi, `emu get node -o yaml`), so
    // six ConfigMaps of a megabyte fit (the tmpfs was 5 MiB for these two volumes before).
    let allocatable = c.emu(&["get", "nodes", "-o", "jsonpath={.items[0].status.allocatable.memory}"]).ok().stdout;
    assert_eq!(allocatable.trim(), "2Gi");
    c.apply("roomy.yaml", &pod("roomy", "{}")).ok();
    c.ready_pod("roomy");
    assert_eq!(df_kib(&c, "roomy", "/data"), 2 * 1024 * 1024);
    let sizes = c.emu(&["exec", "roomy", "--", "sh", "-c", "cat /data/part-* | wc -c"]).ok().stdout;
    assert_eq!(sizes.trim(), (6 * PART).to_string());

    // With limits: their sum (32Mi + 16Mi), and the volumes still work as ever.
    c.emu(&["create", "secret", "generic", "creds", "--from-literal=user=admin"]).ok();
    c.emu(&["create", "configmap", "app", "--from-literal=app.ini=mode=test"]).ok();
    c.apply(
        "sized.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sized}
spec:
  containers:
  - name: a
    image: busybox
    command: [sleep, "3600"]
    resources: {limits: {memory: 32Mi}}
    volumeMounts: [{name: creds, mountPath: /etc/creds}, {name: config, mountPath: /etc/app}]
  - name: b
    image: busybox
    command: [sleep, "3600"]
    resources: {limits: {memory: 16Mi}, requests: {memory: 8Mi}}
  volumes:
  - {name: creds, secret: {secretName: creds}}
  - {name: config, configMap: {name: app}}
"#,
    )
    .ok();
    c.ready_pod("sized");
    assert_eq!(df_kib(&c, "sized", "/etc/creds"), 48 * 1024);
    let mounts = c.emu(&["exec", "sized", "-c", "a", "--", "cat", "/proc/mounts"]).ok().stdout;
    assert!(mounts.lines().any(|l| l.starts_with("tmpfs /etc/app tmpfs ro,") && l.contains("size=49152k")), "{mounts}");
    let files = c.emu(&["exec", "sized", "-c", "a", "--", "cat", "/etc/creds/user", "/etc/app/app.ini"]).ok().stdout;
    assert_eq!(files, "adminmode=test");

    // A 4Mi limit: the six megabytes do not fit. The pod waits with kubelet's event.
    c.apply("cramped.yaml", &pod("cramped", "{limits: {memory: 4Mi}}")).ok();
    let first = Instant::now();
    let message = r#"MountVolume.SetUp failed for volume "parts" : write parts/part-"#;
    let events = c.wait_for("a FailedMount event", Duration::from_secs(20), || {
        let out = c.emu(&["get", "events"]).stdout;
        out.lines().any(|l| l.contains("pod/cramped") && l.contains("FailedMount") && l.contains(message)).then_some(out)
    });
    let line = events.lines().find(|l| l.contains("pod/cramped")).unwrap();
    assert!(line.contains("Warning"), "{events}");
    assert!(
        line.ends_with(": no space left on device (the pod's volumes hold at most 4Mi, the pod's memory limit)"),
        "the event says what is full and what decides its size: {line}"
    );
    let described = c.emu(&["describe", "pod", "cramped"]).ok().stdout;
    assert!(
        described.lines().any(|l| l.contains("Warning") && l.contains("FailedMount") && l.contains("kubelet") && l.contains(message)),
        "{described}"
    );

    // Over ten seconds of failing, a few log lines (the retries back off as kubelet's do),
    // not one per pass; the event counts the repeats.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(first.elapsed()));
    let logged = volume_log_lines(&c, "cramped");
    println!("agent log lines about cramped's volumes in {:?}:\n{}", first.elapsed(), logged.join("\n"));
    assert!(!logged.is_empty() && logged.len() <= 6, "{} lines:\n{}", logged.len(), logged.join("\n"));
    assert!(logged.iter().all(|l| l.contains("no space left on device")), "{logged:?}");
    let pods = c.pods("");
    let cramped = pods.iter().find(|p| name(p) == "cramped").unwrap();
    assert_eq!(cramped["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating", "{cramped}");
    let described = c.emu(&["describe", "pod", "cramped"]).ok().stdout;
    let event = described.lines().find(|l| l.contains("FailedMount")).unwrap();
    assert!(event.contains("(x"), "the repeats are counted on one event: {event}");

    // Shrunk to three megabytes, they fit: the pod starts (the changed contents are tried at
    // once, not after the back-off) with a 4Mi volume.
    let shrunk = Instant::now();
    for i in 3..6 {
        c.apply(&format!("big-{i}.yaml"), &part(i, 10)).ok();
    }
    c.wait_for("cramped ready", Duration::from_secs(20), || c.pods("").into_iter().find(|p| name(p) == "cramped" && is_ready(p)));
    println!("cramped ready {:?} after the ConfigMaps shrank", shrunk.elapsed());
    assert_eq!(df_kib(&c, "cramped", "/data"), 4 * 1024);
    let sizes = c.emu(&["exec", "cramped", "--", "sh", "-c", "cat /data/part-* | wc -c"]).ok().stdout;
    assert_eq!(sizes.trim(), (3 * PART + 30).to_string());
}
