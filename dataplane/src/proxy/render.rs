//! Rendering the node's table `ip emu` as nft scripts: the whole table ([`render_full`]) or the
//! difference between two models ([`render_update`]).
//!
//! Names (all deterministic, readable, far below nft's 255-byte limit: namespace and name are DNS
//! labels of at most 63 bytes, so the longest name is about 170 bytes; no hash is needed because
//! the name spells out everything that makes it unique):
//!
//! | object | name |
//! |---|---|
//! | chain of one Service port | `svc-<namespace>/<service>/<proto>/<port>` |
//! | chain of one endpoint of that port, when it needs more than a DNAT (a hairpin check: endpoints on this node; an affinity update) | `ep-<namespace>/<service>/<proto>/<port>/<endpoint ip>/<target port>` |
//! | ClientIP affinity set of that endpoint | `aff-<namespace>/<service>/<proto>/<port>/<endpoint ip>/<target port>` |
//! | verdict map ClusterIP . proto . port → service chain | `service-ips` |
//! | verdict map ClusterIP . proto . port → reject/drop, ports without endpoints | `no-endpoint-services` |
//! | set of all ClusterIPs | `cluster-ips` |
//! | chain taking one Service port's node-port traffic (externalTrafficPolicy) | `ext-<namespace>/<service>/<proto>/<port>` |
//! | verdict map proto . node port → external chain | `service-nodeports` |
//! | verdict map proto . node port → reject/drop, node ports without endpoints | `no-endpoint-nodeports` |
//! | set of the node's addresses where node ports answer | `nodeport-ips` |
//!
//! Endpoints that need nothing but the DNAT are DNATed by the service chain's rule itself.
//!
//! Every name starts with a letter and contains only `[a-z0-9./-]`, which nft's scanner reads as
//! one identifier, and none is an nft keyword (`mark` would be: the chain is `mark-for-masquerade`).

use super::model::{usable_endpoints, Backends, EndpointModel, PortModel, ProxyInput, ServiceModel};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Family and name of emu's table, as nft commands spell them.
pub const TABLE: &str = "ip emu";
/// The packet mark bit that asks `nat-postrouting` to masquerade (kube-proxy uses the same bit).
pub const MASQUERADE_MARK: u32 = 0x4000;

const SERVICE_IPS: &str = "service-ips";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const CLUSTER_IPS: &str = "cluster-ips";
const SERVICES: &str = "services";
const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
const MASQUERADING: &str = "masquerading";
const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const NODEPORT_IPS: &str = "nodeport-ips";

/// `svc-<ns>/<name>/<proto>/<port>`: the chain that picks an endpoint for one Service port.
pub fn service_chain_name(svc: &ServiceModel, port: &PortModel) -> String {
    format!("svc-{}", port_path(svc, port))
}

/// `ext-<ns>/<name>/<proto>/<port>`: the chain that takes traffic to one Service port's node
/// port and applies its externalTrafficPolicy.
pub fn external_chain_name(svc: &ServiceModel, port: &PortModel) -> String {
    format!("ext-{}", port_path(svc, port))
}

/// `ep-<ns>/<name>/<proto>/<port>/<ip>/<target port>`: the chain that DNATs to one endpoint.
pub fn endpoint_chain_name(svc: &ServiceModel, port: &PortModel, ep: &EndpointModel) -> String {
    format!("ep-{}/{}/{}", port_path(svc, port), ep.ip, ep.port)
}

/// `aff-<ns>/<name>/<proto>/<port>/<ip>/<target port>`: the clients that ClientIP affinity sends
/// to that endpoint (dynamic set, entries expire after the Service's timeout).
pub fn affinity_set_name(svc: &ServiceModel, port: &PortModel, ep: &EndpointModel) -> String {
    format!("aff-{}/{}/{}", port_path(svc, port), ep.ip, ep.port)
}

fn port_path(svc: &ServiceModel, port: &PortModel) -> String {
    format!("{}/{}/{}/{}", svc.namespace, svc.name, port.protocol, port.port)
}

/// A base chain's `type … hook … priority …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hook {
    kind: &'static str,
    hook: &'static str,
    priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    name: String,
    hook: Option<Hook>,
    rules: Vec<String>,
}

