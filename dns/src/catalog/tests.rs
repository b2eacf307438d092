//! The incremental catalog against a rebuild: whatever order objects come, change and go in, the
//! catalog is the one the objects left give, built the way the catalog was built before it was
//! incremental (each time from all objects).

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Everything a catalog holds, in a form two catalogs compare in.
#[derive(Debug, PartialEq)]
struct Dump {
    namespaces: BTreeSet<String>,
    services: BTreeMap<(String, String), Service>,
    reverse_services: BTreeMap<IpAddr, Vec<ReverseEntry>>,
    reverse_endpoints: BTreeMap<IpAddr, Vec<ReverseEntry>>,
    pods: BTreeSet<(String, IpAddr)>,
    counts: (usize, usize),
}

fn dump(catalog: &Catalog) -> Dump {
    let reverse = |index: &Shards<HashMap<IpAddr, Vec<ReverseEntry>>>| {
        index.iter().flat_map(|shard| shard.iter().map(|(ip, entries)| (*ip, entries.clone()))).collect()
    };
    Dump {
        namespaces: catalog.namespaces.iter().map(|n| n.to_string()).collect(),
        services: catalog.services().map(|s| ((s.namespace.to_string(), s.name.to_string()), s.clone())).collect(),
        reverse_services: reverse(&catalog.reverse_services),
        reverse_endpoints: reverse(&catalog.reverse_endpoints),
        pods: catalog
            .pod_ips
            .iter()
            .flat_map(|shard| shard.iter().flat_map(|(ip, namespaces)| namespaces.iter().map(|n| (n.to_string(), *ip))))
            .collect(),
        counts: catalog.counts(),
    }
}

/// The catalog of `objects` (in key order, as the reflector's cache holds them) built as it was
/// before it became incremental: services, then every slice merged into its service, then the
/// reverse index from all services.
fn rebuild(objects: &BTreeMap<ObjectKey, DnsObject>, pod_records: PodRecords) -> Dump {
    let mut namespaces = BTreeSet::new();
    let mut services: BTreeMap<(String, String), Service> = BTreeMap::new();
    let mut pods = BTreeSet::new();
    for object in objects.values() {
        match object {
            DnsObject::Namespace { name } => {
                namespaces.insert(name.to_string());
            }
            DnsObject::Service(s) => {
                namespaces.insert(s.namespace.to_string());
                services.insert((s.namespace.to_string(), s.name.to_string()), s.clone());
            }
            DnsObject::EndpointSlice(_) => {}
            DnsObject::Pod { namespace, ips } if pod_records == PodRecords::Verified => {
                pods.extend(ips.iter().map(|ip| (namespace.to_string(), *ip)));
            }
            DnsObject::Pod { .. } => {}
        }
    }
    for object in objects.values() {
        if let DnsObject::EndpointSlice(slice) = object {
            if let Some(service) = services.get_mut(&(slice.namespace.to_string(), slice.service.to_string())) {
                for endpoint in &slice.endpoints {
                    merge_endpoint(&mut service.endpoints, endpoint);
                }
            }
        }
    }
    let (mut reverse_services, mut reverse_endpoints) = (BTreeMap::<IpAddr, Vec<_>>::new(), BTreeMap::<IpAddr, Vec<_>>::new());
    for service in services.values() {
        let entry = |endpoint: Option<&Arc<str>>| ReverseEntry {
            endpoint: endpoint.cloned(),
            service: service.name.clone(),
            namespace: service.namespace.clone(),
        };
        match &service.kind {
            ServiceKind::ExternalName(_) => continue,
            ServiceKind::ClusterIp(ips) => ips.iter().for_each(|ip| reverse_services.entry(*ip).or_default().push(entry(None))),
            ServiceKind::Headless => {}
        }
        for endpoint in &service.endpoints {
            reverse_endpoints.entry(endpoint.ip).or_default().push(entry(Some(&endpoint.label)));
        }
    }
    reverse_services.values_mut().chain(reverse_endpoints.values_mut()).for_each(|entries| entries.sort());
    let counts = (services.len(), services.values().map(|s| s.endpoints.len()).sum());
    Dump { namespaces, services, reverse_services, reverse_endpoints, pods, counts }
}

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const SERVICES: [&str; 3] = ["s1", "s2", "s3"];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// An address of a small pool, so that services and endpoints share them.
fn ip(rng: &mut StdRng, net: u8) -> IpAddr {
    IpAddr::from([10, net, 0, rng.random_range(1..5)])
}

fn ports(rng: &mut StdRng) -> Arc<[Port]> {
    let all = [("http", "tcp", 80), ("dns", "udp", 53), ("", "tcp", 8080)];
    let chosen = all.iter().filter(|_| rng.random_bool(0.5));
    chosen.map(|(name, protocol, port)| Port { name: name.to_string(), protocol: protocol.to_string(), port: *port }).collect()
}

