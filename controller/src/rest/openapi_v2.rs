//! OpenAPI v2 (Swagger 2.0): `GET /openapi/v2`, one document for the whole API, as kube-apiserver
//! serves it. Its clients: client-go's discovery `OpenAPISchema()`, which asks for gnostic's
//! protobuf (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and which
//! kubectl uses for `explain --output=plaintext-openapiv2` and, in client-side `apply`, to choose
//! the patch type; and whoever asks for JSON (`kubectl get --raw /openapi/v2`, older clients).
//!
//! The content is v3's ([`super::openapi`]) in v2's form: for every kind emu serves, its paths
//! with the operations (`x-kubernetes-action`, `x-kubernetes-group-version-kind`, the
//! `fieldValidation` query parameter on writes, a `body` parameter instead of a request body), and
//! `definitions` keyed as kube-apiserver keys them (`io.k8s.api.core.v1.Pod`), generated from the
//! same Kubernetes types (k8s-openapi's `schemars` implementations). Where v3 wraps a `$ref` that
//! has a description in `allOf`, v2 writes them side by side as kube-apiserver's v2 does
//! (`{"$ref": "#/definitions/…ObjectMeta", "description": "Standard object's metadata…"}`).
//! A kind's definition carries its `x-kubernetes-group-version-kind`, by which kubectl's v2 code
//! finds it. As in v3, the patch operations do not offer `application/strategic-merge-patch+json`
//! (`openapi::PATCH_TYPES`): kubectl's `apply` then keeps computing strategic merges
//! from its compiled-in types, which know the merge keys these schemas lack.
//!
//! The protobuf form is decoded from the JSON one, as kube-apiserver does (kube-openapi parses its
//! JSON with gnostic and marshals that), into our own subset of gnostic's messages
//! ([`emu_proto::openapi_v2`], `proto/proto/openapiv2.proto`): so both forms say the same, and
//! the JSON is the one place the document is decided. Vendor extensions are gnostic's `NamedAny`,
//! their value as YAML text. Both forms share one ETag (the JSON's SHA-512, upper-case hex, as
//! kube-apiserver's; its answer varies by Accept). The document is generated for each request, as
//! v3's are.

use super::openapi::{document_path, gvk, kind_schema, own_kind_schema, schema_name, PATCH_TYPES};
use emu_api::kinds::{ResourceKind, KINDS};
use emu_proto::openapi_v2 as pb;
use serde_json::{json, Map, Value};

/// What kube-apiserver answers protobuf in (the form clients ask for, with `@`, is not a valid
/// media type; kube-openapi answers with this one for both).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The form a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// gnostic's `openapi.v2.Document`.
    Protobuf,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => PROTOBUF,
        }
    }
}

/// The form to answer `accept` in, as kube-openapi's handler chooses: the clauses by quality
/// (then the more specific first), the first that names JSON or one of the protobuf forms, or a
/// wildcard (JSON); none, or an empty header, is `*/*`. None: 406.
pub fn negotiate(accept: &str) -> Option<Format> {
    let accept = if accept.trim().is_empty() { "*/*" } else { accept };
    let mut clauses: Vec<(f32, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let (kind, subtype) = match parts.next()?.trim() {
                "*" => ("*", "*"),
                range => range.split_once('/').map(|(t, s)| (t.trim(), s.trim()))?,
            };
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "q")
                .map_or(1.0, |(_, q)| q.trim().parse().unwrap_or(0.0));
            (quality > 0.0).then_some((quality, kind, subtype))
        })
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1 == "*").cmp(&(b.1 == "*"))).then((a.2 == "*").cmp(&(b.2 == "*"))));
    clauses.into_iter().find_map(|(_, kind, subtype)| match (kind, subtype) {
        ("application" | "*", "json" | "*") => Some(Format::Json),
        ("application", "com.github.proto-openapi.spec.v2@v1.0+protobuf" | "com.github.proto-openapi.spec.v2.v1.0+protobuf") => {
            Some(Format::Protobuf)
        }
        _ => None,
    })
}

/// The document in `format`, and its ETag (unquoted).
pub fn serve(format: Format) -> (Vec<u8>, String) {
    let doc = document();
    let text = doc.to_string();
    let digest = ring::digest::digest(&ring::digest::SHA512, text.as_bytes());
    let etag = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let body = match format {
        Format::Json => text.into_bytes(),
        Format::Protobuf => prost::Message::encode_to_vec(&to_protobuf(&doc)),
    };
    (body, etag)
}

