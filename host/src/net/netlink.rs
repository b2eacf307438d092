//! A netlink handle bound to one network namespace, and the few operations emu needs.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, RouteMessageBuilder};

use super::ops::{Links, Route, Routes};
use super::{netns, NetError, Result};

/// The route protocol number that marks routes emu owns (`ip route` shows `proto 69`), so that
/// [`super::sync_emu_routes`] can delete stale ones without touching anybody else's.
pub const EMU_ROUTE_PROTOCOL: u8 = 0x45;

/// A netlink (rtnetlink) handle whose socket lives in one network namespace. The connection task
/// runs on the tokio runtime and stops when the handle is dropped.
pub struct Netlink {
    handle: Handle,
    ns: String,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Netlink {
    /// Opens a handle in the namespace at `netns` (e.g. `/run/netns/NAME`), or in the calling
    /// thread's namespace for `None`. Must be called inside a tokio runtime.
    pub async fn open(netns: Option<&Path>) -> Result<Netlink> {
        match netns {
            None => {
                let ns = "(current)".to_string();
                let (conn, handle, _) = rtnetlink::new_connection().map_err(|cause| NetError::Netlink {
                    ns: ns.clone(),
                    op: "open netlink socket".into(),
                    cause,
                })?;
                Ok(Netlink { handle, ns, conn: tokio::spawn(conn) })
            }
            Some(path) => {
                let mut v = Self::open_all(&[path]).await?;
                Ok(v.remove(0))
            }
        }
    }

    /// Opens one handle per namespace, all from a single short-lived thread (one thread spawn
    /// instead of one per namespace). Handles come back in the order of `paths`.
    pub async fn open_all(paths: &[&Path]) -> Result<Vec<Netlink>> {
        let rt = tokio::runtime::Handle::current();
        let conns = netns::in_each_netns(paths, "open netlink socket", move || {
            // Registering the socket with the reactor needs the runtime's context on this thread.
            let _guard = rt.enter();
            rtnetlink::new_connection()
        })
        .await?;
        Ok(conns
            .into_iter()
            .zip(paths)
            .map(|((conn, handle, _), path)| Netlink { handle, ns: path.display().to_string(), conn: tokio::spawn(conn) })
            .collect())
    }

    /// The underlying rtnetlink handle, for requests this type does not wrap.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The namespace this handle acts in, as shown in errors.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Awaits a netlink request, naming the namespace and `op` in its error.
    pub async fn run<T>(&self, op: impl Into<String>, req: impl Future<Output = Result<T, rtnetlink::Error>>) -> Result<T> {
        req.await.map_err(|e| NetError::Netlink { ns: self.ns.clone(), op: op.into(), cause: to_io(e) })
    }

    /// The link called `name`, if it exists.
    pub async fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetError::Netlink { ns: self.ns.clone(), op: format!("get link {name}"), cause: to_io(e) }),
        }
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name).await?.map(|l| l.header.index))
    }

    /// The index of link `name`, which must exist.
    pub async fn require_index(&self, name: &str) -> Result<u32> {
        self.link_index(name).await?.ok_or_else(|| NetError::Missing { ns: self.ns.clone(), what: format!("link {name} does not exist") })
    }

    pub async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name);
        let msg = if up { msg.up() } else { msg.down() }.build();
        let state = if up { "up" } else { "down" };
        self.run(format!("set link {name} {state}"), self.handle.link().change(msg).execute()).await
    }

    /// Creates bridge `name` (with MAC `mac` if given) unless it exists, and sets it up.
    /// Returns its index.
    pub async fn ensure_bridge(&self, name: &str, mac: Option<[u8; 6]>) -> Result<u32> {
        if self.link_index(name).await?.is_none() {
            let mut msg = LinkBridge::new(name);
            if let Some(mac) = mac {
                msg = msg.address(mac.to_vec());
            }
            self.run(format!("create bridge {name}"), self.handle.link().add(msg.build()).execute()).await?;
        }
        self.set_up(name, true).await?;
        self.require_index(name).await
    }

    pub async fn delete_link(&self, name: &str, index: u32) -> Result<()> {
        match self.handle.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            res => self.run(format!("delete link {name}"), async { res }).await,
        }
    }

    /// Adds `ip/prefix` to link `name` (index `index`); an existing equal address is kept.
    /// Without `prefix_route` the kernel adds no route for the prefix (`noprefixroute`).
    pub async fn replace_addr(&self, name: &str, index: u32, ip: Ipv4Addr, prefix: u8, prefix_route: bool) -> Result<()> {
        let mut req = self.handle.address().add(index, IpAddr::V4(ip), prefix).replace();
        if !prefix_route {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Noprefixroute));
        }
        let how = if prefix_route { "" } else { " noprefixroute" };
        self.run(format!("add address {ip}/{prefix}{how} to {name}"), req.execute()).await
    }

    /// Makes the default route go via `gateway` on link `index` (protocol `boot`, as
    /// `ip route add` sets, so a pod looks the same whichever way it was set up). `onlink`: the
    /// gateway is reachable on the link even though no route covers it.
    pub async fn replace_default_route(&self, index: u32, gateway: Ipv4Addr, onlink: bool) -> Result<()> {
        let mut msg = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index).protocol(RouteProtocol::Boot);
        if onlink {
            msg = msg.onlink();
        }
        let req = self.handle.route().add(msg.build()).replace().execute();
        self.run(format!("set default route via {gateway}"), req).await
    }

    /// Routes `net/prefix` straight out of link `index` (no gateway; protocol `boot`, so
    /// [`super::sync_emu_routes`] leaves it alone).
    pub async fn replace_device_route(&self, net: Ipv4Addr, prefix: u8, index: u32, dev: &str) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net, prefix)
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Boot)
            .build();
        let req = self.handle.route().add(msg).replace().execute();
        self.run(format!("set route {net}/{prefix} dev {dev}"), req).await
    }

    /// All IPv4 routes of the main table.
    pub async fn main_routes(&self) -> Result<Vec<RouteMessage>> {
        let req = self.handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
        let routes: Vec<RouteMessage> = self.run("list routes", req.try_collect()).await?;
        Ok(routes.into_iter().filter(|r| r.header.table == RouteHeader::RT_TABLE_MAIN).collect())
    }
}

