//! A list request's options as kube-apiserver reads them: field selectors (with each kind's
//! selectable fields), `limit` and `continue` (apimachinery `ListOptions`; issue 17 facts 4.1,
//! 11). Pure: the handler applies them to the store's snapshot.

use super::status::{ApiError, FieldError};
use base64::Engine;
use emu_api::object;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    /// `!=` rather than `=`/`==`.
    pub negated: bool,
}

/// The fields of `kind` a selector may name besides `metadata.name` and `metadata.namespace`
/// (the field label conversions of kube-apiserver's core types).
fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        _ => &[],
    }
}

/// Kinds whose unknown field labels get the core types' message rather than the generic one.
const CORE_CONVERSIONS: [&str; 5] = ["Pod", "Event", "Secret", "Namespace", "Node"];

/// Parses a `fieldSelector` for objects of `kind` (`a=b,c!=d`, `==` as `=`), refusing fields
/// the kind cannot be selected by with kube-apiserver's 400.
pub fn parse_field_selector(kind: &str, selector: &str) -> Result<Vec<FieldTerm>, ApiError> {
    let mut terms = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, false)
        } else {
            return Err(ApiError::bad_request(format!("invalid selector: '{selector}'; can't understand '{term}'")));
        };
        let field = field.trim();
        if !matches!(field, "metadata.name" | "metadata.namespace") && !selectable_fields(kind).contains(&field) {
            return Err(ApiError::bad_request(if CORE_CONVERSIONS.contains(&kind) {
                format!("field label not supported: {field}")
            } else {
                format!("{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
            }));
        }
        terms.push(FieldTerm { field: field.to_string(), value: value.trim().to_string(), negated });
    }
    Ok(terms)
}

/// The value a field selector compares for `field` of `obj`: strings as they are, booleans as
/// `true`/`false` (a missing one `false`), a missing string "".
fn field_value(obj: &Value, field: &str) -> String {
    let path: Vec<&str> = match field {
        "source" => vec!["source", "component"],
        // kube-apiserver selects on the first of status.podIPs.
        "status.podIP" => {
            let first = obj.pointer("/status/podIPs/0/ip").or_else(|| obj.pointer("/status/podIP"));
            return first.and_then(Value::as_str).unwrap_or("").to_string();
        }
        f => f.split('.').collect(),
    };
    match object::at(obj, &path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if matches!(field, "spec.hostNetwork" | "spec.unschedulable") => "false".into(),
        _ => String::new(),
    }
}

/// Whether `obj` satisfies every term.
pub fn fields_match(terms: &[FieldTerm], obj: &Value) -> bool {
    terms.iter().all(|t| (field_value(obj, &t.field) == t.value) != t.negated)
}

/// A continue token: where the next page starts, and the resource version of the first page
/// (which every page of the list reports). The shape of kube-apiserver's own, base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`, `<key>` being `namespace/name` (or
/// `name` for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continue {
    v: String,
    pub rv: u64,
    start: String,
}

impl Continue {
    /// The token for a page that ended with the object (`namespace`, `name`).
    pub fn after(rv: u64, namespace: &str, name: &str) -> Continue {
        let key = if namespace.is_empty() { name.to_string() } else { format!("{namespace}/{name}") };
        Continue { v: "meta.k8s.io/v1".into(), rv, start: format!("{key}\u{0}") }
    }

    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a token serializes"))
    }

    /// Reads a token, with kube-apiserver's 400 for one that is not.
    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let invalid = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|e| invalid(&e.to_string()))?;
        let c: Continue = serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
        if c.v != "meta.k8s.io/v1" {
            return Err(invalid(&format!("incorrect encoded start resourceVersion (version {})", c.v)));
        }
        if c.rv == 0 {
            return Err(invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
        }
        if !c.start.ends_with('\u{0}') {
            return Err(invalid("continue key is not valid"));
        }
        Ok(c)
    }

    /// Whether the object (`namespace`, `name`) comes after where this token starts.
    pub fn admits(&self, namespace: &str, name: &str) -> bool {
        let last = self.start.trim_end_matches('\u{0}');
        let (last_ns, last_name) = match last.split_once('/') {
            Some((ns, n)) if !namespace.is_empty() => (ns, n),
            _ => ("", last),
        };
        (namespace, name) > (last_ns, last_name)
    }
}

