//! emu-agnhost: the servers of the images emu's catalog builds in for the book and for tests, one
//! small program as Kubernetes' agnhost is (logic/src/images.rs mounts it into their containers):
//!
//! - as `/agnhost` (`registry.k8s.io/e2e-test-images/agnhost`): agnhost's `netexec`,
//!   `serve-hostname` and `pause` subcommands, with their flags, routes and output;
//! - as `/serve_hostname` (`registry.k8s.io/serve_hostname`): serve-hostname alone;
//! - as `/pause` (`registry.k8s.io/pause`): sleep until SIGTERM or SIGINT, as pause.c;
//! - as `node` (`luksa/kubia`, `luksa/kubia-unhealthy`): the book's `node app.js`.
//!
//! The program is told apart by the name it is run under (`argv[0]`), as busybox's applets are.
//! What each answers is decided by pure functions ([`netexec::route`], [`kubia::answer`], …);
//! [`server`] does the sockets, processes and signals.

pub mod clock;
pub mod flags;
pub mod kubia;
pub mod netexec;
pub mod server;

use flags::{flag, Kind, Spec, Values};

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// None: no Content-Type header (an empty body in Go, anything from node).
    pub content_type: Option<&'static str>,
    /// `X-Content-Type-Options: nosniff`, which Go's `http.Error` adds.
    pub nosniff: bool,
    pub location: Option<String>,
    pub body: String,
}

impl Reply {
    /// Text as Go's handlers write it (Go sniffs it as `text/plain; charset=utf-8`).
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, content_type: Some("text/plain; charset=utf-8"), nosniff: false, location: None, body: body.into() }
    }
}

/// serve-hostname's flags.
pub const SERVE_HOSTNAME_FLAGS: &[Spec] = &[
    flag("tcp", Kind::Bool, "false"),
    flag("udp", Kind::Bool, "false"),
    flag("http", Kind::Bool, "true"),
    flag("close", Kind::Bool, "false"),
    flag("port", Kind::Int, "9376"),
];

/// What the program was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Print this to stdout and exit 0 (agnhost without a command, `--help`).
    Usage(String),
    /// Print `Error: …` and a hint to stderr and exit 1 (cobra's way).
    Error(String),
    Netexec(Values),
    ServeHostname(Values),
    /// agnhost's `pause`: `Paused`, then exit 1 on SIGINT, 2 on SIGTERM.
    AgnhostPause,
    /// The pause image's pause.c: no output, then exit 0 on SIGINT or SIGTERM.
    Pause,
    /// `node SCRIPT`.
    Kubia {
        script: String,
    },
}

/// agnhost's commands that this program has: (name, cobra's Short).
const COMMANDS: &[(&str, &str)] = &[
    ("netexec", "Creates HTTP(S), UDP, and (optionally) SCTP servers with various endpoints"),
    ("pause", "Pauses the execution"),
    ("serve-hostname", "Serves the hostname"),
];

/// Cobra's usage of agnhost's root command (`app`), listing the commands above.
pub fn root_usage() -> String {
    let mut s = String::from("Usage:\n  app [command]\n\nAvailable Commands:\n");
    let mut commands: Vec<(&str, &str)> = COMMANDS.to_vec();
    commands.push(("help", "Help about any command"));
    commands.sort();
    let width = commands.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, short) in commands {
        s += &format!("  {name:width$} {short}\n");
    }
    s + "\nFlags:\n  -h, --help      help for app\n      --version   version for app\n\n\
         Use \"app [command] --help\" for more information about a command.\n"
}

fn command_usage(name: &str, specs: &[Spec]) -> String {
    let mut s = format!("Usage:\n  app {name} [flags]\n\nFlags:\n");
    for spec in specs {
        let value = match spec.kind {
            Kind::Bool => String::new(),
            Kind::Int => " int".into(),
            Kind::Text => " string".into(),
        };
        s += &format!("      --{}{value}   (default {:?})\n", spec.name, spec.default);
    }
    s + &format!("  -h, --help   help for {name}\n")
}

