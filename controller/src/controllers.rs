//! The controllers: level-triggered loops that read the store and converge it.
//!
//! After any write (or once a second) `reconcile_all` recomputes what should exist from what does
//! (the endpoints controller and the garbage collector only for what changed since the last pass,
//! with a pass over everything every [`FULL_PASS_EVERY`]):
//! Deployments own ReplicaSets (named `<deployment>-<pod-template-hash>`), ReplicaSets own Pods
//! (named `<replicaset>-<5 random chars>`), the scheduler binds pending pods to nodes and gives them
//! an IP from the node's pod CIDR, and the garbage collector removes what lost its owner.

use crate::decoded::Decoded;
use crate::state::{now, Shared};
use crate::store::{Change, ObjectKey, WatchEventType};
use emu_api::typed::Pod;
use emu_api::{defaults, naming, object};
use emu_logic::{ipam, scheduler};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the controllers remember from one pass to the next.
struct ControllerState {
    last_ip: HashMap<String, Ipv4Addr>,
    endpoints: crate::endpoints::EndpointsController,
    /// Stored objects decoded into their types, each once until it changes.
    decoded: Caches,
    control_routes: crate::control_routes::ControlRoutes,
    /// The store's version up to which every change has been looked at.
    seen: u64,
    last_full_pass: Option<Instant>,
}

/// The decoded objects the controllers read, kept from pass to pass.
#[derive(Default)]
struct Caches {
    pods: Decoded<Pod>,
}

impl Caches {
    /// Forgets objects the store no longer holds.
    fn sweep(&mut self) {
        self.pods.sweep();
    }
}

/// How often a pass looks at everything, not only at what changed: a safety net for what no
/// change announces (an object created pointing at an owner that was already gone).
const FULL_PASS_EVERY: Duration = Duration::from_secs(10);

/// What a pass looks at.
pub enum Changes {
    /// Everything: the first pass, a periodic one, or when the store's history no longer reaches
    /// back to the last pass.
    All,
    /// The changes since the last pass, oldest first (a deleted object as it last was).
    Some(Vec<Change>),
}

impl Changes {
    /// Whether something may have lost its owner, namespace or node.
    fn may_orphan(&self) -> bool {
        match self {
            Changes::All => true,
            Changes::Some(events) => events.iter().any(|(t, _)| *t == WatchEventType::Deleted),
        }
    }
}

impl ControllerState {
    fn new(shared: &Shared) -> ControllerState {
        ControllerState {
            last_ip: HashMap::new(),
            endpoints: crate::endpoints::EndpointsController::default(),
            decoded: Caches::default(),
            control_routes: crate::control_routes::ControlRoutes::new(shared),
            seen: 0,
            last_full_pass: None,
        }
    }

    /// The changes since the last pass (and marks them seen).
    fn changes(&mut self, shared: &Shared) -> Changes {
        let full_due = self.last_full_pass.is_none_or(|t| t.elapsed() >= FULL_PASS_EVERY);
        if !full_due {
            if let Some((events, rv)) = shared.store.changes_since(self.seen) {
                self.seen = rv;
                return Changes::Some(events);
            }
        }
        // Read before the pass reads anything: what changes meanwhile is seen by the next one.
        self.seen = shared.store.resource_version();
        self.last_full_pass = Some(Instant::now());
        Changes::All
    }
}

pub async fn run(shared: Shared) {
    let mut state = Some(ControllerState::new(&shared));
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Let a burst of writes land before recomputing.
        tokio::time::sleep(Duration::from_millis(2)).await;
        // A pass reads the whole store: off the async workers, so API calls and watch streams
        // are served while it runs.
        let (s, mut st) = (shared.clone(), state.take().expect("state is returned by every pass"));
        state = match tokio::task::spawn_blocking(move || {
            reconcile_all(&s, &mut st);
            st
        })
        .await
        {
            Ok(st) => Some(st),
            Err(e) => {
                tracing::error!(error = %e, "a controller pass panicked; starting over with fresh state");
                Some(ControllerState::new(&shared))
            }
        };
    }
}

fn reconcile_all(shared: &Shared, st: &mut ControllerState) {
    let started = std::time::Instant::now();
    let before = shared.store.resource_version();
    let changes = st.changes(shared);
    crate::nodes::check_liveness(shared);
    crate::nodes::handle_unreachable_pods(shared, |pod| delete_pod(shared, pod));
    if changes.may_orphan() {
        collect_garbage(shared);
    }
    sync_deployments(shared);
    sync_replicasets(shared);
    schedule_pods(shared, &mut st.last_ip);
    st.endpoints.sync(shared, &changes, &mut st.decoded.pods);
    publish_root_ca(shared, &changes);
    st.control_routes.sync(shared);
    st.decoded.sweep();
    if shared.store.resource_version() != before {
        shared.changed();
    }
    // What an endpoint change waits for before its slice is written (EMU_LOG=debug).
    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "controller pass");
}

