//! Writes over the REST API: POST (create, and a pod's eviction), PUT (update, of the object,
//! its `status` or its `scale`), PATCH (JSON, merge, strategic merge and server-side apply),
//! DELETE of an object or of a collection, as kube-apiserver answers them, so that the real
//! kubectl can change the cluster.
//!
//! The write itself is the gRPC API's ([`crate::api::write_values`], [`crate::api::delete_object`],
//! [`crate::api::scale_object`], [`crate::api::write_status`]): the same admission, merge, node
//! port and ClusterIP allocation and store checks whichever way a change comes in. This module
//! reads the request (body, options, patch) and words the answer and the errors as
//! kube-apiserver does.
//!
//! Field managers: every write records its manager in `metadata.managedFields` as
//! kube-apiserver does ([`crate::managed_fields`] decides, this module reads the request): the
//! `fieldManager` parameter, else the program name of the User-Agent (`kubectl`). A create,
//! PUT, non-apply PATCH, a scale and a status write are Updates, which take the fields they
//! change; an apply patch (server-side apply) is merged by the structured-merge rules, answers
//! 409 with the fields another manager owns and it would change unless `force=true`, and
//! removes the fields its manager no longer applies. (The controllers and agents write the
//! store directly and record nothing.)

pub(crate) mod protobuf;

use super::status::{ApiError, Cause, Details, FieldError};
use super::{key, list, request::query_param, scale, Call, Reply, Sent};
use crate::api::{self, WriteError, WriteMode};
use crate::managed_fields::{self, Writer};
use crate::store::ObjectKey;
use emu_api::admission::AdmissionError;
use emu_api::field::FieldErrorKind;
use emu_api::patch::{self, PatchType};
use emu_api::selector::Selector;
use emu_api::typed;
use emu_api::{object, validation};
use serde_json::{json, Value};
use tonic::Code;

/// A write request: the verb's arm of [`super::serve`].
pub(super) fn serve(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let info = call.info;
    match (info.verb.as_str(), info.subresource.as_str()) {
        ("create", "eviction") => evict(call),
        ("create", "") if info.name.is_empty() => create(call, sent),
        ("update", "") if !info.name.is_empty() => update(call, sent),
        ("update", "status") => update_status(call, sent),
        ("update", "scale") => update_scale(call, sent),
        ("patch", "" | "status" | "scale") if !info.name.is_empty() => patch(call, sent),
        ("delete", "") if !info.name.is_empty() => delete(call, sent),
        ("deletecollection", "") | ("delete", "") => delete_collection(call, sent),
        (verb, "") => Err(ApiError::method_not_supported(&info.group, &info.resource, verb)),
        (verb, sub) => Err(ApiError::method_not_supported(&info.group, &format!("{}/{sub}", info.resource), verb)),
    }
}

/// `fieldValidation`: what to do with fields the kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    /// kube-apiserver's default: accepted, with a warning per field (emu does not make those
    /// warnings yet, so Warn is Ignore here).
    Warn,
    Strict,
}

/// The options every write reads: `dryRun`, `fieldValidation`, `fieldManager`, `force`.
struct WriteOptions {
    dry_run: bool,
    validation: FieldValidation,
    field_manager: String,
    force: bool,
}

impl WriteOptions {
    /// The manager a write records: `fieldManager`, else kube-apiserver's default, the
    /// User-Agent's program name (`kubectl/v1.32.0 (linux/amd64) …` → `kubectl`).
    fn manager(&self, call: &Call) -> String {
        if self.field_manager.is_empty() {
            managed_fields::manager_from_user_agent(&call.info.user_agent)
        } else {
            self.field_manager.clone()
        }
    }
}

/// Who a write is by, for `metadata.managedFields`: its manager, the endpoint's version, the
/// subresource written and the request's time.
struct Recorder {
    manager: String,
    api_version: String,
    subresource: &'static str,
    now: String,
    /// A create's own fields (see [`managed_fields::update`]).
    requested: Option<managed_fields::FieldSet>,
}

impl Recorder {
    fn new(call: &Call, options: &WriteOptions, subresource: &'static str) -> Recorder {
        Recorder {
            manager: options.manager(call),
            api_version: call.rk.api_version(),
            subresource,
            now: emu_api::time::rfc3339(call.now),
            requested: None,
        }
    }

    fn writer(&self) -> Writer<'_> {
        Writer { manager: &self.manager, api_version: &self.api_version, subresource: self.subresource, now: &self.now }
    }

    /// An Update's stamp: the fields it changes move to its manager.
    fn update(&self, live: Option<&Value>, new: &mut Value) {
        managed_fields::update(live, new, self.writer(), self.requested.as_ref());
    }
}

fn write_options(call: &Call, options_kind: &str) -> Result<WriteOptions, ApiError> {
    let q = &call.query;
    let mut errors = Vec::new();
    let dry_run = match query_param(q, "dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            errors.push(FieldError {
                reason: "FieldValueNotSupported",
                field: "dryRun",
                body: format!("Unsupported value: {other:?}: supported values: \"All\""),
            });
            false
        }
    };
    let validation = match query_param(q, "fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            errors.push(FieldError {
                reason: "FieldValueNotSupported",
                field: "fieldValidation",
                body: format!("Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""),
            });
            FieldValidation::Warn
        }
    };
    let field_manager = query_param(q, "fieldManager").unwrap_or("").to_string();
    if field_manager.chars().count() > 128 {
        errors.push(FieldError {
            reason: "FieldValueTooLong",
            field: "fieldManager",
            body: "Too long: may not be more than 128 bytes".into(),
        });
    }
    let force = match query_param(q, "force") {
        None | Some("") | Some("false") => false,
        Some(_) => true,
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", options_kind, "", &errors));
    }
    Ok(WriteOptions { dry_run, validation, field_manager, force })
}

