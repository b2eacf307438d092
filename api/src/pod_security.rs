//! Pod Security admission as kube-apiserver's built-in `PodSecurity` plugin does it
//! (k8s.io/pod-security-admission), as pure functions: a Namespace's
//! `pod-security.kubernetes.io/*` labels name a level (privileged, baseline, restricted) for each
//! of three modes, and a Pod in it is checked against them:
//! - `enforce`: a new Pod that breaks a check is refused with `pods "x" is forbidden: violates
//!   PodSecurity "restricted:latest": …` ([`admit_pod`]);
//! - `warn`: a Pod, or a workload's pod template (Deployment, ReplicaSet: the template kinds emu
//!   serves), that breaks it is written, and the client is told `would violate PodSecurity
//!   "restricted:latest": …` ([`admit_pod`], [`template_warnings`]); not on a request enforce
//!   already refuses;
//! - `audit`: validated, and has no effect: the plugin's only output for it is the
//!   `pod-security.kubernetes.io/audit-violations` annotation of the request's audit event, and
//!   emu keeps no audit log (kube-apiserver without an audit policy records nothing either).
//!
//! A Namespace whose enforce level gets stricter warns about the pods already in it that break
//! the new level, as the plugin does ([`enforce_tightened`], [`existing_pods_warnings`]).
//!
//! What emu does of it, and why:
//! - A pod's update is checked (enforce and warn) only when it changes what the checks read
//!   and the API lets change, as the plugin's `isSignificantPodUpdate` decides
//!   ([`significant_update`]): an image, a seccomp annotation, the number of containers.
//! - Every version is evaluated with the latest checks; the messages name the level and version
//!   the namespace set (`restricted:v1.30`), as Kubernetes prints them.
//! - It runs after validation, as the plugin (a validating admission plugin) runs after object
//!   validation: a field emu refuses outright (privileged, hostNetwork, hostPath, …) is refused
//!   with validation's message first.
//! - kube-apiserver's default configuration: no exemptions, every mode `privileged:latest`
//!   unless a label says otherwise.
//!
//! The checks and their order are the library's: every check of a level is run, in the order of
//! their IDs (baseline's first, then restricted's, each sorted), and the failures are joined
//! `reason (detail), reason (detail)`. At restricted, a restricted check replaces the baseline
//! check it overrides (`capabilities_restricted` replaces `capabilities_baseline`, …).

use crate::field::{go_quote, FieldError, FieldErrorKind};
use crate::typed::k8s_openapi::api::core::v1::{ContainerPort, Lifecycle, Probe, SELinuxOptions, SecurityContext};
use crate::typed::{ObjectMeta, Pod, PodSpec, PodTemplateSpec};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// A Pod Security Standards level, least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level and the policy version it was set with (`None`: `latest`), printed as the plugin
/// prints it: `restricted:latest`, `baseline:v1.30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: Option<u64>,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            None => write!(f, "{}:latest", self.level.as_str()),
            Some(minor) => write!(f, "{}:v1.{minor}", self.level.as_str()),
        }
    }
}

/// `ParseVersion`: `latest`, or `v1.<minor>` without leading zeros.
fn parse_version(s: &str) -> Result<Option<u64>, ()> {
    if s == "latest" {
        return Ok(None);
    }
    let minor = s.strip_prefix("v1.").ok_or(())?;
    let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
    if !digits || (minor.len() > 1 && minor.starts_with('0')) {
        return Err(());
    }
    // Go's Atoi fails past i64, and so does this.
    minor.parse::<i64>().map(|m| Some(m as u64)).map_err(|_| ())
}

/// The policy of each mode a namespace's labels set (`PolicyToEvaluate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub enforce: Policy,
    pub audit: Policy,
    pub warn: Policy,
}

/// The policies a namespace's labels set (`PolicyToEvaluate` over kube-apiserver's default
/// configuration, `privileged:latest` for every mode): a mode without its label keeps the
/// default; a level that does not parse fails closed to restricted for enforce and open to
/// privileged for audit and warn, and a version that does not parse is `latest`, as the plugin
/// does (admission refuses such labels, so only an object stored before could carry them).
/// The modes are independent: warn does not follow enforce.
pub fn policies(labels: Option<&BTreeMap<String, String>>) -> Policies {
    let get = |key: &str| labels.and_then(|l| l.get(key));
    let policy = |level_label: &str, version_label: &str, unparsed: Level| Policy {
        level: get(level_label).map_or(Level::Privileged, |l| Level::parse(l).unwrap_or(unparsed)),
        version: get(version_label).and_then(|v| parse_version(v).ok()).flatten(),
    };
    Policies {
        enforce: policy(ENFORCE_LABEL, ENFORCE_VERSION_LABEL, Level::Restricted),
        audit: policy(AUDIT_LABEL, AUDIT_VERSION_LABEL, Level::Privileged),
        warn: policy(WARN_LABEL, WARN_VERSION_LABEL, Level::Privileged),
    }
}

/// The policy a namespace's labels enforce ([`policies`]' enforce).
pub fn enforce_policy(labels: Option<&BTreeMap<String, String>>) -> Policy {
    policies(labels).enforce
}

/// The plugin's refusal of a Namespace's policy labels, on create and update
/// (`metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one
/// of privileged, baseline, restricted`), in the plugin's order: enforce, audit, warn, each
/// level then version.
pub fn label_errors(labels: Option<&BTreeMap<String, String>>) -> Vec<FieldError> {
    let level_ok: fn(&str) -> bool = |v| Level::parse(v).is_some();
    let version_ok: fn(&str) -> bool = |v| parse_version(v).is_ok();
    let mut errs = Vec::new();
    for mode in ["enforce", "audit", "warn"] {
        for (suffix, valid, detail) in
            [("", level_ok, "must be one of privileged, baseline, restricted"), ("-version", version_ok, "must be \"latest\" or \"v1.x\"")]
        {
            let key = format!("{LABEL_PREFIX}{mode}{suffix}");
            if let Some(value) = labels.and_then(|l| l.get(&key)).filter(|v| !valid(v)) {
                errs.push(FieldError {
                    field: format!("metadata.labels[{key}]"),
                    kind: FieldErrorKind::Invalid(go_quote(value)),
                    detail: detail.into(),
                });
            }
        }
    }
    errs
}

