//! Deleting UDP conntrack entries with the `conntrack` tool, in the calling process's network
//! namespace: after an endpoint leaves a UDP service, datagrams of an existing flow would otherwise
//! keep going to it (the proxy decides which flows are stale).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A UDP flow as conntrack knows it: sent to `cluster_ip:port`, answered by `endpoint_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFlow {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub endpoint_ip: Ipv4Addr,
}

/// Deletes the conntrack entries of each flow. Best effort: a flow with no entry is the common
/// case (`conntrack` then exits 1), and a missing tool is logged, not fatal.
pub fn delete_udp_flows(flows: &[UdpFlow]) {
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
