//! The link and route operations of the node agent's loops, behind narrow traits with a real
//! implementation (`RealNet` in [`super::netlink`], netlink in one namespace) and a recording fake ([`FakeNet`]):
//! the route syncer keeps the node's routes to other nodes' pod CIDRs, the fault reconciler takes
//! the node's link down and up and puts back the routes the kernel dropped meanwhile.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use super::{NetError, Result};
use crate::fake::Recorder;

/// An IPv4 route of a namespace's main table, as the loops see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    /// The gateway; None for a route straight out of a link.
    pub via: Option<Ipv4Addr>,
    /// Whether emu added it (protocol [`super::EMU_ROUTE_PROTOCOL`]): only those are deleted.
    pub emu: bool,
}

impl Route {
    /// One of emu's routes: `dst/prefix via via`.
    pub fn emu(dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Route {
        Route { dst, prefix, via: Some(via), emu: true }
    }
}

/// The routes of one namespace.
#[async_trait::async_trait]
pub trait Routes: Send + Sync {
    /// The IPv4 routes of the main table.
    async fn list(&self) -> Result<Vec<Route>>;
    /// Adds emu's route `dst/prefix via via`, replacing any route to `dst/prefix`.
    async fn replace_emu_route(&self, dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Result<()>;
    /// Routes `dst/prefix` straight out of link `dev` (not one of emu's: no sync deletes it),
    /// replacing any route to `dst/prefix`.
    async fn replace_device_route(&self, dst: Ipv4Addr, prefix: u8, dev: &str) -> Result<()>;
    /// Deletes `route`; one already gone is not an error.
    async fn delete(&self, route: &Route) -> Result<()>;
}

/// The links of one namespace.
#[async_trait::async_trait]
pub trait Links: Send + Sync {
    /// Sets link `name` up or down. Taking a link down makes the kernel drop the routes through
    /// it.
    async fn set_up(&self, name: &str, up: bool) -> Result<()>;
    /// Whether link `name` is up (administratively).
    async fn is_up(&self, name: &str) -> Result<bool>;
}

/// Which of emu's routes to add (or replace: the gateway changed) and which to delete, for the
/// main table to hold exactly `want` of emu's routes. Routes not emu's are left alone.
pub fn route_changes(have: &[Route], want: &[(Ipv4Addr, u8, Ipv4Addr)]) -> (Vec<(Ipv4Addr, u8, Ipv4Addr)>, Vec<Route>) {
    let ours: Vec<&Route> = have.iter().filter(|r| r.emu).collect();
    let add =
        want.iter().filter(|&&(dst, prefix, via)| !ours.iter().any(|r| (r.dst, r.prefix, r.via) == (dst, prefix, Some(via)))).copied();
    let delete = ours.iter().filter(|r| !want.iter().any(|&(dst, prefix, _)| (dst, prefix) == (r.dst, r.prefix))).map(|r| (*r).clone());
    (add.collect(), delete.collect())
}

/// Makes emu's routes in `routes`' namespace exactly `want` (net, prefix, via): lists, then adds
/// and deletes what [`route_changes`] says. Others' routes are not touched.
pub async fn sync_emu_routes(routes: &dyn Routes, want: &[(Ipv4Addr, u8, Ipv4Addr)]) -> Result<()> {
    let (add, delete) = route_changes(&routes.list().await?, want);
    for (dst, prefix, via) in add {
        routes.replace_emu_route(dst, prefix, via).await?;
    }
    for r in &delete {
        routes.delete(r).await?;
    }
    Ok(())
}

/// What a [`FakeNet`] was asked to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCall {
    SetUp { link: String, up: bool },
    ReplaceEmuRoute { dst: Ipv4Addr, prefix: u8, via: Ipv4Addr },
    ReplaceDeviceRoute { dst: Ipv4Addr, prefix: u8, dev: String },
    Delete(Route),
}

/// A namespace's links and main table in memory: changes are recorded and carried out on the
/// table; every call (reads too) can be told to fail. The kernel's own doings (routes dropped
/// with a link that goes down) are the test's: [`FakeNet::set_routes`].
#[derive(Debug, Default)]
pub struct FakeNet {
    calls: Recorder<NetCall>,
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    links: BTreeMap<String, bool>,
    routes: Vec<Route>,
}

impl FakeNet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail, reads included (and are not recorded).
    pub fn fail_next(&self, n: usize) {
        self.calls.fail_next(n);
    }

