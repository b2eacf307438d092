//! Providers (as kind's): where a cluster's nodes run, and how they are created, started, stopped
//! and removed. A node is a machine to emu: the provider makes the machine (a network namespace
//! plugged into the cluster's networks, a cgroup, a directory), starts the daemons on it and
//! pulls its plug; everything that happens *on* a running node is its agent's.
//!
//! [`Local`] runs every node on this machine. `emu up` and `emu down` use it (the CLI creates a
//! local cluster as kind creates one through docker), and the controller uses it for `emu node
//! stop|start|remove`, which a stopped node's own agent cannot do. A later provider runs nodes on
//! other machines; the trait is what both offer.

mod daemon;
mod fake;
pub mod hosts;
mod local;
pub mod programs;

pub use daemon::{alive, read_pid};
pub use fake::FakeProvider;
pub use local::{all_clusters, clusters, Local};

use emu_logic::cluster::{ClusterConfig, NodeConfig};
use std::time::Duration;

/// A daemon of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// The API server (`emu-controller`).
    Controller,
    /// The cloud load balancer, in the outside world (`emu-nodeagent cloud`).
    Cloud,
    /// A node's agent (`emu-nodeagent agent`).
    Agent(String),
}

impl Daemon {
    /// `controller`, `agent of node-1`: in messages.
    pub fn describe(&self) -> String {
        match self {
            Daemon::Controller => "controller".into(),
            Daemon::Cloud => "cloud load balancer".into(),
            Daemon::Agent(n) => format!("agent of {n}"),
        }
    }
}

/// Where a cluster's nodes run. Every method acts on the machines, never on the API: what the
/// objects say is the caller's (the CLI's or the controller's) to change.
pub trait Provider: Send + Sync {
    /// The cluster's name.
    fn cluster(&self) -> &str;

    /// Whether anything of the cluster is on its machines (its directory or a namespace).
    fn exists(&self) -> anyhow::Result<bool>;

    /// The cluster's shape (nodes and ranges) as the provider keeps it: every daemon reads it when
    /// it starts, and a removed node is no longer in it.
    fn config(&self) -> anyhow::Result<ClusterConfig>;

    /// What every node plugs into: the runtime directory with the cluster's shape, the cgroup, the
    /// fabric, the control plane's place on it, and the outside world.
    fn create_cluster(&self, config: &ClusterConfig) -> anyhow::Result<()>;

    /// A node's machine, plugged into the fabric (`eth0`) and the outside world (`eth1`).
    fn create_node(&self, config: &ClusterConfig, node: &NodeConfig) -> anyhow::Result<()>;

    /// Starts a daemon (in the background, detached; it outlives the caller).
    fn start_daemon(&self, daemon: &Daemon) -> anyhow::Result<()>;

    /// Stops a running daemon: SIGTERM, SIGKILL after 5 s; nothing when it is not running.
    fn stop_daemon(&self, daemon: &Daemon) -> anyhow::Result<()>;

    /// SIGKILL of a running daemon (a crash, as `kill -9` makes one); returns its pid.
    fn kill_daemon(&self, daemon: &Daemon) -> anyhow::Result<i32>;

    /// Whether a daemon runs.
    fn daemon_running(&self, daemon: &Daemon) -> bool;

    /// The node loses power: its links go down, then its processes (agent, pods) are frozen
    /// (with `wait`, until the kernel says they are) or, with `kill`, killed. Its namespaces and
    /// files stay.
    fn stop_node(&self, node: &str, kill: bool, wait: Option<Duration>) -> anyhow::Result<()>;

    /// Power back: links up, then its processes thawed (with `wait`, until they are) or, for a
    /// node whose processes were killed, its agent started. Routes the kernel dropped while the
    /// links were down are the agent's to put back.
    fn start_node(&self, node: &str, killed: bool, wait: Option<Duration>) -> anyhow::Result<()>;

    /// Kills every process of the node (agent, pods), also a frozen one.
    fn kill_node(&self, node: &str) -> anyhow::Result<()>;

    /// The node's machine goes: its pods' and its own namespaces (the links die with them), its
    /// directory, and its entry in the cluster's shape. Its processes must be gone ([`kill_node`]).
    ///
    /// [`kill_node`]: Provider::kill_node
    fn remove_node(&self, node: &str) -> anyhow::Result<()>;

    /// Every trace of the cluster: processes, namespaces, mounts, files. Also after a crash.
    fn delete_cluster(&self) -> anyhow::Result<()>;
}

/// Held by the tests that fork (`daemon`) and by those that need a port to be free once they
/// close it (`local`): between fork and exec a child holds a copy of every descriptor of the
/// test process, a listener just dropped by another test included, which then stays bound.
#[cfg(test)]
pub(crate) static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
