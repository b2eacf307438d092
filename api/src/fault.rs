//! The `Fault` object (`emu.dev/v1`, cluster-scoped) that `emu fault …` records in the API: what
//! a fault does, its spec as JSON and back, checked with messages that name the field and the
//! fix, and the nodes it concerns. What the agents record of it is `emu_logic::faults`'s; the
//! rules that apply it are `emu_dataplane::faults`'s.

use serde_json::{json, Value};

pub const API_VERSION: &str = "emu.dev/v1";
pub const KIND: &str = "Fault";

/// What a Fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultSpec {
    /// Traffic between the nodes (and their pods) of `a` and of `b` is dropped; only from `a`
    /// to `b` when `one_way`.
    Partition { a: Vec<String>, b: Vec<String>, one_way: bool },
    /// Impairments of a node's link (`eth0`), a pod's, or an emulated host's LAN link, in both
    /// directions.
    Netem { target: Target, netem: Netem },
    /// The node is stopped (`emu node stop`): its agent and pods frozen (or killed, as a power
    /// loss does), its links down. The CLI applies it (a stopped agent cannot); agents ignore it.
    NodeStop { node: String, kill: bool },
    /// The node's link is down.
    LinkDown { node: String },
    /// Emulated hosts' underlay traffic between the hosts of `a` and of `b` (their addresses on
    /// the hosts' LAN) is dropped in the LAN; only from `a` to `b` when `one_way`. The controller
    /// applies it (a LAN is no node's); agents ignore it.
    HostPartition { a: Vec<String>, b: Vec<String>, one_way: bool },
    /// An emulated host is stopped (`emu host stop`): its LAN link down and every one of its
    /// `nodes` (as they were when it stopped) frozen. The controller applies it through the
    /// provider; agents ignore it.
    HostStop { host: String, kill: bool, nodes: Vec<String> },
}

/// The prefix of a host target: `host/host-2`.
pub const HOST_PREFIX: &str = "host/";

/// `host/NAME` → NAME; None for a target that is not a host.
pub fn host_target(t: &str) -> Option<&str> {
    t.strip_prefix(HOST_PREFIX).or_else(|| t.strip_prefix("hosts/"))
}

impl FaultSpec {
    /// Whether the fault acts on emulated hosts (the controller's to apply, not the agents').
    pub fn is_host_fault(&self) -> bool {
        matches!(self, FaultSpec::HostPartition { .. } | FaultSpec::HostStop { .. } | FaultSpec::Netem { target: Target::Host(_), .. })
    }
}

