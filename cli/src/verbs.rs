//! kubectl's verbs against an emu cluster, with kubectl's flags, result lines and output formats.

use crate::context::{api_error, require_root, ApiError, Ctx};
use crate::{Globals, Scope};
use anyhow::{bail, Context};
use clap::Args;
use emu_api::kinds::{self, ResourceKind};
use emu_api::time::now;
use emu_api::{manifest, object};
use emu_kubectl as printers;
use emu_logic::configdata;
use emu_proto::api_client::ApiClient;
use emu_proto::{ApplyRequest, DeleteRequest, ListRequest, Object, ObjectRef, ScaleRequest};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub(crate) type Client = ApiClient<Channel>;

// ---------------------------------------------------------------------------------------------
// Manifests

/// Reads a file, a directory (its .yaml/.yml/.json files, sorted) or `-` (stdin) into documents,
/// labelled by file for error messages.
pub fn read_manifests(path: &Path) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(vec![("STDIN".into(), parse_manifest_text(&text, "STDIN")?)]);
    }
    let meta = std::fs::metadata(path).with_context(|| format!("the path {:?} does not exist", path.display().to_string()))?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
            .collect();
        f.sort();
        f
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            let label = f.display().to_string();
            Ok((label.clone(), parse_manifest_text(&text, &label)?))
        })
        .collect()
}

pub fn parse_manifest_text(text: &str, label: &str) -> anyhow::Result<Vec<Value>> {
    let docs = manifest::parse_documents(text).map_err(|e| anyhow::anyhow!("error parsing {label}: {e}"))?;
    Ok(docs.into_iter().map(|d| d.value).collect())
}

/// The checks the API server makes that need no cluster: known kind, defaults, validation. `up`
/// runs them on every document before it creates anything.
pub fn check_offline(doc: &Value) -> anyhow::Result<()> {
    use emu_api::admission::{self, AdmissionError};
    match admission::admit(doc.clone(), &admission::Offline) {
        Ok(_) => Ok(()),
        Err(e @ AdmissionError::NoMatch { .. }) => Err(anyhow::anyhow!("{e}")),
        Err(AdmissionError::BadRequest(msg)) => Err(ApiError(format!("Error from server (BadRequest): {msg}")).into()),
        // An API error, so that it prints as kubectl prints a 422 (`The Service "x" is invalid: ...`),
        // without the `error: ` prefix other failures get.
        Err(e) => Err(ApiError(e.to_string()).into()),
    }
}

/// One object of an apply as the controller answered it: kubectl's line for it
/// (`pod/x created`) and the API server's warnings about its write.
pub struct Applied {
    pub line: String,
    pub warnings: Vec<String>,
}

impl Applied {
    /// The objects' lines, each after its warnings (on stderr, each once), as kubectl prints
    /// an apply of several objects.
    pub fn print_all(applied: &[Applied]) {
        let mut warnings = crate::warnings::WarningWriter::stderr();
        for a in applied {
            warnings.print(&a.warnings);
            println!("{}", a.line);
        }
    }

    /// Only the warnings, for a command that prints its own line.
    pub fn print_warnings(applied: &[Applied]) {
        let mut warnings = crate::warnings::WarningWriter::stderr();
        for a in applied {
            warnings.print(&a.warnings);
        }
    }

    pub fn lines(applied: Vec<Applied>) -> Vec<String> {
        applied.into_iter().map(|a| a.line).collect()
    }
}

pub async fn apply_docs(client: &mut Client, docs: Vec<Value>, create_only: bool) -> anyhow::Result<Vec<Applied>> {
    let objects = docs.iter().map(|d| Object { json: d.to_string() }).collect();
    let resp = client.apply(ApplyRequest { objects, create_only, dry_run: false }).await.map_err(broken_apply)?.into_inner();
    Ok(resp
        .results
        .into_iter()
        .map(|r| {
            let rr = r.r#ref.unwrap_or_default();
            let q = kinds::by_kind(&rr.kind).map(|k| k.qualified()).unwrap_or_else(|| rr.kind.to_lowercase());
            Applied { line: format!("{q}/{} {}", rr.name, r.action), warnings: r.warnings }
        })
        .collect())
}

/// An apply's error; when the connection broke (the controller died or restarted), what that
/// means: the controller stores an apply's objects in one transaction, so all or none are stored.
fn broken_apply(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => crate::context::ApiError(format!(
            "error: the connection to the controller broke during the apply ({}): it stores all of them or none, \
             so either every object was applied or none was; `emu get` shows which",
            status.message()
        ))
        .into(),
        _ => api_error(status),
    }
}

pub async fn list(client: &mut Client, kind: &str, namespace: &str, selector: &str) -> anyhow::Result<Vec<Value>> {
    let resp = client
        .list(ListRequest {
            kind: kind.into(),
            namespace: namespace.into(),
            label_selector: selector.into(),
            field_selector: String::new(),
        })
        .await
        .map_err(api_error)?
        .into_inner();
    resp.items.iter().map(|o| Ok(serde_json::from_str(&o.json)?)).collect()
}

/// The objects of a kind matching a label and a field selector, as `kubectl get -l L
/// --field-selector F` lists them; a selector the server refuses is reported as kubectl's
/// resource builder words it ([`selection_error`]).
pub async fn list_selected(
    client: &mut Client,
    rk: &ResourceKind,
    namespace: &str,
    labels: &str,
    fields: &str,
) -> anyhow::Result<Vec<Value>> {
    let request =
        ListRequest { kind: rk.kind.into(), namespace: namespace.into(), label_selector: labels.into(), field_selector: fields.into() };
    let resp = client.list(request).await.map_err(|status| selection_error(rk, labels, fields, status))?;
    resp.into_inner().items.iter().map(|o| Ok(serde_json::from_str(&o.json)?)).collect()
}

/// A list's error as kubectl's resource builder words a refused one: `Error from server
/// (BadRequest): Unable to find "/v1, Resource=pods" that match label selector "", field
/// selector "foo=bar": field label not supported: foo`.
pub(crate) fn selection_error(rk: &ResourceKind, labels: &str, fields: &str, status: tonic::Status) -> anyhow::Error {
    if status.code() != tonic::Code::InvalidArgument {
        return api_error(status);
    }
    let resource = format!("{}/{}, Resource={}", rk.group, rk.version, rk.plural);
    let what = if labels.is_empty() && fields.is_empty() {
        format!("Unable to list {resource:?}")
    } else {
        format!("Unable to find {resource:?} that match label selector {labels:?}, field selector {fields:?}")
    };
    ApiError(format!("Error from server (BadRequest): {what}: {}", status.message())).into()
}

