//! The service proxy's data path and the Service API's edges (issue 3), on real emulated
//! clusters: hairpin, ClientIP affinity, named target ports, UDP, headless and selectorless
//! Services, rejection without endpoints, unpingable ClusterIPs, validation errors, two clusters
//! with the same ClusterIP side by side, and the `default/kubernetes` Service over TLS.
//!
//! Every request goes to addresses inside the test cluster's own namespaces (`emu exec`, `emu ssh`).

use emu_tests::{is_ready, name, pod_ip as ip, Cluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");
const CLIENT_IMAGE: &str = "--image=radial/busyboxplus:curl";

/// Starts a client pod that only sleeps (curl and ping are there).
fn client(c: &Cluster, pod: &str) -> Value {
    c.emu(&["run", pod, CLIENT_IMAGE, "--", "sleep", "3600"]).ok();
    c.ready_pod(pod)
}

/// Starts a pod of the perl image that only sleeps: a client that speaks UDP.
fn perl_client(c: &Cluster, pod: &str) -> Value {
    c.emu(&["run", pod, "--image=perl", "--", "sleep", "3600"]).ok();
    c.ready_pod(pod)
}

/// Waits until `get ep SVC` lists every one of `want` (`ip:port`).
fn wait_endpoints(c: &Cluster, svc: &str, want: &[String]) -> String {
    c.wait_for(&format!("endpoints {want:?} of {svc}"), Duration::from_secs(5), || {
        let out = c.emu(&["get", "ep", svc]).ok().stdout;
        want.iter().all(|w| out.contains(w.as_str())).then_some(out)
    })
}

/// Waits until one request from `pod` to `url` succeeds (the nodes' rules may trail the
/// Endpoints by a moment).
fn wait_reachable(c: &Cluster, pod: &str, url: &str) {
    c.wait_for(&format!("{url} reachable from {pod}"), Duration::from_secs(5), || {
        (c.emu(&["exec", pod, "--", "curl", "-sf", "-o", "/dev/null", "--max-time", "1", url]).code == 0).then_some(())
    });
}

/// Access-log lines per pod for requests whose target is exactly `target` (nginx's error log,
/// in the same stream, also quotes the request line, but not after `] `).
fn hits(c: &Cluster, pods: &[Value], target: &str) -> BTreeMap<String, usize> {
    let request = format!("] \"GET {target} HTTP/");
    pods.iter().map(|p| (name(p), c.emu(&["logs", &name(p)]).ok().stdout.matches(&request).count())).collect()
}

/// The names `get svc -o json` lists.
fn service_names(c: &Cluster) -> Vec<String> {
    let v: Value = serde_json::from_str(&c.emu(&["get", "svc", "-o", "json"]).ok().stdout).unwrap();
    v["items"].as_array().unwrap().iter().map(name).collect()
}

/// A busybox pod serving its own name over HTTP on `port`, which is named `web` (with curl, so
/// that it can be a client too).
fn httpd_pod(pod: &str, label: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{app: {label}}}}}\nspec:\n  containers:\n  - name: httpd\n    image: radial/busyboxplus:curl\n    \
         command: [sh, -c, 'mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p {port} -h /www']\n    \
         ports: [{{name: web, containerPort: {port}}}]\n"
    )
}

