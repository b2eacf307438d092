//! Service accounts as the control plane keeps them: kube-controller-manager's serviceaccounts
//! controller (every namespace has ServiceAccount `default`, made with the namespace and put
//! back when deleted), the lookup of kube-apiserver's ServiceAccount admission (a new pod naming
//! an account that does not exist is refused, [`admit_pod`]), and what the ReplicaSet controller
//! does when that refuses its pods (a `FailedCreate` event and a `ReplicaFailure` condition).

use crate::state::Shared;
use crate::store::{Changes, ObjectKey};
use emu_api::object;
use emu_logic::serviceaccount::{self, DEFAULT_ACCOUNT};
use serde_json::{json, Value};
use std::sync::Arc;

fn account_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: "ServiceAccount".into(), namespace: namespace.into(), name: name.into() }
}

/// Makes ServiceAccount `default` in every namespace that lacks it (not in one being deleted).
/// Level-triggered: on a pass in which a namespace or a `default` account changed, and on every
/// full pass.
pub fn sync(shared: &Shared, changes: &Changes) {
    let relevant = match changes {
        Changes::All => true,
        Changes::Some(events) => events.iter().any(|(_, v)| match object::kind(v) {
            "Namespace" => true,
            "ServiceAccount" => object::name(v) == DEFAULT_ACCOUNT,
            _ => false,
        }),
    };
    if !relevant {
        return;
    }
    let (namespaces, _) = shared.store.list_shared("Namespace", None);
    for ns in namespaces.iter().filter(|n| object::at(n, &["metadata", "deletionTimestamp"]).is_none()) {
        let ns = object::name(ns);
        if shared.store.get_shared(&account_key(ns, DEFAULT_ACCOUNT)).is_some() {
            continue;
        }
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_ACCOUNT, "namespace": ns}});
        match shared.store.create(account) {
            Ok(_) => tracing::info!(namespace = ns, "created ServiceAccount default"),
            // The namespace went meanwhile, or someone else made it: the next pass sees.
            Err(e) => tracing::debug!(error = %e, namespace = ns, "creating ServiceAccount default"),
        }
    }
}

/// A service account a request creates itself, which its pods may name.
#[derive(Debug, PartialEq)]
pub struct NewAccount {
    /// A namespaced object without a namespace is in `default`.
    pub namespace: String,
    pub name: String,
    pub account: Arc<Value>,
}

/// The service accounts a request creates itself.
pub fn in_request(objects: &[Value]) -> Vec<NewAccount> {
    objects
        .iter()
        .filter(|v| object::kind(v) == "ServiceAccount")
        .map(|v| {
            let namespace = match object::namespace(v) {
                "" => "default",
                ns => ns,
            };
            NewAccount { namespace: namespace.to_string(), name: object::name(v).to_string(), account: Arc::new(v.clone()) }
        })
        .collect()
}

/// kube-apiserver's ServiceAccount admission for a new (defaulted) pod: the account it names
/// must exist, or be created by the same request (`also_created`); else the 403's message.
pub fn admit_pod(shared: &Shared, pod: &Value, also_created: &[NewAccount]) -> Result<Admitted, String> {
    let namespace = match object::namespace(pod) {
        "" => "default",
        ns => ns,
    };
    let name = pod["spec"]["serviceAccountName"].as_str().filter(|n| !n.is_empty()).unwrap_or(DEFAULT_ACCOUNT);
    // The request's own account is the one the pod will have (an apply replaces a stored one).
    let account = also_created
        .iter()
        .find(|a| a.namespace == namespace && a.name == name)
        .map(|a| a.account.clone())
        .or_else(|| shared.store.get_shared(&account_key(namespace, name)));
    match serviceaccount::account_to_look_up(pod) {
        Some(looked_up) if account.is_none() => Err(serviceaccount::account_not_found(pod, looked_up)),
        _ => Ok(Admitted { account }),
    }
}

/// A pod the ServiceAccount admission let in, with what it found.
#[derive(Debug)]
pub struct Admitted {
    /// The pod's ServiceAccount (its `default` one may not exist yet).
    account: Option<Arc<Value>>,
}

impl Admitted {
    /// Gives `pod` its API-access volume unless it or its account opts out.
    pub fn add_api_access(&self, pod: &mut Value) {
        if serviceaccount::automounts(pod, self.account.as_deref()) {
            serviceaccount::add_api_access(pod, &emu_api::naming::name_suffix(rand::random()));
        }
    }
}

