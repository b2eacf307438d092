//! What the node agents record of the Faults they apply, and what the commands that wait for them
//! read: each agent's finalizer and its entry of `status.appliedOn`, a fault's progress, and the
//! lines of `emu fault list`.

use emu_api::fault::{nodes_affected, FaultSpec, API_VERSION, KIND};
use emu_api::object;
use serde_json::{json, Value};

/// What the finalizer of a node's agent starts with. The agent puts `emu.dev/agent-<node>` on a
/// Fault before it applies it, and takes it off once it has reverted it: a deleted Fault stays
/// (Terminating, as Kubernetes keeps an object with finalizers) until every agent that applied it
/// has undone it, so `emu fault clear` can wait for that.
const FINALIZER_PREFIX: &str = "emu.dev/agent-";

/// The finalizer of `node`'s agent.
pub fn finalizer(node: &str) -> String {
    format!("{FINALIZER_PREFIX}{node}")
}

fn finalizers(fault: &Value) -> Vec<&str> {
    object::at(fault, &["metadata", "finalizers"]).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

/// The nodes whose agents hold the fault: they have applied it (or are about to) and must revert
/// it before a deletion completes.
pub fn holders(fault: &Value) -> Vec<String> {
    finalizers(fault).into_iter().filter_map(|f| f.strip_prefix(FINALIZER_PREFIX)).map(str::to_string).collect()
}

/// The fault with `node`'s finalizer on (`held`) or off, for a write back; None when it already is.
pub fn with_finalizer(fault: &Value, node: &str, held: bool) -> Option<Value> {
    let mine = finalizer(node);
    let list = finalizers(fault);
    if list.contains(&mine.as_str()) == held {
        return None;
    }
    let mut list: Vec<String> = list.into_iter().filter(|f| *f != mine).map(str::to_string).collect();
    if held {
        list.push(mine);
    }
    let mut out = fault.clone();
    object::metadata_mut(&mut out).insert("finalizers".into(), json!(list));
    Some(out)
}

/// One entry of a Fault's `status.appliedOn`: the node's agent has the fault's rules in place,
/// since `since` (when this agent process applied them: a restarted agent applies them again),
/// for the spec of `observedGeneration`. Each entry is written by its node's agent only.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedOn {
    pub node: String,
    pub since: String,
    pub observed_generation: i64,
}

/// The entries of `status.appliedOn`.
pub fn applied_on(fault: &Value) -> Vec<AppliedOn> {
    let entries = fault["status"]["appliedOn"].as_array().into_iter().flatten();
    entries
        .filter_map(|e| {
            Some(AppliedOn {
                node: e["node"].as_str()?.to_string(),
                since: e["since"].as_str().unwrap_or_default().to_string(),
                observed_generation: e["observedGeneration"].as_i64().unwrap_or(0),
            })
        })
        .collect()
}

fn generation(fault: &Value) -> i64 {
    object::at(fault, &["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(1)
}

/// The nodes where the fault's current spec is in effect.
pub fn in_effect_on(fault: &Value) -> Vec<String> {
    let current = generation(fault);
    applied_on(fault).into_iter().filter(|e| e.observed_generation == current).map(|e| e.node).collect()
}

/// The status-only object that sets `node`'s entry of `status.appliedOn` (removes it: None), for
/// an update of the status at the fault's resourceVersion; None when nothing changes.
pub fn with_applied(fault: &Value, node: &str, entry: Option<&AppliedOn>) -> Option<Value> {
    let mut entries = applied_on(fault);
    let current = entries.iter().find(|e| e.node == node);
    if current == entry {
        return None;
    }
    entries.retain(|e| e.node != node);
    entries.extend(entry.cloned());
    entries.sort_by(|x, y| x.node.cmp(&y.node));
    let list: Vec<Value> =
        entries.iter().map(|e| json!({"node": e.node, "since": e.since, "observedGeneration": e.observed_generation})).collect();
    let mut status = fault.get("status").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    status["appliedOn"] = json!(list);
    let meta = json!({"name": object::name(fault), "uid": object::uid(fault),
        "resourceVersion": object::str_at(fault, &["metadata", "resourceVersion"]).unwrap_or("")});
    Some(json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "status": status}))
}

