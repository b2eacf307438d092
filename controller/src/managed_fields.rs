//! Field management (`metadata.managedFields`) and server-side apply as kube-apiserver does them
//! (structured-merge-diff v4 under apimachinery's `managedfields`), as pure functions of the live
//! object, the new object or the applied configuration, and the managers' entries.
//!
//! * A field set is a trie of FieldsV1 path elements: `f:<field>`, `k:<JSON of the list-map key>`
//!   for an item of an associative list, `v:<JSON value>` for an item of a set; a path is a
//!   member when it is owned itself (`".": {}` beside children, `{}` as a leaf).
//! * An **Update** (create, PUT, non-apply PATCH, scale) gives its manager the fields it added or
//!   changed (defaulted ones included) and takes them from every other manager; removed fields
//!   leave every set.
//! * An **Apply** merges the configuration into the live object (maps field by field,
//!   associative lists item by item on their keys, sets by value, anything else replaced),
//!   refuses with [`Conflicts`] when another manager owns a field the merge changes (unless
//!   forced, which takes them), makes the applied fields the applier's set, and removes the
//!   fields it applied before and no longer applies that no other manager owns.
//!
//! Lists are atomic unless k8s.io/api 1.32 marks them (`+listType=map` with its
//! `+listMapKey`s, `+listType=set`, or a `patchMergeKey` that the OpenAPI converter turns into a
//! list map); `emu_api::field_tags` holds that table, beside the patch tags. `metadata`'s server-set fields and, for the main
//! resource, `status` are never owned (kube-apiserver's `StripMeta` and reset fields).

use emu_api::field_tags::{ListType, Schema};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A set of field paths, as a trie keyed by FieldsV1 path elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn child(&mut self, element: &str) -> &mut FieldSet {
        self.children.entry(element.to_string()).or_default()
    }

    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.child(first).insert(rest),
        }
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.node(rest),
        }
    }

    /// Whether `path` or anything under it is in the set.
    fn touches(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, v) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(v),
                None => v.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && !other.member, children: BTreeMap::new() };
        for (k, v) in &self.children {
            let rest = match other.children.get(k) {
                Some(o) => v.difference(o),
                None => v.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let both = v.intersection(o);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// The member paths, in the trie's order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(at.clone());
        }
        for (k, v) in &self.children {
            at.push(k.clone());
            v.collect(at, out);
            at.pop();
        }
    }

    /// The FieldsV1 encoding: `{"f:spec":{"f:replicas":{}}}`, `".":{}` for a member with children.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, v) in &self.children {
            m.insert(k.clone(), v.to_fields_v1());
        }
        Value::Object(m)
    }

    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut out = FieldSet::default();
        let Some(m) = v.as_object() else { return out };
        if m.is_empty() {
            out.member = true;
        }
        for (k, child) in m {
            if k == "." {
                out.member = true;
            } else {
                out.children.insert(k.clone(), FieldSet::from_fields_v1(child));
            }
        }
        out
    }
}

/// A path as structured-merge-diff prints it in a conflict: `.spec.replicas`,
/// `.spec.template.spec.containers[name="nginx"].image`, `.metadata.finalizers[="x"]`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The schema: which maps and lists are atomic, which lists are keyed, and by what.

/// How the field `name` of a `schema` value is merged and owned, and the schema of its value
/// (of its items, for a list), from the tags' table.
fn field(schema: Schema, name: &str) -> (ListType, Schema) {
    let tags = emu_api::field_tags::field(schema, name);
    (tags.list, tags.schema)
}

/// The key element of a list-map item: `k:{"containerPort":80,"protocol":"TCP"}`. A missing
/// `protocol` takes its schema default (TCP), as kube-apiserver's converter fills it.
fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k).filter(|v| !v.is_null()) {
            Some(v) => {
                m.insert(k.to_string(), v.clone());
            }
            None if *k == "protocol" => {
                m.insert(k.to_string(), json!("TCP"));
            }
            None => {}
        }
    }
    format!("k:{}", Value::Object(m))
}

fn set_key(item: &Value) -> String {
    format!("v:{item}")
}

/// Fields a Go object always encodes (non-pointer structs, and `containers`, which has no
/// `omitempty`): when one appears it is not added itself, only what is in it, as it was
/// already in the empty object kube-apiserver compares a create with. Maps and lists that
/// appear are (`f:labels: {".": {}, …}`).
fn always_present(element: &str) -> bool {
    matches!(
        element,
        "f:metadata" | "f:spec" | "f:status" | "f:template" | "f:strategy" | "f:updateStrategy" | "f:jobTemplate" | "f:containers"
    )
}

