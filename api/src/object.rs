//! Small accessors for Kubernetes objects held as JSON values (what the store and the API carry).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

pub fn kind(v: &Value) -> &str {
    str_at(v, &["kind"]).unwrap_or("")
}

pub fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"]).unwrap_or("")
}

pub fn namespace(v: &Value) -> &str {
    str_at(v, &["metadata", "namespace"]).unwrap_or("")
}

pub fn uid(v: &Value) -> &str {
    str_at(v, &["metadata", "uid"]).unwrap_or("")
}

pub fn labels(v: &Value) -> BTreeMap<String, String> {
    string_map(at(v, &["metadata", "labels"]))
}

pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    at(v, &["metadata", "annotations", key])?.as_str()
}

pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The uid of the object's managing controller (the ownerReference with `controller: true`).
pub fn controller_uid(v: &Value) -> Option<&str> {
    at(v, &["metadata", "ownerReferences"])?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| o.get("uid")?.as_str())
}

pub fn is_terminating(v: &Value) -> bool {
    at(v, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null())
}

/// The object's `metadata` map, created if missing.
pub fn metadata_mut(v: &mut Value) -> &mut Map<String, Value> {
    object_mut(v, "metadata")
}

/// `v[key]` as a map, created (or replaced, if not a map) when needed.
pub fn object_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let map = v.as_object_mut().expect("just made an object");
    let entry = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

pub fn set_annotation(v: &mut Value, key: &str, value: &str) {
    let meta = metadata_mut(v);
    let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    if let Some(m) = ann.as_object_mut() {
        m.insert(key.to_string(), Value::String(value.to_string()));
    }
}

// Timestamps live in `crate::time`; re-exported here, where the object accessors are.
pub use crate::time::{parse_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn controller_owner() {
        let v = json!({"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b", "controller": true}]}});
        assert_eq!(controller_uid(&v), Some("b"));
    }
}
