//! The nginx configuration of the ingress controller, as ingress-nginx builds it: a pure function
//! of the Ingresses, IngressClasses, Services, EndpointSlices and `kubernetes.io/tls` Secrets
//! ([`Inputs`]) to a [`Model`] (servers by host, their locations, upstreams of pod endpoints,
//! certificate files, and the problems to report as Events), then rendered to nginx.conf text
//! ([`render_conf`]) and to the upstreams file it includes ([`render_upstreams`]). No I/O: the
//! controller process gathers the inputs, writes the files the model names and runs nginx.
//!
//! What follows ingress-nginx (internal/ingress/controller, rootfs/etc/nginx/template/nginx.tmpl):
//! - Class: an Ingress is served when its `ingressClassName` is this controller's class, or when
//!   it names no class (neither the field nor the legacy annotation) and the class is the default.
//! - Servers: one per host, `*.example.com` as the regex `^[\w-]+\.example\.com$` (one label, as
//!   Kubernetes defines the wildcard, and as ingress-nginx's `buildServerName` writes it), plus
//!   the catch-all `_` whose `/` answers 404 (the controller's own default backend) unless an
//!   Ingress's `defaultBackend` takes it; rules without a host join `_`. Every server listens on
//!   both ports; TLS hosts use their Secret's certificate, the others the default certificate.
//! - Locations: `Exact /foo` is `= /foo`; `Prefix /foo` is the prefix `/foo/` plus `= /foo` (so
//!   `/foo` matches `/foo` and `/foo/bar`, never `/foobar`); `ImplementationSpecific` is nginx's
//!   own string prefix. nginx picks exact, then the longest prefix. With `use-regex` or
//!   `rewrite-target` on any Ingress of a host, all that host's paths become case-insensitive
//!   regexes `~* "^path"`, longest first (first match wins). A path claimed by two Ingresses goes
//!   to the older one. An Ingress's `defaultBackend` serves `/` of its hosts when no rule does.
//! - Backends: upstreams of the ready endpoints' addresses and ports, read from the Service's
//!   EndpointSlices by the Service port's name (so a named targetPort is resolved per slice),
//!   never the ClusterIP. A missing Service or port answers 503 and is reported.
//! - TLS: a host under `spec.tls` with a Secret of type `kubernetes.io/tls` uses its certificate
//!   (written as `<namespace>-<secret>.pem`, certificate then key, as ingress-nginx does); a
//!   missing or unusable Secret falls back to the default certificate and is reported. HTTP
//!   requests to a TLS host get a 308 to https (`ssl-redirect`, default true; `force-ssl-redirect`
//!   also for hosts without TLS).
//! - HSTS (`Strict-Transport-Security: max-age=31536000; includeSubDomains`) on HTTPS answers
//!   of TLS hosts, as ingress-nginx's `hsts` default.
//! - Headers to the pods: `Host`, `X-Real-IP`, `X-Forwarded-For` (the client address),
//!   `X-Forwarded-Host`, `X-Forwarded-Port`, `X-Forwarded-Proto`, `X-Forwarded-Scheme`,
//!   `X-Scheme`, `X-Request-ID`.
//! - Annotations (`nginx.ingress.kubernetes.io/`): `rewrite-target` (with regex capture groups,
//!   `rewrite "(?i)path" target break;`), `use-regex`, `ssl-redirect`, `force-ssl-redirect`,
//!   `backend-protocol` (HTTP, HTTPS), `affinity: cookie` with `session-cookie-name` (default
//!   `INGRESSCOOKIE`), `whitelist-source-range` (`allow`s then `deny all`; an invalid range
//!   answers 503, as ingress-nginx denies the location).
//!
//! Departures: ingress-nginx balances and keeps cookie affinity in Lua; plain nginx has neither,
//! so affinity is a consistent hash on the cookie (read from the `Cookie` header), set from
//! `$request_id` on the first response (the same client then stays on one pod while the endpoints
//! stay). A certificate is used for the hosts its `tls` entry lists without checking that it
//! covers them (that needs an X.509 parser).
//!
//! Endpoint changes without dropped connections: the upstream blocks live in their own file
//! ([`render_upstreams`]), included by nginx.conf, and a Service with no ready endpoint points at
//! a local server that answers 503 rather than changing the locations. So an endpoint change
//! rewrites only that file, and the runtime applies it with `nginx -s reload`: nginx starts new
//! workers with the new upstreams and lets the old ones finish their established connections
//! (a graceful reload; nothing is dropped). No `resolve` (DNS) is involved: endpoints are IPs.

