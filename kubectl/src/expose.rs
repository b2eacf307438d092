//! `kubectl expose`: the Service it generates for a Deployment, ReplicaSet, Pod or Service
//! (CLI-25), as a pure function of the exposed object and the flags.

use emu_api::object;
use serde_json::{json, Map, Value};

/// kubectl expose's flags that shape the Service.
#[derive(Clone, Debug, Default)]
pub struct ExposeOptions {
    pub name: Option<String>,
    pub port: Option<u16>,
    /// A number or a container port name; applied to every port.
    pub target_port: Option<String>,
    pub protocol: Option<String>,
    pub service_type: Option<String>,
    /// `k=v,k2=v2`: replaces the exposed object's labels.
    pub labels: Option<String>,
    /// `k=v,k2=v2`: replaces the selector taken from the object.
    pub selector: Option<String>,
    pub cluster_ip: Option<String>,
    pub session_affinity: Option<String>,
    pub external_ip: Option<String>,
}

fn parse_pairs(s: &str, what: &str) -> Result<Map<String, Value>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| format!("error: invalid {what} {p:?}: expected key=value"))?;
            Ok((k.trim().to_string(), json!(v.trim())))
        })
        .collect()
}

/// The selector of the exposed object as a map (`matchExpressions` cannot be expressed).
fn selector_of(target: &Value) -> Result<Map<String, Value>, String> {
    match object::kind(target) {
        "Pod" => Ok(target["metadata"]["labels"].as_object().cloned().unwrap_or_default()),
        "Service" => Ok(target["spec"]["selector"].as_object().cloned().unwrap_or_default()),
        "Deployment" | "ReplicaSet" => {
            let sel = &target["spec"]["selector"];
            if let Some(exprs) = sel["matchExpressions"].as_array().filter(|e| !e.is_empty()) {
                let shown: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                return Err(format!("error: couldn't convert expressions - \"{}\" to map-based selector format", shown.join(",")));
            }
            Ok(sel["matchLabels"].as_object().cloned().unwrap_or_default())
        }
        other => Err(format!("error: cannot expose a {other}")),
    }
}

