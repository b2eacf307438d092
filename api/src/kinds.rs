//! The resource kinds emu serves, with the names kubectl accepts for them.

/// One API resource: its Kind, the names kubectl accepts on the command line, and its API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKind {
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    /// "" for the core group, else e.g. "apps" or "discovery.k8s.io".
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
}

impl ResourceKind {
    /// `v1`, `apps/v1`: the object's `apiVersion` field.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// What kubectl prints in result lines: `pod`, `deployment.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// What the API server uses in NotFound/AlreadyExists messages: `pods`, `deployments.apps`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn answers_to(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.plural)
            || name.eq_ignore_ascii_case(self.singular)
            || name.eq_ignore_ascii_case(self.kind)
            || self.short_names.iter().any(|s| name.eq_ignore_ascii_case(s))
    }
}

/// A `v1` resource of API group `group` ("" for the core group).
const fn v1(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
) -> ResourceKind {
    ResourceKind { kind, plural, singular, short_names, group, version: "v1", namespaced }
}

#[rustfmt::skip] // a table, one resource a line
pub const KINDS: &[ResourceKind] = &[
    v1("", "Pod", "pods", "pod", &["po"], true),
    v1("", "Node", "nodes", "node", &["no"], false),
    v1("", "Namespace", "namespaces", "namespace", &["ns"], false),
    v1("apps", "Deployment", "deployments", "deployment", &["deploy"], true),
    v1("apps", "ReplicaSet", "replicasets", "replicaset", &["rs"], true),
    v1("apps", "DaemonSet", "daemonsets", "daemonset", &["ds"], true),
    v1("apps", "StatefulSet", "statefulsets", "statefulset", &["sts"], true),
    // The revisions of DaemonSets' and StatefulSets' pod templates (`rollout history`/`undo`).
    v1("apps", "ControllerRevision", "controllerrevisions", "controllerrevision", &[], true),
    v1("batch", "Job", "jobs", "job", &[], true),
    v1("batch", "CronJob", "cronjobs", "cronjob", &["cj"], true),
    v1("", "Service", "services", "service", &["svc"], true),
    v1("", "Endpoints", "endpoints", "endpoints", &["ep"], true),
    v1("discovery.k8s.io", "EndpointSlice", "endpointslices", "endpointslice", &[], true),
    v1("networking.k8s.io", "Ingress", "ingresses", "ingress", &["ing"], true),
    v1("networking.k8s.io", "IngressClass", "ingressclasses", "ingressclass", &[], false),
    v1("", "ConfigMap", "configmaps", "configmap", &["cm"], true),
    v1("", "Secret", "secrets", "secret", &[], true),
    v1("", "Event", "events", "event", &["ev"], true),
    v1("", "ServiceAccount", "serviceaccounts", "serviceaccount", &["sa"], true),
    // The Gateway API (served built in; Kubernetes serves them from the CRDs users install).
    v1("gateway.networking.k8s.io", "GatewayClass", "gatewayclasses", "gatewayclass", &["gc"], false),
    v1("gateway.networking.k8s.io", "Gateway", "gateways", "gateway", &["gtw"], true),
    v1("gateway.networking.k8s.io", "HTTPRoute", "httproutes", "httproute", &[], true),
    v1("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", "clusterrole", &[], false),
    v1("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", &[], false),
    v1("rbac.authorization.k8s.io", "Role", "roles", "role", &[], true),
    v1("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", "rolebinding", &[], true),
    // emu's own: a network fault in force (`emu fault`), applied by the node agents.
    v1("emu.dev", "Fault", "faults", "fault", &[], false),
];

/// Resolves a kubectl resource argument: plural, singular, short name or Kind, in any case,
/// optionally qualified by group (`deployments.apps`) or version and group (`deployments.v1.apps`).
pub fn lookup(name: &str) -> Option<&'static ResourceKind> {
    if let Some(k) = KINDS.iter().find(|k| k.answers_to(name)) {
        return Some(k);
    }
    let (resource, qualifier) = name.split_once('.')?;
    KINDS.iter().find(|k| {
        !k.group.is_empty() && k.answers_to(resource) && (qualifier == k.group || qualifier == format!("{}.{}", k.version, k.group))
    })
}

/// Exact Kind match (`Deployment`), as found in a manifest's `kind` field.
pub fn by_kind(kind: &str) -> Option<&'static ResourceKind> {
    KINDS.iter().find(|k| k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        for (arg, kind) in [
            ("po", "Pod"),
            ("pod", "Pod"),
            ("pods", "Pod"),
            ("Pod", "Pod"),
            ("deploy", "Deployment"),
            ("deployment", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("deployment.v1.apps", "Deployment"),
            ("rs", "ReplicaSet"),
            ("no", "Node"),
            ("node", "Node"),
            ("ns", "Namespace"),
            ("svc", "Service"),
            ("ep", "Endpoints"),
            ("endpoints", "Endpoints"),
            ("endpointslices", "EndpointSlice"),
            ("endpointslices.discovery.k8s.io", "EndpointSlice"),
            ("cm", "ConfigMap"),
            ("secret", "Secret"),
            ("ev", "Event"),
            ("sa", "ServiceAccount"),
            ("serviceaccounts", "ServiceAccount"),
            ("clusterroles", "ClusterRole"),
            ("role", "Role"),
            ("rolebindings.rbac.authorization.k8s.io", "RoleBinding"),
            ("ClusterRoleBinding", "ClusterRoleBinding"),
            ("ing", "Ingress"),
            ("ingresses.networking.k8s.io", "Ingress"),
            ("ingressclass", "IngressClass"),
            ("gtw", "Gateway"),
            ("gateways.gateway.networking.k8s.io", "Gateway"),
            ("gc", "GatewayClass"),
            ("httproute", "HTTPRoute"),
        ] {
            assert_eq!(lookup(arg).map(|k| k.kind), Some(kind), "{arg}");
        }
        assert!(lookup("pods.apps").is_none());
        assert!(lookup("widgets").is_none());
    }

    #[test]
    fn printed_names() {
        let d = by_kind("Deployment").unwrap();
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.qualified(), "deployment.apps");
        assert_eq!(d.qualified_plural(), "deployments.apps");
        let p = by_kind("Pod").unwrap();
        assert_eq!((p.api_version().as_str(), p.qualified().as_str()), ("v1", "pod"));
        assert_eq!(by_kind("EndpointSlice").unwrap().qualified(), "endpointslice.discovery.k8s.io");
        assert!(by_kind("deployment").is_none());
        assert!(!by_kind("Node").unwrap().namespaced);
        let rb = by_kind("RoleBinding").unwrap();
        assert_eq!(
            (rb.api_version().as_str(), rb.qualified_plural().as_str()),
            ("rbac.authorization.k8s.io/v1", "rolebindings.rbac.authorization.k8s.io")
        );
        assert!(!by_kind("ClusterRole").unwrap().namespaced);
    }
}
