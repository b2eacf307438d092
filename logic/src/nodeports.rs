//! Node ports (SVC-9, SVC-10, SVC-11, SVC-15): the range, the allocator, and what
//! the API server's registry does with a Service's `nodePort`s and `healthCheckNodePort` when the
//! Service is created or updated. Pure: the caller passes the ports other Services hold and the
//! randomness, and writes the result.
//!
//! Kubernetes keeps one bitmap of node port *numbers* for the whole cluster
//! (`pkg/registry/core/service/portallocator`, whose `Allocate(int)` knows no protocol), so a number
//! held by one Service, whatever its protocol, is "already allocated" for every other Service.
//! Only inside one Service may a number serve two protocols: 53/TCP and 53/UDP get the same port
//! (SVC-10), and validation rejects the same number twice for one protocol (ERR-3).

use emu_api::typed::{Service, ServicePort, ServiceSpec};
use emu_api::validation::{FieldError, FieldErrorKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// An inclusive range of ports (`--service-node-port-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// The API server's default node port range (B-3).
pub const NODE_PORT_RANGE: PortRange = PortRange { first: 30000, last: 32767 };

impl PortRange {
    pub fn size(&self) -> u32 {
        (u32::from(self.last) + 1).saturating_sub(u32::from(self.first))
    }

    pub fn contains(&self, port: i64) -> bool {
        (i64::from(self.first)..=i64::from(self.last)).contains(&port)
    }

    /// How many ports at the bottom of the range are kept for users who choose their port
    /// (`calculateRangeOffset`: `min(max(16, size/32), 128)`, none for ranges of 16 or less):
    /// 86 for the default range, i.e. 30000-30085.
    pub fn static_band(&self) -> u32 {
        let size = self.size();
        if size <= 16 {
            0
        } else {
            (size / 32).clamp(16, 128)
        }
    }
}

impl fmt::Display for PortRange {
    /// Go's `net.PortRange.String()`: `30000-32767`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The port allocator's errors, worded as Kubernetes' `portallocator` words them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    NotInRange(PortRange),
    #[error("provided port is already allocated")]
    Allocated,
    #[error("range is full")]
    Full,
}

/// A free port (SVC-9): from the dynamic band (above [`PortRange::static_band`]) at a position
/// given by `entropy`, probing upwards and wrapping around, so that picks look random as the API
/// server's do; from the static band (same way) only when the dynamic one is full.
pub fn allocate_node_port(range: PortRange, used: impl Fn(u16) -> bool, entropy: u64) -> Option<u16> {
    let first = u32::from(range.first);
    let band = range.static_band();
    let free_in = |from: u32, count: u32| -> Option<u16> {
        if count == 0 {
            return None;
        }
        let start = u32::try_from(entropy % u64::from(count)).unwrap_or_default();
        (0..count).filter_map(|i| u16::try_from(from + (start + i) % count).ok()).find(|p| !used(*p))
    };
    free_in(first + band, range.size().saturating_sub(band)).or_else(|| free_in(first, band))
}

/// Checks a port the user asked for: inside the range and not `used`.
pub fn check_requested_node_port(range: PortRange, port: i64, used: impl Fn(u16) -> bool) -> Result<u16, PortError> {
    let port = u16::try_from(port).ok().filter(|p| range.contains(i64::from(*p))).ok_or(PortError::NotInRange(range))?;
    if used(port) {
        return Err(PortError::Allocated);
    }
    Ok(port)
}

/// How the registry's node-port step fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortError {
    /// A 422: kubectl prints `The Service "<name>" is invalid: <cause>`.
    Invalid(FieldError),
    /// A 500 (the range is full, or a `healthCheckNodePort` cannot be had): kubectl prints
    /// `Error from server (InternalError): Internal error occurred: <message>`.
    Internal(String),
}

impl fmt::Display for NodePortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodePortError::Invalid(cause) => cause.fmt(f),
            NodePortError::Internal(msg) => write!(f, "Internal error occurred: {msg}"),
        }
    }
}

impl std::error::Error for NodePortError {}

fn spec(svc: &Service) -> Option<&ServiceSpec> {
    svc.spec.as_ref()
}

fn spec_type(svc: &Service) -> &str {
    spec(svc).and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP")
}

