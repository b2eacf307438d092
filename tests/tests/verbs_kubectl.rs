//! The kubectl verbs emu gained for issue 20 (item 3): each compared with what the real kubectl
//! prints against the same cluster over the Kubernetes API (`emu kubeconfig`), where its output
//! is deterministic, else with kubectl's documented format. Each test has a cluster of its own,
//! removed when the test ends, passed or failed.

mod kubectl_support;

use kubectl_support::{cluster, kubectl};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// `emu version` and `emu api-resources` print what kubectl prints: the server's version from
/// the API, the resource types its discovery serves.
#[test]
fn version_and_api_resources() {
    let (c, dir) = cluster("tvkinfo");
    let theirs = kubectl(&dir.0, LIMIT, &["version"]).ok().stdout;
    let ours = c.emu(&["version"]).ok().stdout;
    let server = |t: &str| t.lines().find(|l| l.starts_with("Server Version: ")).map(str::to_string);
    assert_eq!(server(&ours), server(&theirs), "kubectl:\n{theirs}\nemu:\n{ours}");
    assert_eq!(ours, "Client Version: v1.33.0\nServer Version: v1.33.0\n");
    let theirs: serde_json::Value = serde_json::from_str(&kubectl(&dir.0, LIMIT, &["version", "-o", "json"]).ok().stdout).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&c.emu(&["version", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(ours["serverVersion"], theirs["serverVersion"]);
    assert_eq!(c.emu(&["version", "--client"]).ok().stdout, "Client Version: v1.33.0\n");
    let bad = c.emu(&["version", "-o", "wide"]);
    assert_eq!((bad.code, bad.stderr.as_str()), (1, "error: --output must be 'yaml' or 'json'\n"));

    for args in [
        &["api-resources"][..],
        &["api-resources", "-o", "wide"],
        &["api-resources", "-o", "name"],
        &["api-resources", "--namespaced=false"],
        &["api-resources", "--namespaced"],
        &["api-resources", "--api-group=apps"],
        &["api-resources", "--api-group="],
        &["api-resources", "--no-headers"],
        &["api-resources", "--verbs=list", "--sort-by=name"],
        &["api-resources", "--verbs=list,watch", "--sort-by=kind", "-o", "wide"],
        &["api-resources", "--verbs=deletecollection", "--namespaced=false", "-o", "name"],
        &["api-resources", "--verbs=bogus"],
    ] {
        let theirs = kubectl(&dir.0, LIMIT, args).ok().stdout;
        assert_eq!(c.emu(args).ok().stdout, theirs, "kubectl {args:?}");
    }
    same_as_kubectl(&c, &dir.0, &["api-resources", "--sort-by=foo"]);
}

/// Two pods alike, `k` changed by kubectl and `e` by emu with the same commands: each command
/// prints the same (the pod's name aside), fails alike, and leaves the same labels.
fn pod_pair(c: &emu_tests::Cluster, dir: &std::path::Path) {
    for name in ["k", "e"] {
        let r = kubectl(dir, LIMIT, &["run", name, "--image=busybox", "--labels=app=web", "--", "sleep", "3600"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    c.ready_pod("k");
    c.ready_pod("e");
}

#[test]
fn label_and_annotate() {
    let (c, dir) = cluster("tvklabel");
    pod_pair(&c, &dir.0);
    for cmd in [
        "label pod/NAME tier=front",
        // Dry runs change nothing, and say so.
        "label pod NAME dry=1 --dry-run=client",
        "label pod NAME dry=1 --dry-run=server",
        "label pod NAME dry=1 --dry-run=bogus",
        "label pod NAME app=db --dry-run=server",
        "annotate pod NAME note=x --dry-run=server",
        "label pod NAME app=db",
        "label pod NAME app=web",
        "label pod NAME app=db --overwrite",
        "label pod NAME app-",
        "label pod NAME app-",
        "label pod NAME e=5 e-",
        "label pod NAME a==1",
        "label pod NAME",
        "label pod NAME x=1 -o name",
        "annotate pod NAME note=hi",
        "annotate pod NAME note=ho",
        "annotate pod NAME note=ho --overwrite",
        "annotate pod NAME note-",
        "annotate pod NAME",
    ] {
        let theirs = kubectl(&dir.0, LIMIT, &cmd.replace("NAME", "k").split(' ').collect::<Vec<_>>());
        let ours = c.emu(&cmd.replace("NAME", "e").split(' ').collect::<Vec<_>>());
        assert_eq!(
            (ours.code, ours.stdout.replace("pod/e", "pod/NAME"), ours.stderr.as_str()),
            (theirs.code, theirs.stdout.replace("pod/k", "pod/NAME"), theirs.stderr.as_str()),
            "{cmd}"
        );
    }
    let labels = |p: &str| c.emu(&["get", "pod", p, "-o", "jsonpath={.metadata.labels}"]).ok().stdout.replace(&format!("\"{p}\""), "P");
    assert_eq!(labels("e"), labels("k"));
    assert_eq!(c.emu(&["label", "pod", "e", "--list"]).ok().stdout, "tier=front\nx=1\n");
    // Selection by label and --all, in kubectl's words.
    let r = c.emu(&["label", "pods", "-l", "tier=front", "sel=yes"]).ok().stdout;
    assert_eq!(r, "pod/e labeled\npod/k labeled\n");
    let r = c.emu(&["annotate", "pods", "--all", "every=1"]).ok().stdout;
    assert_eq!(r, "pod/e annotated\npod/k annotated\n");
    let r = c.emu(&["label", "pods", "x=2"]);
    assert_eq!((r.code, r.stderr.as_str()), (1, "error: resource(s) were provided, but no name was specified\n"));
    let r = c.emu(&["label", "pod", "nope", "x=2"]);
    assert_eq!((r.code, r.stderr.as_str()), (1, "Error from server (NotFound): pods \"nope\" not found\n"));
}

/// `emu get all` is kubectl's: the kinds of category "all" emu serves, a table each with
/// `kind/name` names; `emu get -w` prints the table, then a line per change laid out as kubectl
/// lays them out.
#[test]
fn get_all_and_watch() {
    let (c, dir) = cluster("tvkall");
    kubectl(&dir.0, LIMIT, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]).ok();
    kubectl(&dir.0, LIMIT, &["expose", "deployment", "web", "--port=80"]).ok();
    c.ready_pods("app=web", 2);
    for args in [&["get", "all"][..], &["get", "all", "-o", "wide"], &["get", "all", "-A"], &["get", "all", "-o", "name"]] {
        let theirs = kubectl(&dir.0, LIMIT, args).ok().stdout;
        let ours = c.emu(args).ok().stdout;
        assert_eq!(emu_tests::table_cells(&ours), emu_tests::table_cells(&theirs), "{args:?}\nkubectl:\n{theirs}\nemu:\n{ours}");
    }
    let none = c.emu(&["get", "all", "-n", "kube-public"]).ok();
    assert_eq!((none.stdout.as_str(), none.stderr.as_str()), ("", "No resources found in kube-public namespace.\n"));

    // Both watch the pods while one comes and goes; every line alike but for ages.
    let watch = ["get", "pods", "-w", "--output-watch-events"];
    let spawn = |mut cmd: Command, file: &str| {
        let out = std::fs::File::create(dir.0.join(file)).unwrap();
        cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap()
    };
    let mut emu_cmd = Command::new(emu_tests::emu_path());
    emu_cmd.args(watch).args(["--cluster", &c.name]);
    let mut children = [spawn(kubectl_support::kubectl_cmd(&dir.0, &watch), "theirs.txt"), spawn(emu_cmd, "ours.txt")];
    std::thread::sleep(Duration::from_secs(2));
    c.emu(&["run", "comer-and-goer", "--image=busybox", "--", "sleep", "3600"]).ok();
    c.ready_pod("comer-and-goer");
    c.emu(&["delete", "pod", "comer-and-goer", "--grace-period=1"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let theirs = std::fs::read_to_string(dir.0.join("theirs.txt")).unwrap();
    let ours = std::fs::read_to_string(dir.0.join("ours.txt")).unwrap();
    assert!(theirs.lines().any(|l| l.starts_with("DELETED    comer-and-goer ")), "{theirs}");
    assert_eq!(emu_tests::table_cells(&ours), emu_tests::table_cells(&theirs), "kubectl:\n{theirs}\nemu:\n{ours}");
    // Column widths too: each line as wide as kubectl's.
    let widths = |t: &str| t.lines().map(|l| l.split_whitespace().next().map(|_| l.find("comer").unwrap_or(0))).collect::<Vec<_>>();
    assert_eq!(widths(&ours), widths(&theirs), "kubectl:\n{theirs}\nemu:\n{ours}");
    // -o yaml|json|jsonpath under --watch: each object whole, yaml's separated by `---`.
    for output in ["yaml", "json", "jsonpath={.metadata.name}"] {
        let args = ["get", "pods", "-l", "app=web", "-w", "-o", output];
        let theirs = kubectl(&dir.0, Duration::from_secs(3), &args).stdout;
        let ours = Command::new("timeout")
            .args(["-s", "KILL", "3"])
            .arg(emu_tests::emu_path())
            .args(args)
            .args(["--cluster", &c.name])
            .output()
            .unwrap();
        assert!(!theirs.is_empty(), "{output}");
        assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs, "{output}");
    }
    let r = c.emu(&["get", "pods,svc", "-w"]);
    assert_eq!((r.code, r.stderr.as_str()), (1, "error: you may only specify a single resource type\n"));
}

/// `emu wait` meets, times out and fails as kubectl does, on the same objects.
#[test]
fn wait_for_conditions() {
    let (c, dir) = cluster("tvkwait");
    c.emu(&["run", "w", "--image=busybox", "--labels=app=w", "--", "sleep", "3600"]).ok();
    // Waiting from before the pod is ready.
    let r = c.emu(&["wait", "--for=condition=Ready", "pod/w", "--timeout=30s"]).ok();
    assert_eq!(r.stdout, "pod/w condition met\n");
    for cmd in [
        "wait --for=condition=Ready pod/w",
        "wait --for=condition=ready pod w",
        "wait --for=condition=Ready pods -l app=w",
        "wait --for=condition=Ready pods --all",
        "wait --for=jsonpath={.status.phase}=Running pod/w",
        "wait --for=jsonpath={.status.phase} pod/w",
        "wait --for=condition=Ready=False pod/w --timeout=1s",
        "wait --for=jsonpath={.status.phase}=Pending pod/w --timeout=1s",
        "wait --for=condition=Ready pods -l app=nothing --timeout=1s",
        "wait --for=condition=Ready pod/nope --timeout=1s",
        "wait --for=delete pod/nope --timeout=1s",
        "wait --for=create pod/w",
        "wait --for=create pod/later --timeout=1s",
        "wait --for=create pods -l app=nothing --timeout=1s",
        "wait --for=bogus pod/w",
        "wait pod/w",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let theirs = kubectl(&dir.0, LIMIT, &args);
        let ours = c.emu(&args);
        assert_eq!(
            (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
            (theirs.code, theirs.stdout.as_str(), theirs.stderr.as_str()),
            "{cmd}"
        );
    }
    // --for=delete: met when the pod is gone.
    let waiter = Command::new(emu_tests::emu_path())
        .args(["wait", "--for=delete", "pod/w", "--timeout=30s", "--cluster", &c.name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.emu(&["delete", "pod", "w", "--grace-period=1", "--wait=false"]).ok();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "pod/w condition met\n"));
    assert!(c.pods("app=w").is_empty());
    // --for=create: met when the pod appears.
    let waiter = Command::new(emu_tests::emu_path())
        .args(["wait", "--for=create", "pod/later", "--timeout=30s", "--cluster", &c.name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.emu(&["run", "later", "--image=busybox", "--", "sleep", "3600"]).ok();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "pod/later condition met\n"));
}

/// The stored object without what the server fills in per object (ids, times, allocations).
fn comparable(c: &emu_tests::Cluster, what: &str, name: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&c.emu(&["get", what, name, "-o", "json"]).ok().stdout).unwrap();
    let text = v.to_string().replace(&format!("\"{name}\""), "\"NAME\"");
    v = serde_json::from_str(&text).unwrap();
    for key in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "annotations"] {
        v["metadata"].as_object_mut().unwrap().remove(key);
    }
    v.as_object_mut().unwrap().remove("status");
    for key in ["clusterIP", "clusterIPs"] {
        v["spec"].as_object_mut().unwrap().remove(key);
    }
    if let Some(ports) = v["spec"]["ports"].as_array_mut() {
        ports.iter_mut().for_each(|p| drop(p.as_object_mut().unwrap().remove("nodePort")));
    }
    v
}

/// `emu create deployment` and `emu create service TYPE` make the objects kubectl's generators
/// make, with its lines and errors.
#[test]
fn create_deployment_and_services() {
    let (c, dir) = cluster("tvkcreate");
    for (i, (what, cmd)) in [
        ("deployment", "create deployment NAME --image=nginx --replicas=2 --port=80"),
        ("deployment", "create deployment NAME --image=busybox:1.37 --image=nginx"),
        ("service", "create service clusterip NAME --tcp=5678:8080"),
        ("service", "create service clusterip NAME --clusterip=None"),
        ("service", "create service nodeport NAME --tcp=80,443:8443"),
        ("service", "create service loadbalancer NAME --tcp=80"),
    ]
    .into_iter()
    .enumerate()
    {
        let (k, e) = (format!("k{i}"), format!("e{i}"));
        let theirs = kubectl(&dir.0, LIMIT, &cmd.replace("NAME", &k).split(' ').collect::<Vec<_>>()).ok().stdout;
        let ours = c.emu(&cmd.replace("NAME", &e).split(' ').collect::<Vec<_>>()).ok().stdout;
        assert_eq!(ours.replace(&e, "NAME"), theirs.replace(&k, "NAME"), "{cmd}");
        assert_eq!(comparable(&c, what, &e), comparable(&c, what, &k), "{cmd}");
    }
    for cmd in ["create service clusterip x", "create service nodeport x --tcp=abc"] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let theirs = kubectl(&dir.0, LIMIT, &args);
        let ours = c.emu(&args);
        assert_eq!((ours.code, ours.stderr.as_str()), (theirs.code, theirs.stderr.as_str()), "{cmd}");
    }
}

/// `emu logs -l` prints every matching pod's log (the last 10 lines of each, as kubectl), and
/// `--prefix` names each line's pod and container.
#[test]
fn logs_by_selector() {
    let (c, dir) = cluster("tvklogs");
    c.emu(&[
        "run",
        "l1",
        "--image=busybox",
        "--labels=grp=l",
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 15); do echo l1 line $i; done; sleep 3600",
    ])
    .ok();
    c.emu(&["run", "l2", "--image=busybox", "--labels=grp=l", "--", "sh", "-c", "echo l2 only; sleep 3600"]).ok();
    c.ready_pods("grp=l", 2);
    c.wait_for("both logs", Duration::from_secs(20), || {
        let r = c.emu(&["logs", "-l", "grp=l"]);
        (r.code == 0 && r.stdout.contains("l1 line 15") && r.stdout.contains("l2 only")).then_some(())
    });
    let sorted = |t: &str| {
        let mut l: Vec<String> = t.lines().map(str::to_string).collect();
        l.sort();
        l
    };
    for cmd in ["logs -l grp=l", "logs -l grp=l --tail=2", "logs -l grp=l --prefix", "logs l1 --prefix --tail=1", "logs -l grp=nothing"] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let theirs = kubectl(&dir.0, LIMIT, &args);
        let ours = c.emu(&args);
        // kubectl reads the pods' logs at once when it prefixes them: their order is not fixed.
        assert_eq!(
            (ours.code, sorted(&ours.stdout), ours.stderr.as_str()),
            (theirs.code, sorted(&theirs.stdout), theirs.stderr.as_str()),
            "{cmd}"
        );
    }
    assert_eq!(c.emu(&["logs", "-l", "grp=l"]).ok().stdout.lines().count(), 11);
}

/// `emu` and `kubectl` with the same arguments: the same exit code, output and errors. A fatal
/// log line's header (`F1207 19:15:36.474098   14804 `) differs in time and process: only its
/// message is compared.
fn same_as_kubectl(c: &emu_tests::Cluster, dir: &std::path::Path, args: &[&str]) {
    let theirs = kubectl(dir, LIMIT, args);
    let ours = c.emu(args);
    let klog = |t: &str| {
        t.lines().map(|l| if l.starts_with('F') { l.split_once("] ").map_or(l, |x| x.1) } else { l }).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(
        (ours.code, emu_tests::table_cells(&ours.stdout), klog(&ours.stderr)),
        (theirs.code, emu_tests::table_cells(&theirs.stdout), klog(&theirs.stderr)),
        "{args:?}\nkubectl:\n{}{}\nemu:\n{}{}",
        theirs.stdout,
        theirs.stderr,
        ours.stdout,
        ours.stderr
    );
}

/// `emu get --sort-by` orders as kubectl does (natural order of names, times, addresses), and
/// refuses as it does; `--field-selector` selects what kube-apiserver selects, with kubectl's
/// errors.
#[test]
fn sort_by_and_field_selector() {
    let (c, dir) = cluster("tvksort");
    // Created in an order that is neither the names' nor the addresses', a second apart so
    // that their creation times differ.
    for name in ["p-10", "p-2", "p-1"] {
        c.emu(&["run", name, "--image=busybox", "--labels=app=s", "--", "sleep", "3600"]).ok();
        std::thread::sleep(Duration::from_millis(1100));
    }
    c.ready_pods("app=s", 3);
    kubectl(&dir.0, LIMIT, &["create", "deployment", "web", "--image=nginx"]).ok();
    for cmd in [
        "get pods --sort-by=.metadata.name",
        "get pods --sort-by=metadata.name",
        "get pods --sort-by={.metadata.creationTimestamp}",
        "get pods --sort-by=.status.podIP -o wide",
        "get pods --sort-by=.metadata.name -o name",
        "get pods --sort-by={.metadata.creationTimestamp} -o name",
        "get pods --sort-by=.metadata.name -o jsonpath={.items[*].metadata.name}",
        "get pods --sort-by=.spec.containers[0].name -o name",
        "get pods,deployments --sort-by=.metadata.name -o name",
        "get pods -A --sort-by=.metadata.namespace -o name",
        // What kubectl refuses, or leaves out.
        "get pods --sort-by=.foo.bar",
        "get pods --sort-by=.foo.bar -o name",
        "get pods --sort-by={.metadata.name -o name",
        "get pods --sort-by={.metadata.name",
        "get pods --sort-by=.metadata -o name",
        "get pods --sort-by=.metadata.labels",
        "get pods,deployments --sort-by=.metadata.name",
        "get pod p-2 --sort-by=.foo -o name",
        // Field selectors.
        "get pods --field-selector=metadata.name=p-2",
        "get pods --field-selector=metadata.name!=p-2 -o name --sort-by=.metadata.name",
        "get pods --field-selector=status.phase=Running,spec.restartPolicy=Always -o name --sort-by=.metadata.name",
        "get pods -A --field-selector=metadata.namespace=kube-system,status.phase=Running -o name --sort-by=.metadata.name",
        "get pods --field-selector=status.phase=Failed",
        "get pods --field-selector=foo=bar",
        "get deployments --field-selector=spec.replicas=1",
        "get pods --field-selector=nonsense",
        "get deployments --field-selector=metadata.name=web -o name",
        "get pods -l app=s --field-selector=metadata.name=p-1 -o name",
        "get pod p-1 --field-selector=metadata.name=p-1",
    ] {
        same_as_kubectl(&c, &dir.0, &cmd.split(' ').collect::<Vec<_>>());
    }
}

/// `emu set image` updates what kubectl updates, with its lines and errors, and starts the same
/// rolling update; `emu rollout history --revision=N` prints that revision's pod template as
/// kubectl does.
#[test]
fn set_image_and_revision_history() {
    let (c, dir) = cluster("tvkset");
    for name in ["k", "e"] {
        kubectl(&dir.0, LIMIT, &["create", "deployment", name, "--image=nginx"]).ok();
    }
    c.ready_pods("app=k", 1);
    c.ready_pods("app=e", 1);
    // Each deployment's own name and pod-template-hash read as NAME and HASH.
    let masked = |text: &str, name: &str| -> String {
        let text = text.replace(&format!("/{name} "), "/NAME ").replace(&format!("/{name}\n"), "/NAME\n");
        let text = text.replace(&format!("app={name}"), "app=NAME");
        text.lines()
            .map(|l| match l.split_once("pod-template-hash=") {
                Some((before, _)) => format!("{before}pod-template-hash=HASH"),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let rolled = |name: &str| {
        let r = c.emu(&["rollout", "status", &format!("deployment/{name}"), "--timeout=60s"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    for cmd in [
        "set image deployment/NAME nginx=nginx:1.27",
        "set image deployment/NAME nginx=nginx:1.27",
        "set image deployment NAME x=nginx:1.27",
        "set image deployment/NAME nginx=nginx:1.26 x=busybox",
        "set image deployment/NAME *=nginx:1.25 -o name",
        "set image deployment/NAME nginx=nginx:1.24 --dry-run=client",
        "set image deployment/NAME nginx=nginx:1.24 --dry-run=server",
        "set image deployment/NAME",
        "set image deployment/NAME *=a x=b",
        "set image deployment/NAME nginx=nginx w2",
        "set image --all -l app=x deployments x=y",
        "set image svc/kubernetes x=a",
        "set image x=a",
        "set image deployment/nope x=a",
        "rollout history deployment/NAME",
        "rollout history deployment/NAME --revision=2",
        "rollout history deployment/NAME --revision=9",
    ] {
        if cmd.starts_with("rollout") {
            rolled("k");
            rolled("e");
        }
        let theirs = kubectl(&dir.0, LIMIT, &cmd.replace("NAME", "k").split(' ').collect::<Vec<_>>());
        let ours = c.emu(&cmd.replace("NAME", "e").split(' ').collect::<Vec<_>>());
        assert_eq!(
            (ours.code, masked(&ours.stdout, "e"), masked(&ours.stderr, "e")),
            (theirs.code, masked(&theirs.stdout, "k"), masked(&theirs.stderr, "k")),
            "{cmd}"
        );
    }
    // The update rolled out: the new pod runs the image set last.
    let image = "jsonpath={.items[*].spec.containers[0].image}";
    assert_eq!(c.emu(&["get", "pods", "-l", "app=e", "-o", image]).ok().stdout, "nginx:1.25");
    // -l selects what to update.
    let r = c.emu(&["set", "image", "deployments", "-l", "app=e", "nginx=nginx:1.27"]).ok();
    assert_eq!(r.stdout, "deployment.apps/e image updated\n");
    // --local updates a file's objects without the cluster.
    let file = dir.0.join("web.yaml");
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  \
                    template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - {name: nginx, image: nginx}\n";
    std::fs::write(&file, manifest).unwrap();
    let file = file.display().to_string();
    for cmd in [
        "set image -f FILE nginx=nginx:1.21 --local",
        "set image -f FILE nginx=nginx --local",
        "set image -f FILE nginx=nginx:1.21 x=y --local -o name",
        "set image deployment/web nginx=nginx:1.21 --local",
    ] {
        same_as_kubectl(&c, &dir.0, &cmd.replace("FILE", &file).split(' ').collect::<Vec<_>>());
    }
    let r = c.emu(&["set", "image", "-f", &file, "nginx=nginx:1.21", "--local", "-o", "json"]).ok().stdout;
    let updated: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(updated.pointer("/spec/template/spec/containers/0/image"), Some(&serde_json::json!("nginx:1.21")));
}

/// `emu explain` prints what kubectl explain prints from the same server's OpenAPI schemas:
/// kinds, fields down a path (through lists and maps), the whole tree with --recursive, and
/// kubectl's errors.
#[test]
fn explain_fields() {
    let (c, dir) = cluster("tvkexpl");
    for cmd in [
        "explain pods",
        "explain deployment.spec.strategy",
        "explain pods.spec.containers.ports",
        "explain svc.spec.selector",
        "explain rs.spec.template.spec.containers.resources",
        "explain nodes.status",
        "explain endpointslices.endpoints",
        "explain roles.rules",
        "explain deployments --recursive",
        "explain pods --recursive",
        "explain deployments.apps.spec.replicas",
        "explain deployment.spec.foo",
        "explain foo",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let theirs = kubectl(&dir.0, LIMIT, &args);
        let ours = c.emu(&args);
        assert_eq!(
            (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
            (theirs.code, theirs.stdout.as_str(), theirs.stderr.as_str()),
            "{cmd}"
        );
    }
}

/// `emu get -w --field-selector` tells what kube-apiserver's filtered watch tells (a pod is
/// ADDED when it starts matching), and `-w --sort-by` sorts the first table with kubectl's
/// warning.
#[test]
fn watch_with_field_selector_and_sort() {
    let (c, dir) = cluster("tvkwfs");
    for name in ["b", "a"] {
        c.emu(&["run", name, "--image=busybox", "--", "sleep", "3600"]).ok();
        std::thread::sleep(Duration::from_millis(1100));
    }
    c.ready_pod("a");
    let sorted = ["get", "pods", "-w", "--sort-by=.metadata.creationTimestamp"];
    let theirs = kubectl(&dir.0, Duration::from_secs(3), &sorted);
    let ours = Command::new("timeout")
        .args(["-s", "KILL", "3"])
        .arg(emu_tests::emu_path())
        .args(sorted)
        .args(["--cluster", &c.name])
        .output()
        .unwrap();
    assert_eq!(emu_tests::table_cells(&String::from_utf8_lossy(&ours.stdout)), emu_tests::table_cells(&theirs.stdout));
    assert_eq!(String::from_utf8_lossy(&ours.stderr), theirs.stderr);

    let watch = ["get", "pods", "-w", "--output-watch-events", "--field-selector=status.phase=Running,metadata.name!=a"];
    let spawn = |mut cmd: Command, file: &str| {
        let out = std::fs::File::create(dir.0.join(file)).unwrap();
        cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap()
    };
    let mut emu_cmd = Command::new(emu_tests::emu_path());
    emu_cmd.args(watch).args(["--cluster", &c.name]);
    let mut children = [spawn(kubectl_support::kubectl_cmd(&dir.0, &watch), "theirs.txt"), spawn(emu_cmd, "ours.txt")];
    std::thread::sleep(Duration::from_secs(2));
    c.emu(&["run", "c", "--image=busybox", "--", "sleep", "3600"]).ok();
    c.ready_pod("c");
    c.emu(&["delete", "pod", "c", "--grace-period=1"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let theirs = std::fs::read_to_string(dir.0.join("theirs.txt")).unwrap();
    let ours = std::fs::read_to_string(dir.0.join("ours.txt")).unwrap();
    assert!(theirs.lines().any(|l| l.starts_with("DELETED    c ")), "{theirs}");
    assert_eq!(emu_tests::table_cells(&ours), emu_tests::table_cells(&theirs), "kubectl:\n{theirs}\nemu:\n{ours}");
}
