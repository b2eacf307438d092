//! The kernel plumbing of the overlay that joins hosts into one cluster network: a VXLAN device
//! per joined segment (the fabric, the outside world), a port of that segment's bridge, whose UDP
//! socket lives in the host's own (underlay) namespace.
//!
//! ```text
//!  host 1                                          host 2
//!  emu-C-fabric: bridge fabric0                    emu-C-fabric: bridge fabric0
//!     ports veth-n<i> ... and VXLAN device  <==>      ports veth-n<j> ... and VXLAN device
//!  underlay (root ns, or an emulated host ns):     underlay:
//!     UDP socket :PORT, source address LOCAL  ----    UDP socket :PORT, source address LOCAL
//! ```
//!
//! Frames for a MAC the VXLAN device has not learned yet (broadcast, ARP, unknown unicast) are
//! sent to every peer of its head-end replication list: one all-zeros FDB entry per peer
//! ([`sync_vxlan_peers`], as `bridge fdb append 00:00:00:00:00:00 dev NAME dst PEER`). The device
//! learns where each MAC lives from what arrives (learning on), so unicast goes to one peer.
//!
//! MTU: the encapsulation takes [`VXLAN_OVERHEAD`] bytes of the underlay's MTU, so every link of
//! a joined segment (the VXLAN device, the node's `eth0`, the pods' `eth0`) must be at most
//! [`overlay_mtu`]`(underlay)`. A larger inner packet is dropped by the bridge at the VXLAN
//! port, silently: a black hole for full-size packets while small ones (ping, handshakes) pass.
//! The other way round is reported: when the underlay path is narrower than the overlay was
//! sized for, the VXLAN device (a bridge port) answers the sender with "fragmentation needed"
//! (RFC 4459), and the node learns the smaller path MTU (tests/tests/overlay.rs checks both).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan};

use crate::net::{NetError, Netlink, Result};

/// Bytes VXLAN adds around an inner frame, over IPv4: outer IPv4 header 20, UDP 8, VXLAN 8 and
/// the inner Ethernet header 14 (the inner frame carries no VLAN tag).
pub const VXLAN_OVERHEAD: u32 = 50;

/// VXLAN's IANA port (RFC 7348); Linux's own default is 8472.
pub const VXLAN_PORT: u16 = 4789;

/// The largest MTU a link of a segment joined by VXLAN over an underlay of MTU `underlay_mtu`
/// can have without its full-size packets being dropped: 1450 on a 1500 underlay.
pub fn overlay_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
}

/// The settings of a VXLAN device that decide whether an existing one can be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VxlanSettings {
    vni: u32,
    local: Ipv4Addr,
    port: u16,
    learning: bool,
    /// A default remote or multicast group (emu uses none: its peers are FDB entries).
    group: bool,
}

impl VxlanSettings {
    fn wanted(vni: u32, local: Ipv4Addr, port: u16) -> VxlanSettings {
        VxlanSettings { vni, local, port, learning: true, group: false }
    }

    /// The settings of `link`, if it is a VXLAN device.
    fn of(link: &LinkMessage) -> Option<VxlanSettings> {
        let info = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(info) => Some(info),
            _ => None,
        })?;
        if !info.contains(&LinkInfo::Kind(InfoKind::Vxlan)) {
            return None;
        }
        let data = info.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(data)) => Some(data),
            _ => None,
        })?;
        let mut s = VxlanSettings { vni: 0, local: Ipv4Addr::UNSPECIFIED, port: 0, learning: false, group: false };
        for d in data {
            match d {
                InfoVxlan::Id(v) => s.vni = *v,
                InfoVxlan::Local(a) => s.local = *a,
                InfoVxlan::Port(p) => s.port = *p,
                InfoVxlan::Learning(l) => s.learning = *l,
                InfoVxlan::Group(a) if !a.is_unspecified() => s.group = true,
                InfoVxlan::Group6(_) | InfoVxlan::Local6(_) => s.group = true,
                _ => {}
            }
        }
        Some(s)
    }
}

/// What to do with the link that has the VXLAN device's name in the target namespace.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// There is none: create the device.
    Absent,
    /// It is the device wanted: keep it (and make sure of bridge, MTU and up).
    Keep,
    /// It differs (other kind, settings or underlay namespace): delete it and create anew.
    Replace(u32),
}

