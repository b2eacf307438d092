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
    let v = json!({"kind": "Gateway", "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": format!("uid-{name}")},
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
    run_with(classes, gateways, routes, services, &BTreeMap::new())
}

fn run_with(
    classes: &[GatewayClass],
    gateways: &[Gateway],
    routes: &[HTTPRoute],
    services: &[&str],
    data_paths: &BTreeMap<(String, String), DataPath>,
) -> Statuses {
    let services: BTreeSet<String> = services.iter().map(|s| s.to_string()).collect();
    let namespaces = [namespace("default"), namespace("other")];
    statuses(&Inputs {
        classes,
        gateways,
        routes,
        namespaces: &namespaces,
        services: &services,
        secrets: &BTreeSet::new(),
        data_paths,
        now: NOW,
    })
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
fn emus_class_gateway_and_route_are_accepted_and_wait_for_their_data_path() {
    let classes = [class("emu", CONTROLLER_NAME), class("other", "example.com/gateway")];
    let gateways =
        [gateway("web", "emu", json!([{"name": "http", "port": 80, "protocol": "HTTP"}])), gateway("theirs", "other", json!([]))];
    let s = run(&classes, &gateways, &[split_route("default")], &["default/kubia-a", "default/kubia-b"]);
    assert_eq!(s.classes.keys().collect::<Vec<_>>(), ["emu"], "only emu's class");
    assert_eq!(conditions(s.classes["emu"].conditions.as_deref().unwrap()), [("Accepted", "True", "Accepted")]);
    assert_eq!(s.gateways.len(), 1, "a Gateway of another controller's class is left alone");
    let gw = &s.gateways[&("default".into(), "web".into())];
    let gw_conditions = gw.conditions.as_deref().unwrap();
    assert_eq!(conditions(gw_conditions), [("Accepted", "True", "Accepted"), ("Programmed", "False", "AddressNotAssigned")]);
    assert_eq!(
        gw_conditions[1].message,
        "Waiting for an address from the cloud balancer for Service default/web-emu and a ready replica of Deployment default/web-emu"
    );
    assert_eq!(gw.addresses, None);
    assert_eq!(s.data_paths.keys().collect::<Vec<_>>(), [&("default".to_string(), "web".to_string())], "only emu's Gateway is served");
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
        data_paths: &BTreeMap::new(),
        now: NOW + 60,
    });
    assert_eq!(
        again.gateways[&("default".into(), "web".into())].conditions.as_ref().unwrap()[0].last_transition_time,
        "2024-05-01T10:00:00Z"
    );
}

fn gateway_status<'a>(s: &'a Statuses, name: &str) -> &'a GatewayStatus {
    &s.gateways[&("default".into(), name.into())]
}

#[test]
fn programmed_once_the_service_has_an_address_and_a_replica_is_ready() {
    let classes = [class("emu", CONTROLLER_NAME)];
    let gateways = [gateway("web", "emu", json!([{"name": "http", "port": 80, "protocol": "HTTP"}]))];
    let key = ("default".to_string(), "web".to_string());
    let with = |path: DataPath| run_with(&classes, &gateways, &[], &[], &BTreeMap::from([(key.clone(), path)]));
    let programmed = |s: &Statuses| {
        let gw = gateway_status(s, "web");
        let c = gw.conditions.as_ref().unwrap()[1].clone();
        let l = gw.listeners.as_ref().unwrap()[0].conditions[1].clone();
        ((c.status, c.reason, c.message), (l.status, l.reason, l.message))
    };
    // An address, no ready replica yet.
    let s = with(DataPath { addresses: vec!["172.18.255.1".into()], ready: false, taken: vec![] });
    let waiting = "Waiting for a ready replica of Deployment default/web-emu".to_string();
    assert_eq!(programmed(&s), (("False".into(), "Pending".into(), waiting.clone()), ("False".into(), "Pending".into(), waiting)));
    assert_eq!(
        gateway_status(&s, "web").addresses,
        Some(vec![GatewayAddress { type_: Some("IPAddress".into()), value: "172.18.255.1".into() }]),
        "the address is reported as soon as the balancer gives it"
    );
    // A ready replica, no address.
    let s = with(DataPath { addresses: vec![], ready: true, taken: vec![] });
    assert_eq!(programmed(&s).0 .1, "AddressNotAssigned");
    assert_eq!(programmed(&s).0 .2, "Waiting for an address from the cloud balancer for Service default/web-emu");
    // Both.
    let s = with(DataPath { addresses: vec!["172.18.255.1".into()], ready: true, taken: vec![] });
    assert_eq!(
        programmed(&s),
        (
            ("True".into(), "Programmed".into(), "Served by Deployment default/web-emu behind Service default/web-emu".into()),
            ("True".into(), "Programmed".into(), "Listener is programmed".into())
        )
    );
    // A same-named Deployment of someone else's.
    let s = with(DataPath { addresses: vec![], ready: false, taken: vec!["Deployment default/web-emu".into()] });
    assert_eq!(programmed(&s).0 .1, "NoResources");
    assert_eq!(
        programmed(&s).0 .2,
        "Deployment default/web-emu: not owned by this Gateway, so emu leaves it as it is (delete it, or rename the Gateway)"
    );
}

