//! explain against what the rendered nginx does: server choice, location choice, the rewrite
//! phase (308, default backend, 503, rewrite), access, and the endpoints. The rewrites, the 301 of a
//! location without its slash and the consistent hash were checked against nginx 1.22.1 on loopback.

use super::super::tests::{class, ingress, path, service, slice, World};
use super::*;
use emu_api::typed::Ingress;
use serde_json::{json, Value};

/// An endpoint of pod `pod` at `ip`.
fn ep(ip: &str, pod: &str, ready: bool) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}})
}

/// Services kubia (three pods, one not ready), headers (one pod) and empty (no pod), and the
/// given Ingresses.
fn world(ingresses: Vec<Ingress>) -> World {
    let mut w = super::super::tests::kubia();
    w.ingresses = ingresses;
    w.services.push(service("headers", json!([{"port": 80, "targetPort": 8080}])));
    w.services.push(service("empty", json!([{"port": 80, "targetPort": 8080}])));
    w.slices = vec![
        slice(
            "kubia",
            json!([{"name": "web", "port": 8080}]),
            json!([ep("10.244.1.3", "kubia-b", true), ep("10.244.1.2", "kubia-a", true), ep("10.244.2.2", "kubia-c", false)]),
        ),
        slice("headers", json!([{"port": 8080}]), json!([ep("10.244.2.9", "headers", true)])),
    ];
    w
}

fn kubia_path(p: &str, kind: &str) -> Value {
    path(p, kind, "kubia", json!({"number": 80}))
}

fn headers_path(p: &str, kind: &str) -> Value {
    path(p, kind, "headers", json!({"number": 80}))
}

fn rules(host: &str, paths: Vec<Value>) -> Value {
    json!({"rules": [{"host": host, "http": {"paths": paths}}]})
}

fn ask(w: &World, url: &str, headers: &[&str], client: Option<&str>) -> Decision {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let req = parse_request(url, &headers, client).unwrap();
    explain(&w.inputs(), &w.model(), &req)
}

fn status(d: &Decision) -> u16 {
    match &d.answer {
        Answer::Status { code, .. } | Answer::Redirect { code, .. } => *code,
        Answer::Proxy(_) => 0,
    }
}

fn proxy(d: &Decision) -> &Proxy {
    match &d.answer {
        Answer::Proxy(p) => p,
        other => panic!("not proxied: {other:?}\n{}", d.text()),
    }
}

fn pods(d: &Decision) -> Vec<&str> {
    proxy(d).endpoints.iter().map(|e| e.pod.as_deref().unwrap()).collect()
}

fn matched(d: &Decision) -> (String, String, String) {
    let l = d.location.as_ref().unwrap_or_else(|| panic!("no location: {}", d.text()));
    (l.ingress.clone(), l.path.clone(), l.path_type.clone())
}

fn reason_of<'a>(d: &'a Decision, path: &str, kind: &str) -> &'a str {
    &d.others.iter().find(|o| o.path == path && o.path_type == kind).unwrap_or_else(|| panic!("{path} {kind}: {}", d.text())).reason
}