/// Decides about `found` given the wanted settings and the underlay: `underlay_nsid` is the id
/// the target namespace knows the underlay by (`None` when they are the same namespace, where
/// the kernel reports no link namespace).
fn existing(found: Option<&LinkMessage>, want: &VxlanSettings, underlay_nsid: Option<i32>) -> Existing {
    let Some(link) = found else { return Existing::Absent };
    let link_nsid = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkNetNsId(id) => Some(*id),
        _ => None,
    });
    if VxlanSettings::of(link).as_ref() == Some(want) && link_nsid == underlay_nsid {
        Existing::Keep
    } else {
        Existing::Replace(link.header.index)
    }
}

/// Ensures VXLAN device `name` with VNI `vni` in namespace `target_ns`, a port of `bridge` there,
/// at `mtu` and up, whose UDP socket (port `port`, any address) lives in `underlay_ns` and sends
/// from `local`, with learning on and no default remote (peers come from [`sync_vxlan_peers`]).
///
/// `underlay_ns` may be the namespace of this process (`/proc/self/ns/net`, a real machine's
/// root namespace): nothing is created there, the device only refers to it. The device is
/// created directly in `target_ns` by a netlink socket of the underlay (IFLA_NET_NS_FD, like
/// `ip link add NAME netns TARGET type vxlan …` run in the underlay): the kernel puts the socket
/// in the namespace of the request, as if the device had been made there and moved, but without
/// the move (slow, and a name clash in the target would fail only after creation).
///
/// Idempotent: an existing device with the same VNI, local address, port, learning and underlay
/// is kept (its bridge, MTU and state are set again); a link of that name that differs is
/// deleted and the device created anew. Its peers survive only when it is kept.
#[allow(clippy::too_many_arguments)] // the flat list of `ip link add … type vxlan`
pub async fn create_vxlan(
    underlay_ns: &Path,
    target_ns: &Path,
    name: &str,
    vni: u32,
    local: Ipv4Addr,
    port: u16,
    bridge: &str,
    mtu: u32,
) -> Result<()> {
    let (underlay_file, u) = open_ns(underlay_ns)?;
    let (target_file, t) = open_ns(target_ns)?;
    let same_ns = (u.dev(), u.ino()) == (t.dev(), t.ino());
    let mut handles = Netlink::open_all(&[underlay_ns, target_ns]).await?;
    let (target, underlay) = (handles.pop().expect("two handles"), handles.pop().expect("two handles"));

    let bridge_index = target.link_index(bridge).await?.ok_or_else(|| NetError::Missing {
        ns: target.ns().to_string(),
        what: format!("bridge {bridge} does not exist; create it before VXLAN device {name}"),
    })?;
    let want = VxlanSettings::wanted(vni, local, port);
    let found = target.link(name).await?;
    // Asked only when a device exists: the kernel numbers the underlay in the target namespace
    // when it reports the device's link namespace, so the ids match.
    let underlay_nsid = match (&found, same_ns) {
        (Some(_), false) => Some(nsid(&target, &underlay_file).await?),
        _ => None,
    };
    match existing(found.as_ref(), &want, underlay_nsid) {
        Existing::Keep => {}
        found => {
            if let Existing::Replace(index) = found {
                tracing::info!(ns = target.ns(), name, "replacing a link that is not the VXLAN device wanted");
                target.delete_link(name, index).await?;
            }
            let msg =
                LinkVxlan::new(name, vni).local(local).port(port).learning(true).mtu(mtu).setns_by_fd(target_file.as_raw_fd()).build();
            let op = format!("create VXLAN device {name} (VNI {vni}, local {local}, port {port}) in {}", target_ns.display());
            underlay.run(op, underlay.handle().link().add(msg).execute()).await?;
        }
    }
    let msg = LinkUnspec::new_with_name(name).controller(bridge_index).mtu(mtu).up().build();
    let req = target.handle().link().change(msg).execute();
    target.run(format!("attach {name} to {bridge}, set mtu {mtu} and up"), req).await
}

fn open_ns(path: &Path) -> Result<(std::fs::File, std::fs::Metadata)> {
    let err = |cause| NetError::Netns { ns: path.display().to_string(), op: "open".into(), cause };
    let file = std::fs::File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    Ok((file, meta))
}

/// The id namespace `nl` knows the namespace of `ns_file` by (RTM_GETNSID; -1: none yet).
async fn nsid(nl: &Netlink, ns_file: &std::fs::File) -> Result<i32> {
    let mut msg = NsidMessage::default();
    msg.attributes.push(NsidAttribute::Fd(ns_file.as_raw_fd() as u32));
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST;
    let ask = async {
        let mut answers = nl.handle().clone().request(req)?;
        let mut id = -1;
        while let Some(answer) = answers.next().await {
            match answer.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                    id = m.attributes.iter().find_map(|a| if let NsidAttribute::Id(i) = a { Some(*i) } else { None }).unwrap_or(-1)
                }
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(rtnetlink::Error::NetlinkError(e)),
                _ => {}
            }
        }
        Ok(id)
    };
    nl.run("get the id of the underlay namespace", ask).await
}

