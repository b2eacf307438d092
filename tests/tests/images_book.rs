//! The images for the book and for tests (issue 21, item 1), served by the installed emu-agnhost:
//! `luksa/kubia` and `luksa/kubia-unhealthy` as chapters 4 and 5 of "Kubernetes in Action" use
//! them, Kubernetes' agnhost (`netexec`, `serve-hostname`, `pause`), the pause and serve_hostname
//! images.

use emu_tests::{name, pod_ip, Cluster};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const KUBIA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: kubia}
spec:
  replicas: 3
  selector: {matchLabels: {app: kubia}}
  template:
    metadata: {labels: {app: kubia}}
    spec:
      containers: [{name: kubia, image: luksa/kubia, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: kubia}
spec:
  selector: {app: kubia}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: kubia-liveness}
spec:
  containers:
  - name: kubia
    image: luksa/kubia-unhealthy
    livenessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: nginx, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnames}
spec:
  containers:
  - {name: agnhost, image: "registry.k8s.io/e2e-test-images/agnhost:2.53", args: [serve-hostname]}
---
apiVersion: v1
kind: Pod
metadata: {name: old-hostnames}
spec:
  containers: [{name: serve-hostname, image: "registry.k8s.io/serve_hostname:v1.4"}]
---
apiVersion: v1
kind: Pod
metadata: {name: pause}
spec:
  containers: [{name: pause, image: "registry.k8s.io/pause:3.10"}]
"#;

