//! DaemonSet defaults (`SetDefaults_DaemonSet`, pkg/apis/apps/v1/defaults.go).

use crate::typed::{DaemonSet, IntOrString};

/// RollingUpdate with maxUnavailable 1 and maxSurge 0, ten revisions of history, and the
/// template's pod defaults.
pub fn daemon_set(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_default();
    let strategy = spec.update_strategy.get_or_insert_default();
    if strategy.type_.get_or_insert_with(|| "RollingUpdate".into()) == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_default();
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    super::pod_spec(spec.template.spec.get_or_insert_default());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn rolling_update_one_at_a_time_and_ten_revisions() {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}]}}}});
        super::super::apply_defaults(&mut v);
        let spec = &v["spec"];
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        let mut v = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"spec": {"containers": []}}}});
        super::super::apply_defaults(&mut v);
        assert_eq!(v["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }
}
