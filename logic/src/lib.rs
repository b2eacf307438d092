//! Pure decisions above the API, shared by the controller and the node agents: every decision is
//! a function of its inputs, with no I/O.
pub mod bootstrap;
pub mod cluster;
pub mod configdata;
pub mod cron;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod faults;
pub mod gateway;
pub mod gateway_nginx;
pub mod identity;
pub mod images;
pub mod ingress;
pub mod ipam;
pub mod job;
pub mod loadbalancer;
pub mod nodeports;
pub mod podspec;
pub mod probe;
pub mod rbac;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;
pub mod svcenv;
pub mod volumes;
