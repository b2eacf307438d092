//! The Gateway API's controller: gathers the GatewayClasses, Gateways, HTTPRoutes, what they refer
//! to and each Gateway's data path (its Deployment and Service) from the store, asks
//! [`emu_logic::gateway::statuses`] what their statuses and data paths are, keeps the data paths
//! in shape and writes the statuses that differ from the stored ones. Level-triggered: on a pass
//! in which one of the kinds it reads changed, and on every full pass.
//!
//! The data path's objects are written through the API server's own path
//! ([`crate::api::write_values`]), as a controller's writes reach kube-apiserver: defaulted,
//! validated, the Service given its cluster IP and node ports. Its address comes from the cloud
//! balancer (`emu-nodeagent cloud`) once the balancer forwards, and its pod's readiness from the
//! Deployment controller: both are changes of kinds read here, which start the next sync.

use crate::api::{write_values, WriteMode};
use crate::controllers::{key, update};
use crate::state::Shared;
use crate::store::Changes;
use emu_api::typed::{Deployment, Gateway, Service};
use emu_api::{object, typed};
use emu_logic::gateway::{data_path_name, is_provisioned, reconcile, statuses, DataPath, Inputs, Step};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const READS: [&str; 7] = ["GatewayClass", "Gateway", "HTTPRoute", "Service", "Secret", "Namespace", "Deployment"];

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
    // Without Gateways there is nothing to serve, and what served the last one went with it
    // (owned by it, removed by the garbage collector).
    if gateways.is_empty() {
        return;
    }
    let keys =
        |kind: &str| -> BTreeSet<String> { list(kind).iter().map(|o| format!("{}/{}", object::namespace(o), object::name(o))).collect() };
    let decoded_classes = typed::decode_all(classes.iter().map(|o| o.as_ref()));
    let decoded_gateways: Vec<Gateway> = typed::decode_all(gateways.iter().map(|o| o.as_ref()));
    let decoded_routes = typed::decode_all(routes.iter().map(|o| o.as_ref()));
    let namespaces = typed::decode_all(list("Namespace").iter().map(|o| o.as_ref()));
    let (services, secrets) = (keys("Service"), keys("Secret"));
    let stored = |kind: &str, ns: &str, name: &str| shared.store.get_shared(&key(kind, ns, name));
    let data_paths: BTreeMap<(String, String), DataPath> = decoded_gateways
        .iter()
        .map(|gw| {
            let (ns, name) = typed::key(&gw.metadata);
            let path = data_path_name(gw);
            let deployment: Option<Deployment> = stored("Deployment", ns, &path).and_then(|v| typed::decode(&v).ok());
            let service: Option<Service> = stored("Service", ns, &path).and_then(|v| typed::decode(&v).ok());
            let uid = gw.metadata.uid.as_deref().unwrap_or_default();
            ((ns.to_string(), name.to_string()), DataPath::of(uid, deployment.as_ref(), service.as_ref()))
        })
        .collect();
    let out = statuses(&Inputs {
        classes: &decoded_classes,
        gateways: &decoded_gateways,
        routes: &decoded_routes,
        namespaces: &namespaces,
        services: &services,
        secrets: &secrets,
        data_paths: &data_paths,
        now: emu_api::time::now(),
    });
    let provisioned = provision(shared, &out.data_paths);
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
    if writes + provisioned > 0 {
        tracing::info!(
            classes = out.classes.len(),
            gateways = out.gateways.len(),
            routes = out.routes.len(),
            writes,
            provisioned,
            "gateway statuses"
        );
    }
}

/// Creates or updates each wanted data path object that is not in shape, and deletes those emu
/// provisioned that no Gateway wants any more (one whose Gateway left emu's classes, or was
/// renamed through its class). Answers how many objects it wrote.
fn provision(shared: &Shared, wanted: &BTreeMap<(String, String), [Value; 2]>) -> usize {
    let mut written = 0;
    for desired in wanted.values().flatten() {
        let (kind, ns, name) = (object::kind(desired), object::namespace(desired), object::name(desired));
        let live = shared.store.get_shared(&key(kind, ns, name));
        let (v, mode) = match reconcile(desired, live.as_deref()) {
            Ok(Step::Create(v)) => (v, WriteMode::Create),
            Ok(Step::Update(v)) => (v, WriteMode::Replace),
            // Taken is reported in the Gateway's Programmed condition.
            Ok(Step::Keep | Step::Taken) => continue,
            Err(e) => {
                tracing::warn!(error = %e, kind, namespace = ns, name, "merging a Gateway's data path");
                continue;
            }
        };
        match write_values(shared, vec![v], mode, false) {
            Ok(_) => written += 1,
            // A conflict is a concurrent writer: the next pass sees its object.
            Err(e) => {
                tracing::warn!(error = %tonic::Status::from(e).message(), kind, namespace = ns, name, "writing a Gateway's data path")
            }
        }
    }
    let wanted_keys: BTreeSet<(&str, &str, &str)> =
        wanted.values().flatten().map(|v| (object::kind(v), object::namespace(v), object::name(v))).collect();
    for kind in ["Deployment", "Service"] {
        for v in shared.store.list_shared(kind, None).0 {
            let (ns, name) = (object::namespace(&v), object::name(&v));
            let unwanted = is_provisioned(&object::labels(&v)) && !wanted_keys.contains(&(kind, ns, name));
            if unwanted && shared.store.delete(&key(kind, ns, name)).is_ok() {
                written += 1;
            }
        }
    }
    written
}
