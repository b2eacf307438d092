//! Scenario files (`emu up FILE`, `emu test FILE`): the cluster they describe, their steps, and
//! the checks that judge what each step saw. Parse → command → pure judge.
pub mod checks;
pub mod scenario;
pub mod source;
pub mod steps;
