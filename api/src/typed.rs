//! Typed objects: every kind emu serves decoded into k8s-openapi's structs (emu's own Fault stays
//! JSON, read by [`crate::fault`]). Decoding is what kube-apiserver does with a request body:
//! unknown fields are dropped, a field of the wrong type fails the whole object, a missing
//! required field takes Go's zero value. Admission ([`crate::admission`]) decodes once; code that
//! reads stored objects decodes them with [`decode`] (a serde decode, not field look-ups).
//!
//! Why k8s-openapi: its types are complete and named as Kubernetes names them, and decoding into
//! them drops what kube-apiserver drops. Its encoding keeps what Go's `omitempty` would drop (an
//! empty string, list or map the user wrote), which is also what emu stored before, so a round
//! trip of every object the tests and scenarios create changes nothing but what Kubernetes
//! changes too: `null` fields go, and a Quantity written as a number becomes a string
//! (`cpu: 1` → `cpu: "1"`).

use crate::field::{go_value, FieldError, FieldErrorKind};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use crate::gateway::{Gateway, GatewayClass, HTTPRoute};
pub use k8s_openapi;
pub use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet, StatefulSetSpec,
};
pub use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec};
pub use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, Endpoints, EnvVar, Event, Namespace, Node, Pod, PodSpec, PodTemplateSpec, Probe, Secret, Service,
    ServiceAccount, ServicePort, ServiceSpec, ServiceStatus, Toleration, Volume, VolumeMount,
};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressClassSpec, IngressRule, IngressServiceBackend, IngressSpec, IngressTLS,
};
pub use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// An object of a kind emu serves, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    Node(Box<Node>),
    Namespace(Box<Namespace>),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    DaemonSet(Box<DaemonSet>),
    StatefulSet(Box<StatefulSet>),
    ControllerRevision(Box<ControllerRevision>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    Service(Box<Service>),
    Endpoints(Box<Endpoints>),
    EndpointSlice(Box<EndpointSlice>),
    Ingress(Box<Ingress>),
    IngressClass(Box<IngressClass>),
    GatewayClass(Box<GatewayClass>),
    Gateway(Box<Gateway>),
    HTTPRoute(Box<HTTPRoute>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Event(Box<Event>),
    ServiceAccount(Box<ServiceAccount>),
    Role(Box<Role>),
    ClusterRole(Box<ClusterRole>),
    RoleBinding(Box<RoleBinding>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    /// emu's own `emu.dev/v1` Fault, whose spec [`crate::fault::parse`] reads.
    Fault(Value),
}

/// A decode that failed: the field (dotted, as validation names fields) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub FieldError);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a stored or received object into its type (no clone of the JSON). A value of the
/// wrong type is named as validation names fields (`spec.ports[0].port: Invalid value: "80":
/// must be of type integer`), found by [`locate`] once the decode has failed. One plain serde
/// decode for admission and for every reader: serde_path_to_error, which tracked the path while
/// decoding, made a second copy of every decoder (measured: 212 KiB of the node agent's text
/// and 0.6 MiB of the controller's), in processes that run once per node.
pub fn decode<T: DeserializeOwned>(v: &Value) -> Result<T, DecodeError> {
    T::deserialize(v).map_err(|_| DecodeError(locate(v, &|v| T::deserialize(v).map(drop))))
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Finds the value that makes `root` fail to decode as `T`, by decoding trimmed copies: a
/// missing field never fails a decode (it takes its zero value), so a copy that keeps one child
/// of a container and fails has the culprit in that child. A container that fails even empty
/// is itself of the wrong type. Only a failed decode pays for this: a few dozen decodes of one
/// object. Not generic (the decode is passed in), so its code is not repeated for every type.
fn locate(root: &Value, decodes: &dyn Fn(&Value) -> Result<(), serde_json::Error>) -> FieldError {
    let mut candidate = root.clone();
    // Where the culprit is in `root` (reported), and in `candidate`, whose arrays shrink to the
    // one element kept (navigated).
    let (mut reported, mut navigated) = (Vec::new(), Vec::new());
    let mut error = decodes(&candidate).err();
    'descend: loop {
        let node = node_mut(&mut candidate, &navigated);
        let full = std::mem::take(node);
        // At the top, kind and apiVersion stay: a decoder may check them.
        let kept = |k: &str| navigated.is_empty() && (k == "kind" || k == "apiVersion");
        let (empty, children): (Value, Vec<(Segment, Value)>) = match &full {
            Value::Object(m) => (
                Value::Object(m.iter().filter(|(k, _)| kept(k)).map(|(k, v)| (k.clone(), v.clone())).collect()),
                m.iter().filter(|(k, _)| !kept(k)).map(|(k, v)| (Segment::Key(k.clone()), v.clone())).collect(),
            ),
            Value::Array(a) => (Value::Array(vec![]), a.iter().enumerate().map(|(i, v)| (Segment::Index(i), v.clone())).collect()),
            _ => {
                *node_mut(&mut candidate, &navigated) = full;
                break;
            }
        };
        *node_mut(&mut candidate, &navigated) = empty.clone();
        if let Err(e) = decodes(&candidate) {
            error = Some(e);
            *node_mut(&mut candidate, &navigated) = full;
            break;
        }
        for (segment, child) in children {
            let mut only = empty.clone();
            let step = match (&mut only, &segment) {
                (Value::Object(m), Segment::Key(k)) => {
                    m.insert(k.clone(), child);
                    Segment::Key(k.clone())
                }
                (Value::Array(a), Segment::Index(_)) => {
                    a.push(child);
                    Segment::Index(0)
                }
                _ => unreachable!("children match their container"),
            };
            *node_mut(&mut candidate, &navigated) = only;
            if let Err(e) = decodes(&candidate) {
                error = Some(e);
                reported.push(segment);
                navigated.push(step);
                continue 'descend;
            }
        }
        // No child fails alone: the culprit is the combination, reported here.
        *node_mut(&mut candidate, &navigated) = full;
        break;
    }
    let message = error.map(|e| e.to_string()).unwrap_or_else(|| "does not decode".into());
    field_error(root, &reported, &message)
}

/// The value at `path` (which exists: the path was built from it).
fn node_mut<'a>(mut v: &'a mut Value, path: &[Segment]) -> &'a mut Value {
    for segment in path {
        v = match segment {
            Segment::Key(k) => &mut v[k.as_str()],
            Segment::Index(i) => &mut v[*i],
        };
    }
    v
}

