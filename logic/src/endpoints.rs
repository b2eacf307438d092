//! What the endpoints controllers decide, as pure functions: the legacy v1 `Endpoints` object of a
//! Service (EP-5), its `EndpointSlice`s (EP-2, EP-4) and the slices mirrored from a user's
//! Endpoints for a selectorless Service (SVC-18).
//!
//! The caller lists the Service, the pods of its namespace and the slices that exist, calls these
//! functions, and writes back only what they return: [`desired_slices`] and [`mirrored_slices`]
//! already diff against the existing slices, and [`endpoints_equal`] tells whether the stored
//! Endpoints needs a write. Everything here is deterministic given the same inputs (including the
//! entropy for new slice names), so a steady state produces no writes.
//!
//! Choices where Kubernetes leaves the order to hash maps (documented in EP-5/EP-8):
//! * Endpoints subsets are ordered by the first Service port they carry (spec order), ports inside
//!   a subset in Service-port order; upstream orders both by a hash, so any order is faithful.
//! * Inside an EndpointSlice, endpoints that stay keep their position and new ones are appended
//!   (EP-8: insertion order); a batch of new endpoints is appended sorted by IP (byte-wise), so the
//!   result does not depend on the order of the pod list.

use emu_api::naming;
use emu_api::object;
use emu_api::selector::Selector;
use emu_api::typed::k8s_openapi::api::core::v1::ContainerPort;
use emu_api::typed::{self, IntOrString, Pod, Service, ServicePort};
use serde_json::{json, Map, Value};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY_CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const MANAGED_BY_MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";
/// Set to `"true"` on an Endpoints object that must not be mirrored (the apiserver's own
/// `default/kubernetes` Endpoints carries it).
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
const ANNOTATION_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// EP-4: the endpointslice controller's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// EP-5: a legacy Endpoints object holds at most this many addresses.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;
/// The mirroring controller's `--mirroring-max-endpoints-per-subset` default: both the cap per
/// mirrored subset and the size of a mirrored slice.
pub const MAX_MIRRORED_PER_SUBSET: usize = 1000;

/// Writes that bring a Service's EndpointSlices to the desired state. `update` entries are the
/// stored objects (same name, uid, resourceVersion) with new content; `delete` holds names.
///
/// What these functions read is typed (the Service, the pods); what they write stays JSON. A
/// slice without endpoints or ports carries `endpoints: null` / `ports: null`, as a real API
/// server returns it (`kubectl get endpointslice -o yaml` shows them), and k8s-openapi's encoding
/// of an `EndpointSlice` drops `None` fields, so a typed slice could not say that. The v1
/// Endpoints and the mirrored slices are compared with and written over the stored JSON
/// ([`endpoints_for_update`], [`slices_equal`], which keep the stored metadata as it is), so they
/// are built in the same JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SliceChanges {
    pub create: Vec<Value>,
    pub update: Vec<Value>,
    pub delete: Vec<String>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The pod's `Ready` condition is `"True"`.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod has a deletion timestamp (it is being deleted).
pub fn pod_is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The Service's selector, or None when it has none (an empty `selector: {}` counts as none:
/// the API server stores it as nil) or is an ExternalName Service. Such Services get no
/// controller-made Endpoints or slices.
fn service_selector(svc: &Service) -> Option<Selector> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|sel| !sel.is_empty()).map(Selector::from_map)
}

/// Whether the Service's selector picks a pod with these labels: the pods whose labels change
/// tell the controller which Services to look at again. False for Services without a selector.
pub fn selects(svc: &Service, pod_labels: &BTreeMap<String, String>) -> bool {
    service_selector(svc).is_some_and(|sel| sel.matches(pod_labels))
}

fn cluster_ip(svc: &Service) -> &str {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or("")
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true)
}

fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default()
}

fn protocol(port: &Value) -> &str {
    port["protocol"].as_str().filter(|p| !p.is_empty()).unwrap_or("TCP")
}

fn container_port_protocol(port: &ContainerPort) -> &str {
    port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP")
}

fn port_protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP")
}

fn svc_name(svc: &Service) -> &str {
    typed::key(&svc.metadata).1
}

fn svc_namespace(svc: &Service) -> &str {
    typed::key(&svc.metadata).0
}