pub async fn get_one(client: &mut Client, kind: &str, namespace: &str, name: &str) -> anyhow::Result<Value> {
    let o =
        client.get(ObjectRef { kind: kind.into(), namespace: namespace.into(), name: name.into() }).await.map_err(api_error)?.into_inner();
    Ok(serde_json::from_str(&o.json)?)
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// Manifest file, directory, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
    #[command(flatten)]
    pub files: FileArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum CreateWhat {
    /// Create a Secret.
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
    /// Create a ConfigMap from files, directories and literal values.
    #[command(visible_alias = "cm")]
    Configmap(DataArgs),
    /// Create a Deployment of the given image(s), labelled app=NAME.
    #[command(visible_alias = "deploy")]
    Deployment(crate::create::DeploymentArgs),
    /// Create a Service (clusterip, nodeport or loadbalancer) selecting app=NAME.
    #[command(visible_alias = "svc")]
    Service {
        #[command(subcommand)]
        kind: crate::create::ServiceKind,
    },
    /// Create a Namespace.
    #[command(visible_alias = "ns")]
    Namespace {
        /// The namespace's name (a DNS label: lower case letters, digits and '-').
        name: String,
    },
    /// Create a Job of an image (`-- COMMAND...`), or from a CronJob (`--from=cronjob/NAME`).
    Job(crate::create::JobArgs),
    /// Create a CronJob of an image on a schedule.
    #[command(visible_alias = "cj")]
    Cronjob(crate::create::CronJobArgs),
    /// Create an Ingress from `--rule=host/path=service:port[,tls[=secret]]` rules.
    #[command(visible_alias = "ing")]
    Ingress(crate::create::IngressArgs),
}

#[derive(clap::Subcommand, Debug)]
pub enum SecretKind {
    /// A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`) from a certificate and its key in
    /// PEM files, checked to belong together first.
    Tls(TlsSecretArgs),
    /// An Opaque Secret from files, directories and literal values.
    Generic(DataArgs),
}

/// `create configmap` / `create secret generic`: the object's name and where its data comes from.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// The name of the object to create.
    pub name: String,
    /// `[KEY=]PATH`: a file (key: its name, unless given) or a directory (a key per regular file
    /// in it).
    #[arg(long = "from-file")]
    pub from_file: Vec<String>,
    /// `KEY=VALUE`.
    #[arg(long = "from-literal")]
    pub from_literal: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TlsSecretArgs {
    /// The Secret's name.
    pub name: String,
    /// PEM certificate (chain) file.
    #[arg(long)]
    pub cert: PathBuf,
    /// PEM private key file.
    #[arg(long)]
    pub key: PathBuf,
}

fn load_all(files: &[PathBuf], namespace: Option<&str>) -> anyhow::Result<Vec<Value>> {
    Ok(load_all_labelled(files, namespace)?.into_iter().map(|(_, d)| d).collect())
}

/// [`load_all`], each document with the name of its file (`STDIN` for `-`), as kubectl names it.
fn load_all_labelled(files: &[PathBuf], namespace: Option<&str>) -> anyhow::Result<Vec<(String, Value)>> {
    let mut docs = Vec::new();
    for f in files {
        for (label, mut d) in read_manifests(f)? {
            if let Some(ns) = namespace {
                for doc in &mut d {
                    if object::namespace(doc).is_empty() {
                        object::metadata_mut(doc).insert("namespace".into(), json!(ns));
                    }
                }
            }
            docs.extend(d.into_iter().map(|doc| (label.clone(), doc)));
        }
    }
    Ok(docs)
}

/// A server's error about one object of `-f` input, as kubectl prints it: after the reason, the
/// file the object came from (`Error from server (AlreadyExists): error when creating "svc.yaml":
/// services "my-nginx" already exists`). The object is the one whose name the message quotes, or
/// the only one; Invalid errors (`The Pod "x" is invalid: …`) and the client's own stay as they are.
fn naming_the_file(e: anyhow::Error, sources: &[(String, Value)]) -> anyhow::Error {
    let Some(text) = e.downcast_ref::<crate::context::ApiError>().map(|a| a.0.clone()) else { return e };
    let Some((reason, message)) = text.strip_prefix("Error from server (").and_then(|rest| rest.split_once("): ")) else { return e };
    let source = match sources {
        [(label, _)] => Some(label),
        _ => sources.iter().find(|(_, d)| message.contains(&format!("{:?}", object::name(d)))).map(|(label, _)| label),
    };
    match source {
        Some(label) => crate::context::ApiError(format!("Error from server ({reason}): error when creating {label:?}: {message}")).into(),
        None => e,
    }
}

pub fn apply(a: FileArgs, g: &Globals, create_only: bool) -> anyhow::Result<i32> {
    require_root()?;
    let sources = load_all_labelled(&a.files, g.namespace.as_deref())?;
    if sources.is_empty() {
        // An empty file, `---` alone, /dev/null, a closed stdin: kubectl refuses them.
        bail!("no objects passed to {}", if create_only { "create" } else { "apply" });
    }
    for (_, d) in &sources {
        check_offline(d)?;
    }
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let docs = sources.iter().map(|(_, d)| d.clone()).collect();
    let applied = ctx.block_on(apply_docs(&mut client, docs, create_only)).map_err(|e| naming_the_file(e, &sources))?;
    ctx.client = client;
    Applied::print_all(&applied);
    Ok(0)
}

pub fn create(a: CreateArgs, g: &Globals) -> anyhow::Result<i32> {
    match a.what {
        None => apply(a.files, g, true),
        Some(CreateWhat::Secret { kind: SecretKind::Tls(t) }) => create_tls_secret(t, g),
        Some(CreateWhat::Secret { kind: SecretKind::Generic(d) }) => create_from_data(configdata::Target::Secret, d, g),
        Some(CreateWhat::Configmap(d)) => create_from_data(configdata::Target::ConfigMap, d, g),
        Some(CreateWhat::Deployment(d)) => crate::create::deployment(d, g),
        Some(CreateWhat::Service { kind }) => crate::create::service(kind, g),
        Some(CreateWhat::Job(j)) => crate::create::job(j, g),
        Some(CreateWhat::Cronjob(c)) => crate::create::cronjob(c, g),
        Some(CreateWhat::Ingress(i)) => crate::create::ingress(i, g),
        Some(CreateWhat::Namespace { name }) => {
            require_root()?;
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            check_offline(&ns)?;
            create_one(ns, g)
        }
    }
}

/// `kubectl create configmap` / `create secret generic` (CLI-28): files first, then literals.
fn create_from_data(target: configdata::Target, d: DataArgs, g: &Globals) -> anyhow::Result<i32> {
    require_root()?;
    let mut entries = Vec::new();
    for arg in &d.from_file {
        if let configdata::Source::File { key, path } = configdata::file_source(arg).map_err(anyhow::Error::msg)? {
            entries.extend(read_file_source(key, &path)?);
        }
    }
    for arg in &d.from_literal {
        if let configdata::Source::Literal { key, value } = configdata::literal_source(arg).map_err(anyhow::Error::msg)? {
            entries.push((key, value.into_bytes()));
        }
    }
    let object = configdata::build(target, &d.name, &entries).map_err(anyhow::Error::msg)?;
    create_one(object, g)
}

/// The entries of one `--from-file`: the file, or each regular file directly in the directory
/// (subdirectories and symlinks are skipped, as kubectl does), in name order.
fn read_file_source(key: Option<String>, path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let meta = std::fs::metadata(path).map_err(|e| go_io_error("stat", path, e))?;
    if !meta.is_dir() {
        return Ok(vec![(key.unwrap_or_else(|| configdata::file_key(path)), read_input_file(path)?)]);
    }
    if key.is_some() {
        bail!("cannot give a key name for a directory path");
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| go_io_error("open", path, e))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    files.iter().map(|f| Ok((configdata::file_key(f), read_input_file(f)?))).collect()
}

/// Creates `object` (in the `-n` namespace, or the default) and prints kubectl's `kind/name created`.
/// Creates one object a generator made (`create deployment`, `create service`), checked as a
/// manifest's would be first.
pub(crate) fn create_object(object: Value, g: &Globals) -> anyhow::Result<i32> {
    check_offline(&object)?;
    create_one(object, g)
}

fn create_one(mut object: Value, g: &Globals) -> anyhow::Result<i32> {
    if let Some(ns) = &g.namespace {
        object::metadata_mut(&mut object).insert("namespace".into(), json!(ns));
    }
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    Applied::print_all(&ctx.block_on(apply_docs(&mut client, vec![object], true))?);
    Ok(0)
}

/// `kubectl create secret tls` (CLI-27): the files must hold a certificate and its own key;
/// nothing is created otherwise.
fn create_tls_secret(t: TlsSecretArgs, g: &Globals) -> anyhow::Result<i32> {
    require_root()?;
    let (cert, key) = (read_input_file(&t.cert)?, read_input_file(&t.key)?);
    crate::tls::check_pair(&cert, &key).map_err(anyhow::Error::msg)?;
    create_one(tls_secret(&t.name, &cert, &key), g)
}

/// The Secret `kubectl create secret tls` makes: exactly the two files' bytes, base64 in `data`.
fn tls_secret(name: &str, cert: &[u8], key: &[u8]) -> Value {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert), "tls.key": b64(key)}})
}

