//! The endpoints controllers: for every Service with a selector, the Endpoints object and the
//! EndpointSlices that list its pods (decided by [`emu_logic::endpoints`]); for a Service without
//! selector, the EndpointSlice mirrored from the Endpoints object the user wrote (SVC-18).
//! Writes happen only when the meaningful content changed, so a steady cluster writes nothing.
//!
//! A pass looks only at the Services touched by what changed since the last pass (the Service,
//! its Endpoints or slices, a pod its selector picks or picked); a full pass, over every Service,
//! runs when the store's history no longer reaches back that far and now and then as a safety
//! net. At 1,000 Services a pass over all of them took tens of milliseconds, all of which an
//! endpoint change waited for.

use crate::decoded::{Decoded, Obj};
use crate::state::Shared;
use crate::store::{Change, Changes, ObjectKey, WatchEventType};
use emu_api::time::now;
use emu_api::typed::{self, Pod, Service};
use emu_api::{naming, object};
use emu_logic::endpoints;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MIRROR_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
const SERVICE_NAME: &str = "kubernetes.io/service-name";

type NamespacedName = (String, String);

fn key(kind: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: kind.into(), namespace: ns.into(), name: name.into() }
}

fn log_err<T>(what: &str, name: &str, r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, object = name, "{what} lost a race; next pass retries");
    }
}

#[derive(Default)]
pub struct EndpointsController {
    /// Services whose Endpoints this controller wrote: when such a Service goes, its Endpoints
    /// go too.
    managed: HashSet<NamespacedName>,
    /// Every pod's labels as last seen: a pod's old labels say which Services must drop it.
    pod_labels: HashMap<NamespacedName, BTreeMap<String, String>>,
}

impl EndpointsController {
    /// `pods` decodes the pods the pass reads (each once until it changes).
    pub fn sync(&mut self, shared: &Shared, changes: &Changes, pods: &mut Decoded<Pod>) {
        let mut pass = Pass::new(shared, pods);
        let services: BTreeSet<NamespacedName> = match changes {
            Changes::Some(events) => self.touched(events, &mut pass),
            Changes::All => self.everything(&mut pass),
        };
        for (ns, name) in &services {
            self.sync_service(&mut pass, ns, name);
        }
    }

    /// Every Service, every Endpoints object and every Service this controller manages.
    fn everything(&mut self, pass: &mut Pass) -> BTreeSet<NamespacedName> {
        let shared = pass.shared.clone();
        let named = |kind: &str| -> Vec<NamespacedName> {
            let (list, _) = shared.store.list_shared(kind, None);
            list.iter().map(|v| (object::namespace(v).to_string(), object::name(v).to_string())).collect()
        };
        self.pod_labels = pass.all_pods().iter().map(|p| (pod_key(p), typed::labels(&p.metadata).clone())).collect();
        let mut all: BTreeSet<NamespacedName> = named("Service").into_iter().collect();
        all.extend(named("Endpoints"));
        all.extend(self.managed.iter().cloned());
        all
    }

