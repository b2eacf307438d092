//! agnhost's `netexec`, decided here without I/O: a request (path, query, peer) becomes a reply,
//! or an action the server performs and then answers with a reply made here too (`/dial`,
//! `/shell`, `/exit`). Routes, parameters, status codes, messages and log lines follow
//! kubernetes/test/images/agnhost/netexec; Go's `ServeMux` sends every path it does not know to
//! the `/` handler, and so do we.

use crate::flags::{flag, Kind, Spec};
use crate::Reply;
use std::net::SocketAddr;
use std::time::Duration;

/// netexec's flags (`--tls-*` and `--sctp-port` are not served: see the crate's notes).
pub const FLAGS: &[Spec] = &[
    flag("http-port", Kind::Int, "8080"),
    flag("udp-port", Kind::Int, "8081"),
    flag("sctp-port", Kind::Int, "-1"),
    flag("http-override", Kind::Text, ""),
    flag("udp-listen-addresses", Kind::Text, ""),
    flag("tls-cert-file", Kind::Text, ""),
    flag("tls-private-key-file", Kind::Text, ""),
];

/// What the handlers know besides the request.
#[derive(Debug, Clone)]
pub struct Context {
    pub hostname: String,
    /// `time.Now().String()`, for `/`.
    pub now: String,
    /// Whether the UDP server listens (what `/healthz` reports).
    pub udp_ready: bool,
}

/// What a request asks of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Reply),
    /// Dial `tries` times, then answer [`dial_reply`] of the results.
    Dial(Dial),
    /// Run `/bin/sh -c CMD`, then answer [`shell_reply`].
    Shell(String),
    /// Wait, then exit with `code` without answering (Go's `os.Exit` in the handler; with a
    /// `timeout` the server first stops taking connections and waits at most that long).
    Exit {
        code: i32,
        wait: Duration,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub host: String,
    pub port: String,
    pub request: String,
    pub protocol: Protocol,
    pub tries: u32,
}

