//! The shim: one single-threaded supervisor per pod.
//!
//! It waits with `poll` on a signalfd (every signal it handles is blocked, so nothing is lost
//! between waits) and on the containers' output pipes, which it copies to their logs with the
//! time each piece came ([`super::logfile`]): SIGCHLD means a container exited, SIGTERM/SIGINT
//! mean stop the pod, a timeout means a back-off expired. Being single-threaded is what makes
//! forking containers with `clone` and entering namespaces safe.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use emu_logic::images::{self, ImageProfile};
use emu_logic::svcenv;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use super::console::Console;
use super::container::{self, Plan};
use super::image_view;
use super::logfile;
use super::*;

/// Kubelet's container restart back-off: 10 s doubling to 5 min, forgotten after 10 min of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The `shim` personality: `emu-nodeagent shim <pod_dir>`. Forks the daemon, whose pid the
/// parent writes to `shim.pid` before exiting (so [`spawn_shim`] can return it), then supervises
/// the pod until SIGTERM. Must be called before any thread exists.
pub fn shim_main(pod_dir: &Path) -> ! {
    // Block the signals we wait for before forking, so a SIGTERM sent as soon as `shim.pid`
    // exists stays pending instead of killing the shim before it can clean up.
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(sig);
    }
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None) {
        eprintln!("emu shim {}: blocking signals: {e}", pod_dir.display());
        std::process::exit(1);
    }
    // SAFETY: the process is single-threaded (shim_main runs before any thread is started).
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            eprintln!("emu shim {}: fork: {e}", pod_dir.display());
            std::process::exit(1);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            let code = match write_atomic(&pod_dir.join(SHIM_PID), format!("{child}\n").as_bytes()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("emu shim {}: writing {SHIM_PID}: {e}", pod_dir.display());
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    1
                }
            };
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Child) => {}
    }
    tracing_subscriber::fmt().with_ansi(false).with_writer(io::stderr).init();
    match run(pod_dir, &mask) {
        Ok(()) => {
            info!(pod_dir = %pod_dir.display(), "shim exits");
            std::process::exit(0)
        }
        Err(e) => {
            error!(pod_dir = %pod_dir.display(), "shim failed: {e}");
            std::process::exit(1)
        }
    }
}