use emu_api::defaults::ingress::{is_default_class, LEGACY_CLASS};
use emu_api::typed::{EndpointSlice, Ingress, IngressBackend, IngressClass, Secret, Service};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The annotations' prefix.
pub const ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The cookie of `affinity: cookie` without `session-cookie-name`.
pub const DEFAULT_COOKIE: &str = "INGRESSCOOKIE";
/// The local server that answers 503 for a Service without ready endpoints.
pub const NO_ENDPOINTS: &str = "127.0.0.1:8182";

/// What the renderer reads: the controller's class and the objects it watches.
pub struct Inputs<'a> {
    /// This controller's IngressClass name (`nginx`).
    pub class: &'a str,
    pub classes: &'a [IngressClass],
    pub ingresses: &'a [Ingress],
    pub services: &'a [Service],
    pub slices: &'a [EndpointSlice],
    /// Secrets of any type; only `kubernetes.io/tls` ones named by an Ingress are used.
    pub secrets: &'a [Secret],
}

/// Where the files are (paths in the controller's filesystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Logs, pid file and nginx's temporary directories.
    pub run_dir: String,
    /// Certificate files, `<namespace>-<secret>.pem`.
    pub cert_dir: String,
    /// The default certificate (with its key), served for hosts without a usable Secret.
    pub default_cert: String,
    /// The included upstreams file.
    pub upstreams_file: String,
    pub http_port: u16,
    pub https_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    Exact,
    Prefix,
    ImplementationSpecific,
}

/// Where a location sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An upstream of [`Model::upstreams`], by name.
    Upstream(String),
    /// 503: the backend cannot be served (missing Service, port or denied location).
    Unavailable,
    /// 404: the controller's default backend.
    DefaultBackend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// As the Ingress gives it (`/` for an empty ImplementationSpecific path).
    pub path: String,
    pub kind: PathKind,
    /// The Ingress it comes from, `namespace/name` (empty for the catch-all's own).
    pub ingress: String,
    pub target: Target,
    pub https_backend: bool,
    pub rewrite_target: Option<String>,
    /// 308 from http to https.
    pub ssl_redirect: bool,
    /// The cookie of `affinity: cookie`.
    pub affinity_cookie: Option<String>,
    /// `whitelist-source-range` entries (empty: all clients).
    pub allow: Vec<String>,
    /// The backend's Service (in the Ingress's namespace) and port, as the Ingress names them
    /// (None for the controller's default backend and resource backends); not rendered: for
    /// explaining a request ([`explain`]).
    pub service: Option<ServicePort>,
}

/// A Service and its port (name, or number as text) as an Ingress backend names them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServicePort {
    pub name: String,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `_` for the catch-all, else the host (possibly `*.example.com`).
    pub host: String,
    /// The certificate file; None for the default certificate.
    pub certificate: Option<String>,
    /// Paths are regexes (`use-regex` or `rewrite-target` on an Ingress of this host).
    pub regex: bool,
    /// Longest path first.
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `<namespace>-<service>-<port>` (with `-<cookie>` for an affinity upstream).
    pub name: String,
    /// `ip:port` of the ready endpoints, sorted (empty: [`NO_ENDPOINTS`]).
    pub endpoints: Vec<String>,
    pub affinity_cookie: Option<String>,
}

/// A certificate file the caller writes: the Secret's `tls.crt` then its `tls.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    pub path: String,
    pub pem: Vec<u8>,
}

/// Something to report as a Warning Event on the Ingress.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub namespace: String,
    pub ingress: String,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// The catch-all `_` first, then by host.
    pub servers: Vec<Server>,
    pub upstreams: Vec<Upstream>,
    pub certificates: Vec<CertFile>,
    pub problems: Vec<Problem>,
}

fn annotation<'a>(ing: &'a Ingress, name: &str) -> Option<&'a str> {
    ing.metadata.annotations.as_ref()?.get(&format!("{ANNOTATION_PREFIX}{name}")).map(String::as_str)
}