fn key(kind: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: kind.into(), namespace: ns.into(), name: name.into() }
}

fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!([{ "apiVersion": api_version, "kind": kind, "name": object::name(owner), "uid": object::uid(owner),
             "controller": true, "blockOwnerDeletion": true }])
}

fn update(shared: &Shared, v: Value) {
    if let Err(e) = shared.store.update(v) {
        tracing::debug!(error = %e, "controller update lost a race; next pass retries");
    }
}

fn sync_deployments(shared: &Shared) {
    let (deployments, _) = shared.store.list_shared("Deployment", None);
    let (replicasets, _) = shared.store.list_shared("ReplicaSet", None);
    let (pods, _) = shared.store.list_shared("Pod", None);
    for d in deployments.iter().filter(|d| !object::is_terminating(d)) {
        let ns = object::namespace(d);
        let template = d["spec"]["template"].clone();
        let hash = naming::pod_template_hash(&template, None);
        let rs_name = format!("{}-{hash}", object::name(d));
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let owned: Vec<&Value> = replicasets.iter().map(|v| &**v).filter(|rs| object::controller_uid(rs) == Some(object::uid(d))).collect();
        let current = owned.iter().find(|rs| object::name(rs) == rs_name);
        match current {
            None => {
                let mut labels = template["metadata"]["labels"].clone();
                labels["pod-template-hash"] = json!(hash);
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut rs_template = template.clone();
                rs_template["metadata"]["labels"] = labels.clone();
                let revision = owned.len() + 1;
                let mut rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": { "name": rs_name, "namespace": ns, "labels": labels,
                        "annotations": { "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas + (replicas + 3) / 4).to_string(),
                            "deployment.kubernetes.io/revision": revision.to_string() },
                        "ownerReferences": owner_ref(d, "apps/v1", "Deployment") },
                    "spec": { "replicas": replicas, "selector": selector, "template": rs_template },
                });
                defaults::apply_defaults(&mut rs);
                if let Err(e) = shared.store.create(rs) {
                    tracing::debug!(error = %e, "creating replicaset");
                }
            }
            Some(rs) if rs["spec"]["replicas"].as_i64() != Some(replicas) => {
                let mut rs = (*rs).clone();
                rs["spec"]["replicas"] = json!(replicas);
                object::set_annotation(&mut rs, "deployment.kubernetes.io/desired-replicas", &replicas.to_string());
                update(shared, rs);
            }
            Some(_) => {}
        }
        // Older templates scale to zero (a plain "Recreate"-like roll; rolling updates come later).
        for rs in owned.iter().filter(|rs| object::name(rs) != rs_name && rs["spec"]["replicas"].as_i64() != Some(0)) {
            let mut rs = (*rs).clone();
            rs["spec"]["replicas"] = json!(0);
            update(shared, rs);
        }
        // Status, counted over the pods of every owned ReplicaSet.
        let owned_uids: HashSet<&str> = owned.iter().map(|rs| object::uid(rs)).collect();
        let mine: Vec<&Value> = pods
            .iter()
            .map(|v| &**v)
            .filter(|p| object::controller_uid(p).is_some_and(|u| owned_uids.contains(u)) && !object::is_terminating(p))
            .collect();
        let ready = mine.iter().filter(|p| pod_ready(p)).count() as i64;
        let updated = mine.iter().filter(|p| object::labels(p).get("pod-template-hash") == Some(&hash)).count() as i64;
        let total = mine.len() as i64;
        let mut status = json!({ "observedGeneration": d["metadata"]["generation"], "replicas": total,
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready });
        if total - ready > 0 {
            status["unavailableReplicas"] = json!(total - ready);
        }
        for k in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
            if status[k] == json!(0) {
                status.as_object_mut().map(|m| m.remove(k));
            }
        }
        status["conditions"] = deployment_conditions(d, ready >= replicas, &rs_name);
        if d["status"] != status {
            let mut d = (**d).clone();
            d["status"] = status;
            update(shared, d);
        }
    }
}

