//! Cluster DNS (issue 4) on real emulated clusters: the tutorial's "DNS" section, names from
//! glibc (getent, curl, dig) and busybox resolvers, SRV, PTR, headless, ExternalName, NXDOMAIN
//! speed, a pod's hostname and subdomain, a DNS pod lost under load, and resolv.conf by
//! dnsPolicy.
//!
//! Every query goes to the cluster's own DNS service, from inside its pods.

use emu_tests::{name, pod_ip, Cluster};
use std::time::{Duration, Instant};

const WITH_SERVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx-with-service.yaml");

/// A glibc pod with dig, nslookup and getent (the seeds' `tutum/dnsutils`).
fn dnsutils(c: &Cluster) {
    c.emu(&["run", "dnsutils", "--image=tutum/dnsutils", "--command", "--", "sleep", "infinity"]).ok();
    c.ready_pod("dnsutils");
}

/// A busybox pod with curl (the tutorial's `curl` pod).
fn curl_pod(c: &Cluster) {
    c.emu(&["run", "curl", "--image=radial/busyboxplus:curl", "--", "sleep", "3600"]).ok();
    c.ready_pod("curl");
}

/// `getent hosts NAME` in the dnsutils pod: the first address, if it resolves.
fn getent(c: &Cluster, host: &str) -> Option<String> {
    let r = c.emu(&["exec", "dnsutils", "--", "getent", "hosts", host]);
    (r.code == 0).then(|| r.stdout.split_whitespace().next().unwrap_or("").to_string())
}

fn dig_short(c: &Cluster, args: &[&str]) -> Vec<String> {
    let mut all = vec!["exec", "dnsutils", "--", "dig", "+short"];
    all.extend_from_slice(args);
    c.emu(&all).ok().stdout.lines().map(str::to_string).collect()
}

