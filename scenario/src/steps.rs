//! A scenario's `steps:` (issue 7): what `emu test` does after the cluster is up, each step
//! checked here field by field before any cluster is created. Pure: the CLI reads the files an
//! `apply` names and runs the steps; [`crate::checks`] judges what they saw.
//!
//! ```yaml
//! seed: 42                                   # optional: reproducible random choices
//! steps:
//!   - name: web is up                        # optional, shown in the report
//!     timeout: 20s                           # optional, default 30s
//!     wait: {pods: {selector: app=web, ready: 2}}
//!   - apply: web.yaml                        # or inline YAML; `delete: deployment/web`
//!   - scale: {deployment: web, replicas: 3}
//!   - wait: {endpoints: {service: web, count: 3}}
//!   - exec: {pod: deploy/client, command: "curl -s http://web", expect: {stdoutContains: web}}
//!   - ssh: {node: node-1, command: [ip, route]}
//!   - outside: {command: "curl -s http://198.51.100.2:30080"}
//!   - http: {from: {pod: client}, url: "http://web", requests: 20,
//!            expect: {successRate: 0.95, answeredBy: 2}}
//!   - get: {object: ingress/kubia, jsonpath: "{.status.loadBalancer.ingress[0].ip}", as: ADDRESS}
//!   - http: {from: outside, url: "http://kubia.example.com", resolve: "${ADDRESS}"}
//!   - fault: {delay: {target: node-1, delay: 100ms, jitter: 10ms}}
//!   - clear: all
//!   - node: {stop: node-2}                  # kill: true (killed, not frozen); {start: …}; {remove: …}
//!   - fault: {partition: {a: [host/host-2], b: [host/host-1, host/host-3]}}   # with `hosts: N`
//!   - fault: {delay: {target: host/host-2, delay: 20ms}}             # a host's LAN link, both ways
//!   - host: {stop: host-2}                   # its LAN link down, its nodes frozen (kill: true: killed); {start: …}
//!   - kill: {selector: app=web}              # or {pod: NAME}, controller, {agent: NODE}
//!   - restart: controller                    # or {agent: NODE}
//!   - sleep: 2s
//!   - background: {name: load, from: outside, url: "http://198.51.100.2:30080", interval: 200ms,
//!                  expect: {maxFailures: 0}}
//!   - stop: load
//! ```
//!
//! `get` waits (up to its timeout) until the object's field, in kubectl's `-o jsonpath` dialect,
//! has a value, and keeps it as a variable: a later step's `${NAME}` in a command, a URL or
//! `resolve` is replaced by it before the step runs (as text, before any shell sees it; a `${X}`
//! no `get` set is left to the shell; a value with characters a shell would interpret fails the
//! `get` step, see [`shell_safe`]). `resolve: ADDRESS` sends an `http` step's requests for the
//! URL's host to that address (curl's `--resolve`), as the book's /etc/hosts line does.

use crate::source::{manifest_source, ManifestSource};
use emu_api::fault::{self, FaultSpec, Netem, Target};
use emu_logic::faults;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How long a step may take unless it says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Requests of an `http` step unless it says otherwise.
pub const DEFAULT_REQUESTS: u32 = 10;
/// How long one request of an `http` step or a background load may take.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Pause between the requests of a background load.
pub const DEFAULT_INTERVAL_MS: u64 = 200;

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// `name:`, else one made from the step ([`Action::describe`]).
    pub name: String,
    pub timeout_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Apply(ManifestSource),
    Delete(Vec<ObjectName>),
    /// `get`: the object's `jsonpath` field, once it has a value, into variable `var`.
    Get {
        object: ObjectName,
        jsonpath: String,
        var: String,
    },
    Scale {
        namespace: String,
        deployment: String,
        replicas: i32,
    },
    Wait(Condition),
    Run(Command),
    Http(Http),
    /// A Fault object of this name (given, or the next free `<kind>-<n>` as `emu fault` names it).
    Fault {
        name: String,
        spec: FaultSpec,
    },
    /// Faults to revert; None: all (a stopped node is started again).
    Clear(Option<Vec<String>>),
    /// `node` is a node's name, or `host/NAME` for an emulated host (`host:` steps): its LAN
    /// link and every node of it (`Stop` and `Start` only).
    Node {
        node: String,
        op: NodeOp,
    },
    Restart(Daemon),
    Kill(Kill),
    Sleep {
        ms: u64,
    },
    Background(Load),
    Stop {
        load: String,
        expect: LoadExpect,
    },
}

/// What a `node` step does to its node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeOp {
    /// Its processes frozen, or killed; its links down.
    Stop {
        kill: bool,
    },
    Start,
    /// Gone from the cluster, as `kubectl delete node` after the machine is gone.
    Remove,
}

/// `KIND/NAME` or `NAMESPACE/KIND/NAME` (kind as kubectl takes it: `deploy`, `svc`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    /// Empty for a cluster-scoped kind.
    pub namespace: String,
    /// The kind's own name (`Deployment`).
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Daemon {
    Controller,
    Agent(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kill {
    /// SIGKILL by the daemon's pid file; a later `restart` brings it back.
    Daemon(Daemon),
    /// Deleted with a grace period of 0: its containers are killed at once.
    Pod { namespace: String, name: String },
    /// One of the pods the selector matches, picked with the scenario's seed.
    Selector { namespace: String, selector: String },
}

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `emu exec`: a pod, `deploy/NAME` or `svc/NAME` (one of their running pods).
    Pod { target: String, namespace: String, container: Option<String> },
    /// `emu ssh NODE`.
    Node(String),
    /// `emu outside`.
    Outside,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Pod { target, namespace, .. } if namespace == "default" => write!(f, "{target}"),
            Place::Pod { target, namespace, .. } => write!(f, "{namespace}/{target}"),
            Place::Node(n) => write!(f, "node {n}"),
            Place::Outside => write!(f, "outside"),
        }
    }
}

/// `exec`, `ssh` or `outside`, with what its result must show.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub place: Place,
    pub argv: Vec<String>,
    pub expect: Expect,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Is(i32),
    NonZero,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub exit_code: ExitCode,
    pub stdout_contains: Option<String>,
    /// A regular expression (checked to compile when parsed).
    pub stdout_matches: Option<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect { exit_code: ExitCode::Is(0), stdout_contains: None, stdout_matches: None }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Pods(PodsCondition),
    Endpoints {
        namespace: String,
        service: String,
        count: usize,
    },
    Command(Command),
    /// `wait: {rollout: {deployment: web}}` (or `{statefulset: web}`): holds when `kubectl
    /// rollout status` would return (every replica updated and available, no old one left);
    /// fails at once when the rollout exceeded its progress deadline.
    Rollout {
        namespace: String,
        kind: String,
        name: String,
    },
}

/// `wait: {pods: …}`: holds when the pods matching the selector (on `node`, if given) count at
/// least `ready` Ready ones (not being deleted), on at least `nodes` distinct nodes, and exactly
/// `total` pods of any state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodsCondition {
    pub namespace: String,
    pub selector: String,
    pub ready: Option<usize>,
    pub total: Option<usize>,
    pub nodes: Option<usize>,
    pub node: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Http {
    pub from: Place,
    pub url: String,
    pub requests: u32,
    pub request_timeout_ms: u64,
    /// curl's `--retry`.
    pub retries: u32,
    /// curl's `-k`.
    pub insecure: bool,
    /// The address the URL's host resolves to (curl's `--resolve HOST:PORT:ADDRESS`).
    pub resolve: Option<String>,
    pub expect: HttpExpect,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpExpect {
    /// Share of requests that must succeed (curl exit 0 and an HTTP status below 400); default 1.
    pub success_rate: f64,
    pub answered_by: Option<AnsweredBy>,
}

/// Which pods answered, told by the first line of each response body (serve the pod's hostname,
/// e.g. nginx's `return 200 "$hostname\n";`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    /// At least this many distinct pods.
    Count(usize),
    /// Exactly these pods, each at least once.
    Pods(Vec<String>),
}

/// `background:` a client looping on a URL during the steps that follow.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub name: String,
    pub from: Place,
    pub url: String,
    pub interval_ms: u64,
    pub request_timeout_ms: u64,
    pub insecure: bool,
    pub expect: LoadExpect,
}

/// What a load's record must show when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadExpect {
    pub max_failures: Option<u64>,
    /// From the first failed request to the last at most this long.
    pub failures_stop_within_ms: Option<u64>,
}

impl LoadExpect {
    /// `later`'s settings over these.
    pub fn merged(&self, later: &LoadExpect) -> LoadExpect {
        LoadExpect {
            max_failures: later.max_failures.or(self.max_failures),
            failures_stop_within_ms: later.failures_stop_within_ms.or(self.failures_stop_within_ms),
        }
    }
}

