//! The real kubectl reads pods' logs and runs commands in them over the REST API (issue 17):
//! `pods/log` relayed by the controller from the agent of the pod's node, with kube-apiserver's
//! options and errors, and `pods/exec` over WebSocket (`v5.channel.k8s.io`). What kubectl prints
//! must be what `emu logs` and `emu exec` print.

mod kubectl_support;

use emu_tests::terminal::Terminal;
use kubectl_support::{kubectl, Streaming};
use std::time::Duration;

/// A pod of two containers, each writing a numbered line every 200 ms.
const TWO: &str = concat!(
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: two\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n",
    "  - name: a\n    image: busybox\n",
    "    command: [\"sh\", \"-c\", \"i=0; while true; do echo a $i; i=$((i+1)); sleep 0.2; done\"]\n",
    "  - name: b\n    image: busybox\n",
    "    command: [\"sh\", \"-c\", \"i=0; while true; do echo b $i; i=$((i+1)); sleep 0.2; done\"]\n",
);

/// A pod serving nginx's welcome page on port 80.
const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: nginx\n    image: nginx\n    ports:\n    - containerPort: 80\n";

/// The number of a container's line `a 12`.
fn number(line: &str) -> u64 {
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a numbered line: {line:?}"))
}

#[test]
fn kubectl_reads_logs_and_runs_commands() {
    let (c, dir) = kubectl_support::cluster("tkstream");
    let d = dir.0.as_path();
    let limit = Duration::from_secs(30);
    c.apply("two.yaml", TWO).ok();
    c.ready_pod("two");
    std::thread::sleep(Duration::from_secs(1));

    // -c, --tail: the container's last lines, as emu logs prints them.
    let tail = kubectl(d, limit, &["logs", "two", "-c", "b", "--tail=3"]).ok();
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", tail.stdout);
    assert!(lines.iter().all(|l| l.starts_with("b ")), "{}", tail.stdout);
    let all = kubectl(d, limit, &["logs", "two", "-c", "a"]).ok();
    let emu = c.emu(&["logs", "two", "-c", "a"]).ok();
    let (k, e): (Vec<&str>, Vec<&str>) = (all.stdout.lines().collect(), emu.stdout.lines().collect());
    assert!(k.len() >= 3 && e.starts_with(&k[..k.len() - 1]), "kubectl:\n{}\nemu:\n{}", all.stdout, emu.stdout);
    // --limit-bytes cuts the answer.
    assert_eq!(kubectl(d, limit, &["logs", "two", "-c", "a", "--limit-bytes=5"]).ok().stdout, "a 0\na");
    // No container named in a pod of two: kube-apiserver's 400 (kubectl itself picks the first).
    let raw = kubectl(d, limit, &["get", "--raw", "/api/v1/namespaces/default/pods/two/log"]);
    assert_ne!(raw.code, 0);
    assert!(raw.stderr.contains("a container name must be specified for pod two, choose one of: [a b]"), "{}", raw.stderr);
    let defaulted = kubectl(d, limit, &["logs", "two", "--tail=1"]).ok();
    assert!(
        defaulted.stdout.starts_with("a ") && defaulted.stderr.contains("Defaulted container \"a\" out of: a, b"),
        "{}{}",
        defaulted.stdout,
        defaulted.stderr
    );
    let missing = kubectl(d, limit, &["logs", "nope"]);
    assert!(missing.code != 0 && missing.stderr.contains("pods \"nope\" not found"), "{}", missing.stderr);

    // --timestamps: each line with the time it was written (RFC 3339, nanoseconds, UTC);
    // --since and --since-time: only the newer lines. emu logs prints the same way.
    std::thread::sleep(Duration::from_secs(2));
    let now = emu_api::time::now();
    let stamped = kubectl(d, limit, &["logs", "two", "-c", "a", "--timestamps", "--tail=3"]).ok();
    let mut last = 0i64;
    for line in stamped.stdout.lines() {
        let (time, text) = line.split_once(' ').unwrap();
        let (seconds, _) = emu_api::time::parse_rfc3339_nanos(time).unwrap_or_else(|| panic!("{line}"));
        assert!(time.ends_with('Z') && (now - 5..=now + 1).contains(&seconds) && seconds >= last, "{line}");
        assert!(text.starts_with("a "), "{line}");
        last = seconds;
    }
    assert_eq!(stamped.stdout.lines().count(), 3, "{}", stamped.stdout);
    let all = kubectl(d, limit, &["logs", "two", "-c", "a"]).ok().stdout;
    let recent = kubectl(d, limit, &["logs", "two", "-c", "a", "--since=1s"]).ok().stdout;
    let (all_n, recent_n) = (all.lines().count(), recent.lines().count());
    assert!((2..=10).contains(&recent_n) && recent_n < all_n, "{recent_n} of {all_n} lines in the last second:\n{recent}");
    assert!(number(recent.lines().next().unwrap()) > number(all.lines().next().unwrap()));
    let future = kubectl(d, limit, &["logs", "two", "-c", "a", "--since-time=2099-01-01T00:00:00Z"]).ok();
    assert_eq!(future.stdout, "");
    let emu_stamped = c.emu(&["logs", "two", "-c", "a", "--timestamps", "--tail", "1"]).ok().stdout;
    assert!(emu_api::time::parse_rfc3339_nanos(emu_stamped.split(' ').next().unwrap()).is_some(), "{emu_stamped}");

    // -f: lines written after it started come too, until it is stopped.
    let mut follow = Streaming::start(d, &["logs", "-f", "two", "-c", "a", "--tail=1"]);
    let first = number(&follow.expect("a line", limit, |l| l.starts_with("a ")));
    follow.expect("a later line", limit, |l| l.starts_with("a ") && number(l) >= first + 5);
    drop(follow);

    // exec over WebSocket: what emu exec prints, exit codes, stdin.
    let k = kubectl(d, limit, &["exec", "two", "-c", "a", "--", "printenv"]).ok();
    let e = c.emu(&["exec", "two", "-c", "a", "--", "printenv"]).ok();
    let sorted = |t: &str| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&k.stdout), sorted(&e.stdout));
    assert!(k.stdout.contains("HOSTNAME=two"), "{}", k.stdout);
    let three = kubectl(d, limit, &["exec", "two", "-c", "b", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!((three.code, three.stdout.as_str()), (3, "out\n"), "{}", three.stderr);
    assert!(three.stderr.contains("err\n") && three.stderr.contains("command terminated with exit code 3"), "{}", three.stderr);
    let cat = kubectl_support::kubectl_with_input(d, limit, &["exec", "-i", "two", "-c", "a", "--", "cat"], b"hi\nthere\n");
    assert_eq!((cat.code, cat.stdout.as_str()), (0, "hi\nthere\n"), "{}", cat.stderr);
    // -it on a terminal of the test's own: a shell's prompt, its answer to a line typed (after
    // the terminal's echo of it), its exit code.
    let mut term = Terminal::start(kubectl_support::kubectl_cmd(d, &["exec", "-it", "two", "-c", "a", "--", "sh"]), 24, 80);
    term.expect("# ", limit);
    term.type_keys("echo $((6*7)) $TERM\r");
    term.expect("\r\n42 xterm\r\n", limit);
    term.type_keys("exit 5\r");
    assert_eq!(term.wait(limit), 5, "{}", term.shown());
    // port-forward (SPDY inside WebSocket): a local port to nginx in a pod, twice; a port
    // nothing listens on is kubectl's error line.
    c.apply("web.yaml", WEB).ok();
    c.ready_pod("web");
    let mut forward = Streaming::start(d, &["port-forward", "pod/web", ":80"]);
    let line = forward.expect("the local port", limit, |l| l.starts_with("Forwarding from 127.0.0.1:"));
    let port: u16 = line["Forwarding from 127.0.0.1:".len()..].split(' ').next().unwrap().parse().unwrap();
    for _ in 0..2 {
        let page = kubectl_support::http_get(port, "web");
        assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("Welcome to nginx!"), "{page}");
    }
    drop(forward);
    let mut refused = Streaming::start_with_stderr(d, &["port-forward", "pod/web", ":81"]);
    let line = refused.expect("the local port", limit, |l| l.starts_with("Forwarding from 127.0.0.1:"));
    let port: u16 = line["Forwarding from 127.0.0.1:".len()..].split(' ').next().unwrap().parse().unwrap();
    let _ = kubectl_support::http_get(port, "web");
    refused.expect("the error", limit, |l| l.contains("an error occurred forwarding") && l.contains("Connection refused"));
    drop(refused);

    // cp (tar through exec): a file into the container and back out.
    let local = d.join("greeting.txt");
    std::fs::write(&local, "hello from the host\n").unwrap();
    let into = kubectl(d, limit, &["cp", local.to_str().unwrap(), "two:/tmp/greeting.txt", "-c", "a"]);
    assert_eq!(into.code, 0, "{}", into.stderr);
    let inside = kubectl(d, limit, &["exec", "two", "-c", "a", "--", "cat", "/tmp/greeting.txt"]).ok();
    assert_eq!(inside.stdout, "hello from the host\n");
    let back = d.join("back.txt");
    let out = kubectl(d, limit, &["cp", "two:/tmp/greeting.txt", back.to_str().unwrap(), "-c", "a"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello from the host\n");

    // The proxy subresources: the pod's page, and the same through a Service, with get --raw
    // and through kubectl proxy on a local port.
    let page = kubectl(d, limit, &["get", "--raw", "/api/v1/namespaces/default/pods/web/proxy/"]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    kubectl(d, limit, &["label", "pod", "web", "app=web"]).ok();
    kubectl(d, limit, &["expose", "pod", "web", "--port=8080", "--target-port=80"]).ok();
    c.wait_for("the Service's endpoint", limit, || c.emu(&["get", "ep", "web"]).ok().stdout.contains(":80").then_some(()));
    let page = kubectl(d, limit, &["get", "--raw", "/api/v1/namespaces/default/services/web:8080/proxy/"]).ok().stdout;
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let missing = kubectl(d, limit, &["get", "--raw", "/api/v1/namespaces/default/services/nope/proxy/"]);
    assert!(missing.code != 0 && missing.stderr.contains("services \"nope\" not found"), "{}", missing.stderr);
    let mut proxy = Streaming::start(d, &["proxy", "--port=0"]);
    let line = proxy.expect("the local port", limit, |l| l.starts_with("Starting to serve on 127.0.0.1:"));
    let port: u16 = line["Starting to serve on 127.0.0.1:".len()..].trim().parse().unwrap();
    let page = kubectl_support::http_get_path(port, "/api/v1/namespaces/default/services/web/proxy/");
    assert!(page.starts_with("HTTP/1.0 200 OK") && page.contains("Welcome to nginx!"), "{page}");
    drop(proxy);

    // run -i with stdin from a pipe (stdinOnce): cat gets the input and its end, the pod is
    // deleted after, as kubectl run -i --rm does it.
    let piped = kubectl_support::kubectl_with_input(
        d,
        limit,
        &["run", "catter", "-i", "--rm", "--restart=Never", "--image=busybox", "--", "cat"],
        b"piped\n",
    );
    assert_eq!(piped.code, 0, "{}{}", piped.stdout, piped.stderr);
    assert!(piped.stdout.starts_with("piped\n") && piped.stdout.contains("pod \"catter\" deleted"), "{}", piped.stdout);

    let none = kubectl(d, limit, &["exec", "two", "-c", "nope", "--", "true"]);
    assert!(none.code != 0 && none.stderr.contains("container nope is not valid for pod two"), "{}", none.stderr);
}

/// `kubectl run -i --tty` as the tutorial types it: a pod whose shell has a terminal, kubectl
/// attached to that shell (the container's own process, not a second one), and `kubectl attach`
/// back to it after the session ended and the container restarted.
#[test]
fn kubectl_run_attaches_a_terminal_to_the_containers_shell() {
    let (_c, dir) = kubectl_support::cluster("kattach");
    let (d, limit) = (&dir.0, Duration::from_secs(30));
    let mut term =
        Terminal::start(kubectl_support::kubectl_cmd(d, &["run", "curl", "--image=radial/busyboxplus:curl", "-i", "--tty"]), 24, 80);
    term.expect("If you don't see a command prompt, try pressing enter.", limit);
    term.type_keys("\r");
    term.expect("# ", limit);
    // The shell is the container's pid 1, on a terminal of the attached window's size.
    term.type_keys("echo pid $$; stty size\r");
    term.expect("pid 1\r\n24 80\r\n", limit);
    term.type_keys("exit\r");
    term.expect("Session ended, resume using 'kubectl attach curl -c curl -i -t' command when the pod is running", limit);
    assert_eq!(term.wait(limit), 0, "{}", term.shown());

    // Its exit was the container's: restarted (restartPolicy Always), and attachable again.
    let deadline = std::time::Instant::now() + limit;
    loop {
        let restarts = kubectl(d, limit, &["get", "pod", "curl", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]).ok();
        let running = kubectl(d, limit, &["get", "pod", "curl", "-o", "jsonpath={.status.phase}"]).ok();
        if restarts.stdout == "1" && running.stdout == "Running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "restartCount {:?}, phase {:?}", restarts.stdout, running.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut term = Terminal::start(kubectl_support::kubectl_cmd(d, &["attach", "curl", "-c", "curl", "-i", "-t"]), 30, 100);
    term.expect("If you don't see a command prompt, try pressing enter.", limit);
    term.type_keys("\r");
    term.expect("# ", limit);
    term.type_keys("stty size; exit 3\r");
    term.expect("30 100\r\n", limit);
    assert_eq!(term.wait(limit), 0, "{}", term.shown());
    // What the terminal showed is the container's log, as the kubelet keeps it.
    let logs = kubectl(d, limit, &["logs", "curl"]).ok();
    assert!(logs.stdout.contains("30 100\r\n"), "{:?}", logs.stdout);
}
