//! The catalog: what the DNS server knows, built from Kubernetes objects (Services,
//! EndpointSlices of `discovery.k8s.io/v1`, Namespaces and, for `pods verified`, Pods) as the
//! controller serves them. Pure: no I/O; the feed applies each change to it through a
//! [`CatalogWriter`] and hands the server a copy that shares all but the changed shards.
//!
//! Two steps: each object is first reduced to a [`DnsObject`], the few facts DNS needs (the feed
//! caches these instead of whole objects: a Service is about 1 KB of JSON and several KB as a
//! `serde_json::Value`, most of it never read here); then a catalog is assembled from all of
//! them, indexed for the lookups a query makes: namespace → service → ready endpoints, and
//! IP → names for PTR. Not-ready endpoints are dropped on the way, since no DNS answer ever
//! includes them (DNS-2, DNS-3). Names are `Arc<str>`, shared between the cached objects and
//! the catalog's indexes.

use crate::names;
use emu_api::object;
use emu_api::typed;
use emu_logic::endpoints::LABEL_SERVICE_NAME;
use hickory_proto::rr::Name;
use serde_json::Value;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

/// The catalog: what queries are answered from. Cheap to clone: its indexes are split into
/// [`SHARDS`] shards, each behind an `Arc`, so that a copy shares every shard with the original
/// and a change copies only the shards it touches (copy on write, [`Arc::make_mut`]). The feed
/// keeps one catalog up to date through a [`CatalogWriter`] and hands the server a clone after
/// each batch of changes: a Service added among 10,000 copies a shard of ~40 services, not the
/// catalog, and the server's copy is never written to.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    config: Arc<CatalogConfig>,
    synced: bool,
    serial: u32,
    /// Every namespace that exists (DNS-11, DNS-12 need empty ones too): those with a Namespace
    /// object or a service.
    namespaces: Arc<HashSet<Arc<str>>>,
    /// namespace → service name → service, sharded by (namespace, name).
    services: Shards<ServicesByNamespace>,
    /// ClusterIP → its service(s); answered before endpoint names (DNS-5). Sharded by IP.
    reverse_services: Shards<HashMap<IpAddr, Vec<ReverseEntry>>>,
    /// Ready endpoint IP → its endpoint name(s) under every service that lists it.
    reverse_endpoints: Shards<HashMap<IpAddr, Vec<ReverseEntry>>>,
    /// Pod IP → the namespaces of pods with it; filled only for `PodRecords::Verified`.
    pod_ips: Shards<HashMap<IpAddr, HashSet<Arc<str>>>>,
    /// (services, ready endpoint addresses), kept as services come and go.
    counts: (usize, usize),
}

/// namespace → service name → service.
type ServicesByNamespace = HashMap<Arc<str>, HashMap<Arc<str>, Service>>;

/// Shards of each index: at 10,000 services, a change copies a shard of ~40 of them.
const SHARDS: usize = 256;

/// An index split by a hash of its keys; each shard copied on its first write after a clone.
#[derive(Debug, Clone, PartialEq)]
struct Shards<T>(Vec<Arc<T>>);

impl<T: Clone + Default> Shards<T> {
    fn new() -> Self {
        Self((0..SHARDS).map(|_| Arc::default()).collect())
    }

    fn get(&self, key: impl Hash) -> &T {
        &self.0[shard_of(key)]
    }

    fn get_mut(&mut self, key: impl Hash) -> &mut T {
        Arc::make_mut(&mut self.0[shard_of(key)])
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|shard| &**shard)
    }
}

/// The shard of a key. A fixed hasher: the same key must land in the same shard in every
/// catalog, and `&str` hashes as the `Arc<str>` it is looked up for.
fn shard_of(key: impl Hash) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % SHARDS as u64) as usize
}

impl Catalog {
    /// The catalog before the first full list from the controller: every cluster name answers
    /// SERVFAIL (DNS-15).
    pub fn unsynced(config: CatalogConfig) -> Self {
        Self {
            config: Arc::new(config),
            synced: false,
            serial: 0,
            namespaces: Arc::default(),
            services: Shards::new(),
            reverse_services: Shards::new(),
            reverse_endpoints: Shards::new(),
            pod_ips: Shards::new(),
            counts: (0, 0),
        }
    }

