//! Machines joining the cluster: the control plane's join listener (TCP, TLS with the API
//! server's certificate of the cluster CA), serving service Join (kubeadm's discovery and TLS
//! bootstrap) and, to the agents of joined machines, service Api under their node identities.
//!
//! A joining machine first discovers the cluster CA without credentials and checks it against
//! the hash its user gave (`--discovery-token-ca-cert-hash`); over a connection verified
//! against that CA it then presents a bootstrap token (`emu token create`) with its nodes'
//! names and public keys. The controller places each node (an index: its fabric and outside
//! addresses and pod CIDR), creates its Node, and signs a certificate for `system:node:NAME`.
//! From then on the agents use service Api on the same listener with those certificates
//! (mutual TLS), and each request is judged as kube-apiserver judges a kubelet's: the Node
//! authorizer and NodeRestriction first (rest::node_authz), then RBAC.

use crate::api::ApiService;
use crate::pki::ClusterPki;
use crate::rest::authz::{self, Decision, User};
use crate::rest::node_authz::{self, NodeDecision};
use crate::rest::request::RequestInfo;
use crate::state::Shared;
use crate::store::ObjectKey;
use emu_api::object;
use emu_logic::cluster::{ClusterConfig, NodeConfig, HOST_LABEL, NODE_INDEX_ANNOTATION, UNDERLAY_ANNOTATION};
use emu_logic::ipam;
use emu_proto::api_server::Api;
use emu_proto::transport::TlsPeer;
use emu_proto::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The port of the join listener on the control plane's advertise address.
pub const JOIN_PORT: u16 = 6444;

/// Service Join.
pub struct JoinService {
    pub shared: Shared,
    pub pki: Arc<ClusterPki>,
}

#[tonic::async_trait]
impl emu_proto::join_server::Join for JoinService {
    async fn discover(&self, _req: Request<DiscoverRequest>) -> Result<Response<DiscoverResponse>, Status> {
        Ok(Response::new(DiscoverResponse {
            ca_certificate: self.pki.ca_pem().to_string(),
            cluster_name: self.shared.cluster.name.clone(),
        }))
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let peer = peer_addr(&req);
        let r = req.into_inner();
        let who = crate::bootstrap::check_join_token(&self.shared, &r.token, emu_api::time::now()).map_err(|message| {
            tracing::warn!(%peer, host = %r.host, "join refused: {message}");
            Status::unauthenticated(message)
        })?;
        let request = JoinPlan::check(&r).map_err(|message| {
            tracing::warn!(%peer, host = %r.host, "join refused: {message}");
            Status::invalid_argument(message)
        })?;
        let shared = self.shared.clone();
        let placed = tokio::task::spawn_blocking(move || place_nodes(&shared, &request))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .inspect_err(|e| tracing::warn!(%peer, host = %r.host, "join refused: {}", e.message()))?;
        let ip = IpAddr::V4(placed.advertise);
        let mut nodes = Vec::new();
        for (n, key) in placed.config.nodes.iter().zip(r.nodes.iter()) {
            let certificate = self.pki.node_cert(&n.name, &key.public_key, ip).map_err(|e| Status::internal(e.to_string()))?;
            nodes.push(JoinedNode { name: n.name.clone(), certificate });
        }
        let names: Vec<&str> = placed.config.nodes.iter().map(|n| n.name.as_str()).collect();
        tracing::info!(%peer, host = %r.host, user = %who.user, nodes = names.join(","), "machine joined");
        let config_json = serde_json::to_string(&placed.config).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(JoinResponse { config_json, nodes, hosts: placed.hosts }))
    }
}

/// A join request, checked: the machine's name and address, its nodes' names.
#[derive(Debug, Clone)]
struct JoinPlan {
    host: String,
    advertise: Ipv4Addr,
    nodes: Vec<String>,
}

impl JoinPlan {
    fn check(r: &JoinRequest) -> Result<JoinPlan, String> {
        if let Some(e) = emu_api::syntax::dns1123_subdomain_errors(&r.host).first() {
            return Err(format!("host name {:?}: {e}", r.host));
        }
        let advertise: Ipv4Addr =
            r.advertise_address.parse().map_err(|_| format!("advertise address {:?} is not an IPv4 address", r.advertise_address))?;
        if r.nodes.is_empty() {
            return Err("a machine joins with at least one node".into());
        }
        let mut names = BTreeSet::new();
        for n in &r.nodes {
            if let Some(e) = emu_api::syntax::dns1123_subdomain_errors(&n.name).first() {
                return Err(format!("node name {:?}: {e}", n.name));
            }
            if !names.insert(n.name.as_str()) {
                return Err(format!("node {:?} is named twice", n.name));
            }
            if !crate::pki::is_p256_point(&n.public_key) {
                return Err(format!("node {:?}: the public key must be an uncompressed P-256 point (65 bytes)", n.name));
            }
        }
        Ok(JoinPlan { host: r.host.clone(), advertise, nodes: r.nodes.iter().map(|n| n.name.clone()).collect() })
    }
}

