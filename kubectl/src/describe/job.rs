//! `kubectl describe` of a job (to come: issue 20, item 2).

use serde_json::Value;

/// `related`: the object's Events and the objects it owns; `now` in unix seconds.
pub(super) fn job(w: &mut String, obj: &Value, _related: &[Value], _now: i64) {
    super::generic(w, obj);
}

/// `related`: the object's Events and the objects it owns; `now` in unix seconds.
pub(super) fn cron_job(w: &mut String, obj: &Value, _related: &[Value], _now: i64) {
    super::generic(w, obj);
}