#[test]
fn tutorial_dns_section() {
    let c = Cluster::up("tdnstut", &[WITH_SERVICE]);
    // kube-dns as the tutorial shows it, its pods spread over both nodes.
    let svc = c.emu(&["get", "svc", "-n", "kube-system"]).ok().stdout;
    let row: Vec<&str> = svc.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(&row[..5], &["kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"], "{svc}");
    let pods: serde_json::Value = serde_json::from_str(&c.emu(&["get", "pods", "-n", "kube-system", "-o", "json"]).ok().stdout).unwrap();
    let dns_nodes: std::collections::BTreeSet<&str> =
        pods["items"].as_array().unwrap().iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
    assert_eq!(dns_nodes.len(), 2, "two DNS pods on two nodes: {pods}");

    let vip = c.cluster_ip("my-nginx");
    curl_pod(&c);
    // busybox's nslookup also prints (and exits 1 for) the search domains that said NXDOMAIN.
    let lookup = c.emu(&["exec", "curl", "--", "nslookup", "my-nginx"]).stdout;
    assert!(lookup.contains("Server:") && lookup.contains("10.96.0.10"), "{lookup}");
    assert!(lookup.contains(&format!("Name:\tmy-nginx.default.svc.cluster.local\nAddress: {vip}")), "{lookup}");
    let page = c.emu(&["exec", "curl", "--", "curl", "-s", "--max-time", "5", "http://my-nginx"]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
}

#[test]
fn names_resolve_like_kubernetes() {
    let c = Cluster::up("tdnsnames", &[WITH_SERVICE]);
    let vip = c.cluster_ip("my-nginx");
    dnsutils(&c);
    curl_pod(&c);
    for host in
        ["my-nginx", "my-nginx.default", "my-nginx.default.svc", "my-nginx.default.svc.cluster.local", "MY-NGINX.Default.svc.cluster.local"]
    {
        assert_eq!(getent(&c, host).as_deref(), Some(vip.as_str()), "glibc: {host}");
        // busybox's applets resolve through the C library's resolver (Debian's busybox is
        // linked with glibc): ping prints the address it resolved (a ClusterIP never answers).
        let ping = c.emu(&["exec", "curl", "--", "ping", "-c", "1", "-W", "1", host]).stdout;
        assert!(ping.starts_with(&format!("PING {host} ({vip})")), "busybox ping: {host}: {ping}");
    }
    // busybox's own nslookup applies the search list only to names without a dot (as in
    // Kubernetes with busybox ≥ 1.28): the short name and the full name.
    for host in ["my-nginx", "my-nginx.default.svc.cluster.local"] {
        let busybox = c.emu(&["exec", "curl", "--", "nslookup", host]).stdout;
        assert!(busybox.contains(&format!("Address: {vip}")), "busybox nslookup: {host}: {busybox}");
    }
    // A service of another namespace needs its namespace in the name.
    c.apply("lab.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: data, namespace: lab}\nspec:\n  ports: [{name: http, port: 8080}]\n")
        .ok();
    let data_ip = c.emu(&["get", "svc", "data", "-n", "lab", "-o", "jsonpath={.spec.clusterIP}"]).ok().stdout;
    assert_eq!(getent(&c, "data"), None, "not in the pod's namespace");
    c.wait_for("data.lab resolving", Duration::from_secs(2), || {
        (getent(&c, "data.lab").as_deref() == Some(data_ip.as_str())).then_some(())
    });

    // SRV for a named port, PTR for a ClusterIP.
    let srv = dig_short(&c, &["SRV", "_http._tcp.data.lab.svc.cluster.local"]);
    assert_eq!(srv, vec!["0 100 8080 data.lab.svc.cluster.local.".to_string()]);
    assert_eq!(dig_short(&c, &["-x", &vip]), vec!["my-nginx.default.svc.cluster.local.".to_string()]);
    assert_eq!(dig_short(&c, &["-x", "10.96.0.10"]), vec!["kube-dns.kube-system.svc.cluster.local.".to_string()]);

    // ExternalName is a CNAME.
    c.apply(
        "ext.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  externalName: my-nginx.default.svc.cluster.local\n",
    )
    .ok();
    let cname = c.wait_for("the ExternalName's CNAME", Duration::from_secs(2), || {
        let out = c.emu(&["exec", "dnsutils", "--", "dig", "ext.default.svc.cluster.local", "CNAME", "+noall", "+answer"]).ok().stdout;
        out.contains("CNAME").then_some(out)
    });
    assert!(cname.contains("\tCNAME\tmy-nginx.default.svc.cluster.local."), "{cname}");
}

#[test]
fn nxdomain_is_fast_also_through_the_search_list() {
    let c = Cluster::up("tdnsnx", &[]);
    dnsutils(&c);
    let status =
        c.emu(&["exec", "dnsutils", "--", "dig", "nothing-here.default.svc.cluster.local", "+noall", "+comments", "+stats"]).ok().stdout;
    assert!(status.contains("status: NXDOMAIN"), "{status}");
    let ms: u64 =
        status.lines().find_map(|l| l.strip_prefix(";; Query time: ")).and_then(|t| t.split_whitespace().next()?.parse().ok()).unwrap();
    assert!(ms < 10, "NXDOMAIN took {ms} ms");
    // glibc with ndots:5 tries the three search domains, then the name itself: all NXDOMAIN,
    // and all of it in under 10 ms (timed inside a pod, without process start-up: perl's
    // Time::HiRes, which the perl image has).
    c.emu(&["run", "perl", "--image=perl", "--command", "--", "sleep", "infinity"]).ok();
    c.ready_pod("perl");
    let script = r#"use Time::HiRes qw(time); $t = time; $r = gethostbyname("nothing-here"); printf("%s %.2f\n", defined($r) ? "found" : "absent", (time - $t) * 1000)"#;
    let out = c.emu(&["exec", "perl", "--", "perl", "-e", script]).ok().stdout;
    let (answer, ms) = out.trim().split_once(' ').unwrap();
    assert_eq!(answer, "absent");
    assert!(ms.parse::<f64>().unwrap() < 10.0, "search expansion took {ms} ms");
}

const HEADLESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: hl}
spec:
  clusterIP: None
  selector: {app: hl}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hl}
spec:
  replicas: 2
  selector: {matchLabels: {app: hl}}
  template:
    metadata: {labels: {app: hl}}
    spec:
      containers:
      - name: web
        image: nginx
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 1
          failureThreshold: 1
"#;

#[test]
fn headless_service_follows_ready_pods() {
    let c = Cluster::up("tdnshl", &[]);
    c.apply("hl.yaml", HEADLESS).ok();
    dnsutils(&c);
    let pods = c.wait_for("2 hl pods running", Duration::from_secs(20), || {
        let p = c.pods("app=hl");
        (p.len() == 2 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(p)
    });
    // Not ready yet: no record at all (NXDOMAIN), as CoreDNS answers.
    let none = c.emu(&["exec", "dnsutils", "--", "dig", "hl.default.svc.cluster.local", "+noall", "+comments"]).ok().stdout;
    assert!(none.contains("status: NXDOMAIN"), "{none}");
    for p in &pods {
        c.emu(&["exec", &name(p), "--", "sh", "-c", "echo ok > /tmp/ready"]).ok();
    }
    let mut want: Vec<String> = pods.iter().map(pod_ip).collect();
    want.sort();
    c.wait_for("both pod IPs", Duration::from_secs(5), || {
        let mut got = dig_short(&c, &["hl.default.svc.cluster.local"]);
        got.sort();
        (got == want).then_some(())
    });
    // One pod turns unready: it leaves the answer within 1 s of its Ready condition turning False.
    c.emu(&["exec", &name(&pods[0]), "--", "rm", "/tmp/ready"]).ok();
    c.wait_for("the pod unready", Duration::from_secs(5), || {
        let p: serde_json::Value = serde_json::from_str(&c.emu(&["get", "pod", &name(&pods[0]), "-o", "json"]).ok().stdout).ok()?;
        p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "False").then_some(())
    });
    let unready_at = Instant::now();
    c.wait_for("the unready pod out of the answer", Duration::from_secs(1), || {
        (dig_short(&c, &["hl.default.svc.cluster.local"]) == vec![pod_ip(&pods[1])]).then_some(())
    });
    assert!(unready_at.elapsed() < Duration::from_secs(1));
}

