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

/// (kind, namespace, name): where an object sits in a [`Cache`].
pub type Key = (String, String, String);

/// (kind, namespace, name) → object (or what a projection keeps of it, see [`run_projected`]).
pub type Cache<T = Value> = BTreeMap<Key, Arc<T>>;

/// What [`run_changes`] sends: the watched objects as changes rather than snapshots.
pub enum Change<T = Value> {
    /// The complete set of objects: the first list, and every new list after a watch that could
    /// not resume (a reset). It replaces everything before it, so that nothing stale survives.
    Listed(Cache<T>),
    /// One object added or modified (`Some`) or deleted (`None`), after a `Listed`.
    Object(Key, Option<Arc<T>>),
}

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
    let mirror = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project, log: None };
    let emit = |mirror: &mut Mirror<T>, due: bool| {
        if due {
            publish(&tx, &mirror.cache, mirror.synced);
        }
        true
    };
    follow(upstream.into(), kinds, node_name, mirror, emit, || tx.is_closed()).await
}

/// [`run_projected`], sending the changes instead of publishing snapshots: a watcher that keeps
/// an index of many objects (the cluster DNS) applies each change to what it touches, where a
/// snapshot would cost a copy of the whole cache per batch of events and a walk over all of it.
/// Each message holds the changes of one batch of events, in order.
pub async fn run_changes<T: Send + Sync + 'static>(
    upstream: impl Into<crate::transport::Upstream>,
    kinds: Vec<String>,
    node_name: String,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Change<T>>>,
    project: fn(Value) -> T,
) {
    let mirror = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project, log: Some(Vec::new()) };
    let emit = |mirror: &mut Mirror<T>, _: bool| {
        let changes = std::mem::take(mirror.log.as_mut().expect("a change log"));
        changes.is_empty() || tx.send(changes).is_ok()
    };
    follow(upstream.into(), kinds, node_name, mirror, emit, || tx.is_closed()).await
}

/// The watch loop of [`run_projected`] and [`run_changes`]: `emit` is called after each batch of
/// events with whether the cache changed in a way to publish, and returns false when it could
/// not deliver; the loop ends then, or when `closed` says so after the stream ended.
async fn follow<T>(
    upstream: crate::transport::Upstream,
    kinds: Vec<String>,
    node_name: String,
    mut mirror: Mirror<T>,
    mut emit: impl FnMut(&mut Mirror<T>, bool) -> bool,
    closed: impl Fn() -> bool,
) {
    let mut listening = true;
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
                listening = emit(&mut mirror, due);
                if !listening {
                    break;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(rv = mirror.rv, "watch ended or renewed; resuming"),
            Err(e) => tracing::debug!(error = %e, "watch interrupted; resuming"),
        }
        if !listening || closed() {
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
    /// The changes applied since the last batch, for [`run_changes`]; `None` for snapshots. With
    /// changes, `cache` holds only a list being received (the first, without a RESET).
    log: Option<Vec<Change<T>>>,
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
                let listed = self.fresh.is_some() || !self.synced;
                if let Some(fresh) = self.fresh.take() {
                    self.cache = fresh;
                }
                self.synced = true;
                if let (true, Some(log)) = (listed, &mut self.log) {
                    // Changes logged before it are superseded. The list is handed over rather
                    // than copied: with changes sent, nothing reads the cache after this.
                    log.clear();
                    log.push(Change::Listed(std::mem::take(&mut self.cache)));
                }
                self.rv = self.rv.max(event.resource_version);
                Ok(true)
            }
            kind => {
                let Some(object) = object else { return Ok(false) };
                let live = self.fresh.is_none() && self.synced;
                let target = self.fresh.as_mut().unwrap_or(&mut self.cache);
                let key = key_of(&object);
                let object = (kind != EventType::Deleted).then(|| Arc::new((self.project)(object)));
                match (live, &mut self.log) {
                    // Sent as a change, and kept by whoever applies it: no copy here.
                    (true, Some(log)) => log.push(Change::Object(key, object)),
                    (_, _) => {
                        if let Some(object) = object {
                            target.insert(key, object);
                        } else {
                            target.remove(&key);
                        }
                    }
                }
                self.rv = self.rv.max(event.resource_version);
                Ok(live)
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
        let mut m = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project: |v: Value| v, log: None };
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
            log: None,
        };
        m.apply(event(EventType::Added, Some(&service("a")), 1)).unwrap();
        let cached = m.cache.get(&("Service".into(), "default".into(), "a".into())).unwrap();
        assert_eq!(cached.as_deref(), Some("10.96.0.9"));
    }

    /// What the log holds, as (kind of change, object names).
    fn logged(m: &mut Mirror<Value>) -> Vec<(&'static str, Vec<String>)> {
        let log = std::mem::take(m.log.as_mut().unwrap());
        log.into_iter()
            .map(|change| match change {
                Change::Listed(cache) => ("listed", names(&cache).into_iter().map(str::to_string).collect()),
                Change::Object(key, Some(_)) => ("set", vec![key.2]),
                Change::Object(key, None) => ("deleted", vec![key.2]),
            })
            .collect()
    }

    #[test]
    fn changes_are_a_list_then_each_object_and_a_reset_lists_again() {
        let mut m = Mirror { cache: Cache::new(), fresh: None, rv: 0, synced: false, project: |v: Value| v, log: Some(Vec::new()) };
        m.apply(event(EventType::Added, Some(&service("a")), 1)).unwrap();
        assert!(logged(&mut m).is_empty(), "nothing before the first list is complete");
        m.apply(event(EventType::Synced, Some("{}"), 1)).unwrap();
        assert_eq!(logged(&mut m), [("listed", vec!["a".to_string()])]);
        m.apply(event(EventType::Added, Some(&service("b")), 2)).unwrap();
        m.apply(event(EventType::Deleted, Some(&service("a")), 3)).unwrap();
        assert_eq!(logged(&mut m), [("set", vec!["b".to_string()]), ("deleted", vec!["a".to_string()])]);
        // A watch that resumed and said so changes nothing.
        m.apply(event(EventType::Synced, Some("{}"), 3)).unwrap();
        assert!(logged(&mut m).is_empty());
        m.apply(event(EventType::Reset, Some("{}"), 9)).unwrap();
        m.apply(event(EventType::Added, Some(&service("c")), 9)).unwrap();
        assert!(logged(&mut m).is_empty(), "the new list is sent whole once complete");
        m.apply(event(EventType::Synced, Some("{}"), 9)).unwrap();
        assert_eq!(logged(&mut m), [("listed", vec!["c".to_string()])], "b is gone with the old list");
    }
}
