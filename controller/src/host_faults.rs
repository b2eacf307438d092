//! Faults of emulated hosts (`emu up --hosts N`, issue 18 item 3): the cluster's hosts as its Node
//! objects name them, and the LAN reconciler that applies host partitions and impairments of the
//! hosts' LAN links.
//!
//! A host partition is no node's: it drops the hosts' underlay traffic in their LAN (the
//! namespace `emu-<cluster>-lan`, table `bridge emu-faults`, rendered by
//! `emu_logic::faults::lan`), where no agent can reach and which a partitioned agent could not
//! reach anyway. So the controller applies it, level-triggered, from every pass
//! (`controllers.rs`): it puts its finalizer ([`faults::LAN_FINALIZER`]) on a host partition,
//! renders the table of the partitions it holds, pipes it to one `nft -f -` in the LAN's
//! namespace when it differs from what it applied (a failure is retried after a back-off, 0.5 s
//! doubling to 5 s), then writes its entry ([`faults::LAN_APPLIER`]) of `status.appliedOn`, and
//! takes entry and finalizer off a deleted partition once the table no longer has it. A
//! restarted controller applies the table anew on its first pass, so partitions survive it, and
//! one cleared while it was down is reverted then.
//!
//! A host's LAN link impaired (`emu fault delay host/host-2 50ms`, a `netem` fault whose target is
//! a host) is no node's either: its packets are the host's own (the overlay's, the agents' to the
//! control plane). The same reconciler, with the same finalizer and status entry, carries out
//! `emu_dataplane::faults::host_link_plan`: the queue rules on the host's `eth0`, in the host's
//! namespace, with `iptables-restore`, and the queues in a link emulator of the controller's own
//! (`emu_host::linkemu`), which holds, drops or copies the packets as an agent's does on a node's
//! link. Its first pass flushes every host's rules, so that a restarted controller leaves none of
//! a fault cleared while it was down.
//!
//! Host stops follow node stops (`relay.rs`, `HostStop`/`HostStart`): the CLI asks the
//! controller, which records the Fault and has the provider take the host's LAN link down and
//! freeze its nodes.

use crate::state::Shared;
use crate::store::{ObjectKey, Store, StoreError};
use emu_api::fault::{self, FaultSpec};
use emu_api::{naming, object};
use emu_dataplane::faults::{self as fault_rules, Achieved, IptablesRules};
use emu_host::iptables::IptablesRunner;
use emu_host::linkemu::QueueSetter;
use emu_logic::cluster::{HOST_LABEL, UNDERLAY_ANNOTATION};
use emu_logic::faults::{self, lan, AppliedOn};
use emu_provider::hosts::NftRunner;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One emulated host, as its nodes' objects name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Its underlay address on the LAN (the nodes' [`UNDERLAY_ANNOTATION`]).
    pub address: String,
    /// Its nodes, by name.
    pub nodes: Vec<String>,
}

/// The hosts of `nodes` (Node objects) by name: each node's [`HOST_LABEL`] and underlay address.
/// Nodes without a host (a cluster on one machine) are left out.
pub fn hosts_of<'a>(nodes: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, Host> {
    let mut out: BTreeMap<String, Host> = BTreeMap::new();
    for n in nodes {
        let Some(host) = n["metadata"]["labels"][HOST_LABEL].as_str().filter(|h| !h.is_empty()) else { continue };
        let entry = out.entry(host.to_string()).or_default();
        if let Some(a) = n["metadata"]["annotations"][UNDERLAY_ANNOTATION].as_str().filter(|a| !a.is_empty()) {
            entry.address = a.to_string();
        }
        entry.nodes.push(object::name(n).to_string());
    }
    out.values_mut().for_each(|h| h.nodes.sort());
    out
}

/// The cluster's emulated hosts: none unless its LAN exists on this (the control plane's)
/// machine; real machines that joined are not emulated (there is no LAN of emu's to cut them in).
pub fn emulated_hosts(shared: &Shared) -> BTreeMap<String, Host> {
    if !emu_provider::hosts::has_lan(&shared.cluster.name) {
        return BTreeMap::new();
    }
    let (nodes, _) = shared.store.list_shared("Node", None);
    hosts_of(nodes.iter().map(|n| &**n))
}

/// The back-off after a failed apply: 0.5 s, doubling up to 5 s.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the LAN reconciler acts with: `nft` in the LAN's namespace (host partitions), and for the
/// hosts' LAN links `iptables-restore` in the hosts' namespaces and the controller's link emulator.
pub struct LanEffects {
    pub nft: Arc<dyn NftRunner>,
    pub iptables: Arc<dyn IptablesRunner>,
    pub queues: Arc<dyn QueueSetter>,
}

