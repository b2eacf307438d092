//! `kubectl get -o yaml` (CLI-20). kubectl marshals the object to JSON and re-encodes it with
//! go-yaml v2, so this follows go-yaml's emitter: keys in its "natural" order, block style with
//! sequences at their parent key's indentation, `{}`/`[]` for empty collections, strings quoted
//! when they would read back as something else (`"1"`, `"true"`, `""`, timestamps), literal block
//! scalars for multi-line text, and long plain/quoted strings folded after column 80.

use serde_json::{Map, Value};

/// go-yaml's default line width: scalars are folded at the first space past this column.
const BEST_WIDTH: usize = 80;

/// `value` as kubectl's `-o yaml` prints it: without `metadata.managedFields` (see
/// [`crate::omit_managed_fields`]).
pub fn to_yaml(value: &Value) -> String {
    emit(&crate::omit_managed_fields(value))
}

fn emit(value: &Value) -> String {
    let mut e = Emitter { out: String::new(), column: 0, whitespace: true, indention: true };
    match value {
        Value::Object(m) if !m.is_empty() => e.mapping(m, 0),
        Value::Array(a) if !a.is_empty() => e.sequence(a, 0),
        // A root scalar gets go-yaml's flow indent (2) for folded continuation lines.
        other => e.node(other, 0),
    }
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

struct Emitter {
    out: String,
    column: usize,
    /// The last character written was whitespace (or nothing on this line yet).
    whitespace: bool,
    /// Only indentation has been written on the current line.
    indention: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    /// A line break inside a single-quoted or literal scalar.
    fn text_break(&mut self, c: char, breaks: &mut bool) {
        self.write_break(c);
        self.indention = true;
        *breaks = true;
    }

    /// A character of a single-quoted or literal scalar: after line breaks the line is indented
    /// first. `doubled` writes it twice (a quote inside single quotes).
    fn text_char(&mut self, c: char, indent: usize, breaks: &mut bool, doubled: bool) {
        if std::mem::take(breaks) {
            self.write_indent(indent);
        }
        if doubled {
            self.put(c);
        }
        self.put(c);
        self.indention = false;
    }

    fn write_indicator(&mut self, indicator: &str, need_whitespace: bool, is_whitespace: bool, is_indention: bool) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        indicator.chars().for_each(|c| self.put(c));
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    /// A block mapping whose keys sit at column `indent`.
    fn mapping(&mut self, map: &Map<String, Value>, indent: usize) {
        for key in sorted_keys(map) {
            self.write_indent(indent);
            self.string(key, indent + 2, true);
            self.write_indicator(":", false, false, false);
            match &map[key] {
                // Sequences in a mapping are "indentless": the dashes line up with the key.
                Value::Array(a) if !a.is_empty() => self.sequence(a, indent),
                v => self.node(v, indent),
            }
        }
    }

    /// A block sequence whose dashes sit at column `indent`.
    fn sequence(&mut self, items: &[Value], indent: usize) {
        for item in items {
            self.write_indent(indent);
            self.write_indicator("-", true, false, true);
            self.node(item, indent);
        }
    }

    /// A value following `key:` or `-` of a collection at column `parent`.
    fn node(&mut self, value: &Value, parent: usize) {
        match value {
            Value::Object(m) if m.is_empty() => {
                self.write_indicator("{", true, true, false);
                self.write_indicator("}", false, false, false);
            }
            Value::Array(a) if a.is_empty() => {
                self.write_indicator("[", true, true, false);
                self.write_indicator("]", false, false, false);
            }
            Value::Object(m) => self.mapping(m, parent + 2),
            Value::Array(a) => self.sequence(a, parent + 2),
            Value::String(s) => self.string(s, parent + 2, false),
            Value::Null => self.write_plain("null", parent + 2, false),
            Value::Bool(b) => self.write_plain(if *b { "true" } else { "false" }, parent + 2, false),
            Value::Number(n) if n.is_i64() || n.is_u64() => self.write_plain(&n.to_string(), parent + 2, false),
            Value::Number(n) => {
                let text = match crate::gofmt::go_float(n.as_f64().unwrap_or(0.0)).as_str() {
                    "+Inf" => ".inf".to_string(),
                    "-Inf" => "-.inf".to_string(),
                    "NaN" => ".nan".to_string(),
                    other => other.to_string(),
                };
                self.write_plain(&text, parent + 2, false)
            }
        }
    }

    /// A string scalar; `indent` is where folded continuation lines start.
    fn string(&mut self, s: &str, indent: usize, is_key: bool) {
        let style = select_style(s, is_key);
        let allow_breaks = !is_key;
        match style {
            Style::Plain => self.write_plain(s, indent, allow_breaks),
            Style::Single => self.write_single(s, indent, allow_breaks),
            Style::Double => self.write_double(s, indent, allow_breaks),
            Style::Literal => self.write_literal(s, indent),
        }
    }

    fn write_plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let fold = allow_breaks && !spaces && self.column > BEST_WIDTH;
                if fold && i > 0 && i + 1 < chars.len() && chars[i + 1] != ' ' {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.text_break(c, &mut breaks);
            } else {
                self.text_char(c, indent, &mut breaks, c == '\'');
                spaces = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    c => {
                        let v = c as u32;
                        let (tag, width) = if v <= 0xff {
                            ('x', 2)
                        } else if v <= 0xffff {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(tag);
                        format!("{v:0width$X}").chars().for_each(|h| self.put(h));
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i + 1 < chars.len() {
                    self.write_indent(indent);
                    if chars[i + 1] == ' ' {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, s: &str, indent: usize) {
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.write_indicator("2", false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.text_break(c, &mut breaks);
            } else {
                self.text_char(c, indent, &mut breaks, false);
            }
        }
    }
}

/// go-yaml's choice of scalar style for a string (encoder `stringv` + emitter analysis).
fn select_style(s: &str, is_key: bool) -> Style {
    let a = analyze(s);
    let mut style = if s.contains('\n') {
        Style::Literal
    } else if !resolves_to_non_string(s) {
        Style::Plain
    } else {
        Style::Double
    };
    if is_key && a.multiline {
        style = Style::Double;
    }
    if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && is_key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single_quoted_allowed {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block_allowed || is_key) {
        style = Style::Double;
    }
    style
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, block context only (we never emit flow collections
/// with content).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis { multiline: false, block_plain_allowed: true, single_quoted_allowed: true, block_allowed: false };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|&n| n == ' ' || n == '\t');
        let first = i == 0;
        match c {
            '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' if first => {
                block_indicators = true
            }
            '?' | ':' | '-' if first && followed_by_whitespace => block_indicators = true,
            ':' if !first && followed_by_whitespace => block_indicators = true,
            '#' if !first && preceded_by_whitespace => block_indicators = true,
            _ => {}
        }
        if !is_printable(c) {
            special = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            leading_space |= first;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= first;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis { multiline: line_breaks, block_plain_allowed: true, single_quoted_allowed: true, block_allowed: true };
    if leading_space || leading_break || trailing_space || trailing_break || line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    a
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}') || (('\u{e000}'..='\u{fffd}').contains(&c) && c != '\u{feff}')
}

/// True if the plain scalar `s` would be read back by go-yaml as null, bool, number or
/// timestamp (go-yaml v2 `resolve`, plus its base-60 float check), so it must be quoted.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: [&str; 38] = [
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no", "No", "NO", "false", "False", "FALSE",
        "off", "Off", "OFF", "~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
        "-.inf", "-.Inf", "-.INF",
    ];
    let Some(first) = s.chars().next() else {
        return true;
    };
    let resolved = match first {
        'y' | 'Y' | 'n' | 'N' | 't' | 'T' | 'f' | 'F' | 'o' | 'O' | '~' => SPECIAL.contains(&s),
        '.' => SPECIAL.contains(&s) || s.parse::<f64>().is_ok_and(f64::is_finite),
        '+' | '-' | '0'..='9' => {
            let plain = s.replace('_', "");
            SPECIAL.contains(&s)
                || is_timestamp(s)
                || is_go_int(&plain)
                || (is_yaml_float(&plain) && plain.parse::<f64>().is_ok_and(f64::is_finite))
        }
        _ => false,
    };
    resolved || is_base60_float(s)
}

/// `strconv.ParseInt(s, 0, 64)` or `strconv.ParseUint(s, 0, 64)` would succeed.
fn is_go_int(s: &str) -> bool {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (Some(false), &s[1..]),
        Some(b'-') => (Some(true), &s[1..]),
        _ => (None, s),
    };
    let lower = rest.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return false;
    }
    let Ok(v) = u128::from_str_radix(digits, radix) else {
        return false;
    };
    match sign {
        None => v <= u64::MAX as u128,
        Some(true) => v <= 1u128 << 63,
        Some(false) => v < 1u128 << 63,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1 sexagesimal numbers).
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (body, frac) = match s.split_once('.') {
        Some((b, f)) => (b, Some(f)),
        None => (s, None),
    };
    if frac.is_some_and(|f| !f.bytes().all(|b| b.is_ascii_digit() || b == b'_')) {
        return false;
    }
    let mut parts = body.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit) && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut groups = 0;
    for part in parts {
        let ok = match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    head_ok && groups > 0
}

/// go-yaml's timestamp check: `2006-1-2`, `2006-1-2 15:4:5[.frac]` or
/// `2006-1-2T15:4:5[.frac]Z07:00` (Go `time.Parse` semantics: 1-2 digit fields, validated ranges).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    // One or two digits starting at `i`.
    let num = |i: &mut usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && *i - start < 2 && b[*i].is_ascii_digit() {
            *i += 1;
        }
        (start < *i).then(|| s[start..*i].parse().ok())?
    };
    let year: u32 = s[..4].parse().unwrap_or(0);
    let Some(month) = num(&mut i) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    i += 1;
    let Some(day) = num(&mut i) else { return false };
    let leap = matches!((year % 4, year % 100, year % 400), (0, 1.., _) | (_, _, 0));
    let days_in = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day < 1 || day > days_in {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    for (n, max) in [(0, 23), (1, 59), (2, 59)] {
        if n > 0 {
            if b.get(i) != Some(&b':') {
                return false;
            }
            i += 1;
        }
        match num(&mut i) {
            Some(v) if v <= max => {}
            _ => return false,
        }
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    let rest = &s[i..];
    if !zoned {
        return rest.is_empty();
    }
    let rb = rest.as_bytes();
    rest == "Z"
        || (rb.len() == 6
            && (rb[0] == b'+' || rb[0] == b'-')
            && rb[1..3].iter().all(u8::is_ascii_digit)
            && rb[3] == b':'
            && rb[4..6].iter().all(u8::is_ascii_digit))
}

/// go-yaml v2 sorts map keys "naturally": letters after non-letters, digit runs numerically.
fn key_less(a: &str, b: &str) -> bool {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            for j in (0..i).rev() {
                if !ar[j].is_ascii_digit() {
                    break;
                }
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let number = |chars: &[char], mut n: i64| -> (i64, usize) {
            let mut k = i;
            while k < chars.len() && chars[k].is_ascii_digit() {
                n = n.wrapping_mul(10).wrapping_add(chars[k] as i64 - '0' as i64);
                k += 1;
            }
            (n, k)
        };
        let ((an, ai), (bn, bi)) = (number(&ar, an), number(&br, bn));
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Keys in go-yaml's order. A merge sort, because `key_less` is not guaranteed to be a total
/// order and `slice::sort_by` may panic on inconsistent comparators.
fn sorted_keys(map: &Map<String, Value>) -> Vec<&String> {
    fn merge_sort(v: Vec<&String>) -> Vec<&String> {
        if v.len() <= 1 {
            return v;
        }
        let mut right = v;
        let left = merge_sort(right.drain(..right.len() / 2).collect());
        let right = merge_sort(right);
        let mut out = Vec::with_capacity(left.len() + right.len());
        let (mut l, mut r) = (0, 0);
        while l < left.len() && r < right.len() {
            // Stable: take from the right only when it is strictly smaller.
            if key_less(right[r], left[l]) {
                out.push(right[r]);
                r += 1;
            } else {
                out.push(left[l]);
                l += 1;
            }
        }
        out.extend_from_slice(&left[l..]);
        out.extend_from_slice(&right[r..]);
        out
    }
    merge_sort(map.keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_yaml_layout_and_port_key_order() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-nginx", "namespace": "default", "labels": {"run": "my-nginx"},
                          "creationTimestamp": "2024-05-01T10:00:00Z", "resourceVersion": "1234"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.162.149", "clusterIPs": ["10.96.162.149"],
                     "ports": [{"targetPort": 80, "protocol": "TCP", "port": 8080, "nodePort": 31704, "name": "http"}],
                     "selector": {"run": "my-nginx"}},
            "status": {"loadBalancer": {}}
        });
        assert_eq!(
            to_yaml(&svc),
            "apiVersion: v1\nkind: Service\nmetadata:\n  creationTimestamp: \"2024-05-01T10:00:00Z\"\n  \
             labels:\n    run: my-nginx\n  name: my-nginx\n  namespace: default\n  resourceVersion: \"1234\"\n\
             spec:\n  clusterIP: 10.96.162.149\n  clusterIPs:\n  - 10.96.162.149\n  ports:\n  - name: http\n    \
             nodePort: 31704\n    port: 8080\n    protocol: TCP\n    targetPort: 80\n  selector:\n    run: my-nginx\n  \
             type: NodePort\nstatus:\n  loadBalancer: {}\n"
        );
    }

    #[test]
    fn managed_fields_are_left_out_as_kubectl_leaves_them_out() {
        let managed = json!([{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:data": {}}}]);
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "a", "managedFields": managed}, "data": {"k": "v"}});
        assert_eq!(to_yaml(&cm), "data:\n  k: v\nkind: ConfigMap\nmetadata:\n  name: a\n");
        let list = json!({"kind": "List", "items": [cm]});
        assert!(!to_yaml(&list).contains("managedFields"));
        assert!(!crate::to_json(&list).contains("managedFields"));
    }

    #[test]
    fn scalar_quoting() {
        let cases = [
            ("1", "\"1\""),
            ("", "\"\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("0755", "\"0755\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("1.5", "\"1.5\""),
            (".5", "\".5\""),
            ("10:30", "\"10:30\""),
            ("2024-05-01", "\"2024-05-01\""),
            ("10.244.0.0/16", "10.244.0.0/16"),
            ("v1.31.0", "v1.31.0"),
            ("8080:80", "8080:80"),
            ("nginx:1.14.2", "nginx:1.14.2"),
            ("*", "'*'"),
            ("- x", "'- x'"),
            ("a: b", "'a: b'"),
            ("it's: x", "'it''s: x'"),
            (" lead", "' lead'"),
            ("tab\there", "\"tab\\there\""),
            ("-foo", "-foo"),
        ];
        for (input, want) in cases {
            assert_eq!(to_yaml(&json!({ "k": input })), format!("k: {want}\n"), "{input:?}");
        }
        assert_eq!(to_yaml(&json!({"80": 1, "": 2})), "\"\": 2\n\"80\": 1\n");
    }

    #[test]
    fn nested_collections() {
        // go-yaml v2 reads a bare `y` as a bool, so even the key `y` is quoted.
        let v = json!({"a": [[1, 2], {}, [], {"x": [{"y": null}]}], "b": {"c": {"d": false}}, "e": 1.5});
        assert_eq!(to_yaml(&v), "a:\n- - 1\n  - 2\n- {}\n- []\n- x:\n  - \"y\": null\nb:\n  c:\n    d: false\ne: 1.5\n");
        assert_eq!(to_yaml(&json!({})), "{}\n");
    }

    #[test]
    fn block_scalars() {
        let v = json!({"data": {"a": "line1\nline2\n", "b": "no newline\nat end", "c": "two\n\n", "d": "  indented\n"}});
        assert_eq!(
            to_yaml(&v),
            "data:\n  a: |\n    line1\n    line2\n  b: |-\n    no newline\n    at end\n  c: |+\n    two\n\n  d: |2\n      indented\n"
        );
        // Tabs make a string unprintable for YAML block style: double quotes with escapes.
        assert_eq!(to_yaml(&json!({"a": "x\n\ty\n"})), "a: \"x\\n\\ty\\n\"\n");
    }

    #[test]
    fn long_strings_fold_after_column_80() {
        let msg = "ReplicaSet \"my-nginx-deployment-5b56ccd65f\" has successfully progressed and is more than eighty wide.";
        let out = to_yaml(&json!({"conditions": [{"message": msg}]}));
        assert_eq!(
            out,
            "conditions:\n- message: ReplicaSet \"my-nginx-deployment-5b56ccd65f\" has successfully progressed\n    and is more than eighty wide.\n"
        );
    }

    #[test]
    fn natural_key_order() {
        let v = json!({"a10": 1, "a9": 2, "B": 3, "a": 4, "_x": 5});
        assert_eq!(to_yaml(&v), "_x: 5\nB: 3\na: 4\na9: 2\na10: 1\n");
    }
}
