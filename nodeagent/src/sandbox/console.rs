//! The console of an attachable container (`stdin: true` or `tty: true`), kept for the pod's
//! life as a container runtime's shim keeps it, so that `kubectl attach` and `kubectl run -i
//! --tty` reach the container's own process.
//!
//! A terminal container's stdin, stdout and stderr are the slave side of a pseudo-terminal; a
//! `stdin`-only container's stdin is a pipe (its output goes to its log as any container's).
//! Every run of the container gets the same console. The other side is held by a relay: a child
//! of the shim (forked while the shim is single-threaded, so the relay may start threads) that
//! accepts attach connections on `<pod_dir>/<container>.attach`:
//! - from a client: frames `[kind u8][length u16 BE][payload]`: kind [`FRAME_INPUT`] is input,
//!   [`FRAME_RESIZE`] a window size (rows u16 BE, cols u16 BE);
//! - to a client (terminals only): what the container writes, as it comes (and to its log, as
//!   the kubelet logs a terminal container's output).
//!
//! When a run of the container ends the shim says so on a pipe, and the relay closes every
//! client's connection: an attach ends with the run it attached to.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::warn;

/// A frame of input for the container.
pub const FRAME_INPUT: u8 = 0;
/// A frame with the client's window size (terminals).
pub const FRAME_RESIZE: u8 = 1;
/// The client's input ended (no payload): with `stdinOnce`, the container's stdin closes.
pub const FRAME_INPUT_END: u8 = 2;

/// After a run ended, how long its terminal must stay quiet before its clients are let go: what
/// the run wrote last is passed from the terminal's slave side to its master side by a kernel
/// work queue, so it may still be on its way when the shim learns of the exit.
const DRAIN_IDLE_MS: i32 = 10;
/// How long the shim waits for the relay to have let a run's clients go.
const ACK_WAIT_MS: i32 = 200;

/// The relay's ends of the pipes on which the shim says a run ended and the relay answers.
struct Ends {
    ended: OwnedFd,
    acks: OwnedFd,
}

