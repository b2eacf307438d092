//! What a request asks for, as kube-apiserver reads it before it authorizes anything
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`): a resource request's verb, API group
//! and version, namespace, resource, subresource and name, or a non-resource request's path and
//! verb (the lower-cased method). Authorization and dispatch both work from this, so a new verb
//! (create, watch, …) is a new arm of the dispatcher, not a new parser.

/// A request as authorization sees it (kube-apiserver's `RequestInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// Under `/api` or `/apis`, with a resource: what RBAC calls a resource request.
    pub resource_request: bool,
    /// The URL path, as sent.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for a
    /// non-resource request the lower-cased method.
    pub verb: String,
    /// `api` or `apis`.
    pub prefix: String,
    /// "" for the core group.
    pub group: String,
    pub version: String,
    /// "" for cluster-scoped requests and lists across namespaces.
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    /// "" for a collection; for a list or watch, the name a `metadata.name=` field selector asks
    /// for (so RBAC's resourceNames apply to it, as in kube-apiserver).
    pub name: String,
    /// The path's segments from the resource on (`pods`, `x`, `log`).
    pub parts: Vec<String>,
    /// The `User-Agent` header: a write's field manager when it names none.
    pub user_agent: String,
}

/// A namespace's own subresources: `/api/v1/namespaces/x/status` is about namespace x.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    /// Reads `method path?query` as kube-apiserver does. `Err` carries kube-apiserver's message
    /// for a path it cannot read (a special verb with nothing after it).
    pub fn parse(method: &str, path: &str, query: &str) -> Result<RequestInfo, String> {
        let mut info = RequestInfo { path: path.to_string(), verb: method.to_ascii_lowercase(), ..Default::default() };
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return Ok(info);
        }
        info.prefix = parts[0].to_string();
        let mut rest = &parts[1..];
        if info.prefix == "apis" {
            if rest.len() < 3 {
                return Ok(info);
            }
            info.group = rest[0].to_string();
            rest = &rest[1..];
        }
        info.resource_request = true;
        info.version = rest[0].to_string();
        rest = &rest[1..];
        // The deprecated `/api/v1/watch/...` form names its verb in the path.
        if matches!(rest[0], "watch" | "proxy") {
            if rest.len() < 2 {
                return Err(format!("unable to determine kind and namespace from url, {path}"));
            }
            info.verb = rest[0].to_string();
            rest = &rest[1..];
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        info.parts = rest.iter().map(|p| p.to_string()).collect();
        if rest.len() >= 3 && info.verb != "proxy" {
            info.subresource = rest[2].to_string();
        }
        if rest.len() >= 2 {
            info.name = rest[1].to_string();
        }
        info.resource = rest[0].to_string();
        if info.name.is_empty() && info.verb == "get" {
            let query = query_pairs(query);
            let watch =
                query.iter().find(|(k, _)| k == "watch").is_some_and(|(_, v)| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"));
            info.verb = if watch { "watch" } else { "list" }.to_string();
            let selector = query.iter().find(|(k, _)| k == "fieldSelector").map(|(_, v)| v.as_str()).unwrap_or("");
            if let Some(name) = exact_name(selector) {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        Ok(info)
    }
}

/// The name a field selector requires exactly (`metadata.name=x` or `==x`, among other terms),
/// when it is a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term.split_once("==").or_else(|| term.split_once('=')).filter(|(f, _)| !f.ends_with('!'))?;
        (field.trim() == "metadata.name" && !matches!(value.trim(), "" | "." | "..") && !value.contains(['/', '%']))
            .then(|| value.trim().to_string())
    })
}

