//! The schemas of the Gateway API's kinds, as their CRDs publish them (a subset of the fields'
//! descriptions, the fields emu decodes: [`emu_api::gateway`]), so that `kubectl explain
//! gateway.spec.listeners` answers. Metadata refers to ObjectMeta's definition.

use serde_json::{json, Map, Value};

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn integer(description: &str) -> Value {
    json!({"type": "integer", "format": "int32", "description": description})
}

fn object(description: &str, properties: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = properties.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    json!({"type": "object", "description": description, "properties": properties})
}

fn list(description: &str, items: Value) -> Value {
    json!({"type": "array", "description": description, "items": items})
}

fn conditions(of: &str) -> Value {
    let condition = object(
        "Condition contains details for one aspect of the current state of this API Resource.",
        &[
            ("type", string("type of condition in CamelCase or in foo.example.com/CamelCase.")),
            ("status", string("status of the condition, one of True, False, Unknown.")),
            ("reason", string("reason contains a programmatic identifier indicating the reason for the condition's last transition.")),
            ("message", string("message is a human readable message indicating details about the transition.")),
            (
                "lastTransitionTime",
                json!({"type": "string", "format": "date-time", "description": "lastTransitionTime is the last time the condition transitioned from one status to another."}),
            ),
            (
                "observedGeneration",
                json!({"type": "integer", "format": "int64", "description": "observedGeneration represents the .metadata.generation that the condition was set based upon."}),
            ),
        ],
    );
    list(&format!("Conditions describe the current conditions of the {of}."), condition)
}

fn parent_ref() -> Value {
    object(
        "ParentReference identifies an API object (usually a Gateway) that can be considered a parent of this resource (usually a route).",
        &[
            ("group", string("Group is the group of the referent. Defaults to gateway.networking.k8s.io.")),
            ("kind", string("Kind is kind of the referent. Defaults to Gateway.")),
            (
                "namespace",
                string("Namespace is the namespace of the referent. When unspecified, this refers to the local namespace of the Route."),
            ),
            ("name", string("Name is the name of the referent.")),
            ("sectionName", string("SectionName is the name of a section within the target resource: for a Gateway, a Listener name.")),
            ("port", integer("Port is the network port this Route targets.")),
        ],
    )
}

fn backend(description: &str, extra: &[(&str, Value)]) -> Value {
    let mut fields = vec![
        ("group", string("Group is the group of the referent. For example, \"gateway.networking.k8s.io\". When unspecified or empty string, core API group is inferred.")),
        ("kind", string("Kind is the Kubernetes resource kind of the referent. Defaults to \"Service\" when not specified.")),
        ("name", string("Name is the name of the referent.")),
        ("namespace", string("Namespace is the namespace of the backend. When unspecified, the local namespace is inferred.")),
        ("port", integer("Port specifies the destination port number to use for this resource. Required when the referent is a Kubernetes Service.")),
    ];
    fields.extend(extra.iter().cloned());
    object(description, &fields)
}