fn svc_uid(svc: &Service) -> &str {
    svc.metadata.uid.as_deref().unwrap_or_default()
}

/// EP-1 (and upstream's `ShouldPodBeInEndpoints`): the pods that are endpoints of the Service,
/// with their IP. Terminating pods are included only when `include_terminating` (always for
/// slices, only with publishNotReadyAddresses for Endpoints). emu's pod network is IPv4-only, so
/// a pod whose IP is not IPv4 is skipped (an IPv4 slice could not hold it).
fn selected_pods<'a, P: Borrow<Pod>>(
    svc: &Service,
    selector: &Selector,
    pods: &'a [P],
    include_terminating: bool,
) -> Vec<(&'a Pod, String)> {
    let ns = svc_namespace(svc);
    pods.iter()
        .map(Borrow::borrow)
        .filter(|p| typed::key(&p.metadata).0 == ns && selector.matches(typed::labels(&p.metadata)))
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .filter(|p| include_terminating || !pod_is_terminating(p))
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_deref()?;
            ip.parse::<std::net::Ipv4Addr>().ok()?;
            Some((p, ip.to_string()))
        })
        .collect()
}

/// SVC-12 (upstream `FindPort`): the pod's port number for one Service port. A numeric
/// targetPort (or none, or 0) is used as is (defaulting to `port`); a named one resolves to the
/// first container port with that name and the Service port's protocol, regular containers first,
/// then restartable (sidecar) init containers. None when the pod has no such port.
pub fn resolve_target_port(pod: &Pod, svc_port: &ServicePort) -> Option<u16> {
    let positive = |n: i32| u16::try_from(n).ok().filter(|n| *n > 0);
    match &svc_port.target_port {
        Some(IntOrString::String(name)) if !name.is_empty() => {
            let proto = port_protocol(svc_port);
            let spec = pod.spec.as_ref()?;
            let regular = spec.containers.iter();
            let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            regular
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && container_port_protocol(p) == proto)
                .and_then(|p| positive(p.container_port))
        }
        Some(IntOrString::Int(n)) => positive(*n).or_else(|| positive(svc_port.port)),
        _ => positive(svc_port.port),
    }
}

/// EP-5: the Endpoints port of a Service port resolved to `number` (`name` omitted when empty).
fn endpoints_port(svc_port: &ServicePort, number: u16) -> Value {
    let mut p = json!({"port": number, "protocol": port_protocol(svc_port)});
    if let Some(name) = svc_port.name.as_deref().filter(|n| !n.is_empty()) {
        p["name"] = json!(name);
    }
    if let Some(app) = &svc_port.app_protocol {
        p["appProtocol"] = json!(app);
    }
    p
}

/// DNS-3: the endpoint carries the pod's hostname when the pod sets `spec.hostname` and its
/// `spec.subdomain` names this Service (same namespace, which selection already ensures).
fn endpoint_hostname<'a>(svc: &Service, pod: &'a Pod) -> Option<&'a str> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc_name(svc)) && typed::key(&pod.metadata).0 == svc_namespace(svc)).then_some(hostname)
}

fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn pod_ref(pod: &Pod) -> Value {
    let (namespace, name) = typed::key(&pod.metadata);
    json!({"kind": "Pod", "name": name, "namespace": namespace, "uid": pod_uid(pod)})
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())
}

// ---- Legacy Endpoints (EP-5) --------------------------------------------------------------------

/// One address of one Endpoints port, keyed for sorting like upstream (`LessEndpointAddress`:
/// byte-wise IP, then target uid).
type AddressKey = (String, String);

/// One resolved Endpoints port and the addresses (with readiness) that serve it.
struct PortAddresses {
    /// None: the no-port sentinel of a headless Service without ports.
    port: Option<Value>,
    /// (Service port index, number): orders ports and subsets independently of the pod order.
    order: (usize, u16),
    addresses: BTreeMap<AddressKey, (Value, bool)>,
}

