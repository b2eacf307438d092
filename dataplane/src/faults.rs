//! The rules that apply network faults on a node, as one pure [`fault_plan`]: the nftables table
//! of the partitions, the link emulator's queues (what it does to the packets of each link and
//! direction), the iptables rules that send a link's packets to those queues, and whether the
//! node's link is down. The node agent diffs the plan with what it applied and carries out the
//! difference (`nodeagent/src/faults.rs`).
//!
//! Where faults cut in (docs/architecture.md, "Where faults cut in"): partitions drop at -300
//! in `prerouting`/`output`, before conntrack; a link's impairments queue its packets after
//! conntrack and before NAT on the way in (mangle `PREROUTING`) and before SNAT on the way out
//! (mangle `POSTROUTING`). A pod's link is impaired inside the pod's own namespace: the node's
//! end of a pod veth is a bridge port, whose packets never reach the node's IP hooks.

use emu_api::fault::{FaultSpec, Netem, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Family and name of a node's partition table.
pub const TABLE: &str = "ip emu-faults";

/// The link impaired: the node's `eth0` (to the fabric), or a pod's `eth0` in the pod's namespace.
pub const LINK: &str = "eth0";

/// The queues of the node's own link (out; in is the next) and the first of its pods' links.
pub const NODE_QUEUE: u16 = 100;
pub const POD_QUEUES: u16 = 200;
/// The first queue of emulated hosts' LAN links (the controller's link emulator; [`host_link_plan`]).
pub const HOST_QUEUES: u16 = 300;

/// The mark of every duplicate the link emulator sends: the queue rules skip it.
pub const COPY_MARK: u32 = 0x200;
/// The mark of a duplicate that the node's `raw` table sends untracked.
pub const UNTRACKED_MARK: u32 = 0x400;
/// Marks the queue rules set on a packet leaving a link that is duplicated: conntrack's
/// `--ctstate DNAT`, `--ctstate SNAT` and `--ctdir REPLY` (how the emulator copies it, see
/// `host/src/linkemu.rs`).
pub const DNAT_BIT: u32 = 0x800;
pub const SNAT_BIT: u32 = 0x1000;
pub const REPLY_BIT: u32 = 0x2000;

/// A pod of this node whose network namespace exists (its sandbox is set up): a pod's link can
/// be impaired only then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    pub namespace: String,
    pub name: String,
    /// Its network namespace's name.
    pub netns: String,
}

/// What a node's faults are planned from.
#[derive(Debug, Clone, Copy)]
pub struct FaultInputs<'a> {
    /// This node's name.
    pub node: &'a str,
    /// The faults to apply here, by name.
    pub faults: &'a [(String, FaultSpec)],
    /// Every node's addresses (InternalIP, pod CIDR) by name, for the partitions.
    pub addresses: &'a BTreeMap<String, Vec<String>>,
    /// This node's pods whose namespace exists.
    pub pods: &'a [LocalPod],
}

/// What one queue of the link emulator does to its packets.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub netem: Netem,
    /// Whether the queue holds the packets leaving the link (its `POSTROUTING` hook) rather than
    /// those arriving (`PREROUTING`).
    pub leaving: bool,
    /// The network namespace whose rules queue the packets: None for the node's, a pod's name
    /// for a pod's link, a host's for an emulated host's LAN link.
    pub netns: Option<String>,
}

/// The rules of one namespace's `mangle` and `raw` tables (iptables, not nft: the kernel has
/// NFQUEUE only as an x_tables target). Empty: both tables flushed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IptablesRules {
    pub mangle: Vec<String>,
    pub raw: Vec<String>,
}

