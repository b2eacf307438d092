//! `emu fault …`: network faults for labs and tests (issue 7). Each command records a Fault
//! object (`emu.dev/v1`) in the API; the node agents apply it to the emulated links (netem in
//! both directions, the partition's drop rules, a link down) and revert it when it is deleted.
//! Nothing here touches a namespace itself.

use crate::context::{api_error, Ctx};
use crate::verbs::{list, Client};
use crate::ClusterFlag;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_core::faults::{self, FaultSpec, Netem, Target};
use emu_core::object;
use emu_core::steps::{Daemon, NodeOp};
use emu_proto::{ApplyRequest, DeleteRequest, Object, ObjectRef};

#[derive(Args, Debug)]
pub struct FaultArgs {
    #[command(subcommand)]
    pub command: FaultCommand,
    /// Namespace of a `pod/NAME` target (default: default).
    #[arg(short = 'n', long = "namespace", global = true)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterFlag,
}

/// TARGET is a node name or `pod/NAME`.
#[derive(Subcommand, Debug)]
pub enum FaultCommand {
    /// Drop traffic between two groups of nodes (comma-separated names) and their pods.
    Partition {
        a: String,
        b: String,
        /// Only from the first group to the second.
        #[arg(long)]
        one_way: bool,
    },
    /// Delay every packet crossing the target's link, both ways (a round trip through it takes
    /// twice as long more).
    Delay {
        target: String,
        delay: String,
        #[arg(long)]
        jitter: Option<String>,
        /// Correlation of successive delays, e.g. 25%.
        #[arg(long)]
        correlation: Option<String>,
    },
    /// Lose this share of the packets crossing the target's link, each way.
    Loss {
        target: String,
        percent: String,
        /// Correlation of successive losses (bursts), e.g. 25%.
        #[arg(long)]
        correlation: Option<String>,
    },
    /// Send this share of the packets crossing the target's link twice, each way.
    Duplicate { target: String, percent: String },
    /// Corrupt a bit in this share of the packets.
    Corrupt { target: String, percent: String },
    /// Send this share of the packets at once while the others wait `--delay` (reordering).
    Reorder {
        target: String,
        percent: String,
        #[arg(long, default_value = "10ms")]
        delay: String,
    },
    /// Limit the link's rate, e.g. 1mbit.
    Rate { target: String, rate: String },
    /// Take a node's link down (or bring it back up).
    Link { node: String, state: String },
    /// The faults in force.
    List,
    /// Revert the named faults, or all.
    Clear { names: Vec<String> },
}

pub fn fault(a: FaultArgs) -> anyhow::Result<i32> {
    let ctx = Ctx::open(&a.cluster)?;
    let mut client = ctx.client.clone();
    let config = ctx.config()?;
    let nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let existing = ctx.block_on(list(&mut client, faults::KIND, "", ""))?;
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let target = |t: &str| -> Target {
        match t.strip_prefix("pod/").or_else(|| t.strip_prefix("pods/")).or_else(|| t.strip_prefix("po/")) {
            Some(pod) => Target::Pod { namespace: ns.clone(), name: pod.to_string() },
            None => Target::Node(t.to_string()),
        }
    };
    let pct = |s: &str| faults::parse_percent(s).map_err(anyhow::Error::msg);
    let ms = |s: &str| faults::parse_duration_ms(s).map_err(anyhow::Error::msg);
    let netem = |t: &str, netem: Netem| FaultSpec::Netem { target: target(t), netem };
    let (kind, spec) = match &a.command {
        FaultCommand::List => return list_faults(&existing, &nodes),
        FaultCommand::Clear { names } => return print_lines(clear(&ctx, &mut client, &existing, names)),
        FaultCommand::Partition { a, b, one_way } => {
            let split = |s: &str| s.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect();
            ("partition", FaultSpec::Partition { a: split(a), b: split(b), one_way: *one_way })
        }
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
            let n = Netem { loss: Some(pct(percent)?), loss_correlation: correlation.as_deref().map(pct).transpose()?, ..Default::default() };
            ("loss", netem(t, n))
        }
        FaultCommand::Duplicate { target: t, percent } => ("duplicate", netem(t, Netem { duplicate: Some(pct(percent)?), ..Default::default() })),
        FaultCommand::Corrupt { target: t, percent } => ("corrupt", netem(t, Netem { corrupt: Some(pct(percent)?), ..Default::default() })),
        FaultCommand::Reorder { target: t, percent, delay } => {
            ("reorder", netem(t, Netem { reorder: Some(pct(percent)?), delay_ms: Some(ms(delay)?), ..Default::default() }))
        }
        FaultCommand::Rate { target: t, rate } => {
            ("rate", netem(t, Netem { rate: Some(faults::parse_rate(rate).map_err(anyhow::Error::msg)?), ..Default::default() }))
        }
        FaultCommand::Link { node, state } => match state.as_str() {
            "down" => ("link-down", FaultSpec::LinkDown { node: node.clone() }),
            "up" => {
                let down: Vec<String> = existing
                    .iter()
                    .filter(|f| matches!(faults::parse(f, &nodes), Ok(FaultSpec::LinkDown { node: n }) if n == *node))
                    .map(|f| object::name(f).to_string())
                    .collect();
                if down.is_empty() {
                    println!("node {node}'s link is up");
                    return Ok(0);
                }
                return print_lines(clear(&ctx, &mut client, &existing, &down));
            }
            other => bail!("link state {other:?}: use down or up"),
        },
    };
    let name = faults::next_name(kind, &existing);
    println!("{}", record(&ctx, &mut client, &nodes, &name, &spec)?);
    Ok(0)
}