fn flag(ing: &Ingress, name: &str, default: bool) -> bool {
    annotation(ing, name).map_or(default, |v| v == "true")
}

/// Whether this controller serves the Ingress (NGX-1).
pub fn serves(class: &str, classes: &[IngressClass], ing: &Ingress) -> bool {
    let named = ing.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ing.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS)).map(String::as_str);
    match (named, legacy) {
        (Some(n), _) => n == class,
        (None, Some(l)) => l == class,
        (None, None) => classes.iter().any(|c| c.metadata.name.as_deref() == Some(class) && is_default_class(c)),
    }
}

fn ingress_key(ing: &Ingress) -> (String, String) {
    (ing.metadata.namespace.clone().unwrap_or_default(), ing.metadata.name.clone().unwrap_or_default())
}

/// Builds the model: see the module comment for what follows ingress-nginx.
pub fn build(inputs: &Inputs, layout: &Layout) -> Model {
    let mut served: Vec<&Ingress> = inputs.ingresses.iter().filter(|i| serves(inputs.class, inputs.classes, i)).collect();
    // The older Ingress wins a path both claim.
    served.sort_by_key(|i| (i.metadata.creation_timestamp.as_ref().map(|t| t.0), ingress_key(i)));
    let mut b = Builder { inputs, layout, model: Model::default(), servers: BTreeMap::new(), upstreams: BTreeMap::new() };
    b.servers.insert("_".into(), Server { host: "_".into(), certificate: None, regex: false, locations: vec![] });
    for ing in &served {
        b.add_ingress(ing);
    }
    let catch_all = b.servers.get_mut("_").expect("inserted above");
    if !catch_all.locations.iter().any(|l| l.path == "/" && l.kind != PathKind::Exact) {
        catch_all.locations.push(default_location("", Target::DefaultBackend));
    }
    let Builder { mut model, servers, upstreams, .. } = b;
    model.servers = servers.into_values().collect();
    for s in &mut model.servers {
        // Longest first (what regex locations are matched in); stable for equal lengths.
        s.locations.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.kind.cmp(&b.kind)));
    }
    // `_` sorts before letters and digits? Not in ASCII: put it first explicitly.
    model.servers.sort_by_key(|s| (s.host != "_", s.host.clone()));
    model.upstreams = upstreams.into_values().collect();
    model.certificates.sort_by(|a, b| a.path.cmp(&b.path));
    model.certificates.dedup();
    // One report of each problem (several paths may name the same missing Service).
    let mut seen = BTreeSet::new();
    model.problems.retain(|p| seen.insert(p.clone()));
    model
}

fn default_location(ingress: &str, target: Target) -> Location {
    Location {
        path: "/".into(),
        kind: PathKind::Prefix,
        ingress: ingress.into(),
        target,
        https_backend: false,
        rewrite_target: None,
        ssl_redirect: false,
        affinity_cookie: None,
        allow: vec![],
        service: None,
    }
}

struct Builder<'a> {
    inputs: &'a Inputs<'a>,
    layout: &'a Layout,
    model: Model,
    servers: BTreeMap<String, Server>,
    upstreams: BTreeMap<String, Upstream>,
}