impl Chain {
    fn regular(name: impl Into<String>, rules: Vec<String>) -> Self {
        Chain { name: name.into(), hook: None, rules }
    }

    fn base(name: &str, kind: &'static str, hook: &'static str, priority: i32, rules: Vec<String>) -> Self {
        Chain { name: name.to_string(), hook: Some(Hook { kind, hook, priority }), rules }
    }

    fn declare(&self, out: &mut String) {
        match self.hook {
            // Numeric priorities: nft accepts `dstnat` only on prerouting in family ip.
            Some(h) => writeln!(
                out,
                "add chain {TABLE} {} {{ type {} hook {} priority {} ; policy accept ; }}",
                self.name, h.kind, h.hook, h.priority
            ),
            None => writeln!(out, "add chain {TABLE} {}", self.name),
        }
        .expect("writing to a String");
    }

    /// The chain with its rules, inside a `table ip emu { … }` block.
    fn write_block(&self, out: &mut String) {
        debug_assert!(self.hook.is_none(), "base chains are declared with `add chain`");
        writeln!(out, "\tchain {} {{", self.name).expect("writing to a String");
        for rule in &self.rules {
            writeln!(out, "\t\t{rule}").expect("writing to a String");
        }
        out.push_str("\t}\n");
    }

    fn add_rules(&self, out: &mut String) {
        for rule in &self.rules {
            writeln!(out, "add rule {TABLE} {} {rule}", self.name).expect("writing to a String");
        }
    }
}

/// A set or map. Only the contents of `service-ips`, `no-endpoint-services` and `cluster-ips`
/// are ours to write; affinity sets are filled by the packet path and must survive syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Set {
    name: String,
    /// `set` or `map`.
    keyword: &'static str,
    spec: &'static str,
}

const AFFINITY_SPEC: &str = "type ipv4_addr ; flags dynamic,timeout ;";

impl Set {
    fn declare(&self, out: &mut String) {
        writeln!(out, "add {} {TABLE} {} {{ {} }}", self.keyword, self.name, self.spec).expect("writing to a String");
    }
}

/// Key → value ("" for plain sets) of the sets and maps whose contents we own.
type Elements = BTreeMap<&'static str, BTreeMap<String, String>>;

/// The chains and sets that one Service needs.
#[derive(Debug, Default)]
struct ServiceObjects {
    chains: Vec<Chain>,
    sets: Vec<Set>,
}

