//! The DaemonSet controller: one pod on every node that should run one, as
//! kube-controller-manager's daemon controller does. The decisions are
//! [`emu_logic::daemonset`]'s; this module gathers the nodes and pods, keeps the
//! ControllerRevisions (`<daemonset>-<hash>`, one per template seen), creates and deletes the
//! pods the plan names and writes the status.
//!
//! A daemon pod is created unbound with a required node affinity naming its node
//! (`matchFields metadata.name In [node]`) and the daemon tolerations; the scheduler
//! (`schedule_pods`, later in the same pass) binds it there, as kube ≥ 1.12 does.

use crate::controllers::{
    create_admitted_pod, delete_pod, is_terminating, key, key_of, owner_ref, pod_available, pod_phase, uid, update, Caches, PodCreateError,
};
use crate::decoded::Obj;
use crate::state::Shared;
use emu_api::time::now;
use emu_api::typed::{self, DaemonSet, Pod};
use emu_api::{naming, object};
use emu_logic::daemonset::{self as planner, NodeView, Phase, PodView, Strategy};
use emu_logic::endpoints;
use emu_logic::scheduler::controller_uid;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const COMPONENT: &str = "daemonset-controller";

pub fn sync(shared: &Shared, decoded: &mut Caches) {
    let daemonsets = decoded.daemonsets.list(&shared.store, "DaemonSet", None);
    if daemonsets.is_empty() {
        return;
    }
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    let nodes: Vec<NodeView> = decoded
        .nodes
        .list(&shared.store, "Node", None)
        .iter()
        .map(|n| NodeView {
            name: typed::key(&n.metadata).1.to_string(),
            labels: typed::labels(&n.metadata).clone(),
            taints: n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default(),
            ready: crate::nodes::is_ready(n),
        })
        .collect();
    let (revisions, _) = shared.store.list("ControllerRevision", None);
    for ds in daemonsets.iter().filter(|d| !is_terminating(&d.metadata)) {
        sync_one(shared, ds, &nodes, &pods, &revisions);
    }
}

/// The template's generation, as the API server keeps it ([`prepare_for_write`]); the
/// generation for a DaemonSet stored before it did.
fn template_generation(ds: &Obj<DaemonSet>) -> Option<i64> {
    object::annotation(&ds.json, planner::TEMPLATE_GENERATION_ANNOTATION).and_then(|g| g.parse().ok()).or(ds.metadata.generation)
}

