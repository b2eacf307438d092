//! StatefulSet validation (`ValidateStatefulSet`), with Kubernetes' messages.

use super::{or_default, V};
use crate::typed::{LabelSelector, StatefulSet};

/// `selector`: the spec's selector when the client gave one ([`super::Undecoded`]).
pub(super) fn stateful_set(v: &mut V, sts: &StatefulSet, selector: Option<&LabelSelector>) {
    let spec = or_default(&sts.spec);
    v.nonnegative(spec.replicas, "spec.replicas");
    v.workload(selector, &spec.template);
}
