//! Object validation with the API server's own messages, on the decoded object ([`crate::typed`]).
//!
//! Call after [`crate::defaults::object`], as the API server does; fields that defaulting fills
//! (protocols, policies) are treated as valid when absent. Checks follow the order of
//! Kubernetes' `validation.go`, so multi-cause errors list causes in the same order. A field of
//! the wrong type never gets here: the decode fails first ([`crate::typed::decode`]).

pub use crate::field::{go_quote, go_value, FieldError, FieldErrorKind};
use crate::selector::Selector;
use crate::syntax::*;
use crate::typed::k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, VolumeProjection};
use crate::typed::{
    self, ConfigMap, Container, ContainerPort, IntOrString, LabelSelector, LabelSelectorRequirement, Object, ObjectMeta, PodSpec,
    PodTemplateSpec, PolicyRule, RoleRef, Secret, Service, ServiceSpec, Subject, Volume,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod daemonset;
mod gateway;
mod ingress;
mod job;
mod statefulset;

/// A rejected object: kubectl prints it as `The Deployment "x" is invalid: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: String,
    pub name: String,
    pub causes: Vec<FieldError>,
}

impl fmt::Display for Invalid {
    /// kubectl's layout: one cause inline, several as `* ` lines after `is invalid: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "The {} {:?} is invalid", self.kind, self.name)?;
        // kubectl drops causes whose text repeats an earlier one.
        let mut seen = BTreeSet::new();
        let causes: Vec<String> = self.causes.iter().map(|c| c.to_string()).filter(|c| seen.insert(c.clone())).collect();
        match causes.as_slice() {
            [] => Ok(()),
            [one] => write!(f, ": {one}"),
            many => {
                f.write_str(": ")?;
                many.iter().try_for_each(|c| write!(f, "\n* {c}"))
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// What validation needs that a decode loses, read from the JSON the object was decoded from:
/// k8s-openapi's `DeploymentSpec.selector` and `ReplicaSetSpec.selector` are not optional, so a
/// missing selector (`spec.selector: Required value`, and a nil selector matches no template)
/// and an empty one (`empty selector is invalid`, it matches every template) decode alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecoded {
    pub selector_given: bool,
}

impl Undecoded {
    pub fn of(v: &Value) -> Undecoded {
        Undecoded { selector_given: v.get("spec").and_then(|s| s.get("selector")).is_some_and(|s| !s.is_null()) }
    }
}

/// Validates a decoded, defaulted object of a kind emu serves. An emu Fault's metadata is
/// checked; its spec is [`crate::fault::parse`]'s.
pub fn validate(object: &Object, undecoded: Undecoded) -> Result<(), Invalid> {
    let mut v = V::default();
    let fault_meta;
    let (kind, meta) = match object {
        Object::Service(svc) => return validate_service(svc),
        Object::Fault(json) => {
            fault_meta = typed::decode_meta(json).map_err(|e| Invalid {
                kind: "Fault".into(),
                name: crate::object::name(json).into(),
                causes: vec![e.0],
            })?;
            ("Fault", &fault_meta)
        }
        other => (other.kind(), other.metadata().expect("every kind but Fault has typed metadata")),
    };
    let name_check: fn(&str) -> Vec<String> = match kind {
        // A StatefulSet's name is each pod's hostname: a label since Kubernetes 1.26.
        "Namespace" | "StatefulSet" => dns1123_label_errors,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => path_segment_errors,
        _ => dns1123_subdomain_errors,
    };
    v.meta(meta, name_check);
    let selector = |s| undecoded.selector_given.then_some(s);
    match object {
        Object::Pod(p) => v.pod_spec(&or_default(&p.spec), "spec"),
        Object::Deployment(d) => {
            let spec = or_default(&d.spec);
            v.nonnegative(spec.replicas, "spec.replicas");
            v.workload(selector(&spec.selector), &spec.template);
            // ValidateDeploymentStrategy, in ValidateDeploymentSpec's order. Its refusal of a
            // rollingUpdate beside `type: Recreate` is left out: kubectl apply clears the stale
            // rollingUpdate with strategic merge's retainKeys, which emu's merge does not do yet,
            // so switching a Deployment to Recreate by apply would be refused (defaults drop it).
            let strategy = spec.strategy.as_ref();
            if let (false, Some(rolling)) =
                (strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate"), strategy.and_then(|s| s.rolling_update.as_ref()))
            {
                for (field, value, message) in validate_rolling_update(rolling.max_surge.as_ref(), rolling.max_unavailable.as_ref()) {
                    v.invalid(field, value, message);
                }
            }
            v.nonnegative(spec.min_ready_seconds, "spec.minReadySeconds");
            v.nonnegative(spec.revision_history_limit, "spec.revisionHistoryLimit");
            v.nonnegative(spec.progress_deadline_seconds, "spec.progressDeadlineSeconds");
            if let Some(deadline) = spec.progress_deadline_seconds.filter(|&p| p <= spec.min_ready_seconds.unwrap_or(0)) {
                v.invalid("spec.progressDeadlineSeconds", deadline.to_string(), "must be greater than minReadySeconds");
            }
        }
        Object::ReplicaSet(rs) => {
            let spec = or_default(&rs.spec);
            v.nonnegative(spec.replicas, "spec.replicas");
            v.nonnegative(spec.min_ready_seconds, "spec.minReadySeconds");
            v.workload(selector(&spec.selector), &or_default(&spec.template));
        }
        Object::DaemonSet(ds) => daemonset::daemon_set(&mut v, ds, selector(&or_default(&ds.spec).selector)),
        Object::StatefulSet(sts) => statefulset::stateful_set(&mut v, sts, selector(&or_default(&sts.spec).selector)),
        Object::Job(job) => job::job(&mut v, job),
        Object::CronJob(cj) => job::cron_job(&mut v, cj),
        Object::Ingress(ing) => ingress::ingress(&mut v, ing),
        Object::IngressClass(ic) => ingress::ingress_class(&mut v, ic),
        Object::GatewayClass(gc) => gateway::gateway_class(&mut v, gc),
        Object::Gateway(gw) => gateway::gateway(&mut v, gw),
        Object::HTTPRoute(route) => gateway::http_route(&mut v, route),
        Object::ConfigMap(c) => v.config_map(c),
        Object::Secret(s) => v.secret(s),
        Object::Role(r) => v.policy_rules(r.rules.as_deref().unwrap_or_default(), true),
        Object::ClusterRole(r) => {
            v.policy_rules(r.rules.as_deref().unwrap_or_default(), false);
            if let Some(aggregation) = &r.aggregation_rule {
                let selectors = aggregation.cluster_role_selectors.as_deref().unwrap_or_default();
                if selectors.is_empty() {
                    v.required(
                        "aggregationRule.clusterRoleSelectors",
                        "at least one clusterRoleSelector required if aggregationRule is non-nil",
                    );
                }
                for (i, s) in selectors.iter().enumerate() {
                    v.label_map(s.match_labels.as_ref(), &format!("aggregationRule.clusterRoleSelectors[{i}].matchLabels"));
                }
            }
        }
        Object::RoleBinding(b) => v.binding(&b.role_ref, b.subjects.as_deref().unwrap_or_default(), true),
        Object::ClusterRoleBinding(b) => v.binding(&b.role_ref, b.subjects.as_deref().unwrap_or_default(), false),
        _ => {}
    }
    // PodSecurity admission's refusal of a Namespace's policy labels: an admission plugin,
    // so only once the object itself is valid.
    if let (Object::Namespace(ns), true) = (object, v.errs.is_empty()) {
        v.errs = crate::pod_security::label_errors(ns.metadata.labels.as_ref());
    }
    v.finish(kind, meta.name.as_deref().unwrap_or_default())
}

/// The rules of an update beyond those of the new object alone (`ValidateSecretUpdate`,
/// `ValidateConfigMapUpdate`; a Service's are [`validate_service_update`]): a Secret's `type`
/// never changes, and an object marked `immutable: true` keeps its data and the mark. `old` is
/// the stored object; only a Secret's or ConfigMap's is decoded.
pub fn validate_update(old: &Value, new: &Object) -> Result<(), Invalid> {
    match new {
        // A stored object always decodes (admission stored it); one that does not has nothing to keep.
        Object::Secret(new) => typed::decode(old).map_or(Ok(()), |old| validate_secret_update(&old, new)),
        Object::ConfigMap(new) => typed::decode(old).map_or(Ok(()), |old| validate_config_map_update(&old, new)),
        Object::RoleBinding(new) => typed::decode::<typed::RoleBinding>(old)
            .map_or(Ok(()), |old| validate_role_ref_update("RoleBinding", &new.metadata, &old.role_ref, &new.role_ref)),
        Object::ClusterRoleBinding(new) => typed::decode::<typed::ClusterRoleBinding>(old)
            .map_or(Ok(()), |old| validate_role_ref_update("ClusterRoleBinding", &new.metadata, &old.role_ref, &new.role_ref)),
        Object::IngressClass(new) => {
            typed::decode::<typed::IngressClass>(old).map_or(Ok(()), |old| ingress::ingress_class_update(&old, new))
        }
        Object::GatewayClass(new) => {
            typed::decode::<typed::GatewayClass>(old).map_or(Ok(()), |old| gateway::gateway_class_update(&old, new))
        }
        Object::Job(new) => typed::decode::<typed::Job>(old).map_or(Ok(()), |old| job::job_update(&old, new)),
        Object::DaemonSet(new) => typed::decode::<typed::DaemonSet>(old).map_or(Ok(()), |old| daemonset::daemon_set_update(&old, new)),
        Object::StatefulSet(new) => {
            typed::decode::<typed::StatefulSet>(old).map_or(Ok(()), |old| statefulset::stateful_set_update(&old, new))
        }
        _ => Ok(()),
    }
}

/// A binding's `roleRef` never changes (`ValidateRoleBindingUpdate`): a binding to another role
/// is another binding, to be deleted and created, so that whoever may update its subjects cannot
/// grant another role. The value named is the new roleRef, as Go prints the internal type.
pub fn validate_role_ref_update(kind: &str, meta: &ObjectMeta, old: &RoleRef, new: &RoleRef) -> Result<(), Invalid> {
    let mut v = V::default();
    if old != new {
        let value =
            format!("rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}", go_quote(&new.api_group), go_quote(&new.kind), go_quote(&new.name));
        v.invalid("roleRef", value, "cannot change roleRef");
    }
    v.finish(kind, meta.name.as_deref().unwrap_or_default())
}

/// The most a Secret's or a ConfigMap's data may hold (Kubernetes' `MaxSecretSize`, 1 MiB): an
/// object is stored whole and sent to every watcher.
pub const MAX_CONFIG_SIZE: usize = 1024 * 1024;

/// The capabilities a container keeps, as a container runtime's default set (the node agent's
/// `KEPT_CAPS` holds the same, checked by its unit test). `capabilities.add` may name these, which the container has anyway;
/// any other is refused, as emu never grants more.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

pub fn validate_secret_update(old: &Secret, new: &Secret) -> Result<(), Invalid> {
    let mut v = V::default();
    // The API server defaults the type before comparing.
    let type_of = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
    if type_of(old) != type_of(new) {
        v.invalid("type", go_quote(&type_of(new)), "field is immutable");
    }
    v.immutable(old.immutable, new.immutable, &[("data", changed(&old.data, &new.data))]);
    v.finish("Secret", new.metadata.name.as_deref().unwrap_or_default())
}

pub fn validate_config_map_update(old: &ConfigMap, new: &ConfigMap) -> Result<(), Invalid> {
    let mut v = V::default();
    let sections = [("data", changed(&old.data, &new.data)), ("binaryData", changed(&old.binary_data, &new.binary_data))];
    v.immutable(old.immutable, new.immutable, &sections);
    v.finish("ConfigMap", new.metadata.name.as_deref().unwrap_or_default())
}

/// Whether a data section changed (absent and empty are the same).
fn changed<T: PartialEq>(old: &Option<BTreeMap<String, T>>, new: &Option<BTreeMap<String, T>>) -> bool {
    let empty = |m: &Option<BTreeMap<String, T>>| m.as_ref().is_none_or(BTreeMap::is_empty);
    old != new && !(empty(old) && empty(new))
}

/// An optional part of an object, or its default (defaulting fills the parts it has, so the
/// default is only met by objects that were not defaulted).
fn or_default<T: Clone + Default>(part: &Option<T>) -> std::borrow::Cow<'_, T> {
    part.as_ref().map_or_else(Default::default, std::borrow::Cow::Borrowed)
}

fn port_num_error(p: i64) -> Option<&'static str> {
    (!(1..=65535).contains(&p)).then_some("must be between 1 and 65535, inclusive")
}

// ---- Go value formatting for messages.

/// Go's `%#v` of a `map[string]string` (keys sorted, as fmt prints maps).
pub fn go_string_map(m: Option<&BTreeMap<String, String>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let body: Vec<String> = m.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v))).collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