/// The Swagger 2.0 document of the whole API.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut generator = generator();
    let mut definitions = Map::new();
    let mut kinds_defined = Vec::new();
    for rk in KINDS {
        paths.extend(kind_paths(rk));
        match kind_schema(&mut generator, rk) {
            Some(defined) => kinds_defined.push((defined, gvk(rk))),
            None => {
                definitions.insert(schema_name(rk), own_kind_schema(rk));
            }
        }
    }
    // The body of every patch operation, as kube-apiserver's.
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
    definitions.extend(generator.take_definitions(true));
    for (name, gvk) in kinds_defined {
        if let Some(Value::Object(o)) = definitions.get_mut(&name) {
            o.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": emu_logic::cluster::KUBERNETES_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// A schema generator writing Swagger 2.0's form: references to `#/definitions/`, and a `$ref`
/// keeping its siblings (v3's settings wrap it in `allOf` when it has a description; kube's v2
/// puts them side by side).
fn generator() -> schemars::SchemaGenerator {
    use schemars::transform::{ReplaceBoolSchemas, ReplaceUnevaluatedProperties};
    schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
            let mut bools = ReplaceBoolSchemas::default();
            bools.skip_additional_properties = true;
            s.transforms = vec![Box::new(ReplaceUnevaluatedProperties::default()), Box::new(bools)];
        })
        .into_generator()
}

/// The paths of a kind: its collection (`list`, `post`) and its objects (`get`, `put`, `patch`,
/// `delete`), with the path parameters beside the operations, as kube-apiserver writes them.
fn kind_paths(rk: &ResourceKind) -> Map<String, Value> {
    let gvk = gvk(rk);
    let object = json!({"$ref": format!("#/definitions/{}", schema_name(rk))});
    let prefix = format!("/{}", document_path(rk.group, rk.version));
    let collection =
        if rk.namespaced { format!("{prefix}/namespaces/{{namespace}}/{}", rk.plural) } else { format!("{prefix}/{}", rk.plural) };
    let op = |action: &str, consumes: &[&str], parameters: Vec<Value>| {
        let mut op = json!({
            "operationId": format!("{action}{}", rk.kind),
            "produces": ["application/json"],
            "schemes": ["https"],
            "responses": {"200": {"description": "OK", "schema": object}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        });
        if !consumes.is_empty() {
            op["consumes"] = json!(consumes);
        }
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        op
    };
    let body = |schema: &Value| json!({"name": "body", "in": "body", "required": true, "schema": schema});
    let patch_body = json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"});
    let writes = |body: Value, force: bool| {
        let mut parameters = vec![body, query_parameter("dryRun"), query_parameter("fieldManager"), query_parameter("fieldValidation")];
        if force {
            parameters.push(query_parameter("force"));
        }
        parameters
    };
    let namespace = json!({"name": "namespace", "in": "path", "required": true, "type": "string", "uniqueItems": true,
                           "description": "object name and auth scope, such as for teams and projects"});
    let name = json!({"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true,
                      "description": format!("name of the {}", rk.kind)});
    let scope: Vec<Value> = if rk.namespaced { vec![namespace] } else { vec![] };
    let mut named = scope.clone();
    named.insert(0, name);
    let mut paths = Map::new();
    let mut list = json!({
        "get": op("list", &[], vec![]),
        "post": op("post", &["*/*"], writes(body(&object), false)),
    });
    if !scope.is_empty() {
        list["parameters"] = Value::Array(scope);
    }
    paths.insert(collection.clone(), list);
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": op("get", &[], vec![]),
            "put": op("put", &["*/*"], writes(body(&object), false)),
            "patch": op("patch", PATCH_TYPES, writes(body(&patch_body), true)),
            "delete": op("delete", &[], vec![]),
            "parameters": named,
        }),
    );
    paths
}

/// A query parameter as kube-apiserver's v2 writes them.
fn query_parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "type": "string", "uniqueItems": true})
}

// The JSON document decoded into gnostic's messages, as kube-openapi's `ToProtoBinary` does. Only
// what `document` writes is read; a schema keyword it does not know is left out (a unit test
// checks that the document has none).

/// The document as gnostic's `openapi.v2.Document`.
pub fn to_protobuf(doc: &Value) -> pb::Document {
    pb::Document {
        swagger: text(doc, "swagger"),
        info: Some(pb::Info { title: text(&doc["info"], "title"), version: text(&doc["info"], "version") }),
        paths: Some(pb::Paths {
            path: entries(doc.get("paths"))
                .map(|(name, item)| pb::NamedPathItem { name: name.clone(), value: Some(path_item(item)) })
                .collect(),
        }),
        definitions: Some(pb::Definitions { additional_properties: named_schemas(doc.get("definitions")) }),
    }
}

