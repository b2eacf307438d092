//! StatefulSet defaults (`SetDefaults_StatefulSet`, pkg/apis/apps/v1/defaults.go).

use crate::typed::StatefulSet;

/// `podManagementPolicy: OrderedReady`; an unset update strategy becomes `RollingUpdate` with
/// `partition: 0` (a `type: RollingUpdate` given without `rollingUpdate` stays without, as in
/// Kubernetes); both PVC retention policies `Retain`; `replicas: 1`; `revisionHistoryLimit: 10`.
pub fn stateful_set(sts: &mut StatefulSet) {
    let spec = sts.spec.get_or_insert_default();
    // `len(x) == 0` in Go: an empty string is defaulted as an absent one.
    fn or_default(field: &mut Option<String>, value: &str) {
        if field.as_deref().unwrap_or_default().is_empty() {
            *field = Some(value.into());
        }
    }
    or_default(&mut spec.pod_management_policy, "OrderedReady");
    let strategy = spec.update_strategy.get_or_insert_default();
    if strategy.type_.as_deref().unwrap_or_default().is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
        strategy.rolling_update.get_or_insert_default();
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        if let Some(rolling) = strategy.rolling_update.as_mut() {
            rolling.partition.get_or_insert(0);
        }
    }
    // kube-apiserver drops `maxUnavailable` while its gate (alpha in 1.33) is off
    // (`dropStatefulSetDisabledFields`); emu, serving 1.33, does the same here.
    if let Some(rolling) = strategy.rolling_update.as_mut() {
        rolling.max_unavailable = None;
    }
    let retention = spec.persistent_volume_claim_retention_policy.get_or_insert_default();
    or_default(&mut retention.when_deleted, "Retain");
    or_default(&mut retention.when_scaled, "Retain");
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    super::pod_spec(spec.template.spec.get_or_insert_default());
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    fn defaulted(v: Value) -> Value {
        let mut v = v;
        crate::defaults::apply_defaults(&mut v);
        v
    }

    #[test]
    fn set_defaults_stateful_set() {
        let sts = defaulted(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "nginx"}}, "serviceName": "nginx",
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}));
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["persistentVolumeClaimRetentionPolicy"], json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");

        let explicit = defaulted(json!({"kind": "StatefulSet", "spec": {"updateStrategy": {"type": "RollingUpdate"}}}));
        assert_eq!(explicit["spec"]["updateStrategy"], json!({"type": "RollingUpdate"}));
        let empty = defaulted(json!({"kind": "StatefulSet", "spec": {"podManagementPolicy": ""}}));
        assert_eq!(empty["spec"]["podManagementPolicy"], "OrderedReady");
        let on_delete = defaulted(json!({"kind": "StatefulSet", "spec": {"updateStrategy": {"type": "OnDelete"}}}));
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        let partitioned =
            defaulted(json!({"kind": "StatefulSet", "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {}}}}));
        assert_eq!(partitioned["spec"]["updateStrategy"]["rollingUpdate"], json!({"partition": 0}));
        let max = defaulted(json!({"kind": "StatefulSet", "spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}));
        assert_eq!(max["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    }
}