/// Deletes the VXLAN device `name` of `target_ns`, if there is one, at once: the kernel frees a
/// deleted namespace's devices later, and until then their VNI and port stay taken in the
/// underlay (a machine joining again right after it left would find them in use).
pub async fn delete_vxlan(target_ns: &Path, name: &str) -> Result<()> {
    let nl = Netlink::open(Some(target_ns)).await?;
    match nl.link_index(name).await? {
        Some(index) => nl.delete_link(name, index).await,
        None => Ok(()),
    }
}

/// Makes the head-end replication list of VXLAN device `name` in `target_ns` exactly `peers`
/// (their underlay addresses): one all-zeros FDB entry per peer, adding the missing ones and
/// deleting the ones no longer listed. Entries the device learned (real MACs) are left alone.
/// Level-triggered: running it again with the same list changes nothing.
pub async fn sync_vxlan_peers(target_ns: &Path, name: &str, peers: &[Ipv4Addr]) -> Result<()> {
    let nl = Netlink::open(Some(target_ns)).await?;
    let index = nl.require_index(name).await?;
    let (add, delete) = peer_changes(&vxlan_peers(&nl, index).await?, peers);
    for peer in &delete {
        let req = nl.handle().neighbours().del(fdb_entry(index, *peer)).execute();
        nl.run(format!("delete fdb 00:00:00:00:00:00 dev {name} dst {peer}"), req).await?;
    }
    for peer in &add {
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(fdb_entry(index, *peer)));
        // Append, not create: all entries share the all-zeros MAC, and NLM_F_EXCL (rtnetlink's
        // `add`) would refuse every one after the first.
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        nl.run(format!("append fdb 00:00:00:00:00:00 dev {name} dst {peer}"), acked(&nl, req)).await?;
    }
    if !add.is_empty() || !delete.is_empty() {
        tracing::debug!(ns = nl.ns(), name, added = add.len(), deleted = delete.len(), "VXLAN peers synced");
    }
    Ok(())
}

/// The peers in the head-end replication list of the VXLAN device with index `index`.
async fn vxlan_peers(nl: &Netlink, index: u32) -> Result<Vec<Ipv4Addr>> {
    let req = nl.handle().neighbours().get().set_address_family(AddressFamily::Bridge).execute();
    let entries: Vec<NeighbourMessage> = nl.run("list fdb", req.try_collect()).await?;
    Ok(entries.iter().filter(|e| e.header.ifindex == index).filter_map(replication_peer).collect())
}

/// The destination of an all-zeros FDB entry (a peer of head-end replication); `None` for any
/// other entry (learned or static MACs).
fn replication_peer(entry: &NeighbourMessage) -> Option<Ipv4Addr> {
    let mut zero_mac = false;
    let mut dst = None;
    for a in &entry.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(mac) => zero_mac = mac.len() == 6 && mac.iter().all(|b| *b == 0),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
            // A dump of the bridge family carries the address as bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => dst = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from),
            _ => {}
        }
    }
    dst.filter(|_| zero_mac)
}

/// `00:00:00:00:00:00 dev INDEX dst PEER self permanent`, as `bridge fdb` sends it.
fn fdb_entry(index: u32, peer: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(peer)));
    msg
}

