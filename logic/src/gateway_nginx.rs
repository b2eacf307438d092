//! The nginx configuration of one Gateway of emu's GatewayClass (issue 21, item 3's data path):
//! a pure function of the Gateway and the objects its routes name ([`Inputs`]) to a [`Model`],
//! rendered to nginx.conf text ([`render_conf`]) and to the upstreams file it includes
//! ([`crate::ingress::render_upstreams_of`]); and [`route`], which says what that nginx does with
//! a request (which route and rule, the redirect or rewritten path, the candidate endpoints), for
//! tests and for explaining a request. No I/O: `emu-ingress --gateway NS/NAME` gathers the
//! inputs, writes the files and runs nginx.
//!
//! What follows the Gateway API (v1, standard channel):
//! - Attachment: a route is served on the listeners of this Gateway that accept it, by
//!   [`crate::gateway::accepting_listeners`] (parentRef sectionName and port, allowedRoutes
//!   namespaces, hostname intersection), the rules the status controller reports.
//! - Servers: one nginx server per (listener port, hostname): the listeners' hostnames and each
//!   attached route's hostnames intersected with its listener's (`*.example.com` is a suffix
//!   match of one or more labels, as nginx's own `*.example.com` server name), plus a catch-all
//!   `default_server` per port that answers 404. A server takes the routes of the most specific
//!   listener covering its hostname (exact, then the longest wildcard, then none), as a request
//!   belongs to the listener that matches it best. HTTPS listeners terminate TLS with their
//!   first certificateRef, a `kubernetes.io/tls` Secret.
//! - Matching precedence across all rules of all routes on a hostname: the most specific
//!   matching hostname (non-wildcard characters, then characters), then an Exact path, the
//!   longest PathPrefix, a method match, the most header matches, the most query parameter
//!   matches, the oldest route, `namespace/name` alphabetically, rule order, match order.
//!   PathPrefix matches by path element (`/foo` takes `/foo` and `/foo/bar`, never `/foobar`; a
//!   trailing `/` is ignored). nginx picks a location by path alone (exact, then the longest
//!   prefix), so each location carries every match whose path covers it, in precedence order:
//!   a request whose longest prefix has no match whose method, headers and query hold falls back
//!   to the shorter ones. No match: 404.
//! - The nginx shape: a location per path (`= /foo` and `/foo/` for PathPrefix `/foo`) computes
//!   `$emu_rule` with `set` and `if` (the rewrite module alone, which nginx runs in order), then
//!   `rewrite ^(.*)$ /@emu-r<N>$1 last` sends the request to the `internal` location of match N,
//!   which applies the rule's filters and proxies. A request path starting with `/@emu-r` is
//!   therefore reserved (404).
//! - Backends: upstreams of the Services' ready endpoints in the separate upstreams file (an
//!   endpoint change reloads gracefully, see [`crate::ingress`]); several weighted backendRefs
//!   through `split_clients "${request_id}"` onto upstream names and `proxy_pass http://$var`
//!   (nginx looks the name up among its upstreams). Weight 0 takes no requests; a backendRef that
//!   does not resolve (not a Service, a missing Service or port, another namespace: emu serves
//!   no ReferenceGrant) answers 500 for its share, and a rule with no weight left answers 500,
//!   as the Gateway API specifies. A Service without ready endpoints answers 503.
//! - Filters: RequestRedirect (scheme, hostname, port, path ReplaceFullPath or
//!   ReplacePrefixMatch, statusCode, default 302; the port is left out when it is the scheme's
//!   own), URLRewrite (hostname, path), RequestHeaderModifier and ResponseHeaderModifier (set,
//!   add, remove), RequestMirror (nginx's `mirror`: a copy of each request, its answer dropped).
//!   Headers to the pods as the Ingress renderer sends them (`X-Forwarded-For` etc.).
//!
//! Header and query RegularExpression matches take the whole value (`^(?:re)$`, PCRE in nginx,
//! the regex crate in [`route`]; a pattern the regex crate refuses is not served).
//!
//! Departures: RegularExpression path matches are not served (the match is dropped and
//! reported), nor header names with `_` (nginx drops such request headers), query names with
//! `-`, or Exact values containing `$` (nginx would read a variable); query parameter names match
//! without regard to case (nginx's `$arg_`); ExtensionRef filters are reported and ignored, and
//! a rule's `timeouts` are not applied. Right after a change, a connection accepted before
//! nginx's graceful reload is still served by the old configuration.

use crate::gateway::accepting_listeners;
use crate::ingress::{endpoints, quoted, regex_escape, tls_certificate, CertFile, SecretUnusable, Upstream};
use emu_api::gateway::{Gateway, HTTPPathModifier, HTTPRouteFilter, Listener, GROUP};
use emu_api::typed::{key, EndpointSlice, HTTPRoute, Namespace, Secret, Service};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The local server answering 500 for the share of a backendRef that does not resolve.
pub const INVALID_BACKEND: &str = "127.0.0.1:8183";
/// The upstream of [`INVALID_BACKEND`].
const INVALID_UPSTREAM: &str = "emu-invalid-backend";

/// What the renderer reads: the Gateway it serves and the objects its routes name.
pub struct Inputs<'a> {
    pub gateway: &'a Gateway,
    pub routes: &'a [HTTPRoute],
    /// For allowedRoutes `from: Selector`.
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
    /// The listener whose routes it serves (None: no listener takes this host: 404).
    pub listener: Option<String>,
    /// An HTTPS listener's server (TLS terminated here).
    pub tls: bool,
    /// The certificate file; None for the default certificate.
    pub certificate: Option<String>,
    /// Exact locations first, then prefixes, longest first.
    pub locations: Vec<Location>,
}

/// An nginx location of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: LocationPath,
    /// Indices into [`Model::matches`], highest precedence first.
    pub candidates: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LocationPath {
    /// `location = /foo`.
    Exact(String),
    /// `location /foo/` (requests under `/foo/`), or `location /` for `/`.
    Under(String),
}

