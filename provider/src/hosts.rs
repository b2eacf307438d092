//! Emulated hosts (`emu up --hosts N`): N machines on one, each a network namespace on a LAN of
//! its own (192.0.2.0/24, TEST-NET-1; the switch `emu-<cluster>-lan`). The first runs the control
//! plane; the others join it with `emu join`, the very command a real machine runs, each in a
//! mount namespace of its own whose `/run/netns` and `/run/emu` are private: what `emu join`
//! makes there is named exactly as on a real machine, and nothing of it is visible to the others.
//! A host's mount namespace is pinned at `/run/emu/<cluster>/hosts/<host>.mnt` (it holds the
//! host's namespaces alive: `emu down` kills every process of the cluster, then unmounting the
//! pin lets the kernel free it all).

use anyhow::{bail, Context};
use emu_api::naming;
use emu_host::net;
use emu_logic::cluster::Paths;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The emulated hosts' LAN.
pub const LAN_PREFIX: u8 = 24;

/// The name of emulated host `index` (from 0): `host-1`, `host-2`, …
pub fn host_name(index: usize) -> String {
    format!("host-{}", index + 1)
}

/// Its address on the LAN: 192.0.2.(index+1).
pub fn host_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, (index + 1) as u8)
}

/// The nodes of each host: `nodes` cut into `hosts` runs in order, the first hosts taking one
/// more when they do not divide evenly (node-1, node-2 on host-1; node-3, node-4 on host-2 …).
pub fn spread(nodes: &[String], hosts: usize) -> Vec<Vec<String>> {
    let (each, extra) = (nodes.len() / hosts, nodes.len() % hosts);
    let mut rest = nodes;
    (0..hosts)
        .map(|h| {
            let (mine, others) = rest.split_at(each + usize::from(h < extra));
            rest = others;
            mine.to_vec()
        })
        .collect()
}

/// The LAN and the hosts' namespaces, each host's `eth0` on it.
pub fn create_lan(cluster: &str, hosts: usize) -> anyhow::Result<()> {
    let lan = naming::netns_lan(cluster);
    net::create_named_netns(&lan)?;
    crate::local::block_on(net::setup_lan(&net::netns_path(&lan)))??;
    for h in 0..hosts {
        let ns = naming::netns_host(cluster, &host_name(h));
        net::create_named_netns(&ns)?;
        crate::local::block_on(net::connect_host(
            &net::netns_path(&lan),
            &net::netns_path(&ns),
            &naming::lan_port(h),
            host_ip(h),
            LAN_PREFIX,
        ))??;
    }
    Ok(())
}

/// The network namespace of emulated host `index`: its underlay.
pub fn host_netns(cluster: &str, index: usize) -> PathBuf {
    net::netns_path(&naming::netns_host(cluster, &host_name(index)))
}

/// The bytes VXLAN takes of the underlay's MTU.
pub use emu_host::overlay::VXLAN_OVERHEAD;

/// The MTU of the overlay's links over the emulated LAN (1500 bytes).
pub fn lan_overlay_mtu() -> u32 {
    emu_host::overlay::overlay_mtu(1500)
}

