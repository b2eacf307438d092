//! The answer to one question, as a pure function of the [`Catalog`]: the Kubernetes DNS
//! specification as CoreDNS's `kubernetes` plugin serves it with the kubeadm Corefile
//! (DNS-1 … DNS-16). No I/O and no randomness; the server shuffles address records
//! afterwards with [`shuffle_addresses`] (the Corefile's `loadbalance`).
//!
//! Names in the cluster zone (`<svc>.<ns>.svc.<zone>`, `<ep>.<svc>.<ns>.svc.<zone>`,
//! `_<port>._<proto>.<svc>.<ns>.svc.<zone>`, `<dashed-ip>.<ns>.pod.<zone>`, `dns-version.<zone>`,
//! `ns.dns.<zone>` and the apex) are answered authoritatively; reverse names of known ClusterIPs
//! and endpoint IPs too. Anything else is NXDOMAIN without the AA flag: there is no upstream in
//! emu (see the crate documentation).

use crate::catalog::{Catalog, Endpoint, Port, Service, ServiceKind};
use crate::names;
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;
use std::net::IpAddr;

/// The schema version of the Kubernetes DNS specification served (DNS-8).
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` TXT record (DNS-8, DNS-16).
pub const DNS_VERSION_TTL: u32 = 28800;
/// SOA timers as CoreDNS writes them (DNS-14): refresh, retry, expire.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;
/// The SOA record's own TTL is the plugin TTL, capped at this (DNS-14).
const SOA_MAX_TTL: u32 = 300;
/// How many ExternalName CNAMEs into the cluster zone are followed for one answer: enough for
/// any sane chain, and a loop of ExternalNames pointing at each other ends.
const MAX_CNAME_CHAIN: usize = 8;

/// A complete answer: header bits and the three record sections (the question is the client's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub rcode: ResponseCode,
    /// AA: set for every answer from a zone we serve (DNS-14), also negative ones.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// Whether the name is in a zone this server is responsible for (the cluster zone, or a
    /// reverse name it knows), i.e. whether CoreDNS's `kubernetes` plugin would have answered.
    pub in_cluster_zone: bool,
}

impl Response {
    fn bare(rcode: ResponseCode, in_cluster_zone: bool) -> Self {
        Self { rcode, authoritative: false, answers: Vec::new(), authorities: Vec::new(), additionals: Vec::new(), in_cluster_zone }
    }

    /// A name outside every zone we serve: NXDOMAIN at once, not authoritative. CoreDNS would
    /// forward it upstream, but emu has no upstream, and forwarding from a DNS pod could loop.
    pub fn outside() -> Self {
        Self::bare(ResponseCode::NXDomain, false)
    }

    /// Before the first sync with the controller (DNS-15).
    fn not_synced() -> Self {
        Self::bare(ResponseCode::ServFail, true)
    }

    fn refused(in_cluster_zone: bool) -> Self {
        Self::bare(ResponseCode::Refused, in_cluster_zone)
    }
}

/// What a lookup found for a name in one of our zones, before the SOA of negative answers is added.
#[derive(Debug)]
enum Found {
    /// The name does not exist (DNS-11).
    NxDomain,
    /// The name exists; these are its records of the asked type, none meaning NODATA (DNS-10).
    Records { answers: Vec<Record>, additionals: Vec<Record> },
}

impl Found {
    fn no_data() -> Self {
        Found::Records { answers: Vec::new(), additionals: Vec::new() }
    }

    fn answers(answers: Vec<Record>) -> Self {
        Found::Records { answers, additionals: Vec::new() }
    }

    fn exists_if(exists: bool) -> Self {
        if exists {
            Found::no_data()
        } else {
            Found::NxDomain
        }
    }
}

/// The answer to `query` from `catalog`.
pub fn answer(catalog: &Catalog, query: &Query) -> Response {
    let name = query.name();
    let zone = &catalog.config().zone;
    if let Some(labels) = names::labels_below(name, zone) {
        return zone_response(catalog, query, zone, |lookup| lookup.cluster_name(name, &labels));
    }
    if let Some(ip) = names::parse_reverse_name(name) {
        // Unknown addresses "fall through" in CoreDNS (to the upstream we do not have).
        if catalog.is_synced() && catalog.reverse(ip).is_empty() {
            return Response::outside();
        }
        let [v4_zone, v6_zone] = names::reverse_zones();
        let reverse_zone = if ip.is_ipv4() { v4_zone } else { v6_zone };
        return zone_response(catalog, query, &reverse_zone, |lookup| lookup.reverse_name(name, ip));
    }
    Response::outside()
}

/// The checks every question in a zone of ours goes through, then the lookup, then the SOA.
fn zone_response(catalog: &Catalog, query: &Query, zone: &Name, lookup: impl FnOnce(&Lookup) -> Found) -> Response {
    if !catalog.is_synced() {
        return Response::not_synced();
    }
    // Records here are Internet-class only; zone transfers are not offered (CoreDNS's
    // kubeadm Corefile has no `transfer` block).
    if query.query_class() != DNSClass::IN || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
        return Response::refused(true);
    }
    let found = lookup(&Lookup { catalog, qtype: query.query_type(), depth: 0 });
    let mut response = Response::bare(ResponseCode::NoError, true);
    response.authoritative = true;
    match found {
        Found::NxDomain => {
            response.rcode = ResponseCode::NXDomain;
            response.authorities.push(soa_record(catalog, zone));
        }
        Found::Records { answers, .. } if answers.is_empty() => {
            response.authorities.push(soa_record(catalog, zone));
        }
        Found::Records { answers, additionals } => {
            response.answers = answers;
            response.additionals = additionals;
        }
    }
    response
}

/// One lookup: the catalog, the asked type, and how deep in an ExternalName chain we are.
struct Lookup<'a> {
    catalog: &'a Catalog,
    qtype: RecordType,
    depth: usize,
}

impl Lookup<'_> {
    fn ttl(&self) -> u32 {
        self.catalog.config().ttl
    }

    fn zone(&self) -> &Name {
        &self.catalog.config().zone
    }

    /// `labels` are the query's labels below the cluster zone, innermost first.
    fn cluster_name(&self, qname: &Name, labels: &[String]) -> Found {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        match labels.as_slice() {
            [] => self.apex(qname),
            ["dns-version"] => self.dns_version(qname),
            ["ns", "dns"] => Found::answers(self.addresses(qname, self.catalog.dns_service_ips().iter().copied())),
            [rest @ .., "svc"] => self.svc_name(qname, rest),
            [rest @ .., "pod"] => self.pod_name(qname, rest),
            // `foo.cluster.local` and everything else under the zone (DNS-11).
            _ => Found::NxDomain,
        }
    }

    /// The zone apex answers SOA and NS; `ns.dns.<zone>` is the name server (CoreDNS's naming).
    fn apex(&self, qname: &Name) -> Found {
        match self.qtype {
            RecordType::SOA => Found::answers(vec![soa_record(self.catalog, qname)]),
            RecordType::NS => {
                let server = names::join("ns.dns", self.zone()).expect("ns.dns under a valid zone is valid");
                let ns = Record::from_rdata(qname.clone(), self.ttl(), RData::NS(NS(server.clone())));
                let glue = self.catalog.dns_service_ips().iter().map(|ip| address_record(&server, self.ttl(), *ip)).collect();
                Found::Records { answers: vec![ns], additionals: glue }
            }
            _ => Found::no_data(),
        }
    }

    /// DNS-8: `dns-version.<zone>. 28800 IN TXT "1.1.0"`.
    fn dns_version(&self, qname: &Name) -> Found {
        if self.qtype != RecordType::TXT {
            return Found::no_data();
        }
        let txt = RData::TXT(TXT::new(vec![DNS_SCHEMA_VERSION.to_string()]));
        Found::answers(vec![Record::from_rdata(qname.clone(), DNS_VERSION_TTL, txt)])
    }

    /// Names ending in `svc.<zone>`; `rest` is what comes before `svc`.
    fn svc_name(&self, qname: &Name, rest: &[&str]) -> Found {
        match rest {
            // DNS-12: the intermediate names exist (NODATA) when their namespace does.
            [] => Found::no_data(),
            [namespace] => Found::exists_if(self.catalog.namespace_exists(namespace)),
            [service, namespace] => match self.catalog.service(namespace, service) {
                Some(service) => self.service(qname, service),
                None => Found::NxDomain,
            },
            [endpoint, service, namespace] => match self.catalog.service(namespace, service) {
                Some(service) => self.endpoint(qname, service, endpoint),
                None => Found::NxDomain,
            },
            [port, protocol, service, namespace] => {
                let (Some(port), Some(protocol)) = (srv_label(port), srv_label(protocol)) else { return Found::NxDomain };
                match self.catalog.service(namespace, service) {
                    Some(service) => self.named_port(qname, service, port, protocol),
                    None => Found::NxDomain,
                }
            }
            // Too many labels (DNS-11).
            _ => Found::NxDomain,
        }
    }

    /// `<svc>.<ns>.svc.<zone>` (DNS-1, DNS-2, DNS-4 bare name, DNS-6, DNS-13).
    fn service(&self, qname: &Name, service: &Service) -> Found {
        match &service.kind {
            ServiceKind::ExternalName(target) => self.external_name(qname, target),
            ServiceKind::ClusterIp(ips) => match self.qtype {
                RecordType::SRV => {
                    // CoreDNS extension: every port, named or not, each pointing at the service.
                    let target = self.service_fqdn(service);
                    let srv = service.ports.iter().map(|p| (target.clone(), p.port, ips.clone()));
                    self.srv_records(qname, srv.collect())
                }
                _ => Found::answers(self.addresses(qname, ips.iter().copied())),
            },
            ServiceKind::Headless if service.endpoints.is_empty() => Found::NxDomain,
            ServiceKind::Headless => match self.qtype {
                RecordType::SRV => {
                    let srv = service.endpoints.iter().flat_map(|e| e.ports.iter().map(move |p| (e, p)));
                    self.endpoint_srv(qname, service, srv.collect())
                }
                _ => Found::answers(self.addresses(qname, service.endpoints.iter().map(|e| e.ip))),
            },
        }
    }

    /// `<ep>.<svc>.<ns>.svc.<zone>`: a ready endpoint by hostname or dashed IP, under headless
    /// and normal services alike (DNS-3); never under an ExternalName (DNS-6).
    fn endpoint(&self, qname: &Name, service: &Service, label: &str) -> Found {
        if matches!(service.kind, ServiceKind::ExternalName(_)) {
            return Found::NxDomain;
        }
        let matching: Vec<&Endpoint> = service.endpoints.iter().filter(|e| &*e.label == label).collect();
        if matching.is_empty() {
            return Found::NxDomain;
        }
        match self.qtype {
            RecordType::SRV => {
                let srv = matching.iter().flat_map(|e| e.ports.iter().map(move |p| (*e, p)));
                self.endpoint_srv(qname, service, srv.collect())
            }
            _ => Found::answers(self.addresses(qname, matching.iter().map(|e| e.ip))),
        }
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc.<zone>` (DNS-4): only named ports; a wrong name or
    /// protocol is NXDOMAIN. Address queries get the addresses the SRV targets have.
    fn named_port(&self, qname: &Name, service: &Service, port: &str, protocol: &str) -> Found {
        let matches = |p: &Port| p.name == port && p.protocol == protocol;
        match &service.kind {
            ServiceKind::ExternalName(_) => Found::NxDomain,
            ServiceKind::ClusterIp(ips) => {
                let ports: Vec<&Port> = service.ports.iter().filter(|p| matches(p)).collect();
                if ports.is_empty() {
                    return Found::NxDomain;
                }
                match self.qtype {
                    RecordType::SRV => {
                        let target = self.service_fqdn(service);
                        self.srv_records(qname, ports.iter().map(|p| (target.clone(), p.port, ips.clone())).collect())
                    }
                    _ => Found::answers(self.addresses(qname, ips.iter().copied())),
                }
            }
            ServiceKind::Headless => {
                let pairs: Vec<(&Endpoint, &Port)> =
                    service.endpoints.iter().flat_map(|e| e.ports.iter().filter(|p| matches(p)).map(move |p| (e, p))).collect();
                if pairs.is_empty() {
                    return Found::NxDomain;
                }
                match self.qtype {
                    RecordType::SRV => self.endpoint_srv(qname, service, pairs),
                    _ => Found::answers(self.addresses(qname, pairs.iter().map(|(e, _)| e.ip))),
                }
            }
        }
    }

    /// DNS-6: a CNAME to `externalName`. CoreDNS resolves the target upstream for address
    /// queries; emu has no upstream, but a target inside the cluster zone is ours to follow.
    fn external_name(&self, qname: &Name, target: &Name) -> Found {
        match self.qtype {
            RecordType::SRV => Found::NxDomain,
            RecordType::A | RecordType::AAAA | RecordType::CNAME => {
                let mut answers = vec![Record::from_rdata(qname.clone(), self.ttl(), RData::CNAME(CNAME(target.clone())))];
                if self.qtype != RecordType::CNAME {
                    answers.extend(self.follow_cname(target));
                }
                Found::answers(answers)
            }
            _ => Found::no_data(),
        }
    }

    fn follow_cname(&self, target: &Name) -> Vec<Record> {
        let Some(labels) = names::labels_below(target, self.zone()) else { return Vec::new() };
        if self.depth >= MAX_CNAME_CHAIN {
            return Vec::new();
        }
        let next = Lookup { depth: self.depth + 1, ..*self };
        match next.cluster_name(target, &labels) {
            Found::Records { answers, .. } => answers,
            Found::NxDomain => Vec::new(),
        }
    }

    /// `<dashed-ip>.<ns>.pod.<zone>` (DNS-7); `rest` is what comes before `pod`.
    fn pod_name(&self, qname: &Name, rest: &[&str]) -> Found {
        use crate::catalog::PodRecords;
        match rest {
            [] => Found::no_data(),
            [namespace] => Found::exists_if(self.catalog.namespace_exists(namespace)),
            [dashed, namespace] => {
                let Some(ip) = names::parse_dashed_ip(dashed) else { return Found::NxDomain };
                let exists = self.catalog.namespace_exists(namespace)
                    && match self.catalog.config().pod_records {
                        PodRecords::Disabled => false,
                        PodRecords::Insecure => true,
                        PodRecords::Verified => self.catalog.pod_exists(namespace, ip),
                    };
                if !exists {
                    return Found::NxDomain;
                }
                Found::answers(self.addresses(qname, [ip].into_iter()))
            }
            _ => Found::NxDomain,
        }
    }

    /// DNS-5: PTR records for an IP we know (the caller checked that it is known).
    fn reverse_name(&self, qname: &Name, ip: IpAddr) -> Found {
        if self.qtype != RecordType::PTR {
            return Found::no_data();
        }
        let targets = self.catalog.reverse(ip).iter().filter_map(|entry| {
            let prefix = match &entry.endpoint {
                Some(endpoint) => format!("{endpoint}.{}.{}.svc", entry.service, entry.namespace),
                None => format!("{}.{}.svc", entry.service, entry.namespace),
            };
            names::join(&prefix, self.zone())
        });
        Found::answers(targets.map(|target| Record::from_rdata(qname.clone(), self.ttl(), RData::PTR(PTR(target)))).collect())
    }

    /// A/AAAA records for the addresses of the asked family (an A query never gets AAAA). Any
    /// other type gets nothing: the name exists, so that is NODATA (DNS-10).
    fn addresses(&self, owner: &Name, ips: impl Iterator<Item = IpAddr>) -> Vec<Record> {
        let wanted = |ip: &IpAddr| match self.qtype {
            RecordType::A => ip.is_ipv4(),
            RecordType::AAAA => ip.is_ipv6(),
            _ => false,
        };
        let mut records = Vec::new();
        for ip in ips.filter(wanted) {
            push_unique(&mut records, address_record(owner, self.ttl(), ip));
        }
        records
    }

    /// SRV records for endpoint targets (`<label>.<svc>.<ns>.svc.<zone>`, port = endpoint port).
    fn endpoint_srv(&self, qname: &Name, service: &Service, pairs: Vec<(&Endpoint, &Port)>) -> Found {
        let targets = pairs.into_iter().filter_map(|(endpoint, port)| {
            let target = names::join(&format!("{}.{}.{}.svc", endpoint.label, service.name, service.namespace), self.zone())?;
            Some((target, port.port, vec![endpoint.ip]))
        });
        self.srv_records(qname, targets.collect())
    }

    /// DNS-4: one SRV per (target, port), priority 0, weight floor(100/N) over the N records
    /// CoreDNS generates (before it drops duplicates); the targets' addresses go in the
    /// additional section.
    fn srv_records(&self, qname: &Name, targets: Vec<(Name, u16, Vec<IpAddr>)>) -> Found {
        let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(0);
        let mut answers: Vec<Record> = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        for (target, port, ips) in targets {
            let srv = Record::from_rdata(qname.clone(), self.ttl(), RData::SRV(SRV::new(0, weight, port, target.clone())));
            push_unique(&mut answers, srv);
            for ip in ips {
                push_unique(&mut additionals, address_record(&target, self.ttl(), ip));
            }
        }
        Found::Records { answers, additionals }
    }

    fn service_fqdn(&self, service: &Service) -> Name {
        // Service and namespace names are DNS-1035/1123 labels, so this cannot fail for objects
        // the controller admitted; the zone is a safe fallback rather than a panic.
        names::join(&format!("{}.{}.svc", service.name, service.namespace), self.zone()).unwrap_or_else(|| self.zone().clone())
    }
}

