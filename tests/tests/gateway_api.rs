//! The Gateway API's v1 kinds served built in (issue 21, item 3, first increment): a GatewayClass
//! of emu's controller, a Gateway and an HTTPRoute splitting 80/20 over two Services are seen by
//! `emu` and the real kubectl alike, with the statuses emu's Gateway controller reports (accepted,
//! references resolved, not programmed until a data path serves them); a bad Gateway is refused
//! with the CRD's message by `emu apply` and `kubectl apply`.

mod kubectl_support;

use kubectl_support::{cluster, kubectl};
use serde_json::Value;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

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
    let gw = c.wait_for("the Gateway's status", Duration::from_secs(20), || {
        let gw = get("gateway", "web");
        (conditions(&gw["status"]["conditions"]) == ["Accepted: True Accepted", "Programmed: False Pending"]).then_some(gw)
    });
    assert_eq!(gw["status"]["listeners"][0]["attachedRoutes"], 1);

    // The real kubectl sees them as emu prints them.
    let theirs = kubectl(&dir.0, LIMIT, &["get", "gateway,httproute"]);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let ours = c.emu(&["get", "gateway,httproute"]).ok();
    assert_eq!(ours.stdout, theirs.stdout);
    assert!(theirs.stdout.contains("gateway.gateway.networking.k8s.io/web   emu               False        "), "{}", theirs.stdout);
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

    // Refused alike, with the CRD's message.
    let path = c.scratch_dir().join("bad.yaml");
    std::fs::write(&path, BAD).unwrap();
    let ours = c.emu(&["apply", "-f", path.to_str().unwrap()]);
    let theirs = kubectl(&dir.0, LIMIT, &["apply", "-f", path.to_str().unwrap()]);
    let want = "The Gateway \"bad\" is invalid: spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1";
    assert!(theirs.stderr.contains(want), "kubectl: {}", theirs.stderr);
    assert!(ours.stderr.contains(want), "emu: {}", ours.stderr);
    assert_ne!(ours.code, 0);

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
