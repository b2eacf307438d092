//! The VXLAN peers of this node's machine, in a cluster of several machines: every other machine
//! some Node names (annotation `emu.dev/underlay-address`) and the control plane's. Kept as
//! machines join and leave, by every agent of the machine alike (the sync is level-triggered, so
//! several agents doing it agree), on the devices that stretch the machine's fabric and outside
//! world (`emu join` and `emu up` made them, with the peers known then).

use crate::trigger::Trigger;
use emu_api::typed::Node;
use emu_host::net;
use emu_logic::cluster::{ClusterConfig, FABRIC_VXLAN, OUTSIDE_VXLAN, UNDERLAY_ANNOTATION};
use emu_proto::reflector::Snapshot;

/// Runs forever in the agent; returns at once on a machine alone.
pub async fn sync_peers(cluster: ClusterConfig, rx: tokio::sync::watch::Receiver<Snapshot<Node>>) {
    if cluster.advertise_address.is_empty() {
        return;
    }
    let devices = [
        (net::netns_path(&emu_api::naming::netns_fabric(&cluster.name)), FABRIC_VXLAN),
        (net::netns_path(&emu_api::naming::netns_outside(&cluster.name)), OUTSIDE_VXLAN),
    ];
    let mut trigger = Trigger::new(rx, crate::routes::PERIOD, crate::routes::RETRY);
    loop {
        let snap = trigger.latest();
        let mut ok = true;
        if snap.synced {
            let underlay =
                snap.objects.values().filter_map(|n| n.metadata.annotations.as_ref()?.get(UNDERLAY_ANNOTATION).map(String::as_str));
            let peers = cluster.vxlan_peers(underlay);
            for (ns, device) in &devices {
                if let Err(e) = emu_host::overlay::sync_vxlan_peers(ns, device, &peers).await {
                    tracing::warn!(device, error = %e, "syncing the VXLAN peers");
                    ok = false;
                }
            }
        }
        if !trigger.wait(ok).await {
            return;
        }
    }
}
