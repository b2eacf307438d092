//! Ingress and IngressClass validation (`ValidateIngressCreate`, `ValidateIngressClass`,
//! `ValidateIngressClassUpdate`, pkg/apis/networking/validation), with Kubernetes' messages.

use super::{go_quote, or_default, FieldErrorKind, Invalid, V};
use crate::defaults::ingress::LEGACY_CLASS;
use crate::syntax::{dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors, path_segment_errors, port_name_errors};
use crate::typed::{HTTPIngressPath, Ingress, IngressBackend, IngressClass};

const INVALID_PATH_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: [&str; 2] = ["/..", "/."];
const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];
const MAX_CONTROLLER_LEN: usize = 250;

pub(super) fn ingress(v: &mut V, ing: &Ingress) {
    let spec = or_default(&ing.spec);
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        // Go prints the (internal, nil or empty) rules slice as JSON.
        let value = if spec.rules.is_some() { "[]" } else { "null" };
        v.invalid("spec", value.into(), "either `defaultBackend` or `rules` must be specified");
    }
    if let Some(backend) = &spec.default_backend {
        self::backend(v, backend, "spec.defaultBackend");
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let host = rule.host.as_deref().unwrap_or_default();
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                v.invalid(format!("{at}.host"), go_quote(host), "must be a DNS name, not an IP address");
            }
            let msgs = if host.contains('*') { wildcard_subdomain_errors(host) } else { dns1123_subdomain_errors(host) };
            v.each_msg(&format!("{at}.host"), host, msgs);
        }
        if let Some(http) = &rule.http {
            if http.paths.is_empty() {
                v.required(format!("{at}.http.paths"), "");
            }
            for (j, path) in http.paths.iter().enumerate() {
                http_path(v, path, &format!("{at}.http.paths[{j}]"));
            }
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            let msgs = if host.contains('*') { wildcard_subdomain_errors(host) } else { dns1123_subdomain_errors(host) };
            v.each_msg(&format!("spec.tls[{i}].hosts[{j}]"), host, msgs);
        }
        let secret = tls.secret_name.as_deref().unwrap_or_default();
        if !secret.is_empty() {
            v.each_msg(&format!("spec.tls[{i}].secretName"), secret, dns1123_subdomain_errors(secret));
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        v.each_msg("spec.ingressClassName", class, dns1123_subdomain_errors(class));
    }
    // ValidateIngressCreate: the legacy annotation and the field must agree when both are set.
    let annotation = ing.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS));
    if let (Some(annotation), Some(class)) = (annotation, &spec.ingress_class_name) {
        if annotation != class {
            v.invalid(format!("annotations.{LEGACY_CLASS}"), go_quote(annotation), "must match `ingressClassName` when both are specified");
        }
    }
}

/// `validateHTTPIngressPath`: a pathType first (nothing else is checked without one).
fn http_path(v: &mut V, path: &HTTPIngressPath, at: &str) {
    let p = path.path.as_deref().unwrap_or_default();
    match path.path_type.as_str() {
        "" => return v.required(format!("{at}.pathType"), "pathType must be specified"),
        "Exact" | "Prefix" => {
            if !p.starts_with('/') {
                v.invalid(format!("{at}.path"), go_quote(p), "must be an absolute path");
            }
            for seq in INVALID_PATH_SEQUENCES.iter().filter(|s| p.contains(**s)) {
                v.invalid(format!("{at}.path"), go_quote(p), format!("must not contain '{seq}'"));
            }
            for suffix in INVALID_PATH_SUFFIXES.iter().filter(|s| p.ends_with(**s)) {
                v.invalid(format!("{at}.path"), go_quote(p), format!("cannot end with '{suffix}'"));
            }
        }
        "ImplementationSpecific" => {
            if !p.is_empty() && !p.starts_with('/') {
                v.invalid(format!("{at}.path"), go_quote(p), "must be an absolute path");
            }
        }
        other => v.unsupported(format!("{at}.pathType"), other, &PATH_TYPES),
    }
    backend(v, &path.backend, &format!("{at}.backend"));
}

