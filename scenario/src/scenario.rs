//! The scenario file: which nodes a cluster has, which certificates `emu up` makes and which
//! manifests it applies.
//!
//! ```yaml
//! name: nginx-secure                 # optional, and an optional `description:`
//! nodes: [kubernetes-minion-905m, kubernetes-minion-ljyd]   # or a count: `nodes: 3`
//! certificates:                      # optional: Secrets made before the manifests are applied
//!   - secret: nginxsecret            # the Secret's name
//!     commonName: my-nginx           # CN and O of a fresh self-signed certificate
//!     namespace: default             # optional, default `default`
//!     type: kubernetes.io/tls        # optional: kubernetes.io/tls (default) or Opaque
//!     certKey: tls.crt               # optional key names in the Secret (Opaque only may
//!     keyKey: tls.key                #   change them, e.g. nginx.crt / nginx.key)
//!     sans: [my-nginx.default.svc]   # optional further DNS names or IP addresses
//! hosts: 3                          # optional: emulated hosts the nodes are spread over (`emu up --hosts`)
//! addons: [ingress]                  # optional: add-ons enabled before the manifests (`emu addons enable`)
//! manifests:
//!   - run-my-nginx.yaml          # a path, relative to the scenario file
//!   - |                          # or inline YAML text (one or more documents)
//!     apiVersion: v1
//!     kind: Namespace
//!     metadata: {name: demo}
//! ```
//! `certificates:` stands in for the tutorial's `make keys` and `kubectl create secret tls`: a
//! certificate checked into a scenario would expire, one made at `emu up` does not.
//!
//! `steps:` (and `seed:`) script what `emu test` does once the cluster is up: see
//! [`crate::steps`]. Reading the files a scenario names and generating the keys are the caller's
//! job; this module only decides what the scenario says and which Secret holds a certificate.

pub use crate::source::{manifest_source, ManifestSource};
use crate::steps;
use base64::Engine as _;
use emu_api::syntax;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: Option<String>,
    pub nodes: Vec<String>,
    pub manifests: Vec<ManifestSource>,
    pub certificates: Vec<Certificate>,
    /// `nodeFailure:` how fast a silent node is declared NotReady and its pods evicted.
    pub node_failure: NodeFailure,
    /// `steps:` for `emu test`.
    pub steps: Vec<steps::Step>,
    /// `seed:` for the steps' random choices (None: a fresh one per run, shown in the report).
    pub seed: Option<u64>,
    /// `hosts:` emulated hosts the nodes are spread over (`emu up --hosts N`); 1: every node on
    /// the machine itself.
    pub hosts: usize,
    /// `addons:` names from [`ADDONS`], enabled at `emu up` before the manifests are applied.
    pub addons: Vec<String>,
}

/// The add-ons `emu addons` and a scenario's `addons:` know: (name, what it is).
pub const ADDONS: [(&str, &str); 1] = [("ingress", "ingress-nginx's controller (nginx) serving Ingresses, IngressClass nginx")];

/// The names of [`ADDONS`], for messages: `ingress, …`.
pub fn addon_names() -> String {
    ADDONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The names of `count` emulated hosts (`host-1`, …; the first runs the control plane), as
/// `emu up --hosts` names them.
pub fn host_names(count: usize) -> Vec<String> {
    if count < 2 {
        return Vec::new();
    }
    (1..=count).map(|i| format!("host-{i}")).collect()
}

/// `nodeFailure: {notReadyAfter: 4s, evictAfter: 6s}` (whole seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFailure {
    /// None: emu's default ([`emu_logic::cluster::DEFAULT_NODE_GRACE_SECONDS`]).
    pub not_ready_after: Option<u64>,
    /// None: each pod's toleration of the unreachable taint (300 s by default).
    pub evict_after: Option<u64>,
}

