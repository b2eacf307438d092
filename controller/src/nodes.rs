//! Node registration, pod CIDRs and liveness.

use crate::decoded::{Decoded, Obj};
use crate::state::Shared;
use crate::store::{ObjectKey, StoreError};
use emu_api::object;
use emu_api::time::now;
use emu_api::typed::{self, Node, Pod};
use emu_logic::ipam;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// Nodes and pods are read typed; what this module writes (conditions, taints) is set on the
// stored JSON, which keeps everything else of the object as it was.

/// The taint a node gets when its heartbeats stop (status Unknown), as the node lifecycle
/// controller sets it; pods tolerate it for their `tolerationSeconds`, then are evicted.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Creates or refreshes a Node. A node keeps its pod CIDR across agent restarts; a new node takes
/// the CIDR of its index in the cluster configuration (node i, counted from 0 → 10.244.i.0/24).
pub fn register(shared: &Shared, mut node: Value) -> Result<Value, StoreError> {
    let name = object::name(&node).to_string();
    let key = ObjectKey { kind: "Node".into(), namespace: String::new(), name: name.clone() };
    let kept_cidr = shared.store.get_shared(&key).and_then(|n| typed::decode::<Node>(&n).ok()).and_then(|n| n.spec?.pod_cidr);
    let cidr = match kept_cidr {
        Some(cidr) => cidr,
        None => {
            let index = shared
                .cluster
                .node(&name)
                .map(|n| n.index)
                .ok_or_else(|| StoreError::Invalid(format!("node {name:?} is not part of cluster {:?}", shared.cluster.name)))?;
            let cluster_cidr: ipam::Ipv4Cidr =
                shared.cluster.pod_cidr.parse().map_err(|e| StoreError::Invalid(format!("cluster pod CIDR: {e}")))?;
            ipam::node_pod_cidr(cluster_cidr, index, shared.cluster.node_prefix)
                .ok_or_else(|| StoreError::Invalid(format!("pod CIDR {} has no room for node {index}", shared.cluster.pod_cidr)))?
                .to_string()
        }
    };
    let spec = object::object_mut(&mut node, "spec");
    spec.insert("podCIDR".into(), json!(cidr));
    spec.insert("podCIDRs".into(), json!([cidr]));
    set_ready(&mut node, true, "KubeletReady", "kubelet is posting ready status");
    shared.heartbeats.lock().map_err(|_| StoreError::Db("heartbeat lock poisoned".into()))?.insert(name, Instant::now());
    match shared.store.get(&key) {
        None => shared.store.create(node),
        Some(existing) => {
            let mut merged = existing;
            merged["metadata"]["labels"] = node["metadata"]["labels"].clone();
            // The agent's own annotations (where it serves: emu_proto::AGENT_ENDPOINT_ANNOTATION).
            if let Some(theirs) = node["metadata"]["annotations"].as_object() {
                for (k, v) in theirs {
                    merged["metadata"]["annotations"][k] = v.clone();
                }
            }
            merged["spec"] = node["spec"].clone();
            merged["status"] = node["status"].clone();
            if let Some(m) = merged["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            shared.store.update(merged)
        }
    }
}

pub fn heartbeat(shared: &Shared, name: &str) -> Result<(), StoreError> {
    let key = ObjectKey { kind: "Node".into(), namespace: String::new(), name: name.into() };
    let node = shared.store.get(&key).ok_or_else(|| StoreError::NotFound { kind_plural_group: "nodes".into(), name: name.into() })?;
    shared.heartbeats.lock().map_err(|_| StoreError::Db("heartbeat lock poisoned".into()))?.insert(name.into(), Instant::now());
    // A node that does not decode counts as not ready: the write below puts its condition back.
    if !typed::decode::<Node>(&node).is_ok_and(|n| is_ready(&n)) {
        let mut node = node;
        set_ready(&mut node, true, "KubeletReady", "kubelet is posting ready status");
        set_unreachable_taint(&mut node, false);
        shared.store.update(node)?;
        shared.changed();
    }
    Ok(())
}

/// Marks nodes whose heartbeats stopped as NotReady (status Unknown, as the node controller does).
pub fn check_liveness(shared: &Shared, decoded: &mut Decoded<Node>) {
    let nodes = decoded.list(&shared.store, "Node", None);
    let Ok(beats) = shared.heartbeats.lock().map(|b| b.clone()) else { return };
    for node in nodes {
        let name = typed::key(&node.metadata).1.to_string();
        let last = beats.get(&name).copied();
        let stale = last.is_none_or(|t| t.elapsed() > Duration::from_secs(shared.cluster.node_grace_seconds));
        if stale && is_ready(&node) {
            if last.is_none() {
                // Controller restarted: give the node a full grace period from now.
                if let Ok(mut b) = shared.heartbeats.lock() {
                    b.insert(name, Instant::now());
                }
                continue;
            }
            let mut node = (*node.json).clone();
            set_ready(&mut node, false, "NodeStatusUnknown", "Kubelet stopped posting node status.");
            set_unreachable_taint(&mut node, true);
            let _ = shared.store.update(node);
        }
    }
}

/// Adds or removes the NoExecute taint of an unreachable node.
fn set_unreachable_taint(node: &mut Value, on: bool) {
    let spec = object::object_mut(node, "spec");
    let mut taints: Vec<Value> = spec.get("taints").and_then(Value::as_array).cloned().unwrap_or_default();
    taints.retain(|t| t["key"] != UNREACHABLE_TAINT);
    if on {
        taints.push(json!({"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": object::rfc3339(now())}));
    }
    if taints.is_empty() {
        spec.remove("taints");
    } else {
        spec.insert("taints".into(), json!(taints));
    }
}

/// When a node's pods go: the taint's time plus how long the pod tolerates it.
fn evict_at(node: &Node, pod: &Pod, override_seconds: Option<u64>) -> Option<i64> {
    let taints = node.spec.as_ref()?.taints.as_deref()?;
    let added = taints.iter().find(|t| t.key == UNREACHABLE_TAINT)?.time_added.as_ref()?.0.as_second();
    let tolerated = override_seconds.map(|s| s as i64).or_else(|| {
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
        tolerations.iter().find_map(|t| {
            let matches = t.key.as_deref().is_none_or(|k| k == UNREACHABLE_TAINT) && t.effect.as_deref().is_none_or(|e| e == "NoExecute");
            // A toleration without tolerationSeconds tolerates forever.
            matches.then(|| t.toleration_seconds.unwrap_or(i64::MAX / 2))
        })
    });
    // No toleration: evicted at once.
    Some(added.saturating_add(tolerated.unwrap_or(0)))
}

/// What the node lifecycle controller does for pods on NotReady nodes: their Ready condition
/// turns False at once (so endpoints drop them), and once their toleration of the unreachable
/// taint runs out they are deleted: gracefully, so they stay Terminating until the node comes
/// back and stops them, while their ReplicaSets replace them at once.
pub fn handle_unreachable_pods(shared: &Shared, nodes: &mut Decoded<Node>, pods: &mut Decoded<Pod>, delete: impl Fn(&Obj<Pod>)) {
    let nodes = nodes.list(&shared.store, "Node", None);
    let unready: Vec<&Obj<Node>> = nodes.iter().filter(|n| !is_ready(n)).collect();
    if unready.is_empty() {
        return;
    }
    let pods = pods.list(&shared.store, "Pod", None);
    let now = now();
    for node in unready {
        let node_name = typed::key(&node.metadata).1;
        let on_node = |p: &&Obj<Pod>| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name) && p.metadata.deletion_timestamp.is_none()
        };
        for pod in pods.iter().filter(on_node) {
            if evict_at(node, pod, shared.cluster.eviction_seconds).is_some_and(|at| now >= at) {
                let (ns, name) = typed::key(&pod.metadata);
                tracing::info!(pod = %format!("{ns}/{name}"), node = %node_name, "evicting a pod of an unreachable node");
                delete(pod);
                continue;
            }
            if let Some(unready_pod) = mark_not_ready(pod) {
                let _ = shared.store.update(unready_pod);
            }
        }
    }
}

