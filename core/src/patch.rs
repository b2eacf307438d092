//! `kubectl patch`'s three patch types as pure functions of an object and a patch:
//!
//! * `merge`: an RFC 7386 JSON merge patch. `null` deletes a field, objects merge key by key,
//!   anything else (lists included) replaces.
//! * `json`: an RFC 6902 JSON patch, a list of `add`, `remove`, `replace`, `move`, `copy` and
//!   `test` operations on JSON pointers (`~0` is `~`, `~1` is `/`, `-` is the end of a list,
//!   negative indices count from the end as evanphx/json-patch allows). Errors are worded as that
//!   library (v4, which kubectl and the API server use) words them, e.g.
//!   `replace operation does not apply: doc is missing key: /spec/foo: missing value`. The
//!   patch applies as a whole or not at all.
//! * `strategic` (kubectl's default): emu's subset of Kubernetes' strategic merge patch. It is a
//!   merge patch, except that the lists Kubernetes declares with a merge key are merged item by
//!   item on that key: a patch item updates the item with the same key (recursively, by the same
//!   rules) or is appended, items the patch does not name are kept, and an item carrying
//!   `$patch: delete` removes the item with its key. The lists: a Service's `spec.ports` by
//!   `port`; `containers`, `initContainers` and `volumes` by `name`; a container's `env` by
//!   `name`, `volumeMounts` by `mountPath` and `ports` by `containerPort`. Every other list is
//!   replaced, and the other directives (`$retainKeys`, `$setElementOrder`, `$patch: replace`)
//!   are not understood.

use serde_json::{Map, Value};
use std::str::FromStr;

/// `kubectl patch --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

impl FromStr for PatchType {
    type Err = PatchError;

    /// kubectl takes the name in any case.
    fn from_str(s: &str) -> Result<PatchType, PatchError> {
        match s.to_ascii_lowercase().as_str() {
            "strategic" => Ok(PatchType::Strategic),
            "merge" => Ok(PatchType::Merge),
            "json" => Ok(PatchType::Json),
            _ => Err(PatchError::UnknownType(s.to_string())),
        }
    }
}

/// Why a patch could not be read or applied, in kubectl's (and its libraries') words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("--type must be one of [json merge strategic], not {0:?}")]
    UnknownType(String),
    /// The `-p` text is neither JSON nor YAML.
    #[error("unable to parse {text:?}: {reason}")]
    Parse { text: String, reason: String },
    /// A JSON patch that is not a list of operations: the API server's decoder error.
    #[error("json: cannot unmarshal {found} into Go value of type jsonpatch.{target}")]
    Shape { found: &'static str, target: &'static str },
    /// An RFC 6902 operation that does not apply.
    #[error("{0}")]
    Operation(String),
    /// A strategic patch item without the key of its list.
    #[error("map: {map} does not contain declared merge key: {key}")]
    MissingMergeKey { map: String, key: &'static str },
}

/// Reads `-p`: JSON, or YAML as kubectl also accepts.
pub fn parse(text: &str) -> Result<Value, PatchError> {
    let error = |reason: String| PatchError::Parse { text: text.to_string(), reason };
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        // Text that starts like JSON is reported as JSON; anything else gets the YAML reader's say.
        Err(e) if text.trim_start().starts_with(['{', '[']) => Err(error(e.to_string())),
        Err(_) => serde_saphyr::from_str::<Value>(text).map_err(|e| error(e.to_string())),
    }
}

