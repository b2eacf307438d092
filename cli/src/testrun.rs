//! `emu test FILE… [--junit OUT.xml] [--retain]` (issue 7): each scenario on a fresh cluster of
//! its own, its steps run in order and reported as `✓ NAME (1.2 s)` or `✗ NAME (5.0 s): expected
//! …, got …`, the first failure ending the scenario, the cluster removed afterwards (also after a
//! failure or Ctrl-C), and JUnit XML for CI.
//!
//! What a step's result means is decided in `emu_scenario::checks`; this module does the I/O: API
//! calls, and `emu exec|ssh|outside` child processes for commands, `http` steps and background
//! loads. Each child gets a process group of its own, so that a timeout kills everything it
//! started (the node's agent then ends the command), and so that a Ctrl-C on the terminal
//! reaches emu only, which then cleans up.
//!
//! A background load is a process of the client's own (in the pod, on the node, in the outside
//! world), started through `emu exec|ssh|outside` and left running there, writing its record to
//! a file beside it that is fetched every 250 ms: the load goes on whatever happens to the
//! control plane meanwhile (a command's stream, like `kubectl exec`'s, ends with the controller).

use crate::context::{api_error, render_error, require_root, Ctx};
use crate::lifecycle::{self, Manifests, Plan};
use crate::{fault, verbs, Globals};
use anyhow::Context as _;
use clap::Args;
use emu_api::object;
use emu_proto::{DeleteRequest, ObjectRef, ScaleRequest};
use emu_scenario::checks::{self, CaseReport, LoadStats, Outcome, Sample, SuiteReport, Verdict};
use emu_scenario::steps::{self, shell_safe};
use emu_scenario::steps::{Action, Condition, Kill, Load, LoadExpect, Place, Step};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Scenario files; each runs on a fresh cluster of its own.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write a JUnit XML report (a testsuite per file, a testcase per step) to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Keep each scenario's cluster for inspection instead of removing it.
    #[arg(long)]
    pub retain: bool,
    /// Seconds to wait for the scenario's pods when the cluster comes up.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Set by SIGINT/SIGTERM: the running step stops, the cluster is removed, the report written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn catch_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.with_context(|| format!("catching {sig}"))?;
    }
    Ok(())
}

