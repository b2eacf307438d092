//! The Python `kubernetes` client (PyPI, pinned in scripts/test-tools) against emu's REST API
//! (issue 17), running the scripts in tests/python/:
//! - from the host with the kubeconfig `emu kubeconfig` prints: list pods (a namespace, a label
//!   selector, all namespaces), watch them (a pod created after the watch began comes as ADDED),
//!   create a Service and read it back (an invalid one is the 422 naming its field), exec over
//!   WebSocket (stdout read whole; stdin, stderr and the exit code read as they come, over
//!   `v5.channel.k8s.io` with its close of stdin and over `v4.channel.k8s.io`), port-forward;
//! - inside a pod with `config.load_incluster_config()`: the API server from the pod's
//!   `KUBERNETES_SERVICE_*` variables, the service account's token and CA from its projected
//!   volume; RBAC's 403 for the default service account, and the pods once `kubectl create
//!   rolebinding … --clusterrole=view --serviceaccount=default:default` granted it. The pod is
//!   of the python image, whose python3 is the host's, the venv's interpreter; the venv's
//!   packages are copied into the pod (`emu exec -i … tar`).

mod kubectl_support;
mod test_tools;

use emu_tests::{Cluster, Run};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A busybox pod that sleeps, labelled app=early.
const EARLY: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: early\n  labels:\n    app: early\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n";

/// nginx on port 80, labelled app=web (the Service `web` the client creates selects it).
const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: nginx\n    image: nginx\n    ports:\n    - containerPort: 80\n";

