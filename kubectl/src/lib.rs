//! kubectl's output formats as pure functions: `get` tables, `describe`, `-o yaml|json|jsonpath|
//! custom-columns|name`. Objects arrive as Kubernetes JSON (`serde_json::Value`) as the API returns
//! them after defaulting, so every printer also works on kinds it knows nothing about.
//!
//! Behaviour tags CLI-0..CLI-24 (docs/architecture.md, "Conventions"). The layouts follow kubectl's
//! printers byte for byte (tabwriter widths, AGE bands, quoting).

mod describe;
pub mod explain;
pub mod expose;
pub mod generate;
mod gofmt;
pub mod info;
mod jsonpath;
pub mod sort;
mod tables;
mod tabwriter;
mod time;
mod yaml;

use serde_json::Value;

pub use describe::{describe, pod_template_text};
pub use emu_api::json::canonical_json;
pub use jsonpath::{custom_columns, jsonpath};
pub use tables::{column_definitions, row_cells, table, table_rows, Cell, ColumnDefinition, TableOptions};
pub use tabwriter::{tabwrite, WatchWriter};
pub use time::human_duration;
pub use yaml::to_yaml;

/// `value` as kubectl's `-o json` prints it: without `metadata.managedFields` (see
/// [`omit_managed_fields`]).
pub fn to_json(value: &Value) -> String {
    emu_api::json::to_json(&omit_managed_fields(value))
}

/// kubectl's `OmitManagedFieldsPrinter`, which its `-o yaml` and `-o json` go through unless
/// `--show-managed-fields`: an object's `metadata.managedFields` (a list's items' too) left
/// out. Borrowed when there are none.
pub fn omit_managed_fields(value: &Value) -> std::borrow::Cow<'_, Value> {
    let shown = |o: &Value| o.get("metadata").and_then(|m| m.get("managedFields")).is_some();
    let items = value.get("items").and_then(Value::as_array);
    if !shown(value) && !items.is_some_and(|i| i.iter().any(shown)) {
        return std::borrow::Cow::Borrowed(value);
    }
    let omit = |v: &mut Value| {
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    };
    let mut v = value.clone();
    omit(&mut v);
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(omit);
    }
    std::borrow::Cow::Owned(v)
}

/// Errors of the template printers, worded like kubectl's (the CLI prefixes `error: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    #[error("error parsing jsonpath {template}, {reason}")]
    JsonPathParse { template: String, reason: String },
    #[error("error executing jsonpath {template:?}: Error executing template: {reason}")]
    JsonPathExecute { template: String, reason: String },
    #[error("custom-columns format specified but no custom columns given")]
    NoCustomColumns,
    #[error("unexpected custom-columns spec: {0}, expected <header>:<json-path-expr>")]
    CustomColumnSpec(String),
    #[error("unexpected path string {0:?}, expected a 'name1.name2' or '.name1.name2' or '{{name1.name2}}' or '{{.name1.name2}}'")]
    CustomColumnPath(String),
}

/// The document `kubectl get -o yaml|json` prints for several objects (CLI-20/21).
pub fn list_object(items: Vec<Value>) -> Value {
    let mut list = serde_json::Map::new();
    list.insert("apiVersion".into(), "v1".into());
    list.insert("items".into(), Value::Array(items));
    list.insert("kind".into(), "List".into());
    list.insert("metadata".into(), serde_json::json!({"resourceVersion": ""}));
    Value::Object(list)
}

/// `-o name` and the NAME prefix of multi-kind tables (CLI-4, CLI-24): `pod/x`, `deployment.apps/x`.
pub fn resource_name(kind: &str, name: &str) -> String {
    format!("{}/{}", kind_and_group(kind), name)
}

/// Lower-case kind plus `.group` for non-core API groups.
fn kind_and_group(kind: &str) -> String {
    let group = match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ControllerRevision" => "apps",
        "EndpointSlice" => "discovery.k8s.io",
        "Ingress" | "IngressClass" | "NetworkPolicy" => "networking.k8s.io",
        "Job" | "CronJob" => "batch",
        "GatewayClass" | "Gateway" | "HTTPRoute" => "gateway.networking.k8s.io",
        "Lease" => "coordination.k8s.io",
        _ => "",
    };
    let kind = kind.to_lowercase();
    if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    }
}

// ---- small accessors over Kubernetes JSON: a missing field reads as the Go zero value ----------

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// A `map[string]string` field as sorted pairs (non-string values are skipped).
fn string_pairs(v: Option<&Value>) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> =
        v.and_then(Value::as_object).map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect()).unwrap_or_default();
    pairs.sort();
    pairs
}

/// `labels.FormatLabels`: `k=v` sorted by key and joined by `,`, or `<none>`.
fn format_labels(v: Option<&Value>) -> String {
    let pairs = string_pairs(v);
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key; "" for an empty
/// selector.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> =
        string_pairs(sel.get("matchLabels")).into_iter().map(|(k, v)| (k.to_string(), format!("{k}={v}"))).collect();
    for expr in list_at(sel, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<&str> = list_at(expr, &["values"]).iter().filter_map(Value::as_str).collect();
        values.sort();
        let text = match str_at(expr, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(",")
}

/// An `IntOrString` field as Go's `intstr.String()` prints it.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `translateTimestampSince(metadata.creationTimestamp)`: the AGE column.
pub fn age(obj: &Value, now: i64) -> String {
    time::since(at(obj, &["metadata", "creationTimestamp"]).and_then(Value::as_str), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_carry_the_group() {
        assert_eq!(resource_name("Pod", "x"), "pod/x");
        assert_eq!(resource_name("Deployment", "x"), "deployment.apps/x");
        assert_eq!(resource_name("Service", "x"), "service/x");
        assert_eq!(resource_name("ReplicaSet", "x"), "replicaset.apps/x");
        assert_eq!(resource_name("Node", "x"), "node/x");
        assert_eq!(resource_name("Namespace", "x"), "namespace/x");
        assert_eq!(resource_name("EndpointSlice", "x"), "endpointslice.discovery.k8s.io/x");
        assert_eq!(resource_name("Endpoints", "x"), "endpoints/x");
    }

    #[test]
    fn list_object_renders_like_kubectl() {
        let list = list_object(vec![]);
        assert_eq!(to_yaml(&list), "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n");
    }

    #[test]
    fn selectors_render_sorted() {
        let sel = serde_json::json!({
            "matchLabels": {"run": "my-nginx", "app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]
        });
        assert_eq!(selector_string(Some(&sel)), "app=web,!gone,run=my-nginx,tier in (a,b)");
        assert_eq!(format_labels(None), "<none>");
    }
}