    /// The catalog of a complete set of Kubernetes objects (other kinds are ignored). `serial`
    /// becomes the SOA serial (CoreDNS uses the time of the last change, in Unix seconds).
    pub fn build<'a>(objects: impl IntoIterator<Item = &'a Value>, config: CatalogConfig, serial: u32) -> Self {
        let parsed: Vec<DnsObject> = objects.into_iter().filter_map(DnsObject::from_value).collect();
        Self::from_objects(&parsed, config, serial)
    }

    /// [`Catalog::build`] from objects already reduced by [`DnsObject::from_value`]. Slices of
    /// one service are merged in the order given.
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a DnsObject>, config: CatalogConfig, serial: u32) -> Self {
        let mut writer = CatalogWriter::new(config);
        for (i, object) in objects.into_iter().enumerate() {
            // Keyed as the feed keys them where the key names the object a later one replaces;
            // slices and pods by position, so that none replaces another.
            let key = match object {
                DnsObject::Namespace { name } => ("Namespace".into(), String::new(), name.to_string()),
                DnsObject::Service(s) => ("Service".into(), s.namespace.to_string(), s.name.to_string()),
                DnsObject::EndpointSlice(s) => ("EndpointSlice".into(), s.namespace.to_string(), format!("{i:020}")),
                DnsObject::Pod { namespace, .. } => ("Pod".into(), namespace.to_string(), format!("{i:020}")),
            };
            writer.apply(key, Some(Arc::new(Some(object.clone()))));
        }
        writer.catalog.serial = serial;
        writer.catalog
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
        self.namespaces.contains(namespace)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.get((namespace, name)).get(namespace)?.get(name)
    }

    /// Names for a PTR query of `ip`: its service(s) if it is a ClusterIP, else its endpoint
    /// names (DNS-5). Empty when the IP is unknown.
    pub fn reverse(&self, ip: IpAddr) -> &[ReverseEntry] {
        let services = self.reverse_services.get(ip).get(&ip);
        services.or_else(|| self.reverse_endpoints.get(ip).get(&ip)).map_or(&[], Vec::as_slice)
    }

    /// Whether a pod with `ip` runs in `namespace` (only known with `PodRecords::Verified`).
    pub fn pod_exists(&self, namespace: &str, ip: IpAddr) -> bool {
        self.pod_ips.get(ip).get(&ip).is_some_and(|namespaces| namespaces.contains(namespace))
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
        self.counts
    }

    /// Every service, in no particular order.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().flat_map(HashMap::values).flat_map(HashMap::values)
    }

    /// Puts `new` in the place of service `namespace/name`, with its reverse entries.
    fn replace_service(&mut self, namespace: &Arc<str>, name: &Arc<str>, new: Option<Service>) {
        if self.service(namespace, name) == new.as_ref() {
            return;
        }
        let shard = self.services.get_mut((&**namespace, &**name));
        let old = match new.clone() {
            Some(service) => shard.entry(namespace.clone()).or_default().insert(name.clone(), service),
            None => {
                let mut services = shard.get_mut(namespace);
                let old = services.as_mut().and_then(|s| s.remove(name));
                if services.is_some_and(|s| s.is_empty()) {
                    shard.remove(namespace);
                }
                old
            }
        };
        if let Some(old) = old {
            self.counts = (self.counts.0 - 1, self.counts.1 - old.endpoints.len());
            self.index_reverse(&old, false);
        }
        if let Some(new) = new {
            self.counts = (self.counts.0 + 1, self.counts.1 + new.endpoints.len());
            self.index_reverse(&new, true);
        }
    }

    /// Adds (or removes) a service's PTR entries: its ClusterIPs and its endpoints'.
    fn index_reverse(&mut self, service: &Service, add: bool) {
        let entry = |endpoint: Option<&Arc<str>>| ReverseEntry {
            endpoint: endpoint.cloned(),
            service: service.name.clone(),
            namespace: service.namespace.clone(),
        };
        let cluster_ips = match &service.kind {
            ServiceKind::ExternalName(_) => return,
            ServiceKind::ClusterIp(ips) => ips.as_slice(),
            ServiceKind::Headless => &[],
        };
        for ip in cluster_ips {
            update_reverse(self.reverse_services.get_mut(ip).entry(*ip), entry(None), add);
        }
        for endpoint in &service.endpoints {
            update_reverse(self.reverse_endpoints.get_mut(endpoint.ip).entry(endpoint.ip), entry(Some(&endpoint.label)), add);
        }
    }
}

/// Adds or removes one PTR entry of an IP. Entries stay sorted, so that the answer does not
/// depend on the order services came in; an IP without entries leaves the index.
fn update_reverse(slot: Entry<'_, IpAddr, Vec<ReverseEntry>>, entry: ReverseEntry, add: bool) {
    match (slot, add) {
        (Entry::Occupied(mut o), true) => {
            let at = o.get().binary_search(&entry).unwrap_or_else(|at| at);
            o.get_mut().insert(at, entry);
        }
        (Entry::Vacant(v), true) => {
            v.insert(vec![entry]);
        }
        (Entry::Occupied(mut o), false) => {
            if let Some(at) = o.get().iter().position(|e| *e == entry) {
                o.get_mut().remove(at);
            }
            if o.get().is_empty() {
                o.remove();
            }
        }
        (Entry::Vacant(_), false) => {}
    }
}

/// Keeps a [`Catalog`] in step with the objects, one change at a time: each change recomputes
/// only what it touches (a Service and its slices, one namespace, one pod IP), and the result is
/// the catalog a rebuild from all objects gives (the tests check it over random changes).
#[derive(Debug, Clone)]
pub struct CatalogWriter {
    catalog: Catalog,
    /// Every object, keyed as the feed's reflector keys them: (kind, namespace, name).
    objects: HashMap<ObjectKey, Arc<Option<DnsObject>>>,
    /// (namespace, service) → the names of its slices, in the order a rebuild merges them.
    slices: HashMap<(Arc<str>, Arc<str>), BTreeSet<String>>,
    /// namespace → why it exists: its Namespace object and each of its services.
    namespace_refs: HashMap<Arc<str>, usize>,
    /// (namespace, pod IP) → pods with it (two only for a moment, when an IP is reused).
    pod_refs: HashMap<(Arc<str>, IpAddr), usize>,
}

