//! `kubectl version` and `kubectl api-resources`: pure functions of the server's version and of
//! the kinds the API serves ([`emu_api::kinds::KINDS`], from which the API server's discovery is
//! generated too).

use emu_api::kinds::{ResourceKind, KINDS};
use serde_json::{json, Value};

/// A `version.Info` as kube-apiserver's `/version` serves it (emu builds no Go binary, so the
/// commit, build date and Go version are empty, as the API server's are).
pub fn version_info(git_version: &str) -> Value {
    let (major, minor) = {
        let mut parts = git_version.trim_start_matches('v').split('.');
        (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "", "goVersion": "", "compiler": "gc", "platform": format!("linux/{arch}"),
    })
}

/// `kubectl version`'s document: `clientVersion`, then `serverVersion` when the server answered.
/// (emu has no kustomize, so no `kustomizeVersion`.)
pub fn version_document(client: &str, server: Option<&str>) -> Value {
    let mut doc = json!({ "clientVersion": version_info(client) });
    if let Some(s) = server {
        doc["serverVersion"] = version_info(s);
    }
    doc
}

/// `kubectl version -o json`: Go's indented JSON, keys in the order of Go's `version.Info` struct
/// (not sorted, as `-o yaml` has them).
pub fn version_json(client: &str, server: Option<&str>) -> String {
    const KEYS: [&str; 9] = ["major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"];
    let info = |v: &str| {
        let i = version_info(v);
        let fields: Vec<String> = KEYS.iter().map(|k| format!("    \"{k}\": {}", i[k])).collect();
        format!("{{\n{}\n  }}", fields.join(",\n"))
    };
    let mut parts = vec![format!("  \"clientVersion\": {}", info(client))];
    if let Some(s) = server {
        parts.push(format!("  \"serverVersion\": {}", info(s)));
    }
    format!("{{\n{}\n}}\n", parts.join(",\n"))
}

/// `kubectl version`'s lines.
pub fn version_text(client: &str, server: Option<&str>) -> String {
    let mut out = format!("Client Version: {client}\n");
    if let Some(s) = server {
        out.push_str(&format!("Server Version: {s}\n"));
    }
    out
}

/// Which kinds `kubectl api-resources` lists: `--namespaced` (None: both) and `--api-group`
/// (None: every group; `Some("")`: the core group).
#[derive(Debug, Clone, Default)]
pub struct ResourceFilter {
    pub namespaced: Option<bool>,
    pub api_group: Option<String>,
}

/// The verbs discovery lists for a kind (namespaces have no deletecollection).
pub fn verbs(rk: &ResourceKind) -> &'static [&'static str] {
    if rk.kind == "Namespace" {
        &["create", "delete", "get", "list", "patch", "update", "watch"]
    } else {
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

/// The categories discovery lists for a kind: of the kinds emu serves, Kubernetes puts pods,
/// services and the workloads (not their ControllerRevisions) in `all`, which `kubectl get all`
/// lists.
pub fn categories(rk: &ResourceKind) -> &'static [&'static str] {
    match rk.kind {
        "Pod" | "Service" | "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" | "CronJob" => &["all"],
        // The Gateway API CRDs' category.
        "GatewayClass" | "Gateway" | "HTTPRoute" => &["gateway-api"],
        _ => &[],
    }
}

/// The kinds in category `all`, in kubectl's order for `get all` (core first, then by group).
pub fn category_all() -> Vec<&'static ResourceKind> {
    served(&ResourceFilter::default()).into_iter().filter(|k| categories(k).contains(&"all")).collect()
}

/// The kinds that pass `filter`, in kubectl's order: by group (the core group first), then by name.
pub fn served(filter: &ResourceFilter) -> Vec<&'static ResourceKind> {
    let mut kinds: Vec<&ResourceKind> = KINDS
        .iter()
        .filter(|k| filter.namespaced.is_none_or(|n| n == k.namespaced))
        .filter(|k| filter.api_group.as_deref().is_none_or(|g| g == k.group))
        .collect();
    kinds.sort_by_key(|k| (k.group, k.plural));
    kinds
}