    /// The changes made, oldest first.
    pub fn calls(&self) -> Vec<NetCall> {
        self.calls.calls()
    }

    /// The changes made since the last call, oldest first.
    pub fn take_calls(&self) -> Vec<NetCall> {
        self.calls.take()
    }

    /// How many calls were attempted, failed ones and reads included.
    pub fn attempts(&self) -> usize {
        self.calls.attempts()
    }

    /// The main table now, sorted.
    pub fn routes(&self) -> Vec<Route> {
        let mut routes = self.lock().routes.clone();
        routes.sort();
        routes
    }

    /// Makes the main table `routes` (without recording a call).
    pub fn set_routes(&self, routes: &[Route]) {
        self.lock().routes = routes.to_vec();
    }

    /// Whether link `name` is up; None for a link never set (which [`Links::is_up`] reports up).
    pub fn link(&self, name: &str) -> Option<bool> {
        self.lock().links.get(name).copied()
    }

    /// Sets link `name` (without recording a call).
    pub fn set_link(&self, name: &str, up: bool) {
        self.lock().links.insert(name.to_string(), up);
    }

    fn attempt(&self, op: impl std::fmt::Display, call: Option<NetCall>) -> Result<()> {
        self.calls.attempt(call).map_err(|attempt| NetError::Injected { op: op.to_string(), attempt })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn replace(&self, route: Route) {
        let mut state = self.lock();
        state.routes.retain(|r| (r.dst, r.prefix) != (route.dst, route.prefix));
        state.routes.push(route);
    }
}

#[async_trait::async_trait]
impl Routes for FakeNet {
    async fn list(&self) -> Result<Vec<Route>> {
        self.attempt("list routes", None)?;
        Ok(self.routes())
    }

