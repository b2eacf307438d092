//! The Gateway API's status, as a Gateway controller reports it: a pure function of the
//! GatewayClasses, Gateways, HTTPRoutes, Services, Secrets and Namespaces (issue 21, item 3).
//!
//! emu's controller name is [`CONTROLLER_NAME`]: a GatewayClass naming it is accepted, and its
//! Gateways and the HTTPRoutes attached to them get the conditions the Gateway API defines
//! (Accepted, Programmed, ResolvedRefs, per listener and per route parent) with its reasons.
//! Objects of other controllers are left alone, as each controller owns its own entries.
//!
//! Each accepted Gateway of emu's gets its own data path, as Istio and cloud-provider-kind
//! provision one proxy per Gateway: a Deployment running ingress-nginx's controller image (emu's
//! emu-ingress, which serves that one Gateway's listeners and HTTPRoutes with nginx) and a
//! LoadBalancer Service in front of it, both named `<gateway>-<gatewayClassName>` (Istio's naming)
//! and owned by the Gateway ([`data_path_objects`], kept in shape by [`reconcile`]). The Gateway
//! is Programmed once that Service has a balancer address (its `status.addresses`) and the
//! Deployment a ready replica ([`DataPath`]).

use emu_api::gateway::GatewayAddress;
use emu_api::gateway::{
    Condition, Gateway, GatewayClass, GatewayClassStatus, GatewayStatus, HTTPRoute, Listener, ListenerStatus, ParentReference,
    RouteGroupKind, RouteParentStatus, RouteStatus, GROUP,
};
use emu_api::selector::Selector;
use emu_api::syntax;
use emu_api::typed::{key, Deployment, Namespace, ObjectMeta, Service};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The controller name a GatewayClass gives to have emu serve its Gateways. emu's own name, not
/// ingress-nginx's (`k8s.io/ingress-nginx` serves Ingresses only; its Gateway successor is another
/// project): the status it writes is emu's doing, and a class of another implementation (a real
/// controller installed in the cluster) stays that controller's.
pub const CONTROLLER_NAME: &str = "emu.dev/gateway-controller";

/// The standard label naming the Gateway a provisioned object serves (GEP-1762): on the
/// Deployment, its pods (the Service's selector) and the Service.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// Marks the objects emu's controller provisioned (as Istio's `gateway.istio.io/managed`), so that
/// it removes those no Gateway wants any more and never those of another Gateway controller,
/// which owns its own objects by the same ownerReference.
pub const MANAGED_LABEL: &str = "gateway.emu.dev/managed";
const MANAGED_VALUE: &str = "emu.dev-gateway-controller";

/// The port where the data path's nginx answers its readiness probe (ingress-nginx's health
/// port, as the ingress add-on's pod is probed).
const HEALTH_PORT: i32 = 10254;

/// What the controller found of a Gateway's data path (see [`DataPath::of`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataPath {
    /// The balancer addresses of the provisioned Service (`status.loadBalancer.ingress`).
    pub addresses: Vec<String>,
    /// Whether the provisioned Deployment has a ready replica.
    pub ready: bool,
    /// Same-named objects the Gateway does not own (`Deployment default/web-emu`): left alone.
    pub taken: Vec<String>,
}

impl DataPath {
    /// The data path of the Gateway with uid `owner`, from the stored Deployment and Service of
    /// its data path's name; only what the Gateway owns counts.
    pub fn of(owner: &str, deployment: Option<&Deployment>, service: Option<&Service>) -> DataPath {
        let mut path = DataPath::default();
        let mut check = |kind: &str, meta: &ObjectMeta| {
            let owned = meta.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == owner);
            if !owned {
                let (ns, name) = key(meta);
                path.taken.push(format!("{kind} {ns}/{name}"));
            }
            owned
        };
        if let Some(d) = deployment.filter(|d| check("Deployment", &d.metadata)) {
            path.ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) > 0;
        }
        if let Some(s) = service.filter(|s| check("Service", &s.metadata)) {
            let ingress = s.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
            path.addresses = ingress.into_iter().flatten().filter_map(|i| i.ip.clone()).collect();
        }
        path
    }
}

