//! Many machines, one cluster (issue 18), with emulated hosts: `emu up --hosts 3 --nodes 6`
//! makes three hosts on a LAN of their own (192.0.2.0/24); the second and third join the first
//! with `emu join`, the command a real machine runs. Checked: nodes Ready on their hosts, a
//! Deployment spread over every host, pod to pod across hosts with the client's own address in
//! nginx's log, full-size segments across the VXLAN overlay, ClusterIP, DNS, NodePort on a node
//! of each host from the outside world, a LoadBalancer; exec and logs of pods on other hosts; the
//! security of joining (CA hash, tokens, node certificates); the host's own network namespace
//! untouched; nothing left after `emu down`. Each node's host shows in `get nodes -o wide`, emu's
//! and the real kubectl's alike.

mod kubectl_support;

use base64::Engine;
use emu_tests::{name, pod_ip, Cluster, HostState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

const CLUSTER: &str = "thosts";

const WEB: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: big}
data: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
        volumeMounts: [{name: big, mountPath: /usr/share/nginx/html}]
      volumes: [{name: big, configMap: {name: big}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
"#;

/// Bytes of the file nginx serves across hosts: many full-size segments.
const BIG: usize = 600_000;

fn nodes(c: &Cluster) -> Vec<Value> {
    let v: Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn host_of(node: &Value) -> String {
    node["metadata"]["labels"]["emu.dev/host"].as_str().unwrap_or_default().to_string()
}

/// Each node's cell of the last column of a `get nodes -o wide` table, which must be HOST, after
/// kubectl's columns.
fn host_column(table: &str) -> BTreeMap<String, String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.ends_with("   CONTAINER-RUNTIME   HOST"), "HOST, last:\n{table}");
    // Left-aligned columns: a row's last cell starts where its header does.
    let at = header.rfind("HOST").unwrap();
    lines.map(|l| (l.split_whitespace().next().unwrap().to_string(), l.get(at..).unwrap_or_default().trim().to_string())).collect()
}

fn external_ip(node: &Value) -> String {
    node["status"]["addresses"].as_array().unwrap().iter().find(|a| a["type"] == "ExternalIP").unwrap()["address"].as_str().unwrap().into()
}

/// `emu ARGS` run as on another machine: in emulated host `host`'s network namespace, with
/// `/run/emu` and `/run/netns` of its own (a mount namespace made for the command).
fn emu_on_host(host: &str, args: &[&str]) -> emu_tests::Run {
    let ns = format!("emu-{CLUSTER}-{host}");
    let script = "mount -t tmpfs tmpfs /run/emu && mount -t tmpfs tmpfs /run/netns && exec \"$0\" \"$@\"";
    emu_tests::Run::from(
        Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script])
            .arg(emu_tests::emu_path())
            .args(args)
            .env_remove("EMU_CLUSTER")
            .output()
            .unwrap(),
    )
}

