//! The StatefulSet controller, as kube-controller-manager's statefulset controller runs it. The
//! decisions are [`emu_logic::statefulset`]'s; this module keeps the set's ControllerRevisions
//! (`<set>-<hash>`, one per template seen, numbered), builds each pod from its revision's
//! template with its identity (name `<set>-<ordinal>`, `spec.hostname` = its name,
//! `spec.subdomain` = `serviceName`, so the headless Service gives each pod a DNS name), acts on
//! the plan and writes the status.

use crate::controllers::{delete_pod, is_terminating, key, owner_ref, pod_available, pod_phase, uid, update, Caches};
use crate::decoded::Obj;
use crate::state::Shared;
use emu_api::selector::Selector;
use emu_api::time::now;
use emu_api::typed::{self, Pod, StatefulSet};
use emu_api::{defaults, object};
use emu_logic::endpoints;
use emu_logic::scheduler::controller_uid;
use emu_logic::statefulset::{self as planner, Action, Inputs, PodView, Policy, RevisionChoice, RevisionView, Strategy, Which};
use serde_json::{json, Value};

const COMPONENT: &str = "statefulset-controller";

pub fn sync(shared: &Shared, decoded: &mut Caches) {
    let sets = decoded.statefulsets.list(&shared.store, "StatefulSet", None);
    if sets.is_empty() {
        return;
    }
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    let (revisions, _) = shared.store.list("ControllerRevision", None);
    for set in &sets {
        sync_one(shared, set, &pods, &revisions);
    }
}

/// The uid of the object's controller, from its JSON.
fn controller_of(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"].as_array()?.iter().find(|o| o["controller"] == true)?["uid"].as_str()
}

/// An object's labels, from its JSON.
fn labels_of(v: &Value) -> std::collections::BTreeMap<String, String> {
    v["metadata"]["labels"].as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

/// The set's selector; None when it selects nothing or everything (such a set adopts nothing).
fn selector(set: &Obj<StatefulSet>) -> Option<Selector> {
    let spec = set.spec.as_ref()?;
    Selector::from_typed(Some(&spec.selector)).ok().filter(|s| !s.is_empty())
}

/// `obj` with the set added to its owners as their controller (`AdoptOrphanRevisions`,
/// `ClaimPods`: what lost its owner to `delete --cascade=orphan` and matches the selector of a
/// set made again is taken back, not made anew). Answers whether the store took it.
fn adopt(shared: &Shared, set: &Obj<StatefulSet>, obj: &Value) -> bool {
    let mut v = obj.clone();
    let mut owners = v["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    owners.extend(owner_ref(&set.metadata, "apps/v1", "StatefulSet").as_array().cloned().unwrap_or_default());
    v["metadata"]["ownerReferences"] = json!(owners);
    shared.store.update(v).is_ok()
}

/// The set's ControllerRevisions, oldest first, orphans matching its selector adopted.
fn owned_revisions(shared: &Shared, set: &Obj<StatefulSet>, revisions: &[Value], adopting: bool) -> Vec<RevisionView> {
    let ns = typed::key(&set.metadata).0;
    let selector = selector(set).filter(|_| adopting);
    let mut owned: Vec<RevisionView> = revisions
        .iter()
        .filter(|r| object::namespace(r) == ns)
        .filter(|r| match controller_of(r) {
            Some(owner) => owner == uid(&set.metadata),
            None => selector.as_ref().is_some_and(|s| s.matches(&labels_of(r))) && adopt(shared, set, r),
        })
        .map(|r| RevisionView { name: object::name(r).to_string(), revision: r["revision"].as_i64().unwrap_or(0), data: r["data"].clone() })
        .collect();
    owned.sort_by(|a, b| (a.revision, &a.name).cmp(&(b.revision, &b.name)));
    owned
}

/// `getStatefulSetRevisions`: the update revision (created, or an older one renumbered) and the
/// collision count. None when the store refused the write (the next pass tries again).
fn update_revision(shared: &Shared, set: &Obj<StatefulSet>, revisions: &mut Vec<RevisionView>) -> Option<(String, i32)> {
    let (ns, name) = typed::key(&set.metadata);
    let data = planner::revision_data(&set.json["spec"]["template"]);
    let collision = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    match planner::choose_update_revision(name, revisions, &data, collision) {
        RevisionChoice::Latest(i) => Some((revisions[i].name.clone(), collision)),
        RevisionChoice::Renumber { index, revision } => {
            let k = key("ControllerRevision", ns, &revisions[index].name);
            let mut stored = shared.store.get(&k)?;
            stored["revision"] = json!(revision);
            shared.store.update(stored).ok()?;
            revisions[index].revision = revision;
            Some((revisions[index].name.clone(), collision))
        }
        RevisionChoice::Create { name: rev_name, hash, revision, collision_count } => {
            let mut labels = set.json["spec"]["template"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels[planner::HASH_LABEL] = json!(hash);
            let mut cr = json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": { "name": rev_name, "namespace": ns, "labels": labels,
                    "ownerReferences": owner_ref(&set.metadata, "apps/v1", "StatefulSet") },
                "data": data, "revision": revision,
            });
            // newRevision copies the set's annotations (kubectl's change-cause among them).
            if let Some(annotations) = set.json["metadata"].get("annotations").filter(|a| a.is_object()) {
                cr["metadata"]["annotations"] = annotations.clone();
            }
            match shared.store.create(cr) {
                Ok(_) => {}
                // The name is another's (CreateControllerRevision): the collision count moves on,
                // kept in the status, and the next pass hashes with it.
                Err(crate::store::StoreError::AlreadyExists { .. }) => {
                    let mut v = (*set.json).clone();
                    v["status"]["collisionCount"] = json!(collision_count + 1);
                    update(shared, v);
                    return None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, statefulset = name, "creating controllerrevision");
                    return None;
                }
            }
            revisions.push(RevisionView { name: rev_name.clone(), revision, data });
            Some((rev_name, collision_count))
        }
    }
}

