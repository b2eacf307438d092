//! `emu ingress explain URL`: what the rendered nginx does with one request, decided from the
//! renderer's [`Model`] (the same servers and locations nginx.conf is written from) and the
//! objects it was built from ([`Inputs`]: the class, the Ingresses it left out, the pods behind
//! the endpoints). Pure: the CLI gathers the objects and prints the [`Decision`].
//!
//! It follows nginx's own order of processing, on the configuration [`super::render_conf`] writes:
//! - Server: the `Host` header (lowercased, without its port and trailing dot) against the
//!   `server_name`s: an exact name first, then the wildcard hosts (rendered as the one-label regex
//!   `^[\w-]+\.example\.com$`) in the order of the file; none: the catch-all `_` (default_server).
//! - URI: percent-decoded, `//` merged, `.` and `..` resolved (nginx's normalisation); `..` above
//!   the root is a 400.
//! - Location: `= path` exact first; then the longest prefix; in a regex server the `~*` regexes
//!   in the order of the file (longest path first), the first that matches. A URI that is a
//!   proxied prefix location without its trailing `/` gets nginx's 301 to it. No location: nginx
//!   answers 404 itself (the server has no `location /`).
//! - Rewrite phase, in the location's order: the 308 of `ssl-redirect`, the `return` of the
//!   default backend (404) or of an unavailable backend (503), then `rewrite` (captures `$1`..`$9`
//!   and named groups substituted as nginx's script engine does: a zero-length result is a 500, a
//!   replacement starting with `http://`, `https://` or `$scheme` a 302, a `?` in it replaces
//!   the arguments).
//! - Access phase: `allow`s of `whitelist-source-range` then `deny all` (403).
//! - Proxy: the upstream's ready endpoints (none: the local 503 server); with `affinity: cookie`
//!   the cookie's value is hashed as nginx's `hash ... consistent` does (crc32 ring of 160 points
//!   per server), so the endpoint a given cookie reaches is known. The URI the pod sees is the
//!   client's own when nothing rewrote it, else the rewritten one, escaped.
//!
//! Regexes are matched with the `regex` crate on bytes without Unicode classes (PCRE's default
//! mode as nginx compiles them); a pattern it cannot compile (look-around, back-references) is
//! reported rather than guessed.

use super::{location_matchers, rewrite_pattern, Inputs, Location, Model, PathKind, Server, ServicePort, Target, ANNOTATION_PREFIX};
use emu_api::typed::EndpointSlice;
use serde::Serialize;
use std::net::IpAddr;

pub mod gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One request, as a client such as curl sends it for a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub scheme: Scheme,
    /// The URL's host (`[...]` kept for IPv6), the default `Host` header.
    pub host: String,
    /// The URL's port, or the scheme's.
    pub port: u16,
    /// The URL named its port (then the default `Host` header has it too, as curl sends it).
    pub explicit_port: bool,
    /// The path as sent (percent-encoded), `/` when the URL has none.
    pub path: String,
    /// What follows `?`, as sent.
    pub query: Option<String>,
    /// Header lines the client adds; a `Host` one replaces the URL's.
    pub headers: Vec<(String, String)>,
    /// The client's address as nginx sees it (for `whitelist-source-range`), if known.
    pub client: Option<IpAddr>,
}

/// Parses `emu ingress explain`'s arguments; the error names the argument and the fix.
pub fn parse_request(url: &str, headers: &[String], client: Option<&str>) -> Result<Request, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "URL {url:?} has no scheme: write it as http://{url} or https://{url} (the request explain follows is the one curl would send)"
        ));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("URL {url:?}: scheme {other:?} is not served by an Ingress: use http:// or https://")),
    };
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    // user:password@ is curl's, not part of the host.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| format!("URL {url:?}: an IPv6 host needs its closing ]"))?;
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let valid_host = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c)) && !h.starts_with('.');
    if !valid_host(&host) {
        return Err(format!(
            "URL {url:?} is not a URL: its host {host:?} is not a host name or address (e.g. http://kubia.example.com/foo)"
        ));
    }
    let default_port = if scheme == Scheme::Http { 80 } else { 443 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => {
            p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("URL {url:?}: port {p:?} is not a port number (1-65535)"))?
        }
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
    if let Some(c) = path.chars().chain(query.iter().flat_map(|q| q.chars())).find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("URL {url:?}: {c:?} cannot be sent in a request line: percent-encode it (a space is %20)"));
    }
    let mut parsed = Vec::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
            .ok_or_else(|| format!("--header {h:?} is not of the form 'Name: value' (e.g. --header 'Host: kubia.example.com')"))?;
        parsed.push((name.to_string(), value.trim().to_string()));
    }
    let client = client
        .map(|c| c.parse::<IpAddr>().map_err(|_| format!("--client-ip {c:?} is not an IP address (e.g. --client-ip 198.51.100.1)")))
        .transpose()?;
    // curl's Host header names the port only when it is not the scheme's.
    Ok(Request { explicit_port: port != default_port, scheme, host, port, path, query, headers: parsed, client })
}