#[test]
fn hairpin_a_pod_reaches_itself_through_its_service() {
    let c = Cluster::up("tsphair", &[]);
    c.apply("solo.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: solo}}\nspec:\n  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: solo}\nspec:\n  selector: {app: solo}\n  ports: [{port: 80}]\n",
    )
    .ok();
    let pod = c.ready_pod("solo");
    let vip = c.cluster_ip("solo");
    // The service has exactly one endpoint: the pod itself.
    let ep = wait_endpoints(&c, "solo", &[format!("{}:80", ip(&pod))]);
    assert_eq!(ep.lines().nth(1).unwrap().split_whitespace().nth(1), Some(format!("{}:80", ip(&pod)).as_str()), "{ep}");
    wait_reachable(&c, "solo", &format!("http://{vip}/?warm-up"));

    let script =
        format!("n=0; for i in $(seq 50); do curl -sf -o /dev/null --max-time 2 'http://{vip}/?hair' && n=$((n+1)); done; echo $n");
    let answered = c.emu(&["exec", "solo", "--", "sh", "-c", &script]).ok().stdout;
    assert_eq!(answered.trim(), "50", "answered requests of 50");
    let log = c.emu(&["logs", "solo"]).ok().stdout;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("] \"GET /?hair HTTP/")).collect();
    assert_eq!(lines.len(), 50, "{log}");
    // NET-5: the U-turn is masqueraded, so the pod sees the node side of its link as client.
    for l in &lines {
        let client = l.split_whitespace().next().unwrap();
        assert_ne!(client, ip(&pod), "hairpin traffic must not come from the pod's own IP: {l}");
        assert!(client.starts_with("10.244.") && client.ends_with(".1"), "expected the node's cni0 address: {l}");
    }
}

#[test]
fn session_affinity_client_ip_sticks_to_one_endpoint() {
    let c = Cluster::up("tspaff", &[SCENARIO]);
    let pods = c.ready_pods("run=my-nginx", 2);
    c.apply(
        "sticky.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n  selector: {run: my-nginx}\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n",
    )
    .ok();
    // SVC-3: the default timeout is filled in.
    let yaml = c.emu(&["get", "svc", "sticky", "-o", "yaml"]).ok().stdout;
    assert!(yaml.contains("  sessionAffinity: ClientIP\n"), "{yaml}");
    assert!(yaml.contains("  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 10800\n"), "{yaml}");

    let vip = c.cluster_ip("sticky");
    wait_endpoints(&c, "sticky", &pods.iter().map(|p| format!("{}:80", ip(p))).collect::<Vec<_>>());
    client(&c, "client");
    wait_reachable(&c, "client", &format!("http://{vip}/?warm-up"));
    let script = format!("for i in $(seq 100); do curl -sf -o /dev/null --max-time 2 'http://{vip}/?aff' || echo FAIL; done");
    let out = c.emu(&["exec", "client", "--", "sh", "-c", &script]).ok().stdout;
    assert!(!out.contains("FAIL"), "{out}");
    let counts = c.wait_for("100 logged requests", Duration::from_secs(5), || {
        let h = hits(&c, &pods, "/?aff");
        (h.values().sum::<usize>() == 100).then_some(h)
    });
    let mut n: Vec<usize> = counts.values().copied().collect();
    n.sort();
    assert_eq!(n, [0, 100], "all requests of one client go to one endpoint: {counts:?}");
}

#[test]
fn named_target_port_resolves_per_pod() {
    let c = Cluster::up("tspnamed", &[]);
    let yaml = [
        httpd_pod("web-a", "named", 8080),
        httpd_pod("web-b", "named", 9090),
        "apiVersion: v1\nkind: Service\nmetadata: {name: named}\nspec:\n  selector: {app: named}\n  ports: [{port: 80, targetPort: web}]\n"
            .into(),
    ]
    .join("---\n");
    c.apply("named.yaml", &yaml).ok();
    let (a, b) = (c.ready_pod("web-a"), c.ready_pod("web-b"));
    let want = [format!("{}:8080", ip(&a)), format!("{}:9090", ip(&b))];
    let ep = wait_endpoints(&c, "named", &want);
    // Exactly these two pairs, in `get ep`'s byte-wise IP order.
    let mut sorted = want.to_vec();
    sorted.sort_by(|x, y| x.split(':').next().cmp(&y.split(':').next()));
    assert_eq!(ep.lines().nth(1).unwrap().split_whitespace().nth(1), Some(sorted.join(",").as_str()), "{ep}");
    // The two port sets make two slices (SVC-12).
    let slices = c.emu(&["get", "endpointslices", "-l", "kubernetes.io/service-name=named"]).ok().stdout;
    let rows: Vec<Vec<&str>> = slices.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let mut ports: Vec<(&str, &str)> = rows.iter().map(|r| (r[2], r[3])).collect();
    ports.sort();
    let (ia, ib) = (ip(&a), ip(&b));
    assert_eq!(ports, [("8080", ia.as_str()), ("9090", ib.as_str())], "{slices}");

    let vip = c.cluster_ip("named");
    client(&c, "client");
    wait_reachable(&c, "client", &format!("http://{vip}/"));
    let script = format!("for i in $(seq 40); do curl -sf --max-time 2 http://{vip}/ || echo FAIL; done");
    let out = c.emu(&["exec", "client", "--", "sh", "-c", &script]).ok().stdout;
    let (na, nb) = (out.lines().filter(|l| *l == "web-a").count(), out.lines().filter(|l| *l == "web-b").count());
    assert_eq!(na + nb, 40, "every request answered by web-a (8080) or web-b (9090):\n{out}");
    assert!(na > 0 && nb > 0, "both pods answer through the ClusterIP: web-a {na}, web-b {nb}");
}

