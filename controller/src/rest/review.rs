//! The reviews a client asks about itself: `SelfSubjectAccessReview` (`kubectl auth can-i`: may I
//! do this?) answered by the same [`authz::authorize`] under the same policy every request goes
//! through, `SelfSubjectRulesReview` (`kubectl auth can-i --list`: what may I do here?) from the
//! same bindings, and `SelfSubjectReview` (`kubectl auth whoami`: who am I?). None is stored: the
//! answer is the request with its `status` filled in, `201 Created` as kube-apiserver answers.

use super::authz::{self, Decision, User};
use super::request::RequestInfo;
use super::status::{to_json, ApiError, FieldError};
use super::write::protobuf;
use super::{Reply, Sent};
use emu_logic::rbac::{self, Policy, UserInfo};
use serde_json::{json, Value};

/// The answer to a create of a review (None for any other request); an access review is
/// decided under `policy`, as the requests themselves are.
/// A node's access reviews (`store` given) are decided by the Node authorizer first, as its
/// requests are.
pub fn answer(
    user: &User,
    info: &RequestInfo,
    sent: Sent,
    pretty: bool,
    policy: &dyn Policy,
    store: Option<&crate::store::Store>,
) -> Option<Result<Reply, ApiError>> {
    if !info.resource_request || info.verb != "create" || !info.name.is_empty() {
        return None;
    }
    let access = |request: Value| access_review(user, request, policy, store);
    let whoami = |_: Value| Ok(self_review(user));
    let rules = |request: Value| rules_review(user, &request, policy);
    let (kind, review): (&str, &dyn Fn(Value) -> Result<Value, ApiError>) = match (info.group.as_str(), info.resource.as_str()) {
        ("authorization.k8s.io", "selfsubjectaccessreviews") => ("SelfSubjectAccessReview", &access),
        ("authorization.k8s.io", "selfsubjectrulesreviews") => ("SelfSubjectRulesReview", &rules),
        ("authentication.k8s.io", "selfsubjectreviews") => ("SelfSubjectReview", &whoami),
        _ => return None,
    };
    // kubectl's typed clients send these as protobuf.
    let media = sent.content_type.split(';').next().unwrap_or("").trim();
    let request = if media == protobuf::MEDIA_TYPE {
        protobuf::decode(kind, sent.body)
    } else {
        serde_json::from_slice(sent.body).map_err(|e| e.to_string())
    };
    let answer = request
        .map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format: {e}")))
        .and_then(review)
        .map(|reviewed| Reply::new(201, "application/json", to_json(&reviewed, pretty)));
    Some(answer)
}

/// `spec.resourceAttributes` (or `spec.nonResourceAttributes`) decided for `user`.
fn access_review(user: &User, mut review: Value, policy: &dyn Policy, store: Option<&crate::store::Store>) -> Result<Value, ApiError> {
    let spec = &review["spec"];
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let asked = if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        RequestInfo {
            resource_request: true,
            verb: text(r, "verb"),
            group: text(r, "group"),
            version: text(r, "version"),
            namespace: text(r, "namespace"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            name: text(r, "name"),
            ..RequestInfo::default()
        }
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
        RequestInfo { resource_request: false, verb: text(n, "verb"), path: text(n, "path"), ..RequestInfo::default() }
    } else {
        let error = FieldError {
            reason: "FieldValueInvalid",
            field: "spec.resourceAttributes",
            body: "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
        };
        return Err(ApiError::invalid("authorization.k8s.io", "SelfSubjectAccessReview", "", &[error]));
    };
    // A plain denial has no reason, as RBAC's (kubectl prints `no - <reason>` when there is one);
    // an allowance by RBAC names the binding.
    use super::node_authz::{self, NodeDecision};
    let by_node_authorizer = match (store, node_authz::node_of(user)) {
        (Some(store), Some(node)) => node_authz::authorize(node, user, &asked, store),
        _ => NodeDecision::NoOpinion,
    };
    let (allowed, reason) = match by_node_authorizer {
        NodeDecision::Allow => (true, String::new()),
        NodeDecision::Deny(_) => (false, String::new()),
        NodeDecision::NoOpinion => match authz::authorize(user, &asked, policy) {
            Decision::Allow(reason) => (true, reason),
            Decision::Deny(reason) => (false, reason),
        },
    };
    review["status"] = json!({"allowed": allowed});
    if !reason.is_empty() {
        review["status"]["reason"] = json!(reason);
    }
    review["metadata"] = json!({"creationTimestamp": null});
    Ok(review)
}

