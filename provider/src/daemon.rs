//! Starting the cluster's daemons in the background: detached (own session), logging to files in
//! the runtime directory, inside the cluster's cgroup, and inside their network namespace. Namespace and cgroup changes happen in the forked child before exec, using
//! only file descriptors opened beforehand (nothing may allocate between fork and exec).

use anyhow::Context;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub struct Spawn<'a> {
    pub exe: &'a Path,
    pub args: Vec<String>,
    pub log: &'a Path,
    pub cgroup: Option<&'a Path>,
    pub netns: Option<&'a Path>,
    /// A listening socket handed to the daemon by systemd's socket-activation convention: as fd 3,
    /// with `LISTEN_FDS=1` and `LISTEN_PID=<the daemon's pid>` in its environment. Bound by the
    /// caller in the caller's network namespace, which is how a daemon in a namespace of its own
    /// serves on the host's loopback.
    pub listener: Option<&'a std::net::TcpListener>,
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
    let mut handover = match s.listener {
        Some(l) => Some(Handover::new(s.exe, &s.args, l.as_raw_fd())?),
        None => None,
    };
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, write, setns; with a listener dup2, fcntl, getpid and execve) on
    // descriptors and memory prepared before the fork.
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
            // Last: fd 3 may be one of the descriptors used above. Returns only on failure.
            if let Some(h) = handover.as_mut() {
                return Err(h.exec());
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

/// The first descriptor of systemd's socket-activation convention (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Everything the child needs to exec the daemon with a listener as fd 3 and `LISTEN_PID` set to
/// its own pid, made before the fork. The pid is known only in the child, where setenv may not run
/// (it allocates, and another thread of the parent may have held the allocator's lock at the
/// fork); so the environment block is built here with room for the digits, which the child writes
/// into it before calling execve itself (std's exec would build its own environment).
struct Handover {
    fd: RawFd,
    program: CString,
    /// argv, then a null pointer; the pointers point into `_argv`.
    argv: Vec<*const libc::c_char>,
    _argv: Vec<CString>,
    /// The environment, then a null pointer; the pointers point into `_env` and `pid_var`.
    envp: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` and room for the digits and their NUL (a `Box<[u8]>` given up to a raw
    /// pointer, so that writing the digits cannot invalidate the pointer in `envp`).
    pid_var: *mut u8,
}

/// `LISTEN_PID=` and 20 digits (any u64) and a NUL.
const PID_VAR_LEN: usize = "LISTEN_PID=".len() + 21;

// SAFETY: the raw pointers point into buffers the Handover owns, and are only read (and the pid's
// digits written) in the forked child, which has a single thread.
unsafe impl Send for Handover {}
unsafe impl Sync for Handover {}

impl Handover {
    fn new(exe: &Path, args: &[String], fd: RawFd) -> anyhow::Result<Handover> {
        let cstring = |b: &[u8]| CString::new(b).with_context(|| format!("{:?} contains a NUL byte", String::from_utf8_lossy(b)));
        let program = cstring(exe.as_os_str().as_bytes())?;
        let argv_owned: Vec<CString> =
            std::iter::once(Ok(program.clone())).chain(args.iter().map(|a| cstring(a.as_bytes()))).collect::<anyhow::Result<_>>()?;
        let mut env: Vec<CString> = Vec::new();
        for (k, v) in std::env::vars_os() {
            // The convention's variables are ours to set: any inherited ones describe another process.
            if [OsStr::new("LISTEN_FDS"), OsStr::new("LISTEN_PID"), OsStr::new("LISTEN_FDNAMES")].contains(&k.as_os_str()) {
                continue;
            }
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(cstring(&kv)?);
        }
        env.push(CString::new("LISTEN_FDS=1").expect("no NUL"));
        let mut pid_var = vec![0u8; PID_VAR_LEN].into_boxed_slice();
        pid_var[..11].copy_from_slice(b"LISTEN_PID=");
        let pid_var = Box::into_raw(pid_var) as *mut u8;
        let argv = argv_owned.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        let envp = env.iter().map(|e| e.as_ptr()).chain([pid_var as *const libc::c_char, std::ptr::null()]).collect();
        Ok(Handover { fd, program, argv, _argv: argv_owned, envp, _env: env, pid_var })
    }

    /// In the forked child: the listener to fd 3 (without close-on-exec), the child's pid into
    /// `LISTEN_PID`, then execve. Returns the error of the call that failed.
    fn exec(&mut self) -> std::io::Error {
        // SAFETY: async-signal-safe calls only; `pid_var` points to PID_VAR_LEN bytes this
        // Handover owns, and `program`, `argv` and `envp` are NUL-terminated strings and
        // null-terminated arrays of them.
        unsafe {
            let moved = if self.fd == LISTEN_FDS_START {
                // dup2 onto itself keeps close-on-exec, which every std socket has.
                libc::fcntl(self.fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(self.fd, LISTEN_FDS_START)
            };
            if moved < 0 {
                return std::io::Error::last_os_error();
            }
            let digits = std::slice::from_raw_parts_mut(self.pid_var.add(11), PID_VAR_LEN - 11);
            write_decimal(libc::getpid() as u64, digits);
            libc::execve(self.program.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        }
        std::io::Error::last_os_error()
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        // SAFETY: made by Box::into_raw of a boxed slice of PID_VAR_LEN bytes in `new`, freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.pid_var, PID_VAR_LEN)) });
    }
}

/// `n` in decimal followed by a NUL, at the start of `out` (at least 21 bytes), without
/// allocating: it runs between fork and exec.
fn write_decimal(mut n: u64, out: &mut [u8]) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    out[len] = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn decimal_digits_are_written_without_allocating() {
        let mut out = [0xffu8; 21];
        for (n, text) in [(0u64, "0"), (7, "7"), (4_194_304, "4194304"), (u64::MAX, "18446744073709551615")] {
            write_decimal(n, &mut out);
            let end = out.iter().position(|b| *b == 0).unwrap();
            assert_eq!(&out[..end], text.as_bytes());
        }
    }

    /// What the controller sees: its listener at fd 3, LISTEN_FDS=1, LISTEN_PID its own pid, and
    /// the rest of the environment inherited.
    #[test]
    fn a_listener_is_handed_over_as_fd_3_with_the_childs_pid() {
        let _forking = crate::FORKING.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = std::env::temp_dir().join(format!("emu-handover-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let log = tmp.join("child.log");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = "echo \"pid=$$ listen_pid=$LISTEN_PID fds=$LISTEN_FDS path=${PATH:+set}\"; readlink /proc/$$/fd/3; echo done";
        let pid = spawn(Spawn {
            exe: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            log: &log,
            cgroup: None,
            netns: None,
            listener: Some(&listener),
        })
        .unwrap();
        let start = Instant::now();
        let out = loop {
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            if out.contains("done") || start.elapsed() > Duration::from_secs(10) {
                break out;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(out.contains(&format!("pid={pid} listen_pid={pid} fds=1 path=set")), "{out}");
        assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("socket:[")), "fd 3 is not the socket: {out}");
        // The parent's listener is the same socket, still open here.
        assert_eq!(listener.local_addr().unwrap().port(), port);
    }
}
