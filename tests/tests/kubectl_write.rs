//! The real kubectl changes an emu cluster over the Kubernetes REST API (issue 17): the
//! tutorial's apply, expose and scale, create of a ConfigMap and a TLS Secret (sent as protobuf
//! by kubectl's generators), label, annotate, the three patch types, edit, delete, server-side
//! apply and server-side dry run, explain, replace, set image, create deployment and create service (protobuf too), drain (evictions) and delete with kubectl's
//! wait, and kube-apiserver's errors for an invalid Service, a name that
//! exists and an unknown field, each leaving the store as it was. kubectl runs as nobody on the
//! host with the kubeconfig `emu kubeconfig` prints; what it changed is read back with `emu get`.
//!
//! kubectl's default `--validate=strict` first asks `/openapi/v3` whether the server validates
//! fields itself (it fails without it): the writes here use that default, so kubectl sends
//! `fieldValidation=Strict` and an unknown field is the server's strict decoding error; one
//! apply with `--validate=false` (kubectl then sends `fieldValidation=Ignore`) has it dropped.

use emu_tests::Scratch;
use emu_tests::{Cluster, Run};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unprivileged user kubectl runs as (nobody).
const NOBODY: u32 = 65534;

/// kubectl's home: the kubeconfig, kubectl's caches and the manifests, owned by nobody.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(root: &Path, kubeconfig: &str) -> Home {
        let dir = root.join("home");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = Home { dir };
        home.write("config", kubeconfig);
        std::os::unix::fs::chown(&home.dir, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(&home.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        home
    }

    /// A file of nobody's, by its path.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `kubectl ARGS` as nobody, with `env` set too (an editor).
    fn kubectl_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let ids = [format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()];
        let out = Command::new("setpriv")
            .args(ids)
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("config"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.dir)
            .envs(env.iter().copied())
            .output()
            .expect("setpriv kubectl");
        Run::from(out)
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_env(&[], args)
    }

    /// kubectl that must succeed, its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_eq!(r.code, 0, "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        r.stdout
    }

    /// kubectl that must fail, its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_ne!(r.code, 0, "kubectl {args:?} succeeded\nstdout:\n{}", r.stdout);
        r.stderr
    }
}

fn scenario(file: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(file)).unwrap()
}

/// The object as emu holds it (`emu get KIND NAME -o json`), or None when there is none.
fn held(c: &Cluster, kind: &str, name: &str) -> Option<Value> {
    let r = c.emu(&["get", kind, name, "-o", "json"]);
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
}

fn replicas(c: &Cluster) -> i64 {
    held(c, "deployment", "my-nginx").unwrap()["spec"]["replicas"].as_i64().unwrap()
}

