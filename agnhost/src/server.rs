//! The edge: sockets (HTTP/1.1 by hyper, UDP, raw TCP), the commands `/shell` runs, signals and
//! logs. Every answer is decided by the pure modules.
//!
//! The program is the container's first process (PID 1 of its PID namespace), which the kernel
//! spares every signal it has no handler for: each mode handles SIGTERM (and SIGINT) itself.

use crate::netexec::{self, Action, Context, Dial, Protocol};
use crate::{clock, kubia, Mode, Reply};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};

/// How long a dial of `/dial` may take (agnhost's client timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `mode` to its end; the process's exit code.
pub fn run(mode: Mode) -> i32 {
    match mode {
        Mode::Usage(text) => {
            print!("{text}");
            return 0;
        }
        Mode::Error(message) => {
            eprintln!("Error: {message}");
            return 1;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        match mode {
            Mode::Netexec(v) => netexec_main(v).await,
            Mode::ServeHostname(v) => serve_hostname(v).await,
            Mode::AgnhostPause => agnhost_pause().await,
            Mode::Pause => pause().await,
            Mode::Kubia { script } => kubia_main(&script).await,
            Mode::Usage(_) | Mode::Error(_) => unreachable!("handled above"),
        }
    })
}

/// Go's `log.Printf`: the date and time, then the message, on stderr.
fn log(message: &str) {
    eprintln!("{}{message}", clock::log_prefix(SystemTime::now()));
}

/// Go's `log.Fatalf`: log, exit 1.
fn fatal(message: &str) -> ! {
    log(message);
    std::process::exit(1)
}

/// The pod's name: the container's UTS namespace's host name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn signal_stream(kind: SignalKind) -> tokio::signal::unix::Signal {
    signal(kind).unwrap_or_else(|e| fatal(&format!("installing a signal handler: {e}")))
}

/// Go's `net.Listen("tcp", ":PORT")`, over IPv4 (emu's pods have no IPv6).
async fn listen_tcp(port: i64) -> TcpListener {
    let port = u16::try_from(port).unwrap_or_else(|_| fatal(&format!("listen tcp: address {port}: invalid port")));
    TcpListener::bind(("0.0.0.0", port)).await.unwrap_or_else(|e| fatal(&format!("listen tcp :{port}: bind: {}", errno_text(&e))))
}

/// An OS error as Go words it (`connection refused`), without Rust's `(os error N)`.
fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