#[test]
fn udp_service_answers_through_the_cluster_ip() {
    let c = Cluster::up("tspudp", &[]);
    // A UDP echo server in perl.
    c.apply("echo.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: perl
    command: [perl, -MIO::Socket::INET, -e, '$s = IO::Socket::INET->new(LocalPort => 5353, Proto => "udp") or die "bind: $!"; while ($s->recv($m, 1500)) { $s->send("echo:$m") }']
    ports: [{containerPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 53, targetPort: 5353, protocol: UDP}]
"#,
    )
    .ok();
    let echo = c.ready_pod("echo");
    let table = c.emu(&["get", "svc", "echo"]).ok().stdout;
    assert_eq!(table.lines().nth(1).unwrap().split_whitespace().nth(4), Some("53/UDP"), "{table}");
    wait_endpoints(&c, "echo", &[format!("{}:5353", ip(&echo))]);
    let vip = c.cluster_ip("echo");
    perl_client(&c, "client");
    // A connected UDP socket takes replies only from VIP:53, so a reply proves the reverse NAT too.
    // Each attempt is a new socket (a new 5-tuple), so an early miss leaves no stale flow behind.
    let script = format!(
        r#"$s = IO::Socket::INET->new(PeerAddr => "{vip}:53", Proto => "udp") or die "socket: $!"; $s->send("hello-$$"); $r = "";
eval {{ local $SIG{{ALRM}} = sub {{ die "timeout\n" }}; alarm 1; $s->recv($r, 1500); alarm 0; }}; print "$r\n"; exit($r eq "echo:hello-$$" ? 0 : 1)"#
    );
    let reply = c.wait_for("a UDP reply through the ClusterIP", Duration::from_secs(8), || {
        let r = c.emu(&["exec", "client", "--", "perl", "-MIO::Socket::INET", "-e", &script]);
        (r.code == 0).then_some(r.stdout)
    });
    assert!(reply.starts_with("echo:hello-"), "{reply}");
    // And again, at once, from a fresh socket.
    let again = c.emu(&["exec", "client", "--", "perl", "-MIO::Socket::INET", "-e", &script]).ok().stdout;
    assert!(again.starts_with("echo:hello-"), "{again}");
}

