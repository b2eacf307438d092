//! The gRPC API: what `emu` and the node agents call. Every write goes through the store, which
//! assigns resource versions and feeds the watch streams; every write also wakes the controllers.

use crate::state::Shared;
use crate::store::{ObjectKey, StoreError, WatchEventType, WatchStart, Write};
use emu_api::admission::{self, AdmissionError, Admitted};
use emu_api::time::now;
use emu_api::typed::{self, Service};
use emu_api::{kinds, object, validation};
use emu_proto::watch_event::Type as EventType;
use emu_proto::{api_server::Api, *};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::pin::Pin;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

pub struct ApiService {
    pub shared: Shared,
}

/// Maps a store error to a gRPC status whose code the CLI turns back into kubectl's
/// `Error from server (<Reason>): <message>`.
pub fn status_of(err: StoreError) -> Status {
    let msg = err.to_string();
    match err {
        StoreError::NotFound { .. } => Status::not_found(msg),
        StoreError::AlreadyExists { .. } => Status::already_exists(msg),
        StoreError::Conflict { .. } => Status::aborted(msg),
        StoreError::Invalid(_) => Status::invalid_argument(msg),
        _ => Status::internal(msg),
    }
}

fn parse_object(o: &Object) -> Result<Value, Status> {
    serde_json::from_str(&o.json).map_err(|e| Status::invalid_argument(format!("object is not valid JSON: {e}")))
}

fn to_object(v: &Value) -> Object {
    Object { json: v.to_string() }
}

/// Admission as the API server runs it ([`admission::admit`]): namespaces from the store (or
/// created by the same request), random generated names, and an update's registry steps.
struct Server<'a> {
    shared: &'a Shared,
    /// Namespaces created by the same request (they may hold its other objects).
    new_namespaces: &'a [String],
    /// IngressClasses created by the same request (the newest: a default among them wins).
    new_ingress_classes: &'a [typed::IngressClass],
    update: Registry<'a>,
}

/// Which of the registry's steps an updated Service takes before validation (SVC-11).
enum Registry<'a> {
    /// A create, or a request that only creates.
    Create,
    /// The user's document of a request that may update: the live Service's type-dependent
    /// fields the user left as they were are cleared.
    MayUpdate,
    /// The merged or replacing object of an update of `live`.
    UpdateOf(&'a Service),
}

impl admission::Context for Server<'_> {
    fn namespace_exists(&self, ns: &str) -> bool {
        let key = ObjectKey { kind: "Namespace".into(), namespace: String::new(), name: ns.to_string() };
        self.new_namespaces.iter().any(|n| n == ns) || self.shared.store.get(&key).is_some()
    }

    fn name_entropy(&self) -> Option<[u8; 5]> {
        Some(rand::random())
    }

    fn before_validation(&self, object: &mut typed::Object) {
        if let typed::Object::Job(job) = object {
            return crate::jobs::prepare_for_create(self.shared, job);
        }
        if let typed::Object::DaemonSet(ds) = object {
            return crate::daemonsets::prepare_for_write(self.shared, ds);
        }
        if let typed::Object::Ingress(ing) = object {
            return default_ingress_class(self.shared, self.new_ingress_classes, ing);
        }
        let typed::Object::Service(svc) = object else { return };
        match self.update {
            Registry::Create => {}
            Registry::MayUpdate => {
                let (namespace, name) = typed::key(&svc.metadata);
                let key = ObjectKey { kind: "Service".into(), namespace: namespace.into(), name: name.into() };
                if let Some(live) = self.shared.store.get(&key).and_then(|v| typed::decode::<Service>(&v).ok()) {
                    emu_logic::nodeports::drop_type_dependent_fields(&live, svc);
                }
            }
            Registry::UpdateOf(live) => crate::services::prepare_update(live, svc),
        }
    }
}

/// The DefaultIngressClass admission plugin: an Ingress being created without a class gets the
/// default IngressClass's name (an update keeps what the stored Ingress has).
/// kubectl sends a file's documents one by one, so a class earlier in the same request is there
/// by then, and is the newest.
fn default_ingress_class(shared: &Shared, in_request: &[typed::IngressClass], ing: &mut typed::Ingress) {
    let (namespace, name) = typed::key(&ing.metadata);
    let key = ObjectKey { kind: "Ingress".into(), namespace: namespace.into(), name: name.into() };
    if shared.store.get(&key).is_some() {
        return;
    }
    if emu_api::defaults::ingress::default_class(in_request).is_some() {
        return emu_api::defaults::ingress::admit_default_class(ing, in_request);
    }
    let (classes, _) = shared.store.list("IngressClass", None);
    let classes: Vec<typed::IngressClass> = classes.iter().filter_map(|v| typed::decode(v).ok()).collect();
    emu_api::defaults::ingress::admit_default_class(ing, &classes);
}

