//! Pod sandboxes: the per-pod supervisor ("shim"), containers as isolated real processes, and
//! `exec` into a container.
//!
//! The agent creates a pod's network namespace and directory, writes `<pod_dir>/sandbox.json`
//! (a [`SandboxSpec`]) and calls [`spawn_shim`]. The shim is a daemon of its own (reparented to
//! init, so it outlives the agent): it holds the pod's UTS and IPC namespaces, starts each
//! container as pid 1 of a fresh PID and mount namespace on a root filesystem built from the image
//! catalog (the image's files, built once per cluster at the pull by [`image_view`], under a
//! writable layer of the container's own), restarts containers per the restart policy, reaps
//! them, and publishes `<pod_dir>/state.json` ([`SandboxState`], replaced atomically). A
//! restarted agent finds it again with [`running_shim`] and stops it with [`stop_shim`].
//!
//! Files in `<pod_dir>`:
//! - `sandbox.json`, `service-env.json` (agent), `state.json`, `shim.pid`, `shim.log` (shim), `stop` (grace seconds
//!   written by [`stop_shim`] just before SIGTERM)
//! - `etc/{hosts,resolv.conf,hostname}`: bind-mounted into every container, as kubelet does
//! - `logs/<c>.log`, `logs/<c>.previous.log`: container stdout+stderr ([`log_path`]), copied by
//!   the shim from the container's output pipe; `logs/<c>.times`, `logs/<c>.previous.times`:
//!   when each piece arrived ([`logfile`])
//! - `<c>.attach`: the console of a container with `stdin` or `tty` ([`console`])
//! - `containers/<c>/rootfs`: mount point of a container's root, and `containers/<c>/layer`: of
//!   its writable layer (a tmpfs); their mounts exist only in the container's own mount
//!   namespace, so they vanish with the container and the host never sees them.

pub mod console;
mod container;
mod elf_deps;
mod image_view;
pub mod logfile;
mod nsexec;
pub mod seccomp;
mod shim;
pub mod volumes;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emu_logic::identity::Identity;
use serde::{Deserialize, Serialize};

pub use nsexec::nsexec_main;
pub use shim::shim_main;

/// What the agent asks the shim to run: one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub cluster: String,
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// The pod's hostname (DNS-24: `metadata.name` or `spec.hostname`).
    pub hostname: String,
    /// `Always`, `OnFailure` or `Never`.
    pub restart_policy: String,
    pub termination_grace_seconds: u64,
    /// Content of the pod's `/etc/hosts` (DNS-25), rendered by the agent.
    pub hosts_file: String,
    /// Content of the pod's `/etc/resolv.conf` (DNS-18..22), rendered by the agent.
    pub resolv_conf: String,
    pub containers: Vec<ContainerSpec>,
    /// The pod's Secret and ConfigMap volumes: directories of a tmpfs of the shim's, filled by
    /// the agent ([`volumes`]); containers start once each has its files.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// The API socket the image's programs get (the cluster DNS server's): the controller's
    /// on its machine, the node's read-only proxy on a machine that joined. None: the
    /// controller's (sandboxes written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<PathBuf>,
    /// Where the images' files are kept once pulled, shared by the pods of the cluster on this
    /// machine (the cluster's `images/`). None: the cluster's (sandboxes written before it
    /// existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_dir: Option<PathBuf>,
}

/// A Secret or ConfigMap volume of a [`SandboxSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    /// A Secret's (its directory is `drwxrwxrwt`) rather than a ConfigMap's.
    pub secret: bool,
}

/// Where a container sees a volume (`volumeMounts[]`), always read-only: Secret and ConfigMap
/// volumes are, whatever the manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub volume: String,
    pub path: String,
    /// One file or directory of the volume instead of all of it; it keeps what it had when the
    /// container started (subPath mounts get no updates, VOL-5).
    pub sub_path: Option<String>,
}

