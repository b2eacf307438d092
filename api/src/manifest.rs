//! Multi-document YAML/JSON manifests into JSON values, as `kubectl apply -f` reads them.
//!
//! The stream is split at `---` lines ourselves (as kubectl's YAML reader does) so that each
//! document parses on its own: an error then names its document and line, and the documents
//! before it are still usable by the caller.

use crate::json::canonical_json;
use serde_json::Value;

/// One object from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based document number in the file (empty documents are not counted).
    pub index: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("error parsing document {document} (line {line}): {message}")]
    Syntax { document: usize, line: usize, message: String },
    /// kubectl's wording (apimachinery's missingKindErr), with the document as compact JSON.
    #[error("document {document} (line {line}): Object 'Kind' is missing in '{json}'")]
    MissingKind { document: usize, line: usize, json: String },
    #[error("document {document} (line {line}): Object 'apiVersion' is missing in '{json}'")]
    MissingApiVersion { document: usize, line: usize, json: String },
    #[error("document {document} (line {line}): expected an object with apiVersion and kind, found {found}")]
    NotAnObject { document: usize, line: usize, found: &'static str },
}

/// Parses a YAML (or JSON) stream into objects. Empty documents are skipped, `kind: List` (and
/// typed lists such as `ServiceList`) are expanded into their items, every object must have
/// `kind` and `apiVersion`.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    let raw = match parse_json_stream(text) {
        Some(docs) => docs,
        None => parse_yaml_stream(text)?,
    };
    let mut out = Vec::new();
    for (index, line, value) in raw {
        check_object(&value, index, line)?;
        let kind = value["kind"].as_str().unwrap_or_default();
        match value.get("items") {
            Some(Value::Array(items)) if kind.ends_with("List") => {
                // A typed list's items may omit kind/apiVersion; they inherit them from the list.
                let item_kind = kind.strip_suffix("List").unwrap_or_default();
                for item in items {
                    let mut item = item.clone();
                    if let (Value::Object(m), false) = (&mut item, item_kind.is_empty()) {
                        m.entry("kind").or_insert_with(|| item_kind.into());
                        m.entry("apiVersion").or_insert_with(|| value["apiVersion"].clone());
                    }
                    check_object(&item, index, line)?;
                    out.push(Document { index, line, value: item });
                }
            }
            _ => out.push(Document { index, line, value }),
        }
    }
    Ok(out)
}

