//! The emulated cloud load balancer's addresses (docs/architecture.md, "The cloud load
//! balancer"), as pure functions: which address a LoadBalancer Service gets from the pool and
//! which user requests are refused. Its forwarding table is `emu_dataplane::cloud`'s.

use crate::ipam::Ipv4Cidr;
use emu_api::typed::Service;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// `spec.loadBalancerIP`, when set.
pub fn requested_ip(svc: &Service) -> Option<&str> {
    svc.spec.as_ref()?.load_balancer_ip.as_deref().filter(|s| !s.is_empty())
}

/// The addresses in `status.loadBalancer.ingress`.
pub fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect()
}

/// Whether the Service is one the balancer serves.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The API server's check of `spec.loadBalancerIP` against emu's cloud: a valid address, only on
/// a LoadBalancer Service, inside the pool, and not another Service's (`held_by` names the
/// Service holding an address, if any). The message is the field error, without the object.
pub fn check_requested_ip(svc: &Service, pool: Ipv4Cidr, held_by: impl Fn(Ipv4Addr) -> Option<String>) -> Result<(), String> {
    let Some(requested) = requested_ip(svc) else { return Ok(()) };
    if !is_load_balancer(svc) {
        return Err("spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'".into());
    }
    let ip: Ipv4Addr =
        requested.parse().map_err(|_| format!("spec.loadBalancerIP: Invalid value: {requested:?}: must be a valid IP address"))?;
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
pub fn choose_ip(svc: &Service, pool: Ipv4Cidr, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    if let Some(ip) = requested_ip(svc).and_then(|r| r.parse().ok()) {
        return Some(ip);
    }
    (1..pool.size().saturating_sub(1)).filter_map(|i| pool.nth(u32::try_from(i).ok()?)).find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool() -> Ipv4Cidr {
        "203.0.113.0/24".parse().unwrap()
    }

    fn lb(name: &str, requested: Option<&str>) -> Service {
        let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "https", "protocol": "TCP", "port": 443, "nodePort": 32453}, {"port": 80}]}});
        if let Some(ip) = requested {
            v["spec"]["loadBalancerIP"] = json!(ip);
        }
        emu_api::typed::decode(&v).unwrap()
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
        cluster_ip.spec.as_mut().unwrap().type_ = Some("NodePort".into());
        assert_eq!(
            check_requested_ip(&cluster_ip, pool(), none).unwrap_err(),
            "spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'"
        );
    }
}