// ---------------------------------------------------------------------------------------------
// Field sets of values, comparison and merge.

/// The fields a value sets (structured-merge-diff's `ToFieldSet`), as owned by its manager:
/// stripped of the server's fields.
pub fn fields_of(v: &Value, subresource: &str) -> FieldSet {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut set = FieldSet::default();
    if let Some(m) = v.as_object() {
        map_fields(m, Schema::of_kind(kind), &mut Vec::new(), &mut set);
    }
    strip(&set, subresource)
}

fn value_fields(v: &Value, relation: ListType, schema: Schema, at: &mut Vec<String>, set: &mut FieldSet) {
    match (relation, v) {
        (ListType::Granular, Value::Object(m)) if !m.is_empty() => map_fields(m, schema, at, set),
        (ListType::Map(keys), Value::Array(items)) => {
            for item in items {
                at.push(item_key(item, keys));
                set.insert(at);
                if let Some(m) = item.as_object() {
                    map_fields(m, schema, at, set);
                }
                at.pop();
            }
        }
        (ListType::Set, Value::Array(items)) => {
            for item in items {
                at.push(set_key(item));
                set.insert(at);
                at.pop();
            }
        }
        _ => set.insert(at),
    }
}

fn map_fields(m: &Map<String, Value>, schema: Schema, at: &mut Vec<String>, set: &mut FieldSet) {
    for (name, v) in m {
        let (relation, child) = field(schema, name);
        at.push(format!("f:{name}"));
        value_fields(v, relation, child, at, set);
        at.pop();
    }
}

/// The fields no manager owns: apiVersion, kind, the server's metadata, and `status` for the
/// main resource (only `status` is owned through the status subresource).
fn strip(set: &FieldSet, subresource: &str) -> FieldSet {
    let mut out = set.clone();
    out.member = false;
    out.children.remove("f:apiVersion");
    out.children.remove("f:kind");
    if subresource == "status" {
        out.children.retain(|k, _| k == "f:status");
    } else {
        out.children.remove("f:status");
    }
    if let Some(meta) = out.children.get_mut("f:metadata") {
        meta.member = false;
        for f in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.children.remove(&format!("f:{f}"));
        }
        if meta.is_empty() {
            out.children.remove("f:metadata");
        }
    }
    out
}

/// What changed from `live` to `new`: the fields added or modified, and those removed
/// (structured-merge-diff's `Compare`), stripped as [`fields_of`] strips.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

pub fn compare(live: Option<&Value>, new: &Value, subresource: &str) -> Comparison {
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut c = Comparison::default();
    let empty = json!({});
    compare_maps(live.unwrap_or(&empty), new, Schema::of_kind(kind), &mut Vec::new(), &mut c);
    Comparison { changed: strip(&c.changed, subresource), removed: strip(&c.removed, subresource) }
}

fn empty_map(v: Option<&Value>) -> bool {
    v.is_none_or(|v| v.as_object().is_some_and(Map::is_empty))
}

fn compare_values(l: Option<&Value>, r: Option<&Value>, relation: ListType, schema: Schema, at: &mut Vec<String>, c: &mut Comparison) {
    let leaf = |c: &mut Comparison, at: &[String]| match (l, r) {
        (None, Some(_)) => c.changed.insert(at),
        (Some(_), None) => c.removed.insert(at),
        (Some(a), Some(b)) if a != b => c.changed.insert(at),
        _ => {}
    };
    let is = |v: Option<&Value>, f: fn(&Value) -> bool| v.is_some_and(f);
    match relation {
        ListType::Granular if (is(l, Value::is_object) || is(r, Value::is_object)) && !(empty_map(l) && empty_map(r)) => {
            let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
            if lm.is_none() || rm.is_none() {
                leaf_container(l, r, at, c);
            }
            let empty = Map::new();
            compare_fields(lm.unwrap_or(&empty), rm.unwrap_or(&empty), schema, at, c);
        }
        ListType::Map(keys) if is(l, Value::is_array) || is(r, Value::is_array) => {
            let (la, ra) = (l.and_then(Value::as_array), r.and_then(Value::as_array));
            if la.is_none() || ra.is_none() {
                leaf_container(l, r, at, c);
            }
            let (lk, rk) = (keyed(la, keys), keyed(ra, keys));
            let mut all: Vec<&String> = lk.keys().chain(rk.keys()).collect();
            all.sort();
            all.dedup();
            for k in all {
                at.push(k.clone());
                match (lk.get(k), rk.get(k)) {
                    (None, Some(_)) => c.changed.insert(at),
                    (Some(_), None) => c.removed.insert(at),
                    _ => {}
                }
                compare_values(lk.get(k).copied(), rk.get(k).copied(), ListType::Granular, schema, at, c);
                at.pop();
            }
        }
        ListType::Set if is(l, Value::is_array) || is(r, Value::is_array) => {
            let (la, ra) = (l.and_then(Value::as_array), r.and_then(Value::as_array));
            if la.is_none() || ra.is_none() {
                leaf_container(l, r, at, c);
            }
            let empty = Vec::new();
            let (la, ra) = (la.unwrap_or(&empty), ra.unwrap_or(&empty));
            for item in ra.iter().filter(|i| !la.contains(i)) {
                at.push(set_key(item));
                c.changed.insert(at);
                at.pop();
            }
            for item in la.iter().filter(|i| !ra.contains(i)) {
                at.push(set_key(item));
                c.removed.insert(at);
                at.pop();
            }
        }
        _ => leaf(c, at),
    }
}

