//! Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl sends that way: its
//! generators (`kubectl create configmap`, `create secret`, `create namespace`, `create
//! deployment`, `create service`) write through the typed clientset, which sends
//! `application/vnd.kubernetes.protobuf` and has no JSON fallback.
//!
//! The envelope is apimachinery's: the magic `k8s\0`, then a `runtime.Unknown` message (1: type
//! meta, 2: the object's bytes). The object's fields are read by their numbers in k8s.io/api's
//! `generated.proto` files (a table per message, [`Message`]) and written as the JSON the same
//! object has, so that admission sees what a JSON client would have sent. What the server sets
//! (uid, resourceVersion, timestamps, status) is dropped; any other field not in the tables
//! fails the request (415) rather than being lost.

use base64::Engine;
use serde_json::{json, Map, Value};

/// apimachinery's protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// One field of a protobuf message: a varint or a length-delimited run of bytes (fixed-width
/// fields are skipped; none of the fields read here has one).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("unexpected end of a varint")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint longer than 10 bytes".into())
}

/// The fields of a message, in order, with their numbers.
fn fields(b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((number, Field::Varint(varint(b, &mut at)?))),
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).map_err(|e| e.to_string())?;
                let bytes = b.get(at..at + len).ok_or("a field longer than its message")?;
                at += len;
                out.push((number, Field::Bytes(bytes)));
            }
            1 => at += 8,
            5 => at += 4,
            other => return Err(format!("wire type {other} is not supported")),
        }
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

/// How a field is read, and when Go's encoding of an unset value (Go writes every field that
/// is not a pointer) is left out as JSON leaves it out.
#[derive(Clone, Copy)]
enum Ty {
    /// A string; empty is unset.
    Str,
    /// An integer that is a pointer in Go (written only when set) or always meaningful.
    Int,
    /// An integer that is not a pointer in Go: 0 is unset.
    IntZ,
    /// A bool that is not a pointer in Go: false is unset.
    Bool,
    /// A `*bool`: written only when set.
    BoolPtr,
    /// `map<string, string>`.
    StrMap,
    /// `map<string, bytes>`, base64 in JSON.
    BytesMap,
    /// `map<string, Quantity>` (a Quantity is a message holding its string).
    QuantityMap,
    /// `intstr.IntOrString`.
    IntOrString,
    Msg(&'static Message),
    /// Read and dropped: what the server sets (uid, timestamps, status, managedFields).
    Skip,
}

/// A field of a message: its number, JSON name and type, and whether it is repeated.
struct F(u64, &'static str, Ty, bool);

/// A message's fields by number. A field not listed fails the request rather than being lost.
struct Message {
    name: &'static str,
    fields: &'static [F],
}

const OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        F(1, "name", Ty::Str, false),
        F(2, "generateName", Ty::Str, false),
        F(3, "namespace", Ty::Str, false),
        F(4, "selfLink", Ty::Skip, false),
        F(5, "uid", Ty::Skip, false),
        F(6, "resourceVersion", Ty::Skip, false),
        F(7, "generation", Ty::Skip, false),
        F(8, "creationTimestamp", Ty::Skip, false),
        F(9, "deletionTimestamp", Ty::Skip, false),
        F(10, "deletionGracePeriodSeconds", Ty::Skip, false),
        F(11, "labels", Ty::StrMap, false),
        F(12, "annotations", Ty::StrMap, false),
        F(14, "finalizers", Ty::Str, true),
        F(17, "managedFields", Ty::Skip, true),
    ],
};

const CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "data", Ty::StrMap, false),
        F(3, "binaryData", Ty::BytesMap, false),
        F(4, "immutable", Ty::BoolPtr, false),
    ],
};

const SECRET: Message = Message {
    name: "Secret",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "data", Ty::BytesMap, false),
        F(3, "type", Ty::Str, false),
        F(4, "stringData", Ty::StrMap, false),
        F(5, "immutable", Ty::BoolPtr, false),
    ],
};

const NAMESPACE: Message = Message {
    name: "Namespace",
    // Its spec (finalizers) and status are the server's.
    fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Skip, false), F(3, "status", Ty::Skip, false)],
};

const REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[F(1, "key", Ty::Str, false), F(2, "operator", Ty::Str, false), F(3, "values", Ty::Str, true)],
};

const LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[F(1, "matchLabels", Ty::StrMap, false), F(2, "matchExpressions", Ty::Msg(&REQUIREMENT), true)],
};

const CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        F(1, "name", Ty::Str, false),
        F(2, "hostPort", Ty::IntZ, false),
        F(3, "containerPort", Ty::Int, false),
        F(4, "protocol", Ty::Str, false),
        F(5, "hostIP", Ty::Str, false),
    ],
};

const ENV_VAR: Message = Message { name: "EnvVar", fields: &[F(1, "name", Ty::Str, false), F(2, "value", Ty::Str, false)] };

const RESOURCES: Message =
    Message { name: "ResourceRequirements", fields: &[F(1, "limits", Ty::QuantityMap, false), F(2, "requests", Ty::QuantityMap, false)] };

const CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        F(1, "name", Ty::Str, false),
        F(2, "image", Ty::Str, false),
        F(3, "command", Ty::Str, true),
        F(4, "args", Ty::Str, true),
        F(5, "workingDir", Ty::Str, false),
        F(6, "ports", Ty::Msg(&CONTAINER_PORT), true),
        F(7, "env", Ty::Msg(&ENV_VAR), true),
        F(8, "resources", Ty::Msg(&RESOURCES), false),
        F(13, "terminationMessagePath", Ty::Str, false),
        F(14, "imagePullPolicy", Ty::Str, false),
        F(16, "stdin", Ty::Bool, false),
        F(17, "stdinOnce", Ty::Bool, false),
        F(18, "tty", Ty::Bool, false),
        F(20, "terminationMessagePolicy", Ty::Str, false),
    ],
};

/// What a defaulted template holds (`securityContext: {}`), sent back by `kubectl create job
/// --from=cronjob/NAME`, and its common user and group fields.
const POD_SECURITY_CONTEXT: Message = Message {
    name: "PodSecurityContext",
    fields: &[
        F(2, "runAsUser", Ty::Int, false),
        F(3, "runAsNonRoot", Ty::BoolPtr, false),
        F(5, "fsGroup", Ty::Int, false),
        F(6, "runAsGroup", Ty::Int, false),
    ],
};

const POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        F(2, "containers", Ty::Msg(&CONTAINER), true),
        F(3, "restartPolicy", Ty::Str, false),
        F(4, "terminationGracePeriodSeconds", Ty::Int, false),
        F(5, "activeDeadlineSeconds", Ty::Int, false),
        F(6, "dnsPolicy", Ty::Str, false),
        F(7, "nodeSelector", Ty::StrMap, false),
        F(8, "serviceAccountName", Ty::Str, false),
        F(9, "serviceAccount", Ty::Str, false),
        F(10, "nodeName", Ty::Str, false),
        F(11, "hostNetwork", Ty::Bool, false),
        F(12, "hostPID", Ty::Bool, false),
        F(13, "hostIPC", Ty::Bool, false),
        F(14, "securityContext", Ty::Msg(&POD_SECURITY_CONTEXT), false),
        F(16, "hostname", Ty::Str, false),
        F(17, "subdomain", Ty::Str, false),
        F(19, "schedulerName", Ty::Str, false),
        F(21, "automountServiceAccountToken", Ty::BoolPtr, false),
        F(24, "priorityClassName", Ty::Str, false),
        F(30, "enableServiceLinks", Ty::BoolPtr, false),
    ],
};

const POD_TEMPLATE: Message =
    Message { name: "PodTemplateSpec", fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Msg(&POD_SPEC), false)] };

const STRATEGY: Message = Message { name: "DeploymentStrategy", fields: &[F(1, "type", Ty::Str, false)] };

const DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        F(1, "replicas", Ty::Int, false),
        F(2, "selector", Ty::Msg(&LABEL_SELECTOR), false),
        F(3, "template", Ty::Msg(&POD_TEMPLATE), false),
        F(4, "strategy", Ty::Msg(&STRATEGY), false),
        F(5, "minReadySeconds", Ty::IntZ, false),
        F(6, "revisionHistoryLimit", Ty::Int, false),
        F(7, "paused", Ty::Bool, false),
        F(9, "progressDeadlineSeconds", Ty::Int, false),
    ],
};

const DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "spec", Ty::Msg(&DEPLOYMENT_SPEC), false),
        F(3, "status", Ty::Skip, false),
    ],
};

const SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        F(1, "name", Ty::Str, false),
        F(2, "protocol", Ty::Str, false),
        F(3, "port", Ty::Int, false),
        F(4, "targetPort", Ty::IntOrString, false),
        F(5, "nodePort", Ty::IntZ, false),
        F(6, "appProtocol", Ty::Str, false),
    ],
};

const SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        F(1, "ports", Ty::Msg(&SERVICE_PORT), true),
        F(2, "selector", Ty::StrMap, false),
        F(3, "clusterIP", Ty::Str, false),
        F(4, "type", Ty::Str, false),
        F(5, "externalIPs", Ty::Str, true),
        F(7, "sessionAffinity", Ty::Str, false),
        F(8, "loadBalancerIP", Ty::Str, false),
        F(10, "externalName", Ty::Str, false),
        F(11, "externalTrafficPolicy", Ty::Str, false),
        F(12, "healthCheckNodePort", Ty::IntZ, false),
        F(13, "publishNotReadyAddresses", Ty::Bool, false),
        F(17, "ipFamilyPolicy", Ty::Str, false),
        F(18, "clusterIPs", Ty::Str, true),
        F(19, "ipFamilies", Ty::Str, true),
        F(20, "allocateLoadBalancerNodePorts", Ty::BoolPtr, false),
        F(22, "internalTrafficPolicy", Ty::Str, false),
    ],
};

const SERVICE: Message = Message {
    name: "Service",
    fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Msg(&SERVICE_SPEC), false), F(3, "status", Ty::Skip, false)],
};

const RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        F(1, "namespace", Ty::Str, false),
        F(2, "verb", Ty::Str, false),
        F(3, "group", Ty::Str, false),
        F(4, "version", Ty::Str, false),
        F(5, "resource", Ty::Str, false),
        F(6, "subresource", Ty::Str, false),
        F(7, "name", Ty::Str, false),
        F(8, "fieldSelector", Ty::Skip, false),
        F(9, "labelSelector", Ty::Skip, false),
    ],
};

const NON_RESOURCE_ATTRIBUTES: Message =
    Message { name: "NonResourceAttributes", fields: &[F(1, "path", Ty::Str, false), F(2, "verb", Ty::Str, false)] };

/// `kubectl auth can-i`'s question (authorization.k8s.io/v1).
const SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "spec", Ty::Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC), false),
        F(3, "status", Ty::Skip, false),
    ],
};

const SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        F(1, "resourceAttributes", Ty::Msg(&RESOURCE_ATTRIBUTES), false),
        F(2, "nonResourceAttributes", Ty::Msg(&NON_RESOURCE_ATTRIBUTES), false),
    ],
};

/// `kubectl auth can-i --list`'s question (authorization.k8s.io/v1): the namespace.
const SELF_SUBJECT_RULES_REVIEW: Message = Message {
    name: "SelfSubjectRulesReview",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "spec", Ty::Msg(&SELF_SUBJECT_RULES_REVIEW_SPEC), false),
        F(3, "status", Ty::Skip, false),
    ],
};

const SELF_SUBJECT_RULES_REVIEW_SPEC: Message =
    Message { name: "SelfSubjectRulesReviewSpec", fields: &[F(1, "namespace", Ty::Str, false)] };

/// `kubectl auth whoami`'s question (authentication.k8s.io/v1): nothing but itself.
const SELF_SUBJECT_REVIEW: Message =
    Message { name: "SelfSubjectReview", fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "status", Ty::Skip, false)] };

/// RBAC's kinds (k8s.io/api `rbac/v1/generated.proto`), which `kubectl create role`,
/// `clusterrole`, `rolebinding` and `clusterrolebinding` send.
const POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        F(1, "verbs", Ty::Str, true),
        F(2, "apiGroups", Ty::Str, true),
        F(3, "resources", Ty::Str, true),
        F(4, "resourceNames", Ty::Str, true),
        F(5, "nonResourceURLs", Ty::Str, true),
    ],
};

const AGGREGATION_RULE: Message =
    Message { name: "AggregationRule", fields: &[F(1, "clusterRoleSelectors", Ty::Msg(&LABEL_SELECTOR), true)] };

const ROLE: Message =
    Message { name: "Role", fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "rules", Ty::Msg(&POLICY_RULE), true)] };

const CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "rules", Ty::Msg(&POLICY_RULE), true),
        F(3, "aggregationRule", Ty::Msg(&AGGREGATION_RULE), false),
    ],
};

const SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        F(1, "kind", Ty::Str, false),
        F(2, "apiGroup", Ty::Str, false),
        F(3, "name", Ty::Str, false),
        F(4, "namespace", Ty::Str, false),
    ],
};

const ROLE_REF: Message =
    Message { name: "RoleRef", fields: &[F(1, "apiGroup", Ty::Str, false), F(2, "kind", Ty::Str, false), F(3, "name", Ty::Str, false)] };

/// A RoleBinding and a ClusterRoleBinding are the same message.
const ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "subjects", Ty::Msg(&SUBJECT), true),
        F(3, "roleRef", Ty::Msg(&ROLE_REF), false),
    ],
};

/// `kubectl create serviceaccount` (core/v1 `generated.proto`).
const SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "secrets", Ty::Msg(&OBJECT_REFERENCE), true),
        F(3, "imagePullSecrets", Ty::Msg(&LOCAL_OBJECT_REFERENCE), true),
        F(4, "automountServiceAccountToken", Ty::BoolPtr, false),
    ],
};

const OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        F(1, "kind", Ty::Str, false),
        F(2, "namespace", Ty::Str, false),
        F(3, "name", Ty::Str, false),
        F(4, "uid", Ty::Str, false),
        F(5, "apiVersion", Ty::Str, false),
        F(6, "resourceVersion", Ty::Str, false),
        F(7, "fieldPath", Ty::Str, false),
    ],
};

const LOCAL_OBJECT_REFERENCE: Message = Message { name: "LocalObjectReference", fields: &[F(1, "name", Ty::Str, false)] };

/// `kubectl create token`'s request (authentication.k8s.io/v1 `generated.proto`).
const TOKEN_REQUEST: Message = Message {
    name: "TokenRequest",
    fields: &[
        F(1, "metadata", Ty::Msg(&OBJECT_META), false),
        F(2, "spec", Ty::Msg(&TOKEN_REQUEST_SPEC), false),
        F(3, "status", Ty::Skip, false),
    ],
};

const TOKEN_REQUEST_SPEC: Message = Message {
    name: "TokenRequestSpec",
    fields: &[
        F(1, "audiences", Ty::Str, true),
        F(3, "boundObjectRef", Ty::Msg(&BOUND_OBJECT_REFERENCE), false),
        F(4, "expirationSeconds", Ty::Int, false),
    ],
};

const BOUND_OBJECT_REFERENCE: Message = Message {
    name: "BoundObjectReference",
    fields: &[F(1, "kind", Ty::Str, false), F(2, "apiVersion", Ty::Str, false), F(3, "name", Ty::Str, false), F(4, "uid", Ty::Str, false)],
};

// `kubectl create job` (also `--from=cronjob/NAME`, which adds an owner reference) and
// `kubectl create cronjob` (k8s.io/api/batch/v1/generated.proto).

const OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        F(1, "kind", Ty::Str, false),
        F(3, "name", Ty::Str, false),
        F(4, "uid", Ty::Str, false),
        F(5, "apiVersion", Ty::Str, false),
        F(6, "controller", Ty::BoolPtr, false),
        F(7, "blockOwnerDeletion", Ty::BoolPtr, false),
    ],
};

/// ObjectMeta with its owner references (what a Job made from a CronJob carries).
const OWNED_OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        F(1, "name", Ty::Str, false),
        F(2, "generateName", Ty::Str, false),
        F(3, "namespace", Ty::Str, false),
        F(4, "selfLink", Ty::Skip, false),
        F(5, "uid", Ty::Skip, false),
        F(6, "resourceVersion", Ty::Skip, false),
        F(7, "generation", Ty::Skip, false),
        F(8, "creationTimestamp", Ty::Skip, false),
        F(9, "deletionTimestamp", Ty::Skip, false),
        F(10, "deletionGracePeriodSeconds", Ty::Skip, false),
        F(11, "labels", Ty::StrMap, false),
        F(12, "annotations", Ty::StrMap, false),
        F(13, "ownerReferences", Ty::Msg(&OWNER_REFERENCE), true),
        F(14, "finalizers", Ty::Str, true),
        F(17, "managedFields", Ty::Skip, true),
    ],
};

const JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        F(1, "parallelism", Ty::Int, false),
        F(2, "completions", Ty::Int, false),
        F(3, "activeDeadlineSeconds", Ty::Int, false),
        F(4, "selector", Ty::Msg(&LABEL_SELECTOR), false),
        F(5, "manualSelector", Ty::BoolPtr, false),
        F(6, "template", Ty::Msg(&POD_TEMPLATE), false),
        F(7, "backoffLimit", Ty::Int, false),
        F(8, "ttlSecondsAfterFinished", Ty::Int, false),
        F(9, "completionMode", Ty::Str, false),
        F(10, "suspend", Ty::BoolPtr, false),
        F(14, "podReplacementPolicy", Ty::Str, false),
    ],
};

const JOB: Message = Message {
    name: "Job",
    fields: &[
        F(1, "metadata", Ty::Msg(&OWNED_OBJECT_META), false),
        F(2, "spec", Ty::Msg(&JOB_SPEC), false),
        F(3, "status", Ty::Skip, false),
    ],
};

const JOB_TEMPLATE: Message =
    Message { name: "JobTemplateSpec", fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Msg(&JOB_SPEC), false)] };

const CRONJOB_SPEC: Message = Message {
    name: "CronJobSpec",
    fields: &[
        F(1, "schedule", Ty::Str, false),
        F(2, "startingDeadlineSeconds", Ty::Int, false),
        F(3, "concurrencyPolicy", Ty::Str, false),
        F(4, "suspend", Ty::BoolPtr, false),
        F(5, "jobTemplate", Ty::Msg(&JOB_TEMPLATE), false),
        F(6, "successfulJobsHistoryLimit", Ty::Int, false),
        F(7, "failedJobsHistoryLimit", Ty::Int, false),
        F(8, "timeZone", Ty::Str, false),
    ],
};

const CRONJOB: Message = Message {
    name: "CronJob",
    fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Msg(&CRONJOB_SPEC), false), F(3, "status", Ty::Skip, false)],
};

// `kubectl create ingress` (k8s.io/api/networking/v1/generated.proto). A rule's `http` sits in an
// embedded `IngressRuleValue` message (inlined in JSON), moved up by [`inline_rule_values`].

const SERVICE_BACKEND_PORT: Message =
    Message { name: "ServiceBackendPort", fields: &[F(1, "name", Ty::Str, false), F(2, "number", Ty::IntZ, false)] };

const INGRESS_SERVICE_BACKEND: Message =
    Message { name: "IngressServiceBackend", fields: &[F(1, "name", Ty::Str, false), F(2, "port", Ty::Msg(&SERVICE_BACKEND_PORT), false)] };

const TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "TypedLocalObjectReference",
    fields: &[F(1, "apiGroup", Ty::Str, false), F(2, "kind", Ty::Str, false), F(3, "name", Ty::Str, false)],
};

const INGRESS_BACKEND: Message = Message {
    name: "IngressBackend",
    fields: &[F(3, "resource", Ty::Msg(&TYPED_LOCAL_OBJECT_REFERENCE), false), F(4, "service", Ty::Msg(&INGRESS_SERVICE_BACKEND), false)],
};

const HTTP_INGRESS_PATH: Message = Message {
    name: "HTTPIngressPath",
    fields: &[F(1, "path", Ty::Str, false), F(2, "backend", Ty::Msg(&INGRESS_BACKEND), false), F(3, "pathType", Ty::Str, false)],
};

const HTTP_INGRESS_RULE_VALUE: Message =
    Message { name: "HTTPIngressRuleValue", fields: &[F(1, "paths", Ty::Msg(&HTTP_INGRESS_PATH), true)] };

const INGRESS_RULE_VALUE: Message = Message { name: "IngressRuleValue", fields: &[F(1, "http", Ty::Msg(&HTTP_INGRESS_RULE_VALUE), false)] };

const INGRESS_RULE: Message =
    Message { name: "IngressRule", fields: &[F(1, "host", Ty::Str, false), F(2, "ingressRuleValue", Ty::Msg(&INGRESS_RULE_VALUE), false)] };

const INGRESS_TLS: Message = Message { name: "IngressTLS", fields: &[F(1, "hosts", Ty::Str, true), F(2, "secretName", Ty::Str, false)] };

const INGRESS_SPEC: Message = Message {
    name: "IngressSpec",
    fields: &[
        F(1, "defaultBackend", Ty::Msg(&INGRESS_BACKEND), false),
        F(2, "tls", Ty::Msg(&INGRESS_TLS), true),
        F(3, "rules", Ty::Msg(&INGRESS_RULE), true),
        F(4, "ingressClassName", Ty::Str, false),
    ],
};