impl Request {
    /// Header `name`'s values, in order (names are case-insensitive).
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The `Host` header: the last one given, else the URL's host (with its port when named).
    pub fn host_header(&self) -> String {
        match self.header("Host").last() {
            Some(h) => h.to_string(),
            None if self.explicit_port => format!("{}:{}", self.host, self.port),
            None => self.host.clone(),
        }
    }

    /// nginx's `$host`: the Host header lowercased, without its port and a trailing dot.
    pub fn nginx_host(&self) -> String {
        let h = self.host_header().to_ascii_lowercase();
        let h = if h.starts_with('[') {
            h.split_once(']').map_or(h.clone(), |(a, _)| format!("{a}]"))
        } else {
            h.split_once(':').map_or(h.clone(), |(a, _)| a.to_string())
        };
        h.strip_suffix('.').map(str::to_string).unwrap_or(h)
    }

    /// `$request_uri`: the path and query as sent.
    fn request_uri(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What nginx does with the request, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// nginx's `$host` and the normalised URI locations are matched against.
    pub host: String,
    pub uri: String,
    pub class: Class,
    /// Ingresses this controller leaves to others, and why.
    pub ignored: Vec<Ignored>,
    pub server: ServerChoice,
    /// The location that took the request (None: no location matched, or nginx answered first).
    pub location: Option<LocationChoice>,
    /// The Ingresses' other paths, and why they did not take it.
    pub others: Vec<Rejected>,
    pub answer: Answer,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Class {
    pub name: String,
    /// `spec.controller`; None when the IngressClass does not exist.
    pub controller: Option<String>,
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub ingress: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerChoice {
    /// The server's host, `_` for the catch-all.
    pub name: String,
    /// `exact`, `wildcard` or `catch-all`.
    pub how: &'static str,
    pub reason: String,
    /// The certificate file of a TLS host (None: the default certificate).
    pub certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationChoice {
    /// `namespace/name`, empty for the controller's own locations.
    pub ingress: String,
    pub path: String,
    pub path_type: String,
    /// The nginx location (`= /foo`, `/foo/`, `~* "^/foo"`).
    pub matcher: String,
    pub reason: String,
    /// The backend Service, `namespace/name`, and its port as the Ingress names it.
    pub service: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub ingress: String,
    /// The rule's host (`*` for rules without one).
    pub host: String,
    pub path: String,
    pub path_type: String,
    pub reason: String,
}

/// The answer: nginx's own status, a redirect, or the request proxied to a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Answer {
    Status { code: u16, reason: String },
    Redirect { code: u16, location: String, reason: String },
    Proxy(Box<Proxy>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proxy {
    pub upstream: String,
    /// `http` or `https` (`backend-protocol`).
    pub protocol: &'static str,
    /// The request line's target the pod gets.
    pub uri: String,
    pub rewrite: Option<Rewrite>,
    /// The endpoints nginx may pick (round robin; one with affinity and a cookie).
    pub endpoints: Vec<Endpoint>,
    pub affinity: Option<Affinity>,
    /// `whitelist-source-range` when the client's address is not known: 403 from elsewhere.
    pub allowed_from: Vec<String>,
    /// The headers nginx sets for the pod.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub pattern: String,
    pub replacement: String,
    /// The new URI (None: the pattern did not match, the URI stays).
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `ip:port`.
    pub address: String,
    /// `namespace/name` of the pod (the EndpointSlice's targetRef).
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affinity {
    pub cookie: String,
    /// The cookie's value in the request (None: nginx hashes a new `$request_id` and sets it).
    pub value: Option<String>,
}

/// The nginx location a request ends in.
enum Found<'a> {
    Location(String, &'a Location, String),
    /// The catch-all's `= /healthz`.
    Healthz,
    /// A proxied prefix location `uri/`: nginx's 301 to it.
    AutoRedirect(String, &'a Location),
    None,
}

/// Decides what the rendered nginx does with `req` (see the module comment).
pub fn explain(inputs: &Inputs, model: &Model, req: &Request) -> Decision {
    let host = req.nginx_host();
    let mut notes = Vec::new();
    let class = class(inputs);
    let ignored = inputs
        .ingresses
        .iter()
        .filter(|i| !super::serves(inputs.class, inputs.classes, i))
        .map(|i| Ignored { ingress: key(i), reason: not_served(inputs, i) })
        .collect();
    let (server, server_choice) = choose_server(model, &host);
    let decision = |uri: &str, location, others, answer, notes| Decision {
        host: host.clone(),
        uri: uri.to_string(),
        class,
        ignored,
        server: server_choice,
        location,
        others,
        answer,
        notes,
    };
    let uri = match normalize(&req.path) {
        Ok(u) => u,
        Err(why) => {
            let answer = Answer::Status { code: 400, reason: format!("nginx refuses the request's path {:?}: {why}", req.path) };
            return decision("", None, vec![], answer, notes);
        }
    };
    let found = find_location(server, &uri, &mut notes);
    let chosen = match &found {
        Found::Location(_, l, _) | Found::AutoRedirect(_, l) => Some(*l),
        _ => None,
    };
    let mut others = rejections(model, server, chosen, &uri, &host);
    let (location, answer) = match found {
        Found::Healthz => {
            (None, Answer::Status { code: 200, reason: "the controller's own health check (location = /healthz of the catch-all)".into() })
        }
        Found::None => {
            let reason = format!(
                "no location of server {} matches {uri}: nginx answers 404 itself (no Ingress path of this host takes it, and it has no defaultBackend)",
                server.host
            );
            (None, Answer::Status { code: 404, reason })
        }
        Found::AutoRedirect(matcher, l) => {
            let location =
                format!("{}://{}{}", req.scheme.as_str(), req.host_header(), with_args(&format!("{uri}/"), req.query.as_deref()));
            let reason = format!(
                "{uri} is location {matcher} without its trailing /: nginx redirects a proxied prefix location's name without the slash to it"
            );
            (
                Some(choice(l, &matcher, "the location's name is the URI with a trailing /".into())),
                Answer::Redirect { code: 301, location, reason },
            )
        }
        Found::Location(matcher, l, why) => {
            let answer = answer(inputs, model, server, l, req, &uri, &mut notes);
            let unavailable = matches!(answer, Answer::Status { code: 503, .. });
            for p in ingress_problems(model, &l.ingress).filter(|p| !(unavailable && unavailable_because(l, p))) {
                notes.push(format!("ingress {} has a Warning {}: {}", l.ingress, p.reason, p.message));
            }
            (Some(choice(l, &matcher, why)), answer)
        }
    };
    if req.scheme == Scheme::Https && server.certificate.is_none() {
        notes.push(format!(
            "server {} has no certificate of its own: nginx presents the controller's default (self-signed) certificate",
            server.host
        ));
    }
    if req.port != 80 && req.port != 443 {
        notes.push(format!(
            "the controller's Service ingress-nginx-controller listens on 80 and 443: port {} reaches it only through a port-forward or a proxy of yours",
            req.port
        ));
    }
    others.sort_by(|a, b| (&a.ingress, &a.host, &a.path).cmp(&(&b.ingress, &b.host, &b.path)));
    decision(&uri, location, others, answer, notes)
}

fn key(i: &emu_api::typed::Ingress) -> String {
    format!("{}/{}", i.metadata.namespace.as_deref().unwrap_or_default(), i.metadata.name.as_deref().unwrap_or_default())
}

fn class(inputs: &Inputs) -> Class {
    let found = inputs.classes.iter().find(|c| c.metadata.name.as_deref() == Some(inputs.class));
    Class {
        name: inputs.class.to_string(),
        controller: found.and_then(|c| c.spec.as_ref()).and_then(|s| s.controller.clone()),
        default: found.is_some_and(emu_api::defaults::ingress::is_default_class),
    }
}

fn not_served(inputs: &Inputs, i: &emu_api::typed::Ingress) -> String {
    let named = i.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref());
    let legacy = i.metadata.annotations.as_ref().and_then(|a| a.get(emu_api::defaults::ingress::LEGACY_CLASS));
    match (named, legacy) {
        (Some(n), _) => format!("its ingressClassName is {n}, not {}", inputs.class),
        (None, Some(l)) => format!("its {} annotation is {l}, not {}", emu_api::defaults::ingress::LEGACY_CLASS, inputs.class),
        (None, None) => format!("it names no class and IngressClass {} is not the default class", inputs.class),
    }
}

/// nginx's server for `$host`: exact name, then the wildcards' regexes in file order, else `_`.
fn choose_server<'m>(model: &'m Model, host: &str) -> (&'m Server, ServerChoice) {
    let choice = |s: &Server, how, reason| ServerChoice { name: s.host.clone(), how, reason, certificate: s.certificate.clone() };
    if let Some(s) = model.servers.iter().find(|s| !s.host.starts_with("*.") && s.host == host) {
        return (s, choice(s, "exact", format!("server_name {host} is the Host's name")));
    }
    for s in model.servers.iter().filter(|s| s.host.starts_with("*.")) {
        if wildcard_matches(&s.host, host) {
            return (s, choice(s, "wildcard", format!("{host} is one label under {} (no server has the exact name)", s.host)));
        }
    }
    let catch_all = model.servers.iter().find(|s| s.host == "_").expect("the model always has the catch-all server");
    let hosts: Vec<&str> = model.servers.iter().map(|s| s.host.as_str()).filter(|h| *h != "_").collect();
    let mut reason = if hosts.is_empty() {
        format!("no Ingress rule names a host: {host} goes to the catch-all server _ (default_server)")
    } else {
        format!("no Ingress rule's host is {host} (hosts: {}): the catch-all server _ (default_server) takes it", hosts.join(", "))
    };
    for w in hosts.iter().filter(|h| h.starts_with("*.")) {
        let suffix = &w[1..];
        if host.ends_with(suffix) && host.len() > suffix.len() {
            reason.push_str(&format!("; {w} matches exactly one DNS label, and {} is not one", &host[..host.len() - suffix.len()]));
        }
    }
    (catch_all, choice(catch_all, "catch-all", reason))
}

/// `*.example.com` as ingress-nginx renders it: `^[\w-]+\.example\.com$`.
fn wildcard_matches(wildcard: &str, host: &str) -> bool {
    let suffix = &wildcard[1..];
    host.strip_suffix(suffix)
        .is_some_and(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// nginx's URI normalisation: percent-decoding, merged slashes, `.` and `..` resolved.
pub fn normalize(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err("a request path starts with /".into());
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(format!("{:?} is not a percent-escape", &path[i..(i + 3).min(path.len())])) };
            if b == 0 {
                return Err("%00 in a path".into());
            }
            decoded.push(b);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = decoded.split('/').collect();
    let last = parts.len() - 1;
    let mut trailing = false;
    for (n, seg) in parts.iter().enumerate() {
        trailing = n == last && (seg.is_empty() || *seg == "." || *seg == "..");
        match *seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err("its .. goes above the root".into());
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A regex as nginx's PCRE compiles it (bytes, ASCII classes), or why it cannot be followed.
fn pcre(pattern: &str, caseless: bool) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(caseless)
        .unicode(false)
        .build()
        .map_err(|e| format!("explain cannot follow the regex {pattern:?} (PCRE syntax the regex crate lacks?): {e}"))
}

/// A prefix location's string matches by path element: `/foo` takes `/foo` and `/foo/...`.
fn under_prefix(uri: &str, path: &str) -> bool {
    uri == path || path.ends_with('/') && uri.starts_with(path) || uri.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
}

fn find_location<'s>(server: &'s Server, uri: &str, notes: &mut Vec<String>) -> Found<'s> {
    if server.host == "_" && uri == "/healthz" {
        return Found::Healthz;
    }
    let matchers = location_matchers(server);
    if server.regex {
        for (m, l) in &matchers {
            match pcre(&format!("^{}", l.path), true) {
                Ok(re) if re.is_match(uri.as_bytes()) => {
                    let why = format!(
                        "this host's paths are case-insensitive regexes (use-regex or rewrite-target on one of its Ingresses), tried longest first: ^{} is the first that matches",
                        l.path
                    );
                    return Found::Location(m.clone(), l, why);
                }
                Ok(_) => {}
                Err(e) => notes.push(e),
            }
        }
        return Found::None;
    }
    if let Some((m, l)) = matchers.iter().find(|(m, _)| m.strip_prefix("= ") == Some(uri)) {
        let why = match l.kind {
            PathKind::Exact => format!("Exact {} is the URI (an exact location wins over every prefix)", l.path),
            _ => format!("Prefix {} takes the URI itself (its location = {})", l.path, l.path),
        };
        return Found::Location(m.clone(), l, why);
    }
    // nginx meets the location `uri/` on its way down the prefix tree, below any shorter prefix
    // of the URI, and answers 301 from there (checked with nginx 1.22: `/docs` with locations
    // `/` and `/docs/` gets the 301).
    let slashed = format!("{uri}/");
    if let Some((m, l)) = matchers.iter().find(|(m, l)| *m == slashed && matches!(l.target, Target::Upstream(_))) {
        return Found::AutoRedirect(m.clone(), l);
    }
    let longest = matchers.iter().filter(|(m, _)| !m.starts_with("= ") && uri.starts_with(m.as_str())).max_by_key(|(m, _)| m.len());
    match longest {
        Some((m, l)) => {
            let why = match l.kind {
                PathKind::Prefix => format!("{uri} is under Prefix {} (by path element); the longest matching prefix wins", l.path),
                _ => format!(
                    "{uri} starts with {} (ImplementationSpecific: nginx's string prefix); the longest matching prefix wins",
                    l.path
                ),
            };
            Found::Location(m.clone(), l, why)
        }
        None => Found::None,
    }
}

fn choice(l: &Location, matcher: &str, reason: String) -> LocationChoice {
    let ns = l.ingress.split_once('/').map_or("", |(ns, _)| ns);
    LocationChoice {
        ingress: l.ingress.clone(),
        path: l.path.clone(),
        path_type: format!("{:?}", l.kind),
        matcher: matcher.to_string(),
        reason,
        service: l.service.as_ref().map(|ServicePort { name, .. }| format!("{ns}/{name}")),
        port: l.service.as_ref().map(|s| s.port.clone()),
    }
}

/// Why each other Ingress path did not take the request.
fn rejections(model: &Model, server: &Server, chosen: Option<&Location>, uri: &str, host: &str) -> Vec<Rejected> {
    let mut out = Vec::new();
    let rendered = location_matchers(server);
    let winner = chosen.map(|c| (c.path.as_str(), c.kind));
    for s in &model.servers {
        for l in s.locations.iter().filter(|l| !l.ingress.is_empty()) {
            if chosen.is_some_and(|c| std::ptr::eq(c, l)) {
                continue;
            }
            let rule_host = if s.host == "_" { "*".to_string() } else { s.host.clone() };
            let reason = if !std::ptr::eq(s, server) {
                format!("its host {} is not {host}", s.host)
            } else if !rendered.iter().any(|(_, r)| std::ptr::eq(*r, l)) {
                "an older Ingress's path already has its nginx location".into()
            } else {
                location_reason(server, l, uri, winner)
            };
            out.push(Rejected {
                ingress: l.ingress.clone(),
                host: rule_host,
                path: l.path.clone(),
                path_type: format!("{:?}", l.kind),
                reason,
            });
        }
    }
    out
}

fn location_reason(server: &Server, l: &Location, uri: &str, winner: Option<(&str, PathKind)>) -> String {
    if server.regex {
        return match pcre(&format!("^{}", l.path), true) {
            Ok(re) if re.is_match(uri.as_bytes()) => {
                "it matches too, but regex locations are tried in order (longest path first) and an earlier one matched".into()
            }
            Ok(_) => format!("the case-insensitive regex ^{} does not match {uri}", l.path),
            Err(e) => e,
        };
    }
    let matched = match l.kind {
        PathKind::Exact => uri == l.path,
        PathKind::Prefix => under_prefix(uri, &l.path),
        PathKind::ImplementationSpecific => uri.starts_with(&l.path),
    };
    if matched {
        return match winner {
            Some((p, PathKind::Exact)) if p == uri => format!("Exact {p} beats {:?} {}", l.kind, l.path),
            Some((p, _)) => format!("it matches too, but the longer prefix {p} wins"),
            None => "it matches, but nginx answered before".into(),
        };
    }
    match l.kind {
        PathKind::Exact => format!("{uri} is not exactly {}", l.path),
        PathKind::Prefix if uri.starts_with(&l.path) => {
            format!("{uri} is not under Prefix {}: Prefix matches by path element ({0} or {0}/...)", l.path)
        }
        _ => format!("{uri} does not start with {}", l.path),
    }
}

/// The location's answer, phase by phase (see the module comment).
fn answer(inputs: &Inputs, model: &Model, server: &Server, l: &Location, req: &Request, uri: &str, notes: &mut Vec<String>) -> Answer {
    if l.ssl_redirect && req.scheme == Scheme::Http {
        let forced = inputs
            .ingresses
            .iter()
            .find(|i| key(i) == l.ingress)
            .and_then(|i| i.metadata.annotations.as_ref())
            .and_then(|a| a.get(&format!("{ANNOTATION_PREFIX}force-ssl-redirect")))
            .is_some_and(|v| v == "true");
        let why = if forced {
            format!("{} has force-ssl-redirect: HTTP is redirected to HTTPS", l.ingress)
        } else {
            format!(
                "{} is a TLS host of {} (spec.tls; ssl-redirect is true by default): HTTP is redirected to HTTPS",
                server.host, l.ingress
            )
        };
        return Answer::Redirect { code: 308, location: format!("https://{}{}", req.nginx_host(), req.request_uri()), reason: why };
    }
    let name = match &l.target {
        Target::DefaultBackend => {
            return Answer::Status {
                code: 404,
                reason: "the controller's default backend (no Ingress's rule or defaultBackend takes it)".into(),
            }
        }
        Target::Unavailable => {
            let problems: Vec<String> = ingress_problems(model, &l.ingress)
                .filter(|p| unavailable_because(l, p))
                .map(|p| format!("{}: {}", p.reason, p.message))
                .collect();
            let reason = format!(
                "the backend cannot be served ({})",
                if problems.is_empty() { "no reason recorded".into() } else { problems.join("; ") }
            );
            return Answer::Status { code: 503, reason };
        }
        Target::Upstream(name) => name,
    };
    let mut rewrite = None;
    let mut sent_uri = req.request_uri();
    if let Some(target) = &l.rewrite_target {
        let pattern = rewrite_pattern(&l.path, server.regex);
        match pcre(&pattern, false) {
            Err(e) => notes.push(e),
            Ok(re) => match re.captures(uri.as_bytes()) {
                None => rewrite = Some(Rewrite { pattern, replacement: target.clone(), result: None }),
                Some(caps) => {
                    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("$scheme") {
                        let location = substitute(target, &caps, &re, req, uri, notes);
                        return Answer::Redirect {
                            code: 302,
                            location,
                            reason: format!("rewrite-target {target} is a URL: nginx's rewrite redirects"),
                        };
                    }
                    // A `?` of the replacement itself (not of a capture) starts the new arguments;
                    // the client's follow them unless it ends the replacement.
                    let (path, args) = match target.split_once('?') {
                        Some((p, "")) => (substitute(p, &caps, &re, req, uri, notes), String::new()),
                        Some((p, a)) => {
                            let a = substitute(a, &caps, &re, req, uri, notes);
                            let args = match &req.query {
                                Some(q) if !q.is_empty() => format!("{a}&{q}"),
                                _ => a,
                            };
                            (substitute(p, &caps, &re, req, uri, notes), args)
                        }
                        None => (substitute(target, &caps, &re, req, uri, notes), req.query.clone().unwrap_or_default()),
                    };
                    if path.is_empty() {
                        let reason =
                            format!("rewrite {pattern:?} {target} gives an empty URI: nginx logs \"the rewritten URI has a zero length\"");
                        return Answer::Status { code: 500, reason };
                    }
                    sent_uri = with_args(&escape_uri(&path), Some(&args).filter(|a| !a.is_empty()).map(String::as_str));
                    rewrite = Some(Rewrite { pattern, replacement: target.clone(), result: Some(path) });
                }
            },
        }
    }
    let mut allowed_from = Vec::new();
    if !l.allow.is_empty() {
        match req.client {
            Some(ip) if !l.allow.iter().any(|a| cidr_contains(a, ip)) => {
                let reason = format!("whitelist-source-range of {} allows {} only: {ip} is denied", l.ingress, l.allow.join(", "));
                return Answer::Status { code: 403, reason };
            }
            Some(_) => {}
            None => allowed_from = l.allow.clone(),
        }
    }
    let upstream = model.upstreams.iter().find(|u| &u.name == name);
    let addresses = upstream.map(|u| u.endpoints.clone()).unwrap_or_default();
    if addresses.is_empty() {
        let svc = l.service.as_ref().map_or(String::new(), |s| format!(" {}:{}", s.name, s.port));
        return Answer::Status {
            code: 503,
            reason: format!("Service{svc} has no ready endpoints: nginx's upstream {name} points at its local 503 server"),
        };
    }
    let cookie = l.affinity_cookie.clone();
    let value = cookie.as_deref().and_then(|c| cookie_value(&req.header("Cookie").join("; "), c));
    let endpoints: Vec<String> = match &value {
        Some(v) => vec![chash_pick(&addresses, v).to_string()],
        None => addresses,
    };
    let endpoints = endpoints.into_iter().map(|address| Endpoint { pod: pod_of(inputs.slices, &address), address }).collect();
    let client = req.client.map_or("(the client's address)".to_string(), |c| c.to_string());
    let port = if req.scheme == Scheme::Http { "80" } else { "443" };
    let headers = [
        ("Host", req.nginx_host()),
        ("X-Real-IP", client.clone()),
        ("X-Forwarded-For", client),
        ("X-Forwarded-Host", req.nginx_host()),
        ("X-Forwarded-Port", port.into()),
        ("X-Forwarded-Proto", req.scheme.as_str().into()),
        ("X-Scheme", req.scheme.as_str().into()),
    ];
    if server.certificate.is_some() && req.scheme == Scheme::Https {
        notes.push("the answer carries Strict-Transport-Security: max-age=31536000; includeSubDomains (a TLS host over HTTPS)".into());
    }
    Answer::Proxy(Box::new(Proxy {
        upstream: name.clone(),
        protocol: if l.https_backend { "https" } else { "http" },
        uri: sent_uri,
        rewrite,
        endpoints,
        affinity: cookie.map(|cookie| Affinity { cookie, value }),
        allowed_from,
        headers: headers.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    }))
}

fn ingress_problems<'m>(model: &'m Model, ingress: &str) -> impl Iterator<Item = &'m super::Problem> {
    let (ns, name) = ingress.split_once('/').unwrap_or_default();
    let (ns, name) = (ns.to_string(), name.to_string());
    model.problems.iter().filter(move |p| p.namespace == ns && p.ingress == name)
}

/// Whether the renderer's problem is why location `l` answers 503: its Service (missing, of
/// type ExternalName, without the port), its resource backend, or its invalid source range.
fn unavailable_because(l: &Location, p: &super::Problem) -> bool {
    let backend = match &l.service {
        Some(s) => p.message.starts_with(&format!("service \"{}/{}\"", p.namespace, s.name)),
        None => p.reason == "UnsupportedBackend",
    };
    backend || (!l.allow.is_empty() && p.message.contains("whitelist-source-range"))
}

fn with_args(path: &str, args: Option<&str>) -> String {
    match args {
        Some(a) => format!("{path}?{a}"),
        None => path.to_string(),
    }
}

/// nginx's `rewrite` replacement: `$1`..`$9`, named captures and a few request variables.
fn substitute(
    target: &str,
    caps: &regex::bytes::Captures,
    re: &regex::bytes::Regex,
    req: &Request,
    uri: &str,
    notes: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    let mut rest = target;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(d) = after.chars().next().filter(|c| ('1'..='9').contains(c)) {
            let n = d.to_digit(10).unwrap_or_default() as usize;
            out.push_str(&caps.get(n).map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()).unwrap_or_default());
            rest = &after[1..];
            continue;
        }
        let (name, next) = match after.strip_prefix('{') {
            Some(b) => match b.split_once('}') {
                Some((n, r)) => (n, r),
                None => (b, ""),
            },
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let value = if re.capture_names().any(|n| n == Some(name)) {
            caps.name(name).map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()).unwrap_or_default()
        } else {
            match name {
                "host" => req.nginx_host(),
                "scheme" => req.scheme.as_str().into(),
                "uri" | "document_uri" => uri.into(),
                "args" | "query_string" => req.query.clone().unwrap_or_default(),
                "request_uri" => req.request_uri(),
                n if n.starts_with("http_") => {
                    let header = n["http_".len()..].replace('_', "-");
                    req.header(&header).join(", ")
                }
                n => {
                    notes.push(format!("rewrite-target's ${n} is an nginx variable explain does not evaluate: left as is"));
                    format!("${n}")
                }
            }
        };
        out.push_str(&value);
        rest = next;
    }
    out.push_str(rest);
    out
}

/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI)`: space, `#`, `%`, `?`, controls and non-ASCII.
fn escape_uri(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b <= 0x20 || b >= 0x7f || b"#%?".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
        out
    })
}

