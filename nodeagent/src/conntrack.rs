//! Deleting stale UDP conntrack entries with the `conntrack` tool, in the agent's node namespace:
//! after an endpoint leaves a UDP service, datagrams of an existing flow would otherwise keep
//! going to it (`emu_dataplane::proxy::stale_udp_flows` decides which flows).

use emu_dataplane::proxy::StaleUdpFlow;
use std::process::{Command, Stdio};

/// Deletes the conntrack entries of each flow. Best effort: a flow with no entry is the common
/// case (`conntrack` then exits 1), and a missing tool is logged, not fatal.
pub fn delete_udp_flows(flows: &[StaleUdpFlow]) {
    for f in flows {
        let status = Command::new("conntrack")
            .args(["-D", "-p", "udp", "--orig-dst", &f.cluster_ip.to_string(), "--orig-port-dst", &f.port.to_string()])
            .args(["--reply-src", &f.endpoint_ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(_) => tracing::debug!(cluster_ip = %f.cluster_ip, port = f.port, endpoint = %f.endpoint_ip, "stale UDP flows deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot run conntrack: stale UDP flows to removed endpoints stay until they expire");
                return;
            }
        }
    }
}
