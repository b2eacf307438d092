//! `kubectl describe daemonset` (`DaemonSetDescriber`, `describeDaemonSet`).

use std::fmt::Write;

use super::{annotations_multiline, at, format_labels, int_at, labels_multiline, meta, pod_template, selector_string};
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
    super::controlled_pods_status(w, obj, related);
    pod_template(w, &spec["template"]);
}
