//! A reflector: a watch that survives disconnects. It keeps a cache of the watched objects, resumes
//! from the last resource version after an error (getting what it missed, or a fresh list that
//! replaces the cache atomically), and publishes every new snapshot on a `tokio::sync::watch`.
//!
//! It lives here, next to the client it drives, so that every daemon watching the controller (the
//! node agent, the cluster DNS) shares one implementation.

use crate::watch_event::Type as EventType;
use crate::WatchRequest;
use futures::FutureExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;

/// (kind, namespace, name) → object (or what a projection keeps of it, see [`run_projected`]).
pub type Cache<T = Value> = BTreeMap<(String, String, String), Arc<T>>;

pub struct Snapshot<T = Value> {
    pub objects: Arc<Cache<T>>,
    /// True once the first full list has arrived.
    pub synced: bool,
}

// By hand: derived impls would require `T: Clone` and `T: Default`, which sharing never needs.
impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Self { objects: self.objects.clone(), synced: self.synced }
    }
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Self { objects: Arc::new(Cache::new()), synced: false }
    }
}

/// The cache key of an object. Read straight from the JSON: this crate must not depend on
/// `emu-api` (the gRPC crate stays independent of the object machinery, and small).
fn key_of(v: &Value) -> (String, String, String) {
    let text = |pointer: &str| v.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_string();
    (text("/kind"), text("/metadata/namespace"), text("/metadata/name"))
}

/// Runs forever; spawn it. `kinds` and `node_name` filter as in `WatchRequest`.
pub async fn run(
    upstream: impl Into<crate::transport::Upstream>,
    kinds: Vec<String>,
    node_name: String,
    tx: tokio::sync::watch::Sender<Snapshot>,
) {
    run_projected(upstream, kinds, node_name, tx, |v| v).await
}