#[async_trait::async_trait]
impl Routes for Netlink {
    async fn list(&self) -> Result<Vec<Route>> {
        let routes = self.main_routes().await?;
        let routes = routes.iter().map(|r| {
            let (dst, prefix, via) = route_key(r);
            Route { dst, prefix, via, emu: r.header.protocol == RouteProtocol::Other(EMU_ROUTE_PROTOCOL) }
        });
        Ok(routes.collect())
    }

    async fn replace_emu_route(&self, dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .gateway(via)
            .protocol(RouteProtocol::Other(EMU_ROUTE_PROTOCOL))
            .build();
        let req = self.handle.route().add(msg).replace().execute();
        self.run(format!("set route {dst}/{prefix} via {via}"), req).await
    }

    async fn replace_device_route(&self, dst: Ipv4Addr, prefix: u8, dev: &str) -> Result<()> {
        let index = self.require_index(dev).await?;
        Netlink::replace_device_route(self, dst, prefix, index, dev).await
    }

    async fn delete(&self, route: &Route) -> Result<()> {
        let mut msg = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(route.dst, route.prefix);
        if let Some(via) = route.via {
            msg = msg.gateway(via);
        }
        if route.emu {
            msg = msg.protocol(RouteProtocol::Other(EMU_ROUTE_PROTOCOL));
        }
        match self.handle.route().del(msg.build()).execute().await {
            Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
            res => {
                let via = route.via.map(|v| format!(" via {v}")).unwrap_or_default();
                self.run(format!("delete route {}/{}{via}", route.dst, route.prefix), async { res }).await
            }
        }
    }
}

#[async_trait::async_trait]
impl Links for Netlink {
    async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        Netlink::set_up(self, name, up).await
    }

    async fn is_up(&self, name: &str) -> Result<bool> {
        let link = self.link(name).await?;
        let link = link.ok_or_else(|| NetError::Missing { ns: self.ns.clone(), what: format!("link {name} does not exist") })?;
        Ok(link.header.flags.contains(LinkFlags::Up))
    }
}

/// (destination, prefix length, gateway) of an IPv4 route; the default route is 0.0.0.0/0.
pub fn route_key(r: &RouteMessage) -> (Ipv4Addr, u8, Option<Ipv4Addr>) {
    let (mut dst, mut via) = (Ipv4Addr::UNSPECIFIED, None);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
            _ => {}
        }
    }
    (dst, r.header.destination_prefix_length, via)
}

/// The errno of a kernel refusal, if that is what the error is.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    }
}

fn to_io(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        e => std::io::Error::other(e.to_string()),
    }
}

/// Links and routes of one named namespace, by netlink: each call opens a socket in the
/// namespace (on a short-lived thread) and makes one request.
#[derive(Debug, Clone)]
pub struct RealNet {
    ns: PathBuf,
}

impl RealNet {
    /// Acts in the namespace at `ns` (e.g. `/run/netns/NAME`).
    pub fn new(ns: &Path) -> RealNet {
        RealNet { ns: ns.to_path_buf() }
    }

    async fn open(&self) -> Result<Netlink> {
        Netlink::open(Some(&self.ns)).await
    }
}

#[async_trait::async_trait]
impl Routes for RealNet {
    async fn list(&self) -> Result<Vec<Route>> {
        self.open().await?.list().await
    }

    async fn replace_emu_route(&self, dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Result<()> {
        self.open().await?.replace_emu_route(dst, prefix, via).await
    }

    async fn replace_device_route(&self, dst: Ipv4Addr, prefix: u8, dev: &str) -> Result<()> {
        Routes::replace_device_route(&self.open().await?, dst, prefix, dev).await
    }

    async fn delete(&self, route: &Route) -> Result<()> {
        self.open().await?.delete(route).await
    }
}

#[async_trait::async_trait]
impl Links for RealNet {
    async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        Links::set_up(&self.open().await?, name, up).await
    }

    async fn is_up(&self, name: &str) -> Result<bool> {
        self.open().await?.is_up(name).await
    }
}