/// A step that cannot run, named by its path in the file (`steps[3].wait.pods.ready`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("scenario field `{field}`: {message}")]
pub struct StepError {
    pub field: String,
    pub message: String,
}

/// What a step can do: one of these keys per step, besides `name` and `timeout`.
const KINDS: [&str; 18] = [
    "apply",
    "delete",
    "get",
    "scale",
    "wait",
    "exec",
    "ssh",
    "outside",
    "http",
    "fault",
    "clear",
    "node",
    "host",
    "restart",
    "kill",
    "sleep",
    "background",
    "stop",
];

/// A value and where it is in the file, for error messages.
#[derive(Clone, Copy)]
struct At<'a> {
    v: &'a Value,
    path: &'a str,
}

type R<T> = Result<T, StepError>;

fn err<T>(path: &str, message: impl Into<String>) -> R<T> {
    Err(StepError { field: path.to_string(), message: message.into() })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl<'a> At<'a> {
    /// The value as a map whose keys are all among `allowed`.
    fn map(&self, allowed: &[&str], example: &str) -> R<&'a serde_json::Map<String, Value>> {
        let Value::Object(m) = self.v else {
            return err(self.path, format!("expected a map, e.g. `{example}`, got {}", kind_of(self.v)));
        };
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return err(&format!("{}.{k}", self.path), format!("unknown field: use {}", allowed.join(", ")));
        }
        Ok(m)
    }

    /// The field `key` (absent when null); its path is written to `path`.
    fn field<'b>(&self, key: &str, path: &'b mut String) -> Option<At<'b>>
    where
        'a: 'b,
    {
        let v = self.v.get(key).filter(|v| !v.is_null())?;
        *path = format!("{}.{key}", self.path);
        let path: &'b String = path;
        Some(At { v, path })
    }
}

/// Reads `key` of `at` with `f`, giving `f` the field's path.
fn opt<T>(at: At, key: &str, f: impl FnOnce(At) -> R<T>) -> R<Option<T>> {
    let mut path = String::new();
    at.field(key, &mut path).map(f).transpose()
}

fn req<T>(at: At, key: &str, hint: &str, f: impl FnOnce(At) -> R<T>) -> R<T> {
    opt(at, key, f)?.map_or_else(|| err(&format!("{}.{key}", at.path), format!("required: {hint}")), Ok)
}

/// Each of `list` read with `f` at its own path (`…[2]`).
fn items<T>(at: At, list: &[Value], f: impl Fn(At) -> R<T>) -> R<Vec<T>> {
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("{}[{i}]", at.path);
            f(At { v, path: &path })
        })
        .collect()
}

fn string(at: At) -> R<String> {
    match at.v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => err(at.path, format!("expected a string, got {}", kind_of(other))),
    }
}

fn count(at: At) -> R<u64> {
    at.v.as_u64().map_or_else(|| err(at.path, format!("expected a whole number (0 or more), got {}", at.v)), Ok)
}

fn boolean(at: At) -> R<bool> {
    at.v.as_bool().map_or_else(|| err(at.path, format!("expected true or false, got {}", at.v)), Ok)
}

fn duration(at: At) -> R<u64> {
    let text = match at.v {
        Value::String(s) => s.as_str(),
        _ => return err(at.path, format!("expected a duration with its unit, e.g. 500ms, 2s or 1m, got {}", at.v)),
    };
    parse_duration_ms(text).map_or_else(|e| err(at.path, e), Ok)
}

/// `500ms`, `2s`, `1.5s`, `1m` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {text:?}: use a number with ms, s or m, e.g. 500ms, 2s or 1m");
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return Err(bad());
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v.is_finite() && v >= 0.0 && v * scale <= 3_600_000.0) {
        return Err(format!("invalid duration {text:?}: between 0 and 1h"));
    }
    Ok((v * scale).round() as u64)
}

/// A duration as the report shows it: `200ms`, `2s`, `1.5s`, `2m`.
pub fn format_duration_ms(ms: u64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{}s", ms as f64 / 1000.0),
    }
}

fn namespace(at: At) -> R<String> {
    let ns = opt(at, "namespace", string)?.unwrap_or_else(|| "default".into());
    let e = emu_api::syntax::dns1123_label_errors(&ns);
    if !e.is_empty() {
        return err(&format!("{}.namespace", at.path), format!("invalid namespace {ns:?}: {}", e.join("; ")));
    }
    Ok(ns)
}

fn node_name(at: At, nodes: &[String]) -> R<String> {
    let n = string(at)?;
    if !nodes.contains(&n) {
        return err(at.path, format!("node {n:?} is not in the cluster: use one of {}", nodes.join(", ")));
    }
    Ok(n)
}

fn selector(at: At) -> R<String> {
    let s = string(at)?;
    emu_api::selector::Selector::parse(&s)
        .map_err(|e| StepError { field: at.path.into(), message: format!("invalid selector {s:?}: {e}") })?;
    Ok(s)
}

/// `command: [argv…]` or `command: "sh text"` (run with `sh -c`).
fn argv(at: At) -> R<Vec<String>> {
    match at.v {
        Value::String(s) if !s.trim().is_empty() => Ok(vec!["sh".into(), "-c".into(), s.clone()]),
        Value::Array(list) if !list.is_empty() => items(at, list, string),
        _ => err(
            at.path,
            "give the command as a list (`[curl, -s, http://web]`) or as one shell string (`\"curl -s http://web | grep nginx\"`)",
        ),
    }
}

fn expect(at: At) -> R<Expect> {
    at.map(&["exitCode", "stdoutContains", "stdoutMatches"], "expect: {exitCode: 0, stdoutContains: nginx}")?;
    let exit_code = opt(at, "exitCode", |a| match a.v {
        Value::String(s) if s == "nonzero" => Ok(ExitCode::NonZero),
        v => match v.as_i64() {
            Some(c) if (0..=255).contains(&c) => Ok(ExitCode::Is(c as i32)),
            _ => err(a.path, format!("expected an exit code (0-255) or `nonzero`, got {v}")),
        },
    })?
    .unwrap_or(ExitCode::Is(0));
    let stdout_matches = opt(at, "stdoutMatches", |a| {
        let re = string(a)?;
        regex::Regex::new(&re)
            .map_err(|e| StepError { field: a.path.into(), message: format!("invalid regular expression {re:?}: {e}") })?;
        Ok(re)
    })?;
    Ok(Expect { exit_code, stdout_contains: opt(at, "stdoutContains", string)?, stdout_matches })
}

/// The body of `exec` / `ssh` / `outside`.
fn command(kind: &str, at: At, nodes: &[String]) -> R<Command> {
    let place = match kind {
        "exec" => {
            at.map(&["pod", "container", "namespace", "command", "expect"], "exec: {pod: deploy/client, command: \"curl -s http://web\"}")?;
            Place::Pod {
                target: req(at, "pod", "the pod to run in: NAME, deploy/NAME or svc/NAME", string)?,
                namespace: namespace(at)?,
                container: opt(at, "container", string)?,
            }
        }
        "ssh" => {
            at.map(&["node", "command", "expect"], "ssh: {node: node-1, command: \"ip route\"}")?;
            Place::Node(req(at, "node", "the node to run on", |a| node_name(a, nodes))?)
        }
        _ => {
            at.map(&["command", "expect"], "outside: {command: \"curl -s http://198.51.100.2:30080\"}")?;
            Place::Outside
        }
    };
    let argv = req(at, "command", "a list (`[curl, -s, http://web]`) or a shell string", argv)?;
    Ok(Command { place, argv, expect: opt(at, "expect", expect)?.unwrap_or_default() })
}

/// `from: outside`, `from: {pod: NAME}` (also deploy/NAME, svc/NAME) or `from: {node: NAME}`.
fn place(at: At, nodes: &[String]) -> R<Place> {
    if at.v.as_str() == Some("outside") {
        return Ok(Place::Outside);
    }
    let m = at.map(&["pod", "namespace", "container", "node", "outside"], "from: {pod: deploy/client}")?;
    if m.contains_key("pod") {
        return Ok(Place::Pod { target: req(at, "pod", "", string)?, namespace: namespace(at)?, container: opt(at, "container", string)? });
    }
    if m.contains_key("node") {
        return Ok(Place::Node(req(at, "node", "", |a| node_name(a, nodes))?));
    }
    if m.contains_key("outside") {
        return Ok(Place::Outside);
    }
    err(at.path, "give where the client runs: `{pod: NAME}` (or deploy/NAME, svc/NAME), `{node: NAME}` or `outside`")
}

fn url(at: At) -> R<String> {
    let u = string(at)?;
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return err(at.path, format!("{u:?}: give an http:// or https:// URL"));
    }
    // It is put in double quotes in the client's shell ($VARS of a pod expand; nothing else may).
    if let Some(c) = u.chars().find(|c| matches!(c, '"' | '`' | '\\') || c.is_whitespace()) {
        return err(at.path, format!("{u:?}: {c:?} cannot be in the URL (only variables are expanded: `${{NAME}}` of a `get` step, and the client shell's $VARIABLES)"));
    }
    Ok(u)
}

