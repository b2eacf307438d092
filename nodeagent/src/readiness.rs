//! Readiness probing of this node's pods (kubelet's prober workers): one task per pod that has a
//! container with a `readinessProbe`, running the probes when [`ProbeTracker`] says they are due
//! and recording each container's readiness in [`Readiness`], which the agent reads when it
//! reports the pod's status (READY `0/1` until the probe passes; the endpoints controller then
//! leaves the pod out of its Services).

use crate::probe::{run_probe, ExecTarget};
use crate::sandbox::{self, ContainerState};
use emu_api::typed::k8s_openapi::api::core::v1::{Pod, Probe};
use emu_logic::podspec::spec;
use emu_logic::probe::{probe_action, ProbeTracker};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a prober looks at its pod's containers between probes (restarts, new runs); it
/// wakes sooner when a probe is due sooner.
const TICK: Duration = Duration::from_millis(100);

/// Each probed container's readiness, by pod uid and container name.
#[derive(Default)]
pub struct Readiness {
    by_pod: Mutex<HashMap<String, HashMap<String, bool>>>,
    /// Notified when a container's readiness changes, so that the agent reports the pod's
    /// status at once (kubelet's readiness manager updates the status manager the same way)
    /// rather than at its next periodic pass.
    pub changed: tokio::sync::Notify,
}

impl Readiness {
    /// Whether `container` of the pod passes its readiness probe: true without a probe, false
    /// until its first probe has passed.
    pub fn container_ready(&self, pod: &Pod, container: &str) -> bool {
        if readiness_probe(pod, container).is_none() {
            return true;
        }
        let by_pod = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
        by_pod.get(pod.metadata.uid.as_deref().unwrap_or_default()).and_then(|c| c.get(container)).copied().unwrap_or(false)
    }

    fn set(&self, uid: &str, container: &str, ready: bool) {
        let mut by_pod = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
        let before = by_pod.entry(uid.to_string()).or_default().insert(container.to_string(), ready);
        if before.unwrap_or(false) != ready {
            self.changed.notify_one();
        }
    }

    fn forget(&self, uid: &str) {
        self.by_pod.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

fn readiness_probe<'a>(pod: &'a Pod, container: &str) -> Option<&'a Probe> {
    spec(pod).containers.iter().find(|c| c.name == container)?.readiness_probe.as_ref()
}

/// Whether any container of the pod has a readiness or liveness probe (and so needs a prober).
pub fn has_readiness_probe(pod: &Pod) -> bool {
    spec(pod).containers.iter().any(|c| c.readiness_probe.is_some() || c.liveness_probe.is_some())
}

/// One container's liveness prober state (kubelet's liveness worker): a probe every period
/// after the initial delay, and the failures in a row; at `failureThreshold` the container is
/// killed, and the shim restarts it as its restart policy says.
struct Live {
    run: (u32, String),
    next_ms: u64,
    period_ms: u64,
    failures: u32,
    failure_threshold: u32,
    killed: bool,
}

impl Live {
    fn new(probe: &Probe, run: (u32, String), now_ms: u64) -> Live {
        let positive = |n: Option<i32>, default: u32| n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(default);
        let delay_ms = u64::from(probe.initial_delay_seconds.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)) * 1000;
        Live {
            run,
            next_ms: now_ms + delay_ms,
            period_ms: u64::from(positive(probe.period_seconds, 10)) * 1000,
            failures: 0,
            failure_threshold: positive(probe.failure_threshold, 3),
            killed: false,
        }
    }

    /// Whether a probe is due at `now_ms` (none once the container has been killed).
    fn due(&self, now_ms: u64) -> bool {
        !self.killed && now_ms >= self.next_ms
    }

    /// Records the probe that started at `started_ms`; true when the container must be killed now.
    fn record(&mut self, success: bool, started_ms: u64) -> bool {
        self.next_ms = started_ms + self.period_ms;
        self.failures = if success { 0 } else { self.failures + 1 };
        self.killed = self.failures >= self.failure_threshold;
        self.killed
    }
}

/// Kills a container whose liveness probe failed as kubelet does: SIGTERM, then SIGKILL after
/// the grace period (the probe's `terminationGracePeriodSeconds`, else the pod's, else 30 s).
fn kill_container(pid: i32, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // Still there (the shim reaps it when it exits, so the pid is not someone else's yet).
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    });
}

/// One container's prober state: the run it is probing and that run's tracker.
struct Probed {
    run: (u32, String),
    tracker: ProbeTracker,
}