/// A route's path match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Without a trailing `/` (but `/` itself).
    Prefix(String),
}

/// One match of one rule of a route, with what its rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The route, `namespace/name`.
    pub route: String,
    pub rule: usize,
    /// The match's index in its rule.
    pub index: usize,
    pub path: PathMatch,
    pub method: Option<String>,
    /// Header name (lowercase) and value.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter name and value.
    pub query: Vec<(String, ValueMatch)>,
    pub action: Action,
}

/// A header or query parameter value match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(String),
    /// The whole value matches (`^(?:re)$`); the patterns both PCRE (nginx) and the regex crate
    /// ([`route`]) read alike, those the regex crate accepts.
    RegularExpression(String),
}

impl ValueMatch {
    /// Whether `value` matches, as nginx's `if` tests it.
    pub fn holds(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(v) => v == value,
            ValueMatch::RegularExpression(re) => regex::Regex::new(&anchored(re)).is_ok_and(|r| r.is_match(value)),
        }
    }
}

/// A Gateway API regular expression as a whole-value match.
fn anchored(re: &str) -> String {
    format!("^(?:{re})$")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    ReplaceFullPath(String),
    ReplacePrefixMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Redirect { scheme: Option<String>, hostname: Option<String>, port: Option<u16>, path: Option<PathModifier>, status: u16 },
    Forward(Forward),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// Weight > 0 only.
    pub backends: Vec<Backend>,
    /// URLRewrite's hostname.
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    /// RequestHeaderModifier.
    pub request_headers: HeaderChanges,
    /// ResponseHeaderModifier.
    pub response_headers: HeaderChanges,
    /// RequestMirror: where a copy of each request goes (its answer is dropped); None: the
    /// reference does not resolve (no copy).
    pub mirrors: Vec<Option<String>>,
}

/// A header modifier filter's set and add (name, value) and remove (names).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderChanges {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/service:port` as the backendRef names it.
    pub name: String,
    pub weight: u32,
    /// The upstream; None: the reference does not resolve (500 for this share).
    pub upstream: Option<String>,
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
    /// Every served match; a location's candidates index it, and `/@emu-r<N>` is match N.
    pub matches: Vec<Match>,
    pub upstreams: Vec<Upstream>,
    pub certificates: Vec<CertFile>,
    pub problems: Vec<Problem>,
}

/// Whether hostname `a` covers every host of `b`: itself, or for `*.x` any `y.x` and `*.y.x`.
fn covers_host(a: &str, b: &str) -> bool {
    a == b || a.strip_prefix('*').is_some_and(|suffix| b.len() > suffix.len() && b.ends_with(suffix))
}

/// The hosts a route serves on a listener: its hostnames intersected with the listener's (None:
/// any host).
fn route_hosts(listener: Option<&str>, route: &[String]) -> RouteHosts {
    if route.is_empty() {
        return vec![listener.map(String::from)];
    }
    let mut out: Vec<Option<String>> = Vec::new();
    for h in route {
        let h = h.to_ascii_lowercase();
        let host = match listener {
            None => Some(h),
            Some(l) if covers_host(l, &h) => Some(h),
            Some(l) if covers_host(&h, l) => Some(l.to_string()),
            Some(_) => None,
        };
        if let Some(host) = host.filter(|h| !out.contains(&Some(h.clone()))) {
            out.push(Some(host));
        }
    }
    out
}

/// Hostname precedence: non-wildcard characters, then characters (higher first).
fn host_rank(host: Option<&str>) -> (usize, usize) {
    match host {
        None => (0, 0),
        Some(h) if h.starts_with('*') => (0, h.len()),
        Some(h) => (h.len(), h.len()),
    }
}

/// Whether PathPrefix `prefix` takes path `path` (by path element).
pub fn prefix_takes(prefix: &str, path: &str) -> bool {
    prefix == "/" || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// The listener (index) that a host on a port belongs to: the listener whose hostname is the
/// host, else the longest wildcard covering it, else the one without a hostname.
fn listener_of<'a>(listeners: &[(usize, &'a Listener)], host: Option<&str>) -> Option<(usize, &'a Listener)> {
    let best = listeners
        .iter()
        .filter(|(_, l)| match (l.hostname.as_deref(), host) {
            (None, _) => true,
            (Some(lh), Some(h)) => covers_host(lh, h),
            (Some(_), None) => false,
        })
        .max_by_key(|(i, l)| (host_rank(l.hostname.as_deref()), std::cmp::Reverse(*i)));
    best.copied()
}

/// A route's hosts on a listener (None: any host).
type RouteHosts = Vec<Option<String>>;