/// A pod with `hostname` and `subdomain` under a headless Service of that name (DNS-3, DNS-5,
/// DNS-24, DNS-25).
#[test]
fn pod_hostname_and_subdomain_give_it_a_name() {
    let c = Cluster::up("tdnshost", &[]);
    c.apply(
        "named.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: team}
spec:
  clusterIP: None
  selector: {app: team}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: member, labels: {app: team}}
spec:
  hostname: web-0
  subdomain: team
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"#,
    )
    .ok();
    dnsutils(&c);
    let ip = pod_ip(&c.ready_pod("member"));
    let fqdn = "web-0.team.default.svc.cluster.local";
    c.wait_for("the pod's own name in DNS", Duration::from_secs(5), || (dig_short(&c, &[fqdn]) == vec![ip.clone()]).then_some(()));
    assert_eq!(dig_short(&c, &["-x", &ip]), vec![format!("{fqdn}.")], "PTR of the pod's IP");
    // Inside the pod: its hostname, and its FQDN in the kubelet-style /etc/hosts.
    assert_eq!(c.emu(&["exec", "member", "--", "hostname"]).ok().stdout.trim(), "web-0");
    let hosts = c.emu(&["exec", "member", "--", "cat", "/etc/hosts"]).ok().stdout;
    assert!(hosts.lines().any(|l| l == format!("{ip}\t{fqdn}\tweb-0")), "{hosts}");
}

#[test]
fn losing_a_dns_pod_does_not_interrupt_resolution() {
    let c = Cluster::up("tdnskill", &[WITH_SERVICE]);
    dnsutils(&c);
    // 150 lookups, 20 ms apart, each with its own deadline (glibc: 1 s, 1 attempt).
    let script = r#"ok=0; fail=0; for i in $(seq 150); do if getent hosts my-nginx >/dev/null; then ok=$((ok+1)); else fail=$((fail+1)); fi; sleep 0.02; done; echo "$ok $fail""#;
    let lookups = std::process::Command::new(emu_tests::emu_path())
        .args([
            "exec",
            "--cluster",
            &c.name,
            "dnsutils",
            "--",
            "sh",
            "-c",
            &format!("echo 'options timeout:1 attempts:1' >> /etc/resolv.conf; {script}"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let dns = c.emu(&["get", "pods", "-n", "kube-system", "-o", "name"]).ok().stdout;
    let victim = dns.lines().next().unwrap().trim_start_matches("pod/").to_string();
    c.emu(&["delete", "pod", "-n", "kube-system", &victim, "--wait=false"]).ok();
    let out = lookups.wait_with_output().unwrap();
    let counts = String::from_utf8_lossy(&out.stdout);
    assert_eq!(counts.trim(), "150 0", "lookups ok/failed while a DNS pod went away");
    c.wait_for("a replacement DNS pod", Duration::from_secs(20), || {
        let pods: serde_json::Value = serde_json::from_str(&c.emu(&["get", "pods", "-n", "kube-system", "-o", "json"]).ok().stdout).ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 2 && items.iter().all(|p| name(p) != victim && emu_tests::is_ready(p))).then_some(())
    });
}

#[test]
fn resolv_conf_follows_dns_policy() {
    let c = Cluster::up("tdnspol", &[]);
    c.apply(
        "pods.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: first}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: custom}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.1]
    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nodes}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"#,
    )
    .ok();
    for p in ["first", "custom", "nodes"] {
        c.ready_pod(p);
    }
    let file = |p: &str| c.emu(&["exec", p, "--", "cat", "/etc/resolv.conf"]).ok().stdout;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_searches: Vec<&str> = host.lines().filter_map(|l| l.strip_prefix("search ")).flat_map(str::split_whitespace).collect();
    let mut cluster_first = "search default.svc.cluster.local svc.cluster.local cluster.local".to_string();
    for s in host_searches.iter().filter(|s| !["default.svc.cluster.local", "svc.cluster.local", "cluster.local"].contains(s)) {
        cluster_first.push(' ');
        cluster_first.push_str(s);
    }
    assert_eq!(file("first"), format!("{cluster_first}\nnameserver 10.96.0.10\noptions ndots:5\n"));
    assert_eq!(file("custom"), "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n");
    let nodes = file("nodes");
    for server in host.lines().filter(|l| l.starts_with("nameserver")) {
        assert!(nodes.contains(server), "Default takes the node's resolver: {nodes} vs {host}");
    }
    assert!(!nodes.contains("10.96.0.10"), "{nodes}");
}
