//! Failures as kube-apiserver reports them: a `metav1.Status` with its code, reason, message and
//! details (apimachinery `pkg/api/errors`), which kubectl prints as
//! `Error from server (<Reason>): <message>`.

use serde::Serialize;

/// An API error: the HTTP status is `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `None`: no `details` key (BadRequest, Unauthorized); `Some(default)`: `"details":{}`.
    pub details: Option<Box<Details>>,
}

/// `metav1.StatusDetails`; empty fields are left out, as Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource (`pods`) for NotFound, Forbidden, MethodNotAllowed; the Kind for Invalid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// `metav1.StatusCause`: one field's error (its type is written as `reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// One field error of a request's options, as apimachinery's `field.Error` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueForbidden`, `FieldValueNotSupported`, …
    pub reason: &'static str,
    pub field: &'static str,
    /// The error without the field: `Forbidden: …`, `Unsupported value: …`.
    pub body: String,
}

impl ApiError {
    /// `apierrors.NewNotFound`: `pods "x" not found`, `deployments.apps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", qualified(group, resource)),
            details: Some(Box::new(Details { name: name.into(), group: group.into(), kind: resource.into(), ..Default::default() })),
        }
    }

    /// A path that names nothing served (`NewGenericServerResponse(404, …)`).
    pub fn no_such_path() -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(Box::default()),
        }
    }

    /// `apierrors.NewForbidden` around the authorizer's message (see `authz::forbidden_message`).
    pub fn forbidden(message: String, group: &str, resource: &str, name: &str) -> ApiError {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: Some(Box::new(Details { name: name.into(), group: group.into(), kind: resource.into(), ..Default::default() })),
        }
    }

    /// `apierrors.NewInvalid` of kind `kind` in `group`, named `name`: 422 with one cause per
    /// field error, all of them in the message.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
        let texts: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.body)).collect();
        let all = if texts.len() == 1 { texts[0].clone() } else { format!("[{}]", texts.join(", ")) };
        let qualified_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let causes = errors.iter().map(|e| Cause { reason: e.reason, message: e.body.clone(), field: e.field.into() }).collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} {name:?} is invalid: {all}"),
            details: Some(Box::new(Details { name: name.into(), group: group.into(), kind: kind.into(), causes })),
        }
    }

    /// 410 for what the server no longer has.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError { code: 410, reason: "Expired", message: message.into(), details: None }
    }

    /// kube-apiserver's 504 for a resource version it has not reached.
    pub fn too_large_resource_version(wanted: u64, current: u64) -> ApiError {
        let cause = Cause { reason: "ResourceVersionTooLarge", message: "Too large resource version".into(), field: String::new() };
        ApiError {
            code: 504,
            reason: "Timeout",
            message: format!("Timeout: Too large resource version: {wanted}, current: {current}"),
            details: Some(Box::new(Details { causes: vec![cause], ..Default::default() })),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { code: 400, reason: "BadRequest", message: message.into(), details: None }
    }

    pub fn unauthorized() -> ApiError {
        ApiError { code: 401, reason: "Unauthorized", message: "Unauthorized".into(), details: None }
    }

    /// `apierrors.NewMethodNotSupported`: a verb this resource does not (yet) serve.
    pub fn method_not_supported(group: &str, resource: &str, verb: &str) -> ApiError {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!("{verb} is not supported on resources of kind {:?}", qualified(group, resource)),
            details: Some(Box::new(Details { group: group.into(), kind: resource.into(), ..Default::default() })),
        }
    }

    /// An Accept header naming nothing this server writes.
    pub fn not_acceptable() -> ApiError {
        ApiError {
            code: 406,
            reason: "NotAcceptable",
            message: "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
                .into(),
            details: None,
        }
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("Request entity too large: limit is {limit}"),
            details: None,
        }
    }

    /// 503: what the request needs is not there yet (a Service without endpoints).
    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        ApiError { code: 503, reason: "ServiceUnavailable", message: message.into(), details: Some(Box::default()) }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { code: 500, reason: "InternalError", message: message.into(), details: Some(Box::default()) }
    }

    /// The Status as kube-apiserver's JSON serializer writes it: compact with a trailing newline,
    /// or indented without one when `pretty`.
    pub fn to_json(&self, pretty: bool) -> String {
        let status = Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code,
        };
        to_json(&status, pretty)
    }
}

/// A JSON document as kube-apiserver writes it: compact with a trailing newline, or indented
/// without one (for `?pretty` and clients that show JSON to people).
pub fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(value).expect("serializing JSON values cannot fail")
    } else {
        serde_json::to_string(value).expect("serializing JSON values cannot fail") + "\n"
    }
}

/// `pods`, `deployments.apps`: `schema.GroupResource.String()`.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// `metav1.Status`, in the field order kube-apiserver writes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_on_the_wire() {
        assert_eq!(
            ApiError::not_found("", "pods", "nope").to_json(false),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"pods\"},\"code\":404}\n"
        );
        assert_eq!(ApiError::not_found("apps", "deployments", "x").message, "deployments.apps \"x\" not found");
        assert!(ApiError::no_such_path().to_json(false).contains("\"details\":{},\"code\":404}"));
        assert!(!ApiError::bad_request("x").to_json(false).contains("details"));
        assert_eq!(ApiError::method_not_supported("", "pods", "watch").message, "watch is not supported on resources of kind \"pods\"");
        assert!(ApiError::unauthorized().to_json(true).starts_with("{\n  \"kind\": \"Status\",\n"));
    }
}