fn sync_one(shared: &Shared, set: &Obj<StatefulSet>, pods: &[Obj<Pod>], revisions: &[Value]) {
    let (ns, name) = typed::key(&set.metadata);
    let spec = set.spec.clone().unwrap_or_default();
    let now = now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let deleting = is_terminating(&set.metadata);
    let mut revisions = owned_revisions(shared, set, revisions, !deleting);
    // A set being deleted makes no new revision: it only reports.
    let (update_rev, collision) = if deleting {
        match revisions.last() {
            Some(r) => (r.name.clone(), set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0)),
            None => return,
        }
    } else {
        match update_revision(shared, set, &mut revisions) {
            Some(r) => r,
            None => return,
        }
    };
    let stored_status = set.status.clone().unwrap_or_default();
    let current_rev = stored_status
        .current_revision
        .as_deref()
        .filter(|c| revisions.iter().any(|r| r.name == *c))
        .map_or(update_rev.clone(), str::to_string);

    let selector = selector(set).filter(|_| !deleting);
    let owned: Vec<&Obj<Pod>> = pods
        .iter()
        .filter(|p| typed::key(&p.metadata).0 == ns)
        .filter(|p| match controller_uid(&p.metadata) {
            Some(owner) => owner == uid(&set.metadata),
            None => {
                !is_terminating(&p.metadata)
                    && selector.as_ref().is_some_and(|s| s.matches(typed::labels(&p.metadata)))
                    && adopt(shared, set, &p.json)
            }
        })
        .collect();
    let service_name = spec.service_name.clone().unwrap_or_default();
    let views: Vec<PodView> = owned
        .iter()
        .filter_map(|p| {
            let pod_name = typed::key(&p.metadata).1;
            let ordinal = planner::ordinal_of(name, pod_name)?;
            let labels = typed::labels(&p.metadata);
            let running = pod_phase(p) == Some("Running");
            let ready = running && endpoints::pod_is_ready(p);
            Some(PodView {
                name: pod_name.to_string(),
                ordinal,
                revision: labels.get(planner::REVISION_LABEL).cloned().unwrap_or_default(),
                phase: pod_phase(p).unwrap_or_default().to_string(),
                terminating: is_terminating(&p.metadata),
                ready,
                available: ready && pod_available(p, min_ready, now),
                identity_ok: labels.get(planner::POD_NAME_LABEL).map(String::as_str) == Some(pod_name)
                    && labels.get(planner::POD_INDEX_LABEL) == Some(&ordinal.to_string()),
            })
        })
        .collect();
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let inputs = Inputs {
        set: name,
        replicas: spec.replicas.unwrap_or(1),
        start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        policy: Policy::parse(spec.pod_management_policy.as_deref()),
        strategy: Strategy::parse(strategy.and_then(|s| s.type_.as_deref()), rolling.and_then(|r| r.partition), rolling.is_some()),
        current_revision: &current_rev,
        update_revision: &update_rev,
        current_replicas: stored_status.current_replicas.unwrap_or(0),
        deleting,
        pods: &views,
    };
    let actions = planner::plan(&inputs);
    let mut done = Vec::new();
    for action in &actions {
        let ok = match action {
            Action::Create { ordinal, name: pod_name, revision } => {
                let (rev_name, data) = match revision {
                    Which::Current => (&current_rev, revisions.iter().find(|r| r.name == current_rev).map(|r| &r.data)),
                    Which::Update => (&update_rev, revisions.iter().find(|r| r.name == update_rev).map(|r| &r.data)),
                };
                let Some(data) = data else { continue };
                let template = planner::template_of(data);
                create_pod(shared, set, pod_name, *ordinal, &template, rev_name, &service_name)
            }
            Action::Delete { name: pod_name } => match owned.iter().find(|p| typed::key(&p.metadata).1 == pod_name) {
                Some(p) => {
                    // A pod that stopped for good is replaced, saying so first (processReplica).
                    match pod_phase(p) {
                        Some("Failed") => record_warning(
                            shared,
                            &set.json,
                            "RecreatingFailedPod",
                            &format!("StatefulSet {ns}/{name} is recreating failed Pod {pod_name}"),
                        ),
                        Some("Succeeded") => record_warning(
                            shared,
                            &set.json,
                            "RecreatingTerminatedPod",
                            &format!("StatefulSet {ns}/{name} is recreating terminated Pod {pod_name}"),
                        ),
                        _ => {}
                    }
                    delete_pod(shared, p);
                    record(shared, &set.json, "SuccessfulDelete", &format!("delete Pod {pod_name} in StatefulSet {name} successful"));
                    true
                }
                None => false,
            },
            Action::FixIdentity { name: pod_name } => match owned.iter().find(|p| typed::key(&p.metadata).1 == pod_name) {
                Some(p) => {
                    let mut json = (*p.json).clone();
                    let ordinal = planner::ordinal_of(name, pod_name).unwrap_or(0);
                    json["metadata"]["labels"][planner::POD_NAME_LABEL] = json!(pod_name);
                    json["metadata"]["labels"][planner::POD_INDEX_LABEL] = json!(ordinal.to_string());
                    shared.store.update(json).is_ok()
                }
                None => false,
            },
        };
        if ok {
            done.push(action.clone());
        }
    }

    // Revisions no pod, nor the status, refers to, beyond revisionHistoryLimit.
    if !deleting {
        let mut live: Vec<&str> = vec![current_rev.as_str(), update_rev.as_str()];
        live.extend(views.iter().map(|p| p.revision.as_str()));
        for gone in planner::history_to_delete(&revisions, &live, spec.revision_history_limit.unwrap_or(10)) {
            let _ = shared.store.delete(&key("ControllerRevision", ns, &gone));
        }
    }

    let s = planner::status(&inputs, &done);
    // StatefulSetStatus: replicas and availableReplicas always, the other counts when not 0.
    let mut status = json!({
        "observedGeneration": set.metadata.generation, "replicas": s.replicas, "availableReplicas": s.available,
        "currentRevision": s.current_revision, "updateRevision": s.update_revision, "collisionCount": collision,
    });
    for (k, n) in [("readyReplicas", s.ready), ("currentReplicas", s.current), ("updatedReplicas", s.updated)] {
        if n != 0 {
            status[k] = json!(n);
        }
    }
    if let Some(conditions) = set.json["status"].get("conditions") {
        status["conditions"] = conditions.clone();
    }
    if set.json["status"] != status {
        let mut v = (*set.json).clone();
        v["status"] = status;
        update(shared, v);
    }
}