type Handler = Arc<dyn Fn(Request<Incoming>, SocketAddr) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serves HTTP/1.1 on `listener`, each request answered by `handler`; `close`: one request per
/// connection (`Connection: close`).
async fn serve_http(listener: TcpListener, handler: Handler, close: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log(&format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let head = request.method() == hyper::Method::HEAD;
                let reply = handler(request, peer);
                async move { Ok::<_, Infallible>(response(reply.await, head, close)) }
            });
            let _ = http1::Builder::new()
                .keep_alive(!close)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(60))
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn response(reply: Reply, head: bool, close: bool) -> Response<Full<Bytes>> {
    let body = if head { Bytes::new() } else { Bytes::from(reply.body) };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(content_type) = reply.content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if reply.nosniff {
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn netexec_main(v: crate::flags::Values) -> i32 {
    if !v.text("tls-cert-file").is_empty() || v.int("sctp-port") != -1 {
        fatal("emu's agnhost netexec serves neither HTTPS (--tls-cert-file) nor SCTP (--sctp-port)");
    }
    let (http_port, udp_port) = (v.int("http-port"), v.int("udp-port"));
    let hostname = hostname();
    let udp_ready = Arc::new(AtomicBool::new(false));
    if udp_port != -1 {
        let addresses: Vec<String> = match v.text("udp-listen-addresses") {
            "" => vec!["0.0.0.0".into()],
            list => list.split(',').map(str::to_string).collect(),
        };
        for address in addresses {
            let Ok(port) = u16::try_from(udp_port) else {
                fatal(&format!("Error occurred: failed to resolve UDP address for port {udp_port}"))
            };
            let socket = UdpSocket::bind((address.as_str(), port)).await.unwrap_or_else(|e| {
                fatal(&format!("Error occurred: failed to create listener for UDP address {address}:{port}:{}", errno_text(&e)))
            });
            let shown = if address == "0.0.0.0" { "" } else { address.as_str() };
            log(&format!("Started UDP server on port {shown} {port}"));
            udp_ready.store(true, Ordering::SeqCst);
            tokio::spawn(udp_server(socket, hostname.clone()));
        }
    }
    log(&format!("Started HTTP server on port {http_port}"));
    let listener = listen_tcp(http_port).await;
    let started = Instant::now();
    let override_path = Some(v.text("http-override").to_string()).filter(|o| !o.is_empty());
    let handler: Handler = Arc::new(move |request, peer| {
        let ctx = Context {
            hostname: hostname.clone(),
            now: clock::go_time_string(SystemTime::now(), started.elapsed()),
            udp_ready: udp_ready.load(Ordering::SeqCst),
        };
        let uri = request.uri();
        let (line, action) = netexec::route(uri.path(), uri.query().unwrap_or(""), peer, override_path.as_deref(), &ctx);
        log(&line);
        Box::pin(perform(action))
    });
    let mut term = signal_stream(SignalKind::terminate());
    let mut int = signal_stream(SignalKind::interrupt());
    tokio::select! {
        _ = serve_http(listener, handler, false) => 1,
        // What a Go program without a handler for the signal does: exit with status 2.
        _ = term.recv() => 2,
        _ = int.recv() => 2,
    }
}

/// Carries out a netexec action; the answer.
async fn perform(action: Action) -> Reply {
    match action {
        Action::Reply(reply) => reply,
        Action::Dial(dial) => {
            let addr = match resolve(&dial).await {
                Ok(addr) => addr,
                Err(e) => return netexec::http_error(400, &format!("host and/or port param are invalid. {e}")),
            };
            let mut results = Vec::new();
            for _ in 0..dial.tries {
                results.push(match dial.protocol {
                    Protocol::Http => dial_http(&dial.request, addr).await,
                    Protocol::Udp => dial_udp(&dial.request, addr).await,
                });
            }
            netexec::dial_reply(&results)
        }
        Action::Shell(cmd) => match tokio::process::Command::new("/bin/sh").arg("-c").arg(&cmd).output().await {
            Ok(out) => {
                use std::os::unix::process::ExitStatusExt as _;
                let mut combined = String::from_utf8_lossy(&out.stdout).into_owned();
                combined.push_str(&String::from_utf8_lossy(&out.stderr));
                netexec::shell_reply(&combined, netexec::exit_error(out.status.code(), out.status.signal()).as_deref())
            }
            Err(e) => netexec::shell_reply("", Some(&format!("fork/exec /bin/sh: {}", errno_text(&e)))),
        },
        Action::Exit { code, wait, timeout } => {
            let show = |d: Duration| if d.is_zero() { "0s".to_string() } else { format!("{d:?}") };
            log(&format!(
                "Will begin shutdown in {}, allowing {} for connections to close, then will exit with {code}",
                show(wait),
                show(timeout)
            ));
            tokio::time::sleep(wait).await;
            // Go's graceful shutdown waits for this very request's connection, so it ends at
            // the timeout: the client gets no answer either way.
            tokio::time::sleep(timeout).await;
            std::process::exit(code)
        }
    }
}

/// `net.ResolveTCPAddr`/`ResolveUDPAddr` of `host:port` (a name through the pod's resolver).
async fn resolve(dial: &Dial) -> Result<SocketAddr, String> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(dial.host_port()).await.map_err(|e| e.to_string())?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.first().copied().ok_or_else(|| format!("no address for {}", dial.host_port()))
}

/// GET `http://ADDR/REQUEST`: the body, or Go's client error.
async fn dial_http(request: &str, addr: SocketAddr) -> Result<String, String> {
    let url = format!("http://{addr}/{request}");
    let get = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("Get {url:?}: dial tcp {addr}: connect: {}", errno_text(&e)))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("Get {url:?}: {e}"))?;
        tokio::spawn(connection);
        let get = Request::get(format!("/{request}"))
            .header(header::HOST, addr.to_string())
            .header(header::USER_AGENT, "Go-http-client/1.1")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("parse {url:?}: {e}"))?;
        let response = sender.send_request(get).await.map_err(|e| format!("Get {url:?}: {e}"))?;
        let body = response.into_body().collect().await.map_err(|e| format!("Get {url:?}: {e}"))?.to_bytes();
        Ok::<String, String>(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(DIAL_TIMEOUT, get)
        .await
        .unwrap_or_else(|_| Err(format!("Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)")))
}

/// Sends REQUEST to ADDR over UDP: the first datagram back, or agnhost's error.
async fn dial_udp(request: &str, addr: SocketAddr) -> Result<String, String> {
    let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(any).await.map_err(|e| format!("udp dial failed. err:{}", errno_text(&e)))?;
    socket.connect(addr).await.map_err(|e| format!("udp dial failed. err:dial udp {addr}: {}", errno_text(&e)))?;
    let local = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    socket
        .send(request.as_bytes())
        .await
        .map_err(|e| format!("udp connection write failed. err:write udp {local}->{addr}: write: {}", errno_text(&e)))?;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(DIAL_TIMEOUT, socket.recv(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Ok(_)) => Err("reading from udp connection failed. err:'<nil>'".into()),
        Ok(Err(e)) => Err(format!("reading from udp connection failed. err:'read udp {local}->{addr}: read: {}'", errno_text(&e))),
        Err(_) => Err(format!("reading from udp connection failed. err:'read udp {local}->{addr}: i/o timeout'")),
    }
}

