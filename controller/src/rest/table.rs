//! Server-side printing: a `meta.k8s.io/v1` Table of objects of one kind (issue 17 facts 3),
//! with the columns and cells `emu get` prints ([`emu_kubectl::column_definitions`],
//! [`emu_kubectl::row_cells`]). kubectl asks for one for every human-readable `get` and prints
//! only what it gets: without it, it shows NAME and AGE alone.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::status::ApiError;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default): what kubectl reads for `-A`, `--show-labels`, `-L`.
    Metadata,
    Object,
    None,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Result<IncludeObject, ApiError> {
        match value {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("Object") => Ok(IncludeObject::Object),
            Some("None") => Ok(IncludeObject::None),
            Some(other) => Err(ApiError::bad_request(format!("unrecognized includeObject value: {other:?}"))),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Table<'a> {
    kind: &'static str,
    api_version: &'a str,
    metadata: ListMeta,
    column_definitions: Vec<Column>,
    rows: Vec<Row<'a>>,
}

/// `metav1.ListMeta` as a Table or list carries it.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(rename = "continue", skip_serializing_if = "String::is_empty")]
    pub continue_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<u64>,
}

#[derive(Serialize)]
struct Column {
    name: &'static str,
    #[serde(rename = "type")]
    type_: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

#[derive(Serialize)]
struct Row<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RowObject<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RowObject<'a> {
    Partial(PartialObjectMetadata<'a>),
    Whole(&'a Value),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartialObjectMetadata<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: &'a Value,
}

/// The Table of `objects` (all of `kind`), as `api_version` (`meta.k8s.io/v1` or `v1beta1`,
/// whichever the client asked for), as JSON. kube-apiserver builds the cells as for `-o wide`
/// (every column is there; kubectl hides the priority ones). The columns are those of these
/// objects: emu's HOST of nodes only where one has a host, as `emu get` prints them. `now` is
/// unix seconds (for AGE).
pub fn table(kind: &str, objects: &[&Value], meta: ListMeta, include: IncludeObject, api_version: &str, now: i64, pretty: bool) -> String {
    let empty = Value::Object(Map::new());
    let column_definitions = columns(kind, objects.iter().copied());
    let count = column_definitions.len();
    let rows = objects
        .iter()
        .map(|obj| Row {
            cells: emu_kubectl::row_cells(kind, obj, true, now).into_iter().take(count).map(Value::from).collect(),
            object: match include {
                IncludeObject::Metadata => Some(RowObject::Partial(PartialObjectMetadata {
                    kind: "PartialObjectMetadata",
                    api_version: "meta.k8s.io/v1",
                    metadata: obj.get("metadata").unwrap_or(&empty),
                })),
                IncludeObject::Object => Some(RowObject::Whole(obj)),
                IncludeObject::None => None,
            },
        })
        .collect();
    let table = Table { kind: "Table", api_version, metadata: meta, column_definitions, rows };
    super::status::to_json(&table, pretty)
}

/// Rows already rendered, kept for the stored objects they were rendered from: a list as a
/// Table (every human-readable `kubectl get`) costs a lookup per object and a copy of its bytes,
/// not the walk of its JSON for each cell and the serializing of its metadata.
///
/// Keyed by the address of the stored `Arc<Value>`, which the store replaces whenever the
/// object is written. The entry holds a `Weak` of it: the address cannot be reused while the entry
/// lives (a `Weak` keeps the allocation), yet an object the store has let go is freed at once,
/// not kept for the cache. Each Table drops the rows of objects gone.
#[derive(Default)]
pub struct RowCache {
    rows: HashMap<usize, CachedRow>,
}

struct CachedRow {
    object: Weak<Value>,
    /// The cells as JSON, the AGE column's excepted: it is the only cell that changes with time
    /// for most kinds, and is rendered for each Table. None when another cell does too (a pod's
    /// RESTARTS with the time of its last restart, an event's LAST SEEN): rendered each time.
    cells: Option<Vec<String>>,
    /// The `metadata` of the object, as JSON (`includeObject=Metadata`).
    metadata: String,
}

/// Seconds to a time far enough ahead that every time-dependent cell differs from now's: how a
/// row's cells that depend on the time are found (see [`CachedRow::cells`]).
const FAR_AHEAD: i64 = 10 * 365 * 24 * 3600;

impl RowCache {
    /// The cached row of `obj`, made now if it has none.
    fn row(&mut self, kind: &str, obj: &Arc<Value>, age_column: Option<usize>, now: i64) -> &CachedRow {
        let entry = self.rows.entry(Arc::as_ptr(obj) as usize).or_insert_with(|| {
            let at_now = emu_kubectl::row_cells(kind, obj, true, now);
            let ahead = emu_kubectl::row_cells(kind, obj, true, now + FAR_AHEAD);
            let age_only = at_now.len() == ahead.len()
                && at_now.iter().zip(&ahead).enumerate().all(|(i, (a, b))| {
                    if Some(i) == age_column {
                        *a == emu_kubectl::Cell::Text(emu_kubectl::age(obj, now))
                            && *b == emu_kubectl::Cell::Text(emu_kubectl::age(obj, now + FAR_AHEAD))
                    } else {
                        a == b
                    }
                });
            let cells = age_only.then(|| at_now.into_iter().map(cell_json).collect());
            let empty = Value::Object(Map::new());
            let metadata = json(obj.get("metadata").unwrap_or(&empty));
            CachedRow { object: Arc::downgrade(obj), cells, metadata }
        });
        entry
    }

    /// Forgets the rows of objects nobody holds any more (replaced or deleted, and gone from
    /// the store's history).
    fn sweep(&mut self) {
        self.rows.retain(|_, row| row.object.strong_count() > 0);
    }
}

fn cell_json(cell: emu_kubectl::Cell) -> String {
    json(&Value::from(cell))
}

/// [`table`], from rows cached in `cache` where it can: byte for byte the same Table, written
/// without `pretty` (which, like `includeObject=Object`, goes the uncached way).
#[allow(clippy::too_many_arguments)]
pub fn table_cached(
    cache: &mut RowCache,
    kind: &str,
    objects: &[&Arc<Value>],
    meta: ListMeta,
    include: IncludeObject,
    api_version: &str,
    now: i64,
    pretty: bool,
) -> String {
    if pretty || include == IncludeObject::Object {
        let objects: Vec<&Value> = objects.iter().map(|o| o.as_ref()).collect();
        return table(kind, &objects, meta, include, api_version, now, pretty);
    }
    let columns = columns(kind, objects.iter().map(|o| o.as_ref()));
    let age_column = columns.iter().position(|c| c.name == "Age");
    let mut out = String::with_capacity(256 + objects.len() * 1024);
    out.push_str(r#"{"kind":"Table","apiVersion":"#);
    out.push_str(&json(&api_version));
    out.push_str(r#","metadata":"#);
    out.push_str(&json(&meta));
    out.push_str(r#","columnDefinitions":"#);
    out.push_str(&json(&columns));
    out.push_str(r#","rows":["#);
    for (n, obj) in objects.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let row = cache.row(kind, obj, age_column, now);
        out.push_str(r#"{"cells":["#);
        match &row.cells {
            Some(cells) => {
                for (i, cell) in cells.iter().take(columns.len()).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if Some(i) == age_column {
                        out.push_str(&json(&emu_kubectl::age(obj, now)));
                    } else {
                        out.push_str(cell);
                    }
                }
            }
            None => {
                let cells: Vec<String> =
                    emu_kubectl::row_cells(kind, obj, true, now).into_iter().take(columns.len()).map(cell_json).collect();
                out.push_str(&cells.join(","));
            }
        }
        out.push(']');
        if include == IncludeObject::Metadata {
            out.push_str(r#","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#);
            out.push_str(&row.metadata);
            out.push('}');
        }
        out.push('}');
    }
    out.push_str("]}\n");
    cache.sweep();
    out
}

/// The Table's columns for `objects` ([`emu_kubectl::column_definitions`]). A row takes the
/// first as many cells of [`emu_kubectl::row_cells`]: the rest are of a column these objects
/// leave out.
fn columns<'a>(kind: &str, objects: impl IntoIterator<Item = &'a Value>) -> Vec<Column> {
    emu_kubectl::column_definitions(kind, objects)
        .into_iter()
        .map(|c| Column { name: c.name, type_: c.type_, format: c.format, description: c.description, priority: c.priority })
        .collect()
}

/// `value` as compact JSON.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serializing JSON values cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_714_557_613; // 2024-05-01T10:00:13Z

    fn pod() -> Value {
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z", "labels": {"run": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "nginx"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.3"}],
                       "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0, "state": {"running": {}}}]}})
    }

    #[test]
    fn a_pod_table() {
        let p = pod();
        let meta = ListMeta { resource_version: "12".into(), ..Default::default() };
        let t: Value = serde_json::from_str(&table("Pod", &[&p], meta, IncludeObject::Metadata, "meta.k8s.io/v1", NOW, false)).unwrap();
        assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
        assert_eq!(t["metadata"], json!({"resourceVersion": "12"}));
        let columns = t["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]);
        assert_eq!(columns[0]["format"], "name");
        assert_eq!(columns[1]["format"], "");
        assert_eq!((columns[4]["priority"].as_i64(), columns[5]["priority"].as_i64()), (Some(0), Some(1)));
        assert_eq!(columns[0].as_object().unwrap().len(), 5, "every key of a column definition is always there");
        assert_eq!(t["rows"][0]["cells"], json!(["web", "1/1", "Running", "0", "13s", "10.244.0.3", "node-1", "<none>", "<none>"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"].clone()})
        );
        let t: Value =
            serde_json::from_str(&table("Pod", &[&p], ListMeta::default(), IncludeObject::Object, "meta.k8s.io/v1beta1", NOW, false))
                .unwrap();
        assert_eq!((t["apiVersion"].as_str(), &t["rows"][0]["object"]), (Some("meta.k8s.io/v1beta1"), &p));
        assert_eq!(t["metadata"], json!({}));
        let t: Value =
            serde_json::from_str(&table("Pod", &[], ListMeta::default(), IncludeObject::None, "meta.k8s.io/v1", NOW, false)).unwrap();
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn counts_are_numbers() {
        let rs = json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T10:00:00Z"}, "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}});
        let t: Value =
            serde_json::from_str(&table("ReplicaSet", &[&rs], ListMeta::default(), IncludeObject::None, "meta.k8s.io/v1", NOW, false))
                .unwrap();
        assert_eq!(t["rows"][0], json!({"cells": ["r", 2, 2, 1, "13s", "", "", "<none>"]}));
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
    }

    #[test]
    fn rbac_tables_are_kube_apiservers() {
        let b = json!({"metadata": {"name": "alice-view", "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
        let t: Value =
            serde_json::from_str(&table("RoleBinding", &[&b], ListMeta::default(), IncludeObject::None, "meta.k8s.io/v1", NOW, false))
                .unwrap();
        let columns: Vec<(&str, i64)> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
            .collect();
        assert_eq!(columns, [("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1)]);
        assert_eq!(t["rows"][0]["cells"], json!(["alice-view", "ClusterRole/view", "13s", "alice", "", "default/default"]));
        let role = json!({"metadata": {"name": "view", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        let t: Value =
            serde_json::from_str(&table("ClusterRole", &[&role], ListMeta::default(), IncludeObject::None, "meta.k8s.io/v1", NOW, false))
                .unwrap();
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["view", "2024-05-01T10:00:00Z"]));
    }

    /// The cached Table of `objects` at `now`, checked byte for byte against the uncached one.
    fn cached_as_uncached(cache: &mut RowCache, kind: &str, objects: &[&Arc<Value>], include: IncludeObject, now: i64) -> String {
        let meta = || ListMeta { resource_version: "7".into(), continue_: "abc".into(), remaining_item_count: Some(3) };
        let cached = table_cached(cache, kind, objects, meta(), include, "meta.k8s.io/v1", now, false);
        let values: Vec<&Value> = objects.iter().map(|o| o.as_ref()).collect();
        assert_eq!(cached, table(kind, &values, meta(), include, "meta.k8s.io/v1", now, false), "{kind} at {now}");
        cached
    }

    #[test]
    fn cached_rows_are_the_same_table() {
        let mut cache = RowCache::default();
        let running = Arc::new(pod());
        // A restarted container's RESTARTS says how long ago: that row is rendered every time.
        let mut restarted = pod();
        restarted["metadata"]["name"] = json!("restarted");
        restarted["status"]["containerStatuses"][0]["restartCount"] = json!(2);
        restarted["status"]["containerStatuses"][0]["lastState"] =
            json!({"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:00:05Z"}});
        let restarted = Arc::new(restarted);
        let pods = [&running, &restarted];
        for include in [IncludeObject::Metadata, IncludeObject::None] {
            for now in [NOW, NOW + 1, NOW + 200, NOW + 5000] {
                cached_as_uncached(&mut cache, "Pod", &pods, include, now);
            }
        }
        let table: Value = serde_json::from_str(&cached_as_uncached(&mut cache, "Pod", &pods, IncludeObject::Metadata, NOW + 60)).unwrap();
        assert_eq!(table["rows"][0]["cells"][4], "73s", "AGE is of the time asked");
        assert_eq!(table["rows"][1]["cells"][3], "2 (68s ago)");
        assert!(cache.rows[&(Arc::as_ptr(&running) as usize)].cells.is_some(), "only AGE changes with time");
        assert!(cache.rows[&(Arc::as_ptr(&restarted) as usize)].cells.is_none(), "RESTARTS changes with time too");

        // Other kinds, an event's several times among them; an object without a creation time.
        let cm = Arc::new(
            json!({"metadata": {"name": "cm", "namespace": "default", "creationTimestamp": "2024-05-01T09:00:00Z"}, "data": {"a": "1"}}),
        );
        let bare = Arc::new(json!({"metadata": {"name": "bare", "namespace": "default"}}));
        cached_as_uncached(&mut cache, "ConfigMap", &[&cm, &bare], IncludeObject::Metadata, NOW);
        let event = Arc::new(json!({"metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "type": "Normal", "reason": "Pulled", "message": "m", "count": 3, "involvedObject": {"kind": "Pod", "name": "web"},
            "firstTimestamp": "2024-05-01T09:00:00Z", "lastTimestamp": "2024-05-01T09:59:00Z"}));
        for now in [NOW, NOW + 90] {
            cached_as_uncached(&mut cache, "Event", &[&event], IncludeObject::Metadata, now);
        }

        // A written object is a new `Arc`: its row is made again, and the old one goes once
        // nothing else holds the old object.
        let mut relabelled = (*running).clone();
        relabelled["metadata"]["labels"]["run"] = json!("other");
        let relabelled = Arc::new(relabelled);
        let old = Arc::as_ptr(&running) as usize;
        drop(running);
        let table: Value =
            serde_json::from_str(&cached_as_uncached(&mut cache, "Pod", &[&relabelled], IncludeObject::Metadata, NOW)).unwrap();
        assert_eq!(table["rows"][0]["object"]["metadata"]["labels"]["run"], "other");
        assert!(!cache.rows.contains_key(&old), "the replaced object's row is forgotten");
    }

    /// emu's HOST column of nodes (issue 18), in the Table kubectl prints: only when a node of the
    /// Table has a host (a single object's GET too), a wide column, cached as uncached.
    #[test]
    fn nodes_have_a_host_column_over_several_machines() {
        let node = |name: &str, host: Option<&str>| {
            let mut n = json!({"metadata": {"name": name, "creationTimestamp": "2024-05-01T10:00:00Z", "labels": {}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            if let Some(h) = host {
                n["metadata"]["labels"]["emu.dev/host"] = json!(h);
            }
            Arc::new(n)
        };
        let (hosted, solo) = (node("node-3", Some("host-2")), node("solo", None));
        let mut cache = RowCache::default();
        let t: Value = serde_json::from_str(&cached_as_uncached(&mut cache, "Node", &[&hosted, &solo], IncludeObject::None, NOW)).unwrap();
        let last = t["columnDefinitions"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["name"].as_str(), last["priority"].as_i64()), (Some("Host"), Some(1)));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 11);
        assert_eq!((t["rows"][0]["cells"][10].as_str(), t["rows"][1]["cells"][10].as_str()), (Some("host-2"), Some("<none>")));
        // A single machine's nodes, and a single node without a host: kube-apiserver's columns.
        for objects in [&[&solo][..], &[&solo, &solo][..]] {
            let t: Value = serde_json::from_str(&cached_as_uncached(&mut cache, "Node", objects, IncludeObject::None, NOW)).unwrap();
            assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 10);
            assert!(t["rows"].as_array().unwrap().iter().all(|r| r["cells"].as_array().unwrap().len() == 10), "{t}");
        }
        let t: Value =
            serde_json::from_str(&table("Node", &[&hosted], ListMeta::default(), IncludeObject::None, "meta.k8s.io/v1", NOW, false))
                .unwrap();
        assert_eq!(t["rows"][0]["cells"][10], "host-2");
    }

    #[test]
    fn include_object_values() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(IncludeObject::parse(Some("Object")).unwrap(), IncludeObject::Object);
        assert_eq!(IncludeObject::parse(Some("None")).unwrap(), IncludeObject::None);
        assert_eq!(IncludeObject::parse(Some("All")).unwrap_err().message, "unrecognized includeObject value: \"All\"");
    }
}
