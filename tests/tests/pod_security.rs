//! Pod Security admission (issue 19): a Namespace's `pod-security.kubernetes.io/enforce` label
//! (privileged, baseline, restricted) refuses the pods that break its level, with
//! kube-apiserver's message, through `emu apply` and through kubectl; a pod that meets the level
//! is created and runs; an unknown level is refused on the Namespace itself; and a field emu
//! does not support is refused by validation first, as kube-apiserver validates before its
//! admission plugins.
//!
//! Its `warn` label lets the pods and workload templates that break its level be written, with
//! kube-apiserver's warning, which `emu` and kubectl print as `Warning: …` on stderr; a
//! Namespace whose enforce level gets stricter warns about the pods already in it that break
//! it; and a request enforce refuses gets no warning.

mod kubectl_support;

use emu_tests::is_ready;
use kubectl_support::kubectl_with_input;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

const NAMESPACES: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: locked
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
---
apiVersion: v1
kind: Namespace
metadata:
  name: base
  labels: {pod-security.kubernetes.io/enforce: baseline}
"#;

/// A pod of one busybox container `c` in `namespace`, with `extra` lines of its spec (indented
/// two spaces) and the container's `securityContext` (or none).
fn pod(name: &str, namespace: &str, extra: &str, security: &str) -> String {
    let security = if security.is_empty() { String::new() } else { format!("\n    securityContext: {security}") };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"3600\"]{security}\n"
    )
}

const RESTRICTED_REFUSAL: &str = "pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