/// apimachinery's `summarizeData`: the first 30 bytes of a body for an error message.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let cut = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => format!("{}{more}", cut.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// A create's or update's body: a JSON object of this endpoint's kind, with kind and apiVersion
/// defaulted from the endpoint as kube-apiserver's decoder does.
fn decode_body(call: &Call, sent: &Sent) -> Result<Value, ApiError> {
    let rk = call.rk;
    let unrecognized = |why: String| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {why} ({})",
            rk.kind,
            summarize(sent.body)
        ))
    };
    let media = sent.content_type.split(';').next().unwrap_or("").trim();
    let decoded = if media == protobuf::MEDIA_TYPE {
        protobuf::decode(rk.kind, sent.body).map_err(|e| {
            unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, {} (for ConfigMap, Secret, Namespace, Deployment, Service, Job, CronJob and Ingress: {e})",
                protobuf::MEDIA_TYPE
            ))
        })
    } else {
        serde_json::from_slice(sent.body).map_err(|e| {
            let why = if e.is_eof() { "unexpected end of JSON input".to_string() } else { e.to_string() };
            unrecognized(format!("couldn't get version/kind; json parse error: {why}"))
        })
    };
    let mut v: Value = decoded?;
    let Some(fields) = v.as_object_mut() else {
        return Err(unrecognized("couldn't get version/kind; json parse error: the body is not a JSON object".into()));
    };
    let expected = rk.api_version();
    let api_version = fields.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
    if !api_version.is_empty() && api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    let kind = fields.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    if !kind.is_empty() && kind != rk.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {}: no kind {kind:?} is registered for the endpoint of {}",
            rk.version, rk.kind, rk.kind
        )));
    }
    fields.insert("apiVersion".into(), json!(expected));
    fields.insert("kind".into(), json!(rk.kind));
    if !fields.get("metadata").is_some_and(Value::is_object) {
        fields.insert("metadata".into(), json!({}));
    }
    Ok(v)
}

/// The namespace (and for an update the name) of the URL put on the object, or kube-apiserver's
/// 400 when the body says otherwise.
fn place(call: &Call, v: &mut Value, with_name: bool) -> Result<(), ApiError> {
    let info = call.info;
    if call.rk.namespaced {
        let body_ns = object::namespace(v).to_string();
        if !body_ns.is_empty() && body_ns != info.namespace {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        object::metadata_mut(v).insert("namespace".into(), json!(info.namespace));
    }
    if with_name {
        let body_name = object::name(v).to_string();
        if !body_name.is_empty() && body_name != info.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                info.name
            )));
        }
        object::metadata_mut(v).insert("name".into(), json!(info.name));
    }
    Ok(())
}

/// The fields of `v` its kind does not have, as kube-apiserver's strict decoder names them
/// (`spec.foo`, `spec.template.spec.containers[0].foo`): what a decode into the kind's type
/// drops. Kinds emu keeps as JSON (Fault) have none.
pub fn unknown_fields(v: &Value) -> Vec<String> {
    let Ok(decoded) = typed::Object::decode(object::kind(v), v) else { return Vec::new() };
    let mut out = Vec::new();
    dropped(v, &decoded.to_json(), "", &mut out);
    out
}

fn dropped(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (name, value) in s {
                let at = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                match k.get(name) {
                    Some(kv) => dropped(value, kv, &at, out),
                    // A null is Go's zero value, not an unknown field.
                    None if value.is_null() => {}
                    None => out.push(at),
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, (sv, kv)) in s.iter().zip(k).enumerate() {
                dropped(sv, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn strict_decoding(unknown: &[String]) -> String {
    let fields: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    format!("strict decoding error: {}", fields.join(", "))
}

/// A create's or update's check of unknown fields: kube-apiserver's 400 when Strict.
fn check_fields(call: &Call, v: &Value, validation: FieldValidation) -> Result<(), ApiError> {
    let unknown = unknown_fields(v);
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        let (kind, version) = (call.rk.kind, call.rk.version);
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {}",
            strict_decoding(&unknown)
        )));
    }
    Ok(())
}

/// A failed write in kube-apiserver's words: admission's field errors as a 422 with its causes,
/// the store's and the allocators' errors by their gRPC code.
fn write_error(call: &Call, name: &str, e: WriteError) -> ApiError {
    let info = call.info;
    match e {
        WriteError::Admission(AdmissionError::NamespaceNotFound(ns)) => ApiError::not_found("", "namespaces", &ns),
        WriteError::Admission(AdmissionError::Invalid(invalid)) => invalid_error(&info.group, &invalid),
        WriteError::Admission(e @ (AdmissionError::BadRequest(_) | AdmissionError::NoMatch { .. })) => ApiError::bad_request(e.to_string()),
        WriteError::Status(s) => status_error(call, name, &s),
    }
}

/// `apierrors.NewInvalid` from admission's [`validation::Invalid`].
fn invalid_error(group: &str, invalid: &validation::Invalid) -> ApiError {
    let causes: Vec<Cause> = invalid
        .causes
        .iter()
        .map(|c| {
            let text = c.to_string();
            let body = text.strip_prefix(&format!("{}: ", c.field)).unwrap_or(&text).to_string();
            Cause { reason: cause_reason(&c.kind), message: body, field: c.field.clone() }
        })
        .collect();
    invalid_with_causes(group, &invalid.kind, &invalid.name, causes)
}

fn invalid_with_causes(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
    let texts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    let all = if texts.len() == 1 { texts[0].clone() } else { format!("[{}]", texts.join(", ")) };
    let qualified_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{qualified_kind} {name:?} is invalid: {all}"),
        details: Some(Box::new(Details { name: name.into(), group: group.into(), kind: kind.into(), causes })),
    }
}

/// A field error's type as a Status cause's `reason` (apimachinery's `field.ErrorType`).
fn cause_reason(kind: &FieldErrorKind) -> &'static str {
    match kind {
        FieldErrorKind::Required => "FieldValueRequired",
        FieldErrorKind::NotFound(_) => "FieldValueNotFound",
        FieldErrorKind::Invalid(_) => "FieldValueInvalid",
        FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
        FieldErrorKind::Unsupported(..) => "FieldValueNotSupported",
        FieldErrorKind::Forbidden => "FieldValueForbidden",
        FieldErrorKind::TooLong => "FieldValueTooLong",
    }
}