/// A ReplicaSet's `status.conditions` after a pass that failed to create its pods with
/// `failure` (or did not fail), as the ReplicaSet controller's `calculateStatus` keeps them: a
/// `ReplicaFailure` condition (reason `FailedCreate`) appears with the first failure and stays
/// as it is while failures go on, and goes when a pass succeeds. `None`: no conditions.
pub fn replica_failure_conditions(live_status: &Value, failure: Option<&str>, now_rfc3339: &str) -> Option<Value> {
    let existing = live_status["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure"));
    let failure = failure?;
    let condition = existing.cloned().unwrap_or_else(|| {
        json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now_rfc3339, "reason": "FailedCreate", "message": failure})
    });
    Some(json!([condition]))
}

/// A ReplicaSet's `ReplicaFailure` condition as its Deployment shows it
/// (`ReplicaSetToDeploymentCondition`: the same type, status, reason and message, both times the
/// transition's).
pub fn deployment_failure(rs: &Value) -> Option<Value> {
    let c = rs["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "ReplicaFailure")?;
    Some(json!({"type": "ReplicaFailure", "status": c["status"], "reason": c["reason"], "message": c["message"],
        "lastUpdateTime": c["lastTransitionTime"], "lastTransitionTime": c["lastTransitionTime"]}))
}

/// The ReplicaSet controller's Warning event for a pod it could not create (`FailedCreate`,
/// `Error creating: <error>`), recorded when the failure starts: the controller's pass retries
/// every second, and an event written on each would keep waking it.
pub fn record_failed_create(shared: &Shared, rs: &Value, failure: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let event = emu_logic::events::new_event(
        rs,
        emu_logic::events::WARNING,
        "FailedCreate",
        &format!("Error creating: {failure}"),
        "replicaset-controller",
        "",
        &emu_api::time::rfc3339(now.as_secs() as i64),
        now.as_nanos(),
    );
    if let Err(e) = shared.store.create(event) {
        tracing::debug!(error = %e, "recording FailedCreate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_to_create_is_a_condition_until_it_ends() {
        let msg = "pods \"web-1-\" is forbidden: error looking up service account default/foo: serviceaccount \"foo\" not found";
        let first = replica_failure_conditions(&json!({"replicas": 0}), Some(msg), "2024-05-01T10:00:00Z").unwrap();
        assert_eq!(
            first,
            json!([{"type": "ReplicaFailure", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z", "reason": "FailedCreate", "message": msg}])
        );
        // Later passes keep it as it was, time and message; a success removes it.
        let status = json!({"conditions": first});
        assert_eq!(replica_failure_conditions(&status, Some("other"), "2024-05-01T10:05:00Z").unwrap(), status["conditions"]);
        assert_eq!(replica_failure_conditions(&status, None, "2024-05-01T10:05:00Z"), None);
        assert_eq!(
            deployment_failure(&json!({"status": status})).unwrap(),
            json!({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": msg,
                "lastUpdateTime": "2024-05-01T10:00:00Z", "lastTransitionTime": "2024-05-01T10:00:00Z"})
        );
        assert_eq!(deployment_failure(&json!({"status": {"replicas": 1}})), None);
    }

    #[test]
    fn pods_find_their_accounts_in_the_store_or_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let pod = |sa: &str| json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"serviceAccountName": sa}});
        assert_eq!(admit_pod(&shared, &pod("default"), &[]).map(|_| ()), Ok(()));
        assert_eq!(
            admit_pod(&shared, &pod("robot"), &[]).unwrap_err(),
            "pods \"p\" is forbidden: error looking up service account team/robot: serviceaccount \"robot\" not found"
        );
        let request = [json!({"kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "team"}}), json!({"kind": "Pod"})];
        assert_eq!(in_request(&request).iter().map(|a| (a.namespace.as_str(), a.name.as_str())).collect::<Vec<_>>(), [("team", "robot")]);
        assert_eq!(admit_pod(&shared, &pod("robot"), &in_request(&request)).map(|_| ()), Ok(()));
        shared
            .store
            .create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "team"}}))
            .unwrap();
        assert_eq!(admit_pod(&shared, &pod("robot"), &[]).map(|_| ()), Ok(()));
    }

    #[test]
    fn every_namespace_gets_its_default_account_back() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        for ns in ["default", "team"] {
            shared.store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
        }
        sync(&shared, &Changes::All);
        let (accounts, _) = shared.store.list_shared("ServiceAccount", None);
        let names: Vec<(&str, &str)> = accounts.iter().map(|a| (object::namespace(a), object::name(a))).collect();
        assert_eq!(names, [("default", "default"), ("team", "default")]);
        let uid = object::uid(&accounts[1]).to_string();
        shared.store.delete(&account_key("team", "default")).unwrap();
        sync(&shared, &Changes::All);
        let back = shared.store.get_shared(&account_key("team", "default")).unwrap();
        assert_ne!(object::uid(&back), uid);
    }
}
