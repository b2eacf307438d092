//! What the kubectl tests share: a scratch directory, kubectl with the test's kubeconfig and a
//! cache of its own under a deadline, and a kubectl left running (watch, logs -f) read line by
//! line.
#![allow(dead_code)]

use emu_tests::{Cluster, Run};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use emu_tests::Scratch;

/// A cluster of its own for a test (no scenario), and a scratch directory holding the
/// kubeconfig `emu kubeconfig` prints for it.
pub fn cluster(name: &str) -> (Cluster, Scratch) {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let c = Cluster::up(name, &[]);
    std::fs::write(dir.0.join("kubeconfig"), c.emu(&["kubeconfig"]).ok().stdout).unwrap();
    (c, dir)
}

/// kubectl with the kubeconfig in `dir` and a discovery cache of its own there (kubectl keeps
/// one per host:port, and other tests' clusters may reuse the port).
pub fn kubectl_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECACHEDIR", dir.join("cache"));
    cmd
}

/// `kubectl ARGS` to its end, killed after `limit`.
pub fn kubectl(dir: &Path, limit: Duration, args: &[&str]) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &limit.as_secs().to_string()]);
    let inner = kubectl_cmd(dir, args);
    cmd.arg(inner.get_program()).args(inner.get_args()).env_remove("KUBECONFIG").env("KUBECACHEDIR", dir.join("cache"));
    Run::from(cmd.output().expect("running kubectl"))
}

/// `kubectl ARGS` with `input` on its stdin, killed after `limit`.
pub fn kubectl_with_input(dir: &Path, limit: Duration, args: &[&str], input: &[u8]) -> Run {
    let inner = kubectl_cmd(dir, args);
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &limit.as_secs().to_string()]).arg(inner.get_program()).args(inner.get_args());
    cmd.env_remove("KUBECONFIG").env("KUBECACHEDIR", dir.join("cache"));
    run_with_input(cmd, input)
}

/// `cmd` with `input` on its stdin (closed after it), to its end.
pub fn run_with_input(mut cmd: Command, input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running a command");
    child.stdin.take().unwrap().write_all(input).expect("writing the command's stdin");
    Run::from(child.wait_with_output().expect("the command's output"))
}

/// A kubectl left running (a watch): its output lines as they come; killed on drop.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    pub fn start(dir: &Path, args: &[&str]) -> Streaming {
        let mut child = kubectl_cmd(dir, args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("starting kubectl");
        let (tx, lines) = mpsc::channel();
        read_lines(child.stdout.take().unwrap(), tx);
        Streaming { child, lines, seen: Vec::new() }
    }

    /// As [`Streaming::start`], its stderr's lines read too.
    pub fn start_with_stderr(dir: &Path, args: &[&str]) -> Streaming {
        let mut child = kubectl_cmd(dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting kubectl");
        let (tx, lines) = mpsc::channel();
        read_lines(child.stdout.take().unwrap(), tx.clone());
        read_lines(child.stderr.take().unwrap(), tx);
        Streaming { child, lines, seen: Vec::new() }
    }

    /// Waits up to `limit` for a line `f` accepts; panics with what came otherwise.
    pub fn expect(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what} within {limit:?}; kubectl printed:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `from`'s lines to `to` from a thread of its own, until either ends.
fn read_lines(from: impl std::io::Read + Send + 'static, to: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                return;
            }
        }
    });
}

/// `GET /` on 127.0.0.1:`port` (a port kubectl forwards), as `host`: the whole answer, or what
/// came before an error.
pub fn http_get(port: u16, host: &str) -> String {
    http_request(port, host, "/")
}

/// `GET path` on 127.0.0.1:`port` (kubectl proxy's): the whole answer, or what came before an
/// error.
pub fn http_get_path(port: u16, path: &str) -> String {
    http_request(port, "127.0.0.1", path)
}

fn http_request(port: u16, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut answer = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes());
        let _ = s.read_to_string(&mut answer);
    }
    answer
}

/// A client certificate and key (PEM) for CN `user` in O `group`, signed with the cluster's CA
/// key in `pki` (the CA's subject is CN kubernetes, as kubeadm names it).
pub fn client_cert(pki: &Path, user: &str, group: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).expect("the cluster CA's key")).unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, group);
    params.distinguished_name.push(rcgen::DnType::CommonName, user);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &rcgen::Issuer::new(ca, ca_key)).unwrap();
    (cert.pem(), key.serialize_pem())
}
