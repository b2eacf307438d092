//! The shape of one emu cluster: its name, nodes and address ranges, and where its runtime state
//! lives. Written once by `emu up` (as `cluster.json` in the runtime directory) and read by every
//! daemon, so all of them agree on names and ranges.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where every cluster keeps its runtime state. Everything under `<RUNTIME_ROOT>/<cluster>` belongs
/// to that cluster and is removed by `emu down`.
pub const RUNTIME_ROOT: &str = "/run/emu";

/// Kubernetes version the emulated nodes report (kubelet version, `emu version`).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    pub name: String,
    pub nodes: Vec<NodeConfig>,
    /// The node network (the "fabric"), e.g. 172.18.0.0/16.
    pub fabric_cidr: String,
    /// The cluster's pod network, cut into one /`node_prefix` per node, e.g. 10.244.0.0/16.
    pub pod_cidr: String,
    pub node_prefix: u8,
    /// Virtual IPs of Services, e.g. 10.96.0.0/12.
    pub service_cidr: String,
    /// The outside world's network (198.51.100.0/24, TEST-NET-2): the external client has its
    /// first address, node i the (i+2)th as ExternalIP. Empty for clusters made before it existed.
    #[serde(default)]
    pub outside_cidr: String,
    /// The cloud load balancer's pool (203.0.113.0/24, TEST-NET-3): LoadBalancer Services' external
    /// addresses, reachable in the outside world. Empty for clusters made before it existed.
    #[serde(default)]
    pub load_balancer_cidr: String,
    /// How long a node may miss heartbeats (every 2 s) before it turns NotReady. Kubernetes'
    /// node-monitor-grace-period is 40 s; emu's default is short enough for tests.
    #[serde(default = "default_node_grace_seconds")]
    pub node_grace_seconds: u64,
    /// How long pods stay on a NotReady node before they are evicted (and replaced by their
    /// ReplicaSets). None: each pod's own toleration of `node.kubernetes.io/unreachable`
    /// (300 s unless the pod says otherwise, as in Kubernetes).
    #[serde(default)]
    pub eviction_seconds: Option<u64>,
    /// This machine's name among the machines of the cluster (label [`HOST_LABEL`] of its
    /// nodes). Empty when the cluster has a single machine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// This machine's underlay address: where the other machines' VXLAN reaches its fabric and
    /// the controller its agents. Empty when no other machine may join.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advertise_address: String,
    /// On a machine that joined: the control plane's join endpoint (`ADDRESS:PORT`), where its
    /// agents reach the API with their certificates. Empty on the control plane's machine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub control_plane: String,
    /// The MTU of the node and pod links; 0 for the kernel's default. Machines joined by VXLAN
    /// leave room for the encapsulation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The label of a node naming the machine (host) it runs on.
pub const HOST_LABEL: &str = "emu.dev/host";
/// The annotation of a node with its machine's underlay address (the VXLAN peers of the other
/// machines).
pub const UNDERLAY_ANNOTATION: &str = "emu.dev/underlay-address";
/// The annotation of a node that joined from another machine with its index in the cluster
/// (its fabric and outside addresses and pod CIDR follow from it).
pub const NODE_INDEX_ANNOTATION: &str = "emu.dev/node-index";
/// The VXLAN network identifiers of the stretched networks: the fabric and the outside world.
pub const FABRIC_VNI: u32 = 1;
pub const OUTSIDE_VNI: u32 = 2;
/// The VXLAN devices that stretch the fabric and the outside world over the machines' underlay
/// (in the fabric's and the outside world's namespaces).
pub const FABRIC_VXLAN: &str = "vx-fabric";
pub const OUTSIDE_VXLAN: &str = "vx-ext";

impl ClusterConfig {
    /// The other machines' underlay addresses, the VXLAN peers of this one: the control plane's
    /// (on a machine that joined) and each machine some node names (`underlay`: the nodes'
    /// [`UNDERLAY_ANNOTATION`]s), without this machine's own; sorted.
    pub fn vxlan_peers<'a>(&self, underlay: impl IntoIterator<Item = &'a str>) -> Vec<std::net::Ipv4Addr> {
        let control = self.control_plane.rsplit_once(':').and_then(|(a, _)| a.parse().ok());
        let own = self.advertise_address.parse().ok();
        let mut peers: Vec<std::net::Ipv4Addr> =
            underlay.into_iter().filter_map(|a| a.parse().ok()).chain(control).filter(|a| Some(*a) != own).collect();
        peers.sort();
        peers.dedup();
        peers
    }
}

/// emu's default for [`ClusterConfig::node_grace_seconds`].
pub const DEFAULT_NODE_GRACE_SECONDS: u64 = 10;

fn default_node_grace_seconds() -> u64 {
    DEFAULT_NODE_GRACE_SECONDS
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub name: String,
    /// 0-based position in the cluster; fixes the node's fabric address and port name.
    pub index: usize,
    /// InternalIP on the fabric.
    pub internal_ip: String,
    /// ExternalIP in the outside world (`eth1`); empty when the cluster has none.
    #[serde(default)]
    pub external_ip: String,
}

