//! RBAC, as kube-apiserver's authorizer evaluates it (`plugin/pkg/auth/authorizer/rbac`): a
//! request is allowed when any rule of any role bound to the user matches it; there are no deny
//! rules. Pure: the roles and bindings come from a [`Policy`] the caller passes in (the store's,
//! or the controller's default policy), and nothing here does I/O. kubectl's describers use the
//! same rule breakdown and compaction ([`breakdown`], [`compact`]).
//!
//! Bindings are read in kube-apiserver's order: every ClusterRoleBinding, then the RoleBindings of
//! the request's namespace (a RoleBinding grants only there, even when it names a ClusterRole).
//! A subject applies to a user by name (User), by one of its groups (Group), or as the service
//! account's user name `system:serviceaccount:NS:NAME` (ServiceAccount; a RoleBinding's subject
//! without a namespace is of the binding's). A binding whose role is missing grants nothing and
//! says why in the denial's reason, as RBAC does (`RBAC: clusterrole.rbac.authorization.k8s.io
//! "x" not found`).

use emu_api::selector::Selector;
use emu_api::typed::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};

/// What a request asks, as RBAC reads it (apiserver's `authorizer.Attributes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    /// A request for an API resource; otherwise for a non-resource URL (`path`).
    pub resource_request: bool,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    /// "" at the cluster scope.
    pub namespace: &'a str,
    pub path: &'a str,
}

/// Who asks: a user name and its groups.
#[derive(Debug, Clone, Copy)]
pub struct UserInfo<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
}

/// Where the roles and bindings are read from.
pub trait Policy {
    fn cluster_role_bindings(&self) -> Vec<ClusterRoleBinding>;
    /// The RoleBindings of `namespace`.
    fn role_bindings(&self, namespace: &str) -> Vec<RoleBinding>;
    fn cluster_role(&self, name: &str) -> Option<ClusterRole>;
    fn role(&self, namespace: &str, name: &str) -> Option<Role>;
}

/// RBAC's answer: allowed, with the binding that allowed it (`RBAC: allowed by ...`), or not,
/// with the errors met on the way ("" when there were none, as for a plain denial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(String),
    Denied(String),
}

/// A binding that applies to the user, as [`visit`] meets it: its kind, its name as the
/// describers print it (a RoleBinding's `name/namespace`), its role, the subject that is the
/// user, and its role's rules (or why there are none).
struct Met<'a> {
    kind: &'static str,
    name: String,
    role_ref: &'a RoleRef,
    subject: &'a Subject,
    namespace: &'a str,
    rules: Result<Vec<PolicyRule>, String>,
}

/// Calls `f` on every binding that applies to `user` in `namespace` ("" at the cluster scope),
/// in kube-apiserver's order (`VisitRulesFor`), until it returns false.
fn visit(policy: &dyn Policy, user: UserInfo<'_>, namespace: &str, f: &mut dyn FnMut(Met<'_>) -> bool) {
    for binding in policy.cluster_role_bindings() {
        let Some(subject) = applies(user, binding.subjects.as_deref().unwrap_or_default(), "") else { continue };
        let name = binding.metadata.name.clone().unwrap_or_default();
        let rules = rules_of(policy, &binding.role_ref, "");
        if !f(Met { kind: "ClusterRoleBinding", name, role_ref: &binding.role_ref, subject, namespace: "", rules }) {
            return;
        }
    }
    if namespace.is_empty() {
        return;
    }
    for binding in policy.role_bindings(namespace) {
        let Some(subject) = applies(user, binding.subjects.as_deref().unwrap_or_default(), namespace) else { continue };
        let name = format!("{}/{namespace}", binding.metadata.name.as_deref().unwrap_or_default());
        let rules = rules_of(policy, &binding.role_ref, namespace);
        if !f(Met { kind: "RoleBinding", name, role_ref: &binding.role_ref, subject, namespace, rules }) {
            return;
        }
    }
}