/// What the statuses are computed from. `services` and `secrets` are `namespace/name` keys;
/// `data_paths` is keyed by the Gateway's `(namespace, name)` (a Gateway without an entry has
/// no data path yet).
pub struct Inputs<'a> {
    pub classes: &'a [GatewayClass],
    pub gateways: &'a [Gateway],
    pub routes: &'a [HTTPRoute],
    pub namespaces: &'a [Namespace],
    pub services: &'a BTreeSet<String>,
    pub secrets: &'a BTreeSet<String>,
    pub data_paths: &'a BTreeMap<(String, String), DataPath>,
    /// Unix seconds, the lastTransitionTime of a condition whose status changes.
    pub now: i64,
}

/// The statuses emu's controller owns, keyed by `(namespace, name)` ("" for a GatewayClass):
/// only those of emu's classes, their Gateways and the routes attached to them; and the data
/// path (Deployment and Service) each accepted Gateway of emu's should have, by the Gateway's key.
#[derive(Debug, Default, PartialEq)]
pub struct Statuses {
    pub classes: BTreeMap<String, GatewayClassStatus>,
    pub gateways: BTreeMap<(String, String), GatewayStatus>,
    pub routes: BTreeMap<(String, String), RouteStatus>,
    pub data_paths: BTreeMap<(String, String), [Value; 2]>,
}

/// A condition, keeping the old lastTransitionTime when its status has not changed (as
/// `meta.SetStatusCondition` does).
fn condition(old: &[Condition], type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: i64) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| emu_api::time::rfc3339(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        observed_generation: generation,
        last_transition_time: since,
        reason: reason.into(),
        message: message.into(),
    }
}

