//! What a Secret or ConfigMap volume holds (VOL-1..VOL-3, kubelet's `MakePayload`) and the
//! names of its atomic layout (VOL-4, kubelet's `AtomicWriter`). Writing the files is the node
//! agent's; this module decides which files, with which bytes and modes.

use crate::configdata::Lookup;
use base64::Engine as _;
use serde_json::Value;
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
    #[error("{kind} {name:?}: key {key:?} holds invalid base64")]
    BadData { kind: &'static str, name: String, key: String },
    #[error("invalid path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    /// Kubelet's message when the token request fails.
    #[error("failed to fetch token: the API server issued none")]
    NoToken,
    #[error("unsupported downward API field {field:?}")]
    BadField { field: String },
}

/// The kind of object a volume projects and the volume source (`secret:` or `configMap:`);
/// None for every other kind of volume.
pub fn object_source(volume: &Value) -> Option<(&'static str, &Value)> {
    if let Some(s) = volume.get("secret").filter(|s| s.is_object()) {
        return Some(("Secret", s));
    }
    volume.get("configMap").filter(|s| s.is_object()).map(|s| ("ConfigMap", s))
}

/// Whether `volume` is one whose files the agent writes: a Secret's, a ConfigMap's, or a
/// projected one.
pub fn has_files(volume: &Value) -> bool {
    object_source(volume).is_some() || volume.get("projected").is_some_and(Value::is_object)
}

/// The files of any volume the agent writes ([`payload`], and projected volumes); `pod` is the
/// pod (for downward API items), `token` its service-account token when a source asks for one.
pub fn payload_for_pod(volume: &Value, lookup: Lookup, pod: &Value, token: Option<&str>) -> Option<Result<Payload, VolumeError>> {
    if let Some(projected) = volume.get("projected").filter(|p| p.is_object()) {
        return Some(projected_payload(projected, lookup, pod, token));
    }
    payload(volume, lookup)
}

/// A projected volume's files: those of each source (Secret and ConfigMap items, downward API
/// items, the service-account token) together, with the volume's `defaultMode` unless an item
/// gives its own `mode`.
fn projected_payload(projected: &Value, lookup: Lookup, pod: &Value, token: Option<&str>) -> Result<Payload, VolumeError> {
    let default_mode = mode_of(&projected["defaultMode"]).unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    for source in projected["sources"].as_array().into_iter().flatten() {
        if let Some(t) = source.get("serviceAccountToken").filter(|t| t.is_object()) {
            let path = t["path"].as_str().unwrap_or("token");
            check_path(path)?;
            let token = token.ok_or(VolumeError::NoToken)?;
            payload.insert(path.into(), FileProjection { data: token.as_bytes().to_vec(), mode: default_mode });
        }
        for (kind, key) in [("Secret", "secret"), ("ConfigMap", "configMap")] {
            if let Some(s) = source.get(key).filter(|s| s.is_object()) {
                // A projected source names its object `name` and takes the volume's mode.
                let mut s = s.clone();
                s["secretName"] = s["name"].clone();
                s["defaultMode"] = serde_json::json!(default_mode);
                payload.extend(payload_of(kind, &s, lookup)?);
            }
        }
        for item in source["downwardAPI"]["items"].as_array().into_iter().flatten() {
            let path = item["path"].as_str().unwrap_or("");
            check_path(path)?;
            let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or("");
            let data = downward_field(pod, field).ok_or_else(|| VolumeError::BadField { field: field.into() })?;
            payload.insert(path.into(), FileProjection { data: data.into_bytes(), mode: mode_of(&item["mode"]).unwrap_or(default_mode) });
        }
    }
    Ok(payload)
}

/// A downward API file's content: the pod's name, namespace, uid, or its labels or annotations
/// as `key="value"` lines, sorted.
fn downward_field(pod: &Value, field: &str) -> Option<String> {
    let meta = &pod["metadata"];
    match field {
        "metadata.name" | "metadata.namespace" | "metadata.uid" => {
            Some(meta[&field["metadata.".len()..]].as_str().unwrap_or_default().to_string())
        }
        "metadata.labels" | "metadata.annotations" => {
            let map = meta[&field["metadata.".len()..]].as_object().cloned().unwrap_or_default();
            let mut lines: Vec<String> = map.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default())).collect();
            lines.sort();
            Some(lines.join("\n"))
        }
        _ => None,
    }
}