impl LanEffects {
    /// The real ones for `cluster` (starts the link emulator's thread).
    pub fn real(cluster: &str) -> LanEffects {
        LanEffects {
            nft: Arc::new(emu_provider::hosts::lan_nft(cluster)),
            iptables: Arc::new(emu_host::iptables::RealIptables),
            queues: Arc::new(emu_host::linkemu::LinkEmulator::start()),
        }
    }
}

/// The LAN's table and the hosts' link rules, pass after pass.
pub struct LanReconciler {
    effects: LanEffects,
    /// The script last applied successfully (None: nothing yet, so the first pass applies).
    applied: Option<String>,
    /// The queue rules in force in each host's namespace (by its name); a namespace not listed
    /// has none, once `flushed`.
    links: BTreeMap<String, IptablesRules>,
    /// Whether every host's rules were flushed once (a restarted controller's first pass).
    flushed: bool,
    /// No apply before this after a failure, and the next back-off.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// When each partition in effect (by uid) took effect, for its status entry.
    since: BTreeMap<String, String>,
}

impl LanReconciler {
    pub fn new(effects: LanEffects) -> LanReconciler {
        LanReconciler {
            effects,
            applied: None,
            links: BTreeMap::new(),
            flushed: false,
            retry_at: None,
            backoff: RETRY_FIRST,
            since: BTreeMap::new(),
        }
    }

    /// Whether the table holds no partition, no host's link has rules and no fault is in effect:
    /// with no such fault in the store, a pass has nothing to do (the usual pass of a cluster
    /// without host faults).
    fn idle(&self) -> bool {
        self.since.is_empty() && self.links.is_empty() && self.flushed && self.applied.as_deref().is_some_and(|s| !s.contains(" drop"))
    }

