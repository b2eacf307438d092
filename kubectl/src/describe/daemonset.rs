//! `kubectl describe daemonset` (`DaemonSetDescriber`, `describeDaemonSet`).

use std::fmt::Write;

use super::{annotations_multiline, at, format_labels, int_at, labels_multiline, meta, pod_template, selector_string, str_at};
use serde_json::Value;

/// `related`: the object's Events and the pods of its namespace; `now` in unix seconds.
pub(super) fn daemon_set(w: &mut String, obj: &Value, related: &[Value], _now: i64) {
    let spec = &obj["spec"];
    let status = &obj["status"];
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(obj, "namespace"));
    line!(w, 0, "Selector:\t{}\n", selector_string(spec.get("selector")));
    line!(w, 0, "Node-Selector:\t{}\n", format_labels(at(spec, &["template", "spec", "nodeSelector"])));
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
    let count = |f: &str| int_at(status, &[f]);
    line!(w, 0, "Desired Number of Nodes Scheduled: {}\n", count("desiredNumberScheduled"));
    line!(w, 0, "Current Number of Nodes Scheduled: {}\n", count("currentNumberScheduled"));
    line!(w, 0, "Number of Nodes Scheduled with Up-to-date Pods: {}\n", count("updatedNumberScheduled"));
    line!(w, 0, "Number of Nodes Scheduled with Available Pods: {}\n", count("numberAvailable"));
    line!(w, 0, "Number of Nodes Misscheduled: {}\n", count("numberMisscheduled"));
    // getPodStatusForController: the pods of its selector that it controls, by phase.
    let uid = meta(obj, "uid");
    let mine = related.iter().filter(|p| {
        str_at(p, &["metadata", "namespace"]) == meta(obj, "namespace")
            && at(p, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|r| r["uid"] == uid && r["controller"] == true))
    });
    let mut phases = [0; 4];
    for p in mine {
        match str_at(p, &["status", "phase"]) {
            "Running" => phases[0] += 1,
            "Pending" => phases[1] += 1,
            "Succeeded" => phases[2] += 1,
            "Failed" => phases[3] += 1,
            _ => {}
        }
    }
    line!(w, 0, "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n", phases[0], phases[1], phases[2], phases[3]);
    pod_template(w, &spec["template"]);
}