/// Records the fault `name` (which must be new); returns the line that says so.
pub(crate) fn record(ctx: &Ctx, client: &mut Client, nodes: &[String], name: &str, spec: &FaultSpec) -> anyhow::Result<String> {
    let object = faults::to_object(name, spec);
    // The same checks the agents make, so that a bad fault is refused here with its reason.
    faults::parse(&object, nodes).map_err(|e| anyhow::anyhow!("fault {name}: {e}"))?;
    let request = ApplyRequest { objects: vec![Object { json: object.to_string() }], create_only: true, dry_run: false };
    ctx.block_on(client.apply(request)).map_err(api_error)?;
    let (_, target, details) = faults::describe(spec);
    Ok(format!("fault/{name} created: {target} {details}"))
}

fn list_faults(existing: &[serde_json::Value], nodes: &[String]) -> anyhow::Result<i32> {
    if existing.is_empty() {
        println!("No faults in force.");
        return Ok(0);
    }
    let now = emu_core::time::now();
    let mut rows = vec![["NAME", "TYPE", "TARGET", "DETAILS", "AGE"].map(String::from).to_vec()];
    for f in existing {
        let (kind, target, details) = match faults::parse(f, nodes) {
            Ok(spec) => faults::describe(&spec),
            Err(e) => ("invalid".into(), "-".into(), e),
        };
        let created = object::str_at(f, &["metadata", "creationTimestamp"]).and_then(emu_core::time::parse_rfc3339);
        let age = created.map_or("<unknown>".into(), |t| emu_core::printers::human_duration(now - t));
        rows.push(vec![object::name(f).to_string(), kind, target, details, age]);
    }
    print!("{}", emu_core::printers::tabwrite(&rows, 0, 3));
    Ok(0)
}

fn print_lines(lines: anyhow::Result<Vec<String>>) -> anyhow::Result<i32> {
    for l in lines? {
        println!("{l}");
    }
    Ok(0)
}

/// Reverts the named faults of `existing` (all when `names` is empty); returns a line for each.
pub(crate) fn clear(ctx: &Ctx, client: &mut Client, existing: &[serde_json::Value], names: &[String]) -> anyhow::Result<Vec<String>> {
    let chosen: Vec<&serde_json::Value> = existing.iter().filter(|f| names.is_empty() || names.iter().any(|n| n == object::name(f))).collect();
    if let Some(missing) = names.iter().find(|n| !existing.iter().any(|f| object::name(f) == n.as_str())) {
        bail!("fault {missing:?} not found (see `emu fault list`)");
    }
    if chosen.is_empty() {
        return Ok(vec!["No faults in force.".into()]);
    }
    let mut lines = Vec::new();
    for f in chosen {
        // A stopped node is started again before its record goes.
        if f["spec"]["nodeStop"]["node"].is_string() {
            start_node(ctx, client, f)?;
        }
        delete_fault(ctx, client, object::name(f))?;
        lines.push(format!("fault/{} cleared", object::name(f)));
    }
    Ok(lines)
}

