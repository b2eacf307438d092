//! Runs one probe action ([`emu_logic::probe::ProbeAction`]) for a container, as kubelet's prober
//! does. When to probe and what the results mean is decided by `emu_logic::probe::ProbeTracker`.
//!
//! The agent lives in its node's network namespace, from which pod IPs are routed, so HTTP and
//! TCP probes connect from here, like kubelet's do from the node. Exec probes run the command
//! inside the container through the agent's own `nsexec` personality, exactly as `emu exec`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use emu_logic::probe::{ProbeAction, USER_AGENT};
use http_body_util::Empty;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Where an exec probe runs: `<exe> nsexec <pod_dir> <container> -- <command>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    /// The emu-nodeagent executable (the agent's `std::env::current_exe()`).
    pub nodeagent_exe: PathBuf,
    /// The pod's directory (holds `sandbox.json` and the shim's `state.json`).
    pub pod_dir: PathBuf,
    pub container: String,
}

/// Runs `action` once against the pod at `pod_ip`; true on success. Everything, including
/// connecting and reading the answer, must finish within `timeout` (a slow probe is a failed
/// probe). An exec action without `exec_target` fails. Failures are logged at debug level with
/// their reason; kubelet records them as events, which emu does not have yet.
pub async fn run_probe(action: &ProbeAction, pod_ip: Ipv4Addr, exec_target: Option<ExecTarget>, timeout: Duration) -> bool {
    let result = match action {
        ProbeAction::HttpGet { host, port, path, scheme, headers } => {
            let target = host.as_deref();
            match tokio::time::timeout(timeout, http_get(target, pod_ip, *port, path, scheme, headers)).await {
                Ok(r) => r,
                Err(_) => Err(format!("GET {path} on port {port}: timed out after {timeout:?}")),
            }
        }
        ProbeAction::TcpSocket { host, port } => match tokio::time::timeout(timeout, connect(host.as_deref(), pod_ip, *port)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("dial tcp on port {port}: timed out after {timeout:?}")),
        },
        ProbeAction::Exec { command } => match exec_target {
            Some(target) => exec(&target, command, timeout).await,
            None => Err("exec probe without a container to run in".to_string()),
        },
    };
    match result {
        Ok(()) => true,
        Err(reason) => {
            tracing::debug!(%pod_ip, %reason, "probe failed");
            false
        }
    }
}

/// Connects to `host` (an IP, or a name resolved from the node) or else the pod IP.
async fn connect(host: Option<&str>, pod_ip: Ipv4Addr, port: u16) -> Result<TcpStream, String> {
    let addr: SocketAddr = match host {
        None => SocketAddr::new(IpAddr::V4(pod_ip), port),
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((h, port))
                .await
                .map_err(|e| format!("resolving probe host {h:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("probe host {h:?} has no address"))?,
        },
    };
    TcpStream::connect(addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// kubelet's httpGet probe: success when the status is 200..=399. Redirects are not followed
/// (kubelet follows them to the same host; a 3xx counts as success either way here). HTTPS does
/// the same GET over TLS without verifying the certificate, as kubelet does
/// (`InsecureSkipVerify`).
async fn http_get(
    host: Option<&str>,
    pod_ip: Ipv4Addr,
    port: u16,
    path: &str,
    scheme: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let target = host.map_or_else(|| pod_ip.to_string(), str::to_string);
    let request = probe_request(&target, port, path, headers).map_err(|e| format!("GET {path}: {e}"))?;
    let stream = connect(host, pod_ip, port).await?;
    let status = if scheme.eq_ignore_ascii_case("HTTPS") {
        // Sent as SNI when it is a host name (rustls sends none for an IP); the certificate is not
        // checked against it.
        let name = ServerName::try_from(target.clone()).map_err(|e| format!("GET {path}: probe host {target:?}: {e}"))?;
        let tls = emu_proto::insecure_tls::connector()
            .connect(name, stream)
            .await
            .map_err(|e| format!("GET {path}: TLS handshake with {target}:{port}: {e}"))?;
        get(tls, request).await
    } else {
        get(stream, request).await
    };
    let status = status.map_err(|e| format!("GET {path}: {e}"))?;
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {}", status.as_u16()))
    }
}

/// The request kubelet would send to `host:port`: the probe's headers override `Host`,
/// `User-Agent` and `Accept` (names compared case-insensitively); keep-alives are off.
fn probe_request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Result<Request<Empty<Bytes>>, hyper::http::Error> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut request = Request::get(path);
    if !has("Host") {
        // IPv6 literals are bracketed in Host, as in URLs.
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        request = request.header(header::HOST, format!("{host}:{port}"));
    }
    if !has("User-Agent") {
        request = request.header(header::USER_AGENT, USER_AGENT);
    }
    if !has("Accept") {
        request = request.header(header::ACCEPT, "*/*");
    }
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    request.header(header::CONNECTION, "close").body(Empty::new())
}

/// Sends `request` over `io` (a connected TCP stream, or TLS over one) with hyper's HTTP/1.1
/// client; the status of the answer, whose body is not read.
pub(crate) async fn get<S>(io: S, request: Request<Empty<Bytes>>) -> Result<StatusCode, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Header names as Go writes them (`User-Agent`), as kubelet's requests have them.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new().title_case_headers(true).handshake(TokioIo::new(io)).await?;
    // The connection is driven by its own task, which the JoinSet aborts when dropped: nothing
    // outlives a probe, also one cut short by its timeout.
    let mut driver = JoinSet::new();
    driver.spawn(connection);
    sender.ready().await?;
    Ok(sender.send_request(request).await?.status())
}

/// Runs the command in the container; success is exit status 0 within `timeout`. On timeout
/// nsexec is killed, and the command with it (nsexec's child has SIGKILL as parent-death
/// signal); processes the command started in the background may stay, as with kubelet.
async fn exec(target: &ExecTarget, command: &[String], timeout: Duration) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&target.nodeagent_exe)
        .arg("nsexec")
        .arg(&target.pod_dir)
        .arg(&target.container)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {} nsexec: {e}", target.nodeagent_exe.display()))?;
    // Stderr is drained on the side (keeping the first 4 KiB for the failure message): a command
    // must neither block on a full pipe nor keep the probe waiting for EOF when something it
    // started in the background still holds the pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let (mut kept, mut buf) = (Vec::new(), [0u8; 1024]);
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = 4096usize.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    });
    let what = || format!("exec {command:?} in container {:?} of {}", target.container, target.pod_dir.display());
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    if waited.is_err() {
        kill(&mut child).await;
    }
    // What the command wrote, waiting briefly for the pipe's last bytes; the reader is then
    // stopped so that no task outlives the probe.
    let err = match stderr {
        Some(mut task) => {
            let out = match tokio::time::timeout(Duration::from_millis(100), &mut task).await {
                Ok(Ok(bytes)) => bytes,
                _ => Vec::new(),
            };
            task.abort();
            out
        }
        None => Vec::new(),
    };
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{}: {status}: {}", what(), String::from_utf8_lossy(&err).trim())),
        Ok(Err(e)) => Err(format!("{}: waiting: {e}", what())),
        Err(_) => Err(format!("{}: timed out after {timeout:?}", what())),
    }
}

async fn kill(child: &mut tokio::process::Child) {
    // kill() also reaps; an error means it is already gone.
    let _: io::Result<()> = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request's target and headers, as (name, value) in order.
    fn lines(request: &Request<Empty<Bytes>>) -> (String, Vec<(String, String)>) {
        let headers = request.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
        (format!("{} {}", request.method(), request.uri()), headers)
    }

    #[test]
    fn request_is_kubelets() {
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let req = probe_request("10.244.1.5", 8080, "/healthz", &[]).unwrap();
        assert_eq!(
            lines(&req),
            (
                "GET /healthz".into(),
                pairs(&[("host", "10.244.1.5:8080"), ("user-agent", "kube-probe/1.33"), ("accept", "*/*"), ("connection", "close")])
            )
        );
        let req = probe_request("10.244.1.5", 80, "/?a=b", &[("host".into(), "example.com".into()), ("X-A".into(), "b".into())]).unwrap();
        assert_eq!(
            lines(&req),
            (
                "GET /?a=b".into(),
                pairs(&[
                    ("user-agent", "kube-probe/1.33"),
                    ("accept", "*/*"),
                    ("host", "example.com"),
                    ("x-a", "b"),
                    ("connection", "close")
                ])
            )
        );
        assert_eq!(probe_request("fd00::1", 80, "/", &[]).unwrap().headers()[header::HOST], "[fd00::1]:80");
        // What cannot be sent is refused before connecting.
        assert!(probe_request("10.244.1.5", 80, "/a b", &[]).is_err());
        assert!(probe_request("10.244.1.5", 80, "/", &[("Bad Name".into(), "x".into())]).is_err());
    }
}
