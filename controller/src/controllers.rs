//! The controllers: level-triggered loops that read the store and converge it.
//!
//! After any write (or once a second) `reconcile_all` recomputes what should exist from what does
//! (the endpoints controller and the garbage collector only for what changed since the last pass,
//! with a pass over everything every [`FULL_PASS_EVERY`]):
//! Deployments own ReplicaSets (named `<deployment>-<pod-template-hash>`), ReplicaSets own Pods
//! (named `<replicaset>-<5 random chars>`), the scheduler binds pending pods to nodes and gives them
//! an IP from the node's pod CIDR, and the garbage collector removes what lost its owner.

use crate::decoded::{Decoded, Meta, Obj};
use crate::state::Shared;
use crate::store::{Changes, ObjectKey};
use emu_api::time::now;
use emu_api::typed::{
    self, ConfigMap, CronJob, DaemonSet, Deployment, Event, Job, Node, ObjectMeta, Pod, ReplicaSet, Service, StatefulSet,
};
use emu_api::{defaults, naming, object};
use emu_logic::scheduler::controller_uid;
use emu_logic::{deployment, endpoints, ipam, scheduler};
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
pub struct Caches {
    pub pods: Decoded<Pod>,
    pub(crate) nodes: Decoded<Node>,
    deployments: Decoded<Deployment>,
    replicasets: Decoded<ReplicaSet>,
    pub(crate) daemonsets: Decoded<DaemonSet>,
    pub(crate) statefulsets: Decoded<StatefulSet>,
    pub(crate) jobs: Decoded<Job>,
    pub(crate) cronjobs: Decoded<CronJob>,
    pub(crate) services: Decoded<Service>,
    events: Decoded<Event>,
    /// The metadata of other kinds, by kind (what the garbage collector and the root CA
    /// publisher read).
    meta: HashMap<&'static str, Decoded<Meta>>,
}

impl Caches {
    /// Forgets objects the store no longer holds.
    fn sweep(&mut self) {
        self.pods.sweep();
        self.nodes.sweep();
        self.deployments.sweep();
        self.replicasets.sweep();
        self.daemonsets.sweep();
        self.statefulsets.sweep();
        self.jobs.sweep();
        self.cronjobs.sweep();
        self.services.sweep();
        self.events.sweep();
        self.meta.values_mut().for_each(Decoded::sweep);
    }

    /// The metadata of every object of `kind`.
    fn list_meta(&mut self, store: &crate::store::Store, kind: &'static str) -> Vec<Obj<Meta>> {
        self.meta.entry(kind).or_default().list(store, kind, None)
    }
}

/// How often a pass looks at everything, not only at what changed: a safety net for what no
/// change announces (an object created pointing at an owner that was already gone).
const FULL_PASS_EVERY: Duration = Duration::from_secs(10);

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

    /// Whether the writes since the last pass are all of objects no controller reads; if so they
    /// are marked seen. A pass reads every pod and workload (milliseconds at 1,000 pods), so a
    /// stream of ConfigMap or Secret writes would otherwise start one after each write, competing
    /// with the writes themselves for the CPU and the allocator.
    fn only_unread_changes(&mut self, shared: &Shared) -> bool {
        match shared.store.changes_since(self.seen) {
            Some((events, rv)) if !events.is_empty() && events.iter().all(|(_, v)| !read_by_controllers(v)) => {
                self.seen = rv;
                true
            }
            _ => false,
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

/// Whether a controller reads objects like `obj`, so that its change must start a pass. The
/// kinds left out are those no controller lists (the garbage collector only looks after
/// workloads, pods and the Services' endpoints); unknown kinds count as read.
fn read_by_controllers(obj: &Value) -> bool {
    match object::kind(obj) {
        "ConfigMap" => object::name(obj) == ROOT_CA_CONFIGMAP,
        "Secret" | "Event" | "Lease" | "Role" | "RoleBinding" | "ClusterRoleBinding" => false,
        _ => true,
    }
}

/// How often a pass runs at least, written to or not: what depends on time (a node's missed
/// heartbeats, an event's age, a retry) is seen within this.
const PASS_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

pub async fn run(shared: Shared) {
    let mut state = Some(ControllerState::new(&shared));
    let mut last_pass: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(PASS_AT_LEAST_EVERY) => {}
        }
        // Let a burst of writes land before recomputing.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let recent = last_pass.is_some_and(|t| t.elapsed() < PASS_AT_LEAST_EVERY);
        if recent && state.as_mut().is_some_and(|st| st.only_unread_changes(&shared)) {
            continue;
        }
        last_pass = Some(Instant::now());
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
    let decoded = &mut st.decoded;
    crate::nodes::check_liveness(shared, &mut decoded.nodes);
    crate::nodes::handle_unreachable_pods(shared, &mut decoded.nodes, &mut decoded.pods, |pod| delete_pod(shared, pod));
    if changes.may_orphan() {
        collect_garbage(shared, decoded);
    }
    sync_deployments(shared, decoded);
    sync_replicasets(shared, decoded);
    crate::daemonsets::sync(shared, decoded);
    crate::statefulsets::sync(shared, decoded);
    crate::jobs::sync(shared, decoded);
    schedule_pods(shared, &mut st.last_ip, decoded);
    st.endpoints.sync(shared, &changes, &mut st.decoded.pods);
    publish_root_ca(shared, &changes, &mut st.decoded);
    crate::rbac_aggregation::sync(shared, &changes);
    crate::serviceaccounts::sync(shared, &changes);
    crate::gateway::sync(shared, &changes);
    crate::bootstrap::delete_expired(shared, emu_api::time::now());
    st.control_routes.sync(shared, &mut st.decoded.nodes);
    crate::host_faults::sync(shared);
    st.decoded.sweep();
    if shared.store.resource_version() != before {
        shared.changed();
    }
    // What an endpoint change waits for before its slice is written (EMU_LOG=debug).
    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "controller pass");
}

