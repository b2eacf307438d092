//! The faults of one node (issue 7), applied by its agent from the Fault objects: impairments of
//! the node's link (its `eth0`) and of its pods' links (their `eth0`, in the pods' own
//! namespaces), each in both directions through the link emulator, the partition table, and the
//! link going down. Level-triggered: every change (and every few seconds) plans what the faults
//! want ([`emu_dataplane::faults::fault_plan`], a pure function) and carries out what differs from
//! what was applied; a fault deleted is reverted, a pass that failed is retried after a back-off,
//! and a restarted agent starts from a clean state. The agent's own traffic to the controller goes
//! over a Unix socket, so no fault cuts it off from the API.
//!
//! The agent reports on each Fault that concerns its node, so that `emu fault` can return once a
//! fault is in effect (or reverted): it puts its finalizer on before applying the fault, writes
//! its entry of `status.appliedOn` once the fault's rules are in place, and takes both off once it
//! has reverted a fault that is deleted (which the finalizer keeps, Terminating, until then).
//!
//! The [`Reconciler`]'s side effects are the [`FaultHost`]'s traits: the real `nft`,
//! `iptables-restore`, netlink and link emulator, or the recording fakes in the unit tests below.

use crate::trigger::{Backoff, Trigger};
use emu_api::fault::{self as fault_object, FaultSpec, Target};
use emu_api::typed::{self, Node, Pod};
use emu_api::{naming, object};
use emu_dataplane::faults::{self as fault_rules, Achieved, FaultInputs, FaultPlan, IptablesRules, LocalPod, Needs, LINK};
use emu_host::iptables::IptablesRunner;
use emu_host::linkemu::QueueSetter;
use emu_host::net::{Links, Namespaces, Routes};
use emu_host::nft::NftRunner;
use emu_logic::cluster::{ClusterConfig, NodeConfig};
use emu_logic::faults;
use emu_proto::reflector::{self, Snapshot};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the faults are reconciled without a change.
pub const PERIOD: Duration = Duration::from_secs(5);
/// The retry after a pass that failed to apply or revert something: 0.5 s, doubling up to the
/// period while passes keep failing.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), PERIOD);

/// The fault reconciler's side effects on the node.
#[derive(Clone)]
pub struct FaultHost {
    /// The partition table (in the agent's namespace: its node's).
    pub nft: Arc<dyn NftRunner>,
    /// The queue rules, in the node's namespace and in pods'.
    pub iptables: Arc<dyn IptablesRunner>,
    /// The node's link.
    pub links: Arc<dyn Links>,
    /// The node's routes, put back when its link comes up.
    pub routes: Arc<dyn Routes>,
    /// Whether a pod's namespace exists yet.
    pub namespaces: Arc<dyn Namespaces>,
    /// The link emulator.
    pub queues: Arc<dyn QueueSetter>,
}

impl FaultHost {
    /// The real ones for the node whose namespace is `node_ns` (the agent lives in it); starts
    /// the link emulator's thread.
    pub fn real(node_ns: &Path) -> FaultHost {
        let net = Arc::new(emu_host::net::RealNet::new(node_ns));
        FaultHost {
            nft: Arc::new(emu_host::nft::RealNft::new()),
            iptables: Arc::new(emu_host::iptables::RealIptables),
            links: net.clone(),
            routes: net,
            namespaces: Arc::new(emu_host::net::NamedNamespaces),
            queues: Arc::new(emu_host::linkemu::LinkEmulator::start()),
        }
    }
}

/// An object of the faults loop's watch, decoded once when it arrives.
pub enum Watched {
    /// emu's own kind, read as JSON by [`fault_object::parse`] (and written back as JSON).
    Fault(Value),
    Node(Box<Node>),
    /// A pod of this node: what its link's rules need.
    Pod(PodRef),
    /// An object that does not decode (admission decoded every stored one, so none should).
    Undecodable,
}

/// What the faults need of a pod: its key, uid (its network namespace) and node.
pub struct PodRef {
    namespace: String,
    name: String,
    uid: String,
    node_name: Option<String>,
}

