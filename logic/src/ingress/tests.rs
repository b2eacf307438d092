//! The renderer against ingress-nginx's behaviour: the model (servers, locations, upstreams,
//! problems) and the golden nginx.conf text.

use super::*;
use serde_json::{json, Value};

pub(super) fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

pub(super) fn layout() -> Layout {
    Layout {
        run_dir: "/run/ingress".into(),
        cert_dir: "/etc/ingress/ssl".into(),
        default_cert: "/etc/ingress/ssl/default-fake-certificate.pem".into(),
        upstreams_file: "/etc/ingress/upstreams.conf".into(),
        http_port: 80,
        https_port: 443,
    }
}

pub(super) fn class(default: bool) -> IngressClass {
    let annotations = if default { json!({"ingressclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) };
    decode(json!({"metadata": {"name": "nginx", "annotations": annotations}, "spec": {"controller": "k8s.io/ingress-nginx"}}))
}

pub(super) fn path(path: &str, path_type: &str, svc: &str, port: Value) -> Value {
    json!({"path": path, "pathType": path_type, "backend": {"service": {"name": svc, "port": port}}})
}

pub(super) fn ingress(name: &str, created: &str, annotations: Value, spec: Value) -> Ingress {
    decode(
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "annotations": annotations}, "spec": spec}),
    )
}

pub(super) fn service(name: &str, ports: Value) -> Service {
    decode(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50", "ports": ports}}),
    )
}

pub(super) fn slice(service: &str, ports: Value, endpoints: Value) -> EndpointSlice {
    decode(json!({"metadata": {"name": format!("{service}-abcde"), "namespace": "default",
                               "labels": {"kubernetes.io/service-name": service}},
                  "addressType": "IPv4", "ports": ports, "endpoints": endpoints}))
}

pub(super) fn tls_secret() -> Secret {
    decode(json!({"metadata": {"name": "tls-secret", "namespace": "default"}, "type": "kubernetes.io/tls",
                  "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZCg=="}}))
}

pub(super) struct World {
    pub(super) classes: Vec<IngressClass>,
    pub(super) ingresses: Vec<Ingress>,
    pub(super) services: Vec<Service>,
    pub(super) slices: Vec<EndpointSlice>,
    pub(super) secrets: Vec<Secret>,
}

impl World {
    pub(super) fn inputs(&self) -> Inputs<'_> {
        Inputs {
            class: "nginx",
            classes: &self.classes,
            ingresses: &self.ingresses,
            services: &self.services,
            slices: &self.slices,
            secrets: &self.secrets,
        }
    }

    pub(super) fn model(&self) -> Model {
        build(&self.inputs(), &layout())
    }
}

/// The book's kubia: a Service on 80 to the pods' named port `http` (8080), three pods (one not
/// ready), an Ingress for kubia.example.com with TLS.
pub(super) fn kubia() -> World {
    let ep = |ip: &str, ready: bool| json!({"addresses": [ip], "conditions": {"ready": ready}});
    World {
        classes: vec![class(true)],
        ingresses: vec![ingress(
            "kubia",
            "2026-01-01T00:00:00Z",
            json!({}),
            json!({"ingressClassName": "nginx", "tls": [{"hosts": ["kubia.example.com"], "secretName": "tls-secret"}],
                   "rules": [{"host": "kubia.example.com", "http": {"paths": [path("/", "Prefix", "kubia", json!({"number": 80}))]}}]}),
        )],
        services: vec![service("kubia", json!([{"name": "web", "port": 80, "targetPort": "http"}]))],
        slices: vec![slice(
            "kubia",
            json!([{"name": "web", "port": 8080}]),
            json!([ep("10.244.1.3", true), ep("10.244.1.2", true), ep("10.244.2.2", false)]),
        )],
        secrets: vec![tls_secret()],
    }
}

#[test]
fn the_books_kubia_ingress() {
    let model = kubia().model();
    assert!(model.problems.is_empty(), "{:?}", model.problems);
    assert_eq!(
        model.upstreams,
        [Upstream {
            name: "default-kubia-80".into(),
            endpoints: vec!["10.244.1.2:8080".into(), "10.244.1.3:8080".into()],
            affinity_cookie: None
        }]
    );
    assert_eq!(model.certificates, [CertFile { path: "/etc/ingress/ssl/default-tls-secret.pem".into(), pem: b"CERT\nKEY\n".to_vec() }]);
    let hosts: Vec<&str> = model.servers.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(hosts, ["_", "kubia.example.com"]);
    assert_eq!(model.servers[1].certificate.as_deref(), Some("/etc/ingress/ssl/default-tls-secret.pem"));
    assert!(model.servers[1].locations[0].ssl_redirect);
    assert_eq!(model.servers[0].locations[0].target, Target::DefaultBackend);
    assert_eq!(render_upstreams(&model), include_str!("golden/kubia-upstreams.conf"));
    assert_eq!(render_conf(&model, &layout()), include_str!("golden/kubia.conf"));
}

