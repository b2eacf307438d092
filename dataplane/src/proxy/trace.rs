//! A packet tracer for the rules in [`super::render`]: it loads the nft scripts the renderers
//! write (only that subset of nft) into an in-memory table, and follows one packet through the
//! filter and nat chains of its hooks, as the kernel would for the first packet of a connection.
//!
//! Loading checks what the kernel checks and the renderers could get wrong: a rule or element may
//! only refer to chains and sets that exist at that point of the transaction, a chain or set may
//! only be deleted when nothing refers to it, an element may not be re-added with another value,
//! and a failed script changes nothing. Applying `render_full(old)` and then
//! `render_update(old, new)` therefore exercises the update's ordering without root.
//!
//! `numgen random` is followed both ways, so a trace lists every endpoint a connection can reach.

use super::model::Protocol;
use emu_logic::ipam::Ipv4Cidr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Where the packet comes from: a pod (or anything arriving on an interface: hook prerouting) or
/// a process of the node itself (hook output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Pod,
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    /// ICMP echo request (`ping`): no port.
    IcmpEcho,
}

impl From<Protocol> for Proto {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Sctp => Proto::Sctp,
        }
    }
}

impl Proto {
    fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::IcmpEcho => "icmp",
        }
    }
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: Proto,
    pub dport: u16,
    pub origin: Origin,
    /// The client is already in the ClientIP affinity set of this endpoint (the set whose chain
    /// DNATs to it).
    pub affinity: Option<(Ipv4Addr, u16)>,
}

impl Packet {
    pub fn new(origin: Origin, src: Ipv4Addr, dst: Ipv4Addr, proto: Proto, dport: u16) -> Self {
        Packet { src, dst, proto, dport, origin, affinity: None }
    }

    pub fn remembered_by(mut self, endpoint: (Ipv4Addr, u16)) -> Self {
        self.affinity = Some(endpoint);
        self
    }
}

/// One endpoint a traced packet can be DNATed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The source is rewritten on this path too (masquerade in postrouting).
    pub masquerade: bool,
    /// This path records the client in an affinity set, with this timeout (e.g. `10800s`).
    pub affinity_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// DNATed to one of these (every endpoint the rules can pick, in rule order).
    Dnat { candidates: Vec<Candidate> },
    /// Rejected: the sender gets ICMP port unreachable ("Connection refused" at once).
    Reject,
    /// Dropped silently (the sender times out).
    Drop,
    /// Not translated: routed as it is.
    Untouched { masquerade: bool },
}