fn run(pod_dir: &Path, mask: &SigSet) -> io::Result<()> {
    let spec = read_spec(pod_dir)?;
    info!(pod = %format!("{}/{}", spec.namespace, spec.pod_name), pid = std::process::id(), "shim starts");
    // The pod's UTS and IPC namespaces, shared by its containers (the network one was joined
    // before exec).
    // And a mount namespace of its own, for the pod's volumes: they are visible to the pod's
    // containers (cloned from here) and not to the host, and vanish with the pod.
    use nix::sched::CloneFlags;
    nix::sched::unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS)
        .map_err(|e| io::Error::other(format!("unsharing UTS, IPC and mount namespaces: {e}")))?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| io::Error::other(format!("setting hostname {:?}: {e}", spec.hostname)))?;
    let etc = pod_dir.join(ETC_DIR);
    fs::create_dir_all(&etc)?;
    fs::write(etc.join("hosts"), &spec.hosts_file)?;
    fs::write(etc.join("resolv.conf"), &spec.resolv_conf)?;
    fs::write(etc.join("hostname"), format!("{}\n", spec.hostname))?;
    fs::create_dir_all(pod_dir.join("logs"))?;
    mount_volumes(pod_dir, &spec.volumes)?;

    let signals = SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| io::Error::other(format!("signalfd: {e}")))?;
    let mut pod = Pod::new(pod_dir, spec, signals);
    pod.write_state();
    // Containers start with their volumes' files in place, as kubelet mounts before it starts
    // anything; the agent writes them as soon as the directories exist.
    let mut stopped = false;
    while !volumes_filled(pod_dir, &pod.spec.volumes) {
        if matches!(pod.wait(Some(Duration::from_millis(5))), Some(libc::SIGTERM) | Some(libc::SIGINT)) {
            stopped = true;
            break;
        }
    }
    if !stopped {
        for i in 0..pod.containers.len() {
            pod.start(i);
        }
        pod.write_state();
    }
    // Until SIGTERM (at once when it came while waiting for the volumes).
    while !stopped {
        let now = Instant::now();
        let timeout =
            pod.containers.iter().flat_map(|c| [c.restart_at, c.pull_at]).flatten().min().map(|t| t.saturating_duration_since(now));
        if matches!(pod.wait(timeout), Some(libc::SIGTERM) | Some(libc::SIGINT)) {
            stopped = true;
            continue;
        }
        pod.reap();
        let now = Instant::now();
        for i in 0..pod.containers.len() {
            if pod.containers[i].restart_at.is_some_and(|t| t <= now) {
                pod.containers[i].restart_at = None;
                pod.containers[i].status.restart_count += 1;
                pod.start(i);
            }
            if pod.containers[i].pull_at.is_some_and(|t| t <= now) && pod.pull(i) {
                pod.start(i);
            }
        }
        pod.write_state();
    }
    let grace = read_pid(&pod_dir.join(STOP_FILE))
        .map_or(Duration::from_secs(pod.spec.termination_grace_seconds), |s| Duration::from_secs(s.max(0) as u64));
    pod.stop(grace);
    pod.drain_outputs();
    pod.write_state();
    // The rootfs mounts lived in the containers' mount namespaces and died with them.
    match fs::remove_dir_all(pod_dir.join(CONTAINERS_DIR)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Mounts the tmpfs that holds the pod's volumes (only in the shim's mount namespace, made
/// private first so nothing propagates to the host) and makes each volume's directory in it.
fn mount_volumes(pod_dir: &Path, specs: &[VolumeSpec]) -> io::Result<()> {
    use nix::mount::MsFlags;
    let err = |what: String| move |e: nix::Error| io::Error::other(format!("{what}: {e}"));
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(err("making the shim's mounts private".into()))?;
    // The host's named network namespaces, one bind mount per pod of every node under
    // /run/netns, are nothing the pod uses: detached here, so that each container's mount
    // namespace, a copy of this one, does not copy them again. Copying them, making them private
    // and detaching the host's root at each container start walk every mount, which made a
    // pod's start cost grow with the number of pods on the machine.
    let netns_dir = emu_host::net::netns_path("");
    match nix::mount::umount2(&netns_dir, nix::mount::MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point here (no namespace was ever named); ENOENT: no directory.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => warn!("detaching {} from the pod's mounts: {e}", netns_dir.display()),
    }
    if specs.is_empty() {
        return Ok(());
    }
    let root = pod_dir.join(volumes::VOLUMES_DIR);
    fs::create_dir_all(&root)?;
    // As large as the pod may use memory (its memory limit, or the node's allocatable memory),
    // as kubelet sizes its memory-backed volumes: the agent decided it. A size from the number
    // of volumes failed pods whose Secrets and ConfigMaps were merely large. tmpfs takes only
    // the pages written, so a large size costs nothing until used.
    let options = match volumes::read_size(pod_dir)? {
        Some(bytes) => format!("mode=0755,size={bytes}"),
        None => "mode=0755".to_string(),
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("tmpfs"), &root, Some("tmpfs"), flags, Some(options.as_str()))
        .map_err(err(format!("mounting a tmpfs ({options}) on {}", root.display())))?;
    for v in specs {
        let dir = volumes::volume_dir(pod_dir, &v.name);
        fs::create_dir(&dir)?;
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(volumes::top_dir_mode(v.secret)))?;
    }
    Ok(())
}

/// Every volume has its first version (`..data`).
fn volumes_filled(pod_dir: &Path, specs: &[VolumeSpec]) -> bool {
    specs.iter().all(|v| volumes::volume_dir(pod_dir, &v.name).join(emu_logic::volumes::DATA_DIR_LINK).exists())
}

/// What to do after a container exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterExit {
    Stay,
    RestartNow,
    RestartAfter(Duration),
}

