//! Node registration, pod CIDRs and liveness.

use crate::state::{now, Shared};
use crate::store::{ObjectKey, StoreError};
use emu_core::{ipam, object};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a node may go without a heartbeat before it is marked NotReady (Kubernetes: 40 s).
pub const NODE_GRACE: Duration = Duration::from_secs(20);

/// Creates or refreshes a Node. A node keeps its pod CIDR across agent restarts; a new node takes
/// the CIDR of its index in the cluster configuration (node i → 10.244.(i+1).0/24).
pub fn register(shared: &Shared, mut node: Value) -> Result<Value, StoreError> {
    let name = object::name(&node).to_string();
    let key = ObjectKey { kind: "Node".into(), namespace: String::new(), name: name.clone() };
    let cidr = match shared.store.get(&key) {
        Some(existing) if object::str_at(&existing, &["spec", "podCIDR"]).is_some() => {
            object::str_at(&existing, &["spec", "podCIDR"]).unwrap_or_default().to_string()
        }
        _ => {
            let index = shared.cluster.node(&name).map(|n| n.index).ok_or_else(|| StoreError::Invalid(format!("node {name:?} is not part of cluster {:?}", shared.cluster.name)))?;
            let cluster_cidr: ipam::Ipv4Cidr = shared.cluster.pod_cidr.parse().map_err(|e| StoreError::Invalid(format!("cluster pod CIDR: {e}")))?;
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
    if !is_ready(&node) {
        let mut node = node;
        set_ready(&mut node, true, "KubeletReady", "kubelet is posting ready status");
        shared.store.update(node)?;
        shared.changed();
    }
    Ok(())
}

/// Marks nodes whose heartbeats stopped as NotReady (status Unknown, as the node controller does).
pub fn check_liveness(shared: &Shared) {
    let (nodes, _) = shared.store.list_shared("Node", None);
    let Ok(beats) = shared.heartbeats.lock().map(|b| b.clone()) else { return };
    for node in nodes {
        let name = object::name(&node).to_string();
        let last = beats.get(&name).copied();
        let stale = last.is_none_or(|t| t.elapsed() > NODE_GRACE);
        if stale && is_ready(&node) {
            if last.is_none() {
                // Controller restarted: give the node a full grace period from now.
                if let Ok(mut b) = shared.heartbeats.lock() {
                    b.insert(name, Instant::now());
                }
                continue;
            }
            let mut node = (*node).clone();
            set_ready(&mut node, false, "NodeStatusUnknown", "Kubelet stopped posting node status.");
            let _ = shared.store.update(node);
        }
    }
}

pub fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
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
