//! What a Secret or ConfigMap volume holds (VOL-1..VOL-3, kubelet's `MakePayload`) and the
//! names of its atomic layout (VOL-4, kubelet's `AtomicWriter`). Writing the files is the node
//! agent's; this module decides which files, with which bytes and modes, and how large the
//! tmpfs that holds them is ([`memory_volume_size`]).

use crate::configdata::Lookup;
use emu_api::typed::k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, ProjectedVolumeSource, Volume};
use emu_api::typed::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use emu_api::typed::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// A volume's files by relative path (`tls.crt`, `conf/app.ini`).
pub type Payload = BTreeMap<String, FileProjection>;

/// `defaultMode` when the manifest gives none (0644, shown as 420).
pub const DEFAULT_MODE: u32 = 0o644;

/// The symlink to the current version's directory.
pub const DATA_DIR_LINK: &str = "..data";
/// The symlink made next to `..data` and renamed over it, which is what makes a swap atomic.
pub const NEW_DATA_DIR_LINK: &str = "..data_tmp";

/// Why a volume cannot be set up (kubelet's messages; the pod then waits in ContainerCreating
/// with a `FailedMount` event until the object or key exists).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("{} {name:?} not found", kind.to_lowercase())]
    NotFound { kind: &'static str, name: String },
    #[error("references non-existent secret key: {key}")]
    NoSecretKey { key: String },
    #[error("configmap references non-existent config key: {key}")]
    NoConfigKey { key: String },
    #[error("invalid path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    /// Kubelet's message when the token request fails.
    #[error("failed to fetch token: the API server issued none")]
    NoToken,
    #[error("unsupported downward API field {field:?}")]
    BadField { field: String },
}

/// What a Secret or ConfigMap volume (or projected source) asks for.
struct ObjectSource<'a> {
    kind: &'static str,
    name: &'a str,
    optional: bool,
    items: &'a [KeyToPath],
    default_mode: u32,
}

/// The kind of object a volume projects (`secret:` or `configMap:`) and what it asks for; None
/// for every other kind of volume.
fn object_source(volume: &Volume) -> Option<ObjectSource<'_>> {
    if let Some(s) = &volume.secret {
        let name = s.secret_name.as_deref().unwrap_or("");
        return Some(ObjectSource::new("Secret", name, s.optional, &s.items, s.default_mode.and_then(mode_of).unwrap_or(DEFAULT_MODE)));
    }
    let c = volume.config_map.as_ref()?;
    Some(ObjectSource::new("ConfigMap", &c.name, c.optional, &c.items, c.default_mode.and_then(mode_of).unwrap_or(DEFAULT_MODE)))
}

impl<'a> ObjectSource<'a> {
    fn new(kind: &'static str, name: &'a str, optional: Option<bool>, items: &'a Option<Vec<KeyToPath>>, default_mode: u32) -> Self {
        ObjectSource { kind, name, optional: optional == Some(true), items: items.as_deref().unwrap_or_default(), default_mode }
    }
}

/// Whether `volume` is a Secret's (its files live in a tmpfs, as kubelet's do); a projected
/// volume counts as one.
pub fn is_secret(volume: &Volume) -> bool {
    volume.projected.is_some() || object_source(volume).is_some_and(|s| s.kind == "Secret")
}

/// Whether `volume` is one whose files the agent writes: a Secret's, a ConfigMap's, or a
/// projected one.
pub fn has_files(volume: &Volume) -> bool {
    object_source(volume).is_some() || volume.projected.is_some()
}

/// The files of any volume the agent writes ([`payload`], and projected volumes); `pod` is the
/// pod (for downward API items), `token` its service-account token when a source asks for one.
pub fn payload_for_pod(volume: &Volume, lookup: Lookup<'_, '_>, pod: &Pod, token: Option<&str>) -> Option<Result<Payload, VolumeError>> {
    if let Some(projected) = &volume.projected {
        return Some(projected_payload(projected, lookup, &pod.metadata, token));
    }
    payload(volume, lookup)
}