/// Decodes every object of `values` that decodes, in order; the others are left out (a store
/// only holds what admission decoded, so none is).
pub fn decode_all<'a, T: DeserializeOwned>(values: impl IntoIterator<Item = &'a Value>) -> Vec<T> {
    values.into_iter().filter_map(|v| decode(v).ok()).collect()
}

/// The JSON of a typed object, as stored and sent.
pub fn encode<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("k8s-openapi's types always encode")
}

impl Object {
    /// Decodes an object of `kind` (one of [`crate::kinds::KINDS`]) as a client sent it.
    pub fn decode(kind: &str, v: &Value) -> Result<Object, DecodeError> {
        Ok(match kind {
            "Pod" => Object::Pod(decode(v)?),
            "Node" => Object::Node(decode(v)?),
            "Namespace" => Object::Namespace(decode(v)?),
            "Deployment" => Object::Deployment(decode(v)?),
            "ReplicaSet" => Object::ReplicaSet(decode(v)?),
            "DaemonSet" => Object::DaemonSet(decode(v)?),
            "StatefulSet" => Object::StatefulSet(decode(v)?),
            "ControllerRevision" => Object::ControllerRevision(decode(v)?),
            "Job" => Object::Job(decode(v)?),
            "CronJob" => Object::CronJob(decode(v)?),
            "Service" => Object::Service(decode(v)?),
            "Endpoints" => Object::Endpoints(decode(v)?),
            "EndpointSlice" => Object::EndpointSlice(decode(v)?),
            "Ingress" => Object::Ingress(decode(v)?),
            "IngressClass" => Object::IngressClass(decode(v)?),
            "GatewayClass" => Object::GatewayClass(decode(v)?),
            "Gateway" => Object::Gateway(decode(v)?),
            "HTTPRoute" => Object::HTTPRoute(decode(v)?),
            "ConfigMap" => Object::ConfigMap(decode(v)?),
            "Secret" => Object::Secret(decode(v)?),
            "Event" => Object::Event(decode(v)?),
            "ServiceAccount" => Object::ServiceAccount(decode(v)?),
            "Role" => Object::Role(decode(v)?),
            "ClusterRole" => Object::ClusterRole(decode(v)?),
            "RoleBinding" => Object::RoleBinding(decode(v)?),
            "ClusterRoleBinding" => Object::ClusterRoleBinding(decode(v)?),
            _ => Object::Fault(v.clone()),
        })
    }

    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Node(_) => "Node",
            Object::Namespace(_) => "Namespace",
            Object::Deployment(_) => "Deployment",
            Object::ReplicaSet(_) => "ReplicaSet",
            Object::DaemonSet(_) => "DaemonSet",
            Object::StatefulSet(_) => "StatefulSet",
            Object::ControllerRevision(_) => "ControllerRevision",
            Object::Job(_) => "Job",
            Object::CronJob(_) => "CronJob",
            Object::Service(_) => "Service",
            Object::Endpoints(_) => "Endpoints",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Ingress(_) => "Ingress",
            Object::IngressClass(_) => "IngressClass",
            Object::GatewayClass(_) => "GatewayClass",
            Object::Gateway(_) => "Gateway",
            Object::HTTPRoute(_) => "HTTPRoute",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Event(_) => "Event",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Role(_) => "Role",
            Object::ClusterRole(_) => "ClusterRole",
            Object::RoleBinding(_) => "RoleBinding",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Fault(_) => "Fault",
        }
    }

    /// The object's metadata (None for a Fault, whose metadata is [`decode_meta`]'s).
    pub fn metadata(&self) -> Option<&ObjectMeta> {
        Some(match self {
            Object::Pod(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::ControllerRevision(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
            Object::CronJob(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HTTPRoute(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Event(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::Fault(_) => return None,
        })
    }

    /// The object's JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Object::Pod(o) => encode(o),
            Object::Node(o) => encode(o),
            Object::Namespace(o) => encode(o),
            Object::Deployment(o) => encode(o),
            Object::ReplicaSet(o) => encode(o),
            Object::DaemonSet(o) => encode(o),
            Object::StatefulSet(o) => encode(o),
            Object::ControllerRevision(o) => encode(o),
            Object::Job(o) => encode(o),
            Object::CronJob(o) => encode(o),
            Object::Service(o) => encode(o),
            Object::Endpoints(o) => encode(o),
            Object::EndpointSlice(o) => encode(o),
            Object::Ingress(o) => encode(o),
            Object::IngressClass(o) => encode(o),
            Object::GatewayClass(o) => encode(o),
            Object::Gateway(o) => encode(o),
            Object::HTTPRoute(o) => encode(o),
            Object::ConfigMap(o) => encode(o),
            Object::Secret(o) => encode(o),
            Object::Event(o) => encode(o),
            Object::ServiceAccount(o) => encode(o),
            Object::Role(o) => encode(o),
            Object::ClusterRole(o) => encode(o),
            Object::RoleBinding(o) => encode(o),
            Object::ClusterRoleBinding(o) => encode(o),
            Object::Fault(v) => v.clone(),
        }
    }
}

/// The metadata of an object that stays JSON (an emu Fault), decoded; a field of the wrong type
/// is named from the object (`metadata.labels[n]`).
pub fn decode_meta(v: &Value) -> Result<ObjectMeta, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        metadata: Option<ObjectMeta>,
    }
    Ok(decode::<Meta>(v)?.metadata.unwrap_or_default())
}

