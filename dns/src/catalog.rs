//! The catalog: what the DNS server knows, built from Kubernetes objects (Services,
//! EndpointSlices of `discovery.k8s.io/v1`, Namespaces and, for `pods verified`, Pods) as the
//! controller serves them. Pure: no I/O; the server rebuilds it on every change and swaps it in.
//!
//! Two steps: each object is first reduced to a [`DnsObject`], the few facts DNS needs (the feed
//! caches these instead of whole objects: a Service is about 1 KB of JSON and several KB as a
//! `serde_json::Value`, most of it never read here); then a catalog is assembled from all of
//! them, indexed for the lookups a query makes: namespace → service → ready endpoints, and
//! IP → names for PTR. Not-ready endpoints are dropped on the way, since no DNS answer ever
//! includes them (DNS-2, DNS-3). Names are `Arc<str>`, shared between the cached objects and
//! every catalog built from them, so that a rebuild allocates little.

use crate::names;
use emu_api::object;
use emu_api::typed;
use emu_logic::endpoints::LABEL_SERVICE_NAME;
use hickory_proto::rr::Name;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// The decoded objects DNS reads (this module's own `Service` is what DNS keeps of one).
mod k8s {
    pub use emu_api::typed::{EndpointSlice, Namespace, Pod, Service, ServiceSpec};
}

/// The kubeadm Corefile's `ttl 30` (DNS-16).
pub const DEFAULT_TTL: u32 = 30;

/// How `<dashed-ip>.<ns>.pod.<zone>` names are answered, as CoreDNS's `pods` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodRecords {
    /// Never (CoreDNS's default): NXDOMAIN.
    Disabled,
    /// Any well-formed dashed IP in an existing namespace, without looking for a pod (the kubeadm
    /// Corefile's `pods insecure`, DNS-7).
    #[default]
    Insecure,
    /// Only when a pod with that IP exists in that namespace.
    Verified,
}

/// What the cluster's DNS is configured with (the parts of a Corefile that matter here).
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// The cluster domain, fully qualified and lower case (`cluster.local.`).
    pub zone: Name,
    pub pod_records: PodRecords,
    /// TTL of service, endpoint and pod records, and the SOA minimum.
    pub ttl: u32,
}

impl CatalogConfig {
    /// `domain` as given on a command line (`cluster.local` or `cluster.local.`).
    pub fn new(domain: &str, pod_records: PodRecords) -> Result<Self, CatalogError> {
        let mut zone =
            Name::from_ascii(domain).map_err(|e| CatalogError::BadDomain { domain: domain.to_string(), reason: e.to_string() })?;
        if zone.is_root() {
            return Err(CatalogError::BadDomain {
                domain: domain.to_string(),
                reason: "the root zone cannot be the cluster domain".into(),
            });
        }
        zone.set_fqdn(true);
        Ok(Self { zone: zone.to_lowercase(), pod_records, ttl: DEFAULT_TTL })
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self::new("cluster.local", PodRecords::Insecure).expect("valid default domain")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cluster domain {domain:?} is not a valid DNS name: {reason}")]
    BadDomain { domain: String, reason: String },
}

/// A Service port or an EndpointSlice port. Name and protocol lower case, as SRV labels compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

/// How a Service's own name resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// Its ClusterIPs (one per family; empty until allocated).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this (fully qualified) name.
    ExternalName(Name),
}

/// A ready endpoint address of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// Its label under the service name: the endpoint's `hostname`, or else the dashed IP (DNS-3).
    pub label: Arc<str>,
    /// The ports of the slices listing this address (an address in several slices has them all).
    pub ports: Arc<[Port]>,
}

/// A Service as DNS sees it.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: Arc<str>,
    pub namespace: Arc<str>,
    pub kind: ServiceKind,
    pub ports: Arc<[Port]>,
    /// Ready endpoints, one per address, in slice order (empty in a [`DnsObject`]).
    pub endpoints: Vec<Endpoint>,
}