struct Placed {
    config: ClusterConfig,
    advertise: Ipv4Addr,
    hosts: Vec<String>,
}

/// Gives each node of the machine its index (kept when the same machine joins again), creates
/// its Node (pod CIDR, addresses, host), and returns the machine's view of the cluster.
fn place_nodes(shared: &Shared, plan: &JoinPlan) -> Result<Placed, Status> {
    let _allocating = shared.allocation.lock().map_err(|_| Status::internal("allocation lock poisoned"))?;
    let cluster = &shared.cluster;
    let (existing, _) = shared.store.list("Node", None);
    let mut used: BTreeSet<usize> = cluster.nodes.iter().map(|n| n.index).collect();
    used.extend(existing.iter().filter_map(node_index));
    let mut config = ClusterConfig {
        nodes: Vec::new(),
        host: plan.host.clone(),
        advertise_address: plan.advertise.to_string(),
        control_plane: shared.join_endpoint.get().cloned().unwrap_or_default(),
        ..cluster.clone()
    };
    let fabric: ipam::Ipv4Cidr = parse(&cluster.fabric_cidr, "fabric CIDR")?;
    let outside: Option<ipam::Ipv4Cidr> =
        (!cluster.outside_cidr.is_empty()).then(|| parse(&cluster.outside_cidr, "outside CIDR")).transpose()?;
    let pods: ipam::Ipv4Cidr = parse(&cluster.pod_cidr, "pod CIDR")?;
    for name in &plan.nodes {
        let found = existing.iter().find(|n| object::name(n) == name);
        let index = match found {
            Some(n) if n["metadata"]["labels"][HOST_LABEL].as_str() == Some(plan.host.as_str()) && node_index(n).is_some() => {
                node_index(n).unwrap_or_default()
            }
            Some(n) => {
                let on = n["metadata"]["labels"][HOST_LABEL].as_str().unwrap_or("the control plane's machine");
                return Err(Status::already_exists(format!(
                    "node {name:?} already exists in cluster {:?} (on {on}): choose another name, or remove it first with `emu node remove {name}`",
                    cluster.name
                )));
            }
            None if cluster.node(name).is_some() => {
                return Err(Status::already_exists(format!(
                    "node {name:?} is a node of the control plane's machine in cluster {:?}: choose another name",
                    cluster.name
                )));
            }
            None => (0..).find(|i| !used.contains(i)).unwrap_or_default(),
        };
        used.insert(index);
        let cidr = ipam::node_pod_cidr(pods, index, cluster.node_prefix).ok_or_else(|| {
            Status::resource_exhausted(format!("pod CIDR {} has no room for a node with index {index}", cluster.pod_cidr))
        })?;
        let node = NodeConfig {
            name: name.clone(),
            index,
            internal_ip: ipam::fabric_ip(fabric, index).to_string(),
            external_ip: outside.map(|o| ipam::fabric_ip(o, index).to_string()).unwrap_or_default(),
        };
        if found.is_none() {
            shared.store.create(joined_node(&node, &plan.host, plan.advertise, &cidr.to_string())).map_err(crate::api::status_of)?;
        }
        config.nodes.push(node);
    }
    shared.changed();
    let mut hosts: Vec<String> = Vec::new();
    let control = config.control_plane.rsplit_once(':').map(|(a, _)| a.to_string()).unwrap_or_default();
    for address in std::iter::once(control)
        .chain(existing.iter().filter_map(|n| n["metadata"]["annotations"][UNDERLAY_ANNOTATION].as_str().map(String::from)))
    {
        if !address.is_empty() && address != plan.advertise.to_string() && !hosts.contains(&address) {
            hosts.push(address);
        }
    }
    Ok(Placed { config, advertise: plan.advertise, hosts })
}

fn parse(text: &str, what: &str) -> Result<ipam::Ipv4Cidr, Status> {
    text.parse().map_err(|e| Status::internal(format!("{what} {text:?}: {e}")))
}

