//! Gateway API validation: the CRDs' OpenAPI constraints and CEL rules (standard channel v1),
//! with the messages kube-apiserver prints for a custom resource: `<field> in body should be
//! greater than or equal to 1` for a bound, `in body should match '<pattern>'` for a pattern, and a
//! CEL rule's own message on the field that carries the rule (`Invalid value: "array"` or
//! `"object"`, the type of the value the rule judged).

use super::{go_quote, FieldErrorKind, V};
use crate::gateway::{Gateway, GatewayClass, HTTPRoute};
use std::collections::BTreeSet;

/// The CRDs' hostname pattern (listeners, HTTPRoute hostnames): a DNS name, a leading `*.` allowed.
pub const HOSTNAME_PATTERN: &str = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// The CRD's pattern of a GatewayClass's controllerName: a domain-prefixed path.
pub const CONTROLLER_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$";
/// The CRD's pattern of an object name (gatewayClassName, listener and section names).
const SECTION_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const PATH_MATCH_TYPES: [&str; 3] = ["Exact", "PathPrefix", "RegularExpression"];
const HEADER_MATCH_TYPES: [&str; 2] = ["Exact", "RegularExpression"];
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
const FILTER_TYPES: [&str; 6] =
    ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite", "ExtensionRef"];

impl V {
    fn at_least(&mut self, field: &str, value: i64, min: i64) {
        if value < min {
            self.invalid(field, value.to_string(), format!("{field} in body should be greater than or equal to {min}"));
        }
    }

    fn at_most(&mut self, field: &str, value: i64, max: i64) {
        if value > max {
            self.invalid(field, value.to_string(), format!("{field} in body should be less than or equal to {max}"));
        }
    }

    fn pattern(&mut self, field: &str, value: &str, pattern: &str, matches: bool) {
        if !matches {
            self.invalid(field, go_quote(value), format!("{field} in body should match '{pattern}'"));
        }
    }

    fn rule(&mut self, field: &str, json_type: &str, message: &str) {
        self.invalid(field, go_quote(json_type), message);
    }

