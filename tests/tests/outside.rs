//! The outside world (issue 6, first part): a namespace standing for the internet where every
//! node has an ExternalIP on `eth1` and the external client of `emu outside` lives.

use emu_tests::{pod_ip, Cluster};

#[test]
fn nodes_have_external_ips_and_the_outside_reaches_only_them() {
    let c = Cluster::up("toutside", &["--nodes", "2"]);
    let wide = c.emu(&["get", "nodes", "-o", "wide"]).ok().stdout;
    let rows: Vec<Vec<&str>> = wide.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{wide}");
    for (i, row) in rows.iter().enumerate() {
        // NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP …
        assert_eq!((row[5], row[6]), (format!("172.18.0.{}", i + 2).as_str(), format!("198.51.100.{}", i + 2).as_str()), "{wide}");
    }
    // The tutorial's `kubectl get nodes -o yaml | grep ExternalIP -C 1`.
    let yaml = c.emu(&["get", "nodes", "-o", "yaml"]).ok().stdout;
    let lines: Vec<&str> = yaml.lines().collect();
    let at = lines.iter().position(|l| l.trim() == "type: ExternalIP").expect("an ExternalIP address");
    assert_eq!(lines[at - 1].trim(), "- address: 198.51.100.2");
    assert_eq!(lines[at + 1].trim(), "allocatable:");

    // The external client: 198.51.100.1, a route to its own subnet only.
    let addr = c.emu(&["outside", "--", "ip", "-4", "-o", "addr", "show", "ext0"]).ok().stdout;
    assert!(addr.contains("198.51.100.1/24"), "{addr}");
    let routes = c.emu(&["outside", "--", "ip", "route"]).ok().stdout;
    // Its own subnet and the load balancer pool, on ext0.
    assert_eq!(routes.lines().count(), 2, "{routes}");
    assert!(routes.contains("203.0.113.0/24 dev ext0"), "{routes}");
    assert!(!routes.contains("default"), "{routes}");
    for ip in ["198.51.100.2", "198.51.100.3"] {
        c.emu(&["outside", "--", "busybox", "ping", "-c", "1", "-W", "2", ip]).ok();
    }
    // A node knows the outside world on eth1.
    let eth1 = c.emu(&["ssh", "node-1", "--", "ip", "-4", "-o", "addr", "show", "eth1"]).ok().stdout;
    assert!(eth1.contains("198.51.100.2/24"), "{eth1}");

    // Pods and ClusterIPs are not reachable from outside.
    c.apply(
        "web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  containers: [{name: web, image: nginx}]\n",
    )
    .ok();
    let pod = c.ready_pod("web");
    c.emu(&["expose", "pod", "web", "--port", "80"]).ok();
    for target in [pod_ip(&pod), c.cluster_ip("web")] {
        let r = c.emu(&["outside", "--", "curl", "-sS", "-m", "2", &format!("http://{target}")]);
        assert_ne!(r.code, 0, "{target} must not be reachable from outside: {}", r.stdout);
    }
    // Not even with a route to them through a node (added here, inside the outside world): a
    // node takes from eth1 only what is for its own ExternalIP, as a cloud network does.
    let node_ip = if pod["spec"]["nodeName"] == "node-1" { "198.51.100.2" } else { "198.51.100.3" };
    for net in ["10.244.0.0/16", "10.96.0.0/12"] {
        c.emu(&["outside", "--", "ip", "route", "add", net, "via", node_ip]).ok();
    }
    for target in [pod_ip(&pod), c.cluster_ip("web")] {
        let r = c.emu(&["outside", "--", "curl", "-sS", "-m", "2", &format!("http://{target}")]);
        assert_ne!(r.code, 0, "{target} must not be reachable through a node's eth1: {}", r.stdout);
    }
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    let table = c.emu(&["ssh", node, "--", "nft", "list", "table", "ip", "emu-edge"]).ok().stdout;
    assert!(
        table.contains(&format!("iifname \"eth1\" ip daddr != {node_ip} counter packets")) && !table.contains("counter packets 0 "),
        "{table}"
    );
    for net in ["10.244.0.0/16", "10.96.0.0/12"] {
        c.emu(&["outside", "--", "ip", "route", "del", net]).ok();
    }
    // Nor from the host: its routing table leads nowhere into the cluster (asked, not tried:
    // a packet to these addresses would leave through the host's own default route).
    for target in [pod_ip(&pod), c.cluster_ip("web"), "198.51.100.2".to_string(), "203.0.113.1".to_string()] {
        let route = std::process::Command::new("ip").args(["route", "get", &target]).output().unwrap();
        let route = String::from_utf8_lossy(&route.stdout);
        assert!(
            !["veth", "fabric0", "cni0", "ext0", "eth1"].iter().any(|d| route.contains(d)),
            "the host routes {target} into emu: {route}"
        );
    }
    // The exit code of the command is passed through, and a shell runs when none is given.
    assert_eq!(c.emu(&["outside", "--", "sh", "-c", "exit 3"]).code, 3);
}

/// NET-6: a node port answers on every node's ExternalIP, also where no endpoint runs; with
/// `Cluster` the pod sees a node address, with `Local` the client's own and only nodes with an
/// endpoint answer.
#[test]
fn node_ports_from_the_outside_world() {
    let c = Cluster::up("tnodeportx", &["--nodes", "2"]);
    c.apply(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  \
         template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    )
    .ok();
    let pod = c.ready_pods("app=web", 1).remove(0);
    let (pod_name, pod_node) = (emu_tests::name(&pod), pod["spec"]["nodeName"].as_str().unwrap().to_string());
    let service = |policy: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: NodePort\n  externalTrafficPolicy: {policy}\n  \
             selector: {{app: web}}\n  ports: [{{port: 80, nodePort: 30080}}]\n"
        )
    };
    c.apply("svc.yaml", &service("Cluster")).ok();
    let nodes = [("node-1", "198.51.100.2"), ("node-2", "198.51.100.3")];
    let get = |ip: &str| c.emu(&["outside", "--", "curl", "-sS", "-m", "3", &format!("http://{ip}:30080/")]);
    for (node, ip) in nodes {
        let page = c.wait_for(&format!("node port on {node}"), std::time::Duration::from_secs(10), || {
            let r = get(ip);
            (r.code == 0).then_some(r.stdout)
        });
        assert!(page.contains("Welcome to nginx!"), "{node}: {page}");
    }
    let clients = || -> Vec<String> {
        let log = c.emu(&["logs", &pod_name]).ok().stdout;
        log.lines().filter(|l| l.contains("GET / ")).map(|l| l.split_whitespace().next().unwrap_or("").to_string()).collect()
    };
    let seen = clients();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|ip| ip != "198.51.100.1"), "Cluster policy: the pod sees a node address, not the client: {seen:?}");

    c.apply("svc.yaml", &service("Local")).ok();
    let (with_pod, without) = if pod_node == "node-1" { (nodes[0], nodes[1]) } else { (nodes[1], nodes[0]) };
    c.wait_for("Local policy on the node without the pod", std::time::Duration::from_secs(10), || (get(without.1).code != 0).then_some(()));
    let page = get(with_pod.1).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    assert_eq!(clients().last().map(String::as_str), Some("198.51.100.1"), "Local policy keeps the client's address");
    // Timing out, not refused: the node drops.
    assert_eq!(get(without.1).code, 28, "curl's timeout on {}", without.0);
}
