use super::*;
use serde_json::json;

// The functions under test with the Service (and its ports) and the pods written as JSON,
// decoded on the way in, so that each case reads as the objects it stands for.
fn typed_svc(svc: &Value) -> Service {
    typed::decode(svc).unwrap()
}

fn typed_pod(pod: &Value) -> Pod {
    typed::decode(pod).unwrap()
}

fn typed_pods<P: Borrow<Value>>(pods: &[P]) -> Vec<Pod> {
    pods.iter().map(|p| typed_pod(p.borrow())).collect()
}

fn pod_is_ready(pod: &Value) -> bool {
    super::pod_is_ready(&typed_pod(pod))
}

fn desired_endpoints<P: Borrow<Value>>(svc: &Value, pods: &[P], now: &str) -> Option<Value> {
    super::desired_endpoints(&typed_svc(svc), &typed_pods(pods), now)
}

fn desired_slices<P: Borrow<Value>, S: Borrow<Value>>(
    svc: &Value,
    pods: &[P],
    existing: &[S],
    now: &str,
    entropy: &mut dyn FnMut() -> [u8; 5],
) -> SliceChanges {
    super::desired_slices(&typed_svc(svc), &typed_pods(pods), existing, now, entropy)
}

fn mirrored_slices<S: Borrow<Value>>(
    svc: Option<&Value>,
    endpoints: Option<&Value>,
    existing: &[S],
    entropy: &mut dyn FnMut() -> [u8; 5],
) -> SliceChanges {
    super::mirrored_slices(svc.map(typed_svc).as_ref(), endpoints, existing, entropy)
}

fn mirrored_slice(svc: &Value, endpoints: &Value, existing: Option<&Value>, entropy: &mut dyn FnMut() -> [u8; 5]) -> Option<Value> {
    super::mirrored_slice(&typed_svc(svc), endpoints, existing, entropy)
}

fn selects(svc: &Value, pod_labels: &BTreeMap<String, String>) -> bool {
    super::selects(&typed_svc(svc), pod_labels)
}

fn resolve_target_port(pod: &Value, port: &Value) -> Option<u16> {
    super::resolve_target_port(&typed_pod(pod), &typed::decode(port).unwrap())
}

/// No pods, or no slices.
const NONE: &[Value] = &[];
const NOW: &str = "2026-11-22T04:00:00Z";
const LATER: &str = "2026-11-22T04:05:00Z";

fn svc(ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "my-nginx", "namespace": "default", "uid": "svc-uid", "labels": {"run": "my-nginx"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.100.1", "selector": {"run": "my-nginx"}, "ports": ports}})
}

fn http_svc() -> Value {
    svc(json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]))
}

