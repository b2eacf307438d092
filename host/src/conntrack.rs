//! Deleting UDP conntrack entries with the `conntrack` tool, in the calling process's network
//! namespace, behind the narrow [`Conntrack`] trait: after an endpoint leaves a UDP service,
//! datagrams of an existing flow would otherwise keep going to it (the proxy decides which flows
//! are stale).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::fake::Recorder;

/// A UDP flow as conntrack knows it: sent to `cluster_ip:port`, answered by `endpoint_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UdpFlow {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub endpoint_ip: Ipv4Addr,
}

/// Why flows could not be deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConntrackError {
    #[error("cannot run conntrack: {reason} (`apt-get install conntrack`)")]
    Spawn { reason: String },
    #[error("conntrack #{attempt} failed on purpose (FakeConntrack told to fail)")]
    Injected { attempt: usize },
}

/// Deletes conntrack entries.
pub trait Conntrack: Send + Sync {
    /// Deletes the entries of each flow. A flow with no entry is not an error (the common case).
    fn delete_udp_flows(&self, flows: &[UdpFlow]) -> Result<(), ConntrackError>;
}

/// Runs the real `conntrack -D`, one process per flow. Blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealConntrack;

impl Conntrack for RealConntrack {
    fn delete_udp_flows(&self, flows: &[UdpFlow]) -> Result<(), ConntrackError> {
        for f in flows {
            // `conntrack` exits 1 when there was no entry: only a tool that cannot run is an error.
            Command::new("conntrack")
                .args(["-D", "-p", "udp", "--orig-dst", &f.cluster_ip.to_string(), "--orig-port-dst", &f.port.to_string()])
                .args(["--reply-src", &f.endpoint_ip.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| ConntrackError::Spawn { reason: e.to_string() })?;
            tracing::debug!(cluster_ip = %f.cluster_ip, port = f.port, endpoint = %f.endpoint_ip, "stale UDP flows deleted");
        }
        Ok(())
    }
}

/// Records the flows it is asked to delete; can be told to fail.
#[derive(Debug, Default)]
pub struct FakeConntrack {
    deletes: Recorder<Vec<UdpFlow>>,
}

impl FakeConntrack {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail (and are not recorded).
    pub fn fail_next(&self, n: usize) {
        self.deletes.fail_next(n);
    }

    /// Every flow deleted, oldest call first.
    pub fn deleted(&self) -> Vec<UdpFlow> {
        self.deletes.calls().into_iter().flatten().collect()
    }

    /// How many calls were attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.deletes.attempts()
    }
}

impl Conntrack for FakeConntrack {
    fn delete_udp_flows(&self, flows: &[UdpFlow]) -> Result<(), ConntrackError> {
        self.deletes.attempt(Some(flows.to_vec())).map_err(|attempt| ConntrackError::Injected { attempt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_flows_and_fails_on_demand() {
        let flow = |last| UdpFlow { cluster_ip: Ipv4Addr::new(10, 96, 0, 10), port: 53, endpoint_ip: Ipv4Addr::new(10, 244, 0, last) };
        let ct = FakeConntrack::new();
        ct.delete_udp_flows(&[flow(2), flow(3)]).expect("first");
        ct.fail_next(1);
        assert_eq!(ct.delete_udp_flows(&[flow(4)]), Err(ConntrackError::Injected { attempt: 2 }));
        assert_eq!(ct.deleted(), [flow(2), flow(3)]);
        assert_eq!(ct.attempts(), 2);
    }
}
