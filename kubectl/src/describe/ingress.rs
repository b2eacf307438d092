//! `kubectl describe ingress` and `describe ingressclass` (`IngressDescriber.describeIngressV1`,
//! `IngressClassDescriber.describeIngressClassV1`).

use std::fmt::Write;

use super::{annotations_multiline, at, int_at, labels_multiline, list_at, meta, str_at};
use serde_json::Value;

/// `related`: the object's Events, and the Services and EndpointSlices of its namespace.
pub(super) fn ingress(w: &mut String, ing: &Value, related: &[Value]) {
    let spec = &ing["spec"];
    let ns = meta(ing, "namespace");
    line!(w, 0, "Name:\t{}\n", meta(ing, "name"));
    labels_multiline(w, "Labels", at(ing, &["metadata", "labels"]));
    line!(w, 0, "Namespace:\t{ns}\n");
    line!(w, 0, "Address:\t{}\n", crate::tables::load_balancer_addresses(&ing["status"], true));
    let class = match str_at(spec, &["ingressClassName"]) {
        "" => "<none>",
        c => c,
    };
    line!(w, 0, "Ingress Class:\t{class}\n");
    let default = match spec.get("defaultBackend").filter(|b| b.is_object()) {
        Some(b) => backend(ns, b, related),
        None => "<default>".to_string(),
    };
    line!(w, 0, "Default backend:\t{default}\n");
    let tls = list_at(spec, &["tls"]);
    if !tls.is_empty() {
        line!(w, 0, "TLS:\n");
        for t in tls {
            let hosts: Vec<&str> = list_at(t, &["hosts"]).iter().filter_map(Value::as_str).collect();
            match str_at(t, &["secretName"]) {
                "" => line!(w, 1, "SNI routes {}\n", hosts.join(",")),
                secret => line!(w, 1, "{secret} terminates {}\n", hosts.join(",")),
            }
        }
    }
    line!(w, 0, "Rules:\n  Host\tPath\tBackends\n");
    line!(w, 1, "----\t----\t--------\n");
    let mut count = 0;
    for rule in list_at(spec, &["rules"]).iter().filter(|r| r.get("http").is_some_and(Value::is_object)) {
        count += 1;
        let host = match str_at(rule, &["host"]) {
            "" => "*",
            h => h,
        };
        line!(w, 1, "{host}\t\n");
        for path in list_at(rule, &["http", "paths"]) {
            line!(w, 2, "\t{} \t{}\n", str_at(path, &["path"]), backend(ns, &path["backend"], related));
        }
    }
    if count == 0 {
        line!(w, 1, "*\t*\t{default}\n");
    }
    annotations_multiline(w, "Annotations", at(ing, &["metadata", "annotations"]));
}

/// `describeBackendV1`: `svc:port (endpoints)` from the Service's EndpointSlices, or the error
/// reading the Service; a resource backend by group, kind and name.
fn backend(ns: &str, b: &Value, related: &[Value]) -> String {
    if let Some(svc) = b.get("service").filter(|s| s.is_object()) {
        let name = str_at(svc, &["name"]);
        let (port_name, port_number) = (str_at(svc, &["port", "name"]), int_at(svc, &["port", "number"]));
        let stringer = if port_name.is_empty() { format!("{name}:{port_number}") } else { format!("{name}:{port_name}") };
        let in_ns = |o: &&Value, kind: &str| str_at(o, &["kind"]) == kind && meta(o, "namespace") == ns;
        let Some(service) = related.iter().filter(|o| in_ns(o, "Service")).find(|o| meta(o, "name") == name) else {
            return format!("{stringer} (<error: services \"{name}\" not found>)");
        };
        // The name of the Service port the backend names (the last one that matches, as kubectl's loop).
        let mut sp_name = "";
        for sp in list_at(service, &["spec", "ports"]) {
            if (port_number != 0 && port_number == int_at(sp, &["port"])) || (!port_name.is_empty() && port_name == str_at(sp, &["name"])) {
                sp_name = str_at(sp, &["name"]);
            }
        }
        let slices: Vec<&Value> = related
            .iter()
            .filter(|o| in_ns(o, "EndpointSlice"))
            .filter(|s| str_at(s, &["metadata", "labels", "kubernetes.io/service-name"]) == name)
            .collect();
        return format!("{stringer} ({})", format_endpoint_slices(&slices, sp_name));
    }
    if let Some(r) = b.get("resource").filter(|r| r.is_object()) {
        let group = r.get("apiGroup").and_then(Value::as_str).unwrap_or("<none>");
        return format!("APIGroup: {group}, Kind: {}, Name: {}", str_at(r, &["kind"]), str_at(r, &["name"]));
    }
    String::new()
}