impl Watched {
    pub fn decode(v: Value) -> Watched {
        let decoded = match object::kind(&v) {
            fault_object::KIND => return Watched::Fault(v),
            "Node" => typed::decode(&v).map(Watched::Node),
            "Pod" => typed::decode::<Pod>(&v).map(|p| {
                let (namespace, name) = typed::key(&p.metadata);
                Watched::Pod(PodRef {
                    namespace: namespace.into(),
                    name: name.into(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    node_name: p.spec.and_then(|s| s.node_name),
                })
            }),
            _ => return Watched::Undecodable,
        };
        decoded.unwrap_or_else(|e| {
            tracing::warn!(kind = object::kind(&v), name = %object::name(&v), error = %e, "an object of the faults' watch does not decode; left out");
            Watched::Undecodable
        })
    }
}

type Snap = Snapshot<Watched>;

/// The Nodes of `snap`.
fn nodes(snap: &Snap) -> impl Iterator<Item = &Node> {
    snap.objects.values().filter_map(|o| match o.as_ref() {
        Watched::Node(n) => Some(&**n),
        _ => None,
    })
}

/// Runs forever in the agent.
pub async fn run(cluster: ClusterConfig, node: NodeConfig, upstream: emu_proto::transport::Upstream) {
    let (tx, rx) = tokio::sync::watch::channel(Snapshot::default());
    let kinds = ["Fault", "Node", "Pod"].map(String::from).to_vec();
    tokio::spawn(reflector::run_projected(upstream.clone(), kinds, node.name.clone(), tx, Watched::decode));
    let node_ns = emu_host::net::netns_path(&naming::netns_node(&cluster.name, &node.name));
    let mut reconciler = Reconciler::new(&cluster.name, &node.name, &cluster.service_cidr, FaultHost::real(&node_ns));
    let mut client: Option<Client> = None;
    // When this agent applied each fault in effect (by uid), for its status entries.
    let mut since: BTreeMap<String, String> = BTreeMap::new();
    let mut trigger = Trigger::new(rx, PERIOD, RETRY);
    loop {
        let snap = trigger.latest();
        let mut ok = true;
        if snap.synced {
            if client.is_none() {
                client = upstream.api().await.map_err(|e| tracing::warn!(error = %e, "connecting to the controller")).ok();
            }
            if let Some(c) = client.as_mut() {
                ok = sync(&cluster, &node, &snap, c, &mut reconciler, &mut since).await;
            }
        }
        if !trigger.wait(ok).await {
            return;
        }
    }
}

/// A connection to the controller's API.
pub type Client = emu_proto::api_client::ApiClient<tonic::transport::Channel>;

/// One pass: hold the faults that concern the node (finalizer first), apply exactly those, then
/// report where each stands (status entry, finalizer off once reverted). False when applying or
/// reverting something failed (the pass is then retried after a back-off).
async fn sync(
    cluster: &ClusterConfig,
    node: &NodeConfig,
    snap: &Snap,
    client: &mut Client,
    reconciler: &mut Reconciler,
    since: &mut BTreeMap<String, String>,
) -> bool {
    // The cluster's nodes: this machine's, and every Node (machines that joined included).
    let mut node_names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    for n in nodes(snap) {
        if let Some(name) = n.metadata.name.as_ref().filter(|name| !node_names.contains(name)) {
            node_names.push(name.clone());
        }
    }
    // An invalid fault is applied nowhere (and let go, should this agent hold it).
    let mut list: Vec<(Value, Option<FaultSpec>)> = snap
        .objects
        .values()
        .filter_map(|v| match v.as_ref() {
            Watched::Fault(f) => Some(f),
            _ => None,
        })
        .map(|f| match fault_object::parse(f, &node_names) {
            Ok(spec) => (f.clone(), Some(spec)),
            Err(e) => {
                tracing::warn!(fault = %object::name(f), error = %e, "ignoring an invalid fault");
                (f.clone(), None)
            }
        })
        .collect();
    // The snapshot holds this node's pods only.
    let pod_node =
        |namespace: &str, name: &str| match snap.objects.get(&("Pod".to_string(), namespace.to_string(), name.to_string()))?.as_ref() {
            Watched::Pod(p) => p.node_name.clone(),
            _ => None,
        };
    let me = node.name.as_str();
    // Held: wanted here, with this agent's finalizer on (put on now where missing), so that a
    // deletion waits for the revert. Only held faults are applied.
    let mut held = Vec::new();
    for (fault, spec) in &mut list {
        let Some(spec) = spec else { continue };
        // Host faults (a partition in the hosts' LAN, a host stopped) are the controller's: no
        // agent applies, holds or reports them (`nodes_affected` names none).
        let wanted = !object::is_terminating(fault) && fault_object::nodes_affected(spec, pod_node).iter().any(|n| n == me);
        if !wanted {
            continue;
        }
        if let Some(latest) =
            write_back(client, fault, Part::Object, |f| (!object::is_terminating(f)).then(|| faults::with_finalizer(f, me, true)).flatten())
                .await
        {
            *fault = latest;
        }
        if faults::holders(fault).iter().any(|n| n == me) && !object::is_terminating(fault) {
            held.push(object::uid(fault).to_string());
        }
    }
    let specs: Vec<(String, FaultSpec)> = list
        .iter()
        .filter(|(f, _)| held.iter().any(|u| u == object::uid(f)))
        .filter_map(|(f, spec)| Some((object::name(f).to_string(), spec.clone()?)))
        .collect();
    let outcome = reconciler.pass(snap, &specs).await;

    let now = faults::micro_time(std::time::SystemTime::now());
    since.retain(|uid, _| held.contains(uid));
    for (fault, _) in &list {
        let uid = object::uid(fault).to_string();
        let wanted = held.contains(&uid);
        let in_effect = wanted && outcome.in_effect.contains(object::name(fault));
        let at = if in_effect {
            Some(since.entry(uid.clone()).or_insert_with(|| now.clone()).clone())
        } else {
            since.remove(&uid);
            None
        };
        let record = faults::record_after_pass(fault, me, wanted, at.as_deref(), outcome.reverted);
        let mut fault = fault.clone();
        if let Some(latest) = write_back(client, &fault, Part::Status, |f| faults::with_applied(f, me, record.entry.as_ref())).await {
            fault = latest;
        }
        if !record.hold {
            write_back(client, &fault, Part::Object, |f| faults::with_finalizer(f, me, false)).await;
        }
    }
    outcome.reverted
}

/// What [`write_back`] writes of a Fault.
#[derive(Clone, Copy)]
pub enum Part {
    /// The status only.
    Status,
    /// The object (a PUT): its finalizers.
    Object,
}

/// Writes `edit(fault)` back (None: nothing to change) at the fault's resourceVersion; on a
/// conflict reads the fault again and edits that (client-go's RetryOnConflict). Returns the fault
/// as stored afterwards; None when it could not be written (logged) or is gone.
pub async fn write_back(client: &mut Client, fault: &Value, how: Part, edit: impl Fn(&Value) -> Option<Value>) -> Option<Value> {
    let mut current = fault.clone();
    for _ in 0..5 {
        let Some(v) = edit(&current) else { return Some(current) };
        let object = Some(emu_proto::Object { json: v.to_string() });
        let written = match how {
            Part::Status => client.update_status(emu_proto::UpdateStatusRequest { object }).await.map(|r| r.into_inner().object),
            Part::Object => client
                .replace(emu_proto::ReplaceRequest { objects: object.into_iter().collect() })
                .await
                .map(|r| r.into_inner().results.into_iter().next().and_then(|r| r.object)),
        };
        match written {
            // A PUT that completes a deletion returns the last state: it is gone.
            Ok(o) => return o.and_then(|o| serde_json::from_str(&o.json).ok()),
            Err(e) if e.code() == tonic::Code::Aborted => {
                let r =
                    emu_proto::ObjectRef { kind: fault_object::KIND.into(), namespace: String::new(), name: object::name(fault).into() };
                match client.get(r).await {
                    Ok(o) => current = serde_json::from_str(&o.into_inner().json).ok()?,
                    Err(_) => return None,
                }
                if object::uid(&current) != object::uid(fault) {
                    return None;
                }
            }
            Err(e) if e.code() == tonic::Code::NotFound => return None,
            Err(e) => {
                tracing::warn!(fault = %object::name(fault), error = %e, "writing the fault's status or finalizers failed");
                return None;
            }
        }
    }
    None
}

/// What a pass achieved: the faults whose rules are in place, and whether nothing failed (so
/// that nothing a deleted fault wanted is left).
pub struct Outcome {
    pub in_effect: BTreeSet<String>,
    pub reverted: bool,
}

/// What the reconciler has applied, to diff the next plan with.
#[derive(Default)]
struct Applied {
    partition: Option<String>,
    /// The iptables rules of each namespace (None: the node's; a pod's by name).
    iptables: BTreeMap<Option<String>, IptablesRules>,
    link_down: Option<bool>,
}

/// Carries out the fault plan of one node, pass after pass, remembering what it applied.
pub struct Reconciler {
    cluster: String,
    node: String,
    service_cidr: String,
    host: FaultHost,
    applied: Applied,
}

impl Reconciler {
    /// For node `node` of cluster `cluster` (whose Services are in `service_cidr`), nothing
    /// applied yet.
    pub fn new(cluster: &str, node: &str, service_cidr: &str, host: FaultHost) -> Reconciler {
        Reconciler { cluster: cluster.into(), node: node.into(), service_cidr: service_cidr.into(), host, applied: Applied::default() }
    }

