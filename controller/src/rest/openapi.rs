//! OpenAPI v3, as far as kubectl reads it today: `GET /openapi/v3` lists one document per group
//! version, and each document has, for every kind emu serves, its paths with the operations
//! kubectl probes. kubectl's default `--validate=strict` asks whether the server checks fields
//! itself: it finds the first path whose `patch` operation carries the kind's
//! `x-kubernetes-group-version-kind` and looks for a `fieldValidation` query parameter; found, it
//! sends `?fieldValidation=Strict` and leaves the checking to the server (emu's admission, which
//! names unknown fields as kube-apiserver does). Without any OpenAPI, kubectl refuses every
//! `apply` and `create -f` with `failed to download openapi`.
//!
//! The fields' schemas (for `kubectl explain`) come from the Kubernetes types themselves
//! (k8s-openapi's `schemars` implementations, generated from kube-apiserver's OpenAPI): every
//! field with its description and type, in OpenAPI 3.0's form (`allOf` around a `$ref` that has a
//! description beside it), without kube-apiserver's `x-kubernetes-*` list and patch extensions
//! and `enum` lists. The patch operations do not offer `application/strategic-merge-patch+json`
//! (`PATCH_TYPES`). A document is generated for each request rather than kept: explain is rare,
//! memory is not free.
//!
//! OpenAPI v2 (`GET /openapi/v2`, one Swagger 2.0 document for the whole API, as JSON or gnostic's
//! protobuf) is [`super::openapi_v2`]: the same operations and schemas in v2's form, built with
//! what this module shares (the kinds' schemas and names: `kind_schema`, `schema_name`).

use super::discovery;
use emu_api::kinds::{ResourceKind, KINDS};
use serde_json::{json, Map, Value};

mod gateway;

/// The path of the document of group version `(group, version)`: `api/v1`, `apis/apps/v1`.
pub(super) fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every group version served, core first.
pub(super) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs = vec![("", "v1")];
    gvs.extend(discovery::groups());
    gvs
}

/// `GET /openapi/v3`: where each group version's document is, with the hash of its content (a
/// client caches a document by that URL for good, so the hash changes whenever it does).
pub fn root() -> String {
    let paths: Map<String, Value> = group_versions()
        .into_iter()
        .filter_map(|(group, version)| {
            let path = document_path(group, version);
            let (_, hash) = document(&path)?;
            Some((path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")})))
        })
        .collect();
    json!({"paths": paths}).to_string()
}

/// The document at `path` (`api/v1`, `apis/apps/v1`) and its hash (upper-case hex SHA-512, as
/// kube-apiserver's); None for a group version emu does not serve.
pub fn document(path: &str) -> Option<(String, String)> {
    let (group, version) = group_versions().into_iter().find(|(g, v)| document_path(g, v) == path)?;
    let kinds: Vec<&ResourceKind> = KINDS.iter().filter(|k| k.group == group && k.version == version).collect();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds_defined = Vec::new();
    for rk in kinds {
        let gvk = gvk(rk);
        let schema = schema_name(rk);
        let object = json!({"$ref": format!("#/components/schemas/{schema}")});
        let prefix = format!("/{}", document_path(group, version));
        let collection =
            if rk.namespaced { format!("{prefix}/namespaces/{{namespace}}/{}", rk.plural) } else { format!("{prefix}/{}", rk.plural) };
        let op = |action: &str, extra: Value| {
            let mut op = json!({
                "operationId": format!("{action}{}", rk.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": object}}}},
            });
            if let (Value::Object(op), Value::Object(extra)) = (&mut op, extra) {
                op.extend(extra);
            }
            op
        };
        let write_parameters = json!([query_parameter("dryRun"), query_parameter("fieldManager"), query_parameter("fieldValidation"),]);
        let body = |types: &[&str]| {
            let content: Map<String, Value> = types.iter().map(|t| (t.to_string(), json!({"schema": object}))).collect();
            json!({"content": content, "required": true})
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": op("list", json!({})),
                "post": op("post", json!({"parameters": write_parameters, "requestBody": body(&["*/*"])})),
            }),
        );
        let mut patch_parameters = write_parameters.clone();
        if let Value::Array(p) = &mut patch_parameters {
            p.push(query_parameter("force"));
        }
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", json!({})),
                "put": op("put", json!({"parameters": write_parameters, "requestBody": body(&["*/*"])})),
                "patch": op("patch", json!({"parameters": patch_parameters, "requestBody": body(PATCH_TYPES)})),
                "delete": op("delete", json!({})),
            }),
        );
        match kind_schema(&mut generator, rk) {
            Some(defined) => kinds_defined.push((defined, gvk)),
            None if rk.group == emu_api::gateway::GROUP => {
                // Its metadata refers to ObjectMeta's definition.
                generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
                schemas.insert(schema, gateway::schema(rk.kind, &gateway_description(rk.kind), gvk.clone()));
            }
            None => {
                schemas.insert(schema, own_kind_schema(rk));
            }
        }
    }
    // The kinds' schemas and those their fields refer to (ObjectMeta, ServiceSpec, …); a kind's
    // names its group, version and kind, by which kubectl explain finds it.
    schemas.extend(generator.take_definitions(true));
    for (name, gvk) in kinds_defined {
        if let Some(Value::Object(o)) = schemas.get_mut(&name) {
            o.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    // Ordered by name, as kube-apiserver's (and for a hash that does not depend on the kinds' order).
    let schemas: Map<String, Value> = {
        let mut sorted: Vec<(String, Value)> = schemas.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    };
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": emu_logic::cluster::KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
    .to_string();
    let digest = ring::digest::digest(&ring::digest::SHA512, doc.as_bytes());
    let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    Some((doc, hash))
}

/// The media types a kind's patch operation accepts: not `application/strategic-merge-patch+json`,
/// whose presence makes kubectl's client-side `apply` compute the strategic merge from the
/// published schemas, which lack the merge keys (lists would be replaced, not merged by key);
/// without it kubectl uses its compiled-in types for built-in kinds (in OpenAPI v3 and v2 alike).
pub(super) const PATCH_TYPES: &[&str] = &["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"];

/// The `x-kubernetes-group-version-kind` of a kind's operations (its definition's is a list of
/// these).
pub(super) fn gvk(rk: &ResourceKind) -> Value {
    json!({"group": rk.group, "version": rk.version, "kind": rk.kind})
}

/// The Gateway API kinds' descriptions, as their CRDs'.
fn gateway_description(kind: &str) -> String {
    match kind {
        "GatewayClass" => "GatewayClass describes a class of Gateways available to the user for creating Gateway resources.".into(),
        "Gateway" => "Gateway represents an instance of a service-traffic handling infrastructure by binding Listeners to a set of IP addresses.".into(),
        _ => "HTTPRoute provides a way to route HTTP requests. This includes the capability to match requests by hostname, path, header, or query param. Filters can be used to specify additional processing steps. Backends specify where matching requests should be routed.".into(),
    }
}

/// The definition of one of emu's own kinds, whose fields are not published: an object, found by
/// its group, version and kind.
pub(super) fn own_kind_schema(rk: &ResourceKind) -> Value {
    json!({
        "description": format!("{} (emu's own kind; its fields' schemas are not published).", rk.kind),
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(rk)],
    })
}

