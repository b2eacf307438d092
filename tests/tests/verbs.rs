//! kubectl's verbs and output formats against a running cluster, and choosing among clusters.

use emu_tests::{emu, Cluster};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

#[test]
fn get_describe_and_output_formats() {
    let c = Cluster::up("tverbs", &[SCENARIO]);
    // Namespaces that exist from the start.
    let ns = c.emu(&["get", "ns"]).ok().stdout;
    for want in ["default", "kube-system"] {
        assert!(ns.lines().any(|l| l.starts_with(&format!("{want} ")) && l.contains("Active")), "{ns}");
    }
    // -o name, jsonpath, custom-columns.
    let names = c.emu(&["get", "pods", "-l", "run=my-nginx", "-o", "name"]).ok().stdout;
    assert_eq!(names.lines().count(), 2);
    assert!(names.lines().all(|l| l.starts_with("pod/my-nginx-")), "{names}");
    let ips = c.emu(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]).ok().stdout;
    assert_eq!(ips.split(' ').count(), 2, "{ips}");
    assert!(ips.split(' ').all(|ip| ip.starts_with("10.244.")), "{ips}");
    let cc = c.emu(&["get", "pods", "-o", "custom-columns=POD_IP:.status.podIPs"]).ok().stdout;
    let mut lines = cc.lines();
    assert_eq!(lines.next(), Some("POD_IP"));
    assert!(lines.all(|l| l.starts_with("[map[ip:10.244.") && l.ends_with("]]")), "{cc}");
    // -o yaml of a single object: sorted keys, no List wrapper.
    let y = c.emu(&["get", "deployment", "my-nginx", "-o", "yaml"]).ok().stdout;
    assert!(y.starts_with("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"), "{y}");
    // Several kinds in one get: prefixed names, one blank line between tables.
    let both = c.emu(&["get", "deploy,rs"]).ok().stdout;
    assert!(
        both.contains("deployment.apps/my-nginx") && both.contains("\n\nNAME ") && both.contains("replicaset.apps/my-nginx-"),
        "{both}"
    );
    // -A adds NAMESPACE; an empty namespace says so on stderr.
    assert!(c.emu(&["get", "pods", "-A"]).ok().stdout.starts_with("NAMESPACE "));
    let empty = c.emu(&["get", "pods", "-n", "kube-public"]).ok();
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr.trim(), "No resources found in kube-public namespace.");
    // Nodes: wide columns, InternalIP on the fabric.
    let nodes = c.emu(&["get", "nodes", "-o", "wide"]).ok().stdout;
    assert!(
        nodes.starts_with("NAME ")
            && nodes.contains("INTERNAL-IP")
            && nodes.contains("172.18.0.2")
            && nodes.contains("kubernetes-minion-905m"),
        "{nodes}"
    );
    // describe.
    let pod = names.lines().next().unwrap().trim_start_matches("pod/").to_string();
    let d = c.emu(&["describe", "pod", &pod]).ok().stdout;
    assert!(d.starts_with(&format!("Name:             {pod}\nNamespace:        default\n")), "{d}");
    assert!(d.contains("Controlled By:  ReplicaSet/my-nginx-") && d.contains("Status:           Running"), "{d}");
    let d = c.emu(&["describe", "deployment", "my-nginx"]).ok().stdout;
    assert!(d.contains("Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable"), "{d}");
    let d = c.emu(&["describe", "node", "kubernetes-minion-905m"]).ok().stdout;
    assert!(d.starts_with("Name:               kubernetes-minion-905m\n"), "{d}");
    // NotFound in kubectl's words.
    let nf = c.emu(&["get", "deployment", "nope"]);
    assert_ne!(nf.code, 0);
    assert_eq!(nf.stderr.trim(), "Error from server (NotFound): deployments.apps \"nope\" not found");
}

