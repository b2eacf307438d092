use super::*;
use emu_api::typed::Object;
use serde_json::{json, Value};

const NOW: i64 = 1_714_557_600; // 2024-05-01T10:00:00Z

fn admitted(v: Value) -> Object {
    let mut o = Object::decode(v["kind"].as_str().unwrap(), &v).unwrap();
    emu_api::defaults::object(&mut o);
    o
}

fn class(name: &str, controller: &str) -> GatewayClass {
    let Object::GatewayClass(c) =
        admitted(json!({"kind": "GatewayClass", "metadata": {"name": name}, "spec": {"controllerName": controller}}))
    else {
        unreachable!()
    };
    *c
}

fn gateway(name: &str, class: &str, listeners: Value) -> Gateway {
    let v = json!({"kind": "Gateway", "metadata": {"name": name, "namespace": "default", "generation": 1},
                   "spec": {"gatewayClassName": class, "listeners": listeners}});
    let Object::Gateway(g) = admitted(v) else { unreachable!() };
    *g
}

fn route(ns: &str, spec: Value) -> HTTPRoute {
    let Object::HTTPRoute(r) =
        admitted(json!({"kind": "HTTPRoute", "metadata": {"name": "kubia", "namespace": ns, "generation": 2}, "spec": spec}))
    else {
        unreachable!()
    };
    *r
}

fn namespace(name: &str) -> Namespace {
    Namespace { metadata: emu_api::typed::ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
}

fn run(classes: &[GatewayClass], gateways: &[Gateway], routes: &[HTTPRoute], services: &[&str]) -> Statuses {
    let services: BTreeSet<String> = services.iter().map(|s| s.to_string()).collect();
    let namespaces = [namespace("default"), namespace("other")];
    statuses(&Inputs { classes, gateways, routes, namespaces: &namespaces, services: &services, secrets: &BTreeSet::new(), now: NOW })
}

fn conditions(c: &[Condition]) -> Vec<(&str, &str, &str)> {
    c.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str())).collect()
}

fn split_route(ns: &str) -> HTTPRoute {
    route(
        ns,
        json!({"parentRefs": [{"name": "web", "namespace": "default"}], "hostnames": ["kubia.example.com"],
               "rules": [{"backendRefs": [{"name": "kubia-a", "port": 80, "weight": 80}, {"name": "kubia-b", "port": 80, "weight": 20}]}]}),
    )
}

#[test]
fn emus_class_gateway_and_route_are_accepted_not_programmed() {
    let classes = [class("emu", CONTROLLER_NAME), class("other", "example.com/gateway")];
    let gateways =
        [gateway("web", "emu", json!([{"name": "http", "port": 80, "protocol": "HTTP"}])), gateway("theirs", "other", json!([]))];
    let s = run(&classes, &gateways, &[split_route("default")], &["default/kubia-a", "default/kubia-b"]);
    assert_eq!(s.classes.keys().collect::<Vec<_>>(), ["emu"], "only emu's class");
    assert_eq!(conditions(s.classes["emu"].conditions.as_deref().unwrap()), [("Accepted", "True", "Accepted")]);
    assert_eq!(s.gateways.len(), 1, "a Gateway of another controller's class is left alone");
    let gw = &s.gateways[&("default".into(), "web".into())];
    let gw_conditions = gw.conditions.as_deref().unwrap();
    assert_eq!(conditions(gw_conditions), [("Accepted", "True", "Accepted"), ("Programmed", "False", "Pending")]);
    assert_eq!(gw_conditions[1].message, NOT_PROGRAMMED);
    assert_eq!(gw_conditions[0].observed_generation, Some(1));
    assert_eq!(gw_conditions[0].last_transition_time, "2024-05-01T10:00:00Z");
    let listener = &gw.listeners.as_ref().unwrap()[0];
    assert_eq!(listener.attached_routes, 1);
    assert_eq!(listener.supported_kinds, [RouteGroupKind { group: Some(GROUP.into()), kind: "HTTPRoute".into() }]);
    assert_eq!(
        conditions(&listener.conditions),
        [
            ("Accepted", "True", "Accepted"),
            ("Programmed", "False", "Pending"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
            ("Conflicted", "False", "NoConflicts")
        ]
    );
    let parents = &s.routes[&("default".into(), "kubia".into())].parents;
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0].controller_name, CONTROLLER_NAME);
    assert_eq!(parents[0].parent_ref.kind.as_deref(), Some("Gateway"));
    assert_eq!(conditions(&parents[0].conditions), [("Accepted", "True", "Accepted"), ("ResolvedRefs", "True", "ResolvedRefs")]);
}