/// The index a joined Node was given.
fn node_index(node: &Value) -> Option<usize> {
    node["metadata"]["annotations"][NODE_INDEX_ANNOTATION].as_str()?.parse().ok()
}

/// The Node of a joined machine's node, before its agent registers it (which fills its status).
fn joined_node(node: &NodeConfig, host: &str, advertise: Ipv4Addr, cidr: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", HOST_LABEL: host},
            "annotations": {NODE_INDEX_ANNOTATION: node.index.to_string(), UNDERLAY_ANNOTATION: advertise.to_string()},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    })
}

fn peer_addr<T>(req: &Request<T>) -> String {
    req.extensions().get::<TlsPeer>().and_then(|p| p.addr).map(|a| a.to_string()).unwrap_or_else(|| "?".into())
}

/// The node a request on the join listener comes from: its client certificate must be a node's.
fn node_identity<T>(req: &Request<T>) -> Result<(String, User), Status> {
    let certificate = req.extensions().get::<TlsPeer>().and_then(|p| p.certificate.clone());
    let user = certificate
        .and_then(|c| {
            let (common_name, organizations) = crate::https::subject_names(c.as_ref())?;
            Some(User::from_certificate(&common_name?, &organizations))
        })
        .ok_or_else(|| {
            tracing::warn!(peer = %peer_addr(req), "API request on the join listener without a client certificate: refused");
            Status::unauthenticated(
                "the join listener serves the API only to nodes' agents with their client certificates (from `emu join`)",
            )
        })?;
    match node_authz::node_of(&user) {
        Some(node) => Ok((node.to_string(), user.clone())),
        None => {
            tracing::warn!(peer = %peer_addr(req), user = %user.name, "API request on the join listener from a user who is not a node: refused");
            Err(Status::permission_denied(format!(
                "user {:?} is not a node: the join listener serves the API only to nodes' agents",
                user.name
            )))
        }
    }
}

/// kube-apiserver's request attributes of an Api call on object `kind` (emu's Fault included).
fn attributes(verb: &str, kind: &str, namespace: &str, name: &str, subresource: &str) -> Result<RequestInfo, Status> {
    let (group, version, resource) = match emu_api::kinds::by_kind(kind) {
        Some(k) => (k.group, k.version, k.plural),
        None if kind == emu_api::fault::KIND => ("emu.dev", "v1", "faults"),
        None => return Err(Status::invalid_argument(format!("kind {kind:?} is not served"))),
    };
    Ok(RequestInfo {
        resource_request: true,
        path: String::new(),
        verb: verb.into(),
        prefix: if group.is_empty() { "api" } else { "apis" }.into(),
        group: group.into(),
        version: version.into(),
        namespace: namespace.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        name: name.into(),
        parts: Vec::new(),
        user_agent: "emu-nodeagent".into(),
    })
}

/// Service Api for the agents of joined machines: each call is authorized for the caller's node
/// before it is served, as kube-apiserver authorizes a kubelet's requests. Refusals are logged.
pub struct NodeApi {
    pub inner: ApiService,
}

impl NodeApi {
    /// Whether `node` (as `user`) may do `info`: the Node authorizer, then (for what it has no
    /// opinion on) emu's own rules (Faults, whose node-side work the agents do; reading
    /// namespaces, for the cluster DNS behind the node's pods' API socket), then RBAC.
    fn authorize(&self, node: &str, user: &User, info: &RequestInfo) -> Result<(), Status> {
        let decision = match node_authz::authorize(node, user, info, &self.inner.shared.store) {
            NodeDecision::Allow => Ok(()),
            NodeDecision::Deny(e) => Err(e.message),
            NodeDecision::NoOpinion if info.group == "emu.dev" && matches!(info.verb.as_str(), "get" | "list" | "watch" | "update") => {
                Ok(())
            }
            // The cluster DNS of a joined machine's CoreDNS pods reads through its node
            // (api_proxy in the agent), and needs the namespaces (kubelet does not).
            NodeDecision::NoOpinion
                if info.group.is_empty() && info.resource == "namespaces" && matches!(info.verb.as_str(), "get" | "list" | "watch") =>
            {
                Ok(())
            }
            NodeDecision::NoOpinion => match authz::authorize(user, info, &authz::Stored(&self.inner.shared.store)) {
                Decision::Allow(_) => Ok(()),
                Decision::Deny(reason) => Err(authz::forbidden_message(user, info, &reason)),
            },
        };
        decision.map_err(|message| {
            tracing::warn!(node, verb = %info.verb, resource = %info.resource, namespace = %info.namespace, name = %info.name, "refused: {message}");
            Status::permission_denied(message)
        })
    }

