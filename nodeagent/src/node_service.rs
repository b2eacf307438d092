//! Service Node of the gRPC API: what the controller relays to the owner of a node (as
//! kube-apiserver to kubelet). Every node agent serves it on `nodes/<node>/agent.sock` and
//! registers that endpoint in its Node object ([`emu_proto::AGENT_ENDPOINT_ANNOTATION`]); the cloud daemon serves
//! the commands of the outside world on `outside.sock`.
//!
//! - `Exec`: a command in a container (`emu-nodeagent nsexec`, which joins the container's
//!   namespaces and takes its environment), or on the node itself, with its stdio streamed:
//!   pipes, or a pseudo-terminal whose size follows the user's. The exit code passes through.
//! - `Logs`: a container's log file; `follow` keeps sending until the pod's directory is gone.
//! - `PortForward`: one connection to `localhost:PORT` inside the pod's network namespace.
//! - `RestoreRoutes`: the node's routes that the kernel dropped while its links were down.

use crate::sandbox;
use crate::sandbox::logfile;
use emu_api::naming;
use emu_logic::cluster::Paths;
use emu_proto::api_client::ApiClient;
use emu_proto::exec_input::Input;
use emu_proto::exec_output::Output;
use emu_proto::node_server::{Node, NodeServer};
use emu_proto::{
    ExecInput, ExecOutput, ExecStart, LogsChunk, LogsRequest, PortForwardInput, PortForwardOutput, RestoreRoutesRequest,
    RestoreRoutesResponse, TerminalSize,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// After a command has ended, what it wrote is still forwarded until nothing more comes for this
/// long: a process it left running in the background may hold its output open.
const DRAIN_IDLE: Duration = Duration::from_millis(100);

/// How often a followed log is read for what was added.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

type OutStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type Sender<T> = mpsc::Sender<Result<T, Status>>;

/// Where the service runs: a node (with what `RestoreRoutes` needs), or the outside world.
pub enum Place {
    Node {
        name: String,
        /// The node's network namespace.
        netns: PathBuf,
        service_cidr: String,
        /// The controller's API: the Node objects for the routes.
        client: Box<ApiClient<Channel>>,
    },
    Outside,
}

pub struct NodeService {
    paths: Paths,
    cluster: String,
    place: Place,
    /// This executable, for `nsexec`.
    exe: PathBuf,
}

impl NodeService {
    pub fn new(cluster: &str, place: Place) -> anyhow::Result<NodeService> {
        Ok(NodeService { paths: Paths::new(cluster), cluster: cluster.to_string(), place, exe: std::env::current_exe()? })
    }

    /// The same, with the cluster's runtime directory at `root` (tests).
    pub fn with_root(self, root: PathBuf) -> NodeService {
        NodeService { paths: Paths { root }, ..self }
    }

    fn node(&self) -> Result<&str, Status> {
        match &self.place {
            Place::Node { name, .. } => Ok(name),
            Place::Outside => Err(Status::failed_precondition("the outside world has no pods")),
        }
    }

    /// The directory of one of this node's pods, by uid.
    fn pod_dir(&self, namespace: &str, pod: &str, uid: &str) -> Result<PathBuf, Status> {
        let node = self.node()?;
        let dir = self.paths.pod_dir(node, uid);
        if uid.is_empty() || uid.contains('/') || !dir.is_dir() {
            return Err(Status::not_found(format!("pod {namespace}/{pod} has no sandbox on node {node}")));
        }
        Ok(dir)
    }

    /// The command an exec runs: `nsexec` into a container, or a program of the node (or of the
    /// outside world) with the variables the caller added.
    fn command(&self, start: &ExecStart) -> Result<(std::process::Command, Signaled), Status> {
        if !start.pod.is_empty() {
            let dir = self.pod_dir(&start.namespace, &start.pod, &start.pod_uid)?;
            if start.command.is_empty() {
                return Err(Status::invalid_argument("exec: a command is required"));
            }
            let mut cmd = std::process::Command::new(&self.exe);
            cmd.arg("nsexec").arg(&dir).arg(&start.container);
            if start.tty {
                cmd.arg("--tty");
            }
            cmd.arg("--").args(&start.command);
            return Ok((cmd, Signaled::AddTo128));
        }
        let here = match &self.place {
            Place::Node { name, .. } if *name == start.node => name.clone(),
            Place::Outside if start.outside => "outside".to_string(),
            Place::Node { name, .. } => {
                return Err(Status::invalid_argument(format!("this is the agent of node {name}, not {}", start.node)))
            }
            Place::Outside => return Err(Status::invalid_argument("this is the outside world")),
        };
        let shell = start.env.get("SHELL").filter(|s| Path::new(s).is_file()).cloned().unwrap_or_else(|| "/bin/bash".into());
        let argv = if start.command.is_empty() { vec![shell] } else { start.command.clone() };
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).envs(&start.env);
        if let Place::Node { name, .. } = &self.place {
            cmd.env("EMU_NODE", name);
        }
        if start.command.is_empty() {
            cmd.env("PS1", format!("root@{here}:\\w# "));
        }
        let wd = Path::new(&start.working_dir);
        cmd.current_dir(if wd.is_absolute() && wd.is_dir() { wd } else { Path::new("/") });
        Ok((cmd, Signaled::One))
    }

    /// Attaches to a container's own process: its console ([`sandbox::console`]) takes the
    /// caller's input and window sizes; the output is the terminal's, or for other containers
    /// what their log gets from now on. The attach ends with the container's current run (the
    /// relay closes the connection), or with the caller. A container without a console (neither
    /// `stdin` nor `tty`) can only be watched, until the caller goes.
    async fn attach(&self, start: ExecStart, mut inbound: Streaming<ExecInput>) -> Result<Response<OutStream<ExecOutput>>, Status> {
        use sandbox::console;
        let dir = self.pod_dir(&start.namespace, &start.pod, &start.pod_uid)?;
        let socket = dir.join(console::socket_name(&start.container));
        let console = match connect_console(&dir, &start.container).await {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::ConnectionRefused => None,
            Err(e) => return Err(Status::internal(format!("attaching to {}: {e}", socket.display()))),
        };
        let terminal = start.tty && console.is_some();
        let (tx, rx) = mpsc::channel(32);
        let (mut from_console, mut to_console) = match console {
            Some(c) => {
                let (r, w) = c.into_split();
                (Some(r), Some(w))
            }
            None => (None, None),
        };
        if let Some(size) = start.size.filter(|_| terminal) {
            if let Some(w) = to_console.as_mut() {
                let _ = w.write_all(&console::frames(console::FRAME_RESIZE, &resize_payload(&size))).await;
            }
        }
        // Where the log ends now: the output of the input about to be passed on comes after it.
        let log = sandbox::log_path(&dir, &start.container);
        let log_end = std::fs::metadata(&log).map_or(0, |m| m.len());
        // The caller's input and window sizes, to the console.
        let with_stdin = start.stdin;
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let Some(w) = to_console.as_mut() else { continue };
                let frames = match m.input {
                    Some(Input::Stdin(data)) => console::frames(console::FRAME_INPUT, &data),
                    Some(Input::Resize(size)) if terminal => console::frames(console::FRAME_RESIZE, &resize_payload(&size)),
                    _ => continue,
                };
                if w.write_all(&frames).await.is_err() {
                    return;
                }
            }
            // The caller's input ended (kubectl's stdin closed): a stdinOnce container's ends too.
            if let Some(w) = to_console.as_mut().filter(|_| with_stdin) {
                let _ = w.write_all(&[console::FRAME_INPUT_END, 0, 0]).await;
            }
        });
        tokio::spawn(async move {
            let ended = match from_console.as_mut() {
                // A terminal's output comes on the connection, which closes with the run.
                Some(r) if terminal => {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break true,
                            Ok(n) => {
                                if tx.send(Ok(ExecOutput { output: Some(Output::Stdout(buf[..n].to_vec())) })).await.is_err() {
                                    break false;
                                }
                            }
                        }
                    }
                }
                // Other output is the log's; the connection's end is the run's.
                console => follow_log_until(&dir, &log, log_end, console, &tx).await,
            };
            if ended {
                let _ = tx.send(Ok(ExecOutput { output: Some(Output::ExitCode(0)) })).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn routes(&self) -> Result<(&str, &Path, &str, ApiClient<Channel>), Status> {
        match &self.place {
            Place::Node { name, netns, service_cidr, client } => Ok((name, netns, service_cidr, (**client).clone())),
            Place::Outside => Err(Status::failed_precondition("the outside world has no routes of a node")),
        }
    }
}

