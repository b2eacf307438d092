//! The Gateway renderer against the Gateway API's semantics: the model, the golden nginx.conf
//! text, and [`route`]'s decisions for each precedence rule, fallback, wildcard hosts, weights
//! and filters.

use super::*;
use serde_json::{json, Value};

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn layout() -> Layout {
    Layout {
        run_dir: "/run/gw".into(),
        cert_dir: "/etc/gw/ssl".into(),
        default_cert: "/etc/gw/ssl/default.pem".into(),
        upstreams_file: "/etc/gw/upstreams.conf".into(),
    }
}

fn gateway(listeners: Value) -> Gateway {
    decode(json!({"metadata": {"name": "gw", "namespace": "default"}, "spec": {"gatewayClassName": "emu", "listeners": listeners}}))
}

fn http_gateway() -> Gateway {
    gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP"}]))
}

/// An HTTPRoute of namespace default attached to Gateway gw.
fn route_obj(name: &str, created: &str, hostnames: Value, rules: Value) -> HTTPRoute {
    decode(json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": hostnames, "rules": rules}}))
}

fn service(name: &str) -> Service {
    decode(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
}

fn slice(service: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect();
    decode(
        json!({"metadata": {"name": format!("{service}-abc"), "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints}),
    )
}

fn to(svc: &str) -> Value {
    json!([{"name": svc, "port": 80}])
}

/// A rule with `matches` forwarding to Service `svc`.
fn rule(matches: Value, svc: &str) -> Value {
    json!({"matches": matches, "backendRefs": to(svc)})
}

fn prefix(p: &str) -> Value {
    json!({"path": {"type": "PathPrefix", "value": p}})
}

fn exact(p: &str) -> Value {
    json!({"path": {"type": "Exact", "value": p}})
}

const SERVICES: [&str; 4] = ["a", "b", "c", "d"];

fn model_of(gw: &Gateway, routes: &[HTTPRoute]) -> Model {
    let services: Vec<Service> = SERVICES.iter().map(|s| service(s)).collect();
    let slices: Vec<EndpointSlice> = vec![slice("a", &["10.244.1.2"]), slice("b", &["10.244.1.3"]), slice("c", &["10.244.2.2"])];
    let inputs = Inputs { gateway: gw, routes, namespaces: &[], services: &services, slices: &slices, secrets: &[] };
    build(&inputs, &layout())
}

fn get<'a>(host: &'a str, path: &'a str) -> Request<'a> {
    Request { host, port: 80, method: "GET", path, query: "", headers: &[] }
}

/// The Service the request is forwarded to (its only backend), or the 404 / other outcome.
fn served(model: &Model, req: &Request) -> String {
    match route(model, req).outcome {
        Outcome::Forward { backends, .. } => backends.iter().map(|b| b.backend.clone()).collect::<Vec<_>>().join(","),
        Outcome::NotFound(_) => "404".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn exact_path_beats_prefix_and_prefix_matches_by_path_element() {
    let r =
        route_obj("r", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/foo")]), "a"), rule(json!([exact("/foo")]), "b")]));
    let m = model_of(&http_gateway(), &[r]);
    assert_eq!(served(&m, &get("x", "/foo")), "default/b:80");
    assert_eq!(served(&m, &get("x", "/foo/")), "default/a:80");
    assert_eq!(served(&m, &get("x", "/foo/bar")), "default/a:80");
    assert_eq!(served(&m, &get("x", "/foobar")), "404");
    assert_eq!(served(&m, &get("x", "/")), "404");
}

#[test]
fn the_longest_prefix_wins_and_a_trailing_slash_is_ignored() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([rule(json!([prefix("/")]), "a"), rule(json!([prefix("/foo/")]), "b"), rule(json!([prefix("/foo/bar")]), "c")]),
    );
    let m = model_of(&http_gateway(), &[r]);
    assert_eq!(served(&m, &get("x", "/foo")), "default/b:80");
    assert_eq!(served(&m, &get("x", "/foo/baz")), "default/b:80");
    assert_eq!(served(&m, &get("x", "/foo/bar/baz")), "default/c:80");
    assert_eq!(served(&m, &get("x", "/foo/barn")), "default/b:80");
    assert_eq!(served(&m, &get("x", "/other")), "default/a:80");
}

#[test]
fn method_beats_headers_which_beat_fewer_headers_which_beat_query() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            rule(json!([{"path": {"value": "/api"}, "queryParams": [{"name": "v", "value": "2"}]}]), "a"),
            rule(json!([{"path": {"value": "/api"}, "headers": [{"name": "X-Env", "value": "canary"}]}]), "b"),
            rule(
                json!([{"path": {"value": "/api"}, "headers": [{"name": "X-Env", "value": "canary"}, {"name": "X-Team", "value": "blue"}]}]),
                "c"
            ),
            rule(json!([{"path": {"value": "/api"}, "method": "POST"}]), "d"),
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    let all = [("x-env", "canary"), ("X-Team", "blue")];
    let one = [("x-env", "canary")];
    let req = |method, query, headers| Request { host: "x", port: 80, method, path: "/api/items", query, headers };
    assert_eq!(served(&m, &req("POST", "v=2", &all)), "default/d:80", "method first");
    assert_eq!(served(&m, &req("GET", "v=2", &all)), "default/c:80", "two headers");
    assert_eq!(served(&m, &req("GET", "v=2", &one)), "default/b:80", "one header");
    assert_eq!(served(&m, &req("GET", "v=2", &[])), "default/a:80", "the query");
    assert_eq!(served(&m, &req("GET", "v=3", &[])), "404", "nothing holds: no other match covers /api");
}

#[test]
fn regular_expression_headers_and_query_parameters_take_the_whole_value() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            rule(
                json!([{"path": {"value": "/re"}, "headers": [{"type": "RegularExpression", "name": "X-Version", "value": "v[0-9]+"}]}]),
                "a"
            ),
            rule(
                json!([{"path": {"value": "/re"}, "queryParams": [{"type": "RegularExpression", "name": "id", "value": "[0-9]{2}$"}]}]),
                "b"
            ),
            rule(json!([{"path": {"value": "/re"}, "headers": [{"type": "RegularExpression", "name": "X-Bad", "value": "(?<=x)y"}]}]), "c"),
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    let with = |headers, query| served(&m, &Request { headers, query, ..get("x", "/re") });
    assert_eq!(with(&[("x-version", "v12")], ""), "default/a:80");
    assert_eq!(with(&[("x-version", "v12-beta")], "id=42"), "default/b:80", "the whole value, not a part");
    assert_eq!(with(&[], "id=420"), "404");
    assert_eq!(m.problems.len(), 1, "a look-behind the regex crate does not read: {:?}", m.problems);
    let conf = render_conf(&m, &layout(), "default/gw");
    assert!(conf.contains("if ($http_x_version !~ \"^(?:v[0-9]+)$\")"), "{conf}");
    assert!(conf.contains("if ($arg_id !~ \"^(?:[0-9]{2}$)$\")"), "{conf}");
}

#[test]
fn ties_go_to_the_oldest_route_then_by_name_then_rule_order() {
    let older = route_obj("zeta", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/t")]), "a")]));
    let newer = route_obj("alpha", "2026-02-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/t")]), "b")]));
    assert_eq!(served(&model_of(&http_gateway(), &[newer.clone(), older]), &get("x", "/t")), "default/a:80");
    let same = route_obj("beta", "2026-02-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/t")]), "c")]));
    assert_eq!(served(&model_of(&http_gateway(), &[same, newer]), &get("x", "/t")), "default/b:80", "alpha before beta");
    let two =
        route_obj("r", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/t")]), "c"), rule(json!([prefix("/t")]), "d")]));
    assert_eq!(served(&model_of(&http_gateway(), &[two]), &get("x", "/t")), "default/c:80", "the first rule");
}