#[test]
fn a_prefix_rule_proxies_to_the_ready_pods_of_its_service() {
    let w =
        world(vec![ingress("kubia", "2026-01-01T00:00:00Z", json!({}), rules("kubia.example.com", vec![kubia_path("/foo", "Prefix")]))]);
    let d = ask(&w, "http://kubia.example.com/foo/bar?x=1", &[], None);
    assert_eq!(d.class, Class { name: "nginx".into(), controller: Some("k8s.io/ingress-nginx".into()), default: true });
    assert_eq!((d.server.name.as_str(), d.server.how), ("kubia.example.com", "exact"));
    assert_eq!(matched(&d), ("default/kubia".into(), "/foo".into(), "Prefix".into()));
    let l = d.location.as_ref().unwrap();
    assert_eq!((l.matcher.as_str(), l.service.as_deref(), l.port.as_deref()), ("/foo/", Some("default/kubia"), Some("80")));
    let p = proxy(&d);
    assert_eq!(p.upstream, "default-kubia-80");
    assert_eq!(p.uri, "/foo/bar?x=1", "no rewrite: the pod gets the client's own URI");
    // The not-ready pod is not an endpoint.
    assert_eq!(pods(&d), ["default/kubia-a", "default/kubia-b"]);
    assert_eq!(p.endpoints[0].address, "10.244.1.2:8080");
    assert!(p.headers.contains(&("X-Forwarded-Proto".into(), "http".into())));
    let text = d.text();
    assert!(text.contains("Matched:       ingress/default/kubia path /foo (Prefix), nginx location /foo/"), "{text}");
    assert!(text.contains("10.244.1.2:8080       pod/default/kubia-a"), "{text}");
    // The Host header is the URL's, lowercased, port and trailing dot removed.
    let d = ask(&w, "http://KUBIA.example.com.:8080/foo", &[], None);
    assert_eq!(d.host, "kubia.example.com");
    assert!(d.notes.iter().any(|n| n.contains("port 8080")), "{:?}", d.notes);
}

#[test]
fn exact_beats_prefix_prefix_matches_by_element_and_the_longest_prefix_wins() {
    let w = world(vec![ingress(
        "paths",
        "2026-01-01T00:00:00Z",
        json!({}),
        rules(
            "paths.example.com",
            vec![
                kubia_path("/foo", "Exact"),
                headers_path("/foo", "Prefix"),
                kubia_path("/foo/bar", "Prefix"),
                headers_path("/img", "ImplementationSpecific"),
            ],
        ),
    )]);
    let d = ask(&w, "http://paths.example.com/foo", &[], None);
    assert_eq!(matched(&d).2, "Exact");
    assert_eq!(d.location.as_ref().unwrap().matcher, "= /foo");
    assert_eq!(reason_of(&d, "/foo", "Prefix"), "Exact /foo beats Prefix /foo");

    let d = ask(&w, "http://paths.example.com/foo/x", &[], None);
    assert_eq!(matched(&d).1, "/foo");
    assert_eq!(pods(&d), ["default/headers"]);
    assert_eq!(reason_of(&d, "/foo", "Exact"), "/foo/x is not exactly /foo");

    let d = ask(&w, "http://paths.example.com/foo/bar/baz", &[], None);
    assert_eq!(matched(&d).1, "/foo/bar");
    assert_eq!(reason_of(&d, "/foo", "Prefix"), "it matches too, but the longer prefix /foo/bar wins");

    // /foobar: not under /foo (by element); ImplementationSpecific is nginx's string prefix.
    let d = ask(&w, "http://paths.example.com/foobar", &[], None);
    assert_eq!(status(&d), 404);
    assert!(d.location.is_none());
    assert_eq!(reason_of(&d, "/foo", "Prefix"), "/foobar is not under Prefix /foo: Prefix matches by path element (/foo or /foo/...)");
    let d = ask(&w, "http://paths.example.com/imgs/a.png", &[], None);
    assert_eq!(matched(&d).1, "/img");

    // nginx's normalisation comes first: //foo/./x/../bar is /foo/bar.
    let d = ask(&w, "http://paths.example.com//foo/./x/../bar", &[], None);
    assert_eq!((d.uri.as_str(), matched(&d).1.as_str()), ("/foo/bar", "/foo/bar"));
    assert_eq!(proxy(&d).uri, "//foo/./x/../bar", "unrewritten, the pod gets the request's URI as sent");
}

