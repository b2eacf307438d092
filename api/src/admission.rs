//! Admission: what the API server does with an object it is asked to write, before anything
//! is stored, as one pure function that the API server and the CLI's offline checks both call.
//! The kind must be one emu serves; the namespace is filled (and must exist); a `generateName`
//! is expanded; Secret and ConfigMap data is decoded; the object is decoded into its type
//! ([`crate::typed`]) once, then defaulted and validated as that type with the API server's
//! messages. Allocation (ClusterIPs, node ports) is the registry's, in the controller, on the
//! admitted type.

use crate::kinds::{self, ResourceKind};
use crate::typed::Object;
use crate::validation::{self, Invalid};
use crate::{defaults, naming, object};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::fmt;

/// Why an object was not admitted, worded as the API server words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionError {
    /// The kind (in its `apiVersion`) is not served; kubectl says this before sending.
    NoMatch { name: String, namespace: String, kind: String, api_version: String },
    /// A 404: the object's namespace does not exist.
    NamespaceNotFound(String),
    /// A 400: the body cannot be decoded (Secret data that is not base64).
    BadRequest(String),
    /// A 422: `The Service "x" is invalid: …`.
    Invalid(Invalid),
}

impl fmt::Display for AdmissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmissionError::NoMatch { name, namespace, kind, api_version } => write!(
                f,
                "resource mapping not found for name: {name:?} namespace: {namespace:?}: no matches for kind {kind:?} in version {api_version:?}\nensure CRDs are installed first"
            ),
            AdmissionError::NamespaceNotFound(ns) => write!(f, "namespaces {ns:?} not found"),
            AdmissionError::BadRequest(msg) => f.write_str(msg),
            AdmissionError::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl std::error::Error for AdmissionError {}

/// An admitted object: its kind and the decoded, defaulted, valid object.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub kind: &'static ResourceKind,
    pub object: Object,
}

impl Admitted {
    /// The JSON to store.
    pub fn to_json(&self) -> Value {
        self.object.to_json()
    }
}

/// What admission needs from where it runs. The CLI's offline check uses [`Offline`]; the API
/// server answers from its store and adds the registry's steps of an update.
pub trait Context {
    /// Whether the namespace exists (or is created by the same request).
    fn namespace_exists(&self, _namespace: &str) -> bool {
        true
    }

    /// Randomness for a `generateName` (None: the name stays empty, as before the server sees it).
    fn name_entropy(&self) -> Option<[u8; 5]> {
        None
    }

    /// Called on the decoded, defaulted object just before validation (an update's registry
    /// steps: a Service's type-dependent fields and allocated values, SVC-11).
    fn before_validation(&self, _object: &mut Object) {}
}

/// Admission without a server: every namespace exists, names are not generated.
pub struct Offline;

impl Context for Offline {}

/// The served kind of an object, from its `kind` and `apiVersion`.
pub fn resource_kind(v: &Value) -> Result<&'static ResourceKind, AdmissionError> {
    let kind = object::kind(v);
    let api_version = object::str_at(v, &["apiVersion"]).unwrap_or("");
    kinds::by_kind(kind).filter(|rk| rk.api_version() == api_version).ok_or_else(|| AdmissionError::NoMatch {
        name: object::name(v).to_string(),
        namespace: object::namespace(v).to_string(),
        kind: kind.to_string(),
        api_version: api_version.to_string(),
    })
}