/// NodePort and LoadBalancer Services have node ports.
pub fn needs_node_ports(svc: &Service) -> bool {
    matches!(spec_type(svc), "NodePort" | "LoadBalancer")
}

pub use emu_api::validation::needs_health_check;

/// Reachable from outside: NodePort, LoadBalancer, or a ClusterIP with `externalIPs`
/// (`ExternallyAccessible`); only these may set `externalTrafficPolicy`.
pub fn externally_accessible(svc: &Service) -> bool {
    needs_node_ports(svc)
        || (spec_type(svc) == "ClusterIP" && spec(svc).and_then(|s| s.external_ips.as_ref()).is_some_and(|a| !a.is_empty()))
}

/// Whether ports without a `nodePort` get one: always for NodePort, for LoadBalancer unless
/// `allocateLoadBalancerNodePorts: false` (`shouldAllocateNodePorts`).
fn should_allocate(svc: &Service) -> bool {
    match spec_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => spec(svc).and_then(|s| s.allocate_load_balancer_node_ports) != Some(false),
        _ => false,
    }
}

fn node_port_of(port: &ServicePort) -> i64 {
    i64::from(port.node_port.unwrap_or(0))
}

fn health_check_port(svc: &Service) -> i64 {
    i64::from(spec(svc).and_then(|s| s.health_check_node_port).unwrap_or(0))
}

fn ports(svc: &Service) -> &[ServicePort] {
    spec(svc).and_then(|s| s.ports.as_deref()).unwrap_or_default()
}

fn ports_mut(svc: &mut Service) -> &mut [ServicePort] {
    svc.spec.get_or_insert_default().ports.as_deref_mut().unwrap_or_default()
}

fn node_ports(svc: &Service) -> BTreeSet<i64> {
    ports(svc).iter().map(node_port_of).filter(|p| *p != 0).collect()
}

/// The node ports a stored Service holds: its `nodePort`s and its `healthCheckNodePort`.
pub fn held_ports(svc: &Service) -> BTreeSet<u16> {
    let hc = Some(health_check_port(svc)).filter(|p| *p != 0);
    node_ports(svc).into_iter().chain(hc).filter_map(|p| u16::try_from(p).ok()).collect()
}

