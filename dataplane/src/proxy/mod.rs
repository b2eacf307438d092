//! The node's service proxy (kube-proxy's nftables mode; packet paths in docs/architecture.md) as pure
//! functions: Kubernetes objects → [`ProxyInput`] → nft script for table `ip emu`.
//!
//! * [`input_from_objects`] builds the model of one node's view (Services + EndpointSlices);
//! * [`usable_endpoints`] decides which endpoints of a port take traffic on this node;
//! * [`render_full`] renders the whole table as one idempotent `nft -f -` transaction (and
//!   [`render_resync`] also deletes leftovers that an `nft -t list` found);
//! * [`render_update`] renders only the difference between two models;
//! * [`trace`] parses what the renderers write and follows a packet through it (tests).
//!
//! The node agent gathers the objects, calls these, and pipes the script to `nft -f -` inside its
//! node's network namespace (`emu_host::nft`).

mod model;
mod render;
pub mod trace;

#[cfg(test)]
mod tests;

pub use model::{
    input_from_objects, stale_udp_flows, usable_endpoints, Backends, EndpointModel, ModelCache, PortModel, Protocol, ProxyInput,
    ServiceModel, StaleUdpFlow, DEFAULT_AFFINITY_TIMEOUT,
};
pub use render::{
    affinity_set_name, endpoint_chain_name, external_chain_name, parse_listing, render_full, render_recreate, render_resync, render_update,
    service_chain_name, TableObjects, MASQUERADE_MARK, TABLE,
};
