//! core/v1 Events as kubelet's event recorder (client-go `tools/record`) writes them, as pure
//! functions: the daemons decide *when* something is worth an Event and send the result to the
//! API; what the object looks like is decided here, so `get events` and `describe` see exactly
//! the fields kubectl reads.

use serde_json::{json, Map, Value};

use emu_api::kinds;
use emu_api::object::{kind, name, namespace, str_at, uid};

/// `type: Normal`: an event of the ordinary life of an object.
pub const NORMAL: &str = "Normal";
/// `type: Warning`: something went wrong (e.g. kubelet's `FailedMount`).
pub const WARNING: &str = "Warning";

/// A new core/v1 Event about `involved`, as the recorder's `makeEvent` builds it.
///
/// * `event_type`: [`NORMAL`] or [`WARNING`]; `reason`: a CamelCase word (`FailedMount`).
/// * `component`, `host`: the reporter (`kubelet`, `node-1`); they fill both the legacy `source`
///   and `reportingComponent`/`reportingInstance`, as the recorder does.
/// * `now_rfc3339`: first and last timestamp; `name_suffix_nanos`: the wall clock in unix
///   nanoseconds, which makes the name unique per object (`<name>.<hex nanos>`, Go's
///   `fmt.Sprintf("%v.%x", ref.Name, t.UnixNano())`). Both are parameters so this stays pure.
///
/// `eventTime` is left out: the legacy recorder never sets it, and printers fall back to
/// `firstTimestamp` when it is absent.
#[allow(clippy::too_many_arguments)] // mirrors makeEvent's inputs one to one
pub fn new_event(
    involved: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
    host: &str,
    now_rfc3339: &str,
    name_suffix_nanos: u128,
) -> Value {
    // Events of cluster-scoped objects (a Node) have nowhere else to live than `default`.
    let event_namespace = match namespace(involved) {
        "" => "default",
        ns => ns,
    };
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{name_suffix_nanos:x}", name(involved)),
            "namespace": event_namespace,
        },
        "involvedObject": object_reference(involved),
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": non_empty(&[("component", component), ("host", host)]),
        "firstTimestamp": now_rfc3339,
        "lastTimestamp": now_rfc3339,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host,
    })
}

/// What the recorder does when the same event happens again (see [`is_same_event`]): instead of
/// a new object it bumps `count` and `lastTimestamp` of the existing one, keeping its name and
/// `firstTimestamp`, so `describe` shows `3s (x2 over 5s)`.
pub fn repeat(event: &mut Value, now_rfc3339: &str) {
    // An event written without a count (the events.k8s.io API leaves singletons at 0) has
    // happened once.
    let count = event.get("count").and_then(Value::as_i64).filter(|c| *c > 0).unwrap_or(1);
    if let Some(map) = event.as_object_mut() {
        map.insert("count".into(), json!(count + 1));
        map.insert("lastTimestamp".into(), json!(now_rfc3339));
    }
}

/// Whether `new` repeats `existing`: the recorder's `getEventKey` (same reporter, same involved
/// object, same type, reason and message). A caller finding such an Event calls [`repeat`] on it
/// and updates it rather than creating `new`.
pub fn is_same_event(existing: &Value, new: &Value) -> bool {
    const KEY: [&[&str]; 11] = [
        &["source", "component"],
        &["source", "host"],
        &["involvedObject", "kind"],
        &["involvedObject", "namespace"],
        &["involvedObject", "name"],
        &["involvedObject", "fieldPath"],
        &["involvedObject", "uid"],
        &["involvedObject", "apiVersion"],
        &["type"],
        &["reason"],
        &["message"],
    ];
    KEY.iter().all(|path| str_at(existing, path).unwrap_or("") == str_at(new, path).unwrap_or(""))
}