/// Where an object is kept: (kind, namespace, name).
pub type ObjectKey = (String, String, String);

impl CatalogWriter {
    /// A synced, empty catalog.
    pub fn new(config: CatalogConfig) -> Self {
        Self {
            catalog: Catalog { synced: true, ..Catalog::unsynced(config) },
            objects: HashMap::new(),
            slices: HashMap::new(),
            namespace_refs: HashMap::new(),
            pod_refs: HashMap::new(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn set_serial(&mut self, serial: u32) {
        self.catalog.serial = serial;
    }

    /// Sets the object at `key` (its projection; `None` inside for an object DNS does not serve),
    /// or removes it (`None`).
    pub fn apply(&mut self, key: ObjectKey, object: Option<Arc<Option<DnsObject>>>) {
        let new = object.filter(|o| o.is_some());
        let old = match &new {
            Some(object) => self.objects.insert(key.clone(), object.clone()),
            None => self.objects.remove(&key),
        };
        // Undo what the old version brought, add what the new one brings, then recompute the
        // services whose own object or slices changed.
        let mut touched = Vec::new();
        for (object, add) in [(old, false), (new, true)] {
            let Some(object) = object.as_deref().and_then(Option::as_ref) else { continue };
            match object {
                DnsObject::Namespace { name } => self.count_namespace(name, add),
                DnsObject::Service(service) => {
                    self.count_namespace(&service.namespace, add);
                    touched.push((service.namespace.clone(), service.name.clone()));
                }
                DnsObject::EndpointSlice(slice) => {
                    let owner = (slice.namespace.clone(), slice.service.clone());
                    let names = self.slices.entry(owner.clone()).or_default();
                    if add {
                        names.insert(key.2.clone());
                    } else {
                        names.remove(&key.2);
                        if names.is_empty() {
                            self.slices.remove(&owner);
                        }
                    }
                    touched.push(owner);
                }
                DnsObject::Pod { namespace, ips } if self.catalog.config.pod_records == PodRecords::Verified => {
                    let unique: HashSet<&IpAddr> = ips.iter().collect();
                    for ip in unique {
                        self.count_pod_ip(namespace, *ip, add);
                    }
                }
                DnsObject::Pod { .. } => {}
            }
        }
        touched.dedup();
        for (namespace, name) in touched {
            self.refresh_service(&namespace, &name);
        }
    }

    /// Service `namespace/name` as its object and slices make it now.
    fn refresh_service(&mut self, namespace: &Arc<str>, name: &Arc<str>) {
        let object = |kind: &str, name: &str| self.objects.get(&(kind.to_string(), namespace.to_string(), name.to_string()));
        let service = match object("Service", name).and_then(|o| (**o).as_ref()) {
            Some(DnsObject::Service(service)) => {
                let mut service = service.clone();
                let slice_names = self.slices.get(&(namespace.clone(), name.clone())).into_iter().flatten();
                for slice_name in slice_names {
                    if let Some(Some(DnsObject::EndpointSlice(slice))) = object("EndpointSlice", slice_name).map(|o| &**o) {
                        for endpoint in &slice.endpoints {
                            merge_endpoint(&mut service.endpoints, endpoint);
                        }
                    }
                }
                Some(service)
            }
            _ => None,
        };
        self.catalog.replace_service(namespace, name, service);
    }

    fn count_namespace(&mut self, namespace: &Arc<str>, add: bool) {
        if count(&mut self.namespace_refs, namespace.clone(), add) {
            let namespaces = Arc::make_mut(&mut self.catalog.namespaces);
            if add {
                namespaces.insert(namespace.clone());
            } else {
                namespaces.remove(namespace);
            }
        }
    }

    fn count_pod_ip(&mut self, namespace: &Arc<str>, ip: IpAddr, add: bool) {
        if count(&mut self.pod_refs, (namespace.clone(), ip), add) {
            let shard = self.catalog.pod_ips.get_mut(ip);
            let namespaces = shard.entry(ip).or_default();
            if add {
                namespaces.insert(namespace.clone());
            } else {
                namespaces.remove(namespace);
                if namespaces.is_empty() {
                    shard.remove(&ip);
                }
            }
        }
    }
}

/// Counts one more (or one less) reference to `key`; true when it appeared or disappeared.
fn count<K: Hash + Eq>(refs: &mut HashMap<K, usize>, key: K, add: bool) -> bool {
    if add {
        let n = refs.entry(key).or_default();
        *n += 1;
        *n == 1
    } else {
        match refs.entry(key) {
            Entry::Occupied(mut o) if *o.get() > 1 => {
                *o.get_mut() -= 1;
                false
            }
            Entry::Occupied(o) => {
                o.remove();
                true
            }
            Entry::Vacant(_) => false,
        }
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

#[cfg(test)]
mod tests;