/// The entries of a JSON object (none for anything else).
fn entries(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object).into_iter().flatten()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn path_item(item: &Value) -> pb::PathItem {
    let operation = |method: &str| item.get(method).map(operation);
    pb::PathItem {
        get: operation("get"),
        put: operation("put"),
        post: operation("post"),
        delete: operation("delete"),
        patch: operation("patch"),
        parameters: parameters(item.get("parameters")),
    }
}

fn operation(op: &Value) -> pb::Operation {
    let responses = entries(op.get("responses"))
        .map(|(code, response)| pb::NamedResponseValue {
            name: code.clone(),
            value: Some(pb::ResponseValue {
                oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                    description: text(response, "description"),
                    schema: response.get("schema").map(|s| pb::SchemaItem { oneof: Some(pb::schema_item::Oneof::Schema(schema(s))) }),
                })),
            }),
        })
        .collect();
    pb::Operation {
        operation_id: text(op, "operationId"),
        produces: strings(op.get("produces")),
        consumes: strings(op.get("consumes")),
        parameters: parameters(op.get("parameters")),
        responses: Some(pb::Responses { response_code: responses }),
        schemes: strings(op.get("schemes")),
        vendor_extension: extensions(op),
    }
}

fn parameters(list: Option<&Value>) -> Vec<pb::ParametersItem> {
    use pb::non_body_parameter::Oneof as NonBody;
    let parameter = |p: &Value| {
        let (required, unique_items) = (p["required"].as_bool().unwrap_or(false), p["uniqueItems"].as_bool().unwrap_or(false));
        let (name, description, location, kind) = (text(p, "name"), text(p, "description"), text(p, "in"), text(p, "type"));
        let non_body = |oneof| pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter { oneof: Some(oneof) });
        match location.as_str() {
            "body" => pb::parameter::Oneof::BodyParameter(pb::BodyParameter {
                description,
                name,
                r#in: location,
                required,
                schema: p.get("schema").map(schema),
            }),
            "path" => non_body(NonBody::PathParameterSubSchema(pb::PathParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
                r#type: kind,
                unique_items,
            })),
            _ => non_body(NonBody::QueryParameterSubSchema(pb::QueryParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
                r#type: kind,
                unique_items,
            })),
        }
    };
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| pb::ParametersItem { oneof: Some(pb::parameters_item::Oneof::Parameter(pb::Parameter { oneof: Some(parameter(p)) })) })
        .collect()
}

fn named_schemas(map: Option<&Value>) -> Vec<pb::NamedSchema> {
    entries(map).map(|(name, s)| pb::NamedSchema { name: name.clone(), value: Some(schema(s)) }).collect()
}

/// A schema, with the keywords the Kubernetes types' schemas use.
fn schema(s: &Value) -> pb::Schema {
    let additional = s.get("additionalProperties").and_then(|a| match a {
        Value::Bool(b) => Some(pb::additional_properties_item::Oneof::Boolean(*b)),
        Value::Object(_) => Some(pb::additional_properties_item::Oneof::Schema(Box::new(schema(a)))),
        _ => None,
    });
    let types = match s.get("type") {
        Some(Value::String(t)) => Some(pb::TypeItem { value: vec![t.clone()] }),
        Some(t @ Value::Array(_)) => Some(pb::TypeItem { value: strings(Some(t)) }),
        _ => None,
    };
    let items = match s.get("items") {
        Some(Value::Array(list)) => Some(pb::ItemsItem { schema: list.iter().map(schema).collect() }),
        Some(one @ Value::Object(_)) => Some(pb::ItemsItem { schema: vec![schema(one)] }),
        _ => None,
    };
    pb::Schema {
        r#ref: text(s, "$ref"),
        format: text(s, "format"),
        description: text(s, "description"),
        required: strings(s.get("required")),
        additional_properties: additional.map(|oneof| Box::new(pb::AdditionalPropertiesItem { oneof: Some(oneof) })),
        r#type: types,
        items,
        properties: s.get("properties").map(|p| pb::Properties { additional_properties: named_schemas(Some(p)) }),
        vendor_extension: extensions(s),
    }
}