/// Fields whose JSON object is a `map[string]string` (its keys are printed `field[key]`), not
/// a struct (`field.key`).
const STRING_MAPS: &[&str] =
    &["labels", "annotations", "matchLabels", "nodeSelector", "data", "binaryData", "stringData", "limits", "requests"];

/// A decode failure as validation words a value of the wrong type: the field in validation's
/// notation (`metadata.labels[n]`, `spec.ports[0].port`), the value as Go prints it, and the
/// type wanted (`must be of type string`).
fn field_error(v: &Value, path: &[Segment], inner: &str) -> FieldError {
    let mut field = String::new();
    let mut at = Some(v);
    let mut parent: Option<String> = None;
    for segment in path {
        match segment {
            Segment::Index(index) => {
                field.push_str(&format!("[{index}]"));
                at = at.and_then(|x| x.get(index));
            }
            Segment::Key(key) => {
                let map = parent.as_deref().is_some_and(|p| STRING_MAPS.contains(&p)) || (field == "spec.selector" && is_service(v));
                if map {
                    field.push_str(&format!("[{key}]"));
                } else {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                at = at.and_then(|x| x.get(key.as_str()));
                parent = Some(key.clone());
                continue;
            }
        }
        parent = None;
    }
    let wanted = inner.split(", expected ").nth(1).map(|w| w.split(" at line").next().unwrap_or(w));
    let kind = |detail: String, value: String| FieldError { field: field.clone(), kind: FieldErrorKind::Invalid(value), detail };
    match (wanted, at) {
        (Some(w), Some(value)) => kind(format!("must be of type {}", type_name(w)), go_value(value)),
        _ => kind(inner.to_string(), at.map(go_value).unwrap_or_else(|| "null".into())),
    }
}

fn is_service(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Service")
}

/// The JSON type a serde "expected …" names.
fn type_name(expected: &str) -> &'static str {
    let e = expected.to_ascii_lowercase();
    if e.contains("intorstring") {
        "integer or string"
    } else if e.contains("string") || e.contains("time") || e.contains("quantity") {
        "string"
    } else if e.contains("i32") || e.contains("i64") || e.contains("integer") || e.contains("u16") || e.contains("u32") || e.contains("f64")
    {
        "integer"
    } else if e.contains("bool") {
        "boolean"
    } else if e.contains("sequence") || e.contains("vec") {
        "array"
    } else {
        "object"
    }
}

