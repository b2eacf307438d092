//! `kubectl patch`'s three patch types as pure functions of an object and a patch, ported from
//! the libraries kubectl 1.32 uses so that a patch gives what kubectl gives, list order and
//! quirks included (`tests/tests/patch_kubectl.rs` compares the two on the same inputs):
//!
//! * `merge`: evanphx/json-patch v4's `MergePatch`, RFC 7386 with its pruning: `null` deletes a
//!   field, objects merge key by key, anything else (lists included) replaces, and a value that
//!   lands where no object was loses its `null` fields, also inside the objects of its lists.
//! * `json`: evanphx/json-patch v4's RFC 6902 `Patch.Apply`, lenient where that library is:
//!   `replace` of a missing object key adds it, `add` without `value` and `copy` from a missing
//!   key write `null`, a negative index counts from the end, a path without its leading `/`
//!   loses its first token. Errors are that library's words, e.g. `error in remove for path:
//!   '/spec/foo': Unable to remove nonexistent key: foo: missing value`. The patch applies as a
//!   whole or not at all.
//! * `strategic` (kubectl's default): apimachinery's `StrategicMergePatch` over the patch tags of
//!   the Go types ([`crate::field_tags`]): a list tagged `patchStrategy:"merge"` merges item by item on its
//!   `patchMergeKey` (a Service's `ports` by `port`, `containers` by `name`, a container's `env`
//!   by `name`, …) or as a set of scalars (`finalizers`); every other list is replaced. The
//!   directives `$patch: replace|delete` (in a map or a list item), `$retainKeys`,
//!   `$setElementOrder/FIELD` and `$deleteFromPrimitiveList/FIELD` do what they do there, and
//!   a merged list is ordered as apimachinery orders it (the patch's items in the patch's order,
//!   the others where they were relative to them), e.g. live ports `[http 8080, https 443]`
//!   patched with `[{port: 8443}, {port: 8080, $patch: delete}]` give `[8443, https]`.
//!
//! [`apply_local`] is kubectl's client side of `patch --local` on top of these: how it reads
//! `-p`, how it rewords a JSON patch's missing key, and its check that the result is still an
//! object with a kind.

use crate::field_tags::{PatchStrategy as Strategy, Schema};
use crate::json::canonical_json;
use serde_json::Value;
use std::str::FromStr;

type Map = serde_json::Map<String, Value>;

/// `kubectl patch --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

impl FromStr for PatchType {
    type Err = PatchError;

    /// kubectl takes the name in any case.
    fn from_str(s: &str) -> Result<PatchType, PatchError> {
        match s.to_ascii_lowercase().as_str() {
            "strategic" => Ok(PatchType::Strategic),
            "merge" => Ok(PatchType::Merge),
            "json" => Ok(PatchType::Json),
            _ => Err(PatchError::UnknownType(s.to_string())),
        }
    }
}

/// Why a patch could not be read or applied, in kubectl's (and its libraries') words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("--type must be one of [json merge strategic], not {0:?}")]
    UnknownType(String),
    #[error("must specify --patch or --patch-file containing the contents of the patch")]
    Empty,
    /// The `-p` text is neither JSON nor YAML.
    #[error("unable to parse {text:?}: {reason}")]
    Parse { text: String, reason: String },
    /// Go's JSON decoder on the patch of a JSON patch: a syntax error, or not a list of
    /// operations (`json: cannot unmarshal object into Go value of type jsonpatch.Patch`).
    #[error("{0}")]
    Json(String),
    /// An RFC 6902 operation that does not apply.
    #[error("{0}")]
    Operation(String),
    /// A merge patch that is not JSON, or not an object or a list.
    #[error("Invalid JSON Patch")]
    InvalidMergePatch,
    /// A strategic merge patch that is not a JSON object.
    #[error("invalid JSON document")]
    InvalidDocument,
    /// A strategic patch that does not apply (apimachinery's `strategicpatch` errors).
    #[error("{0}")]
    Strategic(#[from] StrategicError),
    /// kubectl has no Go type, hence no patch tags, for this group, version and kind (`/v1,
    /// Kind=Pod` style).
    #[error("strategic merge patch is not supported for {0} locally, try --type merge")]
    NoSchema(String),
    /// kubectl's rewording of a JSON patch's `doc is missing key: PATH: missing value`.
    #[error("Object to be patched is missing field ({0})")]
    MissingField(String),
    /// The result has no kind: the decoder's error, with the result as Go marshals it.
    #[error("Object 'Kind' is missing in '{0}'")]
    MissingKind(String),
    /// The result is not an object (a merge patch that is a list, a JSON patch replacing the
    /// whole document with a list).
    #[error("json: cannot unmarshal {0} into Go value of type unstructured.detector")]
    NotAnObject(&'static str),
}

/// apimachinery's strategic merge errors (`mergepatch` and `strategicpatch`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// A list item (of the patch or the object) without the merge key of its list.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective { directive: String, map: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    #[error("invalid patch format of retainKeys")]
    RetainKeysFormat,
    #[error("invalid patch format of primitive list")]
    PrimitiveListFormat,
    #[error("invalid patch format of setElementOrder list")]
    SetElementOrderFormat,
    /// A value of the wrong Go type where a list or a map must be.
    #[error("expected a {expected}, but received a {actual}")]
    WrongType { expected: &'static str, actual: &'static str },
    #[error("list element types are not identical: {0}")]
    MixedList(String),
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("no elements in any of the given slices")]
    NoElements,
    /// `$deleteFromPrimitiveList` on a list of maps that has no merge key.
    #[error("cannot merge lists without merge key for struct")]
    NoMergeKeyForList,
    #[error("value for key {0} is not a map")]
    NotAMap(usize),
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch { patch: String, order: String },
}

// ---------------------------------------------------------------------------------------------
// Reading `-p`

/// Reads `-p` into a value: JSON, or YAML as kubectl also accepts (the cluster path of `emu
/// patch`; [`read`] is kubectl's client-side reading).
pub fn parse(text: &str) -> Result<Value, PatchError> {
    let error = |reason: String| PatchError::Parse { text: text.to_string(), reason };
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        // Text that starts like JSON is reported as JSON; anything else gets the YAML reader's say.
        Err(e) if text.trim_start().starts_with(['{', '[']) => Err(error(e.to_string())),
        Err(_) => serde_saphyr::from_str::<Value>(text).map_err(|e| error(e.to_string())),
    }
}

/// `-p` as kubectl hands it to the patch code (apimachinery's `yaml.ToJSON`): text that starts
/// with `{` as it is, to be decoded (and its syntax errors worded) by each patch type in its own
/// way; anything else read as YAML first.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchText {
    Json(String),
    Yaml(Value),
}

/// kubectl's reading of `-p`: empty is refused, YAML that does not parse is refused with the
/// text quoted.
pub fn read(text: &str) -> Result<PatchText, PatchError> {
    if text.is_empty() {
        return Err(PatchError::Empty);
    }
    if text.trim_start().starts_with('{') {
        return Ok(PatchText::Json(text.to_string()));
    }
    serde_saphyr::from_str::<Value>(text)
        .map(PatchText::Yaml)
        .map_err(|e| PatchError::Parse { text: text.to_string(), reason: e.to_string() })
}

impl PatchText {
    /// The patch as a value, or Go's `encoding/json` message for JSON that does not parse.
    fn decode(&self) -> Result<Value, String> {
        match self {
            PatchText::Yaml(v) => Ok(v.clone()),
            PatchText::Json(text) => match go_json_syntax(text) {
                Some(e) => Err(e),
                None => serde_json::from_str(text).map_err(|e| e.to_string()),
            },
        }
    }
}