    /// Authorizes every object of a write.
    fn authorize_objects(&self, node: &str, user: &User, verb: &str, objects: &[Object], subresource: &str) -> Result<(), Status> {
        for o in objects {
            let v: Value = serde_json::from_str(&o.json).map_err(|e| Status::invalid_argument(format!("object is not valid JSON: {e}")))?;
            let info = attributes(verb, v["kind"].as_str().unwrap_or_default(), object::namespace(&v), object::name(&v), subresource)?;
            self.authorize(node, user, &info)?;
        }
        Ok(())
    }
}

/// Refuses a call nodes never make.
fn not_for_nodes(what: &str) -> Status {
    Status::permission_denied(format!("{what} is not served to nodes"))
}

#[tonic::async_trait]
impl Api for NodeApi {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        self.authorize_objects(&node, &user, "create", &req.get_ref().objects, "")?;
        self.inner.apply(req).await
    }

    async fn replace(&self, req: Request<ReplaceRequest>) -> Result<Response<ApplyResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        self.authorize_objects(&node, &user, "update", &req.get_ref().objects, "")?;
        self.inner.replace(req).await
    }

    async fn get(&self, req: Request<ObjectRef>) -> Result<Response<Object>, Status> {
        let (node, user) = node_identity(&req)?;
        let r = req.get_ref();
        self.authorize(&node, &user, &attributes("get", &r.kind, &r.namespace, &r.name, "")?)?;
        self.inner.get(req).await
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        let r = req.get_ref();
        self.authorize(&node, &user, &attributes("list", &r.kind, &r.namespace, "", "")?)?;
        self.inner.list(req).await
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        let r = req.get_ref().r#ref.clone().unwrap_or_default();
        self.authorize(&node, &user, &attributes("delete", &r.kind, &r.namespace, &r.name, "")?)?;
        self.inner.delete(req).await
    }

    async fn scale(&self, _req: Request<ScaleRequest>) -> Result<Response<Object>, Status> {
        Err(not_for_nodes("scale"))
    }

    async fn update_status(&self, req: Request<UpdateStatusRequest>) -> Result<Response<UpdateStatusResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        let objects: Vec<Object> = req.get_ref().object.clone().into_iter().collect();
        self.authorize_objects(&node, &user, "update", &objects, "status")?;
        self.inner.update_status(req).await
    }

    type WatchStream = <ApiService as Api>::WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let (node, user) = node_identity(&req)?;
        let r = req.get_ref();
        if r.kinds.is_empty() {
            return Err(Status::permission_denied("a node watches named kinds"));
        }
        for kind in &r.kinds {
            // The pods of other nodes are not sent to a node that names itself.
            let own_pods = kind == "Pod" && r.node_name == node;
            // Secrets and ConfigMaps: only those the node's pods use are sent (below), as the
            // Node authorizer lets a kubelet read only those.
            let config = matches!(kind.as_str(), "Secret" | "ConfigMap") && r.node_name == node;
            if !own_pods && !config {
                self.authorize(&node, &user, &attributes("watch", kind, "", "", "")?)?;
            }
        }
        let events = self.inner.watch(req).await?.into_inner();
        Ok(Response::new(Box::pin(used_config_only(self.inner.shared.clone(), node, events))))
    }

    async fn register_node(&self, req: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        let objects: Vec<Object> = req.get_ref().node.clone().into_iter().collect();
        self.authorize_objects(&node, &user, "update", &objects, "")?;
        self.inner.register_node(req).await
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        self.authorize(&node, &user, &attributes("update", "Node", "", &req.get_ref().node_name, "status")?)?;
        self.inner.heartbeat(req).await
    }

    async fn cluster_info(&self, req: Request<ClusterInfoRequest>) -> Result<Response<ClusterInfoResponse>, Status> {
        node_identity(&req)?;
        self.inner.cluster_info(req).await
    }

    async fn create_token(&self, req: Request<TokenRequest>) -> Result<Response<TokenResponse>, Status> {
        let (node, user) = node_identity(&req)?;
        let r = req.get_ref();
        let account = if r.service_account.is_empty() { "default" } else { &r.service_account };
        self.authorize(&node, &user, &attributes("create", "ServiceAccount", &r.namespace, account, "token")?)?;
        self.inner.create_token(req).await
    }

    async fn kubeconfig(&self, _req: Request<KubeconfigRequest>) -> Result<Response<KubeconfigResponse>, Status> {
        Err(not_for_nodes("a kubeconfig"))
    }
}