/// Kubelet's decision: the restart policy says whether, the back-off says when. The first restart
/// is immediate; each further one waits the current back-off, which then doubles. Returns the
/// decision and the new back-off.
fn after_exit(policy: &str, exit_code: i32, ran_for: Duration, backoff: Option<Duration>) -> (AfterExit, Option<Duration>) {
    let restart = match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    };
    if !restart {
        return (AfterExit::Stay, backoff);
    }
    match backoff.filter(|_| ran_for < BACKOFF_RESET) {
        None => (AfterExit::RestartNow, Some(BACKOFF_INITIAL)),
        Some(b) => (AfterExit::RestartAfter(b), Some((b * 2).min(BACKOFF_MAX))),
    }
}

/// A duration as Go prints it in kubelet's messages: `10s`, `1m20s`, `5m0s`.
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

struct Container {
    spec: ContainerSpec,
    /// The image, once pulled: its profile and its files.
    image: Option<(&'static ImageProfile, PathBuf)>,
    status: ContainerStatus,
    /// When the current run started: monotonic (for the back-off reset) and as shown.
    started: Option<(Instant, String)>,
    backoff: Option<Duration>,
    restart_at: Option<Instant>,
    /// When to "pull" the image again: a program it runs was missing from this machine, and may
    /// be installed meanwhile, or its files could not be built (kubelet retries a failed pull
    /// with the same back-off).
    pull_at: Option<Instant>,
    pull_backoff: Option<Duration>,
    /// For `stdin: true` or `tty: true` containers: their console, which every run gets and
    /// `kubectl attach` reaches (a shell on it waits for input instead of reading EOF).
    console: Option<Console>,
}

struct Pod {
    dir: PathBuf,
    spec: SandboxSpec,
    containers: Vec<Container>,
    stopping: bool,
    /// The shim's signals (blocked, so they wait here), read with the containers' output.
    signals: SignalFd,
    /// The read ends of the containers' output pipes, copied to their logs with their times.
    outputs: Vec<OutputPipe>,
    /// What a pipe's output is read into, kept: output is copied on every wake-up.
    output_buf: Vec<u8>,
}

/// A container run's stdout and stderr (one pipe, so their order is kept), and its log.
struct OutputPipe {
    pipe: File,
    log: PathBuf,
}

impl Pod {
    fn new(dir: &Path, spec: SandboxSpec, signals: SignalFd) -> Pod {
        let containers: Vec<Container> = spec
            .containers
            .iter()
            .map(|c| {
                let image = pull(&c.image, &spec);
                let state = match &image {
                    Ok(_) => ContainerState::Waiting { reason: "ContainerCreating".into(), message: String::new() },
                    Err(e) => ContainerState::Waiting { reason: "ErrImagePull".into(), message: e.to_string() },
                };
                let retry = image.as_ref().is_err_and(PullError::may_pass);
                Container {
                    spec: c.clone(),
                    image: image.ok(),
                    status: ContainerStatus {
                        name: c.name.clone(),
                        image: c.image.clone(),
                        restart_count: c.restarts_before,
                        state,
                        last_terminated: None,
                        pid: None,
                        env: Vec::new(),
                    },
                    started: None,
                    backoff: None,
                    restart_at: None,
                    pull_at: retry.then(|| Instant::now() + BACKOFF_INITIAL),
                    pull_backoff: retry.then_some(BACKOFF_INITIAL),
                    console: None,
                }
            })
            .collect();
        Pod { dir: dir.to_path_buf(), spec, containers, stopping: false, signals, outputs: Vec::new(), output_buf: vec![0; 64 * 1024] }
    }

    /// Pulls container `i`'s image again (its back-off expired); true once it can start.
    fn pull(&mut self, i: usize) -> bool {
        let c = &mut self.containers[i];
        c.pull_at = None;
        match pull(&c.spec.image, &self.spec) {
            Ok(image) => {
                info!(container = %c.spec.name, image = %c.spec.image, "the image is pulled now");
                c.image = Some(image);
                c.pull_backoff = None;
                true
            }
            Err(e) => {
                let backoff = c.pull_backoff.unwrap_or(BACKOFF_INITIAL);
                c.status.state = ContainerState::Waiting { reason: "ErrImagePull".into(), message: e.to_string() };
                c.pull_at = Some(Instant::now() + backoff);
                c.pull_backoff = Some((backoff * 2).min(BACKOFF_MAX));
                false
            }
        }
    }