/// Builds the model: see the module comment.
pub fn build(inputs: &Inputs, layout: &Layout) -> Model {
    let gw = inputs.gateway;
    let (gw_ns, gw_name) = key(&gw.metadata);
    let mut model = Model::default();
    let mut upstreams: BTreeMap<String, Upstream> = BTreeMap::new();
    let labels: BTreeMap<&str, BTreeMap<String, String>> =
        inputs.namespaces.iter().map(|n| (key(&n.metadata).1, n.metadata.labels.clone().unwrap_or_default())).collect();
    // Routes by precedence among routes: the oldest, then namespace/name.
    let mut routes: Vec<&HTTPRoute> = inputs.routes.iter().collect();
    routes.sort_by_key(|r| (r.metadata.creation_timestamp.as_ref().map(|t| t.0), key(&r.metadata)));
    // listener name → (route index, its hosts on that listener).
    let mut attached: BTreeMap<String, Vec<(usize, RouteHosts)>> = BTreeMap::new();
    // Each route's matches, made once (index into model.matches).
    let mut route_matches: Vec<Vec<usize>> = Vec::new();
    for (ri, route) in routes.iter().enumerate() {
        let (ns, _) = key(&route.metadata);
        let mut names = BTreeSet::new();
        for parent in route.spec.parent_refs.iter().flatten() {
            let ours = parent.group.as_deref().unwrap_or(GROUP) == GROUP
                && parent.kind.as_deref().unwrap_or("Gateway") == "Gateway"
                && parent.namespace.as_deref().unwrap_or(ns) == gw_ns
                && parent.name == gw_name;
            if ours {
                names.extend(accepting_listeners(gw, parent, route, ns, &labels).unwrap_or_default());
            }
        }
        let hostnames = route.spec.hostnames.clone().unwrap_or_default();
        for name in &names {
            let Some(l) = gw.spec.listeners.iter().find(|l| &l.name == name) else { continue };
            let hosts = route_hosts(l.hostname.as_deref(), &hostnames);
            attached.entry(name.clone()).or_default().push((ri, hosts));
        }
        let made = if names.is_empty() { vec![] } else { route_matches_of(inputs, route, &mut model, &mut upstreams) };
        route_matches.push(made);
    }
    // Servers, by port.
    let mut by_port: BTreeMap<u16, Vec<(usize, &Listener)>> = BTreeMap::new();
    for (i, l) in gw.spec.listeners.iter().enumerate().filter(|(_, l)| matches!(l.protocol.as_str(), "HTTP" | "HTTPS")) {
        match u16::try_from(l.port) {
            Ok(port) if port > 0 => by_port.entry(port).or_default().push((i, l)),
            _ => {}
        }
    }
    let mut certificates: BTreeMap<usize, Option<String>> = BTreeMap::new();
    for (&port, listeners) in &by_port {
        // One protocol per port: the first listener's (a port both HTTP and HTTPS is a conflict).
        let tls = listeners[0].1.protocol == "HTTPS";
        for (_, l) in listeners.iter().filter(|(_, l)| (l.protocol == "HTTPS") != tls) {
            let msg = format!("listener {}: port {port} is already {} for another listener", l.name, listeners[0].1.protocol);
            model.problems.push(problem("Gateway", gw_ns, gw_name, "ProtocolConflict", msg));
        }
        let mut hosts: BTreeSet<Option<String>> = BTreeSet::from([None]);
        for (_, l) in listeners {
            hosts.insert(l.hostname.clone());
            for (_, route_hosts) in attached.get(&l.name).into_iter().flatten() {
                hosts.extend(route_hosts.iter().cloned());
            }
        }
        for host in hosts {
            let chosen = listener_of(listeners, host.as_deref());
            let certificate = match chosen {
                Some((i, l)) if tls => certificates.entry(i).or_insert_with(|| certificate(inputs, layout, &mut model, l)).clone(),
                _ => None,
            };
            let mut candidates: Vec<(Option<String>, usize)> = Vec::new();
            if let Some((_, l)) = chosen {
                for (ri, route_hosts) in attached.get(&l.name).into_iter().flatten() {
                    // The route's most specific host covering this server's.
                    let best = route_hosts
                        .iter()
                        .filter(|rh| match (rh.as_deref(), host.as_deref()) {
                            (None, _) => true,
                            (Some(rh), Some(h)) => covers_host(rh, h),
                            (Some(_), None) => false,
                        })
                        .max_by_key(|rh| host_rank(rh.as_deref()));
                    if let Some(rh) = best {
                        candidates.extend(route_matches[*ri].iter().map(|m| (rh.clone(), *m)));
                    }
                }
            }
            let locations = locations(&model.matches, &candidates);
            model.servers.push(Server { port, hostname: host, listener: chosen.map(|(_, l)| l.name.clone()), tls, certificate, locations });
        }
    }
    model.upstreams = upstreams.into_values().collect();
    model.certificates.sort_by(|a, b| a.path.cmp(&b.path));
    model.certificates.dedup();
    let mut seen = BTreeSet::new();
    model.problems.retain(|p| seen.insert(p.clone()));
    model
}

fn problem(kind: &'static str, ns: &str, name: &str, reason: &'static str, message: String) -> Problem {
    Problem { kind, namespace: ns.into(), name: name.into(), reason, message }
}

/// The locations of a server from its candidate matches (with the route host each came in by),
/// each location with the matches covering it in precedence order.
fn locations(matches: &[Match], candidates: &[(Option<String>, usize)]) -> Vec<Location> {
    let mut paths: BTreeSet<LocationPath> = BTreeSet::new();
    for (_, m) in candidates {
        match &matches[*m].path {
            PathMatch::Exact(v) => {
                paths.insert(LocationPath::Exact(v.clone()));
            }
            PathMatch::Prefix(p) if p == "/" => {
                paths.insert(LocationPath::Under(p.clone()));
            }
            PathMatch::Prefix(p) => {
                paths.insert(LocationPath::Exact(p.clone()));
                paths.insert(LocationPath::Under(p.clone()));
            }
        }
    }
    let mut out: Vec<Location> = paths
        .into_iter()
        .map(|path| {
            let mut taking: Vec<&(Option<String>, usize)> = candidates
                .iter()
                .filter(|(_, m)| match (&path, &matches[*m].path) {
                    (LocationPath::Exact(v), PathMatch::Exact(e)) => v == e,
                    (LocationPath::Exact(v), PathMatch::Prefix(p)) => prefix_takes(p, v),
                    (LocationPath::Under(_), PathMatch::Exact(_)) => false,
                    (LocationPath::Under(u), PathMatch::Prefix(p)) => prefix_takes(p, u),
                })
                .collect();
            taking.sort_by_key(|(host, m)| precedence(host.as_deref(), &matches[*m]));
            Location { path, candidates: taking.into_iter().map(|(_, m)| *m).collect() }
        })
        .collect();
    // As nginx reads them: exact locations, then the longest prefix first.
    out.sort_by_key(|l| match &l.path {
        LocationPath::Exact(v) => (0, std::cmp::Reverse(v.len()), v.clone()),
        LocationPath::Under(v) => (1, std::cmp::Reverse(v.len()), v.clone()),
    });
    out
}

