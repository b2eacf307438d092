//! `emu-nodeagent nsexec <pod_dir> <container> [--tty] -- CMD ARGS...`: runs a command inside a
//! running container, as `kubectl exec` does: same namespaces (network, UTS, IPC, PID, mount),
//! same environment and working directory, same reduced capabilities, same seccomp profile and
//! `no_new_privs` (as runc gives an exec the container's).
//!
//! Exit status: the command's (128 + signal when killed), 126 when the container cannot be
//! entered or the command cannot be executed, 127 when the command is not found.

use std::fs::File;
use std::path::Path;

use emu_logic::images;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};

use super::*;

/// The `nsexec` personality; `args` are the arguments after `nsexec`. Must be called before any
/// thread exists (entering a mount namespace requires a single-threaded process).
pub fn nsexec_main(args: &[String]) -> ! {
    match enter(args) {
        Ok(code) => std::process::exit(code),
        Err((code, msg)) => {
            eprintln!("emu-nodeagent nsexec: {msg}");
            std::process::exit(code)
        }
    }
}

fn enter(args: &[String]) -> Result<i32, (i32, String)> {
    let usage = || (126, "usage: emu-nodeagent nsexec <pod_dir> <container> [--tty] -- CMD ARGS...".to_string());
    let sep = args.iter().position(|a| a == "--").ok_or_else(usage)?;
    let (opts, argv) = (&args[..sep], &args[sep + 1..]);
    let (pod_dir, name, tty) = match opts {
        [dir, name] => (Path::new(dir), name.as_str(), false),
        [dir, name, flag] if flag == "--tty" => (Path::new(dir), name.as_str(), true),
        _ => return Err(usage()),
    };
    if argv.is_empty() {
        return Err(usage());
    }
    let fail = |msg: String| (126, msg);
    let spec = read_spec(pod_dir).map_err(|e| fail(e.to_string()))?;
    let state = read_state(pod_dir).map_err(|e| fail(format!("reading the state of pod {}: {e}", spec.pod_name)))?;
    let pod = format!("{}/{}", spec.namespace, spec.pod_name);
    let cspec = spec.containers.iter().find(|c| c.name == name);
    let status = state.containers.iter().find(|c| c.name == name);
    let (Some(cspec), Some(status)) = (cspec, status) else {
        return Err(fail(format!("container {name:?} not found in pod {pod}")));
    };
    let pid = match (&status.state, status.pid) {
        (ContainerState::Running { .. }, Some(pid)) => pid,
        _ => return Err(fail(format!("container {name:?} of pod {pod} is not running"))),
    };
    // Guard against a recycled pid: the container's pid 1 is a child of the shim.
    if parent_pid(pid) != Some(state.shim_pid) {
        return Err(fail(format!("container {name:?} of pod {pod} is not running (pid {pid} is gone)")));
    }
    let profile = images::resolve(&cspec.image).map_err(|e| fail(e.to_string()))?;
    // The environment the container's run started with (older shims did not record it).
    let started_with = if status.env.is_empty() { &cspec.env } else { &status.env };
    let env = profile.process_env(&spec.hostname, started_with, tty, cspec.identity.uid);
    let wd = cspec.working_dir.clone().unwrap_or_else(|| profile.working_dir.to_string());

    // Open every namespace first: after entering the mount namespace, /proc is the container's.
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut namespaces = Vec::new();
    for (kind, flag) in kinds {
        let file = File::open(format!("/proc/{pid}/ns/{kind}"))
            .map_err(|e| fail(format!("opening the {kind} namespace of container {name:?}: {e}")))?;
        namespaces.push((kind, flag, file));
    }
    for (kind, flag, file) in &namespaces {
        nix::sched::setns(file, *flag).map_err(|e| fail(format!("entering the {kind} namespace of container {name:?}: {e}")))?;
    }
    // Entering the mount namespace put us at its root; the PID namespace applies to children.
    // SAFETY: nsexec is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| fail(format!("fork: {e}")))? {
        nix::unistd::ForkResult::Child => {
            let (code, msg) = run_command(argv, &env, &wd, tty, cspec);
            eprintln!("emu-nodeagent nsexec: {msg}");
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(fail(format!("waiting for the command: {e}"))),
            }
        },
    }
}

/// In the forked child (inside the container's PID namespace): execs the command; returns only
/// the exit code and reason of a failure.
fn run_command(argv: &[String], env: &[(String, String)], wd: &str, tty: bool, container: &ContainerSpec) -> (i32, String) {
    // SAFETY: prctl/setsid/ioctl change only this process; stdin is whatever the caller gave us.
    unsafe {
        // If the caller (emu exec) goes away, so does the command.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if tty && libc::isatty(0) == 1 {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        }
    }
    reset_signals();
    if let Err(e) = nix::unistd::chdir(wd) {
        return (126, format!("workingDir {wd:?}: {e}"));
    }
    if let Err(e) = seccomp::confine(&container.confinement) {
        return (126, e);
    }
    // As the container's processes run (kubectl exec runs as the container's user).
    if let Err(e) = become_container_user(&container.identity, container.capabilities.as_deref()) {
        return (126, e);
    }
    match find_executable(&argv[0], env) {
        Ok(program) => (126, exec(&program, argv, env)),
        Err(e) => (127, e),
    }
}

fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(1)?.parse().ok()
}