#[test]
fn udp_flow_moves_to_another_endpoint_when_its_endpoint_goes() {
    let c = Cluster::up("tspudpgo", &[]);
    // Two echo pods that answer with their own name.
    let echo = |pod: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{app: echo}}}}\nspec:\n  containers:\n  - name: echo\n    image: perl\n    \
             command: [perl, -MIO::Socket::INET, -e, '$s = IO::Socket::INET->new(LocalPort => 5353, Proto => \"udp\") or die; while ($s->recv($m, 1500)) {{ $s->send($ENV{{HOSTNAME}}) }}']\n---\n"
        )
    };
    let manifest = format!(
        "{}{}apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  selector: {{app: echo}}\n  ports: [{{port: 53, targetPort: 5353, protocol: UDP}}]\n",
        echo("echo-a"),
        echo("echo-b")
    );
    c.apply("echo.yaml", &manifest).ok();
    let (a, b) = (c.ready_pod("echo-a"), c.ready_pod("echo-b"));
    wait_endpoints(&c, "echo", &[format!("{}:5353", ip(&a)), format!("{}:5353", ip(&b))]);
    let vip = c.cluster_ip("echo");
    // One socket, so one 5-tuple and one conntrack entry for the whole run: which pod answers
    // is fixed until that entry goes.
    let script = format!(
        r#"use IO::Select; $s = IO::Socket::INET->new(PeerAddr => "{vip}:53", Proto => "udp") or die; $| = 1;
while (1) {{ $s->send("q"); $r = ""; if (IO::Select->new($s)->can_read(0.2)) {{ $s->recv($r, 1500) }} print(($r eq "" ? "miss" : $r), "\n"); select(undef, undef, undef, 0.1) }}"#
    );
    c.emu(&["run", "asker", "--image=perl", "--", "perl", "-MIO::Socket::INET", "-e", &script]).ok();
    let answering = c.wait_for("the asker getting answers", Duration::from_secs(10), || {
        let log = c.emu(&["logs", "asker"]).stdout;
        log.lines().rev().find(|l| l.starts_with("echo-")).map(str::to_string)
    });
    let other = if answering == "echo-a" { "echo-b" } else { "echo-a" };
    c.emu(&["delete", "pod", &answering, "--wait=false"]).ok();
    // The flow's conntrack entry goes with the endpoint: the same socket is answered by the
    // other pod (without the flush it would get nothing for the entry's 120 s).
    c.wait_for("the other pod answering the same flow", Duration::from_secs(4), || {
        let log = c.emu(&["logs", "asker", "--tail", "3"]).ok().stdout;
        let last: Vec<&str> = log.lines().collect();
        (last.len() == 3 && last.iter().all(|l| *l == other)).then_some(())
    });
}

#[test]
fn headless_service_has_no_cluster_ip_and_no_env_vars() {
    let c = Cluster::up("tsphl", &[SCENARIO]);
    let pods = c.ready_pods("run=my-nginx", 2);
    c.apply(
        "svcs.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: hl}\nspec:\n  clusterIP: None\n  selector: {run: my-nginx}\n  ports: [{port: 80}]\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: vis}\nspec:\n  selector: {run: my-nginx}\n  ports: [{port: 80}]\n",
    )
    .ok();
    let table = c.emu(&["get", "svc", "hl"]).ok().stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], &["hl", "ClusterIP", "None", "<none>", "80/TCP"], "{table}");
    assert_eq!(c.cluster_ip("hl"), "None");
    wait_endpoints(&c, "hl", &pods.iter().map(|p| format!("{}:80", ip(p))).collect::<Vec<_>>());

    // A pod started after both Services: the ClusterIP Service's variables, none of the headless one's.
    client(&c, "late");
    let env = c.emu(&["exec", "late", "--", "printenv"]).ok().stdout;
    let vis = c.cluster_ip("vis");
    assert!(env.lines().any(|l| l == format!("VIS_SERVICE_HOST={vis}")), "{env}");
    let hl: Vec<&str> = env.lines().filter(|l| l.starts_with("HL_")).collect();
    assert!(hl.is_empty(), "headless Services give no variables (ENV-2): {hl:?}");
}