fn pod(name: &str, ip: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"run": "my-nginx"}},
        "spec": {"nodeName": "worker", "containers": [{"name": "nginx", "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn terminating(mut p: Value) -> Value {
    p["metadata"]["deletionTimestamp"] = json!(NOW);
    p
}

/// A deterministic entropy source: 0,0,0,0,0 then 1,1,1,1,1, ...
fn counter() -> impl FnMut() -> [u8; 5] {
    let mut n = 0u8;
    move || {
        let e = [n; 5];
        n = n.wrapping_add(1);
        e
    }
}

/// What the store holds after applying `changes` to `existing` (new objects get a uid).
fn apply(existing: &[Value], changes: &SliceChanges) -> Vec<Value> {
    let mut out: Vec<Value> = existing
        .iter()
        .filter(|s| !changes.delete.iter().any(|d| d == object::name(s)))
        .map(|s| changes.update.iter().find(|u| object::name(u) == object::name(s)).cloned().unwrap_or_else(|| s.clone()))
        .collect();
    for c in &changes.create {
        let mut c = c.clone();
        c["metadata"]["uid"] = json!(format!("slice-uid-{}", object::name(&c)));
        c["metadata"]["resourceVersion"] = json!("1");
        out.push(c);
    }
    out
}

fn ips(slice: &Value) -> Vec<&str> {
    slice["endpoints"].as_array().into_iter().flatten().map(|e| e["addresses"][0].as_str().unwrap()).collect()
}

fn addr_ips(subset: &Value, key: &str) -> Vec<String> {
    subset[key].as_array().into_iter().flatten().map(|a| a["ip"].as_str().unwrap().to_string()).collect()
}

// ---- pod readiness, selection, ports ----------------------------------------------------------

#[test]
fn ready_condition() {
    assert!(pod_is_ready(&pod("a", "10.244.1.2", true)));
    assert!(!pod_is_ready(&pod("a", "10.244.1.2", false)));
    assert!(!pod_is_ready(&json!({"status": {}})));
    assert!(!pod_is_ready(&json!({"status": {"conditions": [{"type": "ContainersReady", "status": "True"}]}})));
}

#[test]
fn no_endpoints_for_selectorless_or_external_name() {
    let mut s = http_svc();
    s["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(desired_endpoints(&s, &[pod("a", "10.244.1.2", true)], NOW), None);
    s["spec"]["selector"] = json!({});
    assert_eq!(desired_endpoints(&s, &[pod("a", "10.244.1.2", true)], NOW), None);
    let mut ext = http_svc();
    ext["spec"]["type"] = json!("ExternalName");
    assert_eq!(desired_endpoints(&ext, &[pod("a", "10.244.1.2", true)], NOW), None);
    // Their slices, if any were left, are deleted and none created.
    let existing = desired_slices(&http_svc(), NONE, NONE, NOW, &mut counter()).create;
    let ch = desired_slices(&ext, NONE, &existing, NOW, &mut counter());
    assert_eq!(ch.delete, vec![object::name(&existing[0]).to_string()]);
    assert!(ch.create.is_empty() && ch.update.is_empty());
}

#[test]
fn which_pods_are_endpoints() {
    let mut other_ns = pod("other-ns", "10.244.1.3", true);
    other_ns["metadata"]["namespace"] = json!("prod");
    let mut other_label = pod("other-label", "10.244.1.4", true);
    other_label["metadata"]["labels"]["run"] = json!("db");
    let mut no_ip = pod("no-ip", "", false);
    no_ip["status"].as_object_mut().unwrap().remove("podIP");
    let mut succeeded = pod("done", "10.244.1.5", false);
    succeeded["status"]["phase"] = json!("Succeeded");
    let mut failed = pod("failed", "10.244.1.6", false);
    failed["status"]["phase"] = json!("Failed");
    let mut pending = pod("pending", "10.244.1.7", false);
    pending["status"]["phase"] = json!("Pending");
    let pods = [pod("ok", "10.244.1.2", true), other_ns, other_label, no_ip, succeeded, failed, pending];
    let ep = desired_endpoints(&http_svc(), &pods, NOW).unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(addr_ips(&subsets[0], "addresses"), ["10.244.1.2"]);
    assert_eq!(addr_ips(&subsets[0], "notReadyAddresses"), ["10.244.1.7"]);
    let ch = desired_slices(&http_svc(), &pods, NONE, NOW, &mut counter());
    assert_eq!(ch.create.len(), 1);
    assert_eq!(ips(&ch.create[0]), ["10.244.1.2", "10.244.1.7"]);
}

#[test]
fn named_target_port_matches_name_and_protocol() {
    let p = pod("a", "10.244.1.2", true);
    let named = |name: &str, proto: &str| json!({"port": 80, "protocol": proto, "targetPort": name});
    assert_eq!(resolve_target_port(&p, &named("http", "TCP")), Some(80));
    assert_eq!(resolve_target_port(&p, &named("http", "UDP")), None, "protocol must match");
    assert_eq!(resolve_target_port(&p, &named("web", "TCP")), None);
    assert_eq!(resolve_target_port(&p, &json!({"port": 80, "targetPort": 8080})), Some(8080));
    assert_eq!(resolve_target_port(&p, &json!({"port": 443})), Some(443), "absent targetPort is the port");
    // Container ports default to TCP; restartable init containers count, others do not.
    let mut side = p.clone();
    side["spec"]["containers"] = json!([{"name": "c"}]);
    side["spec"]["initContainers"] = json!([
        {"name": "init", "ports": [{"name": "metrics", "containerPort": 9000}]},
        {"name": "sidecar", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9100}]}]);
    assert_eq!(resolve_target_port(&side, &named("metrics", "TCP")), Some(9100));
    // The first container port with the name wins.
    let mut two = p.clone();
    two["spec"]["containers"] = json!([{"name": "a", "ports": [{"name": "http", "containerPort": 8080}]},
        {"name": "b", "ports": [{"name": "http", "containerPort": 9090}]}]);
    assert_eq!(resolve_target_port(&two, &named("http", "TCP")), Some(8080));
}

// ---- Endpoints (EP-5) ---------------------------------------------------------------------------

#[test]
fn endpoints_shape() {
    let mut s = svc(json!([{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]));
    s["metadata"]["labels"]["tier"] = json!("web");
    let mut named = pod("b", "10.244.2.5", true);
    named["spec"]["hostname"] = json!("web-0");
    named["spec"]["subdomain"] = json!("my-nginx");
    let mut wrong_sub = pod("c", "10.244.10.5", true);
    wrong_sub["spec"]["hostname"] = json!("web-1");
    wrong_sub["spec"]["subdomain"] = json!("other");
    let ep = desired_endpoints(&s, &[named, wrong_sub, pod("d", "10.244.3.4", false)], NOW).unwrap();
    assert_eq!(
        ep,
        json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "my-nginx", "namespace": "default", "labels": {"run": "my-nginx", "tier": "web"},
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": NOW}},
            "subsets": [{
                // Byte-wise: 10.244.10.5 sorts before 10.244.2.5.
                "addresses": [
                    {"ip": "10.244.10.5", "nodeName": "worker", "targetRef": {"kind": "Pod", "name": "c", "namespace": "default", "uid": "uid-c"}},
                    {"ip": "10.244.2.5", "nodeName": "worker", "hostname": "web-0", "targetRef": {"kind": "Pod", "name": "b", "namespace": "default", "uid": "uid-b"}}],
                "notReadyAddresses": [
                    {"ip": "10.244.3.4", "nodeName": "worker", "targetRef": {"kind": "Pod", "name": "d", "namespace": "default", "uid": "uid-d"}}],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}]})
    );
}