/// A self-signed certificate and its key, stored as a Secret (`certificates:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// The Secret's name.
    pub secret: String,
    pub namespace: String,
    /// Subject CN and O, as the tutorial's `make keys` sets them; also a subjectAltName.
    pub common_name: String,
    /// Further subjectAltNames (DNS names or IP addresses).
    pub sans: Vec<String>,
    /// [`TLS_SECRET_TYPE`] or `Opaque`.
    pub secret_type: String,
    /// The Secret's key holding the certificate (PEM).
    pub cert_key: String,
    /// The Secret's key holding the private key (PEM).
    pub key_key: String,
}

pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

impl Certificate {
    /// The Secret holding `cert_pem` and `key_pem` under the chosen keys, as `kubectl create
    /// secret tls` makes it (or `kubectl create secret generic --from-file` for Opaque): the
    /// bytes base64 in `data`.
    pub fn secret_object(&self, cert_pem: &[u8], key_pem: &[u8]) -> Value {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut data = serde_json::Map::new();
        data.insert(self.cert_key.clone(), json!(b64(cert_pem)));
        data.insert(self.key_key.clone(), json!(b64(key_pem)));
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret, "namespace": self.namespace},
            "type": self.secret_type,
            "data": data,
        })
    }
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("scenario is not valid YAML: {0}")]
    Yaml(String),
    #[error("scenario field `nodes`: {0}")]
    Nodes(String),
    #[error("scenario field `certificates[{index}].{field}`: {message}")]
    Certificate { index: usize, field: &'static str, message: String },
    #[error("scenario field `hosts`: {0}")]
    Hosts(String),
    #[error("scenario field `addons[{index}]`: {message}")]
    Addons { index: usize, message: String },
    #[error("scenario field `nodeFailure.{field}`: {message}")]
    NodeFailure { field: &'static str, message: String },
    #[error(transparent)]
    Steps(#[from] steps::StepError),
}

/// `4s`, `1m`, `90s` → seconds (at least 1).
fn seconds(field: &'static str, text: &str) -> Result<u64, ScenarioError> {
    let err = || ScenarioError::NodeFailure { field, message: format!("{text:?}: give whole seconds or minutes, e.g. 5s or 1m") };
    let (num, scale) = match (text.strip_suffix('s'), text.strip_suffix('m')) {
        (Some(n), _) => (n, 1),
        (_, Some(n)) => (n, 60),
        _ => return Err(err()),
    };
    num.parse::<u64>().ok().filter(|v| *v > 0).map(|v| v * scale).ok_or_else(err)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    nodes: Option<RawNodes>,
    #[serde(default)]
    manifests: Vec<String>,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
    #[serde(default, rename = "nodeFailure")]
    node_failure: Option<RawNodeFailure>,
    /// Checked by [`steps::parse`], which names each bad field by its path.
    #[serde(default)]
    steps: Vec<Value>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    hosts: Option<u32>,
    #[serde(default)]
    addons: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNodeFailure {
    not_ready_after: Option<String>,
    evict_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCertificate {
    secret: Option<String>,
    common_name: Option<String>,
    namespace: Option<String>,
    #[serde(rename = "type")]
    secret_type: Option<String>,
    cert_key: Option<String>,
    key_key: Option<String>,
    #[serde(default)]
    sans: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNodes {
    Count(u32),
    Names(Vec<String>),
}

/// Names of the nodes of an unnamed cluster of `count` nodes, like kind's: `node-1`, `node-2`, …
pub fn default_node_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("node-{i}")).collect()
}

pub const DEFAULT_NODE_COUNT: usize = 2;
pub const MAX_NODES: usize = 250;

pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| ScenarioError::Yaml(e.to_string()))?;
    let _ = raw.description;
    let nodes = match raw.nodes {
        None => default_node_names(DEFAULT_NODE_COUNT),
        Some(RawNodes::Count(n)) => {
            if n == 0 || n as usize > MAX_NODES {
                return Err(ScenarioError::Nodes(format!("{n} nodes: give between 1 and {MAX_NODES}")));
            }
            default_node_names(n as usize)
        }
        Some(RawNodes::Names(names)) => {
            if names.is_empty() || names.len() > MAX_NODES {
                return Err(ScenarioError::Nodes(format!("give between 1 and {MAX_NODES} node names")));
            }
            names
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in &nodes {
        if !is_node_name(name) {
            return Err(ScenarioError::Nodes(format!(
                "{name:?} is not a valid node name: use lower case letters, digits and '-', start and end with a letter or digit, at most 40 characters"
            )));
        }
        if !seen.insert(name) {
            return Err(ScenarioError::Nodes(format!("node {name:?} is listed twice")));
        }
    }
    let manifests = raw.manifests.iter().map(|m| manifest_source(m)).collect();
    let mut certificates: Vec<Certificate> = Vec::new();
    for (index, raw) in raw.certificates.into_iter().enumerate() {
        let c = certificate(index, raw)?;
        if certificates.iter().any(|o| o.secret == c.secret && o.namespace == c.namespace) {
            return Err(ScenarioError::Certificate {
                index,
                field: "secret",
                message: format!(
                    "Secret {}/{} is already made by an earlier entry: give each certificate its own Secret",
                    c.namespace, c.secret
                ),
            });
        }
        certificates.push(c);
    }
    let node_failure = match raw.node_failure {
        None => NodeFailure::default(),
        Some(f) => NodeFailure {
            not_ready_after: f.not_ready_after.as_deref().map(|t| seconds("notReadyAfter", t)).transpose()?,
            evict_after: f.evict_after.as_deref().map(|t| seconds("evictAfter", t)).transpose()?,
        },
    };
    let hosts = raw.hosts.unwrap_or(1) as usize;
    if hosts == 0 || hosts > nodes.len() || hosts > MAX_NODES {
        return Err(ScenarioError::Hosts(format!(
            "{hosts}: give between 1 and the number of nodes ({}); each host runs at least one node",
            nodes.len()
        )));
    }
    let steps = steps::parse_with_hosts(&raw.steps, &nodes, &host_names(hosts))?;
    let addons = addons(raw.addons)?;
    Ok(Scenario { name: raw.name, nodes, manifests, certificates, node_failure, steps, seed: raw.seed, hosts, addons })
}

/// `addons:` each one of [`ADDONS`], once.
fn addons(names: Vec<String>) -> Result<Vec<String>, ScenarioError> {
    for (index, name) in names.iter().enumerate() {
        if !ADDONS.iter().any(|(n, _)| n == name) {
            return Err(ScenarioError::Addons {
                index,
                message: format!("unknown add-on {name:?}: use one of {} (`emu addons list` lists them)", addon_names()),
            });
        }
        if names[..index].contains(name) {
            return Err(ScenarioError::Addons { index, message: format!("add-on {name:?} is listed twice") });
        }
    }
    Ok(names)
}

/// One `certificates:` entry, checked field by field.
fn certificate(index: usize, raw: RawCertificate) -> Result<Certificate, ScenarioError> {
    let err = |field: &'static str, message: String| ScenarioError::Certificate { index, field, message };
    let errors = |errs: Vec<String>| errs.join("; ");
    let secret =
        raw.secret.ok_or_else(|| err("secret", "required: the name of the Secret to create, e.g. `secret: nginxsecret`".into()))?;
    let e = syntax::dns1123_subdomain_errors(&secret);
    if !e.is_empty() {
        return Err(err("secret", format!("invalid Secret name {secret:?}: {}", errors(e))));
    }
    let namespace = raw.namespace.unwrap_or_else(|| "default".into());
    let e = syntax::dns1123_label_errors(&namespace);
    if !e.is_empty() {
        return Err(err("namespace", format!("invalid namespace {namespace:?}: {}", errors(e))));
    }
    let common_name = raw
        .common_name
        .ok_or_else(|| err("commonName", "required: the certificate's subject, e.g. `commonName: my-nginx` (the Service's name)".into()))?;
    if !is_certificate_name(&common_name) {
        return Err(err(
            "commonName",
            format!("{common_name:?}: the certificate is also valid for this name, so it must be a DNS name (lower case letters, digits, '-' and '.') or an IP address"),
        ));
    }
    if let Some(bad) = raw.sans.iter().find(|n| !is_certificate_name(n)) {
        return Err(err(
            "sans",
            format!("{bad:?}: must be a DNS name (lower case letters, digits, '-' and '.', optionally after \"*.\") or an IP address"),
        ));
    }
    let secret_type = raw.secret_type.unwrap_or_else(|| TLS_SECRET_TYPE.into());
    if secret_type != TLS_SECRET_TYPE && secret_type != "Opaque" {
        return Err(err(
            "type",
            format!("unsupported Secret type {secret_type:?}: use {TLS_SECRET_TYPE} (keys tls.crt and tls.key) or Opaque (key names of your choice, e.g. nginx.crt and nginx.key)"),
        ));
    }
    let key = |field: &'static str, given: Option<String>, default: &str| {
        let name = given.unwrap_or_else(|| default.into());
        let e = syntax::config_key_errors(&name);
        if !e.is_empty() {
            return Err(err(field, format!("invalid key {name:?}: {}", errors(e))));
        }
        if secret_type == TLS_SECRET_TYPE && name != default {
            return Err(err(
                field,
                format!("a {TLS_SECRET_TYPE} Secret keeps this under {default:?}, not {name:?}: leave {field} out, or set `type: Opaque`"),
            ));
        }
        Ok(name)
    };
    let cert_key = key("certKey", raw.cert_key, "tls.crt")?;
    let key_key = key("keyKey", raw.key_key, "tls.key")?;
    if cert_key == key_key {
        return Err(err("keyKey", format!("{key_key:?} is also certKey: the certificate and the key need keys of their own")));
    }
    Ok(Certificate { secret, namespace, common_name, sans: raw.sans, secret_type, cert_key, key_key })
}

/// A name a certificate can be valid for: an IP address or a DNS name, possibly a wildcard.
fn is_certificate_name(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok() || syntax::dns1123_subdomain_errors(name.strip_prefix("*.").unwrap_or(name)).is_empty()
}

/// Node names become parts of namespace names and hostnames: a DNS label, kept short.
pub fn is_node_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let s = parse("nodes: [kubernetes-minion-905m, kubernetes-minion-ljyd]\nmanifests:\n  - run-my-nginx.yaml\n").unwrap();
        assert_eq!(s.nodes, vec!["kubernetes-minion-905m", "kubernetes-minion-ljyd"]);
        assert_eq!(s.manifests, vec![ManifestSource::Path("run-my-nginx.yaml".into())]);
    }

    #[test]
    fn count_and_inline() {
        let s = parse("nodes: 3\nmanifests:\n  - |\n    apiVersion: v1\n    kind: Namespace\n").unwrap();
        assert_eq!(s.nodes, vec!["node-1", "node-2", "node-3"]);
        assert!(matches!(&s.manifests[0], ManifestSource::Inline(t) if t.contains("kind: Namespace")));
    }

    #[test]
    fn bad_input_is_named() {
        assert!(matches!(parse("nodes: [A_B]"), Err(ScenarioError::Nodes(_))));
        assert!(matches!(parse("nodes: 0"), Err(ScenarioError::Nodes(_))));
        assert!(matches!(parse("nodez: 2"), Err(ScenarioError::Yaml(_))));
        assert!(matches!(parse("nodes: [a, a]"), Err(ScenarioError::Nodes(_))));
    }

    fn cert_error(text: &str) -> String {
        match parse(text) {
            Err(e @ ScenarioError::Certificate { .. }) => e.to_string(),
            other => panic!("expected a certificates error, got {other:?}"),
        }
    }

    #[test]
    fn certificates_default_to_a_tls_secret_in_default() {
        let s = parse("certificates:\n  - secret: nginxsecret\n    commonName: my-nginx\n").unwrap();
        assert_eq!(
            s.certificates,
            vec![Certificate {
                secret: "nginxsecret".into(),
                namespace: "default".into(),
                common_name: "my-nginx".into(),
                sans: vec![],
                secret_type: "kubernetes.io/tls".into(),
                cert_key: "tls.crt".into(),
                key_key: "tls.key".into(),
            }]
        );
        assert!(parse("nodes: 2").unwrap().certificates.is_empty());
    }

    #[test]
    fn certificates_opaque_with_the_older_key_names() {
        let text = "certificates:\n  - secret: nginxsecret\n    commonName: my-nginx\n    namespace: demo\n    type: Opaque\n    certKey: nginx.crt\n    keyKey: nginx.key\n    sans: [my-nginx.demo.svc, 10.96.0.20, \"*.my-nginx.demo\"]\n";
        let c = &parse(text).unwrap().certificates[0];
        assert_eq!(
            (c.namespace.as_str(), c.secret_type.as_str(), c.cert_key.as_str(), c.key_key.as_str()),
            ("demo", "Opaque", "nginx.crt", "nginx.key")
        );
        assert_eq!(c.sans, ["my-nginx.demo.svc", "10.96.0.20", "*.my-nginx.demo"]);
    }

    #[test]
    fn certificate_errors_name_the_field_and_the_fix() {
        let base = "certificates:\n  - secret: nginxsecret\n    commonName: my-nginx\n";
        assert!(cert_error("certificates:\n  - commonName: my-nginx\n").starts_with("scenario field `certificates[0].secret`: required:"));
        assert!(cert_error("certificates:\n  - secret: s\n").starts_with("scenario field `certificates[0].commonName`: required:"));
        let e = cert_error("certificates:\n  - secret: Nginx_Secret\n    commonName: my-nginx\n");
        assert!(
            e.starts_with("scenario field `certificates[0].secret`: invalid Secret name \"Nginx_Secret\": a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        assert!(cert_error(&format!("{base}    namespace: a.b\n"))
            .starts_with("scenario field `certificates[0].namespace`: invalid namespace \"a.b\""));
        assert!(cert_error("certificates:\n  - secret: s\n    commonName: My Nginx\n")
            .starts_with("scenario field `certificates[0].commonName`: \"My Nginx\""));
        assert!(cert_error(&format!("{base}    sans: [\"not a name\"]\n"))
            .starts_with("scenario field `certificates[0].sans`: \"not a name\": must be a DNS name"));
        let e = cert_error(&format!("{base}    type: kubernetes.io/basic-auth\n"));
        assert!(
            e.starts_with(
                "scenario field `certificates[0].type`: unsupported Secret type \"kubernetes.io/basic-auth\": use kubernetes.io/tls"
            ),
            "{e}"
        );
        let e = cert_error(&format!("{base}    certKey: nginx.crt\n"));
        assert_eq!(e, "scenario field `certificates[0].certKey`: a kubernetes.io/tls Secret keeps this under \"tls.crt\", not \"nginx.crt\": leave certKey out, or set `type: Opaque`");
        assert!(cert_error(&format!("{base}    type: Opaque\n    keyKey: a/b\n"))
            .starts_with("scenario field `certificates[0].keyKey`: invalid key \"a/b\": a valid config key"));
        assert!(cert_error(&format!("{base}    type: Opaque\n    keyKey: tls.crt\n"))
            .starts_with("scenario field `certificates[0].keyKey`: \"tls.crt\" is also certKey"));
        let e = cert_error(&format!("{base}  - secret: nginxsecret\n    commonName: other\n"));
        assert!(e.starts_with("scenario field `certificates[1].secret`: Secret default/nginxsecret is already made"), "{e}");
        // The same name in another namespace is another Secret.
        assert!(parse(&format!("{base}  - secret: nginxsecret\n    commonName: other\n    namespace: kube-system\n")).is_ok());
    }

    #[test]
    fn unknown_certificate_fields_are_refused() {
        let e = parse("certificates:\n  - secret: s\n    commonName: c\n    cn: c\n").unwrap_err();
        assert!(matches!(&e, ScenarioError::Yaml(m) if m.contains("cn")), "{e}");
    }

    #[test]
    fn the_secret_object_holds_the_pem_base64() {
        let tls = parse("certificates:\n  - secret: nginxsecret\n    commonName: my-nginx\n").unwrap().certificates.remove(0);
        assert_eq!(
            tls.secret_object(b"CERT", b"KEY"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nginxsecret", "namespace": "default"},
                "type": "kubernetes.io/tls", "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}})
        );
        let opaque = Certificate { secret_type: "Opaque".into(), cert_key: "nginx.crt".into(), key_key: "nginx.key".into(), ..tls };
        let o = opaque.secret_object(b"CERT", b"KEY");
        assert_eq!((&o["type"], &o["data"]["nginx.crt"], &o["data"]["nginx.key"]), (&json!("Opaque"), &json!("Q0VSVA=="), &json!("S0VZ")));
    }
}

#[cfg(test)]
mod node_failure_tests {
    use super::*;

    #[test]
    fn hosts_spread_the_nodes_and_name_what_steps_may_target() {
        let sc = parse("nodes: 6\nhosts: 3\nsteps:\n- host: {stop: host-3}\n").unwrap();
        assert_eq!((sc.hosts, host_names(sc.hosts)), (3, vec!["host-1".to_string(), "host-2".into(), "host-3".into()]));
        assert_eq!(parse("nodes: 2\n").unwrap().hosts, 1);
        let e = parse("nodes: 2\nhosts: 3\n").unwrap_err().to_string();
        assert_eq!(e, "scenario field `hosts`: 3: give between 1 and the number of nodes (2); each host runs at least one node");
        assert!(parse("nodes: 2\nhosts: 0\n").is_err());
    }

    #[test]
    fn node_failure_timings() {
        let sc = parse("nodes: 2\nnodeFailure: {notReadyAfter: 4s, evictAfter: 1m}\n").unwrap();
        assert_eq!(sc.node_failure, NodeFailure { not_ready_after: Some(4), evict_after: Some(60) });
        assert_eq!(parse("nodes: 2\n").unwrap().node_failure, NodeFailure::default());
        let e = parse("nodes: 2\nnodeFailure: {notReadyAfter: soon}\n").unwrap_err().to_string();
        assert_eq!(e, "scenario field `nodeFailure.notReadyAfter`: \"soon\": give whole seconds or minutes, e.g. 5s or 1m");
        assert!(parse("nodes: 2\nnodeFailure: {after: 4s}\n").is_err());
    }
}

#[cfg(test)]
mod addons_tests {
    use super::*;

    #[test]
    fn addons_are_known_ones_listed_once() {
        assert_eq!(parse("nodes: 2\naddons: [ingress]\n").unwrap().addons, ["ingress"]);
        assert!(parse("nodes: 2\n").unwrap().addons.is_empty());
        let e = parse("nodes: 2\naddons: [ingress, ingres]\n").unwrap_err().to_string();
        assert_eq!(e, "scenario field `addons[1]`: unknown add-on \"ingres\": use one of ingress (`emu addons list` lists them)");
        let e = parse("nodes: 2\naddons: [ingress, ingress]\n").unwrap_err().to_string();
        assert_eq!(e, "scenario field `addons[1]`: add-on \"ingress\" is listed twice");
        assert!(matches!(parse("addons: ingress\n"), Err(ScenarioError::Yaml(_))), "addons is a list");
    }
}

#[cfg(test)]
mod steps_tests {
    use super::*;

    #[test]
    fn steps_and_seed() {
        let sc = parse("nodes: 2\nseed: 42\nsteps:\n  - name: settle\n    sleep: 1s\n  - node: {stop: node-2}\n").unwrap();
        assert_eq!(sc.seed, Some(42));
        assert_eq!(sc.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["settle", "stop node node-2"]);
        assert!(parse("nodes: 2\n").unwrap().steps.is_empty());
        // Steps are checked against the scenario's own nodes.
        let e = parse("nodes: [a, b]\nsteps:\n  - node: {stop: node-2}\n").unwrap_err();
        assert_eq!(e.to_string(), "scenario field `steps[0].node.stop`: node \"node-2\" is not in the cluster: use one of a, b");
        assert!(matches!(parse("steps: {sleep: 1s}\n"), Err(ScenarioError::Yaml(_))), "steps is a list");
    }
}