fn go_string_slice(items: &[String]) -> String {
    let body: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", body.join(", "))
}

fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(&e.key),
                        go_quote(&e.operator),
                        e.values.as_deref().map_or_else(|| "[]string(nil)".into(), go_string_slice)
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}", go_string_map(sel.match_labels.as_ref()), exprs)
}

// ---- The validator.

#[derive(Default)]
struct V {
    errs: Vec<FieldError>,
}

impl V {
    fn finish(self, kind: &str, name: &str) -> Result<(), Invalid> {
        if self.errs.is_empty() {
            return Ok(());
        }
        Err(Invalid { kind: kind.to_string(), name: name.to_string(), causes: self.errs })
    }

    fn push(&mut self, field: impl Into<String>, kind: FieldErrorKind, detail: impl Into<String>) {
        self.errs.push(FieldError { field: field.into(), kind, detail: detail.into() });
    }

    fn required(&mut self, field: impl Into<String>, detail: &str) {
        self.push(field, FieldErrorKind::Required, detail);
    }

    fn invalid(&mut self, field: impl Into<String>, value: String, detail: impl Into<String>) {
        self.push(field, FieldErrorKind::Invalid(value), detail);
    }

    fn unsupported(&mut self, field: impl Into<String>, value: &str, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let kind = FieldErrorKind::Unsupported(go_quote(value), supported.iter().map(|s| s.to_string()).collect());
        self.push(field, kind, format!("supported values: {}", quoted.join(", ")));
    }

    fn nonnegative(&mut self, value: Option<i32>, field: &str) {
        if let Some(n) = value.filter(|&n| n < 0) {
            self.invalid(field, n.to_string(), "must be greater than or equal to 0");
        }
    }

    fn each_msg(&mut self, field: &str, value: &str, msgs: Vec<String>) {
        for m in msgs {
            self.invalid(field, go_quote(value), m);
        }
    }

    /// An optional string field that must be one of `supported` when set.
    fn one_of(&mut self, value: Option<&str>, field: &str, supported: &[&str]) {
        if let Some(v) = value.filter(|v| !supported.contains(v)) {
            self.unsupported(field, v, supported);
        }
    }

    /// A string field that must be set and non-empty.
    fn required_str(&mut self, value: &str, field: &str) {
        if value.is_empty() {
            self.required(field, "");
        }
    }

    /// A required name that must be a DNS-1123 label (volumes, containers).
    fn required_label(&mut self, name: &str, field: &str) {
        self.required_str(name, field);
        if !name.is_empty() {
            self.each_msg(field, name, dns1123_label_errors(name));
        }
    }

    /// Reports `name` at `field` as a Duplicate when `seen` already holds it.
    fn unique(&mut self, field: String, name: &str, seen: &mut BTreeSet<String>) {
        if !seen.insert(name.to_string()) {
            self.push(field, FieldErrorKind::Duplicate(go_quote(name)), "");
        }
    }