fn keyed<'a>(items: Option<&'a Vec<Value>>, keys: &[&str]) -> BTreeMap<String, &'a Value> {
    items.map(|a| a.iter().map(|i| (item_key(i, keys), i)).collect()).unwrap_or_default()
}

/// A map or list that appears or goes is itself added or removed (but for the structs a typed
/// object always holds).
fn leaf_container(l: Option<&Value>, r: Option<&Value>, at: &[String], c: &mut Comparison) {
    if at.last().is_some_and(|e| always_present(e)) {
        return;
    }
    match (l, r) {
        (None, Some(_)) => c.changed.insert(at),
        (Some(_), None) => c.removed.insert(at),
        _ => c.changed.insert(at),
    }
}

fn compare_maps(l: &Value, r: &Value, schema: Schema, at: &mut Vec<String>, c: &mut Comparison) {
    let empty = Map::new();
    compare_fields(l.as_object().unwrap_or(&empty), r.as_object().unwrap_or(&empty), schema, at, c);
}

/// Every field of either map, compared by its relation in `schema`.
fn compare_fields(lm: &Map<String, Value>, rm: &Map<String, Value>, schema: Schema, at: &mut Vec<String>, c: &mut Comparison) {
    let mut names: Vec<&String> = lm.keys().chain(rm.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (relation, child) = field(schema, name);
        at.push(format!("f:{name}"));
        compare_values(lm.get(name), rm.get(name), relation, child, at, c);
        at.pop();
    }
}

/// The applied configuration merged into the live object: maps by field, list maps by key
/// (new items after the live ones), sets by value, anything else replaced; `null` removes.
pub fn merge(live: &Value, config: &Value) -> Value {
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    merge_value(live, config, ListType::Granular, Schema::of_kind(kind))
}

