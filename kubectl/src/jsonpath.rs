//! `-o jsonpath=` (CLI-22) and `-o custom-columns=` (CLI-23), with client-go's JSONPath dialect:
//! text outside `{}` is literal; inside: `.a.b`, `['a']`, `[0]`, `[1:3:2]`, `[*]`, `.*`, `..name`,
//! `[0,2]`, `[?(@.type=="InternalIP")]`, `{range ...}...{end}`, `{"\n"}` literals. Missing keys
//! print nothing (kubectl's `--allow-missing-template-keys=true`); several results of one
//! expression are joined by a space; maps and lists print as compact JSON.

use std::borrow::Cow;

use serde_json::Value;

use super::PrintError;
use crate::gofmt::{go_float, go_sprint};
use emu_api::json::canonical_json;

/// Renders `template` against `root` (an object, or a List for several objects).
pub fn jsonpath(template: &str, root: &Value) -> Result<String, PrintError> {
    let nodes = parse(template).map_err(|reason| PrintError::JsonPathParse { template: template.into(), reason })?;
    let results = find_results(&nodes, root).map_err(|reason| PrintError::JsonPathExecute { template: template.into(), reason })?;
    let mut out = String::new();
    for values in results {
        let texts: Vec<String> = values.iter().map(|v| result_text(v)).collect();
        out.push_str(&texts.join(" "));
    }
    Ok(out)
}

/// A parsed template, evaluated on many objects (kubectl's sorter parses its field once).
pub(crate) struct Template(Vec<Node>);

impl Template {
    /// Parses `template`; the error is client-go's parser's reason.
    pub(crate) fn parse(template: &str) -> Result<Template, String> {
        parse(template).map(Template)
    }

    /// The values of the first expression for `root`, as the first list of client-go's
    /// `FindResults` with missing keys allowed: empty when the field is missing.
    pub(crate) fn first_values(&self, root: &Value) -> Result<Vec<Value>, String> {
        let results = find_results(&self.0, root)?;
        Ok(results.into_iter().next().unwrap_or_default().into_iter().map(Cow::into_owned).collect())
    }
}

/// A custom-columns table: `spec` is `HEADER:path,HEADER:path`; one row per object.
pub fn custom_columns(spec: &str, objects: &[Value]) -> Result<String, PrintError> {
    if spec.is_empty() {
        return Err(PrintError::NoCustomColumns);
    }
    let mut headers = Vec::new();
    let mut columns = Vec::new();
    for part in spec.split(',') {
        let (header, path) = part.split_once(':').ok_or_else(|| PrintError::CustomColumnSpec(part.into()))?;
        let template = relaxed_path(path)?;
        let nodes = parse(&template).map_err(|reason| PrintError::JsonPathParse { template: template.clone(), reason })?;
        headers.push(header.to_string());
        columns.push((template, nodes));
    }
    let mut rows = vec![headers];
    for obj in objects {
        let mut row = Vec::with_capacity(columns.len());
        for (template, nodes) in &columns {
            let results = find_results(nodes, obj).map_err(|reason| PrintError::JsonPathExecute { template: template.clone(), reason })?;
            let mut cells: Vec<String> = Vec::new();
            if results.first().is_none_or(Vec::is_empty) {
                cells.push("<none>".into());
            }
            cells.extend(results.iter().flatten().map(|v| go_sprint(v)));
            row.push(cells.join(","));
        }
        rows.push(row);
    }
    Ok(super::tabwrite(&rows, 6, 3))
}

/// kubectl's `RelaxedJSONPathExpression`: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean `{.a.b}`.
fn relaxed_path(path: &str) -> Result<String, PrintError> {
    if path.is_empty() {
        return Ok(String::new());
    }
    let inner = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path);
    let inner = inner.strip_prefix('.').unwrap_or(inner);
    if inner.is_empty() || inner.contains(['{', '}']) {
        return Err(PrintError::CustomColumnPath(path.into()));
    }
    Ok(format!("{{.{inner}}}"))
}

/// How one result prints: maps and lists as compact JSON, scalars as Go's `fmt.Print`.
fn result_text(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => canonical_json(v),
        Value::Number(n) if !n.is_i64() && !n.is_u64() => go_float(n.as_f64().unwrap_or(0.0)),
        other => go_sprint(other),
    }
}