/// The v1 `Endpoints` object the endpoints controller wants for `svc` (EP-5), or None when the
/// Service has no selector or is ExternalName (then a user's Endpoints, if any, is left alone).
/// `now` (RFC 3339) becomes the `last-change-trigger-time` annotation. Compare with the stored
/// object through [`endpoints_equal`] and write with [`endpoints_for_update`].
pub fn desired_endpoints<P: Borrow<Pod>>(svc: &Service, pods: &[P], now: &str) -> Option<Value> {
    let selector = service_selector(svc)?;
    let publish = publish_not_ready(svc);
    let ports = service_ports(svc);
    let headless = matches!(cluster_ip(svc), "" | "None");

    // Each distinct resolved port maps to the addresses serving it, as upstream's RepackSubsets.
    let mut by_port: BTreeMap<String, PortAddresses> = BTreeMap::new();
    for (pod, ip) in selected_pods(svc, &selector, pods, publish) {
        let mut addr = json!({"ip": ip, "targetRef": pod_ref(pod)});
        if let Some(node) = node_name(pod) {
            addr["nodeName"] = json!(node);
        }
        if let Some(h) = endpoint_hostname(svc, pod) {
            addr["hostname"] = json!(h);
        }
        let ready = publish || pod_is_ready(pod);
        let key: AddressKey = (ip.clone(), pod_uid(pod).to_string());
        let mut add = |port: Option<Value>, order: (usize, u16)| {
            let k = port.as_ref().map_or_else(String::new, Value::to_string);
            let entry = by_port.entry(k).or_insert_with(|| PortAddresses { port, order, addresses: BTreeMap::new() });
            entry.order = entry.order.min(order);
            entry.addresses.insert(key.clone(), (addr.clone(), ready));
        };
        if ports.is_empty() {
            // Only a headless Service may have no ports; its pods are listed without ports.
            if headless {
                add(None, (usize::MAX, 0));
            }
        } else {
            for (i, sp) in ports.iter().enumerate() {
                if let Some(n) = resolve_target_port(pod, sp) {
                    add(Some(endpoints_port(sp, n)), (i, n));
                }
            }
        }
    }

    // Ports with identical address sets (readiness included) share one subset.
    let mut groups: BTreeMap<String, Vec<&PortAddresses>> = BTreeMap::new();
    for entry in by_port.values() {
        let signature: Vec<String> = entry.addresses.iter().map(|((ip, uid), (_, ready))| format!("{ip}/{uid}/{ready}")).collect();
        groups.entry(signature.join(",")).or_default().push(entry);
    }
    let mut subsets: Vec<((usize, u16), Value)> = groups
        .into_values()
        .map(|mut entries| {
            entries.sort_by_key(|e| e.order);
            let order = entries[0].order;
            let ports: Vec<Value> = entries.iter().filter_map(|e| e.port.clone()).collect();
            // The BTreeMap is already in (IP bytes, uid) order.
            let addrs = &entries[0].addresses;
            let pick = |want: bool| -> Vec<Value> { addrs.values().filter(|(_, r)| *r == want).map(|(a, _)| a.clone()).collect() };
            let mut subset = Map::new();
            for (key, list) in [("addresses", pick(true)), ("notReadyAddresses", pick(false)), ("ports", ports)] {
                if !list.is_empty() {
                    subset.insert(key.into(), Value::Array(list));
                }
            }
            (order, Value::Object(subset))
        })
        .collect();
    subsets.sort_by_key(|(order, _)| *order);
    let mut subsets: Vec<Value> = subsets.into_iter().map(|(_, s)| s).collect();
    let truncated = truncate_endpoints(&mut subsets);

    let mut labels = typed::labels(&svc.metadata).clone();
    if headless {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    let mut annotations = Map::new();
    annotations.insert(ANNOTATION_TRIGGER_TIME.into(), json!(now));
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.into(), json!("truncated"));
    }
    let mut metadata = json!({"name": svc_name(svc), "namespace": svc_namespace(svc), "annotations": annotations});
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }
    let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata});
    if !subsets.is_empty() {
        ep["subsets"] = Value::Array(subsets);
    }
    Some(ep)
}