/// Probes the pod's containers until its sandbox is gone. `nodeagent_exe` runs exec probes
/// (`emu-nodeagent nsexec`, as `emu exec` does).
pub async fn probe_pod(readiness: Arc<Readiness>, pod: &Pod, pod_ip: Ipv4Addr, pod_dir: PathBuf, nodeagent_exe: PathBuf) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let epoch = Instant::now();
    let now_ms = || epoch.elapsed().as_millis() as u64;
    let mut probed: HashMap<String, Probed> = HashMap::new();
    let mut alive: HashMap<String, Live> = HashMap::new();
    loop {
        let Ok(state) = sandbox::read_state(&pod_dir) else {
            if !pod_dir.exists() {
                break;
            }
            tokio::time::sleep(TICK).await;
            continue;
        };
        let mut next_due = u64::MAX;
        for c in &spec(pod).containers {
            let name = c.name.as_str();
            if let Some(probe) = &c.liveness_probe {
                let running = state.containers.iter().find(|s| s.name == name).and_then(|s| match (&s.state, s.pid) {
                    (ContainerState::Running { started_at }, Some(pid)) => Some(((s.restart_count, started_at.clone()), pid)),
                    _ => None,
                });
                match running {
                    None => {
                        alive.remove(name);
                    }
                    Some((run, pid)) => {
                        let live = alive.entry(name.to_string()).or_insert_with(|| Live::new(probe, run.clone(), now_ms()));
                        if live.run != run {
                            *live = Live::new(probe, run, now_ms());
                        }
                        let started = now_ms();
                        if live.due(started) {
                            let timeout = Duration::from_secs(
                                probe.timeout_seconds.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(1),
                            );
                            let success = match probe_action(probe, c) {
                                Ok(action) => {
                                    let target = ExecTarget {
                                        nodeagent_exe: nodeagent_exe.clone(),
                                        pod_dir: pod_dir.clone(),
                                        container: name.to_string(),
                                    };
                                    run_probe(&action, pod_ip, Some(target), timeout).await
                                }
                                Err(_) => false,
                            };
                            if live.record(success, started) {
                                let grace = probe
                                    .termination_grace_period_seconds
                                    .or(spec(pod).termination_grace_period_seconds)
                                    .and_then(|n| u64::try_from(n).ok())
                                    .unwrap_or(30);
                                tracing::info!(pod = %pod_name, container = name, failures = live.failures, "liveness probe failed: killing the container");
                                kill_container(pid, Duration::from_secs(grace));
                            }
                        }
                        if !live.killed {
                            next_due = next_due.min(live.next_ms);
                        }
                    }
                }
            }
            let Some(probe) = &c.readiness_probe else { continue };
            let running = state.containers.iter().find(|s| s.name == name).and_then(|s| match &s.state {
                ContainerState::Running { started_at } => Some((s.restart_count, started_at.clone())),
                _ => None,
            });
            let Some(run) = running else {
                // Not running: not ready, and the next run starts probing afresh.
                probed.remove(name);
                readiness.set(&uid, name, false);
                continue;
            };
            let entry = probed
                .entry(name.to_string())
                .or_insert_with(|| Probed { run: run.clone(), tracker: ProbeTracker::for_container(c, now_ms()) });
            if entry.run != run {
                *entry = Probed { run, tracker: ProbeTracker::for_container(c, now_ms()) };
            }
            let started = now_ms();
            if !entry.tracker.due(started) {
                next_due = next_due.min(entry.tracker.next_due_ms());
                continue;
            }
            let success = match probe_action(probe, c) {
                Ok(action) => {
                    let target = ExecTarget { nodeagent_exe: nodeagent_exe.clone(), pod_dir: pod_dir.clone(), container: name.to_string() };
                    run_probe(&action, pod_ip, Some(target), Duration::from_millis(entry.tracker.timeout_ms())).await
                }
                Err(reason) => {
                    tracing::debug!(pod = %pod_name, container = name, %reason, "readiness probe cannot run");
                    false
                }
            };
            entry.tracker.record(success, started);
            readiness.set(&uid, name, entry.tracker.ready());
            next_due = next_due.min(entry.tracker.next_due_ms());
        }
        // A container not ready yet is probed again within milliseconds (ProbeTracker): sleep
        // until then, not a whole tick.
        let until_due = Duration::from_millis(next_due.saturating_sub(now_ms()).max(1));
        tokio::time::sleep(TICK.min(until_due)).await;
    }
    readiness.forget(&uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_kills_after_failure_threshold_failures_in_a_row() {
        let probe: Probe =
            serde_json::from_value(serde_json::json!({"httpGet": {"port": 8080}, "periodSeconds": 1, "initialDelaySeconds": 2}))
                .expect("probe");
        let mut live = Live::new(&probe, (0, "t".into()), 1_000);
        assert!(!live.due(2_999) && live.due(3_000), "after the initial delay");
        // The book's kubia-unhealthy: five good answers, then 500s; killed at the third.
        let mut now = 3_000;
        for _ in 0..5 {
            assert!(!live.record(true, now));
            now += 1_000;
        }
        assert!(!live.due(now - 1) && live.due(now), "every period");
        assert!(!live.record(false, now) && !live.record(false, now + 1_000));
        assert!(!live.record(true, now + 2_000), "a success starts the count again");
        assert!(!live.record(false, now + 3_000) && !live.record(false, now + 4_000));
        assert!(live.record(false, now + 5_000), "third failure in a row");
        assert!(!live.due(u64::MAX), "killed: no more probes of this run");
        // Kubernetes' defaults: every 10 s, three failures.
        let default = Live::new(&Probe::default(), (0, "t".into()), 0);
        assert_eq!((default.period_ms, default.failure_threshold, default.next_ms), (10_000, 3, 0));
    }
}
