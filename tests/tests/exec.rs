//! `emu exec`, `emu logs -f` and `emu ssh` as streams through the controller to the node's agent
//! (issue 16, item 3): exit codes pass through, stdin only with -i (as kubectl), a terminal with
//! -it on one (raw, sized as the caller's window), and a followed log ends with its pod.

use emu_tests::terminal::Terminal;
use emu_tests::{emu_path, Cluster};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `emu ARGS --cluster texec` with `input` on its stdin, killed after a minute: (exit code,
/// stdout, stderr).
fn with_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "60"])
        .arg(emu_path())
        .args(["--cluster", "texec"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("EMU_CLUSTER")
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn exec_streams_stdio_terminals_and_exit_codes_through_the_agent() {
    let c = Cluster::up("texec", &["--nodes", "1"]);
    c.apply(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: box}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    \
         command: [sh, -c, 'echo first; echo second; echo third; sleep 3600']\n",
    )
    .ok();
    c.ready_pod("box");

    // Exit codes, and nsexec's own for a command that is not there.
    assert_eq!(c.emu(&["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]).code, 7);
    let r = c.emu(&["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
    let r = c.emu(&["exec", "box", "--", "no-such-program"]);
    assert_eq!(r.code, 127);
    assert!(r.stderr.contains("\"no-such-program\": executable file not found in $PATH"), "{}", r.stderr);

    // Stdin only with -i; -t without a terminal is refused as kubectl refuses it.
    assert_eq!(with_stdin(&["exec", "box", "--", "cat"], "hello\n"), (0, String::new(), String::new()));
    assert_eq!(with_stdin(&["exec", "-i", "box", "--", "cat"], "hello\n").1, "hello\n");
    let (code, out, err) = with_stdin(&["exec", "-it", "box", "--", "sh", "-c", "test -t 0 || echo no terminal"], "");
    assert_eq!((code, out.as_str()), (0, "no terminal\n"));
    assert_eq!(err, "Unable to use a TTY - input is not a terminal or the right kind of file\n");
    // A large output arrives whole.
    let r = c.emu(&["exec", "box", "--", "sh", "-c", "seq 1 200000"]).ok();
    assert_eq!(r.stdout.lines().count(), 200000);
    assert_eq!(r.stdout.lines().last(), Some("200000"));

    // On a terminal: the command gets one of the window's size, and a shell is interactive.
    let limit = Duration::from_secs(20);
    let emu = |args: &[&str]| {
        let mut cmd = Command::new(emu_path());
        cmd.args(["--cluster", "texec"]).args(args).env_remove("EMU_CLUSTER");
        cmd
    };
    let mut term = Terminal::start(emu(&["exec", "-it", "box", "--", "sh", "-c", "test -t 0 && echo terminal; stty size; exit 5"]), 30, 90);
    assert_eq!(term.wait(limit), 5, "{}", term.shown());
    assert!(term.shown().contains("terminal\r\n30 90\r\n"), "{}", term.shown());
    let mut term = Terminal::start(emu(&["exec", "-it", "box", "--", "sh"]), 24, 80);
    term.expect("# ", limit);
    term.type_keys("echo hello-$((1+2))\r");
    term.expect("\r\nhello-3\r\n", limit);
    term.type_keys("exit 3\r");
    assert_eq!(term.wait(limit), 3, "{}", term.shown());
    let mut term = Terminal::start(emu(&["ssh", "node-1"]), 24, 80);
    term.expect("# ", limit);
    term.type_keys("echo on-$EMU_NODE\r");
    term.expect("on-node-1\r\n", limit);
    term.type_keys("exit 4\r");
    assert_eq!(term.wait(limit), 4, "{}", term.shown());
    // emu run -it attaches to the container's own shell (pid 1), as kubectl run does; after
    // the session ended the container restarted, and emu attach reaches its new shell.
    let mut term = Terminal::start(emu(&["run", "shell", "--image=busybox", "-i", "-t"]), 24, 80);
    term.expect("If you don't see a command prompt, try pressing enter.", limit);
    term.type_keys("\r");
    term.expect("# ", limit);
    term.type_keys("echo pid $$\r");
    term.expect("pid 1\r\n", limit);
    term.type_keys("exit\r");
    term.expect("Session ended, resume using 'emu attach shell -c shell -i -t' command when the pod is running", limit);
    assert_eq!(term.wait(limit), 0, "{}", term.shown());
    c.wait_for("the shell's restart", limit, || {
        let p: serde_json::Value = serde_json::from_str(&c.emu(&["get", "pod", "shell", "-o", "json"]).ok().stdout).unwrap();
        (p["status"]["containerStatuses"][0]["restartCount"] == 1 && p["status"]["phase"] == "Running").then_some(())
    });
    let mut term = Terminal::start(emu(&["attach", "shell", "-i", "-t"]), 24, 80);
    term.expect("If you don't see a command prompt, try pressing enter.", limit);
    term.type_keys("\r");
    term.expect("# ", limit);
    term.type_keys("exit\r");
    assert_eq!(term.wait(limit), 0, "{}", term.shown());
    // Without a terminal: stdin to the container's process, its output from its log, and with
    // a policy that does not restart it, its exit code.
    let (code, out, _) = with_stdin(
        &["run", "reader", "--image=busybox", "-i", "--restart=Never", "--command", "--", "sh", "-c", "read x; echo got $x; exit 4"],
        "hi\n",
    );
    assert_eq!((code, out.as_str()), (4, "got hi\n"));
    // stdinOnce (emu run -i sets it, as kubectl run -i): the end of the caller's input is the end
    // of the container's, so cat ends.
    let (code, out, err) =
        with_stdin(&["run", "catter", "--image=busybox", "-i", "--restart=Never", "--command", "--", "cat"], "one\ntwo\n");
    assert_eq!((code, out.as_str()), (0, "one\ntwo\n"), "{err}");
    // Without a terminal, ssh passes stdin on.
    assert_eq!(with_stdin(&["ssh", "node-1", "--", "cat"], "piped\n").1, "piped\n");

    // Logs: the last lines, and followed until the pod is gone.
    assert_eq!(c.emu(&["logs", "box", "--tail", "2"]).ok().stdout, "second\nthird\n");
    let mut follow = Command::new(emu_path())
        .args(["logs", "-f", "box", "--cluster", "texec"])
        .stdout(Stdio::piped())
        .env_remove("EMU_CLUSTER")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.emu(&["delete", "pod", "box"]).ok();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = follow.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = follow.kill();
            panic!("emu logs -f outlived its pod");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut text).unwrap();
    assert_eq!(text, "first\nsecond\nthird\n");
}