/// A failed check: what (`hostPort`) and, for one object, which (`container "c" uses hostPort 80`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

/// The refusal of a new Pod in a namespace labelled `namespace_labels`, worded as
/// kube-apiserver words it (`pods "x" is forbidden: violates PodSecurity …`); `None` admits it.
pub fn refusal(pod: &Pod, namespace_labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    admit_pod(pod, namespace_labels).err()
}

/// The plugin's answer to a Pod's create, or to an update that changes what it checks
/// ([`significant_update`]), in a namespace labelled `namespace_labels` (`EvaluatePod`):
/// refused when it breaks the enforce level, with kube-apiserver's message (`pods "x" is
/// forbidden: violates PodSecurity "restricted:latest": …`); else admitted, with the warning
/// of the warn level it breaks (`would violate PodSecurity "restricted:latest": …`). A request
/// enforce refuses gets no warning.
pub fn admit_pod(pod: &Pod, namespace_labels: Option<&BTreeMap<String, String>>) -> Result<Vec<String>, String> {
    let policies = policies(namespace_labels);
    let spec = pod.spec.clone().unwrap_or_default();
    let enforced = evaluate(policies.enforce.level, &pod.metadata, &spec);
    if !enforced.is_empty() {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        return Err(format!("pods {name:?} is forbidden: violates PodSecurity \"{}\": {}", policies.enforce, describe(&enforced)));
    }
    Ok(would_violate(policies.warn, &pod.metadata, &spec).into_iter().collect())
}

/// The warnings of a write of a workload with a pod `template` (a Deployment's, a ReplicaSet's)
/// in a namespace labelled `namespace_labels`, on its create and on every update of the object
/// itself (`ValidatePodController`): the warn level it breaks. Enforce does not apply: its pods
/// are checked when they are created.
pub fn template_warnings(template: &PodTemplateSpec, namespace_labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let warn = policies(namespace_labels).warn;
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    would_violate(warn, &meta, &spec).into_iter().collect()
}