/// What a node's agent keeps on one Fault after a pass: its `status.appliedOn` entry and its
/// finalizer.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub entry: Option<AppliedOn>,
    pub hold: bool,
}

/// The agent's record on `fault` after a pass. `wanted`: the fault concerns the node and is not
/// being deleted; `since`: when this agent applied its rules, if they are in place now;
/// `reverted`: the pass left nothing in place that no fault wants (no step failed). A fault that
/// is wanted keeps the finalizer (put on before applying) and has an entry while in effect; one
/// that is not loses both once reverted, so that its deletion can complete.
pub fn record_after_pass(fault: &Value, node: &str, wanted: bool, since: Option<&str>, reverted: bool) -> Record {
    let held = holders(fault).iter().any(|n| n == node);
    if wanted {
        let entry = since.map(|s| AppliedOn { node: node.to_string(), since: s.to_string(), observed_generation: generation(fault) });
        return Record { entry, hold: held };
    }
    if reverted {
        return Record { entry: None, hold: false };
    }
    Record { entry: applied_on(fault).into_iter().find(|e| e.node == node), hold: held }
}

/// The nodes that are stopped (`emu node stop`): their agents are frozen or dead, so nothing
/// waits for them; each applies or reverts what changed when it is started again.
pub fn stopped_nodes(faults: &[Value]) -> Vec<String> {
    faults.iter().filter_map(|f| f["spec"]["nodeStop"]["node"].as_str()).map(str::to_string).collect()
}

/// Where a fault stands: the nodes it is in effect on, and the nodes whose agents have yet to
/// apply it or, once it is being deleted, to revert it.
#[derive(Debug, PartialEq)]
pub struct Progress {
    pub in_effect: Vec<String>,
    pub waiting_for: Vec<String>,
    pub terminating: bool,
}

/// `affected`: [`nodes_affected`] by the fault; `stopped`: [`stopped_nodes`] (not waited for).
pub fn progress(fault: &Value, affected: &[String], stopped: &[String]) -> Progress {
    let terminating = object::is_terminating(fault);
    let in_effect = in_effect_on(fault);
    let waiting_for = if terminating {
        holders(fault).into_iter().filter(|n| !stopped.contains(n)).collect()
    } else {
        affected.iter().filter(|n| !in_effect.contains(n) && !stopped.contains(n)).cloned().collect()
    };
    Progress { in_effect, waiting_for, terminating }
}

/// A fault's STATUS in `emu fault list`: Terminating (deleted, some agent has yet to revert it),
/// Applying (some agent has yet to apply it), Pending (in effect nowhere, nothing to wait for: its
/// pod is not on a node, or its nodes are stopped), Applied.
pub fn status_word(p: &Progress) -> &'static str {
    if p.terminating {
        "Terminating"
    } else if !p.waiting_for.is_empty() {
        "Applying"
    } else if p.in_effect.is_empty() {
        "Pending"
    } else {
        "Applied"
    }
}

/// Whether `node`'s agent has caught up with `fault` (of `spec`) after the node was started: it
/// reverted it if it is being deleted, and applied it if it concerns the node (`pod_node` as for
/// [`nodes_affected`]), after `after` when given (a restarted agent applies everything again; its
/// entries are newer than its start).
pub fn caught_up(
    fault: &Value,
    spec: &FaultSpec,
    node: &str,
    pod_node: impl Fn(&str, &str) -> Option<String>,
    after: Option<&str>,
) -> bool {
    if object::is_terminating(fault) {
        return !holders(fault).iter().any(|n| n == node);
    }
    if !nodes_affected(spec, pod_node).iter().any(|n| n == node) {
        return true;
    }
    let current = generation(fault);
    let newer = |since: &str| after.is_none_or(|a| emu_api::time::parse_rfc3339_nanos(since) >= emu_api::time::parse_rfc3339_nanos(a));
    applied_on(fault).iter().any(|e| e.node == node && e.observed_generation == current && newer(&e.since))
}