/// `utilerrors.NewAggregate`'s text: one error as it is, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Whether `user` may do what `attrs` asks under `policy`.
pub fn authorize(policy: &dyn Policy, user: UserInfo<'_>, attrs: &Attributes<'_>) -> Verdict {
    let mut errors = Vec::new();
    let mut allowed = None;
    visit(policy, user, attrs.namespace, &mut |met| match &met.rules {
        Ok(rules) if rules.iter().any(|r| rule_allows(r, attrs)) => {
            allowed = Some(allowed_by(met.kind, &met.name, met.role_ref, met.subject, met.namespace));
            false
        }
        Ok(_) => true,
        Err(e) => {
            errors.push(e.clone());
            true
        }
    });
    match allowed {
        Some(reason) => Verdict::Allowed(reason),
        None if errors.is_empty() => Verdict::Denied(String::new()),
        None => Verdict::Denied(format!("RBAC: {}", aggregate(&errors))),
    }
}

/// Every rule `user` holds in `namespace` (`RulesFor`, what `kubectl auth can-i --list` shows),
/// in the order of the bindings, and the errors met (a binding to a missing role), as one text.
pub fn rules_for(policy: &dyn Policy, user: UserInfo<'_>, namespace: &str) -> (Vec<PolicyRule>, Option<String>) {
    let (mut all, mut errors) = (Vec::new(), Vec::new());
    visit(policy, user, namespace, &mut |met| {
        match met.rules {
            Ok(rules) => all.extend(rules),
            Err(e) => errors.push(e),
        }
        true
    });
    (all, (!errors.is_empty()).then(|| aggregate(&errors)))
}

/// `RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group
/// "system:masters"` (the binding describers of kube-apiserver's RBAC authorizer).
fn allowed_by(kind: &str, name: &str, role_ref: &RoleRef, subject: &Subject, namespace: &str) -> String {
    let who = match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
            format!("{}/{ns}", subject.name)
        }
        _ => subject.name.clone(),
    };
    format!("RBAC: allowed by {kind} {name:?} of {} {:?} to {} {who:?}", role_ref.kind, role_ref.name, subject.kind)
}

/// The first subject that is `user` (`appliesTo`); `namespace` is the binding's ("" for a
/// ClusterRoleBinding), which a ServiceAccount subject without one is taken to be in.
pub fn applies<'s>(user: UserInfo<'_>, subjects: &'s [Subject], namespace: &str) -> Option<&'s Subject> {
    subjects.iter().find(|s| match s.kind.as_str() {
        "User" => s.name == user.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    })
}

/// The rules of the role a binding names (`GetRoleReferenceRules`): a ClusterRole, or a Role of
/// the binding's namespace. A missing role is an error, named as the listers name it.
fn rules_of(policy: &dyn Policy, role_ref: &RoleRef, namespace: &str) -> Result<Vec<PolicyRule>, String> {
    match role_ref.kind.as_str() {
        "ClusterRole" => policy
            .cluster_role(&role_ref.name)
            .map(|r| r.rules.unwrap_or_default())
            .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {:?} not found", role_ref.name)),
        "Role" => policy
            .role(namespace, &role_ref.name)
            .map(|r| r.rules.unwrap_or_default())
            .ok_or_else(|| format!("role.rbac.authorization.k8s.io {:?} not found", role_ref.name)),
        other => Err(format!("unsupported role reference kind: {other:?}")),
    }
}

/// Whether one rule allows the request (`RuleAllows`): verb, API group, `resource` or
/// `resource/subresource` (or `*/subresource`), and the name when the rule lists names; for a
/// non-resource URL, the verb and the path (exact, or a prefix ending in `*`).
pub fn rule_allows(rule: &PolicyRule, attrs: &Attributes<'_>) -> bool {
    if !has(&rule.verbs, attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return rule.non_resource_urls.iter().flatten().any(|url| {
            url == "*" || url == attrs.path || url.strip_suffix('*').is_some_and(|_| attrs.path.starts_with(url.trim_end_matches('*')))
        });
    }
    let combined =
        if attrs.subresource.is_empty() { attrs.resource.to_string() } else { format!("{}/{}", attrs.resource, attrs.subresource) };
    let resource_matches = rule.resources.iter().flatten().any(|r| {
        r == "*" || *r == combined || (!attrs.subresource.is_empty() && r.strip_prefix("*/").is_some_and(|sub| sub == attrs.subresource))
    });
    let names = rule.resource_names.as_deref().unwrap_or_default();
    has(rule.api_groups.as_deref().unwrap_or_default(), attrs.group)
        && resource_matches
        && (names.is_empty() || names.iter().any(|n| n == attrs.name))
}