impl Ends {
    fn ack(&self) {
        // SAFETY: a one-byte write to a pipe we own.
        unsafe { libc::write(self.acks.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
}

/// The socket of container `name`'s console in the pod's directory.
pub fn socket_name(container: &str) -> String {
    format!("{container}.attach")
}

/// An open console, as the shim holds it.
pub struct Console {
    /// What the container gets: the terminal's slave side, or the read end of its stdin pipe.
    inside: OwnedFd,
    terminal: bool,
    /// The shim's end of the pipe on which it tells the relay that a run ended.
    run_ended: OwnedFd,
    /// Where the relay answers that it let the run's clients go.
    acks: OwnedFd,
}

impl Console {
    /// Opens a console for container `name` of the pod in `pod_dir` (a terminal or a stdin
    /// pipe) and forks its relay. Must be called while the process is single-threaded.
    pub fn open(pod_dir: &Path, name: &str, log: PathBuf, terminal: bool, stdin_once: bool) -> io::Result<Console> {
        let (outside, inside) = if terminal {
            let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
            // Only the container's stdio is the slave: it must not leak into other programs.
            for fd in [&pty.master, &pty.slave] {
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
            }
            (pty.master, pty.slave)
        } else {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
            (w, r)
        };
        let (ended_r, ended_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (acks_r, acks_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let socket = pod_dir.join(socket_name(name));
        let _ = std::fs::remove_file(&socket);
        // Bound before the fork: a client may connect as soon as the container runs.
        let listener = bind_in(pod_dir, &socket_name(name))?;
        // SAFETY: the shim is single-threaded (see shim_main); the child only runs `relay`,
        // which ends in `_exit`.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            nix::unistd::ForkResult::Child => {
                drop((ended_w, acks_r));
                // The relay keeps the slave open too: between two runs, reading the master
                // must wait for output, not fail.
                let keep = terminal.then_some(inside);
                relay(listener, outside, keep, Ends { ended: ended_r, acks: acks_w }, log, terminal, stdin_once && !terminal);
                // SAFETY: leaving the forked child without running the shim's exit handlers.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { .. } => Ok(Console { inside, terminal, run_ended: ended_w, acks: acks_r }),
        }
    }

    /// The descriptor the container's stdin (and, for a terminal, stdout and stderr) is.
    pub fn inside(&self) -> RawFd {
        self.inside.as_raw_fd()
    }

    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// A run of the container ended: the clients attached to it are let go, after what it
    /// wrote last. Waits (at most [`ACK_WAIT_MS`]) for the relay to have done so, so that
    /// nothing of the next run reaches them.
    pub fn run_ended(&self) {
        let mut answer = libc::pollfd { fd: self.acks.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let mut byte = [0u8; 1];
        // SAFETY: one-byte writes and reads of pipes we own; poll reads and writes the one
        // pollfd given.
        unsafe {
            libc::write(self.run_ended.as_raw_fd(), byte.as_ptr().cast(), 1);
            if libc::poll(&mut answer, 1, ACK_WAIT_MS) == 1 {
                libc::read(self.acks.as_raw_fd(), byte.as_mut_ptr().cast(), 1);
            }
        }
    }
}

/// A Unix socket `name` in `dir`, bound by a path relative to it: a pod's directory is too deep
/// for the 108 bytes a socket's path may have. The shim's working directory is restored.
fn bind_in(dir: &Path, name: &str) -> io::Result<UnixListener> {
    let back = std::env::current_dir()?;
    std::env::set_current_dir(dir)?;
    let bound = UnixListener::bind(name);
    std::env::set_current_dir(back)?;
    bound
}

/// The relay's life: accept clients, pass their input on, send them (and the log) a terminal's
/// output, close them when a run ends. Returns when the shim is gone.
/// With `stdin_once` (a stdin pipe only), the end of a client's input closes the pipe for good.
fn relay(listener: UnixListener, outside: OwnedFd, keep: Option<OwnedFd>, ends: Ends, log: PathBuf, terminal: bool, stdin_once: bool) {
    // SAFETY: prctl and sigprocmask change only this process.
    unsafe {
        // The relay goes with its shim, even a SIGKILLed one.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    let _keep = keep;
    let outside = std::fs::File::from(outside);
    // Only a terminal's output is read here; a stdin pipe's writing side must have no other
    // holder, or closing it would not end the container's input.
    let from = terminal.then(|| outside.try_clone());
    // The console's writing side; None once a stdinOnce container's input ended.
    let input: Arc<Mutex<Option<std::fs::File>>> = Arc::new(Mutex::new(Some(outside)));
    let clients: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
    {
        let clients = clients.clone();
        std::thread::spawn(move || match from {
            // A terminal's clients are let go by its output's thread, after the run's last output.
            Some(Ok(from)) => send_output(&from, &log, &clients, &ends),
            Some(Err(e)) => warn!("the terminal's output cannot be read: {e}"),
            // Other output is the log's, which the container wrote before it exited.
            None => {
                while next_end(&ends) {
                    let_go(&clients);
                    ends.ack();
                }
            }
        });
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Ok(copy) = stream.try_clone() {
            clients.lock().unwrap().push(copy);
        }
        let to = input.clone();
        std::thread::spawn(move || take_input(stream, &to, terminal, stdin_once));
    }
}

/// Reads the shim's next "a run ended"; false (and the relay's end) when the shim is gone.
fn next_end(ends: &Ends) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte read into a buffer we own.
    match unsafe { libc::read(ends.ended.as_raw_fd(), byte.as_mut_ptr().cast(), 1) } {
        1 => true,
        // SAFETY: the shim is gone, and so is the pod: the relay ends.
        _ => unsafe { libc::_exit(0) },
    }
}

/// A client's frames: input written to the console, window sizes set on the terminal.
fn take_input(mut from: UnixStream, to: &Mutex<Option<std::fs::File>>, terminal: bool, stdin_once: bool) {
    let mut header = [0u8; 3];
    let mut payload = vec![0u8; u16::MAX as usize];
    while from.read_exact(&mut header).is_ok() {
        let len = u16::from_be_bytes([header[1], header[2]]) as usize;
        if from.read_exact(&mut payload[..len]).is_err() {
            return;
        }
        // Not held across a write that may block: a full pipe must not stop other clients' resizes.
        let Some(console) = to.lock().unwrap().as_ref().and_then(|f| f.try_clone().ok()) else { return };
        match header[0] {
            FRAME_INPUT if (&console).write_all(&payload[..len]).is_err() => return,
            FRAME_INPUT => {}
            FRAME_INPUT_END if stdin_once => {
                to.lock().unwrap().take();
                return;
            }
            FRAME_RESIZE if terminal && len == 4 => {
                let size = libc::winsize {
                    ws_row: u16::from_be_bytes([payload[0], payload[1]]),
                    ws_col: u16::from_be_bytes([payload[2], payload[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ reads a winsize from the pointer given.
                unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &size) };
            }
            _ => {}
        }
    }
}

/// Closes every client's connection: the end of their attach.
fn let_go(clients: &Mutex<Vec<UnixStream>>) {
    for c in clients.lock().unwrap().drain(..) {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
}

/// A terminal's output: appended to the container's log with its time ([`super::logfile`]) and
/// sent to every client. When a run ended, the clients are let go once the terminal has been
/// quiet for [`DRAIN_IDLE_MS`] (the run's last output first), and the shim is told.
fn send_output(from: &std::fs::File, log: &Path, clients: &Mutex<Vec<UnixStream>>, ends: &Ends) {
    let mut buf = [0u8; 16 * 1024];
    let mut draining = false;
    loop {
        let mut ready = [
            libc::pollfd { fd: from.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: ends.ended.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // While draining, the end is not read again before this one is answered.
        let watched = if draining { 1 } else { 2 };
        // SAFETY: poll reads and writes the pollfds given.
        let polled = unsafe { libc::poll(ready.as_mut_ptr(), watched, if draining { DRAIN_IDLE_MS } else { -1 }) };
        if polled == 0 {
            draining = false;
            let_go(clients);
            ends.ack();
            continue;
        }
        if watched == 2 && ready[1].revents != 0 {
            draining = next_end(ends);
            continue;
        }
        if ready[0].revents == 0 {
            continue;
        }
        let n = match (&*from).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(log = %log.display(), "reading the container's terminal: {e}");
                return;
            }
        };
        let data = &buf[..n];
        if let Err(e) = super::logfile::append(log, data, super::logfile::now_nanos()) {
            warn!(log = %log.display(), "writing the container's log: {e}");
        }
        clients.lock().unwrap().retain_mut(|c| c.write_all(data).is_ok());
    }
}

/// `payload` as frames of `kind` for a console's socket (a frame holds at most 64 KiB).
pub fn frames(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    for chunk in payload.chunks(u16::MAX as usize) {
        out.push(kind);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_longer_than_a_frame_is_split_and_sizes_are_one_frame() {
        let long = vec![7u8; u16::MAX as usize + 10];
        let framed = frames(FRAME_INPUT, &long);
        assert_eq!(framed.len(), long.len() + 6);
        assert_eq!(&framed[..3], &[FRAME_INPUT, 0xff, 0xff]);
        let second = 3 + u16::MAX as usize;
        assert_eq!(&framed[second..second + 3], &[FRAME_INPUT, 0, 10]);
        assert_eq!(frames(FRAME_RESIZE, &[0, 24, 0, 80]), vec![FRAME_RESIZE, 0, 4, 0, 24, 0, 80]);
        assert!(frames(FRAME_INPUT, b"").is_empty());
    }
}