// ---- syntax ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Wildcard,
    Recursive,
    Slice { start: Option<i64>, end: End, step: Option<i64> },
    Union(Vec<Vec<Step>>),
    Filter { left: Vec<Step>, op: String, right: Vec<Step> },
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ident(String),
}

/// The end of a slice: absent (`[1:]`), given, or implied by an index (`[3]` is `[3:4]`).
#[derive(Debug, Clone, Copy)]
enum End {
    Unknown,
    Known(i64),
    Derived(i64),
}

#[derive(Debug)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

fn parse(template: &str) -> Result<Vec<Node>, String> {
    let mut p = Parser { chars: template.chars().collect(), pos: 0 };
    // Flat list first (text and actions), then `range`/`end` pairs are folded into a tree.
    let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut text = String::new();
    while let Some(c) = p.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        if !text.is_empty() {
            nodes.push(Node::Text(std::mem::take(&mut text)));
        }
        let steps = p.steps(true)?;
        match steps.first() {
            Some(Step::Ident(id)) if id == "range" => {
                stack.push((steps[1..].to_vec(), std::mem::take(&mut nodes)));
            }
            Some(Step::Ident(id)) if id == "end" => {
                let (path, outer) = stack.pop().ok_or_else(|| "not in range, nothing to end".to_string())?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            }
            _ => nodes.push(Node::Path(steps)),
        }
    }
    if !text.is_empty() {
        nodes.push(Node::Text(text));
    }
    // A range without `end` runs to the end of the template, as in client-go.
    while let Some((path, outer)) = stack.pop() {
        let body = std::mem::replace(&mut nodes, outer);
        nodes.push(Node::Range(path, body));
    }
    Ok(nodes)
}

