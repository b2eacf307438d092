//! DaemonSet validation (`ValidateDaemonSet`), with Kubernetes' messages.

use super::{or_default, V};
use crate::typed::{DaemonSet, LabelSelector};

/// `selector`: the spec's selector when the client gave one ([`super::Undecoded`]).
pub(super) fn daemon_set(v: &mut V, ds: &DaemonSet, selector: Option<&LabelSelector>) {
    let spec = or_default(&ds.spec);
    v.workload(selector, &spec.template);
}
