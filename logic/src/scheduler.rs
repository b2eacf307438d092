//! Pod placement: filter the nodes a pod may run on (readiness, cordon, `nodeSelector`, required
//! node affinity, taints), then spread pods like the default scheduler's spreading does (by owner,
//! then by Service), then balance totals.

use emu_api::selector::Selector;
use emu_api::typed::k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint};
use emu_api::typed::{self, ObjectMeta, Pod, PodSpec, Toleration};
use std::borrow::Borrow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct NodeCandidate {
    pub name: String,
    pub ready: bool,
    /// False when cordoned (`spec.unschedulable`).
    pub schedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`: a pod goes only where it tolerates every NoSchedule and NoExecute one.
    pub taints: Vec<Taint>,
}

/// The taint of a cordoned node (kube's node lifecycle controller sets it from
/// `spec.unschedulable`); a pod that tolerates it may go to a cordoned node, as DaemonSet pods do.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Picks a node for `pod`, or None when no node fits.
///
/// - A pod with `spec.nodeName` is already bound: that node is returned if it exists, whatever
///   its state (Kubernetes bypasses the scheduler for such pods).
/// - Otherwise candidates must be ready, schedulable (or the pod tolerates
///   [`UNSCHEDULABLE_TAINT`]), carry every `spec.nodeSelector` label, match the required node
///   affinity (a DaemonSet's pods name their node there, in `matchFields`), and have no NoSchedule
///   or NoExecute taint the pod does not tolerate (kube-scheduler's NodeUnschedulable,
///   NodeAffinity and TaintToleration filters).
/// - Among them the lowest (pods of the same controller owner, pods of the same Services in the
///   pod's namespace, all pods) wins, then the node name, so the choice is deterministic.
///
/// `bound_pods` are the pods already assigned to nodes (`spec.nodeName` set);
/// `service_selectors` are the (namespace, selector) pairs of all Services.
pub fn schedule(
    pod: &Pod,
    nodes: &[NodeCandidate],
    bound_pods: &[impl Borrow<Pod>],
    service_selectors: &[(String, BTreeMap<String, String>)],
) -> Option<String> {
    if let Some(name) = bound_node(pod) {
        return nodes.iter().find(|n| n.name == name).map(|n| n.name.clone());
    }
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let cordon = Taint { key: UNSCHEDULABLE_TAINT.into(), effect: "NoSchedule".into(), ..Default::default() };
    let tolerates_cordon = tolerations.iter().any(|t| tolerates(t, &cordon));
    let owner = controller_uid(&pod.metadata);
    let namespace = namespace_of(pod);
    let pod_labels = typed::labels(&pod.metadata);
    // The Services this pod would back; its siblings are the pods they also select.
    let services: Vec<Selector> = service_selectors
        .iter()
        .filter(|(ns, sel)| ns == namespace && !sel.is_empty())
        .map(|(_, sel)| Selector::from_map(sel))
        .filter(|s| s.matches(pod_labels))
        .collect();

    nodes
        .iter()
        .filter(|n| n.ready && (n.schedulable || tolerates_cordon))
        .filter(|n| node_matches(spec, &n.name, &n.labels))
        .filter(|n| untolerated_taint(&n.taints, tolerations, |t| t.effect == "NoSchedule" || t.effect == "NoExecute").is_none())
        .min_by_key(|n| {
            let on_node: Vec<&Pod> = bound_pods.iter().map(Borrow::borrow).filter(|p| spec_node_name(p) == Some(n.name.as_str())).collect();
            let same_owner = owner.map_or(0, |uid| on_node.iter().filter(|p| controller_uid(&p.metadata) == Some(uid)).count());
            let same_service = on_node
                .iter()
                .filter(|p| namespace_of(p) == namespace && !services.is_empty())
                .filter(|p| services.iter().any(|s| s.matches(typed::labels(&p.metadata))))
                .count();
            (same_owner, same_service, on_node.len(), n.name.clone())
        })
        .map(|n| n.name.clone())
}

/// Whether a node fits the pod's `nodeSelector` and its required node affinity
/// (`requiredDuringSchedulingIgnoredDuringExecution`: any one term, each term all of its
/// expressions on labels and fields; kube's `nodeaffinity.GetRequiredNodeAffinity`).
pub fn node_matches(spec: &PodSpec, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let selector_fits = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    selector_fits && required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node_name, labels)))
}

/// A term with neither expressions nor fields matches no node (kube's `nodeSelectorTerms`).
fn term_matches(term: &NodeSelectorTerm, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let node_fields = BTreeMap::from([("metadata.name".to_string(), node_name.to_string())]);
    exprs.iter().all(|r| requirement_matches(r, labels)) && fields.iter().all(|r| requirement_matches(r, &node_fields))
}

fn requirement_matches(r: &NodeSelectorRequirement, values: &BTreeMap<String, String>) -> bool {
    let value = values.get(&r.key);
    let listed = r.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    let compare = |ord: std::cmp::Ordering| match (value.and_then(|v| number(v)), listed.first().and_then(|l| number(l))) {
        (Some(v), Some(l)) if listed.len() == 1 => v.cmp(&l) == ord,
        _ => false,
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| listed.contains(v)),
        "NotIn" => value.is_none_or(|v| !listed.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// Whether a toleration tolerates a taint (kube's `Toleration.ToleratesTaint`): same effect (or
/// none given), same key (or none given, with `Exists`), and `Exists` or an equal value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    let key = t.key.as_deref().unwrap_or_default();
    if (!effect.is_empty() && effect != taint.effect) || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        _ => false,
    }
}

/// The first taint that `filter` selects and no toleration tolerates
/// (`FindMatchingUntoleratedTaint`).
pub fn untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration], filter: impl Fn(&Taint) -> bool) -> Option<&'a Taint> {
    taints.iter().filter(|t| filter(t)).find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The node the pod is bound to (`spec.nodeName`, not empty), if any.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    spec_node_name(pod).filter(|n| !n.is_empty())
}

/// The pod's IP (`status.podIP`, not empty), once it has one.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

fn spec_node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn namespace_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// The UID of an object's owner reference with `controller: true` (the ReplicaSet of a pod, the
/// Deployment of a ReplicaSet).
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references.as_deref()?.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{json, Value};

    const NO_PODS: &[Pod] = &[];

    fn node(name: &str) -> NodeCandidate {
        NodeCandidate { name: name.into(), ready: true, schedulable: true, labels: BTreeMap::new(), taints: vec![] }
    }

    fn pod(name: &str, owner: &str, labels: Value, node: Option<&str>) -> Pod {
        typed::decode(&pod_json(name, owner, labels, node)).unwrap()
    }

    fn pod_json(name: &str, owner: &str, labels: Value, node: Option<&str>) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": true}]},
            "spec": {"nodeName": node}})
    }

    #[test]
    fn two_replicas_spread_over_two_nodes() {
        let nodes = [node("worker-a"), node("worker-b")];
        let first = pod("my-nginx-1", "rs-uid", json!({"run": "my-nginx"}), None);
        let a = schedule(&first, &nodes, NO_PODS, &[]).unwrap();
        assert_eq!(a, "worker-a"); // tie broken by name
        let bound = [pod("my-nginx-1", "rs-uid", json!({"run": "my-nginx"}), Some(&a))];
        let second = pod("my-nginx-2", "rs-uid", json!({"run": "my-nginx"}), None);
        assert_eq!(schedule(&second, &nodes, &bound, &[]).unwrap(), "worker-b");
    }

    #[test]
    fn owner_spreading_beats_total_load() {
        let nodes = [node("a"), node("b")];
        // b is busier overall, but a already runs a sibling.
        let bound =
            [pod("x-1", "x", json!({}), Some("a")), pod("other-1", "o", json!({}), Some("b")), pod("other-2", "o", json!({}), Some("b"))];
        assert_eq!(schedule(&pod("x-2", "x", json!({}), None), &nodes, &bound, &[]).unwrap(), "b");
        // An unrelated pod goes where there are fewer pods.
        assert_eq!(schedule(&pod("y-1", "y", json!({}), None), &nodes, &bound, &[]).unwrap(), "a");
    }

    #[test]
    fn service_spreading_across_owners() {
        let nodes = [node("a"), node("b")];
        let svc = vec![("default".to_string(), BTreeMap::from([("app".to_string(), "web".to_string())]))];
        let bound = [
            pod("web-v1", "v1", json!({"app": "web"}), Some("a")),
            pod("z", "z", json!({}), Some("b")),
            pod("z2", "z", json!({}), Some("b")),
        ];
        // A pod of a new owner that backs the same Service avoids node a.
        assert_eq!(schedule(&pod("web-v2", "v2", json!({"app": "web"}), None), &nodes, &bound, &svc).unwrap(), "b");
        // The same Service in another namespace does not count.
        let other_ns = vec![("prod".to_string(), svc[0].1.clone())];
        assert_eq!(schedule(&pod("web-v2", "v2", json!({"app": "web"}), None), &nodes, &bound, &other_ns).unwrap(), "a");
    }

    #[test]
    fn filters() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        nodes[0].ready = false;
        nodes[1].schedulable = false;
        nodes[2].labels.insert("disk".into(), "ssd".into());
        let p = pod("p", "o", json!({}), None);
        assert_eq!(schedule(&p, &nodes, NO_PODS, &[]).unwrap(), "c");
        let picky = |disk: &str| {
            let mut p = pod_json("p", "o", json!({}), None);
            p["spec"]["nodeSelector"] = json!({"disk": disk});
            typed::decode::<Pod>(&p).unwrap()
        };
        assert_eq!(schedule(&picky("hdd"), &nodes, NO_PODS, &[]), None);
        assert_eq!(schedule(&picky("ssd"), &nodes, NO_PODS, &[]).unwrap(), "c");
        // Bound pods keep their node, even a NotReady one; unknown nodes give None.
        assert_eq!(schedule(&pod("p", "o", json!({}), Some("a")), &nodes, NO_PODS, &[]).unwrap(), "a");
        assert_eq!(schedule(&pod("p", "o", json!({}), Some("zz")), &nodes, NO_PODS, &[]), None);
        assert_eq!(schedule(&p, &[], NO_PODS, &[]), None);
    }

    #[test]
    fn node_affinity_and_taints() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        nodes[1].labels.insert("zone".into(), "z1".into());
        nodes[2].taints.push(Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
        let with = |spec: Value| {
            let mut p = pod_json("p", "o", json!({}), None);
            p["spec"] = spec;
            typed::decode::<Pod>(&p).unwrap()
        };
        // matchFields on the node's name (what a DaemonSet's pods carry) picks exactly that node.
        let pinned = |node: &str| {
            with(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}}))
        };
        assert_eq!(schedule(&pinned("b"), &nodes, NO_PODS, &[]).unwrap(), "b");
        // A tainted node takes only pods that tolerate its taint.
        assert_eq!(schedule(&pinned("c"), &nodes, NO_PODS, &[]), None);
        let mut tolerant = pinned("c");
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("gpu".into()),
            ..Default::default()
        }]);
        assert_eq!(schedule(&tolerant, &nodes, NO_PODS, &[]).unwrap(), "c");
        // Label expressions: terms are ORed, expressions ANDed.
        let zone = with(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}}}));
        assert_eq!(schedule(&zone, &nodes, NO_PODS, &[]).unwrap(), "b");
        let no_zone = with(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]}}}}));
        assert_eq!(schedule(&no_zone, &nodes, NO_PODS, &[]).unwrap(), "a");
        // A cordoned node takes pods that tolerate node.kubernetes.io/unschedulable.
        nodes[0].schedulable = false;
        assert_eq!(schedule(&pinned("a"), &nodes, NO_PODS, &[]), None);
        let mut daemon = pinned("a");
        daemon.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(UNSCHEDULABLE_TAINT.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(schedule(&daemon, &nodes, NO_PODS, &[]).unwrap(), "a");
    }
}