#[test]
fn apply_from_stdin_run_logs_and_delete() {
    let c = Cluster::up("tverbs2", &["--nodes", "1"]);
    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: talker, namespace: lab}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo hello from talker; sleep 3600']\n";
    let mut child = Command::new(emu_tests::emu_path())
        .args(["apply", "-f", "-", "--cluster", "tverbs2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(manifest.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/lab created\npod/talker created\n");
    c.wait_for("talker's log", Duration::from_secs(20), || {
        let r = c.emu(&["logs", "talker", "-n", "lab"]);
        (r.code == 0 && r.stdout == "hello from talker\n").then_some(())
    });
    // Re-applying the same manifest changes nothing, and keeps the pod on its node.
    std::fs::create_dir_all(c.scratch_dir()).unwrap();
    let path = c.scratch_dir().join("talker.yaml");
    std::fs::write(&path, manifest).unwrap();
    let node = c.emu(&["get", "pod", "talker", "-n", "lab", "-o", "jsonpath={.spec.nodeName}"]).ok().stdout;
    let r = c.emu(&["apply", "-f", path.to_str().unwrap()]).ok();
    assert_eq!(r.stdout, "namespace/lab unchanged\npod/talker unchanged\n");
    assert_eq!(c.emu(&["get", "pod", "talker", "-n", "lab", "-o", "jsonpath={.spec.nodeName}"]).ok().stdout, node);

    // kubectl run: a pod with label run=NAME, env and a command.
    let r = c.emu(&["run", "web", "--image=nginx", "--port=80", "--env=COLOR=blue", "--labels=app=web,tier=front"]).ok();
    assert_eq!(r.stdout.trim(), "pod/web created");
    c.wait_for("web Running", Duration::from_secs(20), || c.pods("app=web").first().filter(|p| p["status"]["phase"] == "Running").cloned());
    assert_eq!(c.emu(&["exec", "web", "--", "printenv", "COLOR"]).ok().stdout, "blue\n");
    let r = c.emu(&["run", "once", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo done"]).ok();
    assert_eq!(r.stdout.trim(), "pod/once created");
    c.wait_for("once Completed", Duration::from_secs(20), || {
        let t = c.emu(&["get", "pod", "once"]).ok().stdout;
        t.contains("Completed").then_some(())
    });

    // A container that keeps failing: Error, then CrashLoopBackOff with RESTARTS counting up.
    c.emu(&["run", "crash", "--image=busybox", "--", "sh", "-c", "echo failing; exit 1"]).ok();
    let row = c.wait_for("CrashLoopBackOff", Duration::from_secs(30), || {
        let t = c.emu(&["get", "pod", "crash"]).ok().stdout;
        t.lines().nth(1).filter(|r| r.contains("CrashLoopBackOff")).map(str::to_string)
    });
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "0/1", "{row}");
    assert!(cols[3].parse::<u32>().unwrap_or(0) >= 1, "RESTARTS counts up: {row}");
    assert!(c.emu(&["logs", "crash"]).ok().stdout.contains("failing"));
    c.emu(&["delete", "pod", "crash", "--grace-period=0"]).ok();

    // An attached throw-away pod (the tutorial's `kubectl run -i --tty ... --restart=Never --rm`):
    // the session's exit code comes back and the pod is gone afterwards.
    let mut child = Command::new(emu_tests::emu_path())
        .args(["run", "dns-test", "-i", "--rm", "--restart=Never", "--image=busybox:1.37", "--cluster", "tverbs2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hostname; exit 3\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dns-test\npod \"dns-test\" deleted\n");
    assert!(c.pods("run=dns-test").is_empty());

    // delete by name, by label and by file.
    assert_eq!(c.emu(&["delete", "pod", "once"]).ok().stdout.trim(), "pod \"once\" deleted");
    assert_eq!(c.emu(&["delete", "pods", "-l", "app=web"]).ok().stdout.trim(), "pod \"web\" deleted");
    let d = c.emu(&["delete", "-f", path.to_str().unwrap()]).ok().stdout;
    assert!(d.contains("namespace \"lab\" deleted") && d.contains("pod \"talker\" deleted"), "{d}");
    // Only the cluster's own DNS pods are left.
    let left = c.emu(&["get", "pods", "-A", "-o", "name"]).ok().stdout;
    assert!(left.lines().all(|l| l.starts_with("pod/coredns-")), "everything deleted: {left}");
}

#[test]
fn clusters_side_by_side_and_selection() {
    let a = Cluster::up("tsidea", &["--nodes", "1"]);
    let b = Cluster::up("tsideb", &["--nodes", "3"]);
    assert_eq!(a.emu(&["get", "nodes", "-o", "name"]).ok().stdout.lines().count(), 1);
    assert_eq!(b.emu(&["get", "nodes", "-o", "name"]).ok().stdout.lines().count(), 3);
    // EMU_CLUSTER picks the cluster when --cluster is absent.
    let out = Command::new(emu_tests::emu_path()).args(["get", "nodes", "-o", "name"]).env("EMU_CLUSTER", "tsideb").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // With several clusters and no choice, the error says how to choose.
    let r = emu(&["get", "nodes"]);
    if r.code != 0 {
        assert!(r.stderr.contains("--cluster") && r.stderr.contains("EMU_CLUSTER"), "{}", r.stderr);
    }
    // A cluster that does not exist.
    let r = emu(&["get", "nodes", "--cluster", "nosuchcluster"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    let s = emu(&["status"]).ok().stdout;
    assert!(s.contains("tsidea") && s.contains("tsideb"), "{s}");
    // Invalid cluster names are refused before anything is created.
    let r = emu(&["up", "--cluster", "Bad_Name"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid cluster name"), "{}", r.stderr);
}

/// A pod created with `spec.nodeName` skips the scheduler, as in Kubernetes, and still gets an
/// address from that node's pod CIDR.
#[test]
fn a_pod_with_a_node_name_runs_there() {
    let c = Cluster::up("tnodename", &["--nodes", "2"]);
    let nodes = c.emu(&["get", "nodes", "-o", "json"]).ok().stdout;
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let last = &nodes["items"].as_array().unwrap().last().unwrap().clone();
    let node = last["metadata"]["name"].as_str().unwrap();
    let cidr = last["spec"]["podCIDR"].as_str().unwrap();
    c.apply(
        "pinned.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: pinned}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: busybox, command: [sleep, \"3600\"]}}]\n"),
    )
    .ok();
    let pod = c.ready_pod("pinned");
    assert_eq!(pod["spec"]["nodeName"], node);
    let ip = emu_tests::pod_ip(&pod);
    let prefix = cidr.rsplit_once('.').unwrap().0;
    assert!(ip.starts_with(&format!("{prefix}.")), "{ip} not in {cidr}");
}

/// kubectl's global flags go before the verb as well as after it: `emu -n kube-system get pods`,
/// `emu --cluster NAME up`, `emu --context emu-NAME get svc` (kubeconfig's name for it).
#[test]
fn global_flags_before_the_verb() {
    emu(&["down", "--cluster", "tglobal"]);
    let up = emu(&["--cluster", "tglobal", "up", "--nodes", "1"]);
    let c = Cluster { name: "tglobal".into() };
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let before = emu(&["--cluster", "tglobal", "-n", "kube-system", "get", "pods", "-o", "name"]).ok().stdout;
    let after = emu(&["get", "pods", "-o", "name", "-n", "kube-system", "--cluster", "tglobal"]).ok().stdout;
    assert!(before.lines().count() == 2 && before.lines().all(|l| l.starts_with("pod/coredns-")), "{before}");
    assert_eq!(before, after);
    let svc = emu(&["--context", "emu-tglobal", "get", "svc"]).ok().stdout;
    assert!(svc.lines().any(|l| l.starts_with("kubernetes ") && l.contains("10.96.0.1")), "{svc}");
    let dns =
        emu(&["--namespace=kube-system", "--cluster=tglobal", "get", "svc", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]).ok().stdout;
    assert_eq!(dns, "10.96.0.10");
    drop(c);
}
