//! The endpoints controllers: for every Service with a selector, the Endpoints object and the
//! EndpointSlices that list its pods (decided by [`emu_core::endpoints`]); for a Service without
//! selector, the EndpointSlice mirrored from the Endpoints object the user wrote (SVC-18).
//! Writes happen only when the meaningful content changed, so a steady cluster writes nothing.

use crate::state::{now, Shared};
use crate::store::ObjectKey;
use emu_core::{endpoints, object};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MIRROR_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
const SERVICE_NAME: &str = "kubernetes.io/service-name";

fn key(kind: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: kind.into(), namespace: ns.into(), name: name.into() }
}

fn log_err<T>(what: &str, name: &str, r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, object = name, "{what} lost a race; next pass retries");
    }
}

/// Services whose Endpoints this controller wrote in an earlier pass: when such a Service goes,
/// its Endpoints go too.
#[derive(Default)]
pub struct EndpointsController {
    managed: HashSet<(String, String)>,
}

impl EndpointsController {
    pub fn sync(&mut self, shared: &Shared) {
        let (services, _) = shared.store.list("Service", None);
        let (pods, _) = shared.store.list("Pod", None);
        let (all_slices, _) = shared.store.list("EndpointSlice", None);
        // One index per pass: looking slices up per Service must not scan them all (1,000
        // Services × 1,000 slices made every pass, and so every write, take seconds).
        let mut slices_by_owner: HashMap<(&str, &str, &str), Vec<&Value>> = HashMap::new();
        for s in &all_slices {
            let labels = &s["metadata"]["labels"];
            if let (Some(svc), Some(manager)) = (labels[SERVICE_NAME].as_str(), labels[MANAGED_BY].as_str()) {
                slices_by_owner.entry((object::namespace(s), svc, manager)).or_default().push(s);
            }
        }
        let mut pods_by_ns: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for p in &pods {
            pods_by_ns.entry(object::namespace(p)).or_default().push(p.clone());
        }
        let ts = object::rfc3339(now());
        let mut entropy = || rand::random::<[u8; 5]>();
        let mut seen = HashSet::new();
        for svc in services.iter().filter(|s| !object::is_terminating(s)) {
            let (ns, name) = (object::namespace(svc), object::name(svc));
            let ns_pods = pods_by_ns.get(ns).map(Vec::as_slice).unwrap_or(&[]);
            let labelled = |controller: &str| -> Vec<Value> {
                slices_by_owner.get(&(ns, name, controller)).map(|v| v.iter().map(|s| (*s).clone()).collect()).unwrap_or_default()
            };
            let endpoints_key = key("Endpoints", ns, name);
            let live_endpoints = shared.store.get(&endpoints_key);
            match endpoints::desired_endpoints(svc, ns_pods, &ts) {
                Some(want) => {
                    seen.insert((ns.to_string(), name.to_string()));
                    match &live_endpoints {
                        None => log_err("creating endpoints", name, shared.store.create(want)),
                        Some(live) if !endpoints::endpoints_equal(live, &want) => {
                            log_err("updating endpoints", name, shared.store.update(endpoints::endpoints_for_update(live, &want)))
                        }
                        Some(_) => {}
                    }
                    let changes = endpoints::desired_slices(svc, ns_pods, &labelled(SLICE_CONTROLLER), &ts, &mut entropy);
                    apply_slice_changes(shared, ns, name, changes);
                }
                None => {
                    // Selectorless: mirror a user-written Endpoints object into slices (SVC-18).
                    let changes = endpoints::mirrored_slices(Some(svc), live_endpoints.as_ref(), &labelled(MIRROR_CONTROLLER), &mut entropy);
                    apply_slice_changes(shared, ns, name, changes);
                }
            }
        }
        // Mirrored slices of an Endpoints object whose Service is gone (or never existed) go too.
        let (all_endpoints, _) = shared.store.list("Endpoints", None);
        let service_names: HashSet<(&str, &str)> = services.iter().map(|s| (object::namespace(s), object::name(s))).collect();
        for ep in &all_endpoints {
            let (ns, name) = (object::namespace(ep), object::name(ep));
            if service_names.contains(&(ns, name)) {
                continue;
            }
            let Some(mirrored) = slices_by_owner.get(&(ns, name, MIRROR_CONTROLLER)) else { continue };
            let existing: Vec<Value> = mirrored.iter().map(|s| (*s).clone()).collect();
            let changes = endpoints::mirrored_slices(None, Some(ep), &existing, &mut entropy);
            apply_slice_changes(shared, ns, name, changes);
        }
        // A Service that went away takes its Endpoints along (its slices go with their owner).
        for (ns, name) in self.managed.difference(&seen) {
            if services.iter().all(|s| object::namespace(s) != ns || object::name(s) != name) {
                let _ = shared.store.delete(&key("Endpoints", ns, name));
            }
        }
        self.managed = seen;
    }
}

fn apply_slice_changes(shared: &Shared, ns: &str, service: &str, changes: endpoints::SliceChanges) {
    for s in changes.create {
        log_err("creating endpointslice", service, shared.store.create(s));
    }
    for s in changes.update {
        log_err("updating endpointslice", service, shared.store.update(s));
    }
    for n in changes.delete {
        log_err("deleting endpointslice", &n, shared.store.delete(&key("EndpointSlice", ns, &n)));
    }
}
