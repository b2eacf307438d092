//! API discovery, generated from the kinds emu serves ([`emu_api::kinds::KINDS`]): the aggregated
//! documents (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) clients ask `/api` and `/apis`
//! for first, and the legacy ones (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`)
//! for clients that do not ask for the aggregated form. Pure functions of the kinds.
//!
//! Subresources listed: `pods/status`, `pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward`, `pods/eviction`, `deployments/scale`, `replicasets/scale`,
//! `serviceaccounts/token`, and `status`
//! of deployments, replicasets, services, nodes, namespaces and faults. Of those, the GET of
//! `status` and `scale` is served today; the streams, eviction and the writes come with the
//! verbs that use them. Every resource lists kube-apiserver's full verb set, writes and watch
//! included, which emu serves through gRPC today and will through REST.

use super::status::to_json;
use emu_api::kinds::{ResourceKind, KINDS};
use serde::Serialize;

/// What a full resource answers to (namespaces have no deletecollection).
const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const NAMESPACE_VERBS: [&str; 7] = ["create", "delete", "get", "list", "patch", "update", "watch"];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// The Content-Type of an aggregated discovery answer; clients recognise the form only by it.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A subresource: name, the kind it answers with (group and version empty when the parent's),
/// verbs.
struct Subresource {
    name: &'static str,
    kind: GroupVersionKind,
    verbs: &'static [&'static str],
}

/// A kind as discovery names it; group and version are empty when they are the enclosing
/// group version's, as kube-apiserver writes them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

const fn own(kind: &'static str) -> GroupVersionKind {
    GroupVersionKind { group: "", version: "", kind }
}

/// The verbs of a proxy subresource, as kube-apiserver lists them.
const PROXY_VERBS: [&str; 5] = ["create", "delete", "get", "patch", "update"];

fn subresources(rk: &ResourceKind) -> Vec<Subresource> {
    let status = Subresource { name: "status", kind: own(rk.kind), verbs: &STATUS_VERBS };
    let scale =
        Subresource { name: "scale", kind: GroupVersionKind { group: "autoscaling", version: "v1", kind: "Scale" }, verbs: &STATUS_VERBS };
    match rk.kind {
        "Pod" => vec![
            Subresource { name: "attach", kind: own("PodAttachOptions"), verbs: &["create", "get"] },
            Subresource {
                name: "eviction",
                kind: GroupVersionKind { group: "policy", version: "v1", kind: "Eviction" },
                verbs: &["create"],
            },
            Subresource { name: "exec", kind: own("PodExecOptions"), verbs: &["create", "get"] },
            Subresource { name: "log", kind: own("Pod"), verbs: &["get"] },
            Subresource { name: "portforward", kind: own("PodPortForwardOptions"), verbs: &["create", "get"] },
            Subresource { name: "proxy", kind: own("PodProxyOptions"), verbs: &PROXY_VERBS },
            status,
        ],
        "Deployment" | "ReplicaSet" | "StatefulSet" => vec![scale, status],
        "DaemonSet" | "Job" | "CronJob" | "Ingress" | "GatewayClass" | "Gateway" | "HTTPRoute" => vec![status],
        // TokenRequest (`kubectl create token`), [`super::token`].
        "ServiceAccount" => vec![Subresource {
            name: "token",
            kind: GroupVersionKind { group: "authentication.k8s.io", version: "v1", kind: "TokenRequest" },
            verbs: &["create"],
        }],
        "Service" => vec![Subresource { name: "proxy", kind: own("ServiceProxyOptions"), verbs: &PROXY_VERBS }, status],
        "Node" | "Namespace" | "Fault" => vec![status],
        _ => vec![],
    }
}

/// `kubectl get all` lists the resources in category `all` (kubectl's own list of them).
fn categories(rk: &ResourceKind) -> &'static [&'static str] {
    emu_kubectl::info::categories(rk)
}

fn verbs(rk: &ResourceKind) -> &'static [&'static str] {
    if rk.kind == "Namespace" {
        &NAMESPACE_VERBS
    } else {
        &VERBS
    }
}

/// The API groups under `/apis`, in kube-apiserver's order (by its group priorities, then
/// the groups kube-apiserver serves from CRDs, emu's own and the Gateway API's, by name, as
/// custom resources come last), each with its one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    const PRIORITY: [&str; 5] = ["apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "discovery.k8s.io"];
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for k in KINDS.iter().filter(|k| !k.group.is_empty()) {
        if !groups.contains(&(k.group, k.version)) {
            groups.push((k.group, k.version));
        }
    }
    groups.sort_by_key(|(g, _)| (PRIORITY.iter().position(|p| p == g).unwrap_or(PRIORITY.len()), *g));
    groups
}