fn http(at: At, nodes: &[String]) -> R<Http> {
    at.map(
        &["from", "url", "requests", "requestTimeout", "retries", "insecure", "resolve", "expect"],
        "http: {from: {pod: client}, url: \"http://web\", requests: 10}",
    )?;
    let from = req(at, "from", "where the client runs: `{pod: NAME}`, `{node: NAME}` or `outside`", |a| place(a, nodes))?;
    let url = req(at, "url", "the URL to request, e.g. http://my-nginx", url)?;
    let requests = opt(at, "requests", count)?.unwrap_or(DEFAULT_REQUESTS as u64);
    if requests == 0 || requests > 100_000 {
        return err(&format!("{}.requests", at.path), format!("{requests}: give between 1 and 100000"));
    }
    let expect = opt(at, "expect", |e| {
        e.map(&["successRate", "answeredBy"], "expect: {successRate: 0.95, answeredBy: 2}")?;
        let success_rate = opt(e, "successRate", |a| match a.v.as_f64() {
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => err(a.path, format!("expected a share between 0 and 1 (e.g. 0.95), got {}", a.v)),
        })?
        .unwrap_or(1.0);
        let answered_by = opt(e, "answeredBy", |a| match a.v {
            Value::Array(list) => Ok(AnsweredBy::Pods(items(a, list, string)?)),
            _ => Ok(AnsweredBy::Count(count(a)? as usize)),
        })?;
        Ok(HttpExpect { success_rate, answered_by })
    })?
    .unwrap_or(HttpExpect { success_rate: 1.0, answered_by: None });
    Ok(Http {
        from,
        url,
        requests: requests as u32,
        request_timeout_ms: opt(at, "requestTimeout", duration)?.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        retries: opt(at, "retries", count)?.unwrap_or(0) as u32,
        insecure: opt(at, "insecure", boolean)?.unwrap_or(false),
        resolve: opt(at, "resolve", address)?,
        expect,
    })
}

/// `resolve:` an IP address, or a `${VARIABLE}` a `get` step sets.
fn address(at: At) -> R<String> {
    let a = string(at)?;
    if a.parse::<std::net::IpAddr>().is_err() && !is_variable_reference(&a) {
        return err(
            at.path,
            format!("{a:?}: give an IP address (e.g. 203.0.113.1) or a variable a `get` step sets (e.g. \"${{ADDRESS}}\")"),
        );
    }
    Ok(a)
}

/// `${NAME}` and nothing else.
fn is_variable_reference(text: &str) -> bool {
    text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).is_some_and(is_variable_name)
}

/// A variable's name, as a shell's: a letter or `_`, then letters, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `get: {object: KIND/NAME, jsonpath: "{…}", as: NAME}`.
fn get(at: At) -> R<Action> {
    at.map(&["object", "jsonpath", "as"], "get: {object: ingress/kubia, jsonpath: \"{.status.loadBalancer.ingress[0].ip}\", as: ADDRESS}")?;
    let mut object = req(at, "object", "the object to read: KIND/NAME or NAMESPACE/KIND/NAME, e.g. ingress/kubia", object_names)?;
    if object.len() != 1 {
        return err(&format!("{}.object", at.path), "give one object");
    }
    let jsonpath =
        req(at, "jsonpath", "the field, as kubectl's -o jsonpath takes it, e.g. \"{.status.loadBalancer.ingress[0].ip}\"", |a| {
            let t = string(a)?;
            emu_kubectl::jsonpath(&t, &Value::Null)
                .map_err(|e| StepError { field: a.path.into(), message: format!("invalid jsonpath {t:?}: {e}") })?;
            Ok(t)
        })?;
    let var = req(at, "as", "the variable's name, used as ${NAME} by later steps", |a| {
        let n = string(a)?;
        if !is_variable_name(&n) {
            return err(a.path, format!("{n:?}: a variable's name is letters, digits and '_', not starting with a digit (e.g. ADDRESS)"));
        }
        Ok(n)
    })?;
    Ok(Action::Get { object: object.remove(0), jsonpath, var })
}

/// Whether a value a `get` step read may be put into commands as text: nothing a shell would
/// interpret (quotes, spaces, `$`, `;`, globs…), so an object's field cannot run anything in the
/// client. Addresses, names, numbers and base64 pass.
pub fn shell_safe(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@+=,%".contains(c))
}

/// `text` with each `${NAME}` of `vars` replaced by its value; other text as it is.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

impl Step {
    /// The step with the variables set by earlier `get` steps in its commands, URLs and
    /// `resolve`.
    pub fn with_variables(&self, vars: &BTreeMap<String, String>) -> Step {
        let sub = |t: &String| substitute(t, vars);
        let command = |c: &Command| Command { argv: c.argv.iter().map(sub).collect(), ..c.clone() };
        let action = match &self.action {
            Action::Run(c) => Action::Run(command(c)),
            Action::Wait(Condition::Command(c)) => Action::Wait(Condition::Command(command(c))),
            Action::Http(h) => Action::Http(Http { url: sub(&h.url), resolve: h.resolve.as_ref().map(sub), ..h.clone() }),
            Action::Background(l) => Action::Background(Load { url: sub(&l.url), ..l.clone() }),
            other => other.clone(),
        };
        Step { action, ..self.clone() }
    }
}

fn load_expect(at: At) -> R<LoadExpect> {
    at.map(&["maxFailures", "failuresStopWithin"], "expect: {maxFailures: 0}")?;
    Ok(LoadExpect { max_failures: opt(at, "maxFailures", count)?, failures_stop_within_ms: opt(at, "failuresStopWithin", duration)? })
}

fn wait(at: At, nodes: &[String]) -> R<Condition> {
    let m = at.map(&["pods", "endpoints", "command", "rollout"], "wait: {pods: {selector: app=web, ready: 2}}")?;
    if m.len() != 1 {
        return err(
            at.path,
            "give one condition: `pods: {selector, ready}`, `endpoints: {service, count}`, `rollout: {deployment: NAME}` or \
             `command: {exec|ssh|outside: …}`",
        );
    }
    if let Some(r) = opt(at, "rollout", |r| {
        r.map(&["deployment", "statefulset", "namespace"], "rollout: {deployment: web}")?;
        let (kind, name) = match (opt(r, "deployment", string)?, opt(r, "statefulset", string)?) {
            (Some(d), None) => ("Deployment", d),
            (None, Some(s)) => ("StatefulSet", s),
            _ => return err(r.path, "give the workload whose rollout to wait for: `deployment: NAME` or `statefulset: NAME`"),
        };
        Ok(Condition::Rollout { namespace: namespace(r)?, kind: kind.into(), name })
    })? {
        return Ok(r);
    }
    if let Some(p) = opt(at, "pods", |p| {
        p.map(&["selector", "namespace", "ready", "total", "nodes", "node"], "pods: {selector: app=web, ready: 2}")?;
        let c = PodsCondition {
            namespace: namespace(p)?,
            selector: req(p, "selector", "a label selector, e.g. app=web", selector)?,
            ready: opt(p, "ready", count)?.map(|n| n as usize),
            total: opt(p, "total", count)?.map(|n| n as usize),
            nodes: opt(p, "nodes", count)?.map(|n| n as usize),
            node: opt(p, "node", |a| node_name(a, nodes))?,
        };
        if c.ready.is_none() && c.total.is_none() && c.nodes.is_none() {
            return err(
                p.path,
                "give `ready: N` (at least N Ready pods), `total: N` (exactly N pods) or `nodes: N` (Ready pods on N nodes)",
            );
        }
        Ok(c)
    })? {
        return Ok(Condition::Pods(p));
    }
    if let Some(e) = opt(at, "endpoints", |e| {
        e.map(&["service", "namespace", "count"], "endpoints: {service: web, count: 2}")?;
        Ok(Condition::Endpoints {
            namespace: namespace(e)?,
            service: req(e, "service", "the Service's name", string)?,
            count: req(e, "count", "the number of ready addresses, e.g. `count: 2`", count)? as usize,
        })
    })? {
        return Ok(e);
    }
    req(at, "command", "", |c| {
        let m = c.map(&["exec", "ssh", "outside"], "command: {exec: {pod: client, command: \"nslookup web\"}}")?;
        let [kind] = m.keys().map(String::as_str).collect::<Vec<_>>()[..] else {
            return err(c.path, "give one of exec, ssh or outside");
        };
        let kind = kind.to_string();
        Ok(Condition::Command(req(c, &kind, "", |b| command(&kind, b, nodes))?))
    })
}