/// `kubectl api-resources` with output `""`, `wide` or `name`, with or without its header line.
pub fn api_resources(filter: &ResourceFilter, output: &str, headers: bool) -> String {
    api_resources_of(&served(filter), output, headers)
}

/// [`api_resources`] of the given kinds, in their order (`--verbs` and `--sort-by` choose them).
pub fn api_resources_of(kinds: &[&'static ResourceKind], output: &str, headers: bool) -> String {
    if output == "name" {
        return kinds
            .iter()
            .map(|k| if k.group.is_empty() { format!("{}\n", k.plural) } else { format!("{}.{}\n", k.plural, k.group) })
            .collect();
    }
    let wide = output == "wide";
    let mut header: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"].map(String::from).to_vec();
    if wide {
        header.extend(["VERBS".to_string(), "CATEGORIES".to_string()]);
    }
    let mut rows = if headers { vec![header] } else { Vec::new() };
    for k in kinds.iter().copied() {
        let mut row = vec![k.plural.to_string(), k.short_names.join(","), k.api_version(), k.namespaced.to_string(), k.kind.to_string()];
        if wide {
            row.extend([verbs(k).join(","), categories(k).join(",")]);
        }
        rows.push(row);
    }
    crate::tabwrite(&rows, 0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines_and_document() {
        assert_eq!(version_text("v1.33.0", Some("v1.33.0")), "Client Version: v1.33.0\nServer Version: v1.33.0\n");
        assert_eq!(version_text("v1.33.0", None), "Client Version: v1.33.0\n");
        let doc = version_document("v1.33.0", Some("v1.33.0"));
        assert_eq!((doc["serverVersion"]["major"].as_str(), doc["serverVersion"]["minor"].as_str()), (Some("1"), Some("33")));
        let text = version_json("v1.33.0", Some("v1.33.0"));
        assert!(text.starts_with("{\n  \"clientVersion\": {\n    \"major\": \"1\",\n    \"minor\": \"33\",\n"), "{text}");
        assert!(text.ends_with("\"platform\": \"linux/amd64\"\n  }\n}\n") || !cfg!(target_arch = "x86_64"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    }

    #[test]
    fn api_resources_as_kubectl_lists_them() {
        let table = api_resources(&ResourceFilter::default(), "", true);
        let mut lines = table.lines();
        assert!(lines.next().unwrap().starts_with("NAME "));
        assert!(lines.next().unwrap().starts_with("configmaps "));
        assert!(table.lines().any(|l| l.split_whitespace().eq(["deployments", "deploy", "apps/v1", "true", "Deployment"])));
        let apps = ResourceFilter { namespaced: None, api_group: Some("apps".into()) };
        assert_eq!(
            api_resources(&apps, "", true),
            "NAME                  SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             controllerrevisions                apps/v1      true         ControllerRevision\n\
             daemonsets            ds           apps/v1      true         DaemonSet\n\
             deployments           deploy       apps/v1      true         Deployment\n\
             replicasets           rs           apps/v1      true         ReplicaSet\n\
             statefulsets          sts          apps/v1      true         StatefulSet\n"
        );
        assert_eq!(
            api_resources(&apps, "name", true),
            "controllerrevisions.apps\ndaemonsets.apps\ndeployments.apps\nreplicasets.apps\nstatefulsets.apps\n"
        );
        let none = ResourceFilter { namespaced: None, api_group: Some("nope".into()) };
        assert_eq!(api_resources(&none, "", true), "NAME   SHORTNAMES   APIVERSION   NAMESPACED   KIND\n");
        let wide = api_resources(&ResourceFilter { namespaced: Some(false), api_group: Some(String::new()) }, "wide", true);
        assert!(wide.lines().any(|l| l.starts_with("namespaces ") && l.contains(" create,delete,get,list,patch,update,watch ")), "{wide}");
        assert!(api_resources(&apps, "", false).starts_with("controllerrevisions            apps/v1   true   ControllerRevision\n"));
        let kinds: Vec<&str> = category_all().iter().map(|k| k.plural).collect();
        // kubectl get all's order: the core group, then apps, then batch.
        assert_eq!(kinds, ["pods", "services", "daemonsets", "deployments", "replicasets", "statefulsets", "cronjobs", "jobs"]);
    }
}