#[test]
fn namespaces_enforce_their_pod_security_level() {
    let (c, dir) = kubectl_support::cluster("tpodsec");
    c.apply("namespaces.yaml", NAMESPACES).ok();
    // The stderr of `emu apply -f FILE`, the file named as given (kubectl names the file of a
    // refused object: `error when creating "FILE": `).
    let refused = |file: &str, yaml: &str| {
        let r = c.apply(file, yaml);
        assert_eq!(r.code, 1, "{file} was admitted: {}{}", r.stdout, r.stderr);
        r.stderr.replace(&format!("{}/", c.scratch_dir().display()), "")
    };

    // restricted: a plain pod, with every check it fails in kube-apiserver's order.
    let plain = pod("plain", "locked", "", "");
    assert_eq!(
        refused("plain.yaml", &plain),
        format!("Error from server (Forbidden): error when creating \"plain.yaml\": {RESTRICTED_REFUSAL}\n")
    );
    // Explicit settings are named for what they set; a field emu does not support gets
    // validation's message, before Pod Security's; baseline refuses what is more than the
    // container runtime's defaults.
    let cases = [
        (
            pod(
                "root",
                "locked",
                "  securityContext: {runAsUser: 0, seccompProfile: {type: RuntimeDefault}}\n",
                "{allowPrivilegeEscalation: false, runAsNonRoot: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CHOWN]}}",
            ),
            "Error from server (Forbidden): error when creating \"FILE\": pods \"root\" is forbidden: violates PodSecurity \"restricted:latest\": unrestricted capabilities (container \"c\" must not include \"CHOWN\" in securityContext.capabilities.add), runAsNonRoot != true (container \"c\" must not set securityContext.runAsNonRoot=false), runAsUser=0 (pod must not set runAsUser=0)\n",
        ),
        (
            pod("host", "locked", "  hostNetwork: true\n", ""),
            "The Pod \"host\" is invalid: spec.hostNetwork: Forbidden: emu does not support host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service\n",
        ),
        (
            pod("raw", "base", "", "{capabilities: {add: [NET_RAW]}}"),
            "Error from server (Forbidden): error when creating \"FILE\": pods \"raw\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"c\" must not include \"NET_RAW\" in securityContext.capabilities.add)\n",
        ),
        (
            pod("unconfined", "base", "  securityContext: {seccompProfile: {type: Unconfined}}\n", ""),
            "Error from server (Forbidden): error when creating \"FILE\": pods \"unconfined\" is forbidden: violates PodSecurity \"baseline:latest\": seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")\n",
        ),
    ];
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        let file = format!("refused-{i}.yaml");
        assert_eq!(refused(&file, yaml), expected.replace("FILE", &file));
    }
    assert_eq!(c.apply("base-plain.yaml", &pod("plain", "base", "", "")).ok().stdout, "pod/plain created\n");

    // A pod that meets restricted is created in the restricted namespace and runs.
    let compliant = pod(
        "compliant",
        "locked",
        "  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}\n",
        "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
    );
    assert_eq!(c.apply("compliant.yaml", &compliant).ok().stdout, "pod/compliant created\n");
    for (namespace, name) in [("locked", "compliant"), ("base", "plain")] {
        c.wait_for(&format!("pod {namespace}/{name} ready"), Duration::from_secs(30), || {
            let r = c.emu(&["get", "pod", name, "-n", namespace, "-o", "json"]).ok();
            let p: serde_json::Value = serde_json::from_str(&r.stdout).expect("get pod -o json");
            is_ready(&p).then_some(())
        });
    }

    // An unknown level is refused on the Namespace, with PodSecurity's message.
    let wrong = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: wrong\n  labels: {pod-security.kubernetes.io/enforce: strict}\n";
    let invalid_label = "The Namespace \"wrong\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted\n";
    assert_eq!(refused("wrong.yaml", wrong), invalid_label);

    // kubectl, through the REST API, prints the same refusals (naming its input, as it does).
    let k = kubectl_with_input(&dir.0, LIMIT, &["apply", "-f", "-"], plain.as_bytes());
    assert_eq!(
        (k.code, k.stderr.as_str()),
        (1, format!("Error from server (Forbidden): error when creating \"STDIN\": {RESTRICTED_REFUSAL}\n").as_str())
    );
    let k = kubectl_with_input(&dir.0, LIMIT, &["create", "-f", "-"], wrong.as_bytes());
    assert_eq!((k.code, k.stderr.as_str()), (1, invalid_label));
    // A Deployment's pods are admitted alike: its ReplicaSet cannot create them and says why, in a
    // FailedCreate event naming the pods by their generateName, as the ReplicaSet controller does.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: locked}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox, command: [sleep, \"3600\"]}]}\n";
    assert_eq!(c.apply("deployment.yaml", deployment).ok().stdout, "deployment.apps/web created\n");
    let event = c.wait_for("the ReplicaSet's FailedCreate event", Duration::from_secs(20), || {
        let events = c.emu(&["get", "events", "-n", "locked", "-o", "json"]).ok().stdout;
        let v: serde_json::Value = serde_json::from_str(&events).ok()?;
        v["items"].as_array()?.iter().find(|e| e["reason"] == "FailedCreate").map(|e| e["message"].as_str().unwrap_or_default().to_string())
    });
    assert!(
        event.starts_with("Error creating: pods \"web-")
            && event.contains("-\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{event}"
    );
    println!("{event}");
    assert_eq!(c.emu(&["get", "pods", "-n", "locked", "-l", "app=web", "-o", "name"]).ok().stdout, "", "no pod of the Deployment");

    // None of the refused pods exists.
    let listed = c.emu(&["get", "pods", "-A", "-o", "name"]).ok().stdout;
    for gone in ["root", "host", "raw", "unconfined"] {
        assert!(!listed.lines().any(|l| l == format!("pod/{gone}")), "{listed}");
    }
}

/// What kube-apiserver tells of a plain pod's (or template's) container `c` at restricted.
const RESTRICTED_DETAIL: &str = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

/// A Deployment `name` of no replicas (its template alone is what is warned about; no pod of it
/// joins the namespace's pods) with a plain container `c`.
fn deployment(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox, command: [sleep, \"3600\"]}}]}}\n"
    )
}