/// A list that holds `value` or `*`.
fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// What a grant needs that its granter lacks (`ConfirmNoEscalation`'s `validation.Covers`): the
/// `requested` rules broken down to one verb, group, resource and name (or one verb and URL) each,
/// those no rule of `owner` covers, compacted (`CompactRules`: the verbs of one group's resource
/// together). Empty when `owner` covers them all.
pub fn uncovered(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    compact(requested.iter().flat_map(breakdown).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect())
}

/// Rules with the verbs of one group's resource (and name) together (`CompactRules`): a rule of
/// one group, one resource, at most one name and no URL is merged with the others of the same
/// group, resource and name; every other rule is kept as it is, before the merged ones.
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut compacted: Vec<PolicyRule> = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let one = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| l.len() == 1);
        let is_simple = one(&rule.api_groups)
            && one(&rule.resources)
            && rule.resource_names.as_ref().is_none_or(|n| n.len() <= 1)
            && rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty);
        if !is_simple {
            compacted.push(rule);
            continue;
        }
        let names = |r: &PolicyRule| r.resource_names.clone().unwrap_or_default();
        match simple.iter_mut().find(|s| s.api_groups == rule.api_groups && s.resources == rule.resources && names(s) == names(&rule)) {
            Some(s) => s.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    compacted.extend(simple);
    compacted
}

/// One rule as single grants (`BreakdownRule`): one verb, group, resource and name, or one
/// verb and URL, each.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |v: &String| Some(vec![v.clone()]);
    let mut out = Vec::new();
    for group in rule.api_groups.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                let sub = PolicyRule { api_groups: one(group), resources: one(resource), verbs: vec![verb.clone()], ..Default::default() };
                match rule.resource_names.as_deref().unwrap_or_default() {
                    [] => out.push(sub),
                    names => out.extend(names.iter().map(|n| PolicyRule { resource_names: one(n), ..sub.clone() })),
                }
            }
        }
    }
    for url in rule.non_resource_urls.iter().flatten() {
        for verb in &rule.verbs {
            out.push(PolicyRule { non_resource_urls: one(url), verbs: vec![verb.clone()], ..Default::default() });
        }
    }
    out
}

/// Whether `owner` grants all of `sub` (`ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let list = |l: &Option<Vec<String>>| l.as_deref().unwrap_or_default().to_vec();
    let has_all = |set: &[String], items: &[String]| items.iter().all(|i| set.contains(i));
    let star = |set: &[String]| set.iter().any(|s| s == "*");
    let (owner_verbs, owner_groups, owner_resources) = (&owner.verbs, list(&owner.api_groups), list(&owner.resources));
    let verbs = star(owner_verbs) || has_all(owner_verbs, &sub.verbs);
    let groups = star(&owner_groups) || has_all(&owner_groups, &list(&sub.api_groups));
    let resources = star(&owner_resources)
        || list(&sub.resources).iter().all(|path| {
            owner_resources.contains(path)
                || path.split_once('/').is_some_and(|(_, subresource)| owner_resources.contains(&format!("*/{subresource}")))
        });
    let owner_urls = list(&owner.non_resource_urls);
    let urls = list(&sub.non_resource_urls)
        .iter()
        .all(|url| owner_urls.iter().any(|o| o == url || (o.ends_with('*') && url.starts_with(o.trim_end_matches('*')))));
    let (owner_names, sub_names) = (list(&owner.resource_names), list(&sub.resource_names));
    let names = owner_names.is_empty() || (!sub_names.is_empty() && has_all(&owner_names, &sub_names));
    verbs && groups && resources && urls && names
}