#[test]
fn a_listener_whose_certificate_is_missing_is_not_programmed() {
    let classes = [class("emu", CONTROLLER_NAME)];
    let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "cert"}]}}]);
    let gateways = [gateway("web", "emu", listeners)];
    let path = DataPath { addresses: vec!["172.18.255.1".into()], ready: true, taken: vec![] };
    let s = run_with(&classes, &gateways, &[], &[], &BTreeMap::from([(("default".to_string(), "web".to_string()), path)]));
    let gw = gateway_status(&s, "web");
    assert_eq!(conditions(gw.conditions.as_deref().unwrap())[1], ("Programmed", "True", "Programmed"), "the other listener serves");
    let listeners = gw.listeners.as_ref().unwrap();
    assert_eq!(conditions(&listeners[0].conditions)[1], ("Programmed", "True", "Programmed"));
    assert_eq!(
        conditions(&listeners[1].conditions)[1..3],
        [("Programmed", "False", "Invalid"), ("ResolvedRefs", "False", "InvalidCertificateRef")]
    );
    assert_eq!(listeners[1].conditions[2].message, "Secret default/cert not found");
}

#[test]
fn a_gateway_not_accepted_gets_no_data_path() {
    let classes = [class("emu", CONTROLLER_NAME)];
    let gateways = [gateway("tcp", "emu", json!([{"name": "tcp", "port": 9000, "protocol": "TCP"}]))];
    let s = run(&classes, &gateways, &[], &[]);
    assert!(s.data_paths.is_empty());
    let gw = gateway_status(&s, "tcp");
    assert_eq!(
        conditions(gw.conditions.as_deref().unwrap()),
        [("Accepted", "False", "ListenersNotValid"), ("Programmed", "False", "Invalid")]
    );
    assert_eq!(conditions(&gw.listeners.as_ref().unwrap()[0].conditions)[1], ("Programmed", "False", "Invalid"));
    // A name that cannot name a Service: not served, and said so.
    let dotted = [class("emu.example", CONTROLLER_NAME)];
    let gateways = [gateway("web", "emu.example", json!([{"name": "http", "port": 80, "protocol": "HTTP"}]))];
    let s = run(&dotted, &gateways, &[], &[]);
    assert!(s.data_paths.is_empty());
    let c = &gateway_status(&s, "web").conditions.as_ref().unwrap()[1];
    assert_eq!((c.reason.as_str(), c.status.as_str()), ("Invalid", "False"));
    assert!(c.message.starts_with("The data path's name \"web-emu.example\" is not a valid Service name: "), "{}", c.message);
}

/// The data path of a Gateway with an HTTP and an HTTPS listener on 80 and 443 and a second
/// HTTP listener on 80 (another hostname).
fn web_objects(listeners: Value) -> [Value; 2] {
    let classes = [class("emu", CONTROLLER_NAME)];
    let s = run(&classes, &[gateway("web", "emu", listeners)], &[], &[]);
    s.data_paths[&("default".to_string(), "web".to_string())].clone()
}

#[test]
fn the_data_path_is_a_deployment_and_a_load_balancer_owned_by_the_gateway() {
    let [deployment, service] = web_objects(json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "http-other", "port": 80, "protocol": "HTTP", "hostname": "other.example.com"},
        {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "cert"}]}},
        {"name": "tcp", "port": 9000, "protocol": "TCP"}]));
    let owner = json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "web", "uid": "uid-web",
        "controller": true, "blockOwnerDeletion": true}]);
    let labels = json!({"gateway.networking.k8s.io/gateway-name": "web", "gateway.emu.dev/managed": "emu.dev-gateway-controller"});
    for o in [&deployment, &service] {
        assert_eq!((o["metadata"]["name"].as_str(), o["metadata"]["namespace"].as_str()), (Some("web-emu"), Some("default")));
        assert_eq!(o["metadata"]["ownerReferences"], owner);
        assert_eq!(o["metadata"]["labels"], labels);
    }
    let selector = json!({"gateway.networking.k8s.io/gateway-name": "web"});
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"], selector);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "gateway");
    assert_eq!(container["image"], crate::ingress::CONTROLLER_IMAGE);
    assert_eq!(container["args"], json!(["/nginx-ingress-controller", "--gateway=default/web"]));
    assert_eq!(container["ports"], json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}]));
    assert_eq!(container["readinessProbe"], json!({"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"}, "periodSeconds": 1}));
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(service["spec"]["selector"], selector);
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
               {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]),
        "one port per distinct listener port, named after its first listener; the TCP listener is not served"
    );
    // A listener name that is no DNS label (a dotted section name) names no port.
    let [_, service] = web_objects(json!([{"name": "web.http", "port": 8080, "protocol": "HTTP"}]));
    assert_eq!(service["spec"]["ports"][0]["name"], "http-8080");
}

