//! Watch (`?watch=1`) as kube-apiserver serves it (apiserver `pkg/endpoints/handlers/watch.go`,
//! facts 4.2): 200 at once, then one newline-terminated JSON event per change,
//! `{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":…}`, for as long as the
//! client stays, `timeoutSeconds` runs, or the server's own limit (30 to 60 minutes) passes.
//!
//! What to send is decided by pure functions ([`WatchOptions::parse`], [`Filter::judge`],
//! [`Encoder`]); `watch` only feeds them the store's events on a task of its own.

use super::list::{self, FieldTerm};
use super::status::{ApiError, FieldError};
use super::table::{self, IncludeObject, ListMeta};
use super::{request::query_param, Call, Output, Stream};
use crate::store::{WatchEventType, WatchStart};
use bytes::Bytes;
use emu_api::object;
use emu_api::selector::Selector;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a watch that allows bookmarks gets one (kube-apiserver: about every minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// kube-apiserver's `--min-request-timeout`: a watch without `timeoutSeconds` ends after this
/// times a random factor in [1, 2), so that clients re-watch at different times.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);
/// The annotation of the bookmark that ends a watch-list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `resourceVersion` unset or "0": a synthetic ADDED for every current object, then changes.
    Current,
    /// `resourceVersion=N`: only the changes after N.
    After(u64),
    /// `sendInitialEvents=true` (watch-list): the current state, not older than N if given, as
    /// ADDED events, then the bookmark annotated `k8s.io/initial-events-end`, then changes.
    Initial(Option<u64>),
    /// `sendInitialEvents=false` without a version: the changes from now on.
    Now,
}

/// A watch's options (ListOptions), checked as kube-apiserver checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    pub start: Start,
    pub bookmarks: bool,
    /// `timeoutSeconds`, when given.
    pub timeout: Option<Duration>,
}

impl WatchOptions {
    pub fn parse(query: &[(String, String)]) -> Result<WatchOptions, ApiError> {
        let rv = query_param(query, "resourceVersion").unwrap_or("");
        let version_match = query_param(query, "resourceVersionMatch").unwrap_or("");
        let bookmarks = parse_bool(query, "allowWatchBookmarks")?.unwrap_or(false);
        let initial = parse_bool(query, "sendInitialEvents")?;
        let forbidden =
            |field: &'static str, detail: &str| FieldError { reason: "FieldValueForbidden", field, body: format!("Forbidden: {detail}") };
        // apimachinery `ValidateListOptions` for a watch.
        let mut errors = Vec::new();
        match initial {
            Some(_) => {
                if version_match != "NotOlderThan" {
                    errors
                        .push(forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
                }
                if !bookmarks {
                    errors.push(forbidden("allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true"));
                }
            }
            None if !version_match.is_empty() => errors.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
            None => {}
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errors));
        }
        let version = match rv {
            "" | "0" => None,
            n => Some(n.parse::<u64>().map_err(|e| ApiError::bad_request(format!("invalid resource version: {e}")))?),
        };
        let start = match (initial, version) {
            (Some(true), n) => Start::Initial(n),
            (Some(false), Some(n)) | (None, Some(n)) => Start::After(n),
            (Some(false), None) if rv.is_empty() => Start::Now,
            _ => Start::Current,
        };
        let timeout = match query_param(query, "timeoutSeconds") {
            None | Some("") => None,
            Some(text) => {
                let n: i64 = text.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value {text:?} for timeoutSeconds: strconv.ParseInt: parsing {text:?}: invalid syntax"
                    ))
                })?;
                // kube-apiserver treats 0 (and less) as "not given".
                (n > 0).then(|| Duration::from_secs(n as u64))
            }
        };
        Ok(WatchOptions { start, bookmarks, timeout })
    }
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (None when absent or empty).
pub(super) fn parse_bool(query: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    match query_param(query, name) {
        None | Some("") => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => {
            Err(ApiError::bad_request(format!("invalid value {other:?} for {name}: strconv.ParseBool: parsing {other:?}: invalid syntax")))
        }
    }
}

