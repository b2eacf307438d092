//! The node agent: registers its node, keeps routes to the other nodes' pod CIDRs, and runs the
//! pods bound to its node. Level-triggered: on every change and every tick it compares the pods the
//! controller wants here with the sandboxes that exist and converges, so a restarted agent simply
//! re-adopts the running shims (their `shim.pid` files) without restarting anything.

use crate::sandbox;
use crate::trigger::Backoff;
use anyhow::{bail, Context};
use emu_api::typed::k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, Secret};
use emu_api::typed::{self, Service};
use emu_api::{naming, object};
use emu_host::{cgroup, net};
use emu_logic::cluster::{ClusterConfig, NodeConfig, Paths, HOST_LABEL, UNDERLAY_ANNOTATION};
use emu_logic::configdata::ConfigObject;
use emu_logic::podspec::spec;
use emu_logic::{configdata, identity, ipam, volumes};
use emu_proto::api_client::ApiClient;
use emu_proto::reflector::{self, Snapshot};
use emu_proto::transport::{TlsTarget, Upstream};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug)]
struct Args {
    cluster: String,
    node: String,
}

/// Entry point of `emu-nodeagent agent ...`.
pub fn main(args: Vec<String>) -> anyhow::Result<()> {
    let about = "The node agent of one emu node (started by `emu up` inside the node's network namespace).";
    let [cluster, node] = emu_proto::daemon::flags("emu-nodeagent agent", about, ["cluster", "node"], args);
    let args = Args { cluster, node };
    emu_proto::daemon::init_logging("info");
    emu_proto::daemon::limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

struct Agent {
    cluster: ClusterConfig,
    node: NodeConfig,
    paths: Paths,
    node_ns: PathBuf,
    pod_cidr: ipam::Ipv4Cidr,
    gateway: Ipv4Addr,
    shim_exe: PathBuf,
    pods_cgroup: Option<PathBuf>,
    client: ApiClient<Channel>,
    /// Where the controller's API is: its Unix socket, or on a joined machine the control
    /// plane's join listener (mutual TLS with the node's certificate).
    upstream: Upstream,
    /// The API socket pods' programs get ([`crate::api_proxy`] on a joined machine).
    api_socket: PathBuf,
    readiness: Arc<crate::readiness::Readiness>,
    /// Service-account tokens per pod uid (VOL-8), renewed at 80% of their lifetime.
    tokens: std::sync::Mutex<HashMap<String, PodToken>>,
    /// The node's `status.allocatable.memory` in bytes, which bounds the pods' memory-backed
    /// volumes (None: the Node reports none; the kernel's default size then applies).
    allocatable_memory: Option<u64>,
}

/// A pod's service-account token and when the API server issued it.
#[derive(Clone)]
struct PodToken {
    token: String,
    issued_at: i64,
    ttl: i64,
}

async fn run(args: Args) -> anyhow::Result<()> {
    emu_proto::daemon::spawn_heap_trimmer();
    let paths = Paths::new(&args.cluster);
    let cluster: ClusterConfig =
        serde_json::from_slice(&std::fs::read(paths.config()).with_context(|| format!("reading {}", paths.config().display()))?)?;
    let node = cluster.node(&args.node).cloned().with_context(|| format!("node {:?} is not in cluster {:?}", args.node, args.cluster))?;
    std::fs::create_dir_all(paths.pods_dir(&node.name))?;
    std::fs::write(paths.agent_pid(&node.name), std::process::id().to_string())?;

    let upstream = upstream(&cluster, &paths, &node.name)?;
    let mut client = connect(&upstream).await?;
    // Exec, logs, port-forward and routes for the controller, at the endpoint the Node names.
    let socket = paths.agent_socket(&node.name);
    let place = crate::node_service::Place::Node {
        name: node.name.clone(),
        netns: net::netns_path(&naming::netns_node(&cluster.name, &node.name)),
        service_cidr: cluster.service_cidr.clone(),
        client: Box::new(client.clone()),
    };
    let service = crate::node_service::NodeService::new(&cluster.name, place)?;
    let endpoint = match &upstream {
        Upstream::Unix(_) => {
            tokio::spawn(crate::node_service::serve(service, socket.clone()));
            emu_proto::unix_endpoint(&socket)
        }
        // On a machine that joined, the controller comes over the underlay, with TLS.
        Upstream::Tls(target) => {
            let ip: Ipv4Addr =
                cluster.advertise_address.parse().with_context(|| format!("advertise address {:?}", cluster.advertise_address))?;
            let listener =
                emu_proto::transport::bind_tcp((ip, 0).into(), target.netns.as_deref()).await.context("the agent's TLS endpoint")?;
            let port = listener.local_addr()?.port();
            let read = |p: PathBuf| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()));
            let tls = emu_proto::transport::server_config(
                &read(paths.agent_cert(&node.name))?,
                &read(paths.agent_key(&node.name))?,
                &read(paths.ca_cert())?,
                true,
            )?;
            tokio::spawn(crate::node_service::serve_tls(service, listener, tls));
            format!("https://{ip}:{port}")
        }
    };
    // What pods' programs reach the API through: the controller's socket, or on a joined
    // machine this node's read-only proxy.
    let api_socket = match &upstream {
        Upstream::Unix(socket) => socket.clone(),
        Upstream::Tls(_) => {
            let socket = paths.node_dir(&node.name).join("api.sock");
            let (client, at) = (client.clone(), socket.clone());
            tokio::spawn(async move {
                if let Err(e) = crate::api_proxy::serve(client, &at).await {
                    tracing::error!(socket = %at.display(), error = %format!("{e:#}"), "serving the pods' API socket failed");
                }
            });
            socket
        }
    };
    let mut me = node_object(&node);
    me["metadata"]["annotations"] = json!({emu_proto::AGENT_ENDPOINT_ANNOTATION: endpoint});
    if !cluster.host.is_empty() {
        me["metadata"]["labels"][HOST_LABEL] = json!(cluster.host);
    }
    if !cluster.advertise_address.is_empty() {
        me["metadata"]["annotations"][UNDERLAY_ANNOTATION] = json!(cluster.advertise_address);
    }
    let registered = client
        .register_node(emu_proto::RegisterNodeRequest { node: Some(emu_proto::Object { json: me.to_string() }) })
        .await
        .context("registering the node")?
        .into_inner();
    let registered: Node = typed::decode(&serde_json::from_str(&registered.node.context("register_node returned no node")?.json)?)?;
    let allocatable_memory = registered
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref()?.get("memory"))
        .and_then(|q| volumes::quantity_bytes(&q.0))
        .filter(|b| *b > 0);
    let pod_cidr: ipam::Ipv4Cidr =
        registered.spec.and_then(|s| s.pod_cidr).context("node has no podCIDR")?.parse().map_err(|e| anyhow::anyhow!("podCIDR: {e}"))?;
    let gateway = ipam::gateway(pod_cidr);
    let node_ns = net::netns_path(&naming::netns_node(&cluster.name, &node.name));
    net::setup_node(&node_ns, gateway, pod_cidr.prefix).await.context("setting up the node's bridge cni0")?;
    let edge = node.edge_script();
    if !edge.is_empty() {
        use emu_host::nft::NftRunner as _;
        tokio::task::spawn_blocking(move || emu_host::nft::RealNft::new().apply(&edge))
            .await?
            .context("setting up the node's edge filter")?;
    }
    let service_cidr: ipam::Ipv4Cidr = cluster.service_cidr.parse().map_err(|e| anyhow::anyhow!("service CIDR: {e}"))?;
    net::route_service_cidr(&node_ns, service_cidr.addr, service_cidr.prefix).await.context("routing the service CIDR")?;
    let pods_cgroup = cgroup::cluster_dir(&cluster.name).ok().map(|d| cgroup::node_dir(&d, &node.name).join("pods"));
    let agent = Arc::new(Agent {
        shim_exe: std::env::current_exe()?,
        cluster,
        node,
        paths,
        node_ns,
        pod_cidr,
        gateway,
        pods_cgroup,
        client,
        upstream,
        api_socket,
        readiness: Arc::default(),
        tokens: std::sync::Mutex::default(),
        allocatable_memory,
    });
    tracing::info!(node = %agent.node.name, pod_cidr = %agent.pod_cidr, "node agent ready");

    tokio::spawn(heartbeats(agent.clone()));
    tokio::spawn(crate::faults::run(agent.cluster.clone(), agent.node.clone(), agent.upstream.clone()));
    let (node_tx, node_rx) = tokio::sync::watch::channel(Snapshot::default());
    tokio::spawn(reflector::run_projected(agent.upstream.clone(), vec!["Node".into()], String::new(), node_tx, crate::routes::decode_node));
    tokio::spawn(crate::overlay::sync_peers(agent.cluster.clone(), node_rx.clone()));
    tokio::spawn(crate::routes::sync_routes(agent.node.name.clone(), Arc::new(net::RealNet::new(&agent.node_ns)), node_rx));
    let (pod_tx, pod_rx) = tokio::sync::watch::channel(Snapshot::default());
    // Services travel in the same stream as this node's pods, so a pod always arrives after
    // every Service created before it: its containers get their variables (ENV-7).
    // Secrets and ConfigMaps too: containers' variables come from them (envFrom, valueFrom).
    // Each object is decoded once, when it arrives.
    let pod_kinds = ["Pod", "Service", "Secret", "ConfigMap"].map(String::from).to_vec();
    tokio::spawn(reflector::run_projected(agent.upstream.clone(), pod_kinds, agent.node.name.clone(), pod_tx, Watched::decode));
    // The service proxy sees every Service and EndpointSlice of the cluster.
    let (proxy_tx, proxy_rx) = tokio::sync::watch::channel(Snapshot::default());
    tokio::spawn(reflector::run(agent.upstream.clone(), vec!["Service".into(), "EndpointSlice".into()], String::new(), proxy_tx));
    let proxy_cfg = crate::service_proxy::ProxyConfig {
        node_name: agent.node.name.clone(),
        cluster_pod_cidr: agent.cluster.pod_cidr.parse().map_err(|e| anyhow::anyhow!("pod CIDR: {e}"))?,
        service_cidr,
        node_ips: [&agent.node.internal_ip, &agent.node.external_ip].iter().filter_map(|ip| ip.parse().ok()).collect(),
    };
    // The agent lives in its node's network namespace: a plain `nft` programs that namespace.
    tokio::spawn(crate::service_proxy::run(proxy_cfg, crate::service_proxy::ProxyHost::real(), proxy_rx));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = sync_pods(agent.clone(), pod_rx) => r,
        _ = term.recv() => {
            // Pods outlive the agent (their shims are separate processes): just leave.
            tracing::info!("agent stopping; pods keep running");
            Ok(())
        }
    }
}