    /// One pass: plans `faults` (those this agent holds, by name) with the Nodes and this node's
    /// Pods of `snap`, carries out what differs from what was applied, and says which faults
    /// are in effect.
    pub async fn pass(&mut self, snap: &Snap, faults: &[(String, FaultSpec)]) -> Outcome {
        let addresses = node_addresses(snap);
        let pods = self.local_pods(snap, faults);
        let plan = fault_rules::fault_plan(&FaultInputs { node: &self.node, faults, addresses: &addresses, pods: &pods });
        let mut achieved = Achieved { partition: self.partition(&plan).await, ..Default::default() };
        // The emulator knows a queue before packets are sent to it: the rules come once it has
        // bound its queues (until then they would let packets pass unimpaired).
        achieved.bound = bound_queues(self.host.queues.as_ref(), self.host.queues.set(plan.queues.clone())).await;
        let rules_ok = self.iptables(&plan).await;
        achieved.iptables =
            plan.iptables.iter().filter(|(n, r)| self.applied.iptables.get(*n) == Some(r)).map(|(n, _)| n.clone()).collect();
        achieved.link = self.link(&plan, snap).await;
        Outcome { in_effect: fault_rules::in_effect(&plan, &achieved), reverted: achieved.partition && rules_ok && achieved.link }
    }