pub(crate) fn key(kind: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: kind.into(), namespace: ns.into(), name: name.into() }
}

/// The key of a stored object from its metadata.
pub(crate) fn key_of(kind: &str, meta: &ObjectMeta) -> ObjectKey {
    let (ns, name) = typed::key(meta);
    key(kind, ns, name)
}

pub(crate) fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

pub(crate) fn is_terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

pub(crate) fn owner_ref(owner: &ObjectMeta, api_version: &str, kind: &str) -> Value {
    json!([{ "apiVersion": api_version, "kind": kind, "name": typed::key(owner).1, "uid": uid(owner),
             "controller": true, "blockOwnerDeletion": true }])
}

pub(crate) fn update(shared: &Shared, v: Value) {
    if let Err(e) = shared.store.update(v) {
        tracing::debug!(error = %e, "controller update lost a race; next pass retries");
    }
}

// Deployments and ReplicaSets are read typed; what they write is built from the stored JSON: the
// pod template is copied as stored, byte for byte (the pod-template-hash is computed over that
// JSON, so the same template keeps its ReplicaSet's name), and statuses are compared with the
// stored JSON they replace.

const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";

/// The Ready condition's lastTransitionTime of a ready pod (what minReadySeconds counts from).
pub(crate) fn ready_since(p: &Pod) -> Option<i64> {
    let conditions = p.status.as_ref()?.conditions.as_deref()?;
    conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?.last_transition_time.as_ref().map(|t| t.0.as_second())
}

/// A pod counts as available once Ready for `min_ready` seconds.
pub(crate) fn pod_available(p: &Pod, min_ready: i32, now: i64) -> bool {
    deployment::pod_available(endpoints::pod_is_ready(p), ready_since(p), min_ready, now)
}

/// The Deployment's annotations a ReplicaSet carries (`copyDeploymentAnnotationsToReplicaSet`):
/// all but the controller's own and kubectl's last-applied configuration. Answers whether any
/// changed.
fn copy_annotations(d: &Value, rs: &mut Value) -> bool {
    const SKIP: [&str; 6] = [
        "kubectl.kubernetes.io/last-applied-configuration",
        deployment::REVISION,
        "deployment.kubernetes.io/revision-history",
        DESIRED,
        MAX,
        "deprecated.deployment.rollback.to",
    ];
    let mut changed = false;
    for (k, v) in d["metadata"]["annotations"].as_object().into_iter().flatten() {
        if SKIP.contains(&k.as_str()) || object::annotation(rs, k) == v.as_str() {
            continue;
        }
        if let Some(v) = v.as_str() {
            object::set_annotation(rs, k, v);
            changed = true;
        }
    }
    changed
}

