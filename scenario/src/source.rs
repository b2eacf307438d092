//! Where a scenario's manifests come from: a file or directory named relative to the scenario,
//! or YAML written in it (the `manifests:` list and `apply` steps both take either).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestSource {
    /// A file or directory, relative to the scenario file.
    Path(String),
    /// YAML text written in the scenario itself.
    Inline(String),
}

/// A manifest entry (or `apply:` step): YAML text when it has a line break or a `key: value`,
/// else a path.
pub fn manifest_source(text: &str) -> ManifestSource {
    if text.contains('\n') || text.contains(':') && text.contains(' ') {
        ManifestSource::Inline(text.to_string())
    } else {
        ManifestSource::Path(text.to_string())
    }
}
