//! The scenario file: which nodes a cluster has and which manifests `emu up` applies.
//!
//! ```yaml
//! nodes: [kubernetes-minion-905m, kubernetes-minion-ljyd]   # or a count: `nodes: 3`
//! manifests:
//!   - run-my-nginx.yaml          # a path, relative to the scenario file
//!   - |                          # or inline YAML text (one or more documents)
//!     apiVersion: v1
//!     kind: Namespace
//!     metadata: {name: demo}
//! ```
//! Later issues add `steps:`. Reading the files a scenario names is the caller's job; this module
//! only decides what the scenario says.

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub name: Option<String>,
    pub nodes: Vec<String>,
    pub manifests: Vec<ManifestSource>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestSource {
    /// A file or directory, relative to the scenario file.
    Path(String),
    /// YAML text written in the scenario itself.
    Inline(String),
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("scenario is not valid YAML: {0}")]
    Yaml(String),
    #[error("scenario field `nodes`: {0}")]
    Nodes(String),
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
    let manifests = raw
        .manifests
        .into_iter()
        .map(|m| if m.contains('\n') || m.contains(':') && m.contains(' ') { ManifestSource::Inline(m) } else { ManifestSource::Path(m) })
        .collect();
    Ok(Scenario { name: raw.name, nodes, manifests })
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
}