const INGRESS: Message = Message {
    name: "Ingress",
    fields: &[F(1, "metadata", Ty::Msg(&OBJECT_META), false), F(2, "spec", Ty::Msg(&INGRESS_SPEC), false), F(3, "status", Ty::Skip, false)],
};

/// Go inlines a rule's `IngressRuleValue` into the rule's JSON: `rules[].http`.
fn inline_rule_values(obj: &mut Map<String, Value>) {
    let rules = obj.get_mut("spec").and_then(|s| s.get_mut("rules")).and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten().filter_map(Value::as_object_mut) {
        if let Some(Value::Object(inner)) = rule.remove("ingressRuleValue") {
            rule.extend(inner);
        }
    }
}

/// The kinds read from protobuf: those kubectl's generators create, and the reviews of `kubectl
/// auth` (its typed clients send protobuf too).
fn message_of(kind: &str) -> Option<&'static Message> {
    match kind {
        "Job" => Some(&JOB),
        "CronJob" => Some(&CRONJOB),
        "Ingress" => Some(&INGRESS),
        "SelfSubjectAccessReview" => Some(&SELF_SUBJECT_ACCESS_REVIEW),
        "SelfSubjectReview" => Some(&SELF_SUBJECT_REVIEW),
        "SelfSubjectRulesReview" => Some(&SELF_SUBJECT_RULES_REVIEW),
        "ConfigMap" => Some(&CONFIG_MAP),
        "Secret" => Some(&SECRET),
        "Namespace" => Some(&NAMESPACE),
        "Deployment" => Some(&DEPLOYMENT),
        "Service" => Some(&SERVICE),
        "Role" => Some(&ROLE),
        "ClusterRole" => Some(&CLUSTER_ROLE),
        "RoleBinding" | "ClusterRoleBinding" => Some(&ROLE_BINDING),
        "ServiceAccount" => Some(&SERVICE_ACCOUNT),
        "TokenRequest" => Some(&TOKEN_REQUEST),
        _ => None,
    }
}

/// A `map<string, V>` entry: its key and its value's bytes.
fn entry(b: &[u8]) -> Result<(String, &[u8]), String> {
    let (mut key, mut value) = (String::new(), &[][..]);
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = text(k)?,
            (2, Field::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Ok((key, value))
}

fn wrong_type(message: &Message, name: &str) -> String {
    format!("{}.{name} has the wrong wire type", message.name)
}

fn bytes_of<'a>(message: &Message, name: &str, f: Field<'a>) -> Result<&'a [u8], String> {
    match f {
        Field::Bytes(b) => Ok(b),
        Field::Varint(_) => Err(wrong_type(message, name)),
    }
}

fn varint_of(message: &Message, name: &str, f: Field<'_>) -> Result<u64, String> {
    match f {
        Field::Varint(v) => Ok(v),
        Field::Bytes(_) => Err(wrong_type(message, name)),
    }
}

/// A map entry's value as `read` reads it, added to the map `name` of `out` (protobuf sends a
/// map one entry per field).
fn map_entry(out: &mut Map<String, Value>, name: &str, b: &[u8], read: impl Fn(&[u8]) -> Result<Value, String>) -> Result<(), String> {
    let (k, v) = entry(b)?;
    let map = out.entry(name).or_insert_with(|| json!({}));
    map[k] = read(v)?;
    Ok(())
}

fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut q = String::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(s)) = (n, f) {
            q = text(s)?;
        }
    }
    Ok(json!(q))
}

fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(t)) => is_string = t == 1,
            (2, Field::Varint(i)) => int = i as i64,
            (3, Field::Bytes(s)) => string = text(s)?,
            _ => {}
        }
    }
    Ok(if is_string { json!(string) } else { json!(int) })
}