/// The mode `argv` asks for (argv[0] is the name the program runs under).
pub fn mode(argv: &[String]) -> Mode {
    let name = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or("");
    let rest = argv.get(1..).unwrap_or_default();
    match name {
        "node" => match rest.first() {
            Some(script) => Mode::Kubia { script: script.clone() },
            None => Mode::Error("emu's node runs a script (node app.js); it has no interactive mode".into()),
        },
        "pause" => Mode::Pause,
        // The older image's Go `flag` program.
        "serve_hostname" => match flags::parse(SERVE_HOSTNAME_FLAGS, rest) {
            Ok(v) => Mode::ServeHostname(v),
            Err(e) => Mode::Error(e),
        },
        _ => agnhost(rest),
    }
}

fn agnhost(args: &[String]) -> Mode {
    let Some(command) = args.first() else { return Mode::Usage(root_usage()) };
    let rest = &args[1..];
    let specs: &[Spec] = match command.as_str() {
        "help" | "-h" | "--help" => return Mode::Usage(root_usage()),
        "netexec" => netexec::FLAGS,
        "serve-hostname" => SERVE_HOSTNAME_FLAGS,
        "pause" => &[],
        other => return Mode::Error(format!("unknown command {other:?} for \"app\"\nRun 'app --help' for usage.")),
    };
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        return Mode::Usage(command_usage(command, specs));
    }
    match (command.as_str(), flags::parse(specs, rest)) {
        (_, Err(e)) => Mode::Error(format!("{e}\n{}", command_usage(command, specs))),
        ("netexec", Ok(v)) => Mode::Netexec(v),
        ("serve-hostname", Ok(v)) => Mode::ServeHostname(v),
        _ => Mode::AgnhostPause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_name_it_runs_under_picks_the_program() {
        assert_eq!(mode(&argv(&["node", "app.js"])), Mode::Kubia { script: "app.js".into() });
        assert_eq!(mode(&argv(&["/usr/local/bin/node", "/app.js"])), Mode::Kubia { script: "/app.js".into() });
        assert_eq!(mode(&argv(&["/pause"])), Mode::Pause);
        let Mode::ServeHostname(v) = mode(&argv(&["/serve_hostname", "-udp", "-http=false"])) else { panic!() };
        assert!(v.bool("udp") && !v.bool("http") && v.int("port") == 9376);
        assert_eq!(mode(&argv(&["/agnhost", "pause"])), Mode::AgnhostPause);
    }

    #[test]
    fn agnhost_commands_and_usage() {
        let Mode::Usage(usage) = mode(&argv(&["/agnhost"])) else { panic!("no command: usage") };
        assert!(usage.starts_with("Usage:\n  app [command]\n\nAvailable Commands:\n  help           Help about any command\n"), "{usage}");
        assert!(usage.contains("\n  netexec        Creates HTTP(S), UDP"), "{usage}");
        let Mode::Netexec(v) = mode(&argv(&["/agnhost", "netexec", "--http-port=8000", "--udp-port=-1"])) else { panic!() };
        assert_eq!((v.int("http-port"), v.int("udp-port")), (8000, -1));
        let Mode::Netexec(v) = mode(&argv(&["/agnhost", "netexec"])) else { panic!() };
        assert_eq!((v.int("http-port"), v.int("udp-port")), (8080, 8081));
        let Mode::ServeHostname(v) = mode(&argv(&["/agnhost", "serve-hostname"])) else { panic!() };
        assert_eq!((v.int("port"), v.bool("http"), v.bool("udp")), (9376, true, false));
        assert_eq!(
            mode(&argv(&["/agnhost", "nope"])),
            Mode::Error("unknown command \"nope\" for \"app\"\nRun 'app --help' for usage.".into())
        );
        let Mode::Error(e) = mode(&argv(&["/agnhost", "netexec", "--port=1"])) else { panic!() };
        assert!(e.starts_with("unknown flag: --port\nUsage:\n  app netexec [flags]"), "{e}");
        assert!(matches!(mode(&argv(&["/agnhost", "netexec", "--help"])), Mode::Usage(_)));
    }
}