/// The sort key of a match on a host: lower comes first. Matches are made in route precedence
/// order (oldest, then namespace/name; rules and matches in order), so their index breaks ties.
fn precedence(host: Option<&str>, m: &Match) -> impl Ord {
    let (plain, chars) = host_rank(host);
    let path = match &m.path {
        PathMatch::Exact(v) => (0, std::cmp::Reverse(v.len())),
        PathMatch::Prefix(p) => (1, std::cmp::Reverse(p.len())),
    };
    (
        std::cmp::Reverse(plain),
        std::cmp::Reverse(chars),
        path,
        m.method.is_none(),
        std::cmp::Reverse(m.headers.len()),
        std::cmp::Reverse(m.query.len()),
    )
}

/// Whether nginx can match a header (`header`) or query parameter by this name and value: a
/// header name of letters, digits and `-` (nginx drops request headers with `_` by default; `-`
/// becomes `_` in `$http_`), a query name of letters, digits and `_` (the `$arg_` suffix), and a
/// value without `$` (an nginx string would read a variable).
fn servable(name: &str, value: &str, header: bool) -> bool {
    let extra = if header { '-' } else { '_' };
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == extra) && !value.contains('$')
}

/// The matches of a route's rules, pushed onto `model.matches` (their indices returned).
fn route_matches_of(inputs: &Inputs, route: &HTTPRoute, model: &mut Model, upstreams: &mut BTreeMap<String, Upstream>) -> Vec<usize> {
    let (ns, name) = key(&route.metadata);
    let mut made = Vec::new();
    for (rule_index, rule) in route.spec.rules.iter().flatten().enumerate() {
        let action = action(inputs, route, rule, model, upstreams);
        let default_match = vec![emu_api::gateway::HTTPRouteMatch::default()];
        let matches = rule.matches.as_ref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
        for (index, m) in matches.iter().enumerate() {
            let mut unservable = |what: String| {
                let msg = format!("rule {rule_index} match {index}: {what} is not served by emu; the match is left out");
                model.problems.push(problem("HTTPRoute", ns, name, "UnsupportedValue", msg));
            };
            let value = m.path.as_ref().and_then(|p| p.value.clone()).unwrap_or_else(|| "/".into());
            let path = match m.path.as_ref().and_then(|p| p.type_.as_deref()).unwrap_or("PathPrefix") {
                "Exact" => PathMatch::Exact(value),
                "PathPrefix" => {
                    let trimmed = value.trim_end_matches('/');
                    PathMatch::Prefix(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
                }
                other => {
                    unservable(format!("path match type {other}"));
                    continue;
                }
            };
            let mut pairs = |list: &Option<Vec<emu_api::gateway::HTTPHeaderMatch>>, what: &str, header: bool| {
                let mut out = Vec::new();
                for h in list.iter().flatten() {
                    let type_ = h.type_.as_deref().unwrap_or("Exact");
                    // A regex is not interpolated by nginx (`$` is an anchor there), but must
                    // read the same to the regex crate.
                    let value = match type_ {
                        "Exact" if servable(&h.name, &h.value, header) => Some(ValueMatch::Exact(h.value.clone())),
                        "RegularExpression" if servable(&h.name, "", header) && regex::Regex::new(&anchored(&h.value)).is_ok() => {
                            Some(ValueMatch::RegularExpression(h.value.clone()))
                        }
                        _ => None,
                    };
                    let Some(value) = value else {
                        unservable(format!("{what} match {:?} ({type_}, {:?})", h.name, h.value));
                        return None;
                    };
                    out.push((if header { h.name.to_ascii_lowercase() } else { h.name.clone() }, value));
                }
                Some(out)
            };
            let (Some(headers), Some(query)) = (pairs(&m.headers, "header", true), pairs(&m.query_params, "query parameter", false)) else {
                continue;
            };
            model.matches.push(Match {
                route: format!("{ns}/{name}"),
                rule: rule_index,
                index,
                path,
                method: m.method.clone(),
                headers,
                query,
                action: action.clone(),
            });
            made.push(model.matches.len() - 1);
        }
    }
    made
}

fn path_modifier(p: &Option<HTTPPathModifier>) -> Option<PathModifier> {
    let p = p.as_ref()?;
    match p.type_.as_str() {
        "ReplaceFullPath" => Some(PathModifier::ReplaceFullPath(p.replace_full_path.clone().unwrap_or_default())),
        "ReplacePrefixMatch" => Some(PathModifier::ReplacePrefixMatch(p.replace_prefix_match.clone().unwrap_or_default())),
        _ => None,
    }
}

/// What a rule does: its redirect, or its forward with filters and backends.
fn action(
    inputs: &Inputs,
    route: &HTTPRoute,
    rule: &emu_api::gateway::HTTPRouteRule,
    model: &mut Model,
    upstreams: &mut BTreeMap<String, Upstream>,
) -> Action {
    let (ns, name) = key(&route.metadata);
    let filters: &[HTTPRouteFilter] = rule.filters.as_deref().unwrap_or_default();
    if let Some(r) = filters.iter().find_map(|f| f.request_redirect.as_ref().filter(|_| f.type_ == "RequestRedirect")) {
        return Action::Redirect {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port: r.port.and_then(|p| u16::try_from(p).ok()),
            path: path_modifier(&r.path),
            status: r.status_code.and_then(|c| u16::try_from(c).ok()).unwrap_or(302),
        };
    }
    let mut forward = Forward::default();
    for f in filters {
        let changes = |h: &emu_api::gateway::HTTPHeaderFilter| {
            let pairs = |l: &Option<Vec<emu_api::gateway::HTTPHeader>>| -> Vec<(String, String)> {
                l.iter().flatten().filter(|h| servable(&h.name, &h.value, true)).map(|h| (h.name.clone(), h.value.clone())).collect()
            };
            let remove = h.remove.iter().flatten().filter(|n| servable(n, "", true)).cloned().collect();
            HeaderChanges { set: pairs(&h.set), add: pairs(&h.add), remove }
        };
        match f.type_.as_str() {
            "URLRewrite" if f.url_rewrite.is_some() => {
                let u = f.url_rewrite.as_ref().expect("checked");
                forward.hostname = u.hostname.clone();
                forward.path = path_modifier(&u.path);
            }
            "RequestHeaderModifier" if f.request_header_modifier.is_some() => {
                forward.request_headers = changes(f.request_header_modifier.as_ref().expect("checked"));
            }
            "ResponseHeaderModifier" if f.response_header_modifier.is_some() => {
                forward.response_headers = changes(f.response_header_modifier.as_ref().expect("checked"));
            }
            "RequestMirror" if f.request_mirror.is_some() => {
                let r = &f.request_mirror.as_ref().expect("checked").backend_ref;
                let mirror = resolve(inputs, ns, r, upstreams).map_err(|(reason, msg)| {
                    model.problems.push(problem("HTTPRoute", ns, name, reason, format!("{msg}: requests are not mirrored")));
                });
                forward.mirrors.push(mirror.ok());
            }
            other => {
                let msg = format!("filter {other} is not served by emu; it is ignored");
                model.problems.push(problem("HTTPRoute", ns, name, "UnsupportedValue", msg));
            }
        }
    }
    for b in rule.backend_refs.iter().flatten() {
        let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        if weight == 0 {
            continue;
        }
        let r = &b.backend;
        let label = format!("{}/{}:{}", r.namespace.as_deref().unwrap_or(ns), r.name, r.port.unwrap_or(0));
        let upstream = match resolve(inputs, ns, r, upstreams) {
            Ok(u) => Some(u),
            Err((reason, msg)) => {
                model.problems.push(problem("HTTPRoute", ns, name, reason, format!("{msg}: its share of requests answers 500")));
                None
            }
        };
        forward.backends.push(Backend { name: label, weight, upstream });
    }
    Action::Forward(forward)
}
/// The upstream of a backendRef of a route of namespace `ns` (made on first use), or why the
/// reference does not resolve (the Gateway API's ResolvedRefs reasons).
fn resolve(
    inputs: &Inputs,
    ns: &str,
    r: &emu_api::gateway::BackendObjectReference,
    upstreams: &mut BTreeMap<String, Upstream>,
) -> Result<String, (&'static str, String)> {
    let b_ns = r.namespace.as_deref().unwrap_or(ns);
    let port = r.port.unwrap_or(0);
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !r.group.as_deref().unwrap_or_default().is_empty() || kind != "Service" {
        return Err(("InvalidKind", format!("backendRef {}: kind {kind} is not supported", r.name)));
    }
    if b_ns != ns {
        return Err(("RefNotPermitted", format!("backendRef {b_ns}/{}: a reference to another namespace needs a ReferenceGrant", r.name)));
    }
    let svc = inputs.services.iter().find(|s| key(&s.metadata) == (b_ns, r.name.as_str()));
    let Some(svc) = svc else { return Err(("BackendNotFound", format!("Service {b_ns}/{} not found", r.name))) };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let Some(p) = ports.iter().find(|p| p.port == port) else {
        return Err(("BackendNotFound", format!("Service {b_ns}/{} has no port {port}", r.name)));
    };
    let upstream = format!("{b_ns}-{}-{port}", r.name);
    upstreams.entry(upstream.clone()).or_insert_with(|| Upstream {
        name: upstream.clone(),
        endpoints: endpoints(inputs.slices, b_ns, &r.name, p.name.as_deref().unwrap_or_default()),
        affinity_cookie: None,
    });
    Ok(upstream)
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
    match tls_certificate(inputs.secrets, &layout.cert_dir, secret_ns, &r.name) {
        Ok(file) => {
            let path = file.path.clone();
            model.certificates.push(file);
            Some(path)
        }
        Err(why) => {
            let what = match why {
                SecretUnusable::Missing => "not found",
                SecretUnusable::NotTls => "is not of type kubernetes.io/tls with tls.crt and tls.key",
            };
            problem("InvalidCertificateRef", format!("listener {}: secret \"{secret_ns}/{}\" {what}", l.name, r.name));
            None
        }
    }
}

/// The `split_clients` percentages of weighted backends, in hundredths of a percent: each
/// backend's share rounded down, the last taking the rest (`*`).
pub fn split_percents(backends: &[Backend]) -> Vec<u32> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let mut out: Vec<u32> = backends.iter().map(|b| (u64::from(b.weight) * 10_000 / total.max(1)) as u32).collect();
    if let Some(last) = out.last_mut() {
        *last = 10_000 - backends[..backends.len() - 1].iter().map(|b| (u64::from(b.weight) * 10_000 / total.max(1)) as u32).sum::<u32>();
    }
    out
}