async fn connect(upstream: &Upstream) -> anyhow::Result<ApiClient<Channel>> {
    let mut last = None;
    for _ in 0..300 {
        match upstream.api().await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cannot reach the controller at {}: {:?}", upstream.describe(), last)
}

/// Where this node's agent finds the API: the controller's Unix socket, or, on a machine that
/// joined, the control plane's join listener with the node's certificate and key (from `emu
/// join`), dialled from the machine's underlay namespace.
fn upstream(cluster: &ClusterConfig, paths: &Paths, node: &str) -> anyhow::Result<Upstream> {
    if cluster.control_plane.is_empty() {
        return Ok(Upstream::Unix(paths.socket()));
    }
    let addr = cluster.control_plane.parse().with_context(|| format!("control plane address {:?}", cluster.control_plane))?;
    let read = |p: PathBuf| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()));
    let (ca, cert, key) = (read(paths.ca_cert())?, read(paths.agent_cert(node))?, read(paths.agent_key(node))?);
    let config = emu_proto::transport::client_config(&ca, Some((&cert, &key)))?;
    let underlay = paths.underlay_netns();
    Ok(Upstream::Tls(TlsTarget { addr, config, netns: underlay.exists().then_some(underlay) }))
}

fn node_object(node: &NodeConfig) -> Value {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let resources = json!({"cpu": cpus, "memory": "2Gi", "pods": "110", "ephemeral-storage": "10Gi"});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "addresses": node_addresses(node),
            "capacity": resources, "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": format!("emu://{}", env!("CARGO_PKG_VERSION")),
                "kernelVersion": kernel, "kubeProxyVersion": emu_logic::cluster::KUBERNETES_VERSION,
                "kubeletVersion": emu_logic::cluster::KUBERNETES_VERSION, "machineID": "", "operatingSystem": "linux",
                "osImage": os_image, "systemUUID": ""},
        },
    })
}

/// The node's addresses as a cloud node lists them; the ExternalIP last, as in the tutorial's
/// `kubectl get nodes -o yaml | grep ExternalIP -C 1` (followed by `allocatable:`).
fn node_addresses(node: &NodeConfig) -> Value {
    let mut addresses = vec![json!({"type": "InternalIP", "address": node.internal_ip}), json!({"type": "Hostname", "address": node.name})];
    if !node.external_ip.is_empty() {
        addresses.push(json!({"type": "ExternalIP", "address": node.external_ip}));
    }
    json!(addresses)
}

