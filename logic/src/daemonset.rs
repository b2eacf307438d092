//! The DaemonSet controller's decisions, as kube-controller-manager makes them
//! (pkg/controller/daemon: `daemon_controller.go` `manage`, `podsShouldBeOnNode`,
//! `NodeShouldRunDaemonPod`, `updateDaemonSetStatus`; `update.go` `rollingUpdate`;
//! `util/daemonset_util.go`), as pure functions of the nodes and the DaemonSet's pods. The
//! controller gathers them, calls [`plan`] and [`status`], and writes what they return.

use crate::deployment::scaled;
use crate::scheduler::{self, UNSCHEDULABLE_TAINT};
use emu_api::typed::k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Taint};
use emu_api::typed::{IntOrString, PodSpec, Toleration};
use std::collections::{BTreeMap, BTreeSet};

/// The label of a daemon pod (and of a ControllerRevision) naming its template's revision.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The deprecated label with the DaemonSet's template generation the pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation kube-apiserver keeps the template generation in (apps/v1 has no field for it).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): it stays on a node
/// that goes NotReady or unreachable, and goes to nodes under pressure and cordoned ones.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let mut add = |key: &str, effect: &str| {
        let t = Toleration { key: Some(key.into()), operator: Some("Exists".into()), effect: Some(effect.into()), ..Default::default() };
        if !tolerations.iter().any(|o| o.key == t.key && o.effect == t.effect) {
            tolerations.push(t);
        }
    };
    add(NOT_READY_TAINT, "NoExecute");
    add(UNREACHABLE_TAINT, "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add(UNSCHEDULABLE_TAINT, "NoSchedule");
    if spec.host_network == Some(true) {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
}

/// Pins a daemon pod to its node the way kube ≥ 1.12 does
/// (`ReplaceDaemonSetPodNodeNameNodeAffinity`): the required node affinity's terms become one
/// `matchFields metadata.name In [node]` (other label expressions of each term kept), and the
/// scheduler binds it.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let field = NodeSelectorRequirement { key: "metadata.name".into(), operator: "In".into(), values: Some(vec![node.into()]) };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    let required = node_affinity.required_during_scheduling_ignored_during_execution.get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required.node_selector_terms.push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields = Some(vec![field.clone()]);
    }
}

/// The node a daemon pod is for: its `spec.nodeName`, or before it is bound the node its
/// affinity names (`util.GetTargetNodeName`).
pub fn target_node(spec: &PodSpec) -> Option<&str> {
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let required = spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find_map(|f| (f.key == "metadata.name" && f.operator == "In").then(|| f.values.as_ref()?.first().map(String::as_str)).flatten())
}

/// A node as the planner sees it.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub ready: bool,
}

/// Whether a daemon pod should run on the node, and whether one already there may stay
/// (`NodeShouldRunDaemonPod`). `spec` is the template's with [`add_daemon_tolerations`].
/// A node not Ready counts with the `unreachable:NoSchedule` taint kube's node lifecycle
/// controller gives it: no new pod, the one there stays.
pub fn should_run(spec: &PodSpec, node: &NodeView) -> (bool, bool) {
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != node.name)
        || !scheduler::node_matches(spec, &node.name, &node.labels)
    {
        return (false, false);
    }
    let mut taints = node.taints.clone();
    if !node.ready {
        taints.push(Taint { key: UNREACHABLE_TAINT.into(), effect: "NoSchedule".into(), ..Default::default() });
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if scheduler::untolerated_taint(&taints, tolerations, |t| t.effect == "NoSchedule" || t.effect == "NoExecute").is_some() {
        let no_execute = scheduler::untolerated_taint(&taints, tolerations, |t| t.effect == "NoExecute").is_some();
        return (false, !no_execute);
    }
    (true, true)
}