/// One container of a [`SandboxSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's ENTRYPOINT (and drops its CMD unless `args` is set).
    pub command: Vec<String>,
    /// Replaces the image's CMD.
    pub args: Vec<String>,
    /// The container's environment, in order (service variables, `env:`); image ENV comes first.
    pub env: Vec<(String, String)>,
    /// Names in `env` whose values are used as they are: from Secrets, ConfigMaps or the pod's
    /// own fields. Kubelet expands `$(VAR)` only in literal `value:`s.
    #[serde(default)]
    pub literal_env: Vec<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    /// The container's stdin closes when the first attached client's input ends (kubelet's
    /// `stdinOnce`; kubectl run -i sets it): a program reading it then sees its end.
    #[serde(default)]
    pub stdin_once: bool,
    /// The container's volume mounts, in manifest order.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Its restart count when the sandbox is created (not 0 when an earlier sandbox of the pod
    /// was lost).
    #[serde(default)]
    pub restarts_before: u32,
    /// Its seccomp profile and `no_new_privs`, for its own processes and every exec into it,
    /// decided by the agent from the pod's and the container's securityContext
    /// ([`seccomp::decide`]); the most confined for a spec written before it existed.
    #[serde(default)]
    pub confinement: seccomp::Confinement,
    /// The size of its writable layer in bytes (a tmpfs): `resources.limits.ephemeral-storage`,
    /// else emu's default (`emu_logic::images::writable_layer_bytes`); None in a spec written
    /// before it existed (the default then).
    #[serde(default)]
    pub writable_layer_bytes: Option<u64>,
    /// Who its processes run as, and every exec into it ([`emu_logic::identity`]); root in a
    /// spec written before it existed.
    #[serde(default)]
    pub identity: Identity,
    /// The capabilities it keeps (`NET_RAW`…: [`emu_logic::identity::kept_capabilities`]);
    /// None in a spec written before it existed: the runtime's default set.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
}

/// What the shim reports: `<pod_dir>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    pub shim_pid: i32,
    pub containers: Vec<ContainerStatus>,
}

