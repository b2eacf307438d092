//! `emu down` removes everything, even after every emu process was SIGKILLed; repeated up/down
//! cycles leave the host exactly as it was; a running cluster never touches the host's own
//! network namespace and no emu namespace has a route out.

use emu_tests::{emu, emu_mounts, emu_processes, Cluster, HostState};
use std::process::Command;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/nginx.yaml");

fn netns_of(cluster: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("emu-{cluster}-")))
        .map(str::to_string)
        .collect()
}

fn routes(ns: &str) -> String {
    let out = Command::new("ip").args(["-n", ns, "route", "show", "table", "all"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn containment_while_running() {
    let before = HostState::capture();
    let c = Cluster::up("tcont", &[SCENARIO]);
    let during = HostState::capture();
    assert_eq!(before.links, during.links, "no new link in the host namespace");
    assert_eq!(before.addrs, during.addrs, "no new address in the host namespace");
    assert_eq!(before.routes, during.routes, "no new route in the host namespace");
    assert_eq!(before.nft, during.nft, "no nft table in the host namespace");
    assert_eq!(before.forwarding, during.forwarding, "no sysctl change in the host namespace");

    let namespaces = netns_of(&c.name);
    assert!(namespaces.len() >= 5, "fabric, 2 nodes, 2 pods: {namespaces:?}");
    for ns in &namespaces {
        let r = routes(ns);
        for line in r.lines().filter(|l| l.starts_with("default")) {
            // Only pods have a default route, and it points at their node's cni0 (10.244.x.1).
            assert!(ns.contains("-pod-"), "{ns} must not have a default route: {line}");
            assert!(line.starts_with("default via 10.244."), "{ns}: {line}");
        }
        for line in r.lines().filter(|l| {
            !l.starts_with("local")
                && !l.starts_with("broadcast")
                && !l.starts_with("multicast")
                && !l.contains("fe80::")
                && !l.starts_with("default")
        }) {
            let dest = line.split_whitespace().next().unwrap_or("");
            // The outside world's TEST-NETs (198.51.100.0/24 clients and ExternalIPs, 203.0.113.0/24
            // balancers) exist only inside emu's namespaces too.
            let inside = ["10.244.", "10.96.", "172.18.", "127.", "198.51.100.", "203.0.113.", "ff00::", "::1", "fe80"]
                .iter()
                .any(|p| dest.starts_with(p));
            assert!(inside, "{ns} has a route outside the emulator's ranges: {line}");
        }
    }
}

#[test]
fn down_after_sigkill_of_everything_and_repeated_cycles_leave_nothing() {
    let before = HostState::capture();
    assert!(emu_mounts("tkill").is_empty() && emu_mounts("tcycle").is_empty());
    {
        let c = Cluster::up("tkill", &[SCENARIO]);
        // SIGKILL every process of the cluster (daemons, shims, containers).
        let procs = std::fs::read_to_string(format!("{}/emu-tkill/controller/cgroup.procs", cgroup_root())).unwrap_or_default();
        assert!(!procs.trim().is_empty(), "the controller lives in the cluster's cgroup");
        let all = Command::new("sh")
            .arg("-c")
            .arg(format!("find {}/emu-tkill -name cgroup.procs -exec cat {{}} +", cgroup_root()))
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&all.stdout).lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: these PIDs are in the test cluster's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(c); // emu down
    }
    assert!(emu_processes("tkill").is_empty(), "left processes: {:?}", emu_processes("tkill"));
    assert!(netns_of("tkill").is_empty());
    assert!(!std::path::Path::new("/run/emu/tkill").exists());

    for i in 0..20 {
        let r = emu(&["up", "--cluster", "tcycle", "--nodes", "2"]);
        assert_eq!(r.code, 0, "cycle {i}: {}{}", r.stdout, r.stderr);
        let r = emu(&["down", "--cluster", "tcycle"]);
        assert_eq!(r.code, 0, "cycle {i}: {}{}", r.stdout, r.stderr);
    }
    let after = HostState::capture();
    assert_eq!(before, after, "host state after 20 up/down cycles");
    assert!(emu_mounts("tkill").is_empty() && emu_mounts("tcycle").is_empty(), "mount table");
    assert!(netns_of("tcycle").is_empty());
    assert!(emu_processes("tcycle").is_empty());
}

fn cgroup_root() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })
        .min_by_key(|p| p.len())
        .expect("cgroup2 mount")
}