/// EP-5's cap (upstream `truncateEndpoints`): above 1000 addresses, keep a share of each subset
/// proportional to its size (rounded up, the last subsets get what is left), ready addresses
/// first: not-ready ones are cut before any ready one. Returns whether anything was cut.
fn truncate_endpoints(subsets: &mut [Value]) -> bool {
    let count = |s: &Value, key: &str| s[key].as_array().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if ready + not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    let truncate_ready = ready > MAX_ENDPOINTS_ADDRESSES;
    let (max, total) = if truncate_ready { (MAX_ENDPOINTS_ADDRESSES, ready) } else { (MAX_ENDPOINTS_ADDRESSES - ready, not_ready) };
    let mut left = max;
    for s in subsets.iter_mut() {
        let key = if truncate_ready { "addresses" } else { "notReadyAddresses" };
        let n = count(s, key);
        let share = (n * max).div_ceil(total).min(left);
        let obj = s.as_object_mut().expect("subsets are objects");
        if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
            list.truncate(share);
            left -= list.len();
        }
        if truncate_ready {
            obj.remove("notReadyAddresses");
        }
        if obj.get(key).and_then(Value::as_array).is_some_and(Vec::is_empty) {
            obj.remove(key);
        }
    }
    true
}

/// A list field where absent, null and `[]` all mean "empty" (Go's omitempty, protobuf nil).
fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn normalized_subsets(ep: &Value) -> Vec<Value> {
    list(&ep["subsets"])
        .iter()
        .map(
            |s| json!({"addresses": list(&s["addresses"]), "notReadyAddresses": list(&s["notReadyAddresses"]), "ports": list(&s["ports"])}),
        )
        .collect()
}

/// Whether two Endpoints objects say the same thing: subsets, labels and the over-capacity
/// annotation (what upstream compares). Names, uid, resourceVersion, timestamps and the
/// trigger-time annotation are ignored, so the stored object can be compared with
/// [`desired_endpoints`] to skip no-op writes.
pub fn endpoints_equal(a: &Value, b: &Value) -> bool {
    normalized_subsets(a) == normalized_subsets(b)
        && object::labels(a) == object::labels(b)
        && object::annotation(a, ANNOTATION_OVER_CAPACITY) == object::annotation(b, ANNOTATION_OVER_CAPACITY)
}

/// The object to write when `existing` (the stored Endpoints) differs from `desired`: the stored
/// metadata (uid, resourceVersion, creationTimestamp, other annotations) with the desired labels,
/// subsets and controller annotations.
pub fn endpoints_for_update(existing: &Value, desired: &Value) -> Value {
    let mut out = existing.clone();
    let meta = object::metadata_mut(&mut out);
    match desired["metadata"].get("labels") {
        Some(l) => meta.insert("labels".into(), l.clone()),
        None => meta.remove("labels"),
    };
    for key in [ANNOTATION_TRIGGER_TIME, ANNOTATION_OVER_CAPACITY] {
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        match (object::annotation(desired, key), ann.as_object_mut()) {
            (Some(v), Some(m)) => {
                m.insert(key.into(), json!(v));
            }
            (None, Some(m)) => {
                m.remove(key);
            }
            (_, None) => {}
        }
    }
    let obj = out.as_object_mut().expect("metadata_mut made an object");
    match desired.get("subsets") {
        Some(s) => obj.insert("subsets".into(), s.clone()),
        None => obj.remove("subsets"),
    };
    out
}

// ---- EndpointSlices (EP-2, EP-4) ---------------------------------------------------------------

/// EP-4 ports of one pod: every Service port the pod can serve, in spec order (`name` is `""`
/// for an unnamed port). A pod lacking a named port gets fewer ports and so lands in another
/// slice (SVC-12).
fn slice_ports(svc: &Service, pod: &Pod) -> Vec<Value> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| {
            let n = resolve_target_port(pod, sp)?;
            let mut p = json!({"name": sp.name.as_deref().unwrap_or(""), "port": n, "protocol": port_protocol(sp)});
            if let Some(app) = &sp.app_protocol {
                p["appProtocol"] = json!(app);
            }
            Some(p)
        })
        .collect()
}

/// EP-2/EP-4: one pod as a slice endpoint. `ready` is forced true by publishNotReadyAddresses
/// (SVC-19); otherwise a terminating pod is never ready, though it may still be serving.
fn pod_endpoint(svc: &Service, pod: &Pod, ip: &str) -> Value {
    let serving = pod_is_ready(pod);
    let terminating = pod_is_terminating(pod);
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let mut ep = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": pod_ref(pod),
    });
    if let Some(node) = node_name(pod) {
        ep["nodeName"] = json!(node);
    }
    if let Some(h) = endpoint_hostname(svc, pod) {
        ep["hostname"] = json!(h);
    }
    ep
}

