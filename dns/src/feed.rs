//! Feeding the catalog: a reflector on the controller's watch (reconnecting, resuming from the
//! last resource version), and a new [`Catalog`] swapped in for the snapshots it publishes
//! (coalesced over [`REBUILD_DELAY`]).
//! Level-triggered: each catalog is built from the complete set of objects, never patched, so a
//! missed event or a reconnect cannot leave stale records behind.

use crate::catalog::{self, Catalog, CatalogConfig, DnsObject, PodRecords};
use crate::server::SharedCatalog;
use emu_proto::reflector::{self, Snapshot};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The kinds the catalog is built from. Pods only when pod records are verified: with the
/// default `pods insecure` no answer needs them, and every pod of the cluster would otherwise
/// sit in this process's memory.
pub fn watched_kinds(pod_records: PodRecords) -> Vec<String> {
    let mut kinds = vec!["Namespace".to_string(), "Service".to_string(), "EndpointSlice".to_string()];
    if pod_records == PodRecords::Verified {
        kinds.push("Pod".to_string());
    }
    kinds
}

/// Watches the controller behind `socket` and keeps `shared` up to date. Runs until the task is
/// dropped; the controller being away only delays updates (the last catalog keeps answering).
pub async fn follow_controller(socket: PathBuf, config: CatalogConfig, shared: Arc<SharedCatalog>) {
    let (tx, mut rx) = tokio::sync::watch::channel(Snapshot::<Option<DnsObject>>::default());
    // Only what the catalog needs of each object is cached, not the object.
    tokio::spawn(reflector::run_projected(socket, watched_kinds(config.pod_records), String::new(), tx, catalog::project));
    // Snapshots that arrive during a rebuild, or within REBUILD_DELAY of the change that
    // started it, are coalesced by the watch channel: the rebuild takes the newest.
    while rx.changed().await.is_ok() {
        if rx.borrow().synced && shared.load().is_synced() {
            tokio::time::sleep(REBUILD_DELAY).await;
        }
        let snapshot = rx.borrow_and_update().clone();
        if snapshot.synced {
            // Off the async workers: they keep answering queries while it runs.
            let (config, shared) = (config.clone(), shared.clone());
            let _ = tokio::task::spawn_blocking(move || install(&snapshot, &config, &shared)).await;
        }
    }
}

/// How long a change waits for the ones that follow it before the catalog is rebuilt. A burst
/// (a rollout, a namespace deleted, a thousand Services applied) then costs one rebuild, and a
/// single change leaves the CPU to the node agents programming the same change into the
/// service rules first (their goal is 50 ms, DNS's is 1 s). The first catalog is not delayed.
const REBUILD_DELAY: Duration = Duration::from_millis(50);

fn install(snapshot: &Snapshot<Option<DnsObject>>, config: &CatalogConfig, shared: &SharedCatalog) {
    let started = Instant::now();
    let objects = snapshot.objects.values().filter_map(|o| o.as_ref().as_ref());
    let catalog = Catalog::from_objects(objects, config.clone(), serial_now());
    let (services, endpoints) = catalog.counts();
    shared.store(catalog);
    tracing::info!(services, endpoints, elapsed_ms = started.elapsed().as_millis() as u64, "catalog synced");
}

/// The SOA serial: the time of the change in Unix seconds, as CoreDNS uses the time of the last
/// modification it saw. Wraps in 2106, as a u32 serial must.
fn serial_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}
