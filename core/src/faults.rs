//! Network faults (issue 7) as pure functions: the `Fault` object (`emu.dev/v1`, cluster-scoped)
//! that `emu fault …` records in the API, its validation, and what a node agent does for the
//! faults that concern its node: the impairments of each link (netem's model, applied by the
//! agent's link emulator) and the nftables table of a partition. The agents apply them (level-triggered, so a restarted agent applies them again,
//! and deleting the object reverts them).

use crate::object;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const API_VERSION: &str = "emu.dev/v1";
pub const KIND: &str = "Fault";
/// Family and name of a node's partition table.
pub const TABLE: &str = "ip emu-faults";

/// What a Fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultSpec {
    /// Traffic between the nodes (and their pods) of `a` and of `b` is dropped; only from `a`
    /// to `b` when `one_way`.
    Partition { a: Vec<String>, b: Vec<String>, one_way: bool },
    /// Impairments of a node's link (`eth0`) or a pod's, in both directions.
    Netem { target: Target, netem: Netem },
    /// The node is stopped (`emu node stop`): its agent and pods frozen (or killed, as a power
    /// loss does), its links down. The CLI applies it (a stopped agent cannot); agents ignore it.
    NodeStop { node: String, kill: bool },
    /// The node's link is down.
    LinkDown { node: String },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Node(String),
    Pod { namespace: String, name: String },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node/{n}"),
            Target::Pod { namespace, name } => write!(f, "pod/{namespace}/{name}"),
        }
    }
}

/// `tc netem` impairments, each applied to every packet crossing the link in either direction.
/// Durations in milliseconds, probabilities in percent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Netem {
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    /// Correlation of successive delays.
    pub delay_correlation: Option<f64>,
    pub loss: Option<f64>,
    /// Correlation of successive losses (bursts).
    pub loss_correlation: Option<f64>,
    pub duplicate: Option<f64>,
    pub corrupt: Option<f64>,
    /// Share of packets sent at once while the others wait `delay` (needs a delay).
    pub reorder: Option<f64>,
    /// A rate limit as tc spells it (`1mbit`, `500kbit`).
    pub rate: Option<String>,
}

impl Netem {
    /// `b`'s settings over `a`'s: two faults on one link add up, the later one winning per field.
    pub fn merged(&self, later: &Netem) -> Netem {
        Netem {
            delay_ms: later.delay_ms.or(self.delay_ms),
            jitter_ms: later.jitter_ms.or(self.jitter_ms),
            delay_correlation: later.delay_correlation.or(self.delay_correlation),
            loss: later.loss.or(self.loss),
            loss_correlation: later.loss_correlation.or(self.loss_correlation),
            duplicate: later.duplicate.or(self.duplicate),
            corrupt: later.corrupt.or(self.corrupt),
            reorder: later.reorder.or(self.reorder),
            rate: later.rate.clone().or(self.rate.clone()),
        }
    }

    /// The impairments as `tc netem` spells them (`delay 100ms 10ms loss 20%`), for `emu fault
    /// list`.
    pub fn args(&self) -> Vec<String> {
        let ms = |v: f64| format!("{v}ms");
        let pct = |v: f64| format!("{v}%");
        let mut out = Vec::new();
        // netem needs a delay for reordering; a reorder without one gets the smallest.
        let delay = self.delay_ms.or(self.reorder.map(|_| 1.0));
        if let Some(d) = delay {
            out.extend(["delay".to_string(), ms(d)]);
            if let Some(j) = self.jitter_ms {
                out.push(ms(j));
                if let Some(c) = self.delay_correlation {
                    out.push(pct(c));
                }
            }
        }
        if let Some(l) = self.loss {
            out.extend(["loss".to_string(), pct(l)]);
            if let Some(c) = self.loss_correlation {
                out.push(pct(c));
            }
        }
        for (word, v) in [("duplicate", self.duplicate), ("corrupt", self.corrupt), ("reorder", self.reorder)] {
            if let Some(v) = v {
                out.extend([word.to_string(), pct(v)]);
            }
        }
        if let Some(r) = &self.rate {
            out.extend(["rate".to_string(), r.clone()]);
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        let ms = |v: f64| json!(format!("{v}ms"));
        let pct = |v: f64| json!(format!("{v}%"));
        for (k, v) in [("delay", self.delay_ms), ("jitter", self.jitter_ms)] {
            if let Some(v) = v {
                m.insert(k.into(), ms(v));
            }
        }
        for (k, v) in [
            ("correlation", self.delay_correlation),
            ("loss", self.loss),
            ("lossCorrelation", self.loss_correlation),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), pct(v));
            }
        }
        if let Some(r) = &self.rate {
            m.insert("rate".into(), json!(r));
        }
        Value::Object(m)
    }
}

