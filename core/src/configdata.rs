//! The objects `kubectl create configmap` and `kubectl create secret generic` make from
//! `--from-literal` and `--from-file` sources (CLI-28). Reading files is the caller's; this
//! module parses the sources, names the keys and builds the object, with kubectl's errors.

use crate::validation;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// One `--from-literal` or `--from-file` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Literal { key: String, value: String },
    /// `--from-file=[KEY=]PATH`: without a key, the file's base name (or, for a directory, each
    /// regular file's name in it).
    File { key: Option<String>, path: PathBuf },
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
        let errors = validation::config_key_errors(key);
        if !errors.is_empty() {
            return Err(format!("{key:?} is not a valid key name for a {}: {}", target.kind(), errors.join(";")));
        }
        if data.contains_key(key) || binary.contains_key(key) {
            return Err(match target {
                Target::ConfigMap => format!("cannot add key {key:?}, another key by that name already exists in Data for ConfigMap {name:?}"),
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
        assert_eq!(file_source("nginx.conf=conf/default.conf"), Ok(Source::File { key: Some("nginx.conf".into()), path: "conf/default.conf".into() }));
        assert!(file_source("k=").is_err());
        assert_eq!(file_key(Path::new("/tmp/conf/default.conf")), "default.conf");
    }

    #[test]
    fn configmap_keeps_text_and_puts_other_bytes_in_binary_data() {
        let cm = build(Target::ConfigMap, "nginxconfigmap", &[entry("default.conf", b"server {}\n"), entry("logo.bin", &[0xff, 0x00])]).unwrap();
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
        assert!(err.starts_with("\"a b\" is not a valid key name for a ConfigMap: a valid config key must consist of alphanumeric characters"), "{err}");
        assert_eq!(
            build(Target::ConfigMap, "c", &[entry("a", b"x"), entry("a", &[0xff])]),
            Err("cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"c\"".into())
        );
        assert_eq!(build(Target::Secret, "s", &[entry("a", b"x"), entry("a", b"y")]), Err("cannot add key a, another key by that name already exists".into()));
    }
}