fn sync_one(shared: &Shared, ds: &Obj<DaemonSet>, nodes: &[NodeView], pods: &[Obj<Pod>], revisions: &[Value]) {
    let (ns, name) = typed::key(&ds.metadata);
    let spec = ds.spec.clone().unwrap_or_default();
    let template = &ds.json["spec"]["template"];
    let hash = naming::pod_template_hash(template, ds.status.as_ref().and_then(|s| s.collision_count));
    let generation = template_generation(ds);
    let now = now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let owned: Vec<&Obj<Pod>> = pods.iter().filter(|p| controller_uid(&p.metadata) == Some(uid(&ds.metadata))).collect();
    let history = sync_history(shared, ds, &hash, revisions);

    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    planner::add_daemon_tolerations(&mut pod_spec);
    let views: Vec<PodView> = owned
        .iter()
        .map(|p| {
            let labels = typed::labels(&p.metadata);
            PodView {
                name: typed::key(&p.metadata).1.to_string(),
                node: p.spec.as_ref().and_then(planner::target_node).unwrap_or_default().to_string(),
                hash: labels.get(planner::REVISION_HASH_LABEL).cloned().unwrap_or_default(),
                generation: labels.get(planner::TEMPLATE_GENERATION_LABEL).and_then(|g| g.parse().ok()),
                created: p.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
                terminating: is_terminating(&p.metadata),
                phase: match pod_phase(p) {
                    Some("Running") => Phase::Running,
                    Some("Succeeded") => Phase::Succeeded,
                    Some("Failed") => Phase::Failed,
                    _ => Phase::Pending,
                },
                ready: endpoints::pod_is_ready(p),
                available: pod_available(p, min_ready, now),
            }
        })
        .collect();
    let update_strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = update_strategy.rolling_update.as_ref();
    let strategy = Strategy::resolve(
        update_strategy.type_.as_deref(),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        rolling.and_then(|r| r.max_surge.as_ref()),
    );
    let inputs = planner::Inputs { spec: &pod_spec, nodes, pods: &views, hash: &hash, generation, strategy: &strategy };
    let plan = planner::plan(&inputs);
    let mut failure = None;
    for node in &plan.create {
        if let Err(e) = create_pod(shared, ds, &pod_spec, node, &hash, generation) {
            failure = Some(e);
            break;
        }
    }
    for victim in &plan.delete {
        if let Some(p) = owned.iter().find(|p| typed::key(&p.metadata).1 == victim) {
            // A pod of a node gone has no agent to stop it: removed at once, as the garbage
            // collector removes such pods.
            let node_gone = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !nodes.iter().any(|v| v.name == n));
            if node_gone {
                let _ = shared.store.delete(&key_of("Pod", &p.metadata));
            } else {
                delete_pod(shared, p);
            }
            record(shared, &ds.json, "Normal", "SuccessfulDelete", &format!("Deleted pod: {victim}"));
        }
    }
    if let Some(message) = &failure {
        // Once per DaemonSet and message (named by both): the create is retried every pass, and
        // kube's event correlator folds the repeats too.
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut event = emu_logic::events::new_event(
            &ds.json,
            emu_logic::events::WARNING,
            "FailedCreate",
            message,
            COMPONENT,
            "",
            &object::rfc3339(at.as_secs() as i64),
            at.as_nanos(),
        );
        let tag = naming::pod_template_hash(&json!([uid(&ds.metadata), message]), None);
        event["metadata"]["name"] = json!(format!("{name}.failedcreate-{tag}"));
        let _ = shared.store.create(event);
    }
    // The history no pod uses beyond revisionHistoryLimit, once the rollout is steady.
    if plan.is_empty() {
        let in_use: BTreeSet<String> = views.iter().map(|p| p.hash.clone()).collect();
        let current = format!("{name}-{hash}");
        for gone in planner::history_to_delete(&history, &current, &in_use, spec.revision_history_limit.unwrap_or(10)) {
            let _ = shared.store.delete(&key("ControllerRevision", ns, &gone));
        }
    }

    let s = planner::status(&inputs);
    let mut status = json!({
        "currentNumberScheduled": s.current, "numberMisscheduled": s.misscheduled,
        "desiredNumberScheduled": s.desired, "numberReady": s.ready,
        "observedGeneration": ds.metadata.generation,
        "updatedNumberScheduled": s.updated, "numberAvailable": s.available, "numberUnavailable": s.unavailable,
    });
    // Go's omitempty on these.
    for k in ["updatedNumberScheduled", "numberAvailable", "numberUnavailable"] {
        if status[k] == json!(0) {
            status.as_object_mut().map(|m| m.remove(k));
        }
    }
    if let Some(c) = ds.json["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    if ds.json["status"] != status {
        let mut d = (*ds.json).clone();
        d["status"] = status;
        update(shared, d);
    }
}

/// Keeps the DaemonSet's ControllerRevisions (`constructHistory`): the current template's,
/// created with the next revision or, when seen before (a rollback), moved to the next revision.
/// Returns every revision of the DaemonSet as (name, hash, revision).
fn sync_history(shared: &Shared, ds: &Obj<DaemonSet>, hash: &str, revisions: &[Value]) -> Vec<(String, String, i64)> {
    let (ns, name) = typed::key(&ds.metadata);
    let mine: Vec<&Value> = revisions
        .iter()
        .filter(|r| {
            object::namespace(r) == ns
                && r["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid(&ds.metadata) && o["controller"] == true))
        })
        .collect();
    let mut history: Vec<(String, String, i64)> = mine
        .iter()
        .map(|r| {
            let h = r["metadata"]["labels"][planner::REVISION_HASH_LABEL].as_str().unwrap_or_default().to_string();
            (object::name(r).to_string(), h, r["revision"].as_i64().unwrap_or(0))
        })
        .collect();
    let numbers: Vec<i64> = history.iter().map(|h| h.2).collect();
    let next = planner::next_revision(&numbers);
    let current_name = format!("{name}-{hash}");
    match mine.iter().find(|r| object::name(r) == current_name) {
        Some(r) => {
            let rev = r["revision"].as_i64().unwrap_or(0);
            if rev + 1 < next {
                let mut r = (*r).clone();
                r["revision"] = json!(next);
                update(shared, r);
                history.iter_mut().filter(|h| h.0 == current_name).for_each(|h| h.2 = next);
            }
        }
        None => {
            let mut template = ds.json["spec"]["template"].clone();
            template["$patch"] = json!("replace");
            let mut labels = ds.json["spec"]["template"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels[planner::REVISION_HASH_LABEL] = json!(hash);
            let revision = json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": { "name": current_name, "namespace": ns, "labels": labels,
                    "annotations": ds.json["metadata"]["annotations"].as_object().cloned().unwrap_or_default(),
                    "ownerReferences": owner_ref(&ds.metadata, "apps/v1", "DaemonSet") },
                "data": { "spec": { "template": template } },
                "revision": next,
            });
            match shared.store.create(revision) {
                Ok(_) => history.push((current_name, hash.to_string(), next)),
                Err(e) => tracing::debug!(error = %e, "creating controllerrevision"),
            }
        }
    }
    history
}

