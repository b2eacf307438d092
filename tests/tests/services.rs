//! The tutorial's "Creating a Service", "Accessing the Service" sections and the service proxy's
//! data path, on real emulated clusters.

use emu_tests::{is_ready, name, pod_ip as ip, Cluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

fn node_names(c: &Cluster) -> Vec<String> {
    let nodes: Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    nodes["items"].as_array().unwrap().iter().map(|n| n["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

/// `count` ready pods by label, not counting pods being deleted (unlike `Cluster::ready_pods`,
/// which waits for them to go: here a replacement runs while its predecessor terminates).
fn ready_pods(c: &Cluster, selector: &str, count: usize) -> Vec<Value> {
    c.wait_for(&format!("{count} ready pods {selector}"), Duration::from_secs(30), || {
        let pods: Vec<Value> = c.pods(selector).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
        (pods.len() == count && pods.iter().all(is_ready)).then_some(pods)
    })
}

/// The `*SERVICE*` lines of a container's environment (the tutorial's `printenv | grep SERVICE`).
fn service_env(c: &Cluster, pod: &str) -> Vec<String> {
    let env = c.emu(&["exec", pod, "--", "printenv"]).ok().stdout;
    let mut lines: Vec<String> = env.lines().filter(|l| l.contains("SERVICE")).map(str::to_string).collect();
    lines.sort();
    lines
}

/// How many requests for `path` each pod's access log shows (nginx's error log, in the same
/// stream, also names a missing file's path).
fn hits(c: &Cluster, pods: &[Value], path: &str) -> BTreeMap<String, usize> {
    let request = format!("] \"GET {path} HTTP/");
    pods.iter().map(|p| (name(p), c.emu(&["logs", &name(p)]).ok().stdout.matches(&request).count())).collect()
}

#[test]
fn tutorial_creating_and_accessing_the_service() {
    let c = Cluster::up("tsvc", &[SCENARIO]);
    let before = ready_pods(&c, "run=my-nginx", 2);
    let old_pod = name(&before[0]);
    // Pods started before the service know only the `kubernetes` service.
    assert_eq!(
        service_env(&c, &old_pod),
        ["KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443"]
    );

    assert_eq!(c.emu(&["expose", "deployment/my-nginx"]).ok().stdout, "service/my-nginx exposed\n");
    let again = c.emu(&["expose", "deployment/my-nginx"]);
    assert_eq!(again.code, 1);
    assert_eq!(again.stderr.trim(), "Error from server (AlreadyExists): services \"my-nginx\" already exists");

    let vip = c.cluster_ip("my-nginx");
    let octets: Vec<u8> = vip.split('.').map(|o| o.parse().unwrap()).collect();
    assert!(octets[0] == 10 && (96..112).contains(&octets[1]), "ClusterIP {vip} must come from 10.96.0.0/12");
    let table = c.emu(&["get", "svc", "my-nginx"]).ok().stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], &["my-nginx", "ClusterIP", vip.as_str(), "<none>", "80/TCP"], "{table}");

    // Both pods are endpoints, in `get ep` and in `describe svc`.
    let ips: Vec<String> = before.iter().map(ip).collect();
    let ep = c.wait_for("both endpoints", Duration::from_secs(5), || {
        let r = c.emu(&["get", "ep", "my-nginx"]).ok();
        ips.iter().all(|i| r.stdout.contains(&format!("{i}:80"))).then_some(r)
    });
    assert!(ep.stderr.contains("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"), "{}", ep.stderr);
    let describe = c.emu(&["describe", "svc", "my-nginx"]).ok().stdout;
    assert!(describe.contains("Port:                     <unset>  80/TCP\n"), "{describe}");
    assert!(describe.contains("TargetPort:               80/TCP\n"), "{describe}");
    let endpoints_line = describe.lines().find(|l| l.starts_with("Endpoints:")).expect("Endpoints line");
    for i in &ips {
        assert!(endpoints_line.contains(&format!("{i}:80")), "{describe}");
    }

    // The ClusterIP answers from every node and from a pod.
    for node in node_names(&c) {
        let page = c.emu(&["ssh", &node, "--", "curl", "-s", "--max-time", "5", &format!("http://{vip}:80/")]).ok().stdout;
        assert!(page.contains("Welcome to nginx!"), "from node {node}: {page}");
    }
    let page = c.emu(&["exec", &old_pod, "--", "curl", "-s", "--max-time", "5", &format!("http://{vip}/")]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "from pod: {page}");

    // 200 new connections from a third pod: both endpoints answer, each 30–70%.
    c.emu(&["run", "client", "--image=radial/busyboxplus:curl", "--", "sleep", "3600"]).ok();
    c.wait_for("client pod Running", Duration::from_secs(20), || {
        (c.pods("run=client").first()?["status"]["phase"] == "Running").then_some(())
    });
    let loop_cmd = format!("for i in $(seq 200); do curl -s -o /dev/null --max-time 5 http://{vip}/lb-check; done");
    c.emu(&["exec", "client", "--", "sh", "-c", &loop_cmd]).ok();
    let counts = c.wait_for("200 logged requests", Duration::from_secs(5), || {
        let h = hits(&c, &before, "/lb-check");
        (h.values().sum::<usize>() == 200).then_some(h)
    });
    for (pod, n) in &counts {
        assert!((60..=140).contains(n), "pod {pod} answered {n} of 200: {counts:?}");
    }

    // Recreating the pods (the tutorial's fix) gives them the service's variables.
    c.emu(&["scale", "deployment", "my-nginx", "--replicas=0"]).ok();
    c.wait_for("no my-nginx pods", Duration::from_secs(30), || c.pods("run=my-nginx").is_empty().then_some(()));
    c.emu(&["scale", "deployment", "my-nginx", "--replicas=2"]).ok();
    let after = ready_pods(&c, "run=my-nginx", 2);
    for p in &after {
        assert_eq!(
            service_env(&c, &name(p)),
            [
                "KUBERNETES_SERVICE_HOST=10.96.0.1".to_string(),
                "KUBERNETES_SERVICE_PORT=443".into(),
                "KUBERNETES_SERVICE_PORT_HTTPS=443".into(),
                format!("MY_NGINX_SERVICE_HOST={vip}"),
                "MY_NGINX_SERVICE_PORT=80".into(),
            ]
        );
        let env = c.emu(&["exec", &name(p), "--", "printenv"]).ok().stdout;
        for want in [
            format!("MY_NGINX_PORT=tcp://{vip}:80"),
            format!("MY_NGINX_PORT_80_TCP_ADDR={vip}"),
            "MY_NGINX_PORT_80_TCP_PROTO=tcp".into(),
            "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443".into(),
        ] {
            assert!(env.lines().any(|l| l == want), "{want} missing in {env}");
        }
    }
    // The client pod, started after the service, has them too; the pods land on both nodes.
    assert!(service_env(&c, "client").contains(&format!("MY_NGINX_SERVICE_HOST={vip}")));
    let nodes: std::collections::BTreeSet<&str> = after.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "replicas of a service are spread over the nodes");
}

#[test]
fn endpoints_and_rules_follow_pods_without_failed_requests() {
    let c = Cluster::up("tsvcep", &[SCENARIO]);
    c.emu(&["expose", "deployment/my-nginx"]).ok();
    let vip = c.cluster_ip("my-nginx");
    let pods = ready_pods(&c, "run=my-nginx", 2);
    let nodes = node_names(&c);
    let rules_have = |pod_ip: &str| -> Vec<bool> {
        nodes
            .iter()
            .map(|n| {
                let table = c.emu(&["ssh", n, "--", "nft", "list", "table", "ip", "emu"]).ok().stdout;
                table.contains(&format!("{pod_ip}:")) || table.contains(&format!("{pod_ip} "))
            })
            .collect()
    };
    c.wait_for("rules for both pods on every node", Duration::from_secs(5), || {
        pods.iter().all(|p| rules_have(&ip(p)).iter().all(|b| *b)).then_some(())
    });

    // A client loops on the ClusterIP while the pods are replaced one by one.
    c.emu(&[
        "run",
        "looper",
        "--image=radial/busyboxplus:curl",
        "--",
        "sh",
        "-c",
        &format!("while true; do if curl -s -o /dev/null --max-time 2 http://{vip}/; then echo ok; else echo FAIL; fi; sleep 0.02; done"),
    ])
    .ok();
    c.wait_for("looper running", Duration::from_secs(20), || (c.pods("run=looper").first()?["status"]["phase"] == "Running").then_some(()));
    std::thread::sleep(Duration::from_millis(500));

    let mut current = pods.clone();
    for victim in pods.iter() {
        let deleted_at = Instant::now();
        c.emu(&["delete", "pod", &name(victim), "--wait=false"]).ok();
        // Gone from Endpoints and from every node's rules within 1 s.
        c.wait_for("the deleted pod to leave the endpoints", Duration::from_secs(1), || {
            let ep = c.emu(&["get", "ep", "my-nginx"]).ok().stdout;
            (!ep.contains(&format!("{}:80", ip(victim)))).then_some(())
        });
        c.wait_for("the deleted pod to leave every node's rules", Duration::from_secs(1), || {
            rules_have(&ip(victim)).iter().all(|b| !b).then_some(())
        });
        assert!(deleted_at.elapsed() < Duration::from_millis(1500));
        // Its replacement joins within 1 s of being ready.
        let fresh = ready_pods(&c, "run=my-nginx", 2);
        let new_pod = fresh.iter().find(|p| current.iter().all(|o| name(o) != name(p))).expect("a replacement pod").clone();
        c.wait_for("the new pod in the endpoints and rules", Duration::from_secs(1), || {
            let ep = c.emu(&["get", "ep", "my-nginx"]).ok().stdout;
            (ep.contains(&format!("{}:80", ip(&new_pod))) && rules_have(&ip(&new_pod)).iter().all(|b| *b)).then_some(())
        });
        current = fresh;
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = c.emu(&["logs", "looper"]).ok().stdout;
    let (ok, failed) = (log.matches("ok").count(), log.matches("FAIL").count());
    assert!(ok > 20, "the client must have looped: {log}");
    assert_eq!(failed, 0, "{failed} failed requests during the replacement ({ok} ok)");
}

const PROBED_PODS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: probed}
spec:
  selector: {probe: "yes"}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: by-exec, labels: {probe: "yes"}}