/// What a list's `resourceVersion` and `resourceVersionMatch` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersion {
    /// Unset or "0": the most recent state (emu's store is always consistent, so both are it).
    Any,
    /// At least this version (`N`, or `N` with `NotOlderThan`).
    NotOlderThan(u64),
    /// Exactly this version.
    Exact(u64),
}

/// Checks a list's options as kube-apiserver does (`ValidateListOptions`: 422 on
/// `ListOptions.meta.k8s.io`), and reads the version asked for.
pub fn list_options(
    resource_version: Option<&str>,
    version_match: Option<&str>,
    continued: bool,
    send_initial_events: bool,
) -> Result<ResourceVersion, ApiError> {
    let rv = resource_version.unwrap_or("");
    let mut errors = Vec::new();
    let forbidden =
        |field: &'static str, detail: &str| FieldError { reason: "FieldValueForbidden", field, body: format!("Forbidden: {detail}") };
    let version_match = version_match.unwrap_or("");
    if !version_match.is_empty() {
        if rv.is_empty() {
            errors.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"));
        }
        if continued {
            errors.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
        }
        if !matches!(version_match, "Exact" | "NotOlderThan") {
            errors.push(FieldError {
                reason: "FieldValueNotSupported",
                field: "resourceVersionMatch",
                body: format!("Unsupported value: {version_match:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
            });
        }
        if version_match == "Exact" && rv == "0" {
            errors.push(forbidden("resourceVersionMatch", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
        }
    }
    if send_initial_events {
        errors.push(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errors));
    }
    if matches!(rv, "" | "0") {
        return Ok(ResourceVersion::Any);
    }
    let n: u64 = rv.parse().map_err(|e| ApiError::bad_request(format!("invalid resource version: {e}")))?;
    Ok(if version_match == "Exact" { ResourceVersion::Exact(n) } else { ResourceVersion::NotOlderThan(n) })
}

/// Whether the store at `current` can answer for `wanted`: a version it has not reached is
/// kube-apiserver's 504; an exact older one is gone (emu keeps no snapshots of the past).
pub fn check_resource_version(wanted: ResourceVersion, current: u64) -> Result<(), ApiError> {
    match wanted {
        ResourceVersion::NotOlderThan(n) | ResourceVersion::Exact(n) if n > current => {
            Err(ApiError::too_large_resource_version(n, current))
        }
        ResourceVersion::Exact(n) if n < current => Err(ApiError::expired("The resourceVersion for the provided list is too old.")),
        _ => Ok(()),
    }
}

/// `limit`: a positive page size, or none (absent, 0 or negative: everything).
pub fn parse_limit(limit: Option<&str>) -> Result<Option<usize>, ApiError> {
    match limit {
        None | Some("") => Ok(None),
        Some(text) => {
            let n: i64 = text.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid value {text:?} for limit: strconv.ParseInt: parsing {text:?}: invalid syntax"))
            })?;
            Ok(usize::try_from(n).ok().filter(|n| *n > 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"},
                         "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.3"}]}});
        let t = parse_field_selector("Pod", "spec.nodeName=n1,status.phase!=Failed,status.phase!=Succeeded").unwrap();
        assert!(fields_match(&t, &pod));
        assert!(fields_match(&parse_field_selector("Pod", "metadata.name==p,status.podIP=10.244.0.3").unwrap(), &pod));
        assert!(!fields_match(&parse_field_selector("Pod", "metadata.namespace=kube-system").unwrap(), &pod));
        assert!(fields_match(&parse_field_selector("Pod", "spec.hostNetwork=false").unwrap(), &pod));
        assert!(fields_match(&parse_field_selector("Pod", "").unwrap(), &pod));
        assert_eq!(parse_field_selector("Pod", "foo=bar").unwrap_err().message, "field label not supported: foo");
        let e = parse_field_selector("Deployment", "spec.replicas=1").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
        );
        assert_eq!(
            parse_field_selector("Pod", "nonsense").unwrap_err().message,
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
        let event = json!({"involvedObject": {"kind": "Service", "name": "x"}, "source": {"component": "kubelet"}});
        assert!(fields_match(
            &parse_field_selector("Event", "involvedObject.kind=Service,involvedObject.name=x,source=kubelet").unwrap(),
            &event
        ));
    }

    #[test]
    fn continue_tokens() {
        let c = Continue::after(42, "default", "b");
        let token = c.encode();
        let back = Continue::decode(&token).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.rv, 42);
        assert!(
            !back.admits("default", "a") && !back.admits("default", "b") && back.admits("default", "c") && back.admits("kube-system", "a")
        );
        let cluster = Continue::after(7, "", "node-1");
        assert!(cluster.admits("", "node-2") && !cluster.admits("", "node-0"));
        // kube-apiserver's token format, readable by anyone who base64-decodes it.
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "{\"v\":\"meta.k8s.io/v1\",\"rv\":42,\"start\":\"default/b\\u0000\"}");
        for bad in ["!!", "e30", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"v\":\"x\",\"rv\":1,\"start\":\"a\\u0000\"}")]
        {
            let e = Continue::decode(bad).unwrap_err();
            assert!(e.code == 400 && e.message.starts_with("continue key is not valid: "), "{bad}: {e:?}");
        }
    }

    #[test]
    fn list_options_as_kube_apiserver_checks_them() {
        assert_eq!(list_options(None, None, false, false).unwrap(), ResourceVersion::Any);
        assert_eq!(list_options(Some("0"), None, false, false).unwrap(), ResourceVersion::Any);
        assert_eq!(list_options(Some("12"), None, false, false).unwrap(), ResourceVersion::NotOlderThan(12));
        assert_eq!(list_options(Some("12"), Some("Exact"), false, false).unwrap(), ResourceVersion::Exact(12));
        let e = list_options(None, Some("NotOlderThan"), false, false).unwrap_err();
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (
                422,
                "Invalid",
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        );
        let json = e.to_json(false);
        assert!(json.contains("\"details\":{\"group\":\"meta.k8s.io\",\"kind\":\"ListOptions\",\"causes\":[{\"reason\":\"FieldValueForbidden\",\"message\":\"Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided\",\"field\":\"resourceVersionMatch\"}]}"), "{json}");
        let e = list_options(Some("0"), Some("Exact"), true, true).unwrap_err();
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided, \
             resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\", \
             sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list]"
        );
        assert!(list_options(Some("1"), Some("Newest"), false, false)
            .unwrap_err()
            .message
            .contains("Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\""));
        assert_eq!(list_options(Some("x"), None, false, false).unwrap_err().code, 400);

        assert!(check_resource_version(ResourceVersion::NotOlderThan(5), 7).is_ok());
        assert!(check_resource_version(ResourceVersion::Exact(7), 7).is_ok());
        assert_eq!(check_resource_version(ResourceVersion::Exact(5), 7).unwrap_err().code, 410);
        let e = check_resource_version(ResourceVersion::NotOlderThan(9), 7).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (504, "Timeout: Too large resource version: 9, current: 7"));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(Some("500")).unwrap(), Some(500));
        assert_eq!(parse_limit(Some("0")).unwrap(), None);
        assert_eq!(parse_limit(Some("-1")).unwrap(), None);
        assert_eq!(parse_limit(None).unwrap(), None);
        assert_eq!(parse_limit(Some("x")).unwrap_err().code, 400);
    }
}