/// The gRPC status of a shared write as the REST API's Status. The allocators word their
/// rejections as kubectl prints them (`The Service "x" is invalid: spec.clusterIPs: …`); that
/// text is read back into the one field error it holds, so kubectl prints the same line.
fn status_error(call: &Call, name: &str, s: &tonic::Status) -> ApiError {
    let info = call.info;
    let message = s.message().to_string();
    match s.code() {
        Code::NotFound => {
            let mut e = ApiError::not_found(&info.group, &info.resource, name);
            e.message = message;
            e
        }
        Code::AlreadyExists => named(call, name, 409, "AlreadyExists", message),
        Code::Aborted => conflict(call, name, message),
        Code::PermissionDenied => ApiError::forbidden(message, &info.group, &info.resource, name),
        Code::InvalidArgument => {
            let prefix = format!("The {} {name:?} is invalid: ", call.rk.kind);
            match message.strip_prefix(&prefix).and_then(|rest| rest.split_once(": ")) {
                Some((field, body)) if !field.contains(' ') => {
                    let reason = if body.starts_with("Required value") {
                        "FieldValueRequired"
                    } else if body.starts_with("Forbidden") {
                        "FieldValueForbidden"
                    } else {
                        "FieldValueInvalid"
                    };
                    let cause = Cause { reason, message: body.to_string(), field: field.to_string() };
                    invalid_with_causes(&info.group, call.rk.kind, name, vec![cause])
                }
                _ => ApiError { code: 422, reason: "Invalid", message, details: None },
            }
        }
        _ => ApiError::internal(message),
    }
}

fn conflict(call: &Call, name: &str, message: String) -> ApiError {
    named(call, name, 409, "Conflict", message)
}

/// An error about the object of the request: details name it and its resource.
fn named(call: &Call, name: &str, code: u16, reason: &'static str, message: String) -> ApiError {
    let info = call.info;
    let details = Details { name: name.into(), group: info.group.clone(), kind: info.resource.clone(), ..Default::default() };
    ApiError { code, reason, message, details: Some(Box::new(details)) }
}

fn object_reply(code: u16, v: &Value, pretty: bool) -> Reply {
    Reply::new(code, "application/json", super::status::to_json(v, pretty))
}

/// The answer to a write of one object: the object as written, with the write's warnings.
fn written_reply(code: u16, mut w: Vec<api::Written>, pretty: bool) -> Result<Reply, ApiError> {
    let w = w.pop().ok_or_else(|| ApiError::internal("the write answered no object"))?;
    Ok(Reply { warnings: w.warnings, ..object_reply(code, &w.object, pretty) })
}

/// POST of a collection: a new object.
fn create(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let options = write_options(call, "CreateOptions")?;
    let mut v = decode_body(call, &sent)?;
    place(call, &mut v, false)?;
    check_fields(call, &v, options.validation)?;
    let name = object::name(&v).to_string();
    let requested = Some(managed_fields::fields_of(&v, ""));
    let by = Recorder { requested, ..Recorder::new(call, &options, "") };
    let w = api::write_values_stamped(call.shared, vec![v], WriteMode::Create, options.dry_run, &|l, n| by.update(l, n))
        .map_err(|e| write_error(call, &name, e))?;
    written_reply(201, w, call.pretty)
}

/// Kinds whose PUT of a missing object creates it (their registry strategy's
/// `AllowCreateOnUpdate`); every other kind answers 404.
fn creates_on_update(kind: &str) -> bool {
    matches!(kind, "Endpoints" | "Event")
}

/// PUT of an object: replaced whole (what a PUT cannot change is kept, see
/// [`crate::api::write_values`]); a stale `metadata.resourceVersion` is a 409.
fn update(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let options = write_options(call, "UpdateOptions")?;
    let mut v = decode_body(call, &sent)?;
    place(call, &mut v, true)?;
    check_fields(call, &v, options.validation)?;
    let name = call.info.name.clone();
    let exists = call.shared.store.get_shared(&key(call.rk, call.info)).is_some();
    let (mode, code) = match (exists, creates_on_update(call.rk.kind)) {
        (true, _) => (WriteMode::Replace, 200),
        (false, true) => (WriteMode::Create, 201),
        (false, false) => return Err(ApiError::not_found(&call.info.group, &call.info.resource, &name)),
    };
    let by = Recorder::new(call, &options, "");
    let w = api::write_values_stamped(call.shared, vec![v], mode, options.dry_run, &|l, n| by.update(l, n))
        .map_err(|e| write_error(call, &name, e))?;
    written_reply(code, w, call.pretty)
}

/// PUT of `status`: the sent object's status on the stored object.
fn update_status(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let options = write_options(call, "UpdateOptions")?;
    let mut v = decode_body(call, &sent)?;
    place(call, &mut v, true)?;
    write_status(call, &v, &options)
}

fn write_status(call: &Call, v: &Value, options: &WriteOptions) -> Result<Reply, ApiError> {
    let name = &call.info.name;
    let live =
        call.shared.store.get(&key(call.rk, call.info)).ok_or_else(|| ApiError::not_found(&call.info.group, &call.info.resource, name))?;
    if options.dry_run {
        let mut out = live;
        out["status"] = v.get("status").cloned().unwrap_or(json!({}));
        return Ok(object_reply(200, &out, call.pretty));
    }
    let by = Recorder::new(call, options, "status");
    let stored = api::write_status_stamped(call.shared, v, Some(&|l, n| by.update(l, n))).map_err(|s| status_error(call, name, &s))?;
    Ok(object_reply(200, &stored, call.pretty))
}

/// PUT of `scale`: an `autoscaling/v1` Scale whose `spec.replicas` is written.
fn update_scale(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let options = write_options(call, "UpdateOptions")?;
    let v: Value = serde_json::from_slice(sent.body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type Scale): couldn't get version/kind; json parse error: {e} ({})",
            summarize(sent.body)
        ))
    })?;
    write_scale(call, &v, &options)
}

fn write_scale(call: &Call, v: &Value, options: &WriteOptions) -> Result<Reply, ApiError> {
    let info = call.info;
    let k = key(call.rk, info);
    let live = call.shared.store.get(&k).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, &info.name))?;
    let body_name = object::name(v);
    if !body_name.is_empty() && body_name != info.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            info.name
        )));
    }
    let replicas = object::at(v, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        let cause = Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            field: "spec.replicas".into(),
        };
        return Err(invalid_with_causes("autoscaling", "Scale", &info.name, vec![cause]));
    }
    if options.dry_run {
        let mut out = live;
        out["spec"]["replicas"] = json!(replicas);
        return Ok(object_reply(200, &scale(&out), call.pretty));
    }
    let rv = object::str_at(v, &["metadata", "resourceVersion"]);
    // Recorded on the object in its own version, as kube-apiserver's scale handler does.
    let by =
        Recorder { api_version: object::str_at(&live, &["apiVersion"]).unwrap_or("").to_string(), ..Recorder::new(call, options, "scale") };
    let stored = api::scale_object_stamped(call.shared, &k, replicas, rv, &|l, n| by.update(l, n))
        .map_err(|s| status_error(call, &info.name, &s))?;
    Ok(object_reply(200, &scale(&stored), call.pretty))
}