/// A pod's phase as far as the planner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// One pod of the DaemonSet (its controller is the DaemonSet).
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub name: String,
    /// [`target_node`]: bound or not.
    pub node: String,
    /// Its [`REVISION_HASH_LABEL`].
    pub hash: String,
    /// Its [`TEMPLATE_GENERATION_LABEL`].
    pub generation: Option<i64>,
    pub created: i64,
    pub terminating: bool,
    pub phase: Phase,
    pub ready: bool,
    /// Ready for `minReadySeconds`.
    pub available: bool,
}

impl PodView {
    /// `util.IsPodUpdated`: the template's hash, or (older pods) its generation.
    pub fn updated(&self, hash: &str, generation: Option<i64>) -> bool {
        (!hash.is_empty() && self.hash == hash) || (generation.is_some() && self.generation == generation)
    }
}

/// `spec.updateStrategy`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    OnDelete,
    RollingUpdate { max_unavailable: IntOrString, max_surge: IntOrString },
}

impl Strategy {
    pub fn resolve(type_: Option<&str>, max_unavailable: Option<&IntOrString>, max_surge: Option<&IntOrString>) -> Strategy {
        if type_ == Some("OnDelete") {
            return Strategy::OnDelete;
        }
        Strategy::RollingUpdate {
            max_unavailable: max_unavailable.cloned().unwrap_or(IntOrString::Int(1)),
            max_surge: max_surge.cloned().unwrap_or(IntOrString::Int(0)),
        }
    }
}

/// What one sync does: create a pod on these nodes, delete these pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub create: Vec<String>,
    pub delete: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// The inputs of a sync.
pub struct Inputs<'a> {
    /// The template's spec with [`add_daemon_tolerations`].
    pub spec: &'a PodSpec,
    pub nodes: &'a [NodeView],
    pub pods: &'a [PodView],
    /// The current template's revision hash, and its generation.
    pub hash: &'a str,
    pub generation: Option<i64>,
    pub strategy: &'a Strategy,
}

/// Older first, then running before pending (`podByCreationTimestampAndPhase`).
fn oldest_first(pods: &mut [&PodView]) {
    pods.sort_by_key(|p| (p.created, p.phase != Phase::Running, p.name.clone()));
}

/// The pods of each node, terminal ones being deleted left out (`getNodesToDaemonPods`).
fn by_node(pods: &[PodView]) -> BTreeMap<&str, Vec<&PodView>> {
    let mut map: BTreeMap<&str, Vec<&PodView>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !(p.terminating && matches!(p.phase, Phase::Succeeded | Phase::Failed))) {
        map.entry(p.node.as_str()).or_default().push(p);
    }
    map
}

/// One sync: `manage` (a pod for each node that should run one and has none; failed, excess and
/// misplaced pods deleted), then, when that changes nothing, one step of the rolling update.
pub fn plan(i: &Inputs) -> Plan {
    let plan = manage(i);
    if !plan.is_empty() {
        // kube waits for its expectations (the creates and deletes just made) before updating.
        return plan;
    }
    match i.strategy {
        Strategy::OnDelete => plan,
        Strategy::RollingUpdate { max_unavailable, max_surge } => rolling_update(i, max_unavailable, max_surge),
    }
}

fn surging(strategy: &Strategy, desired: i32) -> bool {
    matches!(strategy, Strategy::RollingUpdate { max_surge, .. } if scaled(max_surge, desired, true).unwrap_or(0) > 0)
}