/// A projected volume's files: those of each source (Secret and ConfigMap items, downward API
/// items, the service-account token) together, with the volume's `defaultMode` unless an item
/// gives its own `mode`.
fn projected_payload(
    projected: &ProjectedVolumeSource,
    lookup: Lookup<'_, '_>,
    meta: &ObjectMeta,
    token: Option<&str>,
) -> Result<Payload, VolumeError> {
    let default_mode = projected.default_mode.and_then(mode_of).unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    for source in projected.sources.iter().flatten() {
        if let Some(t) = &source.service_account_token {
            // `path` is required; an empty one is what a missing one decodes to.
            let path = if t.path.is_empty() { "token" } else { &t.path };
            check_path(path)?;
            let token = token.ok_or(VolumeError::NoToken)?;
            payload.insert(path.into(), FileProjection { data: token.as_bytes().to_vec(), mode: default_mode });
        }
        // A projected source takes the volume's mode.
        if let Some(s) = &source.secret {
            payload.extend(payload_of(&ObjectSource::new("Secret", &s.name, s.optional, &s.items, default_mode), lookup)?);
        }
        if let Some(c) = &source.config_map {
            payload.extend(payload_of(&ObjectSource::new("ConfigMap", &c.name, c.optional, &c.items, default_mode), lookup)?);
        }
        for item in source.downward_api.iter().flat_map(|d| d.items.iter().flatten()) {
            check_path(&item.path)?;
            let field = item.field_ref.as_ref().map_or("", |f| f.field_path.as_str());
            let data = downward_field(meta, field).ok_or_else(|| VolumeError::BadField { field: field.into() })?;
            payload.insert(
                item.path.clone(),
                FileProjection { data: data.into_bytes(), mode: item.mode.and_then(mode_of).unwrap_or(default_mode) },
            );
        }
    }
    Ok(payload)
}

/// A downward API file's content: the pod's name, namespace, uid, or its labels or annotations
/// as `key="value"` lines, sorted.
fn downward_field(meta: &ObjectMeta, field: &str) -> Option<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let lines = |map: &Option<BTreeMap<String, String>>| {
        let lines: Vec<String> = map.iter().flatten().map(|(k, v)| format!("{k}={v:?}")).collect();
        lines.join("\n")
    };
    match field {
        "metadata.name" => Some(text(&meta.name)),
        "metadata.namespace" => Some(text(&meta.namespace)),
        "metadata.uid" => Some(text(&meta.uid)),
        // A BTreeMap's keys are sorted already.
        "metadata.labels" => Some(lines(&meta.labels)),
        "metadata.annotations" => Some(lines(&meta.annotations)),
        _ => None,
    }
}

/// The files of a Secret or ConfigMap volume: every key (a ConfigMap's `binaryData` too) as a
/// file named like it, or only the listed `items` at their paths; modes from `defaultMode` or
/// the item's `mode`. A missing object gives an empty volume when `optional`, an error
/// otherwise; so does a listed key the object lacks. None for other kinds of volume.
pub fn payload(volume: &Volume, lookup: Lookup<'_, '_>) -> Option<Result<Payload, VolumeError>> {
    Some(payload_of(&object_source(volume)?, lookup))
}

fn payload_of(source: &ObjectSource, lookup: Lookup<'_, '_>) -> Result<Payload, VolumeError> {
    let ObjectSource { kind, name, optional, items, default_mode } = *source;
    let Some(object) = lookup(kind, name) else {
        return if optional { Ok(Payload::new()) } else { Err(VolumeError::NotFound { kind, name: name.into() }) };
    };
    let values = object.files();
    let mut payload = Payload::new();
    if items.is_empty() {
        for (key, data) in values {
            check_path(&key)?;
            payload.insert(key, FileProjection { data, mode: default_mode });
        }
        return Ok(payload);
    }
    for item in items {
        let key = item.key.as_str();
        let Some(data) = values.get(key) else {
            if optional {
                continue;
            }
            return Err(if kind == "Secret" {
                VolumeError::NoSecretKey { key: key.into() }
            } else {
                VolumeError::NoConfigKey { key: key.into() }
            });
        };
        // An item without a path (decoded as "") is placed at its key.
        let path = if item.path.is_empty() { key } else { &item.path };
        check_path(path)?;
        let mode = item.mode.and_then(mode_of).unwrap_or(default_mode);
        payload.insert(path.to_string(), FileProjection { data: data.clone(), mode });
    }
    Ok(payload)
}

fn mode_of(mode: i32) -> Option<u32> {
    u32::try_from(mode).ok().filter(|m| *m <= 0o777)
}

