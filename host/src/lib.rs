//! emu's side effects on a machine, below every daemon: network namespaces, veths and bridges,
//! addresses and routes (netlink), sysctls, cgroups, nftables, iptables, conntrack and the link
//! emulator's queues. Nothing
//! here decides anything: the callers' pure functions do, and these functions carry it out.
//!
//! What the daemons' loops use sits behind narrow traits, each with a real implementation and a
//! recording fake beside it (always compiled, for other crates' unit tests; see [`fake`]):
//! [`nft::NftRunner`], [`iptables::IptablesRunner`], [`conntrack::Conntrack`], [`net::Routes`],
//! [`net::Links`], [`net::Namespaces`] and [`linkemu::QueueSetter`].
pub mod cgroup;
mod command;
pub mod conntrack;
pub mod fake;
pub mod iptables;
pub mod linkemu;
pub mod net;
pub mod nft;
pub mod overlay;