    /// A Role's or ClusterRole's rules (`ValidatePolicyRule`): verbs always; either non-resource
    /// URLs (only in a ClusterRole, and alone) or API groups and resources.
    fn policy_rules(&mut self, rules: &[PolicyRule], namespaced: bool) {
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if rule.verbs.is_empty() {
                self.required(format!("{at}.verbs"), "verbs must contain at least one value");
            }
            let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            if !urls.is_empty() {
                let value = go_string_slice(urls);
                if namespaced {
                    self.invalid(format!("{at}.nonResourceURLs"), value.clone(), "namespaced rules cannot apply to non-resource URLs");
                }
                if !groups.is_empty() || !resources.is_empty() || !rule.resource_names.as_deref().unwrap_or_default().is_empty() {
                    self.invalid(
                        format!("{at}.nonResourceURLs"),
                        value,
                        "rules cannot apply to both regular resources and non-resource URLs",
                    );
                }
                continue;
            }
            if groups.is_empty() {
                self.required(format!("{at}.apiGroups"), "resource rules must supply at least one api group");
            }
            if resources.is_empty() {
                self.required(format!("{at}.resources"), "resource rules must supply at least one resource");
            }
        }
    }

    /// A RoleBinding's or ClusterRoleBinding's role and subjects (`ValidateRoleBinding`,
    /// `ValidateRoleBindingSubject`); a ClusterRoleBinding may only name a ClusterRole, and its
    /// service accounts need a namespace.
    fn binding(&mut self, role_ref: &RoleRef, subjects: &[Subject], namespaced: bool) {
        const RBAC: &str = crate::defaults::RBAC_GROUP;
        if role_ref.api_group != RBAC {
            self.unsupported("roleRef.apiGroup", &role_ref.api_group, &[RBAC]);
        }
        let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
        if !kinds.contains(&role_ref.kind.as_str()) {
            self.unsupported("roleRef.kind", &role_ref.kind, kinds);
        }
        if role_ref.name.is_empty() {
            self.required("roleRef.name", "");
        } else {
            self.each_msg("roleRef.name", &role_ref.name, path_segment_errors(&role_ref.name));
        }
        for (i, s) in subjects.iter().enumerate() {
            let at = format!("subjects[{i}]");
            if s.name.is_empty() {
                self.required(format!("{at}.name"), "");
            }
            let group = s.api_group.as_deref().unwrap_or_default();
            match s.kind.as_str() {
                "ServiceAccount" => {
                    if !s.name.is_empty() {
                        self.each_msg(&format!("{at}.name"), &s.name, dns1123_subdomain_errors(&s.name));
                    }
                    if !group.is_empty() {
                        self.unsupported(format!("{at}.apiGroup"), group, &[""]);
                    }
                    if !namespaced && s.namespace.as_deref().unwrap_or_default().is_empty() {
                        self.required(format!("{at}.namespace"), "");
                    }
                }
                "User" | "Group" => {
                    if group != RBAC {
                        self.unsupported(format!("{at}.apiGroup"), group, &[RBAC]);
                    }
                }
                other => self.unsupported(format!("{at}.kind"), other, &["ServiceAccount", "User", "Group"]),
            }
        }
    }

    fn meta(&mut self, meta: &ObjectMeta, name_check: fn(&str) -> Vec<String>) {
        let generate = meta.generate_name.as_deref().unwrap_or_default();
        if !generate.is_empty() {
            // The server appends a suffix, so a trailing '-' is fine in the prefix.
            let masked = generate.strip_suffix('-').map_or(generate.to_string(), |p| format!("{p}a"));
            self.each_msg("metadata.generateName", generate, name_check(&masked));
        }
        match meta.name.as_deref().unwrap_or_default() {
            // A generated name is filled in before validation.
            "" if generate.is_empty() => self.required("metadata.name", "name or generateName is required"),
            "" => {}
            name => self.each_msg("metadata.name", name, name_check(name)),
        }
        if let Some(ns) = meta.namespace.as_deref().filter(|s| !s.is_empty()) {
            self.each_msg("metadata.namespace", ns, dns1123_label_errors(ns));
        }
        self.label_map(meta.labels.as_ref(), "metadata.labels");
        self.annotations(meta.annotations.as_ref(), "metadata.annotations");
    }

    fn label_map(&mut self, labels: Option<&BTreeMap<String, String>>, field: &str) {
        for (k, v) in labels.into_iter().flatten() {
            self.each_msg(field, k, qualified_name_errors(k));
            self.each_msg(field, v, label_value_errors(v));
        }
    }

    fn annotations(&mut self, annotations: Option<&BTreeMap<String, String>>, field: &str) {
        let mut total = 0;
        for (k, v) in annotations.into_iter().flatten() {
            self.each_msg(field, k, qualified_name_errors(&k.to_lowercase()));
            total += k.len() + v.len();
        }
        const LIMIT: usize = 256 * 1024;
        if total > LIMIT {
            self.push(field, FieldErrorKind::TooLong, format!("may not be more than {LIMIT} bytes"));
        }
    }

    fn pod_spec(&mut self, spec: &PodSpec, p: &str) {
        let volumes = self.volumes(spec.volumes.as_deref().unwrap_or_default(), p);
        let mut names = BTreeSet::new();
        if spec.containers.is_empty() {
            self.required(format!("{p}.containers"), "");
        }
        for (i, c) in spec.containers.iter().enumerate() {
            self.container(c, &format!("{p}.containers[{i}]"), &volumes, &mut names);
        }
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            self.container(c, &format!("{p}.initContainers[{i}]"), &volumes, &mut names);
        }
        let restart = ["Always", "OnFailure", "Never"];
        self.one_of(spec.restart_policy.as_deref(), &format!("{p}.restartPolicy"), &restart);
        let dns = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        self.one_of(spec.dns_policy.as_deref(), &format!("{p}.dnsPolicy"), &dns);
        self.label_map(spec.node_selector.as_ref(), &format!("{p}.nodeSelector"));
        // Kubernetes keeps these three in the pod's security context, validated here in its order.
        let host_namespaces = [
            ("hostNetwork", spec.host_network, "host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service"),
            ("hostPID", spec.host_pid, "sharing the host's process namespace: remove hostPID (or set it to false)"),
            ("hostIPC", spec.host_ipc, "sharing the host's IPC namespace: remove hostIPC (or set it to false)"),
        ];
        for (key, on, what) in host_namespaces {
            if on == Some(true) {
                self.not_in_emu(format!("{p}.{key}"), what);
            }
        }
        for (key, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
            if let Some(h) = value.as_deref().filter(|h| !h.is_empty()) {
                self.each_msg(&format!("{p}.{key}"), h, dns1123_label_errors(h));
            }
        }
    }

    /// Validates `volumes` and returns their names for the volume mount checks. Sources are
    /// checked in `validateVolumeSource`'s order (hostPath, secret, downwardAPI, configMap,
    /// projected), each before the volume's name.
    fn volumes(&mut self, volumes: &[Volume], p: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (i, vol) in volumes.iter().enumerate() {
            let at = format!("{p}.volumes[{i}]");
            if vol.host_path.is_some() {
                let what = "hostPath volumes: put the files in a ConfigMap or Secret and mount that instead";
                self.not_in_emu(format!("{at}.hostPath"), what);
            }
            if let Some(secret) = &vol.secret {
                self.required_str(secret.secret_name.as_deref().unwrap_or_default(), &format!("{at}.secret.secretName"));
                self.file_mode(secret.default_mode, &format!("{at}.secret.defaultMode"));
                self.key_to_paths(secret.items.as_deref().unwrap_or_default(), &format!("{at}.secret.items"));
            }
            if let Some(downward) = &vol.downward_api {
                self.file_mode(downward.default_mode, &format!("{at}.downwardAPI.defaultMode"));
                for file in downward.items.iter().flatten() {
                    self.downward_api_file(file, &format!("{at}.downwardAPI"));
                }
            }
            if let Some(config_map) = &vol.config_map {
                self.required_str(&config_map.name, &format!("{at}.configMap.name"));
                self.file_mode(config_map.default_mode, &format!("{at}.configMap.defaultMode"));
                self.key_to_paths(config_map.items.as_deref().unwrap_or_default(), &format!("{at}.configMap.items"));
            }
            if let Some(projected) = &vol.projected {
                self.file_mode(projected.default_mode, &format!("{at}.projected.defaultMode"));
                self.projection_sources(projected.sources.as_deref().unwrap_or_default(), &format!("{at}.projected"));
            }
            self.required_label(&vol.name, &format!("{at}.name"));
            self.unique(format!("{at}.name"), &vol.name, &mut names);
        }
        names
    }

    /// A projected volume's sources (`validateProjectionSources`); `at` is the volume's
    /// `projected` field, where Kubernetes reports duplicate paths and the token's path.
    fn projection_sources(&mut self, sources: &[VolumeProjection], at: &str) {
        let mut paths = BTreeSet::new();
        for (i, source) in sources.iter().enumerate() {
            let src = format!("{at}.sources[{i}]");
            let objects = [
                ("secret", source.secret.as_ref().map(|s| (&s.name, &s.items))),
                ("configMap", source.config_map.as_ref().map(|c| (&c.name, &c.items))),
            ];
            for (kind, (name, items)) in objects.into_iter().filter_map(|(kind, o)| Some((kind, o?))) {
                self.required_str(name, &format!("{src}.{kind}.name"));
                for (j, item) in items.iter().flatten().enumerate() {
                    self.key_to_path(item, &format!("{src}.{kind}.items[{j}]"));
                    if !item.path.is_empty() && !paths.insert(item.path.as_str()) {
                        self.invalid(at, go_quote(name), "conflicting duplicate paths");
                    }
                }
            }
            for file in source.downward_api.iter().flat_map(|d| d.items.iter().flatten()) {
                self.downward_api_file(file, &format!("{src}.downwardAPI"));
                if !file.path.is_empty() && !paths.insert(file.path.as_str()) {
                    self.invalid(at, go_quote(&file.path), "conflicting duplicate paths");
                }
            }
            if let Some(token) = &source.service_account_token {
                // Kubernetes reports the token's path at the volume's `projected.path` (sic).
                if token.path.is_empty() {
                    self.required(format!("{at}.path"), "");
                } else {
                    self.non_reserved_path(&token.path, &format!("{at}.path"));
                }
            }
        }
    }

    /// The `items` of a Secret or ConfigMap volume.
    fn key_to_paths(&mut self, items: &[KeyToPath], at: &str) {
        for (i, item) in items.iter().enumerate() {
            self.key_to_path(item, &format!("{at}[{i}]"));
        }
    }

    /// One item of a Secret or ConfigMap volume or projection (`validateKeyToPath`).
    fn key_to_path(&mut self, item: &KeyToPath, at: &str) {
        self.required_str(&item.key, &format!("{at}.key"));
        self.required_str(&item.path, &format!("{at}.path"));
        self.non_reserved_path(&item.path, &format!("{at}.path"));
        self.file_mode(item.mode, &format!("{at}.mode"));
    }

    /// One file of a downward API volume or projection (`validateDownwardAPIVolumeFile`); `at` is
    /// the `downwardAPI` field itself: Kubernetes leaves out the item's index (sic).
    fn downward_api_file(&mut self, file: &DownwardAPIVolumeFile, at: &str) {
        self.required_str(&file.path, &format!("{at}.path"));
        self.non_reserved_path(&file.path, &format!("{at}.path"));
        self.file_mode(file.mode, &format!("{at}.mode"));
    }

    /// A file's mode: 0 to 0777, printed in decimal as Kubernetes does.
    fn file_mode(&mut self, mode: Option<i32>, field: &str) {
        if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
            self.invalid(field, m.to_string(), "must be a number between 0 and 0777 (octal), both inclusive");
        }
    }

    /// `validateLocalDescendingPath`: a path inside a volume is relative and never steps up (one
    /// error however many `..` it has).
    fn descending_path(&mut self, path: &str, field: &str) {
        if path.starts_with('/') {
            self.invalid(field, go_quote(path), "must be a relative path");
        }
        if path.split('/').any(|part| part == "..") {
            self.invalid(field, go_quote(path), "must not contain '..'");
        }
    }

    /// `ValidateLocalNonReservedPath`: a descending path that also keeps clear of the names
    /// kubelet's atomic writer reserves (`..data`, `..2026_…`).
    fn non_reserved_path(&mut self, path: &str, field: &str) {
        self.descending_path(path, field);
        if path.starts_with("..") && !path.starts_with("../") {
            self.invalid(field, go_quote(path), "must not start with '..'");
        }
    }

    /// A field emu cannot honour, refused rather than ignored: `what` says what emu does not
    /// support and what to do instead.
    fn not_in_emu(&mut self, field: String, what: &str) {
        self.push(field, FieldErrorKind::Forbidden, format!("emu does not support {what}"));
    }

    fn container(&mut self, c: &Container, at: &str, volumes: &BTreeSet<String>, names: &mut BTreeSet<String>) {
        self.required_label(&c.name, &format!("{at}.name"));
        self.required_str(c.image.as_deref().unwrap_or_default(), &format!("{at}.image"));
        let field = format!("{at}.terminationMessagePolicy");
        self.one_of(c.termination_message_policy.as_deref(), &field, &["File", "FallbackToLogsOnError"]);
        self.container_ports(c.ports.as_deref().unwrap_or_default(), at);
        for (i, env) in c.env.iter().flatten().enumerate() {
            let field = format!("{at}.env[{i}].name");
            let name = env.name.as_str();
            if name.is_empty() {
                self.required(&field, "");
                self.invalid(&field, go_quote(name), "environment variable name must be non-empty");
            } else if !env_var_name_errors(name).is_empty() {
                // Relaxed env var names (default since 1.32): printable ASCII except '='.
                self.invalid(
                    &field,
                    go_quote(name),
                    "a valid environment variable name must consist only of printable ASCII characters other than '='",
                );
            }
        }
        let mut mount_paths = BTreeSet::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let mat = format!("{at}.volumeMounts[{i}]");
            self.required_str(&m.name, &format!("{mat}.name"));
            if !volumes.contains(&m.name) {
                self.push(format!("{mat}.name"), FieldErrorKind::NotFound(go_quote(&m.name)), "");
            }
            self.required_str(&m.mount_path, &format!("{mat}.mountPath"));
            if !mount_paths.insert(m.mount_path.as_str()) {
                self.invalid(format!("{mat}.mountPath"), go_quote(&m.mount_path), "must be unique");
            }
            // Kubernetes reports a bad subPath at the list, `volumeMounts.subPath` (sic).
            let sub_path = m.sub_path.as_deref().unwrap_or_default();
            if !sub_path.is_empty() {
                self.descending_path(sub_path, &format!("{at}.volumeMounts.subPath"));
            }
            if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                if !sub_path.is_empty() {
                    self.invalid(format!("{mat}.subPathExpr"), go_quote(expr), "subPathExpr and subPath are mutually exclusive");
                }
                self.descending_path(expr, &format!("{at}.volumeMounts.subPathExpr"));
            }
        }
        let pull = ["Always", "IfNotPresent", "Never"];
        self.one_of(c.image_pull_policy.as_deref(), &format!("{at}.imagePullPolicy"), &pull);
        if let Some(security) = &c.security_context {
            if security.privileged == Some(true) {
                let what = "privileged containers: remove privileged (or set it to false)";
                self.not_in_emu(format!("{at}.securityContext.privileged"), what);
            }
            let added = security.capabilities.iter().flat_map(|caps| caps.add.iter().flatten());
            let extra: Vec<String> =
                added.filter(|cap| !DEFAULT_CAPABILITIES.contains(&cap.to_ascii_uppercase().as_str())).map(|cap| go_quote(cap)).collect();
            if !extra.is_empty() {
                let what = format!(
                    "adding capabilities beyond the container runtime's default set ({}): remove them from capabilities.add",
                    extra.join(", ")
                );
                self.not_in_emu(format!("{at}.securityContext.capabilities.add"), &what);
            }
        }
        // Names are unique across containers and init containers.
        self.unique(format!("{at}.name"), &c.name, names);
    }

    fn container_ports(&mut self, ports: &[ContainerPort], at: &str) {
        let mut names = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let pat = format!("{at}.ports[{i}]");
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                let msgs = port_name_errors(name);
                if !msgs.is_empty() {
                    self.each_msg(&format!("{pat}.name"), name, msgs);
                } else {
                    self.unique(format!("{pat}.name"), name, &mut names);
                }
            }
            match port.container_port {
                0 => self.required(format!("{pat}.containerPort"), ""),
                n => {
                    if let Some(msg) = port_num_error(n.into()) {
                        self.invalid(format!("{pat}.containerPort"), n.to_string(), msg);
                    }
                }
            }
            if let Some(n) = port.host_port.filter(|&n| n != 0) {
                match port_num_error(n.into()) {
                    Some(msg) => self.invalid(format!("{pat}.hostPort"), n.to_string(), msg),
                    None => self
                        .not_in_emu(format!("{pat}.hostPort"), "hostPort: remove it and reach the port through a NodePort Service instead"),
                }
            }
            self.one_of(port.protocol.as_deref(), &format!("{pat}.protocol"), &["SCTP", "TCP", "UDP"]);
        }
    }

    /// The selector and template of a Deployment or ReplicaSet (apps validation); `selector` is
    /// None when the object has none ([`Undecoded`]).
    fn workload(&mut self, selector: Option<&LabelSelector>, template: &PodTemplateSpec) {
        match selector {
            None => self.required("spec.selector", ""),
            Some(sel) => {
                self.label_map(sel.match_labels.as_ref(), "spec.selector.matchLabels");
                self.label_selector_requirements(sel.match_expressions.as_deref().unwrap_or_default());
                let n = sel.match_labels.as_ref().map_or(0, BTreeMap::len) + sel.match_expressions.as_ref().map_or(0, Vec::len);
                if n == 0 {
                    // Kubernetes says "deployment" for ReplicaSets too.
                    self.invalid("spec.selector", go_label_selector(sel), "empty selector is invalid for deployment");
                }
            }
        }
        match Selector::from_typed(selector) {
            Err(_) => {
                self.invalid("spec.selector", go_label_selector(selector.unwrap_or(&LabelSelector::default())), "invalid label selector")
            }
            Ok(sel) => {
                let meta = or_default(&template.metadata);
                let labels = meta.labels.as_ref();
                if !sel.is_empty() && !sel.matches(labels.unwrap_or(&BTreeMap::new())) {
                    self.invalid("spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`");
                }
                // Kubernetes reports template labels at `spec.template.labels` (sic).
                self.label_map(labels, "spec.template.labels");
                self.annotations(meta.annotations.as_ref(), "spec.template.annotations");
                let spec = or_default(&template.spec);
                self.pod_spec(&spec, "spec.template.spec");
                let policy = spec.restart_policy.as_deref().unwrap_or("Always");
                if policy != "Always" {
                    self.unsupported("spec.template.spec.restartPolicy", policy, &["Always"]);
                }
                if spec.active_deadline_seconds.is_some() {
                    let msg = "activeDeadlineSeconds in ReplicaSet is not Supported";
                    self.push("spec.template.spec.activeDeadlineSeconds", FieldErrorKind::Forbidden, msg);
                }
            }
        }
    }

    fn label_selector_requirements(&mut self, exprs: &[LabelSelectorRequirement]) {
        for (i, e) in exprs.iter().enumerate() {
            let at = format!("spec.selector.matchExpressions[{i}]");
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    self.required(format!("{at}.values"), "must be specified when `operator` is 'In' or 'NotIn'")
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => self.push(
                    format!("{at}.values"),
                    FieldErrorKind::Forbidden,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                op => self.invalid(format!("{at}.operator"), go_quote(op), "not a valid selector operator"),
            }
            self.each_msg(&format!("{at}.key"), &e.key, qualified_name_errors(&e.key));
            for (j, v) in values.iter().enumerate() {
                self.each_msg(&format!("{at}.values[{j}]"), v, label_value_errors(v));
            }
        }
    }

    fn service(&mut self, spec: &ServiceSpec) {
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        let cluster_ip = requested_cluster_ip(spec);
        let headless = cluster_ip == "None";
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ports.is_empty() && !headless && ty != "ExternalName" {
            self.required("spec.ports", "");
        }
        match ty {
            "NodePort" | "LoadBalancer" if headless => {
                self.invalid("spec.clusterIPs[0]", go_quote("None"), format!("may not be set to 'None' for {ty} services"))
            }
            "ExternalName" => {
                let cname = spec.external_name.as_deref().unwrap_or_default();
                let cname = cname.strip_suffix('.').unwrap_or(cname);
                if cname.is_empty() {
                    self.required("spec.externalName", "");
                } else {
                    self.each_msg("spec.externalName", cname, dns1123_subdomain_errors(cname));
                }
            }
            _ => {}
        }
        let mut names = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let at = format!("spec.ports[{i}]");
            let name = port.name.as_deref().unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                self.required(format!("{at}.name"), "");
            } else if !name.is_empty() {
                self.each_msg(&format!("{at}.name"), name, dns1123_label_errors(name));
                self.unique(format!("{at}.name"), name, &mut names);
            }
            if let Some(msg) = port_num_error(i64::from(port.port)) {
                self.invalid(format!("{at}.port"), port.port.to_string(), msg);
            }
            self.one_of(port.protocol.as_deref(), &format!("{at}.protocol"), &["SCTP", "TCP", "UDP"]);
            match &port.target_port {
                None => {}
                Some(IntOrString::String(s)) => self.each_msg(&format!("{at}.targetPort"), s, port_name_errors(s)),
                Some(IntOrString::Int(n)) => {
                    if let Some(msg) = port_num_error(i64::from(*n)) {
                        self.invalid(format!("{at}.targetPort"), n.to_string(), msg);
                    }
                }
            }
        }
        self.label_map(spec.selector.as_ref(), "spec.selector");
        self.one_of(spec.session_affinity.as_deref(), "spec.sessionAffinity", &["ClientIP", "None"]);
        if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::IpAddr>().is_err() {
            let msg = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
            self.invalid("spec.clusterIPs[0]", go_quote(cluster_ip), msg);
        }
        let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        if !types.contains(&ty) {
            self.unsupported("spec.type", ty, &types);
        }
        let mut node_ports = BTreeSet::new();
        let mut port_keys = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let node_port = port.node_port.unwrap_or(0);
            if ty == "ClusterIP" && node_port != 0 {
                let msg = "may not be used when `type` is 'ClusterIP'";
                self.push(format!("spec.ports[{i}].nodePort"), FieldErrorKind::Forbidden, msg);
            }
            if node_port != 0 && !node_ports.insert((protocol, node_port)) {
                self.push(format!("spec.ports[{i}].nodePort"), FieldErrorKind::Duplicate(node_port.to_string()), "");
            }
            let number = port.port;
            if !port_keys.insert((protocol, number)) {
                // Go prints the (protocol, port) key as a ServicePort struct.
                let repr = format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    go_quote(protocol)
                );
                self.push(format!("spec.ports[{i}]"), FieldErrorKind::Duplicate(repr), "");
            }
        }
        let external = ty == "NodePort" || ty == "LoadBalancer" || !spec.external_ips.as_ref().is_none_or(Vec::is_empty);
        if let Some(policy) = spec.external_traffic_policy.as_deref() {
            if !external {
                self.invalid("spec.externalTrafficPolicy", go_quote(policy), "may only be set for externally-accessible services");
            } else if !["Cluster", "Local"].contains(&policy) {
                self.unsupported("spec.externalTrafficPolicy", policy, &["Cluster", "Local"]);
            }
        }
        // `validateServiceExternalTrafficPolicy`: the registry fills it when needed (SVC-15).
        let health_check = spec.health_check_node_port.unwrap_or(0);
        if health_check != 0 && !spec_needs_health_check(spec) {
            self.invalid(
                "spec.healthCheckNodePort",
                health_check.to_string(),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            );
        }
        self.one_of(spec.internal_traffic_policy.as_deref(), "spec.internalTrafficPolicy", &["Cluster", "Local"]);
    }

    /// A Secret's keys, its size, and the two keys a TLS Secret must have.
    fn secret(&mut self, s: &Secret) {
        let data = s.data.as_ref();
        self.config_keys("data", data.into_iter().flatten().map(|(k, _)| k), None);
        let strings = s.string_data.as_ref();
        self.config_keys("stringData", strings.into_iter().flatten().map(|(k, _)| k), None);
        // kube-apiserver merges stringData into data before it counts.
        let size = data.into_iter().flatten().map(|(_, v)| v.0.len()).sum::<usize>()
            + strings.into_iter().flatten().map(|(_, v)| v.len()).sum::<usize>();
        if size > MAX_CONFIG_SIZE {
            self.push("data", FieldErrorKind::TooLong, format!("may not be more than {MAX_CONFIG_SIZE} bytes"));
        }
        if s.type_.as_deref() == Some("kubernetes.io/tls") {
            for key in ["tls.crt", "tls.key"] {
                if !data.is_some_and(|d| d.contains_key(key)) && !strings.is_some_and(|d| d.contains_key(key)) {
                    self.required(format!("data[{key}]"), "");
                }
            }
        }
    }

    /// A ConfigMap's keys, unique across `data` and `binaryData`, and its size.
    fn config_map(&mut self, c: &ConfigMap) {
        let mut seen = BTreeSet::new();
        self.config_keys("data", c.data.iter().flatten().map(|(k, _)| k), Some(&mut seen));
        self.config_keys("binaryData", c.binary_data.iter().flatten().map(|(k, _)| k), Some(&mut seen));
        let size = c.data.iter().flatten().map(|(_, v)| v.len()).sum::<usize>()
            + c.binary_data.iter().flatten().map(|(_, v)| v.0.len()).sum::<usize>();
        if size > MAX_CONFIG_SIZE {
            // kube-apiserver's field path for the whole object.
            self.push("[]", FieldErrorKind::TooLong, format!("may not be more than {MAX_CONFIG_SIZE} bytes"));
        }
    }

    fn config_keys<'a>(&mut self, section: &str, keys: impl Iterator<Item = &'a String>, mut seen: Option<&mut BTreeSet<&'a str>>) {
        for k in keys {
            let field = format!("{section}[{k}]");
            self.each_msg(&field, k, config_key_errors(k));
            if seen.as_mut().is_some_and(|seen| !seen.insert(k)) {
                self.invalid(&field, go_quote(k), "duplicate of key present in `data`");
            }
        }
    }

    /// An object marked `immutable: true` keeps the mark and its data `sections` (name, changed).
    fn immutable(&mut self, old: Option<bool>, new: Option<bool>, sections: &[(&str, bool)]) {
        if old != Some(true) {
            return;
        }
        const WHY: &str = "field is immutable when `immutable` is set";
        if new != Some(true) {
            self.push("immutable", FieldErrorKind::Forbidden, WHY);
        }
        for (section, changed) in sections {
            if *changed {
                self.push(*section, FieldErrorKind::Forbidden, WHY);
            }
        }
    }
}

