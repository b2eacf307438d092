//! Who a container runs as (issue 19): `runAsUser`, `runAsGroup`, `supplementalGroups` and
//! `fsGroup` honoured for the container's processes and for `emu exec`, an image's own `USER`
//! (curlimages/curl's curl_user), `capabilities.drop`, and kubelet's `runAsNonRoot` check with
//! its `CreateContainerConfigError` messages and `Failed` event.

use emu_tests::{name, Cluster};
use std::time::Duration;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000], fsGroup: 2000, runAsNonRoot: true}
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: override}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext: {runAsUser: 1001, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Pod
metadata: {name: rootbox}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext: {capabilities: {drop: [NET_RAW]}}
---
apiVersion: v1
kind: Pod
metadata: {name: curl}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: curlimages/curl, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: rootimage}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: web, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: breaks}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext: {runAsUser: 0}
---
apiVersion: v1
kind: Pod
metadata: {name: named}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: c, image: curlimages/curl, command: [sleep, "3600"]}
"#;

/// A field of `/proc/<pid>/status` as the pod sees it (`self`: the exec'd command).
fn status_field(c: &Cluster, pod: &str, pid: &str, field: &str) -> String {
    let status = c.emu(&["exec", pod, "--", "cat", &format!("/proc/{pid}/status")]).ok().stdout;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status of {pod}:\n{status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The waiting reason and message of the pod's first container, once it has one.
fn waiting(c: &Cluster, pod: &str) -> (String, String, String) {
    c.wait_for(&format!("{pod} waiting"), Duration::from_secs(20), || {
        let p = c.pods("").into_iter().find(|p| name(p) == pod)?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        let reason = w["reason"].as_str().filter(|r| *r == "CreateContainerConfigError")?;
        Some((reason.to_string(), w["message"].as_str()?.to_string(), p["metadata"]["uid"].as_str()?.to_string()))
    })
}

#[test]
fn containers_run_as_their_security_context_says_and_run_as_non_root_is_checked() {
    let c = Cluster::up("tident", &["--nodes", "1"]);
    c.apply("pods.yaml", PODS).ok();
    for pod in ["nonroot", "override", "rootbox", "curl"] {
        c.ready_pod(pod);
    }

    // The pod's user, group and extra groups, in the container's own process and in an exec,
    // which has no capabilities left (a non-root user's exec, as under containerd).
    for pid in ["1", "self"] {
        assert_eq!(status_field(&c, "nonroot", pid, "Uid"), "1000 1000 1000 1000", "pid {pid}");
        assert_eq!(status_field(&c, "nonroot", pid, "Gid"), "3000 3000 3000 3000", "pid {pid}");
        assert_eq!(status_field(&c, "nonroot", pid, "Groups"), "2000 4000", "pid {pid}");
        assert_eq!(status_field(&c, "nonroot", pid, "CapEff"), "0000000000000000", "pid {pid}");
    }
    assert_eq!(c.emu(&["exec", "nonroot", "--", "id", "-u"]).ok().stdout, "1000\n");
    // Root's files stay root's.
    let denied = c.emu(&["exec", "nonroot", "--", "sh", "-c", "echo x > /etc/hostname"]);
    assert_ne!(denied.code, 0, "a non-root user wrote /etc/hostname");
    assert!(denied.stderr.contains("Permission denied"), "{}", denied.stderr);

    // The container's runAsUser wins over the pod's; dropping ALL leaves none even to root's
    // bounding set.
    assert_eq!(status_field(&c, "override", "1", "Uid"), "1001 1001 1001 1001");
    assert_eq!(status_field(&c, "override", "1", "CapBnd"), "0000000000000000");

    // Root keeps the runtime's default set less what it drops: no NET_RAW (bit 13), so no ping.
    let caps = u64::from_str_radix(&status_field(&c, "rootbox", "1", "CapEff"), 16).expect("CapEff in hex");
    assert_eq!(caps & (1 << 13), 0, "NET_RAW dropped: {caps:x}");
    assert_ne!(caps & 1, 0, "CHOWN kept: {caps:x}");
    assert_eq!(status_field(&c, "rootbox", "1", "Uid"), "0 0 0 0");

    // An image's own USER, and its HOME.
    assert_eq!(c.emu(&["exec", "curl", "--", "id", "-u"]).ok().stdout, "100\n");
    let env = c.emu(&["exec", "curl", "--", "env"]).ok().stdout;
    assert!(env.lines().any(|l| l == "HOME=/home/curl_user"), "{env}");
    // Its home is its own, as the image's adduser made it.
    let wrote = c.emu(&["exec", "curl", "--", "sh", "-c", "echo mine > ~/note && cat ~/note && stat -c %u:%g ~"]).ok().stdout;
    assert_eq!(wrote, "mine\n100:101\n");

    // runAsNonRoot: kubelet's three refusals, as the container's waiting state and a Failed event.
    let (reason, message, uid) = waiting(&c, "rootimage");
    assert_eq!(reason, "CreateContainerConfigError");
    assert_eq!(
        message,
        format!("container has runAsNonRoot and image will run as root (pod: \"rootimage_default({uid})\", container: web)")
    );
    let (_, message, uid) = waiting(&c, "breaks");
    assert_eq!(message, format!("container's runAsUser breaks non-root policy (pod: \"breaks_default({uid})\", container: c)"));
    let (_, message, uid) = waiting(&c, "named");
    assert_eq!(
        message,
        format!(
            "container has runAsNonRoot and image has non-numeric user (curl_user), cannot verify user is non-root (pod: \"named_default({uid})\", container: c)"
        )
    );
    let table = c.emu(&["get", "pod", "rootimage"]).ok().stdout;
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    let described = c.emu(&["describe", "pod", "breaks"]).ok().stdout;
    assert!(described.contains("Error: container's runAsUser breaks non-root policy"), "{described}");
}
