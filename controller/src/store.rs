//! The controller's object store: Kubernetes objects as JSON, one global resource version, and
//! watch streams that resume from a resource version.
//!
//! redb is the durable copy; every object also lives in memory (like the API server's watch
//! cache), so reads never touch the file and cannot fail, and a snapshot, its resource version and
//! the registration of a watcher are taken atomically under one lock. Writes hold that lock across
//! the redb commit and the fan-out, so events leave in resource-version order with no gap.
//!
//! Durability: see [`SyncOnlyOnClose`] for why commits reach the OS (surviving a SIGKILL of the
//! controller) without an fsync each.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{OpenOptions, Permissions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use redb::backends::FileBackend;
use redb::{BackendError, Database, ReadableTable, StorageBackend, TableDefinition};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// (kind, namespace, name) → the object as JSON.
const OBJECTS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RV_KEY: &str = "resourceVersion";
/// A store file is compacted only when it has more than this free ([`Store::compact_if_wasteful`]).
const COMPACT_SLACK: u64 = 4 << 20;

/// Events kept in memory for watchers that reconnect.
const HISTORY: usize = 1_000;
/// Events buffered per watcher; a watcher this far behind is dropped and must reconnect.
const WATCH_BUFFER: usize = 4_096;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: String,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of(obj: &Value) -> Result<ObjectKey, StoreError> {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.is_empty() {
            return Err(StoreError::Invalid("object has no kind: set \"kind\" (e.g. \"Pod\")".into()));
        }
        let meta = obj.get("metadata");
        let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str).unwrap_or_default();
        let (namespace, name) = (field("namespace"), field("name"));
        if name.is_empty() {
            return Err(StoreError::Invalid(format!("{kind}: metadata.name: Required value: name is required")));
        }
        Ok(ObjectKey { kind: kind.into(), namespace: namespace.into(), name: name.into() })
    }

    fn resource(&self) -> String {
        resource_name(&self.kind)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} \"{}\"", self.resource(), self.name)
        } else {
            write!(f, "{} \"{}/{}\"", self.resource(), self.namespace, self.name)
        }
    }
}

/// The "plural.group" text Kubernetes puts in its error messages; a kind emu does not serve gets
/// the lower-case "+s" guess.
fn resource_name(kind: &str) -> String {
    emu_api::kinds::by_kind(kind).map(|rk| rk.qualified_plural()).unwrap_or_else(|| format!("{}s", kind.to_lowercase()))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind_plural_group} \"{name}\" not found")]
    NotFound { kind_plural_group: String, name: String },
    #[error("{kind_plural_group} \"{name}\" already exists")]
    AlreadyExists { kind_plural_group: String, name: String },
    #[error(
        "Operation cannot be fulfilled on {kind_plural_group} \"{name}\": the object has been \
         modified; please apply your changes to the latest version and try again"
    )]
    Conflict { kind_plural_group: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("object store: {0}")]
    Db(String),
}

