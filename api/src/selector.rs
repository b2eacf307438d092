//! Label selectors: kubectl's `-l` grammar (CLI-19), `LabelSelector` objects, and matching.

use crate::syntax::{label_value_errors, qualified_name_errors};
use crate::typed::LabelSelector;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    /// Sorted and de-duplicated, as Kubernetes prints them.
    values: Vec<String>,
}

impl Requirement {
    fn new(key: &str, op: Op, mut values: Vec<String>) -> Result<Self, SelectorError> {
        if let Some(msg) = qualified_name_errors(key).into_iter().next() {
            return Err(SelectorError(format!("key: Invalid value: {key:?}: {msg}")));
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(msg) = label_value_errors(v).into_iter().next() {
                return Err(SelectorError(format!("values[{i}][{key}]: Invalid value: {v:?}: {msg}")));
            }
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key: key.to_string(), op, values })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let listed = |v: &String| self.values.contains(v);
        match self.op {
            Op::Equals | Op::DoubleEquals | Op::In => value.is_some_and(listed),
            // Objects without the key match `!=` and `notin` too.
            Op::NotEquals | Op::NotIn => !value.is_some_and(listed),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, vals) = (&self.key, self.values.join(","));
        match self.op {
            Op::Equals => write!(f, "{k}={vals}"),
            Op::DoubleEquals => write!(f, "{k}=={vals}"),
            Op::NotEquals => write!(f, "{k}!={vals}"),
            Op::In => write!(f, "{k} in ({vals})"),
            Op::NotIn => write!(f, "{k} notin ({vals})"),
            Op::Exists => write!(f, "{k}"),
            Op::DoesNotExist => write!(f, "!{k}"),
        }
    }
}

/// A conjunction of requirements. `Selector::default()` selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// A missing (null) LabelSelector selects nothing, unlike an empty one.
    nothing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Open,
    Close,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Token::Ident(s) => s,
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
        })
    }
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                out.push(Token::NotEq)
            }
            '!' => out.push(Token::Not),
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                out.push(Token::DoubleEq)
            }
            '=' => out.push(Token::Eq),
            c => {
                let mut ident = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "()!=,".contains(n) {
                        break;
                    }
                    ident.push(n);
                    chars.next();
                }
                out.push(Token::Ident(ident));
            }
        }
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(found: Option<Token>, expected: &str) -> SelectorError {
        let found = found.map_or_else(|| "EOS".to_string(), |t| t.to_string());
        SelectorError(format!("found '{found}', expected: {expected}"))
    }

    fn ident(&mut self, expected: &str) -> Result<String, SelectorError> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            other => Err(Self::unexpected(other, expected)),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            let key = self.ident("identifier after '!'")?;
            return Requirement::new(&key, Op::DoesNotExist, vec![]);
        }
        let key = self.ident("identifier")?;
        let op = match self.peek() {
            None | Some(Token::Comma) => return Requirement::new(&key, Op::Exists, vec![]),
            Some(Token::Eq) => Op::Equals,
            Some(Token::DoubleEq) => Op::DoubleEquals,
            Some(Token::NotEq) => Op::NotEquals,
            Some(Token::Ident(s)) if s == "in" => Op::In,
            Some(Token::Ident(s)) if s == "notin" => Op::NotIn,
            _ => return Err(Self::unexpected(self.next(), "'=', '!=', '==', 'in', 'notin'")),
        };
        self.next();
        let values = if matches!(op, Op::In | Op::NotIn) {
            self.set_values()?
        } else {
            match self.peek() {
                // `k=` selects the empty value.
                None | Some(Token::Comma) => vec![String::new()],
                _ => vec![self.ident("identifier")?],
            }
        };
        Requirement::new(&key, op, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            other => return Err(Self::unexpected(other, "'('")),
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Token::Ident(v)) => values.push(v),
                // `()` and `(a,)` hold the empty value, as in Kubernetes.
                Some(Token::Close) => {
                    values.push(String::new());
                    return Ok(values);
                }
                other => return Err(Self::unexpected(other, "identifier or ')'")),
            }
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::Close) => return Ok(values),
                other => return Err(Self::unexpected(other, "',' or ')'")),
            }
        }
    }
}

