//! The StatefulSet controller's decisions, as kube-controller-manager makes them
//! (pkg/controller/statefulset: `stateful_set_control.go`'s `updateStatefulSet`,
//! `stateful_set_utils.go`, and controller/history for ControllerRevisions), as pure functions
//! of the set, its revisions and its pods. The controller gathers [`PodView`]s, calls
//! [`choose_update_revision`], [`plan`] and [`status`], and writes what they return.
//!
//! A StatefulSet's pods have stable names, `<set>-<ordinal>`: a missing ordinal is created
//! again under the same name. With `podManagementPolicy: OrderedReady` (the default) one step
//! is taken at a time: each pod is created only once every lower ordinal is Running and Ready,
//! and scale-down removes the highest ordinal first, waiting for it to be gone. `Parallel`
//! creates and deletes at once. A template change makes a new ControllerRevision (the update
//! revision); `RollingUpdate` replaces pods from the highest ordinal down to `partition`, one
//! at a time, each waiting for the one before to be Ready; `OnDelete` replaces only the pods
//! the user deletes.

use emu_api::naming;
use serde_json::{json, Value};

/// The label naming each pod (what a per-pod Service can select).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying each pod's ordinal (`PodIndexLabel`, on since Kubernetes 1.28).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label carrying the name of the ControllerRevision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label carrying a ControllerRevision's hash (`ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// `spec.podManagementPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    OrderedReady,
    Parallel,
}

impl Policy {
    pub fn parse(value: Option<&str>) -> Policy {
        match value {
            Some("Parallel") => Policy::Parallel,
            _ => Policy::OrderedReady,
        }
    }
}

/// `spec.updateStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `partition`: None when the strategy has no `rollingUpdate` (defaults always give one).
    RollingUpdate {
        partition: Option<i32>,
    },
    OnDelete,
}

impl Strategy {
    pub fn parse(type_: Option<&str>, partition: Option<i32>, has_rolling_update: bool) -> Strategy {
        match type_ {
            Some("OnDelete") => Strategy::OnDelete,
            _ => Strategy::RollingUpdate { partition: has_rolling_update.then_some(partition.unwrap_or(0)) },
        }
    }
}

/// `getPodName`: `<set>-<ordinal>`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// `getParentNameAndOrdinal`, for the set named `set`: the ordinal of a pod named
/// `<set>-<ordinal>`, None for any other name.
pub fn ordinal_of(set: &str, pod_name: &str) -> Option<i32> {
    let digits = pod_name.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One pod of the set as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodView {
    pub name: String,
    pub ordinal: i32,
    /// Its `controller-revision-hash` label.
    pub revision: String,
    /// `status.phase`.
    pub phase: String,
    pub terminating: bool,
    /// Running and Ready (`isRunningAndReady`).
    pub ready: bool,
    /// Running and Ready for `minReadySeconds` (`isRunningAndAvailable`).
    pub available: bool,
    /// Its name, ordinal and identity labels agree with the set (`identityMatches`).
    pub identity_ok: bool,
}

impl PodView {
    /// `isHealthy`: Running, Ready and not being deleted.
    pub fn healthy(&self) -> bool {
        self.ready && !self.terminating
    }

    /// `isFailed || isSucceeded`: a pod that stopped for good, to be replaced.
    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Failed" | "Succeeded")
    }
}

/// Which revision a pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Current,
    Update,
}

/// One step of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        ordinal: i32,
        name: String,
        revision: Which,
    },
    Delete {
        name: String,
    },
    /// Set the pod's identity labels again (`UpdateStatefulPod`).
    FixIdentity {
        name: String,
    },
}

/// What one sync decides from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub set: &'a str,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.ordinals.start`.
    pub start: i32,
    pub policy: Policy,
    pub strategy: Strategy,
    pub current_revision: &'a str,
    pub update_revision: &'a str,
    /// `status.currentReplicas` as stored (where pods without a partition come from the current
    /// revision).
    pub current_replicas: i32,
    /// The set has a deletionTimestamp: nothing but its status is touched.
    pub deleting: bool,
    /// The pods the set owns whose names carry an ordinal of it.
    pub pods: &'a [PodView],
}