/// The exit code of a command a signal killed: 128 + its number, as a shell reports it (and
/// `emu exec` always did); 1 for a command on a node or outside, as `emu ssh` always did.
#[derive(Clone, Copy)]
enum Signaled {
    AddTo128,
    One,
}

/// Serves `service` on the Unix socket `socket` (replacing one a previous agent left) until the
/// process ends.
pub async fn serve(service: NodeService, socket: PathBuf) {
    if let Err(e) = try_serve(service, &socket).await {
        tracing::error!(socket = %socket.display(), error = %format!("{e:#}"), "serving service Node failed");
    }
}

async fn try_serve(service: NodeService, socket: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %socket.display(), "serving exec, logs, port-forward");
    tonic::transport::Server::builder()
        .add_service(NodeServer::new(service))
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
        .await?;
    Ok(())
}

/// Serves service Node on a machine that joined a cluster: over TLS on `listener` (in the
/// machine's underlay), to the controller only (its client certificate of the cluster CA, user
/// `kube-apiserver-kubelet-client`), as kubelet's port 10250 serves kube-apiserver.
pub async fn serve_tls(service: NodeService, listener: tokio::net::TcpListener, tls: std::sync::Arc<rustls::ServerConfig>) {
    let incoming = emu_proto::transport::incoming(listener, tokio_rustls::TlsAcceptor::from(tls));
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(emu_proto::transport::KEEP_ALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(emu_proto::transport::KEEP_ALIVE_TIMEOUT))
        .add_service(NodeServer::with_interceptor(service, only_the_controller))
        .serve_with_incoming(incoming)
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "serving service Node over TLS failed");
    }
}