impl Outcome {
    /// The endpoints of a DNAT outcome (empty otherwise).
    pub fn endpoints(&self) -> Vec<(Ipv4Addr, u16)> {
        match self {
            Outcome::Dnat { candidates } => candidates.iter().map(|c| (c.ip, c.port)).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("nft script, command at line {line}: {message}: {command}")]
    Script { line: usize, command: String, message: String },
    #[error("trace of {packet}: {message}")]
    Trace { packet: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hook {
    kind: &'static str,
    hook: &'static str,
    priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainState {
    hook: Option<Hook>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SetState {
    keyword: String,
    spec: String,
    /// key → value ("" for plain sets).
    elements: BTreeMap<String, String>,
}

/// A table as the loaded scripts left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    exists: bool,
    chains: BTreeMap<String, ChainState>,
    sets: BTreeMap<String, SetState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Ip(Ipv4Addr),
    Cidr(Ipv4Cidr),
    Set(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accept,
    Drop,
    Reject,
    Return,
    Jump(String),
    Goto(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    CtStateNew,
    Saddr {
        negate: bool,
        addr: Addr,
    },
    Daddr {
        negate: bool,
        addr: Addr,
    },
    L4proto(String),
    /// `meta mark & MASK == VALUE`
    MarkIs {
        mask: u32,
        value: u32,
    },
    /// `numgen random mod M == K`
    Numgen {
        modulus: u32,
        value: u32,
    },
    /// `meta mark set meta mark OP X`
    SetMark {
        op: char,
        operand: u32,
    },
    /// `update @SET { ip saddr timeout T }`
    Update {
        set: String,
        timeout: Option<String>,
    },
    Dnat {
        ip: Ipv4Addr,
        port: u16,
    },
    Masquerade,
    /// `ip daddr . meta l4proto . th dport vmap @MAP`
    Vmap(String),
    /// `meta l4proto . th dport vmap @MAP` (node ports: protocol and port only)
    PortVmap(String),
    Verdict(Verdict),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    text: String,
    exprs: Vec<Expr>,
}

impl Rule {
    fn chain_refs(&self) -> impl Iterator<Item = &str> {
        self.exprs.iter().filter_map(|e| match e {
            Expr::Verdict(Verdict::Jump(c) | Verdict::Goto(c)) => Some(c.as_str()),
            _ => None,
        })
    }

    fn set_refs(&self) -> impl Iterator<Item = &str> {
        self.exprs.iter().filter_map(|e| match e {
            Expr::Saddr { addr: Addr::Set(s), .. } | Expr::Daddr { addr: Addr::Set(s), .. } => Some(s.as_str()),
            Expr::Update { set, .. } | Expr::Vmap(set) | Expr::PortVmap(set) => Some(set.as_str()),
            _ => None,
        })
    }
}

/// Loads a script into an empty table.
pub fn load(script: &str) -> Result<Table, TraceError> {
    let mut table = Table::default();
    table.apply(script)?;
    Ok(table)
}

/// Splits a script into commands (a command spans lines while braces are open) with the line
/// each starts on, and its tokens (`{ } , ;` are tokens of their own). A `table ip emu { … }`
/// block becomes the `add chain` and `add rule` commands it stands for.
fn commands(script: &str) -> Vec<(usize, String, Vec<String>)> {
    enum Block {
        Outside,
        Table,
        Chain(String),
    }
    let mut out = Vec::new();
    let mut push = |line: usize, command: String| {
        let tokens = tokenize(&command);
        out.push((line, command, tokens));
    };
    let mut current = String::new();
    let mut start = 0;
    let mut depth = 0i32;
    let mut block = Block::Outside;
    for (i, line) in script.lines().enumerate() {
        let line = line.trim();
        let skip = line.is_empty() || line.starts_with('#');
        match &block {
            Block::Table if skip => {}
            Block::Table if line == "}" => block = Block::Outside,
            Block::Table => match line.strip_prefix("chain ").and_then(|r| r.strip_suffix('{')) {
                Some(name) => {
                    let name = name.trim().to_string();
                    push(i + 1, format!("add chain ip emu {name}"));
                    block = Block::Chain(name);
                }
                // Not part of the subset: reported as an unknown command.
                None => push(i + 1, line.to_string()),
            },
            Block::Chain(_) if skip => {}
            Block::Chain(_) if line == "}" => block = Block::Table,
            Block::Chain(name) => push(i + 1, format!("add rule ip emu {name} {line}")),
            Block::Outside if current.is_empty() && skip => {}
            Block::Outside if current.is_empty() && line == "table ip emu {" => {
                // Like nft: the block creates the table when needed.
                push(i + 1, "add table ip emu".to_string());
                block = Block::Table;
            }
            Block::Outside => {
                if current.is_empty() {
                    start = i + 1;
                } else {
                    current.push(' ');
                }
                current.push_str(line);
                depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
                if depth <= 0 {
                    push(start, std::mem::take(&mut current));
                    depth = 0;
                }
            }
        }
    }
    if !current.is_empty() {
        push(start, current);
    }
    out
}

fn tokenize(s: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if matches!(c, '{' | '}' | ',' | ';') {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

impl Table {
    /// Applies a script as one transaction: on error the table is unchanged.
    pub fn apply(&mut self, script: &str) -> Result<(), TraceError> {
        let mut next = self.clone();
        for (line, command, tokens) in commands(script) {
            next.command(&tokens).map_err(|message| TraceError::Script { line, command: command.clone(), message })?;
        }
        *self = next;
        Ok(())
    }

    pub fn exists(&self) -> bool {
        self.exists
    }

    pub fn chain_names(&self) -> Vec<&str> {
        self.chains.keys().map(String::as_str).collect()
    }

    /// The rules of a chain as written.
    pub fn chain_rules(&self, chain: &str) -> Option<Vec<&str>> {
        self.chains.get(chain).map(|c| c.rules.iter().map(|r| r.text.as_str()).collect())
    }

    pub fn set_names(&self) -> Vec<&str> {
        self.sets.keys().map(String::as_str).collect()
    }

    /// Elements of a set or map as `key` or `key : value`.
    pub fn set_elements(&self, set: &str) -> Option<Vec<String>> {
        self.sets.get(set).map(|s| s.elements.iter().map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k} : {v}") }).collect())
    }

    /// Adds an element as the packet path would (`update @set`), to check that syncs keep it.
    pub fn add_dynamic_element(&mut self, set: &str, key: &str) -> Result<(), String> {
        let s = self.sets.get_mut(set).ok_or_else(|| format!("no set {set}"))?;
        s.elements.insert(key.to_string(), String::new());
        Ok(())
    }

    fn command(&mut self, t: &[String]) -> Result<(), String> {
        let words: Vec<&str> = t.iter().map(String::as_str).collect();
        let (verb, what, rest) = match words.as_slice() {
            [verb, what, "ip", "emu", rest @ ..] => (*verb, *what, rest),
            _ => return Err("not a command on table ip emu".into()),
        };
        if what == "table" {
            return self.table_command(verb, rest);
        }
        if !self.exists {
            return Err("table ip emu does not exist".into());
        }
        let (name, rest) = rest.split_first().ok_or("missing name")?;
        let name = name.to_string();
        match (verb, what) {
            ("add", "chain") => self.add_chain(name, rest),
            ("flush", "chain") => {
                self.chain_mut(&name)?.rules.clear();
                Ok(())
            }
            ("delete", "chain") => self.delete_chain(&name),
            ("add", "set" | "map") => self.add_set(name, what, rest),
            ("flush", "set" | "map") => {
                self.set_mut(&name, what)?.elements.clear();
                Ok(())
            }
            ("delete", "set" | "map") => self.delete_set(&name, what),
            ("add", "rule") => self.add_rule(&name, rest),
            ("add", "element") => self.add_elements(&name, rest),
            ("delete", "element") => self.delete_elements(&name, rest),
            _ => Err(format!("unsupported command {verb} {what}")),
        }
    }

    fn table_command(&mut self, verb: &str, rest: &[&str]) -> Result<(), String> {
        if !rest.is_empty() {
            return Err("unexpected words after the table".into());
        }
        match verb {
            "add" => self.exists = true,
            "flush" if self.exists => self.chains.values_mut().for_each(|c| c.rules.clear()),
            "delete" if self.exists => *self = Table::default(),
            "flush" | "delete" => return Err("table ip emu does not exist".into()),
            _ => return Err(format!("unsupported command {verb} table")),
        }
        Ok(())
    }

    fn chain_mut(&mut self, name: &str) -> Result<&mut ChainState, String> {
        self.chains.get_mut(name).ok_or_else(|| format!("no chain {name}"))
    }

    fn set_mut(&mut self, name: &str, keyword: &str) -> Result<&mut SetState, String> {
        match self.sets.get_mut(name) {
            Some(s) if s.keyword == keyword => Ok(s),
            _ => Err(format!("no {keyword} {name}")),
        }
    }

    fn add_chain(&mut self, name: String, rest: &[&str]) -> Result<(), String> {
        let hook = match rest {
            [] => None,
            ["{", "type", kind, "hook", hook, "priority", prio, ";", "policy", "accept", ";", "}"] => {
                let kind = match *kind {
                    "filter" => "filter",
                    "nat" => "nat",
                    k => return Err(format!("unsupported chain type {k}")),
                };
                let hook = match *hook {
                    "prerouting" => "prerouting",
                    "output" => "output",
                    "postrouting" => "postrouting",
                    "input" => "input",
                    "forward" => "forward",
                    h => return Err(format!("unsupported hook {h}")),
                };
                let priority = prio.parse().map_err(|_| format!("bad priority {prio}"))?;
                Some(Hook { kind, hook, priority })
            }
            _ => return Err("unsupported chain declaration".into()),
        };
        match self.chains.get(&name) {
            Some(existing) if existing.hook != hook => {
                // The kernel answers EOPNOTSUPP (or EEXIST) to a base chain re-declared otherwise.
                Err(format!("chain {name} exists with another declaration"))
            }
            Some(_) => Ok(()),
            None => {
                self.chains.insert(name, ChainState { hook, rules: Vec::new() });
                Ok(())
            }
        }
    }

    fn references_to_chain(&self, name: &str) -> usize {
        let from_rules = self
            .chains
            .iter()
            .filter(|(c, _)| c.as_str() != name)
            .flat_map(|(_, c)| c.rules.iter())
            .flat_map(Rule::chain_refs)
            .filter(|&r| r == name)
            .count();
        let target = [format!("goto {name}"), format!("jump {name}")];
        let from_maps = self.sets.values().flat_map(|s| s.elements.values()).filter(|v| target.contains(v)).count();
        from_rules + from_maps
    }

    fn delete_chain(&mut self, name: &str) -> Result<(), String> {
        if !self.chains.contains_key(name) {
            return Err(format!("no chain {name}"));
        }
        if self.references_to_chain(name) > 0 {
            return Err(format!("chain {name} is still referenced (EBUSY)"));
        }
        self.chains.remove(name);
        Ok(())
    }

    fn add_set(&mut self, name: String, keyword: &str, rest: &[&str]) -> Result<(), String> {
        let spec = match rest {
            ["{", inner @ .., "}"] => inner.join(" "),
            _ => return Err("a set declaration needs { type … }".into()),
        };
        match self.sets.get(&name) {
            Some(s) if s.keyword != keyword || s.spec != spec => Err(format!("{keyword} {name} exists with another declaration (EEXIST)")),
            Some(_) => Ok(()),
            None => {
                self.sets.insert(name, SetState { keyword: keyword.to_string(), spec, elements: BTreeMap::new() });
                Ok(())
            }
        }
    }

    fn delete_set(&mut self, name: &str, keyword: &str) -> Result<(), String> {
        self.set_mut(name, keyword)?;
        let used = self.chains.values().flat_map(|c| c.rules.iter()).flat_map(Rule::set_refs).any(|s| s == name);
        if used {
            return Err(format!("{keyword} {name} is still referenced (EBUSY)"));
        }
        self.sets.remove(name);
        Ok(())
    }

    fn add_rule(&mut self, chain: &str, words: &[&str]) -> Result<(), String> {
        let rule = parse_rule(words)?;
        for target in rule.chain_refs() {
            if !self.chains.contains_key(target) {
                return Err(format!("rule refers to missing chain {target}"));
            }
        }
        for set in rule.set_refs() {
            if !self.sets.contains_key(set) {
                return Err(format!("rule refers to missing set {set}"));
            }
        }
        self.chain_mut(chain)?.rules.push(rule);
        Ok(())
    }

    /// `{ key [: value] , … }` as (key, value) pairs, tokens joined by one space.
    fn element_list(words: &[&str]) -> Result<Vec<(String, String)>, String> {
        let inner = match words {
            ["{", inner @ .., "}"] => inner,
            _ => return Err("elements need { … }".into()),
        };
        inner
            .split(|w| *w == ",")
            .filter(|e| !e.is_empty())
            .map(|e| match e.iter().position(|w| *w == ":") {
                Some(i) => Ok((e[..i].join(" "), e[i + 1..].join(" "))),
                None => Ok((e.join(" "), String::new())),
            })
            .collect()
    }

    fn add_elements(&mut self, set: &str, words: &[&str]) -> Result<(), String> {
        let list = Self::element_list(words)?;
        for (_, value) in &list {
            if let Some(target) = value.strip_prefix("goto ").or(value.strip_prefix("jump ")) {
                if !self.chains.contains_key(target) {
                    return Err(format!("element refers to missing chain {target}"));
                }
            }
        }
        let s = self.sets.get_mut(set).ok_or_else(|| format!("no set or map {set}"))?;
        for (key, value) in list {
            match s.elements.get(&key) {
                Some(v) if *v != value => {
                    return Err(format!("element {key} exists with another value (EEXIST)"));
                }
                _ => {
                    s.elements.insert(key, value);
                }
            }
        }
        Ok(())
    }

    fn delete_elements(&mut self, set: &str, words: &[&str]) -> Result<(), String> {
        let list = Self::element_list(words)?;
        let s = self.sets.get_mut(set).ok_or_else(|| format!("no set or map {set}"))?;
        for (key, _) in list {
            s.elements.remove(&key).ok_or_else(|| format!("no element {key} (ENOENT)"))?;
        }
        Ok(())
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("bad number {s}"))
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    if let Some(set) = s.strip_prefix('@') {
        return Ok(Addr::Set(set.to_string()));
    }
    if s.contains('/') {
        return s.parse().map(Addr::Cidr).map_err(|e| format!("{e}"));
    }
    s.parse().map(Addr::Ip).map_err(|_| format!("bad address {s}"))
}

/// Parses the rule subset the renderers write.
fn parse_rule(words: &[&str]) -> Result<Rule, String> {
    let mut exprs = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        let (expr, used) = match rest {
            ["ct", "state", "new", ..] => (Expr::CtStateNew, 3),
            ["ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport", "vmap", map, ..] => {
                let map = map.strip_prefix('@').ok_or("vmap needs @map")?;
                (Expr::Vmap(map.to_string()), 10)
            }
            ["ip", field @ ("saddr" | "daddr"), "!=", addr, ..] | ["ip", field @ ("saddr" | "daddr"), addr, ..] => {
                let negate = rest[2] == "!=";
                let addr = parse_addr(addr)?;
                let expr = if *field == "saddr" { Expr::Saddr { negate, addr } } else { Expr::Daddr { negate, addr } };
                (expr, if negate { 4 } else { 3 })
            }
            ["meta", "l4proto", ".", "th", "dport", "vmap", map, ..] => {
                let map = map.strip_prefix('@').ok_or("vmap needs @map")?;
                (Expr::PortVmap(map.to_string()), 7)
            }
            ["meta", "l4proto", proto, ..] => (Expr::L4proto(proto.to_string()), 3),
            ["meta", "mark", "&", mask, "==", value, ..] => (Expr::MarkIs { mask: parse_u32(mask)?, value: parse_u32(value)? }, 6),
            ["meta", "mark", "set", "meta", "mark", op @ ("|" | "^" | "&"), operand, ..] => {
                (Expr::SetMark { op: op.chars().next().unwrap_or('|'), operand: parse_u32(operand)? }, 7)
            }
            ["numgen", "random", "mod", m, "==", k, ..] => {
                let modulus = parse_u32(m)?;
                if modulus == 0 {
                    return Err("numgen mod 0".into());
                }
                (Expr::Numgen { modulus, value: parse_u32(k)? }, 6)
            }
            ["update", set, "{", "ip", "saddr", "timeout", t, "}", ..] => {
                (Expr::Update { set: set.strip_prefix('@').ok_or("update needs @set")?.to_string(), timeout: Some(t.to_string()) }, 8)
            }
            ["update", set, "{", "ip", "saddr", "}", ..] => {
                (Expr::Update { set: set.strip_prefix('@').ok_or("update needs @set")?.to_string(), timeout: None }, 6)
            }
            ["dnat", "ip", "to", target, ..] => {
                let (ip, port) = target.split_once(':').ok_or("dnat needs ip:port")?;
                let ip = ip.parse().map_err(|_| format!("bad dnat address {ip}"))?;
                let port = port.parse().map_err(|_| format!("bad dnat port {port}"))?;
                if !exprs.iter().any(|e| matches!(e, Expr::L4proto(_))) {
                    return Err("dnat to a port needs a transport protocol match".into());
                }
                (Expr::Dnat { ip, port }, 4)
            }
            ["masquerade", "fully-random", ..] => (Expr::Masquerade, 2),
            ["masquerade", ..] => (Expr::Masquerade, 1),
            ["accept", ..] => (Expr::Verdict(Verdict::Accept), 1),
            ["drop", ..] => (Expr::Verdict(Verdict::Drop), 1),
            ["reject", ..] => (Expr::Verdict(Verdict::Reject), 1),
            ["return", ..] => (Expr::Verdict(Verdict::Return), 1),
            ["jump", chain, ..] => (Expr::Verdict(Verdict::Jump(chain.to_string())), 2),
            ["goto", chain, ..] => (Expr::Verdict(Verdict::Goto(chain.to_string())), 2),
            _ => return Err(format!("unsupported rule syntax at `{}`", rest.join(" "))),
        };
        let is_verdict = matches!(expr, Expr::Verdict(_) | Expr::Vmap(_) | Expr::PortVmap(_) | Expr::Dnat { .. } | Expr::Masquerade);
        exprs.push(expr);
        rest = &rest[used..];
        if is_verdict && !rest.is_empty() {
            return Err(format!("words after the rule's verdict: `{}`", rest.join(" ")));
        }
    }
    Ok(Rule { text: words.join(" "), exprs })
}

/// The state of one path through the rules.
#[derive(Debug, Clone, Default)]
struct Path {
    mark: u32,
    dnat: Option<(Ipv4Addr, u16)>,
    masquerade: bool,
    affinity_timeout: Option<String>,
}

/// How the evaluation of a chain ended on one path.
#[derive(Debug, Clone)]
enum Flow {
    /// Fell off the end or `return`ed: the caller goes on with its next rule.
    Continue(Path),
    /// The base chain is done with the packet (accept, or a NAT statement).
    Accept(Path),
    Drop,
    Reject,
}

/// Deep enough for any table the renderers write; a loop in the rules ends here.
const MAX_DEPTH: usize = 16;

impl Table {
    /// Follows the first packet of a connection through the hooks of its origin (prerouting or
    /// output, base chains in priority order), then postrouting.
    pub fn trace(&self, packet: &Packet) -> Result<Outcome, TraceError> {
        let err = |message: String| TraceError::Trace { packet: format!("{packet:?}"), message };
        let first_hook = match packet.origin {
            Origin::Pod => "prerouting",
            Origin::Node => "output",
        };
        let affinity = self.affinity_owners();
        let mut paths = vec![Path::default()];
        // Paths that ended in a drop or reject.
        let mut ended: Vec<Outcome> = Vec::new();
        for hook in [first_hook, "postrouting"] {
            let mut bases: Vec<(&String, &ChainState)> =
                self.chains.iter().filter(|(_, c)| c.hook.is_some_and(|h| h.hook == hook)).collect();
            bases.sort_by_key(|(name, c)| (c.hook.map(|h| h.priority), name.as_str()));
            for (name, base) in bases {
                let nat = base.hook.is_some_and(|h| h.kind == "nat");
                let mut next = Vec::new();
                for path in paths {
                    // A nat chain sees a connection once; after a NAT it is done at this hook.
                    if nat && path.dnat.is_some() && hook != "postrouting" {
                        next.push(path);
                        continue;
                    }
                    let packet = self.rewritten(packet, &path);
                    for flow in self.eval(name, &packet, path, &affinity, 0).map_err(err)? {
                        match flow {
                            Flow::Continue(p) | Flow::Accept(p) => next.push(p),
                            Flow::Drop => ended.push(Outcome::Drop),
                            Flow::Reject => ended.push(Outcome::Reject),
                        }
                    }
                }
                paths = next;
            }
        }
        if let Some(first) = ended.first() {
            // The model has no half-rejected packet: a drop or reject must end every path.
            if !paths.is_empty() || ended.iter().any(|o| o != first) {
                return Err(err(format!("{ended:?} on some paths only")));
            }
            return Ok(first.clone());
        }
        if paths.iter().all(|p| p.dnat.is_none()) {
            let masquerade = paths.iter().any(|p| p.masquerade);
            return Ok(Outcome::Untouched { masquerade });
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        for p in paths {
            let (ip, port) = p.dnat.ok_or_else(|| err("some paths are DNATed, others not".into()))?;
            let c = Candidate { ip, port, masquerade: p.masquerade, affinity_timeout: p.affinity_timeout };
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
        Ok(Outcome::Dnat { candidates })
    }

    /// The packet as the kernel sees it after this path's DNAT.
    fn rewritten(&self, packet: &Packet, path: &Path) -> Packet {
        let mut p = packet.clone();
        if let Some((ip, port)) = path.dnat {
            p.dst = ip;
            p.dport = port;
        }
        p
    }

    /// Affinity set → the endpoint of the chain that updates it.
    fn affinity_owners(&self) -> BTreeMap<&str, (Ipv4Addr, u16)> {
        let mut owners = BTreeMap::new();
        for chain in self.chains.values() {
            let exprs = || chain.rules.iter().flat_map(|r| r.exprs.iter());
            let target = exprs().find_map(|e| match e {
                Expr::Dnat { ip, port } => Some((*ip, *port)),
                _ => None,
            });
            for e in exprs() {
                if let (Expr::Update { set, .. }, Some(t)) = (e, target) {
                    owners.insert(set.as_str(), t);
                }
            }
        }
        owners
    }

    fn addr_matches(&self, addr: &Addr, ip: Ipv4Addr, packet: &Packet, affinity: &BTreeMap<&str, (Ipv4Addr, u16)>) -> bool {
        match addr {
            Addr::Ip(a) => *a == ip,
            Addr::Cidr(c) => c.contains(ip),
            Addr::Set(name) => match affinity.get(name.as_str()) {
                // A dynamic affinity set holds the clients the packet says it holds.
                Some(owner) => ip == packet.src && packet.affinity == Some(*owner),
                None => self.sets.get(name).is_some_and(|s| s.elements.contains_key(&ip.to_string())),
            },
        }
    }

    fn eval(
        &self,
        chain: &str,
        packet: &Packet,
        path: Path,
        affinity: &BTreeMap<&str, (Ipv4Addr, u16)>,
        depth: usize,
    ) -> Result<Vec<Flow>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("chain {chain}: jumps nested too deep (a loop?)"));
        }
        let rules = &self.chains.get(chain).ok_or_else(|| format!("no chain {chain}"))?.rules;
        self.eval_rules(rules, 0, 0, packet, path, affinity, depth)
    }

    /// Evaluates `rules[index..]` of a chain, starting at expression `expr` of the first one (a
    /// numgen branch resumes mid-rule).
    #[allow(clippy::too_many_arguments)]
    fn eval_rules(
        &self,
        rules: &[Rule],
        index: usize,
        expr: usize,
        packet: &Packet,
        mut path: Path,
        affinity: &BTreeMap<&str, (Ipv4Addr, u16)>,
        depth: usize,
    ) -> Result<Vec<Flow>, String> {
        let Some(rule) = rules.get(index) else {
            return Ok(vec![Flow::Continue(path)]);
        };
        let next_rule = |path: Path| self.eval_rules(rules, index + 1, 0, packet, path, affinity, depth);
        for (i, e) in rule.exprs.iter().enumerate().skip(expr) {
            let matched = match e {
                Expr::CtStateNew => true,
                Expr::Saddr { negate, addr } => self.addr_matches(addr, packet.src, packet, affinity) != *negate,
                Expr::Daddr { negate, addr } => self.addr_matches(addr, packet.dst, packet, affinity) != *negate,
                Expr::L4proto(p) => p == packet.proto.nft(),
                Expr::MarkIs { mask, value } => path.mark & mask == *value,
                Expr::Numgen { .. } => {
                    // Both ways: the rest of this rule, and the next rule.
                    let mut flows = self.eval_rules(rules, index, i + 1, packet, path.clone(), affinity, depth)?;
                    flows.extend(next_rule(path)?);
                    return Ok(flows);
                }
                Expr::SetMark { op, operand } => {
                    path.mark = match op {
                        '|' => path.mark | operand,
                        '^' => path.mark ^ operand,
                        _ => path.mark & operand,
                    };
                    true
                }
                Expr::Update { timeout, .. } => {
                    path.affinity_timeout = Some(timeout.clone().unwrap_or_default());
                    true
                }
                Expr::Dnat { ip, port } => {
                    path.dnat = Some((*ip, *port));
                    return Ok(vec![Flow::Accept(path)]);
                }
                Expr::Masquerade => {
                    path.masquerade = true;
                    return Ok(vec![Flow::Accept(path)]);
                }
                Expr::Vmap(map) | Expr::PortVmap(map) => {
                    let key = if matches!(e, Expr::PortVmap(_)) {
                        format!("{} . {}", packet.proto.nft(), packet.dport)
                    } else {
                        format!("{} . {} . {}", packet.dst, packet.proto.nft(), packet.dport)
                    };
                    let value = self.sets.get(map).ok_or_else(|| format!("no map {map}"))?.elements.get(&key);
                    match value.map(String::as_str) {
                        None => false,
                        Some(v) => {
                            let words: Vec<&str> = v.split_whitespace().collect();
                            let verdict = match words.as_slice() {
                                ["goto", c] => Verdict::Goto(c.to_string()),
                                ["jump", c] => Verdict::Jump(c.to_string()),
                                ["drop"] => Verdict::Drop,
                                ["accept"] => Verdict::Accept,
                                _ => return Err(format!("unsupported verdict {v} in map {map}")),
                            };
                            return self.verdict(&verdict, packet, path, affinity, depth, next_rule);
                        }
                    }
                }
                Expr::Verdict(v) => return self.verdict(v, packet, path, affinity, depth, next_rule),
            };
            if !matched {
                return next_rule(path);
            }
        }
        next_rule(path)
    }

    fn verdict(
        &self,
        verdict: &Verdict,
        packet: &Packet,
        path: Path,
        affinity: &BTreeMap<&str, (Ipv4Addr, u16)>,
        depth: usize,
        next_rule: impl Fn(Path) -> Result<Vec<Flow>, String>,
    ) -> Result<Vec<Flow>, String> {
        match verdict {
            Verdict::Accept => Ok(vec![Flow::Accept(path)]),
            Verdict::Drop => Ok(vec![Flow::Drop]),
            Verdict::Reject => Ok(vec![Flow::Reject]),
            Verdict::Return => Ok(vec![Flow::Continue(path)]),
            // goto: the target's end returns to our caller, like our own end would.
            Verdict::Goto(c) => self.eval(c, packet, path, affinity, depth + 1),
            Verdict::Jump(c) => {
                let mut flows = Vec::new();
                for flow in self.eval(c, packet, path, affinity, depth + 1)? {
                    match flow {
                        Flow::Continue(p) => flows.extend(next_rule(p)?),
                        other => flows.push(other),
                    }
                }
                Ok(flows)
            }
        }
    }
}

/// Rules of every chain and elements of every set: what two tables must share to behave alike.
/// (Equality of [`Table`] compares exactly this.)
pub fn describe(table: &Table) -> String {
    let mut out = String::new();
    for (name, chain) in &table.chains {
        out.push_str(&format!("chain {name} {:?}\n", chain.hook));
        for r in &chain.rules {
            out.push_str(&format!("  {}\n", r.text));
        }
    }
    for (name, set) in &table.sets {
        out.push_str(&format!("{} {name} {{ {} }}\n", set.keyword, set.spec));
        for (k, v) in &set.elements {
            out.push_str(&format!("  {k} : {v}\n"));
        }
    }
    out
}

/// Names of the chains (and sets) in `a` but not `b`, for readable test failures.
pub fn missing(a: &Table, b: &Table) -> BTreeSet<String> {
    a.chains.keys().chain(a.sets.keys()).filter(|n| !b.chains.contains_key(*n) && !b.sets.contains_key(*n)).cloned().collect()
}
