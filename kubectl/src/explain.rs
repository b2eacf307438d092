//! `kubectl explain RESOURCE[.FIELD…] [--recursive]` from an OpenAPI v3 document, as kubectl
//! 1.32 renders it (its `explain/v2` plaintext template): the kind's header, the description of
//! the schema the field path leads to, and its fields (with their descriptions, or the whole tree
//! of names and types with `--recursive`). Pure: the CLI fetches the group version's document
//! from the API server (`/openapi/v3/apis/apps/v1`), as kubectl does.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// What explain is asked for: the kind's group, version and resource, and the fields below it.
pub struct Request<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub field_path: &'a [String],
    pub recursive: bool,
}

/// Why explain prints no explanation, in kubectl's words (the CLI prefixes `error: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("GVR ({0}) not found in OpenAPI schema")]
    NoResource(String),
    #[error("GVK {0} not found in OpenAPI schema")]
    NoKind(String),
    /// The header was printed before kubectl found that the field is missing: `printed`.
    #[error("field {field:?} does not exist")]
    NoField { printed: String, field: String },
}

/// The explanation of `request` in `document` (the group version's OpenAPI v3 document).
pub fn explain(document: &Value, request: &Request) -> Result<String, ExplainError> {
    let gvk = find_gvk(document, request).ok_or_else(|| {
        let group_version =
            if request.group.is_empty() { request.version.to_string() } else { format!("{}/{}", request.group, request.version) };
        ExplainError::NoResource(format!("{group_version}, Resource={}", request.resource))
    })?;
    let str_of = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or("");
    let mut out = String::new();
    if !str_of("group").is_empty() {
        out.push_str(&format!("GROUP:      {}\n", str_of("group")));
    }
    out.push_str(&format!("KIND:       {}\n", str_of("kind")));
    out.push_str(&format!("VERSION:    {}\n", str_of("version")));
    out.push('\n');
    let schemas = document.pointer("/components/schemas").and_then(Value::as_object);
    // A map ranges in key order in Go's templates: the first schema of the kind.
    let mut names: Vec<&String> = schemas.map(|s| s.keys().collect()).unwrap_or_default();
    names.sort();
    let schema = names
        .into_iter()
        .filter_map(|n| schemas.and_then(|s| s.get(n)))
        .find(|s| s.get("x-kubernetes-group-version-kind").and_then(Value::as_array).is_some_and(|l| l.iter().any(|g| same_gvk(g, &gvk))))
        .ok_or_else(|| {
            ExplainError::NoKind(
                format!("{}/{}, Kind={}", str_of("group"), str_of("version"), str_of("kind")).trim_start_matches('/').to_string(),
            )
        })?;
    let ctx = Ctx { document, recursive: request.recursive };
    let body = ctx.output(schema, &BTreeSet::new(), request.field_path);
    if body.is_empty() {
        let field = request.field_path.last().cloned().unwrap_or_default();
        return Err(ExplainError::NoField { printed: out, field });
    }
    out.push_str(&body);
    out.push('\n');
    Ok(out)
}

/// The group, version and kind of the resource's operations (its list or object paths).
fn find_gvk(document: &Value, r: &Request) -> Option<Map<String, Value>> {
    let prefix = if r.group.is_empty() { "/api".to_string() } else { format!("/apis/{}", r.group) };
    let paths = [
        format!("{prefix}/{}/{}", r.version, r.resource),
        format!("{prefix}/{}/{}/{{name}}", r.version, r.resource),
        format!("{prefix}/{}/namespaces/{{namespace}}/{}", r.version, r.resource),
        format!("{prefix}/{}/namespaces/{{namespace}}/{}/{{name}}", r.version, r.resource),
    ];
    paths.iter().filter_map(|p| document.get("paths")?.get(p)).find_map(|element| {
        ["get", "post", "put", "patch", "delete"]
            .iter()
            .find_map(|m| element.get(*m)?.get("x-kubernetes-group-version-kind")?.as_object().cloned())
    })
}

fn same_gvk(a: &Value, b: &Map<String, Value>) -> bool {
    ["group", "version", "kind"]
        .iter()
        .all(|k| a.get(*k).and_then(Value::as_str).unwrap_or("") == b.get(*k).and_then(Value::as_str).unwrap_or(""))
}

/// Go templates' truth: a value that is not null, false, 0, "", or an empty list or map.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Bool(true)) => true,
    }
}

