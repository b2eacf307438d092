//! The objects `kubectl create configmap` and `kubectl create secret generic` make from
//! `--from-literal` and `--from-file` sources (CLI-28). Reading files is the caller's; this
//! module parses the sources, names the keys and builds the object, with kubectl's errors.

use base64::Engine as _;
use emu_api::syntax;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// One `--from-literal` or `--from-file` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Literal {
        key: String,
        value: String,
    },
    /// `--from-file=[KEY=]PATH`: without a key, the file's base name (or, for a directory, each
    /// regular file's name in it).
    File {
        key: Option<String>,
        path: PathBuf,
    },
}

/// `--from-literal=KEY=VALUE` (the value may itself contain `=`).
pub fn literal_source(arg: &str) -> Result<Source, String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok(Source::Literal { key: key.into(), value: value.into() }),
        _ => Err(format!("invalid literal source {arg}, expected key=value")),
    }
}

/// `--from-file=[KEY=]PATH`.
pub fn file_source(arg: &str) -> Result<Source, String> {
    match arg.split_once('=') {
        None => Ok(Source::File { key: None, path: arg.into() }),
        Some((key, path)) if !key.is_empty() && !path.is_empty() => Ok(Source::File { key: Some(key.into()), path: path.into() }),
        _ => Err(format!("key names or file paths cannot be empty: {arg:?}")),
    }
}

/// The key a file gets without a given one: its base name.
pub fn file_key(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Which object the entries go into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Text in `data`, anything that is not UTF-8 in `binaryData` (base64).
    ConfigMap,
    /// `type: Opaque`, every value base64 in `data`.
    Secret,
}

impl Target {
    fn kind(self) -> &'static str {
        match self {
            Target::ConfigMap => "ConfigMap",
            Target::Secret => "Secret",
        }
    }
}

/// The object named `name` holding `entries` (key, content) in the order given. Fails on a key
/// that is not a valid config key and on a key given twice, as kubectl does.
pub fn build(target: Target, name: &str, entries: &[(String, Vec<u8>)]) -> Result<Value, String> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (mut data, mut binary) = (Map::new(), Map::new());
    for (key, bytes) in entries {
        let errors = syntax::config_key_errors(key);
        if !errors.is_empty() {
            return Err(format!("{key:?} is not a valid key name for a {}: {}", target.kind(), errors.join(";")));
        }
        if data.contains_key(key) || binary.contains_key(key) {
            return Err(match target {
                Target::ConfigMap => {
                    format!("cannot add key {key:?}, another key by that name already exists in Data for ConfigMap {name:?}")
                }
                Target::Secret => format!("cannot add key {key}, another key by that name already exists"),
            });
        }
        match (target, std::str::from_utf8(bytes)) {
            (Target::ConfigMap, Ok(text)) => data.insert(key.clone(), json!(text)),
            (Target::ConfigMap, Err(_)) => binary.insert(key.clone(), json!(b64(bytes))),
            (Target::Secret, _) => data.insert(key.clone(), json!(b64(bytes))),
        };
    }
    let mut object = json!({"apiVersion": "v1", "kind": target.kind(), "metadata": {"name": name}, "data": data});
    if target == Target::Secret {
        object["type"] = json!("Opaque");
    }
    if !binary.is_empty() {
        object["binaryData"] = Value::Object(binary);
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, bytes: &[u8]) -> (String, Vec<u8>) {
        (key.to_string(), bytes.to_vec())
    }

    #[test]
    fn sources_parse_as_kubectl_reads_them() {
        assert_eq!(literal_source("a=b=c"), Ok(Source::Literal { key: "a".into(), value: "b=c".into() }));
        assert_eq!(literal_source("novalue"), Err("invalid literal source novalue, expected key=value".into()));
        assert!(literal_source("=x").is_err());
        assert_eq!(file_source("conf/default.conf"), Ok(Source::File { key: None, path: "conf/default.conf".into() }));
        assert_eq!(
            file_source("nginx.conf=conf/default.conf"),
            Ok(Source::File { key: Some("nginx.conf".into()), path: "conf/default.conf".into() })
        );
        assert!(file_source("k=").is_err());
        assert_eq!(file_key(Path::new("/tmp/conf/default.conf")), "default.conf");
    }

    #[test]
    fn configmap_keeps_text_and_puts_other_bytes_in_binary_data() {
        let cm =
            build(Target::ConfigMap, "nginxconfigmap", &[entry("default.conf", b"server {}\n"), entry("logo.bin", &[0xff, 0x00])]).unwrap();
        assert_eq!(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nginxconfigmap"},
                   "data": {"default.conf": "server {}\n"}, "binaryData": {"logo.bin": "/wA="}})
        );
    }

    #[test]
    fn secret_is_opaque_and_base64() {
        let s = build(Target::Secret, "creds", &[entry("user", b"admin"), entry("pass", b"s3cr=t")]).unwrap();
        assert_eq!(
            s,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "creds"},
                   "data": {"user": "YWRtaW4=", "pass": "czNjcj10"}})
        );
    }

    #[test]
    fn bad_and_duplicate_keys_are_refused() {
        let err = build(Target::ConfigMap, "c", &[entry("a b", b"x")]).unwrap_err();
        assert!(
            err.starts_with("\"a b\" is not a valid key name for a ConfigMap: a valid config key must consist of alphanumeric characters"),
            "{err}"
        );
        assert_eq!(
            build(Target::ConfigMap, "c", &[entry("a", b"x"), entry("a", &[0xff])]),
            Err("cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"c\"".into())
        );
        assert_eq!(
            build(Target::Secret, "s", &[entry("a", b"x"), entry("a", b"y")]),
            Err("cannot add key a, another key by that name already exists".into())
        );
    }
}