fn upstream_name(b: &Backend) -> &str {
    b.upstream.as_deref().unwrap_or(INVALID_UPSTREAM)
}

/// nginx.conf of the Gateway `gateway` (`namespace/name`).
pub fn render_conf(model: &Model, layout: &Layout, gateway: &str) -> String {
    let mut w = crate::ingress::http_head(&format!("Gateway {gateway}"), &layout.run_dir);
    for (n, m) in model.matches.iter().enumerate() {
        let Action::Forward(f) = &m.action else { continue };
        if f.backends.len() < 2 {
            continue;
        }
        // $request_id is random per request: each request draws its backend by weight.
        let _ = writeln!(
            w,
            "\n    # {} rule {} match {}: weighted backends.\n    split_clients \"${{request_id}}\" $emu_split_{n} {{",
            m.route, m.rule, m.index
        );
        let percents = split_percents(&f.backends);
        for (i, (b, p)) in f.backends.iter().zip(&percents).enumerate() {
            if i + 1 == f.backends.len() {
                let _ = writeln!(w, "        * {};", upstream_name(b));
            } else if *p > 0 {
                let _ = writeln!(w, "        {}.{:02}% {};", p / 100, p % 100, upstream_name(b));
            }
        }
        w.push_str("    }\n");
    }
    let _ = write!(
        w,
        "
    include {upstreams};

    upstream {INVALID_UPSTREAM} {{
        server {INVALID_BACKEND};
    }}

    # The local answers of an upstream without ready endpoints (503) and of a backendRef that
    # does not resolve (500).
    server {{
        listen {no_endpoints};
        location / {{
            return 503;
        }}
    }}
    server {{
        listen {INVALID_BACKEND};
        location / {{
            return 500;
        }}
    }}
",
        upstreams = layout.upstreams_file,
        no_endpoints = crate::ingress::NO_ENDPOINTS,
    );
    for s in &model.servers {
        render_server(&mut w, model, s, layout);
    }
    w.push_str("}\n");
    w
}