/// The ready endpoints of one EndpointSlice.
#[derive(Debug, Clone)]
pub struct Slice {
    pub namespace: Arc<str>,
    /// From the `kubernetes.io/service-name` label.
    pub service: Arc<str>,
    pub endpoints: Vec<Endpoint>,
}

/// What DNS needs of one Kubernetes object.
#[derive(Debug, Clone)]
pub enum DnsObject {
    Namespace { name: Arc<str> },
    Service(Service),
    EndpointSlice(Slice),
    Pod { namespace: Arc<str>, ips: Vec<IpAddr> },
}

impl DnsObject {
    /// `None` for other kinds and for objects DNS does not serve: an EndpointSlice of FQDNs or
    /// without a service label, an ExternalName that is not a name (DNS-6). Anything malformed
    /// inside an object is skipped: one bad object must not take the cluster's DNS down.
    pub fn from_value(v: &Value) -> Option<Self> {
        match object::kind(v) {
            "Namespace" => Some(DnsObject::Namespace { name: typed::key(&typed::decode::<k8s::Namespace>(v).ok()?.metadata).1.into() }),
            "Service" => Self::from_service(&typed::decode(v).ok()?),
            "EndpointSlice" => Self::from_slice(&typed::decode(v).ok()?),
            "Pod" => {
                let pod: k8s::Pod = typed::decode(v).ok()?;
                Some(DnsObject::Pod { namespace: typed::key(&pod.metadata).0.into(), ips: pod_ips(&pod) })
            }
            _ => None,
        }
    }

    /// What DNS needs of a Service.
    pub fn from_service(svc: &k8s::Service) -> Option<Self> {
        let (namespace, name) = typed::key(&svc.metadata);
        let spec = svc.spec.clone().unwrap_or_default();
        let ports = spec.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), Some(p.port)));
        Some(DnsObject::Service(Service {
            name: name.into(),
            namespace: namespace.into(),
            kind: service_kind(&spec)?,
            ports: ports_of(ports).into(),
            endpoints: Vec::new(),
        }))
    }

    /// What DNS needs of an EndpointSlice: its ready endpoints.
    pub fn from_slice(slice: &k8s::EndpointSlice) -> Option<Self> {
        let service = typed::labels(&slice.metadata).get(LABEL_SERVICE_NAME)?;
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            return None;
        }
        let namespace = typed::key(&slice.metadata).0;
        Some(DnsObject::EndpointSlice(Slice {
            namespace: namespace.into(),
            service: service.as_str().into(),
            endpoints: ready_endpoints(slice),
        }))
    }
}

/// [`DnsObject::from_value`] taking ownership: the projection the feed's reflector caches.
pub fn project(v: Value) -> Option<DnsObject> {
    DnsObject::from_value(&v)
}

/// A name a PTR query for an IP answers with, as the labels in front of `svc.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReverseEntry {
    /// The endpoint label for an endpoint IP, `None` for a ClusterIP.
    pub endpoint: Option<Arc<str>>,
    pub service: Arc<str>,
    pub namespace: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    config: CatalogConfig,
    synced: bool,
    serial: u32,
    /// Every namespace that exists, with its services (DNS-11, DNS-12 need empty ones too).
    namespaces: HashMap<Arc<str>, HashMap<Arc<str>, Service>>,
    /// ClusterIP → its service(s); answered before endpoint names (DNS-5).
    reverse_services: HashMap<IpAddr, Vec<ReverseEntry>>,
    /// Ready endpoint IP → its endpoint name(s) under every service that lists it.
    reverse_endpoints: HashMap<IpAddr, Vec<ReverseEntry>>,
    /// Pod IPs by namespace; filled only for `PodRecords::Verified`.
    pod_ips: HashMap<Arc<str>, HashSet<IpAddr>>,
}

impl Catalog {
    /// The catalog before the first full list from the controller: every cluster name answers
    /// SERVFAIL (DNS-15).
    pub fn unsynced(config: CatalogConfig) -> Self {
        Self {
            config,
            synced: false,
            serial: 0,
            namespaces: HashMap::new(),
            reverse_services: HashMap::new(),
            reverse_endpoints: HashMap::new(),
            pod_ips: HashMap::new(),
        }
    }