/// `object` with `patch` (already parsed) applied as `ty` says.
pub fn apply(ty: PatchType, object: &Value, patch: &Value) -> Result<Value, PatchError> {
    match ty {
        PatchType::Merge => Ok(merge_patch(object, patch)),
        PatchType::Json => json_patch(object, patch),
        PatchType::Strategic => strategic_merge_patch(object, patch),
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 7386

/// RFC 7386: `target` with the merge patch `patch` applied.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    merge(target, patch, &mut Vec::new(), |_, _| None).expect("only lists with a merge key can fail a merge")
}

/// Which lists merge item by item, and on which key: the list `field` of the object at `path`.
type MergeKeys = fn(path: &[String], field: &str) -> Option<&'static str>;

/// A merge patch (RFC 7386) where the lists `keys` names are merged by key ([`merge_list`]).
fn merge(target: &Value, patch: &Value, path: &mut Vec<String>, keys: MergeKeys) -> Result<Value, PatchError> {
    let Value::Object(fields) = patch else { return Ok(patch.clone()) };
    let mut out = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in fields {
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let live = out.get(k).unwrap_or(&Value::Null);
        let key = keys(path, k);
        path.push(k.clone());
        let merged = match (key, v) {
            (Some(key), Value::Array(items)) => {
                let live = live.as_array().map(Vec::as_slice).unwrap_or_default();
                merge_list(live, items, key, path, keys).map(Value::Array)
            }
            _ => merge(live, v, path, keys),
        };
        path.pop();
        out.insert(k.clone(), merged?);
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// Strategic merge (emu's subset)

/// The merge key of the list `field` found in the object at `path` (the object keys leading to
/// it; list items add nothing, so a container's fields sit under `[.., "containers"]`).
fn merge_key(path: &[String], field: &str) -> Option<&'static str> {
    let in_container = matches!(path.last().map(String::as_str), Some("containers" | "initContainers"));
    match field {
        "containers" | "initContainers" | "volumes" => Some("name"),
        "env" if in_container => Some("name"),
        "volumeMounts" if in_container => Some("mountPath"),
        "ports" if in_container => Some("containerPort"),
        "ports" if path == ["spec"] => Some("port"),
        _ => None,
    }
}

/// emu's strategic merge patch (see the module documentation for what it covers).
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge(target, patch, &mut Vec::new(), merge_key)
}

/// A list with a merge key: patch items update the live item with the same key, or are
/// appended; `$patch: delete` removes it.
fn merge_list(live: &[Value], items: &[Value], key: &'static str, path: &mut Vec<String>, keys: MergeKeys) -> Result<Vec<Value>, PatchError> {
    let mut out = live.to_vec();
    for item in items {
        let Some(fields) = item.as_object() else {
            out.push(item.clone());
            continue;
        };
        let Some(wanted) = fields.get(key) else {
            return Err(PatchError::MissingMergeKey { map: go_value(item), key });
        };
        let mut item = fields.clone();
        let directive = item.remove("$patch");
        let at = out.iter().position(|l| l.get(key) == Some(wanted));
        match (at, directive.as_ref().and_then(Value::as_str)) {
            (Some(i), Some("delete")) => {
                out.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => out[i] = merge(&out[i], &Value::Object(item), path, keys)?,
            (None, _) => out.push(merge(&Value::Null, &Value::Object(item), path, keys)?),
        }
    }
    Ok(out)
}

/// Go's `%v` of a decoded JSON value, as Kubernetes' patch errors print maps.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut fields: Vec<(&String, &Value)> = m.iter().collect();
            fields.sort_by_key(|(k, _)| *k);
            format!("map[{}]", fields.iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 6902

/// RFC 6902: `doc` with every operation of `patch` applied in order, or the first failure.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) => ops.as_slice(),
        Value::Null => &[],
        other => return Err(PatchError::Shape { found: json_type(other), target: "Patch" }),
    };
    let mut doc = doc.clone();
    for op in ops {
        let Value::Object(op) = op else {
            return Err(PatchError::Shape { found: json_type(op), target: "Operation" });
        };
        apply_operation(&mut doc, op).map_err(PatchError::Operation)?;
    }
    Ok(doc)
}

/// Go's name of a JSON value's type in `json: cannot unmarshal ...`.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn apply_operation(doc: &mut Value, op: &Map<String, Value>) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let field = |name: &str| op.get(name).and_then(Value::as_str).map(str::to_string);
    let path = || field("path").ok_or_else(|| format!("{kind} operation failed to decode path: missing value"));
    let from = || field("from").ok_or_else(|| format!("{kind} operation failed to decode from: operation, missing from field: missing value"));
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| format!("invalid operation {}: failed to decode 'value': operation, missing value field: missing value", Value::Object(op.clone())))
    };
    match kind {
        "add" => add(doc, &path()?, value()?),
        "remove" => remove(doc, &path()?),
        "replace" => replace(doc, &path()?, value()?),
        "move" => move_value(doc, &from()?, &path()?),
        "copy" => copy(doc, &from()?, &path()?),
        "test" => test(doc, &path()?, &value()?),
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// The container of the location `pointer` names, and the location's last reference token;
/// None when the pointer is not absolute or a step on the way does not exist.
fn parent_mut<'a>(doc: &'a mut Value, pointer: &str) -> Option<(&'a mut Value, String)> {
    let rest = pointer.strip_prefix('/')?;
    let tokens: Vec<String> = rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let (last, steps) = tokens.split_last()?;
    let mut at = doc;
    for token in steps {
        at = child_mut(at, token)?;
    }
    (at.is_object() || at.is_array()).then_some((at, last.clone()))
}