#[test]
fn paths_follow_ingress_nginx_precedence() {
    let mut w = kubia();
    w.ingresses = vec![ingress(
        "paths",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "foo.example.com", "http": {"paths": [
            path("/foo", "Prefix", "kubia", json!({"number": 80})),
            path("/foo", "Exact", "kubia", json!({"name": "web"})),
            path("/foo/bar/", "Prefix", "kubia", json!({"number": 80})),
            path("/static", "ImplementationSpecific", "kubia", json!({"number": 80})),
            path("/gone", "Prefix", "missing", json!({"number": 80})),
            path("/noport", "Prefix", "kubia", json!({"number": 81})),
        ]}}]}),
    )];
    let model = w.model();
    let conf = render_conf(&model, &layout());
    let servers = conf.split_once("server_name _;").unwrap().1;
    let matchers: Vec<&str> = servers.lines().filter_map(|l| l.trim().strip_prefix("location ")).collect();
    // `= /foo` once, from the Exact path; the Prefix adds `/foo/`; ImplementationSpecific is a
    // plain prefix (so it matches /staticfoo); a Prefix path ending in `/` has no exact twin.
    assert_eq!(
        matchers,
        ["= /healthz {", "/ {", "/foo/bar/ {", "/noport/ {", "= /noport {", "/static {", "/gone/ {", "= /gone {", "= /foo {", "/foo/ {"]
    );
    let server = &model.servers[1];
    let target = |p: &str, k: PathKind| server.locations.iter().find(|l| l.path == p && l.kind == k).unwrap().target.clone();
    assert_eq!(target("/gone", PathKind::Prefix), Target::Unavailable);
    assert_eq!(target("/noport", PathKind::Prefix), Target::Unavailable);
    assert_eq!(target("/foo", PathKind::Exact), Target::Upstream("default-kubia-web".into()));
    let reasons: Vec<(&str, &str)> = model.problems.iter().map(|p| (p.reason, p.message.as_str())).collect();
    assert_eq!(
        reasons,
        [("MissingService", "service \"default/missing\" not found"), ("MissingPort", "service \"default/kubia\" has no port 81")]
    );
    // No TLS: no redirect, and the default certificate.
    assert!(server.locations.iter().all(|l| !l.ssl_redirect));
    assert_eq!(server.certificate, None);
}