/// Parses a sub-expression (union member, filter operand) as if it were wrapped in `{}`.
fn parse_sub(text: &str) -> Result<Vec<Step>, String> {
    Parser { chars: text.chars().collect(), pos: 0 }.steps(false)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

fn is_terminator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

impl Parser {
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        let rest = self.chars.get(self.pos..).unwrap_or_default();
        rest.len() >= s.chars().count() && rest.iter().zip(s.chars()).all(|(a, b)| *a == b)
    }

    fn slice(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    /// The steps of one action, up to and including its `}` when `braced`.
    fn steps(&mut self, braced: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            if braced && self.starts_with("}") {
                self.pos += 1;
                return Ok(steps);
            }
            if self.starts_with("[?(") {
                steps.push(self.filter()?);
                continue;
            }
            if self.starts_with("..") {
                if matches!(steps.last(), Some(Step::Recursive)) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                steps.push(Step::Recursive);
                if self.peek().is_some_and(is_alphanumeric) {
                    steps.push(self.field());
                }
                continue;
            }
            let Some(c) = self.next() else {
                return if braced { Err("unclosed action".into()) } else { Ok(steps) };
            };
            match c {
                '\r' | '\n' => return Err("unclosed action".into()),
                ' ' | '@' | '$' => {}
                '[' => steps.extend(self.array()?),
                '"' | '\'' => steps.push(self.quote(c)?),
                '.' => steps.push(self.field()),
                '+' | '-' => {
                    self.pos -= 1;
                    steps.push(self.number()?);
                }
                c if c.is_numeric() => {
                    self.pos -= 1;
                    steps.push(self.number()?);
                }
                c if is_alphanumeric(c) => {
                    self.pos -= 1;
                    steps.push(self.identifier());
                }
                c => return Err(format!("unrecognized character in action: U+{:04X} {c:?}", c as u32)),
            }
        }
    }

    /// A field name after `.`; `\` escapes the next character (`{.metadata.labels.app\.kubernetes\.io/name}`).
    fn field(&mut self) -> Step {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.pos = (self.pos + 2).min(self.chars.len());
            } else if is_terminator(c) {
                break;
            } else {
                self.pos += 1;
            }
        }
        let raw = self.slice(start, self.pos);
        if raw == "*" {
            Step::Wildcard
        } else {
            Step::Field(raw.replace('\\', ""))
        }
    }

    fn identifier(&mut self) -> Step {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_terminator(c)) {
            self.pos += 1;
        }
        match self.slice(start, self.pos).as_str() {
            "true" => Step::Bool(true),
            "false" => Step::Bool(false),
            other => Step::Ident(other.to_string()),
        }
    }

    fn number(&mut self) -> Result<Step, String> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_numeric()) {
            self.pos += 1;
        }
        let text = self.slice(start, self.pos);
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Step::Int(i));
        }
        text.parse::<f64>().map(Step::Float).map_err(|_| format!("cannot parse number {text}"))
    }

    fn quote(&mut self, quote: char) -> Result<Step, String> {
        let start = self.pos - 1;
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote && self.chars[self.pos - 2] != '\\' => break,
                Some(_) => {}
            }
        }
        let raw = self.slice(start, self.pos);
        unquote(&raw).map(Step::Text).ok_or_else(|| format!("unquote string {raw} error invalid syntax"))
    }

    /// `[...]` after the `[`: union, quoted key or slice.
    fn array(&mut self) -> Result<Vec<Step>, String> {
        let start = self.pos;
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                Some(_) => {}
            }
        }
        let mut text = self.slice(start, self.pos - 1);
        if text == "*" {
            text = ":".into();
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let union = parts.iter().map(|part| parse_sub(&format!("[{}]", part.trim_matches(' ')))).collect::<Result<Vec<_>, _>>()?;
            return Ok(vec![Step::Union(union)]);
        }
        if let Some(key) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            if text.len() >= 2 && !key.contains('\'') {
                // client-go re-parses the key as `.key`, so `['a.b']` means `.a.b`.
                return parse_sub(&format!(".{key}"));
            }
        }
        slice(&text).map(|s| vec![s])
    }

    /// `[?(left op right)]` or `[?(@.exists)]`, after seeing `[?(`.
    fn filter(&mut self) -> Result<Step, String> {
        self.pos += 3;
        let start = self.pos;
        let (mut begin, mut end, mut pair) = (false, false, '\0');
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(c @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = c;
                    } else if self.chars[self.pos - 2] != '\\' && c == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                Some(_) => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let text = self.slice(start, self.pos - 2);
        let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
        let split = text.find(is_op).filter(|&i| i > 0).and_then(|i| {
            let run = text[i..].find(|c: char| !is_op(c)).map_or(text.len(), |n| i + n);
            // The right operand needs at least one character (`(.+?)$`).
            let run = if run == text.len() { run.checked_sub(1).filter(|&r| r > i)? } else { run };
            Some((&text[..i], &text[i..run], &text[run..]))
        });
        match split {
            Some((left, op, right)) => Ok(Step::Filter { left: parse_sub(left)?, op: op.to_string(), right: parse_sub(right)? }),
            None => Ok(Step::Filter { left: parse_sub(&text)?, op: "exists".into(), right: Vec::new() }),
        }
    }
}

/// `^(-?\d*)(:-?\d*)?(:-?\d*)?$` as client-go reads it.
fn slice(text: &str) -> Result<Step, String> {
    let invalid = || format!("invalid array index {text}");
    let parts: Vec<&str> = text.split(':').collect();
    let well_formed = |p: &&str| p.strip_prefix('-').unwrap_or(p).bytes().all(|b| b.is_ascii_digit());
    if parts.len() > 3 || !parts.iter().all(well_formed) {
        return Err(invalid());
    }
    let number = |p: &str| -> Result<Option<i64>, String> {
        if p.is_empty() {
            Ok(None)
        } else {
            p.parse().map(Some).map_err(|_| format!("array index {p} is not a number"))
        }
    };
    let start = number(parts[0])?;
    let end = match parts.get(1) {
        None => End::Derived(start.unwrap_or(0) + 1),
        Some(p) => number(p)?.map_or(End::Unknown, End::Known),
    };
    let step = match parts.get(2) {
        Some(p) => number(p)?,
        None => None,
    };
    Ok(Step::Slice { start, end, step })
}

