//! TokenRequest: `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token` (`kubectl create
//! token NAME [--duration D] [--audience A]`, the Python client's
//! `create_namespaced_service_account_token`), answered as kube-apiserver's
//! `pkg/registry/core/serviceaccount/storage/token.go` answers it: nothing is stored; the answer
//! is the request with `status.token` (signed by the key that signs pods' tokens,
//! [`crate::tokens`]) and `status.expirationTimestamp`, `201 Created`.
//!
//! The token names the account and its uid (a token of a deleted account, or of an older
//! account of the same name, is refused), its audiences (the API server's own unless asked
//! otherwise; a token for another audience does not authenticate here) and, when the request
//! binds it to a pod (`spec.boundObjectRef`), the pod.

use super::status::{to_json, ApiError, Details, FieldError};
use super::{Call, Reply, Sent};
use crate::store::ObjectKey;
use emu_api::object;
use emu_api::typed::k8s_openapi::api::authentication::v1::TokenRequest;
use emu_logic::serviceaccount::{TokenSubject, ISSUER};
use serde_json::{json, Value};

use super::write::protobuf;

/// kube-apiserver's default lifetime of a requested token (`SetDefaults_TokenRequestSpec`).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// `ValidateTokenRequest`'s bounds: ten minutes, 2^32 seconds.
const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// What a TokenRequest asks for, once decoded, defaulted and checked against the request's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// The pod the token is to be bound to: its name and, if given, its uid.
    pub pod: Option<(String, String)>,
}

/// The `TokenRequest.authentication.k8s.io "<name>" is invalid` answer for one field.
fn invalid(name: &str, field: &'static str, body: String) -> ApiError {
    ApiError::invalid("authentication.k8s.io", "TokenRequest", name, &[FieldError { reason: "FieldValueInvalid", field, body }])
}

/// Reads a request for the token of service account `name` in `namespace`: its name and
/// namespace, when given, must be the path's; its lifetime defaults to an hour and is checked
/// (kube-apiserver names no object in that error); its audiences default to the API server's.
pub fn asked(request: &TokenRequest, namespace: &str, name: &str) -> Result<Asked, ApiError> {
    let meta = &request.metadata;
    if let Some(given) = meta.name.as_deref().filter(|n| !n.is_empty() && *n != name) {
        let body = format!("Invalid value: {given:?}: must match the service account name if specified");
        return Err(invalid(name, "metadata.name", body));
    }
    if let Some(given) = meta.namespace.as_deref().filter(|n| !n.is_empty() && *n != namespace) {
        let body = format!("Invalid value: {given:?}: must match the service account namespace if specified");
        return Err(invalid(name, "metadata.namespace", body));
    }
    let spec = &request.spec;
    let expiration_seconds = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        let body = format!("Invalid value: {expiration_seconds}: may not specify a duration less than 10 minutes");
        return Err(invalid("", "spec.expirationSeconds", body));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        let body = format!("Invalid value: {expiration_seconds}: may not specify a duration larger than 2^32 seconds");
        return Err(invalid("", "spec.expirationSeconds", body));
    }
    let audiences = if spec.audiences.is_empty() { vec![ISSUER.to_string()] } else { spec.audiences.clone() };
    let pod = match &spec.bound_object_ref {
        None => None,
        Some(r) => {
            let (kind, api_version) = (r.kind.as_deref().unwrap_or_default(), r.api_version.as_deref().unwrap_or_default());
            if kind != "Pod" || !matches!(api_version, "" | "v1") {
                // kube-apiserver also binds to Secrets and Nodes; emu has no use for those.
                return Err(ApiError::bad_request(format!("cannot bind token to object of type {api_version}, Kind={kind}")));
            }
            Some((r.name.clone().unwrap_or_default(), r.uid.clone().unwrap_or_default()))
        }
    };
    Ok(Asked { audiences, expiration_seconds, pod })
}