#[test]
fn a_longer_prefix_whose_conditions_fail_falls_back_to_a_shorter_one() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            rule(json!([{"path": {"value": "/foo"}, "headers": [{"name": "x-canary", "value": "1"}]}]), "a"),
            rule(json!([{"path": {"type": "Exact", "value": "/foo/bar"}, "method": "PUT"}]), "c"),
            rule(json!([prefix("/")]), "b"),
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    let canary = [("X-Canary", "1")];
    assert_eq!(served(&m, &Request { headers: &canary, ..get("x", "/foo/bar") }), "default/a:80");
    assert_eq!(served(&m, &get("x", "/foo/bar")), "default/b:80", "the Exact location falls back through /foo to /");
    assert_eq!(served(&m, &Request { method: "PUT", ..get("x", "/foo/bar") }), "default/c:80");
    assert_eq!(served(&m, &get("x", "/foo")), "default/b:80");
    // The rendered location carries all three, the highest precedence set last.
    let conf = render_conf(&m, &layout(), "default/gw");
    let loc = conf.split("location = \"/foo/bar\" {").nth(1).unwrap().split("\n        }\n").next().unwrap();
    let order: Vec<&str> = loc.lines().filter_map(|l| l.trim().strip_prefix("set $emu_rule ")).collect();
    assert_eq!(order, vec!["\"\";", "2;", "0;", "1;"], "{loc}");
}

