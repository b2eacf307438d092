//! The roles and bindings every cluster starts with: kube-apiserver's bootstrap policy
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`), the part a user meets. Each carries the
//! label `kubernetes.io/bootstrapping: rbac-defaults` and the annotation
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`, as kube-apiserver writes them.
//!
//! - `cluster-admin` (everything), bound to Group `system:masters` (whom the authorizer allows
//!   before RBAC anyway, as kube-apiserver does);
//! - `system:discovery` and `system:basic-user` bound to `system:authenticated`,
//!   `system:public-info-viewer` to `system:authenticated` and `system:unauthenticated`,
//!   `system:monitoring` to `system:monitoring`, `system:service-account-issuer-discovery` to
//!   `system:serviceaccounts`;
//! - the user-facing roles `admin`, `edit` and `view`, bound to nobody, each an aggregation of
//!   the roles labelled `rbac.authorization.k8s.io/aggregate-to-<role>` (`system:aggregate-to-*`,
//!   and `view` into `edit` into `admin`). kube-controller-manager fills their rules; here they
//!   are computed when created ([`emu_logic::rbac::aggregated_rules`]), so that they grant from the
//!   first request, and kept up to date by [`crate::rbac_aggregation`].
//!
//! Created when missing at the controller's start, not reconciled: a user who changes one keeps
//! the change (kube-apiserver would add back missing rules to a role marked autoupdate).

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_api::typed::{self, ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use emu_logic::rbac::{self, Policy};
use serde_json::{json, Value};

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut all = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    for (k, v) in labels {
        all[*k] = json!(v);
    }
    json!({"name": name, "labels": all, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": metadata(name, labels), "rules": rules})
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// A ClusterRole whose rules are those of the roles labelled `label: "true"`.
fn aggregated(name: &str, labels: &[(&str, &str)], label: &str) -> Value {
    let selector = json!({"matchLabels": {label: "true"}});
    json!({"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": metadata(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [selector]}, "rules": []})
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

/// The default ClusterRoles as kube-apiserver writes them (aggregated ones without rules).
fn written_cluster_roles() -> Vec<Value> {
    vec![
        aggregated("admin", &[], TO_ADMIN),
        cluster_role("cluster-admin", &[], vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                rule(&["rbac.authorization.k8s.io"], &["rolebindings", "roles"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(&[""], &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], READ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(&[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                    WRITE,
                ),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
                rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                    READ,
                ),
                rule(&["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
                rule(&["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"], READ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(&["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"], &["get"])],
        ),
        cluster_role("system:public-info-viewer", &[], vec![urls(&["/healthz", "/livez", "/readyz", "/version", "/version/"], &["get"])]),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(&["/.well-known/openid-configuration", "/openid/v1/jwks"], &["get"])],
        ),
    ]
}

/// The default ClusterRoles, the aggregated ones with the rules of the roles they select (`view`
/// first: it is aggregated into `edit`, and `edit` into `admin`).
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = written_cluster_roles();
    for name in ["view", "edit", "admin"] {
        let all: Vec<ClusterRole> = typed::decode_all(&roles);
        let Some(i) = roles.iter().position(|r| r["metadata"]["name"] == name) else { continue };
        let role: ClusterRole = typed::decode(&roles[i]).expect("the default roles decode");
        if let Some(rules) = rbac::aggregated_rules(&role, &all) {
            roles[i]["rules"] = typed::encode(&rules);
        }
    }
    roles
}

/// The default ClusterRoleBindings: each binds the ClusterRole of its name to groups.
pub fn cluster_role_bindings() -> Vec<Value> {
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> =
            groups.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g})).collect();
        json!({"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": metadata(name, &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:monitoring", &["system:monitoring"]),
        binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
        binding("system:service-account-issuer-discovery", &["system:serviceaccounts"]),
    ]
}

/// Creates the default roles and bindings that do not exist yet.
pub fn ensure(shared: &Shared) {
    for v in cluster_roles().into_iter().chain(cluster_role_bindings()) {
        let Ok(key) = ObjectKey::of(&v) else { continue };
        if shared.store.get(&key).is_none() {
            if let Err(e) = shared.store.create(v) {
                tracing::warn!(error = %e, object = %key.name, kind = %key.kind, "creating the default RBAC policy");
            }
        }
    }
}

/// The default policy alone, as a [`Policy`]: what an API server without a store (a test of the
/// HTTPS endpoint alone) authorizes with.
pub struct Defaults {
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
}

impl Defaults {
    pub fn new() -> Defaults {
        Defaults { roles: typed::decode_all(&cluster_roles()), bindings: typed::decode_all(&cluster_role_bindings()) }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults::new()
    }
}

impl Policy for Defaults {
    fn cluster_role_bindings(&self) -> Vec<ClusterRoleBinding> {
        self.bindings.clone()
    }
    fn role_bindings(&self, _namespace: &str) -> Vec<RoleBinding> {
        Vec::new()
    }
    fn cluster_role(&self, name: &str) -> Option<ClusterRole> {
        self.roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).cloned()
    }
    fn role(&self, _namespace: &str, _name: &str) -> Option<Role> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::validation::{validate, Undecoded};
    use emu_logic::rbac::{Attributes, UserInfo, Verdict};

    #[test]
    fn the_defaults_are_valid_objects() {
        for v in cluster_roles().into_iter().chain(cluster_role_bindings()) {
            let mut v = v;
            emu_api::defaults::apply_defaults(&mut v);
            let object = typed::Object::decode(v["kind"].as_str().unwrap(), &v).unwrap();
            validate(&object, Undecoded::of(&v)).unwrap();
            assert_eq!(v["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
        }
    }

    #[test]
    fn view_edit_and_admin_are_aggregated() {
        let roles: Vec<ClusterRole> = typed::decode_all(&cluster_roles());
        let rules = |name: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap().rules.clone().unwrap();
        let (view, edit, admin) = (rules("view"), rules("edit"), rules("admin"));
        assert_eq!(view, rules("system:aggregate-to-view"));
        assert!(view.iter().all(|r| edit.contains(r)) && edit.iter().all(|r| admin.contains(r)));
        assert_eq!(edit.len(), view.len() + rules("system:aggregate-to-edit").len());
        assert_eq!(admin.len(), edit.len() + rules("system:aggregate-to-admin").len());
    }

    /// A RoleBinding to `view` for a service account, beside the defaults.
    struct WithBinding(Defaults, RoleBinding);

    impl Policy for WithBinding {
        fn cluster_role_bindings(&self) -> Vec<ClusterRoleBinding> {
            self.0.cluster_role_bindings()
        }
        fn role_bindings(&self, namespace: &str) -> Vec<RoleBinding> {
            vec![self.1.clone()].into_iter().filter(|b| b.metadata.namespace.as_deref() == Some(namespace)).collect()
        }
        fn cluster_role(&self, name: &str) -> Option<ClusterRole> {
            self.0.cluster_role(name)
        }
        fn role(&self, _: &str, _: &str) -> Option<Role> {
            None
        }
    }

    #[test]
    fn view_reads_what_a_pod_needs_and_no_secrets() {
        let binding = typed::decode(&json!({"kind": "RoleBinding", "metadata": {"name": "default-view", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}))
        .unwrap();
        let policy = WithBinding(Defaults::new(), binding);
        let groups = ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"].map(String::from);
        let sa = UserInfo { name: "system:serviceaccount:default:default", groups: &groups };
        let ask = |verb, group, resource| Attributes {
            verb,
            resource_request: true,
            group,
            resource,
            namespace: "default",
            ..Default::default()
        };
        for resource in ["pods", "services", "endpoints", "configmaps"] {
            for verb in ["get", "list", "watch"] {
                assert!(matches!(rbac::authorize(&policy, sa, &ask(verb, "", resource)), Verdict::Allowed(_)), "{verb} {resource}");
            }
        }
        assert!(matches!(rbac::authorize(&policy, sa, &ask("list", "discovery.k8s.io", "endpointslices")), Verdict::Allowed(_)));
        assert_eq!(rbac::authorize(&policy, sa, &ask("list", "", "secrets")), Verdict::Denied(String::new()));
        assert_eq!(rbac::authorize(&policy, sa, &ask("delete", "", "pods")), Verdict::Denied(String::new()));
        // The defaults: discovery for the authenticated, the version for everyone.
        let url = |verb, path| Attributes { verb, path, ..Default::default() };
        assert!(matches!(rbac::authorize(&policy, sa, &url("get", "/apis/apps/v1")), Verdict::Allowed(_)));
        let anonymous = ["system:unauthenticated".to_string()];
        let nobody = UserInfo { name: "system:anonymous", groups: &anonymous };
        assert!(matches!(rbac::authorize(&policy, nobody, &url("get", "/version")), Verdict::Allowed(_)));
        assert_eq!(rbac::authorize(&policy, nobody, &url("get", "/api")), Verdict::Denied(String::new()));
    }
}
