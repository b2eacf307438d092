//! Starting the cluster's daemons in the background: detached (own session), logging to files in
//! the runtime directory, inside the cluster's cgroup, and inside their network namespace. Namespace and cgroup changes happen in the forked child before exec, using
//! only file descriptors opened beforehand (nothing may allocate between fork and exec).

use anyhow::Context;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub struct Spawn<'a> {
    pub exe: &'a Path,
    pub args: Vec<String>,
    pub log: &'a Path,
    pub cgroup: Option<&'a Path>,
    pub netns: Option<&'a Path>,
}

pub fn spawn(s: Spawn) -> anyhow::Result<u32> {
    let log = File::options().create(true).append(true).open(s.log).with_context(|| format!("opening {}", s.log.display()))?;
    let cgroup_procs: Option<OwnedFd> = match s.cgroup {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
            Some(
                File::options()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .with_context(|| format!("opening {}/cgroup.procs", dir.display()))?
                    .into(),
            )
        }
        None => None,
    };
    let netns: Option<OwnedFd> = match s.netns {
        Some(p) => Some(File::open(p).with_context(|| format!("opening network namespace {}", p.display()))?.into()),
        None => None,
    };
    let mut cmd = Command::new(s.exe);
    cmd.args(&s.args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let cg = cgroup_procs.as_ref().map(|f| f.as_raw_fd());
    let ns = netns.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, write, setns) on descriptors opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = cg {
                let zero = b"0";
                if libc::write(fd, zero.as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(fd) = ns {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {}", s.exe.display()))?;
    let pid = child.id();
    // Reaped when it ends, should the caller (the controller restarting an agent) outlive it; a
    // caller that exits first leaves it to init.
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// True if `pid` is alive and runs the named program (guards against a recycled PID).
pub fn alive(pid: i32, program: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).next().is_some_and(|argv0| String::from_utf8_lossy(argv0).ends_with(program)))
        .unwrap_or(false)
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
