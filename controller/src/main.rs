//! emu-controller: serves the cluster's API on a Unix socket in its runtime directory.

use anyhow::Context;
use emu_controller::relay::RelayService;
use emu_controller::{api::ApiService, controllers, https, pki::ClusterPki, services, state::Shared, store::Store};
use emu_logic::cluster::{ClusterConfig, Paths, KUBERNETES_VERSION};
use emu_logic::ipam;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio_stream::wrappers::UnixListenerStream;

struct Args {
    /// Cluster name; the runtime directory is /run/emu/<cluster>.
    cluster: String,
}

fn main() -> anyhow::Result<()> {
    // Read before the runtime starts, so that `--help` and usage errors need no threads.
    let about = "The API server of an emu cluster (started by `emu up`).";
    let [cluster] = emu_proto::daemon::flags("emu-controller", about, ["cluster"], std::env::args().skip(1));
    let inherited = inherited_listeners();
    emu_proto::daemon::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(serve(Args { cluster }, inherited))
}

/// How often the store's file is checked for space to give back ([`Store::compact_if_wasteful`]).
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Gives the store's free space back to the file system, at start and then every
/// [`COMPACT_EVERY`] (after large objects are deleted the file would otherwise keep their size).
async fn compact_store(shared: Shared) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = shared.clone();
        match tokio::task::spawn_blocking(move || store.store.compact_if_wasteful()).await {
            Ok(Ok(Some((before, after)))) => tracing::info!(before, after, "the store's file compacted"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "compacting the store failed"),
            Err(e) => tracing::warn!(error = %e, "the store's compaction panicked"),
        }
    }
}

async fn serve(args: Args, inherited: Vec<std::net::TcpListener>) -> anyhow::Result<()> {
    emu_proto::daemon::init_logging("info");
    emu_proto::daemon::spawn_heap_trimmer();
    let paths = Paths::new(&args.cluster);
    let config: ClusterConfig =
        serde_json::from_slice(&std::fs::read(paths.config()).with_context(|| format!("reading {}", paths.config().display()))?)
            .with_context(|| format!("parsing {}", paths.config().display()))?;
    let store = Store::open(&paths.store()).with_context(|| format!("opening store {}", paths.store().display()))?;
    let shared = Shared::new(store, config);
    controllers::ensure_builtin_namespaces(&shared);
    emu_controller::services::ensure_kubernetes_service(&shared);
    emu_controller::addons::ensure_cluster_dns(&shared);
    emu_controller::rbac_defaults::ensure(&shared);

    let socket = paths.socket();
    // A socket file left by a killed controller would make bind fail.
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(paths.controller_pid(), std::process::id().to_string())?;
    tracing::info!(cluster = %args.cluster, socket = %socket.display(), "controller serving");

    // Stops the HTTPS endpoint with the gRPC server: on SIGTERM, or when `serve` returns and
    // drops the sender.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let https = https_endpoint(&paths, &shared).await;
    let stopped_join = stopped.clone();
    // Service-account tokens are signed with a key kept next to the CA (VOL-8).
    match emu_controller::tokens::TokenSigner::load_or_create(&paths.root.join("pki")) {
        Ok(signer) => {
            let _ = shared.tokens.set(std::sync::Arc::new(signer));
        }
        Err(e) => tracing::warn!(error = format!("{e:#}"), "no service-account tokens: pods' token files stay empty"),
    }
    match https {
        Ok((fabric, tls, join)) => {
            if let Err(e) = join_listener(&paths, &shared, join, stopped_join).await {
                tracing::error!(error = format!("{e:#}"), "no join listener: other machines cannot join");
            }
            let tokens = shared.clone();
            // Bootstrap tokens (by their Secret) and service-account tokens (by the signing key).
            let authn: https::Authenticator =
                std::sync::Arc::new(move |token: &str| emu_controller::tokens::authenticate_bearer(&tokens, token, emu_api::time::now()));
            // The fabric's listener, and the host's (`127.0.0.1:<port>`, which `emu up` binds in
            // the host's namespace and hands over): the same endpoint on both.
            let host = inherited.into_iter().filter_map(|l| {
                let addr = l.local_addr().ok()?;
                tracing::info!(%addr, "HTTPS endpoint serving on a listener handed over");
                tokio::net::TcpListener::from_std(l).inspect_err(|e| tracing::warn!(error = %e, "a listener handed over")).ok()
            });
            for listener in std::iter::once(fabric).chain(host) {
                let mut stopped = stopped.clone();
                tokio::spawn(https::serve(listener, tls.clone(), KUBERNETES_VERSION, authn.clone(), shared.clone(), async move {
                    let _ = stopped.changed().await;
                }));
            }
        }
        Err(e) => tracing::warn!(error = format!("{e:#}"), "HTTPS endpoint not started; the gRPC API serves without it"),
    }
    drop(stopped);

    tokio::spawn(controllers::run(shared.clone()));
    tokio::spawn(compact_store(shared.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopping = shared.clone();
    tonic::transport::Server::builder()
        .add_service(
            emu_proto::api_server::ApiServer::new(ApiService { shared: shared.clone() }).max_decoding_message_size(emu_proto::MAX_MESSAGE),
        )
        .add_service(emu_proto::relay_server::RelayServer::new(RelayService::new(shared.clone(), Arc::new(shared.provider()))))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            term.recv().await;
            tracing::info!("SIGTERM: stopping");
            stopping.stop();
            let _ = stop.send(());
        })
        .await?;
    Ok(())
}