/// Go's `encoding/json` syntax check (`checkValid`): None when `text` is one JSON value, else
/// Go's message (`invalid character '}' after object key`, `unexpected end of JSON input`).
/// A port of the states of Go's scanner, which name where in a value a byte went wrong.
fn go_json_syntax(text: &str) -> Option<String> {
    let mut scan = Scanner { state: State::BeginValue, stack: Vec::new(), end_top: false };
    for &c in text.as_bytes() {
        if let Err(e) = scan.step(c) {
            return Some(e);
        }
    }
    // At the end, a space finishes a number or a literal (or reveals it unfinished).
    if !scan.end_top {
        if let Err(e) = scan.step(b' ') {
            return Some(e);
        }
    }
    (!scan.end_top).then(|| "unexpected end of JSON input".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// After `\u` and this many hex digits.
    InStringEscU(u8),
    Neg,
    /// After a leading `0` (no more digits may follow).
    Zero,
    /// In the digits of an integer part.
    Digits,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// In a literal, at this byte of it.
    Literal(&'static str, usize),
}

/// Where the scanner is: in an object before or after a key, or in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nest {
    ObjectKey,
    ObjectValue,
    Array,
}

struct Scanner {
    state: State,
    stack: Vec<Nest>,
    end_top: bool,
}

impl Scanner {
    fn step(&mut self, c: u8) -> Result<(), String> {
        let space = matches!(c, b' ' | b'\t' | b'\r' | b'\n');
        let next = match self.state {
            State::BeginValueOrEmpty if space => return Ok(()),
            State::BeginValueOrEmpty if c == b']' => return self.end_value(c),
            State::BeginValueOrEmpty | State::BeginValue => return self.begin_value(c),
            State::BeginStringOrEmpty if space => return Ok(()),
            State::BeginStringOrEmpty if c == b'}' => {
                self.stack.pop();
                self.stack.push(Nest::ObjectValue);
                return self.end_value(c);
            }
            State::BeginStringOrEmpty | State::BeginString => match c {
                _ if space => return Ok(()),
                b'"' => State::InString,
                _ => return error(c, "looking for beginning of object key string"),
            },
            State::EndValue => return self.end_value(c),
            State::EndTop if space => return Ok(()),
            State::EndTop => return error(c, "after top-level value"),
            State::InString => match c {
                b'"' => State::EndValue,
                b'\\' => State::InStringEsc,
                c if c < 0x20 => return error(c, "in string literal"),
                _ => return Ok(()),
            },
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => State::InString,
                b'u' => State::InStringEscU(0),
                _ => return error(c, "in string escape code"),
            },
            State::InStringEscU(n) if c.is_ascii_hexdigit() => {
                if n == 3 {
                    State::InString
                } else {
                    State::InStringEscU(n + 1)
                }
            }
            State::InStringEscU(_) => return error(c, "in \\u hexadecimal character escape"),
            State::Neg => match c {
                b'0' => State::Zero,
                b'1'..=b'9' => State::Digits,
                _ => return error(c, "in numeric literal"),
            },
            State::Digits if c.is_ascii_digit() => return Ok(()),
            State::Digits | State::Zero => match c {
                b'.' => State::Dot,
                b'e' | b'E' => State::E,
                _ => return self.end_value(c),
            },
            State::Dot if c.is_ascii_digit() => State::Dot0,
            State::Dot => return error(c, "after decimal point in numeric literal"),
            State::Dot0 => match c {
                _ if c.is_ascii_digit() => return Ok(()),
                b'e' | b'E' => State::E,
                _ => return self.end_value(c),
            },
            State::E if c == b'+' || c == b'-' => State::ESign,
            State::E | State::ESign if c.is_ascii_digit() => State::E0,
            State::E | State::ESign => return error(c, "in exponent of numeric literal"),
            State::E0 if c.is_ascii_digit() => return Ok(()),
            State::E0 => return self.end_value(c),
            State::Literal(word, at) if c == word.as_bytes()[at] => {
                if at + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, at + 1)
                }
            }
            State::Literal(word, at) => return error(c, &format!("in literal {word} (expecting {})", go_quote_char(word.as_bytes()[at]))),
        };
        self.state = next;
        Ok(())
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        self.state = match c {
            b' ' | b'\t' | b'\r' | b'\n' => return Ok(()),
            b'{' => {
                self.stack.push(Nest::ObjectKey);
                State::BeginStringOrEmpty
            }
            b'[' => {
                self.stack.push(Nest::Array);
                State::BeginValueOrEmpty
            }
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b'1'..=b'9' => State::Digits,
            b't' => State::Literal("true", 1),
            b'f' => State::Literal("false", 1),
            b'n' => State::Literal("null", 1),
            _ => return error(c, "looking for beginning of value"),
        };
        Ok(())
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(top) = self.stack.last_mut() else {
            self.state = State::EndTop;
            self.end_top = true;
            return self.step(c);
        };
        self.state = match (*top, c) {
            (_, b' ' | b'\t' | b'\r' | b'\n') => State::EndValue,
            (Nest::ObjectKey, b':') => {
                *top = Nest::ObjectValue;
                State::BeginValue
            }
            (Nest::ObjectKey, _) => return error(c, "after object key"),
            (Nest::ObjectValue, b',') => {
                *top = Nest::ObjectKey;
                State::BeginString
            }
            (Nest::Array, b',') => State::BeginValue,
            (Nest::ObjectValue, b'}') | (Nest::Array, b']') => {
                self.stack.pop();
                self.end_top = self.stack.is_empty();
                if self.end_top {
                    State::EndTop
                } else {
                    State::EndValue
                }
            }
            (Nest::ObjectValue, _) => return error(c, "after object key:value pair"),
            (Nest::Array, _) => return error(c, "after array element"),
        };
        Ok(())
    }
}

fn error(c: u8, context: &str) -> Result<(), String> {
    Err(format!("invalid character {} {context}", go_quote_char(c)))
}

/// Go's `quoteChar`: the byte in single quotes, escaped as `strconv.Quote` escapes it.
fn go_quote_char(b: u8) -> String {
    match b {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        b'\n' => r"'\n'".into(),
        b'\r' => r"'\r'".into(),
        b'\t' => r"'\t'".into(),
        b if b < 0x20 || b == 0x7f => format!("'\\x{b:02x}'"),
        // Latin-1 as Go reads a lone byte; its non-printing part escaped.
        b if (0x80..=0xa0).contains(&b) || b == 0xad => format!("'\\u{b:04x}'"),
        b => format!("'{}'", char::from(b)),
    }
}

// ---------------------------------------------------------------------------------------------
// Applying

/// `object` with `patch` (already parsed) applied as `ty` says: what the API server does with
/// a PATCH (the cluster path of `emu patch`).
pub fn apply(ty: PatchType, object: &Value, patch: &Value) -> Result<Value, PatchError> {
    match ty {
        PatchType::Merge => merge_patch(object, patch),
        PatchType::Json => json_patch(object, patch),
        PatchType::Strategic => strategic_merge_patch(object, patch),
    }
}

/// `kubectl patch --local`: `object` with `patch` applied as kubectl does it without a server
/// (its `getPatchedJSON`, then its decoding of the result), errors included.
pub fn apply_local(ty: PatchType, object: &Value, patch: &PatchText) -> Result<Value, PatchError> {
    let patched = match ty {
        PatchType::Json => {
            let ops = patch.decode().map_err(PatchError::Json)?;
            json_patch(object, &ops).map_err(|e| match e {
                // kubectl's own rewording (it calls it hacky): the text after `key:`.
                PatchError::Operation(msg) if msg.contains("doc is missing key") => {
                    let at = msg.find("key:").map_or(msg.len(), |i| (i + 5).min(msg.len()));
                    PatchError::MissingField(msg[at..].to_string())
                }
                e => e,
            })?
        }
        PatchType::Merge => merge_patch(object, &patch.decode().map_err(|_| PatchError::InvalidMergePatch)?)?,
        PatchType::Strategic => {
            let (api_version, kind) = (object["apiVersion"].as_str().unwrap_or(""), object["kind"].as_str().unwrap_or(""));
            if !has_go_type(api_version, kind) {
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                return Err(PatchError::NoSchema(format!("{group}/{version}, Kind={kind}")));
            }
            strategic_merge_patch(object, &patch.decode().map_err(|_| PatchError::InvalidDocument)?)?
        }
    };
    match &patched {
        Value::Object(m) if m.get("kind").and_then(Value::as_str).is_some_and(|k| !k.is_empty()) => Ok(patched),
        Value::Object(_) => Err(PatchError::MissingKind(canonical_json(&patched))),
        other => Err(PatchError::NotAnObject(json_type(other))),
    }
}

/// Whether kubectl's scheme has a Go type for this kind (kubectl strategic-merges only those
/// locally). The generally available versions of the built-in groups; their beta versions are
/// left out.
fn has_go_type(api_version: &str, kind: &str) -> bool {
    #[rustfmt::skip] // a table, one group version a line
    const KINDS: &[(&str, &[&str])] = &[
        ("v1", &["Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node", "PersistentVolume",
            "PersistentVolumeClaim", "Pod", "PodTemplate", "ReplicationController", "ResourceQuota", "Secret", "Service", "ServiceAccount"]),
        ("apps/v1", &["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]),
        ("batch/v1", &["CronJob", "Job"]),
        ("autoscaling/v1", &["HorizontalPodAutoscaler", "Scale"]),
        ("autoscaling/v2", &["HorizontalPodAutoscaler"]),
        ("networking.k8s.io/v1", &["Ingress", "IngressClass", "NetworkPolicy"]),
        ("policy/v1", &["Eviction", "PodDisruptionBudget"]),
        ("rbac.authorization.k8s.io/v1", &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]),
        ("storage.k8s.io/v1", &["CSIDriver", "CSINode", "CSIStorageCapacity", "StorageClass", "VolumeAttachment"]),
        ("discovery.k8s.io/v1", &["EndpointSlice"]),
        ("events.k8s.io/v1", &["Event"]),
        ("coordination.k8s.io/v1", &["Lease"]),
        ("node.k8s.io/v1", &["RuntimeClass"]),
        ("scheduling.k8s.io/v1", &["PriorityClass"]),
        ("certificates.k8s.io/v1", &["CertificateSigningRequest"]),
        ("admissionregistration.k8s.io/v1", &["MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration"]),
        ("flowcontrol.apiserver.k8s.io/v1", &["FlowSchema", "PriorityLevelConfiguration"]),
    ];
    if api_version == "v1" && kind == "List" {
        return true;
    }
    let kind = kind.strip_suffix("List").unwrap_or(kind);
    KINDS.iter().any(|(gv, kinds)| *gv == api_version && kinds.contains(&kind))
}

// ---------------------------------------------------------------------------------------------
// Merge patch (evanphx/json-patch v4 `MergePatch`)

/// `target` with the merge patch `patch` applied. A patch that is a list becomes the result
/// (which kubectl then refuses as not an object); `null` and scalars are not merge patches.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match (target, patch) {
        (Value::Object(doc), Value::Object(fields)) => {
            let mut doc = doc.clone();
            merge_docs(&mut doc, fields.clone());
            Ok(Value::Object(doc))
        }
        (_, Value::Object(_) | Value::Array(_)) => {
            let mut patch = patch.clone();
            prune_nulls(&mut patch);
            Ok(patch)
        }
        _ => Err(PatchError::InvalidMergePatch),
    }
}

