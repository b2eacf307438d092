//! The emulated cloud load balancer (docs/architecture.md, "The cloud load balancer"), as pure functions: which
//! address a LoadBalancer Service gets from the pool, which user requests are refused, and the
//! nftables table that forwards each balancer address to the nodes' node ports ("instance" mode,
//! NET-7) in the outside world's namespace. The `emu-nodeagent cloud` daemon does the watching,
//! health checking and applying.

use crate::ipam::Ipv4Cidr;
use crate::object;
use crate::proxy::Protocol;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Family and name of the balancer's table in the outside world.
pub const TABLE: &str = "ip emu-cloud";

/// `spec.loadBalancerIP`, when set.
pub fn requested_ip(svc: &Value) -> Option<&str> {
    object::str_at(svc, &["spec", "loadBalancerIP"]).filter(|s| !s.is_empty())
}

/// The addresses in `status.loadBalancer.ingress`.
pub fn ingress_ips(svc: &Value) -> Vec<Ipv4Addr> {
    object::at(svc, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str()?.parse().ok())
        .collect()
}

/// Whether the Service is one the balancer serves.
pub fn is_load_balancer(svc: &Value) -> bool {
    object::str_at(svc, &["spec", "type"]) == Some("LoadBalancer")
}

/// The API server's check of `spec.loadBalancerIP` against emu's cloud: a valid address, only on
/// a LoadBalancer Service, inside the pool, and not another Service's (`held_by` names the
/// Service holding an address, if any). The message is the field error, without the object.
pub fn check_requested_ip(svc: &Value, pool: Ipv4Cidr, held_by: impl Fn(Ipv4Addr) -> Option<String>) -> Result<(), String> {
    let Some(requested) = requested_ip(svc) else { return Ok(()) };
    if !is_load_balancer(svc) {
        return Err("spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'".into());
    }
    let ip: Ipv4Addr = requested.parse().map_err(|_| format!("spec.loadBalancerIP: Invalid value: {requested:?}: must be a valid IP address"))?;
    if !pool.contains(ip) || ip == pool.network() || ip == pool.broadcast() {
        return Err(format!("spec.loadBalancerIP: Invalid value: {requested:?}: not in the load balancer pool {pool}"));
    }
    match held_by(ip) {
        Some(other) => Err(format!("spec.loadBalancerIP: Invalid value: {requested:?}: already in use by Service {other}")),
        None => Ok(()),
    }
}

/// The balancer address for a Service: the one it asked for, else the lowest free one of the
/// pool (labs read better with 203.0.113.1, .2, … than with random addresses).
pub fn choose_ip(svc: &Value, pool: Ipv4Cidr, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    if let Some(ip) = requested_ip(svc).and_then(|r| r.parse().ok()) {
        return Some(ip);
    }
    (1..pool.size().saturating_sub(1)).filter_map(|i| pool.nth(u32::try_from(i).ok()?)).find(|ip| !used.contains(ip))
}

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
pub fn listeners(svc: &Value) -> Vec<ListenerModel> {
    object::at(svc, &["spec", "ports"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(ListenerModel {
                protocol: Protocol::from_k8s(p["protocol"].as_str())?,
                port: u16::try_from(p["port"].as_u64()?).ok()?,
                node_port: u16::try_from(p["nodePort"].as_u64()?).ok().filter(|&n| n > 0)?,
            })
        })
        .collect()
}