/// Deletes the Fault `name` (the agents revert it).
fn delete_fault(ctx: &Ctx, client: &mut Client, name: &str) -> anyhow::Result<()> {
    let r = ObjectRef { kind: faults::KIND.into(), namespace: String::new(), name: name.into() };
    ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 })).map_err(api_error)?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
    #[command(flatten)]
    pub cluster: ClusterFlag,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Stop a node: its agent and pods frozen, its links down (a node that lost power, as its
    /// peers see it). Its heartbeats stop: NotReady, then its pods are evicted.
    Stop {
        node: String,
        /// Kill its agent and pods instead of freezing them: `start` then boots it afresh (the
        /// agent restarts the pods that were not evicted meanwhile).
        #[arg(long)]
        kill: bool,
    },
    /// Start a stopped node again: links up, agent and pods running on (or restarted).
    Start { node: String },
    /// Remove a node for good (`kubectl delete node` once the machine is gone): its processes
    /// and namespaces go, its Node object and pods are deleted, its ReplicaSets' pods are
    /// replaced on the other nodes.
    Remove { node: String },
}

pub fn node(a: NodeArgs) -> anyhow::Result<i32> {
    let ctx = Ctx::open(&a.cluster)?;
    let mut client = ctx.client.clone();
    let (node, op) = match a.command {
        NodeCommand::Stop { node, kill } => (node, NodeOp::Stop { kill }),
        NodeCommand::Start { node } => (node, NodeOp::Start),
        NodeCommand::Remove { node } => (node, NodeOp::Remove),
    };
    println!("{}", node_op(&ctx, &mut client, &node, op)?);
    Ok(0)
}

/// `emu node stop|start|remove NODE`; returns the line that says what happened.
pub(crate) fn node_op(ctx: &Ctx, client: &mut Client, node: &str, op: NodeOp) -> anyhow::Result<String> {
    let config = ctx.config()?;
    let nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    if !nodes.iter().any(|n| n == node) {
        bail!("node {node:?} not found in the cluster (nodes: {})", nodes.join(", "));
    }
    let existing = ctx.block_on(list(client, faults::KIND, "", ""))?;
    let stopped = existing.iter().find(|f| f["spec"]["nodeStop"]["node"] == node);
    match op {
        NodeOp::Stop { kill } => {
            if stopped.is_some() {
                return Ok(format!("node/{node} is already stopped"));
            }
            let name = format!("node-stop-{node}");
            let object = faults::to_object(&name, &FaultSpec::NodeStop { node: node.to_string(), kill });
            let request = ApplyRequest { objects: vec![Object { json: object.to_string() }], create_only: true, dry_run: false };
            ctx.block_on(client.apply(request)).map_err(api_error)?;
            set_links(ctx, node, false)?;
            if kill {
                kill_processes(ctx, node)?;
                Ok(format!("node/{node} stopped: agent and pods killed, links down"))
            } else {
                freeze(ctx, node, true)?;
                Ok(format!("node/{node} stopped: agent and pods frozen, links down"))
            }
        }
        NodeOp::Start => {
            let Some(fault) = stopped else {
                return Ok(format!("node/{node} is not stopped"));
            };
            start_node(ctx, client, fault)?;
            delete_fault(ctx, client, object::name(fault))?;
            Ok(format!("node/{node} started"))
        }
        NodeOp::Remove => remove_node(ctx, client, &config, node, &existing),
    }
}

