//! Stored objects decoded into their types once, kept from pass to pass.
//!
//! The controller's pass runs after every write and reads every pod, node and workload; decoding
//! all of them each time would cost more than the pass itself. The store hands out the same
//! `Arc<Value>` until an object is written again, so an object is decoded the first time a pass
//! meets that `Arc` and the type is reused until the store replaces it. A [`Decoded`] holds one
//! kind: a list of all its objects keeps only what it met (an old version goes at once, though
//! the store's history may still hold its JSON), and [`Decoded::sweep`] drops what nobody else holds.

use crate::store::Store;
use emu_api::typed::{self, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A stored object with its type: the type to read, the JSON to change and write back (writes
/// keep the stored JSON as it is apart from what they change).
#[derive(Debug)]
pub struct Obj<T> {
    pub json: Arc<Value>,
    pub typed: Arc<T>,
}

impl<T> Clone for Obj<T> {
    fn clone(&self) -> Self {
        Obj { json: self.json.clone(), typed: self.typed.clone() }
    }
}

impl<T> std::ops::Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.typed
    }
}

impl<T> std::borrow::Borrow<T> for Obj<T> {
    fn borrow(&self) -> &T {
        &self.typed
    }
}

/// An object of any kind, of which only its metadata is read.
#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// The decoded objects of one kind, keyed by the address of the stored `Arc<Value>` (the entry
/// holds that `Arc`, so the address cannot be reused while it is cached).
pub struct Decoded<T> {
    by_object: HashMap<usize, (Arc<Value>, Option<Arc<T>>)>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded { by_object: HashMap::new() }
    }
}

impl<T: DeserializeOwned> Decoded<T> {
    /// The type of `json`, decoded unless this very object was decoded before. None when it does
    /// not decode (admission decoded what users write; this would be an object written by the
    /// controller or an agent in a shape its type rejects), logged once.
    pub fn get(&mut self, json: &Arc<Value>) -> Option<Obj<T>> {
        let entry = self.by_object.entry(Arc::as_ptr(json) as usize).or_insert_with(|| {
            let typed = match typed::decode::<T>(json) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::warn!(error = %e, kind = emu_api::object::kind(json), object = emu_api::object::name(json),
                        "a stored object does not decode; the controllers skip it");
                    None
                }
            };
            (json.clone(), typed)
        });
        entry.1.clone().map(|typed| Obj { json: json.clone(), typed })
    }

    /// The objects of `kind` (in `namespace`, or all) in the store's order, decoded. A list of
    /// all of them (the cache's only kind) forgets every entry it did not meet.
    pub fn list(&mut self, store: &Store, kind: &str, namespace: Option<&str>) -> Vec<Obj<T>> {
        let (list, _) = store.list_shared(kind, namespace);
        if namespace.is_some() {
            return list.iter().filter_map(|v| self.get(v)).collect();
        }
        let mut before = std::mem::replace(&mut self.by_object, HashMap::with_capacity(list.len()));
        list.iter()
            .filter_map(|v| {
                let key = Arc::as_ptr(v) as usize;
                if let Some(entry) = before.remove(&key) {
                    self.by_object.insert(key, entry);
                }
                self.get(v)
            })
            .collect()
    }

    /// Drops the entries of objects the store no longer holds.
    pub fn sweep(&mut self) {
        self.by_object.retain(|_, (json, _)| Arc::strong_count(json) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::typed::Pod;
    use serde_json::json;

    #[test]
    fn an_object_is_decoded_once_until_the_store_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut pods = Decoded::<Pod>::default();
        store.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"}})).unwrap();
        let first = pods.list(&store, "Pod", None);
        let again = pods.list(&store, "Pod", None);
        assert!(Arc::ptr_eq(&first[0].typed, &again[0].typed), "an unchanged object is not decoded again");
        assert_eq!(first[0].metadata.name.as_deref(), Some("a"));

        let mut changed = (*first[0].json).clone();
        changed["spec"] = json!({"nodeName": "node-1"});
        store.update(changed).unwrap();
        let after = pods.list(&store, "Pod", None);
        assert_eq!(after[0].spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("node-1"));

        assert_eq!(pods.by_object.len(), 1, "a full list forgets the old version");
        let live = after[0].typed.clone();
        drop((first, again, after));
        pods.sweep();
        assert!(Arc::ptr_eq(&pods.list(&store, "Pod", None)[0].typed, &live), "a sweep keeps what the store holds");
        // A write the type rejects is skipped, not a failed pass.
        let mut bad = (*store.list_shared("Pod", None).0[0]).clone();
        bad["spec"] = json!({"nodeName": 5});
        store.update(bad).unwrap();
        assert!(pods.list(&store, "Pod", None).is_empty());
    }
}