/// Go's `strconv.Unquote`, extended to single-quoted strings as client-go does.
fn unquote(raw: &str) -> Option<String> {
    let quote = raw.chars().next()?;
    let inner = raw.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Option<char> {
            let digits: String = (0..n).map(|_| chars.next()).collect::<Option<String>>()?;
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        out.push(match chars.next()? {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            e @ ('\'' | '"') if e == quote => e,
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            d @ '0'..='7' => {
                let rest: String = (0..2).map(|_| chars.next()).collect::<Option<String>>()?;
                char::from_u32(u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

// ---- evaluation -----------------------------------------------------------------------------

/// Values flowing through a path: borrowed from the input, or owned literals.
type Vals<'a> = Vec<Cow<'a, Value>>;

/// client-go's `FindResults`: one list of values per text/expression node, in order.
fn find_results<'a>(nodes: &[Node], root: &'a Value) -> Result<Vec<Vals<'a>>, String> {
    let mut out = Vec::new();
    exec(nodes, Cow::Borrowed(root), &mut out)?;
    Ok(out)
}

fn exec<'a>(nodes: &[Node], cur: Cow<'a, Value>, out: &mut Vec<Vals<'a>>) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push(vec![Cow::Owned(Value::String(t.clone()))]),
            Node::Path(steps) => out.push(eval(steps, vec![cur.clone()])?),
            Node::Range(steps, body) => {
                for item in eval(steps, vec![cur.clone()])? {
                    exec(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval<'a>(steps: &[Step], input: Vals<'a>) -> Result<Vals<'a>, String> {
    steps.iter().try_fold(input, |cur, step| eval_step(step, cur))
}

/// Children chosen by `pick`, keeping borrowed values borrowed.
fn project<'a>(v: &Cow<'a, Value>, pick: impl for<'b> Fn(&'b Value) -> Vec<&'b Value>) -> Vals<'a> {
    match v {
        Cow::Borrowed(b) => pick(b).into_iter().map(Cow::Borrowed).collect(),
        Cow::Owned(o) => pick(o).into_iter().map(|c| Cow::Owned(c.clone())).collect(),
    }
}

/// Object values in key order (Go iterates maps randomly; sorted is the stable choice).
fn sorted_values(map: &serde_json::Map<String, Value>) -> Vec<&Value> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter().map(|k| &map[k]).collect()
}

/// Non-empty containers at and below `v`, parents first (client-go's `evalRecursive`).
fn descend<'b>(v: &'b Value, out: &mut Vec<&'b Value>) {
    let children = match v {
        Value::Object(m) => sorted_values(m),
        Value::Array(a) => a.iter().collect(),
        _ => return,
    };
    if !children.is_empty() {
        out.push(v);
        children.into_iter().for_each(|c| descend(c, out));
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::Null => "<nil>",
    }
}

fn eval_step<'a>(step: &Step, input: Vals<'a>) -> Result<Vals<'a>, String> {
    let literal = |v: Value| input.iter().map(|_| Cow::Owned(v.clone())).collect();
    Ok(match step {
        Step::Text(t) => vec![Cow::Owned(Value::String(t.clone()))],
        Step::Int(i) => literal(Value::from(*i)),
        Step::Float(f) => literal(Value::from(*f)),
        Step::Bool(b) => literal(Value::from(*b)),
        Step::Ident(id) => return Err(format!("unrecognized identifier {id}")),
        Step::Field(name) => input.iter().flat_map(|v| project(v, |v| v.get(name.as_str()).into_iter().collect())).collect(),
        Step::Wildcard => input
            .iter()
            .flat_map(|v| {
                project(v, |v| match v {
                    Value::Object(m) => sorted_values(m),
                    Value::Array(a) => a.iter().collect(),
                    _ => Vec::new(),
                })
            })
            .collect(),
        Step::Recursive => input
            .iter()
            .flat_map(|v| {
                project(v, |v| {
                    let mut out = Vec::new();
                    descend(v, &mut out);
                    out
                })
            })
            .collect(),
        Step::Union(members) => {
            let mut out = Vec::new();
            for member in members {
                out.extend(eval(member, input.clone())?);
            }
            out
        }
        Step::Slice { start, end, step } => {
            let mut out = Vec::new();
            for v in &input {
                let arr = match v.as_ref() {
                    Value::Null => continue,
                    Value::Array(a) => a,
                    other => return Err(format!("{} is not array or slice", go_type(other))),
                };
                let len = arr.len() as i64;
                let mut from = start.unwrap_or(0);
                if from < 0 {
                    from += len;
                }
                let (mut to, derived) = match *end {
                    End::Unknown => (len, false),
                    End::Known(e) => (e, false),
                    End::Derived(e) => (e, true),
                };
                if to < 0 || (to == 0 && derived) {
                    to += len;
                }
                if to == from {
                    // client-go stops at the first empty slice.
                    return Ok(out);
                }
                if from >= len || from < 0 {
                    return Err(format!("array index out of bounds: index {from}, length {len}"));
                }
                if to > len || to < 0 {
                    return Err(format!("array index out of bounds: index {}, length {len}", to - 1));
                }
                if from > to {
                    return Err(format!("starting index {from} is greater than ending index {to}"));
                }
                let stride = match step {
                    Some(s) if *s <= 0 => return Err("step must be > 0".into()),
                    Some(s) => *s as usize,
                    None => 1,
                };
                let indices: Vec<usize> = (from as usize..to as usize).step_by(stride).collect();
                out.extend(project(v, |v| match v {
                    Value::Array(a) => indices.iter().map(|&i| &a[i]).collect(),
                    _ => Vec::new(),
                }));
            }
            out
        }
        Step::Filter { left, op, right } => {
            let mut out = Vec::new();
            for v in &input {
                if !v.is_array() {
                    return Err(format!("{} is not array or slice and cannot be filtered", go_sprint(v)));
                }
                for item in project(v, |v| v.as_array().map(|a| a.iter().collect()).unwrap_or_default()) {
                    let lefts = eval(left, vec![item.clone()]);
                    if op == "exists" {
                        if lefts.is_ok_and(|l| !l.is_empty()) {
                            out.push(item);
                        }
                        continue;
                    }
                    let lefts = lefts?;
                    let Some(l) = single(&lefts)? else { continue };
                    let rights = eval(right, vec![item.clone()])?;
                    let Some(r) = single(&rights)? else { continue };
                    if compare(op, l, r)? {
                        out.push(item);
                    }
                }
            }
            out
        }
    })
}

