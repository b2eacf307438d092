//! IPv4 address management: node pod CIDRs, pod IPs, fabric (node network) IPs.
//!
//! Indexing convention (shared with `fabric_ip`): nodes are numbered from 0 in the order the
//! scenario lists them. Node i gets the i-th /24 of the cluster CIDR (10.244.i.0/24, so the first
//! node has 10.244.0.0/24, as in kind) and the fabric address 172.18.0.(i+2).

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix. `addr` is kept as written; `network()` masks the host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {input:?}: {reason} (expected e.g. 10.244.0.0/16)")]
pub struct CidrError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CidrError { input: s.to_string(), reason };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| err("missing /prefix"))?;
        let addr = addr.parse().map_err(|_| err("not an IPv4 address"))?;
        let prefix = prefix.parse::<u8>().ok().filter(|&p| p <= 32).ok_or_else(|| err("prefix must be 0..32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Ipv4Cidr { addr, prefix: prefix.min(32) }
    }

    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// The n-th address from the network address (0 = network), if inside the prefix.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (u64::from(n) < self.size()).then(|| Ipv4Addr::from(u32::from(self.network()) + n))
    }
}

/// The pod CIDR of node `node_index` (0-based): the index-th `/node_prefix` block of the cluster
/// CIDR. None when the block does not exist (prefix too short, or out of blocks).
pub fn node_pod_cidr(cluster_cidr: Ipv4Cidr, node_index: usize, node_prefix: u8) -> Option<Ipv4Cidr> {
    if node_prefix < cluster_cidr.prefix || node_prefix > 32 {
        return None;
    }
    let blocks = 1u64 << (node_prefix - cluster_cidr.prefix);
    let index = u64::try_from(node_index).ok().filter(|&i| i < blocks)?;
    let block = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, node_prefix).size();
    let base = u64::from(u32::from(cluster_cidr.network())) + index * block;
    Some(Ipv4Cidr::new(Ipv4Addr::from(u32::try_from(base).ok()?), node_prefix))
}

/// The first host address: the node's `cni0` bridge and its pods' default gateway.
pub fn gateway(cidr: Ipv4Cidr) -> Ipv4Addr {
    cidr.nth(1).unwrap_or(cidr.network())
}

/// The next free pod address after `last` (round robin, so a replacement pod gets a new IP, as
/// host-local IPAM does), skipping the network address, the gateway and the broadcast address.
/// None when the block is full.
pub fn allocate_pod_ip(cidr: Ipv4Cidr, used: &HashSet<Ipv4Addr>, last: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    // Usable: network+2 ..= broadcast-1.
    let first = u64::from(u32::from(cidr.network())) + 2;
    let end = u64::from(u32::from(cidr.broadcast())); // exclusive
    if first >= end {
        return None;
    }
    let count = end - first;
    let start = match last.map(|ip| u64::from(u32::from(ip))) {
        Some(l) if (first..end).contains(&l) => l + 1 - first,
        _ => 0,
    };
    (0..count).map(|i| Ipv4Addr::from(u32::try_from(first + (start + i) % count).unwrap_or_default())).find(|ip| !used.contains(ip))
}

/// A node's address on the fabric (its InternalIP): node i (0-based) = network + i + 2, leaving
/// .1 for the control plane ([`control_plane_ip`]).
pub fn fabric_ip(fabric: Ipv4Cidr, node_index: usize) -> Ipv4Addr {
    let offset = u32::try_from(node_index).unwrap_or(u32::MAX).saturating_add(2);
    Ipv4Addr::from(u32::from(fabric.network()).wrapping_add(offset))
}

/// The external client's address in the outside world (network + 1); node i has
/// [`fabric_ip`]`(outside, i)` there, as on the fabric.
pub fn outside_client_ip(outside: Ipv4Cidr) -> Ipv4Addr {
    outside.nth(1).unwrap_or(outside.network())
}

