//! emu-controller: serves the cluster's API on a Unix socket in its runtime directory.

use anyhow::Context;
use clap::Parser;
use emu_controller::{api::ApiService, controllers, state::Shared, store::Store};
use emu_core::cluster::{ClusterConfig, Paths};
use std::os::unix::fs::PermissionsExt;
use tokio_stream::wrappers::UnixListenerStream;

#[derive(Parser)]
#[command(name = "emu-controller", about = "The API server of an emu cluster (started by `emu up`).")]
struct Args {
    /// Cluster name; the runtime directory is /run/emu/<cluster>.
    #[arg(long)]
    cluster: String,
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EMU_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let paths = Paths::new(&args.cluster);
    let config: ClusterConfig = serde_json::from_slice(&std::fs::read(paths.config()).with_context(|| format!("reading {}", paths.config().display()))?)
        .with_context(|| format!("parsing {}", paths.config().display()))?;
    let store = Store::open(&paths.store()).with_context(|| format!("opening store {}", paths.store().display()))?;
    let shared = Shared::new(store, config);
    controllers::ensure_builtin_namespaces(&shared);

    let socket = paths.socket();
    // A socket file left by a killed controller would make bind fail.
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(paths.controller_pid(), std::process::id().to_string())?;
    tracing::info!(cluster = %args.cluster, socket = %socket.display(), "controller serving");

    tokio::spawn(controllers::run(shared.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tonic::transport::Server::builder()
        .add_service(emu_proto::api_server::ApiServer::new(ApiService { shared }).max_decoding_message_size(256 * 1024 * 1024))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            term.recv().await;
        })
        .await?;
    Ok(())
}

/// glibc gives every thread that allocates its own malloc arena; for a small daemon with a few
/// tokio threads that mostly costs resident memory. One arena is plenty here.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