/// A schema's `additionalProperties` when it is a schema (not `true`/`false`).
fn map_values(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|v| truthy(Some(v)) && !v.is_boolean())
}

fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|v| truthy(Some(v)))
}

fn all_of(schema: &Value) -> &[Value] {
    schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

struct Ctx<'a> {
    document: &'a Value,
    recursive: bool,
}

impl<'a> Ctx<'a> {
    /// `resolveRef`: the schema `#/components/schemas/NAME` names.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let name = reference.strip_prefix("#/components/schemas/")?;
        self.document.pointer("/components/schemas")?.get(name)
    }

    /// The template's `output`: follows the field path, then describes what it leads to.
    fn output(&self, schema: &'a Value, history: &BTreeSet<String>, path: &[String]) -> String {
        let reference = schema.get("$ref").and_then(Value::as_str).unwrap_or("");
        let mut next = history.clone();
        next.insert(reference.to_string());
        let resolved = self.resolve(reference).unwrap_or(schema);
        let mut out = String::new();
        if path.is_empty() {
            out.push_str("DESCRIPTION:\n");
            let description = self.description(resolved);
            let description = if description.is_empty() { "<empty>".to_string() } else { description };
            out.push_str(&indent(&wrap(&description, 76), 4));
            out.push('\n');
            let docs = external_docs(resolved, 0);
            if !docs.is_empty() {
                out.push('\n');
                out.push_str(&docs);
            }
            // A new context in the template: no history.
            let fields = self.field_list(resolved, 1, &BTreeSet::new());
            if !fields.is_empty() {
                out.push_str("FIELDS:\n");
                out.push_str(&fields);
            }
        } else if !reference.is_empty() && history.contains(reference) {
            // A cycle: nothing.
        } else if let Some(sub) = resolved.get("properties").and_then(|p| p.get(&path[0])) {
            if path.len() == 1 {
                out.push_str(&format!("FIELD: {} <{}>\n", path[0], self.type_guess(sub)));
                out.push_str(&extract_enum(sub, true, -1, 0));
                out.push('\n');
                out.push('\n');
            }
            out.push_str(&self.output(sub, &BTreeSet::new(), &path[1..]));
        } else if let Some(items) = items(resolved) {
            out.push_str(&self.output(items, &next, path));
        } else if let Some(values) = map_values(resolved) {
            out.push_str(&self.output(values, &next, path));
        } else {
            for sub in all_of(resolved) {
                let text = self.output(sub, &next, path);
                if !text.is_empty() {
                    out.push_str(&text);
                    break;
                }
            }
        }
        out
    }

    /// The template's `description`: the schema's, then its allOf's, items' and map values'.
    fn description(&self, schema: &'a Value) -> String {
        let s = schema.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)).unwrap_or(schema);
        let mut out = String::new();
        if let Some(d) = s.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
            out.push_str(d);
            out.push('\n');
        }
        for sub in all_of(s) {
            out.push_str(&self.description(sub));
        }
        if let Some(items) = items(s) {
            out.push_str(&self.description(items));
        }
        if let Some(values) = map_values(s) {
            out.push_str(&self.description(values));
        }
        out
    }

    /// The template's `fieldList`: each property (in name order) with its type and description,
    /// or with `--recursive` the properties' own fields below it, a cycle cut where it closes.
    fn field_list(&self, schema: &'a Value, level: usize, history: &BTreeSet<String>) -> String {
        let reference = schema.get("$ref").and_then(Value::as_str).unwrap_or("");
        if !reference.is_empty() && history.contains(reference) {
            return String::new();
        }
        let mut next = history.clone();
        next.insert(reference.to_string());
        let resolved = self.resolve(reference).unwrap_or(schema);
        let mut out = String::new();
        if let Some(properties) = resolved.get("properties").and_then(Value::as_object) {
            let mut names: Vec<&String> = properties.keys().collect();
            names.sort();
            for name in names {
                out.push_str(&self.field_detail(name, resolved, level));
                if self.recursive {
                    out.push_str(&self.field_list(&properties[name], level + 1, &next));
                }
            }
        }
        for sub in all_of(resolved) {
            out.push_str(&self.field_list(sub, level, &next));
        }
        if let Some(items) = items(resolved) {
            out.push_str(&self.field_list(items, level, &next));
        }
        if let Some(values) = map_values(resolved) {
            out.push_str(&self.field_list(values, level, &next));
        }
        out
    }

    /// The template's `fieldDetail`: `name\t<type>` (` -required-`), then unless recursive its
    /// description wrapped below it.
    fn field_detail(&self, name: &str, parent: &'a Value, level: usize) -> String {
        let indent_by = level * 2;
        let field = &parent["properties"][name];
        let mut out = format!("{}\t<{}>", indent(name, indent_by), self.type_guess(field));
        let required = parent.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(|n| n == name));
        if required {
            out.push_str(" -required-");
        }
        out.push_str(&extract_enum(field, false, 4, indent_by));
        out.push('\n');
        if !self.recursive {
            let description = field.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()).unwrap_or("<no description>");
            out.push_str(&indent(&wrap(description, 78 - indent_by), indent_by + 2));
            out.push('\n');
            out.push_str(&external_docs(field, indent_by + 2));
            out.push('\n');
        }
        out
    }

    /// The template's `typeGuess`: `string`, `integer`, `Object`, `[]Container`,
    /// `map[string]string`, or the name of the schema a `$ref` points to.
    fn type_guess(&self, schema: &'a Value) -> String {
        let all = all_of(schema);
        if let Some(items) = items(schema) {
            return format!("[]{}", self.type_guess(items));
        }
        if let Some(values) = map_values(schema) {
            return format!("map[string]{}", self.type_guess(values));
        }
        if !all.is_empty() && !truthy(schema.get("properties")) && all.len() == 1 {
            return self.type_guess(&all[0]);
        }
        let type_of = |s: &Value| s.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            let target = self.resolve(reference);
            return match target.map(type_of) {
                None => short_name(reference),
                Some(t) if t.is_empty() || t == "object" => short_name(reference),
                Some(t) => t,
            };
        }
        match type_of(schema).as_str() {
            "object" | "" => "Object".into(),
            t => t.into(),
        }
    }
}

