//! The Gateway API's data path (issue 21, item 3): a Gateway of emu's class with HTTP 80 and
//! HTTPS 443 listeners is served by its own pod (emu-ingress --gateway and the real nginx) behind
//! a LoadBalancer Service, and its HTTPRoutes are reached from the outside world through the
//! Gateway's address: an 80/20 weighted split over 1,000 requests, a header match, PathPrefix by
//! path element, a RequestRedirect, a URLRewrite the pod sees, TLS with the listener's
//! certificate, 404 when nothing matches, and 500 with a Warning Event for a backendRef that does
//! not resolve.

use emu_tests::Cluster;
use std::time::Duration;

/// How long a data path may take to come up: a pod started, nginx running, the balancer's
/// health check passed.
const SERVED_WITHIN: Duration = Duration::from_secs(90);

/// The echo pods' server (python's http.server): answers `<its name> <path it received>` and the
/// request's headers.
const ECHO: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (sys.argv[1] + " " + self.path + "\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"#;

/// A pod `name` running [`ECHO`] and its Service (port 80).
fn echo_app(name: &str) -> String {
    serde_json::json!([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "echo", "image": "python", "command": ["python3", "-c", ECHO, name]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
    ])
    .as_array()
    .unwrap()
    .iter()
    .map(|o| o.to_string())
    .collect::<Vec<_>>()
    .join("\n---\n")
}

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: emu}
spec: {controllerName: emu.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: emu
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {certificateRefs: [{name: shop-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{name: web}]
  hostnames: [split.example.com]
  rules:
  - backendRefs:
    - {name: echo-a, port: 80, weight: 80}
    - {name: echo-b, port: 80, weight: 20}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: web}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /foo}}]
    backendRefs: [{name: echo-a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /foo}, headers: [{name: X-Canary, value: "yes"}]}]
    backendRefs: [{name: echo-b, port: 80}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example.com}}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
    backendRefs: [{name: echo-b, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken}
spec:
  parentRefs: [{name: web}]
  hostnames: [broken.example.com]
  rules:
  - backendRefs: [{name: no-such-service, port: 80}]
"#;

/// `curl` from the outside world with `--resolve HOST:PORT:ADDRESS`; (status, Location, body).
fn curl(c: &Cluster, address: &str, url: &str, extra: &[&str]) -> (String, String, String) {
    let (host, port) = url.split("://").nth(1).and_then(|r| r.split('/').next()).map_or(("", ""), |h| {
        let port = if url.starts_with("https") { "443" } else { "80" };
        (h, port)
    });
    let resolve = format!("{host}:{port}:{address}");
    let mut args = vec!["outside", "--", "curl", "-s", "-m", "5", "--resolve", &resolve, "-w", "\n%{http_code} %{redirect_url}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = c.emu(&args).stdout;
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", &out));
    let (code, location) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.to_string(), location.to_string(), body.to_string())
}

/// The first line of an echo pod's answer: `<pod> <path it received>`.
fn first_line(body: &str) -> &str {
    body.lines().next().unwrap_or_default()
}

#[test]
fn gateway_serves_httproutes_from_the_outside_world() {
    let c = Cluster::up("tgwdp1", &[]);
    let dir = c.scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("tls.key"), dir.join("tls.cert"));
    let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
    c.emu(&["gen", "cert", "--cn", "shop.example.com", "--key", key, "--cert", cert]).ok();
    c.emu(&["create", "secret", "tls", "shop-tls", "--cert", cert, "--key", key]).ok();
    c.apply("apps.yaml", &format!("{}\n---\n{}", echo_app("echo-a"), echo_app("echo-b"))).ok();
    c.apply("gateway.yaml", GATEWAY).ok();
    c.ready_pod("echo-a");
    c.ready_pod("echo-b");
    let address = c.wait_for("the Gateway's address, Programmed", SERVED_WITHIN, || {
        let programmed = c.emu(&["get", "gateway", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Programmed\")].status}"]).stdout;
        let address = c.emu(&["get", "gateway", "web", "-o", "jsonpath={.status.addresses[0].value}"]).stdout;
        (programmed == "True" && address.starts_with("203.0.113.")).then_some(address)
    });
    // nginx has both Services' endpoints (a reload after the pods became ready).
    c.wait_for("both backends served", Duration::from_secs(30), || {
        let a = curl(&c, &address, "http://shop.example.com/foo", &[]);
        let b = curl(&c, &address, "http://shop.example.com/api", &[]);
        (a.0 == "200" && b.0 == "200").then_some(())
    });

    // PathPrefix by path element; the header match takes precedence over the plain match.
    let (code, _, body) = curl(&c, &address, "http://shop.example.com/foo/bar", &[]);
    assert_eq!((code.as_str(), first_line(&body)), ("200", "echo-a /foo/bar"), "{body}");
    let (code, _, body) = curl(&c, &address, "http://shop.example.com/foo/bar", &["-H", "X-Canary: yes"]);
    assert_eq!((code.as_str(), first_line(&body)), ("200", "echo-b /foo/bar"), "{body}");
    // Headers to the pod as the Ingress controller sends them; the client is the outside world.
    assert!(body.contains("X-Forwarded-Proto: http") && body.contains("Host: shop.example.com"), "{body}");
    let (code, _, _) = curl(&c, &address, "http://shop.example.com/foobar", &[]);
    assert_eq!(code, "404", "/foobar is not under PathPrefix /foo");
    let (code, _, _) = curl(&c, &address, "http://nothing.example.com/foo", &[]);
    assert_eq!(code, "404", "no route for the host");

    // RequestRedirect: 301 with the scheme's own port left out; 302 by default to the listener's port.
    let (code, location, _) = curl(&c, &address, "http://shop.example.com/old?x=1", &[]);
    assert_eq!((code.as_str(), location.as_str()), ("301", "https://shop.example.com/old?x=1"));
    let (code, location, _) = curl(&c, &address, "http://shop.example.com/moved/here", &[]);
    assert_eq!((code.as_str(), location.as_str()), ("302", "http://new.example.com/moved/here"));

    // URLRewrite ReplacePrefixMatch: the pod receives /v2/... for /api/...
    let (code, _, body) = curl(&c, &address, "http://shop.example.com/api/items?id=7", &[]);
    assert_eq!((code.as_str(), first_line(&body)), ("200", "echo-b /v2/items?id=7"), "{body}");

    // HTTPS with the listener's certificate, verified with --cacert.
    let (code, _, body) = curl(&c, &address, "https://shop.example.com/foo", &["--cacert", cert]);
    assert_eq!((code.as_str(), first_line(&body)), ("200", "echo-a /foo"), "{body}");
    assert!(body.contains("X-Forwarded-Proto: https"), "{body}");

    // A backendRef that does not resolve answers 500, as the Gateway API specifies, and is
    // reported as a Warning Event on its route.
    let (code, _, _) = curl(&c, &address, "http://broken.example.com/", &[]);
    assert_eq!(code, "500");
    let events = c.wait_for("the BackendNotFound Event", Duration::from_secs(10), || {
        let d = c.emu(&["describe", "httproute", "broken"]).ok().stdout;
        d.contains("Warning  BackendNotFound").then_some(d)
    });
    assert!(events.contains("emu-gateway  Service default/no-such-service not found: its share of requests answers 500"), "{events}");

    // Weights 80/20 over 1,000 requests, within ±5 % (of the requests: 750 to 850 on echo-a).
    let resolve = format!("split.example.com:80:{address}");
    let script = format!("for i in $(seq 1000); do curl -s -m 5 --resolve {resolve} http://split.example.com/w | head -n 1; done");
    let out = c.emu(&["outside", "--", "sh", "-c", &script]).ok().stdout;
    let a = out.lines().filter(|l| *l == "echo-a /w").count();
    let b = out.lines().filter(|l| *l == "echo-b /w").count();
    eprintln!("80/20 split over 1000 requests: echo-a {a}, echo-b {b}");
    assert_eq!(a + b, 1000, "every request answered by a backend:\n{out}");
    assert!((750..=850).contains(&a), "echo-a got {a} of 1000 requests, echo-b {b}");
}
