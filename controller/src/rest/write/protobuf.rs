//! Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl sends that way: its
//! generators (`kubectl create configmap`, `create secret`, `create namespace`) write through the
//! typed clientset, which sends `application/vnd.kubernetes.protobuf` and no JSON fallback.
//!
//! The envelope is apimachinery's: the magic `k8s\0`, then a `runtime.Unknown` message (1: type
//! meta, 2: the object's bytes). The object's fields are read by their numbers in
//! `k8s.io/api/core/v1/generated.proto` and written as the JSON the same object has, so that
//! admission sees what a JSON client would have sent. Fields of ObjectMeta a create does not
//! carry (uid, resourceVersion, timestamps, managedFields) are not read.

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

/// A `map<string, string>` (or `map<string, bytes>` as base64, JSON's form of bytes) entry.
fn entry(b: &[u8], bytes: bool) -> Result<(String, Value), String> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = text(k)?,
            (2, Field::Bytes(v)) if bytes => value = json!(base64::engine::general_purpose::STANDARD.encode(v)),
            (2, Field::Bytes(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(map: &mut Map<String, Value>, field: &str, b: &[u8], bytes: bool) -> Result<(), String> {
    let (k, v) = entry(b, bytes)?;
    let m = map.entry(field).or_insert_with(|| json!({}));
    m[k] = v;
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            // Go writes every string field, set or not; JSON leaves the empty ones out.
            (_, Field::Bytes([])) => {}
            (1, Field::Bytes(v)) => _ = meta.insert("name".into(), json!(text(v)?)),
            (2, Field::Bytes(v)) => _ = meta.insert("generateName".into(), json!(text(v)?)),
            (3, Field::Bytes(v)) => _ = meta.insert("namespace".into(), json!(text(v)?)),
            (11, Field::Bytes(v)) => insert_entry(&mut meta, "labels", v, false)?,
            (12, Field::Bytes(v)) => insert_entry(&mut meta, "annotations", v, false)?,
            (14, Field::Bytes(v)) => {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                list.as_array_mut().into_iter().for_each(|l| l.push(json!(String::from_utf8_lossy(v))));
            }
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

/// The JSON of a protobuf request body of kind `kind`; `Err` says why it cannot be read (an
/// unknown envelope, or a kind whose fields are not read here).
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
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(v)) => _ = obj.insert("metadata".into(), object_meta(v)?),
            ("ConfigMap", 2, Field::Bytes(v)) => insert_entry(&mut obj, "data", v, false)?,
            ("ConfigMap", 3, Field::Bytes(v)) => insert_entry(&mut obj, "binaryData", v, true)?,
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => _ = obj.insert("immutable".into(), json!(v != 0)),
            ("Secret", 2, Field::Bytes(v)) => insert_entry(&mut obj, "data", v, true)?,
            ("Secret", 3, Field::Bytes(v)) if !v.is_empty() => _ = obj.insert("type".into(), json!(text(v)?)),
            ("Secret", 4, Field::Bytes(v)) => insert_entry(&mut obj, "stringData", v, false)?,
            // A Namespace's spec and status hold nothing a create sets.
            ("ConfigMap" | "Secret" | "Namespace", _, _) => {}
            _ => return Err(format!("{kind} is not read from protobuf")),
        }
    }
    if !matches!(kind, "ConfigMap" | "Secret" | "Namespace") {
        return Err(format!("{kind} is not read from protobuf"));
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
        let pod = [b"k8s\0".to_vec(), field(1, &[field(1, b"v1"), field(2, b"Pod")].concat())].concat();
        assert_eq!(decode("Pod", &pod).unwrap_err(), "Pod is not read from protobuf");
    }
}
