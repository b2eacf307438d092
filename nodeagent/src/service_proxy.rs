//! The node's service proxy loop (kube-proxy's job): watches Services and EndpointSlices, renders
//! the node's nftables ruleset with [`emu_dataplane::proxy`] and applies it through an [`NftRunner`].
//!
//! Level-triggered: every change recomputes the whole desired model (reusing the models of the
//! Services whose objects did not change). The first sync (and every
//! sync after a failure, and a periodic one that repairs drift) loads the full ruleset; in between
//! only the difference from the last applied model is sent, so one endpoint change is a tiny
//! transaction however many services exist.

use emu_dataplane::proxy;
use emu_host::nft::NftRunner;
use emu_logic::ipam;
use emu_proto::reflector::Snapshot;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the full ruleset is re-applied even without changes (repairs drift).
const FULL_RESYNC: Duration = Duration::from_secs(60);

pub struct ProxyConfig {
    pub node_name: String,
    pub cluster_pod_cidr: ipam::Ipv4Cidr,
    pub service_cidr: ipam::Ipv4Cidr,
    /// Where this node's node ports answer: its InternalIP and ExternalIP.
    pub node_ips: Vec<std::net::Ipv4Addr>,
}

/// The proxy's model of a snapshot of Services and EndpointSlices; `cache` keeps the models of
/// the Services whose objects did not change since the last snapshot.
pub fn model(cfg: &ProxyConfig, snap: &Snapshot, cache: &mut proxy::ModelCache) -> proxy::ProxyInput {
    let of_kind = |kind: &'static str| snap.objects.iter().filter(move |(k, _)| k.0 == kind).map(|(_, v)| v);
    let mut input = cache.input(&cfg.node_name, cfg.cluster_pod_cidr, cfg.service_cidr, of_kind("Service"), of_kind("EndpointSlice"));
    input.node_ips = cfg.node_ips.clone();
    input
}

/// Runs forever: one sync per change of the snapshot (changes arriving during a sync are
/// coalesced into the next one).
pub async fn run(cfg: ProxyConfig, nft: Arc<dyn NftRunner>, mut rx: tokio::sync::watch::Receiver<Snapshot>) {
    let mut applied: Option<proxy::ProxyInput> = None;
    let mut models = proxy::ModelCache::default();
    let mut health = crate::health::HealthServer::start();
    let mut last_full = Instant::now();
    loop {
        let snap = rx.borrow_and_update().clone();
        if snap.synced {
            let modelled = Instant::now();
            let want = model(&cfg, &snap, &mut models);
            let (model_us, remodelled) = (modelled.elapsed().as_micros() as u64, models.remodelled());
            let full = applied.is_none() || last_full.elapsed() >= FULL_RESYNC;
            let script = match (&applied, full) {
                (Some(old), false) => proxy::render_update(old, &want),
                // A full sync also deletes what is in the table but no longer wanted (drift, or
                // what a failed transaction or an earlier agent left).
                _ => {
                    let lister = nft.clone();
                    let listing = tokio::task::spawn_blocking(move || lister.list()).await.ok().and_then(Result::ok).unwrap_or_default();
                    proxy::render_resync(&want, &proxy::parse_listing(&listing))
                }
            };
            let started = Instant::now();
            let result = if script.is_empty() {
                Ok(())
            } else {
                let nft = nft.clone();
                let script_for_nft = script.clone();
                tokio::task::spawn_blocking(move || nft.apply(&script_for_nft))
                    .await
                    .unwrap_or_else(|e| Err(emu_host::nft::NftError::from_panic(e.to_string())))
            };
            match result {
                Ok(()) => {
                    if !script.is_empty() {
                        tracing::info!(
                            services = want.services.len(),
                            full,
                            bytes = script.len(),
                            model_us,
                            remodelled,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "service rules synced"
                        );
                        tracing::trace!(%script, "nft script");
                    }
                    if full {
                        last_full = Instant::now();
                    }
                    let stale: Vec<emu_host::conntrack::UdpFlow> = applied
                        .as_ref()
                        .map(|old| proxy::stale_udp_flows(old, &want))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| emu_host::conntrack::UdpFlow { cluster_ip: f.cluster_ip, port: f.port, endpoint_ip: f.endpoint_ip })
                        .collect();
                    if !stale.is_empty() {
                        // After the rules: a new datagram must not recreate the entry toward the old endpoint.
                        use emu_host::conntrack::Conntrack as _;
                        let deleted =
                            tokio::task::spawn_blocking(move || emu_host::conntrack::RealConntrack.delete_udp_flows(&stale)).await;
                        if let Ok(Err(e)) = deleted {
                            tracing::warn!(error = %e, "stale UDP flows to removed endpoints stay until they expire");
                        }
                    }
                    health.update(health_check_ports(&want));
                    applied = Some(want);
                }
                Err(e) => {
                    tracing::warn!(error = %e, full, "syncing service rules failed; the next sync loads the full ruleset");
                    applied = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(FULL_RESYNC) => {}
        }
    }
}

/// What each health check node port reports on this node: the Service's ready endpoints here.
fn health_check_ports(input: &proxy::ProxyInput) -> std::collections::BTreeMap<u16, crate::health::ServiceHealth> {
    input
        .services
        .iter()
        .filter_map(|svc| {
            let port = svc.health_check_node_port?;
            let local: std::collections::BTreeSet<std::net::Ipv4Addr> = svc
                .ports
                .iter()
                .flat_map(|p| p.endpoints.iter())
                .filter(|e| e.ready && e.node_name.as_deref() == Some(input.node_name.as_str()))
                .map(|e| e.ip)
                .collect();
            Some((
                port,
                crate::health::ServiceHealth { namespace: svc.namespace.clone(), name: svc.name.clone(), local_endpoints: local.len() },
            ))
        })
        .collect()
}