/// Runs `emu join` (the program `emu`, with the token in the environment variable `token_env`)
/// on emulated host `index` (in its network namespace, in a new mount namespace
/// with private `/run/netns` and `/run/emu`), with the token in its environment (never in its
/// arguments), and pins the host's mount namespace. Returns when the join is done (its nodes
/// Ready) or failed.
pub fn join(
    emu: &std::path::Path,
    cluster: &str,
    index: usize,
    endpoint: &str,
    (token_env, token): (&str, &str),
    ca_hash: &str,
    nodes: &[String],
) -> anyhow::Result<()> {
    let host = host_name(index);
    let netns = std::fs::File::open(net::netns_path(&naming::netns_host(cluster, &host)))
        .with_context(|| format!("opening the network namespace of host {host}"))?;
    let mut cmd = Command::new(emu);
    cmd.args(["join", endpoint, "--discovery-token-ca-cert-hash", ca_hash, "--host", &host]);
    for n in nodes {
        cmd.args(["--node", n]);
    }
    cmd.env(token_env, token).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (root, run_netns, run_emu, tmpfs) = (c("/"), c("/run/netns"), c("/run/emu"), c("tmpfs"));
    let ns = netns.as_raw_fd();
    // SAFETY: runs in the forked child before exec; only system calls on memory and descriptors
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
            check(libc::setns(ns, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted from here on may reach the other hosts' (or the machine's) mounts.
            check(libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()))?;
            for dir in [&run_netns, &run_emu] {
                libc::mkdir(dir.as_ptr(), 0o755);
                check(libc::mount(tmpfs.as_ptr(), dir.as_ptr(), tmpfs.as_ptr(), 0, std::ptr::null()))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting `emu join` on an emulated host")?;
    // Pinned while `emu join` runs (spawn returns once it executes, inside its mount namespace):
    // its agents keep the namespace alive too, but a pin lets `emu down` end it whatever happens.
    let pin = pin_path(cluster, &host);
    let pinned = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(pin.parent().context("pin path")?)?;
        std::fs::File::create(&pin)?;
        nix::mount::mount(
            Some(&PathBuf::from(format!("/proc/{}/ns/mnt", child.id()))),
            &pin,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })();
    let out = child.wait_with_output()?;
    pinned.with_context(|| format!("pinning the mount namespace of host {host} at {}", pin.display()))?;
    if !out.status.success() {
        bail!("host {host}: `emu join` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The MTU of this machine's interface that holds `addr` (a real machine's underlay), read from
/// `/sys/class/net/<interface>/mtu`.
pub fn underlay_mtu(addr: Ipv4Addr) -> anyhow::Result<u32> {
    let interface = nix::ifaddrs::getifaddrs()?
        .find(|i| i.address.as_ref().and_then(|a| a.as_sockaddr_in()).is_some_and(|a| a.ip() == addr))
        .map(|i| i.interface_name)
        .with_context(|| format!("no interface of this machine has the address {addr}: give one of its own as --advertise-address"))?;
    let path = format!("/sys/class/net/{interface}/mtu");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.trim().parse().with_context(|| format!("{path}: {text:?}"))
}

/// Where emulated host `host`'s mount namespace is pinned.
pub fn pin_path(cluster: &str, host: &str) -> PathBuf {
    Paths::new(cluster).root.join("hosts").join(format!("{host}.mnt"))
}

/// The index of emulated host `name` (`host-2` → 1), as [`host_name`] names them.
pub fn host_index(name: &str) -> Option<usize> {
    let n: usize = name.strip_prefix("host-")?.parse().ok()?;
    (n >= 1 && host_name(n - 1) == name).then(|| n - 1)
}

/// Whether cluster `cluster` has emulated hosts on this machine: its LAN's namespace exists.
pub fn has_lan(cluster: &str) -> bool {
    net::netns_path(&naming::netns_lan(cluster)).exists()
}

pub use emu_host::nft::{FakeNft, NftRunner};

/// `nft` in the LAN's namespace (the controller's LAN reconciler applies the host partitions'
/// table with it): `nsenter --net=… nft`, so that the caller's own namespace stays as it is.
pub fn lan_nft(cluster: &str) -> emu_host::nft::RealNft {
    let net = format!("--net={}", net::netns_path(&naming::netns_lan(cluster)).display());
    emu_host::nft::RealNft::with_command(&["nsenter", &net, "nft"])
}

/// Emulated host `index` loses power, as its peers see it: its LAN link goes down (the LAN's
/// side of it, `veth-h<index>`), then every process of its `nodes` (agents, pods) is frozen,
/// with `wait` until the kernel says so, or, with `kill`, killed. Its namespaces, links inside
/// and files stay.
pub fn stop_host(cluster: &str, index: usize, nodes: &[String], kill: bool, wait: Option<std::time::Duration>) -> anyhow::Result<()> {
    set_lan_link(cluster, index, false)?;
    // Node cgroups are the machine's, shared by the emulated hosts: the local provider's.
    let local = crate::Local::new(cluster);
    for n in nodes {
        if kill {
            crate::Provider::kill_node(&local, n)?;
        } else {
            local.freeze(n, true, wait)?;
        }
    }
    Ok(())
}

/// Power back: the LAN link up, then the nodes' processes thawed (with `wait`, until they are)
/// or, after a kill, each node's agent started again on the host as its own machine starts it
/// (`emu restart agent NODE` in the host's mount and network namespaces); the agents restart the
/// pods still bound to their nodes. Nothing inside the host went down, so its routes and
/// neighbours are as they were.
pub fn start_host(cluster: &str, index: usize, nodes: &[String], killed: bool, wait: Option<std::time::Duration>) -> anyhow::Result<()> {
    set_lan_link(cluster, index, true)?;
    let local = crate::Local::new(cluster);
    for n in nodes {
        if killed {
            start_agent_on_host(cluster, index, n)?;
        } else {
            local.freeze(n, false, wait)?;
        }
    }
    Ok(())
}

/// Starts the agent of `node` on emulated host `index` as the host itself would: `emu restart
/// agent NODE` run in the host's mount namespace (its own `/run/emu` and `/run/netns`, pinned)
/// and network namespace.
fn start_agent_on_host(cluster: &str, index: usize, node: &str) -> anyhow::Result<()> {
    let host = host_name(index);
    let emu = crate::programs::companion("emu")?;
    let mount = format!("--mount={}", pin_path(cluster, &host).display());
    let net = format!("--net={}", host_netns(cluster, index).display());
    let out = Command::new("nsenter")
        .args([&mount, &net])
        .arg(&emu)
        .args(["restart", "agent", node, "--cluster", cluster])
        .env_remove("EMU_CLUSTER")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running nsenter {mount} {net} {} restart agent {node}", emu.display()))?;
    if !out.status.success() {
        bail!(
            "host {host}: starting the agent of node {node} (`emu restart agent {node}` there) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The LAN's side of emulated host `index`'s link up or down.
fn set_lan_link(cluster: &str, index: usize, up: bool) -> anyhow::Result<()> {
    let lan = net::netns_path(&naming::netns_lan(cluster));
    let port = naming::lan_port(index);
    crate::local::block_on(net::set_link_up(&lan, &port, up))?
        .with_context(|| format!("setting {port} {} in {}", if up { "up" } else { "down" }, lan.display()))?;
    Ok(())
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_spread_in_runs_over_the_hosts() {
        let nodes: Vec<String> = (1..=7).map(|i| format!("node-{i}")).collect();
        let spread = spread(&nodes, 3);
        assert_eq!(spread.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2, 2]);
        assert_eq!(spread[1], ["node-4", "node-5"]);
        assert_eq!(host_name(1), "host-2");
        assert_eq!(host_ip(1), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(host_index("host-2"), Some(1));
        for bad in ["host-0", "host-02", "node-1", "host-"] {
            assert_eq!(host_index(bad), None, "{bad}");
        }
    }
}
