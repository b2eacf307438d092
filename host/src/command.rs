//! Running a program with a script on its stdin, for the runners of this crate (`nft -f -`,
//! `iptables-restore`).

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// At most this much of a program's stderr goes into an error (a broken 100k-line script can
/// make nft print an error per line).
pub(crate) const MAX_STDERR: usize = 4000;

/// Runs `words` (the program and its arguments) with `stdin` written to it, or none; returns the
/// command line as one string (for errors) and what the program did, or why it did not start.
pub(crate) fn run(words: &[&str], stdin: Option<&str>) -> (String, std::io::Result<Output>) {
    let argv = words.join(" ");
    let Some((program, args)) = words.split_first() else {
        return (argv, Err(std::io::Error::other("empty command")));
    };
    let child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let output = child.and_then(|mut child| {
        // Write from another thread: the program could fill its output pipes before reading
        // everything.
        std::thread::scope(|s| {
            if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
                s.spawn(move || {
                    // A write error means the program exited early; its status and stderr tell why.
                    let _ = pipe.write_all(script.as_bytes());
                });
            }
            child.wait_with_output()
        })
    });
    (argv, output)
}

/// `s` cut to at most `max` bytes (on a character boundary), saying how much was left out.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stderr_is_truncated() {
        let s = "é".repeat(5000);
        let t = truncate(&s, MAX_STDERR);
        assert!(t.len() < MAX_STDERR + 40, "{}", t.len());
        assert!(t.ends_with("more bytes)"));
    }

    #[test]
    fn stdin_arrives_and_argv_is_quoted_for_errors() {
        let (argv, out) = run(&["sh", "-c", "cat"], Some("hello"));
        assert_eq!(argv, "sh -c cat");
        assert_eq!(out.expect("runs").stdout, b"hello");
        let (_, out) = run(&[], None);
        assert!(out.is_err());
    }
}