/// The pod with its Ready condition False, or None when it already is.
fn mark_not_ready(pod: &Obj<Pod>) -> Option<Value> {
    let conditions = pod.status.as_ref()?.conditions.as_deref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    if ready.status != "True" {
        return None;
    }
    let mut p = (*pod.json).clone();
    for c in p["status"]["conditions"].as_array_mut()?.iter_mut() {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            c["status"] = json!("False");
            c["lastTransitionTime"] = json!(object::rfc3339(now()));
        }
    }
    if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
        for c in cs {
            c["ready"] = json!(false);
        }
    }
    if let Some(m) = p["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    Some(p)
}

pub fn is_ready(node: &Node) -> bool {
    node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn set_ready(node: &mut Value, ready: bool, reason: &str, message: &str) {
    let ts = object::rfc3339(now());
    let status = if ready { "True" } else { "Unknown" };
    let status_map = object::object_mut(node, "status");
    let conds = status_map.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("array");
    list.retain(|c| c["type"] != "Ready");
    list.push(json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": ts, "lastTransitionTime": ts}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(taints: Value) -> Node {
        typed::decode(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"taints": taints}})).unwrap()
    }

    fn pod(tolerations: Value) -> Pod {
        typed::decode(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"tolerations": tolerations}})).unwrap()
    }

    #[test]
    fn eviction_waits_for_the_toleration_of_the_unreachable_taint() {
        let added = "2026-12-01T10:00:00Z";
        let at = object::parse_rfc3339(added).unwrap();
        let tainted = node(json!([{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": added}]));
        let tolerating = |t: Value| evict_at(&tainted, &pod(json!([t])), None);
        // The default toleration of every pod (300 s), one of any key, one without an end.
        assert_eq!(
            tolerating(json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})),
            Some(at + 300)
        );
        assert_eq!(tolerating(json!({"operator": "Exists", "tolerationSeconds": 5})), Some(at + 5));
        assert_eq!(tolerating(json!({"key": UNREACHABLE_TAINT, "operator": "Exists"})), Some(at + i64::MAX / 2));
        // Another key or effect does not tolerate it: evicted at once.
        assert_eq!(tolerating(json!({"key": "other", "operator": "Exists", "tolerationSeconds": 300})), Some(at));
        assert_eq!(tolerating(json!({"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "tolerationSeconds": 300})), Some(at));
        // A scenario's evictAfter wins; an untainted node evicts nothing.
        assert_eq!(evict_at(&tainted, &pod(json!([])), Some(7)), Some(at + 7));
        assert_eq!(evict_at(&node(json!([])), &pod(json!([])), None), None);
    }
}
