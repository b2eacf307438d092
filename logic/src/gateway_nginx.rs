//! The nginx configuration of one Gateway of emu's GatewayClass (issue 21, item 3's data path):
//! a pure function of the Gateway and the objects it serves ([`Inputs`]) to a [`Model`], rendered
//! to nginx.conf text ([`render_conf`]) and to the upstreams file it includes
//! ([`crate::ingress::render_upstreams`]). No I/O: `emu-ingress --gateway NS/NAME` gathers the
//! inputs, writes the files and runs nginx.
//!
//! Servers: one per (listener port, hostname), `listen <port>` (with `ssl` for HTTPS listeners),
//! plus a catch-all `default_server` per port that answers 404 (a request no listener's hostname
//! takes). An HTTPS listener terminates TLS with its first certificateRef, a Secret of type
//! `kubernetes.io/tls` of the Gateway's namespace.

use crate::ingress::CertFile;
use emu_api::gateway::Gateway;
use emu_api::typed::{key, EndpointSlice, HTTPRoute, Namespace, Secret, Service};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the renderer reads: the Gateway it serves and the objects its routes name.
pub struct Inputs<'a> {
    pub gateway: &'a Gateway,
    pub routes: &'a [HTTPRoute],
    pub namespaces: &'a [Namespace],
    pub services: &'a [Service],
    pub slices: &'a [EndpointSlice],
    /// Secrets of any type; only `kubernetes.io/tls` ones named by a listener are used.
    pub secrets: &'a [Secret],
}

/// Where the files are (paths in the controller's filesystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Logs, pid file and nginx's temporary directories.
    pub run_dir: String,
    /// Certificate files, `<namespace>-<secret>.pem`.
    pub cert_dir: String,
    /// Served by HTTPS servers without a usable certificate (the catch-all's).
    pub default_cert: String,
    /// The included upstreams file.
    pub upstreams_file: String,
}

/// One nginx server: a hostname on a listener port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub port: u16,
    /// None: the port's catch-all (`default_server`).
    pub hostname: Option<String>,
    /// An HTTPS listener's server (TLS terminated here).
    pub tls: bool,
    /// The certificate file; None for the default certificate.
    pub certificate: Option<String>,
}

/// Something to report as a Warning Event on the Gateway or a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `Gateway` or `HTTPRoute`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// By port, the catch-all first, then by hostname.
    pub servers: Vec<Server>,
    pub upstreams: Vec<crate::ingress::Upstream>,
    pub certificates: Vec<CertFile>,
    pub problems: Vec<Problem>,
}

/// Builds the model: see the module comment.
pub fn build(inputs: &Inputs, layout: &Layout) -> Model {
    let gw = inputs.gateway;
    let (ns, name) = key(&gw.metadata);
    let mut model = Model::default();
    let mut servers: BTreeMap<(u16, Option<String>), Server> = BTreeMap::new();
    for l in gw.spec.listeners.iter().filter(|l| matches!(l.protocol.as_str(), "HTTP" | "HTTPS")) {
        let Ok(port) = u16::try_from(l.port) else { continue };
        let tls = l.protocol == "HTTPS";
        let certificate = if tls { certificate(inputs, layout, &mut model, l) } else { None };
        servers.entry((port, None)).or_insert(Server { port, hostname: None, tls, certificate: None });
        if let Some(h) = &l.hostname {
            servers.insert((port, Some(h.clone())), Server { port, hostname: Some(h.clone()), tls, certificate });
        } else if certificate.is_some() {
            servers.insert((port, None), Server { port, hostname: None, tls, certificate });
        }
    }
    let _ = (ns, name);
    model.servers = servers.into_values().collect();
    model.certificates.sort_by(|a, b| a.path.cmp(&b.path));
    model.certificates.dedup();
    model
}

/// The certificate file of an HTTPS listener's first certificateRef, or None (the default
/// certificate) with a problem.
fn certificate(inputs: &Inputs, layout: &Layout, model: &mut Model, l: &emu_api::gateway::Listener) -> Option<String> {
    let (ns, name) = key(&inputs.gateway.metadata);
    let r = l.tls.as_ref()?.certificate_refs.as_ref()?.first()?;
    let secret_ns = r.namespace.as_deref().unwrap_or(ns);
    let mut problem = |reason, message| {
        model.problems.push(Problem { kind: "Gateway", namespace: ns.into(), name: name.into(), reason, message });
    };
    let found = inputs.secrets.iter().find(|s| key(&s.metadata) == (secret_ns, r.name.as_str()));
    let Some(s) = found else {
        problem("InvalidCertificateRef", format!("listener {}: secret \"{secret_ns}/{}\" not found", l.name, r.name));
        return None;
    };
    let data = s.data.clone().unwrap_or_default();
    let (Some(crt), Some(k), Some("kubernetes.io/tls")) = (data.get("tls.crt"), data.get("tls.key"), s.type_.as_deref()) else {
        let msg =
            format!("listener {}: secret \"{secret_ns}/{}\" is not of type kubernetes.io/tls with tls.crt and tls.key", l.name, r.name);
        problem("InvalidCertificateRef", msg);
        return None;
    };
    let path = format!("{}/{secret_ns}-{}.pem", layout.cert_dir, r.name);
    let mut pem = crt.0.clone();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&k.0);
    model.certificates.push(CertFile { path: path.clone(), pem });
    Some(path)
}

/// nginx.conf of the Gateway.
pub fn render_conf(model: &Model, layout: &Layout, gateway: &str) -> String {
    let mut w = crate::ingress::http_head(&format!("Gateway {gateway}"), &layout.run_dir);
    let _ = writeln!(w, "\n    include {};", layout.upstreams_file);
    for s in &model.servers {
        let default = if s.hostname.is_none() { " default_server" } else { "" };
        let ssl = if s.tls { " ssl" } else { "" };
        let _ = write!(
            w,
            "\n    server {{\n        server_name {};\n        listen {}{ssl}{default};\n",
            s.hostname.as_deref().unwrap_or("_"),
            s.port
        );
        if s.tls {
            let cert = s.certificate.as_deref().unwrap_or(&layout.default_cert);
            let _ = write!(w, "        ssl_certificate {cert};\n        ssl_certificate_key {cert};\n");
        }
        w.push_str("\n        location / {\n            return 404;\n        }\n    }\n");
    }
    w.push_str("}\n");
    w
}

#[cfg(test)]
mod tests;