/// Sleeps `d`, or less when interrupted.
fn pause(d: Duration) {
    let end = Instant::now() + d;
    while !interrupted() && Instant::now() < end {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
}

pub fn test(a: TestArgs, globals: &Globals) -> anyhow::Result<i32> {
    require_root()?;
    // Every file is read and checked first: a bad step is refused before any cluster exists.
    let mut runs = Vec::new();
    for (i, file) in a.files.iter().enumerate() {
        let plan = lifecycle::plan(Some(file), None)?;
        // `--cluster` names the cluster (NAME1, NAME2, … with several files); $EMU_CLUSTER does
        // not: it names a cluster to use, and each scenario needs one of its own.
        let name = match &globals.cluster {
            Some(c) if a.files.len() == 1 => c.clone(),
            Some(c) => format!("{c}{}", i + 1),
            None => {
                let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let key = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
                checks::cluster_name(&stem, &key.to_string_lossy())
            }
        };
        lifecycle::validate_cluster_name(&name)?;
        runs.push((file, plan, name));
    }
    emu_provider::programs::require_companions()?;
    catch_signals()?;
    let started = Instant::now();
    let mut suites = Vec::new();
    for (file, plan, name) in &runs {
        if interrupted() {
            break;
        }
        suites.push(run_scenario(file, plan, name, &a));
    }
    let failed: Vec<&SuiteReport> = suites.iter().filter(|s| s.failed()).collect();
    let plural = if suites.len() == 1 { "" } else { "s" };
    let mut summary = format!("{} scenario{plural}: {} passed, {} failed", suites.len(), suites.len() - failed.len(), failed.len());
    if !failed.is_empty() {
        let files: Vec<&str> = failed.iter().map(|s| s.file.as_str()).collect();
        summary.push_str(&format!(" ({})", files.join(", ")));
    }
    println!("{summary} in {}.", checks::seconds(started.elapsed().as_millis() as u64));
    if let Some(path) = &a.junit {
        std::fs::write(path, checks::junit(&suites)).with_context(|| format!("writing the JUnit report to {}", path.display()))?;
        println!("JUnit report written to {}.", path.display());
    }
    if interrupted() {
        eprintln!("Interrupted.");
        return Ok(130);
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// Prints a step while it runs (on a terminal), then its result line.
struct Printer {
    tty: bool,
}

impl Printer {
    fn running(&self, name: &str) {
        if self.tty {
            print!(" • {name} …");
            let _ = std::io::stdout().flush();
        }
    }

    fn done(&self, case: &CaseReport) {
        let cr = if self.tty { "\r\x1b[2K" } else { "" };
        println!("{cr} {}", checks::case_line(case));
    }
}

fn case(name: &str, started: Instant, result: Result<String, String>) -> CaseReport {
    let outcome = match result {
        Ok(detail) => Outcome::Passed(detail),
        Err(message) => Outcome::Failed(message),
    };
    CaseReport { name: name.to_string(), ms: started.elapsed().as_millis() as u64, outcome }
}

/// What running a scenario does to the world, behind a trait so that the order of things (the
/// first failure ends the scenario, loads stop, the cluster goes unless kept or not ours) is
/// tested with a fake.
trait Driver {
    /// Whether the cluster's name is taken already (then it is not ours to remove).
    fn exists(&mut self) -> anyhow::Result<bool>;
    /// Creates the cluster; returns the number of pods Running.
    fn bring_up(&mut self) -> anyhow::Result<usize>;
    /// Runs step `index`: Ok with what to report, or Err with what was expected and got.
    fn run(&mut self, index: usize, step: &Step, docs: &Manifests) -> Result<String, String>;
    fn running_loads(&self) -> Vec<String>;
    fn stop_load(&mut self, name: &str) -> Verdict;
    fn teardown(&mut self) -> anyhow::Result<()>;
}

/// The real thing: a cluster made by lifecycle's bring-up, steps run by a [`Runner`].
struct Live<'a> {
    cluster: String,
    plan: &'a Plan,
    timeout: u64,
    runner: Runner,
}

impl Driver for Live<'_> {
    fn exists(&mut self) -> anyhow::Result<bool> {
        lifecycle::cluster_exists(&self.cluster)
    }

    fn bring_up(&mut self) -> anyhow::Result<usize> {
        // The name is held while the cluster is made; on failure `run_script` tears it down.
        let provider = lifecycle::claim(&self.cluster)?;
        lifecycle::bring_up(&provider, self.plan, self.timeout, true)
    }

    fn run(&mut self, index: usize, step: &Step, docs: &Manifests) -> Result<String, String> {
        self.runner.run(index, step, docs)
    }

    fn running_loads(&self) -> Vec<String> {
        self.runner.loads.keys().cloned().collect()
    }

    fn stop_load(&mut self, name: &str) -> Verdict {
        self.runner.stop_load(name, &LoadExpect::default())
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        lifecycle::teardown(&self.cluster)
    }
}

/// One scenario as `emu test` runs it.
struct Script<'a> {
    file: String,
    name: String,
    cluster: String,
    nodes: usize,
    seed: u64,
    seed_given: bool,
    steps: &'a [(Step, Manifests)],
    retain: bool,
}

fn run_scenario(file: &Path, plan: &Plan, cluster: &str, a: &TestArgs) -> SuiteReport {
    use std::io::IsTerminal;
    let seed = plan.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        nanos ^ ((std::process::id() as u64) << 32)
    });
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let script = Script {
        file: file.display().to_string(),
        name: plan.name.clone().unwrap_or(stem),
        cluster: cluster.to_string(),
        nodes: plan.nodes.len(),
        seed,
        seed_given: plan.seed.is_some(),
        steps: &plan.steps,
        retain: a.retain,
    };
    let mut live = Live { cluster: cluster.to_string(), plan, timeout: a.timeout, runner: Runner::new(cluster, seed, &plan.nodes) };
    run_script(&script, &mut live, &Printer { tty: std::io::stdout().is_terminal() })
}