fn render_server(w: &mut String, model: &Model, s: &Server, layout: &Layout) {
    let default = if s.hostname.is_none() { " default_server" } else { "" };
    let ssl = if s.tls { " ssl" } else { "" };
    let _ = write!(
        w,
        "\n    server {{\n        server_name {};\n        listen {}{ssl}{default};\n",
        s.hostname.as_deref().unwrap_or("_"),
        s.port
    );
    if let Some(l) = &s.listener {
        let _ = writeln!(w, "        # listener {l}");
    }
    if s.tls {
        let cert = s.certificate.as_deref().unwrap_or(&layout.default_cert);
        let _ = write!(w, "        ssl_certificate {cert};\n        ssl_certificate_key {cert};\n");
    }
    let mut used = BTreeSet::new();
    for l in &s.locations {
        let matcher = match &l.path {
            LocationPath::Exact(v) => format!("= {}", quoted(v)),
            LocationPath::Under(p) if p == "/" => "/".to_string(),
            LocationPath::Under(p) => quoted(&format!("{p}/")),
        };
        let _ = write!(w, "\n        location {matcher} {{\n            set $emu_rule \"\";\n");
        // In reverse precedence, so that the last match that holds (the first in precedence)
        // sets $emu_rule; nothing below a match without conditions can win.
        let upto = l.candidates.iter().position(|&n| unconditional(&model.matches[n])).map_or(l.candidates.len(), |i| i + 1);
        for &n in l.candidates[..upto].iter().rev() {
            used.insert(n);
            let m = &model.matches[n];
            let _ = writeln!(w, "            # {} rule {} match {}", m.route, m.rule, m.index);
            if unconditional(m) {
                let _ = writeln!(w, "            set $emu_rule {n};");
                continue;
            }
            w.push_str("            set $emu_ok 1;\n");
            let mut unless = |var: String, value: &ValueMatch| {
                let (op, value) = match value {
                    ValueMatch::Exact(v) => ("!=", v.clone()),
                    ValueMatch::RegularExpression(re) => ("!~", anchored(re)),
                };
                let _ = writeln!(w, "            if ({var} {op} {}) {{\n                set $emu_ok \"\";\n            }}", quoted(&value));
            };
            if let Some(method) = &m.method {
                unless("$request_method".into(), &ValueMatch::Exact(method.clone()));
            }
            for (name, value) in &m.headers {
                unless(format!("$http_{}", name.replace('-', "_")), value);
            }
            for (name, value) in &m.query {
                unless(format!("$arg_{name}"), value);
            }
            let _ = writeln!(w, "            if ($emu_ok) {{\n                set $emu_rule {n};\n            }}");
        }
        w.push_str("            if ($emu_rule = \"\") {\n                return 404;\n            }\n            rewrite ^(.*)$ /@emu-r$emu_rule$1 last;\n        }\n");
    }
    if !s.locations.iter().any(|l| l.path == LocationPath::Under("/".into())) {
        w.push_str("\n        location / {\n            return 404;\n        }\n");
    }
    for n in used {
        render_rule(w, s, n, &model.matches[n]);
    }
    w.push_str("    }\n");
}

fn unconditional(m: &Match) -> bool {
    m.method.is_none() && m.headers.is_empty() && m.query.is_empty()
}

/// The prefix a ReplacePrefixMatch replaces, as a regex after the `/@emu-r<N>` marker.
fn prefix_regex(path: &PathMatch) -> String {
    match path {
        PathMatch::Prefix(p) if p == "/" => String::new(),
        PathMatch::Prefix(p) | PathMatch::Exact(p) => regex_escape(p),
    }
}

/// Where a redirect goes: scheme, host and port part (`:8080`, or empty for the scheme's own
/// port), as nginx text (`host` is `$host` unless the filter names one).
fn redirect_origin(s: &Server, scheme: &Option<String>, hostname: &Option<String>, port: Option<u16>, host: &str) -> String {
    let scheme_to = scheme.clone().unwrap_or_else(|| if s.tls { "https".into() } else { "http".into() });
    // The Gateway API: an explicit port; else the scheme's well-known port when the filter
    // names a scheme; else the listener's.
    let port = port.or_else(|| {
        scheme.as_ref().and_then(|sc| match sc.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        })
    });
    let port = port.unwrap_or(s.port);
    let own = (scheme_to == "http" && port == 80) || (scheme_to == "https" && port == 443);
    let port = if own { String::new() } else { format!(":{port}") };
    format!("{scheme_to}://{}{port}", hostname.as_deref().unwrap_or(host))
}