/// The Deployment's `ScalingReplicaSet` event, as `scaleReplicaSet` records it.
fn record_scaling(shared: &Shared, d: &Value, rs_name: &str, from: i32, to: i32) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let direction = if to > from { "up" } else { "down" };
    let event = emu_logic::events::new_event(
        d,
        emu_logic::events::NORMAL,
        "ScalingReplicaSet",
        &format!("Scaled {direction} replica set {rs_name} from {from} to {to}"),
        "deployment-controller",
        "",
        &object::rfc3339(now.as_secs() as i64),
        now.as_nanos(),
    );
    if let Err(e) = shared.store.create(event) {
        tracing::debug!(error = %e, "recording ScalingReplicaSet");
    }
}

/// The stored conditions with this sync's decisions applied, timestamps as
/// `SetDeploymentCondition` keeps them (a changed status moves lastTransitionTime; a changed
/// reason or any progress, lastUpdateTime).
fn merge_condition(old: &[Value], c: &deployment::Condition, touch: bool, ts: &str) -> Value {
    let prev = old.iter().find(|p| p["type"] == c.type_);
    let same_status = prev.is_some_and(|p| p["status"] == c.status);
    let same_reason = same_status && prev.is_some_and(|p| p["reason"] == c.reason);
    let keep = |k: &str, cond: bool| prev.filter(|_| cond).map_or(json!(ts), |p| p[k].clone());
    json!({"type": c.type_, "status": c.status, "lastUpdateTime": keep("lastUpdateTime", same_reason && !touch),
        "lastTransitionTime": keep("lastTransitionTime", same_status), "reason": c.reason,
        "message": if same_reason && !touch { prev.map_or(json!(c.message), |p| p["message"].clone()) } else { json!(c.message) }})
}

