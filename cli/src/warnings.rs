//! The API server's warnings about a write (Pod Security's `would violate PodSecurity …`),
//! printed as kubectl prints them: client-go's warning writer as kubectl sets it up, each text
//! once per command, `Warning: TEXT` on stderr as the answer arrives (before the command's own
//! line for the object), `Warning:` in bold yellow when stderr is a terminal that takes colours.

use std::collections::HashSet;
use std::ffi::OsString;

/// What has been printed by this command, and whether in colour.
pub struct WarningWriter {
    written: HashSet<String>,
    color: bool,
}

const YELLOW: &str = "\u{1b}[33;1m";
const RESET: &str = "\u{1b}[0m";

impl WarningWriter {
    /// The writer kubectl makes for its stderr.
    pub fn stderr() -> WarningWriter {
        use std::io::IsTerminal;
        WarningWriter::new(allows_color(std::io::stderr().is_terminal(), |name| std::env::var_os(name)))
    }

    fn new(color: bool) -> WarningWriter {
        WarningWriter { written: HashSet::new(), color }
    }

    /// The lines to print for `warnings`: the ones not printed before, empty ones skipped.
    pub fn lines(&mut self, warnings: &[String]) -> Vec<String> {
        let mut lines = Vec::new();
        for text in warnings.iter().filter(|t| !t.is_empty()) {
            if self.written.insert(text.clone()) {
                lines.push(match self.color {
                    true => format!("{YELLOW}Warning:{RESET} {text}"),
                    false => format!("Warning: {text}"),
                });
            }
        }
        lines
    }

    /// Prints [`WarningWriter::lines`] on stderr.
    pub fn print(&mut self, warnings: &[String]) {
        for line in self.lines(warnings) {
            eprintln!("{line}");
        }
    }
}

/// kubectl's `AllowsColorOutput`: a terminal, `TERM` other than `dumb`, and no `NO_COLOR`.
fn allows_color(terminal: bool, env: impl Fn(&str) -> Option<OsString>) -> bool {
    terminal && env("TERM").is_none_or(|t| t != "dumb") && env("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_warning_is_printed_once_as_kubectl_prints_it() {
        let mut w = WarningWriter::new(false);
        let would = "would violate PodSecurity \"restricted:latest\": seccompProfile";
        assert_eq!(w.lines(&texts(&[would, "", would])), [format!("Warning: {would}")]);
        // Once per command: a second object's same warning is not printed again.
        assert!(w.lines(&texts(&[would])).is_empty());
        assert_eq!(w.lines(&texts(&["other"])), ["Warning: other"]);
        let mut colored = WarningWriter::new(true);
        assert_eq!(colored.lines(&texts(&["x"])), ["\u{1b}[33;1mWarning:\u{1b}[0m x"]);
    }

    #[test]
    fn colour_only_on_a_terminal_that_takes_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        };
        assert!(allows_color(true, env(&[("TERM", "xterm")])));
        assert!(allows_color(true, env(&[])));
        assert!(!allows_color(false, env(&[("TERM", "xterm")])));
        assert!(!allows_color(true, env(&[("TERM", "dumb")])));
        assert!(!allows_color(true, env(&[("NO_COLOR", "")])));
    }
}
