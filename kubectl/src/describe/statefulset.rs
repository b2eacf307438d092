//! `kubectl describe statefulset` (`StatefulSetDescriber`, `describeStatefulSet`).

use std::fmt::Write;

use super::super::time::rfc1123z;
use super::{annotations_multiline, at, int_at, int_or_string, labels_multiline, meta, pod_template, selector_string, str_at};
use serde_json::Value;

/// `related`: the object's Events and the pods of its namespace; `now` in unix seconds.
pub(super) fn stateful_set(w: &mut String, obj: &Value, related: &[Value], _now: i64) {
    let spec = &obj["spec"];
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(obj, "namespace"));
    line!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(at(obj, &["metadata", "creationTimestamp"]).and_then(Value::as_str)));
    line!(w, 0, "Selector:\t{}\n", selector_string(spec.get("selector")));
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
    let replicas = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
    line!(w, 0, "Replicas:\t{replicas} desired | {} total\n", int_at(obj, &["status", "replicas"]));
    line!(w, 0, "Update Strategy:\t{}\n", str_at(spec, &["updateStrategy", "type"]));
    if let Some(partition) = at(spec, &["updateStrategy", "rollingUpdate", "partition"]).and_then(Value::as_i64) {
        line!(w, 1, "Partition:\t{partition}\n");
        if let Some(max) = at(spec, &["updateStrategy", "rollingUpdate", "maxUnavailable"]) {
            line!(w, 1, "MaxUnavailable:\t{}\n", int_or_string(Some(max)));
        }
    }
    super::controlled_pods_status(w, obj, related);
    pod_template(w, &spec["template"]);
    // describeVolumeClaimTemplates: emu refuses claim templates, so there are none to list.
    line!(w, 0, "Volume Claims:\t<none>\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn describe_statefulset_as_kubectl() {
        let sts = json!({"kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default", "uid": "u1",
            "creationTimestamp": "2026-12-07T19:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "serviceName": "nginx",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"name": "web", "containerPort": 80}]}]}}},
            "status": {"replicas": 3}});
        let pod = |phase: &str| {
            json!({"kind": "Pod", "metadata": {"namespace": "default", "ownerReferences": [{"uid": "u1", "controller": true}]},
            "status": {"phase": phase}})
        };
        let text = crate::describe::describe("StatefulSet", &sts, &[pod("Running"), pod("Running"), pod("Pending")], 0);
        assert!(
            text.starts_with(
                "Name:               web\nNamespace:          default\nCreationTimestamp:  Mon, 07 Dec 2026 19:00:00 +0000\n\
                 Selector:           app=nginx\nLabels:             <none>\nAnnotations:        <none>\n\
                 Replicas:           3 desired | 3 total\nUpdate Strategy:    RollingUpdate\n  Partition:        0\n\
                 Pods Status:        2 Running / 1 Waiting / 0 Succeeded / 0 Failed\nPod Template:\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("  Tolerations:     <none>\nVolume Claims:     <none>\nEvents:            <none>\n"), "{text}");
    }
}