/// A LoadBalancer Service with `externalTrafficPolicy: Local` has a `healthCheckNodePort`
/// (`NeedsHealthCheck`, SVC-15).
pub fn needs_health_check(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(spec_needs_health_check)
}

fn spec_needs_health_check(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("LoadBalancer") && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// The ClusterIP the user asked for: `clusterIPs[0]`, else `clusterIP` ("" for none).
pub fn requested_cluster_ip(spec: &ServiceSpec) -> &str {
    spec.cluster_ips.as_ref().and_then(|ips| ips.first()).or(spec.cluster_ip.as_ref()).map(String::as_str).unwrap_or_default()
}

/// Validates a decoded Service (after [`crate::defaults::service`]).
pub fn validate_service(svc: &Service) -> Result<(), Invalid> {
    let mut v = V::default();
    v.meta(&svc.metadata, dns1035_label_errors);
    v.service(&or_default(&svc.spec));
    v.finish("Service", svc.metadata.name.as_deref().unwrap_or_default())
}

/// `ValidateServiceUpdate` beyond the new object alone: a Service that keeps needing a
/// `healthCheckNodePort` keeps its value.
pub fn validate_service_update(old: &Service, new: &Service) -> Result<(), Invalid> {
    let mut v = V::default();
    let port = |s: &Service| s.spec.as_ref().and_then(|s| s.health_check_node_port).unwrap_or(0);
    if needs_health_check(old) && needs_health_check(new) && port(old) != port(new) {
        v.push("spec.healthCheckNodePort", FieldErrorKind::Forbidden, "field is immutable");
    }
    v.finish("Service", new.metadata.name.as_deref().unwrap_or_default())
}

/// How Go prints an `intstr.IntOrString` value in a field error (`%#v`).
fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
    }
}

