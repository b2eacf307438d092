//! The node's service proxy loop (kube-proxy's job): watches Services and EndpointSlices, renders
//! the node's nftables ruleset with [`emu_dataplane::proxy`] and applies it through an [`NftRunner`].
//!
//! Level-triggered: every change recomputes the whole desired model (reusing the models of the
//! Services whose objects did not change). The first sync (and every
//! sync after a failure, and a periodic one that repairs drift) loads the full ruleset; in between
//! only the difference from the last applied model is sent, so one endpoint change is a tiny
//! transaction however many services exist. A failed sync is retried after a back-off (0.5 s
//! doubling up to 10 s while it keeps failing).
//!
//! The loop's side effects are the [`ProxyHost`]'s traits (the real `nft` and `conntrack`, or
//! the recording fakes of `emu_host` in the unit tests below) and the health ports' update,
//! which the caller passes in; its timers are tokio's.

use crate::health::ServiceHealth;
use crate::trigger::{Backoff, Trigger};
use emu_dataplane::proxy;
use emu_host::conntrack::{Conntrack, UdpFlow};
use emu_host::nft::{NftError, NftRunner};
use emu_logic::ipam;
use emu_proto::reflector::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the full ruleset is re-applied even without changes (repairs drift).
pub const FULL_RESYNC: Duration = Duration::from_secs(60);
/// The retry after a failed sync: 0.5 s, doubling while syncs keep failing.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

pub struct ProxyConfig {
    pub node_name: String,
    pub cluster_pod_cidr: ipam::Ipv4Cidr,
    pub service_cidr: ipam::Ipv4Cidr,
    /// Where this node's node ports answer: its InternalIP and ExternalIP.
    pub node_ips: Vec<std::net::Ipv4Addr>,
}

/// The proxy's side effects on the node.
#[derive(Clone)]
pub struct ProxyHost {
    pub nft: Arc<dyn NftRunner>,
    pub conntrack: Arc<dyn Conntrack>,
}

impl ProxyHost {
    /// The real `nft` and `conntrack`, in the calling process's network namespace (the agent
    /// lives in its node's).
    pub fn real() -> ProxyHost {
        ProxyHost { nft: Arc::new(emu_host::nft::RealNft::new()), conntrack: Arc::new(emu_host::conntrack::RealConntrack) }
    }
}

/// The proxy's model of a snapshot of Services and EndpointSlices; `cache` keeps the models of
/// the Services whose objects did not change since the last snapshot.
pub fn model(cfg: &ProxyConfig, snap: &Snapshot, cache: &mut proxy::ModelCache) -> proxy::ProxyInput {
    let of_kind = |kind: &'static str| snap.objects.iter().filter(move |(k, _)| k.0 == kind).map(|(_, v)| v);
    let mut input = cache.input(&cfg.node_name, cfg.cluster_pod_cidr, cfg.service_cidr, of_kind("Service"), of_kind("EndpointSlice"));
    input.node_ips = cfg.node_ips.clone();
    input
}

/// Runs forever in the agent: [`drive`] with the real `nft` and `conntrack` and the health ports
/// served.
pub async fn run(cfg: ProxyConfig, host: ProxyHost, rx: tokio::sync::watch::Receiver<Snapshot>) {
    let mut health = crate::health::HealthServer::start();
    drive(Proxy::new(cfg, host), rx, |ports| health.update(ports)).await
}

/// One sync per change of the snapshot (changes arriving during a sync are coalesced into the
/// next one), one every [`FULL_RESYNC`], and after a failed sync a retry after a back-off
/// ([`RETRY`]). `synced` gets the health check ports after each successful sync. Returns when
/// the snapshot's sender is gone.
pub async fn drive(mut proxy: Proxy, rx: tokio::sync::watch::Receiver<Snapshot>, mut synced: impl FnMut(BTreeMap<u16, ServiceHealth>)) {
    let mut trigger = Trigger::new(rx, FULL_RESYNC, RETRY);
    loop {
        let snap = trigger.latest();
        let ok = !snap.synced
            || match proxy.sync(&snap).await {
                Ok(ports) => {
                    synced(ports);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "syncing service rules failed; the next sync loads the full ruleset");
                    false
                }
            };
        if !trigger.wait(ok).await {
            return;
        }
    }
}