#[test]
fn three_emulated_hosts_make_one_cluster() {
    emu_tests::require_root();
    let host_before = HostState::capture();
    let started = Instant::now();
    let c = Cluster::up(CLUSTER, &["--hosts", "3", "--nodes", "6"]);
    println!("emu up --hosts 3 --nodes 6: {:?}", started.elapsed());

    // Six nodes, Ready, two on each host.
    let nodes = nodes(&c);
    assert_eq!(nodes.len(), 6);
    let mut per_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &nodes {
        assert!(n["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True"), "{n}");
        per_host.entry(host_of(n)).or_default().push(name(n));
    }
    assert_eq!(per_host.keys().cloned().collect::<Vec<_>>(), ["host-1", "host-2", "host-3"]);
    assert!(per_host.values().all(|v| v.len() == 2), "{per_host:?}");
    let labelled = c.emu(&["get", "nodes", "-L", "emu.dev/host"]).ok().stdout;
    assert!(labelled.contains("host-3"), "{labelled}");

    // `get nodes -o wide` shows each node's host, emu's and the real kubectl's (which prints the
    // API server's Table).
    let node_host: BTreeMap<String, String> = nodes.iter().map(|n| (name(n), host_of(n))).collect();
    let wide = c.emu(&["get", "nodes", "-o", "wide"]).ok().stdout;
    println!("emu get nodes -o wide:\n{wide}");
    assert_eq!(host_column(&wide), node_host, "{wide}");
    let dir = emu_tests::Scratch(std::env::temp_dir().join(format!("emu-{CLUSTER}-kubectl-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("kubeconfig"), c.emu(&["kubeconfig"]).ok().stdout).unwrap();
    let wide = kubectl_support::kubectl(&dir.0, Duration::from_secs(30), &["get", "nodes", "-o", "wide"]).ok().stdout;
    assert_eq!(host_column(&wide), node_host, "kubectl get nodes -o wide:\n{wide}");

    // A Deployment spread over every host.
    let big = "x".repeat(BIG);
    let web = WEB.replace("data: {}", &format!("data: {{index.html: hello, big: {big}}}"));
    c.apply("web.yaml", &web).ok();
    let pods = c.ready_pods("app=web", 6);
    let pod_host = |p: &Value| node_host[p["spec"]["nodeName"].as_str().unwrap()].clone();
    let hosts: BTreeSet<String> = pods.iter().map(pod_host).collect();
    assert_eq!(hosts.len(), 3, "pods on every host");
    let on = |h: &str| pods.iter().find(|p| pod_host(p) == h).unwrap().clone();
    let (a, b, m) = (on("host-1"), on("host-3"), on("host-2"));

    // Pod to pod across hosts, NAT-free: nginx on host-3 logs the client's own address.
    let out = c
        .emu(&[
            "exec",
            &name(&a),
            "--",
            "curl",
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/", pod_ip(&b)),
        ])
        .ok();
    assert_eq!(out.stdout, "200");
    let logs = c.emu(&["logs", &name(&b)]).ok().stdout;
    assert!(
        logs.lines().any(|l| l.starts_with(&format!("{} ", pod_ip(&a)))),
        "nginx's log on host-3 names the client {}:\n{logs}",
        pod_ip(&a)
    );

    // Full-size segments cross the overlay (no black hole): 600 kB from host-3 to host-2 and back.
    for (client, server) in [(&m, &b), (&b, &a)] {
        let url = format!("http://{}/big", pod_ip(server));
        let got = c.emu(&["exec", &name(client), "--", "curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{size_download}", &url]).ok();
        assert_eq!(got.stdout, BIG.to_string(), "{} → {}", name(client), name(server));
    }

    // ClusterIP and DNS by name, from a pod on host-2.
    let cluster_ip = c.cluster_ip("web");
    for target in [cluster_ip.as_str(), "web.default.svc.cluster.local", "web"] {
        let got = c
            .emu(&["exec", &name(&m), "--", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{target}/")])
            .ok();
        assert_eq!(got.stdout, "200", "{target}");
    }

    // The cluster DNS served from another host: with host-1's nodes cordoned, the CoreDNS pods
    // are replaced on joined hosts, where they read the API through their node's socket.
    for n in ["node-1", "node-2"] {
        c.emu(&["patch", "node", n, "-p", r#"{"spec":{"unschedulable":true}}"#]).ok();
    }
    c.emu(&["delete", "pod", "-n", "kube-system", "-l", "k8s-app=kube-dns"]).ok();
    let dns = c.wait_for("CoreDNS ready on joined hosts", Duration::from_secs(20), || {
        let v: Value =
            serde_json::from_str(&c.emu(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", "json"]).ok().stdout).ok()?;
        let pods = v["items"].as_array()?.clone();
        (pods.len() == 2 && pods.iter().all(emu_tests::is_ready)).then_some(pods)
    });
    assert!(dns.iter().all(|p| pod_host(p) != "host-1"), "CoreDNS off host-1");
    for n in ["node-1", "node-2"] {
        c.emu(&["patch", "node", n, "-p", r#"{"spec":{"unschedulable":false}}"#]).ok();
    }
    let got = c.emu(&["exec", &name(&a), "--", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://web/"]).ok();
    assert_eq!(got.stdout, "200", "a name resolved by CoreDNS on a joined host");

    // NodePort on a node of each host, and the LoadBalancer, from the outside world.
    for host in ["host-1", "host-2", "host-3"] {
        let node = nodes.iter().find(|n| host_of(n) == host).unwrap();
        let url = format!("http://{}:30080/", external_ip(node));
        let got = c.emu(&["outside", "--", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", &url]).ok();
        assert_eq!(got.stdout, "200", "NodePort of {} on {host}", name(node));
    }
    let lb = c.wait_for("a LoadBalancer address", Duration::from_secs(5), || {
        let ip = c.emu(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).ok().stdout;
        (!ip.is_empty()).then_some(ip)
    });
    // The cloud balancer programs the new address within a moment.
    c.wait_for(&format!("LoadBalancer {lb} to answer"), Duration::from_secs(5), || {
        let got = c.emu(&["outside", "--", "curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{lb}/")]);
        (got.stdout == "200").then_some(())
    });

    // Exec and logs reach the agents of the other hosts (over TLS on the underlay).
    let endpoint = nodes.iter().find(|n| host_of(n) == "host-3").unwrap()["metadata"]["annotations"]["emu.dev/agent-endpoint"].clone();
    assert!(endpoint.as_str().unwrap().starts_with("https://192.0.2.3:"), "{endpoint}");
    assert_eq!(c.emu(&["exec", &name(&b), "--", "cat", "/etc/hostname"]).ok().stdout.trim(), name(&b));

    node_faults_across_hosts(&c, &a, &b);
    leaving_and_joining_again(&c);
    joining_is_guarded(&c);

    // The machine's own network namespace was never touched; the hosts' namespaces are not in
    // its list (each joined host keeps its own).
    assert_eq!(HostState::capture().links, host_before.links);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&format!("emu-{CLUSTER}-host-3")) && !listed.contains(&format!("emu-{CLUSTER}-node-node-5")), "{listed}");
    drop(c);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&format!("emu-{CLUSTER}-")));
    assert!(emu_tests::emu_processes(CLUSTER).is_empty());
}

/// Node faults between machines: each agent applies its side over the joined cluster. A partition
/// of `a`'s node (host-1) from `b`'s (host-3) cuts pod to pod; a delay of `b`'s node link slows
/// it; both cleared, it is as before.
fn node_faults_across_hosts(c: &Cluster, a: &Value, b: &Value) {
    let (node_a, node_b) = (a["spec"]["nodeName"].as_str().unwrap(), b["spec"]["nodeName"].as_str().unwrap());
    let connect = |timeout: &str| {
        let url = format!("http://{}/", pod_ip(b));
        c.emu(&["exec", &name(a), "--", "curl", "-s", "-m", timeout, "-o", "/dev/null", "-w", "%{http_code} %{time_connect}", &url])
    };
    let r = c.emu(&["fault", "partition", node_a, node_b]).ok();
    assert!(r.stdout.starts_with("fault/partition-1 created"), "{}", r.stdout);
    let cut = connect("1");
    assert_ne!(cut.code, 0, "partitioned: {}", cut.stdout);
    assert_eq!(c.emu(&["fault", "clear", "partition-1"]).ok().stdout.trim(), "fault/partition-1 cleared");
    assert!(connect("5").ok().stdout.starts_with("200 "));

    c.emu(&["fault", "delay", node_b, "50ms"]).ok();
    let slowed = connect("5").ok().stdout;
    let seconds: f64 = slowed.split_whitespace().nth(1).unwrap().parse().unwrap();
    println!("{node_b}'s link delayed 50 ms: connect from {node_a} took {seconds:.3} s");
    assert!(seconds >= 0.095, "{slowed}");
    assert_eq!(c.emu(&["fault", "clear", "delay-1"]).ok().stdout.trim(), "fault/delay-1 cleared");
    let after: f64 = connect("5").ok().stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(after < 0.05, "{after}");
}

/// `emu run` on emulated host `host` of the running cluster, in its own mount namespace (pinned
/// by `emu up`): the machine's view, as its user would run it there.
fn emu_inside_host(host: &str, args: &[&str]) -> emu_tests::Run {
    let mnt = format!("--mount=/run/emu/{CLUSTER}/hosts/{host}.mnt");
    let net = format!("--net=/run/netns/emu-{CLUSTER}-{host}");
    emu_tests::Run::from(
        Command::new("nsenter").args([&mnt, &net]).arg(emu_tests::emu_path()).args(args).env_remove("EMU_CLUSTER").output().unwrap(),
    )
}

/// host-2 leaves (its nodes drained, its pods replaced on the other hosts), then joins again
/// with the command `emu token create --print-join-command` prints: Ready within a second.
fn leaving_and_joining_again(c: &Cluster) {
    let r = emu_inside_host("host-2", &["leave"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("nodes node-3, node-4 drained and removed"), "{}", r.stdout);
    let names: Vec<String> = nodes(c).iter().map(name).collect();
    assert_eq!(names, ["node-1", "node-2", "node-5", "node-6"]);
    let pods = c.ready_pods("app=web", 6);
    assert!(pods.iter().all(|p| !["node-3", "node-4"].contains(&p["spec"]["nodeName"].as_str().unwrap())), "replaced elsewhere");

    let command = c.emu(&["token", "create", "--print-join-command"]).ok().stdout;
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--host", "host-2", "--node", "node-3", "--node", "node-4"]);
    // Three joins (leaving in between), judged by their median: one slow run on a busy machine
    // says little, the goal is about the usual join.
    let mut times = Vec::new();
    for round in 0..3 {
        if round > 0 {
            let r = emu_inside_host("host-2", &["leave"]);
            assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        }
        let started = Instant::now();
        let r = emu_inside_host("host-2", &args);
        times.push(started.elapsed());
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let ready: Vec<String> = nodes(c).iter().filter(|n| host_of(n) == "host-2").map(name).collect();
        assert_eq!(ready, ["node-3", "node-4"]);
    }
    println!("emu join of host-2 (2 nodes), command start to nodes Ready: {times:?}");
    times.sort();
    assert!(times[1] < Duration::from_secs(1), "joins took {times:?}");
}

/// A wrong CA hash is refused before anything is sent; wrong, deleted and expired tokens are
/// refused; the API on the join listener needs a node's certificate and lets a node act only
/// for itself.
fn joining_is_guarded(c: &Cluster) {
    let info = c.emu(&["token", "create", "--print-join-command"]).ok().stdout;
    let words: Vec<&str> = info.split_whitespace().collect();
    let arg = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1].to_string();
    let (endpoint, token, hash) = (words[2].to_string(), arg("--token"), arg("--discovery-token-ca-cert-hash"));
    assert_eq!(endpoint, "192.0.2.1:6444", "{info}");

    let wrong_hash = format!("sha256:{}", "0".repeat(64));
    let r =
        emu_on_host("host-3", &["join", &endpoint, "--token", &token, "--discovery-token-ca-cert-hash", &wrong_hash, "--node", "intruder"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("refusing to join (nothing was sent)"), "{}", r.stderr);

    let r = emu_on_host(
        "host-3",
        &["join", &endpoint, "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &hash, "--node", "intruder"],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("abcdef"), "a refused token is named by its id: {}", r.stderr);
    assert!(!r.stderr.contains("0123456789abcdef"), "the secret is never printed: {}", r.stderr);

    let id = token.split('.').next().unwrap();
    c.emu(&["token", "delete", id]).ok();
    let r = emu_on_host("host-3", &["join", &endpoint, "--token", &token, "--discovery-token-ca-cert-hash", &hash, "--node", "intruder"]);
    assert_ne!(r.code, 0, "a deleted token: {}", r.stdout);

    let expired = r#"{"apiVersion":"v1","kind":"Secret","type":"bootstrap.kubernetes.io/token","metadata":{"name":"bootstrap-token-exp123","namespace":"kube-system"},"stringData":{"token-id":"exp123","token-secret":"0123456789abcdef","expiration":"2020-01-01T00:00:00Z","usage-bootstrap-authentication":"true","usage-bootstrap-signing":"true"}}"#;
    c.apply("expired.json", expired).ok();
    let r = emu_on_host(
        "host-3",
        &["join", &endpoint, "--token", "exp123.0123456789abcdef", "--discovery-token-ca-cert-hash", &hash, "--node", "intruder"],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    assert!(nodes(c).iter().all(|n| name(n) != "intruder"), "no refused join left a node");

    // The API on the join listener: a client without a certificate, and node-5's identity acting
    // for node-3, are refused; node-5 for itself is served.
    let ca = c.emu(&["get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]).ok().stdout;
    let kubeconfig: String = c.emu(&["kubeconfig", "--node", "node-5"]).ok().stdout;
    let field = |key: &str| {
        let line = kubeconfig.lines().find(|l| l.trim_start().starts_with(key)).unwrap();
        let data = line.split_once(':').unwrap().1.trim();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap()
    };
    let (cert, key) = (field("client-certificate-data"), field("client-key-data"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let netns = Some(std::path::PathBuf::from(format!("/run/netns/emu-{CLUSTER}-host-2")));
    let target = |identity: Option<(&str, &str)>| emu_proto::transport::TlsTarget {
        addr: endpoint.parse().unwrap(),
        config: emu_proto::transport::client_config(&ca, identity).unwrap(),
        netns: netns.clone(),
    };
    rt.block_on(async {
        let beat = |node: &str| emu_proto::HeartbeatRequest { node_name: node.into() };
        let mut anonymous = emu_proto::transport::Upstream::Tls(target(None)).api().await.unwrap();
        let e = anonymous.heartbeat(beat("node-3")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let mut node5 = emu_proto::transport::Upstream::Tls(target(Some((&cert, &key)))).api().await.unwrap();
        node5.heartbeat(beat("node-5")).await.unwrap();
        let e = node5.heartbeat(beat("node-3")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        let secret = emu_proto::ObjectRef { kind: "Secret".into(), namespace: "kube-system".into(), name: "bootstrap-token-exp123".into() };
        let e = node5.get(secret).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        // Watching Secrets: only for its own pods, and then only those they use.
        let all = emu_proto::WatchRequest { kinds: vec!["Secret".into()], node_name: String::new(), resource_version: 0 };
        assert_eq!(node5.watch(all).await.unwrap_err().code(), tonic::Code::PermissionDenied);
        let own = emu_proto::WatchRequest {
            kinds: vec!["Secret".into(), "ConfigMap".into(), "Pod".into()],
            node_name: "node-5".into(),
            resource_version: 0,
        };
        let mut events = node5.watch(own).await.unwrap().into_inner();
        let mut seen = Vec::new();
        while let Some(e) = tokio_stream::StreamExt::next(&mut events).await {
            let e = e.unwrap();
            if e.r#type == emu_proto::watch_event::Type::Synced as i32 {
                break;
            }
            let v: Value = e.object.map(|o| serde_json::from_str(&o.json).unwrap()).unwrap_or_default();
            seen.push(format!("{}/{}", v["kind"].as_str().unwrap_or_default(), v["metadata"]["name"].as_str().unwrap_or_default()));
        }
        assert!(seen.iter().any(|k| k.starts_with("Pod/")), "{seen:?}");
        assert!(seen.contains(&"ConfigMap/big".to_string()), "the web pods' volume: {seen:?}");
        assert!(!seen.iter().any(|k| k.starts_with("Secret/bootstrap-token")), "a Secret no pod of node-5 uses: {seen:?}");
    });
    let log = std::fs::read_to_string(format!("/run/emu/{CLUSTER}/controller.log")).unwrap();
    assert!(log.contains("refused"), "refusals are logged");
    assert!(!log.contains("0123456789abcdef") && !log.contains(token.split('.').nth(1).unwrap()), "no token secret in the log");
}
