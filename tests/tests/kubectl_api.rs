//! The real kubectl reads an emu cluster over the Kubernetes REST API (issue 17): discovery,
//! GET and LIST as Tables and as objects, with a client certificate of the cluster CA in group
//! `system:masters` signed here, and with the kubeconfig emu writes. kubectl runs in the control
//! plane's network namespace against https://127.0.0.1:6443, and from the host against the
//! listener `emu up` gives the controller there; what it prints must be what `emu get` prints for
//! the same command (emu's CLI mirrors kubectl byte for byte; only ages may differ, being taken
//! at two moments).

mod kubectl_support;

use emu_tests::Scratch;
use emu_tests::{Cluster, Run};
use kubectl_support::client_cert;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A kubeconfig for https://127.0.0.1:6443 trusting the cluster CA, with the user's client
/// certificate files, or none: then only a user name, which kubectl sends as basic
/// authentication, which kube-apiserver (and emu) ignore: the request is anonymous. (With no
/// user at all kubectl would prompt for one.)
fn kubeconfig(dir: &Path, name: &str, pki: &Path, cert: Option<(&Path, &Path)>) -> PathBuf {
    let user = match cert {
        Some((crt, key)) => format!("    client-certificate: {}\n    client-key: {}\n", crt.display(), key.display()),
        None => format!("    username: {name}\n"),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority: {}\n\
         users:\n- name: {name}\n  user:\n{user}contexts:\n- name: emu\n  context:\n    cluster: emu\n    user: {name}\n    namespace: default\n\
         current-context: emu\n",
        pki.join("ca.crt").display()
    );
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

fn kubectl_binary() -> String {
    ["/usr/local/bin/kubectl", "/usr/bin/kubectl"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("kubectl").to_string()
}

/// `kubectl ARGS` with `config`, in the cluster's control namespace, with a discovery cache of
/// its own (kubectl keeps one per host:port for 6 hours, and other tests' clusters use the same
/// address).
fn kubectl(c: &Cluster, dir: &Path, config: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &format!("emu-{}-control", c.name), &kubectl_binary()]);
    run_kubectl(cmd, &dir.join("cache"), config, args)
}

/// `kubectl ARGS` with `config` on the host, with a cache of its own.
fn kubectl_on_host(dir: &Path, config: &Path, args: &[&str]) -> Run {
    run_kubectl(Command::new(kubectl_binary()), &dir.join("host-cache"), config, args)
}