impl StoreError {
    fn not_found(key: &ObjectKey) -> Self {
        StoreError::NotFound { kind_plural_group: key.resource(), name: key.name.clone() }
    }
    fn already_exists(key: &ObjectKey) -> Self {
        StoreError::AlreadyExists { kind_plural_group: key.resource(), name: key.name.clone() }
    }
    fn conflict(key: &ObjectKey) -> Self {
        StoreError::Conflict { kind_plural_group: key.resource(), name: key.name.clone() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    pub kind: WatchEventType,
    /// Shared by every watcher: an event is neither copied nor encoded once per watcher.
    pub object: Arc<Value>,
    /// `object` as JSON (as written to redb).
    pub json: Arc<str>,
    pub resource_version: u64,
}

/// One change as [`Store::changes_since`] lists it.
pub type Change = (WatchEventType, Arc<Value>);

/// What a controller pass looks at.
pub enum Changes {
    /// Everything: the first pass, a periodic one, or when the store's history no longer reaches
    /// back to the last pass.
    All,
    /// The changes since the last pass, oldest first (a deleted object as it last was).
    Some(Vec<Change>),
}

impl Changes {
    /// Whether something may have lost its owner, namespace or node.
    pub fn may_orphan(&self) -> bool {
        match self {
            Changes::All => true,
            Changes::Some(events) => events.iter().any(|(t, _)| *t == WatchEventType::Deleted),
        }
    }
}

#[derive(Debug)]
pub enum WatchStart {
    /// The watcher must replace its whole cache with `objects` (all kinds), current as of
    /// `resource_version`.
    Reset { objects: Vec<Value>, resource_version: u64 },
    /// The events the watcher missed since the version it asked for, oldest first.
    Resume { events: Vec<WatchEvent> },
}

/// A retained event. The object is shared with the in-memory copy of the store while it is the
/// current version; once superseded or deleted only its JSON stays, and [`Retained::object`]
/// parses it again for the rare reader (a watch resuming, a pass that missed it). Keeping every
/// superseded version decoded cost most of the controller's heap: at 100 pods, 1,000 retained
/// events held about 10 MB of `Value`s beside 3 MB of the same JSON.
#[derive(Clone)]
struct Retained {
    kind: WatchEventType,
    object: Weak<Value>,
    json: Arc<str>,
    resource_version: u64,
}

impl Retained {
    fn object(&self) -> Arc<Value> {
        self.object.upgrade().unwrap_or_else(|| Arc::new(serde_json::from_str(&self.json).expect("the store wrote this JSON")))
    }

    fn to_event(&self) -> WatchEvent {
        WatchEvent { kind: self.kind, object: self.object(), json: self.json.clone(), resource_version: self.resource_version }
    }
}

struct Inner {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    rv: u64,
    /// The events with resource versions in `(history_base, rv]`, oldest first.
    history: VecDeque<Retained>,
    history_base: u64,
    watchers: Vec<mpsc::Sender<WatchEvent>>,
}

pub struct Store {
    /// Locked by writers (under `inner`) and by a compaction, which needs it alone.
    db: Mutex<Database>,
    path: PathBuf,
    history_limit: usize,
    watch_buffer: usize,
    inner: Mutex<Inner>,
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0600) if it does not exist.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, HISTORY, WATCH_BUFFER)
    }

    fn open_with(path: &Path, history_limit: usize, watch_buffer: usize) -> Result<Store, StoreError> {
        let db_err = |what: &str, e: &dyn fmt::Display| StoreError::Db(format!("{what} {}: {e}", path.display()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| db_err("opening", &e))?;
        // The mode above only applies to a new file; the store holds Secrets, so tighten an old one.
        file.set_permissions(Permissions::from_mode(0o600)).map_err(|e| db_err("setting mode 0600 on", &e))?;
        let backend = SyncOnlyOnClose(FileBackend::new(file).map_err(|e| db_err("opening", &e))?);
        // Every object also lives in memory (`objects`), so redb's page cache only needs to hold
        // the pages of the transaction being written: keep it small, it is resident memory.
        let db = Database::builder()
            .set_cache_size(2 << 20)
            .create_with_backend(backend)
            .map_err(|e| db_err("opening (is another emu-controller using it?)", &e))?;

        let (objects, rv) = load(&db).map_err(|e| db_err("reading", &e))?;
        Ok(Store {
            db: Mutex::new(db),
            path: path.to_path_buf(),
            history_limit,
            watch_buffer,
            inner: Mutex::new(Inner { objects, rv, history: VecDeque::new(), history_base: rv, watchers: Vec::new() }),
        })
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.get_shared(key).map(|o| (*o).clone())
    }

    /// [`Store::get`] without copying the object.
    pub fn get_shared(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.lock().objects.get(key).cloned()
    }

    /// The objects of `kind` (in `namespace`, or all), sorted by namespace then name, and the
    /// resource version the list is current at.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let (shared, rv) = self.list_shared(kind, namespace);
        // Deep copies are made outside the lock.
        (shared.iter().map(|o| (**o).clone()).collect(), rv)
    }

    /// [`Store::list`] without copying the objects: what the controllers read on every pass
    /// (copying thousands of objects per pass made each endpoint change wait for it).
    pub fn list_shared(&self, kind: &str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let start = ObjectKey { kind: kind.into(), namespace: namespace.unwrap_or_default().into(), name: String::new() };
        let items: Vec<Arc<Value>> = inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// The objects of `kind` in `namespace` whose names start with `prefix`, in name order.
    pub fn list_shared_prefixed(&self, kind: &str, namespace: &str, prefix: &str) -> Vec<Arc<Value>> {
        let inner = self.lock();
        let start = ObjectKey { kind: kind.into(), namespace: namespace.into(), name: prefix.into() };
        inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.kind == kind && k.namespace == namespace && k.name.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The oldest version a watch can resume from: the history holds the events after it. A
    /// watch from before it is told `too old resource version: N (oldest)` (410 Expired).
    pub fn oldest_resumable_version(&self) -> u64 {
        self.lock().history_base
    }

    /// Stores a new object, setting its uid, creationTimestamp, resourceVersion and (for objects
    /// with a spec) generation 1.
    pub fn create(&self, obj: Value) -> Result<Value, StoreError> {
        self.write_all(vec![Write::Create(obj)]).map(|mut v| v.remove(0))
    }

    /// Replaces a stored object. A set metadata.resourceVersion must match the stored one
    /// (optimistic concurrency); uid and creationTimestamp are kept; generation counts spec
    /// changes. An update that changes nothing returns the stored object without a new version.
    pub fn update(&self, obj: Value) -> Result<Value, StoreError> {
        self.write_all(vec![Write::Update(obj)]).map(|mut v| v.remove(0))
    }

    /// Removes an object and returns its last state, carrying the deletion's resource version.
    pub fn delete(&self, key: &ObjectKey) -> Result<Value, StoreError> {
        self.write_all(vec![Write::Delete(key.clone())]).map(|mut v| v.remove(0))
    }

    /// Carries out `writes` in order, all or none: each is checked against the store as the
    /// earlier ones leave it, then every change is written in one redb transaction (so a crash
    /// leaves all of them or none, as an apply of many documents promises), and only then put in
    /// the cache and sent to the watchers, one resource version each, in order. Returns each
    /// object as it is after its write (a deleted one as it last was); the first refused write
    /// refuses them all, with nothing changed.
    pub fn write_all(&self, writes: Vec<Write>) -> Result<Vec<Value>, StoreError> {
        let mut inner = self.lock();
        let mut staged: Vec<Staged> = Vec::with_capacity(writes.len());
        // The objects as the staged writes leave them (None: removed), over the cache.
        let mut overlay: BTreeMap<ObjectKey, Option<Arc<Value>>> = BTreeMap::new();
        let mut rv = inner.rv;
        for write in writes {
            let current = |key: &ObjectKey| overlay.get(key).cloned().unwrap_or_else(|| inner.objects.get(key).cloned());
            let step = match write {
                Write::Create(obj) => stage_create(obj, &current, false)?,
                Write::CreateWithUid(obj) => stage_create(obj, &current, true)?,
                Write::Update(obj) => stage_update(obj, &current)?,
                Write::Delete(key) => {
                    let stored = current(&key).ok_or_else(|| StoreError::not_found(&key))?;
                    Staged::Remove { key, last: (*stored).clone() }
                }
            };
            let step = match step {
                Staged::Put { key, mut obj, kind } => {
                    rv += 1;
                    // Not shared yet: set in place.
                    set_resource_version(Arc::make_mut(&mut obj), rv);
                    Staged::Put { key, obj, kind }
                }
                Staged::Remove { key, mut last } => {
                    rv += 1;
                    set_resource_version(&mut last, rv);
                    Staged::Remove { key, last }
                }
                unchanged => unchanged,
            };
            match &step {
                Staged::Put { key, obj, .. } => overlay.insert(key.clone(), Some(obj.clone())),
                Staged::Remove { key, .. } => overlay.insert(key.clone(), None),
                Staged::Unchanged(_) => None,
            };
            staged.push(step);
        }
        let jsons = self.persist(&staged, rv)?;
        let mut out = Vec::with_capacity(staged.len());
        let mut next = inner.rv;
        for (step, json) in staged.into_iter().zip(jsons) {
            match step {
                Staged::Unchanged(stored) => out.push((*stored).clone()),
                Staged::Put { key, obj, kind } => {
                    next += 1;
                    inner.objects.insert(key, obj.clone());
                    self.publish(&mut inner, kind, obj.clone(), json.unwrap_or_default(), next);
                    out.push((*obj).clone());
                }
                Staged::Remove { key, last } => {
                    next += 1;
                    inner.objects.remove(&key);
                    let last = Arc::new(last);
                    self.publish(&mut inner, WatchEventType::Deleted, last.clone(), json.unwrap_or_default(), next);
                    out.push((*last).clone());
                }
            }
        }
        Ok(out)
    }

    /// Compacts the file when at most a third of it holds objects (and more than [`COMPACT_SLACK`]
    /// is free), as after deleting large objects: redb reuses freed pages but never gives them
    /// back to the file system otherwise. Writers wait meanwhile (milliseconds for emu's stores).
    /// Returns the file's size before and after, when it compacted.
    pub fn compact_if_wasteful(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let _writers = self.lock();
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let failed = |what: &str, e: &dyn fmt::Display| StoreError::Db(format!("{what} {}: {e}", self.path.display()));
        let size = || std::fs::metadata(&self.path).map(|m| m.len()).map_err(|e| failed("reading the size of", &e));
        let before = size()?;
        let txn = db.begin_write().map_err(|e| failed("reading", &e))?;
        let stats = txn.stats().map_err(|e| failed("reading", &e))?;
        txn.abort().map_err(|e| failed("reading", &e))?;
        let used = stats.stored_bytes() + stats.metadata_bytes();
        if before <= COMPACT_SLACK + 3 * used {
            return Ok(None);
        }
        while db.compact().map_err(|e| failed("compacting", &e))? {}
        Ok(Some((before, size()?)))
    }

    /// Starts a watch of every object. Events after `from` (exclusive) are returned as
    /// `Resume` when the in-memory history still holds them all; otherwise (`from == 0`, too old,
    /// from before a restart, or from the future) as `Reset` with a full snapshot. The receiver
    /// then gets every later event, with no gap or duplicate. A receiver that falls
    /// `WATCH_BUFFER` events behind is closed (after its buffered events); the watcher should then
    /// call `watch` again from the last version it saw.
    pub fn watch(&self, from: u64) -> (WatchStart, mpsc::Receiver<WatchEvent>) {
        let (tx, rx) = mpsc::channel(self.watch_buffer);
        let mut inner = self.lock();
        inner.watchers.push(tx);
        if from != 0 && from >= inner.history_base && from <= inner.rv {
            // history holds versions history_base+1..=rv, one per version, in order.
            let skip = usize::try_from(from - inner.history_base).unwrap_or(usize::MAX);
            let missed: Vec<Retained> = inner.history.iter().skip(skip).cloned().collect();
            drop(inner);
            let events = missed.iter().map(Retained::to_event).collect();
            return (WatchStart::Resume { events }, rx);
        }
        let shared: Vec<Arc<Value>> = inner.objects.values().cloned().collect();
        let resource_version = inner.rv;
        drop(inner);
        let objects = shared.iter().map(|o| (**o).clone()).collect();
        (WatchStart::Reset { objects, resource_version }, rx)
    }

    /// What changed after version `from`, oldest first (a deleted object as it last was), and
    /// the version the list is current at; None when the retained history no longer reaches
    /// back to `from` (the caller must then look at everything). Lets the controllers work on
    /// what changed instead of on every object at each pass.
    pub fn changes_since(&self, from: u64) -> Option<(Vec<Change>, u64)> {
        let inner = self.lock();
        if from < inner.history_base || from > inner.rv {
            return None;
        }
        let skip = usize::try_from(from - inner.history_base).ok()?;
        let retained: Vec<Retained> = inner.history.iter().skip(skip).cloned().collect();
        let rv = inner.rv;
        drop(inner);
        Some((retained.iter().map(|r| (r.kind, r.object())).collect(), rv))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Inner is changed only after a successful commit, in steps that cannot panic halfway in
        // a way that breaks it, so a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the staged changes and the last resource version `rv` in one redb transaction;
    /// returns the JSON of each change as written (a removed object's last state).
    fn persist(&self, staged: &[Staged], rv: u64) -> Result<Vec<Option<Arc<str>>>, StoreError> {
        let encode = |key: &ObjectKey, obj: &Value| {
            serde_json::to_string(obj)
                .map(Arc::<str>::from)
                .map_err(|e| StoreError::Invalid(format!("{key}: cannot be encoded as JSON: {e}")))
        };
        let mut jsons = Vec::with_capacity(staged.len());
        for step in staged {
            jsons.push(match step {
                Staged::Put { key, obj, .. } => Some(encode(key, obj)?),
                Staged::Remove { key, last } => Some(encode(key, last)?),
                Staged::Unchanged(_) => None,
            });
        }
        if staged.iter().all(|s| matches!(s, Staged::Unchanged(_))) {
            return Ok(jsons);
        }
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.lock().unwrap_or_else(|e| e.into_inner()).begin_write()?;
            {
                let mut objects = txn.open_table(OBJECTS)?;
                for (step, json) in staged.iter().zip(&jsons) {
                    match (step, json) {
                        (Staged::Put { key, .. }, Some(json)) => {
                            objects.insert((key.kind.as_str(), key.namespace.as_str(), key.name.as_str()), json.as_bytes())?;
                        }
                        (Staged::Remove { key, .. }, _) => {
                            objects.remove((key.kind.as_str(), key.namespace.as_str(), key.name.as_str()))?;
                        }
                        _ => {}
                    }
                }
                txn.open_table(META)?.insert(RV_KEY, rv)?;
            }
            txn.commit()?;
            Ok(())
        };
        let what = match staged {
            [Staged::Put { key, .. } | Staged::Remove { key, .. }] => key.to_string(),
            _ => format!("{} objects", staged.len()),
        };
        write().map_err(|e| StoreError::Db(format!("writing {what} to {}: {e}", self.path.display())))?;
        Ok(jsons)
    }

    fn publish(&self, inner: &mut Inner, kind: WatchEventType, object: Arc<Value>, json: Arc<str>, rv: u64) {
        inner.rv = rv;
        let event = WatchEvent { kind, object, json, resource_version: rv };
        // A full or closed channel drops the watcher: it reconnects from its last version.
        inner.watchers.retain(|tx| tx.try_send(event.clone()).is_ok());
        inner.history.push_back(Retained { kind, object: Arc::downgrade(&event.object), json: event.json, resource_version: rv });
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.history_base = old.resource_version;
            }
        }
    }
}