/// [`run`], caching `project(object)` instead of each object: a watcher that needs a few facts
/// of many objects (the cluster DNS) keeps those rather than whole objects in memory. The cache
/// key is taken before projecting.
pub async fn run_projected<T: Send + Sync + 'static>(
    upstream: impl Into<crate::transport::Upstream>,
    kinds: Vec<String>,
    node_name: String,
    tx: tokio::sync::watch::Sender<Snapshot<T>>,
    project: fn(Value) -> T,
) {
    let upstream = upstream.into();
    let mut mirror = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project };
    loop {
        let result: anyhow::Result<()> = async {
            let mut client = upstream.api().await?;
            let request = WatchRequest { kinds: kinds.clone(), node_name: node_name.clone(), resource_version: mirror.rv };
            let mut stream = client.watch(request).await?.into_inner();
            // A watch that went quiet for good (a stalled connection) must not leave the cache
            // stale forever: renew it now and then, resuming from the last version seen.
            let renew_at = tokio::time::Instant::now() + WATCH_LIFETIME;
            // Objects gathered after a RESET; they replace the cache at SYNCED.
            mirror.fresh = None;
            while let Ok(Some(event)) = tokio::time::timeout_at(renew_at, stream.next()).await {
                let mut due = mirror.apply(event?)?;
                // Apply what has already arrived before publishing: a burst of events (a
                // deleted namespace, a thousand services applied) then costs one snapshot, not
                // one copy of the whole cache per event.
                for _ in 1..MAX_BATCH {
                    match stream.next().now_or_never() {
                        Some(Some(event)) => due |= mirror.apply(event?)?,
                        _ => break,
                    }
                }
                if due {
                    publish(&tx, &mirror.cache, mirror.synced);
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(rv = mirror.rv, "watch ended or renewed; resuming"),
            Err(e) => tracing::debug!(error = %e, "watch interrupted; resuming"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long one watch stream is used before it is renewed.
const WATCH_LIFETIME: Duration = Duration::from_secs(300);
/// Events applied between two snapshots at most, so that a steady stream still publishes.
const MAX_BATCH: usize = 1024;

/// The cache being kept in step with the watch stream.
struct Mirror<T> {
    cache: Cache<T>,
    /// Objects gathered after a RESET; they replace `cache` at SYNCED.
    fresh: Option<Cache<T>>,
    /// The last resource version seen: where a new watch resumes.
    rv: u64,
    /// True once the first full list has arrived.
    synced: bool,
    project: fn(Value) -> T,
}

impl<T> Mirror<T> {
    /// Applies one event; true when `cache` changed in a way to publish.
    fn apply(&mut self, event: crate::WatchEvent) -> anyhow::Result<bool> {
        let object = event.object.as_ref().map(|o| serde_json::from_str::<Value>(&o.json)).transpose()?;
        match EventType::try_from(event.r#type).unwrap_or(EventType::Modified) {
            EventType::Reset => {
                self.fresh = Some(Cache::new());
                Ok(false)
            }
            EventType::Synced => {
                if let Some(fresh) = self.fresh.take() {
                    self.cache = fresh;
                }
                self.synced = true;
                self.rv = self.rv.max(event.resource_version);
                Ok(true)
            }
            kind => {
                let Some(object) = object else { return Ok(false) };
                let target = self.fresh.as_mut().unwrap_or(&mut self.cache);
                let key = key_of(&object);
                if kind == EventType::Deleted {
                    target.remove(&key);
                } else {
                    target.insert(key, Arc::new((self.project)(object)));
                }
                self.rv = self.rv.max(event.resource_version);
                Ok(self.fresh.is_none() && self.synced)
            }
        }
    }
}

fn publish<T>(tx: &tokio::sync::watch::Sender<Snapshot<T>>, cache: &Cache<T>, synced: bool) {
    tx.send_replace(Snapshot { objects: Arc::new(cache.clone()), synced });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, WatchEvent};

    fn event(kind: EventType, object: Option<&str>, rv: u64) -> WatchEvent {
        WatchEvent { r#type: kind as i32, object: object.map(|json| Object { json: json.to_string() }), resource_version: rv }
    }

    fn service(name: &str) -> String {
        format!(r#"{{"kind":"Service","metadata":{{"namespace":"default","name":"{name}"}},"spec":{{"clusterIP":"10.96.0.9"}}}}"#)
    }

    fn names<T>(cache: &Cache<T>) -> Vec<&str> {
        cache.keys().map(|(_, _, name)| name.as_str()).collect()
    }

    #[test]
    fn a_reset_replaces_the_cache_at_synced_and_changes_after_it_publish() {
        let mut m = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project: |v: Value| v };
        m.cache.insert(("Service".into(), "default".into(), "stale".into()), Arc::new(Value::Null));
        assert!(!m.apply(event(EventType::Reset, Some("{}"), 5)).unwrap());
        assert!(!m.apply(event(EventType::Added, Some(&service("a")), 5)).unwrap(), "nothing to publish before SYNCED");
        assert_eq!(names(&m.cache), ["stale"], "the old cache serves until the new list is complete");
        assert!(m.apply(event(EventType::Synced, Some("{}"), 5)).unwrap());
        assert_eq!((names(&m.cache), m.synced, m.rv), (vec!["a"], true, 5));
        assert!(m.apply(event(EventType::Added, Some(&service("b")), 6)).unwrap());
        assert!(m.apply(event(EventType::Deleted, Some(&service("a")), 7)).unwrap());
        assert_eq!((names(&m.cache), m.rv), (vec!["b"], 7));
    }

    #[test]
    fn a_projection_is_cached_instead_of_the_object() {
        let mut m = Mirror {
            cache: Cache::new(),
            fresh: None,
            rv: 0,
            synced: true,
            project: |v: Value| v["spec"]["clusterIP"].as_str().map(str::to_string),
        };
        m.apply(event(EventType::Added, Some(&service("a")), 1)).unwrap();
        let cached = m.cache.get(&("Service".into(), "default".into(), "a".into())).unwrap();
        assert_eq!(cached.as_deref(), Some("10.96.0.9"));
    }
}
