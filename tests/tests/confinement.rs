//! Pods confined as containerd confines containers (issue 19): the RuntimeDefault seccomp profile
//! and `no_new_privs` on every container process and every `emu exec` into it, lifted by
//! `seccompProfile: {type: Unconfined}` and `allowPrivilegeEscalation: true`, while ordinary
//! workloads (nginx, curl, a shell, ping, the cluster DNS) work as before. A container sees only
//! the files its image has (none of the host's others), under a writable layer of its own, as
//! large as its `ephemeral-storage` limit.

use emu_tests::{container_pid, pod_ip, sigkill, Cluster};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

const IMAGES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: nginx, image: nginx}
---
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
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "radial/busyboxplus:curl", command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: dnsutils}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: tutum/dnsutils, command: [sleep, infinity]}
"#;

/// Which of `paths` the container of `pod` has (also as a dangling link).
fn visible(c: &Cluster, pod: &str, paths: &[&str]) -> Vec<String> {
    let script = r#"for f in "$@"; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done"#;
    let out = c.emu(&[&["exec", pod, "--", "sh", "-c", script, "sh"][..], paths].concat()).ok().stdout;
    out.lines().map(str::to_string).collect()
}

#[test]
fn pods_see_only_the_files_their_image_has() {
    // Host files that no image of the catalog has (the package manager, an interpreter, the
    // firewall's tool), as far as this host has them.
    let outside: Vec<&str> = ["/usr/bin/apt", "/usr/bin/dpkg", "/usr/bin/python3", "/usr/sbin/nft", "/usr/bin/ssh"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(outside.len() >= 2, "this host lacks the programs the test looks for: {outside:?}");
    let c = Cluster::up("tconfview", &["--nodes", "1"]);
    c.apply("images.yaml", IMAGES).ok();
    let web = c.ready_pod("web");
    for pod in ["box", "client", "dnsutils"] {
        c.ready_pod(pod);
    }

    for pod in ["web", "box", "client", "dnsutils"] {
        assert_eq!(visible(&c, pod, &outside), Vec::<String>::new(), "{pod} sees host files outside its image");
    }
    // Nor the programs of the other images.
    assert_eq!(visible(&c, "box", &["/usr/bin/curl", "/usr/sbin/nginx", "/usr/bin/dig", "/usr/bin/bash"]), Vec::<String>::new());
    assert_eq!(visible(&c, "web", &["/usr/bin/busybox", "/usr/bin/dig"]), Vec::<String>::new());
    assert_eq!(visible(&c, "client", &["/usr/sbin/nginx", "/usr/bin/dig"]), Vec::<String>::new());
    // A busybox image's /usr/bin is busybox (its /bin the applets) and coreutils' printenv,
    // which Debian's busybox lacks, plus curl in busyboxplus:curl.
    assert_eq!(c.emu(&["exec", "box", "--", "ls", "/usr/bin"]).ok().stdout, "busybox\nprintenv\n");
    assert_eq!(c.emu(&["exec", "client", "--", "ls", "/usr/bin"]).ok().stdout, "busybox\ncurl\nprintenv\n");

    // What the images run works: nginx serves and curl fetches (also over TLS, with the
    // service-account CA: OpenSSL's libraries are there); busybox's shell; dig and nslookup
    // resolve through the cluster DNS (emu-dns in its own image); bash and Ubuntu's tools.
    let page = c.emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "10", &format!("http://{}/", pod_ip(&web))]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
    let version = c
        .emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "10", "--cacert", ca, "https://kubernetes.default.svc/version"])
        .ok()
        .stdout;
    assert!(version.contains("\"gitVersion\""), "{version}");
    assert_eq!(c.emu(&["exec", "box", "--", "sh", "-c", "echo $((6 * 7))"]).ok().stdout, "42\n");
    let answer = c.emu(&["exec", "dnsutils", "--", "dig", "+short", "kubernetes.default.svc.cluster.local"]).ok().stdout;
    assert_eq!(answer.trim(), "10.96.0.1");
    let answer = c.emu(&["exec", "dnsutils", "--", "nslookup", "kubernetes.default"]).ok().stdout;
    assert!(answer.contains("Address: 10.96.0.1"), "{answer}");
    let answer = c.emu(&["exec", "client", "--", "nslookup", "kubernetes.default.svc.cluster.local"]).ok().stdout;
    assert!(answer.contains("10.96.0.1"), "{answer}");
    let shell = c.emu(&["exec", "dnsutils", "--", "bash", "-c", "echo $BASH_VERSION; cat /etc/hostname"]).ok().stdout;
    assert!(shell.starts_with("5.") && shell.contains("dnsutils\n"), "{shell}");
    let ps = c.emu(&["exec", "web", "--", "ps", "-e", "-o", "pid=,comm="]).ok().stdout;
    assert!(ps.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "nginx"]), "{ps}");
    // A terminal's description, for shells on `emu exec -it`.
    c.emu(&["exec", "web", "--", "test", "-e", "/usr/lib/terminfo/x/xterm"]).ok();

    // Each image's files were gathered once for the cluster, not per pod.
    let mut views: Vec<String> = std::fs::read_dir(Path::new("/run/emu/tconfview/images"))
        .expect("the cluster's images")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| n.rsplit_once('-').map_or(n.clone(), |(image, _hash)| image.to_string()))
        .collect();
    views.sort();
    assert_eq!(views, ["busybox", "nginx", "radial_busyboxplus_curl", "registry.k8s.io_coredns_coredns", "tutum_dnsutils"]);
}

