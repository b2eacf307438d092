//! The real kubectl's server-side apply against emu (issue 17): field managers recorded in
//! `metadata.managedFields` as kube-apiserver records them, an apply that would change a field
//! another manager set (`kubectl scale`) refused with kube-apiserver's conflict, which kubectl
//! prints, `--force-conflicts` taking the field, a field dropped from the applied file removed,
//! a server-side dry run storing nothing, and client-side apply (and its move to server-side)
//! working as before.

mod kubectl_support;

use kubectl_support::{cluster, kubectl};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn deployment(replicas: u32, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n{labels}spec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    \
         spec:\n      containers:\n      - name: nginx\n        image: nginx\n        ports:\n        - containerPort: 80\n"
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = kubectl(dir, LIMIT, args);
    assert_eq!(r.code, 0, "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.stdout
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

/// The managers of an object, as `manager operation [subresource]`.
fn managers(v: &Value) -> Vec<String> {
    v["metadata"]["managedFields"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    let sub = e["subresource"].as_str().map(|s| format!(" {s}")).unwrap_or_default();
                    format!("{} {}{sub}", e["manager"].as_str().unwrap_or(""), e["operation"].as_str().unwrap_or(""))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_with_managers_and_conflicts() {
    let (c, dir) = cluster("tkapply");
    let d = &dir.0;
    let file = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let two = file("two.yaml", &deployment(2, "    app: web\n    tier: front\n"));
    let three = file("three.yaml", &deployment(3, "    app: web\n    tier: front\n"));
    let untiered = file("untiered.yaml", &deployment(3, "    app: web\n"));
    let seven = file("seven.yaml", &deployment(7, "    app: web\n"));

    assert_eq!(ok(d, &["apply", "--server-side", "-f", &two]), "deployment.apps/web serverside-applied\n");
    let web = json(d, &["get", "deployment", "web", "-o", "json", "--show-managed-fields"]);
    assert_eq!(managers(&web), ["kubectl Apply"], "{web}");
    let applied = &web["metadata"]["managedFields"][0];
    assert_eq!((applied["apiVersion"].as_str(), applied["fieldsType"].as_str()), (Some("apps/v1"), Some("FieldsV1")));
    assert_eq!(applied["fieldsV1"]["f:spec"]["f:replicas"], serde_json::json!({}));
    assert!(
        applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:image"].is_object(),
        "{applied}"
    );
    // kubectl (and emu) hide them unless asked.
    assert!(!ok(d, &["get", "deployment", "web", "-o", "yaml"]).contains("managedFields"));
    assert!(!c.emu(&["get", "deployment", "web", "-o", "yaml"]).ok().stdout.contains("managedFields"));

    // kubectl scale is an update of the scale subresource by the manager "kubectl": the
    // applier's replicas are now its, and applying other replicas conflicts.
    assert_eq!(ok(d, &["scale", "deployment", "web", "--replicas=5"]), "deployment.apps/web scaled\n");
    let r = kubectl(d, LIMIT, &["apply", "--server-side", "-f", &three]);
    assert_ne!(r.code, 0, "the conflicting apply succeeded: {}", r.stdout);
    assert!(
        r.stderr.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas\n\
             Please review the fields above--they currently have other managers."
        ),
        "{}",
        r.stderr
    );
    let shown = ok(d, &["get", "deployment", "web", "-o", "yaml", "--show-managed-fields"]);
    assert!(shown.contains("  - apiVersion: apps/v1\n    fieldsType: FieldsV1\n"), "{shown}");
    assert!(shown.contains("    manager: kubectl\n    operation: Apply\n"), "{shown}");
    assert!(shown.contains("    manager: kubectl\n    operation: Update\n    subresource: scale\n"), "{shown}");
    assert_eq!(ok(d, &["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "5");

    // Forced, the apply takes replicas back (the scale entry had nothing else and goes).
    assert_eq!(ok(d, &["apply", "--server-side", "--force-conflicts", "-f", &three]), "deployment.apps/web serverside-applied\n");
    let web = json(d, &["get", "deployment", "web", "-o", "json", "--show-managed-fields"]);
    assert_eq!((web["spec"]["replicas"].as_i64(), managers(&web)), (Some(3), vec!["kubectl Apply".to_string()]));

    // A label the file no longer has is removed; a server-side dry run stores nothing.
    assert_eq!(ok(d, &["apply", "--server-side", "-f", &untiered]), "deployment.apps/web serverside-applied\n");
    let web = json(d, &["get", "deployment", "web", "-o", "json"]);
    assert_eq!(web["metadata"]["labels"], serde_json::json!({"app": "web"}));
    assert!(web["metadata"].get("managedFields").is_none(), "kubectl hides managedFields in -o json too");
    assert_eq!(
        ok(d, &["apply", "--server-side", "--dry-run=server", "-f", &seven]),
        "deployment.apps/web serverside-applied (server dry run)\n"
    );
    assert_eq!(ok(d, &["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "3");

    // Client-side apply records kubectl-client-side-apply, as before configured and unchanged;
    // a server-side apply of the same file then takes the fields over (kubectl migrates the
    // client-side manager's fields with a JSON patch of managedFields first).
    let cm = file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n");
    let cm2 = file("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"2\"\n");
    assert_eq!(ok(d, &["apply", "-f", &cm]), "configmap/settings created\n");
    assert_eq!(ok(d, &["apply", "-f", &cm2]), "configmap/settings configured\n");
    assert_eq!(ok(d, &["apply", "-f", &cm2]), "configmap/settings unchanged\n");
    let settings = json(d, &["get", "configmap", "settings", "-o", "json", "--show-managed-fields"]);
    assert_eq!(managers(&settings), ["kubectl-client-side-apply Update"], "{settings}");
    assert_eq!(ok(d, &["apply", "--server-side", "-f", &cm]), "configmap/settings serverside-applied\n");
    let settings = json(d, &["get", "configmap", "settings", "-o", "json", "--show-managed-fields"]);
    assert_eq!(settings["data"], serde_json::json!({"a": "1"}));
    assert!(managers(&settings).contains(&"kubectl Apply".to_string()), "{settings}");
}
