//! What the node agents record of the Faults they apply, and what the commands that wait for them
//! read: each agent's finalizer and its entry of `status.appliedOn`, a fault's progress, and the
//! lines of `emu fault list`.

use emu_api::fault::{nodes_affected, FaultSpec, API_VERSION, KIND};
use emu_api::object;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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

/// The nodes that are stopped (`emu node stop`, and the nodes of a host stopped by `emu host
/// stop`): their agents are frozen or dead, so nothing waits for them; each applies or reverts
/// what changed when it is started again.
pub fn stopped_nodes(faults: &[Value]) -> Vec<String> {
    let nodes = faults.iter().filter_map(|f| f["spec"]["nodeStop"]["node"].as_str());
    let of_hosts = faults.iter().flat_map(|f| f["spec"]["hostStop"]["nodes"].as_array().into_iter().flatten()).filter_map(Value::as_str);
    let mut out: Vec<String> = nodes.chain(of_hosts).map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

/// The nodes whose agents a host partition cuts off from the control plane (it runs on host
/// `control`): the nodes (`node_hosts`: each node's host) of the hosts on the other side of a
/// partition from it, whichever way the partition drops (a connection needs both). Nothing waits
/// for them either: they catch up once the partition heals.
pub fn cut_off_nodes(faults: &[Value], node_hosts: &BTreeMap<String, String>, control: &str) -> Vec<String> {
    let side = |p: &Value, key: &str| -> Vec<String> {
        p[key].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let mut cut: Vec<String> = Vec::new();
    for p in faults.iter().map(|f| &f["spec"]["hostPartition"]).filter(|p| p.is_object()) {
        let (a, b) = (side(p, "a"), side(p, "b"));
        let far = if a.iter().any(|h| h == control) {
            b
        } else if b.iter().any(|h| h == control) {
            a
        } else {
            continue;
        };
        cut.extend(node_hosts.iter().filter(|(_, h)| far.contains(h)).map(|(n, _)| n.clone()));
    }
    cut.sort();
    cut.dedup();
    cut
}

/// The nodes nothing waits for: [`stopped_nodes`] and [`cut_off_nodes`].
pub fn unreachable_nodes(faults: &[Value], node_hosts: &BTreeMap<String, String>, control: &str) -> Vec<String> {
    let mut out = stopped_nodes(faults);
    out.extend(cut_off_nodes(faults, node_hosts, control));
    out.sort();
    out.dedup();
    out
}

/// The finalizer of the controller's LAN reconciler, which applies host partitions in the
/// emulated hosts' LAN and impairments of their LAN links: on before it applies one, off once it
/// has reverted it, as an agent's.
pub const LAN_FINALIZER: &str = "emu.dev/lan";

/// The name under which the LAN reconciler writes its entry of `status.appliedOn` (not a node's
/// name: those are lower case).
pub const LAN_APPLIER: &str = "LAN";

/// Whether the controller's LAN reconciler applies `fault` (a Fault object) rather than agents:
/// a host partition, or impairments of an emulated host's LAN link. Its progress is
/// [`lan_progress`].
pub fn applied_in_lan(fault: &Value) -> bool {
    fault["spec"]["hostPartition"].is_object() || fault["spec"]["netem"]["host"].is_string()
}

/// Whether the LAN reconciler holds the fault.
pub fn lan_holds(fault: &Value) -> bool {
    finalizers(fault).contains(&LAN_FINALIZER)
}

/// The fault with the LAN reconciler's finalizer on (`held`) or off; None when it already is.
pub fn with_lan_finalizer(fault: &Value, held: bool) -> Option<Value> {
    if lan_holds(fault) == held {
        return None;
    }
    let mut list: Vec<String> = finalizers(fault).into_iter().filter(|f| *f != LAN_FINALIZER).map(str::to_string).collect();
    if held {
        list.push(LAN_FINALIZER.to_string());
    }
    let mut out = fault.clone();
    object::metadata_mut(&mut out).insert("finalizers".into(), json!(list));
    Some(out)
}

/// Where a fault the LAN reconciler applies stands: in effect once the LAN reconciler's entry is there for the
/// current spec; waiting for it ([`LAN_APPLIER`]) until then, or, once deleted, until it let go.
pub fn lan_progress(fault: &Value) -> Progress {
    let terminating = object::is_terminating(fault);
    let in_effect: Vec<String> = in_effect_on(fault).into_iter().filter(|n| n == LAN_APPLIER).collect();
    let waiting = if terminating { lan_holds(fault) } else { in_effect.is_empty() };
    Progress { in_effect, waiting_for: if waiting { vec![LAN_APPLIER.to_string()] } else { Vec::new() }, terminating }
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
        FaultSpec::HostPartition { a, b, one_way } => {
            let hosts = |l: &[String]| l.iter().map(|h| format!("host/{h}")).collect::<Vec<_>>().join(",");
            let arrow = if *one_way { "->" } else { "<->" };
            let how = if *one_way { "one way, in the LAN" } else { "both ways, in the LAN" };
            ("partition".into(), format!("{} {arrow} {}", hosts(a), hosts(b)), how.into())
        }
        FaultSpec::HostStop { host, nodes, kill } => {
            let which = if nodes.is_empty() { "no nodes".to_string() } else { format!("nodes {}", nodes.join(",")) };
            let how = if *kill { "killed" } else { "frozen" };
            ("host-stop".into(), format!("host/{host}"), format!("LAN link down, {which} {how}"))
        }
    }
}

/// The name `emu fault` gives a new fault of `kind` (`partition-1`, `delay-2`, …): the lowest
/// free number.
pub fn next_name(kind: &str, existing: &[Value]) -> String {
    (1..).map(|i| format!("{kind}-{i}")).find(|n| !existing.iter().any(|f| object::name(f) == n)).unwrap_or_default()
}

/// The emulated hosts' LAN table (`emu up --hosts N`): host partitions, as one nft script for the
/// LAN's namespace (`emu-<cluster>-lan`, the switch `lan0` whose ports are the hosts' links).
/// The controller's LAN reconciler (`controller/src/host_faults.rs`) renders it from the Fault
/// objects and pipes it to one `nft -f -` in that namespace.
///
/// Where it cuts in: a `bridge` family table, chain `forward` at the bridge's filter priority
/// (-200). Every frame one host sends another crosses `lan0` from one port to another and meets
/// that hook; an IPv4 packet from the addresses of one side to those of the other is dropped
/// there (`ip saddr`/`ip daddr` on a bridge imply `ether type ip`, so ARP still passes and the
/// hosts keep their neighbours: healing needs no new resolution). That is all the underlay
/// carries between hosts: the agents' TLS connections to the control plane and the VXLAN of the
/// fabric and the outside world, so a partitioned host's nodes lose the control plane and the
/// other hosts' nodes and pods, and nothing inside a host changes.
///
/// It is here rather than in emu-dataplane (the rules of the nodes' kernels) because its one user,
/// the controller, does not depend on emu-dataplane.
pub mod lan {
    use emu_api::fault::FaultSpec;
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    /// Family and name of the LAN's table (in the cluster's own LAN namespace).
    pub const LAN_TABLE: &str = "bridge emu-faults";

    /// The LAN table for `faults` (their host partitions; other faults are not the LAN's), given
    /// each host's address on the LAN by name. A host without an address (no node of it registered)
    /// drops nothing. Without a host partition the script only deletes the table.
    pub fn lan_script(faults: &[(String, FaultSpec)], addresses: &BTreeMap<String, String>) -> String {
        let set = |hosts: &[String]| -> Option<String> {
            let mut list: Vec<&str> = hosts.iter().filter_map(|h| addresses.get(h)).map(String::as_str).collect();
            list.sort();
            list.dedup();
            (!list.is_empty()).then(|| format!("{{ {} }}", list.join(", ")))
        };
        let mut rules = Vec::new();
        for (_, spec) in faults {
            let FaultSpec::HostPartition { a, b, one_way } = spec else { continue };
            let (Some(sa), Some(sb)) = (set(a), set(b)) else { continue };
            rules.push(format!("ip saddr {sa} ip daddr {sb} drop"));
            if !one_way {
                rules.push(format!("ip saddr {sb} ip daddr {sa} drop"));
            }
        }
        // Declared, then deleted: the table goes whether or not it was there, in the same
        // transaction that makes it anew (no moment without the rules of a partition still in force).
        let mut out = format!("add table {LAN_TABLE}\ndelete table {LAN_TABLE}\n");
        if rules.is_empty() {
            return out;
        }
        let _ = writeln!(out, "add table {LAN_TABLE}");
        let _ = writeln!(out, "add chain {LAN_TABLE} forward {{ type filter hook forward priority -200 ; policy accept ; }}");
        for r in &rules {
            let _ = writeln!(out, "add rule {LAN_TABLE} forward {r}");
        }
        out
    }

    /// The hosts a host partition names that have no address on the LAN (yet): it is not in effect
    /// for them.
    pub fn unknown_hosts(spec: &FaultSpec, addresses: &BTreeMap<String, String>) -> Vec<String> {
        match spec {
            FaultSpec::HostPartition { a, b, .. } => a.iter().chain(b).filter(|h| !addresses.contains_key(*h)).cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// A packet tracer over a rendered LAN script: whether an IPv4 packet from `src` to `dst`
    /// crossing the LAN is dropped. It reads the script as nft would run it (the table made anew
    /// after its deletion; rules of the `forward` chain in order, the first drop wins) and refuses a
    /// rule it does not understand, so that a renderer change cannot slip past the tests.
    pub fn drops(script: &str, src: &str, dst: &str) -> Result<bool, String> {
        let mut table = false;
        let mut chain = false;
        let mut rules: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for line in script.lines() {
            if line == format!("add table {LAN_TABLE}") {
                table = true;
            } else if line == format!("delete table {LAN_TABLE}") {
                (table, chain) = (false, false);
                rules.clear();
            } else if let Some(rest) = line.strip_prefix(&format!("add chain {LAN_TABLE} forward ")) {
                if !table || !rest.contains("hook forward") {
                    return Err(format!("chain without its table or hook: {line}"));
                }
                chain = true;
            } else if let Some(rule) = line.strip_prefix(&format!("add rule {LAN_TABLE} forward ")) {
                if !chain {
                    return Err(format!("rule before its chain: {line}"));
                }
                let set = |after: &str| -> Option<Vec<String>> {
                    let inner = rule.split_once(after)?.1.trim_start().strip_prefix('{')?.split_once('}')?.0;
                    Some(inner.split(',').map(|a| a.trim().to_string()).collect())
                };
                match (set("ip saddr"), set("ip daddr"), rule.ends_with(" drop")) {
                    (Some(s), Some(d), true) => rules.push((s, d)),
                    _ => return Err(format!("a rule the tracer does not know: {line}")),
                }
            } else if !line.trim().is_empty() {
                return Err(format!("a line the tracer does not know: {line}"));
            }
        }
        Ok(rules.iter().any(|(s, d)| s.iter().any(|a| a == src) && d.iter().any(|a| a == dst)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn addresses() -> BTreeMap<String, String> {
            (1..=3).map(|i| (format!("host-{i}"), format!("192.0.2.{i}"))).collect()
        }

        fn cut(a: &[&str], b: &[&str], one_way: bool) -> FaultSpec {
            let s = |l: &[&str]| l.iter().map(|h| h.to_string()).collect();
            FaultSpec::HostPartition { a: s(a), b: s(b), one_way }
        }

        #[test]
        fn a_host_partition_is_one_table_in_the_lan() {
            let faults = [("partition-1".to_string(), cut(&["host-2"], &["host-1", "host-3"], false))];
            assert_eq!(
                lan_script(&faults, &addresses()),
                "add table bridge emu-faults\n\
                 delete table bridge emu-faults\n\
                 add table bridge emu-faults\n\
                 add chain bridge emu-faults forward { type filter hook forward priority -200 ; policy accept ; }\n\
                 add rule bridge emu-faults forward ip saddr { 192.0.2.2 } ip daddr { 192.0.2.1, 192.0.2.3 } drop\n\
                 add rule bridge emu-faults forward ip saddr { 192.0.2.1, 192.0.2.3 } ip daddr { 192.0.2.2 } drop\n"
            );
            assert_eq!(lan_script(&[], &addresses()), "add table bridge emu-faults\ndelete table bridge emu-faults\n");
        }

        #[test]
        fn packets_between_the_sides_are_dropped_and_the_rest_pass() {
            let both = [("p".to_string(), cut(&["host-2"], &["host-1", "host-3"], false))];
            let script = lan_script(&both, &addresses());
            let d = |s: &str, t: &str| drops(&script, s, t).unwrap();
            assert!(d("192.0.2.2", "192.0.2.1") && d("192.0.2.1", "192.0.2.2") && d("192.0.2.3", "192.0.2.2"));
            assert!(!d("192.0.2.1", "192.0.2.3"), "the other side keeps talking within itself");
            let one = [("p".to_string(), cut(&["host-1"], &["host-3"], true))];
            let script = lan_script(&one, &addresses());
            assert!(drops(&script, "192.0.2.1", "192.0.2.3").unwrap());
            assert!(!drops(&script, "192.0.2.3", "192.0.2.1").unwrap(), "one way");
            // Healed: the table goes, nothing is dropped.
            assert!(!drops(&lan_script(&[], &addresses()), "192.0.2.2", "192.0.2.1").unwrap());
            // Faults of nodes are not the LAN's.
            let node = [("n".to_string(), FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into()], one_way: false })];
            assert_eq!(lan_script(&node, &addresses()), lan_script(&[], &addresses()));
            assert!(
                drops("add rule bridge emu-faults forward ip saddr { 1.1.1.1 } ip daddr { 2.2.2.2 } drop", "1.1.1.1", "2.2.2.2").is_err()
            );
        }

        #[test]
        fn a_host_without_an_address_drops_nothing_and_is_named() {
            let faults = [("p".to_string(), cut(&["host-4"], &["host-1"], false))];
            assert_eq!(lan_script(&faults, &addresses()), lan_script(&[], &addresses()));
            assert_eq!(unknown_hosts(&faults[0].1, &addresses()), ["host-4"]);
        }
    }
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

    #[test]
    fn nothing_waits_for_the_nodes_of_stopped_hosts_nor_for_those_a_host_partition_cuts_off() {
        let stop = to_object("host-stop-host-2", &FaultSpec::HostStop { host: "host-2".into(), kill: false, nodes: vec!["node-3".into()] });
        assert_eq!(stopped_nodes(&[stop]), ["node-3"]);
        let node_hosts: BTreeMap<String, String> = [("node-1", "host-1"), ("node-3", "host-2"), ("node-4", "host-2"), ("node-5", "host-3")]
            .map(|(n, h)| (n.into(), h.into()))
            .into();
        let cut = |a: &[&str], b: &[&str], one_way: bool| {
            let s = |l: &[&str]| l.iter().map(|h| h.to_string()).collect();
            to_object("p", &FaultSpec::HostPartition { a: s(a), b: s(b), one_way })
        };
        assert_eq!(cut_off_nodes(&[cut(&["host-2"], &["host-1", "host-3"], false)], &node_hosts, "host-1"), ["node-3", "node-4"]);
        // One way cuts a connection too; the control plane's host on either side.
        assert_eq!(cut_off_nodes(&[cut(&["host-1"], &["host-3"], true)], &node_hosts, "host-1"), ["node-5"]);
        // Between two other hosts: both still reach the control plane.
        assert!(cut_off_nodes(&[cut(&["host-2"], &["host-3"], false)], &node_hosts, "host-1").is_empty());
        let both = [cut(&["host-2"], &["host-1"], false), to_object("n", &FaultSpec::NodeStop { node: "node-5".into(), kill: false })];
        assert_eq!(unreachable_nodes(&both, &node_hosts, "host-1"), ["node-3", "node-4", "node-5"]);
    }

    #[test]
    fn the_lan_reconciler_holds_host_partitions_and_reports_them_applied() {
        let f = fault(&[], json!([]), 1);
        let held = with_lan_finalizer(&f, true).unwrap();
        assert!(lan_holds(&held) && holders(&held).is_empty(), "not an agent's");
        assert_eq!(with_lan_finalizer(&held, true), None);
        assert_eq!(lan_progress(&held).waiting_for, ["LAN"]);
        let mut applied = held.clone();
        applied["status"] =
            with_applied(&held, LAN_APPLIER, Some(&AppliedOn { node: LAN_APPLIER.into(), since: "s".into(), observed_generation: 1 }))
                .unwrap()["status"]
                .clone();
        let p = lan_progress(&applied);
        assert_eq!((status_word(&p), p.in_effect), ("Applied", vec!["LAN".to_string()]));
        applied["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(lan_progress(&applied).waiting_for, ["LAN"], "until it lets go");
        let gone = with_lan_finalizer(&applied, false).unwrap();
        assert!(lan_progress(&gone).waiting_for.is_empty());
        let (kind, target, details) =
            describe(&FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false });
        assert_eq!(
            (kind.as_str(), target.as_str(), details.as_str()),
            ("partition", "host/host-2 <-> host/host-1,host/host-3", "both ways, in the LAN")
        );
    }
}