/// `100ms`, `1.5s`, `250us` → milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<f64, String> {
    let bad = || format!("invalid duration {s:?}: use a number with ms, s or us (e.g. 100ms)");
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return Err(bad());
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !(v.is_finite() && v >= 0.0 && v * scale <= 60_000.0) {
        return Err(format!("invalid duration {s:?}: between 0 and 60s"));
    }
    Ok(v * scale)
}

/// `20%` (or `20`) → 20.0, between 0 and 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.strip_suffix('%').unwrap_or(s).parse().map_err(|_| format!("invalid percentage {s:?}: use e.g. 20%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("invalid percentage {s:?}: between 0% and 100%"));
    }
    Ok(v)
}

/// A tc rate (`1mbit`, `500kbit`, `10gbit`, `100bps`).
pub fn parse_rate(s: &str) -> Result<String, String> {
    let units = ["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps", "gbps"];
    let unit = units.iter().filter(|u| s.ends_with(*u)).max_by_key(|u| u.len());
    match unit {
        Some(u) if s[..s.len() - u.len()].parse::<f64>().is_ok_and(|v| v > 0.0) => Ok(s.to_string()),
        _ => Err(format!("invalid rate {s:?}: use e.g. 1mbit, 500kbit")),
    }
}

/// The Fault object for `spec`.
pub fn to_object(name: &str, spec: &FaultSpec) -> Value {
    let spec = match spec {
        FaultSpec::Partition { a, b, one_way } => json!({"partition": {"a": a, "b": b, "oneWay": one_way}}),
        FaultSpec::LinkDown { node } => json!({"linkDown": {"node": node}}),
        FaultSpec::NodeStop { node, kill } => json!({"nodeStop": {"node": node, "kill": kill}}),
        FaultSpec::Netem { target, netem } => {
            let mut n = netem.to_json();
            match target {
                Target::Node(node) => n["node"] = json!(node),
                Target::Pod { namespace, name } => n["pod"] = json!(format!("{namespace}/{name}")),
            }
            json!({"netem": n})
        }
    };
    json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec})
}