/// The node's table that keeps its edge as a cloud network keeps it: what arrives from the
/// outside world (`eth1`) must be for the node's own ExternalIP (node ports, the load
/// balancer's forwarded traffic, replies); a packet for a pod or a ClusterIP is dropped, as a VPC
/// never delivers those from the internet. Empty when the node has no ExternalIP.
pub const EDGE_TABLE: &str = "ip emu-edge";

impl NodeConfig {
    pub fn edge_script(&self) -> String {
        if self.external_ip.is_empty() {
            return String::new();
        }
        format!(
            "table {EDGE_TABLE}\ndelete table {EDGE_TABLE}\ntable {EDGE_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -300; policy accept;\n    iifname \"eth1\" ip daddr != {} counter drop\n  }}\n}}\n",
            self.external_ip
        )
    }
}

impl ClusterConfig {
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Paths of one cluster's runtime state.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(cluster: &str) -> Paths {
        Paths { root: PathBuf::from(RUNTIME_ROOT).join(cluster) }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("controller.sock")
    }
    pub fn store(&self) -> PathBuf {
        self.root.join("store.redb")
    }
    pub fn controller_pid(&self) -> PathBuf {
        self.root.join("controller.pid")
    }
    pub fn controller_log(&self) -> PathBuf {
        self.root.join("controller.log")
    }
    /// The port of the API server's HTTPS listener on the host's 127.0.0.1 (decimal text),
    /// written by the provider when it binds the listener: a restarted controller gets the same
    /// port back, so the kubeconfig `emu up` wrote stays valid.
    pub fn api_port(&self) -> PathBuf {
        self.root.join("api-port")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
    pub fn agent_pid(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.pid")
    }
    pub fn agent_log(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.log")
    }
    /// Where the node's agent serves the controller (service Node of the gRPC API).
    pub fn agent_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.sock")
    }
    /// Where the cloud daemon serves commands run in the outside world (`emu outside`).
    pub fn outside_socket(&self) -> PathBuf {
        self.root.join("outside.sock")
    }
    pub fn pods_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("pods")
    }
    pub fn pod_dir(&self, node: &str, pod_uid: &str) -> PathBuf {
        self.pods_dir(node).join(pod_uid)
    }
    /// The images' files: one directory per image, built by the first pod on this machine that
    /// uses the image (the "pull") and shared by every node's containers, which see it through
    /// their writable layers; gone with the cluster.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    /// The cluster CA's certificate (on a joined machine, the one it pinned when it joined).
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("pki").join("ca.crt")
    }
    /// A joined node's agent certificate and key (mode 0600).
    pub fn agent_cert(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.crt")
    }
    pub fn agent_key(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.key")
    }
    /// The machine's underlay network namespace, pinned (bind-mounted) when the cluster spans
    /// machines: the daemons, in namespaces of their own, make their sockets to other machines
    /// there.
    pub fn underlay_netns(&self) -> PathBuf {
        self.root.join("underlay.netns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_edge_takes_only_its_own_external_ip() {
        let mut n = NodeConfig { name: "node-1".into(), index: 0, internal_ip: "172.18.0.2".into(), external_ip: "198.51.100.2".into() };
        let script = n.edge_script();
        assert!(script.starts_with("table ip emu-edge\ndelete table ip emu-edge\n"), "{script}");
        assert!(script.contains("iifname \"eth1\" ip daddr != 198.51.100.2 counter drop"), "{script}");
        n.external_ip.clear();
        assert_eq!(n.edge_script(), "");
    }

    #[test]
    fn a_machines_vxlan_peers_are_the_others() {
        let c = ClusterConfig {
            name: "c".into(),
            nodes: vec![],
            fabric_cidr: String::new(),
            pod_cidr: String::new(),
            node_prefix: 24,
            service_cidr: String::new(),
            outside_cidr: String::new(),
            load_balancer_cidr: String::new(),
            node_grace_seconds: 10,
            eviction_seconds: None,
            host: "host-2".into(),
            advertise_address: "192.0.2.2".into(),
            control_plane: "192.0.2.1:6444".into(),
            mtu: 1450,
        };
        let peers = c.vxlan_peers(["192.0.2.3", "192.0.2.2", "192.0.2.3", "not an address"]);
        assert_eq!(peers, ["192.0.2.1", "192.0.2.3"].map(|a| a.parse::<std::net::Ipv4Addr>().unwrap()));
    }

    #[test]
    fn paths_are_under_the_cluster_root() {
        let p = Paths::new("demo");
        assert_eq!(p.socket(), PathBuf::from("/run/emu/demo/controller.sock"));
        assert_eq!(p.pod_dir("n1", "u"), PathBuf::from("/run/emu/demo/nodes/n1/pods/u"));
        assert_eq!(p.images_dir(), PathBuf::from("/run/emu/demo/images"));
    }
}
