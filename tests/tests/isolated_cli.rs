//! The CLI needs nothing of a cluster's machine but the controller's socket (issue 16, item 3):
//! every host effect goes through the controller to the agent (or provider) that owns it. Shown
//! by running `emu` in a mount and network namespace of its own, where `/run/emu`, `/run/netns`
//! and the cgroups are hidden under empty tmpfs mounts and the network has only loopback, with
//! the socket bind-mounted elsewhere and named by `--server`. And `emu` links no node-agent code.

use emu_tests::{emu_path, pod_ip, Cluster};
use std::path::PathBuf;
use std::process::Command;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A directory of the test's own under /tmp, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_cli_works_with_only_the_controllers_socket() {
    let c = Cluster::up("tisolated", &["--nodes", "2"]);
    c.apply(
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  nodeName: node-2\n  containers: [{name: nginx, image: nginx}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: talker}\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: busybox\n    \
         command: [sh, -c, 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done']\n",
    )
    .ok();
    let web_ip = pod_ip(&c.ready_pod("web"));
    c.ready_pod("talker");

    let dir = TempDir(std::env::temp_dir().join(format!("emu-isolated-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    // The socket's new place: a file to bind-mount it onto.
    std::fs::write(dir.0.join("api.sock"), "").unwrap();
    let script = r#"
        set -euo pipefail
        # Only the controller's socket, at a place of its own; the rest of emu's runtime files,
        # the named network namespaces and the cgroups are hidden.
        mount --bind /run/emu/tisolated/controller.sock "$DIR/api.sock"
        mount -t tmpfs emu-test-hides-run-emu /run/emu
        mount -t tmpfs emu-test-hides-netns /run/netns
        mount -t tmpfs emu-test-hides-cgroups /sys/fs/cgroup
        ip link set lo up
        echo "runtime files: $(ls -A /run/emu | wc -l), namespaces: $(ls -A /run/netns | wc -l), links: $(ip -o link | wc -l)"
        export EMU_SERVER="unix://$DIR/api.sock"
        emu() { "$EMU" --cluster tisolated "$@"; }
        pf=
        trap '[ -n "$pf" ] && kill $pf 2>/dev/null; true' EXIT

        emu get pods -o wide
        echo "exec: $(emu exec talker -- hostname)"
        set +e; emu exec web -- sh -c 'exit 3'; echo "exit code: $?"; set -e
        echo "logs: $(timeout 2 "$EMU" logs -f talker | head -3 | tr '\n' ' ')"

        "$EMU" port-forward --server "$EMU_SERVER" pod/web 18080:80 > "$DIR/pf.out" 2>&1 &
        pf=$!
        for i in $(seq 100); do grep -q Forwarding "$DIR/pf.out" && break; sleep 0.05; done
        echo "port-forward: $(curl -s -m 5 http://127.0.0.1:18080/ | grep -m1 -o 'Welcome to nginx!')"
        kill $pf; wait $pf 2>/dev/null || true; pf=

        emu fault partition node-1 node-2
        if emu exec talker -- ping -c 1 -W 1 "$WEB_IP" >/dev/null; then echo "partition: reached"; else echo "partition: cut off"; fi
        emu fault clear
        emu exec talker -- ping -c 1 -W 1 "$WEB_IP" >/dev/null && echo "cleared: reached"

        emu node stop node-2
        if emu exec talker -- ping -c 1 -W 1 "$WEB_IP" >/dev/null; then echo "stopped: reached"; else echo "stopped: cut off"; fi
        emu node start node-2
        emu exec talker -- ping -c 1 -W 1 "$WEB_IP" >/dev/null && echo "started: reached"

        echo "ssh: $(emu ssh node-1 -- sh -c 'echo $EMU_NODE')"
        echo "outside: $(emu outside -- ip -o -4 addr show ext0 | awk '{print $4}')"
    "#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "slave", "--net", "bash", "-c", script])
        .env("DIR", &dir.0)
        .env("EMU", emu_path())
        .env("WEB_IP", &web_ip)
        .env_remove("EMU_CLUSTER")
        .output()
        .expect("unshare");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}\n{}", c.logs());
    println!("{stdout}");
    let has = |line: &str| stdout.lines().any(|l| l == line);
    assert!(has("runtime files: 0, namespaces: 0, links: 1"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("web ") && l.contains(" Running ") && l.contains("node-2")), "{stdout}");
    assert!(has("exec: talker"), "{stdout}");
    assert!(has("exit code: 3"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("logs: line ") && l.matches("line ").count() == 3), "{stdout}");
    assert!(has("port-forward: Welcome to nginx!"), "{stdout}");
    assert!(has("fault/partition-1 created: node-1 <-> node-2 both ways"), "{stdout}");
    assert!(has("partition: cut off") && has("fault/partition-1 cleared") && has("cleared: reached"), "{stdout}");
    assert!(has("node/node-2 stopped: agent and pods frozen, links down") && has("stopped: cut off"), "{stdout}");
    assert!(has("node/node-2 started") && has("started: reached"), "{stdout}");
    assert!(has("ssh: node-1"), "{stdout}");
    assert!(has("outside: 198.51.100.1/24"), "{stdout}");
}

/// `emu` (emu-cli) depends on no node-agent code, directly or through another crate: the
/// workspace's resolved dependency graph, as `cargo tree -p emu-cli` shows it.
#[test]
fn the_cli_links_no_node_agent_code() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The graph of this machine's platform: what `emu` links here. Without the filter cargo
    // resolves every platform's dependencies and needs, offline, crates a build never fetched
    // (Windows' anstyle-wincon): on a fresh machine the test failed for want of them.
    let host = Command::new("rustc").arg("-vV").output().expect("rustc -vV");
    let host =
        String::from_utf8_lossy(&host.stdout).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)).expect("rustc's host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host, "--manifest-path"])
        .arg(PathBuf::from(REPO).join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of = |id: &str| -> String {
        meta["packages"].as_array().unwrap().iter().find(|p| p["id"] == id).map(|p| p["name"].as_str().unwrap().to_string()).unwrap()
    };
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let cli = meta["packages"].as_array().unwrap().iter().find(|p| p["name"] == "emu-cli").unwrap()["id"].as_str().unwrap().to_string();
    // Normal (not dev or build) dependencies, transitively.
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![cli];
    while let Some(id) = todo.pop() {
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).unwrap();
        for d in node["deps"].as_array().unwrap() {
            let normal = d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let dep = d["pkg"].as_str().unwrap().to_string();
            if normal && seen.insert(name_of(&dep)) {
                todo.push(dep);
            }
        }
    }
    assert!(seen.contains("emu-proto") && seen.contains("emu-provider"), "{seen:?}");
    assert!(!seen.contains("emu-nodeagent"), "emu-cli depends on emu-nodeagent: {seen:?}");
}