fn merge_value(live: &Value, config: &Value, relation: ListType, schema: Schema) -> Value {
    match (relation, live, config) {
        (ListType::Granular, Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (name, cv) in c {
                if cv.is_null() {
                    out.remove(name);
                    continue;
                }
                let (relation, child) = field(schema, name);
                let merged = match l.get(name) {
                    Some(lv) => merge_value(lv, cv, relation, child),
                    None => cv.clone(),
                };
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        (ListType::Map(keys), Value::Array(l), Value::Array(c)) => {
            let mut out = l.clone();
            for ci in c {
                let k = item_key(ci, keys);
                match out.iter_mut().find(|li| item_key(li, keys) == k) {
                    Some(li) => *li = merge_value(li, ci, ListType::Granular, schema),
                    None => out.push(ci.clone()),
                }
            }
            Value::Array(out)
        }
        (ListType::Set, Value::Array(l), Value::Array(c)) => {
            let mut out = l.clone();
            out.extend(c.iter().filter(|ci| !l.contains(ci)).cloned());
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// `v` without the fields at the member paths of `set` (a list-map or set item goes whole).
fn remove_fields(v: &mut Value, set: &FieldSet, schema: Schema, relation: ListType) {
    match (relation, v) {
        (ListType::Granular, Value::Object(m)) => {
            for (element, sub) in &set.children {
                let Some(name) = element.strip_prefix("f:") else { continue };
                if sub.member {
                    m.remove(name);
                } else if let Some(child) = m.get_mut(name) {
                    let (relation, schema) = field(schema, name);
                    remove_fields(child, sub, schema, relation);
                }
            }
        }
        (ListType::Map(keys), Value::Array(items)) => {
            items.retain(|i| !set.children.get(&item_key(i, keys)).is_some_and(|s| s.member));
            for item in items.iter_mut() {
                if let Some(sub) = set.children.get(&item_key(item, keys)) {
                    remove_fields(item, sub, schema, ListType::Granular);
                }
            }
        }
        (ListType::Set, Value::Array(items)) => {
            items.retain(|i| !set.children.get(&set_key(i)).is_some_and(|s| s.member));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Managers.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether `self` is the entry of `manager` doing `operation` on `subresource` with
    /// `api_version` (an applier's entry is the same whatever version it applies).
    fn is(&self, manager: &str, operation: Operation, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// How a conflict names the manager (apimachinery's `printManager`): `"kubectl"`, with
    /// `with subresource "scale"` and, for an update, `using apps/v1`.
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// The entries of an object's `metadata.managedFields` (entries that do not read are dropped).
pub fn entries(v: &Value) -> Vec<Entry> {
    let Some(list) = v.pointer("/metadata/managedFields").and_then(Value::as_array) else { return Vec::new() };
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    list.iter()
        .filter_map(|e| {
            let operation = match e.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return None,
            };
            Some(Entry {
                manager: text(e, "manager"),
                operation,
                api_version: text(e, "apiVersion"),
                time: text(e, "time"),
                subresource: text(e, "subresource"),
                fields: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
            })
        })
        .collect()
}

/// `entries` as `metadata.managedFields`, sorted as kube-apiserver sorts them (appliers
/// first, then by time, manager, version and subresource); none leaves no field.
pub fn set_entries(v: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| {
        (a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation.as_str()));
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("time".into(), json!(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.fields.to_fields_v1());
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

/// Who writes: a manager, the version it writes in, the subresource, and the time now.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
}

/// The object without its managed fields, for "did anything else change".
fn without_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// An Update by `writer` of `live` (None: a create) into `new`: `new`'s managedFields become
/// the live object's (or those `new` carries, which a client may set itself) with the changed
/// fields moved to the writer. A write that changes nothing keeps them as they were.
///
/// `requested`: the fields a create's request itself set. Of the fields the server allocates
/// afterwards (a Service's cluster IPs and node ports, see [`allocated`]) the creator owns only
/// these, as kube-apiserver's registry allocates them after its field manager has run.
pub fn update(live: Option<&Value>, new: &mut Value, writer: Writer, requested: Option<&FieldSet>) -> bool {
    let sent = entries(new);
    // A client may set managedFields itself through the main resource.
    let before = if !sent.is_empty() && writer.subresource.is_empty() { sent } else { live.map(entries).unwrap_or_default() };
    let mut c = compare(live, new, writer.subresource);
    if let (None, Some(requested)) = (live, requested) {
        c.changed = c.changed.difference(&allocated(new).difference(requested));
    }
    let mut after: Vec<Entry> = before
        .iter()
        .filter(|e| !e.is(writer.manager, Operation::Update, writer.api_version, writer.subresource))
        .cloned()
        .map(|mut e| {
            e.fields = e.fields.difference(&c.changed).difference(&c.removed);
            e
        })
        .collect();
    let mine = before.iter().find(|e| e.is(writer.manager, Operation::Update, writer.api_version, writer.subresource));
    let fields = mine.map(|e| e.fields.union(&c.changed)).unwrap_or_else(|| c.changed.clone()).difference(&c.removed);
    after.push(Entry {
        manager: writer.manager.to_string(),
        operation: Operation::Update,
        api_version: writer.api_version.to_string(),
        time: writer.now.to_string(),
        subresource: writer.subresource.to_string(),
        fields,
    });
    after.retain(|e| !e.fields.is_empty());
    cap_updaters(&mut after);
    settle(live, new, before, after)
}

/// At most this many Update entries are kept (apimachinery's `DefaultMaxUpdateManagers`).
const MAX_UPDATERS: usize = 10;

/// The manager the oldest Update entries are merged into beyond [`MAX_UPDATERS`].
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// apimachinery's `capManagersManager`: beyond [`MAX_UPDATERS`] Update entries, the oldest are
/// merged, per version, into one `ancient-changes` entry (taking the merged entry's time), so
/// that an object written by many managers keeps a bounded managedFields.
fn cap_updaters(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].operation == Operation::Update).collect();
    if updaters.len() <= MAX_UPDATERS {
        return;
    }
    updaters.sort_by(|&a, &b| (&entries[a].time, &entries[a].manager).cmp(&(&entries[b].time, &entries[b].manager)));
    let mut count = updaters.len();
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut merged = vec![false; entries.len()];
    for &i in &updaters {
        if count <= MAX_UPDATERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match first_of.get(&version) {
            Some(&bucket) => {
                let fields = entries[bucket].fields.union(&entries[i].fields);
                let time = entries[i].time.clone();
                let b = &mut entries[bucket];
                (b.manager, b.subresource, b.fields, b.time) = (ANCIENT_CHANGES.into(), String::new(), fields, time);
                merged[i] = true;
                count -= 1;
            }
            None => {
                first_of.insert(version, i);
            }
        }
    }
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        !merged[i - 1]
    });
}

/// What kube-apiserver's Service registry allocates when a Service is created: its cluster IPs,
/// IP families and policy, node ports and health check node port.
fn allocated(new: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    if new.get("kind").and_then(Value::as_str) != Some("Service") {
        return set;
    }
    let spec = |f: &str| vec!["f:spec".to_string(), format!("f:{f}")];
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"] {
        set.insert(&spec(f));
    }
    let (ListType::Map(keys), _) = field(Schema::ServiceSpec, "ports") else { return set };
    for port in new.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        let mut at = spec("ports");
        at.extend([item_key(port, keys), "f:nodePort".to_string()]);
        set.insert(&at);
    }
    set
}

/// `after` on `new`, unless only timestamps would change (kube-apiserver keeps the old
/// entries then). Whether anything changed.
fn settle(live: Option<&Value>, new: &mut Value, before: Vec<Entry>, after: Vec<Entry>) -> bool {
    let same_object = live.is_some_and(|l| without_managed(l) == without_managed(new));
    let untimed = |es: &[Entry]| {
        let mut es: Vec<Entry> = es
            .iter()
            .cloned()
            .map(|mut e| {
                e.time.clear();
                e
            })
            .collect();
        es.sort_by(|a, b| {
            (&a.manager, a.operation, &a.subresource, &a.api_version).cmp(&(&b.manager, b.operation, &b.subresource, &b.api_version))
        });
        es
    };
    if same_object && untimed(&before) == untimed(&after) {
        set_entries(new, before);
        return false;
    }
    set_entries(new, after);
    true
}

/// Another manager's fields an apply would change: `Apply failed with N conflicts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<(Entry, Vec<String>)>);

impl Conflicts {
    /// Each conflicting field with the manager that owns it (a Status cause each).
    pub fn causes(&self) -> Vec<(String, String)> {
        self.0.iter().flat_map(|(e, paths)| paths.iter().map(|p| (format!("conflict with {}", e.printed()), p.clone()))).collect()
    }

    /// apimachinery's `getConflictMessage`.
    pub fn message(&self) -> String {
        let causes = self.causes();
        if causes.len() == 1 {
            return format!("Apply failed with 1 conflict: {}: {}", causes[0].0, causes[0].1);
        }
        let mut lines = Vec::new();
        for (e, paths) in &self.0 {
            lines.push(format!("conflicts with {}:", e.printed()));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", causes.len(), lines.join("\n"))
    }
}

/// The manager of what an object held before its first apply.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// A server-side apply of `config` by `writer` to `live`: the object to write (managedFields
/// included), or the conflicts with other managers when not `force`d.
pub fn apply(live: &Value, config: &Value, writer: Writer, force: bool) -> Result<Value, Conflicts> {
    let applied = fields_of(config, writer.subresource);
    let mut merged = merge(live, config);
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        // The live entries stay the base; the configuration cannot set them.
        match live.pointer("/metadata/managedFields") {
            Some(m) => meta.insert("managedFields".into(), m.clone()),
            None => meta.remove("managedFields"),
        };
    }
    let mut before = entries(live);
    // An object no manager was recorded for (written through emu's own API, or by its
    // controllers) is first given whole to `before-first-apply`, as kube-apiserver does.
    if before.is_empty() && live.as_object().is_some_and(|m| !m.is_empty()) {
        let c = compare(None, live, writer.subresource);
        before.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: Operation::Update,
            api_version: writer.api_version.to_string(),
            time: writer.now.to_string(),
            subresource: String::new(),
            fields: c.changed,
        });
        before.retain(|e| !e.fields.is_empty());
    }
    let c = compare(Some(live), &merged, writer.subresource);
    let mine = |e: &Entry| e.is(writer.manager, Operation::Apply, writer.api_version, writer.subresource);
    let mut conflicts: Vec<(Entry, FieldSet)> = Vec::new();
    for e in before.iter().filter(|e| !mine(e)) {
        let owned = e.fields.intersection(&c.changed);
        if !owned.is_empty() {
            conflicts.push((e.clone(), owned));
        }
    }
    if !force && !conflicts.is_empty() {
        // kubectl's own server-side apply takes over what its client-side apply last applied
        // (apimachinery's lastAppliedManager): conflicts on fields the live object still has
        // as the last-applied annotation says are forced.
        let allowed = if writer.manager == "kubectl" { from_last_applied(live) } else { FieldSet::default() };
        conflicts =
            conflicts.into_iter().map(|(e, owned)| (e, owned.difference(&allowed))).filter(|(_, owned)| !owned.is_empty()).collect();
        if !conflicts.is_empty() {
            conflicts.sort_by(|a, b| {
                (&a.0.manager, a.0.operation, &a.0.api_version, &a.0.subresource).cmp(&(
                    &b.0.manager,
                    b.0.operation,
                    &b.0.api_version,
                    &b.0.subresource,
                ))
            });
            let printed = conflicts.into_iter().map(|(e, owned)| (e, owned.paths().iter().map(|p| path_string(p)).collect())).collect();
            return Err(Conflicts(printed));
        }
    }
    let last = before.iter().find(|e| mine(e)).map(|e| e.fields.clone()).unwrap_or_default();
    let mut after: Vec<Entry> = before
        .iter()
        .filter(|e| !mine(e))
        .cloned()
        .map(|mut e| {
            e.fields = e.fields.difference(&c.changed);
            e
        })
        .collect();
    // What the applier stops applying goes, unless a manager owns it or something under it.
    // A map the applier owned itself stays while it (or anyone) owns a field in it.
    let owned = after.iter().fold(applied.clone(), |acc, e| acc.union(&e.fields));
    let dropped = last.difference(&applied);
    let mut disowned = FieldSet::default();
    for p in dropped.paths() {
        if !owned.touches(&p) {
            disowned.insert(&p);
        }
    }
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    remove_fields(&mut merged, &disowned, Schema::of_kind(kind), ListType::Granular);
    after.push(Entry {
        manager: writer.manager.to_string(),
        operation: Operation::Apply,
        api_version: writer.api_version.to_string(),
        time: writer.now.to_string(),
        subresource: writer.subresource.to_string(),
        fields: applied,
    });
    after.retain(|e| !e.fields.is_empty());
    settle(Some(live), &mut merged, before, after);
    Ok(merged)
}

/// The fields of the object's `kubectl.kubernetes.io/last-applied-configuration` that the live
/// object still holds with the same value.
fn from_last_applied(live: &Value) -> FieldSet {
    let Some(text) = live.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration").and_then(Value::as_str) else {
        return FieldSet::default();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else { return FieldSet::default() };
    let c = compare(Some(&last), live, "");
    fields_of(&last, "").difference(&c.changed)
}

/// kube-apiserver's manager when a request names none: the User-Agent's program name (what
/// comes before its first `/`), at most 128 bytes.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let program = user_agent.split('/').next().unwrap_or("");
    let mut end = program.len().min(128);
    while !program.is_char_boundary(end) {
        end -= 1;
    }
    program[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-07T05:00:00Z";
    const LATER: &str = "2026-12-07T06:00:00Z";

    fn writer<'a>(manager: &'a str, subresource: &'a str, now: &'a str) -> Writer<'a> {
        Writer { manager, api_version: "apps/v1", subresource, now }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}}}})
    }

    fn fields(v: &Value, i: usize) -> &Value {
        &v["metadata"]["managedFields"][i]["fieldsV1"]
    }

    #[test]
    fn field_sets_key_list_items_and_skip_the_servers_fields() {
        let mut d = deployment(2, "nginx");
        d["metadata"]["uid"] = json!("u");
        d["status"] = json!({"replicas": 2});
        assert_eq!(
            fields_of(&d, "").to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}})
        );
        let set = FieldSet::from_fields_v1(&fields_of(&d, "").to_fields_v1());
        assert_eq!(set, fields_of(&d, ""));
        let paths: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert!(paths.contains(&".spec.template.spec.containers[name=\"nginx\"].image".to_string()), "{paths:?}");
        assert!(paths.contains(&".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]".to_string()));
        let svc = json!({"kind": "Service", "metadata": {"finalizers": ["a"]}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "protocol": "UDP"}]}});
        assert_eq!(
            fields_of(&svc, "").to_fields_v1(),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"UDP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}, "f:selector": {}}})
        );
    }

    #[test]
    fn updates_move_the_fields_they_change_to_their_manager() {
        let mut created = deployment(2, "nginx");
        assert!(update(None, &mut created, writer("kubectl-create", "", NOW), None));
        let e = entries(&created);
        assert_eq!((e.len(), e[0].manager.as_str(), e[0].operation), (1, "kubectl-create", Operation::Update));
        // A new map is owned itself; the structs every object has are not.
        assert_eq!(fields(&created, 0)["f:metadata"], json!({"f:labels": {".": {}, "f:app": {}}}));
        assert!(fields(&created, 0)["f:spec"].get(".").is_none());
        // A Service's allocated cluster IP and node port are the creator's only if it set them.
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let requested = fields_of(&json!({"kind": "Service", "spec": {"type": "NodePort", "ports": [{"port": 80}]}}), "");
        update(None, &mut svc, Writer { manager: "kubectl-create", api_version: "v1", subresource: "", now: NOW }, Some(&requested));
        assert_eq!(
            fields(&svc, 0)["f:spec"],
            json!({"f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}, "f:type": {}})
        );
        // The scale subresource's update takes replicas.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        update(Some(&created), &mut scaled, writer("kubectl", "scale", LATER), None);
        let e = entries(&scaled);
        assert_eq!(e.len(), 2);
        assert!(fields(&scaled, 0)["f:spec"].get("f:replicas").is_none());
        assert_eq!(scaled["metadata"]["managedFields"][1]["subresource"], "scale");
        assert_eq!(fields(&scaled, 1), &json!({"f:spec": {"f:replicas": {}}}));
        // A write that changes nothing keeps the entries and their times.
        let mut same = scaled.clone();
        assert!(!update(Some(&scaled), &mut same, writer("other", "", LATER), None));
        assert_eq!(same, scaled);
        // A removed field leaves every set.
        let mut fewer = scaled.clone();
        fewer["metadata"].as_object_mut().unwrap().remove("labels");
        update(Some(&scaled), &mut fewer, writer("kubectl-edit", "", LATER), None);
        assert!(entries(&fewer).iter().all(|e| e.fields.node(&["f:metadata".into(), "f:labels".into()]).is_none()));
    }

    #[test]
    fn apply_conflicts_with_another_managers_changed_fields_unless_forced() {
        let w = writer("kubectl", "", NOW);
        let live = apply(&json!({}), &deployment(2, "nginx"), w, false).unwrap();
        assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        update(Some(&live), &mut scaled, writer("kubectl", "scale", NOW), None);
        // Applying the same replicas again conflicts with nobody: the value does not change.
        let again = apply(&scaled, &deployment(5, "nginx"), w, false).unwrap();
        assert_eq!(again["spec"]["replicas"], 5);
        let e = apply(&scaled, &deployment(3, "nginx:1.27"), w, false).unwrap_err();
        assert_eq!(
            e.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
        assert_eq!(e.causes(), [("conflict with \"kubectl\" with subresource \"scale\" using apps/v1".into(), ".spec.replicas".into())]);
        let forced = apply(&scaled, &deployment(3, "nginx:1.27"), w, true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let e = entries(&forced);
        assert_eq!(e.len(), 1, "the scale entry lost its only field: {e:?}");
        // Two managers' fields.
        let mut edited = forced.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("httpd");
        edited["spec"]["replicas"] = json!(1);
        update(Some(&forced), &mut edited, Writer { manager: "kubectl-edit", api_version: "apps/v1", subresource: "", now: LATER }, None);
        let e = apply(&edited, &deployment(3, "nginx:1.27"), w, false).unwrap_err();
        assert_eq!(
            e.message(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn apply_removes_what_it_no_longer_applies_unless_another_manager_owns_it() {
        let w = writer("kubectl", "", NOW);
        let mut config = deployment(2, "nginx");
        config["metadata"]["labels"]["tier"] = json!("web");
        config["metadata"]["annotations"] = json!({"note": "x"});
        let live = apply(&json!({}), &config, w, false).unwrap();
        let mut labelled = live.clone();
        labelled["metadata"]["annotations"]["other"] = json!("y");
        update(Some(&live), &mut labelled, writer("kubectl-annotate", "", NOW), None);
        // The annotation `note` and the label `tier` go; the other manager's annotation stays.
        let next = apply(&labelled, &deployment(2, "nginx"), w, false).unwrap();
        assert_eq!(next["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(next["metadata"]["annotations"], json!({"other": "y"}));
        // Containers merge by name: a second container is added, then dropped again.
        let mut two = deployment(2, "nginx");
        two["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "busybox"}));
        let with_two = apply(&next, &two, w, false).unwrap();
        assert_eq!(with_two["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        let back = apply(&with_two, &deployment(2, "nginx"), w, false).unwrap();
        assert_eq!(back["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);
        // Another manager's field that the applier never set is not removed, and its list items
        // merge with the applier's by key.
        let mut live_with_env = back.clone();
        live_with_env["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        update(Some(&back), &mut live_with_env, writer("kubectl-set", "", NOW), None);
        let kept = apply(&live_with_env, &deployment(2, "nginx"), w, false).unwrap();
        // A map owned itself (an update's, moved to the applier) stays while fields in it do.
        let mut owns_labels = kept.clone();
        let mut es = entries(&kept);
        let labels = ["f:metadata".to_string(), "f:labels".to_string()];
        es.iter_mut().filter(|e| e.operation == Operation::Apply).for_each(|e| e.fields.insert(&labels));
        set_entries(&mut owns_labels, es);
        let still = apply(&owns_labels, &deployment(2, "nginx"), w, false).unwrap();
        assert_eq!(still["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(kept["spec"]["template"]["spec"]["containers"][0]["env"], json!([{"name": "A", "value": "1"}]));
    }

    #[test]
    fn kubectl_takes_over_what_its_client_side_apply_last_applied() {
        let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": v, "b": "x"}});
        let mut live = cm("2");
        live["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": cm("2").to_string()});
        let w = Writer { manager: "kubectl-client-side-apply", api_version: "v1", subresource: "", now: NOW };
        update(None, &mut live, w, None);
        let kubectl = Writer { manager: "kubectl", ..w };
        let applied = apply(&live, &cm("1"), kubectl, false).unwrap();
        assert_eq!(applied["data"]["a"], "1");
        // Another applier, or a field changed since the last client-side apply, still conflicts.
        assert!(apply(&live, &cm("1"), Writer { manager: "helm", ..w }, false).is_err());
        let mut changed = live.clone();
        changed["data"]["b"] = json!("y");
        let e = apply(&changed, &json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "z"}}), kubectl, false).unwrap_err();
        assert_eq!(e.message(), "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.b");
    }

    #[test]
    fn an_object_without_managers_is_owned_before_its_first_apply() {
        let w = writer("kubectl", "", NOW);
        let unmanaged = deployment(2, "nginx");
        let e = apply(&unmanaged, &deployment(3, "nginx"), w, false).unwrap_err();
        assert_eq!(e.message(), "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas");
        let same = apply(&unmanaged, &deployment(2, "nginx"), w, false).unwrap();
        let managers: Vec<String> = entries(&same).into_iter().map(|e| e.manager).collect();
        assert_eq!(managers, ["kubectl", "before-first-apply"]);
    }

    #[test]
    fn the_oldest_of_many_updaters_merge_into_ancient_changes() {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        for i in 0..12 {
            let mut next = v.clone();
            next["data"][format!("k{i}")] = json!("v");
            let (manager, now) = (format!("m{i:02}"), format!("2026-12-07T05:{i:02}:00Z"));
            update(Some(&v), &mut next, Writer { manager: &manager, api_version: "v1", subresource: "", now: &now }, None);
            v = next;
        }
        let e = entries(&v);
        assert_eq!(e.len(), 10);
        assert_eq!((e[0].manager.as_str(), e[0].time.as_str()), ("ancient-changes", "2026-12-07T05:02:00Z"));
        assert_eq!(e[0].fields.paths().len(), 3, "{:?}", e[0].fields);
        assert_eq!(e[9].manager, "m11");
    }

    #[test]
    fn managers_from_user_agents() {
        assert_eq!(manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9"), "kubectl");
        assert_eq!(manager_from_user_agent("Go-http-client/1.1"), "Go-http-client");
        assert_eq!(manager_from_user_agent(""), "");
    }
}
