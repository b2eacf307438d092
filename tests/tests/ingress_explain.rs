//! `emu ingress explain URL` (issue 21, item 4) against the real thing: for a matching path, a
//! path that is no path element's, the default backend, the 308 of a TLS host, a rewrite, a
//! missing Service, a source range and cookie affinity, explain's prediction (status code, pod
//! set, the URI the pod sees, the redirect's location) is what curl through the ingress
//! controller gets; likewise through a Gateway's data path for its HTTPRoutes.

use emu_tests::{name, Cluster};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: kubia}
spec:
  replicas: 2
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
# Answers with the request line's target, so the rewritten URI is seen.
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: python
    command:
    - python3
    - -c
    - |
      import http.server
      class H(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              body = self.path.encode()
              self.send_response(200)
              self.send_header("Content-Length", str(len(body)))
              self.end_headers()
              self.wfile.write(body)
      http.server.HTTPServer(("", 8080), H).serve_forever()
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: web, port: 8000, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: kubia}
spec:
  tls:
  - hosts: [secure.example.com]
    secretName: tls-secret
  rules:
  - host: kubia.example.com
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: kubia, port: {number: 80}}}}
      - {path: /foo/exact, pathType: Exact, backend: {service: {name: echo, port: {name: web}}}}
  - host: secure.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: kubia, port: {number: 80}}}}
  - host: broken.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: nosuch, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
spec:
  rules:
  - host: rewrite.example.com
    http:
      paths:
      - {path: /something(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: echo, port: {number: 8000}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: internal
  annotations:
    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8
spec:
  rules:
  - host: internal.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: kubia, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sticky
  annotations:
    nginx.ingress.kubernetes.io/affinity: cookie
    nginx.ingress.kubernetes.io/session-cookie-name: route
spec:
  rules:
  - host: sticky.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: kubia, port: {number: 80}}}}
"#;

/// What curl gets through the controller's balancer address: (status, body, redirect URL).
struct Got {
    code: String,
    body: String,
    redirect: String,
}

