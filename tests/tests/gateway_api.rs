//! The Gateway API's v1 kinds served built in (issue 21, item 3): a GatewayClass of emu's
//! controller, a Gateway and an HTTPRoute splitting 80/20 over two Services are seen by `emu` and
//! the real kubectl alike, with the statuses emu's Gateway controller reports; the Gateway gets
//! its data path (a Deployment running emu-ingress in its `--gateway` mode and a LoadBalancer
//! Service, owned by the Gateway) and is Programmed with the balancer's address once its pod is
//! ready; a listener change reaches the Service, and the data path goes with the Gateway; a bad
//! Gateway is refused with the CRD's message by `emu apply` and `kubectl apply`.

mod kubectl_support;

use emu_tests::table_cells;
use kubectl_support::{cluster, kubectl};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
/// How long a data path may take to come up: a pod started, nginx running, the balancer's
/// health check passed.
const SERVED_WITHIN: Duration = Duration::from_secs(90);

const MANIFESTS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: emu
spec:
  controllerName: emu.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: web
spec:
  gatewayClassName: emu
  listeners:
  - name: http
    port: 80
    protocol: HTTP
---
apiVersion: v1
kind: Service
metadata:
  name: kubia-a
spec:
  selector:
    app: kubia-a
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: kubia-b
spec:
  selector:
    app: kubia-b
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: kubia
spec:
  parentRefs:
  - name: web
  hostnames:
  - kubia.example.com
  rules:
  - backendRefs:
    - name: kubia-a
      port: 80
      weight: 80
    - name: kubia-b
      port: 80
      weight: 20
";

const BAD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bad
spec:
  gatewayClassName: emu
  listeners:
  - name: http
    port: 0
    protocol: HTTP
";

/// The `type: status reason` of each condition.
fn conditions(c: &Value) -> Vec<String> {
    c.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!("{}: {} {}", c["type"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or(""), c["reason"].as_str().unwrap_or(""))
        })
        .collect()
}