/// The EndpointSlices the endpointslice controller wants for `svc`, as writes against
/// `existing` (the slices labelled `kubernetes.io/service-name: <svc>` and managed by
/// `endpointslice-controller.k8s.io`; others passed in are ignored).
///
/// One slice per distinct resolved port set, at most 100 endpoints each; a placeholder slice
/// (no endpoints, no ports) when nothing matches (EP-1); no slices (existing ones deleted) for a
/// selectorless or ExternalName Service. Existing slices are reused: endpoints that stay keep
/// their slice and position, new ones fill slices with room before new slices are made, and a
/// slice that would be deleted while another is created is rewritten in place instead (as
/// upstream does), so a steady state yields no writes and churn rarely creates names.
/// `entropy` supplies the random suffix of new slice names.
pub fn desired_slices<P: Borrow<Pod>, S: Borrow<Value>>(
    svc: &Service,
    pods: &[P],
    existing: &[S],
    now: &str,
    entropy: &mut dyn FnMut() -> [u8; 5],
) -> SliceChanges {
    let svc_name = self::svc_name(svc);
    let existing: Vec<&Value> = existing
        .iter()
        .map(Borrow::borrow)
        .filter(|s| object::str_at(s, &["metadata", "labels", LABEL_MANAGED_BY]) == Some(MANAGED_BY_CONTROLLER))
        .filter(|s| object::str_at(s, &["metadata", "labels", LABEL_SERVICE_NAME]) == Some(svc_name))
        .collect();
    let Some(selector) = service_selector(svc) else {
        return SliceChanges { delete: existing.iter().map(|s| object::name(s).to_string()).collect(), ..Default::default() };
    };

    let mut groups = Groups::default();
    for (pod, ip) in selected_pods(svc, &selector, pods, true) {
        groups.add("IPv4", slice_ports(svc, pod), pod_endpoint(svc, pod, &ip));
    }

    let mut labels: BTreeMap<String, String> = typed::labels(&svc.metadata).clone();
    labels.retain(|k, _| k != LABEL_SERVICE_NAME && k != LABEL_MANAGED_BY);
    if cluster_ip(svc) == "None" {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc_name.into());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY_CONTROLLER.into());
    let owner = json!({"apiVersion": "v1", "kind": "Service", "name": svc_name, "uid": svc_uid(svc),
        "controller": true, "blockOwnerDeletion": true});
    let template = SliceTemplate {
        namespace: svc_namespace(svc).into(),
        generate_name: format!("{svc_name}-"),
        labels,
        annotations: BTreeMap::from([(ANNOTATION_TRIGGER_TIME.to_string(), now.to_string())]),
        owner,
        owner_uid: svc_uid(svc).into(),
        max_per_slice: MAX_ENDPOINTS_PER_SLICE,
        placeholder: true,
    };
    reconcile(&template, groups, &existing, entropy)
}