#[test]
fn selectorless_service_uses_the_users_endpoints() {
    let c = Cluster::up("tspnosel", &[]);
    c.apply("pods.yaml", &[httpd_pod("web-a", "a", 8080), httpd_pod("web-b", "b", 8080)].join("---\n")).ok();
    let (a, _b) = (c.ready_pod("web-a"), c.ready_pod("web-b"));
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: manual}}\nspec:\n  ports: [{{port: 80, targetPort: 8080}}]\n\
         ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: manual}}\nsubsets:\n- addresses: [{{ip: {}}}]\n  ports: [{{port: 8080}}]\n",
        ip(&a)
    );
    let r = c.apply("manual.yaml", &yaml).ok();
    assert_eq!(r.stdout, "service/manual created\nendpoints/manual created\n");
    let ep = c.emu(&["get", "ep", "manual"]).ok().stdout;
    assert_eq!(ep.lines().nth(1).unwrap().split_whitespace().nth(1), Some(format!("{}:8080", ip(&a)).as_str()), "{ep}");

    // The mirrored slice (SVC-18).
    let slice_name = c.wait_for("the mirrored EndpointSlice", Duration::from_secs(5), || {
        let out = c.emu(&["get", "endpointslices", "-l", "kubernetes.io/service-name=manual", "-o", "json"]).ok().stdout;
        let v: Value = serde_json::from_str(&out).unwrap();
        let items = v["items"].as_array().unwrap();
        (items.len() == 1).then(|| items[0].clone())
    });
    assert_eq!(slice_name["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslicemirroring-controller.k8s.io");
    assert_eq!(slice_name["endpoints"][0]["addresses"][0], ip(&a).as_str());
    assert_eq!(slice_name["ports"][0]["port"], 8080);
    let slice_name = name(&slice_name);
    let table = c.emu(&["get", "endpointslices", &slice_name]).ok().stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], &[slice_name.as_str(), "IPv4", "8080", ip(&a).as_str()], "{table}");

    // web-b asks the ClusterIP; only web-a, named in the Endpoints, answers, every time.
    let vip = c.cluster_ip("manual");
    wait_reachable(&c, "web-b", &format!("http://{vip}/"));
    let script = format!("for i in $(seq 30); do curl -sf --max-time 2 http://{vip}/ || echo FAIL; sleep 0.03; done");
    let out = c.emu(&["exec", "web-b", "--", "sh", "-c", &script]).ok().stdout;
    assert_eq!(out.lines().filter(|l| *l == "web-a").count(), 30, "{out}");
    // The slice is stable: the same object after all those requests (it was once garbage-collected
    // and re-created in a loop, which dropped requests in between).
    let after = c.emu(&["get", "endpointslices", "-l", "kubernetes.io/service-name=manual", "-o", "name"]).ok().stdout;
    assert_eq!(after.trim(), format!("endpointslice.discovery.k8s.io/{slice_name}"));
}

#[test]
fn service_without_endpoints_refuses_at_once() {
    let c = Cluster::up("tsprefuse", &[]);
    c.apply(
        "empty.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  selector: {app: nothing}\n  ports: [{port: 80}]\n",
    )
    .ok();
    // The endpoints controller writes the (empty) Endpoints object on its next pass.
    let ep = c.wait_for("the Endpoints object", Duration::from_secs(5), || {
        let r = c.emu(&["get", "ep", "empty"]);
        (r.code == 0).then_some(r.stdout)
    });
    assert_eq!(ep.lines().nth(1).unwrap().split_whitespace().nth(1), Some("<none>"), "{ep}");
    let vip = c.cluster_ip("empty");
    client(&c, "client");
    let url = format!("http://{vip}/");
    let attempt = || {
        let start = Instant::now();
        let r = c.emu(&["exec", "client", "--", "curl", "-sS", "-v", "--max-time", "3", &url]);
        (r, start.elapsed())
    };
    // The node's reject rule may trail the Service by a moment; without it the SYN would go
    // unanswered until curl's timeout.
    c.wait_for("the ClusterIP to refuse", Duration::from_secs(5), || {
        let (r, _) = attempt();
        (r.code == 7).then_some(())
    });
    for _ in 0..3 {
        let (r, took) = attempt();
        assert_eq!(r.code, 7, "curl exit code 7 (couldn't connect)\n{}", r.stderr);
        assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
        assert!(took < Duration::from_millis(700), "refused at once, not timed out: {took:?}");
    }
}

#[test]
fn cluster_ip_does_not_answer_ping() {
    let c = Cluster::up("tspping", &[SCENARIO]);
    let pods = c.ready_pods("run=my-nginx", 2);
    c.emu(&["expose", "deployment/my-nginx"]).ok();
    let vip = c.cluster_ip("my-nginx");
    client(&c, "client");
    // The Service works, and ping works for a pod IP (so a failure below is the ClusterIP's).
    wait_reachable(&c, "client", &format!("http://{vip}/"));
    c.emu(&["exec", "client", "--", "ping", "-c", "1", "-W", "1", &ip(&pods[0])]).ok();
    let r = c.emu(&["exec", "client", "--", "ping", "-c", "1", "-W", "1", &vip]);
    assert_ne!(r.code, 0, "ping to a ClusterIP must fail (NET-1)\n{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 packets received"), "{}{}", r.stdout, r.stderr);
}