fn percent(at: At) -> R<f64> {
    let text = match at.v {
        Value::Number(n) => n.to_string(),
        _ => string(at)?,
    };
    fault::parse_percent(&text).map_or_else(|e| err(at.path, e), Ok)
}

fn netem_duration(at: At) -> R<f64> {
    fault::parse_duration_ms(&string(at)?).map_or_else(|e| err(at.path, e), Ok)
}

/// `node-1`, `pod/NAME` (in `namespace`, default `default`) or `host/NAME` (an emulated host's
/// LAN link, checked against the scenario's `hosts`).
fn target(at: At, nodes: &[String], hosts: &[String]) -> R<Target> {
    let t = req(at, "target", "a node name, pod/NAME or host/NAME", string)?;
    if let Some(host) = fault::host_target(&t) {
        let spec = FaultSpec::Netem { target: Target::Host(host.to_string()), netem: Netem::default() };
        fault::check_hosts(&spec, hosts, "").map_err(|e| StepError {
            field: format!("{}.target", at.path),
            message: e.trim_start_matches("spec.netem.host: ").replace("`emu up --hosts N` (or `hosts: N` in a scenario)", "`hosts: N`"),
        })?;
        return Ok(Target::Host(host.to_string()));
    }
    match t.strip_prefix("pod/") {
        Some(pod) => Ok(Target::Pod { namespace: namespace(at)?, name: pod.to_string() }),
        None => {
            let mut path = String::new();
            Ok(Target::Node(node_name(at.field("target", &mut path).expect("target is there"), nodes)?))
        }
    }
}

/// `fault: {<kind>: {…}, name: NAME}` → (kind for the default name, spec).
fn fault(at: At, nodes: &[String], hosts: &[String]) -> R<(Option<String>, &'static str, FaultSpec)> {
    const FAULTS: [&str; 8] = ["partition", "delay", "loss", "duplicate", "corrupt", "reorder", "rate", "linkDown"];
    let m = at.map(
        &["partition", "delay", "loss", "duplicate", "corrupt", "reorder", "rate", "linkDown", "name"],
        "fault: {delay: {target: node-1, delay: 100ms}}",
    )?;
    let kinds: Vec<&str> = FAULTS.iter().copied().filter(|k| m.contains_key(*k)).collect();
    let [kind] = kinds[..] else {
        return err(at.path, format!("give one fault: {}", FAULTS.join(", ")));
    };
    let name = opt(at, "name", |a| {
        let n = string(a)?;
        let e = emu_api::syntax::dns1123_subdomain_errors(&n);
        if e.is_empty() {
            Ok(n)
        } else {
            err(a.path, format!("invalid fault name {n:?}: {}", e.join("; ")))
        }
    })?;
    let netem = |f: At, n: Netem| -> R<FaultSpec> { Ok(FaultSpec::Netem { target: target(f, nodes, hosts)?, netem: n }) };
    let spec = req(at, kind, "", |f| match kind {
        "partition" => {
            f.map(&["a", "b", "oneWay"], "partition: {a: [node-1], b: [node-2, node-3]}")?;
            if let Some(spec) = host_partition(f, hosts)? {
                return Ok(spec);
            }
            let side = |key: &str| {
                req(f, key, "a list of node names", |s| match s.v {
                    Value::Array(list) if !list.is_empty() => items(s, list, |n| node_name(n, nodes)),
                    _ => err(s.path, "give a list of node names, e.g. [node-1]"),
                })
            };
            let (a, b) = (side("a")?, side("b")?);
            if let Some(both) = a.iter().find(|n| b.contains(n)) {
                return err(f.path, format!("node {both:?} is on both sides"));
            }
            Ok(FaultSpec::Partition { a, b, one_way: opt(f, "oneWay", boolean)?.unwrap_or(false) })
        }
        "delay" => {
            f.map(&["target", "namespace", "delay", "jitter", "correlation"], "delay: {target: node-1, delay: 100ms, jitter: 10ms}")?;
            let n = Netem {
                delay_ms: Some(req(f, "delay", "e.g. 100ms", netem_duration)?),
                jitter_ms: opt(f, "jitter", netem_duration)?,
                delay_correlation: opt(f, "correlation", percent)?,
                ..Default::default()
            };
            netem(f, n)
        }
        "loss" => {
            f.map(&["target", "namespace", "percent", "correlation"], "loss: {target: node-1, percent: 20%}")?;
            let n = Netem {
                loss: Some(req(f, "percent", "e.g. 20%", percent)?),
                loss_correlation: opt(f, "correlation", percent)?,
                ..Default::default()
            };
            netem(f, n)
        }
        "duplicate" => {
            f.map(&["target", "namespace", "percent"], "duplicate: {target: node-1, percent: 1%}")?;
            netem(f, Netem { duplicate: Some(req(f, "percent", "e.g. 1%", percent)?), ..Default::default() })
        }
        "corrupt" => {
            f.map(&["target", "namespace", "percent"], "corrupt: {target: node-1, percent: 1%}")?;
            netem(f, Netem { corrupt: Some(req(f, "percent", "e.g. 1%", percent)?), ..Default::default() })
        }
        "reorder" => {
            f.map(&["target", "namespace", "percent", "delay"], "reorder: {target: node-1, percent: 25%, delay: 10ms}")?;
            let n = Netem {
                reorder: Some(req(f, "percent", "e.g. 25%", percent)?),
                delay_ms: Some(opt(f, "delay", netem_duration)?.unwrap_or(10.0)),
                ..Default::default()
            };
            netem(f, n)
        }
        "rate" => {
            f.map(&["target", "namespace", "rate"], "rate: {target: node-1, rate: 1mbit}")?;
            let r = req(f, "rate", "e.g. 1mbit", string)?;
            let rate = fault::parse_rate(&r).map_err(|e| StepError { field: format!("{}.rate", f.path), message: e })?;
            netem(f, Netem { rate: Some(rate), ..Default::default() })
        }
        _ => Ok(FaultSpec::LinkDown { node: node_name(f, nodes)? }),
    })?;
    let default_kind = match kind {
        "linkDown" => "link-down",
        k => FAULTS.iter().find(|x| **x == k).copied().unwrap_or("fault"),
    };
    Ok((name, default_kind, spec))
}