fn admission_status(e: AdmissionError) -> Status {
    match e {
        AdmissionError::NamespaceNotFound(_) => Status::not_found(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// Why a write failed: admission's own error where it has one (the REST API turns an
/// [`AdmissionError::Invalid`] into a 422 with one cause per field), else a gRPC status whose
/// code and message are the API server's.
#[derive(Debug)]
pub enum WriteError {
    Admission(AdmissionError),
    Status(Status),
}

impl From<AdmissionError> for WriteError {
    fn from(e: AdmissionError) -> WriteError {
        WriteError::Admission(e)
    }
}

impl From<Status> for WriteError {
    fn from(s: Status) -> WriteError {
        WriteError::Status(s)
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> WriteError {
        WriteError::Status(status_of(e))
    }
}

impl From<WriteError> for Status {
    fn from(e: WriteError) -> Status {
        match e {
            WriteError::Admission(e) => admission_status(e),
            WriteError::Status(s) => s,
        }
    }
}

/// Admits one document of a request ([`admission::admit`]); the same steps for every document
/// before any of them is written, so a bad document changes nothing. `may_update`: an existing
/// object of the same name is updated (else the request only creates).
fn admit(
    shared: &Shared,
    v: Value,
    new_namespaces: &[String],
    new_ingress_classes: &[typed::IngressClass],
    may_update: bool,
) -> Result<Admitted, WriteError> {
    let update = if may_update { Registry::MayUpdate } else { Registry::Create };
    Ok(admission::admit(v, &Server { shared, new_namespaces, new_ingress_classes, update })?)
}

/// Where `kubectl apply` keeps the configuration it applied last, for its three-way merge.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `kubectl apply`'s three-way merge on JSON: fields the user sets now replace the live ones (maps
/// merge key by key, lists are replaced), fields the user set last time but no longer sets are
/// removed, and fields only the system set (a pod's `nodeName`, any `status`) are kept.
pub fn three_way_merge(live: &Value, last: Option<&Value>, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out = l.clone();
            for (k, dv) in d {
                let merged = match l.get(k) {
                    Some(lv) => three_way_merge(lv, last.and_then(|x| x.get(k)), dv),
                    None => dv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            if let Some(Value::Object(prev)) = last {
                for k in prev.keys() {
                    if !d.contains_key(k) {
                        out.remove(k);
                    }
                }
            }
            Value::Object(out)
        }
        _ => desired.clone(),
    }
}

fn merge_for_apply(existing: &Value, user: &Value) -> Value {
    let last: Option<Value> = object::annotation(existing, LAST_APPLIED).and_then(|t| serde_json::from_str(t).ok());
    let mut desired = user.clone();
    if let Some(m) = desired.as_object_mut() {
        m.remove("status");
    }
    let mut merged = three_way_merge(existing, last.as_ref(), &desired);
    object::set_annotation(&mut merged, LAST_APPLIED, &format!("{}\n", emu_api::json::canonical_json(user)));
    object::metadata_mut(&mut merged).remove("resourceVersion");
    merged
}

/// How a write request treats objects that already exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteMode {
    /// `kubectl apply`: create, or three-way merge into the stored object.
    Apply,
    /// `kubectl create`: existing objects fail the request.
    Create,
    /// `kubectl replace` (PUT): the object must exist and is replaced whole.
    Replace,
}

/// What a PUT of `user` over `existing` asks to store, before decoding, defaults and validation:
/// the user's object whole, with what a PUT of the main resource cannot set taken from the stored
/// object: `status` (it has its own writers), the deletion marks (only a delete sets them), and a
/// Service's ClusterIP and IP family fields the user left out (`patchAllocatedValues`; a changed
/// ClusterIP is refused by `assign_cluster_ip`, and node ports are restored by
/// [`crate::services::prepare_update`]). `resourceVersion` stays as the user sent it, for the
/// store's optimistic concurrency check.
fn replacement(existing: &Value, user: &Value) -> Value {
    let mut v = user.clone();
    for field in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match object::at(existing, &["metadata", field]) {
            Some(x) => object::metadata_mut(&mut v).insert(field.into(), x.clone()),
            None => object::metadata_mut(&mut v).remove(field),
        };
    }
    // kube-apiserver keeps the live managedFields when a replacement carries none.
    if let Some(m) =
        object::at(existing, &["metadata", "managedFields"]).filter(|_| object::at(&v, &["metadata", "managedFields"]).is_none())
    {
        object::metadata_mut(&mut v).insert("managedFields".into(), m.clone());
    }
    match existing.get("status") {
        Some(status) => v["status"] = status.clone(),
        None => {
            if let Some(m) = v.as_object_mut() {
                m.remove("status");
            }
        }
    }
    if object::kind(existing) == "Service" && v["spec"]["type"] != "ExternalName" {
        let unset = |x: Option<&Value>| x.is_none_or(|x| x.is_null() || x == "" || x.as_array().is_some_and(Vec::is_empty));
        let spec = object::object_mut(&mut v, "spec");
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(live) = existing["spec"].get(k).filter(|_| unset(spec.get(k))) {
                spec.insert(k.into(), live.clone());
            }
        }
    }
    v
}

/// Kubernetes' 409 for a write carrying a resourceVersion the object no longer has.
fn conflict(key: &ObjectKey) -> Status {
    status_of(StoreError::Conflict { kind_plural_group: plural(key), name: key.name.clone() })
}

/// An update's new object (`desired`: the merged or replacing object) through the API server's
/// update pipeline: decode, defaults, a Service's type-dependent fields and allocated values
/// (SVC-11), validation of the object and of the change, then node ports and the
/// load-balancer address against the cluster. Nothing is written here.
fn admit_update(
    shared: &Shared,
    existing: &Value,
    desired: Value,
    node_ports: &mut crate::services::NodePortsInUse,
) -> Result<Value, WriteError> {
    let live: Option<Service> = (object::kind(existing) == "Service").then(|| typed::decode(existing).ok()).flatten();
    let update = live.as_ref().map_or(Registry::Create, Registry::UpdateOf);
    let admitted = admission::admit(desired, &Server { shared, new_namespaces: &[], new_ingress_classes: &[], update })?;
    let invalid = |e: validation::Invalid| WriteError::Admission(AdmissionError::Invalid(e));
    match admitted.object {
        typed::Object::Service(mut svc) => {
            let live = live.as_ref().ok_or_else(|| Status::internal("the stored Service does not decode"))?;
            validation::validate_service_update(live, &svc).map_err(invalid)?;
            crate::services::assign_node_ports(shared, &mut svc, Some(live), node_ports)?;
            crate::services::check_load_balancer_ip(shared, &svc)?;
            Ok(typed::encode(&svc))
        }
        other => {
            let mut desired = other.to_json();
            // The stored status as it is: an update of the main resource never changes it,
            // and its writers keep Go's nulls (`lastProbeTime: null`) that a decode drops.
            match existing.get("status") {
                Some(status) => desired["status"] = status.clone(),
                None => {
                    if let Some(m) = desired.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if object::kind(&desired) == "Pod" {
                emu_logic::serviceaccount::keep_api_access(existing, &mut desired);
            }
            validation::validate_update(existing, &other).map_err(invalid)?;
            Ok(desired)
        }
    }
}

/// One object written by [`write_values`]: what was done (`created`, `configured`,
/// `unchanged`, `created (dry run)`), the object as stored (or as it would be), and the API
/// server's warnings about its write (Pod Security's `would violate PodSecurity …`), which the
/// REST API sends as `Warning` headers and the gRPC API in its result.
pub struct Written {
    pub action: &'static str,
    pub object: Value,
    pub warnings: Vec<String>,
}

/// What a writer does last to each object it stores, given the live one (`None` for a create):
/// the REST API records its field manager in `metadata.managedFields`.
pub type Stamp<'a> = &'a dyn Fn(Option<&Value>, &mut Value);

/// Apply, create and replace (the gRPC calls and the REST API's POST, PUT and PATCH): every
/// object is admitted, merged and checked before anything is written, so that a bad document
/// anywhere in the request changes nothing.
pub fn write_values(shared: &Shared, parsed: Vec<Value>, mode: WriteMode, dry_run: bool) -> Result<Vec<Written>, WriteError> {
    write_values_stamped(shared, parsed, mode, dry_run, &|_, _| {})
}

/// [`write_values`], each admitted object `stamp`ed before it is stored (or answered, in a dry run).
pub fn write_values_stamped(
    shared: &Shared,
    parsed: Vec<Value>,
    mode: WriteMode,
    dry_run: bool,
    stamp: Stamp,
) -> Result<Vec<Written>, WriteError> {
    let mut admitted = Vec::with_capacity(parsed.len());
    let mut originals = Vec::with_capacity(parsed.len());
    let new_namespaces: Vec<String> =
        parsed.iter().filter(|v| object::kind(v) == "Namespace").map(|v| object::name(v).to_string()).collect();
    let new_ingress_classes: Vec<typed::IngressClass> =
        parsed.iter().filter(|v| object::kind(v) == "IngressClass").filter_map(|v| typed::decode(v).ok()).collect();
    let new_accounts = crate::serviceaccounts::in_request(&parsed);
    // Held until every object is written: allocations are checked against the store.
    let _allocation = shared.allocation.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster_ips = crate::services::ClusterIpsInUse::default();
    for original in parsed {
        let mut a = admit(shared, original.clone(), &new_namespaces, &new_ingress_classes, mode != WriteMode::Create)?;
        let rk = a.kind;
        let v = a.to_json();
        // Read (a copy) only where needed: an apply of thousands of objects reads each once.
        let needs_live = mode == WriteMode::Replace || (rk.kind == "Service" && mode == WriteMode::Apply);
        let existing = ObjectKey::of(&v).ok().filter(|_| needs_live).and_then(|k| shared.store.get(&k));
        if mode == WriteMode::Replace {
            let key = ObjectKey::of(&v)?;
            let Some(live) = &existing else { return Err(not_found(&key).into()) };
            let wanted = object::str_at(&v, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty());
            if wanted.is_some_and(|rv| Some(rv) != object::str_at(live, &["metadata", "resourceVersion"])) {
                return Err(conflict(&key).into());
            }
        }
        if let typed::Object::Service(svc) = &mut a.object {
            let live: Option<Service> = existing.as_ref().and_then(|e| typed::decode(e).ok());
            crate::services::assign_cluster_ip(shared, svc, live.as_ref(), &mut cluster_ips).map_err(Status::invalid_argument)?;
        }
        admitted.push(a);
        originals.push(original);
    }
    // Refuse create-only conflicts before writing anything.
    if mode == WriteMode::Create {
        for a in &admitted {
            let key = ObjectKey::of(&a.to_json())?;
            if shared.store.get(&key).is_some() {
                return Err(Status::already_exists(format!("{} {:?} already exists", a.kind.qualified_plural(), key.name)).into());
            }
        }
    }
    // Node ports are allocated here, in document order, once an update's new object is known.
    let mut node_ports = crate::services::NodePortsInUse::default();
    let mut writes = Vec::with_capacity(admitted.len());
    for (mut a, original) in admitted.into_iter().zip(originals) {
        let rk = a.kind;
        let key = ObjectKey::of(&a.to_json())?;
        match shared.store.get(&key) {
            None => {
                if let typed::Object::Service(svc) = &mut a.object {
                    crate::services::assign_node_ports(shared, svc, None, &mut node_ports)?;
                    crate::services::check_load_balancer_ip(shared, svc)?;
                }
                let mut v = a.to_json();
                if rk.kind == "Pod" {
                    // ServiceAccount admission, for a new pod only; named as the user named it.
                    let mut named = v.clone();
                    named["metadata"]["name"] = original["metadata"]["name"].clone();
                    crate::serviceaccounts::admit_pod(shared, &named, &new_accounts)
                        .map_err(Status::permission_denied)?
                        .add_api_access(&mut v);
                }
                if mode == WriteMode::Apply {
                    object::set_annotation(&mut v, LAST_APPLIED, &format!("{}\n", emu_api::json::canonical_json(&original)));
                }
                stamp(None, &mut v);
                writes.push((key, None, v));
            }
            Some(existing) => {
                // What the user wrote, merged (apply) or whole (replace), then decoded and
                // defaulted as the API server does.
                let desired = match mode {
                    WriteMode::Replace => replacement(&existing, &original),
                    _ => merge_for_apply(&existing, &original),
                };
                let mut updated = admit_update(shared, &existing, desired, &mut node_ports)?;
                stamp(Some(&existing), &mut updated);
                writes.push((key, Some(existing), updated));
            }
        }
    }
    // Pod Security admission, a validating plugin: after every mutation, of the objects as
    // they will be stored, each Namespace of the request as it writes it.
    let written_namespaces: HashMap<&str, Option<Labels>> = writes
        .iter()
        .filter(|(key, _, _)| key.kind == "Namespace")
        .map(|(key, _, v)| (key.name.as_str(), typed::decode::<typed::Namespace>(v).ok().and_then(|ns| ns.metadata.labels)))
        .collect();
    let mut warnings = Vec::with_capacity(writes.len());
    for (key, existing, v) in &writes {
        warnings.push(pod_security(shared, key, existing.as_ref(), v, &written_namespaces)?);
    }
    // A dry run went through every step an update or a create takes, but the store's.
    if dry_run {
        return Ok(writes
            .into_iter()
            .zip(warnings)
            .map(|((_, existing, v), warnings)| Written {
                action: if existing.is_some() { "configured (dry run)" } else { "created (dry run)" },
                object: v,
                warnings,
            })
            .collect());
    }
    // Every object in one store transaction: a crash mid-apply leaves all of them or none.
    let before: Vec<Option<String>> = writes
        .iter()
        .map(|(_, existing, _)| existing.as_ref().and_then(|e| object::str_at(e, &["metadata", "resourceVersion"])).map(str::to_string))
        .collect();
    let batch = writes
        .into_iter()
        .map(|(key, existing, v)| match existing {
            Some(_) => Write::Update(v),
            // A Job's uid is its selector's (crate::jobs::prepare_for_create).
            None if key.kind == "Job" => Write::CreateWithUid(v),
            None => Write::Create(v),
        })
        .collect();
    let stored = shared.store.write_all(batch)?;
    let results = stored
        .into_iter()
        .zip(before)
        .zip(warnings)
        .map(|((object, before), warnings)| {
            let action = match before {
                None => "created",
                Some(rv) if object::str_at(&object, &["metadata", "resourceVersion"]) == Some(rv.as_str()) => "unchanged",
                Some(_) => "configured",
            };
            Written { action, object, warnings }
        })
        .collect();
    shared.changed();
    Ok(results)
}

type Labels = std::collections::BTreeMap<String, String>;

/// Pod Security admission of one object a request writes ([`emu_api::pod_security`], the
/// plugin's `Validate`): a Pod's create, or its update when it changes what the checks read,
/// is refused by its namespace's enforce level or warned about by its warn level; a
/// Deployment's or ReplicaSet's template, on every create and update, is warned about; a
/// Namespace whose enforce level gets stricter warns about the pods already in it (as stored:
/// the request's own pods are not there yet). A namespace's labels are the ones this request
/// writes (`written_namespaces`), else the stored ones. Answers the warnings, or the refusal.
fn pod_security(
    shared: &Shared,
    key: &ObjectKey,
    existing: Option<&Value>,
    new: &Value,
    written_namespaces: &HashMap<&str, Option<Labels>>,
) -> Result<Vec<String>, Status> {
    use emu_api::pod_security as ps;
    fn decoded<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Status> {
        typed::decode(v).map_err(|e| Status::internal(format!("a written object does not decode: {e}")))
    }
    let labels = || namespace_labels(shared, &key.namespace, written_namespaces);
    match key.kind.as_str() {
        "Pod" => {
            let pod: typed::Pod = decoded(new)?;
            if let Some(old) = existing {
                if !ps::significant_update(&pod, &decoded(old)?) {
                    return Ok(Vec::new());
                }
            }
            ps::admit_pod(&pod, labels().as_ref()).map_err(Status::permission_denied)
        }
        "Deployment" => {
            let d: typed::Deployment = decoded(new)?;
            Ok(d.spec.map(|s| ps::template_warnings(&s.template, labels().as_ref())).unwrap_or_default())
        }
        "ReplicaSet" => {
            let rs: typed::ReplicaSet = decoded(new)?;
            Ok(rs.spec.and_then(|s| s.template).map(|t| ps::template_warnings(&t, labels().as_ref())).unwrap_or_default())
        }
        "DaemonSet" => {
            let ds: typed::DaemonSet = decoded(new)?;
            Ok(ds.spec.map(|s| ps::template_warnings(&s.template, labels().as_ref())).unwrap_or_default())
        }
        "StatefulSet" => {
            let sts: typed::StatefulSet = decoded(new)?;
            Ok(sts.spec.map(|s| ps::template_warnings(&s.template, labels().as_ref())).unwrap_or_default())
        }
        "Job" => {
            let job: typed::Job = decoded(new)?;
            Ok(job.spec.map(|s| ps::template_warnings(&s.template, labels().as_ref())).unwrap_or_default())
        }
        "CronJob" => {
            let cj: typed::CronJob = decoded(new)?;
            let template = cj.spec.and_then(|s| s.job_template.spec).map(|s| s.template);
            Ok(template.map(|t| ps::template_warnings(&t, labels().as_ref())).unwrap_or_default())
        }
        "Namespace" => {
            let Some(old) = existing else { return Ok(Vec::new()) };
            let (old, new): (typed::Namespace, typed::Namespace) = (decoded(old)?, decoded(new)?);
            let Some(policy) = ps::enforce_tightened(old.metadata.labels.as_ref(), new.metadata.labels.as_ref()) else {
                return Ok(Vec::new());
            };
            let (stored, _) = shared.store.list_shared("Pod", Some(&key.name));
            let pods: Vec<typed::Pod> = stored.iter().filter_map(|p| typed::decode(p).ok()).collect();
            Ok(ps::existing_pods_warnings(&key.name, policy, &pods, ps::MAX_PODS_TO_CHECK))
        }
        _ => Ok(Vec::new()),
    }
}

/// The labels of `namespace` as the request leaves it: as the request writes it
/// (`written_namespaces`), else as stored.
fn namespace_labels(shared: &Shared, namespace: &str, written_namespaces: &HashMap<&str, Option<Labels>>) -> Option<Labels> {
    if let Some(labels) = written_namespaces.get(namespace) {
        return labels.clone();
    }
    let key = ObjectKey { kind: "Namespace".into(), namespace: String::new(), name: namespace.to_string() };
    typed::decode::<typed::Namespace>(&*shared.store.get_shared(&key)?).ok()?.metadata.labels
}

/// The enforce refusal of a pod the controllers create (a ReplicaSet's,
/// [`emu_api::pod_security::refusal`]), the pod named by its `generateName` when it has no name
/// yet. (Its warnings would go to the controller, which has no use for them.)
pub fn pod_security_refusal(shared: &Shared, pod: &Value) -> Option<String> {
    let mut pod: typed::Pod = typed::decode(pod).ok()?;
    if pod.metadata.name.is_none() {
        pod.metadata.name = pod.metadata.generate_name.clone();
    }
    let labels = namespace_labels(shared, typed::key(&pod.metadata).0, &HashMap::new());
    emu_api::pod_security::refusal(&pod, labels.as_ref())
}

/// The largest object a write takes: kube-apiserver's request body limit (3 MiB), which the
/// REST API applies to its bodies (`https.rs`).
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

impl ApiService {
    fn write_objects(&self, objects: &[Object], mode: WriteMode, dry_run: bool) -> Result<Vec<ApplyResult>, Status> {
        // Each object is a request of its own to kube-apiserver, which takes at most 3 MiB.
        if objects.iter().any(|o| o.json.len() > MAX_OBJECT_BYTES) {
            return Err(Status::resource_exhausted(format!("Request entity too large: limit is {MAX_OBJECT_BYTES}")));
        }
        let parsed: Vec<Value> = objects.iter().map(parse_object).collect::<Result<_, _>>()?;
        let written = write_values(&self.shared, parsed, mode, dry_run)?;
        Ok(written
            .into_iter()
            .map(|w| {
                let (kind, namespace, name) = (object::kind(&w.object), object::namespace(&w.object), object::name(&w.object));
                let r#ref = Some(ObjectRef { kind: kind.into(), namespace: namespace.into(), name: name.into() });
                ApplyResult { r#ref, action: w.action.into(), object: Some(to_object(&w.object)), warnings: w.warnings }
            })
            .collect())
    }
}

/// A delete as the API server does it (the gRPC `Delete` and the REST DELETE): a pod on a node
/// is only marked (its agent stops the containers, then removes it with `force`), an object
/// with finalizers is marked until they are taken off, anything else goes at once. Answers the
/// object as it is after the request (marked, or as it was when removed).
pub fn delete_object(shared: &Shared, key: &ObjectKey, force: bool, grace_period_seconds: i64) -> Result<Value, Status> {
    let existing = shared.store.get(key).ok_or_else(|| not_found(key))?;
    if key.kind == "Namespace" && matches!(key.name.as_str(), "default" | "kube-system" | "kube-public") {
        return Err(Status::permission_denied(format!("namespaces {:?} is forbidden: this namespace may not be deleted", key.name)));
    }
    let on_node = object::str_at(&existing, &["spec", "nodeName"]).is_some_and(|n| !n.is_empty());
    let deleted = if key.kind == "Pod" && on_node && !force {
        // Graceful: the node agent stops the containers, then removes the pod with `force`.
        if object::is_terminating(&existing) {
            existing
        } else {
            let mut v = existing;
            let grace = if grace_period_seconds >= 0 {
                grace_period_seconds
            } else {
                object::at(&v, &["spec", "terminationGracePeriodSeconds"]).and_then(Value::as_i64).unwrap_or(30)
            };
            let meta = object::metadata_mut(&mut v);
            meta.insert("deletionTimestamp".into(), json!(object::rfc3339(now())));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            shared.store.update(v).map_err(status_of)?
        }
    } else if object::at(&existing, &["metadata", "finalizers"]).and_then(Value::as_array).is_some_and(|f| !f.is_empty()) {
        // Kubernetes: an object with finalizers is only marked (Terminating); it goes when its
        // last finalizer is taken off (see the store's update).
        let mut v = existing;
        let marked = object::is_terminating(&v);
        let meta = object::metadata_mut(&mut v);
        if !marked {
            meta.insert("deletionTimestamp".into(), json!(object::rfc3339(now())));
        }
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        shared.store.update(v).map_err(status_of)?
    } else {
        shared.store.delete(key).map_err(status_of)?
    };
    shared.changed();
    Ok(deleted)
}

/// The scale subresource's write: `spec.replicas` of a Deployment or ReplicaSet, optionally
/// only if the object is still at `resource_version` (a Scale PUT's optimistic concurrency).
pub fn scale_object(shared: &Shared, key: &ObjectKey, replicas: i64, resource_version: Option<&str>) -> Result<Value, Status> {
    scale_object_stamped(shared, key, replicas, resource_version, &|_, _| {})
}

/// [`scale_object`], the object `stamp`ed before it is stored.
pub fn scale_object_stamped(
    shared: &Shared,
    key: &ObjectKey,
    replicas: i64,
    resource_version: Option<&str>,
    stamp: Stamp,
) -> Result<Value, Status> {
    if replicas < 0 {
        return Err(Status::invalid_argument(format!(
            "The {} {:?} is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0",
            key.kind, key.name, replicas
        )));
    }
    let live = shared.store.get(key).ok_or_else(|| not_found(key))?;
    let mut v = live.clone();
    object::object_mut(&mut v, "spec").insert("replicas".into(), json!(replicas));
    if let Some(rv) = resource_version.filter(|rv| !rv.is_empty()) {
        object::metadata_mut(&mut v).insert("resourceVersion".into(), json!(rv));
    }
    stamp(Some(&live), &mut v);
    let v = shared.store.update(v).map_err(status_of)?;
    shared.changed();
    Ok(v)
}

/// The status subresource's write: `v`'s status on the stored object, nothing else of `v`.
pub fn write_status(shared: &Shared, v: &Value) -> Result<Value, Status> {
    write_status_stamped(shared, v, None)
}

/// [`write_status`], the object `stamp`ed before it is stored (a copy of the live object is
/// taken only then: the agents write statuses often).
pub fn write_status_stamped(shared: &Shared, v: &Value, stamp: Option<Stamp>) -> Result<Value, Status> {
    let key = ObjectKey::of(v).map_err(status_of)?;
    let mut stored = shared.store.get(&key).ok_or_else(|| not_found(&key))?;
    let live = stamp.map(|_| stored.clone());
    if let (Some(a), Some(b)) = (object::at(v, &["metadata", "uid"]), object::at(&stored, &["metadata", "uid"])) {
        if a != b {
            return Err(not_found(&key));
        }
    }
    stored["status"] = v.get("status").cloned().unwrap_or(json!({}));
    // A status written from what the writer read last (its resourceVersion) conflicts when
    // the object changed since, as in Kubernetes: writers of one status (each node's agent
    // its entry of a Fault's) then cannot undo each other's.
    if let Some(rv) = object::str_at(v, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty()) {
        object::metadata_mut(&mut stored).insert("resourceVersion".into(), json!(rv));
    }
    if let (Some(stamp), Some(live)) = (stamp, &live) {
        stamp(Some(live), &mut stored);
    }
    let stored = shared.store.update(stored).map_err(status_of)?;
    shared.changed();
    Ok(stored)
}

#[tonic::async_trait]
impl Api for ApiService {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let req = req.into_inner();
        let mode = if req.create_only { WriteMode::Create } else { WriteMode::Apply };
        let results = self.write_objects(&req.objects, mode, req.dry_run)?;
        Ok(Response::new(ApplyResponse { results }))
    }

    async fn replace(&self, req: Request<ReplaceRequest>) -> Result<Response<ApplyResponse>, Status> {
        let results = self.write_objects(&req.into_inner().objects, WriteMode::Replace, false)?;
        Ok(Response::new(ApplyResponse { results }))
    }

    async fn get(&self, req: Request<ObjectRef>) -> Result<Response<Object>, Status> {
        let r = req.into_inner();
        let key = key_of(&r)?;
        match self.shared.store.get(&key) {
            Some(v) => Ok(Response::new(to_object(&v))),
            None => Err(not_found(&key)),
        }
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let r = req.into_inner();
        let rk = kinds::by_kind(&r.kind).ok_or_else(|| Status::invalid_argument(format!("unknown kind {:?}", r.kind)))?;
        let ns = (rk.namespaced && !r.namespace.is_empty()).then_some(r.namespace.as_str());
        let selector = emu_api::selector::Selector::parse(&r.label_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The REST API's parser: the same fields, `!=`, and kube-apiserver's refusals.
        let field = crate::rest::list::parse_field_selector(rk.kind, &r.field_selector).map_err(|e| Status::invalid_argument(e.message))?;
        let (items, rv) = self.shared.store.list(rk.kind, ns);
        let items = items
            .iter()
            .filter(|v| selector.matches(&object::labels(v)) && crate::rest::list::fields_match(&field, v))
            .map(to_object)
            .collect();
        Ok(Response::new(ListResponse { items, resource_version: rv }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let r = req.into_inner();
        let key = key_of(r.r#ref.as_ref().ok_or_else(|| Status::invalid_argument("delete: ref is required"))?)?;
        let deleted = delete_object(&self.shared, &key, r.force, r.grace_period_seconds)?;
        Ok(Response::new(DeleteResponse { object: Some(to_object(&deleted)) }))
    }

    async fn scale(&self, req: Request<ScaleRequest>) -> Result<Response<Object>, Status> {
        let r = req.into_inner();
        let key = key_of(r.r#ref.as_ref().ok_or_else(|| Status::invalid_argument("scale: ref is required"))?)?;
        let v = scale_object(&self.shared, &key, r.replicas.into(), None)?;
        Ok(Response::new(to_object(&v)))
    }

    async fn update_status(&self, req: Request<UpdateStatusRequest>) -> Result<Response<UpdateStatusResponse>, Status> {
        let r = req.into_inner();
        let v = parse_object(r.object.as_ref().ok_or_else(|| Status::invalid_argument("update_status: object is required"))?)?;
        let stored = write_status(&self.shared, &v)?;
        Ok(Response::new(UpdateStatusResponse { object: Some(to_object(&stored)) }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send + 'static>>;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let r = req.into_inner();
        let from_rv = r.resource_version;
        let (start, mut rx) = self.shared.store.watch(from_rv);
        let (tx, out) = tokio::sync::mpsc::channel(4096);
        let mut stopping = self.shared.stopping.subscribe();
        let wanted = move |v: &Value| -> bool {
            let kind = object::kind(v);
            (r.kinds.is_empty() || r.kinds.iter().any(|k| k == kind))
                && (r.node_name.is_empty() || kind != "Pod" || object::str_at(v, &["spec", "nodeName"]) == Some(r.node_name.as_str()))
        };
        tokio::spawn(async move {
            let event =
                |t: EventType, v: &Value, rv: u64| Ok(WatchEvent { r#type: t as i32, object: Some(to_object(v)), resource_version: rv });
            // Stored events carry their JSON: encoded once, whoever watches.
            let encoded = |e: &crate::store::WatchEvent| {
                Ok(WatchEvent {
                    r#type: type_of(&e.kind) as i32,
                    object: Some(Object { json: e.json.to_string() }),
                    resource_version: e.resource_version,
                })
            };
            let synced_rv = match start {
                WatchStart::Reset { objects, resource_version } => {
                    if tx.send(event(EventType::Reset, &json!({}), resource_version)).await.is_err() {
                        return;
                    }
                    for o in objects.iter().filter(|o| wanted(o)) {
                        if tx.send(event(EventType::Added, o, resource_version)).await.is_err() {
                            return;
                        }
                    }
                    resource_version
                }
                WatchStart::Resume { events } => {
                    let mut last = from_rv;
                    for e in events {
                        last = e.resource_version;
                        if wanted(&e.object) && tx.send(encoded(&e)).await.is_err() {
                            return;
                        }
                    }
                    last
                }
            };
            if tx.send(event(EventType::Synced, &json!({}), synced_rv)).await.is_err() {
                return;
            }
            loop {
                let event = tokio::select! {
                    e = rx.recv() => e,
                    _ = stopping.wait_for(|s| *s) => None,
                };
                let Some(e) = event else { return };
                if wanted(&e.object) && tx.send(encoded(&e)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn register_node(&self, req: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        let r = req.into_inner();
        let node = parse_object(r.node.as_ref().ok_or_else(|| Status::invalid_argument("register_node: node is required"))?)?;
        let stored = crate::nodes::register(&self.shared, node).map_err(status_of)?;
        self.shared.changed();
        Ok(Response::new(RegisterNodeResponse { node: Some(to_object(&stored)) }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let r = req.into_inner();
        crate::nodes::heartbeat(&self.shared, &r.node_name).map_err(status_of)?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn cluster_info(&self, _req: Request<ClusterInfoRequest>) -> Result<Response<ClusterInfoResponse>, Status> {
        let c = &self.shared.cluster;
        Ok(Response::new(ClusterInfoResponse {
            cluster_name: c.name.clone(),
            pod_cidr: c.pod_cidr.clone(),
            service_cidr: c.service_cidr.clone(),
            resource_version: self.shared.store.resource_version(),
            version: emu_logic::cluster::KUBERNETES_VERSION.into(),
            config_json: self.shared.config_json(),
            join_endpoint: self.shared.join_endpoint.get().cloned().unwrap_or_default(),
            ca_certificate: self.shared.root_ca.get().cloned().unwrap_or_default(),
        }))
    }

    /// A token bound to a pod that exists (its uid too), as TokenRequest issues for kubelet.
    async fn create_token(&self, req: Request<TokenRequest>) -> Result<Response<TokenResponse>, Status> {
        let r = req.into_inner();
        let signer = self.shared.tokens.get().ok_or_else(|| Status::unavailable("the service-account token signer is not loaded"))?;
        let key = ObjectKey { kind: "Pod".into(), namespace: r.namespace.clone(), name: r.pod_name.clone() };
        let pod = self.shared.store.get(&key).filter(|p| object::uid(p) == r.pod_uid).ok_or_else(|| not_found(&key))?;
        // TokenRequest's own floor: ten minutes.
        let ttl =
            if r.expiration_seconds > 0 { r.expiration_seconds.max(600) } else { emu_logic::serviceaccount::TOKEN_EXPIRATION_SECONDS };
        let service_account = if r.service_account.is_empty() {
            pod["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string()
        } else {
            r.service_account
        };
        let subject = emu_logic::serviceaccount::TokenSubject {
            namespace: r.namespace,
            service_account,
            pod_name: r.pod_name,
            pod_uid: r.pod_uid,
            ..Default::default()
        };
        let now = emu_api::time::now();
        let token = signer.issue(&subject, now, ttl).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(TokenResponse { token, issued_at: now, expires_at: now + ttl }))
    }

    /// The kubeconfig's server, CA and an admin client certificate (`emu up`, `emu kubeconfig`).
    async fn kubeconfig(&self, req: Request<KubeconfigRequest>) -> Result<Response<KubeconfigResponse>, Status> {
        let paths = emu_logic::cluster::Paths::new(&self.shared.cluster.name);
        let (pki_dir, port_file) = (paths.root.join("pki"), paths.api_port());
        let node = req.into_inner().node;
        let identity = if node.is_empty() {
            (crate::pki::ADMIN_USER.to_string(), crate::pki::ADMIN_GROUP)
        } else {
            let known = self.shared.store.get_shared(&ObjectKey { kind: "Node".into(), namespace: String::new(), name: node.clone() });
            if known.is_none() {
                return Err(Status::not_found(format!("node {node:?} not found: `emu get nodes` lists the cluster's nodes")));
            }
            (format!("{}{node}", crate::rest::node_authz::NODE_USER_PREFIX), crate::rest::node_authz::NODES_GROUP)
        };
        // A key generated and the CA checked: milliseconds of CPU, off the async workers.
        let r = tokio::task::spawn_blocking(move || kubeconfig_of(&pki_dir, &port_file, &identity.0, identity.1))
            .await
            .map_err(|e| Status::internal(format!("issuing the kubeconfig: {e}")))??;
        Ok(Response::new(r))
    }
}

/// What a kubeconfig needs (the `Kubeconfig` call): the host listener's port, recorded in
/// `port_file` by the provider that bound it, the CA of `pki_dir`, and a fresh client certificate
/// of `user` in `group` signed by it (`kubernetes-admin` of `system:masters`, or a node's).
pub fn kubeconfig_of(
    pki_dir: &std::path::Path,
    port_file: &std::path::Path,
    user: &str,
    group: &str,
) -> Result<KubeconfigResponse, Status> {
    let port: u16 = match std::fs::read_to_string(port_file) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Status::failed_precondition(format!(
                "{} holds {:?}, not the port of the API server's listener on 127.0.0.1: restart the controller (`sudo emu restart controller`), which records it again",
                port_file.display(),
                text.trim()
            ))
        })?,
        Err(e) => {
            return Err(Status::failed_precondition(format!(
                "the API server has no listener on the host's 127.0.0.1 (reading {}: {e}): restart the controller with `sudo emu restart controller`",
                port_file.display()
            )))
        }
    };
    let pki = crate::pki::ClusterPki::load(pki_dir).map_err(|e| Status::failed_precondition(format!("the cluster CA: {e}")))?;
    let (cert, key) =
        pki.client_cert(user, group).map_err(|e| Status::internal(format!("issuing the kubeconfig's client certificate: {e}")))?;
    Ok(KubeconfigResponse {
        server: format!("https://127.0.0.1:{port}"),
        certificate_authority: pki.ca_pem().to_string(),
        client_certificate: cert,
        client_key: key,
    })
}

fn type_of(t: &WatchEventType) -> EventType {
    match t {
        WatchEventType::Added => EventType::Added,
        WatchEventType::Modified => EventType::Modified,
        WatchEventType::Deleted => EventType::Deleted,
    }
}

fn key_of(r: &ObjectRef) -> Result<ObjectKey, Status> {
    let rk = kinds::by_kind(&r.kind).ok_or_else(|| Status::invalid_argument(format!("unknown kind {:?}", r.kind)))?;
    let namespace = if rk.namespaced {
        if r.namespace.is_empty() {
            "default".into()
        } else {
            r.namespace.clone()
        }
    } else {
        String::new()
    };
    Ok(ObjectKey { kind: rk.kind.to_string(), namespace, name: r.name.clone() })
}

/// `services`, `deployments.apps`: how the API server names a kind in its messages.
fn plural(key: &ObjectKey) -> String {
    kinds::by_kind(&key.kind).map(|rk| rk.qualified_plural()).unwrap_or_else(|| key.kind.to_lowercase())
}

fn not_found(key: &ObjectKey) -> Status {
    Status::not_found(format!("{} {:?} not found", plural(key), key.name))
}

/// The state of a cluster without nodes, its store in `dir`: what tests of the API (gRPC and
/// REST) exercise it on.
#[cfg(test)]
pub(crate) fn test_shared(dir: &std::path::Path) -> Shared {
    let store = crate::store::Store::open(&dir.join("store.redb")).unwrap();
    let config: emu_logic::cluster::ClusterConfig = serde_json::from_value(
        json!({"name": "t", "nodes": [], "fabricCidr": "172.18.0.0/16", "podCidr": "10.244.0.0/16", "nodePrefix": 24, "serviceCidr": "10.96.0.0/12"}),
    )
    .unwrap();
    Shared::new(store, config)
}

#[cfg(test)]
mod tests {
    use super::three_way_merge;
    use serde_json::json;

    /// Pod Security admission on the write path: the namespace's level as stored or as the
    /// same request writes it, after validation, on a pod's create and its significant update.
    #[test]
    fn new_pods_meet_their_namespaces_pod_security_level() {
        use super::{write_values, WriteMode};
        let dir = tempfile::tempdir().unwrap();
        let shared = super::test_shared(dir.path());
        let ns = |name: &str, level: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}});
        let pod = |ns: &str, container: serde_json::Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [container]}});
        let plain = json!({"name": "c", "image": "busybox"});
        let write =
            |docs: Vec<serde_json::Value>| write_values(&shared, docs, WriteMode::Apply, false).map(|_| ()).map_err(tonic::Status::from);
        let refused = write(vec![ns("locked", "restricted"), pod("locked", plain.clone())]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused
                .message()
                .starts_with("pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
            "{refused:?}"
        );
        // Nothing of the request was written; then the namespace alone, and a pod of it later.
        write(vec![ns("locked", "restricted")]).unwrap();
        assert_eq!(write(vec![pod("locked", plain.clone())]).unwrap_err().code(), tonic::Code::PermissionDenied);
        let confined = json!({"name": "c", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}});
        write(vec![pod("locked", confined)]).unwrap();
        // Validation's own refusal comes first.
        let privileged = json!({"name": "c", "image": "busybox", "securityContext": {"privileged": true}});
        let invalid = write(vec![ns("base", "baseline"), pod("base", privileged)]).unwrap_err();
        assert!(invalid
            .message()
            .starts_with("The Pod \"p\" is invalid: spec.containers[0].securityContext.privileged: Forbidden: emu does not support"));
        write(vec![ns("base", "baseline"), pod("base", plain)]).unwrap();
    }

    /// The warnings of a write, per object: a pod and a template under the warn level, pods
    /// already in a namespace whose enforce level gets stricter; a pod's image update under
    /// enforce is checked, a label's is not.
    #[test]
    fn writes_answer_pod_securitys_warnings() {
        use super::{write_values, WriteMode};
        let dir = tempfile::tempdir().unwrap();
        let shared = super::test_shared(dir.path());
        let ns =
            |labels: serde_json::Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": labels}});
        let pod = |name: &str, image: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"}, "spec": {"containers": [{"name": "c", "image": image}]}});
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}});
        let write = |docs: Vec<serde_json::Value>, mode| -> Result<Vec<Vec<String>>, tonic::Status> {
            Ok(write_values(&shared, docs, mode, false).map_err(tonic::Status::from)?.into_iter().map(|w| w.warnings).collect())
        };
        let warned = write(
            vec![ns(json!({"pod-security.kubernetes.io/warn": "restricted"})), pod("a", "busybox"), deployment, config],
            WriteMode::Apply,
        )
        .unwrap();
        let would = "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
        assert_eq!(warned, [vec![], vec![would.to_string()], vec![would.to_string()], vec![]]);
        // A second pod, then the namespace enforces restricted: both pods are named, grouped.
        write(vec![pod("b", "busybox")], WriteMode::Create).unwrap();
        let relabelled = write(vec![ns(json!({"pod-security.kubernetes.io/enforce": "restricted"}))], WriteMode::Replace).unwrap();
        assert_eq!(
            relabelled,
            [vec![
                "existing pods in namespace \"apps\" violate the new PodSecurity enforce level \"restricted:latest\"".to_string(),
                "a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
                    .into(),
            ]]
        );
        // The same labels again, or a laxer level: nothing to say.
        assert_eq!(
            write(vec![ns(json!({"pod-security.kubernetes.io/enforce": "restricted"}))], WriteMode::Replace).unwrap(),
            [Vec::<String>::new()]
        );
        // Enforce now refuses an image change of the pods (no warning level is left), not a label's.
        let mut labelled = pod("a", "busybox");
        labelled["metadata"]["labels"] = json!({"x": "y"});
        assert_eq!(write(vec![labelled], WriteMode::Apply).unwrap(), [Vec::<String>::new()]);
        let refused = write(vec![pod("a", "busybox:2")], WriteMode::Apply).unwrap_err();
        assert!(refused.message().starts_with("pods \"a\" is forbidden: violates PodSecurity \"restricted:latest\""), "{refused:?}");
    }

    #[test]
    fn the_kubeconfig_names_the_recorded_port_and_an_admin_of_the_cluster_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (pki_dir, port_file) = (dir.path().join("pki"), dir.path().join("api-port"));
        let message = |r: Result<emu_proto::KubeconfigResponse, tonic::Status>| r.unwrap_err().message().to_string();
        let e = message(super::kubeconfig_of(&pki_dir, &port_file, crate::pki::ADMIN_USER, crate::pki::ADMIN_GROUP));
        assert!(e.contains("no listener on the host's 127.0.0.1") && e.contains("sudo emu restart controller"), "{e}");
        std::fs::write(&port_file, "41234\n").unwrap();
        let e = message(super::kubeconfig_of(&pki_dir, &port_file, crate::pki::ADMIN_USER, crate::pki::ADMIN_GROUP));
        assert!(e.starts_with("the cluster CA: reading ") && e.contains("ca.crt"), "{e}");
        let ca = crate::pki::ClusterPki::load_or_create(&pki_dir).unwrap();
        let k = super::kubeconfig_of(&pki_dir, &port_file, crate::pki::ADMIN_USER, crate::pki::ADMIN_GROUP).unwrap();
        assert_eq!(k.server, "https://127.0.0.1:41234");
        assert_eq!(k.certificate_authority, ca.ca_pem());
        assert!(k.client_certificate.starts_with("-----BEGIN CERTIFICATE-----"), "{}", k.client_certificate);
        assert!(k.client_key.contains("PRIVATE KEY"));
        std::fs::write(&port_file, "x").unwrap();
        let e = message(super::kubeconfig_of(&pki_dir, &port_file, crate::pki::ADMIN_USER, crate::pki::ADMIN_GROUP));
        assert!(e.contains("holds \"x\""), "{e}");
    }

    mod finalizers {
        use super::super::*;

        fn api(dir: &std::path::Path) -> ApiService {
            ApiService { shared: crate::api::test_shared(dir) }
        }

        fn fault_ref() -> ObjectRef {
            ObjectRef { kind: "Fault".into(), namespace: String::new(), name: "delay-1".into() }
        }

        async fn get(api: &ApiService) -> Option<Value> {
            api.get(Request::new(fault_ref())).await.ok().map(|o| serde_json::from_str(&o.into_inner().json).unwrap())
        }

        async fn replace(api: &ApiService, v: &Value) -> Result<(), Status> {
            api.replace(Request::new(ReplaceRequest { objects: vec![Object { json: v.to_string() }] })).await.map(|_| ())
        }

        #[tokio::test]
        async fn an_object_over_3_mib_is_refused_and_nothing_of_its_apply_is_stored() {
            let dir = tempfile::tempdir().unwrap();
            let api = api(dir.path());
            let cm = |name: &str, bytes: usize| {
                let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default",
                    "annotations": {"a": "x".repeat(bytes)}}});
                Object { json: v.to_string() }
            };
            let objects = vec![cm("small", 10), cm("huge", MAX_OBJECT_BYTES)];
            let e = api.apply(Request::new(ApplyRequest { objects, create_only: false, dry_run: false })).await.unwrap_err();
            assert_eq!((e.code(), e.message()), (tonic::Code::ResourceExhausted, "Request entity too large: limit is 3145728"));
            let r = ObjectRef { kind: "ConfigMap".into(), namespace: "default".into(), name: "small".into() };
            assert!(api.get(Request::new(r)).await.is_err(), "nothing of the apply stored");
        }

        #[tokio::test]
        async fn a_deleted_object_stays_until_its_finalizers_are_taken_off() {
            let dir = tempfile::tempdir().unwrap();
            let api = api(dir.path());
            let fault = json!({"apiVersion": "emu.dev/v1", "kind": "Fault",
                "metadata": {"name": "delay-1", "finalizers": ["emu.dev/agent-node-1", "emu.dev/agent-node-2"]},
                "spec": {"netem": {"node": "node-1", "delay": "100ms"}}});
            let objects = vec![Object { json: fault.to_string() }];
            api.apply(Request::new(ApplyRequest { objects, create_only: true, dry_run: false })).await.unwrap();
            let before = get(&api).await.unwrap();

            // Deleted (even with force): marked, not removed.
            api.delete(Request::new(DeleteRequest { r#ref: Some(fault_ref()), force: true, grace_period_seconds: -1 })).await.unwrap();
            let marked = get(&api).await.expect("still there while it has finalizers");
            assert!(object::is_terminating(&marked));
            assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);

            // A status written from an older version conflicts.
            let mut stale =
                json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": before["metadata"].clone(), "status": {"x": 1}});
            stale["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"].clone();
            let err = api
                .update_status(Request::new(UpdateStatusRequest { object: Some(Object { json: stale.to_string() }) }))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::Aborted);

            // A PUT keeps the deletion marks; taking off the last finalizer completes the deletion.
            let mut one = marked.clone();
            one["metadata"]["finalizers"] = json!(["emu.dev/agent-node-2"]);
            one["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
            replace(&api, &one).await.unwrap();
            let left = get(&api).await.expect("one finalizer left");
            assert_eq!(left["metadata"]["deletionTimestamp"], marked["metadata"]["deletionTimestamp"]);
            let mut none = left.clone();
            none["metadata"]["finalizers"] = json!([]);
            assert_eq!(replace(&api, &one).await.unwrap_err().code(), tonic::Code::Aborted, "an older version conflicts");
            replace(&api, &none).await.unwrap();
            assert_eq!(get(&api).await, None);
        }
    }

    #[test]
    fn apply_keeps_system_fields_and_drops_removed_ones() {
        let live = json!({"spec": {"nodeName": "n1", "replicas": 2, "paused": true, "template": {"a": 1}}, "status": {"phase": "Running"}});
        let last = json!({"spec": {"replicas": 2, "paused": true}});
        let desired = json!({"spec": {"replicas": 3, "template": {"b": 2}}});
        let merged = three_way_merge(&live, Some(&last), &desired);
        assert_eq!(
            merged,
            json!({"spec": {"nodeName": "n1", "replicas": 3, "template": {"a": 1, "b": 2}}, "status": {"phase": "Running"}})
        );
    }

    #[test]
    fn lists_are_replaced() {
        let merged = three_way_merge(&json!({"l": [1, 2, 3]}), None, &json!({"l": [4]}));
        assert_eq!(merged, json!({"l": [4]}));
    }
}
