//! A provider that records what it is asked and touches nothing: for the tests of its callers
//! (the controller's node operations), beside the real one as emu-host's fakes are.

use crate::{Daemon, Provider};
use emu_logic::cluster::{ClusterConfig, NodeConfig};
use std::sync::Mutex;
use std::time::Duration;

pub struct FakeProvider {
    config: Mutex<ClusterConfig>,
    calls: Mutex<Vec<String>>,
}

impl FakeProvider {
    /// A cluster of this shape, already made.
    pub fn new(config: ClusterConfig) -> FakeProvider {
        FakeProvider { config: Mutex::new(config), calls: Mutex::default() }
    }

    /// What it was asked, in order (`stop_node node-2 kill=false wait=Some(1s)`).
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

impl Provider for FakeProvider {
    fn cluster(&self) -> &str {
        "fake"
    }

    fn exists(&self) -> anyhow::Result<bool> {
        Ok(true)
    }

    fn config(&self) -> anyhow::Result<ClusterConfig> {
        Ok(self.config.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone())
    }

    fn create_cluster(&self, config: &ClusterConfig) -> anyhow::Result<()> {
        self.record(format!("create_cluster {}", config.name));
        *self.config.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = config.clone();
        Ok(())
    }

    fn create_node(&self, _config: &ClusterConfig, node: &NodeConfig) -> anyhow::Result<()> {
        self.record(format!("create_node {}", node.name));
        Ok(())
    }

    fn start_daemon(&self, daemon: &Daemon) -> anyhow::Result<()> {
        self.record(format!("start_daemon {}", daemon.describe()));
        Ok(())
    }

    fn stop_daemon(&self, daemon: &Daemon) -> anyhow::Result<()> {
        self.record(format!("stop_daemon {}", daemon.describe()));
        Ok(())
    }

    fn kill_daemon(&self, daemon: &Daemon) -> anyhow::Result<i32> {
        self.record(format!("kill_daemon {}", daemon.describe()));
        Ok(1)
    }

    fn daemon_running(&self, _daemon: &Daemon) -> bool {
        true
    }

    fn stop_node(&self, node: &str, kill: bool, wait: Option<Duration>) -> anyhow::Result<()> {
        self.record(format!("stop_node {node} kill={kill} wait={wait:?}"));
        Ok(())
    }

    fn start_node(&self, node: &str, killed: bool, wait: Option<Duration>) -> anyhow::Result<()> {
        self.record(format!("start_node {node} killed={killed} wait={wait:?}"));
        Ok(())
    }

    fn kill_node(&self, node: &str) -> anyhow::Result<()> {
        self.record(format!("kill_node {node}"));
        Ok(())
    }

    fn remove_node(&self, node: &str) -> anyhow::Result<()> {
        self.record(format!("remove_node {node}"));
        self.config.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.nodes.retain(|n| n.name != node);
        Ok(())
    }

    fn delete_cluster(&self) -> anyhow::Result<()> {
        self.record("delete_cluster".into());
        Ok(())
    }
}