async fn heartbeats(agent: Arc<Agent>) {
    let mut client = agent.client.clone();
    loop {
        if let Err(e) = client.heartbeat(emu_proto::HeartbeatRequest { node_name: agent.node.name.clone() }).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How long a deleted running pod keeps serving before its containers are stopped, so that the
/// endpoints controller and every node's proxy can drop it first (300 ms was too short on a
/// loaded machine: a request then reached a closed port).
const ENDPOINT_DRAIN: Duration = Duration::from_secs(1);

/// What the agent knows about one local sandbox between passes.
#[derive(Default)]
struct Local {
    /// Pods whose sandbox is being created or torn down by a task right now.
    busy: HashSet<String>,
    /// The last status sent per pod uid, so unchanged statuses are not re-sent.
    sent: HashMap<String, Value>,
    /// Pods whose readiness prober task runs.
    probing: HashSet<String>,
    /// The volume files last written per pod uid.
    volumes: HashMap<String, Vec<(String, volumes::Payload)>>,
    /// The last event recorded per (pod uid, reason, message), to count repeats as kubelet's
    /// event recorder does instead of making a new Event each time.
    events: HashMap<(String, String, String), Recorded>,
    /// Each pod's shim, once its identity was checked, and when.
    shims: HashMap<String, (i32, std::time::Instant)>,
    /// What each pod's last status reported (or found unchanged) was made from.
    reported: HashMap<String, StatusInputs>,
    /// Pods whose volumes could not be written, and when to try again.
    mount_retries: HashMap<String, MountRetry>,
}

/// A failed write of a pod's volumes: what was to be written (a digest) and when to try again.
/// Kubelet's volume manager backs a failed mount off from 500 ms, doubling, to 2 min 2 s;
/// writing megabytes into a full tmpfs every pass (100 ms) only fills the log. Other contents
/// (the ConfigMap shrank) are tried at once.
struct MountRetry {
    digest: u64,
    at: tokio::time::Instant,
    backoff: Backoff,
}

const MOUNT_RETRY: Backoff = Backoff::new(Duration::from_millis(500), EVENT_BACKOFF_MAX);

/// What a pod's status is computed from, cheaply compared: the pod as stored, its sandbox's state
/// file (replaced whole on every change) and its containers' readiness verdicts. The same inputs
/// make the same status, so the 100 ms pass skips reading and computing it: at 200 pods per
/// node each agent spent about 13 % of a core on that, with nothing changing.
#[derive(Debug, PartialEq)]
struct StatusInputs {
    resource_version: String,
    /// (device, inode, modification time in ns, size) of `state.json`.
    state_file: Option<(u64, u64, i128, u64)>,
    ready: Vec<bool>,
}

impl StatusInputs {
    fn of(agent: &Agent, pod: &Pod, pod_dir: &std::path::Path) -> StatusInputs {
        use std::os::unix::fs::MetadataExt;
        let state_file = std::fs::metadata(sandbox::state_path(pod_dir))
            .ok()
            .map(|m| (m.dev(), m.ino(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()), m.size()));
        StatusInputs {
            resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
            state_file,
            ready: spec(pod).containers.iter().map(|c| agent.readiness.container_ready(pod, &c.name)).collect(),
        }
    }
}

/// How long a shim's identity, once checked (its pid file and command line), is trusted while its
/// process lives: a pass then reads one file of /proc per pod rather than three files.
const SHIM_RECHECK: Duration = Duration::from_secs(5);

/// The pod's running shim, as [`sandbox::running_shim`] finds it, remembered for
/// [`SHIM_RECHECK`].
fn running_shim(local: &std::sync::Mutex<Local>, uid: &str, pod_dir: &std::path::Path) -> Option<i32> {
    let known = local.lock().ok().and_then(|l| l.shims.get(uid).copied());
    if let Some((pid, checked)) = known {
        if checked.elapsed() < SHIM_RECHECK && sandbox::process_alive(pid) {
            return Some(pid);
        }
    }
    let pid = sandbox::running_shim(pod_dir);
    if let Ok(mut l) = local.lock() {
        match pid {
            Some(pid) => l.shims.insert(uid.to_string(), (pid, std::time::Instant::now())),
            None => l.shims.remove(uid),
        };
    }
    pid
}

/// Kubelet's message when it makes a pod's sandbox again (its `SandboxChanged` event).
const SANDBOX_CHANGED: &str = "Pod sandbox changed, it will be killed and re-created.";

/// An Event the agent wrote, and when it may be counted again.
struct Recorded {
    event: Value,
    next: tokio::time::Instant,
    backoff: Duration,
}

/// How often a repeating failure (a pod retried every second while its Secret is missing) adds
/// to its Event's count: doubling from 1 s to kubelet's volume retry cap of 2 min 2 s.
const EVENT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const EVENT_BACKOFF_MAX: Duration = Duration::from_secs(122);

/// Records an Event about `pod` with kubelet as its source: a new one, or a repeat counted on
/// the one recorded before. Returns false when the repeat came too soon to be counted (callers
/// log a failure only when its Event was due, which rate-limits the log as the Event is).
async fn record_event(agent: &Agent, local: &std::sync::Mutex<Local>, pod: &Pod, event_type: &str, reason: &str, message: &str) -> bool {
    let key = (uid(pod).to_string(), reason.to_string(), message.to_string());
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let stamp = emu_api::time::rfc3339(wall.as_secs() as i64);
    let now = tokio::time::Instant::now();
    let (event, backoff) = {
        let Ok(l) = local.lock() else { return false };
        match l.events.get(&key) {
            Some(r) if now < r.next => return false,
            Some(r) => {
                let mut e = r.event.clone();
                emu_logic::events::repeat(&mut e, &stamp);
                (e, (r.backoff * 2).min(EVENT_BACKOFF_MAX))
            }
            // The event's reference to the pod is read from JSON (emu_logic::events).
            None => (
                emu_logic::events::new_event(
                    &typed::encode(pod),
                    event_type,
                    reason,
                    message,
                    "kubelet",
                    &agent.node.name,
                    &stamp,
                    wall.as_nanos(),
                ),
                EVENT_BACKOFF_INITIAL,
            ),
        }
    };
    let mut client = agent.client.clone();
    let request =
        emu_proto::ApplyRequest { objects: vec![emu_proto::Object { json: event.to_string() }], create_only: false, dry_run: false };
    match client.apply(request).await {
        Ok(_) => {
            if let Ok(mut l) = local.lock() {
                l.events.insert(key, Recorded { event, next: now + backoff, backoff });
            }
        }
        Err(e) => tracing::debug!(error = %e, reason, "recording an event failed"),
    }
    true
}

/// An object of the pod loop's watch, decoded once when it arrives (the reflector's projection),
/// not at every pass.
enum Watched {
    Pod(Arc<LocalPod>),
    Service(Box<Service>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    /// A pod that does not decode (by its uid): left alone, its sandbox neither started nor
    /// removed (admission decoded every stored pod, so none should be).
    UndecodablePod(String),
    /// Another object that does not decode: left out.
    Undecodable,
}

/// A pod bound to this node.
struct LocalPod {
    pod: Pod,
    /// The `status` as stored, in JSON: [`report`] sends a status only when it differs from
    /// this, and the status the agent writes keeps Go's nulls (`lastProbeTime: null`) that the
    /// typed encoding drops, so the typed status would never compare equal.
    status: Value,
}

impl Watched {
    fn decode(mut v: Value) -> Watched {
        let kind = object::kind(&v).to_string();
        let decoded = match kind.as_str() {
            "Pod" => typed::decode::<Pod>(&v).map(|pod| Watched::Pod(Arc::new(LocalPod { pod, status: v["status"].take() }))),
            "Service" => typed::decode(&v).map(Watched::Service),
            "ConfigMap" => typed::decode(&v).map(Watched::ConfigMap),
            "Secret" => typed::decode(&v).map(Watched::Secret),
            _ => return Watched::Undecodable,
        };
        decoded.unwrap_or_else(|e| {
            tracing::warn!(kind, name = %object::name(&v), error = %e, "an object of the pod watch does not decode; left out");
            match kind.as_str() {
                "Pod" => Watched::UndecodablePod(object::uid(&v).to_string()),
                _ => Watched::Undecodable,
            }
        })
    }
}

type Objects = reflector::Cache<Watched>;

/// Finds the Secrets and ConfigMaps of namespace `ns` among `objects`.
fn config_lookup<'a>(objects: &'a Objects, ns: &'a str) -> impl Fn(&str, &str) -> Option<ConfigObject<'a>> + 'a {
    move |kind: &str, name: &str| match objects.get(&(kind.to_string(), ns.to_string(), name.to_string()))?.as_ref() {
        Watched::ConfigMap(c) => Some(ConfigObject::ConfigMap(c)),
        Watched::Secret(s) => Some(ConfigObject::Secret(s)),
        _ => None,
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn name(pod: &Pod) -> &str {
    typed::key(&pod.metadata).1
}

async fn sync_pods(agent: Arc<Agent>, mut rx: tokio::sync::watch::Receiver<Snapshot<Watched>>) -> anyhow::Result<()> {
    let local = Arc::new(std::sync::Mutex::new(Local::default()));
    let mut services = ServicesSeen::default();
    let mut last_inputs: Option<u64> = None;
    let mut woken_by_change = false;
    loop {
        let snap = rx.borrow_and_update().clone();
        if snap.synced {
            let inputs = pod_pass_inputs(&snap.objects);
            let objects_changed = last_inputs != Some(inputs);
            last_inputs = Some(inputs);
            let changed = services.update(&snap);
            // A change of objects no pod here uses (another node's pods' ConfigMaps, a Secret
            // nobody mounts) leaves the pass nothing to do: the next tick runs it anyway.
            if objects_changed || changed || !woken_by_change {
                reconcile(&agent, &snap, &local, &services.services, changed, objects_changed).await;
            }
        }
        woken_by_change = false;
        tokio::select! {
            r = rx.changed() => {
                if r.is_err() { bail!("pod watch ended") }
                woken_by_change = true;
            }
            // A readiness probe's verdict changed: report it now, not at the next tick.
            _ = agent.readiness.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// A digest of what the pod pass reads of the snapshot besides the Services: this node's pods
/// and the Secrets and ConfigMaps they name (volumes, variables, image pulls), each by its key and
/// resourceVersion. Every ConfigMap and Secret of the cluster reaches every agent; most
/// concern no pod here, and their changes need no pass over the pods.
fn pod_pass_inputs(objects: &Objects) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    let mut referenced: Vec<(&str, &str, &str)> = Vec::new();
    for (key, watched) in objects {
        match watched.as_ref() {
            Watched::Pod(p) => {
                key.hash(&mut digest);
                p.pod.metadata.resource_version.hash(&mut digest);
                let namespace = typed::key(&p.pod.metadata).0;
                referenced.extend(emu_logic::podspec::referenced_objects(&p.pod).into_iter().map(|(kind, name)| (kind, namespace, name)));
            }
            Watched::UndecodablePod(uid) => {
                key.hash(&mut digest);
                uid.hash(&mut digest);
            }
            _ => {}
        }
    }
    referenced.sort_unstable();
    referenced.dedup();
    for (kind, namespace, name) in referenced {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        let version = objects.get(&key).map(|w| match w.as_ref() {
            Watched::ConfigMap(c) => c.metadata.resource_version.as_deref(),
            Watched::Secret(s) => s.metadata.resource_version.as_deref(),
            _ => None,
        });
        (key, version).hash(&mut digest);
    }
    digest.finish()
}

/// The Services of the latest snapshot, recomputed only when the snapshot changes (the pod loop
/// also runs on a 100 ms tick, which must stay cheap with thousands of Services).
#[derive(Default)]
struct ServicesSeen {
    snapshot: Option<Arc<Objects>>,
    /// (namespace, name, resourceVersion) of each Service, to tell real changes apart.
    versions: Vec<(String, String, String)>,
    services: Arc<Vec<Service>>,
}

impl ServicesSeen {
    /// Takes in `snap`; true when its Services differ from the previous snapshot's.
    fn update(&mut self, snap: &Snapshot<Watched>) -> bool {
        if self.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snap.objects)) {
            return false;
        }
        self.snapshot = Some(snap.objects.clone());
        let services: Vec<&Service> = snap
            .objects
            .values()
            .filter_map(|v| match v.as_ref() {
                Watched::Service(s) => Some(&**s),
                _ => None,
            })
            .collect();
        let versions: Vec<(String, String, String)> = services
            .iter()
            .map(|s| {
                let (ns, name) = typed::key(&s.metadata);
                (ns.into(), name.into(), s.metadata.resource_version.clone().unwrap_or_default())
            })
            .collect();
        let changed = versions != self.versions;
        self.versions = versions;
        if changed {
            self.services = Arc::new(services.into_iter().cloned().collect());
        }
        changed
    }
}

/// Brings a running pod's volumes up to date with its Secrets and ConfigMaps (VOL-5). What was
/// written last is remembered, so an unchanged pod costs a comparison; after an agent restart
/// the files themselves are compared once. An object that is gone leaves the files as they are,
/// as in kubelet.
async fn sync_volumes(agent: &Agent, local: &std::sync::Mutex<Local>, pod: &Pod, shim_pid: i32, objects: &Objects) {
    if !spec(pod).volumes.iter().flatten().any(volumes::has_files) {
        return;
    }
    let token = pod_token(agent, pod).await;
    let Ok(payloads) = volume_payloads(pod, objects, token.as_deref()) else { return };
    if let Ok(mut l) = local.lock() {
        if l.volumes.get(uid(pod)) == Some(&payloads) {
            // What failed to replace it is no longer wanted (the object changed back).
            l.mount_retries.remove(uid(pod));
            return;
        }
    }
    fill_volumes(agent, local, pod, shim_pid, payloads).await;
}

/// Writes the pod's volumes (the shim starts the containers once each has its files); returns
/// whether they now hold `payloads`. A failure is a `FailedMount` Warning Event on the pod, as
/// kubelet reports it, and a log line when the Event is due; the same contents are tried again
/// after a back-off ([`MountRetry`]).
async fn fill_volumes(
    agent: &Agent,
    local: &std::sync::Mutex<Local>,
    pod: &Pod,
    shim_pid: i32,
    payloads: Vec<(String, volumes::Payload)>,
) -> bool {
    let uid = uid(pod).to_string();
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        payloads.hash(&mut h);
        h.finish()
    };
    let now = tokio::time::Instant::now();
    // The back-off of the same contents' failures; other contents start a new one.
    let failed_before =
        local.lock().ok().and_then(|l| l.mount_retries.get(&uid).filter(|r| r.digest == digest).map(|r| (r.at, r.backoff.clone())));
    if failed_before.as_ref().is_some_and(|(at, _)| now < *at) {
        return false;
    }
    let pod_dir = agent.paths.pod_dir(&agent.node.name, &uid);
    let size = volume_size(agent, pod);
    let written = tokio::task::spawn_blocking(move || {
        let result = write_volumes(shim_pid, &pod_dir, &payloads, size);
        (result, payloads)
    })
    .await;
    let (result, payloads) = match written {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(pod = %name(pod), error = %e, "writing volumes");
            return false;
        }
    };
    match result {
        Ok(changed) => {
            if changed > 0 {
                tracing::info!(pod = %name(pod), volumes = changed, "volumes updated");
            }
            if let Ok(mut l) = local.lock() {
                l.volumes.insert(uid.clone(), payloads);
                l.mount_retries.remove(&uid);
            }
            true
        }
        Err(e) => {
            let mut backoff = failed_before.map_or(MOUNT_RETRY, |(_, b)| b);
            let delay = backoff.next_delay();
            if let Ok(mut l) = local.lock() {
                l.mount_retries.insert(uid.clone(), MountRetry { digest, at: now + delay, backoff });
            }
            let message = e.to_string();
            if record_event(agent, local, pod, "Warning", "FailedMount", &message).await {
                tracing::warn!(pod = %name(pod), retry_in = ?delay, error = %message, "setting up volumes");
            }
            false
        }
    }
}

/// Whether the pod's volumes failed to be written and their retry is not due yet.
fn mount_retry_pending(local: &std::sync::Mutex<Local>, uid: &str) -> bool {
    let now = tokio::time::Instant::now();
    local.lock().map(|l| l.mount_retries.get(uid).is_some_and(|r| now < r.at)).unwrap_or(false)
}

/// The size of the pod's volume tmpfs: kubelet's rule for memory-backed volumes, from the pod's
/// memory limit or the node's allocatable memory. None when the node reports no memory.
fn volume_size(agent: &Agent, pod: &Pod) -> Option<volumes::VolumeSize> {
    agent.allocatable_memory.map(|node| volumes::memory_volume_size(pod, node, None))
}

async fn reconcile(
    agent: &Arc<Agent>,
    snap: &Snapshot<Watched>,
    local: &Arc<std::sync::Mutex<Local>>,
    services: &Arc<Vec<Service>>,
    services_changed: bool,
    objects_changed: bool,
) {
    let wanted: HashMap<String, Arc<LocalPod>> = snap
        .objects
        .values()
        .filter_map(|v| match v.as_ref() {
            Watched::Pod(p) => Some((uid(&p.pod).to_string(), p.clone())),
            _ => None,
        })
        .collect();
    let undecodable: HashSet<&str> = snap
        .objects
        .values()
        .filter_map(|v| match v.as_ref() {
            Watched::UndecodablePod(uid) => Some(uid.as_str()),
            _ => None,
        })
        .collect();
    // Sandboxes on disk that no pod wants any more (deleted while the agent was away).
    if let Ok(entries) = std::fs::read_dir(agent.paths.pods_dir(&agent.node.name)) {
        for e in entries.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !wanted.contains_key(&uid) && !undecodable.contains(uid.as_str()) && claim(local, &uid) {
                let (agent, local) = (agent.clone(), local.clone());
                tokio::spawn(async move {
                    if let Err(e) = remove_sandbox(&agent, &uid, Duration::from_secs(2)).await {
                        tracing::warn!(pod_uid = %uid, error = %format!("{e:#}"), "removing orphaned sandbox");
                    }
                    release(&local, &uid);
                });
            }
        }
    }
    for (uid, local_pod) in wanted {
        let pod = &local_pod.pod;
        let pod_dir = agent.paths.pod_dir(&agent.node.name, &uid);
        if pod.metadata.deletion_timestamp.is_some() {
            if claim(local, &uid) {
                let (agent, local, local_pod) = (agent.clone(), local.clone(), local_pod.clone());
                tokio::spawn(async move {
                    let pod = &local_pod.pod;
                    let grace = pod.metadata.deletion_grace_period_seconds.and_then(|g| u64::try_from(g).ok()).unwrap_or(30);
                    // Give every node's proxy a moment to drop the pod from its services before
                    // its containers stop accepting connections (what a preStop sleep does in
                    // Kubernetes): clients of a Service then never reach a closed port.
                    let drain = ENDPOINT_DRAIN.min(Duration::from_secs(grace));
                    if !drain.is_zero() && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                        tokio::time::sleep(drain).await;
                    }
                    if let Err(e) = remove_sandbox(&agent, &uid, Duration::from_secs(grace)).await {
                        tracing::warn!(pod = %name(pod), error = %format!("{e:#}"), "stopping pod");
                    }
                    let mut client = agent.client.clone();
                    let (namespace, name) = typed::key(&pod.metadata);
                    let r = emu_proto::ObjectRef { kind: "Pod".into(), namespace: namespace.into(), name: name.into() };
                    let _ = client.delete(emu_proto::DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 }).await;
                    if let Ok(mut l) = local.lock() {
                        l.sent.remove(&uid);
                        l.volumes.remove(&uid);
                        l.shims.remove(&uid);
                        l.reported.remove(&uid);
                        l.mount_retries.remove(&uid);
                        l.events.retain(|(u, _, _), _| *u != uid);
                    }
                    release(&local, &uid);
                });
            }
            continue;
        }
        let Some(shim_pid) = running_shim(local, &uid, &pod_dir) else {
            if claim(local, &uid) {
                // A shim ran here (it wrote its state) and died: killed, or with all of its node's
                // processes. The sandbox is made again, and kubelet says so in an event.
                let restarted = sandbox::state_path(&pod_dir).exists();
                let (agent, local, services, objects, local_pod) =
                    (agent.clone(), local.clone(), services.clone(), snap.objects.clone(), local_pod.clone());
                tokio::spawn(async move {
                    let pod = &local_pod.pod;
                    let mut laps = Laps::new();
                    if restarted {
                        record_event(&agent, &local, pod, "Normal", "SandboxChanged", SANDBOX_CHANGED).await;
                    }
                    match create_sandbox(&agent, &local, pod, &services, &objects, &mut laps).await {
                        Ok(true) => report_first_start(&agent, &local, &local_pod, laps).await,
                        // Its volumes could not be written: the shim waits, the passes retry.
                        Ok(false) => {}
                        Err(e) => {
                            // A missing Secret or ConfigMap: waiting for it, as kubelet does.
                            // Kubelet says why a volume is missing in an event only; the log
                            // says it as often as the event is counted.
                            let status = if let Some(mount) = e.downcast_ref::<MountError>() {
                                if record_event(&agent, &local, pod, "Warning", "FailedMount", &mount.to_string()).await {
                                    tracing::warn!(pod = %name(pod), error = %format!("{e:#}"), "creating sandbox");
                                }
                                pending_status(&local_pod, "ContainerCreating", "")
                            } else if e.downcast_ref::<configdata::EnvError>().is_some()
                                || e.downcast_ref::<identity::ConfigError>().is_some()
                            {
                                // Kubelet's event for a container it cannot create as asked.
                                if record_event(&agent, &local, pod, "Warning", "Failed", &format!("Error: {e:#}")).await {
                                    tracing::warn!(pod = %name(pod), error = %format!("{e:#}"), "creating sandbox");
                                }
                                pending_status(&local_pod, "CreateContainerConfigError", &format!("{e:#}"))
                            } else {
                                tracing::warn!(pod = %name(pod), error = %format!("{e:#}"), "creating sandbox");
                                pending_status(&local_pod, "ContainerCreating", &format!("{e:#}"))
                            };
                            report(&agent, &local, &local_pod, status).await;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    release(&local, &uid);
                });
            }
            continue;
        };
        if local.lock().map(|l| l.busy.contains(&uid)).unwrap_or(true) {
            continue;
        }
        if crate::readiness::has_readiness_probe(pod) && local.lock().map(|mut l| l.probing.insert(uid.clone())).unwrap_or(false) {
            if let Some(ip) = emu_logic::scheduler::pod_ip(pod).and_then(|ip| ip.parse().ok()) {
                let (readiness, local_pod, dir, exe, local, uid) =
                    (agent.readiness.clone(), local_pod.clone(), pod_dir.clone(), agent.shim_exe.clone(), local.clone(), uid.clone());
                tokio::spawn(async move {
                    crate::readiness::probe_pod(readiness, &local_pod.pod, ip, dir, exe).await;
                    if let Ok(mut l) = local.lock() {
                        l.probing.remove(&uid);
                    }
                });
            }
        }
        // Also until a pod's volumes are known written (a first write or an update that failed,
        // an agent that restarted), once a failed write's back-off has passed.
        let unwritten = local.lock().map(|l| !l.volumes.contains_key(&uid) || l.mount_retries.contains_key(&uid)).unwrap_or(true);
        if objects_changed || (unwritten && !mount_retry_pending(local, &uid)) || token_due(agent, &uid) {
            sync_volumes(agent, local, pod, shim_pid, &snap.objects).await;
        }
        if services_changed {
            // Containers that start from now on (restarts) see the Services as they are now.
            if let Err(e) = sandbox::write_service_env(&pod_dir, &service_env(pod, services)) {
                tracing::warn!(pod = %name(pod), error = %e, "writing service variables");
            }
        }
        // The inputs before the state is read: a state written in between is seen again next time.
        let inputs = StatusInputs::of(agent, pod, &pod_dir);
        if local.lock().map(|l| l.reported.get(&uid) == Some(&inputs)).unwrap_or(false) {
            continue;
        }
        if let Ok(state) = sandbox::read_state(&pod_dir) {
            let status = pod_status(agent, pod, &state);
            if report(agent, local, &local_pod, status).await {
                if let Ok(mut l) = local.lock() {
                    l.reported.insert(uid, inputs);
                }
            }
        }
    }
}

/// Reports a new pod as soon as its containers have started, instead of at the next periodic
/// pass: pod start latency is what users of `emu up` and `kubectl get pods -w` see. Logs where
/// the start's time went (`pod started`, with `laps`).
async fn report_first_start(agent: &Agent, local: &std::sync::Mutex<Local>, local_pod: &LocalPod, mut laps: Laps) {
    let pod_dir = agent.paths.pod_dir(&agent.node.name, uid(&local_pod.pod));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if let Ok(state) = sandbox::read_state(&pod_dir) {
            let settled = !state.containers.is_empty()
                && state
                    .containers
                    .iter()
                    .all(|c| !matches!(&c.state, sandbox::ContainerState::Waiting { reason, .. } if reason == "ContainerCreating"));
            if settled {
                laps.lap("containers");
                let status = pod_status(agent, &local_pod.pod, &state);
                report(agent, local, local_pod, status).await;
                laps.lap("report");
                tracing::info!(pod = %name(&local_pod.pod), stages = %laps, "pod started");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The time each step of a pod's start took, in order: `spec:0.12 token:0.80 …` (ms), in the
/// agent's `pod started` line, which `emu-bench pods` reads for its breakdown.
struct Laps {
    last: std::time::Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Laps {
    fn new() -> Laps {
        Laps { last: std::time::Instant::now(), laps: Vec::new() }
    }

    /// Ends step `name` now.
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Laps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, d)) in self.laps.iter().enumerate() {
            write!(f, "{}{name}:{:.2}", if i == 0 { "" } else { " " }, d.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

fn claim(local: &std::sync::Mutex<Local>, uid: &str) -> bool {
    local.lock().map(|mut l| l.busy.insert(uid.to_string())).unwrap_or(false)
}

fn release(local: &std::sync::Mutex<Local>, uid: &str) {
    if let Ok(mut l) = local.lock() {
        l.busy.remove(uid);
    }
}

/// Whether the store has `status` now (it had it already, or it was sent).
async fn report(agent: &Agent, local: &std::sync::Mutex<Local>, local_pod: &LocalPod, status: Value) -> bool {
    let uid = uid(&local_pod.pod).to_string();
    let unchanged = local.lock().map(|l| l.sent.get(&uid) == Some(&status)).unwrap_or(false);
    if unchanged && local_pod.status == status {
        return true;
    }
    let (namespace, name) = typed::key(&local_pod.pod.metadata);
    let mut v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "uid": uid}});
    v["status"] = status.clone();
    let mut client = agent.client.clone();
    match client.update_status(emu_proto::UpdateStatusRequest { object: Some(emu_proto::Object { json: v.to_string() }) }).await {
        Ok(_) => {
            if let Ok(mut l) = local.lock() {
                l.sent.insert(uid, status);
            }
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "status update failed");
            false
        }
    }
}

/// The Service variables of a pod's containers (ENV-1..ENV-8), from the Services known now.
fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let links = spec(pod).enable_service_links.unwrap_or(true);
    emu_logic::svcenv::service_env(typed::key(&pod.metadata).0, links, services)
}

/// Creates the pod's sandbox; returns whether its volumes were written too (when not, its shim
/// waits and the passes write them).
async fn create_sandbox(
    agent: &Agent,
    local: &std::sync::Mutex<Local>,
    pod: &Pod,
    services: &[Service],
    objects: &Objects,
    laps: &mut Laps,
) -> anyhow::Result<bool> {
    let uid = uid(pod);
    let (namespace, name) = typed::key(&pod.metadata);
    let ip: Ipv4Addr = emu_logic::scheduler::pod_ip(pod).context("pod has no IP allocated yet")?.parse().context("pod IP annotation")?;
    // First, so that a missing Secret or ConfigMap leaves nothing to clean up.
    let spec = sandbox_spec(agent, pod, ip, objects)?;
    laps.lap("spec");
    let token = pod_token(agent, pod).await;
    let payloads = volume_payloads(pod, objects, token.as_deref())?;
    laps.lap("token");
    let pod_dir = agent.paths.pod_dir(&agent.node.name, uid);
    std::fs::create_dir_all(&pod_dir).with_context(|| format!("creating {}", pod_dir.display()))?;
    let netns_name = naming::netns_pod(&agent.cluster.name, uid);
    net::create_named_netns(&netns_name).with_context(|| format!("creating network namespace {netns_name}"))?;
    laps.lap("netns");
    let pod_ns = net::netns_path(&netns_name);
    // Across machines the pods' packets cross a VXLAN overlay: their links leave it room.
    let mtu = (agent.cluster.mtu > 0).then_some(agent.cluster.mtu);
    net::setup_pod_mtu(&agent.node_ns, &pod_ns, &naming::pod_host_veth(uid), (ip, agent.pod_cidr.prefix), agent.gateway, mtu)
        .await
        .with_context(|| format!("setting up the network of pod {name}"))?;
    laps.lap("network");
    let tmp = pod_dir.join("sandbox.json.tmp");
    // Root's only: container variables may come from Secrets.
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&spec)?)?;
    }
    std::fs::rename(&tmp, pod_dir.join("sandbox.json"))?;
    sandbox::write_service_env(&pod_dir, &service_env(pod, services)).context("writing the service variables")?;
    std::fs::write(pod_dir.join("pod.json"), serde_json::to_vec(&json!({"namespace": namespace, "name": name, "ip": ip.to_string()}))?)?;
    if let Some(size) = volume_size(agent, pod) {
        sandbox::volumes::write_size(&pod_dir, size.bytes)?;
    }
    let cgroup = agent.pods_cgroup.as_ref().map(|d| d.join(uid));
    if let Some(dir) = &cgroup {
        cgroup::ensure(dir)?;
    }
    laps.lap("files");
    let (exe, dir) = (agent.shim_exe.clone(), pod_dir.clone());
    let pid = tokio::task::spawn_blocking(move || sandbox::spawn_shim(&exe, &dir, &pod_ns, cgroup.as_deref()))
        .await?
        .context("starting the pod's shim")?;
    laps.lap("shim");
    tracing::info!(pod = %name, ip = %ip, shim_pid = pid, "sandbox started");
    let filled = payloads.is_empty() || fill_volumes(agent, local, pod, pid, payloads).await;
    laps.lap("volumes");
    Ok(filled)
}

