//! Secret and ConfigMap volumes (issue 5): the files, their layout and modes, tmpfs, read-only,
//! updates reaching running pods atomically, and pods waiting for what they mount.

use emu_tests::{emu_mounts, Cluster};
use std::time::{Duration, Instant};

const SECRET_VALUE: &str = "s3cr3t-Vol-9f2c";

/// A pod's directory on its node, as the host sees it.
fn pod_dir(c: &Cluster, pod: &serde_json::Value) -> std::path::PathBuf {
    std::path::PathBuf::from("/run/emu")
        .join(&c.name)
        .join("nodes")
        .join(pod["spec"]["nodeName"].as_str().unwrap())
        .join("pods")
        .join(pod["metadata"]["uid"].as_str().unwrap())
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(e.path().display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn secret_and_configmap_volumes_are_read_only_tmpfs_files() {
    let c = Cluster::up("tvols", &["--nodes", "1"]);
    c.emu(&["create", "secret", "generic", "creds", "--from-literal=user=admin", &format!("--from-literal=pass={SECRET_VALUE}")]).ok();
    c.emu(&["create", "configmap", "app", "--from-literal=app.ini=[main]\nmode=test\n"]).ok();
    c.apply(
        "vols.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: vols}
spec:
  containers:
  - name: shell
    image: busybox
    # The value also reaches the command line ($(PASS) is expanded), which must not be logged.
    command: ["sh", "-c", "sleep 3600 # $(PASS)"]
    env: [{name: PASS, valueFrom: {secretKeyRef: {name: creds, key: pass}}}]
    volumeMounts:
    - {name: creds, mountPath: /etc/creds}
    - {name: picked, mountPath: /etc/picked}
    - {name: config, mountPath: /var/run/config}
    - {name: config, mountPath: /etc/app.ini, subPath: app.ini}
    - {name: maybe, mountPath: /etc/maybe}
  volumes:
  - {name: creds, secret: {secretName: creds}}
  - name: picked
    secret:
      secretName: creds
      defaultMode: 0400
      items:
      - {key: pass, path: nested/pass.txt, mode: 0440}
      - {key: user, path: user.txt}
  - {name: config, configMap: {name: app}}
  - {name: maybe, secret: {secretName: not-there, optional: true}}
"#,
    )
    .ok();
    let pod = c.ready_pod("vols");
    let sh = |script: &str| c.emu(&["exec", "vols", "--", "sh", "-c", script]);

    // VOL-1: one file per key, the decoded value, no newline added.
    assert_eq!(sh("cat /etc/creds/pass").ok().stdout, SECRET_VALUE);
    assert_eq!(sh("cat /etc/creds/user").ok().stdout, "admin");
    // VOL-4: symlinks into ..data, which points at a hidden version directory.
    let listing = sh("ls -la /etc/creds").ok().stdout;
    assert!(listing.contains("pass -> ..data/pass") && listing.contains("user -> ..data/user"), "{listing}");
    assert!(listing.lines().any(|l| l.contains("..data -> ..20")), "{listing}");
    // VOL-3: mode 0644 by default, tmpfs, read-only even for root, and no remounting.
    assert_eq!(sh("stat -L -c %a /etc/creds/pass /etc/creds/user").ok().stdout, "644\n644\n");
    assert_eq!(sh("stat -f -c %T /etc/creds").ok().stdout.trim(), "tmpfs");
    let write = sh("echo x > /etc/creds/pass");
    assert_ne!(write.code, 0);
    assert!(write.stderr.contains("Read-only file system"), "{}", write.stderr);
    assert_ne!(sh("touch /etc/creds/new").code, 0);
    let remount = sh("mount -o remount,rw /etc/creds");
    assert_ne!(remount.code, 0, "a container must not remount its secrets");
    assert!(remount.stderr.contains("denied") || remount.stderr.contains("not permitted"), "{}", remount.stderr);
    assert_eq!(sh("cat /etc/creds/pass").ok().stdout, SECRET_VALUE);

    // VOL-2: items at their paths with their modes; defaultMode for the others.
    assert_eq!(sh("cat /etc/picked/nested/pass.txt").ok().stdout, SECRET_VALUE);
    assert_eq!(sh("stat -L -c %a /etc/picked/nested/pass.txt /etc/picked/user.txt").ok().stdout, "440\n400\n");
    assert_eq!(sh("ls /etc/picked").ok().stdout, "nested\nuser.txt\n");
    // A ConfigMap under /var/run (a symlink to /run in the image), and one key by subPath.
    assert_eq!(sh("cat /var/run/config/app.ini").ok().stdout, "[main]\nmode=test\n");
    assert_eq!(sh("cat /etc/app.ini").ok().stdout, "[main]\nmode=test\n");
    // An optional Secret that does not exist: an empty directory.
    assert_eq!(sh("ls -A /etc/maybe | grep -v '^\\.\\.'").stdout, "");

    // The host never sees the volumes: no mount of them, nothing under the pod's directory.
    let mounts = emu_mounts(&c.name);
    assert!(!mounts.iter().any(|m| m.contains("/volumes")), "{mounts:?}");
    let dir = pod_dir(&c, &pod);
    // VOL-6: stringData is merged into data and never read back; bad base64 creates nothing.
    c.apply(
        "strings.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: strings}\ndata: {a: YQ==, b: Yg==}\nstringData: {b: B, c: c}\n",
    )
    .ok();
    let read: serde_json::Value = serde_json::from_str(&c.emu(&["get", "secret", "strings", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(read["data"], serde_json::json!({"a": "YQ==", "b": "Qg==", "c": "Yw=="}));
    assert!(read.get("stringData").is_none());
    let bad = c.apply("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {x: \"c2VjcmV0LXZhbHVl!!\"}\n");
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 16"),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains("c2VjcmV0"), "the value is not echoed: {}", bad.stderr);
    assert_ne!(c.emu(&["get", "secret", "bad"]).code, 0);

    // VOL-7: a Secret's type never changes; a bad update anywhere in a manifest changes nothing.
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata: {a: b}\n---\n\
                apiVersion: v1\nkind: Secret\nmetadata: {name: strings}\ntype: kubernetes.io/tls\ndata: {tls.crt: YQ==, tls.key: YQ==}\n";
    let r = c.apply("both.yaml", both);
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "The Secret \"strings\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable")
    );
    assert_ne!(c.emu(&["get", "configmap", "fresh"]).code, 0, "nothing of the manifest was applied");
    c.apply("frozen.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: b}\n").ok();
    let r = c.apply("frozen.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: c}\n");
    assert!(r.stderr.contains("data: Forbidden: field is immutable when `immutable` is set"), "{}", r.stderr);

    // In clear, the value is only in the pod's own spec and state (its variables, as a
    // container runtime keeps them), readable by root only; never in a log.
    let root = std::path::PathBuf::from("/run/emu").join(&c.name);
    let hits = files_containing(&root, SECRET_VALUE.as_bytes());
    let pod_files = [dir.join("sandbox.json"), dir.join("state.json")].map(|p| p.display().to_string());
    assert!(hits.iter().all(|h| pod_files.contains(h)), "secret value found in {hits:?}");
    assert!(!hits.is_empty(), "the search finds the variables");
    // Base64, the Secret is in the controller's store only.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET_VALUE);
    let stored = files_containing(&root, encoded.as_bytes());
    assert!(stored.iter().all(|h| h.ends_with(".redb")), "the encoded value is only in the store: {stored:?}");
    for h in hits.iter().chain(&stored) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{h} must be readable by root only");
    }
}

/// VOL-5: editing a mounted ConfigMap changes the file in the running pod within 5 s, and a
/// reader never sees a half-written file.
#[test]
fn configmap_updates_reach_running_pods_atomically() {
    let c = Cluster::up("tvolupd", &["--nodes", "1"]);
    // 50,000 lines of one letter: a torn read shows as a short count or two letters.
    let version = |letter: char| {
        let body = format!("{letter}\\n").repeat(50_000);
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  data: \"{body}\"\n")
    };
    c.apply("big.yaml", &version('A')).ok();
    c.apply(
        "reader.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  containers:
  - {name: shell, image: busybox, command: ["sleep", "3600"], volumeMounts: [{name: cfg, mountPath: /etc/cfg}]}
  volumes: [{name: cfg, configMap: {name: big}}]
"#,
    )
    .ok();
    c.ready_pod("reader");
    assert_eq!(c.emu(&["exec", "reader", "--", "sh", "-c", "uniq -c < /etc/cfg/data"]).ok().stdout.trim(), "50000 A");

    // A reader loops in the pod while the ConfigMap changes four times.
    let name = c.name.clone();
    let reader = std::thread::spawn(move || {
        let script =
            "end=$(( $(date +%s) + 8 )); while [ $(date +%s) -lt $end ]; do uniq -c < /etc/cfg/data | tr -s ' ' | tr '\\n' ';'; echo; done";
        emu_tests::emu(&["exec", "reader", "--cluster", &name, "--", "sh", "-c", script])
    });
    let mut delays = Vec::new();
    for letter in ['B', 'C', 'D', 'E'] {
        std::thread::sleep(Duration::from_millis(300));
        c.apply("big.yaml", &version(letter)).ok();
        let applied = Instant::now();
        let want = format!("50000 {letter}");
        c.wait_for(&format!("version {letter} in the pod"), Duration::from_secs(5), || {
            (c.emu(&["exec", "reader", "--", "sh", "-c", "uniq -c < /etc/cfg/data"]).stdout.trim() == want).then_some(())
        });
        delays.push(applied.elapsed());
    }
    let reads = reader.join().unwrap();
    assert_eq!(reads.code, 0, "{}", reads.stderr);
    let lines: Vec<&str> = reads.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.len() > 20, "the reader read too little: {lines:?}");
    for l in &lines {
        let ok = ["A", "B", "C", "D", "E"].iter().any(|v| *l == format!(" 50000 {v};") || *l == format!("50000 {v};"));
        assert!(ok, "a torn read: {l:?}");
    }
    assert!(lines.iter().any(|l| l.contains('E')), "the reader saw the last version");
    println!("update delays: {delays:?}");
}

