//! emu's API machinery: the bottom of the workspace. Objects and their kinds, manifests, the
//! admission steps (defaulting, validation with Kubernetes' messages), label selectors, patches,
//! generated names, Go's JSON encoding and Kubernetes' timestamps. No printing, no I/O.
pub mod admission;
pub mod cron;
pub mod defaults;
pub mod fault;
pub mod field;
pub mod field_tags;
pub mod gateway;
pub mod json;
pub mod kinds;
pub mod manifest;
pub mod naming;
pub mod object;
pub mod patch;
pub mod pod_security;
pub mod quantity;
pub mod selector;
pub mod syntax;
pub mod time;
pub mod typed;
pub mod validation;