/// The EndpointSlices the mirroring controller wants (SVC-18) for a selectorless Service with a
/// user-made Endpoints object of the same name, as writes against `existing` (the slices
/// labelled `kubernetes.io/service-name: <svc>` and managed by
/// `endpointslicemirroring-controller.k8s.io`; others passed in are ignored).
///
/// Every existing mirrored slice is deleted when the Service or the Endpoints is gone (None), the
/// Service has a selector (the endpoints controller owns that Endpoints) or the Endpoints is
/// labelled `endpointslice.kubernetes.io/skip-mirror: "true"`. Otherwise each subset becomes
/// endpoints of a slice per (address type, port set): `ready` true for `addresses`, false for
/// `notReadyAddresses`; addresses that are not IP addresses are skipped; at most 1000 per subset.
/// The slice copies the Endpoints' labels and annotations (not the trigger time or kubectl's
/// last-applied configuration), and is owned by the Endpoints object, as upstream does.
pub fn mirrored_slices<S: Borrow<Value>>(
    svc: Option<&Service>,
    endpoints: Option<&Value>,
    existing: &[S],
    entropy: &mut dyn FnMut() -> [u8; 5],
) -> SliceChanges {
    let svc_name = svc.map(svc_name).or(endpoints.map(object::name)).unwrap_or("");
    let existing: Vec<&Value> = existing
        .iter()
        .map(Borrow::borrow)
        .filter(|s| object::str_at(s, &["metadata", "labels", LABEL_MANAGED_BY]) == Some(MANAGED_BY_MIRRORING))
        .filter(|s| object::str_at(s, &["metadata", "labels", LABEL_SERVICE_NAME]) == Some(svc_name))
        .collect();
    let mirror = match (svc, endpoints) {
        (Some(svc), Some(ep)) => {
            let has_selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|m| !m.is_empty());
            (!has_selector && object::str_at(ep, &["metadata", "labels", LABEL_SKIP_MIRROR]) != Some("true")).then_some(ep)
        }
        _ => None,
    };
    let Some(ep) = mirror else {
        return SliceChanges { delete: existing.iter().map(|s| object::name(s).to_string()).collect(), ..Default::default() };
    };

    let mut groups = Groups::default();
    for subset in list(&ep["subsets"]) {
        let ports: Vec<Value> = list(&subset["ports"])
            .iter()
            .map(|p| {
                let mut out = json!({"name": p["name"].as_str().unwrap_or(""), "port": p["port"], "protocol": protocol(p)});
                if let Some(app) = p.get("appProtocol").filter(|a| a.is_string()) {
                    out["appProtocol"] = app.clone();
                }
                out
            })
            .collect();
        let addresses = list(&subset["addresses"]).into_iter().map(|a| (a, true));
        let not_ready = list(&subset["notReadyAddresses"]).into_iter().map(|a| (a, false));
        for (addr, ready) in addresses.chain(not_ready).take(MAX_MIRRORED_PER_SUBSET) {
            let Some(ip) = addr["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) else { continue };
            let mut endpoint = json!({"addresses": [ip.to_string()], "conditions": {"ready": ready}});
            for key in ["nodeName", "hostname", "targetRef"] {
                if let Some(v) = addr.get(key).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                    endpoint[key] = v.clone();
                }
            }
            groups.add(if ip.is_ipv4() { "IPv4" } else { "IPv6" }, ports.clone(), endpoint);
        }
    }

    let mut labels = object::labels(ep);
    labels.insert(LABEL_SERVICE_NAME.into(), object::name(ep).into());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY_MIRRORING.into());
    let mut annotations = object::string_map(object::at(ep, &["metadata", "annotations"]));
    annotations.remove(ANNOTATION_TRIGGER_TIME);
    annotations.remove(ANNOTATION_LAST_APPLIED);
    let owner = json!({"apiVersion": "v1", "kind": "Endpoints", "name": object::name(ep), "uid": object::uid(ep),
        "controller": true, "blockOwnerDeletion": true});
    let template = SliceTemplate {
        namespace: object::namespace(ep).into(),
        generate_name: format!("{}-", object::name(ep)),
        labels,
        annotations,
        owner,
        owner_uid: object::uid(ep).into(),
        max_per_slice: MAX_MIRRORED_PER_SUBSET,
        placeholder: false,
    };
    reconcile(&template, groups, &existing, entropy)
}

/// The one mirrored slice of the common case (an Endpoints whose subsets share one port set and
/// address family): the desired slice, based on `existing` when given (same name, uid and
/// resourceVersion, so it can be written as an update once [`slices_equal`] says it changed), or
/// None when nothing should be mirrored (the Service has a selector, skip-mirror, no subsets).
///
/// An Endpoints with several port sets or address families needs several slices; this returns
/// only the one that reuses `existing` (or the first), so use [`mirrored_slices`] for those.
pub fn mirrored_slice(svc: &Service, endpoints: &Value, existing: Option<&Value>, entropy: &mut dyn FnMut() -> [u8; 5]) -> Option<Value> {
    let existing: Vec<Value> = existing.cloned().into_iter().collect();
    let changes = mirrored_slices(Some(svc), Some(endpoints), &existing, entropy);
    let kept = existing.into_iter().find(|e| !changes.delete.iter().any(|d| d == object::name(e)));
    // An existing slice is either rewritten (update), kept as is, or deleted.
    changes.update.into_iter().next().or(kept).or_else(|| changes.create.into_iter().next())
}