spec:
  containers:
  - name: web
    image: nginx
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: by-http, labels: {probe: "yes"}}
spec:
  containers:
  - name: web
    image: nginx
    readinessProbe:
      httpGet: {path: /, port: 80}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: by-tcp, labels: {probe: "yes"}}
spec:
  containers:
  - name: web
    image: nginx
    readinessProbe:
      tcpSocket: {port: 8081}
      periodSeconds: 1
"#;

fn ready_column(c: &Cluster, pod: &str) -> String {
    let table = c.emu(&["get", "pod", pod]).ok().stdout;
    table.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_string()
}

#[test]
fn readiness_probes_gate_ready_and_endpoints() {
    let c = Cluster::up("tsvcprobe", &[]);
    c.apply("probed.yaml", PROBED_PODS).ok();
    let pod_ip = |name: &str| {
        c.wait_for(&format!("{name} has an IP"), Duration::from_secs(20), || {
            let p: Value = serde_json::from_str(&c.emu(&["get", "pod", name, "-o", "json"]).ok().stdout).ok()?;
            (p["status"]["phase"] == "Running").then(|| ip(&p))
        })
    };
    let (exec_ip, http_ip, tcp_ip) = (pod_ip("by-exec"), pod_ip("by-http"), pod_ip("by-tcp"));
    let ready_endpoints = || c.emu(&["get", "ep", "probed"]).ok().stdout;

    // httpGet on nginx's page passes at once; the others do not pass.
    c.wait_for("by-http ready", Duration::from_secs(5), || (ready_column(&c, "by-http") == "1/1").then_some(()));
    c.wait_for("by-http in the endpoints", Duration::from_secs(2), || ready_endpoints().contains(&format!("{http_ip}:80")).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ready_column(&c, "by-exec"), "0/1");
    assert_eq!(ready_column(&c, "by-tcp"), "0/1");
    let ep = ready_endpoints();
    assert!(!ep.contains(&exec_ip) && !ep.contains(&tcp_ip), "unready pods are not ready endpoints: {ep}");
    let slices = c.emu(&["get", "endpointslices", "-l", "kubernetes.io/service-name=probed", "-o", "json"]).ok().stdout;
    let slices: Value = serde_json::from_str(&slices).unwrap();
    let endpoints: Vec<&Value> =
        slices["items"].as_array().unwrap().iter().flat_map(|s| s["endpoints"].as_array().unwrap().iter()).collect();
    assert_eq!(endpoints.len(), 3, "the slice lists every pod, ready or not: {slices}");
    let tcp = endpoints.iter().find(|e| e["addresses"][0] == tcp_ip.as_str()).unwrap();
    assert_eq!(tcp["conditions"]["ready"], false);

    // The exec probe passes once its file exists, and fails again (3 failures) once it is gone.
    c.emu(&["exec", "by-exec", "--", "sh", "-c", "echo ok > /tmp/ready"]).ok();
    c.wait_for("by-exec ready", Duration::from_secs(3), || (ready_column(&c, "by-exec") == "1/1").then_some(()));
    c.wait_for("by-exec in the endpoints", Duration::from_secs(2), || ready_endpoints().contains(&format!("{exec_ip}:80")).then_some(()));
    c.emu(&["exec", "by-exec", "--", "rm", "/tmp/ready"]).ok();
    c.wait_for("by-exec unready", Duration::from_secs(6), || (ready_column(&c, "by-exec") == "0/1").then_some(()));
    c.wait_for("by-exec out of the endpoints", Duration::from_secs(2), || (!ready_endpoints().contains(&exec_ip)).then_some(()));
}