    /// This node's pods whose links the faults impair and whose namespaces exist (a pod whose
    /// sandbox is not there yet gets its rules on a later pass).
    fn local_pods(&self, snap: &Snap, faults: &[(String, FaultSpec)]) -> Vec<LocalPod> {
        let targets: BTreeSet<(&str, &str)> = faults
            .iter()
            .filter_map(|(_, spec)| match spec {
                FaultSpec::Netem { target: Target::Pod { namespace, name }, .. } => Some((namespace.as_str(), name.as_str())),
                _ => None,
            })
            .collect();
        snap.objects
            .values()
            .filter_map(|o| match o.as_ref() {
                Watched::Pod(p) => Some(p),
                _ => None,
            })
            .filter(|p| p.node_name.as_deref() == Some(self.node.as_str()))
            .filter(|p| targets.contains(&(p.namespace.as_str(), p.name.as_str())))
            .map(|p| LocalPod { namespace: p.namespace.clone(), name: p.name.clone(), netns: naming::netns_pod(&self.cluster, &p.uid) })
            .filter(|p| self.host.namespaces.exists(&p.netns))
            .collect()
    }

    /// The partition table as planned; whether it is in place.
    async fn partition(&mut self, plan: &FaultPlan) -> bool {
        let script = &plan.partition_script;
        if self.applied.partition.as_ref() == Some(script) {
            return true;
        }
        let (nft, text) = (self.host.nft.clone(), script.clone());
        match blocking(move || nft.apply(&text)).await {
            Ok(()) => {
                tracing::info!(partitions = plan.needs.values().filter(|n| **n == Needs::Partition).count(), "partition rules applied");
                self.applied.partition = Some(script.clone());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "applying the partition rules failed");
                false
            }
        }
    }