impl IptablesRules {
    /// The `iptables-restore` input that makes both tables exactly these rules, each table in
    /// one transaction.
    pub fn restore_input(&self) -> String {
        let mut out = String::from(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
        );
        self.mangle.iter().for_each(|r| writeln!(out, "{r}").expect("writing to a String"));
        out.push_str("COMMIT\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        self.raw.iter().for_each(|r| writeln!(out, "{r}").expect("writing to a String"));
        out.push_str("COMMIT\n");
        out
    }

    pub fn is_empty(&self) -> bool {
        self.mangle.is_empty() && self.raw.is_empty()
    }
}

/// What must be in place for a fault to be in effect on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// The partition table.
    Partition,
    /// A link's rules in namespace `netns` (None: the node's) and both of its queues bound.
    Link { netns: Option<String>, queues: [u16; 2] },
    /// The node's link down.
    LinkDown,
    /// Nothing this node can do yet: a pod's link whose pod is not here or has no namespace yet.
    Unreachable,
}

/// Everything a node's kernel and link emulator should hold for its faults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// The `nft -f -` script of table [`TABLE`] (it deletes the table when no partition is in
    /// force).
    pub partition_script: String,
    /// The link emulator's queues by number: two per impaired link (out, then in).
    pub queues: BTreeMap<u16, Queue>,
    /// The iptables rules of each namespace with impaired links (None: the node's, else a pod's
    /// by name). A namespace not listed should have none.
    pub iptables: BTreeMap<Option<String>, IptablesRules>,
    /// Whether the node's link should be down.
    pub link_down: bool,
    /// What each fault (by name) needs in place to be in effect.
    pub needs: BTreeMap<String, Needs>,
}

/// The plan of a node's faults: see [`FaultPlan`].
pub fn fault_plan(inputs: &FaultInputs) -> FaultPlan {
    let mut plan = FaultPlan {
        partition_script: partition_script(inputs.faults, inputs.addresses),
        queues: BTreeMap::new(),
        iptables: BTreeMap::new(),
        link_down: false,
        needs: BTreeMap::new(),
    };
    // Link impairments: the node's link and its pods' links, each direction to a queue.
    let by_target = netem_by_target(inputs.faults);
    let mut links: BTreeMap<Target, Needs> = BTreeMap::new();
    if let Some(netem) = by_target.get(&Target::Node(inputs.node.to_string())) {
        plan.queue_link(None, NODE_QUEUE, netem);
        links.insert(Target::Node(inputs.node.to_string()), Needs::Link { netns: None, queues: [NODE_QUEUE, NODE_QUEUE + 1] });
    }
    let mut next = POD_QUEUES;
    for (target, netem) in &by_target {
        let Target::Pod { namespace, name } = target else { continue };
        let Some(pod) = inputs.pods.iter().find(|p| p.namespace == *namespace && p.name == *name) else { continue };
        plan.queue_link(Some(pod.netns.clone()), next, netem);
        links.insert(target.clone(), Needs::Link { netns: Some(pod.netns.clone()), queues: [next, next + 1] });
        next += 2;
    }
    for (name, spec) in inputs.faults {
        let needs = match spec {
            FaultSpec::Partition { .. } => Needs::Partition,
            FaultSpec::Netem { target, .. } => links.get(target).cloned().unwrap_or(Needs::Unreachable),
            FaultSpec::LinkDown { node } if node == inputs.node => {
                plan.link_down = true;
                Needs::LinkDown
            }
            // Host faults are the controller's (the LAN table is `emu_logic::faults::lan`'s); agents
            // never hold them.
            FaultSpec::LinkDown { .. } | FaultSpec::NodeStop { .. } | FaultSpec::HostPartition { .. } | FaultSpec::HostStop { .. } => {
                Needs::Unreachable
            }
        };
        plan.needs.insert(name.clone(), needs);
    }
    plan
}

