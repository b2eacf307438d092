//! `emu fault …`: network faults for labs and tests (issue 7). Each command records a Fault
//! object (`emu.dev/v1`) in the API; the node agents apply it to the emulated links (netem in
//! both directions, the partition's drop rules, a link down) and revert it when it is deleted.
//! Nothing here touches a namespace itself.
//!
//! Each command returns once the fault is in effect (or reverted), unless `--wait=false`: it
//! follows the Faults until every affected agent has written its entry of `status.appliedOn`
//! (after a create), or taken its finalizer off (after a delete). A stopped node's agent is
//! frozen or dead: nothing waits for it; it catches up when the node is started, and `emu node
//! start` waits for that.
//!
//! Emulated hosts (`emu up --hosts N`) take `host/NAME` targets: a host partition is applied by
//! the controller in the hosts' LAN (the command waits for its entry instead of agents'), and
//! `emu host stop|start` is `emu node stop|start` for every node of a host at once, done by the
//! controller and its provider. Nothing waits for the agents of a stopped host, nor for those a
//! host partition cuts off from the control plane.

use crate::context::{api_error, Ctx};
use crate::remote::relay_error;
use crate::verbs::{list, Client};
use crate::Globals;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_api::fault::{self, FaultSpec, Netem, Target};
use emu_api::object;
use emu_logic::faults;
use emu_proto::{ApplyRequest, DeleteRequest, HostOpRequest, HostsRequest, NodeOpRequest, Object, ObjectRef};
use emu_scenario::steps::NodeOp;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a command waits for the agents to apply or revert what it changed; None: not at all
/// (`--wait=false`).
pub(crate) type Wait = Option<Duration>;

/// `--wait` (as kubectl spells a boolean flag: `--wait=false`) and `--timeout`.
fn wait_of(wait: bool, timeout: Duration) -> Wait {
    wait.then_some(timeout)
}

/// `--timeout`: `30s`, `500ms`, `2m`.
fn timeout_arg(text: &str) -> Result<Duration, String> {
    emu_scenario::steps::parse_duration_ms(text).map(Duration::from_millis)
}

/// `30s`, `1.5s`: a timeout in messages.
fn seconds(d: Duration) -> String {
    emu_scenario::steps::format_duration_ms(d.as_millis() as u64)
}

#[derive(Args, Debug)]
pub struct FaultArgs {
    #[command(subcommand)]
    pub command: FaultCommand,
    /// Return once every affected node's agent has applied the fault (clear: reverted it);
    /// --wait=false returns at once.
    #[arg(long = "wait", global = true, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait (with --wait), e.g. 30s, 2m; past it the command fails naming the nodes
    /// whose agents have not confirmed.
    #[arg(long, global = true, default_value = "30s", value_parser = timeout_arg)]
    pub timeout: Duration,
}

/// TARGET is a node name, `pod/NAME` or `host/NAME`.
#[derive(Subcommand, Debug)]
pub enum FaultCommand {
    /// Drop traffic between two groups of nodes (comma-separated names) and their pods, or
    /// between emulated hosts (`host/host-2 host/host-1,host/host-3`: their LAN traffic, the
    /// agents' connections to the control plane included).
    Partition {
        /// One side: node names, comma-separated (`node-1,node-2`), or hosts (`host/host-2`).
        a: String,
        /// The other side, likewise.
        b: String,
        /// Only from the first group to the second.
        #[arg(long)]
        one_way: bool,
    },
    /// Delay every packet crossing the target's link, both ways (a round trip through it takes
    /// twice as long more).
    Delay {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The delay added each way, e.g. `100ms`.
        delay: String,
        /// Vary each packet's delay by up to this much either way, e.g. `10ms`.
        #[arg(long)]
        jitter: Option<String>,
        /// Correlation of successive delays, e.g. 25%.
        #[arg(long)]
        correlation: Option<String>,
    },
    /// Lose this share of the packets crossing the target's link, each way.
    Loss {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The share of packets lost, e.g. `10%`.
        percent: String,
        /// Correlation of successive losses (bursts), e.g. 25%.
        #[arg(long)]
        correlation: Option<String>,
    },
    /// Send this share of the packets crossing the target's link twice, each way.
    Duplicate {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The share of packets sent twice, e.g. `5%`.
        percent: String,
    },
    /// Corrupt a bit in this share of the packets.
    Corrupt {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The share of packets corrupted, e.g. `1%`.
        percent: String,
    },
    /// Send this share of the packets at once while the others wait `--delay` (reordering).
    Reorder {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The share of packets sent at once, ahead of the delayed others, e.g. `25%`.
        percent: String,
        /// How long the other packets wait.
        #[arg(long, default_value = "10ms")]
        delay: String,
    },
    /// Limit the link's rate, e.g. 1mbit.
    Rate {
        /// A node's name, `pod/NAME` for one pod's link (namespace: -n), or `host/NAME` for an
        /// emulated host's LAN link.
        target: String,
        /// The rate, e.g. `1mbit`, `500kbit`.
        rate: String,
    },
    /// Take a node's link down (or bring it back up).
    Link {
        /// The node's name.
        node: String,
        /// `down` or `up`.
        state: String,
    },
    /// The faults in force.
    List,
    /// Revert the named faults, or all.
    Clear {
        /// The faults' names (`emu fault list`); none: every fault.
        names: Vec<String>,
    },
}