    /// The catalog of a complete set of Kubernetes objects (other kinds are ignored). `serial`
    /// becomes the SOA serial (CoreDNS uses the time of the last change, in Unix seconds).
    pub fn build<'a>(objects: impl IntoIterator<Item = &'a Value>, config: CatalogConfig, serial: u32) -> Self {
        let parsed: Vec<DnsObject> = objects.into_iter().filter_map(DnsObject::from_value).collect();
        Self::from_objects(&parsed, config, serial)
    }

    /// [`Catalog::build`] from objects already reduced by [`DnsObject::from_value`].
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a DnsObject>, config: CatalogConfig, serial: u32) -> Self {
        let mut catalog = Self { synced: true, serial, ..Self::unsynced(config) };
        let mut slices = Vec::new();
        for object in objects {
            match object {
                DnsObject::Namespace { name } => {
                    catalog.namespaces.entry(name.clone()).or_default();
                }
                DnsObject::Service(service) => catalog.add_service(service),
                DnsObject::EndpointSlice(slice) => slices.push(slice),
                DnsObject::Pod { namespace, ips } if catalog.config.pod_records == PodRecords::Verified => {
                    catalog.pod_ips.entry(namespace.clone()).or_default().extend(ips);
                }
                DnsObject::Pod { .. } => {}
            }
        }
        // Slices after services, whatever order the objects came in.
        for slice in slices {
            catalog.add_slice(slice);
        }
        catalog.index_reverse();
        catalog
    }

    fn add_service(&mut self, service: &Service) {
        // A service's namespace exists even if its Namespace object has not arrived yet.
        self.namespaces.entry(service.namespace.clone()).or_default().insert(service.name.clone(), service.clone());
    }

    fn add_slice(&mut self, slice: &Slice) {
        let Some(service) = self.namespaces.get_mut(&slice.namespace).and_then(|s| s.get_mut(&slice.service)) else { return };
        for endpoint in &slice.endpoints {
            merge_endpoint(&mut service.endpoints, endpoint);
        }
    }

    fn index_reverse(&mut self) {
        for service in self.namespaces.values().flat_map(HashMap::values) {
            let entry = |endpoint: Option<&Arc<str>>| ReverseEntry {
                endpoint: endpoint.cloned(),
                service: service.name.clone(),
                namespace: service.namespace.clone(),
            };
            match &service.kind {
                ServiceKind::ExternalName(_) => continue,
                ServiceKind::ClusterIp(ips) => {
                    for ip in ips {
                        self.reverse_services.entry(*ip).or_default().push(entry(None));
                    }
                }
                ServiceKind::Headless => {}
            }
            for endpoint in &service.endpoints {
                self.reverse_endpoints.entry(endpoint.ip).or_default().push(entry(Some(&endpoint.label)));
            }
        }
        // Services come out of a hash map; answers should not change order between rebuilds.
        for entries in self.reverse_services.values_mut().chain(self.reverse_endpoints.values_mut()) {
            if entries.len() > 1 {
                entries.sort();
            }
        }
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// False until the first full list from the controller has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.namespaces.get(namespace)?.get(name)
    }

    /// Names for a PTR query of `ip`: its service(s) if it is a ClusterIP, else its endpoint
    /// names (DNS-5). Empty when the IP is unknown.
    pub fn reverse(&self, ip: IpAddr) -> &[ReverseEntry] {
        self.reverse_services.get(&ip).or_else(|| self.reverse_endpoints.get(&ip)).map_or(&[], Vec::as_slice)
    }

    /// Whether a pod with `ip` runs in `namespace` (only known with `PodRecords::Verified`).
    pub fn pod_exists(&self, namespace: &str, ip: IpAddr) -> bool {
        self.pod_ips.get(namespace).is_some_and(|ips| ips.contains(&ip))
    }

    /// The ClusterIPs of `kube-system/kube-dns`: what `ns.dns.<zone>` resolves to, as CoreDNS
    /// answers with the addresses of the service in front of it.
    pub fn dns_service_ips(&self) -> &[IpAddr] {
        match self.service("kube-system", "kube-dns").map(|s| &s.kind) {
            Some(ServiceKind::ClusterIp(ips)) => ips,
            _ => &[],
        }
    }

    /// (services, ready endpoint addresses), for the log line of a sync and the metrics.
    pub fn counts(&self) -> (usize, usize) {
        let services = self.namespaces.values().flat_map(HashMap::values);
        services.fold((0, 0), |(s, e), service| (s + 1, e + service.endpoints.len()))
    }
}