/// Checks the hosts a host fault names against the cluster's emulated `hosts` (none: the cluster
/// has no emulated hosts), and that the control plane's host (`control`) is not stopped. The
/// message names the field and the fix. Other faults pass.
pub fn check_hosts(spec: &FaultSpec, hosts: &[String], control: &str) -> Result<(), String> {
    let (field, named): (&str, Vec<&String>) = match spec {
        FaultSpec::HostPartition { a, b, .. } => ("spec.hostPartition", a.iter().chain(b).collect()),
        FaultSpec::HostStop { host, .. } => ("spec.hostStop.host", vec![host]),
        FaultSpec::Netem { target: Target::Host(host), .. } => ("spec.netem.host", vec![host]),
        _ => return Ok(()),
    };
    if hosts.is_empty() {
        return Err(format!(
            "{field}: this cluster has no emulated hosts: host faults act on the hosts' LAN, which `emu up --hosts N` (or `hosts: N` in a scenario) makes; target nodes instead"
        ));
    }
    if let Some(unknown) = named.iter().find(|h| !hosts.contains(h)) {
        return Err(format!("{field}: host {unknown:?} is not in the cluster (hosts: {})", hosts.join(", ")));
    }
    if let FaultSpec::HostStop { host, .. } = spec {
        if host == control {
            return Err(format!(
                "{field}: host {host:?} runs the control plane, which `emu host start` needs: stop another host, partition it (`emu fault partition host/{host} …`), or stop its nodes (`emu node stop`)"
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Node(String),
    Pod {
        namespace: String,
        name: String,
    },
    /// An emulated host's link to the hosts' LAN (its `eth0`, in the host's namespace).
    Host(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node/{n}"),
            Target::Pod { namespace, name } => write!(f, "pod/{namespace}/{name}"),
            Target::Host(h) => write!(f, "{HOST_PREFIX}{h}"),
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
        FaultSpec::HostPartition { a, b, one_way } => json!({"hostPartition": {"a": a, "b": b, "oneWay": one_way}}),
        FaultSpec::HostStop { host, kill, nodes } => json!({"hostStop": {"host": host, "kill": kill, "nodes": nodes}}),
        FaultSpec::Netem { target, netem } => {
            let mut n = netem.to_json();
            match target {
                Target::Node(node) => n["node"] = json!(node),
                Target::Pod { namespace, name } => n["pod"] = json!(format!("{namespace}/{name}")),
                Target::Host(host) => n["host"] = json!(host),
            }
            json!({"netem": n})
        }
    };
    json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec})
}

/// A host's name as a fault names it: a DNS label (`host-2`). Whether the cluster has it is
/// [`check_hosts`]'s.
fn host_name(field: &str, h: &Value) -> Result<String, String> {
    let name = h.as_str().unwrap_or("");
    if name.is_empty() || !crate::syntax::dns1123_label_errors(name).is_empty() {
        return Err(format!("{field}: {name:?} is not a host name: give a host's name, e.g. host-2 (`emu get nodes -L emu.dev/host`)"));
    }
    Ok(name.to_string())
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
        let list = spec["partition"][field]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| format!("spec.partition.{field}: give one or more node names"))?;
        list.iter().map(|n| node(&format!("spec.partition.{field}"), n)).collect()
    };
    if spec["partition"].is_object() {
        let (a, b) = (group("a")?, group("b")?);
        if let Some(both) = a.iter().find(|n| b.contains(n)) {
            return Err(format!("spec.partition: node {both:?} is on both sides"));
        }
        return Ok(FaultSpec::Partition { a, b, one_way: spec["partition"]["oneWay"].as_bool() == Some(true) });
    }
    if spec["hostPartition"].is_object() {
        let hosts = |field: &str| -> Result<Vec<String>, String> {
            let list = spec["hostPartition"][field]
                .as_array()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| format!("spec.hostPartition.{field}: give one or more host names"))?;
            list.iter().map(|h| host_name(&format!("spec.hostPartition.{field}"), h)).collect()
        };
        let (a, b) = (hosts("a")?, hosts("b")?);
        if let Some(both) = a.iter().find(|h| b.contains(h)) {
            return Err(format!("spec.hostPartition: host {both:?} is on both sides: put each host on one side only"));
        }
        return Ok(FaultSpec::HostPartition { a, b, one_way: spec["hostPartition"]["oneWay"].as_bool() == Some(true) });
    }
    if spec["hostStop"].is_object() {
        let h = &spec["hostStop"];
        let nodes = h["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        return Ok(FaultSpec::HostStop {
            host: host_name("spec.hostStop.host", &h["host"])?,
            kill: h["kill"].as_bool() == Some(true),
            nodes,
        });
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
        return Err("spec: give one of partition, linkDown, nodeStop, netem, hostPartition or hostStop".into());
    }
    let target = match (n.get("node"), n["pod"].as_str(), n.get("host")) {
        (Some(name), None, None) => Target::Node(node("spec.netem.node", name)?),
        (None, Some(pod), None) => {
            let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
            Target::Pod { namespace: namespace.into(), name: name.into() }
        }
        (None, None, Some(host)) => Target::Host(host_name("spec.netem.host", host)?),
        _ => return Err("spec.netem: give one of node, pod (NAMESPACE/NAME) or host".into()),
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
        // A host's faults are the host's: removing one of its nodes leaves them.
        FaultSpec::HostPartition { .. } | FaultSpec::HostStop { .. } | FaultSpec::Netem { target: Target::Host(_), .. } => false,
    }
}