/// kubectl's `formatEndpointSlices` for one port name: the first three ready `ip:port`, then
/// ` + N more...`; `<none>` without slices.
fn format_endpoint_slices(slices: &[&Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let (mut list, mut count, mut more) = (Vec::new(), 0, false);
    for slice in slices {
        let ready = |e: &&Value| at(e, &["conditions", "ready"]).and_then(Value::as_bool).unwrap_or(true);
        let endpoints = list_at(slice, &["endpoints"]);
        let ports = list_at(slice, &["ports"]);
        let mut add = |addr: String| {
            if list.len() == MAX {
                more = true;
            }
            if !more {
                list.push(addr);
            }
            count += 1;
        };
        if ports.is_empty() {
            for e in endpoints.iter().filter(ready) {
                add(str_at(&list_at(e, &["addresses"])[0], &[]).to_string());
            }
            continue;
        }
        for port in ports.iter().filter(|p| str_at(p, &["name"]) == port_name) {
            for e in endpoints.iter().filter(ready) {
                let addr = list_at(e, &["addresses"]).first().and_then(Value::as_str).unwrap_or_default();
                let number = int_at(port, &["port"]);
                add(if addr.contains(':') { format!("[{addr}]:{number}") } else { format!("{addr}:{number}") });
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

pub(super) fn ingress_class(w: &mut String, ic: &Value) {
    line!(w, 0, "Name:\t{}\n", meta(ic, "name"));
    labels_multiline(w, "Labels", at(ic, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(ic, &["metadata", "annotations"]));
    line!(w, 0, "Controller:\t{}\n", str_at(ic, &["spec", "controller"]));
    if let Some(params) = at(ic, &["spec", "parameters"]).filter(|p| p.is_object()) {
        line!(w, 0, "Parameters:\n");
        if let Some(group) = params.get("apiGroup").and_then(Value::as_str) {
            line!(w, 1, "APIGroup:\t{group}\n");
        }
        line!(w, 1, "Kind:\t{}\n", str_at(params, &["kind"]));
        line!(w, 1, "Name:\t{}\n", str_at(params, &["name"]));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    fn kubia() -> Value {
        json!({"kind": "Ingress", "metadata": {"name": "kubia", "namespace": "default", "uid": "u1"},
               "spec": {"ingressClassName": "nginx",
                        "tls": [{"hosts": ["kubia.example.com"], "secretName": "tls-secret"}],
                        "rules": [{"host": "kubia.example.com", "http": {"paths": [
                            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "kubia", "port": {"number": 80}}}},
                            {"path": "/foo", "pathType": "Exact", "backend": {"service": {"name": "missing", "port": {"name": "http"}}}}]}}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}})
    }

    fn related() -> Vec<Value> {
        let ep = |ip: &str, ready: bool| json!({"addresses": [ip], "conditions": {"ready": ready}});
        vec![
            json!({"kind": "Service", "metadata": {"name": "kubia", "namespace": "default"},
                   "spec": {"ports": [{"name": "", "port": 80, "targetPort": 8080}]}}),
            json!({"kind": "EndpointSlice", "metadata": {"name": "kubia-abcde", "namespace": "default",
                                                         "labels": {"kubernetes.io/service-name": "kubia"}},
                   "ports": [{"name": "", "port": 8080}],
                   "endpoints": [ep("10.244.1.2", true), ep("10.244.1.3", true), ep("10.244.1.4", false), ep("10.244.1.5", true), ep("10.244.1.6", true)]}),
        ]
    }

    #[test]
    fn an_ingress_as_kubectl_describes_it() {
        let text = crate::describe::describe("Ingress", &kubia(), &related(), 0);
        assert_eq!(
            text,
            "Name:             kubia
Labels:           <none>
Namespace:        default
Address:          203.0.113.10
Ingress Class:    nginx
Default backend:  <default>
TLS:
  tls-secret terminates kubia.example.com
Rules:
  Host               Path  Backends
  ----               ----  --------
  kubia.example.com  
                     /      kubia:80 (10.244.1.2:8080,10.244.1.3:8080,10.244.1.5:8080 + 1 more...)
                     /foo   missing:http (<error: services \"missing\" not found>)
Annotations:         <none>
Events:              <none>
"
        );
    }

    #[test]
    fn a_default_backend_only_ingress_and_a_class() {
        let ing = json!({"kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"defaultBackend": {"service": {"name": "kubia", "port": {"number": 81}}}}});
        let text = crate::describe::describe("Ingress", &ing, &related(), 0);
        let endpoints = "(10.244.1.2:8080,10.244.1.3:8080,10.244.1.5:8080 + 1 more...)";
        // Port 81 is none of the Service's: kubectl then lists the endpoints of its unnamed port.
        assert!(text.contains(&format!("Ingress Class:    <none>\nDefault backend:  kubia:81 {endpoints}\nRules:\n")), "{text}");
        assert!(text.contains(&format!("  *           *     kubia:81 {endpoints}\n")), "{text}");
        let ic = json!({"kind": "IngressClass", "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                        "spec": {"controller": "k8s.io/ingress-nginx"}});
        assert_eq!(
            crate::describe::describe("IngressClass", &ic, &[], 0),
            "Name:         nginx\nLabels:       <none>\nAnnotations:  ingressclass.kubernetes.io/is-default-class: true\nController:   k8s.io/ingress-nginx\nEvents:       <none>\n"
        );
    }
}