/// `None` for a service DNS does not serve: an ExternalName that is not a valid name or looks
/// like an IPv4 address (DNS-6: it is not answered, so the name is NXDOMAIN).
fn service_kind(spec: &k8s::ServiceSpec) -> Option<ServiceKind> {
    if spec.type_.as_deref() == Some("ExternalName") {
        let external = spec.external_name.as_deref()?;
        if external.parse::<Ipv4Addr>().is_ok() {
            return None;
        }
        let mut target = Name::from_ascii(external).ok().filter(|n| !n.is_root())?;
        target.set_fqdn(true);
        return Some(ServiceKind::ExternalName(target));
    }
    let ips: Vec<&str> = spec.cluster_ips.iter().flatten().chain(&spec.cluster_ip).map(String::as_str).collect();
    if ips.first() == Some(&"None") {
        return Some(ServiceKind::Headless);
    }
    let mut parsed: Vec<IpAddr> = Vec::new();
    for ip in ips.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
        if !parsed.contains(&ip) {
            parsed.push(ip);
        }
    }
    Some(ServiceKind::ClusterIp(parsed))
}

/// Ports of a Service spec or an EndpointSlice as (name, protocol, port). Protocol defaults to
/// TCP; a slice port without a number is left out.
fn ports_of<'a>(ports: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, Option<i32>)>) -> Vec<Port> {
    ports
        .filter_map(|(name, protocol, port)| {
            Some(Port {
                name: name.unwrap_or("").to_ascii_lowercase(),
                protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(port?).ok()?,
            })
        })
        .collect()
}

/// The ready endpoints of a slice, one per address, with the slice's ports. DNS-2: an endpoint
/// is ready when `conditions.ready` is true or unset.
fn ready_endpoints(slice: &k8s::EndpointSlice) -> Vec<Endpoint> {
    let ports = slice.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), p.port));
    let ports: Arc<[Port]> = ports_of(ports).into();
    let ready = slice.endpoints.iter().filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
    let mut endpoints = Vec::new();
    for endpoint in ready {
        let hostname = endpoint.hostname.as_deref().filter(|h| !h.is_empty());
        for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
            let label = hostname.map_or_else(|| names::dashed_ip(ip), str::to_ascii_lowercase);
            endpoints.push(Endpoint { ip, label: label.into(), ports: ports.clone() });
        }
    }
    endpoints
}

fn pod_ips(pod: &k8s::Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let listed = status.and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|p| p.ip.as_str());
    let mut ips: Vec<IpAddr> = listed.chain(status.and_then(|s| s.pod_ip.as_deref())).filter_map(|s| s.parse().ok()).collect();
    ips.dedup();
    ips
}

/// Adds an endpoint to a service's, or its ports to the endpoint with the same address already
/// there (an address in two slices, one per port set).
fn merge_endpoint(endpoints: &mut Vec<Endpoint>, endpoint: &Endpoint) {
    let Some(existing) = endpoints.iter_mut().find(|e| e.ip == endpoint.ip) else {
        endpoints.push(endpoint.clone());
        return;
    };
    let missing: Vec<&Port> = endpoint.ports.iter().filter(|p| !existing.ports.contains(p)).collect();
    if !missing.is_empty() {
        existing.ports = existing.ports.iter().chain(missing).cloned().collect();
    }
}
