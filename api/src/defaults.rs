//! API-server defaulting (`pkg/apis/*/v1/defaults.go` plus the admission plugins that every
//! cluster runs), so that `-o yaml` shows what Kubernetes shows. Only absent fields are filled;
//! applying twice changes nothing. Allocations (ClusterIPs, node ports, names) are not done here.

use crate::typed::{IntOrString, Service};
use serde_json::{json, Map, Value};

pub fn apply_defaults(obj: &mut Value) {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "Pod" => {
            let spec = object_at(obj, "spec");
            pod_spec(spec);
            pod_admission(spec);
        }
        "Deployment" => deployment(object_at(obj, "spec")),
        "ReplicaSet" => {
            let spec = object_at(obj, "spec");
            set(spec, "replicas", json!(1));
            pod_spec(object_at(object_at(spec, "template"), "spec"));
        }
        "Namespace" => namespace(obj),
        "Service" => service_json(obj),
        _ => {}
    }
}

/// The object at `key` in `v` (created when absent or not an object).
fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let map = v.as_object_mut().expect("made an object above");
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot
}

/// Sets `key` unless it is present and non-null.
fn set(v: &mut Value, key: &str, default: Value) {
    if let Some(map) = v.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = default;
        }
    }
}

fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().filter(|i| i.is_object()).for_each(&mut f);
    }
}

/// SetDefaults_PodSpec and the container defaults; applies to pod templates too.
fn pod_spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    each_mut(spec, "containers", container);
    each_mut(spec, "initContainers", container);
    each_mut(spec, "volumes", |vol| {
        // Secret, ConfigMap, downward API and projected volumes: mode 0644.
        for source in ["secret", "configMap", "downwardAPI", "projected"] {
            if vol.get(source).is_some_and(Value::is_object) {
                set(object_at(vol, source), "defaultMode", json!(420));
            }
        }
    });
}