impl Builder<'_> {
    fn problem(&mut self, ing: &Ingress, reason: &'static str, message: String) {
        let (namespace, ingress) = ingress_key(ing);
        self.model.problems.push(Problem { namespace, ingress, reason, message });
    }

    fn add_ingress(&mut self, ing: &Ingress) {
        let (ns, name) = ingress_key(ing);
        let spec = ing.spec.clone().unwrap_or_default();
        let rules = spec.rules.clone().unwrap_or_default();
        let tls = spec.tls.clone().unwrap_or_default();
        let regex = flag(ing, "use-regex", false) || annotation(ing, "rewrite-target").is_some();
        let tls_hosts: BTreeSet<&str> = tls.iter().flat_map(|t| t.hosts.iter().flatten()).map(String::as_str).collect();
        // Certificates of this Ingress's TLS hosts.
        for t in &tls {
            let certificate = self.certificate(ing, t.secret_name.as_deref().unwrap_or_default());
            for host in t.hosts.iter().flatten() {
                let server = self.server(host);
                if server.certificate.is_none() {
                    server.certificate = certificate.clone();
                }
            }
        }
        let template = |b: &mut Self, path: String, kind: PathKind, backend: &IngressBackend, host: &str| -> Location {
            let target = b.target(ing, backend, annotation(ing, "affinity") == Some("cookie"));
            let allow: Vec<String> = annotation(ing, "whitelist-source-range")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let bad: Vec<&String> = allow.iter().filter(|a| !valid_cidr(a)).collect();
            let target = if bad.is_empty() {
                target
            } else {
                let msg = format!("annotation {ANNOTATION_PREFIX}whitelist-source-range: invalid address or range {:?}", bad[0]);
                b.problem(ing, "InvalidAnnotation", msg);
                Target::Unavailable
            };
            let protocol = annotation(ing, "backend-protocol").unwrap_or("HTTP").to_ascii_uppercase();
            if !matches!(protocol.as_str(), "HTTP" | "HTTPS") {
                b.problem(
                    ing,
                    "InvalidAnnotation",
                    format!("annotation {ANNOTATION_PREFIX}backend-protocol: {protocol} is not supported (HTTP, HTTPS)"),
                );
            }
            let has_tls = tls_hosts.contains(host);
            Location {
                path,
                kind,
                ingress: format!("{ns}/{name}"),
                target,
                https_backend: protocol == "HTTPS",
                rewrite_target: annotation(ing, "rewrite-target").map(String::from),
                ssl_redirect: flag(ing, "force-ssl-redirect", false) || (has_tls && flag(ing, "ssl-redirect", true)),
                affinity_cookie: (annotation(ing, "affinity") == Some("cookie"))
                    .then(|| annotation(ing, "session-cookie-name").unwrap_or(DEFAULT_COOKIE).to_string()),
                allow,
                service: backend.service.as_ref().map(|s| {
                    let port = s.port.clone().unwrap_or_default();
                    let port = port.name.filter(|n| !n.is_empty()).unwrap_or_else(|| port.number.unwrap_or(0).to_string());
                    ServicePort { name: s.name.clone(), port }
                }),
            }
        };
        let mut hosts_of_ingress = BTreeSet::new();
        for rule in &rules {
            let host = match rule.host.as_deref().unwrap_or_default() {
                "" => "_".to_string(),
                h => h.to_string(),
            };
            hosts_of_ingress.insert(host.clone());
            let Some(http) = &rule.http else { continue };
            for p in &http.paths {
                let kind = match p.path_type.as_str() {
                    "Exact" => PathKind::Exact,
                    "Prefix" => PathKind::Prefix,
                    _ => PathKind::ImplementationSpecific,
                };
                let path = match p.path.as_deref().unwrap_or_default() {
                    "" => "/".to_string(),
                    other => other.to_string(),
                };
                let location = template(self, path, kind, &p.backend, &host);
                let server = self.server(&host);
                server.regex |= regex;
                if server.locations.iter().any(|l| l.path == location.path && l.kind == location.kind) {
                    let msg = format!("path {} of host {host} is already defined by an older Ingress", location.path);
                    self.problem(ing, "DuplicatePath", msg);
                    continue;
                }
                server.locations.push(location);
            }
        }
        // The defaultBackend: `/` of this Ingress's hosts that have none; with no rules, `/` of `_`.
        if let Some(default) = &spec.default_backend {
            if rules.is_empty() {
                hosts_of_ingress.insert("_".into());
            }
            for host in hosts_of_ingress {
                let taken = self.server(&host).locations.iter().any(|l| l.path == "/" && l.kind != PathKind::Exact);
                if !taken {
                    let location = template(self, "/".into(), PathKind::Prefix, default, &host);
                    self.server(&host).locations.push(location);
                }
            }
        }
    }

    fn server(&mut self, host: &str) -> &mut Server {
        self.servers.entry(host.to_string()).or_insert_with(|| Server {
            host: host.to_string(),
            certificate: None,
            regex: false,
            locations: vec![],
        })
    }

    /// The certificate file of a TLS Secret, or None (the default certificate) with a problem.
    fn certificate(&mut self, ing: &Ingress, secret: &str) -> Option<String> {
        if secret.is_empty() {
            return None;
        }
        let (ns, _) = ingress_key(ing);
        match tls_certificate(self.inputs.secrets, &self.layout.cert_dir, &ns, secret) {
            Ok(file) => {
                let path = file.path.clone();
                self.model.certificates.push(file);
                Some(path)
            }
            Err(SecretUnusable::Missing) => {
                self.problem(ing, "MissingSecret", format!("secret \"{ns}/{secret}\" not found: serving the default certificate"));
                None
            }
            Err(SecretUnusable::NotTls) => {
                let msg = format!(
                    "secret \"{ns}/{secret}\" is not of type kubernetes.io/tls with tls.crt and tls.key: serving the default certificate"
                );
                self.problem(ing, "InvalidSecret", msg);
                None
            }
        }
    }

    /// The upstream of a backend (made on first use), or why it cannot be served.
    fn target(&mut self, ing: &Ingress, backend: &IngressBackend, affinity: bool) -> Target {
        let (ns, _) = ingress_key(ing);
        let Some(svc_ref) = &backend.service else {
            let msg = "resource backends are not served by ingress-nginx".to_string();
            self.problem(ing, "UnsupportedBackend", msg);
            return Target::Unavailable;
        };
        let port_ref = svc_ref.port.clone().unwrap_or_default();
        let port_label = match (&port_ref.name, port_ref.number) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, n) => n.unwrap_or(0).to_string(),
        };
        let found =
            self.inputs.services.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(ns.as_str()) && s.metadata.name.as_deref() == Some(svc_ref.name.as_str())
            });
        let Some(svc) = found else {
            self.problem(ing, "MissingService", format!("service \"{ns}/{}\" not found", svc_ref.name));
            return Target::Unavailable;
        };
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            self.problem(ing, "UnsupportedBackend", format!("service \"{ns}/{}\" is of type ExternalName", svc_ref.name));
            return Target::Unavailable;
        }
        let ports = spec.ports.unwrap_or_default();
        let port = ports.iter().find(|p| match (&port_ref.name, port_ref.number) {
            (Some(n), _) if !n.is_empty() => p.name.as_deref() == Some(n.as_str()),
            (_, n) => Some(p.port) == n,
        });
        let Some(port) = port else {
            self.problem(ing, "MissingPort", format!("service \"{ns}/{}\" has no port {port_label}", svc_ref.name));
            return Target::Unavailable;
        };
        let cookie = affinity.then(|| annotation(ing, "session-cookie-name").unwrap_or(DEFAULT_COOKIE).to_string());
        let mut name = format!("{ns}-{}-{port_label}", svc_ref.name);
        if let Some(c) = &cookie {
            name = format!("{name}-{c}");
        }
        if !self.upstreams.contains_key(&name) {
            let endpoints = endpoints(self.inputs.slices, &ns, &svc_ref.name, port.name.as_deref().unwrap_or_default());
            self.upstreams.insert(name.clone(), Upstream { name: name.clone(), endpoints, affinity_cookie: cookie });
        }
        Target::Upstream(name)
    }
}

