//! `kubectl describe` of a custom resource (`GenericDescriber` with `printUnstructuredContent`),
//! which the Gateway API's kinds get from kubectl, as Kubernetes serves them from CRDs: name,
//! namespace (printed even when empty), labels and annotations, then every field of the object
//! by key, nested maps indented, the elements of a list of maps one after another (no marker),
//! each key as a label made from its camelCase (`smartLabelFor`: `gatewayClassName` →
//! `Gateway Class Name`, `uid` → `UID`).

use super::{annotations_multiline, labels_multiline};
use crate::{at, str_at};
use serde_json::Value;
use std::fmt::Write;

const SKIPPED: [&str; 5] =
    [".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels", ".metadata.annotations"];

pub(super) fn custom_resource(w: &mut String, obj: &Value) {
    let _ = writeln!(w, "Name:\t{}", str_at(obj, &["metadata", "name"]));
    let _ = writeln!(w, "Namespace:\t{}", str_at(obj, &["metadata", "namespace"]));
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
    if let Value::Object(content) = obj {
        content_lines(w, 0, content, "");
    }
}

/// `printUnstructuredContent`.
fn content_lines(w: &mut String, level: usize, content: &serde_json::Map<String, Value>, prefix: &str) {
    let mut fields: Vec<&String> = content.keys().collect();
    fields.sort();
    for field in fields {
        let path = format!("{prefix}.{field}");
        if SKIPPED.contains(&path.as_str()) {
            continue;
        }
        let indent = "  ".repeat(level);
        match &content[field] {
            Value::Object(m) => {
                let _ = writeln!(w, "{indent}{}:", smart_label(field));
                content_lines(w, level + 1, m, &path);
            }
            Value::Array(items) => {
                let _ = writeln!(w, "{indent}{}:", smart_label(field));
                for item in items {
                    match item {
                        Value::Object(m) => content_lines(w, level + 1, m, &path),
                        other => {
                            let _ = writeln!(w, "{indent}  {}", go_value(other));
                        }
                    }
                }
            }
            other => {
                let _ = writeln!(w, "{indent}{}:\t{}", smart_label(field), go_value(other));
            }
        }
    }
}

/// Go's `%v` of a decoded JSON scalar.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `smartLabelFor`: a key of letters and dashes split as `camelcase.Split` splits it, each part
/// title-cased (API, URL, UID, OSB and GUID upper-cased); any other key as it is.
fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    // Runs of one class (lower, upper, other); an upper run followed by a lower one gives its
    // last letter to it (`HTTPRoute` → `HTTP`, `Route`).
    let class = |c: char| {
        if c.is_lowercase() {
            0
        } else if c.is_uppercase() {
            1
        } else {
            2
        }
    };
    let mut runs: Vec<String> = Vec::new();
    let mut last = None;
    for c in field.chars() {
        if Some(class(c)) == last {
            runs.last_mut().expect("a run is open").push(c);
        } else {
            runs.push(c.to_string());
        }
        last = Some(class(c));
    }
    for i in 0..runs.len().saturating_sub(1) {
        let (upper, lower) = (runs[i].chars().all(char::is_uppercase), runs[i + 1].chars().all(char::is_lowercase));
        if upper && lower && !runs[i].is_empty() {
            let moved = runs[i].pop().expect("not empty");
            runs[i + 1].insert(0, moved);
        }
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    let parts: Vec<String> = runs
        .into_iter()
        .filter(|p| !p.is_empty() && p != "_")
        .map(|p| {
            let upper = p.to_uppercase();
            if ACRONYMS.contains(&upper.as_str()) {
                upper
            } else {
                // strings.Title: the first letter of each word upper-cased.
                let mut cs = p.chars();
                cs.next().map(|f| f.to_uppercase().chain(cs).collect()).unwrap_or_default()
            }
        })
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_as_kubectl_makes_them() {
        for (field, label) in [
            ("apiVersion", "API Version"),
            ("gatewayClassName", "Gateway Class Name"),
            ("uid", "UID"),
            ("HTTPRoute", "HTTP Route"),
            ("kind", "Kind"),
            ("lastTransitionTime", "Last Transition Time"),
            ("tls.crt", "tls.crt"),
        ] {
            assert_eq!(smart_label(field), label, "{field}");
        }
    }

    #[test]
    fn a_gateway_described_as_a_custom_resource() {
        let gw = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "default", "generation": 1, "uid": "u-1", "managedFields": [{"manager": "x"}]},
            "spec": {"gatewayClassName": "emu", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                     "allowedRoutes": {"namespaces": {"from": "Same"}}}]}});
        let out = crate::describe::describe("Gateway", &gw, &[], 0);
        assert_eq!(
            out,
            "Name:         web
Namespace:    default
Labels:       <none>
Annotations:  <none>
API Version:  gateway.networking.k8s.io/v1
Kind:         Gateway
Metadata:
  Generation:  1
  UID:         u-1
Spec:
  Gateway Class Name:  emu
  Listeners:
    Allowed Routes:
      Namespaces:
        From:  Same
    Name:      http
    Port:      80
    Protocol:  HTTP
Events:        <none>
"
        );
    }
}
