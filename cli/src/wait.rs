//! `emu wait`: until objects meet a condition (`--for=condition=Ready`, `--for=delete`,
//! `--for=create`, `--for=jsonpath={.status.phase}=Running`), as kubectl waits, with its lines and errors. The
//! objects are read again every few hundred milliseconds and judged by a pure function, so a
//! controller restart or a lost stream changes nothing.

use crate::context::Ctx;
use crate::Globals;
use anyhow::bail;
use clap::Args;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often the objects are read again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The objects: `TYPE NAME...`, `TYPE/NAME...`, or `TYPE` with -l or --all.
    #[arg(value_name = "TYPE/NAME")]
    pub targets: Vec<String>,
    /// What to wait for: `condition=NAME[=VALUE]` (VALUE defaults to True), `delete`,
    /// `create`, or `jsonpath={PATH}[=VALUE]`.
    #[arg(long = "for", value_name = "CONDITION")]
    pub for_: Option<String>,
    /// How long to wait for each object, e.g. 30s, 2m, 0s (look once).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    #[command(flatten)]
    pub select: crate::verbs::SelectArgs,
}

/// A `--for` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A `status.conditions[]` entry of this type (any case) with this status.
    Condition {
        name: String,
        value: String,
    },
    Delete,
    /// That the object exists (kubectl ≥ 1.31).
    Create,
    /// A JSONPath template's result, equal to the value when one is given, else any.
    JsonPath {
        template: String,
        value: Option<String>,
    },
}

/// Parses `--for` with kubectl's error for what it does not know.
pub fn parse_for(text: &str) -> anyhow::Result<Wanted> {
    if text.eq_ignore_ascii_case("delete") {
        return Ok(Wanted::Delete);
    }
    if text.eq_ignore_ascii_case("create") {
        return Ok(Wanted::Create);
    }
    if let Some(rest) = text.strip_prefix("condition=") {
        let (name, value) = rest.split_once('=').unwrap_or((rest, "True"));
        return Ok(Wanted::Condition { name: name.to_string(), value: value.to_string() });
    }
    if let Some(rest) = text.strip_prefix("jsonpath=") {
        // The template ends at its last `}`; what follows `=` is the value.
        let end = rest.rfind('}').map(|i| i + 1).unwrap_or(rest.len());
        let (template, tail) = rest.split_at(end);
        if template.is_empty() {
            bail!(
                "jsonpath wait format must be --for=jsonpath='{{.status.readyReplicas}}'=3 or --for=jsonpath='{{.status.readyReplicas}}'"
            );
        }
        let value = match tail.strip_prefix('=') {
            Some(v) => Some(v.to_string()),
            None if tail.is_empty() => None,
            None => bail!("unrecognized condition: {text:?}"),
        };
        return Ok(Wanted::JsonPath { template: template.to_string(), value });
    }
    bail!("unrecognized condition: {text:?}")
}

/// Whether `object` (None: it does not exist) meets `wanted`.
pub fn met(wanted: &Wanted, object: Option<&Value>) -> bool {
    match (wanted, object) {
        (Wanted::Delete, o) => o.is_none(),
        (Wanted::Create, o) => o.is_some(),
        (_, None) => false,
        (Wanted::Condition { name, value }, Some(o)) => o["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(name))
                && c["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(value))
                && c["observedGeneration"].as_i64().is_none_or(|g| o["metadata"]["generation"].as_i64().is_none_or(|m| g >= m))
        }),
        (Wanted::JsonPath { template, value }, Some(o)) => match emu_kubectl::jsonpath(template, o) {
            Ok(found) => match value {
                Some(v) => &found == v,
                None => !found.is_empty(),
            },
            Err(_) => false,
        },
    }
}

/// `--timeout`: a Go duration; `0s` (or a negative one, as kubectl) looks once.
fn timeout(text: &str) -> anyhow::Result<Duration> {
    if text.starts_with('-') || text.trim_start_matches('0').trim_end_matches('s').is_empty() && text.starts_with('0') {
        return Ok(Duration::ZERO);
    }
    crate::verbs::since_duration(text).map_err(anyhow::Error::msg)
}

