//! The Gateway API's status, as a Gateway controller reports it: a pure function of the
//! GatewayClasses, Gateways, HTTPRoutes, Services, Secrets and Namespaces (issue 21, item 3).
//!
//! emu's controller name is [`CONTROLLER_NAME`]: a GatewayClass naming it is accepted, and its
//! Gateways and the HTTPRoutes attached to them get the conditions the Gateway API defines
//! (Accepted, Programmed, ResolvedRefs, per listener and per route parent) with its reasons.
//! Objects of other controllers are left alone, as each controller owns its own entries.
//! Programmed stays False (reason Pending) until a data path serves Gateways.

use emu_api::gateway::{
    Condition, Gateway, GatewayClass, GatewayClassStatus, GatewayStatus, HTTPRoute, Listener, ListenerStatus, ParentReference,
    RouteGroupKind, RouteParentStatus, RouteStatus, GROUP,
};
use emu_api::selector::Selector;
use emu_api::typed::{key, Namespace};
use std::collections::{BTreeMap, BTreeSet};

/// The controller name a GatewayClass gives to have emu serve its Gateways. emu's own name, not
/// ingress-nginx's (`k8s.io/ingress-nginx` serves Ingresses only; its Gateway successor is another
/// project): the status it writes is emu's doing, and a class of another implementation (a real
/// controller installed in the cluster) stays that controller's.
pub const CONTROLLER_NAME: &str = "emu.dev/gateway-controller";

/// Why Programmed is False: said in every Programmed condition until the data path exists.
pub const NOT_PROGRAMMED: &str = "emu does not program Gateways yet: the ingress data path that will serve them is being built";

/// What the statuses are computed from. `services` and `secrets` are `namespace/name` keys.
pub struct Inputs<'a> {
    pub classes: &'a [GatewayClass],
    pub gateways: &'a [Gateway],
    pub routes: &'a [HTTPRoute],
    pub namespaces: &'a [Namespace],
    pub services: &'a BTreeSet<String>,
    pub secrets: &'a BTreeSet<String>,
    /// Unix seconds, the lastTransitionTime of a condition whose status changes.
    pub now: i64,
}

/// The statuses emu's controller owns, keyed by `(namespace, name)` ("" for a GatewayClass):
/// only those of emu's classes, their Gateways and the routes attached to them.
#[derive(Debug, Default, PartialEq)]
pub struct Statuses {
    pub classes: BTreeMap<String, GatewayClassStatus>,
    pub gateways: BTreeMap<(String, String), GatewayStatus>,
    pub routes: BTreeMap<(String, String), RouteStatus>,
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
        let mut listeners = Vec::new();
        for l in &gw.spec.listeners {
            let old = old.and_then(|s| s.listeners.as_ref()).and_then(|ls| ls.iter().find(|o| o.name == l.name));
            let old = old.map(|o| o.conditions.as_slice()).unwrap_or_default();
            let supported = matches!(l.protocol.as_str(), "HTTP" | "HTTPS");
            let (accepted, reason, message) = if supported {
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
            let kinds = if supported { vec![RouteGroupKind { group: Some(GROUP.into()), kind: "HTTPRoute".into() }] } else { vec![] };
            listeners.push(ListenerStatus {
                name: l.name.clone(),
                supported_kinds: kinds,
                attached_routes: attached.get(&(ns.into(), name.into(), l.name.clone())).copied().unwrap_or(0),
                conditions: vec![
                    condition(old, "Accepted", accepted, reason, &message, generation, inputs.now),
                    condition(old, "Programmed", false, "Pending", NOT_PROGRAMMED, generation, inputs.now),
                    condition(old, "ResolvedRefs", resolved, ref_reason, &ref_message, generation, inputs.now),
                    condition(old, "Conflicted", false, "NoConflicts", "No conflicts", generation, inputs.now),
                ],
            });
        }
        let valid = listeners.iter().filter(|l| l.conditions[0].status == "True").count();
        let (accepted, reason, message) = if valid == listeners.len() {
            (true, "Accepted", "Gateway is accepted".to_string())
        } else {
            (valid > 0, "ListenersNotValid", format!("{} of {} listeners are not valid", listeners.len() - valid, listeners.len()))
        };
        let old = old.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        out.gateways.insert(
            (ns.into(), name.into()),
            GatewayStatus {
                addresses: None,
                conditions: Some(vec![
                    condition(old, "Accepted", accepted, reason, &message, generation, inputs.now),
                    condition(old, "Programmed", false, "Pending", NOT_PROGRAMMED, generation, inputs.now),
                ]),
                listeners: Some(listeners),
            },
        );
    }
    out
}

/// The names of the listeners of `gw` that accept `route` through `parent`, or the reason none
/// does (the Gateway API's reasons for Accepted=False).
fn accepting_listeners(
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
        .filter(|l| matches!(l.protocol.as_str(), "HTTP" | "HTTPS"))
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