/// The kinds of one group version, by resource name.
fn kinds_of(group: &str, version: &str) -> Vec<&'static ResourceKind> {
    let mut kinds: Vec<&ResourceKind> = KINDS.iter().filter(|k| k.group == group && k.version == version).collect();
    kinds.sort_by_key(|k| k.plural);
    kinds
}

/// The served kind behind `/<prefix>/<group>/<version>/.../<resource>`.
pub fn resource(group: &str, version: &str, resource: &str) -> Option<&'static ResourceKind> {
    KINDS.iter().find(|k| k.group == group && k.version == version && k.plural == resource)
}

/// Whether `resource` of `rk` has subresource `name`.
pub fn has_subresource(rk: &ResourceKind, name: &str) -> bool {
    subresources(rk).iter().any(|s| s.name == name)
}

// ---- aggregated (apidiscovery.k8s.io/v2) ----------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryList {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    items: Vec<GroupDiscovery>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupMeta {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'static str,
    /// Go writes an unset time as null.
    creation_timestamp: Option<()>,
}

#[derive(Serialize)]
struct GroupDiscovery {
    metadata: GroupMeta,
    versions: Vec<VersionDiscovery>,
}

#[derive(Serialize)]
struct VersionDiscovery {
    version: &'static str,
    resources: Vec<ResourceDiscovery>,
    freshness: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDiscovery {
    resource: &'static str,
    response_kind: GroupVersionKind,
    scope: &'static str,
    singular_resource: &'static str,
    verbs: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    short_names: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    categories: &'static [&'static str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subresources: Vec<SubresourceDiscovery>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubresourceDiscovery {
    subresource: &'static str,
    response_kind: GroupVersionKind,
    verbs: &'static [&'static str],
}

fn group_discovery(group: &'static str, version: &'static str) -> GroupDiscovery {
    let resources = kinds_of(group, version)
        .into_iter()
        .map(|rk| ResourceDiscovery {
            resource: rk.plural,
            response_kind: own(rk.kind),
            scope: if rk.namespaced { "Namespaced" } else { "Cluster" },
            singular_resource: rk.singular,
            verbs: verbs(rk),
            short_names: rk.short_names,
            categories: categories(rk),
            subresources: subresources(rk)
                .into_iter()
                .map(|s| SubresourceDiscovery { subresource: s.name, response_kind: s.kind, verbs: s.verbs })
                .collect(),
        })
        .collect();
    GroupDiscovery {
        metadata: GroupMeta { name: group, creation_timestamp: None },
        versions: vec![VersionDiscovery { version, resources, freshness: "Current" }],
    }
}

/// The aggregated document of `/api` (`core`) or `/apis`.
pub fn aggregated(core: bool, pretty: bool) -> String {
    let items = if core { vec![group_discovery("", "v1")] } else { groups().into_iter().map(|(g, v)| group_discovery(g, v)).collect() };
    let list = DiscoveryList { kind: "APIGroupDiscoveryList", api_version: "apidiscovery.k8s.io/v2", metadata: Empty {}, items };
    to_json(&list, pretty)
}

// ---- legacy ---------------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiVersions<'a> {
    kind: &'static str,
    versions: [&'static str; 1],
    #[serde(rename = "serverAddressByClientCIDRs")]
    server_address_by_client_cidrs: [ServerAddress<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerAddress<'a> {
    #[serde(rename = "clientCIDR")]
    client_cidr: &'static str,
    server_address: &'a str,
}

/// `/api`'s legacy `APIVersions`; `server` is the address clients reach the server at.
pub fn api_versions(server: &str, pretty: bool) -> String {
    let doc = ApiVersions {
        kind: "APIVersions",
        versions: ["v1"],
        server_address_by_client_cidrs: [ServerAddress { client_cidr: "0.0.0.0/0", server_address: server }],
    };
    to_json(&doc, pretty)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupVersion {
    group_version: String,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    name: &'static str,
    versions: Vec<GroupVersion>,
    preferred_version: GroupVersion,
}

fn api_group(group: &'static str, version: &'static str, typed: bool) -> ApiGroup {
    let gv = || GroupVersion { group_version: format!("{group}/{version}"), version };
    ApiGroup {
        kind: typed.then_some("APIGroup"),
        api_version: typed.then_some("v1"),
        name: group,
        versions: vec![gv()],
        preferred_version: gv(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroupList {
    kind: &'static str,
    api_version: &'static str,
    groups: Vec<ApiGroup>,
}

/// `/apis`'s legacy `APIGroupList`.
pub fn group_list(pretty: bool) -> String {
    let groups = groups().into_iter().map(|(g, v)| api_group(g, v, false)).collect();
    to_json(&ApiGroupList { kind: "APIGroupList", api_version: "v1", groups }, pretty)
}

/// `/apis/<group>`'s `APIGroup`, for a served group.
pub fn group(name: &str, pretty: bool) -> Option<String> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == name)?;
    Some(to_json(&api_group(g, v, true), pretty))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResourceList {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    group_version: String,
    resources: Vec<ApiResource>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResource {
    name: String,
    singular_name: &'static str,
    namespaced: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    short_names: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    categories: &'static [&'static str],
}

/// `/api/v1`'s or `/apis/<group>/<version>`'s `APIResourceList`, subresources as `pods/status`
/// entries, for a served group version.
pub fn resource_list(group: &str, version: &str, pretty: bool) -> Option<String> {
    let kinds = kinds_of(group, version);
    let first = kinds.first()?;
    let mut resources = Vec::new();
    for rk in &kinds {
        resources.push(ApiResource {
            name: rk.plural.to_string(),
            singular_name: rk.singular,
            namespaced: rk.namespaced,
            group: "",
            version: "",
            kind: rk.kind,
            verbs: verbs(rk),
            short_names: rk.short_names,
            categories: categories(rk),
        });
        for s in subresources(rk) {
            resources.push(ApiResource {
                name: format!("{}/{}", rk.plural, s.name),
                singular_name: "",
                namespaced: rk.namespaced,
                group: s.kind.group,
                version: s.kind.version,
                kind: s.kind.kind,
                verbs: s.verbs,
                short_names: &[],
                categories: &[],
            });
        }
    }
    // kube-apiserver's core list has no apiVersion; the groups' lists have one.
    let list = ApiResourceList {
        kind: "APIResourceList",
        api_version: (!group.is_empty()).then_some("v1"),
        group_version: first.api_version(),
        resources,
    };
    Some(to_json(&list, pretty))
}

/// Whether an Accept header asks for the aggregated form (its `g`, `v` and `as` parameters, in
/// any order, on any of its media types).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<(&str, &str)> =
            media.split(';').skip(1).filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
        let has = |k: &str, v: &str| params.contains(&(k, v));
        has("g", "apidiscovery.k8s.io") && has("v", "v2") && has("as", "APIGroupDiscoveryList")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn find<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
        list.as_array().unwrap().iter().find(|r| r[field] == name).unwrap_or_else(|| panic!("{name} in {list}"))
    }

    #[test]
    fn aggregated_core_group() {
        let doc = parse(&aggregated(true, false));
        assert_eq!((doc["kind"].as_str(), doc["apiVersion"].as_str()), (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io/v2")));
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"], json!({"creationTimestamp": null}));
        let v1 = &items[0]["versions"][0];
        assert_eq!((v1["version"].as_str(), v1["freshness"].as_str()), (Some("v1"), Some("Current")));
        let resources = &v1["resources"];
        let names: Vec<&str> = resources.as_array().unwrap().iter().map(|r| r["resource"].as_str().unwrap()).collect();
        assert_eq!(names, ["configmaps", "endpoints", "events", "namespaces", "nodes", "pods", "secrets", "serviceaccounts", "services"]);
        let pods = find(resources, "resource", "pods");
        assert_eq!(
            pods.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["categories", "resource", "responseKind", "scope", "shortNames", "singularResource", "subresources", "verbs"]
        );
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "", "kind": "Pod"}));
        assert_eq!((pods["scope"].as_str(), pods["singularResource"].as_str()), (Some("Namespaced"), Some("pod")));
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["verbs"], json!(VERBS));
        let subs: Vec<&str> = pods["subresources"].as_array().unwrap().iter().map(|s| s["subresource"].as_str().unwrap()).collect();
        assert_eq!(subs, ["attach", "eviction", "exec", "log", "portforward", "proxy", "status"]);
        assert_eq!(
            find(&pods["subresources"], "subresource", "eviction")["responseKind"],
            json!({"group": "policy", "version": "v1", "kind": "Eviction"})
        );
        assert_eq!(find(&pods["subresources"], "subresource", "log")["verbs"], json!(["get"]));
        // Every resource and subresource carries a responseKind with a kind, or clients drop it.
        for r in resources.as_array().unwrap() {
            assert!(!r["responseKind"]["kind"].as_str().unwrap().is_empty());
            for s in r["subresources"].as_array().into_iter().flatten() {
                assert!(!s["responseKind"]["kind"].as_str().unwrap().is_empty());
            }
        }
        let ns = find(resources, "resource", "namespaces");
        assert_eq!((ns["scope"].as_str(), ns.get("categories")), (Some("Cluster"), None));
        assert!(!ns["verbs"].as_array().unwrap().contains(&json!("deletecollection")));
        assert_eq!(find(resources, "resource", "secrets").get("shortNames"), None);
        assert_eq!(find(resources, "resource", "services")["categories"], json!(["all"]));
        // kube-apiserver's TokenRequest subresource, of another group.
        let sa = find(resources, "resource", "serviceaccounts");
        assert_eq!((sa["shortNames"].clone(), sa["singularResource"].as_str()), (json!(["sa"]), Some("serviceaccount")));
        assert_eq!(
            sa["subresources"],
            json!([{"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]}])
        );
    }

    #[test]
    fn aggregated_groups() {
        let doc = parse(&aggregated(false, false));
        let names: Vec<&str> = doc["items"].as_array().unwrap().iter().map(|g| g["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "discovery.k8s.io", "emu.dev", "gateway.networking.k8s.io"]
        );
        let apps = &doc["items"][0]["versions"][0]["resources"];
        let deployments = find(apps, "resource", "deployments");
        assert_eq!(deployments["categories"], json!(["all"]));
        assert_eq!(deployments["responseKind"], json!({"group": "", "version": "", "kind": "Deployment"}));
        assert_eq!(
            find(&deployments["subresources"], "subresource", "scale"),
            &json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]})
        );
        assert_eq!(find(apps, "resource", "replicasets")["shortNames"], json!(["rs"]));
        let faults = find(&doc["items"][5]["versions"][0]["resources"], "resource", "faults");
        assert_eq!(faults["scope"], "Cluster");
        let gateway = &doc["items"][6]["versions"][0]["resources"];
        assert_eq!(find(gateway, "resource", "gateways")["shortNames"], json!(["gtw"]));
        assert_eq!(find(gateway, "resource", "gatewayclasses")["scope"], "Cluster");
        assert_eq!(find(gateway, "resource", "httproutes")["subresources"][0]["subresource"], "status");
        // RBAC's kinds: no short names, no subresources, every verb.
        let rbac = &doc["items"][3]["versions"][0]["resources"];
        let names: Vec<&str> = rbac.as_array().unwrap().iter().map(|r| r["resource"].as_str().unwrap()).collect();
        assert_eq!(names, ["clusterrolebindings", "clusterroles", "rolebindings", "roles"]);
        assert_eq!(
            find(rbac, "resource", "rolebindings"),
            &json!({"resource": "rolebindings", "responseKind": {"group": "", "version": "", "kind": "RoleBinding"}, "scope": "Namespaced",
                "singularResource": "rolebinding", "verbs": VERBS})
        );
        assert_eq!(find(rbac, "resource", "clusterroles")["scope"], "Cluster");
    }

    #[test]
    fn legacy_documents() {
        assert_eq!(
            api_versions("172.18.0.1:6443", false),
            "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"172.18.0.1:6443\"}]}\n"
        );
        assert!(api_versions("h", true).starts_with("{\n  \"kind\": \"APIVersions\",\n"));
        let list = parse(&group_list(false));
        assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("APIGroupList"), Some("v1")));
        assert_eq!(
            list["groups"][0],
            json!({"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}})
        );
        assert_eq!(parse(&group("apps", false).unwrap())["kind"], "APIGroup");
        assert!(group("policy", false).is_none());

        let core = parse(&resource_list("", "v1", false).unwrap());
        assert_eq!((core["groupVersion"].as_str(), core.get("apiVersion")), (Some("v1"), None));
        let pods = find(&core["resources"], "name", "pods");
        assert_eq!(
            pods,
            &json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": VERBS, "shortNames": ["po"], "categories": ["all"]})
        );
        assert_eq!(
            find(&core["resources"], "name", "pods/status"),
            &json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"]})
        );
        let apps = parse(&resource_list("apps", "v1", false).unwrap());
        assert_eq!((apps["groupVersion"].as_str(), apps["apiVersion"].as_str()), (Some("apps/v1"), Some("v1")));
        assert_eq!(
            find(&apps["resources"], "name", "deployments/scale"),
            &json!({"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        );
        assert!(resource_list("apps", "v1beta1", false).is_none());
    }

    #[test]
    fn accept_headers() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(wants_aggregated("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert_eq!(resource("apps", "v1", "deployments").map(|k| k.kind), Some("Deployment"));
        assert!(resource("", "v1", "deployments").is_none());
    }
}