/// `manage` with `podsShouldBeOnNode` for every node.
fn manage(i: &Inputs) -> Plan {
    let mut plan = Plan::default();
    let on = by_node(i.pods);
    let desired = i.nodes.iter().filter(|n| should_run(i.spec, n).0).count() as i32;
    let surge = surging(i.strategy, desired);
    let known: BTreeSet<&str> = i.nodes.iter().map(|n| n.name.as_str()).collect();
    for node in i.nodes {
        let (run, keep) = should_run(i.spec, node);
        let pods: Vec<&PodView> = on.get(node.name.as_str()).cloned().unwrap_or_default();
        if run && pods.is_empty() {
            plan.create.push(node.name.clone());
        } else if keep {
            let mut running: Vec<&PodView> = Vec::new();
            for p in pods.iter().filter(|p| !p.terminating) {
                match p.phase {
                    // A failed or completed daemon pod is deleted (and replaced on the next sync).
                    Phase::Failed | Phase::Succeeded => plan.delete.push(p.name.clone()),
                    _ => running.push(p),
                }
            }
            if running.is_empty() && run && surge && !pods.is_empty() && pods.iter().all(|p| p.terminating) {
                // Surging: a node keeps at least one pod that is not going away.
                plan.create.push(node.name.clone());
            }
            if running.len() <= 1 {
                continue;
            }
            oldest_first(&mut running);
            if !surge {
                // More than one: all but the oldest go.
                plan.delete.extend(running[1..].iter().map(|p| p.name.clone()));
                continue;
            }
            // Surging: the oldest new and the oldest old pod may both stay while the new one is
            // not ready and the old one is; every other goes.
            let (mut oldest_new, mut oldest_old) = (None, None);
            for p in running {
                let slot = if p.updated(i.hash, i.generation) { &mut oldest_new } else { &mut oldest_old };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    plan.delete.push(p.name.clone());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !old.ready || new.ready {
                    plan.delete.push(old.name.clone());
                }
            }
        } else {
            plan.delete.extend(pods.iter().filter(|p| !p.terminating).map(|p| p.name.clone()));
        }
    }
    // Pods for nodes that no longer exist (the garbage collector removes them too).
    for (node, pods) in &on {
        if !known.contains(node) {
            plan.delete.extend(pods.iter().filter(|p| !p.terminating).map(|p| p.name.clone()));
        }
    }
    plan
}

