//! Ingress and IngressClass defaults (`SetDefaults_IngressClass`, pkg/apis/networking/v1/defaults.go)
//! and the `DefaultIngressClass` admission plugin's choice of a class for an Ingress without one
//! (plugin/pkg/admission/network/defaultingressclass). An Ingress has no field defaults.

use crate::typed::{Ingress, IngressClass};

/// The annotation that marks an IngressClass as the cluster's default (its value must be `"true"`).
pub const IS_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation that preceded `spec.ingressClassName` (still read by controllers).
pub const LEGACY_CLASS: &str = "kubernetes.io/ingress.class";

/// A `parameters` reference without a scope refers to a cluster-scoped object.
pub fn ingress_class(ic: &mut IngressClass) {
    if let Some(params) = ic.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
        params.scope.get_or_insert_with(|| "Cluster".into());
    }
}

/// Whether the class is marked as the default.
pub fn is_default_class(ic: &IngressClass) -> bool {
    ic.metadata.annotations.as_ref().and_then(|a| a.get(IS_DEFAULT_CLASS)).is_some_and(|v| v == "true")
}

/// The default class among `classes`: with several marked, the newest (by creation time, then
/// name), as the plugin has chosen since Kubernetes 1.28 (it refused the Ingress before).
pub fn default_class(classes: &[IngressClass]) -> Option<&IngressClass> {
    let created = |ic: &IngressClass| ic.metadata.creation_timestamp.as_ref().map(|t| t.0);
    classes.iter().filter(|ic| is_default_class(ic)).max_by(|a, b| {
        // Newest first; on a tie, the smaller name wins (max_by keeps the last maximum).
        created(a).cmp(&created(b)).then_with(|| b.metadata.name.cmp(&a.metadata.name))
    })
}

/// The admission plugin, on create: an Ingress naming no class (neither the field nor the
/// legacy annotation) gets the default class's name.
pub fn admit_default_class(ing: &mut Ingress, classes: &[IngressClass]) {
    let spec = ing.spec.get_or_insert_default();
    let annotated = ing.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LEGACY_CLASS));
    if spec.ingress_class_name.is_some() || annotated {
        return;
    }
    if let Some(name) = default_class(classes).and_then(|ic| ic.metadata.name.clone()) {
        spec.ingress_class_name = Some(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, default: Option<&str>, created: &str) -> IngressClass {
        let mut v = json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {"controller": "k8s.io/ingress-nginx"}});
        if let Some(d) = default {
            v["metadata"]["annotations"][IS_DEFAULT_CLASS] = json!(d);
        }
        serde_json::from_value(v).unwrap()
    }

    fn ingress(v: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": v})).unwrap()
    }

    #[test]
    fn the_default_class_is_filled_into_an_ingress_without_one() {
        let classes = [class("other", None, "2026-01-01T00:00:00Z"), class("nginx", Some("true"), "2026-01-01T00:00:00Z")];
        let mut ing = ingress(json!({}));
        admit_default_class(&mut ing, &classes);
        assert_eq!(ing.spec.as_ref().unwrap().ingress_class_name.as_deref(), Some("nginx"));
        // A class given, or the legacy annotation, is kept as it is.
        let mut ing = ingress(json!({"ingressClassName": "other"}));
        admit_default_class(&mut ing, &classes);
        assert_eq!(ing.spec.as_ref().unwrap().ingress_class_name.as_deref(), Some("other"));
        let mut ing = ingress(json!({}));
        ing.metadata.annotations = Some([(LEGACY_CLASS.to_string(), "nginx".to_string())].into());
        admit_default_class(&mut ing, &classes);
        assert_eq!(ing.spec.as_ref().unwrap().ingress_class_name, None);
        // Only "true" marks a default.
        let mut ing = ingress(json!({}));
        admit_default_class(&mut ing, &[class("nginx", Some("True"), "2026-01-01T00:00:00Z")]);
        assert_eq!(ing.spec.as_ref().unwrap().ingress_class_name, None);
    }

    #[test]
    fn of_several_defaults_the_newest_wins() {
        let classes = [
            class("old", Some("true"), "2026-01-01T00:00:00Z"),
            class("new-b", Some("true"), "2026-02-01T00:00:00Z"),
            class("new-a", Some("true"), "2026-02-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).unwrap().metadata.name.as_deref(), Some("new-a"));
    }

    #[test]
    fn parameters_default_to_cluster_scope() {
        let mut ic: IngressClass = serde_json::from_value(
            json!({"metadata": {"name": "c"}, "spec": {"controller": "example.com/c", "parameters": {"kind": "Params", "name": "p"}}}),
        )
        .unwrap();
        ingress_class(&mut ic);
        assert_eq!(ic.spec.unwrap().parameters.unwrap().scope.as_deref(), Some("Cluster"));
    }
}