/// The spec of a Fault object, checked; `nodes` are the cluster's node names. The message names
/// the field and the fix.
pub fn parse(obj: &Value, nodes: &[String]) -> Result<FaultSpec, String> {
    let spec = &obj["spec"];
    let node = |field: &str, n: &Value| -> Result<String, String> {
        let name = n.as_str().unwrap_or("");
        if nodes.iter().any(|x| x == name) {
            Ok(name.to_string())
        } else {
            Err(format!("{field}: node {name:?} is not in the cluster (nodes: {})", nodes.join(", ")))
        }
    };
    let group = |field: &str| -> Result<Vec<String>, String> {
        let list =
            spec["partition"][field].as_array().filter(|l| !l.is_empty()).ok_or_else(|| format!("spec.partition.{field}: give one or more node names"))?;
        list.iter().map(|n| node(&format!("spec.partition.{field}"), n)).collect()
    };
    if spec["partition"].is_object() {
        let (a, b) = (group("a")?, group("b")?);
        if let Some(both) = a.iter().find(|n| b.contains(n)) {
            return Err(format!("spec.partition: node {both:?} is on both sides"));
        }
        return Ok(FaultSpec::Partition { a, b, one_way: spec["partition"]["oneWay"].as_bool() == Some(true) });
    }
    if spec["nodeStop"].is_object() {
        let kill = spec["nodeStop"]["kill"].as_bool() == Some(true);
        return Ok(FaultSpec::NodeStop { node: node("spec.nodeStop.node", &spec["nodeStop"]["node"])?, kill });
    }
    if spec["linkDown"].is_object() {
        return Ok(FaultSpec::LinkDown { node: node("spec.linkDown.node", &spec["linkDown"]["node"])? });
    }
    let n = &spec["netem"];
    if !n.is_object() {
        return Err("spec: give one of partition, linkDown, nodeStop or netem".into());
    }
    let target = match (n.get("node"), n["pod"].as_str()) {
        (Some(name), None) => Target::Node(node("spec.netem.node", name)?),
        (None, Some(pod)) => {
            let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
            Target::Pod { namespace: namespace.into(), name: name.into() }
        }
        _ => return Err("spec.netem: give either node or pod (NAMESPACE/NAME)".into()),
    };
    let field = |k: &str, parse: fn(&str) -> Result<f64, String>| -> Result<Option<f64>, String> {
        n.get(k).and_then(Value::as_str).map(|s| parse(s).map_err(|e| format!("spec.netem.{k}: {e}"))).transpose()
    };
    let netem = Netem {
        delay_ms: field("delay", parse_duration_ms)?,
        jitter_ms: field("jitter", parse_duration_ms)?,
        delay_correlation: field("correlation", parse_percent)?,
        loss: field("loss", parse_percent)?,
        loss_correlation: field("lossCorrelation", parse_percent)?,
        duplicate: field("duplicate", parse_percent)?,
        corrupt: field("corrupt", parse_percent)?,
        reorder: field("reorder", parse_percent)?,
        rate: n.get("rate").and_then(Value::as_str).map(|r| parse_rate(r).map_err(|e| format!("spec.netem.rate: {e}"))).transpose()?,
    };
    if netem == Netem::default() {
        return Err("spec.netem: give at least one of delay, loss, duplicate, corrupt, reorder, rate".into());
    }
    if netem.jitter_ms.is_some() && netem.delay_ms.is_none() {
        return Err("spec.netem.jitter: needs a delay".into());
    }
    Ok(FaultSpec::Netem { target, netem })
}

/// Whether `spec` names `node` (a fault to drop with the node when it is removed).
pub fn names_node(spec: &FaultSpec, node: &str) -> bool {
    match spec {
        FaultSpec::Partition { a, b, .. } => a.iter().chain(b).any(|n| n == node),
        FaultSpec::NodeStop { node: n, .. } | FaultSpec::LinkDown { node: n } => n == node,
        FaultSpec::Netem { target: Target::Node(n), .. } => n == node,
        FaultSpec::Netem { target: Target::Pod { .. }, .. } => false,
    }
}

/// The nodes whose agents apply `spec`: both sides of a partition (a node outside it carries no
/// traffic between them), the node of a link fault, the node a pod target is bound to
/// (`pod_node(namespace, name)`; none while it is not bound); none for a node stop, which the CLI
/// applies itself (the node's agent is what it stops).
pub fn nodes_affected(spec: &FaultSpec, pod_node: impl Fn(&str, &str) -> Option<String>) -> Vec<String> {
    let mut nodes: Vec<String> = match spec {
        FaultSpec::Partition { a, b, .. } => a.iter().chain(b).cloned().collect(),
        FaultSpec::LinkDown { node } | FaultSpec::Netem { target: Target::Node(node), .. } => vec![node.clone()],
        FaultSpec::Netem { target: Target::Pod { namespace, name }, .. } => pod_node(namespace, name).into_iter().collect(),
        FaultSpec::NodeStop { .. } => Vec::new(),
    };
    nodes.sort();
    nodes.dedup();
    nodes
}

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
    let list: Vec<Value> = entries.iter().map(|e| json!({"node": e.node, "since": e.since, "observedGeneration": e.observed_generation})).collect();
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
pub fn caught_up(fault: &Value, spec: &FaultSpec, node: &str, pod_node: impl Fn(&str, &str) -> Option<String>, after: Option<&str>) -> bool {
    if object::is_terminating(fault) {
        return !holders(fault).iter().any(|n| n == node);
    }
    if !nodes_affected(spec, pod_node).iter().any(|n| n == node) {
        return true;
    }
    let current = generation(fault);
    let newer = |since: &str| after.is_none_or(|a| crate::time::parse_rfc3339_nanos(since) >= crate::time::parse_rfc3339_nanos(a));
    applied_on(fault).iter().any(|e| e.node == node && e.observed_generation == current && newer(&e.since))
}