fn child_mut<'a>(container: &'a mut Value, token: &str) -> Option<&'a mut Value> {
    match container {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => {
            let i = existing_index(token, a.len()).ok()?;
            a.get_mut(i)
        }
        _ => None,
    }
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(token: &str) -> Result<i64, String> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {token:?}: invalid syntax"));
    }
    token.parse().map_err(|_| format!("strconv.Atoi: parsing {token:?}: value out of range"))
}

/// The index of an existing item of a list of `len` (negative: from the end).
fn existing_index(token: &str, len: usize) -> Result<usize, String> {
    let i = atoi(token)?;
    let len = len as i64;
    if i >= len || i < -len {
        return Err(format!("Unable to access invalid index: {i}: invalid index referenced"));
    }
    Ok(if i < 0 { i + len } else { i } as usize)
}

/// Puts `value` at `key` of `container` (RFC 6902 `add` on the parent): a field is set, an item
/// is inserted before the one at the index, `-` appends.
fn insert(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let i = atoi(key).map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let room = a.len() as i64 + 1;
            if i >= room || i < -room {
                return Err(format!("Unable to access invalid index: {i}: invalid index referenced"));
            }
            a.insert(if i < 0 { i + room } else { i } as usize, value);
        }
        _ => unreachable!("parent_mut returns containers only"),
    }
    Ok(())
}

