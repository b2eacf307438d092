//! The faults of one node (issue 7), applied by its agent from the Fault objects: impairments of
//! the node's link (its `eth0`) and of its pods' links (their `eth0`, in the pods' own
//! namespaces), each in both directions through the link emulator, the partition table, and the
//! link going down. Level-triggered: every change (and every few seconds) compares what the faults
//! want with what was applied; a fault deleted is reverted, and a restarted agent starts from a
//! clean state. The agent's own traffic to the controller goes over a Unix socket, so no fault
//! cuts it off from the API.
//!
//! The agent reports on each Fault that concerns its node, so that `emu fault` can return once a
//! fault is in effect (or reverted): it puts its finalizer on before applying the fault, writes
//! its entry of `status.appliedOn` once the fault's rules are in place, and takes both off once it
//! has reverted a fault that is deleted (which the finalizer keeps, Terminating, until then).

use crate::linkemu::{QueueConfig, COPY_MARK, DNAT_BIT, REPLY_BIT, SNAT_BIT, UNTRACKED_MARK};
use emu_api::fault::{self as fault_object, FaultSpec, Target};
use emu_api::{naming, object};
use emu_dataplane::faults as fault_rules;
use emu_logic::cluster::{ClusterConfig, NodeConfig};
use emu_logic::faults;
use emu_proto::reflector::{self, Snapshot};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Applied {
    partition: Option<String>,
    /// The `mangle` rules sending links' packets to the link emulator, by namespace (None: the
    /// node's; a pod's by name).
    queue_rules: BTreeMap<Option<String>, Vec<String>>,
    link_down: Option<bool>,
}

/// The queues of the node's own link (out, in) and the first of its pods' links.
const NODE_QUEUE: u16 = 100;
const POD_QUEUES: u16 = 200;