#[test]
fn service_first_scenario_spreads_pods_and_gives_them_variables_then_delete_svc() {
    let c = Cluster::up("tsvcfirst", &[concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx-with-service.yaml")]);
    let vip = c.cluster_ip("my-nginx");
    let pods = ready_pods(&c, "run=my-nginx", 2);
    let nodes: std::collections::BTreeSet<&str> = pods.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "pods of a service spread over the nodes");
    for p in &pods {
        assert!(service_env(&c, &name(p)).contains(&format!("MY_NGINX_SERVICE_HOST={vip}")), "created after the service");
    }
    let page = c.emu(&["exec", &name(&pods[0]), "--", "curl", "-s", "--max-time", "5", &format!("http://{vip}/")]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");

    // `delete svc` removes the Service, its Endpoints and slices, and every node's rules for it.
    assert_eq!(c.emu(&["delete", "svc", "my-nginx"]).ok().stdout, "service \"my-nginx\" deleted\n");
    c.wait_for("endpoints gone", Duration::from_secs(2), || (c.emu(&["get", "ep", "my-nginx"]).code != 0).then_some(()));
    c.wait_for("slices gone", Duration::from_secs(2), || {
        (!c.emu(&["get", "endpointslices"]).ok().stdout.contains("my-nginx")).then_some(())
    });
    c.wait_for("rules gone on every node", Duration::from_secs(2), || {
        node_names(&c)
            .iter()
            .all(|n| !c.emu(&["ssh", n, "--", "nft", "list", "table", "ip", "emu"]).ok().stdout.contains(&vip))
            .then_some(())
    });
    let refused = c.emu(&["exec", &name(&pods[0]), "--", "curl", "-s", "--max-time", "2", &format!("http://{vip}/")]);
    assert_ne!(refused.code, 0, "a deleted service's ClusterIP answers nothing");
}
