//! Services in the API server: ClusterIP and node port allocation (the registry's part of a
//! create or update), and the objects every cluster has from the start (`default/kubernetes` and
//! its endpoints).

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_api::defaults;
use emu_api::typed::{self, Service};
use emu_api::validation::requested_cluster_ip;
use emu_logic::nodeports::{self, NodePortError, NodePortsHeld};
use emu_logic::{ipam, loadbalancer};
use serde_json::json;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use tonic::Status;

/// The stored Services, decoded.
pub fn stored_services(shared: &Shared) -> Vec<Service> {
    typed::decode_all(shared.store.list_shared("Service", None).0.iter().map(|s| &**s))
}

/// ClusterIPs taken by stored Services (headless and ExternalName ones take none).
pub fn used_cluster_ips(shared: &Shared) -> HashSet<Ipv4Addr> {
    stored_services(shared)
        .iter()
        .filter_map(|s| s.spec.as_ref())
        .flat_map(|spec| {
            spec.cluster_ips.iter().flatten().chain(&spec.cluster_ip).filter_map(|ip| ip.parse().ok()).collect::<Vec<Ipv4Addr>>()
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

fn name_of(svc: &Service) -> &str {
    svc.metadata.name.as_deref().unwrap_or_default()
}

fn invalid(svc: &Service, cause: String) -> String {
    format!("The Service {:?} is invalid: {cause}", name_of(svc))
}

/// Fills what the registry fills on a Service (SVC-4, SVC-6, SVC-7): on create a ClusterIP (the
/// requested one, checked, or a free one) with `clusterIPs`, `ipFamilies` and `ipFamilyPolicy`;
/// on update it refuses a changed ClusterIP. `in_use` gets the address handed out. Errors are the
/// API server's messages; nothing is written here.
pub fn assign_cluster_ip(
    shared: &Shared,
    svc: &mut Service,
    existing: Option<&Service>,
    in_use: &mut ClusterIpsInUse,
) -> Result<(), String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    let requested = requested_cluster_ip(&spec).to_string();
    if let Some(live) = existing {
        let current = live.spec.as_ref().map(requested_cluster_ip).unwrap_or_default();
        if !requested.is_empty() && !current.is_empty() && requested != current {
            return Err(invalid(svc, format!("spec.clusterIPs[0]: Invalid value: []string{{{requested:?}}}: may not change once set")));
        }
        return Ok(());
    }
    if ty == "ExternalName" {
        let spec = svc.spec.get_or_insert_default();
        (spec.cluster_ip, spec.cluster_ips, spec.ip_families, spec.ip_family_policy) = (None, None, None, None);
        return Ok(());
    }
    let has_selector = spec.selector.as_ref().is_some_and(|m| !m.is_empty());
    let ip = if requested == "None" {
        "None".to_string()
    } else {
        let cidr: ipam::Ipv4Cidr = shared.cluster.service_cidr.parse().map_err(|e| format!("service CIDR of the cluster: {e}"))?;
        let used = in_use.get(shared);
        let ip = if requested.is_empty() {
            ipam::allocate_service_ip(cidr, used, rand::random()).ok_or_else(|| {
                invalid(svc, format!("spec.clusterIPs: Internal error: failed to allocate a serviceIP: range is full ({cidr})"))
            })?
        } else {
            // The format was checked by validation (ERR-8).
            let ip: Ipv4Addr = requested
                .parse()
                .map_err(|_| invalid(svc, format!("spec.clusterIPs[0]: Invalid value: {requested:?}: must be a valid IP address")))?;
            ipam::check_requested_service_ip(cidr, ip, used).map_err(|e| invalid(svc, e))?;
            ip
        };
        used.insert(ip);
        ip.to_string()
    };
    let spec = svc.spec.get_or_insert_default();
    spec.cluster_ip = Some(ip.clone());
    spec.cluster_ips = Some(vec![ip.clone()]);
    // A headless Service without selector is "dual-stack" even on a single-stack cluster (SVC-4).
    if ip == "None" && !has_selector {
        spec.ip_family_policy.get_or_insert_with(|| "RequireDualStack".into());
        spec.ip_families.get_or_insert_with(|| vec!["IPv4".into(), "IPv6".into()]);
    }
    spec.ip_family_policy.get_or_insert_with(|| "SingleStack".into());
    spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
    Ok(())
}

/// The node ports in use while one request is admitted, as [`ClusterIpsInUse`]: those of the
/// stored Services, read once (when the first Service of the request needs them), then kept up
/// to date with what the request's Services take and release, so that one apply never hands
/// out a port twice.
#[derive(Default)]
pub struct NodePortsInUse(Option<NodePortsHeld>);

impl NodePortsInUse {
    fn get(&mut self, shared: &Shared) -> &mut NodePortsHeld {
        self.0.get_or_insert_with(|| NodePortsHeld::from_services(&stored_services(shared)))
    }
}

/// Checks `spec.loadBalancerIP` against the cluster's cloud: inside its pool and not held by
/// another Service (requested or assigned), as a cloud provider would refuse it; nothing is
/// written here.
pub fn check_load_balancer_ip(shared: &Shared, svc: &Service) -> Result<(), Status> {
    let Ok(pool) = shared.cluster.load_balancer_cidr.parse::<ipam::Ipv4Cidr>() else { return Ok(()) };
    if loadbalancer::requested_ip(svc).is_none() {
        return Ok(());
    }
    let me = typed::key(&svc.metadata);
    let services = stored_services(shared);
    let held_by = |ip: Ipv4Addr| {
        services
            .iter()
            .filter(|o| typed::key(&o.metadata) != me)
            .find(|o| {
                loadbalancer::ingress_ips(o).contains(&ip)
                    || loadbalancer::requested_ip(o).and_then(|r| r.parse::<Ipv4Addr>().ok()) == Some(ip)
            })
            .map(|o| format!("{}/{}", typed::key(&o.metadata).0, typed::key(&o.metadata).1))
    };
    loadbalancer::check_requested_ip(svc, pool, held_by)
        .map_err(|cause| Status::invalid_argument(format!("The Service {:?} is invalid: {cause}", name_of(svc))))
}

/// Fills the node ports of a Service being created (`existing` None) or updated (`svc` is then
/// the merged, defaulted and validated object; see [`prepare_update`]): the registry's step of
/// SVC-9, SVC-10 and SVC-15, see [`nodeports::allocate_node_ports`]. `in_use` records what the
/// Service holds afterwards. Errors are the API server's (a 422 naming the field, or a 500);
/// nothing is written here.
pub fn assign_node_ports(
    shared: &Shared,
    svc: &mut Service,
    existing: Option<&Service>,
    in_use: &mut NodePortsInUse,
) -> Result<(), Status> {
    let needs = nodeports::needs_node_ports(svc) || nodeports::needs_health_check(svc);
    if !needs && existing.is_none_or(|live| nodeports::held_ports(live).is_empty()) {
        return Ok(());
    }
    let held = in_use.get(shared);
    let holder = nodeports::holder_of(svc);
    let name = name_of(svc).to_string();
    let ports = nodeports::allocate_node_ports(svc, existing, nodeports::NODE_PORT_RANGE, held, rand::random()).map_err(|e| match e {
        NodePortError::Invalid(cause) => Status::invalid_argument(format!("The Service {name:?} is invalid: {cause}")),
        NodePortError::Internal(_) => Status::internal(e.to_string()),
    })?;
    held.set_held(&holder, &ports);
    Ok(())
}

/// What the API server does to an updated Service before validating it (SVC-11): fields its new
/// type no longer uses are cleared where the user left them as they were, and the node ports
/// the live Service holds are put back on ports that come without one (the merge replaced the
/// list of ports; kubectl's strategic merge would have kept them).
pub fn prepare_update(live: &Service, svc: &mut Service) {
    nodeports::drop_type_dependent_fields(live, svc);
    nodeports::restore_allocated(live, svc);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiService;
    use crate::store::Store;
    use emu_logic::cluster::ClusterConfig;
    use emu_proto::{api_server::Api, ApplyRequest, Object, ReplaceRequest, UpdateStatusRequest};
    use serde_json::Value;
    use tonic::Request;

    struct Api1 {
        api: ApiService,
        _dir: tempfile::TempDir,
    }

    fn api() -> Api1 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let config = ClusterConfig {
            name: "t".into(),
            nodes: vec![],
            fabric_cidr: "172.18.0.0/16".into(),
            pod_cidr: "10.244.0.0/16".into(),
            node_prefix: 24,
            service_cidr: "10.96.0.0/12".into(),
            outside_cidr: String::new(),
            load_balancer_cidr: "203.0.113.0/24".into(),
            node_grace_seconds: emu_logic::cluster::DEFAULT_NODE_GRACE_SECONDS,
            eviction_seconds: None,
            host: String::new(),
            advertise_address: String::new(),
            control_plane: String::new(),
            mtu: 0,
        };
        let shared = Shared::new(store, config);
        shared.store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})).unwrap();
        Api1 { api: ApiService { shared }, _dir: dir }
    }

    impl Api1 {
        async fn send(&self, docs: &[Value], create_only: bool) -> Result<Vec<String>, Status> {
            let objects = docs.iter().map(|d| Object { json: d.to_string() }).collect();
            let r = self.api.apply(Request::new(ApplyRequest { objects, create_only, dry_run: false })).await?;
            Ok(r.into_inner().results.into_iter().map(|r| r.action).collect())
        }

        async fn apply(&self, docs: &[Value]) -> Result<Vec<String>, Status> {
            self.send(docs, false).await
        }

        /// `kubectl replace` (a PUT of each document).
        async fn replace(&self, docs: &[Value]) -> Result<Vec<String>, Status> {
            let objects = docs.iter().map(|d| Object { json: d.to_string() }).collect();
            let r = self.api.replace(Request::new(ReplaceRequest { objects })).await?;
            Ok(r.into_inner().results.into_iter().map(|r| r.action).collect())
        }

        fn svc(&self, name: &str) -> Value {
            let key = ObjectKey { kind: "Service".into(), namespace: "default".into(), name: name.into() };
            self.api.shared.store.get(&key).unwrap_or_else(|| panic!("no Service {name}"))
        }

        fn node_ports(&self, name: &str) -> Vec<i64> {
            self.svc(name)["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_i64().unwrap_or(0)).collect()
        }
    }

    /// The tutorial's Service (nginx-secure-app.yaml), as `type`.
    fn my_nginx(ty: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-nginx", "labels": {"run": "my-nginx"}},
            "spec": {"type": ty, "ports": [{"port": 8080, "targetPort": 80, "protocol": "TCP", "name": "http"},
                {"port": 443, "protocol": "TCP", "name": "https"}], "selector": {"run": "my-nginx"}}})
    }

    fn one_port(name: &str, ty: &str, node_port: Option<i64>) -> Value {
        let mut port = json!({"port": 80});
        if let Some(np) = node_port {
            port["nodePort"] = json!(np);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"type": ty, "selector": {"app": name}, "ports": [port]}})
    }

    fn error(r: Result<Vec<String>, Status>) -> (tonic::Code, String) {
        let e = r.unwrap_err();
        (e.code(), e.message().to_string())
    }

    #[tokio::test]
    async fn tutorial_node_ports_are_allocated_kept_and_released() {
        let a = api();
        assert_eq!(a.apply(&[my_nginx("NodePort")]).await.unwrap(), ["created"]);
        let ports = a.node_ports("my-nginx");
        assert!(ports[0] != ports[1] && ports.iter().all(|p| (30086..=32767).contains(p)), "{ports:?}");
        assert_eq!(a.svc("my-nginx")["spec"]["externalTrafficPolicy"], "Cluster");
        // The same manifest again: nothing changes.
        assert_eq!(a.apply(&[my_nginx("NodePort")]).await.unwrap(), ["unchanged"]);
        assert_eq!(a.node_ports("my-nginx"), ports);
        // NodePort → LoadBalancer keeps them.
        assert_eq!(a.apply(&[my_nginx("LoadBalancer")]).await.unwrap(), ["configured"]);
        assert_eq!(a.node_ports("my-nginx"), ports);
        assert_eq!(a.svc("my-nginx")["spec"]["allocateLoadBalancerNodePorts"], true);
        // → ClusterIP: released, and the policies only node ports use go too.
        a.apply(&[my_nginx("ClusterIP")]).await.unwrap();
        let spec = a.svc("my-nginx")["spec"].clone();
        assert_eq!(a.node_ports("my-nginx"), [0, 0]);
        assert!(spec.get("externalTrafficPolicy").is_none() && spec.get("allocateLoadBalancerNodePorts").is_none(), "{spec}");
        // Another Service may now take one of them.
        a.apply(&[one_port("other", "NodePort", Some(ports[0]))]).await.unwrap();
        // Back to NodePort: new ones.
        a.apply(&[my_nginx("NodePort")]).await.unwrap();
        let again = a.node_ports("my-nginx");
        assert!(again.iter().all(|p| (30000..=32767).contains(p) && *p != ports[0]), "{again:?}");
    }

    #[tokio::test]
    async fn an_edited_object_changes_type_with_its_node_ports_in() {
        let a = api();
        a.apply(&[my_nginx("NodePort")]).await.unwrap();
        // What `get -o yaml` shows, with only the type changed.
        let mut edited = a.svc("my-nginx");
        edited["spec"]["type"] = json!("ClusterIP");
        assert_eq!(a.apply(&[edited.clone()]).await.unwrap(), ["configured"]);
        assert_eq!(a.node_ports("my-nginx"), [0, 0]);
        // A node port set anew on a ClusterIP Service is refused (ERR-4).
        let before = a.svc("my-nginx");
        let mut bad = my_nginx("ClusterIP");
        bad["spec"]["ports"][1]["nodePort"] = json!(30443);
        let (code, msg) = error(a.apply(&[bad]).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert_eq!(
            msg,
            "The Service \"my-nginx\" is invalid: spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        );
        assert_eq!(a.svc("my-nginx"), before);
    }

    #[tokio::test]
    async fn user_chosen_ports_and_the_errors_err1_err2() {
        let a = api();
        a.apply(&[one_port("first", "NodePort", Some(30080))]).await.unwrap();
        assert_eq!(a.node_ports("first"), [30080], "a port the user chose is kept");
        let cases = [
            (one_port("grab", "NodePort", Some(30080)), "The Service \"grab\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
            (
                one_port("low", "NodePort", Some(80)),
                "The Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ),
            (one_port("plain", "ClusterIP", Some(30081)), "The Service \"plain\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
        ];
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}});
        let rv = a.api.shared.store.resource_version();
        for (bad, want) in &cases {
            for create_only in [false, true] {
                let (code, msg) = error(a.send(std::slice::from_ref(bad), create_only).await);
                assert_eq!((code, msg.as_str()), (tonic::Code::InvalidArgument, *want));
            }
            // With good documents around it: none of them is written.
            let (_, msg) = error(a.apply(&[cm.clone(), one_port("good", "NodePort", None), bad.clone()]).await);
            assert_eq!(msg, *want);
        }
        assert_eq!(a.api.shared.store.resource_version(), rv, "nothing was written");
        // An update asking for another Service's port changes nothing either, nor do the good
        // documents around it.
        a.apply(&[one_port("second", "NodePort", Some(30091))]).await.unwrap();
        let rv = a.api.shared.store.resource_version();
        let (_, msg) = error(
            a.apply(&[one_port("first", "NodePort", Some(30080)), my_nginx("NodePort"), one_port("second", "NodePort", Some(30080))]).await,
        );
        assert_eq!(
            msg,
            "The Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        assert_eq!(a.api.shared.store.resource_version(), rv, "nothing was written");
        assert_eq!((a.node_ports("first"), a.node_ports("second")), (vec![30080], vec![30091]));
        // Releasing a port and taking it in the same request works, in document order.
        a.apply(&[one_port("first", "ClusterIP", None), one_port("second", "NodePort", Some(30080))]).await.unwrap();
        assert_eq!((a.node_ports("first"), a.node_ports("second")), (vec![0], vec![30080]));
    }

    #[tokio::test]
    async fn one_request_never_gives_a_port_twice_and_create_allocates() {
        let a = api();
        let many: Vec<Value> = (0..40).map(|i| one_port(&format!("s{i}"), "NodePort", None)).collect();
        a.apply(&many).await.unwrap();
        let ports: HashSet<i64> = (0..40).map(|i| a.node_ports(&format!("s{i}"))[0]).collect();
        assert_eq!(ports.len(), 40);
        // `create -f` / `expose`: the create-only path allocates too.
        assert_eq!(a.send(&[one_port("made", "NodePort", None)], true).await.unwrap(), ["created"]);
        assert!(a.node_ports("made")[0] >= 30000);
    }

    #[tokio::test]
    async fn health_check_node_port_for_load_balancer_local() {
        let a = api();
        let mut local = my_nginx("LoadBalancer");
        local["spec"]["externalTrafficPolicy"] = json!("Local");
        a.apply(&[local.clone()]).await.unwrap();
        let hc = a.svc("my-nginx")["spec"]["healthCheckNodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&hc) && !a.node_ports("my-nginx").contains(&hc));
        assert_eq!(a.apply(&[local.clone()]).await.unwrap(), ["unchanged"]);
        // Another value for it is refused; the policy back to Cluster releases it.
        let mut moved = local.clone();
        moved["spec"]["healthCheckNodePort"] = json!(hc + 1 - 2 * i64::from(hc == 32767));
        let (_, msg) = error(a.apply(&[moved]).await);
        assert_eq!(msg, "The Service \"my-nginx\" is invalid: spec.healthCheckNodePort: Forbidden: field is immutable");
        a.apply(&[my_nginx("LoadBalancer")]).await.unwrap();
        assert!(a.svc("my-nginx")["spec"].get("healthCheckNodePort").is_none());
        // NodePort + Local: none.
        let mut np = my_nginx("NodePort");
        np["spec"]["externalTrafficPolicy"] = json!("Local");
        a.apply(&[np]).await.unwrap();
        assert!(a.svc("my-nginx")["spec"].get("healthCheckNodePort").is_none());
    }

    #[tokio::test]
    async fn a_replaced_service_keeps_what_the_registry_allocated() {
        let a = api();
        a.apply(&[my_nginx("NodePort")]).await.unwrap();
        let before = a.svc("my-nginx");
        let (ip, ports) = (before["spec"]["clusterIP"].clone(), a.node_ports("my-nginx"));
        // `kubectl edit`: what `get -o yaml` shows, the type changed.
        let mut edited = before.clone();
        edited["spec"]["type"] = json!("LoadBalancer");
        assert_eq!(a.replace(&[edited.clone()]).await.unwrap(), ["configured"]);
        let after = a.svc("my-nginx");
        assert_eq!((&after["spec"]["clusterIP"], a.node_ports("my-nginx")), (&ip, ports.clone()));
        assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
        assert_eq!(after["metadata"]["creationTimestamp"], before["metadata"]["creationTimestamp"]);
        // The same object again (its version updated): nothing to write.
        edited["metadata"]["resourceVersion"] = after["metadata"]["resourceVersion"].clone();
        assert_eq!(a.replace(&[edited]).await.unwrap(), ["unchanged"]);
        // A bare manifest: the ClusterIP, its families and the node ports are put back, while what
        // a PUT replaces (labels) goes; uid and creationTimestamp cannot be forged.
        let mut bare = my_nginx("NodePort");
        bare["metadata"] = json!({"name": "my-nginx", "uid": "forged", "creationTimestamp": "2001-01-01T00:00:00Z"});
        assert_eq!(a.replace(&[bare]).await.unwrap(), ["configured"]);
        let svc = a.svc("my-nginx");
        assert_eq!(
            (&svc["spec"]["clusterIP"], &svc["spec"]["clusterIPs"], &svc["spec"]["ipFamilies"]),
            (&ip, &json!([ip]), &json!(["IPv4"]))
        );
        assert_eq!((svc["spec"]["type"].as_str(), a.node_ports("my-nginx")), (Some("NodePort"), ports));
        assert!(svc["metadata"].get("labels").is_none(), "{svc}");
        assert_eq!(svc["metadata"]["uid"], before["metadata"]["uid"]);
        assert_eq!(svc["metadata"]["creationTimestamp"], before["metadata"]["creationTimestamp"]);
        // → ClusterIP with the node ports still written in: they are cleared (SVC-11).
        let mut plain = a.svc("my-nginx");
        plain["spec"]["type"] = json!("ClusterIP");
        a.replace(&[plain]).await.unwrap();
        assert_eq!((a.node_ports("my-nginx"), &a.svc("my-nginx")["spec"]["clusterIP"]), (vec![0, 0], &ip));
    }

    #[tokio::test]
    async fn replace_refuses_stale_versions_missing_objects_and_taken_ports() {
        let a = api();
        a.apply(&[my_nginx("NodePort"), one_port("other", "NodePort", Some(30080))]).await.unwrap();
        let stale = a.svc("my-nginx");
        let mut changed = stale.clone();
        changed["spec"]["sessionAffinity"] = json!("ClientIP");
        a.replace(&[changed]).await.unwrap();
        let current = a.svc("my-nginx");
        let rv = a.api.shared.store.resource_version();
        let mut late = stale.clone();
        late["spec"]["type"] = json!("LoadBalancer");
        let (code, msg) = error(a.replace(&[late.clone()]).await);
        assert_eq!(code, tonic::Code::Aborted);
        assert_eq!(
            msg,
            "Operation cannot be fulfilled on services \"my-nginx\": the object has been modified; please apply your changes to the latest version and try again"
        );
        // Without a version the replace is unconditional.
        late["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        let mut nope = one_port("nope", "ClusterIP", None);
        nope["metadata"]["resourceVersion"] = json!("1");
        let (code, msg) = error(a.replace(&[late.clone(), nope]).await);
        assert_eq!((code, msg.as_str()), (tonic::Code::NotFound, "services \"nope\" not found"));
        let mut grab = current.clone();
        grab["spec"]["ports"][1]["nodePort"] = json!(30080);
        let (code, msg) = error(a.replace(&[late.clone(), grab]).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert_eq!(
            msg,
            "The Service \"my-nginx\" is invalid: spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        assert_eq!(a.api.shared.store.resource_version(), rv, "nothing was written");
        assert_eq!(a.svc("my-nginx"), current);
        assert_eq!(a.replace(&[late]).await.unwrap(), ["configured"]);
        assert_eq!(a.svc("my-nginx")["spec"]["sessionAffinity"], "None", "a PUT replaces the whole spec");
    }

    #[tokio::test]
    async fn replace_keeps_the_status_until_the_type_drops_it() {
        let a = api();
        a.apply(&[my_nginx("LoadBalancer")]).await.unwrap();
        let mut with_status = a.svc("my-nginx");
        with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.1", "ipMode": "VIP"}]}});
        a.api.update_status(Request::new(UpdateStatusRequest { object: Some(Object { json: with_status.to_string() }) })).await.unwrap();
        // Status is not writable through the main resource: a PUT without it (or with another)
        // keeps the stored one.
        let mut put = a.svc("my-nginx");
        put["status"] = json!({"loadBalancer": {}});
        put["spec"]["externalTrafficPolicy"] = json!("Local");
        assert_eq!(a.replace(&[put]).await.unwrap(), ["configured"]);
        assert_eq!(a.svc("my-nginx")["status"]["loadBalancer"]["ingress"][0]["ip"], "203.0.113.1");
        assert!(a.svc("my-nginx")["spec"]["healthCheckNodePort"].as_i64().is_some());
        // No longer a load balancer: the address goes with the type.
        let mut plain = a.svc("my-nginx");
        plain["spec"]["type"] = json!("ClusterIP");
        a.replace(&[plain]).await.unwrap();
        let svc = a.svc("my-nginx");
        assert_eq!(svc["status"]["loadBalancer"], json!({}));
        assert!(svc["spec"].get("healthCheckNodePort").is_none() && svc["spec"].get("externalTrafficPolicy").is_none(), "{svc}");
    }
}