/// What the proxy knows between syncs.
pub struct Proxy {
    cfg: ProxyConfig,
    host: ProxyHost,
    /// The model whose rules are in the table; None before the first sync and after a failure
    /// (the next sync is then a full one).
    applied: Option<proxy::ProxyInput>,
    models: proxy::ModelCache,
    last_full: Option<Instant>,
}

impl Proxy {
    pub fn new(cfg: ProxyConfig, host: ProxyHost) -> Proxy {
        Proxy { cfg, host, applied: None, models: proxy::ModelCache::default(), last_full: None }
    }

    /// Makes the table what `snap` wants: the full ruleset on the first sync, after a failure
    /// and once every [`FULL_RESYNC`], else the difference from the last model applied; then
    /// deletes the conntrack entries of UDP flows to endpoints that left. Returns the health
    /// check ports to serve.
    pub async fn sync(&mut self, snap: &Snapshot) -> Result<BTreeMap<u16, ServiceHealth>, NftError> {
        let modelled = Instant::now();
        let want = model(&self.cfg, snap, &mut self.models);
        let (model_us, remodelled) = (modelled.elapsed().as_micros() as u64, self.models.remodelled());
        let full = self.applied.is_none() || self.last_full.is_none_or(|t| t.elapsed() >= FULL_RESYNC);
        let script = match (&self.applied, full) {
            (Some(old), false) => proxy::render_update(old, &want),
            // A full sync also deletes what is in the table but no longer wanted (drift, or
            // what a failed transaction or an earlier agent left).
            _ => {
                let lister = self.host.nft.clone();
                let listing = tokio::task::spawn_blocking(move || lister.list()).await.ok().and_then(Result::ok).unwrap_or_default();
                proxy::render_resync(&want, &proxy::parse_listing(&listing))
            }
        };
        let started = Instant::now();
        if !script.is_empty() {
            let (nft, text) = (self.host.nft.clone(), script.clone());
            let applied =
                tokio::task::spawn_blocking(move || nft.apply(&text)).await.unwrap_or_else(|e| Err(NftError::from_panic(e.to_string())));
            if let Err(e) = applied {
                self.applied = None;
                return Err(e);
            }
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
            self.last_full = Some(Instant::now());
        }
        let stale: Vec<UdpFlow> = self
            .applied
            .as_ref()
            .map(|old| proxy::stale_udp_flows(old, &want))
            .unwrap_or_default()
            .into_iter()
            .map(|f| UdpFlow { cluster_ip: f.cluster_ip, port: f.port, endpoint_ip: f.endpoint_ip })
            .collect();
        if !stale.is_empty() {
            // After the rules: a new datagram must not recreate the entry toward the old endpoint.
            let conntrack = self.host.conntrack.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || conntrack.delete_udp_flows(&stale)).await {
                tracing::warn!(error = %e, "stale UDP flows to removed endpoints stay until they expire");
            }
        }
        let ports = health_check_ports(&want);
        self.applied = Some(want);
        Ok(ports)
    }
}

