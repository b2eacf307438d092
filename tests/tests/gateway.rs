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

/// emu's GatewayClass.
const CLASS: &str = "{apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: emu}, spec: {controllerName: emu.dev/gateway-controller}}";

const GATEWAY: &str = r#"
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

/// The address of Gateway `web` once it is Programmed (its data path's pod ready behind the
/// balancer).
fn programmed_address(c: &Cluster) -> String {
    c.wait_for("the Gateway's address, Programmed", SERVED_WITHIN, || {
        let programmed = c.emu(&["get", "gateway", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Programmed\")].status}"]).stdout;
        let address = c.emu(&["get", "gateway", "web", "-o", "jsonpath={.status.addresses[0].value}"]).stdout;
        (programmed == "True" && address.starts_with("203.0.113.")).then_some(address)
    })
}

/// Waits until 10 requests in a row to `url` get `first` as their first line. nginx applies a
/// change with a graceful reload: new workers take new connections while the old ones finish, so
/// right after a change a connection may still be served by the old configuration.
fn settled(c: &Cluster, address: &str, url: &str, first: &str) {
    let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default();
    let script = format!("for i in $(seq 10); do curl -s -m 5 --resolve {host}:80:{address} {url} | head -n 1; done");
    c.wait_for(&format!("{url} answered by {first}"), Duration::from_secs(30), || {
        let out = c.emu(&["outside", "--", "sh", "-c", &script]).stdout;
        (out.lines().count() == 10 && out.lines().all(|l| l == first)).then_some(())
    });
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
    c.apply("gateway.yaml", &format!("{CLASS}\n---\n{GATEWAY}")).ok();
    c.ready_pod("echo-a");
    c.ready_pod("echo-b");
    let address = programmed_address(&c);
    // nginx has both Services' endpoints (a reload after the pods became ready).
    settled(&c, &address, "http://shop.example.com/foo", "echo-a /foo");
    settled(&c, &address, "http://shop.example.com/api", "echo-b /v2");

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

const KUBIA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: kubia}
spec:
  replicas: 3
  selector: {matchLabels: {app: kubia}}
  template:
    metadata: {labels: {app: kubia}}
    spec:
      containers: [{name: kubia, image: luksa/kubia, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: kubia}
spec:
  selector: {app: kubia}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: emu
  listeners: [{name: http, port: 80, protocol: HTTP}]
"#;

/// The kubia route; `weights` of Services kubia and echo.
fn kubia_route(weights: (u32, u32)) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: kubia}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [kubia.example.com]
  rules:
  - backendRefs:
    - {{name: kubia, port: 80, weight: {}}}
    - {{name: echo, port: 80, weight: {}}}
",
        weights.0, weights.1
    )
}

/// Endpoint and route changes reach the Gateway's nginx with graceful reloads: a rolling restart
/// of the backend pods under 20 requests/s through the Gateway fails no request, and a route
/// changed to weights 0/100 sends every request to the other Service (weight 0 takes none).
#[test]
fn gateway_takes_endpoint_and_route_changes_without_failing_requests() {
    let c = Cluster::up("tgwdp2", &[]);
    c.apply("kubia.yaml", &format!("{CLASS}\n---\n{KUBIA}\n---\n{}\n---\n{}", echo_app("echo"), kubia_route((100, 0)))).ok();
    let before: std::collections::BTreeSet<String> = c.ready_pods("app=kubia", 3).iter().map(emu_tests::name).collect();
    c.ready_pod("echo");
    let address = programmed_address(&c);
    c.wait_for("kubia served through the Gateway", Duration::from_secs(30), || {
        let (code, _, body) = curl(&c, &address, "http://kubia.example.com/", &[]);
        (code == "200" && body.starts_with("You've hit kubia-")).then_some(())
    });

    let load = std::process::Command::new(emu_tests::emu_path())
        .args(["outside", "--cluster", "tgwdp2", "--", "bash", "-c"])
        .arg(format!(
            "fail=0; for i in $(seq 1 200); do c=$(curl -s -m 5 -o /dev/null -w '%{{http_code}}' --resolve \
             kubia.example.com:80:{address} http://kubia.example.com/); [ \"$c\" = 200 ] || fail=$((fail+1)); sleep 0.05; done; echo fail=$fail"
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    c.emu(&["rollout", "restart", "deployment", "kubia"]).ok();
    c.emu(&["rollout", "status", "deployment", "kubia", "--timeout", "60s"]).ok();
    let out = load.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fail=0\n");
    let after: std::collections::BTreeSet<String> = c.ready_pods("app=kubia", 3).iter().map(emu_tests::name).collect();
    assert!(after.is_disjoint(&before), "the pods were replaced: {after:?} {before:?}");

    // Weights 0/100: every request to echo once nginx has the new route.
    c.apply("route.yaml", &kubia_route((0, 100))).ok();
    settled(&c, &address, "http://kubia.example.com/after", "echo /after");
    let script = format!(
        "for i in $(seq 100); do curl -s -m 5 --resolve kubia.example.com:80:{address} http://kubia.example.com/z | head -n 1; done"
    );
    let out = c.emu(&["outside", "--", "sh", "-c", &script]).ok().stdout;
    assert_eq!(out.lines().filter(|l| *l == "echo /z").count(), 100, "{out}");
}