/// What a PATCH's Content-Type asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    Patch(PatchType),
    /// Server-side apply.
    Apply,
}

fn patch_kind(content_type: &str) -> Result<PatchKind, ApiError> {
    // Parameters after `;` (a charset) do not change the type.
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match base.as_str() {
        "application/json-patch+json" => Ok(PatchKind::Patch(PatchType::Json)),
        "application/merge-patch+json" => Ok(PatchKind::Patch(PatchType::Merge)),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Patch(PatchType::Strategic)),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
        _ => Err(unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json".into(),
        )),
    }
}

/// kube-apiserver's 415 for a body in a format it does not read.
fn unsupported_media_type(message: String) -> ApiError {
    ApiError { code: 415, reason: "UnsupportedMediaType", message, details: Some(Box::default()) }
}

/// kube-apiserver's 422 for a patch that does not apply or gives an object with unknown fields
/// under Strict: an Invalid with no kind and no name, its one cause on the field `patch`.
fn invalid_patch(value: &str, why: &str) -> ApiError {
    let body = format!("Invalid value: {}: {why}", emu_api::field::go_quote(value));
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!(" \"\" is invalid: patch: {body}"),
        details: Some(Box::new(Details {
            causes: vec![Cause { reason: "FieldValueInvalid", message: body, field: "patch".into() }],
            ..Default::default()
        })),
    }
}

/// Applies a patch as kube-apiserver does: a JSON patch that does not apply is a 422 on the
/// field `patch`, a merge or strategic patch that does not a 400.
fn patched(ty: PatchType, live: &Value, patch_body: &[u8]) -> Result<Value, ApiError> {
    let doc: Value = serde_json::from_slice(patch_body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    patch::apply(ty, live, &doc).map_err(|e| match ty {
        PatchType::Json => invalid_patch(&String::from_utf8_lossy(patch_body), &e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    })
}

/// PATCH of an object, its `status` or its `scale`. A patch is applied to the object as it is
/// now and written only if the object did not change meanwhile; else it is applied again, as
/// kube-apiserver retries a patch on a conflict.
fn patch(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let info = call.info;
    let kind = patch_kind(sent.content_type)?;
    let options = write_options(call, "PatchOptions")?;
    if kind == PatchKind::Apply && options.field_manager.is_empty() {
        let e =
            FieldError { reason: "FieldValueRequired", field: "fieldManager", body: "Required value: is required for apply patch".into() };
        return Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", &[e]));
    }
    if kind != PatchKind::Apply && options.force {
        let e = FieldError {
            reason: "FieldValueForbidden",
            field: "force",
            body: "Forbidden: may not be specified for non-apply patch".into(),
        };
        return Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", &[e]));
    }
    let k = key(call.rk, info);
    for _attempt in 0..5 {
        let Some(live) = call.shared.store.get(&k) else {
            return match kind {
                PatchKind::Apply if info.subresource.is_empty() => apply_create(call, &sent, &options),
                _ => Err(ApiError::not_found(&info.group, &info.resource, &info.name)),
            };
        };
        let result = match (kind, info.subresource.as_str()) {
            (PatchKind::Patch(ty), "scale") => {
                let new = patched(ty, &scale(&live), sent.body)?;
                write_scale(call, &new, &options)
            }
            (PatchKind::Patch(ty), "status") => {
                let new = patched(ty, &live, sent.body)?;
                write_status(call, &new, &options)
            }
            (PatchKind::Patch(ty), _) => {
                let new = patched(ty, &live, sent.body)?;
                let by = Recorder::new(call, &options, "");
                patch_write(call, &new, options.validation, options.dry_run, &|l, n| by.update(l, n))
            }
            (PatchKind::Apply, "") => {
                let applied = apply_body(call, &sent)?;
                if options.validation == FieldValidation::Strict {
                    let unknown = unknown_fields(&applied);
                    if !unknown.is_empty() {
                        return Err(ApiError::bad_request(format!("error strict decoding YAML: {}", strict_decoding(&unknown))));
                    }
                }
                // The applied configuration merged into the live object by the structured-merge
                // rules, managedFields included; the write records nothing more.
                let by = Recorder::new(call, &options, "");
                let writer = Writer { api_version: object::str_at(&applied, &["apiVersion"]).unwrap_or(&by.api_version), ..by.writer() };
                let new = managed_fields::apply(&live, &applied, writer, options.force).map_err(|c| apply_conflict(&c))?;
                patch_write(call, &new, FieldValidation::Ignore, options.dry_run, &|_, _| {})
            }
            (PatchKind::Apply, sub) => Err(ApiError::method_not_supported(&info.group, &format!("{}/{sub}", info.resource), "apply")),
        };
        match result {
            // A stale write is retried; an apply's conflict with other managers (its causes) is not.
            Err(e) if e.code == 409 && e.reason == "Conflict" && !has_causes(&e) && !patch_sets_resource_version(&sent) => continue,
            other => return other,
        }
    }
    Err(ApiError::internal(format!("the patch of {} {:?} kept conflicting with other writes", info.resource, info.name)))
}

fn has_causes(e: &ApiError) -> bool {
    e.details.as_ref().is_some_and(|d| !d.causes.is_empty())
}

/// kube-apiserver's 409 for an apply that would change fields other managers own: details
/// with only the causes, one per field (`FieldManagerConflict`).
fn apply_conflict(c: &managed_fields::Conflicts) -> ApiError {
    let causes = c.causes().into_iter().map(|(message, field)| Cause { reason: "FieldManagerConflict", message, field }).collect();
    ApiError { code: 409, reason: "Conflict", message: c.message(), details: Some(Box::new(Details { causes, ..Default::default() })) }
}

/// Whether the patch carries its own resourceVersion (then a conflict is the client's, not
/// retried): a merge patch's `metadata.resourceVersion`, a JSON patch operation on it.
fn patch_sets_resource_version(sent: &Sent) -> bool {
    match serde_json::from_slice::<Value>(sent.body) {
        Ok(Value::Array(ops)) => ops.iter().any(|op| op["path"] == "/metadata/resourceVersion"),
        Ok(doc) => object::at(&doc, &["metadata", "resourceVersion"]).is_some(),
        Err(_) => false,
    }
}

/// The patched object written as a PUT would be.
fn patch_write(call: &Call, new: &Value, validation: FieldValidation, dry_run: bool, stamp: api::Stamp) -> Result<Reply, ApiError> {
    let name = &call.info.name;
    if validation == FieldValidation::Strict {
        let unknown = unknown_fields(new);
        if !unknown.is_empty() {
            return Err(invalid_patch(&emu_api::json::canonical_json(new), &strict_decoding(&unknown)));
        }
    }
    if object::name(new) != name || (call.rk.namespaced && object::namespace(new) != call.info.namespace) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object::name(new)
        )));
    }
    let w = api::write_values_stamped(call.shared, vec![new.clone()], WriteMode::Replace, dry_run, stamp)
        .map_err(|e| write_error(call, name, e))?;
    written_reply(200, w, call.pretty)
}

