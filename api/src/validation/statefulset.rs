//! StatefulSet validation (`ValidateStatefulSet`, `ValidateStatefulSetUpdate`,
//! pkg/apis/apps/validation), with Kubernetes' messages.

use super::{or_default, FieldErrorKind, Invalid, V};
use crate::syntax::dns1123_label_errors;
use crate::typed::{LabelSelector, StatefulSet, StatefulSetSpec};

/// `selector`: the spec's selector when the client gave one ([`super::Undecoded`]).
pub(super) fn stateful_set(v: &mut V, sts: &StatefulSet, selector: Option<&LabelSelector>) {
    spec(v, &or_default(&sts.spec), selector);
}

/// `ValidateStatefulSetSpec`, in its order.
fn spec(v: &mut V, spec: &StatefulSetSpec, selector: Option<&LabelSelector>) {
    match spec.pod_management_policy.as_deref().unwrap_or_default() {
        "" => v.required("spec.podManagementPolicy", ""),
        "OrderedReady" | "Parallel" => {}
        other => v.invalid("spec.podManagementPolicy", super::go_quote(other), "must be 'OrderedReady' or 'Parallel'"),
    }
    let strategy = or_default(&spec.update_strategy);
    let rolling = strategy.rolling_update.as_ref();
    // Go's %#v of the internal types the errors name.
    let go_rolling = |r: &crate::typed::k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy| {
        let max = r.max_unavailable.as_ref().map_or("(*intstr.IntOrString)(nil)".to_string(), super::go_int_or_string);
        format!("apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{max}}}", r.partition.unwrap_or(0))
    };
    match strategy.type_.as_deref().unwrap_or_default() {
        "" => v.required("spec.updateStrategy", ""),
        "OnDelete" => {
            if let Some(r) = rolling {
                v.invalid("spec.updateStrategy.rollingUpdate", go_rolling(r), "only allowed for updateStrategy 'RollingUpdate'");
            }
        }
        "RollingUpdate" => {
            if let Some(p) = rolling.and_then(|r| r.partition).filter(|&p| p < 0) {
                v.invalid("spec.updateStrategy.rollingUpdate.partition", p.to_string(), "must be greater than or equal to 0");
            }
        }
        other => {
            let r = rolling.map_or("(*apps.RollingUpdateStatefulSetStrategy)(nil)".to_string(), |r| format!("&{}", go_rolling(r)));
            let value = format!("apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{r}}}", super::go_quote(other));
            v.invalid("spec.updateStrategy", value, "must be 'RollingUpdate' or 'OnDelete'");
        }
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        for (field, value) in [("whenDeleted", &policy.when_deleted), ("whenScaled", &policy.when_scaled)] {
            let at = format!("spec.persistentVolumeClaimRetentionPolicy.{field}");
            match value.as_deref().unwrap_or_default() {
                "Retain" | "Delete" => {}
                other => v.unsupported(at, other, &["Retain", "Delete"]),
            }
        }
    }
    if let Some(start) = spec.ordinals.as_ref().and_then(|o| o.start).filter(|&s| s < 0) {
        v.invalid("spec.ordinals.start", start.to_string(), "must be greater than or equal to 0");
    }
    v.nonnegative(spec.replicas, "spec.replicas");
    v.nonnegative(spec.min_ready_seconds, "spec.minReadySeconds");
    // Since Kubernetes 1.33: it becomes each pod's `spec.subdomain`, a DNS-1123 label.
    if let Some(name) = spec.service_name.as_deref().filter(|n| !n.is_empty()) {
        v.each_msg("spec.serviceName", name, dns1123_label_errors(name));
    }
    // The selector and template checks Deployments and ReplicaSets share, in StatefulSet's words.
    let from = v.errs.len();
    v.workload(selector, &spec.template);
    for e in &mut v.errs[from..] {
        e.detail = e
            .detail
            .replace("empty selector is invalid for deployment", "empty selector is invalid for statefulset")
            .replace("activeDeadlineSeconds in ReplicaSet", "activeDeadlineSeconds in StatefulSet");
    }
    // emu has no PersistentVolumeClaims to bind a claim template to: refused at admission rather
    // than accepted and left with pods that never start.
    if spec.volume_claim_templates.as_ref().is_some_and(|t| !t.is_empty()) {
        v.not_in_emu(
            "spec.volumeClaimTemplates".into(),
            "PersistentVolumeClaims: remove spec.volumeClaimTemplates and give the pod template an emptyDir volume \
             of the same name (its data lives as long as the pod)",
        );
    }
}