    /// One pass over the store's Faults, with each host's address on the LAN (`addresses`) and
    /// its network namespace (`host_netns`, by name). Returns whether the table and the links
    /// are as the faults want them.
    pub fn pass(&mut self, store: &Store, addresses: &BTreeMap<String, String>, host_netns: &BTreeMap<String, String>) -> bool {
        let (all, _) = store.list_shared(fault::KIND, None);
        let mut partitions: Vec<(Value, FaultSpec)> = all
            .iter()
            .filter(|f| faults::applied_in_lan(f))
            .filter_map(|f| match fault::parse(f, &[]) {
                Ok(spec) => Some(((**f).clone(), spec)),
                Err(e) => {
                    tracing::warn!(fault = %object::name(f), error = %e, "ignoring an invalid host fault");
                    None
                }
            })
            .collect();
        if partitions.is_empty() && self.idle() {
            return true;
        }
        // Held before applied, so that a deletion waits for the revert.
        for (f, _) in partitions.iter_mut() {
            if !object::is_terminating(f) {
                if let Some(held) = faults::with_lan_finalizer(f, true) {
                    match store.update(held) {
                        Ok(stored) => *f = stored,
                        Err(e) => tracing::debug!(fault = %object::name(f), error = %e, "holding a host partition (again next pass)"),
                    }
                }
            }
        }
        let wanted = |f: &Value| !object::is_terminating(f) && faults::lan_holds(f);
        let specs: Vec<(String, FaultSpec)> =
            partitions.iter().filter(|(f, _)| wanted(f)).map(|(f, s)| (object::name(f).to_string(), s.clone())).collect();
        let script = lan::lan_script(&specs, addresses);
        let plan = fault_rules::host_link_plan(&specs, host_netns);
        let may_retry = self.retry_at.is_none_or(|t| Instant::now() >= t);
        let mut failed = false;
        if self.applied.as_ref() != Some(&script) && may_retry {
            match self.effects.nft.apply(&script) {
                Ok(()) => {
                    tracing::info!(partitions = specs.len(), "host partitions set in the LAN");
                    tracing::trace!(%script, "LAN table");
                    self.applied = Some(script.clone());
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?self.backoff, "applying the host partitions in the LAN failed");
                    failed = true;
                }
            }
        }
        // The emulator knows a queue before packets are sent to it; the rules follow.
        let bound = self.bound_queues(&plan.queues);
        if may_retry {
            failed |= !self.apply_links(&plan.iptables, host_netns);
        }
        if failed {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(RETRY_MAX);
        } else if may_retry {
            (self.retry_at, self.backoff) = (None, RETRY_FIRST);
        }
        let achieved = Achieved {
            partition: true,
            iptables: plan
                .iptables
                .iter()
                .filter(|(n, r)| n.as_ref().and_then(|n| self.links.get(n)) == Some(*r))
                .map(|(n, _)| n.clone())
                .collect(),
            bound,
            link: true,
        };
        let links_in_effect = fault_rules::in_effect(&plan, &achieved);
        let links_done = self.flushed && plan.iptables.len() == achieved.iptables.len() && self.links.len() == plan.iptables.len();
        let done = self.applied.as_ref() == Some(&script) && links_done;
        let now = faults::micro_time(std::time::SystemTime::now());
        let mut seen = BTreeSet::new();
        for (f, spec) in &partitions {
            let uid = object::uid(f).to_string();
            let in_effect = wanted(f)
                && match spec {
                    FaultSpec::Netem { .. } => links_in_effect.contains(object::name(f)),
                    _ => self.applied.as_ref() == Some(&script) && lan::unknown_hosts(spec, addresses).is_empty(),
                };
            if in_effect {
                seen.insert(uid.clone());
            }
            let entry = in_effect.then(|| AppliedOn {
                node: faults::LAN_APPLIER.into(),
                since: self.since.entry(uid.clone()).or_insert_with(|| now.clone()).clone(),
                observed_generation: f["metadata"]["generation"].as_i64().unwrap_or(1),
            });
            let mut next = f.clone();
            if let Some(status) = faults::with_applied(f, faults::LAN_APPLIER, entry.as_ref()) {
                next["status"] = status["status"].clone();
            }
            // Let go of a deleted partition once the table no longer has it.
            if done && !wanted(f) {
                next = faults::with_lan_finalizer(&next, false).unwrap_or(next);
            }
            if next != *f {
                match store.update(next) {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => tracing::debug!(fault = %object::name(f), error = %e, "recording a host partition (again next pass)"),
                }
            }
        }
        self.since.retain(|uid, _| seen.contains(uid));
        done
    }

    /// Gives the link emulator its queues and waits (up to a second) until it has bound them;
    /// returns the queues bound.
    fn bound_queues(&self, queues: &BTreeMap<u16, fault_rules::Queue>) -> BTreeSet<u16> {
        let generation = self.effects.queues.set(queues.clone());
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(bound) = self.effects.queues.bound(generation) {
                return bound;
            }
            if Instant::now() >= deadline {
                tracing::warn!(generation, "the link emulator has not bound the hosts' queues within 1s");
                return BTreeSet::new();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Makes each host namespace's queue rules those of `wanted` (by namespace; the others' none:
    /// every host's of `host_netns` on the first pass). Returns whether every restore succeeded.
    fn apply_links(&mut self, wanted: &BTreeMap<Option<String>, IptablesRules>, host_netns: &BTreeMap<String, String>) -> bool {
        let mut todo: BTreeMap<String, IptablesRules> = wanted.iter().filter_map(|(n, r)| Some((n.clone()?, r.clone()))).collect();
        let mut stale: BTreeSet<String> = self.links.keys().filter(|n| !todo.contains_key(*n)).cloned().collect();
        if !self.flushed {
            stale.extend(host_netns.values().filter(|n| !todo.contains_key(*n)).cloned());
        }
        todo.retain(|n, r| self.links.get(n) != Some(r));
        let mut ok = true;
        for netns in stale {
            match self.effects.iptables.restore(Some(&netns), &IptablesRules::default().restore_input()) {
                Ok(()) => {
                    self.links.remove(&netns);
                }
                Err(e) => {
                    tracing::warn!(%netns, error = %e, "removing a host's link rules failed");
                    ok = false;
                }
            }
        }
        for (netns, rules) in todo {
            match self.effects.iptables.restore(Some(&netns), &rules.restore_input()) {
                Ok(()) => {
                    tracing::info!(%netns, "a host's LAN link impaired");
                    self.links.insert(netns, rules);
                }
                Err(e) => {
                    tracing::warn!(%netns, error = %e, "setting a host's link rules failed");
                    ok = false;
                }
            }
        }
        self.flushed |= ok;
        ok
    }
}

/// A pass of the LAN reconciler (kept in `shared.lan`; None on a cluster without emulated
/// hosts, whose LAN never appears later), from the controller's pass.
pub fn sync(shared: &Shared) {
    let cluster = &shared.cluster.name;
    let lan =
        shared.lan.get_or_init(|| emu_provider::hosts::has_lan(cluster).then(|| Mutex::new(LanReconciler::new(LanEffects::real(cluster)))));
    let Some(lan) = lan else { return };
    let mut lan = lan.lock().unwrap_or_else(|e| e.into_inner());
    let (all, _) = shared.store.list_shared(fault::KIND, None);
    if lan.idle() && !all.iter().any(|f| faults::applied_in_lan(f)) {
        return;
    }
    let (nodes, _) = shared.store.list_shared("Node", None);
    let hosts = hosts_of(nodes.iter().map(|n| &**n));
    let addresses: BTreeMap<String, String> =
        hosts.iter().filter(|(_, h)| !h.address.is_empty()).map(|(name, h)| (name.clone(), h.address.clone())).collect();
    // The emulated hosts' namespaces (a machine that joined for real has none here).
    let host_netns: BTreeMap<String, String> = hosts
        .keys()
        .map(|name| (name.clone(), naming::netns_host(cluster, name)))
        .filter(|(_, netns)| emu_host::net::netns_path(netns).exists())
        .collect();
    lan.pass(&shared.store, &addresses, &host_netns);
}

/// The Fault of `host`'s stop, if it is stopped.
pub fn host_stop(shared: &Shared, host: &str) -> Option<Value> {
    let (all, _) = shared.store.list_shared(fault::KIND, None);
    all.iter().find(|f| f["spec"]["hostStop"]["host"] == host).map(|f| (**f).clone())
}

/// The key of Fault `name`.
pub fn fault_key(name: &str) -> ObjectKey {
    ObjectKey { kind: fault::KIND.into(), namespace: String::new(), name: name.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::fault::{Netem, Target};
    use emu_host::iptables::FakeIptables;
    use emu_host::linkemu::FakeQueues;
    use emu_provider::hosts::FakeNft;
    use serde_json::json;

    fn effects(nft: Arc<FakeNft>) -> LanEffects {
        LanEffects { nft, iptables: Arc::new(FakeIptables::new()), queues: Arc::new(FakeQueues::new()) }
    }

    fn node(name: &str, host: &str, address: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
            "labels": {HOST_LABEL: host}, "annotations": {UNDERLAY_ANNOTATION: address}}})
    }

    fn addresses() -> BTreeMap<String, String> {
        (1..=3).map(|i| (format!("host-{i}"), format!("192.0.2.{i}"))).collect()
    }

    fn partition(store: &Store, name: &str) {
        let spec = FaultSpec::HostPartition { a: vec!["host-2".into()], b: vec!["host-1".into(), "host-3".into()], one_way: false };
        store.create(fault::to_object(name, &spec)).unwrap();
    }

    /// `f` deleted while held: Terminating (its finalizers keep it).
    fn mark_deleted(store: &Store, f: &Value) {
        let mut d = f.clone();
        d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        store.update(d).unwrap();
    }

    fn get(store: &Store, name: &str) -> Option<Value> {
        store.get(&fault_key(name))
    }

    #[test]
    fn hosts_are_read_from_their_nodes() {
        let nodes = [node("node-3", "host-2", "192.0.2.2"), node("node-1", "host-1", "192.0.2.1"), node("node-4", "host-2", "192.0.2.2")];
        let mut alone = node("solo", "", "");
        alone["metadata"]["labels"][HOST_LABEL] = json!("");
        let hosts = hosts_of(nodes.iter().chain([&alone]));
        assert_eq!(hosts.keys().collect::<Vec<_>>(), ["host-1", "host-2"]);
        assert_eq!(hosts["host-2"], Host { address: "192.0.2.2".into(), nodes: vec!["node-3".into(), "node-4".into()] });
    }

    #[test]
    fn a_host_partition_is_held_applied_in_the_lan_reported_and_reverted_once_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let nft = Arc::new(FakeNft::new());
        let mut lan = LanReconciler::new(effects(nft.clone()));
        // The first pass converges the table even without faults (a restarted controller).
        assert!(lan.pass(&store, &addresses(), &BTreeMap::new()));
        assert_eq!(nft.scripts(), [lan::lan_script(&[], &addresses())]);
        assert!(lan.pass(&store, &addresses(), &BTreeMap::new()));
        assert_eq!(nft.scripts().len(), 1, "nothing changed: no nft");

        partition(&store, "partition-1");
        assert!(lan.pass(&store, &addresses(), &BTreeMap::new()));
        let script = nft.scripts().last().unwrap().clone();
        assert!(lan::drops(&script, "192.0.2.2", "192.0.2.1").unwrap() && !lan::drops(&script, "192.0.2.1", "192.0.2.3").unwrap());
        let f = get(&store, "partition-1").unwrap();
        assert!(faults::lan_holds(&f), "{f}");
        let p = faults::lan_progress(&f);
        assert_eq!((faults::status_word(&p), p.in_effect), ("Applied", vec![faults::LAN_APPLIER.to_string()]));
        // Agents never hold it.
        assert!(faults::holders(&f).is_empty());

        // Deleted: Terminating (the finalizer) until the table no longer has it, then gone.
        mark_deleted(&store, &f);
        nft.fail_next(1);
        assert!(!lan.pass(&store, &addresses(), &BTreeMap::new()), "the revert failed");
        assert!(get(&store, "partition-1").is_some(), "still held");
        lan.retry_at = None;
        assert!(lan.pass(&store, &addresses(), &BTreeMap::new()));
        assert_eq!(nft.scripts().last().unwrap(), &lan::lan_script(&[], &addresses()));
        assert!(get(&store, "partition-1").is_none(), "let go: the deletion completed");
    }

    #[test]
    fn a_partition_naming_a_host_without_address_is_held_but_not_in_effect() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let mut lan = LanReconciler::new(effects(Arc::new(FakeNft::new())));
        partition(&store, "partition-1");
        let mut known = addresses();
        known.remove("host-2");
        assert!(lan.pass(&store, &known, &BTreeMap::new()));
        let f = get(&store, "partition-1").unwrap();
        assert!(faults::lan_holds(&f) && faults::lan_progress(&f).in_effect.is_empty(), "{f}");
    }

    #[test]
    fn a_hosts_lan_link_is_queued_in_its_namespace_reported_and_reverted_once_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let (nft, iptables, queues) = (Arc::new(FakeNft::new()), Arc::new(FakeIptables::new()), Arc::new(FakeQueues::new()));
        let mut lan = LanReconciler::new(LanEffects { nft: nft.clone(), iptables: iptables.clone(), queues: queues.clone() });
        let netns: BTreeMap<String, String> = (1..=3).map(|i| (format!("host-{i}"), format!("emu-c-host-{i}"))).collect();
        // The first pass flushes every host's rules (a restarted controller's leftovers).
        assert!(lan.pass(&store, &addresses(), &netns));
        let flushed: Vec<Option<String>> = iptables.restores().into_iter().map(|(n, _)| n).collect();
        assert_eq!(flushed, netns.values().map(|n| Some(n.clone())).collect::<Vec<_>>());
        assert!(lan.pass(&store, &addresses(), &netns));
        assert_eq!(iptables.restores().len(), 3, "nothing changed: no iptables");

        let slow = FaultSpec::Netem { target: Target::Host("host-2".into()), netem: Netem { delay_ms: Some(50.0), ..Default::default() } };
        store.create(fault::to_object("delay-1", &slow)).unwrap();
        assert!(lan.pass(&store, &addresses(), &netns));
        let (ns, rules) = iptables.restores().last().unwrap().clone();
        assert_eq!(ns.as_deref(), Some("emu-c-host-2"));
        assert!(rules.contains("-A POSTROUTING -o eth0 -j NFQUEUE --queue-num 300 --queue-bypass"), "{rules}");
        assert_eq!(queues.current()[&300].netns.as_deref(), Some("emu-c-host-2"));
        let f = get(&store, "delay-1").unwrap();
        assert!(faults::lan_holds(&f) && faults::holders(&f).is_empty(), "{f}");
        assert_eq!(faults::lan_progress(&f).in_effect, [faults::LAN_APPLIER]);
        assert_eq!(nft.scripts(), [lan::lan_script(&[], &addresses())], "the LAN's table has nothing of it");

        // Deleted: held until the host's rules are gone.
        mark_deleted(&store, &f);
        iptables.fail_next(1);
        assert!(!lan.pass(&store, &addresses(), &netns), "the revert failed");
        assert!(get(&store, "delay-1").is_some(), "still held");
        lan.retry_at = None;
        assert!(lan.pass(&store, &addresses(), &netns));
        assert_eq!(iptables.restores().last().unwrap(), &(Some("emu-c-host-2".to_string()), IptablesRules::default().restore_input()));
        assert!(queues.current().is_empty());
        assert!(get(&store, "delay-1").is_none(), "let go: the deletion completed");
        assert!(lan.idle());
    }
}