/// One write of [`Store::write_all`].
#[derive(Debug, Clone)]
pub enum Write {
    /// A new object ([`Store::create`]).
    Create(Value),
    /// A new object whose uid the API server assigned before admission (a Job's generated
    /// selector names it, as kube-apiserver fills the uid before the Job strategy runs).
    CreateWithUid(Value),
    /// A stored object replaced ([`Store::update`]).
    Update(Value),
    /// A stored object removed ([`Store::delete`]).
    Delete(ObjectKey),
}

/// A write checked and ready to commit.
enum Staged {
    Put {
        key: ObjectKey,
        /// Shared by the batch's later writes (which see it) and, once committed, the cache.
        obj: Arc<Value>,
        kind: WatchEventType,
    },
    Remove {
        key: ObjectKey,
        last: Value,
    },
    /// An update that changes nothing: the stored object, no new version.
    Unchanged(Arc<Value>),
}

/// A create checked against `current` (the store as the earlier writes leave it).
fn stage_create(mut obj: Value, current: &dyn Fn(&ObjectKey) -> Option<Arc<Value>>, keep_uid: bool) -> Result<Staged, StoreError> {
    let key = ObjectKey::of(&obj)?;
    let has_spec = obj.get("spec").is_some();
    let meta = metadata_mut(&mut obj, &key)?;
    if !(keep_uid && meta.get("uid").and_then(Value::as_str).is_some_and(|u| !u.is_empty())) {
        meta.insert("uid".into(), new_uid().into());
    }
    meta.insert("creationTimestamp".into(), emu_api::object::rfc3339(emu_api::time::now()).into());
    if has_spec {
        meta.insert("generation".into(), 1.into());
    }
    if current(&key).is_some() {
        return Err(StoreError::already_exists(&key));
    }
    Ok(Staged::Put { key, obj: Arc::new(obj), kind: WatchEventType::Added })
}