/// Labels of an object (empty when it has none).
pub fn labels(meta: &ObjectMeta) -> &std::collections::BTreeMap<String, String> {
    static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// `(namespace, name)` of an object's metadata ("" when unset).
pub fn key(meta: &ObjectMeta) -> (&str, &str) {
    (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_decode_failure_names_the_field_as_validation_does() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"n": 1}}, "spec": {"ports": [{"port": 80}]}});
        let e = decode::<Service>(&svc).unwrap_err();
        assert_eq!(e.to_string(), "metadata.labels[n]: Invalid value: 1: must be of type string");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}]}});
        assert_eq!(decode::<Service>(&svc).unwrap_err().to_string(), "spec.ports[0].port: Invalid value: \"80\": must be of type integer");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"a": true}}});
        assert_eq!(decode::<Service>(&svc).unwrap_err().to_string(), "spec.selector[a]: Invalid value: true: must be of type string");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": {"port": 80}}});
        assert_eq!(decode::<Service>(&svc).unwrap_err().to_string(), "spec.ports: Invalid value: {\"port\":80}: must be of type array");
    }

    #[test]
    fn the_culprit_is_found_deep_in_lists_and_past_good_siblings() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": "x"}]}]}});
        assert_eq!(
            decode::<Pod>(&pod).unwrap_err().to_string(),
            "spec.containers[1].ports[1].containerPort: Invalid value: \"x\": must be of type integer"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": "p"});
        assert_eq!(decode::<Pod>(&pod).unwrap_err().to_string(), "metadata: Invalid value: \"p\": must be of type object");
        // Two wrong values: the first in the object's order is named, as a decoder meets it.
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": 1}, "spec": {"ports": [{"port": "80"}]}});
        assert_eq!(decode::<Service>(&svc).unwrap_err().to_string(), "metadata.name: Invalid value: 1: must be of type string");
        let svc =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": {}}]}});
        assert_eq!(
            decode::<Service>(&svc).unwrap_err().to_string(),
            "spec.ports[0].targetPort: Invalid value: {}: must be of type integer or string"
        );
    }

    #[test]
    fn round_trip_keeps_what_kubernetes_keeps() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {}},
            "spec": {"ports": [{"port": 80, "targetPort": "http", "name": ""}], "selector": null, "unknown": 1}, "status": {"loadBalancer": {}}});
        let typed: Service = decode(&svc).unwrap();
        assert_eq!(
            encode(&typed),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {}},
                "spec": {"ports": [{"port": 80, "targetPort": "http", "name": ""}]}, "status": {"loadBalancer": {}}})
        );
    }
}
