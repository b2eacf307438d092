//! Who a request speaks for (kube-apiserver's conventions, issue 17 facts 8.1) and what they may
//! do. Authorization is one function of the user, the request's attributes and the policy,
//! [`authorize`]: members of `system:masters` may do everything (kube-apiserver allows them before
//! any authorizer), everyone else what RBAC grants ([`emu_logic::rbac`]) over the Roles,
//! ClusterRoles and bindings in the store, which start as kube-apiserver's default policy
//! ([`crate::rbac_defaults`]). `kubectl auth can-i` asks the same function
//! ([`super::review`]).

use super::request::RequestInfo;
use super::status::ApiError;
use super::write::protobuf;
use super::Sent;
use crate::store::{ObjectKey, Store};
use emu_api::typed::{self, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef};
use emu_logic::rbac::{self, Attributes, Policy, UserInfo, Verdict};
use serde_json::Value;

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
    /// Allowed, with the authorizer's reason (RBAC's `allowed by ...`; none for `system:masters`).
    Allow(String),
    /// Denied, with the authorizer's reason (RBAC gives none for a plain denial).
    Deny(String),
}

/// Whether `user` may do what `request` asks under `policy`: `system:masters` always, anyone
/// else as RBAC decides.
pub fn authorize(user: &User, request: &RequestInfo, policy: &dyn Policy) -> Decision {
    if user.in_group(MASTERS) {
        return Decision::Allow(String::new());
    }
    let attributes = Attributes {
        verb: &request.verb,
        resource_request: request.resource_request,
        group: &request.group,
        resource: &request.resource,
        subresource: &request.subresource,
        name: &request.name,
        namespace: &request.namespace,
        path: &request.path,
    };
    match rbac::authorize(policy, UserInfo { name: &user.name, groups: &user.groups }, &attributes) {
        Verdict::Allowed(reason) => Decision::Allow(reason),
        Verdict::Denied(reason) => Decision::Deny(reason),
    }
}

/// The store's roles and bindings, as RBAC reads them: decoded when asked (a handful of
/// bindings per request, and the roles they name).
pub struct Stored<'a>(pub &'a Store);

impl Stored<'_> {
    fn list<T: serde::de::DeserializeOwned>(&self, kind: &str, namespace: Option<&str>) -> Vec<T> {
        typed::decode_all(self.0.list_shared(kind, namespace).0.iter().map(|v| &**v))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, kind: &str, namespace: &str, name: &str) -> Option<T> {
        let key = ObjectKey { kind: kind.into(), namespace: namespace.into(), name: name.into() };
        typed::decode(&*self.0.get_shared(&key)?).ok()
    }
}

impl Policy for Stored<'_> {
    fn cluster_role_bindings(&self) -> Vec<ClusterRoleBinding> {
        self.list("ClusterRoleBinding", None)
    }
    fn role_bindings(&self, namespace: &str) -> Vec<RoleBinding> {
        self.list("RoleBinding", Some(namespace))
    }
    fn cluster_role(&self, name: &str) -> Option<ClusterRole> {
        self.get("ClusterRole", "", name)
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Role> {
        self.get("Role", namespace, name)
    }
}

