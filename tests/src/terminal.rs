//! A program on a pseudo-terminal of the test's own, driven as a user at a keyboard drives it:
//! keys are typed once what they answer has appeared on the screen, so nothing depends on how
//! fast the program gets ready (input typed before it set its terminal up can be lost or taken
//! as the terminal's own end of input).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the program has written so far, and whether its side of the terminal is closed.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

pub struct Terminal {
    child: Child,
    keyboard: File,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Where the last [`Terminal::expect`] matched: the next one looks after it.
    seen: usize,
}

impl Terminal {
    /// Starts `cmd` as the leader of a session whose controlling terminal is a new
    /// pseudo-terminal of `rows` × `cols`; its stdin, stdout and stderr are that terminal.
    pub fn start(mut cmd: Command, rows: u16, cols: u16) -> Terminal {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors it opened into the integers given; the name and
        // termios arguments may be null.
        let opened = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap())).stdout(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; they change only the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
        // The command holds the slave's copies: dropped, the master reads EIO once the program
        // and its children have closed theirs.
        drop(cmd);
        let keyboard = File::from(master);
        let mut display = keyboard.try_clone().unwrap();
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let read = display.read(&mut buf);
                let (lock, changed) = &*shared;
                // A test that panicked while looking at the screen poisoned it: go on regardless.
                let mut s = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match read {
                    Ok(n) if n > 0 => s.bytes.extend_from_slice(&buf[..n]),
                    _ => {
                        s.closed = true;
                        changed.notify_all();
                        return;
                    }
                }
                changed.notify_all();
            }
        });
        Terminal { child, keyboard, screen, seen: 0 }
    }

    /// Everything the program has shown.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap().bytes).into_owned()
    }

    /// Waits up to `limit` until what was shown since the last match contains `text`; panics with
    /// the screen otherwise.
    pub fn expect(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().unwrap();
        loop {
            if let Some(at) = s.bytes[self.seen..].windows(text.len()).position(|w| w == text.as_bytes()) {
                self.seen += at + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if s.closed || left.is_zero() {
                let all = String::from_utf8_lossy(&s.bytes).into_owned();
                panic!("the terminal did not show {text:?} within {limit:?}; it showed:\n{all:?}");
            }
            s = changed.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Types `keys` (a line ends with "\r", as the Enter key sends it).
    pub fn type_keys(&mut self, keys: &str) {
        self.keyboard.write_all(keys.as_bytes()).expect("typing on the terminal");
    }

    /// Waits up to `limit` for the program's end: its exit code; kills it and panics with the
    /// screen otherwise.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the program on the terminal did not end within {limit:?}; it showed:\n{:?}", self.shown());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