fn sync_deployments(shared: &Shared, decoded: &mut Caches) {
    let deployments = decoded.deployments.list(&shared.store, "Deployment", None);
    let replicasets = decoded.replicasets.list(&shared.store, "ReplicaSet", None);
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    let now = now();
    for d in deployments.iter().filter(|d| !is_terminating(&d.metadata)) {
        let (ns, name) = typed::key(&d.metadata);
        let spec = d.spec.clone().unwrap_or_default();
        let template = &d.json["spec"]["template"];
        let hash = naming::pod_template_hash(template, None);
        let rs_name = format!("{name}-{hash}");
        let replicas = spec.replicas.unwrap_or(1);
        let paused = spec.paused.unwrap_or(false);
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let rolling = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        let strategy = deployment::Strategy::resolve(
            spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        );
        let owned: Vec<&Obj<ReplicaSet>> = replicasets
            .iter()
            .filter(|rs| controller_uid(&rs.metadata) == Some(uid(&d.metadata)) && !is_terminating(&rs.metadata))
            .collect();
        // Each ReplicaSet as the planner sees it, counted from its pods.
        let mut views: Vec<deployment::ReplicaSetView> = owned
            .iter()
            .map(|rs| {
                let of_rs: Vec<&Pod> = pods
                    .iter()
                    .map(|p| &*p.typed)
                    .filter(|p| controller_uid(&p.metadata) == Some(uid(&rs.metadata)) && !pod_finished(p))
                    .collect();
                let active: Vec<&&Pod> = of_rs.iter().filter(|p| !is_terminating(&p.metadata)).collect();
                deployment::ReplicaSetView {
                    name: typed::key(&rs.metadata).1.to_string(),
                    replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    pods: active.len() as i32,
                    ready: active.iter().filter(|p| endpoints::pod_is_ready(p)).count() as i32,
                    available: active.iter().filter(|p| pod_available(p, min_ready, now)).count() as i32,
                    running: of_rs.len() as i32,
                    revision: object::annotation(&rs.json, deployment::REVISION).and_then(|r| r.parse().ok()).unwrap_or(0),
                    created: rs.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
                    desired_annotation: object::annotation(&rs.json, DESIRED).and_then(|r| r.parse().ok()),
                    max_annotation: object::annotation(&rs.json, MAX).and_then(|r| r.parse().ok()),
                }
            })
            .collect();
        let mut new = views.iter().position(|v| v.name == rs_name);
        let revision = deployment::next_revision(&views, new);
        let max_replicas = (replicas
            + match strategy {
                deployment::Strategy::RollingUpdate { max_surge, .. } => max_surge,
                deployment::Strategy::Recreate => 0,
            })
        .to_string();
        let mut created_new = false;
        match new {
            // A paused Deployment starts no rollout (getNewReplicaSet without creating).
            None if paused => {}
            None => {
                let mut labels = template["metadata"]["labels"].clone();
                labels["pod-template-hash"] = json!(hash);
                let mut selector = d.json["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut rs_template = template.clone();
                rs_template["metadata"]["labels"] = labels.clone();
                // Created with no pods: the next pass scales it as the strategy allows.
                let mut rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": { "name": rs_name, "namespace": ns, "labels": labels,
                        "annotations": { DESIRED: replicas.to_string(), MAX: max_replicas,
                            deployment::REVISION: revision.to_string() },
                        "ownerReferences": owner_ref(&d.metadata, "apps/v1", "Deployment") },
                    "spec": { "replicas": 0, "minReadySeconds": min_ready, "selector": selector, "template": rs_template },
                });
                copy_annotations(&d.json, &mut rs);
                defaults::apply_defaults(&mut rs);
                match shared.store.create(rs) {
                    Ok(_) => {
                        created_new = true;
                        views.push(deployment::ReplicaSetView { name: rs_name.clone(), revision, created: now, ..Default::default() });
                        new = Some(views.len() - 1);
                    }
                    Err(e) => tracing::debug!(error = %e, "creating replicaset"),
                }
            }
            Some(i) => {
                // An old template back (rollout undo) takes the next revision; annotations follow
                // the Deployment's.
                let rs = owned[i];
                let mut json = (*rs.json).clone();
                let mut changed = copy_annotations(&d.json, &mut json);
                if object::annotation(&json, deployment::REVISION) != Some(revision.to_string().as_str()) {
                    object::set_annotation(&mut json, deployment::REVISION, &revision.to_string());
                    changed = true;
                }
                if json["spec"]["minReadySeconds"] != json!(min_ready) {
                    json["spec"]["minReadySeconds"] = json!(min_ready);
                    changed = true;
                }
                if changed {
                    views[i].revision = revision;
                    update(shared, json);
                }
            }
        }
        // One step of the strategy (nothing in the pass that created the new ReplicaSet: the
        // create wakes the next pass).
        if !created_new {
            let plan = match new {
                Some(i) => deployment::plan(replicas, strategy, paused, &views, i),
                None => deployment::scale(replicas, strategy, &views, None),
            };
            // scaleReplicaSet: the size, and the Deployment's size it was scaled for.
            for (rs_name, to) in &plan.scale {
                if let Some(rs) = owned.iter().find(|rs| typed::key(&rs.metadata).1 == rs_name) {
                    let mut rs = (*rs.json).clone();
                    rs["spec"]["replicas"] = json!(to);
                    object::set_annotation(&mut rs, DESIRED, &replicas.to_string());
                    object::set_annotation(&mut rs, MAX, &max_replicas);
                    if rs != *owned.iter().find(|o| typed::key(&o.metadata).1 == rs_name).map_or(&Value::Null, |o| &*o.json) {
                        let from = views.iter().find(|v| &v.name == rs_name).map_or(0, |v| v.replicas);
                        if shared.store.update(rs).is_ok() && from != *to {
                            record_scaling(shared, &d.json, rs_name, from, *to);
                        }
                    }
                }
                if let Some(v) = views.iter_mut().find(|v| &v.name == rs_name) {
                    v.replicas = *to;
                }
            }
            let counts = deployment::counts(&views, new);
            if let (Some(i), false, true) = (new, paused, plan.scale.is_empty() && deployment::complete(replicas, &counts)) {
                let limit = spec.revision_history_limit.unwrap_or(10);
                for gone in deployment::history_to_delete(&views, i, limit) {
                    let _ = shared.store.delete(&key("ReplicaSet", ns, &gone));
                }
            }
        }
        // Status (calculateStatus) and conditions (syncRolloutStatus).
        let counts = deployment::counts(&views, new);
        let old_status = d.status.clone().unwrap_or_default();
        let old_counts = deployment::Counts {
            replicas: old_status.replicas.unwrap_or(0),
            updated: old_status.updated_replicas.unwrap_or(0),
            ready: old_status.ready_replicas.unwrap_or(0),
            available: old_status.available_replicas.unwrap_or(0),
            unavailable: old_status.unavailable_replicas.unwrap_or(0),
        };
        let old_conditions: Vec<Value> = d.json["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let progressing = old_conditions.iter().find(|c| c["type"] == "Progressing").map(|c| deployment::Previous {
            status: c["status"].as_str().unwrap_or_default().into(),
            reason: c["reason"].as_str().unwrap_or_default().into(),
            last_update: c["lastUpdateTime"].as_str().and_then(emu_api::time::parse_rfc3339).unwrap_or(now),
        });
        let new_name = new.map_or(rs_name.clone(), |i| views[i].name.clone());
        let inputs = deployment::Inputs {
            name,
            desired: replicas,
            strategy,
            paused,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            new_rs: &new_name,
            created_new,
            old: old_counts,
            new: counts,
            progressing,
            now,
        };
        let ts = object::rfc3339(now);
        let mut conditions = vec![merge_condition(&old_conditions, &deployment::available_condition(&inputs), false, &ts)];
        match deployment::progressing_condition(&inputs) {
            Some(p) => conditions.push(merge_condition(&old_conditions, &p.condition, p.touch, &ts)),
            None => conditions.extend(old_conditions.iter().find(|c| c["type"] == "Progressing").cloned()),
        }
        let mut status = json!({ "observedGeneration": d.metadata.generation, "replicas": counts.replicas,
            "updatedReplicas": counts.updated, "readyReplicas": counts.ready, "availableReplicas": counts.available });
        if counts.unavailable > 0 {
            status["unavailableReplicas"] = json!(counts.unavailable);
        }
        for k in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
            if status[k] == json!(0) {
                status.as_object_mut().map(|m| m.remove(k));
            }
        }
        // The deployment controller shows a ReplicaSet's failure to create pods (GetReplicaFailures).
        conditions.extend(owned.iter().find_map(|rs| crate::serviceaccounts::deployment_failure(&rs.json)));
        status["conditions"] = json!(conditions);
        let revision_now = new.map(|i| views[i].revision.to_string());
        let annotation_stale = revision_now.as_deref().is_some_and(|r| object::annotation(&d.json, deployment::REVISION) != Some(r));
        if d.json["status"] != status || annotation_stale {
            let mut d = (*d.json).clone();
            d["status"] = status;
            if let (true, Some(r)) = (annotation_stale, revision_now) {
                object::set_annotation(&mut d, deployment::REVISION, &r);
            }
            update(shared, d);
        }
    }
}