/// The files of a Secret or ConfigMap volume: every key (a ConfigMap's `binaryData` too) as a
/// file named like it, or only the listed `items` at their paths; modes from `defaultMode` or
/// the item's `mode`. A missing object gives an empty volume when `optional`, an error
/// otherwise; so does a listed key the object lacks. None for other kinds of volume.
pub fn payload(volume: &Value, lookup: Lookup) -> Option<Result<Payload, VolumeError>> {
    let (kind, source) = object_source(volume)?;
    Some(payload_of(kind, source, lookup))
}

fn payload_of(kind: &'static str, source: &Value, lookup: Lookup) -> Result<Payload, VolumeError> {
    let name_field = if kind == "Secret" { "secretName" } else { "name" };
    let name = source[name_field].as_str().unwrap_or("");
    let optional = source["optional"].as_bool() == Some(true);
    let default_mode = mode_of(&source["defaultMode"]).unwrap_or(DEFAULT_MODE);
    let Some(object) = lookup(kind, name) else {
        return if optional { Ok(Payload::new()) } else { Err(VolumeError::NotFound { kind, name: name.into() }) };
    };
    let values = values(kind, name, &object)?;
    let mut payload = Payload::new();
    match source["items"].as_array().filter(|items| !items.is_empty()) {
        None => {
            for (key, data) in values {
                check_path(&key)?;
                payload.insert(key, FileProjection { data, mode: default_mode });
            }
        }
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or("");
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
                let path = item["path"].as_str().unwrap_or(key);
                check_path(path)?;
                let mode = mode_of(&item["mode"]).unwrap_or(default_mode);
                payload.insert(path.to_string(), FileProjection { data: data.clone(), mode });
            }
        }
    }
    Ok(payload)
}

/// Every key's bytes: a Secret's `data` decoded; a ConfigMap's `data` as text and `binaryData`
/// decoded.
fn values(kind: &'static str, name: &str, object: &Value) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let b64 = |key: &str, v: &Value| {
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).map_err(|_| VolumeError::BadData {
            kind,
            name: name.into(),
            key: key.into(),
        })
    };
    let mut out = BTreeMap::new();
    for (key, v) in object["data"].as_object().into_iter().flatten() {
        let bytes = if kind == "Secret" { b64(key, v)? } else { v.as_str().unwrap_or("").as_bytes().to_vec() };
        out.insert(key.clone(), bytes);
    }
    if kind == "ConfigMap" {
        for (key, v) in object["binaryData"].as_object().into_iter().flatten() {
            out.insert(key.clone(), b64(key, v)?);
        }
    }
    Ok(out)
}