#[test]
fn endpoints_without_pods_have_no_subsets_and_unnamed_ports_no_name() {
    let ep = desired_endpoints(&http_svc(), NONE, NOW).unwrap();
    assert!(ep.get("subsets").is_none(), "{ep}");
    let ep = desired_endpoints(&http_svc(), &[pod("a", "10.244.1.2", true)], NOW).unwrap();
    assert_eq!(ep["subsets"][0]["ports"], json!([{"port": 80, "protocol": "TCP"}]));
}

#[test]
fn headless_endpoints() {
    let mut s = svc(json!([]));
    s["spec"]["clusterIP"] = json!("None");
    s["metadata"]["labels"] = json!({});
    let ep = desired_endpoints(&s, &[pod("a", "10.244.1.2", true)], NOW).unwrap();
    assert_eq!(ep["metadata"]["labels"], json!({"service.kubernetes.io/headless": ""}));
    // A headless Service without ports lists its pods with no ports.
    assert_eq!(addr_ips(&ep["subsets"][0], "addresses"), ["10.244.1.2"]);
    assert!(ep["subsets"][0].get("ports").is_none());
    // A plain Service with labels and no headless label: none added.
    let ep = desired_endpoints(&http_svc(), NONE, NOW).unwrap();
    assert_eq!(ep["metadata"]["labels"], json!({"run": "my-nginx"}));
}

#[test]
fn terminating_pods_leave_endpoints_unless_publishing_not_ready() {
    let pods = [pod("a", "10.244.1.2", true), terminating(pod("b", "10.244.1.3", true)), pod("c", "10.244.1.4", false)];
    let ep = desired_endpoints(&http_svc(), &pods, NOW).unwrap();
    assert_eq!(addr_ips(&ep["subsets"][0], "addresses"), ["10.244.1.2"]);
    assert_eq!(addr_ips(&ep["subsets"][0], "notReadyAddresses"), ["10.244.1.4"]);
    let mut s = http_svc();
    s["spec"]["publishNotReadyAddresses"] = json!(true);
    let ep = desired_endpoints(&s, &pods, NOW).unwrap();
    assert_eq!(addr_ips(&ep["subsets"][0], "addresses"), ["10.244.1.2", "10.244.1.3", "10.244.1.4"]);
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
}

#[test]
fn named_port_resolving_differently_splits_subsets() {
    let s = svc(json!([{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "http"}]));
    let mut other = pod("b", "10.244.1.3", true);
    other["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let mut lacking = pod("c", "10.244.1.4", true);
    lacking["spec"]["containers"][0]["ports"] = json!([]);
    let ep = desired_endpoints(&s, &[pod("a", "10.244.1.2", true), other, lacking], NOW).unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2, "{ep}");
    let mut seen: Vec<(Vec<String>, Value)> = subsets.iter().map(|s| (addr_ips(s, "addresses"), s["ports"][0]["port"].clone())).collect();
    seen.sort_by_key(|s| s.0.clone());
    assert_eq!(seen, [(vec!["10.244.1.2".to_string()], json!(80)), (vec!["10.244.1.3".to_string()], json!(8080))]);
}

