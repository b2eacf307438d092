//! `emu edit` and `emu patch`: changing an object in place, as kubectl does. Both read the
//! object, change it here (in the user's editor, or with `core::patch`), and send it back whole
//! with the API's Replace call (a PUT) carrying the resourceVersion they read, so that a change
//! made by someone else in between is not silently overwritten: `patch` then starts again from
//! the new object (as the API server retries a PATCH), `edit` reopens the file with the
//! Conflict written in.

use crate::context::{api_error, render_error, Ctx};
use crate::Globals;
use anyhow::{bail, Context as _};
use clap::Args;
use emu_api::kinds::{self, ResourceKind};
use emu_api::patch::{self, PatchType};
use emu_api::{manifest, object};
use emu_kubectl as printers;
use emu_proto::api_client::ApiClient;
use emu_proto::{Object, ReplaceRequest};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

#[derive(Args, Debug)]
pub struct PatchArgs {
    /// `TYPE NAME` or `TYPE/NAME` (none with `--local`).
    #[arg(num_args = 0..=2, value_parser = crate::verbs::ResourceArg, hide_possible_values = true)]
    pub target: Vec<String>,
    /// The patch, as JSON or YAML.
    #[arg(short = 'p', long = "patch")]
    pub patch: Option<String>,
    /// strategic (Kubernetes' strategic merge), merge (RFC 7386) or json (RFC 6902).
    #[arg(long = "type", default_value = "strategic")]
    pub patch_type: String,
    /// With `--local`: the objects to patch, from a manifest file, a directory or `-` (stdin).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Patch the objects of `-f` here and print them, with no cluster and no root (kubectl's `--local`).
    #[arg(long)]
    pub local: bool,
    /// Print the patched objects as json, yaml, name or jsonpath=TEMPLATE (default: `TYPE/NAME patched`).
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    #[arg(required = true, num_args = 1..=2, value_parser = crate::verbs::ResourceArg, hide_possible_values = true)]
    pub target: Vec<String>,
    /// The format to edit in: yaml or json.
    #[arg(short = 'o', long = "output", default_value = "yaml")]
    pub output: String,
}

/// `TYPE NAME` or `TYPE/NAME`: one object.
fn target(verb: &str, args: &[String]) -> anyhow::Result<(&'static ResourceKind, String)> {
    let (kind, name) = match args {
        [one] => one.split_once('/').map(|(k, n)| (k.to_string(), n.to_string())).unwrap_or((one.clone(), String::new())),
        [kind, name] if !kind.contains('/') => (kind.clone(), name.clone()),
        _ => bail!("{verb} takes one object: TYPE NAME or TYPE/NAME"),
    };
    let rk = kinds::lookup(&kind).ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type {kind:?}"))?;
    if name.is_empty() {
        bail!("{verb} takes one object: TYPE NAME or TYPE/NAME");
    }
    Ok((rk, name))
}

fn namespace(rk: &ResourceKind, flag: Option<String>) -> String {
    if rk.namespaced {
        flag.unwrap_or_else(|| "default".into())
    } else {
        String::new()
    }
}

/// Whether `new` still names the object `live` is: a replace of another name would write
/// another object. A left-out namespace is the object's own.
fn same_identity(live: &Value, new: &Value) -> bool {
    let ns = |v: &Value| object::namespace(v).to_string();
    live["apiVersion"] == new["apiVersion"]
        && object::kind(live) == object::kind(new)
        && object::name(live) == object::name(new)
        && (ns(new).is_empty() || ns(new) == ns(live))
}

/// Sends `obj` whole with the Replace call; the action the API took ("configured" or
/// "unchanged"), its warnings printed first as kubectl prints them.
pub(crate) async fn replace_one(client: &mut ApiClient<Channel>, obj: &Value) -> Result<String, tonic::Status> {
    let resp = client.replace(ReplaceRequest { objects: vec![Object { json: obj.to_string() }] }).await?.into_inner();
    let Some(result) = resp.results.into_iter().next() else { return Ok(String::new()) };
    crate::warnings::WarningWriter::stderr().print(&result.warnings);
    Ok(result.action)
}

