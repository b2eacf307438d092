//! kube-controller-manager's ClusterRole aggregation: a ClusterRole with an `aggregationRule`
//! gets the rules of every other ClusterRole its selectors match ([`emu_logic::rbac::aggregated_rules`]),
//! so that a user's ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-view: "true"`
//! extends `view` (and, through `view`'s own label, `edit` and `admin`). Level-triggered: run on
//! a controller pass in which a ClusterRole changed (and on every full pass); a chain of
//! aggregations settles over the passes its own writes wake, as in kube-controller-manager.

use crate::state::Shared;
use crate::store::Changes;
use emu_api::object;
use emu_api::typed::{self, ClusterRole};

/// Brings every aggregated ClusterRole's rules up to date with the roles it selects.
pub fn sync(shared: &Shared, changes: &Changes) {
    let relevant = match changes {
        Changes::All => true,
        Changes::Some(events) => events.iter().any(|(_, v)| object::kind(v) == "ClusterRole"),
    };
    if !relevant {
        return;
    }
    let (stored, _) = shared.store.list_shared("ClusterRole", None);
    // A stored object always decodes (admission stored it); one that does not is left out.
    let decoded: Vec<(&serde_json::Value, ClusterRole)> = stored.iter().filter_map(|v| Some((&**v, typed::decode(v).ok()?))).collect();
    let roles: Vec<ClusterRole> = decoded.iter().map(|(_, r)| r.clone()).collect();
    for (json, role) in decoded.iter().map(|(j, r)| (*j, r)) {
        let Some(rules) = emu_logic::rbac::aggregated_rules(role, &roles) else { continue };
        if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
            continue;
        }
        let mut updated = json.clone();
        updated["rules"] = typed::encode(&rules);
        match shared.store.update(updated) {
            Ok(_) => {
                tracing::info!(role = role.metadata.name.as_deref().unwrap_or_default(), rules = rules.len(), "aggregated ClusterRole")
            }
            Err(e) => tracing::warn!(error = %e, "aggregating a ClusterRole"),
        }
    }
}