fn deployment_conditions(d: &Value, available: bool, rs_name: &str) -> Value {
    let old = d["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let ts = object::rfc3339(now());
    let cond = |t: &str, status: &str, reason: &str, message: String| {
        // Keep timestamps when nothing changed, so the status settles.
        let prev = old.iter().find(|c| c["type"] == t && c["status"] == status && c["reason"] == reason);
        let (probe, transition) =
            prev.map(|c| (c["lastUpdateTime"].clone(), c["lastTransitionTime"].clone())).unwrap_or((json!(ts), json!(ts)));
        json!({"type": t, "status": status, "reason": reason, "message": message, "lastUpdateTime": probe, "lastTransitionTime": transition})
    };
    json!([
        if available {
            cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
        } else {
            cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
        },
        cond("Progressing", "True", "NewReplicaSetAvailable", format!("ReplicaSet \"{rs_name}\" has successfully progressed.")),
    ])
}

pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn pod_finished(p: &Value) -> bool {
    matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn sync_replicasets(shared: &Shared) {
    let (replicasets, _) = shared.store.list_shared("ReplicaSet", None);
    let (pods, _) = shared.store.list_shared("Pod", None);
    for rs in replicasets.iter().filter(|rs| !object::is_terminating(rs)) {
        let ns = object::namespace(rs);
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let mut active: Vec<&Value> = pods
            .iter()
            .map(|v| &**v)
            .filter(|p| object::controller_uid(p) == Some(object::uid(rs)) && !object::is_terminating(p) && !pod_finished(p))
            .collect();
        if active.len() < want {
            for _ in active.len()..want {
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": { "generateName": format!("{}-", object::name(rs)), "namespace": ns,
                        "labels": rs["spec"]["template"]["metadata"]["labels"],
                        "ownerReferences": owner_ref(rs, "apps/v1", "ReplicaSet") },
                    "spec": rs["spec"]["template"]["spec"],
                    "status": { "phase": "Pending", "qosClass": "BestEffort" },
                });
                if let Some(a) = rs["spec"]["template"]["metadata"].get("annotations") {
                    pod["metadata"]["annotations"] = a.clone();
                }
                defaults::apply_defaults(&mut pod);
                for _attempt in 0..5 {
                    let mut p = pod.clone();
                    p["metadata"]["name"] = json!(naming::generate_name(&format!("{}-", object::name(rs)), rand::random()));
                    emu_logic::serviceaccount::add_api_access(&mut p, &naming::name_suffix(rand::random()));
                    match shared.store.create(p) {
                        Ok(_) => break,
                        Err(crate::store::StoreError::AlreadyExists { .. }) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "creating pod");
                            break;
                        }
                    }
                }
            }
        } else if active.len() > want {
            // Victims first: unscheduled, pending, not ready, more restarts, newest (NAME-7).
            active.sort_by_key(|p| {
                let scheduled = p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                let running = p["status"]["phase"] == "Running";
                let restarts: i64 = p["status"]["containerStatuses"]
                    .as_array()
                    .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum())
                    .unwrap_or(0);
                let created = object::str_at(p, &["metadata", "creationTimestamp"]).and_then(object::parse_rfc3339).unwrap_or(0);
                (scheduled, running, pod_ready(p), std::cmp::Reverse(restarts), std::cmp::Reverse(created), object::name(p).to_string())
            });
            for victim in &active[..active.len() - want] {
                delete_pod(shared, victim);
            }
        }
        let mine: Vec<&Value> = pods
            .iter()
            .map(|v| &**v)
            .filter(|p| object::controller_uid(p) == Some(object::uid(rs)) && !object::is_terminating(p) && !pod_finished(p))
            .collect();
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        let mut status = json!({ "replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"] });
        for k in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
            if status[k] == json!(0) {
                status.as_object_mut().map(|m| m.remove(k));
            }
        }
        if rs["status"] != status {
            let mut rs = (**rs).clone();
            rs["status"] = status;
            update(shared, rs);
        }
    }
}