/// Lets through only the controller's requests.
fn only_the_controller(req: Request<()>) -> Result<Request<()>, Status> {
    let peer = req.extensions().get::<emu_proto::transport::TlsPeer>();
    let user = peer.and_then(|p| p.certificate.as_ref()).and_then(|c| emu_proto::x509::subject_names(c)).and_then(|(cn, _)| cn);
    if user.as_deref() == Some(emu_proto::transport::CONTROLLER_CLIENT_USER) {
        return Ok(req);
    }
    let addr = peer.and_then(|p| p.addr).map(|a| a.to_string()).unwrap_or_default();
    tracing::warn!(peer = %addr, user = user.as_deref().unwrap_or("(no certificate)"), "service Node refused: only the controller may use it");
    Err(Status::permission_denied("only the cluster's controller may use a node's agent"))
}

#[tonic::async_trait]
impl Node for NodeService {
    type ExecStream = OutStream<ExecOutput>;
    type LogsStream = OutStream<LogsChunk>;
    type PortForwardStream = OutStream<PortForwardOutput>;

    async fn exec(&self, req: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = req.into_inner();
        let Some(ExecInput { input: Some(Input::Start(start)) }) = inbound.message().await? else {
            return Err(Status::invalid_argument("exec: the first message must be ExecStart"));
        };
        if start.attach {
            return self.attach(start, inbound).await;
        }
        let (cmd, signaled) = self.command(&start)?;
        let what = start.command.first().cloned().unwrap_or_else(|| "a shell".into());
        // nsexec makes its command the terminal's session leader itself, inside the container.
        let leader = start.pod.is_empty();
        let session = if start.tty { Session::pty(cmd, start.size, leader)? } else { Session::pipes(cmd, start.stdin)? };
        tracing::debug!(pod = %start.pod, node = %start.node, command = %what, tty = start.tty, "exec");
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(session.run(inbound, tx, signaled));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let r = req.into_inner();
        let dir = self.pod_dir(&r.namespace, &r.pod, &r.pod_uid)?;
        let path = if r.previous { sandbox::previous_log_path(&dir, &r.container) } else { sandbox::log_path(&dir, &r.container) };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(send_log(dir, path, r, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn port_forward(&self, req: Request<Streaming<PortForwardInput>>) -> Result<Response<Self::PortForwardStream>, Status> {
        use emu_proto::port_forward_input::Input as PfInput;
        let mut inbound = req.into_inner();
        let Some(PortForwardInput { input: Some(PfInput::Start(start)) }) = inbound.message().await? else {
            return Err(Status::invalid_argument("port-forward: the first message must be PortForwardStart"));
        };
        self.pod_dir(&start.namespace, &start.pod, &start.pod_uid)?;
        let port = u16::try_from(start.port).map_err(|_| Status::invalid_argument(format!("port {} out of range", start.port)))?;
        let netns = emu_host::net::netns_path(&naming::netns_pod(&self.cluster, &start.pod_uid));
        let upstream = connect_in(netns, port).await?;
        let (mut up_read, mut up_write) = upstream.into_split();
        let (tx, rx) = mpsc::channel(16);
        // Client → pod; the end of the client's side ends the pod's writing side.
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(PfInput::Data(d)) = m.input {
                    if up_write.write_all(&d).await.is_err() {
                        break;
                    }
                }
            }
            let _ = up_write.shutdown().await;
        });
        // Pod → client, until the pod's side ends.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match up_read.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(Ok(PortForwardOutput { data: buf[..n].to_vec() })).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::aborted(format!("reading from the pod: {e}")))).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn restore_routes(&self, _req: Request<RestoreRoutesRequest>) -> Result<Response<RestoreRoutesResponse>, Status> {
        let (me, netns, service_cidr, mut client) = self.routes()?;
        let nodes = client
            .list(emu_proto::ListRequest { kind: "Node".into(), ..Default::default() })
            .await?
            .into_inner()
            .items
            .iter()
            .filter_map(|o| serde_json::from_str(&o.json).ok())
            .collect::<Vec<serde_json::Value>>();
        let nodes = crate::routes::nodes(nodes.iter());
        crate::routes::restore_routes(netns, service_cidr, nodes.iter(), me)
            .await
            .map_err(|e| Status::internal(format!("putting back the routes of node {me}: {e:#}")))?;
        tracing::info!(nodes = nodes.iter().filter(|n| n.metadata.name.as_deref() != Some(me)).count(), "routes put back");
        Ok(Response::new(RestoreRoutesResponse {}))
    }
}