/// What each health check node port reports on this node: the Service's ready endpoints here.
fn health_check_ports(input: &proxy::ProxyInput) -> BTreeMap<u16, ServiceHealth> {
    input
        .services
        .iter()
        .filter_map(|svc| {
            let port = svc.health_check_node_port?;
            let local: BTreeSet<std::net::Ipv4Addr> = svc
                .ports
                .iter()
                .flat_map(|p| p.endpoints.iter())
                .filter(|e| e.ready && e.node_name.as_deref() == Some(input.node_name.as_str()))
                .map(|e| e.ip)
                .collect();
            Some((port, ServiceHealth { namespace: svc.namespace.clone(), name: svc.name.clone(), local_endpoints: local.len() }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The loop against the recording fakes, with tokio's clock paused: a test's `sleep`
    //! advances the clock as soon as every task waits (and not while a blocking call of the loop
    //! is running), so the loop has done everything due before the test wakes.
    use super::*;
    use emu_host::conntrack::FakeConntrack;
    use emu_host::nft::FakeNft;
    use serde_json::{json, Value};
    use std::net::Ipv4Addr;

    const NODE: &str = "node-a";
    const FULL: &str = "# emu service proxy: full sync of node node-a";
    const UPDATE: &str = "# emu service proxy: update of node node-a";

    fn config() -> ProxyConfig {
        ProxyConfig {
            node_name: NODE.into(),
            cluster_pod_cidr: "10.244.0.0/16".parse().expect("CIDR"),
            service_cidr: "10.96.0.0/12".parse().expect("CIDR"),
            node_ips: vec![Ipv4Addr::new(172, 18, 0, 2)],
        }
    }

    /// Service `svc-<i>` at 10.96.0.<i+10> with one port of `protocol` and its endpoints.
    fn service(i: usize, protocol: &str, endpoints: &[&str]) -> [Value; 2] {
        let name = format!("svc-{i}");
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": format!("10.96.0.{}", i + 10),
                     "ports": [{"name": "p", "protocol": protocol, "port": 53, "targetPort": 53}]},
        });
        let eps: Vec<Value> = endpoints
            .iter()
            .map(|ip| json!({"addresses": [ip], "nodeName": NODE, "conditions": {"ready": true, "serving": true, "terminating": false}}))
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": format!("{name}-abcde"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "p", "protocol": protocol, "port": 53}], "endpoints": eps,
        });
        [svc, slice]
    }

    fn snapshot(objects: impl IntoIterator<Item = Value>) -> Snapshot {
        let cache = objects
            .into_iter()
            .map(|o| {
                let key = (
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    "default".to_string(),
                    o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                );
                (key, Arc::new(o))
            })
            .collect();
        Snapshot { objects: Arc::new(cache), synced: true }
    }

    /// `n` TCP services with two endpoints each.
    fn services(n: usize) -> Vec<Value> {
        (0..n).flat_map(|i| service(i, "TCP", &["10.244.0.2", "10.244.0.3"])).collect()
    }

    struct Running {
        nft: Arc<FakeNft>,
        conntrack: Arc<FakeConntrack>,
        tx: tokio::sync::watch::Sender<Snapshot>,
        started: Instant,
    }

    /// The loop on its own task, fed by a watch channel holding `first`.
    fn start(first: Snapshot, nft_failures: usize) -> Running {
        let (nft, conntrack) = (Arc::new(FakeNft::new()), Arc::new(FakeConntrack::new()));
        nft.fail_next(nft_failures);
        let host = ProxyHost { nft: nft.clone(), conntrack: conntrack.clone() };
        let (tx, rx) = tokio::sync::watch::channel(first);
        tokio::spawn(drive(Proxy::new(config(), host), rx, |_| {}));
        Running { nft, conntrack, tx, started: Instant::now() }
    }

    impl Running {
        /// Lets the loop run until `at` after the start.
        async fn until(&self, at: Duration) {
            tokio::time::sleep_until(self.started + at).await;
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_nft_run_is_retried_with_backoff_until_it_succeeds() {
        let run = start(snapshot(services(3)), 3);
        // Attempts at 0, 0.5 s, 1.5 s (0.5 + 1), 3.5 s (1.5 + 2): the fourth succeeds.
        for (at, attempts) in [(ms(1), 1), (ms(499), 1), (ms(501), 2), (ms(1_499), 2), (ms(1_501), 3), (ms(3_499), 3), (ms(3_501), 4)] {
            run.until(at).await;
            assert_eq!(run.nft.attempts(), attempts, "at {at:?}");
        }
        let scripts = run.nft.scripts();
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].starts_with(FULL), "{}", scripts[0]);
        // Then quiet until the periodic resync.
        run.until(ms(30_000)).await;
        assert_eq!(run.nft.attempts(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_full_ruleset_is_loaded_every_minute_and_after_a_failure() {
        let run = start(snapshot(services(3)), 0);
        run.until(ms(1)).await;
        assert!(run.nft.take_scripts()[0].starts_with(FULL));
        // A change: an update. Nothing changes for a minute: a full sync.
        run.tx.send(snapshot(services(4))).expect("loop alive");
        run.until(ms(2)).await;
        let update = run.nft.take_scripts();
        assert_eq!(update.len(), 1);
        assert!(update[0].starts_with(UPDATE), "{}", update[0]);
        // The period counts from the last pass (at 1 ms).
        run.until(FULL_RESYNC).await;
        assert!(run.nft.take_scripts().is_empty());
        run.until(FULL_RESYNC + ms(2)).await;
        let resync = run.nft.take_scripts();
        assert_eq!(resync.len(), 1);
        assert!(resync[0].starts_with(FULL), "periodic resync: {}", resync[0]);
        // A failed update: the retry half a second later loads the full ruleset.
        let t = FULL_RESYNC + ms(10);
        run.until(t).await;
        run.nft.fail_next(1);
        run.tx.send(snapshot(services(5))).expect("loop alive");
        run.until(t + ms(1)).await;
        assert!(run.nft.take_scripts().is_empty());
        assert_eq!(run.nft.attempts(), 4);
        run.until(t + ms(501)).await;
        let retried = run.nft.take_scripts();
        assert_eq!(retried.len(), 1);
        assert!(retried[0].starts_with(FULL) && retried[0].contains("svc-4"), "{}", retried[0]);
        // And then updates again.
        run.tx.send(snapshot(services(6))).expect("loop alive");
        run.until(t + ms(502)).await;
        assert!(run.nft.take_scripts()[0].starts_with(UPDATE));
    }

    #[tokio::test(start_paused = true)]
    async fn one_endpoint_change_among_many_services_is_a_small_transaction() {
        let mut objects = services(200);
        let run = start(snapshot(objects.clone()), 0);
        run.until(ms(1)).await;
        let full = run.nft.take_scripts().remove(0);
        // svc-7 loses an endpoint.
        let [_, slice] = service(7, "TCP", &["10.244.0.2"]);
        let at = objects.iter().position(|o| o["metadata"]["name"] == "svc-7-abcde").expect("slice of svc-7");
        objects[at] = slice;
        run.tx.send(snapshot(objects)).expect("loop alive");
        run.until(ms(2)).await;
        let update = run.nft.take_scripts().remove(0);
        assert!(update.starts_with(UPDATE), "{update}");
        assert!(update.len() * 50 < full.len(), "{} bytes of {}:\n{update}", update.len(), full.len());
        assert!(update.contains("svc-7") && !update.contains("svc-8"), "{update}");
        // Nothing changed: nothing sent.
        run.tx.send_modify(|_| {});
        run.until(ms(3)).await;
        assert!(run.nft.take_scripts().is_empty());
        assert_eq!(run.nft.attempts(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn udp_flows_to_a_removed_endpoint_are_deleted_after_the_rules() {
        let dns = |eps: &[&str]| snapshot(service(0, "UDP", eps));
        let run = start(dns(&["10.244.0.2", "10.244.0.3"]), 0);
        run.until(ms(1)).await;
        assert!(run.conntrack.deleted().is_empty());
        run.tx.send(dns(&["10.244.0.2"])).expect("loop alive");
        run.until(ms(2)).await;
        let flow = UdpFlow { cluster_ip: Ipv4Addr::new(10, 96, 0, 10), port: 53, endpoint_ip: Ipv4Addr::new(10, 244, 0, 3) };
        assert_eq!(run.conntrack.deleted(), [flow]);
        assert_eq!(run.nft.scripts().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_synced_before_the_first_full_list() {
        let run = start(Snapshot::default(), 0);
        run.until(ms(5)).await;
        assert_eq!(run.nft.attempts(), 0);
        run.tx.send(snapshot(services(1))).expect("loop alive");
        run.until(ms(6)).await;
        assert_eq!(run.nft.attempts(), 1);
    }
}
