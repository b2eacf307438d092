//! Pure logic of emu: every decision is a function of its inputs, with no I/O.
pub mod cluster;
pub mod scenario;
pub mod object;
pub mod time;
pub mod kinds;
pub mod manifest;
pub mod validation;
pub mod defaults;
pub mod selector;
pub mod naming;
pub mod ipam;
pub mod scheduler;
pub mod images;
pub mod podspec;
pub mod printers;
