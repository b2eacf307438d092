//! `emu label` and `emu annotate`: kubectl's `KEY=VAL` / `KEY-` changes to objects' labels or
//! annotations, with its `--overwrite` rule, selection (`NAME`s, `-l`, `--all`), result lines
//! and errors. Each object is read, changed here (a pure function) and written back whole with
//! the Replace call carrying the resourceVersion read, started over if it changed meanwhile.

use crate::context::{api_error, Ctx};
use crate::Globals;
use anyhow::bail;
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;

/// How often an update starts over when the object changed under it.
const ATTEMPTS: usize = 5;

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// The objects (`TYPE NAME...` or `TYPE/NAME...`), then the changes: `KEY=VALUE` to set,
    /// `KEY-` to remove.
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
    /// Change a key that already has another value (without it, that is an error).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub select: crate::verbs::SelectArgs,
    /// Print each object's labels (annotations) as KEY=VALUE lines, after the changes if any.
    #[arg(long)]
    pub list: bool,
    /// Output format: name (`pod/x`), instead of `pod/x labeled`.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    #[command(flatten)]
    pub dry_run: DryRunArg,
}

/// kubectl's `--dry-run=none|client|server`.
#[derive(Args, Debug, Clone, Default)]
pub struct DryRunArg {
    /// `client`: print what would change, change nothing; `server`: the API server checks the
    /// change too, and stores nothing.
    #[arg(long = "dry-run", num_args = 0..=1, require_equals = true, default_missing_value = "unchanged", value_name = "STRATEGY")]
    pub dry_run: Option<String>,
}

/// Whether and where a change is only tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

impl DryRunArg {
    /// The strategy, with kubectl's error for another; a bare `--dry-run` is `client`, with
    /// kubectl's deprecation warning.
    pub fn strategy(&self) -> anyhow::Result<DryRun> {
        match self.dry_run.as_deref() {
            None | Some("none") => Ok(DryRun::None),
            Some("client") => Ok(DryRun::Client),
            Some("server") => Ok(DryRun::Server),
            Some("unchanged") => {
                let header = crate::verbs::klog_header('W', "helpers.go:703");
                eprintln!("{header} --dry-run is deprecated and can be replaced with --dry-run=client.");
                Ok(DryRun::Client)
            }
            Some(other) => bail!("Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."),
        }
    }
}

impl DryRun {
    /// What kubectl adds to a result line.
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }

    /// Writes `object` back whole unless this is a dry run: not at all for `client`; for
    /// `server`, checked by the API server and not stored.
    pub fn replace(self, ctx: &Ctx, client: &mut crate::verbs::Client, object: &Value) -> Result<(), tonic::Status> {
        match self {
            DryRun::None => ctx.block_on(crate::edit::replace_one(client, object)).map(|_| ()),
            DryRun::Client => Ok(()),
            DryRun::Server => {
                let objects = vec![emu_proto::Object { json: object.to_string() }];
                ctx.block_on(client.apply(emu_proto::ApplyRequest { objects, create_only: false, dry_run: true })).map(|_| ())
            }
        }
    }
}

/// What is changed: labels (`emu label`) or annotations (`emu annotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
}

/// One change of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(String, String),
    Remove(String),
}

/// Whether an argument is a change rather than an object (kubectl's test).
fn is_change(arg: &str) -> bool {
    (arg.contains('=') && arg != "=") || arg.ends_with('-')
}

/// `KEY=VALUE` and `KEY-` into changes, with kubectl's errors.
pub fn parse_changes(field: Field, specs: &[String]) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    for s in specs {
        if let Some((k, v)) = s.split_once('=') {
            if k.is_empty() || v.contains('=') {
                match field {
                    Field::Labels => bail!("invalid label spec: {s}"),
                    Field::Annotations => bail!("invalid annotation format: {s}"),
                }
            }
            changes.push(Change::Set(k.to_string(), v.to_string()));
        } else if let Some(k) = s.strip_suffix('-') {
            changes.push(Change::Remove(k.to_string()));
        }
    }
    let set: Vec<&str> = changes.iter().filter_map(|c| if let Change::Set(k, _) = c { Some(k.as_str()) } else { None }).collect();
    if changes.iter().any(|c| matches!(c, Change::Remove(k) if set.contains(&k.as_str()))) {
        match field {
            Field::Labels => bail!("can not both modify and remove a label in the same command"),
            Field::Annotations => bail!("can not both modify and remove an annotation in the same command"),
        }
    }
    Ok(changes)
}

/// The outcome of the changes on one object's map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub map: BTreeMap<String, String>,
    pub changed: bool,
    /// Keys to remove that were not there (kubectl tells of them for labels, on stdout).
    pub missing: Vec<String>,
}

/// The changes applied to `current`, or kubectl's error when one would change an existing
/// value without `overwrite`.
pub fn apply_changes(field: Field, current: &BTreeMap<String, String>, changes: &[Change], overwrite: bool) -> anyhow::Result<Outcome> {
    let mut map = current.clone();
    let mut missing = Vec::new();
    for c in changes {
        match c {
            Change::Set(k, v) => {
                if let Some(old) = current.get(k).filter(|old| !overwrite && (*old != v || field == Field::Annotations)) {
                    match field {
                        Field::Labels => bail!("'{k}' already has a value ({old}), and --overwrite is false"),
                        Field::Annotations => {
                            bail!("--overwrite is false but found the following declared annotation(s): '{k}' already has a value ({old})")
                        }
                    }
                }
                map.insert(k.clone(), v.clone());
            }
            Change::Remove(k) => {
                if map.remove(k).is_none() {
                    missing.push(k.clone());
                }
            }
        }
    }
    let changed = &map != current;
    Ok(Outcome { map, changed, missing })
}

