//! The emulated cloud load balancer's data plane (docs/architecture.md, "The cloud load
//! balancer"): the nftables table in the outside world's namespace that forwards each balancer
//! address to the healthy nodes' node ports ("instance" mode, NET-7). Which address a Service gets
//! is `emu_logic::loadbalancer`'s; the `emu-nodeagent cloud` daemon watches, health-checks and
//! applies.

use crate::proxy::Protocol;
use emu_api::typed::Service;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Family and name of the balancer's table in the outside world.
pub const TABLE: &str = "ip emu-cloud";

/// One port a balancer forwards: its port and the node port behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerModel {
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: u16,
}

/// One balancer: its address, ports and the nodes (ExternalIPs) that passed the health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerModel {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub listeners: Vec<ListenerModel>,
    pub healthy_nodes: Vec<Ipv4Addr>,
}

/// The listeners of a LoadBalancer Service: its ports with node ports.
pub fn listeners(svc: &Service) -> Vec<ListenerModel> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(ListenerModel {
                protocol: Protocol::from_k8s(p.protocol.as_deref())?,
                port: u16::try_from(p.port).ok()?,
                node_port: u16::try_from(p.node_port?).ok().filter(|&n| n > 0)?,
            })
        })
        .collect()
}

/// The whole balancer table as one transaction (it is small: one chain per listener), replacing
/// what was there. Established connections keep their translation (conntrack), so a change of
/// healthy nodes affects new connections only. A listener without healthy nodes rejects (the
/// client sees "connection refused"): in filter chains, as `reject` does nothing in a nat chain
/// (a client's SYN went out untranslated to an address no one holds, and its retries followed
/// the untranslated conntrack entry: a timeout).
pub fn render(balancers: &[BalancerModel]) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "add table {TABLE}\ndelete table {TABLE}\nadd table {TABLE}");
    for hook in ["prerouting", "output"] {
        let _ = writeln!(w, "add chain {TABLE} {hook} {{ type nat hook {hook} priority -100 ; policy accept ; }}");
    }
    for hook in ["forward", "output"] {
        let _ = writeln!(w, "add chain {TABLE} {hook}-filter {{ type filter hook {hook} priority 0 ; policy accept ; }}");
    }
    let _ = writeln!(w, "add map {TABLE} balancers {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}");
    let _ = writeln!(w, "add set {TABLE} unserved {{ type ipv4_addr . inet_proto . inet_service ; }}");
    let (mut elements, mut unserved) = (Vec::new(), Vec::new());
    for lb in balancers {
        for l in &lb.listeners {
            let key = format!("{} . {} . {}", lb.ip, l.protocol, l.port);
            if lb.healthy_nodes.is_empty() {
                unserved.push(key);
                continue;
            }
            let chain = format!("lb-{}/{}/{}/{}", lb.namespace, lb.name, l.protocol, l.port);
            let _ = writeln!(w, "add chain {TABLE} {chain}");
            let n = lb.healthy_nodes.len();
            for (k, node) in lb.healthy_nodes.iter().enumerate() {
                let choose = if k + 1 < n { format!("numgen random mod {} == 0 ", n - k) } else { String::new() };
                let _ = writeln!(w, "add rule {TABLE} {chain} {choose}meta l4proto {} dnat ip to {node}:{}", l.protocol, l.node_port);
            }
            elements.push(format!("{key} : goto {chain}"));
        }
    }
    for hook in ["prerouting", "output"] {
        let _ = writeln!(w, "add rule {TABLE} {hook} ip daddr . meta l4proto . th dport vmap @balancers");
    }
    for hook in ["forward", "output"] {
        let _ = writeln!(w, "add rule {TABLE} {hook}-filter ip daddr . meta l4proto . th dport @unserved reject");
    }
    if !elements.is_empty() {
        let _ = writeln!(w, "add element {TABLE} balancers {{ {} }}", elements.join(", "));
    }
    if !unserved.is_empty() {
        let _ = writeln!(w, "add element {TABLE} unserved {{ {} }}", unserved.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(name: &str) -> Service {
        emu_api::typed::decode(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "https", "protocol": "TCP", "port": 443, "nodePort": 32453}, {"port": 80}]}}))
        .unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn listeners_are_the_ports_with_node_ports() {
        assert_eq!(listeners(&lb("a")), vec![ListenerModel { protocol: Protocol::Tcp, port: 443, node_port: 32453 }]);
    }

    #[test]
    fn the_table_spreads_over_healthy_nodes_and_rejects_without_any() {
        let model = |nodes: Vec<Ipv4Addr>| BalancerModel {
            namespace: "default".into(),
            name: "my-nginx".into(),
            ip: ip("203.0.113.1"),
            listeners: listeners(&lb("my-nginx")),
            healthy_nodes: nodes,
        };
        let script = render(&[model(vec![ip("198.51.100.2"), ip("198.51.100.3")])]);
        assert!(
            script.contains("add rule ip emu-cloud lb-default/my-nginx/tcp/443 numgen random mod 2 == 0 meta l4proto tcp dnat ip to 198.51.100.2:32453\n"),
            "{script}"
        );
        assert!(
            script.contains("add rule ip emu-cloud lb-default/my-nginx/tcp/443 meta l4proto tcp dnat ip to 198.51.100.3:32453\n"),
            "{script}"
        );
        assert!(
            script.contains("add element ip emu-cloud balancers { 203.0.113.1 . tcp . 443 : goto lb-default/my-nginx/tcp/443 }"),
            "{script}"
        );
        let script = render(&[model(vec![])]);
        assert!(script.contains("add element ip emu-cloud unserved { 203.0.113.1 . tcp . 443 }"), "{script}");
        assert!(script.contains("add rule ip emu-cloud output-filter ip daddr . meta l4proto . th dport @unserved reject\n"), "{script}");
        assert!(!script.contains("add element ip emu-cloud balancers"), "{script}");
        assert!(!script.contains("chain ip emu-cloud lb-"), "{script}");
        assert!(!render(&[]).contains("add element"));
    }
}
