//! The pod set-up of [`super::setup_pod`] done with `ip` commands, as a shell-script CNI would.
//! It exists to measure what netlink saves; emu itself uses netlink.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use super::{NetError, Result, CNI_BRIDGE, ETH0};

/// Same effect as [`super::setup_pod`] (not idempotent), with one `ip` process per step. Both
/// namespaces must be named ones (`/run/netns/NAME`), since `ip -n` takes names.
pub fn setup_pod_with_ip_commands(
    node_ns: &Path,
    pod_ns: &Path,
    host_veth: &str,
    pod_ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let (node, pod) = (netns_name(node_ns)?, netns_name(pod_ns)?);
    let pod_path = pod_ns.to_string_lossy();
    let addr = format!("{pod_ip}/{prefix}");
    let gw = gateway.to_string();
    let steps: [&[&str]; 7] = [
        &["-n", node, "link", "add", host_veth, "type", "veth", "peer", "name", ETH0, "netns", &pod_path],
        &["-n", node, "link", "set", host_veth, "master", CNI_BRIDGE, "up"],
        &["-n", node, "link", "set", host_veth, "type", "bridge_slave", "hairpin", "on"],
        &["-n", pod, "link", "set", "lo", "up"],
        &["-n", pod, "addr", "add", &addr, "dev", ETH0, "noprefixroute"],
        &["-n", pod, "link", "set", ETH0, "up"],
        &["-n", pod, "route", "add", "default", "via", &gw, "dev", ETH0, "onlink"],
    ];
    steps.iter().try_for_each(|args| ip(args))
}

fn netns_name(path: &Path) -> Result<&str> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) if dir == Path::new("/run/netns") => Ok(name),
        _ => Err(NetError::Missing { ns: path.display().to_string(), what: "`ip -n` needs a named namespace under /run/netns".into() }),
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let argv = || format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| NetError::Command {
        argv: argv(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Command { argv: argv(), status: out.status.to_string(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
}
