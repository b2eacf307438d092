//! OpenAPI v2 with the real kubectl (1.32, and the one on PATH, 1.33 here): `kubectl explain
//! --output=plaintext-openapiv2` reads `/openapi/v2` as gnostic's protobuf (client-go's
//! discovery `OpenAPISchema()`), finds Pod's definition by its `x-kubernetes-group-version-kind`
//! and walks spec → containers → ports through the `$ref`s; `kubectl get --raw /openapi/v2` is
//! JSON Python reads. A client-side `apply` of a change fetches v2 too (to choose the patch
//! type) and must still send a strategic merge patch computed from kubectl's compiled-in types.

mod kubectl_support;

use emu_tests::Run;
use kubectl_support::run_with_input;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const KUBECTL_132: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

/// `KUBECTL ARGS` (a path or the one on PATH) with the kubeconfig and a cache of its own in
/// `dir`, killed after [`LIMIT`].
fn kubectl(kubectl: &str, dir: &Path, args: &[&str]) -> Run {
    let out = Command::new("timeout")
        .args(["-s", "KILL", &LIMIT.as_secs().to_string(), kubectl, "--kubeconfig"])
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join(format!("cache-{}", kubectl.replace('/', "_"))))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running kubectl");
    Run::from(out)
}

fn ok(binary: &str, dir: &Path, args: &[&str]) -> Run {
    let r = kubectl(binary, dir, args);
    assert_eq!(r.code, 0, "{binary} {args:?} failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

#[test]
fn kubectl_reads_openapi_v2() {
    let (_c, dir) = kubectl_support::cluster("tkoapiv2");
    let d = dir.0.as_path();
    for binary in [KUBECTL_132, "kubectl"] {
        // explain from v2: the field, its type, its description and its own fields.
        let explained = ok(binary, d, &["explain", "pods.spec.containers.ports", "--output=plaintext-openapiv2"]).stdout;
        let wanted = [
            "KIND:     Pod\nVERSION:  v1\n\nRESOURCE: ports <[]Object>\n",
            "     List of ports to expose from the container.",
            "     ContainerPort represents a network port in a single container.",
            "   containerPort\t<integer> -required-\n     Number of port to expose on the pod's IP address.",
            "   protocol\t<string>\n",
        ];
        for text in wanted {
            assert!(explained.contains(text), "{binary}: no {text:?} in:\n{explained}");
        }
    }

    // The JSON form, as Python's json module reads it.
    let raw = ok("kubectl", d, &["get", "--raw", "/openapi/v2"]).stdout;
    let check = "import json, sys\n\
                 d = json.load(sys.stdin)\n\
                 pod = d['definitions']['io.k8s.api.core.v1.Pod']\n\
                 assert d['swagger'] == '2.0', d['swagger']\n\
                 assert pod['x-kubernetes-group-version-kind'] == [{'group': '', 'version': 'v1', 'kind': 'Pod'}]\n\
                 ref = pod['properties']['spec']['$ref']\n\
                 assert ref.split('/')[-1] in d['definitions'], ref\n\
                 patch = d['paths']['/api/v1/namespaces/{namespace}/pods/{name}']['patch']\n\
                 assert any(p['name'] == 'fieldValidation' for p in patch['parameters'])\n\
                 print(d['info']['version'])\n";
    let mut python = Command::new("python3");
    python.args(["-c", check]);
    let parsed = run_with_input(python, raw.as_bytes());
    assert_eq!((parsed.code, parsed.stdout.as_str()), (0, "v1.33.0\n"), "{}", parsed.stderr);

    // A client-side apply of a change: kubectl fetches v2 for the patch type, finds no strategic
    // merge offered, and computes one from its own types, as before v2 was served.
    let manifest = |value: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {value}\n");
    let file = d.join("settings.yaml");
    std::fs::write(&file, manifest("one")).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(ok("kubectl", d, &["apply", "-f", file]).stdout, "configmap/settings created\n");
    std::fs::write(file, manifest("two")).unwrap();
    let applied = ok("kubectl", d, &["apply", "-f", file, "-v=7"]);
    assert_eq!(applied.stdout, "configmap/settings configured\n");
    let log = &applied.stderr;
    let asked = log.find("/openapi/v2?").unwrap_or_else(|| panic!("no GET /openapi/v2 in:\n{log}"));
    let answer = log[asked..].lines().find(|l| l.contains("\"Response\"")).unwrap_or_default();
    assert!(answer.contains("status=\"200 OK\""), "{log}");
    assert!(log.contains("Content-Type: application/strategic-merge-patch+json"), "{log}");
    let data = ok("kubectl", d, &["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"]).stdout;
    assert_eq!(data, "two");
}