/// One field's value, or None when it is Go's encoding of an unset value (or a map entry, added
/// to `out` directly).
fn value(message: &Message, name: &str, ty: Ty, f: Field<'_>, out: &mut Map<String, Value>) -> Result<Option<Value>, String> {
    Ok(match ty {
        Ty::Skip => None,
        Ty::Str => Some(json!(text(bytes_of(message, name, f)?)?)),
        // Varints carry int32 and int64 alike; a negative one is sign-extended to 64 bits.
        Ty::Int => Some(json!(varint_of(message, name, f)? as i64)),
        Ty::IntZ => Some(json!(varint_of(message, name, f)? as i64)).filter(|v| v != &json!(0)),
        Ty::Bool => Some(json!(varint_of(message, name, f)? != 0)).filter(|v| v == &json!(true)),
        Ty::BoolPtr => Some(json!(varint_of(message, name, f)? != 0)),
        Ty::StrMap => {
            map_entry(out, name, bytes_of(message, name, f)?, |v| Ok(json!(text(v)?)))?;
            None
        }
        Ty::BytesMap => {
            map_entry(out, name, bytes_of(message, name, f)?, |v| Ok(json!(base64::engine::general_purpose::STANDARD.encode(v))))?;
            None
        }
        Ty::QuantityMap => {
            map_entry(out, name, bytes_of(message, name, f)?, quantity)?;
            None
        }
        Ty::IntOrString => Some(int_or_string(bytes_of(message, name, f)?)?),
        Ty::Msg(inner) => Some(decode_message(inner, bytes_of(message, name, f)?)?),
    })
}