/// VOL-2: a pod whose Secret is missing waits in ContainerCreating with a FailedMount event
/// naming it, and starts once it exists; with `optional: true` it starts at once.
#[test]
fn pods_wait_for_the_secrets_they_mount() {
    let c = Cluster::up("tvolwait", &["--nodes", "1"]);
    let pod = |pod: &str, optional: bool| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  containers:\n  - {{name: shell, image: busybox, command: [sleep, '3600'], \
             volumeMounts: [{{name: secret-volume, mountPath: /etc/nginx/ssl}}]}}\n  volumes:\n  - {{name: secret-volume, secret: {{secretName: nginxsecret, optional: {optional}}}}}\n"
        )
    };
    c.apply("waiter.yaml", &pod("waiter", false)).ok();
    c.apply("relaxed.yaml", &pod("relaxed", true)).ok();
    c.ready_pod("relaxed");

    let message = r#"MountVolume.SetUp failed for volume "secret-volume" : secret "nginxsecret" not found"#;
    let events = c.wait_for("a FailedMount event", Duration::from_secs(10), || {
        let out = c.emu(&["get", "events"]).stdout;
        out.contains(message).then_some(out)
    });
    assert!(events.lines().any(|l| l.contains("Warning") && l.contains("FailedMount") && l.contains("pod/waiter")), "{events}");
    let row = c.emu(&["get", "pod", "waiter"]).ok().stdout;
    assert!(row.contains("ContainerCreating"), "{row}");
    let described = c.emu(&["describe", "pod", "waiter"]).ok().stdout;
    assert!(described.lines().any(|l| l.contains("FailedMount") && l.contains("kubelet") && l.contains(message)), "{described}");
    // Still waiting a moment later: nothing started without its secret.
    std::thread::sleep(Duration::from_secs(1));
    assert!(c.emu(&["get", "pod", "waiter"]).ok().stdout.contains("ContainerCreating"));

    c.emu(&["create", "secret", "generic", "nginxsecret", "--from-literal=tls.crt=CERT"]).ok();
    let started = Instant::now();
    c.ready_pod("waiter");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(c.emu(&["exec", "waiter", "--", "cat", "/etc/nginx/ssl/tls.crt"]).ok().stdout, "CERT");
    // The optional volume fills in once the Secret exists.
    c.wait_for("the optional volume's file", Duration::from_secs(5), || {
        (c.emu(&["exec", "relaxed", "--", "cat", "/etc/nginx/ssl/tls.crt"]).stdout == "CERT").then_some(())
    });
}