/// An update checked against `current`: see [`Store::update`].
fn stage_update(mut obj: Value, current: &dyn Fn(&ObjectKey) -> Option<Arc<Value>>) -> Result<Staged, StoreError> {
    let key = ObjectKey::of(&obj)?;
    let stored = current(&key).ok_or_else(|| StoreError::not_found(&key))?;
    let stored_meta = stored.get("metadata");
    let stored_field = |f: &str| stored_meta.and_then(|m| m.get(f)).cloned();
    let stored_rv = stored_field("resourceVersion").unwrap_or(Value::Null);

    let spec_changed = obj.get("spec") != stored.get("spec");
    let has_spec = obj.get("spec").is_some();
    let meta = metadata_mut(&mut obj, &key)?;
    match meta.get("resourceVersion").and_then(Value::as_str) {
        Some(rv) if !rv.is_empty() && Some(rv) != stored_rv.as_str() => {
            return Err(StoreError::conflict(&key));
        }
        _ => {}
    }
    for f in ["uid", "creationTimestamp"] {
        match stored_field(f) {
            Some(v) => meta.insert(f.into(), v),
            None => meta.remove(f),
        };
    }
    match stored_field("generation").and_then(|g| g.as_u64()) {
        Some(g) => meta.insert("generation".into(), (g + u64::from(spec_changed)).into()),
        None if has_spec => meta.insert("generation".into(), 1.into()),
        None => meta.remove("generation"),
    };
    meta.insert("resourceVersion".into(), stored_rv);
    if obj == *stored {
        return Ok(Staged::Unchanged(stored));
    }
    if completes_deletion(&stored, &obj) {
        return Ok(Staged::Remove { key, last: obj });
    }
    Ok(Staged::Put { key, obj: Arc::new(obj), kind: WatchEventType::Modified })
}

fn load(db: &Database) -> Result<(BTreeMap<ObjectKey, Arc<Value>>, u64), redb::Error> {
    // A write transaction creates the tables in a new file.
    let txn = db.begin_write()?;
    let mut objects = BTreeMap::new();
    let rv = {
        let table = txn.open_table(OBJECTS)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (kind, namespace, name) = k.value();
            let key = ObjectKey { kind: kind.into(), namespace: namespace.into(), name: name.into() };
            let obj: Value =
                serde_json::from_slice(v.value()).map_err(|e| redb::Error::Corrupted(format!("object {key} is not valid JSON: {e}")))?;
            objects.insert(key, Arc::new(obj));
        }
        let meta = txn.open_table(META)?;
        let rv = meta.get(RV_KEY)?.map(|g| g.value()).unwrap_or(0);
        rv
    };
    txn.commit()?;
    Ok((objects, rv))
}