fn restart_count(pod: &Value) -> u64 {
    pod["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0)
}

/// The book's chapter: a kubia Deployment behind a Service, `kubectl exec` into it with bash, the
/// unhealthy app restarted by its liveness probe; serve-hostname and pause beside it.
#[test]
fn kubia_as_the_book_runs_it() {
    let c = Cluster::up("tkubia1", &["--nodes", "2"]);
    c.apply("kubia.yaml", KUBIA).ok();
    let kubias = c.ready_pods("app=kubia", 3);
    let names: BTreeSet<String> = kubias.iter().map(name).collect();
    let first = name(&kubias[0]);
    let ip = c.cluster_ip("kubia");

    // `kubectl exec kubia-7nog1 -- curl -s http://10.111.249.153`, many times: every pod answers.
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        let out = c.emu(&["exec", &first, "--", "curl", "-s", "-m", "5", &format!("http://{ip}")]).ok().stdout;
        let pod = out.strip_prefix("You've hit ").and_then(|r| r.strip_suffix('\n')).unwrap_or_else(|| panic!("{out:?}"));
        assert!(names.contains(pod), "{pod} is not one of {names:?}");
        seen.insert(pod.to_string());
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen, names, "the Service spreads requests over the three pods");
    // app.js logs each request with node's IPv4-mapped address of the client (here the pod, or
    // its node's address on the pod network where the ClusterIP's path masquerades).
    let logged = c.wait_for("a kubia pod's request log", Duration::from_secs(5), || {
        kubias.iter().map(|p| c.emu(&["logs", &name(p)]).ok().stdout).find(|log| log.contains("Received request from"))
    });
    assert!(logged.starts_with("Kubia server starting...\n"), "{logged}");
    for line in logged.lines().skip(1) {
        let client = line.strip_prefix("Received request from ::ffff:").unwrap_or_else(|| panic!("{logged}"));
        assert!(client.parse::<std::net::Ipv4Addr>().is_ok(), "{logged}");
    }
    // `kubectl exec -it kubia-3inly bash`: the image has bash, and the pod's DNS configuration.
    let bash = c.emu(&["exec", &first, "--", "bash", "-c", "echo $BASH_VERSION; cat /etc/resolv.conf"]).ok().stdout;
    assert!(bash.lines().next().is_some_and(|v| v.starts_with('5')), "{bash}");
    assert!(bash.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{bash}");
    assert!(c.emu(&["exec", &first, "--", "cat", "/app.js"]).ok().stdout.contains("You've hit "));

    // Replicas told apart the classic way: the image's files are writable per container.
    let web = c.ready_pod("web");
    c.emu(&["exec", "web", "--", "sh", "-c", "echo pod-1 > /usr/share/nginx/html/index.html"]).ok();
    let page = c.emu(&["exec", &first, "--", "curl", "-s", "-m", "5", &format!("http://{}/", pod_ip(&web))]).ok().stdout;
    assert_eq!(page, "pod-1\n");

    // agnhost's serve-hostname and the old serve_hostname image: the pod's name on 9376.
    for pod in ["hostnames", "old-hostnames"] {
        let p = c.ready_pod(pod);
        let url = format!("http://{}:9376/", pod_ip(&p));
        let r = c.wait_for(&format!("{pod} answering"), Duration::from_secs(10), || {
            let r = c.emu(&["exec", &first, "--", "curl", "-s", "-m", "2", &url]);
            (r.code == 0).then_some(r.stdout)
        });
        assert_eq!(r, pod, "{pod}");
    }
    let log = c.emu(&["logs", "hostnames"]).ok().stdout;
    assert!(log.contains(" Serving on port 9376.\n") && log.contains(" HTTP request from "), "{log}");

    // The liveness example: five good answers, then 500 "I'm not well. Please restart me!", and
    // the kubelet restarts the container.
    let restarted = c.wait_for("kubia-liveness restarted by its liveness probe", Duration::from_secs(40), || {
        c.pods("").into_iter().find(|p| name(p) == "kubia-liveness" && restart_count(p) >= 1)
    });
    let last = &restarted["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert!(last.is_object(), "{restarted}");
    // The probes were its requests: at least the five answered and the failed ones.
    let previous = c.emu(&["logs", "kubia-liveness", "--previous"]).ok().stdout;
    assert!(previous.matches("Received request from ").count() >= 6, "{previous}");

    // pause: runs (as 65535), and goes at once when its pod is deleted (SIGTERM ends it).
    c.ready_pod("pause");
    let started = Instant::now();
    c.emu(&["delete", "pod", "pause"]).ok();
    assert!(started.elapsed() < Duration::from_secs(10), "deleting the pause pod took {:?}", started.elapsed());
}

const NETEXEC: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: netexec-a, labels: {app: netexec}}
spec:
  nodeName: node-1
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [netexec, --http-port=8080, --udp-port=8081]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: netexec-b, labels: {app: other}}
spec:
  nodeName: node-2
  containers:
  - {name: agnhost, image: "k8s.gcr.io/e2e-test-images/agnhost:2.21", args: [netexec]}
---
apiVersion: v1
kind: Pod
metadata: {name: usage}
spec:
  restartPolicy: Never
  containers: [{name: agnhost, image: "registry.k8s.io/e2e-test-images/agnhost:2.53", command: [/agnhost]}]
"#;

fn netexec_service(policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: netexec}}\nspec:\n  type: NodePort\n  externalTrafficPolicy: {policy}\n  \
         selector: {{app: netexec}}\n  ports: [{{port: 8080, nodePort: 30123}}]\n"
    )
}