/// `namespace/name`: who holds a port in [`NodePortsHeld`].
pub fn holder_of(svc: &Service) -> String {
    let meta = &svc.metadata;
    format!("{}/{}", meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

/// The node ports held cluster-wide, each with the Service that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePortsHeld(HashMap<u16, String>);

impl NodePortsHeld {
    /// What the stored Services hold.
    pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> NodePortsHeld {
        let mut held = NodePortsHeld::default();
        for svc in services {
            let holder = holder_of(svc);
            for p in held_ports(svc) {
                held.0.insert(p, holder.clone());
            }
        }
        held
    }

    /// The Service (`namespace/name`) holding `port`, if any.
    pub fn holder(&self, port: u16) -> Option<&str> {
        self.0.get(&port).map(String::as_str)
    }

    /// The ports `holder` holds.
    pub fn held_by(&self, holder: &str) -> BTreeSet<u16> {
        self.0.iter().filter(|(_, h)| *h == holder).map(|(p, _)| *p).collect()
    }

    /// `holder` now holds exactly `ports`: its other ports are free again.
    pub fn set_held(&mut self, holder: &str, ports: &BTreeSet<u16>) {
        self.0.retain(|p, h| h != holder || ports.contains(p));
        for p in ports {
            self.0.insert(*p, holder.to_string());
        }
    }
}

/// On update, before validation (`dropTypeDependentFields`, SVC-11): when the type no longer
/// needs a field, the value the user left as it was is cleared, so that an edited Service can
/// change its type without deleting the fields by hand, while a value the user set anew stays
/// and is then rejected by validation (ERR-4).
pub fn drop_type_dependent_fields(live: &Service, svc: &mut Service) {
    if needs_node_ports(live) && !needs_node_ports(svc) {
        // Ports may be added, removed or changed, as long as no node port is new.
        if node_ports(svc).is_subset(&node_ports(live)) {
            for p in ports_mut(svc) {
                p.node_port = None;
            }
        }
    }
    if needs_health_check(live) && !needs_health_check(svc) && health_check_port(live) == health_check_port(svc) {
        svc.spec.get_or_insert_default().health_check_node_port = None;
    }
    if spec_type(live) == "LoadBalancer" && spec_type(svc) != "LoadBalancer" {
        let field = |v: &Service| spec(v).and_then(|s| s.allocate_load_balancer_node_ports);
        if field(live).is_some() && field(live) == field(svc) {
            svc.spec.get_or_insert_default().allocate_load_balancer_node_ports = None;
        }
        // No longer a load balancer: its status goes with it.
        if let Some(status) = svc.status.as_mut() {
            status.load_balancer = Some(Default::default());
        }
    }
    if externally_accessible(live) && !externally_accessible(svc) {
        let field = |v: &Service| spec(v).and_then(|s| s.external_traffic_policy.clone()).unwrap_or_default();
        if field(live) == field(svc) {
            svc.spec.get_or_insert_default().external_traffic_policy = None;
        }
    }
}

/// On update, before validation (`patchAllocatedValues`): ports that come without a `nodePort`
/// get the one the live Service gave them, so that re-applying a manifest without node ports
/// keeps them. kubectl's strategic merge patch matches ports by `port` and `protocol` (emu's
/// three-way merge replaces the list), a PUT by `name`: both are tried, in that order. A value
/// another port of the new Service already uses is not handed out twice, except to a port of
/// the same number (53/TCP and 53/UDP share theirs, SVC-10). The `healthCheckNodePort` is kept
/// likewise.
pub fn restore_allocated(live: &Service, svc: &mut Service) {
    if needs_node_ports(live) && needs_node_ports(svc) {
        let old = ports(live);
        let protocol = |p: &ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let name = |p: &ServicePort| p.name.clone().unwrap_or_default();
        let new = ports_mut(svc);
        // node port → the port number using it in the new Service.
        let mut used: BTreeMap<i64, i32> = new.iter().filter(|p| node_port_of(p) != 0).map(|p| (node_port_of(p), p.port)).collect();
        let by_key = |o: &ServicePort, n: &ServicePort| o.port == n.port && protocol(o) == protocol(n);
        let by_name = |o: &ServicePort, n: &ServicePort| !name(n).is_empty() && name(o) == name(n);
        for matches in [&by_key as &dyn Fn(&ServicePort, &ServicePort) -> bool, &by_name] {
            for p in new.iter_mut().filter(|p| node_port_of(p) == 0) {
                let free = |np: i64| used.get(&np).is_none_or(|n| *n == p.port);
                let found = old.iter().filter(|o| matches(o, p)).map(node_port_of).find(|np| *np != 0 && free(*np));
                if let Some(np) = found {
                    p.node_port = i32::try_from(np).ok();
                    used.insert(np, p.port);
                }
            }
        }
    }
    if needs_health_check(live) && needs_health_check(svc) && health_check_port(svc) == 0 && health_check_port(live) != 0 {
        svc.spec.get_or_insert_default().health_check_node_port = i32::try_from(health_check_port(live)).ok();
    }
}

/// splitmix64: one seed gives the entropy of every pick of a request.
fn next_entropy(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The registry's node-port step for a Service being created (`live` None) or updated (after
/// [`drop_type_dependent_fields`], [`restore_allocated`] and validation), `initNodePorts` and
/// `updateNodePorts` in Kubernetes:
///
/// * NodePort and LoadBalancer: a `nodePort` the user gives is kept if the Service already held
///   it, else it must be in `range` (ERR-2) and held by no other Service (ERR-1); a port without
///   one gets the one of a port of the same number (SVC-10) or a free one (SVC-9), unless a
///   LoadBalancer says `allocateLoadBalancerNodePorts: false`.
/// * LoadBalancer + `externalTrafficPolicy: Local`: a `healthCheckNodePort` likewise (SVC-15).
///
/// `held` is what the cluster holds, this Service's live ports included (a create finding ports
/// held under its own name is a dry run of an existing Service: those count as its own).
/// `seed` makes the picks random. Returns the ports the Service holds afterwards, for
/// [`NodePortsHeld::set_held`]; on error `svc` may be half filled and must not be written.
pub fn allocate_node_ports(
    svc: &mut Service,
    live: Option<&Service>,
    range: PortRange,
    held: &NodePortsHeld,
    seed: u64,
) -> Result<BTreeSet<u16>, NodePortError> {
    let me = holder_of(svc);
    let own: BTreeSet<u16> = match live {
        Some(l) => node_ports(l).into_iter().filter_map(|p| u16::try_from(p).ok()).collect(),
        None => held.held_by(&me),
    };
    let mut entropy = seed;
    let mut chosen: BTreeSet<u16> = BTreeSet::new();
    let invalid = |i: usize, value: i64, e: PortError| {
        NodePortError::Invalid(FieldError {
            field: format!("spec.ports[{i}].nodePort"),
            kind: FieldErrorKind::Invalid(value.to_string()),
            detail: e.to_string(),
        })
    };
    if needs_node_ports(svc) {
        let count = ports(svc).len();
        // The ports the user asked for first, in order, then the missing ones.
        for i in 0..count {
            let np = node_port_of(&ports(svc)[i]);
            if np == 0 {
                continue;
            }
            if let Some(p) = u16::try_from(np).ok().filter(|p| own.contains(p) || chosen.contains(p)) {
                chosen.insert(p);
                continue;
            }
            let p = check_requested_node_port(range, np, |p| held.holder(p).is_some()).map_err(|e| invalid(i, np, e))?;
            chosen.insert(p);
        }
        if should_allocate(svc) {
            for i in 0..count {
                let port = &ports(svc)[i];
                if node_port_of(port) != 0 {
                    continue;
                }
                let number = port.port;
                let same_number = ports(svc).iter().filter(|q| q.port == number).map(node_port_of).find(|np| *np != 0);
                let np = match same_number.and_then(|np| u16::try_from(np).ok()) {
                    Some(np) => np,
                    None => allocate_node_port(range, |p| held.holder(p).is_some() || chosen.contains(&p), next_entropy(&mut entropy))
                        .ok_or_else(|| NodePortError::Internal(format!("failed to allocate a nodePort: {}", PortError::Full)))?,
                };
                ports_mut(svc)[i].node_port = Some(i32::from(np));
                chosen.insert(np);
            }
        }
    }
    if needs_health_check(svc) {
        let hc = health_check_port(svc);
        // Its own: kept from the live Service, or held under its name in a dry run.
        let kept = live.is_some_and(|l| needs_health_check(l) && health_check_port(l) == hc);
        let own_hc = |p: u16| kept || (live.is_none() && held.holder(p) == Some(me.as_str()));
        if hc != 0 {
            let taken = |p: u16| chosen.contains(&p) || (!own_hc(p) && held.holder(p).is_some());
            let p = check_requested_node_port(range, hc, taken)
                .map_err(|e| NodePortError::Internal(format!("failed to allocate requested HealthCheck NodePort {hc}: {e}")))?;
            chosen.insert(p);
        } else {
            let p = allocate_node_port(range, |p| held.holder(p).is_some() || chosen.contains(&p), next_entropy(&mut entropy))
                .ok_or_else(|| NodePortError::Internal(format!("failed to allocate a HealthCheck NodePort 0: {}", PortError::Full)))?;
            svc.spec.get_or_insert_default().health_check_node_port = Some(i32::from(p));
            chosen.insert(p);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::typed::{decode, encode};
    use serde_json::{json, Value};
    use std::collections::HashSet;

    // The functions under test on the Services' JSON, so that each case reads as the objects
    // it stands for: decoded, called, encoded back.
    fn typed(v: &Value) -> Service {
        decode(v).unwrap()
    }

    fn allocate_node_ports(
        svc: &mut Value,
        live: Option<&Value>,
        range: PortRange,
        held: &NodePortsHeld,
        seed: u64,
    ) -> Result<BTreeSet<u16>, NodePortError> {
        let mut t = typed(svc);
        let r = super::allocate_node_ports(&mut t, live.map(typed).as_ref(), range, held, seed);
        *svc = encode(&t);
        r
    }

    fn restore_allocated(live: &Value, svc: &mut Value) {
        let mut t = typed(svc);
        super::restore_allocated(&typed(live), &mut t);
        *svc = encode(&t);
    }

    fn drop_type_dependent_fields(live: &Value, svc: &mut Value) {
        let mut t = typed(svc);
        super::drop_type_dependent_fields(&typed(live), &mut t);
        *svc = encode(&t);
    }

    fn held_ports(svc: &Value) -> BTreeSet<u16> {
        super::held_ports(&typed(svc))
    }

    fn holder_of(svc: &Value) -> String {
        super::holder_of(&typed(svc))
    }

    fn held_from<const N: usize>(services: [&Value; N]) -> NodePortsHeld {
        let typed: Vec<Service> = services.iter().map(|s| typed(s)).collect();
        NodePortsHeld::from_services(&typed)
    }

    fn ports(svc: &Value) -> Vec<Value> {
        svc["spec"]["ports"].as_array().cloned().unwrap_or_default()
    }

    fn svc(name: &str, ty: &str, ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": ty, "selector": {"run": name}, "ports": ports}})
    }

    /// The tutorial's `my-nginx` (defaulted: protocols and targetPorts filled).
    fn my_nginx(ty: &str) -> Value {
        svc(
            "my-nginx",
            ty,
            json!([
            {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]),
        )
    }

    fn node_ports_of(v: &Value) -> Vec<i64> {
        ports(v).iter().map(|p| p["nodePort"].as_i64().unwrap_or(0)).collect()
    }

    fn message(e: NodePortError) -> String {
        e.to_string()
    }

    #[test]
    fn the_range_and_its_static_band() {
        let r = NODE_PORT_RANGE;
        assert_eq!((r.to_string(), r.size(), r.static_band()), ("30000-32767".to_string(), 2768, 86));
        assert!(r.contains(30000) && r.contains(32767) && !r.contains(29999) && !r.contains(32768) && !r.contains(-1));
        // min(max(16, size/32), 128); nothing reserved in tiny ranges.
        assert_eq!(PortRange { first: 1, last: 16 }.static_band(), 0);
        assert_eq!(PortRange { first: 1, last: 100 }.static_band(), 16);
        assert_eq!(PortRange { first: 1, last: 65535 }.static_band(), 128);
    }

    #[test]
    fn picks_come_from_the_dynamic_band_and_look_random() {
        let r = NODE_PORT_RANGE;
        let none = |_: u16| false;
        let picks: HashSet<u16> = (0..50u64).map(|i| allocate_node_port(r, none, next_entropy(&mut { i })).unwrap()).collect();
        assert!(picks.len() > 40, "50 seeds gave only {} ports", picks.len());
        assert!(picks.iter().all(|p| (30086..=32767).contains(p)), "{picks:?}");
        // A used port is skipped.
        let p = allocate_node_port(r, none, 12345).unwrap();
        assert_ne!(allocate_node_port(r, |q| q == p, 12345), Some(p));
        // The static band only once the dynamic one is full; then nothing.
        let dynamic_full = |q: u16| q >= 30086;
        let low = allocate_node_port(r, dynamic_full, 777).unwrap();
        assert!((30000..=30085).contains(&low), "{low}");
        assert_eq!(allocate_node_port(r, |_| true, 1), None);
        let all_but_one = |q: u16| q != 30042;
        assert_eq!(allocate_node_port(r, all_but_one, 99), Some(30042));
    }

    #[test]
    fn requested_ports_err1_err2() {
        let r = NODE_PORT_RANGE;
        let used = |p: u16| p == 30080;
        assert_eq!(check_requested_node_port(r, 30081, used), Ok(30081));
        assert_eq!(check_requested_node_port(r, 30080, used).unwrap_err().to_string(), "provided port is already allocated");
        for bad in [80, 0, -5, 32768, 70000] {
            assert_eq!(
                check_requested_node_port(r, bad, used).unwrap_err().to_string(),
                "provided port is not in the valid range. The range of valid ports is 30000-32767"
            );
        }
    }

    #[test]
    fn tutorial_service_gets_two_ports() {
        let mut s = my_nginx("NodePort");
        let held = allocate_node_ports(&mut s, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 42).unwrap();
        let got = node_ports_of(&s);
        assert_eq!(got.len(), 2);
        assert_ne!(got[0], got[1]);
        assert!(got.iter().all(|p| (30086..=32767).contains(p)), "{got:?}");
        assert_eq!(held, got.iter().map(|p| *p as u16).collect());
        assert!(s["spec"].get("healthCheckNodePort").is_none());
        // A ClusterIP Service gets none.
        let mut c = my_nginx("ClusterIP");
        assert!(allocate_node_ports(&mut c, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 42).unwrap().is_empty());
        assert_eq!(node_ports_of(&c), [0, 0]);
    }

    #[test]
    fn same_port_two_protocols_share_a_node_port_svc10() {
        let dns = |np: Option<i64>| {
            let mut tcp = json!({"name": "dns-tcp", "port": 53, "protocol": "TCP"});
            if let Some(np) = np {
                tcp["nodePort"] = json!(np);
            }
            svc(
                "dns",
                "NodePort",
                json!([{"name": "dns", "port": 53, "protocol": "UDP"}, tcp, {"name": "metrics", "port": 9153, "protocol": "TCP"}]),
            )
        };
        let mut s = dns(None);
        allocate_node_ports(&mut s, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 7).unwrap();
        let got = node_ports_of(&s);
        assert!(got[0] == got[1] && got[0] != got[2], "{got:?}");
        // The one the user gives for one protocol serves the other too (even when listed later).
        let mut s = dns(Some(30053));
        let held = allocate_node_ports(&mut s, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 7).unwrap();
        assert_eq!(&node_ports_of(&s)[..2], [30053, 30053]);
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn user_ports_are_checked_against_other_services() {
        let mut other = svc("other", "NodePort", json!([{"port": 53, "protocol": "UDP", "nodePort": 30080}]));
        let held = held_from([&other]);
        assert_eq!(held.holder(30080), Some("default/other"));
        let ask =
            |np: i64, protocol: &str| svc("web", "NodePort", json!([{"name": "a", "port": 80, "protocol": protocol, "nodePort": np}]));
        let mut s = ask(30081, "TCP");
        allocate_node_ports(&mut s, None, NODE_PORT_RANGE, &held, 1).unwrap();
        assert_eq!(node_ports_of(&s), [30081], "a free port the user chose is kept");
        // Taken by another Service: whatever the protocol (one allocator of numbers).
        for protocol in ["TCP", "UDP"] {
            let err = allocate_node_ports(&mut ask(30080, protocol), None, NODE_PORT_RANGE, &held, 1).unwrap_err();
            assert_eq!(message(err), "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
        }
        let err = allocate_node_ports(&mut ask(80, "TCP"), None, NODE_PORT_RANGE, &held, 1).unwrap_err();
        assert_eq!(
            message(err),
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        // The second port's cause names index 1.
        let mut two =
            svc("two", "NodePort", json!([{"name": "a", "port": 80, "nodePort": 30100}, {"name": "b", "port": 81, "nodePort": 30080}]));
        let err = allocate_node_ports(&mut two, None, NODE_PORT_RANGE, &held, 1).unwrap_err();
        assert_eq!(message(err), "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated");
        // The holder itself may keep it on update.
        let live = other.clone();
        allocate_node_ports(&mut other, Some(&live), NODE_PORT_RANGE, &held, 1).unwrap();
        assert_eq!(node_ports_of(&other), [30080]);
    }

    #[test]
    fn fresh_picks_avoid_every_held_port_and_fail_when_full() {
        let small = PortRange { first: 30000, last: 30003 };
        let held = held_from([&svc("a", "NodePort", json!([{"port": 1, "nodePort": 30000}, {"port": 2, "nodePort": 30001}]))]);
        let mut s = svc("b", "NodePort", json!([{"name": "x", "port": 1}, {"name": "y", "port": 2}]));
        allocate_node_ports(&mut s, None, small, &held, 3).unwrap();
        let mut got = node_ports_of(&s);
        got.sort();
        assert_eq!(got, [30002, 30003]);
        let mut s = svc("b", "NodePort", json!([{"name": "x", "port": 1}, {"name": "y", "port": 2}, {"name": "z", "port": 3}]));
        let err = allocate_node_ports(&mut s, None, small, &held, 3).unwrap_err();
        assert_eq!(message(err), "Internal error occurred: failed to allocate a nodePort: range is full");
    }

    #[test]
    fn one_request_never_hands_out_a_port_twice() {
        let small = PortRange { first: 30000, last: 30001 };
        let mut held = NodePortsHeld::default();
        let mut a = svc("a", "NodePort", json!([{"port": 80}]));
        let mut b = svc("b", "NodePort", json!([{"port": 80}]));
        let got = allocate_node_ports(&mut a, None, small, &held, 5).unwrap();
        held.set_held(&holder_of(&a), &got);
        allocate_node_ports(&mut b, None, small, &held, 5).unwrap();
        assert_ne!(node_ports_of(&a), node_ports_of(&b));
        // Released ports are free again for the rest of the request.
        held.set_held("default/a", &BTreeSet::new());
        assert_eq!(held.holder(node_ports_of(&a)[0] as u16), None);
    }

    #[test]
    fn reapplying_without_node_ports_keeps_them() {
        let mut live = my_nginx("NodePort");
        allocate_node_ports(&mut live, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 9).unwrap();
        let held = held_from([&live]);
        // The manifest again (lists are replaced by the merge: no node ports).
        let mut again = my_nginx("NodePort");
        restore_allocated(&live, &mut again);
        assert_eq!(node_ports_of(&again), node_ports_of(&live));
        let got = allocate_node_ports(&mut again, Some(&live), NODE_PORT_RANGE, &held, 10).unwrap();
        assert_eq!(again, live);
        assert_eq!(got, held_ports(&live));
        // NodePort → LoadBalancer (the tutorial's edit) keeps them too.
        let mut lb = my_nginx("LoadBalancer");
        restore_allocated(&live, &mut lb);
        assert_eq!(node_ports_of(&lb), node_ports_of(&live));
        // A port renumbered keeps its node port by name; a new port gets a new one.
        let mut changed = svc(
            "my-nginx",
            "NodePort",
            json!([
            {"name": "http", "port": 8081, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}, {"name": "extra", "port": 9000, "protocol": "TCP"}]),
        );
        restore_allocated(&live, &mut changed);
        assert_eq!(&node_ports_of(&changed)[..2], &node_ports_of(&live)[..]);
        assert_eq!(node_ports_of(&changed)[2], 0);
        allocate_node_ports(&mut changed, Some(&live), NODE_PORT_RANGE, &held, 11).unwrap();
        let got = node_ports_of(&changed);
        assert!(got[2] != 0 && !got[..2].contains(&got[2]), "{got:?}");
        // A value the user gives to another port is not handed out again.
        let http = node_ports_of(&live)[0];
        let mut swapped = svc(
            "my-nginx",
            "NodePort",
            json!([
            {"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP", "nodePort": http}]),
        );
        restore_allocated(&live, &mut swapped);
        assert_eq!(node_ports_of(&swapped), [0, http]);
        // The two ports of one number share theirs when restored (SVC-10).
        let mut dns =
            svc("dns", "NodePort", json!([{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "t", "port": 53, "protocol": "TCP"}]));
        allocate_node_ports(&mut dns, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 1).unwrap();
        let mut again =
            svc("dns", "NodePort", json!([{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "t", "port": 53, "protocol": "TCP"}]));
        restore_allocated(&dns, &mut again);
        assert_eq!(node_ports_of(&again), node_ports_of(&dns));
    }

    #[test]
    fn type_change_to_cluster_ip_svc11() {
        let mut live = my_nginx("NodePort");
        live["spec"]["externalTrafficPolicy"] = json!("Cluster");
        allocate_node_ports(&mut live, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 9).unwrap();
        // The edited object, only the type changed: node ports and the policy are cleared.
        let mut edited = live.clone();
        edited["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&live, &mut edited);
        assert_eq!(node_ports_of(&edited), [0, 0]);
        assert!(ports(&edited).iter().all(|p| p.get("nodePort").is_none()));
        assert!(edited["spec"].get("externalTrafficPolicy").is_none());
        assert!(allocate_node_ports(&mut edited, Some(&live), NODE_PORT_RANGE, &held_from([&live]), 1).unwrap().is_empty());
        // A node port set anew stays, for validation to reject (ERR-4).
        let mut edited = live.clone();
        edited["spec"]["type"] = json!("ClusterIP");
        edited["spec"]["ports"][0]["nodePort"] = json!(30999);
        drop_type_dependent_fields(&live, &mut edited);
        assert_eq!(node_ports_of(&edited)[0], 30999);
        // Nothing is restored onto a ClusterIP Service.
        let mut plain = my_nginx("ClusterIP");
        restore_allocated(&live, &mut plain);
        assert_eq!(node_ports_of(&plain), [0, 0]);
        // A policy the user changed in the same edit stays (and is rejected by validation).
        let mut edited = live.clone();
        edited["spec"]["type"] = json!("ClusterIP");
        edited["spec"]["externalTrafficPolicy"] = json!("Local");
        drop_type_dependent_fields(&live, &mut edited);
        assert_eq!(edited["spec"]["externalTrafficPolicy"], "Local");
    }

    #[test]
    fn load_balancer_fields() {
        let mut lb = my_nginx("LoadBalancer");
        lb["spec"]["allocateLoadBalancerNodePorts"] = json!(true);
        lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}});
        let mut np = lb.clone();
        np["spec"]["type"] = json!("NodePort");
        drop_type_dependent_fields(&lb, &mut np);
        assert!(np["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert_eq!(np["status"], json!({"loadBalancer": {}}));
        // allocateLoadBalancerNodePorts: false: no new ports, but asked ones are honoured.
        let mut bare = svc("bare", "LoadBalancer", json!([{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]));
        bare["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
        let held = allocate_node_ports(&mut bare, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 1).unwrap();
        assert_eq!((node_ports_of(&bare), held), (vec![0, 30081], BTreeSet::from([30081])));
    }

    #[test]
    fn health_check_node_port_svc15() {
        let local = |ty: &str| {
            let mut s = my_nginx(ty);
            s["spec"]["externalTrafficPolicy"] = json!("Local");
            s
        };
        let mut s = local("LoadBalancer");
        let held = allocate_node_ports(&mut s, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 3).unwrap();
        let hc = s["spec"]["healthCheckNodePort"].as_i64().unwrap();
        assert!(NODE_PORT_RANGE.contains(hc) && !node_ports_of(&s).contains(&hc));
        assert_eq!(held.len(), 3);
        // NodePort + Local: none.
        let mut n = local("NodePort");
        allocate_node_ports(&mut n, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 3).unwrap();
        assert!(n["spec"].get("healthCheckNodePort").is_none());
        // Kept across a re-apply that does not name it.
        let all = held_from([&s]);
        let mut again = local("LoadBalancer");
        restore_allocated(&s, &mut again);
        allocate_node_ports(&mut again, Some(&s), NODE_PORT_RANGE, &all, 4).unwrap();
        assert_eq!(again, s);
        // Released when the policy goes back to Cluster.
        let mut cluster = s.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        drop_type_dependent_fields(&s, &mut cluster);
        assert!(cluster["spec"].get("healthCheckNodePort").is_none());
        let got = allocate_node_ports(&mut cluster, Some(&s), NODE_PORT_RANGE, &all, 4).unwrap();
        assert!(!got.contains(&(hc as u16)));
        // One the user asks for that another Service holds: the API server's internal error.
        let mut other = local("LoadBalancer");
        other["metadata"]["name"] = json!("other");
        other["spec"]["healthCheckNodePort"] = json!(node_ports_of(&s)[0]);
        let err = allocate_node_ports(&mut other, None, NODE_PORT_RANGE, &all, 5).unwrap_err();
        assert_eq!(
            message(err),
            format!(
                "Internal error occurred: failed to allocate requested HealthCheck NodePort {0}: provided port is already allocated",
                node_ports_of(&s)[0]
            )
        );
        // Nor may it be one of the Service's own node ports.
        let mut mine = local("LoadBalancer");
        mine["spec"]["ports"][0]["nodePort"] = json!(30500);
        mine["spec"]["healthCheckNodePort"] = json!(30500);
        assert!(allocate_node_ports(&mut mine, None, NODE_PORT_RANGE, &NodePortsHeld::default(), 5).is_err());
    }

    #[test]
    fn held_ports_of_stored_services() {
        let mut s = my_nginx("LoadBalancer");
        s["spec"]["ports"][0]["nodePort"] = json!(30001);
        s["spec"]["ports"][1]["nodePort"] = json!(30002);
        s["spec"]["healthCheckNodePort"] = json!(30003);
        assert_eq!(held_ports(&s), BTreeSet::from([30001, 30002, 30003]));
        let mut held = held_from([&s]);
        assert_eq!(held.held_by("default/my-nginx"), BTreeSet::from([30001, 30002, 30003]));
        held.set_held("default/my-nginx", &BTreeSet::from([30002]));
        assert_eq!((held.holder(30001), held.holder(30002)), (None, Some("default/my-nginx")));
    }
}