/// Removes and returns the value at `key` of `container`.
fn take(container: &mut Value, key: &str) -> Result<Value, String> {
    match container {
        Value::Object(m) => m.remove(key).ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
        Value::Array(a) => Ok(a.remove(existing_index(key, a.len())?)),
        _ => unreachable!("parent_mut returns containers only"),
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = parent_mut(doc, path).ok_or_else(|| format!("add operation does not apply: doc is missing path: {path:?}: missing value"))?;
    insert(parent, &key, value).map_err(|e| format!("error in add for path: '{path}': {e}"))
}

fn remove(doc: &mut Value, path: &str) -> Result<(), String> {
    let (parent, key) = parent_mut(doc, path).ok_or_else(|| format!("remove operation does not apply: doc is missing path: {path:?}: missing value"))?;
    take(parent, &key).map(drop).map_err(|e| format!("error in remove for path: '{path}': {e}"))
}

fn replace(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = parent_mut(doc, path).ok_or_else(|| format!("replace operation does not apply: doc is missing path: {path}: missing value"))?;
    let slot = child_mut(parent, &key).ok_or_else(|| format!("replace operation does not apply: doc is missing key: {path}: missing value"))?;
    *slot = value;
    Ok(())
}

fn move_value(doc: &mut Value, from: &str, path: &str) -> Result<(), String> {
    let (parent, key) = parent_mut(doc, from).ok_or_else(|| format!("move operation does not apply: doc is missing from path: {from}: missing value"))?;
    let value = take(parent, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
    let (parent, key) =
        parent_mut(doc, path).ok_or_else(|| format!("move operation does not apply: doc is missing destination path: {path}: missing value"))?;
    insert(parent, &key, value).map_err(|e| format!("error in move for path: '{path}': {e}"))
}

fn copy(doc: &mut Value, from: &str, path: &str) -> Result<(), String> {
    let missing = || format!("copy operation does not apply: doc is missing from path: {from}: missing value");
    let (parent, key) = parent_mut(doc, from).ok_or_else(missing)?;
    let value = child_mut(parent, &key).ok_or_else(missing)?.clone();
    let (parent, key) =
        parent_mut(doc, path).ok_or_else(|| format!("copy operation does not apply: doc is missing destination path: {path}: missing value"))?;
    insert(parent, &key, value).map_err(|e| format!("error while adding value during copy: {e}"))
}

fn test(doc: &mut Value, path: &str, value: &Value) -> Result<(), String> {
    let failed = || format!("testing value {path} failed: test failed");
    if path.is_empty() {
        return if doc == value { Ok(()) } else { Err(failed()) };
    }
    let (parent, key) = parent_mut(doc, path).ok_or_else(|| format!("test operation does not apply: is missing path: {path}: missing value"))?;
    match child_mut(parent, &key) {
        Some(found) if found == value => Ok(()),
        None if value.is_null() => Ok(()),
        _ => Err(failed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tutorial's Service as the API returns it.
    fn my_nginx() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-nginx", "namespace": "default", "labels": {"run": "my-nginx"}, "resourceVersion": "7"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.42", "selector": {"run": "my-nginx"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP", "nodePort": 31704},
                          {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 32453}]}})
    }

    fn json_err(doc: &Value, patch: Value) -> String {
        json_patch(doc, &patch).unwrap_err().to_string()
    }

    #[test]
    fn patch_types_and_their_names() {
        assert_eq!("strategic".parse(), Ok(PatchType::Strategic));
        assert_eq!("Merge".parse(), Ok(PatchType::Merge));
        assert_eq!("json".parse(), Ok(PatchType::Json));
        let e = "jsonpatch".parse::<PatchType>().unwrap_err();
        assert_eq!(e.to_string(), "--type must be one of [json merge strategic], not \"jsonpatch\"");
    }

    #[test]
    fn patches_read_as_json_or_yaml() {
        assert_eq!(parse(r#"{"spec":{"type":"NodePort"}}"#).unwrap(), json!({"spec": {"type": "NodePort"}}));
        assert_eq!(parse("spec:\n  type: NodePort\n").unwrap(), json!({"spec": {"type": "NodePort"}}));
        let e = parse(r#"{"spec":"#).unwrap_err().to_string();
        assert!(e.starts_with(r#"unable to parse "{\"spec\":": EOF while parsing"#), "{e}");
    }

    #[test]
    fn merge_patch_is_rfc7386() {
        // The RFC's own example (appendix A, abridged).
        let target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "x"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
        let want = json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "x", "phoneNumber": "+01-123-456-7890"});
        assert_eq!(merge_patch(&target, &patch), want);
        // Non-objects replace; an object patch on a scalar starts from an empty object, whose
        // nulls vanish.
        assert_eq!(merge_patch(&json!({"a": "b"}), &json!(["c"])), json!(["c"]));
        assert_eq!(merge_patch(&json!({"a": "foo"}), &json!({"a": {"bb": {"ccc": null}}})), json!({"a": {"bb": {}}}));
        assert_eq!(merge_patch(&json!({"e": null}), &json!({"a": 1})), json!({"e": null, "a": 1}));
    }

    #[test]
    fn merge_patch_replaces_lists_where_strategic_merges_them_by_key() {
        let svc = my_nginx();
        let patch = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 30443}]}});
        let merged = merge_patch(&svc, &patch);
        assert_eq!(merged["spec"]["ports"], json!([{"port": 443, "nodePort": 30443}]));
        let strategic = strategic_merge_patch(&svc, &patch).unwrap();
        assert_eq!(strategic["spec"]["type"], "LoadBalancer");
        assert_eq!(strategic["spec"]["ports"][0], svc["spec"]["ports"][0]);
        assert_eq!(strategic["spec"]["ports"][1], json!({"name": "https", "port": 443, "protocol": "TCP", "nodePort": 30443}));
        // A new port is appended; `$patch: delete` removes one; null deletes a field.
        let patch = json!({"spec": {"ports": [{"port": 8443, "name": "alt"}, {"port": 8080, "$patch": "delete"}], "selector": null}});
        let out = strategic_merge_patch(&svc, &patch).unwrap();
        assert_eq!(out["spec"]["ports"], json!([svc["spec"]["ports"][1], {"port": 8443, "name": "alt"}]));
        assert!(out["spec"].get("selector").is_none());
        // An item without its key is refused, as the API server does.
        let e = strategic_merge_patch(&svc, &json!({"spec": {"ports": [{"targetPort": 8080, "name": "x"}]}})).unwrap_err();
        assert_eq!(e.to_string(), "map: map[name:x targetPort:8080] does not contain declared merge key: port");
    }

    #[test]
    fn strategic_merge_keys_of_pod_templates() {
        let deploy = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}, {"containerPort": 443}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/nginx/conf.d"}]}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "a"}}],
            "tolerations": [{"key": "x"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 443, "name": "https"}],
                "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                "volumeMounts": [{"mountPath": "/etc/nginx/conf.d", "readOnly": true}]},
                {"name": "sidecar", "image": "curl"}],
            "initContainers": [{"name": "init", "command": ["true"]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "b"}}],
            "tolerations": [{"key": "y"}]}}}});
        let out = strategic_merge_patch(&deploy, &patch).unwrap();
        let spec = &out["spec"]["template"]["spec"];
        let nginx = &spec["containers"][0];
        assert_eq!(nginx["image"], "nginx:1.27");
        assert_eq!(nginx["ports"], json!([{"containerPort": 80}, {"containerPort": 443, "name": "https"}]));
        assert_eq!(nginx["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]));
        assert_eq!(nginx["volumeMounts"], json!([{"name": "cfg", "mountPath": "/etc/nginx/conf.d", "readOnly": true}]));
        assert_eq!(spec["containers"][1], json!({"name": "sidecar", "image": "curl"}));
        assert_eq!(spec["initContainers"], json!([{"name": "init", "image": "busybox", "command": ["true"]}]));
        assert_eq!(spec["volumes"], json!([{"name": "cfg", "configMap": {"name": "b"}}]));
        assert_eq!(spec["tolerations"], json!([{"key": "y"}]), "lists without a merge key are replaced");
    }

    #[test]
    fn json_patch_operations() {
        let svc = my_nginx();
        let patch = json!([
            {"op": "test", "path": "/spec/type", "value": "NodePort"},
            {"op": "replace", "path": "/spec/type", "value": "ClusterIP"},
            {"op": "remove", "path": "/spec/ports/0/nodePort"},
            {"op": "remove", "path": "/spec/ports/-1/nodePort"},
            {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 8443}},
            {"op": "add", "path": "/spec/ports/0", "value": {"port": 1}},
            {"op": "copy", "from": "/metadata/labels/run", "path": "/metadata/labels/tilde~0"},
            {"op": "move", "from": "/spec/ports/0", "path": "/spec/extra"},
        ]);
        let out = json_patch(&svc, &patch).unwrap();
        assert_eq!(out["spec"]["type"], "ClusterIP");
        assert_eq!(out["metadata"]["labels"], json!({"run": "my-nginx", "app.kubernetes.io/name": "web", "tilde~": "my-nginx"}));
        let ports = out["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.iter().map(|p| p["port"].as_i64().unwrap()).collect::<Vec<_>>(), [8080, 443, 8443]);
        assert!(ports.iter().all(|p| p.get("nodePort").is_none()), "{ports:?}");
        assert_eq!(out["spec"]["extra"], json!({"port": 1}));
        // The whole document, and a test of an absent field against null.
        assert_eq!(
            json_patch(&svc, &json!([{"op": "test", "path": "/spec/nope", "value": null}, {"op": "replace", "path": "", "value": {"a": 1}}])).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn json_patch_errors_are_evanphx_json_patchs() {
        let svc = my_nginx();
        let cases = [
            (json!([{"op": "replace", "path": "/spec/foo", "value": 1}]), "replace operation does not apply: doc is missing key: /spec/foo: missing value"),
            (
                json!([{"op": "replace", "path": "/spec/foo/bar", "value": 1}]),
                "replace operation does not apply: doc is missing path: /spec/foo/bar: missing value",
            ),
            (json!([{"op": "add", "path": "/nope/x", "value": 1}]), "add operation does not apply: doc is missing path: \"/nope/x\": missing value"),
            (
                json!([{"op": "add", "path": "/spec/ports/9", "value": 1}]),
                "error in add for path: '/spec/ports/9': Unable to access invalid index: 9: invalid index referenced",
            ),
            (
                json!([{"op": "add", "path": "/spec/ports/x", "value": 1}]),
                "error in add for path: '/spec/ports/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (json!([{"op": "remove", "path": "/spec/foo"}]), "error in remove for path: '/spec/foo': Unable to remove nonexistent key: foo: missing value"),
            (json!([{"op": "remove", "path": "/a/b"}]), "remove operation does not apply: doc is missing path: \"/a/b\": missing value"),
            (
                json!([{"op": "remove", "path": "/spec/ports/2"}]),
                "error in remove for path: '/spec/ports/2': Unable to access invalid index: 2: invalid index referenced",
            ),
            (json!([{"op": "test", "path": "/spec/type", "value": "ClusterIP"}]), "testing value /spec/type failed: test failed"),
            (json!([{"op": "move", "from": "/x/y", "path": "/spec/z"}]), "move operation does not apply: doc is missing from path: /x/y: missing value"),
            (
                json!([{"op": "move", "from": "/spec/type", "path": "/x/y"}]),
                "move operation does not apply: doc is missing destination path: /x/y: missing value",
            ),
            (
                json!([{"op": "copy", "from": "/spec/nope", "path": "/spec/z"}]),
                "copy operation does not apply: doc is missing from path: /spec/nope: missing value",
            ),
            (json!([{"op": "frobnicate", "path": "/spec"}]), "Unexpected kind: frobnicate"),
            (json!([{"op": "add", "value": 1}]), "add operation failed to decode path: missing value"),
            (
                json!([{"op": "add", "path": "/spec/x"}]),
                "invalid operation {\"op\":\"add\",\"path\":\"/spec/x\"}: failed to decode 'value': operation, missing value field: missing value",
            ),
            (json!({"op": "add"}), "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
            (json!(["add"]), "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        ];
        for (patch, want) in cases {
            assert_eq!(json_err(&svc, patch.clone()), want, "{patch}");
        }
        // All or nothing: the first operations of a failing patch leave no trace (the input is
        // untouched; the caller keeps it).
        let bad = json!([{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}, {"op": "remove", "path": "/nope"}]);
        assert!(json_patch(&svc, &bad).is_err());
        assert_eq!(svc, my_nginx());
    }
}
