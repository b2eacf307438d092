//! A reflector: a watch that survives disconnects. It keeps a cache of the watched objects, resumes
//! from the last resource version after an error (getting what it missed, or a fresh list that
//! replaces the cache atomically), and publishes every new snapshot on a `tokio::sync::watch`.

use emu_proto::watch_event::Type as EventType;
use emu_proto::WatchRequest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;

/// (kind, namespace, name) → object.
pub type Cache = BTreeMap<(String, String, String), Arc<Value>>;

#[derive(Clone, Default)]
pub struct Snapshot {
    pub objects: Arc<Cache>,
    /// True once the first full list has arrived.
    pub synced: bool,
}

fn key_of(v: &Value) -> (String, String, String) {
    use emu_core::object::{kind, name, namespace};
    (kind(v).to_string(), namespace(v).to_string(), name(v).to_string())
}

/// Runs forever; spawn it. `kinds` and `node_name` filter as in `WatchRequest`.
pub async fn run(socket: PathBuf, kinds: Vec<String>, node_name: String, tx: tokio::sync::watch::Sender<Snapshot>) {
    let mut cache = Cache::new();
    let mut rv = 0u64;
    let mut synced = false;
    loop {
        let result: anyhow::Result<()> = async {
            let mut client = emu_proto::connect_unix(&socket).await?;
            let mut stream = client
                .watch(WatchRequest { kinds: kinds.clone(), node_name: node_name.clone(), resource_version: rv })
                .await?
                .into_inner();
            // Objects gathered after a RESET; they replace the cache at SYNCED.
            let mut fresh: Option<Cache> = None;
            while let Some(ev) = stream.next().await {
                let ev = ev?;
                let obj = ev.object.as_ref().map(|o| serde_json::from_str::<Value>(&o.json)).transpose()?;
                match EventType::try_from(ev.r#type).unwrap_or(EventType::Modified) {
                    EventType::Reset => fresh = Some(Cache::new()),
                    EventType::Synced => {
                        if let Some(f) = fresh.take() {
                            cache = f;
                        }
                        synced = true;
                        rv = rv.max(ev.resource_version);
                        publish(&tx, &cache, synced);
                    }
                    t => {
                        let Some(obj) = obj else { continue };
                        let target = fresh.as_mut().unwrap_or(&mut cache);
                        if t == EventType::Deleted {
                            target.remove(&key_of(&obj));
                        } else {
                            target.insert(key_of(&obj), Arc::new(obj));
                        }
                        rv = rv.max(ev.resource_version);
                        if fresh.is_none() && synced {
                            publish(&tx, &cache, synced);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "watch interrupted; resuming");
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn publish(tx: &tokio::sync::watch::Sender<Snapshot>, cache: &Cache, synced: bool) {
    tx.send_replace(Snapshot { objects: Arc::new(cache.clone()), synced });
}