    /// Starts container `i` (a no-op for an unknown image). A container that cannot be started
    /// ends as `StartError`, with the reason in its log.
    fn start(&mut self, i: usize) {
        let c = &self.containers[i];
        let Some((profile, view)) = &c.image else { return };
        let (profile, view): (&'static ImageProfile, PathBuf) = (profile, view.clone());
        let name = c.spec.name.clone();
        let log = log_path(&self.dir, &name);
        // The previous run's log stays readable for `logs --previous`, with its times.
        if log.exists() {
            let previous = previous_log_path(&self.dir, &name);
            let moved =
                fs::rename(&log, &previous).and_then(|()| match fs::rename(logfile::times_path(&log), logfile::times_path(&previous)) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                });
            if let Err(e) = moved {
                warn!(container = %name, "rotating log: {e}");
            }
        }
        // The Service variables are those the agent recorded for this pod when the container
        // starts (ENV-7: a restart sees Services created since), under the declared ones (ENV-9).
        let declared: Vec<svcenv::DeclaredVar> = c
            .spec
            .env
            .iter()
            .map(|(name, value)| svcenv::DeclaredVar {
                name: name.clone(),
                value: value.clone(),
                expand: !c.spec.literal_env.contains(name),
            })
            .collect();
        let env = svcenv::container_env_declared(&declared, &read_service_env(&self.dir));
        let command = svcenv::expand_command(&c.spec.command, &env);
        let args = svcenv::expand_command(&c.spec.args, &env);
        let container_dir = self.dir.join(CONTAINERS_DIR).join(&name);
        let plan = Plan {
            rootfs: container_dir.join("rootfs"),
            layer: container_dir.join("layer"),
            layer_bytes: c.spec.writable_layer_bytes.unwrap_or(images::DEFAULT_WRITABLE_LAYER_BYTES),
            view,
            etc_dir: self.dir.join(ETC_DIR),
            argv: profile.argv(&command, &args),
            env: profile.process_env(&self.spec.hostname, &env, c.spec.tty, c.spec.identity.uid),
            working_dir: c.spec.working_dir.clone().unwrap_or_else(|| profile.working_dir.to_string()),
            emu_binds: emu_binds(profile, &self.spec),
            volume_binds: volume_binds(&self.dir, &c.spec.mounts),
            confinement: c.spec.confinement.clone(),
            identity: c.spec.identity.clone(),
            capabilities: c.spec.capabilities.clone(),
        };
        let started_at = rfc3339(SystemTime::now());
        let c = &mut self.containers[i];
        if c.console.is_none() && (c.spec.stdin || c.spec.tty) {
            match Console::open(&self.dir, &name, log.clone(), c.spec.tty, c.spec.stdin_once) {
                Ok(console) => c.console = Some(console),
                Err(e) => warn!(container = %name, "opening the container's console: {e}; it cannot be attached to"),
            }
        }
        let result = spawn_container(&plan, c.console.as_ref()).map(|(pid, failed, output)| {
            if let Some(pipe) = output {
                self.outputs.push(OutputPipe { pipe, log: log.clone() });
            }
            (pid, failed)
        });
        let c = &mut self.containers[i];
        match result {
            Ok((pid, None)) => {
                // The program only: expanded arguments may hold values from Secrets.
                info!(container = %name, pid, program = %plan.argv.first().map_or("", String::as_str), "container started");
                c.status.state = ContainerState::Running { started_at: started_at.clone() };
                c.status.pid = Some(pid);
                c.status.env = env;
                c.started = Some((Instant::now(), started_at));
            }
            Ok((pid, Some(msg))) => {
                warn!(container = %name, "container failed to start: {msg}");
                // The child exits right after reporting; collect it here so that the exit is
                // recorded as a start error rather than as the entrypoint's exit.
                let _ = waitpid(Pid::from_raw(pid), None);
                c.started = Some((Instant::now(), started_at));
                self.exited(i, 128, None, "StartError");
            }
            Err(e) => {
                warn!(container = %name, "container failed to start: {e}");
                let _ = logfile::append(&log, format!("emu: starting container {name:?}: {e}\n").as_bytes(), logfile::now_nanos());
                c.started = Some((Instant::now(), started_at));
                self.exited(i, 128, None, "StartError");
            }
        }
    }

