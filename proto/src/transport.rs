//! How emu's daemons reach a gRPC server, and how a server takes TLS connections: a Unix socket
//! on the same machine, or TCP with TLS between machines of a cluster that others joined (the
//! control plane's join listener; mutual TLS once a machine's agents hold their certificates).
//!
//! The daemons live in network namespaces of their own (a node's, the control plane's), which
//! have no route to the machine's own network: the TCP socket of a connection to another machine
//! is made in the machine's *underlay* namespace (its root namespace, or an emulated host's),
//! on a short-lived thread that enters it, and then used from anywhere.

use crate::api_client::ApiClient;
use crate::MAX_MESSAGE;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint};

/// The controller's user name towards the agents' endpoints on other machines (kubeadm's
/// `apiserver-kubelet-client`): the only client those endpoints serve.
pub const CONTROLLER_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// How often a connection between machines is pinged, and how long an answer may take before
/// the connection counts as dead (both ends: the agents' channels, the servers).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a TCP connect or a TLS handshake may take. Short: between machines of one LAN a
/// connect takes milliseconds, and a reconnect begun during a partition (its SYNs lost) must
/// not hold the agent off the API for long after the heal.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A server over TCP with TLS.
#[derive(Clone)]
pub struct TlsTarget {
    pub addr: SocketAddr,
    /// Trusts the cluster CA, with the client's certificate when it has one.
    pub config: Arc<rustls::ClientConfig>,
    /// The network namespace the socket is made in (the machine's underlay); None: the caller's.
    pub netns: Option<PathBuf>,
}

impl std::fmt::Debug for TlsTarget {
    // The client configuration holds a private key: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget").field("addr", &self.addr).field("netns", &self.netns).finish_non_exhaustive()
    }
}

/// Where a daemon finds the controller's API.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// The controller's Unix socket on this machine.
    Unix(PathBuf),
    /// The control plane of another machine.
    Tls(TlsTarget),
}

impl From<PathBuf> for Upstream {
    fn from(socket: PathBuf) -> Upstream {
        Upstream::Unix(socket)
    }
}

impl Upstream {
    /// `unix:///run/emu/c/controller.sock`, `https://192.0.2.1:6444`: in messages.
    pub fn describe(&self) -> String {
        match self {
            Upstream::Unix(p) => crate::unix_endpoint(p),
            Upstream::Tls(t) => format!("https://{}", t.addr),
        }
    }

    /// A channel to the server (connected now; it reconnects through the same path).
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        match self {
            Upstream::Unix(socket) => crate::unix_channel(socket).await,
            Upstream::Tls(target) => tls_channel(target.clone()).await,
        }
    }

    /// A client of service Api.
    pub async fn api(&self) -> Result<ApiClient<Channel>, tonic::transport::Error> {
        Ok(ApiClient::new(self.channel().await?).max_decoding_message_size(MAX_MESSAGE))
    }
}

/// A channel over TCP and TLS to `target`: the server's certificate must be the cluster CA's for
/// the address dialled.
pub async fn tls_channel(target: TlsTarget) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{}", target.addr))?
        .connect_timeout(CONNECT_TIMEOUT)
        // Between machines a connection can die silently (a partition drops packets, a host
        // stops): HTTP/2 pings find it out, the channel reconnects, and a watch resumes.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_with_connector(tower::service_fn(move |_| {
            let target = target.clone();
            async move {
                let stream = connect_tls(&target).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}

/// A TLS connection to `target` (TCP made in its namespace, then the handshake).
pub async fn connect_tls(target: &TlsTarget) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = connect_tcp(target.addr, target.netns.as_deref()).await?;
    let name = ServerName::IpAddress(target.addr.ip().into());
    let handshake = tokio_rustls::TlsConnector::from(target.config.clone()).connect(name, tcp);
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {} timed out", target.addr)))?
}

