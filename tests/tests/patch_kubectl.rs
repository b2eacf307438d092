//! `emu patch --local` against `kubectl patch --local` (issue 15, item 7): the same files and
//! patches through both binaries, their stdout, stderr and exit codes compared byte for byte.
//! Strategic merges (list order, directives), JSON patches (kubectl's leniency and its errors)
//! and merge patches (null pruning). No cluster and no root; skipped, saying so, where kubectl
//! is not on PATH.

use emu_tests::{emu_path, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  namespace: default
  labels:
    run: my-nginx
spec:
  type: NodePort
  selector:
    run: my-nginx
  ports:
  - name: http
    port: 8080
    targetPort: 80
    protocol: TCP
  - name: https
    port: 443
    protocol: TCP
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
  finalizers: [a/x, b/y]
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        args: [-g, daemon off;]
        ports:
        - containerPort: 80
        - containerPort: 443
          name: https
        env:
        - name: A
          value: '1'
        - name: B
          value: '2'
        - name: C
          value: '3'
        volumeMounts:
        - name: cfg
          mountPath: /etc/nginx/conf.d
      - name: sidecar
        image: busybox
      volumes:
      - name: cfg
        configMap:
          name: a
      tolerations:
      - key: x
        operator: Exists
";

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  a: x&y
  b: '1'
";

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: p
  ownerReferences:
  - {apiVersion: v1, kind: X, name: a, uid: u1}
  - {apiVersion: v1, kind: X, name: b, uid: u2}
spec:
  containers:
  - name: c
    image: i
  imagePullSecrets: [{name: s1}, {name: s2}]
status:
  conditions: [{type: Ready, status: 'True'}, {type: Scheduled, status: 'True'}]
";

const FAULT: &str = "apiVersion: emu.dev/v1
kind: Fault
metadata:
  name: f
spec:
  a: 1
";

/// One comparison: the file, `--type`, `-p`, and `-o` (empty: kubectl's default line).
struct Case {
    file: &'static str,
    ty: &'static str,
    patch: &'static str,
    output: &'static str,
}

const fn case(file: &'static str, ty: &'static str, patch: &'static str) -> Case {
    Case { file, ty, patch, output: "json" }
}

#[rustfmt::skip] // a table, one case a line
const CASES: &[Case] = &[
    // Strategic merge: list order.
    case("svc.yaml", "strategic", r#"{"spec":{"ports":[{"port":8443,"name":"alt"},{"port":8080,"$patch":"delete"}]}}"#),
    case("svc.yaml", "strategic", r#"{"spec":{"type":"LoadBalancer","ports":[{"port":443,"nodePort":30443}]}}"#),
    case("svc.yaml", "strategic", r#"{"spec":{"ports":[{"port":443,"$patch":"delete"},{"port":80,"name":"web"},{"port":8080,"name":"h"}]}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"D","value":"4"},{"name":"B","value":"x"}]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"C","value":"x"},{"name":"A","value":"y"}]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"new","image":"x"},{"name":"nginx","image":"y","ports":[{"containerPort":8080}],"volumeMounts":[{"mountPath":"/data","name":"d"}]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"},{"name":"new","image":"x"}],"tolerations":[{"key":"y","value":null}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"metadata":{"finalizers":["c/z","a/x"]},"spec":{"replicas":3,"selector":null}}"#),
    // Strategic merge: directives.
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"x","image":"n"},{"$patch":"replace"}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"strategy":{"$patch":"replace","type":"Recreate"},"selector":{"$patch":"delete"}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","$setElementOrder/env":[{"name":"C"},{"name":"D"},{"name":"A"}],"env":[{"name":"D","value":"4"}]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"nginx"}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["a/x"],"finalizers":["q"]},"spec":{"template":{"spec":{"containers":[{"name":"nginx","$deleteFromPrimitiveList/args":["-g"]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"hostAliases":[{"ip":"1","$patch":"delete"},{"ip":"2","x":null}],"securityContext":{"$patch":"replace","runAsUser":1},"containers":[{"name":"new","args":null,"env":[{"name":"Q","$patch":"delete"}]}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"volumes":[{"name":"cfg","$retainKeys":["name","secret"],"secret":{"secretName":"s"}},{"name":"new","emptyDir":{}}]}}}}"#),
    case("pod.yaml", "strategic", r#"{"metadata":{"ownerReferences":[{"uid":"u3","name":"c"},{"uid":"u1","name":"z"}]},"spec":{"imagePullSecrets":[{"name":"s3"},{"name":"s1","$patch":"delete"}]}}"#),
    case("pod.yaml", "strategic", r#"{"status":{"conditions":[{"type":"New","status":"False"},{"type":"Ready","status":"False"}]}}"#),
    // Strategic merge: refusals.
    case("svc.yaml", "strategic", r#"{"spec":{"ports":[{"targetPort":8080,"name":"x"}]}}"#),
    case("svc.yaml", "strategic", r#"{"spec":{"selector":{"$patch":"bogus"}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate","rollingUpdate":{"maxSurge":2}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"new"},{"name":"nginx"}],"containers":[{"name":"nginx","image":"z"},{"name":"new","image":"n"}]}}}}"#),
    case("deploy.yaml", "strategic", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","ports":[{"containerPort":1,"name":"h"},7]}]}}}}"#),
    case("svc.yaml", "strategic", r#"{"spec":{"ports":[{"port":443,"$patch":5}],"$setElementOrder/ports":null}}"#),
    case("fault.yaml", "strategic", r#"{"spec":{"a":2}}"#),
    case("svc.yaml", "strategic", r#"{"spec":"#),
    case("svc.yaml", "strategic", "[1]"),
    // JSON patch: what kubectl accepts.
    case("svc.yaml", "json", r#"[{"op":"replace","path":"/spec/foo","value":1}]"#),
    case("svc.yaml", "json", r#"[{"op":"add","path":"/spec/foo"}]"#),
    case("svc.yaml", "json", r#"[{"op":"copy","from":"/spec/nope","path":"/spec/foo"}]"#),
    case("svc.yaml", "json", r#"[{"op":"test","path":"/spec/type","value":"NodePort"},{"op":"test","path":"/spec/ports/0/port","value":8080.0},{"op":"test","path":"/spec/nope","value":null},{"op":"replace","path":"/spec/type","value":"ClusterIP"}]"#),
    case("svc.yaml", "json", r#"[{"op":"add","path":"/spec/ports/-","value":{"port":1}},{"op":"add","path":"/spec/ports/-1","value":{"port":2}},{"op":"add","path":"/spec/ports/0","value":{"port":3}},{"op":"remove","path":"/spec/ports/-2"}]"#),
    case("svc.yaml", "json", r#"[{"op":"add","path":"/metadata/labels/app.kubernetes.io~1name","value":"web"},{"op":"move","from":"/metadata/labels/run","path":"/metadata/labels/tilde~0"},{"op":"add","path":"spec/x","value":1}]"#),
    case("svc.yaml", "json", "- {op: remove, path: /spec/ports/+1}\n- {op: replace, path: '', value: 5}\n"),
    // JSON patch: refusals.
    case("svc.yaml", "json", r#"[{"op":"replace","path":"/spec/ports/5","value":1}]"#),
    case("svc.yaml", "json", r#"[{"op":"remove","path":"/spec/nope"}]"#),
    case("svc.yaml", "json", r#"[{"op":"move","from":"/spec/nope","path":"/spec/foo"}]"#),
    case("svc.yaml", "json", r#"[{"op":"add","path":"/spec/ports/3","value":1}]"#),
    case("svc.yaml", "json", r#"[{"op":"add","path":"/spec/ports/x","value":1}]"#),
    case("svc.yaml", "json", r#"[{"op":"remove","path":"/spec/ports/-"}]"#),
    case("svc.yaml", "json", r#"[{"op":"test","path":"/spec/type","value":"ClusterIP"}]"#),
    case("svc.yaml", "json", r#"[{"op":"replace","value":1}]"#),
    case("svc.yaml", "json", r#"[{"op":"copy","from":"/spec/type"}]"#),
    case("svc.yaml", "json", r#"[{"op":"frobnicate","path":"/spec"}]"#),
    case("svc.yaml", "json", r#"[{"op":"remove","path":"/kind"}]"#),
    case("svc.yaml", "json", r#"{"op":"add","path":"/a","value":1}"#),
    case("svc.yaml", "json", r#"{"spec":"#),
    case("svc.yaml", "json", r#"{"a":1}}"#),
    case("svc.yaml", "json", r#"{"a":[tru]}"#),
    case("svc.yaml", "json", r#"{"a":{"b":nul"#),
    // Merge patch.
    case("svc.yaml", "merge", r#"{"spec":{"type":"LoadBalancer","ports":[{"port":443,"name":null}],"selector":null}}"#),
    case("cm.yaml", "merge", r#"{"data":{"a":null,"z":{"q":null,"r":[{"s":null,"t":1},null]},"b":{"c":null,"d":1}}}"#),
    case("cm.yaml", "merge", r#"[{"a":null}]"#),
    case("cm.yaml", "merge", "null"),
    case("fault.yaml", "merge", "spec: {a: 2, b: [x]}"),
    // Several objects, and every output.
    case("two.yaml", "json", r#"[{"op":"replace","path":"/spec/type","value":"X"}]"#),
    case("two.yaml", "json", r#"[{"op":"replace","path":"/nope/type","value":"X"}]"#),
    Case { file: "two.yaml", ty: "merge", patch: r#"{"metadata":{"labels":{"q":"1"}}}"#, output: "yaml" },
    Case { file: "two.yaml", ty: "strategic", patch: r#"{"metadata":{"labels":{"run":"my-nginx"}}}"#, output: "" },
    Case { file: "deploy.yaml", ty: "strategic", patch: "{}", output: "name" },
    Case { file: "missing.yaml", ty: "strategic", patch: "{}", output: "" },
];

/// Whether kubectl runs here.
fn kubectl_present() -> bool {
    Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success())
}

/// The fixtures in a directory of this test's own.
fn fixtures() -> Scratch {
    let dir = std::env::temp_dir().join(format!("emu-patch-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("svc.yaml", SERVICE.to_string()),
        ("deploy.yaml", DEPLOYMENT.to_string()),
        ("cm.yaml", CONFIG_MAP.to_string()),
        ("pod.yaml", POD.to_string()),
        ("fault.yaml", FAULT.to_string()),
        ("two.yaml", format!("{SERVICE}---\n{CONFIG_MAP}")),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    Scratch(dir)
}

/// Exit code, stdout and stderr of `PROGRAM patch --local -f FILE --type T -p PATCH [-o O]`.
fn run(program: &Path, dir: &Path, c: &Case) -> (i32, String, String) {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).args(["patch", "--local", "-f", c.file, "--type", c.ty]).arg(format!("--patch={}", c.patch));
    if !c.output.is_empty() {
        cmd.args(["-o", c.output]);
    }
    // Neither a kubeconfig nor an emu cluster has a say in a local patch.
    let out = cmd
        .env("KUBECONFIG", "/dev/null")
        .env_remove("EMU_CLUSTER")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn emu_patch_local_prints_what_kubectl_prints() {
    if !kubectl_present() {
        eprintln!("skipped: kubectl is not on PATH, so there is nothing to compare emu patch --local with");
        return;
    }
    let scratch = fixtures();
    let dir = scratch.0.clone();
    let (emu, kubectl) = (emu_path(), PathBuf::from("kubectl"));
    // Two workers: kubectl takes a quarter of a second to start.
    let results: Vec<_> = std::thread::scope(|s| {
        let half = CASES.len() / 2;
        let workers: Vec<_> = [&CASES[..half], &CASES[half..]]
            .into_iter()
            .map(|cases| s.spawn(|| cases.iter().map(|c| (c, run(&kubectl, &dir, c), run(&emu, &dir, c))).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let mut differ = Vec::new();
    for (c, want, got) in &results {
        if want != got {
            differ.push(format!(
                "emu patch --local -f {} --type {} -p '{}' -o {:?}\n  kubectl: exit {}\n{}{}\n  emu: exit {}\n{}{}",
                c.file, c.ty, c.patch, c.output, want.0, want.1, want.2, got.0, got.1, got.2
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(differ.is_empty(), "{} of {} cases differ from kubectl:\n{}", differ.len(), results.len(), differ.join("\n"));
    // The comparison means something only if both refused some patches and accepted others.
    assert!(results.iter().any(|(_, want, _)| want.0 == 1) && results.iter().any(|(_, want, _)| want.0 == 0));
}
