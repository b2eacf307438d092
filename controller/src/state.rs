//! State shared by the API handlers and the controllers.

use crate::store::Store;
use emu_logic::cluster::ClusterConfig;
use emu_provider::Provider;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone)]
pub struct Shared(Arc<Inner>);

pub struct Inner {
    /// When this controller process started.
    pub started: Instant,
    pub store: Store,
    pub cluster: ClusterConfig,
    /// Wakes the controllers after any write.
    pub wake: tokio::sync::Notify,
    /// Last heartbeat per node. Kept in memory (like a Lease, not a write per beat): after a
    /// controller restart every node gets a fresh grace period.
    pub heartbeats: Mutex<HashMap<String, Instant>>,
    /// Held while a write allocates cluster-wide resources (ClusterIPs), so two requests never
    /// hand out the same one.
    pub allocation: Mutex<()>,
    /// Turns true when the controller stops: watch streams end then, or the gRPC server's
    /// graceful shutdown would wait for them forever.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The cluster CA's certificate (PEM), once loaded: published in every namespace as
    /// ConfigMap `kube-root-ca.crt`.
    pub root_ca: std::sync::OnceLock<String>,
    /// `ADDRESS:PORT` of the join listener (machines join and their agents connect there), once
    /// it serves.
    pub join_endpoint: std::sync::OnceLock<String>,
    /// The service-account token signer, once loaded.
    pub tokens: std::sync::OnceLock<Arc<crate::tokens::TokenSigner>>,
    /// The LAN reconciler of a cluster with emulated hosts (host partitions), made on the first
    /// pass; None without emulated hosts.
    pub lan: std::sync::OnceLock<Option<Mutex<crate::host_faults::LanReconciler>>>,
    /// Rows of the Tables the REST API has answered with, kept for the next one.
    pub table_rows: Mutex<crate::rest::table::RowCache>,
}

impl std::ops::Deref for Shared {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Shared {
    pub fn new(store: Store, cluster: ClusterConfig) -> Shared {
        Shared(Arc::new(Inner {
            store,
            cluster,
            wake: tokio::sync::Notify::new(),
            heartbeats: Mutex::new(HashMap::new()),
            allocation: Mutex::new(()),
            started: Instant::now(),
            stopping: tokio::sync::watch::channel(false).0,
            root_ca: std::sync::OnceLock::new(),
            join_endpoint: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
            lan: std::sync::OnceLock::new(),
            table_rows: Mutex::new(Default::default()),
        }))
    }

    /// Ends every watch stream: the controller is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// The provider of this controller's machines: today every node runs on the controller's
    /// own machine.
    pub fn provider(&self) -> emu_provider::Local {
        emu_provider::Local::new(&self.cluster.name)
    }

    /// The cluster's shape as `ClusterInfo` returns it: the provider's, which no longer lists a
    /// removed node (the controller read it once at start).
    pub fn config_json(&self) -> String {
        let config = self.provider().config().unwrap_or_else(|_| self.cluster.clone());
        serde_json::to_string(&config).unwrap_or_default()
    }
}