/// `io.k8s.api.apps.v1.DeploymentStrategy` of `#/components/schemas/…` → `DeploymentStrategy`.
fn short_name(reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or("");
    let last = name.rsplit('.').next().unwrap_or("");
    if last.is_empty() {
        "Object".into()
    } else {
        last.into()
    }
}

/// The template's `externalDocs`, at `indent_by`.
fn external_docs(schema: &Value, indent_by: usize) -> String {
    let Some(docs) = schema.get("externalDocs").filter(|d| truthy(Some(d))) else { return String::new() };
    let mut out = indent("EXTERNAL DOCS:", indent_by);
    out.push('\n');
    if let Some(d) = docs.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
        out.push_str(&indent(&wrap(d, 76 - indent_by), indent_by + 2));
        out.push('\n');
    }
    if let Some(url) = docs.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        out.push_str(&indent(&format!("URL: {url}"), indent_by + 2));
        out.push('\n');
    }
    out
}

/// The template's `extractEnum`: `ENUM:` and a value a line (the field's own view), or
/// `\n<indent>enum: a, b, c, d, ....` in a list of fields.
fn extract_enum(schema: &Value, long_view: bool, limit: i64, indent_by: usize) -> String {
    let Some(values) = schema.get("enum").and_then(Value::as_array).filter(|e| !e.is_empty()) else { return String::new() };
    let mut out = if long_view { "ENUM:".to_string() } else { format!("\n{}enum: ", " ".repeat(indent_by)) };
    for (index, value) in values.iter().enumerate() {
        if limit > -1 && index as i64 >= limit {
            out.push_str(", ....");
            break;
        }
        if long_view {
            out.push_str("\n    ");
        } else if index > 0 {
            out.push_str(", ");
        }
        match value {
            Value::String(s) if s.is_empty() => out.push_str("\"\""),
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// sprig's `indent`: `n` spaces before every line (after every newline, so a trailing
/// newline leaves an indented empty line).
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    format!("{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// go-wordwrap's `WrapString` (kubectl's `wrap`): breaks lines at spaces so that they are at
/// most `limit` characters when words allow, keeping the text's own newlines; a longer word
/// stays whole.
pub fn wrap(text: &str, limit: usize) -> String {
    let mut buf = String::with_capacity(text.len());
    let (mut current, mut word_len, mut space_len) = (0usize, 0usize, 0usize);
    let (mut word, mut space) = (String::new(), String::new());
    for c in text.chars() {
        if c == '\n' {
            if word.is_empty() {
                // Trailing spaces stay if they fit.
                if current + space_len <= limit {
                    buf.push_str(&space);
                }
            } else {
                buf.push_str(&space);
                buf.push_str(&word);
                word.clear();
                word_len = 0;
            }
            space.clear();
            space_len = 0;
            buf.push(c);
            current = 0;
        } else if c.is_whitespace() && c != '\u{a0}' {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                buf.push_str(&space);
                buf.push_str(&word);
                space.clear();
                space_len = 0;
                word.clear();
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + space_len + word_len > limit && word_len < limit {
                buf.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= limit {
            buf.push_str(&space);
        }
    } else {
        buf.push_str(&space);
        buf.push_str(&word);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document() -> Value {
        json!({
            "paths": {"/apis/apps/v1/namespaces/{namespace}/deployments": {"get": {
                "x-kubernetes-group-version-kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}}},
            "components": {"schemas": {
                "io.k8s.api.apps.v1.Deployment": {
                    "description": "Deployment enables declarative updates for Pods and ReplicaSets.",
                    "type": "object",
                    "properties": {
                        "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}],
                            "description": "Specification of the desired behavior of the Deployment."},
                        "kind": {"type": "string", "description": "Kind is a string value."}},
                    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Deployment"}]},
                "io.k8s.api.apps.v1.DeploymentSpec": {
                    "description": "DeploymentSpec is the specification of the desired behavior of the Deployment.",
                    "type": "object",
                    "required": ["selector"],
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32", "description": "Number of desired pods."},
                        "selector": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Labels."},
                        "strategy": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}],
                            "description": "The deployment strategy to use to replace existing pods with new ones."}}},
                "io.k8s.api.apps.v1.DeploymentStrategy": {
                    "description": "DeploymentStrategy describes how to replace existing pods with new ones.",
                    "type": "object",
                    "properties": {"type": {"type": "string", "description": "Type of deployment.", "enum": ["Recreate", "RollingUpdate"]}}}}}
        })
    }

    fn request<'a>(path: &'a [String], recursive: bool) -> Request<'a> {
        Request { group: "apps", version: "v1", resource: "deployments", field_path: path, recursive }
    }

    #[test]
    fn a_field_is_explained_as_kubectl_explains_it() {
        let path = ["spec".to_string(), "strategy".to_string()];
        let text = explain(&document(), &request(&path, false)).unwrap();
        assert_eq!(
            text,
            "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\n\
             FIELD: strategy <DeploymentStrategy>\n\n\n\
             DESCRIPTION:\n    The deployment strategy to use to replace existing pods with new ones.\n    \
             DeploymentStrategy describes how to replace existing pods with new ones.\n    \n\
             FIELDS:\n  type\t<string>\n  enum: Recreate, RollingUpdate\n    Type of deployment.\n\n\n"
        );
    }

    #[test]
    fn recursive_lists_every_field_below() {
        let text = explain(&document(), &request(&[], true)).unwrap();
        assert!(
            text.ends_with(
                "FIELDS:\n  kind\t<string>\n  spec\t<DeploymentSpec>\n    replicas\t<integer>\n    selector\t<map[string]string> -required-\n    \
                 strategy\t<DeploymentStrategy>\n      type\t<string>\n      enum: Recreate, RollingUpdate\n\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_missing_field_is_named_after_the_header() {
        let path = ["spec".to_string(), "foo".to_string()];
        match explain(&document(), &request(&path, false)) {
            Err(ExplainError::NoField { printed, field }) => {
                assert_eq!(printed, "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\n");
                assert_eq!(field, "foo");
            }
            other => panic!("{other:?}"),
        }
        let none = Request { group: "apps", version: "v1", resource: "nope", field_path: &[], recursive: false };
        assert_eq!(explain(&document(), &none).unwrap_err().to_string(), "GVR (apps/v1, Resource=nope) not found in OpenAPI schema");
    }

    #[test]
    fn text_wraps_as_go_wordwrap_wraps_it() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("one\ntwo three", 8), "one\ntwo\nthree");
        assert_eq!(wrap("https://a.very.long/url here", 10), "https://a.very.long/url\nhere");
        assert_eq!(indent("a\nb\n", 4), "    a\n    b\n    ");
    }
}