/// Deletes a pod the way the API does: gracefully when a node runs it, at once otherwise.
fn delete_pod(shared: &Shared, pod: &Value) {
    let k = key("Pod", object::namespace(pod), object::name(pod));
    let on_node = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    if !on_node {
        let _ = shared.store.delete(&k);
        return;
    }
    if object::is_terminating(pod) {
        return;
    }
    let mut p = pod.clone();
    let grace = p["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
    p["metadata"]["deletionTimestamp"] = json!(object::rfc3339(now()));
    p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    update(shared, p);
}

/// How long pods wait for the cluster's nodes to register before being scheduled on fewer.
const NODES_REGISTER_WITHIN: Duration = Duration::from_secs(10);

/// While the cluster comes up, pods wait until every node of the cluster has registered (or
/// for [`NODES_REGISTER_WITHIN`]): otherwise the first node to register would get every pod
/// created before the others came, the DNS pods of a fresh cluster among them (in Kubernetes
/// they wait for the nodes to turn Ready the same way). A node that registered once counts,
/// whatever became of it since: one stopped or removed early must not hold the replacements of
/// its pods until the window ends.
fn bootstrapping(shared: &Shared, nodes: &[Arc<Value>]) -> bool {
    if shared.started.elapsed() >= NODES_REGISTER_WITHIN {
        return false;
    }
    let Ok(seen) = shared.heartbeats.lock() else { return false };
    shared.cluster.nodes.iter().any(|n| !seen.contains_key(&n.name) && !nodes.iter().any(|v| object::name(v) == n.name))
}

fn schedule_pods(shared: &Shared, last_ip: &mut HashMap<String, Ipv4Addr>) {
    let (pods, _) = shared.store.list_shared("Pod", None);
    // Pods without a node, and pods created with `spec.nodeName` (they skip the scheduler, as in
    // Kubernetes) that have no IP yet.
    let pending: Vec<&Value> = pods
        .iter()
        .map(|v| &**v)
        .filter(|p| {
            !object::is_terminating(p)
                && (bound_node(p).is_none()
                    || (emu_logic::podspec::allocated_ip(p).is_none() && p["status"]["phase"].as_str().is_none_or(|ph| ph == "Pending")))
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    let (nodes, _) = shared.store.list_shared("Node", None);
    if bootstrapping(shared, &nodes) {
        return;
    }
    let (services, _) = shared.store.list_shared("Service", None);
    let service_selectors: Vec<(String, BTreeMap<String, String>)> = services
        .iter()
        .filter_map(|s| {
            let sel = object::string_map(s["spec"].get("selector"));
            (!sel.is_empty()).then(|| (object::namespace(s).to_string(), sel))
        })
        .collect();
    let candidates: Vec<scheduler::NodeCandidate> = nodes
        .iter()
        .map(|n| scheduler::NodeCandidate {
            name: object::name(n).to_string(),
            ready: crate::nodes::is_ready(n),
            schedulable: n["spec"]["unschedulable"].as_bool() != Some(true),
            labels: object::labels(n),
        })
        .collect();
    let mut bound: Vec<Arc<Value>> = pods.iter().filter(|p| bound_node(p).is_some()).cloned().collect();
    for pod in pending {
        let chosen = match bound_node(pod) {
            Some(node) => Some(node.to_string()),
            None => scheduler::schedule(pod, &candidates, &bound, &service_selectors),
        };
        let Some(node_name) = chosen else { continue };
        let Some(node) = nodes.iter().find(|n| object::name(n) == node_name) else { continue };
        let Some(cidr) = node["spec"]["podCIDR"].as_str().and_then(|c| c.parse::<ipam::Ipv4Cidr>().ok()) else { continue };
        let used: HashSet<Ipv4Addr> = bound
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node_name.as_str())
            .filter_map(|p| emu_logic::podspec::allocated_ip(p)?.parse().ok())
            .collect();
        let Some(ip) = ipam::allocate_pod_ip(cidr, &used, last_ip.get(&node_name).copied()) else {
            tracing::warn!(node = %node_name, "pod CIDR {cidr} is full");
            continue;
        };
        let mut p = pod.clone();
        p["spec"]["nodeName"] = json!(node_name);
        p["status"]["podIP"] = json!(ip.to_string());
        p["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
        let ts = object::rfc3339(now());
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": ts}]);
        match shared.store.update(p) {
            Ok(stored) => {
                last_ip.insert(node_name, ip);
                bound.push(Arc::new(stored));
            }
            Err(e) => tracing::debug!(error = %e, "binding pod"),
        }
    }
}

/// The node a pod is bound to, if any.
fn bound_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// Removes objects whose controlling owner is gone (background cascading deletion), objects of
/// deleted namespaces, and pods bound to nodes that no longer exist.
fn collect_garbage(shared: &Shared) {
    let mut uids: HashSet<String> = HashSet::new();
    // Pods third: their list is used again below. Endpoints own the slices mirrored from them
    // (SVC-18), so their uids must be known here too.
    let kinds = ["Deployment", "ReplicaSet", "Pod", "Service", "EndpointSlice", "Endpoints"];
    let lists: Vec<Vec<Arc<Value>>> = kinds.iter().map(|k| shared.store.list_shared(k, None).0).collect();
    for list in &lists {
        uids.extend(list.iter().map(|v| object::uid(v).to_string()));
    }
    let namespaces: HashSet<String> = shared.store.list_shared("Namespace", None).0.iter().map(|n| object::name(n).to_string()).collect();
    let nodes: HashSet<String> = shared.store.list_shared("Node", None).0.iter().map(|n| object::name(n).to_string()).collect();
    for (kind, list) in kinds.iter().zip(&lists) {
        for v in list {
            let orphan = object::controller_uid(v).is_some_and(|u| !uids.contains(u));
            let lost_ns = !namespaces.contains(object::namespace(v));
            if orphan || lost_ns {
                if *kind == "Pod" {
                    delete_pod(shared, v);
                } else {
                    let _ = shared.store.delete(&key(kind, object::namespace(v), object::name(v)));
                }
            }
        }
    }
    for p in &lists[2] {
        if p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty() && !nodes.contains(n)) {
            let _ = shared.store.delete(&key("Pod", object::namespace(p), object::name(p)));
        }
    }
    // Everything else namespaced (Secrets, ConfigMaps, Events, …) goes with its namespace.
    for rk in emu_api::kinds::KINDS.iter().filter(|rk| rk.namespaced && !kinds.contains(&rk.kind)) {
        for v in shared.store.list_shared(rk.kind, None).0.iter().filter(|v| !namespaces.contains(object::namespace(v))) {
            let _ = shared.store.delete(&key(rk.kind, object::namespace(v), object::name(v)));
        }
    }
    expire_events(shared, now());
}

/// How long an Event is kept after it last happened (kube-apiserver's `--event-ttl` default).
const EVENT_TTL_SECONDS: i64 = 3600;

/// Removes Events that last happened more than [`EVENT_TTL_SECONDS`] before `now`.
fn expire_events(shared: &Shared, now: i64) {
    for e in shared.store.list_shared("Event", None).0.iter() {
        let last = ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .find_map(|f| e[*f].as_str().and_then(emu_api::time::parse_rfc3339))
            .or_else(|| object::str_at(e, &["metadata", "creationTimestamp"]).and_then(emu_api::time::parse_rfc3339));
        if last.is_some_and(|t| now - t > EVENT_TTL_SECONDS) {
            let _ = shared.store.delete(&key("Event", object::namespace(e), object::name(e)));
        }
    }
}

/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Every namespace has ConfigMap `kube-root-ca.crt` with the cluster CA as `ca.crt`, as
/// Kubernetes' root-ca-cert-publisher keeps it: made with the namespace, put back when deleted or
/// changed.
fn publish_root_ca(shared: &Shared, changes: &Changes) {
    let Some(ca) = shared.root_ca.get() else { return };
    let touched = match changes {
        Changes::All => true,
        Changes::Some(events) => events.iter().any(|(_, v)| match object::kind(v) {
            "Namespace" => true,
            "ConfigMap" => object::name(v) == ROOT_CA_CONFIGMAP,
            _ => false,
        }),
    };
    if !touched {
        return;
    }
    let want = json!({"ca.crt": ca});
    for ns in shared.store.list_shared("Namespace", None).0.iter().filter(|n| !object::is_terminating(n)) {
        let ns = object::name(ns);
        match shared.store.get_shared(&key("ConfigMap", ns, ROOT_CA_CONFIGMAP)) {
            None => {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns, "annotations": {"kubernetes.io/description":
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": want});
                if let Err(e) = shared.store.create(cm) {
                    tracing::debug!(error = %e, namespace = ns, "publishing the root CA");
                }
            }
            Some(cm) if cm["data"] != want || cm.get("binaryData").is_some() => {
                let mut cm = (*cm).clone();
                cm["data"] = want.clone();
                if let Some(m) = cm.as_object_mut() {
                    m.remove("binaryData");
                }
                update(shared, cm);
            }
            Some(_) => {}
        }
    }
}

/// Namespaces every cluster has from the start.
pub fn ensure_builtin_namespaces(shared: &Shared) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if shared.store.get(&key("Namespace", "", ns)).is_none() {
            let mut v = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "status": {"phase": "Active"}});
            defaults::apply_defaults(&mut v);
            if let Err(e) = shared.store.create(v) {
                tracing::warn!(error = %e, namespace = ns, "creating built-in namespace");
            }
        }
    }
}