#[test]
fn warn_lets_writes_through_with_kube_apiservers_warnings() {
    let (c, dir) = kubectl_support::cluster("tpswarn");
    let watched = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: watched\n  labels: {pod-security.kubernetes.io/warn: restricted}\n";
    let r = c.apply("watched.yaml", watched).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("namespace/watched created\n", ""));
    let warning = format!("Warning: would violate PodSecurity \"restricted:latest\": {RESTRICTED_DETAIL}\n");

    // emu apply: the pod is created, the warning on stderr, kubectl's words.
    let r = c.apply("plain.yaml", &pod("plain", "watched", "", "")).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("pod/plain created\n", warning.as_str()));
    // The real kubectl gets it as a `Warning: 299 - "…"` header and prints it the same.
    let k = kubectl_with_input(&dir.0, LIMIT, &["apply", "-f", "-"], pod("plain2", "watched", "", "").as_bytes());
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.as_str()), (0, "pod/plain2 created\n", warning.as_str()));
    // A Deployment's pod template, through either.
    let r = c.apply("web.yaml", &deployment("web", "watched")).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("deployment.apps/web created\n", warning.as_str()));
    let k = kubectl_with_input(&dir.0, LIMIT, &["apply", "-f", "-"], deployment("web2", "watched").as_bytes());
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.as_str()), (0, "deployment.apps/web2 created\n", warning.as_str()));
    // Several objects of one apply: each line after its own warnings, a warning said once.
    let two = format!("{}---\n{}", pod("plain3", "watched", "", ""), pod("plain4", "watched", "", ""));
    let r = c.apply("two.yaml", &two).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("pod/plain3 created\npod/plain4 created\n", warning.as_str()));
    let listed = c.emu(&["get", "pods", "-n", "watched", "-o", "name"]).ok().stdout;
    assert_eq!(listed, "pod/plain\npod/plain2\npod/plain3\npod/plain4\n");

    // Enforcing restricted over them: the namespace is changed, with a warning naming the pods
    // that break the new level, grouped by what they break.
    let enforced = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: watched\n  labels: {pod-security.kubernetes.io/warn: restricted, pod-security.kubernetes.io/enforce: restricted}\n";
    let existing = "Warning: existing pods in namespace \"watched\" violate the new PodSecurity enforce level \"restricted:latest\"\nWarning: plain (and 3 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile\n";
    let r = c.apply("enforced.yaml", enforced).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("namespace/watched configured\n", existing));
    // Now enforce refuses a plain pod, and its refusal comes without the warn level's warning.
    let r = c.apply("late.yaml", &pod("late", "watched", "", ""));
    let refused = RESTRICTED_REFUSAL.replace("\"plain\"", "\"late\"");
    let late = c.scratch_dir().join("late.yaml");
    let expected = format!("Error from server (Forbidden): error when creating {:?}: {refused}\n", late.display().to_string());
    assert_eq!((r.code, r.stderr.as_str()), (1, expected.as_str()));
    let k = kubectl_with_input(&dir.0, LIMIT, &["create", "-f", "-"], pod("late", "watched", "", "").as_bytes());
    assert_eq!(
        (k.code, k.stderr.as_str()),
        (1, format!("Error from server (Forbidden): error when creating \"STDIN\": {refused}\n").as_str())
    );

    // kubectl label of a namespace whose pod breaks the new level: the same warnings, one pod.
    let mut alone = "apiVersion: v1\nkind: Namespace\nmetadata: {name: unlabelled}\n---\n".to_string();
    alone.push_str(&pod("solo", "unlabelled", "", ""));
    let r = c.apply("unlabelled.yaml", &alone).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("namespace/unlabelled created\npod/solo created\n", ""));
    let k = kubectl_support::kubectl(&dir.0, LIMIT, &["label", "ns", "unlabelled", "pod-security.kubernetes.io/enforce=baseline"]);
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.as_str()), (0, "namespace/unlabelled labeled\n", ""), "baseline: nothing to say");
    let k = kubectl_support::kubectl(
        &dir.0,
        LIMIT,
        &["label", "--overwrite", "ns", "unlabelled", "pod-security.kubernetes.io/enforce=restricted"],
    );
    let expected = "Warning: existing pods in namespace \"unlabelled\" violate the new PodSecurity enforce level \"restricted:latest\"\nWarning: solo: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile\n";
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.as_str()), (0, "namespace/unlabelled labeled\n", expected));
    // The pods stay: a new enforce level admits or refuses only what comes next.
    assert_eq!(c.emu(&["get", "pod", "solo", "-n", "unlabelled", "-o", "name"]).ok().stdout, "pod/solo\n");
}
