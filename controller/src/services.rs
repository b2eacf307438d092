//! Services in the API server: ClusterIP allocation (the registry's part of a create), and the
//! objects every cluster has from the start (`default/kubernetes` and its endpoints).

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_core::{defaults, ipam, object};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// ClusterIPs taken by stored Services (headless and ExternalName ones take none).
pub fn used_cluster_ips(shared: &Shared) -> HashSet<Ipv4Addr> {
    shared
        .store
        .list_shared("Service", None)
        .0
        .iter()
        .flat_map(|s| {
            s["spec"]["clusterIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&s["spec"]["clusterIP"]))
                .filter_map(|ip| ip.as_str()?.parse().ok())
                .collect::<Vec<Ipv4Addr>>()
        })
        .collect()
}

/// The ClusterIPs in use while one request is admitted: those of the stored Services, read once
/// (when the first Service of the request needs an address: reading them for every Service made
/// an apply of thousands of Services take minutes), and those handed out to earlier Services of
/// the same request, so that one apply never hands out an address twice.
#[derive(Default)]
pub struct ClusterIpsInUse(Option<HashSet<Ipv4Addr>>);

impl ClusterIpsInUse {
    fn get(&mut self, shared: &Shared) -> &mut HashSet<Ipv4Addr> {
        self.0.get_or_insert_with(|| used_cluster_ips(shared))
    }
}

fn invalid(svc: &Value, cause: String) -> String {
    format!("The Service {:?} is invalid: {cause}", object::name(svc))
}

/// The ClusterIP the user asked for: `clusterIPs[0]`, else `clusterIP` (empty: none).
fn requested_cluster_ip(spec: &Value) -> &str {
    spec["clusterIPs"][0].as_str().or(spec["clusterIP"].as_str()).unwrap_or_default()
}

/// Fills what the registry fills on a Service (SVC-4, SVC-6, SVC-7): on create a ClusterIP (the
/// requested one, checked, or a free one) with `clusterIPs`, `ipFamilies` and `ipFamilyPolicy`;
/// on update it refuses a changed ClusterIP. `in_use` gets the address handed out. Errors are the
/// API server's messages; nothing is written here.
pub fn assign_cluster_ip(shared: &Shared, svc: &mut Value, existing: Option<&Value>, in_use: &mut ClusterIpsInUse) -> Result<(), String> {
    let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
    let requested = requested_cluster_ip(&svc["spec"]).to_string();
    if let Some(live) = existing {
        let current = requested_cluster_ip(&live["spec"]);
        if !requested.is_empty() && !current.is_empty() && requested != current {
            return Err(invalid(svc, format!("spec.clusterIPs[0]: Invalid value: []string{{{requested:?}}}: may not change once set")));
        }
        return Ok(());
    }
    if ty == "ExternalName" {
        if let Some(spec) = svc["spec"].as_object_mut() {
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(k);
            }
        }
        return Ok(());
    }
    let spec = &mut svc["spec"];
    let has_selector = spec["selector"].as_object().is_some_and(|m| !m.is_empty());
    if requested == "None" {
        spec["clusterIP"] = json!("None");
        spec["clusterIPs"] = json!(["None"]);
        // A headless Service without selector is "dual-stack" even on a single-stack cluster (SVC-4).
        if !has_selector {
            set_default(spec, "ipFamilyPolicy", json!("RequireDualStack"));
            set_default(spec, "ipFamilies", json!(["IPv4", "IPv6"]));
        }
    } else {
        let cidr: ipam::Ipv4Cidr = shared.cluster.service_cidr.parse().map_err(|e| format!("service CIDR of the cluster: {e}"))?;
        let used = in_use.get(shared);
        let ip = if requested.is_empty() {
            ipam::allocate_service_ip(cidr, used, rand::random()).ok_or_else(|| {
                invalid(svc, format!("spec.clusterIPs: Internal error: failed to allocate a serviceIP: range is full ({cidr})"))
            })?
        } else {
            // The format was checked by validation (ERR-8).
            let ip: Ipv4Addr = requested.parse().map_err(|_| invalid(svc, format!("spec.clusterIPs[0]: Invalid value: {requested:?}: must be a valid IP address")))?;
            ipam::check_requested_service_ip(cidr, ip, used).map_err(|e| invalid(svc, e))?;
            ip
        };
        used.insert(ip);
        let spec = &mut svc["spec"];
        spec["clusterIP"] = json!(ip.to_string());
        spec["clusterIPs"] = json!([ip.to_string()]);
    }
    let spec = &mut svc["spec"];
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    Ok(())
}

fn set_default(v: &mut Value, key: &str, value: Value) {
    if v.get(key).is_none_or(Value::is_null) {
        v[key] = value;
    }
}

/// The API server's address on the fabric, where the `kubernetes` Service's endpoint points.
pub fn api_server_ip(shared: &Shared) -> Option<Ipv4Addr> {
    let fabric: ipam::Ipv4Cidr = shared.cluster.fabric_cidr.parse().ok()?;
    Some(ipam::control_plane_ip(fabric))
}

/// The port the API server listens on behind the `kubernetes` Service.
pub const API_SERVER_PORT: u16 = 6443;

/// `default/kubernetes` (B-4): ClusterIP the first address of the service range, port `https`
/// 443 → 6443, no selector, and its Endpoints and EndpointSlice listing the API server's fabric
/// address. Created when missing; kept as they are otherwise.
pub fn ensure_kubernetes_service(shared: &Shared) {
    let Ok(cidr) = shared.cluster.service_cidr.parse::<ipam::Ipv4Cidr>() else { return };
    let Some(ip) = cidr.nth(1) else { return };
    let Some(api) = api_server_ip(shared) else { return };
    let mut svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": API_SERVER_PORT}],
            "sessionAffinity": "None", "type": "ClusterIP"}});
    defaults::apply_defaults(&mut svc);
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": api.to_string()}], "ports": [{"name": "https", "port": API_SERVER_PORT, "protocol": "TCP"}]}]});
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [api.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": API_SERVER_PORT, "protocol": "TCP"}]});
    for v in [svc, endpoints, slice] {
        let Ok(key) = ObjectKey::of(&v) else { continue };
        if shared.store.get(&key).is_none() {
            if let Err(e) = shared.store.create(v) {
                tracing::warn!(error = %e, object = %key.name, kind = %key.kind, "creating built-in object");
            }
        }
    }
}