fn single<'v>(values: &'v [Cow<Value>]) -> Result<Option<&'v Value>, String> {
    match values {
        [] => Ok(None),
        [v] => Ok(Some(v.as_ref())),
        _ => Err("can only compare one element at a time".into()),
    }
}

/// text/template's `eq`/`lt` family as client-go's filters use them.
fn compare(op: &str, left: &Value, right: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    const BAD_TYPE: &str = "invalid type for comparison";
    const MISMATCH: &str = "incompatible types for comparison";
    #[derive(PartialEq)]
    enum K<'v> {
        Bool(bool),
        Int(i128),
        Float(f64),
        Str(&'v str),
    }
    fn kind(v: &Value) -> Option<K<'_>> {
        match v {
            Value::Bool(b) => Some(K::Bool(*b)),
            Value::Number(n) if n.is_i64() => n.as_i64().map(|i| K::Int(i as i128)),
            Value::Number(n) if n.is_u64() => n.as_u64().map(|i| K::Int(i as i128)),
            Value::Number(n) => n.as_f64().map(K::Float),
            Value::String(s) => Some(K::Str(s)),
            _ => None,
        }
    }
    let (l, r) = (kind(left).ok_or(BAD_TYPE)?, kind(right).ok_or(BAD_TYPE)?);
    let equal = match (&l, &r) {
        (K::Bool(_), K::Bool(_)) | (K::Int(_), K::Int(_)) | (K::Float(_), K::Float(_)) | (K::Str(_), K::Str(_)) => l == r,
        _ => return Err(MISMATCH.into()),
    };
    let less = || -> Result<bool, String> {
        let ord = match (&l, &r) {
            (K::Int(a), K::Int(b)) => a.cmp(b),
            (K::Float(a), K::Float(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (K::Str(a), K::Str(b)) => a.cmp(b),
            _ => return Err(BAD_TYPE.into()),
        };
        Ok(ord == Ordering::Less)
    };
    match op {
        "==" => Ok(equal),
        "!=" => Ok(!equal),
        "<" => less(),
        "<=" => Ok(less()? || equal),
        ">" => Ok(!(less()? || equal)),
        ">=" => Ok(!less()?),
        other => Err(format!("unrecognized filter operator {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        super::super::list_object(vec![
            json!({"metadata": {"name": "my-nginx-4vbrb", "labels": {"app.kubernetes.io/name": "web"}},
                   "status": {"podIP": "10.244.3.4", "podIPs": [{"ip": "10.244.3.4"}]}}),
            json!({"metadata": {"name": "my-nginx-x9zkq"},
                   "status": {"podIP": "10.244.2.5", "podIPs": [{"ip": "10.244.2.5"}]}}),
        ])
    }

    fn node() -> Value {
        json!({"metadata": {"name": "node-1"}, "spec": {"ports": [{"nodePort": 31704}]},
               "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                        {"type": "ExternalIP", "address": "198.51.100.2"}],
                          "capacity": {"cpu": "4", "pods": "110"}}})
    }

    fn jp(t: &str, v: &Value) -> String {
        jsonpath(t, v).unwrap()
    }

    #[test]
    fn reference_examples() {
        assert_eq!(jp("{.items[*].status.podIP}", &pods()), "10.244.3.4 10.244.2.5");
        assert_eq!(jp("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &pods()), "my-nginx-4vbrb\nmy-nginx-x9zkq\n");
        assert_eq!(jp("{.spec.ports[0].nodePort}", &node()), "31704");
        assert_eq!(jp("{.status.addresses[?(@.type==\"InternalIP\")].address}", &node()), "172.18.0.2");
    }

    #[test]
    fn literals_slices_and_recursion() {
        let n = node();
        assert_eq!(jp("name: {.metadata.name}!", &n), "name: node-1!");
        assert_eq!(jp("{.status.addresses[-1].type}", &n), "ExternalIP");
        assert_eq!(jp("{.status.addresses[0:2].type}", &n), "InternalIP ExternalIP");
        assert_eq!(jp("{.status.addresses[*]['type']}", &n), "InternalIP ExternalIP");
        assert_eq!(jp("{..address}", &n), "172.18.0.2 198.51.100.2");
        assert_eq!(jp("{.status.capacity}", &n), "{\"cpu\":\"4\",\"pods\":\"110\"}");
        assert_eq!(jp("{.status.capacity.*}", &n), "4 110");
        assert_eq!(jp("{.missing.field}", &n), "");
        assert_eq!(jp("{'\\t'}x{\"{\"}", &n), "\tx{");
        assert_eq!(jp("{.status.addresses[0,1].address}", &n), "172.18.0.2 198.51.100.2");
        assert_eq!(jp("{.status.addresses[?(@.type!=\"InternalIP\")].address}", &n), "198.51.100.2");
        assert_eq!(jp("{.spec.ports[?(@.nodePort>30000)].nodePort}", &n), "31704");
        assert_eq!(jp("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", &pods()), "web");
        assert_eq!(
            jp("{range .items[*]}{.metadata.name}:{range .status.podIPs[*]} {.ip}{end};{end}", &pods()),
            "my-nginx-4vbrb: 10.244.3.4;my-nginx-x9zkq: 10.244.2.5;"
        );
        assert_eq!(jp("{range .items[*]}[{.status.podIPs[0].ip}] {end}", &pods()), "[10.244.3.4] [10.244.2.5] ");
    }

    #[test]
    fn errors_read_like_kubectl() {
        let err = jsonpath("{.items[}", &pods()).unwrap_err();
        assert_eq!(err.to_string(), "error parsing jsonpath {.items[}, unterminated array");
        let err = jsonpath("{.items[5]}", &pods()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error executing jsonpath \"{.items[5]}\": Error executing template: array index out of bounds: index 5, length 2"
        );
        assert!(jsonpath("{end}", &pods()).is_err());
        assert!(jsonpath("{.metadata.name", &pods()).is_err());
    }

    #[test]
    fn custom_columns_render_go_values() {
        let list = pods();
        let items = list["items"].as_array().unwrap();
        let out = custom_columns("NAME:.metadata.name,POD_IP:.status.podIPs,LABELS:{.metadata.labels}", items).unwrap();
        assert_eq!(
            out,
            "NAME             POD_IP                 LABELS\n\
             my-nginx-4vbrb   [map[ip:10.244.3.4]]   map[app.kubernetes.io/name:web]\n\
             my-nginx-x9zkq   [map[ip:10.244.2.5]]   <none>\n"
        );
        let ips = custom_columns("IPS:status.podIPs[*].ip", items).unwrap();
        assert_eq!(ips, "IPS\n10.244.3.4\n10.244.2.5\n");
        assert_eq!(
            custom_columns("NAME", items).unwrap_err().to_string(),
            "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"
        );
    }
}