/// What a Pod (not a template) gets from SetDefaults_Pod and admission: service account,
/// priority, and the not-ready/unreachable tolerations of DefaultTolerationSeconds.
fn pod_admission(spec: &mut Value) {
    set(spec, "enableServiceLinks", json!(true));
    set(spec, "serviceAccountName", json!("default"));
    let sa = spec["serviceAccountName"].clone();
    set(spec, "serviceAccount", sa);
    set(spec, "priority", json!(0));
    set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set(spec, "tolerations", json!([]));
    if let Some(tolerations) = spec["tolerations"].as_array_mut() {
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let tolerated = tolerations.iter().any(|t| {
                let key_ok = t["key"].as_str() == Some(key)
                    || (t["key"].as_str().unwrap_or_default().is_empty() && t["operator"].as_str() == Some("Exists"));
                let effect = t["effect"].as_str().unwrap_or_default();
                key_ok && (effect.is_empty() || effect == "NoExecute")
            });
            if !tolerated {
                tolerations.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default();
    set(c, "imagePullPolicy", json!(if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" }));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    each_mut(c, "ports", |p| set(p, "protocol", json!("TCP")));
    each_mut(c, "env", |e| {
        if let Some(field_ref) = e.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")) {
            set(field_ref, "apiVersion", json!("v1"));
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if c.get(probe).is_some_and(Value::is_object) {
            let p = object_at(c, probe);
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if p.get("httpGet").is_some_and(Value::is_object) {
                let get = object_at(p, "httpGet");
                set(get, "path", json!("/"));
                set(get, "scheme", json!("HTTP"));
            }
        }
    }
}

/// The tag of an image reference: `latest` when none is given, "" when pinned by digest only.
fn image_tag(image: &str) -> &str {
    if image.contains('@') {
        return "";
    }
    // A ':' after the last '/' separates the tag (a ':' before it is a registry port).
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map_or("latest", |(_, tag)| tag)
}

fn deployment(spec: &mut Value) {
    set(spec, "replicas", json!(1));
    let strategy = object_at(spec, "strategy");
    set(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let rolling = object_at(strategy, "rollingUpdate");
        set(rolling, "maxUnavailable", json!("25%"));
        set(rolling, "maxSurge", json!("25%"));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    pod_spec(object_at(object_at(spec, "template"), "spec"));
}

fn namespace(obj: &mut Value) {
    let name = obj["metadata"]["name"].clone();
    if name.is_string() {
        // Every namespace carries its own name as a label (1.21+).
        set(object_at(object_at(obj, "metadata"), "labels"), "kubernetes.io/metadata.name", name);
    }
    set(object_at(obj, "spec"), "finalizers", json!(["kubernetes"]));
    set(object_at(obj, "status"), "phase", json!("Active"));
}

/// SVC-1..3 and SVC-5 (no allocation: clusterIP, ipFamilies and nodePorts are the registry's).
pub fn service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_default();
    let ty = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    spec.session_affinity.get_or_insert_with(|| "None".into());
    if ty != "ExternalName" {
        spec.internal_traffic_policy.get_or_insert_with(|| "Cluster".into());
        for p in spec.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
            // targetPort defaults to the port (an explicit 0 counts as unset).
            if p.target_port == Some(IntOrString::Int(0)) || p.target_port.is_none() {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.external_traffic_policy.get_or_insert_with(|| "Cluster".into());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    match spec.session_affinity.as_deref() {
        Some("ClientIP") => {
            let config = spec.session_affinity_config.get_or_insert_default().client_ip.get_or_insert_default();
            config.timeout_seconds.get_or_insert(10800);
        }
        Some("None") => spec.session_affinity_config = None,
        _ => {}
    }
    svc.status.get_or_insert_default().load_balancer.get_or_insert_default();
}

/// [`service`] on a Service's JSON (objects the controller makes itself); JSON that does not
/// decode is left as it is.
fn service_json(obj: &mut Value) {
    if let Ok(mut svc) = crate::typed::decode::<Service>(obj) {
        service(&mut svc);
        *obj = crate::typed::encode(&svc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(mut v: Value) -> Value {
        apply_defaults(&mut v);
        let once = v.clone();
        apply_defaults(&mut v);
        assert_eq!(v, once, "defaulting must be idempotent");
        v
    }

    #[test]
    fn pod_like_the_api_server() {
        let pod = defaulted(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "nginxsecret"}}]}}));
        let spec = &pod["spec"];
        for (k, v) in [
            ("dnsPolicy", json!("ClusterFirst")),
            ("enableServiceLinks", json!(true)),
            ("preemptionPolicy", json!("PreemptLowerPriority")),
            ("priority", json!(0)),
            ("restartPolicy", json!("Always")),
            ("schedulerName", json!("default-scheduler")),
            ("securityContext", json!({})),
            ("serviceAccount", json!("default")),
            ("serviceAccountName", json!("default")),
            ("terminationGracePeriodSeconds", json!(30)),
        ] {
            assert_eq!(spec[k], v, "{k}");
        }
        assert_eq!(
            spec["tolerations"],
            json!([
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}])
        );
        assert_eq!(
            spec["containers"][0],
            json!({"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}})
        );
        assert_eq!(spec["volumes"][0]["secret"], json!({"secretName": "nginxsecret", "defaultMode": 420}));
    }

    #[test]
    fn existing_tolerations_and_values_are_kept() {
        let pod = defaulted(json!({"kind": "Pod", "spec": {"restartPolicy": "Never", "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
            "containers": [{"name": "c", "image": "busybox:1.37", "imagePullPolicy": "Never"}]}}));
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("bprashanth/nginxhttps:1.0"), "1.0");
        assert_eq!(image_tag("localhost:5000/app"), "latest");
        assert_eq!(image_tag("nginx@sha256:abc"), "");
        let pod = defaulted(json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "radial/busyboxplus:curl"}]}}));
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn deployment_and_template() {
        let d = defaulted(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-nginx"},
            "spec": {"selector": {"matchLabels": {"run": "my-nginx"}}, "template": {"metadata": {"labels": {"run": "my-nginx"}},
            "spec": {"containers": [{"name": "my-nginx", "image": "nginx"}]}}}}));
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
        assert_eq!((spec["revisionHistoryLimit"].clone(), spec["progressDeadlineSeconds"].clone()), (json!(10), json!(600)));
        let tspec = &spec["template"]["spec"];
        assert_eq!(tspec["restartPolicy"], "Always");
        assert_eq!(tspec["containers"][0]["terminationMessagePolicy"], "File");
        // Admission defaults apply to pods, not templates.
        assert!(tspec.get("serviceAccountName").is_none() && tspec.get("tolerations").is_none());
        assert!(tspec.get("enableServiceLinks").is_none());

        let recreate = defaulted(json!({"kind": "Deployment", "spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}));
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 0);
        let rs = defaulted(json!({"kind": "ReplicaSet", "spec": {"template": {"spec": {"containers": []}}}}));
        assert_eq!(rs["spec"]["replicas"], 1);
    }

    #[test]
    fn namespace_and_service() {
        let ns = defaulted(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "dev"}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));

        let svc = defaulted(json!({"kind": "Service", "spec": {"type": "NodePort", "ports": [
            {"port": 8080, "targetPort": 80, "name": "http"}, {"port": 443, "name": "https"}]}}));
        let spec = &svc["spec"];
        assert_eq!(
            spec["ports"],
            json!([
            {"port": 8080, "targetPort": 80, "name": "http", "protocol": "TCP"},
            {"port": 443, "name": "https", "protocol": "TCP", "targetPort": 443}])
        );
        assert_eq!((spec["sessionAffinity"].clone(), spec["externalTrafficPolicy"].clone()), (json!("None"), json!("Cluster")));
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));

        let sticky = defaulted(json!({"kind": "Service", "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}));
        assert_eq!(sticky["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
        assert_eq!(sticky["spec"]["type"], "ClusterIP");
        assert!(sticky["spec"].get("externalTrafficPolicy").is_none());
        let ext = defaulted(json!({"kind": "Service", "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(ext["spec"].get("externalTrafficPolicy").is_none());
        let lb = defaulted(json!({"kind": "Service", "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
        let spec = &lb["spec"];
        assert_eq!(
            [&spec["externalTrafficPolicy"], &spec["internalTrafficPolicy"], &spec["allocateLoadBalancerNodePorts"]],
            [&json!("Cluster"), &json!("Cluster"), &json!(true)]
        );
        // A policy the user chose is kept; node ports are not defaulting's.
        let local =
            defaulted(json!({"kind": "Service", "spec": {"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}));
        assert_eq!(local["spec"]["externalTrafficPolicy"], "Local");
        assert!(local["spec"]["ports"][0].get("nodePort").is_none() && local["spec"].get("healthCheckNodePort").is_none());
    }
}