#[test]
fn annotations_change_the_locations() {
    let mut w = kubia();
    w.ingresses = vec![
        ingress(
            "rewrite",
            "2026-01-01T00:00:00Z",
            json!({"nginx.ingress.kubernetes.io/rewrite-target": "/$2", "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}),
            json!({"rules": [{"host": "rw.example.com", "http": {"paths": [
                path("/something(/|$)(.*)", "ImplementationSpecific", "kubia", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "sticky",
            "2026-01-01T00:00:01Z",
            json!({"nginx.ingress.kubernetes.io/affinity": "cookie",
                   "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8, 192.168.1.1",
                   "nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
            json!({"rules": [{"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "kubia", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "denied",
            "2026-01-01T00:00:02Z",
            json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/33"}),
            json!({"rules": [{"host": "denied.example.com", "http": {"paths": [path("/", "Prefix", "kubia", json!({"number": 80}))]}}]}),
        ),
    ];
    let model = w.model();
    let conf = render_conf(&model, &layout());
    assert!(conf.contains("server_name rw.example.com;"), "{conf}");
    assert!(conf.contains("        location ~* \"^/something(/|$)(.*)\" {\n"), "{conf}");
    assert!(conf.contains("            rewrite \"(?i)/something(/|$)(.*)\" /$2 break;\n"), "{conf}");
    assert!(conf.contains("            proxy_pass https://default-kubia-80;\n"), "{conf}");
    // A wildcard host covers one label.
    assert!(conf.contains("server_name ~^(?<subdomain>[\\w-]+)\\.example\\.com$;"), "{conf}");
    assert!(conf.contains("            allow 10.0.0.0/8;\n            allow 192.168.1.1;\n            deny all;\n"), "{conf}");
    assert!(conf.contains("            return 308 https://$host$request_uri;"), "{conf}");
    assert!(conf.contains("            add_header Set-Cookie $emu_set_cookie_INGRESSCOOKIE;\n"), "{conf}");
    assert!(conf.contains("    map $http_cookie $emu_affinity_INGRESSCOOKIE {"), "{conf}");
    let upstreams = render_upstreams(&model);
    assert!(
        upstreams.contains("upstream default-kubia-80-INGRESSCOOKIE {\n    hash $emu_affinity_INGRESSCOOKIE consistent;\n"),
        "{upstreams}"
    );
    let denied = model.servers.iter().find(|s| s.host == "denied.example.com").unwrap();
    assert_eq!(denied.locations[0].target, Target::Unavailable);
    assert_eq!(model.problems[0].reason, "InvalidAnnotation");
}

#[test]
fn classes_default_backends_and_secrets() {
    let mut w = kubia();
    w.ingresses = vec![
        // No class: served because nginx is the default class.
        ingress(
            "fallback",
            "2026-01-01T00:00:00Z",
            json!({}),
            json!({"defaultBackend": {"service": {"name": "kubia", "port": {"number": 80}}}}),
        ),
        ingress(
            "other",
            "2026-01-01T00:00:00Z",
            json!({}),
            json!({"ingressClassName": "traefik", "rules": [{"host": "other.example.com", "http": {"paths": [path("/", "Prefix", "kubia", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "hosted",
            "2026-01-01T00:00:00Z",
            json!({}),
            json!({"ingressClassName": "nginx", "defaultBackend": {"service": {"name": "kubia", "port": {"number": 80}}},
                   "tls": [{"hosts": ["app.example.com"], "secretName": "nope"}],
                   "rules": [{"host": "app.example.com", "http": {"paths": [path("/api", "Prefix", "kubia", json!({"number": 80}))]}}]}),
        ),
    ];
    let model = w.model();
    let hosts: Vec<&str> = model.servers.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(hosts, ["_", "app.example.com"]);
    // The defaultBackend takes `/` of the catch-all and of its own hosts.
    assert_eq!(model.servers[0].locations[0].target, Target::Upstream("default-kubia-80".into()));
    let app = &model.servers[1];
    assert!(app.locations.iter().any(|l| l.path == "/" && l.target == Target::Upstream("default-kubia-80".into())));
    // A missing Secret: the default certificate, and a problem; the redirect still applies.
    assert_eq!(app.certificate, None);
    assert!(app.locations.iter().all(|l| l.ssl_redirect));
    assert_eq!(model.problems[0].message, "secret \"default/nope\" not found: serving the default certificate");
    // Without the default mark, the class-less Ingress is not served.
    w.classes = vec![class(false)];
    assert_eq!(w.model().servers[0].locations[0].target, Target::DefaultBackend);
}

#[test]
fn an_endpoint_change_touches_only_the_upstreams_file() {
    let before = kubia();
    let mut after = kubia();
    after.slices[0].endpoints.truncate(1);
    let (b, a) = (before.model(), after.model());
    assert_eq!(render_conf(&b, &layout()), render_conf(&a, &layout()));
    assert_ne!(render_upstreams(&b), render_upstreams(&a));
    // No ready endpoint at all: the local 503 server, still the same nginx.conf.
    after.slices.clear();
    let empty = after.model();
    assert_eq!(render_conf(&b, &layout()), render_conf(&empty, &layout()));
    assert_eq!(empty.upstreams[0].endpoints, Vec::<String>::new());
    assert!(render_upstreams(&empty).contains(&format!("    server {NO_ENDPOINTS};\n")));
}

/// The add-on as ingress-nginx names it: its Deployment and LoadBalancer Service in
/// `ingress-nginx`, and IngressClass `nginx` of `k8s.io/ingress-nginx`, the default class.
#[test]
fn addon_objects_are_ingress_nginx_s() {
    let objects = addon_objects();
    let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("{kind}"));
    assert_eq!(find("Deployment")["metadata"]["name"], "ingress-nginx-controller");
    assert_eq!(find("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"], CONTROLLER_IMAGE);
    assert_eq!(find("Service")["spec"]["type"], "LoadBalancer");
    assert_eq!(find("Service")["metadata"]["namespace"], ADDON_NAMESPACE);
    let class: IngressClass = serde_json::from_value(find("IngressClass").clone()).unwrap();
    assert!(is_default_class(&class));
    for (kind, name) in ADDON_CLUSTER_OBJECTS {
        assert_eq!(find(kind)["metadata"]["name"], name);
    }
}