    /// Waits for a signal, at most `timeout` (forever if None), copying the containers' output
    /// to their logs meanwhile: the signal's number, or None on timeout.
    fn wait(&mut self, timeout: Option<Duration>) -> Option<i32> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let mut fds: Vec<libc::pollfd> = std::iter::once(self.signals.as_raw_fd())
                .chain(self.outputs.iter().map(|o| o.pipe.as_raw_fd()))
                .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
                .collect();
            let wait_ms = deadline.map_or(-1, |d| {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up: a deadline is never polled for 0 ms before it passed.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            });
            // SAFETY: poll reads and writes the pollfds of the vector, which outlives the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
            if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                error!("poll: {}", io::Error::last_os_error());
                std::thread::sleep(Duration::from_millis(10));
            }
            if ready > 0 {
                let readable: Vec<usize> = fds[1..].iter().enumerate().filter(|(_, p)| p.revents != 0).map(|(i, _)| i).collect();
                self.copy_output(&readable);
                if fds[0].revents != 0 {
                    if let Ok(Some(info)) = self.signals.read_signal() {
                        return Some(info.ssi_signo as i32);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
    }

    /// Copies what the output pipes `which` hold to their logs; a pipe at its end (every
    /// process of the run that held it is gone) is closed.
    fn copy_output(&mut self, which: &[usize]) {
        let buf = &mut self.output_buf;
        let mut ended = Vec::new();
        for &i in which {
            let out = &mut self.outputs[i];
            loop {
                match out.pipe.read(buf) {
                    Ok(0) => {
                        ended.push(i);
                        break;
                    }
                    Ok(n) => {
                        if let Err(e) = logfile::append(&out.log, &buf[..n], logfile::now_nanos()) {
                            warn!(log = %out.log.display(), "writing the container's log: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        for i in ended.into_iter().rev() {
            self.outputs.swap_remove(i);
        }
    }

    /// Copies whatever every output pipe holds now.
    fn drain_outputs(&mut self) {
        let all: Vec<usize> = (0..self.outputs.len()).collect();
        self.copy_output(&all);
    }

    /// Collects every exited child without blocking.
    fn reap(&mut self) {
        // What a run wrote before it exited goes to its log before a restart moves the log aside.
        self.drain_outputs();
        loop {
            let (pid, code, sig) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32, Some(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            let Some(i) = self.containers.iter().position(|c| c.status.pid == Some(pid.as_raw())) else {
                continue;
            };
            let reason = if code == 0 { "Completed" } else { "Error" };
            info!(container = %self.containers[i].spec.name, exit_code = code, "container exited");
            self.exited(i, code, sig, reason);
        }
    }

    /// Records an exit and applies the restart policy.
    fn exited(&mut self, i: usize, exit_code: i32, signal: Option<i32>, reason: &str) {
        let (policy, pod_ref) =
            (self.spec.restart_policy.clone(), format!("{}_{}({})", self.spec.pod_name, self.spec.namespace, self.spec.pod_uid));
        let c = &mut self.containers[i];
        let (ran_for, started_at) = c.started.take().map_or((Duration::ZERO, String::new()), |(t, s)| (t.elapsed(), s));
        let term = Terminated { exit_code, signal, reason: reason.to_string(), started_at, finished_at: rfc3339(SystemTime::now()) };
        c.status.pid = None;
        if let Some(console) = &c.console {
            console.run_ended();
        }
        let (action, backoff) =
            if self.stopping { (AfterExit::Stay, c.backoff) } else { after_exit(&policy, exit_code, ran_for, c.backoff) };
        c.backoff = backoff;
        match action {
            AfterExit::Stay => c.status.state = ContainerState::Terminated(term),
            AfterExit::RestartNow => {
                c.status.last_terminated = Some(term);
                c.status.restart_count += 1;
                self.start(i);
            }
            AfterExit::RestartAfter(wait) => {
                c.status.last_terminated = Some(term);
                c.status.state = ContainerState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!("back-off {} restarting failed container={} pod={pod_ref}", go_duration(wait), c.spec.name),
                };
                c.restart_at = Some(Instant::now() + wait);
            }
        }
    }

    /// Stops every container: SIGTERM, then SIGKILL after `grace` (a pid 1 ignores signals it
    /// has no handler for, so `sleep` only goes with SIGKILL, as in Kubernetes).
    fn stop(&mut self, grace: Duration) {
        self.stopping = true;
        info!(grace_s = grace.as_secs(), "stopping containers");
        for c in &mut self.containers {
            c.restart_at = None;
            if let Some(pid) = c.status.pid {
                let _ = signal(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        while self.containers.iter().any(|c| c.status.pid.is_some()) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.wait(Some(deadline - now));
            self.reap();
        }
        for c in &self.containers {
            if let Some(pid) = c.status.pid {
                warn!(container = %c.spec.name, "grace period over, killing");
                let _ = signal(pid, libc::SIGKILL);
            }
        }
        while self.containers.iter().any(|c| c.status.pid.is_some()) {
            self.wait(Some(Duration::from_secs(1)));
            self.reap();
        }
    }

    fn write_state(&self) {
        let state =
            SandboxState { shim_pid: std::process::id() as i32, containers: self.containers.iter().map(|c| c.status.clone()).collect() };
        let result =
            serde_json::to_vec_pretty(&state).map_err(io::Error::other).and_then(|json| write_atomic(&self.dir.join(STATE_JSON), &json));
        if let Err(e) = result {
            error!("writing {STATE_JSON}: {e}");
        }
    }
}

/// Clones the container's pid 1 into new PID and mount namespaces and waits until it has exec'd
/// (Ok((pid, None, _))) or reported why it could not (Ok((pid, Some(reason), _))). With a
/// console, the container's stdin is its console (and its stdout and stderr too, for a
/// terminal, whose relay logs them); otherwise its stdout and stderr are one pipe, whose read
/// end (non-blocking) is returned for the shim to copy to the log.
fn spawn_container(plan: &Plan, console: Option<&Console>) -> io::Result<(i32, Option<String>, Option<File>)> {
    let (output, log) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // Non-blocking for the shim's reads only: the container's writes block when the pipe is full.
    nix::fcntl::fcntl(&output, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let devnull: OwnedFd = File::open("/dev/null")?.into();
    let (stdin, terminal) = match console {
        Some(c) => (c.inside(), c.terminal()),
        None => (devnull.as_raw_fd(), false),
    };
    fs::create_dir_all(&plan.rootfs)?;
    fs::create_dir_all(&plan.layer)?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // SAFETY: a raw clone without a new stack behaves like fork(2); the shim is single-threaded,
    // so the child's copy of the heap and of every lock is consistent. The child only runs
    // `container::run`, which ends in exec or `_exit`, and never returns here.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::other(format!("clone: {}", io::Error::last_os_error())));
    }
    if pid == 0 {
        drop(rd);
        let msg = container::run(plan, log.as_raw_fd(), stdin, terminal);
        let line = format!("emu: starting container: {msg}\n");
        // SAFETY: plain writes to descriptors we own, then _exit without running the parent's
        // atexit handlers or flushing its buffers.
        unsafe {
            libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(128);
        }
    }
    drop(wr);
    let mut msg = String::new();
    File::from(rd).read_to_string(&mut msg)?;
    let terminal = console.is_some_and(Console::terminal);
    Ok((pid as i32, (!msg.is_empty()).then_some(msg), (!terminal).then(|| File::from(output))))
}

/// Why an image cannot be used on this machine.
#[derive(Debug, thiserror::Error)]
enum PullError {
    /// Not in the catalog: no later attempt can succeed.
    #[error(transparent)]
    Unknown(#[from] images::UnknownImage),
    /// A program it runs is not installed (yet).
    #[error(transparent)]
    MissingProgram(#[from] images::MissingProgram),
    /// Its files could not be gathered or written.
    #[error("failed to pull image \"{image}\": building its files on this machine: {error}")]
    Files { image: String, error: String },
}

impl PullError {
    /// Whether a later pull may succeed (a program installed, the files built), so kubelet's
    /// back-off retries it.
    fn may_pass(&self) -> bool {
        !matches!(self, PullError::Unknown(_))
    }
}

/// What pulling an image means without a registry: the catalog's profile, provided this machine
/// has every program it runs (the host's, and emu's own beside this executable), and the
/// image's files (built now by the first pod of the cluster on this machine that pulls it).
fn pull(image: &str, spec: &SandboxSpec) -> Result<(&'static ImageProfile, PathBuf), PullError> {
    let profile = images::resolve(image)?;
    let exe = std::env::current_exe().unwrap_or_default();
    let emu_dir = exe.parent().unwrap_or(Path::new("/"));
    if let Some(missing) = profile.missing_program(image, emu_dir, is_executable_file) {
        return Err(missing.into());
    }
    let images_dir = spec.images_dir.clone().unwrap_or_else(|| emu_logic::cluster::Paths::new(&spec.cluster).images_dir());
    let emu_programs: Vec<PathBuf> = profile.emu_programs().map(|program| exe.with_file_name(program)).collect();
    let view = image_view::ensure(profile, &images_dir, &image_view::RealHost::new(), &emu_programs)
        .map_err(|error| PullError::Files { image: image.to_string(), error })?;
    Ok((profile, view))
}

/// A regular file that root may execute (a file without any execute bit is no program).
fn is_executable_file(path: &Path) -> bool {
    path.is_file() && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// The host side of a profile's emu mounts: emu programs are installed next to this one (the
/// shim is emu-nodeagent), the API socket is the one the agent names (the cluster's by default).
fn emu_binds(profile: &ImageProfile, spec: &SandboxSpec) -> Vec<(PathBuf, String)> {
    let exe = std::env::current_exe().unwrap_or_default();
    profile
        .emu_mounts
        .iter()
        .map(|m| match *m {
            images::EmuMount::Program { program, path } => (exe.with_file_name(program), path.to_string()),
            images::EmuMount::ApiSocket { path } => {
                let socket = spec.api_socket.clone().unwrap_or_else(|| emu_logic::cluster::Paths::new(&spec.cluster).socket());
                (socket, path.to_string())
            }
        })
        .collect()
}

/// The container's volume mounts as (source in the shim's mount namespace, container path),
/// parents before their children.
fn volume_binds(pod_dir: &Path, mounts: &[MountSpec]) -> Vec<(PathBuf, String)> {
    let mut binds: Vec<(PathBuf, String)> = mounts
        .iter()
        .map(|m| {
            let dir = volumes::volume_dir(pod_dir, &m.volume);
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => dir.join(sub),
                None => dir,
            };
            (source, m.path.clone())
        })
        .collect();
    binds.sort_by_key(|(_, path)| Path::new(path).components().count());
    binds
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn restart_policy_decides_whether() {
        assert_eq!(after_exit("Never", 1, MIN, None).0, AfterExit::Stay);
        assert_eq!(after_exit("OnFailure", 0, MIN, None).0, AfterExit::Stay);
        assert_eq!(after_exit("OnFailure", 2, MIN, None).0, AfterExit::RestartNow);
        assert_eq!(after_exit("Always", 0, MIN, None).0, AfterExit::RestartNow);
    }

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets_after_ten_of_running() {
        let mut backoff = None;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (action, next) = after_exit("Always", 1, Duration::ZERO, backoff);
            waits.push(match action {
                AfterExit::RestartNow => 0,
                AfterExit::RestartAfter(d) => d.as_secs(),
                AfterExit::Stay => unreachable!(),
            });
            backoff = next;
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(after_exit("Always", 1, 10 * MIN, backoff).0, AfterExit::RestartNow);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
