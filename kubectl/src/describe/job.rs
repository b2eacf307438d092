//! `kubectl describe job` and `kubectl describe cronjob` (`describeJob`, `describeCronJob`,
//! `describeJobTemplate`, `printActiveJobs`).

use std::fmt::Write;

use super::{annotations_multiline, at, controller_of, int_at, labels_multiline, meta, pod_template, print_bool, selector_string, str_at};
use crate::time::rfc1123z;
use serde_json::Value;

/// `related`: the object's Events and the objects it owns; `now` in unix seconds.
pub(super) fn job(w: &mut String, obj: &Value, _related: &[Value], _now: i64) {
    let spec = &obj["spec"];
    let status = &obj["status"];
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(obj, "namespace"));
    line!(w, 0, "Selector:\t{}\n", selector_string(spec.get("selector")));
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
    if let Some(c) = controller_of(obj) {
        line!(w, 0, "Controlled By:\t{}/{}\n", str_at(c, &["kind"]), str_at(c, &["name"]));
    }
    if let Some(p) = spec.get("parallelism").and_then(Value::as_i64) {
        line!(w, 0, "Parallelism:\t{p}\n");
    }
    match spec.get("completions").and_then(Value::as_i64) {
        Some(c) => line!(w, 0, "Completions:\t{c}\n"),
        None => line!(w, 0, "Completions:\t<unset>\n"),
    }
    let mode = str_at(spec, &["completionMode"]);
    if !mode.is_empty() {
        line!(w, 0, "Completion Mode:\t{mode}\n");
    }
    if let Some(s) = spec.get("suspend").and_then(Value::as_bool) {
        line!(w, 0, "Suspend:\t{s}\n");
    }
    if let Some(b) = spec.get("backoffLimit").and_then(Value::as_i64) {
        line!(w, 0, "Backoff Limit:\t{b}\n");
    }
    if let Some(t) = spec.get("ttlSecondsAfterFinished").and_then(Value::as_i64) {
        line!(w, 0, "TTL Seconds After Finished:\t{t}\n");
    }
    let time = |f: &str| status.get(f).and_then(Value::as_str);
    if let Some(t) = time("startTime") {
        line!(w, 0, "Start Time:\t{}\n", rfc1123z(Some(t)));
    }
    if let Some(t) = time("completionTime") {
        line!(w, 0, "Completed At:\t{}\n", rfc1123z(Some(t)));
    }
    let parsed = |f: &str| time(f).and_then(emu_api::time::parse_rfc3339);
    if let (Some(start), Some(end)) = (parsed("startTime"), parsed("completionTime")) {
        line!(w, 0, "Duration:\t{}\n", crate::time::human_duration(end - start));
    }
    if let Some(d) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        line!(w, 0, "Active Deadline Seconds:\t{d}s\n");
    }
    let count = |f: &str| int_at(status, &[f]);
    match status.get("ready").and_then(Value::as_i64) {
        None => line!(w, 0, "Pods Statuses:\t{} Active / {} Succeeded / {} Failed\n", count("active"), count("succeeded"), count("failed")),
        Some(ready) => line!(
            w,
            0,
            "Pods Statuses:\t{} Active ({ready} Ready) / {} Succeeded / {} Failed\n",
            count("active"),
            count("succeeded"),
            count("failed")
        ),
    }
    if mode == "Indexed" {
        line!(w, 0, "Completed Indexes:\t{}\n", cap_indexes(str_at(status, &["completedIndexes"]), 50));
    }
    pod_template(w, &spec["template"]);
}

/// `capIndexesListOrNone`: `<none>`, or the list cut at the first comma from `soft_limit` on,
/// the comma kept, then `...`.
fn cap_indexes(indexes: &str, soft_limit: usize) -> String {
    if indexes.is_empty() {
        return "<none>".into();
    }
    match indexes.bytes().enumerate().skip(soft_limit).find(|(_, b)| *b == b',') {
        Some((ix, _)) => format!("{}...", &indexes[..=ix]),
        None => indexes.into(),
    }
}

/// `related`: the object's Events and the objects it owns; `now` in unix seconds.
pub(super) fn cron_job(w: &mut String, obj: &Value, _related: &[Value], _now: i64) {
    let spec = &obj["spec"];
    let status = &obj["status"];
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(obj, "namespace"));
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
    line!(w, 0, "Schedule:\t{}\n", str_at(spec, &["schedule"]));
    line!(w, 0, "Concurrency Policy:\t{}\n", str_at(spec, &["concurrencyPolicy"]));
    line!(w, 0, "Suspend:\t{}\n", spec.get("suspend").and_then(Value::as_bool).map_or("<unset>", print_bool));
    let unset_or = |f: &str, suffix: &str| spec.get(f).and_then(Value::as_i64).map_or("<unset>".to_string(), |n| format!("{n}{suffix}"));
    line!(w, 0, "Successful Job History Limit:\t{}\n", unset_or("successfulJobsHistoryLimit", ""));
    line!(w, 0, "Failed Job History Limit:\t{}\n", unset_or("failedJobsHistoryLimit", ""));
    line!(w, 0, "Starting Deadline Seconds:\t{}\n", unset_or("startingDeadlineSeconds", "s"));
    // describeJobTemplate.
    let template = &spec["jobTemplate"]["spec"];
    match template.get("selector").filter(|s| s.is_object()) {
        Some(sel) => line!(w, 0, "Selector:\t{}\n", selector_string(Some(sel))),
        None => line!(w, 0, "Selector:\t<unset>\n"),
    }
    let template_unset_or = |f: &str| template.get(f).and_then(Value::as_i64).map_or("<unset>".to_string(), |n| n.to_string());
    line!(w, 0, "Parallelism:\t{}\n", template_unset_or("parallelism"));
    line!(w, 0, "Completions:\t{}\n", template_unset_or("completions"));
    if let Some(d) = template.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        line!(w, 0, "Active Deadline Seconds:\t{d}s\n");
    }
    pod_template(w, &template["template"]);
    match status.get("lastScheduleTime").and_then(Value::as_str) {
        Some(t) => line!(w, 0, "Last Schedule Time:\t{}\n", rfc1123z(Some(t))),
        None => line!(w, 0, "Last Schedule Time:\t<unset>\n"),
    }
    let active: Vec<&str> = status["active"].as_array().into_iter().flatten().map(|r| str_at(r, &["name"])).collect();
    if active.is_empty() {
        line!(w, 0, "Active Jobs:\t<none>\n");
    } else {
        line!(w, 0, "Active Jobs:\t{}\n", active.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_are_capped() {
        assert_eq!(cap_indexes("", 50), "<none>");
        assert_eq!(cap_indexes("0-3", 50), "0-3");
        assert_eq!(cap_indexes("1,3,5,7,9", 6), "1,3,5,7,...");
        assert_eq!(cap_indexes("1,3,5,7,9", 8), "1,3,5,7,9");
    }
}