#[test]
fn hostnames_exact_before_the_longest_wildcard_with_fallback_and_the_listeners_hostname() {
    let wide = route_obj("wide", "2026-01-01T00:00:00Z", json!(["*.example.com"]), json!([rule(json!([prefix("/")]), "a")]));
    let narrow = route_obj("narrow", "2026-02-01T00:00:00Z", json!(["foo.example.com"]), json!([rule(json!([prefix("/x")]), "b")]));
    let any = route_obj("any", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/")]), "c")]));
    let m = model_of(&http_gateway(), &[wide.clone(), narrow.clone(), any]);
    assert_eq!(served(&m, &get("foo.example.com", "/x/1")), "default/b:80");
    assert_eq!(served(&m, &get("FOO.example.com", "/y")), "default/a:80", "the wildcard route's rule when the exact host's do not match");
    assert_eq!(served(&m, &get("a.b.example.com", "/x")), "default/a:80", "a wildcard takes one or more labels");
    assert_eq!(served(&m, &get("example.com", "/x")), "default/c:80");
    // A listener's hostname bounds its routes: other hosts get the catch-all's 404.
    let gw = gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"}]));
    let m = model_of(&gw, &[wide, narrow]);
    assert_eq!(served(&m, &get("bar.example.com", "/")), "default/a:80");
    assert_eq!(served(&m, &get("other.org", "/")), "404");
    assert_eq!(route(&m, &Request { port: 8080, ..get("bar.example.com", "/") }).outcome, Outcome::Refused);
}

#[test]
fn routes_attach_by_section_name_and_allowed_namespaces() {
    let gw = gateway(json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "alt", "port": 8080, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}
    ]));
    let mut r = route_obj("r", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/")]), "a")]));
    r.spec.parent_refs.as_mut().unwrap()[0].section_name = Some("alt".into());
    let m = model_of(&gw, &[r.clone()]);
    assert_eq!(served(&m, &get("x", "/")), "404");
    assert_eq!(served(&m, &Request { port: 8080, ..get("x", "/") }), "default/a:80");
    // A route of another namespace: only the listener allowing All takes it.
    r.metadata.namespace = Some("team".into());
    r.spec.parent_refs.as_mut().unwrap()[0] = decode(json!({"name": "gw", "namespace": "default"}));
    let m = model_of(&gw, &[r]);
    assert_eq!(served(&m, &get("x", "/")), "404");
    assert_eq!(served(&m, &Request { port: 8080, ..get("x", "/") }), "team/a:80");
}

