//! Server-side printing: a `meta.k8s.io/v1` Table of objects of one kind (issue 17 facts 3),
//! with the columns and cells `emu get` prints ([`emu_kubectl::column_definitions`],
//! [`emu_kubectl::row_cells`]). kubectl asks for one for every human-readable `get` and prints
//! only what it gets: without it, it shows NAME and AGE alone.

use serde::Serialize;
use serde_json::{Map, Value};

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
/// (every column is there; kubectl hides the priority ones). `now` is unix seconds (for AGE).
pub fn table(kind: &str, objects: &[&Value], meta: ListMeta, include: IncludeObject, api_version: &str, now: i64, pretty: bool) -> String {
    let empty = Value::Object(Map::new());
    let column_definitions = emu_kubectl::column_definitions(kind)
        .into_iter()
        .map(|c| Column { name: c.name, type_: c.type_, format: c.format, description: c.description, priority: c.priority })
        .collect();
    let rows = objects
        .iter()
        .map(|obj| Row {
            cells: emu_kubectl::row_cells(kind, obj, true, now).into_iter().map(Value::from).collect(),
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

    #[test]
    fn include_object_values() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(IncludeObject::parse(Some("Object")).unwrap(), IncludeObject::Object);
        assert_eq!(IncludeObject::parse(Some("None")).unwrap(), IncludeObject::None);
        assert_eq!(IncludeObject::parse(Some("All")).unwrap_err().message, "unrecognized includeObject value: \"All\"");
    }
}