/// The control plane's address on the fabric (network + 1): where the API server answers behind
/// the `kubernetes` Service.
pub fn control_plane_ip(fabric: Ipv4Cidr) -> Ipv4Addr {
    fabric.nth(1).unwrap_or(fabric.network())
}

/// The size of the lower band of a service CIDR, kept for addresses users choose (SVC-6):
/// `min(max(16, size/16), 256)`.
pub fn service_static_band(cidr: Ipv4Cidr) -> u64 {
    (cidr.size() / 16).clamp(16, 256)
}

/// A free ClusterIP (SVC-6): picked from the upper band at a position given by `entropy` (so
/// picks look random, as the API server's do) and probing upwards from there; the lower band is
/// used only when the upper one is full. Network and broadcast addresses are never given out.
pub fn allocate_service_ip(cidr: Ipv4Cidr, used: &HashSet<Ipv4Addr>, entropy: u64) -> Option<Ipv4Addr> {
    let network = u64::from(u32::from(cidr.network()));
    let end = u64::from(u32::from(cidr.broadcast())); // exclusive
    let lower_end = (network + service_static_band(cidr)).min(end);
    let free_in = |from: u64, to: u64, start: u64| {
        let count = to.saturating_sub(from);
        (0..count).map(|i| Ipv4Addr::from(u32::try_from(from + (start + i) % count).unwrap_or_default())).find(|ip| !used.contains(ip))
    };
    let upper = lower_end.max(network + 1);
    let span = end.saturating_sub(upper).max(1);
    free_in(upper, end, entropy % span).or_else(|| free_in(network + 1, lower_end, 0))
}