/// `would violate PodSecurity "restricted:latest": …`, when a pod or template breaks `policy`.
fn would_violate(policy: Policy, meta: &ObjectMeta, spec: &PodSpec) -> Option<String> {
    let violations = evaluate(policy.level, meta, spec);
    (!violations.is_empty()).then(|| format!("would violate PodSecurity \"{policy}\": {}", describe(&violations)))
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Whether a Pod's update from `old` to `new` is checked (`isSignificantPodUpdate`): it changes
/// the pod's seccomp annotation, the number of containers or init containers, a container's
/// image or seccomp annotation, or adds or changes an ephemeral container. Nothing else of a
/// pod the checks read may change in Kubernetes, so the plugin looks no further.
pub fn significant_update(new: &Pod, old: &Pod) -> bool {
    let annotation =
        |pod: &Pod, key: &str| -> String { pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default() };
    // A container (by name) whose image or seccomp annotation changed.
    let changed = |name: &str, image: &Option<String>, old_image: &Option<String>| {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{name}");
        image.as_deref().unwrap_or_default() != old_image.as_deref().unwrap_or_default() || annotation(new, &key) != annotation(old, &key)
    };
    if annotation(new, SECCOMP_POD_ANNOTATION) != annotation(old, SECCOMP_POD_ANNOTATION) {
        return true;
    }
    let (spec, old_spec) = (new.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
    let (init, old_init) = (spec.init_containers.unwrap_or_default(), old_spec.init_containers.unwrap_or_default());
    if spec.containers.len() != old_spec.containers.len() || init.len() != old_init.len() {
        return true;
    }
    let pairs = spec.containers.iter().zip(&old_spec.containers).chain(init.iter().zip(&old_init));
    if pairs.into_iter().any(|(c, o)| changed(&c.name, &c.image, &o.image)) {
        return true;
    }
    let old_ephemeral = old_spec.ephemeral_containers.unwrap_or_default();
    spec.ephemeral_containers.unwrap_or_default().iter().any(|c| match old_ephemeral.iter().find(|o| o.name == c.name) {
        None => true,
        Some(o) => changed(&c.name, &c.image, &o.image),
    })
}

/// The enforce policy a Namespace's update from `old_labels` to `new_labels` makes its existing
/// pods answer to (`ValidateNamespace`), or `None` when the plugin does not check them: the
/// policy is unchanged, the new one is privileged, or it keeps its version and is no stricter.
pub fn enforce_tightened(old_labels: Option<&BTreeMap<String, String>>, new_labels: Option<&BTreeMap<String, String>>) -> Option<Policy> {
    let (old, new) = (enforce_policy(old_labels), enforce_policy(new_labels));
    let relaxed_or_same = new.version == old.version && new.level <= old.level;
    (new != old && new.level != Level::Privileged && !relaxed_or_same).then_some(new)
}

/// The UID of a pod's controller (`GetControllerOf`).
fn controller_uid(pod: &Pod) -> Option<&str> {
    let refs = pod.metadata.owner_references.as_deref().unwrap_or_default();
    refs.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

/// How many existing pods the plugin checks against a namespace's new enforce level
/// (`defaultNamespaceMaxPodsToCheck`).
pub const MAX_PODS_TO_CHECK: usize = 3000;

/// The warnings about a namespace's existing `pods` under its new enforce `policy`
/// (`EvaluatePodsInNamespace`): at most `max_pods` are checked, one pod of each controller first
/// (its other pods last) so that one large ReplicaSet does not hide the rest; pods failing the
/// same checks are one warning, named by the first of their names in byte order with how many
/// others there are, listing only the checks' reasons. Then, in order: how many of the pods were
/// checked (when not all), `existing pods in namespace "x" violate the new PodSecurity enforce
/// level "restricted:latest"`, and the pods' warnings sorted. (The plugin also stops after one
/// second; emu's checks of a few thousand pods take far less.)
pub fn existing_pods_warnings(namespace: &str, policy: Policy, pods: &[Pod], max_pods: usize) -> Vec<String> {
    let mut first = Vec::new();
    let mut replicated = Vec::new();
    let mut controllers = HashSet::new();
    for pod in pods {
        match controller_uid(pod) {
            Some(uid) if !controllers.insert(uid) => replicated.push(pod),
            _ => first.push(pod),
        }
    }
    first.extend(replicated);
    let total = first.len();
    first.truncate(max_pods);
    let checked = first.len();
    // Each distinct reasons list, in the order first seen, with its first name and count.
    let mut reasons_seen: Vec<String> = Vec::new();
    let mut named: HashMap<String, (String, usize)> = HashMap::new();
    for pod in first {
        let spec = pod.spec.clone().unwrap_or_default();
        let violations = evaluate(policy.level, &pod.metadata, &spec);
        if violations.is_empty() {
            continue;
        }
        let reasons = violations.iter().map(|v| v.reason.as_str()).collect::<Vec<_>>().join(", ");
        let name = pod.metadata.name.clone().unwrap_or_default();
        match named.get_mut(&reasons) {
            Some((first_name, count)) => {
                if name < *first_name {
                    *first_name = name;
                }
                *count += 1;
            }
            None => {
                named.insert(reasons.clone(), (name, 1));
                reasons_seen.push(reasons);
            }
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!("new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"));
    }
    if !reasons_seen.is_empty() {
        warnings.push(format!("existing pods in namespace {} violate the new PodSecurity enforce level \"{policy}\"", go_quote(namespace)));
    }
    let mut pod_warnings: Vec<String> = reasons_seen
        .into_iter()
        .map(|reasons| {
            let (name, count) = &named[&reasons];
            match count {
                1 => format!("{name}: {reasons}"),
                2 => format!("{name} (and 1 other pod): {reasons}"),
                n => format!("{name} (and {} other pods): {reasons}", n - 1),
            }
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

/// `AggregateCheckResult.ForbiddenDetail`: `reason (detail), reason (detail)`.
pub fn describe(violations: &[Violation]) -> String {
    let parts: Vec<String> =
        violations.iter().map(|v| if v.detail.is_empty() { v.reason.clone() } else { format!("{} ({})", v.reason, v.detail) }).collect();
    parts.join(", ")
}

type Check = fn(&ObjectMeta, &PodSpec) -> Option<Violation>;

/// The baseline checks by ID, in the order of their IDs (Go's byte order).
const BASELINE: [(&str, Check); 12] = [
    ("appArmorProfile", app_armor_profile),
    ("capabilities_baseline", capabilities_baseline),
    ("hostNamespaces", host_namespaces),
    ("hostPathVolumes", host_path_volumes),
    ("hostPorts", host_ports),
    ("hostProbesAndHostLifecycle", host_probes_and_lifecycle),
    ("privileged", privileged),
    ("procMount", proc_mount_baseline),
    ("seLinuxOptions", se_linux_options),
    ("seccompProfile_baseline", seccomp_baseline),
    ("sysctls", sysctls),
    ("windowsHostProcess", windows_host_process),
];

/// The restricted checks by ID, in the order of their IDs, with the baseline checks each one
/// replaces at restricted.
const RESTRICTED: [(&str, Check, &[&str]); 7] = [
    ("allowPrivilegeEscalation", allow_privilege_escalation, &[]),
    ("capabilities_restricted", capabilities_restricted, &["capabilities_baseline"]),
    ("procMount_restricted", proc_mount_restricted, &["procMount"]),
    ("restrictedVolumes", restricted_volumes, &["hostPathVolumes"]),
    ("runAsNonRoot", run_as_non_root, &[]),
    ("runAsUser", run_as_user, &[]),
    ("seccompProfile_restricted", seccomp_restricted, &["seccompProfile_baseline"]),
];

/// Every check of `level` on a pod (or a template's metadata and spec), the failed ones in order.
pub fn evaluate(level: Level, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    let overridden: Vec<&str> = RESTRICTED.iter().flat_map(|(_, _, o)| o.iter().copied()).collect();
    let checks: Vec<Check> = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE.iter().map(|(_, c)| *c).collect(),
        Level::Restricted => BASELINE
            .iter()
            .filter(|(id, _)| !overridden.contains(id))
            .map(|(_, c)| *c)
            .chain(RESTRICTED.iter().map(|(_, c, _)| *c))
            .collect(),
    };
    checks.into_iter().filter_map(|check| check(meta, spec)).collect()
}

// ---- What the checks read of a container, for containers, init and ephemeral containers alike.

struct Ctr<'a> {
    name: &'a str,
    security: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
    probes: [Option<&'a Probe>; 3],
    lifecycle: Option<&'a Lifecycle>,
}

/// The pod's containers as the library visits them: init containers, containers, ephemeral
/// containers.
fn containers(spec: &PodSpec) -> Vec<Ctr<'_>> {
    let plain = spec.init_containers.iter().flatten().chain(&spec.containers).map(|c| Ctr {
        name: &c.name,
        security: c.security_context.as_ref(),
        ports: c.ports.as_deref().unwrap_or_default(),
        probes: [c.liveness_probe.as_ref(), c.readiness_probe.as_ref(), c.startup_probe.as_ref()],
        lifecycle: c.lifecycle.as_ref(),
    });
    let ephemeral = spec.ephemeral_containers.iter().flatten().map(|c| Ctr {
        name: &c.name,
        security: c.security_context.as_ref(),
        ports: c.ports.as_deref().unwrap_or_default(),
        probes: [c.liveness_probe.as_ref(), c.readiness_probe.as_ref(), c.startup_probe.as_ref()],
        lifecycle: c.lifecycle.as_ref(),
    });
    plain.chain(ephemeral).collect()
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

/// Go's `joinQuote`: each item in double quotes (not escaped), comma-separated.
fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| format!("\"{}\"", s.as_ref())).collect();
    quoted.join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn named_containers(names: &[&str]) -> String {
    format!("{} {}", pluralize("container", "containers", names.len()), join_quote(names))
}

/// Who set a forbidden value, as the checks name them: `pod` (its security context), then the
/// containers (their own).
fn setters(pod: bool, bad: &[&str]) -> Vec<String> {
    let mut who = Vec::new();
    if pod {
        who.push("pod".to_string());
    }
    if !bad.is_empty() {
        who.push(named_containers(bad));
    }
    who
}

fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation { reason: reason.into(), detail })
}

/// The containers whose security context `bad` flags, by name, in visiting order.
fn flagged(spec: &PodSpec, bad: impl Fn(&SecurityContext) -> bool) -> Vec<&str> {
    containers(spec).into_iter().filter(|c| c.security.is_some_and(&bad)).map(|c| c.name).collect()
}

fn pod_security_context(spec: &PodSpec) -> Option<&crate::typed::k8s_openapi::api::core::v1::PodSecurityContext> {
    spec.security_context.as_ref()
}

fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

/// A pod in a user namespace (`hostUsers: false`) is spared the checks that root inside it
/// makes moot (procMount at baseline, runAsNonRoot, runAsUser), as the latest policy does.
fn in_user_namespace(spec: &PodSpec) -> bool {
    spec.host_users == Some(false)
}

// ---- Baseline.

fn app_armor_profile(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let allowed = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut values = BTreeSet::new();
    let pod = pod_security_context(spec).and_then(|s| s.app_armor_profile.as_ref()).filter(|p| !allowed(&p.type_));
    values.extend(pod.map(|p| p.type_.clone()));
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(p) = c.security.and_then(|s| s.app_armor_profile.as_ref()).filter(|p| !allowed(&p.type_)) {
            bad.push(c.name);
            values.insert(p.type_.clone());
        }
    }
    let mut setters = setters(pod.is_some(), &bad);
    let mut annotations: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, v)| {
            k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    annotations.sort();
    let mut all: Vec<String> = values.into_iter().collect();
    if !annotations.is_empty() {
        setters.push(pluralize("annotation", "annotations", annotations.len()).into());
        all.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    let reason = pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", all.len());
    violation(reason, format!("{} must not set AppArmor profile type to {}", setters.join(" and "), join_quote(&all)))
}

/// The capabilities baseline lets a container add: the container runtimes' default set less
/// NET_RAW.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The capabilities a container adds that `allowed` does not hold (case-sensitive, as the
/// library compares them): the containers adding any, in order, and the capabilities, sorted.
fn added_beyond(spec: &PodSpec, allowed: impl Fn(&str) -> bool) -> (Vec<&str>, BTreeSet<&str>) {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let added = c.security.and_then(|s| s.capabilities.as_ref()).and_then(|caps| caps.add.as_deref()).unwrap_or_default();
        let extra: Vec<&str> = added.iter().map(String::as_str).filter(|cap| !allowed(cap)).collect();
        if !extra.is_empty() {
            bad.push(c.name);
            caps.extend(extra);
        }
    }
    (bad, caps)
}

fn must_not_add(bad: &[&str], caps: &BTreeSet<&str>) -> String {
    format!("{} must not include {} in securityContext.capabilities.add", named_containers(bad), join_quote(caps))
}

fn capabilities_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let (bad, caps) = added_beyond(spec, |cap| BASELINE_CAPABILITIES.contains(&cap));
    if bad.is_empty() {
        return None;
    }
    violation("non-default capabilities", must_not_add(&bad, &caps))
}