/// Admits one object: kind, namespace, generated name, data decoding, decode into the type,
/// defaults, validation. Nothing is written.
pub fn admit(mut v: Value, ctx: &dyn Context) -> Result<Admitted, AdmissionError> {
    let rk = resource_kind(&v)?;
    if rk.namespaced {
        if object::namespace(&v).is_empty() {
            object::metadata_mut(&mut v).insert("namespace".into(), json!("default"));
        }
        let ns = object::namespace(&v).to_string();
        if !ctx.namespace_exists(&ns) {
            return Err(AdmissionError::NamespaceNotFound(ns));
        }
    } else {
        object::metadata_mut(&mut v).remove("namespace");
    }
    if object::name(&v).is_empty() {
        if let (Some(base), Some(entropy)) = (object::str_at(&v, &["metadata", "generateName"]), ctx.name_entropy()) {
            let name = naming::generate_name(base, entropy);
            object::metadata_mut(&mut v).insert("name".into(), json!(name));
        }
    }
    decode_data(&mut v).map_err(AdmissionError::BadRequest)?;
    let undecoded = validation::Undecoded::of(&v);
    let mut object = Object::decode(rk.kind, &v).map_err(|e| {
        AdmissionError::Invalid(Invalid { kind: rk.kind.to_string(), name: object::name(&v).to_string(), causes: vec![e.0] })
    })?;
    defaults::object(&mut object);
    ctx.before_validation(&mut object);
    validation::validate(&object, undecoded).map_err(AdmissionError::Invalid)?;
    Ok(Admitted { kind: rk, object })
}