/// A payload path stays inside the volume and clear of the layout's own `..` names (the API
/// rejects such paths; objects from elsewhere are checked again here, as kubelet does).
pub fn check_path(path: &str) -> Result<(), VolumeError> {
    let bad = |why| Err(VolumeError::BadPath { path: path.into(), why });
    if path.is_empty() {
        return bad("must not be empty");
    }
    if path.starts_with('/') {
        return bad("must be a relative path");
    }
    if path.split('/').any(|part| part == "..") {
        return bad("must not contain '..'");
    }
    if path.starts_with("..") {
        return bad("must not start with '..'");
    }
    if path.split('/').any(|part| part.is_empty() || part == ".") {
        return bad("must not contain empty or '.' elements");
    }
    Ok(())
}

/// The names the user sees at the top of the volume: one symlink `<name>` → `..data/<name>`
/// per first path element.
pub fn top_level_names(payload: &Payload) -> BTreeSet<String> {
    payload.keys().map(|p| p.split('/').next().unwrap_or(p).to_string()).collect()
}

/// The hidden directory of one version: `..2006_01_02_15_04_05.<random digits>`, as Go's
/// `os.MkdirTemp(dir, "..2006_01_02_15_04_05.")` names it (UTC).
pub fn version_dir_name(unix_seconds: i64, random: u32) -> String {
    let t = emu_api::time::rfc3339(unix_seconds); // 2006-01-02T15:04:05Z
    let stamp: String = t.trim_end_matches('Z').chars().map(|c| if matches!(c, '-' | 'T' | ':') { '_' } else { c }).collect();
    format!("..{stamp}.{random}")
}

/// True for the layout's own entries (`..data`, `..data_tmp`, version directories), which are
/// never user files.
pub fn is_layout_entry(name: &str) -> bool {
    name.starts_with("..")
}

/// What bounds the tmpfs of a pod's memory-backed volumes (see [`memory_volume_size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSource {
    /// The sum of its containers' `limits.memory`.
    PodLimit,
    /// The node's `status.allocatable.memory`: all the pods of the node may not use more.
    NodeAllocatable,
    /// An emptyDir's own `sizeLimit`.
    SizeLimit,
}

/// The size of a memory-backed volume and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSize {
    pub bytes: u64,
    pub source: SizeSource,
}

impl std::fmt::Display for VolumeSize {
    /// `4Mi, the pod's memory limit`: what a FailedMount message says about a full volume.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match self.source {
            SizeSource::PodLimit => "the pod's memory limit",
            SizeSource::NodeAllocatable => "the node's allocatable memory",
            SizeSource::SizeLimit => "the volume's sizeLimit",
        };
        write!(f, "{}, {source}", format_bytes(self.bytes))
    }
}

/// The size of a memory-backed volume, kubelet's `calculateEmptyDirMemorySize` (KEP-1967):
/// the node's allocatable memory, lowered to the pod's memory limit when it has one, lowered to
/// `size_limit` (an emptyDir's `sizeLimit`) when that is smaller still. A pod cannot use more
/// memory than that anyway, and tmpfs pages are memory: a fixed small size fails
/// pods whose Secrets and ConfigMaps are merely large, the kernel's default (half of the host's
/// RAM) lets one pod hold more than the node offers. Secret, projected and downward API volumes
/// are such tmpfs volumes in kubelet (emu keeps ConfigMaps' files on the same tmpfs); they have
/// no `sizeLimit`.
pub fn memory_volume_size(pod: &Pod, node_allocatable: u64, size_limit: Option<&Quantity>) -> VolumeSize {
    let mut size = VolumeSize { bytes: node_allocatable, source: SizeSource::NodeAllocatable };
    // Each bound counts only when above zero and not above the bound before it.
    let mut lower = |bytes: Option<u64>, source| {
        if let Some(bytes) = bytes.filter(|b| (1..=size.bytes).contains(b)) {
            size = VolumeSize { bytes, source };
        }
    };
    lower(pod_memory_limit(pod), SizeSource::PodLimit);
    lower(size_limit.and_then(|q| quantity_bytes(&q.0)), SizeSource::SizeLimit);
    size
}