/// `newStatefulSetPod` from a revision's template: the template's labels and annotations, the
/// identity (name, `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`,
/// hostname and subdomain) and the revision label; admitted like any pod the API creates.
/// Answers whether the pod was created.
fn create_pod(
    shared: &Shared,
    set: &Obj<StatefulSet>,
    pod_name: &str,
    ordinal: i32,
    template: &Value,
    revision: &str,
    service_name: &str,
) -> bool {
    let (ns, name) = typed::key(&set.metadata);
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[planner::POD_NAME_LABEL] = json!(pod_name);
    labels[planner::POD_INDEX_LABEL] = json!(ordinal.to_string());
    labels[planner::REVISION_LABEL] = json!(revision);
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": pod_name, "generateName": format!("{name}-"), "namespace": ns, "labels": labels,
            "ownerReferences": owner_ref(&set.metadata, "apps/v1", "StatefulSet") },
        "spec": template["spec"],
        "status": { "phase": "Pending", "qosClass": "BestEffort" },
    });
    if let Some(a) = template["metadata"].get("annotations") {
        pod["metadata"]["annotations"] = a.clone();
    }
    pod["spec"]["hostname"] = json!(pod_name);
    if !service_name.is_empty() {
        pod["spec"]["subdomain"] = json!(service_name);
    }
    defaults::apply_defaults(&mut pod);
    let refused = match crate::serviceaccounts::admit_pod(shared, &pod, &[]) {
        Ok(admitted) => match crate::api::pod_security_refusal(shared, &pod) {
            Some(refused) => Some(refused),
            None => {
                admitted.add_api_access(&mut pod);
                match shared.store.create(pod) {
                    Ok(_) => None,
                    // Its predecessor is still being removed: the next pass tries again.
                    Err(crate::store::StoreError::AlreadyExists { .. }) => return false,
                    Err(e) => Some(e.to_string()),
                }
            }
        },
        Err(refused) => Some(refused),
    };
    match refused {
        None => {
            record(shared, &set.json, "SuccessfulCreate", &format!("create Pod {pod_name} in StatefulSet {name} successful"));
            true
        }
        Some(e) => {
            tracing::debug!(error = %e, pod = pod_name, "creating statefulset pod");
            record_warning(shared, &set.json, "FailedCreate", &format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}"));
            false
        }
    }
}

fn record(shared: &Shared, set: &Value, reason: &str, message: &str) {
    event(shared, set, emu_logic::events::NORMAL, reason, message);
}

fn record_warning(shared: &Shared, set: &Value, reason: &str, message: &str) {
    event(shared, set, emu_logic::events::WARNING, reason, message);
}

/// The statefulset controller's Events (`recordPodEvent`), a repeat counted on the Event it
/// repeats as the recorder's correlator does (`describe` shows `(x2 over 10s)`).
fn event(shared: &Shared, set: &Value, event_type: &str, reason: &str, message: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ts = object::rfc3339(now.as_secs() as i64);
    let e = emu_logic::events::new_event(set, event_type, reason, message, COMPONENT, "", &ts, now.as_nanos());
    let earlier = shared.store.list_shared_prefixed("Event", object::namespace(set), &format!("{}.", object::name(set)));
    if let Some(same) = earlier.iter().find(|old| emu_logic::events::is_same_event(old, &e)) {
        let mut again = (**same).clone();
        emu_logic::events::repeat(&mut again, &ts);
        update(shared, again);
        return;
    }
    if let Err(err) = shared.store.create(e) {
        tracing::debug!(error = %err, "recording a statefulset event");
    }
}
