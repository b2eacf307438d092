//! The Kubernetes REST API, served from the controller's store over the HTTPS endpoint
//! ([`crate::https`]) so that the real kubectl and client libraries can read the cluster.
//!
//! A request is parsed once into its attributes ([`request::RequestInfo`]: verb, group,
//! version, namespace, resource, subresource, name), authorized on them ([`authz::authorize`]),
//! then dispatched on its verb ([`serve`]). Served today: discovery ([`discovery`]), OpenAPI v3
//! and v2 ([`openapi`], [`openapi_v2`]), GET of an object (and of its `status` and `scale`), LIST
//! with label and field selectors, `limit` and `continue`, as JSON or as a Table ([`table`]), the
//! writes ([`write`]), watch ([`watch`]), and the pod streams the node agents serve ([`stream`]:
//! `pods/log`, `pods/exec` over WebSocket, [`channel`], `pods/portforward` as SPDY inside
//! WebSocket, [`spdy`]). `pods/attach` gets kube-apiserver's 405.
//!
//! An answer ([`Served`]) is whole ([`Reply`]), a stream written as it comes (watch, logs), one
//! to wait for (what an agent must say first), or a switch to WebSocket ([`Upgrade`]).

pub mod authz;
pub mod channel;
pub mod discovery;
pub mod list;
pub mod node_authz;
pub mod openapi;
pub mod openapi_v2;
pub mod proxy;
pub mod request;
pub mod review;
pub mod spdy;
pub mod status;
pub mod stream;
pub mod table;
pub mod token;
pub mod warning;
pub mod watch;
pub mod write;

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_api::kinds::ResourceKind;
use emu_api::object;
use emu_api::selector::Selector;
use request::{query_param, RequestInfo};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};
use status::ApiError;
use std::sync::Arc;
use table::{IncludeObject, ListMeta};

/// An answer: HTTP status, Content-Type and body, and the API server's warnings about the
/// request (sent as `Warning` headers, [`warning::headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub warnings: Vec<String>,
}

impl Reply {
    pub fn json(body: String) -> Reply {
        Reply::new(200, "application/json", body)
    }

    /// An answer without warnings.
    pub fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply { status, content_type, body, warnings: Vec::new() }
    }
}

/// A streamed answer (a watch, logs): its head at once, then its body as `body` yields it;
/// the stream ends when the sender is dropped, and the sender sees the client leave when
/// its sends fail (or `Sender::closed` completes).
#[derive(Debug)]
pub struct Stream {
    pub status: u16,
    pub content_type: &'static str,
    pub body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
}

/// An answer that needs a node's agent first (logs): what it will be once the agent answered.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Served, ApiError>> + Send>>;

/// The connection, once switched to another protocol (WebSocket), as a byte stream.
pub type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// What serves a switched connection until it is done.
pub type Session = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A switch to WebSocket (exec): the HTTP endpoint answers `101 Switching Protocols` with the
/// first of `protocols` the client offered, then `run` serves the connection with it.
pub struct Upgrade {
    pub protocols: &'static [&'static str],
    pub run: Box<dyn FnOnce(Upgraded, &'static str) -> Session + Send>,
}

/// What [`serve`] answers: a whole body, a stream, an answer to wait for, or a switch of
/// protocols.
pub enum Served {
    Reply(Reply),
    Stream(Stream),
    Later(Pending),
    Upgrade(Upgrade),
    /// What a pod answered through the proxy subresource, its headers passed on.
    Proxied(Proxied),
}

/// A proxied answer: the target's status, headers (minus hop-by-hop ones) and body.
#[derive(Debug)]
pub struct Proxied {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Served::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Served::Stream(s) => f.debug_tuple("Stream").field(s).finish(),
            Served::Later(_) => f.write_str("Later(..)"),
            Served::Upgrade(u) => f.debug_struct("Upgrade").field("protocols", &u.protocols).finish_non_exhaustive(),
            Served::Proxied(p) => f.debug_tuple("Proxied").field(&p.status).finish(),
        }
    }
}

impl From<Reply> for Served {
    fn from(reply: Reply) -> Served {
        Served::Reply(reply)
    }
}

/// How the client asked to see objects (its Accept header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The objects (or a list of them) as JSON.
    Json,
    /// A `meta.k8s.io` Table, in this API version.
    Table(&'static str),
}

