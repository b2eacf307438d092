//! Scripted scenarios (issue 7): `emu test FILE… [--junit OUT.xml] [--retain]` runs every shipped
//! scenarios/test-*.yaml to a pass; a broken expectation fails with what was expected and what
//! was got, and the cluster is removed all the same (also on Ctrl-C); bad steps are refused
//! before any cluster exists.

use emu_tests::{emu, emu_processes, Cluster};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");

/// A scenario file of this test's own.
fn scenario(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emu-scenario-tests-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Nothing of the cluster is left: no runtime directory, no namespace, no daemon.
fn assert_gone(cluster: &str) {
    assert!(!Path::new("/run/emu").join(cluster).exists(), "/run/emu/{cluster} is left");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> =
        String::from_utf8_lossy(&netns.stdout).lines().filter(|l| l.starts_with(&format!("emu-{cluster}-"))).map(str::to_string).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert_eq!(emu_processes(cluster), Vec::<String>::new());
}

/// Processes whose command line contains `needle` (a scenario's own URL).
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("cargo") {
            out.push(format!("{} {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

#[test]
fn every_shipped_scenario_passes() {
    emu_tests::require_root();
    let mut files: Vec<String> = std::fs::read_dir(SCENARIOS)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test-")))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    // Removed however the test ends.
    let report = emu_tests::Scratch(std::env::temp_dir().join(format!("emu-scenario-tests-report-{}", std::process::id())));
    std::fs::create_dir_all(&report.0).unwrap();
    let junit = report.0.join("junit.xml");
    let mut args = vec!["test", "--junit", junit.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let started = Instant::now();
    let r = emu(&args);
    println!("{}{}(all scenarios in {:?})", r.stdout, r.stderr, started.elapsed());
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("{} scenarios: {} passed, 0 failed in ", files.len(), files.len())), "{}", r.stdout);
    assert!(!r.stdout.contains('✗'), "{}", r.stdout);
    // The report shows the loads' counts, as the issue asks of node loss.
    assert!(r.stdout.contains("✓ the load's failures stopped within the detection time ("), "{}", r.stdout);
    // test-kubia-ingress.yaml read the Ingress's ADDRESS, a balancer address, and reached the
    // pods through it, with the Secret's certificate.
    assert!(
        r.stdout.contains("✓ emu get ingresses shows the controller's balancer address as the Ingress's ADDRESS (")
            && r.stdout.contains(" — ${ADDRESS} = \"203.0.113."),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("✓ nginx serves tls-secret's certificate for kubia.example.com once reloaded (curl --cacert"),
        "{}",
        r.stdout
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml") && xml.contains(" failures=\"0\" "), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), files.len());
    // Every cluster is gone.
    for line in r.stdout.lines().filter(|l| l.starts_with("Scenario ")) {
        let cluster = line.split('"').nth(1).unwrap_or_else(|| panic!("{line}"));
        assert_gone(cluster);
    }
}

#[test]
fn a_broken_expectation_fails_shows_expected_and_got_and_leaves_nothing() {
    emu_tests::require_root();
    let file = scenario(
        "broken",
        "# A check that cannot pass\nnodes: 1\nsteps:\n  - background: {name: load, from: outside, url: \"http://198.51.100.2:9/tbroken\", interval: 100ms}\n  - name: say hello\n    outside: {command: echo hello, expect: {stdoutContains: goodbye}}\n  - name: never runs\n    sleep: 1s\n",
    );
    let junit = file.with_extension("xml");
    let r = emu(&["test", "--cluster", "tbroken", "--junit", junit.to_str().unwrap(), file.to_str().unwrap()]);
    println!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with(" ✗ say hello (") && l.ends_with("): expected stdout to contain \"goodbye\", got \"hello\"")),
        "{}",
        r.stdout
    );
    assert!(lines.contains(&" - never runs (not run)"), "{}", r.stdout);
    // The load stops with the scenario and reports (its requests were refused: nothing listens).
    assert!(
        lines.iter().any(|l| l.starts_with(" ✓ stop load load (end of scenario) (")
            && l.contains(" failed (")
            && l.contains("× curl exit 7 (could not connect)")),
        "{}",
        r.stdout
    );
    assert!(lines.iter().any(|l| l.starts_with(" ✓ cluster down (")), "{}", r.stdout);
    assert!(r.stdout.contains("1 scenario: 0 passed, 1 failed ("), "{}", r.stdout);
    assert_gone("tbroken");
    assert_eq!(processes_with("198.51.100.2:9/tbroken"), Vec::<String>::new(), "the load's client is gone");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuites name=\"emu test\" tests=\"6\" failures=\"1\" "), "{xml}");
    assert!(xml.contains("<testcase name=\"say hello\" classname=\"broken\" time=\""), "{xml}");
    assert!(xml.contains("<failure message=\"expected stdout to contain &quot;goodbye&quot;, got &quot;hello&quot;\">"), "{xml}");
    assert!(
        xml.contains("<testcase name=\"never runs\" classname=\"broken\" time=\"0.000\">\n      <skipped message=\"not run: an earlier step failed\"/>"),
        "{xml}"
    );
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn bad_steps_are_refused_before_any_cluster_exists() {
    emu_tests::require_root();
    let file = scenario("badsteps", "nodes: 1\nsteps:\n  - sleep: 1s\n  - wait: {pods: {selector: app=web, ready: two}}\n");
    let r = emu(&["test", "--cluster", "tbadsteps", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("scenario field `steps[1].wait.pods.ready`: expected a whole number (0 or more), got \"two\""),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert_gone("tbadsteps");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn retain_keeps_the_cluster_and_says_how_to_remove_it() {
    emu_tests::require_root();
    let file = scenario("retain", "# Kept\nnodes: 1\nsteps:\n  - outside: {command: echo hello, expect: {stdoutContains: hello}}\n");
    emu(&["down", "--cluster", "tretain"]);
    let c = Cluster { name: "tretain".into() };
    let r = emu(&["test", "--retain", "--cluster", "tretain", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "Kept cluster \"tretain\" (--retain): look with `emu get pods -A -o wide --cluster tretain`, remove it with `sudo emu down --cluster tretain`."
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("cluster down"), "{}", r.stdout);
    assert_eq!(c.emu(&["get", "nodes", "-o", "name"]).ok().stdout, "node/node-1\n");
    // Run again: the kept cluster is not touched, and the run says why it cannot start.
    let r = emu(&["test", "--cluster", "tretain", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("cluster \"tretain\" already exists"), "{}", r.stdout);
    c.emu(&["get", "nodes"]).ok();
    drop(c);
    assert_gone("tretain");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn ctrl_c_removes_the_cluster() {
    emu_tests::require_root();
    let file = scenario("interrupt", "# Long\nnodes: 1\nsteps:\n  - sleep: 45s\n  - sleep: 1s\n");
    emu(&["down", "--cluster", "tintr"]);
    let child = Command::new(emu_tests::emu_path())
        .args(["test", "--cluster", "tintr", file.to_str().unwrap()])
        .env_remove("EMU_CLUSTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Until the cluster is up and the sleep runs: its DNS pods exist once it is.
    while !std::fs::read_dir("/run/emu/tintr/nodes/node-1/pods").is_ok_and(|d| d.count() >= 2) {
        assert!(started.elapsed() < Duration::from_secs(30), "the cluster never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains(" ✗ sleep 45s (") && stdout.contains("): interrupted (Ctrl-C)"), "{stdout}");
    assert!(stdout.contains(" - sleep 1s (not run)") && stdout.contains(" ✓ cluster down ("), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(30), "stopped at once, not after the sleep");
    assert_gone("tintr");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// `emu up scenarios/kubia.yaml`: the ingress add-on is enabled before the manifests, so the
/// book's kubia Ingress is served; its header's commands work as they are written.
#[test]
fn kubia_comes_up_with_its_ingress_served() {
    let c = Cluster::up("tkubiaingr", &[&format!("{SCENARIOS}/kubia.yaml")]);
    assert!(c.emu(&["addons", "list"]).ok().stdout.contains("ingress      enabled"));
    // The Ingress's ADDRESS, once the controller has published it.
    let address = c.wait_for("the Ingress's ADDRESS", Duration::from_secs(20), || {
        let ip = c.emu(&["get", "ingress", "kubia", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).ok().stdout;
        ip.starts_with("203.0.113.").then_some(ip)
    });
    let table = c.emu(&["get", "ingresses"]).ok().stdout;
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with(&format!("kubia   nginx   kubia.example.com   {address}   80 "))),
        "{table}"
    );
    let curl = |scheme: &str, port: u16, extra: &[&str]| {
        let resolve = format!("kubia.example.com:{port}:{address}");
        let url = format!("{scheme}://kubia.example.com");
        let mut args = vec!["outside", "--", "curl", "-s", "-m", "2", "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        c.emu(&args)
    };
    // nginx may still be taking the endpoints in.
    c.wait_for("kubia through the Ingress", Duration::from_secs(20), || {
        curl("http", 80, &[]).stdout.starts_with("You've hit kubia-").then_some(())
    });
    // 5.4.4: the TLS Ingress applied over it, with the Secret `up` made for kubia.example.com.
    let applied = c.emu(&["apply", "-f", &format!("{SCENARIOS}/kubia-ingress-tls.yaml")]).ok().stdout;
    assert_eq!(applied, "ingress.networking.k8s.io/kubia configured\n");
    let cert = c.scratch_dir().join("tls.cert");
    std::fs::create_dir_all(c.scratch_dir()).unwrap();
    let pem = c.emu(&["get", "secret", "tls-secret", "-o", "jsonpath={.data.tls\\.crt}"]).ok().stdout;
    std::fs::write(&cert, base64_decode(&pem)).unwrap();
    let cacert = cert.to_str().unwrap();
    c.wait_for("the Secret's certificate served", Duration::from_secs(20), || {
        curl("https", 443, &["--cacert", cacert]).stdout.starts_with("You've hit kubia-").then_some(())
    });
    let run = curl("https", 443, &["-k"]).ok();
    assert!(run.stdout.starts_with("You've hit kubia-"), "{}", run.stdout);
}

/// `base64 -d`, as the README's command decodes the Secret's certificate.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut child = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn an_unknown_addon_is_refused_before_any_cluster_exists() {
    emu_tests::require_root();
    let file = scenario("badaddon", "nodes: 1\naddons: [ingress, ingres]\nsteps:\n  - sleep: 1s\n");
    let want = "scenario field `addons[1]`: unknown add-on \"ingres\": use one of ingress (`emu addons list` lists them)";
    for verb in ["up", "test"] {
        emu(&["down", "--cluster", "tbadaddon"]);
        let r = emu(&[verb, "--cluster", "tbadaddon", file.to_str().unwrap()]);
        assert_eq!(r.code, 1, "emu {verb}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(want), "emu {verb}: {}", r.stderr);
        assert_eq!(r.stdout, "", "emu {verb} started nothing");
        assert_gone("tbadaddon");
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// scenarios/gateway.yaml: a GatewayClass of emu's, a Gateway with an HTTP listener and an
/// HTTPRoute sending /v2 to kubia-v2 and splitting the rest 80/20, checked by its own steps
/// through the Gateway's address.
#[test]
fn the_gateway_scenario_passes() {
    emu_tests::require_root();
    emu(&["down", "--cluster", "tgwscen"]);
    let r = emu(&["test", "--cluster", "tgwscen", &format!("{SCENARIOS}/gateway.yaml")]);
    println!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" — ${ADDRESS} = \"203.0.113."), "{}", r.stdout);
    assert!(
        r.stdout.contains("✓ every other path is split 80/20 between kubia-v1 and kubia-v2 (of 200 requests, 20 to 60 to v2) ("),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 scenario: 1 passed, 0 failed in "), "{}", r.stdout);
    assert_gone("tgwscen");
}