/// A file named on the command line, with Go's wording when it cannot be read (`open PATH: no
/// such file or directory`), as kubectl reports it.
fn read_input_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| go_io_error("open", path, e))
}

/// An I/O error as Go words it: `OP PATH: no such file or directory`.
fn go_io_error(op: &str, path: &Path, e: std::io::Error) -> anyhow::Error {
    let reason = e.raw_os_error().map(|n| nix::errno::Errno::from_raw(n).desc().to_lowercase()).unwrap_or_else(|| e.to_string());
    anyhow::anyhow!("{op} {}: {reason}", path.display())
}

// ---------------------------------------------------------------------------------------------
// get / describe

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Resource type(s) (`pods`, `po,deploy`, `pod/NAME`) and optional names.
    #[arg(required = true, value_parser = ResourceArg, hide_possible_values = true)]
    pub targets: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=…, custom-columns=….
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
    /// Show each object's labels in a last column, LABELS.
    #[arg(long = "show-labels")]
    pub show_labels: bool,
    /// Leave out the header line of a table.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Label keys to show as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// After the table, print a line for every change of the objects (until Ctrl-C).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print only the changes, not the table first.
    #[arg(long = "watch-only")]
    pub watch_only: bool,
    /// With --watch: begin each line with the change, ADDED, MODIFIED or DELETED.
    #[arg(long = "output-watch-events")]
    pub output_watch_events: bool,
    /// Sort by this field, a JSONPath (`.metadata.name`, `{.metadata.creationTimestamp}`,
    /// `.status.podIP`): numbers by value, strings in natural order, missing ones first.
    #[arg(long = "sort-by", value_name = "FIELD")]
    pub sort_by: Option<String>,
    /// Only the objects whose fields match, e.g. `status.phase=Running,spec.nodeName!=node-1`
    /// (every kind has metadata.name and metadata.namespace; pods, events, secrets, namespaces
    /// and nodes a few more, as in Kubernetes).
    #[arg(long = "field-selector", value_name = "SELECTOR")]
    pub field_selector: Option<String>,
}

/// A `TYPE`, `TYPE/NAME` or `NAME` argument: any text parses (it is checked against the kinds
/// later, with kubectl's messages), and shell completion offers the resource types.
#[derive(Clone)]
pub struct ResourceArg;

impl clap::builder::TypedValueParser for ResourceArg {
    type Value = String;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &std::ffi::OsStr) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(kinds::KINDS.iter().map(|k| clap::builder::PossibleValue::new(k.plural))))
    }
}

/// kubectl's flags for the objects of a kind given without names (label, annotate, wait).
#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Every object of the type matching this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With -l or --all: in every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
}

impl SelectArgs {
    /// The selection these flags make; `until_found` as in [`Selection`].
    pub(crate) fn selection(&self, until_found: Option<std::time::Instant>) -> Selection<'_> {
        Selection { selector: self.selector.as_deref(), all: self.all, all_namespaces: self.all_namespaces, until_found }
    }
}

/// How a verb picks the objects of a kind given without names: `-l SELECTOR`, `--all`, `-A`.
pub(crate) struct Selection<'a> {
    pub selector: Option<&'a str>,
    pub all: bool,
    pub all_namespaces: bool,
    /// Until when to list again while nothing matches (`wait --for=create`); None: once.
    pub until_found: Option<std::time::Instant>,
}

