//! emu's side effects on a machine, below every daemon: network namespaces, veths and bridges,
//! addresses and routes (netlink), sysctls, cgroups, nftables and conntrack. Nothing here decides
//! anything: the callers' pure functions do, and these functions carry it out.
pub mod cgroup;
pub mod conntrack;
pub mod net;
pub mod nft;
