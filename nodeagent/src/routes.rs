//! The node's routes to the other nodes' pods: `10.244.j.0/24 via <InternalIP of node j>` for
//! every other node *j* (docs/architecture.md, "Packet paths"), kept by the route syncer from the
//! Node objects, and put back with the service CIDR's route after the node's link was down (the
//! kernel drops the routes through a link that goes down).
//!
//! The routes are emu's own (protocol [`net::EMU_ROUTE_PROTOCOL`]): a sync adds and deletes only
//! those, so routes others added are left alone. The side effects go through [`net::Routes`]
//! (netlink in the node's namespace, or the recording [`net::FakeNet`] in the unit tests below).

use crate::trigger::{Backoff, Trigger};
use emu_api::typed::{self, Node};
use emu_host::net;
use emu_logic::ipam;
use emu_proto::reflector::Snapshot;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// How often the routes are synced without a change of the Nodes.
pub const PERIOD: Duration = Duration::from_secs(10);
/// The retry after a failed sync: 0.5 s, doubling up to the period while syncs keep failing.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), PERIOD);

/// The routes a node needs, from the Node objects: every other node's pod CIDR via its
/// InternalIP on the fabric, as (network, prefix, via).
pub fn node_routes<'a>(nodes: impl Iterator<Item = &'a Node>, me: &str) -> Vec<(Ipv4Addr, u8, Ipv4Addr)> {
    nodes
        .filter(|n| n.metadata.name.as_deref().unwrap_or_default() != me)
        .filter_map(|n| {
            let cidr: ipam::Ipv4Cidr = n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
            let addresses = n.status.as_ref()?.addresses.as_deref()?;
            let via = addresses.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()?;
            Some((cidr.addr, cidr.prefix, via))
        })
        .collect()
}

/// The Nodes among `objects` (JSON of any kinds), decoded.
pub fn nodes<'a>(objects: impl Iterator<Item = &'a Value>) -> Vec<Node> {
    typed::decode_all(objects.filter(|o| o["kind"] == "Node"))
}

/// A Node as the route syncer's reflector keeps it: decoded once per change (one that does not
/// decode, which admission rules out, gives no route).
pub fn decode_node(v: Value) -> Node {
    typed::decode(&v).unwrap_or_else(|e| {
        tracing::warn!(node = ?v["metadata"]["name"], error = %e, "a Node does not decode; no route to it");
        Node::default()
    })
}

/// Puts back the routes the kernel dropped when the node's link went down: to the service CIDR,
/// and to the other nodes' pods (`nodes`: the Node objects). In the node's namespace `node_ns`.
pub async fn restore_routes<'a>(
    node_ns: &std::path::Path,
    service_cidr: &str,
    nodes: impl Iterator<Item = &'a Node>,
    me: &str,
) -> anyhow::Result<()> {
    restore_routes_with(&net::RealNet::new(node_ns), service_cidr, nodes, me).await
}

/// [`restore_routes`] through `routes`.
pub async fn restore_routes_with<'a>(
    routes: &dyn net::Routes,
    service_cidr: &str,
    nodes: impl Iterator<Item = &'a Node>,
    me: &str,
) -> anyhow::Result<()> {
    let service: ipam::Ipv4Cidr = service_cidr.parse().map_err(|e| anyhow::anyhow!("service CIDR {service_cidr:?}: {e}"))?;
    let want = node_routes(nodes, me);
    routes.replace_device_route(service.addr, service.prefix, net::ETH0).await?;
    net::sync_emu_routes(routes, &want).await?;
    Ok(())
}

