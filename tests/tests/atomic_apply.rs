//! An apply is all or nothing, also across a crash (issue 19): the controller killed while
//! `emu apply -f` of 3,000 ConfigMaps runs leaves either all of them or none, whenever it dies.

use emu_tests::{daemon_pid, Cluster};
use std::process::{Command, Stdio};
use std::time::Duration;

const OBJECTS: usize = 3_000;

/// A List of `OBJECTS` ConfigMaps named `PREFIX-N`.
fn config_maps(prefix: &str) -> String {
    let items: Vec<serde_json::Value> = (0..OBJECTS)
        .map(|i| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("{prefix}-{i}")},
                "data": {"k": "v".repeat(100)}})
        })
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[test]
fn a_controller_killed_mid_apply_leaves_all_or_none() {
    emu_tests::require_root();
    let c = Cluster::up("tatomic", &["--nodes", "1"]);
    std::fs::create_dir_all(c.scratch_dir()).unwrap();
    let mut outcomes = Vec::new();
    for (round, delay_ms) in [20u64, 80, 150, 250, 400, 700].into_iter().enumerate() {
        let prefix = format!("round{round}");
        let file = c.scratch_dir().join(format!("{prefix}.json"));
        std::fs::write(&file, config_maps(&prefix)).unwrap();
        let apply = Command::new(emu_tests::emu_path())
            .args(["apply", "-f", file.to_str().unwrap(), "--cluster", &c.name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let controller = daemon_pid(&c.name, "controller.pid");
        // SAFETY: kill only sends a signal, to the controller this test's cluster started.
        assert_eq!(unsafe { libc::kill(controller, libc::SIGKILL) }, 0);
        let applied = apply.wait_with_output().unwrap();
        c.emu(&["restart", "controller"]).ok();
        let listed = c.emu(&["get", "configmaps", "-o", "name"]).ok().stdout;
        let count = listed.lines().filter(|l| l.starts_with(&format!("configmap/{prefix}-"))).count();
        let stderr = String::from_utf8_lossy(&applied.stderr).into_owned();
        println!("killed after {delay_ms} ms: apply exited {:?}, {count} of {OBJECTS} stored; {}", applied.status.code(), stderr.trim());
        assert!(count == 0 || count == OBJECTS, "killed after {delay_ms} ms: {count} of {OBJECTS} ConfigMaps stored");
        if applied.status.success() {
            assert_eq!(count, OBJECTS, "the apply said it succeeded");
        } else {
            // Killed before the apply reached it, or during: the client says which.
            assert!(
                stderr.contains("cannot reach the controller") || stderr.contains("all of them or none"),
                "the client is told what a broken apply means: {stderr}"
            );
        }
        outcomes.push(count);
    }
    // The kills landed before, during and after the writes: at least one round saw none.
    assert!(outcomes.contains(&0), "{outcomes:?}");
}
