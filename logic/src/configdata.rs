//! The objects `kubectl create configmap` and `kubectl create secret generic` make from
//! `--from-literal` and `--from-file` sources (CLI-28). Reading files is the caller's; this
//! module parses the sources, names the keys and builds the object, with kubectl's errors.

use base64::Engine as _;
use emu_api::syntax;
use emu_api::typed::k8s_openapi::api::core::v1::{ConfigMap, Container, Secret};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
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

/// A Secret or ConfigMap of the pod's namespace, as a [`Lookup`] finds it.
#[derive(Debug, Clone, Copy)]
pub enum ConfigObject<'a> {
    ConfigMap(&'a ConfigMap),
    Secret(&'a Secret),
}

impl ConfigObject<'_> {
    /// The keys of its `data` (a ConfigMap's `binaryData` is not for variables).
    fn data_keys(&self) -> Vec<&String> {
        match self {
            ConfigObject::ConfigMap(c) => c.data.iter().flatten().map(|(k, _)| k).collect(),
            ConfigObject::Secret(s) => s.data.iter().flatten().map(|(k, _)| k).collect(),
        }
    }

    /// Its value for `key` as text (a Secret's bytes read as UTF-8, lossily).
    fn text(&self, key: &str) -> Option<String> {
        match self {
            ConfigObject::ConfigMap(c) => c.data.as_ref()?.get(key).cloned(),
            ConfigObject::Secret(s) => Some(String::from_utf8_lossy(&s.data.as_ref()?.get(key)?.0).into_owned()),
        }
    }

    /// Every key's bytes, as a volume holds them: a Secret's `data`; a ConfigMap's `data` and
    /// `binaryData`. (The API server decoded the base64 of both: a value that is not base64
    /// never reaches a node.)
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        match self {
            ConfigObject::ConfigMap(c) => {
                let text = c.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
                text.chain(c.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()))).collect()
            }
            ConfigObject::Secret(s) => s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
        }
    }
}

/// Looks up a Secret or ConfigMap of the pod's namespace by kind (`"Secret"`, `"ConfigMap"`)
/// and name.
pub type Lookup<'l, 'a> = &'l dyn Fn(&str, &str) -> Option<ConfigObject<'a>>;

/// What [`env_from_objects`] resolves: the `envFrom` variables, and per `env` entry the value of
/// its Secret or ConfigMap reference (None for other entries and missing optional ones).
pub type ObjectVars = (Vec<(String, String)>, Vec<Option<String>>);

/// The variables of a container's `envFrom` (ConfigMaps and Secrets in order, each key with the
/// source's `prefix`; keys that are not valid variable names are skipped, as kubelet does), then
/// of `env`'s `secretKeyRef`/`configMapKeyRef` entries by name; `None` for an entry that is not
/// one of those. A missing object or key fails unless marked `optional`.
pub fn env_from_objects(container: &Container, namespace: &str, lookup: Lookup<'_, '_>) -> Result<ObjectVars, EnvError> {
    let mut from = Vec::new();
    for source in container.env_from.iter().flatten() {
        let (kind, name, optional) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => ("ConfigMap", &r.name, r.optional),
            (_, Some(r)) => ("Secret", &r.name, r.optional),
            _ => continue,
        };
        let Some(object) = lookup(kind, name) else {
            if optional == Some(true) {
                continue;
            }
            return Err(EnvError::NotFound { kind, name: name.clone() });
        };
        let prefix = source.prefix.as_deref().unwrap_or("");
        let mut keys = object.data_keys();
        keys.sort();
        for key in keys {
            let var = format!("{prefix}{key}");
            if syntax::env_var_name_errors(&var).is_empty() {
                from.extend(object.text(key).map(|v| (var, v)));
            }
        }
    }
    let mut refs = Vec::new();
    for entry in container.env.iter().flatten() {
        let value_from = entry.value_from.as_ref();
        let (kind, name, key, optional) =
            match (value_from.and_then(|v| v.config_map_key_ref.as_ref()), value_from.and_then(|v| v.secret_key_ref.as_ref())) {
                (Some(r), _) => ("ConfigMap", &r.name, &r.key, r.optional == Some(true)),
                (_, Some(r)) => ("Secret", &r.name, &r.key, r.optional == Some(true)),
                _ => {
                    refs.push(None);
                    continue;
                }
            };
        let value = match lookup(kind, name) {
            Some(object) => match object.text(key) {
                Some(v) => Some(v),
                None if optional => None,
                None => return Err(EnvError::NoKey { kind, namespace: namespace.into(), name: name.clone(), key: key.clone() }),
            },
            None if optional => None,
            None => return Err(EnvError::NotFound { kind, name: name.clone() }),
        };
        refs.push(value);
    }
    Ok((from, refs))
}

#[cfg(test)]
mod env_tests {
    use super::*;
    use emu_api::typed;

    fn objects(kind: &str, name: &str) -> Option<ConfigObject<'static>> {
        static CREDS: std::sync::LazyLock<Secret> =
            std::sync::LazyLock::new(|| typed::decode(&json!({"data": {"user": "YWRtaW4=", "pass": "czNjcj10"}})).unwrap());
        static SETTINGS: std::sync::LazyLock<ConfigMap> =
            std::sync::LazyLock::new(|| typed::decode(&json!({"data": {"MODE": "debug", "LEVEL": "3"}})).unwrap());
        match (kind, name) {
            ("Secret", "creds") => Some(ConfigObject::Secret(&CREDS)),
            ("ConfigMap", "settings") => Some(ConfigObject::ConfigMap(&SETTINGS)),
            _ => None,
        }
    }

    fn container(v: Value) -> Container {
        typed::decode(&v).unwrap()
    }

    #[test]
    fn env_from_and_key_refs_resolve() {
        let c = container(json!({
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}, {"secretRef": {"name": "nope", "optional": true}},
                        {"configMapRef": {"name": "settings"}, "prefix": "X="}],
            "env": [{"name": "A", "value": "1"},
                    {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
                    {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "gone", "optional": true}}}]}));
        let (from, refs) = env_from_objects(&c, "default", &objects).unwrap();
        // "X=LEVEL" is not a variable name: skipped.
        assert_eq!(from, [("APP_LEVEL".to_string(), "3".to_string()), ("APP_MODE".into(), "debug".into())]);
        assert_eq!(refs, [None, Some("admin".into()), Some("debug".into()), None]);
    }

    #[test]
    fn missing_objects_and_keys_are_named() {
        let missing = container(json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]}));
        assert_eq!(env_from_objects(&missing, "default", &objects).unwrap_err().to_string(), "secret \"late\" not found");
        let no_key = container(json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]}));
        assert_eq!(
            env_from_objects(&no_key, "default", &objects).unwrap_err().to_string(),
            "couldn't find key token in Secret default/creds"
        );
        let from = container(json!({"envFrom": [{"configMapRef": {"name": "absent"}}]}));
        assert_eq!(env_from_objects(&from, "default", &objects).unwrap_err().to_string(), "configmap \"absent\" not found");
    }
}