impl Dial {
    /// `net.JoinHostPort(host, port)`.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A query parameter as Go's `FormValue` reads it: the first value, decoded, or "".
pub fn param(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Go's `http.Error`: the message and a newline, as plain text that must not be sniffed.
pub fn http_error(status: u16, message: &str) -> Reply {
    Reply { status, content_type: Some("text/plain; charset=utf-8"), nosniff: true, location: None, body: format!("{message}\n") }
}

/// The request `path?query` from `peer`: the log line and what to do. `override_path`:
/// `--http-override`, served instead of every request's own path and query.
pub fn route(path: &str, query: &str, peer: SocketAddr, override_path: Option<&str>, ctx: &Context) -> (String, Action) {
    let (path, query) = match override_path {
        Some(o) => o.split_once('?').unwrap_or((o, "")),
        None => (path, query),
    };
    let p = |name: &str| param(query, name);
    let text = |body: String| Action::Reply(Reply::text(200, body));
    match path {
        "/clientip" => ("GET /clientip".into(), text(peer.to_string())),
        "/dial" => dial(query),
        "/echo" => {
            let (msg, code) = (p("msg"), p("code"));
            let log = format!("GET /echo?msg={msg}&code={code}");
            if code.is_empty() {
                return (log, text(msg));
            }
            match code.parse::<u16>() {
                Ok(code) => (log, Action::Reply(Reply::text(code, msg))),
                Err(_) => (log, text(format!("argument 'code' must be an integer or empty, got {code:?}\n"))),
            }
        }
        "/exit" => {
            let (code, timeout, wait) = (p("code"), p("timeout"), p("wait"));
            let log = format!("GET /exit?code={code}&timeout={timeout}&wait={wait}");
            let Some(timeout_d) = go_duration_or_zero(&timeout) else {
                return (log, text(format!("argument 'timeout' must be a valid golang duration or empty, got {timeout:?}\n")));
            };
            let Some(wait_d) = go_duration_or_zero(&wait) else {
                return (log, text(format!("argument 'wait' must be a valid golang duration or empty, got {wait:?}\n")));
            };
            let code_n = if code.is_empty() { Some(0) } else { code.parse::<i32>().ok() };
            let Some(code_n) = code_n else {
                return (log, text(format!("argument 'code' must be an integer [0-127] or empty, got {code:?}\n")));
            };
            (log, Action::Exit { code: code_n, wait: wait_d, timeout: timeout_d })
        }
        "/healthz" => {
            let status = if ctx.udp_ready { 200 } else { 412 };
            ("GET /healthz".into(), Action::Reply(Reply { content_type: None, ..Reply::text(status, "") }))
        }
        "/hostname" => ("GET /hostname".into(), text(ctx.hostname.clone())),
        "/hostName" => ("GET /hostName".into(), text(ctx.hostname.clone())),
        "/redirect" => {
            let (location, code) = (p("location"), p("code"));
            let log = format!("GET /redirect?msg={location}&code={code}");
            let status = if code.is_empty() { Some(302) } else { code.parse::<u16>().ok() };
            match status {
                Some(status) => (log, Action::Reply(redirect(&location, status))),
                None => (log, text(format!("argument 'code' must be an integer or empty, got {code:?}\n"))),
            }
        }
        "/shell" => {
            let cmd = Some(p("shellCommand")).filter(|c| !c.is_empty()).unwrap_or_else(|| p("cmd"));
            (format!("GET /shell?cmd={cmd}"), Action::Shell(cmd))
        }
        "/shutdown" => ("GET /shutdown".into(), Action::Exit { code: 0, wait: Duration::ZERO, timeout: Duration::ZERO }),
        _ => ("GET /".into(), text(format!("NOW: {}", ctx.now))),
    }
}

fn dial(query: &str) -> (String, Action) {
    let p = |name: &str| param(query, name);
    let (host, port, request, protocol, tries) = (p("host"), p("port"), p("request"), p("protocol"), p("tries"));
    let log = format!("GET /dial?host={host}&protocol={protocol}&port={port}&request={request}&tries={tries}");
    let bad = |message: String| Action::Reply(http_error(400, &message));
    let tries = if tries.is_empty() {
        1
    } else {
        match tries.parse::<i64>() {
            Ok(n) => n.clamp(0, 10_000) as u32,
            Err(_) => return (log, bad(format!("tries parameter is invalid. strconv.Atoi: parsing {tries:?}: invalid syntax"))),
        }
    };
    if request.is_empty() {
        return (log, bad("request parameter not specified. <nil>".into()));
    }
    let protocol = match protocol.to_lowercase().as_str() {
        "" | "http" => Protocol::Http,
        "udp" => Protocol::Udp,
        _ => return (log, bad(format!("unsupported protocol. {protocol}"))),
    };
    (log, Action::Dial(Dial { host, port, request, protocol, tries }))
}

/// `/dial`'s answer from each try's response or error: `responses` only when the last try
/// answered something, `errors` when any failed (Go's JSON: keys sorted, `<>&` escaped).
pub fn dial_reply(results: &[Result<String, String>]) -> Reply {
    let mut output = serde_json::Map::new();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let responses: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    if matches!(results.last(), Some(Ok(last)) if !last.is_empty()) {
        output.insert("responses".into(), serde_json::json!(responses));
    }
    if !errors.is_empty() {
        output.insert("errors".into(), serde_json::json!(errors));
    }
    Reply::text(200, go_json(&serde_json::Value::Object(output)))
}

/// `/shell`'s answer: the command's combined output (when any) and its error (`exit status N`).
pub fn shell_reply(output: &str, error: Option<&str>) -> Reply {
    let mut map = serde_json::Map::new();
    if !output.is_empty() {
        map.insert("output".into(), output.into());
    }
    if let Some(e) = error {
        map.insert("error".into(), e.into());
    }
    Reply::text(200, go_json(&serde_json::Value::Object(map)))
}

/// What Go's `exec` error says of a finished command: `exit status N` or `signal: killed`.
pub fn exit_error(code: Option<i32>, signal: Option<i32>) -> Option<String> {
    match (code, signal) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit status {code}")),
        (None, Some(9)) => Some("signal: killed".into()),
        (None, Some(sig)) => Some(format!("signal: {sig}")),
        (None, None) => Some("exit status -1".into()),
    }
}

/// `encoding/json`'s output: map keys sorted (serde_json's map is a BTreeMap here) and `<`, `>`,
/// `&`, U+2028 and U+2029 escaped; these occur only inside strings, so replacing them is safe.
pub fn go_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go's `http.Redirect` for a GET: Location (a relative one made absolute against `/`), and a
/// small HTML body naming the status.
fn redirect(location: &str, status: u16) -> Reply {
    let location = if location.starts_with('/') || location.contains("://") { location.to_string() } else { format!("/{location}") };
    let reason = hyper::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let escaped = location.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;");
    Reply {
        status,
        content_type: Some("text/html; charset=utf-8"),
        nosniff: false,
        location: Some(location),
        body: format!("<a href=\"{escaped}\">{reason}</a>.\n\n"),
    }
}

/// The UDP server's answer to a datagram (trimmed and lower-cased first, as agnhost does):
/// `hostname`, `echo <msg>`, `clientip`; nothing to anything else.
pub fn udp_reply(datagram: &[u8], hostname: &str, peer: SocketAddr) -> Option<String> {
    let text = String::from_utf8_lossy(datagram).trim().to_lowercase();
    if text == "hostname" {
        Some(hostname.to_string())
    } else if let Some(msg) = text.strip_prefix("echo ") {
        Some(msg.to_string())
    } else if text == "clientip" {
        Some(peer.to_string())
    } else {
        None
    }
}

/// Go's `time.ParseDuration`, with "" meaning 0 (how `/exit` treats an absent parameter).
pub fn go_duration_or_zero(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Some(positive) = s.strip_prefix('-') {
        // Negative durations sleep no time in Go.
        return go_duration_or_zero(positive).map(|_| Duration::ZERO);
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    Some(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { hostname: "netexec-1".into(), now: "2026-12-07 20:08:16 +0000 UTC m=+1.000000000".into(), udp_ready: true }
    }

    fn get(path_and_query: &str) -> (String, Action) {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        route(path, query, "10.244.1.7:40312".parse().expect("peer"), None, &ctx())
    }

    fn reply(path_and_query: &str) -> Reply {
        match get(path_and_query).1 {
            Action::Reply(r) => r,
            other => panic!("{path_and_query}: {other:?}"),
        }
    }

    #[test]
    fn hostname_clientip_echo_and_the_root() {
        assert_eq!(reply("/hostname"), Reply::text(200, "netexec-1"));
        assert_eq!(reply("/hostName").body, "netexec-1");
        assert_eq!(reply("/clientip").body, "10.244.1.7:40312");
        assert_eq!(reply("/echo?msg=hello%20world"), Reply::text(200, "hello world"));
        assert_eq!(reply("/echo?msg=x+y&code=503"), Reply::text(503, "x y"));
        assert_eq!(reply("/echo?msg=x&code=abc").body, "argument 'code' must be an integer or empty, got \"abc\"\n");
        assert_eq!(get("/echo?msg=x").0, "GET /echo?msg=x&code=");
        assert_eq!(reply("/").body, "NOW: 2026-12-07 20:08:16 +0000 UTC m=+1.000000000");
        assert_eq!(reply("/anything/else").body, reply("/").body, "Go's mux sends unknown paths to /");
    }

    #[test]
    fn healthz_follows_the_udp_server() {
        let peer = "10.0.0.1:1".parse().expect("peer");
        let (_, Action::Reply(ok)) = route("/healthz", "", peer, None, &ctx()) else { panic!() };
        assert_eq!((ok.status, ok.body.as_str(), ok.content_type), (200, "", None));
        let (_, Action::Reply(not)) = route("/healthz", "", peer, None, &Context { udp_ready: false, ..ctx() }) else { panic!() };
        assert_eq!(not.status, 412);
    }

    #[test]
    fn dial_parameters() {
        assert_eq!(
            get("/dial?request=hostname&protocol=http&host=10.244.2.3&port=8080&tries=2"),
            (
                "GET /dial?host=10.244.2.3&protocol=http&port=8080&request=hostname&tries=2".into(),
                Action::Dial(Dial {
                    host: "10.244.2.3".into(),
                    port: "8080".into(),
                    request: "hostname".into(),
                    protocol: Protocol::Http,
                    tries: 2
                })
            )
        );
        let Action::Dial(d) = get("/dial?request=echo%20hi&protocol=UDP&host=fd00::1&port=8081").1 else { panic!() };
        assert_eq!((d.protocol, d.tries, d.host_port().as_str()), (Protocol::Udp, 1, "[fd00::1]:8081"));
        assert_eq!(reply("/dial?host=a&port=1"), http_error(400, "request parameter not specified. <nil>"));
        assert_eq!(reply("/dial?request=x&tries=z").body, "tries parameter is invalid. strconv.Atoi: parsing \"z\": invalid syntax\n");
        let r = reply("/dial?request=x&protocol=sctp");
        assert_eq!((r.status, r.body.as_str(), r.nosniff), (400, "unsupported protocol. sctp\n", true));
    }

    #[test]
    fn dial_answers_as_agnhost() {
        let ok = |s: &str| Ok(s.to_string());
        let err = |s: &str| Err(s.to_string());
        assert_eq!(dial_reply(&[ok("pod-a"), ok("pod-b")]).body, r#"{"responses":["pod-a","pod-b"]}"#);
        assert_eq!(dial_reply(&[err("refused"), ok("pod-a")]).body, r#"{"errors":["refused"],"responses":["pod-a"]}"#);
        // Go keeps `responses` only when the last try answered.
        assert_eq!(dial_reply(&[ok("pod-a"), err("timeout")]).body, r#"{"errors":["timeout"]}"#);
        assert_eq!(dial_reply(&[]).body, "{}");
        assert_eq!(dial_reply(&[ok("<b>&")]).body, r#"{"responses":["\u003cb\u003e\u0026"]}"#);
        assert_eq!(dial_reply(&[ok("x")]).status, 200);
    }

    #[test]
    fn shell_and_exit() {
        assert_eq!(get("/shell?cmd=echo%20hi").1, Action::Shell("echo hi".into()));
        assert_eq!(get("/shell?shellCommand=id&cmd=x").1, Action::Shell("id".into()));
        assert_eq!(shell_reply("hi\n", None).body, r#"{"output":"hi\n"}"#);
        assert_eq!(shell_reply("", exit_error(Some(3), None).as_deref()).body, r#"{"error":"exit status 3"}"#);
        assert_eq!(exit_error(Some(0), None), None);
        assert_eq!(get("/exit?code=3").1, Action::Exit { code: 3, wait: Duration::ZERO, timeout: Duration::ZERO });
        assert_eq!(
            get("/exit?code=0&wait=1.5s&timeout=100ms").1,
            Action::Exit { code: 0, wait: Duration::from_millis(1500), timeout: Duration::from_millis(100) }
        );
        assert_eq!(reply("/exit?code=x").body, "argument 'code' must be an integer [0-127] or empty, got \"x\"\n");
        assert_eq!(reply("/exit?wait=5").body, "argument 'wait' must be a valid golang duration or empty, got \"5\"\n");
        assert_eq!(get("/shutdown").1, Action::Exit { code: 0, wait: Duration::ZERO, timeout: Duration::ZERO });
    }

    #[test]
    fn redirect_and_override() {
        let r = reply("/redirect?location=/echo%3Fmsg%3Dfoobar&code=307");
        assert_eq!((r.status, r.location.as_deref()), (307, Some("/echo?msg=foobar")));
        assert_eq!(r.body, "<a href=\"/echo?msg=foobar\">Temporary Redirect</a>.\n\n");
        assert_eq!(reply("/redirect?location=x").status, 302);
        let peer = "10.0.0.1:1".parse().expect("peer");
        let (_, action) = route("/whatever", "", peer, Some("/echo?msg=over"), &ctx());
        assert_eq!(action, Action::Reply(Reply::text(200, "over")));
    }

    #[test]
    fn udp_commands() {
        let peer: SocketAddr = "10.244.1.7:5353".parse().expect("peer");
        assert_eq!(udp_reply(b"hostname\n", "pod-a", peer), Some("pod-a".into()));
        assert_eq!(udp_reply(b"  HostName ", "pod-a", peer), Some("pod-a".into()));
        assert_eq!(udp_reply(b"echo Hello World", "pod-a", peer), Some("hello world".into()), "agnhost lower-cases first");
        assert_eq!(udp_reply(b"clientip", "pod-a", peer), Some("10.244.1.7:5353".into()));
        assert_eq!(udp_reply(b"what", "pod-a", peer), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_or_zero(""), Some(Duration::ZERO));
        assert_eq!(go_duration_or_zero("0"), Some(Duration::ZERO));
        assert_eq!(go_duration_or_zero("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go_duration_or_zero("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration_or_zero("5"), None);
        assert_eq!(go_duration_or_zero("3d"), None);
    }
}