pub(crate) fn pod_phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

pub(crate) fn pod_finished(p: &Pod) -> bool {
    matches!(pod_phase(p), Some("Succeeded" | "Failed"))
}

fn sync_replicasets(shared: &Shared, decoded: &mut Caches) {
    let replicasets = decoded.replicasets.list(&shared.store, "ReplicaSet", None);
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    for rs in replicasets.iter().filter(|rs| !is_terminating(&rs.metadata)) {
        let (ns, name) = typed::key(&rs.metadata);
        let want = rs.spec.as_ref().map_or(1, |s| s.replicas.unwrap_or(1)).max(0) as usize;
        let of_rs =
            |p: &&Obj<Pod>| controller_uid(&p.metadata) == Some(uid(&rs.metadata)) && !is_terminating(&p.metadata) && !pod_finished(p);
        let mut active: Vec<&Obj<Pod>> = pods.iter().filter(of_rs).collect();
        // Why this pass could not create the pods it wanted (kube-apiserver's admission refused them).
        let mut failure = None;
        if active.len() < want {
            let template = &rs.json["spec"]["template"];
            for _ in active.len()..want {
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": { "generateName": format!("{name}-"), "namespace": ns,
                        "labels": template["metadata"]["labels"],
                        "ownerReferences": owner_ref(&rs.metadata, "apps/v1", "ReplicaSet") },
                    "spec": template["spec"],
                    "status": { "phase": "Pending", "qosClass": "BestEffort" },
                });
                if let Some(a) = template["metadata"].get("annotations") {
                    pod["metadata"]["annotations"] = a.clone();
                }
                match create_admitted_pod(shared, pod, &format!("{name}-")) {
                    Ok(_) => {}
                    Err(PodCreateError::Refused(refused)) => {
                        failure = Some(refused);
                        break;
                    }
                    Err(PodCreateError::Store(e)) => tracing::warn!(error = %e, "creating pod"),
                }
            }
        } else if active.len() > want {
            // Victims first: unscheduled, pending, not ready, more restarts, newest (NAME-7).
            active.sort_by_key(|p| {
                let scheduled = scheduler::bound_node(p).is_some();
                let running = pod_phase(p) == Some("Running");
                let statuses = p.status.as_ref().and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
                let restarts: i64 = statuses.iter().map(|c| i64::from(c.restart_count)).sum();
                let created = p.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
                (
                    scheduled,
                    running,
                    endpoints::pod_is_ready(p),
                    std::cmp::Reverse(restarts),
                    std::cmp::Reverse(created),
                    typed::key(&p.metadata).1.to_string(),
                )
            });
            for victim in &active[..active.len() - want] {
                delete_pod(shared, victim);
            }
        }
        let mine: Vec<&Obj<Pod>> = pods.iter().filter(of_rs).collect();
        let ready = mine.iter().filter(|p| endpoints::pod_is_ready(p)).count();
        let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
        let available = mine.iter().filter(|p| pod_available(p, min_ready, now())).count();
        let mut status = json!({ "replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": ready,
            "availableReplicas": available, "observedGeneration": rs.metadata.generation });
        for k in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
            if status[k] == json!(0) {
                status.as_object_mut().map(|m| m.remove(k));
            }
        }
        let live_status = &rs.json["status"];
        if let Some(conditions) =
            crate::serviceaccounts::replica_failure_conditions(live_status, failure.as_deref(), &object::rfc3339(now()))
        {
            if live_status["conditions"] != conditions {
                crate::serviceaccounts::record_failed_create(shared, &rs.json, failure.as_deref().unwrap_or_default());
            }
            status["conditions"] = conditions;
        }
        if rs.json["status"] != status {
            let mut rs = (*rs.json).clone();
            rs["status"] = status;
            update(shared, rs);
        }
    }
}