    fn enumerated(&mut self, field: &str, value: &str, supported: &[&str]) {
        if !supported.contains(&value) {
            self.unsupported(field, value, supported);
        }
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, one label of the CRDs' DNS patterns.
fn label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_name(s: &str) -> bool {
    s.split('.').all(label)
}

/// [`HOSTNAME_PATTERN`].
pub fn is_hostname(s: &str) -> bool {
    dns_name(s.strip_prefix("*.").unwrap_or(s))
}

/// [`CONTROLLER_PATTERN`].
pub fn is_controller_name(s: &str) -> bool {
    const PATH: &str = "/-._~%!$&'()*+,;=:";
    s.split_once('/').is_some_and(|(domain, path)| {
        dns_name(domain) && !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || PATH.contains(c))
    })
}

/// A required string with `minLength: 1` (kube-apiserver reports an absent one as Required).
fn required_name(v: &mut V, field: &str, value: &str, pattern: Option<(&str, bool)>) {
    if value.is_empty() {
        v.required(field, "");
    } else if let Some((pattern, ok)) = pattern {
        v.pattern(field, value, pattern, ok);
    }
}

pub(super) fn gateway_class(v: &mut V, gc: &GatewayClass) {
    let name = &gc.spec.controller_name;
    required_name(v, "spec.controllerName", name, Some((CONTROLLER_PATTERN, is_controller_name(name))));
    if name.len() > 253 {
        v.push("spec.controllerName", FieldErrorKind::TooLong, "may not be more than 253 bytes");
    }
}

/// The CRD's `x-kubernetes-validations` on spec.controllerName.
pub(super) fn gateway_class_update(old: &GatewayClass, new: &GatewayClass) -> Result<(), super::Invalid> {
    let mut v = V::default();
    if old.spec.controller_name != new.spec.controller_name {
        v.rule("spec.controllerName", "string", "Value is immutable");
    }
    v.finish("GatewayClass", new.metadata.name.as_deref().unwrap_or_default())
}

pub(super) fn gateway(v: &mut V, gw: &Gateway) {
    let spec = &gw.spec;
    let class = &spec.gateway_class_name;
    required_name(v, "spec.gatewayClassName", class, Some((SECTION_NAME_PATTERN, dns_name(class))));
    let listeners = &spec.listeners;
    if listeners.is_empty() {
        v.required("spec.listeners", "");
    }
    for (i, l) in listeners.iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        required_name(v, &format!("{at}.name"), &l.name, Some((SECTION_NAME_PATTERN, dns_name(&l.name))));
        if let Some(host) = &l.hostname {
            v.pattern(&format!("{at}.hostname"), host, HOSTNAME_PATTERN, is_hostname(host));
        }
        v.at_least(&format!("{at}.port"), l.port.into(), 1);
        v.at_most(&format!("{at}.port"), l.port.into(), 65535);
        let protocol_ok = matches!(l.protocol.as_str(), "HTTP" | "HTTPS" | "TLS" | "TCP" | "UDP")
            || l.protocol.split_once('/').is_some_and(|(d, p)| dns_name(d) && !p.is_empty());
        if l.protocol.is_empty() {
            v.required(format!("{at}.protocol"), "");
        } else if !protocol_ok {
            let pattern =
                r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$";
            let simple = l.protocol.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            v.pattern(&format!("{at}.protocol"), &l.protocol, pattern, simple);
        }
        if let Some(tls) = &l.tls {
            let mode = tls.mode.as_deref().unwrap_or("Terminate");
            v.enumerated(&format!("{at}.tls.mode"), mode, &["Terminate", "Passthrough"]);
            // The CEL rule on GatewayTLSConfig (emu decodes no `options`, so certificateRefs alone).
            if mode == "Terminate" && tls.certificate_refs.as_deref().unwrap_or_default().is_empty() {
                v.rule(&format!("{at}.tls"), "object", "certificateRefs or options must be specified when mode is Terminate");
            }
        }
        if let Some(from) = l.allowed_routes.as_ref().and_then(|r| r.namespaces.as_ref()).and_then(|n| n.from.as_deref()) {
            v.enumerated(&format!("{at}.allowedRoutes.namespaces.from"), from, &["All", "Selector", "Same"]);
        }
    }
    // The CRD's CEL rules on spec.listeners, in its order.
    if listeners.iter().any(|l| matches!(l.protocol.as_str(), "HTTP" | "TCP" | "UDP") && l.tls.is_some()) {
        v.rule("spec.listeners", "array", "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']");
    }
    if listeners.iter().any(|l| matches!(l.protocol.as_str(), "HTTPS" | "TLS") && l.tls.is_none()) {
        v.rule("spec.listeners", "array", "tls mode must be set for protocol HTTPS");
    }
    if listeners.iter().any(|l| matches!(l.protocol.as_str(), "TCP" | "UDP") && l.hostname.as_deref().is_some_and(|h| !h.is_empty())) {
        v.rule("spec.listeners", "array", "hostname must not be specified for protocols ['TCP', 'UDP']");
    }
    let mut names = BTreeSet::new();
    if !listeners.iter().all(|l| names.insert(&l.name)) {
        v.rule("spec.listeners", "array", "Listener name must be unique within the Gateway");
    }
    let mut combos = BTreeSet::new();
    if !listeners.iter().all(|l| combos.insert((l.port, &l.protocol, l.hostname.as_deref().unwrap_or_default()))) {
        v.rule("spec.listeners", "array", "Combination of port, protocol and hostname must be unique for each listener");
    }
}