/// The first media type of `accept` this server writes (kube-apiserver goes by the client's
/// order); `None` when there is none (406).
pub fn negotiate(accept: &str) -> Option<Output> {
    if accept.trim().is_empty() {
        return Some(Output::Json);
    }
    accept.split(',').find_map(|media| {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if !matches!(base, "application/json" | "application/*" | "*/*") {
            return None;
        }
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => Some(Output::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => Some(Output::Table("meta.k8s.io/v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => Some(Output::Table("meta.k8s.io/v1beta1")),
            _ => None,
        }
    })
}

/// What a client sent with a request: its body (read whole) and the body's media type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent<'a> {
    pub body: &'a [u8],
    /// The `Content-Type` header as sent ("" when none).
    pub content_type: &'a str,
}

/// A resource request, once authorized: what the store holds, as `output` asks, or
/// kube-apiserver's error. `now` is unix seconds (a Table's AGE). `sent` is what a write sends.
pub fn serve(
    shared: &Shared,
    info: &RequestInfo,
    query: &str,
    output: Output,
    pretty: bool,
    now: i64,
    sent: Sent,
) -> Result<Served, ApiError> {
    let rk = discovery::resource(&info.group, &info.version, &info.resource).ok_or_else(ApiError::no_such_path)?;
    // `pods/NAME/proxy/PATH…`, `services/NAME/proxy/PATH…`: the path goes on past the subresource.
    if info.subresource == "proxy" && info.group.is_empty() && matches!(info.resource.as_str(), "pods" | "services") {
        if info.namespace.is_empty() {
            return Err(ApiError::no_such_path());
        }
        let call = Call { shared, rk, info, output, query: request::query_pairs(query), pretty, now };
        return proxy::serve(&call, query, sent);
    }
    // `namespaces/<name>` names the namespace itself; otherwise a cluster-scoped kind has no
    // namespace in its path, and a namespaced object is only found in one.
    let object_path = info.parts.len() >= 2;
    let own_namespace = rk.kind == "Namespace";
    if (!rk.namespaced && !own_namespace && !info.namespace.is_empty())
        || (rk.namespaced && object_path && info.namespace.is_empty())
        || info.parts.len() > 3
        || (!info.subresource.is_empty() && !discovery::has_subresource(rk, &info.subresource))
    {
        return Err(ApiError::no_such_path());
    }
    let call = Call { shared, rk, info, output, query: request::query_pairs(query), pretty, now };
    match info.verb.as_str() {
        "get" if info.subresource == "log" => stream::logs(&call),
        "get" | "create" if matches!(info.subresource.as_str(), "exec" | "attach") => stream::exec(&call),
        "get" | "create" if info.subresource == "portforward" => stream::port_forward(&call),
        "create" if info.subresource == "token" => token::create(&call, sent).map(Into::into),
        "get" => get(&call).map(Into::into),
        "list" => list(&call).map(Into::into),
        "watch" => watch::watch(&call).map(Served::Stream),
        "create" | "update" | "patch" | "delete" | "deletecollection" => write::serve(&call, sent).map(Into::into),
        verb => Err(ApiError::method_not_supported(&info.group, &info.resource, verb)),
    }
}

/// A resource request being answered: the request, what it is about and how to answer.
struct Call<'a> {
    shared: &'a Shared,
    rk: &'static ResourceKind,
    info: &'a RequestInfo,
    output: Output,
    query: Vec<(String, String)>,
    pretty: bool,
    /// Unix seconds, for a Table's AGE.
    now: i64,
}

fn key(rk: &ResourceKind, info: &RequestInfo) -> ObjectKey {
    let namespace = if rk.namespaced { info.namespace.clone() } else { String::new() };
    ObjectKey { kind: rk.kind.to_string(), namespace, name: info.name.clone() }
}

fn get(call: &Call) -> Result<Reply, ApiError> {
    let Call { shared, rk, info, output, ref query, pretty, now } = *call;
    let obj = shared.store.get_shared(&key(rk, info)).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, &info.name))?;
    if info.subresource == "scale" {
        return Ok(Reply::json(status::to_json(&scale(&obj), pretty)));
    }
    if !matches!(info.subresource.as_str(), "" | "status") {
        return Err(ApiError::method_not_supported(&info.group, &format!("{}/{}", info.resource, info.subresource), "get"));
    }
    match output {
        Output::Json => Ok(Reply::json(status::to_json(&*obj, pretty))),
        Output::Table(api_version) => {
            let include = IncludeObject::parse(query_param(query, "includeObject"))?;
            let rv = object::str_at(&obj, &["metadata", "resourceVersion"]).unwrap_or("").to_string();
            let meta = ListMeta { resource_version: rv, ..Default::default() };
            Ok(table_reply(api_version, table::table(rk.kind, &[&obj], meta, include, api_version, now, pretty)))
        }
    }
}