const WRITERS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-a}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: nginx, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: nginx, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "radial/busyboxplus:curl", command: [sleep, "3600"]}
"#;

#[test]
fn an_images_files_are_writable_per_container_and_fresh_after_a_restart() {
    let c = Cluster::up("tconfwrite", &["--nodes", "1"]);
    c.apply("writers.yaml", WRITERS).ok();
    let (a, b) = (c.ready_pod("web-a"), c.ready_pod("web-b"));
    c.ready_pod("client");
    let get = |pod: &serde_json::Value| {
        c.emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "10", &format!("http://{}/", pod_ip(pod))]).ok().stdout
    };
    let index = "/usr/share/nginx/html/index.html";

    // The image's page, changed in one container, as in a container's writable layer.
    c.emu(&["exec", "web-a", "--", "sh", "-c", &format!("echo pod-1 > {index}")]).ok();
    assert_eq!(get(&a), "pod-1\n");
    // The other replica, the image and the host keep theirs.
    assert!(get(&b).contains("Welcome to nginx!"));
    let host_page = std::fs::read_to_string(index).expect("the host's nginx page");
    assert!(host_page.contains("Welcome to nginx!"), "{host_page}");
    // Removing a file of the image hides it in this container only.
    c.emu(&["exec", "web-a", "--", "rm", "/usr/bin/env"]).ok();
    assert_ne!(c.emu(&["exec", "web-a", "--", "env"]).code, 0);
    c.emu(&["exec", "web-b", "--", "env"]).ok();

    // A restarted container starts from the image's files again.
    sigkill(container_pid("tconfwrite", &a, "nginx"));
    let a = c.wait_for("web-a restarted and ready", Duration::from_secs(20), || {
        c.pods("").into_iter().find(|p| {
            emu_tests::name(p) == "web-a"
                && emu_tests::is_ready(p)
                && p["status"]["containerStatuses"][0]["restartCount"] == 1
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
        })
    });
    let page = c.wait_for("web-a's nginx serving again", Duration::from_secs(10), || {
        let r = c.emu(&["exec", "client", "--", "curl", "-sS", "--max-time", "2", &format!("http://{}/", pod_ip(&a))]);
        (r.code == 0).then_some(r.stdout)
    });
    assert!(page.contains("Welcome to nginx!"), "{page}");
    c.emu(&["exec", "web-a", "--", "env"]).ok();
}

const DISKS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: small}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    resources:
      limits: {ephemeral-storage: 8Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
"#;

/// The size of the container's root in KiB, as `df` shows it.
fn root_kib(c: &Cluster, pod: &str) -> u64 {
    let out = c.emu(&["exec", pod, "--", "df", "-k", "/"]).ok().stdout;
    let row = out.lines().nth(1).unwrap_or_else(|| panic!("df -k / in {pod}: {out}"));
    row.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("df -k / in {pod}: {out}"))
}

#[test]
fn a_write_beyond_the_ephemeral_storage_limit_fails_as_a_full_disk() {
    let c = Cluster::up("tconfdisk", &["--nodes", "1"]);
    c.apply("disks.yaml", DISKS).ok();
    c.ready_pod("small");
    c.ready_pod("plain");

    // The root is as large as the limit, or emu's default of 256 MiB.
    assert_eq!(root_kib(&c, "small"), 8 * 1024);
    assert_eq!(root_kib(&c, "plain"), 256 * 1024);
    let r = c.emu(&["exec", "small", "--", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=16"]);
    assert_ne!(r.code, 0, "16 MiB written into 8 MiB: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    // Freed, the space is there again; the other pod never lacked it.
    c.emu(&["exec", "small", "--", "rm", "/tmp/fill"]).ok();
    c.emu(&["exec", "small", "--", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=4"]).ok();
    c.emu(&["exec", "plain", "--", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=16"]).ok();
}