/// Why a TLS Secret cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretUnusable {
    Missing,
    /// Not of type `kubernetes.io/tls`, or without `tls.crt` and `tls.key`.
    NotTls,
}

/// The certificate file of Secret `namespace/name`: its `tls.crt` then its `tls.key`, at
/// `<cert_dir>/<namespace>-<name>.pem` as ingress-nginx writes it; or why it cannot be used.
pub(crate) fn tls_certificate(secrets: &[Secret], cert_dir: &str, ns: &str, name: &str) -> Result<CertFile, SecretUnusable> {
    let s = secrets
        .iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name))
        .ok_or(SecretUnusable::Missing)?;
    let data = s.data.as_ref();
    let (crt, key) = (data.and_then(|d| d.get("tls.crt")), data.and_then(|d| d.get("tls.key")));
    let (Some(crt), Some(key), Some("kubernetes.io/tls")) = (crt, key, s.type_.as_deref()) else {
        return Err(SecretUnusable::NotTls);
    };
    let mut pem = crt.0.clone();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&key.0);
    Ok(CertFile { path: format!("{cert_dir}/{ns}-{name}.pem"), pem })
}

/// The ready endpoints of a Service port, `ip:port` (the port of the slice's port of the same
/// name: a named targetPort resolves per slice), sorted and without duplicates.
pub fn endpoints(slices: &[EndpointSlice], namespace: &str, service: &str, port_name: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.metadata.namespace.as_deref() == Some(namespace)) {
        let owner = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"));
        if owner.map(String::as_str) != Some(service) {
            continue;
        }
        let ports = slice.ports.clone().unwrap_or_default();
        let Some(number) = ports.iter().find(|p| p.name.as_deref().unwrap_or_default() == port_name).and_then(|p| p.port) else {
            continue;
        };
        for e in &slice.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            if let Some(addr) = e.addresses.first() {
                out.insert(if addr.contains(':') { format!("[{addr}]:{number}") } else { format!("{addr}:{number}") });
            }
        }
    }
    out.into_iter().collect()
}

