//! DaemonSet validation (`ValidateDaemonSet`, `ValidateDaemonSetUpdate`,
//! pkg/apis/apps/validation), with Kubernetes' messages.

use super::{go_int_or_string, go_label_selector, go_string_map, or_default, FieldErrorKind, Invalid, V};
use crate::selector::Selector;
use crate::typed::{DaemonSet, IntOrString, LabelSelector};
use std::collections::BTreeMap;

const PERCENT: &str =
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// `ValidateDaemonSetSpec`, in its order. `selector`: the spec's selector when the client gave
/// one ([`super::Undecoded`]); without one the selector matches nothing, so the template's labels
/// fail it (kube has no `Required` for a DaemonSet's selector).
pub(super) fn daemon_set(v: &mut V, ds: &DaemonSet, selector: Option<&LabelSelector>) {
    let spec = or_default(&ds.spec);
    let template = &spec.template;
    let meta = or_default(&template.metadata);
    let labels = meta.labels.as_ref();
    if let Some(sel) = selector {
        v.label_map(sel.match_labels.as_ref(), "spec.selector.matchLabels");
        v.label_selector_requirements(sel.match_expressions.as_deref().unwrap_or_default());
    }
    match selector.map(|s| Selector::from_typed(Some(s))) {
        Some(Err(_)) => {}
        Some(Ok(sel)) if sel.matches(labels.unwrap_or(&BTreeMap::new())) => {}
        _ => v.invalid("spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"),
    }
    if let Some(sel) = selector {
        if sel.match_labels.as_ref().map_or(0, BTreeMap::len) + sel.match_expressions.as_ref().map_or(0, Vec::len) == 0 {
            v.invalid("spec.selector", go_label_selector(sel), "empty selector is invalid for daemonset");
        }
    }
    v.label_map(labels, "spec.template.labels");
    v.annotations(meta.annotations.as_ref(), "spec.template.annotations");
    let pod = or_default(&template.spec);
    v.pod_spec(&pod, "spec.template.spec");
    let policy = pod.restart_policy.as_deref().unwrap_or("Always");
    if policy != "Always" {
        v.unsupported("spec.template.spec.restartPolicy", policy, &["Always"]);
    }
    if let Some(s) = pod.active_deadline_seconds {
        v.invalid("spec.template.spec.activeDeadlineSeconds", s.to_string(), "activeDeadlineSeconds in DaemonSet is not Supported");
    }
    v.nonnegative(spec.min_ready_seconds, "spec.minReadySeconds");
    // ValidateDaemonSetUpdateStrategy.
    let strategy = or_default(&spec.update_strategy);
    match strategy.type_.as_deref().unwrap_or_default() {
        "OnDelete" => {}
        "RollingUpdate" => match &strategy.rolling_update {
            None => v.required("spec.updateStrategy.rollingUpdate", ""),
            Some(r) => rolling_update(v, r.max_unavailable.as_ref(), r.max_surge.as_ref()),
        },
        other => {
            let rolling = if strategy.rolling_update.is_some() {
                "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDaemonSet)(nil)"
            };
            let value = format!("apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{rolling}}}");
            let supported = ["RollingUpdate", "OnDelete"];
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            v.push(
                "spec.updateStrategy",
                FieldErrorKind::Unsupported(value, supported.iter().map(|s| s.to_string()).collect()),
                format!("supported values: {}", quoted.join(", ")),
            );
        }
    }
    v.nonnegative(spec.revision_history_limit, "spec.revisionHistoryLimit");
}

/// `ValidateRollingUpdateDaemonSet`: both non-negative ints or percents, neither above 100%, and
/// exactly one of them not 0.
fn rolling_update(v: &mut V, unavailable: Option<&IntOrString>, surge: Option<&IntOrString>) {
    let zero = IntOrString::Int(0);
    let (unavailable, surge) = (unavailable.unwrap_or(&zero), surge.unwrap_or(&zero));
    let base = "spec.updateStrategy.rollingUpdate";
    let value = |x: &IntOrString| match x {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => {
            s.strip_suffix('%').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).and_then(|n| n.parse().ok())
        }
    };
    for (x, field) in [(unavailable, "maxUnavailable"), (surge, "maxSurge")] {
        match x {
            IntOrString::Int(i) if *i < 0 => v.invalid(format!("{base}.{field}"), i.to_string(), "must be greater than or equal to 0"),
            IntOrString::String(_) if value(x).is_none() => v.invalid(format!("{base}.{field}"), go_int_or_string(x), PERCENT),
            _ => {}
        }
    }
    for (x, field) in [(unavailable, "maxUnavailable"), (surge, "maxSurge")] {
        if matches!(x, IntOrString::String(_)) && value(x).is_some_and(|n| n > 100) {
            v.invalid(format!("{base}.{field}"), go_int_or_string(x), "must not be greater than 100%");
        }
    }
    let (has_unavailable, has_surge) = (value(unavailable).unwrap_or(0) != 0, value(surge).unwrap_or(0) != 0);
    if has_unavailable && has_surge {
        v.invalid(format!("{base}.maxSurge"), go_int_or_string(surge), "may not be set when maxUnavailable is non-zero");
    } else if !has_unavailable && !has_surge {
        v.required(format!("{base}.maxUnavailable"), "cannot be 0 when maxSurge is 0");
    }
}

/// `ValidateDaemonSetSpecUpdate`: the selector never changes.
pub(super) fn daemon_set_update(old: &DaemonSet, new: &DaemonSet) -> Result<(), Invalid> {
    let mut v = V::default();
    let (old_sel, new_sel) = (or_default(&old.spec).selector.clone(), or_default(&new.spec).selector.clone());
    if old_sel != new_sel {
        v.invalid("spec.selector", go_label_selector(&new_sel), "field is immutable");
    }
    v.finish("DaemonSet", new.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use crate::typed::{self, Object};
    use crate::validation::{validate, validate_update, Undecoded};
    use serde_json::{json, Value};

    fn ds(spec_patch: Value) -> Value {
        let v = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}]}}}});
        crate::patch::merge_patch(&v, &spec_patch).unwrap()
    }

    fn errors(v: &Value) -> String {
        let mut o = Object::decode("DaemonSet", v).unwrap();
        crate::defaults::object(&mut o);
        validate(&o, Undecoded::of(v)).map_or_else(|e| e.to_string(), |_| String::new())
    }

    #[test]
    fn messages_as_kubernetes_words_them() {
        assert_eq!(errors(&ds(json!({}))), "");
        assert_eq!(
            errors(&ds(json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}))),
            "The DaemonSet \"agent\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(
            errors(&ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}}))),
            "The DaemonSet \"agent\" is invalid: spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        );
        assert_eq!(
            errors(&ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}}}))),
            "The DaemonSet \"agent\" is invalid: spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"10%\"}: may not be set when maxUnavailable is non-zero"
        );
        assert!(errors(&ds(json!({"spec": {"updateStrategy": {"type": "Sometimes"}}})))
            .contains("spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""));
        assert!(errors(&ds(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})))
            .contains("`selector` does not match template `labels`"));
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = ds(json!({}));
        let mut new = ds(json!({"spec": {"selector": {"matchLabels": {"app": "agent", "tier": "x"}}}}));
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let o: Object = Object::decode("DaemonSet", &new).unwrap();
        let e = validate_update(&old, &o).unwrap_err().to_string();
        assert!(e.starts_with("The DaemonSet \"agent\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"tier\":\"x\"}"), "{e}");
        assert!(e.ends_with(": field is immutable"), "{e}");
        let _: typed::DaemonSet = typed::decode(&old).unwrap();
    }
}