/// The objects a verb acts on, as kubectl's resource builder finds them: each named one in the
/// namespace, and for a kind given without names the ones the selection picks.
pub(crate) fn select_targets(
    ctx: &Ctx,
    client: &mut Client,
    groups: &[(&'static ResourceKind, Vec<String>)],
    g: &Globals,
    how: &Selection,
) -> anyhow::Result<Vec<(&'static ResourceKind, String, String)>> {
    let mut targets = Vec::new();
    for (rk, names) in groups {
        let ns = if rk.namespaced { g.namespace_or_default() } else { String::new() };
        if !names.is_empty() {
            targets.extend(names.iter().map(|n| (*rk, ns.clone(), n.clone())));
            continue;
        }
        if how.selector.is_none() && !how.all {
            bail!("resource(s) were provided, but no name was specified");
        }
        let list_ns = if how.all_namespaces { String::new() } else { ns };
        let selector = how.selector.unwrap_or("");
        let mut found = ctx.block_on(list(client, rk.kind, &list_ns, selector))?;
        while let (true, Some(deadline)) = (found.is_empty(), how.until_found) {
            if std::time::Instant::now() >= deadline {
                bail!("timed out waiting for the condition");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            found = ctx.block_on(list(client, rk.kind, &list_ns, selector))?;
        }
        targets.extend(found.iter().map(|o| (*rk, object::namespace(o).to_string(), object::name(o).to_string())));
    }
    Ok(targets)
}

/// `TYPE NAME...`, `TYPE1,TYPE2`, or `TYPE/NAME ...` into (kind, names) groups.
pub(crate) fn parse_targets(targets: &[String]) -> anyhow::Result<Vec<(&'static ResourceKind, Vec<String>)>> {
    let lookup = |t: &str| kinds::lookup(t).ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type {t:?}"));
    if targets.iter().any(|t| t.contains('/')) {
        let mut out: Vec<(&'static ResourceKind, Vec<String>)> = Vec::new();
        for t in targets {
            let (k, n) = t.split_once('/').ok_or_else(|| anyhow::anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'emu get resource/<resource_name>' instead of 'emu get resource resource/<resource_name>')"))?;
            let rk = lookup(k)?;
            match out.iter_mut().find(|(r, _)| r.kind == rk.kind) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((rk, vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    // `all` is the kinds of category "all" that the API serves, as kubectl expands it.
    let mut kinds: Vec<&'static ResourceKind> = Vec::new();
    for t in targets[0].split(',') {
        match t {
            "all" => kinds.extend(printers::info::category_all()),
            _ => kinds.push(lookup(t)?),
        }
    }
    let names = targets[1..].to_vec();
    Ok(kinds.into_iter().map(|k| (k, names.clone())).collect())
}

fn scope_namespace(scope: &Scope, rk: &ResourceKind, g: &Globals) -> String {
    if !rk.namespaced || scope.all_namespaces {
        String::new()
    } else {
        g.namespace_or_default()
    }
}

async fn fetch(
    client: &mut Client,
    rk: &ResourceKind,
    names: &[String],
    scope: &Scope,
    fields: &str,
    g: &Globals,
) -> anyhow::Result<Vec<Value>> {
    let ns = scope_namespace(scope, rk, g);
    if names.is_empty() {
        return list_selected(client, rk, &ns, scope.selector.as_deref().unwrap_or(""), fields).await;
    }
    let mut out = Vec::new();
    for n in names {
        out.push(get_one(client, rk.kind, if ns.is_empty() { "default" } else { &ns }, n).await?);
    }
    Ok(out)
}

/// kubectl ≥ 1.33 warns on every read or write of v1 Endpoints (EP-6).
fn warn_if_endpoints(groups: &[(&'static ResourceKind, Vec<String>)]) {
    if groups.iter().any(|(rk, _)| rk.kind == "Endpoints") {
        eprintln!("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice");
    }
}

pub fn get(a: GetArgs, g: &Globals) -> anyhow::Result<i32> {
    if a.watch || a.watch_only {
        return crate::watch::watch(&a, g);
    }
    let groups = parse_targets(&a.targets)?;
    if (a.scope.selector.is_some() || a.field_selector.is_some()) && groups.iter().any(|(_, names)| !names.is_empty()) {
        bail!("name cannot be provided when a selector is specified");
    }
    warn_if_endpoints(&groups);
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let output = a.output.clone().unwrap_or_default();
    let many_kinds = groups.len() > 1;
    let mut all = Vec::new();
    let mut printed_any = false;
    let mut exit = 0;
    let sort_by = a.sort_by.as_deref().filter(|s| !s.is_empty());
    let table = matches!(output.as_str(), "" | "wide");
    if let (Some(field), true, true) = (sort_by, table, many_kinds) {
        // kubectl sorts the tables of several kinds as objects, before it reads their rows,
        // and so finds the field in none of them.
        let field = printers::sort::relaxed_field(field).map_err(|e| anyhow::anyhow!("{e}"))?;
        bail!("{}", printers::sort::SortError::NotFound(field));
    }
    let fields = a.field_selector.as_deref().unwrap_or("");
    for (rk, names) in &groups {
        let mut objs = match ctx.block_on(fetch(&mut client, rk, names, &a.scope, fields, g)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{}", crate::context::render_error(&e));
                exit = 1;
                continue;
            }
        };
        match output.as_str() {
            "" | "wide" => {
                if let Some(field) = sort_by {
                    match printers::sort::sort_table(&mut objs, field) {
                        Ok(()) => {}
                        Err(e @ printers::sort::SortError::Unsortable { .. }) => return Err(fatal_sort_error(&e, 375)),
                        // kubectl's table printer fails, and kubectl does not look at why: the
                        // table is left out.
                        Err(_) => continue,
                    }
                }
                if objs.is_empty() {
                    continue;
                }
                let opts = printers::TableOptions {
                    wide: output == "wide",
                    all_namespaces: a.scope.all_namespaces && rk.namespaced,
                    no_headers: a.no_headers,
                    show_labels: a.show_labels,
                    label_columns: a.label_columns.clone(),
                    kind_prefix: many_kinds,
                };
                if printed_any {
                    println!();
                }
                print!("{}", printers::table(rk.kind, &objs, &opts, now()));
                printed_any = true;
            }
            "name" if sort_by.is_none() => {
                for o in &objs {
                    println!("{}", printers::resource_name(rk.kind, object::name(o)));
                }
                printed_any |= !objs.is_empty();
            }
            _ => all.extend(objs),
        }
    }
    ctx.client = client;
    let single = groups.len() == 1 && groups[0].1.len() == 1;
    if let (Some(field), false) = (sort_by, single && all.len() == 1) {
        match printers::sort::sort_objects(&mut all, field) {
            Ok(()) => {}
            Err(e @ printers::sort::SortError::Unsortable { .. }) => return Err(fatal_sort_error(&e, 329)),
            Err(e) => bail!("{e}"),
        }
    }
    if output == "name" && sort_by.is_some() {
        for o in &all {
            println!("{}", printers::resource_name(object::kind(o), object::name(o)));
        }
        printed_any |= !all.is_empty();
    }
    let doc = if single && all.len() == 1 { all[0].clone() } else { printers::list_object(all.clone()) };
    match output.as_str() {
        "" | "wide" | "name" => {
            if !printed_any && exit == 0 {
                let ns = g.namespace_or_default();
                if a.scope.all_namespaces || groups.iter().all(|(rk, _)| !rk.namespaced) {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
            }
        }
        "yaml" => print!("{}", printers::to_yaml(&doc)),
        "json" => print!("{}", printers::to_json(&doc)),
        o if o.starts_with("jsonpath=") || o.starts_with("jsonpath-as-json=") => {
            let tmpl = o.split_once('=').map(|x| x.1).unwrap_or("");
            print!("{}", printers::jsonpath(tmpl, &doc).map_err(|e| anyhow::anyhow!("error executing jsonpath {tmpl:?}: {e}"))?);
        }
        o if o.starts_with("custom-columns=") => {
            print!("{}", printers::custom_columns(&o["custom-columns=".len()..], &all).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        o => bail!("unable to match a printer suitable for the output format {o:?}, allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"),
    }
    Ok(exit)
}

/// A sort kubectl gives up on with a fatal log line (`klog.Exitf` at sorter.go:LINE), as it
/// prints it.
pub(crate) fn fatal_sort_error(e: &printers::sort::SortError, line: u32) -> anyhow::Error {
    ApiError(format!("{} {e}", klog_header('F', &format!("sorter.go:{line}")))).into()
}

/// The header of a line kubectl logs with klog: `F1207 19:15:36.474098   14804 sorter.go:329]`
/// (level, date, time, process, source).
pub(crate) fn klog_header(level: char, source: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let stamp = emu_api::time::rfc3339(now.as_secs() as i64);
    // 2026-12-07T19:15:36Z → 1207 19:15:36.micro
    let (date, time) = stamp.trim_end_matches('Z').split_once('T').unwrap_or(("", ""));
    let (month, day) = (date.get(5..7).unwrap_or("00"), date.get(8..10).unwrap_or("00"));
    format!("{level}{month}{day} {time}.{:06} {:>7} {source}]", now.subsec_micros(), std::process::id())
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Resource type and names (`pod NAME`, `pod/NAME`, `deployment my-nginx`).
    #[arg(required = true, value_parser = ResourceArg, hide_possible_values = true)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub scope: Scope,
}

pub fn describe(a: DescribeArgs, g: &Globals) -> anyhow::Result<i32> {
    let groups = parse_targets(&a.targets)?;
    warn_if_endpoints(&groups);
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let mut first = true;
    for (rk, names) in &groups {
        let objs = ctx.block_on(fetch(&mut client, rk, names, &a.scope, "", g))?;
        for o in &objs {
            let related = ctx.block_on(related_objects(&mut client, rk.kind, o))?;
            if !first {
                println!("\n");
            }
            first = false;
            print!("{}", printers::describe(rk.kind, o, &related, now()));
        }
    }
    ctx.client = client;
    Ok(0)
}

/// Objects a describer needs beside the object itself: the object's Events for every kind, plus
/// what the kind's describer reads.
async fn related_objects(client: &mut Client, kind: &str, o: &Value) -> anyhow::Result<Vec<Value>> {
    let ns = object::namespace(o);
    let mut related = object_events(client, kind, o).await;
    related.extend(match kind {
        "Deployment" => {
            let mut r = list(client, "ReplicaSet", ns, "").await?;
            r.extend(list(client, "Pod", ns, "").await?);
            r
        }
        "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => list(client, "Pod", ns, "").await?,
        "CronJob" => list(client, "Job", ns, "").await?,
        // Its mountable secrets that exist, and its legacy token Secrets.
        "ServiceAccount" => list(client, "Secret", ns, "").await.unwrap_or_default(),
        "Node" => list(client, "Pod", "", "").await?.into_iter().filter(|p| p["spec"]["nodeName"] == object::name(o)).collect(),
        "Service" => {
            let mut r = list(client, "EndpointSlice", ns, "").await.unwrap_or_default();
            r.extend(list(client, "Endpoints", ns, "").await.unwrap_or_default());
            r
        }
        // Its backends' Services and their endpoints.
        "Ingress" => {
            let mut r = list(client, "Service", ns, "").await.unwrap_or_default();
            r.extend(list(client, "EndpointSlice", ns, "").await.unwrap_or_default());
            r
        }
        _ => vec![],
    });
    Ok(related)
}

/// The Events whose involvedObject is `o`, by name and kind. The API cannot select events by
/// involvedObject, so they are listed and filtered here; the describer then also checks the
/// namespace and uid (an older object of the same name is someone else). Events of a
/// cluster-scoped object are recorded in `default` (or wherever the reporter chose), so all
/// namespaces are searched for them. Like kubectl, a failure to read events leaves the section
/// empty rather than failing the describe.
async fn object_events(client: &mut Client, kind: &str, o: &Value) -> Vec<Value> {
    // kubectl's Secret describer shows no events, so there is nothing to fetch.
    if kind == "Secret" {
        return Vec::new();
    }
    let ns = if kinds::by_kind(kind).is_some_and(|k| k.namespaced) { object::namespace(o) } else { "" };
    let name = object::name(o);
    list(client, "Event", ns, "")
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            let involved = |field: &str| object::str_at(e, &["involvedObject", field]).unwrap_or("");
            involved("name") == name && (involved("kind").is_empty() || involved("kind") == kind)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// delete / scale

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    #[arg(value_parser = ResourceArg, hide_possible_values = true)]
    pub targets: Vec<String>,
    /// Delete the objects a manifest file, directory or `-` (stdin) names.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub scope: Scope,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Seconds to give pods to stop (default: their own terminationGracePeriodSeconds).
    #[arg(long = "grace-period", default_value_t = -1)]
    pub grace_period: i64,
    /// Return without waiting for the objects to be gone.
    #[arg(long = "wait", default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
}

pub fn delete(a: DeleteArgs, g: &Globals) -> anyhow::Result<i32> {
    let mut refs: Vec<(&'static ResourceKind, String, String)> = Vec::new();
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    if !a.files.is_empty() {
        for d in load_all(&a.files, g.namespace.as_deref())? {
            let rk = kinds::by_kind(object::kind(&d)).ok_or_else(|| anyhow::anyhow!("unknown kind {:?}", object::kind(&d)))?;
            let ns = if rk.namespaced { object::namespace(&d).to_string() } else { String::new() };
            refs.push((rk, if ns.is_empty() && rk.namespaced { "default".into() } else { ns }, object::name(&d).to_string()));
        }
    } else {
        if a.targets.is_empty() {
            bail!("You must provide one or more resources by argument or filename.");
        }
        for (rk, names) in parse_targets(&a.targets)? {
            let ns = scope_namespace(&a.scope, rk, g);
            if names.is_empty() {
                if !a.all && a.scope.selector.is_none() {
                    bail!("resource(s) were provided, but no name was specified");
                }
                for o in ctx.block_on(list(&mut client, rk.kind, &ns, a.scope.selector.as_deref().unwrap_or("")))? {
                    refs.push((rk, object::namespace(&o).to_string(), object::name(&o).to_string()));
                }
            } else {
                for n in names {
                    refs.push((rk, if ns.is_empty() && rk.namespaced { "default".into() } else { ns.clone() }, n));
                }
            }
        }
    }
    if refs.is_empty() {
        // As kubectl: nothing to delete (an empty manifest, a selector that matches nothing) is
        // said on stdout, and is no error.
        println!("No resources found");
        return Ok(0);
    }
    let mut exit = 0;
    let mut waiting = Vec::new();
    for (rk, ns, name) in refs {
        let r = ObjectRef { kind: rk.kind.into(), namespace: ns.clone(), name: name.clone() };
        match ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: a.grace_period })) {
            Ok(r) => {
                println!("{} {name:?} deleted", rk.qualified());
                let uid = r
                    .into_inner()
                    .object
                    .and_then(|o| serde_json::from_str::<serde_json::Value>(&o.json).ok())
                    .map(|o| object::uid(&o).to_string());
                waiting.push((rk, ns, name, uid));
            }
            Err(s) => {
                eprintln!("{}", crate::context::render_error(&api_error(s)));
                exit = 1;
            }
        }
    }
    if a.wait {
        // kubectl waits until the objects are really gone (pods: after their containers stopped).
        let deadline = Instant::now() + Duration::from_secs(120);
        // Gone, or another object of the same name (a controller that puts it back: kubectl
        // waits on the UID too).
        for (rk, ns, name, uid) in waiting {
            while Instant::now() < deadline {
                match ctx.block_on(get_one(&mut client, rk.kind, &ns, &name)) {
                    Ok(o) if uid.as_deref().is_none_or(|u| u.is_empty() || u == object::uid(&o)) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => break,
                }
            }
        }
    }
    ctx.client = client;
    Ok(exit)
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// `deployment NAME`, `deployment/NAME`, `rs NAME`.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i32,
}

pub fn scale(a: ScaleArgs, g: &Globals) -> anyhow::Result<i32> {
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    for (rk, names) in parse_targets(&a.targets)? {
        if !matches!(rk.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
            bail!("cannot scale {}: only deployments, replicasets and statefulsets can be scaled", rk.plural);
        }
        for n in names {
            let r = ObjectRef { kind: rk.kind.into(), namespace: ns.clone(), name: n.clone() };
            ctx.block_on(client.scale(ScaleRequest { r#ref: Some(r), replicas: a.replicas })).map_err(api_error)?;
            println!("{}/{n} scaled", rk.qualified());
        }
    }
    ctx.client = client;
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// expose

#[derive(Args, Debug)]
pub struct ExposeArgs {
    /// `TYPE NAME` or `TYPE/NAME` of a deployment, replicaset, pod or service.
    #[arg(required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// The port the service serves on (default: the container ports).
    #[arg(long)]
    pub port: Option<u16>,
    /// The port (number or name) on the pods to direct traffic to (default: the port).
    #[arg(long = "target-port")]
    pub target_port: Option<String>,
    /// The name of the service (default: the object's name).
    #[arg(long)]
    pub name: Option<String>,
    /// ClusterIP, NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type")]
    pub service_type: Option<String>,
    /// TCP, UDP or SCTP (default: the container port's).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Labels of the service (default: the object's labels).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Selector of the service (default: the object's).
    #[arg(long)]
    pub selector: Option<String>,
    /// ClusterIP to ask for, or `None` for a headless service.
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// None or ClientIP.
    #[arg(long = "session-affinity")]
    pub session_affinity: Option<String>,
    /// Additional external IPs (comma separated).
    #[arg(long = "external-ip")]
    pub external_ip: Option<String>,
}

pub fn expose(a: ExposeArgs, g: &Globals) -> anyhow::Result<i32> {
    let groups = parse_targets(&a.target)?;
    let [(rk, names)] = groups.as_slice() else { bail!("expose takes one resource: TYPE NAME or TYPE/NAME") };
    let [name] = names.as_slice() else { bail!("expose takes one resource: TYPE NAME or TYPE/NAME") };
    if !matches!(rk.kind, "Deployment" | "ReplicaSet" | "Pod" | "Service") {
        bail!("cannot expose a {}", rk.kind);
    }
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    let target = ctx.block_on(get_one(&mut client, rk.kind, &ns, name))?;
    let opts = emu_kubectl::expose::ExposeOptions {
        name: a.name,
        port: a.port,
        target_port: a.target_port,
        protocol: a.protocol,
        service_type: a.service_type,
        labels: a.labels,
        selector: a.selector,
        cluster_ip: a.cluster_ip,
        session_affinity: a.session_affinity,
        external_ip: a.external_ip,
    };
    let svc = emu_kubectl::expose::service_for(&target, &opts).map_err(|e| anyhow::anyhow!(e))?;
    let svc_name = object::name(&svc).to_string();
    Applied::print_warnings(&ctx.block_on(apply_docs(&mut client, vec![svc], true))?);
    println!("service/{svc_name} exposed");
    ctx.client = client;
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// run / exec / logs / ssh

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pod's name (also its `run` label's value).
    pub name: String,
    /// The container's image, from emu's image catalog (nginx, busybox, curlimages/curl, …).
    #[arg(long)]
    pub image: String,
    /// Always, OnFailure or Never.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// Delete the pod when the attached session ends.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and attach this terminal's input to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the container a terminal (TTY).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Treat the arguments after `--` as the command rather than the image's arguments.
    #[arg(long)]
    pub command: bool,
    /// An environment variable of the container, `NAME=VALUE` (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// The pod's labels, `k=v,k2=v2` (default: run=NAME).
    #[arg(short = 'l', long = "labels")]
    pub labels: Option<String>,
    /// The port the container exposes (its containerPort).
    #[arg(long)]
    pub port: Option<u16>,
    /// After `--`: the container's arguments (its command with --command).
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(a: RunArgs, g: &Globals) -> anyhow::Result<i32> {
    if !matches!(a.restart.as_str(), "Always" | "OnFailure" | "Never") {
        bail!("invalid restart policy: {}", a.restart);
    }
    if a.rm && !(a.stdin || a.tty) {
        bail!("--rm should only be used for attached containers");
    }
    let mut ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    let labels: serde_json::Map<String, Value> = match &a.labels {
        Some(l) => l.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect(),
        None => [("run".to_string(), json!(a.name))].into_iter().collect(),
    };
    let mut container = json!({"name": a.name, "image": a.image});
    if !a.args.is_empty() {
        container[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    if !a.env.is_empty() {
        container["env"] = json!(a
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                json!({"name": k, "value": v})
            })
            .collect::<Vec<_>>());
    }
    if let Some(p) = a.port {
        container["ports"] = json!([{"containerPort": p}]);
    }
    if a.stdin {
        container["stdin"] = json!(true);
        container["stdinOnce"] = json!(true);
    }
    if a.tty {
        container["tty"] = json!(true);
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": a.name, "namespace": ns, "labels": labels},
        "spec": {"containers": [container], "restartPolicy": a.restart}});
    check_offline(&pod)?;
    Applied::print_warnings(&ctx.block_on(apply_docs(&mut client, vec![pod], true))?);
    if !(a.stdin || a.tty) {
        println!("pod/{} created", a.name);
        return Ok(0);
    }
    // Attached, as kubectl run -i: wait for the container, then attach to its own process (its
    // console: stdin and, with -t, its terminal).
    let deadline = Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let p = ctx.block_on(get_one(&mut client, "Pod", &ns, &a.name))?;
        if p["status"]["phase"] == "Running" || Instant::now() > deadline {
            break p;
        }
        if let Some(w) = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str().filter(|r| *r == "ErrImagePull") {
            bail!("pod {}: {w}: {}", a.name, p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap_or(""));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if pod["status"]["phase"] != "Running" {
        bail!("pod {} is not running; current phase is {}", a.name, pod["status"]["phase"].as_str().unwrap_or("Pending"));
    }
    if a.tty {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let start = emu_proto::ExecStart {
        namespace: ns.clone(),
        pod: a.name.clone(),
        container: a.name.clone(),
        stdin: a.stdin,
        tty: crate::remote::use_tty(a.tty, a.stdin),
        attach: true,
        ..Default::default()
    };
    crate::remote::exec(&ctx, start)?;
    // The session ends with the container's run; with a policy that does not restart it, its
    // exit code is the command's (as kubectl run's).
    let mut code = 0;
    if a.restart != "Always" {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let p = ctx.block_on(get_one(&mut client, "Pod", &ns, &a.name))?;
            let terminated = &p["status"]["containerStatuses"][0]["state"]["terminated"];
            if let Some(exit) = terminated["exitCode"].as_i64() {
                code = exit as i32;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    } else if !a.rm {
        eprintln!("Session ended, resume using 'emu attach {} -c {} -i -t' command when the pod is running", a.name, a.name);
    }
    if a.rm {
        let r = ObjectRef { kind: "Pod".into(), namespace: ns.clone(), name: a.name.clone() };
        let _ = ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: 1 }));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && ctx.block_on(get_one(&mut client, "Pod", &ns, &a.name)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("pod \"{}\" deleted", a.name);
    }
    ctx.client = client;
    Ok(code)
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The pod (`NAME` or `pod/NAME`), or `deployment/NAME`, `service/NAME`, … for one of its pods.
    pub pod: String,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long = "container")]
    pub container: Option<String>,
    /// Pass this terminal's stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal (TTY), e.g. for a shell: `-it POD -- sh`.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// A command given without `--` (`exec POD bash`, as "Kubernetes in Action" types it): refused
    /// with kubectl's words.
    #[arg(hide = true)]
    pub command_without_dashes: Vec<String>,
    /// After `--`: the command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// kubectl's refusals of an exec's command line (`exec POD bash`, or no command at all).
fn check_exec_command(a: &ExecArgs) -> anyhow::Result<()> {
    if !a.command_without_dashes.is_empty() {
        bail!("exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead");
    }
    if a.command.is_empty() {
        bail!("you must specify at least one command for the container");
    }
    Ok(())
}

/// The pod `TYPE/NAME` (or `NAME`, a pod) stands for: the pod itself, or a running pod of a
/// Deployment's, ReplicaSet's or Service's selector, as kubectl picks one.
pub(crate) fn find_pod(ctx: &Ctx, client: &mut Client, target: &str, ns: &str) -> anyhow::Result<Value> {
    let (kind, name) = target.split_once('/').unwrap_or(("pod", target));
    let rk = kinds::lookup(kind).ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type {kind:?}"))?;
    if rk.kind == "Pod" {
        return ctx.block_on(get_one(client, "Pod", ns, name));
    }
    let owner = ctx.block_on(get_one(client, rk.kind, ns, name))?;
    // A Service's selector is a plain label map; the workloads' a LabelSelector.
    let sel = if rk.kind == "Service" {
        let labels = emu_api::selector::string_map(&owner["spec"]["selector"]);
        if labels.is_empty() {
            bail!("invalid service '{name}': Service is defined without a selector");
        }
        emu_api::selector::Selector::from_map(&labels)
    } else {
        emu_api::selector::Selector::from_label_selector(&owner["spec"]["selector"]).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let pods = ctx.block_on(list(client, "Pod", ns, &sel.to_string()))?;
    pods.into_iter().find(|p| p["status"]["phase"] == "Running").ok_or_else(|| anyhow::anyhow!("no running pod found for {target}"))
}

fn pick_container(pod: &Value, wanted: Option<&str>) -> anyhow::Result<String> {
    let names: Vec<String> =
        pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(str::to_string)).collect();
    match wanted {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => bail!("container {c} is not valid for pod {}", object::name(pod)),
        None => {
            let first = names.first().cloned().context("pod has no containers")?;
            if names.len() > 1 {
                eprintln!("Defaulted container {first:?} out of: {}", names.join(", "));
            }
            Ok(first)
        }
    }
}

/// Runs `argv` in a container of `pod` (through its node's agent) and returns its exit code:
/// stdin passed on with `stdin`, a terminal with `tty` (kubectl's -i and -t).
fn exec_in(ctx: &Ctx, pod: &Value, container: &str, argv: &[String], stdin: bool, tty: bool) -> anyhow::Result<i32> {
    if pod["status"]["phase"] != "Running" {
        bail!("cannot exec into a container in a completed pod; current phase is {}", pod["status"]["phase"].as_str().unwrap_or("Pending"));
    }
    let start = emu_proto::ExecStart {
        namespace: object::namespace(pod).to_string(),
        pod: object::name(pod).to_string(),
        container: container.to_string(),
        command: argv.to_vec(),
        stdin,
        tty: crate::remote::use_tty(tty, stdin),
        ..Default::default()
    };
    crate::remote::exec(ctx, start)
}

pub fn exec(a: ExecArgs, g: &Globals) -> anyhow::Result<i32> {
    check_exec_command(&a)?;
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    let pod = find_pod(&ctx, &mut client, &a.pod, &ns)?;
    let container = pick_container(&pod, a.container.as_deref())?;
    exec_in(&ctx, &pod, &container, &a.command, a.stdin, a.tty)
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The pod (`NAME` or `pod/NAME`), or `deployment/NAME`, `service/NAME`, … for one of its pods.
    pub pod: String,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long = "container")]
    pub container: Option<String>,
    /// Pass this terminal's stdin to the container (it must have `stdin: true`).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// The container's terminal is this one (it must have `tty: true`).
    #[arg(short = 't', long)]
    pub tty: bool,
}

/// As kubectl attach: the session lasts until the container's run ends (or Ctrl-C without -i).
pub fn attach(a: AttachArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    let pod = find_pod(&ctx, &mut client, &a.pod, &ns)?;
    let container = pick_container(&pod, a.container.as_deref())?;
    if pod["status"]["phase"] != "Running" {
        bail!("cannot attach to a container in a completed pod; current phase is {}", pod["status"]["phase"].as_str().unwrap_or("Pending"));
    }
    let spec = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .cloned()
        .unwrap_or_default();
    let tty = a.tty && spec["tty"] == true;
    if a.tty && !tty {
        eprintln!("Unable to use a TTY - container {container} did not allocate one");
    }
    if tty {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let start = emu_proto::ExecStart {
        namespace: ns,
        pod: object::name(&pod).to_string(),
        container,
        stdin: a.stdin,
        tty: crate::remote::use_tty(tty, a.stdin),
        attach: true,
        ..Default::default()
    };
    crate::remote::exec(&ctx, start)
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`), or `deployment/NAME`, `service/NAME`, … for one of its
    /// pods; or none, with -l.
    #[arg(required_unless_present = "selector")]
    pub pod: Option<String>,
    /// The logs of every pod matching this label selector (the last 10 lines of each unless
    /// --tail says otherwise), one pod after the other.
    #[arg(short = 'l', long = "selector", conflicts_with = "pod")]
    pub selector: Option<String>,
    /// Begin each line with `[pod/NAME/CONTAINER] `.
    #[arg(long)]
    pub prefix: bool,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long = "container")]
    pub container: Option<String>,
    /// Keep printing the log as it grows (until the pod goes, or Ctrl-C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The log of the container's previous run (after a restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
    /// Each line prefixed with the time it was written (RFC 3339, nanoseconds).
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines newer than a duration, e.g. 10s, 5m, 1h30m.
    #[arg(long, value_parser = since_duration, conflicts_with = "since_time")]
    pub since: Option<Duration>,
    /// Only lines written at or after a time (RFC 3339, e.g. 2026-12-07T05:00:00Z).
    #[arg(long = "since-time")]
    pub since_time: Option<String>,
}

/// kubectl's `--since`: Go's duration syntax, units h, m, s, ms (`1h30m`, `90s`).
pub(crate) fn since_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: use e.g. 10s, 5m or 1h30m");
    let (mut total, mut rest) = (0f64, text);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, seconds) =
            [("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0)].into_iter().find(|(u, _)| rest.starts_with(u)).ok_or_else(bad)?;
        total += value * seconds;
        rest = &rest[unit.len()..];
    }
    if text.is_empty() || total <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

pub fn logs(a: LogsArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    if a.prefix && a.follow {
        bail!("emu logs --prefix prints a log to its end: leave out -f");
    }
    let Some(pod_arg) = a.pod.as_deref() else { return logs_by_selector(&ctx, &mut client, &a, &ns) };
    let pod = find_pod(&ctx, &mut client, pod_arg, &ns)?;
    let container = pick_container(&pod, a.container.as_deref())?;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        bail!("pod {} is not scheduled to a node yet", object::name(&pod));
    }
    let request = emu_proto::LogsRequest {
        namespace: object::namespace(&pod).to_string(),
        pod: object::name(&pod).to_string(),
        container,
        follow: a.follow,
        previous: a.previous,
        tail_lines: a.tail.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1),
        timestamps: a.timestamps,
        since_unix_nanos: since_unix_nanos(a.since, a.since_time.as_deref())?,
        ..Default::default()
    };
    if a.prefix {
        print_prefixed(&crate::remote::logs_gathered(&ctx, request.clone())?, &request);
        return Ok(0);
    }
    crate::remote::logs(&ctx, request)?;
    Ok(0)
}

/// The lines of a container's log, each begun with `[pod/NAME/CONTAINER] ` as kubectl's
/// `--prefix` does.
fn print_prefixed(log: &[u8], request: &emu_proto::LogsRequest) {
    let text = String::from_utf8_lossy(log);
    for line in text.lines() {
        println!("[pod/{}/{}] {line}", request.pod, request.container);
    }
}

/// `emu logs -l SELECTOR`: each matching pod's log in turn (kubectl's default of the last 10
/// lines of each); following is for one pod only, as emu follows one stream at a time.
fn logs_by_selector(ctx: &Ctx, client: &mut Client, a: &LogsArgs, ns: &str) -> anyhow::Result<i32> {
    let selector = a.selector.as_deref().unwrap_or_default();
    let pods = ctx.block_on(list(client, "Pod", ns, selector))?;
    if pods.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
        return Ok(0);
    }
    if a.follow && pods.len() > 1 {
        bail!("emu logs -f follows one pod; {} pods match {selector:?}: name one, or narrow the selector", pods.len());
    }
    for pod in &pods {
        let container = pick_container(pod, a.container.as_deref())?;
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            continue;
        }
        let request = emu_proto::LogsRequest {
            namespace: object::namespace(pod).to_string(),
            pod: object::name(pod).to_string(),
            container,
            follow: a.follow,
            previous: a.previous,
            tail_lines: a.tail.and_then(|n| i64::try_from(n).ok()).unwrap_or(10),
            timestamps: a.timestamps,
            since_unix_nanos: since_unix_nanos(a.since, a.since_time.as_deref())?,
            ..Default::default()
        };
        if a.prefix {
            print_prefixed(&crate::remote::logs_gathered(ctx, request.clone())?, &request);
        } else {
            crate::remote::logs(ctx, request)?;
        }
    }
    Ok(0)
}

/// `--since` (before now) or `--since-time` as Unix nanoseconds; 0 for neither.
fn since_unix_nanos(since: Option<Duration>, since_time: Option<&str>) -> anyhow::Result<i64> {
    if let Some(text) = since_time {
        let (seconds, nanos) = emu_api::time::parse_rfc3339_nanos(text)
            .ok_or_else(|| anyhow::anyhow!("--since-time must be an RFC 3339 time, e.g. 2026-12-07T05:00:00Z"))?;
        return Ok(seconds * 1_000_000_000 + i64::from(nanos));
    }
    Ok(since.map_or(0, |d| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.saturating_sub(d).as_nanos() as i64
    }))
}

#[derive(Args, Debug)]
pub struct SshArgs {
    /// The node's name (`emu get nodes`).
    pub node: String,
    /// After `--`: the command to run (default: a shell).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs a command (default: a login shell) on a node, in its network namespace (through the
/// node's agent).
pub fn ssh(a: SshArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let nodes = ctx.node_names()?;
    if !nodes.contains(&a.node) {
        bail!("node {:?} not found in cluster {:?} (nodes: {})", a.node, ctx.cluster, nodes.join(", "));
    }
    run_outside_a_pod(&ctx, emu_proto::ExecStart { node: a.node.clone(), command: a.command, ..Default::default() })
}

#[derive(Args, Debug)]
pub struct OutsideArgs {
    /// After `--`: the command to run (default: a shell).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs a command (default: a shell) as the external client, in the outside world's network
/// namespace: it reaches the nodes' ExternalIPs (and what they expose), nothing else.
pub fn outside(a: OutsideArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    run_outside_a_pod(&ctx, emu_proto::ExecStart { outside: true, command: a.command, ..Default::default() })
}

/// Runs `start`'s command on a node or in the outside world, as a shell there runs it: stdin
/// passed on, a terminal when this one is (a shell when no command is given, `root@NODE`
/// prompting), this directory and $SHELL, $TERM; the exit code passed through.
fn run_outside_a_pod(ctx: &Ctx, mut start: emu_proto::ExecStart) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    start.stdin = true;
    start.tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    start.env = ["SHELL", "TERM"].iter().filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?))).collect();
    start.working_dir = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    crate::remote::exec(ctx, start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{render_error, ApiError};

    #[test]
    fn an_exec_command_needs_its_dashes_as_kubectl_says() {
        #[derive(clap::Parser)]
        struct Exec {
            #[command(flatten)]
            args: ExecArgs,
        }
        let parse = |argv: &[&str]| <Exec as clap::Parser>::try_parse_from(argv).unwrap().args;
        let refusal = |argv: &[&str]| check_exec_command(&parse(argv)).map_err(|e| e.to_string()).err();
        assert_eq!(
            refusal(&["exec", "-it", "kubia-3inly", "bash"]).as_deref(),
            Some("exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead")
        );
        assert_eq!(refusal(&["exec", "kubia-3inly"]).as_deref(), Some("you must specify at least one command for the container"));
        assert_eq!(refusal(&["exec", "-it", "kubia-3inly", "--", "bash"]), None);
        assert_eq!(parse(&["exec", "p", "--", "sh", "-c", "echo hi"]).command, ["sh", "-c", "echo hi"]);
    }

    #[test]
    fn a_server_error_about_an_object_names_its_file_as_kubectl_does() {
        let doc = |name: &str| json!({"kind": "Service", "metadata": {"name": name}});
        let sources = vec![("a.yaml".to_string(), doc("web")), ("b.yaml".to_string(), doc("my-nginx"))];
        let error = |text: &str| -> anyhow::Error { ApiError(text.into()).into() };
        let named = |e: anyhow::Error, sources: &[(String, Value)]| render_error(&naming_the_file(e, sources));
        assert_eq!(
            named(error("Error from server (AlreadyExists): services \"my-nginx\" already exists"), &sources),
            "Error from server (AlreadyExists): error when creating \"b.yaml\": services \"my-nginx\" already exists"
        );
        // The only object: named whatever the message quotes (a missing namespace).
        assert_eq!(
            named(error("Error from server (NotFound): namespaces \"lab\" not found"), &sources[..1]),
            "Error from server (NotFound): error when creating \"a.yaml\": namespaces \"lab\" not found"
        );
        // Invalid errors, unknown objects and the client's own errors stay as they are.
        for text in
            ["The Service \"web\" is invalid: spec.ports: Required value", "Error from server (NotFound): namespaces \"lab\" not found"]
        {
            assert_eq!(named(error(text), &sources), text);
        }
        assert_eq!(named(anyhow::anyhow!("cannot reach the controller"), &sources), "error: cannot reach the controller");
    }
}