fn valid_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<std::net::IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

/// nginx's quoting of a string argument.
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The cookie names that upstreams hash on.
fn affinity_cookies(model: &Model) -> BTreeSet<&str> {
    model.upstreams.iter().filter_map(|u| u.affinity_cookie.as_deref()).collect()
}

/// The upstreams file, included by [`render_conf`]; an endpoint change rewrites only this file.
pub fn render_upstreams(model: &Model) -> String {
    render_upstreams_of(&model.upstreams)
}

/// The upstream blocks of `upstreams` (also those of a Gateway's model).
pub fn render_upstreams_of(upstreams: &[Upstream]) -> String {
    let mut w = String::new();
    for u in upstreams {
        let _ = writeln!(w, "upstream {} {{", u.name);
        if let Some(cookie) = &u.affinity_cookie {
            let _ = writeln!(w, "    hash $emu_affinity_{} consistent;", cookie_var(cookie));
        }
        if u.endpoints.is_empty() {
            let _ = writeln!(w, "    # no ready endpoints: 503");
            let _ = writeln!(w, "    server {NO_ENDPOINTS};");
        }
        for e in &u.endpoints {
            let _ = writeln!(w, "    server {e} max_fails=0;");
        }
        if u.affinity_cookie.is_none() {
            let _ = writeln!(w, "    keepalive 32;");
        }
        let _ = writeln!(w, "}}");
    }
    w
}

