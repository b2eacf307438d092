//! The emulated cloud load balancer (`emu-nodeagent cloud`): one daemon living in the outside
//! world's network namespace, doing what a cloud controller manager and the cloud's balancers do
//! for LoadBalancer Services (NET-7, "instance" mode):
//!
//! - gives each one an address from the pool (or its `loadBalancerIP`) in
//!   `status.loadBalancer.ingress`, once the balancer forwards (a cloud controller publishes the
//!   address when the balancer is made);
//! - health-checks every node: with `externalTrafficPolicy: Local` an HTTP GET of the Service's
//!   `healthCheckNodePort`, where the node's proxy answers 200 only with a local endpoint (as
//!   clouds probe it), so traffic goes only to nodes with endpoints; otherwise a TCP connect to
//!   the node port (a classic balancer's default check);
//! - forwards each balancer address and port to the healthy nodes' node ports with nftables
//!   (table `ip emu-cloud`, [`emu_dataplane::cloud::render`]), keeping the client's address.
//!
//! Level-triggered: every change of Services or Nodes and every health-check round (1 s) computes
//! the wanted table and applies it when it differs from the last one applied.

use anyhow::Context;
use emu_api::object;
use emu_api::typed::{self, EndpointSlice, Node, Service};
use emu_dataplane::cloud::{self, BalancerModel};
use emu_host::nft::NftRunner;
use emu_logic::cluster::{ClusterConfig, Paths};
use emu_logic::ipam;
use emu_logic::loadbalancer;
use emu_proto::reflector::{self, Snapshot};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct Args {
    cluster: String,
}

/// How often the nodes are checked, and how long a check may take.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the nodes are checked while a new balancer waits for its first healthy node, or a
/// balancer of a Service with ready endpoints has none (a cloud's checks are slower; emu's are
/// local connects, and a lab should not wait for them).
const CHECK_NEW_EVERY: Duration = Duration::from_millis(100);
/// How long a new balancer's address waits for a healthy node before it is published anyway
/// (a Service without endpoints anywhere still shows its EXTERNAL-IP, as in a cloud).
const PUBLISH_WITHOUT_HEALTHY_NODES_AFTER: Duration = Duration::from_secs(3);

/// Entry point of `emu-nodeagent cloud --cluster NAME`.
pub fn main(args: Vec<String>) -> anyhow::Result<()> {
    let about = "The cloud load balancer of an emu cluster (started by `emu up` in the outside world).";
    let [cluster] = emu_proto::daemon::flags("emu-nodeagent cloud", about, ["cluster"], args);
    let args = Args { cluster };
    emu_proto::daemon::init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let paths = Paths::new(&args.cluster);
    let cluster: ClusterConfig =
        serde_json::from_slice(&std::fs::read(paths.config()).with_context(|| format!("reading {}", paths.config().display()))?)?;
    let pool: ipam::Ipv4Cidr = cluster.load_balancer_cidr.parse().map_err(|e| anyhow::anyhow!("load balancer pool: {e}"))?;
    std::fs::write(paths.root.join("cloud.pid"), std::process::id().to_string())?;
    let client = emu_proto::connect_unix(&paths.socket()).await.context("connecting to the controller")?;
    // `emu outside`'s commands, relayed by the controller.
    let outside = crate::node_service::NodeService::new(&cluster.name, crate::node_service::Place::Outside)?;
    tokio::spawn(crate::node_service::serve(outside, paths.outside_socket()));
    let (tx, mut rx) = tokio::sync::watch::channel(Snapshot::default());
    tokio::spawn(reflector::run_projected(
        paths.socket(),
        vec!["Service".into(), "Node".into(), "EndpointSlice".into()],
        String::new(),
        tx,
        Watched::decode,
    ));
    let nft: Arc<dyn NftRunner> = Arc::new(emu_host::nft::RealNft::new());
    let mut applied: Option<String> = None;
    // New balancers whose address is not published yet, since when.
    let mut waiting: HashMap<(String, String), std::time::Instant> = HashMap::new();
    // Whether a balancer of a Service with ready endpoints has no healthy node yet (its node
    // ports are being programmed, or its pods just turned ready): checked again soon.
    let mut catching_up = false;
    tracing::info!(pool = %pool, "cloud load balancer ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let snap = rx.borrow_and_update().clone();
        if snap.synced {
            let services: Vec<Service> = snap
                .objects
                .values()
                .filter_map(|v| match v.as_ref() {
                    Watched::Service(s) if loadbalancer::is_load_balancer(s) => Some((**s).clone()),
                    _ => None,
                })
                .collect();
            let nodes: Vec<Ipv4Addr> = snap
                .objects
                .values()
                .filter_map(|v| match v.as_ref() {
                    Watched::Node(ip) => *ip,
                    _ => None,
                })
                .collect();
            // The Services with a ready endpoint somewhere: only their balancers can wait for
            // a healthy node.
            let served: BTreeSet<(String, String)> = snap
                .objects
                .values()
                .filter_map(|v| match v.as_ref() {
                    Watched::ReadySlice(service) => service.clone(),
                    _ => None,
                })
                .collect();
            let (addresses, new) = choose_addresses(&services, pool);
            let balancers = check_nodes(&services, &addresses, &nodes).await;
            let script = cloud::render(&balancers);
            if applied.as_deref() != Some(script.as_str()) {
                let (runner, text) = (nft.clone(), script.clone());
                match tokio::task::spawn_blocking(move || runner.apply(&text)).await {
                    Ok(Ok(())) => {
                        let healthy: Vec<String> =
                            balancers.iter().map(|b| format!("{}/{}={}:{:?}", b.namespace, b.name, b.ip, b.healthy_nodes)).collect();
                        tracing::info!(balancers = ?healthy, "balancers programmed");
                        applied = Some(script.clone());
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "programming the balancers failed"),
                    Err(e) => tracing::warn!(error = %e, "programming the balancers failed"),
                }
            }
            // A new balancer's address is published once it forwards to a node, as a cloud
            // controller writes `status.loadBalancer` once EnsureLoadBalancer has made the
            // balancer: a client that reads EXTERNAL-IP does not meet an address that answers
            // nothing yet (the Service's node ports may be programmed a moment after it is seen).
            // A Service without a ready endpoint has nothing to wait for: published at once, as
            // in a cloud (its balancer refuses until a pod is ready).
            let now = std::time::Instant::now();
            waiting.retain(|k, _| new.iter().any(|a| (&a.namespace, &a.name) == (&k.0, &k.1)));
            let ready: Vec<&NewAddress> = new
                .iter()
                .filter(|a| {
                    let since = *waiting.entry((a.namespace.clone(), a.name.clone())).or_insert(now);
                    let forwards =
                        balancers.iter().any(|b| (&b.namespace, &b.name) == (&a.namespace, &a.name) && !b.healthy_nodes.is_empty());
                    let nothing_to_wait_for = !served.contains(&(a.namespace.clone(), a.name.clone()));
                    forwards || nothing_to_wait_for || now.duration_since(since) >= PUBLISH_WITHOUT_HEALTHY_NODES_AFTER
                })
                .collect();
            if applied.as_deref() == Some(script.as_str()) {
                publish_addresses(&client, &ready).await;
            }
            catching_up = balancers.iter().any(|b| b.healthy_nodes.is_empty() && served.contains(&(b.namespace.clone(), b.name.clone())));
        }
        let every = if waiting.is_empty() && !catching_up { CHECK_EVERY } else { CHECK_NEW_EVERY };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return Ok(()) },
            _ = tokio::time::sleep(every) => {}
            _ = term.recv() => return Ok(()),
        }
    }
}