/// The pod the client runs in: python sleeping, with Python's module path where the venv's
/// packages are copied.
const PYCLIENT: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pyclient\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: python\n    command: [\"sleep\", \"3600\"]\n    env:\n    - name: PYTHONPATH\n      value: /tmp/site\n";

const LIMIT: Duration = Duration::from_secs(60);

/// A script's lines, asserting it exited 0.
fn lines(r: Run, script: &str) -> Vec<String> {
    assert_eq!(r.code, 0, "{script} failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.stdout.lines().map(str::to_string).collect()
}

#[test]
fn python_client_lists_watches_creates_and_execs() {
    test_tools::python(); // installed before a cluster is made for it
    let (c, dir) = kubectl_support::cluster("pyclient");
    let kubeconfig = dir.0.join("kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    c.apply("early.yaml", EARLY).ok();
    c.apply("web.yaml", WEB).ok();
    c.ready_pod("early");
    c.ready_pod("web");

    // list, then a watch that sees `late`, which the script creates once the watch has shown
    // `early` (so after the watch began).
    let out = lines(test_tools::run_python("list_watch.py", &[kubeconfig], LIMIT), "list_watch.py");
    assert_eq!(
        out[..3],
        ["list default: early web version: True", "list app=early: early", "list all namespaces: default kube-system"],
        "{out:#?}"
    );
    let events = &out[3..];
    assert!(events.contains(&"event: ADDED early".to_string()), "{out:#?}");
    assert_eq!(events[events.len() - 2..], ["event: ADDED late", "watch ended"], "{out:#?}");
    c.ready_pod("late");

    // A Service created, read back as emu holds it; an invalid one refused and not stored.
    let out = lines(test_tools::run_python("service.py", &[kubeconfig], LIMIT), "service.py");
    let ip = c.cluster_ip("web");
    assert_eq!(
        out[..3],
        ["created: web uid: True".to_string(), format!("read: web ClusterIP {ip} http TCP 80 80"), "services: kubernetes web".into()],
        "{out:#?}"
    );
    assert_eq!(out[3], "bad: 422 Invalid");
    assert!(
        out[4].starts_with(
            "bad message: Service \"bad\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        ),
        "{out:#?}"
    );
    assert!(out.contains(&"bad cause: spec.ports[0].port FieldValueInvalid".to_string()), "{out:#?}");
    assert_ne!(c.emu(&["get", "svc", "bad"]).code, 0, "the invalid Service was stored");

    // exec: stdout; stdin, stderr and the exit code; stdin's end (v5); v4.
    let out = lines(test_tools::run_python("exec.py", &[kubeconfig], LIMIT), "exec.py");
    assert_eq!(
        out,
        [
            "stdout: 'hello from early\\n'",
            "subprotocol: v5.channel.k8s.io",
            "read: 'got python\\n' 'to stderr\\n' exit: 3",
            "cat: 'one\\ntwo\\n' exit: 0",
            "v4: v4.channel.k8s.io 'v4 line\\n' exit: 4",
        ]
    );

    // port-forward (v4.channel.k8s.io, the port's number first on each channel).
    let out = lines(test_tools::run_python("portforward.py", &[kubeconfig], LIMIT), "portforward.py");
    assert_eq!(out, ["status: HTTP/1.1 200 OK", "title: Welcome to nginx!", "error: None"]);
}

/// A cluster with the pod `pyclient` holding the venv's packages under /tmp/site.
fn cluster_with_client_pod(name: &str) -> (Cluster, emu_tests::Scratch) {
    let site = test_tools::site_packages(); // installed before a cluster is made for it
    let (c, dir) = kubectl_support::cluster(name);
    c.apply("pyclient.yaml", PYCLIENT).ok();
    c.ready_pod("pyclient");
    // The client's packages, not pip's, setuptools' or the asyncio client's (half the size);
    // compiled bytecode included, so the pod's python3 need not compile them again.
    let mut tar = Command::new("tar")
        .args(["-c", "-z", "-C"])
        .arg(&site)
        .args(["--exclude=./kubernetes/aio", "--exclude=./aiohttp", "--exclude=./pip", "--exclude=./setuptools"])
        .args(["--exclude=./pkg_resources", "--exclude=./_distutils_hack", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let copy = Command::new(emu_tests::emu_path())
        .args(["exec", "-i", "--cluster", name, "pyclient", "--", "sh", "-c", "mkdir -p /tmp/site && tar -x -z -C /tmp/site"])
        .env("KUBECONFIG", emu_tests::suite_kubeconfig())
        .env_remove("EMU_CLUSTER")
        .stdin(Stdio::from(tar.stdout.take().unwrap()))
        .output()
        .expect("running emu exec");
    assert!(tar.wait().unwrap().success(), "tar of {} failed", site.display());
    Run::from(copy).ok();
    (c, dir)
}

/// tests/python/incluster.py run by the pod's python3 (the host's, which the python image has).
fn in_pod(c: &Cluster) -> Vec<String> {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &LIMIT.as_secs().to_string()]).arg(emu_tests::emu_path());
    cmd.args(["exec", "-i", "--cluster", &c.name, "pyclient", "--", "python3", "-"])
        .env("KUBECONFIG", emu_tests::suite_kubeconfig())
        .env_remove("EMU_CLUSTER");
    let script = std::fs::read(test_tools::script("incluster.py")).unwrap();
    lines(kubectl_support::run_with_input(cmd, &script), "incluster.py in the pod")
}

/// What the default service account gets from a list of pods before a binding grants it.
const FORBIDDEN: [&str; 3] = [
    "server: https://10.96.0.1:443",
    "error: 403 Forbidden",
    "message: pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
];

/// The client in a pod is the pod's service account: RBAC's 403 until a RoleBinding grants it
/// the ClusterRole `view` in its namespace, then the list.
#[test]
fn python_client_in_a_pod_is_its_service_account() {
    let (c, dir) = cluster_with_client_pod("pyincl");
    assert_eq!(in_pod(&c), FORBIDDEN);
    let bind = ["create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default"];
    let r = kubectl_support::kubectl(&dir.0, LIMIT, &bind).ok();
    assert_eq!(r.stdout, "rolebinding.rbac.authorization.k8s.io/default-view created\n");
    assert_eq!(in_pod(&c), ["server: https://10.96.0.1:443", "listed: pyclient"]);
}
