//! Real probes: HTTP, HTTPS and TCP against listeners on 127.0.0.1 (standing in for a pod IP), and exec
//! probes inside a real busybox container (needs root: a network namespace and a pod shim).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use emu_logic::probe::ProbeAction;
use emu_nodeagent::probe::{run_probe, ExecTarget};
use emu_nodeagent::sandbox::{read_state, spawn_shim, stop_shim, ContainerSpec, ContainerState, SandboxSpec};
use rustls::pki_types::PrivateKeyDer;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

const BIN: &str = env!("CARGO_BIN_EXE_emu-nodeagent");
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A one-shot HTTP server per connection answering `status_line`, over TLS with `tls`; sends
/// each request's text.
async fn server(status_line: &'static str, tls: Option<TlsAcceptor>) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(conn) = tls.accept(conn).await {
                            answer(conn, status_line, tx).await;
                        }
                    }
                    None => answer(conn, status_line, tx).await,
                }
            });
        }
    });
    (port, rx)
}

async fn answer(mut conn: impl AsyncRead + AsyncWrite + Unpin, status_line: &str, tx: mpsc::UnboundedSender<String>) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.ends_with(b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
    let _ = conn.write_all(format!("{status_line}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
    let _ = conn.flush().await;
    let _ = conn.shutdown().await;
}

async fn http_server(status_line: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    server(status_line, None).await
}

/// A TLS acceptor with a self-signed certificate for `name`, which no probe could verify.
fn self_signed(name: &str) -> TlsAcceptor {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params").self_signed(&key).expect("cert");
    let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

fn http(port: u16, path: &str, headers: &[(&str, &str)]) -> ProbeAction {
    ProbeAction::HttpGet {
        host: None,
        port,
        path: path.into(),
        scheme: "HTTP".into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn http_probe_status_codes_and_request() {
    let (ok, mut requests) = http_server("HTTP/1.1 200 OK").await;
    assert!(run_probe(&http(ok, "/healthz", &[("X-Probe", "yes")]), LOCAL, None, SECOND).await);
    let req = requests.recv().await.expect("request seen");
    assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
    for line in [
        format!("Host: 127.0.0.1:{ok}"),
        "User-Agent: kube-probe/1.33".into(),
        "Accept: */*".into(),
        "Connection: close".into(),
        "X-Probe: yes".into(),
    ] {
        assert!(req.contains(&format!("{line}\r\n")), "missing {line:?} in {req}");
    }
    let (redirect, _) = http_server("HTTP/1.1 302 Found").await;
    assert!(run_probe(&http(redirect, "/", &[]), LOCAL, None, SECOND).await, "3xx is success");
    let (not_found, _) = http_server("HTTP/1.1 404 Not Found").await;
    assert!(!run_probe(&http(not_found, "/", &[]), LOCAL, None, SECOND).await);
    let (error, _) = http_server("HTTP/1.0 500 Internal Server Error").await;
    assert!(!run_probe(&http(error, "/", &[]), LOCAL, None, SECOND).await);
    let (garbage, _) = http_server("SSH-2.0-OpenSSH_9.2").await;
    assert!(!run_probe(&http(garbage, "/", &[]), LOCAL, None, SECOND).await);
    // The probe's host wins over the pod IP.
    let elsewhere =
        ProbeAction::HttpGet { host: Some("127.0.0.1".into()), port: ok, path: "/".into(), scheme: "HTTP".into(), headers: vec![] };
    assert!(run_probe(&elsewhere, Ipv4Addr::new(192, 0, 2, 1), None, SECOND).await);
}

#[tokio::test]
async fn http_probe_times_out_on_a_silent_server() {
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and holds connections without answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let started = Instant::now();
    assert!(!run_probe(&http(port, "/", &[]), LOCAL, None, Duration::from_millis(300)).await);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn tcp_probe_open_and_closed() {
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let open = listener.local_addr().expect("addr").port();
    assert!(run_probe(&ProbeAction::TcpSocket { host: None, port: open }, LOCAL, None, SECOND).await);
    drop(listener);
    assert!(!run_probe(&ProbeAction::TcpSocket { host: None, port: open }, LOCAL, None, SECOND).await, "refused");
}

fn https(port: u16, host: Option<&str>) -> ProbeAction {
    ProbeAction::HttpGet {
        host: host.map(str::to_string),
        port,
        path: "/ready".into(),
        scheme: "HTTPS".into(),
        headers: vec![("X-Probe".into(), "tls".into())],
    }
}

#[tokio::test]
async fn https_probe_gets_without_verifying_the_certificate() {
    // A certificate for another name, signed by nobody: kubelet probes it anyway.
    let tls = self_signed("not-this-pod.example");
    let (ok, mut requests) = server("HTTP/1.1 200 OK", Some(tls.clone())).await;
    assert!(run_probe(&https(ok, None), LOCAL, None, SECOND).await);
    let req = requests.recv().await.expect("a request over TLS");
    assert!(req.starts_with("GET /ready HTTP/1.1\r\n"), "{req}");
    for line in [format!("Host: 127.0.0.1:{ok}"), "User-Agent: kube-probe/1.33".into(), "Accept: */*".into(), "X-Probe: tls".into()] {
        assert!(req.contains(&format!("{line}\r\n")), "missing {line:?} in {req}");
    }
    // The status decides, as over HTTP: 500 fails where a connect alone would have passed.
    let (error, mut requests) = server("HTTP/1.1 500 Internal Server Error", Some(tls.clone())).await;
    assert!(!run_probe(&https(error, None), LOCAL, None, SECOND).await, "500 over TLS is a failure");
    assert!(requests.recv().await.expect("the GET was sent").starts_with("GET /ready "));
    let (redirect, _) = server("HTTP/1.1 301 Moved Permanently", Some(tls.clone())).await;
    assert!(run_probe(&https(redirect, None), LOCAL, None, SECOND).await, "3xx is success");
    // The probe's host wins over the pod IP.
    assert!(run_probe(&https(ok, Some("127.0.0.1")), Ipv4Addr::new(192, 0, 2, 1), None, SECOND).await);
    // A plain HTTP server on an HTTPS probe's port (answering the ClientHello as nginx does, with
    // a 400 in clear text) fails the handshake at once.
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let plain = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        }
    });
    let started = Instant::now();
    assert!(!run_probe(&https(plain, None), LOCAL, None, SECOND).await);
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    // So does a port that accepts and never shakes hands, within the probe's timeout.
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let silent = listener.local_addr().expect("addr").port();
    let started = Instant::now();
    assert!(!run_probe(&https(silent, None), LOCAL, None, Duration::from_millis(300)).await);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    drop(listener);
}

#[tokio::test]
async fn exec_without_target_fails() {
    assert!(!run_probe(&ProbeAction::Exec { command: vec!["true".into()] }, LOCAL, None, SECOND).await);
}

// ---- exec in a real container (root) -----------------------------------------------------------

struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("emu-prtest{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let ok = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add").success();
        assert!(ok, "ip netns add {name} (run as root)");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A pod directory with a running shim; stopped and removed on drop.
struct Pod {
    dir: tempfile::TempDir,
    shim: i32,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = stop_shim(self.dir.path(), Duration::from_secs(2));
        // SAFETY: waitpid on our adopted child (we are a subreaper), WNOHANG so it never blocks.
        unsafe { libc::waitpid(self.shim, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

fn busybox_pod(netns: &Netns) -> Pod {
    static SUBREAPER: Once = Once::new();
    // SAFETY: prctl with integer arguments only. The shim double-forks; as subreaper we reap it.
    SUBREAPER.call_once(|| assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0));
    let dir = tempfile::Builder::new().prefix("emu-prtest").tempdir().expect("pod dir");
    let spec = SandboxSpec {
        cluster: "prtest".into(),
        namespace: "default".into(),
        pod_name: "probe-1".into(),
        pod_uid: "5d9f3c1a-2222-4333-8444-555566667777".into(),
        hostname: "probe-1".into(),
        restart_policy: "Always".into(),
        termination_grace_seconds: 1,
        hosts_file: "127.0.0.1\tlocalhost\n".into(),
        resolv_conf: "nameserver 10.96.0.10\n".into(),
        containers: vec![ContainerSpec {
            name: "shell".into(),
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "touch /tmp/ready; sleep 3600".into()],
            args: vec![],
            env: vec![],
            literal_env: vec![],
            working_dir: None,
            tty: false,
            stdin: false,
            stdin_once: false,
            mounts: vec![],
            restarts_before: 0,
            confinement: Default::default(),
            writable_layer_bytes: None,
            identity: Default::default(),
            capabilities: None,
        }],
        volumes: vec![],
        api_socket: None,
        // The image's files in the pod's temporary directory, which goes with the test.
        images_dir: Some(dir.path().join("images")),
    };
    std::fs::write(dir.path().join("sandbox.json"), serde_json::to_vec(&spec).expect("json")).expect("sandbox.json");
    let shim = spawn_shim(Path::new(BIN), dir.path(), &Path::new("/run/netns").join(&netns.0), None).expect("spawn_shim");
    let pod = Pod { dir, shim };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = read_state(pod.dir.path())
            .ok()
            .is_some_and(|s| s.containers.iter().any(|c| c.name == "shell" && matches!(c.state, ContainerState::Running { .. })));
        if running {
            return pod;
        }
        assert!(Instant::now() < deadline, "busybox container did not start; see {}/shim.log", pod.dir.path().display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn exec_probe_in_a_container() {
    let netns = Netns::new();
    let pod = busybox_pod(&netns);
    let target =
        |container: &str| Some(ExecTarget { nodeagent_exe: BIN.into(), pod_dir: pod.dir.path().into(), container: container.into() });
    let exec = |argv: &[&str]| ProbeAction::Exec { command: argv.iter().map(|s| s.to_string()).collect() };
    let five = Duration::from_secs(5);

    // Runs inside the container: /tmp/ready exists there only, the hostname is the pod's.
    let deadline = Instant::now() + five;
    while !run_probe(&exec(&["cat", "/tmp/ready"]), LOCAL, target("shell"), five).await {
        assert!(Instant::now() < deadline, "cat /tmp/ready never succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(run_probe(&exec(&["sh", "-c", "test \"$(hostname)\" = probe-1"]), LOCAL, target("shell"), five).await);
    assert!(!run_probe(&exec(&["cat", "/tmp/missing"]), LOCAL, target("shell"), five).await);
    assert!(!run_probe(&exec(&["false"]), LOCAL, target("shell"), five).await);
    assert!(!run_probe(&exec(&["no-such-command"]), LOCAL, target("shell"), five).await);
    assert!(!run_probe(&exec(&["true"]), LOCAL, target("nope"), five).await, "unknown container");
    // Something left in the background holding stderr does not hold the probe up.
    let started = Instant::now();
    assert!(run_probe(&exec(&["sh", "-c", "sleep 30 & true"]), LOCAL, target("shell"), five).await);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    // Too slow: fails at the timeout and the command is killed.
    let started = Instant::now();
    assert!(!run_probe(&exec(&["sleep", "7"]), LOCAL, target("shell"), Duration::from_millis(500)).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let still = Command::new(BIN)
        .args(["nsexec", &pod.dir.path().to_string_lossy(), "shell", "--", "sh", "-c", "ps -o args | grep -v grep | grep -q 'sleep 7'"])
        .status()
        .expect("nsexec");
    assert!(!still.success(), "the timed-out probe command is still running");
}