#[test]
fn weights_split_and_unresolved_backends_answer_500_for_their_share() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            {"matches": [prefix("/split")], "backendRefs": [{"name": "a", "port": 80, "weight": 80}, {"name": "b", "port": 80, "weight": 20}, {"name": "c", "port": 80, "weight": 0}]},
            {"matches": [prefix("/broken")], "backendRefs": [{"name": "a", "port": 80, "weight": 1}, {"name": "missing", "port": 80, "weight": 1},
                {"name": "a", "port": 81}, {"name": "d", "port": 80, "kind": "ConfigMap"}]},
            {"matches": [prefix("/none")], "backendRefs": [{"name": "a", "port": 80, "weight": 0}]},
            {"matches": [prefix("/thirds")], "backendRefs": [{"name": "a", "port": 80}, {"name": "b", "port": 80}, {"name": "c", "port": 80}]},
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    let Outcome::Forward { backends, .. } = route(&m, &get("x", "/split")).outcome else { panic!() };
    let shares: Vec<(&str, u32, Vec<String>)> = backends.iter().map(|b| (b.backend.as_str(), b.percent, b.endpoints.clone())).collect();
    assert_eq!(
        shares,
        vec![("default/a:80", 8000, vec!["10.244.1.2:8080".into()]), ("default/b:80", 2000, vec!["10.244.1.3:8080".into()])]
    );
    let Outcome::Forward { backends, .. } = route(&m, &get("x", "/broken")).outcome else { panic!() };
    let statuses: Vec<(u32, Option<u16>)> = backends.iter().map(|b| (b.percent, b.status)).collect();
    assert_eq!(statuses, vec![(2500, None), (2500, Some(500)), (2500, Some(500)), (2500, Some(500))]);
    assert_eq!(route(&m, &get("x", "/none")).outcome, Outcome::NoBackend);
    let Outcome::Forward { backends, .. } = route(&m, &get("x", "/thirds")).outcome else { panic!() };
    assert_eq!(backends.iter().map(|b| b.percent).collect::<Vec<_>>(), vec![3333, 3333, 3334]);
    let reasons: BTreeSet<&str> = m.problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, BTreeSet::from(["BackendNotFound", "InvalidKind"]));
    let conf = render_conf(&m, &layout(), "default/gw");
    assert!(conf.contains("        80.00% default-a-80;\n        * default-b-80;\n"), "{conf}");
    assert!(conf.contains("        33.33% default-a-80;\n        33.33% default-b-80;\n        * default-c-80;\n"), "{conf}");
    assert!(conf.contains("        25.00% emu-invalid-backend;\n"), "{conf}");
}