/// Adds the schema of a Kubernetes kind to `generator`'s definitions, with those of its fields'
/// types, from the Kubernetes types (k8s-openapi's, generated from kube-apiserver's own OpenAPI):
/// the fields and their descriptions. The definition's name; None for emu's own kinds.
pub(super) fn kind_schema(generator: &mut schemars::SchemaGenerator, rk: &ResourceKind) -> Option<String> {
    use k8s_openapi::api::{apps, batch, core, discovery, networking, rbac};
    fn define<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> String {
        generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }
    let schema: fn(&mut schemars::SchemaGenerator) -> String = match (rk.group, rk.kind) {
        ("", "Pod") => define::<core::v1::Pod>,
        ("", "Node") => define::<core::v1::Node>,
        ("", "Namespace") => define::<core::v1::Namespace>,
        ("", "Service") => define::<core::v1::Service>,
        ("", "Endpoints") => define::<core::v1::Endpoints>,
        ("", "ConfigMap") => define::<core::v1::ConfigMap>,
        ("", "Secret") => define::<core::v1::Secret>,
        ("", "Event") => define::<core::v1::Event>,
        ("", "ServiceAccount") => define::<core::v1::ServiceAccount>,
        ("apps", "Deployment") => define::<apps::v1::Deployment>,
        ("apps", "ReplicaSet") => define::<apps::v1::ReplicaSet>,
        ("apps", "DaemonSet") => define::<apps::v1::DaemonSet>,
        ("apps", "StatefulSet") => define::<apps::v1::StatefulSet>,
        ("apps", "ControllerRevision") => define::<apps::v1::ControllerRevision>,
        ("batch", "Job") => define::<batch::v1::Job>,
        ("batch", "CronJob") => define::<batch::v1::CronJob>,
        ("networking.k8s.io", "Ingress") => define::<networking::v1::Ingress>,
        ("networking.k8s.io", "IngressClass") => define::<networking::v1::IngressClass>,
        ("discovery.k8s.io", "EndpointSlice") => define::<discovery::v1::EndpointSlice>,
        ("rbac.authorization.k8s.io", "Role") => define::<rbac::v1::Role>,
        ("rbac.authorization.k8s.io", "ClusterRole") => define::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io", "RoleBinding") => define::<rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => define::<rbac::v1::ClusterRoleBinding>,
        _ => return None,
    };
    Some(schema(generator))
}

