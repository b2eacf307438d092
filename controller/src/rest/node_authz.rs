//! What a node may do through the API (kube-apiserver's Node authorizer and NodeRestriction
//! admission, as far as emu's kinds go): a client certificate of `system:node:NAME` in group
//! `system:nodes` (`emu kubeconfig --node NAME`, kubelet's kubeconfig) reads nodes, pods,
//! Services and their endpoints; writes events; changes its own Node and the status of the pods
//! bound to it, and deletes those pods; reads only the Secrets, ConfigMaps and ServiceAccounts
//! its pods use (and asks tokens for those accounts); keeps its own Lease. Anything else is left
//! to RBAC, which grants nodes nothing by default, as in Kubernetes.

use super::authz::{forbidden_message, User};
use super::request::RequestInfo;
use super::status::{qualified, ApiError};
use crate::store::Store;
use emu_api::object;
use emu_api::typed::k8s_openapi::api::core::v1::Pod;

/// The user name of a node's identity before the node's name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of every node's identity.
pub const NODES_GROUP: &str = "system:nodes";
/// The namespace of the nodes' Leases.
const NODE_LEASES: &str = "kube-node-lease";

/// The Node authorizer's answer.
#[derive(Debug, PartialEq)]
pub enum NodeDecision {
    Allow,
    Deny(ApiError),
    /// Not the authorizer's to say: RBAC decides.
    NoOpinion,
}