pub fn statuses(inputs: &Inputs) -> Statuses {
    let mut out = Statuses::default();
    let ours: BTreeSet<&str> = inputs
        .classes
        .iter()
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
        .map(|c| c.metadata.name.as_deref().unwrap_or_default())
        .collect();
    for class in inputs.classes.iter().filter(|c| c.spec.controller_name == CONTROLLER_NAME) {
        let old = class.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        let accepted = condition(old, "Accepted", true, "Accepted", "Accepted by emu", class.metadata.generation, inputs.now);
        out.classes.insert(key(&class.metadata).1.into(), GatewayClassStatus { conditions: Some(vec![accepted]) });
    }
    let labels: BTreeMap<&str, BTreeMap<String, String>> =
        inputs.namespaces.iter().map(|n| (key(&n.metadata).1, n.metadata.labels.clone().unwrap_or_default())).collect();
    let gateways: Vec<&Gateway> = inputs.gateways.iter().filter(|g| ours.contains(g.spec.gateway_class_name.as_str())).collect();
    // Routes first: a listener's attachedRoutes counts the routes it accepted.
    let mut attached: BTreeMap<(String, String, String), i32> = BTreeMap::new();
    for route in inputs.routes {
        let (ns, name) = key(&route.metadata);
        let mut parents: Vec<RouteParentStatus> = Vec::new();
        let old = route.status.as_ref().map(|s| s.parents.as_slice()).unwrap_or_default();
        for parent in route.spec.parent_refs.iter().flatten() {
            if parent.group.as_deref().unwrap_or(GROUP) != GROUP || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway" {
                continue;
            }
            let gw_ns = parent.namespace.as_deref().unwrap_or(ns);
            let Some(gw) = gateways.iter().find(|g| key(&g.metadata) == (gw_ns, parent.name.as_str())) else { continue };
            let old = old.iter().find(|p| &p.parent_ref == parent).map(|p| p.conditions.as_slice()).unwrap_or_default();
            let (accepted, reason, message) = match accepting_listeners(gw, parent, route, ns, &labels) {
                Ok(listeners) => {
                    for l in listeners {
                        *attached.entry((gw_ns.into(), parent.name.clone(), l)).or_default() += 1;
                    }
                    (true, "Accepted", "Route is accepted".to_string())
                }
                Err((reason, message)) => (false, reason, message),
            };
            let (resolved, ref_reason, ref_message) = resolve_backends(route, ns, inputs.services);
            let generation = route.metadata.generation;
            parents.push(RouteParentStatus {
                parent_ref: parent.clone(),
                controller_name: CONTROLLER_NAME.into(),
                conditions: vec![
                    condition(old, "Accepted", accepted, reason, &message, generation, inputs.now),
                    condition(old, "ResolvedRefs", resolved, ref_reason, &ref_message, generation, inputs.now),
                ],
            });
        }
        if !parents.is_empty() {
            // Entries of other controllers stay as they are.
            let others = old.iter().filter(|p| p.controller_name != CONTROLLER_NAME).cloned();
            out.routes.insert((ns.into(), name.into()), RouteStatus { parents: others.chain(parents).collect() });
        }
    }
    for gw in gateways {
        let (ns, name) = key(&gw.metadata);
        let old = gw.status.as_ref();
        let generation = gw.metadata.generation;
        let valid: Vec<&Listener> = gw.spec.listeners.iter().filter(|l| supported(l)).collect();
        let total = gw.spec.listeners.len();
        let (accepted, reason, message) = if valid.len() == total {
            (true, "Accepted", "Gateway is accepted".to_string())
        } else {
            (!valid.is_empty(), "ListenersNotValid", format!("{} of {total} listeners are not valid", total - valid.len()))
        };
        // An accepted Gateway gets its data path; it is programmed once that path serves.
        let served = if accepted { data_path_objects(gw, &valid) } else { Err("The Gateway is not accepted".into()) };
        let path = inputs.data_paths.get(&(ns.to_string(), name.to_string())).cloned().unwrap_or_default();
        let (programmed, programmed_reason, programmed_message) = match served {
            Ok(objects) => {
                out.data_paths.insert((ns.into(), name.into()), objects);
                programmed_condition(&path, ns, &data_path_name(gw))
            }
            Err(why) => (false, "Invalid", why),
        };
        let mut listeners = Vec::new();
        for l in &gw.spec.listeners {
            let old = old.and_then(|s| s.listeners.as_ref()).and_then(|ls| ls.iter().find(|o| o.name == l.name));
            let old = old.map(|o| o.conditions.as_slice()).unwrap_or_default();
            let (accepted, reason, message) = if supported(l) {
                (true, "Accepted", "Listener is accepted".to_string())
            } else {
                (false, "UnsupportedProtocol", format!("emu serves HTTP and HTTPS listeners, not {}", l.protocol))
            };
            let missing: Vec<String> = l
                .tls
                .iter()
                .flat_map(|t| t.certificate_refs.iter().flatten())
                .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(ns), r.name))
                .filter(|k| !inputs.secrets.contains(k))
                .collect();
            let (resolved, ref_reason, ref_message) = if missing.is_empty() {
                (true, "ResolvedRefs", "References are resolved".to_string())
            } else {
                (false, "InvalidCertificateRef", format!("Secret {} not found", missing.join(", ")))
            };
            // The listener's reasons are Programmed, Invalid and Pending: one not accepted or
            // whose certificate is missing cannot be served as written;
            // what the Gateway waits for, the listener waits for too.
            let (programmed, programmed_reason, programmed_message) = match (accepted && resolved, programmed) {
                (false, _) => (false, "Invalid", "Listener is invalid, see its other conditions".to_string()),
                (true, true) => (true, "Programmed", "Listener is programmed".to_string()),
                (true, false) => (false, "Pending", programmed_message.clone()),
            };
            let kinds = if accepted { vec![RouteGroupKind { group: Some(GROUP.into()), kind: "HTTPRoute".into() }] } else { vec![] };
            listeners.push(ListenerStatus {
                name: l.name.clone(),
                supported_kinds: kinds,
                attached_routes: attached.get(&(ns.into(), name.into(), l.name.clone())).copied().unwrap_or(0),
                conditions: vec![
                    condition(old, "Accepted", accepted, reason, &message, generation, inputs.now),
                    condition(old, "Programmed", programmed, programmed_reason, &programmed_message, generation, inputs.now),
                    condition(old, "ResolvedRefs", resolved, ref_reason, &ref_message, generation, inputs.now),
                    condition(old, "Conflicted", false, "NoConflicts", "No conflicts", generation, inputs.now),
                ],
            });
        }
        let addresses = out.data_paths.contains_key(&(ns.into(), name.into())).then(|| {
            path.addresses.iter().map(|ip| GatewayAddress { type_: Some("IPAddress".into()), value: ip.clone() }).collect::<Vec<_>>()
        });
        let old = old.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        out.gateways.insert(
            (ns.into(), name.into()),
            GatewayStatus {
                addresses: addresses.filter(|a| !a.is_empty()),
                conditions: Some(vec![
                    condition(old, "Accepted", accepted, reason, &message, generation, inputs.now),
                    condition(old, "Programmed", programmed, programmed_reason, &programmed_message, generation, inputs.now),
                ]),
                listeners: Some(listeners),
            },
        );
    }
    out
}