/// The internal location of match `n`: its rule's filters, then the proxy or the redirect.
fn render_rule(w: &mut String, s: &Server, n: usize, m: &Match) {
    let _ = write!(
        w,
        "\n        location ^~ /@emu-r{n}/ {{\n            internal;\n            # {} rule {} match {}\n",
        m.route, m.rule, m.index
    );
    let marker = format!("/@emu-r{n}");
    match &m.action {
        Action::Redirect { scheme, hostname, port, path, status } => {
            let origin = redirect_origin(s, scheme, hostname, *port, "$host");
            let target = match path {
                None => "$request_uri".to_string(),
                Some(PathModifier::ReplaceFullPath(p)) => format!("{p}$is_args$args"),
                Some(PathModifier::ReplacePrefixMatch(r)) => {
                    let base = r.trim_end_matches('/');
                    let _ = write!(
                        w,
                        "            set $emu_path \"\";\n            if ($uri ~ {}) {{\n                set $emu_path {};\n            }}\n            if ($emu_path = \"\") {{\n                set $emu_path /;\n            }}\n",
                        quoted(&format!("^{marker}{}(/.*)?$", prefix_regex(&m.path))),
                        quoted(&format!("{base}$1")),
                    );
                    "$emu_path$is_args$args".to_string()
                }
            };
            let _ = writeln!(w, "            return {status} {};", quoted(&format!("{origin}{target}")));
        }
        Action::Forward(f) => {
            if f.backends.is_empty() {
                w.push_str("            # no backend with a weight: 500\n            return 500;\n        }\n");
                return;
            }
            // Before any `rewrite ... break`, which ends the rewrite module's directives.
            for (i, (name, _)) in f.request_headers.add.iter().enumerate() {
                // Appended to the client's value, comma-separated, as a repeated header reads.
                let var = format!("$emu_add_{i}");
                let header = name.to_ascii_lowercase().replace('-', "_");
                let _ = write!(w, "            set {var} $http_{header};\n            if ({var}) {{\n                set {var} \"{var},\";\n            }}\n");
            }
            match &f.path {
                None => {}
                Some(PathModifier::ReplaceFullPath(p)) => {
                    let _ = writeln!(w, "            rewrite ^ {} break;", quoted(p));
                }
                Some(PathModifier::ReplacePrefixMatch(r)) => {
                    let (re, base) = (prefix_regex(&m.path), r.trim_end_matches('/'));
                    let whole = if base.is_empty() { "/" } else { base };
                    let _ = writeln!(w, "            rewrite {} {} break;", quoted(&format!("^{marker}{re}$")), quoted(whole));
                    let _ = writeln!(
                        w,
                        "            rewrite {} {} break;",
                        quoted(&format!("^{marker}{re}(/.*)$")),
                        quoted(&format!("{base}$1"))
                    );
                }
            }
            let _ = writeln!(w, "            proxy_set_header Host {};", f.hostname.as_deref().map_or("$host".to_string(), quoted));
            w.push_str(crate::ingress::FORWARDED_HEADERS);
            for (name, value) in &f.request_headers.set {
                let _ = writeln!(w, "            proxy_set_header {name} {};", quoted(value));
            }
            for (i, (name, value)) in f.request_headers.add.iter().enumerate() {
                let value = value.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(w, "            proxy_set_header {name} \"${{emu_add_{i}}}{value}\";");
            }
            for name in &f.request_headers.remove {
                let _ = writeln!(w, "            proxy_set_header {name} \"\";");
            }
            // The response's headers: nginx's add_header adds a line; set hides the pod's first.
            let response = &f.response_headers;
            for name in response.set.iter().map(|(n, _)| n).chain(&response.remove) {
                let _ = writeln!(w, "            proxy_hide_header {name};");
            }
            for (name, value) in response.set.iter().chain(&response.add) {
                let _ = writeln!(w, "            add_header {name} {} always;", quoted(value));
            }
            for (i, _) in f.mirrors.iter().enumerate().filter(|(_, m)| m.is_some()) {
                let _ = writeln!(w, "            mirror /@emu-m{n}-{i};");
            }
            let target = if f.backends.len() == 1 { upstream_name(&f.backends[0]).to_string() } else { format!("$emu_split_{n}") };
            // The client's own request URI when the path is not rewritten (nginx would send
            // the normalized one after the internal redirect).
            let uri = if f.path.is_none() { "$request_uri" } else { "" };
            let _ = writeln!(w, "            proxy_pass http://{target}{uri};");
            w.push_str("        }\n");
            // The mirrors' copies: the client's request URI to the mirror's upstream.
            for (i, upstream) in f.mirrors.iter().enumerate() {
                let Some(upstream) = upstream else { continue };
                let _ =
                    write!(w, "\n        location = /@emu-m{n}-{i} {{\n            internal;\n            proxy_set_header Host $host;\n");
                w.push_str(crate::ingress::FORWARDED_HEADERS);
                let _ = writeln!(w, "            proxy_pass http://{upstream}$request_uri;\n        }}");
            }
            return;
        }
    }
    w.push_str("        }\n");
}