/// A rule as an escalation error names it (`CompactString`): `{APIGroups:[""], Resources:["secrets"],
/// Verbs:["get" "list"]}`, the lists as Go's `%q` prints them.
pub fn compact_string(rule: &PolicyRule) -> String {
    let quoted = |l: &[String]| format!("[{}]", l.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "));
    let mut parts = Vec::new();
    for (name, list) in [
        ("APIGroups", rule.api_groups.as_deref().unwrap_or_default()),
        ("Resources", rule.resources.as_deref().unwrap_or_default()),
        ("NonResourceURLs", rule.non_resource_urls.as_deref().unwrap_or_default()),
        ("ResourceNames", rule.resource_names.as_deref().unwrap_or_default()),
        ("Verbs", &rule.verbs),
    ] {
        if !list.is_empty() {
            parts.push(format!("{name}:{}", quoted(list)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The error of a grant beyond the granter's own rights (`ConfirmNoEscalation`): the missing
/// rules, one a line, sorted.
pub fn escalation_error(user: UserInfo<'_>, missing: &[PolicyRule], resolution_error: Option<&str>) -> String {
    let mut lines: Vec<String> = missing.iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let groups = format!("[{}]", user.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(" "));
    let mut message =
        format!("user {:?} (groups={groups}) is attempting to grant RBAC permissions not currently held:\n{}", user.name, lines.join("\n"));
    if let Some(e) = resolution_error {
        message.push_str(&format!("; resolution errors: [{e}]"));
    }
    message
}

/// The rules of an aggregated ClusterRole (kube-controller-manager's ClusterRole aggregation):
/// every rule of every other ClusterRole its selectors match, by role name, each once. None when
/// the role aggregates nothing.
pub fn aggregated_rules(role: &ClusterRole, all: &[ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role.aggregation_rule.as_ref()?.cluster_role_selectors.as_deref().unwrap_or_default();
    let mut sorted: Vec<&ClusterRole> = all.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        // A selector that does not parse selects nothing.
        let Ok(selector) = Selector::from_typed(Some(selector)) else { continue };
        for other in sorted.iter().filter(|o| o.metadata.name != role.metadata.name) {
            if !selector.matches(emu_api::typed::labels(&other.metadata)) {
                continue;
            }
            for rule in other.rules.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::typed;
    use serde_json::{json, Value};

    fn rule(v: Value) -> PolicyRule {
        typed::decode(&v).unwrap()
    }

    fn resource<'a>(verb: &'a str, group: &'a str, resource: &'a str, namespace: &'a str) -> Attributes<'a> {
        Attributes { verb, resource_request: true, group, resource, namespace, ..Attributes::default() }
    }

    fn path<'a>(verb: &'a str, path: &'a str) -> Attributes<'a> {
        Attributes { verb, path, ..Attributes::default() }
    }

    #[test]
    fn a_rule_matches_verb_group_resource_and_name() {
        let r = rule(json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}));
        assert!(rule_allows(&r, &resource("list", "", "pods", "default")));
        assert!(!rule_allows(&r, &resource("delete", "", "pods", "default")));
        assert!(!rule_allows(&r, &resource("list", "apps", "pods", "default")));
        assert!(!rule_allows(&r, &resource("list", "", "secrets", "default")));
        // A subresource is matched as `resource/subresource`, never by its resource alone.
        let log = Attributes { subresource: "log", name: "web", ..resource("get", "", "pods", "default") };
        assert!(rule_allows(&r, &log));
        let exec = Attributes { subresource: "exec", ..log };
        assert!(!rule_allows(&r, &exec));
        let any_status = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
        assert!(rule_allows(&any_status, &Attributes { subresource: "status", ..resource("patch", "apps", "deployments", "d") }));
        assert!(!rule_allows(&any_status, &resource("patch", "apps", "deployments", "d")));
        // Names: a rule that lists them matches only those (so no list, which has none).
        let named = rule(json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get", "list"]}));
        assert!(rule_allows(&named, &Attributes { name: "settings", ..resource("get", "", "configmaps", "d") }));
        assert!(!rule_allows(&named, &Attributes { name: "other", ..resource("get", "", "configmaps", "d") }));
        assert!(!rule_allows(&named, &resource("list", "", "configmaps", "d")));
        // A resource rule never matches a URL, nor a URL rule a resource.
        assert!(!rule_allows(&r, &path("get", "/api")));
        let urls = rule(json!({"nonResourceURLs": ["/api", "/apis/*", "/healthz"], "verbs": ["get"]}));
        assert!(!rule_allows(&urls, &resource("get", "", "pods", "")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_a_trailing_star() {
        let r = rule(json!({"nonResourceURLs": ["/api", "/apis/*", "/version"], "verbs": ["get"]}));
        for (verb, p, allowed) in [
            ("get", "/api", true),
            ("get", "/api/v1", false),
            ("get", "/apis/", true),
            ("get", "/apis/apps/v1", true),
            ("get", "/apis", false),
            ("get", "/version/", false),
            ("post", "/api", false),
        ] {
            assert_eq!(rule_allows(&r, &path(verb, p)), allowed, "{verb} {p}");
        }
        let all = rule(json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
        assert!(rule_allows(&all, &path("delete", "/metrics")));
    }

    /// A policy of JSON objects, for tests.
    #[derive(Default)]
    struct Objects(Vec<Value>);

    impl Objects {
        fn of<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Vec<T> {
            self.0.iter().filter(|o| o["kind"] == kind).map(|o| typed::decode(o).unwrap()).collect()
        }
    }

    impl Policy for Objects {
        fn cluster_role_bindings(&self) -> Vec<ClusterRoleBinding> {
            self.of("ClusterRoleBinding")
        }
        fn role_bindings(&self, namespace: &str) -> Vec<RoleBinding> {
            self.of::<RoleBinding>("RoleBinding").into_iter().filter(|b| b.metadata.namespace.as_deref() == Some(namespace)).collect()
        }
        fn cluster_role(&self, name: &str) -> Option<ClusterRole> {
            self.of::<ClusterRole>("ClusterRole").into_iter().find(|r| r.metadata.name.as_deref() == Some(name))
        }
        fn role(&self, namespace: &str, name: &str) -> Option<Role> {
            self.of::<Role>("Role")
                .into_iter()
                .find(|r| r.metadata.name.as_deref() == Some(name) && r.metadata.namespace.as_deref() == Some(namespace))
        }
    }

    fn binding(kind: &str, name: &str, namespace: &str, role: (&str, &str), subjects: Value) -> Value {
        json!({"kind": kind, "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1}, "subjects": subjects})
    }

    fn policy() -> Objects {
        Objects(vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "view"}, "rules": [
                {"apiGroups": [""], "resources": ["pods", "services", "endpoints", "configmaps"], "verbs": ["get", "list", "watch"]}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "nodes-reader"}, "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
            json!({"kind": "Role", "metadata": {"name": "secrets", "namespace": "team"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            binding("RoleBinding", "alice-view", "default", ("ClusterRole", "view"), json!([{"kind": "User", "name": "alice"}])),
            binding("RoleBinding", "sa-secrets", "team", ("Role", "secrets"), json!([{"kind": "ServiceAccount", "name": "default"}])),
            binding("ClusterRoleBinding", "ops-nodes", "", ("ClusterRole", "nodes-reader"), json!([{"kind": "Group", "name": "ops"}])),
            binding("ClusterRoleBinding", "dangling", "", ("ClusterRole", "gone"), json!([{"kind": "User", "name": "carol"}])),
        ])
    }

    fn user<'a>(name: &'a str, groups: &'a [String]) -> UserInfo<'a> {
        UserInfo { name, groups }
    }

    #[test]
    fn bindings_grant_their_roles_to_their_subjects_where_they_are() {
        let p = policy();
        let none: Vec<String> = vec![];
        let alice = user("alice", &none);
        assert_eq!(
            authorize(&p, alice, &resource("list", "", "pods", "default")),
            Verdict::Allowed(r#"RBAC: allowed by RoleBinding "alice-view/default" of ClusterRole "view" to User "alice""#.into())
        );
        // A RoleBinding grants in its namespace only, even a ClusterRole; never secrets by view.
        assert_eq!(authorize(&p, alice, &resource("list", "", "pods", "kube-system")), Verdict::Denied(String::new()));
        assert_eq!(authorize(&p, alice, &resource("list", "", "pods", "")), Verdict::Denied(String::new()));
        assert_eq!(authorize(&p, alice, &resource("get", "", "secrets", "default")), Verdict::Denied(String::new()));
        // A service account by its user name; a subject without namespace is the binding's.
        let sa_groups = vec!["system:serviceaccounts".to_string()];
        let sa = user("system:serviceaccount:team:default", &sa_groups);
        assert!(matches!(authorize(&p, sa, &resource("get", "", "secrets", "team")), Verdict::Allowed(_)));
        let other = user("system:serviceaccount:default:default", &sa_groups);
        assert_eq!(authorize(&p, other, &resource("get", "", "secrets", "team")), Verdict::Denied(String::new()));
        // A group, cluster-wide.
        let ops = vec!["ops".to_string()];
        assert_eq!(
            authorize(&p, user("bob", &ops), &Attributes { name: "node-1", ..resource("get", "", "nodes", "") }),
            Verdict::Allowed(r#"RBAC: allowed by ClusterRoleBinding "ops-nodes" of ClusterRole "nodes-reader" to Group "ops""#.into())
        );
        // A binding to a missing role grants nothing and says so.
        assert_eq!(
            authorize(&p, user("carol", &none), &resource("list", "", "pods", "default")),
            Verdict::Denied(r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into())
        );
    }

    #[test]
    fn the_rules_a_user_holds_are_those_of_every_binding_that_applies() {
        let p = policy();
        let ops = vec!["ops".to_string()];
        let (rules, errors) = rules_for(&p, user("alice", &ops), "default");
        let resources: Vec<&str> = rules.iter().flat_map(|r| r.resources.iter().flatten()).map(String::as_str).collect();
        assert_eq!(resources, ["nodes", "pods", "services", "endpoints", "configmaps"]);
        assert_eq!(errors, None);
        let (rules, errors) = rules_for(&p, user("carol", &[]), "default");
        assert!(rules.is_empty());
        assert_eq!(errors.as_deref(), Some(r#"clusterrole.rbac.authorization.k8s.io "gone" not found"#));
    }

    #[test]
    fn a_grant_must_be_covered_by_the_granters_own_rules() {
        let owner = [
            rule(json!({"apiGroups": [""], "resources": ["pods", "configmaps", "*/status"], "verbs": ["get", "list"]})),
            rule(json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["one"], "verbs": ["get"]})),
            rule(json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]})),
        ];
        let covered = [
            rule(json!({"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["list"]})),
            rule(json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["one"], "verbs": ["get"]})),
            rule(json!({"nonResourceURLs": ["/apis/apps"], "verbs": ["get"]})),
        ];
        assert!(uncovered(&owner, &covered).is_empty());
        let asked = [
            rule(json!({"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "watch", "delete"]})),
            rule(json!({"nonResourceURLs": ["*"], "verbs": ["*"]})),
        ];
        let missing: Vec<String> = uncovered(&owner, &asked).iter().map(compact_string).collect();
        assert_eq!(
            missing,
            [
                r#"{NonResourceURLs:["*"], Verbs:["*"]}"#,
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["watch" "delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "watch" "delete"]}"#,
            ]
        );
        let groups = vec!["dev".to_string(), "system:authenticated".to_string()];
        assert_eq!(
            escalation_error(user("alice", &groups), &uncovered(&owner, &asked[1..]), None),
            "user \"alice\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
        );
    }

    #[test]
    fn aggregation_takes_each_rule_once_from_the_roles_selected() {
        let role = |name: &str, labels: Value, rules: Value| -> ClusterRole {
            typed::decode(&json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules})).unwrap()
        };
        let get_pods = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
        let get_svcs = json!({"apiGroups": [""], "resources": ["services"], "verbs": ["get"]});
        let mut view = role("view", json!({}), json!([]));
        view.aggregation_rule = typed::decode(&json!({"clusterRoleSelectors": [{"matchLabels": {"agg": "view"}}]})).unwrap();
        let all = vec![
            role("b-extra", json!({"agg": "view"}), json!([get_svcs, get_pods])),
            role("a-base", json!({"agg": "view"}), json!([get_pods])),
            role("unrelated", json!({}), json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])),
            view.clone(),
        ];
        assert_eq!(aggregated_rules(&view, &all).unwrap(), [rule(get_pods), rule(get_svcs)]);
        assert!(aggregated_rules(&all[0], &all).is_none());
    }
}