/// `findUpdatedPodsOnNode`: the node's new and old pod (not terminating), or None when it has
/// more than one of either (the manage loop cleans it up first).
fn updated_and_old<'a>(pods: &[&'a PodView], hash: &str, generation: Option<i64>) -> Option<(Option<&'a PodView>, Option<&'a PodView>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !p.terminating) {
        let slot = if p.updated(hash, generation) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// The pod counts the rolling update works with (`updatedDesiredNodeCounts`): maxUnavailable and
/// maxSurge against the nodes that should run a pod (percentages rounded up), 1 unavailable when
/// both come to 0.
pub fn fenceposts(max_unavailable: &IntOrString, max_surge: &IntOrString, desired: i32) -> (i32, i32) {
    let unavailable = scaled(max_unavailable, desired, true).unwrap_or(0);
    let surge = scaled(max_surge, desired, true).unwrap_or(0);
    if desired > 0 && unavailable == 0 && surge == 0 {
        return (1, 0);
    }
    (unavailable, surge)
}

/// One step of `rollingUpdate`: without surge, old pods deleted while at most maxUnavailable
/// nodes lack an available pod (unavailable old pods first, freely); with surge, new pods made
/// beside old ones on up to maxSurge nodes, old ones deleted once the new one is available.
fn rolling_update(i: &Inputs, max_unavailable: &IntOrString, max_surge: &IntOrString) -> Plan {
    let mut on = by_node(i.pods);
    let mut desired = 0;
    for node in i.nodes.iter().filter(|n| should_run(i.spec, n).0) {
        desired += 1;
        on.entry(node.name.as_str()).or_default();
    }
    let (max_unavailable, max_surge) = fenceposts(max_unavailable, max_surge, desired);
    let mut plan = Plan::default();
    if max_surge == 0 {
        let (mut unavailable, mut replace, mut candidates) = (0, Vec::new(), Vec::new());
        for pods in on.values() {
            match updated_and_old(pods, i.hash, i.generation) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => unavailable += i32::from(!new.available),
                Some((None, Some(old))) if !old.available => replace.push(old.name.clone()),
                Some((None, Some(_))) if unavailable >= max_unavailable => {}
                Some((None, Some(old))) => candidates.push(old.name.clone()),
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        plan.delete = replace;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }
    let (mut surge, mut allowed, mut candidates) = (0, Vec::new(), Vec::new());
    for (node, pods) in &on {
        let Some((new, old)) = updated_and_old(pods, i.hash, i.generation) else {
            surge += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !old.available => {
                let fits = i.nodes.iter().find(|n| n.name == *node).is_some_and(|n| should_run(i.spec, n).0);
                if fits {
                    allowed.push(node.to_string());
                } else {
                    plan.delete.push(old.name.clone());
                }
            }
            (None, Some(_)) if surge >= max_surge => {}
            (None, Some(_)) => candidates.push(node.to_string()),
            (Some(new), Some(_)) if !new.available => surge += 1,
            (Some(_), Some(old)) => plan.delete.push(old.name.clone()),
        }
    }
    let room = (max_surge - surge).clamp(0, candidates.len() as i32) as usize;
    plan.create = allowed;
    plan.create.extend(candidates.into_iter().take(room));
    plan
}

/// `status` of a DaemonSet (`updateDaemonSetStatus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

/// The counts of each node that should run a pod judged by its oldest pod.
pub fn status(i: &Inputs) -> Status {
    let on = by_node(i.pods);
    let mut s = Status::default();
    for node in i.nodes {
        let pods = on.get(node.name.as_str());
        let scheduled = pods.is_some_and(|p| !p.is_empty());
        if !should_run(i.spec, node).0 {
            s.misscheduled += i32::from(scheduled);
            continue;
        }
        s.desired += 1;
        let Some(pods) = pods.filter(|_| scheduled) else { continue };
        s.current += 1;
        let mut pods = pods.clone();
        oldest_first(&mut pods);
        let pod = pods[0];
        if pod.ready {
            s.ready += 1;
            s.available += i32::from(pod.available);
        }
        s.updated += i32::from(pod.updated(i.hash, i.generation));
    }
    s.unavailable = s.desired - s.available;
    s
}

/// The revision a new ControllerRevision takes: one past the highest (`nextRevision`).
pub fn next_revision(revisions: &[i64]) -> i64 {
    revisions.iter().max().map_or(1, |m| m + 1)
}

/// The old ControllerRevisions to delete beyond `limit` (`cleanupHistory`): those of no pod
/// (by hash) and not the current one, oldest revision first.
pub fn history_to_delete(revisions: &[(String, String, i64)], current: &str, in_use: &BTreeSet<String>, limit: i32) -> Vec<String> {
    let mut old: Vec<&(String, String, i64)> =
        revisions.iter().filter(|(name, hash, _)| name != current && !in_use.contains(hash)).collect();
    let excess = old.len().saturating_sub(limit.max(0) as usize);
    old.sort_by_key(|(_, _, rev)| *rev);
    old.into_iter().take(excess).map(|(name, _, _)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeView {
        NodeView { name: name.into(), ready: true, ..Default::default() }
    }

    fn pod(name: &str, node: &str, hash: &str, created: i64) -> PodView {
        PodView {
            name: name.into(),
            node: node.into(),
            hash: hash.into(),
            created,
            phase: Phase::Running,
            ready: true,
            available: true,
            ..Default::default()
        }
    }

    fn daemon_spec() -> PodSpec {
        let mut spec = PodSpec::default();
        add_daemon_tolerations(&mut spec);
        spec
    }

    fn rolling(unavailable: i32, surge: i32) -> Strategy {
        Strategy::RollingUpdate { max_unavailable: IntOrString::Int(unavailable), max_surge: IntOrString::Int(surge) }
    }

    fn run(spec: &PodSpec, nodes: &[NodeView], pods: &[PodView], strategy: &Strategy) -> Plan {
        plan(&Inputs { spec, nodes, pods, hash: "new", generation: Some(2), strategy })
    }

    #[test]
    fn one_pod_per_node_added_and_removed_with_nodes() {
        let spec = daemon_spec();
        let s = rolling(1, 0);
        let nodes = [node("a"), node("b"), node("c")];
        assert_eq!(run(&spec, &nodes, &[], &s).create, ["a", "b", "c"]);
        // A node added gains one; a pod of a node gone is deleted.
        let pods = [pod("x-1", "a", "new", 1), pod("x-2", "b", "new", 1), pod("x-9", "gone", "new", 1)];
        assert_eq!(run(&spec, &nodes, &pods, &s), Plan { create: vec!["c".into()], delete: vec!["x-9".into()] });
        // Two on a node: the younger goes.
        let pods = [pod("x-1", "a", "new", 1), pod("x-2", "a", "new", 5), pod("x-3", "b", "new", 1), pod("x-4", "c", "new", 1)];
        assert_eq!(run(&spec, &nodes, &pods, &s).delete, ["x-2"]);
        // A failed pod is deleted, and a node whose pod is terminating waits for it to go.
        let mut failed = pod("x-1", "a", "new", 1);
        failed.phase = Phase::Failed;
        let mut leaving = pod("x-3", "b", "new", 1);
        leaving.terminating = true;
        assert_eq!(
            run(&spec, &nodes, &[failed, leaving, pod("x-4", "c", "new", 1)], &s),
            Plan { create: vec![], delete: vec!["x-1".into()] }
        );
    }

    #[test]
    fn which_nodes_should_run_a_pod() {
        let spec = daemon_spec();
        let mut cordoned = node("cordoned");
        cordoned.taints.push(Taint { key: UNSCHEDULABLE_TAINT.into(), effect: "NoSchedule".into(), ..Default::default() });
        assert_eq!(should_run(&spec, &cordoned), (true, true));
        let mut tainted = node("tainted");
        tainted.taints.push(Taint { key: "dedicated".into(), value: Some("db".into()), effect: "NoSchedule".into(), ..Default::default() });
        assert_eq!(should_run(&spec, &tainted), (false, true), "NoSchedule: no new pod, one there stays");
        tainted.taints[0].effect = "NoExecute".into();
        assert_eq!(should_run(&spec, &tainted), (false, false), "NoExecute: its pod goes");
        let mut down = node("down");
        down.ready = false;
        down.taints.push(Taint { key: UNREACHABLE_TAINT.into(), effect: "NoExecute".into(), ..Default::default() });
        assert_eq!(should_run(&spec, &down), (false, true), "unreachable: tolerated, the pod stays");
        let mut picky = spec.clone();
        picky.node_selector = Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())]));
        let mut ssd = node("ssd");
        ssd.labels.insert("disk".into(), "ssd".into());
        assert_eq!((should_run(&picky, &ssd), should_run(&picky, &node("hdd"))), ((true, true), (false, false)));
        // A tainted node's pod is deleted only when the taint is NoExecute.
        let nodes = [node("a"), tainted.clone()];
        let pods = [pod("x-1", "a", "new", 1), pod("x-2", "tainted", "new", 1)];
        assert_eq!(run(&spec, &nodes, &pods, &rolling(1, 0)).delete, ["x-2"]);
        let st = status(&Inputs { spec: &spec, nodes: &nodes, pods: &pods, hash: "new", generation: None, strategy: &rolling(1, 0) });
        assert_eq!((st.desired, st.current, st.misscheduled), (1, 1, 1));
    }

    #[test]
    fn rolling_update_keeps_max_unavailable() {
        let spec = daemon_spec();
        let nodes = [node("a"), node("b"), node("c")];
        let old = |n: &str| pod(&format!("old-{n}"), n, "old", 1);
        // Step 1: one old pod goes.
        let pods = [old("a"), old("b"), old("c")];
        assert_eq!(run(&spec, &nodes, &pods, &rolling(1, 0)).delete, ["old-a"]);
        assert_eq!(run(&spec, &nodes, &pods, &rolling(2, 0)).delete, ["old-a", "old-b"]);
        // While it terminates, the node counts unavailable: nothing more.
        let mut leaving = old("a");
        leaving.terminating = true;
        assert!(run(&spec, &nodes, &[leaving, old("b"), old("c")], &rolling(1, 0)).is_empty());
        // The new pod not available yet: still nothing; available: the next old pod goes.
        let mut fresh = pod("new-a", "a", "new", 5);
        fresh.available = false;
        assert!(run(&spec, &nodes, &[fresh.clone(), old("b"), old("c")], &rolling(1, 0)).is_empty());
        fresh.available = true;
        assert_eq!(run(&spec, &nodes, &[fresh, old("b"), old("c")], &rolling(1, 0)).delete, ["old-b"]);
        // An unavailable old pod is replaced whatever the budget.
        let mut broken = old("c");
        broken.available = false;
        assert_eq!(run(&spec, &nodes, &[old("a"), old("b"), broken], &rolling(1, 0)).delete, ["old-c", "old-a"]);
        // OnDelete: nothing.
        assert!(run(&spec, &nodes, &[old("a"), old("b"), old("c")], &Strategy::OnDelete).is_empty());
        // Percentages round up; 0 and 0 means 1.
        assert_eq!(fenceposts(&IntOrString::String("10%".into()), &IntOrString::Int(0), 3), (1, 0));
        assert_eq!(fenceposts(&IntOrString::Int(0), &IntOrString::Int(0), 3), (1, 0));
    }

    #[test]
    fn rolling_update_with_surge() {
        let spec = daemon_spec();
        let nodes = [node("a"), node("b")];
        let old = |n: &str| pod(&format!("old-{n}"), n, "old", 1);
        // A new pod beside an old one on maxSurge nodes.
        assert_eq!(run(&spec, &nodes, &[old("a"), old("b")], &rolling(0, 1)).create, ["a"]);
        // The new one not ready: both stay, no more surge.
        let mut fresh = pod("new-a", "a", "new", 5);
        (fresh.ready, fresh.available) = (false, false);
        assert!(run(&spec, &nodes, &[old("a"), fresh.clone(), old("b")], &rolling(0, 1)).is_empty());
        // Ready and available: the old one goes.
        (fresh.ready, fresh.available) = (true, true);
        let p = run(&spec, &nodes, &[old("a"), fresh, old("b")], &rolling(0, 1));
        assert_eq!(p.delete, ["old-a"]);
    }

    #[test]
    fn status_counts_and_rollout_lines() {
        let spec = daemon_spec();
        let nodes = [node("a"), node("b"), node("c")];
        let mut unready = pod("new-c", "c", "new", 1);
        (unready.ready, unready.available) = (false, false);
        let pods = [pod("old-a", "a", "old", 1), pod("new-b", "b", "new", 1), unready];
        let s = status(&Inputs { spec: &spec, nodes: &nodes, pods: &pods, hash: "new", generation: Some(2), strategy: &rolling(1, 0) });
        assert_eq!(s, Status { desired: 3, current: 3, misscheduled: 0, ready: 2, updated: 2, available: 2, unavailable: 1 });
    }

    #[test]
    fn pods_are_pinned_to_their_node() {
        let mut spec = daemon_spec();
        pin_to_node(&mut spec, "n2");
        assert_eq!(target_node(&spec), Some("n2"));
        assert!(scheduler::node_matches(&spec, "n2", &BTreeMap::new()));
        assert!(!scheduler::node_matches(&spec, "n1", &BTreeMap::new()));
        spec.node_name = Some("n2".into());
        assert_eq!(target_node(&spec), Some("n2"));
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_first() {
        let revs: Vec<(String, String, i64)> = (1..=5).map(|i| (format!("x-{i}"), format!("h{i}"), i)).collect();
        let in_use = BTreeSet::from(["h1".to_string()]);
        assert_eq!(history_to_delete(&revs, "x-5", &in_use, 2), ["x-2"]);
        assert_eq!(history_to_delete(&revs, "x-5", &in_use, 10), Vec::<String>::new());
        assert_eq!(next_revision(&[1, 4, 2]), 5);
    }
}