/// Connects to `127.0.0.1:port` inside the network namespace `netns`: the socket is made by a
/// thread that entered it (a socket keeps the namespace it was made in).
async fn connect_in(netns: PathBuf, port: u16) -> Result<tokio::net::TcpStream, Status> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = emu_host::net::enter_netns(&netns)
            .map_err(|e| format!("entering the pod's network namespace: {e}"))
            .and_then(|()| {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map_err(|e| format!("failed to connect to localhost:{port} inside the pod: {e}"))
            })
            .and_then(|s| s.set_nonblocking(true).map(|()| s).map_err(|e| e.to_string()));
        let _ = tx.send(r);
    });
    let stream = rx.await.map_err(|_| Status::internal("the connecting thread ended"))?.map_err(Status::unavailable)?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| Status::internal(e.to_string()))
}

/// Sends a log file (its last `tail` lines), then with `follow` what is added to it, until the
/// pod's directory is gone or the caller is; with the request's `timestamps` and `since`, lines
/// are stamped or left out by the times the log keeps beside it ([`sandbox::logfile`]).
async fn send_log(dir: PathBuf, path: PathBuf, r: LogsRequest, tx: Sender<LogsChunk>) {
    let since = (r.since_unix_nanos != 0).then_some(r.since_unix_nanos);
    let written = tokio::fs::metadata(&path).await.ok().and_then(|m| m.modified().ok());
    let fallback = written.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64);
    let mut lines = logfile::Lines::new(r.timestamps, since, fallback);
    let times = logfile::times_path(&path);
    let (mut times_offset, mut offset) = (0u64, 0u64);
    if lines.needs_times() {
        lines.add_times(&logfile::parse_times(&read_from(&times, &mut times_offset).await.unwrap_or_default()));
    }
    let text = read_from(&path, &mut offset).await.unwrap_or_default();
    let start = usize::try_from(r.tail_lines).map_or(0, |n| logfile::tail_start(&text, n));
    let data = lines.feed(start as u64, &text[start..]);
    if !data.is_empty() && tx.send(Ok(LogsChunk { data })).await.is_err() {
        return;
    }
    if !r.follow {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = tx.closed() => return,
        }
        if !dir.exists() {
            return;
        }
        // A shorter log is a new run's: its lines and times start over.
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() < offset) {
            lines.restart();
            (offset, times_offset) = (0, 0);
        }
        let Ok(data) = read_from(&path, &mut offset).await else { continue };
        if data.is_empty() {
            continue;
        }
        if lines.needs_times() {
            lines.add_times(&logfile::parse_times(&read_from(&times, &mut times_offset).await.unwrap_or_default()));
        }
        let data = lines.feed(offset - data.len() as u64, &data);
        if !data.is_empty() && tx.send(Ok(LogsChunk { data })).await.is_err() {
            return;
        }
    }
}

