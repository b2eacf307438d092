//! Applying nft scripts (the service proxy's table, a node's partition and edge tables, the cloud
//! balancer's), behind the narrow [`NftRunner`] trait. The rulesets are decided in
//! `emu_dataplane`; this module only pipes them to `nft -f -`, or records them.
//!
//! Everything here blocks (a full sync of a large table takes a second or more); async callers
//! use `spawn_blocking`.

use std::sync::Mutex;

use crate::command::{self, truncate, MAX_STDERR};
use crate::fake::Recorder;

/// What failed, with the command, its exit status and what nft said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftError {
    #[error("`{argv}` could not be started: {reason} (is nftables installed? `apt-get install nftables`)")]
    Spawn { argv: String, reason: String },
    #[error("`{argv}` failed ({status}): {stderr}{context}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
        /// The script's lines around the first line nft complained about, when it named one.
        context: String,
    },
    #[error("applying the nft script panicked: {reason}")]
    Panicked { reason: String },
    #[error("nft apply #{attempt} failed on purpose (FakeNft told to fail)")]
    Injected { attempt: usize },
}

impl NftError {
    /// For a caller whose blocking task died (a `JoinError`'s text).
    pub fn from_panic(reason: impl Into<String>) -> Self {
        NftError::Panicked { reason: reason.into() }
    }
}

/// Applies nft scripts in the network namespace of the process (the node agent already lives in
/// its node's namespace).
pub trait NftRunner: Send + Sync {
    /// Runs `script` as one `nft -f -` transaction: all of it or nothing.
    fn apply(&self, script: &str) -> Result<(), NftError>;

    /// The terse listing (`nft -t list ruleset ip`: names and rules, no set contents) from which
    /// `emu_dataplane::proxy::parse_listing` finds leftovers for a resync. Empty when there is no table.
    fn list(&self) -> Result<String, NftError>;
}

/// Runs the real `nft`.
#[derive(Debug, Clone)]
pub struct RealNft {
    /// The command before nft's own arguments: `["nft"]`, or e.g.
    /// `["ip", "netns", "exec", "NAME", "nft"]` for a test that is not inside the namespace.
    program: Vec<String>,
}

impl Default for RealNft {
    fn default() -> Self {
        Self::new()
    }
}

impl RealNft {
    /// `nft` from PATH, in the caller's network namespace.
    pub fn new() -> Self {
        RealNft { program: vec!["nft".to_string()] }
    }

    /// Runs `prefix… -f -` instead (the last word of `prefix` being nft itself).
    pub fn with_command(prefix: &[&str]) -> Self {
        RealNft { program: prefix.iter().map(|s| s.to_string()).collect() }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let words: Vec<&str> = self.program.iter().map(String::as_str).chain(args.iter().copied()).collect();
        let (argv, output) = command::run(&words, stdin);
        let output = output.map_err(|e| NftError::Spawn { argv: argv.clone(), reason: e.to_string() })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(NftError::Failed {
            argv,
            status: output.status.to_string(),
            context: stdin.map(|s| script_context(s, &stderr)).unwrap_or_default(),
            stderr: truncate(stderr.trim(), MAX_STDERR),
        })
    }
}

impl NftRunner for RealNft {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(script)).map(drop)
    }

    fn list(&self) -> Result<String, NftError> {
        // The whole family rather than `list table ip emu`, which fails when the table is absent.
        self.run(&["-t", "list", "ruleset", "ip"], None)
    }
}

/// nft names script lines as `/dev/stdin:LINE:COLS: Error: …`; show the script around the first.
fn script_context(script: &str, stderr: &str) -> String {
    let line = stderr.lines().find_map(|l| {
        let rest = l.split_once("stdin:")?.1;
        rest.split(':').next()?.parse::<usize>().ok()
    });
    let Some(line) = line.filter(|&l| l > 0) else {
        return String::new();
    };
    let lines: Vec<&str> = script.lines().collect();
    let (from, to) = (line.saturating_sub(3), (line + 2).min(lines.len()));
    if from >= to {
        return String::new();
    }
    let mut out = format!("\nscript lines {}-{}:", from + 1, to);
    for (i, text) in lines[from..to].iter().enumerate() {
        let n = from + i + 1;
        let mark = if n == line { '>' } else { ' ' };
        out.push_str(&format!("\n{mark}{n:6} {}", truncate(text, 300)));
    }
    out
}

