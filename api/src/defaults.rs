//! API-server defaulting (`pkg/apis/*/v1/defaults.go` plus the admission plugins that every
//! cluster runs), so that `-o yaml` shows what Kubernetes shows. Defaults work on the decoded
//! object ([`crate::typed`]): only absent fields are filled; applying twice changes nothing.
//! Allocations (ClusterIPs, node ports, names) are not done here.

use crate::typed::{
    Container, Deployment, DeploymentSpec, IntOrString, Namespace, Object, Pod, PodSpec, Probe, ReplicaSet, RoleRef, Service, Subject,
    Toleration,
};
use serde_json::Value;

mod daemonset;
mod gateway;
pub mod ingress;
pub mod job;
mod statefulset;

/// Defaults a decoded object of any kind (kinds without defaults are left as they are).
pub fn object(object: &mut Object) {
    match object {
        Object::Pod(p) => pod(p),
        Object::Deployment(d) => deployment(d),
        Object::ReplicaSet(rs) => replica_set(rs),
        Object::DaemonSet(ds) => daemonset::daemon_set(ds),
        Object::StatefulSet(sts) => statefulset::stateful_set(sts),
        Object::Job(job) => job::job(job),
        Object::CronJob(cj) => job::cron_job(cj),
        Object::IngressClass(ic) => ingress::ingress_class(ic),
        Object::GatewayClass(gc) => gateway::gateway_class(gc),
        Object::Gateway(gw) => gateway::gateway(gw),
        Object::HTTPRoute(route) => gateway::http_route(route),
        Object::Namespace(ns) => namespace(ns),
        Object::Service(svc) => service(svc),
        // SetDefaults_Secret.
        Object::Secret(secret) => {
            secret.type_.get_or_insert_with(|| "Opaque".into());
        }
        Object::RoleBinding(b) => binding(&mut b.role_ref, b.subjects.iter_mut().flatten()),
        Object::ClusterRoleBinding(b) => binding(&mut b.role_ref, b.subjects.iter_mut().flatten()),
        _ => {}
    }
}

/// The API group of RBAC's own kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// A RoleBinding's or ClusterRoleBinding's defaults (rbac/v1 `SetDefaults_RoleBinding`,
/// `SetDefaults_Subject`): the roleRef's group is RBAC's; a User's or Group's subject group too.
/// A ServiceAccount's is the core group, `""`, which Go's encoding leaves out: it stays unset.
pub fn binding<'a>(role_ref: &mut RoleRef, subjects: impl Iterator<Item = &'a mut Subject>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = RBAC_GROUP.into();
    }
    for s in subjects {
        if s.api_group.as_deref().unwrap_or_default().is_empty() && matches!(s.kind.as_str(), "User" | "Group") {
            s.api_group = Some(RBAC_GROUP.into());
        }
    }
}

/// [`object`] on JSON, for objects the controller builds itself as JSON: decoded, defaulted
/// and encoded again. JSON of another kind, or that does not decode, is left as it is.
pub fn apply_defaults(v: &mut Value) {
    let kind = crate::object::kind(v);
    if !matches!(
        kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "StatefulSet"
            | "Job"
            | "CronJob"
            | "IngressClass"
            | "GatewayClass"
            | "Gateway"
            | "HTTPRoute"
            | "Namespace"
            | "Service"
            | "Secret"
            | "RoleBinding"
            | "ClusterRoleBinding"
    ) {
        return;
    }
    if let Ok(mut o) = Object::decode(kind, v) {
        object(&mut o);
        *v = o.to_json();
    }
}

/// A Pod: its spec's defaults and what admission adds to a Pod (not a template).
pub fn pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_default();
    pod_spec(spec);
    pod_admission(spec);
}

/// SetDefaults_PodSpec and the container defaults; applies to pod templates too.
pub fn pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_default();
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    spec.containers.iter_mut().for_each(container);
    spec.init_containers.iter_mut().flatten().for_each(container);
    for vol in spec.volumes.iter_mut().flatten() {
        // Secret, ConfigMap, downward API and projected volumes: mode 0644.
        let modes = [
            vol.secret.as_mut().map(|s| &mut s.default_mode),
            vol.config_map.as_mut().map(|s| &mut s.default_mode),
            vol.downward_api.as_mut().map(|s| &mut s.default_mode),
            vol.projected.as_mut().map(|s| &mut s.default_mode),
        ];
        for mode in modes.into_iter().flatten() {
            mode.get_or_insert(420);
        }
    }
}

