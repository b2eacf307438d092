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

use emu_logic::probe::{ProbeAction, USER_AGENT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A minimal HTTP/1.1 GET: success when the status is 200..=399. Redirects are not followed
/// (kubelet follows them to the same host; a 3xx counts as success either way here).
///
/// HTTPS is probed as a plain TCP connect: emu has no TLS client, and kubelet skips certificate
/// verification anyway, so what an HTTPS probe checks beyond "the port accepts" is only the
/// status code.
async fn http_get(host: Option<&str>, pod_ip: Ipv4Addr, port: u16, path: &str, scheme: &str, headers: &[(String, String)]) -> Result<(), String> {
    let mut stream = connect(host, pod_ip, port).await?;
    if scheme.eq_ignore_ascii_case("HTTPS") {
        return Ok(());
    }
    let request = http_request(host.map_or_else(|| pod_ip.to_string(), str::to_string), port, path, headers);
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("GET {path}: sending the request: {e}"))?;
    // Only the status line matters; kubelet reads at most 10 KiB of body, we read none.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await.map_err(|e| format!("GET {path}: reading the response: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let status = parse_status(line).ok_or_else(|| format!("GET {path}: malformed HTTP response {line:?}"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

/// The request kubelet would send: the probe's headers override `Host`, `User-Agent` and
/// `Accept` (names compared case-insensitively); keep-alives are off.
fn http_request(host: String, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    // IPv6 literals are bracketed in Host, as in URLs.
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("Host") {
        req.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !has("User-Agent") {
        req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("Accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
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

    #[test]
    fn request_text() {
        let req = http_request("10.244.1.5".into(), 8080, "/healthz", &[]);
        assert_eq!(req, "GET /healthz HTTP/1.1\r\nHost: 10.244.1.5:8080\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        let req = http_request("10.244.1.5".into(), 80, "/", &[("host".into(), "example.com".into()), ("X-A".into(), "b".into())]);
        assert_eq!(req, "GET / HTTP/1.1\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nhost: example.com\r\nX-A: b\r\nConnection: close\r\n\r\n");
        assert!(http_request("fd00::1".into(), 80, "/", &[]).contains("Host: [fd00::1]:80\r\n"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(""), None);
    }
}