/// Whether an update of `stored` to `new` takes off the last finalizer of an object whose deletion
/// was asked for: the object then goes (Kubernetes' `shouldDeleteDuringUpdate`). Only objects that
/// had finalizers: a pod in graceful deletion has none and goes when its agent deletes it.
fn completes_deletion(stored: &Value, new: &Value) -> bool {
    let finalizers = |v: &Value| v.pointer("/metadata/finalizers").and_then(Value::as_array).map_or(0, Vec::len);
    let grace = stored.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
    emu_api::object::is_terminating(stored) && grace == 0 && finalizers(stored) > 0 && finalizers(new) == 0
}

fn metadata_mut<'a>(obj: &'a mut Value, key: &ObjectKey) -> Result<&'a mut Map<String, Value>, StoreError> {
    obj.get_mut("metadata").and_then(Value::as_object_mut).ok_or_else(|| StoreError::Invalid(format!("{key}: metadata must be an object")))
}

fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), rv.to_string().into());
    }
}

/// A random (version 4) UUID in its usual text form.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// redb's file backend, except that a commit does not wait for fsync.
///
/// Why: redb offers two durabilities. `Durability::None` keeps a commit in redb's own memory
/// until a later durable commit, so a SIGKILL of the controller loses it: not acceptable for
/// acknowledged writes. `Durability::Immediate` writes the pages and the commit slot with
/// `pwrite` and then fsyncs, which serializes every writer behind the disk: `bench_10k_creates`
/// measured 600 creates/s with the fsync and 6,500/s without it on ext4 here (a pod costs several
/// writes: create, binding, status updates, endpoints). With this backend every commit is
/// an `Immediate` one whose writes are complete in the kernel's page cache when `commit`
/// returns, so a crash or SIGKILL of the controller loses nothing; only a kernel crash or power
/// loss can lose recent writes, and that also ends every emulated node, pod and network
/// namespace, so the cluster has to be rebuilt (`emu up`) anyway. The data is flushed when the
/// store is closed.
#[derive(Debug)]
struct SyncOnlyOnClose(FileBackend);