pub fn fault(a: FaultArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let nodes = ctx.node_names()?;
    let existing = ctx.block_on(list(&mut client, fault::KIND, "", ""))?;
    let wait = wait_of(a.wait, a.timeout);
    let ns = g.namespace_or_default();
    let target = |t: &str| -> Target {
        if let Some(host) = fault::host_target(t) {
            return Target::Host(host.to_string());
        }
        match t.strip_prefix("pod/").or_else(|| t.strip_prefix("pods/")).or_else(|| t.strip_prefix("po/")) {
            Some(pod) => Target::Pod { namespace: ns.clone(), name: pod.to_string() },
            None => Target::Node(t.to_string()),
        }
    };
    let pct = |s: &str| fault::parse_percent(s).map_err(anyhow::Error::msg);
    let ms = |s: &str| fault::parse_duration_ms(s).map_err(anyhow::Error::msg);
    let netem = |t: &str, netem: Netem| FaultSpec::Netem { target: target(t), netem };
    if let FaultCommand::Link { node, .. } = &a.command {
        if let Some(host) = fault::host_target(node) {
            bail!(
                "target host/{host}: `emu fault link` takes a node; to take host {host}'s LAN link down, stop the host \
                 (`emu host stop {host}`) or partition it (`emu fault partition host/{host} …`)"
            );
        }
    }
    let (kind, spec) = match &a.command {
        FaultCommand::List => return list_faults(&ctx, &mut client, &existing, &nodes),
        FaultCommand::Clear { names } => return print_lines(clear(&ctx, &mut client, &existing, names, wait)),
        FaultCommand::Partition { a, b, one_way } => ("partition", partition_spec(a, b, *one_way)?),
        FaultCommand::Delay { target: t, delay, jitter, correlation } => {
            let n = Netem {
                delay_ms: Some(ms(delay)?),
                jitter_ms: jitter.as_deref().map(ms).transpose()?,
                delay_correlation: correlation.as_deref().map(pct).transpose()?,
                ..Default::default()
            };
            ("delay", netem(t, n))
        }
        FaultCommand::Loss { target: t, percent, correlation } => {
            let n =
                Netem { loss: Some(pct(percent)?), loss_correlation: correlation.as_deref().map(pct).transpose()?, ..Default::default() };
            ("loss", netem(t, n))
        }
        FaultCommand::Duplicate { target: t, percent } => {
            ("duplicate", netem(t, Netem { duplicate: Some(pct(percent)?), ..Default::default() }))
        }
        FaultCommand::Corrupt { target: t, percent } => ("corrupt", netem(t, Netem { corrupt: Some(pct(percent)?), ..Default::default() })),
        FaultCommand::Reorder { target: t, percent, delay } => {
            ("reorder", netem(t, Netem { reorder: Some(pct(percent)?), delay_ms: Some(ms(delay)?), ..Default::default() }))
        }
        FaultCommand::Rate { target: t, rate } => {
            ("rate", netem(t, Netem { rate: Some(fault::parse_rate(rate).map_err(anyhow::Error::msg)?), ..Default::default() }))
        }
        FaultCommand::Link { node, state } => match state.as_str() {
            "down" => ("link-down", FaultSpec::LinkDown { node: node.clone() }),
            "up" => {
                let down: Vec<String> = existing
                    .iter()
                    .filter(|f| matches!(fault::parse(f, &nodes), Ok(FaultSpec::LinkDown { node: n }) if n == *node))
                    .map(|f| object::name(f).to_string())
                    .collect();
                if down.is_empty() {
                    println!("node {node}'s link is up");
                    return Ok(0);
                }
                return print_lines(clear(&ctx, &mut client, &existing, &down, wait));
            }
            other => bail!("link state {other:?}: use down or up"),
        },
    };
    let name = faults::next_name(kind, &existing);
    println!("{}", record(&ctx, &mut client, &nodes, &name, &spec, wait)?);
    Ok(0)
}

