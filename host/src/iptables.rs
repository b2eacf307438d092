//! Replacing iptables tables with `iptables-restore`, in a named network namespace or the
//! caller's, behind the narrow [`IptablesRunner`] trait. The node agent needs iptables rather
//! than nft for one thing: the kernel has NFQUEUE (the link emulator's queues) only as an
//! x_tables target. What the tables hold is decided in `emu_dataplane::faults`.
//!
//! Blocks (it runs a process); async callers use `spawn_blocking`.

use crate::command::{self, truncate, MAX_STDERR};
use crate::fake::Recorder;

/// What failed, with the command, its exit status and what iptables-restore said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IptablesError {
    #[error("`{argv}` could not be started: {reason} (is iptables installed? `apt-get install iptables`)")]
    Spawn { argv: String, reason: String },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed { argv: String, status: String, stderr: String },
    #[error("iptables-restore #{attempt} failed on purpose (FakeIptables told to fail)")]
    Injected { attempt: usize },
}

impl IptablesError {
    /// For a caller whose blocking task died (a `JoinError`'s text).
    pub fn from_panic(reason: impl Into<String>) -> Self {
        IptablesError::Spawn { argv: "iptables-restore".into(), reason: format!("panicked: {}", reason.into()) }
    }
}

/// Replaces whole iptables tables in one namespace at a time.
pub trait IptablesRunner: Send + Sync {
    /// Runs `iptables-restore` with `input` in the named network namespace `netns` (None: the
    /// caller's): every table `input` names is replaced, each in one transaction.
    fn restore(&self, netns: Option<&str>, input: &str) -> Result<(), IptablesError>;
}

/// Runs the real `iptables-restore` (`ip netns exec NAME iptables-restore` for a namespace).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealIptables;

impl IptablesRunner for RealIptables {
    fn restore(&self, netns: Option<&str>, input: &str) -> Result<(), IptablesError> {
        let words: Vec<&str> = match netns {
            Some(name) => vec!["ip", "netns", "exec", name, "iptables-restore"],
            None => vec!["iptables-restore"],
        };
        let (argv, output) = command::run(&words, Some(input));
        let output = output.map_err(|e| IptablesError::Spawn { argv: argv.clone(), reason: e.to_string() })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(IptablesError::Failed { argv, status: output.status.to_string(), stderr: truncate(stderr.trim(), MAX_STDERR) })
    }
}

/// Records what would be restored where, instead of running iptables-restore; can be told to fail.
#[derive(Debug, Default)]
pub struct FakeIptables {
    restores: Recorder<(Option<String>, String)>,
}

impl FakeIptables {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` restores fail (and are not recorded).
    pub fn fail_next(&self, n: usize) {
        self.restores.fail_next(n);
    }

    /// The restores done, as (namespace, input), oldest first.
    pub fn restores(&self) -> Vec<(Option<String>, String)> {
        self.restores.calls()
    }

    /// The restores done since the last call, oldest first.
    pub fn take_restores(&self) -> Vec<(Option<String>, String)> {
        self.restores.take()
    }

    /// The input restored last in `netns` (what its tables hold now), if any.
    pub fn last(&self, netns: Option<&str>) -> Option<String> {
        self.restores.calls().into_iter().rev().find(|(n, _)| n.as_deref() == netns).map(|(_, input)| input)
    }

    /// How many restores were attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.restores.attempts()
    }
}

impl IptablesRunner for FakeIptables {
    fn restore(&self, netns: Option<&str>, input: &str) -> Result<(), IptablesError> {
        let call = (netns.map(str::to_string), input.to_string());
        self.restores.attempt(Some(call)).map_err(|attempt| IptablesError::Injected { attempt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_restores_per_namespace_and_fails_on_demand() {
        let ipt = FakeIptables::new();
        ipt.restore(None, "*mangle\nCOMMIT\n").expect("node");
        ipt.fail_next(1);
        assert_eq!(ipt.restore(Some("pod"), "x"), Err(IptablesError::Injected { attempt: 2 }));
        ipt.restore(Some("pod"), "y").expect("pod");
        assert_eq!(ipt.last(None).as_deref(), Some("*mangle\nCOMMIT\n"));
        assert_eq!(ipt.last(Some("pod")).as_deref(), Some("y"));
        assert_eq!(ipt.last(Some("other")), None);
        assert_eq!(ipt.attempts(), 3);
        assert_eq!(ipt.take_restores().len(), 2);
        assert!(ipt.restores().is_empty());
    }

    #[test]
    fn missing_namespace_fails_with_argv_and_stderr() {
        // `ip netns exec` of a namespace that does not exist fails before iptables-restore runs
        // (or `ip` itself is missing): either way the error names the command.
        let err = RealIptables.restore(Some("emu-no-such-namespace"), "").expect_err("must fail");
        assert!(err.to_string().contains("ip netns exec emu-no-such-namespace iptables-restore"), "{err}");
    }
}