fn run_script(s: &Script, driver: &mut dyn Driver, printer: &Printer) -> SuiteReport {
    let cluster = &s.cluster;
    let mut suite = SuiteReport { name: s.name.clone(), file: s.file.clone(), cases: vec![] };
    let given = if s.seed_given { "" } else { " (set `seed:` in the file to repeat its choices)" };
    println!("Scenario {}: cluster {cluster:?}, seed {}{given}", s.file, s.seed);
    let record = |suite: &mut SuiteReport, c: CaseReport| {
        printer.done(&c);
        suite.cases.push(c);
    };

    let up_name = format!("cluster up ({} node{})", s.nodes, if s.nodes == 1 { "" } else { "s" });
    printer.running(&up_name);
    let t = Instant::now();
    let exists = driver.exists();
    let ours = matches!(exists, Ok(false));
    let up = match exists {
        Err(e) => Err(render_error(&e)),
        Ok(true) => Err(format!(
            "cluster {cluster:?} already exists (an earlier `emu test --retain`, or another run of this file?): remove it with `sudo emu down --cluster {cluster}`, or give --cluster"
        )),
        Ok(false) => driver.bring_up().map(|pods| format!("{pods} pods Running")).map_err(|e| render_error(&e)),
    };
    let mut failed = up.is_err();
    record(&mut suite, case(&up_name, t, up));

    for (i, (step, docs)) in s.steps.iter().enumerate() {
        if failed || interrupted() {
            record(&mut suite, CaseReport { name: step.name.clone(), ms: 0, outcome: Outcome::Skipped });
            continue;
        }
        printer.running(&step.name);
        let t = Instant::now();
        let mut result = driver.run(i, step, docs);
        if interrupted() {
            result = Err("interrupted (Ctrl-C)".into());
        }
        failed = result.is_err();
        record(&mut suite, case(&step.name, t, result));
    }
    // Loads still running stop with the scenario, and report.
    for name in driver.running_loads() {
        let t = Instant::now();
        let result = verdict(driver.stop_load(&name));
        record(&mut suite, case(&format!("stop load {name} (end of scenario)"), t, result));
    }

    if s.retain && ours {
        println!(
            "Kept cluster {cluster:?} (--retain): look with `emu get pods -A -o wide --cluster {cluster}`, remove it with `sudo emu down --cluster {cluster}`."
        );
    } else if ours {
        printer.running("cluster down");
        let t = Instant::now();
        let down = driver.teardown().map(|_| String::new()).map_err(|e| render_error(&e));
        record(&mut suite, case("cluster down", t, down));
    }
    println!();
    suite
}

/// What a command printed and how it ended.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
    /// Killed at the deadline (or on Ctrl-C) before it ended.
    timed_out: bool,
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn kill_group(child: &Child) {
    // The group is the child's own (process_group(0)): the child and everything it started.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs `cmd` in a process group of its own until it ends, `timeout` passes or Ctrl-C; then
/// kills whatever is left of the group.
fn run_bounded(mut cmd: std::process::Command, timeout: Duration) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline || interrupted() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    kill_group(&child);
    if status.is_none() {
        let _ = child.wait();
    }
    Ok(Output {
        code: status.map_or(-1, exit_code),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out: status.is_none(),
    })
}

/// A background load while it runs.
struct RunningLoad {
    load: Load,
    /// Where it runs: a pod by name (the one the load's target picked), a node, the outside.
    place: Place,
    /// Its process, as the client sees it.
    pid: String,
    /// Its record, beside it.
    file: String,
    record: Arc<Mutex<LoadRecord>>,
    started: Instant,
    stop: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

/// What has been fetched of a load's record.
#[derive(Default)]
struct LoadRecord {
    /// When the load started, by its client's clock.
    start: Option<f64>,
    samples: Vec<Sample>,
    /// Bytes of the file read so far, and the last line when it is not complete yet.
    offset: u64,
    partial: String,
}

/// How often a load's record is fetched.
const LOAD_FETCH_EVERY: Duration = Duration::from_millis(250);

/// `emu exec|ssh|outside --cluster C … -- ARGV`.
fn client_command(exe: &Path, cluster: &str, place: &Place, argv: &[String]) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    match place {
        Place::Pod { target, namespace, container } => {
            cmd.args(["exec", "--cluster", cluster, "-n", namespace]);
            if let Some(c) = container {
                cmd.args(["-c", c]);
            }
            cmd.arg(target);
        }
        Place::Node(node) => {
            cmd.args(["ssh", "--cluster", cluster, node]);
        }
        Place::Outside => {
            cmd.args(["outside", "--cluster", cluster]);
        }
    }
    cmd.arg("--").args(argv).env_remove("EMU_CLUSTER");
    cmd
}

/// Runs `script` with `sh -c` where a load runs; its stdout, when the command got through.
fn at_client(exe: &Path, cluster: &str, place: &Place, script: String) -> Option<String> {
    let out = run_bounded(client_command(exe, cluster, place, &["sh".into(), "-c".into(), script]), Duration::from_secs(5)).ok()?;
    (out.code == 0 && !out.timed_out).then_some(out.stdout)
}

