//! The objects `kubectl create deployment`, `service TYPE`, `job` and `cronjob` make (their
//! generators), as pure functions: what kubectl sends, before the API server defaults it.

use serde_json::{json, Value};

/// The container name kubectl derives from an image: the last path element without tag or
/// digest, `_` as `-` (`registry.k8s.io/e2e-test-images/agnhost:2.39` → `agnhost`).
pub fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let base = last.split(['@', ':']).next().unwrap_or(last);
    base.replace('_', "-")
}

/// `kubectl create deployment NAME --image=I... [--replicas=N] [--port=P]`: label `app=NAME`
/// on the Deployment, its selector and its pod template; a container per image, named after it;
/// the port on the first container.
pub fn deployment(name: &str, images: &[String], replicas: i64, port: Option<i64>) -> Value {
    // Two images of one name make two containers of one name, which the API server refuses,
    // as kubectl leaves them.
    let mut containers: Vec<Value> =
        images.iter().map(|image| json!({"name": container_name(image), "image": image, "resources": {}})).collect();
    if let (Some(p), Some(first)) = (port, containers.first_mut()) {
        first["ports"] = json!([{"containerPort": p}]);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    })
}

/// What `kubectl create service` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
}

/// `kubectl create service TYPE NAME --tcp=PORT[:TARGET]... [--node-port=N] [--clusterip=IP]`:
/// selector and label `app=NAME`, a port per `--tcp` named `PORT-TARGET` (or `PORT`), the target
/// the port when not given. Errors in kubectl's words.
pub fn service(ty: ServiceType, name: &str, tcp: &[String], node_port: Option<i64>, cluster_ip: Option<&str>) -> Result<Value, String> {
    let mut ports = Vec::new();
    for spec in tcp.iter().flat_map(|t| t.split(',')) {
        let (port, target) = spec.split_once(':').unwrap_or((spec, spec));
        let p: i64 = port.parse::<u16>().map_err(|_| format!("strconv.ParseUint: parsing {port:?}: invalid syntax"))?.into();
        let target_value = match target.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(target),
        };
        let port_name = if spec.contains(':') { format!("{port}-{target}") } else { port.to_string() };
        let mut entry = json!({"name": port_name, "port": p, "protocol": "TCP", "targetPort": target_value});
        if let Some(n) = node_port.filter(|_| ty == ServiceType::NodePort) {
            entry["nodePort"] = json!(n);
        }
        ports.push(entry);
    }
    let headless = cluster_ip == Some("None");
    if ports.is_empty() && !headless {
        return Err("at least one tcp port specifier must be provided".into());
    }
    if headless && !ports.is_empty() {
        return Err("can not map ports with clusterip=None".into());
    }
    let type_name = match ty {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let mut spec = json!({"selector": {"app": name}, "type": type_name});
    if !ports.is_empty() {
        spec["ports"] = json!(ports);
    }
    if let Some(ip) = cluster_ip.filter(|ip| !ip.is_empty()) {
        spec["clusterIP"] = json!(ip);
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}))
}

/// `kubectl create job NAME --image=IMAGE [-- COMMAND...]`: one container named after the Job,
/// restartPolicy Never, the command as the container's `command`.
pub fn job(name: &str, image: &str, command: &[String]) -> Value {
    let mut container = json!({"name": name, "image": image, "resources": {}});
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {}, "spec": {"containers": [container], "restartPolicy": "Never"}}},
    })
}

/// `kubectl create job NAME --from=cronjob/CJ`: the CronJob's job template, its labels and
/// annotations, marked `cronjob.kubernetes.io/instantiate: manual`, owned (not blocking
/// deletion) by the CronJob.
pub fn job_from_cronjob(name: &str, cronjob: &Value) -> Value {
    let template = &cronjob["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["cronjob.kubernetes.io/instantiate"] = json!("manual");
    let mut meta = json!({
        "name": name,
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob["metadata"]["name"],
            "uid": cronjob["metadata"]["uid"], "controller": true}],
    });
    if let Some(labels) = template["metadata"].get("labels").filter(|l| l.is_object()) {
        meta["labels"] = labels.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]})
}

/// `kubectl create cronjob NAME --image=IMAGE --schedule=S [--restart=R] [-- COMMAND...]`: the
/// job template named after the CronJob, restartPolicy OnFailure unless `--restart` says (as
/// kubectl, any value is sent: the API server refuses what a Job cannot have).
pub fn cronjob(name: &str, image: &str, schedule: &str, restart: Option<&str>, command: &[String]) -> Value {
    let restart = restart.unwrap_or("OnFailure");
    let mut container = json!({"name": name, "image": image, "resources": {}});
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "jobTemplate": {"metadata": {"name": name}, "spec": {"template": {"metadata": {},
                "spec": {"containers": [container], "restartPolicy": restart}}}},
            "schedule": schedule,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_from_images() {
        assert_eq!(container_name("nginx"), "nginx");
        assert_eq!(container_name("registry.k8s.io/e2e-test-images/agnhost:2.39"), "agnhost");
        assert_eq!(container_name("busybox@sha256:abc"), "busybox");
        assert_eq!(container_name("my_image:1"), "my-image");
    }

    #[test]
    fn deployments_as_kubectl_makes_them() {
        let d = deployment("web", &["nginx".into()], 2, Some(80));
        assert_eq!(d["metadata"]["labels"]["app"], "web");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["name"], "nginx");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
        let two = deployment("x", &["nginx".into(), "busybox:1.37".into()], 1, None);
        assert_eq!(two["spec"]["template"]["spec"]["containers"][1]["name"], "busybox");
    }

    #[test]
    fn services_as_kubectl_makes_them() {
        let s = service(ServiceType::ClusterIp, "my-cs", &["5678:8080".into()], None, None).unwrap();
        assert_eq!(s["spec"]["ports"][0], json!({"name": "5678-8080", "port": 5678, "protocol": "TCP", "targetPort": 8080}));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let n = service(ServiceType::NodePort, "n", &["80".into()], Some(30080), None).unwrap();
        assert_eq!(n["spec"]["ports"][0], json!({"name": "80", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}));
        let h = service(ServiceType::ClusterIp, "h", &[], None, Some("None")).unwrap();
        assert_eq!((h["spec"]["clusterIP"].as_str(), h["spec"].get("ports")), (Some("None"), None));
        assert!(service(ServiceType::ClusterIp, "x", &[], None, None).is_err());
    }

    #[test]
    fn jobs_and_cronjobs_as_kubectl_makes_them() {
        let j = job("x", "busybox", &["echo".into(), "hi".into()]);
        assert_eq!(
            j["spec"]["template"]["spec"],
            json!({"containers": [{"name": "x", "image": "busybox", "resources": {}, "command": ["echo", "hi"]}], "restartPolicy": "Never"})
        );
        let cj = cronjob("c", "busybox", "*/1 * * * *", None, &[]);
        assert_eq!(cj["spec"]["jobTemplate"]["metadata"]["name"], "c");
        assert_eq!(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
        let cj = json!({"metadata": {"name": "c", "uid": "u"}, "spec": {"jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"backoffLimit": 2}}}});
        let from = job_from_cronjob("now", &cj);
        assert_eq!(from["metadata"]["annotations"], json!({"cronjob.kubernetes.io/instantiate": "manual"}));
        assert_eq!(
            from["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "u", "controller": true})
        );
        assert_eq!((&from["metadata"]["labels"]["a"], &from["spec"]["backoffLimit"]), (&json!("b"), &json!(2)));
    }
}