/// Records scripts instead of running them; can be told to fail.
#[derive(Debug, Default)]
pub struct FakeNft {
    scripts: Recorder<String>,
    listing: Mutex<String>,
}

impl FakeNft {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` applies fail (and are not recorded).
    pub fn fail_next(&self, n: usize) {
        self.scripts.fail_next(n);
    }

    /// The scripts applied successfully, oldest first.
    pub fn scripts(&self) -> Vec<String> {
        self.scripts.calls()
    }

    /// The scripts applied successfully since the last call, oldest first.
    pub fn take_scripts(&self) -> Vec<String> {
        self.scripts.take()
    }

    /// How many applies were attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.scripts.attempts()
    }

    /// What [`NftRunner::list`] returns from now on.
    pub fn set_listing(&self, listing: &str) {
        *self.listing.lock().unwrap_or_else(|e| e.into_inner()) = listing.to_string();
    }
}

impl NftRunner for FakeNft {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        self.scripts.attempt(Some(script.to_string())).map_err(|attempt| NftError::Injected { attempt })
    }

    fn list(&self) -> Result<String, NftError> {
        Ok(self.listing.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_scripts_and_fails_on_demand() {
        let nft = FakeNft::new();
        nft.apply("add table ip emu\n").expect("first apply");
        nft.fail_next(2);
        assert_eq!(nft.apply("a"), Err(NftError::Injected { attempt: 2 }));
        assert!(nft.apply("b").is_err());
        nft.apply("c").expect("failures used up");
        assert_eq!(nft.scripts(), ["add table ip emu\n", "c"]);
        assert_eq!(nft.attempts(), 4);
        assert_eq!(nft.list().expect("list"), "");
        nft.set_listing("table ip emu {\n}\n");
        assert_eq!(nft.list().expect("list"), "table ip emu {\n}\n");
    }

    #[test]
    fn runner_is_object_safe() {
        let runners: Vec<Box<dyn NftRunner>> = vec![Box::new(FakeNft::new()), Box::new(RealNft::new())];
        assert_eq!(runners.len(), 2);
    }

    #[test]
    fn failed_command_carries_argv_status_stderr_and_script_lines() {
        // `sh -c` stands in for nft: it complains the way nft does about line 4 of its stdin.
        let fake_nft =
            RealNft::with_command(&["sh", "-c", "cat >/dev/null; echo '/dev/stdin:4:1-3: Error: syntax error' >&2; exit 1", "nft"]);
        let script = "l1\nl2\nl3\nbad line\nl5\nl6\nl7\n";
        let err = fake_nft.apply(script).expect_err("must fail");
        let NftError::Failed { argv, status, stderr, context } = &err else { panic!("unexpected {err:?}") };
        assert!(argv.ends_with("nft -f -"), "{argv}");
        assert!(status.contains('1'), "{status}");
        assert_eq!(stderr, "/dev/stdin:4:1-3: Error: syntax error");
        assert!(context.contains(">     4 bad line"), "{context}");
        assert!(context.contains("     2 l2") && context.contains("     6 l6"), "{context}");
        assert!(!context.contains("l7"), "{context}");
        assert!(err.to_string().contains("bad line"), "{err}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = RealNft::with_command(&["/nonexistent/nft"]).apply("x").expect_err("must fail");
        assert!(matches!(err, NftError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/nft -f -"), "{err}");
    }

    #[test]
    fn script_reaches_stdin_whole() {
        // A script larger than a pipe buffer, checked by the stand-in's exit status.
        let script = "x".repeat(300_000);
        let counts = RealNft::with_command(&["sh", "-c", "test \"$(wc -c)\" -eq 300000", "nft"]);
        counts.apply(&script).expect("all bytes arrive");
    }
}