/// The pod's memory limit as kubelet sets its cgroup (`ResourceConfigForPod`): only when every
/// container has a `limits.memory`; then their sum, or an init container's limit (plus the
/// sidecars started before it) when that is larger, plus the pod's `overhead`.
pub fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let memory = |c: &Container| c.resources.as_ref()?.limits.as_ref()?.get("memory").and_then(|q| quantity_bytes(&q.0));
    let limits: Vec<u64> = spec.containers.iter().map(memory).collect::<Option<_>>()?;
    if limits.contains(&0) {
        return None;
    }
    // `AggregateContainerLimits`: sidecars (init containers that always restart) run beside the
    // containers and every later init container.
    // Saturating: absurd limits (exabytes) must not overflow.
    let mut total = limits.iter().fold(0u64, |sum, l| sum.saturating_add(*l));
    let (mut sidecars, mut init_peak) = (0u64, 0u64);
    for c in spec.init_containers.iter().flatten() {
        let limit = memory(c).unwrap_or(0);
        if c.restart_policy.as_deref() == Some("Always") {
            total = total.saturating_add(limit);
            sidecars = sidecars.saturating_add(limit);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(limit.saturating_add(sidecars));
        }
    }
    let overhead = spec.overhead.as_ref().and_then(|o| o.get("memory")).and_then(|q| quantity_bytes(&q.0)).unwrap_or(0);
    Some(total.max(init_peak).saturating_add(overhead))
}

/// A quantity in whole units, rounded up (apimachinery's `Quantity.Value()`): `64Mi`, `1G`,
/// `1.5Gi`, `128974848`, `129e6`. None when malformed or negative.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    emu_api::quantity::Quantity::parse(q)?.value_u64()
}

