//! Ingress and IngressClass served as kube-apiserver serves them (issue 21, item 2, first part):
//! `emu get`/`describe` print what the real kubectl prints against the same cluster, the
//! default class is filled in at admission, bad Ingresses are refused with Kubernetes' message by
//! `emu apply` and `kubectl apply` alike, and `kubectl create ingress` works. And the nginx
//! configuration the renderer writes is valid for the real nginx (`nginx -t`, no cluster).

mod kubectl_support;

use emu_api::typed::{EndpointSlice, Ingress, IngressClass, Secret, Service};
use emu_logic::ingress::{build, render_conf, render_upstreams, Inputs, Layout};
use kubectl_support::{cluster, kubectl, Scratch};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

const CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations:
    ingressclass.kubernetes.io/is-default-class: \"true\"
spec:
  controller: k8s.io/ingress-nginx
";

const MANIFESTS: &str = "apiVersion: v1
kind: Service
metadata:
  name: kubia
spec:
  selector:
    app: kubia
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: kubia
spec:
  tls:
  - hosts:
    - kubia.example.com
    secretName: tls-secret
  rules:
  - host: kubia.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: kubia
            port:
              number: 80
      - path: /foo
        pathType: Exact
        backend:
          service:
            name: missing
            port:
              name: http
";

const BAD: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bad
spec:
  rules:
  - host: kubia.example.com
    http:
      paths:
      - path: foo
        pathType: Prefix
        backend:
          service:
            name: kubia
            port:
              number: 80
";

/// The same command through emu and kubectl prints the same.
fn same(c: &emu_tests::Cluster, dir: &std::path::Path, args: &[&str]) -> String {
    let theirs = kubectl(dir, LIMIT, args);
    let ours = c.emu(args);
    assert_eq!(
        (ours.code, &ours.stdout),
        (theirs.code, &theirs.stdout),
        "{args:?}\nkubectl stderr: {}\nemu stderr: {}",
        theirs.stderr,
        ours.stderr
    );
    ours.stdout
}