/// Why a container's variables cannot be set (kubelet's messages; the pod then waits in
/// `CreateContainerConfigError` until the object or key exists).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{} {name:?} not found", kind.to_lowercase())]
    NotFound { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    NoKey { kind: &'static str, namespace: String, name: String, key: String },
}

/// A Secret's or ConfigMap's value for `key`, as text (a Secret's base64 decoded).
fn value_of(kind: &str, object: &Value, key: &str) -> Option<String> {
    if kind == "Secret" {
        let text = object["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        return Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    object["data"][key].as_str().map(str::to_string)
}

/// Looks up a Secret or ConfigMap of the pod's namespace by kind and name.
pub type Lookup<'a> = &'a dyn Fn(&str, &str) -> Option<Value>;

/// What [`env_from_objects`] resolves: the `envFrom` variables, and per `env` entry the value of
/// its Secret or ConfigMap reference (None for other entries and missing optional ones).
pub type ObjectVars = (Vec<(String, String)>, Vec<Option<String>>);

/// The variables of a container's `envFrom` (ConfigMaps and Secrets in order, each key with the
/// source's `prefix`; keys that are not valid variable names are skipped, as kubelet does), then
/// of `env`'s `secretKeyRef`/`configMapKeyRef` entries by name; `None` for an entry that is not
/// one of those. A missing object or key fails unless marked `optional`.
pub fn env_from_objects(container: &Value, namespace: &str, lookup: Lookup) -> Result<ObjectVars, EnvError> {
    let mut from = Vec::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference) = match (source.get("configMapRef"), source.get("secretRef")) {
            (Some(r), _) => ("ConfigMap", r),
            (_, Some(r)) => ("Secret", r),
            _ => continue,
        };
        let name = reference["name"].as_str().unwrap_or("");
        let Some(object) = lookup(kind, name) else {
            if reference["optional"].as_bool() == Some(true) {
                continue;
            }
            return Err(EnvError::NotFound { kind, name: name.into() });
        };
        let prefix = source["prefix"].as_str().unwrap_or("");
        let mut keys: Vec<&String> = object["data"].as_object().into_iter().flatten().map(|(k, _)| k).collect();
        keys.sort();
        for key in keys {
            let var = format!("{prefix}{key}");
            if syntax::env_var_name_errors(&var).is_empty() {
                from.extend(value_of(kind, &object, key).map(|v| (var, v)));
            }
        }
    }
    let mut refs = Vec::new();
    for entry in container["env"].as_array().into_iter().flatten() {
        let value_from = &entry["valueFrom"];
        let (kind, reference) = match (value_from.get("configMapKeyRef"), value_from.get("secretKeyRef")) {
            (Some(r), _) => ("ConfigMap", r),
            (_, Some(r)) => ("Secret", r),
            _ => {
                refs.push(None);
                continue;
            }
        };
        let (name, key) = (reference["name"].as_str().unwrap_or(""), reference["key"].as_str().unwrap_or(""));
        let optional = reference["optional"].as_bool() == Some(true);
        let value = match lookup(kind, name) {
            Some(object) => match value_of(kind, &object, key) {
                Some(v) => Some(v),
                None if optional => None,
                None => return Err(EnvError::NoKey { kind, namespace: namespace.into(), name: name.into(), key: key.into() }),
            },
            None if optional => None,
            None => return Err(EnvError::NotFound { kind, name: name.into() }),
        };
        refs.push(value);
    }
    Ok((from, refs))
}

#[cfg(test)]
mod env_tests {
    use super::*;

    fn objects(kind: &str, name: &str) -> Option<Value> {
        match (kind, name) {
            ("Secret", "creds") => Some(json!({"data": {"user": "YWRtaW4=", "pass": "czNjcj10"}})),
            ("ConfigMap", "settings") => Some(json!({"data": {"MODE": "debug", "LEVEL": "3"}})),
            _ => None,
        }
    }

    #[test]
    fn env_from_and_key_refs_resolve() {
        let c = json!({
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}, {"secretRef": {"name": "nope", "optional": true}},
                        {"configMapRef": {"name": "settings"}, "prefix": "X="}],
            "env": [{"name": "A", "value": "1"},
                    {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
                    {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "gone", "optional": true}}}]});
        let (from, refs) = env_from_objects(&c, "default", &objects).unwrap();
        // "X=LEVEL" is not a variable name: skipped.
        assert_eq!(from, [("APP_LEVEL".to_string(), "3".to_string()), ("APP_MODE".into(), "debug".into())]);
        assert_eq!(refs, [None, Some("admin".into()), Some("debug".into()), None]);
    }

    #[test]
    fn missing_objects_and_keys_are_named() {
        let missing = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]});
        assert_eq!(env_from_objects(&missing, "default", &objects).unwrap_err().to_string(), "secret \"late\" not found");
        let no_key = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]});
        assert_eq!(
            env_from_objects(&no_key, "default", &objects).unwrap_err().to_string(),
            "couldn't find key token in Secret default/creds"
        );
        let from = json!({"envFrom": [{"configMapRef": {"name": "absent"}}]});
        assert_eq!(env_from_objects(&from, "default", &objects).unwrap_err().to_string(), "configmap \"absent\" not found");
    }
}