    /// Each namespace's iptables rules as planned: namespaces that had rules and have none now
    /// are emptied (a pod's that is gone is forgotten). Whether every restore succeeded.
    async fn iptables(&mut self, plan: &FaultPlan) -> bool {
        let mut wanted = plan.iptables.clone();
        for netns in self.applied.iptables.keys() {
            wanted.entry(netns.clone()).or_default();
        }
        let mut ok = true;
        for (netns, rules) in wanted {
            if self.applied.iptables.get(&netns) == Some(&rules) {
                continue;
            }
            if netns.as_ref().is_some_and(|name| rules.is_empty() && !self.host.namespaces.exists(name)) {
                self.applied.iptables.remove(&netns);
                continue;
            }
            let (runner, name, input) = (self.host.iptables.clone(), netns.clone(), rules.restore_input());
            match blocking(move || runner.restore(name.as_deref(), &input)).await {
                Ok(()) => {
                    tracing::info!(netns = ?netns, rules = ?rules.mangle, "link impairments set");
                    if rules.is_empty() && netns.is_some() {
                        self.applied.iptables.remove(&netns);
                    } else {
                        self.applied.iptables.insert(netns, rules);
                    }
                }
                Err(e) => {
                    tracing::warn!(netns = ?netns, error = %e, "setting link impairments failed");
                    ok = false;
                }
            }
        }
        ok
    }

    /// The node's link down or up as planned; whether it is.
    async fn link(&mut self, plan: &FaultPlan, snap: &Snap) -> bool {
        let down = plan.link_down;
        // At the agent's start (nothing applied yet) a link that is up is left alone: its routes
        // are the route syncer's, and this snapshot may not list every node yet (putting routes
        // back from it would delete the others'). Only a link an earlier agent left down is raised.
        let change = match self.applied.link_down {
            Some(prev) => prev != down,
            None => down || !self.host.links.is_up(LINK).await.unwrap_or(true),
        };
        if !change {
            self.applied.link_down = Some(down);
        } else {
            match self.set_link(down, snap).await {
                Ok(()) => {
                    tracing::info!(down, "node link set");
                    self.applied.link_down = Some(down);
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "setting the node's link failed"),
            }
        }
        self.applied.link_down == Some(down)
    }

    /// Takes the node's `eth0` down or up. The kernel drops the routes through a link that goes
    /// down, so bringing it up puts back the node's routes to the service CIDR and to the other
    /// nodes' pods.
    async fn set_link(&self, down: bool, snap: &Snap) -> anyhow::Result<()> {
        self.host.links.set_up(LINK, !down).await?;
        if down {
            return Ok(());
        }
        crate::routes::restore_routes_with(self.host.routes.as_ref(), &self.service_cidr, nodes(snap), &self.node).await
    }
}

/// Every node's InternalIP and pod CIDR by name, for the partition table.
fn node_addresses(snap: &Snap) -> BTreeMap<String, Vec<String>> {
    nodes(snap)
        .map(|n| {
            let addresses = n.status.iter().flat_map(|s| s.addresses.iter().flatten());
            let mut list: Vec<String> = addresses.filter(|a| a.type_ == "InternalIP").map(|a| a.address.clone()).collect();
            list.extend(n.spec.as_ref().and_then(|s| s.pod_cidr.clone()));
            (typed::key(&n.metadata).1.to_string(), list)
        })
        .collect()
}