/// A partition whose sides are emulated hosts (`[host/host-2]`); None when neither side names a
/// host. A mix of nodes and hosts is refused.
fn host_partition(f: At, hosts: &[String]) -> R<Option<FaultSpec>> {
    let names = |key: &str| -> Vec<String> {
        f.v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let named = |l: &[String]| l.iter().filter(|t| fault::host_target(t).is_some()).count();
    let (a, b) = (names("a"), names("b"));
    match (named(&a) + named(&b), a.len() + b.len()) {
        (0, _) => return Ok(None),
        (h, n) if h == n => {}
        _ => return err(f.path, "give node names on both sides, or hosts (`host/NAME`) on both sides, not a mix"),
    }
    let side = |key: &str, list: &[String]| -> R<Vec<String>> {
        if list.is_empty() {
            return err(&format!("{}.{key}", f.path), "give a list of hosts, e.g. [host/host-2]");
        }
        let out: Vec<String> = list.iter().filter_map(|t| fault::host_target(t)).map(str::to_string).collect();
        if let Some(unknown) = out.iter().find(|h| !hosts.contains(h)) {
            let known = if hosts.is_empty() { "none: set `hosts: N` (emulated hosts)".to_string() } else { hosts.join(", ") };
            return err(&format!("{}.{key}", f.path), format!("host {unknown:?} is not in the scenario (hosts: {known})"));
        }
        Ok(out)
    };
    let (a, b) = (side("a", &a)?, side("b", &b)?);
    if let Some(both) = a.iter().find(|h| b.contains(h)) {
        return err(f.path, format!("host {both:?} is on both sides: put each host on one side only"));
    }
    let mut path = String::new();
    let one_way = f.field("oneWay", &mut path).map(boolean).transpose()?.unwrap_or(false);
    Ok(Some(FaultSpec::HostPartition { a, b, one_way }))
}

/// `host: {stop: host-2}` or `{start: host-2}`: the host, checked against the scenario's.
fn host_step(a: At, hosts: &[String]) -> R<(String, NodeOp)> {
    let m = a.map(&["stop", "start", "kill"], "host: {stop: host-2}")?;
    let verbs: Vec<&str> = ["stop", "start"].into_iter().filter(|k| m.contains_key(*k)).collect();
    let [verb] = verbs[..] else {
        return err(a.path, "give `stop: HOST` (its LAN link down, its nodes frozen; `kill: true` kills them) or `start: HOST`");
    };
    let kill = opt(a, "kill", boolean)?;
    if kill.is_some() && verb != "stop" {
        return err(a.path, "`kill` goes with `stop`");
    }
    let host = req(a, verb, "", string)?;
    let host = fault::host_target(&host).unwrap_or(&host).to_string();
    let mut path = String::new();
    let at = a.field(verb, &mut path).expect("the verb is there");
    let control = if verb == "stop" { hosts.first().map(String::as_str).unwrap_or_default() } else { "" };
    fault::check_hosts(&FaultSpec::HostStop { host: host.clone(), kill: false, nodes: vec![] }, hosts, control).map_err(|e| StepError {
        field: at.path.to_string(),
        message: e.trim_start_matches("spec.hostStop.host: ").replace("`emu up --hosts N` (or `hosts: N` in a scenario)", "`hosts: N`"),
    })?;
    Ok((host, if verb == "stop" { NodeOp::Stop { kill: kill.unwrap_or(false) } } else { NodeOp::Start }))
}

fn daemon(at: At, nodes: &[String], example: &str) -> R<Daemon> {
    if at.v.as_str() == Some("controller") {
        return Ok(Daemon::Controller);
    }
    at.map(&["agent"], example)?;
    Ok(Daemon::Agent(req(at, "agent", "the node whose agent", |a| node_name(a, nodes))?))
}

fn object_names(at: At) -> R<Vec<ObjectName>> {
    let one = |a: At| -> R<ObjectName> {
        let s = string(a)?;
        let parts: Vec<&str> = s.split('/').collect();
        let (ns, kind, name) = match parts[..] {
            [kind, name] if !kind.is_empty() && !name.is_empty() => ("default", kind, name),
            [ns, kind, name] if !ns.is_empty() && !kind.is_empty() && !name.is_empty() => (ns, kind, name),
            _ => return err(a.path, format!("{s:?}: give KIND/NAME (e.g. deployment/web) or NAMESPACE/KIND/NAME")),
        };
        let Some(rk) = emu_api::kinds::lookup(kind) else {
            return err(a.path, format!("{s:?}: the server doesn't have a resource type {kind:?}"));
        };
        Ok(ObjectName { namespace: if rk.namespaced { ns.into() } else { String::new() }, kind: rk.kind.into(), name: name.into() })
    };
    match at.v {
        Value::Array(list) if !list.is_empty() => items(at, list, one),
        _ => Ok(vec![one(at)?]),
    }
}

/// What the parse keeps track of from step to step: the faults in force (by name) and the
/// background loads running, so that `clear` and `stop` can only name what exists.
#[derive(Default)]
struct Track {
    faults: BTreeSet<String>,
    loads: BTreeSet<String>,
}

/// Parses and checks `steps:`; `nodes` are the scenario's nodes.
pub fn parse(steps: &[Value], nodes: &[String]) -> Result<Vec<Step>, StepError> {
    parse_with_hosts(steps, nodes, &[])
}

/// [`parse`], in a scenario with emulated `hosts` (`hosts: N`; the first runs the control plane).
pub fn parse_with_hosts(steps: &[Value], nodes: &[String], hosts: &[String]) -> Result<Vec<Step>, StepError> {
    let mut track = Track::default();
    steps.iter().enumerate().map(|(i, v)| step(&format!("steps[{i}]"), v, nodes, hosts, &mut track)).collect()
}

fn step(path: &str, v: &Value, nodes: &[String], hosts: &[String], track: &mut Track) -> R<Step> {
    let at = At { v, path };
    let example = "- wait: {pods: {selector: app=web, ready: 2}}";
    let mut allowed: Vec<&str> = KINDS.to_vec();
    allowed.extend(["name", "timeout"]);
    let m = at.map(&allowed, example)?;
    let kinds: Vec<&str> = KINDS.iter().copied().filter(|k| m.contains_key(*k)).collect();
    let [kind] = kinds[..] else {
        let what = if kinds.is_empty() { "no action".to_string() } else { format!("{} actions ({})", kinds.len(), kinds.join(", ")) };
        return err(path, format!("a step does one thing, this one has {what}: give one of {} (a list item per step)", KINDS.join(", ")));
    };
    let timeout_ms = opt(at, "timeout", duration)?.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 {
        return err(&format!("{path}.timeout"), "must be more than 0");
    }
    let action = req(at, kind, "", |a| -> R<Action> {
        Ok(match kind {
            "apply" => Action::Apply(manifest_source(&string(a)?)),
            "delete" => Action::Delete(object_names(a)?),
            "get" => get(a)?,
            "scale" => {
                a.map(&["deployment", "namespace", "replicas"], "scale: {deployment: web, replicas: 3}")?;
                let replicas = req(a, "replicas", "the new number of replicas", count)?;
                Action::Scale {
                    namespace: namespace(a)?,
                    deployment: req(a, "deployment", "the Deployment's name", string)?,
                    replicas: i32::try_from(replicas)
                        .map_err(|_| StepError { field: format!("{}.replicas", a.path), message: "too large".into() })?,
                }
            }
            "wait" => Action::Wait(wait(a, nodes)?),
            "exec" | "ssh" | "outside" => Action::Run(command(kind, a, nodes)?),
            "http" => Action::Http(http(a, nodes)?),
            "fault" => {
                let (name, kind, spec) = fault(a, nodes, hosts)?;
                let name = match name {
                    Some(n) if track.faults.contains(&n) => {
                        return err(
                            &format!("{}.name", a.path),
                            format!("fault {n:?} is already in force: give another name, or clear it first"),
                        )
                    }
                    Some(n) => n,
                    None => (1..).map(|i| format!("{kind}-{i}")).find(|n| !track.faults.contains(n)).unwrap_or_default(),
                };
                track.faults.insert(name.clone());
                Action::Fault { name, spec }
            }
            "clear" => {
                if a.v.as_str() == Some("all") {
                    track.faults.clear();
                    Action::Clear(None)
                } else {
                    let names: Vec<String> = match a.v {
                        Value::Array(list) => items(a, list, string)?,
                        _ => vec![string(a)?],
                    };
                    for n in &names {
                        if !track.faults.remove(n) {
                            let known: Vec<&String> = track.faults.iter().collect();
                            return err(
                                a.path,
                                format!("no fault {n:?} is in force at this step: give `all` or names of faults made by earlier steps ({known:?})"),
                            );
                        }
                    }
                    Action::Clear(Some(names))
                }
            }
            "node" => {
                let m = a.map(&["stop", "start", "remove", "kill"], "node: {stop: node-2}")?;
                let verbs: Vec<&str> = ["stop", "start", "remove"].into_iter().filter(|k| m.contains_key(*k)).collect();
                let [verb] = verbs[..] else {
                    return err(a.path, "give `stop: NODE` (with `kill: true` to kill its processes rather than freeze them), `start: NODE` or `remove: NODE`");
                };
                let kill = opt(a, "kill", boolean)?;
                if kill.is_some() && verb != "stop" {
                    return err(a.path, "`kill` goes with `stop`");
                }
                let node = req(a, verb, "", |n| node_name(n, nodes))?;
                let fault = format!("node-stop-{node}");
                let op = match verb {
                    "stop" => {
                        track.faults.insert(fault);
                        NodeOp::Stop { kill: kill.unwrap_or(false) }
                    }
                    "start" => {
                        track.faults.remove(&fault);
                        NodeOp::Start
                    }
                    _ => {
                        track.faults.remove(&fault);
                        NodeOp::Remove
                    }
                };
                Action::Node { node, op }
            }
            "host" => {
                let (host, op) = host_step(a, hosts)?;
                let fault = format!("host-stop-{host}");
                if op == NodeOp::Start {
                    track.faults.remove(&fault);
                } else {
                    track.faults.insert(fault);
                }
                Action::Node { node: format!("{}{host}", fault::HOST_PREFIX), op }
            }
            "restart" => Action::Restart(daemon(a, nodes, "restart: {agent: node-1}")?),
            "kill" => {
                if a.v.as_str() == Some("controller") || a.v.get("agent").is_some() {
                    Action::Kill(Kill::Daemon(daemon(a, nodes, "kill: {agent: node-1}")?))
                } else {
                    let m = a.map(&["pod", "selector", "namespace"], "kill: {pod: web-1}")?;
                    match (m.contains_key("pod"), m.contains_key("selector")) {
                        (true, false) => Action::Kill(Kill::Pod { namespace: namespace(a)?, name: req(a, "pod", "", string)? }),
                        (false, true) => Action::Kill(Kill::Selector { namespace: namespace(a)?, selector: req(a, "selector", "", selector)? }),
                        _ => {
                            return err(
                                a.path,
                                "give `controller`, `{agent: NODE}`, `{pod: NAME}` or `{selector: app=web}` (one pod of them, chosen with the seed)",
                            )
                        }
                    }
                }
            }
            "sleep" => Action::Sleep { ms: duration(a)? },
            "background" => {
                a.map(
                    &["name", "from", "url", "interval", "requestTimeout", "insecure", "expect"],
                    "background: {name: load, from: outside, url: \"http://198.51.100.2:30080\"}",
                )?;
                let name = req(a, "name", "the load's name, for `stop:` and the report", string)?;
                if !track.loads.insert(name.clone()) {
                    return err(
                        &format!("{}.name", a.path),
                        format!("load {name:?} is already running: stop it first or give another name"),
                    );
                }
                Action::Background(Load {
                    name,
                    from: req(a, "from", "where the client runs: `{pod: NAME}`, `{node: NAME}` or `outside`", |p| place(p, nodes))?,
                    url: req(a, "url", "the URL to request", url)?,
                    interval_ms: opt(a, "interval", duration)?.unwrap_or(DEFAULT_INTERVAL_MS),
                    request_timeout_ms: opt(a, "requestTimeout", duration)?.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
                    insecure: opt(a, "insecure", boolean)?.unwrap_or(false),
                    expect: opt(a, "expect", load_expect)?.unwrap_or_default(),
                })
            }
            "stop" => {
                let (load, expect) = match a.v {
                    Value::String(s) => (s.clone(), LoadExpect::default()),
                    _ => {
                        a.map(&["load", "expect"], "stop: {load: load, expect: {maxFailures: 0}}")?;
                        (req(a, "load", "the name of a background load", string)?, opt(a, "expect", load_expect)?.unwrap_or_default())
                    }
                };
                if !track.loads.remove(&load) {
                    return err(a.path, format!("no background load {load:?} is running at this step (running: {:?})", track.loads));
                }
                Action::Stop { load, expect }
            }
            _ => unreachable!("every kind is handled"),
        })
    })?;
    let name = opt(at, "name", string)?.unwrap_or_else(|| action.describe());
    Ok(Step { name, timeout_ms, action })
}

fn shell_words(argv: &[String]) -> String {
    let text = match argv {
        [sh, c, script] if sh == "sh" && c == "-c" => script.clone(),
        _ => argv.join(" "),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

impl Action {
    /// The step's name in the report when it has none.
    pub fn describe(&self) -> String {
        match self {
            Action::Apply(ManifestSource::Path(p)) => format!("apply {p}"),
            Action::Apply(ManifestSource::Inline(t)) => {
                let kinds: Vec<&str> = t.lines().filter_map(|l| l.trim().strip_prefix("kind:")).map(str::trim).collect();
                format!("apply {}", if kinds.is_empty() { "inline manifest".into() } else { kinds.join(", ") })
            }
            Action::Delete(objects) => {
                format!("delete {}", objects.iter().map(|o| format!("{}/{}", o.kind.to_lowercase(), o.name)).collect::<Vec<_>>().join(", "))
            }
            Action::Get { object, jsonpath, var } => format!("get {}/{} {jsonpath} as ${{{var}}}", object.kind.to_lowercase(), object.name),
            Action::Scale { deployment, replicas, .. } => format!("scale deployment/{deployment} to {replicas}"),
            Action::Wait(Condition::Pods(p)) => {
                let mut what = Vec::new();
                if let Some(n) = p.ready {
                    what.push(format!("{n} ready"));
                }
                if let Some(n) = p.total {
                    what.push(format!("{n} in all"));
                }
                if let Some(n) = p.nodes {
                    what.push(format!("on {n} nodes"));
                }
                let on = p.node.as_ref().map(|n| format!(" on {n}")).unwrap_or_default();
                format!("wait for pods {}{on}: {}", p.selector, what.join(", "))
            }
            Action::Wait(Condition::Endpoints { service, count, .. }) => format!("wait for {count} endpoints of service {service}"),
            Action::Wait(Condition::Command(c)) => format!("wait until `{}` succeeds ({})", shell_words(&c.argv), c.place),
            Action::Wait(Condition::Rollout { kind, name, .. }) => format!("wait for the rollout of {}/{name}", kind.to_lowercase()),
            Action::Run(c) => format!("{}: {}", c.place, shell_words(&c.argv)),
            Action::Http(h) => {
                let at = h.resolve.as_ref().map(|a| format!(" at {a}")).unwrap_or_default();
                format!("{} requests to {}{at} from {}", h.requests, h.url, h.from)
            }
            Action::Fault { name, spec } => {
                let (_, target, details) = faults::describe(spec);
                format!("fault {name}: {target} {details}")
            }
            Action::Clear(None) => "clear all faults".into(),
            Action::Clear(Some(names)) => format!("clear {}", names.join(", ")),
            Action::Node { node, op } if fault::host_target(node).is_some() => {
                let host = fault::host_target(node).unwrap_or_default();
                match op {
                    NodeOp::Start => format!("start host {host}"),
                    NodeOp::Stop { kill: true } => format!("stop host {host} (killed)"),
                    _ => format!("stop host {host}"),
                }
            }
            Action::Node { node, op: NodeOp::Stop { kill: false } } => format!("stop node {node}"),
            Action::Node { node, op: NodeOp::Stop { kill: true } } => format!("stop node {node} (killed)"),
            Action::Node { node, op: NodeOp::Start } => format!("start node {node}"),
            Action::Node { node, op: NodeOp::Remove } => format!("remove node {node}"),
            Action::Restart(d) => format!("restart {}", d.describe()),
            Action::Kill(Kill::Daemon(d)) => format!("kill {}", d.describe()),
            Action::Kill(Kill::Pod { name, .. }) => format!("kill pod {name}"),
            Action::Kill(Kill::Selector { selector, .. }) => format!("kill a pod of {selector}"),
            Action::Sleep { ms } => format!("sleep {}", format_duration_ms(*ms)),
            Action::Background(l) => {
                format!("start load {}: {} from {} every {}", l.name, l.url, l.from, format_duration_ms(l.interval_ms))
            }
            Action::Stop { load, .. } => format!("stop load {load}"),
        }
    }
}

impl Daemon {
    pub fn describe(&self) -> String {
        match self {
            Daemon::Controller => "controller".into(),
            Daemon::Agent(n) => format!("agent of {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    fn one(v: Value) -> Result<Step, String> {
        parse(&[v], &nodes()).map(|mut s| s.remove(0)).map_err(|e| e.to_string())
    }

    #[test]
    fn get_keeps_a_field_for_later_steps() {
        let get = json!({"get": {"object": "ingress/kubia", "jsonpath": "{.status.loadBalancer.ingress[0].ip}", "as": "ADDRESS"}});
        let step = one(get).unwrap();
        let object = ObjectName { namespace: "default".into(), kind: "Ingress".into(), name: "kubia".into() };
        assert_eq!(step.action, Action::Get { object, jsonpath: "{.status.loadBalancer.ingress[0].ip}".into(), var: "ADDRESS".into() });
        assert_eq!(step.name, "get ingress/kubia {.status.loadBalancer.ingress[0].ip} as ${ADDRESS}");
        let e = one(json!({"get": {"object": "ingress/kubia", "jsonpath": "{.status", "as": "A"}})).unwrap_err();
        assert!(e.starts_with("scenario field `steps[0].get.jsonpath`: invalid jsonpath \"{.status\": "), "{e}");
        let e = one(json!({"get": {"object": "ingress/kubia", "jsonpath": "{.a}", "as": "1A"}})).unwrap_err();
        assert!(e.starts_with("scenario field `steps[0].get.as`: \"1A\": a variable's name"), "{e}");
        let e = one(json!({"get": {"object": "ingress", "jsonpath": "{.a}", "as": "A"}})).unwrap_err();
        assert!(e.starts_with("scenario field `steps[0].get.object`: \"ingress\": give KIND/NAME"), "{e}");
        let e = one(json!({"get": {"object": ["svc/a", "svc/b"], "jsonpath": "{.a}", "as": "A"}})).unwrap_err();
        assert_eq!(e, "scenario field `steps[0].get.object`: give one object");
    }

    #[test]
    fn variables_go_into_commands_urls_and_resolve() {
        let http = one(json!({"http": {"from": "outside", "url": "https://${HOST}/", "resolve": "${ADDRESS}", "insecure": true}})).unwrap();
        assert_eq!(http.name, "10 requests to https://${HOST}/ at ${ADDRESS} from outside");
        let vars: BTreeMap<String, String> = [("ADDRESS".into(), "203.0.113.1".into()), ("HOST".into(), "kubia.example.com".into())].into();
        let Action::Http(h) = http.with_variables(&vars).action else { panic!() };
        assert_eq!((h.url.as_str(), h.resolve.as_deref()), ("https://kubia.example.com/", Some("203.0.113.1")));
        assert!(shell_safe("203.0.113.1") && shell_safe("fe80::1") && shell_safe("dG9rZW4+Lz0=") && shell_safe("kubia-589dbffc54-pmmfg"));
        assert!(!shell_safe("a b") && !shell_safe("$(reboot)") && !shell_safe("x;y") && !shell_safe("'q'") && !shell_safe("*"));
        let run = one(json!({"outside": {"command": "curl -H 'Host: x' http://${ADDRESS}/ $HOME ${OTHER}"}})).unwrap();
        let Action::Run(c) = run.with_variables(&vars).action else { panic!() };
        // A variable no `get` set is the shell's.
        assert_eq!(c.argv[2], "curl -H 'Host: x' http://203.0.113.1/ $HOME ${OTHER}");
        assert_eq!(run.with_variables(&vars).name, run.name, "the report shows the step as written");
        let e = one(json!({"http": {"from": "outside", "url": "http://a", "resolve": "kubia"}})).unwrap_err();
        assert!(e.starts_with("scenario field `steps[0].http.resolve`: \"kubia\": give an IP address"), "{e}");
        assert!(one(json!({"http": {"from": "outside", "url": "http://a", "resolve": "203.0.113.9"}})).is_ok());
    }

    #[test]
    fn a_rollout_wait_names_its_deployment() {
        let step = one(json!({"wait": {"rollout": {"deployment": "web"}}})).unwrap();
        assert_eq!(
            step.action,
            Action::Wait(Condition::Rollout { namespace: "default".into(), kind: "Deployment".into(), name: "web".into() })
        );
        assert_eq!(step.action.describe(), "wait for the rollout of deployment/web");
        let step = one(json!({"wait": {"rollout": {"statefulset": "web"}}})).unwrap();
        assert_eq!(
            step.action,
            Action::Wait(Condition::Rollout { namespace: "default".into(), kind: "StatefulSet".into(), name: "web".into() })
        );
        let e = one(json!({"wait": {"rollout": {"daemonset": "web"}}})).unwrap_err();
        assert!(e.contains("daemonset"), "{e}");
        let e = one(json!({"wait": {"rollout": {}}})).unwrap_err();
        assert!(e.contains("`deployment: NAME` or `statefulset: NAME`"), "{e}");
    }

    #[test]
    fn every_kind_parses() {
        let steps = [
            json!({"apply": "web.yaml"}),
            json!({"apply": "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"}),
            json!({"delete": ["deployment/web", "kube-system/svc/x"]}),
            json!({"scale": {"deployment": "web", "replicas": 3}}),
            json!({"wait": {"pods": {"selector": "app=web", "ready": 2}}, "timeout": "10s"}),
            json!({"wait": {"endpoints": {"service": "web", "count": 2}}}),
            json!({"wait": {"command": {"exec": {"pod": "client", "command": "nslookup web"}}}}),
            json!({"exec": {"pod": "deploy/client", "command": ["curl", "-s", "http://web"], "expect": {"stdoutContains": "nginx", "exitCode": 0}}}),
            json!({"ssh": {"node": "node-1", "command": "ip route", "expect": {"stdoutMatches": "10\\.244\\.\\d+"}}}),
            json!({"outside": {"command": "curl -s http://198.51.100.2:30080", "expect": {"exitCode": "nonzero"}}}),
            json!({"http": {"from": "outside", "url": "http://198.51.100.2:30080", "requests": 5, "expect": {"successRate": 0.9, "answeredBy": 2}}}),
            json!({"fault": {"delay": {"target": "node-1", "delay": "100ms", "jitter": "10ms"}}}),
            json!({"fault": {"loss": {"target": "pod/web", "percent": "20%"}, "name": "lossy"}}),
            json!({"fault": {"partition": {"a": ["node-1"], "b": ["node-2", "node-3"], "oneWay": true}}}),
            json!({"clear": ["delay-1"]}),
            json!({"node": {"stop": "node-2"}}),
            json!({"node": {"start": "node-2"}}),
            json!({"restart": "controller"}),
            json!({"kill": {"agent": "node-1"}}),
            json!({"kill": {"selector": "app=web"}}),
            json!({"sleep": "1.5s"}),
            json!({"background": {"name": "load", "from": {"pod": "client"}, "url": "http://$WEB_SERVICE_HOST/", "interval": "100ms", "expect": {"maxFailures": 0}}}),
            json!({"stop": {"load": "load", "expect": {"failuresStopWithin": "5s"}}}),
            json!({"clear": "all"}),
            json!({"fault": {"duplicate": {"target": "node-3", "percent": "5%"}}}),
            json!({"node": {"stop": "node-3", "kill": true}}),
            json!({"node": {"remove": "node-3"}}),
            json!({"wait": {"rollout": {"deployment": "web", "namespace": "prod"}}}),
        ];
        let parsed = parse(&steps, &nodes()).unwrap();
        let names: Vec<&str> = parsed.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "apply web.yaml",
                "apply Namespace",
                "delete deployment/web, service/x",
                "scale deployment/web to 3",
                "wait for pods app=web: 2 ready",
                "wait for 2 endpoints of service web",
                "wait until `nslookup web` succeeds (client)",
                "deploy/client: curl -s http://web",
                "node node-1: ip route",
                "outside: curl -s http://198.51.100.2:30080",
                "5 requests to http://198.51.100.2:30080 from outside",
                "fault delay-1: node/node-1 delay 100ms 10ms",
                "fault lossy: pod/default/web loss 20%",
                "fault partition-1: node-1 -> node-2,node-3 one way",
                "clear delay-1",
                "stop node node-2",
                "start node node-2",
                "restart controller",
                "kill agent of node-1",
                "kill a pod of app=web",
                "sleep 1.5s",
                "start load load: http://$WEB_SERVICE_HOST/ from client every 100ms",
                "stop load load",
                "clear all faults",
                "fault duplicate-1: node/node-3 duplicate 5%",
                "stop node node-3 (killed)",
                "remove node node-3",
                "wait for the rollout of deployment/web",
            ]
        );
        assert_eq!(parsed[4].timeout_ms, 10_000);
        assert_eq!(parsed[0].timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(
            parsed[1].action,
            Action::Apply(ManifestSource::Inline("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n".into()))
        );
        assert_eq!(
            parsed[2].action,
            Action::Delete(vec![
                ObjectName { namespace: "default".into(), kind: "Deployment".into(), name: "web".into() },
                ObjectName { namespace: "kube-system".into(), kind: "Service".into(), name: "x".into() },
            ])
        );
        let Action::Run(c) = &parsed[7].action else { panic!() };
        assert_eq!(c.argv, ["curl", "-s", "http://web"]);
        let Action::Run(c) = &parsed[8].action else { panic!() };
        assert_eq!(c.argv, ["sh", "-c", "ip route"]);
        assert_eq!(c.expect.exit_code, ExitCode::Is(0));
        let Action::Http(h) = &parsed[10].action else { panic!() };
        assert_eq!(
            (h.requests, h.request_timeout_ms, h.expect.success_rate, &h.expect.answered_by),
            (5, DEFAULT_REQUEST_TIMEOUT_MS, 0.9, &Some(AnsweredBy::Count(2)))
        );
        let Action::Stop { expect, .. } = &parsed[22].action else { panic!() };
        assert_eq!(expect.failures_stop_within_ms, Some(5000));
    }

    #[test]
    fn a_named_step_keeps_its_name() {
        assert_eq!(one(json!({"name": "settle", "sleep": "2s"})).unwrap().name, "settle");
    }

    #[test]
    fn fault_names_follow_emu_fault_and_clear_frees_them() {
        let steps = [
            json!({"fault": {"delay": {"target": "node-1", "delay": "10ms"}}}),
            json!({"fault": {"delay": {"target": "node-2", "delay": "10ms"}}}),
            json!({"clear": "delay-1"}),
            json!({"fault": {"delay": {"target": "node-3", "delay": "10ms"}}}),
            json!({"fault": {"linkDown": "node-3"}}),
        ];
        let names: Vec<String> = parse(&steps, &nodes())
            .unwrap()
            .into_iter()
            .filter_map(|s| match s.action {
                Action::Fault { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["delay-1", "delay-2", "delay-1", "link-down-1"]);
    }

    #[test]
    fn bad_steps_name_the_field_and_the_fix() {
        let cases = [
            (json!({"wait": {"pods": {"selector": "app=web", "ready": "two"}}}), "scenario field `steps[0].wait.pods.ready`: expected a whole number (0 or more), got \"two\""),
            (json!({"wait": {"pods": {"selector": "app=web"}}}), "scenario field `steps[0].wait.pods`: give `ready: N` (at least N Ready pods), `total: N` (exactly N pods) or `nodes: N` (Ready pods on N nodes)"),
            (json!({"sleep": "2"}), "scenario field `steps[0].sleep`: invalid duration \"2\": use a number with ms, s or m, e.g. 500ms, 2s or 1m"),
            (json!({"exec": {"command": "ls"}}), "scenario field `steps[0].exec.pod`: required: the pod to run in: NAME, deploy/NAME or svc/NAME"),
            (json!({"ssh": {"node": "node-9", "command": "ls"}}), "scenario field `steps[0].ssh.node`: node \"node-9\" is not in the cluster: use one of node-1, node-2, node-3"),
            (json!({"exec": {"pod": "x", "command": "ls", "expect": {"stdoutMatches": "("}}}), "scenario field `steps[0].exec.expect.stdoutMatches`: invalid regular expression \"(\""),
            (json!({"exec": {"pod": "x", "command": "ls", "expect": {"stdout": "a"}}}), "scenario field `steps[0].exec.expect.stdout`: unknown field: use exitCode, stdoutContains, stdoutMatches"),
            (json!({"fault": {"loss": {"target": "node-1", "percent": "120%"}}}), "scenario field `steps[0].fault.loss.percent`: invalid percentage \"120%\": between 0% and 100%"),
            (json!({"fault": {"partition": {"a": ["node-1"], "b": ["node-1"]}}}), "scenario field `steps[0].fault.partition`: node \"node-1\" is on both sides"),
            (json!({"clear": "delay-1"}), "scenario field `steps[0].clear`: no fault \"delay-1\" is in force at this step"),
            (json!({"stop": "load"}), "scenario field `steps[0].stop`: no background load \"load\" is running at this step"),
            (json!({"http": {"from": "outside", "url": "web"}}), "scenario field `steps[0].http.url`: \"web\": give an http:// or https:// URL"),
            (json!({"http": {"from": {"pod": "c"}, "url": "http://web", "expect": {"successRate": 2}}}), "scenario field `steps[0].http.expect.successRate`: expected a share between 0 and 1"),
            (json!({"kill": {"pod": "a", "selector": "b=c"}}), "scenario field `steps[0].kill`: give `controller`"),
            (json!({"sleep": "1s", "exec": {}}), "scenario field `steps[0]`: a step does one thing, this one has 2 actions (exec, sleep)"),
            (json!({"name": "x"}), "scenario field `steps[0]`: a step does one thing, this one has no action: give one of apply, delete,"),
            (json!({"wiat": {}}), "scenario field `steps[0].wiat`: unknown field: use apply, delete,"),
            (json!({"delete": "web"}), "scenario field `steps[0].delete`: \"web\": give KIND/NAME (e.g. deployment/web) or NAMESPACE/KIND/NAME"),
            (json!({"delete": ["svc/a", "deploymnt/web"]}), "scenario field `steps[0].delete[1]`: \"deploymnt/web\": the server doesn't have a resource type \"deploymnt\""),
            (json!({"wait": {"pods": {"selector": "app in (", "ready": 1}}}), "scenario field `steps[0].wait.pods.selector`: invalid selector"),
            (json!({"timeout": "0s", "sleep": "1s"}), "scenario field `steps[0].timeout`: must be more than 0"),
            (json!({"node": {"start": "node-2", "kill": true}}), "scenario field `steps[0].node`: `kill` goes with `stop`"),
            (json!({"node": {"stop": "node-2", "remove": "node-2"}}), "scenario field `steps[0].node`: give `stop: NODE`"),
        ];
        for (step, want) in cases {
            let got = one(step.clone()).map(|s| format!("{s:?}")).unwrap_err();
            assert!(got.starts_with(want), "{step}:\n got: {got}\nwant: {want}");
        }
        // The index is the step's own.
        let e = parse(&[json!({"sleep": "1s"}), json!({"sleep": "x"})], &nodes()).unwrap_err();
        assert_eq!(e.field, "steps[1].sleep");
    }

    #[test]
    fn loads_are_stopped_by_name_once() {
        let load = json!({"background": {"name": "l", "from": "outside", "url": "http://198.51.100.2"}});
        assert!(parse(&[load.clone(), json!({"stop": "l"}), load.clone()], &nodes()).is_ok());
        let e = parse(&[load.clone(), load.clone()], &nodes()).unwrap_err();
        assert_eq!(e.field, "steps[1].background.name");
        let e = parse(&[load, json!({"stop": "l"}), json!({"stop": "l"})], &nodes()).unwrap_err();
        assert_eq!(e.field, "steps[2].stop");
    }

    #[test]
    fn urls_cannot_break_out_of_their_quotes() {
        let e = one(json!({"http": {"from": "outside", "url": "http://x/\"; rm -rf /"}})).unwrap_err();
        assert!(e.contains("cannot be in the URL"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("200ms"), Ok(200));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert!(parse_duration_ms("2h").is_err());
        assert_eq!([200, 2000, 1500, 120_000].map(format_duration_ms), ["200ms", "2s", "1.5s", "2m"]);
    }

    fn on_hosts(v: Value) -> Result<Step, String> {
        let hosts: Vec<String> = vec!["host-1".into(), "host-2".into(), "host-3".into()];
        parse_with_hosts(&[v], &nodes(), &hosts).map(|mut s| s.remove(0)).map_err(|e| e.to_string())
    }

    #[test]
    fn host_faults_name_the_scenarios_hosts() {
        let s = on_hosts(json!({"fault": {"partition": {"a": ["host/host-2"], "b": ["host/host-1", "host/host-3"]}}})).unwrap();
        assert_eq!(
            s.action,
            Action::Fault {
                name: "partition-1".into(),
                spec: FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false }
            }
        );
        assert_eq!(s.name, "fault partition-1: host/host-2 <-> host/host-1,host/host-3 both ways, in the LAN");
        let stop = on_hosts(json!({"host": {"stop": "host-2"}})).unwrap();
        assert_eq!(stop.action, Action::Node { node: "host/host-2".into(), op: NodeOp::Stop { kill: false } });
        assert_eq!(stop.name, "stop host host-2");
        assert_eq!(on_hosts(json!({"host": {"start": "host/host-2"}})).unwrap().name, "start host host-2");
        // A host stop is a fault to clear by name.
        let hosts: Vec<String> = vec!["host-1".into(), "host-2".into()];
        let steps = [json!({"host": {"stop": "host-2"}}), json!({"clear": "host-stop-host-2"})];
        assert!(parse_with_hosts(&steps, &nodes(), &hosts).is_ok());

        assert_eq!(
            on_hosts(json!({"fault": {"partition": {"a": ["host/host-9"], "b": ["host/host-1"]}}})).unwrap_err(),
            "scenario field `steps[0].fault.partition.a`: host \"host-9\" is not in the scenario (hosts: host-1, host-2, host-3)"
        );
        assert_eq!(
            one(json!({"fault": {"partition": {"a": ["host/host-2"], "b": ["host/host-1"]}}})).unwrap_err(),
            "scenario field `steps[0].fault.partition.a`: host \"host-2\" is not in the scenario (hosts: none: set `hosts: N` (emulated hosts))"
        );
        assert_eq!(
            on_hosts(json!({"fault": {"partition": {"a": ["host/host-2"], "b": ["node-1"]}}})).unwrap_err(),
            "scenario field `steps[0].fault.partition`: give node names on both sides, or hosts (`host/NAME`) on both sides, not a mix"
        );
        assert_eq!(
            on_hosts(json!({"fault": {"partition": {"a": ["host/host-2"], "b": ["host/host-2"]}}})).unwrap_err(),
            "scenario field `steps[0].fault.partition`: host \"host-2\" is on both sides: put each host on one side only"
        );
        let e = on_hosts(json!({"host": {"stop": "host-1"}})).unwrap_err();
        assert!(e.starts_with("scenario field `steps[0].host.stop`: host \"host-1\" runs the control plane"), "{e}");
        let e = one(json!({"host": {"stop": "host-2"}})).unwrap_err();
        assert!(
            e.starts_with("scenario field `steps[0].host.stop`: this cluster has no emulated hosts") && e.contains("`hosts: N`"),
            "{e}"
        );
        let slow = on_hosts(json!({"fault": {"delay": {"target": "host/host-2", "delay": "50ms"}}})).unwrap();
        assert_eq!(slow.name, "fault delay-1: host/host-2 delay 50ms");
        assert_eq!(
            on_hosts(json!({"fault": {"loss": {"target": "host/host-9", "percent": "5%"}}})).unwrap_err(),
            "scenario field `steps[0].fault.loss.target`: host \"host-9\" is not in the cluster (hosts: host-1, host-2, host-3)"
        );
        let e = one(json!({"fault": {"delay": {"target": "host/host-2", "delay": "50ms"}}})).unwrap_err();
        assert!(
            e.starts_with("scenario field `steps[0].fault.delay.target`: this cluster has no emulated hosts") && e.contains("`hosts: N`"),
            "{e}"
        );
        let killed = on_hosts(json!({"host": {"stop": "host-2", "kill": true}})).unwrap();
        assert_eq!(
            (killed.action, killed.name.as_str()),
            (Action::Node { node: "host/host-2".into(), op: NodeOp::Stop { kill: true } }, "stop host host-2 (killed)")
        );
        assert!(on_hosts(json!({"host": {"start": "host-2", "kill": true}})).unwrap_err().contains("`kill` goes with `stop`"));
    }
}