/// A Table, with the media type of the version the client asked for.
fn table_reply(api_version: &str, body: String) -> Reply {
    let content_type = if api_version.ends_with("v1beta1") {
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    } else {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    };
    Reply::new(200, content_type, body)
}

/// An `autoscaling/v1` Scale of a Deployment or ReplicaSet: its replicas wanted and seen, and
/// its selector as text (facts 9.3).
fn scale(obj: &Value) -> Value {
    let meta = |f: &str| object::at(obj, &["metadata", f]).cloned().unwrap_or(Value::Null);
    let selector = object::at(obj, &["spec", "selector"])
        .and_then(|s| Selector::from_label_selector(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta("name"), "namespace": meta("namespace"), "uid": meta("uid"),
                     "resourceVersion": meta("resourceVersion"), "creationTimestamp": meta("creationTimestamp")},
        "spec": {"replicas": object::at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)},
        "status": {"replicas": object::at(obj, &["status", "replicas"]).and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

fn list(call: &Call) -> Result<Reply, ApiError> {
    let Call { shared, rk, info, output, ref query, pretty, now } = *call;
    let labels = query_param(query, "labelSelector").unwrap_or("");
    let selector = Selector::parse(labels).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = list::parse_field_selector(rk.kind, query_param(query, "fieldSelector").unwrap_or(""))?;
    let limit = list::parse_limit(query_param(query, "limit"))?;
    let start = query_param(query, "continue").filter(|c| !c.is_empty()).map(list::Continue::decode).transpose()?;
    let include = IncludeObject::parse(query_param(query, "includeObject"))?;
    let wanted = list::list_options(
        query_param(query, "resourceVersion"),
        query_param(query, "resourceVersionMatch"),
        start.is_some(),
        query_param(query, "sendInitialEvents").is_some(),
    )?;

    let namespace = (rk.namespaced && !info.namespace.is_empty()).then_some(info.namespace.as_str());
    let (objects, rv) = shared.store.list_shared(rk.kind, namespace);
    list::check_resource_version(wanted, rv)?;
    // Later pages are read from the store as it is now, after where the last page ended, and
    // report the first page's resource version (a watch from there misses nothing).
    let rv = start.as_ref().map_or(rv, |c| c.rv);
    let mut selected: Vec<&Arc<Value>> = objects
        .iter()
        .filter(|o| start.as_ref().is_none_or(|c| c.admits(object::namespace(o), object::name(o))))
        // An empty selector selects all: no labels to gather for it.
        .filter(|o| (selector.is_empty() || selector.matches(&object::labels(o))) && list::fields_match(&fields, o))
        .collect();
    let mut meta = ListMeta { resource_version: rv.to_string(), ..Default::default() };
    if let Some(limit) = limit.filter(|l| selected.len() > *l) {
        let remaining = selected.len() - limit;
        selected.truncate(limit);
        let last = selected[limit - 1];
        meta.continue_ = list::Continue::after(rv, object::namespace(last), object::name(last)).encode();
        // kube-apiserver counts what is left only when nothing is filtered out.
        if selector.is_empty() && fields.is_empty() {
            meta.remaining_item_count = Some(remaining as u64);
        }
    }
    match output {
        Output::Json => {
            let items: Vec<WithoutTypeMeta> = selected.iter().map(|o| WithoutTypeMeta(o)).collect();
            let list = ObjectList { kind: format!("{}List", rk.kind), api_version: rk.api_version(), metadata: meta, items };
            Ok(Reply::json(status::to_json(&list, pretty)))
        }
        Output::Table(api_version) => {
            let mut rows = shared.table_rows.lock().unwrap_or_else(|e| e.into_inner());
            Ok(table_reply(api_version, table::table_cached(&mut rows, rk.kind, &selected, meta, include, api_version, now, pretty)))
        }
    }
}

/// A typed list as kube-apiserver writes it (`PodList`, …).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectList<'a> {
    kind: String,
    api_version: String,
    metadata: ListMeta,
    items: Vec<WithoutTypeMeta<'a>>,
}

/// An item of a typed list: kube-apiserver's items carry no `kind` and `apiVersion` (clients set
/// them from the list's), so they are left out while the stored object is written.
struct WithoutTypeMeta<'a>(&'a Value);