/// Fetches what the load's record holds past what was read (complete lines only); false when
/// the client could not be reached.
fn fetch_load(exe: &Path, cluster: &str, place: &Place, file: &str, record: &Mutex<LoadRecord>) -> bool {
    let offset = record.lock().map(|r| r.offset).unwrap_or(0);
    let Some(text) = at_client(exe, cluster, place, format!("tail -c +{} {file}", offset + 1)) else { return false };
    let Ok(mut r) = record.lock() else { return false };
    r.offset += text.len() as u64;
    r.partial.push_str(&text);
    while let Some(end) = r.partial.find('\n') {
        let line: String = r.partial.drain(..=end).collect();
        if let Some(start) = checks::load_start(&line) {
            r.start = Some(start);
        } else if let Some(sample) = r.start.and_then(|start| checks::parse_load_line(&line, start)) {
            r.samples.push(sample);
        }
    }
    true
}

struct Runner {
    cluster: String,
    seed: u64,
    nodes: Vec<String>,
    /// This very `emu`, for `emu exec|ssh|outside`.
    exe: PathBuf,
    loads: BTreeMap<String, RunningLoad>,
    /// What `get` steps read, for the `${NAME}`s of later steps.
    vars: BTreeMap<String, String>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for (_, l) in std::mem::take(&mut self.loads) {
            l.stop.store(true, Ordering::SeqCst);
            let _ = l.reader.join();
            let _ = at_client(&self.exe, &self.cluster, &l.place, format!("kill {}; rm -f {}", l.pid, l.file));
        }
    }
}

fn verdict(v: Verdict) -> Result<String, String> {
    if v.ok {
        Ok(v.got)
    } else {
        Err(v.message())
    }
}