/// What `user` may do in `spec.namespace` (`kubectl auth can-i --list`): the rules of every
/// binding that applies, resource rules and non-resource rules apart (a rule with both is in
/// both), as kube-apiserver answers: a new review with only its status. A binding to a missing
/// role is named in `evaluationError`.
fn rules_review(user: &User, review: &Value, policy: &dyn Policy) -> Result<Value, ApiError> {
    let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
    if namespace.is_empty() {
        return Err(ApiError::bad_request("no namespace on request"));
    }
    let (rules, error) = rbac::rules_for(policy, UserInfo { name: &user.name, groups: &user.groups }, namespace);
    let non_empty = |list: &Option<Vec<String>>| list.as_ref().filter(|l| !l.is_empty()).cloned();
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| r.resources.as_ref().is_some_and(|l| !l.is_empty()))
        .map(|r| {
            let mut rule = json!({"verbs": r.verbs});
            for (key, list) in [("apiGroups", &r.api_groups), ("resources", &r.resources), ("resourceNames", &r.resource_names)] {
                if let Some(list) = non_empty(list) {
                    rule[key] = json!(list);
                }
            }
            rule
        })
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter_map(|r| non_empty(&r.non_resource_urls).map(|urls| json!({"verbs": r.verbs, "nonResourceURLs": urls})))
        .collect();
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false});
    if let Some(error) = error {
        status["evaluationError"] = json!(error);
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {},
        "status": status,
    }))
}

/// Who `user` is, as kube-apiserver tells it.
fn self_review(user: &User) -> Value {
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": user.name, "groups": user.groups}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> crate::rbac_defaults::Defaults {
        crate::rbac_defaults::Defaults::new()
    }

    fn review(user: &User, body: Value) -> Value {
        let info = RequestInfo::parse("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "").unwrap();
        let body = body.to_string();
        let sent = Sent { body: body.as_bytes(), content_type: "application/json" };
        let reply = answer(user, &info, sent, false, &defaults(), None).unwrap().unwrap();
        assert_eq!(reply.status, 201);
        serde_json::from_str(&reply.body).unwrap()
    }

    #[test]
    fn can_i_is_answered_by_the_authorizer_every_request_meets() {
        let list_pods = json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}});
        let admin = User::from_certificate("kubernetes-admin", &["system:masters".into()]);
        let alice = User::from_certificate("alice", &["dev".into()]);
        assert_eq!(review(&admin, list_pods.clone())["status"], json!({"allowed": true}));
        assert_eq!(review(&alice, list_pods)["status"], json!({"allowed": false}));
        let discovery = json!({"spec": {"nonResourceAttributes": {"path": "/apis", "verb": "get"}}});
        assert_eq!(
            review(&alice, discovery)["status"],
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""})
        );
        let info = RequestInfo::parse("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "").unwrap();
        let e = answer(&alice, &info, Sent { body: b"{\"spec\":{}}", content_type: "" }, false, &defaults(), None).unwrap().unwrap_err();
        assert_eq!(e.code, 422);
    }

    #[test]
    fn can_i_list_shows_the_rules_of_the_bindings() {
        let info = RequestInfo::parse("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", "").unwrap();
        let alice = User::from_certificate("alice", &["dev".into()]);
        let body = br#"{"kind":"SelfSubjectRulesReview","apiVersion":"authorization.k8s.io/v1","spec":{"namespace":"default"}}"#;
        let reply = answer(&alice, &info, Sent { body, content_type: "" }, false, &defaults(), None).unwrap().unwrap();
        assert_eq!(reply.status, 201);
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            (v["kind"].as_str(), &v["spec"], &v["status"]["incomplete"]),
            (Some("SelfSubjectRulesReview"), &json!({}), &json!(false))
        );
        assert_eq!(
            v["status"]["resourceRules"][0],
            json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
        );
        let urls: Vec<&str> = v["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["nonResourceURLs"].as_array().unwrap())
            .filter_map(Value::as_str)
            .collect();
        assert!(urls.contains(&"/apis/*") && urls.contains(&"/version"), "{urls:?}");
        let e = answer(&alice, &info, Sent { body: b"{}", content_type: "" }, false, &defaults(), None).unwrap().unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "no namespace on request"));
    }

    #[test]
    fn whoami_names_the_user_and_groups() {
        let info = RequestInfo::parse("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "").unwrap();
        let alice = User::from_certificate("alice", &["dev".into()]);
        let reply = answer(&alice, &info, Sent { body: b"{}", content_type: "" }, false, &defaults(), None).unwrap().unwrap();
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(v["status"]["userInfo"], json!({"username": "alice", "groups": ["dev", "system:authenticated"]}));
        let pods = RequestInfo::parse("POST", "/api/v1/namespaces/default/pods", "").unwrap();
        assert!(answer(&alice, &pods, Sent { body: b"{}", content_type: "" }, false, &defaults(), None).is_none());
    }
}
