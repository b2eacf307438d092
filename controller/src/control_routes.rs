//! Routes from the control namespace (where the controller runs, at the fabric's `.1`) back to
//! every node's pod CIDR via that node's fabric address. A pod reaching `default/kubernetes`
//! (10.96.0.1:443 → 172.18.0.1:6443, not masqueraded, as in Kubernetes) gets its answer through
//! them. Kept in step with the Node objects, like the agents' routes between nodes.
//!
//! Only ever done when the controller runs in the control namespace, i.e. where the control
//! plane's fabric address is local: a controller started anywhere else (tests, by hand, the
//! host) must not touch that namespace's routes.

use crate::decoded::Decoded;
use crate::state::Shared;
use emu_api::typed::Node;
use std::collections::BTreeMap;
use std::process::Command;

pub struct ControlRoutes {
    enabled: bool,
    /// Pod CIDR → the node address it is routed via, as installed.
    installed: BTreeMap<String, String>,
}

impl ControlRoutes {
    pub fn new(shared: &Shared) -> ControlRoutes {
        let enabled = crate::services::api_server_ip(shared).is_some_and(is_local_address);
        if !enabled {
            tracing::info!("not in the control namespace: no routes to the pod networks from here");
        }
        ControlRoutes { enabled, installed: BTreeMap::new() }
    }

    /// `nodes` decodes the Node objects (each once until it changes).
    pub fn sync(&mut self, shared: &Shared, nodes: &mut Decoded<Node>) {
        if !self.enabled {
            return;
        }
        let want: BTreeMap<String, String> = nodes
            .list(&shared.store, "Node", None)
            .iter()
            .filter_map(|n| {
                let cidr = n.spec.as_ref()?.pod_cidr.as_deref()?;
                let ip = &n.status.as_ref()?.addresses.as_deref()?.iter().find(|a| a.type_ == "InternalIP")?.address;
                Some((cidr.to_string(), ip.to_string()))
            })
            .collect();
        for (cidr, via) in &want {
            if self.installed.get(cidr) != Some(via) && ip_route(&["replace", cidr, "via", via]) {
                self.installed.insert(cidr.clone(), via.clone());
            }
        }
        let gone: Vec<String> = self.installed.keys().filter(|c| !want.contains_key(*c)).cloned().collect();
        for cidr in gone {
            ip_route(&["del", &cidr]);
            self.installed.remove(&cidr);
        }
    }
}

fn ip_route(args: &[&str]) -> bool {
    match Command::new("ip").arg("route").args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::warn!(args = ?args, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "ip route failed; next pass retries");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot run ip");
            false
        }
    }
}

/// Whether `ip` is an address of this network namespace (binding to it succeeds only then).
fn is_local_address(ip: std::net::Ipv4Addr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}