#[test]
fn kubectl_writes_what_emu_then_holds() {
    let root = Scratch(std::env::temp_dir().join(format!("emu-tkwrite-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).unwrap();
    let c = Cluster::up("tkwrite", &[]);
    let home = Home::new(&root.0, &c.emu(&["kubeconfig"]).ok().stdout);
    let nginx = home.write("run-my-nginx.yaml", &scenario("run-my-nginx.yaml"));
    let three = home.write("three.yaml", &scenario("run-my-nginx.yaml").replace("replicas: 2", "replicas: 3"));

    // The tutorial: apply, apply a change, apply it again (nothing to send), expose, scale.
    assert_eq!(home.ok(&["apply", "-f", &nginx]), "deployment.apps/my-nginx created\n");
    let d = held(&c, "deployment", "my-nginx").unwrap();
    assert!(d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string(), "{d}");
    c.ready_pods("run=my-nginx", 2);
    assert_eq!(home.ok(&["apply", "-f", &three]), "deployment.apps/my-nginx configured\n");
    assert_eq!(replicas(&c), 3);
    assert_eq!(home.ok(&["apply", "-f", &three]), "deployment.apps/my-nginx unchanged\n");
    assert_eq!(home.ok(&["expose", "deployment", "my-nginx"]), "service/my-nginx exposed\n");
    let svc = held(&c, "service", "my-nginx").unwrap();
    assert_eq!((svc["spec"]["ports"][0]["port"].as_i64(), &svc["spec"]["selector"]["run"]), (Some(80), &Value::from("my-nginx")));
    assert_eq!(home.ok(&["scale", "deployment", "my-nginx", "--replicas=0"]), "deployment.apps/my-nginx scaled\n");
    assert_eq!(replicas(&c), 0);
    assert_eq!(home.ok(&["scale", "deployment", "my-nginx", "--replicas=2"]), "deployment.apps/my-nginx scaled\n");
    assert_eq!(replicas(&c), 2);
    let pods = c.ready_pods("run=my-nginx", 2);
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_string();

    // kubectl's generators (sent as protobuf).
    assert_eq!(home.ok(&["create", "configmap", "cm1", "--from-literal=a=b"]), "configmap/cm1 created\n");
    assert_eq!(held(&c, "configmap", "cm1").unwrap()["data"]["a"], "b");
    let cert = rcgen::generate_simple_self_signed(vec!["my-nginx".to_string()]).unwrap();
    let crt = home.write("tls.crt", &cert.cert.pem());
    let key = home.write("tls.key", &cert.signing_key.serialize_pem());
    assert_eq!(home.ok(&["create", "secret", "tls", "nginxsecret", "--cert", &crt, "--key", &key]), "secret/nginxsecret created\n");
    let secret = held(&c, "secret", "nginxsecret").unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert!(secret["data"]["tls.crt"].is_string() && secret["data"]["tls.key"].is_string(), "{secret}");

    // Merge patches (label, annotate, --type=merge), a JSON patch and a strategic one (the
    // container merged by its name, its image kept).
    assert_eq!(home.ok(&["label", "pod", &pod, "tier=web"]), format!("pod/{pod} labeled\n"));
    assert_eq!(home.ok(&["annotate", "pod", &pod, "note=hi"]), format!("pod/{pod} annotated\n"));
    let p = held(&c, "pod", &pod).unwrap();
    assert_eq!((&p["metadata"]["labels"]["tier"], &p["metadata"]["annotations"]["note"]), (&Value::from("web"), &Value::from("hi")));
    let patched = "deployment.apps/my-nginx patched\n";
    assert_eq!(home.ok(&["patch", "deployment", "my-nginx", "--type=merge", "-p", r#"{"metadata":{"labels":{"m":"1"}}}"#]), patched);
    let json_patch = r#"[{"op":"add","path":"/metadata/labels/j","value":"2"},{"op":"test","path":"/metadata/labels/m","value":"1"}]"#;
    assert_eq!(home.ok(&["patch", "deployment", "my-nginx", "--type=json", "-p", json_patch]), patched);
    let env = r#"{"spec":{"template":{"spec":{"containers":[{"name":"my-nginx","env":[{"name":"X","value":"1"}]}]}}}}"#;
    assert_eq!(home.ok(&["patch", "deployment", "my-nginx", "-p", env]), patched);
    let d = held(&c, "deployment", "my-nginx").unwrap();
    assert_eq!((&d["metadata"]["labels"]["m"], &d["metadata"]["labels"]["j"]), (&Value::from("1"), &Value::from("2")));
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((&container["image"], &container["env"][0]["name"]), (&Value::from("nginx"), &Value::from("X")), "{d}");
    // A failed test changes nothing, not even what the operations before it did:
    // kube-apiserver's 422 on the field patch.
    let failing = r#"[{"op":"add","path":"/metadata/labels/z","value":"3"},{"op":"test","path":"/metadata/labels/m","value":"2"}]"#;
    let e = home.fails(&["patch", "deployment", "my-nginx", "--type=json", "-p", failing]);
    assert!(e.contains("is invalid: patch: Invalid value:"), "{e}");
    assert!(held(&c, "deployment", "my-nginx").unwrap()["metadata"]["labels"].get("z").is_none());

    // edit: the editor is a script.
    let edit = home.kubectl_env(&[("KUBE_EDITOR", "sed -i s/a:\\ b/a:\\ edited/")], &["edit", "configmap", "cm1"]);
    assert_eq!((edit.code, edit.stdout.as_str()), (0, "configmap/cm1 edited\n"), "{}", edit.stderr);
    assert_eq!(held(&c, "configmap", "cm1").unwrap()["data"]["a"], "edited");

    // explain: the fields' schemas, from the published OpenAPI v3 (the Kubernetes types').
    let ports = home.ok(&["explain", "service.spec.ports"]);
    assert!(ports.starts_with("KIND:       Service\nVERSION:    v1\n\nFIELD: ports <[]ServicePort>\n"), "{ports}");
    assert!(ports.contains("The list of ports that are exposed by this service."), "{ports}");
    assert!(ports.contains("  targetPort\t<IntOrString>\n") && ports.contains("  port\t<integer> -required-\n"), "{ports}");
    let tty = home.ok(&["explain", "deployment.spec.template.spec.containers.tty"]);
    assert!(tty.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: tty <boolean>\n"), "{tty}");

    // Server-side apply: a create, then a change merged in; server-side dry run stores nothing.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm2\ndata:\n  k: first\n";
    let cm_file = home.write("cm2.yaml", cm);
    assert_eq!(home.ok(&["apply", "--server-side", "-f", &cm_file]), "configmap/cm2 serverside-applied\n");
    home.write("cm2.yaml", &cm.replace("first", "second"));
    assert_eq!(home.ok(&["apply", "--server-side", "-f", &cm_file]), "configmap/cm2 serverside-applied\n");
    assert_eq!(held(&c, "configmap", "cm2").unwrap()["data"]["k"], "second");
    let five = home.write("five.yaml", &scenario("run-my-nginx.yaml").replace("replicas: 2", "replicas: 5"));
    assert_eq!(home.ok(&["apply", "--dry-run=server", "-f", &five]), "deployment.apps/my-nginx configured (server dry run)\n");
    assert_eq!(replicas(&c), 2);

    // Bad input, each refused with kube-apiserver's error and nothing stored.
    let bad =
        home.write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 0\n    targetPort: 80\n");
    let e = home.fails(&["apply", "-f", &bad]);
    assert_eq!(e, "The Service \"bad\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n");
    assert!(held(&c, "service", "bad").is_none());
    let e = home.fails(&["create", "-f", &nginx]);
    assert_eq!(
        e,
        format!("Error from server (AlreadyExists): error when creating {nginx:?}: deployments.apps \"my-nginx\" already exists\n")
    );
    let unknown = home
        .write("unknown.json", r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"odd"},"spec":{"foo":1,"ports":[{"port":80}]}}"#);
    // kubectl's default validation: Strict, checked by the server (it found fieldValidation in
    // the OpenAPI document of core/v1).
    let e = home.fails(&["apply", "-f", &unknown]);
    assert!(
        e.contains("Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\""),
        "{e}"
    );
    assert!(held(&c, "service", "odd").is_none());
    let e = home.fails(&["create", "--raw", "/api/v1/namespaces/default/services?fieldValidation=Strict", "-f", &unknown]);
    assert!(
        e.contains("Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\""),
        "{e}"
    );
    assert!(held(&c, "service", "odd").is_none());
    assert_eq!(home.ok(&["apply", "--validate=false", "-f", &unknown]), "service/odd created\n");
    assert!(held(&c, "service", "odd").expect("created")["spec"].get("foo").is_none(), "Ignore drops the unknown field");

    // delete: the pod goes (graceful: its agent stops it), so does the ConfigMap. The pod is one
    // of the patched template's, once the rollout the patches started is over.
    let rolled = c.wait_for("the rollout of the patched template", std::time::Duration::from_secs(30), || {
        let pods = c.pods("run=my-nginx");
        let done = pods.len() == 2 && pods.iter().all(|p| emu_tests::is_ready(p) && p["spec"]["containers"][0]["env"][0]["name"] == "X");
        done.then_some(pods)
    });
    let pod = rolled[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(home.ok(&["delete", "pod", &pod, "--wait=false"]), format!("pod \"{pod}\" deleted\n"));
    c.wait_for("the deleted pod gone", std::time::Duration::from_secs(20), || held(&c, "pod", &pod).is_none().then_some(()));
    assert_eq!(home.ok(&["delete", "configmap", "cm1", "--wait=false"]), "configmap \"cm1\" deleted\n");
    assert!(held(&c, "configmap", "cm1").is_none());
    let e = home.fails(&["delete", "configmap", "cm1", "--wait=false"]);
    assert_eq!(e, "Error from server (NotFound): configmaps \"cm1\" not found\n");

    // replace (PUT of what get printed), set image (a strategic patch), create namespace (protobuf).
    let mut live = home.ok(&["get", "deployment", "my-nginx", "-o", "yaml"]);
    live = live.replace("replicas: 2", "replicas: 1");
    let replaced = home.write("replaced.yaml", &live);
    assert_eq!(home.ok(&["replace", "-f", &replaced]), "deployment.apps/my-nginx replaced\n");
    assert_eq!(replicas(&c), 1);
    assert_eq!(home.ok(&["set", "image", "deployment/my-nginx", "my-nginx=nginx:1.25"]), "deployment.apps/my-nginx image updated\n");
    assert_eq!(held(&c, "deployment", "my-nginx").unwrap()["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");
    assert_eq!(home.ok(&["create", "namespace", "dev"]), "namespace/dev created\n");
    assert!(held(&c, "namespace", "dev").is_some());
    assert_eq!(home.ok(&["create", "deployment", "web", "--image=nginx", "--port=80", "--replicas=2"]), "deployment.apps/web created\n");
    assert_eq!(home.ok(&["create", "service", "clusterip", "web", "--tcp=80:80"]), "service/web created\n");
    c.ready_pods("app=web", 2);
    let svc = held(&c, "service", "web").unwrap();
    assert_eq!((&svc["spec"]["selector"]["app"], &svc["spec"]["ports"][0]["targetPort"]), (&Value::from("web"), &Value::from(80)), "{svc}");
    c.wait_for("the web service's endpoints", std::time::Duration::from_secs(20), || {
        let ep = held(&c, "endpoints", "web")?;
        (ep["subsets"][0]["addresses"].as_array()?.len() == 2).then_some(())
    });

    // A node drained (its pods evicted through pods/eviction), then the deployment deleted with
    // kubectl's default wait (a watch until the object is gone): its ReplicaSets and pods follow.
    let node = c.ready_pods("run=my-nginx", 1)[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let drain = home.kubectl(&["drain", &node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s"]);
    assert_eq!(drain.code, 0, "{}\n{}", drain.stdout, drain.stderr);
    assert!(drain.stdout.contains(&format!("node/{node} drained")), "{}", drain.stdout);
    assert_eq!(held(&c, "node", &node).unwrap()["spec"]["unschedulable"], true);
    assert_eq!(home.ok(&["uncordon", &node]), format!("node/{node} uncordoned\n"));
    assert_eq!(home.ok(&["delete", "deployment", "my-nginx"]), "deployment.apps \"my-nginx\" deleted\n");
    c.wait_for("the deployment's pods gone", std::time::Duration::from_secs(20), || c.pods("run=my-nginx").is_empty().then_some(()));
}

/// The kubeconfig's `key: value` line (the first of that key).
fn kubeconfig_field(kubeconfig: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    kubeconfig
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in the kubeconfig"))
        .to_string()
}

/// A client that sends what kubectl never would (curl with the kubeconfig's admin certificate)
/// gets kube-apiserver's status codes, reasons and messages, and the store stays as it was.
#[test]
fn raw_requests_get_kube_apiservers_errors_and_change_nothing() {
    use base64::Engine;
    let root = Scratch(std::env::temp_dir().join(format!("emu-tkraw-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).unwrap();
    let c = Cluster::up("tkraw", &[]);
    let kubeconfig = c.emu(&["kubeconfig"]).ok().stdout;
    let file = |name: &str, key: &str| {
        let path = root.0.join(name);
        std::fs::write(&path, base64::engine::general_purpose::STANDARD.decode(kubeconfig_field(&kubeconfig, key)).unwrap()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (ca, cert, key) =
        (file("ca.crt", "certificate-authority-data"), file("admin.crt", "client-certificate-data"), file("admin.key", "client-key-data"));
    let server = kubeconfig_field(&kubeconfig, "server");
    // (status code, the Status object) of METHOD PATH with BODY of CONTENT_TYPE.
    let send = |method: &str, path: &str, content_type: &str, body: &str| -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", &ca, "--cert", &cert, "--key", &key, "-X", method])
            .args(["-H", &format!("Content-Type: {content_type}"), "--data-binary", body])
            .arg(format!("{server}{path}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
    };
    const CMS: &str = "/api/v1/namespaces/default/configmaps";
    let cm = |name: &str, rv: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","resourceVersion":"{rv}"}},"data":{{"k":"v"}}}}"#)
    };
    let (code, created) = send("POST", CMS, "application/json", &cm("kept", ""));
    assert_eq!(code, 201, "{created}");
    let before = c.emu(&["get", "configmaps", "-o", "json"]).ok().stdout;

    // Malformed JSON: 400, the body's start quoted.
    let (code, e) = send("POST", CMS, "application/json", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"#);
    assert_eq!((code, e["reason"].as_str()), (400, Some("BadRequest")), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: "),
        "{message}"
    );
    // A patch type the server does not read: 415.
    let (code, e) = send("PATCH", &format!("{CMS}/kept"), "text/plain", "k=w");
    assert_eq!((code, e["reason"].as_str()), (415, Some("UnsupportedMediaType")), "{e}");
    // Invalid: 422 naming the field.
    let (code, e) = send("POST", CMS, "application/json", &cm("Not_A_Name", ""));
    assert_eq!(
        (code, e["reason"].as_str(), e["details"]["causes"][0]["field"].as_str()),
        (422, Some("Invalid"), Some("metadata.name")),
        "{e}"
    );
    // Existing name, stale resourceVersion: 409.
    let (code, e) = send("POST", CMS, "application/json", &cm("kept", ""));
    assert_eq!(
        (code, e["reason"].as_str(), e["message"].as_str()),
        (409, Some("AlreadyExists"), Some("configmaps \"kept\" already exists"))
    );
    let (code, e) = send("PUT", &format!("{CMS}/kept"), "application/json", &cm("kept", "1"));
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")), "{e}");
    assert_eq!(
        e["message"],
        "Operation cannot be fulfilled on configmaps \"kept\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Missing: 404.
    let (code, e) = send("DELETE", &format!("{CMS}/nope"), "application/json", "");
    assert_eq!((code, e["message"].as_str()), (404, Some("configmaps \"nope\" not found")));
    assert_eq!(c.emu(&["get", "configmaps", "-o", "json"]).ok().stdout, before, "a refused request changed the store");
}