/// The value of cookie `name` as the rendered map reads it: `(?:^|;\s*)NAME=([^;]+)`.
fn cookie_value(header: &str, name: &str) -> Option<String> {
    let pattern = format!(r"(?:^|;\s*){}=([^;]+)", regex::escape(name));
    let re = regex::Regex::new(&pattern).ok()?;
    re.captures(header).and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
}

/// Whether `ip` is in `cidr` (an address or `address/bits`).
fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match cidr.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    match (addr.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(net)), IpAddr::V4(ip)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (Ok(IpAddr::V6(net)), IpAddr::V6(ip)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// The pod behind an endpoint `ip:port`, from the EndpointSlices' targetRef.
fn pod_of(slices: &[EndpointSlice], address: &str) -> Option<String> {
    let ip = address.rsplit_once(':').map_or(address, |(ip, _)| ip).trim_start_matches('[').trim_end_matches(']');
    slices.iter().flat_map(|s| s.endpoints.iter()).find(|e| e.addresses.iter().any(|a| a == ip)).and_then(|e| {
        let t = e.target_ref.as_ref()?;
        Some(format!("{}/{}", t.namespace.as_deref().unwrap_or_default(), t.name.as_deref().unwrap_or_default()))
    })
}

/// CRC-32 (IEEE), continued from `crc` without the final inversion (nginx's `ngx_crc32_update`).
fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    crc
}