/// Runs a blocking side effect off the runtime's workers; its error (or panic) as text.
async fn blocking<E: std::fmt::Display + Send + 'static>(f: impl FnOnce() -> Result<(), E> + Send + 'static) -> Result<(), String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The queues the link emulator has bound once it has taken up `generation` of its settings
/// (waiting at most a second; none after that).
async fn bound_queues(emulator: &dyn QueueSetter, generation: u64) -> BTreeSet<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        if let Some(bound) = emulator.bound(generation) {
            return bound;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(generation, "the link emulator has not bound its queues within 1s");
            return Default::default();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::fault::Netem;
    use emu_host::iptables::FakeIptables;
    use emu_host::linkemu::FakeQueues;
    use emu_host::net::{FakeNamespaces, FakeNet, NetCall, Route};
    use emu_host::nft::FakeNft;
    use serde_json::json;
    use std::net::Ipv4Addr;

    const POD_NETNS: &str = "emu-c-pod-uid-web";

    struct Fakes {
        nft: Arc<FakeNft>,
        iptables: Arc<FakeIptables>,
        net: Arc<FakeNet>,
        namespaces: Arc<FakeNamespaces>,
        queues: Arc<FakeQueues>,
    }

    /// The reconciler of node `a` of cluster `c`, against fakes.
    fn reconciler() -> (Reconciler, Fakes) {
        let fakes = Fakes {
            nft: Arc::new(FakeNft::new()),
            iptables: Arc::new(FakeIptables::new()),
            net: Arc::new(FakeNet::new()),
            namespaces: Arc::new(FakeNamespaces::new()),
            queues: Arc::new(FakeQueues::new()),
        };
        let host = FaultHost {
            nft: fakes.nft.clone(),
            iptables: fakes.iptables.clone(),
            links: fakes.net.clone(),
            routes: fakes.net.clone(),
            namespaces: fakes.namespaces.clone(),
            queues: fakes.queues.clone(),
        };
        (Reconciler::new("c", "a", "10.96.0.0/12", host), fakes)
    }

    fn node(name: &str, i: u8) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": format!("10.244.{i}.0/24")},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", i + 2)}]},
        })
    }

    /// Nodes a and b, and pod default/web on a.
    fn snapshot() -> Snap {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default", "name": "web", "uid": "uid-web"},
            "spec": {"nodeName": "a"},
        });
        let objects = [node("a", 0), node("b", 1), pod]
            .into_iter()
            .map(|o| {
                let key = (object::kind(&o).to_string(), object::namespace(&o).to_string(), object::name(&o).to_string());
                (key, Arc::new(Watched::decode(o)))
            })
            .collect();
        Snapshot { objects: Arc::new(objects), synced: true }
    }

    fn partition() -> (String, FaultSpec) {
        ("cut".into(), FaultSpec::Partition { a: vec!["a".into()], b: vec!["b".into()], one_way: false })
    }

    fn delay(name: &str, target: Target) -> (String, FaultSpec) {
        (name.into(), FaultSpec::Netem { target, netem: Netem { delay_ms: Some(100.0), ..Default::default() } })
    }

    fn link_down() -> (String, FaultSpec) {
        ("down".into(), FaultSpec::LinkDown { node: "a".into() })
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_new_fault_is_applied_and_reported_in_effect() {
        let (mut r, f) = reconciler();
        let specs = [partition(), delay("slow", Target::Node("a".into()))];
        let outcome = r.pass(&snapshot(), &specs).await;
        assert_eq!(outcome.in_effect, names(&["cut", "slow"]));
        assert!(outcome.reverted);
        let scripts = f.nft.scripts();
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0]
            .contains("add rule ip emu-faults in ip saddr { 172.18.0.2, 10.244.0.0/24 } ip daddr { 172.18.0.3, 10.244.1.0/24 } drop"));
        let node_rules = f.iptables.last(None).expect("the node's rules");
        assert!(node_rules.contains("-A POSTROUTING -o eth0 -j NFQUEUE --queue-num 100 --queue-bypass\n"), "{node_rules}");
        assert!(node_rules.contains("-A PREROUTING -i eth0 -j NFQUEUE --queue-num 101 --queue-bypass\n"), "{node_rules}");
        assert_eq!(f.queues.current().keys().copied().collect::<Vec<_>>(), [100, 101]);
        assert!(f.net.calls().is_empty(), "the link is left alone");
        // The same faults again: nothing to do.
        let again = r.pass(&snapshot(), &specs).await;
        assert_eq!((again.in_effect, again.reverted), (names(&["cut", "slow"]), true));
        assert_eq!((f.nft.attempts(), f.iptables.attempts()), (1, 1));
    }

    #[tokio::test]
    async fn a_deleted_fault_is_reverted_rules_removed_link_up_routes_back() {
        let (mut r, f) = reconciler();
        let specs = [partition(), delay("slow", Target::Node("a".into())), link_down()];
        let outcome = r.pass(&snapshot(), &specs).await;
        assert_eq!((outcome.in_effect, outcome.reverted), (names(&["cut", "down", "slow"]), true));
        assert_eq!(f.net.take_calls(), [NetCall::SetUp { link: "eth0".into(), up: false }]);
        // The kernel dropped the routes through the link.
        f.net.set_routes(&[]);

        let outcome = r.pass(&snapshot(), &[]).await;
        assert!(outcome.in_effect.is_empty());
        assert!(outcome.reverted, "nothing a deleted fault wanted is left");
        assert_eq!(f.nft.scripts().last().map(String::as_str), Some("add table ip emu-faults\ndelete table ip emu-faults\n"));
        assert_eq!(f.iptables.last(None), Some(IptablesRules::default().restore_input()));
        assert!(f.queues.current().is_empty());
        assert_eq!(
            f.net.take_calls(),
            [
                NetCall::SetUp { link: "eth0".into(), up: true },
                NetCall::ReplaceDeviceRoute { dst: Ipv4Addr::new(10, 96, 0, 0), prefix: 12, dev: "eth0".into() },
                NetCall::ReplaceEmuRoute { dst: Ipv4Addr::new(10, 244, 1, 0), prefix: 24, via: Ipv4Addr::new(172, 18, 0, 3) },
            ]
        );
        assert_eq!(f.net.link("eth0"), Some(true));
        // Reverted once: the next pass does nothing.
        let (nft, iptables) = (f.nft.attempts(), f.iptables.attempts());
        assert!(r.pass(&snapshot(), &[]).await.reverted);
        assert_eq!((f.nft.attempts(), f.iptables.attempts()), (nft, iptables));
        assert!(f.net.take_calls().is_empty());
    }

    #[tokio::test]
    async fn a_failed_iptables_run_is_retried_on_the_next_pass() {
        let (mut r, f) = reconciler();
        f.iptables.fail_next(1);
        let specs = [delay("slow", Target::Node("a".into()))];
        let outcome = r.pass(&snapshot(), &specs).await;
        assert!(outcome.in_effect.is_empty(), "the queue rules are not in place");
        assert!(!outcome.reverted, "a failure: the loop retries after a back-off");
        assert_eq!(f.iptables.restores(), []);
        let outcome = r.pass(&snapshot(), &specs).await;
        assert_eq!((outcome.in_effect, outcome.reverted), (names(&["slow"]), true));
        assert_eq!(f.iptables.attempts(), 2);
        assert!(f.iptables.last(None).is_some_and(|rules| rules.contains("--queue-num 100")));
    }

    #[tokio::test]
    async fn a_link_down_that_failed_is_retried_and_the_link_not_reported_down() {
        let (mut r, f) = reconciler();
        f.net.fail_next(1);
        let outcome = r.pass(&snapshot(), &[link_down()]).await;
        assert_eq!((outcome.in_effect.len(), outcome.reverted), (0, false));
        let outcome = r.pass(&snapshot(), &[link_down()]).await;
        assert_eq!((outcome.in_effect, outcome.reverted), (names(&["down"]), true));
        assert_eq!(f.net.link("eth0"), Some(false));
    }

    #[tokio::test]
    async fn a_pods_link_is_impaired_in_its_namespace_once_it_exists() {
        let (mut r, f) = reconciler();
        let web = Target::Pod { namespace: "default".into(), name: "web".into() };
        let specs = [delay("web-slow", web)];
        // No sandbox yet: nothing to do, nothing failed.
        let outcome = r.pass(&snapshot(), &specs).await;
        assert_eq!((outcome.in_effect.len(), outcome.reverted), (0, true));
        assert_eq!(f.iptables.attempts(), 0);
        f.namespaces.set(POD_NETNS, true);
        let outcome = r.pass(&snapshot(), &specs).await;
        assert_eq!(outcome.in_effect, names(&["web-slow"]));
        let rules = f.iptables.last(Some(POD_NETNS)).expect("the pod's rules");
        assert!(rules.contains("--queue-num 200 ") && rules.contains("--queue-num 201 "), "{rules}");
        assert_eq!(f.queues.current()[&200].netns.as_deref(), Some(POD_NETNS));
        // The fault is deleted while the pod is gone: its namespace is forgotten, not restored.
        f.namespaces.set(POD_NETNS, false);
        let attempts = f.iptables.attempts();
        let outcome = r.pass(&snapshot(), &[]).await;
        assert_eq!((outcome.in_effect.len(), outcome.reverted), (0, true));
        assert_eq!(f.iptables.attempts(), attempts);
    }

    #[tokio::test]
    async fn a_link_an_earlier_agent_left_down_is_raised_and_an_up_one_left_alone() {
        let (mut r, f) = reconciler();
        assert!(r.pass(&snapshot(), &[]).await.reverted);
        assert!(f.net.calls().is_empty(), "up: the route syncer's");
        let (mut r, f) = reconciler();
        f.net.set_link("eth0", false);
        f.net.set_routes(&[Route { dst: Ipv4Addr::new(172, 18, 0, 0), prefix: 16, via: None, emu: false }]);
        assert!(r.pass(&snapshot(), &[]).await.reverted);
        assert_eq!(f.net.link("eth0"), Some(true));
        assert!(f.net.routes().contains(&Route::emu(Ipv4Addr::new(10, 244, 1, 0), 24, Ipv4Addr::new(172, 18, 0, 3))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_impairment_is_in_effect_only_once_its_queues_are_bound() {
        let (mut r, f) = reconciler();
        f.queues.fail_next(1);
        let specs = [delay("slow", Target::Node("a".into()))];
        let outcome = r.pass(&snapshot(), &specs).await;
        assert!(outcome.in_effect.is_empty());
        assert!(f.iptables.last(None).is_some(), "the rules are set (packets pass until the queues are bound)");
        assert_eq!(r.pass(&snapshot(), &specs).await.in_effect, names(&["slow"]));
    }

    #[tokio::test]
    async fn host_faults_are_left_to_the_controller() {
        let (mut r, f) = reconciler();
        let host = [
            ("partition-1".to_string(), FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into()], one_way: false }),
            ("host-stop-host-2".to_string(), FaultSpec::HostStop { host: "host-2".into(), kill: false, nodes: vec!["a".into()] }),
        ];
        assert!(host.iter().all(|(_, spec)| fault_object::nodes_affected(spec, |_, _| None).is_empty()), "no agent holds them");
        let outcome = r.pass(&snapshot(), &host).await;
        assert!(outcome.in_effect.is_empty() && outcome.reverted);
        assert_eq!(f.nft.scripts(), ["add table ip emu-faults\ndelete table ip emu-faults\n"], "no partition of the node's");
        assert!(f.net.calls().is_empty() && f.queues.current().is_empty());
    }
}