    /// The Services that `events` may change the endpoints of.
    fn touched(&mut self, events: &[Change], pass: &mut Pass) -> BTreeSet<NamespacedName> {
        let mut touched = BTreeSet::new();
        for (event, v) in events {
            let (ns, name) = (object::namespace(v).to_string(), object::name(v).to_string());
            match object::kind(v) {
                "Service" | "Endpoints" => {
                    touched.insert((ns, name));
                }
                "EndpointSlice" => {
                    if let Some(svc) = object::str_at(v, &["metadata", "labels", SERVICE_NAME]) {
                        touched.insert((ns, svc.to_string()));
                    }
                }
                "Pod" => {
                    let pod = (ns.clone(), name);
                    let (old, new) = if *event == WatchEventType::Deleted {
                        (self.pod_labels.remove(&pod), None)
                    } else {
                        let Some(typed) = pass.decoded.get(v) else { continue };
                        let labels = typed::labels(&typed.metadata).clone();
                        (self.pod_labels.insert(pod, labels.clone()), Some(labels))
                    };
                    for svc in pass.services(&ns) {
                        let picks = |labels: &Option<BTreeMap<String, String>>| labels.as_ref().is_some_and(|l| endpoints::selects(svc, l));
                        if picks(&old) || picks(&new) {
                            touched.insert((ns.clone(), typed::key(&svc.metadata).1.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        touched
    }

    fn sync_service(&mut self, pass: &mut Pass, ns: &str, name: &str) {
        let shared = pass.shared.clone();
        let service = shared.store.get_shared(&key("Service", ns, name));
        if service.as_deref().is_some_and(object::is_terminating) {
            return;
        }
        let live_endpoints = shared.store.get_shared(&key("Endpoints", ns, name));
        let this = (ns.to_string(), name.to_string());
        let ts = pass.ts.clone();
        let Some(svc) = service.and_then(|s| typed::decode::<Service>(&s).ok()) else {
            // Mirrored slices of an Endpoints object whose Service is gone (or never existed) go.
            let mirrored = pass.slices(ns, name, MIRROR_CONTROLLER);
            if !mirrored.is_empty() {
                let changes = endpoints::mirrored_slices(None, live_endpoints.as_deref(), &mirrored, &mut entropy);
                apply_slice_changes(&shared, ns, name, changes);
            }
            // A Service that went away takes its Endpoints along (its slices go with their owner).
            if self.managed.remove(&this) {
                let _ = shared.store.delete(&key("Endpoints", ns, name));
            }
            return;
        };
        match endpoints::desired_endpoints(&svc, pass.pods(ns), &ts) {
            Some(want) => {
                self.managed.insert(this);
                match live_endpoints.as_deref() {
                    None => log_err("creating endpoints", name, shared.store.create(want)),
                    Some(live) if !endpoints::endpoints_equal(live, &want) => {
                        log_err("updating endpoints", name, shared.store.update(endpoints::endpoints_for_update(live, &want)))
                    }
                    Some(_) => {}
                }
                let existing = pass.slices(ns, name, SLICE_CONTROLLER);
                let changes = endpoints::desired_slices(&svc, pass.pods(ns), &existing, &ts, &mut entropy);
                apply_slice_changes(&shared, ns, name, changes);
                // Slices mirrored while the Service had no selector go now that it has one.
                let mirrored = pass.slices(ns, name, MIRROR_CONTROLLER);
                if !mirrored.is_empty() {
                    let changes = endpoints::mirrored_slices(Some(&svc), live_endpoints.as_deref(), &mirrored, &mut entropy);
                    apply_slice_changes(&shared, ns, name, changes);
                }
            }
            None => {
                // Selectorless: mirror a user-written Endpoints object into slices (SVC-18).
                self.managed.remove(&this);
                let existing = pass.slices(ns, name, MIRROR_CONTROLLER);
                let changes = endpoints::mirrored_slices(Some(&svc), live_endpoints.as_deref(), &existing, &mut entropy);
                apply_slice_changes(&shared, ns, name, changes);
            }
        }
    }
}

fn entropy() -> [u8; 5] {
    rand::random()
}

fn pod_key(pod: &Pod) -> NamespacedName {
    let (ns, name) = typed::key(&pod.metadata);
    (ns.to_string(), name.to_string())
}

/// What one pass reads, loaded per namespace when first needed.
struct Pass<'a> {
    shared: Shared,
    ts: String,
    decoded: &'a mut Decoded<Pod>,
    pods: HashMap<String, Vec<Obj<Pod>>>,
    /// The namespace's Services, decoded once per pass.
    services: HashMap<String, Vec<Service>>,
}

impl Pass<'_> {
    fn new<'a>(shared: &Shared, decoded: &'a mut Decoded<Pod>) -> Pass<'a> {
        Pass { shared: shared.clone(), ts: object::rfc3339(now()), decoded, pods: HashMap::new(), services: HashMap::new() }
    }

    fn pods(&mut self, ns: &str) -> &[Obj<Pod>] {
        let (store, decoded) = (&self.shared.store, &mut *self.decoded);
        self.pods.entry(ns.to_string()).or_insert_with(|| decoded.list(store, "Pod", Some(ns)))
    }

    fn all_pods(&mut self) -> Vec<Obj<Pod>> {
        self.decoded.list(&self.shared.store, "Pod", None)
    }

    fn services(&mut self, ns: &str) -> &[Service] {
        let store = &self.shared.store;
        self.services
            .entry(ns.to_string())
            .or_insert_with(|| typed::decode_all(store.list_shared("Service", Some(ns)).0.iter().map(|s| &**s)))
    }

    /// The slices of one Service made by one controller. Both controllers name their slices
    /// `generateName: <service>-`, so they are found by that prefix, not by scanning every
    /// slice of the namespace (which took most of a pass at 1,000 Services).
    fn slices(&self, ns: &str, service: &str, manager: &'static str) -> Vec<Arc<Value>> {
        let prefix = naming::generated_prefix(&format!("{service}-")).to_string();
        let mut slices = self.shared.store.list_shared_prefixed("EndpointSlice", ns, &prefix);
        slices.retain(|s| {
            let labels = &s["metadata"]["labels"];
            labels[SERVICE_NAME].as_str() == Some(service) && labels[MANAGED_BY].as_str() == Some(manager)
        });
        slices
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