/// The parts of a slice that matter, with absent/null/empty lists made equal.
fn slice_content(s: &Value) -> Value {
    let mut annotations = object::string_map(object::at(s, &["metadata", "annotations"]));
    annotations.remove(ANNOTATION_TRIGGER_TIME);
    json!({
        "addressType": s["addressType"],
        "endpoints": list(&s["endpoints"]),
        "ports": list(&s["ports"]),
        "labels": object::labels(s),
        "annotations": annotations,
        "ownerReferences": list(&s["metadata"]["ownerReferences"]),
    })
}

/// Whether two EndpointSlices say the same thing: address type, endpoints (in order), ports,
/// labels, owner references and annotations other than the trigger time. Name, uid,
/// resourceVersion and timestamps are ignored.
pub fn slices_equal(a: &Value, b: &Value) -> bool {
    slice_content(a) == slice_content(b)
}

/// What every slice of one owner carries besides its endpoints and ports.
struct SliceTemplate {
    namespace: String,
    generate_name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: Value,
    owner_uid: String,
    max_per_slice: usize,
    /// Keep one empty slice when there are no endpoints at all (EP-1).
    placeholder: bool,
}

/// Desired endpoints grouped by slice key (address type + port set).
#[derive(Default)]
struct Groups(BTreeMap<String, Group>);

struct Group {
    address_type: String,
    ports: Vec<Value>,
    /// Endpoints not yet placed in a slice, by identity.
    pending: HashMap<String, Value>,
}

/// Slices sharing this key can hold each other's endpoints. Port order does not matter.
fn slice_key(address_type: &str, ports: &[Value]) -> String {
    let mut ports: Vec<String> = ports.iter().map(Value::to_string).collect();
    ports.sort();
    format!("{address_type}|{}", ports.join(","))
}

/// An endpoint is "the same" across syncs when its address and target are: its conditions and
/// other fields may change in place.
fn endpoint_id(ep: &Value) -> String {
    format!("{}/{}", ep["addresses"][0].as_str().unwrap_or(""), ep["targetRef"]["uid"].as_str().unwrap_or(""))
}

/// New endpoints are appended in (IP bytes, identity) order.
fn endpoint_sort_key(ep: &Value) -> (String, String) {
    (ep["addresses"][0].as_str().unwrap_or("").to_string(), endpoint_id(ep))
}

impl Groups {
    fn add(&mut self, address_type: &str, ports: Vec<Value>, endpoint: Value) {
        let key = slice_key(address_type, &ports);
        let group = self.0.entry(key).or_insert_with(|| Group { address_type: address_type.into(), ports, pending: HashMap::new() });
        // A duplicate (same IP and target twice) keeps its first occurrence.
        group.pending.entry(endpoint_id(&endpoint)).or_insert(endpoint);
    }
}

/// One slice being planned: based on a stored slice (update) or new (create).
struct Planned<'a> {
    base: Option<&'a Value>,
    key: String,
    address_type: String,
    ports: Vec<Value>,
    endpoints: Vec<Value>,
}