/// Sends `req` and waits for the kernel's acknowledgement.
async fn acked(nl: &Netlink, req: NetlinkMessage<RouteNetlinkMessage>) -> Result<(), rtnetlink::Error> {
    let mut answers = nl.handle().clone().request(req)?;
    while let Some(answer) = answers.next().await {
        if let NetlinkPayload::Error(e) = answer.payload {
            if e.code.is_some() {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
        }
    }
    Ok(())
}

/// (to add, to delete) to turn the replication list `existing` into `wanted`. Duplicates count
/// once; both lists come out sorted.
fn peer_changes(existing: &[Ipv4Addr], wanted: &[Ipv4Addr]) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let (have, want): (BTreeSet<_>, BTreeSet<_>) = (existing.iter().copied().collect(), wanted.iter().copied().collect());
    (want.difference(&have).copied().collect(), have.difference(&want).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

    #[test]
    fn overlay_mtu_leaves_room_for_the_encapsulation() {
        assert_eq!(overlay_mtu(1500), 1450);
        assert_eq!(overlay_mtu(9000), 8950);
        assert_eq!(overlay_mtu(20), 0);
    }

    #[test]
    fn peer_changes_adds_the_missing_and_deletes_the_unlisted() {
        assert_eq!(peer_changes(&[], &[B, A, B]), (vec![A, B], vec![]));
        assert_eq!(peer_changes(&[A, B], &[B, C]), (vec![C], vec![A]));
        assert_eq!(peer_changes(&[A, B], &[A, B]), (vec![], vec![]));
        assert_eq!(peer_changes(&[A, B], &[]), (vec![], vec![A, B]));
    }

    fn vxlan_link(index: u32, data: Vec<InfoVxlan>, nsid: Option<i32>) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Vxlan), LinkInfo::Data(InfoData::Vxlan(data))]));
        link.attributes.extend(nsid.map(LinkAttribute::LinkNetNsId));
        link
    }

    /// As the kernel reports a device made by [`create_vxlan`] (it reports more, e.g. TTL).
    fn made(vni: u32, local: Ipv4Addr, port: u16) -> Vec<InfoVxlan> {
        vec![InfoVxlan::Id(vni), InfoVxlan::Local(local), InfoVxlan::Port(port), InfoVxlan::Learning(true), InfoVxlan::Ttl(0)]
    }

    #[test]
    fn an_equal_device_in_the_same_underlay_is_kept() {
        let want = VxlanSettings::wanted(42, A, VXLAN_PORT);
        assert_eq!(existing(None, &want, Some(0)), Existing::Absent);
        assert_eq!(existing(Some(&vxlan_link(7, made(42, A, VXLAN_PORT), Some(3))), &want, Some(3)), Existing::Keep);
        assert_eq!(existing(Some(&vxlan_link(7, made(42, A, VXLAN_PORT), None)), &want, None), Existing::Keep);
    }

    #[test]
    fn a_differing_link_is_replaced() {
        let want = VxlanSettings::wanted(42, A, VXLAN_PORT);
        let replaced = |data, nsid, underlay| existing(Some(&vxlan_link(7, data, nsid)), &want, underlay);
        assert_eq!(replaced(made(43, A, VXLAN_PORT), Some(3), Some(3)), Existing::Replace(7), "VNI");
        assert_eq!(replaced(made(42, B, VXLAN_PORT), Some(3), Some(3)), Existing::Replace(7), "local");
        assert_eq!(replaced(made(42, A, 8472), Some(3), Some(3)), Existing::Replace(7), "port");
        assert_eq!(replaced(made(42, A, VXLAN_PORT), Some(4), Some(3)), Existing::Replace(7), "underlay");
        assert_eq!(replaced(made(42, A, VXLAN_PORT), None, Some(3)), Existing::Replace(7), "made in the target itself");
        let mut no_learning = made(42, A, VXLAN_PORT);
        no_learning[3] = InfoVxlan::Learning(false);
        assert_eq!(replaced(no_learning, Some(3), Some(3)), Existing::Replace(7), "learning");
        let mut remote = made(42, A, VXLAN_PORT);
        remote.push(InfoVxlan::Group(C));
        assert_eq!(replaced(remote, Some(3), Some(3)), Existing::Replace(7), "default remote");
        let mut veth = LinkMessage::default();
        veth.header.index = 9;
        veth.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]));
        assert_eq!(existing(Some(&veth), &want, Some(3)), Existing::Replace(9), "not a VXLAN device");
    }

    #[test]
    fn only_all_zeros_entries_are_replication_peers() {
        let entry = |mac: Vec<u8>, dst: Option<NeighbourAddress>| {
            let mut e = NeighbourMessage::default();
            e.attributes.push(NeighbourAttribute::LinkLayerAddress(mac));
            e.attributes.extend(dst.map(NeighbourAttribute::Destination));
            e
        };
        assert_eq!(replication_peer(&entry(vec![0; 6], Some(NeighbourAddress::Other(vec![192, 0, 2, 2])))), Some(B));
        assert_eq!(replication_peer(&entry(vec![0; 6], Some(NeighbourAddress::Inet(C)))), Some(C));
        let learned = entry(vec![0x02, 0x42, 0, 0, 0, 1], Some(NeighbourAddress::Other(vec![192, 0, 2, 2])));
        assert_eq!(replication_peer(&learned), None);
        assert_eq!(replication_peer(&entry(vec![0; 6], None)), None);
    }

    #[test]
    fn fdb_entries_are_sent_as_bridge_fdb_sends_them() {
        let e = fdb_entry(5, B);
        assert_eq!(
            (e.header.family, e.header.ifindex, e.header.state, e.header.flags),
            (AddressFamily::Bridge, 5, NeighbourState::Permanent, NeighbourFlags::Own)
        );
        assert_eq!(replication_peer(&e), Some(B));
    }
}