// ---------------------------------------------------------------------------------------------
// patch

/// How often a patch starts over when the object changed under it (the API server's PATCH
/// retries as often).
const PATCH_ATTEMPTS: usize = 5;

/// kubectl's words for a command given no object.
const NO_OBJECTS: &str = "You must provide one or more resources by argument or filename.
Example resource specifications include:
   '-f rsrc.yaml'
   '--filename=rsrc.json'
   '<resource> <name>'
   '<resource>'";

/// `-o` of `emu patch`: what is printed for each patched object.
enum Output {
    /// `service/my-nginx patched`, or `patched (no change)`.
    Line,
    Name,
    Json,
    Yaml,
    JsonPath(String),
}

impl Output {
    fn parse(flag: Option<&str>) -> anyhow::Result<Output> {
        Ok(match flag {
            None => Output::Line,
            Some("name") => Output::Name,
            Some("json") => Output::Json,
            Some("yaml") => Output::Yaml,
            Some(other) => match other.strip_prefix("jsonpath=") {
                Some(template) => Output::JsonPath(template.to_string()),
                None => bail!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,jsonpath,name,yaml"
                ),
            },
        })
    }

    /// The text for `patched`; `changed`: whether the patch changed anything.
    fn render(&self, patched: &Value, changed: bool) -> anyhow::Result<String> {
        // kubectl's name of the object: lower-case kind, `.group` outside the core group.
        let group = patched["apiVersion"].as_str().and_then(|v| v.split_once('/')).map_or("", |(group, _)| group);
        let name =
            format!("{}{}{group}/{}", object::kind(patched).to_lowercase(), if group.is_empty() { "" } else { "." }, object::name(patched));
        Ok(match self {
            Output::Line => format!("{name} patched{}\n", if changed { "" } else { " (no change)" }),
            Output::Name => format!("{name}\n"),
            Output::Json => printers::to_json(patched),
            Output::Yaml => printers::to_yaml(patched),
            Output::JsonPath(template) => printers::jsonpath(template, patched)?,
        })
    }
}

pub fn patch(a: PatchArgs, g: &Globals) -> anyhow::Result<i32> {
    // kubectl's order of checks.
    let text = a.patch.as_deref().unwrap_or_default();
    if text.is_empty() {
        return Err(patch::PatchError::Empty.into());
    }
    if a.local && !a.target.is_empty() {
        bail!("cannot specify --local and server resources");
    }
    let ty: PatchType = a.patch_type.parse()?;
    let output = Output::parse(a.output.as_deref())?;
    if a.local {
        return patch_local(&a.files, ty, &patch::read(text)?, &output, g.namespace.as_deref());
    }
    if !a.files.is_empty() {
        bail!("emu patch reads -f only with --local: name the object to patch in the cluster (TYPE NAME)");
    }
    if a.target.is_empty() {
        bail!("{NO_OBJECTS}");
    }
    let (rk, name) = target("patch", &a.target)?;
    let patch = patch::parse(text)?;
    let ns = namespace(rk, g.namespace.clone());
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    for attempt in 1..=PATCH_ATTEMPTS {
        let live = ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?;
        let patched = patch::apply(ty, &live, &patch)?;
        if !same_identity(&live, &patched) {
            bail!(
                "the patch changes the apiVersion, kind, name or namespace of {}/{name}, which a patch cannot: create the other object instead",
                rk.qualified()
            );
        }
        match ctx.block_on(replace_one(&mut client, &patched)) {
            Ok(action) => {
                // Printed as stored (with its new resourceVersion), as the API server returns it.
                let stored = match output {
                    Output::Line => patched,
                    _ => ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?,
                };
                print!("{}", output.render(&stored, action != "unchanged")?);
                return Ok(0);
            }
            Err(s) if s.code() == tonic::Code::Aborted && attempt < PATCH_ATTEMPTS => continue,
            Err(s) => return Err(api_error(s)),
        }
    }
    unreachable!("the last attempt returns")
}