/// Runs forever in the agent.
pub async fn run(cluster: ClusterConfig, node: NodeConfig, socket: PathBuf) {
    let (tx, mut rx) = tokio::sync::watch::channel(Snapshot::default());
    let kinds = ["Fault", "Node", "Pod"].map(String::from).to_vec();
    tokio::spawn(reflector::run(socket.clone(), kinds, node.name.clone(), tx));
    let nft: Arc<dyn emu_host::nft::NftRunner> = Arc::new(emu_host::nft::RealNft::new());
    let mut applied = Applied::default();
    let node_ns = emu_host::net::netns_path(&naming::netns_node(&cluster.name, &node.name));
    let emulator = crate::linkemu::LinkEmulator::start();
    let mut client: Option<Client> = None;
    // When this agent applied each fault in effect (by uid), for its status entries.
    let mut since: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let snap = rx.borrow_and_update().clone();
        if snap.synced {
            if client.is_none() {
                client =
                    emu_proto::connect_unix(&socket).await.map_err(|e| tracing::warn!(error = %e, "connecting to the controller")).ok();
            }
            if let Some(c) = client.as_mut() {
                sync(&cluster, &node, &snap, c, &nft, &node_ns, &emulator, &mut applied, &mut since).await;
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// A connection to the controller's API.
pub type Client = emu_proto::api_client::ApiClient<tonic::transport::Channel>;

/// One pass: hold the faults that concern the node (finalizer first), apply exactly those, then
/// report where each stands (status entry, finalizer off once reverted).
#[allow(clippy::too_many_arguments)]
async fn sync(
    cluster: &ClusterConfig,
    node: &NodeConfig,
    snap: &Snapshot,
    client: &mut Client,
    nft: &Arc<dyn emu_host::nft::NftRunner>,
    node_ns: &Path,
    emulator: &crate::linkemu::LinkEmulator,
    applied: &mut Applied,
    since: &mut BTreeMap<String, String>,
) {
    let node_names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    // An invalid fault is applied nowhere (and let go, should this agent hold it).
    let mut list: Vec<(Value, Option<FaultSpec>)> = snap
        .objects
        .values()
        .filter(|v| object::kind(v) == fault_object::KIND)
        .map(|f| match fault_object::parse(f, &node_names) {
            Ok(spec) => (f.as_ref().clone(), Some(spec)),
            Err(e) => {
                tracing::warn!(fault = %object::name(f), error = %e, "ignoring an invalid fault");
                (f.as_ref().clone(), None)
            }
        })
        .collect();
    // The snapshot holds this node's pods only.
    let pod_node = |namespace: &str, name: &str| {
        snap.objects
            .get(&("Pod".to_string(), namespace.to_string(), name.to_string()))
            .and_then(|p| object::str_at(p, &["spec", "nodeName"]))
            .map(str::to_string)
    };
    let me = node.name.as_str();
    // Held: wanted here, with this agent's finalizer on (put on now where missing), so that a
    // deletion waits for the revert. Only held faults are applied.
    let mut held = Vec::new();
    for (fault, spec) in &mut list {
        let Some(spec) = spec else { continue };
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
    let outcome = reconcile(cluster, node, snap, &specs, nft, node_ns, emulator, applied).await;

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
struct Outcome {
    in_effect: std::collections::BTreeSet<String>,
    reverted: bool,
}

#[allow(clippy::too_many_arguments)]
async fn reconcile(
    cluster: &ClusterConfig,
    node: &NodeConfig,
    snap: &Snapshot,
    specs: &[(String, FaultSpec)],
    nft: &Arc<dyn emu_host::nft::NftRunner>,
    node_ns: &Path,
    emulator: &crate::linkemu::LinkEmulator,
    applied: &mut Applied,
) -> Outcome {
    let mut outcome = Outcome { in_effect: Default::default(), reverted: true };
    // The partition table: every node's InternalIP and pod CIDR by name.
    let addresses: BTreeMap<String, Vec<String>> = snap
        .objects
        .values()
        .filter(|v| object::kind(v) == "Node")
        .map(|n| {
            let mut list: Vec<String> = n["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str().map(str::to_string))
                .collect();
            list.extend(object::str_at(n, &["spec", "podCIDR"]).map(str::to_string));
            (object::name(n).to_string(), list)
        })
        .collect();
    let script = fault_rules::partition_script(specs, &addresses);
    let mut partitioned = applied.partition.as_deref() == Some(script.as_str());
    if !partitioned {
        let (runner, text) = (nft.clone(), script.clone());
        match tokio::task::spawn_blocking(move || runner.apply(&text)).await {
            Ok(Ok(())) => {
                tracing::info!(
                    partitions = specs.iter().filter(|(_, s)| matches!(s, FaultSpec::Partition { .. })).count(),
                    "partition rules applied"
                );
                applied.partition = Some(script);
                partitioned = true;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "applying the partition rules failed"),
            Err(e) => tracing::warn!(error = %e, "applying the partition rules failed"),
        }
    }
    outcome.reverted &= partitioned;
    for (name, spec) in specs {
        if partitioned && matches!(spec, FaultSpec::Partition { .. }) {
            outcome.in_effect.insert(name.clone());
        }
    }

    // Link impairments: the node's link (its eth0) and its pods' links (their eth0, in the
    // pods' namespaces), each direction to a queue of the link emulator.
    let by_target = fault_rules::netem_by_target(specs);
    // The namespace whose rules carry each target's impairments (None: the node's), and its
    // first queue (out; in is the next).
    let mut queued: Vec<(Target, Option<String>, u16)> = Vec::new();
    let mut queues: BTreeMap<u16, QueueConfig> = BTreeMap::new();
    // The mangle rules of each namespace: None for the node's, else a pod's namespace name.
    let mut rules: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut queue_link = |netns: Option<String>, q: u16, netem: &emu_api::fault::Netem| {
        let dev = emu_host::net::ETH0;
        let list = rules.entry(netns.clone()).or_default();
        // The emulator's own duplicates pass (they were queued once already).
        let copies = format!("-m mark --mark {COPY_MARK:#x}/{COPY_MARK:#x} -j RETURN");
        list.push(format!("-A POSTROUTING {copies}"));
        list.push(format!("-A PREROUTING {copies}"));
        // Leaving through `dev`, and arriving through it. What conntrack knows of a packet
        // leaving the node tells the emulator how to copy it (see crate::linkemu); a pod
        // translates nothing.
        if netem.duplicate.is_some() && netns.is_none() {
            for (matched, bit) in [("--ctstate DNAT", DNAT_BIT), ("--ctstate SNAT", SNAT_BIT), ("--ctdir REPLY", REPLY_BIT)] {
                list.push(format!("-A POSTROUTING -o {dev} -m conntrack {matched} -j MARK --or-mark {bit:#x}"));
            }
        }
        list.push(format!("-A POSTROUTING -o {dev} -j NFQUEUE --queue-num {q} --queue-bypass"));
        list.push(format!("-A PREROUTING -i {dev} -j NFQUEUE --queue-num {} --queue-bypass", q + 1));
        let netns = netns.map(|n| emu_host::net::netns_path(&n));
        queues.insert(q, QueueConfig { netem: netem.clone(), leaving: true, netns: netns.clone() });
        queues.insert(q + 1, QueueConfig { netem: netem.clone(), leaving: false, netns });
    };
    if let Some(n) = by_target.get(&Target::Node(node.name.clone())) {
        queue_link(None, NODE_QUEUE, n);
        queued.push((Target::Node(node.name.clone()), None, NODE_QUEUE));
    }
    let mut next = POD_QUEUES;
    for (target, netem) in &by_target {
        let Target::Pod { namespace, name } = target else { continue };
        let pod = snap.objects.values().find(|p| {
            object::kind(p) == "Pod"
                && object::namespace(p) == namespace
                && object::name(p) == name
                && object::str_at(p, &["spec", "nodeName"]) == Some(node.name.as_str())
        });
        let Some(pod) = pod else { continue };
        let netns = naming::netns_pod(&cluster.name, object::uid(pod));
        // A pod whose sandbox is not there yet gets its rules on a later pass.
        if emu_host::net::netns_path(&netns).exists() {
            queue_link(Some(netns.clone()), next, netem);
            queued.push((target.clone(), Some(netns), next));
            next += 2;
        }
    }
    // The emulator knows a queue before packets are sent to it: the rules come once it has bound
    // its queues (until then they would let packets pass unimpaired).
    let bound = bound_queues(emulator, emulator.set(queues)).await;
    // Namespaces that had rules and have none now are emptied (a pod's that is gone is forgotten).
    let emptied: Vec<Option<String>> = applied.queue_rules.keys().filter(|n| !rules.contains_key(*n)).cloned().collect();
    for netns in emptied {
        rules.insert(netns, Vec::new());
    }
    let wanted_rules = rules.clone();
    for (netns, list) in rules {
        if applied.queue_rules.get(&netns) == Some(&list) {
            continue;
        }
        if let Some(name) = &netns {
            if list.is_empty() && !emu_host::net::netns_path(name).exists() {
                applied.queue_rules.remove(&netns);
                continue;
            }
        }
        match mangle_rules(netns.as_deref(), &list).await {
            Ok(()) => {
                tracing::info!(netns = ?netns, rules = ?list, "link impairments set");
                if list.is_empty() && netns.is_some() {
                    applied.queue_rules.remove(&netns);
                } else {
                    applied.queue_rules.insert(netns, list);
                }
            }
            // Without iptables there is nothing to undo either.
            Err(e) if list.is_empty() && !applied.queue_rules.contains_key(&netns) => {
                tracing::debug!(error = %e, "no link impairments to clear");
                applied.queue_rules.insert(netns, list);
            }
            Err(e) => {
                tracing::warn!(netns = ?netns, error = %e, "setting link impairments failed");
                outcome.reverted = false;
            }
        }
    }
    let in_place = |netns: &Option<String>| {
        wanted_rules.get(netns).is_none_or(|want| applied.queue_rules.get(netns).map_or(want.is_empty(), |got| got == want))
    };
    for (name, spec) in specs {
        if let FaultSpec::Netem { target, .. } = spec {
            if queued.iter().any(|(t, netns, q)| t == target && in_place(netns) && bound.contains(q) && bound.contains(&(q + 1))) {
                outcome.in_effect.insert(name.clone());
            }
        }
    }

    // The node's link.
    let down = specs.iter().any(|(_, s)| matches!(s, FaultSpec::LinkDown { node: n } if *n == node.name));
    // At the agent's start (nothing applied yet) a link that is up is left alone: its routes
    // are the route syncer's, and this snapshot may not list every node yet (putting routes
    // back from it would delete the others'). Only a link an earlier agent left down is raised.
    let change = match applied.link_down {
        Some(prev) => prev != down,
        None => down || !link_is_up(node_ns).await,
    };
    if !change {
        applied.link_down = Some(down);
    } else {
        match set_link(cluster, node, snap, node_ns, down).await {
            Ok(()) => {
                tracing::info!(down, "node link set");
                applied.link_down = Some(down);
            }
            Err(e) => tracing::warn!(error = %e, "setting the node's link failed"),
        }
    }
    if applied.link_down != Some(down) {
        outcome.reverted = false;
    } else if down {
        for (name, spec) in specs {
            if matches!(spec, FaultSpec::LinkDown { .. }) {
                outcome.in_effect.insert(name.clone());
            }
        }
    }
    outcome
}

/// The queues the link emulator has bound once it has taken up `generation` of its settings
/// (waiting at most a second; none after that).
async fn bound_queues(emulator: &crate::linkemu::LinkEmulator, generation: u64) -> std::collections::BTreeSet<u16> {
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

/// Whether the node's `eth0` is up (operstate), as an earlier agent may have left it down.
async fn link_is_up(node_ns: &Path) -> bool {
    let ns = node_ns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("ip")
            .args([
                "-n",
                &ns.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                "-o",
                "link",
                "show",
                emu_host::net::ETH0,
            ])
            .output()
            .map(|o| !String::from_utf8_lossy(&o.stdout).contains("state DOWN"))
            .unwrap_or(true)
    })
    .await
    .unwrap_or(true)
}

/// Takes the node's `eth0` down or up. The kernel drops the routes through a link that goes
/// down, so bringing it up puts back the node's routes to the service CIDR and to the other
/// nodes' pods.
async fn set_link(cluster: &ClusterConfig, node: &NodeConfig, snap: &Snapshot, node_ns: &Path, down: bool) -> Result<(), String> {
    emu_host::net::set_link_up(node_ns, emu_host::net::ETH0, !down).await.map_err(|e| e.to_string())?;
    if down {
        return Ok(());
    }
    let nodes = snap.objects.values().map(|n| n.as_ref());
    crate::agent::restore_routes(node_ns, &cluster.service_cidr, nodes, &node.name).await.map_err(|e| format!("{e:#}"))
}

/// Makes the `mangle` table of the node (or of the pod's namespace `netns`) exactly `rules`
/// (iptables-restore replaces the table in one transaction), and its `raw` table send the link
/// emulator's untracked duplicates untracked while there are rules. iptables, not nft: the kernel has NFQUEUE only as an x_tables target.
async fn mangle_rules(netns: Option<&str>, rules: &[String]) -> Result<(), String> {
    let mut input = String::from(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    for r in rules {
        input.push_str(r);
        input.push('\n');
    }
    input.push_str("COMMIT\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    if !rules.is_empty() {
        input.push_str(&format!("-A OUTPUT -m mark --mark {UNTRACKED_MARK:#x}/{UNTRACKED_MARK:#x} -j CT --notrack\n"));
    }
    input.push_str("COMMIT\n");
    let netns = netns.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut command = match &netns {
            Some(name) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", name, "iptables-restore"]);
                c
            }
            None => std::process::Command::new("iptables-restore"),
        };
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running iptables-restore: {e}"))?;
        child.stdin.take().map(|mut i| i.write_all(input.as_bytes())).transpose().map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("iptables-restore: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    })
    .await
    .map_err(|e| e.to_string())?
}