pub fn wait(a: WaitArgs, g: &Globals) -> anyhow::Result<i32> {
    let wanted = parse_for(a.for_.as_deref().unwrap_or(""))?;
    let limit = timeout(&a.timeout)?;
    if a.targets.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let groups = crate::verbs::parse_targets(&a.targets)?;
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    // --for=create waits for something to match.
    let how = a.select.selection((wanted == Wanted::Create).then(|| Instant::now() + limit));
    let targets = crate::verbs::select_targets(&ctx, &mut client, &groups, g, &how)?;
    if targets.is_empty() {
        bail!("no matching resources found");
    }
    for (rk, ns, name) in targets {
        let deadline = Instant::now() + limit;
        let mut first = true;
        loop {
            let current =
                match ctx.block_on(client.get(emu_proto::ObjectRef { kind: rk.kind.into(), namespace: ns.clone(), name: name.clone() })) {
                    Ok(o) => Some(serde_json::from_str::<Value>(&o.into_inner().json)?),
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        // Gone before the wait began: nothing to wait for (kubectl prints nothing);
                        // gone since: met. A condition on an object that does not exist is
                        // kubectl's NotFound.
                        if wanted == Wanted::Create {
                            if Instant::now() >= deadline {
                                bail!("timed out waiting for the condition");
                            }
                            std::thread::sleep(POLL);
                            continue;
                        }
                        if wanted == Wanted::Delete {
                            if !first {
                                println!("{} condition met", emu_kubectl::resource_name(rk.kind, &name));
                            }
                            break;
                        }
                        return Err(crate::context::api_error(s));
                    }
                    Err(s) => return Err(crate::context::api_error(s)),
                };
            if met(&wanted, current.as_ref()) {
                println!("{} condition met", emu_kubectl::resource_name(rk.kind, &name));
                break;
            }
            first = false;
            if Instant::now() >= deadline {
                bail!("timed out waiting for the condition on {}/{name}", rk.qualified_plural());
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(10)));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_parse_as_kubectl_reads_them() {
        assert_eq!(parse_for("condition=Ready").unwrap(), Wanted::Condition { name: "Ready".into(), value: "True".into() });
        assert_eq!(parse_for("condition=Ready=false").unwrap(), Wanted::Condition { name: "Ready".into(), value: "false".into() });
        assert_eq!(parse_for("delete").unwrap(), Wanted::Delete);
        assert_eq!(
            parse_for("jsonpath={.status.phase}=Running").unwrap(),
            Wanted::JsonPath { template: "{.status.phase}".into(), value: Some("Running".into()) }
        );
        assert_eq!(parse_for("jsonpath={.status.phase}").unwrap(), Wanted::JsonPath { template: "{.status.phase}".into(), value: None });
        assert_eq!(parse_for("bogus").unwrap_err().to_string(), "unrecognized condition: \"bogus\"");
        assert_eq!(parse_for("").unwrap_err().to_string(), "unrecognized condition: \"\"");
        assert_eq!(timeout("0s").unwrap(), Duration::ZERO);
        assert_eq!(timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(timeout("1m30s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn objects_are_judged() {
        let pod = json!({"metadata": {"name": "x"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let ready = parse_for("condition=ready").unwrap();
        assert!(met(&ready, Some(&pod)));
        assert!(!met(&parse_for("condition=Ready=False").unwrap(), Some(&pod)));
        assert!(!met(&ready, None));
        assert!(met(&Wanted::Delete, None) && !met(&Wanted::Delete, Some(&pod)));
        assert!(met(&parse_for("create").unwrap(), Some(&pod)) && !met(&Wanted::Create, None));
        assert!(met(&parse_for("jsonpath={.status.phase}=Running").unwrap(), Some(&pod)));
        assert!(!met(&parse_for("jsonpath={.status.phase}=Pending").unwrap(), Some(&pod)));
        assert!(met(&parse_for("jsonpath={.status.phase}").unwrap(), Some(&pod)));
        // A condition of an older generation is not yet the object's.
        let stale = json!({"metadata": {"generation": 3}, "status": {"conditions": [{"type": "Available", "status": "True", "observedGeneration": 2}]}});
        assert!(!met(&parse_for("condition=Available").unwrap(), Some(&stale)));
    }
}
