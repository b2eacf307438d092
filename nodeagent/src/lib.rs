//! emu-nodeagent: the kubelet + CNI + service proxy of one emulated node.
//!
//! The binary has four personalities, chosen by its first argument before any thread starts
//! (namespace changes need a single-threaded process): `agent` (the default, a tokio daemon living
//! in its node's network namespace), `cloud` (the cloud load balancer, living in the outside
//! world), `shim` (the per-pod supervisor that outlives the agent) and
//! `nsexec` (joins a container's namespaces and runs a command: `emu exec`).

pub mod agent;
pub mod api_proxy;
pub mod cloud;
pub mod faults;
pub mod health;
pub mod node_service;
pub mod overlay;
pub mod probe;
pub mod readiness;
pub mod routes;
pub mod sandbox;
pub mod service_proxy;
pub mod trigger;