#[test]
fn ports_group_by_identical_address_sets() {
    // Port `metrics` is served only by pod b: it gets a subset of its own; `http` is shared.
    let s = svc(json!([{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9000, "targetPort": "metrics"}]));
    let mut b = pod("b", "10.244.1.3", true);
    b["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 80}, {"name": "metrics", "containerPort": 9000}]);
    let ep = desired_endpoints(&s, &[pod("a", "10.244.1.2", true), b], NOW).unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2);
    // Ordered by the Service port they carry: http first.
    assert_eq!(subsets[0]["ports"], json!([{"name": "http", "port": 80, "protocol": "TCP"}]));
    assert_eq!(addr_ips(&subsets[0], "addresses"), ["10.244.1.2", "10.244.1.3"]);
    assert_eq!(subsets[1]["ports"], json!([{"name": "metrics", "port": 9000, "protocol": "TCP"}]));
    assert_eq!(addr_ips(&subsets[1], "addresses"), ["10.244.1.3"]);
    // A not-ready pod makes its address set differ: ready and not-ready sets are part of the key.
    let both = svc(json!([{"name": "http", "port": 80}, {"name": "alt", "port": 81}]));
    let ep = desired_endpoints(&both, &[pod("a", "10.244.1.2", true), pod("x", "10.244.1.9", false)], NOW).unwrap();
    assert_eq!(ep["subsets"].as_array().unwrap().len(), 1);
    assert_eq!(ep["subsets"][0]["ports"].as_array().unwrap().len(), 2);
}