/// What a Pod (not a template) gets from SetDefaults_Pod and admission: service account,
/// priority, and the not-ready/unreachable tolerations of DefaultTolerationSeconds.
fn pod_admission(spec: &mut PodSpec) {
    spec.enable_service_links.get_or_insert(true);
    // The deprecated `serviceAccount` names the account when `serviceAccountName` does not (the
    // v1 conversion); the ServiceAccount admission then fills in `default` and mirrors it back.
    let deprecated = spec.service_account.clone().filter(|n| !n.is_empty());
    let sa = spec.service_account_name.get_or_insert_with(|| deprecated.unwrap_or_else(|| "default".into())).clone();
    spec.service_account.get_or_insert(sa);
    spec.priority.get_or_insert(0);
    spec.preemption_policy.get_or_insert_with(|| "PreemptLowerPriority".into());
    let tolerations = spec.tolerations.get_or_insert_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = tolerations.iter().any(|t| {
            let t_key = t.key.as_deref().unwrap_or_default();
            let key_ok = t_key == key || (t_key.is_empty() && t.operator.as_deref() == Some("Exists"));
            let effect = t.effect.as_deref().unwrap_or_default();
            key_ok && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(Toleration {
                effect: Some("NoExecute".into()),
                key: Some(key.into()),
                operator: Some("Exists".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

fn container(c: &mut Container) {
    let image = c.image.as_deref().unwrap_or_default();
    let pull = if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" };
    c.image_pull_policy.get_or_insert_with(|| pull.into());
    c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy.get_or_insert_with(|| "File".into());
    c.resources.get_or_insert_default();
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(field_ref) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_ref.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten().for_each(probe);
}

fn probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(get) = p.http_get.as_mut() {
        get.path.get_or_insert_with(|| "/".into());
        get.scheme.get_or_insert_with(|| "HTTP".into());
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

pub fn deployment(d: &mut Deployment) {
    let spec: &mut DeploymentSpec = d.spec.get_or_insert_default();
    spec.replicas.get_or_insert(1);
    let strategy = spec.strategy.get_or_insert_default();
    if strategy.type_.get_or_insert_with(|| "RollingUpdate".into()) == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_default();
        rolling.max_unavailable.get_or_insert_with(|| IntOrString::String("25%".into()));
        rolling.max_surge.get_or_insert_with(|| IntOrString::String("25%".into()));
    } else if strategy.type_.as_deref() == Some("Recreate") {
        // What strategic merge's retainKeys leaves when apply switches a Deployment to Recreate
        // (emu's merge keeps the old, defaulted rollingUpdate; kube-apiserver would refuse it).
        strategy.rolling_update = None;
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    pod_spec(spec.template.spec.get_or_insert_default());
}

pub fn replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_default();
    spec.replicas.get_or_insert(1);
    pod_spec(spec.template.get_or_insert_default().spec.get_or_insert_default());
}

pub fn namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone() {
        // Every namespace carries its own name as a label (1.21+).
        ns.metadata.labels.get_or_insert_default().entry("kubernetes.io/metadata.name".into()).or_insert(name);
    }
    ns.spec.get_or_insert_default().finalizers.get_or_insert_with(|| vec!["kubernetes".into()]);
    ns.status.get_or_insert_default().phase.get_or_insert_with(|| "Active".into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn a_secret_without_a_type_is_opaque() {
        let s = defaulted(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}}));
        assert_eq!(s["type"], "Opaque");
        let tls = defaulted(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "type": "kubernetes.io/tls"}));
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }

    #[test]
    fn the_deprecated_service_account_names_the_account() {
        let pod = defaulted(json!({"kind": "Pod", "spec": {"serviceAccount": "robot", "containers": [{"name": "c", "image": "busybox"}]}}));
        assert_eq!((pod["spec"]["serviceAccountName"].as_str(), pod["spec"]["serviceAccount"].as_str()), (Some("robot"), Some("robot")));
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
    fn probes_volumes_init_containers_and_field_refs() {
        let mut p: Pod = crate::typed::decode(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1.37"}],
            "containers": [{"name": "c", "image": "nginx:1.27",
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "readinessProbe": {"httpGet": {"port": 80}},
                "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5}}],
            "volumes": [{"name": "c", "configMap": {"name": "c"}}, {"name": "d", "downwardAPI": {}},
                {"name": "p", "projected": {"sources": []}}, {"name": "s", "secret": {"secretName": "s", "defaultMode": 256}},
                {"name": "e", "emptyDir": {}}]}}))
        .unwrap();
        pod(&mut p);
        let once = p.clone();
        pod(&mut p);
        assert_eq!(p, once, "defaulting must be idempotent");
        let spec = p.spec.unwrap();
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!((init.image_pull_policy.as_deref(), init.termination_message_policy.as_deref()), (Some("IfNotPresent"), Some("File")));
        let c = &spec.containers[0];
        let field_ref = c.env.as_ref().unwrap()[0].value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(field_ref.api_version.as_deref(), Some("v1"));
        let ready = c.readiness_probe.as_ref().unwrap();
        let get = ready.http_get.as_ref().unwrap();
        assert_eq!((get.path.as_deref(), get.scheme.as_deref()), (Some("/"), Some("HTTP")));
        let thresholds = |p: &Probe| (p.timeout_seconds, p.period_seconds, p.success_threshold, p.failure_threshold);
        assert_eq!(thresholds(ready), (Some(1), Some(10), Some(1), Some(3)));
        assert_eq!(thresholds(c.liveness_probe.as_ref().unwrap()), (Some(1), Some(5), Some(1), Some(3)));
        assert!(c.startup_probe.is_none());
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes[0].config_map.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(volumes[1].downward_api.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(volumes[2].projected.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(volumes[3].secret.as_ref().unwrap().default_mode, Some(256));
        assert_eq!(crate::typed::encode(&volumes[4]), json!({"name": "e", "emptyDir": {}}));
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
    fn bindings_name_rbacs_group() {
        let b = defaulted(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
                {"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"}]}));
        assert_eq!(b["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}));
        assert_eq!(
            b["subjects"],
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}])
        );
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
        let switched =
            defaulted(json!({"kind": "Deployment", "spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": "25%"}}}}));
        assert_eq!(switched["spec"]["strategy"], json!({"type": "Recreate"}));
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