/// A cookie name as part of a variable name.
fn cookie_var(cookie: &str) -> String {
    cookie.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The `server_name` of a host: `*.example.com` as a one-label regex, as ingress-nginx writes it.
fn server_name(host: &str) -> String {
    match host.strip_prefix("*.") {
        Some(rest) => format!("~^(?<subdomain>[\\w-]+)\\.{}$", rest.replace('.', "\\.")),
        None => host.to_string(),
    }
}

/// The main context and the opening of the http block (left open for the caller's servers):
/// nginx's files under `run`, HTTP/1.1 to upstreams, TLS settings. `what` says what the text is
/// generated from.
pub(crate) fn http_head(what: &str, run: &str) -> String {
    let mut w = String::new();
    let _ = write!(
        w,
        "# Generated by emu from {what}; do not edit.
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log notice;

events {{
    worker_connections 1024;
}}

http {{
    default_type text/plain;
    access_log {run}/access.log;
    client_body_temp_path {run}/client-body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server_names_hash_bucket_size 128;
    map_hash_bucket_size 128;
    proxy_http_version 1.1;
    proxy_connect_timeout 5s;
    proxy_next_upstream error timeout;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
"
    );
    w
}

/// nginx.conf: the main context, the http block with one server per host, and the internal
/// servers (503 for no endpoints).
pub fn render_conf(model: &Model, layout: &Layout) -> String {
    let mut w = http_head("the Ingresses of the cluster", &layout.run_dir);
    let _ = write!(
        w,
        "
    # HSTS on the HTTPS responses of TLS hosts (ingress-nginx's hsts default).
    map $scheme $emu_hsts {{
        https \"max-age=31536000; includeSubDomains\";
        default \"\";
    }}
"
    );
    for cookie in affinity_cookies(model) {
        // Read from the Cookie header (a `$cookie_NAME` variable cannot name `route-id`).
        let (var, pattern) = (cookie_var(cookie), regex_escape(cookie));
        let _ = write!(
            w,
            "
    # affinity: cookie {cookie}: the client's cookie, or a new one set on the response.
    map $http_cookie $emu_affinity_{var} {{
        \"~(?:^|;\\s*){pattern}=(?<emu_cookie_{var}>[^;]+)\" $emu_cookie_{var};
        default $request_id;
    }}
    map $http_cookie $emu_set_cookie_{var} {{
        \"~(?:^|;\\s*){pattern}=\" \"\";
        default \"{cookie}=$request_id; Path=/; HttpOnly\";
    }}
"
        );
    }
    let _ = writeln!(w, "\n    include {};", layout.upstreams_file);
    let _ = write!(
        w,
        "
    # The local answer of an upstream without ready endpoints.
    server {{
        listen {NO_ENDPOINTS};
        location / {{
            return 503;
        }}
    }}
"
    );
    for s in &model.servers {
        render_server(&mut w, s, layout);
    }
    w.push_str("}\n");
    w
}

fn render_server(w: &mut String, s: &Server, layout: &Layout) {
    let catch_all = s.host == "_";
    let default = if catch_all { " default_server" } else { "" };
    let _ = write!(
        w,
        "
    server {{
        server_name {};
        listen {}{default};
        listen {} ssl{default};
        ssl_certificate {cert};
        ssl_certificate_key {cert};
",
        server_name(&s.host),
        layout.http_port,
        layout.https_port,
        cert = s.certificate.as_deref().unwrap_or(&layout.default_cert),
    );
    if catch_all {
        w.push_str("\n        location = /healthz {\n            access_log off;\n            return 200;\n        }\n");
    }
    for (m, l) in location_matchers(s) {
        render_location(w, &m, l, s.regex, s.certificate.is_some());
    }
    w.push_str("    }\n");
}

/// The `location` matchers of a server's Ingress locations, in the order nginx.conf has them,
/// each with the location it serves (the catch-all's own `= /healthz` comes before them).
pub(crate) fn location_matchers(s: &Server) -> Vec<(String, &Location)> {
    let mut rendered = BTreeSet::new();
    if s.host == "_" {
        rendered.insert("= /healthz".to_string());
    }
    let mut out = Vec::new();
    for l in &s.locations {
        let mut matchers = Vec::new();
        if s.regex {
            matchers.push(format!("~* {}", quoted(&format!("^{}", l.path))));
        } else {
            match l.kind {
                PathKind::Exact => matchers.push(format!("= {}", l.path)),
                PathKind::Prefix if l.path.ends_with('/') => matchers.push(l.path.clone()),
                PathKind::Prefix => {
                    matchers.push(format!("{}/", l.path));
                    matchers.push(format!("= {}", l.path));
                }
                PathKind::ImplementationSpecific => matchers.push(l.path.clone()),
            }
        }
        // A location nginx already has (Exact `/foo` beside Prefix `/foo`'s own `= /foo`) stays
        // with the first, which the order above makes the Exact one.
        for m in matchers {
            if rendered.insert(m.clone()) {
                out.push((m, l));
            }
        }
    }
    out
}

/// The regex of a location's `rewrite` (case-insensitive, as ingress-nginx writes it).
pub(crate) fn rewrite_pattern(path: &str, regex: bool) -> String {
    if regex {
        format!("(?i){path}")
    } else {
        format!("(?i){}", regex_escape(path))
    }
}

/// `hsts`: the server has its own certificate (a TLS host).
fn render_location(w: &mut String, matcher: &str, l: &Location, regex: bool, hsts: bool) {
    let _ = writeln!(w, "\n        location {matcher} {{");
    if !l.ingress.is_empty() {
        let _ = writeln!(w, "            # {}", l.ingress);
    }
    if l.ssl_redirect {
        w.push_str("            if ($scheme = http) {\n                return 308 https://$host$request_uri;\n            }\n");
    }
    for a in &l.allow {
        let _ = writeln!(w, "            allow {a};");
    }
    if !l.allow.is_empty() {
        w.push_str("            deny all;\n");
    }
    match &l.target {
        Target::DefaultBackend => w.push_str("            return 404;\n"),
        Target::Unavailable => w.push_str("            return 503;\n"),
        Target::Upstream(name) => {
            if let Some(target) = &l.rewrite_target {
                let pattern = rewrite_pattern(&l.path, regex);
                let _ = writeln!(w, "            rewrite {} {} break;", quoted(&pattern), target);
            }
            // A location's add_header hides the server's: each location says all of its own.
            if hsts {
                w.push_str("            add_header Strict-Transport-Security $emu_hsts always;\n");
            }
            if let Some(cookie) = &l.affinity_cookie {
                let _ = writeln!(w, "            add_header Set-Cookie $emu_set_cookie_{};", cookie_var(cookie));
            }
            w.push_str("            proxy_set_header Host $host;\n");
            w.push_str(FORWARDED_HEADERS);
            let scheme = if l.https_backend { "https" } else { "http" };
            let _ = writeln!(w, "            proxy_pass {scheme}://{name};");
        }
    }
    w.push_str("        }\n");
}

/// The headers a proxied request gets besides `Host` (at a location's indentation): the client's
/// address, the host and port it asked for, the scheme, a request id; and no `Connection: close`,
/// so that upstream connections are kept alive.
pub(crate) const FORWARDED_HEADERS: &str = "            proxy_set_header X-Request-ID $request_id;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Scheme $scheme;
            proxy_set_header X-Scheme $scheme;
            proxy_set_header Connection \"\";
";

/// `s` as a PCRE literal.
pub(crate) fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// The ingress-nginx controller image (the release whose manifest [`addon_objects`] follows).
pub const CONTROLLER_IMAGE: &str = "registry.k8s.io/ingress-nginx/controller:v1.12.0";
/// The add-on's namespace; deleting it (with [`ADDON_CLUSTER_OBJECTS`]) disables the add-on.
pub const ADDON_NAMESPACE: &str = "ingress-nginx";
/// The add-on's cluster-scoped objects, (kind, name).
pub const ADDON_CLUSTER_OBJECTS: [(&str, &str); 3] =
    [("IngressClass", "nginx"), ("ClusterRoleBinding", "ingress-nginx"), ("ClusterRole", "ingress-nginx")];

/// The ingress add-on as ingress-nginx's cloud manifest (deploy/static/provider/cloud) installs
/// it: namespace `ingress-nginx`, ServiceAccount, ClusterRole and binding, Deployment and
/// Service `ingress-nginx-controller` (LoadBalancer, `externalTrafficPolicy: Local` so that the
/// client's address reaches nginx and the pods' `X-Forwarded-For`), and IngressClass `nginx`
/// marked default (as minikube's add-on marks it). Left out: the admission webhook (its Job,
/// Service and ValidatingWebhookConfiguration: emu serves no webhooks), the leader election
/// Role (one replica) and the ConfigMap (the renderer has its configuration built in). The
/// readiness probe runs every second rather than ingress-nginx's 10 s after 10 s, so that the
/// controller takes traffic as soon as nginx answers (as emu's CoreDNS probe).
pub fn addon_objects() -> Vec<serde_json::Value> {
    use serde_json::json;
    let labels = json!({"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/part-of": "ingress-nginx", "app.kubernetes.io/component": "controller"});
    let selector = json!({"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/component": "controller"});
    let ns = ADDON_NAMESPACE;
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx"}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ingress-nginx", "namespace": ns, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ingress-nginx", "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces", "services"], "verbs": ["list", "watch", "get"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch", "get"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ingress-nginx", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ingress-nginx"},
            "subjects": [{"kind": "ServiceAccount", "name": "ingress-nginx", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress-nginx-controller", "namespace": ns, "labels": labels},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
                "selector": selector,
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "appProtocol": "http"},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https", "appProtocol": "https"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ingress-nginx-controller", "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "revisionHistoryLimit": 10, "minReadySeconds": 0, "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": labels},
                    "spec": {"serviceAccountName": "ingress-nginx", "terminationGracePeriodSeconds": 300, "dnsPolicy": "ClusterFirst",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "controller", "image": CONTROLLER_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "args": ["/nginx-ingress-controller", "--publish-service=ingress-nginx/ingress-nginx-controller",
                                "--election-id=ingress-nginx-leader", "--controller-class=k8s.io/ingress-nginx", "--ingress-class=nginx"],
                            "ports": [
                                {"name": "http", "containerPort": 80, "protocol": "TCP"},
                                {"name": "https", "containerPort": 443, "protocol": "TCP"}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                                "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 1},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                                "initialDelaySeconds": 10, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 5, "timeoutSeconds": 1},
                            "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}}}]}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "labels": labels, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ]
}

pub mod explain;

#[cfg(test)]
mod tests;