/// Deletes a pod the way the API does: gracefully when a node runs it, at once otherwise.
/// Why a controller's pod was not created.
pub(crate) enum PodCreateError {
    /// Admission refused it (a missing service account, the namespace's Pod Security level).
    Refused(String),
    /// The store did not take it (or no generated name was free).
    Store(String),
}

/// Creates a pod a controller made (`pod`, with `metadata.generateName` = `base`) as the API
/// server admits one: defaulted, its service account admitted and its token volume added, Pod
/// Security enforced (the refusal names the pod by its generateName, as kube-apiserver does),
/// under a name generated from `base`, drawn again when it is taken. Answers the pod's name.
pub(crate) fn create_admitted_pod(shared: &Shared, mut pod: Value, base: &str) -> Result<String, PodCreateError> {
    defaults::apply_defaults(&mut pod);
    let admitted = crate::serviceaccounts::admit_pod(shared, &pod, &[]).map_err(PodCreateError::Refused)?;
    if let Some(refused) = crate::api::pod_security_refusal(shared, &pod) {
        return Err(PodCreateError::Refused(refused));
    }
    for _attempt in 0..5 {
        let mut p = pod.clone();
        let name = naming::generate_name(base, rand::random());
        p["metadata"]["name"] = json!(name);
        admitted.add_api_access(&mut p);
        match shared.store.create(p) {
            Ok(_) => return Ok(name),
            Err(crate::store::StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(PodCreateError::Store(e.to_string())),
        }
    }
    Err(PodCreateError::Store(format!("no free name generated from {base:?}")))
}

pub(crate) fn delete_pod(shared: &Shared, pod: &Obj<Pod>) {
    let k = key_of("Pod", &pod.metadata);
    if scheduler::bound_node(pod).is_none() {
        let _ = shared.store.delete(&k);
        return;
    }
    if is_terminating(&pod.metadata) {
        return;
    }
    let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    let mut p = (*pod.json).clone();
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
fn bootstrapping(shared: &Shared, nodes: &[Obj<Node>]) -> bool {
    if shared.started.elapsed() >= NODES_REGISTER_WITHIN {
        return false;
    }
    let Ok(seen) = shared.heartbeats.lock() else { return false };
    shared.cluster.nodes.iter().any(|n| !seen.contains_key(&n.name) && !nodes.iter().any(|v| typed::key(&v.metadata).1 == n.name))
}

fn schedule_pods(shared: &Shared, last_ip: &mut HashMap<String, Ipv4Addr>, decoded: &mut Caches) {
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    // Pods without a node, and pods created with `spec.nodeName` (they skip the scheduler, as in
    // Kubernetes) that have no IP yet.
    let pending: Vec<&Obj<Pod>> = pods
        .iter()
        .filter(|p| {
            !is_terminating(&p.metadata)
                && (scheduler::bound_node(p).is_none() || (scheduler::pod_ip(p).is_none() && pod_phase(p).is_none_or(|ph| ph == "Pending")))
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    let nodes = decoded.nodes.list(&shared.store, "Node", None);
    if bootstrapping(shared, &nodes) {
        return;
    }
    let services = decoded.services.list(&shared.store, "Service", None);
    let service_selectors: Vec<(String, BTreeMap<String, String>)> = services
        .iter()
        .filter_map(|s| {
            let sel = s.spec.as_ref()?.selector.as_ref().filter(|sel| !sel.is_empty())?;
            Some((typed::key(&s.metadata).0.to_string(), sel.clone()))
        })
        .collect();
    let candidates: Vec<scheduler::NodeCandidate> = nodes
        .iter()
        .map(|n| scheduler::NodeCandidate {
            name: typed::key(&n.metadata).1.to_string(),
            ready: crate::nodes::is_ready(n),
            schedulable: n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true),
            labels: typed::labels(&n.metadata).clone(),
            taints: n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default(),
        })
        .collect();
    let mut bound: Vec<Obj<Pod>> = pods.iter().filter(|p| scheduler::bound_node(p).is_some()).cloned().collect();
    for pod in pending {
        let chosen = match scheduler::bound_node(pod) {
            Some(node) => Some(node.to_string()),
            None => scheduler::schedule(pod, &candidates, &bound, &service_selectors),
        };
        let Some(node_name) = chosen else { continue };
        let Some(node) = nodes.iter().find(|n| typed::key(&n.metadata).1 == node_name) else { continue };
        let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| c.parse::<ipam::Ipv4Cidr>().ok()) else {
            continue;
        };
        let used: HashSet<Ipv4Addr> = bound
            .iter()
            .filter(|p| scheduler::bound_node(p) == Some(node_name.as_str()))
            .filter_map(|p| scheduler::pod_ip(p)?.parse().ok())
            .collect();
        let Some(ip) = ipam::allocate_pod_ip(cidr, &used, last_ip.get(&node_name).copied()) else {
            tracing::warn!(node = %node_name, "pod CIDR {cidr} is full");
            continue;
        };
        // Written as JSON: the condition's `lastProbeTime: null` is Go's, which the typed
        // encoding drops.
        let mut p = (*pod.json).clone();
        p["spec"]["nodeName"] = json!(node_name);
        p["status"]["podIP"] = json!(ip.to_string());
        p["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
        let ts = object::rfc3339(now());
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": ts}]);
        match shared.store.update(p) {
            Ok(stored) => {
                // What the next pods of this pass see of it: its node and IP (the next pass
                // decodes the stored object).
                let mut typed = (*pod.typed).clone();
                typed.spec.get_or_insert_with(Default::default).node_name = Some(node_name.clone());
                typed.status.get_or_insert_with(Default::default).pod_ip = Some(ip.to_string());
                last_ip.insert(node_name, ip);
                bound.push(Obj { json: Arc::new(stored), typed: Arc::new(typed) });
            }
            Err(e) => tracing::debug!(error = %e, "binding pod"),
        }
    }
}

/// Removes objects whose controlling owner is gone (background cascading deletion), objects of
/// deleted namespaces, and pods bound to nodes that no longer exist. Only metadata is read
/// ([`Meta`]), whatever the kind.
fn collect_garbage(shared: &Shared, decoded: &mut Caches) {
    let mut uids: HashSet<String> = HashSet::new();
    // Endpoints own the slices mirrored from them (SVC-18), so their uids must be known here too.
    let kinds = [
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "EndpointSlice",
        "Endpoints",
        "DaemonSet",
        "StatefulSet",
        "ControllerRevision",
        "Job",
        "CronJob",
    ];
    let lists: Vec<Vec<Obj<Meta>>> = kinds.iter().map(|k| decoded.list_meta(&shared.store, k)).collect();
    for list in &lists {
        uids.extend(list.iter().map(|v| uid(&v.metadata).to_string()));
    }
    // A Gateway owns its data path (crate::gateway): an owner, not collected here.
    uids.extend(decoded.list_meta(&shared.store, "Gateway").iter().map(|v| uid(&v.metadata).to_string()));
    let namespaces: HashSet<String> =
        decoded.list_meta(&shared.store, "Namespace").iter().map(|n| typed::key(&n.metadata).1.to_string()).collect();
    let nodes: HashSet<String> =
        decoded.nodes.list(&shared.store, "Node", None).iter().map(|n| typed::key(&n.metadata).1.to_string()).collect();
    for (kind, list) in kinds.iter().zip(&lists) {
        for v in list {
            let orphan = controller_uid(&v.metadata).is_some_and(|u| !uids.contains(u));
            let lost_ns = !namespaces.contains(typed::key(&v.metadata).0);
            if orphan || lost_ns {
                if *kind == "Pod" {
                    if let Some(pod) = decoded.pods.get(&v.json) {
                        delete_pod(shared, &pod);
                    }
                } else {
                    let _ = shared.store.delete(&key_of(kind, &v.metadata));
                }
            }
        }
    }
    for p in lists[2].iter().filter_map(|v| decoded.pods.get(&v.json)) {
        if scheduler::bound_node(&p).is_some_and(|n| !nodes.contains(n)) {
            let _ = shared.store.delete(&key_of("Pod", &p.metadata));
        }
    }
    // Everything else namespaced (Secrets, ConfigMaps, Events, …) goes with its namespace.
    for rk in emu_api::kinds::KINDS.iter().filter(|rk| rk.namespaced && !kinds.contains(&rk.kind)) {
        for v in decoded.list_meta(&shared.store, rk.kind).iter().filter(|v| !namespaces.contains(typed::key(&v.metadata).0)) {
            let _ = shared.store.delete(&key_of(rk.kind, &v.metadata));
        }
    }
    expire_events(shared, now(), &mut decoded.events);
}

/// How long an Event is kept after it last happened (kube-apiserver's `--event-ttl` default).
const EVENT_TTL_SECONDS: i64 = 3600;

/// Removes Events that last happened more than [`EVENT_TTL_SECONDS`] before `now`.
fn expire_events(shared: &Shared, now: i64, decoded: &mut Decoded<Event>) {
    for e in decoded.list(&shared.store, "Event", None) {
        let last =
            e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)).or(e.first_timestamp.as_ref().map(|t| t.0)).or(e
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0));
        if last.is_some_and(|t| now - t.as_second() > EVENT_TTL_SECONDS) {
            let _ = shared.store.delete(&key_of("Event", &e.metadata));
        }
    }
}