#[test]
fn hosts_exact_wildcard_and_the_catch_all() {
    let w = world(vec![
        ingress("star", "2026-01-01T00:00:00Z", json!({}), rules("*.example.com", vec![kubia_path("/", "Prefix")])),
        ingress("exact", "2026-01-01T00:00:01Z", json!({}), rules("api.example.com", vec![headers_path("/", "Prefix")])),
    ]);
    let d = ask(&w, "http://api.example.com/", &[], None);
    assert_eq!((d.server.how, pods(&d)), ("exact", vec!["default/headers"]));
    let d = ask(&w, "http://www.example.com/", &[], None);
    assert_eq!((d.server.name.as_str(), d.server.how), ("*.example.com", "wildcard"));
    assert_eq!(matched(&d).0, "default/star");
    assert_eq!(reason_of(&d, "/", "Prefix"), "its host api.example.com is not www.example.com");
    // Two labels: not under the one-label wildcard, so the catch-all's default backend.
    let d = ask(&w, "http://a.b.example.com/", &[], None);
    assert_eq!(d.server.how, "catch-all");
    assert!(d.server.reason.contains("*.example.com matches exactly one DNS label, and a.b is not one"), "{}", d.server.reason);
    assert_eq!(status(&d), 404);
    assert!(matches!(&d.answer, Answer::Status { reason, .. } if reason.starts_with("the controller's default backend")));
    // A Host header replaces the URL's host (curl -H 'Host: ...' to the balancer's address).
    let d = ask(&w, "http://203.0.113.10/", &["Host: api.example.com"], None);
    assert_eq!(d.server.name, "api.example.com");
    let d = ask(&w, "http://203.0.113.10/", &[], None);
    assert!(d.server.reason.starts_with("no Ingress rule's host is 203.0.113.10"), "{}", d.server.reason);
    // The controller's own health check.
    assert_eq!(status(&ask(&w, "http://203.0.113.10/healthz", &[], None)), 200);
}

#[test]
fn tls_hosts_redirect_http_with_308_and_force_ssl_redirect_others() {
    let mut w = world(vec![]);
    w.ingresses = super::super::tests::kubia().ingresses;
    w.ingresses.push(ingress(
        "forced",
        "2026-01-01T00:00:01Z",
        json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
        rules("plain.example.com", vec![kubia_path("/", "Prefix")]),
    ));
    let d = ask(&w, "http://kubia.example.com/a?b=c", &[], None);
    assert_eq!(
        d.answer,
        Answer::Redirect {
            code: 308,
            location: "https://kubia.example.com/a?b=c".into(),
            reason:
                "kubia.example.com is a TLS host of default/kubia (spec.tls; ssl-redirect is true by default): HTTP is redirected to HTTPS"
                    .into()
        }
    );
    let d = ask(&w, "https://kubia.example.com/a", &[], None);
    assert_eq!(d.server.certificate.as_deref(), Some("/etc/ingress/ssl/default-tls-secret.pem"));
    assert_eq!(proxy(&d).headers[5], ("X-Forwarded-Proto".into(), "https".into()));
    assert!(d.notes.iter().any(|n| n.contains("Strict-Transport-Security")));
    let d = ask(&w, "http://plain.example.com/", &[], None);
    assert!(matches!(&d.answer, Answer::Redirect { code: 308, reason, .. } if reason.contains("force-ssl-redirect")));
}