impl Runner {
    fn new(cluster: &str, seed: u64, nodes: &[String]) -> Runner {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("emu"));
        Runner { cluster: cluster.into(), seed, nodes: nodes.to_vec(), exe, loads: BTreeMap::new(), vars: BTreeMap::new() }
    }

    /// A connection to the controller, fresh for each step (it may have been restarted).
    fn ctx(&self) -> anyhow::Result<Ctx> {
        Ctx::open(&Globals::for_cluster(&self.cluster))
    }

    /// `emu exec|ssh|outside --cluster C … -- ARGV`.
    fn command(&self, place: &Place, argv: &[String]) -> std::process::Command {
        client_command(&self.exe, &self.cluster, place, argv)
    }

    /// Runs step `index`: Ok with what to report, or Err with what was expected and got.
    fn run(&mut self, index: usize, step: &Step, docs: &Manifests) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_millis(step.timeout_ms);
        match self.act(index, &step.with_variables(&self.vars), docs, deadline) {
            Ok(v) => verdict(v),
            Err(e) => Err(render_error(&e).trim_start_matches("error: ").to_string()),
        }
    }

    fn act(&mut self, index: usize, step: &Step, docs: &Manifests, deadline: Instant) -> anyhow::Result<Verdict> {
        let left = || deadline.saturating_duration_since(Instant::now());
        match &step.action {
            Action::Apply(_) => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                let mut lines = Vec::new();
                for (_, d) in docs {
                    lines.extend(verbs::Applied::lines(ctx.block_on(verbs::apply_docs(&mut client, d.clone(), false))?));
                }
                Ok(Verdict::pass(lines.join(", ")))
            }
            Action::Delete(objects) => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                let mut lines = Vec::new();
                let mut uids = Vec::new();
                for o in objects {
                    let r = ObjectRef { kind: o.kind.clone(), namespace: o.namespace.clone(), name: o.name.clone() };
                    let deleted = ctx
                        .block_on(client.delete(DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: -1 }))
                        .map_err(api_error)?;
                    let deleted: serde_json::Value =
                        deleted.into_inner().object.and_then(|o| serde_json::from_str(&o.json).ok()).unwrap_or_default();
                    uids.push(deleted["metadata"]["uid"].clone());
                    lines.push(format!("{}/{} deleted", o.kind.to_lowercase(), o.name));
                }
                // As kubectl, until they are gone (pods: their containers stopped): the objects
                // deleted, by uid, not a namesake made since (a StatefulSet's pod comes back
                // under its name at once).
                for (o, uid) in objects.iter().zip(&uids) {
                    while ctx
                        .block_on(verbs::get_one(&mut client, &o.kind, &o.namespace, &o.name))
                        .is_ok_and(|now| uid.is_null() || &now["metadata"]["uid"] == uid)
                    {
                        if left().is_zero() || interrupted() {
                            return Ok(Verdict::fail(format!("{}/{} to be gone", o.kind.to_lowercase(), o.name), "still there"));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Ok(Verdict::pass(lines.join(", ")))
            }
            Action::Get { object, jsonpath, var } => {
                let what = format!("{}/{} {jsonpath} to have a value", object.kind.to_lowercase(), object.name);
                loop {
                    let ctx = self.ctx()?;
                    let mut client = ctx.client.clone();
                    // Not there yet, or no value yet (a status the controller has not written).
                    let seen = match ctx.block_on(verbs::get_one(&mut client, &object.kind, &object.namespace, &object.name)) {
                        Ok(o) => match emu_kubectl::jsonpath(jsonpath, &o)? {
                            value if value.is_empty() => "no value".to_string(),
                            value if !shell_safe(&value) => {
                                let why = format!(
                                    "{:?}, which has characters a shell would interpret: a get step's value goes into later \
                                     commands as text, so read a field with a plain value (an address, a name, a number)",
                                    checks::excerpt(&value, 60)
                                );
                                return Ok(Verdict::fail(
                                    format!("{}/{} {jsonpath} to have a plain value", object.kind.to_lowercase(), object.name),
                                    why,
                                ));
                            }
                            value => {
                                let shown = format!("${{{var}}} = {}", checks::excerpt(&value, 60));
                                self.vars.insert(var.clone(), value);
                                return Ok(Verdict::pass(shown));
                            }
                        },
                        Err(e) => render_error(&e).trim_start_matches("error: ").to_string(),
                    };
                    if left().is_zero() || interrupted() {
                        return Ok(Verdict::fail(what, seen));
                    }
                    std::thread::sleep(Duration::from_millis(100).min(left()));
                }
            }
            Action::Scale { namespace, deployment, replicas } => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                let r = ObjectRef { kind: "Deployment".into(), namespace: namespace.clone(), name: deployment.clone() };
                ctx.block_on(client.scale(ScaleRequest { r#ref: Some(r), replicas: *replicas })).map_err(api_error)?;
                Ok(Verdict::pass(String::new()))
            }
            Action::Wait(c) => self.wait(c, deadline),
            Action::Run(c) => {
                let out = run_bounded(self.command(&c.place, &c.argv), left())?;
                if out.timed_out {
                    return Ok(Verdict::fail(
                        format!("the command to end within {}", steps::format_duration_ms(step.timeout_ms)),
                        format!("still running (stdout {})", checks::excerpt(&out.stdout, 200)),
                    ));
                }
                Ok(checks::check_command(&c.expect, out.code, &out.stdout, &out.stderr))
            }
            Action::Http(h) => {
                let argv = ["sh".to_string(), "-c".into(), checks::http_script(h)];
                let out = run_bounded(self.command(&h.from, &argv), left())?;
                let answers = checks::parse_answers(&out.stdout);
                if answers.is_empty() && !out.timed_out && out.code != 0 {
                    return Ok(Verdict::fail(
                        format!("the client to run from {}", h.from),
                        format!("exit code {} ({})", out.code, checks::excerpt(&out.stderr, 200)),
                    ));
                }
                Ok(checks::check_http(h, &answers))
            }
            Action::Fault { name, spec } => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                Ok(Verdict::pass(fault::record(&ctx, &mut client, &self.nodes, name, spec, Some(left()))?))
            }
            Action::Clear(names) => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                let existing = ctx.block_on(verbs::list(&mut client, emu_api::fault::KIND, "", ""))?;
                let lines = fault::clear(&ctx, &mut client, &existing, names.as_deref().unwrap_or_default(), Some(left()))?;
                Ok(Verdict::pass(lines.join(", ")))
            }
            Action::Node { node, op } => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                Ok(Verdict::pass(fault::node_op(&ctx, &mut client, node, *op, Some(left()))?))
            }
            Action::Restart(d) => {
                lifecycle::restart_daemon(&self.cluster, d)?;
                Ok(Verdict::pass(String::new()))
            }
            Action::Kill(Kill::Daemon(d)) => Ok(Verdict::pass(format!("pid {} killed", lifecycle::kill_daemon(&self.cluster, d)?))),
            Action::Kill(Kill::Pod { namespace, name }) => {
                self.kill_pod(namespace, name)?;
                Ok(Verdict::pass(String::new()))
            }
            Action::Kill(Kill::Selector { namespace, selector }) => {
                let ctx = self.ctx()?;
                let mut client = ctx.client.clone();
                let mut pods: Vec<String> = ctx
                    .block_on(verbs::list(&mut client, "Pod", namespace, selector))?
                    .iter()
                    .filter(|p| !object::is_terminating(p))
                    .map(|p| object::name(p).to_string())
                    .collect();
                if pods.is_empty() {
                    return Ok(Verdict::fail(format!("a pod matching {selector} to kill"), "none"));
                }
                pods.sort();
                let victim = &pods[checks::pick(self.seed, index as u64, pods.len())];
                self.kill_pod(namespace, victim)?;
                Ok(Verdict::pass(format!("pod {victim} killed (1 of {})", pods.len())))
            }
            Action::Sleep { ms } => {
                pause(Duration::from_millis(*ms));
                Ok(Verdict::pass(String::new()))
            }
            Action::Background(l) => self.start_load(l, deadline),
            Action::Stop { load, expect } => Ok(self.stop_load(load, expect)),
        }
    }

    /// Deleted with a grace period of 0: the node's agent kills its containers at once.
    fn kill_pod(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let ctx = self.ctx()?;
        let mut client = ctx.client.clone();
        let r = ObjectRef { kind: "Pod".into(), namespace: namespace.into(), name: name.into() };
        ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: 0 })).map_err(api_error)?;
        Ok(())
    }

    /// Polls the condition until it holds or the deadline passes (then: the last result).
    fn wait(&self, c: &Condition, deadline: Instant) -> anyhow::Result<Verdict> {
        let started = Instant::now();
        loop {
            let v = match c {
                Condition::Pods(p) => match self.ctx().and_then(|ctx| {
                    let mut client = ctx.client.clone();
                    ctx.block_on(verbs::list(&mut client, "Pod", &p.namespace, &p.selector))
                }) {
                    Ok(pods) => checks::check_pods(p, &pods),
                    Err(e) => {
                        Verdict { ok: false, got: format!("no answer from the API ({})", render_error(&e)), ..checks::check_pods(p, &[]) }
                    }
                },
                Condition::Endpoints { namespace, service, count } => match self.endpoints(namespace, service) {
                    Ok(ep) => checks::check_endpoints(service, *count, ep.as_ref()),
                    Err(e) => Verdict {
                        ok: false,
                        got: format!("no answer from the API ({})", render_error(&e)),
                        ..checks::check_endpoints(service, *count, None)
                    },
                },
                Condition::Command(cmd) => {
                    let out = run_bounded(self.command(&cmd.place, &cmd.argv), deadline.saturating_duration_since(Instant::now()))?;
                    checks::check_command(&cmd.expect, out.code, &out.stdout, &out.stderr)
                }
                Condition::Rollout { namespace, kind, name } => {
                    let expected = match kind.as_str() {
                        "StatefulSet" => format!("statefulset {name:?}: every pod updated and ready"),
                        _ => format!("{} {name:?} successfully rolled out", kind.to_lowercase()),
                    };
                    let got = self.ctx().and_then(|ctx| {
                        let mut client = ctx.client.clone();
                        ctx.block_on(verbs::get_one(&mut client, kind, namespace, name))
                    });
                    let status = |d: &serde_json::Value| match kind.as_str() {
                        "StatefulSet" => crate::rollout::statefulset_status_line(d),
                        _ => crate::rollout::status_line(d),
                    };
                    match got.map(|d| status(&d)) {
                        Ok(Ok((_, true))) => Verdict::pass(expected),
                        Ok(Ok((line, false))) => Verdict::fail(expected, line),
                        // A rollout past its deadline does not finish by waiting longer.
                        Ok(Err(stuck)) => return Ok(Verdict::fail(expected, stuck)),
                        Err(e) => Verdict::fail(expected, format!("no answer from the API ({})", render_error(&e))),
                    }
                }
            };
            if v.ok {
                return Ok(v);
            }
            if Instant::now() >= deadline || interrupted() {
                return Ok(Verdict { got: format!("{} after {}", v.got, checks::seconds(started.elapsed().as_millis() as u64)), ..v });
            }
            std::thread::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// The Service's Endpoints object, None while there is none.
    fn endpoints(&self, namespace: &str, service: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let ctx = self.ctx()?;
        let mut client = ctx.client.clone();
        let r = ObjectRef { kind: "Endpoints".into(), namespace: namespace.into(), name: service.into() };
        match ctx.block_on(client.get(r)) {
            Ok(o) => Ok(Some(serde_json::from_str(&o.into_inner().json)?)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(api_error(s)),
        }
    }

    /// Starts the load's client and waits for its first request (or its end).
    fn start_load(&mut self, l: &Load, deadline: Instant) -> anyhow::Result<Verdict> {
        let file = format!("/tmp/emu-load-{}-{}", self.cluster, l.name);
        // Started in the background, its record to the file, nothing tied to this command.
        let script = format!("rm -f {file}; ({}) > {file} 2>&1 < /dev/null & echo \"$! $(hostname)\"", checks::load_script(l));
        let out =
            run_bounded(self.command(&l.from, &["sh".into(), "-c".into(), script]), deadline.saturating_duration_since(Instant::now()))?;
        let mut words = out.stdout.split_whitespace();
        let (Some(pid), Some(host)) = (words.next().filter(|_| out.code == 0), words.next()) else {
            return Ok(Verdict::fail(
                format!("the client of load {} to run from {}", l.name, l.from),
                format!("exit code {} ({})", out.code, checks::excerpt(&out.stderr, 200)),
            ));
        };
        // A Deployment's or Service's pod: the one picked now, from now on.
        let place = match &l.from {
            Place::Pod { namespace, container, .. } => {
                Place::Pod { target: host.to_string(), namespace: namespace.clone(), container: container.clone() }
            }
            other => other.clone(),
        };
        let record = Arc::new(Mutex::new(LoadRecord::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (exe, cluster, place, file, record, stop) =
                (self.exe.clone(), self.cluster.clone(), place.clone(), file.clone(), Arc::clone(&record), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && !interrupted() {
                    fetch_load(&exe, &cluster, &place, &file, &record);
                    std::thread::sleep(LOAD_FETCH_EVERY);
                }
            })
        };
        let running = RunningLoad { load: l.clone(), place, pid: pid.to_string(), file, record, started: Instant::now(), stop, reader };
        self.loads.insert(l.name.clone(), running);
        loop {
            let load = self.loads.get(&l.name).expect("inserted");
            if let Some(first) = load.record.lock().expect("record").samples.first() {
                let how = if first.answer.ok() { "ok".to_string() } else { first.answer.failure() };
                return Ok(Verdict::pass(format!("first request: {how}")));
            }
            if Instant::now() >= deadline || interrupted() {
                let stop = self.stop_load(&l.name, &LoadExpect::default());
                let got = if stop.ok { "no request within the step's timeout".into() } else { stop.got };
                return Ok(Verdict::fail(format!("the client of load {} to run from {}", l.name, l.from), got));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends a load and judges its record against its expectations (`more` over the load's own).
    /// The client may be unreachable a while (the controller restarting): asked again for 15 s.
    fn stop_load(&mut self, name: &str, more: &LoadExpect) -> Verdict {
        let Some(l) = self.loads.remove(name) else {
            return Verdict::fail(format!("load {name:?} running"), "no such load (its start failed?)");
        };
        l.stop.store(true, Ordering::SeqCst);
        let _ = l.reader.join();
        let give_up = Instant::now() + Duration::from_secs(15);
        let ask = |script: String| loop {
            match at_client(&self.exe, &self.cluster, &l.place, script.clone()) {
                Some(out) => return Some(out),
                None if Instant::now() < give_up && !interrupted() => std::thread::sleep(Duration::from_millis(200)),
                None => return None,
            }
        };
        let ran = ask(format!("kill {} 2>/dev/null && echo running || echo gone", l.pid)).map(|out| out.trim() == "running");
        while !fetch_load(&self.exe, &self.cluster, &l.place, &l.file, &l.record) && Instant::now() < give_up && !interrupted() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = ask(format!("rm -f {}", l.file));
        let stats = LoadStats::of(&l.record.lock().expect("record").samples);
        match ran {
            Some(true) => checks::check_load(&l.load.expect.merged(more), &stats),
            Some(false) => Verdict::fail(
                format!("the client of load {name} to run until stopped"),
                format!("its end within {} ({})", checks::seconds(l.started.elapsed().as_millis() as u64), stats.summary()),
            ),
            None => Verdict::fail(
                format!("the client of load {name} to be reachable to stop it"),
                format!("no answer from {} ({})", l.place, stats.summary()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    /// Records what the scenario asked of it; fails where told to.
    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
        exists: bool,
        up_fails: bool,
        fail_step: Option<usize>,
        loads: Vec<String>,
    }

    impl Driver for Fake {
        fn exists(&mut self) -> anyhow::Result<bool> {
            Ok(self.exists)
        }
        fn bring_up(&mut self) -> anyhow::Result<usize> {
            self.calls.push("up".into());
            if self.up_fails {
                bail!("no cgroup v2");
            }
            Ok(4)
        }
        fn run(&mut self, index: usize, step: &Step, _: &Manifests) -> Result<String, String> {
            self.calls.push(format!("run {index}"));
            if let Action::Background(l) = &step.action {
                self.loads.push(l.name.clone());
            }
            if self.fail_step == Some(index) {
                return Err("expected a, got b".into());
            }
            Ok(String::new())
        }
        fn running_loads(&self) -> Vec<String> {
            self.loads.clone()
        }
        fn stop_load(&mut self, name: &str) -> Verdict {
            self.calls.push(format!("stop {name}"));
            Verdict::pass("3 requests, 3 ok, 0 failed")
        }
        fn teardown(&mut self) -> anyhow::Result<()> {
            self.calls.push("down".into());
            Ok(())
        }
    }

    fn script(steps: &[(Step, Manifests)], retain: bool) -> Script<'_> {
        Script { file: "t.yaml".into(), name: "t".into(), cluster: "t1".into(), nodes: 2, seed: 1, seed_given: true, steps, retain }
    }

    fn steps() -> Vec<(Step, Manifests)> {
        let text =
            "nodes: 2\nsteps:\n  - background: {name: load, from: outside, url: \"http://198.51.100.2/\"}\n  - sleep: 1s\n  - sleep: 2s\n";
        emu_scenario::scenario::parse(text).unwrap().steps.into_iter().map(|s| (s, vec![])).collect()
    }

    fn outcomes(r: &SuiteReport) -> Vec<String> {
        r.cases.iter().map(|c| checks::case_line(c).split(" (").next().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn a_scenario_runs_its_steps_then_stops_its_loads_and_removes_its_cluster() {
        let steps = steps();
        let mut fake = Fake::default();
        let r = run_script(&script(&steps, false), &mut fake, &Printer { tty: false });
        assert_eq!(fake.calls, ["up", "run 0", "run 1", "run 2", "stop load", "down"]);
        assert_eq!(
            outcomes(&r),
            [
                "✓ cluster up",
                "✓ start load load: http://198.51.100.2/ from outside every 200ms",
                "✓ sleep 1s",
                "✓ sleep 2s",
                "✓ stop load load",
                "✓ cluster down"
            ]
        );
        assert!(!r.failed());
    }

    #[test]
    fn the_first_failure_ends_the_scenario_and_the_cluster_still_goes() {
        let steps = steps();
        let mut fake = Fake { fail_step: Some(1), ..Default::default() };
        let r = run_script(&script(&steps, false), &mut fake, &Printer { tty: false });
        assert_eq!(fake.calls, ["up", "run 0", "run 1", "stop load", "down"]);
        assert_eq!(r.cases[2].outcome, Outcome::Failed("expected a, got b".into()));
        assert_eq!(r.cases[3].outcome, Outcome::Skipped);
        assert!(r.failed());
        // A failed bring-up: nothing runs, what was made goes.
        let mut fake = Fake { up_fails: true, ..Default::default() };
        let r = run_script(&script(&steps, false), &mut fake, &Printer { tty: false });
        assert_eq!(fake.calls, ["up", "down"]);
        assert_eq!(
            outcomes(&r),
            [
                "✗ cluster up",
                "- start load load: http://198.51.100.2/ from outside every 200ms",
                "- sleep 1s",
                "- sleep 2s",
                "✓ cluster down"
            ]
        );
    }

    #[test]
    fn a_kept_cluster_or_one_that_is_not_ours_stays() {
        let steps = steps();
        let mut fake = Fake { fail_step: Some(0), ..Default::default() };
        run_script(&script(&steps, true), &mut fake, &Printer { tty: false });
        assert_eq!(fake.calls, ["up", "run 0", "stop load"]);
        let mut fake = Fake { exists: true, ..Default::default() };
        let r = run_script(&script(&steps, false), &mut fake, &Printer { tty: false });
        assert!(fake.calls.is_empty(), "{:?}", fake.calls);
        assert!(matches!(&r.cases[0].outcome, Outcome::Failed(m) if m.starts_with("cluster \"t1\" already exists")));
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_with_what_it_started() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo started; wait"]);
        let t = Instant::now();
        let out = run_bounded(cmd, Duration::from_millis(300)).unwrap();
        assert!(out.timed_out && t.elapsed() < Duration::from_secs(5), "the background sleep holds no pipe open after the kill");
        assert_eq!(out.stdout, "started\n");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_bounded(cmd, Duration::from_secs(5)).unwrap();
        assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str(), out.timed_out), (3, "out\n", "err\n", false));
    }
}
