//! Go renderings of JSON values: `encoding/json` (sorted keys, HTML-safe escaping) for `-o json`
//! and jsonpath, `fmt`'s `%v` for custom-columns, and Go's float formats.

use serde_json::{Number, Value};

/// `kubectl get -o json` (CLI-21): 4-space indent, keys sorted, `<`,`>`,`&` escaped, trailing newline.
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, Some(0));
    out.push('\n');
    out
}

/// Go's `json.Marshal`: compact, keys sorted at every level, HTML-safe escaping. jsonpath prints
/// maps and lists this way, kubectl's last-applied annotation is this, and being deterministic it
/// also serves as a hash input.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, None);
    out
}

/// `indent` is the current depth when pretty-printing, `None` for compact output.
fn write_json(out: &mut String, value: &Value, indent: Option<usize>) {
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', 4 * depth));
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&json_number(n)),
        Value::String(s) => write_quoted(out, s, Quote::Json),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(depth) = indent {
                    newline(out, depth + 1);
                }
                write_json(out, item, indent.map(|d| d + 1));
            }
            if let Some(depth) = indent {
                newline(out, depth);
            }
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(depth) = indent {
                    newline(out, depth + 1);
                }
                write_quoted(out, key, Quote::Json);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, &map[key], indent.map(|d| d + 1));
            }
            if let Some(depth) = indent {
                newline(out, depth);
            }
            out.push('}');
        }
    }
}

/// The two ways Go quotes a string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quote {
    /// `encoding/json` with HTML escaping on (its default): `<`, `>`, `&`, U+2028, U+2029 and
    /// other control characters as `\u00XX`.
    Json,
    /// `fmt`'s `%q`: other control characters as `\xXX`.
    Go,
}

/// Appends `s` double-quoted and escaped in `style`.
pub(crate) fn write_quoted(out: &mut String, s: &str, style: Quote) {
    let json = style == Quote::Json;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if json => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if json && (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Numbers as Go prints them after decoding into `interface{}` the way kubectl does: integers
/// stay integers; floats use `encoding/json`'s format.
fn json_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() => {
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                // Go: exponent form with at least one exponent digit and an explicit sign.
                let e = format!("{f:e}");
                match e.split_once('e') {
                    Some((m, exp)) if !exp.starts_with('-') => format!("{m}e+{exp}"),
                    _ => e,
                }
            } else {
                format!("{f}")
            }
        }
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_sorted_indented_and_html_escaped() {
        let v = json!({"b": [1, {"y": "<a&b>", "x": []}], "a": {}, "c": "line\nbreak"});
        assert_eq!(
            to_json(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        {\n            \"x\": [],\n            \"y\": \"\\u003ca\\u0026b\\u003e\"\n        }\n    ],\n    \"c\": \"line\\nbreak\"\n}\n"
        );
        assert_eq!(canonical_json(&v), "{\"a\":{},\"b\":[1,{\"x\":[],\"y\":\"\\u003ca\\u0026b\\u003e\"}],\"c\":\"line\\nbreak\"}");
    }

    #[test]
    fn numbers_as_go_encodes_them() {
        assert_eq!(json_number(&Number::from_f64(2.5).unwrap()), "2.5");
        assert_eq!(json_number(&Number::from_f64(1e-7).unwrap()), "1e-7");
        assert_eq!(json_number(&Number::from_f64(1e21).unwrap()), "1e+21");
    }

    #[test]
    fn json_and_go_quoting_differ_only_where_go_does() {
        let quote = |style| {
            let mut out = String::new();
            write_quoted(&mut out, "a\"\t\u{1}<&", style);
            out
        };
        assert_eq!(quote(Quote::Json), "\"a\\\"\\t\\u0001\\u003c\\u0026\"");
        assert_eq!(quote(Quote::Go), "\"a\\\"\\t\\x01<&\"");
    }
}