fn merge_docs(doc: &mut Map, patch: Map) {
    for (key, value) in patch {
        if value.is_null() {
            doc.remove(&key);
            continue;
        }
        match doc.get_mut(&key) {
            Some(current) if !current.is_null() => {
                let merged = match (current.take(), value) {
                    (Value::Object(mut fields), Value::Object(patch)) => {
                        merge_docs(&mut fields, patch);
                        Value::Object(fields)
                    }
                    // A non-object patch replaces an object as it is, nulls and all.
                    (Value::Object(_), value) => value,
                    (_, mut value) => {
                        prune_nulls(&mut value);
                        value
                    }
                };
                *current = merged;
            }
            _ => {
                let mut value = value;
                prune_nulls(&mut value);
                doc.insert(key, value);
            }
        }
    }
}

/// Removes the `null` fields of objects, also of objects in lists (a list keeps its nulls).
fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, v| !v.is_null());
            fields.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch (apimachinery's `strategicpatch`)

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The strategy of the field `name` of a `schema` value, and the schema of its value (of its
/// items, for a list), from the tags' table.
fn field(schema: Schema, name: &str) -> (Strategy, Schema) {
    let tags = crate::field_tags::field(schema, name);
    (tags.patch, tags.schema)
}

/// `target` with the strategic merge patch `patch` applied, by the tags of `target`'s kind.
/// (A kind kubectl has no Go type for merges with no tags; [`apply_local`] refuses it as kubectl
/// does.)
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(fields) => fields.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::InvalidDocument),
    };
    let Value::Object(original) = target else { return Err(PatchError::InvalidDocument) };
    let schema = Schema::of_kind(target["kind"].as_str().unwrap_or(""));
    Ok(Value::Object(merge_map(original.clone(), patch, schema)?))
}

/// apimachinery's `mergeMap`: the directives first, then field by field.
fn merge_map(mut original: Map, mut patch: Map, schema: Schema) -> Result<Map, StrategicError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(unknown_directive(directive, &patch)),
        };
    }
    retain_keys(&mut original, &mut patch)?;
    set_element_order(&mut original, &mut patch, schema)?;
    for (key, value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(_) => (directive_field(&key, DELETE_FROM_PRIMITIVE_LIST).ok_or(StrategicError::PrimitiveListFormat)?.to_string(), true),
            None => (key, false),
        };
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let same_type = original.get(&key).map(|current| GoType::of(current) == GoType::of(&value));
        if same_type != Some(true) {
            // Absent, or of another type: the patch's value, without its nulls and directives
            // (a deletion list only deletes).
            if !delete_list {
                match added(value) {
                    Some(value) => original.insert(key, value),
                    None => original.remove(&key),
                };
            }
            continue;
        }
        let (strategy, inner) = field(schema, &key);
        if let Some(current) = original.get_mut(&key) {
            *current = match (current.take(), value) {
                (Value::Object(current), Value::Object(value)) => Value::Object(merge_map(current, value, inner)?),
                (Value::Array(current), Value::Array(value)) if strategy != Strategy::Replace || delete_list => {
                    Value::Array(merge_list(current, value, strategy.key(), inner, delete_list)?)
                }
                (_, value) => value,
            };
        }
    }
    Ok(original)
}

/// A patch value that lands where the object had nothing (or another type): its `null` fields
/// dropped, then its `$patch` directives (None when the value itself carries one).
fn added(mut value: Value) -> Option<Value> {
    // apimachinery's `discardNullValuesFromPatch` prunes as evanphx's merge patch does.
    prune_nulls(&mut value);
    remove_directives(value)
}

/// apimachinery's `removeDirectives`: maps carrying `$patch` go, with the list items that are
/// such maps. (Other directives stay: a new value keeps its `$retainKeys`.)
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(fields) if fields.contains_key(DIRECTIVE) => None,
        Value::Object(fields) => {
            Some(Value::Object(fields.into_iter().filter_map(|(k, v)| remove_directives(v).map(|v| (k, v))).collect()))
        }
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(remove_directives).collect())),
        other => Some(other),
    }
}

/// The field a `$setElementOrder/FIELD` or `$deleteFromPrimitiveList/FIELD` key names.
fn directive_field<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.split_once('/').filter(|(head, _)| *head == prefix).map(|(_, field)| field)
}

fn unknown_directive(directive: &Value, map: &Map) -> StrategicError {
    StrategicError::UnknownDirective { directive: go_string(directive), map: go_value(&Value::Object(map.clone())) }
}

/// Go's `%s` of a decoded JSON value: strings as they are, anything else flagged
/// (`%!s(int64=5)`), inside maps and lists too (where nil is plain `<nil>`).
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "%!s(<nil>)".into(),
        v => go_string_in(v),
    }
}

fn go_string_in(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => format!("%!s(bool={b})"),
        Value::Number(n) if n.is_i64() => format!("%!s(int64={n})"),
        Value::Number(n) => format!("%!s(float64={})", go_float(n.as_f64().unwrap_or_default())),
        Value::Array(a) => format!("[{}]", a.iter().map(go_string_in).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!("map[{}]", m.iter().map(|(k, v)| format!("{k}:{}", go_string_in(v))).collect::<Vec<_>>().join(" ")),
    }
}

fn no_merge_key(item: &Value, key: &str) -> StrategicError {
    StrategicError::NoMergeKey { map: go_value(item), key: key.to_string() }
}

/// `$retainKeys`: the object keeps only the fields named, and the patch may set no others.
fn retain_keys(original: &mut Map, patch: &mut Map) -> Result<(), StrategicError> {
    let Some(keep) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(keep) = keep else { return Err(StrategicError::RetainKeysFormat) };
    let kept = |k: &str| keep.iter().any(|v| v.as_str() == Some(k));
    let set = |k: &str, v: &Value| !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER);
    if patch.iter().any(|(k, v)| set(k, v) && !kept(k)) {
        return Err(StrategicError::RetainKeysFormat);
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// `$setElementOrder/FIELD`: the list FIELD merged with the patch's (if any), its items in the
/// order given, the items the order does not name where they were relative to them.
fn set_element_order(original: &mut Map, patch: &mut Map, schema: Schema) -> Result<(), StrategicError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let order = match patch.remove(&key) {
            Some(Value::Array(order)) => order,
            other => return Err(wrong_type("[]interface {}", other.as_ref())),
        };
        let name = directive_field(&key, SET_ELEMENT_ORDER).ok_or(StrategicError::SetElementOrderFormat)?.to_string();
        let list = |value: Option<&Value>| match value {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.clone())),
            other => Err(wrong_type("[]interface {}", other)),
        };
        let (current, patched) = (list(original.get(&name))?, list(patch.get(&name))?);
        let (strategy, inner) = field(schema, &name);
        let key = strategy.key();
        check_order(patched.as_deref().unwrap_or_default(), &order, key)?;
        let merged = match (current.clone(), patched.clone()) {
            (Some(current), None) => current,
            (None, Some(patched)) => patched.into_iter().filter_map(remove_directives).collect(),
            (Some(current), Some(patched)) => match strategy {
                Strategy::Replace => patched,
                _ => merge_list(current, patched, key, inner, false)?,
            },
            (None, None) => continue,
        };
        let (current, patched) = (current.unwrap_or_default(), patched.unwrap_or_default());
        let (ordered, others) = partition(merged, &order, key)?;
        element_type(&current, &patched)?;
        original.insert(name.clone(), Value::Array(normalize_order(ordered, others, &order, &current, key)?));
        patch.remove(&name);
    }
    Ok(())
}

fn wrong_type(expected: &'static str, actual: Option<&Value>) -> StrategicError {
    StrategicError::WrongType { expected, actual: GoType::of(actual.unwrap_or(&Value::Null)).name() }
}