/// What `path` holds past `offset` (from the start when it shrank: a new run's log), moving
/// `offset` to its end. Whole records only for a times file: what a reader takes is a multiple
/// of 16 bytes past a multiple of 16.
async fn read_from(path: &Path, offset: &mut u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    if len < *offset {
        *offset = 0;
    }
    let mut buf = Vec::new();
    if len > *offset {
        f.seek(std::io::SeekFrom::Start(*offset)).await?;
        f.read_to_end(&mut buf).await?;
        if path.extension().is_some_and(|e| e == "times") {
            buf.truncate(buf.len() / 16 * 16);
        }
        *offset += buf.len() as u64;
    }
    Ok(buf)
}

/// Connects to the console of container `name` in the pod's directory `dir`, through the
/// directory's descriptor: its path may be longer than a socket's path may be.
async fn connect_console(dir: &Path, name: &str) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(dir)?;
    let path = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), sandbox::console::socket_name(name));
    tokio::net::UnixStream::connect(path).await
}

fn resize_payload(size: &TerminalSize) -> [u8; 4] {
    let ws = winsize(size);
    let (r, c) = (ws.ws_row.to_be_bytes(), ws.ws_col.to_be_bytes());
    [r[0], r[1], c[0], c[1]]
}

/// What `log` gets past `offset`, sent as stdout, until `console`'s connection closes (the run
/// ended: true), or without one until the pod or the caller is gone (false).
async fn follow_log_until(
    dir: &Path,
    log: &Path,
    mut offset: u64,
    mut console: Option<&mut tokio::net::unix::OwnedReadHalf>,
    tx: &Sender<ExecOutput>,
) -> bool {
    let mut byte = [0u8; 1];
    loop {
        let closed = async {
            match console.as_mut() {
                Some(c) => {
                    let _ = c.read(&mut byte).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let ended = tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => false,
            _ = closed => true,
            _ = tx.closed() => return false,
        };
        if !dir.exists() {
            return false;
        }
        if let Ok(data) = read_from(log, &mut offset).await {
            if !data.is_empty() && tx.send(Ok(ExecOutput { output: Some(Output::Stdout(data)) })).await.is_err() {
                return false;
            }
        }
        if ended {
            return true;
        }
    }
}

/// A running command and its stdio.
struct Session {
    child: tokio::process::Child,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The terminal's master side, for resizing.
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
}

fn spawn_error(e: std::io::Error) -> Status {
    Status::internal(format!("starting the command: {e}"))
}

impl Session {
    /// Stdin (or nothing), stdout and stderr as pipes.
    fn pipes(mut cmd: std::process::Command, stdin: bool) -> Result<Session, Status> {
        use std::process::Stdio;
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = tokio::process::Command::from(cmd).kill_on_drop(true).spawn().map_err(spawn_error)?;
        let stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
        let stdout = Box::new(child.stdout.take().ok_or_else(|| Status::internal("no stdout"))?);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
        Ok(Session { child, stdin, stdout, stderr, pty: None })
    }

    /// A pseudo-terminal of `size` as stdin, stdout and stderr; with `leader`, the command is its
    /// session leader with the terminal as its controlling one (a shell's job control and Ctrl-C).
    fn pty(mut cmd: std::process::Command, size: Option<TerminalSize>, leader: bool) -> Result<Session, Status> {
        let pty = nix::pty::openpty(size.map(|s| winsize(&s)).as_ref(), None)
            .map_err(|e| Status::internal(format!("allocating a terminal: {e}")))?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Status::internal(format!("allocating a terminal: {e}")));
        cmd.stdin(dup(&pty.slave)?).stdout(dup(&pty.slave)?).stderr(pty.slave);
        if leader {
            // SAFETY: runs in the forked child before exec; setsid and ioctl are async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                    Ok(())
                });
            }
        }
        let child = tokio::process::Command::from(cmd).kill_on_drop(true).spawn().map_err(spawn_error)?;
        nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(|e| Status::internal(format!("the terminal: {e}")))?;
        // SAFETY: an OwnedFd is a valid open descriptor that stays the same until it is dropped
        // with the AsyncFd that owns it.
        let master = unsafe { AsyncFd::register(pty.master) }.map_err(|e| Status::internal(format!("the terminal: {e}")))?;
        let master = Arc::new(master);
        Ok(Session {
            child,
            stdin: Some(Box::new(Pty(master.clone()))),
            stdout: Box::new(Pty(master.clone())),
            stderr: None,
            pty: Some(master),
        })
    }

    /// Feeds stdin from `inbound`, sends stdout and stderr, then the exit code. The command is
    /// killed when the caller goes away.
    async fn run(self, mut inbound: Streaming<ExecInput>, tx: Sender<ExecOutput>, signaled: Signaled) {
        let Session { mut child, stdin, stdout, stderr, pty } = self;
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        let out = tokio::spawn(pump(stdout, tx.clone(), Output::Stdout, exited.clone()));
        let err = stderr.map(|e| tokio::spawn(pump(e, tx.clone(), Output::Stderr, exited.clone())));
        let input = tokio::spawn(async move {
            let mut stdin = stdin;
            while let Ok(Some(m)) = inbound.message().await {
                match m.input {
                    Some(Input::Stdin(data)) => {
                        if let Some(w) = stdin.as_mut() {
                            if w.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Some(Input::Resize(size)) => {
                        if let Some(master) = &pty {
                            resize(master, &size);
                        }
                    }
                    _ => {}
                }
            }
            // The end of the caller's stream: the command's stdin ends (a terminal keeps it: the
            // user ends a terminal's input with its own keys).
            if let Some(mut w) = stdin.filter(|_| pty.is_none()) {
                let _ = w.shutdown().await;
            }
        });
        let status = tokio::select! {
            s = child.wait() => s,
            // The caller went away: the command goes too (kill_on_drop; nsexec's command follows
            // it by its parent-death signal).
            _ = tx.closed() => {
                input.abort();
                return;
            }
        };
        let _ = exited_tx.send(true);
        let _ = out.await;
        if let Some(err) = err {
            let _ = err.await;
        }
        input.abort();
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| match (signaled, std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Signaled::AddTo128, Some(sig)) => 128 + sig,
                _ => 1,
            }),
            Err(e) => {
                let _ = tx.send(Err(Status::internal(format!("waiting for the command: {e}")))).await;
                return;
            }
        };
        let _ = tx.send(Ok(ExecOutput { output: Some(Output::ExitCode(code)) })).await;
    }
}