/// `validateIngressBackend`: a Service (name and port name or number) or a resource.
fn backend(v: &mut V, backend: &IngressBackend, at: &str) {
    match (&backend.resource, &backend.service) {
        (Some(_), Some(_)) => v.invalid(at, go_quote(""), "cannot set both resource and service backends"),
        (Some(r), None) => {
            if let Some(group) = &r.api_group {
                v.each_msg(&format!("{at}.resource.apiGroup"), group, dns1123_subdomain_errors(group));
            }
            path_segment(v, &r.kind, &format!("{at}.resource.kind"));
            path_segment(v, &r.name, &format!("{at}.resource.name"));
        }
        (None, Some(svc)) => {
            if svc.name.is_empty() {
                v.required(format!("{at}.service.name"), "");
            } else {
                // ValidateServiceName: a DNS-1035 label (1.33; the relaxed DNS-1123 rule is a 1.34 gate).
                v.each_msg(&format!("{at}.service.name"), &svc.name, dns1035_label_errors(&svc.name));
            }
            let port = or_default(&svc.port);
            let name = port.name.as_deref().unwrap_or_default();
            let number = port.number.unwrap_or(0);
            match (!name.is_empty(), number != 0) {
                (true, true) => v.invalid(at, go_quote(""), "cannot set both port name & port number"),
                (true, false) => v.each_msg(&format!("{at}.service.port.name"), name, port_name_errors(name)),
                (false, true) => {
                    if !(1..=65535).contains(&number) {
                        v.invalid(format!("{at}.service.port.number"), number.to_string(), "must be between 1 and 65535, inclusive");
                    }
                }
                (false, false) => v.required(at, "port name or number is required"),
            }
        }
        (None, None) => v.invalid(at, go_quote(""), "resource or service backend is required"),
    }
}

fn path_segment(v: &mut V, value: &str, at: &str) {
    if value.is_empty() {
        v.required(at, "");
    } else {
        v.each_msg(at, value, path_segment_errors(value));
    }
}