fn host_namespaces(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let shared: Vec<&str> = [("hostNetwork=true", spec.host_network), ("hostPID=true", spec.host_pid), ("hostIPC=true", spec.host_ipc)]
        .into_iter()
        .filter(|(_, on)| *on == Some(true))
        .map(|(what, _)| what)
        .collect();
    if shared.is_empty() {
        return None;
    }
    violation("host namespaces", shared.join(", "))
}

fn host_path_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let names: Vec<&str> = spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).map(|v| v.name.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    violation("hostPath volumes", format!("{} {}", pluralize("volume", "volumes", names.len()), join_quote(&names)))
}

fn host_ports(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    // Sorted as strings, as the library's string set sorts them.
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let used: Vec<String> = c.ports.iter().filter_map(|p| p.host_port).filter(|&p| p != 0).map(|p| p.to_string()).collect();
        if !used.is_empty() {
            bad.push(c.name);
            ports.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    let detail = format!(
        "{} {} {} {}",
        named_containers(&bad),
        pluralize("uses", "use", bad.len()),
        pluralize("hostPort", "hostPorts", ports.len()),
        ports.join(", ")
    );
    violation("hostPort", detail)
}

fn host_probes_and_lifecycle(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    // Both sorted: the library keeps them in sets.
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        let mut used = Vec::new();
        for probe in c.probes.into_iter().flatten() {
            used.extend(probe.http_get.as_ref().and_then(|a| a.host.as_deref()));
            used.extend(probe.tcp_socket.as_ref().and_then(|a| a.host.as_deref()));
        }
        let handlers = c.lifecycle.map(|l| [l.post_start.as_ref(), l.pre_stop.as_ref()]).unwrap_or_default();
        for handler in handlers.into_iter().flatten() {
            used.extend(handler.http_get.as_ref().and_then(|a| a.host.as_deref()));
            used.extend(handler.tcp_socket.as_ref().and_then(|a| a.host.as_deref()));
        }
        used.retain(|h| !h.is_empty());
        if !used.is_empty() {
            bad.insert(c.name);
            hosts.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<&str> = bad.into_iter().collect();
    let detail = format!(
        "{} {} {} {}",
        named_containers(&bad),
        pluralize("uses", "use", bad.len()),
        pluralize("probe or lifecycle host", "probe or lifecycle hosts", hosts.len()),
        join_quote(&hosts)
    );
    violation("probe or lifecycle host", detail)
}

fn privileged(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let bad = flagged(spec, |s| s.privileged == Some(true));
    if bad.is_empty() {
        return None;
    }
    violation("privileged", format!("{} must not set securityContext.privileged=true", named_containers(&bad)))
}

fn proc_mount(spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(t) = c.security.and_then(|s| s.proc_mount.as_deref()).filter(|t| *t != "Default") {
            bad.push(c.name);
            types.insert(t);
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation("procMount", format!("{} must not set securityContext.procMount to {}", named_containers(&bad), join_quote(&types)))
}

fn proc_mount_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) {
        return None;
    }
    proc_mount(spec)
}

/// The SELinux types a pod may ask for (the 1.31 set).
const SELINUX_TYPES: [&str; 5] = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

fn se_linux_options(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut valid = |o: &SELinuxOptions| {
        let t = o.type_.as_deref().unwrap_or_default();
        let type_ok = SELINUX_TYPES.contains(&t);
        if !type_ok {
            types.insert(t.to_string());
        }
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        user |= set(&o.user);
        role |= set(&o.role);
        type_ok && !set(&o.user) && !set(&o.role)
    };
    let pod = pod_security_context(spec).and_then(|s| s.se_linux_options.as_ref()).is_some_and(|o| !valid(o));
    let bad: Vec<&str> = containers(spec)
        .into_iter()
        .filter(|c| c.security.and_then(|s| s.se_linux_options.as_ref()).is_some_and(|o| !valid(o)))
        .map(|c| c.name)
        .collect();
    let setters = setters(pod, &bad);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!("{} {}", pluralize("type", "types", types.len()), join_quote(&types)));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    violation("seLinuxOptions", format!("{} set forbidden securityContext.seLinuxOptions: {}", setters.join(" and "), data.join("; ")))
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "Localhost" | "RuntimeDefault")
}