/// Sends what `r` gives as `wrap` messages until its end, or, once the command has exited, until
/// nothing has come for [`DRAIN_IDLE`].
async fn pump(
    mut r: Box<dyn AsyncRead + Send + Unpin>,
    tx: Sender<ExecOutput>,
    wrap: fn(Vec<u8>) -> Output,
    mut exited: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let read = if *exited.borrow() {
            match tokio::time::timeout(DRAIN_IDLE, r.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                read = r.read(&mut buf) => read,
                changed = exited.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(Ok(ExecOutput { output: Some(wrap(buf[..n].to_vec())) })).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn winsize(s: &TerminalSize) -> nix::pty::Winsize {
    let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    nix::pty::Winsize { ws_row: clamp(s.rows), ws_col: clamp(s.cols), ws_xpixel: 0, ws_ypixel: 0 }
}

fn resize(master: &AsyncFd<OwnedFd>, size: &TerminalSize) {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which lives for the call.
    unsafe {
        libc::ioctl(master.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// The master side of a pseudo-terminal, non-blocking. Reading it fails with EIO once the
/// command side is closed: that is its end.
struct Pty(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for Pty {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(std::io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_proto::node_client::NodeClient;

    /// Serves `service` on a socket in `dir`; a client of it.
    async fn client(service: NodeService, dir: &Path) -> NodeClient<Channel> {
        let socket = dir.join("node.sock");
        tokio::spawn(serve(service, socket.clone()));
        for _ in 0..100 {
            if let Ok(c) = emu_proto::unix_channel(&socket).await {
                return NodeClient::new(c);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no server at {}", socket.display());
    }

    fn outside(dir: &Path) -> NodeService {
        NodeService::new("t", Place::Outside).unwrap().with_root(dir.to_path_buf())
    }

    /// What a command sent: (stdout, stderr, exit code), `input` on its stdin.
    async fn run(client: &mut NodeClient<Channel>, start: ExecStart, input: &[&str]) -> (String, String, Option<i32>) {
        let mut messages = vec![ExecInput { input: Some(Input::Start(start)) }];
        messages.extend(input.iter().map(|i| ExecInput { input: Some(Input::Stdin(i.as_bytes().to_vec())) }));
        let mut out = client.exec(tokio_stream::iter(messages)).await.unwrap().into_inner();
        let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), None);
        while let Some(m) = out.message().await.unwrap() {
            match m.output {
                Some(Output::Stdout(d)) => stdout.push_str(&String::from_utf8_lossy(&d)),
                Some(Output::Stderr(d)) => stderr.push_str(&String::from_utf8_lossy(&d)),
                Some(Output::ExitCode(c)) => code = Some(c),
                None => {}
            }
        }
        (stdout, stderr, code)
    }

    fn sh(script: &str) -> ExecStart {
        ExecStart { outside: true, command: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
    }

    #[tokio::test]
    async fn a_command_streams_its_output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = client(outside(dir.path()), dir.path()).await;
        assert_eq!(run(&mut c, sh("echo out; echo err >&2; exit 3"), &[]).await, ("out\n".into(), "err\n".into(), Some(3)));
        // Killed by a signal: 1, as `emu ssh` has always said for a command on a node.
        assert_eq!(run(&mut c, sh("kill -9 $$"), &[]).await.2, Some(1));
        // Stdin only when asked for; its end is the end of the caller's stream.
        assert_eq!(run(&mut c, sh("cat"), &["ignored"]).await.0, "");
        let with_stdin = ExecStart { stdin: true, ..sh("cat; echo end") };
        assert_eq!(run(&mut c, with_stdin, &["a\n", "b\n"]).await.0, "a\nb\nend\n");
        // The caller's variables and directory (where it exists here).
        let mut start = sh("echo $GREETING; pwd");
        start.env.insert("GREETING".into(), "hello".into());
        start.working_dir = dir.path().display().to_string();
        assert_eq!(run(&mut c, start, &[]).await.0, format!("hello\n{}\n", dir.path().display()));
        let start = ExecStart { working_dir: "/no/such/dir".into(), ..sh("pwd") };
        assert_eq!(run(&mut c, start, &[]).await.0, "/\n");
    }

    #[tokio::test]
    async fn a_command_that_leaves_a_process_behind_still_returns() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = client(outside(dir.path()), dir.path()).await;
        let started = std::time::Instant::now();
        assert_eq!(run(&mut c, sh("sleep 5 & echo started"), &[]).await, ("started\n".into(), String::new(), Some(0)));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_terminal_of_the_callers_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = client(outside(dir.path()), dir.path()).await;
        let start =
            ExecStart { tty: true, size: Some(TerminalSize { rows: 24, cols: 100 }), ..sh("test -t 0 && echo terminal; stty size") };
        let (out, err, code) = run(&mut c, start, &[]).await;
        assert_eq!((out.as_str(), err.as_str(), code), ("terminal\r\n24 100\r\n", "", Some(0)));
    }

    #[tokio::test]
    async fn logs_tail_and_follow_until_the_pod_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("pod");
        std::fs::create_dir_all(pod.join("logs")).unwrap();
        let log = sandbox::log_path(&pod, "c");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let request = LogsRequest { follow: true, tail_lines: 2, ..Default::default() };
        let follow = tokio::spawn(send_log(pod.clone(), log.clone(), request, tx));
        assert_eq!(rx.recv().await.unwrap().unwrap().data, b"b\nc\n");
        std::io::Write::write_all(&mut std::fs::OpenOptions::new().append(true).open(&log).unwrap(), b"d\n").unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap().data, b"d\n");
        std::fs::remove_dir_all(&pod).unwrap();
        tokio::time::timeout(Duration::from_secs(2), follow).await.unwrap().unwrap();
        assert!(rx.recv().await.is_none(), "the stream ends with the pod");
    }

    #[tokio::test]
    async fn logs_with_timestamps_and_since_from_the_times_beside_the_log() {
        const SECOND: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("pod");
        std::fs::create_dir_all(pod.join("logs")).unwrap();
        let log = sandbox::log_path(&pod, "c");
        logfile::append(&log, b"early\n", 1_700_000_000 * SECOND).unwrap();
        logfile::append(&log, b"late\nlater\n", 1_700_000_060 * SECOND + 5).unwrap();
        let all = |request: LogsRequest| {
            let (pod, log) = (pod.clone(), log.clone());
            async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel(16);
                send_log(pod, log, request, tx).await;
                let mut out = Vec::new();
                while let Some(Ok(chunk)) = rx.recv().await {
                    out.extend(chunk.data);
                }
                String::from_utf8(out).unwrap()
            }
        };
        let stamped = all(LogsRequest { timestamps: true, tail_lines: -1, ..Default::default() }).await;
        assert_eq!(stamped, "2023-11-14T22:13:20Z early\n2023-11-14T22:14:20.000000005Z late\n2023-11-14T22:14:20.000000005Z later\n");
        let since = LogsRequest { since_unix_nanos: 1_700_000_030 * SECOND, tail_lines: -1, ..Default::default() };
        assert_eq!(all(since).await, "late\nlater\n");
        let tail = LogsRequest { timestamps: true, tail_lines: 1, ..Default::default() };
        assert_eq!(all(tail).await, "2023-11-14T22:14:20.000000005Z later\n");
    }

    #[tokio::test]
    async fn only_the_nodes_own_pods() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = client(outside(dir.path()), dir.path()).await;
        let request = LogsRequest { namespace: "default".into(), pod: "web".into(), pod_uid: "u1".into(), ..Default::default() };
        assert_eq!(c.logs(request).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
        let start = ExecStart { node: "node-1".into(), command: vec!["true".into()], ..Default::default() };
        let e = c.exec(tokio_stream::iter(vec![ExecInput { input: Some(Input::Start(start)) }])).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (tonic::Code::InvalidArgument, "this is the outside world"));
    }
}
