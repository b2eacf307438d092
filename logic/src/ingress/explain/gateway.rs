//! `emu ingress explain` for Gateways: which Gateway of emu's class a request reaches (the one
//! named, the one whose address is the URL's host, or one whose listener on the URL's port has
//! a hostname taking the Host header), and what its nginx does with it, decided by
//! [`gateway_nginx::route`] on the model that data path renders (so explain and nginx agree by
//! construction): the listener's server, the HTTPRoute rule and match, the redirect or the
//! rewritten URI, and the backends' shares with their pods.

use super::{normalize, pod_of, Endpoint, Request};
use crate::gateway::CONTROLLER_NAME;
use crate::gateway_nginx::{self, Model, Outcome, PathMatch};
use emu_api::gateway::{Gateway, GatewayClass};
use emu_api::typed::EndpointSlice;
use serde::Serialize;

fn key(gw: &Gateway) -> String {
    format!("{}/{}", gw.metadata.namespace.as_deref().unwrap_or_default(), gw.metadata.name.as_deref().unwrap_or_default())
}

/// The Gateway the request reaches and why; None: no Gateway of emu's class takes it (the
/// Ingresses do). `named` is `namespace/name` (`--gateway`); an error says why it cannot be.
pub fn pick<'g>(
    gateways: &'g [Gateway],
    classes: &[GatewayClass],
    named: Option<&str>,
    req: &Request,
) -> Result<Option<(&'g Gateway, String)>, String> {
    let ours = |gw: &Gateway| {
        classes
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(gw.spec.gateway_class_name.as_str()) && c.spec.controller_name == CONTROLLER_NAME)
    };
    if let Some(named) = named {
        let gw = gateways.iter().find(|g| key(g) == named).ok_or_else(|| format!("--gateway {named}: gateway {named:?} not found"))?;
        if !ours(gw) {
            return Err(format!(
                "--gateway {named}: its GatewayClass {} is not emu's (controller {CONTROLLER_NAME}): emu runs no data path for it",
                gw.spec.gateway_class_name
            ));
        }
        return Ok(Some((gw, "named by --gateway".into())));
    }
    let address = req.host.trim_start_matches('[').trim_end_matches(']');
    for gw in gateways.iter().filter(|g| ours(g)) {
        let addresses = gw.status.as_ref().and_then(|s| s.addresses.as_ref()).into_iter().flatten();
        if addresses.into_iter().any(|a| a.value == address) {
            return Ok(Some((gw, format!("the URL's address {address} is Gateway {}'s (status.addresses)", key(gw)))));
        }
    }
    let host = req.nginx_host();
    for gw in gateways.iter().filter(|g| ours(g)) {
        for l in gw.spec.listeners.iter().filter(|l| l.port == i32::from(req.port)) {
            let Some(h) = l.hostname.as_deref() else { continue };
            let takes = h == host || h.strip_prefix('*').is_some_and(|s| host.len() > s.len() && host.ends_with(s));
            if takes {
                let why = format!("listener {} of Gateway {} (port {}, hostname {h}) takes host {host}", l.name, key(gw), l.port);
                return Ok(Some((gw, why)));
            }
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayDecision {
    /// `namespace/name`, and why this Gateway.
    pub gateway: String,
    pub why: String,
    pub host: String,
    pub uri: String,
    /// The nginx server's listener port and hostname (None: the port's catch-all); None when
    /// no listener is on the port.
    pub port: Option<u16>,
    pub hostname: Option<String>,
    /// The HTTPRoute (`namespace/name`), its rule and match that took the request.
    pub route: Option<String>,
    pub rule: Option<usize>,
    #[serde(rename = "match")]
    pub match_index: Option<usize>,
    /// The match's path, `PathPrefix /foo` or `Exact /foo`.
    pub path: Option<String>,
    pub answer: GatewayAnswer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GatewayAnswer {
    /// Nothing listens on the port.
    Refused {
        reason: String,
    },
    Status {
        code: u16,
        reason: String,
    },
    Redirect {
        code: u16,
        location: String,
    },
    Proxy {
        host: String,
        uri: String,
        backends: Vec<GatewayBackend>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayBackend {
    /// `namespace/service:port`.
    pub backend: String,
    /// The share of the rule's requests, in hundredths of a percent.
    pub share: u32,
    pub endpoints: Vec<Endpoint>,
    /// 503 (no ready endpoint) or 500 (the reference does not resolve) for this share.
    pub status: Option<u16>,
}

/// What Gateway `gw`'s nginx (built as `model`) does with `req`.
pub fn explain(gw: &Gateway, why: String, model: &Model, slices: &[EndpointSlice], req: &Request, method: &str) -> GatewayDecision {
    let host = req.nginx_host();
    let mut d = GatewayDecision {
        gateway: key(gw),
        why,
        host: host.clone(),
        uri: String::new(),
        port: None,
        hostname: None,
        route: None,
        rule: None,
        match_index: None,
        path: None,
        answer: GatewayAnswer::Refused { reason: String::new() },
    };
    let uri = match normalize(&req.path) {
        Ok(u) => u,
        Err(why) => {
            d.answer = GatewayAnswer::Status { code: 400, reason: format!("nginx refuses the request's path {:?}: {why}", req.path) };
            return d;
        }
    };
    let headers: Vec<(&str, &str)> = req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let query = req.query.as_deref().unwrap_or_default();
    let request = gateway_nginx::Request { host: &host, port: req.port, method, path: &uri, query, headers: &headers };
    let decision = gateway_nginx::route(model, &request);
    d.uri = uri;
    if let Some((port, hostname)) = decision.server {
        d.port = Some(port);
        d.hostname = hostname;
    }
    if let Some(m) = decision.matched.and_then(|n| model.matches.get(n)) {
        d.route = Some(m.route.clone());
        d.rule = Some(m.rule);
        d.match_index = Some(m.index);
        d.path = Some(match &m.path {
            PathMatch::Exact(p) => format!("Exact {p}"),
            PathMatch::Prefix(p) => format!("PathPrefix {p}"),
        });
    }
    d.answer = match decision.outcome {
        Outcome::Refused => GatewayAnswer::Refused { reason: format!("no listener of Gateway {} is on port {}", d.gateway, req.port) },
        Outcome::NotFound(why) => GatewayAnswer::Status { code: 404, reason: why },
        Outcome::NoBackend => GatewayAnswer::Status { code: 500, reason: "the rule has no backendRef with a weight".into() },
        Outcome::Redirect { status, location } => GatewayAnswer::Redirect { code: status, location },
        Outcome::Forward { host, uri, backends } => GatewayAnswer::Proxy {
            host,
            uri,
            backends: backends
                .into_iter()
                .map(|s| GatewayBackend {
                    backend: s.backend,
                    share: s.percent,
                    endpoints: s.endpoints.into_iter().map(|address| Endpoint { pod: pod_of(slices, &address), address }).collect(),
                    status: s.status,
                })
                .collect(),
        },
    };
    d
}

impl GatewayDecision {
    /// The explanation as text, for people.
    pub fn text(&self) -> String {
        let mut w = vec![
            format!("Gateway:       {}: {}", self.gateway, self.why),
            format!("Request:       Host {}, URI {}", self.host, if self.uri.is_empty() { "(refused)" } else { &self.uri }),
        ];
        if let Some(port) = self.port {
            let name = self
                .hostname
                .as_deref()
                .map_or("the port's catch-all (no listener hostname takes the host)".to_string(), |h| format!("hostname {h}"));
            w.push(format!("Server:        port {port}, {name}"));
        }
        if let (Some(route), Some(rule), Some(m), Some(path)) = (&self.route, self.rule, self.match_index, &self.path) {
            w.push(format!("Matched:       httproute/{route} rule {rule} match {m} ({path})"));
        }
        match &self.answer {
            GatewayAnswer::Refused { reason } => w.push(format!("Answer:        connection refused: {reason}")),
            GatewayAnswer::Status { code, reason } => w.push(format!("Answer:        {code} {}: {reason}", super::status_text(*code))),
            GatewayAnswer::Redirect { code, location } => {
                w.push(format!("Answer:        {code} {} to {location} (RequestRedirect)", super::status_text(*code)))
            }
            GatewayAnswer::Proxy { host, uri, backends } => {
                w.push(format!("Answer:        proxied with Host {host}, the pod gets {uri}"));
                for b in backends {
                    let share = format!("{}.{:02}%", b.share / 100, b.share % 100);
                    match b.status {
                        Some(code) => w.push(format!("  {} {share}: {code} {}", b.backend, super::status_text(code))),
                        None => w.push(format!("  {} {share}: {} ready", b.backend, b.endpoints.len())),
                    }
                    for e in &b.endpoints {
                        w.push(format!("    {:<21} pod/{}", e.address, e.pod.as_deref().unwrap_or("(no targetRef)")));
                    }
                }
            }
        }
        w.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway_nginx::{build, Inputs, Layout};
    use crate::ingress::explain::parse_request;
    use serde_json::json;

    fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    type World = (Vec<GatewayClass>, Vec<Gateway>, Vec<emu_api::gateway::HTTPRoute>, Vec<emu_api::typed::Service>, Vec<EndpointSlice>);

    /// Gateway web of emu's class (address 203.0.113.7, listener http on 80 for
    /// `*.gw.example.com`) and HTTPRoute split: /api rewritten to /v2 and split 80/20 between
    /// kubia (one pod) and a missing Service; Exact /old redirected to /new with a 301.
    fn world() -> World {
        let classes = vec![decode(json!({"metadata": {"name": "emu"}, "spec": {"controllerName": CONTROLLER_NAME}}))];
        let gateways = vec![decode(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"gatewayClassName": "emu", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.gw.example.com"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": "203.0.113.7"}]}}))];
        let routes = vec![decode(
            json!({"metadata": {"name": "split", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["app.gw.example.com"], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}],
                 "backendRefs": [{"name": "kubia", "port": 80, "weight": 80}, {"name": "nosuch", "port": 80, "weight": 20}]},
                {"matches": [{"path": {"type": "Exact", "value": "/old"}}],
                 "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}]}]}}),
        )];
        let services = vec![decode(
            json!({"metadata": {"name": "kubia", "namespace": "default"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
        )];
        let slices = vec![decode(
            json!({"metadata": {"name": "kubia-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubia"}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "namespace": "default", "name": "kubia-a"}}]}),
        )];
        (classes, gateways, routes, services, slices)
    }

    fn model(
        gw: &Gateway,
        routes: &[emu_api::gateway::HTTPRoute],
        services: &[emu_api::typed::Service],
        slices: &[EndpointSlice],
    ) -> Model {
        let layout = Layout {
            run_dir: "/run".into(),
            cert_dir: "/ssl".into(),
            default_cert: "/ssl/default.pem".into(),
            upstreams_file: "/u.conf".into(),
        };
        build(&Inputs { gateway: gw, routes, namespaces: &[], services, slices, secrets: &[] }, &layout)
    }

    #[test]
    fn the_gateway_is_picked_by_name_address_or_listener_hostname() {
        let (classes, gateways, ..) = world();
        let req = |url: &str| parse_request(url, &[], None).unwrap();
        let (gw, why) = pick(&gateways, &classes, None, &req("http://203.0.113.7/")).unwrap().unwrap();
        assert_eq!(
            (key(gw).as_str(), why.as_str()),
            ("default/web", "the URL's address 203.0.113.7 is Gateway default/web's (status.addresses)")
        );
        let (_, why) = pick(&gateways, &classes, None, &req("http://app.gw.example.com/")).unwrap().unwrap();
        assert_eq!(why, "listener http of Gateway default/web (port 80, hostname *.gw.example.com) takes host app.gw.example.com");
        // Another port, another host: the Ingresses'.
        assert!(pick(&gateways, &classes, None, &req("http://app.gw.example.com:8080/")).unwrap().is_none());
        assert!(pick(&gateways, &classes, None, &req("http://kubia.example.com/")).unwrap().is_none());
        assert!(pick(&gateways, &classes, Some("default/web"), &req("http://kubia.example.com/")).unwrap().is_some());
        assert_eq!(
            pick(&gateways, &classes, Some("default/nope"), &req("http://x/")).unwrap_err(),
            "--gateway default/nope: gateway \"default/nope\" not found"
        );
        assert!(pick(&gateways, &[], Some("default/web"), &req("http://x/")).unwrap_err().contains("is not emu's"));
    }

    #[test]
    fn the_httproute_rule_its_rewrite_shares_and_redirects() {
        let (classes, gateways, routes, services, slices) = world();
        let m = model(&gateways[0], &routes, &services, &slices);
        let ask = |url: &str| {
            let req = parse_request(url, &[], None).unwrap();
            let (gw, why) = pick(&gateways, &classes, None, &req).unwrap().unwrap();
            explain(gw, why, &m, &slices, &req, "GET")
        };
        let d = ask("http://app.gw.example.com/api/users?id=1");
        assert_eq!(
            (d.route.as_deref(), d.rule, d.match_index, d.path.as_deref()),
            (Some("default/split"), Some(0), Some(0), Some("PathPrefix /api"))
        );
        let GatewayAnswer::Proxy { uri, backends, .. } = &d.answer else { panic!("{d:?}") };
        assert_eq!(uri, "/v2/users?id=1");
        assert_eq!((backends[0].share, backends[0].endpoints[0].pod.as_deref()), (8000, Some("default/kubia-a")));
        assert_eq!((backends[1].share, backends[1].status), (2000, Some(500)));
        let text = d.text();
        assert!(text.contains("Matched:       httproute/default/split rule 0 match 0 (PathPrefix /api)"), "{text}");
        assert!(text.contains("default/nosuch:80 20.00%: 500 Internal Server Error"), "{text}");
        assert_eq!(
            ask("http://app.gw.example.com/old").answer,
            GatewayAnswer::Redirect { code: 301, location: "http://app.gw.example.com/new".into() }
        );
        assert!(matches!(ask("http://app.gw.example.com/apix").answer, GatewayAnswer::Status { code: 404, .. }));
    }
}