/// `_http` → `http`; `None` unless the label starts with `_` and has more after it.
fn srv_label(label: &str) -> Option<&str> {
    label.strip_prefix('_').filter(|rest| !rest.is_empty())
}

fn address_record(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

fn push_unique(records: &mut Vec<Record>, record: Record) {
    if !records.contains(&record) {
        records.push(record);
    }
}

/// DNS-14: `<zone> <min(ttl,300)> IN SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`.
/// `owner` is the zone for negative answers, the question's name for an SOA query at the apex.
fn soa_record(catalog: &Catalog, owner: &Name) -> Record {
    let config = catalog.config();
    let zone = owner.to_lowercase();
    let mname = names::join("ns.dns", &zone).expect("ns.dns under a valid zone is valid");
    let rname = names::join("hostmaster", &zone).expect("hostmaster under a valid zone is valid");
    let minimum = config.ttl;
    let soa = SOA::new(mname, rname, catalog.serial(), SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, minimum);
    Record::from_rdata(owner.clone(), config.ttl.min(SOA_MAX_TTL), RData::SOA(soa))
}

/// The Corefile's `loadbalance`: A and AAAA records change order in every response (answer and
/// additional sections); CNAMEs and all other records keep their places, so a CNAME chain
/// still reads in order.
pub fn shuffle_addresses(response: &mut Response, rng: &mut impl Rng) {
    for section in [&mut response.answers, &mut response.additionals] {
        let positions: Vec<usize> = (0..section.len()).filter(|&i| is_address(&section[i])).collect();
        if positions.len() < 2 {
            continue;
        }
        let mut addresses: Vec<Record> = positions.iter().map(|&i| section[i].clone()).collect();
        addresses.shuffle(rng);
        for (position, record) in positions.into_iter().zip(addresses) {
            section[position] = record;
        }
    }
}

fn is_address(record: &Record) -> bool {
    matches!(record.record_type(), RecordType::A | RecordType::AAAA)
}

#[cfg(test)]
mod tests;