/// An object of the cloud's watch, decoded once when it arrives (not at every health-check
/// round).
enum Watched {
    Service(Box<Service>),
    /// A Node's ExternalIP, where its balancers send traffic.
    Node(Option<Ipv4Addr>),
    /// An EndpointSlice: its Service (namespace, name) when it has a ready endpoint.
    ReadySlice(Option<(String, String)>),
    /// An object that does not decode (admission decoded every stored one, so none should).
    Undecodable,
}

impl Watched {
    fn decode(v: Value) -> Watched {
        let decoded = match object::kind(&v) {
            "Service" => typed::decode(&v).map(Watched::Service),
            "Node" => typed::decode::<Node>(&v).map(|n| Watched::Node(external_ip(&n))),
            "EndpointSlice" => typed::decode::<EndpointSlice>(&v).map(|s| Watched::ReadySlice(ready_service(&s))),
            _ => return Watched::Undecodable,
        };
        decoded.unwrap_or_else(|e| {
            tracing::warn!(kind = object::kind(&v), name = %object::name(&v), error = %e, "an object does not decode; left out");
            Watched::Undecodable
        })
    }
}

/// The Service of an EndpointSlice with a ready endpoint (None without one).
fn ready_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let ready = slice.endpoints.iter().any(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
    let service = typed::labels(&slice.metadata).get(emu_logic::endpoints::LABEL_SERVICE_NAME)?;
    ready.then(|| (typed::key(&slice.metadata).0.to_string(), service.clone()))
}

fn external_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "ExternalIP")?.address.parse().ok()
}

/// A balancer address chosen for a Service that has none in its status yet.
struct NewAddress {
    namespace: String,
    name: String,
    uid: String,
    ip: Ipv4Addr,
}