/// agnhost netexec: its routes between two pods, UDP through `/dial`, and `/clientip` through a
/// NodePort from the outside world (the client's address with `Local`, a node's with `Cluster`).
#[test]
fn agnhost_netexec_between_pods_and_from_outside() {
    let c = Cluster::up("tagnhst1", &["--nodes", "2"]);
    c.apply("netexec.yaml", NETEXEC).ok();
    c.apply("svc.yaml", &netexec_service("Local")).ok();
    let (a, b) = (c.ready_pod("netexec-a"), c.ready_pod("netexec-b"));
    let (a_ip, b_ip) = (pod_ip(&a), pod_ip(&b));
    // curl in pod a (the image has curl, as agnhost's has).
    let curl = |url: &str| c.emu(&["exec", "netexec-a", "--", "curl", "-sS", "-m", "10", url]);
    let b_url = |path: &str| format!("http://{b_ip}:8080{path}");

    assert_eq!(curl(&b_url("/hostname")).ok().stdout, "netexec-b");
    assert_eq!(curl(&b_url("/echo?msg=x")).ok().stdout, "x");
    let client = curl(&b_url("/clientip")).ok().stdout;
    assert!(client.starts_with(&format!("{a_ip}:")), "pod b sees pod a's address and port: {client}");
    assert!(curl(&b_url("/")).ok().stdout.starts_with("NOW: "));
    let shell = curl(&b_url("/shell?cmd=hostname")).ok().stdout;
    assert_eq!(shell, r#"{"output":"netexec-b\n"}"#);

    // /dial from a to b, over HTTP and UDP (agnhost's UDP server: hostname, echo).
    let dial = |query: &str| curl(&format!("http://127.0.0.1:8080/dial?{query}&host={b_ip}")).ok().stdout;
    assert_eq!(dial("request=hostname&protocol=http&port=8080&tries=2"), r#"{"responses":["netexec-b","netexec-b"]}"#);
    assert_eq!(dial("request=hostname&protocol=udp&port=8081&tries=1"), r#"{"responses":["netexec-b"]}"#);
    assert_eq!(dial("request=echo%20hello&protocol=udp&port=8081&tries=1"), r#"{"responses":["hello"]}"#);
    let refused = dial("request=hostname&protocol=http&port=9999&tries=1");
    assert!(refused.starts_with(r#"{"errors":["Get \"http://"#) && refused.contains("connection refused"), "{refused}");

    // Through the NodePort from the outside world (198.51.100.1): with `Local`, on the node of
    // the endpoint (node-1), the pod sees the client itself.
    let outside = |node_ip: &str| c.emu(&["outside", "--", "curl", "-sS", "-m", "3", &format!("http://{node_ip}:30123/clientip")]);
    let local = c.wait_for("the node port on node-1", Duration::from_secs(10), || {
        let r = outside("198.51.100.2");
        (r.code == 0).then_some(r.stdout)
    });
    assert!(local.starts_with("198.51.100.1:"), "Local keeps the client's address: {local}");
    // With `Cluster`, any node forwards, masquerading: the pod sees a node's address.
    c.apply("svc.yaml", &netexec_service("Cluster")).ok();
    let via_node_2 = c.wait_for("the node port on node-2 with Cluster", Duration::from_secs(10), || {
        let r = outside("198.51.100.3");
        (r.code == 0).then_some(r.stdout)
    });
    // node-2 forwards to the pod on node-1 with its own address on the nodes' network.
    let seen_ip = via_node_2.rsplit_once(':').map(|(ip, _)| ip.to_string()).unwrap_or_default();
    let node_2 = c.emu(&["get", "node", "node-2", "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]).ok().stdout;
    assert_eq!(seen_ip, node_2.trim(), "Cluster: node-2's address, not the client's: {via_node_2}");

    // /exit?code=3: no answer, the container exits 3 and is restarted.
    let r = curl(&b_url("/exit?code=3"));
    assert_ne!(r.code, 0, "no answer to /exit: {}", r.stdout);
    let b = c.wait_for("netexec-b restarted", Duration::from_secs(20), || {
        c.pods("").into_iter().find(|p| name(p) == "netexec-b" && restart_count(p) >= 1)
    });
    assert_eq!(b["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 3, "{b}");

    // /agnhost alone prints its usage and exits 0.
    let usage = c.wait_for("the usage pod done", Duration::from_secs(20), || {
        c.pods("").into_iter().find(|p| name(p) == "usage" && p["status"]["phase"] == "Succeeded")
    });
    assert_eq!(usage["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
    let log = c.emu(&["logs", "usage"]).ok().stdout;
    assert!(log.starts_with("Usage:\n  app [command]\n"), "{log}");
}