/// The pod spec whose container ports are introspected.
fn pod_spec_of(target: &Value) -> Option<&Value> {
    match object::kind(target) {
        "Pod" => Some(&target["spec"]),
        "Deployment" | "ReplicaSet" => Some(&target["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// (number, protocol) of every container port, de-duplicated by number, in order.
fn introspected_ports(target: &Value) -> Vec<(u64, String)> {
    if object::kind(target) == "Service" {
        return target["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["port"].as_u64()?, p["protocol"].as_str().unwrap_or("TCP").to_string())))
            .collect();
    }
    let mut out: Vec<(u64, String)> = Vec::new();
    let containers = pod_spec_of(target).and_then(|s| s["containers"].as_array()).into_iter().flatten();
    for port in containers.flat_map(|c| c["ports"].as_array().into_iter().flatten()) {
        let Some(n) = port["containerPort"].as_u64() else { continue };
        if !out.iter().any(|(m, _)| *m == n) {
            out.push((n, port["protocol"].as_str().unwrap_or("TCP").to_string()));
        }
    }
    out
}

/// The Service `kubectl expose` would create for `target` (its namespace kept).
pub fn service_for(target: &Value, opts: &ExposeOptions) -> Result<Value, String> {
    let selector = match &opts.selector {
        Some(s) => parse_pairs(s, "selector")?,
        None => selector_of(target)?,
    };
    if selector.is_empty() {
        return Err(format!(
            "error: the {} {:?} has no selector or labels to select its pods",
            object::kind(target).to_lowercase(),
            object::name(target)
        ));
    }
    let ports: Vec<(u64, String)> = match opts.port {
        Some(p) => {
            let proto = introspected_ports(target).into_iter().next().map(|(_, proto)| proto).unwrap_or_else(|| "TCP".into());
            vec![(u64::from(p), proto)]
        }
        None => introspected_ports(target),
    };
    if ports.is_empty() {
        return Err("error: couldn't find port via --port flag or introspection".into());
    }
    let several = ports.len() > 1;
    let ports: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, (number, proto))| {
            let mut p = json!({"port": number, "protocol": opts.protocol.clone().unwrap_or_else(|| proto.clone())});
            if several {
                p["name"] = json!(format!("port-{}", i + 1));
            }
            p["targetPort"] = match &opts.target_port {
                Some(t) => t.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(t)),
                None => json!(number),
            };
            p
        })
        .collect();
    let name: String = opts.name.clone().unwrap_or_else(|| object::name(target).chars().take(63).collect());
    let labels = match &opts.labels {
        Some(l) => Value::Object(parse_pairs(l, "label")?),
        None => target["metadata"]["labels"].clone(),
    };
    let mut metadata = json!({"name": name, "namespace": object::namespace(target)});
    if labels.as_object().is_some_and(|m| !m.is_empty()) {
        metadata["labels"] = labels;
    }
    let mut spec = json!({"ports": ports, "selector": selector});
    if let Some(t) = &opts.service_type {
        spec["type"] = json!(t);
    }
    if let Some(ip) = &opts.cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    if let Some(a) = &opts.session_affinity {
        spec["sessionAffinity"] = json!(a);
    }
    if let Some(ips) = &opts.external_ip {
        spec["externalIPs"] = json!(ips.split(',').map(str::trim).collect::<Vec<_>>());
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(ports: Value, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "my-nginx", "namespace": "default", "labels": labels},
            "spec": {"selector": {"matchLabels": {"run": "my-nginx"}},
                "template": {"metadata": {"labels": {"run": "my-nginx"}},
                    "spec": {"containers": [{"name": "my-nginx", "image": "nginx", "ports": ports}]}}}})
    }

    #[test]
    fn tutorial_deployment_one_unnamed_port_no_labels() {
        let d = deployment(json!([{"containerPort": 80}]), Value::Null);
        let svc = service_for(&d, &ExposeOptions::default()).unwrap();
        assert_eq!(
            svc,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-nginx", "namespace": "default"},
                "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"run": "my-nginx"}}})
        );
    }

    #[test]
    fn several_ports_are_named_and_deduplicated_flags_win() {
        let d = deployment(
            json!([{"containerPort": 80}, {"containerPort": 443}, {"containerPort": 80, "protocol": "UDP"}, {"containerPort": 53, "protocol": "UDP"}]),
            json!({"app": "web"}),
        );
        let svc = service_for(&d, &ExposeOptions::default()).unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "port-1", "port": 80, "protocol": "TCP", "targetPort": 80},
                   {"name": "port-2", "port": 443, "protocol": "TCP", "targetPort": 443},
                   {"name": "port-3", "port": 53, "protocol": "UDP", "targetPort": 53}])
        );
        assert_eq!(svc["metadata"]["labels"], json!({"app": "web"}));
        let opts = ExposeOptions {
            name: Some("web".into()),
            port: Some(8080),
            target_port: Some("http".into()),
            service_type: Some("NodePort".into()),
            labels: Some("a=b".into()),
            ..Default::default()
        };
        let svc = service_for(&d, &opts).unwrap();
        assert_eq!(svc["metadata"]["name"], "web");
        assert_eq!(svc["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(svc["spec"]["ports"], json!([{"port": 8080, "protocol": "TCP", "targetPort": "http"}]));
    }

    #[test]
    fn errors_as_kubectl() {
        let d = deployment(Value::Null, Value::Null);
        assert_eq!(service_for(&d, &ExposeOptions::default()).unwrap_err(), "error: couldn't find port via --port flag or introspection");
        let mut d = deployment(json!([{"containerPort": 80}]), Value::Null);
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "run", "operator": "In", "values": ["a"]}]});
        assert!(service_for(&d, &ExposeOptions::default()).unwrap_err().starts_with("error: couldn't convert expressions - "));
    }

    #[test]
    fn pods_expose_their_labels() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "lab", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}});
        let svc = service_for(&pod, &ExposeOptions::default()).unwrap();
        assert_eq!(svc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(svc["metadata"]["namespace"], "lab");
    }
}