impl StorageBackend for SyncOnlyOnClose {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        let synced = self.0.sync_data();
        self.0.close()?;
        synced
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    fn pod(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    fn key(kind: &str, ns: &str, name: &str) -> ObjectKey {
        ObjectKey { kind: kind.into(), namespace: ns.into(), name: name.into() }
    }

    fn meta<'a>(obj: &'a Value, field: &str) -> &'a Value {
        &obj["metadata"][field]
    }

    fn names(objs: &[Value]) -> Vec<String> {
        objs.iter()
            .map(|o| format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn create_sets_system_fields_and_get_list_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        assert_eq!(store.resource_version(), 0);
        let created = store.create(pod("default", "web")).unwrap();

        let uid = meta(&created, "uid").as_str().unwrap();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4", "UUID version 4: {uid}");
        let ts = meta(&created, "creationTimestamp").as_str().unwrap();
        assert_eq!((ts.len(), &ts[4..5], &ts[10..11], &ts[19..]), (20, "-", "T", "Z"), "{ts}");
        assert_eq!(meta(&created, "resourceVersion"), "1");
        assert_eq!(meta(&created, "generation"), 1);
        assert_eq!(store.resource_version(), 1);
        assert_eq!(store.get(&key("Pod", "default", "web")), Some(created));

        // Objects without a spec get no generation.
        let cm = store.create(json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": {}})).unwrap();
        assert!(meta(&cm, "generation").is_null());
        assert_eq!(store.get(&key("ConfigMap", "a", "d")), None);
    }

    #[test]
    fn list_sorts_by_namespace_then_name_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        for (ns, name) in [("b", "x"), ("a", "z"), ("a-b", "a"), ("a", "B"), ("a", "a")] {
            store.create(pod(ns, name)).unwrap();
        }
        store.create(json!({"kind": "Node", "metadata": {"name": "n1"}})).unwrap();
        store.create(json!({"kind": "Service", "metadata": {"name": "s", "namespace": "a"}, "spec": {}})).unwrap();

        let (pods, rv) = store.list("Pod", None);
        assert_eq!(names(&pods), ["a/B", "a/a", "a/z", "a-b/a", "b/x"]);
        assert_eq!(rv, 7);
        assert_eq!(names(&store.list("Pod", Some("a")).0), ["a/B", "a/a", "a/z"]);
        assert!(store.list("Pod", Some("c")).0.is_empty());
        assert_eq!(names(&store.list("Node", None).0), ["/n1"]);
        assert!(store.list("Deployment", None).0.is_empty());
    }

    #[test]
    fn update_checks_versions_counts_generations_and_skips_no_ops() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let v1 = store.create(pod("default", "web")).unwrap();

        // A status-only change: new version, same generation, uid and timestamp kept.
        let mut status = v1.clone();
        status["status"] = json!({"phase": "Running"});
        status["metadata"]["uid"] = json!("forged");
        let v2 = store.update(status).unwrap();
        assert_eq!(meta(&v2, "resourceVersion"), "2");
        assert_eq!(meta(&v2, "generation"), 1);
        assert_eq!(meta(&v2, "uid"), meta(&v1, "uid"));
        assert_eq!(meta(&v2, "creationTimestamp"), meta(&v1, "creationTimestamp"));

        // A stale version conflicts.
        let mut stale = v1.clone();
        stale["spec"]["nodeName"] = json!("n1");
        let err = store.update(stale.clone()).unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }));
        assert_eq!(
            err.to_string(),
            "Operation cannot be fulfilled on pods \"web\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );

        // Without a version the update is unconditional; a spec change bumps the generation.
        let mut spec = v2.clone();
        spec["spec"]["nodeName"] = json!("n1");
        spec["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        let v3 = store.update(spec).unwrap();
        assert_eq!(meta(&v3, "resourceVersion"), "3");
        assert_eq!(meta(&v3, "generation"), 2);
        assert_eq!(v3["status"]["phase"], "Running");

        // Nothing changed: the stored object comes back, no new version, no event.
        let (_, mut rx) = store.watch(store.resource_version());
        let mut same = v3.clone();
        same["metadata"].as_object_mut().unwrap().remove("uid");
        assert_eq!(store.update(same).unwrap(), v3);
        assert_eq!(store.resource_version(), 3);
        assert!(rx.try_recv().is_err());

        let err = store.update(pod("default", "missing")).unwrap_err();
        assert_eq!(err.to_string(), "pods \"missing\" not found");
    }

    #[test]
    fn delete_returns_last_state_with_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        store.create(pod("default", "web")).unwrap();
        let (_, mut rx) = store.watch(1);
        let gone = store.delete(&key("Pod", "default", "web")).unwrap();
        assert_eq!(meta(&gone, "resourceVersion"), "2");
        assert_eq!(store.get(&key("Pod", "default", "web")), None);
        let ev = rx.try_recv().unwrap();
        assert_eq!((ev.kind, ev.resource_version, &*ev.object), (WatchEventType::Deleted, 2, &gone));
        let err = store.delete(&key("Pod", "default", "web")).unwrap_err();
        assert_eq!(err.to_string(), "pods \"web\" not found");
    }

    #[test]
    fn taking_off_the_last_finalizer_of_a_deleted_object_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let fault = json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "f", "finalizers": ["a", "b"]}, "spec": {}});
        let mut v = store.create(fault).unwrap();
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let mut v = store.update(v).unwrap();
        v["metadata"]["finalizers"] = json!(["b"]);
        let mut v = store.update(v).unwrap();
        assert!(store.get(&key("Fault", "", "f")).is_some(), "one finalizer left");
        let (_, mut rx) = store.watch(store.resource_version());
        v["metadata"]["finalizers"] = json!([]);
        let last = store.update(v).unwrap();
        assert_eq!(store.get(&key("Fault", "", "f")), None);
        assert_eq!(rx.try_recv().unwrap().kind, WatchEventType::Deleted);
        assert_eq!(last["metadata"]["finalizers"], json!([]));

        // Not asked to be deleted, or in a graceful deletion without finalizers: it stays.
        let mut p = store.create(json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default", "finalizers": ["a"]}})).unwrap();
        p["metadata"]["finalizers"] = json!([]);
        let mut p = store.update(p).unwrap();
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        store.update(p).unwrap();
        assert!(store.get(&key("Pod", "default", "p")).is_some());
    }

    #[test]
    fn error_messages_use_kubernetes_wording() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "my-nginx", "namespace": "default"}, "spec": {}});
        store.create(deploy.clone()).unwrap();
        assert_eq!(store.create(deploy).unwrap_err().to_string(), "deployments.apps \"my-nginx\" already exists");
        let err = store.delete(&key("EndpointSlice", "default", "x")).unwrap_err();
        assert_eq!(err.to_string(), "endpointslices.discovery.k8s.io \"x\" not found");
        assert!(matches!(
            store.create(json!({"kind": "Pod", "metadata": {}})),
            Err(StoreError::Invalid(m)) if m.contains("metadata.name")
        ));
        assert!(matches!(ObjectKey::of(&json!({"metadata": {"name": "x"}})), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn objects_and_version_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let (objects, rv) = {
            let store = Store::open(&path).unwrap();
            store.create(pod("default", "a")).unwrap();
            store.create(pod("default", "b")).unwrap();
            let mut b = store.get(&key("Pod", "default", "b")).unwrap();
            b["status"] = json!({"phase": "Pending"});
            store.update(b).unwrap();
            store.delete(&key("Pod", "default", "a")).unwrap();
            store.list("Pod", None)
        };
        assert_eq!(rv, 4);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.resource_version(), 4);
        assert_eq!(store.list("Pod", None), (objects, 4));
        // A watcher from before the restart has to re-list; one that is current resumes.
        assert!(matches!(store.watch(2).0, WatchStart::Reset { resource_version: 4, .. }));
        assert!(matches!(store.watch(4).0, WatchStart::Resume { events } if events.is_empty()));
        let c = store.create(pod("default", "c")).unwrap();
        assert_eq!(meta(&c, "resourceVersion"), "5");
    }

    #[test]
    fn a_batch_is_written_all_or_none_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = Store::open(&path).unwrap();
        store.create(pod("default", "old")).unwrap();
        let (_, mut events) = store.watch(1);
        // A write refused (the third: a create of an object the first made) refuses them all.
        let refused = store.write_all(vec![
            Write::Create(pod("default", "a")),
            Write::Create(pod("default", "b")),
            Write::Create(pod("default", "a")),
        ]);
        assert!(matches!(refused, Err(StoreError::AlreadyExists { .. })), "{refused:?}");
        assert_eq!((store.resource_version(), store.list("Pod", None).0.len()), (1, 1));
        assert!(events.try_recv().is_err(), "no event of a refused batch");

        // Each write sees the ones before it: create, update and delete of one object in a batch.
        let mut a2 = pod("default", "a");
        a2["metadata"]["labels"] = json!({"v": "2"});
        let written = store
            .write_all(vec![
                Write::Create(pod("default", "a")),
                Write::Update(a2),
                Write::Create(pod("default", "b")),
                Write::Delete(key("Pod", "default", "old")),
            ])
            .unwrap();
        let versions: Vec<&str> = written.iter().map(|o| meta(o, "resourceVersion").as_str().unwrap()).collect();
        assert_eq!(versions, ["2", "3", "4", "5"]);
        assert_eq!(meta(&written[1], "uid"), meta(&written[0], "uid"));
        let seen: Vec<(WatchEventType, u64)> =
            std::iter::from_fn(|| events.try_recv().ok()).map(|e| (e.kind, e.resource_version)).collect();
        use WatchEventType::*;
        assert_eq!(seen, [(Added, 2), (Modified, 3), (Added, 4), (Deleted, 5)]);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.resource_version(), 5);
        assert_eq!(names(&store.list("Pod", None).0), ["default/a", "default/b"]);
        assert_eq!(store.get(&key("Pod", "default", "a")).unwrap()["metadata"]["labels"]["v"], "2");
    }

    #[test]
    fn the_file_shrinks_back_after_large_objects_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = Store::open(&path).unwrap();
        let big = |i: usize| json!({"kind": "ConfigMap", "metadata": {"name": format!("big-{i}"), "namespace": "a"}, "data": {"k": "x".repeat(1 << 20)}});
        for i in 0..20 {
            store.create(big(i)).unwrap();
        }
        // redb keeps the pages of transactions not yet durable: the file holds several copies.
        let (written, compacted) = store.compact_if_wasteful().unwrap().expect("compacted");
        assert!(compacted < written, "{written} → {compacted}");
        for i in 0..20 {
            store.delete(&key("ConfigMap", "a", &format!("big-{i}"))).unwrap();
        }
        store.create(pod("default", "small")).unwrap();
        let (before, after) = store.compact_if_wasteful().unwrap().expect("compacted");
        println!("20 MiB of ConfigMaps: file {written} → compacted {compacted}; deleted: {before} → {after}");
        assert!(before > COMPACT_SLACK && after < 1 << 20, "{before} → {after}");
        assert_eq!(store.compact_if_wasteful().unwrap(), None);
        // Still a store: written to, read back after a reopen.
        store.create(pod("default", "after")).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(names(&store.list("Pod", None).0), ["default/after", "default/small"]);
    }

    #[test]
    fn second_open_of_the_same_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _first = Store::open(&path).unwrap();
        let err = Store::open(&path).err().expect("second open must fail");
        assert!(err.to_string().contains("another emu-controller"), "{err}");
    }

    #[test]
    fn watch_resets_when_the_version_is_outside_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("s"), 5, 100).unwrap();
        for i in 0..10 {
            store.create(pod("default", &format!("p{i}"))).unwrap();
        }
        // History holds versions 6..=10.
        for from in [0, 4, 11] {
            match store.watch(from).0 {
                WatchStart::Reset { objects, resource_version } => {
                    assert_eq!((objects.len(), resource_version), (10, 10), "from {from}");
                }
                WatchStart::Resume { .. } => panic!("from {from} must reset"),
            }
        }
        for from in [5, 8, 10] {
            match store.watch(from).0 {
                WatchStart::Resume { events } => {
                    let rvs: Vec<u64> = events.iter().map(|e| e.resource_version).collect();
                    assert_eq!(rvs, (from + 1..=10).collect::<Vec<_>>());
                    assert!(events.iter().all(|e| e.kind == WatchEventType::Added));
                }
                WatchStart::Reset { .. } => panic!("from {from} must resume"),
            }
        }
    }

    #[test]
    fn list_shared_prefixed_lists_by_name_prefix_within_one_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        for (ns, name) in [("default", "web"), ("default", "web-a"), ("default", "web-b"), ("default", "webx"), ("other", "web-c")] {
            store.create(pod(ns, name)).unwrap();
        }
        let listed: Vec<Value> = store.list_shared_prefixed("Pod", "default", "web-").iter().map(|v| (**v).clone()).collect();
        assert_eq!(names(&listed), ["default/web-a", "default/web-b"]);
        assert!(store.list_shared_prefixed("Service", "default", "web-").is_empty());
    }

    #[test]
    fn changes_since_lists_what_changed_while_the_history_reaches_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("s"), 5, 100).unwrap();
        for i in 0..8 {
            store.create(pod("default", &format!("p{i}"))).unwrap();
        }
        store.delete(&key("Pod", "default", "p7")).unwrap();
        // History holds versions 5..=9.
        let (changes, rv) = store.changes_since(7).expect("within the history");
        assert_eq!(rv, 9);
        let seen: Vec<(WatchEventType, &str)> = changes.iter().map(|(t, o)| (*t, o["metadata"]["name"].as_str().unwrap())).collect();
        // A deleted object comes as it last was.
        assert_eq!(seen, [(WatchEventType::Added, "p7"), (WatchEventType::Deleted, "p7")]);
        assert_eq!(store.changes_since(9).expect("nothing new").0.len(), 0);
        assert!(store.changes_since(3).is_none(), "older than the history");
        assert!(store.changes_since(10).is_none(), "newer than the store");
    }

    #[test]
    fn superseded_and_deleted_versions_come_back_from_their_json() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let mut p = store.create(pod("default", "p")).unwrap();
        p["metadata"]["labels"] = json!({"v": "2"});
        store.update(p).unwrap();
        store.create(pod("default", "q")).unwrap();
        store.delete(&key("Pod", "default", "q")).unwrap();
        let WatchStart::Resume { events } = store.watch(1).0 else { panic!("version 1 is in the history") };
        // Version 2 (p updated) is current: the same Arc as the store's; the others are parsed.
        let current = store.get_shared(&key("Pod", "default", "p")).unwrap();
        assert!(Arc::ptr_eq(&events[0].object, &current));
        assert_eq!(events[0].object["metadata"]["labels"]["v"], "2");
        assert_eq!((events[2].kind, events[2].object["metadata"]["name"].as_str()), (WatchEventType::Deleted, Some("q")));
        for e in &events {
            assert_eq!(*e.object, serde_json::from_str::<Value>(&e.json).unwrap());
            assert_eq!(e.object["metadata"]["resourceVersion"], e.resource_version.to_string());
        }
        let (changes, _) = store.changes_since(0).unwrap();
        assert_eq!(changes[0].1["metadata"]["labels"], Value::Null, "version 1 as it was, before the update");
    }

    #[test]
    fn a_lagging_watcher_is_closed_after_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("s"), 100, 3).unwrap();
        let (_, mut slow) = store.watch(0);
        let (_, mut fast) = store.watch(0);
        for i in 0..5 {
            store.create(pod("default", &format!("p{i}"))).unwrap();
            while let Ok(ev) = fast.try_recv() {
                assert_eq!(ev.resource_version, i + 1);
            }
        }
        let got: Vec<u64> = std::iter::from_fn(|| slow.try_recv().ok()).map(|e| e.resource_version).collect();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(slow.try_recv(), Err(mpsc::error::TryRecvError::Disconnected));
        assert_eq!(fast.try_recv(), Err(mpsc::error::TryRecvError::Empty));
        // It reconnects from the last version it saw and misses nothing.
        match store.watch(3).0 {
            WatchStart::Resume { events } => assert_eq!(events.len(), 2),
            WatchStart::Reset { .. } => panic!("must resume"),
        }
    }

    /// Applies a watch stream to a cache while writers run, reconnecting several times, and
    /// checks that versions arrive contiguously and the cache ends equal to the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_resumes_without_gaps_under_concurrent_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s")).unwrap());
        for i in 0..20 {
            store.create(pod("default", &format!("seed{i}"))).unwrap();
        }
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..150 {
                        let name = format!("w{w}-{}", i % 30);
                        let k = key("Pod", "default", &name);
                        match store.get(&k) {
                            Some(mut p) if i % 3 == 0 => {
                                p["status"] = json!({"n": i});
                                // Another writer may have changed it meanwhile: conflicts are fine.
                                let _ = store.update(p);
                            }
                            Some(_) => store.delete(&k).map(drop).unwrap(),
                            None => store.create(pod("default", &name)).map(drop).unwrap(),
                        }
                    }
                })
            })
            .collect();

        let mut cache: BTreeMap<ObjectKey, Value> = BTreeMap::new();
        let mut last = 0;
        let mut reconnects = 0;
        let done = loop {
            let (start, mut rx) = store.watch(last);
            match start {
                WatchStart::Reset { objects, resource_version } => {
                    assert!(last == 0, "history of 10000 must cover this test");
                    cache = objects.into_iter().map(|o| (ObjectKey::of(&o).unwrap(), o)).collect();
                    last = resource_version;
                }
                WatchStart::Resume { events } => {
                    for ev in events {
                        assert_eq!(ev.resource_version, last + 1, "resumed events must follow on");
                        apply(&mut cache, ev, &mut last);
                    }
                }
            }
            // Read a few live events, then drop the stream and reconnect from `last`.
            for _ in 0..25 {
                let timeout = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv()).await;
                match timeout {
                    Ok(Some(ev)) => {
                        assert_eq!(ev.resource_version, last + 1, "live events must follow on");
                        apply(&mut cache, ev, &mut last);
                    }
                    Ok(None) => panic!("stream closed"),
                    Err(_) => break,
                }
            }
            reconnects += 1;
            if writers.iter().all(|w| w.is_finished()) && last == store.resource_version() {
                break reconnects;
            }
        };
        for w in writers {
            w.join().unwrap();
        }
        assert!(done > 3, "the watcher reconnected only {done} times");
        let all: Vec<Value> = store.list("Pod", None).0;
        assert_eq!(cache.into_values().collect::<Vec<_>>(), all);
    }

    fn apply(cache: &mut BTreeMap<ObjectKey, Value>, ev: WatchEvent, last: &mut u64) {
        *last = ev.resource_version;
        let k = ObjectKey::of(&ev.object).unwrap();
        match ev.kind {
            WatchEventType::Deleted => assert!(cache.remove(&k).is_some()),
            WatchEventType::Added => assert!(cache.insert(k, (*ev.object).clone()).is_none()),
            WatchEventType::Modified => assert!(cache.insert(k, (*ev.object).clone()).is_some()),
        }
    }

    /// The writer half of `a_sigkill_loses_no_acknowledged_write`: does nothing unless that test
    /// started this process.
    #[test]
    fn sigkill_child_writer() {
        let Some(path) = std::env::var_os("EMU_STORE_SIGKILL_CHILD") else {
            return;
        };
        let store = Store::open(Path::new(&path)).unwrap();
        for i in 0.. {
            let created = store.create(pod("default", &format!("p{i}"))).unwrap();
            println!("acked {}", meta(&created, "resourceVersion").as_str().unwrap());
        }
    }

    #[test]
    fn a_sigkill_loses_no_acknowledged_write() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::sigkill_child_writer", "--nocapture", "--test-threads=1"])
            .env("EMU_STORE_SIGKILL_CHILD", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut acked = 0;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while acked < 300 {
            let line = lines.next().expect("the writer stopped early").unwrap();
            if let Some(rv) = line.strip_prefix("acked ") {
                acked = rv.parse().unwrap();
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in lines.map_while(Result::ok) {
            if let Some(rv) = line.strip_prefix("acked ") {
                acked = rv.parse().unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert!(store.resource_version() >= acked, "rv {} < acknowledged {acked}", store.resource_version());
        assert!(store.list("Pod", None).0.len() as u64 >= acked);
        assert!(store.get(&key("Pod", "default", &format!("p{}", acked - 1))).is_some());
    }

    #[test]
    #[ignore = "timing; run with --ignored --nocapture"]
    fn bench_10k_creates() {
        let dir = tempfile::tempdir_in(std::env::var_os("EMU_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into())).unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let start = Instant::now();
        for i in 0..10_000 {
            store.create(pod("default", &format!("pod-{i}"))).unwrap();
        }
        let took = start.elapsed();
        println!("10k creates: {took:?} ({:.0}/s) in {}", 10_000.0 / took.as_secs_f64(), dir.path().display());
    }
}