/// The query parameters of a request, decoded, in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The value of query parameter `key` (the first one), if given.
pub fn query_param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `%XX` escapes and `+` as a space, as Go's `url.ParseQuery` reads a query; a malformed escape
/// is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, target: &str) -> RequestInfo {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestInfo::parse(method, path, query).unwrap()
    }

    /// (verb, group, version, namespace, resource, subresource, name)
    fn fields(i: &RequestInfo) -> (&str, &str, &str, &str, &str, &str, &str) {
        (&i.verb, &i.group, &i.version, &i.namespace, &i.resource, &i.subresource, &i.name)
    }

    #[test]
    fn resource_requests() {
        for (method, target, expected) in [
            ("GET", "/api/v1/namespaces/default/pods", ("list", "", "v1", "default", "pods", "", "")),
            ("GET", "/api/v1/namespaces/default/pods/x", ("get", "", "v1", "default", "pods", "", "x")),
            ("HEAD", "/api/v1/namespaces/default/pods/x", ("get", "", "v1", "default", "pods", "", "x")),
            ("GET", "/api/v1/namespaces/default/pods/x/log", ("get", "", "v1", "default", "pods", "log", "x")),
            ("GET", "/api/v1/pods", ("list", "", "v1", "", "pods", "", "")),
            ("GET", "/api/v1/pods?watch=true", ("watch", "", "v1", "", "pods", "", "")),
            ("GET", "/api/v1/pods?watch=0", ("list", "", "v1", "", "pods", "", "")),
            ("GET", "/api/v1/watch/namespaces/default/pods", ("watch", "", "v1", "default", "pods", "", "")),
            ("GET", "/api/v1/nodes/n1", ("get", "", "v1", "", "nodes", "", "n1")),
            ("GET", "/api/v1/namespaces", ("list", "", "v1", "", "namespaces", "", "")),
            ("GET", "/api/v1/namespaces/default", ("get", "", "v1", "default", "namespaces", "", "default")),
            ("PUT", "/api/v1/namespaces/default/status", ("update", "", "v1", "default", "namespaces", "status", "default")),
            ("GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale", ("get", "apps", "v1", "ns", "deployments", "scale", "d")),
            ("POST", "/apis/apps/v1/namespaces/ns/deployments", ("create", "apps", "v1", "ns", "deployments", "", "")),
            ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", ("patch", "apps", "v1", "ns", "deployments", "", "d")),
            ("DELETE", "/api/v1/namespaces/ns/pods/p", ("delete", "", "v1", "ns", "pods", "", "p")),
            ("DELETE", "/api/v1/namespaces/ns/pods", ("deletecollection", "", "v1", "ns", "pods", "", "")),
            ("GET", "/apis/discovery.k8s.io/v1/endpointslices", ("list", "discovery.k8s.io", "v1", "", "endpointslices", "", "")),
            // A list of one name (`kubectl get pod x -w`) is authorized for that name.
            ("GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dx", ("list", "", "v1", "ns", "pods", "", "x")),
            ("GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name!%3Dx", ("list", "", "v1", "ns", "pods", "", "")),
        ] {
            let info = parse(method, target);
            assert!(info.resource_request, "{target}");
            assert_eq!(fields(&info), expected, "{method} {target}");
        }
    }

    #[test]
    fn non_resource_requests() {
        for (method, target, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/version", "get"),
            ("HEAD", "/healthz", "head"),
            ("POST", "/apis/apps", "post"),
        ] {
            let info = parse(method, target);
            assert!(!info.resource_request, "{target}");
            assert_eq!((info.verb.as_str(), info.path.as_str()), (verb, target));
        }
        assert_eq!(
            RequestInfo::parse("GET", "/api/v1/watch", "").unwrap_err(),
            "unable to determine kind and namespace from url, /api/v1/watch"
        );
    }

    #[test]
    fn queries_decode_as_go_does() {
        assert_eq!(
            query_pairs("labelSelector=run%3Dmy-nginx&limit=500&x=a+b&bad=%zz&flag"),
            [
                ("labelSelector".to_string(), "run=my-nginx".to_string()),
                ("limit".into(), "500".into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("flag".into(), "".into())
            ]
        );
        assert_eq!(query_param(&query_pairs("a=1&a=2"), "a"), Some("1"));
    }
}