/// A TCP connection to `addr`, its socket made in the network namespace `netns` (a bind-mounted
/// or `/proc` namespace file) when given.
pub async fn connect_tcp(addr: SocketAddr, netns: Option<&Path>) -> io::Result<tokio::net::TcpStream> {
    let stream = match netns {
        None => tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))??,
        Some(ns) => {
            let std = in_netns(ns, move || std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)).await?;
            std.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(std)?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A TCP listener on `addr`, made in the network namespace `netns` when given.
pub async fn bind_tcp(addr: SocketAddr, netns: Option<&Path>) -> io::Result<tokio::net::TcpListener> {
    let std = match netns {
        None => std::net::TcpListener::bind(addr)?,
        Some(ns) => in_netns(ns, move || std::net::TcpListener::bind(addr)).await?,
    };
    std.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std)
}

/// Runs `f` on a thread of its own that first enters the network namespace `netns`, and ends
/// with `f`: sockets `f` makes belong to that namespace, and no thread of the caller's runtime
/// ever changes its namespace.
pub async fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let file =
        std::fs::File::open(netns).map_err(|e| io::Error::new(e.kind(), format!("opening network namespace {}: {e}", netns.display())))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("emu-netns".into()).spawn(move || {
        // SAFETY: setns on this thread only, with a descriptor this thread owns.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        let result = if entered == 0 { f() } else { Err(io::Error::last_os_error()) };
        let _ = tx.send(result);
    })?;
    rx.await.map_err(|_| io::Error::other("the thread in the network namespace ended without an answer"))?
}

/// A client configuration trusting exactly the CA `ca_pem`, offering HTTP/2, and presenting
/// `identity` (certificate and key PEM) when given.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| anyhow::anyhow!("the cluster CA is not a PEM certificate: {e}"))?)?;
    }
    if roots.is_empty() {
        anyhow::bail!("the cluster CA holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?.with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| anyhow::anyhow!("client key: {e}"))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that accepts any server certificate, for discovery: what it fetches
/// (the cluster CA) is checked against a pinned hash before anything is trusted, and nothing
/// secret is sent on it.
pub fn discovery_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::insecure_tls::AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// What a server knows of a TLS client: its address and the certificate it presented (verified
/// against the cluster CA by the handshake), as tonic hands it to each request
/// (`Request::extensions().get::<TlsPeer>()`).
#[derive(Clone, Debug)]
pub struct TlsPeer {
    pub addr: Option<SocketAddr>,
    pub certificate: Option<CertificateDer<'static>>,
}

/// A server's end of a TLS connection, for tonic's `serve_with_incoming`.
pub struct TlsServerIo(pub tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsServerIo {
    type ConnectInfo = TlsPeer;
    fn connect_info(&self) -> TlsPeer {
        let (tcp, session) = self.0.get_ref();
        TlsPeer {
            addr: tcp.peer_addr().ok(),
            certificate: session.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned()),
        }
    }
}

impl AsyncRead for TlsServerIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsServerIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The TLS connections of `listener`, each handshake on a task of its own (a slow or silent
/// client holds up no one), for tonic's `serve_with_incoming`. A failed handshake (no
/// certificate where one is required, one of another CA) is logged with the peer's address and
/// dropped.
pub fn incoming(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsServerIo>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a TLS connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(TlsServerIo(stream))).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A server configuration with `cert_pem`/`key_pem`, HTTP/2, and client certificates of the CA
/// `client_ca_pem` verified when presented (`require_client`: refused without one).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    require_client: bool,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if require_client { verifier.build()? } else { verifier.allow_unauthenticated().build()? };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_made_in_a_namespace_file_works_from_the_runtime() {
        // This process's own namespace, entered through its file: the thread's path without root.
        let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), Some(Path::new("/proc/self/ns/net"))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer) });
        let stream = connect_tcp(addr, Some(Path::new("/proc/self/ns/net"))).await.unwrap();
        assert_eq!(accept.await.unwrap().unwrap(), stream.local_addr().unwrap());
    }

    #[tokio::test]
    async fn a_missing_namespace_is_named_in_the_error() {
        let e = connect_tcp("127.0.0.1:9".parse().unwrap(), Some(Path::new("/nonexistent/ns"))).await.unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ns"), "{e}");
    }
}