/// `reference.GetReference`: the object's identity, with Go's `omitempty` (a Node's reference
/// has no namespace).
fn object_reference(obj: &Value) -> Value {
    let kind = kind(obj);
    // Objects read back from the API carry apiVersion; one built in memory may not, and the
    // reference must still say which API the kind lives in.
    let api_version = match str_at(obj, &["apiVersion"]) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => kinds::by_kind(kind).map(|k| k.api_version()).unwrap_or_default(),
    };
    non_empty(&[
        ("apiVersion", &api_version),
        ("kind", kind),
        ("name", name(obj)),
        ("namespace", namespace(obj)),
        ("uid", uid(obj)),
        ("resourceVersion", str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")),
    ])
}

/// A JSON map of the non-empty pairs (Go's `omitempty` on string fields).
fn non_empty(pairs: &[(&str, &str)]) -> Value {
    let map: Map<String, Value> = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), json!(v))).collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "my-nginx-5b56ccd65f-abcde", "namespace": "default",
                            "uid": "pod-uid", "resourceVersion": "42"},
               "spec": {"nodeName": "node-1"}})
    }

    const MOUNT_FAILED: &str = "MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found";

    #[test]
    fn failed_mount_like_kubelet() {
        let e = new_event(&pod(), WARNING, "FailedMount", MOUNT_FAILED, "kubelet", "node-1", "2024-05-01T10:00:16Z", 0x17cb_6a4f_3c2d_1e00);
        assert_eq!(
            e,
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "my-nginx-5b56ccd65f-abcde.17cb6a4f3c2d1e00", "namespace": "default"},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "my-nginx-5b56ccd65f-abcde",
                                   "namespace": "default", "uid": "pod-uid", "resourceVersion": "42"},
                "reason": "FailedMount",
                "message": MOUNT_FAILED,
                "type": "Warning",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2024-05-01T10:00:16Z",
                "lastTimestamp": "2024-05-01T10:00:16Z",
                "count": 1,
                "reportingComponent": "kubelet",
                "reportingInstance": "node-1",
            })
        );
        assert!(e.get("eventTime").is_none());
    }

    #[test]
    fn cluster_scoped_objects_report_into_default() {
        // A Node read without apiVersion, without resourceVersion: the reference says v1 and
        // carries no empty fields.
        let node = json!({"kind": "Node", "metadata": {"name": "node-1", "uid": "node-uid"}});
        let e = new_event(&node, NORMAL, "Starting", "Starting kubelet.", "kubelet", "node-1", "2024-05-01T10:00:00Z", 255);
        assert_eq!(e["metadata"], json!({"name": "node-1.ff", "namespace": "default"}));
        assert_eq!(e["involvedObject"], json!({"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "node-uid"}));
        // A reporter without a host keeps `source` free of an empty host.
        let e = new_event(&node, NORMAL, "X", "m", "emu-controller", "", "2024-05-01T10:00:00Z", 1);
        assert_eq!(e["source"], json!({"component": "emu-controller"}));
    }

    #[test]
    fn repeats_count_up_and_keep_identity() {
        let mut e = new_event(&pod(), WARNING, "FailedMount", MOUNT_FAILED, "kubelet", "node-1", "2024-05-01T10:00:16Z", 1);
        let again = new_event(&pod(), WARNING, "FailedMount", MOUNT_FAILED, "kubelet", "node-1", "2024-05-01T10:00:18Z", 2);
        assert!(is_same_event(&e, &again));
        repeat(&mut e, "2024-05-01T10:00:18Z");
        assert_eq!(e["count"], 2);
        assert_eq!(e["lastTimestamp"], "2024-05-01T10:00:18Z");
        assert_eq!(e["firstTimestamp"], "2024-05-01T10:00:16Z");
        assert_eq!(e["metadata"]["name"], "my-nginx-5b56ccd65f-abcde.1");

        let mut singleton = json!({"kind": "Event"});
        repeat(&mut singleton, "2024-05-01T10:00:18Z");
        assert_eq!(singleton["count"], 2);

        let other = new_event(&pod(), WARNING, "FailedMount", "other message", "kubelet", "node-1", "2024-05-01T10:00:18Z", 3);
        assert!(!is_same_event(&e, &other));
    }
}