/// A timestamp with microseconds (Kubernetes' MicroTime: `2026-11-22T04:00:00.123456Z`), for
/// `since`: a restarted agent's entries must sort after its start, within the same second too.
pub fn micro_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = emu_api::time::rfc3339(d.as_secs() as i64);
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), d.subsec_micros())
}

/// One line of `emu fault list`: TYPE, TARGET, DETAILS.
pub fn describe(spec: &FaultSpec) -> (String, String, String) {
    match spec {
        FaultSpec::Partition { a, b, one_way } => {
            let arrow = if *one_way { "->" } else { "<->" };
            (
                "partition".into(),
                format!("{} {arrow} {}", a.join(","), b.join(",")),
                if *one_way { "one way".into() } else { "both ways".into() },
            )
        }
        FaultSpec::LinkDown { node } => ("link-down".into(), format!("node/{node}"), "eth0 down".into()),
        FaultSpec::NodeStop { node, kill } => {
            let how = if *kill { "agent and pods killed, links down" } else { "agent and pods frozen, links down" };
            ("node-stop".into(), format!("node/{node}"), how.into())
        }
        FaultSpec::Netem { target, netem } => ("netem".into(), target.to_string(), netem.args().join(" ")),
    }
}

/// The name `emu fault` gives a new fault of `kind` (`partition-1`, `delay-2`, …): the lowest
/// free number.
pub fn next_name(kind: &str, existing: &[Value]) -> String {
    (1..).map(|i| format!("{kind}-{i}")).find(|n| !existing.iter().any(|f| object::name(f) == n)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::fault::to_object;

    fn fault(finalizers: &[&str], applied: Value, generation: i64) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "partition-1", "uid": "u1", "resourceVersion": "7", "generation": generation, "finalizers": finalizers},
            "spec": {}, "status": {"appliedOn": applied}})
    }

    #[test]
    fn each_agent_puts_its_own_finalizer_on_and_takes_it_off() {
        let f = fault(&["example.com/other"], json!([]), 1);
        let held = with_finalizer(&f, "node-1", true).unwrap();
        assert_eq!(held["metadata"]["finalizers"], json!(["example.com/other", "emu.dev/agent-node-1"]));
        assert_eq!(held["metadata"]["resourceVersion"], "7", "written at the version read");
        assert_eq!(with_finalizer(&held, "node-1", true), None, "on already");
        assert_eq!(holders(&held), ["node-1"]);
        let off = with_finalizer(&held, "node-1", false).unwrap();
        assert_eq!(off["metadata"]["finalizers"], json!(["example.com/other"]));
        assert_eq!(with_finalizer(&off, "node-1", false), None);
    }

    #[test]
    fn status_entries_are_per_node_and_for_the_current_generation() {
        let entry =
            |node: &str, gen: i64| AppliedOn { node: node.into(), since: "2026-01-01T00:00:00.000001Z".into(), observed_generation: gen };
        let f = fault(&[], json!([]), 2);
        let one = with_applied(&f, "node-2", Some(&entry("node-2", 2))).unwrap();
        assert_eq!(
            one,
            json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "partition-1", "uid": "u1", "resourceVersion": "7"},
                "status": {"appliedOn": [{"node": "node-2", "since": "2026-01-01T00:00:00.000001Z", "observedGeneration": 2}]}})
        );
        let mut f = f.clone();
        f["status"] = one["status"].clone();
        let two = with_applied(&f, "node-1", Some(&entry("node-1", 1))).unwrap();
        let nodes: Vec<&str> = two["status"]["appliedOn"].as_array().unwrap().iter().map(|e| e["node"].as_str().unwrap()).collect();
        assert_eq!(nodes, ["node-1", "node-2"], "sorted by node, the other's entry kept");
        f["status"] = two["status"].clone();
        assert_eq!(in_effect_on(&f), ["node-2"], "node-1 applied an older spec");
        assert_eq!(with_applied(&f, "node-2", Some(&entry("node-2", 2))), None, "unchanged");
        let gone = with_applied(&f, "node-2", None).unwrap();
        assert_eq!(gone["status"]["appliedOn"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn an_agent_holds_what_it_applies_and_lets_go_once_reverted() {
        let f = fault(&["emu.dev/agent-node-1"], json!([]), 1);
        let since = "2026-01-01T00:00:00.000001Z";
        let applied = AppliedOn { node: "node-1".into(), since: since.into(), observed_generation: 1 };
        assert_eq!(record_after_pass(&f, "node-1", true, Some(since), true), Record { entry: Some(applied.clone()), hold: true });
        // Wanted but not in place yet (a pod's namespace still missing): held, no entry.
        assert_eq!(record_after_pass(&f, "node-1", true, None, true), Record { entry: None, hold: true });
        // Deleted (or no longer concerning the node): let go once reverted, kept while not.
        let with_entry = fault(&["emu.dev/agent-node-1"], json!([{"node": "node-1", "since": since, "observedGeneration": 1}]), 1);
        assert_eq!(record_after_pass(&with_entry, "node-1", false, None, true), Record { entry: None, hold: false });
        assert_eq!(record_after_pass(&with_entry, "node-1", false, None, false), Record { entry: Some(applied), hold: true });
    }

    #[test]
    fn commands_wait_for_the_agents_that_have_not_confirmed_except_stopped_ones() {
        let affected: Vec<String> = vec!["node-1".into(), "node-2".into(), "node-3".into()];
        let applied =
            json!([{"node": "node-1", "since": "s", "observedGeneration": 1}, {"node": "node-2", "since": "s", "observedGeneration": 0}]);
        let f = fault(&[], applied, 1);
        let p = progress(&f, &affected, &["node-3".to_string()]);
        assert_eq!(p, Progress { in_effect: vec!["node-1".into()], waiting_for: vec!["node-2".into()], terminating: false });
        assert_eq!(status_word(&p), "Applying");
        // Deleted: waiting for the holders, but not for a stopped one.
        let mut f = fault(&["emu.dev/agent-node-1", "emu.dev/agent-node-3"], json!([]), 1);
        f["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let p = progress(&f, &[], &["node-3".to_string()]);
        assert_eq!((p.waiting_for, p.terminating), (vec!["node-1".to_string()], true));
        assert!(progress(&f, &[], &["node-1".to_string(), "node-3".to_string()]).waiting_for.is_empty());
        let stops = [to_object("node-stop-node-3", &FaultSpec::NodeStop { node: "node-3".into(), kill: true }), f];
        assert_eq!(stopped_nodes(&stops), ["node-3"]);
    }

    #[test]
    fn a_started_node_has_caught_up_when_its_agent_reverted_and_applied_again() {
        let spec = FaultSpec::LinkDown { node: "node-1".into() };
        let none = |_: &str, _: &str| None;
        let entry = |since: &str| json!([{"node": "node-1", "since": since, "observedGeneration": 1}]);
        let f = fault(&["emu.dev/agent-node-1"], entry("2026-01-01T00:00:00.500000Z"), 1);
        assert!(caught_up(&f, &spec, "node-1", none, None));
        assert!(!caught_up(&fault(&[], json!([]), 1), &spec, "node-1", none, None), "not applied yet");
        // A restarted agent: only entries after its start count, within the same second too.
        assert!(!caught_up(&f, &spec, "node-1", none, Some("2026-01-01T00:00:00.600000Z")));
        assert!(caught_up(&f, &spec, "node-1", none, Some("2026-01-01T00:00:00.400000Z")));
        assert!(caught_up(&f, &spec, "node-2", none, None), "not node-2's");
        let mut deleted = f.clone();
        deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!caught_up(&deleted, &spec, "node-1", none, None), "not reverted yet");
        deleted["metadata"]["finalizers"] = json!([]);
        assert!(caught_up(&deleted, &spec, "node-1", none, None));
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_767_225_600_000_042);
        assert_eq!(micro_time(t), "2026-01-01T00:00:00.000042Z");
    }
}
