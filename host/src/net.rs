//! Network plumbing with netlink: namespaces, the fabric bridge, node and pod links, routes.
//!
//! Topology (docs/architecture.md, "Namespaces and addresses"): the fabric netns holds bridge `fabric0`; each node netns plugs into it
//! with `eth0` (a veth whose other end is a port of `fabric0`), owns bridge `cni0` with the first
//! address of its pod CIDR and forwards between them; each pod netns has `eth0`, a veth to `cni0`,
//! and a default route via the `cni0` address. Only pods have a default route, and it ends in
//! their node, which has routes only to the fabric and to the pod CIDRs: nothing leaves emu.
//!
//! Threads and namespaces (docs/architecture.md, "Conventions"): no tokio worker ever calls `setns`. To act inside a
//! namespace we open a netlink socket on a short-lived std thread that entered it; a socket keeps
//! the namespace it was created in, so tokio drives it afterwards from any thread. Each veth end is
//! created directly in its final namespace (IFLA_NET_NS_FD on the peer), never moved.

mod ipcmd;
mod netlink;
mod netns;
mod ops;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

pub use ipcmd::setup_pod_with_ip_commands;
pub use netlink::{Netlink, RealNet, EMU_ROUTE_PROTOCOL};
pub use netns::{create_named_netns, delete_named_netns, enter_netns, list_named_netns, netns_path, write_sysctls};
pub use ops::{route_changes, sync_emu_routes, FakeNamespaces, FakeNet, Links, NamedNamespaces, Namespaces, NetCall, Route, Routes};

/// The bridge in the fabric namespace that every node's `eth0` plugs into.
pub const FABRIC_BRIDGE: &str = "fabric0";
/// The bridge in each node namespace that every pod's `eth0` plugs into.
pub const CNI_BRIDGE: &str = "cni0";
/// The name of the node's and the pod's interface, as in Kubernetes.
pub const ETH0: &str = "eth0";
/// The bridge of the outside world that every node's `eth1` plugs into.
pub const OUTSIDE_BRIDGE: &str = "ext0";
/// A node's interface to the outside world, holding its ExternalIP.
pub const ETH1: &str = "eth1";
/// The bridge of an emulated LAN that every emulated host's `eth0` plugs into.
pub const LAN_BRIDGE: &str = "lan0";

/// What failed, in which namespace, and why. The cause is part of the message (not a `source`)
/// so that a single `%err` in a log line says everything.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A namespace could not be created, entered, mounted or listed, or a sysctl written.
    #[error("network namespace {ns}: {op}: {cause}{hint}", hint = root_hint(cause))]
    Netns { ns: String, op: String, cause: std::io::Error },
    /// A netlink request was refused by the kernel.
    #[error("network namespace {ns}: {op}: {cause}{hint}", hint = root_hint(cause))]
    Netlink { ns: String, op: String, cause: std::io::Error },
    /// Something that must exist first does not (e.g. `cni0` before a pod is set up).
    #[error("network namespace {ns}: {what}")]
    Missing { ns: String, what: String },
    /// An `ip` command failed.
    #[error("`{argv}` failed ({status}): {stderr}")]
    Command { argv: String, status: String, stderr: String },
    /// A fake ([`FakeNet`]) was told to fail.
    #[error("{op} #{attempt} failed on purpose (FakeNet told to fail)")]
    Injected { op: String, attempt: usize },
}