// The packet path through table `ip emu` (hook priorities in brackets; lower runs first; the
// conntrack lookup is at -200, so `ct state new` is known everywhere below).
//
// A packet from a pod (or anything arriving on an interface) takes hook prerouting:
//   [-110] filter-prerouting → service-endpoints-check: a new connection to a ClusterIP:port
//          whose Service has no usable endpoint is rejected (ICMP port unreachable, so the
//          client sees "Connection refused" at once; NET-2), or dropped when only a Local
//          policy keeps it from endpoints that exist elsewhere (SVC-16).
//   [-100] nat-prerouting → services: `ip daddr . l4proto . dport` in the `service-ips` map goes
//          to svc-<…> (affinity check, then one numgen rule per endpoint) which DNATs to the
//          endpoint, directly or through its ep-<…> chain (hairpin mark, affinity update). A
//          source outside the pod network is marked for masquerade on the way (NET-4).
//   [ -90] filter-prerouting-post-dnat → cluster-ips-check: a new connection still addressed to
//          the service CIDR was not DNATed: rejected when the address is a Service's (a port it
//          does not define, or ping: NET-1 as kube-proxy's nftables mode), dropped otherwise.
//   routing, to the endpoint. The node has no route for ClusterIPs, which is why every
//          decision about them is taken here, before routing, not in forward as kube-proxy does
//          (`reject` in prerouting needs Linux 5.9; Debian 12 ships 6.1).
// A packet from a process of the node itself takes hook output instead: the route lookup for
// the ClusterIP already happened at connect() (the node needs a route covering the service
// CIDR), then filter-output [-110], nat-output [-100] and filter-output-post-dnat [-90] do the
// same as above, nat-output also marking everything for the service CIDR for masquerade: the
// node's source may be its cni0 address, inside the pod network.
// Both then reach hook postrouting:
//   [ 100] nat-postrouting → masquerading: a packet carrying MASQUERADE_MARK is masqueraded
//          (external or node-originated clients, and hairpin: a pod load-balanced to itself
//          must see the connection come from its gateway, NET-5).
//
// Pod-to-ClusterIP traffic is only DNATed: the backend sees the client pod's IP (NET-4). Only the
// first packet of a connection traverses nat chains; conntrack replays its NAT on the rest and on
// replies, so established flows stay on their endpoint when the rules change (NET-3), and the
// filter checks look at new connections only for the same reason.
//
// Node ports (NET-6) hook in at the same places: `services` looks `meta l4proto . th dport` up
// in `service-nodeports` for packets to the node's own addresses (`nodeport-ips`: InternalIP and
// ExternalIP, never loopback), going to ext-<…>, which marks for masquerade (Cluster policy: the
// reply must come back through this node) or not (Local: the client's address is kept), then
// picks an endpoint like svc-<…>, among this node's endpoints only for Local. Node ports without
// a usable endpoint are in `no-endpoint-nodeports`, checked by `service-endpoints-check`: reject,
// or drop when Local has endpoints only elsewhere. LoadBalancer IPs are more `service-ips`
// elements.
fn fixed_chains(input: &ProxyInput) -> Vec<Chain> {
    let svc_cidr = input.service_cidr;
    let pod_cidr = input.cluster_pod_cidr;
    let key = "ip daddr . meta l4proto . th dport";
    let port_key = "meta l4proto . th dport";
    vec![
        Chain::base("filter-prerouting", "filter", "prerouting", -110, vec![format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}")]),
        Chain::base("filter-output", "filter", "output", -110, vec![format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}")]),
        Chain::base("nat-prerouting", "nat", "prerouting", -100, vec![format!("jump {SERVICES}")]),
        Chain::base(
            "nat-output",
            "nat",
            "output",
            -100,
            vec![
                // The node's own traffic may carry its cni0 address, inside the pod network, so
                // the saddr test in `services` would miss it.
                format!("ip daddr {svc_cidr} jump {MARK_FOR_MASQUERADE}"),
                format!("jump {SERVICES}"),
            ],
        ),
        Chain::base("filter-prerouting-post-dnat", "filter", "prerouting", -90, vec![format!("ct state new jump {CLUSTER_IPS_CHECK}")]),
        Chain::base("filter-output-post-dnat", "filter", "output", -90, vec![format!("ct state new jump {CLUSTER_IPS_CHECK}")]),
        Chain::base("nat-postrouting", "nat", "postrouting", 100, vec![format!("jump {MASQUERADING}")]),
        Chain::regular(
            SERVICES,
            vec![
                format!("ip daddr {svc_cidr} ip saddr != {pod_cidr} jump {MARK_FOR_MASQUERADE}"),
                format!("{key} vmap @{SERVICE_IPS}"),
                format!("ip daddr @{NODEPORT_IPS} {port_key} vmap @{SERVICE_NODEPORTS}"),
            ],
        ),
        Chain::regular(
            SERVICE_ENDPOINTS_CHECK,
            vec![
                format!("{key} vmap @{NO_ENDPOINT_SERVICES}"),
                format!("ip daddr @{NODEPORT_IPS} {port_key} vmap @{NO_ENDPOINT_NODEPORTS}"),
            ],
        ),
        Chain::regular(
            CLUSTER_IPS_CHECK,
            vec![
                // `reject` sends ICMP port unreachable, which TCP reports as "Connection refused".
                format!("ip daddr @{CLUSTER_IPS} reject"),
                format!("ip daddr {svc_cidr} drop"),
            ],
        ),
        Chain::regular(
            MASQUERADING,
            vec![
                format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
                // Clear the bit so that a packet re-entering the stack (hairpin) starts clean.
                format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
                "masquerade fully-random".to_string(),
            ],
        ),
        Chain::regular(MARK_FOR_MASQUERADE, vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")]),
        Chain::regular(REJECT_CHAIN, vec!["reject".to_string()]),
    ]
}

fn fixed_sets() -> Vec<Set> {
    let verdict_map = "type ipv4_addr . inet_proto . inet_service : verdict ;";
    let port_verdict_map = "type inet_proto . inet_service : verdict ;";
    vec![
        Set { name: SERVICE_NODEPORTS.into(), keyword: "map", spec: port_verdict_map },
        Set { name: NO_ENDPOINT_NODEPORTS.into(), keyword: "map", spec: port_verdict_map },
        Set { name: NODEPORT_IPS.into(), keyword: "set", spec: "type ipv4_addr ;" },
        Set { name: SERVICE_IPS.into(), keyword: "map", spec: verdict_map },
        Set { name: NO_ENDPOINT_SERVICES.into(), keyword: "map", spec: verdict_map },
        Set { name: CLUSTER_IPS.into(), keyword: "set", spec: "type ipv4_addr ;" },
    ]
}

/// The chains and affinity sets of one Service: per port, the service chain (ClusterIP traffic,
/// internalTrafficPolicy) and for a node port the external chain (externalTrafficPolicy), both
/// choosing among endpoint targets the same way.
fn service_objects(input: &ProxyInput, svc: &ServiceModel) -> ServiceObjects {
    let mut objects = ServiceObjects::default();
    // Endpoint chains (and affinity sets) already made: both chains of a port may use one.
    let mut made = BTreeSet::new();
    for port in &svc.ports {
        if let Backends::Use(eps) = usable_endpoints(&input.node_name, svc.internal_local, &port.endpoints) {
            let rules = choose_endpoint(input, svc, port, &eps, &mut objects, &mut made, Vec::new());
            objects.chains.push(Chain::regular(service_chain_name(svc, port), rules));
        }
        if port.node_port.is_none() {
            continue;
        }
        if let Backends::Use(eps) = usable_endpoints(&input.node_name, svc.external_local, &port.endpoints) {
            // Cluster: SNAT to this node, so that replies come back through it (the backend
            // sees a node address). Local: this node's endpoints only, the client's address kept.
            let first = if svc.external_local { Vec::new() } else { vec![format!("jump {MARK_FOR_MASQUERADE}")] };
            let rules = choose_endpoint(input, svc, port, &eps, &mut objects, &mut made, first);
            objects.chains.push(Chain::regular(external_chain_name(svc, port), rules));
        }
    }
    objects
}

/// The rules that pick one of `eps` for a new connection, after `rules`: DNAT right there, or go
/// to the endpoint's chain when the endpoint needs more than the DNAT (made once, in `objects`).
fn choose_endpoint(
    input: &ProxyInput,
    svc: &ServiceModel,
    port: &PortModel,
    eps: &[&EndpointModel],
    objects: &mut ServiceObjects,
    made: &mut BTreeSet<String>,
    mut rules: Vec<String>,
) -> Vec<String> {
    let n = eps.len();
    rules.reserve(2 * n);
    let mut targets = Vec::with_capacity(n);
    for ep in eps {
        let dnat = format!("meta l4proto {} dnat ip to {}:{}", port.protocol, ep.ip, ep.port);
        // Hairpin (NET-5): a pod load-balanced to itself must see the connection come from
        // elsewhere. Only endpoints on this node can be their own client here (a pod's
        // connections are DNATed on its own node); an endpoint of unknown node (a hand-made
        // slice) is treated as local, to be safe.
        let hairpin = ep.node_name.as_deref().is_none_or(|n| n == input.node_name);
        if !hairpin && svc.affinity_timeout.is_none() {
            // A chain holding only the DNAT would cost a chain and a rule more per endpoint:
            // about a third of a full sync's time at 10,000 Services.
            targets.push(dnat);
            continue;
        }
        let chain = endpoint_chain_name(svc, port, ep);
        let fresh = made.insert(chain.clone());
        let mut ep_rules = Vec::with_capacity(3);
        if hairpin {
            ep_rules.push(format!("ip saddr {} jump {MARK_FOR_MASQUERADE}", ep.ip));
        }
        if let Some(timeout) = svc.affinity_timeout {
            let set = affinity_set_name(svc, port, ep);
            // A client that the set remembers goes back to this endpoint (SVC-13).
            rules.push(format!("ip saddr @{set} goto {chain}"));
            // The timeout goes on each entry, not on the set: the kernel refuses to re-add a
            // set with another timeout, and a Service's timeoutSeconds may change.
            ep_rules.push(format!("update @{set} {{ ip saddr timeout {timeout}s }}"));
            if fresh {
                objects.sets.push(Set { name: set, keyword: "set", spec: AFFINITY_SPEC });
            }
        }
        ep_rules.push(dnat);
        if fresh {
            // Before the chains that go to it: a table block must declare a chain first.
            objects.chains.push(Chain::regular(chain.clone(), ep_rules));
        }
        targets.push(format!("goto {chain}"));
    }
    // Uniform choice with one rule per endpoint: rule k is reached with probability (N-k)/N and
    // takes 1/(N-k) of that, so every endpoint gets 1/N. (kube-proxy's anonymous
    // `numgen … vmap {}` per Service costs an anonymous set each, quadratic at load time.)
    for (k, target) in targets.iter().enumerate() {
        if k + 1 < n {
            rules.push(format!("numgen random mod {} == 0 {target}", n - k));
        } else {
            rules.push(target.clone());
        }
    }
    rules
}

/// The contents of the owned maps and sets (`service-ips`, `no-endpoint-services`,
/// `cluster-ips`, the node-port maps and `nodeport-ips`). When two Services
/// claim one address (never, with the API server's allocator), the first in sort order wins
/// rather than failing the whole transaction.
fn elements(input: &ProxyInput) -> Elements {
    let mut el = elements_of(input, &input.services);
    el.insert(NODEPORT_IPS, input.node_ips.iter().map(|ip| (ip.to_string(), String::new())).collect());
    el
}

/// The elements `services` (of `input`) contribute, first come first served.
fn elements_of<'a>(input: &ProxyInput, services: impl IntoIterator<Item = &'a ServiceModel>) -> Elements {
    let mut el = Elements::new();
    for name in [SERVICE_IPS, NO_ENDPOINT_SERVICES, CLUSTER_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS] {
        el.insert(name, BTreeMap::new());
    }
    for svc in services {
        let ip = svc.cluster_ip;
        el.get_mut(CLUSTER_IPS).expect("inserted above").entry(ip.to_string()).or_default();
        for port in &svc.ports {
            let key = format!("{ip} . {} . {}", port.protocol, port.port);
            if el[SERVICE_IPS].contains_key(&key) || el[NO_ENDPOINT_SERVICES].contains_key(&key) {
                continue;
            }
            let (map, value) = match usable_endpoints(&input.node_name, svc.internal_local, &port.endpoints) {
                Backends::Use(_) => (SERVICE_IPS, format!("goto {}", service_chain_name(svc, port))),
                Backends::NoneLocal => (NO_ENDPOINT_SERVICES, "drop".to_string()),
                Backends::None => (NO_ENDPOINT_SERVICES, format!("goto {REJECT_CHAIN}")),
            };
            el.get_mut(map).expect("inserted above").insert(key, value);
        }
        for (lb, port) in svc.load_balancer_ips.iter().flat_map(|ip| svc.ports.iter().map(move |p| (ip, p))) {
            let key = format!("{lb} . {} . {}", port.protocol, port.port);
            if el[SERVICE_IPS].contains_key(&key) || el[NO_ENDPOINT_SERVICES].contains_key(&key) {
                continue;
            }
            // As traffic to the node port: external policy, SNAT with Cluster.
            let (policy_local, chain) = match port.node_port {
                Some(_) => (svc.external_local, external_chain_name(svc, port)),
                None => (svc.internal_local, service_chain_name(svc, port)),
            };
            let (map, value) = match usable_endpoints(&input.node_name, policy_local, &port.endpoints) {
                Backends::Use(_) => (SERVICE_IPS, format!("goto {chain}")),
                Backends::NoneLocal => (NO_ENDPOINT_SERVICES, "drop".to_string()),
                Backends::None => (NO_ENDPOINT_SERVICES, format!("goto {REJECT_CHAIN}")),
            };
            el.get_mut(map).expect("inserted above").insert(key, value);
        }
        for port in &svc.ports {
            let Some(node_port) = port.node_port else { continue };
            let key = format!("{} . {node_port}", port.protocol);
            if el[SERVICE_NODEPORTS].contains_key(&key) || el[NO_ENDPOINT_NODEPORTS].contains_key(&key) {
                continue;
            }
            let (map, value) = match usable_endpoints(&input.node_name, svc.external_local, &port.endpoints) {
                Backends::Use(_) => (SERVICE_NODEPORTS, format!("goto {}", external_chain_name(svc, port))),
                // Local with endpoints only elsewhere: this node drops, the client times out.
                Backends::NoneLocal => (NO_ENDPOINT_NODEPORTS, "drop".to_string()),
                Backends::None => (NO_ENDPOINT_NODEPORTS, format!("goto {REJECT_CHAIN}")),
            };
            el.get_mut(map).expect("inserted above").insert(key, value);
        }
    }
    el
}

fn write_elements(out: &mut String, verb: &str, set: &str, elements: &[(&String, &String)], with_values: bool) {
    if elements.is_empty() {
        return;
    }
    writeln!(out, "{verb} element {TABLE} {set} {{").expect("writing to a String");
    let last = elements.len() - 1;
    for (i, (key, value)) in elements.iter().enumerate() {
        let sep = if i == last { "" } else { "," };
        if with_values && !value.is_empty() { writeln!(out, "\t{key} : {value}{sep}") } else { writeln!(out, "\t{key}{sep}") }
            .expect("writing to a String");
    }
    out.push_str("}\n");
}

/// Chains and sets that exist in the table, as `nft -t list` shows them (see [`parse_listing`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableObjects {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
    pub maps: BTreeSet<String>,
}

/// The chains, sets and maps of table `ip emu` in the output of `nft -t list ruleset ip` (or
/// `nft list table ip emu`); other tables are ignored.
pub fn parse_listing(listing: &str) -> TableObjects {
    let mut found = TableObjects::default();
    let mut depth = 0usize;
    let mut in_emu = false;
    for line in listing.lines() {
        let line = line.trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        if depth == 0 {
            in_emu = words.get(..3) == Some(&["table", "ip", "emu"][..]);
        } else if depth == 1 && in_emu {
            match words.as_slice() {
                ["chain", name, ..] => found.chains.insert(name.to_string()),
                ["set", name, ..] => found.sets.insert(name.to_string()),
                ["map", name, ..] => found.maps.insert(name.to_string()),
                _ => false,
            };
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        depth = (depth + opens).saturating_sub(closes);
    }
    found
}

/// The whole table as one idempotent transaction; see [`render_resync`]. On a namespace without
/// the table it creates it; on one that has it, it converges every chain and owned map while
/// keeping the affinity sets' entries. Chains and sets it does not know about are left, empty
/// and unreferenced; [`render_resync`] deletes them.
pub fn render_full(input: &ProxyInput) -> String {
    render_resync(input, &TableObjects::default())
}

/// [`render_full`], plus deleting the chains, sets and maps of `existing` (what
/// `nft -t list ruleset ip` showed, via [`parse_listing`]) that `input` does not want: the
/// periodic resync that repairs drift.
///
/// Why not `delete table` + re-create: ClientIP affinity lives in the dynamic sets' entries,
/// which must survive a resync. `flush table` empties every chain but keeps sets and maps with
/// their elements; then the owned maps are flushed and everything is re-added.
pub fn render_resync(input: &ProxyInput, existing: &TableObjects) -> String {
    let fixed = fixed_chains(input);
    let per_service: Vec<ServiceObjects> = input.services.iter().map(|svc| service_objects(input, svc)).collect();
    let chains = || fixed.iter().chain(per_service.iter().flat_map(|o| o.chains.iter()));
    let fixed_sets = fixed_sets();
    let sets = || fixed_sets.iter().chain(per_service.iter().flat_map(|o| o.sets.iter()));
    let elements = elements(input);

    let rule_count: usize = chains().map(|c| c.rules.len() + 1).sum();
    let mut out = String::with_capacity(96 * rule_count);
    writeln!(out, "# emu service proxy: full sync of node {}, {} services", input.node_name, input.services.len())
        .expect("writing to a String");
    writeln!(out, "add table {TABLE}").expect("writing to a String");
    writeln!(out, "flush table {TABLE}").expect("writing to a String");
    // Declare what rules refer to before the rules: the fixed chains and every set here, the
    // per-Service chains in the table block below, each before the chains that jump to it.
    fixed.iter().for_each(|c| c.declare(&mut out));
    sets().for_each(|s| s.declare(&mut out));
    for s in &fixed_sets {
        writeln!(out, "flush {} {TABLE} {}", s.keyword, s.name).expect("writing to a String");
    }
    // Leftovers are empty (flush table) and unreferenced (maps flushed): safe to delete.
    let wanted_chains: BTreeSet<&str> = chains().map(|c| c.name.as_str()).collect();
    for name in existing.chains.iter().filter(|n| !wanted_chains.contains(n.as_str())) {
        writeln!(out, "delete chain {TABLE} {name}").expect("writing to a String");
    }
    let wanted_sets: HashMap<&str, &str> = sets().map(|s| (s.name.as_str(), s.keyword)).collect();
    let stale_sets = existing.sets.iter().map(|n| ("set", n));
    let stale_maps = existing.maps.iter().map(|n| ("map", n));
    for (keyword, name) in stale_sets.chain(stale_maps) {
        if wanted_sets.get(name.as_str()) != Some(&keyword) {
            writeln!(out, "delete {keyword} {TABLE} {name}").expect("writing to a String");
        }
    }
    fixed.iter().for_each(|c| c.add_rules(&mut out));
    // A table block, as `nft list` prints it: a chain's name is written once rather than once
    // per rule, which makes nft's parsing noticeably cheaper at 10,000 Services.
    let mut service_chains = per_service.iter().flat_map(|o| o.chains.iter()).peekable();
    if service_chains.peek().is_some() {
        writeln!(out, "table {TABLE} {{").expect("writing to a String");
        service_chains.for_each(|c| c.write_block(&mut out));
        out.push_str("}\n");
    }
    for (set, contents) in &elements {
        let list: Vec<(&String, &String)> = contents.iter().collect();
        write_elements(&mut out, "add", set, &list, true);
    }
    out
}

/// Deletes the table and renders it anew: the last resort when [`render_full`] itself fails
/// (e.g. a base chain left by an older emu with another priority). Forgets ClientIP affinity.
pub fn render_recreate(input: &ProxyInput) -> String {
    format!("add table {TABLE}\ndelete table {TABLE}\n{}", render_full(input))
}

/// Commands of an update, by phase: the phases run in this order so that everything is declared
/// before it is referenced and unreferenced before it is deleted.
#[derive(Default)]
struct Update {
    declare: String,
    delete_elements: String,
    flush_chains: String,
    add_rules: String,
    add_elements: String,
    delete_chains: String,
    delete_sets: String,
}

impl Update {
    fn chains(&mut self, old: &[Chain], new: &[Chain]) {
        let before: HashMap<&str, &Chain> = old.iter().map(|c| (c.name.as_str(), c)).collect();
        let after: HashMap<&str, &Chain> = new.iter().map(|c| (c.name.as_str(), c)).collect();
        for chain in new {
            match before.get(chain.name.as_str()) {
                None => {
                    chain.declare(&mut self.declare);
                    chain.add_rules(&mut self.add_rules);
                }
                Some(was) if was.rules != chain.rules => {
                    writeln!(self.flush_chains, "flush chain {TABLE} {}", chain.name).expect("writing to a String");
                    chain.add_rules(&mut self.add_rules);
                }
                Some(_) => {}
            }
        }
        for chain in old.iter().filter(|c| !after.contains_key(c.name.as_str())) {
            // Flushed first: its rules may refer to chains and sets deleted in this transaction.
            writeln!(self.flush_chains, "flush chain {TABLE} {}", chain.name).expect("writing to a String");
            writeln!(self.delete_chains, "delete chain {TABLE} {}", chain.name).expect("writing to a String");
        }
    }

    fn sets(&mut self, old: &[Set], new: &[Set]) {
        let before: BTreeSet<&str> = old.iter().map(|s| s.name.as_str()).collect();
        let after: BTreeSet<&str> = new.iter().map(|s| s.name.as_str()).collect();
        for set in new.iter().filter(|s| !before.contains(s.name.as_str())) {
            set.declare(&mut self.declare);
        }
        for set in old.iter().filter(|s| !after.contains(s.name.as_str())) {
            writeln!(self.delete_sets, "delete {} {TABLE} {}", set.keyword, set.name).expect("writing to a String");
        }
    }

    fn elements(&mut self, old: &Elements, new: &Elements) {
        let empty = BTreeMap::new();
        for (set, after) in new {
            let before = old.get(set).unwrap_or(&empty);
            let with_values = *set != CLUSTER_IPS && *set != NODEPORT_IPS;
            // A changed value (e.g. reject → goto svc-…) is a delete and an add.
            let gone: Vec<(&String, &String)> = before.iter().filter(|(k, v)| after.get(*k) != Some(*v)).collect();
            let added: Vec<(&String, &String)> = after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).collect();
            write_elements(&mut self.delete_elements, "delete", set, &gone, false);
            write_elements(&mut self.add_elements, "add", set, &added, with_values);
        }
    }

    fn finish(self, node: &str) -> String {
        let parts = [
            self.declare,
            self.delete_elements,
            self.flush_chains,
            self.add_rules,
            self.add_elements,
            self.delete_chains,
            self.delete_sets,
        ];
        if parts.iter().all(String::is_empty) {
            return String::new();
        }
        let mut out = format!("# emu service proxy: update of node {node}\n");
        parts.iter().for_each(|p| out.push_str(p));
        out
    }
}

/// The transaction that turns the table `render_full(old)` (or earlier updates) produced into the
/// one `render_full(new)` produces, touching only what differs: one endpoint change in a large
/// cluster is a few lines. Empty when nothing differs.
pub fn render_update(old: &ProxyInput, new: &ProxyInput) -> String {
    let mut update = Update::default();
    update.chains(&fixed_chains(old), &fixed_chains(new));
    // Rules depend on the Service and on the node (locality): pair the Services by
    // namespace/name and render only those that differ.
    let same_node = old.node_name == new.node_name;
    type Pair<'a> = (Option<&'a ServiceModel>, Option<&'a ServiceModel>);
    let mut pairs: BTreeMap<(&str, &str), Pair> = BTreeMap::new();
    for svc in &old.services {
        pairs.entry((&svc.namespace, &svc.name)).or_default().0 = Some(svc);
    }
    for svc in &new.services {
        pairs.entry((&svc.namespace, &svc.name)).or_default().1 = Some(svc);
    }
    let changed: Vec<Pair> = pairs.into_values().filter(|(before, after)| !same_node || before != after).collect();
    for (before, after) in &changed {
        let before = before.map(|s| service_objects(old, s)).unwrap_or_default();
        let after = after.map(|s| service_objects(new, s)).unwrap_or_default();
        update.chains(&before.chains, &after.chains);
        update.sets(&before.sets, &after.sets);
    }
    // Map elements: a Service's own ones, unless its address is shared with another Service
    // (never with the API server's allocator): then who wins depends on all, so compare all.
    let shared = |input: &ProxyInput| {
        let mut seen = std::collections::HashSet::new();
        let dup: BTreeSet<_> = input.services.iter().map(|s| s.cluster_ip).filter(|ip| !seen.insert(*ip)).collect();
        dup
    };
    let (shared_old, shared_new) = (shared(old), shared(new));
    let touches_shared = changed
        .iter()
        .flat_map(|(b, a)| b.iter().chain(a.iter()))
        .any(|s| shared_old.contains(&s.cluster_ip) || shared_new.contains(&s.cluster_ip));
    if touches_shared {
        update.elements(&elements(old), &elements(new));
    } else {
        let before = elements_of(old, changed.iter().filter_map(|(b, _)| *b));
        let after = elements_of(new, changed.iter().filter_map(|(_, a)| *a));
        update.elements(&before, &after);
    }
    if old.node_ips != new.node_ips {
        let ips = |input: &ProxyInput| {
            let set = input.node_ips.iter().map(|ip| (ip.to_string(), String::new())).collect();
            Elements::from([(NODEPORT_IPS, set)])
        };
        update.elements(&ips(old), &ips(new));
    }
    update.finish(&new.node_name)
}