/// A request as nginx sees it at a listener port.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Host` header without its port (nginx's `$host`).
    pub host: &'a str,
    pub port: u16,
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?` (empty: none).
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

/// What the rendered nginx does with a [`Request`]: see [`route`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The server that took the request: its port and hostname (None: the port's catch-all);
    /// None when no listener is on the port (the connection is refused).
    pub server: Option<(u16, Option<String>)>,
    /// The match that took it, an index into [`Model::matches`] (its route, rule and match).
    pub matched: Option<usize>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No listener on the port.
    Refused,
    /// 404, and why.
    NotFound(String),
    /// A RequestRedirect: the status and the `Location` header.
    Redirect { status: u16, location: String },
    /// 500: the rule has no backend with a weight.
    NoBackend,
    /// Proxied: the `Host` and request URI the pod receives, and the backends drawn by weight.
    Forward { host: String, uri: String, backends: Vec<Share> },
}

/// A backend's share of the requests a rule forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// `namespace/service:port`.
    pub backend: String,
    /// Hundredths of a percent of the rule's requests.
    pub percent: u32,
    /// The ready endpoints (`ip:port`); empty with `status` 503 (no ready endpoint) or 500 (the
    /// reference does not resolve).
    pub endpoints: Vec<String>,
    pub status: Option<u16>,
}

/// The first value of a header (nginx's `$http_name`), or "".
fn header<'a>(req: &Request<'a>, name: &str) -> &'a str {
    req.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v)
}

/// The first value of a query parameter (nginx's `$arg_name`: the name without regard to case,
/// the value as sent), or "".
fn arg<'a>(req: &Request<'a>, name: &str) -> &'a str {
    req.query.split('&').filter_map(|p| p.split_once('=')).find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v)
}

/// The path after ReplacePrefixMatch: the matched prefix replaced, a trailing `/` of the
/// replacement not doubled, and `/` for an empty result (the Gateway API's examples).
pub fn replace_prefix(matched: &PathMatch, replacement: &str, path: &str) -> String {
    let rest = match matched {
        PathMatch::Prefix(p) if p == "/" => path,
        PathMatch::Prefix(p) | PathMatch::Exact(p) => path.get(p.len()..).unwrap_or_default(),
    };
    let out = format!("{}{rest}", replacement.trim_end_matches('/'));
    if out.is_empty() {
        "/".into()
    } else {
        out
    }
}

/// Which route and rule serve `req` through the model's nginx, and what they do: the server
/// (by port, then the exact hostname, the longest wildcard, the catch-all), its location (the
/// exact path, else the longest prefix), the first of the location's matches in precedence
/// order whose method, headers and query parameters hold, then that rule's redirect or rewrite
/// and backends. It mirrors [`render_conf`]'s text; the unit tests check the Gateway API's
/// semantics through it, and `emu ingress explain` explains HTTPRoutes with it.
pub fn route(model: &Model, req: &Request) -> Decision {
    let host = req.host.to_ascii_lowercase();
    let on_port: Vec<&Server> = model.servers.iter().filter(|s| s.port == req.port).collect();
    let server = on_port
        .iter()
        .filter(|s| s.hostname.as_deref().is_some_and(|h| h == host || (h.starts_with('*') && covers_host(h, &host))))
        .max_by_key(|s| host_rank(s.hostname.as_deref()))
        .or_else(|| on_port.iter().find(|s| s.hostname.is_none()));
    let Some(server) = server else { return Decision { server: None, matched: None, outcome: Outcome::Refused } };
    let decision = |matched, outcome| Decision { server: Some((server.port, server.hostname.clone())), matched, outcome };
    if req.path.starts_with("/@emu-r") {
        return decision(None, Outcome::NotFound("paths under /@emu-r are emu's internal locations".into()));
    }
    let location = server.locations.iter().find(|l| l.path == LocationPath::Exact(req.path.to_string())).or_else(|| {
        server
            .locations
            .iter()
            .filter_map(|l| match &l.path {
                LocationPath::Under(p) if p == "/" || req.path.starts_with(&format!("{p}/")) => Some((p.len(), l)),
                _ => None,
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, l)| l)
    });
    let Some(location) = location else {
        let why = match &server.listener {
            Some(l) => format!("no route of listener {l} has a path match for {}", req.path),
            None => format!("no listener on port {} takes host {host}", req.port),
        };
        return decision(None, Outcome::NotFound(why));
    };
    let holds = |m: &Match| {
        m.method.as_deref().is_none_or(|x| x == req.method)
            && m.headers.iter().all(|(n, v)| v.holds(header(req, n)))
            && m.query.iter().all(|(n, v)| v.holds(arg(req, n)))
    };
    let Some(&n) = location.candidates.iter().find(|&&n| holds(&model.matches[n])) else {
        return decision(None, Outcome::NotFound(format!("no match's method, headers and query parameters hold for {}", req.path)));
    };
    let m = &model.matches[n];
    let args = if req.query.is_empty() { String::new() } else { format!("?{}", req.query) };
    let outcome = match &m.action {
        Action::Redirect { scheme, hostname, port, path, status } => {
            let origin = redirect_origin(server, scheme, hostname, *port, &host);
            let target = match path {
                None => format!("{}{args}", req.path),
                Some(PathModifier::ReplaceFullPath(p)) => format!("{p}{args}"),
                Some(PathModifier::ReplacePrefixMatch(r)) => format!("{}{args}", replace_prefix(&m.path, r, req.path)),
            };
            Outcome::Redirect { status: *status, location: format!("{origin}{target}") }
        }
        Action::Forward(f) if f.backends.is_empty() => Outcome::NoBackend,
        Action::Forward(f) => {
            let path = match &f.path {
                None => req.path.to_string(),
                Some(PathModifier::ReplaceFullPath(p)) => p.clone(),
                Some(PathModifier::ReplacePrefixMatch(r)) => replace_prefix(&m.path, r, req.path),
            };
            let backends = f
                .backends
                .iter()
                .zip(split_percents(&f.backends))
                .map(|(b, percent)| {
                    let endpoints = b
                        .upstream
                        .as_ref()
                        .and_then(|u| model.upstreams.iter().find(|x| &x.name == u))
                        .map(|u| u.endpoints.clone())
                        .unwrap_or_default();
                    let status = match (&b.upstream, endpoints.is_empty()) {
                        (None, _) => Some(500),
                        (Some(_), true) => Some(503),
                        _ => None,
                    };
                    Share { backend: b.name.clone(), percent, endpoints, status }
                })
                .collect();
            Outcome::Forward { host: f.hostname.clone().unwrap_or(host.clone()), uri: format!("{path}{args}"), backends }
        }
    };
    decision(Some(n), outcome)
}

#[cfg(test)]
mod tests;