#[test]
fn gateway_api_as_kubectl_sees_it() {
    let (c, dir) = cluster("tgw1");
    c.apply("gateway.yaml", MANIFESTS).ok();
    let get = |kind: &str, name: &str| -> Value { serde_json::from_str(&c.emu(&["get", kind, name, "-o", "json"]).ok().stdout).unwrap() };
    // The CRDs' defaults.
    let route = get("httproute", "kubia");
    assert_eq!(route["spec"]["parentRefs"][0]["kind"], "Gateway");
    assert_eq!(route["spec"]["rules"][0]["matches"][0]["path"]["type"], "PathPrefix");
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["kind"], "Service");
    // emu's Gateway controller reports.
    let route = c.wait_for("the HTTPRoute's status", Duration::from_secs(20), || {
        let r = get("httproute", "kubia");
        (!r["status"]["parents"].is_null()).then_some(r)
    });
    let parent = &route["status"]["parents"][0];
    assert_eq!(parent["controllerName"], "emu.dev/gateway-controller");
    assert_eq!(conditions(&parent["conditions"]), ["Accepted: True Accepted", "ResolvedRefs: True ResolvedRefs"]);
    // Programmed once its data path serves: the Service has the balancer's address and the
    // Deployment's pod (emu-ingress --gateway, nginx) is ready.
    let gw = c.wait_for("the Gateway programmed", SERVED_WITHIN, || {
        let gw = get("gateway", "web");
        (conditions(&gw["status"]["conditions"]) == ["Accepted: True Accepted", "Programmed: True Programmed"]).then_some(gw)
    });
    let listener = &gw["status"]["listeners"][0];
    assert_eq!(listener["attachedRoutes"], 1);
    assert!(conditions(&listener["conditions"]).contains(&"Programmed: True Programmed".to_string()), "{listener}");
    let address = gw["status"]["addresses"][0]["value"].as_str().expect("the Gateway's address").to_string();
    assert_eq!(gw["status"]["addresses"], json!([{"type": "IPAddress", "value": address}]));

    // The data path: a Deployment and a Service named <gateway>-<class>, owned by the Gateway.
    let deployment = get("deployment", "web-emu");
    let service = get("service", "web-emu");
    let owner = json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "web",
        "uid": gw["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    for o in [&deployment, &service] {
        assert_eq!(o["metadata"]["ownerReferences"], owner, "{o}");
        assert_eq!(o["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"], "web");
    }
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["status"]["readyReplicas"], 1);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "gateway");
    assert_eq!(container["image"], "registry.k8s.io/ingress-nginx/controller:v1.12.0");
    assert_eq!(container["args"], json!(["/nginx-ingress-controller", "--gateway=default/web"]));
    assert_eq!(container["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 10254);
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(service["spec"]["selector"], json!({"gateway.networking.k8s.io/gateway-name": "web"}));
    let ports = &service["spec"]["ports"];
    assert_eq!(
        (ports.as_array().map(Vec::len), &ports[0]["name"], &ports[0]["port"], &ports[0]["targetPort"]),
        (Some(1), &json!("http"), &json!(80), &json!(80))
    );
    assert_eq!(service["status"]["loadBalancer"]["ingress"][0]["ip"], address.as_str());
    let pods = c.pods("gateway.networking.k8s.io/gateway-name=web");
    assert_eq!(pods.len(), 1, "one pod serves the Gateway");

    // The real kubectl sees them as emu prints them: the address and PROGRAMMED True.
    let theirs = kubectl(&dir.0, LIMIT, &["get", "gateway,httproute"]);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let ours = c.emu(&["get", "gateway,httproute"]).ok();
    assert_eq!(table_cells(&ours.stdout), table_cells(&theirs.stdout));
    let rows = table_cells(&theirs.stdout);
    assert_eq!(rows[0], ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"], "{}", theirs.stdout);
    assert_eq!(rows[1], ["gateway.gateway.networking.k8s.io/web", "emu", address.as_str(), "True", "AGE"], "{}", theirs.stdout);
    assert!(theirs.stdout.contains("httproute.gateway.networking.k8s.io/kubia   [\"kubia.example.com\"]"), "{}", theirs.stdout);
    // A class of another controller keeps the CRD's default status.
    let other = MANIFESTS
        .split("---\n")
        .next()
        .unwrap()
        .replace("name: emu", "name: other")
        .replace("emu.dev/gateway-controller", "example.com/gateway");
    c.apply("other.yaml", &other).ok();
    let theirs = kubectl(&dir.0, LIMIT, &["get", "gatewayclass"]);
    assert_eq!(theirs.stdout, c.emu(&["get", "gatewayclass"]).ok().stdout);
    assert!(
        theirs.stdout.starts_with("NAME    CONTROLLER                   ACCEPTED   AGE\nemu     emu.dev/gateway-controller   True       "),
        "{}",
        theirs.stdout
    );
    assert!(theirs.stdout.contains("\nother   example.com/gateway          Unknown    "), "{}", theirs.stdout);
    let yaml = kubectl(&dir.0, LIMIT, &["get", "gatewayclass", "emu", "-o", "yaml"]);
    assert!(yaml.stdout.contains("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"), "{}", yaml.stdout);
    assert!(yaml.stdout.contains("    reason: Accepted\n    status: \"True\"\n    type: Accepted\n"), "{}", yaml.stdout);
    let gtw = kubectl(&dir.0, LIMIT, &["get", "gtw", "-o", "name"]);
    assert_eq!(gtw.stdout, "gateway.gateway.networking.k8s.io/web\n");

    // kubectl's generic describe of a custom resource.
    for (kind, name) in [("gateway", "web"), ("httproute", "kubia"), ("gatewayclass", "emu")] {
        let theirs = kubectl(&dir.0, LIMIT, &["describe", kind, name]);
        assert_eq!(theirs.code, 0, "{}", theirs.stderr);
        assert_eq!(c.emu(&["describe", kind, name]).ok().stdout, theirs.stdout, "describe {kind}");
    }

    // kubectl explain reads the published schemas; emu explain prints the same.
    for field in ["gateway.spec.listeners", "httproute.spec.rules.backendRefs"] {
        let theirs = kubectl(&dir.0, LIMIT, &["explain", field]);
        assert_eq!(theirs.code, 0, "{}", theirs.stderr);
        assert!(theirs.stdout.contains("FIELDS:"), "{}", theirs.stdout);
        assert_eq!(c.emu(&["explain", field]).ok().stdout, theirs.stdout, "explain {field}");
    }

    // A missing backend: ResolvedRefs False, BackendNotFound.
    c.emu(&["delete", "service", "kubia-b"]).ok();
    c.wait_for("BackendNotFound", Duration::from_secs(20), || {
        let r = get("httproute", "kubia");
        conditions(&r["status"]["parents"][0]["conditions"]).contains(&"ResolvedRefs: False BackendNotFound".to_string()).then_some(())
    });

    // kubectl apply of a change (a merge patch: kubectl has no compiled-in type for these kinds).
    let path = c.scratch_dir().join("split.yaml");
    std::fs::write(&path, MANIFESTS.replace("weight: 80", "weight: 50").replace("weight: 20", "weight: 50")).unwrap();
    let applied = kubectl(&dir.0, LIMIT, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(applied.stdout.contains("httproute.gateway.networking.k8s.io/kubia configured"), "{}", applied.stdout);
    let route = get("httproute", "kubia");
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 50);
    assert_eq!(route["metadata"]["generation"], 2);

    // A listener change reaches the data path: the Service's and the pod's ports follow (the
    // Service updated in place), and the Gateway stays programmed at its address.
    let service_uid = get("service", "web-emu")["metadata"]["uid"].clone();
    let path = c.scratch_dir().join("moved.yaml");
    let gateway = MANIFESTS.split("---\n").nth(1).unwrap();
    std::fs::write(&path, gateway.replace("    port: 80\n    protocol: HTTP", "    port: 8080\n    protocol: HTTP")).unwrap();
    let applied = kubectl(&dir.0, LIMIT, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(applied.stdout.contains("gateway.gateway.networking.k8s.io/web configured"), "{}", applied.stdout);
    let service = c.wait_for("the Service's port 8080", Duration::from_secs(20), || {
        let s = get("service", "web-emu");
        (s["spec"]["ports"].as_array().map(|p| p.iter().map(|p| (p["port"].clone(), p["targetPort"].clone())).collect::<Vec<_>>())
            == Some(vec![(json!(8080), json!(8080))]))
        .then_some(s)
    });
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["metadata"]["uid"], service_uid, "updated, not replaced");
    let deployment = get("deployment", "web-emu");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
    c.wait_for("the Gateway programmed after the change", SERVED_WITHIN, || {
        let gw = get("gateway", "web");
        let programmed = conditions(&gw["status"]["conditions"]).contains(&"Programmed: True Programmed".to_string());
        (programmed && gw["status"]["addresses"][0]["value"] == address.as_str()).then_some(())
    });

    // Refused alike, with the CRD's message.
    let path = c.scratch_dir().join("bad.yaml");
    std::fs::write(&path, BAD).unwrap();
    let ours = c.emu(&["apply", "-f", path.to_str().unwrap()]);
    let theirs = kubectl(&dir.0, LIMIT, &["apply", "-f", path.to_str().unwrap()]);
    let want = "The Gateway \"bad\" is invalid: spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1";
    assert!(theirs.stderr.contains(want), "kubectl: {}", theirs.stderr);
    assert!(ours.stderr.contains(want), "emu: {}", ours.stderr);
    assert_ne!(ours.code, 0);

    // The data path goes with its Gateway (the garbage collector follows the ownerReferences).
    c.emu(&["delete", "gateway", "web"]).ok();
    c.wait_for("the Gateway's Deployment and Service gone", Duration::from_secs(20), || {
        let gone = |kind: &str| c.emu(&["get", kind, "web-emu"]).stderr.contains("NotFound");
        (gone("deployment") && gone("service")).then_some(())
    });
    c.wait_for("the Gateway's pod gone", SERVED_WITHIN, || c.pods("gateway.networking.k8s.io/gateway-name=web").is_empty().then_some(()));

    // A namespace's Gateways and routes go with it.
    c.emu(&["create", "namespace", "shop"]).ok();
    let shop = MANIFESTS.split("---\n").nth(1).unwrap().replace("name: web", "name: shop\n  namespace: shop");
    c.apply("shop.yaml", &shop).ok();
    c.emu(&["delete", "namespace", "shop"]).ok();
    c.wait_for("the shop namespace's Gateway gone", Duration::from_secs(20), || {
        let r = c.emu(&["get", "gateway", "-n", "shop", "-o", "name"]);
        (r.code == 0 && r.stdout.is_empty()).then_some(())
    });
}