/// The API server's decoding of a Secret or ConfigMap (VOL-6), before defaults and validation:
/// base64 that does not decode fails the whole request as Kubernetes' decoder does (naming the
/// position, never the value), and a Secret's `stringData` is merged into `data`, winning on
/// clashes, and dropped (reads never return it).
pub fn decode_data(obj: &mut Value) -> Result<(), String> {
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let section = match kind.as_str() {
        "Secret" => "data",
        "ConfigMap" => "binaryData",
        _ => return Ok(()),
    };
    for value in obj[section].as_object().into_iter().flatten().map(|(_, v)| v) {
        let Some(text) = value.as_str() else { continue };
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
            let at = match e {
                base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                // Go stops at the incomplete last quantum.
                base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => text.len() - text.len() % 4,
            };
            return Err(format!("{kind} in version \"v1\" cannot be handled as a {kind}: illegal base64 data at input byte {at}"));
        }
    }
    if kind == "Secret" {
        let Some(map) = obj.as_object_mut() else { return Ok(()) };
        if let Some(Value::Object(strings)) = map.remove("stringData") {
            let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
            if !data.is_object() {
                *data = Value::Object(Map::new());
            }
            for (k, v) in strings {
                let text = v.as_str().unwrap_or("");
                data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Server;

    impl Context for Server {
        fn namespace_exists(&self, ns: &str) -> bool {
            ns == "default"
        }

        fn name_entropy(&self) -> Option<[u8; 5]> {
            Some([7; 5])
        }
    }

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-nginx"}, "spec": spec})
    }

    #[test]
    fn a_service_is_decoded_defaulted_and_validated_once() {
        let a = admit(svc(json!({"type": "NodePort", "ports": [{"port": 8080, "targetPort": 80, "name": "http"}]})), &Server).unwrap();
        assert_eq!(a.kind.kind, "Service");
        let Object::Service(s) = &a.object else { panic!("{a:?}") };
        let spec = s.spec.as_ref().unwrap();
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.port, port.protocol.as_deref(), port.target_port.clone()),
            (8080, Some("TCP"), Some(crate::typed::IntOrString::Int(80)))
        );
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(a.to_json()["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn errors_are_the_api_servers() {
        let e = admit(json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}), &Offline).unwrap_err();
        assert_eq!(e.to_string(), "resource mapping not found for name: \"w\" namespace: \"\": no matches for kind \"Widget\" in version \"v1\"\nensure CRDs are installed first");
        let mut other_ns = svc(json!({"ports": [{"port": 80}]}));
        other_ns["metadata"]["namespace"] = json!("dev");
        assert_eq!(admit(other_ns.clone(), &Server).unwrap_err(), AdmissionError::NamespaceNotFound("dev".into()));
        admit(other_ns, &Offline).unwrap();
        let e = admit(svc(json!({"ports": [{"port": 70000, "targetPort": 80}]})), &Offline).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The Service \"my-nginx\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        // A port that does not decode cannot be admitted (nor stored, nor dropped later).
        let e = admit(svc(json!({"ports": [{"port": "http"}]})), &Offline).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The Service \"my-nginx\" is invalid: spec.ports[0].port: Invalid value: \"http\": must be of type integer"
        );
        let e = admit(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"x": "!!"}}), &Offline).unwrap_err();
        assert!(matches!(e, AdmissionError::BadRequest(_)), "{e:?}");
    }

    #[test]
    fn every_kind_is_decoded_then_defaulted_and_validated() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
        let a = admit(pod.clone(), &Offline).unwrap();
        let Object::Pod(p) = &a.object else { panic!("{a:?}") };
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            (spec.restart_policy.as_deref(), spec.containers[0].ports.as_ref().unwrap()[0].protocol.as_deref()),
            (Some("Always"), Some("TCP"))
        );
        // A field of the wrong type fails the decode, worded as validation words it.
        let mut bad = pod.clone();
        bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("80");
        assert_eq!(
            admit(bad, &Offline).unwrap_err().to_string(),
            "The Pod \"p\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: \"80\": must be of type integer"
        );
        let mut bad = pod;
        bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(70000);
        assert_eq!(
            admit(bad, &Offline).unwrap_err().to_string(),
            "The Pod \"p\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        // A missing selector and an empty one decode alike; admission tells them apart.
        let deployment = |selector: Option<Value>| {
            let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
            if let Some(s) = selector {
                d["spec"]["selector"] = s;
            }
            admit(d, &Offline).unwrap_err().to_string()
        };
        assert!(
            deployment(None).starts_with("The Deployment \"d\" is invalid: \n* spec.selector: Required value\n"),
            "{}",
            deployment(None)
        );
        assert!(deployment(Some(json!({}))).contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"));
        let ns = admit(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}), &Offline).unwrap();
        assert_eq!(ns.to_json()["status"], json!({"phase": "Active"}));
        let e = admit(json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "Bad"}, "spec": {}}), &Offline).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("The Fault \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        let e = admit(json!({"apiVersion": "emu.dev/v1", "kind": "Fault", "metadata": {"name": "f", "labels": {"n": 1}}}), &Offline)
            .unwrap_err();
        assert_eq!(e.to_string(), "The Fault \"f\" is invalid: metadata.labels[n]: Invalid value: 1: must be of type string");
        let e = admit(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "Node_1"}}), &Offline).unwrap_err();
        assert!(e.to_string().starts_with("The Node \"Node_1\" is invalid: metadata.name: "), "{e}");
    }

    #[test]
    fn names_are_generated_only_by_a_server() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let a = admit(pod.clone(), &Server).unwrap();
        let Object::Pod(p) = &a.object else { panic!() };
        assert!(p.metadata.name.as_deref().is_some_and(|n| n.starts_with("web-") && n.len() == 9), "{:?}", p.metadata.name);
        let a = admit(pod, &Offline).unwrap();
        assert_eq!(a.to_json()["metadata"].get("name"), None);
    }

    #[test]
    fn string_data_is_merged_into_data_and_dropped() {
        let mut s =
            json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "B", "c": "c"}});
        decode_data(&mut s).unwrap();
        assert_eq!(s, json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Qg==", "c": "Yw=="}}));
        let mut s = json!({"kind": "Secret", "stringData": {"tls.crt": "x"}});
        decode_data(&mut s).unwrap();
        assert_eq!(s["data"], json!({"tls.crt": "eA=="}));
    }

    #[test]
    fn bad_base64_fails_naming_the_position_not_the_value() {
        let mut s = json!({"kind": "Secret", "data": {"x": "c2VjcmV0LXZhbHVl!!"}});
        let e = decode_data(&mut s).unwrap_err();
        assert_eq!(e, "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 16");
        let mut s = json!({"kind": "Secret", "data": {"x": "YQ"}});
        assert!(decode_data(&mut s).unwrap_err().ends_with("at input byte 0"));
        let mut cm = json!({"kind": "ConfigMap", "data": {"t": "not base64 and fine"}, "binaryData": {"b": "%%%%"}});
        assert_eq!(
            decode_data(&mut cm).unwrap_err(),
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: illegal base64 data at input byte 0"
        );
    }
}