fn run_kubectl(mut cmd: Command, cache: &Path, config: &Path, args: &[&str]) -> Run {
    let out = cmd
        .arg("--kubeconfig")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("KUBECACHEDIR", cache)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running kubectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn kubectl_gets_what_emu_gets() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tkapi-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let c = Cluster::up("tkapi", &[&emu_tests::scenario_path("nginx-with-service.yaml")]);
    let pods = c.ready_pods("run=my-nginx", 2);
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    // The DNS pods too, so that no pod changes between kubectl's and emu's look.
    c.wait_for("every pod ready", std::time::Duration::from_secs(20), || {
        let all: serde_json::Value = serde_json::from_str(&c.emu(&["get", "pods", "-A", "-o", "json"]).ok().stdout).ok()?;
        all["items"].as_array()?.iter().all(emu_tests::is_ready).then_some(())
    });

    let pki = PathBuf::from("/run/emu").join(&c.name).join("pki");
    let (crt, key) = client_cert(&pki, "kubernetes-admin", "system:masters");
    let (crt_path, key_path) = (dir.0.join("admin.crt"), dir.0.join("admin.key"));
    std::fs::write(&crt_path, crt).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let admin = kubeconfig(&dir.0, "admin", &pki, Some((&crt_path, &key_path)));

    for args in [
        &["get", "pods"][..],
        &["get", "pods", "-o", "wide"],
        &["get", "pods", "-A"],
        &["get", "pods", "-l", "run=my-nginx"],
        &["get", "pods", "-l", "run=my-nginx", "-o", "wide"],
        &["get", "pods", "--show-labels"],
        &["get", "svc"],
        &["get", "svc", "-A", "-o", "wide"],
        &["get", "nodes"],
        &["get", "nodes", "-o", "wide"],
        &["get", "deployments"],
        &["get", "rs", "-o", "wide"],
        &["get", "endpoints"],
        &["get", "endpointslices", "-n", "kube-system"],
        &["get", "configmaps"],
        &["get", "ns"],
        &["get", "pod", &pod],
    ] {
        let theirs = kubectl(&c, &dir.0, &admin, args).ok().stdout;
        let ours = c.emu(args).ok().stdout;
        assert!(!theirs.is_empty(), "kubectl {args:?} printed nothing");
        assert_eq!(emu_tests::table_cells(&theirs), emu_tests::table_cells(&ours), "kubectl {args:?}:\n{theirs}\nemu get:\n{ours}");
    }

    // `get all`: every kind of category "all" emu serves, one table each, names prefixed.
    let all = kubectl(&c, &dir.0, &admin, &["get", "all"]).ok().stdout;
    let ours = c.emu(&["get", "all"]).ok().stdout;
    assert_eq!(emu_tests::table_cells(&all), emu_tests::table_cells(&ours), "kubectl get all:\n{all}\nemu get all:\n{ours}");
    assert!(all.contains(&format!("pod/{pod} ")) && all.contains("deployment.apps/my-nginx "), "{all}");

    // An object as YAML is the stored object, as emu prints it.
    let theirs = kubectl(&c, &dir.0, &admin, &["get", "pod", &pod, "-o", "yaml"]).ok().stdout;
    let ours = c.emu(&["get", "pod", &pod, "-o", "yaml"]).ok().stdout;
    assert_eq!(theirs, ours);
    let theirs = kubectl(&c, &dir.0, &admin, &["get", "svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}"]).ok().stdout;
    assert_eq!(theirs, c.cluster_ip("my-nginx"));

    // kube-apiserver's errors, as kubectl prints them.
    let missing = kubectl(&c, &dir.0, &admin, &["get", "pod", "nope"]);
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "Error from server (NotFound): pods \"nope\" not found\n"));
    let none = kubectl(&c, &dir.0, &admin, &["get", "pods", "-l", "run=nothing"]).ok();
    assert_eq!((none.stdout.as_str(), none.stderr.as_str()), ("", "No resources found in default namespace.\n"));

    // No credentials: the anonymous user may not list pods. (Nor read discovery: kubectl finds
    // it in the cache the admin's commands filled; with a cold cache it prints what it prints
    // against kube-apiserver, `Error from server (Forbidden): unknown`, as client-go loses the
    // message of a refused discovery.)
    let anonymous = kubeconfig(&dir.0, "anonymous", &pki, None);
    let refused = kubectl(&c, &dir.0, &anonymous, &["get", "pods"]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (1, "Error from server (Forbidden): pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n")
    );
    let version = kubectl(&c, &dir.0, &anonymous, &["get", "--raw", "/version"]).ok().stdout;
    assert!(version.contains("\"gitVersion\""), "{version}");
    // Another user of the CA, outside system:masters: authenticated, so discovery, not pods.
    let (crt, key) = client_cert(&pki, "alice", "dev");
    std::fs::write(dir.0.join("alice.crt"), crt).unwrap();
    std::fs::write(dir.0.join("alice.key"), key).unwrap();
    let alice = kubeconfig(&dir.0, "alice", &pki, Some((&dir.0.join("alice.crt"), &dir.0.join("alice.key"))));
    let refused = kubectl(&c, &dir.0, &alice, &["get", "pods"]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (1, "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n")
    );
    let resources = kubectl(&c, &dir.0, &alice, &["api-resources"]).ok().stdout;
    // `auth can-i` asks the authorizer every request meets (a SelfSubjectAccessReview); `auth
    // whoami` is a SelfSubjectReview.
    let can = kubectl(&c, &dir.0, &alice, &["auth", "can-i", "list", "pods"]);
    assert_eq!((can.code, can.stdout.as_str()), (1, "no\n"), "{}", can.stderr);
    let whoami = kubectl(&c, &dir.0, &alice, &["auth", "whoami"]).ok().stdout;
    assert!(whoami.lines().any(|l| l.split_whitespace().eq(["Username", "alice"])), "{whoami}");
    // The kubeconfig emu writes (`emu kubeconfig`: its admin certificate, the API server's
    // listener on the host's 127.0.0.1): kubectl from the host sees the same.
    let printed = dir.0.join("emu.kubeconfig");
    std::fs::write(&printed, c.emu(&["kubeconfig"]).ok().stdout).unwrap();
    for args in [&["get", "pods", "-o", "wide"][..], &["get", "all", "-A"]] {
        let theirs = kubectl_on_host(&dir.0, &printed, args).ok().stdout;
        let ours = match args {
            ["get", "all", "-A"] => c.emu(&["get", "pods,services,deployments,replicasets", "-A"]).ok().stdout,
            _ => c.emu(args).ok().stdout,
        };
        assert_eq!(
            emu_tests::table_cells(&theirs),
            emu_tests::table_cells(&ours),
            "kubectl {args:?} from the host:\n{theirs}\nemu get:\n{ours}"
        );
    }
    assert_eq!(kubectl_on_host(&dir.0, &printed, &["auth", "can-i", "list", "pods"]).ok().stdout, "yes\n");
    assert!(resources.lines().any(|l| l.split_whitespace().eq(["pods", "po", "v1", "true", "Pod"])), "{resources}");
    assert!(resources.lines().any(|l| l.split_whitespace().eq(["deployments", "deploy", "apps/v1", "true", "Deployment"])), "{resources}");
}