/// `ValidateStatefulSetUpdate`: the new spec is valid, and only `replicas`, `ordinals`,
/// `template`, `updateStrategy`, `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy`
/// and `minReadySeconds` changed (Kubernetes 1.32's message).
pub(super) fn stateful_set_update(old: &StatefulSet, new: &StatefulSet) -> Result<(), Invalid> {
    let mut v = V::default();
    let name = new.metadata.name.as_deref().unwrap_or_default();
    let (old_spec, new_spec) = (or_default(&old.spec), or_default(&new.spec));
    let mut kept = new_spec.clone().into_owned();
    kept.replicas = old_spec.replicas;
    kept.ordinals = old_spec.ordinals.clone();
    kept.template = old_spec.template.clone();
    kept.update_strategy = old_spec.update_strategy.clone();
    kept.revision_history_limit = old_spec.revision_history_limit;
    kept.persistent_volume_claim_retention_policy = old_spec.persistent_volume_claim_retention_policy.clone();
    kept.min_ready_seconds = old_spec.min_ready_seconds;
    if kept != *old_spec {
        v.push(
            "spec",
            FieldErrorKind::Forbidden,
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', \
             'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
    }
    v.finish("StatefulSet", name)
}

#[cfg(test)]
mod tests {
    use crate::typed::Object;
    use serde_json::{json, Value};

    fn sts(spec: Value) -> Value {
        let mut base = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "nginx"}}, "serviceName": "nginx",
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        crate::defaults::apply_defaults(&mut base);
        base
    }

    fn check(v: &Value) -> Result<(), String> {
        let o = Object::decode("StatefulSet", v).unwrap();
        crate::validation::validate(&o, crate::validation::Undecoded::of(v)).map_err(|e| e.to_string())
    }

    fn update(old: &Value, new: &Value) -> Result<(), String> {
        let o = Object::decode("StatefulSet", new).unwrap();
        crate::validation::validate_update(old, &o).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tutorial_statefulset_is_valid() {
        assert_eq!(check(&sts(json!({"replicas": 3}))), Ok(()));
    }

    #[test]
    fn spec_errors_speak_kubernetes() {
        assert_eq!(
            check(&sts(json!({"podManagementPolicy": "Sometimes"}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'"
        );
        assert_eq!(
            check(&sts(json!({"updateStrategy": {"type": "SmartUpdate"}}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.updateStrategy: Invalid value: \
             apps.StatefulSetUpdateStrategy{Type:\"SmartUpdate\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: \
             must be 'RollingUpdate' or 'OnDelete'"
        );
        assert_eq!(
            check(&sts(json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.updateStrategy.rollingUpdate: Invalid value: \
             apps.RollingUpdateStatefulSetStrategy{Partition:1, MaxUnavailable:(*intstr.IntOrString)(nil)}: \
             only allowed for updateStrategy 'RollingUpdate'"
        );
        assert_eq!(
            check(&sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            check(&sts(json!({"replicas": -1}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            check(&sts(json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": \
             supported values: \"Retain\", \"Delete\""
        );
        assert!(check(&sts(json!({"serviceName": "Nginx_1"}))).unwrap_err().starts_with(
            "The StatefulSet \"web\" is invalid: spec.serviceName: Invalid value: \"Nginx_1\": a lowercase RFC 1123 label must consist of"
        ));
        assert_eq!(
            check(&sts(json!({"selector": {"matchLabels": {"app": "other"}}}))).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: \
             `selector` does not match template `labels`"
        );
        assert!(check(&sts(json!({"selector": {}}))).unwrap_err().contains("empty selector is invalid for statefulset"));
    }

    #[test]
    fn volume_claim_templates_are_refused_with_what_to_do() {
        let claims = json!({"volumeClaimTemplates": [{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
        let e = check(&sts(claims)).unwrap_err();
        assert!(e.starts_with("The StatefulSet \"web\" is invalid: spec.volumeClaimTemplates: Forbidden: emu does not support"), "{e}");
        assert!(e.contains("emptyDir"), "{e}");
    }

    #[test]
    fn updates_change_only_what_kubernetes_allows() {
        let old = sts(json!({"replicas": 3}));
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        new["spec"]["minReadySeconds"] = json!(3);
        assert_eq!(update(&old, &new), Ok(()));
        new["spec"]["serviceName"] = json!("other");
        assert_eq!(
            update(&old, &new).unwrap_err(),
            "The StatefulSet \"web\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', \
             'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
             'minReadySeconds' are forbidden"
        );
        let mut policy = old.clone();
        policy["spec"]["podManagementPolicy"] = json!("Parallel");
        assert!(update(&old, &policy).is_err());
    }

    #[test]
    fn names_are_dns_labels() {
        let mut v = sts(json!({}));
        v["metadata"]["name"] = json!("web.v1");
        assert!(check(&v).unwrap_err().starts_with("The StatefulSet \"web.v1\" is invalid: metadata.name: Invalid value: \"web.v1\""));
    }
}