/// The nodes whose agents apply `spec`: both sides of a partition (a node outside it carries no
/// traffic between them), the node of a link fault, the node a pod target is bound to
/// (`pod_node(namespace, name)`; none while it is not bound); none for a node stop, which the CLI
/// applies itself (the node's agent is what it stops), nor for host faults (the controller's).
pub fn nodes_affected(spec: &FaultSpec, pod_node: impl Fn(&str, &str) -> Option<String>) -> Vec<String> {
    let mut nodes: Vec<String> = match spec {
        FaultSpec::Partition { a, b, .. } => a.iter().chain(b).cloned().collect(),
        FaultSpec::LinkDown { node } | FaultSpec::Netem { target: Target::Node(node), .. } => vec![node.clone()],
        FaultSpec::Netem { target: Target::Pod { namespace, name }, .. } => pod_node(namespace, name).into_iter().collect(),
        FaultSpec::NodeStop { .. } => Vec::new(),
        // The controller applies host faults (in the LAN and the hosts' namespaces, through the
        // provider): no agent does.
        FaultSpec::HostPartition { .. } | FaultSpec::HostStop { .. } | FaultSpec::Netem { target: Target::Host(_), .. } => Vec::new(),
    };
    nodes.sort();
    nodes.dedup();
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    #[test]
    fn netem_arguments_as_tc_takes_them() {
        let n =
            Netem { delay_ms: Some(100.0), jitter_ms: Some(10.0), delay_correlation: Some(25.0), loss: Some(20.0), ..Default::default() };
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
            FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false },
            FaultSpec::HostPartition { a: vec!["host-1".into()], b: vec!["host-3".into()], one_way: true },
            FaultSpec::HostStop { host: "host-2".into(), kill: false, nodes: vec!["node-3".into(), "node-4".into()] },
            FaultSpec::Netem {
                target: Target::Node("node-1".into()),
                netem: Netem { delay_ms: Some(100.0), jitter_ms: Some(10.0), ..Default::default() },
            },
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
        let pod =
            |name: &str| FaultSpec::Netem { target: Target::Pod { namespace: "default".into(), name: name.into() }, netem: netem.clone() };
        assert_eq!(nodes_affected(&pod("web"), pod_node), ["node-2"]);
        assert!(nodes_affected(&pod("unbound"), pod_node).is_empty());
        assert!(nodes_affected(&FaultSpec::NodeStop { node: "node-1".into(), kill: false }, pod_node).is_empty(), "the CLI applies it");
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
        assert_eq!(
            parse(&obj(json!({"netem": {"node": "node-1", "jitter": "5ms"}})), &nodes()),
            Err("spec.netem.jitter: needs a delay".into())
        );
        assert!(parse(&obj(json!({"netem": {"node": "node-1"}})), &nodes()).is_err());
        assert!(parse(&obj(json!({})), &nodes()).is_err());
        assert_eq!(parse_rate("fast"), Err("invalid rate \"fast\": use e.g. 1mbit, 500kbit".into()));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500.0));
    }

    #[test]
    fn host_faults_are_checked_against_the_emulated_hosts_and_applied_by_no_agent() {
        let hosts: Vec<String> = vec!["host-1".into(), "host-2".into(), "host-3".into()];
        let cut = FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false };
        assert_eq!(check_hosts(&cut, &hosts, "host-1"), Ok(()));
        assert!(cut.is_host_fault());
        assert!(nodes_affected(&cut, |_, _| None).is_empty(), "the controller applies it");
        let stop = FaultSpec::HostStop { host: "host-2".into(), kill: false, nodes: vec!["node-3".into()] };
        assert!(nodes_affected(&stop, |_, _| None).is_empty());
        assert!(!names_node(&stop, "node-3"), "removing a node leaves its host's faults");
        let far = FaultSpec::HostPartition { a: vec!["host-9".into()], b: vec!["host-1".into()], one_way: false };
        assert_eq!(
            check_hosts(&far, &hosts, "host-1"),
            Err("spec.hostPartition: host \"host-9\" is not in the cluster (hosts: host-1, host-2, host-3)".into())
        );
        let e = check_hosts(&cut, &[], "").unwrap_err();
        assert!(e.starts_with("spec.hostPartition: this cluster has no emulated hosts") && e.contains("emu up --hosts N"), "{e}");
        let control = FaultSpec::HostStop { host: "host-1".into(), kill: false, nodes: vec![] };
        let e = check_hosts(&control, &hosts, "host-1").unwrap_err();
        assert!(e.starts_with("spec.hostStop.host: host \"host-1\" runs the control plane"), "{e}");
        assert_eq!(check_hosts(&FaultSpec::LinkDown { node: "node-1".into() }, &[], ""), Ok(()), "not a host fault");
        let obj = |spec: Value| json!({"spec": spec});
        assert_eq!(
            parse(&obj(json!({"hostPartition": {"a": ["host-2"], "b": ["host-2", "host-3"]}})), &nodes()),
            Err("spec.hostPartition: host \"host-2\" is on both sides: put each host on one side only".into())
        );
        assert_eq!(
            parse(&obj(json!({"hostPartition": {"a": [], "b": ["host-3"]}})), &nodes()),
            Err("spec.hostPartition.a: give one or more host names".into())
        );
        assert!(parse(&obj(json!({"hostStop": {"host": "Host 2"}})), &nodes())
            .unwrap_err()
            .starts_with("spec.hostStop.host: \"Host 2\" is not a host name"));
        assert_eq!(host_target("host/host-2"), Some("host-2"));
        assert_eq!(host_target("node-2"), None);
        // A host's LAN link impaired: the controller's too, checked against the hosts.
        let slow = FaultSpec::Netem { target: Target::Host("host-2".into()), netem: Netem { delay_ms: Some(50.0), ..Default::default() } };
        assert!(slow.is_host_fault() && nodes_affected(&slow, |_, _| None).is_empty());
        assert_eq!(parse(&to_object("delay-1", &slow), &[]), Ok(slow.clone()), "no node list needed");
        assert_eq!(to_object("delay-1", &slow)["spec"]["netem"]["host"], "host-2");
        assert!(check_hosts(&slow, &[], "").unwrap_err().starts_with("spec.netem.host: this cluster has no emulated hosts"));
        let far = FaultSpec::Netem { target: Target::Host("host-9".into()), netem: Netem { loss: Some(5.0), ..Default::default() } };
        assert_eq!(
            check_hosts(&far, &hosts, "host-1"),
            Err("spec.netem.host: host \"host-9\" is not in the cluster (hosts: host-1, host-2, host-3)".into())
        );
        assert_eq!(
            parse(&obj(json!({"netem": {"host": "host-2", "node": "node-1", "delay": "5ms"}})), &nodes()),
            Err("spec.netem: give one of node, pod (NAMESPACE/NAME) or host".into())
        );
        assert_eq!(Target::Host("host-2".into()).to_string(), "host/host-2");
    }
}