async fn udp_server(socket: UdpSocket, hostname: String) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => fatal(&format!("Error occurred: failed accepting UDP connections:{}", errno_text(&e))),
        };
        let Some(answer) = netexec::udp_reply(&buf[..n], &hostname, peer) else {
            let text = String::from_utf8_lossy(&buf[..n]).trim().to_lowercase();
            if !text.is_empty() {
                log(&format!("Unknown UDP command received from {peer}: {text}"));
            }
            continue;
        };
        log(&format!("Sending UDP reply to {peer}"));
        if let Err(e) = socket.send_to(answer.as_bytes(), peer).await {
            log(&format!("Error occurred: failed to write to UDP client {peer}:{}", errno_text(&e)));
        }
    }
}

async fn serve_hostname(v: crate::flags::Values) -> i32 {
    let (tcp, udp, http, close, port) = (v.bool("tcp"), v.bool("udp"), v.bool("http"), v.bool("close"), v.int("port"));
    if http && (tcp || udp) {
        fatal("Can't server TCP/UDP mode and HTTP mode at the same time");
    }
    let hostname = hostname();
    let Ok(port16) = u16::try_from(port) else { fatal(&format!("Error from net.Listen(): listen tcp: address {port}: invalid port")) };
    if tcp {
        let listener = listen_tcp(port).await;
        let hostname = hostname.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            loop {
                match listener.accept().await {
                    Ok((mut conn, peer)) => {
                        log(&format!("TCP request from {peer}"));
                        let _ = conn.write_all(hostname.as_bytes()).await;
                    }
                    Err(e) => fatal(&format!("Error from Accept(): {e}")),
                }
            }
        });
    }
    if udp {
        let socket = UdpSocket::bind(("0.0.0.0", port16)).await.unwrap_or_else(|e| fatal(&format!("Error from ListenUDP(): {e}")));
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((_, peer)) => {
                        log(&format!("UDP request from {peer}"));
                        let _ = socket.send_to(hostname.as_bytes(), peer).await;
                    }
                    Err(e) => fatal(&format!("Error from ReadFrom(): {e}")),
                }
            }
        });
    }
    if http {
        let listener = listen_tcp(port).await;
        let hostname = hostname.clone();
        let handler: Handler = Arc::new(move |_request, peer| {
            log(&format!("HTTP request from {peer}"));
            let reply = Reply::text(200, hostname.clone());
            Box::pin(async move { reply })
        });
        tokio::spawn(serve_http(listener, handler, close));
    }
    log(&format!("Serving on port {port}."));
    signal_stream(SignalKind::terminate()).recv().await;
    log("Shutting down after receiving signal: terminated.");
    // agnhost then sleeps 60 s ("Awaiting pod deletion") until the kubelet kills it; ours ends
    // here, so that a deleted pod goes at once.
    log("Awaiting pod deletion.");
    0
}

/// agnhost's `pause`.
async fn agnhost_pause() -> i32 {
    println!("Paused");
    let mut term = signal_stream(SignalKind::terminate());
    let mut int = signal_stream(SignalKind::interrupt());
    tokio::select! {
        _ = int.recv() => 1,
        _ = term.recv() => 2,
    }
}

/// The pause image's pause.c: `psignal(sig, "Shutting down, got signal")`, exit 0.
async fn pause() -> i32 {
    let mut term = signal_stream(SignalKind::terminate());
    let mut int = signal_stream(SignalKind::interrupt());
    let name = tokio::select! {
        _ = int.recv() => "Interrupt",
        _ = term.recv() => "Terminated",
    };
    eprintln!("Shutting down, got signal: {name}");
    0
}

/// `node app.js` of the kubia images.
async fn kubia_main(script: &str) -> i32 {
    let path = std::env::current_dir().unwrap_or_else(|_| "/".into()).join(script);
    let source = match std::fs::read_to_string(&path) {
        Ok(source) => source,
        Err(_) => {
            eprintln!("Error: Cannot find module '{}'", path.display());
            return 1;
        }
    };
    let app = match kubia::recognize(&source) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return 1;
        }
    };
    println!("{}", kubia::STARTING);
    let listener = listen_tcp(8080).await;
    let hostname = hostname();
    let requests = Arc::new(AtomicU64::new(0));
    let handler: Handler = Arc::new(move |_request, peer| {
        println!("{}", kubia::log_line(peer));
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = kubia::answer(app, n, &hostname);
        Box::pin(async move { reply })
    });
    let mut term = signal_stream(SignalKind::terminate());
    let mut int = signal_stream(SignalKind::interrupt());
    // node, as PID 1, ignores SIGTERM and waits for the kubelet's SIGKILL at the end of the
    // grace period; ours goes at once (see the crate's notes in docs/architecture.md).
    tokio::select! {
        _ = serve_http(listener, handler, false) => 1,
        _ = term.recv() => 0,
        _ = int.recv() => 0,
    }
}