/// The node `user` is, if it is one.
pub fn node_of(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// Whether node `node`'s request `info` is allowed, refused, or RBAC's to decide.
pub fn authorize(node: &str, user: &User, info: &RequestInfo, store: &Store) -> NodeDecision {
    if !info.resource_request {
        return NodeDecision::NoOpinion;
    }
    let verb = info.verb.as_str();
    let read = matches!(verb, "get" | "list" | "watch");
    let write = matches!(verb, "create" | "update" | "patch" | "delete");
    let name = info.name.as_str();
    let bound = || pod_bound_to(store, &info.namespace, name, node);
    // NodeRestriction's refusal, as its admission error reads.
    let restricted = |message: String| {
        let target = if name.is_empty() {
            qualified(&info.group, &info.resource)
        } else {
            format!("{} {name:?}", qualified(&info.group, &info.resource))
        };
        NodeDecision::Deny(ApiError::forbidden(format!("{target} is forbidden: {message}"), &info.group, &info.resource, name))
    };
    let unrelated = || {
        let reason = format!("no relationship found between node '{node}' and this object");
        NodeDecision::Deny(ApiError::forbidden(forbidden_message(user, info, &reason), &info.group, &info.resource, name))
    };
    match (info.group.as_str(), info.resource.as_str(), info.subresource.as_str()) {
        ("", "nodes", "") if read => NodeDecision::Allow,
        ("", "nodes", "" | "status") if write => {
            // A Node a node creates is named in the body, not the path: RBAC's, which refuses.
            if name == node {
                NodeDecision::Allow
            } else if name.is_empty() {
                NodeDecision::NoOpinion
            } else {
                restricted(format!("node {node:?} is not allowed to modify node {name:?}"))
            }
        }
        ("", "pods", "") if read => NodeDecision::Allow,
        ("", "pods", "") if verb == "delete" && !name.is_empty() => {
            if bound() {
                NodeDecision::Allow
            } else {
                restricted(format!("node {node:?} can only delete pods with spec.nodeName set to itself"))
            }
        }
        ("", "pods", "status") if matches!(verb, "update" | "patch") => {
            if bound() {
                NodeDecision::Allow
            } else {
                restricted(format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"))
            }
        }
        ("", "pods", "eviction") if verb == "create" => {
            if bound() {
                NodeDecision::Allow
            } else {
                restricted(format!("node {node:?} can only evict pods with spec.nodeName set to itself"))
            }
        }
        ("", "services" | "endpoints", "") | ("discovery.k8s.io", "endpointslices", "") if read => NodeDecision::Allow,
        ("", "events", "") | ("events.k8s.io", "events", "") if matches!(verb, "create" | "update" | "patch") => NodeDecision::Allow,
        // One object at a time (a list or watch names one with a field selector), as kubelet asks.
        ("", kind @ ("secrets" | "configmaps" | "serviceaccounts"), "") if read => {
            if !name.is_empty() && used_by_pods_of(store, node, &info.namespace, kind, name) {
                NodeDecision::Allow
            } else {
                unrelated()
            }
        }
        ("", "serviceaccounts", "token") if verb == "create" => {
            if used_by_pods_of(store, node, &info.namespace, "serviceaccounts", name) {
                NodeDecision::Allow
            } else {
                unrelated()
            }
        }
        ("coordination.k8s.io", "leases", "") if info.namespace == NODE_LEASES && (read || write) => {
            if name == node || (verb == "create" && name.is_empty()) {
                NodeDecision::Allow
            } else {
                unrelated()
            }
        }
        _ => NodeDecision::NoOpinion,
    }
}

/// Whether pod `namespace/name` is bound to `node`.
fn pod_bound_to(store: &Store, namespace: &str, name: &str, node: &str) -> bool {
    let key = crate::store::ObjectKey { kind: "Pod".into(), namespace: namespace.into(), name: name.into() };
    store.get_shared(&key).is_some_and(|pod| object::str_at(&pod, &["spec", "nodeName"]) == Some(node))
}

/// Whether a pod bound to `node` in `namespace` uses the `resource` (`secrets`, `configmaps`,
/// `serviceaccounts`) named `name`: the Node authorizer's graph, walked when asked (a node asks
/// for one object at a time, when it starts a pod).
fn used_by_pods_of(store: &Store, node: &str, namespace: &str, resource: &str, name: &str) -> bool {
    let (pods, _) = store.list_shared("Pod", Some(namespace));
    pods.iter()
        .filter(|p| object::str_at(p, &["spec", "nodeName"]) == Some(node))
        .filter_map(|p| emu_api::typed::decode::<Pod>(p).ok())
        .any(|pod| match resource {
            "serviceaccounts" => {
                emu_logic::podspec::spec(&pod).service_account_name.as_deref().filter(|n| !n.is_empty()).unwrap_or("default") == name
            }
            "secrets" => emu_logic::podspec::referenced_objects(&pod).contains(&("Secret", name)),
            "configmaps" => emu_logic::podspec::referenced_objects(&pod).contains(&("ConfigMap", name)),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(method: &str, target: &str) -> RequestInfo {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestInfo::parse(method, path, query).unwrap()
    }

    fn node_user(name: &str) -> User {
        User::from_certificate(&format!("{NODE_USER_PREFIX}{name}"), &[NODES_GROUP.into()])
    }

    #[test]
    fn what_a_node_may_do() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let store = &shared.store;
        store
            .create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"nodeName": "node-1", "serviceAccountName": "robot", "containers": [{"name": "c", "image": "nginx",
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}],
                    "volumes": [{"name": "conf", "configMap": {"name": "nginx-conf"}}]}}))
            .unwrap();
        let user = node_user("node-1");
        assert_eq!(node_of(&user), Some("node-1"));
        assert_eq!(node_of(&User::from_certificate("system:node:node-1", &[])), None, "not in system:nodes");
        let ask = |method: &str, target: &str| authorize("node-1", &user, &info(method, target), store);

        for allowed in [
            ("GET", "/api/v1/pods"),
            ("GET", "/api/v1/nodes/node-2"),
            ("PATCH", "/api/v1/nodes/node-1/status"),
            ("PUT", "/api/v1/namespaces/default/pods/web/status"),
            ("DELETE", "/api/v1/namespaces/default/pods/web"),
            ("GET", "/api/v1/namespaces/default/secrets/db"),
            ("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dnginx-conf&watch=1"),
            ("POST", "/api/v1/namespaces/default/serviceaccounts/robot/token"),
            ("POST", "/api/v1/namespaces/default/events"),
            ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1"),
        ] {
            assert_eq!(ask(allowed.0, allowed.1), NodeDecision::Allow, "{allowed:?}");
        }
        let refused = |method: &str, target: &str| match ask(method, target) {
            NodeDecision::Deny(e) => (e.code, e.message),
            other => panic!("{method} {target}: {other:?}"),
        };
        assert_eq!(
            refused("PATCH", "/api/v1/nodes/node-2"),
            (403, "nodes \"node-2\" is forbidden: node \"node-1\" is not allowed to modify node \"node-2\"".to_string())
        );
        store
            .create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other", "namespace": "default"},
                "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "nginx"}]}}))
            .unwrap();
        assert_eq!(
            refused("PATCH", "/api/v1/namespaces/default/pods/other/status").1,
            "pods \"other\" is forbidden: node \"node-1\" can only update pod status for pods with spec.nodeName set to itself"
        );
        assert_eq!(
            refused("GET", "/api/v1/namespaces/default/secrets/admin-token").1,
            "secrets \"admin-token\" is forbidden: User \"system:node:node-1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'node-1' and this object"
        );
        assert!(matches!(ask("GET", "/api/v1/namespaces/default/secrets"), NodeDecision::Deny(_)), "no list of every Secret");
        // What the authorizer does not know of is RBAC's.
        assert_eq!(ask("GET", "/apis/apps/v1/deployments"), NodeDecision::NoOpinion);
        assert_eq!(ask("DELETE", "/api/v1/namespaces/default/services/web"), NodeDecision::NoOpinion);
    }
}