#[test]
fn endpoints_are_stable_and_compare_meaningfully() {
    let pods = vec![pod("a", "10.244.1.2", true), pod("b", "10.244.2.2", false), pod("c", "10.244.1.10", true)];
    let first = desired_endpoints(&http_svc(), &pods, NOW).unwrap();
    let reversed: Vec<Value> = pods.iter().rev().cloned().collect();
    let again = desired_endpoints(&http_svc(), &reversed, LATER).unwrap();
    assert_eq!(first["subsets"], again["subsets"], "pod order must not matter");
    // What the store returns carries more metadata; still equal.
    let mut stored = first.clone();
    stored["metadata"]["uid"] = json!("x");
    stored["metadata"]["resourceVersion"] = json!("7");
    stored["metadata"]["creationTimestamp"] = json!(NOW);
    assert!(endpoints_equal(&stored, &again));
    // A readiness change, a label change or a lost pod is a change.
    let mut flipped = pods.clone();
    flipped[1] = pod("b", "10.244.2.2", true);
    assert!(!endpoints_equal(&stored, &desired_endpoints(&http_svc(), &flipped, LATER).unwrap()));
    let mut relabelled = http_svc();
    relabelled["metadata"]["labels"]["tier"] = json!("web");
    assert!(!endpoints_equal(&stored, &desired_endpoints(&relabelled, &pods, LATER).unwrap()));
    assert!(!endpoints_equal(&stored, &desired_endpoints(&http_svc(), &pods[..2], LATER).unwrap()));
    // Null and absent lists mean the same.
    assert!(endpoints_equal(&json!({"subsets": null}), &json!({})));
    assert!(endpoints_equal(
        &json!({"subsets": [{"addresses": [{"ip": "1.2.3.4"}], "notReadyAddresses": null}]}),
        &json!({"subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]})
    ));
}

#[test]
fn update_keeps_stored_metadata() {
    let mut stored = desired_endpoints(&http_svc(), NONE, NOW).unwrap();
    stored["metadata"]["uid"] = json!("ep-uid");
    stored["metadata"]["resourceVersion"] = json!("7");
    stored["metadata"]["annotations"]["note"] = json!("kept");
    stored["metadata"]["annotations"][ANNOTATION_OVER_CAPACITY] = json!("truncated");
    let desired = desired_endpoints(&http_svc(), &[pod("a", "10.244.1.2", true)], LATER).unwrap();
    let out = endpoints_for_update(&stored, &desired);
    assert_eq!(out["metadata"]["uid"], "ep-uid");
    assert_eq!(out["metadata"]["resourceVersion"], "7");
    assert_eq!(out["metadata"]["annotations"], json!({"note": "kept", ANNOTATION_TRIGGER_TIME: LATER}));
    assert_eq!(out["subsets"], desired["subsets"]);
    assert!(endpoints_equal(&out, &desired));
    // Back to no pods: the subsets key goes away.
    let empty = endpoints_for_update(&out, &desired_endpoints(&http_svc(), NONE, LATER).unwrap());
    assert!(empty.get("subsets").is_none());
}

#[test]
fn endpoints_capped_at_1000_addresses() {
    let pods: Vec<Value> = (0..1005).map(|i| pod(&format!("p{i}"), &format!("10.244.{}.{}", i / 250, i % 250 + 1), i % 2 == 0)).collect();
    let ep = desired_endpoints(&http_svc(), &pods, NOW).unwrap();
    let ready = ep["subsets"][0]["addresses"].as_array().unwrap().len();
    let not_ready = ep["subsets"][0]["notReadyAddresses"].as_array().unwrap().len();
    assert_eq!((ready, not_ready), (503, 497), "not-ready addresses are cut first");
    assert_eq!(object::annotation(&ep, ANNOTATION_OVER_CAPACITY), Some("truncated"));
    let small = desired_endpoints(&http_svc(), &pods[..1000], NOW).unwrap();
    assert_eq!(object::annotation(&small, ANNOTATION_OVER_CAPACITY), None);
}

// ---- EndpointSlices (EP-2, EP-4) ----------------------------------------------------------------

#[test]
fn placeholder_slice_when_nothing_matches() {
    let ch = desired_slices(&http_svc(), NONE, NONE, NOW, &mut counter());
    assert!(ch.update.is_empty() && ch.delete.is_empty());
    assert_eq!(
        ch.create,
        vec![json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "my-nginx-bbbbb", "generateName": "my-nginx-", "namespace": "default",
                "labels": {"run": "my-nginx", "kubernetes.io/service-name": "my-nginx",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": NOW},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "my-nginx", "uid": "svc-uid",
                    "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4", "endpoints": null, "ports": null})]
    );
    // Steady: the placeholder stays, nothing is written.
    let stored = apply(&[], &ch);
    assert!(desired_slices(&http_svc(), NONE, &stored, LATER, &mut counter()).is_empty());
}

#[test]
fn slice_shape_and_conditions() {
    let mut s = svc(json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
    s["spec"]["clusterIP"] = json!("None");
    s["spec"]["selector"] = json!({"run": "my-nginx"});
    let mut named = pod("a", "10.244.1.2", true);
    named["spec"]["hostname"] = json!("web-0");
    named["spec"]["subdomain"] = json!("my-nginx");
    let pods = [named, pod("b", "10.244.1.3", false), terminating(pod("c", "10.244.1.4", true))];
    let ch = desired_slices(&s, &pods, NONE, NOW, &mut counter());
    assert_eq!(ch.create.len(), 1);
    let slice = &ch.create[0];
    assert_eq!(slice["metadata"]["labels"][LABEL_HEADLESS], "");
    assert_eq!(slice["ports"], json!([{"name": "", "port": 80, "protocol": "TCP"}]));
    assert_eq!(
        slice["endpoints"],
        json!([
            {"addresses": ["10.244.1.2"], "conditions": {"ready": true, "serving": true, "terminating": false}, "hostname": "web-0",
                "nodeName": "worker", "targetRef": {"kind": "Pod", "name": "a", "namespace": "default", "uid": "uid-a"}},
            {"addresses": ["10.244.1.3"], "conditions": {"ready": false, "serving": false, "terminating": false},
                "nodeName": "worker", "targetRef": {"kind": "Pod", "name": "b", "namespace": "default", "uid": "uid-b"}},
            // Terminating pods stay, serving but not ready (EP-2).
            {"addresses": ["10.244.1.4"], "conditions": {"ready": false, "serving": true, "terminating": true},
                "nodeName": "worker", "targetRef": {"kind": "Pod", "name": "c", "namespace": "default", "uid": "uid-c"}}])
    );
    // publishNotReadyAddresses: all ready (SVC-19), other conditions unchanged.
    s["spec"]["publishNotReadyAddresses"] = json!(true);
    let ch = desired_slices(&s, &pods, NONE, NOW, &mut counter());
    let conds: Vec<Value> = ch.create[0]["endpoints"].as_array().unwrap().iter().map(|e| e["conditions"].clone()).collect();
    assert_eq!(
        conds,
        [
            json!({"ready": true, "serving": true, "terminating": false}),
            json!({"ready": true, "serving": false, "terminating": false}),
            json!({"ready": true, "serving": true, "terminating": true})
        ]
    );
}

#[test]
fn steady_state_writes_nothing_and_changes_write_in_place() {
    let svc = http_svc();
    let pods = vec![pod("a", "10.244.1.2", true), pod("b", "10.244.1.3", true)];
    let stored = apply(&[], &desired_slices(&svc, &pods, NONE, NOW, &mut counter()));
    assert_eq!(stored.len(), 1);
    assert!(desired_slices(&svc, &pods, &stored, LATER, &mut counter()).is_empty());

    // A new pod is appended to the existing slice; the others keep their place (EP-8).
    let more = vec![pod("c", "10.244.1.1", true), pods[0].clone(), pods[1].clone()];
    let ch = desired_slices(&svc, &more, &stored, LATER, &mut counter());
    assert!(ch.create.is_empty() && ch.delete.is_empty());
    assert_eq!(ch.update.len(), 1);
    let updated = &ch.update[0];
    assert_eq!(ips(updated), ["10.244.1.2", "10.244.1.3", "10.244.1.1"]);
    assert_eq!(updated["metadata"]["uid"], stored[0]["metadata"]["uid"]);
    assert_eq!(updated["metadata"]["resourceVersion"], "1");
    assert_eq!(object::annotation(updated, ANNOTATION_TRIGGER_TIME), Some(LATER));
    let stored = apply(&stored, &ch);

    // A readiness change rewrites the endpoint in place.
    let flipped = vec![pod("c", "10.244.1.1", true), pod("a", "10.244.1.2", false), pods[1].clone()];
    let ch = desired_slices(&svc, &flipped, &stored, LATER, &mut counter());
    assert_eq!(ips(&ch.update[0]), ["10.244.1.2", "10.244.1.3", "10.244.1.1"]);
    assert_eq!(ch.update[0]["endpoints"][0]["conditions"]["ready"], false);

    // All pods gone: the same slice becomes the placeholder (no create, no delete).
    let ch = desired_slices(&svc, NONE, &stored, LATER, &mut counter());
    assert!(ch.create.is_empty() && ch.delete.is_empty(), "{ch:?}");
    assert_eq!(object::name(&ch.update[0]), object::name(&stored[0]));
    assert_eq!((ch.update[0]["endpoints"].clone(), ch.update[0]["ports"].clone()), (Value::Null, Value::Null));
    let stored = apply(&stored, &ch);

    // And back: the placeholder is reused for the pods.
    let ch = desired_slices(&svc, &pods, &stored, LATER, &mut counter());
    assert!(ch.create.is_empty() && ch.delete.is_empty());
    assert_eq!(ips(&ch.update[0]), ["10.244.1.2", "10.244.1.3"]);

    // A label change on the Service is a change of every slice.
    let mut relabelled = svc.clone();
    relabelled["metadata"]["labels"]["tier"] = json!("web");
    let stored = apply(&stored, &ch);
    let ch = desired_slices(&relabelled, &pods, &stored, LATER, &mut counter());
    assert_eq!(ch.update.len(), 1);
    assert_eq!(ch.update[0]["metadata"]["labels"]["tier"], "web");
}

#[test]
fn pods_lacking_a_named_port_get_a_slice_without_ports() {
    let s = svc(json!([{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "http"}]));
    let mut lacking = pod("b", "10.244.1.3", true);
    lacking["spec"]["containers"][0]["ports"] = json!([]);
    let ch = desired_slices(&s, &[pod("a", "10.244.1.2", true), lacking], NONE, NOW, &mut counter());
    assert_eq!(ch.create.len(), 2);
    let with: Vec<(Value, Vec<&str>)> = ch.create.iter().map(|c| (c["ports"].clone(), ips(c))).collect();
    assert!(with.contains(&(json!([{"name": "web", "port": 80, "protocol": "TCP"}]), vec!["10.244.1.2"])), "{with:?}");
    assert!(with.contains(&(Value::Null, vec!["10.244.1.3"])), "{with:?}");
    assert_ne!(object::name(&ch.create[0]), object::name(&ch.create[1]));
}

#[test]
fn at_most_100_endpoints_per_slice() {
    let svc = http_svc();
    let pods: Vec<Value> = (0..250).map(|i| pod(&format!("p{i}"), &format!("10.244.{}.{}", i / 200, i % 200 + 1), true)).collect();
    let ch = desired_slices(&svc, &pods, NONE, NOW, &mut counter());
    let mut sizes: Vec<usize> = ch.create.iter().map(|c| ips(c).len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    let stored = apply(&[], &ch);
    assert!(desired_slices(&svc, &pods, &stored, LATER, &mut counter()).is_empty());
    // Ten more pods fill the slice with room instead of making a new one.
    let more: Vec<Value> = (0..260).map(|i| pod(&format!("p{i}"), &format!("10.244.{}.{}", i / 200, i % 200 + 1), true)).collect();
    let ch = desired_slices(&svc, &more, &stored, LATER, &mut counter());
    assert!(ch.create.is_empty() && ch.delete.is_empty());
    assert_eq!(ch.update.len(), 1);
    assert_eq!(ips(&ch.update[0]).len(), 60);
}

#[test]
fn foreign_and_stale_slices() {
    let svc = http_svc();
    let pods = [pod("a", "10.244.1.2", true)];
    let mut stored = apply(&[], &desired_slices(&svc, &pods, NONE, NOW, &mut counter()));
    // A slice left by an earlier Service of the same name (other uid) is deleted, not reused.
    let mut stale = stored[0].clone();
    stale["metadata"]["name"] = json!("my-nginx-zzzzz");
    stale["metadata"]["ownerReferences"][0]["uid"] = json!("old-uid");
    // A slice of someone else (a user's, or the mirroring controller's) is not ours to touch.
    let mut users = stored[0].clone();
    users["metadata"]["name"] = json!("mine");
    users["metadata"]["labels"][LABEL_MANAGED_BY] = json!("someone-else");
    stored.extend([stale, users]);
    let ch = desired_slices(&svc, &pods, &stored, LATER, &mut counter());
    assert_eq!(ch, SliceChanges { delete: vec!["my-nginx-zzzzz".into()], ..Default::default() });
}

#[test]
fn new_names_avoid_existing_ones() {
    let svc = http_svc();
    let stored = apply(&[], &desired_slices(&svc, &[pod("a", "10.244.1.2", true)], NONE, NOW, &mut counter()));
    assert_eq!(object::name(&stored[0]), "my-nginx-bbbbb");
    // A pod with another port set needs a new slice; the first name drawn is taken.
    let mut lacking = http_svc();
    lacking["spec"]["ports"] =
        json!([{"name": "web", "port": 80, "targetPort": "http"}, {"name": "m", "port": 9000, "targetPort": "metrics"}]);
    let mut p2 = pod("b", "10.244.1.3", true);
    p2["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 80}, {"name": "metrics", "containerPort": 9000}]);
    let ch = desired_slices(&lacking, &[pod("a", "10.244.1.2", true), p2], &stored, LATER, &mut counter());
    let names: Vec<&str> = ch.create.iter().chain(&ch.update).map(object::name).collect();
    assert_eq!(names.len(), 2, "{ch:?}");
    assert!(names.contains(&"my-nginx-bbbbb") && names.contains(&"my-nginx-ccccc"), "{names:?}");
}

// ---- Mirroring (SVC-18) -----------------------------------------------------------------------

fn selectorless() -> Value {
    let mut s = http_svc();
    s["spec"].as_object_mut().unwrap().remove("selector");
    s
}

fn user_endpoints() -> Value {
    json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "my-nginx", "namespace": "default", "uid": "ep-uid", "labels": {"app": "ext"},
            "annotations": {"note": "hi", ANNOTATION_TRIGGER_TIME: NOW, ANNOTATION_LAST_APPLIED: "{}"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.42"}, {"ip": "not-an-ip"}], "notReadyAddresses": [{"ip": "192.0.2.43", "nodeName": "worker"}],
            "ports": [{"port": 9376}]}]})
}

#[test]
fn mirrors_user_endpoints() {
    let ch = mirrored_slices(Some(&selectorless()), Some(&user_endpoints()), NONE, &mut counter());
    assert_eq!(
        ch.create,
        vec![json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "my-nginx-bbbbb", "generateName": "my-nginx-", "namespace": "default",
                "labels": {"app": "ext", "kubernetes.io/service-name": "my-nginx",
                    "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"},
                "annotations": {"note": "hi"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": "my-nginx", "uid": "ep-uid",
                    "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.42"], "conditions": {"ready": true}},
                {"addresses": ["192.0.2.43"], "conditions": {"ready": false}, "nodeName": "worker"}],
            "ports": [{"name": "", "port": 9376, "protocol": "TCP"}]})]
    );
    let stored = apply(&[], &ch);
    assert!(mirrored_slices(Some(&selectorless()), Some(&user_endpoints()), &stored, &mut counter()).is_empty());
    // An address change is an update of the same slice.
    let mut changed = user_endpoints();
    changed["subsets"][0]["addresses"] = json!([{"ip": "192.0.2.44"}]);
    let ch = mirrored_slices(Some(&selectorless()), Some(&changed), &stored, &mut counter());
    assert!(ch.create.is_empty() && ch.delete.is_empty());
    assert_eq!(ips(&ch.update[0]), ["192.0.2.43", "192.0.2.44"]);
}