/// The HTTPS endpoint behind Service `default/kubernetes` (ClusterIP:443 → control plane:6443):
/// the cluster CA (kept in `<runtime dir>/pki` so it survives a restart), a serving certificate
/// for every address a client may use, and the listener. `emu up` runs the controller in a
/// namespace that owns the control plane's fabric address, so the wildcard bind lands there.
/// Optional: everything in emu talks gRPC, so a failure here is only a warning.
/// Also what the join listener serves with: the CA and the same serving certificate and key
/// (which name the machine's advertise address too).
async fn https_endpoint(paths: &Paths, shared: &Shared) -> anyhow::Result<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor, JoinTls)> {
    let pki_dir = paths.root.join("pki");
    let pki = ClusterPki::load_or_create(&pki_dir)?;
    let _ = shared.root_ca.set(pki.ca_pem().to_string());
    let service_cidr: ipam::Ipv4Cidr =
        shared.cluster.service_cidr.parse().map_err(|e| anyhow::anyhow!("service CIDR {:?}: {e}", shared.cluster.service_cidr))?;
    // The `kubernetes` Service's ClusterIP (the first address of the range), the control plane's
    // fabric address (its Endpoints) and loopback, for a client inside the controller's namespace.
    // And the machine's advertise address, where other machines join.
    let advertise = shared.cluster.advertise_address.parse::<Ipv4Addr>().ok();
    let sans: Vec<String> = [service_cidr.nth(1), services::api_server_ip(shared), Some(Ipv4Addr::LOCALHOST), advertise]
        .into_iter()
        .flatten()
        .map(|ip| ip.to_string())
        .collect();
    let (cert, key) = pki.server_cert(&sans)?;
    let tls = https::acceptor(&cert, &key, pki.ca_pem())?;
    let join = emu_proto::transport::server_config(&cert, &key, pki.ca_pem(), false)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, services::API_SERVER_PORT));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, sans = sans.join(","), ca = %pki_dir.join(emu_controller::pki::CA_CERT_FILE).display(), "HTTPS endpoint serving");
    Ok((listener, tls, (Arc::new(pki), join)))
}

/// The cluster CA and the join listener's TLS configuration.
type JoinTls = (Arc<ClusterPki>, Arc<rustls::ServerConfig>);

/// The join listener on the machine's advertise address (made in the machine's underlay
/// namespace, pinned by the provider, as the controller's own has no route there), when the
/// cluster has one: other machines join there, and their agents use the API there.
async fn join_listener(paths: &Paths, shared: &Shared, tls: JoinTls, stopped: tokio::sync::watch::Receiver<()>) -> anyhow::Result<()> {
    let Ok(advertise) = shared.cluster.advertise_address.parse::<Ipv4Addr>() else { return Ok(()) };
    let addr = SocketAddr::from((advertise, emu_controller::join::JOIN_PORT));
    let underlay = paths.underlay_netns();
    let netns = underlay.exists().then_some(underlay.as_path());
    let listener = emu_proto::transport::bind_tcp(addr, netns).await.with_context(|| format!("binding the join listener on {addr}"))?;
    let _ = shared.join_endpoint.set(addr.to_string());
    tracing::info!(%addr, "join listener serving");
    let (pki, tls) = tls;
    let (cert, key) = pki.kubelet_client_cert()?;
    let agents = emu_proto::transport::client_config(pki.ca_pem(), Some((&cert, &key)))?;
    let _ = emu_controller::relay::AGENT_TLS.set((agents, netns.map(Path::to_path_buf)));
    let mut stopped = stopped;
    tokio::spawn(emu_controller::join::serve(shared.clone(), pki, listener, tls, async move {
        let _ = stopped.changed().await;
    }));
    Ok(())
}

/// The listening sockets the process was started with, by systemd's convention (`LISTEN_FDS`
/// sockets from fd 3, for the process `LISTEN_PID`): how the provider hands over a listener on
/// the host's loopback, which the controller, in its own network namespace, cannot open. Called
/// before any thread exists (it removes the two variables, so nothing started later inherits
/// them); a descriptor that is not a listening TCP socket is skipped.
fn inherited_listeners() -> Vec<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    let count: i32 = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    if !for_us {
        return Vec::new();
    }
    (3..3 + count)
        .filter_map(|fd| {
            // SAFETY: systemd's convention gives these descriptors to this process, once; nothing
            // else in the controller owns them.
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            match listener.set_nonblocking(true).and_then(|()| listener.local_addr()) {
                Ok(_) => Some(listener),
                Err(e) => {
                    eprintln!("emu-controller: LISTEN_FDS names fd {fd}, which is not a listening socket ({e}); skipped");
                    None
                }
            }
        })
        .collect()
}