/// `newVersionedStatefulSetPod`: a pod recreated below the partition (or below
/// `currentReplicas` without a `rollingUpdate`) comes back at the current revision; any other at
/// the update revision.
fn versioned(i: &Inputs, ordinal: i32) -> Which {
    let k = ordinal - i.start;
    match i.strategy {
        Strategy::RollingUpdate { partition: None } if k < i.current_replicas => Which::Current,
        Strategy::RollingUpdate { partition: Some(p) } if k < p => Which::Current,
        _ => Which::Update,
    }
}

/// `updateStatefulSet`'s decisions: create missing ordinals (replacing finished pods), delete
/// those beyond `replicas` from the highest down, then roll out the update revision. In
/// OrderedReady mode the plan stops at the first step that has to wait; in Parallel mode scaling
/// does not wait, but a rolling update still goes one pod at a time.
pub fn plan(i: &Inputs) -> Vec<Action> {
    let mut actions = Vec::new();
    if i.deleting {
        return actions;
    }
    let monotonic = i.policy == Policy::OrderedReady;
    let end = i.start + i.replicas.max(0);
    let slots: Vec<Option<&PodView>> = (i.start..end).map(|o| i.pods.iter().find(|p| p.ordinal == o)).collect();
    let mut condemned: Vec<&PodView> = i.pods.iter().filter(|p| p.ordinal < i.start || p.ordinal >= end).collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
    // The lowest unhealthy replica (a missing one counts), or else the highest unhealthy
    // condemned pod: the one scale-down may remove without waiting for it.
    let first_unhealthy = slots
        .iter()
        .enumerate()
        .find(|(_, s)| !s.is_some_and(|p| p.healthy()))
        .map(|(k, _)| i.start + k as i32)
        .or_else(|| condemned.iter().find(|p| !p.healthy()).map(|p| p.ordinal));

    for (k, slot) in slots.iter().enumerate() {
        let ordinal = i.start + k as i32;
        let Some(p) = slot else {
            actions.push(Action::Create { ordinal, name: pod_name(i.set, ordinal), revision: versioned(i, ordinal) });
            if monotonic {
                return actions;
            }
            continue;
        };
        if p.finished() {
            // Deleted now, created again once it is gone.
            if !p.terminating {
                actions.push(Action::Delete { name: p.name.clone() });
            }
            if monotonic {
                return actions;
            }
            continue;
        }
        if monotonic && (p.terminating || !p.ready || !p.available) {
            return actions;
        }
        if !p.identity_ok {
            actions.push(Action::FixIdentity { name: p.name.clone() });
        }
    }

    for p in &condemned {
        if p.terminating {
            if monotonic {
                return actions;
            }
            continue;
        }
        if monotonic && (!p.ready || !p.available) && first_unhealthy != Some(p.ordinal) {
            return actions;
        }
        actions.push(Action::Delete { name: p.name.clone() });
        if monotonic {
            return actions;
        }
    }

    let Strategy::RollingUpdate { partition } = i.strategy else { return actions };
    // From the highest ordinal down to the partition: delete the first pod not at the update
    // revision (it is created again at it), and wait for each to be healthy before going on.
    let min = partition.unwrap_or(0).max(0) as usize;
    for k in (min..slots.len()).rev() {
        let Some(p) = slots[k] else { return actions };
        if p.revision != i.update_revision && !p.terminating {
            actions.push(Action::Delete { name: p.name.clone() });
            return actions;
        }
        if !p.healthy() {
            return actions;
        }
    }
    actions
}

/// The set's `status` counts and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
    pub current_revision: String,
    pub update_revision: String,
}

/// `computeReplicaStatus` over the pods and those `actions` create, then
/// `completeRollingUpdate`: once a rolling update has every pod updated and ready, the update
/// revision becomes the current one.
pub fn status(i: &Inputs, actions: &[Action]) -> Status {
    let mut s = Status { current_revision: i.current_revision.into(), update_revision: i.update_revision.into(), ..Default::default() };
    let count_revision = |s: &mut Status, revision: &str| {
        if revision == i.current_revision {
            s.current += 1;
        }
        if revision == i.update_revision {
            s.updated += 1;
        }
    };
    for p in i.pods {
        s.replicas += 1;
        if p.ready {
            s.ready += 1;
            if p.available {
                s.available += 1;
            }
        }
        if !p.terminating {
            count_revision(&mut s, &p.revision);
        }
    }
    for a in actions {
        if let Action::Create { revision, .. } = a {
            s.replicas += 1;
            let name = match revision {
                Which::Current => i.current_revision,
                Which::Update => i.update_revision,
            };
            count_revision(&mut s, name);
        }
    }
    if matches!(i.strategy, Strategy::RollingUpdate { .. }) && s.updated == s.replicas && s.ready == s.replicas {
        s.current = s.updated;
        s.current_revision = s.update_revision.clone();
    }
    s
}