pub(super) fn http_route(v: &mut V, route: &HTTPRoute) {
    let spec = &route.spec;
    let parents = spec.parent_refs.as_deref().unwrap_or_default();
    for (i, p) in parents.iter().enumerate() {
        let at = format!("spec.parentRefs[{i}]");
        required_name(v, &format!("{at}.name"), &p.name, None);
        if let Some(port) = p.port {
            v.at_least(&format!("{at}.port"), port.into(), 1);
            v.at_most(&format!("{at}.port"), port.into(), 65535);
        }
    }
    let hostnames = spec.hostnames.as_deref().unwrap_or_default();
    for (i, h) in hostnames.iter().enumerate() {
        v.pattern(&format!("spec.hostnames[{i}]"), h, HOSTNAME_PATTERN, is_hostname(h));
    }
    let rules = spec.rules.as_deref().unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let matches = rule.matches.as_deref().unwrap_or_default();
        for (j, m) in matches.iter().enumerate() {
            let at = format!("{at}.matches[{j}]");
            if let Some(path) = &m.path {
                let kind = path.type_.as_deref().unwrap_or("PathPrefix");
                v.enumerated(&format!("{at}.path.type"), kind, &PATH_MATCH_TYPES);
                let value = path.value.as_deref().unwrap_or("/");
                if value.len() > 1024 {
                    v.push(format!("{at}.path.value"), FieldErrorKind::TooLong, "may not be more than 1024 bytes");
                }
                if matches!(kind, "Exact" | "PathPrefix") {
                    if !value.starts_with('/') {
                        v.rule(
                            &format!("{at}.path"),
                            "object",
                            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
                        );
                    }
                    if value.contains("//") {
                        v.rule(&format!("{at}.path"), "object", "must not contain '//' when type one of ['Exact', 'PathPrefix']");
                    }
                }
            }
            for (field, list) in [("headers", &m.headers), ("queryParams", &m.query_params)] {
                let list = list.as_deref().unwrap_or_default();
                for (k, h) in list.iter().enumerate() {
                    required_name(v, &format!("{at}.{field}[{k}].name"), &h.name, None);
                    v.enumerated(&format!("{at}.{field}[{k}].type"), h.type_.as_deref().unwrap_or("Exact"), &HEADER_MATCH_TYPES);
                }
            }
            if let Some(method) = &m.method {
                v.enumerated(&format!("{at}.method"), method, &METHODS);
            }
        }
        let filters = rule.filters.as_deref().unwrap_or_default();
        for (j, f) in filters.iter().enumerate() {
            v.enumerated(&format!("{at}.filters[{j}].type"), &f.type_, &FILTER_TYPES);
            // The CEL rules on HTTPRouteFilter: each type's field set for that type alone.
            for (field, type_, set) in [
                ("requestHeaderModifier", "RequestHeaderModifier", f.request_header_modifier.is_some()),
                ("responseHeaderModifier", "ResponseHeaderModifier", f.response_header_modifier.is_some()),
                ("requestMirror", "RequestMirror", f.request_mirror.is_some()),
                ("requestRedirect", "RequestRedirect", f.request_redirect.is_some()),
                ("urlRewrite", "URLRewrite", f.url_rewrite.is_some()),
            ] {
                let at = format!("{at}.filters[{j}]");
                if set && f.type_ != type_ {
                    v.rule(&at, "object", &format!("filter.{field} must be nil if the filter.type is not {type_}"));
                }
                if !set && f.type_ == type_ {
                    v.rule(&at, "object", &format!("filter.{field} must be specified for {type_} filter.type"));
                }
            }
        }
        if filters.iter().any(|f| f.type_ == "RequestRedirect") && filters.iter().any(|f| f.type_ == "URLRewrite") {
            v.rule(
                &format!("{at}.filters"),
                "array",
                "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
            );
        }
        let backends = rule.backend_refs.as_deref().unwrap_or_default();
        if !backends.is_empty() && filters.iter().any(|f| f.request_redirect.is_some()) {
            v.rule(&at, "object", "RequestRedirect filter must not be used together with backendRefs");
        }
        for (j, b) in backends.iter().enumerate() {
            let at = format!("{at}.backendRefs[{j}]");
            required_name(v, &format!("{at}.name"), &b.backend.name, None);
            if let Some(w) = b.weight {
                v.at_least(&format!("{at}.weight"), w.into(), 0);
                v.at_most(&format!("{at}.weight"), w.into(), 1_000_000);
            }
            if let Some(port) = b.backend.port {
                v.at_least(&format!("{at}.port"), port.into(), 1);
                v.at_most(&format!("{at}.port"), port.into(), 65535);
            }
            let service =
                b.backend.group.as_deref().unwrap_or_default().is_empty() && b.backend.kind.as_deref().unwrap_or("Service") == "Service";
            if service && b.backend.port.is_none() {
                v.rule(&at, "object", "Must have port for Service reference");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::typed::Object;
    use crate::validation::{validate, validate_update, Undecoded};
    use serde_json::{json, Value};

    fn check(v: Value) -> Result<(), String> {
        let mut o = Object::decode(v["kind"].as_str().unwrap(), &v).unwrap();
        crate::defaults::object(&mut o);
        validate(&o, Undecoded::of(&v)).map_err(|e| e.to_string())
    }

    fn gateway(listeners: Value) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
               "spec": {"gatewayClassName": "emu", "listeners": listeners}})
    }

    fn route(spec: Value) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn gateway_messages_are_the_crds() {
        assert_eq!(check(gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP"}]))), Ok(()));
        assert_eq!(
            check(gateway(json!([{"name": "http", "port": 0, "protocol": "HTTP"}]))).unwrap_err(),
            "The Gateway \"gw\" is invalid: spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1"
        );
        assert_eq!(
            check(gateway(json!([{"name": "a", "port": 80, "protocol": "HTTP"}, {"name": "a", "port": 81, "protocol": "HTTP"}])))
                .unwrap_err(),
            "The Gateway \"gw\" is invalid: spec.listeners: Invalid value: \"array\": Listener name must be unique within the Gateway"
        );
        assert_eq!(
            check(gateway(json!([{"name": "a", "port": 80, "protocol": "HTTP", "hostname": "Foo.example"}]))).unwrap_err(),
            format!("The Gateway \"gw\" is invalid: spec.listeners[0].hostname: Invalid value: \"Foo.example\": spec.listeners[0].hostname in body should match '{}'", super::HOSTNAME_PATTERN)
        );
        assert_eq!(check(gateway(json!([{"name": "a", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"}]))), Ok(()));
        assert_eq!(
            check(gateway(json!([{"name": "a", "port": 443, "protocol": "HTTPS"}]))).unwrap_err(),
            "The Gateway \"gw\" is invalid: spec.listeners: Invalid value: \"array\": tls mode must be set for protocol HTTPS"
        );
        assert!(check(gateway(json!([]))).unwrap_err().ends_with("spec.listeners: Required value"));
        assert_eq!(
            check(gateway(json!([{"name": "https", "port": 443, "protocol": "HTTPS", "tls": {}}]))).unwrap_err(),
            "The Gateway \"gw\" is invalid: spec.listeners[0].tls: Invalid value: \"object\": certificateRefs or options must be specified when mode is Terminate"
        );
        let tls = json!([{"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "tls-secret"}]}}]);
        assert_eq!(check(gateway(tls)), Ok(()));
    }

    #[test]
    fn route_messages_are_the_crds() {
        let ok = json!({"parentRefs": [{"name": "gw"}], "hostnames": ["kubia.example.com"],
                        "rules": [{"matches": [{"path": {"type": "Exact", "value": "/a"}}], "backendRefs": [{"name": "a", "port": 80, "weight": 80}]}]});
        assert_eq!(check(route(ok)), Ok(()));
        assert_eq!(
            check(route(json!({"rules": [{"matches": [{"path": {"value": "foo"}}]}]}))).unwrap_err(),
            "The HTTPRoute \"r\" is invalid: spec.rules[0].matches[0].path: Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"
        );
        assert_eq!(
            check(route(json!({"rules": [{"backendRefs": [{"name": "a"}]}]}))).unwrap_err(),
            "The HTTPRoute \"r\" is invalid: spec.rules[0].backendRefs[0]: Invalid value: \"object\": Must have port for Service reference"
        );
        assert_eq!(
            check(route(json!({"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]}))).unwrap_err(),
            "The HTTPRoute \"r\" is invalid: spec.rules[0].backendRefs[0].weight: Invalid value: -1: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0"
        );
        assert!(check(route(json!({"rules": [{"matches": [{"path": {"type": "Glob", "value": "/"}}]}]})))
            .unwrap_err()
            .contains("spec.rules[0].matches[0].path.type: Unsupported value: \"Glob\": supported values: \"Exact\", \"PathPrefix\", \"RegularExpression\""));
    }

    #[test]
    fn route_filters_follow_the_crds_rules() {
        let redirect = json!({"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}});
        assert_eq!(check(route(json!({"rules": [{"filters": [redirect]}]}))), Ok(()));
        assert_eq!(
            check(route(json!({"rules": [{"filters": [{"type": "URLRewrite"}]}]}))).unwrap_err(),
            "The HTTPRoute \"r\" is invalid: spec.rules[0].filters[0]: Invalid value: \"object\": filter.urlRewrite must be specified for URLRewrite filter.type"
        );
        assert_eq!(
            check(route(json!({"rules": [{"filters": [redirect], "backendRefs": [{"name": "a", "port": 80}]}]}))).unwrap_err(),
            "The HTTPRoute \"r\" is invalid: spec.rules[0]: Invalid value: \"object\": RequestRedirect filter must not be used together with backendRefs"
        );
    }

    #[test]
    fn gateway_class_controller_is_checked_and_immutable() {
        let class = |c: &str| json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "emu"}, "spec": {"controllerName": c}});
        assert_eq!(check(class("emu.dev/gateway-controller")), Ok(()));
        assert!(check(class("emu"))
            .unwrap_err()
            .contains("spec.controllerName: Invalid value: \"emu\": spec.controllerName in body should match"));
        let new = Object::decode("GatewayClass", &class("example.com/other")).unwrap();
        assert_eq!(
            validate_update(&class("emu.dev/gateway-controller"), &new).unwrap_err().to_string(),
            "The GatewayClass \"emu\" is invalid: spec.controllerName: Invalid value: \"string\": Value is immutable"
        );
    }
}