/// The plan of emulated hosts' LAN links (`emu fault delay host/host-2 50ms`), which the
/// controller carries out: each impaired host's `eth0` (its link to the LAN, in its namespace,
/// `host_netns` by host name) queued both ways as a pod's link is (the host's own traffic, the
/// overlay's and the control plane's, is translated by nobody on the way). A host without a
/// namespace here is [`Needs::Unreachable`]. The plan has no partition script and no link down:
/// those are the LAN table's and the provider's.
pub fn host_link_plan(faults: &[(String, FaultSpec)], host_netns: &BTreeMap<String, String>) -> FaultPlan {
    let mut plan = FaultPlan {
        partition_script: String::new(),
        queues: BTreeMap::new(),
        iptables: BTreeMap::new(),
        link_down: false,
        needs: BTreeMap::new(),
    };
    let mut links: BTreeMap<Target, Needs> = BTreeMap::new();
    let mut next = HOST_QUEUES;
    for (target, netem) in netem_by_target(faults) {
        let Target::Host(host) = &target else { continue };
        let Some(netns) = host_netns.get(host) else { continue };
        plan.queue_link(Some(netns.clone()), next, &netem);
        links.insert(target.clone(), Needs::Link { netns: Some(netns.clone()), queues: [next, next + 1] });
        next += 2;
    }
    for (name, spec) in faults {
        if let FaultSpec::Netem { target: target @ Target::Host(_), .. } = spec {
            plan.needs.insert(name.clone(), links.get(target).cloned().unwrap_or(Needs::Unreachable));
        }
    }
    plan
}

impl FaultPlan {
    /// Queues `q` (leaving) and `q + 1` (arriving) for the link `eth0` of namespace `netns`
    /// (None: the node's), and the rules that send its packets there.
    fn queue_link(&mut self, netns: Option<String>, q: u16, netem: &Netem) {
        let rules = self.iptables.entry(netns.clone()).or_default();
        let mangle = &mut rules.mangle;
        // The emulator's own duplicates pass (they were queued once already).
        let copies = format!("-m mark --mark {COPY_MARK:#x}/{COPY_MARK:#x} -j RETURN");
        mangle.push(format!("-A POSTROUTING {copies}"));
        mangle.push(format!("-A PREROUTING {copies}"));
        // Leaving through the link, and arriving through it. What conntrack knows of a packet
        // leaving the node tells the emulator how to copy it; a pod translates nothing.
        if netem.duplicate.is_some() && netns.is_none() {
            for (matched, bit) in [("--ctstate DNAT", DNAT_BIT), ("--ctstate SNAT", SNAT_BIT), ("--ctdir REPLY", REPLY_BIT)] {
                mangle.push(format!("-A POSTROUTING -o {LINK} -m conntrack {matched} -j MARK --or-mark {bit:#x}"));
            }
        }
        // --queue-bypass: until the emulator has bound the queue, packets pass unimpaired.
        mangle.push(format!("-A POSTROUTING -o {LINK} -j NFQUEUE --queue-num {q} --queue-bypass"));
        mangle.push(format!("-A PREROUTING -i {LINK} -j NFQUEUE --queue-num {} --queue-bypass", q + 1));
        // The emulator's untracked duplicates skip conntrack.
        let untracked = format!("-A OUTPUT -m mark --mark {UNTRACKED_MARK:#x}/{UNTRACKED_MARK:#x} -j CT --notrack");
        if !rules.raw.contains(&untracked) {
            rules.raw.push(untracked);
        }
        self.queues.insert(q, Queue { netem: netem.clone(), leaving: true, netns: netns.clone() });
        self.queues.insert(q + 1, Queue { netem: netem.clone(), leaving: false, netns });
    }
}

/// What a node has achieved of its plan: whether the partition script is applied, the
/// namespaces whose iptables rules are as planned, the queues the emulator has bound, and
/// whether the link is as planned.
#[derive(Debug, Clone, Default)]
pub struct Achieved {
    pub partition: bool,
    pub iptables: BTreeSet<Option<String>>,
    pub bound: BTreeSet<u16>,
    pub link: bool,
}