/// A partition between two comma-separated groups: of nodes, or of `host/NAME`s (a host
/// partition); not a mix.
fn partition_spec(a: &str, b: &str, one_way: bool) -> anyhow::Result<FaultSpec> {
    let split = |s: &str| -> Vec<String> { s.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect() };
    let (a, b) = (split(a), split(b));
    let hosts = |l: &[String]| l.iter().filter(|t| fault::host_target(t).is_some()).count();
    match (hosts(&a) + hosts(&b), a.len() + b.len()) {
        (0, _) => Ok(FaultSpec::Partition { a, b, one_way }),
        (h, n) if h == n => {
            let names = |l: &[String]| l.iter().filter_map(|t| fault::host_target(t)).map(str::to_string).collect();
            Ok(FaultSpec::HostPartition { a: names(&a), b: names(&b), one_way })
        }
        _ => bail!("partition: give nodes on both sides, or hosts (`host/NAME`) on both sides, not a mix"),
    }
}

/// What the commands know of the cluster's emulated hosts: their names, each node's host, and the
/// control plane's host (through the controller: `Relay.Hosts`).
pub(crate) struct Hosts {
    pub names: Vec<String>,
    pub node_hosts: BTreeMap<String, String>,
    pub control: String,
}

pub(crate) fn hosts(ctx: &Ctx) -> anyhow::Result<Hosts> {
    let mut relay = ctx.relay.clone();
    let r = ctx.block_on(relay.hosts(HostsRequest {})).map_err(relay_error)?.into_inner();
    let node_hosts = r.hosts.iter().flat_map(|h| h.nodes.iter().map(|n| (n.clone(), h.name.clone()))).collect();
    Ok(Hosts { names: r.hosts.into_iter().map(|h| h.name).collect(), node_hosts, control: r.control_plane })
}

impl Hosts {
    /// The nodes nothing waits for under `faults`: stopped, or cut off by a host partition.
    fn unreachable(&self, faults: &[Value]) -> Vec<String> {
        faults::unreachable_nodes(faults, &self.node_hosts, &self.control)
    }

    /// The nodes a host partition of `faults` cuts off from the control plane.
    fn cut_off(&self, faults: &[Value]) -> Vec<String> {
        faults::cut_off_nodes(faults, &self.node_hosts, &self.control)
    }
}

/// Where a fault stands: a host partition waits for the controller's LAN reconciler, the other
/// faults for the agents of `affected` (but not those of `unreachable` nodes).
fn progress_of(f: &Value, affected: &[String], unreachable: &[String]) -> faults::Progress {
    if faults::applied_in_lan(f) {
        faults::lan_progress(f)
    } else {
        faults::progress(f, affected, unreachable)
    }
}

/// Records the fault `name` (which must be new) and, with `wait`, waits until every affected
/// node's agent has applied it; returns the line that says so.
pub(crate) fn record(ctx: &Ctx, client: &mut Client, nodes: &[String], name: &str, spec: &FaultSpec, wait: Wait) -> anyhow::Result<String> {
    let started = Instant::now();
    if let FaultSpec::HostStop { host, kill, .. } = spec {
        return host_op(ctx, client, host, NodeOp::Stop { kill: *kill }, wait);
    }
    let object = fault::to_object(name, spec);
    // The same checks the agents make, so that a bad fault is refused here with its reason.
    fault::parse(&object, nodes).map_err(|e| anyhow::anyhow!("fault {name}: {e}"))?;
    let hosts = hosts(ctx)?;
    fault::check_hosts(spec, &hosts.names, &hosts.control).map_err(|e| anyhow::anyhow!("fault {name}: {e}"))?;
    let request = ApplyRequest { objects: vec![Object { json: object.to_string() }], create_only: true, dry_run: false };
    let created = ctx.block_on(client.apply(request)).map_err(api_error)?.into_inner();
    let uid = created
        .results
        .first()
        .and_then(|r| r.object.as_ref())
        .and_then(|o| serde_json::from_str::<Value>(&o.json).ok())
        .map(|o| object::uid(&o).to_string());
    let (_, target, details) = faults::describe(spec);
    let line = format!("fault/{name} created: {target} {details}");
    let Some(timeout) = wait else { return Ok(line) };
    let pods = pod_nodes(ctx, client, std::slice::from_ref(spec))?;
    let affected = fault::nodes_affected(spec, |ns, n| pods.get(&(ns.to_string(), n.to_string())).cloned());
    let (mut stopped, mut cut_off) = (Vec::new(), Vec::new());
    let pending = follow(ctx, client, timeout.saturating_sub(started.elapsed()), |all| {
        let snapshot: Vec<Value> = all.values().cloned().collect();
        (stopped, cut_off) = (faults::stopped_nodes(&snapshot), hosts.cut_off(&snapshot));
        match all.get(name).filter(|f| uid.as_deref().is_none_or(|u| u == object::uid(f))) {
            Some(f) => progress_of(f, &affected, &hosts.unreachable(&snapshot)).waiting_for,
            // Cleared meanwhile: nothing to wait for.
            None => Vec::new(),
        }
    })?;
    if spec.is_host_fault() && !pending.is_empty() {
        bail!(
            "fault/{name} created, but the controller has not set it in the hosts' LAN within {} (see the controller's log). \
             The fault stays recorded until `emu fault clear {name}`",
            seconds(timeout)
        );
    }
    if !pending.is_empty() {
        bail!(
            "fault/{name} created, but the agent of {} has not applied it within {}: is it running (`emu get nodes`)? \
             The fault stays recorded until `emu fault clear {name}`",
            nodes_phrase(&pending),
            seconds(timeout)
        );
    }
    Ok(line + &stopped_note(&affected, &stopped, &cut_off, "applies"))
}