impl Selector {
    /// Parses kubectl's `-l` syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
    /// `!k`, joined by commas (AND). The empty string selects everything.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser { tokens: tokenize(s), pos: 0 };
        let mut requirements = Vec::new();
        while p.peek().is_some() {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Token::Comma) if p.peek().is_some() => {}
                other => return Err(Parser::unexpected(other, "',' followed by a requirement")),
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `LabelSelector`'s JSON (`{matchLabels, matchExpressions}`), as [`Self::from_typed`]
    /// does the decoded one. A null selector selects nothing; an empty one selects everything.
    pub fn from_label_selector(sel: &Value) -> Result<Selector, SelectorError> {
        if sel.is_null() {
            return Self::from_typed(None);
        }
        let sel: LabelSelector = crate::typed::decode(sel).map_err(|e| SelectorError(format!("a label selector: {e}")))?;
        Self::from_typed(Some(&sel))
    }

    /// Converts a decoded `LabelSelector`. None (a nil selector) selects nothing; an empty one
    /// selects everything.
    pub fn from_typed(sel: Option<&LabelSelector>) -> Result<Selector, SelectorError> {
        let Some(sel) = sel else { return Ok(Selector { requirements: vec![], nothing: true }) };
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Op::Equals, vec![v.clone()])?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let (key, values) = (expr.key.as_str(), expr.values.clone().unwrap_or_default());
            let op = match expr.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError(format!("{other:?} is not a valid label selector operator"))),
            };
            if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                return Err(SelectorError(format!("for 'in', 'notin' operators, values set can't be empty (key {key:?})")));
            }
            requirements.push(Requirement::new(key, op, values)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// The equality selector of a Service's `spec.selector` (or a ReplicaSet's matchLabels).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Selector {
        let requirements = labels.iter().map(|(k, v)| Requirement { key: k.clone(), op: Op::Equals, values: vec![v.clone()] }).collect();
        Self::from_requirements(requirements)
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements, nothing: false }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Labels of an object as a map; non-string values are ignored (validation rejects them).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    string_map(&obj["metadata"]["labels"])
}

/// A JSON object of strings as a map, skipping non-string values.
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn grammar_and_matching() {
        let web = labels(&[("run", "my-nginx"), ("tier", "web")]);
        let bare = labels(&[("run", "other")]);
        for (sel, on_web, on_bare) in [
            ("run=my-nginx", true, false),
            ("run==my-nginx", true, false),
            ("run!=my-nginx", false, true),
            ("tier!=web", false, true), // no key: matches `!=`
            ("tier in (web, db)", true, false),
            ("tier notin (db)", true, true), // no key: matches `notin`
            ("tier", true, false),
            ("!tier", false, true),
            ("run=my-nginx,tier=web", true, false),
            (" run = my-nginx , !missing ", true, false),
            ("", true, true),
        ] {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!((s.matches(&web), s.matches(&bare)), (on_web, on_bare), "{sel}");
        }
        assert!(Selector::parse("").unwrap().is_empty());
    }

    #[test]
    fn canonical_display() {
        let s = Selector::parse("tier in (web,db),!x, run=my-nginx,y, z notin (b,a,a)").unwrap();
        assert_eq!(s.to_string(), "run=my-nginx,tier in (db,web),!x,y,z notin (a,b)");
        let e = Selector::parse("a==b,c!=d,e=").unwrap();
        assert_eq!(e.to_string(), "a==b,c!=d,e=");
        assert!(e.matches(&labels(&[("a", "b"), ("e", "")])));
    }

    #[test]
    fn parse_errors() {
        for bad in ["a b", "a in b", "a in (b", "=b", "a=b,", "a,,b", "a=b c", "a=b=c", "-bad=1", "a=not valid!", "a=-x"] {
            assert!(Selector::parse(bad).is_err(), "{bad} should fail");
        }
        let err = Selector::parse("a=b c").unwrap_err().to_string();
        assert!(err.starts_with("unable to parse requirement: found 'c'"), "{err}");
        let err = Selector::parse("x=-y").unwrap_err().to_string();
        assert!(err.contains(r#"values[0][x]: Invalid value: "-y": a valid label must be"#), "{err}");
    }

    #[test]
    fn label_selector_objects() {
        let sel = json!({"matchLabels": {"run": "my-nginx"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        let s = Selector::from_label_selector(&sel).unwrap();
        assert_eq!(s.to_string(), "canary,run=my-nginx,tier in (web)".replace("canary", "!canary"));
        assert!(s.matches(&labels(&[("run", "my-nginx"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("run", "my-nginx"), ("tier", "web"), ("canary", "1")])));

        let nothing = Selector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.matches(&BTreeMap::new()) && !nothing.is_empty());
        let everything = Selector::from_label_selector(&json!({})).unwrap();
        assert!(everything.matches(&BTreeMap::new()) && everything.is_empty());
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]});
        assert!(Selector::from_label_selector(&bad).is_err());
        assert_eq!(Selector::from_map(&labels(&[("b", "2"), ("a", "1")])).to_string(), "a=1,b=2");
    }
}