/// Whether emu serves a listener's protocol.
fn supported(l: &Listener) -> bool {
    matches!(l.protocol.as_str(), "HTTP" | "HTTPS")
}

/// The Gateway's Programmed condition, given what its data path (`<ns>/<name>`) has: an
/// object of that name it does not own stops it (NoResources: the name is not free); then it
/// waits for the balancer's address (AddressNotAssigned) and for a ready replica (Pending).
fn programmed_condition(path: &DataPath, ns: &str, name: &str) -> (bool, &'static str, String) {
    if !path.taken.is_empty() {
        let taken = path.taken.join(" and ");
        return (
            false,
            "NoResources",
            format!("{taken}: not owned by this Gateway, so emu leaves it as it is (delete it, or rename the Gateway)"),
        );
    }
    let mut awaited = Vec::new();
    if path.addresses.is_empty() {
        awaited.push(format!("an address from the cloud balancer for Service {ns}/{name}"));
    }
    if !path.ready {
        awaited.push(format!("a ready replica of Deployment {ns}/{name}"));
    }
    match (awaited.is_empty(), path.addresses.is_empty()) {
        (true, _) => (true, "Programmed", format!("Served by Deployment {ns}/{name} behind Service {ns}/{name}")),
        (false, true) => (false, "AddressNotAssigned", format!("Waiting for {}", awaited.join(" and "))),
        (false, false) => (false, "Pending", format!("Waiting for {}", awaited.join(" and "))),
    }
}

/// The name of a Gateway's Deployment and Service: `<gateway>-<gatewayClassName>`, as Istio
/// names them.
pub fn data_path_name(gw: &Gateway) -> String {
    format!("{}-{}", key(&gw.metadata).1, gw.spec.gateway_class_name)
}