    async fn replace_emu_route(&self, dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Result<()> {
        self.attempt(format!("set route {dst}/{prefix} via {via}"), Some(NetCall::ReplaceEmuRoute { dst, prefix, via }))?;
        self.replace(Route::emu(dst, prefix, via));
        Ok(())
    }

    async fn replace_device_route(&self, dst: Ipv4Addr, prefix: u8, dev: &str) -> Result<()> {
        let call = NetCall::ReplaceDeviceRoute { dst, prefix, dev: dev.to_string() };
        self.attempt(format!("set route {dst}/{prefix} dev {dev}"), Some(call))?;
        self.replace(Route { dst, prefix, via: None, emu: false });
        Ok(())
    }

    async fn delete(&self, route: &Route) -> Result<()> {
        self.attempt(format!("delete route {}/{}", route.dst, route.prefix), Some(NetCall::Delete(route.clone())))?;
        self.lock().routes.retain(|r| r != route);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Links for FakeNet {
    async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.attempt(format!("set link {name} {state}"), Some(NetCall::SetUp { link: name.to_string(), up }))?;
        self.set_link(name, up);
        Ok(())
    }

    async fn is_up(&self, name: &str) -> Result<bool> {
        self.attempt(format!("get link {name}"), None)?;
        Ok(self.link(name).unwrap_or(true))
    }
}

/// Which named network namespaces exist.
pub trait Namespaces: Send + Sync {
    /// Whether the named namespace `name` exists (e.g. a pod's, once its sandbox is set up).
    fn exists(&self, name: &str) -> bool;
}

/// The namespaces under `/run/netns`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamedNamespaces;

impl Namespaces for NamedNamespaces {
    fn exists(&self, name: &str) -> bool {
        super::netns_path(name).exists()
    }
}

/// Namespaces a test says exist.
#[derive(Debug, Default)]
pub struct FakeNamespaces {
    names: Mutex<std::collections::BTreeSet<String>>,
}

impl FakeNamespaces {
    pub fn new() -> Self {
        Self::default()
    }

    /// Namespace `name` exists from now on (`true`) or no longer (`false`).
    pub fn set(&self, name: &str, exists: bool) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if exists {
            names.insert(name.to_string());
        } else {
            names.remove(name);
        }
    }
}

impl Namespaces for FakeNamespaces {
    fn exists(&self, name: &str) -> bool {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn changes_touch_only_emus_routes() {
        let foreign = Route { dst: ip("10.99.0.0"), prefix: 16, via: Some(ip("172.18.0.3")), emu: false };
        let device = Route { dst: ip("10.96.0.0"), prefix: 12, via: None, emu: false };
        let have = [
            foreign.clone(),
            device,
            Route::emu(ip("10.244.1.0"), 24, ip("172.18.0.3")),
            Route::emu(ip("10.244.2.0"), 24, ip("172.18.0.4")),
            Route::emu(ip("10.244.3.0"), 24, ip("172.18.0.5")),
        ];
        // Node 1 stays, node 2 moved to another address, node 3 is gone, node 4 is new; a
        // foreign route to the same network as a wanted one is replaced.
        let want = [
            (ip("10.244.1.0"), 24, ip("172.18.0.3")),
            (ip("10.244.2.0"), 24, ip("172.18.0.9")),
            (ip("10.244.4.0"), 24, ip("172.18.0.6")),
            (ip("10.99.0.0"), 16, ip("172.18.0.3")),
        ];
        let (add, delete) = route_changes(&have, &want);
        assert_eq!(add, want[1..]);
        assert_eq!(delete, [Route::emu(ip("10.244.3.0"), 24, ip("172.18.0.5"))]);
    }

    #[tokio::test]
    async fn fake_net_keeps_a_table_records_changes_and_fails_on_demand() {
        let net = FakeNet::new();
        let foreign = Route { dst: ip("10.99.0.0"), prefix: 16, via: Some(ip("172.18.0.3")), emu: false };
        net.set_routes(std::slice::from_ref(&foreign));
        sync_emu_routes(&net, &[(ip("10.244.1.0"), 24, ip("172.18.0.3"))]).await.expect("sync");
        assert_eq!(net.routes(), [foreign.clone(), Route::emu(ip("10.244.1.0"), 24, ip("172.18.0.3"))]);
        sync_emu_routes(&net, &[]).await.expect("sync");
        assert_eq!(net.routes(), [foreign]);
        assert_eq!(
            net.take_calls(),
            [
                NetCall::ReplaceEmuRoute { dst: ip("10.244.1.0"), prefix: 24, via: ip("172.18.0.3") },
                NetCall::Delete(Route::emu(ip("10.244.1.0"), 24, ip("172.18.0.3"))),
            ]
        );
        assert!(net.is_up("eth0").await.expect("up by default"));
        net.fail_next(1);
        let err = net.set_up("eth0", false).await.expect_err("told to fail");
        assert!(err.to_string().contains("set link eth0 down"), "{err}");
        net.set_up("eth0", false).await.expect("down");
        assert_eq!(net.link("eth0"), Some(false));
        assert_eq!(net.calls(), [NetCall::SetUp { link: "eth0".into(), up: false }]);
    }

    #[test]
    fn fake_namespaces_exist_when_told() {
        let ns = FakeNamespaces::new();
        assert!(!ns.exists("emu-c-pod-1"));
        ns.set("emu-c-pod-1", true);
        assert!(ns.exists("emu-c-pod-1"));
        ns.set("emu-c-pod-1", false);
        assert!(!ns.exists("emu-c-pod-1"));
    }
}
