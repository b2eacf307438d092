//! The Gateway API's defaults, as the CRDs' OpenAPI `default`s fill them (standard channel v1):
//! a listener admits routes of its own namespace, a TLS listener terminates, a parentRef names a
//! Gateway, a route without rules or matches matches every path (`PathPrefix /`), a header or
//! query match is Exact, a backendRef is a Service of weight 1.

use crate::gateway::{
    self, Condition, Gateway, GatewayClass, GatewayClassStatus, GatewayStatus, HTTPPathMatch, HTTPRoute, HTTPRouteMatch, HTTPRouteRule,
    RouteNamespaces,
};

/// The CRDs' default status conditions: Unknown, until a controller takes the object up.
fn waiting(type_: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: "Unknown".into(),
        observed_generation: None,
        last_transition_time: "1970-01-01T00:00:00Z".into(),
        reason: "Pending".into(),
        message: "Waiting for controller".into(),
    }
}

pub fn gateway_class(gc: &mut GatewayClass) {
    gc.status.get_or_insert_with(|| GatewayClassStatus { conditions: Some(vec![waiting("Accepted")]) });
}

pub fn gateway(gw: &mut Gateway) {
    gw.status
        .get_or_insert_with(|| GatewayStatus { conditions: Some(vec![waiting("Accepted"), waiting("Programmed")]), ..Default::default() });
    for l in &mut gw.spec.listeners {
        let routes = l.allowed_routes.get_or_insert_with(Default::default);
        let namespaces = routes.namespaces.get_or_insert_with(RouteNamespaces::default);
        namespaces.from.get_or_insert_with(|| "Same".into());
        if let Some(tls) = &mut l.tls {
            tls.mode.get_or_insert_with(|| "Terminate".into());
        }
        for r in l.tls.iter_mut().flat_map(|t| t.certificate_refs.iter_mut().flatten()) {
            r.group.get_or_insert_with(String::new);
            r.kind.get_or_insert_with(|| "Secret".into());
        }
    }
}

pub fn http_route(route: &mut HTTPRoute) {
    for p in route.spec.parent_refs.iter_mut().flatten() {
        p.group.get_or_insert_with(|| gateway::GROUP.into());
        p.kind.get_or_insert_with(|| "Gateway".into());
    }
    let rules = route.spec.rules.get_or_insert_with(|| vec![HTTPRouteRule::default()]);
    for rule in rules {
        let matches = rule.matches.get_or_insert_with(|| vec![HTTPRouteMatch::default()]);
        for m in matches {
            let path = m.path.get_or_insert_with(HTTPPathMatch::default);
            path.type_.get_or_insert_with(|| "PathPrefix".into());
            path.value.get_or_insert_with(|| "/".into());
            for h in m.headers.iter_mut().flatten().chain(m.query_params.iter_mut().flatten()) {
                h.type_.get_or_insert_with(|| "Exact".into());
            }
        }
        for b in rule.backend_refs.iter_mut().flatten() {
            b.backend.group.get_or_insert_with(String::new);
            b.backend.kind.get_or_insert_with(|| "Service".into());
            b.weight.get_or_insert(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::typed::Object;
    use serde_json::json;

    fn defaulted(v: serde_json::Value) -> serde_json::Value {
        let mut o = Object::decode(v["kind"].as_str().unwrap(), &v).unwrap();
        crate::defaults::object(&mut o);
        o.to_json()
    }

    #[test]
    fn route_defaults_are_the_crds() {
        let route = defaulted(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "a", "port": 80}]}], "bogus": 1},
        }));
        assert_eq!(route["spec"]["parentRefs"][0], json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}));
        assert_eq!(route["spec"]["rules"][0]["matches"], json!([{"path": {"type": "PathPrefix", "value": "/"}}]));
        assert_eq!(
            route["spec"]["rules"][0]["backendRefs"][0],
            json!({"group": "", "kind": "Service", "name": "a", "port": 80, "weight": 1})
        );
        assert!(route["spec"].get("bogus").is_none(), "unknown fields are dropped");
        let gw = defaulted(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "g"},
            "spec": {"gatewayClassName": "emu", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        }));
        assert_eq!(gw["spec"]["listeners"][0]["allowedRoutes"], json!({"namespaces": {"from": "Same"}}));
        assert_eq!(
            gw["status"]["conditions"][1],
            json!({"type": "Programmed", "status": "Unknown", "lastTransitionTime": "1970-01-01T00:00:00Z", "reason": "Pending", "message": "Waiting for controller"})
        );
    }
}