/// The faults of `plan` in effect, given what has been achieved.
pub fn in_effect(plan: &FaultPlan, achieved: &Achieved) -> BTreeSet<String> {
    let done = |needs: &Needs| match needs {
        Needs::Partition => achieved.partition,
        Needs::Link { netns, queues } => achieved.iptables.contains(netns) && queues.iter().all(|q| achieved.bound.contains(q)),
        Needs::LinkDown => achieved.link && plan.link_down,
        Needs::Unreachable => false,
    };
    plan.needs.iter().filter(|(_, needs)| done(needs)).map(|(name, _)| name.clone()).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            script
                .contains("add rule ip emu-faults in ip saddr { 172.18.0.2, 10.244.0.0/24 } ip daddr { 172.18.0.3, 10.244.1.0/24 } drop\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "add rule ip emu-faults out ip saddr { 172.18.0.3, 10.244.1.0/24 } ip daddr { 172.18.0.2, 10.244.0.0/24 } drop\n"
            ),
            "{script}"
        );
        let one = [("p".to_string(), FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into()], one_way: true })];
        assert_eq!(partition_script(&one, &addresses).matches(" drop").count(), 2);
        assert_eq!(partition_script(&[], &addresses), "add table ip emu-faults\ndelete table ip emu-faults\n");
    }

    fn netem(f: impl FnOnce(&mut Netem)) -> Netem {
        let mut n = Netem::default();
        f(&mut n);
        n
    }

    fn addresses() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("node-1".to_string(), vec!["172.18.0.2".to_string(), "10.244.0.0/24".to_string()]),
            ("node-2".to_string(), vec!["172.18.0.3".to_string(), "10.244.1.0/24".to_string()]),
        ])
    }

    fn pod(name: &str, netns: &str) -> LocalPod {
        LocalPod { namespace: "default".into(), name: name.into(), netns: netns.into() }
    }

    fn pod_target(name: &str) -> Target {
        Target::Pod { namespace: "default".into(), name: name.into() }
    }

    #[test]
    fn nothing_to_do_flushes_everything() {
        let addresses = addresses();
        let plan = fault_plan(&FaultInputs { node: "node-1", faults: &[], addresses: &addresses, pods: &[] });
        assert_eq!(plan.partition_script, "add table ip emu-faults\ndelete table ip emu-faults\n");
        assert!(plan.queues.is_empty() && plan.iptables.is_empty() && plan.needs.is_empty() && !plan.link_down);
        assert_eq!(
            IptablesRules::default().restore_input(),
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
             COMMIT\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        );
    }

    #[test]
    fn the_nodes_link_queues_both_ways_and_marks_what_conntrack_knows_for_duplicates() {
        let addresses = addresses();
        let faults =
            [("dup".to_string(), FaultSpec::Netem { target: Target::Node("node-1".into()), netem: netem(|n| n.duplicate = Some(5.0)) })];
        let plan = fault_plan(&FaultInputs { node: "node-1", faults: &faults, addresses: &addresses, pods: &[] });
        assert_eq!(plan.iptables.keys().collect::<Vec<_>>(), [&None]);
        assert_eq!(
            plan.iptables[&None].restore_input(),
            "*mangle\n\
             :PREROUTING ACCEPT [0:0]\n\
             :INPUT ACCEPT [0:0]\n\
             :FORWARD ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n\
             :POSTROUTING ACCEPT [0:0]\n\
             -A POSTROUTING -m mark --mark 0x200/0x200 -j RETURN\n\
             -A PREROUTING -m mark --mark 0x200/0x200 -j RETURN\n\
             -A POSTROUTING -o eth0 -m conntrack --ctstate DNAT -j MARK --or-mark 0x800\n\
             -A POSTROUTING -o eth0 -m conntrack --ctstate SNAT -j MARK --or-mark 0x1000\n\
             -A POSTROUTING -o eth0 -m conntrack --ctdir REPLY -j MARK --or-mark 0x2000\n\
             -A POSTROUTING -o eth0 -j NFQUEUE --queue-num 100 --queue-bypass\n\
             -A PREROUTING -i eth0 -j NFQUEUE --queue-num 101 --queue-bypass\n\
             COMMIT\n\
             *raw\n\
             :PREROUTING ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n\
             -A OUTPUT -m mark --mark 0x400/0x400 -j CT --notrack\n\
             COMMIT\n"
        );
        let dup = netem(|n| n.duplicate = Some(5.0));
        assert_eq!(
            plan.queues,
            BTreeMap::from([
                (100, Queue { netem: dup.clone(), leaving: true, netns: None }),
                (101, Queue { netem: dup, leaving: false, netns: None }),
            ])
        );
        assert_eq!(plan.needs["dup"], Needs::Link { netns: None, queues: [100, 101] });
    }

    #[test]
    fn pods_links_are_queued_in_their_namespaces_once_there() {
        let addresses = addresses();
        let delay = netem(|n| n.delay_ms = Some(50.0));
        let faults = [
            ("a".to_string(), FaultSpec::Netem { target: pod_target("web-a"), netem: delay.clone() }),
            // Duplication in a pod: no conntrack marks (a pod translates nothing).
            ("b".to_string(), FaultSpec::Netem { target: pod_target("web-b"), netem: netem(|n| n.duplicate = Some(1.0)) }),
            ("c".to_string(), FaultSpec::Netem { target: pod_target("not-here-yet"), netem: delay.clone() }),
        ];
        let pods = [pod("web-b", "emu-c-pod-2"), pod("web-a", "emu-c-pod-1"), pod("idle", "emu-c-pod-3")];
        let plan = fault_plan(&FaultInputs { node: "node-1", faults: &faults, addresses: &addresses, pods: &pods });
        // Queue pairs in the order of the targets (namespace, name), from 200.
        assert_eq!(plan.needs["a"], Needs::Link { netns: Some("emu-c-pod-1".into()), queues: [200, 201] });
        assert_eq!(plan.needs["b"], Needs::Link { netns: Some("emu-c-pod-2".into()), queues: [202, 203] });
        assert_eq!(plan.needs["c"], Needs::Unreachable);
        assert_eq!(plan.queues[&201], Queue { netem: delay, leaving: false, netns: Some("emu-c-pod-1".into()) });
        assert_eq!(plan.queues.len(), 4);
        let b = &plan.iptables[&Some("emu-c-pod-2".to_string())];
        assert_eq!(
            b.mangle,
            [
                "-A POSTROUTING -m mark --mark 0x200/0x200 -j RETURN",
                "-A PREROUTING -m mark --mark 0x200/0x200 -j RETURN",
                "-A POSTROUTING -o eth0 -j NFQUEUE --queue-num 202 --queue-bypass",
                "-A PREROUTING -i eth0 -j NFQUEUE --queue-num 203 --queue-bypass",
            ]
        );
        assert_eq!(b.raw, ["-A OUTPUT -m mark --mark 0x400/0x400 -j CT --notrack"]);
        assert!(!plan.iptables.contains_key(&None), "the node's own link is not impaired");
    }

    #[test]
    fn faults_are_in_effect_once_what_they_need_is_in_place() {
        let addresses = addresses();
        let faults = [
            ("cut".to_string(), FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into()], one_way: false }),
            ("slow".to_string(), FaultSpec::Netem { target: Target::Node("node-1".into()), netem: netem(|n| n.delay_ms = Some(10.0)) }),
            ("down".to_string(), FaultSpec::LinkDown { node: "node-1".into() }),
            ("theirs".to_string(), FaultSpec::LinkDown { node: "node-2".into() }),
        ];
        let plan = fault_plan(&FaultInputs { node: "node-1", faults: &faults, addresses: &addresses, pods: &[] });
        assert!(plan.link_down);
        assert!(plan.partition_script.contains("add chain ip emu-faults in"), "{}", plan.partition_script);
        assert!(in_effect(&plan, &Achieved::default()).is_empty());
        let mut achieved = Achieved { partition: true, link: true, ..Default::default() };
        assert_eq!(in_effect(&plan, &achieved), BTreeSet::from(["cut".to_string(), "down".to_string()]));
        // The rules alone are not enough: both queues must be bound.
        achieved.iptables.insert(None);
        achieved.bound.insert(100);
        assert!(!in_effect(&plan, &achieved).contains("slow"));
        achieved.bound.insert(101);
        assert_eq!(in_effect(&plan, &achieved).len(), 3);
    }
    #[test]
    fn hosts_lan_links_are_queued_in_the_hosts_namespaces_and_no_agent_plans_them() {
        let delay = netem(|n| n.delay_ms = Some(50.0));
        let loss = netem(|n| n.loss = Some(10.0));
        let host = |h: &str| Target::Host(h.into());
        let faults = [
            ("delay-1".to_string(), FaultSpec::Netem { target: host("host-2"), netem: delay.clone() }),
            ("loss-1".to_string(), FaultSpec::Netem { target: host("host-3"), netem: loss.clone() }),
            ("loss-2".to_string(), FaultSpec::Netem { target: host("host-2"), netem: loss.clone() }),
            ("far".to_string(), FaultSpec::Netem { target: host("host-9"), netem: loss.clone() }),
            ("node".to_string(), FaultSpec::Netem { target: Target::Node("node-1".into()), netem: delay.clone() }),
        ];
        let netns =
            BTreeMap::from([("host-2".to_string(), "emu-c-host-2".to_string()), ("host-3".to_string(), "emu-c-host-3".to_string())]);
        let plan = host_link_plan(&faults, &netns);
        let both = delay.merged(&loss);
        assert_eq!(
            plan.queues,
            BTreeMap::from([
                (300, Queue { netem: both.clone(), leaving: true, netns: Some("emu-c-host-2".into()) }),
                (301, Queue { netem: both, leaving: false, netns: Some("emu-c-host-2".into()) }),
                (302, Queue { netem: loss.clone(), leaving: true, netns: Some("emu-c-host-3".into()) }),
                (303, Queue { netem: loss, leaving: false, netns: Some("emu-c-host-3".into()) }),
            ])
        );
        let rules = &plan.iptables[&Some("emu-c-host-2".to_string())].mangle;
        assert!(rules.contains(&"-A POSTROUTING -o eth0 -j NFQUEUE --queue-num 300 --queue-bypass".to_string()), "{rules:?}");
        assert!(rules.contains(&"-A PREROUTING -i eth0 -j NFQUEUE --queue-num 301 --queue-bypass".to_string()), "{rules:?}");
        assert_eq!(plan.iptables.len(), 2);
        let link = |ns: &str, q: u16| Needs::Link { netns: Some(ns.into()), queues: [q, q + 1] };
        assert_eq!(
            plan.needs,
            BTreeMap::from([
                ("delay-1".to_string(), link("emu-c-host-2", 300)),
                ("loss-1".to_string(), link("emu-c-host-3", 302)),
                ("loss-2".to_string(), link("emu-c-host-2", 300)),
                ("far".to_string(), Needs::Unreachable),
            ]),
            "a node's fault is the agents'"
        );
        assert!(plan.partition_script.is_empty() && !plan.link_down);
        // An agent's plan leaves the hosts' links alone.
        let addresses = addresses();
        let node = fault_plan(&FaultInputs { node: "node-1", faults: &faults, addresses: &addresses, pods: &[] });
        assert_eq!(node.queues.keys().collect::<Vec<_>>(), [&100, &101]);
        assert_eq!(node.needs["delay-1"], Needs::Unreachable);
    }
}
