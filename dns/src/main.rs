//! emu-dns: the cluster DNS server, run as the pods of Deployment `kube-system/coredns`.

use anyhow::Context;
use clap::Parser;
use emu_dns::{feed, Catalog, CatalogConfig, DnsServer, PodRecords, ServerOptions, SharedCatalog};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "emu-dns",
    about = "emu's cluster DNS server: answers the Kubernetes DNS specification from the controller's Services and EndpointSlices."
)]
struct Args {
    /// The controller's API socket (where emu mounts it into the DNS pods by default).
    #[arg(long, default_value = emu_logic::images::API_SOCKET_IN_CONTAINER)]
    socket: PathBuf,
    /// DNS over UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// Prometheus metrics at /metrics.
    #[arg(long, default_value = "0.0.0.0:9153")]
    metrics: SocketAddr,
    /// Liveness at /health (CoreDNS's `health` plugin).
    #[arg(long, default_value = "0.0.0.0:8080")]
    health: SocketAddr,
    /// Readiness at /ready: 200 once synced with the controller (CoreDNS's `ready` plugin).
    #[arg(long, default_value = "0.0.0.0:8181")]
    ready: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Pod records `a-b-c-d.<ns>.pod.<domain>`: insecure (any IP, as kubeadm configures
    /// CoreDNS), verified (only IPs of pods in that namespace) or disabled.
    #[arg(long, default_value = "insecure", value_parser = parse_pod_records)]
    pods: PodRecords,
}

fn parse_pod_records(s: &str) -> Result<PodRecords, String> {
    match s {
        "insecure" => Ok(PodRecords::Insecure),
        "verified" => Ok(PodRecords::Verified),
        "disabled" => Ok(PodRecords::Disabled),
        _ => Err(format!("{s:?}: expected insecure, verified or disabled")),
    }
}

fn main() -> anyhow::Result<()> {
    emu_proto::daemon::limit_malloc_arenas();
    // Parsed before the runtime starts, so that `--help` and usage errors need no threads.
    let args = Args::parse_from(without_corefile_args(std::env::args()));
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // hickory-server logs every request at info; that belongs in metrics, not in the log.
    emu_proto::daemon::init_logging("info,hickory_server=warn");
    emu_proto::daemon::spawn_heap_trimmer();
    let config = CatalogConfig::new(&args.cluster_domain, args.pods)?;
    let catalog = Arc::new(SharedCatalog::new(Catalog::unsynced(config.clone())));
    let options = ServerOptions {
        dns: args.listen,
        metrics: Some(args.metrics),
        health: Some(args.health),
        ready: Some(args.ready),
        ..ServerOptions::default()
    };
    let server = DnsServer::bind(&options, catalog.clone()).await?;
    tracing::info!(dns = %server.addrs().dns_udp, metrics = %args.metrics, zone = %config.zone, socket = %args.socket.display(), "DNS server listening");
    tokio::spawn(feed::follow_controller(args.socket, config, catalog));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let run = server.run();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result.context("serving DNS"),
        _ = term.recv() => {}
    }
    // CoreDNS as kubeadm configures it (`health { lameduck 5s }`): keep answering a while after
    // SIGTERM, so that clients still sent here by a node that has not yet dropped this endpoint
    // get answers rather than timeouts.
    tracing::info!(lameduck_s = LAMEDUCK.as_secs(), "SIGTERM: serving on for the lame-duck period, then stopping");
    tokio::select! {
        result = &mut run => result.context("serving DNS"),
        _ = tokio::time::sleep(LAMEDUCK) => Ok(()),
    }
}

/// How long the server answers after SIGTERM.
const LAMEDUCK: std::time::Duration = std::time::Duration::from_secs(5);

/// A CoreDNS manifest runs the image with `-conf /etc/coredns/Corefile`; emu's server has its
/// configuration built in, so that pair is accepted and dropped rather than refused.
fn without_corefile_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-conf" {
            args.next();
        } else if !arg.starts_with("-conf=") {
            kept.push(arg);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corefile_arguments_are_dropped() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(without_corefile_args(args(&["coredns", "-conf", "/etc/coredns/Corefile"]).into_iter()), args(&["coredns"]));
        assert_eq!(
            without_corefile_args(args(&["coredns", "-conf=/x", "--listen", "1.2.3.4:53"]).into_iter()),
            args(&["coredns", "--listen", "1.2.3.4:53"])
        );
    }

    #[test]
    fn flags_parse() {
        let a = Args::parse_from(["emu-dns", "--socket", "/tmp/s", "--cluster-domain", "example.org", "--pods", "verified"]);
        assert_eq!(a.pods, PodRecords::Verified);
        assert_eq!(a.listen, "0.0.0.0:53".parse::<SocketAddr>().unwrap());
        assert_eq!(a.metrics, "0.0.0.0:9153".parse::<SocketAddr>().unwrap());
        assert_eq!(a.cluster_domain, "example.org");
    }
}
