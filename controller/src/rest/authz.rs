//! Who a request speaks for (kube-apiserver's conventions, issue 17 facts 8.1) and what they may
//! do. Authorization is one function of the user and the request's attributes, [`authorize`]:
//! today a fixed policy (the default bindings of `cluster-admin`, `system:discovery` and
//! `system:public-info-viewer`); RBAC over Role and RoleBinding objects replaces its body.

use super::request::RequestInfo;

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

pub const AUTHENTICATED: &str = "system:authenticated";
pub const MASTERS: &str = "system:masters";

impl User {
    /// No credentials: kube-apiserver's anonymous user.
    pub fn anonymous() -> User {
        User { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }

    /// A client certificate's user: its subject CN, groups its subject Os plus
    /// `system:authenticated`.
    pub fn from_certificate(common_name: &str, organizations: &[String]) -> User {
        let mut groups = organizations.to_vec();
        groups.push(AUTHENTICATED.into());
        User { name: common_name.into(), groups }
    }

    /// The user of a bearer token: a service account `system:serviceaccount:<ns>:<sa>` is in
    /// `system:serviceaccounts` and `system:serviceaccounts:<ns>`; every one is authenticated.
    pub fn from_token(username: &str) -> User {
        let mut groups = Vec::new();
        if let Some((namespace, _)) = username.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{namespace}"));
        }
        groups.push(AUTHENTICATED.into());
        User { name: username.into(), groups }
    }

    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the authorizer's reason (RBAC gives none for a plain denial).
    Deny(String),
}

/// `system:public-info-viewer`: what everyone, anonymous included, may GET.
const PUBLIC_PATHS: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
/// `system:discovery`: what every authenticated user may GET (exact paths, or prefixes with `*`).
const DISCOVERY_PATHS: [&str; 11] =
    ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"];

/// Whether `user` may do what `request` asks. Members of `system:masters` may do everything (as
/// kube-apiserver allows them before any authorizer); authenticated users may read discovery;
/// everyone may read the version and health checks. Nothing else is granted yet.
pub fn authorize(user: &User, request: &RequestInfo) -> Decision {
    if user.in_group(MASTERS) {
        return Decision::Allow;
    }
    // system:basic-user: every authenticated user may ask what it may do and who it is.
    let self_review = matches!(
        (request.group.as_str(), request.resource.as_str()),
        ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews") | ("authentication.k8s.io", "selfsubjectreviews")
    );
    if request.resource_request && request.verb == "create" && self_review && user.in_group(AUTHENTICATED) {
        return Decision::Allow;
    }
    if !request.resource_request && request.verb == "get" {
        let path = request.path.as_str();
        let matches = |rule: &&str| match rule.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *rule,
        };
        if PUBLIC_PATHS.iter().any(matches) || (user.in_group(AUTHENTICATED) && DISCOVERY_PATHS.iter().any(matches)) {
            return Decision::Allow;
        }
    }
    Decision::Deny(String::new())
}

/// kube-apiserver's message for a denied request (`responsewriters.forbiddenMessage` wrapped by
/// `apierrors.NewForbidden`), with the reason appended when there is one.
pub fn forbidden_message(user: &User, request: &RequestInfo, reason: &str) -> String {
    let what = if !request.resource_request {
        format!("User {:?} cannot {} path {:?}", user.name, request.verb, request.path)
    } else {
        let mut resource = request.resource.clone();
        if !request.subresource.is_empty() {
            resource = format!("{resource}/{}", request.subresource);
        }
        let scope = if request.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", request.namespace)
        };
        format!("User {:?} cannot {} resource {:?} in API group {:?} {scope}", user.name, request.verb, resource, request.group)
    };
    let what = if reason.is_empty() { what } else { format!("{what}: {reason}") };
    if !request.resource_request || request.resource.is_empty() {
        return format!("forbidden: {what}");
    }
    let qualified = qualified_resource(request);
    if request.name.is_empty() {
        format!("{qualified} is forbidden: {what}")
    } else {
        format!("{qualified} {:?} is forbidden: {what}", request.name)
    }
}

/// `schema.GroupResource.String()`: `pods`, `deployments.apps`.
pub fn qualified_resource(request: &RequestInfo) -> String {
    if request.group.is_empty() {
        request.resource.clone()
    } else {
        format!("{}.{}", request.resource, request.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, target: &str) -> RequestInfo {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestInfo::parse(method, path, query).unwrap()
    }

    fn sa() -> User {
        User::from_token("system:serviceaccount:default:default")
    }

    #[test]
    fn identities() {
        assert_eq!(sa().groups, ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]);
        assert_eq!(User::from_token("alice").groups, ["system:authenticated"]);
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        assert_eq!(
            (admin.name.as_str(), admin.groups.as_slice()),
            ("kubernetes-admin", &["system:masters".to_string(), "system:authenticated".into()][..])
        );
        assert_eq!(User::anonymous().groups, ["system:unauthenticated"]);
    }

    #[test]
    fn decisions() {
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        let anonymous = User::anonymous();
        for (method, target) in [
            ("GET", "/api/v1/pods"),
            ("DELETE", "/api/v1/namespaces/x"),
            ("GET", "/metrics"),
            ("POST", "/apis/apps/v1/namespaces/d/deployments"),
        ] {
            assert_eq!(authorize(&admin, &info(method, target)), Decision::Allow, "{target}");
            assert_ne!(authorize(&sa(), &info(method, target)), Decision::Allow, "{target}");
        }
        for target in ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version"] {
            assert_eq!(authorize(&sa(), &info("GET", target)), Decision::Allow, "{target}");
        }
        for target in ["/version", "/version/", "/healthz", "/livez", "/readyz"] {
            assert_eq!(authorize(&anonymous, &info("GET", target)), Decision::Allow, "{target}");
        }
        for (method, target) in
            [("GET", "/api"), ("GET", "/apis/apps/v1"), ("HEAD", "/version"), ("GET", "/readyz/ping"), ("POST", "/version")]
        {
            assert_eq!(authorize(&anonymous, &info(method, target)), Decision::Deny(String::new()), "{method} {target}");
        }
        // Discovery is not a way in: the authenticated may not read what it lists.
        assert_eq!(authorize(&sa(), &info("GET", "/api/v1/namespaces/default/pods")), Decision::Deny(String::new()));
    }

    #[test]
    fn messages_are_kube_apiservers() {
        let m = |user: &User, method: &str, target: &str| forbidden_message(user, &info(method, target), "");
        assert_eq!(
            m(&sa(), "GET", "/api/v1/namespaces/default/pods"),
            "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            m(&sa(), "GET", "/api/v1/namespaces/default/pods/x/log"),
            "pods \"x\" is forbidden: User \"system:serviceaccount:default:default\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            m(&User::anonymous(), "GET", "/api/v1/nodes"),
            "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            m(&sa(), "PATCH", "/apis/apps/v1/namespaces/ns/deployments/d"),
            "deployments.apps \"d\" is forbidden: User \"system:serviceaccount:default:default\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"ns\""
        );
        assert_eq!(m(&User::anonymous(), "GET", "/api"), "forbidden: User \"system:anonymous\" cannot get path \"/api\"");
        assert_eq!(
            forbidden_message(&User::anonymous(), &info("GET", "/api"), "no RBAC policy matched"),
            "forbidden: User \"system:anonymous\" cannot get path \"/api\": no RBAC policy matched"
        );
    }
}
