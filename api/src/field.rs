//! A field error as kube-apiserver words it (`spec.ports[0].port: Invalid value: 0: must be
//! between 1 and 65535, inclusive`) and Go's formatting of the values it quotes. Below both
//! [`crate::typed`] (a decode that fails names its field) and [`crate::validation`].

use serde_json::Value;
use std::fmt;

/// The type of a field error, with the offending value already in Go's `%v`/`%q`/`%#v` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    NotFound(String),
    Invalid(String),
    Duplicate(String),
    /// The value and the supported values (unquoted).
    Unsupported(String, Vec<String>),
    Forbidden,
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path: `spec.template.spec.containers[0].image`.
    pub field: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field)?;
        match &self.kind {
            FieldErrorKind::Required => f.write_str("Required value")?,
            FieldErrorKind::NotFound(v) => write!(f, "Not found: {v}")?,
            FieldErrorKind::Invalid(v) => write!(f, "Invalid value: {v}")?,
            FieldErrorKind::Duplicate(v) => write!(f, "Duplicate value: {v}")?,
            FieldErrorKind::Unsupported(v, _) => write!(f, "Unsupported value: {v}")?,
            FieldErrorKind::Forbidden => f.write_str("Forbidden")?,
            FieldErrorKind::TooLong => f.write_str("Too long")?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Go's `%q`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::new();
    crate::json::write_quoted(&mut out, s, crate::json::Quote::Go);
    out
}

/// A JSON value as Go would print the decoded value: strings quoted, numbers bare.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}