#[test]
fn a_missing_backend_and_a_listener_of_another_namespace_are_reported() {
    let classes = [class("emu", CONTROLLER_NAME)];
    let gateways = [gateway("web", "emu", json!([{"name": "http", "port": 80, "protocol": "HTTP"}]))];
    let s = run(&classes, &gateways, &[split_route("default")], &["default/kubia-a"]);
    let parent = &s.routes[&("default".into(), "kubia".into())].parents[0];
    assert_eq!(conditions(&parent.conditions)[1], ("ResolvedRefs", "False", "BackendNotFound"));
    assert_eq!(parent.conditions[1].message, "Service default/kubia-b not found");
    // From another namespace: the listener allows routes of its own (the default `from: Same`).
    let s = run(&classes, &gateways, &[split_route("other")], &["other/kubia-a", "other/kubia-b"]);
    let parent = &s.routes[&("other".into(), "kubia".into())].parents[0];
    assert_eq!(conditions(&parent.conditions)[0], ("Accepted", "False", "NotAllowedByListeners"));
    assert_eq!(s.gateways[&("default".into(), "web".into())].listeners.as_ref().unwrap()[0].attached_routes, 0);
    // `from: All` lets it attach.
    let all = [gateway(
        "web",
        "emu",
        json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]),
    )];
    let s = run(&classes, &all, &[split_route("other")], &["other/kubia-a", "other/kubia-b"]);
    assert_eq!(conditions(&s.routes[&("other".into(), "kubia".into())].parents[0].conditions)[0], ("Accepted", "True", "Accepted"));
}

#[test]
fn hostnames_unsupported_protocols_and_stable_transition_times() {
    let classes = [class("emu", CONTROLLER_NAME)];
    let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.other.com"}, {"name": "tcp", "port": 9000, "protocol": "TCP"}]);
    let gateways = [gateway("web", "emu", listeners)];
    let s = run(&classes, &gateways, &[split_route("default")], &["default/kubia-a", "default/kubia-b"]);
    let parent = &s.routes[&("default".into(), "kubia".into())].parents[0];
    assert_eq!(conditions(&parent.conditions)[0], ("Accepted", "False", "NoMatchingListenerHostname"));
    let gw = &s.gateways[&("default".into(), "web".into())];
    assert_eq!(conditions(gw.conditions.as_deref().unwrap())[0], ("Accepted", "True", "ListenersNotValid"));
    assert_eq!(conditions(&gw.listeners.as_ref().unwrap()[1].conditions)[0], ("Accepted", "False", "UnsupportedProtocol"));
    assert!(hostnames_intersect("*.example.com", "kubia.example.com") && !hostnames_intersect("*.example.com", "example.com"));
    // A later pass keeps the times of conditions whose status did not change.
    let mut later = gateways[0].clone();
    later.status = Some(gw.clone());
    let services: BTreeSet<String> = BTreeSet::new();
    let again = statuses(&Inputs {
        classes: &classes,
        gateways: &[later],
        routes: &[],
        namespaces: &[],
        services: &services,
        secrets: &services,
        now: NOW + 60,
    });
    assert_eq!(
        again.gateways[&("default".into(), "web".into())].conditions.as_ref().unwrap()[0].last_transition_time,
        "2024-05-01T10:00:00Z"
    );
}
