//! The proxy's model of one node's view of the cluster, built from Service and EndpointSlice
//! objects, and the choice of which endpoints take traffic.

use emu_api::typed::{self, EndpointSlice, Service};
use emu_api::{object, syntax};
use emu_logic::ipam::Ipv4Cidr;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// SVC-13: `sessionAffinityConfig.clientIP.timeoutSeconds` when the Service does not say.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// The label that ties an EndpointSlice to its Service (EP-4, SVC-18).
const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// Everything the ruleset of one node depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInput {
    pub node_name: String,
    /// The cluster's pod network (10.244.0.0/16): traffic from outside it is masqueraded (NET-4).
    pub cluster_pod_cidr: Ipv4Cidr,
    /// The ClusterIP range (10.96.0.0/12): addresses in it that no Service owns are dropped.
    pub service_cidr: Ipv4Cidr,
    /// Sorted by namespace, then name.
    pub services: Vec<ServiceModel>,
    /// The node's own addresses where node ports answer (InternalIP, ExternalIP: kube-proxy's
    /// `--nodeport-addresses primary`, never loopback; NET-6). Empty: no node ports.
    pub node_ips: Vec<Ipv4Addr>,
}

/// One Service with a ClusterIP (types ClusterIP, NodePort and LoadBalancer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceModel {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    /// `Some(seconds)` for `sessionAffinity: ClientIP` (SVC-13).
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local` (SVC-16).
    pub internal_local: bool,
    /// In the Service's spec order.
    pub ports: Vec<PortModel>,
    /// `externalTrafficPolicy: Local` of a NodePort or LoadBalancer Service: traffic from
    /// outside the cluster goes to this node's endpoints only and keeps its source (NET-6).
    pub external_local: bool,
    /// The balancer addresses of a LoadBalancer Service (`status.loadBalancer.ingress`, `ipMode`
    /// VIP): handled on every node like its node ports, so that traffic from inside the cluster
    /// to them never leaves for the balancer (NET-7).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `healthCheckNodePort` (LoadBalancer with Local policy): where this node tells balancers
    /// whether it has endpoints of the Service (SVC-15). Not part of the rules.
    pub health_check_node_port: Option<u16>,
}

/// One port of a Service and the endpoints behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortModel {
    /// `""` for an unnamed port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// The port opened on every node's addresses (types NodePort and LoadBalancer).
    pub node_port: Option<u16>,
    /// Every endpoint the EndpointSlices list for this port, usable or not, sorted by IP then
    /// port, one per IP:port.
    pub endpoints: Vec<EndpointModel>,
}

/// One address of an EndpointSlice, with the slice port's number (the pod's target port; SVC-12:
/// a named targetPort may resolve to a different number on each pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointModel {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The Kubernetes spelling (`TCP`); absent means TCP.
    pub fn from_k8s(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nft spelling, as in `meta l4proto tcp`.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft())
    }
}

/// Which endpoints of one Service port take new connections on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backends<'a> {
    /// Balance over these (never empty).
    Use(Vec<&'a EndpointModel>),
    /// `internalTrafficPolicy: Local` and endpoints exist, but none on this node: drop, so the
    /// client times out (SVC-16).
    NoneLocal,
    /// No usable endpoint anywhere: reject, so the client sees "Connection refused" (NET-2).
    None,
}

/// NET-3: the ready endpoints; when none is ready, the serving ones that are terminating (so a
/// rolling update's last pods keep answering). With `internal_local`, the same choice among the
/// endpoints on `node_name` only (SVC-16); whether the Service has endpoints at all is decided
/// cluster-wide, as kube-proxy does (none anywhere → reject; only elsewhere → drop).
pub fn usable_endpoints<'a>(node_name: &str, internal_local: bool, endpoints: &'a [EndpointModel]) -> Backends<'a> {
    fn choose<'a>(eps: impl Iterator<Item = &'a EndpointModel> + Clone) -> Vec<&'a EndpointModel> {
        let ready: Vec<_> = eps.clone().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        eps.filter(|e| e.serving && e.terminating).collect()
    }
    let cluster = choose(endpoints.iter());
    if cluster.is_empty() {
        return Backends::None;
    }
    if !internal_local {
        return Backends::Use(cluster);
    }
    let local = choose(endpoints.iter().filter(|e| e.node_name.as_deref() == Some(node_name)));
    if local.is_empty() {
        Backends::NoneLocal
    } else {
        Backends::Use(local)
    }
}

/// The model of `node_name`'s proxy from Service (v1) and EndpointSlice (discovery.k8s.io/v1)
/// objects. Services without a ClusterIP (headless, ExternalName: NET-8) are left out, and so are
/// those whose names could not be nft identifiers (the API server never stores such names). A
/// port's endpoints come from the slices of the same namespace labelled
/// `kubernetes.io/service-name: <service>`, matching the slice port by name and protocol.
pub fn input_from_objects(
    node_name: &str,
    cluster_pod_cidr: Ipv4Cidr,
    service_cidr: Ipv4Cidr,
    services: &[Value],
    slices: &[Value],
) -> ProxyInput {
    let slices: Vec<EndpointSlice> = typed::decode_all(slices);
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &slices {
        if let Some(owner) = slice_owner(slice) {
            by_service.entry(owner).or_default().push(slice);
        }
    }
    for list in by_service.values_mut() {
        list.sort_by_key(|s| s.metadata.name.as_deref());
    }
    let services: Vec<Service> = typed::decode_all(services);
    let models = services.iter().filter_map(|svc| {
        let slices = by_service.get(&typed::key(&svc.metadata)).map(Vec::as_slice).unwrap_or_default();
        service_model(svc, slices)
    });
    proxy_input(node_name, cluster_pod_cidr, service_cidr, models.collect())
}

/// The (namespace, Service) an IPv4 slice belongs to (EP-4, SVC-18).
fn slice_owner(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let service = typed::labels(&slice.metadata).get(LABEL_SERVICE_NAME)?;
    matches!(slice.address_type.as_str(), "" | "IPv4").then(|| (typed::key(&slice.metadata).0, service.as_str()))
}

fn proxy_input(node_name: &str, cluster_pod_cidr: Ipv4Cidr, service_cidr: Ipv4Cidr, mut models: Vec<ServiceModel>) -> ProxyInput {
    models.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    models.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    ProxyInput { node_name: node_name.to_string(), cluster_pod_cidr, service_cidr, services: models, node_ips: Vec::new() }
}

/// [`input_from_objects`] for a stream of snapshots of shared objects: a Service is modelled
/// again only when its object or one of its slices is not the very one (the same `Arc`) it was
/// modelled from the last time, and what is read of each object is read once. Remodelling 1,000
/// Services took tens of milliseconds, and every endpoint change waited for it.
#[derive(Default)]
pub struct ModelCache {
    /// By the address of the Service object (the entry holds the object, so the address cannot
    /// be reused while it is here).
    services: HashMap<usize, CachedModel>,
    /// The (namespace, Service) of each IPv4 slice, by the address of the slice object.
    slice_owners: HashMap<usize, SliceOwner>,
    remodelled: usize,
}

/// A slice object, decoded, and the (namespace, Service) it belongs to, if it is an IPv4 slice
/// of one.
type SliceOwner = (Arc<Value>, Arc<EndpointSlice>, Option<(String, String)>);

/// A slice object of the snapshot and its decoding.
type SliceRef<'a> = (&'a Arc<Value>, &'a EndpointSlice);

struct CachedModel {
    service: Arc<Value>,
    slices: Vec<Arc<Value>>,
    model: Option<ServiceModel>,
}

fn address(v: &Arc<Value>) -> usize {
    Arc::as_ptr(v) as usize
}

impl ModelCache {
    /// The same model as [`input_from_objects`] of the same objects.
    pub fn input<'a>(
        &mut self,
        node_name: &str,
        cluster_pod_cidr: Ipv4Cidr,
        service_cidr: Ipv4Cidr,
        services: impl IntoIterator<Item = &'a Arc<Value>>,
        slices: impl IntoIterator<Item = &'a Arc<Value>>,
    ) -> ProxyInput {
        let mut owners = HashMap::with_capacity(self.slice_owners.len());
        for slice in slices {
            let owner = self.slice_owners.remove(&address(slice)).unwrap_or_else(|| {
                let decoded: EndpointSlice = typed::decode(slice).unwrap_or_default();
                let owner = slice_owner(&decoded).map(|(ns, svc)| (ns.to_string(), svc.to_string()));
                (Arc::clone(slice), Arc::new(decoded), owner)
            });
            owners.insert(address(slice), owner);
        }
        self.slice_owners = owners;
        // Slices by (namespace, Service), in name order so that merging duplicates is
        // deterministic.
        let mut by_service: HashMap<(&str, &str), Vec<SliceRef>> = HashMap::new();
        for (slice, decoded, owner) in self.slice_owners.values() {
            if let Some((ns, svc)) = owner {
                by_service.entry((ns, svc)).or_default().push((slice, decoded));
            }
        }
        for list in by_service.values_mut() {
            if list.len() > 1 {
                list.sort_by_key(|(_, s)| s.metadata.name.as_deref());
            }
        }

        let mut cached = HashMap::with_capacity(self.services.len());
        let mut models = Vec::with_capacity(self.services.len());
        self.remodelled = 0;
        for svc in services {
            let slices: &[SliceRef] = by_service.get(&(object::namespace(svc), object::name(svc))).map(Vec::as_slice).unwrap_or_default();
            let unchanged =
                |c: &CachedModel| c.slices.len() == slices.len() && c.slices.iter().zip(slices).all(|(a, (b, _))| Arc::ptr_eq(a, b));
            let entry = match self.services.remove(&address(svc)).filter(unchanged) {
                Some(entry) => entry,
                None => {
                    self.remodelled += 1;
                    let decoded: Vec<&EndpointSlice> = slices.iter().map(|(_, s)| *s).collect();
                    CachedModel {
                        model: typed::decode::<Service>(svc).ok().and_then(|s| service_model(&s, &decoded)),
                        service: Arc::clone(svc),
                        slices: slices.iter().map(|(s, _)| Arc::clone(s)).collect(),
                    }
                }
            };
            models.extend(entry.model.clone());
            cached.insert(address(&entry.service), entry);
        }
        self.services = cached;
        proxy_input(node_name, cluster_pod_cidr, service_cidr, models)
    }

    /// How many Services the last [`ModelCache::input`] had to model again.
    pub fn remodelled(&self) -> usize {
        self.remodelled
    }
}

/// The model of one admitted Service: every port it has is in the model (admission decoded and
/// validated them; nothing here is parsed or dropped), with the endpoints of the slices of the
/// same port name and protocol.
fn service_model(svc: &Service, slices: &[&EndpointSlice]) -> Option<ServiceModel> {
    let (namespace, name) = typed::key(&svc.metadata);
    // Chain names embed these (render.rs); anything else could break the nft script.
    if !syntax::dns1123_label_errors(namespace).is_empty() || !syntax::dns1123_label_errors(name).is_empty() {
        return None;
    }
    let spec = svc.spec.as_ref()?;
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !matches!(service_type, "ClusterIP" | "NodePort" | "LoadBalancer") {
        return None;
    }
    let exposed = service_type != "ClusterIP";
    // "None" (headless), "" and IPv6 addresses all fail to parse: no VIP to program.
    let cluster_ip: Ipv4Addr = spec.cluster_ip.as_deref()?.parse().ok()?;
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let config = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref());
        config.and_then(|c| c.timeout_seconds).and_then(|t| u32::try_from(t).ok()).filter(|&t| t > 0).unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    // Protocol and port identify a Service port (validation forbids duplicates; a duplicate
    // here would name one chain twice).
    let mut seen = std::collections::BTreeSet::new();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let name = p.name.clone().unwrap_or_default();
            let protocol = Protocol::from_k8s(p.protocol.as_deref())?;
            let port = u16::try_from(p.port).ok()?;
            if !seen.insert((protocol, port)) {
                return None;
            }
            let node_port = p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|&n| exposed && n > 0);
            let endpoints = port_endpoints(slices, &name, protocol);
            Some(PortModel { name, protocol, port, node_port, endpoints })
        })
        .collect();
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    Some(ServiceModel {
        namespace: namespace.to_string(),
        name: name.to_string(),
        cluster_ip,
        affinity_timeout,
        internal_local,
        ports,
        external_local: exposed && spec.external_traffic_policy.as_deref() == Some("Local"),
        health_check_node_port: spec
            .health_check_node_port
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n > 0 && service_type == "LoadBalancer"),
        load_balancer_ips: if service_type == "LoadBalancer" {
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref().is_none_or(|m| m == "VIP"))
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        } else {
            Vec::new()
        },
    })
}

/// The endpoints of one Service port across its slices, one per IP:port.
fn port_endpoints(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol) -> Vec<EndpointModel> {
    let mut found: BTreeMap<(Ipv4Addr, u16), EndpointModel> = BTreeMap::new();
    for slice in slices {
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            let same = p.name.as_deref().unwrap_or("") == port_name && Protocol::from_k8s(p.protocol.as_deref()) == Some(protocol);
            same.then(|| p.port.and_then(|n| u16::try_from(n).ok()))?
        }) else {
            continue;
        };
        for ep in &slice.endpoints {
            // Consumers use the first address only (the API allows exactly one today).
            let Some(ip) = ep.addresses.first().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            // EndpointConditions: nil ready/serving mean true, nil terminating means false.
            let cond = ep.conditions.clone().unwrap_or_default();
            let model = EndpointModel {
                ip,
                port,
                node_name: ep.node_name.clone().filter(|n| !n.is_empty()),
                ready: cond.ready.unwrap_or(true),
                serving: cond.serving.unwrap_or(true),
                terminating: cond.terminating.unwrap_or(false),
            };
            // The same endpoint in two slices (a slice being rewritten): keep the more usable.
            let rank = |e: &EndpointModel| (e.ready, e.serving, !e.terminating);
            match found.get(&(ip, port)) {
                Some(have) if rank(have) >= rank(&model) => {}
                _ => {
                    found.insert((ip, port), model);
                }
            }
        }
    }
    found.into_values().collect()
}

/// A UDP flow that conntrack may still send to an endpoint this node no longer uses for the
/// service: UDP has no connection to end, so until its entry is deleted every datagram of the
/// same 5-tuple keeps going to the old endpoint (kube-proxy deletes these too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleUdpFlow {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub endpoint_ip: Ipv4Addr,
}

/// The UDP flows to delete from conntrack after moving from `old` to `new`: for every UDP
/// service port, each endpoint that took traffic on this node before and no longer does
/// (deleted, unready, or the whole service gone).
pub fn stale_udp_flows(old: &ProxyInput, new: &ProxyInput) -> Vec<StaleUdpFlow> {
    let used = |input: &ProxyInput| -> std::collections::BTreeSet<StaleUdpFlow> {
        let mut flows = std::collections::BTreeSet::new();
        for svc in &input.services {
            for port in svc.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
                if let Backends::Use(eps) = usable_endpoints(&input.node_name, svc.internal_local, &port.endpoints) {
                    flows.extend(eps.iter().map(|e| StaleUdpFlow { cluster_ip: svc.cluster_ip, port: port.port, endpoint_ip: e.ip }));
                }
            }
        }
        flows
    };
    let now = used(new);
    used(old).into_iter().filter(|f| !now.contains(f)).collect()
}

#[cfg(test)]
mod stale_udp_tests {
    use super::*;

    fn input(endpoints: &[(&str, bool)], protocol: Protocol) -> ProxyInput {
        ProxyInput {
            node_name: "n1".into(),
            cluster_pod_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            services: vec![ServiceModel {
                namespace: "kube-system".into(),
                name: "kube-dns".into(),
                cluster_ip: "10.96.0.10".parse().unwrap(),
                affinity_timeout: None,
                internal_local: false,
                external_local: false,
                load_balancer_ips: vec![],
                health_check_node_port: None,
                ports: vec![PortModel {
                    name: "dns".into(),
                    protocol,
                    port: 53,
                    node_port: None,
                    endpoints: endpoints
                        .iter()
                        .map(|(ip, ready)| EndpointModel {
                            ip: ip.parse().unwrap(),
                            port: 53,
                            node_name: None,
                            ready: *ready,
                            serving: *ready,
                            terminating: false,
                        })
                        .collect(),
                }],
            }],
            node_ips: vec![],
        }
    }

    #[test]
    fn a_removed_or_unready_udp_endpoint_is_stale() {
        let before = input(&[("10.244.0.2", true), ("10.244.1.2", true), ("10.244.1.3", true)], Protocol::Udp);
        let after = input(&[("10.244.0.2", true), ("10.244.1.3", false)], Protocol::Udp);
        let flow = |ip: &str| StaleUdpFlow { cluster_ip: "10.96.0.10".parse().unwrap(), port: 53, endpoint_ip: ip.parse().unwrap() };
        assert_eq!(stale_udp_flows(&before, &after), vec![flow("10.244.1.2"), flow("10.244.1.3")]);
        assert_eq!(stale_udp_flows(&after, &before), vec![], "added endpoints leave nothing stale");
        let gone = ProxyInput { services: vec![], ..before.clone() };
        assert_eq!(stale_udp_flows(&before, &gone).len(), 3, "a deleted service's flows are all stale");
    }

    #[test]
    fn tcp_endpoints_are_never_flushed() {
        let before = input(&[("10.244.0.2", true)], Protocol::Tcp);
        let after = input(&[], Protocol::Tcp);
        assert!(stale_udp_flows(&before, &after).is_empty(), "TCP connections end by themselves");
    }
}
