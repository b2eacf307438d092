//! Service Relay: what the CLI asks of a node's machine. Commands in containers and on nodes,
//! logs and port forwarding go to the agent that owns the node (service Node, at the endpoint
//! its Node object names), as kube-apiserver hands exec, logs and port-forward to the kubelet;
//! the outside world's commands go to the cloud daemon. A node's power (stop, start, remove) is
//! the provider's, since a stopped node's agent cannot start itself; the controller records it
//! in a `node-stop` Fault and asks the node's agent to put its routes back once it runs again.
//!
//! Streams pass through unchanged (exit codes too) and end when the controller stops, so that
//! they never hold up its shutdown.

use crate::api::ApiService;
use crate::state::Shared;
use crate::store::{ObjectKey, StoreError};
use emu_api::fault::{self, FaultSpec};
use emu_api::object;
use emu_api::typed::{self, Node, Pod};
use emu_logic::faults;
use emu_proto::api_server::Api;
use emu_proto::node_client::NodeClient;
use emu_proto::relay_server::Relay;
use emu_proto::{
    exec_input, port_forward_input, ApplyRequest, DeleteRequest, EmulatedHost, ExecInput, ExecOutput, HostOpRequest, HostsRequest,
    HostsResponse, LogsChunk, LogsRequest, NodeOpRequest, NodeOpResponse, Object, ObjectRef, PortForwardInput, PortForwardOutput,
};
use emu_provider::Provider;
use futures::StreamExt as _;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// How long reaching an agent may take (a frozen agent never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an agent may take to take up a call (a stopped node's never does).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node's new agent may take to answer after its start (`emu node start` of a killed
/// node), for its routes.
const NEW_AGENT_TIMEOUT: Duration = Duration::from_secs(10);

type OutStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct RelayService {
    shared: Shared,
    provider: Arc<dyn Provider>,
}

impl RelayService {
    pub fn new(shared: Shared, provider: Arc<dyn Provider>) -> RelayService {
        RelayService { shared, provider }
    }

    fn api(&self) -> ApiService {
        ApiService { shared: self.shared.clone() }
    }

    fn pod_on_node(&self, namespace: &str, name: &str) -> Result<(String, String), Status> {
        pod_on_node(&self.shared, namespace, name)
    }

    async fn agent(&self, node: &str) -> Result<NodeClient<Channel>, Status> {
        agent(&self.shared, node).await
    }

    async fn outside(&self) -> Result<NodeClient<Channel>, Status> {
        let socket = emu_logic::cluster::Paths::new(&self.shared.cluster.name).outside_socket();
        dial(&emu_proto::unix_endpoint(&socket), "the outside world's daemon (emu-nodeagent cloud)").await
    }

