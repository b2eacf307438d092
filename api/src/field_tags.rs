//! The list and map tags of the Kubernetes types that emu's merges read, in one table: the
//! `patchStrategy`/`patchMergeKey` tags a strategic merge patch follows ([`crate::patch`]), and
//! the `+listType`/`+listMapKey`/`+mapType` markers server-side apply and field management
//! follow (the controller's managed fields). Transcribed from k8s.io/api 1.32, as far as the
//! types lead to tagged fields; everything else is [`Schema::Other`], whose lists are replaced
//! whole and whose maps are merged field by field.

/// Where a value sits in a kind, as far as its fields' tags differ from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Other,
    /// A top-level object of a kind.
    Object(Kind),
    ObjectMeta,
    PodTemplateSpec,
    JobTemplateSpec,
    PodSpec,
    Container,
    /// The spec of a workload that has a pod `template`.
    WorkloadSpec,
    CronJobSpec,
    ServiceSpec,
    NodeSpec,
    /// A status whose only tagged list is `conditions` (by `type`).
    ConditionsStatus,
    PodStatus,
    NodeStatus,
}

/// The kinds whose spec or status has tagged fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Workload,
    CronJob,
    Service,
    Node,
    Namespace,
    PodTemplate,
    Plain,
}

impl Kind {
    pub fn of(kind: &str) -> Kind {
        match kind {
            "Pod" => Kind::Pod,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => Kind::Workload,
            "CronJob" => Kind::CronJob,
            "Service" => Kind::Service,
            "Node" => Kind::Node,
            "Namespace" => Kind::Namespace,
            "PodTemplate" => Kind::PodTemplate,
            _ => Kind::Plain,
        }
    }
}

impl Schema {
    /// The schema of a whole object of `kind`.
    pub fn of_kind(kind: &str) -> Schema {
        Schema::Object(Kind::of(kind))
    }
}

/// A field's `patchStrategy`, as far as it matters when a strategic merge patch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No tag: a list is replaced, a map merged.
    Replace,
    /// `merge` on a list of scalars: a set.
    MergeScalars,
    /// `merge` with `patchMergeKey`.
    MergeBy(&'static str),
}

impl PatchStrategy {
    /// The merge key, for a list merged by one.
    pub fn key(self) -> Option<&'static str> {
        match self {
            PatchStrategy::MergeBy(key) => Some(key),
            _ => None,
        }
    }
}

/// How server-side apply merges and owns a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// A struct or a map: owned field by field. A list here is atomic.
    Granular,
    /// Owned and replaced whole (`+listType=atomic`, `+mapType=atomic`, `+structType=atomic`).
    Atomic,
    /// `+listType=map` with these `+listMapKey`s.
    Map(&'static [&'static str]),
    /// `+listType=set`.
    Set,
}

/// The tags of one field, and the schema of its value (of its items, for a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldTags {
    pub patch: PatchStrategy,
    pub list: ListType,
    pub schema: Schema,
}

const NAME: &[&str] = &["name"];

/// The tags of field `name` of a `schema` value.
pub fn field(schema: Schema, name: &str) -> FieldTags {
    use ListType::{Atomic, Granular, Set};
    use PatchStrategy::{MergeBy, MergeScalars, Replace};
    use Schema as S;
    let tags = |patch, list, schema| FieldTags { patch, list, schema };
    let next = |schema| tags(Replace, Granular, schema);
    // A list merged by `key` in a patch, owned by `keys` in an apply.
    let keyed = |key, keys, schema| tags(MergeBy(key), ListType::Map(keys), schema);
    let set = || tags(MergeScalars, Set, S::Other);
    match (schema, name) {
        (S::Object(_) | S::PodTemplateSpec | S::JobTemplateSpec, "metadata") => next(S::ObjectMeta),
        (S::Object(Kind::Pod) | S::PodTemplateSpec, "spec") => next(S::PodSpec),
        (S::Object(Kind::Workload) | S::JobTemplateSpec, "spec") => next(S::WorkloadSpec),
        (S::Object(Kind::CronJob), "spec") => next(S::CronJobSpec),
        (S::Object(Kind::Service), "spec") => next(S::ServiceSpec),
        (S::Object(Kind::Node), "spec") => next(S::NodeSpec),
        (S::Object(Kind::PodTemplate) | S::WorkloadSpec, "template") => next(S::PodTemplateSpec),
        (S::CronJobSpec, "jobTemplate") => next(S::JobTemplateSpec),
        (S::Object(Kind::Pod), "status") => next(S::PodStatus),
        (S::Object(Kind::Node), "status") => next(S::NodeStatus),
        (S::Object(Kind::Workload | Kind::Service | Kind::Namespace), "status") => next(S::ConditionsStatus),
        (S::ObjectMeta, "finalizers") => set(),
        (S::ObjectMeta, "ownerReferences") => keyed("uid", &["uid"], S::Other),
        // metav1.LabelSelector is `+structType=atomic`; these selectors are `+mapType=atomic`
        // (a patch still merges them: they carry no patch tag).
        (S::WorkloadSpec, "selector") | (S::ServiceSpec, "selector") | (S::PodSpec, "nodeSelector") => tags(Replace, Atomic, S::Other),
        (S::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => keyed("name", NAME, S::Container),
        (S::PodSpec, "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => keyed("name", NAME, S::Other),
        (S::PodSpec, "hostAliases") => keyed("ip", &["ip"], S::Other),
        (S::PodSpec, "topologySpreadConstraints") => keyed("topologyKey", &["topologyKey", "whenUnsatisfiable"], S::Other),
        (S::Container, "ports") => keyed("containerPort", &["containerPort", "protocol"], S::Other),
        (S::Container, "env") => keyed("name", NAME, S::Other),
        (S::Container, "volumeMounts") => keyed("mountPath", &["mountPath"], S::Other),
        (S::Container, "volumeDevices") => keyed("devicePath", &["devicePath"], S::Other),
        (S::ServiceSpec, "ports") => keyed("port", &["port", "protocol"], S::Other),
        (S::NodeSpec, "podCIDRs") => set(),
        (S::ConditionsStatus | S::PodStatus | S::NodeStatus, "conditions") => keyed("type", &["type"], S::Other),
        (S::PodStatus, "podIPs" | "hostIPs") => keyed("ip", &["ip"], S::Other),
        (S::PodStatus, "resourceClaimStatuses") => keyed("name", NAME, S::Other),
        (S::NodeStatus, "addresses") => keyed("type", &["type"], S::Other),
        _ => next(S::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_carries_both_tags() {
        let ports = field(Schema::Container, "ports");
        assert_eq!((ports.patch, ports.list), (PatchStrategy::MergeBy("containerPort"), ListType::Map(&["containerPort", "protocol"])));
        let containers = field(field(Schema::of_kind("Deployment"), "spec").schema, "template").schema;
        assert_eq!(field(field(containers, "spec").schema, "containers").schema, Schema::Container);
        // An atomic selector is still merged by a patch.
        let selector = field(Schema::ServiceSpec, "selector");
        assert_eq!((selector.patch, selector.list), (PatchStrategy::Replace, ListType::Atomic));
        assert_eq!(
            field(Schema::Other, "anything"),
            FieldTags { patch: PatchStrategy::Replace, list: ListType::Granular, schema: Schema::Other }
        );
    }
}