async fn remove_sandbox(agent: &Agent, uid: &str, grace: Duration) -> anyhow::Result<()> {
    let pod_dir = agent.paths.pod_dir(&agent.node.name, uid);
    let dir = pod_dir.clone();
    tokio::task::spawn_blocking(move || sandbox::stop_shim(&dir, grace)).await??;
    net::teardown_pod(&agent.node_ns, &naming::pod_host_veth(uid)).await?;
    net::delete_named_netns(&naming::netns_pod(&agent.cluster.name, uid))?;
    if let Some(d) = &agent.pods_cgroup {
        let _ = std::fs::remove_dir(d.join(uid));
    }
    let _ = std::fs::remove_dir_all(&pod_dir);
    if let Ok(mut t) = agent.tokens.lock() {
        t.remove(uid);
    }
    Ok(())
}

/// The sandbox of `pod`, or why a container cannot be created as asked: a missing Secret or
/// ConfigMap ([`configdata::EnvError`]) or a user `runAsNonRoot` forbids ([`identity::ConfigError`]).
fn sandbox_spec(agent: &Agent, pod: &Pod, ip: Ipv4Addr, objects: &Objects) -> anyhow::Result<sandbox::SandboxSpec> {
    let (ns, name) = typed::key(&pod.metadata);
    let spec = spec(pod);
    let hostname = spec.hostname.as_deref().unwrap_or(name).chars().take(63).collect::<String>();
    let lookup = config_lookup(objects, ns);
    let volumes: Vec<sandbox::VolumeSpec> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| volumes::has_files(v))
        // Secret and projected volumes are tmpfs to kubelet (`drwxrwxrwt`), ConfigMaps not.
        .map(|v| sandbox::VolumeSpec { name: v.name.clone(), secret: volumes::is_secret(v) })
        .collect();
    let containers = spec
        .containers
        .iter()
        .map(|c| {
            let (env, literal_env) = container_env(c, pod, ip, &agent.node, &lookup)?;
            // An image the catalog lacks fails at its pull (ErrImagePull), before it would run.
            let identity = match emu_logic::images::resolve(c.image.as_deref().unwrap_or_default()) {
                Ok(profile) => identity::container_identity(pod, c, profile.user, profile.users)?,
                Err(_) => identity::Identity::ROOT,
            };
            let capabilities = identity::kept_capabilities(c).into_iter().map(String::from).collect();
            anyhow::Ok(sandbox::ContainerSpec {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                command: c.command.clone().unwrap_or_default(),
                args: c.args.clone().unwrap_or_default(),
                env,
                literal_env,
                working_dir: c.working_dir.clone(),
                tty: c.tty.unwrap_or(false),
                stdin: c.stdin.unwrap_or(false),
                stdin_once: c.stdin_once.unwrap_or(false),
                mounts: volume_mounts(c, &volumes),
                restarts_before: restarts_before(pod, &c.name),
                confinement: sandbox::seccomp::decide(spec.security_context.as_ref(), c.security_context.as_ref()),
                writable_layer_bytes: Some(emu_logic::images::writable_layer_bytes(c)),
                identity,
                capabilities: Some(capabilities),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(sandbox::SandboxSpec {
        cluster: agent.cluster.name.clone(),
        namespace: ns.into(),
        pod_name: name.into(),
        pod_uid: uid(pod).into(),
        hostname: hostname.clone(),
        restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
        termination_grace_seconds: spec.termination_grace_period_seconds.and_then(|g| u64::try_from(g).ok()).unwrap_or(30),
        hosts_file: emu_logic::podspec::hosts_file(pod, &ip.to_string()),
        resolv_conf: emu_logic::podspec::resolv_conf(pod, &node_resolver()),
        containers,
        volumes,
        api_socket: Some(agent.api_socket.clone()),
        images_dir: Some(agent.paths.images_dir()),
    })
}

/// A container's mounts of the pod's Secret and ConfigMap volumes (other kinds of volume are
/// not emulated: their mounts are left out).
fn volume_mounts(c: &Container, volumes: &[sandbox::VolumeSpec]) -> Vec<sandbox::MountSpec> {
    c.volume_mounts
        .iter()
        .flatten()
        .filter(|m| volumes.iter().any(|v| m.name == v.name))
        .map(|m| sandbox::MountSpec {
            volume: m.name.clone(),
            path: m.mount_path.clone(),
            sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
        })
        .collect()
}

/// A volume that cannot be set up, as kubelet reports it in a `FailedMount` event.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {error}")]
struct MountError {
    volume: String,
    error: SetUpError,
}

/// Why a volume cannot be set up.
#[derive(Debug, thiserror::Error)]
enum SetUpError {
    /// What it should hold: a missing object or key, a bad path.
    #[error(transparent)]
    Content(#[from] volumes::VolumeError),
    /// Writing its files (`write conf/big: no space left on device`); when the tmpfs is full,
    /// its size and where that comes from, which is what to change.
    #[error("{error}{}", full_hint(*.full))]
    Write { error: std::io::Error, full: Option<volumes::VolumeSize> },
}

fn full_hint(size: Option<volumes::VolumeSize>) -> String {
    size.map(|s| format!(" (the pod's volumes hold at most {s})")).unwrap_or_default()
}

/// The files of each of the pod's Secret, ConfigMap and projected volumes, from the objects known
/// now and the pod's token.
fn volume_payloads(pod: &Pod, objects: &Objects, token: Option<&str>) -> Result<Vec<(String, volumes::Payload)>, MountError> {
    let lookup = config_lookup(objects, typed::key(&pod.metadata).0);
    let spec = spec(pod);
    let mut out = Vec::new();
    for v in spec.volumes.iter().flatten() {
        match volumes::payload_for_pod(v, &lookup, pod, token) {
            None => {}
            Some(Ok(payload)) => out.push((v.name.clone(), payload)),
            Some(Err(error)) => return Err(MountError { volume: v.name.clone(), error: error.into() }),
        }
    }
    // A subPath must stay inside its volume (the API refuses others; checked again here).
    for m in spec.containers.iter().flat_map(|c| c.volume_mounts.iter().flatten()) {
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            volumes::check_path(sub).map_err(|error| MountError { volume: m.name.clone(), error: error.into() })?;
        }
    }
    Ok(out)
}

/// Whether the pod's token is due for renewal (its volume is then written again).
fn token_due(agent: &Agent, uid: &str) -> bool {
    let now = emu_api::time::now();
    agent
        .tokens
        .lock()
        .ok()
        .and_then(|t| t.get(uid).map(|t| emu_logic::serviceaccount::needs_renewal(t.issued_at, t.ttl, now)))
        .unwrap_or(false)
}

/// The pod's service-account token when one of its volumes projects it: the one the API server
/// issued for it, or a new one when there is none yet or it has lived 80% of its lifetime (as
/// kubelet renews it). None when the pod needs none or the API server issued none (its volume
/// then waits, as with a missing Secret).
async fn pod_token(agent: &Agent, pod: &Pod) -> Option<String> {
    let spec = spec(pod);
    let wanted = spec
        .volumes
        .iter()
        .flatten()
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .find_map(|s| s.service_account_token.as_ref())?;
    let uid = uid(pod).to_string();
    let now = emu_api::time::now();
    let cached = agent.tokens.lock().ok().and_then(|t| t.get(&uid).cloned());
    if let Some(t) = cached.as_ref().filter(|t| !emu_logic::serviceaccount::needs_renewal(t.issued_at, t.ttl, now)) {
        return Some(t.token.clone());
    }
    let (namespace, name) = typed::key(&pod.metadata);
    let request = emu_proto::TokenRequest {
        namespace: namespace.into(),
        service_account: spec.service_account_name.clone().unwrap_or_else(|| "default".into()),
        pod_name: name.into(),
        pod_uid: uid.clone(),
        expiration_seconds: wanted.expiration_seconds.unwrap_or(emu_logic::serviceaccount::TOKEN_EXPIRATION_SECONDS),
    };
    match agent.client.clone().create_token(request).await {
        Ok(r) => {
            let r = r.into_inner();
            let token = PodToken { token: r.token, issued_at: r.issued_at, ttl: r.expires_at - r.issued_at };
            if let Ok(mut t) = agent.tokens.lock() {
                t.insert(uid, token.clone());
            }
            Some(token.token)
        }
        Err(e) => {
            tracing::warn!(pod = %name, error = %e.message(), "requesting the pod's service-account token");
            // A token still valid serves until the API server answers again.
            cached.filter(|t| now < t.issued_at + t.ttl).map(|t| t.token)
        }
    }
}

/// Writes each volume's files into the running shim's tmpfs (waiting for the shim to have
/// mounted it); returns how many volumes changed. `size` is the tmpfs's, named in the error when
/// it is full. Blocks (call from a blocking context).
fn write_volumes(
    shim_pid: i32,
    pod_dir: &std::path::Path,
    payloads: &[(String, volumes::Payload)],
    size: Option<volumes::VolumeSize>,
) -> Result<usize, MountError> {
    let mut changed = 0;
    for (name, payload) in payloads {
        let failed = |error: std::io::Error| {
            let full = size.filter(|_| error.kind() == std::io::ErrorKind::StorageFull);
            MountError { volume: name.clone(), error: SetUpError::Write { error, full } }
        };
        let dir = sandbox::volumes::wait_mounted(shim_pid, pod_dir, name, Duration::from_secs(10)).map_err(failed)?;
        if sandbox::volumes::write_payload(&dir, payload).map_err(failed)? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The node's resolver for dnsPolicy `Default`: emu's nodes share the host's /etc/resolv.conf
/// (its servers are unreachable from inside the emulator, as containment requires).
fn node_resolver() -> emu_logic::podspec::ResolverConfig {
    emu_logic::podspec::parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

/// A container's variables in order, and the names among them not to `$(VAR)`-expand.
type ContainerEnv = (Vec<(String, String)>, Vec<String>);

/// The container's environment from its manifest: `envFrom` first, then `env` (values, the
/// downward API fields a pod can know about itself, and keys of Secrets and ConfigMaps), and the
/// names whose values are not literal `value:`s (those are not `$(VAR)`-expanded). Service
/// variables join in when the container starts.
fn container_env(
    c: &Container,
    pod: &Pod,
    ip: Ipv4Addr,
    node: &NodeConfig,
    lookup: configdata::Lookup<'_, '_>,
) -> Result<ContainerEnv, configdata::EnvError> {
    let (namespace, name) = typed::key(&pod.metadata);
    let (mut env, refs) = configdata::env_from_objects(c, namespace, lookup)?;
    let mut literal: Vec<String> = env.iter().map(|(name, _)| name.clone()).collect();
    for (e, from_object) in c.env.iter().flatten().zip(refs) {
        // The last declaration of a name decides, as its value does.
        literal.retain(|n| *n != e.name);
        if e.value.is_none() {
            literal.push(e.name.clone());
        }
        let value_from = e.value_from.as_ref();
        let value = if from_object.is_some() {
            from_object
        } else if value_from.is_some_and(|v| v.secret_key_ref.is_some() || v.config_map_key_ref.is_some()) {
            // An optional reference to what does not exist: the variable is not set.
            None
        } else if let Some(v) = &e.value {
            Some(v.clone())
        } else if let Some(field) = value_from.and_then(|v| v.field_ref.as_ref()) {
            match field.field_path.as_str() {
                "metadata.name" => Some(name.to_string()),
                "metadata.namespace" => Some(namespace.to_string()),
                "metadata.uid" => Some(uid(pod).to_string()),
                "spec.nodeName" => Some(node.name.clone()),
                "status.podIP" => Some(ip.to_string()),
                "status.hostIP" => Some(node.internal_ip.clone()),
                "spec.serviceAccountName" => Some(spec(pod).service_account_name.clone().unwrap_or_else(|| "default".into())),
                // One label or annotation (an Indexed Job's JOB_COMPLETION_INDEX).
                path => {
                    let keyed = |prefix: &str| path.strip_prefix(prefix)?.strip_suffix("']");
                    match (keyed("metadata.labels['"), keyed("metadata.annotations['")) {
                        (Some(k), _) => Some(pod.metadata.labels.as_ref().and_then(|m| m.get(k)).cloned().unwrap_or_default()),
                        (_, Some(k)) => Some(pod.metadata.annotations.as_ref().and_then(|m| m.get(k)).cloned().unwrap_or_default()),
                        _ => None,
                    }
                }
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.push((e.name.clone(), v));
        }
    }
    Ok((env, literal))
}

/// The status of a pod whose sandbox cannot be created yet: the stored status, `Pending`, each
/// container waiting for `reason`.
fn pending_status(local_pod: &LocalPod, reason: &str, message: &str) -> Value {
    let mut status = local_pod.status.clone();
    status["phase"] = json!("Pending");
    let cs: Vec<Value> = spec(&local_pod.pod)
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
            "lastState": {}, "state": {"waiting": {"reason": reason, "message": message}}})
        })
        .collect();
    status["containerStatuses"] = json!(cs);
    status
}

/// The restart count a container of a new sandbox starts from: one more than it had if it ran
/// before on this node (its sandbox lost: the node's processes killed, a reboot), as kubelet
/// counts a container re-created for the same pod.
fn restarts_before(pod: &Pod, container: &str) -> u32 {
    let statuses = pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten());
    statuses
        .filter(|s| s.name == container && s.container_id.as_deref().is_some_and(|id| !id.is_empty()))
        .map(|s| u32::try_from(s.restart_count).unwrap_or(0) + 1)
        .next()
        .unwrap_or(0)
}

fn pod_status(agent: &Agent, pod: &Pod, state: &sandbox::SandboxState) -> Value {
    let ip = emu_logic::scheduler::pod_ip(pod).unwrap_or("");
    let input = emu_logic::podspec::StatusInput {
        host_ip: agent.node.internal_ip.clone(),
        pod_ip: ip.to_string(),
        containers: state
            .containers
            .iter()
            .map(|c| emu_logic::podspec::ContainerObservation {
                name: c.name.clone(),
                image: c.image.clone(),
                restart_count: c.restart_count,
                container_id: c.pid.map(|p| format!("emu://{}-{p}", uid(pod))),
                state: match &c.state {
                    sandbox::ContainerState::Waiting { reason, message } => {
                        emu_logic::podspec::Observed::Waiting { reason: reason.clone(), message: message.clone() }
                    }
                    sandbox::ContainerState::Running { started_at } => {
                        emu_logic::podspec::Observed::Running { started_at: started_at.clone() }
                    }
                    sandbox::ContainerState::Terminated(t) => emu_logic::podspec::Observed::Terminated(terminated(t)),
                },
                last_terminated: c.last_terminated.as_ref().map(terminated),
                probe_ready: agent.readiness.container_ready(pod, &c.name),
            })
            .collect(),
    };
    emu_logic::podspec::pod_status(pod, &input)
}

fn terminated(t: &sandbox::Terminated) -> emu_logic::podspec::TerminatedObservation {
    emu_logic::podspec::TerminatedObservation {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone(),
        started_at: t.started_at.clone(),
        finished_at: t.finished_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_what_the_pods_use_start_the_pod_pass() {
        let object = |v: Value| {
            let key = (v["kind"].as_str().unwrap().to_string(), v["metadata"]["namespace"].as_str().unwrap_or("").to_string(), name_of(&v));
            (key, Arc::new(Watched::decode(v)))
        };
        fn name_of(v: &Value) -> String {
            v["metadata"]["name"].as_str().unwrap().to_string()
        }
        let pod = |rv: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": rv},
                "spec": {"containers": [{"name": "c", "image": "nginx", "envFrom": [{"secretRef": {"name": "db"}}]}],
                    "volumes": [{"name": "conf", "configMap": {"name": "nginx-conf"}}]}})
        };
        let config_map = |name: &str, rv: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "resourceVersion": rv}});
        let secret = |rv: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default", "resourceVersion": rv}});
        let objects = |items: Vec<Value>| -> Objects { items.into_iter().map(object).collect() };
        let base = pod_pass_inputs(&objects(vec![pod("1"), config_map("nginx-conf", "2"), config_map("other", "3"), secret("4")]));
        // Another ConfigMap, new or changed: nothing for the pods here.
        assert_eq!(base, pod_pass_inputs(&objects(vec![pod("1"), config_map("nginx-conf", "2"), config_map("other", "9"), secret("4")])));
        assert_eq!(
            base,
            pod_pass_inputs(&objects(vec![
                pod("1"),
                config_map("nginx-conf", "2"),
                config_map("other", "3"),
                config_map("new", "10"),
                secret("4")
            ]))
        );
        // The pod, its volume's ConfigMap or its variables' Secret changed, or one of them gone.
        assert_ne!(base, pod_pass_inputs(&objects(vec![pod("5"), config_map("nginx-conf", "2"), config_map("other", "3"), secret("4")])));
        assert_ne!(base, pod_pass_inputs(&objects(vec![pod("1"), config_map("nginx-conf", "6"), config_map("other", "3"), secret("4")])));
        assert_ne!(base, pod_pass_inputs(&objects(vec![pod("1"), config_map("nginx-conf", "2"), config_map("other", "3"), secret("7")])));
        assert_ne!(base, pod_pass_inputs(&objects(vec![pod("1"), config_map("other", "3"), secret("4")])));
    }

    #[test]
    fn a_pod_is_decoded_once_with_its_status_as_stored() {
        let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}]});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": status});
        let Watched::Pod(p) = Watched::decode(pod) else { panic!("a pod") };
        assert_eq!((uid(&p.pod), name(&p.pod), spec(&p.pod).containers[0].image.as_deref()), ("u1", "web", Some("nginx")));
        assert_eq!(p.status, status, "the JSON status keeps lastProbeTime: null, which report compares with");
        // A pod whose sandbox must be left alone rather than removed as an orphan.
        let bad = json!({"kind": "Pod", "metadata": {"name": "web", "uid": "u2"}, "spec": {"containers": "nope"}});
        assert!(matches!(Watched::decode(bad), Watched::UndecodablePod(uid) if uid == "u2"));
        let secret = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}});
        let Watched::Secret(s) = Watched::decode(secret) else { panic!("a secret") };
        assert_eq!(s.data.unwrap()["k"].0, b"v");
        assert!(matches!(Watched::decode(json!({"kind": "Other"})), Watched::Undecodable));
    }
}