#[test]
fn rewrite_target_substitutes_the_captures_as_nginx_does() {
    let annotations = json!({"nginx.ingress.kubernetes.io/use-regex": "true", "nginx.ingress.kubernetes.io/rewrite-target": "/$2"});
    let w = world(vec![
        ingress(
            "rewrite",
            "2026-01-01T00:00:00Z",
            annotations,
            rules("rewrite.example.com", vec![headers_path("/something(/|$)(.*)", "ImplementationSpecific")]),
        ),
        ingress(
            "empty",
            "2026-01-01T00:00:01Z",
            json!({"nginx.ingress.kubernetes.io/rewrite-target": "$1"}),
            rules("empty.example.com", vec![headers_path("/x(/?)", "Prefix")]),
        ),
        ingress(
            "args",
            "2026-01-01T00:00:02Z",
            json!({"nginx.ingress.kubernetes.io/rewrite-target": "/v2/$1?from=$host"}),
            rules("args.example.com", vec![headers_path("/api/(.*)", "Prefix")]),
        ),
    ]);
    let d = ask(&w, "http://rewrite.example.com/something/new/path?q=1", &[], None);
    let p = proxy(&d);
    assert_eq!(p.uri, "/new/path?q=1");
    assert_eq!(p.rewrite.as_ref().unwrap().pattern, "(?i)/something(/|$)(.*)");
    assert_eq!(d.location.as_ref().unwrap().matcher, "~* \"^/something(/|$)(.*)\"");
    assert_eq!(proxy(&ask(&w, "http://rewrite.example.com/something", &[], None)).uri, "/");
    // Case-insensitive, as ~* is; a space in the captured part is escaped again for the pod.
    assert_eq!(proxy(&ask(&w, "http://rewrite.example.com/SOMETHING/a%20b", &[], None)).uri, "/a%20b");
    assert_eq!(proxy(&ask(&w, "http://rewrite.example.com/something/a%3Fb", &[], None)).uri, "/a%3Fb");
    // No location of the regex host matches: nginx's own 404.
    let d = ask(&w, "http://rewrite.example.com/somethingelse", &[], None);
    assert_eq!(status(&d), 404);
    assert_eq!(
        reason_of(&d, "/something(/|$)(.*)", "ImplementationSpecific"),
        "the case-insensitive regex ^/something(/|$)(.*) does not match /somethingelse"
    );
    // A zero-length result is nginx's 500.
    assert_eq!(status(&ask(&w, "http://empty.example.com/x", &[], None)), 500);
    // A `?` in the replacement: its arguments, then the client's.
    assert_eq!(proxy(&ask(&w, "http://args.example.com/api/users?id=7", &[], None)).uri, "/v2/users?from=args.example.com&id=7");
}

#[test]
fn regex_locations_are_tried_longest_first() {
    let w = world(vec![ingress(
        "re",
        "2026-01-01T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/use-regex": "true"}),
        rules("re.example.com", vec![kubia_path("/a", "Prefix"), headers_path("/a/b.*", "ImplementationSpecific")]),
    )]);
    let d = ask(&w, "http://re.example.com/a/bc", &[], None);
    assert_eq!(matched(&d).1, "/a/b.*");
    assert_eq!(
        reason_of(&d, "/a", "Prefix"),
        "it matches too, but regex locations are tried in order (longest path first) and an earlier one matched"
    );
    // A regex Prefix path is a string prefix: /ab is taken by ^/a.
    assert_eq!(matched(&ask(&w, "http://re.example.com/ab", &[], None)).1, "/a");
}