/// ` (node-2 is stopped: it applies the fault when started)` for the nodes of `nodes` that are
/// stopped, and ` (node-3 is cut off …: it applies the fault once healed)` for those a host
/// partition cuts off from the control plane (`cut_off`); empty when none is.
fn stopped_note(nodes: &[String], stopped: &[String], cut_off: &[String], verb: &str) -> String {
    let skipped: Vec<String> = nodes.iter().filter(|n| stopped.contains(n)).cloned().collect();
    let mut out = match skipped.len() {
        0 => String::new(),
        1 => format!(" ({} is stopped: it {verb} the fault when started)", skipped[0]),
        _ => format!(" ({} are stopped: they {} the fault when started)", skipped.join(", "), verb.trim_end_matches('s')),
    };
    let cut: Vec<String> = nodes.iter().filter(|n| cut_off.contains(n) && !stopped.contains(n)).cloned().collect();
    out += &match cut.len() {
        0 => String::new(),
        1 => format!(" ({} is cut off from the control plane by a host partition: it {verb} the fault once healed)", cut[0]),
        _ => format!(
            " ({} are cut off from the control plane by a host partition: they {} the fault once healed)",
            cut.join(", "),
            verb.trim_end_matches('s')
        ),
    };
    out
}

/// `node node-2`, `nodes node-2, node-3`.
fn nodes_phrase(nodes: &[String]) -> String {
    format!("{} {}", if nodes.len() == 1 { "node" } else { "nodes" }, nodes.join(", "))
}

/// The node of each pod that a fault of `specs` targets, by (namespace, name); the pods are
/// listed only when a fault targets one.
fn pod_nodes(ctx: &Ctx, client: &mut Client, specs: &[FaultSpec]) -> anyhow::Result<BTreeMap<(String, String), String>> {
    if !specs.iter().any(|s| matches!(s, FaultSpec::Netem { target: Target::Pod { .. }, .. })) {
        return Ok(BTreeMap::new());
    }
    let pods = ctx.block_on(list(client, "Pod", "", ""))?;
    Ok(pods
        .iter()
        .filter_map(|p| {
            Some(((object::namespace(p).to_string(), object::name(p).to_string()), object::str_at(p, &["spec", "nodeName"])?.to_string()))
        })
        .collect())
}

