//! The rules that apply network faults on a node: the netem of each link (what the agent's link
//! emulator does to each queue) and the nftables table of a partition.

use emu_api::fault::{FaultSpec, Netem, Target};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Family and name of a node's partition table.
pub const TABLE: &str = "ip emu-faults";

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
}