/// An apply patch's body: the configuration as JSON (what kubectl sends; YAML bodies are not
/// read), placed at the URL's name and namespace.
fn apply_body(call: &Call, sent: &Sent) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(sent.body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("error decoding YAML: the applied configuration is not an object"));
    }
    place(call, &mut v, true)?;
    Ok(v)
}

/// Server-side apply of an object that does not exist: a create (201).
fn apply_create(call: &Call, sent: &Sent, options: &WriteOptions) -> Result<Reply, ApiError> {
    let v = apply_body(call, sent)?;
    if options.validation == FieldValidation::Strict {
        let unknown = unknown_fields(&v);
        if !unknown.is_empty() {
            return Err(ApiError::bad_request(format!("error strict decoding YAML: {}", strict_decoding(&unknown))));
        }
    }
    let name = call.info.name.clone();
    let by = Recorder::new(call, options, "");
    let writer = Writer { api_version: object::str_at(&v, &["apiVersion"]).unwrap_or(&by.api_version), ..by.writer() };
    let v = managed_fields::apply(&json!({}), &v, writer, options.force).map_err(|c| apply_conflict(&c))?;
    let w = api::write_values(call.shared, vec![v], WriteMode::Create, options.dry_run).map_err(|e| write_error(call, &name, e))?;
    written_reply(201, w, call.pretty)
}

/// `DeleteOptions`, from the body (kubectl's) or the query.
#[derive(Debug, Default, PartialEq, Eq)]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn delete_options(call: &Call, sent: &Sent) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions::default();
    if !sent.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(sent.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type DeleteOptions): couldn't get version/kind; json parse error: {e} ({})",
                summarize(sent.body)
            ))
        })?;
        o.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation = body.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
        o.uid = object::str_at(&body, &["preconditions", "uid"]).map(str::to_string);
        o.resource_version = object::str_at(&body, &["preconditions", "resourceVersion"]).map(str::to_string);
        o.dry_run = body.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|x| x == "All"));
    }
    let q = &call.query;
    if let Some(g) = query_param(q, "gracePeriodSeconds") {
        o.grace_period_seconds = Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?);
    }
    if let Some(p) = query_param(q, "propagationPolicy") {
        o.propagation = Some(p.to_string());
    }
    if query_param(q, "dryRun") == Some("All") {
        o.dry_run = true;
    }
    let mut errors = Vec::new();
    if let Some(p) = o.propagation.as_deref().filter(|p| !matches!(*p, "Orphan" | "Background" | "Foreground")) {
        errors.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "propagationPolicy",
            body: format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
        });
    }
    if o.grace_period_seconds.is_some_and(|g| g < 0) {
        errors.push(FieldError { reason: "FieldValueInvalid", field: "gracePeriodSeconds", body: "Invalid value: must be >= 0".into() });
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", &errors));
    }
    Ok(o)
}

/// Kinds whose delete answers the object (their registry's `ReturnDeletedObject`); the others
/// answer a Status Success naming what was deleted.
fn returns_deleted_object(kind: &str) -> bool {
    matches!(kind, "Pod" | "Service" | "Namespace" | "Node")
}

/// DELETE of an object.
fn delete(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let info = call.info;
    let options = delete_options(call, &sent)?;
    let k = key(call.rk, info);
    let live = call.shared.store.get(&k).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, &info.name))?;
    let precondition = |what: &str, wanted: &str, have: &str| {
        conflict(call, &info.name, format!(
            "Operation cannot be fulfilled on {} {:?}: Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {have}",
            super::status::qualified(&info.group, &info.resource),
            info.name
        ))
    };
    if let Some(uid) = options.uid.as_deref().filter(|u| *u != object::uid(&live)) {
        return Err(precondition("UID", uid, object::uid(&live)));
    }
    let live_rv = object::str_at(&live, &["metadata", "resourceVersion"]).unwrap_or("");
    if let Some(rv) = options.resource_version.as_deref().filter(|rv| *rv != live_rv) {
        return Err(precondition("ResourceVersion", rv, live_rv));
    }
    if options.dry_run {
        return Ok(deleted_reply(call, &live, false));
    }
    let out = delete_one(call, &k, &live, &options)?;
    let pending = call.shared.store.get_shared(&k).is_some_and(|v| object::uid(&v) == object::uid(&live));
    Ok(deleted_reply(call, &out, pending))
}

/// One delete with its options: Orphan first takes the object off its dependents' owner
/// references (the controllers then leave them), Background and Foreground delete it and let
/// the controllers remove what it owned (emu has no foreground deletion: both are Background).
fn delete_one(call: &Call, k: &ObjectKey, live: &Value, options: &DeleteOptions) -> Result<Value, ApiError> {
    if options.propagation.as_deref() == Some("Orphan") {
        orphan_dependents(call, live)?;
    }
    let grace = options.grace_period_seconds.unwrap_or(-1);
    api::delete_object(call.shared, k, grace == 0, grace).map_err(|s| status_error(call, &k.name, &s))
}