/// A random version of an object of one of the kinds DNS reads, and its key.
fn random_object(rng: &mut StdRng) -> (ObjectKey, DnsObject) {
    let namespace: Arc<str> = pick(rng, &NAMESPACES).into();
    let key = |kind: &str, name: &str| (kind.to_string(), namespace.to_string(), name.to_string());
    match rng.random_range(0..10) {
        0 => {
            let name: Arc<str> = pick(rng, &NAMESPACES).into();
            (("Namespace".into(), String::new(), name.to_string()), DnsObject::Namespace { name })
        }
        1..=3 => {
            let name = pick(rng, &SERVICES);
            let kind = match rng.random_range(0..4) {
                0 => ServiceKind::Headless,
                1 => ServiceKind::ExternalName(Name::from_ascii("x.example.").unwrap()),
                _ => {
                    ServiceKind::ClusterIp((0..rng.random_range(0..3)).map(|_| ip(rng, 96)).collect::<BTreeSet<_>>().into_iter().collect())
                }
            };
            let service = Service { name: name.into(), namespace: namespace.clone(), kind, ports: ports(rng), endpoints: Vec::new() };
            (key("Service", name), DnsObject::Service(service))
        }
        4..=7 => {
            let name = pick(rng, &["e1", "e2", "e3", "e4"]);
            let ports = ports(rng);
            let endpoints = (0..rng.random_range(0..4))
                .map(|_| {
                    let ip = ip(rng, 244);
                    let label = match rng.random_range(0..3) {
                        0 => "h1".into(),
                        1 => "h2".into(),
                        _ => names::dashed_ip(ip).into(),
                    };
                    Endpoint { ip, label, ports: ports.clone() }
                })
                .collect();
            let slice = Slice { namespace: namespace.clone(), service: pick(rng, &SERVICES).into(), endpoints };
            (key("EndpointSlice", name), DnsObject::EndpointSlice(slice))
        }
        _ => {
            let ips = (0..rng.random_range(0..3)).map(|_| ip(rng, 245)).collect();
            (key("Pod", pick(rng, &["p1", "p2", "p3"])), DnsObject::Pod { namespace: namespace.clone(), ips })
        }
    }
}

#[test]
fn changes_applied_one_by_one_give_the_catalog_of_a_rebuild() {
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let pod_records = if seed % 2 == 0 { PodRecords::Verified } else { PodRecords::Insecure };
        let config = CatalogConfig::new("cluster.local", pod_records).unwrap();
        let mut writer = CatalogWriter::new(config.clone());
        let mut objects = BTreeMap::new();
        // Copies handed out along the way, with what they held: later changes must not show in
        // them (each shard is copied before its first write).
        let mut copies = Vec::new();
        for step in 0..300 {
            let (key, object) = random_object(&mut rng);
            if rng.random_bool(0.3) {
                objects.remove(&key);
                writer.apply(key, None);
            } else {
                objects.insert(key.clone(), object.clone());
                writer.apply(key, Some(Arc::new(Some(object))));
            }
            let expected = rebuild(&objects, pod_records);
            assert_eq!(dump(writer.catalog()), expected, "seed {seed}, step {step}");
            if rng.random_bool(0.1) {
                copies.push((writer.catalog().clone(), expected));
            }
        }
        for (copy, expected) in &copies {
            assert_eq!(&dump(copy), expected, "seed {seed}: a copy changed after it was handed out");
        }
        // A new list gives the same catalog from scratch.
        let listed = Catalog::from_objects(objects.values(), config, writer.catalog().serial());
        assert_eq!(&listed, writer.catalog(), "seed {seed}");
    }
}

#[test]
fn an_object_dns_does_not_serve_counts_as_absent() {
    let mut writer = CatalogWriter::new(CatalogConfig::default());
    let service = |kind| Service { name: "s".into(), namespace: "a".into(), kind, ports: Arc::new([]), endpoints: Vec::new() };
    let key: ObjectKey = ("Service".into(), "a".into(), "s".into());
    writer.apply(key.clone(), Some(Arc::new(Some(DnsObject::Service(service(ServiceKind::Headless))))));
    assert!(writer.catalog().service("a", "s").is_some());
    // The same Service changed into an ExternalName that is an IP: no longer served (DNS-6).
    writer.apply(key, Some(Arc::new(None)));
    assert!(writer.catalog().service("a", "s").is_none());
    assert!(!writer.catalog().namespace_exists("a"), "the namespace existed only through that service");
    assert_eq!(writer.catalog().counts(), (0, 0));
}