/// apimachinery's `IsWildcardDNS1123Subdomain`: `*.` and a DNS subdomain.
fn wildcard_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".into());
    }
    let valid = s.strip_prefix("*.").is_some_and(|rest| dns1123_subdomain_errors(rest).is_empty());
    if !valid {
        errs.push(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case \
             alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for \
             validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    errs
}

pub(super) fn ingress_class(v: &mut V, ic: &IngressClass) {
    let spec = or_default(&ic.spec);
    match spec.controller.as_deref().unwrap_or_default() {
        "" => v.required("spec.controller", ""),
        controller => {
            if controller.len() > MAX_CONTROLLER_LEN {
                v.push("spec.controller", FieldErrorKind::TooLong, format!("may not be more than {MAX_CONTROLLER_LEN} bytes"));
            }
            domain_prefixed_path(v, controller, "spec.controller");
        }
    }
    let Some(params) = &spec.parameters else { return };
    if let Some(group) = &params.api_group {
        v.each_msg("spec.parameters.apiGroup", group, dns1123_subdomain_errors(group));
    }
    path_segment(v, &params.kind, "spec.parameters.kind");
    path_segment(v, &params.name, "spec.parameters.name");
    match params.scope.as_deref() {
        None => v.required("spec.parameters.scope", ""),
        Some("Namespace") => match &params.namespace {
            None => v.required("spec.parameters.namespace", "`parameters.scope` is set to 'Namespace'"),
            Some(ns) => v.each_msg("spec.parameters.namespace", ns, dns1123_label_errors(ns)),
        },
        Some("Cluster") => {
            if params.namespace.is_some() {
                v.push("spec.parameters.namespace", FieldErrorKind::Forbidden, "`parameters.scope` is set to 'Cluster'");
            }
        }
        Some(other) => v.unsupported("spec.parameters.scope", other, &["Cluster", "Namespace"]),
    }
}

/// apimachinery's `IsDomainPrefixedPath` (`k8s.io/ingress-nginx`).
fn domain_prefixed_path(v: &mut V, value: &str, at: &str) {
    let Some((host, path)) = value.split_once('/').filter(|(h, p)| !h.is_empty() && !p.is_empty()) else {
        return v.invalid(at, go_quote(value), "must be a domain-prefixed path (such as \"acme.io/foo\")");
    };
    v.each_msg(at, host, dns1123_subdomain_errors(host));
    let path_char = |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
    if !path.chars().all(path_char) {
        v.invalid(at, go_quote(path), "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')");
    }
}

/// `ValidateIngressClassUpdate`: the controller never changes.
pub(super) fn ingress_class_update(old: &IngressClass, new: &IngressClass) -> Result<(), Invalid> {
    let mut v = V::default();
    let controller = |ic: &IngressClass| ic.spec.as_ref().and_then(|s| s.controller.clone()).unwrap_or_default();
    if controller(old) != controller(new) {
        v.invalid("spec.controller", go_quote(&controller(new)), "field is immutable");
    }
    v.finish("IngressClass", new.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use crate::admission::{admit, Offline};
    use serde_json::{json, Value};

    fn ingress(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "kubia"}, "spec": spec})
    }

    fn rule(host: &str, path: Value) -> Value {
        json!({"rules": [{"host": host, "http": {"paths": [path]}}]})
    }

    fn message(v: Value) -> String {
        admit(v, &Offline).map(|_| String::new()).unwrap_or_else(|e| e.to_string())
    }

    fn svc_path(path: &str, path_type: &str) -> Value {
        json!({"path": path, "pathType": path_type, "backend": {"service": {"name": "kubia", "port": {"number": 80}}}})
    }

    #[test]
    fn the_books_ingress_is_valid() {
        assert_eq!(message(ingress(rule("kubia.example.com", svc_path("/", "Prefix")))), "");
        let mut tls = rule("*.example.com", svc_path("/foo", "Exact"));
        tls["tls"] = json!([{"hosts": ["kubia.example.com", "*.example.com"], "secretName": "tls-secret"}]);
        tls["ingressClassName"] = json!("nginx");
        assert_eq!(message(ingress(tls)), "");
        assert_eq!(message(ingress(json!({"defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}}))), "");
    }

    #[test]
    fn paths_and_path_types_speak_kubernetes() {
        let p = "spec.rules[0].http.paths[0]";
        let no_type = json!({"path": "/", "backend": {"service": {"name": "kubia", "port": {"number": 80}}}});
        assert_eq!(
            message(ingress(rule("a.com", no_type))),
            format!(r#"The Ingress "kubia" is invalid: {p}.pathType: Required value: pathType must be specified"#)
        );
        assert_eq!(
            message(ingress(rule("a.com", svc_path("foo", "Prefix")))),
            format!(r#"The Ingress "kubia" is invalid: {p}.path: Invalid value: "foo": must be an absolute path"#)
        );
        assert_eq!(
            message(ingress(rule("a.com", svc_path("/a//b/..", "Exact")))),
            format!(
                "The Ingress \"kubia\" is invalid: \n* {p}.path: Invalid value: \"/a//b/..\": must not contain '//'\n\
                 * {p}.path: Invalid value: \"/a//b/..\": cannot end with '/..'"
            )
        );
        assert_eq!(
            message(ingress(rule("a.com", svc_path("/", "Regex")))),
            format!(
                r#"The Ingress "kubia" is invalid: {p}.pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#
            )
        );
        // ImplementationSpecific may leave the path empty.
        assert_eq!(message(ingress(rule("a.com", svc_path("", "ImplementationSpecific")))), "");
    }

    #[test]
    fn backends_speak_kubernetes() {
        let b = "spec.rules[0].http.paths[0].backend";
        let with = |backend: Value| ingress(rule("a.com", json!({"path": "/", "pathType": "Prefix", "backend": backend})));
        assert_eq!(
            message(with(json!({}))),
            format!(r#"The Ingress "kubia" is invalid: {b}: Invalid value: "": resource or service backend is required"#)
        );
        assert_eq!(
            message(with(json!({"service": {"name": "web"}}))),
            format!(r#"The Ingress "kubia" is invalid: {b}: Required value: port name or number is required"#)
        );
        assert_eq!(
            message(with(json!({"service": {"name": "web", "port": {"name": "http", "number": 80}}}))),
            format!(r#"The Ingress "kubia" is invalid: {b}: Invalid value: "": cannot set both port name & port number"#)
        );
        assert_eq!(
            message(with(json!({"service": {"name": "web", "port": {"number": 70000}}}))),
            format!(
                r#"The Ingress "kubia" is invalid: {b}.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive"#
            )
        );
        assert!(message(with(json!({"service": {"name": "1web", "port": {"number": 80}}})))
            .starts_with(&format!(r#"The Ingress "kubia" is invalid: {b}.service.name: Invalid value: "1web": a DNS-1035 label"#)));
        assert_eq!(
            message(with(json!({"service": {"name": "web", "port": {"number": 80}}, "resource": {"kind": "Bucket", "name": "b"}}))),
            format!(r#"The Ingress "kubia" is invalid: {b}: Invalid value: "": cannot set both resource and service backends"#)
        );
    }

    #[test]
    fn hosts_spec_and_class() {
        assert_eq!(
            message(ingress(json!({}))),
            "The Ingress \"kubia\" is invalid: spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"
        );
        let ip = message(ingress(rule("10.0.0.1", svc_path("/", "Prefix"))));
        assert!(ip.contains(r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#), "{ip}");
        let wild = message(ingress(rule("foo.*.com", svc_path("/", "Prefix"))));
        assert!(
            wild.starts_with(
                r#"The Ingress "kubia" is invalid: spec.rules[0].host: Invalid value: "foo.*.com": a wildcard DNS-1123 subdomain must start with '*.'"#
            ),
            "{wild}"
        );
        let upper = message(ingress(rule("Kubia.example.com", svc_path("/", "Prefix"))));
        assert!(upper.contains("spec.rules[0].host: Invalid value: \"Kubia.example.com\": a lowercase RFC 1123 subdomain"), "{upper}");
        let mut annotated = ingress(rule("a.com", svc_path("/", "Prefix")));
        annotated["spec"]["ingressClassName"] = json!("nginx");
        annotated["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "traefik"});
        assert_eq!(
            message(annotated),
            "The Ingress \"kubia\" is invalid: annotations.kubernetes.io/ingress.class: Invalid value: \"traefik\": must match `ingressClassName` when both are specified"
        );
        let mut tls = rule("a.com", svc_path("/", "Prefix"));
        tls["tls"] = json!([{"hosts": ["*"], "secretName": "Bad"}]);
        let msg = message(ingress(tls));
        assert!(msg.contains("spec.tls[0].hosts[0]: Invalid value: \"*\": a wildcard DNS-1123 subdomain"), "{msg}");
        assert!(msg.contains("spec.tls[0].secretName: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"), "{msg}");
    }

    fn class(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": spec})
    }

    #[test]
    fn ingress_classes_speak_kubernetes() {
        assert_eq!(message(class(json!({"controller": "k8s.io/ingress-nginx"}))), "");
        assert_eq!(message(class(json!({}))), r#"The IngressClass "nginx" is invalid: spec.controller: Required value"#);
        assert_eq!(
            message(class(json!({"controller": "nginx"}))),
            r#"The IngressClass "nginx" is invalid: spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")"#
        );
        assert_eq!(
            message(class(json!({"controller": "k8s.io/ingress nginx"}))),
            r#"The IngressClass "nginx" is invalid: spec.controller: Invalid value: "ingress nginx": Invalid path (regex used for validation is '[A-Za-z0-9/\-._~%!$&'()*+,;=:]+')"#
        );
        assert_eq!(
            message(class(json!({"controller": "k8s.io/c", "parameters": {"kind": "P", "name": "p", "scope": "Namespace"}}))),
            "The IngressClass \"nginx\" is invalid: spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"
        );
        let old = class(json!({"controller": "k8s.io/ingress-nginx"}));
        let new = crate::typed::Object::decode("IngressClass", &class(json!({"controller": "example.com/other"}))).unwrap();
        assert_eq!(
            crate::validation::validate_update(&old, &new).unwrap_err().to_string(),
            r#"The IngressClass "nginx" is invalid: spec.controller: Invalid value: "example.com/other": field is immutable"#
        );
    }
}