#[test]
fn bad_services_are_rejected_with_kubernetes_messages() {
    let c = Cluster::up("tspbad", &["--nodes", "1"]);
    let svc = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: x}}\n{spec}")
    };
    // One Service whose ClusterIP the last cases collide with.
    c.apply("taken.yaml", &svc("taken", "  clusterIP: 10.96.100.100\n  ports: [{port: 80}]\n")).ok();
    let before = service_names(&c);
    assert_eq!(before, ["kubernetes", "taken"]);

    let cases = [
        (
            svc("two-ports", "  ports: [{port: 80}, {port: 81}]\n"),
            "The Service \"two-ports\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value",
        ),
        (svc("one-unnamed", "  ports: [{name: http, port: 80}, {port: 81}]\n"), "The Service \"one-unnamed\" is invalid: spec.ports[1].name: Required value"),
        (
            svc("dup-names", "  ports: [{name: http, port: 80}, {name: http, port: 81}]\n"),
            "The Service \"dup-names\" is invalid: spec.ports[1].name: Duplicate value: \"http\"",
        ),
        (
            svc("big-port", "  ports: [{name: a, port: 80}, {name: b, port: 70000, targetPort: 8080}]\n"),
            "The Service \"big-port\" is invalid: spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            svc("outside", "  clusterIP: 10.0.0.5\n  ports: [{port: 80}]\n"),
            "The Service \"outside\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: \
             the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            svc("grab", "  clusterIP: 10.96.100.100\n  ports: [{port: 80}]\n"),
            "The Service \"grab\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.100.100\"}: failed to allocate IP 10.96.100.100: \
             provided IP is already allocated",
        ),
        (
            svc("grab-api", "  clusterIP: 10.96.0.1\n  ports: [{port: 80}]\n"),
            "The Service \"grab-api\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: \
             provided IP is already allocated",
        ),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        for verb in ["apply", "create"] {
            let dir = c.scratch_dir();
            let path = dir.join(format!("bad-{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            let r = c.emu(&[verb, "-f", path.to_str().unwrap()]);
            assert_eq!(r.code, 1, "{verb} {yaml}\n{}{}", r.stdout, r.stderr);
            assert_eq!(r.stdout, "", "{verb} {yaml}");
            assert_eq!(r.stderr.trim_end(), *want, "{verb} {yaml}");
        }
    }
    assert_eq!(service_names(&c), before, "rejected Services must not be created");

    // Multi-document files with one bad Service create none of their objects: rejected by
    // validation (duplicate port names) and by the allocator (ClusterIP taken).
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: multi-cm}\ndata: {a: b}\n";
    let good = svc("multi-good", "  ports: [{port: 80}]\n");
    for (i, bad) in [
        svc("multi-bad", "  ports: [{name: h, port: 80}, {name: h, port: 81}]\n"),
        svc("multi-bad", "  clusterIP: 10.96.100.100\n  ports: [{port: 80}]\n"),
    ]
    .iter()
    .enumerate()
    {
        let r = c.apply(&format!("multi-{i}.yaml"), &[cm, &good, bad].join("---\n"));
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.starts_with("The Service \"multi-bad\" is invalid: "), "{}", r.stderr);
        assert_eq!(service_names(&c), before, "no Service of the file may be created");
        let cms = c.emu(&["get", "configmaps", "-o", "json"]).ok().stdout;
        assert!(!cms.contains("multi-cm"), "no ConfigMap of the file may be created: {cms}");
    }
    // The ClusterIP the rejected Services asked for is still the first Service's.
    assert_eq!(c.cluster_ip("taken"), "10.96.100.100");
}

