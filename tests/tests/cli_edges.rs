//! Edges of the CLI a clumsy user finds (issue 19): an empty manifest is refused as kubectl
//! refuses it, and `emu down` during `emu up` gives `up` one clear message and leaves nothing.

use emu_tests::{emu, emu_path, emu_processes, suite_kubeconfig, Cluster};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

/// What of cluster `name` is still on the machine: its runtime directory, network namespaces,
/// processes, cgroup and kubectl context.
fn leftovers(name: &str) -> Vec<String> {
    let mut left = vec![];
    let root = format!("/run/emu/{name}");
    if Path::new(&root).exists() {
        left.push(root);
    }
    let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    left.extend(
        String::from_utf8_lossy(&netns.stdout).lines().filter(|l| l.starts_with(&format!("emu-{name}-"))).map(|l| format!("namespace {l}")),
    );
    left.extend(emu_processes(name).into_iter().map(|p| format!("process {p}")));
    if let Ok(root) = emu_host::cgroup::cluster_dir(name) {
        if root.exists() {
            left.push(format!("cgroup {}", root.display()));
        }
    }
    let kubeconfig = std::fs::read_to_string(suite_kubeconfig()).unwrap_or_default();
    left.extend(kubeconfig.lines().filter(|l| l.trim_end().ends_with(&format!(" emu-{name}"))).map(|l| format!("kubeconfig: {l}")));
    left
}

#[test]
fn an_empty_manifest_is_refused_as_kubectl_refuses_it() {
    let c = Cluster::up("tedgeempty", &["--nodes", "1"]);
    let dir = c.scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let separator = dir.join("separator.yaml");
    std::fs::write(&separator, "# nothing here\n---\n").unwrap();
    let before = c.emu(&["get", "cm", "-A", "-o", "name"]).ok().stdout;
    // A file with `---` only, an empty file, a closed stdin (`output()` gives the child none).
    for source in [separator.to_str().unwrap(), "/dev/null", "-"] {
        for verb in ["apply", "create"] {
            let r = c.emu(&[verb, "-f", source]);
            assert_eq!(
                (r.code, r.stdout.as_str(), r.stderr.as_str()),
                (1, "", format!("error: no objects passed to {verb}\n").as_str()),
                "emu {verb} -f {source}"
            );
        }
        // kubectl's delete finds nothing to delete, says so on stdout, and succeeds.
        let r = c.emu(&["delete", "-f", source]);
        assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "No resources found\n", ""), "emu delete -f {source}");
    }
    assert_eq!(c.emu(&["get", "cm", "-A", "-o", "name"]).ok().stdout, before, "nothing changed");
}

#[test]
fn down_during_up_gives_up_one_message_and_leaves_nothing() {
    emu_tests::require_root();
    const NAME: &str = "tedgedownup";
    // Removes the cluster however the test ends.
    let _guard = Cluster { name: NAME.to_string() };
    emu(&["down", "--cluster", NAME]);
    let deleted = format!("error: cluster \"{NAME}\" was deleted while it was being created\n");
    let mut outcomes = vec![];
    // From before `up` has claimed the name to after it finished (about 0.4 s here).
    for delay in [0, 10, 20, 50, 100, 200, 400, 1500] {
        let start = Instant::now();
        let up = Command::new(emu_path())
            .args(["up", SCENARIO, "--cluster", NAME])
            .env_remove("EMU_CLUSTER")
            .env("KUBECONFIG", suite_kubeconfig())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting emu up");
        std::thread::sleep(Duration::from_millis(delay));
        let down = emu(&["down", "--cluster", NAME]);
        let up = up.wait_with_output().expect("emu up");
        let took = start.elapsed();
        let (up_code, up_stdout, up_stderr) =
            (up.status.code().unwrap_or(-1), String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr));
        let what = format!(
            "delay {delay} ms, {took:?}\nup ({up_code}):\n{up_stdout}{up_stderr}\ndown ({}):\n{}{}",
            down.code, down.stdout, down.stderr
        );
        assert_eq!(down.code, 0, "{what}");
        let outcome = if up_code == 0 {
            // `up` finished first (or `down` found nothing yet): a plain down removes it.
            let again = emu(&["down", "--cluster", NAME]);
            assert_eq!(again.code, 0, "{what}\nsecond down:\n{}{}", again.stdout, again.stderr);
            "up, then down"
        } else {
            assert_eq!((up_code, up_stderr.as_ref()), (1, deleted.as_str()), "{what}");
            // At once: no wait for a controller that is gone.
            assert!(took < Duration::from_secs(5), "{what}");
            "deleted while created"
        };
        let left = leftovers(NAME);
        assert!(left.is_empty(), "{what}\nleft behind: {left:#?}");
        println!("delay {delay:>4} ms: {outcome} ({} ms)", took.as_millis());
        outcomes.push(outcome);
    }
    // Right after `up` started, `down` lands in the middle of it.
    assert!(outcomes.contains(&"deleted while created"), "{outcomes:?}");
}

#[test]
fn a_pod_whose_shim_died_is_restarted_with_kubelets_event() {
    let c = Cluster::up("tedgeshim", &["--nodes", "1"]);
    c.apply(
        "box.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: box}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n",
    )
    .ok();
    let pod = c.ready_pod("box");
    let shim_pid = || {
        let file = Path::new("/run/emu")
            .join(&c.name)
            .join("nodes")
            .join(pod["spec"]["nodeName"].as_str().expect("scheduled"))
            .join("pods")
            .join(pod["metadata"]["uid"].as_str().expect("uid"))
            .join("shim.pid");
        std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse::<i32>().ok())
    };
    let killed = shim_pid().expect("the pod's shim");
    emu_tests::sigkill(killed);
    // The agent makes the sandbox again, and says so as kubelet does.
    c.wait_for("a new shim", Duration::from_secs(20), || shim_pid().filter(|p| *p != killed && Path::new(&format!("/proc/{p}")).exists()));
    c.ready_pod("box");
    let message = "Pod sandbox changed, it will be killed and re-created.";
    let events = c.wait_for("a SandboxChanged event", Duration::from_secs(10), || {
        let out = c.emu(&["get", "events"]).stdout;
        out.contains("SandboxChanged").then_some(out)
    });
    assert!(
        events.lines().any(|l| l.contains("Normal") && l.contains("SandboxChanged") && l.contains("pod/box") && l.contains(message)),
        "{events}"
    );
    let described = c.emu(&["describe", "pod", "box"]).ok().stdout;
    assert!(described.lines().any(|l| l.contains("SandboxChanged") && l.contains("kubelet") && l.contains(message)), "{described}");
}