#[test]
fn ingress_api_as_kubectl_sees_it() {
    let (c, dir) = cluster("ting1");
    // One file, the class first: `emu apply` admits its documents together, and a default class
    // among them is the newest (kubectl sends them one by one, so it exists by the Ingress's turn).
    c.apply("kubia.yaml", &format!("{CLASS}---\n{MANIFESTS}")).ok();
    // DefaultIngressClass admission: the class-less Ingress gets the default class.
    let class = c.emu(&["get", "ingress", "kubia", "-o", "jsonpath={.spec.ingressClassName}"]).ok().stdout;
    assert_eq!(class, "nginx");

    let get = same(&c, &dir.0, &["get", "ingress"]);
    assert!(get.starts_with("NAME    CLASS   HOSTS               ADDRESS   PORTS     AGE\n"), "{get}");
    assert!(get.contains("kubia.example.com") && get.contains("80, 443"), "{get}");
    same(&c, &dir.0, &["get", "ing", "kubia", "-o", "wide"]);
    same(&c, &dir.0, &["get", "ingressclass"]);
    let described = same(&c, &dir.0, &["describe", "ingress", "kubia"]);
    assert!(described.contains("/foo   missing:http (<error: services \"missing\" not found>)"), "{described}");
    same(&c, &dir.0, &["describe", "ingressclass", "nginx"]);
    same(&c, &dir.0, &["explain", "ingress.spec.rules.http.paths"]);
    // With pods behind the Service: the backend lists their endpoints as kubectl does.
    c.emu(&["create", "deployment", "kubia", "--image=nginx", "--replicas=2"]).ok();
    c.ready_pods("app=kubia", 2);
    let described = c.wait_for("the Ingress's backend with two endpoints", Duration::from_secs(20), || {
        let d = same(&c, &dir.0, &["describe", "ingress", "kubia"]);
        (d.matches(":8080").count() == 2).then_some(d)
    });
    assert!(described.contains("kubia:80 (10."), "{described}");

    // Refused alike, with Kubernetes' message.
    let path = c.scratch_dir().join("bad.yaml");
    std::fs::write(&path, BAD).unwrap();
    let ours = c.emu(&["apply", "-f", path.to_str().unwrap()]);
    let theirs = kubectl(&dir.0, LIMIT, &["apply", "-f", path.to_str().unwrap()]);
    let want = "The Ingress \"bad\" is invalid: spec.rules[0].http.paths[0].path: Invalid value: \"foo\": must be an absolute path";
    assert!(theirs.stderr.contains(want), "kubectl: {}", theirs.stderr);
    assert!(ours.stderr.contains(want), "emu: {}", ours.stderr);
    assert_ne!(ours.code, 0);

    // kubectl's generator, whose typed client sends protobuf.
    let created = kubectl(&dir.0, LIMIT, &["create", "ingress", "simple", "--class=nginx", "--rule=foo.com/bar*=kubia:80,tls=my-cert"]);
    assert_eq!((created.code, created.stdout.as_str()), (0, "ingress.networking.k8s.io/simple created\n"), "{}", created.stderr);
    let simple: serde_json::Value = serde_json::from_str(&c.emu(&["get", "ingress", "simple", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(
        simple["spec"],
        json!({"ingressClassName": "nginx", "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}],
               "rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Prefix",
                   "backend": {"service": {"name": "kubia", "port": {"number": 80}}}}]}}]})
    );
    // `emu create ingress` makes the same object, and says so as kubectl does.
    let ours = c.emu(&["create", "ingress", "ours", "--class=nginx", "--rule=foo.com/bar*=kubia:80,tls=my-cert"]).ok();
    assert_eq!(ours.stdout, "ingress.networking.k8s.io/ours created\n");
    let ours: serde_json::Value = serde_json::from_str(&c.emu(&["get", "ingress", "ours", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(ours["spec"], simple["spec"]);
    same(&c, &dir.0, &["get", "ingress"]);

    // A namespace's Ingresses go with it.
    c.emu(&["create", "namespace", "shop"]).ok();
    kubectl(&dir.0, LIMIT, &["create", "ingress", "shop", "-n", "shop", "--rule=shop.com/*=web:80"]).ok();
    c.emu(&["delete", "namespace", "shop"]).ok();
    c.wait_for("the shop namespace's Ingress gone", Duration::from_secs(20), || {
        let r = c.emu(&["get", "ingress", "-n", "shop", "-o", "name"]);
        (r.code == 0 && r.stdout.is_empty()).then_some(())
    });
}

/// A typed object from JSON (a macro: this crate does not depend on serde itself).
macro_rules! decode {
    ($v:expr) => {
        serde_json::from_value($v).unwrap()
    };
}

/// The renderer's nginx.conf, with certificates from a real key pair, passes `nginx -t` (run as
/// the real nginx binary on a scratch prefix: nothing listens, nothing is started).
#[test]
fn nginx_accepts_the_rendered_configuration() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-ingress-conf-{}", std::process::id())));
    let (run, ssl) = (dir.0.join("run"), dir.0.join("ssl"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&ssl).unwrap();
    let (crt, key) = (dir.0.join("tls.crt"), dir.0.join("tls.key"));
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kubia.example.com"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("running openssl");
    assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
    let (crt, key) = (std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap());
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let secrets: Vec<Secret> =
        vec![decode!(json!({"metadata": {"name": "tls-secret", "namespace": "default"}, "type": "kubernetes.io/tls",
                                                  "data": {"tls.crt": b64(&crt), "tls.key": b64(&key)}}))];
    let classes: Vec<IngressClass> = vec![decode!(json!({"metadata": {"name": "nginx",
        "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}, "spec": {"controller": "k8s.io/ingress-nginx"}}))];
    let backend = |svc: &str| json!({"service": {"name": svc, "port": {"number": 80}}});
    let path = |p: &str, t: &str, svc: &str| json!({"path": p, "pathType": t, "backend": backend(svc)});
    let ingress = |name: &str, annotations: serde_json::Value, spec: serde_json::Value| -> Ingress {
        decode!(json!({"metadata": {"name": name, "namespace": "default", "annotations": annotations}, "spec": spec}))
    };
    let ingresses = vec![
        ingress(
            "kubia",
            json!({}),
            json!({"tls": [{"hosts": ["kubia.example.com"], "secretName": "tls-secret"}, {"hosts": ["gone.example.com"], "secretName": "gone"}],
                   "defaultBackend": backend("kubia"),
                   "rules": [{"host": "kubia.example.com", "http": {"paths": [path("/", "Prefix", "kubia"), path("/foo", "Exact", "kubia"),
                                path("/foo", "Prefix", "other"), path("/static", "ImplementationSpecific", "kubia")]}},
                             {"host": "gone.example.com", "http": {"paths": [path("/", "Prefix", "missing")]}},
                             {"http": {"paths": [path("/any", "Prefix", "kubia")]}}]}),
        ),
        ingress(
            "rewrite",
            json!({"nginx.ingress.kubernetes.io/rewrite-target": "/$2", "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                   "nginx.ingress.kubernetes.io/affinity": "cookie", "nginx.ingress.kubernetes.io/session-cookie-name": "route-id",
                   "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8,192.168.1.1"}),
            json!({"rules": [{"host": "*.example.com", "http": {"paths": [path("/something(/|$)(.*)", "ImplementationSpecific", "kubia"),
                                                                          path("/api", "Prefix", "kubia")]}}]}),
        ),
    ];
    let service = |name: &str| -> Service {
        decode!(json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
    };
    let services = vec![service("kubia"), service("other")];
    let slices: Vec<EndpointSlice> = vec![decode!(json!({"metadata": {"name": "kubia-x", "namespace": "default",
        "labels": {"kubernetes.io/service-name": "kubia"}}, "addressType": "IPv4", "ports": [{"name": "", "port": 8080}],
        "endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.1.3"]}]}))];
    let inputs =
        Inputs { class: "nginx", classes: &classes, ingresses: &ingresses, services: &services, slices: &slices, secrets: &secrets };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let default_cert = ssl.join("default-fake-certificate.pem");
    std::fs::write(&default_cert, [crt.clone(), key.clone()].concat()).unwrap();
    let layout = Layout {
        run_dir: s(&run),
        cert_dir: s(&ssl),
        default_cert: s(&default_cert),
        upstreams_file: s(&dir.0.join("upstreams.conf")),
        http_port: 80,
        https_port: 443,
    };
    let model = build(&inputs, &layout);
    // The missing Service and the missing Secret are reported.
    let reasons: Vec<&str> = model.problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["MissingSecret", "MissingService"], "{:?}", model.problems);
    for cert in &model.certificates {
        std::fs::write(&cert.path, &cert.pem).unwrap();
    }
    std::fs::write(&layout.upstreams_file, render_upstreams(&model)).unwrap();
    let conf = dir.0.join("nginx.conf");
    std::fs::write(&conf, render_conf(&model, &layout)).unwrap();
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(run.join("error.log"))
        .output()
        .expect("running nginx (nginx-light, from scripts/deps.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t refused the configuration:\n{stderr}\n{}", render_conf(&model, &layout));
    assert!(stderr.contains("test is successful"), "{stderr}");
}