/// One ControllerRevision of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionView {
    pub name: String,
    pub revision: i64,
    /// Its `data`: the patch that gives a set this revision's template.
    pub data: Value,
}

/// `getPatch`: a revision's data, the set's template as a strategic-merge patch that replaces
/// the template whole.
pub fn revision_data(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": template } })
}

/// The template a revision's data gives (`ApplyRevision`).
pub fn template_of(data: &Value) -> Value {
    let mut template = data["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    template
}

/// `HashControllerRevision`: FNV-32a of the data (and of the collision count once there was a
/// collision), in the API server's safe alphabet.
pub fn revision_hash(data: &Value, collision_count: i32) -> String {
    naming::pod_template_hash(data, (collision_count != 0).then_some(collision_count))
}

/// What a sync does about the update revision (`getStatefulSetRevisions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionChoice {
    /// The newest revision already holds the template.
    Latest(usize),
    /// An older revision holds it (a rollback): it takes the next number.
    Renumber { index: usize, revision: i64 },
    /// A new revision, named `<set>-<hash>`, with a collision count bumped past any name that
    /// an unequal revision already has.
    Create { name: String, hash: String, revision: i64, collision_count: i32 },
}

/// The update revision for a template. `revisions` sorted by number, oldest first.
pub fn choose_update_revision(set: &str, revisions: &[RevisionView], data: &Value, collision_count: i32) -> RevisionChoice {
    let next = revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    if let Some(index) = revisions.iter().rposition(|r| &r.data == data) {
        return if index + 1 == revisions.len() {
            RevisionChoice::Latest(index)
        } else {
            RevisionChoice::Renumber { index, revision: next }
        };
    }
    let mut collision_count = collision_count;
    loop {
        let hash = revision_hash(data, collision_count);
        let name = format!("{set}-{hash}");
        if !revisions.iter().any(|r| r.name == name) {
            return RevisionChoice::Create { name, hash, revision: next, collision_count };
        }
        collision_count += 1;
    }
}