/// Bytes as a quantity a user reads: `4Mi`, `2Gi`, `1500`.
pub fn format_bytes(bytes: u64) -> String {
    // The largest power of 1024 that divides it.
    let power = if bytes == 0 { 0 } else { (bytes.trailing_zeros() / 10).min(6) };
    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power as usize];
    format!("{}{suffix}", bytes >> (10 * power))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configdata::ConfigObject;
    use emu_api::typed::{self, ConfigMap, Secret};
    use serde_json::{json, Value};
    use std::sync::LazyLock;

    fn objects(kind: &str, name: &str) -> Option<ConfigObject<'static>> {
        // "tls.crt" = "CERT", "tls.key" = "KEY" in base64.
        static SECRET: LazyLock<Secret> =
            LazyLock::new(|| typed::decode(&json!({"kind": "Secret", "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}})).unwrap());
        static CONFIG: LazyLock<ConfigMap> = LazyLock::new(|| {
            typed::decode(&json!({"kind": "ConfigMap", "data": {"default.conf": "server {}\n"}, "binaryData": {"logo.bin": "AAE="}}))
                .unwrap()
        });
        match (kind, name) {
            ("Secret", "nginxsecret") => Some(ConfigObject::Secret(&SECRET)),
            ("ConfigMap", "nginxconfigmap") => Some(ConfigObject::ConfigMap(&CONFIG)),
            _ => None,
        }
    }

    /// A volume written as JSON.
    fn volume(v: Value) -> Volume {
        typed::decode(&v).unwrap()
    }

    fn files(p: &Payload) -> Vec<(&str, &[u8], u32)> {
        p.iter().map(|(k, f)| (k.as_str(), f.data.as_slice(), f.mode)).collect()
    }

    #[test]
    fn every_key_becomes_a_file_with_the_default_mode() {
        let vol = volume(json!({"name": "secret-volume", "secret": {"secretName": "nginxsecret"}}));
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("tls.crt", &b"CERT"[..], 0o644), ("tls.key", &b"KEY"[..], 0o644)]);
        let vol = volume(json!({"name": "c", "configMap": {"name": "nginxconfigmap", "defaultMode": 0o400}}));
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("default.conf", &b"server {}\n"[..], 0o400), ("logo.bin", &[0u8, 1][..], 0o400)]);
    }

    #[test]
    fn the_api_access_volume_holds_the_token_the_ca_and_the_namespace() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        crate::serviceaccount::add_api_access(&mut pod, "x9zkq");
        let pod: Pod = typed::decode(&pod).unwrap();
        let vol = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0].clone();
        let ca: ConfigMap = typed::decode(&json!({"data": {"ca.crt": "PEM"}})).unwrap();
        let lookup = |kind: &str, name: &str| (kind == "ConfigMap" && name == "kube-root-ca.crt").then_some(ConfigObject::ConfigMap(&ca));
        let p = payload_for_pod(&vol, &lookup, &pod, Some("jwt")).unwrap().unwrap();
        assert_eq!(files(&p), vec![("ca.crt", &b"PEM"[..], 0o644), ("namespace", &b"default"[..], 0o644), ("token", &b"jwt"[..], 0o644)]);
        // Without a token (the API server issued none) the volume cannot be set up.
        assert_eq!(payload_for_pod(&vol, &lookup, &pod, None).unwrap(), Err(VolumeError::NoToken));
        assert!(has_files(&vol) && !has_files(&volume(json!({"name": "x", "emptyDir": {}}))));
        // Downward API labels, one `key="value"` line each.
        let labels = volume(
            json!({"projected": {"sources": [{"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400}]}}]}}),
        );
        let p = payload_for_pod(&labels, &lookup, &pod, None).unwrap().unwrap();
        assert_eq!(files(&p), vec![("labels", &b"app=\"web\"\ntier=\"front\""[..], 0o400)]);
    }

    #[test]
    fn items_pick_keys_and_place_them() {
        let vol = volume(json!({"name": "s", "secret": {"secretName": "nginxsecret", "defaultMode": 0o440,
            "items": [{"key": "tls.key", "path": "private/server.key", "mode": 0o400}, {"key": "tls.crt", "path": "server.crt"}]}}));
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("private/server.key", &b"KEY"[..], 0o400), ("server.crt", &b"CERT"[..], 0o440)]);
        assert_eq!(top_level_names(&p), BTreeSet::from(["private".to_string(), "server.crt".to_string()]));
    }

    #[test]
    fn missing_objects_and_keys_fail_unless_optional() {
        let vol = volume(json!({"name": "s", "secret": {"secretName": "late"}}));
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), r#"secret "late" not found"#);
        let vol = volume(json!({"name": "c", "configMap": {"name": "late"}}));
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), r#"configmap "late" not found"#);
        let vol = volume(json!({"name": "c", "configMap": {"name": "late", "optional": true}}));
        assert_eq!(payload(&vol, &objects).unwrap(), Ok(Payload::new()));

        let vol = volume(json!({"name": "s", "secret": {"secretName": "nginxsecret", "items": [{"key": "ca.crt", "path": "ca"}]}}));
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), "references non-existent secret key: ca.crt");
        let vol = volume(json!({"name": "c", "configMap": {"name": "nginxconfigmap", "items": [{"key": "nope", "path": "n"}]}}));
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), "configmap references non-existent config key: nope");
        let vol = volume(
            json!({"name": "c", "configMap": {"name": "nginxconfigmap", "optional": true, "items": [{"key": "nope", "path": "n"}]}}),
        );
        assert_eq!(payload(&vol, &objects).unwrap(), Ok(Payload::new()));
    }

    #[test]
    fn other_volumes_have_no_payload() {
        assert!(payload(&volume(json!({"name": "tmp", "emptyDir": {}})), &objects).is_none());
        assert!(!is_secret(&volume(json!({"name": "tmp", "emptyDir": {}}))));
        assert!(is_secret(&volume(json!({"name": "s", "secret": {"secretName": "s"}}))));
        assert!(!is_secret(&volume(json!({"name": "c", "configMap": {"name": "c"}}))));
    }

    #[test]
    fn paths_stay_inside_the_volume() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data", "..x/y", "a//b", "./a"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["tls.crt", "a/b/c", "a..b", ".hidden"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
    }

    /// A pod whose containers have these `limits.memory` (None: no limit), and init containers
    /// (limit, whether a sidecar).
    fn pod_with_limits(limits: &[Option<&str>], init: &[(&str, bool)], overhead: Option<&str>) -> Pod {
        let resources = |l: &Option<&str>| l.map_or(json!({}), |l| json!({"limits": {"memory": l, "cpu": "1"}}));
        let containers: Vec<Value> = limits
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"name": format!("c{i}"), "image": "busybox", "resources": resources(l)}))
            .collect();
        let init: Vec<Value> = init
            .iter()
            .enumerate()
            .map(|(i, (l, sidecar))| {
                let mut c = json!({"name": format!("i{i}"), "image": "busybox", "resources": {"limits": {"memory": l}}});
                if *sidecar {
                    c["restartPolicy"] = json!("Always");
                }
                c
            })
            .collect();
        let mut spec = json!({"containers": containers, "initContainers": init});
        if let Some(o) = overhead {
            spec["overhead"] = json!({"memory": o});
        }
        typed::decode(&json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;

    #[test]
    fn memory_volumes_are_as_large_as_the_pod_may_use() {
        let size = |pod: &Pod, limit: Option<&str>| memory_volume_size(pod, 2 * GI, limit.map(|l| Quantity(l.into())).as_ref());
        // No limit: the node's allocatable memory (what emu's nodes report: 2Gi).
        let free = pod_with_limits(&[None], &[], None);
        assert_eq!(size(&free, None), VolumeSize { bytes: 2 * GI, source: SizeSource::NodeAllocatable });
        assert_eq!(size(&free, None).to_string(), "2Gi, the node's allocatable memory");
        // The containers' limits summed.
        let limited = pod_with_limits(&[Some("32Mi"), Some("16Mi")], &[], None);
        assert_eq!(size(&limited, None), VolumeSize { bytes: 48 * MI, source: SizeSource::PodLimit });
        assert_eq!(size(&limited, None).to_string(), "48Mi, the pod's memory limit");
        // One container without a limit: the pod has none (its cgroup is not limited either).
        assert_eq!(size(&pod_with_limits(&[Some("32Mi"), None], &[], None), None).source, SizeSource::NodeAllocatable);
        assert_eq!(size(&pod_with_limits(&[Some("0")], &[], None), None).source, SizeSource::NodeAllocatable);
        // A limit above what the node offers does not raise it.
        assert_eq!(
            size(&pod_with_limits(&[Some("8Gi")], &[], None), None),
            VolumeSize { bytes: 2 * GI, source: SizeSource::NodeAllocatable }
        );
        // An emptyDir's sizeLimit lowers it further, never raises it; zero is no limit.
        assert_eq!(size(&limited, Some("10M")), VolumeSize { bytes: 10_000_000, source: SizeSource::SizeLimit });
        assert_eq!(size(&limited, Some("1Gi")).source, SizeSource::PodLimit);
        assert_eq!(size(&limited, Some("0")).source, SizeSource::PodLimit);
        assert_eq!(size(&free, Some("64Mi")), VolumeSize { bytes: 64 * MI, source: SizeSource::SizeLimit });
    }

    #[test]
    fn the_pod_limit_counts_init_containers_sidecars_and_overhead() {
        // A larger init container wins; it runs alone.
        assert_eq!(pod_memory_limit(&pod_with_limits(&[Some("10Mi"), Some("10Mi")], &[("64Mi", false)], None)), Some(64 * MI));
        assert_eq!(pod_memory_limit(&pod_with_limits(&[Some("10Mi"), Some("10Mi")], &[("8Mi", false)], None)), Some(20 * MI));
        // A sidecar runs beside the containers and the init containers after it.
        let pod = pod_with_limits(&[Some("10Mi")], &[("5Mi", true), ("12Mi", false)], None);
        assert_eq!(pod_memory_limit(&pod), Some(17 * MI));
        let pod = pod_with_limits(&[Some("10Mi")], &[("5Mi", true), ("1Mi", false)], None);
        assert_eq!(pod_memory_limit(&pod), Some(15 * MI));
        // The runtime's overhead is added.
        assert_eq!(pod_memory_limit(&pod_with_limits(&[Some("10Mi")], &[], Some("1Mi"))), Some(11 * MI));
        assert_eq!(pod_memory_limit(&pod_with_limits(&[None], &[], Some("1Mi"))), None);
        // Absurd limits saturate instead of overflowing.
        assert_eq!(pod_memory_limit(&pod_with_limits(&[Some("10E"), Some("10E")], &[], None)), Some(u64::MAX));
    }

    #[test]
    fn quantities_are_read_as_bytes_rounded_up() {
        for (q, bytes) in [
            ("64Mi", 64 * MI),
            ("2Gi", 2 * GI),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 * GI / 2),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("+1k", 1000),
            ("1500m", 2),
            ("0.1", 1),
            ("0", 0),
        ] {
            assert_eq!(quantity_bytes(q), Some(bytes), "{q}");
        }
        for bad in ["", "-1Mi", "Mi", "1.2.3", "12MB", "1e"] {
            assert_eq!(quantity_bytes(bad), None, "{bad}");
        }
        assert_eq!(
            (format_bytes(4 * MI), format_bytes(2 * GI), format_bytes(1500), format_bytes(0)),
            ("4Mi".into(), "2Gi".into(), "1500".into(), "0".into())
        );
    }

    #[test]
    fn version_directories_are_named_like_kubelets() {
        // 2026-11-28T07:05:19Z
        assert_eq!(version_dir_name(1_795_849_519, 123456789), "..2026_11_28_07_05_19.123456789");
        assert!(is_layout_entry("..data") && is_layout_entry("..2026_11_28_07_05_19.1") && !is_layout_entry("tls.crt"));
    }
}
