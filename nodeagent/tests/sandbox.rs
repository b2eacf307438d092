//! Real-kernel tests of pod sandboxes (run as root): a shim in a network namespace of our own,
//! real nginx and busybox containers, `nsexec` into them, restarts, and a clean stop.
//!
//! Each test makes its own namespace `emu-sbtest<pid>-<n>` and pod directory, both removed by
//! Drop guards even when an assertion fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use emu_nodeagent::sandbox::{
    log_path, previous_log_path, read_state, running_shim, spawn_shim, stop_shim, ContainerSpec, ContainerState, ContainerStatus,
    SandboxSpec, SandboxState,
};

const BIN: &str = env!("CARGO_BIN_EXE_emu-nodeagent");

/// A network namespace for one test, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("emu-sbtest{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A pod directory with a running shim; stops the shim and removes the directory on drop.
struct Pod {
    dir: tempfile::TempDir,
    shim: i32,
}

impl Pod {
    fn start(netns: &Netns, spec: &SandboxSpec) -> Pod {
        become_subreaper();
        let dir = tempfile::Builder::new().prefix("emu-sbtest").tempdir().expect("pod dir");
        // The image's files in the pod's temporary directory, which goes with the test (not in
        // a cluster's runtime directory, which only `emu down` removes).
        let spec = SandboxSpec { images_dir: Some(dir.path().join("images")), ..spec.clone() };
        fs::write(dir.path().join("sandbox.json"), serde_json::to_vec(&spec).expect("spec json")).expect("sandbox.json");
        let shim = spawn_shim(Path::new(BIN), dir.path(), &netns.path(), None).expect("spawn_shim");
        Pod { dir, shim }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> SandboxState {
        read_state(self.path()).expect("state.json")
    }

    fn container(&self, name: &str) -> ContainerStatus {
        self.state().containers.into_iter().find(|c| c.name == name).expect("container in state")
    }

    /// Waits until `pred` holds for the container's status; panics with the last status if not.
    fn wait_container(&self, name: &str, timeout: Duration, pred: impl Fn(&ContainerStatus) -> bool) -> ContainerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = read_state(self.path()).ok().and_then(|s| s.containers.into_iter().find(|c| c.name == name));
            match status {
                Some(s) if pred(&s) => return s,
                s if Instant::now() > deadline => panic!("container {name}: condition not met; last status {s:#?}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn exec(&self, container: &str, argv: &[&str]) -> Output {
        Command::new(BIN).arg("nsexec").arg(self.path()).arg(container).arg("--").args(argv).output().expect("running nsexec")
    }

    /// Stops the shim and reaps it (we are its subreaper): returns its exit code.
    fn stop(&self) -> i32 {
        stop_shim(self.path(), Duration::from_secs(2)).expect("stop_shim");
        let mut status = 0;
        // SAFETY: waitpid on a pid that is our (adopted) child; `status` outlives the call.
        let r = unsafe { libc::waitpid(self.shim, &mut status, 0) };
        assert_eq!(r, self.shim, "the shim was not our child to reap");
        assert!(libc::WIFEXITED(status), "shim did not exit normally: {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = stop_shim(self.path(), Duration::from_secs(2));
        // SAFETY: as in `stop`; WNOHANG so a missing child does not block.
        unsafe { libc::waitpid(self.shim, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// The shim daemonizes (double fork); as a subreaper this process adopts it and can check that
/// it exits cleanly, instead of init reaping it at some later time.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    // SAFETY: prctl with integer arguments only.
    ONCE.call_once(|| assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0));
}

fn run(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().expect(argv[0]);
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn container(name: &str, image: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: vec![("GREETING".into(), "hello".into())],
        literal_env: vec![],
        working_dir: None,
        tty: false,
        stdin: false,
        stdin_once: false,
        mounts: vec![],
        restarts_before: 0,
        confinement: Default::default(),
        writable_layer_bytes: None,
        identity: Default::default(),
        capabilities: None,
    }
}

fn spec(pod: &str, restart_policy: &str, containers: Vec<ContainerSpec>) -> SandboxSpec {
    SandboxSpec {
        cluster: "sbtest".into(),
        namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: "0c6c3a9e-1111-4222-8333-444455556666".into(),
        hostname: pod.into(),
        restart_policy: restart_policy.into(),
        termination_grace_seconds: 2,
        hosts_file: format!("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.244.1.5\t{pod}\n"),
        resolv_conf: "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n".into(),
        containers,
        volumes: vec![],
        api_socket: None,
        images_dir: None,
    }
}

fn running(c: &ContainerStatus) -> bool {
    matches!(c.state, ContainerState::Running { .. })
}

/// The host's mount table, without the namespaces that tests running in parallel (ours or
/// others') create and delete meanwhile.
fn mounts(netns: &Netns) -> Vec<String> {
    let own = netns.path();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| {
            let mount_point = Path::new(l.split(' ').nth(4).unwrap_or_default());
            !mount_point.starts_with("/run/netns/") || mount_point == own
        })
        .map(str::to_string)
        .collect()
}

/// Processes whose parent is `ppid`, with their state letter.
fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let mut fields = rest.split(' ');
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|p| p.parse().ok()) == Some(ppid) {
            out.push((pid, state));
        }
    }
    out
}

#[test]
fn nginx_and_busybox_pod() {
    let netns = Netns::new();
    let mounts_before = mounts(&netns);
    let pod = Pod::start(
        &netns,
        &spec(
            "web-1",
            "Always",
            vec![
                container("nginx", "nginx:1.25", &[]),
                // busybox with curl: a busybox image has no curl of its own.
                container("shell", "radial/busyboxplus:curl", &["sleep", "3600"]),
                container("bad", "example.com/no-such-image:1", &[]),
            ],
        ),
    );
    assert_eq!(running_shim(pod.path()), Some(pod.shim));
    let nginx = pod.wait_container("nginx", Duration::from_secs(10), running);
    pod.wait_container("shell", Duration::from_secs(10), running);

    // Unknown image: ErrImagePull with the catalog in the message, no restarts.
    let bad = pod.container("bad");
    match &bad.state {
        ContainerState::Waiting { reason, message } => {
            assert_eq!(reason, "ErrImagePull");
            assert!(message.contains("example.com/no-such-image:1") && message.contains("nginx (any tag)"), "{message}");
        }
        other => panic!("bad image: {other:?}"),
    }

    // Containers of a pod share localhost: busybox reaches nginx on 127.0.0.1:80.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let out = pod.exec("shell", &["curl", "-sS", "http://127.0.0.1/"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text(&page).contains("Welcome to nginx!"), "curl: {page:?}");
    let access = fs::read_to_string(log_path(pod.path(), "nginx")).expect("nginx log");
    assert!(access.contains("\"GET / HTTP/1.1\" 200") && access.contains("curl/"), "nginx log:\n{access}");
    assert!(access.contains("Configuration complete; ready for start up"), "nginx log:\n{access}");

    // Hostname, /etc files, environment.
    assert_eq!(text(&pod.exec("shell", &["hostname"])).trim(), "web-1");
    assert!(text(&pod.exec("shell", &["cat", "/etc/hosts"])).contains("10.244.1.5\tweb-1"));
    assert!(text(&pod.exec("shell", &["cat", "/etc/resolv.conf"])).contains("nameserver 10.96.0.10"));
    let env = text(&pod.exec("shell", &["env"]));
    assert!(env.contains("GREETING=hello") && env.contains("HOSTNAME=web-1") && env.contains("HOME=/root"), "{env}");
    // busybox's applets come first in a busybox image: /bin/sh is busybox (a hard link, as in
    // the busybox image).
    assert_eq!(text(&pod.exec("shell", &["sh", "-c", "[ /bin/sh -ef /bin/busybox ] && echo busybox"])).trim(), "busybox");

    // Own PID namespace: pid 1 is the entrypoint, and nothing of the other container is visible.
    let ps = text(&pod.exec("shell", &["ps", "-o", "pid,args"]));
    let pid1 = ps.lines().find(|l| l.split_whitespace().next() == Some("1")).unwrap_or_default();
    assert!(pid1.contains("sleep 3600"), "ps:\n{ps}");
    assert!(!ps.contains("nginx"), "ps:\n{ps}");
    let ps = text(&pod.exec("nginx", &["cat", "/proc/1/cmdline"]));
    assert!(ps.starts_with("nginx: master process"), "nginx pid 1: {ps:?}");

    // Host files outside the container root are invisible; the network cannot be changed.
    let ls = pod.exec("shell", &["ls", "/work"]);
    assert!(!ls.status.success(), "ls /work succeeded: {}", text(&ls));
    let ip = pod.exec("shell", &["ip", "link", "add", "dummy0", "type", "dummy"]);
    assert!(!ip.status.success());
    assert!(String::from_utf8_lossy(&ip.stderr).contains("Operation not permitted"), "{ip:?}");
    let sysctl = pod.exec("shell", &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    assert!(!sysctl.status.success(), "sysctl write succeeded");
    // ...but raw sockets work (ping to ourselves).
    let ping = pod.exec("shell", &["ping", "-c", "1", "-W", "2", "127.0.0.1"]);
    assert!(ping.status.success(), "ping: {ping:?}");

    // nsexec passes the exit code through.
    assert_eq!(pod.exec("shell", &["sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(pod.exec("shell", &["no-such-command"]).status.code(), Some(127));
    assert_ne!(pod.exec("bad", &["true"]).status.code(), Some(0));

    // Killing the container restarts it (first restart is immediate) with a fresh log.
    let old_pid = nginx.pid.expect("nginx pid");
    // SAFETY: kill(2) on the container's pid 1, a process this test started through the shim.
    assert_eq!(unsafe { libc::kill(old_pid, libc::SIGKILL) }, 0);
    let nginx = pod.wait_container("nginx", Duration::from_secs(10), |c| c.restart_count == 1 && running(c));
    assert_ne!(nginx.pid, Some(old_pid));
    let last = nginx.last_terminated.expect("last_terminated");
    assert_eq!((last.exit_code, last.signal, last.reason.as_str()), (137, Some(9), "Error"));
    let previous = fs::read_to_string(previous_log_path(pod.path(), "nginx")).expect("previous log");
    assert!(previous.contains("\"GET / HTTP/1.1\" 200"));
    // No zombie left by the killed container (nginx workers died with their PID namespace).
    assert!(children_of(pod.shim).iter().all(|(_, state)| *state != 'Z'), "{:?}", children_of(pod.shim));

    // Stop: nothing left running, mounted or unreaped.
    let pids: Vec<i32> = pod.state().containers.iter().filter_map(|c| c.pid).collect();
    assert_eq!(pids.len(), 2);
    assert_eq!(pod.stop(), 0, "shim exit code");
    assert_eq!(running_shim(pod.path()), None);
    for pid in &pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "container pid {pid} still exists");
    }
    let ours = children_of(std::process::id() as i32);
    assert!(!ours.iter().any(|(pid, _)| *pid == pod.shim || pids.contains(pid)), "left behind: {ours:?}");
    assert!(!pod.path().join("containers").exists());
    let state = pod.state();
    assert!(state.containers.iter().all(|c| c.pid.is_none()));
    assert_eq!(mounts(&netns), mounts_before);
}

#[test]
fn crash_loops_back_off_and_policies_apply() {
    let netns = Netns::new();
    let pod = Pod::start(&netns, &spec("crashy", "Always", vec![container("crash", "busybox:1.37", &["sh", "-c", "echo boom; exit 3"])]));
    // First restart immediate, then the 10 s back-off.
    let crash = pod.wait_container(
        "crash",
        Duration::from_secs(10),
        |c| matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff"),
    );
    assert_eq!(crash.restart_count, 1);
    let ContainerState::Waiting { message, .. } = &crash.state else { unreachable!() };
    assert_eq!(message, "back-off 10s restarting failed container=crash pod=crashy_default(0c6c3a9e-1111-4222-8333-444455556666)");
    let last = crash.last_terminated.expect("last_terminated");
    assert_eq!((last.exit_code, last.reason.as_str()), (3, "Error"));
    assert_eq!(fs::read_to_string(log_path(pod.path(), "crash")).expect("log"), "boom\n");
    assert_eq!(pod.stop(), 0);

    // OnFailure: a container that succeeds stays Completed; one that cannot start is a StartError
    // and is retried.
    let pod = Pod::start(
        &netns,
        &spec("batch", "OnFailure", vec![container("ok", "busybox", &["true"]), container("missing", "busybox", &["no-such-binary"])]),
    );
    let ok = pod.wait_container("ok", Duration::from_secs(10), |c| matches!(c.state, ContainerState::Terminated(_)));
    let ContainerState::Terminated(t) = &ok.state else { unreachable!() };
    assert_eq!((t.exit_code, t.reason.as_str(), ok.restart_count), (0, "Completed", 0));
    let missing = pod.wait_container("missing", Duration::from_secs(10), |c| c.restart_count == 1);
    assert_eq!(missing.last_terminated.expect("last").reason, "StartError");
    let log = fs::read_to_string(log_path(pod.path(), "missing")).expect("log");
    assert!(log.contains("exec: \"no-such-binary\": executable file not found in $PATH"), "{log}");
    assert_eq!(pod.stop(), 0);
}

/// A cgroup of our own (cgroup v2, or v1's pids hierarchy), removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new() -> Cgroup {
        let name = format!("emu-sbtest{}", std::process::id());
        ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .iter()
            .map(|root| Path::new(root).join(&name))
            .find(|dir| dir.parent().is_some_and(|p| p.join("cgroup.procs").exists()) && fs::create_dir(dir).is_ok())
            .map(Cgroup)
            .expect("no writable cgroup hierarchy")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty once its processes are gone; they may take a moment to leave.
        for _ in 0..50 {
            if fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn shim_joins_its_cgroup_and_takes_its_containers_along_when_killed() {
    let netns = Netns::new();
    let cgroup = Cgroup::new();
    become_subreaper();
    let dir = tempfile::Builder::new().prefix("emu-sbtest").tempdir().expect("pod dir");
    let spec = SandboxSpec {
        images_dir: Some(dir.path().join("images")),
        ..spec("doomed", "Always", vec![container("shell", "busybox", &["sleep", "3600"])])
    };
    fs::write(dir.path().join("sandbox.json"), serde_json::to_vec(&spec).expect("json")).expect("sandbox.json");
    let shim = spawn_shim(Path::new(BIN), dir.path(), &netns.path(), Some(&cgroup.0)).expect("spawn_shim");
    let pod = Pod { dir, shim };
    let name = cgroup.0.file_name().expect("name").to_string_lossy().into_owned();
    let shim_cgroup = fs::read_to_string(format!("/proc/{shim}/cgroup")).expect("cgroup");
    assert!(shim_cgroup.contains(&name), "{shim_cgroup}");
    let pid = pod.wait_container("shell", Duration::from_secs(10), running).pid.expect("pid");
    assert!(fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup").contains(&name));
    // A second shim for the same pod is refused.
    assert!(spawn_shim(Path::new(BIN), pod.path(), &netns.path(), None).is_err());

    // SIGKILL the shim (e.g. `kill -9`, OOM): its container must not linger unsupervised.
    // SAFETY: kill(2) and waitpid(2) on the shim this test started and adopted.
    unsafe {
        assert_eq!(libc::kill(shim, libc::SIGKILL), 0);
        assert_eq!(libc::waitpid(shim, std::ptr::null_mut(), 0), shim);
    }
    // It dies with the shim (parent-death signal) and, orphaned, comes to us to be reaped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !children_of(std::process::id() as i32).contains(&(pid, 'Z')) {
        assert!(Instant::now() < deadline, "container {pid} outlived its shim");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: reaping our adopted, exited child.
    assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) }, pid);
    assert_eq!(running_shim(pod.path()), None);
    stop_shim(pod.path(), Duration::from_secs(1)).expect("stop_shim after a killed shim");
    assert!(!pod.path().join("containers").exists());
}