/// A timestamp with microseconds (Kubernetes' MicroTime: `2026-11-22T04:00:00.123456Z`), for
/// `since`: a restarted agent's entries must sort after its start, within the same second too.
pub fn micro_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = crate::time::rfc3339(d.as_secs() as i64);
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), d.subsec_micros())
}

/// One line of `emu fault list`: TYPE, TARGET, DETAILS.
pub fn describe(spec: &FaultSpec) -> (String, String, String) {
    match spec {
        FaultSpec::Partition { a, b, one_way } => {
            let arrow = if *one_way { "->" } else { "<->" };
            ("partition".into(), format!("{} {arrow} {}", a.join(","), b.join(",")), if *one_way { "one way".into() } else { "both ways".into() })
        }
        FaultSpec::LinkDown { node } => ("link-down".into(), format!("node/{node}"), "eth0 down".into()),
        FaultSpec::NodeStop { node, kill } => {
            let how = if *kill { "agent and pods killed, links down" } else { "agent and pods frozen, links down" };
            ("node-stop".into(), format!("node/{node}"), how.into())
        }
        FaultSpec::Netem { target, netem } => ("netem".into(), target.to_string(), netem.args().join(" ")),
    }
}

/// The netem of each link target: the faults' settings merged in name order.
pub fn netem_by_target(faults: &[(String, FaultSpec)]) -> BTreeMap<Target, Netem> {
    let mut sorted: Vec<&(String, FaultSpec)> = faults.iter().collect();
    sorted.sort_by(|x, y| x.0.cmp(&y.0));
    let mut out: BTreeMap<Target, Netem> = BTreeMap::new();
    for (_, spec) in sorted {
        if let FaultSpec::Netem { target, netem } = spec {
            let merged = out.get(target).map_or_else(|| netem.clone(), |prev| prev.merged(netem));
            out.insert(target.clone(), merged);
        }
    }
    out
}

/// The partition table of one node: for each partition, packets from the addresses of one side
/// to those of the other are dropped as they enter the node or leave it (both sides' nodes do
/// it, so a packet is dropped where it first meets the partition). `addresses` gives each node's
/// addresses (InternalIP, pod CIDR). Empty when no partition is in force.
pub fn partition_script(faults: &[(String, FaultSpec)], addresses: &BTreeMap<String, Vec<String>>) -> String {
    let set = |nodes: &[String]| -> Option<String> {
        let list: Vec<&str> = nodes.iter().flat_map(|n| addresses.get(n).into_iter().flatten()).map(String::as_str).collect();
        (!list.is_empty()).then(|| format!("{{ {} }}", list.join(", ")))
    };
    let mut rules = Vec::new();
    for (_, spec) in faults {
        let FaultSpec::Partition { a, b, one_way } = spec else { continue };
        let (Some(sa), Some(sb)) = (set(a), set(b)) else { continue };
        rules.push(format!("ip saddr {sa} ip daddr {sb} drop"));
        if !one_way {
            rules.push(format!("ip saddr {sb} ip daddr {sa} drop"));
        }
    }
    let mut out = format!("add table {TABLE}\ndelete table {TABLE}\n");
    if rules.is_empty() {
        return out;
    }
    out.push_str(&format!("add table {TABLE}\n"));
    // Before conntrack (-200) and NAT: a partition drops whatever crosses it.
    for (chain, hook) in [("in", "prerouting"), ("out", "output")] {
        let _ = writeln!(out, "add chain {TABLE} {chain} {{ type filter hook {hook} priority -300 ; policy accept ; }}");
        for r in &rules {
            let _ = writeln!(out, "add rule {TABLE} {chain} {r}");
        }
    }
    out
}