/// The event types on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Which objects a watch sees, and what it has told the client about so far: kube-apiserver's
/// watch cache turns a change that makes an object match into ADDED and one that makes it stop
/// matching into DELETED, so a client's view stays the set the selectors pick.
pub struct Filter {
    kind: &'static str,
    namespace: Option<String>,
    labels: Selector,
    fields: Vec<FieldTerm>,
    /// `namespace/name` of the objects the client holds.
    seen: HashSet<(String, String)>,
}

impl Filter {
    pub fn new(kind: &'static str, namespace: Option<String>, labels: Selector, fields: Vec<FieldTerm>) -> Filter {
        Filter { kind, namespace, labels, fields, seen: HashSet::new() }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        object::kind(obj) == self.kind
            && self.namespace.as_deref().is_none_or(|ns| object::namespace(obj) == ns)
            && self.labels.matches(&object::labels(obj))
            && list::fields_match(&self.fields, obj)
    }

    /// Records that the client holds `obj` (it was in the initial state it got or will get).
    pub fn hold(&mut self, obj: &Value) {
        self.seen.insert(id(obj));
    }

    /// What to tell the client of a change to `obj` (its new state, or its last one when
    /// deleted), if anything.
    pub fn judge(&mut self, change: WatchEventType, obj: &Value) -> Option<EventType> {
        if object::kind(obj) != self.kind {
            return None;
        }
        let matches = self.matches(obj);
        let held = self.seen.contains(&id(obj));
        let event = match (change, matches, held) {
            (WatchEventType::Deleted, _, true) | (WatchEventType::Deleted, true, false) => EventType::Deleted,
            (WatchEventType::Deleted, false, false) => return None,
            (_, true, true) => EventType::Modified,
            (_, true, false) => EventType::Added,
            (_, false, true) => EventType::Deleted,
            (_, false, false) => return None,
        };
        match event {
            EventType::Deleted => self.seen.remove(&id(obj)),
            _ => self.seen.insert(id(obj)),
        };
        Some(event)
    }
}

fn id(obj: &Value) -> (String, String) {
    (object::namespace(obj).to_string(), object::name(obj).to_string())
}

/// Writes events as the client asked to see objects: the objects themselves, or each as a
/// one-row Table, the first with its columnDefinitions and the rest without (kubectl keeps
/// the last ones it saw, facts 3).
pub struct Encoder {
    kind: &'static str,
    api_version: String,
    output: Output,
    include: IncludeObject,
    headers_sent: bool,
}

impl Encoder {
    pub fn new(kind: &'static str, api_version: String, output: Output, include: IncludeObject) -> Encoder {
        Encoder { kind, api_version, output, include, headers_sent: false }
    }

    /// One event; `json` is `obj` as JSON when the caller has it already.
    pub fn event(&mut self, event: EventType, obj: &Value, json: Option<&str>, now: i64) -> Bytes {
        match self.output {
            Output::Json => match json {
                Some(json) => line(event.as_str(), json),
                None => line(event.as_str(), &serde_json::to_string(obj).expect("a JSON value serializes")),
            },
            Output::Table(api_version) => {
                let rv = object::str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("").to_string();
                let meta = ListMeta { resource_version: rv, ..Default::default() };
                let text = table::table(self.kind, &[obj], meta, self.include, api_version, now, false);
                let mut t: Value = serde_json::from_str(&text).expect("a table is JSON");
                if self.headers_sent {
                    t["columnDefinitions"] = Value::Null;
                }
                self.headers_sent = true;
                line(event.as_str(), &t.to_string())
            }
        }
    }

    /// A BOOKMARK at `rv`: an object of the watched kind with only its version (and, ending a
    /// watch-list's initial events, the annotation saying so).
    pub fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let obj = json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata});
        line("BOOKMARK", &obj.to_string())
    }
}

/// An ERROR event carrying `e`'s Status.
pub fn error_event(e: &ApiError) -> Bytes {
    line("ERROR", e.to_json(false).trim_end())
}