#[test]
fn mirroring_groups_by_ports_and_family() {
    let mut ep = user_endpoints();
    ep["subsets"] = json!([
        {"addresses": [{"ip": "192.0.2.1"}], "ports": [{"name": "a", "port": 1}]},
        {"addresses": [{"ip": "192.0.2.2"}], "ports": [{"name": "a", "port": 1}]},
        {"addresses": [{"ip": "2001:db8::1"}], "ports": [{"name": "a", "port": 1}]},
        {"addresses": [{"ip": "192.0.2.3"}], "ports": [{"name": "b", "port": 2, "protocol": "UDP"}]}]);
    let ch = mirrored_slices(Some(&selectorless()), Some(&ep), NONE, &mut counter());
    let mut got: Vec<(String, Vec<&str>)> = ch.create.iter().map(|c| (c["addressType"].as_str().unwrap().to_string(), ips(c))).collect();
    got.sort();
    assert_eq!(
        got,
        [("IPv4".into(), vec!["192.0.2.1", "192.0.2.2"]), ("IPv4".into(), vec!["192.0.2.3"]), ("IPv6".into(), vec!["2001:db8::1"])]
    );
}

#[test]
fn mirrored_slices_go_away() {
    let stored = apply(&[], &mirrored_slices(Some(&selectorless()), Some(&user_endpoints()), NONE, &mut counter()));
    let all_deleted = SliceChanges { delete: vec!["my-nginx-bbbbb".into()], ..Default::default() };
    // Endpoints deleted, Service deleted, Service given a selector, skip-mirror label, no subsets.
    assert_eq!(mirrored_slices(Some(&selectorless()), None, &stored, &mut counter()), all_deleted);
    assert_eq!(mirrored_slices(None, Some(&user_endpoints()), &stored, &mut counter()), all_deleted);
    assert_eq!(mirrored_slices(Some(&http_svc()), Some(&user_endpoints()), &stored, &mut counter()), all_deleted);
    let mut skip = user_endpoints();
    skip["metadata"]["labels"][LABEL_SKIP_MIRROR] = json!("true");
    assert_eq!(mirrored_slices(Some(&selectorless()), Some(&skip), &stored, &mut counter()), all_deleted);
    let mut empty = user_endpoints();
    empty.as_object_mut().unwrap().remove("subsets");
    assert_eq!(mirrored_slices(Some(&selectorless()), Some(&empty), &stored, &mut counter()), all_deleted);
    // The endpoints controller's own slices are never touched by mirroring.
    let controller_slices = apply(&[], &desired_slices(&http_svc(), NONE, NONE, NOW, &mut counter()));
    assert!(mirrored_slices(Some(&selectorless()), None, &controller_slices, &mut counter()).is_empty());
}