#[test]
fn default_backends_missing_services_and_no_endpoints() {
    let w = world(vec![
        ingress(
            "fallback",
            "2026-01-01T00:00:00Z",
            json!({}),
            json!({"defaultBackend": {"service": {"name": "headers", "port": {"number": 80}}}}),
        ),
        ingress(
            "broken",
            "2026-01-01T00:00:01Z",
            json!({}),
            json!({"tls": [{"hosts": ["broken.example.com"], "secretName": "gone"}],
                   "rules": [{"host": "broken.example.com", "http": {"paths": [path("/", "Prefix", "nosuch", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "idle",
            "2026-01-01T00:00:02Z",
            json!({}),
            rules("idle.example.com", vec![path("/", "Prefix", "empty", json!({"number": 80}))]),
        ),
    ]);
    // An Ingress's defaultBackend takes the catch-all's `/` instead of the controller's 404.
    let d = ask(&w, "http://unknown.example.com/x", &[], None);
    assert_eq!(d.server.how, "catch-all");
    assert_eq!(matched(&d), ("default/fallback".into(), "/".into(), "Prefix".into()));
    assert_eq!(pods(&d), ["default/headers"]);
    // The 503's reason is the Service; the Ingress's other Warning is a note.
    let d = ask(&w, "https://broken.example.com/", &[], None);
    assert_eq!(
        d.answer,
        Answer::Status { code: 503, reason: "the backend cannot be served (MissingService: service \"default/nosuch\" not found)".into() }
    );
    assert_eq!(
        d.notes,
        [
            "ingress default/broken has a Warning MissingSecret: secret \"default/gone\" not found: serving the default certificate",
            "server broken.example.com has no certificate of its own: nginx presents the controller's default (self-signed) certificate",
        ]
    );
    let d = ask(&w, "http://idle.example.com/", &[], None);
    assert!(
        matches!(&d.answer, Answer::Status { code: 503, reason } if reason.starts_with("Service empty:80 has no ready endpoints")),
        "{:?}",
        d.answer
    );
}

#[test]
fn whitelist_source_range_denies_other_clients() {
    let w = world(vec![ingress(
        "internal",
        "2026-01-01T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8, 192.168.1.7"}),
        rules("internal.example.com", vec![kubia_path("/", "Prefix")]),
    )]);
    let url = "http://internal.example.com/";
    assert_eq!(status(&ask(&w, url, &[], Some("198.51.100.1"))), 403);
    assert_eq!(pods(&ask(&w, url, &[], Some("10.1.2.3"))).len(), 2);
    assert_eq!(pods(&ask(&w, url, &[], Some("192.168.1.7"))).len(), 2);
    let d = ask(&w, url, &[], None);
    assert_eq!(proxy(&d).allowed_from, ["10.0.0.0/8", "192.168.1.7"]);
}

#[test]
fn cookie_affinity_picks_one_endpoint_by_nginx_s_consistent_hash() {
    let w = world(vec![ingress(
        "sticky",
        "2026-01-01T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/affinity": "cookie", "nginx.ingress.kubernetes.io/session-cookie-name": "route"}),
        rules("sticky.example.com", vec![kubia_path("/", "Prefix")]),
    )]);
    let d = ask(&w, "http://sticky.example.com/", &[], None);
    assert_eq!(proxy(&d).affinity, Some(Affinity { cookie: "route".into(), value: None }));
    assert_eq!(pods(&d).len(), 2, "without the cookie any endpoint");
    let d = ask(&w, "http://sticky.example.com/", &["Cookie: a=1; route=abc"], None);
    assert_eq!(proxy(&d).affinity.as_ref().unwrap().value.as_deref(), Some("abc"));
    assert_eq!(pods(&d).len(), 1);
    // Each server owns 160 points: the keys spread over both.
    let servers = vec!["10.244.1.2:8080".to_string(), "10.244.1.3:8080".to_string()];
    let picked: std::collections::BTreeSet<&str> = (0..50).map(|i| chash_pick(&servers, &format!("key{i}"))).collect();
    assert_eq!(picked.len(), 2);
    // CRC-32 as nginx computes it (the check value of the IEEE polynomial).
    assert_eq!(crc32_update(u32::MAX, b"123456789") ^ u32::MAX, 0xCBF4_3926);
}

#[test]
fn a_proxied_prefix_location_without_its_slash_is_redirected() {
    let w = world(vec![ingress(
        "slash",
        "2026-01-01T00:00:00Z",
        json!({}),
        rules("slash.example.com", vec![kubia_path("/docs/", "Prefix"), headers_path("/", "Prefix")]),
    )]);
    // Even with `/` matching it too, as nginx 1.22 answered on loopback.
    let d = ask(&w, "http://slash.example.com/docs?p=1", &[], None);
    assert_eq!(
        d.answer,
        Answer::Redirect {
            code: 301,
            location: "http://slash.example.com/docs/?p=1".into(),
            reason:
                "/docs is location /docs/ without its trailing /: nginx redirects a proxied prefix location's name without the slash to it"
                    .into()
        }
    );
    assert_eq!(pods(&ask(&w, "http://slash.example.com/docsx", &[], None)), ["default/headers"]);
}

#[test]
fn ingresses_of_other_classes_are_listed_with_why() {
    let mut other = ingress("other", "2026-01-01T00:00:00Z", json!({}), rules("kubia.example.com", vec![kubia_path("/", "Prefix")]));
    other.spec.as_mut().unwrap().ingress_class_name = Some("traefik".into());
    let mut w = world(vec![other]);
    w.classes = vec![class(false)];
    w.ingresses.push(ingress("classless", "2026-01-01T00:00:00Z", json!({}), rules("a.example.com", vec![kubia_path("/", "Prefix")])));
    let d = ask(&w, "http://kubia.example.com/", &[], None);
    assert_eq!(d.server.how, "catch-all");
    assert_eq!(
        d.ignored,
        [
            Ignored { ingress: "default/other".into(), reason: "its ingressClassName is traefik, not nginx".into() },
            Ignored {
                ingress: "default/classless".into(),
                reason: "it names no class and IngressClass nginx is not the default class".into()
            },
        ]
    );
}

#[test]
fn nginx_normalises_the_uri_before_matching() {
    assert_eq!(normalize("/a//b/./c/../d").unwrap(), "/a/b/d");
    assert_eq!(normalize("/a/%2e%2e/b%2Fc").unwrap(), "/b/c");
    assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
    assert_eq!(normalize("/").unwrap(), "/");
    assert!(normalize("/../etc").is_err());
    assert!(normalize("/%zz").is_err());
    let w = world(vec![]);
    assert_eq!(status(&ask(&w, "http://x.example.com/../a", &[], None)), 400);
}

#[test]
fn bad_arguments_name_the_argument_and_the_fix() {
    let err =
        |url: &str, headers: &[&str]| parse_request(url, &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(), None).unwrap_err();
    assert_eq!(
        err("kubia.example.com/foo", &[]),
        "URL \"kubia.example.com/foo\" has no scheme: write it as http://kubia.example.com/foo or https://kubia.example.com/foo (the request explain follows is the one curl would send)"
    );
    assert_eq!(err("ftp://x/", &[]), "URL \"ftp://x/\": scheme \"ftp\" is not served by an Ingress: use http:// or https://");
    assert_eq!(err("http://x:99999/", &[]), "URL \"http://x:99999/\": port \"99999\" is not a port number (1-65535)");
    assert!(err("http:///foo", &[]).contains("is not a URL"));
    assert!(err("http://x/a b", &[]).contains("percent-encode it"));
    assert_eq!(
        err("http://x/", &["Host kubia.example.com"]),
        "--header \"Host kubia.example.com\" is not of the form 'Name: value' (e.g. --header 'Host: kubia.example.com')"
    );
    assert!(parse_request("http://x/", &[], Some("nobody")).unwrap_err().starts_with("--client-ip \"nobody\""));
    let r = parse_request("https://[fd00::1]:8443/p?q#frag", &["host: a.example.com".into()], None).unwrap();
    assert_eq!((r.host.as_str(), r.port, r.path.as_str(), r.query.as_deref()), ("[fd00::1]", 8443, "/p", Some("q")));
    assert_eq!(r.nginx_host(), "a.example.com");
}

/// The servers nginx 1.22.1 (nginx-light) picked with `hash $http_x_key consistent` over three
/// servers for keys k0..k19, measured on loopback: explain's hash must give the same.
#[test]
fn the_consistent_hash_is_nginx_s() {
    let servers: Vec<String> = ["127.0.0.1:18181", "127.0.0.1:18182", "127.0.0.1:18183"].iter().map(|s| s.to_string()).collect();
    let measured = "c c c c b c b c c a b c a c c b a b c c";
    let name = |s: &str| match s {
        "127.0.0.1:18181" => "a",
        "127.0.0.1:18182" => "b",
        _ => "c",
    };
    let picked: Vec<&str> = (0..20).map(|i| name(chash_pick(&servers, &format!("k{i}")))).collect();
    assert_eq!(picked.join(" "), measured);
}
