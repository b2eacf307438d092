//! LoadBalancer Services and the emulated cloud load balancer (issue 6, NET-7): the tutorial's
//! "Exposing the Service" after `kubectl edit svc my-nginx` sets `type: LoadBalancer`.

use emu_tests::Cluster;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn service(c: &Cluster) -> Value {
    serde_json::from_str(&c.emu(&["get", "svc", "my-nginx", "-o", "json"]).ok().stdout).unwrap()
}

/// What `kubectl edit` does with the object: change it and send it back whole.
fn edit(c: &Cluster, change: impl FnOnce(&mut Value)) {
    let mut svc = service(c);
    change(&mut svc);
    c.apply("edited.yaml", &svc.to_string()).ok();
}

#[test]
fn the_tutorials_load_balancer() {
    let c = Cluster::up("tlb", &[&emu_tests::scenario_path("nginx-secure.yaml")]);
    let ports_before = c.emu(&["get", "svc", "my-nginx"]).ok().stdout;
    let node_ports: Vec<String> =
        ports_before.lines().nth(1).unwrap().split_whitespace().nth(4).unwrap().split(',').map(str::to_string).collect();

    edit(&c, |s| s["spec"]["type"] = "LoadBalancer".into());
    let edited = Instant::now();
    let row = c.wait_for("an EXTERNAL-IP", Duration::from_secs(2), || {
        let out = c.emu(&["get", "svc", "my-nginx"]).ok().stdout;
        (!out.contains("<pending>")).then_some(out)
    });
    println!("EXTERNAL-IP after {:?}", edited.elapsed());
    let cols: Vec<&str> = row.lines().nth(1).unwrap().split_whitespace().collect();
    // NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
    assert_eq!((cols[1], cols[3]), ("LoadBalancer", "203.0.113.1"), "{row}");
    assert_eq!(cols[4].split(',').collect::<Vec<_>>(), node_ports, "the node ports are kept");
    assert_eq!(service(&c)["status"]["loadBalancer"]["ingress"][0]["ip"], "203.0.113.1");
    let described = c.emu(&["describe", "svc", "my-nginx"]).ok().stdout;
    assert!(described.contains("LoadBalancer Ingress:     203.0.113.1"), "{described}");

    // From the outside world, through the balancer, at the first try: the address is published
    // once the balancer forwards (a first request used to time out, its SYN sent untranslated
    // to an address nobody held); and from a pod, handled on its node.
    let page = c.emu(&["outside", "--", "curl", "-sSk", "-m", "3", "https://203.0.113.1"]).ok().stdout;
    assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
    let page = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sSk", "-m", "3", "https://203.0.113.1"]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    // Addresses of the pool nobody holds do not answer.
    assert_ne!(c.emu(&["outside", "--", "curl", "-sS", "-m", "2", "http://203.0.113.99"]).code, 0);

    // Local: the balancer only uses the node with the pod, and the pod sees the client.
    edit(&c, |s| s["spec"]["externalTrafficPolicy"] = "Local".into());
    assert!(service(&c)["spec"]["healthCheckNodePort"].as_u64().is_some());
    let pod_node = c.pods("run=my-nginx")[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    // Each node's proxy answers on the health check node port as kube-proxy does.
    let hcnp = service(&c)["spec"]["healthCheckNodePort"].as_u64().unwrap().to_string();
    for (node, ip) in [("kubernetes-minion-905m", "198.51.100.2"), ("kubernetes-minion-ljyd", "198.51.100.3")] {
        let (want_code, want_count) = if node == pod_node { ("200", 1) } else { ("503", 0) };
        let out = c.wait_for(&format!("{node}'s health check answer"), Duration::from_secs(5), || {
            let r =
                c.emu(&["outside", "--", "curl", "-s", "-m", "2", "-w", "\n%{http_code}", &format!("http://{ip}:{hcnp}/healthz")]).stdout;
            r.ends_with(want_code).then_some(r)
        });
        assert!(out.contains(&format!("\"localEndpoints\": {want_count},")) && out.contains("\"name\": \"my-nginx\""), "{node}: {out}");
    }
    let healthz = c.emu(&["ssh", &pod_node, "--", "curl", "-s", "http://127.0.0.1:10256/healthz"]).ok().stdout;
    assert!(healthz.contains("\"nodeEligible\": true"), "{healthz}");
    let cloud_log = PathBuf::from("/run/emu").join(&c.name).join("cloud.log");
    c.wait_for("the balancer to drop the node without the pod", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&cloud_log).unwrap_or_default();
        let last = log.lines().rev().find(|l| l.contains("balancers programmed"))?.to_string();
        (last.matches("198.51.100.").count() == 1).then_some(())
    });
    for _ in 0..10 {
        let r = c.emu(&["outside", "--", "curl", "-sSk", "-m", "3", "https://203.0.113.1"]);
        assert_eq!(r.code, 0, "every request reaches a node with the pod ({pod_node}): {}", r.stderr);
    }
    let log = c.emu(&["logs", "deploy/my-nginx"]).ok().stdout;
    assert_eq!(log.lines().last().and_then(|l| l.split_whitespace().next()), Some("198.51.100.1"), "{log}");

    // Bad input: the address of another Service, or outside the pool; nothing changes.
    let other = |ip: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: other}}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: {ip}\n  selector: {{run: my-nginx}}\n  ports: [{{port: 80}}]\n")
    };
    let r = c.apply("other.yaml", &other("203.0.113.1"));
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "The Service \"other\" is invalid: spec.loadBalancerIP: Invalid value: \"203.0.113.1\": already in use by Service default/my-nginx")
    );
    let r = c.apply("other.yaml", &other("192.0.2.10"));
    assert_eq!(
        (r.code, r.stderr.trim_end()),
        (1, "The Service \"other\" is invalid: spec.loadBalancerIP: Invalid value: \"192.0.2.10\": not in the load balancer pool 203.0.113.0/24")
    );
    assert_ne!(c.emu(&["get", "svc", "other"]).code, 0);
    // A free address of the pool, as asked.
    c.apply("other.yaml", &other("203.0.113.50")).ok();
    c.wait_for("the requested address", Duration::from_secs(2), || {
        (c.emu(&["get", "svc", "other", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).stdout == "203.0.113.50").then_some(())
    });

    // A balancer without a healthy node refuses at once (curl: "Couldn't connect", exit 7),
    // not a timeout.
    c.emu(&["scale", "deployment", "my-nginx", "--replicas=0"]).ok();
    c.wait_for("the balancer to refuse", Duration::from_secs(10), || {
        (c.emu(&["outside", "--", "curl", "-sSk", "-m", "2", "https://203.0.113.1"]).code == 7).then_some(())
    });

    // Back to ClusterIP: the address is released and no longer answers.
    edit(&c, |s| {
        s["spec"]["type"] = "ClusterIP".into();
        for p in s["spec"]["ports"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("nodePort");
        }
        let spec = s["spec"].as_object_mut().unwrap();
        spec.remove("healthCheckNodePort");
        spec.remove("externalTrafficPolicy");
    });
    let svc = service(&c);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["status"]["loadBalancer"]["ingress"].is_null(), "{svc}");
    c.wait_for("the released address to stop answering", Duration::from_secs(5), || {
        (c.emu(&["outside", "--", "curl", "-sSk", "-m", "2", "https://203.0.113.1"]).code != 0).then_some(())
    });
}