/// Checks a ClusterIP the user asked for (SVC-7): inside the range and free. The error is the API
/// server's field error (ERR-9, ERR-10).
pub fn check_requested_service_ip(cidr: Ipv4Cidr, requested: Ipv4Addr, used: &HashSet<Ipv4Addr>) -> Result<(), String> {
    let prefix = format!("spec.clusterIPs: Invalid value: []string{{\"{requested}\"}}: failed to allocate IP {requested}: ");
    let reserved = requested == cidr.network() || requested == cidr.broadcast();
    if !cidr.contains(requested) || reserved {
        return Err(format!("{prefix}the provided IP ({requested}) is not in the valid range. The range of valid IPs is {cidr}"));
    }
    if used.contains(&requested) {
        return Err(format!("{prefix}provided IP is already allocated"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_arithmetic() {
        let c = cidr("10.244.3.7/24");
        assert_eq!(c.to_string(), "10.244.3.7/24");
        assert_eq!((c.network(), c.broadcast(), c.size()), (ip("10.244.3.0"), ip("10.244.3.255"), 256));
        assert!(c.contains(ip("10.244.3.200")) && !c.contains(ip("10.244.4.1")));
        assert_eq!(c.nth(10), Some(ip("10.244.3.10")));
        assert_eq!(c.nth(256), None);
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert_eq!(cidr("10.96.0.0/12").broadcast(), ip("10.111.255.255"));
        for bad in ["10.0.0.0", "10.0.0/8", "10.0.0.0/33", "x/8"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn node_cidrs_and_gateways() {
        let cluster = cidr("10.244.0.0/16");
        assert_eq!(node_pod_cidr(cluster, 0, 24), Some(cidr("10.244.0.0/24")));
        assert_eq!(node_pod_cidr(cluster, 3, 24), Some(cidr("10.244.3.0/24")));
        assert_eq!(node_pod_cidr(cluster, 255, 24), Some(cidr("10.244.255.0/24")));
        assert_eq!(node_pod_cidr(cluster, 256, 24), None);
        assert_eq!(node_pod_cidr(cluster, 0, 8), None);
        assert_eq!(gateway(cidr("10.244.3.0/24")), ip("10.244.3.1"));
        let fabric = cidr("172.18.0.0/16");
        assert_eq!((fabric_ip(fabric, 0), fabric_ip(fabric, 1)), (ip("172.18.0.2"), ip("172.18.0.3")));
    }

    #[test]
    fn pod_ips_round_robin() {
        let c = cidr("10.244.1.0/24");
        let mut used = HashSet::new();
        let a = allocate_pod_ip(c, &used, None).unwrap();
        assert_eq!(a, ip("10.244.1.2"));
        used.insert(a);
        let b = allocate_pod_ip(c, &used, Some(a)).unwrap();
        assert_eq!(b, ip("10.244.1.3"));
        // `a` is released, but the next pod still gets a fresh address.
        used.remove(&a);
        used.insert(b);
        assert_eq!(allocate_pod_ip(c, &used, Some(b)), Some(ip("10.244.1.4")));
        // Wraps around past the broadcast address, skipping network and gateway.
        assert_eq!(allocate_pod_ip(c, &used, Some(ip("10.244.1.254"))), Some(ip("10.244.1.2")));
        // A `last` outside the block starts from the beginning.
        assert_eq!(allocate_pod_ip(c, &used, Some(ip("192.168.0.1"))), Some(ip("10.244.1.2")));
    }

    #[test]
    fn full_and_tiny_blocks() {
        let c = cidr("10.244.1.0/29"); // .2 ..= .6 usable
        let used: HashSet<_> = (2..=6).map(|i| Ipv4Addr::new(10, 244, 1, i)).collect();
        assert_eq!(allocate_pod_ip(c, &used, None), None);
        let mut almost = used.clone();
        almost.remove(&ip("10.244.1.4"));
        assert_eq!(allocate_pod_ip(c, &almost, Some(ip("10.244.1.5"))), Some(ip("10.244.1.4")));
        assert_eq!(allocate_pod_ip(cidr("10.0.0.0/31"), &HashSet::new(), None), None);
        assert_eq!(allocate_pod_ip(cidr("10.0.0.0/30"), &HashSet::new(), None), Some(ip("10.0.0.2")));
    }

    #[test]
    fn service_ips_come_from_the_upper_band_and_look_random() {
        let cidr: Ipv4Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(service_static_band(cidr), 256);
        let mut used = HashSet::new();
        let a = allocate_service_ip(cidr, &used, 12345).unwrap();
        let b = allocate_service_ip(cidr, &used, 987_654_321).unwrap();
        assert!(a != b && cidr.contains(a) && cidr.contains(b));
        for ip in [a, b] {
            assert!(u32::from(ip) >= u32::from(Ipv4Addr::new(10, 96, 1, 0)), "{ip} is in the static band");
        }
        used.insert(a);
        assert_ne!(allocate_service_ip(cidr, &used, 12345), Some(a), "a used address is skipped");
        // A tiny range: upper band full, the lower band is used; then nothing is left.
        let small: Ipv4Cidr = "10.0.0.0/28".parse().unwrap();
        assert_eq!(service_static_band(small), 16);
        let mut used = HashSet::new();
        for _ in 0..14 {
            let ip = allocate_service_ip(small, &used, 7).unwrap();
            assert!(ip != small.network() && ip != small.broadcast());
            assert!(used.insert(ip));
        }
        assert_eq!(allocate_service_ip(small, &used, 7), None);
    }

    #[test]
    fn requested_service_ips_err9_err10() {
        let cidr: Ipv4Cidr = "10.96.0.0/12".parse().unwrap();
        let used: HashSet<Ipv4Addr> = [Ipv4Addr::new(10, 96, 0, 10)].into();
        assert_eq!(check_requested_service_ip(cidr, Ipv4Addr::new(10, 96, 0, 20), &used), Ok(()));
        assert_eq!(
            check_requested_service_ip(cidr, Ipv4Addr::new(1, 1, 1, 1), &used).unwrap_err(),
            "spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        assert_eq!(
            check_requested_service_ip(cidr, Ipv4Addr::new(10, 96, 0, 10), &used).unwrap_err(),
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
    }
}