#[test]
fn redirects_as_the_gateway_api_builds_the_location() {
    let redirect =
        |filter: Value, p: &str| json!({"matches": [prefix(p)], "filters": [{"type": "RequestRedirect", "requestRedirect": filter}]});
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            redirect(json!({"scheme": "https", "statusCode": 301}), "/secure"),
            redirect(json!({"hostname": "new.example.com"}), "/moved"),
            redirect(json!({"port": 8443, "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}), "/v1"),
            redirect(json!({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/home"}}), "/old"),
        ]),
    );
    let gw = gateway(json!([{"name": "http", "port": 8080, "protocol": "HTTP"}]));
    let m = model_of(&gw, &[r]);
    let at = |path, query| route(&m, &Request { port: 8080, query, ..get("shop.example.com", path) }).outcome;
    let redirect = |status, location: &str| Outcome::Redirect { status, location: location.into() };
    assert_eq!(at("/secure/a", "q=1"), redirect(301, "https://shop.example.com/secure/a?q=1"), "the scheme's port, left out");
    assert_eq!(at("/moved", ""), redirect(302, "http://new.example.com:8080/moved"), "302 and the listener's port by default");
    assert_eq!(at("/v1/items", ""), redirect(302, "http://shop.example.com:8443/v2/items"));
    assert_eq!(at("/v1", ""), redirect(302, "http://shop.example.com:8443/v2"));
    assert_eq!(at("/old/x", "a=b"), redirect(302, "http://shop.example.com:8080/home?a=b"));
}

/// On an HTTPS listener a redirect without a scheme keeps https and the listener's port; each
/// host gets its listener's certificate, and a host no listener takes the catch-all's 404.
#[test]
fn https_listeners_serve_their_hosts_with_their_certificates() {
    let gw = gateway(json!([
        {"name": "a", "port": 8443, "protocol": "HTTPS", "hostname": "a.example.com", "tls": {"certificateRefs": [{"name": "a-tls"}]}},
        {"name": "wild", "port": 8443, "protocol": "HTTPS", "hostname": "*.example.com", "tls": {"certificateRefs": [{"name": "wild-tls"}]}}
    ]));
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([{"matches": [prefix("/go")], "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "b.example.com"}}]},
            rule(json!([prefix("/")]), "a")]),
    );
    let secrets = [tls_secret("a-tls"), tls_secret("wild-tls")];
    let services: Vec<Service> = SERVICES.iter().map(|s| service(s)).collect();
    let routes = [r];
    let inputs = Inputs { gateway: &gw, routes: &routes, namespaces: &[], services: &services, slices: &[], secrets: &secrets };
    let m = build(&inputs, &layout());
    let certs: Vec<(Option<&str>, Option<&str>)> = m.servers.iter().map(|s| (s.hostname.as_deref(), s.certificate.as_deref())).collect();
    assert_eq!(
        certs,
        vec![
            (None, None),
            (Some("*.example.com"), Some("/etc/gw/ssl/default-wild-tls.pem")),
            (Some("a.example.com"), Some("/etc/gw/ssl/default-a-tls.pem"))
        ]
    );
    let at = |host, path| route(&m, &Request { port: 8443, ..get(host, path) });
    assert_eq!(at("a.example.com", "/go").outcome, Outcome::Redirect { status: 302, location: "https://b.example.com:8443/go".into() });
    let Outcome::Forward { backends, .. } = at("x.y.example.com", "/").outcome else { panic!() };
    assert_eq!(backends[0].status, Some(503), "no ready endpoint");
    assert_eq!(at("other.org", "/").outcome, Outcome::NotFound("no listener on port 8443 takes host other.org".into()));
}

#[test]
fn url_rewrites_replace_the_prefix_or_the_full_path_and_the_host() {
    let rewrite = |filter: Value, p: &str| json!({"matches": [prefix(p)], "filters": [{"type": "URLRewrite", "urlRewrite": filter}], "backendRefs": to("a")});
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            rewrite(json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/xyz"}}), "/foo"),
            rewrite(json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}), "/strip"),
            rewrite(json!({"hostname": "internal.local", "path": {"type": "ReplaceFullPath", "replaceFullPath": "/one"}}), "/full"),
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    let uri = |path, query| match route(&m, &Request { query, ..get("x.example.com", path) }).outcome {
        Outcome::Forward { host, uri, .. } => format!("{host} {uri}"),
        other => format!("{other:?}"),
    };
    assert_eq!(uri("/foo/bar", "a=1"), "x.example.com /xyz/bar?a=1");
    assert_eq!(uri("/foo", ""), "x.example.com /xyz");
    assert_eq!(uri("/strip/bar", ""), "x.example.com /bar");
    assert_eq!(uri("/strip", ""), "x.example.com /");
    assert_eq!(uri("/full/any/thing", ""), "internal.local /one");
}

#[test]
fn the_replacement_of_a_prefix_follows_the_gateway_apis_table() {
    let p = |s: &str| PathMatch::Prefix(s.into());
    assert_eq!(replace_prefix(&p("/foo"), "/xyz", "/foo/bar"), "/xyz/bar");
    assert_eq!(replace_prefix(&p("/foo"), "/xyz/", "/foo/bar"), "/xyz/bar");
    assert_eq!(replace_prefix(&p("/foo"), "/", "/foo/bar"), "/bar");
    assert_eq!(replace_prefix(&p("/foo"), "/", "/foo"), "/");
    assert_eq!(replace_prefix(&p("/foo"), "/xyz", "/foo/"), "/xyz/");
    assert_eq!(replace_prefix(&p("/"), "/xyz", "/foo"), "/xyz/foo");
}

#[test]
fn unservable_matches_are_left_out_and_reported() {
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([rule(json!([{"path": {"type": "RegularExpression", "value": "/re.*"}}, prefix("/ok")]), "a")]),
    );
    let m = model_of(&http_gateway(), &[r]);
    assert_eq!(m.matches.len(), 1);
    assert_eq!(served(&m, &get("x", "/ok")), "default/a:80");
    assert_eq!(m.problems[0].reason, "UnsupportedValue");
    assert!(m.problems[0].message.contains("RegularExpression"), "{:?}", m.problems);
    // Names nginx cannot match: a header with `_` (dropped by nginx), a query name with `-`
    // (not an `$arg_` suffix), a value with `$`.
    let r = route_obj(
        "r",
        "2026-01-01T00:00:00Z",
        json!([]),
        json!([
            rule(json!([{"path": {"value": "/h"}, "headers": [{"name": "x_under", "value": "1"}]}]), "a"),
            rule(json!([{"path": {"value": "/q"}, "queryParams": [{"name": "a-b", "value": "1"}]}]), "a"),
            rule(json!([{"path": {"value": "/v"}, "headers": [{"name": "x-v", "value": "$host"}]}]), "a"),
            rule(
                json!([{"path": {"value": "/ok"}, "headers": [{"name": "x-ok", "value": "1"}], "queryParams": [{"name": "a_b", "value": "1"}]}]),
                "a"
            ),
        ]),
    );
    let m = model_of(&http_gateway(), &[r]);
    assert_eq!(m.matches.iter().map(|m| m.rule).collect::<Vec<_>>(), vec![3]);
    assert_eq!(m.problems.len(), 3, "{:?}", m.problems);
    let conf = render_conf(&m, &layout(), "default/gw");
    assert!(conf.contains("if ($http_x_ok != \"1\")") && conf.contains("if ($arg_a_b != \"1\")"), "{conf}");
}

#[test]
fn reserved_internal_paths_answer_404() {
    let r = route_obj("r", "2026-01-01T00:00:00Z", json!([]), json!([rule(json!([prefix("/")]), "a")]));
    let m = model_of(&http_gateway(), &[r]);
    assert_eq!(served(&m, &get("x", "/@emu-r0/x")), "404");
}

fn tls_secret(name: &str) -> Secret {
    decode(json!({"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Q0VSVAo=", "tls.key": "S0VZCg=="}}))
}