fn curl(c: &Cluster, address: &str, url: &str, extra: &[&str]) -> Got {
    let host = url.split("://").nth(1).and_then(|r| r.split(['/', ':']).next()).unwrap();
    let port = if url.starts_with("https") { 443 } else { 80 };
    let resolve = format!("{host}:{port}:{address}");
    let mut args = vec!["outside", "--", "curl", "-s", "-k", "-m", "5", "--resolve", &resolve, "-w", "\n%{http_code} %{redirect_url}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = c.emu(&args).stdout;
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", &out));
    let (code, redirect) = tail.split_once(' ').unwrap_or((tail, ""));
    Got { code: code.into(), body: body.into(), redirect: redirect.into() }
}

/// `emu ingress explain URL -o json`.
fn explain(c: &Cluster, url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["ingress", "explain", url, "-o", "json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&c.emu(&args).ok().stdout).expect("explain -o json prints JSON")
}

/// The pods explain says the request may reach.
fn predicted_pods(d: &Value) -> BTreeSet<String> {
    assert_eq!(d["answer"]["type"], "proxy", "{d:#}");
    d["answer"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pod"].as_str().unwrap().trim_start_matches("default/").to_string())
        .collect()
}

#[test]
fn explain_predicts_what_the_ingress_answers() {
    let c = Cluster::up("tiexpl", &["--nodes", "2"]);

    // Without the add-on, explain says how to get one.
    let off = c.emu(&["ingress", "explain", "http://kubia.example.com/"]);
    assert_eq!(off.code, 1);
    assert!(off.stderr.contains("the ingress add-on is not enabled") && off.stderr.contains("emu addons enable ingress"), "{}", off.stderr);
    // Bad input: the argument and the fix.
    let bad = c.emu(&["ingress", "explain", "kubia.example.com/foo"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("URL \"kubia.example.com/foo\" has no scheme: write it as http://kubia.example.com/foo"), "{}", bad.stderr);
    let bad = c.emu(&["ingress", "explain", "http://kubia.example.com/", "--header", "Host kubia"]);
    assert!(bad.stderr.contains("--header \"Host kubia\" is not of the form 'Name: value'"), "{}", bad.stderr);

    c.emu(&["addons", "enable", "ingress"]).ok();
    let address = c.wait_for("the controller Service's EXTERNAL-IP", Duration::from_secs(30), || {
        let ip = c
            .emu(&["get", "svc", "ingress-nginx-controller", "-n", "ingress-nginx", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])
            .stdout;
        (!ip.is_empty()).then_some(ip)
    });
    let dir = c.scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("tls.key"), dir.join("tls.crt"));
    let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
    c.emu(&["gen", "cert", "--cn", "secure.example.com", "--key", key, "--cert", cert]).ok();
    c.emu(&["create", "secret", "tls", "tls-secret", "--cert", cert, "--key", key]).ok();
    c.apply("objects.yaml", OBJECTS).ok();
    let kubias: BTreeSet<String> = c.ready_pods("app=kubia", 2).iter().map(name).collect();
    c.ready_pod("echo");
    // nginx has both Services' endpoints (503 until then).
    c.wait_for("the endpoints in nginx", Duration::from_secs(30), || {
        let kubia = curl(&c, &address, "http://kubia.example.com/foo", &[]).code;
        let echo = curl(&c, &address, "http://rewrite.example.com/something", &[]).code;
        (kubia == "200" && echo == "200").then_some(())
    });

    // A matching path: Prefix /foo takes /foo/bar, to the kubia pods; curl reaches those and
    // only those.
    let d = explain(&c, "http://kubia.example.com/foo/bar", &[]);
    assert_eq!((d["location"]["ingress"].as_str(), d["location"]["path"].as_str()), (Some("default/kubia"), Some("/foo")), "{d:#}");
    assert_eq!(d["location"]["path_type"], "Prefix");
    assert_eq!(d["server"]["how"], "exact");
    assert_eq!(predicted_pods(&d), kubias);
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let got = curl(&c, &address, "http://kubia.example.com/foo/bar", &[]);
        assert_eq!(got.code, "200", "{}", got.body);
        seen.insert(got.body.strip_prefix("You've hit ").unwrap_or(&got.body).trim().to_string());
        if seen == kubias {
            break;
        }
    }
    assert_eq!(seen, kubias, "curl reaches the pods explain names");
    let text = c.emu(&["ingress", "explain", "http://kubia.example.com/foo/bar"]).ok().stdout;
    assert!(text.contains("Matched:       ingress/default/kubia path /foo (Prefix), nginx location /foo/"), "{text}");
    assert!(text.contains("Backend:       service/default/kubia port 80"), "{text}");

    // Exact /foo/exact to the echo pod, with its named port.
    let d = explain(&c, "http://kubia.example.com/foo/exact", &[]);
    assert_eq!(predicted_pods(&d), BTreeSet::from(["echo".to_string()]));
    assert_eq!(curl(&c, &address, "http://kubia.example.com/foo/exact", &[]).body, "/foo/exact");

    // /foobar is not under Prefix /foo: 404, as curl gets.
    let d = explain(&c, "http://kubia.example.com/foobar", &[]);
    assert_eq!((d["answer"]["type"].as_str(), d["answer"]["code"].as_u64()), (Some("status"), Some(404)), "{d:#}");
    let why = d["others"].as_array().unwrap().iter().find(|o| o["path"] == "/foo" && o["host"] == "kubia.example.com").unwrap();
    assert_eq!(why["reason"], "/foobar is not under Prefix /foo: Prefix matches by path element (/foo or /foo/...)");
    assert_eq!(curl(&c, &address, "http://kubia.example.com/foobar", &[]).code, "404");

    // An unknown host: the catch-all server and the controller's default backend, 404.
    let d = explain(&c, "http://nobody.example.com/", &[]);
    assert_eq!(d["server"]["how"], "catch-all");
    assert_eq!(d["answer"]["code"], 404);
    assert!(d["answer"]["reason"].as_str().unwrap().starts_with("the controller's default backend"), "{d:#}");
    let got = curl(&c, &address, "http://nobody.example.com/", &[]);
    assert_eq!(got.code, "404", "{}", got.body);

    // HTTP to a TLS host: 308 to https, the location curl is given.
    let d = explain(&c, "http://secure.example.com/x?y=1", &[]);
    assert_eq!((d["answer"]["type"].as_str(), d["answer"]["code"].as_u64()), (Some("redirect"), Some(308)), "{d:#}");
    assert_eq!(d["answer"]["location"], "https://secure.example.com/x?y=1");
    let got = curl(&c, &address, "http://secure.example.com/x?y=1", &[]);
    assert_eq!((got.code.as_str(), got.redirect.as_str()), ("308", "https://secure.example.com/x?y=1"));
    // Over HTTPS the same host is proxied to the kubia pods.
    let d = explain(&c, "https://secure.example.com/x", &[]);
    assert_eq!(predicted_pods(&d), kubias);
    assert_eq!(curl(&c, &address, "https://secure.example.com/x", &[]).code, "200");

    // rewrite-target /$2: the URI explain computes is the one the pod sees.
    let d = explain(&c, "http://rewrite.example.com/something/new/path?q=1", &[]);
    assert_eq!(d["answer"]["uri"], "/new/path?q=1", "{d:#}");
    assert_eq!(d["answer"]["rewrite"]["result"], "/new/path");
    assert_eq!(predicted_pods(&d), BTreeSet::from(["echo".to_string()]));
    assert_eq!(curl(&c, &address, "http://rewrite.example.com/something/new/path?q=1", &[]).body, "/new/path?q=1");
    let d = explain(&c, "http://rewrite.example.com/SOMETHING", &[]);
    assert_eq!(d["answer"]["uri"], "/");
    assert_eq!(curl(&c, &address, "http://rewrite.example.com/SOMETHING", &[]).body, "/");

    // A backend Service that does not exist: 503 with the renderer's reason.
    let d = explain(&c, "http://broken.example.com/", &[]);
    assert_eq!(d["answer"]["code"], 503);
    assert!(d["answer"]["reason"].as_str().unwrap().contains("MissingService: service \"default/nosuch\" not found"), "{d:#}");
    assert_eq!(curl(&c, &address, "http://broken.example.com/", &[]).code, "503");

    // whitelist-source-range: the outside world's client (198.51.100.1, kept by the controller
    // Service's externalTrafficPolicy Local) is not in 10.0.0.0/8: 403.
    let d = explain(&c, "http://internal.example.com/", &["--client-ip", "198.51.100.1"]);
    assert_eq!(d["answer"]["code"], 403, "{d:#}");
    assert_eq!(curl(&c, &address, "http://internal.example.com/", &[]).code, "403");
    let d = explain(&c, "http://internal.example.com/", &[]);
    assert_eq!(d["answer"]["allowed_from"], serde_json::json!(["10.0.0.0/8"]), "{d:#}");

    // Cookie affinity: the cookie's value picks one pod by nginx's consistent hash; curl with
    // that cookie lands there every time.
    for value in ["alpha", "bravo", "charlie", "delta"] {
        let cookie = format!("Cookie: route={value}");
        let d = explain(&c, "http://sticky.example.com/", &["-H", &cookie]);
        let pods = predicted_pods(&d);
        assert_eq!(pods.len(), 1, "{d:#}");
        for _ in 0..3 {
            let got = curl(&c, &address, "http://sticky.example.com/", &["-H", &cookie]);
            let pod = got.body.strip_prefix("You've hit ").unwrap_or(&got.body).trim().to_string();
            assert!(pods.contains(&pod), "cookie route={value}: explain said {pods:?}, nginx sent it to {pod}");
        }
    }
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
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{name: web}]
  hostnames: [gw.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
    backendRefs: [{name: echo, port: 8000}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}}]
"#;

/// A URL whose address is a Gateway's is explained through that Gateway's data path (the
/// HTTPRoute rule, its rewrite or redirect, the pods), and curl through it agrees.
#[test]
fn explain_follows_a_gateway_s_httproutes() {
    let c = Cluster::up("tiexgw", &["--nodes", "2"]);
    let echo: String = OBJECTS.split("---").filter(|d| d.contains("name: echo")).collect::<Vec<_>>().join("---");
    c.apply("echo.yaml", &echo).ok();
    c.apply("gateway.yaml", GATEWAY).ok();
    c.ready_pod("echo");
    let address = c.wait_for("the Gateway's address", Duration::from_secs(90), || {
        let ip = c.emu(&["get", "gateway", "web", "-o", "jsonpath={.status.addresses[0].value}"]).stdout;
        (!ip.is_empty()).then_some(ip)
    });
    let host = "Host: gw.example.com";
    let url = |path: &str| format!("http://{address}{path}");
    c.wait_for("the route in the Gateway's nginx", Duration::from_secs(30), || {
        (curl(&c, &address, &url("/api/x"), &["-H", host]).code == "200").then_some(())
    });

    let d = explain(&c, &url("/api/users?id=1"), &["-H", host]);
    assert_eq!(d["gateway"], "default/web", "{d:#}");
    assert_eq!(d["why"], format!("the URL's address {address} is Gateway default/web's (status.addresses)"));
    assert_eq!((d["route"].as_str(), d["rule"].as_u64(), d["path"].as_str()), (Some("default/api"), Some(0), Some("PathPrefix /api")));
    assert_eq!(d["answer"]["uri"], "/v2/users?id=1");
    assert_eq!(d["answer"]["backends"][0]["endpoints"][0]["pod"], "default/echo");
    assert_eq!(curl(&c, &address, &url("/api/users?id=1"), &["-H", host]).body, "/v2/users?id=1");

    let d = explain(&c, &url("/old"), &["-H", host]);
    assert_eq!(d["answer"]["type"], "redirect", "{d:#}");
    let got = curl(&c, &address, &url("/old"), &["-H", host]);
    assert_eq!((got.code.as_str(), got.redirect.as_str()), ("301", d["answer"]["location"].as_str().unwrap()));

    let d = explain(&c, &url("/nothing"), &["-H", host]);
    assert_eq!(d["answer"]["code"], 404, "{d:#}");
    assert_eq!(curl(&c, &address, &url("/nothing"), &["-H", host]).code, "404");
    let text = c.emu(&["ingress", "explain", &url("/api/users"), "-H", host]).ok().stdout;
    assert!(text.contains("Matched:       httproute/default/api rule 0 match 0 (PathPrefix /api)"), "{text}");
}