/// The server `hash KEY consistent` sends `key` to, as nginx's ngx_http_upstream_hash_module:
/// 160 points per server (weight 1) at crc32(host "\0" port prev_hash), sorted; the key's
/// crc32 goes to the first point at or above it, wrapping around.
pub fn chash_pick<'a>(servers: &'a [String], key: &str) -> &'a str {
    let mut points: Vec<(u32, usize)> = Vec::with_capacity(servers.len() * 160);
    for (i, server) in servers.iter().enumerate() {
        let (host, port) = server.rsplit_once(':').unwrap_or((server.as_str(), ""));
        let base = crc32_update(crc32_update(crc32_update(u32::MAX, host.as_bytes()), &[0]), port.as_bytes());
        let mut prev: u32 = 0;
        for _ in 0..160 {
            let hash = crc32_update(base, &prev.to_le_bytes()) ^ u32::MAX;
            points.push((hash, i));
            prev = hash;
        }
    }
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    let hash = crc32_update(u32::MAX, key.as_bytes()) ^ u32::MAX;
    let at = points.partition_point(|p| p.0 < hash) % points.len();
    &servers[points[at].1]
}

impl Decision {
    /// The explanation as text, for people.
    pub fn text(&self) -> String {
        let mut w = Vec::new();
        let controller =
            self.class.controller.as_deref().map_or("the IngressClass does not exist".to_string(), |c| format!("controller {c}"));
        let default = if self.class.default { ", the default class" } else { "" };
        w.push(format!(
            "IngressClass:  {} ({controller}{default}), served by ingress-nginx-controller in namespace ingress-nginx",
            self.class.name
        ));
        w.push(format!("Request:       Host {}, URI {}", self.host, if self.uri.is_empty() { "(refused)" } else { &self.uri }));
        let tls = self.server.certificate.as_deref().map_or(String::new(), |c| format!("; TLS certificate {c}"));
        w.push(format!("Server:        {} ({}): {}{tls}", self.server.name, self.server.how, self.server.reason));
        match &self.location {
            Some(l) if l.ingress.is_empty() => w.push(format!("Location:      {} (the controller's own): {}", l.matcher, l.reason)),
            Some(l) => {
                w.push(format!("Matched:       ingress/{} path {} ({}), nginx location {}", l.ingress, l.path, l.path_type, l.matcher));
                w.push(format!("               {}", l.reason));
                if let (Some(s), Some(p)) = (&l.service, &l.port) {
                    w.push(format!("Backend:       service/{s} port {p}"));
                }
            }
            None => w.push("Matched:       no Ingress path".into()),
        }
        match &self.answer {
            Answer::Status { code, reason } => w.push(format!("Answer:        {code} {}: {reason}", status_text(*code))),
            Answer::Redirect { code, location, reason } => {
                w.push(format!("Answer:        {code} {} to {location}: {reason}", status_text(*code)))
            }
            Answer::Proxy(p) => {
                if let Some(r) = &p.rewrite {
                    match &r.result {
                        Some(new) => w.push(format!("Rewrite:       {} by rewrite {:?} {}", new, r.pattern, r.replacement)),
                        None => w.push(format!("Rewrite:       none: {:?} does not match the URI, which stays", r.pattern)),
                    }
                }
                w.push(format!("Answer:        proxied to upstream {} ({}), the pod gets {}", p.upstream, p.protocol, p.uri));
                if let Some(a) = &p.affinity {
                    match &a.value {
                        Some(v) => w.push(format!("Affinity:      cookie {}={v}: nginx's consistent hash sends it to the one endpoint below", a.cookie)),
                        None => w.push(format!(
                            "Affinity:      cookie {}: none in the request, so any endpoint; the answer sets {0}=<request id>, which keeps the client on one pod",
                            a.cookie
                        )),
                    }
                }
                w.push(format!("Endpoints:     {} ready", p.endpoints.len()));
                for e in &p.endpoints {
                    w.push(format!("  {:<21} pod/{}", e.address, e.pod.as_deref().unwrap_or("(no targetRef)")));
                }
                if !p.allowed_from.is_empty() {
                    w.push(format!(
                        "Access:        whitelist-source-range {}: other clients get 403 (give --client-ip to decide)",
                        p.allowed_from.join(", ")
                    ));
                }
                let headers: Vec<String> = p.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                w.push(format!("Headers:       {}", headers.join(", ")));
            }
        }
        if !self.others.is_empty() {
            w.push("Not matched:".into());
            for o in &self.others {
                w.push(format!("  ingress/{} host {} path {} ({}): {}", o.ingress, o.host, o.path, o.path_type, o.reason));
            }
        }
        if !self.ignored.is_empty() {
            w.push(format!("Not served by {}:", self.class.name));
            for i in &self.ignored {
                w.push(format!("  ingress/{}: {}", i.ingress, i.reason));
            }
        }
        for n in &self.notes {
            w.push(format!("Note:          {n}"));
        }
        w.join("\n") + "\n"
    }
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Temporarily Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