fn line(event: &str, object: &str) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{event}\",\"object\":{object}}}\n"))
}

/// kube-apiserver's 410 for a watch from a version whose events are no longer kept.
pub fn too_old(wanted: u64, oldest: u64) -> ApiError {
    ApiError::expired(format!("too old resource version: {wanted} ({oldest})"))
}

/// Starts the watch `call` asks for: checks its options (an error is the answer), then streams
/// its events from a task of its own.
pub(super) fn watch(call: &Call) -> Result<Stream, ApiError> {
    let Call { shared, rk, info, output, ref query, .. } = *call;
    let options = WatchOptions::parse(query)?;
    let labels = Selector::parse(query_param(query, "labelSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut fields = list::parse_field_selector(rk.kind, query_param(query, "fieldSelector").unwrap_or(""))?;
    // `GET …/pods/x?watch=1` (the deprecated path form) watches that one object.
    if info.parts.len() >= 2 && !info.name.is_empty() {
        fields.push(FieldTerm { field: "metadata.name".into(), value: info.name.clone(), negated: false });
    }
    let include = IncludeObject::parse(query_param(query, "includeObject"))?;
    let namespace = (rk.namespaced && !info.namespace.is_empty()).then(|| info.namespace.clone());
    let mut filter = Filter::new(rk.kind, namespace, labels, fields);
    let mut encoder = Encoder::new(rk.kind, rk.api_version(), output, include);
    let store = &shared.store;
    let current = store.resource_version();
    let wanted = match options.start {
        Start::After(n) | Start::Initial(Some(n)) => Some(n),
        _ => None,
    };
    if let Some(n) = wanted.filter(|n| *n > current) {
        return Err(ApiError::too_large_resource_version(n, current));
    }
    let from = match options.start {
        Start::After(n) => n,
        Start::Now => current,
        Start::Current | Start::Initial(_) => 0,
    };
    let oldest = store.oldest_resumable_version();
    let (start, mut changes) = store.watch(from);
    let now = emu_api::time::now();
    let mut first = Vec::new();
    let mut last_rv;
    let mut expired = false;
    match start {
        WatchStart::Reset { objects, resource_version } if from == 0 => {
            let mut selected: Vec<&Value> = objects.iter().filter(|o| filter.matches(o)).collect();
            selected.sort_by(|a, b| (object::namespace(a), object::name(a)).cmp(&(object::namespace(b), object::name(b))));
            for obj in selected {
                filter.hold(obj);
                first.push(encoder.event(EventType::Added, obj, None, now));
            }
            last_rv = resource_version;
            if matches!(options.start, Start::Initial(_)) {
                first.push(encoder.bookmark(resource_version, true));
            }
        }
        WatchStart::Reset { .. } => {
            first.push(error_event(&too_old(from, oldest)));
            last_rv = from;
            expired = true;
        }
        WatchStart::Resume { events } => {
            // The client holds what matched as of `from`; the store keeps no past states, so the
            // objects matching now stand in for them (what differs is in the events below).
            let (objects, _) = store.list_shared(rk.kind, filter.namespace.as_deref());
            for obj in &objects {
                if filter.matches(obj) {
                    filter.hold(obj);
                }
            }
            last_rv = from;
            for e in events {
                last_rv = e.resource_version;
                if let Some(kind) = filter.judge(e.kind, &e.object) {
                    first.push(encoder.event(kind, &e.object, Some(&e.json), now));
                }
            }
        }
    }
    let (tx, body) = mpsc::channel(64);
    let limit = options.timeout.unwrap_or_else(|| MIN_REQUEST_TIMEOUT.mul_f64(1.0 + rand::random::<f64>()));
    let bookmarks = options.bookmarks;
    tokio::spawn(async move {
        for bytes in first {
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            let bytes = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => encoder.bookmark(last_rv, false),
                change = changes.recv() => {
                    // None: the store dropped this watcher for falling behind; the client
                    // watches again from the last version it saw.
                    let Some(e) = change else { return };
                    last_rv = e.resource_version;
                    match filter.judge(e.kind, &e.object) {
                        Some(kind) => encoder.event(kind, &e.object, Some(&e.json), emu_api::time::now()),
                        None => continue,
                    }
                }
            };
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
    });
    Ok(Stream { status: 200, content_type: watch_content_type(output), body })
}

fn watch_content_type(output: Output) -> &'static str {
    match output {
        Output::Json => "application/json",
        Output::Table(v) if v.ends_with("v1beta1") => "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        Output::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: &str) -> Vec<(String, String)> {
        super::super::request::query_pairs(query)
    }

    #[test]
    fn options() {
        let o = |s: &str| WatchOptions::parse(&q(s));
        assert_eq!(o("").unwrap(), WatchOptions { start: Start::Current, bookmarks: false, timeout: None });
        assert_eq!(o("resourceVersion=0").unwrap().start, Start::Current);
        assert_eq!(
            o("resourceVersion=12&allowWatchBookmarks=true&timeoutSeconds=5").unwrap(),
            WatchOptions { start: Start::After(12), bookmarks: true, timeout: Some(Duration::from_secs(5)) }
        );
        assert_eq!(
            o("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=").unwrap().start,
            Start::Initial(None)
        );
        assert_eq!(
            o("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=1&resourceVersion=7").unwrap().start,
            Start::Initial(Some(7))
        );
        assert_eq!(o("sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=1").unwrap().start, Start::Now);
        let e = o("sendInitialEvents=true").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true]"
        );
        assert_eq!(
            o("resourceVersionMatch=NotOlderThan&resourceVersion=3").unwrap_err().message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
        );
        assert_eq!(o("timeoutSeconds=x").unwrap_err().code, 400);
        assert_eq!(o("allowWatchBookmarks=yes").unwrap_err().code, 400);
        assert_eq!(o("timeoutSeconds=0").unwrap().timeout, None);
    }

    fn pod(name: &str, app: &str, rv: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default", "labels": {"app": app}, "resourceVersion": rv},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}})
    }

    #[test]
    fn objects_enter_and_leave_a_selector() {
        let mut f = Filter::new("Pod", Some("default".into()), Selector::parse("app=web").unwrap(), vec![]);
        assert_eq!(f.judge(WatchEventType::Added, &pod("a", "db", "1")), None);
        assert_eq!(f.judge(WatchEventType::Modified, &pod("a", "web", "2")), Some(EventType::Added));
        assert_eq!(f.judge(WatchEventType::Modified, &pod("a", "web", "3")), Some(EventType::Modified));
        assert_eq!(f.judge(WatchEventType::Modified, &pod("a", "db", "4")), Some(EventType::Deleted));
        assert_eq!(f.judge(WatchEventType::Deleted, &pod("a", "db", "5")), None);
        assert_eq!(f.judge(WatchEventType::Added, &pod("b", "web", "6")), Some(EventType::Added));
        assert_eq!(f.judge(WatchEventType::Deleted, &pod("b", "web", "7")), Some(EventType::Deleted));
        let mut other = pod("c", "web", "8");
        other["metadata"]["namespace"] = json!("kube-system");
        assert_eq!(f.judge(WatchEventType::Added, &other), None);
        let mut svc = pod("d", "web", "9");
        svc["kind"] = json!("Service");
        assert_eq!(f.judge(WatchEventType::Added, &svc), None);
    }

    /// Reads the next event of a watch's body, waiting at most a few seconds.
    async fn next(body: &mut mpsc::Receiver<Bytes>) -> Option<Value> {
        let bytes = tokio::time::timeout(Duration::from_secs(5), body.recv()).await.expect("an event in time")?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    fn start(s: &crate::state::Shared, target: &str) -> Result<super::super::Stream, ApiError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let info = super::super::RequestInfo::parse("GET", path, query).unwrap();
        match super::super::serve(s, &info, query, Output::Json, false, 0, super::super::Sent::default())? {
            super::super::Served::Stream(stream) => Ok(stream),
            other => panic!("{target}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn watches_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::tests::shared(dir.path());
        s.store.create(pod("a", "web", "")).unwrap();
        s.store.create(pod("b", "db", "")).unwrap();
        // From "now" (no version): the current objects the selector picks as ADDED, then changes.
        let mut all = start(&s, "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb").unwrap().body;
        let e = next(&mut all).await.unwrap();
        assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("a")));
        let rv = s.store.resource_version();
        // From a version: only what came after it; one object by its name.
        let mut after = start(&s, &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}")).unwrap().body;
        let mut one = start(&s, "/api/v1/namespaces/default/pods?watch=1&fieldSelector=metadata.name%3Db&resourceVersion=0").unwrap().body;
        assert_eq!(next(&mut one).await.unwrap()["object"]["metadata"]["name"], "b");
        s.store.create(pod("c", "web", "")).unwrap();
        let e = next(&mut all).await.unwrap();
        assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("c")));
        let e = next(&mut after).await.unwrap();
        assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("c")));
        let key = crate::store::ObjectKey { kind: "Pod".into(), namespace: "default".into(), name: "b".into() };
        let gone = s.store.delete(&key).unwrap();
        let e = next(&mut one).await.unwrap();
        assert_eq!((e["type"].as_str(), &e["object"]), (Some("DELETED"), &gone));
        let e = next(&mut after).await.unwrap();
        assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("b")));
        // Watch-list: the state, then the bookmark that ends it.
        let mut list = start(&s, "/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
            .unwrap()
            .body;
        assert_eq!(next(&mut list).await.unwrap()["type"], "ADDED");
        assert_eq!(next(&mut list).await.unwrap()["type"], "ADDED");
        let b = next(&mut list).await.unwrap();
        assert_eq!((b["type"].as_str(), &b["object"]["metadata"]["annotations"]), (Some("BOOKMARK"), &json!({INITIAL_EVENTS_END: "true"})));
        assert_eq!(b["object"]["metadata"]["resourceVersion"], s.store.resource_version().to_string());
        // timeoutSeconds ends the stream.
        let mut short =
            start(&s, &format!("/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion={}", s.store.resource_version())).unwrap().body;
        assert_eq!(next(&mut short).await, None);
        // A version the store has not reached is the 504 before any event.
        let e = start(&s, "/api/v1/pods?watch=1&resourceVersion=999").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (504, "Timeout: Too large resource version: 999, current: 4"));
    }

    #[test]
    fn events_on_the_wire() {
        let mut e = Encoder::new("Pod", "v1".into(), Output::Json, IncludeObject::Metadata);
        let p = pod("a", "web", "5");
        let text = e.event(EventType::Added, &p, None, 0);
        assert!(text.ends_with(b"}\n") && text.iter().filter(|b| **b == b'\n').count() == 1);
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!((v["type"].as_str(), &v["object"]), (Some("ADDED"), &p));
        let b: Value = serde_json::from_slice(&e.bookmark(9, true)).unwrap();
        assert_eq!(
            b,
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"resourceVersion": "9", "annotations": {"k8s.io/initial-events-end": "true"}}}})
        );
        assert_eq!(
            &error_event(&too_old(3, 40))[..],
            &b"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version: 3 (40)\",\"reason\":\"Expired\",\"code\":410}}\n"[..]
        );
        // As Tables: the column definitions come with the first event only.
        let mut t = Encoder::new("Pod", "v1".into(), Output::Table("meta.k8s.io/v1"), IncludeObject::Metadata);
        let first: Value = serde_json::from_slice(&t.event(EventType::Added, &p, None, 0)).unwrap();
        let second: Value = serde_json::from_slice(&t.event(EventType::Modified, &p, None, 0)).unwrap();
        assert_eq!(first["object"]["kind"], "Table");
        assert!(first["object"]["columnDefinitions"].as_array().is_some_and(|c| !c.is_empty()));
        assert_eq!(second["object"]["columnDefinitions"], Value::Null);
        assert_eq!(second["object"]["rows"][0]["cells"][0], "a");
        assert_eq!(second["object"]["metadata"]["resourceVersion"], "5");
    }
}