fn reconcile(template: &SliceTemplate, mut groups: Groups, existing: &[&Value], entropy: &mut dyn FnMut() -> [u8; 5]) -> SliceChanges {
    let total: usize = groups.0.values().map(|g| g.pending.len()).sum();
    let placeholder_key = slice_key("IPv4", &[]);
    let want_placeholder = template.placeholder && total == 0;
    if want_placeholder {
        groups.0.insert(placeholder_key.clone(), Group { address_type: "IPv4".into(), ports: vec![], pending: HashMap::new() });
    }

    let mut sorted: Vec<&Value> = existing.to_vec();
    sorted.sort_by(|a, b| object::name(a).cmp(object::name(b)));
    let mut changes = SliceChanges::default();
    let mut kept: Vec<Planned> = Vec::new();
    // Stored slices we own but no longer need: rewritten instead of creating new ones, or deleted.
    let mut spare: Vec<&Value> = Vec::new();
    for s in sorted {
        if object::controller_uid(s) != Some(template.owner_uid.as_str()) {
            // Left over from an earlier object of the same name: never reused.
            changes.delete.push(object::name(s).to_string());
            continue;
        }
        let address_type = s["addressType"].as_str().unwrap_or("");
        let key = slice_key(address_type, &list(&s["ports"]));
        let Some(group) = groups.0.get_mut(&key) else {
            spare.push(s);
            continue;
        };
        let endpoints: Vec<Value> = list(&s["endpoints"]).iter().filter_map(|ep| group.pending.remove(&endpoint_id(ep))).collect();
        let is_placeholder = want_placeholder && key == placeholder_key && !kept.iter().any(|k| k.key == placeholder_key);
        if endpoints.is_empty() && !is_placeholder {
            spare.push(s);
            continue;
        }
        kept.push(Planned { base: Some(s), key, address_type: group.address_type.clone(), ports: group.ports.clone(), endpoints });
    }

    let mut created: Vec<Planned> = Vec::new();
    for (key, group) in groups.0 {
        let mut rest: Vec<Value> = group.pending.into_values().collect();
        rest.sort_by_key(endpoint_sort_key);
        let mut rest = rest.into_iter().peekable();
        // Slices that are rewritten anyway take new endpoints first; untouched ones only if needed.
        let mut fill: Vec<&mut Planned> = kept.iter_mut().filter(|p| p.key == key).collect();
        fill.sort_by_key(|p| p.base.is_some_and(|b| list(&b["endpoints"]) == p.endpoints));
        for p in fill {
            while p.endpoints.len() < template.max_per_slice {
                match rest.next() {
                    Some(ep) => p.endpoints.push(ep),
                    None => break,
                }
            }
        }
        let new_slice = |endpoints: Vec<Value>| Planned {
            base: None,
            key: key.clone(),
            address_type: group.address_type.clone(),
            ports: group.ports.clone(),
            endpoints,
        };
        if want_placeholder && key == placeholder_key && !kept.iter().any(|p| p.key == key) {
            created.push(new_slice(vec![]));
        }
        while rest.peek().is_some() {
            created.push(new_slice(rest.by_ref().take(template.max_per_slice).collect()));
        }
    }

    // Upstream's recycling: a slice about to be deleted takes the content of one about to be
    // created, so its name lives on and one write replaces two.
    let mut spare = spare.into_iter();
    for p in created.iter_mut() {
        match spare.next() {
            Some(s) => p.base = Some(s),
            None => break,
        }
    }
    changes.delete.extend(spare.map(|s| object::name(s).to_string()));

    let mut taken: HashSet<String> = existing.iter().map(|s| object::name(s).to_string()).collect();
    for p in kept.into_iter().chain(created) {
        let rendered = render(template, &p, &mut taken, entropy);
        match p.base {
            Some(base) if slices_equal(base, &rendered) => {}
            Some(_) => changes.update.push(rendered),
            None => changes.create.push(rendered),
        }
    }
    changes
}

/// The slice object for a plan: the stored object with new content, or a new object named
/// `<generateName><5 random chars>` (a name not in `taken`).
fn render(template: &SliceTemplate, p: &Planned, taken: &mut HashSet<String>, entropy: &mut dyn FnMut() -> [u8; 5]) -> Value {
    let mut obj = match p.base {
        Some(base) => base.clone(),
        None => {
            let mut name = naming::generate_name(&template.generate_name, entropy());
            // Collisions are rare (27^5 names); a bad entropy source must not loop forever, and
            // the store rejects a duplicate anyway (the next sync picks another name).
            for _ in 0..64 {
                if !taken.contains(&name) {
                    break;
                }
                name = naming::generate_name(&template.generate_name, entropy());
            }
            taken.insert(name.clone());
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "generateName": template.generate_name, "namespace": template.namespace}})
        }
    };
    let meta = object::metadata_mut(&mut obj);
    meta.insert("labels".into(), json!(template.labels));
    if template.annotations.is_empty() {
        meta.remove("annotations");
    } else {
        meta.insert("annotations".into(), json!(template.annotations));
    }
    meta.insert("ownerReferences".into(), json!([template.owner]));
    // Empty lists are `null`, as a real API server returns them (protobuf keeps no empty lists).
    let or_null = |v: &Vec<Value>| if v.is_empty() { Value::Null } else { Value::Array(v.clone()) };
    obj["addressType"] = json!(p.address_type);
    obj["endpoints"] = or_null(&p.endpoints);
    obj["ports"] = or_null(&p.ports);
    obj
}

#[cfg(test)]
mod tests;
