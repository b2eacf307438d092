//! The Gateway API's status controller: gathers the GatewayClasses, Gateways, HTTPRoutes and what
//! they refer to from the store, asks [`emu_logic::gateway::statuses`] what their statuses are,
//! and writes those that differ from the stored ones. Level-triggered: on a pass in which one
//! of the kinds it reads changed, and on every full pass.

use crate::controllers::update;
use crate::state::Shared;
use crate::store::Changes;
use emu_api::{object, typed};
use emu_logic::gateway::{statuses, Inputs};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

const READS: [&str; 6] = ["GatewayClass", "Gateway", "HTTPRoute", "Service", "Secret", "Namespace"];

pub fn sync(shared: &Shared, changes: &Changes) {
    let relevant = match changes {
        Changes::All => true,
        Changes::Some(events) => events.iter().any(|(_, v)| READS.contains(&object::kind(v))),
    };
    if !relevant {
        return;
    }
    let list = |kind: &str| shared.store.list_shared(kind, None).0;
    let (classes, gateways, routes) = (list("GatewayClass"), list("Gateway"), list("HTTPRoute"));
    if classes.is_empty() {
        return;
    }
    let keys =
        |kind: &str| -> BTreeSet<String> { list(kind).iter().map(|o| format!("{}/{}", object::namespace(o), object::name(o))).collect() };
    let decoded_classes = typed::decode_all(classes.iter().map(|o| o.as_ref()));
    let decoded_gateways = typed::decode_all(gateways.iter().map(|o| o.as_ref()));
    let decoded_routes = typed::decode_all(routes.iter().map(|o| o.as_ref()));
    let namespaces = typed::decode_all(list("Namespace").iter().map(|o| o.as_ref()));
    let (services, secrets) = (keys("Service"), keys("Secret"));
    let out = statuses(&Inputs {
        classes: &decoded_classes,
        gateways: &decoded_gateways,
        routes: &decoded_routes,
        namespaces: &namespaces,
        services: &services,
        secrets: &secrets,
        now: emu_api::time::now(),
    });
    let find = |objects: &[Arc<Value>], ns: &str, name: &str| -> Option<Arc<Value>> {
        objects.iter().find(|o| object::namespace(o) == ns && object::name(o) == name).cloned()
    };
    let mut writes = 0;
    let mut write = |stored: Option<Arc<Value>>, status: Value| {
        if let Some(stored) = stored.filter(|s| s["status"] != status) {
            let mut v = (*stored).clone();
            v["status"] = status;
            update(shared, v);
            writes += 1;
        }
    };
    for (name, status) in &out.classes {
        write(find(&classes, "", name), typed::encode(status));
    }
    for ((ns, name), status) in &out.gateways {
        write(find(&gateways, ns, name), typed::encode(status));
    }
    for ((ns, name), status) in &out.routes {
        write(find(&routes, ns, name), typed::encode(status));
    }
    if writes > 0 {
        tracing::info!(classes = out.classes.len(), gateways = out.gateways.len(), routes = out.routes.len(), writes, "gateway statuses");
    }
}