/// The name `emu fault` gives a new fault of `kind` (`partition-1`, `delay-2`, …): the lowest
/// free number.
pub fn next_name(kind: &str, existing: &[Value]) -> String {
    (1..).map(|i| format!("{kind}-{i}")).find(|n| !existing.iter().any(|f| object::name(f) == n)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    #[test]
    fn netem_arguments_as_tc_takes_them() {
        let n = Netem { delay_ms: Some(100.0), jitter_ms: Some(10.0), delay_correlation: Some(25.0), loss: Some(20.0), ..Default::default() };
        assert_eq!(n.args(), ["delay", "100ms", "10ms", "25%", "loss", "20%"]);
        let n = Netem { reorder: Some(25.0), rate: Some("1mbit".into()), duplicate: Some(1.0), corrupt: Some(0.1), ..Default::default() };
        assert_eq!(n.args(), ["delay", "1ms", "duplicate", "1%", "corrupt", "0.1%", "reorder", "25%", "rate", "1mbit"]);
    }

    #[test]
    fn faults_round_trip_through_their_objects() {
        let specs = [
            FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into(), "node-3".into()], one_way: true },
            FaultSpec::LinkDown { node: "node-2".into() },
            FaultSpec::NodeStop { node: "node-3".into(), kill: false },
            FaultSpec::NodeStop { node: "node-2".into(), kill: true },
            FaultSpec::Netem { target: Target::Node("node-1".into()), netem: Netem { delay_ms: Some(100.0), jitter_ms: Some(10.0), ..Default::default() } },
            FaultSpec::Netem {
                target: Target::Pod { namespace: "default".into(), name: "web".into() },
                netem: Netem { loss: Some(20.0), rate: Some("1mbit".into()), ..Default::default() },
            },
        ];
        for spec in specs {
            assert_eq!(parse(&to_object("f", &spec), &nodes()), Ok(spec.clone()));
        }
    }

    #[test]
    fn a_node_is_named_by_its_partitions_and_its_own_faults() {
        let partition = FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into(), "node-3".into()], one_way: false };
        assert!(names_node(&partition, "node-3") && !names_node(&partition, "node-4"));
        assert!(names_node(&FaultSpec::LinkDown { node: "node-2".into() }, "node-2"));
        let pod = FaultSpec::Netem {
            target: Target::Pod { namespace: "default".into(), name: "node-2".into() },
            netem: Netem { loss: Some(1.0), ..Default::default() },
        };
        assert!(!names_node(&pod, "node-2"));
    }

    #[test]
    fn a_fault_is_applied_by_the_nodes_it_concerns() {
        let pod_node = |ns: &str, name: &str| (ns == "default" && name == "web").then(|| "node-2".to_string());
        let partition = FaultSpec::Partition { a: vec!["node-3".into()], b: vec!["node-1".into(), "node-3".into()], one_way: false };
        assert_eq!(nodes_affected(&partition, pod_node), ["node-1", "node-3"]);
        assert_eq!(nodes_affected(&FaultSpec::LinkDown { node: "node-2".into() }, pod_node), ["node-2"]);
        let netem = Netem { loss: Some(1.0), ..Default::default() };
        let pod = |name: &str| FaultSpec::Netem { target: Target::Pod { namespace: "default".into(), name: name.into() }, netem: netem.clone() };
        assert_eq!(nodes_affected(&pod("web"), pod_node), ["node-2"]);
        assert!(nodes_affected(&pod("unbound"), pod_node).is_empty());
        assert!(nodes_affected(&FaultSpec::NodeStop { node: "node-1".into(), kill: false }, pod_node).is_empty(), "the CLI applies it");
    }

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
        let entry = |node: &str, gen: i64| AppliedOn { node: node.into(), since: "2026-01-01T00:00:00.000001Z".into(), observed_generation: gen };
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
        let applied = json!([{"node": "node-1", "since": "s", "observedGeneration": 1}, {"node": "node-2", "since": "s", "observedGeneration": 0}]);
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
    fn bad_faults_name_the_field_and_the_fix() {
        let obj = |spec: Value| json!({"spec": spec});
        assert_eq!(
            parse(&obj(json!({"partition": {"a": ["node-9"], "b": ["node-2"]}})), &nodes()),
            Err("spec.partition.a: node \"node-9\" is not in the cluster (nodes: node-1, node-2, node-3)".into())
        );
        assert_eq!(
            parse(&obj(json!({"partition": {"a": ["node-1"], "b": ["node-1"]}})), &nodes()),
            Err("spec.partition: node \"node-1\" is on both sides".into())
        );
        assert_eq!(
            parse(&obj(json!({"netem": {"node": "node-1", "loss": "120%"}})), &nodes()),
            Err("spec.netem.loss: invalid percentage \"120%\": between 0% and 100%".into())
        );
        assert_eq!(
            parse(&obj(json!({"netem": {"node": "node-1", "delay": "fast"}})), &nodes()),
            Err("spec.netem.delay: invalid duration \"fast\": use a number with ms, s or us (e.g. 100ms)".into())
        );
        assert_eq!(parse(&obj(json!({"netem": {"node": "node-1", "jitter": "5ms"}})), &nodes()), Err("spec.netem.jitter: needs a delay".into()));
        assert!(parse(&obj(json!({"netem": {"node": "node-1"}})), &nodes()).is_err());
        assert!(parse(&obj(json!({})), &nodes()).is_err());
        assert_eq!(parse_rate("fast"), Err("invalid rate \"fast\": use e.g. 1mbit, 500kbit".into()));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500.0));
    }

    #[test]
    fn netem_of_one_link_merges_in_name_order() {
        let node = Target::Node("node-1".into());
        let f = |name: &str, netem: Netem| (name.to_string(), FaultSpec::Netem { target: node.clone(), netem });
        let faults = [
            f("loss-1", Netem { loss: Some(20.0), ..Default::default() }),
            f("delay-1", Netem { delay_ms: Some(100.0), loss: Some(5.0), ..Default::default() }),
        ];
        assert_eq!(netem_by_target(&faults)[&node].args(), ["delay", "100ms", "loss", "20%"]);
    }

    #[test]
    fn partitions_drop_between_the_sides_addresses() {
        let addresses = BTreeMap::from([
            ("node-1".to_string(), vec!["172.18.0.2".to_string(), "10.244.0.0/24".to_string()]),
            ("node-2".to_string(), vec!["172.18.0.3".to_string(), "10.244.1.0/24".to_string()]),
        ]);
        let both = [("p".to_string(), FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into()], one_way: false })];
        let script = partition_script(&both, &addresses);
        assert!(script.contains("add rule ip emu-faults in ip saddr { 172.18.0.2, 10.244.0.0/24 } ip daddr { 172.18.0.3, 10.244.1.0/24 } drop\n"), "{script}");
        assert!(script.contains("add rule ip emu-faults out ip saddr { 172.18.0.3, 10.244.1.0/24 } ip daddr { 172.18.0.2, 10.244.0.0/24 } drop\n"), "{script}");
        let one = [("p".to_string(), FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into()], one_way: true })];
        assert_eq!(partition_script(&one, &addresses).matches(" drop").count(), 2);
        assert_eq!(partition_script(&[], &addresses), "add table ip emu-faults\ndelete table ip emu-faults\n");
    }
}