/// RBAC's guard against escalation (`pkg/registry/rbac/*/policybased`), for a create or update
/// (POST, PUT) of a role or binding by a user outside `system:masters`: a Role or ClusterRole
/// may hold only rules its author holds, unless the author may `escalate` it; a binding may grant
/// only a role whose rules its author holds where the binding applies, unless the author may
/// `bind` that role. The object is read from the body as the write will read it (JSON or
/// protobuf), or for a PATCH made from the stored object `live` and the patch; one that does not
/// decode or apply is left to the write to refuse.
pub fn confirm_no_escalation(
    user: &User,
    info: &RequestInfo,
    sent: Sent,
    policy: &dyn Policy,
    live: Option<&Value>,
) -> Result<(), ApiError> {
    const GROUP: &str = "rbac.authorization.k8s.io";
    let kind = match info.resource.as_str() {
        "roles" => "Role",
        "clusterroles" => "ClusterRole",
        "rolebindings" => "RoleBinding",
        "clusterrolebindings" => "ClusterRoleBinding",
        _ => return Ok(()),
    };
    if !info.resource_request
        || info.group != GROUP
        || !info.subresource.is_empty()
        || !matches!(info.verb.as_str(), "create" | "update" | "patch")
    {
        return Ok(());
    }
    if user.in_group(MASTERS) {
        return Ok(());
    }
    let media = sent.content_type.split(';').next().unwrap_or("").trim();
    let body: Option<Value> = if info.verb == "patch" {
        // What the object would be once patched: what is checked is what would be stored.
        patched(media, sent.body, live)
    } else if media == protobuf::MEDIA_TYPE {
        protobuf::decode(kind, sent.body).ok()
    } else {
        serde_json::from_slice(sent.body).ok()
    };
    let Some(body) = body else { return Ok(()) };
    let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&info.name).to_string();
    let ask = |verb: &'static str, resource: &'static str, name: &str| {
        let asked = RequestInfo {
            resource_request: true,
            verb: verb.into(),
            group: GROUP.into(),
            resource: resource.into(),
            namespace: info.namespace.clone(),
            name: name.into(),
            ..RequestInfo::default()
        };
        matches!(authorize(user, &asked, policy), Decision::Allow(_))
    };
    let requested: Vec<PolicyRule> = match kind {
        "Role" | "ClusterRole" => {
            if ask("escalate", if kind == "Role" { "roles" } else { "clusterroles" }, &name) {
                return Ok(());
            }
            let rules = |v: &Value| -> Option<Vec<PolicyRule>> { typed::decode(v.get("rules")?).ok() };
            let mut rules = rules(&body).unwrap_or_default();
            // An aggregated ClusterRole may come to hold anything: only who holds everything
            // may make one.
            if kind == "ClusterRole" && body.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                rules = vec![
                    PolicyRule {
                        api_groups: Some(vec!["*".into()]),
                        resources: Some(vec!["*".into()]),
                        verbs: vec!["*".into()],
                        ..Default::default()
                    },
                    PolicyRule { non_resource_urls: Some(vec!["*".into()]), verbs: vec!["*".into()], ..Default::default() },
                ];
            }
            rules
        }
        _ => {
            let Some(role_ref) = body.get("roleRef").and_then(|r| typed::decode::<RoleRef>(r).ok()) else { return Ok(()) };
            let resource = match role_ref.kind.as_str() {
                "ClusterRole" => "clusterroles",
                "Role" => "roles",
                _ => return Ok(()),
            };
            if ask("bind", resource, &role_ref.name) {
                return Ok(());
            }
            let rules = match resource {
                "clusterroles" => policy.cluster_role(&role_ref.name).map(|r| r.rules.unwrap_or_default()),
                _ => policy.role(&info.namespace, &role_ref.name).map(|r| r.rules.unwrap_or_default()),
            };
            let singular = if resource == "roles" { "role" } else { "clusterrole" };
            let not_found = format!("{singular}.{GROUP} {:?} not found", role_ref.name);
            rules.ok_or_else(|| forbidden(info, &name, &not_found))?
        }
    };
    let who = UserInfo { name: &user.name, groups: &user.groups };
    let (owned, resolution_error) = rbac::rules_for(policy, who, &info.namespace);
    let missing = rbac::uncovered(&owned, &requested);
    if missing.is_empty() {
        return Ok(());
    }
    Err(forbidden(info, &name, &rbac::escalation_error(who, &missing, resolution_error.as_deref())))
}

/// A role or binding as `live` would become with the patch `body` of media type `media` (an
/// apply's configuration merged in, or the object itself when there is none yet); None when the
/// patch cannot apply (the write answers that).
fn patched(media: &str, body: &[u8], live: Option<&Value>) -> Option<Value> {
    use emu_api::patch::{self, PatchType};
    let text = std::str::from_utf8(body).ok()?;
    let ty = match media {
        "application/json-patch+json" => PatchType::Json,
        "application/merge-patch+json" => PatchType::Merge,
        "application/strategic-merge-patch+json" => PatchType::Strategic,
        // Server-side apply: a role's rules and a binding's subjects are atomic lists, which a
        // merge replaces as an apply does.
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            let applied = patch::parse(text).ok()?;
            return Some(match live {
                Some(live) => patch::merge_patch(live, &applied).ok()?,
                None => applied,
            });
        }
        _ => return None,
    };
    patch::apply(ty, live?, &patch::parse(text).ok()?).ok()
}

/// `apierrors.NewForbidden` of the object `name` the request writes, for `why`.
fn forbidden(info: &RequestInfo, name: &str, why: &str) -> ApiError {
    let message = format!("{} {name:?} is forbidden: {why}", qualified_resource(info));
    ApiError::forbidden(message, &info.group, &info.resource, name)
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

/// What a request asks to act as (kube-apiserver's impersonation headers): `Impersonate-User`,
/// each `Impersonate-Group`, `Impersonate-Uid`, each `Impersonate-Extra-<key>` value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Impersonation {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: String,
    /// (key, value): the key lower-cased and %-decoded, as kube-apiserver reads it.
    pub extra: Vec<(String, String)>,
}