/// `truncateHistory`: the revisions to delete so that at most `limit` remain besides the live
/// ones (the current, the update, and any a pod was made from), oldest first.
pub fn history_to_delete(revisions: &[RevisionView], live: &[&str], limit: i32) -> Vec<String> {
    let history: Vec<&RevisionView> = revisions.iter().filter(|r| !live.contains(&r.name.as_str())).collect();
    let excess = history.len().saturating_sub(limit.max(0) as usize);
    history.iter().take(excess).map(|r| r.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: i32, revision: &str, ready: bool) -> PodView {
        PodView {
            name: pod_name("web", ordinal),
            ordinal,
            revision: revision.into(),
            phase: if ready { "Running" } else { "Pending" }.into(),
            terminating: false,
            ready,
            available: ready,
            identity_ok: true,
        }
    }

    fn inputs<'a>(replicas: i32, policy: Policy, pods: &'a [PodView]) -> Inputs<'a> {
        Inputs {
            set: "web",
            replicas,
            start: 0,
            policy,
            strategy: Strategy::RollingUpdate { partition: Some(0) },
            current_revision: "web-a",
            update_revision: "web-a",
            current_replicas: 0,
            deleting: false,
            pods,
        }
    }

    fn created(ordinal: i32, revision: Which) -> Action {
        Action::Create { ordinal, name: pod_name("web", ordinal), revision }
    }

    fn deleted(ordinal: i32) -> Action {
        Action::Delete { name: pod_name("web", ordinal) }
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(pod_name("web", 2), "web-2");
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "web-x1"), None);
        assert_eq!(ordinal_of("web", "webs-1"), None);
        assert_eq!(ordinal_of("web-1", "web-1-0"), Some(0));
    }

    #[test]
    fn ordered_ready_starts_one_pod_at_a_time() {
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &[])), vec![created(0, Which::Update)]);
        // web-0 exists but is not Ready: nothing more.
        let pods = [pod(0, "web-a", false)];
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &pods)), vec![]);
        // Ready: web-1 is next.
        let pods = [pod(0, "web-a", true)];
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &pods)), vec![created(1, Which::Update)]);
        // Ready but not yet available (minReadySeconds): wait.
        let mut waiting = pod(0, "web-a", true);
        waiting.available = false;
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &[waiting])), vec![]);
        // A deleted web-1 comes back under its name once web-0 is Ready.
        let pods = [pod(0, "web-a", true), pod(2, "web-a", true)];
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &pods)), vec![created(1, Which::Update)]);
        // A terminating web-1 is waited for.
        let mut gone = pod(1, "web-a", true);
        gone.terminating = true;
        let pods = [pod(0, "web-a", true), gone, pod(2, "web-a", true)];
        assert_eq!(plan(&inputs(3, Policy::OrderedReady, &pods)), vec![]);
    }

    #[test]
    fn parallel_creates_and_deletes_at_once() {
        assert_eq!(
            plan(&inputs(3, Policy::Parallel, &[])),
            vec![created(0, Which::Update), created(1, Which::Update), created(2, Which::Update)]
        );
        let pods = [pod(0, "web-a", false), pod(1, "web-a", true), pod(2, "web-a", false), pod(3, "web-a", true)];
        assert_eq!(plan(&inputs(1, Policy::Parallel, &pods)), vec![deleted(3), deleted(2), deleted(1)]);
    }

    #[test]
    fn ordered_scale_down_removes_the_highest_ordinal_first_and_waits() {
        let pods: Vec<PodView> = (0..4).map(|o| pod(o, "web-a", true)).collect();
        assert_eq!(plan(&inputs(2, Policy::OrderedReady, &pods)), vec![deleted(3)]);
        // web-3 terminating: wait for it before web-2.
        let mut pods = pods;
        pods[3].terminating = true;
        assert_eq!(plan(&inputs(2, Policy::OrderedReady, &pods)), vec![]);
        // An unready replica below blocks scale-down.
        let pods = [pod(0, "web-a", false), pod(1, "web-a", true), pod(2, "web-a", true)];
        assert_eq!(plan(&inputs(2, Policy::OrderedReady, &pods)), vec![]);
        // The first unhealthy pod may go without waiting for it to be ready.
        let pods = [pod(0, "web-a", true), pod(1, "web-a", true), pod(2, "web-a", false)];
        assert_eq!(plan(&inputs(2, Policy::OrderedReady, &pods)), vec![deleted(2)]);
    }

    #[test]
    fn finished_pods_are_replaced() {
        let mut failed = pod(0, "web-a", false);
        failed.phase = "Failed".into();
        assert_eq!(plan(&inputs(1, Policy::OrderedReady, &[failed.clone()])), vec![deleted(0)]);
        failed.terminating = true;
        assert_eq!(plan(&inputs(1, Policy::OrderedReady, &[failed])), vec![]);
    }

    #[test]
    fn rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
        let mut i = inputs(3, Policy::OrderedReady, &[]);
        i.update_revision = "web-b";
        let pods: Vec<PodView> = (0..3).map(|o| pod(o, "web-a", true)).collect();
        i.pods = &pods;
        assert_eq!(plan(&i), vec![deleted(2)]);
        // web-2 back at the new revision but not ready: wait.
        let pods = [pod(0, "web-a", true), pod(1, "web-a", true), pod(2, "web-b", false)];
        i.pods = &pods;
        assert_eq!(plan(&i), vec![]);
        let pods = [pod(0, "web-a", true), pod(1, "web-a", true), pod(2, "web-b", true)];
        i.pods = &pods;
        assert_eq!(plan(&i), vec![deleted(1)]);
        // With partition 2, ordinals below 2 keep the current revision, even recreated.
        i.strategy = Strategy::RollingUpdate { partition: Some(2) };
        assert_eq!(plan(&i), vec![]);
        let pods = [pod(0, "web-a", true), pod(2, "web-b", true)];
        i.pods = &pods;
        assert_eq!(plan(&i), vec![created(1, Which::Current)]);
        // OnDelete: nothing is replaced until deleted, and comes back at the update revision.
        i.strategy = Strategy::OnDelete;
        assert_eq!(plan(&i), vec![created(1, Which::Update)]);
        let pods: Vec<PodView> = (0..3).map(|o| pod(o, "web-a", true)).collect();
        i.pods = &pods;
        assert_eq!(plan(&i), vec![]);
    }

    #[test]
    fn a_set_being_deleted_only_reports() {
        let mut i = inputs(3, Policy::Parallel, &[]);
        i.deleting = true;
        assert_eq!(plan(&i), vec![]);
    }

    #[test]
    fn start_ordinal_shifts_names() {
        let mut i = inputs(2, Policy::Parallel, &[]);
        i.start = 5;
        assert_eq!(plan(&i), vec![created(5, Which::Update), created(6, Which::Update)]);
    }

    #[test]
    fn status_counts_and_completes_the_rollout() {
        let mut i = inputs(3, Policy::OrderedReady, &[]);
        i.update_revision = "web-b";
        let pods = [pod(0, "web-a", true), pod(1, "web-b", true), pod(2, "web-b", false)];
        i.pods = &pods;
        let s = status(&i, &[]);
        assert_eq!((s.replicas, s.ready, s.available, s.current, s.updated), (3, 2, 2, 1, 2));
        assert_eq!(s.current_revision, "web-a");
        let pods = [pod(0, "web-b", true), pod(1, "web-b", true), pod(2, "web-b", true)];
        i.pods = &pods;
        let s = status(&i, &[]);
        assert_eq!((s.current, s.updated, s.current_revision.as_str()), (3, 3, "web-b"));
        // OnDelete never completes by itself.
        i.strategy = Strategy::OnDelete;
        assert_eq!(status(&i, &[]).current_revision, "web-a");
        // Pods created in this sync count.
        let i = inputs(3, Policy::OrderedReady, &[]);
        let s = status(&i, &[created(0, Which::Update)]);
        assert_eq!((s.replicas, s.ready, s.current, s.updated), (1, 0, 1, 1));
    }

    #[test]
    fn revisions_are_found_renumbered_or_created() {
        let t1 = json!({"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}});
        let t2 = json!({"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}});
        let d1 = revision_data(&t1);
        assert_eq!(d1["spec"]["template"]["$patch"], "replace");
        assert_eq!(template_of(&d1), t1);
        let RevisionChoice::Create { name, revision: 1, collision_count: 0, hash } = choose_update_revision("web", &[], &d1, 0) else {
            panic!("a first revision is created")
        };
        assert_eq!(name, format!("web-{hash}"));
        let r1 = RevisionView { name: name.clone(), revision: 1, data: d1.clone() };
        assert_eq!(choose_update_revision("web", std::slice::from_ref(&r1), &d1, 0), RevisionChoice::Latest(0));
        let d2 = revision_data(&t2);
        let RevisionChoice::Create { name: name2, revision: 2, .. } = choose_update_revision("web", std::slice::from_ref(&r1), &d2, 0)
        else {
            panic!("a changed template makes a second revision")
        };
        assert_ne!(name, name2);
        let r2 = RevisionView { name: name2, revision: 2, data: d2 };
        // Back to the first template: the first revision takes number 3.
        assert_eq!(choose_update_revision("web", &[r1.clone(), r2.clone()], &d1, 0), RevisionChoice::Renumber { index: 0, revision: 3 });
        // A name taken by a revision with other data: the collision count moves on.
        let squatter = RevisionView { name: format!("web-{}", revision_hash(&d1, 0)), revision: 1, data: json!({}) };
        let RevisionChoice::Create { collision_count: 1, name, .. } = choose_update_revision("web", &[squatter], &d1, 0) else {
            panic!("a collision is counted")
        };
        assert_eq!(name, format!("web-{}", revision_hash(&d1, 1)));
    }

    #[test]
    fn history_keeps_live_revisions_and_the_limit() {
        let revs: Vec<RevisionView> = (1..=5).map(|n| RevisionView { name: format!("web-{n}"), revision: n, data: json!({}) }).collect();
        assert_eq!(history_to_delete(&revs, &["web-5", "web-1"], 2), vec!["web-2".to_string()]);
        assert_eq!(history_to_delete(&revs, &["web-5"], 10), Vec::<String>::new());
        assert_eq!(history_to_delete(&revs, &["web-5"], 0), vec!["web-1", "web-2", "web-3", "web-4"]);
    }
}