/// The Deployment and Service serving `gw`'s `listeners` (those emu accepted), or why there
/// can be none. The Deployment runs one pod of ingress-nginx's controller image (emu's
/// emu-ingress) in its `--gateway` mode, probed as the ingress add-on's; the Service is a
/// LoadBalancer with `externalTrafficPolicy: Local` (the balancer sends traffic only to the node
/// of the pod, and nginx sees the client's address), one port per distinct listener port, named
/// after the first listener of that port. Both are owned by the Gateway (the garbage collector
/// removes them with it) and labelled with its name.
pub fn data_path_objects(gw: &Gateway, listeners: &[&Listener]) -> Result<[Value; 2], String> {
    let (ns, gw_name) = key(&gw.metadata);
    let name = data_path_name(gw);
    let errors = syntax::dns1035_label_errors(&name);
    if !errors.is_empty() {
        return Err(format!("The data path's name {name:?} is not a valid Service name: {}", errors.join("; ")));
    }
    let errors = syntax::label_value_errors(gw_name);
    if !errors.is_empty() {
        return Err(format!("The Gateway's name is not a valid value of label {GATEWAY_NAME_LABEL}: {}", errors.join("; ")));
    }
    let mut ports: Vec<&Listener> = Vec::new();
    for l in listeners {
        if !ports.iter().any(|p| p.port == l.port) {
            ports.push(l);
        }
    }
    if ports.is_empty() {
        return Err("The Gateway has no listener to serve".into());
    }
    let port_name = |l: &Listener| {
        if syntax::dns1123_label_errors(&l.name).is_empty() {
            l.name.clone()
        } else {
            format!("{}-{}", l.protocol.to_lowercase(), l.port)
        }
    };
    let selector = json!({ GATEWAY_NAME_LABEL: gw_name });
    let metadata = json!({"name": name, "namespace": ns, "labels": { GATEWAY_NAME_LABEL: gw_name, MANAGED_LABEL: MANAGED_VALUE },
        "ownerReferences": [{"apiVersion": format!("{GROUP}/v1"), "kind": "Gateway", "name": gw_name,
            "uid": gw.metadata.uid.as_deref().unwrap_or_default(), "controller": true, "blockOwnerDeletion": true}]});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": 1, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector},
                "spec": {"containers": [{"name": "gateway", "image": crate::ingress::CONTROLLER_IMAGE,
                    "args": ["/nginx-ingress-controller", format!("--gateway={ns}/{gw_name}")],
                    "ports": ports.iter().map(|l| json!({"containerPort": l.port, "protocol": "TCP"})).collect::<Vec<_>>(),
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT, "scheme": "HTTP"}, "periodSeconds": 1}}]}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata,
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": selector,
            "ports": ports.iter().map(|l| json!({"name": port_name(l), "port": l.port, "protocol": "TCP", "targetPort": l.port}))
                .collect::<Vec<_>>()}});
    Ok([deployment, service])
}

/// Whether emu's Gateway controller provisioned the object with these labels.
pub fn is_provisioned(labels: &BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_LABEL).is_some_and(|v| v == MANAGED_VALUE)
}

/// What to do to bring a stored object (`live`) to what a Gateway wants (`desired`, from
/// [`data_path_objects`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create(Value),
    /// The stored object with the wanted fields merged in, to be written as a replacement (its
    /// resourceVersion guards against a concurrent writer).
    Update(Value),
    Keep,
    /// An object of that name is not the Gateway's: never overwritten.
    Taken,
}

/// The step that brings `live` to `desired`. The wanted fields are merged into the stored
/// object as a strategic merge patch, so that what the API server defaulted and allocated (the
/// node ports, the probe's thresholds) stays and an object already in shape is left alone;
/// ports no listener has any more are deleted from the lists explicitly, as `kubectl apply`
/// deletes what its last configuration had.
pub fn reconcile(desired: &Value, live: Option<&Value>) -> Result<Step, emu_api::patch::PatchError> {
    let Some(live) = live else { return Ok(Step::Create(desired.clone())) };
    let controller = emu_api::object::controller_uid;
    if controller(live).is_none() || controller(live) != controller(desired) {
        return Ok(Step::Taken);
    }
    let mut patch = desired.clone();
    // (Looked up without indexing, which would add the fields it does not find to the patch.)
    if let Some(ports) = patch.pointer_mut("/spec/ports") {
        delete_stale(ports, &live["spec"]["ports"], "port");
    }
    if let Some(containers) = patch.pointer_mut("/spec/template/spec/containers").and_then(Value::as_array_mut) {
        let stored = live["spec"]["template"]["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
        for c in containers {
            if let Some(old) = stored.iter().find(|o| o["name"] == c["name"]) {
                delete_stale(&mut c["ports"], &old["ports"], "containerPort");
            }
        }
    }
    let merged = emu_api::patch::strategic_merge_patch(live, &patch)?;
    Ok(if &merged == live { Step::Keep } else { Step::Update(merged) })
}

/// Adds to a patch's list a `$patch: delete` item for each stored item whose `key` the patch's
/// list lacks.
fn delete_stale(patch: &mut Value, stored: &Value, key: &str) {
    let Some(items) = patch.as_array_mut() else { return };
    let wanted: Vec<Value> = items.iter().map(|i| i[key].clone()).collect();
    for old in stored.as_array().into_iter().flatten().filter(|o| !wanted.contains(&o[key])) {
        items.push(json!({ key: old[key], "$patch": "delete" }));
    }
}

/// The names of the listeners of `gw` that accept `route` through `parent`, or the reason none
/// does (the Gateway API's reasons for Accepted=False).
pub fn accepting_listeners(
    gw: &Gateway,
    parent: &ParentReference,
    route: &HTTPRoute,
    route_ns: &str,
    labels: &BTreeMap<&str, BTreeMap<String, String>>,
) -> Result<Vec<String>, (&'static str, String)> {
    let gw_ns = key(&gw.metadata).0;
    let named: Vec<&Listener> = gw
        .spec
        .listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name) && parent.port.is_none_or(|p| p == l.port))
        .filter(|l| supported(l))
        .collect();
    if named.is_empty() {
        return Err(("NoMatchingParent", "No listener matches the parentRef's sectionName and port".into()));
    }
    let allowed: Vec<&Listener> = named.into_iter().filter(|l| allows_namespace(l, gw_ns, route_ns, labels)).collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!("No listener of Gateway {gw_ns}/{} allows routes from namespace {route_ns}", key(&gw.metadata).1),
        ));
    }
    let hostnames = route.spec.hostnames.as_deref().unwrap_or_default();
    let matching: Vec<String> = allowed
        .into_iter()
        .filter(|l| hostnames.is_empty() || l.hostname.as_deref().is_none_or(|lh| hostnames.iter().any(|h| hostnames_intersect(lh, h))))
        .map(|l| l.name.clone())
        .collect();
    if matching.is_empty() {
        return Err(("NoMatchingListenerHostname", "No listener's hostname matches the route's hostnames".into()));
    }
    Ok(matching)
}

