//! Pods confined as containerd confines containers (issue 19, item 5): the RuntimeDefault
//! seccomp profile and `no_new_privs` on every container process and every `emu exec` into it,
//! lifted by `seccompProfile: {type: Unconfined}` and `allowPrivilegeEscalation: true`, while
//! ordinary workloads (nginx, curl, a shell, ping, the cluster DNS) work as before.

use emu_tests::{pod_ip, Cluster};
use std::path::PathBuf;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: nginx, image: nginx}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "radial/busyboxplus:curl", command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: free}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    seccompProfile: {type: Unconfined}
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: mixed}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    seccompProfile: {type: Unconfined}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext:
      seccompProfile: {type: RuntimeDefault}
---
apiVersion: v1
kind: Pod
metadata: {name: escalate}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext: {allowPrivilegeEscalation: true}
---
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext:
      seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
"#;

/// `Seccomp` and `NoNewPrivs` of `/proc/<pid>/status` as seen in the pod: `self` is the exec'd
/// command, `1` the container's own process.
fn confinement(c: &Cluster, pod: &str, pid: &str) -> (String, String) {
    let status = c.emu(&["exec", pod, "--", "cat", &format!("/proc/{pid}/status")]).ok().stdout;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status of {pod}:\n{status}"))
            .trim()
            .to_string()
    };
    (field("Seccomp"), field("NoNewPrivs"))
}

fn shim_log(c: &Cluster, pod: &serde_json::Value) -> String {
    let dir = PathBuf::from("/run/emu").join(&c.name).join("nodes").join(pod["spec"]["nodeName"].as_str().expect("scheduled pod"));
    std::fs::read_to_string(dir.join("pods").join(pod["metadata"]["uid"].as_str().expect("uid")).join("shim.log")).unwrap_or_default()
}

#[test]
fn pods_run_under_the_runtime_default_seccomp_profile_and_no_new_privs() {
    let c = Cluster::up("tconfine", &["--nodes", "1"]);
    c.apply("pods.yaml", PODS).ok();
    let web = c.ready_pod("web");
    for pod in ["box", "client", "free", "mixed", "escalate"] {
        c.ready_pod(pod);
    }
    let local = c.ready_pod("local");

    // The default: filtered (mode 2) and no_new_privs, for the container and for exec.
    let confined = ("2".to_string(), "1".to_string());
    for pod in ["box", "web", "client", "mixed", "local"] {
        assert_eq!(confinement(&c, pod, "self"), confined, "emu exec {pod}");
        assert_eq!(confinement(&c, pod, "1"), confined, "pid 1 of {pod}");
    }

    // What the profile refuses: user namespaces (and with them mounts), network and PID
    // namespaces.
    for argv in [
        &["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /mnt"][..],
        &["unshare", "-Urn", "true"],
        &["unshare", "-Urp", "true"],
        &["unshare", "-m", "true"],
        &["mount", "-t", "tmpfs", "none", "/mnt"],
    ] {
        let r = c.emu(&[&["exec", "box", "--"][..], argv].concat());
        assert_ne!(r.code, 0, "{argv:?} succeeded in a confined pod: {}{}", r.stdout, r.stderr);
        // EPERM, which util-linux's mount words its own way.
        let err = r.stderr.to_lowercase();
        assert!(err.contains("operation not permitted") || err.contains("permission denied"), "{argv:?}: {}", r.stderr);
    }

    // What it leaves: a shell, ping (raw sockets with CAP_NET_RAW), nginx serving, curl through
    // the Service by its name (the cluster DNS server runs under the profile too).
    assert_eq!(c.emu(&["exec", "box", "--", "sh", "-c", "echo $((6 * 7))"]).ok().stdout, "42\n");
    c.emu(&["exec", "box", "--", "ping", "-c", "1", "-W", "5", &pod_ip(&web)]).ok();
    let page = c.emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "10", &format!("http://{}/", pod_ip(&web))]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let page = c.emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "10", "http://web/"]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");

    // Unconfined lifts the filter (the pod's, and no container overrides it), and then the very
    // commands the profile refused work: it was the profile that refused them.
    let unconfined = ("0".to_string(), "1".to_string());
    assert_eq!(confinement(&c, "free", "self"), unconfined);
    assert_eq!(confinement(&c, "free", "1"), unconfined);
    c.emu(&["exec", "free", "--", "unshare", "-Urn", "true"]).ok();
    c.emu(&["exec", "free", "--", "unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /mnt"]).ok();

    // allowPrivilegeEscalation: true leaves no_new_privs off, still filtered.
    let escalating = ("2".to_string(), "0".to_string());
    assert_eq!(confinement(&c, "escalate", "self"), escalating);
    assert_eq!(confinement(&c, "escalate", "1"), escalating);

    // A Localhost profile runs with the default (checked above), and the shim says why.
    let log = shim_log(&c, &local);
    assert!(log.contains("seccompProfile is Localhost \"profiles/audit.json\", which emu does not support"), "{log}");
}