/// The `x-…` keys of an object as gnostic's `NamedAny`s: the value as YAML text (go-yaml's
/// block style, as gnostic writes it).
fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    entries(Some(v))
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny { name: k.clone(), value: Some(pb::Any { yaml: emu_kubectl::to_yaml(v) }) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every schema in `doc`'s definitions, nested ones included, with where it is.
    fn schemas(doc: &Value) -> Vec<(String, &Value)> {
        fn walk<'a>(at: String, s: &'a Value, out: &mut Vec<(String, &'a Value)>) {
            for (k, v) in entries(s.get("properties")) {
                walk(format!("{at}.{k}"), v, out);
            }
            for key in ["items", "additionalProperties"] {
                if let Some(v @ Value::Object(_)) = s.get(key) {
                    walk(format!("{at}.{key}"), v, out);
                }
            }
            out.push((at, s));
        }
        let mut out = Vec::new();
        for (name, s) in entries(doc.get("definitions")) {
            walk(name.clone(), s, &mut out);
        }
        out
    }

    #[test]
    fn the_document_is_swagger_2_with_every_kind_and_resolving_references() {
        let doc = document();
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"], json!({"title": "Kubernetes", "version": emu_logic::cluster::KUBERNETES_VERSION}));
        let definitions = doc["definitions"].as_object().unwrap();
        let pod = &definitions["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Pod"}]));
        // v2's form of a described reference: side by side, no allOf.
        let spec = &pod["properties"]["spec"];
        assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert!(spec["description"].as_str().unwrap().starts_with("Specification of the desired behavior of the pod"));
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["items"]["$ref"], "#/definitions/io.k8s.api.core.v1.Container");
        let ports = &definitions["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["items"]["$ref"], "#/definitions/io.k8s.api.core.v1.ContainerPort");
        assert_eq!(definitions["io.k8s.api.core.v1.ContainerPort"]["required"], json!(["containerPort"]));
        assert!(definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]["description"].is_string());
        // Every kind served has its definition, found by its group, version and kind.
        for rk in KINDS {
            let definition = &definitions[&schema_name(rk)];
            assert_eq!(definition["x-kubernetes-group-version-kind"], json!([gvk(rk)]), "{}", rk.kind);
        }
        // Every reference resolves, and no schema has what kubectl's v2 parser refuses or this
        // module's protobuf leaves out.
        let known = ["$ref", "description", "type", "format", "items", "properties", "required", "additionalProperties"];
        for (at, s) in schemas(&doc) {
            for (key, value) in s.as_object().unwrap() {
                assert!(known.contains(&key.as_str()) || key.starts_with("x-"), "{at}: {key}");
                if key == "$ref" {
                    let target = value.as_str().unwrap().strip_prefix("#/definitions/").unwrap_or_else(|| panic!("{at}: {value}"));
                    assert!(definitions.contains_key(target), "{at}: {target}");
                    assert!(s.get("type").is_none() && s.get("properties").is_none(), "{at}");
                }
            }
            if s["type"] == "array" {
                assert!(s["items"].is_object(), "{at}");
            }
            assert!(s.get("type").is_none_or(Value::is_string), "{at}");
        }
        // The paths: every reference resolves, and every key is one the protobuf carries.
        let keys = |v: &Value| v.as_object().unwrap().keys().filter(|k| !k.starts_with("x-")).cloned().collect::<Vec<String>>();
        let parameter_keys = ["name", "in", "required", "type", "uniqueItems", "description", "schema"];
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(keys(item).iter().all(|k| ["get", "put", "post", "delete", "patch", "parameters"].contains(&k.as_str())), "{path}");
            for (method, op) in item.as_object().unwrap().iter().filter(|(m, _)| *m != "parameters") {
                let known = ["operationId", "produces", "consumes", "parameters", "responses", "schemes"];
                assert!(keys(op).iter().all(|k| known.contains(&k.as_str())), "{path} {method}: {:?}", keys(op));
                let parameters = op["parameters"].as_array().into_iter().chain(item["parameters"].as_array()).flatten();
                let mut references = vec![&op["responses"]["200"]["schema"]["$ref"]];
                for p in parameters {
                    assert!(keys(p).iter().all(|k| parameter_keys.contains(&k.as_str())), "{path} {method}: {p}");
                    references.push(&p["schema"]["$ref"]);
                }
                for r in references.into_iter().filter_map(Value::as_str) {
                    assert!(definitions.contains_key(r.trim_start_matches("#/definitions/")), "{path} {method}: {r}");
                }
            }
        }
    }

    #[test]
    fn the_patch_of_pods_offers_field_validation_and_no_strategic_merge() {
        let doc = document();
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            (patch["x-kubernetes-action"].as_str(), &patch["x-kubernetes-group-version-kind"]),
            (Some("patch"), &json!({"group": "", "version": "v1", "kind": "Pod"}))
        );
        let parameters = patch["parameters"].as_array().unwrap();
        assert!(parameters.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query" && p["type"] == "string"));
        let body = parameters.iter().find(|p| p["in"] == "body").unwrap();
        assert_eq!(body["schema"]["$ref"], "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
        let consumes = patch["consumes"].as_array().unwrap();
        assert!(
            consumes.contains(&json!("application/merge-patch+json"))
                && !consumes.contains(&json!("application/strategic-merge-patch+json"))
        );
        let names: Vec<&Value> = item["parameters"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
        assert_eq!(names, [&json!("name"), &json!("namespace")]);
        for method in ["put", "post"] {
            let path = if method == "post" { "/api/v1/namespaces/{namespace}/pods" } else { "/api/v1/namespaces/{namespace}/pods/{name}" };
            assert!(
                doc["paths"][path][method]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"),
                "{method}"
            );
        }
        // Cluster-scoped kinds have no namespace; other groups under /apis.
        assert_eq!(doc["paths"]["/api/v1/nodes/{name}"]["parameters"].as_array().unwrap().len(), 1);
        assert_eq!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["get"]["x-kubernetes-action"], "get");
    }

    #[test]
    fn the_protobuf_decodes_to_the_same_document() {
        let (body, etag) = serve(Format::Protobuf);
        let (json_body, json_etag) = serve(Format::Json);
        assert_eq!((etag.len(), &etag), (128, &json_etag));
        let doc: Value = serde_json::from_slice(&json_body).unwrap();
        let decoded = pb::Document::decode(body.as_slice()).unwrap();
        assert_eq!(decoded, to_protobuf(&doc));
        assert_eq!((decoded.swagger.as_str(), decoded.info.as_ref().unwrap().title.as_str()), ("2.0", "Kubernetes"));
        // A kind's definition, its GVK as YAML (what kubectl reads back with a YAML decoder).
        let definitions = &decoded.definitions.as_ref().unwrap().additional_properties;
        let pod = definitions.iter().find(|d| d.name == "io.k8s.api.core.v1.Pod").unwrap().value.as_ref().unwrap();
        let gvk = pod.vendor_extension.iter().find(|e| e.name == "x-kubernetes-group-version-kind").unwrap();
        assert_eq!(gvk.value.as_ref().unwrap().yaml, "- group: \"\"\n  kind: Pod\n  version: v1\n");
        let spec =
            pod.properties.as_ref().unwrap().additional_properties.iter().find(|p| p.name == "spec").unwrap().value.as_ref().unwrap();
        assert_eq!(spec.r#ref, "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert!(spec.description.starts_with("Specification of the desired behavior"));
        // The patch of pods: the body, fieldValidation, and the operation's GVK.
        let paths = &decoded.paths.as_ref().unwrap().path;
        let item = paths.iter().find(|p| p.name == "/api/v1/namespaces/{namespace}/pods/{name}").unwrap().value.as_ref().unwrap();
        let patch = item.patch.as_ref().unwrap();
        let gvk = patch.vendor_extension.iter().find(|e| e.name == "x-kubernetes-group-version-kind").unwrap();
        assert_eq!(gvk.value.as_ref().unwrap().yaml, "group: \"\"\nkind: Pod\nversion: v1\n");
        let query: Vec<&str> = patch
            .parameters
            .iter()
            .filter_map(|p| match &p.oneof {
                Some(pb::parameters_item::Oneof::Parameter(pb::Parameter { oneof: Some(pb::parameter::Oneof::NonBodyParameter(n)) })) => {
                    match &n.oneof {
                        Some(pb::non_body_parameter::Oneof::QueryParameterSubSchema(q)) => Some(q.name.as_str()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        assert_eq!(query, ["dryRun", "fieldManager", "fieldValidation", "force"]);
        assert!(matches!(
            &patch.parameters[0].oneof,
            Some(pb::parameters_item::Oneof::Parameter(pb::Parameter { oneof: Some(pb::parameter::Oneof::BodyParameter(b)) })) if b.name == "body" && b.required
        ));
    }

    #[test]
    fn accept_headers_as_kube_openapi_reads_them() {
        let client_go = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        assert_eq!(negotiate(client_go), Some(Format::Protobuf));
        assert_eq!(negotiate(PROTOBUF), Some(Format::Protobuf));
        assert_eq!(negotiate("application/json"), Some(Format::Json));
        assert_eq!(negotiate(""), Some(Format::Json));
        assert_eq!(negotiate("*/*"), Some(Format::Json));
        assert_eq!(negotiate("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"), Some(Format::Protobuf));
        assert_eq!(negotiate("*/*, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"), Some(Format::Protobuf));
        assert_eq!(negotiate("text/html"), None);
        assert_eq!(negotiate("application/yaml, application/json;q=0"), None);
    }
}