/// `emu patch --local`: every object of `files` patched here and printed, as `kubectl patch
/// --local` does: an object that fails does not stop the others, and the failures are told at
/// the end (one as `error: …`, several one a line).
fn patch_local(
    files: &[PathBuf],
    ty: PatchType,
    patch: &patch::PatchText,
    output: &Output,
    namespace: Option<&str>,
) -> anyhow::Result<i32> {
    if files.is_empty() {
        bail!("{NO_OBJECTS}");
    }
    let mut objects = Vec::new();
    for file in files {
        if file.as_os_str() != "-" && !file.exists() {
            bail!("the path {:?} does not exist", file.display().to_string());
        }
        objects.extend(crate::verbs::read_manifests(file)?.into_iter().flat_map(|(_, docs)| docs));
    }
    let mut failures = Vec::new();
    for object in &objects {
        let own = object::namespace(object);
        let patched = match namespace {
            Some(flag) if !own.is_empty() && own != flag => Err(anyhow::anyhow!(
                "the namespace from the provided object {own:?} does not match the namespace {flag:?}. You must pass '--namespace={own}' to perform this operation."
            )),
            _ => patch::apply_local(ty, object, patch).map_err(anyhow::Error::from),
        };
        match patched {
            Ok(patched) => print!("{}", output.render(&patched, patched != *object)?),
            Err(e) => failures.push(e.to_string()),
        }
    }
    // kubectl ends a message with a newline unless it has one (apimachinery's order mismatch
    // does).
    let line = |f: &str| if f.ends_with('\n') { f.to_string() } else { format!("{f}\n") };
    match failures.as_slice() {
        [] => Ok(0),
        [one] => {
            eprint!("error: {}", line(one));
            Ok(1)
        }
        several => {
            several.iter().for_each(|f| eprint!("{}", line(f)));
            Ok(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// edit

/// kubectl's header of the file it opens.
const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

/// One failure written at the top of the reopened file: a head line and its causes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reason {
    head: String,
    causes: Vec<String>,
}

impl Reason {
    fn plain(head: impl Into<String>) -> Reason {
        Reason { head: head.into(), causes: Vec::new() }
    }
}

/// kubectl's `hashOnLineBreak`: continuation lines stay comments.
fn hash_on_line_break(s: &str) -> String {
    s.replace('\n', "\n# ").replace("\n# #", "\n#")
}

/// The header, and the reasons of the last failure as kubectl writes them (`editHeader.writeTo`).
fn header(reasons: &[Reason]) -> String {
    let mut out = HEADER.to_string();
    for r in reasons {
        let colon = if r.causes.is_empty() { "" } else { ":" };
        out.push_str(&format!("# {}{colon}\n", hash_on_line_break(&r.head)));
        for c in &r.causes {
            out.push_str(&format!("# * {}\n", hash_on_line_break(c)));
        }
        out.push_str("#\n");
    }
    out
}

/// kubectl's `StripComments`: lines starting with `#` (after blanks) go, `#!` stays.
fn strip_comments(text: &str) -> String {
    text.split('\n')
        .filter(|l| {
            let t = l.trim();
            !t.starts_with('#') || t.starts_with("#!")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What to do with what the user saved.
#[derive(Debug, PartialEq)]
enum Saved {
    /// The text is the one first shown, comments aside.
    Unchanged,
    /// Nothing but comments and blank lines.
    Empty,
    /// Saved unchanged after a failure: the user gives up.
    GaveUp,
    /// Not something to send: reopen with this reason.
    Invalid(Reason),
    /// Another object than the one being edited: stop (kubectl does not reopen for this).
    Refused(String),
    /// The object to send.
    Object(Value),
}

/// Judges a save, in kubectl's order: `shown` is the text first shown, `failed` the previous
/// save when it failed, `saved` the file now, `live` the object being edited.
fn judge(shown: &str, failed: Option<&str>, saved: &str, live: &Value) -> Saved {
    let stripped = strip_comments(saved);
    if failed.is_some_and(|f| strip_comments(f) == stripped) {
        return Saved::GaveUp;
    }
    if strip_comments(shown) == stripped {
        return Saved::Unchanged;
    }
    if stripped.trim().is_empty() {
        return Saved::Empty;
    }
    // Parsed as saved (YAML ignores the comments), so that line numbers are the file's.
    let docs = match manifest::parse_documents(saved) {
        Ok(docs) => docs,
        Err(e) => return Saved::Invalid(Reason::plain(format!("The edited file had a syntax error: {e}"))),
    };
    let [doc] = docs.as_slice() else {
        return Saved::Invalid(Reason::plain(format!("The edited file must hold one object, not {}", docs.len())));
    };
    if !same_identity(live, &doc.value) {
        return Saved::Refused("At least one of apiVersion, kind and name was changed".into());
    }
    Saved::Object(doc.value.clone())
}

/// The reason to show for an API error on `resource` (`services`) `name`: the causes of a 422
/// (`The Service "x" is invalid: ...`) under `services "x" was not valid`, else the error as
/// emu prints it.
fn api_reason(resource: &str, name: &str, status: &tonic::Status) -> Reason {
    let msg = status.message();
    if status.code() == tonic::Code::InvalidArgument {
        if let Some((_, causes)) = msg.split_once(" is invalid: ").filter(|_| msg.starts_with("The ")) {
            let causes = match causes.strip_prefix("\n* ") {
                Some(many) => many.split("\n* ").map(str::to_string).collect(),
                None => vec![causes.to_string()],
            };
            return Reason { head: format!("{resource} {name:?} was not valid"), causes };
        }
    }
    Reason::plain(render_error(&api_error(status.clone())))
}

/// The user's editor as kubectl finds it: `$KUBE_EDITOR`, else `$EDITOR`, else `vi`. A value
/// with spaces is split into words; one with quotes or backslashes is run by the shell.
#[derive(Debug, PartialEq, Eq)]
struct Editor {
    args: Vec<String>,
    shell: bool,
}

impl Editor {
    fn from_env(var: impl Fn(&str) -> Option<String>) -> Editor {
        let editor = ["KUBE_EDITOR", "EDITOR"].iter().find_map(|v| var(v).filter(|e| !e.is_empty())).unwrap_or_else(|| "vi".into());
        if !editor.contains(' ') {
            return Editor { args: vec![editor], shell: false };
        }
        if !editor.contains(['"', '\'', '\\']) {
            return Editor { args: editor.split_whitespace().map(str::to_string).collect(), shell: false };
        }
        let shell = var("SHELL").filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/bash".into());
        Editor { args: vec![shell, "-c".into(), editor], shell: true }
    }

    /// The command line that edits `file`.
    fn argv(&self, file: &Path) -> Vec<String> {
        let mut argv = self.args.clone();
        if self.shell {
            if let Some(script) = argv.last_mut() {
                script.push_str(&format!(" {:?}", file.display().to_string()));
            }
        } else {
            argv.push(file.display().to_string());
        }
        argv
    }

    fn launch(&self, file: &Path) -> anyhow::Result<()> {
        let argv = self.argv(file);
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .with_context(|| format!("there was a problem with the editor {:?}", self.args))?;
        if !status.success() {
            bail!("there was a problem with the editor {:?}: {status}", self.args);
        }
        Ok(())
    }
}

/// A new file `/tmp/emu-edit-<random>.<ext>` (mode 0600) holding `text`.
fn temp_file(ext: &str, text: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed = nanos ^ (u128::from(std::process::id()) << 64);
    for i in 0..100u128 {
        let path = dir.join(format!("emu-edit-{:010}.{ext}", (seed.wrapping_add(i * 7919)) % 10_000_000_000));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating a file in {}", dir.display())),
        }
    }
    bail!("cannot create a file for editing in {}", dir.display())
}

/// kubectl's `preservedFile`: tells where the user's text was kept.
fn preserved(file: &Path) {
    eprintln!("A copy of your changes has been stored to {:?}", file.display().to_string());
}

pub fn edit(a: EditArgs, g: &Globals) -> anyhow::Result<i32> {
    let (render, ext): (fn(&Value) -> String, &str) = match a.output.as_str() {
        "yaml" => (printers::to_yaml, "yaml"),
        "json" => (printers::to_json, "json"),
        other => bail!("the edit mode only supports the output formats yaml and json, not {other:?}"),
    };
    let (rk, name) = target("edit", &a.target)?;
    let ns = namespace(rk, g.namespace.clone());
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let live = ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?;
    let editor = Editor::from_env(|v| std::env::var(v).ok());
    let resource = rk.qualified_plural();
    let shown = format!("{HEADER}{}", render(&live));
    let mut text = shown.clone();
    // The previous save and its file, when it failed.
    let mut failed: Option<(String, PathBuf)> = None;
    loop {
        let file = temp_file(ext, &text)?;
        if let Err(e) = editor.launch(&file) {
            preserved(&file);
            return Err(e);
        }
        let saved = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let judged = judge(&shown, failed.as_ref().map(|(s, _)| s.as_str()), &saved, &live);
        // The file of the previous pass holds nothing this one does not.
        if let Some((_, previous)) = failed.take() {
            let _ = std::fs::remove_file(previous);
        }
        let reason = match judged {
            Saved::GaveUp => {
                preserved(&file);
                bail!("Edit cancelled, no valid changes were saved.");
            }
            Saved::Unchanged | Saved::Empty => {
                let _ = std::fs::remove_file(&file);
                let what = if judged == Saved::Empty { "saved file was empty" } else { "no changes made" };
                eprintln!("Edit cancelled, {what}.");
                return Ok(0);
            }
            Saved::Refused(why) => {
                preserved(&file);
                bail!("{why}");
            }
            Saved::Invalid(reason) => {
                eprintln!("error: {}", reason.head);
                reason
            }
            Saved::Object(obj) if obj == live => {
                let _ = std::fs::remove_file(&file);
                println!("{}/{name} skipped", rk.qualified());
                return Ok(0);
            }
            Saved::Object(obj) => match ctx.block_on(replace_one(&mut client, &obj)) {
                Ok(_) => {
                    let _ = std::fs::remove_file(&file);
                    println!("{}/{name} edited", rk.qualified());
                    return Ok(0);
                }
                Err(status) => {
                    let reason = api_reason(&resource, &name, &status);
                    match reason.causes.is_empty() {
                        false => eprintln!("error: {resource} {name:?} is invalid"),
                        true => eprintln!("error: {resource} {name:?} could not be updated: {}", status.message()),
                    }
                    reason
                }
            },
        };
        text = format!("{}{}", header(&[reason]), strip_comments(&saved));
        failed = Some((saved, file));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-nginx", "namespace": "default", "resourceVersion": "7"},
            "spec": {"type": "NodePort", "ports": [{"port": 8080, "nodePort": 31704}]}})
    }

    fn shown() -> String {
        format!("{HEADER}{}", printers::to_yaml(&live()))
    }

    #[test]
    fn targets() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (rk, name) = target("edit", &args(&["svc", "my-nginx"])).unwrap();
        assert_eq!((rk.kind, name.as_str()), ("Service", "my-nginx"));
        let (rk, name) = target("patch", &args(&["deployment.apps/web"])).unwrap();
        assert_eq!((rk.kind, name.as_str()), ("Deployment", "web"));
        assert_eq!(target("edit", &args(&["svc"])).unwrap_err().to_string(), "edit takes one object: TYPE NAME or TYPE/NAME");
        assert_eq!(target("edit", &args(&["svc/a", "b"])).unwrap_err().to_string(), "edit takes one object: TYPE NAME or TYPE/NAME");
        assert_eq!(target("edit", &args(&["frob", "x"])).unwrap_err().to_string(), "the server doesn't have a resource type \"frob\"");
    }

    #[test]
    fn editors_are_found_and_split_as_kubectl_does() {
        let env =
            |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let file = Path::new("/tmp/emu-edit-1.yaml");
        assert_eq!(Editor::from_env(env(&[])).argv(file), ["vi", "/tmp/emu-edit-1.yaml"]);
        assert_eq!(Editor::from_env(env(&[("EDITOR", "nano"), ("KUBE_EDITOR", "")])).argv(file), ["nano", "/tmp/emu-edit-1.yaml"]);
        let sed = Editor::from_env(env(&[("EDITOR", "vi"), ("KUBE_EDITOR", "sed -i s/ClusterIP/NodePort/")]));
        assert_eq!(sed.argv(file), ["sed", "-i", "s/ClusterIP/NodePort/", "/tmp/emu-edit-1.yaml"]);
        let quoted = Editor::from_env(env(&[("EDITOR", "sed -i 's/type: NodePort/type: LoadBalancer/'"), ("SHELL", "/bin/sh")]));
        assert_eq!(quoted.argv(file), ["/bin/sh", "-c", "sed -i 's/type: NodePort/type: LoadBalancer/' \"/tmp/emu-edit-1.yaml\""]);
    }

    #[test]
    fn saves_are_judged_in_kubectls_order() {
        let shown = shown();
        assert_eq!(judge(&shown, None, &shown, &live()), Saved::Unchanged);
        // Comments do not count; an empty file cancels.
        assert_eq!(judge(&shown, None, &shown.replace("# and an empty", "# and a blank"), &live()), Saved::Unchanged);
        assert_eq!(judge(&shown, None, "# nothing\n\n", &live()), Saved::Empty);
        let edited = shown.replace("type: NodePort", "type: LoadBalancer");
        let mut want = live();
        want["spec"]["type"] = json!("LoadBalancer");
        assert_eq!(judge(&shown, None, &edited, &live()), Saved::Object(want));
        // After a failure, the same text again gives up; back to the original is no change.
        assert_eq!(judge(&shown, Some(&edited), &format!("# error\n{edited}"), &live()), Saved::GaveUp);
        assert_eq!(judge(&shown, Some(&edited), &shown, &live()), Saved::Unchanged);
        let Saved::Invalid(r) = judge(&shown, None, &format!("{shown}  bad: [\n"), &live()) else { panic!("a syntax error") };
        assert!(r.head.starts_with("The edited file had a syntax error: error parsing document 1"), "{r:?}");
        let renamed = shown.replace("name: my-nginx", "name: other");
        assert_eq!(judge(&shown, None, &renamed, &live()), Saved::Refused("At least one of apiVersion, kind and name was changed".into()));
    }

    #[test]
    fn api_errors_become_the_reopened_files_header() {
        let invalid = tonic::Status::invalid_argument(
            "The Service \"my-nginx\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        let reason = api_reason("services", "my-nginx", &invalid);
        let many = tonic::Status::invalid_argument(
            "The Service \"my-nginx\" is invalid: \n* spec.type: Unsupported value: \"Nope\"\n* spec.ports: Required value",
        );
        let conflict = tonic::Status::aborted("Operation cannot be fulfilled on services \"my-nginx\": the object has been modified; please apply your changes to the latest version and try again");
        let text = header(&[reason, api_reason("services", "my-nginx", &many), api_reason("services", "my-nginx", &conflict)]);
        assert_eq!(
            text.strip_prefix(HEADER).unwrap(),
            "# services \"my-nginx\" was not valid:\n\
             # * spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767\n\
             #\n\
             # services \"my-nginx\" was not valid:\n\
             # * spec.type: Unsupported value: \"Nope\"\n\
             # * spec.ports: Required value\n\
             #\n\
             # Error from server (Conflict): Operation cannot be fulfilled on services \"my-nginx\": the object has been modified; please apply your changes to the latest version and try again\n\
             #\n"
        );
        assert_eq!(header(&[Reason::plain("two\nlines")]).strip_prefix(HEADER).unwrap(), "# two\n# lines\n#\n");
    }

    #[test]
    fn comments_are_stripped_as_kubectl_does() {
        assert_eq!(strip_comments("# a\n  # b\n#!keep\nx: 1\n"), "#!keep\nx: 1\n");
    }
}