/// apps validation's `ValidateRollingUpdateDeployment` (the int-or-percents as stored; defaults
/// fill both before validation): (field, invalid value, message) per error.
fn validate_rolling_update(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>) -> Vec<(String, String, String)> {
    let base = "spec.strategy.rollingUpdate";
    let zero = IntOrString::Int(0);
    let (surge, unavailable) = (surge.unwrap_or(&zero), unavailable.unwrap_or(&zero));
    let mut errors = Vec::new();
    let mut percent = |v: &IntOrString, field: &str| -> Option<i64> {
        let path = format!("{base}.{field}");
        match v {
            IntOrString::Int(i) if *i < 0 => {
                errors.push((path, i.to_string(), "must be greater than or equal to 0".into()));
                Some(i64::from(*i))
            }
            IntOrString::Int(i) => Some(i64::from(*i)),
            IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()).filter(|_| !s.starts_with('-')) {
                Some(n) => Some(n),
                None => {
                    errors.push((path, go_int_or_string(v), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')".into()));
                    None
                }
            },
        }
    };
    let u = percent(unavailable, "maxUnavailable");
    let s = percent(surge, "maxSurge");
    if u == Some(0) && s == Some(0) {
        errors.push((format!("{base}.maxUnavailable"), go_int_or_string(unavailable), "may not be 0 when `maxSurge` is 0".into()));
    }
    if let (IntOrString::String(_), Some(n)) = (unavailable, u) {
        if n > 100 {
            errors.push((format!("{base}.maxUnavailable"), go_int_or_string(unavailable), "must not be greater than 100%".into()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rolling_update_fenceposts_speak_kubernetes() {
        let zero = IntOrString::Int(0);
        let e = validate_rolling_update(Some(&zero), Some(&zero));
        assert_eq!(
            e,
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable".to_string(),
                "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
                "may not be 0 when `maxSurge` is 0".to_string()
            )]
        );
        assert_eq!(validate_rolling_update(Some(&IntOrString::String("0%".into())), Some(&IntOrString::String("0%".into()))).len(), 1);
        assert!(validate_rolling_update(Some(&zero), Some(&IntOrString::Int(1))).is_empty());
        let e = validate_rolling_update(Some(&IntOrString::String("1".into())), Some(&IntOrString::String("120%".into())));
        assert_eq!(e[0].0, "spec.strategy.rollingUpdate.maxSurge");
        assert_eq!(e[1].2, "must not be greater than 100%");
        let mut d = deployment(json!({"matchLabels": {"run": "x"}}), json!({"run": "x"}));
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        assert_eq!(message(&d), "The Deployment \"my-nginx\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        d["spec"]["minReadySeconds"] = json!(10);
        d["spec"]["progressDeadlineSeconds"] = json!(10);
        assert_eq!(
            message(&d),
            "The Deployment \"my-nginx\" is invalid: spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"
        );
    }

    fn deployment(selector: Value, template_labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-nginx"},
            "spec": {"replicas": 2, "selector": selector, "template": {
                "metadata": {"labels": template_labels},
                "spec": {"containers": [{"name": "my-nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}})
    }

    /// Decodes `obj` and validates it (without defaults), as admission does.
    fn check(obj: &Value) -> Result<(), Invalid> {
        let invalid = |e: typed::DecodeError| Invalid {
            kind: crate::object::kind(obj).into(),
            name: crate::object::name(obj).into(),
            causes: vec![e.0],
        };
        let object = Object::decode(crate::object::kind(obj), obj).map_err(invalid)?;
        validate(&object, Undecoded::of(obj))
    }

    fn update(old: &Value, new: &Value) -> Result<(), Invalid> {
        validate_update(old, &Object::decode(crate::object::kind(new), new).unwrap())
    }

    fn message(obj: &Value) -> String {
        check(obj).unwrap_err().to_string()
    }

    fn causes(obj: &Value) -> Vec<String> {
        let err = check(obj).unwrap_err();
        err.causes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn tutorial_objects_are_valid() {
        check(&deployment(json!({"matchLabels": {"run": "my-nginx"}}), json!({"run": "my-nginx"}))).unwrap();
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-nginx", "labels": {"run": "my-nginx"}},
            "spec": {"type": "NodePort", "selector": {"run": "my-nginx"}, "ports": [
                {"port": 8080, "targetPort": 80, "protocol": "TCP", "name": "http"},
                {"port": 443, "protocol": "TCP", "name": "https"}]}});
        check(&svc).unwrap();
    }

    #[test]
    fn tutorial_manifest_parses_defaults_and_validates() {
        let text = "---\n{\n  apiVersion: \"apps/v1\",\n  kind: \"Deployment\",\n  metadata: {\n    name: \"my-nginx\",\n  },\n  spec: {\n    selector: { matchLabels: { run: \"my-nginx\", }, },\n    replicas: 2,\n    template: {\n      metadata: { labels: { run: \"my-nginx\", }, },\n      spec: {\n        containers: [{\n          name: \"my-nginx\",\n          image: \"nginx\",\n          ports: [{ containerPort: 80, }],\n        }],\n      },\n    },\n  },\n}\n";
        let mut obj = crate::manifest::parse_documents(text).unwrap().remove(0).value;
        let mut object = Object::decode("Deployment", &obj).unwrap();
        crate::defaults::object(&mut object);
        validate(&object, Undecoded::of(&obj)).unwrap();
        obj["spec"]["template"]["metadata"]["labels"]["run"] = json!("x");
        assert!(message(&obj).ends_with("map[string]string{\"run\":\"x\"}: `selector` does not match template `labels`"));
    }

    #[test]
    fn selector_mismatch_uses_kubernetes_wording() {
        let d = deployment(json!({"matchLabels": {"run": "other"}}), json!({"run": "x"}));
        assert_eq!(
            message(&d),
            "The Deployment \"my-nginx\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"run\":\"x\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn missing_selector_gives_two_causes() {
        let d = deployment(Value::Null, json!({"app": "nginx"}));
        assert_eq!(
            message(&d),
            "The Deployment \"my-nginx\" is invalid: \n* spec.selector: Required value\n* spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn pod_spec_errors_under_template_path() {
        let mut d = deployment(json!({"matchLabels": {"run": "x"}}), json!({"run": "x"}));
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"] = json!({"containers": [
            {"name": "web", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]},
            {"name": "web", "image": "nginx", "env": [{"name": "A=B"}]}],
            "restartPolicy": "Never"});
        let causes = causes(&d);
        assert_eq!(
            causes,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.template.spec.containers[1].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.template.spec.containers[1].name: Duplicate value: \"web\"",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn pod_errors() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {}});
        let msg = message(&pod);
        assert!(
            msg.starts_with(
                "The Pod \"Bad_Name\" is invalid: \n* metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{msg}"
        );
        assert!(msg.ends_with("\n* spec.containers: Required value"), "{msg}");

        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "restartPolicy": "Sometimes",
            "volumes": [{"name": "conf", "configMap": {"name": "c"}}],
            "containers": [{"name": "Web", "image": "nginx", "volumeMounts": [{"name": "cfg", "mountPath": "/etc"}]}]}});
        let causes = causes(&pod);
        assert_eq!(causes, [
            "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].volumeMounts[0].name: Not found: \"cfg\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "nginx"}]}});
        assert_eq!(message(&pod), "The Pod \"p\" is invalid: spec.containers[0].name: Required value");
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    /// Item paths, subPath and subPathExpr stay inside their volume (`validateKeyToPath`,
    /// `validateDownwardAPIVolumeFile`, `validateProjectionSources`, `ValidateVolumeMounts`), with
    /// kube-apiserver's field paths, its `(sic)` ones included.
    #[test]
    fn volume_paths_stay_inside_the_volume() {
        let bad = pod(json!({
            "volumes": [
                {"name": "cm", "configMap": {"name": "c", "items": [
                    {"key": "a", "path": "../../../../tmp/x"}, {"key": "b", "path": "/etc/passwd"},
                    {"key": "c", "path": "..data"}, {"key": "", "path": "", "mode": 512}]}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": -1, "items": [{"key": "k", "path": ".."}]}},
                {"name": "down", "downwardAPI": {"items": [{"path": "x/../../y", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "proj", "projected": {"sources": [
                    {"configMap": {"name": "c", "items": [{"key": "a", "path": "same"}]}},
                    {"secret": {"name": "s", "items": [{"key": "a", "path": "same"}, {"key": "b", "path": "/abs"}]}},
                    {"downwardAPI": {"items": [{"path": "..2026_01", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"serviceAccountToken": {"path": "../token"}}]}}],
            "containers": [{"name": "web", "image": "nginx", "volumeMounts": [
                {"name": "cm", "mountPath": "/a", "subPath": "../../etc"},
                {"name": "cm", "mountPath": "/b", "subPath": "/etc"},
                {"name": "cm", "mountPath": "/c", "subPath": "x", "subPathExpr": "$(POD)/../.."}]}]}));
        assert_eq!(
            causes(&bad),
            [
                "spec.volumes[0].configMap.items[0].path: Invalid value: \"../../../../tmp/x\": must not contain '..'",
                "spec.volumes[0].configMap.items[1].path: Invalid value: \"/etc/passwd\": must be a relative path",
                "spec.volumes[0].configMap.items[2].path: Invalid value: \"..data\": must not start with '..'",
                "spec.volumes[0].configMap.items[3].key: Required value",
                "spec.volumes[0].configMap.items[3].path: Required value",
                "spec.volumes[0].configMap.items[3].mode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[1].secret.defaultMode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[1].secret.items[0].path: Invalid value: \"..\": must not contain '..'",
                "spec.volumes[1].secret.items[0].path: Invalid value: \"..\": must not start with '..'",
                "spec.volumes[2].downwardAPI.path: Invalid value: \"x/../../y\": must not contain '..'",
                "spec.volumes[3].projected: Invalid value: \"s\": conflicting duplicate paths",
                "spec.volumes[3].projected.sources[1].secret.items[1].path: Invalid value: \"/abs\": must be a relative path",
                "spec.volumes[3].projected.sources[2].downwardAPI.path: Invalid value: \"..2026_01\": must not start with '..'",
                "spec.volumes[3].projected.path: Invalid value: \"../token\": must not contain '..'",
                "spec.containers[0].volumeMounts.subPath: Invalid value: \"../../etc\": must not contain '..'",
                "spec.containers[0].volumeMounts.subPath: Invalid value: \"/etc\": must be a relative path",
                "spec.containers[0].volumeMounts[2].subPathExpr: Invalid value: \"$(POD)/../..\": subPathExpr and subPath are mutually exclusive",
                "spec.containers[0].volumeMounts.subPathExpr: Invalid value: \"$(POD)/../..\": must not contain '..'",
            ]
        );
        assert_eq!(
            message(&pod(json!({"volumes": [{"name": "cm", "configMap": {"name": "c"}}],
                "containers": [{"name": "web", "image": "nginx", "volumeMounts": [{"name": "cm", "mountPath": "/etc/x", "subPath": "../../etc"}]}]}))),
            "The Pod \"p\" is invalid: spec.containers[0].volumeMounts.subPath: Invalid value: \"../../etc\": must not contain '..'"
        );
        // Dots inside a name are fine; a subPath may even start with `..` (only items may not).
        check(&pod(json!({
            "volumes": [
                {"name": "cm", "configMap": {"name": "c", "defaultMode": 0o777, "items": [
                    {"key": "a", "path": "a/b.conf", "mode": 0}, {"key": "b", "path": "x/..y"}, {"key": "c", "path": "a..b"}]}},
                {"name": "proj", "projected": {"sources": [
                    {"configMap": {"name": "c", "items": [{"key": "a", "path": "one"}]}},
                    {"secret": {"name": "s", "items": [{"key": "a", "path": "two"}]}},
                    {"serviceAccountToken": {"path": "token"}}]}}],
            "containers": [{"name": "web", "image": "nginx", "volumeMounts": [
                {"name": "cm", "mountPath": "/a", "subPath": "a/b.conf"},
                {"name": "cm", "mountPath": "/b", "subPath": "..data"},
                {"name": "cm", "mountPath": "/c", "subPathExpr": "$(POD_NAME)"},
                {"name": "cm", "mountPath": "/d", "subPath": ""}]}]})))
        .unwrap();
    }

    /// What emu cannot honour is refused, Forbidden at the field, never ignored; the same
    /// fields set to false, 0 or empty, and capabilities the container has anyway, are fine.
    #[test]
    fn fields_emu_cannot_honour_are_forbidden() {
        let bad = pod(json!({
            "hostNetwork": true, "hostPID": true, "hostIPC": true,
            "volumes": [{"name": "host", "hostPath": {"path": "/etc"}}],
            "containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 70000}],
                "securityContext": {"privileged": true, "capabilities": {"add": ["NET_BIND_SERVICE", "NET_ADMIN", "sys_admin"]}}}]}));
        assert_eq!(
            causes(&bad),
            [
                "spec.volumes[0].hostPath: Forbidden: emu does not support hostPath volumes: put the files in a ConfigMap or Secret and mount that instead",
                "spec.containers[0].ports[0].hostPort: Forbidden: emu does not support hostPort: remove it and reach the port through a NodePort Service instead",
                "spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].securityContext.privileged: Forbidden: emu does not support privileged containers: remove privileged (or set it to false)",
                "spec.containers[0].securityContext.capabilities.add: Forbidden: emu does not support adding capabilities beyond the container runtime's default set (\"NET_ADMIN\", \"sys_admin\"): remove them from capabilities.add",
                "spec.hostNetwork: Forbidden: emu does not support host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service",
                "spec.hostPID: Forbidden: emu does not support sharing the host's process namespace: remove hostPID (or set it to false)",
                "spec.hostIPC: Forbidden: emu does not support sharing the host's IPC namespace: remove hostIPC (or set it to false)",
            ]
        );
        assert_eq!(
            message(&pod(json!({"hostNetwork": true, "containers": [{"name": "web", "image": "nginx"}]}))),
            "The Pod \"p\" is invalid: spec.hostNetwork: Forbidden: emu does not support host networking: each pod has a network namespace of its own; remove hostNetwork (or set it to false) and reach the pod through a Service"
        );
        check(&pod(json!({
            "hostNetwork": false, "hostPID": false, "hostIPC": false,
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 0}],
                "securityContext": {"privileged": false, "allowPrivilegeEscalation": false,
                    "capabilities": {"add": ["NET_BIND_SERVICE", "chown"], "drop": ["ALL"]}}},
                {"name": "side", "image": "busybox", "securityContext": {"capabilities": {"add": []}}}]})))
        .unwrap();
    }

    #[test]
    fn pod_template_fields_are_checked_as_a_pods() {
        let mut d = deployment(json!({"matchLabels": {"run": "x"}}), json!({"run": "x"}));
        d["spec"]["template"]["spec"] = json!({"hostPID": true, "volumes": [{"name": "cm", "configMap": {"name": "c", "items": [{"key": "k", "path": "/k"}]}}],
            "containers": [{"name": "web", "image": "nginx", "volumeMounts": [{"name": "cm", "mountPath": "/x", "subPath": "../.."}]}]});
        assert_eq!(
            causes(&d),
            [
                "spec.template.spec.volumes[0].configMap.items[0].path: Invalid value: \"/k\": must be a relative path",
                "spec.template.spec.containers[0].volumeMounts.subPath: Invalid value: \"../..\": must not contain '..'",
                "spec.template.spec.hostPID: Forbidden: emu does not support sharing the host's process namespace: remove hostPID (or set it to false)",
            ]
        );
        d["kind"] = json!("ReplicaSet");
        assert_eq!(causes(&d).len(), 3);
    }

    #[test]
    fn names_and_labels() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}});
        assert_eq!(message(&svc), "The Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}});
        assert_eq!(message(&ns), "The Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": must not contain dots");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}});
        assert_eq!(message(&ns), "The Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required");
        // A label of the wrong type fails the decode, before any other check.
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "my-nginx-5b56ccd65f-", "labels": {"a/b/c": "x", "n": 1}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(causes(&pod), ["metadata.labels[n]: Invalid value: 1: must be of type string"]);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "my-nginx-5b56ccd65f-", "labels": {"a/b/c": "x", "ok": "-x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let causes = causes(&pod);
        assert_eq!(causes, [
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            "metadata.labels: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ]);
        assert!(qualified_name_errors("kubernetes.io/service-name").is_empty());
        assert!(label_value_errors("").is_empty());
        assert_eq!(dns1123_label_errors(&"a".repeat(64)), ["must be no more than 63 characters"]);
    }

    /// PodSecurity's policy labels are refused as its plugin refuses them, and only once the
    /// Namespace is otherwise valid (admission runs after validation).
    #[test]
    fn pod_security_labels_of_a_namespace() {
        let ns = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        check(&ns(
            "locked",
            json!({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.33"}),
        ))
        .unwrap();
        assert_eq!(
            message(&ns("locked", json!({"pod-security.kubernetes.io/enforce": "strict"}))),
            "The Namespace \"locked\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        );
        assert_eq!(
            causes(&ns("A", json!({"pod-security.kubernetes.io/enforce": "strict"}))),
            ["metadata.name: Invalid value: \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn service_errors() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {
            "sessionAffinity": "Sticky", "externalTrafficPolicy": "Local",
            "ports": [{"port": 70000}, {"port": 80, "nodePort": 30080, "name": "http"}, {"port": 80, "name": "http", "targetPort": "web"}]}});
        let causes = causes(&svc);
        assert_eq!(causes, [
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[2].name: Duplicate value: \"http\"",
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
        ]);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}});
        assert_eq!(
            message(&svc),
            "The Service \"s\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}});
        assert_eq!(
            message(&svc),
            "The Service \"s\" is invalid: spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
        );
    }

    #[test]
    fn health_check_node_port_rules() {
        let svc = |ty: &str, policy: &str, hc: i64| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {
                "type": ty, "externalTrafficPolicy": policy, "healthCheckNodePort": hc, "ports": [{"port": 80}]}})
        };
        check(&svc("LoadBalancer", "Local", 30500)).unwrap();
        check(&svc("NodePort", "Cluster", 0)).unwrap();
        for (ty, policy) in [("NodePort", "Local"), ("LoadBalancer", "Cluster")] {
            assert_eq!(
                message(&svc(ty, policy, 30500)),
                "The Service \"s\" is invalid: spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
            );
        }
        let update =
            |old: Value, new: Value| validate_service_update(&crate::typed::decode(&old).unwrap(), &crate::typed::decode(&new).unwrap());
        let err = update(svc("LoadBalancer", "Local", 30500), svc("LoadBalancer", "Local", 30501)).unwrap_err();
        assert_eq!(err.to_string(), "The Service \"s\" is invalid: spec.healthCheckNodePort: Forbidden: field is immutable");
        update(svc("LoadBalancer", "Local", 30500), svc("LoadBalancer", "Cluster", 0)).unwrap();
        update(svc("NodePort", "Cluster", 0), svc("LoadBalancer", "Local", 30501)).unwrap();
    }

    #[test]
    fn empty_selector_and_bad_operator() {
        let d = deployment(json!({}), json!({"run": "x"}));
        assert_eq!(message(&d), "The Deployment \"my-nginx\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment");
        let mut rs = deployment(json!({"matchExpressions": [{"key": "run", "operator": "Is", "values": ["x"]}]}), json!({"run": "x"}));
        rs["kind"] = json!("ReplicaSet");
        let causes = causes(&rs);
        assert_eq!(causes[0], "spec.selector.matchExpressions[0].operator: Invalid value: \"Is\": not a valid selector operator");
        assert!(causes[1].starts_with("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"run\", Operator:\"Is\", Values:[]string{\"x\"}}}}: invalid label selector"), "{}", causes[1]);
    }

    #[test]
    fn rbac_objects() {
        let role = |rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "d"}, "rules": rules});
        check(&role(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]))).unwrap();
        assert_eq!(
            causes(&role(json!([{"verbs": []}, {"nonResourceURLs": ["/x"], "resources": ["pods"], "verbs": ["get"]}]))),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/api/*"], "verbs": ["get"]}]});
        check(&cr).unwrap();
        let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a/b"}, "aggregationRule": {}});
        assert_eq!(
            causes(&bad),
            [
                "metadata.name: Invalid value: \"a/b\": may not contain '/'",
                "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
            ]
        );
        let binding = |kind: &str, role_ref: Value, subjects: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "b", "namespace": "d"},
                "roleRef": role_ref, "subjects": subjects})
        };
        let view = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"});
        let alice = json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]);
        check(&binding("RoleBinding", view.clone(), alice.clone())).unwrap();
        assert_eq!(
            causes(&binding(
                "ClusterRoleBinding",
                json!({"apiGroup": "x", "kind": "Role", "name": ""}),
                json!([{"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "r"}, {"kind": "User", "name": "u"}])
            )),
            [
                "roleRef.apiGroup: Unsupported value: \"x\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "roleRef.name: Required value",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                "subjects[2].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            ]
        );
        // The role a binding grants never changes; its subjects may.
        let edit = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"});
        assert_eq!(
            update(&binding("RoleBinding", view.clone(), alice.clone()), &binding("RoleBinding", edit, alice)).unwrap_err().to_string(),
            "The RoleBinding \"b\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
        );
        update(&binding("RoleBinding", view.clone(), json!([])), &binding("RoleBinding", view, json!([{"kind": "Group", "name": "g"}])))
            .unwrap();
    }

    /// A ServiceAccount's name is a DNS-1123 subdomain (`ValidateServiceAccountName`); nothing
    /// else of it is checked.
    #[test]
    fn service_accounts() {
        let sa = |name: &str| {
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"},
            "secrets": [{"name": "s"}], "imagePullSecrets": [{"name": "p"}], "automountServiceAccountToken": false})
        };
        check(&sa("build-robot.v2")).unwrap();
        assert_eq!(
            message(&sa("Robot")),
            "The ServiceAccount \"Robot\" is invalid: metadata.name: Invalid value: \"Robot\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }

    #[test]
    fn secrets_and_configmaps() {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nginxsecret"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}});
        assert_eq!(message(&s), "The Secret \"nginxsecret\" is invalid: data[tls.key]: Required value");
        let c =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "x"}, "binaryData": {"a": "eA=="}});
        assert_eq!(message(&c), "The ConfigMap \"c\" is invalid: binaryData[a]: Invalid value: \"a\": duplicate of key present in `data`");
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls", "stringData": {"tls.key": "k"}, "data": {"tls.crt": "YQ=="}});
        check(&s).unwrap();
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"default.conf": "x", "a b": "y"}});
        assert!(message(&c).starts_with("The ConfigMap \"c\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
    }

    #[test]
    fn secrets_and_configmaps_hold_at_most_a_mebibyte() {
        let config_map =
            |n: usize| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge1"}, "data": {"k": "A".repeat(n)}});
        check(&config_map(MAX_CONFIG_SIZE)).unwrap();
        assert_eq!(
            message(&config_map(MAX_CONFIG_SIZE + 1)),
            "The ConfigMap \"huge1\" is invalid: []: Too long: may not be more than 1048576 bytes"
        );
        let secret = |n: usize| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "A".repeat(n / 2), "b": "B".repeat(n - n / 2)}});
        check(&secret(MAX_CONFIG_SIZE)).unwrap();
        assert_eq!(
            message(&secret(MAX_CONFIG_SIZE + 1)),
            "The Secret \"s\" is invalid: data: Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn secret_type_and_immutable_objects_cannot_change() {
        let old = json!({"kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}});
        let mut new = old.clone();
        new["type"] = json!("Opaque");
        assert_eq!(
            update(&old, &new).unwrap_err().to_string(),
            "The Secret \"s\" is invalid: type: Invalid value: \"Opaque\": field is immutable"
        );
        let untyped = json!({"kind": "Secret", "metadata": {"name": "s"}});
        assert!(update(&untyped, &json!({"kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"})).is_ok());

        let old = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        assert!(update(&old, &old).is_ok());
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        new["immutable"] = json!(false);
        assert_eq!(
            update(&old, &new).unwrap_err().to_string(),
            "The ConfigMap \"c\" is invalid: \n* immutable: Forbidden: field is immutable when `immutable` is set\n* data: Forbidden: field is immutable when `immutable` is set"
        );
        // Not marked: anything but a Secret's type may change.
        let free = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        assert!(update(&free, &json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": true})).is_ok());
    }

    #[test]
    fn invalid_display_dedups_and_handles_no_causes() {
        let c = FieldError { field: "spec.x".into(), kind: FieldErrorKind::Required, detail: String::new() };
        let i = Invalid { kind: "Pod".into(), name: "p".into(), causes: vec![c.clone(), c] };
        assert_eq!(i.to_string(), "The Pod \"p\" is invalid: spec.x: Required value");
        let none = Invalid { kind: "Pod".into(), name: "p".into(), causes: vec![] };
        assert_eq!(none.to_string(), "The Pod \"p\" is invalid");
    }
}