/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Every namespace has ConfigMap `kube-root-ca.crt` with the cluster CA as `ca.crt`, as
/// Kubernetes' root-ca-cert-publisher keeps it: made with the namespace, put back when deleted or
/// changed.
fn publish_root_ca(shared: &Shared, changes: &Changes, decoded: &mut Caches) {
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
    let want_data = BTreeMap::from([("ca.crt".to_string(), ca.to_string())]);
    for ns in decoded.list_meta(&shared.store, "Namespace").iter().filter(|n| !is_terminating(&n.metadata)) {
        let ns = typed::key(&ns.metadata).1;
        let stored = shared.store.get_shared(&key("ConfigMap", ns, ROOT_CA_CONFIGMAP));
        let current = stored.as_ref().map(|cm| typed::decode::<ConfigMap>(cm).ok());
        match current {
            None => {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns, "annotations": {"kubernetes.io/description":
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": want});
                if let Err(e) = shared.store.create(cm) {
                    tracing::debug!(error = %e, namespace = ns, "publishing the root CA");
                }
            }
            // One that does not decode is put right too.
            Some(cm) if cm.as_ref().is_none_or(|cm| cm.data.as_ref() != Some(&want_data) || cm.binary_data.is_some()) => {
                let Some(cm) = stored else { continue };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_that_start_a_pass() {
        let obj = |kind: &str, name: &str| json!({"kind": kind, "metadata": {"name": name, "namespace": "default"}});
        for (kind, name) in [("ConfigMap", "settings"), ("Secret", "tls"), ("Event", "e.1"), ("RoleBinding", "b")] {
            assert!(!read_by_controllers(&obj(kind, name)), "{kind}");
        }
        // The root CA's ConfigMap is put back by a pass; workloads, pods, nodes and kinds this
        // list does not know are read.
        for (kind, name) in [("ConfigMap", ROOT_CA_CONFIGMAP), ("Pod", "p"), ("Node", "n"), ("ServiceAccount", "default"), ("Widget", "w")]
        {
            assert!(read_by_controllers(&obj(kind, name)), "{kind}");
        }
    }
}