impl Impersonation {
    /// From a request's headers (names in any case).
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Impersonation {
        let mut wanted = Impersonation::default();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "impersonate-user" if wanted.user.is_empty() => wanted.user = value.to_string(),
                "impersonate-group" => wanted.groups.push(value.to_string()),
                "impersonate-uid" if wanted.uid.is_empty() => wanted.uid = value.to_string(),
                _ => {
                    if let Some(key) = name.strip_prefix("impersonate-extra-") {
                        wanted.extra.push((percent_decode(key), value.to_string()));
                    }
                }
            }
        }
        wanted
    }

    fn is_empty(&self) -> bool {
        self.user.is_empty() && self.groups.is_empty() && self.uid.is_empty() && self.extra.is_empty()
    }
}

/// `%XX` sequences decoded (Go's `url.PathUnescape`); text that does not decode is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'%', _, _) => return text.to_string(),
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The user a request acts as: `requester`, or the one it impersonates once `requester` may
/// impersonate each part (kube-apiserver's impersonation filter): the verb `impersonate` on
/// `users`, `serviceaccounts` (a `system:serviceaccount:NS:NAME` user, in its namespace),
/// `groups`, and in `authentication.k8s.io` on `uids` and `userextras/<key>`. A service
/// account without groups asked for gets its own; every user but `system:anonymous` gets
/// `system:authenticated` unless `system:authenticated` or `system:unauthenticated` was asked
/// for. Groups, extras or a uid without a user are refused (kube-apiserver's 500).
pub fn impersonate(requester: &User, wanted: &Impersonation, policy: &dyn Policy) -> Result<User, ApiError> {
    if wanted.is_empty() {
        return Ok(requester.clone());
    }
    if wanted.user.is_empty() {
        return Err(ApiError::internal(
            "Internal error occurred: requested impersonation of groups, extras or a uid without impersonating a user",
        ));
    }
    let check = |group: &str, resource: &str, subresource: &str, namespace: &str, name: &str| -> Result<(), ApiError> {
        let acting_as = RequestInfo {
            resource_request: true,
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        };
        match authorize(requester, &acting_as, policy) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) => Err(ApiError::forbidden(forbidden_message(requester, &acting_as, &reason), group, resource, name)),
        }
    };
    let mut groups = Vec::new();
    let account = wanted
        .user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty());
    match account {
        Some((namespace, name)) => {
            check("", "serviceaccounts", "", namespace, name)?;
            if wanted.groups.is_empty() {
                groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{namespace}")];
            }
        }
        None => check("", "users", "", "", &wanted.user)?,
    }
    for group in &wanted.groups {
        check("", "groups", "", "", group)?;
        groups.push(group.clone());
    }
    for (key, value) in &wanted.extra {
        check("authentication.k8s.io", "userextras", key, "", value)?;
    }
    if !wanted.uid.is_empty() {
        check("authentication.k8s.io", "uids", "", "", &wanted.uid)?;
    }
    let anonymous = User::anonymous();
    if wanted.user != anonymous.name {
        if !groups.iter().any(|g| g == AUTHENTICATED || g == "system:unauthenticated") {
            groups.push(AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == "system:unauthenticated") {
        groups.push("system:unauthenticated".into());
    }
    Ok(User { name: wanted.user.clone(), groups })
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

    fn decide(user: &User, request: &RequestInfo) -> Decision {
        authorize(user, request, &crate::rbac_defaults::Defaults::new())
    }

    #[test]
    fn impersonation_needs_the_verb_on_each_part() {
        let policy = crate::rbac_defaults::Defaults::new();
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        let alice = User::from_certificate("alice", &[]);
        let wanted = |headers: &[(&str, &str)]| Impersonation::from_headers(headers.iter().copied());
        // No headers: the requester itself.
        assert_eq!(impersonate(&alice, &wanted(&[("Accept", "*/*")]), &policy), Ok(alice.clone()));
        // kubectl --as=bob --as-group=devs: bob in devs and system:authenticated.
        let bob = impersonate(&admin, &wanted(&[("Impersonate-User", "bob"), ("Impersonate-Group", "devs")]), &policy).unwrap();
        assert_eq!((bob.name.as_str(), bob.groups.as_slice()), ("bob", &["devs".to_string(), AUTHENTICATED.into()][..]));
        // A service account gets its own groups when none are asked for.
        let sa = impersonate(&admin, &wanted(&[("impersonate-user", "system:serviceaccount:team:robot")]), &policy).unwrap();
        assert_eq!(sa, User::from_token("system:serviceaccount:team:robot"));
        let anonymous = impersonate(&admin, &wanted(&[("Impersonate-User", "system:anonymous")]), &policy).unwrap();
        assert_eq!(anonymous, User::anonymous());
        // Extras' keys are lower-cased and %-decoded.
        assert_eq!(wanted(&[("Impersonate-Extra-Scopes%2Fa", "x")]).extra, [("scopes/a".to_string(), "x".to_string())]);
        // Refusals, as kube-apiserver words them.
        let e = impersonate(&alice, &wanted(&[("Impersonate-User", "bob")]), &policy).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                403,
                "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
            )
        );
        let e = impersonate(&alice, &wanted(&[("Impersonate-User", "system:serviceaccount:team:robot")]), &policy).unwrap_err();
        assert_eq!(e.message, "serviceaccounts \"robot\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"team\"");
        let e = impersonate(&admin, &wanted(&[("Impersonate-Group", "devs")]), &policy).unwrap_err();
        assert_eq!(e.code, 500);
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
    fn decisions_under_the_default_policy() {
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        let anonymous = User::anonymous();
        let allowed = |d: Decision| matches!(d, Decision::Allow(_));
        for (method, target) in [
            ("GET", "/api/v1/pods"),
            ("DELETE", "/api/v1/namespaces/x"),
            ("GET", "/metrics"),
            ("POST", "/apis/apps/v1/namespaces/d/deployments"),
        ] {
            assert_eq!(decide(&admin, &info(method, target)), Decision::Allow(String::new()), "{target}");
            assert!(!allowed(decide(&sa(), &info(method, target))), "{target}");
        }
        for target in ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version"] {
            assert!(allowed(decide(&sa(), &info("GET", target))), "{target}");
        }
        assert_eq!(
            decide(&sa(), &info("GET", "/apis")),
            Decision::Allow(r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#.into())
        );
        for target in ["/version", "/version/", "/healthz", "/livez", "/readyz"] {
            assert!(allowed(decide(&anonymous, &info("GET", target))), "{target}");
        }
        for (method, target) in
            [("GET", "/api"), ("GET", "/apis/apps/v1"), ("HEAD", "/version"), ("GET", "/readyz/ping"), ("POST", "/version")]
        {
            assert_eq!(decide(&anonymous, &info(method, target)), Decision::Deny(String::new()), "{method} {target}");
        }
        // Every authenticated user may ask what it may do and who it is (system:basic-user).
        let review = info("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
        assert!(allowed(decide(&sa(), &review)));
        assert!(!allowed(decide(&anonymous, &review)));
        // Discovery is not a way in: the authenticated may not read what it lists.
        assert_eq!(decide(&sa(), &info("GET", "/api/v1/namespaces/default/pods")), Decision::Deny(String::new()));
    }

    #[test]
    fn a_binding_grants_only_what_its_author_holds() {
        let post = info("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings");
        let body = br#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"b"},
            "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:discovery"},"subjects":[]}"#;
        let sent = Sent { body, content_type: "application/json" };
        let policy = crate::rbac_defaults::Defaults::new();
        // Every authenticated user holds system:discovery's rules; nobody but masters holds view's.
        confirm_no_escalation(&sa(), &post, sent, &policy, None).unwrap();
        let view = String::from_utf8_lossy(body).replace("system:discovery", "view");
        let sent = Sent { body: view.as_bytes(), content_type: "application/json" };
        let e = confirm_no_escalation(&sa(), &post, sent, &policy, None).unwrap_err();
        assert_eq!(e.code, 403);
        assert!(
            e.message.starts_with("clusterrolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"system:serviceaccount:default:default\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:default\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"bindings\"], Verbs:[\"get\" \"list\" \"watch\"]}\n"),
            "{}",
            e.message
        );
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        confirm_no_escalation(&admin, &post, sent, &policy, None).unwrap();
        // A PATCH is checked on the object it would make: turning a harmless binding into one of
        // view is refused, a label is not.
        let live: Value = serde_json::from_slice(body).unwrap();
        let patch = info("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/b");
        let to_view = Sent { body: br#"{"roleRef":{"name":"view"}}"#, content_type: "application/merge-patch+json" };
        assert_eq!(confirm_no_escalation(&sa(), &patch, to_view, &policy, Some(&live)).unwrap_err().code, 403);
        let json_patch =
            Sent { body: br#"[{"op":"replace","path":"/roleRef/name","value":"view"}]"#, content_type: "application/json-patch+json" };
        assert_eq!(confirm_no_escalation(&sa(), &patch, json_patch, &policy, Some(&live)).unwrap_err().code, 403);
        let label = Sent { body: br#"{"metadata":{"labels":{"a":"b"}}}"#, content_type: "application/merge-patch+json" };
        confirm_no_escalation(&sa(), &patch, label, &policy, Some(&live)).unwrap();
        // Nothing but RBAC's kinds is checked.
        confirm_no_escalation(&sa(), &info("POST", "/api/v1/namespaces/default/configmaps"), sent, &policy, None).unwrap();
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