/// The route syncer of node `me`: a sync per change of the Nodes (`rx`) and every [`PERIOD`],
/// a failed one retried after [`RETRY`]. Returns when the snapshot's sender is gone.
pub async fn sync_routes(me: String, routes: Arc<dyn net::Routes>, rx: tokio::sync::watch::Receiver<Snapshot<Node>>) {
    let mut trigger = Trigger::new(rx, PERIOD, RETRY);
    loop {
        let snap = trigger.latest();
        let ok = !snap.synced || {
            let want = node_routes(snap.objects.values().map(|n| n.as_ref()), &me);
            match net::sync_emu_routes(routes.as_ref(), &want).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "syncing routes");
                    false
                }
            }
        };
        if !trigger.wait(ok).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_host::net::{FakeNet, NetCall, Route};
    use serde_json::json;
    use tokio::time::Instant;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    /// Node `name` with pod CIDR 10.244.`i`.0/24 and InternalIP 172.18.0.`i+2`.
    fn node(name: &str, i: u8) -> Node {
        decode_node(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": format!("10.244.{i}.0/24")},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", i + 2)}, {"type": "Hostname", "address": name}]},
        }))
    }

    fn snapshot(nodes: &[Node]) -> Snapshot<Node> {
        let cache =
            nodes.iter().map(|n| (("Node".into(), String::new(), typed::key(&n.metadata).1.to_string()), Arc::new(n.clone()))).collect();
        Snapshot { objects: Arc::new(cache), synced: true }
    }

    fn route_to(i: u8) -> Route {
        Route::emu(Ipv4Addr::new(10, 244, i, 0), 24, Ipv4Addr::new(172, 18, 0, i + 2))
    }

    /// What a node's table holds besides emu's routes: its own networks and a route someone
    /// else added.
    fn foreign() -> Vec<Route> {
        vec![
            Route { dst: ip("10.96.0.0"), prefix: 12, via: None, emu: false },
            Route { dst: ip("10.99.0.0"), prefix: 16, via: Some(ip("172.18.0.3")), emu: false },
            Route { dst: ip("10.244.0.0"), prefix: 24, via: None, emu: false },
            Route { dst: ip("172.18.0.0"), prefix: 16, via: None, emu: false },
        ]
    }

    fn with(mut routes: Vec<Route>, emu: &[u8]) -> Vec<Route> {
        routes.extend(emu.iter().map(|i| route_to(*i)));
        routes.sort();
        routes
    }

    #[tokio::test(start_paused = true)]
    async fn routes_follow_the_nodes_and_foreign_routes_stay() {
        let net = Arc::new(FakeNet::new());
        net.set_routes(&foreign());
        let (a, b, c) = (node("a", 0), node("b", 1), node("c", 2));
        let (tx, rx) = tokio::sync::watch::channel(snapshot(&[a.clone(), b.clone(), c.clone()]));
        tokio::spawn(sync_routes("a".into(), net.clone(), rx));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(net.routes(), with(foreign(), &[1, 2]));
        net.take_calls();
        // Node c is removed, node d joins.
        tx.send(snapshot(&[a.clone(), b.clone(), node("d", 3)])).expect("loop alive");
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(net.routes(), with(foreign(), &[1, 3]));
        assert_eq!(
            net.take_calls(),
            [NetCall::ReplaceEmuRoute { dst: ip("10.244.3.0"), prefix: 24, via: ip("172.18.0.5") }, NetCall::Delete(route_to(2)),]
        );
        // Nothing changes: the periodic sync finds nothing to do.
        let attempts = net.attempts();
        tokio::time::sleep(PERIOD).await;
        assert_eq!(net.attempts(), attempts + 1, "one list");
        assert!(net.take_calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sync_is_retried_after_a_backoff() {
        let net = Arc::new(FakeNet::new());
        net.fail_next(2);
        let (_tx, rx) = tokio::sync::watch::channel(snapshot(&[node("a", 0), node("b", 1)]));
        let start = Instant::now();
        tokio::spawn(sync_routes("a".into(), net.clone(), rx));
        // The list fails at once and after 0.5 s; the third pass, 1 s later, adds the route.
        tokio::time::sleep(Duration::from_millis(1_499)).await;
        assert_eq!((net.attempts(), net.routes().len()), (2, 0));
        tokio::time::sleep_until(start + Duration::from_millis(1_501)).await;
        assert_eq!(net.routes(), [route_to(1)]);
    }

    #[tokio::test]
    async fn restoring_puts_back_the_service_route_and_the_node_routes() {
        let net = FakeNet::new();
        let nodes = [node("a", 0), node("b", 1), node("c", 2)];
        restore_routes_with(&net, "10.96.0.0/12", nodes.iter(), "b").await.expect("restore");
        assert_eq!(net.calls()[0], NetCall::ReplaceDeviceRoute { dst: ip("10.96.0.0"), prefix: 12, dev: "eth0".into() });
        let mut want = vec![Route { dst: ip("10.96.0.0"), prefix: 12, via: None, emu: false }, route_to(0), route_to(2)];
        want.sort();
        assert_eq!(net.routes(), want);
        let err = restore_routes_with(&net, "nonsense", nodes.iter(), "b").await.expect_err("bad CIDR");
        assert!(err.to_string().contains("service CIDR \"nonsense\""), "{err}");
    }
}