fn spec_and_status(kind: &str) -> (Value, Value) {
    match kind {
        "GatewayClass" => (
            object(
                "Spec defines the desired state of GatewayClass.",
                &[
                    ("controllerName", string("ControllerName is the name of the controller that is managing Gateways of this class (emu's: emu.dev/gateway-controller).")),
                    ("description", string("Description helps describe a GatewayClass with more details.")),
                    ("parametersRef", object("ParametersRef is a reference to a resource that contains the configuration parameters corresponding to the GatewayClass.",
                        &[("group", string("Group is the group of the referent.")), ("kind", string("Kind is kind of the referent.")),
                          ("name", string("Name is the name of the referent.")), ("namespace", string("Namespace is the namespace of the referent."))])),
                ],
            ),
            object("Status defines the current state of GatewayClass.", &[("conditions", conditions("GatewayClass"))]),
        ),
        "Gateway" => {
            let listener = object(
                "Listener embodies the concept of a logical endpoint where a Gateway accepts network connections.",
                &[
                    ("name", string("Name is the name of the Listener. This name MUST be unique within a Gateway.")),
                    ("hostname", string("Hostname specifies the virtual hostname to match for protocol types that define this concept.")),
                    ("port", integer("Port is the network port.")),
                    ("protocol", string("Protocol specifies the network protocol this listener expects to receive: HTTP, HTTPS, TLS, TCP or UDP.")),
                    ("tls", object("TLS is the TLS configuration for the Listener.", &[
                        ("mode", string("Mode defines the TLS behavior for the TLS session initiated by the client: Terminate (the default) or Passthrough.")),
                        ("certificateRefs", list("CertificateRefs contains a series of references to Kubernetes objects that contains TLS certificates and private keys.",
                            backend("SecretObjectReference identifies an API object including its namespace, defaulting to Secret.", &[]))),
                    ])),
                    ("allowedRoutes", object("AllowedRoutes defines the types of routes that MAY be attached to a Listener and the trusted namespaces where those Route resources MAY be present.", &[
                        ("namespaces", object("Namespaces indicates namespaces from which Routes may be attached to this Listener.", &[
                            ("from", string("From indicates where Routes will be selected for this Gateway: All, Selector or Same (the default).")),
                            ("selector", json!({"type": "object", "description": "Selector must be specified when From is set to \"Selector\"."})),
                        ])),
                        ("kinds", list("Kinds specifies the groups and kinds of Routes that are allowed to bind to this Gateway Listener.", object("RouteGroupKind indicates the group and kind of a Route resource.", &[("group", string("Group is the group of the Route.")), ("kind", string("Kind is the kind of the Route."))]))),
                    ])),
                ],
            );
            let address = object("GatewayAddress describes an address that can be bound to a Gateway.", &[("type", string("Type of the address.")), ("value", string("Value of the address."))]);
            (
                object(
                    "Spec defines the desired state of Gateway.",
                    &[
                        ("gatewayClassName", string("GatewayClassName used for this Gateway. This is the name of a GatewayClass resource.")),
                        ("listeners", list("Listeners associated with this Gateway. Listeners define logical endpoints that are bound on this Gateway's addresses.", listener)),
                        ("addresses", list("Addresses requested for this Gateway.", address.clone())),
                    ],
                ),
                object(
                    "Status defines the current state of Gateway.",
                    &[
                        ("addresses", list("Addresses lists the network addresses that have been bound to the Gateway.", address)),
                        ("conditions", conditions("Gateway")),
                        ("listeners", list("Listeners provide status for each unique listener port defined in the Spec.", object("ListenerStatus is the status associated with a Listener.", &[
                            ("name", string("Name is the name of the Listener that this status corresponds to.")),
                            ("supportedKinds", list("SupportedKinds is the list indicating the Kinds supported by this listener.", json!({"type": "object"}))),
                            ("attachedRoutes", integer("AttachedRoutes represents the total number of Routes that have been successfully attached to this Listener.")),
                            ("conditions", conditions("Listener")),
                        ]))),
                    ],
                ),
            )
        }
        _ => {
            let header_match = |what: &str| object(&format!("HTTP{what}Match describes how to select a HTTP route by matching HTTP request {what}s."), &[
                ("type", string("Type specifies how to match against the value: Exact (the default) or RegularExpression.")),
                ("name", string("Name is the name to be matched.")),
                ("value", string("Value is the value to be matched.")),
            ]);
            let path_modifier = object("HTTPPathModifier defines configuration for path modifiers.", &[
                ("type", string("Type defines the type of path modifier: ReplaceFullPath or ReplacePrefixMatch.")),
                ("replaceFullPath", string("ReplaceFullPath specifies the value with which to replace the full path of a request during a rewrite or redirect.")),
                ("replacePrefixMatch", string("ReplacePrefixMatch specifies the value with which to replace the prefix match of a request during a rewrite or redirect.")),
            ]);
            let filter = object("HTTPRouteFilter defines processing steps that must be completed during the request or response lifecycle.", &[
                ("type", string("Type identifies the type of filter: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite or ExtensionRef.")),
                ("requestHeaderModifier", json!({"type": "object", "description": "RequestHeaderModifier defines a schema for a filter that modifies request headers (set, add, remove)."})),
                ("responseHeaderModifier", json!({"type": "object", "description": "ResponseHeaderModifier defines a schema for a filter that modifies response headers (set, add, remove)."})),
                ("requestMirror", json!({"type": "object", "description": "RequestMirror defines a schema for a filter that mirrors requests (backendRef)."})),
                ("requestRedirect", object("RequestRedirect defines a schema for a filter that responds to the request with an HTTP redirection.", &[
                    ("scheme", string("Scheme is the scheme to be used in the value of the Location header in the response.")),
                    ("hostname", string("Hostname is the hostname to be used in the value of the Location header in the response.")),
                    ("path", path_modifier.clone()),
                    ("port", integer("Port is the port to be used in the value of the Location header in the response.")),
                    ("statusCode", integer("StatusCode is the HTTP status code to be used in response: 301 or 302 (the default).")),
                ])),
                ("urlRewrite", object("URLRewrite defines a schema for a filter that modifies a request during forwarding.", &[
                    ("hostname", string("Hostname is the value to be used to replace the Host header value during forwarding.")),
                    ("path", path_modifier),
                ])),
            ]);
            let rule = object("HTTPRouteRule defines semantics for matching an HTTP request based on conditions (matches), processing it (filters), and forwarding the request to an API object (backendRefs).", &[
                ("matches", list("Matches define conditions used for matching the rule against incoming HTTP requests.", object("HTTPRouteMatch defines the predicate used to match requests to a given action.", &[
                    ("path", object("Path specifies a HTTP request path matcher. Defaults to a PathPrefix match on \"/\".", &[
                        ("type", string("Type specifies how to match against the path Value: Exact, PathPrefix (the default) or RegularExpression.")),
                        ("value", string("Value of the HTTP path to match against.")),
                    ])),
                    ("headers", list("Headers specifies HTTP request header matchers.", header_match("Header"))),
                    ("queryParams", list("QueryParams specifies HTTP query parameter matchers.", header_match("QueryParam"))),
                    ("method", string("Method specifies HTTP method matcher.")),
                ]))),
                ("filters", list("Filters define the filters that are applied to requests that match this rule.", filter)),
                ("backendRefs", list("BackendRefs defines the backend(s) where matching requests should be sent.", backend("HTTPBackendRef defines how a HTTPRoute forwards a HTTP request.", &[
                    ("weight", integer("Weight specifies the proportion of requests forwarded to the referenced backend (default 1).")),
                ]))),
                ("timeouts", object("Timeouts defines the timeouts that can be configured for an HTTP request.", &[
                    ("request", string("Request specifies the maximum duration for a gateway to respond to an HTTP request.")),
                    ("backendRequest", string("BackendRequest specifies a timeout for an individual request from the gateway to a backend.")),
                ])),
            ]);
            (
                object("Spec defines the desired state of HTTPRoute.", &[
                    ("parentRefs", list("ParentRefs references the resources (usually Gateways) that a Route wants to be attached to.", parent_ref())),
                    ("hostnames", list("Hostnames defines a set of hostnames that should match against the HTTP Host header to select a HTTPRoute used to process the request.", json!({"type": "string"}))),
                    ("rules", list("Rules are a list of HTTP matchers, filters and actions.", rule)),
                ]),
                object("Status defines the current state of HTTPRoute.", &[("parents", list(
                    "Parents is a list of parent resources (usually Gateways) that are associated with the route, and the status of the route with respect to each parent.",
                    object("RouteParentStatus describes the status of a route with respect to an associated Parent.", &[
                        ("parentRef", parent_ref()),
                        ("controllerName", string("ControllerName is a domain/path string that indicates the name of the controller that wrote this status.")),
                        ("conditions", conditions("route")),
                    ]),
                ))]),
            )
        }
    }
}

/// The definition of a Gateway API kind.
pub(super) fn schema(kind: &str, description: &str, gvk: Value) -> Value {
    let (spec, status) = spec_and_status(kind);
    json!({
        "description": description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
            "kind": string("Kind is a string value representing the REST resource this object represents."),
            "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata."},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-group-version-kind": [gvk],
    })
}