/// kubectl's result word: `labeled`, `unlabeled` (only removals), `not labeled` (no change);
/// annotate says `annotated` whatever happened.
pub fn result_word(field: Field, changes: &[Change], changed: bool) -> &'static str {
    match field {
        Field::Annotations => "annotated",
        Field::Labels if !changed => "not labeled",
        Field::Labels if changes.iter().all(|c| matches!(c, Change::Remove(_))) => "unlabeled",
        Field::Labels => "labeled",
    }
}

fn map_of(o: &Value, field: Field) -> BTreeMap<String, String> {
    o["metadata"][field.key()]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

pub fn label(a: LabelArgs, field: Field, g: &Globals) -> anyhow::Result<i32> {
    let (objects, specs): (Vec<String>, Vec<String>) = a.args.iter().cloned().partition(|s| !is_change(s));
    if objects.is_empty() {
        bail!("one or more resources must be specified as <resource> <name> or <resource>/<name>");
    }
    if specs.is_empty() && !a.list {
        bail!("at least one {} update is required", field.noun());
    }
    let changes = parse_changes(field, &specs)?;
    let dry_run = a.dry_run.strategy()?;
    let output = a.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "name") {
        bail!("unable to match a printer suitable for the output format {output:?}, allowed formats are: name");
    }
    let groups = crate::verbs::parse_targets(&objects)?;
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    // Every object first, so that a selection error changes nothing.
    let how = a.select.selection(None);
    let targets = crate::verbs::select_targets(&ctx, &mut client, &groups, g, &how)?;
    for (rk, ns, name) in targets {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut live = ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?;
            let outcome = apply_changes(field, &map_of(&live, field), &changes, a.overwrite)?;
            if field == Field::Labels {
                for k in &outcome.missing {
                    println!("label {k:?} not found.");
                }
            }
            if outcome.changed {
                live["metadata"][field.key()] = serde_json::to_value(&outcome.map)?;
                match dry_run.replace(&ctx, &mut client, &live) {
                    Ok(_) => {}
                    Err(s) if s.code() == tonic::Code::Aborted && attempt < ATTEMPTS => continue,
                    Err(s) => return Err(api_error(s)),
                }
            }
            if a.list {
                for (k, v) in &outcome.map {
                    println!("{k}={v}");
                }
            } else if output == "name" {
                println!("{}", emu_kubectl::resource_name(rk.kind, &name));
            } else {
                let word = result_word(field, &changes, outcome.changed);
                println!("{} {word}{}", emu_kubectl::resource_name(rk.kind, &name), dry_run.suffix());
            }
            break;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn changes_parse_with_kubectls_errors() {
        let c = parse_changes(Field::Labels, &specs(&["app=web", "tier-", "empty="])).unwrap();
        assert_eq!(c, [Change::Set("app".into(), "web".into()), Change::Remove("tier".into()), Change::Set("empty".into(), String::new())]);
        assert_eq!(parse_changes(Field::Labels, &specs(&["a==1"])).unwrap_err().to_string(), "invalid label spec: a==1");
        assert_eq!(
            parse_changes(Field::Labels, &specs(&["e=5", "e-"])).unwrap_err().to_string(),
            "can not both modify and remove a label in the same command"
        );
        assert!(is_change("app=web") && is_change("app-") && !is_change("pod/x") && !is_change("pods"));
    }

    #[test]
    fn overwrite_rules_and_result_words() {
        let current = map(&[("app", "web")]);
        let set = |v: &str| vec![Change::Set("app".into(), v.into())];
        let err = apply_changes(Field::Labels, &current, &set("web2"), false).unwrap_err().to_string();
        assert_eq!(err, "'app' already has a value (web), and --overwrite is false");
        // The same value is no change, and no error.
        let same = apply_changes(Field::Labels, &current, &set("web"), false).unwrap();
        assert!(!same.changed);
        assert_eq!(result_word(Field::Labels, &set("web"), same.changed), "not labeled");
        let over = apply_changes(Field::Labels, &current, &set("web2"), true).unwrap();
        assert_eq!((over.changed, over.map["app"].as_str()), (true, "web2"));
        assert_eq!(result_word(Field::Labels, &set("web2"), true), "labeled");
        let rm = vec![Change::Remove("app".into())];
        let gone = apply_changes(Field::Labels, &current, &rm, false).unwrap();
        assert!(gone.changed && gone.map.is_empty());
        assert_eq!(result_word(Field::Labels, &rm, true), "unlabeled");
        let absent = apply_changes(Field::Labels, &BTreeMap::new(), &rm, false).unwrap();
        assert_eq!((absent.changed, absent.missing), (false, vec!["app".to_string()]));
        let err = apply_changes(Field::Annotations, &map(&[("n", "hi")]), &[Change::Set("n".into(), "ho".into())], false)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--overwrite is false but found the following declared annotation(s): 'n' already has a value (hi)");
        assert_eq!(result_word(Field::Annotations, &rm, false), "annotated");
    }
}