/// A node's watch with only the Secrets and ConfigMaps its pods use: one is sent when a pod of
/// the node uses it (also when the pod comes after it: it is sent just before that pod), its
/// changes while it is sent, its deletion if it was sent.
fn used_config_only(
    shared: Shared,
    node: String,
    mut events: <ApiService as Api>::WatchStream,
) -> impl tokio_stream::Stream<Item = Result<WatchEvent, Status>> + Send + 'static {
    use tokio_stream::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut sent: BTreeSet<ConfigKey> = BTreeSet::new();
        while let Some(event) = events.next().await {
            let before = match &event {
                Ok(e) => match before_sending(&shared, &node, &mut sent, e) {
                    Some(before) => before,
                    None => continue,
                },
                Err(_) => Vec::new(),
            };
            for e in before.into_iter().map(Ok).chain(std::iter::once(event)) {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A Secret's or ConfigMap's kind, namespace and name.
type ConfigKey = (String, String, String);

/// For a node's watch: None when `e` is not for the node (a Secret or ConfigMap none of its
/// pods uses, or the deletion of one it was never sent); else what goes just before it (the
/// Secrets and ConfigMaps a pod of the node uses that it has not been sent yet). `sent` keeps
/// what the node has.
fn before_sending(shared: &Shared, node: &str, sent: &mut BTreeSet<ConfigKey>, e: &WatchEvent) -> Option<Vec<WatchEvent>> {
    use emu_proto::watch_event::Type;
    let object: Value = e.object.as_ref().and_then(|o| serde_json::from_str(&o.json).ok()).unwrap_or_default();
    let key: ConfigKey =
        (object["kind"].as_str().unwrap_or_default().into(), object::namespace(&object).into(), object::name(&object).into());
    let mut before = Vec::new();
    match (Type::try_from(e.r#type), key.0.as_str()) {
        (Ok(Type::Reset), _) => sent.clear(),
        (Ok(Type::Deleted), "Secret" | "ConfigMap") if !sent.remove(&key) => return None,
        (Ok(Type::Deleted), _) => {}
        (_, "Secret" | "ConfigMap") if !used_by_pods_of(shared, node, &key) => return None,
        (_, "Secret" | "ConfigMap") => {
            sent.insert(key);
        }
        (Ok(Type::Added | Type::Modified), "Pod") => {
            let pod: Option<emu_api::typed::Pod> = emu_api::typed::decode(&object).ok();
            for (kind, name) in pod.as_ref().map(emu_logic::podspec::referenced_objects).unwrap_or_default() {
                let used: ConfigKey = (kind.into(), key.1.clone(), name.into());
                let stored = ObjectKey { kind: used.0.clone(), namespace: used.1.clone(), name: used.2.clone() };
                if sent.contains(&used) {
                    continue;
                }
                if let Some(v) = shared.store.get(&stored) {
                    let rv = v["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
                    before.push(WatchEvent {
                        r#type: Type::Added as i32,
                        object: Some(Object { json: v.to_string() }),
                        resource_version: rv,
                    });
                    sent.insert(used);
                }
            }
        }
        _ => {}
    }
    Some(before)
}

/// Whether a pod bound to `node` uses the Secret or ConfigMap `key` (kind, namespace, name).
fn used_by_pods_of(shared: &Shared, node: &str, (kind, namespace, name): &ConfigKey) -> bool {
    let (pods, _) = shared.store.list("Pod", Some(namespace));
    pods.iter().filter(|p| p["spec"]["nodeName"].as_str() == Some(node)).any(|p| {
        emu_api::typed::decode::<emu_api::typed::Pod>(p)
            .is_ok_and(|pod| emu_logic::podspec::referenced_objects(&pod).iter().any(|(k, n)| k == kind && n == name))
    })
}

/// Serves the join listener: service Join to anyone (its `Join` needs a token), service Api to
/// nodes' agents with their certificates, until `stopped`.
pub async fn serve(
    shared: Shared,
    pki: Arc<ClusterPki>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let incoming = emu_proto::transport::incoming(listener, tokio_rustls::TlsAcceptor::from(tls));
    let api = NodeApi { inner: ApiService { shared: shared.clone() } };
    let result = tonic::transport::Server::builder()
        // A machine cut off: its agents' watch streams end instead of waiting for TCP to give up.
        .http2_keepalive_interval(Some(emu_proto::transport::KEEP_ALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(emu_proto::transport::KEEP_ALIVE_TIMEOUT))
        .add_service(emu_proto::join_server::JoinServer::new(JoinService { shared, pki }))
        .add_service(emu_proto::api_server::ApiServer::new(api).max_decoding_message_size(emu_proto::MAX_MESSAGE))
        .serve_with_incoming_shutdown(incoming, stopped)
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "join listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, addr: &str, nodes: &[(&str, Vec<u8>)]) -> JoinRequest {
        JoinRequest {
            token: String::new(),
            host: host.into(),
            advertise_address: addr.into(),
            nodes: nodes.iter().map(|(n, k)| JoinNode { name: n.to_string(), public_key: k.clone() }).collect(),
        }
    }

    #[test]
    fn a_join_request_is_checked_before_anything_is_placed() {
        let key = rcgen::KeyPair::generate().unwrap().public_key_raw().to_vec();
        assert!(JoinPlan::check(&request("h2", "192.0.2.2", &[("n3", key.clone())])).is_ok());
        let e = |r: JoinRequest| JoinPlan::check(&r).unwrap_err();
        assert!(e(request("H_2", "192.0.2.2", &[("n3", key.clone())])).starts_with("host name \"H_2\""));
        assert!(e(request("h2", "10.0.2", &[("n3", key.clone())])).contains("not an IPv4 address"));
        assert!(e(request("h2", "192.0.2.2", &[])).contains("at least one node"));
        assert!(e(request("h2", "192.0.2.2", &[("n3", key.clone()), ("n3", key.clone())])).contains("named twice"));
        assert!(e(request("h2", "192.0.2.2", &[("n3", vec![4; 10])])).contains("P-256"));
    }

    #[test]
    fn a_node_is_sent_only_the_secrets_and_config_maps_its_pods_use() {
        use emu_proto::watch_event::Type;
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        shared.store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})).unwrap();
        let secret = |name: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"}});
        for name in ["used", "later", "unused"] {
            shared.store.create(secret(name)).unwrap();
        }
        let pod = |name: &str, node: &str, secret: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}],
                         "volumes": [{"name": "v", "secret": {"secretName": secret}}]}})
        };
        shared.store.create(pod("mine", "node-5", "used")).unwrap();
        shared.store.create(pod("theirs", "node-3", "unused")).unwrap();
        let event = |t: Type, v: &Value| WatchEvent { r#type: t as i32, object: Some(Object { json: v.to_string() }), resource_version: 0 };
        let mut sent = BTreeSet::new();
        let mut decide = |e: WatchEvent| before_sending(&shared, "node-5", &mut sent, &e);
        assert_eq!(decide(event(Type::Added, &secret("used"))), Some(vec![]));
        assert_eq!(decide(event(Type::Added, &secret("unused"))), None, "another node's pod uses it");
        assert_eq!(decide(event(Type::Modified, &secret("later"))), None);
        // A new pod of the node that uses `later`: sent just before it.
        let newer = pod("newer", "node-5", "later");
        shared.store.create(newer.clone()).unwrap();
        let before = decide(event(Type::Added, &newer)).unwrap();
        assert_eq!(before.len(), 1);
        assert!(before[0].object.as_ref().unwrap().json.contains("\"later\""));
        assert_eq!(decide(event(Type::Deleted, &secret("unused"))), None, "never sent");
        assert_eq!(decide(event(Type::Deleted, &secret("later"))), Some(vec![]));
    }

    #[test]
    fn grpc_calls_have_the_request_attributes_of_their_rest_requests() {
        let info = attributes("update", "Pod", "default", "web-1", "status").unwrap();
        assert_eq!((info.prefix.as_str(), info.group.as_str(), info.resource.as_str()), ("api", "", "pods"));
        let info = attributes("watch", "EndpointSlice", "", "", "").unwrap();
        assert_eq!((info.prefix.as_str(), info.group.as_str(), info.resource.as_str()), ("apis", "discovery.k8s.io", "endpointslices"));
        assert_eq!(attributes("get", emu_api::fault::KIND, "", "f", "").unwrap().resource, "faults");
        assert!(attributes("get", "Gadget", "", "", "").is_err());
    }
}