fn orphan_dependents(call: &Call, owner: &Value) -> Result<(), ApiError> {
    let uid = object::uid(owner);
    let namespace = object::namespace(owner);
    // The kinds a workload owns: a Deployment its ReplicaSets, a CronJob its Jobs, the rest Pods
    // and (DaemonSet, StatefulSet) ControllerRevisions.
    for kind in ["ReplicaSet", "Job", "ControllerRevision", "Pod"] {
        let (objects, _) = call.shared.store.list(kind, Some(namespace));
        for mut o in objects {
            let Some(refs) = object::at(&o, &["metadata", "ownerReferences"]).and_then(Value::as_array) else { continue };
            if !refs.iter().any(|r| r["uid"] == uid) {
                continue;
            }
            let kept: Vec<Value> = refs.iter().filter(|r| r["uid"] != uid).cloned().collect();
            let meta = object::metadata_mut(&mut o);
            if kept.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(kept));
            }
            call.shared.store.update(o).map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    call.shared.changed();
    Ok(())
}

/// A delete's answer: the object while its deletion is pending (or for kinds that return it),
/// else kube-apiserver's Status Success naming it.
fn deleted_reply(call: &Call, v: &Value, pending: bool) -> Reply {
    if pending || returns_deleted_object(call.rk.kind) {
        return object_reply(200, v, call.pretty);
    }
    let mut details = serde_json::Map::new();
    details.insert("name".into(), json!(object::name(v)));
    if !call.info.group.is_empty() {
        details.insert("group".into(), json!(call.info.group));
    }
    details.insert("kind".into(), json!(call.info.resource));
    details.insert("uid".into(), json!(object::uid(v)));
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
    object_reply(200, &status, call.pretty)
}