fn allows_namespace(l: &Listener, gw_ns: &str, route_ns: &str, labels: &BTreeMap<&str, BTreeMap<String, String>>) -> bool {
    let namespaces = l.allowed_routes.as_ref().and_then(|r| r.namespaces.as_ref());
    match namespaces.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => {
            let selector = Selector::from_typed(namespaces.and_then(|n| n.selector.as_ref()));
            selector.is_ok_and(|s| labels.get(route_ns).is_some_and(|l| s.matches(l)))
        }
        _ => gw_ns == route_ns,
    }
}

/// Whether a listener's hostname and a route's have a host in common (either may be a `*.`
/// wildcard, which matches one or more labels).
pub fn hostnames_intersect(a: &str, b: &str) -> bool {
    fn covers(wild: &str, host: &str) -> bool {
        match wild.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
            None => wild == host,
        }
    }
    a == b || covers(a, b) || covers(b, a)
}

/// ResolvedRefs of a route: every backendRef a Service of the route's namespace that exists
/// (a reference to another namespace needs a ReferenceGrant, which emu does not serve yet).
fn resolve_backends(route: &HTTPRoute, ns: &str, services: &BTreeSet<String>) -> (bool, &'static str, String) {
    let refs = route.spec.rules.iter().flatten().flat_map(|r| r.backend_refs.iter().flatten()).map(|b| &b.backend);
    for b in refs {
        if !b.group.as_deref().unwrap_or_default().is_empty() || b.kind.as_deref().unwrap_or("Service") != "Service" {
            let kind = b.kind.as_deref().unwrap_or("Service");
            return (
                false,
                "InvalidKind",
                format!("backendRef {}: kind {kind} of group {:?} is not supported", b.name, b.group.as_deref().unwrap_or_default()),
            );
        }
        let b_ns = b.namespace.as_deref().unwrap_or(ns);
        if b_ns != ns {
            return (
                false,
                "RefNotPermitted",
                format!("backendRef {b_ns}/{}: a reference to another namespace needs a ReferenceGrant", b.name),
            );
        }
        if !services.contains(&format!("{b_ns}/{}", b.name)) {
            return (false, "BackendNotFound", format!("Service {b_ns}/{} not found", b.name));
        }
    }
    (true, "ResolvedRefs", "References are resolved".into())
}

#[cfg(test)]
mod tests;