/// The seccomp profiles set to a type neither level allows: who set them (`pod`, `container
/// "c"`) and the types, sorted; and the containers that set none and inherit none from the pod.
fn seccomp_setters(spec: &PodSpec) -> (Vec<String>, BTreeSet<&str>, Vec<&str>) {
    let mut values = BTreeSet::new();
    let pod = pod_security_context(spec).and_then(|s| s.seccomp_profile.as_ref());
    let pod_bad = pod.filter(|p| !valid_seccomp(&p.type_));
    values.extend(pod_bad.map(|p| p.type_.as_str()));
    let pod_set = pod.is_some_and(|p| valid_seccomp(&p.type_));
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match c.security.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !valid_seccomp(&p.type_) => {
                explicit.push(c.name);
                values.insert(p.type_.as_str());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(c.name),
            None => {}
        }
    }
    (setters(pod_bad.is_some(), &explicit), values, implicit)
}

fn must_not_set_seccomp(setters: &[String], values: &BTreeSet<&str>) -> Option<Violation> {
    violation(
        "seccompProfile",
        format!("{} must not set securityContext.seccompProfile.type to {}", setters.join(" and "), join_quote(values)),
    )
}

fn seccomp_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let (setters, values, _) = seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    must_not_set_seccomp(&setters, &values)
}

/// The sysctls a pod may set (the 1.37 set).
const SAFE_SYSCTLS: [&str; 14] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

fn sysctls(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let set = pod_security_context(spec).and_then(|s| s.sysctls.as_deref()).unwrap_or_default();
    let forbidden: Vec<&str> = set.iter().map(|s| s.name.as_str()).filter(|n| !SAFE_SYSCTLS.contains(n)).collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

fn windows_host_process(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let pod = pod_security_context(spec).and_then(|s| s.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true);
    let setters = setters(pod, &flagged(spec, |s| s.windows_options.as_ref().and_then(|w| w.host_process) == Some(true)));
    if setters.is_empty() {
        return None;
    }
    violation("hostProcess", format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters.join(" and ")))
}

// ---- Restricted.

fn allow_privilege_escalation(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let bad: Vec<&str> = containers(spec)
        .into_iter()
        .filter(|c| c.security.and_then(|s| s.allow_privilege_escalation) != Some(false))
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!("{} must set securityContext.allowPrivilegeEscalation=false", named_containers(&bad)),
    )
}

fn capabilities_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let missing_drop_all: Vec<&str> = containers(spec)
        .into_iter()
        .filter(|c| {
            let drop = c.security.and_then(|s| s.capabilities.as_ref()).and_then(|caps| caps.drop.as_deref());
            !drop.unwrap_or_default().iter().any(|d| d == "ALL")
        })
        .map(|c| c.name)
        .collect();
    let (adding, caps) = added_beyond(spec, |cap| cap == "NET_BIND_SERVICE");
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", named_containers(&missing_drop_all)));
    }
    if !adding.is_empty() {
        details.push(must_not_add(&adding, &caps));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn proc_mount_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    proc_mount(spec)
}

fn restricted_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        let allowed = [
            v.config_map.is_some(),
            v.csi.is_some(),
            v.downward_api.is_some(),
            v.empty_dir.is_some(),
            v.ephemeral.is_some(),
            v.image.is_some(),
            v.persistent_volume_claim.is_some(),
            v.projected.is_some(),
            v.secret.is_some(),
        ];
        if allowed.contains(&true) {
            continue;
        }
        bad.push(v.name.as_str());
        // The first type set, in the library's order.
        let sources = [
            ("hostPath", v.host_path.is_some()),
            ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
            ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
            ("gitRepo", v.git_repo.is_some()),
            ("nfs", v.nfs.is_some()),
            ("iscsi", v.iscsi.is_some()),
            ("glusterfs", v.glusterfs.is_some()),
            ("rbd", v.rbd.is_some()),
            ("flexVolume", v.flex_volume.is_some()),
            ("cinder", v.cinder.is_some()),
            ("cephfs", v.cephfs.is_some()),
            ("flocker", v.flocker.is_some()),
            ("fc", v.fc.is_some()),
            ("azureFile", v.azure_file.is_some()),
            ("vsphereVolume", v.vsphere_volume.is_some()),
            ("quobyte", v.quobyte.is_some()),
            ("azureDisk", v.azure_disk.is_some()),
            ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
            ("portworxVolume", v.portworx_volume.is_some()),
            ("scaleIO", v.scale_io.is_some()),
            ("storageos", v.storageos.is_some()),
        ];
        types.insert(sources.iter().find(|(_, set)| *set).map_or("unknown", |(t, _)| t));
    }
    if bad.is_empty() {
        return None;
    }
    let detail = format!(
        "{} {} {} {} {}",
        pluralize("volume", "volumes", bad.len()),
        join_quote(&bad),
        pluralize("uses", "use", bad.len()),
        pluralize("restricted volume type", "restricted volume types", types.len()),
        join_quote(&types)
    );
    violation("restricted volume types", detail)
}