impl Serialize for WithoutTypeMeta<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(fields) = self.0 else { return self.0.serialize(serializer) };
        let kept = fields.iter().filter(|(k, _)| !matches!(k.as_str(), "kind" | "apiVersion"));
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in kept {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Store;
    use emu_logic::cluster::ClusterConfig;

    pub(super) fn shared(dir: &std::path::Path) -> Shared {
        let store = Store::open(&dir.join("store.redb")).unwrap();
        let config: ClusterConfig = serde_json::from_value(
            json!({"name": "t", "nodes": [], "fabricCidr": "172.18.0.0/16", "podCidr": "10.244.0.0/16", "nodePrefix": 24, "serviceCidr": "10.96.0.0/12"}),
        )
        .unwrap();
        Shared::new(store, config)
    }

    fn pod(ns: &str, name: &str, run: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"run": run}},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}})
    }

    fn with_pods() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let s = shared(dir.path());
        for (ns, name, run) in [("default", "a", "web"), ("default", "b", "web"), ("default", "c", "db"), ("kube-system", "d", "dns")] {
            s.store.create(pod(ns, name, run)).unwrap();
        }
        s.store
            .create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "web"}}}, "status": {"replicas": 2}}))
            .unwrap();
        (dir, s)
    }

    fn call(s: &Shared, target: &str, output: Output) -> Result<Value, ApiError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let info = RequestInfo::parse("GET", path, query).unwrap();
        let Served::Reply(reply) = serve(s, &info, query, output, false, 0, Sent::default())? else {
            panic!("{target}: not a whole answer")
        };
        assert_eq!(reply.status, 200);
        Ok(serde_json::from_str(&reply.body).unwrap())
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn get_objects_and_their_errors() {
        let (_dir, s) = with_pods();
        let a = call(&s, "/api/v1/namespaces/default/pods/a", Output::Json).unwrap();
        assert_eq!((a["kind"].as_str(), a["metadata"]["name"].as_str()), (Some("Pod"), Some("a")));
        assert_eq!(call(&s, "/api/v1/namespaces/default/pods/a/status", Output::Json).unwrap(), a);
        let e = call(&s, "/api/v1/namespaces/default/pods/nope", Output::Json).unwrap_err();
        assert_eq!((e.code, e.reason, e.message.as_str()), (404, "NotFound", "pods \"nope\" not found"));
        let e = call(&s, "/apis/apps/v1/namespaces/default/deployments/nope", Output::Json).unwrap_err();
        assert_eq!(e.message, "deployments.apps \"nope\" not found");
        for target in [
            "/api/v1/namespaces/default/widgets",
            "/api/v1/namespaces/default/nodes/x",
            "/api/v1/pods/a",
            "/apis/apps/v1/namespaces/default/deployments/web/rollback",
            "/api/v1/namespaces/default/pods/a/status/x",
            "/apis/apps/v2/deployments",
        ] {
            let e = call(&s, target, Output::Json).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (404, "the server could not find the requested resource"), "{target}");
        }
        let scale = call(&s, "/apis/apps/v1/namespaces/default/deployments/web/scale", Output::Json).unwrap();
        assert_eq!((scale["kind"].as_str(), scale["apiVersion"].as_str()), (Some("Scale"), Some("autoscaling/v1")));
        assert_eq!(scale["spec"], json!({"replicas": 2}));
        assert_eq!(scale["status"], json!({"replicas": 2, "selector": "run=web"}));
        // A verb a subresource does not serve.
        let info = RequestInfo::parse("PATCH", "/api/v1/namespaces/default/pods/a/log", "").unwrap();
        let e = serve(&s, &info, "", Output::Json, false, 0, Sent::default()).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (405, "patch is not supported on resources of kind \"pods/log\""));
    }

    #[test]
    fn lists_with_selectors() {
        let (_dir, s) = with_pods();
        let all = call(&s, "/api/v1/pods", Output::Json).unwrap();
        assert_eq!((all["kind"].as_str(), all["apiVersion"].as_str()), (Some("PodList"), Some("v1")));
        assert_eq!(names(&all), ["a", "b", "c", "d"]);
        assert_eq!(all["metadata"]["resourceVersion"], s.store.resource_version().to_string());
        assert!(all["items"][0].get("kind").is_none() && all["items"][0].get("apiVersion").is_none());
        assert_eq!(names(&call(&s, "/api/v1/namespaces/default/pods", Output::Json).unwrap()), ["a", "b", "c"]);
        assert_eq!(names(&call(&s, "/api/v1/namespaces/default/pods?labelSelector=run%3Dweb", Output::Json).unwrap()), ["a", "b"]);
        assert_eq!(names(&call(&s, "/api/v1/pods?labelSelector=run+in+(db,dns)", Output::Json).unwrap()), ["c", "d"]);
        assert_eq!(names(&call(&s, "/api/v1/pods?fieldSelector=metadata.namespace!%3Ddefault", Output::Json).unwrap()), ["d"]);
        assert_eq!(names(&call(&s, "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Db", Output::Json).unwrap()), ["b"]);
        let empty = call(&s, "/api/v1/namespaces/nope/pods", Output::Json).unwrap();
        assert_eq!(empty["items"], json!([]));
        assert_eq!(call(&s, "/api/v1/pods?labelSelector=%3D%3D", Output::Json).unwrap_err().code, 400);
        assert_eq!(
            call(&s, "/api/v1/pods?fieldSelector=spec.foo%3D1", Output::Json).unwrap_err().message,
            "field label not supported: spec.foo"
        );
        let deployments = call(&s, "/apis/apps/v1/deployments", Output::Json).unwrap();
        assert_eq!((deployments["kind"].as_str(), deployments["apiVersion"].as_str()), (Some("DeploymentList"), Some("apps/v1")));
    }

    #[test]
    fn lists_in_pages() {
        let (_dir, s) = with_pods();
        let first = call(&s, "/api/v1/pods?limit=3", Output::Json).unwrap();
        assert_eq!(names(&first), ["a", "b", "c"]);
        assert_eq!(first["metadata"]["remainingItemCount"], 1);
        let token = first["metadata"]["continue"].as_str().unwrap().to_string();
        // A write between pages: the next page is read as the store is now, and reports the
        // first page's resource version.
        s.store.create(pod("kube-system", "e", "dns")).unwrap();
        let next = call(&s, &format!("/api/v1/pods?limit=3&continue={token}"), Output::Json).unwrap();
        assert_eq!(names(&next), ["d", "e"]);
        assert_eq!(next["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
        assert!(next["metadata"].get("continue").is_none());
        let filtered = call(&s, "/api/v1/pods?limit=1&labelSelector=run%3Dweb", Output::Json).unwrap();
        assert_eq!((names(&filtered), filtered["metadata"].get("remainingItemCount")), (vec!["a".to_string()], None));
        let e = call(&s, "/api/v1/pods?continue=garbage!", Output::Json).unwrap_err();
        assert!(e.code == 400 && e.message.starts_with("continue key is not valid"), "{e:?}");
    }

    #[test]
    fn tables() {
        let (_dir, s) = with_pods();
        let t = call(&s, "/api/v1/namespaces/default/pods?labelSelector=run%3Dweb", Output::Table("meta.k8s.io/v1")).unwrap();
        assert_eq!(t["kind"], "Table");
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["cells"][0], "a");
        assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], s.store.resource_version().to_string());
        let one = call(&s, "/api/v1/namespaces/default/pods/b?includeObject=Object", Output::Table("meta.k8s.io/v1")).unwrap();
        assert_eq!((one["rows"].as_array().unwrap().len(), one["rows"][0]["object"]["kind"].as_str()), (1, Some("Pod")));
        let e = call(&s, "/api/v1/pods?includeObject=Everything", Output::Table("meta.k8s.io/v1")).unwrap_err();
        assert_eq!(e.message, "unrecognized includeObject value: \"Everything\"");
    }

    #[test]
    fn accept_headers() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(kubectl), Some(Output::Table("meta.k8s.io/v1")));
        assert_eq!(negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io"), Some(Output::Table("meta.k8s.io/v1beta1")));
        assert_eq!(negotiate("application/json"), Some(Output::Json));
        assert_eq!(negotiate(""), Some(Output::Json));
        assert_eq!(negotiate("*/*"), Some(Output::Json));
        assert_eq!(negotiate("application/json, */*"), Some(Output::Json));
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(negotiate("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"), None);
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf,application/json"), Some(Output::Json));
    }
}