/// DELETE of a collection: every object the selectors match, answered as a list of them.
fn delete_collection(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let (rk, info, q) = (call.rk, call.info, &call.query);
    let options = delete_options(call, &sent)?;
    let selector = Selector::parse(query_param(q, "labelSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = list::parse_field_selector(rk.kind, query_param(q, "fieldSelector").unwrap_or(""))?;
    let namespace = (rk.namespaced && !info.namespace.is_empty()).then_some(info.namespace.as_str());
    let (objects, _) = call.shared.store.list(rk.kind, namespace);
    let mut items = Vec::new();
    for o in objects.iter().filter(|o| selector.matches(&object::labels(o)) && list::fields_match(&fields, o)) {
        let k = ObjectKey { kind: rk.kind.to_string(), namespace: object::namespace(o).to_string(), name: object::name(o).to_string() };
        if options.dry_run {
            items.push(o.clone());
            continue;
        }
        match delete_one(call, &k, o, &options) {
            Ok(v) => items.push(v),
            // Gone meanwhile: nothing left to delete.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = call.shared.store.resource_version().to_string();
    let list =
        json!({"kind": format!("{}List", rk.kind), "apiVersion": rk.api_version(), "metadata": {"resourceVersion": rv}, "items": items});
    Ok(object_reply(200, &list, call.pretty))
}

/// POST of a pod's `eviction`: a graceful delete (emu has no disruption budgets to refuse it).
fn evict(call: &Call) -> Result<Reply, ApiError> {
    let info = call.info;
    let k = key(call.rk, info);
    let live = call.shared.store.get(&k).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, &info.name))?;
    if query_param(&call.query, "dryRun") != Some("All") {
        delete_one(call, &k, &live, &DeleteOptions::default())?;
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(object_reply(201, &status, call.pretty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_as_the_strict_decoder_names_them() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "labels": {"a": "b"}, "foo": 1},
            "spec": {"foo": "bar", "selector": {"any": "key"}, "ports": [{"port": 80}, {"port": 81, "bogus": true}], "clusterIP": null}});
        assert_eq!(unknown_fields(&svc), ["metadata.foo", "spec.foo", "spec.ports[1].bogus"]);
        let fault = json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "f"}, "spec": {"anything": 1}});
        assert!(unknown_fields(&fault).is_empty());
        assert_eq!(
            strict_decoding(&["spec.foo".into(), "spec.bar".into()]),
            "strict decoding error: unknown field \"spec.foo\", unknown field \"spec.bar\""
        );
    }

    #[test]
    fn patch_types_by_content_type() {
        assert_eq!(patch_kind("application/merge-patch+json; charset=utf-8"), Ok(PatchKind::Patch(PatchType::Merge)));
        assert_eq!(patch_kind("application/strategic-merge-patch+json"), Ok(PatchKind::Patch(PatchType::Strategic)));
        assert_eq!(patch_kind("application/json-patch+json"), Ok(PatchKind::Patch(PatchType::Json)));
        assert_eq!(patch_kind("application/apply-patch+yaml"), Ok(PatchKind::Apply));
        let e = patch_kind("application/json").unwrap_err();
        assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"));
        assert!(e.message.starts_with("the body of the request was in an unknown format - accepted media types include: "));
    }

    #[test]
    fn bodies_are_summarized_as_apimachinery_does() {
        assert_eq!(summarize(b""), "<empty>");
        assert_eq!(summarize(b"{\"a\":1"), "{\"a\":1");
        assert_eq!(summarize(b"xy"), "7879");
        assert_eq!(summarize(&[b'{'; 40]), format!("{} ...", "{".repeat(30)));
    }

    #[test]
    fn a_patch_that_does_not_apply_is_invalid_on_the_field_patch() {
        let e = invalid_patch("[]", "strict decoding error: unknown field \"spec.foo\"");
        assert_eq!(e.message, " \"\" is invalid: patch: Invalid value: \"[]\": strict decoding error: unknown field \"spec.foo\"");
        let d = e.details.unwrap();
        assert_eq!((d.causes[0].field.as_str(), d.causes[0].reason), ("patch", "FieldValueInvalid"));
    }

    /// The router on a store of its own, with the namespaces `default` and `kube-system`.
    mod router {
        use super::super::super::{serve as route, Output, Sent, Served};
        use crate::rest::request::RequestInfo;
        use crate::state::Shared;
        use serde_json::{json, Value};

        fn cluster() -> (tempfile::TempDir, Shared) {
            let dir = tempfile::tempdir().unwrap();
            let s = crate::api::test_shared(dir.path());
            for ns in ["default", "kube-system"] {
                s.store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
            }
            (dir, s)
        }

        /// `method target` with `body` as `content_type`: the status and the JSON answered.
        fn send(s: &Shared, method: &str, target: &str, content_type: &str, body: &Value) -> (u16, Value) {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let info = RequestInfo::parse(method, path, query).unwrap();
            let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
            let sent = Sent { body: &bytes, content_type };
            match route(s, &info, query, Output::Json, false, 0, sent) {
                Ok(Served::Reply(r)) => (r.status, serde_json::from_str(&r.body).unwrap()),
                Ok(_) => panic!("{method} {target}: not a whole answer"),
                Err(e) => (e.code, serde_json::from_str(&e.to_json(false)).unwrap()),
            }
        }

        fn configmap(name: &str, data: Value) -> Value {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "x"}}, "data": data})
        }

        const CMS: &str = "/api/v1/namespaces/default/configmaps";
        const JSON: &str = "application/json";

        #[test]
        fn create_and_its_errors() {
            let (_dir, s) = cluster();
            let (code, cm) = send(&s, "POST", CMS, JSON, &configmap("a", json!({"k": "v"})));
            assert_eq!((code, cm["metadata"]["namespace"].as_str()), (201, Some("default")));
            assert!(cm["metadata"]["uid"].is_string() && cm["metadata"]["resourceVersion"].is_string(), "{cm}");
            let (code, e) = send(&s, "POST", CMS, JSON, &configmap("a", json!({})));
            assert_eq!(
                (code, e["reason"].as_str(), e["message"].as_str()),
                (409, Some("AlreadyExists"), Some("configmaps \"a\" already exists"))
            );
            let (code, e) = send(&s, "POST", "/api/v1/namespaces/nope/configmaps", JSON, &configmap("b", json!({})));
            assert_eq!((code, e["message"].as_str()), (404, Some("namespaces \"nope\" not found")));
            let mut elsewhere = configmap("b", json!({}));
            elsewhere["metadata"]["namespace"] = json!("kube-system");
            let (code, e) = send(&s, "POST", CMS, JSON, &elsewhere);
            assert_eq!(
                (code, e["message"].as_str()),
                (400, Some("the namespace of the provided object does not match the namespace sent on the request"))
            );
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"}, "spec": {"ports": [{"port": 0, "targetPort": 80}]}});
            let (code, e) = send(&s, "POST", "/api/v1/namespaces/default/services", JSON, &svc);
            assert_eq!((code, e["reason"].as_str()), (422, Some("Invalid")), "{e}");
            assert_eq!(
                e["message"],
                "Service \"bad\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
            );
            assert_eq!(
                e["details"],
                json!({"name": "bad", "kind": "Service", "causes": [{"reason": "FieldValueInvalid",
                    "message": "Invalid value: 0: must be between 1 and 65535, inclusive", "field": "spec.ports[0].port"}]})
            );
            let odd = configmap("c", json!({}));
            let mut odd_with = odd.clone();
            odd_with["spec"] = json!({"foo": 1});
            let (code, e) = send(&s, "POST", &format!("{CMS}?fieldValidation=Strict"), JSON, &odd_with);
            assert_eq!(
                (code, e["message"].as_str()),
                (400, Some("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""))
            );
            assert_eq!(send(&s, "POST", &format!("{CMS}?fieldValidation=Ignore"), JSON, &odd_with).0, 201);
            let (code, e) = send(&s, "POST", &format!("{CMS}?fieldValidation=Loud"), JSON, &odd);
            assert_eq!((code, e["details"]["kind"].as_str()), (422, Some("CreateOptions")));
            // Malformed JSON, and a dry run that stores nothing.
            let info = RequestInfo::parse("POST", CMS, "").unwrap();
            let e = route(&s, &info, "", Output::Json, false, 0, Sent { body: b"{\"kind\":", content_type: JSON }).unwrap_err();
            assert_eq!(
                e.message,
                "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({\"kind\":)"
            );
            let (code, _) = send(&s, "POST", &format!("{CMS}?dryRun=All"), JSON, &configmap("d", json!({})));
            assert_eq!(code, 201);
            assert_eq!(send(&s, "GET", &format!("{CMS}/d"), "", &Value::Null).0, 404);
        }

        #[test]
        fn update_patch_and_delete() {
            let (_dir, s) = cluster();
            let (_, cm) = send(&s, "POST", CMS, JSON, &configmap("a", json!({"k": "v"})));
            let mut stale = cm.clone();
            stale["data"]["k"] = json!("w");
            let (code, updated) = send(&s, "PUT", &format!("{CMS}/a"), JSON, &stale);
            assert_eq!((code, &updated["data"]["k"]), (200, &json!("w")));
            let (code, e) = send(&s, "PUT", &format!("{CMS}/a"), JSON, &stale);
            assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
            assert_eq!(
                e["message"],
                "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
            );
            let (code, e) = send(&s, "PUT", &format!("{CMS}/b"), JSON, &configmap("b", json!({})));
            assert_eq!((code, e["message"].as_str()), (404, Some("configmaps \"b\" not found")));
            let (code, e) = send(&s, "PUT", &format!("{CMS}/a"), JSON, &configmap("other", json!({})));
            assert_eq!((code, e["message"].as_str()), (400, Some("the name of the object (other) does not match the name on the URL (a)")));

            let merge = json!({"data": {"k": null, "n": "1"}});
            let (code, p) = send(&s, "PATCH", &format!("{CMS}/a"), "application/merge-patch+json", &merge);
            assert_eq!((code, &p["data"]), (200, &json!({"n": "1"})));
            let ops = json!([{"op": "replace", "path": "/data/n", "value": "2"}]);
            let (code, p) = send(&s, "PATCH", &format!("{CMS}/a"), "application/json-patch+json", &ops);
            assert_eq!((code, &p["data"]), (200, &json!({"n": "2"})));
            let (code, e) = send(&s, "PATCH", &format!("{CMS}/a"), "text/plain", &merge);
            assert_eq!((code, e["reason"].as_str()), (415, Some("UnsupportedMediaType")));
            let (code, e) = send(&s, "PATCH", &format!("{CMS}/nope"), "application/merge-patch+json", &merge);
            assert_eq!((code, e["message"].as_str()), (404, Some("configmaps \"nope\" not found")));
            let (code, e) = send(&s, "PATCH", &format!("{CMS}/new"), "application/apply-patch+yaml", &configmap("new", json!({})));
            assert_eq!((code, e["details"]["causes"][0]["field"].as_str()), (422, Some("fieldManager")));
            let (code, _) =
                send(&s, "PATCH", &format!("{CMS}/new?fieldManager=kubectl"), "application/apply-patch+yaml", &configmap("new", json!({})));
            assert_eq!(code, 201);

            // A ConfigMap's delete answers a Status; the collection's, the objects deleted.
            let (code, st) = send(&s, "DELETE", &format!("{CMS}/a"), JSON, &json!({"preconditions": {"uid": "other"}}));
            assert_eq!((code, st["reason"].as_str()), (409, Some("Conflict")));
            let (code, st) = send(&s, "DELETE", &format!("{CMS}/a"), JSON, &json!({"propagationPolicy": "Background"}));
            assert_eq!(code, 200);
            assert_eq!(
                st,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                       "details": {"name": "a", "kind": "configmaps", "uid": cm["metadata"]["uid"]}})
            );
            assert_eq!(send(&s, "DELETE", &format!("{CMS}/a"), JSON, &Value::Null).0, 404);
            send(&s, "POST", CMS, JSON, &configmap("b", json!({})));
            let (code, list) = send(&s, "DELETE", &format!("{CMS}?labelSelector=app%3Dx"), JSON, &Value::Null);
            assert_eq!((code, list["kind"].as_str(), list["items"].as_array().map(Vec::len)), (200, Some("ConfigMapList"), Some(2)));
            assert_eq!(send(&s, "GET", CMS, "", &Value::Null).1["items"], json!([]));
        }

        #[test]
        fn server_side_apply_records_managers_and_answers_conflicts() {
            let (_dir, shared) = cluster();
            let (s, apply) = (&shared, "application/apply-patch+yaml");
            let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": v}});
            assert_eq!(send(s, "PATCH", &format!("{CMS}/a?fieldManager=one"), apply, &cm("v")).0, 201);
            let (code, other) =
                send(s, "PATCH", &format!("{CMS}/a?fieldManager=two"), "application/merge-patch+json", &json!({"data": {"k": "w"}}));
            assert_eq!(code, 200);
            let managers: Vec<&str> =
                other["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
            assert_eq!(managers, ["two"], "one's only field moved to two: {other}");
            assert_eq!(other["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:k": {}}}));
            let (code, e) = send(s, "PATCH", &format!("{CMS}/a?fieldManager=one"), apply, &cm("v"));
            assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
            assert_eq!(e["message"], "Apply failed with 1 conflict: conflict with \"two\" using v1: .data.k");
            assert_eq!(
                e["details"],
                json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"two\" using v1", "field": ".data.k"}]})
            );
            let (code, dry) = send(s, "PATCH", &format!("{CMS}/a?fieldManager=one&force=true&dryRun=All"), apply, &cm("v"));
            assert_eq!((code, &dry["data"]["k"]), (200, &json!("v")));
            assert_eq!(send(s, "GET", &format!("{CMS}/a"), "", &Value::Null).1["data"]["k"], "w");
            let (code, forced) = send(s, "PATCH", &format!("{CMS}/a?fieldManager=one&force=true"), apply, &cm("v"));
            assert_eq!((code, &forced["data"]["k"]), (200, &json!("v")));
            assert_eq!(forced["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));
            assert_eq!(forced["metadata"]["managedFields"][0]["operation"], "Apply");
        }

        #[test]
        fn scale_and_status() {
            let (_dir, s) = cluster();
            let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "web"}},
                         "template": {"metadata": {"labels": {"run": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
            let deployments = "/apis/apps/v1/namespaces/default/deployments";
            assert_eq!(send(&s, "POST", deployments, JSON, &deployment).0, 201);
            let scale_path = format!("{deployments}/web/scale");
            let merge = "application/merge-patch+json";
            let (code, scale) = send(&s, "PATCH", &scale_path, merge, &json!({"spec": {"replicas": 0}}));
            assert_eq!((code, scale["kind"].as_str(), &scale["spec"]["replicas"]), (200, Some("Scale"), &json!(0)));
            let (code, e) = send(&s, "PATCH", &scale_path, merge, &json!({"spec": {"replicas": -1}}));
            assert_eq!((code, e["details"]["causes"][0]["field"].as_str()), (422, Some("spec.replicas")));
            // kubectl scale --current-replicas: GET, then PUT of the Scale at its resourceVersion.
            let (_, mut scale) = send(&s, "GET", &scale_path, "", &Value::Null);
            scale["spec"]["replicas"] = json!(3);
            let (code, put) = send(&s, "PUT", &scale_path, JSON, &scale);
            assert_eq!((code, &put["spec"]["replicas"]), (200, &json!(3)));
            let (code, e) = send(&s, "PUT", &scale_path, JSON, &scale);
            assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
            // The status subresource changes the status only.
            let (_, mut d) = send(&s, "GET", &format!("{deployments}/web"), "", &Value::Null);
            d["status"] = json!({"replicas": 3});
            d["spec"]["replicas"] = json!(7);
            let (code, d) = send(&s, "PUT", &format!("{deployments}/web/status"), JSON, &d);
            assert_eq!((code, &d["status"]["replicas"], &d["spec"]["replicas"]), (200, &json!(3), &json!(3)));
            // Recorded as kube-apiserver records it: the status write's fields, on its subresource.
            let status = json!({"status": {"replicas": 4}});
            let (_, d) = send(&s, "PATCH", &format!("{deployments}/web/status?fieldManager=ctl"), merge, &status);
            let entry = d["metadata"]["managedFields"].as_array().unwrap().iter().find(|e| e["manager"] == "ctl").cloned().unwrap();
            assert_eq!((&entry["subresource"], &entry["fieldsV1"]), (&json!("status"), &json!({"f:status": {"f:replicas": {}}})));
            // A Deployment's delete answers a Status naming its group.
            let (_, st) = send(&s, "DELETE", &format!("{deployments}/web"), JSON, &Value::Null);
            assert_eq!((st["details"]["group"].as_str(), st["details"]["kind"].as_str()), (Some("apps"), Some("deployments")));
        }
    }
}