fn root_hint(cause: &std::io::Error) -> &'static str {
    if cause.raw_os_error() == Some(libc::EPERM) {
        " (emu's network set-up needs root)"
    } else {
        ""
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Brings up `lo` and the bridge `fabric0` in the fabric namespace. Idempotent.
pub async fn setup_fabric(fabric_ns: &Path) -> Result<()> {
    setup_switch(fabric_ns, FABRIC_BRIDGE).await
}

/// Brings up `lo` and the bridge `lan0` (no address) in the namespace of an emulated LAN, the
/// underlay that emulated hosts ([`connect_host`]) share. Idempotent.
pub async fn setup_lan(lan_ns: &Path) -> Result<()> {
    setup_switch(lan_ns, LAN_BRIDGE).await
}

/// The outside world of a machine that joined a cluster: `lo` and bridge `ext0` without an
/// address (the external client and the balancer's pool live on the control plane's machine,
/// whose outside world this one's is stretched to). Idempotent.
pub async fn setup_outside_switch(outside_ns: &Path) -> Result<()> {
    setup_switch(outside_ns, OUTSIDE_BRIDGE).await
}

/// `lo` and an address-less bridge `bridge`, both up: a namespace that is only a switch.
async fn setup_switch(ns: &Path, bridge: &str) -> Result<()> {
    let nl = Netlink::open(Some(ns)).await?;
    nl.set_up("lo", true).await?;
    nl.ensure_bridge(bridge, None).await?;
    Ok(())
}

/// Plugs a node into the fabric: veth `port` (in the fabric, a port of `fabric0`) <-> `eth0`
/// (created directly in the node), both up, `node_ip/prefix` on `eth0`, `lo` up. Idempotent.
pub async fn connect_node(fabric_ns: &Path, node_ns: &Path, port: &str, node_ip: Ipv4Addr, prefix: u8) -> Result<()> {
    connect_node_mtu(fabric_ns, node_ns, port, node_ip, prefix, None).await
}

/// [`connect_node`] with both ends of the veth at `mtu` (`None`: the kernel's default, 1500,
/// for a new pair; an existing pair's MTU is left alone). Across hosts the fabric is a VXLAN
/// overlay and `mtu` must be its MTU ([`crate::overlay::overlay_mtu`]).
pub async fn connect_node_mtu(fabric_ns: &Path, node_ns: &Path, port: &str, node_ip: Ipv4Addr, prefix: u8, mtu: Option<u32>) -> Result<()> {
    plug_and_address(fabric_ns, (FABRIC_BRIDGE, "setup_fabric"), port, node_ns, ETH0, (node_ip, prefix), mtu).await
}

/// Plugs an emulated host into its LAN: veth `port` (in the LAN, a port of `lan0`) <-> `eth0`
/// (created directly in the host) with `ip/prefix`, both up, `lo` up. The host's `eth0` is
/// then the underlay of its VXLAN overlays ([`crate::overlay::create_vxlan`]). Idempotent.
pub async fn connect_host(lan_ns: &Path, host_ns: &Path, port: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
    plug_and_address(lan_ns, (LAN_BRIDGE, "setup_lan"), port, host_ns, ETH0, (ip, prefix), None).await
}

/// Veth `port` (a port of `bridge.0` in `outer_ns`) <-> `inner` (in `inner_ns`) with
/// `ip/prefix` on `inner`, everything up, `lo` of `inner_ns` up.
async fn plug_and_address(
    outer_ns: &Path,
    bridge: (&str, &str),
    port: &str,
    inner_ns: &Path,
    inner: &str,
    (ip, prefix): (Ipv4Addr, u8),
    mtu: Option<u32>,
) -> Result<()> {
    let [outer, inner_nl] = open_pair(outer_ns, inner_ns).await?;
    let plug = plug_veth(&outer, port, bridge, &inner_nl, inner_ns, inner, mtu);
    tokio::try_join!(plug, inner_nl.set_up("lo", true))?;
    configure_link(&inner_nl, inner, ip, prefix, None).await
}

/// Brings up the outside world (the cluster's "internet"): `lo` and bridge `ext0` holding
/// `client_ip/prefix`, the address of the external client that `emu outside` runs as, and a
/// route for the cloud load balancer's pool on `ext0`, so that a connection to a balancer
/// address gets as far as the balancer's DNAT (addresses no balancer holds go unanswered). The
/// namespace has no other address and no route out. Idempotent.
pub async fn setup_outside(outside_ns: &Path, client_ip: Ipv4Addr, prefix: u8, (pool, pool_prefix): (Ipv4Addr, u8)) -> Result<()> {
    let nl = Netlink::open(Some(outside_ns)).await?;
    nl.set_up("lo", true).await?;
    let bridge = nl.ensure_bridge(OUTSIDE_BRIDGE, None).await?;
    nl.replace_addr(OUTSIDE_BRIDGE, bridge, client_ip, prefix, true).await?;
    nl.replace_device_route(pool, pool_prefix, bridge, OUTSIDE_BRIDGE).await
}

/// Gives a node its ExternalIP: veth `port` (in the outside world, a port of `ext0`) <-> `eth1`
/// (created directly in the node) with `external_ip/prefix`, both up. Idempotent.
pub async fn connect_outside(outside_ns: &Path, node_ns: &Path, port: &str, external_ip: Ipv4Addr, prefix: u8) -> Result<()> {
    connect_outside_mtu(outside_ns, node_ns, port, external_ip, prefix, None).await
}

/// [`connect_outside`] with both ends of the veth at `mtu` (as [`connect_node_mtu`]).
pub async fn connect_outside_mtu(
    outside_ns: &Path,
    node_ns: &Path,
    port: &str,
    external_ip: Ipv4Addr,
    prefix: u8,
    mtu: Option<u32>,
) -> Result<()> {
    plug_and_address(outside_ns, (OUTSIDE_BRIDGE, "setup_outside"), port, node_ns, ETH1, (external_ip, prefix), mtu).await
}

/// Prepares a node for pods: bridge `cni0` up with `cni_gateway/pod_prefix` (the first address
/// of the node's pod CIDR), IPv4 forwarding on, ICMP redirects off. Idempotent.
pub async fn setup_node(node_ns: &Path, cni_gateway: Ipv4Addr, pod_prefix: u8) -> Result<()> {
    let nl = Netlink::open(Some(node_ns)).await?;
    nl.set_up("lo", true).await?;
    // A bridge takes the lowest MAC of its ports unless one was set; a fixed MAC keeps the
    // gateway's ARP entry in every pod valid when pods come and go.
    let [a, b, c, d] = cni_gateway.octets();
    let cni0 = nl.ensure_bridge(CNI_BRIDGE, Some([0x02, 0x45, a, b, c, d])).await?;
    nl.replace_addr(CNI_BRIDGE, cni0, cni_gateway, pod_prefix, true).await?;
    // Redirects off: a pod reaching a service whose endpoint sits on the same cni0 is forwarded
    // back out of cni0 after DNAT, and a redirect would teach the client to bypass the service.
    // The effective value is `all OR <dev>`, so every existing interface is set too.
    netns::configure_node_sysctls(node_ns).await
}

/// Makes the node's routes to other nodes' pod CIDRs exactly `routes` (net, prefix, via): adds
/// the missing ones, replaces changed ones and deletes the ones emu added before that are no
/// longer listed (emu's routes carry protocol [`EMU_ROUTE_PROTOCOL`]; others are not touched).
pub async fn sync_routes(node_ns: &Path, routes: &[(Ipv4Addr, u8, Ipv4Addr)]) -> Result<()> {
    ops::sync_emu_routes(&Netlink::open(Some(node_ns)).await?, routes).await
}

/// Sets up a pod's network: veth `host_veth` (in the node, a port of `cni0` in hairpin mode, up)
/// <-> `eth0` (created directly in the pod namespace) with `pod_ip/prefix`, `lo` up and a default
/// route via `gateway`. Idempotent: an existing pair is completed, a half pair is rebuilt.
pub async fn setup_pod(node_ns: &Path, pod_ns: &Path, host_veth: &str, pod_ip: Ipv4Addr, prefix: u8, gateway: Ipv4Addr) -> Result<()> {
    setup_pod_mtu(node_ns, pod_ns, host_veth, (pod_ip, prefix), gateway, None).await
}

/// [`setup_pod`] with both ends of the veth at `mtu` (as [`connect_node_mtu`]): a pod's `eth0`
/// must not be larger than the node's, or its full-size packets to other hosts are dropped.
pub async fn setup_pod_mtu(
    node_ns: &Path,
    pod_ns: &Path,
    host_veth: &str,
    (pod_ip, prefix): (Ipv4Addr, u8),
    gateway: Ipv4Addr,
    mtu: Option<u32>,
) -> Result<()> {
    let [node, pod] = open_pair(node_ns, pod_ns).await?;
    let bridge = (CNI_BRIDGE, "setup_node");
    tokio::try_join!(plug_veth(&node, host_veth, bridge, &pod, pod_ns, ETH0, mtu), pod.set_up("lo", true))?;
    // Hairpin lets a pod reach itself through its service (the packet leaves and re-enters the
    // same bridge port after DNAT).
    let hairpin = LinkBridgePort::new(0).name(host_veth).hairpin(true).build();
    let hairpin = node.run(format!("set hairpin on {host_veth}"), node.handle().link().set_port(hairpin).execute());
    tokio::try_join!(hairpin, configure_link(&pod, ETH0, pod_ip, prefix, Some(gateway))).map(drop)
}

/// Address, up and (for pods) default route on `eth0` (a node's `eth1`: address and up).
///
/// A pod gets its address without the prefix route (`noprefixroute`) and only a default route
/// via its node (`onlink`): every packet it sends, even to a pod on the same `cni0`, is routed by
/// the node. Otherwise a service endpoint would answer a client on the same bridge directly at
/// layer 2, past the node's conntrack, and the client would get a reply from the pod IP instead of
/// the ClusterIP it connected to (kube-proxy relies on br_netfilter for this; emu cannot load
/// kernel modules or change host sysctls).
async fn configure_link(nl: &Netlink, name: &str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> Result<()> {
    let index = nl.require_index(name).await?;
    nl.replace_addr(name, index, ip, prefix, gateway.is_none()).await?;
    nl.set_up(name, true).await?;
    match gateway {
        Some(gw) => nl.replace_default_route(index, gw, true).await,
        None => Ok(()),
    }
}

/// Routes the service CIDR out of the node's `eth0`, so that a process in the node (`emu ssh
/// NODE -- curl <ClusterIP>`) has a route to a ClusterIP at all: the nft `output` hook rewrites
/// the destination only after that first route lookup. The source address chosen is the node's
/// InternalIP, which the proxy masquerades, as kube-proxy does for host-network clients.
/// Nothing leaves emu this way: `eth0` ends in the fabric, and the proxy drops traffic to
/// service addresses it does not translate.
pub async fn route_service_cidr(node_ns: &Path, net: Ipv4Addr, prefix: u8) -> Result<()> {
    let nl = Netlink::open(Some(node_ns)).await?;
    let eth0 = nl.require_index(ETH0).await?;
    nl.replace_device_route(net, prefix, eth0, ETH0).await
}

/// Deletes the pod's host-side veth if present; its peer in the pod dies with it.
pub async fn teardown_pod(node_ns: &Path, host_veth: &str) -> Result<()> {
    let nl = Netlink::open(Some(node_ns)).await?;
    if let Some(index) = nl.link_index(host_veth).await? {
        nl.delete_link(host_veth, index).await?;
    }
    Ok(())
}

/// Sets link `name` in namespace `ns` up or down (e.g. to cut a node off the fabric). Taking a
/// link down makes the kernel drop the routes through it: run [`sync_routes`] after bringing it
/// back up.
pub async fn set_link_up(ns: &Path, name: &str, up: bool) -> Result<()> {
    Netlink::open(Some(ns)).await?.set_up(name, up).await
}

/// Sets the MTU of link `name` in namespace `ns`.
pub async fn set_mtu(ns: &Path, name: &str, mtu: u32) -> Result<()> {
    let nl = Netlink::open(Some(ns)).await?;
    let req = nl.handle().link().change(LinkUnspec::new_with_name(name).mtu(mtu).build()).execute();
    nl.run(format!("set mtu {mtu} on {name}"), req).await
}

/// The MTU of link `name` in namespace `ns` (e.g. of the underlay, to size an overlay with
/// [`crate::overlay::overlay_mtu`]).
pub async fn link_mtu(ns: &Path, name: &str) -> Result<u32> {
    let nl = Netlink::open(Some(ns)).await?;
    let link = nl.link(name).await?;
    let link = link.ok_or_else(|| NetError::Missing { ns: nl.ns().to_string(), what: format!("link {name} does not exist") })?;
    mtu_of(&link).ok_or_else(|| NetError::Missing { ns: nl.ns().to_string(), what: format!("link {name} reports no MTU") })
}

fn mtu_of(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Named network namespaces `<prefix><tag>` that are deleted when this value is dropped (also
/// when a panic unwinds): the scratch topologies of tests and benchmarks. Name them so that
/// nothing else can collide (`emu-<test><pid>-…`).
pub struct NamespaceGuard {
    prefix: String,
    names: Vec<String>,
}

impl NamespaceGuard {
    pub fn new(prefix: impl Into<String>) -> NamespaceGuard {
        NamespaceGuard { prefix: prefix.into(), names: Vec::new() }
    }

    /// The prefix of every name, for [`list_named_netns`].
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates namespace `<prefix><tag>` (or finds it) and returns its path.
    pub fn add(&mut self, tag: &str) -> Result<PathBuf> {
        let name = format!("{}{tag}", self.prefix);
        create_named_netns(&name)?;
        self.names.push(name.clone());
        Ok(netns_path(&name))
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = delete_named_netns(name) {
                tracing::warn!(%e, "namespace left behind");
            }
        }
    }
}

async fn open_pair(a: &Path, b: &Path) -> Result<[Netlink; 2]> {
    let mut v = Netlink::open_all(&[a, b]).await?;
    let second = v.pop();
    match (v.pop(), second) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => unreachable!("open_all returns one handle per namespace"),
    }
}

/// Ensures veth `outer` (in `outer_nl`'s namespace, a port of bridge `bridge.0`, up) paired with
/// `eth0` in `inner_ns`. A pair whose ends point at each other is kept; otherwise the ends are
/// deleted and the pair created anew, with `eth0` born in `inner_ns`. `bridge.1` names the step
/// that creates the bridge, for the error when it is missing. With `mtu`, both ends get it (a
/// kept pair too).
async fn plug_veth(
    outer_nl: &Netlink,
    outer: &str,
    (bridge, bridge_step): (&str, &str),
    inner_nl: &Netlink,
    inner_ns: &Path,
    inner: &str,
    mtu: Option<u32>,
) -> Result<()> {
    let (br, o, i) = tokio::try_join!(outer_nl.link(bridge), outer_nl.link(outer), inner_nl.link(inner))?;
    let bridge = br.map(|b| b.header.index).ok_or_else(|| NetError::Missing {
        ns: outer_nl.ns().to_string(),
        what: format!("bridge {bridge} does not exist; run {bridge_step} first"),
    })?;
    if let (Some(o), Some(i)) = (&o, &i) {
        if veth_peer(o) == Some(i.header.index) && veth_peer(i) == Some(o.header.index) {
            let msg = with_mtu(LinkUnspec::new_with_index(o.header.index).controller(bridge).up(), mtu).build();
            let req = outer_nl.handle().link().change(msg).execute();
            let attach = outer_nl.run(format!("attach {outer} to bridge and set up"), req);
            let inner_mtu = async {
                match mtu.filter(|m| mtu_of(i) != Some(*m)) {
                    None => Ok(()),
                    Some(m) => {
                        let req = inner_nl.handle().link().change(LinkUnspec::new_with_index(i.header.index).mtu(m).build()).execute();
                        inner_nl.run(format!("set mtu {m} on {inner}"), req).await
                    }
                }
            };
            return tokio::try_join!(attach, inner_mtu).map(drop);
        }
    }
    if let Some(o) = o {
        outer_nl.delete_link(outer, o.header.index).await?;
    }
    if let Some(i) = i {
        inner_nl.delete_link(inner, i.header.index).await?;
    }
    let inner_fd =
        std::fs::File::open(inner_ns).map_err(|cause| NetError::Netns { ns: inner_ns.display().to_string(), op: "open".into(), cause })?;
    // The peer cannot be created up: a veth refuses to open before its pair is linked
    // (ENOTCONN), so callers bring `eth0` up in its namespace.
    let peer = with_mtu(LinkUnspec::new_with_name(inner).setns_by_fd(inner_fd.as_raw_fd()), mtu).build();
    let msg = LinkVeth::new(outer, inner).set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).controller(bridge).up();
    let msg = with_mtu(msg, mtu).build();
    let op = format!("create veth {outer} <-> {inner} in {}", inner_ns.display());
    let res = outer_nl.run(op, outer_nl.handle().link().add(msg).execute()).await;
    drop(inner_fd); // the kernel resolved the fd while handling the request
    res
}

fn with_mtu<T>(msg: LinkMessageBuilder<T>, mtu: Option<u32>) -> LinkMessageBuilder<T> {
    match mtu {
        Some(m) => msg.mtu(m),
        None => msg,
    }
}

/// The ifindex (in the peer's namespace) of a veth's other end.
fn veth_peer(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}