fn check_object(value: &Value, document: usize, line: usize) -> Result<(), ManifestError> {
    let Value::Object(map) = value else {
        let found = match value {
            Value::Array(_) => "a list",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(ManifestError::NotAnObject { document, line, found });
    };
    let present = |k: &str| map.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !present("kind") {
        return Err(ManifestError::MissingKind { document, line, json: canonical_json(value) });
    }
    if !present("apiVersion") {
        return Err(ManifestError::MissingApiVersion { document, line, json: canonical_json(value) });
    }
    Ok(())
}

/// A stream of concatenated JSON values (`kubectl get -o json` output, or several objects).
/// Returns None when the text is not JSON, so that the YAML parser reports the error.
fn parse_json_stream(text: &str) -> Option<Vec<(usize, usize, Value)>> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') && !trimmed.starts_with('[') {
        return None;
    }
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut start = 0;
    while let Some(next) = stream.next() {
        let value = next.ok()?;
        let skipped = text[start..].len() - text[start..].trim_start().len();
        let line = line_of(text, start + skipped);
        start = stream.byte_offset();
        if !value.is_null() {
            out.push((out.len() + 1, line, value));
        }
    }
    Some(out)
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

/// A line that starts a new document: `---` alone or followed by whitespace (content may follow).
fn is_document_start(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// The first line (1-based, relative) that holds content: not blank, not a comment, not a
/// directive, not a bare `---`.
fn first_content_line(chunk: &str) -> Option<usize> {
    chunk.lines().enumerate().find_map(|(i, l)| {
        let body = if is_document_start(l) { &l[3..] } else { l };
        let t = body.trim();
        let empty = t.is_empty() || t.starts_with('#') || l.starts_with('%') || t == "...";
        (!empty).then_some(i + 1)
    })
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // Untyped values: `yes`/`on` stay strings, only true/false are booleans.
        strict_booleans: true,
        // Kubernetes reads YAML 1.1 numbers: `defaultMode: 0644` is octal (420).
        legacy_octal_numbers: true,
        with_snippet: false,
        // Each chunk holds one document, but keep the whole-stream budget roomy too.
        budget: serde_saphyr::budget! { max_documents: 1_000_000 },
    }
}

fn parse_yaml_stream(text: &str) -> Result<Vec<(usize, usize, Value)>, ManifestError> {
    // Chunks: (first line number, text). A chunk runs from a `---` line to the next one.
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_document_start(line) {
            // A chunk with directives but no content belongs to the document that follows.
            let carry = chunks.last().is_some_and(|(_, c)| first_content_line(c).is_none() && c.lines().any(|l| l.starts_with('%')));
            if !carry {
                chunks.push((i + 1, String::new()));
            }
        }
        if let Some((_, c)) = chunks.last_mut() {
            c.push_str(line);
        }
    }
    let mut out = Vec::new();
    for (start, chunk) in chunks {
        let Some(rel) = first_content_line(&chunk) else {
            continue;
        };
        let index = out.len() + 1;
        let line = start + rel - 1;
        let value: Value = serde_saphyr::from_str_with_options(&chunk, yaml_options()).map_err(|e| {
            let e = e.without_snippet();
            let at = e.location().map(|l| l.line() as usize).filter(|&l| l > 0);
            let message = match e {
                // Go's YAML library wording, which is what kubectl users know.
                serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
                    format!("key {k:?} already set in map")
                }
                e => serde_saphyr::MessageFormatter::format_message(&serde_saphyr::DefaultMessageFormatter, e).into_owned(),
            };
            ManifestError::Syntax { document: index, line: at.map_or(line, |l| start + l - 1), message }
        })?;
        if !value.is_null() {
            out.push((index, line, value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // In the style of the tutorial's run-my-nginx.yaml: a `---` marker, then one flow mapping
    // with unquoted keys, trailing commas and closing brackets left of their content.
    const RUN_MY_NGINX: &str = r#"---
{
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: {
    name: "my-nginx",
  },
  spec: {
    selector: { matchLabels: { run: "my-nginx", }, },
    replicas: 2,
    template: {
      metadata: { labels: { run: "my-nginx", }, },
      spec: {
        containers: [{
          name: "my-nginx",
          image: "nginx",
          ports: [{
            containerPort: 80,
          }],
        }],
      },
    },
  },
}
"#;

    #[test]
    fn tutorial_flow_style_with_trailing_commas() {
        let docs = parse_documents(RUN_MY_NGINX).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!((docs[0].index, docs[0].line), (1, 2));
        let d = &docs[0].value;
        assert_eq!(d["metadata"], json!({"name": "my-nginx"}));
        assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"run": "my-nginx"}}));
        assert_eq!(d["spec"]["replicas"], json!(2));
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 80}]));
        // Block style with flow leaves, as users often write it.
        let mixed = "metadata: { name: my-nginx, labels: { run: \"my-nginx\", }, }\nkind: Pod\napiVersion: v1\n";
        assert_eq!(parse_documents(mixed).unwrap()[0].value["metadata"]["labels"]["run"], "my-nginx");
    }

    #[test]
    fn two_flow_documents_like_nginx_secure_app() {
        let text =
            format!("---\n{{\n  apiVersion: \"v1\",\n  kind: \"Service\",\n  metadata: {{ name: \"my-nginx\", }},\n}}\n{}", RUN_MY_NGINX);
        let docs = parse_documents(&text).unwrap();
        let got: Vec<_> = docs.iter().map(|d| (d.index, d.line, d.value["kind"].as_str().unwrap())).collect();
        assert_eq!(got, [(1, 2, "Service"), (2, 8, "Deployment")]);
    }

    #[test]
    fn syntax_error_names_document_and_line() {
        let text =
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# second\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b: c\n";
        let err = parse_documents(text).unwrap_err();
        let ManifestError::Syntax { document, line, ref message } = err else { panic!("{err}") };
        assert_eq!((document, line), (2, 9), "{err}");
        assert!(message.contains("mapping values are not allowed"), "{message}");
        assert!(err.to_string().starts_with("error parsing document 2 (line 9): mapping values are not allowed"), "{err}");
    }

    #[test]
    fn multiple_documents_empty_ones_skipped_and_lines() {
        let text = "# header\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\n\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n...\n";
        let docs = parse_documents(text).unwrap();
        let got: Vec<_> = docs.iter().map(|d| (d.index, d.line, d.value["kind"].as_str().unwrap())).collect();
        assert_eq!(got, [(1, 4, "Service"), (2, 10, "Pod")]);
    }

    #[test]
    fn missing_kind_uses_kubectl_wording() {
        let err = parse_documents("metadata:\n  name: x\n  labels: {b: '<1>', a: z}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"document 1 (line 1): Object 'Kind' is missing in '{"metadata":{"labels":{"a":"z","b":"\u003c1\u003e"},"name":"x"}}'"#
        );
        let err = parse_documents("kind: Pod\n").unwrap_err();
        assert!(matches!(err, ManifestError::MissingApiVersion { .. }), "{err}");
        let err = parse_documents("kind: Pod\nkind: Service\n").unwrap_err();
        assert_eq!(err.to_string(), r#"error parsing document 1 (line 2): key "kind" already set in map"#);
        let err = parse_documents("- a\n").unwrap_err();
        assert!(matches!(err, ManifestError::NotAnObject { found: "a list", .. }), "{err}");
    }

    #[test]
    fn lists_are_expanded() {
        let text =
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n- {apiVersion: v1, kind: Service, metadata: {name: b}}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["kind"], "Service");
        let typed = "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: b}\n";
        assert_eq!(parse_documents(typed).unwrap()[0].value["kind"], "Service");
    }

    #[test]
    fn yaml_scalars_read_like_kubernetes() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: yes, b: on, c: \"1\"}\nmode: 0644\nflag: true\n";
        let v = &parse_documents(text).unwrap()[0].value;
        assert_eq!(v["data"], json!({"a": "yes", "b": "on", "c": "1"}));
        assert_eq!(v["mode"], json!(420));
        assert_eq!(v["flag"], json!(true));
    }

    #[test]
    fn json_streams() {
        let text = "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n\n{\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\"}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.iter().map(|d| (d.index, d.line)).collect::<Vec<_>>(), [(1, 1), (2, 3)]);
    }

    #[test]
    fn two_documents_like_nginx_secure_app() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: my-nginx\n  labels:\n    run: my-nginx\nspec:\n  type: NodePort\n  ports:\n  - port: 8080\n    targetPort: 80\n    protocol: TCP\n    name: http\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-nginx\nspec: {}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.iter().map(|d| (d.index, d.line)).collect::<Vec<_>>(), [(1, 1), (2, 15)]);
    }
}