/// The answer: the request as the client sent it, completed (name, namespace, creation time,
/// defaulted spec) with the token and its expiry.
pub fn answer(namespace: &str, name: &str, asked: &Asked, token: &str, now: i64) -> Value {
    let bound = asked.pod.as_ref().map(|(pod, uid)| json!({"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}));
    json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": emu_api::time::rfc3339(now)},
        "spec": {"audiences": asked.audiences, "expirationSeconds": asked.expiration_seconds, "boundObjectRef": bound},
        "status": {"token": token, "expirationTimestamp": emu_api::time::rfc3339(now + asked.expiration_seconds)},
    })
}

/// The `token` subresource's create.
pub(super) fn create(call: &Call, sent: Sent) -> Result<Reply, ApiError> {
    let (shared, info) = (call.shared, call.info);
    let (namespace, name) = (info.namespace.as_str(), info.name.as_str());
    // kubectl's typed client sends protobuf; other clients JSON.
    let media = sent.content_type.split(';').next().unwrap_or("").trim();
    let body = if media == protobuf::MEDIA_TYPE {
        protobuf::decode("TokenRequest", sent.body)
    } else {
        serde_json::from_slice::<Value>(sent.body).map_err(|e| e.to_string())
    };
    let request: TokenRequest = body
        .and_then(|v| emu_api::typed::decode(&v).map_err(|e| e.to_string()))
        .map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format: {e}")))?;
    // The account first: a request for one that does not exist is a 404 whatever it asks.
    let account_key = ObjectKey { kind: "ServiceAccount".into(), namespace: namespace.into(), name: name.into() };
    let account = shared.store.get_shared(&account_key).ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let asked = asked(&request, namespace, name)?;
    let mut subject = TokenSubject {
        namespace: namespace.into(),
        service_account: name.into(),
        service_account_uid: object::uid(&account).into(),
        ..Default::default()
    };
    if let Some((pod_name, wanted_uid)) = &asked.pod {
        let pod_key = ObjectKey { kind: "Pod".into(), namespace: namespace.into(), name: pod_name.clone() };
        let pod = shared.store.get_shared(&pod_key).ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
        if object::str_at(&pod, &["spec", "serviceAccountName"]).unwrap_or("default") != name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
            )));
        }
        let uid = object::uid(&pod);
        if !wanted_uid.is_empty() && wanted_uid != uid {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!(
                    "Operation cannot be fulfilled on Pod {pod_name:?}: the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
                details: Some(Box::new(Details { name: pod_name.clone(), kind: "Pod".into(), ..Default::default() })),
            });
        }
        (subject.pod_name, subject.pod_uid) = (pod_name.clone(), uid.to_string());
    }
    let signer = shared.tokens.get().ok_or_else(|| ApiError::internal("the service-account token signer is not loaded"))?;
    let token = signer
        .issue_for(&subject, &asked.audiences, call.now, asked.expiration_seconds)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let answer = answer(namespace, name, &asked, &token, call.now);
    Ok(Reply::new(201, "application/json", to_json(&answer, call.pretty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> TokenRequest {
        emu_api::typed::decode(&v).unwrap()
    }

    #[test]
    fn requests_are_defaulted_and_checked_as_kube_apiserver_does() {
        let plain = asked(&request(json!({"spec": {}})), "default", "robot").unwrap();
        assert_eq!(plain, Asked { audiences: vec![ISSUER.into()], expiration_seconds: 3600, pod: None });
        let vault = asked(
            &request(json!({"metadata": {"name": "robot"}, "spec": {"audiences": ["vault"], "expirationSeconds": 600}})),
            "default",
            "robot",
        )
        .unwrap();
        assert_eq!((vault.audiences, vault.expiration_seconds), (vec!["vault".to_string()], 600));
        let short = asked(&request(json!({"spec": {"expirationSeconds": 60}})), "default", "robot").unwrap_err();
        assert_eq!(
            (short.code, short.message.as_str()),
            (422, "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes")
        );
        let long = asked(&request(json!({"spec": {"expirationSeconds": 5_000_000_000_i64}})), "default", "robot").unwrap_err();
        assert!(long.message.ends_with("may not specify a duration larger than 2^32 seconds"), "{}", long.message);
        let other = asked(&request(json!({"metadata": {"name": "other"}, "spec": {}})), "default", "robot").unwrap_err();
        assert_eq!(
            other.message,
            "TokenRequest.authentication.k8s.io \"robot\" is invalid: metadata.name: Invalid value: \"other\": must match the service account name if specified"
        );
        let bound =
            asked(&request(json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}})), "default", "robot")
                .unwrap();
        assert_eq!(bound.pod, Some(("web".into(), String::new())));
        let node =
            asked(&request(json!({"spec": {"boundObjectRef": {"kind": "Node", "apiVersion": "v1", "name": "n"}}})), "default", "robot")
                .unwrap_err();
        assert_eq!((node.code, node.message.as_str()), (400, "cannot bind token to object of type v1, Kind=Node"));
    }

    /// A JSON client's request (the Python client's) through the router: 404 for a missing
    /// account, else 201 with a token the API server authenticates as the account.
    #[test]
    fn served_over_the_rest_api() {
        use super::super::{request::RequestInfo, serve, Output, Served};
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let _ = shared.tokens.set(std::sync::Arc::new(crate::tokens::TokenSigner::load_or_create(&dir.path().join("pki")).unwrap()));
        let post = |name: &str, body: &str| {
            let info = RequestInfo::parse("POST", &format!("/api/v1/namespaces/default/serviceaccounts/{name}/token"), "").unwrap();
            let sent = Sent { body: body.as_bytes(), content_type: "application/json" };
            serve(&shared, &info, "", Output::Json, false, emu_api::time::now(), sent)
        };
        let body =
            r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": [], "expirationSeconds": 900}}"#;
        let missing = post("robot", body).unwrap_err();
        assert_eq!((missing.code, missing.message.as_str()), (404, "serviceaccounts \"robot\" not found"));
        shared
            .store
            .create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}}))
            .unwrap();
        let Ok(Served::Reply(reply)) = post("robot", body) else { panic!("no answer") };
        assert_eq!(reply.status, 201);
        let answer: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(answer["spec"]["expirationSeconds"], 900);
        let token = answer["status"]["token"].as_str().unwrap();
        assert_eq!(
            crate::tokens::authenticate(&shared, token, emu_api::time::now()).as_deref(),
            Some("system:serviceaccount:default:robot")
        );
        // Gone with its account, and not back with another of the same name.
        shared.store.delete(&ObjectKey { kind: "ServiceAccount".into(), namespace: "default".into(), name: "robot".into() }).unwrap();
        shared
            .store
            .create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}}))
            .unwrap();
        assert_eq!(crate::tokens::authenticate(&shared, token, emu_api::time::now()), None);
    }

    #[test]
    fn the_answer_carries_the_token_and_its_expiry() {
        let asked = Asked { audiences: vec![ISSUER.into()], expiration_seconds: 600, pod: None };
        let a = answer("default", "robot", &asked, "t0k", 1_700_000_000);
        assert_eq!((a["kind"].as_str(), a["apiVersion"].as_str()), (Some("TokenRequest"), Some("authentication.k8s.io/v1")));
        assert_eq!(a["status"], json!({"token": "t0k", "expirationTimestamp": "2023-11-14T22:23:20Z"}));
        assert_eq!(a["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(a["spec"], json!({"audiences": [ISSUER], "expirationSeconds": 600, "boundObjectRef": null}));
    }
}