/// `v` as the API server stores it: defaulted, with a uid, a resourceVersion and (a Service)
/// its node ports.
fn stored(v: &Value) -> Value {
    let mut v = v.clone();
    emu_api::defaults::apply_defaults(&mut v);
    v["metadata"]["uid"] = json!("uid-stored");
    v["metadata"]["resourceVersion"] = json!("42");
    if v["kind"] == "Service" {
        for (i, p) in v["spec"]["ports"].as_array_mut().unwrap().iter_mut().enumerate() {
            p["nodePort"] = json!(30080 + i);
        }
        v["spec"]["healthCheckNodePort"] = json!(32000);
        v["spec"]["clusterIP"] = json!("10.96.0.20");
    }
    v
}

#[test]
fn reconcile_creates_keeps_updates_and_never_takes_over() {
    let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "https", "port": 443, "protocol": "HTTPS"}]);
    let [deployment, service] = web_objects(listeners);
    assert_eq!(reconcile(&deployment, None).unwrap(), Step::Create(deployment.clone()));
    // As stored (defaulted, allocated): in shape, left alone.
    let (live_deployment, live_service) = (stored(&deployment), stored(&service));
    assert_eq!(reconcile(&deployment, Some(&live_deployment)).unwrap(), Step::Keep);
    assert_eq!(reconcile(&service, Some(&live_service)).unwrap(), Step::Keep);
    // The HTTPS listener removed and the HTTP one moved to 8080: ports follow, the kept
    // allocations stay, the rest of the stored object too.
    let [deployment2, service2] = web_objects(json!([{"name": "http", "port": 8080, "protocol": "HTTP"}]));
    let Step::Update(s) = reconcile(&service2, Some(&live_service)).unwrap() else { panic!("the Service is updated") };
    assert_eq!(s["spec"]["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}]));
    assert_eq!((s["spec"]["healthCheckNodePort"].as_i64(), s["metadata"]["resourceVersion"].as_str()), (Some(32000), Some("42")));
    assert_eq!(s["spec"]["clusterIP"], "10.96.0.20");
    let Step::Update(d) = reconcile(&deployment2, Some(&live_deployment)).unwrap() else { panic!("the Deployment is updated") };
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
    assert_eq!(container["terminationMessagePath"], live_deployment["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"]);
    // Once stored, in shape again.
    assert_eq!(reconcile(&service2, Some(&stored(&s))).unwrap(), Step::Keep);
    // A scaled or edited Deployment is put back.
    let mut scaled = live_deployment.clone();
    scaled["spec"]["replicas"] = json!(3);
    let Step::Update(d) = reconcile(&deployment, Some(&scaled)).unwrap() else { panic!("scaled back") };
    assert_eq!(d["spec"]["replicas"], 1);
    // Someone else's object of that name, or one another Gateway owns, is never touched.
    let mut theirs = live_service.clone();
    theirs["metadata"].as_object_mut().unwrap().remove("ownerReferences");
    assert_eq!(reconcile(&service, Some(&theirs)).unwrap(), Step::Taken);
    theirs["metadata"]["ownerReferences"] = json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "name": "web", "uid": "uid-an-older-web", "controller": true}]);
    assert_eq!(reconcile(&service, Some(&theirs)).unwrap(), Step::Taken);
}

#[test]
fn a_data_path_counts_what_the_gateway_owns() {
    let [deployment, service] = web_objects(json!([{"name": "http", "port": 80, "protocol": "HTTP"}]));
    let mut d = stored(&deployment);
    let mut s = stored(&service);
    let decode_d = |v: &Value| -> Deployment { serde_json::from_value(v.clone()).unwrap() };
    let decode_s = |v: &Value| -> Service { serde_json::from_value(v.clone()).unwrap() };
    assert_eq!(DataPath::of("uid-web", Some(&decode_d(&d)), Some(&decode_s(&s))), DataPath::default());
    d["status"] = json!({"replicas": 1, "readyReplicas": 1});
    s["status"] = json!({"loadBalancer": {"ingress": [{"ip": "172.18.255.1", "ipMode": "VIP"}]}});
    assert_eq!(
        DataPath::of("uid-web", Some(&decode_d(&d)), Some(&decode_s(&s))),
        DataPath { addresses: vec!["172.18.255.1".into()], ready: true, taken: vec![] }
    );
    assert!(is_provisioned(&emu_api::object::labels(&s)));
    assert_eq!(
        DataPath::of("uid-other", Some(&decode_d(&d)), None),
        DataPath { addresses: vec![], ready: false, taken: vec!["Deployment default/web-emu".into()] }
    );
}