fn run_as_non_root(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) {
        return None;
    }
    let pod = pod_security_context(spec).and_then(|s| s.run_as_non_root);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match c.security.and_then(|s| s.run_as_non_root) {
            Some(false) => explicit.push(c.name),
            Some(true) => {}
            None if pod != Some(true) => implicit.push(c.name),
            None => {}
        }
    }
    let setters = setters(pod == Some(false), &explicit);
    if !setters.is_empty() {
        return violation("runAsNonRoot != true", format!("{} must not set securityContext.runAsNonRoot=false", setters.join(" and ")));
    }
    if implicit.is_empty() {
        return None;
    }
    violation("runAsNonRoot != true", format!("pod or {} must set securityContext.runAsNonRoot=true", named_containers(&implicit)))
}

fn run_as_user(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) {
        return None;
    }
    let pod = pod_security_context(spec).and_then(|s| s.run_as_user) == Some(0);
    let setters = setters(pod, &flagged(spec, |s| s.run_as_user == Some(0)));
    if setters.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", setters.join(" and ")))
}

fn seccomp_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let (setters, values, implicit) = seccomp_setters(spec);
    if !setters.is_empty() {
        return must_not_set_seccomp(&setters, &values);
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            named_containers(&implicit)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pod(spec: Value) -> Pod {
        let mut v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec});
        if v["spec"].get("containers").is_none() {
            v["spec"]["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        crate::typed::decode(&v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn at(level: &str, spec: Value) -> Option<String> {
        refusal(&pod(spec), Some(&labels(&[(ENFORCE_LABEL, level)])))
    }

    /// A container that passes restricted.
    fn confined(name: &str) -> Value {
        json!({"name": name, "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}})
    }

    #[test]
    fn check_ids_are_in_the_librarys_order() {
        let sorted = |ids: Vec<&str>| ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes());
        assert!(sorted(BASELINE.iter().map(|(id, _)| *id).collect()));
        assert!(sorted(RESTRICTED.iter().map(|(id, _, _)| *id).collect()));
        for (id, _, overrides) in RESTRICTED {
            assert!(overrides.iter().all(|o| BASELINE.iter().any(|(b, _)| b == o)), "{id} overrides an unknown check");
        }
    }

    #[test]
    fn an_unconfined_pod_is_refused_at_restricted_as_kube_apiserver_words_it() {
        assert_eq!(
            at("restricted", json!({})).unwrap(),
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        // Baseline and privileged let it in, as does a namespace without the label.
        assert_eq!(at("baseline", json!({})), None);
        assert_eq!(at("privileged", json!({})), None);
        assert_eq!(refusal(&pod(json!({})), None), None);
        assert_eq!(refusal(&pod(json!({})), Some(&labels(&[("other", "x")]))), None);
    }

    #[test]
    fn a_confined_pod_passes_restricted_and_the_pod_level_fields_count_for_its_containers() {
        assert_eq!(at("restricted", json!({"containers": [confined("a"), confined("b")]})), None);
        let pod_level = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
            "containers": [{"name": "c", "image": "busybox",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "s"}}],
        });
        assert_eq!(at("restricted", pod_level), None);
    }

    #[test]
    fn several_containers_and_explicit_settings() {
        let mut bad = confined("b");
        bad["securityContext"]["runAsNonRoot"] = json!(false);
        bad["securityContext"]["runAsUser"] = json!(0);
        bad["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
        bad["securityContext"]["capabilities"] = json!({"add": ["NET_RAW", "CHOWN", "NET_BIND_SERVICE"]});
        let spec = json!({
            "securityContext": {"runAsUser": 0},
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [confined("a"), bad],
        });
        assert_eq!(
            at("restricted", spec.clone()).unwrap().split_once(": violates ").unwrap().1,
            "PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"init\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (containers \"init\", \"b\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"b\" must not include \"CHOWN\", \"NET_RAW\" in securityContext.capabilities.add), runAsNonRoot != true (container \"b\" must not set securityContext.runAsNonRoot=false), runAsUser=0 (pod and container \"b\" must not set runAsUser=0), seccompProfile (container \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        // Baseline: only the capability beyond its set and the Unconfined profile.
        assert_eq!(
            at("baseline", spec).unwrap().split_once(": violates ").unwrap().1,
            "PodSecurity \"baseline:latest\": non-default capabilities (container \"b\" must not include \"NET_RAW\" in securityContext.capabilities.add), seccompProfile (container \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    fn baseline_detail(spec: Value) -> String {
        let pod = pod(spec);
        describe(&evaluate(Level::Baseline, &pod.metadata, pod.spec.as_ref().unwrap()))
    }

    #[test]
    fn every_baseline_check_in_order() {
        let spec = json!({
            "hostNetwork": true, "hostIPC": true,
            "securityContext": {
                "appArmorProfile": {"type": "Unconfined"},
                "seLinuxOptions": {"type": "spc_t", "user": "root"},
                "seccompProfile": {"type": "Unconfined"},
                "sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "vm.swappiness", "value": "1"}],
                "windowsOptions": {"hostProcess": true},
            },
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}],
            "containers": [
                {"name": "a", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 10000}],
                 "livenessProbe": {"httpGet": {"port": 80, "host": "example.com"}},
                 "lifecycle": {"preStop": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}}},
                 "securityContext": {"privileged": true, "procMount": "Unmasked", "capabilities": {"add": ["SYS_ADMIN"]}}},
                {"name": "b", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 80}],
                 "securityContext": {"seLinuxOptions": {"role": "r"}, "appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}},
            ],
        });
        assert_eq!(
            baseline_detail(spec),
            [
                "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\")",
                "non-default capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "host namespaces (hostNetwork=true, hostIPC=true)",
                "hostPath volumes (volume \"host\")",
                "hostPort (containers \"a\", \"b\" use hostPorts 10000, 80, 8080)",
                "probe or lifecycle host (container \"a\" uses probe or lifecycle hosts \"10.0.0.1\", \"example.com\")",
                "privileged (container \"a\" must not set securityContext.privileged=true)",
                "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\")",
                "seLinuxOptions (pod and container \"b\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set; role may not be set)",
                "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
                "forbidden sysctls (kernel.msgmax, vm.swappiness)",
                "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
            ]
            .join(", ")
        );
    }

    #[test]
    fn apparmor_annotations_and_restricted_volumes() {
        let pod = pod(json!({"volumes": [
            {"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}},
            {"name": "g", "gitRepo": {"repository": "r"}}, {"name": "c", "configMap": {"name": "c"}}]}));
        let mut meta = pod.metadata.clone();
        meta.annotations = Some(labels(&[
            ("container.apparmor.security.beta.kubernetes.io/c", "unconfined"),
            ("container.apparmor.security.beta.kubernetes.io/d", "localhost/p"),
        ]));
        let spec = pod.spec.unwrap();
        assert_eq!(
            describe(&evaluate(Level::Baseline, &meta, &spec)),
            "forbidden AppArmor profile (annotation must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\"), hostPath volumes (volume \"h\")"
        );
        let restricted = describe(&evaluate(Level::Restricted, &meta, &spec));
        assert!(
            restricted.contains(
                "restricted volume types (volumes \"h\", \"n\", \"g\" use restricted volume types \"gitRepo\", \"hostPath\", \"nfs\")"
            ),
            "{restricted}"
        );
        // restrictedVolumes replaces hostPathVolumes at restricted.
        assert!(!restricted.contains("hostPath volumes"), "{restricted}");
    }

    #[test]
    fn user_namespaces_and_windows_relax_what_the_library_relaxes() {
        // hostUsers: false spares runAsNonRoot and runAsUser, and procMount at baseline only.
        let mut c = confined("c");
        c["securityContext"]["runAsNonRoot"] = json!(false);
        c["securityContext"]["procMount"] = json!("Unmasked");
        let spec = json!({"hostUsers": false, "containers": [c]});
        assert_eq!(at("baseline", spec.clone()), None);
        assert!(at("restricted", spec).unwrap().ends_with("violates PodSecurity \"restricted:latest\": procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")"));
        let windows = json!({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true}});
        assert_eq!(at("restricted", windows), None);
    }

    #[test]
    fn policies_from_labels() {
        let policy = |pairs: &[(&str, &str)]| enforce_policy(Some(&labels(pairs))).to_string();
        assert_eq!(enforce_policy(None).to_string(), "privileged:latest");
        assert_eq!(policy(&[(ENFORCE_LABEL, "baseline")]), "baseline:latest");
        assert_eq!(policy(&[(ENFORCE_LABEL, "restricted"), (ENFORCE_VERSION_LABEL, "v1.30")]), "restricted:v1.30");
        // Fails closed on a level that does not parse; a bad version is latest.
        assert_eq!(policy(&[(ENFORCE_LABEL, "strict"), (ENFORCE_VERSION_LABEL, "1.30")]), "restricted:latest");
        // Any version is checked as the latest; the message names the one set.
        let old = refusal(&pod(json!({})), Some(&labels(&[(ENFORCE_LABEL, "restricted"), (ENFORCE_VERSION_LABEL, "v1.22")])));
        assert!(old.unwrap().contains("violates PodSecurity \"restricted:v1.22\": allowPrivilegeEscalation != false"));
    }

    /// What kube-apiserver says of the plain pod `x` (one container `c`) at restricted.
    const PLAIN_RESTRICTED: &str = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

    #[test]
    fn warn_admits_the_pod_and_words_the_warning_as_kube_apiserver_does() {
        let plain = pod(json!({}));
        assert_eq!(
            admit_pod(&plain, Some(&labels(&[(WARN_LABEL, "restricted")]))),
            Ok(vec![format!("would violate PodSecurity \"restricted:latest\": {PLAIN_RESTRICTED}")])
        );
        // The version named is the one set; baseline lets the plain pod be.
        let versioned = labels(&[(WARN_LABEL, "restricted"), (WARN_VERSION_LABEL, "v1.30")]);
        assert!(admit_pod(&plain, Some(&versioned)).unwrap()[0]
            .starts_with("would violate PodSecurity \"restricted:v1.30\": allowPrivilegeEscalation"));
        assert_eq!(admit_pod(&plain, Some(&labels(&[(WARN_LABEL, "baseline")]))), Ok(vec![]));
        assert_eq!(admit_pod(&plain, None), Ok(vec![]));
        // A pod that meets restricted gets no warning.
        let confined = pod(json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}));
        assert_eq!(admit_pod(&confined, Some(&labels(&[(WARN_LABEL, "restricted")]))), Ok(vec![]));
        // A warn level that does not parse fails open (admission refuses it on the Namespace).
        assert_eq!(admit_pod(&plain, Some(&labels(&[(WARN_LABEL, "strict")]))), Ok(vec![]));
    }

    #[test]
    fn enforce_refuses_without_a_warning_and_warn_does_not_follow_enforce() {
        let plain = pod(json!({}));
        let both = labels(&[(ENFORCE_LABEL, "restricted"), (WARN_LABEL, "restricted")]);
        assert_eq!(
            admit_pod(&plain, Some(&both)),
            Err(format!("pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": {PLAIN_RESTRICTED}"))
        );
        // Enforce baseline admits it; warn restricted still warns.
        let split = labels(&[(ENFORCE_LABEL, "baseline"), (WARN_LABEL, "restricted")]);
        assert_eq!(admit_pod(&plain, Some(&split)).unwrap().len(), 1);
        // Enforce alone sets no warn level: a template in such a namespace gets no warning.
        let template: PodTemplateSpec =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
        assert_eq!(template_warnings(&template, Some(&labels(&[(ENFORCE_LABEL, "restricted")]))), Vec::<String>::new());
        assert_eq!(
            policies(Some(&labels(&[(ENFORCE_LABEL, "restricted"), (AUDIT_LABEL, "baseline")]))),
            Policies {
                enforce: Policy { level: Level::Restricted, version: None },
                audit: Policy { level: Level::Baseline, version: None },
                warn: Policy { level: Level::Privileged, version: None },
            }
        );
    }

    #[test]
    fn a_templates_warning_reads_its_metadata_and_spec() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
        }))
        .unwrap();
        assert_eq!(
            template_warnings(&template, Some(&labels(&[(WARN_LABEL, "baseline"), (WARN_VERSION_LABEL, "v1.31")]))),
            ["would violate PodSecurity \"baseline:v1.31\": forbidden AppArmor profile (annotation must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\"), hostPort (container \"c\" uses hostPort 8080)"]
        );
        assert!(template_warnings(&PodTemplateSpec::default(), Some(&labels(&[(WARN_LABEL, "restricted")]))).is_empty());
    }

    #[test]
    fn updates_are_checked_when_they_change_what_the_plugin_looks_at() {
        let old = pod(json!({}));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = serde_json::to_value(&old).unwrap();
            f(&mut v);
            crate::typed::decode::<Pod>(&v).unwrap()
        };
        assert!(!significant_update(&old, &old));
        assert!(!significant_update(&with(&|v| v["metadata"]["labels"] = json!({"a": "b"})), &old));
        assert!(significant_update(&with(&|v| v["spec"]["containers"][0]["image"] = json!("busybox:2")), &old));
        assert!(significant_update(&with(&|v| v["metadata"]["annotations"] = json!({SECCOMP_POD_ANNOTATION: "unconfined"})), &old));
        let container_annotation = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}c");
        assert!(significant_update(&with(&|v| v["metadata"]["annotations"] = json!({&container_annotation: "unconfined"})), &old));
        assert!(!significant_update(&with(&|v| v["metadata"]["annotations"] = json!({"other": "x"})), &old));
        let two = with(&|v| v["spec"]["containers"] = json!([{"name": "c", "image": "busybox"}, {"name": "d", "image": "busybox"}]));
        assert!(significant_update(&two, &old));
        // Other changes to the spec (which Kubernetes' validation refuses) are not looked at.
        assert!(!significant_update(&with(&|v| v["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0})), &old));
        let debug = with(&|v| v["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]));
        assert!(significant_update(&debug, &old));
        assert!(!significant_update(&debug, &debug));
    }

    #[test]
    fn only_a_stricter_enforce_policy_checks_the_existing_pods() {
        let tightened =
            |old: &[(&str, &str)], new: &[(&str, &str)]| enforce_tightened(Some(&labels(old)), Some(&labels(new))).map(|p| p.to_string());
        assert_eq!(tightened(&[], &[(ENFORCE_LABEL, "restricted")]).as_deref(), Some("restricted:latest"));
        assert_eq!(tightened(&[(ENFORCE_LABEL, "baseline")], &[(ENFORCE_LABEL, "restricted")]).as_deref(), Some("restricted:latest"));
        assert_eq!(tightened(&[(ENFORCE_LABEL, "restricted")], &[(ENFORCE_LABEL, "restricted")]), None);
        assert_eq!(tightened(&[(ENFORCE_LABEL, "restricted")], &[(ENFORCE_LABEL, "baseline")]), None);
        assert_eq!(tightened(&[(ENFORCE_LABEL, "baseline")], &[(ENFORCE_LABEL, "privileged")]), None);
        assert_eq!(tightened(&[], &[(WARN_LABEL, "restricted")]), None);
        // Another version is checked even when the level is relaxed.
        let relaxed = tightened(&[(ENFORCE_LABEL, "restricted")], &[(ENFORCE_LABEL, "baseline"), (ENFORCE_VERSION_LABEL, "v1.30")]);
        assert_eq!(relaxed.as_deref(), Some("baseline:v1.30"));
    }

    fn named_pod(name: &str, spec: Value, controller: Option<&str>) -> Pod {
        let mut p = pod(spec);
        p.metadata.name = Some(name.into());
        if let Some(uid) = controller {
            p.metadata.owner_references = Some(vec![serde_json::from_value(
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}),
            )
            .unwrap()]);
        }
        p
    }

    #[test]
    fn existing_pods_are_warned_about_by_their_reasons_grouped_and_sorted() {
        let restricted = Policy { level: Level::Restricted, version: None };
        let confined = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
        let mut escalating = confined.clone();
        escalating["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        let pods = [
            named_pod("web-b", json!({}), Some("u1")),
            named_pod("web-a", json!({}), Some("u1")),
            named_pod("ok", confined, None),
            named_pod("esc", escalating, None),
            named_pod("alone", json!({"hostUsers": false}), None),
            named_pod("web-c", json!({}), Some("u1")),
        ];
        assert_eq!(
            existing_pods_warnings("apps", restricted, &pods, MAX_PODS_TO_CHECK),
            [
                "existing pods in namespace \"apps\" violate the new PodSecurity enforce level \"restricted:latest\"",
                "alone: allowPrivilegeEscalation != false, unrestricted capabilities, seccompProfile",
                "esc: allowPrivilegeEscalation != false",
                "web-a (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
            ]
        );
        // Two pods of one group; none in violation says nothing.
        let two = [named_pod("b", json!({}), None), named_pod("a", json!({}), None)];
        assert_eq!(
            existing_pods_warnings("x", restricted, &two, MAX_PODS_TO_CHECK)[1],
            "a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
        );
        assert!(existing_pods_warnings("x", Policy { level: Level::Baseline, version: None }, &two, MAX_PODS_TO_CHECK).is_empty());
        // Past the limit: one pod of each controller first, then the others, and the count said.
        let limited = existing_pods_warnings("apps", restricted, &pods, 3);
        assert_eq!(limited[0], "new PodSecurity enforce level only checked against the first 3 of 6 existing pods");
        // web-b, ok and esc: web-a and web-c, of web-b's ReplicaSet, come after alone.
        assert_eq!(
            limited[2..],
            [
                "esc: allowPrivilegeEscalation != false",
                "web-b: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
            ]
        );
    }

    #[test]
    fn label_values_are_checked_with_the_plugins_messages() {
        let errs = |pairs: &[(&str, &str)]| -> Vec<String> { label_errors(Some(&labels(pairs))).iter().map(|e| e.to_string()).collect() };
        assert_eq!(errs(&[(ENFORCE_LABEL, "restricted"), (ENFORCE_VERSION_LABEL, "latest")]), Vec::<String>::new());
        assert_eq!(errs(&[(ENFORCE_VERSION_LABEL, "v1.0"), ("pod-security.kubernetes.io/warn-version", "v1.30")]), Vec::<String>::new());
        assert_eq!(
            errs(&[
                ("pod-security.kubernetes.io/warn", "Baseline"),
                (ENFORCE_LABEL, "strict"),
                (ENFORCE_VERSION_LABEL, "v1.030"),
                ("pod-security.kubernetes.io/audit-version", "v2.1"),
            ]),
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"v1.030\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"v2.1\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"Baseline\": must be one of privileged, baseline, restricted",
            ]
        );
        assert!(label_errors(None).is_empty());
    }
}