#[test]
fn two_clusters_with_the_same_cluster_ip_do_not_cross() {
    let clusters = [Cluster::up("tspa", &[]), Cluster::up("tspb", &[])];
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.100.100\n  selector: {run: my-nginx}\n  ports: [{port: 80}]\n";
    let deployment = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/run-my-nginx.yaml")).unwrap();
    let mut pods = vec![];
    for c in &clusters {
        // The nginx pods only once the DNS pods are placed: both clusters then hand out the
        // same pod IPs in the same order (with the scenario applied during start-up, which of
        // them got a node's first address depended on timing).
        c.wait_for("both DNS pods ready", Duration::from_secs(20), || {
            let dns: Value = serde_json::from_str(&c.emu(&["get", "pods", "-n", "kube-system", "-o", "json"]).ok().stdout).ok()?;
            let items = dns["items"].as_array()?;
            (items.len() == 2 && items.iter().all(is_ready)).then_some(())
        });
        c.apply("run-my-nginx.yaml", &deployment).ok();
        let p = c.ready_pods("run=my-nginx", 2);
        c.apply("web.yaml", svc).ok();
        assert_eq!(c.cluster_ip("web"), "10.96.100.100");
        wait_endpoints(c, "web", &p.iter().map(|x| format!("{}:80", ip(x))).collect::<Vec<_>>());
        wait_reachable(c, &name(&p[0]), "http://10.96.100.100/?warm-up");
        pods.push(p);
    }
    // Both clusters hand out the same pod IPs, so only the namespaces keep them apart.
    let ips = |p: &Vec<Value>| {
        let mut v: Vec<String> = p.iter().map(ip).collect();
        v.sort();
        v
    };
    assert_eq!(ips(&pods[0]), ips(&pods[1]), "the same addresses in both clusters make crosstalk observable");

    // 30 requests from a pod of each cluster at the same time, each with its cluster's path.
    std::thread::scope(|s| {
        for (c, p) in clusters.iter().zip(&pods) {
            s.spawn(move || {
                let script = format!(
                    "for i in $(seq 30); do curl -sf -o /dev/null --max-time 2 'http://10.96.100.100/?from-{}' || echo FAIL; done",
                    c.name
                );
                let out = c.emu(&["exec", &name(&p[1]), "--", "sh", "-c", &script]).ok().stdout;
                assert!(!out.contains("FAIL"), "{}: {out}", c.name);
            });
        }
    });
    for (c, p) in clusters.iter().zip(&pods) {
        for other in &clusters {
            let counts = hits(c, p, &format!("/?from-{}", other.name));
            let total: usize = counts.values().sum();
            let want = if other.name == c.name { 30 } else { 0 };
            assert_eq!(total, want, "requests from cluster {} seen in cluster {}: {counts:?}", other.name, c.name);
        }
    }
}

#[test]
fn kubernetes_service_serves_the_api_over_tls() {
    let c = Cluster::up("tspapi", &[]);
    let ep = c.emu(&["get", "ep", "kubernetes"]).ok().stdout;
    assert_eq!(ep.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>()[..2], ["kubernetes", "172.18.0.1:6443"], "{ep}");
    let nodes: Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    let ca = format!("/run/emu/{}/pki/ca.crt", c.name);
    for node in nodes["items"].as_array().unwrap().iter().map(name) {
        // Verified against the cluster CA: the certificate covers 10.96.0.1. The node's rules may
        // trail `emu up` by a moment.
        let r = c.wait_for(&format!("https://10.96.0.1 from {node}"), Duration::from_secs(5), || {
            let r = c.emu(&["ssh", &node, "--", "curl", "-sS", "--max-time", "1", "--cacert", &ca, "https://10.96.0.1/version"]);
            (r.code == 0).then_some(r)
        });
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
        assert_eq!(v["major"], "1", "{}", r.stdout);
    }
}

#[test]
fn kubernetes_service_answers_pods() {
    let c = Cluster::up("tspapipod", &[]);
    client(&c, "client");
    let r = c.emu(&["exec", "client", "--", "curl", "-sS", "-k", "--max-time", "3", "https://10.96.0.1/version"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["major"], "1");
}