    /// Ends `stream` when the controller stops, with an error that says so.
    fn until_stopping<T: Send + 'static>(&self, stream: Streaming<T>) -> OutStream<T> {
        let mut stopping = self.shared.stopping.subscribe();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let said = stopped.clone();
        let cut = stream.take_until(async move {
            let _ = stopping.wait_for(|s| *s).await;
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let why = futures::stream::once(async move { said.load(std::sync::atomic::Ordering::SeqCst) })
            .filter_map(|stopped| async move { stopped.then(|| Err(Status::unavailable("the controller is stopping"))) });
        Box::pin(cut.chain(why))
    }

    /// The cluster's nodes, as the provider keeps them; `node` must be one.
    fn check_node(&self, node: &str) -> Result<Vec<String>, Status> {
        let config = self.provider.config().map_err(|e| Status::internal(format!("{e:#}")))?;
        let mut nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
        // And the nodes of machines that joined.
        for n in self.shared.store.list_shared("Node", None).0 {
            let name = object::name(&n);
            if !nodes.iter().any(|x| x == name) {
                nodes.push(name.to_string());
            }
        }
        if !nodes.iter().any(|n| n == node) {
            return Err(Status::not_found(format!("node {node:?} not found in the cluster (nodes: {})", nodes.join(", "))));
        }
        Ok(nodes)
    }

    /// [`check_node`](Self::check_node), for a node whose machine is this provider's: the power
    /// of another machine's node is that machine's.
    fn check_own_node(&self, node: &str) -> Result<Vec<String>, Status> {
        let nodes = self.check_node(node)?;
        let config = self.provider.config().map_err(|e| Status::internal(format!("{e:#}")))?;
        if config.node(node).is_none() {
            let key = crate::store::ObjectKey { kind: "Node".into(), namespace: String::new(), name: node.into() };
            let host = self
                .shared
                .store
                .get(&key)
                .and_then(|n| n["metadata"]["labels"][emu_logic::cluster::HOST_LABEL].as_str().map(String::from));
            let host = host.unwrap_or_else(|| "another machine".into());
            return Err(Status::failed_precondition(format!(
                "node {node:?} runs on {host}, a machine that joined the cluster: its power is that machine's (`emu leave` there removes its nodes; emulated hosts: `emu host stop {host}`)"
            )));
        }
        Ok(nodes)
    }

    fn faults(&self) -> Vec<Value> {
        self.shared.store.list_shared(fault::KIND, None).0.iter().map(|f| (**f).clone()).collect()
    }

    /// Runs a provider operation on a blocking thread (they wait for the kernel).
    async fn on_provider<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Provider) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || f(provider.as_ref()))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("{e:#}")))
    }

    async fn delete_fault(&self, name: &str) -> Result<(), Status> {
        let r = ObjectRef { kind: fault::KIND.into(), namespace: String::new(), name: name.into() };
        self.api().delete(Request::new(DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 })).await?;
        Ok(())
    }

    /// Asks the agent of `node` to put back the routes the kernel dropped while its links were
    /// down; a new agent (after a kill) is waited for until it answers.
    async fn restore_routes(&self, node: &str, new_agent: bool) -> Result<(), Status> {
        let deadline = tokio::time::Instant::now() + if new_agent { NEW_AGENT_TIMEOUT } else { Duration::ZERO };
        loop {
            let answer = match self.agent(node).await {
                Ok(mut agent) => answered(&format!("the agent of node {node}"), agent.restore_routes(emu_proto::RestoreRoutesRequest {}))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match answer {
                Err(e) if e.code() == tonic::Code::Unavailable && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(Status::new(e.code(), format!("node/{node}: putting back its routes: {}", e.message()))),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// What a removed node's agent held of each Fault (its entry of `status.appliedOn`, its
    /// finalizer) is let go, as Kubernetes' controllers clean up after a deleted node, so that no
    /// deletion waits for an agent that is gone for good.
    fn let_go(&self, node: &str) {
        for f in self.faults() {
            let Ok(key) = ObjectKey::of(&f) else { continue };
            for _ in 0..5 {
                let Some(current) = self.shared.store.get(&key) else { break };
                let mut released = current.clone();
                if let Some(s) = faults::with_applied(&current, node, None) {
                    released["status"] = s["status"].clone();
                }
                let released = faults::with_finalizer(&released, node, false).unwrap_or(released);
                if released == current {
                    break;
                }
                match self.shared.store.update(released) {
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => tracing::warn!(fault = %key.name, error = %e, "letting go of a removed node's hold"),
                    Ok(_) => {}
                }
                break;
            }
        }
        self.shared.changed();
    }
}

impl RelayService {
    /// The emulated host `host` (its index and nodes), checked as a host fault is: the cluster
    /// must have emulated hosts, know this one, and (to stop it) it must not be the control
    /// plane's.
    fn check_host(&self, host: &str, stopping: bool) -> Result<(usize, Vec<String>), Status> {
        let hosts = crate::host_faults::emulated_hosts(&self.shared);
        let names: Vec<String> = hosts.keys().cloned().collect();
        let spec = FaultSpec::HostStop { host: host.into(), kill: false, nodes: vec![] };
        let control = if stopping { self.shared.cluster.host.as_str() } else { "" };
        fault::check_hosts(&spec, &names, control).map_err(|e| {
            let e = e.trim_start_matches("spec.hostStop.host: ").to_string();
            if names.is_empty() || !names.iter().any(|n| n == host) {
                Status::not_found(e)
            } else {
                Status::failed_precondition(e)
            }
        })?;
        let index = emu_provider::hosts::host_index(host).ok_or_else(|| {
            Status::failed_precondition(format!("host {host:?} is not an emulated host of this machine (host-1, host-2, …)"))
        })?;
        Ok((index, hosts[host].nodes.clone()))
    }
}

/// The pod `namespace/name`, bound to a node: its uid and node.
fn pod_on_node(shared: &Shared, namespace: &str, name: &str) -> Result<(String, String), Status> {
    let key = ObjectKey { kind: "Pod".into(), namespace: namespace.into(), name: name.into() };
    let pod = shared.store.get_shared(&key).ok_or_else(|| Status::not_found(format!("pods \"{name}\" not found")))?;
    let pod: Pod = typed::decode(&pod).map_err(|e| Status::internal(format!("pod {name}: {e}")))?;
    let node = emu_logic::scheduler::bound_node(&pod);
    let node = node.ok_or_else(|| Status::failed_precondition(format!("pod {name} is not scheduled to a node yet")))?;
    Ok((pod.metadata.uid.clone().unwrap_or_default(), node.to_string()))
}

/// Where the agent of `node` serves: the endpoint its Node object names, else its socket on
/// this machine.
fn agent_endpoint(shared: &Shared, node: &str) -> String {
    let key = ObjectKey { kind: "Node".into(), namespace: String::new(), name: node.into() };
    let named = shared
        .store
        .get_shared(&key)
        .and_then(|n| typed::decode::<Node>(&n).ok()?.metadata.annotations?.remove(emu_proto::AGENT_ENDPOINT_ANNOTATION));
    named.unwrap_or_else(|| emu_proto::unix_endpoint(&emu_logic::cluster::Paths::new(&shared.cluster.name).agent_socket(node)))
}

async fn agent(shared: &Shared, node: &str) -> Result<NodeClient<Channel>, Status> {
    let endpoint = agent_endpoint(shared, node);
    dial(&endpoint, &format!("the agent of node {node}")).await
}

/// A pod's log from the agent of its node, for the REST API (`pods/log`) as for `emu logs`.
pub async fn pod_logs(shared: &Shared, mut r: LogsRequest) -> Result<Streaming<LogsChunk>, Status> {
    let (uid, node) = pod_on_node(shared, &r.namespace, &r.pod)?;
    r.pod_uid = uid;
    let mut agent = agent(shared, &node).await?;
    Ok(answered(&format!("the agent of node {node}"), agent.logs(r)).await?.into_inner())
}

/// A command in a pod's container through the agent of its node, for the REST API
/// (`pods/exec`, `pods/attach`) as for `emu exec`: `input` starts with the ExecStart.
pub async fn pod_exec(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    input: impl tonic::IntoStreamingRequest<Message = ExecInput>,
) -> Result<Streaming<ExecOutput>, Status> {
    let (_, node) = pod_on_node(shared, namespace, pod)?;
    let mut agent = agent(shared, &node).await?;
    Ok(answered(&format!("the agent of node {node}"), agent.exec(input)).await?.into_inner())
}

/// One forwarded connection to a port of pod `namespace/name` through the agent of its node,
/// for the REST API (`pods/portforward`) as for `emu port-forward`: `data` is what the client
/// sends (its end ends the client's side).
pub async fn pod_port_forward(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    port: u32,
    data: impl Stream<Item = Vec<u8>> + Send + 'static,
) -> Result<Streaming<PortForwardOutput>, Status> {
    let (uid, node) = pod_on_node(shared, namespace, pod)?;
    let start = emu_proto::PortForwardStart { namespace: namespace.into(), pod: pod.into(), pod_uid: uid, port };
    let first = PortForwardInput { input: Some(port_forward_input::Input::Start(start)) };
    let rest = data.map(|d| PortForwardInput { input: Some(port_forward_input::Input::Data(d)) });
    let mut agent = agent(shared, &node).await?;
    let input = futures::stream::once(async move { first }).chain(rest);
    Ok(answered(&format!("the agent of node {node}"), agent.port_forward(input)).await?.into_inner())
}

/// The uid and node of pod `namespace/name`, which an ExecStart names.
pub fn pod_placement(shared: &Shared, namespace: &str, name: &str) -> Result<(String, String), Status> {
    pod_on_node(shared, namespace, name)
}

/// `call`'s answer, or Unavailable once the agent `what` has not taken it up within
/// [`ANSWER_TIMEOUT`].
async fn answered<T>(what: &str, call: impl std::future::Future<Output = Result<T, Status>>) -> Result<T, Status> {
    tokio::time::timeout(ANSWER_TIMEOUT, call)
        .await
        .map_err(|_| Status::unavailable(format!("{what} did not answer within {} s: is the node stopped?", ANSWER_TIMEOUT.as_secs())))?
}

/// How the controller reaches the agents of other machines (`https://ADDRESS:PORT` endpoints):
/// the cluster CA, its client certificate as `kube-apiserver-kubelet-client`, and the machine's
/// underlay namespace. Set once at start when the cluster has a join listener.
pub static AGENT_TLS: std::sync::OnceLock<(std::sync::Arc<rustls::ClientConfig>, Option<std::path::PathBuf>)> = std::sync::OnceLock::new();

/// A channel to `endpoint`: a Unix socket on this machine, or an agent's TLS endpoint on another.
async fn agent_channel(endpoint: &str) -> anyhow::Result<Channel> {
    let Some(addr) = endpoint.strip_prefix("https://") else { return emu_proto::channel(endpoint).await };
    let (config, netns) =
        AGENT_TLS.get().ok_or_else(|| anyhow::anyhow!("this control plane has no client identity for other machines' agents"))?;
    let target = emu_proto::transport::TlsTarget { addr: addr.parse()?, config: config.clone(), netns: netns.clone() };
    Ok(emu_proto::transport::tls_channel(target).await?)
}

/// A client of service Node at `endpoint`.
async fn dial(endpoint: &str, what: &str) -> Result<NodeClient<Channel>, Status> {
    let unreachable = |e: String| Status::unavailable(format!("cannot reach {what} at {endpoint}: {e}"));
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, agent_channel(endpoint))
        .await
        .map_err(|_| unreachable("no answer".into()))?
        .map_err(|e| unreachable(format!("{e:#}")))?;
    Ok(NodeClient::new(channel).max_decoding_message_size(emu_proto::MAX_MESSAGE))
}

/// `first`, then what follows it on `inbound`, as a stream for the next hop; its end (the
/// caller's stdin or connection ending) is passed on.
fn forward<T: Send + 'static>(first: T, mut inbound: Streaming<T>) -> ReceiverStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        while let Ok(Some(m)) = inbound.message().await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

fn response(message: String) -> Response<NodeOpResponse> {
    Response::new(NodeOpResponse { message, agent_started: String::new() })
}

#[tonic::async_trait]
impl Relay for RelayService {
    type ExecStream = OutStream<ExecOutput>;
    type LogsStream = OutStream<LogsChunk>;
    type PortForwardStream = OutStream<PortForwardOutput>;

    async fn exec(&self, req: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = req.into_inner();
        let Some(ExecInput { input: Some(exec_input::Input::Start(mut start)) }) = inbound.message().await? else {
            return Err(Status::invalid_argument("exec: the first message must be ExecStart"));
        };
        let mut agent = if !start.pod.is_empty() {
            let (uid, node) = self.pod_on_node(&start.namespace, &start.pod)?;
            start.pod_uid = uid;
            start.node = node.clone();
            self.agent(&node).await?
        } else if !start.node.is_empty() {
            self.check_node(&start.node)?;
            self.agent(&start.node).await?
        } else if start.outside {
            self.outside().await?
        } else {
            return Err(Status::invalid_argument("exec: name a pod, a node, or the outside world"));
        };
        let what = if start.outside { "the outside world's daemon".to_string() } else { format!("the agent of node {}", start.node) };
        let first = ExecInput { input: Some(exec_input::Input::Start(start)) };
        let out = answered(&what, agent.exec(forward(first, inbound))).await?.into_inner();
        Ok(Response::new(self.until_stopping(out)))
    }

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let mut r = req.into_inner();
        let (uid, node) = self.pod_on_node(&r.namespace, &r.pod)?;
        r.pod_uid = uid;
        let mut agent = self.agent(&node).await?;
        let out = answered(&format!("the agent of node {node}"), agent.logs(r)).await?.into_inner();
        Ok(Response::new(self.until_stopping(out)))
    }

    async fn port_forward(&self, req: Request<Streaming<PortForwardInput>>) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut inbound = req.into_inner();
        let Some(PortForwardInput { input: Some(port_forward_input::Input::Start(mut start)) }) = inbound.message().await? else {
            return Err(Status::invalid_argument("port-forward: the first message must be PortForwardStart"));
        };
        let (uid, node) = self.pod_on_node(&start.namespace, &start.pod)?;
        start.pod_uid = uid;
        let first = PortForwardInput { input: Some(port_forward_input::Input::Start(start)) };
        let mut agent = self.agent(&node).await?;
        let out = answered(&format!("the agent of node {node}"), agent.port_forward(forward(first, inbound))).await?.into_inner();
        Ok(Response::new(self.until_stopping(out)))
    }

    async fn node_stop(&self, req: Request<NodeOpRequest>) -> Result<Response<NodeOpResponse>, Status> {
        let NodeOpRequest { node, kill, wait_ms } = req.into_inner();
        self.check_own_node(&node)?;
        if self.faults().iter().any(|f| f["spec"]["nodeStop"]["node"] == node.as_str()) {
            return Ok(response(format!("node/{node} is already stopped")));
        }
        let object = fault::to_object(&format!("node-stop-{node}"), &FaultSpec::NodeStop { node: node.clone(), kill });
        let request = ApplyRequest { objects: vec![Object { json: object.to_string() }], create_only: true, dry_run: false };
        self.api().apply(Request::new(request)).await?;
        let wait = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        let n = node.clone();
        self.on_provider(move |p| p.stop_node(&n, kill, wait)).await?;
        let what = if kill { "killed" } else { "frozen" };
        Ok(response(format!("node/{node} stopped: agent and pods {what}, links down")))
    }

    async fn node_start(&self, req: Request<NodeOpRequest>) -> Result<Response<NodeOpResponse>, Status> {
        let NodeOpRequest { node, wait_ms, .. } = req.into_inner();
        self.check_own_node(&node)?;
        let Some(stop) = self.faults().into_iter().find(|f| f["spec"]["nodeStop"]["node"] == node.as_str()) else {
            return Ok(response(format!("node/{node} is not stopped")));
        };
        let killed = stop["spec"]["nodeStop"]["kill"].as_bool() == Some(true);
        let wait = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        // A new agent's entries are newer than its start.
        let agent_started = if killed { faults::micro_time(std::time::SystemTime::now()) } else { String::new() };
        let n = node.clone();
        self.on_provider(move |p| p.start_node(&n, killed, wait)).await?;
        self.restore_routes(&node, killed).await?;
        self.delete_fault(object::name(&stop)).await?;
        Ok(Response::new(NodeOpResponse { message: format!("node/{node} started"), agent_started }))
    }

    async fn hosts(&self, _req: Request<HostsRequest>) -> Result<Response<HostsResponse>, Status> {
        let hosts = crate::host_faults::emulated_hosts(&self.shared)
            .into_iter()
            .map(|(name, h)| EmulatedHost { name, address: h.address, nodes: h.nodes })
            .collect();
        Ok(Response::new(HostsResponse { hosts, control_plane: self.shared.cluster.host.clone() }))
    }

    /// As a node stop, for every node of an emulated host at once: a host-stop Fault records it
    /// (with the nodes it froze), then the provider takes the host's LAN link down and freezes
    /// its nodes. Its agents are frozen: they catch up when it starts.
    async fn host_stop(&self, req: Request<HostOpRequest>) -> Result<Response<NodeOpResponse>, Status> {
        let HostOpRequest { host, kill, wait_ms } = req.into_inner();
        let (index, nodes) = self.check_host(&host, true)?;
        if crate::host_faults::host_stop(&self.shared, &host).is_some() {
            return Ok(response(format!("host/{host} is already stopped")));
        }
        let spec = FaultSpec::HostStop { host: host.clone(), kill, nodes: nodes.clone() };
        let object = fault::to_object(&format!("host-stop-{host}"), &spec);
        let request = ApplyRequest { objects: vec![Object { json: object.to_string() }], create_only: true, dry_run: false };
        self.api().apply(Request::new(request)).await?;
        let wait = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        let (cluster, frozen) = (self.shared.cluster.name.clone(), nodes.clone());
        let stopped = tokio::task::spawn_blocking(move || emu_provider::hosts::stop_host(&cluster, index, &frozen, kill, wait))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(e) = stopped {
            // Nothing half-stopped stays recorded as stopped: start what was done, then drop the record.
            let (cluster, thawed) = (self.shared.cluster.name.clone(), nodes.clone());
            let _ = tokio::task::spawn_blocking(move || emu_provider::hosts::start_host(&cluster, index, &thawed, kill, None)).await;
            self.delete_fault(&format!("host-stop-{host}")).await?;
            return Err(Status::internal(format!("stopping host/{host}: {e:#}")));
        }
        let what = if nodes.is_empty() { "no nodes".to_string() } else { format!("nodes {}", nodes.join(", ")) };
        Ok(response(format!("host/{host} stopped: LAN link down, {what} {}", if kill { "killed" } else { "frozen" })))
    }

    async fn host_start(&self, req: Request<HostOpRequest>) -> Result<Response<NodeOpResponse>, Status> {
        let HostOpRequest { host, wait_ms, .. } = req.into_inner();
        let (index, _) = self.check_host(&host, false)?;
        let Some(stop) = crate::host_faults::host_stop(&self.shared, &host) else {
            return Ok(response(format!("host/{host} is not stopped")));
        };
        // The nodes it stopped (one that joined meanwhile never was).
        let (nodes, killed) = match fault::parse(&stop, &[]) {
            Ok(FaultSpec::HostStop { nodes, kill, .. }) => (nodes, kill),
            _ => (Vec::new(), false),
        };
        let wait = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        // New agents' entries are newer than their start.
        let agent_started = if killed { faults::micro_time(std::time::SystemTime::now()) } else { String::new() };
        let (cluster, thawed) = (self.shared.cluster.name.clone(), nodes.clone());
        tokio::task::spawn_blocking(move || emu_provider::hosts::start_host(&cluster, index, &thawed, killed, wait))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("starting host/{host}: {e:#}")))?;
        self.delete_fault(object::name(&stop)).await?;
        Ok(Response::new(NodeOpResponse { message: format!("host/{host} started"), agent_started }))
    }

    async fn node_remove(&self, req: Request<NodeOpRequest>) -> Result<Response<NodeOpResponse>, Status> {
        let node = req.into_inner().node;
        let nodes = self.check_own_node(&node)?;
        if nodes.len() == 1 {
            return Err(Status::failed_precondition(format!(
                "node {node:?} is the cluster's only node: remove the cluster instead (`sudo emu down`)"
            )));
        }
        let n = node.clone();
        self.on_provider(move |p| p.kill_node(&n)).await?;
        // Its agent is gone for good: what it held is let go, and the faults that name it go.
        self.let_go(&node);
        for f in self.faults().iter().filter(|f| fault::parse(f, &nodes).is_ok_and(|spec| fault::names_node(&spec, &node))) {
            self.delete_fault(object::name(f)).await?;
        }
        // The controller then deletes its pods, as Kubernetes' pod garbage collector does, and
        // their ReplicaSets replace them.
        let r = ObjectRef { kind: "Node".into(), namespace: String::new(), name: node.clone() };
        match self.api().delete(Request::new(DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 })).await {
            // Never registered, or removed by hand already.
            Err(e) if e.code() != tonic::Code::NotFound => return Err(e),
            _ => {}
        }
        let n = node.clone();
        self.on_provider(move |p| p.remove_node(&n)).await?;
        Ok(response(format!("node/{node} removed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use emu_logic::cluster::ClusterConfig;
    use emu_provider::FakeProvider;
    use serde_json::json;

    fn relay(dir: &std::path::Path, nodes: &[&str]) -> (RelayService, Arc<FakeProvider>) {
        let store = Store::open(&dir.join("store.redb")).unwrap();
        let nodes: Vec<Value> =
            nodes.iter().enumerate().map(|(i, n)| json!({"name": n, "index": i, "internalIp": format!("172.18.0.{}", i + 2)})).collect();
        let config: ClusterConfig = serde_json::from_value(
            json!({"name": "t", "nodes": nodes, "fabricCidr": "172.18.0.0/16", "podCidr": "10.244.0.0/16", "nodePrefix": 24, "serviceCidr": "10.96.0.0/12"}),
        )
        .unwrap();
        let provider = Arc::new(FakeProvider::new(config.clone()));
        (RelayService::new(Shared::new(store, config), provider.clone()), provider)
    }

    fn op(node: &str, kill: bool) -> Request<NodeOpRequest> {
        Request::new(NodeOpRequest { node: node.into(), kill, wait_ms: 1500 })
    }

    fn fault(relay: &RelayService, name: &str) -> Option<Value> {
        relay.shared.store.get(&ObjectKey { kind: fault::KIND.into(), namespace: String::new(), name: name.into() })
    }

    #[tokio::test]
    async fn a_node_is_stopped_by_its_provider_and_recorded_in_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, provider) = relay(dir.path(), &["node-1", "node-2"]);
        let r = relay.node_stop(op("node-2", false)).await.unwrap().into_inner();
        assert_eq!(r.message, "node/node-2 stopped: agent and pods frozen, links down");
        assert_eq!(fault(&relay, "node-stop-node-2").unwrap()["spec"]["nodeStop"], json!({"node": "node-2", "kill": false}));
        assert_eq!(provider.calls(), ["stop_node node-2 kill=false wait=Some(1.5s)"]);
        // Once only.
        assert_eq!(relay.node_stop(op("node-2", true)).await.unwrap().into_inner().message, "node/node-2 is already stopped");
        assert_eq!(provider.calls().len(), 1);
        let e = relay.node_stop(op("node-9", false)).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (tonic::Code::NotFound, "node \"node-9\" not found in the cluster (nodes: node-1, node-2)"));
        // A node that is not stopped is not started.
        assert_eq!(relay.node_start(op("node-1", false)).await.unwrap().into_inner().message, "node/node-1 is not stopped");
        assert_eq!(provider.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_removed_node_lets_go_of_its_faults() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, provider) = relay(dir.path(), &["node-1", "node-2"]);
        let held = |name: &str, spec: FaultSpec, holders: &[&str]| {
            let spec = fault::to_object(name, &spec)["spec"].clone();
            let finalizers: Vec<String> = holders.iter().map(|n| faults::finalizer(n)).collect();
            let applied: Vec<Value> = holders.iter().map(|n| json!({"node": n, "since": "x", "observedGeneration": 1})).collect();
            relay
                .shared
                .store
                .create(json!({"apiVersion": fault::API_VERSION, "kind": fault::KIND, "metadata": {"name": name, "finalizers": finalizers},
                    "spec": spec, "status": {"appliedOn": applied}}))
                .unwrap();
        };
        let (one, two) = (vec!["node-1".to_string()], vec!["node-2".to_string()]);
        held("partition-1", FaultSpec::Partition { a: one, b: two, one_way: false }, &["node-1", "node-2"]);
        held("link-down-1", FaultSpec::LinkDown { node: "node-1".into() }, &["node-1", "node-2"]);
        let r = relay.node_remove(op("node-2", false)).await.unwrap().into_inner();
        assert_eq!(r.message, "node/node-2 removed");
        assert_eq!(provider.calls(), ["kill_node node-2", "remove_node node-2"]);
        // The fault naming it is being deleted, held by node-1's agent only; the other one is
        // held by node-1 alone.
        for name in ["partition-1", "link-down-1"] {
            let f = fault(&relay, name).unwrap();
            assert_eq!(f["metadata"]["finalizers"], json!([faults::finalizer("node-1")]), "{f}");
            assert_eq!(f["status"]["appliedOn"].as_array().unwrap().len(), 1, "{f}");
            assert_eq!(f["metadata"]["deletionTimestamp"].is_string(), name == "partition-1", "{f}");
        }
        // The last node stays.
        let e = relay.node_remove(op("node-1", false)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("the cluster's only node"), "{}", e.message());
    }

    #[tokio::test]
    async fn host_operations_need_emulated_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, provider) = relay(dir.path(), &["node-1", "node-2"]);
        let op = |host: &str, kill: bool| Request::new(HostOpRequest { host: host.into(), kill, wait_ms: 0 });
        let e = relay.host_stop(op("host-2", false)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().starts_with("this cluster has no emulated hosts"), "{}", e.message());
        assert_eq!(relay.host_stop(op("host-2", true)).await.unwrap_err().code(), tonic::Code::NotFound);
        assert!(relay.host_start(op("host-2", false)).await.is_err());
        assert!(relay.hosts(Request::new(HostsRequest {})).await.unwrap().into_inner().hosts.is_empty());
        assert!(provider.calls().is_empty());
        assert!(fault(&relay, "host-stop-host-2").is_none(), "nothing recorded");
    }
}
