//! The data plane's pure renderers, used by the node agent: what a node's kernel should hold as a
//! function of the cluster's objects: the service proxy's nftables table and its packet tracer,
//! the cloud balancer's table.
pub mod cloud;
pub mod faults;
pub mod proxy;
