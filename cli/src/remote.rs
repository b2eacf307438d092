//! Commands and logs through the controller (service Relay), which hands them to the agent that
//! owns the node: emu never enters a node's namespaces or reads its files itself, so it works the
//! same from another machine. The terminal, when a command gets one, is this one put in raw mode,
//! its size following the window's.

use crate::context::{ApiError, Ctx};
use anyhow::bail;
use emu_proto::exec_input::Input;
use emu_proto::exec_output::Output;
use emu_proto::{ExecInput, ExecOutput, ExecStart, LogsRequest, TerminalSize};
use std::io::{IsTerminal, Read, Write};
use tokio_stream::wrappers::ReceiverStream;

/// An error of the relay as the user reads it: kubectl's wording for an object that is not
/// there, the message itself for everything else (a node's agent not answering, a node that does
/// not exist).
pub fn relay_error(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::NotFound if status.message().starts_with("pods ") => {
            ApiError(format!("Error from server (NotFound): {}", status.message())).into()
        }
        // The connection itself failed: the controller (or the agent behind it) went away.
        tonic::Code::Unknown | tonic::Code::Cancelled => anyhow::anyhow!("lost the connection to the cluster: {}", status.message()),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// Whether a command gets a terminal, as kubectl decides: only with stdin, and only when stdin is
/// one (else it says so and goes on without).
pub fn use_tty(tty: bool, stdin: bool) -> bool {
    if !(tty && stdin) {
        return false;
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        return false;
    }
    true
}

/// Runs the command `start` names and returns its exit code. Stdin is sent when `start.stdin`;
/// with `start.tty` this terminal is in raw mode meanwhile.
pub fn exec(ctx: &Ctx, mut start: ExecStart) -> anyhow::Result<i32> {
    let raw = if start.tty { RawMode::enable() } else { None };
    if start.tty {
        start.size = terminal_size();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<ExecInput>(16);
    let stdin = start.stdin;
    tx.try_send(ExecInput { input: Some(Input::Start(start)) }).expect("room for the first message");
    if stdin {
        let tx = tx.clone();
        // Blocking reads of stdin on a thread of their own; their end (EOF) ends the stream, and
        // so the command's stdin.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut input = std::io::stdin().lock();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(ExecInput { input: Some(Input::Stdin(buf[..n].to_vec())) }).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    let mut relay = ctx.relay.clone();
    let terminal = raw.is_some();
    let code = ctx.block_on(async move {
        if terminal {
            tokio::spawn(follow_window_size(tx));
        } else {
            drop(tx);
        }
        let mut out = relay.exec(ReceiverStream::new(rx)).await.map_err(relay_error)?.into_inner();
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        loop {
            match out.message().await.map_err(relay_error)? {
                Some(ExecOutput { output: Some(Output::Stdout(data)) }) => {
                    stdout.write_all(&data)?;
                    stdout.flush()?;
                }
                Some(ExecOutput { output: Some(Output::Stderr(data)) }) => {
                    stderr.write_all(&data)?;
                    stderr.flush()?;
                }
                Some(ExecOutput { output: Some(Output::ExitCode(code)) }) => return Ok(code),
                Some(_) => {}
                None => bail!("the connection to the command was lost before it ended"),
            }
        }
    });
    drop(raw);
    code
}

/// Prints a container's log as the controller sends it (with `follow`, until the pod is gone).
pub fn logs(ctx: &Ctx, request: LogsRequest) -> anyhow::Result<()> {
    let mut relay = ctx.relay.clone();
    ctx.block_on(async move {
        let mut chunks = relay.logs(request).await.map_err(relay_error)?.into_inner();
        let mut out = std::io::stdout();
        while let Some(chunk) = chunks.message().await.map_err(relay_error)? {
            out.write_all(&chunk.data)?;
            out.flush()?;
        }
        Ok(())
    })
}

/// A container's log to its end (not followed), gathered: what `logs -l --prefix` prefixes line
/// by line.
pub fn logs_gathered(ctx: &Ctx, request: LogsRequest) -> anyhow::Result<Vec<u8>> {
    let mut relay = ctx.relay.clone();
    ctx.block_on(async move {
        let mut chunks = relay.logs(request).await.map_err(relay_error)?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = chunks.message().await.map_err(relay_error)? {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    })
}

/// Sends the window's size whenever it changes (SIGWINCH), for as long as the command runs.
async fn follow_window_size(tx: tokio::sync::mpsc::Sender<ExecInput>) {
    let Ok(mut changes) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else { return };
    while changes.recv().await.is_some() {
        let Some(size) = terminal_size() else { continue };
        if tx.send(ExecInput { input: Some(Input::Resize(size)) }).await.is_err() {
            return;
        }
    }
}

/// This terminal's size (stdin's), if it is one.
fn terminal_size() -> Option<TerminalSize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, which lives for the call.
    let r = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then(|| TerminalSize { rows: ws.ws_row.into(), cols: ws.ws_col.into() })
}

/// This terminal in raw mode (every key goes to the command, which has a terminal of its own),
/// restored when dropped.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enable() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.0);
    }
}