/// Removes `node` from the cluster: processes killed, the faults that name it cleared, its
/// Node object deleted (the controller then deletes its pods, as Kubernetes' pod garbage
/// collector does, and their ReplicaSets replace them), its namespaces deleted, and the cluster
/// configuration without it.
fn remove_node(
    ctx: &Ctx,
    client: &mut Client,
    config: &emu_core::cluster::ClusterConfig,
    node: &str,
    existing: &[serde_json::Value],
) -> anyhow::Result<String> {
    if config.nodes.len() == 1 {
        bail!("node {node:?} is the cluster's only node: remove the cluster instead (`sudo emu down`)");
    }
    let nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    kill_processes(ctx, node)?;
    for f in existing.iter().filter(|f| faults::parse(f, &nodes).is_ok_and(|spec| faults::names_node(&spec, node))) {
        delete_fault(ctx, client, object::name(f))?;
    }
    let r = ObjectRef { kind: "Node".into(), namespace: String::new(), name: node.into() };
    match ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: true, grace_period_seconds: -1 })) {
        Ok(_) => {}
        // Never registered, or removed by hand already.
        Err(e) if e.code() == tonic::Code::NotFound => {}
        Err(e) => return Err(api_error(e)),
    }
    // The pods' namespaces (their sandboxes are listed in the node's directory), then the node's:
    // the links die with them.
    let cluster = ctx.cluster();
    if let Ok(entries) = std::fs::read_dir(ctx.paths.pods_dir(node)) {
        for uid in entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()) {
            emu_nodeagent::net::delete_named_netns(&emu_core::naming::netns_pod(&cluster, &uid))?;
        }
    }
    emu_nodeagent::net::delete_named_netns(&emu_core::naming::netns_node(&cluster, node))?;
    let mut config = config.clone();
    config.nodes.retain(|n| n.name != node);
    std::fs::write(ctx.paths.config(), serde_json::to_vec_pretty(&config)?)?;
    let _ = std::fs::remove_dir_all(ctx.paths.node_dir(node));
    Ok(format!("node/{node} removed"))
}

/// Links up (with the routes the kernel dropped when they went down), then the agent and pods
/// thawed, or, for a node whose processes were killed, its agent started (it restarts the pods
/// still bound to the node).
fn start_node(ctx: &Ctx, client: &mut Client, stop: &serde_json::Value) -> anyhow::Result<()> {
    let node = stop["spec"]["nodeStop"]["node"].as_str().unwrap_or_default();
    set_links(ctx, node, true)?;
    let cluster = ctx.cluster();
    let config = ctx.config()?;
    let node_ns = emu_nodeagent::net::netns_path(&emu_core::naming::netns_node(&cluster, node));
    let nodes = ctx.block_on(list(client, "Node", "", ""))?;
    ctx.block_on(emu_nodeagent::agent::restore_routes(&node_ns, &config.service_cidr, nodes.iter(), node))?;
    if stop["spec"]["nodeStop"]["kill"].as_bool() == Some(true) {
        crate::lifecycle::restart_daemon(&cluster, &Daemon::Agent(node.to_string()))
    } else {
        freeze(ctx, node, false)
    }
}

/// SIGKILL to everything of the node: its agent, its pods' shims and containers (the node's
/// cgroup). Their namespaces, links and rules stay, as after a power loss.
fn kill_processes(ctx: &Ctx, node: &str) -> anyhow::Result<()> {
    let dir = node_cgroup(ctx, node)?;
    // A frozen process cannot die: thaw first (a node stopped, then removed).
    if dir.join("cgroup.freeze").exists() {
        let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    }
    emu_nodeagent::cgroup::kill_and_remove(&dir, std::time::Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("killing the processes of node {node} ({}): {e}", dir.display()))
}

/// Freezes or thaws everything of the node: its agent and its pods' shims and containers (the
/// node's cgroup).
fn freeze(ctx: &Ctx, node: &str, frozen: bool) -> anyhow::Result<()> {
    let dir = node_cgroup(ctx, node)?;
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
        .map_err(|e| anyhow::anyhow!("{} the processes of node {node} ({}): {e}", if frozen { "freezing" } else { "thawing" }, dir.display()))
}

/// The node's cgroup: its agent, shims and containers.
fn node_cgroup(ctx: &Ctx, node: &str) -> anyhow::Result<std::path::PathBuf> {
    Ok(emu_nodeagent::cgroup::node_dir(&emu_nodeagent::cgroup::cluster_dir(&ctx.cluster())?, node))
}

/// The node's links (eth0 to the fabric, eth1 to the outside world) down or up.
fn set_links(ctx: &Ctx, node: &str, up: bool) -> anyhow::Result<()> {
    let cluster = ctx.cluster();
    let node_ns = emu_nodeagent::net::netns_path(&emu_core::naming::netns_node(&cluster, node));
    ctx.block_on(async {
        emu_nodeagent::net::set_link_up(&node_ns, emu_nodeagent::net::ETH0, up).await?;
        emu_nodeagent::net::set_link_up(&node_ns, emu_nodeagent::net::ETH1, up).await
    })?;
    Ok(())
}