/// A query parameter as kube-apiserver's documents write them.
fn query_parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The component schema's name of a kind, Go-package style as kube-apiserver's:
/// `io.k8s.api.core.v1.Pod`, `io.k8s.api.apps.v1.Deployment`, `io.k8s.api.discovery.v1.EndpointSlice`,
/// `io.k8s.api.rbac.v1.Role`.
pub(super) fn schema_name(rk: &ResourceKind) -> String {
    // The Go package: the group's first label (`rbac.authorization.k8s.io` is package `rbac`).
    let package = match rk.group {
        "" => "core",
        group => group.split('.').next().unwrap_or(group),
    };
    // The Gateway API's group ends in `.k8s.io` but is served from CRDs: named as theirs.
    let custom = rk.group == emu_api::gateway::GROUP;
    if !custom && (rk.group.ends_with(".k8s.io") || rk.group.is_empty() || !rk.group.contains('.')) {
        format!("io.k8s.api.{package}.{}.{}", rk.version, rk.kind)
    } else {
        // A group of emu's own (`emu.dev`) or the Gateway API's: reversed, as custom resources'
        // schemas are named (`io.k8s.networking.gateway.v1.Gateway`).
        let reversed: Vec<&str> = rk.group.rsplit('.').collect();
        format!("{}.{}.{}", reversed.join("."), rk.version, rk.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_lists_every_group_version_by_its_hash() {
        let root: Value = serde_json::from_str(&root()).unwrap();
        let paths = root["paths"].as_object().unwrap();
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert!(keys.contains(&"api/v1") && keys.contains(&"apis/apps/v1") && keys.contains(&"apis/discovery.k8s.io/v1"), "{keys:?}");
        let (_, hash) = document("api/v1").unwrap();
        assert_eq!(paths["api/v1"]["serverRelativeURL"], format!("/openapi/v3/api/v1?hash={hash}"));
        assert_eq!(hash.len(), 128);
        assert!(document("apis/nope/v1").is_none());
    }

    /// The Gateway API's kinds are named as CRDs' schemas are, with their fields and ObjectMeta.
    #[test]
    fn gateway_api_schemas_as_the_crds_name_them() {
        let (doc, _) = document("apis/gateway.networking.k8s.io/v1").unwrap();
        let doc: Value = serde_json::from_str(&doc).unwrap();
        let schemas = &doc["components"]["schemas"];
        let gw = &schemas["io.k8s.networking.gateway.v1.Gateway"];
        assert_eq!(gw["x-kubernetes-group-version-kind"][0]["kind"], "Gateway");
        assert_eq!(gw["properties"]["spec"]["properties"]["listeners"]["items"]["properties"]["port"]["type"], "integer");
        assert!(schemas["io.k8s.networking.gateway.v1.HTTPRoute"]["properties"]["spec"]["properties"]["rules"].is_object());
        assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    }

    #[test]
    fn a_kinds_patch_operation_offers_field_validation_as_kubectl_probes_it() {
        let (doc, _) = document("api/v1").unwrap();
        let doc: Value = serde_json::from_str(&doc).unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Service"}));
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_none());
        let schemas = &doc["components"]["schemas"];
        let schema = &schemas["io.k8s.api.core.v1.Service"];
        assert_eq!(schema["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Service"}]));
        // The fields, as kubectl explain walks them: spec → ServiceSpec → ports → ServicePort.
        assert_eq!(schema["properties"]["spec"]["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.core.v1.ServiceSpec");
        let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(
            (&ports["type"], &ports["items"]["$ref"]),
            (&json!("array"), &json!("#/components/schemas/io.k8s.api.core.v1.ServicePort"))
        );
        assert_eq!(schemas["io.k8s.api.core.v1.ServicePort"]["required"], json!(["port"]));
        assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]["description"].is_string());
        // Cluster-scoped kinds have no namespace in their paths.
        assert!(doc["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        let (apps, _) = document("apis/apps/v1").unwrap();
        let apps: Value = serde_json::from_str(&apps).unwrap();
        assert!(apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
        let (discovery, _) = document("apis/discovery.k8s.io/v1").unwrap();
        assert!(serde_json::from_str::<Value>(&discovery).unwrap()["components"]["schemas"]["io.k8s.api.discovery.v1.EndpointSlice"]
            .is_object());
        // The operations name the kind's schema by its Go package (`rbac`, not the group).
        let (rbac, _) = document("apis/rbac.authorization.k8s.io/v1").unwrap();
        let rbac: Value = serde_json::from_str(&rbac).unwrap();
        let get = &rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}"]["get"];
        assert_eq!(
            get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.rbac.v1.Role"
        );
        assert!(rbac["components"]["schemas"]["io.k8s.api.rbac.v1.Role"]["x-kubernetes-group-version-kind"].is_array());
    }
}