fn decode_message(message: &Message, b: &[u8]) -> Result<Value, String> {
    let mut out = Map::new();
    for (n, f) in fields(b)? {
        let F(_, name, ty, repeated) = message
            .fields
            .iter()
            .find(|field| field.0 == n)
            .ok_or_else(|| format!("field {n} of {} is not read from protobuf: send it as JSON (kubectl create -f)", message.name))?;
        let Some(v) = value(message, name, *ty, f, &mut out)? else { continue };
        if *repeated {
            let list = out.entry(*name).or_insert_with(|| json!([]));
            list.as_array_mut().into_iter().for_each(|l| l.push(v.clone()));
        } else if !(matches!(ty, Ty::Str) && v == "") {
            out.insert(name.to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

/// The JSON of a protobuf request body of kind `kind`; `Err` says why it cannot be read (an
/// unknown envelope, a kind or a field not read here).
pub fn decode(kind: &str, body: &[u8]) -> Result<Value, String> {
    let unknown = body.strip_prefix(b"k8s\0").ok_or("the body does not start with the protobuf magic number")?;
    let (mut api_version, mut sent_kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(unknown)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    match (n, f) {
                        (1, Field::Bytes(v)) => api_version = text(v)?,
                        (2, Field::Bytes(v)) => sent_kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    if sent_kind != kind {
        return Err(format!("a {sent_kind} sent to the endpoint of {kind}"));
    }
    let message = message_of(kind).ok_or_else(|| format!("{kind} is not read from protobuf"))?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    if let Value::Object(fields) = decode_message(message, raw)? {
        obj.extend(fields);
    }
    if kind == "Ingress" {
        inline_rule_values(&mut obj);
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    /// `kubectl create secret tls x` as the clientset encodes it (field by field).
    #[test]
    fn a_secret_from_the_clientset() {
        let meta = [field(1, b"x"), field(2, b""), field(3, b"default"), field(11, &entry("app", b"web"))].concat();
        let secret = [field(1, &meta), field(2, &entry("tls.crt", b"\x00\x01")), field(3, b"kubernetes.io/tls")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v = decode("Secret", &body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "default", "labels": {"app": "web"}},
                   "data": {"tls.crt": "AAE="}, "type": "kubernetes.io/tls"})
        );
        assert!(decode("ConfigMap", &body).unwrap_err().contains("a Secret sent to the endpoint of ConfigMap"));
        assert!(decode("Secret", b"{}").is_err());
        // A field the tables do not hold fails the request rather than being lost.
        let odd = [b"k8s\0".to_vec(), field(1, &[field(1, b"v1"), field(2, b"Secret")].concat()), field(2, &field(9, b"x"))].concat();
        assert_eq!(decode("Secret", &odd).unwrap_err(), "field 9 of Secret is not read from protobuf: send it as JSON (kubectl create -f)");
        let pod = [b"k8s\0".to_vec(), field(1, &[field(1, b"v1"), field(2, b"Pod")].concat())].concat();
        assert_eq!(decode("Pod", &pod).unwrap_err(), "Pod is not read from protobuf");
    }

    fn varint_field(n: u64, v: u8) -> Vec<u8> {
        vec![(n << 3) as u8, v]
    }

    /// `kubectl create deployment web --image=nginx --port=80 --replicas=0`: Go's unset values
    /// (an empty generateName, minReadySeconds 0, paused false, an empty status) left out, the
    /// pointer replicas kept at 0.
    #[test]
    fn a_deployment_from_the_clientset() {
        let port = [varint_field(2, 0), varint_field(3, 80), field(4, b"")].concat();
        let container = [field(1, b"nginx"), field(2, b"nginx"), field(6, &port), field(8, b"")].concat();
        let template = [field(1, &field(11, &entry("app", b"web"))), field(2, &field(2, &container))].concat();
        let spec = [
            varint_field(1, 0),
            field(2, &field(1, &entry("app", b"web"))),
            field(3, &template),
            field(4, b""),
            varint_field(5, 0),
            varint_field(7, 0),
        ]
        .concat();
        let deployment = [field(1, &[field(1, b"web"), field(2, b"")].concat()), field(2, &spec), field(3, b"")].concat();
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &deployment)].concat();
        assert_eq!(
            decode("Deployment", &body).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "strategy": {},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]}}}})
        );
    }

    /// `kubectl create ingress simple --rule=foo.com/bar*=svc1:8080,tls=my-cert --class=nginx`:
    /// the rule's embedded value inlined, the backend's empty port name left out.
    #[test]
    fn an_ingress_from_the_clientset() {
        let backend = field(4, &[field(1, b"svc1"), field(2, &[field(1, b""), vec![16, 0x90, 0x3f]].concat())].concat());
        let path = [field(1, b"/bar"), field(2, &backend), field(3, b"Prefix")].concat();
        let rule = [field(1, b"foo.com"), field(2, &field(1, &field(1, &path)))].concat();
        let tls = [field(1, b"foo.com"), field(2, b"my-cert")].concat();
        let spec = [field(2, &tls), field(3, &rule), field(4, b"nginx")].concat();
        let ingress = [field(1, &field(1, b"simple")), field(2, &spec), field(3, b"")].concat();
        let type_meta = [field(1, b"networking.k8s.io/v1"), field(2, b"Ingress")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &ingress)].concat();
        assert_eq!(
            decode("Ingress", &body).unwrap(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "simple"},
                   "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}],
                            "rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Prefix",
                                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}]}})
        );
    }

    /// `kubectl create serviceaccount robot` and `kubectl create token robot --duration 10m
    /// --audience vault`: the pointer expirationSeconds kept, the unset boundObjectRef absent.
    #[test]
    fn service_accounts_and_token_requests_from_the_clientset() {
        let sa = field(1, &[field(1, b"robot"), field(2, b""), field(3, b"default")].concat());
        let type_meta = [field(1, b"v1"), field(2, b"ServiceAccount")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &sa)].concat();
        assert_eq!(
            decode("ServiceAccount", &body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}})
        );
        // Field 4, a varint: 600 is 0xd8 0x04.
        let spec = [field(1, b"vault"), vec![4 << 3, 0xd8, 0x04]].concat();
        let request = [field(1, &field(1, b"robot")), field(2, &spec), field(3, b"")].concat();
        let type_meta = [field(1, b"authentication.k8s.io/v1"), field(2, b"TokenRequest")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &request)].concat();
        assert_eq!(
            decode("TokenRequest", &body).unwrap(),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {"name": "robot"},
                   "spec": {"audiences": ["vault"], "expirationSeconds": 600}})
        );
    }

    /// `kubectl create rolebinding alice-view --clusterrole=view --user=alice` and `kubectl
    /// create role pod-reader --verb=get --resource=pods`: Go writes every string, empty ones
    /// too; a repeated empty string (the core group) is kept.
    #[test]
    fn rbac_objects_from_the_clientset() {
        let subject = [field(1, b"User"), field(2, b"rbac.authorization.k8s.io"), field(3, b"alice"), field(4, b"")].concat();
        let role_ref = [field(1, b"rbac.authorization.k8s.io"), field(2, b"ClusterRole"), field(3, b"view")].concat();
        let binding = [field(1, &[field(1, b"alice-view"), field(2, b"")].concat()), field(2, &subject), field(3, &role_ref)].concat();
        let type_meta = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, b"RoleBinding")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &binding)].concat();
        assert_eq!(
            decode("RoleBinding", &body).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice-view"},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
        );
        let rule = [field(1, b"get"), field(2, b""), field(3, b"pods")].concat();
        let role = [field(1, &field(1, b"pod-reader")), field(2, &rule)].concat();
        let type_meta = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, b"Role")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &role)].concat();
        assert_eq!(
            decode("Role", &body).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
                   "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
        );
    }
}