/// The whole balancer table as one transaction (it is small: one chain per listener), replacing
/// what was there. Established connections keep their translation (conntrack), so a change of
/// healthy nodes affects new connections only. A listener without healthy nodes rejects.
pub fn render(balancers: &[BalancerModel]) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "add table {TABLE}\ndelete table {TABLE}\nadd table {TABLE}");
    for hook in ["prerouting", "output"] {
        let _ = writeln!(w, "add chain {TABLE} {hook} {{ type nat hook {hook} priority -100 ; policy accept ; }}");
    }
    let _ = writeln!(w, "add chain {TABLE} reject-chain");
    let _ = writeln!(w, "add rule {TABLE} reject-chain reject");
    let _ = writeln!(w, "add map {TABLE} balancers {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}");
    let mut elements = Vec::new();
    for lb in balancers {
        for l in &lb.listeners {
            let key = format!("{} . {} . {}", lb.ip, l.protocol, l.port);
            if lb.healthy_nodes.is_empty() {
                elements.push(format!("{key} : goto reject-chain"));
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
    if !elements.is_empty() {
        let _ = writeln!(w, "add element {TABLE} balancers {{ {} }}", elements.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool() -> Ipv4Cidr {
        "203.0.113.0/24".parse().unwrap()
    }

    fn lb(name: &str, requested: Option<&str>) -> Value {
        let mut v = json!({"metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "https", "protocol": "TCP", "port": 443, "nodePort": 32453}, {"port": 80}]}});
        if let Some(ip) = requested {
            v["spec"]["loadBalancerIP"] = json!(ip);
        }
        v
    }

    #[test]
    fn addresses_come_from_the_pool_lowest_first_or_as_asked() {
        let used = BTreeSet::from([ip("203.0.113.1")]);
        assert_eq!(choose_ip(&lb("a", None), pool(), &BTreeSet::new()), Some(ip("203.0.113.1")));
        assert_eq!(choose_ip(&lb("a", None), pool(), &used), Some(ip("203.0.113.2")));
        assert_eq!(choose_ip(&lb("a", Some("203.0.113.77")), pool(), &used), Some(ip("203.0.113.77")));
        let full: BTreeSet<Ipv4Addr> = (1..255).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect();
        assert_eq!(choose_ip(&lb("a", None), pool(), &full), None);
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn requests_outside_the_pool_or_taken_are_refused() {
        let none = |_| None;
        assert_eq!(check_requested_ip(&lb("a", Some("203.0.113.9")), pool(), none), Ok(()));
        assert_eq!(
            check_requested_ip(&lb("a", Some("192.0.2.9")), pool(), none).unwrap_err(),
            "spec.loadBalancerIP: Invalid value: \"192.0.2.9\": not in the load balancer pool 203.0.113.0/24"
        );
        assert!(check_requested_ip(&lb("a", Some("203.0.113.255")), pool(), none).is_err());
        assert_eq!(
            check_requested_ip(&lb("a", Some("nope")), pool(), none).unwrap_err(),
            "spec.loadBalancerIP: Invalid value: \"nope\": must be a valid IP address"
        );
        let taken = |ip: Ipv4Addr| (ip.to_string() == "203.0.113.9").then(|| "default/other".to_string());
        assert_eq!(
            check_requested_ip(&lb("a", Some("203.0.113.9")), pool(), taken).unwrap_err(),
            "spec.loadBalancerIP: Invalid value: \"203.0.113.9\": already in use by Service default/other"
        );
        let mut cluster_ip = lb("a", Some("203.0.113.9"));
        cluster_ip["spec"]["type"] = json!("NodePort");
        assert_eq!(
            check_requested_ip(&cluster_ip, pool(), none).unwrap_err(),
            "spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'"
        );
    }

    #[test]
    fn listeners_are_the_ports_with_node_ports() {
        assert_eq!(listeners(&lb("a", None)), vec![ListenerModel { protocol: Protocol::Tcp, port: 443, node_port: 32453 }]);
    }

    #[test]
    fn the_table_spreads_over_healthy_nodes_and_rejects_without_any() {
        let model = |nodes: Vec<Ipv4Addr>| BalancerModel {
            namespace: "default".into(),
            name: "my-nginx".into(),
            ip: ip("203.0.113.1"),
            listeners: listeners(&lb("my-nginx", None)),
            healthy_nodes: nodes,
        };
        let script = render(&[model(vec![ip("198.51.100.2"), ip("198.51.100.3")])]);
        assert!(
            script.contains("add rule ip emu-cloud lb-default/my-nginx/tcp/443 numgen random mod 2 == 0 meta l4proto tcp dnat ip to 198.51.100.2:32453\n"),
            "{script}"
        );
        assert!(script.contains("add rule ip emu-cloud lb-default/my-nginx/tcp/443 meta l4proto tcp dnat ip to 198.51.100.3:32453\n"), "{script}");
        assert!(script.contains("add element ip emu-cloud balancers { 203.0.113.1 . tcp . 443 : goto lb-default/my-nginx/tcp/443 }"), "{script}");
        let script = render(&[model(vec![])]);
        assert!(script.contains("203.0.113.1 . tcp . 443 : goto reject-chain"), "{script}");
        assert!(!script.contains("chain ip emu-cloud lb-"), "{script}");
        assert!(!render(&[]).contains("add element"));
    }
}