/// Creates the daemon pod of `node` (`syncNodes`, `CreatePods` with `NewPod`): the template with
/// the revision's labels, the daemon tolerations and the node affinity. Returns why it could not.
fn create_pod(
    shared: &Shared,
    ds: &Obj<DaemonSet>,
    spec: &typed::PodSpec,
    node: &str,
    hash: &str,
    generation: Option<i64>,
) -> Result<(), String> {
    let (ns, name) = typed::key(&ds.metadata);
    let template = &ds.json["spec"]["template"];
    let mut pinned = spec.clone();
    planner::pin_to_node(&mut pinned, node);
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[planner::REVISION_HASH_LABEL] = json!(hash);
    if let Some(g) = generation {
        labels[planner::TEMPLATE_GENERATION_LABEL] = json!(g.to_string());
    }
    let mut pod_spec = template["spec"].clone();
    pod_spec["tolerations"] = serde_json::to_value(&pinned.tolerations).unwrap_or_default();
    pod_spec["affinity"] = serde_json::to_value(&pinned.affinity).unwrap_or_default();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "generateName": format!("{name}-"), "namespace": ns, "labels": labels,
            "ownerReferences": owner_ref(&ds.metadata, "apps/v1", "DaemonSet") },
        "spec": pod_spec,
        "status": { "phase": "Pending", "qosClass": "BestEffort" },
    });
    if let Some(a) = template["metadata"].get("annotations") {
        pod["metadata"]["annotations"] = a.clone();
    }
    match create_admitted_pod(shared, pod, &format!("{name}-")) {
        Ok(pod_name) => {
            record(shared, &ds.json, "Normal", "SuccessfulCreate", &format!("Created pod: {pod_name}"));
            Ok(())
        }
        Err(PodCreateError::Refused(refused)) => Err(refused),
        Err(PodCreateError::Store(e)) => Err(format!("Error creating: {e}")),
    }
}

/// An Event of the DaemonSet, as the daemon controller's recorder writes it.
fn record(shared: &Shared, ds: &Value, type_: &str, reason: &str, message: &str) {
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let event =
        emu_logic::events::new_event(ds, type_, reason, message, COMPONENT, "", &object::rfc3339(at.as_secs() as i64), at.as_nanos());
    if let Err(e) = shared.store.create(event) {
        tracing::debug!(error = %e, "recording {reason}");
    }
}

/// kube-apiserver's DaemonSet strategy (`PrepareForCreate`, `PrepareForUpdate`): the template
/// generation, kept in annotation `deprecated.daemonset.template.generation` (apps/v1 has no
/// field for it), is 1 at creation and counts each change of the template; whatever the client
/// sent is replaced.
pub fn prepare_for_write(shared: &Shared, ds: &mut DaemonSet) {
    let (ns, name) = typed::key(&ds.metadata);
    let live = shared.store.get_shared(&key("DaemonSet", ns, name)).and_then(|v| typed::decode::<DaemonSet>(&v).ok());
    let generation = match live {
        None => 1,
        Some(old) => {
            let was = old
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(planner::TEMPLATE_GENERATION_ANNOTATION))
                .and_then(|g| g.parse::<i64>().ok())
                .unwrap_or(1);
            let template = |d: &DaemonSet| d.spec.as_ref().map(|s| s.template.clone());
            was + i64::from(template(&old) != template(ds))
        }
    };
    ds.metadata.annotations.get_or_insert_default().insert(planner::TEMPLATE_GENERATION_ANNOTATION.into(), generation.to_string());
}