/// Follows the Faults (a watch) until `pending` of them (by name) names nothing, or `timeout`
/// passes; returns what is pending then (empty: done).
fn follow(
    ctx: &Ctx,
    client: &mut Client,
    timeout: Duration,
    mut pending: impl FnMut(&BTreeMap<String, Value>) -> Vec<String>,
) -> anyhow::Result<Vec<String>> {
    use emu_proto::watch_event::Type;
    let deadline = tokio::time::Instant::now() + timeout;
    ctx.block_on(async {
        let mut now: BTreeMap<String, Value> = BTreeMap::new();
        loop {
            let request = emu_proto::WatchRequest { kinds: vec![fault::KIND.into()], node_name: String::new(), resource_version: 0 };
            let mut stream = client.watch(request).await.map_err(api_error)?.into_inner();
            let mut synced = false;
            loop {
                let event = match tokio::time::timeout_at(deadline, stream.message()).await {
                    Err(_) => return Ok(pending(&now)),
                    Ok(event) => event.map_err(api_error)?,
                };
                // The controller ended the watch: watch again (from a fresh list).
                let Some(event) = event else { break };
                let object: Option<Value> = event.object.as_ref().and_then(|o| serde_json::from_str(&o.json).ok());
                match (Type::try_from(event.r#type), object) {
                    (Ok(Type::Reset), _) => now.clear(),
                    (Ok(Type::Synced), _) => synced = true,
                    (Ok(Type::Added | Type::Modified), Some(o)) => {
                        now.insert(object::name(&o).to_string(), o);
                    }
                    (Ok(Type::Deleted), Some(o)) => {
                        now.remove(object::name(&o));
                    }
                    _ => {}
                }
                if synced && pending(&now).is_empty() {
                    return Ok(Vec::new());
                }
            }
        }
    })
}

fn list_faults(ctx: &Ctx, client: &mut Client, existing: &[Value], nodes: &[String]) -> anyhow::Result<i32> {
    if existing.is_empty() {
        println!("No faults in force.");
        return Ok(0);
    }
    let now = emu_api::time::now();
    let specs: Vec<Result<FaultSpec, String>> = existing.iter().map(|f| fault::parse(f, nodes)).collect();
    let pods = pod_nodes(ctx, client, &specs.iter().flatten().cloned().collect::<Vec<_>>())?;
    let stopped = hosts(ctx)?.unreachable(existing);
    let mut rows = vec![["NAME", "TYPE", "TARGET", "DETAILS", "STATUS", "IN EFFECT ON", "AGE"].map(String::from).to_vec()];
    for (f, spec) in existing.iter().zip(&specs) {
        let (kind, target, details) = match spec {
            Ok(spec) => faults::describe(spec),
            Err(e) => ("invalid".into(), "-".into(), e.clone()),
        };
        let (status, on) = match spec {
            // Applied by `emu node stop` itself.
            Ok(FaultSpec::NodeStop { node, .. }) => ("Applied", vec![node.clone()]),
            // Applied by `emu host stop` itself.
            Ok(FaultSpec::HostStop { host, .. }) => ("Applied", vec![format!("host/{host}")]),
            Ok(spec) => {
                let affected = fault::nodes_affected(spec, |ns, n| pods.get(&(ns.to_string(), n.to_string())).cloned());
                let p = progress_of(f, &affected, &stopped);
                (faults::status_word(&p), p.in_effect)
            }
            Err(_) => ("Invalid", Vec::new()),
        };
        let created = object::str_at(f, &["metadata", "creationTimestamp"]).and_then(emu_api::time::parse_rfc3339);
        let age = created.map_or("<unknown>".into(), |t| emu_kubectl::human_duration(now - t));
        let on = if on.is_empty() { "<none>".to_string() } else { on.join(",") };
        rows.push(vec![object::name(f).to_string(), kind, target, details, status.to_string(), on, age]);
    }
    print!("{}", emu_kubectl::tabwrite(&rows, 0, 3));
    Ok(0)
}

fn print_lines(lines: anyhow::Result<Vec<String>>) -> anyhow::Result<i32> {
    for l in lines? {
        println!("{l}");
    }
    Ok(0)
}

/// Reverts the named faults of `existing` (all when `names` is empty) and, with `wait`, waits
/// until every agent that applied them has reverted them; returns a line for each.
pub(crate) fn clear(ctx: &Ctx, client: &mut Client, existing: &[Value], names: &[String], wait: Wait) -> anyhow::Result<Vec<String>> {
    let chosen: Vec<&Value> = existing.iter().filter(|f| names.is_empty() || names.iter().any(|n| n == object::name(f))).collect();
    if let Some(missing) = names.iter().find(|n| !existing.iter().any(|f| object::name(f) == n.as_str())) {
        bail!("fault {missing:?} not found (see `emu fault list`)");
    }
    if chosen.is_empty() {
        return Ok(vec!["No faults in force.".into()]);
    }
    let started = Instant::now();
    // Stopped nodes are started first (each waiting for its agent to catch up), so that their
    // agents revert the other faults too.
    let (host_stops, chosen): (Vec<&Value>, Vec<&Value>) = chosen.into_iter().partition(|f| f["spec"]["hostStop"]["host"].is_string());
    let (stops, others): (Vec<&Value>, Vec<&Value>) = chosen.into_iter().partition(|f| f["spec"]["nodeStop"]["node"].is_string());
    let mut lines = Vec::new();
    for f in host_stops {
        let host = f["spec"]["hostStop"]["host"].as_str().unwrap_or_default();
        host_op(ctx, client, host, NodeOp::Start, wait.map(|t| t.saturating_sub(started.elapsed())))?;
        lines.push(format!("fault/{} cleared", object::name(f)));
    }
    for f in stops {
        let node = f["spec"]["nodeStop"]["node"].as_str().unwrap_or_default();
        start_node(ctx, client, node, wait.map(|t| t.saturating_sub(started.elapsed())))?;
        lines.push(format!("fault/{} cleared", object::name(f)));
    }
    let mut deleted = Vec::new();
    for f in others {
        deleted.push((object::name(f).to_string(), delete_fault(ctx, client, object::name(f))?));
    }
    let Some(timeout) = wait else {
        lines.extend(deleted.iter().map(|(name, _)| format!("fault/{name} cleared")));
        return Ok(lines);
    };
    let hosts = hosts(ctx)?;
    let (mut stopped, mut cut_off, mut away) = (Vec::new(), Vec::new(), Vec::new());
    let mut left: BTreeMap<String, Value> = BTreeMap::new();
    let pending = follow(ctx, client, timeout.saturating_sub(started.elapsed()), |all| {
        let snapshot: Vec<Value> = all.values().cloned().collect();
        (stopped, cut_off, away) = (faults::stopped_nodes(&snapshot), hosts.cut_off(&snapshot), hosts.unreachable(&snapshot));
        // The faults deleted here that are still there (not one made again under the same name).
        left = deleted
            .iter()
            .filter_map(|(name, uid)| Some((name.clone(), all.get(name).filter(|f| object::uid(f) == uid)?.clone())))
            .collect();
        let mut nodes: Vec<String> = left.values().flat_map(|f| progress_of(f, &[], &away).waiting_for).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    })?;
    if !pending.is_empty() {
        let waiting: Vec<String> =
            left.iter().filter(|(_, f)| !progress_of(f, &[], &away).waiting_for.is_empty()).map(|(n, _)| format!("fault/{n}")).collect();
        let who = if pending.iter().all(|n| n == faults::LAN_APPLIER) {
            "the controller (in the hosts' LAN)".to_string()
        } else {
            format!("the agent of {}", nodes_phrase(&pending))
        };
        bail!(
            "{who} has not reverted {} within {}: is it running (`emu get nodes`)? The fault stays (Terminating) until it has",
            waiting.join(", "),
            seconds(timeout)
        );
    }
    for (name, _) in &deleted {
        // Still held by stopped nodes' agents: each reverts it when its node is started.
        let holders = left.get(name).map(faults::holders).unwrap_or_default();
        lines.push(format!("fault/{name} cleared{}", stopped_note(&holders, &stopped, &cut_off, "reverts")));
    }
    Ok(lines)
}

/// Deletes the Fault `name` (the agents revert it, then take their finalizers off); returns its
/// uid.
fn delete_fault(ctx: &Ctx, client: &mut Client, name: &str) -> anyhow::Result<String> {
    let r = ObjectRef { kind: fault::KIND.into(), namespace: String::new(), name: name.into() };
    let deleted = ctx
        .block_on(client.delete(DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 }))
        .map_err(api_error)?
        .into_inner();
    let object: Option<Value> = deleted.object.and_then(|o| serde_json::from_str(&o.json).ok());
    Ok(object.map(|o| object::uid(&o).to_string()).unwrap_or_default())
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
    /// Return once the node is stopped (its processes frozen) or started (its agent caught up
    /// with the faults that changed meanwhile); --wait=false returns at once.
    #[arg(long = "wait", global = true, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait (with --wait), e.g. 30s, 2m; past it the command fails saying what its
    /// agent has not done yet.
    #[arg(long, global = true, default_value = "30s", value_parser = timeout_arg)]
    pub timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Stop a node: its agent and pods frozen, its links down (a node that lost power, as its
    /// peers see it). Its heartbeats stop: NotReady, then its pods are evicted.
    Stop {
        /// The node's name (`emu get nodes`).
        node: String,
        /// Kill its agent and pods instead of freezing them: `start` then boots it afresh (the
        /// agent restarts the pods that were not evicted meanwhile).
        #[arg(long)]
        kill: bool,
    },
    /// Start a stopped node again: links up, agent and pods running on (or restarted).
    Start {
        /// The node's name.
        node: String,
    },
    /// Remove a node for good (`kubectl delete node` once the machine is gone): its processes
    /// and namespaces go, its Node object and pods are deleted, its ReplicaSets' pods are
    /// replaced on the other nodes.
    Remove {
        /// The node's name.
        node: String,
    },
}

pub fn node(a: NodeArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let (node, op) = match a.command {
        NodeCommand::Stop { node, kill } => (node, NodeOp::Stop { kill }),
        NodeCommand::Start { node } => (node, NodeOp::Start),
        NodeCommand::Remove { node } => (node, NodeOp::Remove),
    };
    println!("{}", node_op(&ctx, &mut client, &node, op, wait_of(a.wait, a.timeout))?);
    Ok(0)
}

/// `emu node stop|start|remove NODE`, done by the controller and the provider of the node's
/// machine; returns the line that says what happened. The links go down or up (with the node's
/// routes) before it returns; with `wait`, the node's processes are frozen (or thawed) and, after
/// a start, its agent has caught up with the faults.
pub(crate) fn node_op(ctx: &Ctx, client: &mut Client, node: &str, op: NodeOp, wait: Wait) -> anyhow::Result<String> {
    // A scenario's `host: {stop: NAME}` step.
    if let Some(host) = fault::host_target(node) {
        return host_op(ctx, client, host, op, wait);
    }
    let mut relay = ctx.relay.clone();
    let request = |kill| NodeOpRequest { node: node.to_string(), kill, wait_ms: wait_ms(wait) };
    let done = match op {
        NodeOp::Stop { kill } => ctx.block_on(relay.node_stop(request(kill))),
        NodeOp::Start => return start_node(ctx, client, node, wait),
        NodeOp::Remove => ctx.block_on(relay.node_remove(request(false))),
    };
    Ok(done.map_err(relay_error)?.into_inner().message)
}

/// A wait as the controller takes it: milliseconds, 0 for none.
fn wait_ms(wait: Wait) -> u64 {
    wait.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Starts the stopped `node` (links up, routes back, its processes thawed or, after a kill, a new
/// agent started; its node-stop fault deleted) and, with `wait`, waits until its agent has
/// caught up: reverted the faults cleared while it was stopped, applied those made meanwhile, and
/// (a new agent) applied again every fault of its node. Returns the line that says so.
fn start_node(ctx: &Ctx, client: &mut Client, node: &str, wait: Wait) -> anyhow::Result<String> {
    let began = Instant::now();
    let mut relay = ctx.relay.clone();
    let started = ctx
        .block_on(relay.node_start(NodeOpRequest { node: node.to_string(), kill: false, wait_ms: wait_ms(wait) }))
        .map_err(relay_error)?
        .into_inner();
    let Some(timeout) = wait.filter(|_| started.message == format!("node/{node} started")) else { return Ok(started.message) };
    // A new agent's entries are newer than its start.
    let after = Some(started.agent_started).filter(|t| !t.is_empty());
    let names = ctx.node_names()?;
    let all = ctx.block_on(list(client, fault::KIND, "", ""))?;
    let pods = pod_nodes(ctx, client, &all.iter().filter_map(|f| fault::parse(f, &names).ok()).collect::<Vec<_>>())?;
    let pod_node = |ns: &str, n: &str| pods.get(&(ns.to_string(), n.to_string())).cloned();
    let pending = follow(ctx, client, timeout.saturating_sub(began.elapsed()), |all| {
        let behind = |f: &Value| fault::parse(f, &names).is_ok_and(|spec| !faults::caught_up(f, &spec, node, pod_node, after.as_deref()));
        all.values().filter(|f| behind(f)).map(|f| object::name(f).to_string()).collect()
    })?;
    if !pending.is_empty() {
        bail!(
            "node/{node} started, but its agent has not caught up with {} within {} (see `emu fault list`, and the agent's log)",
            pending.iter().map(|n| format!("fault/{n}")).collect::<Vec<_>>().join(", "),
            seconds(timeout)
        );
    }
    Ok(started.message)
}

#[derive(Args, Debug)]
pub struct HostArgs {
    #[command(subcommand)]
    pub command: HostCommand,
    /// Return once the host is stopped (its nodes frozen) or started (its nodes' agents caught up
    /// with the faults that changed meanwhile); --wait=false returns at once.
    #[arg(long = "wait", global = true, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait (with --wait), e.g. 30s, 2m.
    #[arg(long, global = true, default_value = "30s", value_parser = timeout_arg)]
    pub timeout: Duration,
}

/// `emu host stop|start`: `emu node stop|start` for every node of an emulated host at once.
#[derive(Subcommand, Debug)]
pub enum HostCommand {
    /// Stop an emulated host: its LAN link down and every node of it frozen (agents and pods), as
    /// its peers see a machine that lost power. Its nodes turn NotReady, then their pods are
    /// evicted.
    Stop {
        /// The host's name (`emu get nodes -L emu.dev/host`), e.g. host-2.
        host: String,
        /// Kill its nodes' agents and pods instead of freezing them (a power loss): `start` then
        /// boots them afresh (the agents restart the pods not evicted meanwhile).
        #[arg(long)]
        kill: bool,
    },
    /// Start a stopped host again: its nodes thawed, its LAN link up.
    Start {
        /// The host's name.
        host: String,
    },
}

pub fn host(a: HostArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let (host, op) = match a.command {
        HostCommand::Stop { host, kill } => (host, NodeOp::Stop { kill }),
        HostCommand::Start { host } => (host, NodeOp::Start),
    };
    let host = fault::host_target(&host).unwrap_or(&host).to_string();
    println!("{}", host_op(&ctx, &mut client, &host, op, wait_of(a.wait, a.timeout))?);
    Ok(0)
}

/// `emu host stop|start HOST`, done by the controller and its provider (as for a node); a start
/// then waits, with `wait`, until every agent of the host has caught up with the faults.
pub(crate) fn host_op(ctx: &Ctx, client: &mut Client, host: &str, op: NodeOp, wait: Wait) -> anyhow::Result<String> {
    let began = Instant::now();
    let mut relay = ctx.relay.clone();
    let request = |kill| HostOpRequest { host: host.to_string(), kill, wait_ms: wait_ms(wait) };
    let done = match op {
        NodeOp::Stop { kill } => ctx.block_on(relay.host_stop(request(kill))),
        NodeOp::Start => ctx.block_on(relay.host_start(request(false))),
        NodeOp::Remove => bail!("host/{host}: a host is not removed; its machine leaves with `emu leave` run there"),
    };
    let done = done.map_err(relay_error)?.into_inner();
    let message = done.message;
    let Some(timeout) = wait.filter(|_| op == NodeOp::Start && message == format!("host/{host} started")) else { return Ok(message) };
    // New agents (after a kill): only their entries after their start count.
    let after = Some(done.agent_started).filter(|t| !t.is_empty());
    let hosts = hosts(ctx)?;
    let nodes: Vec<String> = hosts.node_hosts.iter().filter(|(_, h)| h.as_str() == host).map(|(n, _)| n.clone()).collect();
    let names = ctx.node_names()?;
    let all = ctx.block_on(list(client, fault::KIND, "", ""))?;
    let pods = pod_nodes(ctx, client, &all.iter().filter_map(|f| fault::parse(f, &names).ok()).collect::<Vec<_>>())?;
    let pod_node = |ns: &str, n: &str| pods.get(&(ns.to_string(), n.to_string())).cloned();
    let pending = follow(ctx, client, timeout.saturating_sub(began.elapsed()), |all| {
        // A node the host's other faults cut off catches up once they are cleared.
        let away = hosts.unreachable(&all.values().cloned().collect::<Vec<_>>());
        let behind = |f: &Value| {
            fault::parse(f, &names)
                .is_ok_and(|spec| nodes.iter().any(|n| !away.contains(n) && !faults::caught_up(f, &spec, n, pod_node, after.as_deref())))
        };
        all.values().filter(|f| behind(f)).map(|f| object::name(f).to_string()).collect()
    })?;
    if !pending.is_empty() {
        bail!(
            "host/{host} started, but its agents have not caught up with {} within {} (see `emu fault list`, and the agents' logs)",
            pending.iter().map(|n| format!("fault/{n}")).collect::<Vec<_>>().join(", "),
            seconds(timeout)
        );
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_of_nodes_or_of_hosts() {
        assert_eq!(
            partition_spec("host/host-2", "host/host-1,host/host-3", false).unwrap(),
            FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false }
        );
        assert_eq!(
            partition_spec("node-1", "node-2,node-3", true).unwrap(),
            FaultSpec::Partition { a: vec!["node-1".into()], b: vec!["node-2".into(), "node-3".into()], one_way: true }
        );
        let e = partition_spec("host/host-2", "node-1", false).unwrap_err().to_string();
        assert_eq!(e, "partition: give nodes on both sides, or hosts (`host/NAME`) on both sides, not a mix");
        let n = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            stopped_note(&n(&["node-1", "node-3", "node-5"]), &n(&["node-3"]), &n(&["node-5"]), "applies"),
            " (node-3 is stopped: it applies the fault when started) \
             (node-5 is cut off from the control plane by a host partition: it applies the fault once healed)"
        );
        assert_eq!(
            stopped_note(&n(&["node-3", "node-4"]), &[], &n(&["node-3", "node-4"]), "reverts"),
            " (node-3, node-4 are cut off from the control plane by a host partition: they revert the fault once healed)"
        );
        assert_eq!(stopped_note(&n(&["node-1"]), &n(&["node-3"]), &n(&["node-3"]), "applies"), "");
    }
}
