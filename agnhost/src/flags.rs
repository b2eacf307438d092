//! Command-line flags as agnhost's cobra/pflag and Go's `flag` package read them: `--name=value`,
//! `--name value`, a bool as `--name` or `--name=false`, and (Go's `flag`, which the older
//! serve_hostname image uses) the same with one dash. Errors in cobra's words.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Text,
}

/// One flag: its name, kind and default value (as text).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
}

pub const fn flag(name: &'static str, kind: Kind, default: &'static str) -> Spec {
    Spec { name, kind, default }
}

/// klog's flags, which agnhost accepts on every subcommand (e2e tests pass `--v=…`); ignored.
pub const KLOG: &[Spec] = &[
    flag("v", Kind::Text, "0"),
    flag("vmodule", Kind::Text, ""),
    flag("log_dir", Kind::Text, ""),
    flag("log_file", Kind::Text, ""),
    flag("log_file_max_size", Kind::Text, "1800"),
    flag("log_backtrace_at", Kind::Text, ""),
    flag("stderrthreshold", Kind::Text, "2"),
    flag("logtostderr", Kind::Bool, "true"),
    flag("alsologtostderr", Kind::Bool, "false"),
    flag("add_dir_header", Kind::Bool, "false"),
    flag("skip_headers", Kind::Bool, "false"),
    flag("skip_log_headers", Kind::Bool, "false"),
    flag("one_output", Kind::Bool, "false"),
];

/// The flags' values, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values(BTreeMap<&'static str, String>);

impl Values {
    pub fn text(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// An int flag (checked at parsing).
    pub fn int(&self, name: &str) -> i64 {
        self.text(name).parse().unwrap_or(0)
    }

    /// A bool flag (checked at parsing).
    pub fn bool(&self, name: &str) -> bool {
        parse_bool(self.text(name)) == Some(true)
    }
}

/// Go's strconv.ParseBool.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (after the subcommand) against `specs` and [`KLOG`]; no positional arguments
/// are allowed, as agnhost's subcommands take none. The error is cobra's message, without
/// its `Error: ` prefix.
pub fn parse(specs: &[Spec], args: &[String]) -> Result<Values, String> {
    let all: Vec<&Spec> = specs.iter().chain(KLOG).collect();
    let mut values: BTreeMap<&'static str, String> = all.iter().map(|s| (s.name, s.default.to_string())).collect();
    let mut positional = 0;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            // Everything after is positional.
            positional += args.len() - i;
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).filter(|b| !b.is_empty()) else {
            positional += 1;
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let spec = all.iter().find(|s| s.name == name).ok_or_else(|| format!("unknown flag: --{name}"))?;
        let value = match (spec.kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_string(),
            (_, None) => {
                let v = args.get(i).ok_or_else(|| format!("flag needs an argument: --{name}"))?;
                i += 1;
                v.clone()
            }
        };
        match spec.kind {
            Kind::Int if value.parse::<i64>().is_err() => {
                return Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseInt: parsing {value:?}: invalid syntax"
                ));
            }
            Kind::Bool if parse_bool(&value).is_none() => {
                return Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseBool: parsing {value:?}: invalid syntax"
                ));
            }
            _ => {}
        }
        values.insert(spec.name, value);
    }
    if positional > 0 {
        return Err(format!("accepts at most 0 arg(s), received {positional}"));
    }
    Ok(Values(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[flag("http-port", Kind::Int, "8080"), flag("udp", Kind::Bool, "false"), flag("name", Kind::Text, "")];

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_and_the_spellings_of_values() {
        let v = parse(SPECS, &[]).expect("no flags");
        assert_eq!((v.int("http-port"), v.bool("udp"), v.text("name")), (8080, false, ""));
        let v = parse(SPECS, &args(&["--http-port=80", "--udp", "--name", "x"])).expect("flags");
        assert_eq!((v.int("http-port"), v.bool("udp"), v.text("name")), (80, true, "x"));
        let v = parse(SPECS, &args(&["-http-port", "81", "--udp=false", "--v=4"])).expect("go flag spelling, klog's --v");
        assert_eq!((v.int("http-port"), v.bool("udp")), (81, false));
    }

    #[test]
    fn errors_in_cobras_words() {
        assert_eq!(parse(SPECS, &args(&["--nope"])), Err("unknown flag: --nope".into()));
        assert_eq!(parse(SPECS, &args(&["--http-port"])), Err("flag needs an argument: --http-port".into()));
        assert_eq!(
            parse(SPECS, &args(&["--http-port=x"])),
            Err("invalid argument \"x\" for \"--http-port\" flag: strconv.ParseInt: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(parse(SPECS, &args(&["extra"])), Err("accepts at most 0 arg(s), received 1".into()));
    }
}