/// Each LoadBalancer Service's balancer address: the one in its status, else a new one from the
/// pool (its `loadBalancerIP` when given), to be written to `status.loadBalancer.ingress` once the
/// balancer forwards ([`publish_addresses`]); the new ones are answered apart. The API server
/// refused requests outside the pool or taken by another Service. Until its address is
/// published a new Service gets the same one again (the lowest free, or the one it asks for).
fn choose_addresses(services: &[Service], pool: ipam::Ipv4Cidr) -> (HashMap<(String, String), Ipv4Addr>, Vec<NewAddress>) {
    let key = |s: &Service| (typed::key(&s.metadata).0.to_string(), typed::key(&s.metadata).1.to_string());
    let mut out = HashMap::new();
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
    // Addresses already held first, so that a new Service never takes one.
    for s in services {
        let current = loadbalancer::ingress_ips(s).into_iter().next();
        let wanted: Option<Ipv4Addr> = loadbalancer::requested_ip(s).and_then(|r| r.parse().ok());
        if let Some(ip) = current.filter(|ip| wanted.is_none_or(|w| w == *ip)) {
            used.insert(ip);
            out.insert(key(s), ip);
        }
    }
    let pending: Vec<&Service> = services.iter().filter(|s| !out.contains_key(&key(s))).collect();
    let mut new = Vec::new();
    for s in pending {
        let (namespace, name) = typed::key(&s.metadata);
        let Some(ip) = loadbalancer::choose_ip(s, pool, &used) else {
            tracing::warn!(service = %format!("{namespace}/{name}"), pool = %pool, "no free load balancer address");
            continue;
        };
        used.insert(ip);
        out.insert(key(s), ip);
        let uid = s.metadata.uid.clone().unwrap_or_default();
        new.push(NewAddress { namespace: namespace.to_string(), name: name.to_string(), uid, ip });
    }
    (out, new)
}

/// Writes each new balancer's address to its Service's `status.loadBalancer.ingress`.
async fn publish_addresses(client: &emu_proto::api_client::ApiClient<tonic::transport::Channel>, new: &[&NewAddress]) {
    for a in new {
        let status = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": a.namespace, "name": a.name, "uid": a.uid},
            "status": {"loadBalancer": {"ingress": [{"ip": a.ip.to_string(), "ipMode": "VIP"}]}}});
        let mut client = client.clone();
        match client.update_status(emu_proto::UpdateStatusRequest { object: Some(emu_proto::Object { json: status.to_string() }) }).await {
            Ok(_) => tracing::info!(service = %format!("{}/{}", a.namespace, a.name), ip = %a.ip, "load balancer address assigned"),
            Err(e) => tracing::warn!(error = %e, "writing a load balancer status failed"),
        }
    }
}

/// The balancers with the nodes that pass their health check now, all checks at once: an HTTP
/// GET of the health check node port for Local Services, a TCP connect to the first node port
/// for the others.
async fn check_nodes(services: &[Service], addresses: &HashMap<(String, String), Ipv4Addr>, nodes: &[Ipv4Addr]) -> Vec<BalancerModel> {
    let mut balancers = Vec::new();
    for s in services {
        let (ns, name) = (typed::key(&s.metadata).0.to_string(), typed::key(&s.metadata).1.to_string());
        let Some(ip) = addresses.get(&(ns.clone(), name.clone())) else { continue };
        let listeners = cloud::listeners(s);
        let Some(check_port) = listeners.iter().find(|l| l.protocol == emu_dataplane::proxy::Protocol::Tcp).map(|l| l.node_port) else {
            // UDP-only balancers cannot be checked with a connect: every node is taken.
            balancers.push(BalancerModel { namespace: ns, name, ip: *ip, listeners, healthy_nodes: nodes.to_vec() });
            continue;
        };
        // With Local, the node's proxy says on the health check node port whether it has
        // endpoints (what clouds probe); otherwise the node port itself must accept.
        let spec = s.spec.clone().unwrap_or_default();
        let health_port = (spec.external_traffic_policy.as_deref() == Some("Local"))
            .then(|| spec.health_check_node_port.and_then(|p| u16::try_from(p).ok()))
            .flatten();
        let checks = nodes.iter().map(|n| {
            let addr = SocketAddr::from((*n, health_port.unwrap_or(check_port)));
            let http = health_port.is_some();
            async move { tokio::time::timeout(CHECK_TIMEOUT, check(addr, http)).await.unwrap_or(false) }
        });
        let results = futures::future::join_all(checks).await;
        let healthy_nodes = nodes.iter().zip(results).filter(|(_, ok)| *ok).map(|(n, _)| *n).collect();
        balancers.push(BalancerModel { namespace: ns, name, ip: *ip, listeners, healthy_nodes });
    }
    balancers.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    balancers
}

/// One health check of a node: the connection is accepted and, for `http`, `GET /healthz`
/// answers 200.
async fn check(addr: SocketAddr, http: bool) -> bool {
    let Ok(conn) = tokio::net::TcpStream::connect(addr).await else { return false };
    if !http {
        return true;
    }
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "emu-cloud-health-check")
        .header(hyper::header::CONNECTION, "close")
        .body(http_body_util::Empty::new())
        .expect("a request of constant parts and an address is valid");
    matches!(crate::probe::get(conn, request).await, Ok(hyper::StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A node port on loopback answering every connection with `answer`; its address.
    async fn node_port(answer: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn health_checks() {
        let healthy = node_port("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        assert!(check(healthy, true).await);
        // kube-proxy's 503 without local endpoints, and anything that is not HTTP, fail.
        assert!(!check(node_port("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await, true).await);
        let garbage = node_port("SSH-2.0-OpenSSH_9.2\r\n").await;
        assert!(!check(garbage, true).await);
        // Without HTTP, accepting the connection is enough.
        assert!(check(garbage, false).await);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        assert!(!check(closed, false).await);
    }
}