/// The patch's list must name its items in the order `$setElementOrder` gives (deletions and
/// other directives aside).
fn check_order(patched: &[Value], order: &[Value], key: Option<&str>) -> Result<(), StrategicError> {
    if order.is_empty() || patched.is_empty() {
        return Ok(());
    }
    let mut items = Vec::new();
    for item in patched {
        match (key, item) {
            (None, _) => items.push(item),
            (Some(_), Value::Object(m)) if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") => {}
            (Some(_), Value::Object(_)) => items.push(item),
            (Some(_), other) => return Err(wrong_type("map[string]interface {}", Some(other))),
        }
    }
    let (mut at, mut in_order) = (0, 0);
    while at < items.len() && in_order < order.len() {
        if items[at].get(DIRECTIVE).is_some() {
            at += 1;
            continue;
        }
        let same = match key {
            None => items[at] == &order[in_order],
            Some(key) => {
                let key_of = |item: &Value| match item {
                    Value::Object(m) => m.get(key).cloned().ok_or_else(|| no_merge_key(item, key)),
                    other => Err(wrong_type("map[string]interface {}", Some(other))),
                };
                key_of(items[at])? == key_of(&order[in_order])?
            }
        };
        if same {
            at += 1;
        }
        in_order += 1;
    }
    if at < items.len() {
        return Err(StrategicError::OrderMismatch {
            patch: go_value(&Value::Array(patched.to_vec())),
            order: go_value(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

/// apimachinery's `mergeSlice`: a list merged as a set of scalars, or by `key` item by item,
/// then ordered.
fn merge_list(
    current: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&str>,
    inner: Schema,
    delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if current.is_empty() && patch.is_empty() {
        return Ok(current);
    }
    if element_type(&current, &patch)? != GoType::Map {
        if delete_list {
            return Ok(current.into_iter().filter(|v| !patch.contains(v)).collect());
        }
        let mut merged: Vec<Value> = Vec::new();
        for item in current.iter().chain(&patch) {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        let (patched, others) = merged.into_iter().partition(|v| patch.contains(v));
        return normalize_order(patched, others, &patch, &current, None);
    }
    let key = key.ok_or(StrategicError::NoMergeKeyForList)?;
    let (current, patch) = special_items(current, patch, key)?;
    let mut merged = current.clone();
    for item in &patch {
        let Value::Object(fields) = item else { continue };
        let wanted = fields.get(key).ok_or_else(|| no_merge_key(item, key))?;
        match merged.iter_mut().find(|m| m.get(key) == Some(wanted)) {
            Some(found) => {
                let Value::Object(found_fields) = found.take() else { unreachable!("all items are maps") };
                *found = Value::Object(merge_map(found_fields, fields.clone(), inner)?);
            }
            // A new item goes in as the patch has it, directives and nulls included.
            None => merged.push(item.clone()),
        }
    }
    let (patched, others) = partition(merged, &patch, Some(key))?;
    normalize_order(patched, others, &patch, &current, Some(key))
}

/// apimachinery's `mergeSliceWithSpecialElements`: `$patch: delete` items remove the object's
/// items with their key; `$patch: replace` makes the patch's other items the whole list.
fn special_items(mut current: Vec<Value>, patch: Vec<Value>, key: &str) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let wanted = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                current.retain(|c| c.get(key) != Some(wanted));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(StrategicError::MergeDirectiveInList),
            _ => return Err(unknown_directive(directive, item.as_object().unwrap_or(&Map::new()))),
        }
    }
    Ok(if replace { (plain, Vec::new()) } else { (current, plain) })
}

/// The items of `merged` that `by` names (by `key`, or as scalars), and the others.
fn partition(merged: Vec<Value>, by: &[Value], key: Option<&str>) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let Some(key) = key else { return Ok(merged.into_iter().partition(|v| by.contains(v))) };
    let (mut named, mut others) = (Vec::new(), Vec::new());
    for item in merged {
        let Value::Object(fields) = &item else { return Err(wrong_type("map[string]interface {}", Some(&item))) };
        let wanted = fields.get(key).ok_or_else(|| no_merge_key(&item, key))?;
        let mut found = false;
        for (i, b) in by.iter().enumerate() {
            let Value::Object(b) = b else { return Err(StrategicError::NotAMap(i)) };
            if b.get(key) == Some(wanted) {
                found = true;
                break;
            }
        }
        if found {
            named.push(item)
        } else {
            others.push(item)
        }
    }
    Ok((named, others))
}

/// apimachinery's `normalizeElementOrder`: `patched` sorted by `patch_order`, `others` by
/// `server_order`, then merged: an item of `others` goes before a patched item only when both
/// were in the object and it came first there.
fn normalize_order(
    mut patched: Vec<Value>,
    mut others: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, StrategicError> {
    if let Some(key) = key {
        if let Some(item) = patched.iter().chain(patch_order).chain(&others).chain(server_order).find(|v| v.get(key).is_none()) {
            return Err(no_merge_key(item, key));
        }
    }
    let index = |list: &[Value], item: &Value| match key {
        Some(key) => list.iter().position(|l| l.get(key) == item.get(key)),
        None => list.iter().position(|l| l == item),
    };
    patched.sort_by_key(|v| index(patch_order, v));
    others.sort_by_key(|v| index(server_order, v));
    let mut out = Vec::with_capacity(patched.len() + others.len());
    let (mut others, mut patched) = (others.into_iter().peekable(), patched.into_iter().peekable());
    loop {
        let next = match (others.peek(), patched.peek()) {
            (None, None) => break,
            (Some(_), None) => others.next(),
            (Some(o), Some(p)) if matches!((index(server_order, o), index(server_order, p)), (Some(i), Some(j)) if i < j) => others.next(),
            _ => patched.next(),
        };
        out.extend(next);
    }
    Ok(out)
}

/// Go's dynamic type of a decoded JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

impl GoType {
    /// As apimachinery decodes: integers as int64, other numbers as float64.
    fn of(v: &Value) -> GoType {
        match v {
            Value::Null => GoType::Nil,
            Value::Bool(_) => GoType::Bool,
            Value::Number(n) if n.is_i64() => GoType::Int,
            Value::Number(_) => GoType::Float,
            Value::String(_) => GoType::String,
            Value::Array(_) => GoType::Slice,
            Value::Object(_) => GoType::Map,
        }
    }

    /// `reflect.Type`'s name, as `%s` prints it.
    fn name(self) -> &'static str {
        match self {
            GoType::Nil => "%!s(<nil>)",
            GoType::Bool => "bool",
            GoType::Int => "int64",
            GoType::Float => "float64",
            GoType::String => "string",
            GoType::Slice => "[]interface {}",
            GoType::Map => "map[string]interface {}",
        }
    }
}

/// apimachinery's `sliceElementType`: the one type of the items of both lists.
fn element_type(current: &[Value], patch: &[Value]) -> Result<GoType, StrategicError> {
    let mut seen = None;
    for item in current.iter().chain(patch) {
        let t = GoType::of(item);
        match seen {
            None if t == GoType::Slice => return Err(StrategicError::ListOfLists),
            None => seen = Some(t),
            Some(s) if s != t => {
                return Err(StrategicError::MixedList(go_value(&Value::Array(vec![
                    Value::Array(current.to_vec()),
                    Value::Array(patch.to_vec()),
                ]))))
            }
            Some(_) => {}
        }
    }
    seen.ok_or(StrategicError::NoElements)
}

/// Go's `%v` of a decoded JSON value, as apimachinery's errors print maps and lists.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or_default()),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        // serde_json's maps are sorted, as Go prints them.
        Value::Object(m) => format!("map[{}]", m.iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect::<Vec<_>>().join(" ")),
        Value::Bool(b) => b.to_string(),
    }
}

/// `%v` of a float64 (`strconv`'s shortest `%g`): plain digits for exponents -4 to 5, else
/// `1.5e+06` style.
fn go_float(f: f64) -> String {
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    match exp.parse::<i32>().unwrap_or_default() {
        exp if f == 0.0 || (-4..6).contains(&exp) => format!("{f}"),
        exp => format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON patch (evanphx/json-patch v4 `Patch.Apply`)

/// `doc` with every operation of `patch` applied in order, or the first failure.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) => ops.as_slice(),
        Value::Null => &[],
        other => {
            return Err(PatchError::Json(format!("json: cannot unmarshal {} into Go value of type jsonpatch.Patch", json_type(other))))
        }
    };
    // Go decodes the whole patch before applying any of it.
    if let Some(op) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(PatchError::Json(format!("json: cannot unmarshal {} into Go value of type jsonpatch.Operation", json_type(op))));
    }
    let mut doc = doc.clone();
    let none = Map::new();
    for op in ops {
        apply_operation(&mut doc, op.as_object().unwrap_or(&none)).map_err(PatchError::Operation)?;
    }
    Ok(doc)
}