/// A Gateway of HTTP 80 and HTTPS 443 with a certificate, host routes, a weighted split, a
/// header match, a redirect and a rewrite: the whole text, as nginx gets it.
#[test]
fn golden_conf_of_a_representative_gateway() {
    let gw = gateway(json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
         "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "shop-tls"}]}}
    ]));
    let shop = route_obj(
        "shop",
        "2026-01-01T00:00:00Z",
        json!(["shop.example.com"]),
        json!([
            {"matches": [prefix("/")], "backendRefs": [{"name": "a", "port": 80, "weight": 80}, {"name": "b", "port": 80, "weight": 20}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/foo"}, "headers": [{"name": "X-Canary", "value": "yes"}]}], "backendRefs": to("c")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/foo"}, "headers": [{"type": "RegularExpression", "name": "X-Version", "value": "v[0-9]+"}]}], "backendRefs": to("b")},
            {"matches": [exact("/old")], "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]},
            {"matches": [prefix("/api")], "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}},
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Gateway", "value": "emu"}], "add": [{"name": "X-Via", "value": "gw"}], "remove": ["X-Debug"]}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "Cache-Control", "value": "no-store"}], "add": [{"name": "X-Served-By", "value": "emu"}], "remove": ["X-Internal"]}},
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "c", "port": 80}}}],
             "backendRefs": to("a")},
        ]),
    );
    let services: Vec<Service> = SERVICES.iter().map(|s| service(s)).collect();
    let slices = vec![slice("a", &["10.244.1.2", "10.244.2.2"]), slice("b", &["10.244.1.3"])];
    let secrets = [tls_secret("shop-tls")];
    let routes = [shop];
    let inputs = Inputs { gateway: &gw, routes: &routes, namespaces: &[], services: &services, slices: &slices, secrets: &secrets };
    let model = build(&inputs, &layout());
    assert_eq!(model.problems, vec![]);
    assert_eq!(model.certificates, vec![CertFile { path: "/etc/gw/ssl/default-shop-tls.pem".into(), pem: b"CERT\nKEY\n".to_vec() }]);
    let servers: Vec<(u16, Option<&str>, Option<&str>)> =
        model.servers.iter().map(|s| (s.port, s.hostname.as_deref(), s.listener.as_deref())).collect();
    assert_eq!(
        servers,
        vec![
            (80, None, Some("http")),
            (80, Some("shop.example.com"), Some("http")),
            (443, None, None),
            (443, Some("shop.example.com"), Some("https"))
        ]
    );
    let conf = render_conf(&model, &layout(), "default/gw");
    let upstreams = crate::ingress::render_upstreams_of(&model.upstreams);
    if std::env::var_os("EMU_UPDATE_GOLDEN").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/gateway_nginx/golden");
        std::fs::write(format!("{dir}/shop.conf"), &conf).unwrap();
        std::fs::write(format!("{dir}/shop-upstreams.conf"), &upstreams).unwrap();
    }
    assert_eq!(conf, include_str!("golden/shop.conf"));
    assert_eq!(upstreams, include_str!("golden/shop-upstreams.conf"));
}
