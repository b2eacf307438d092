//! Feeding the catalog: a reflector on the controller's watch (reconnecting, resuming from the
//! last resource version) sends the changes, and a thread of the feed's own applies each to the
//! records it touches ([`CatalogWriter`]) and hands the server a copy of the catalog after each
//! batch. The copy shares all but the changed shards with the one before, so that a Service
//! added among 10,000 costs microseconds, not a rebuild; and the server's threads never wait for
//! it, as they take the current copy with a pointer swap ([`SharedCatalog`]).
//!
//! Level-triggered where it matters: the first list, and every new list after a watch that
//! could not resume, build a new catalog from scratch, so that a missed event or a reconnect
//! cannot leave stale records behind.

use crate::catalog::{self, CatalogConfig, CatalogWriter, DnsObject, PodRecords};
use crate::server::SharedCatalog;
use emu_proto::reflector::{self, Change};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedReceiver;

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

/// What the reflector sends: changes of the projections DNS keeps of each object.
type Changes = Vec<Change<Option<DnsObject>>>;

/// Watches the controller behind `socket` and keeps `shared` up to date. Runs until the task is
/// dropped; the controller being away only delays updates (the last catalog keeps answering).
pub async fn follow_controller(socket: PathBuf, config: CatalogConfig, shared: Arc<SharedCatalog>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // Only what the catalog needs of each object is cached, not the object.
    tokio::spawn(reflector::run_changes(socket, watched_kinds(config.pod_records), String::new(), tx, catalog::project));
    // Off the async workers: a new list (10,000 services: ~10 ms) must not hold up the TCP
    // queries and the metrics they serve.
    let _ = tokio::task::spawn_blocking(move || keep_catalog(rx, config, &shared)).await;
}

/// Changes applied at most between two copies handed to the server, so that a steady stream of
/// changes still shows.
const MAX_CHANGES_PER_COPY: usize = 4096;

/// Applies the reflector's changes until it stops.
fn keep_catalog(mut rx: UnboundedReceiver<Changes>, config: CatalogConfig, shared: &SharedCatalog) {
    let mut writer: Option<CatalogWriter> = None;
    while let Some(mut batch) = rx.blocking_recv() {
        let mut started = Instant::now();
        let (mut changes, mut listed) = (0, false);
        loop {
            changes += batch.len();
            for change in batch {
                match change {
                    Change::Listed(objects) => {
                        let mut fresh = CatalogWriter::new(config.clone());
                        for (key, object) in objects {
                            fresh.apply(key, Some(object));
                        }
                        writer = Some(fresh);
                        listed = true;
                    }
                    // Changes come only after a list.
                    Change::Object(key, object) => {
                        if let Some(writer) = &mut writer {
                            writer.apply(key, object);
                        }
                    }
                }
            }
            // What queued up meanwhile goes into the same copy.
            match rx.try_recv() {
                Ok(next) if changes < MAX_CHANGES_PER_COPY => batch = next,
                Ok(next) => {
                    publish(writer.as_mut(), shared, started, changes, listed);
                    (started, changes, listed) = (Instant::now(), 0, false);
                    batch = next;
                }
                Err(_) => break,
            }
        }
        publish(writer.as_mut(), shared, started, changes, listed);
    }
}

/// Hands the server a copy of the catalog.
fn publish(writer: Option<&mut CatalogWriter>, shared: &SharedCatalog, started: Instant, changes: usize, listed: bool) {
    let Some(writer) = writer else { return };
    writer.set_serial(serial_now());
    shared.store(writer.catalog().clone());
    let (services, endpoints) = writer.catalog().counts();
    let elapsed_us = started.elapsed().as_micros() as u64;
    if listed {
        // A whole list: the first, or after a reconnect that could not resume.
        tracing::info!(services, endpoints, elapsed_ms = elapsed_us / 1000, "catalog synced");
    } else {
        tracing::debug!(services, endpoints, changes, elapsed_us, "catalog updated");
    }
}

/// The SOA serial: the time of the change in Unix seconds, as CoreDNS uses the time of the last
/// modification it saw. Wraps in 2106, as a u32 serial must.
fn serial_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}