#[test]
fn single_mirrored_slice() {
    let (svc, ep) = (selectorless(), user_endpoints());
    let first = mirrored_slice(&svc, &ep, None, &mut counter()).expect("a slice");
    assert_eq!(first, mirrored_slices(Some(&svc), Some(&ep), NONE, &mut counter()).create[0]);
    let stored = apply(&[], &SliceChanges { create: vec![first], ..Default::default() });
    // Unchanged: the stored slice itself comes back (equal, so the caller writes nothing).
    let same = mirrored_slice(&svc, &ep, Some(&stored[0]), &mut counter()).unwrap();
    assert_eq!(same, stored[0]);
    // Changed: the stored slice with new content, ready for an update.
    let mut changed = ep.clone();
    changed["subsets"][0]["ports"] = json!([{"port": 80}]);
    let w = mirrored_slice(&svc, &changed, Some(&stored[0]), &mut counter()).unwrap();
    assert_eq!((object::name(&w), &w["metadata"]["resourceVersion"]), ("my-nginx-bbbbb", &json!("1")));
    assert!(!slices_equal(&w, &stored[0]));
    assert_eq!(w["ports"][0]["port"], 80);
    // Nothing to mirror.
    assert_eq!(mirrored_slice(&http_svc(), &ep, Some(&stored[0]), &mut counter()), None);
}

#[test]
fn selects_by_the_selector_only() {
    let labels =
        |pairs: &[(&str, &str)]| -> BTreeMap<String, String> { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    assert!(selects(&http_svc(), &labels(&[("run", "my-nginx"), ("tier", "web")])));
    assert!(!selects(&http_svc(), &labels(&[("run", "other")])));
    assert!(!selects(&http_svc(), &labels(&[])));
    assert!(!selects(&selectorless(), &labels(&[("run", "my-nginx")])));
    let mut external = http_svc();
    external["spec"]["type"] = json!("ExternalName");
    assert!(!selects(&external, &labels(&[("run", "my-nginx")])));
}