fn mode_of(v: &Value) -> Option<u32> {
    v.as_u64().filter(|m| *m <= 0o777).map(|m| m as u32)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(kind: &str, name: &str) -> Option<Value> {
        match (kind, name) {
            // "tls.crt" = "CERT", "tls.key" = "KEY" in base64.
            ("Secret", "nginxsecret") => Some(json!({"kind": "Secret", "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}})),
            ("Secret", "broken") => Some(json!({"kind": "Secret", "data": {"x": "not base64!"}})),
            ("ConfigMap", "nginxconfigmap") => Some(json!({"kind": "ConfigMap",
                "data": {"default.conf": "server {}\n"}, "binaryData": {"logo.bin": "AAE="}})),
            _ => None,
        }
    }

    fn files(p: &Payload) -> Vec<(&str, &[u8], u32)> {
        p.iter().map(|(k, f)| (k.as_str(), f.data.as_slice(), f.mode)).collect()
    }

    #[test]
    fn every_key_becomes_a_file_with_the_default_mode() {
        let vol = json!({"name": "secret-volume", "secret": {"secretName": "nginxsecret"}});
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("tls.crt", &b"CERT"[..], 0o644), ("tls.key", &b"KEY"[..], 0o644)]);
        let vol = json!({"name": "c", "configMap": {"name": "nginxconfigmap", "defaultMode": 0o400}});
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("default.conf", &b"server {}\n"[..], 0o400), ("logo.bin", &[0u8, 1][..], 0o400)]);
    }

    #[test]
    fn the_api_access_volume_holds_the_token_the_ca_and_the_namespace() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        crate::serviceaccount::add_api_access(&mut pod, "x9zkq");
        let vol = pod["spec"]["volumes"][0].clone();
        let lookup =
            |kind: &str, name: &str| (kind == "ConfigMap" && name == "kube-root-ca.crt").then(|| json!({"data": {"ca.crt": "PEM"}}));
        let p = payload_for_pod(&vol, &lookup, &pod, Some("jwt")).unwrap().unwrap();
        assert_eq!(files(&p), vec![("ca.crt", &b"PEM"[..], 0o644), ("namespace", &b"default"[..], 0o644), ("token", &b"jwt"[..], 0o644)]);
        // Without a token (the API server issued none) the volume cannot be set up.
        assert_eq!(payload_for_pod(&vol, &lookup, &pod, None).unwrap(), Err(VolumeError::NoToken));
        assert!(has_files(&vol) && !has_files(&json!({"name": "x", "emptyDir": {}})));
        // Downward API labels, one `key="value"` line each.
        let labels = json!({"projected": {"sources": [{"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400}]}}]}});
        let p = payload_for_pod(&labels, &lookup, &pod, None).unwrap().unwrap();
        assert_eq!(files(&p), vec![("labels", &b"app=\"web\"\ntier=\"front\""[..], 0o400)]);
    }

    #[test]
    fn items_pick_keys_and_place_them() {
        let vol = json!({"name": "s", "secret": {"secretName": "nginxsecret", "defaultMode": 0o440,
            "items": [{"key": "tls.key", "path": "private/server.key", "mode": 0o400}, {"key": "tls.crt", "path": "server.crt"}]}});
        let p = payload(&vol, &objects).unwrap().unwrap();
        assert_eq!(files(&p), vec![("private/server.key", &b"KEY"[..], 0o400), ("server.crt", &b"CERT"[..], 0o440)]);
        assert_eq!(top_level_names(&p), BTreeSet::from(["private".to_string(), "server.crt".to_string()]));
    }

    #[test]
    fn missing_objects_and_keys_fail_unless_optional() {
        let vol = json!({"name": "s", "secret": {"secretName": "late"}});
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), r#"secret "late" not found"#);
        let vol = json!({"name": "c", "configMap": {"name": "late"}});
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), r#"configmap "late" not found"#);
        let vol = json!({"name": "c", "configMap": {"name": "late", "optional": true}});
        assert_eq!(payload(&vol, &objects).unwrap(), Ok(Payload::new()));

        let vol = json!({"name": "s", "secret": {"secretName": "nginxsecret", "items": [{"key": "ca.crt", "path": "ca"}]}});
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), "references non-existent secret key: ca.crt");
        let vol = json!({"name": "c", "configMap": {"name": "nginxconfigmap", "items": [{"key": "nope", "path": "n"}]}});
        assert_eq!(payload(&vol, &objects).unwrap().unwrap_err().to_string(), "configmap references non-existent config key: nope");
        let vol = json!({"name": "c", "configMap": {"name": "nginxconfigmap", "optional": true, "items": [{"key": "nope", "path": "n"}]}});
        assert_eq!(payload(&vol, &objects).unwrap(), Ok(Payload::new()));
    }

    #[test]
    fn other_volumes_have_no_payload_and_bad_data_is_named_without_its_value() {
        assert!(payload(&json!({"name": "tmp", "emptyDir": {}}), &objects).is_none());
        let err = payload(&json!({"name": "s", "secret": {"secretName": "broken"}}), &objects).unwrap().unwrap_err().to_string();
        assert_eq!(err, r#"Secret "broken": key "x" holds invalid base64"#);
        assert!(!err.contains("not base64!"));
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

    #[test]
    fn version_directories_are_named_like_kubelets() {
        // 2026-11-28T07:05:19Z
        assert_eq!(version_dir_name(1_795_849_519, 123456789), "..2026_11_28_07_05_19.123456789");
        assert!(is_layout_entry("..data") && is_layout_entry("..2026_11_28_07_05_19.1") && !is_layout_entry("tls.crt"));
    }
}
