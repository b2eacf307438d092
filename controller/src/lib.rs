//! emu-controller: the API server of an emu cluster — the object store, watch streams, validation,
//! the scheduler, IP allocation and the Deployment/ReplicaSet controllers.

pub mod addons;
pub mod api;
pub mod bootstrap;
pub mod control_routes;
pub mod controllers;
pub mod daemonsets;
pub mod decoded;
pub mod endpoints;
pub mod gateway;
pub mod host_faults;
pub mod https;
pub mod jobs;
pub mod join;
pub mod managed_fields;
pub mod nodes;
pub mod pki;
pub mod rbac_aggregation;
pub mod rbac_defaults;
pub mod relay;
pub mod rest;
pub mod serviceaccounts;
pub mod services;
pub mod state;
pub mod statefulsets;
pub mod store;
pub mod tokens;
