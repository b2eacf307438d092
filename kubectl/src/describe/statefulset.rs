//! `kubectl describe` of a statefulset (to come: issue 20, item 2).

use serde_json::Value;

/// `related`: the object's Events and the objects it owns; `now` in unix seconds.
pub(super) fn stateful_set(w: &mut String, obj: &Value, _related: &[Value], _now: i64) {
    super::generic(w, obj);
}