/// Go's name of a JSON value's type in `json: cannot unmarshal ...`.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One operation's fields, read as the library reads them.
struct Op<'a>(&'a Map);

impl Op<'_> {
    /// `op`, or `unknown` when absent or not a string.
    fn kind(&self) -> &str {
        self.0.get("op").and_then(Value::as_str).unwrap_or("unknown")
    }

    fn string(&self, name: &str, missing: &str) -> Result<&str, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(format!("{missing}: missing value")),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(format!("json: cannot unmarshal {} into Go value of type string", json_type(other))),
        }
    }

    fn path(&self) -> Result<&str, String> {
        self.string("path", "operation missing path field")
    }

    fn from(&self) -> Result<&str, String> {
        self.string("from", "operation, missing from field")
    }

    /// `value`; an operation without one writes `null`.
    fn value(&self) -> Option<&Value> {
        self.0.get("value")
    }
}

fn apply_operation(doc: &mut Value, op: &Map) -> Result<(), String> {
    let op = Op(op);
    let missing = |what: &str, path: &str| format!("{what}: {path}: missing value");
    match op.kind() {
        "add" => {
            let path = op.path().map_err(|_| "add operation failed to decode path: missing value")?;
            let (parent, key) =
                find(doc, path).ok_or_else(|| missing("add operation does not apply: doc is missing path", &format!("\"{path}\"")))?;
            insert(parent, &key, op.value().cloned().unwrap_or_default()).map_err(|e| format!("error in add for path: '{path}': {e}"))
        }
        "remove" => {
            let path = op.path().map_err(|_| "remove operation failed to decode path: missing value")?;
            let (parent, key) =
                find(doc, path).ok_or_else(|| missing("remove operation does not apply: doc is missing path", &format!("\"{path}\"")))?;
            take(parent, &key).map(drop).map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "replace" => {
            let path = op.path().map_err(|e| format!("replace operation failed to decode path: {e}"))?;
            if path.is_empty() {
                // The whole document, by an object or a list only; any other value is ignored.
                if let Some(v @ (Value::Object(_) | Value::Array(_))) = op.value() {
                    *doc = v.clone();
                }
                return Ok(());
            }
            let (parent, key) = find(doc, path).ok_or_else(|| missing("replace operation does not apply: doc is missing path", path))?;
            // A missing object key is no error: the library's lookup of one never fails.
            get(parent, &key).map_err(|_| missing("replace operation does not apply: doc is missing key", path))?;
            set(parent, &key, op.value().cloned().unwrap_or_default()).map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "move" => {
            let from = op.from().map_err(|e| format!("move operation failed to decode from: {e}"))?;
            let (parent, key) = find(doc, from).ok_or_else(|| missing("move operation does not apply: doc is missing from path", from))?;
            get(parent, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let value = take(parent, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let path = op.path().map_err(|e| format!("move operation failed to decode path: {e}"))?;
            let (parent, key) =
                find(doc, path).ok_or_else(|| missing("move operation does not apply: doc is missing destination path", path))?;
            insert(parent, &key, value).map_err(|e| format!("error in move for path: '{path}': {e}"))
        }
        "copy" => {
            let from = op.from().map_err(|e| format!("copy operation failed to decode from: {e}"))?;
            let (parent, key) = find(doc, from).ok_or_else(|| missing("copy operation does not apply: doc is missing from path", from))?;
            // A missing key copies as null.
            let value = get(parent, &key).map_err(|e| format!("error in copy for from: '{from}': {e}"))?.cloned().unwrap_or_default();
            let path = op.path().map_err(|_| "copy operation failed to decode path: missing value")?;
            let (parent, key) =
                find(doc, path).ok_or_else(|| missing("copy operation does not apply: doc is missing destination path", path))?;
            insert(parent, &key, value).map_err(|e| format!("error while adding value during copy: {e}"))
        }
        "test" => {
            let path = op.path().map_err(|e| format!("test operation failed to decode path: {e}"))?;
            let failed = || format!("testing value {path} failed: test failed");
            if path.is_empty() {
                return if op.value().is_some_and(|v| go_equal(doc, v)) { Ok(()) } else { Err(failed()) };
            }
            let (parent, key) = find(doc, path).ok_or_else(|| missing("test operation does not apply: is missing path", path))?;
            let found = get(parent, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?.filter(|v| !v.is_null());
            // An absent (or null) value passes a test against null. (Without `value`, kubectl
            // crashes there; emu fails the test.)
            match (found, op.value()) {
                (None, Some(Value::Null)) => Ok(()),
                (Some(found), Some(wanted)) if go_equal(found, wanted) => Ok(()),
                _ => Err(failed()),
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// The library's `findObject`: the container holding the location `path` names, and the
/// location's key. Every token but the first and the last must lead to an object or a list
/// (the first is whatever precedes the first `/`, normally nothing).
fn find<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let tokens: Vec<String> = path.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let [_, steps @ .., last] = tokens.as_slice() else { return None };
    let mut at = doc;
    for step in steps {
        at = match at {
            Value::Object(m) => m.get_mut(step.as_str()),
            Value::Array(a) => index(step, a.len()).ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .filter(|next| next.is_object() || next.is_array())?;
    }
    Some((at, last.clone()))
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(token: &str) -> Result<i64, String> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {token:?}: invalid syntax"));
    }
    token.parse().map_err(|_| format!("strconv.Atoi: parsing {token:?}: value out of range"))
}

fn invalid_index(i: i64) -> String {
    format!("Unable to access invalid index: {i}: invalid index referenced")
}

/// The index of an existing item of a list of `len` (negative: from the end).
fn index(token: &str, len: usize) -> Result<usize, String> {
    let (i, len) = (atoi(token)?, len as i64);
    if i < -len || i >= len {
        return Err(invalid_index(i));
    }
    Ok(if i < 0 { i + len } else { i } as usize)
}

/// The value at `key` of a container (None: an object without that key).
fn get<'a>(container: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match container {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => Ok(Some(&a[index(key, a.len())?])),
        _ => Err("not a container".into()),
    }
}

/// Replaces the value at `key` (`replace`, after [`get`] found it).
fn set(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            let i = index(key, a.len())?;
            a[i] = value;
        }
        _ => return Err("not a container".into()),
    }
    Ok(())
}

/// Puts `value` at `key` (`add`): a field is set, an item is inserted before the one at the
/// index (negative: counted from the end of the longer list), `-` appends.
fn insert(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) if key == "-" => a.push(value),
        Value::Array(a) => {
            let i = atoi(key).map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let room = a.len() as i64 + 1;
            if i >= room || i < -room {
                return Err(invalid_index(i));
            }
            a.insert(if i < 0 { i + room } else { i } as usize, value);
        }
        _ => return Err("not a container".into()),
    }
    Ok(())
}

/// Removes and returns the value at `key`.
fn take(container: &mut Value, key: &str) -> Result<Value, String> {
    match container {
        Value::Object(m) => m.remove(key).ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
        Value::Array(a) => Ok(a.remove(index(key, a.len())?)),
        _ => Err("not a container".into()),
    }
}

/// The library's equality of `test`: numbers by value (`80` is `80.0`), objects by their
/// fields, lists item by item.
fn go_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| go_equal(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| go_equal(v, w))),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    //! Every expected value here is what `kubectl patch --local -o json` (1.32) printed for the
    //! same object and patch.
    use super::*;
    use serde_json::json;

    /// The tutorial's Service.
    fn my_nginx() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-nginx", "namespace": "default", "labels": {"run": "my-nginx"}},
            "spec": {"type": "NodePort", "selector": {"run": "my-nginx"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP"},
                          {"name": "https", "port": 443, "protocol": "TCP"}]}})
    }

    fn web() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["a/x", "b/y"]},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "template": {"spec": {
                "containers": [
                    {"name": "nginx", "image": "nginx:1.25", "args": ["-g", "daemon off;"],
                     "ports": [{"containerPort": 80}, {"containerPort": 443, "name": "https"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]},
                    {"name": "sidecar", "image": "busybox"}],
                "tolerations": [{"key": "x", "operator": "Exists"}]}}}})
    }

    fn strategic(object: &Value, patch: Value) -> Result<Value, PatchError> {
        apply_local(PatchType::Strategic, object, &PatchText::Yaml(patch))
    }

    fn pod_spec(object: &Value, patch: Value) -> Value {
        strategic(object, json!({"spec": {"template": {"spec": patch}}})).unwrap()["spec"]["template"]["spec"].clone()
    }

    fn names(list: &Value, key: &str) -> Vec<String> {
        list.as_array().unwrap().iter().map(|i| i[key].to_string().trim_matches('"').to_string()).collect()
    }

    fn json_err(doc: &Value, patch: Value) -> String {
        apply_local(PatchType::Json, doc, &PatchText::Yaml(patch)).unwrap_err().to_string()
    }

    #[test]
    fn patch_types_and_their_names() {
        assert_eq!("strategic".parse(), Ok(PatchType::Strategic));
        assert_eq!("Merge".parse(), Ok(PatchType::Merge));
        assert_eq!("json".parse(), Ok(PatchType::Json));
        let e = "jsonpatch".parse::<PatchType>().unwrap_err();
        assert_eq!(e.to_string(), "--type must be one of [json merge strategic], not \"jsonpatch\"");
    }

    #[test]
    fn patches_read_as_json_or_yaml() {
        assert_eq!(parse(r#"{"spec":{"type":"NodePort"}}"#).unwrap(), json!({"spec": {"type": "NodePort"}}));
        assert_eq!(parse("spec:\n  type: NodePort\n").unwrap(), json!({"spec": {"type": "NodePort"}}));
        let e = parse(r#"{"spec":"#).unwrap_err().to_string();
        assert!(e.starts_with(r#"unable to parse "{\"spec\":": EOF while parsing"#), "{e}");
        // kubectl's reading: `{…}` is left to the patch type, anything else is YAML.
        assert_eq!(read(" {\"a\":").unwrap(), PatchText::Json(" {\"a\":".into()));
        assert_eq!(read("[{op: remove, path: /a}]").unwrap(), PatchText::Yaml(json!([{"op": "remove", "path": "/a"}])));
        assert_eq!(read("").unwrap_err().to_string(), "must specify --patch or --patch-file containing the contents of the patch");
        assert!(read("spec: [").unwrap_err().to_string().starts_with("unable to parse \"spec: [\": "));
    }

    #[test]
    fn each_patch_type_words_a_bad_patch_its_own_way() {
        let svc = my_nginx();
        let local = |ty, text: &str| apply_local(ty, &svc, &read(text).unwrap()).unwrap_err().to_string();
        assert_eq!(local(PatchType::Json, r#"{"spec":"#), "unexpected end of JSON input");
        assert_eq!(local(PatchType::Json, r#"{"a":1}}"#), "invalid character '}' after top-level value");
        assert_eq!(local(PatchType::Json, r#"{"a" 1}"#), "invalid character '1' after object key");
        assert_eq!(local(PatchType::Json, r#"{"a":1,}"#), "invalid character '}' looking for beginning of object key string");
        assert_eq!(local(PatchType::Json, r#"{"a":[1,]}"#), "invalid character ']' looking for beginning of value");
        assert_eq!(local(PatchType::Json, r#"{"a":"\q"}"#), "invalid character 'q' in string escape code");
        assert_eq!(local(PatchType::Json, r#"{"a":tru}"#), "invalid character '}' in literal true (expecting 'e')");
        assert_eq!(local(PatchType::Json, r#"{"a":1.}"#), "invalid character '}' after decimal point in numeric literal");
        assert_eq!(local(PatchType::Json, r#"{"a":-}"#), "invalid character '}' in numeric literal");
        assert_eq!(local(PatchType::Json, "{\"a\":\"x\ny\"}"), "invalid character '\\n' in string literal");
        assert_eq!(local(PatchType::Json, r#"{"a":1e}"#), "invalid character '}' in exponent of numeric literal");
        assert_eq!(local(PatchType::Json, r#"{"a":"\u12x"}"#), "invalid character 'x' in \\u hexadecimal character escape");
        assert_eq!(local(PatchType::Json, "{\"a\":[1 2]}"), "invalid character '2' after array element");
        assert_eq!(local(PatchType::Json, "{\"a\":1 \"b\"}"), "invalid character '\"' after object key:value pair");
        assert_eq!(local(PatchType::Json, "{\"a\":nul"), "invalid character ' ' in literal null (expecting 'l')");
        assert_eq!(
            local(PatchType::Json, "{\"a\":[{}, [], 0, -1.5e+3, \"\\u00e9\", true, false, null]}"),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(local(PatchType::Json, r#"{"op":"add"}"#), "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        assert_eq!(local(PatchType::Json, "x"), "json: cannot unmarshal string into Go value of type jsonpatch.Patch");
        assert_eq!(local(PatchType::Json, "[add]"), "json: cannot unmarshal string into Go value of type jsonpatch.Operation");
        assert_eq!(local(PatchType::Merge, r#"{"spec":"#), "Invalid JSON Patch");
        assert_eq!(local(PatchType::Merge, "null"), "Invalid JSON Patch");
        assert_eq!(local(PatchType::Merge, "[{a: null}]"), "json: cannot unmarshal array into Go value of type unstructured.detector");
        assert_eq!(local(PatchType::Strategic, r#"{"spec":"#), "invalid JSON document");
        assert_eq!(local(PatchType::Strategic, "[1]"), "invalid JSON document");
        // `null` patches nothing but a merge patch; a JSON patch of `null` has no operations.
        assert_eq!(apply_local(PatchType::Strategic, &svc, &read("null").unwrap()).unwrap(), svc);
        assert_eq!(apply_local(PatchType::Json, &svc, &read("null").unwrap()).unwrap(), svc);
        // Kinds kubectl has no Go type for are not strategic-merged locally.
        let fault = json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "f"}, "spec": {"a": 1}});
        let e = strategic(&fault, json!({"spec": {"a": 2}})).unwrap_err();
        assert_eq!(e.to_string(), "strategic merge patch is not supported for emu.dev/v1, Kind=Fault locally, try --type merge");
        let foo = json!({"apiVersion": "v1", "kind": "Foo"});
        assert_eq!(
            strategic(&foo, json!({})).unwrap_err().to_string(),
            "strategic merge patch is not supported for /v1, Kind=Foo locally, try --type merge"
        );
        assert!(strategic(&json!({"apiVersion": "v1", "kind": "PodList"}), json!({})).is_ok());
        // The result must still be an object with a kind.
        let e = apply_local(PatchType::Merge, &svc, &read(r#"{"kind":null,"spec":null,"metadata":null}"#).unwrap()).unwrap_err();
        assert_eq!(e.to_string(), r#"Object 'Kind' is missing in '{"apiVersion":"v1"}'"#);
    }

    #[test]
    fn merge_patch_is_rfc7386_with_evanphx_pruning() {
        // The RFC's own example (appendix A, abridged).
        let target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "x"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
        let want = json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "x", "phoneNumber": "+01-123-456-7890"});
        assert_eq!(merge_patch(&target, &patch).unwrap(), want);
        // A new value loses its null fields, also those of objects in its lists (the lists keep
        // their nulls); a value replacing an object keeps them.
        let cm = json!({"data": {"a": "x", "n": {"q": 1}}});
        let patch = json!({"data": {"a": null, "z": {"q": null, "r": [{"s": null, "t": 1}, null]}, "n": [{"q": null}]}});
        assert_eq!(merge_patch(&cm, &patch).unwrap(), json!({"data": {"z": {"r": [{"t": 1}, null]}, "n": [{"q": null}]}}));
        assert_eq!(merge_patch(&json!({"a": "foo"}), &json!({"a": {"bb": {"ccc": null}}})).unwrap(), json!({"a": {"bb": {}}}));
        assert_eq!(merge_patch(&json!({"e": null}), &json!({"e": {"a": null, "b": 1}})).unwrap(), json!({"e": {"b": 1}}));
        assert_eq!(merge_patch(&json!({"a": "b"}), &json!(["c", null, {"d": null}])).unwrap(), json!(["c", null, {}]));
        assert_eq!(merge_patch(&json!({"a": "b"}), &json!(5)), Err(PatchError::InvalidMergePatch));
    }

    #[test]
    fn strategic_lists_merge_by_key_in_apimachinerys_order() {
        let svc = my_nginx();
        // The issue's case: a port added while another is deleted goes first.
        let out = strategic(&svc, json!({"spec": {"ports": [{"port": 8443, "name": "alt"}, {"port": 8080, "$patch": "delete"}]}})).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"name": "alt", "port": 8443}, {"name": "https", "port": 443, "protocol": "TCP"}]));
        // A patched item keeps its place among the object's; a merge patch replaces the list.
        let patch = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 30443}]}});
        let out = strategic(&svc, patch.clone()).unwrap();
        assert_eq!(names(&out["spec"]["ports"], "name"), ["http", "https"]);
        assert_eq!(out["spec"]["ports"][1]["nodePort"], 30443);
        assert_eq!(merge_patch(&svc, &patch).unwrap()["spec"]["ports"], json!([{"port": 443, "nodePort": 30443}]));
        // New items go before the object's unless a patched item that was in the object
        // follows them there: live [A, B, C] patched with [D, B] is [D, A, B, C], with [C, A]
        // it is [B, C, A].
        let spec =
            pod_spec(&web(), json!({"containers": [{"name": "nginx", "env": [{"name": "D", "value": "4"}, {"name": "B", "value": "x"}]}]}));
        assert_eq!(names(&spec["containers"][0]["env"], "name"), ["D", "A", "B", "C"]);
        assert_eq!(spec["containers"][0]["env"][2], json!({"name": "B", "value": "x"}));
        let spec =
            pod_spec(&web(), json!({"containers": [{"name": "nginx", "env": [{"name": "C", "value": "x"}, {"name": "A", "value": "y"}]}]}));
        assert_eq!(names(&spec["containers"][0]["env"], "name"), ["B", "C", "A"]);
        let spec = pod_spec(&web(), json!({"containers": [{"name": "new", "image": "x"}, {"name": "nginx", "image": "y"}]}));
        assert_eq!(names(&spec["containers"], "name"), ["new", "nginx", "sidecar"]);
        // Lists without a merge key are replaced, nulls and all.
        assert_eq!(
            pod_spec(&web(), json!({"tolerations": [{"key": "y", "value": null}]}))["tolerations"],
            json!([{"key": "y", "value": null}])
        );
        // An empty patch list keeps the object's; a merge key of another type is another key.
        assert_eq!(
            pod_spec(&web(), json!({"containers": [{"name": "nginx", "ports": []}]}))["containers"][0]["ports"],
            web()["spec"]["template"]["spec"]["containers"][0]["ports"]
        );
        let ports = pod_spec(&web(), json!({"containers": [{"name": "nginx", "ports": [{"containerPort": 80.0, "name": "h"}]}]}))
            ["containers"][0]["ports"]
            .clone();
        assert_eq!(ports.as_array().unwrap().len(), 3);
        // Scalar sets: finalizers.
        let out = strategic(&web(), json!({"metadata": {"finalizers": ["c/z", "a/x"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c/z", "a/x", "b/y"]));
    }

    #[test]
    fn strategic_new_values_are_cleaned_but_new_list_items_are_not() {
        // A field the object lacks: nulls and `$patch` maps dropped (a map that is one is not
        // added at all); an item appended to a merged list goes in exactly as written.
        let spec = pod_spec(
            &web(),
            json!({"hostAliases": [{"ip": "1", "$patch": "delete"}, {"ip": "2", "x": null, "y": {"$patch": "delete"}}],
                   "securityContext": {"$patch": "replace", "runAsUser": 1},
                   "containers": [{"name": "new", "args": null, "env": [{"name": "Q", "$patch": "delete"}]}]}),
        );
        assert_eq!(spec["hostAliases"], json!([{"ip": "2"}]));
        assert!(spec.get("securityContext").is_none(), "{spec}");
        assert_eq!(spec["containers"][0], json!({"name": "new", "args": null, "env": [{"name": "Q", "$patch": "delete"}]}));
        // A value of another type replaces, cleaned the same way (and so can vanish).
        let out =
            strategic(&web(), json!({"spec": {"strategy": "x", "template": {"spec": {"containers": {"$patch": "replace"}}}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], "x");
        assert!(out["spec"]["template"]["spec"].get("containers").is_none());
    }

    #[test]
    fn strategic_directives() {
        // `$patch` in a map: replace it, or empty it.
        let out = strategic(&web(), json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = strategic(&web(), json!({"spec": {"strategy": {"$patch": "delete"}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({}));
        // `$patch: replace` in a list: the patch's items are the list.
        let spec = pod_spec(&web(), json!({"containers": [{"name": "x", "image": "n"}, {"$patch": "replace"}]}));
        assert_eq!(spec["containers"], json!([{"name": "x", "image": "n"}]));
        // `$retainKeys`: the object keeps only the fields named.
        let out = strategic(&web(), json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // `$setElementOrder`: the order given, the items it leaves out where they were.
        let spec = pod_spec(
            &web(),
            json!({"containers": [{"name": "nginx", "$setElementOrder/env": [{"name": "C"}, {"name": "D"}, {"name": "A"}], "env": [{"name": "D", "value": "4"}]}]}),
        );
        assert_eq!(names(&spec["containers"][0]["env"], "name"), ["B", "C", "D", "A"]);
        let spec = pod_spec(&web(), json!({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}));
        assert_eq!(names(&spec["containers"], "name"), ["sidecar", "nginx"]);
        let out = strategic(&web(), json!({"metadata": {"$setElementOrder/finalizers": ["z", "b/y"], "finalizers": ["z"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "a/x", "b/y"]));
        // `$deleteFromPrimitiveList`: from a list of scalars, whatever its strategy; null removes
        // the list.
        let spec = pod_spec(&web(), json!({"containers": [{"name": "nginx", "$deleteFromPrimitiveList/args": ["-g"]}]}));
        assert_eq!(spec["containers"][0]["args"], json!(["daemon off;"]));
        let out = strategic(&web(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"], "finalizers": ["q"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["q", "b/y"]));
        let out = strategic(&web(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null}})).unwrap();
        assert!(out["metadata"].get("finalizers").is_none());
        // Unknown `$` keys are plain fields.
        assert_eq!(strategic(&web(), json!({"metadata": {"$foo": [1]}})).unwrap()["metadata"]["$foo"], json!([1]));
    }

    #[test]
    fn strategic_errors_are_apimachinerys() {
        let svc = my_nginx();
        let web = web();
        let container =
            |patch: Value| strategic(&web, json!({"spec": {"template": {"spec": {"containers": [patch]}}}})).unwrap_err().to_string();
        let cases = [
            (
                strategic(&svc, json!({"spec": {"ports": [{"targetPort": 8080, "name": "x"}]}})),
                "map: map[name:x targetPort:8080] does not contain declared merge key: port",
            ),
            (strategic(&svc, json!({"spec": {"selector": {"$patch": "bogus"}}})), "unknown patch type: bogus in map: map[$patch:bogus]"),
            (strategic(&svc, json!({"metadata": {"$retainKeys": "a"}})), "invalid patch format of retainKeys"),
            (strategic(&svc, json!({"spec": {"$retainKeys": ["type"], "selector": {"a": "b"}}})), "invalid patch format of retainKeys"),
            (strategic(&svc, json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}})), "invalid patch format of primitive list"),
            (strategic(&svc, json!({"metadata": {"$setElementOrder": ["a"]}})), "invalid patch format of setElementOrder list"),
            (
                strategic(&svc, json!({"metadata": {"$setElementOrder/finalizers": "a"}})),
                "expected a []interface {}, but received a string",
            ),
            (
                strategic(&svc, json!({"metadata": {"$setElementOrder/finalizers": null}})),
                "expected a []interface {}, but received a %!s(<nil>)",
            ),
            (
                strategic(&svc, json!({"spec": {"ports": [{"port": 443, "$patch": 5}]}})),
                "unknown patch type: %!s(int64=5) in map: map[$patch:5 port:443]",
            ),
            (
                strategic(&svc, json!({"spec": {"ports": [{"port": 443, "$patch": null}]}})),
                "unknown patch type: %!s(<nil>) in map: map[$patch:<nil> port:443]",
            ),
            (
                strategic(&web, json!({"spec": {"template": {"spec": {"$deleteFromPrimitiveList/tolerations": [{"key": "x"}]}}}})),
                "cannot merge lists without merge key for struct",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap_err().to_string(), want);
        }
        assert_eq!(
            container(json!({"name": "nginx", "ports": [{"$patch": "delete"}]})),
            "map: map[$patch:delete] does not contain declared merge key: containerPort"
        );
        assert_eq!(
            container(json!({"name": "nginx", "ports": [{"containerPort": 1, "$patch": "merge"}]})),
            "merging lists cannot yet be specified in the patch"
        );
        assert_eq!(
            container(json!({"name": "nginx", "ports": [{"containerPort": 1000000, "name": "h"}, {"containerPort": 9, "name": {"a": 2.5}}, 7]})),
            "list element types are not identical: [[map[containerPort:80] map[containerPort:443 name:https]] [map[containerPort:1000000 name:h] map[containerPort:9 name:map[a:2.5]] 7]]"
        );
        let node = |cidrs: Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "x"}, "spec": {"podCIDRs": cidrs}});
        let cidrs = |node: Value, patch: Value| strategic(&node, json!({"spec": {"podCIDRs": patch}})).unwrap_err().to_string();
        assert_eq!(cidrs(node(json!([["a"]])), json!(["b"])), "lists of lists are not supported");
        assert_eq!(cidrs(node(json!(["a", 1])), json!(["b", 2.5, true])), "list element types are not identical: [[a 1] [b 2.5 true]]");
        let e = strategic(
            &web,
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "new"}, {"name": "nginx"}],
            "containers": [{"name": "nginx", "image": "z"}, {"name": "new", "image": "n"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The order in patch list:\n[map[image:z name:nginx] map[image:n name:new]]\n doesn't match $setElementOrder list:\n[map[name:new] map[name:nginx]]\n"
        );
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.5), "123456.5");
        assert_eq!(go_float(0.00001), "1e-05");
    }

    #[test]
    fn json_patch_operations() {
        let svc = my_nginx();
        let patch = json!([
            {"op": "test", "path": "/spec/type", "value": "NodePort"},
            {"op": "test", "path": "/spec/ports/0/port", "value": 8080.0},
            {"op": "replace", "path": "/spec/type", "value": "ClusterIP"},
            {"op": "remove", "path": "/spec/ports/0/protocol"},
            {"op": "remove", "path": "/spec/ports/-1/protocol"},
            {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 8443}},
            {"op": "add", "path": "/spec/ports/0", "value": {"port": 1}},
            {"op": "copy", "from": "/metadata/labels/run", "path": "/metadata/labels/tilde~0"},
            {"op": "move", "from": "/spec/ports/0", "path": "/spec/extra"},
        ]);
        let out = json_patch(&svc, &patch).unwrap();
        assert_eq!(out["spec"]["type"], "ClusterIP");
        assert_eq!(out["metadata"]["labels"], json!({"run": "my-nginx", "app.kubernetes.io/name": "web", "tilde~": "my-nginx"}));
        assert_eq!(names(&out["spec"]["ports"], "port"), ["8080", "443", "8443"]);
        assert!(out["spec"]["ports"].as_array().unwrap().iter().all(|p| p.get("protocol").is_none()), "{out}");
        assert_eq!(out["spec"]["extra"], json!({"port": 1}));
        // A test of an absent field against null passes.
        assert!(json_patch(&svc, &json!([{"op": "test", "path": "/spec/nope", "value": null}])).is_ok());
    }

    #[test]
    fn json_patch_is_as_lenient_as_evanphx_v4() {
        let svc = my_nginx();
        let one = |op: Value| json_patch(&svc, &json!([op])).unwrap();
        // `replace` of a missing key adds it; `add` without value and `copy` from a missing key
        // write null.
        assert_eq!(one(json!({"op": "replace", "path": "/spec/foo", "value": 1}))["spec"]["foo"], 1);
        assert_eq!(one(json!({"op": "add", "path": "/spec/foo"}))["spec"]["foo"], Value::Null);
        assert!(one(json!({"op": "add", "path": "/spec/foo"}))["spec"].get("foo").is_some());
        assert!(one(json!({"op": "copy", "from": "/spec/nope", "path": "/spec/foo"}))["spec"].as_object().unwrap().contains_key("foo"));
        // Negative indices count from the end (of the longer list, for `add`).
        assert_eq!(
            names(&one(json!({"op": "add", "path": "/spec/ports/-1", "value": {"port": 1}}))["spec"]["ports"], "port"),
            ["8080", "443", "1"]
        );
        assert_eq!(
            names(&one(json!({"op": "add", "path": "/spec/ports/-3", "value": {"port": 1}}))["spec"]["ports"], "port"),
            ["1", "8080", "443"]
        );
        assert_eq!(names(&one(json!({"op": "remove", "path": "/spec/ports/+1"}))["spec"]["ports"], "port"), ["8080"]);
        // A path without its leading `/` loses its first token; `/` names the empty key.
        assert_eq!(one(json!({"op": "add", "path": "spec/x", "value": 1}))["x"], 1);
        assert_eq!(one(json!({"op": "add", "path": "/spec/", "value": 1}))["spec"][""], 1);
        // `replace` of the whole document takes an object or a list, and ignores anything else.
        assert_eq!(one(json!({"op": "replace", "path": "", "value": {"a": 1}})), json!({"a": 1}));
        assert_eq!(one(json!({"op": "replace", "path": "", "value": 5})), svc);
    }

    #[test]
    fn json_patch_errors_are_evanphx_json_patchs() {
        let svc = my_nginx();
        let cases = [
            (json!([{"op": "replace", "path": "/spec/ports/5", "value": 1}]), "Object to be patched is missing field (/spec/ports/5: missing value)"),
            (json!([{"op": "replace", "path": "/spec/ports/-", "value": 1}]), "Object to be patched is missing field (/spec/ports/-: missing value)"),
            (
                json!([{"op": "replace", "path": "/spec/foo/bar", "value": 1}]),
                "replace operation does not apply: doc is missing path: /spec/foo/bar: missing value",
            ),
            (json!([{"op": "add", "path": "", "value": 1}]), "add operation does not apply: doc is missing path: \"\": missing value"),
            (json!([{"op": "add", "path": "/nope/x", "value": 1}]), "add operation does not apply: doc is missing path: \"/nope/x\": missing value"),
            (
                json!([{"op": "add", "path": "/spec/ports/-/x", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/spec/ports/-/x\": missing value",
            ),
            (
                json!([{"op": "add", "path": "/spec/ports/3", "value": 1}]),
                "error in add for path: '/spec/ports/3': Unable to access invalid index: 3: invalid index referenced",
            ),
            (
                json!([{"op": "add", "path": "/spec/ports/-4", "value": 1}]),
                "error in add for path: '/spec/ports/-4': Unable to access invalid index: -4: invalid index referenced",
            ),
            (
                json!([{"op": "add", "path": "/spec/ports/x", "value": 1}]),
                "error in add for path: '/spec/ports/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (json!([{"op": "remove", "path": "/spec/nope"}]), "error in remove for path: '/spec/nope': Unable to remove nonexistent key: nope: missing value"),
            (json!([{"op": "remove", "path": "/a/b"}]), "remove operation does not apply: doc is missing path: \"/a/b\": missing value"),
            (
                json!([{"op": "remove", "path": "/spec/ports/-3"}]),
                "error in remove for path: '/spec/ports/-3': Unable to access invalid index: -3: invalid index referenced",
            ),
            (json!([{"op": "remove", "path": "/spec/ports/-"}]), "error in remove for path: '/spec/ports/-': strconv.Atoi: parsing \"-\": invalid syntax"),
            (json!([{"op": "test", "path": "/spec/type", "value": "ClusterIP"}]), "testing value /spec/type failed: test failed"),
            (json!([{"op": "test", "path": "/spec/type"}]), "testing value /spec/type failed: test failed"),
            (json!([{"op": "test", "path": "", "value": {"a": 1}}]), "testing value  failed: test failed"),
            (json!([{"op": "test", "path": "/spec/ports/0/port", "value": "8080"}]), "testing value /spec/ports/0/port failed: test failed"),
            (
                json!([{"op": "test", "path": "/spec/ports/5", "value": null}]),
                "error in test for path: '/spec/ports/5': Unable to access invalid index: 5: invalid index referenced",
            ),
            (json!([{"op": "move", "from": "/x/y", "path": "/spec/z"}]), "move operation does not apply: doc is missing from path: /x/y: missing value"),
            (
                json!([{"op": "move", "from": "/spec/nope", "path": "/spec/foo"}]),
                "error in move for path: 'nope': Unable to remove nonexistent key: nope: missing value",
            ),
            (
                json!([{"op": "move", "from": "/spec/type", "path": "/x/y"}]),
                "move operation does not apply: doc is missing destination path: /x/y: missing value",
            ),
            (json!([{"op": "copy", "from": "/x/y", "path": "/spec/z"}]), "copy operation does not apply: doc is missing from path: /x/y: missing value"),
            (json!([{"op": "frobnicate", "path": "/spec"}]), "Unexpected kind: frobnicate"),
            (json!([{"op": 5, "path": "/a"}]), "Unexpected kind: unknown"),
            (json!([{"path": "/a", "value": 1}]), "Unexpected kind: unknown"),
            (json!([{"op": "add", "value": 1}]), "add operation failed to decode path: missing value"),
            (json!([{"op": "remove"}]), "remove operation failed to decode path: missing value"),
            (json!([{"op": "replace", "value": 1}]), "replace operation failed to decode path: operation missing path field: missing value"),
            (
                json!([{"op": "replace", "path": 5, "value": 1}]),
                "replace operation failed to decode path: json: cannot unmarshal number into Go value of type string",
            ),
            (json!([{"op": "test", "value": 1}]), "test operation failed to decode path: operation missing path field: missing value"),
            (json!([{"op": "move", "path": "/a"}]), "move operation failed to decode from: operation, missing from field: missing value"),
            (json!([{"op": "move", "from": "/spec/type"}]), "move operation failed to decode path: operation missing path field: missing value"),
            (json!([{"op": "copy", "path": "/a"}]), "copy operation failed to decode from: operation, missing from field: missing value"),
            (json!([{"op": "copy", "from": "/spec/type"}]), "copy operation failed to decode path: missing value"),
            (json!([{"op": "remove", "path": "/kind"}]), ""),
            (json!([{"op": "replace", "path": "", "value": [1]}]), "json: cannot unmarshal array into Go value of type unstructured.detector"),
            (json!([{"op": "frobnicate"}, "x"]), "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        ];
        for (patch, want) in cases {
            let got = json_err(&svc, patch.clone());
            if want.is_empty() {
                assert!(got.starts_with("Object 'Kind' is missing in '{\"apiVersion\":\"v1\",\"metadata\":"), "{got}");
            } else {
                assert_eq!(got, want, "{patch}");
            }
        }
        // All or nothing: the first operations of a failing patch leave no trace (the input is
        // untouched; the caller keeps it).
        let bad = json!([{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}, {"op": "remove", "path": "/nope"}]);
        assert!(json_patch(&svc, &bad).is_err());
        assert_eq!(svc, my_nginx());
    }
}