/// The status of one container, shaped like Kubernetes' `ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub restart_count: u32,
    pub state: ContainerState,
    pub last_terminated: Option<Terminated>,
    /// Host pid of the container's pid 1 while it runs.
    pub pid: Option<i32>,
    /// The environment its current run started with (manifest and Service variables), which
    /// `emu exec` gives the commands it runs there, as `kubectl exec` does.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`.
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    /// The exit code, or 128 + signal number when killed by a signal (as Kubernetes shows it).
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed` (exit 0), `Error`, or `StartError` (the process could not be started; exit
    /// code 128, the reason is in the container log).
    pub reason: String,
    pub started_at: String,
    pub finished_at: String,
}

/// Starts the shim of the pod in `pod_dir` and returns its pid once it has written `shim.pid`.
///
/// The started process (`<shim_exe> shim <pod_dir>`) gets its own session, joins `netns`, moves
/// into `cgroup_dir` if given, logs to `<pod_dir>/shim.log`, then forks the real shim and exits;
/// the real shim is reparented to init (or the nearest subreaper), so it outlives the agent and
/// the agent never has to reap it. Blocks for a few milliseconds (call from a blocking context).
pub fn spawn_shim(shim_exe: &Path, pod_dir: &Path, netns: &Path, cgroup_dir: Option<&Path>) -> io::Result<i32> {
    let ctx = |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let ns = File::open(netns).map_err(ctx(format!("pod network namespace {}", netns.display())))?;
    let cgroup = cgroup_dir
        .map(|d| {
            let procs = d.join("cgroup.procs");
            OpenOptions::new().write(true).open(&procs).map_err(ctx(format!("cgroup {}", procs.display())))
        })
        .transpose()?;
    // The shim runs from `/`, and running_shim compares its argv with the pod directory.
    let pod_dir = &std::path::absolute(pod_dir)?;
    if let Some(pid) = running_shim(pod_dir) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("pod {} already has a running shim (pid {pid}); stop it first", pod_dir.display()),
        ));
    }
    let log_file = pod_dir.join(SHIM_LOG);
    let log = OpenOptions::new().create(true).append(true).open(&log_file).map_err(ctx(format!("shim log {}", log_file.display())))?;
    let _ = fs::remove_file(pod_dir.join(SHIM_PID));
    let mut cmd = Command::new(shim_exe);
    cmd.arg("shim").arg(pod_dir).current_dir("/").stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let (ns_fd, cgroup_fd) = (ns.as_raw_fd(), cgroup.as_ref().map(|f| f.as_raw_fd()));
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, setns, write) on descriptors opened by the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::setns(ns_fd, libc::CLONE_NEWNET) < 0 {
                return Err(io::Error::last_os_error());
            }
            // "0" moves the writing process (cgroup v1 and v2).
            if let Some(fd) = cgroup_fd {
                if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let status = cmd.status().map_err(ctx(format!("starting {} shim", shim_exe.display())))?;
    drop((ns, cgroup));
    if !status.success() {
        return Err(io::Error::other(format!(
            "shim for {} exited with {status} before starting; see {}",
            pod_dir.display(),
            log_file.display()
        )));
    }
    read_pid(&pod_dir.join(SHIM_PID))
}

/// The pid of the pod's shim if it is alive and really is the shim of this pod directory.
pub fn running_shim(pod_dir: &Path) -> Option<i32> {
    let pod_dir = std::path::absolute(pod_dir).ok()?;
    let pid = read_pid(&pod_dir.join(SHIM_PID)).ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args.get(1) == Some(&&b"shim"[..]) && args.get(2).is_some_and(|a| Path::new(std::ffi::OsStr::from_bytes(a)) == pod_dir);
    (ours && process_alive(pid)).then_some(pid)
}

/// Where the shim keeps the sandbox's state (replaced whole on every change).
pub fn state_path(pod_dir: &Path) -> PathBuf {
    pod_dir.join(STATE_JSON)
}

/// Reads `<pod_dir>/state.json`.
pub fn read_state(pod_dir: &Path) -> io::Result<SandboxState> {
    let path = state_path(pod_dir);
    let text = fs::read(&path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Stops the pod: SIGTERM to the shim, which stops its containers (SIGTERM, SIGKILL after
/// `grace`), cleans up and exits. Waits for that, SIGKILLs the shim after `grace` + 2 s, and
/// removes what a killed shim left behind. Blocks (call from a blocking context).
pub fn stop_shim(pod_dir: &Path, grace: Duration) -> io::Result<()> {
    if let Some(pid) = running_shim(pod_dir) {
        write_atomic(&pod_dir.join(STOP_FILE), grace.as_secs().to_string().as_bytes())?;
        signal(pid, libc::SIGTERM)?;
        if !wait_gone(pid, grace + Duration::from_secs(2)) {
            // Containers die with it (parent-death signal); their mounts with their namespaces.
            signal(pid, libc::SIGKILL)?;
            if !wait_gone(pid, Duration::from_secs(5)) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("shim {pid} of {} survived SIGKILL", pod_dir.display())));
            }
        }
    }
    match fs::remove_dir_all(pod_dir.join(CONTAINERS_DIR)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The container's stdout+stderr of its current (or last) run.
pub fn log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(format!("{container}.log"))
}

/// The log of the run before the current one (`logs --previous`).
pub fn previous_log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(format!("{container}.previous.log"))
}

/// The Service environment variables (ENV-1..ENV-4) a container of this pod gets when it starts
/// now. The agent keeps `<pod_dir>/service-env.json` current as Services come and go; the shim
/// reads it at every container start, so a restarted container sees the Services of its
/// restart time and a running one keeps what it started with (ENV-7).
pub fn write_service_env(pod_dir: &Path, vars: &[(String, String)]) -> io::Result<()> {
    let data = serde_json::to_vec(vars).map_err(io::Error::other)?;
    write_atomic(&pod_dir.join(SERVICE_ENV_JSON), &data)
}

/// What [`write_service_env`] wrote last (nothing when the file is missing or unreadable).
pub fn read_service_env(pod_dir: &Path) -> Vec<(String, String)> {
    fs::read(pod_dir.join(SERVICE_ENV_JSON)).ok().and_then(|d| serde_json::from_slice(&d).ok()).unwrap_or_default()
}

const SERVICE_ENV_JSON: &str = "service-env.json";
const SANDBOX_JSON: &str = "sandbox.json";
const STATE_JSON: &str = "state.json";
const SHIM_PID: &str = "shim.pid";
const SHIM_LOG: &str = "shim.log";
const STOP_FILE: &str = "stop";
const CONTAINERS_DIR: &str = "containers";
const ETC_DIR: &str = "etc";

fn read_spec(pod_dir: &Path) -> io::Result<SandboxSpec> {
    let path = pod_dir.join(SANDBOX_JSON);
    let text = fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

fn read_pid(path: &Path) -> io::Result<i32> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Writes a file so that readers see the old or the new content, never a mix (tmp + rename).
/// Root's only: the state holds container variables, which may come from Secrets.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    fs::rename(&tmp, path)
}

/// Alive and not a zombie: a dead shim may stay a zombie until init reaps it.
/// Whether process `pid` lives (exists and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// RFC 3339 in UTC with seconds, as the Kubernetes API prints times (`2024-05-01T12:00:00Z`).
fn rfc3339(t: SystemTime) -> String {
    emu_api::object::rfc3339(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

/// The capabilities a container keeps: the container runtimes' default set, the one admission lets
/// `capabilities.add` name (`emu_api::validation::DEFAULT_CAPABILITIES`, checked equal by a unit
/// test). Without NET_ADMIN
/// and SYS_ADMIN a container cannot change its network or mounts; NET_RAW keeps ping working.
/// The seccomp profile ([`seccomp`]) is containerd's for this set.
const KEPT_CAPS: [caps::Capability; 14] = {
    use caps::Capability::*;
    [
        CAP_CHOWN,
        CAP_DAC_OVERRIDE,
        CAP_FSETID,
        CAP_FOWNER,
        CAP_MKNOD,
        CAP_NET_RAW,
        CAP_SETGID,
        CAP_SETUID,
        CAP_SETFCAP,
        CAP_SETPCAP,
        CAP_NET_BIND_SERVICE,
        CAP_SYS_CHROOT,
        CAP_KILL,
        CAP_AUDIT_WRITE,
    ]
};

/// Makes the calling (single-threaded) process the container's user with the capabilities it
/// keeps (`kept`, Kubernetes' names; None: [`KEPT_CAPS`]), as runc does before exec: the
/// bounding set cut while still root (cutting needs CAP_SETPCAP), then groups and user (the
/// permitted set kept across setuid), then the other sets. A non-root user's exec then starts
/// without capabilities, as under containerd; root's with `kept`, and no exec can regain more.
fn become_container_user(identity: &Identity, kept: Option<&[String]>) -> Result<(), String> {
    use caps::CapSet;
    let keep: caps::CapsHashSet = match kept {
        None => KEPT_CAPS.into_iter().collect(),
        Some(names) => names
            .iter()
            .map(|name| format!("CAP_{name}").parse::<caps::Capability>().map_err(|e| format!("capability {name}: {e}")))
            .collect::<Result<_, _>>()?,
    };
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    if !identity.is_root() {
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        // SAFETY: prctl changes only this process's attributes.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
            return Err(format!("keeping capabilities across setuid: {}", std::io::Error::last_os_error()));
        }
        let groups: Vec<Gid> = identity.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups).map_err(|e| format!("setting supplementary groups {:?}: {e}", identity.groups))?;
        let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
        setresgid(gid, gid, gid).map_err(|e| format!("setting group {gid}: {e}"))?;
        setresuid(uid, uid, uid).map_err(|e| format!("setting user {uid}: {e}"))?;
        // Changing credentials cleared the parent-death signal: a container still must not
        // outlive its supervisor.
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    }
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::set(None, set, &keep).map_err(|e| format!("setting {set:?} capabilities: {e}"))?;
    }
    Ok(())
}

/// Finds `prog` like execvp does, in the PATH of the container's environment (not ours).
fn find_executable(prog: &str, env: &[(String, String)]) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if prog.contains('/') {
        return if is_exec(Path::new(prog)) {
            Ok(PathBuf::from(prog))
        } else {
            Err(format!("exec: \"{prog}\": stat {prog}: no such file or directory"))
        };
    }
    let path = env.iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(prog))
        .find(|p| is_exec(p))
        .ok_or_else(|| format!("exec: \"{prog}\": executable file not found in $PATH"))
}

/// execve(2) with `env`; returns only on failure.
fn exec(path: &Path, argv: &[String], env: &[(String, String)]) -> String {
    use std::ffi::CString;
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| "argument or environment contains a NUL byte".to_string());
    let run = || -> Result<(), String> {
        let prog = cstr(path.as_os_str().as_bytes())?;
        let argv = argv.iter().map(|a| cstr(a.as_bytes())).collect::<Result<Vec<_>, _>>()?;
        let envp = env.iter().map(|(k, v)| cstr(format!("{k}={v}").as_bytes())).collect::<Result<Vec<_>, _>>()?;
        let e = nix::unistd::execve(&prog, &argv, &envp).err();
        Err(format!("exec: \"{}\": {}", path.display(), e.map_or("failed".into(), |e| e.desc().to_lowercase())))
    };
    run().err().unwrap_or_default()
}

/// Restores what a process-wide setting of ours would leak into a container across exec: the
/// blocked-signal mask (the shim blocks signals it waits for) and Rust's ignored SIGPIPE.
fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&nix::sys::signal::SigSet::empty()), None);
    // SAFETY: setting a default disposition installs no Rust handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_capabilities_are_those_admission_allows_to_add() {
        // Two lists (admission cannot depend on the agent, and this one is used between clone and
        // exec, where nothing should allocate): the same capabilities, in the same order.
        let kept: Vec<String> = KEPT_CAPS.iter().map(|c| c.to_string().trim_start_matches("CAP_").to_string()).collect();
        assert_eq!(kept, emu_api::validation::DEFAULT_CAPABILITIES);
    }

    #[test]
    fn rfc3339_formats_utc_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn executables_are_looked_up_in_the_container_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/usr/bin".to_string())];
        assert_eq!(find_executable("env", &env), Ok(PathBuf::from("/usr/bin/env")));
        assert_eq!(find_executable("no-such-prog", &env), Err("exec: \"no-such-prog\": executable file not found in $PATH".to_string()));
        assert!(find_executable("/no/such", &env).is_err());
    }

    #[test]
    fn state_round_trips_as_json() {
        let state = SandboxState {
            shim_pid: 7,
            containers: vec![ContainerStatus {
                name: "c".into(),
                image: "nginx".into(),
                restart_count: 1,
                state: ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: "m".into() },
                last_terminated: None,
                pid: None,
                env: vec![("A".into(), "1".into())],
            }],
        };
        let json = serde_json::to_string(&state).expect("serialize");
        assert_eq!(serde_json::from_str::<SandboxState>(&json).expect("parse"), state);
    }
}
