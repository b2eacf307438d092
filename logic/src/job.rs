//! The Job controller's decisions, as kube-controller-manager makes them (pkg/controller/job
//! `syncJob`, `manageJob`, `backoff_utils.go`, Kubernetes 1.31+): one pure step from the Job,
//! its pods and the time. The controller gathers the views, calls [`step`], and creates,
//! deletes and writes what it answers.
//!
//! Left out: pod failure and success policies, backoffLimitPerIndex, the job-tracking finalizer
//! and `uncountedTerminatedPods` (counts are kept in the status and never go down, so a pod
//! deleted after it finished stays counted).

/// The label and annotation of an Indexed Job's pod that hold its index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The conditions' reasons and messages, Kubernetes' own.
pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) = ("BackoffLimitExceeded", "Job has reached the specified backoff limit");
pub const DEADLINE_EXCEEDED: (&str, &str) = ("DeadlineExceeded", "Job was active longer than specified deadline");
pub const COMPLETIONS_REACHED: (&str, &str) = ("CompletionsReached", "Reached expected number of succeeded pods");

/// The first delay before a pod replaces a failed one, doubled at each failure in a row.
pub const BACKOFF_BASE_SECONDS: i64 = 10;
/// The longest such delay (kube's `MaxJobBackOff`, 360 s until 1.31 made it 10 min).
pub const BACKOFF_MAX_SECONDS: i64 = 360;

/// What the step reads of the Job's spec, defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub completions: Option<i32>,
    pub parallelism: i32,
    pub backoff_limit: i32,
    pub indexed: bool,
    pub suspend: bool,
    pub active_deadline_seconds: Option<i64>,
    /// restartPolicy OnFailure (containers restart in place; their restarts count as failures).
    pub on_failure: bool,
    pub ttl_seconds_after_finished: Option<i32>,
}

/// How far a pod got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Pending or Running.
    Active,
    Succeeded,
    Failed,
}

/// One of the Job's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub phase: PodPhase,
    /// Being deleted (its deletionTimestamp is set).
    pub terminating: bool,
    pub ready: bool,
    /// Its containers' restarts (what restartPolicy OnFailure counts against the back-off limit).
    pub restarts: i32,
    /// When it finished (its last container's finishedAt), or was created.
    pub finished_at: Option<i64>,
    pub created: i64,
    /// Its completion index (Indexed Jobs).
    pub index: Option<i32>,
}

/// A condition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition: i64,
}

/// What the Job's status says already.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Previous {
    pub start_time: Option<i64>,
    pub completion_time: Option<i64>,
    pub succeeded: i32,
    pub failed: i32,
    pub conditions: Vec<Condition>,
}

impl Previous {
    fn has(&self, type_: &str) -> bool {
        self.conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
    }

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_ && c.status == "True")
    }

    /// When the Job finished: its completionTime, or when it turned Failed.
    pub fn finished_at(&self) -> Option<i64> {
        if self.has("Complete") {
            return self.completion_time.or(self.condition("Complete").map(|c| c.last_transition));
        }
        self.condition("Failed").map(|c| c.last_transition)
    }
}

/// An Event to record on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The counts of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active: i32,
    pub ready: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub terminating: i32,
}

/// What one step decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// Pods to create: one entry per pod, its completion index for an Indexed Job.
    pub create: Vec<Option<i32>>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub counts: Counts,
    pub start_time: Option<i64>,
    pub completion_time: Option<i64>,
    /// The conditions, in order, with their transition times.
    pub conditions: Vec<Condition>,
    pub events: Vec<Event>,
    /// The Job has outlived its ttlSecondsAfterFinished: delete it (and so its pods).
    pub delete_job: bool,
    /// `status.completedIndexes` of an Indexed Job (`1,3-5`).
    pub completed_indexes: Option<String>,
    /// When a pass should look again (a back-off or deadline to wait out).
    pub wake_at: Option<i64>,
}

/// The delay before the next pod after `failures` failures in a row (`getRemainingTime`'s
/// back-off): 10 s, 20 s, 40 s, … capped at [`BACKOFF_MAX_SECONDS`].
pub fn backoff_delay(failures: u32) -> i64 {
    if failures == 0 {
        return 0;
    }
    let shift = (failures - 1).min(20);
    (BACKOFF_BASE_SECONDS << shift).min(BACKOFF_MAX_SECONDS)
}

/// A set of indexes as `status.completedIndexes` writes it: sorted, runs as `a-b`.
pub fn format_indexes(indexes: &[i32]) -> String {
    let mut sorted = indexes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

fn set_condition(conditions: &mut Vec<Condition>, type_: &str, status: &str, (reason, message): (&str, &str), now: i64) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status && c.reason == reason => false,
        Some(c) => {
            if c.status != status {
                c.last_transition = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            true
        }
        None => {
            conditions.push(Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into(),
                last_transition: now,
            });
            true
        }
    }
}

/// One sync of a Job.
pub fn step(job: &JobView, pods: &[PodView], prev: &Previous, now: i64) -> Step {
    let mut out = Step {
        conditions: prev.conditions.clone(),
        start_time: prev.start_time,
        completion_time: prev.completion_time,
        ..Default::default()
    };
    let active: Vec<&PodView> = pods.iter().filter(|p| p.phase == PodPhase::Active && !p.terminating).collect();
    let terminating = pods.iter().filter(|p| p.phase == PodPhase::Active && p.terminating).count() as i32;
    let succeeded_pods: Vec<&PodView> = pods.iter().filter(|p| p.phase == PodPhase::Succeeded).collect();
    let failed_pods = pods.iter().filter(|p| p.phase == PodPhase::Failed).count() as i32;
    let completed: Vec<i32> = if job.indexed {
        let mut ix: Vec<i32> = succeeded_pods.iter().filter_map(|p| p.index).filter(|i| job.completions.is_none_or(|c| *i < c)).collect();
        ix.sort_unstable();
        ix.dedup();
        out.completed_indexes = Some(format_indexes(&ix));
        ix
    } else {
        Vec::new()
    };
    let succeeded = if job.indexed { completed.len() as i32 } else { succeeded_pods.len() as i32 }.max(prev.succeeded);
    // A pod deleted while running does not count as failed here (kube counts it unless the
    // deletion was the controller's own; emu leaves such pods out).
    let failed = failed_pods.max(prev.failed);
    let restarts: i32 = if job.on_failure { active.iter().map(|p| p.restarts).sum() } else { 0 };
    out.counts = Counts {
        active: active.len() as i32,
        ready: active.iter().filter(|p| p.ready).count() as i32,
        succeeded,
        // The status counts failed pods; restarts (OnFailure) count only against the limit.
        failed,
        terminating,
    };

    // A finished Job only waits for its time to live.
    if prev.has("Complete") || prev.has("Failed") {
        if let (Some(ttl), Some(done)) = (job.ttl_seconds_after_finished, prev.finished_at()) {
            if now >= done + i64::from(ttl) {
                out.delete_job = true;
            } else {
                out.wake_at = Some(done + i64::from(ttl));
            }
        }
        return out;
    }

    // Suspension: pods go, the start time is forgotten (a resumed Job's deadline starts again).
    if job.suspend {
        out.delete.extend(active.iter().map(|p| p.name.clone()));
        out.counts.active = 0;
        out.counts.ready = 0;
        out.counts.terminating += active.len() as i32;
        out.start_time = None;
        if set_condition(&mut out.conditions, "Suspended", "True", ("JobSuspended", "Job suspended"), now) {
            out.events.push(Event { warning: false, reason: "Suspended".into(), message: "Job suspended".into() });
        }
        return out;
    }
    if prev.has("Suspended") {
        set_condition(&mut out.conditions, "Suspended", "False", ("JobResumed", "Job resumed"), now);
        out.events.push(Event { warning: false, reason: "Resumed".into(), message: "Job resumed".into() });
    }
    let start = *out.start_time.get_or_insert(now);

    // Already decided to fail or succeed: the remaining pods go, then the final condition.
    let failure_target = out.conditions.iter().find(|c| c.type_ == "FailureTarget" && c.status == "True").cloned();
    let success_target = out.conditions.iter().any(|c| c.type_ == "SuccessCriteriaMet" && c.status == "True");
    let decided = if let Some(target) = failure_target {
        Some((false, (target.reason.clone(), target.message.clone())))
    } else if success_target {
        Some((true, (COMPLETIONS_REACHED.0.to_string(), COMPLETIONS_REACHED.1.to_string())))
    } else {
        // Newly decided: failure first (the back-off limit, then the deadline), then success.
        let past_backoff = if job.on_failure {
            let total = restarts + failed;
            if job.backoff_limit == 0 {
                total > 0
            } else {
                total >= job.backoff_limit
            }
        } else {
            failed > job.backoff_limit
        };
        let past_deadline = job.active_deadline_seconds.is_some_and(|d| now >= start + d);
        let complete = match job.completions {
            Some(c) => succeeded >= c,
            // A work queue: done once one pod succeeded and none runs.
            None => succeeded > 0 && active.is_empty(),
        };
        let fail = if past_backoff {
            Some(BACKOFF_LIMIT_EXCEEDED)
        } else if past_deadline {
            Some(DEADLINE_EXCEEDED)
        } else {
            None
        };
        if let Some(reason) = fail {
            set_condition(&mut out.conditions, "FailureTarget", "True", reason, now);
            Some((false, (reason.0.to_string(), reason.1.to_string())))
        } else if complete {
            set_condition(&mut out.conditions, "SuccessCriteriaMet", "True", COMPLETIONS_REACHED, now);
            Some((true, (COMPLETIONS_REACHED.0.to_string(), COMPLETIONS_REACHED.1.to_string())))
        } else {
            None
        }
    };
    if let Some((success, (reason, message))) = decided {
        out.delete.extend(active.iter().map(|p| p.name.clone()));
        // The pods a failing Job stops count as failed (kube's `isPodFailed` once the Job has
        // its finished condition).
        if !success {
            out.counts.failed += active.len() as i32;
        }
        out.counts.terminating += active.len() as i32;
        out.counts.active = 0;
        out.counts.ready = 0;
        if out.counts.terminating == 0 {
            let reasoned = (reason.as_str(), message.as_str());
            if success {
                set_condition(&mut out.conditions, "Complete", "True", reasoned, now);
                out.completion_time = Some(now);
                out.events.push(Event { warning: false, reason: "Completed".into(), message: "Job completed".into() });
            } else {
                set_condition(&mut out.conditions, "Failed", "True", reasoned, now);
                out.events.push(Event { warning: true, reason, message });
            }
        }
        return out;
    }
    if let Some(d) = job.active_deadline_seconds {
        out.wake_at = Some(start + d);
    }

    // manageJob: as many pods as parallelism allows and completions still need.
    let want = match job.completions {
        Some(c) => (c - succeeded).clamp(0, job.parallelism),
        None if succeeded > 0 => active.len() as i32,
        None => job.parallelism,
    } as usize;
    if active.len() > want {
        // Fewest losses first: pods not ready, then the newest.
        let mut victims = active.clone();
        victims.sort_by_key(|p| (p.ready, std::cmp::Reverse(p.created), p.name.clone()));
        let n = active.len() - want;
        out.delete.extend(victims.iter().take(n).map(|p| p.name.clone()));
        out.counts.active -= n as i32;
        out.counts.terminating += n as i32;
        return out;
    }
    if active.len() < want {
        // The back-off after failures in a row (since the last success).
        let last_success = pods.iter().filter(|p| p.phase == PodPhase::Succeeded).filter_map(|p| p.finished_at).max();
        let failures: Vec<i64> = pods
            .iter()
            .filter(|p| p.phase == PodPhase::Failed)
            .filter_map(|p| p.finished_at)
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        if let Some(last) = failures.iter().max() {
            let ready_at = last + backoff_delay(failures.len() as u32);
            if now < ready_at {
                out.wake_at = Some(out.wake_at.map_or(ready_at, |w| w.min(ready_at)));
                return out;
            }
        }
        let n = want - active.len();
        if job.indexed {
            let busy: Vec<i32> = active.iter().filter_map(|p| p.index).collect();
            let total = job.completions.unwrap_or(job.parallelism);
            out.create = (0..total).filter(|i| !completed.contains(i) && !busy.contains(i)).take(n).map(Some).collect();
        } else {
            out.create = vec![None; n];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(completions: Option<i32>, parallelism: i32) -> JobView {
        JobView {
            completions,
            parallelism,
            backoff_limit: 6,
            indexed: false,
            suspend: false,
            active_deadline_seconds: None,
            on_failure: false,
            ttl_seconds_after_finished: None,
        }
    }

    fn pod(name: &str, phase: PodPhase, finished_at: i64) -> PodView {
        PodView {
            name: name.into(),
            phase,
            terminating: false,
            ready: phase == PodPhase::Active,
            restarts: 0,
            finished_at: (phase != PodPhase::Active).then_some(finished_at),
            created: 0,
            index: None,
        }
    }

    fn types(s: &Step) -> Vec<(&str, &str)> {
        s.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect()
    }

    #[test]
    fn completions_three_parallelism_two() {
        let j = job(Some(3), 2);
        let s = step(&j, &[], &Previous::default(), 100);
        assert_eq!((s.create.len(), s.start_time), (2, Some(100)));
        // One done, one running: one more (3 - 1 = 2 wanted, 1 runs).
        let pods = [pod("a", PodPhase::Succeeded, 110), pod("b", PodPhase::Active, 0)];
        let prev = Previous { start_time: Some(100), ..Default::default() };
        let s = step(&j, &pods, &prev, 111);
        assert_eq!(s.create.len(), 1);
        assert_eq!(s.counts, Counts { active: 1, ready: 1, succeeded: 1, failed: 0, terminating: 0 });
        // Two done, one running: no more than the one still needed.
        let pods = [pod("a", PodPhase::Succeeded, 110), pod("b", PodPhase::Succeeded, 112), pod("c", PodPhase::Active, 0)];
        assert!(step(&j, &pods, &prev, 113).create.is_empty());
        // Three done: SuccessCriteriaMet then Complete in the same step (no pod left).
        let pods = [pod("a", PodPhase::Succeeded, 110), pod("b", PodPhase::Succeeded, 112), pod("c", PodPhase::Succeeded, 114)];
        let s = step(&j, &pods, &prev, 115);
        assert_eq!(types(&s), [("SuccessCriteriaMet", "True"), ("Complete", "True")]);
        assert_eq!(s.completion_time, Some(115));
        assert_eq!(s.events[0].reason, "Completed");
        assert_eq!(s.conditions[1].message, "Reached expected number of succeeded pods");
    }

    #[test]
    fn back_off_limit_then_failed() {
        let mut j = job(Some(1), 1);
        j.backoff_limit = 1;
        let prev = Previous { start_time: Some(100), ..Default::default() };
        // One failure: a replacement only after 10 s.
        let pods = [pod("a", PodPhase::Failed, 110)];
        let s = step(&j, &pods, &prev, 115);
        assert!(s.create.is_empty() && s.wake_at == Some(120), "{s:?}");
        assert_eq!(step(&j, &pods, &prev, 120).create.len(), 1);
        // A second failure exceeds backoffLimit 1: FailureTarget, then Failed, with kube's words.
        let pods = [pod("a", PodPhase::Failed, 110), pod("b", PodPhase::Failed, 130)];
        let s = step(&j, &pods, &prev, 131);
        assert_eq!(types(&s), [("FailureTarget", "True"), ("Failed", "True")]);
        assert_eq!((s.conditions[1].reason.as_str(), s.conditions[1].message.as_str()), BACKOFF_LIMIT_EXCEEDED);
        assert!(s.events[0].warning && s.events[0].reason == "BackoffLimitExceeded");
        assert_eq!(s.counts.failed, 2);
    }

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!([1, 2, 3, 4, 6, 7, 30].map(backoff_delay), [10, 20, 40, 80, 320, 360, 360]);
    }

    #[test]
    fn deadline_deletes_running_pods_before_failing() {
        let mut j = job(Some(1), 1);
        j.active_deadline_seconds = Some(5);
        let prev = Previous { start_time: Some(100), ..Default::default() };
        let pods = [pod("a", PodPhase::Active, 0)];
        assert_eq!(step(&j, &pods, &prev, 104).wake_at, Some(105));
        let s = step(&j, &pods, &prev, 105);
        assert_eq!(s.delete, ["a"]);
        assert_eq!(types(&s), [("FailureTarget", "True")]);
        assert_eq!((s.counts.failed, s.counts.terminating), (1, 1));
        // The pod gone: Failed with the same reason.
        let prev = Previous { conditions: s.conditions.clone(), failed: 1, ..prev };
        let s = step(&j, &[], &prev, 107);
        assert_eq!(s.counts.failed, 1);
        assert_eq!(types(&s), [("FailureTarget", "True"), ("Failed", "True")]);
        assert_eq!(s.conditions[1].reason, "DeadlineExceeded");
        assert_eq!(s.events[0].message, "Job was active longer than specified deadline");
    }

    #[test]
    fn ttl_after_finished() {
        let mut j = job(Some(1), 1);
        j.ttl_seconds_after_finished = Some(5);
        let complete = Condition {
            type_: "Complete".into(),
            status: "True".into(),
            reason: "CompletionsReached".into(),
            message: String::new(),
            last_transition: 200,
        };
        let prev = Previous { completion_time: Some(200), conditions: vec![complete], ..Default::default() };
        assert!(!step(&j, &[], &prev, 204).delete_job);
        assert!(step(&j, &[], &prev, 205).delete_job);
    }

    #[test]
    fn suspend_and_resume() {
        let mut j = job(Some(2), 2);
        j.suspend = true;
        let prev = Previous { start_time: Some(100), ..Default::default() };
        let s = step(&j, &[pod("a", PodPhase::Active, 0)], &prev, 110);
        assert_eq!((s.delete.as_slice(), s.start_time), (["a".to_string()].as_slice(), None));
        assert_eq!(types(&s), [("Suspended", "True")]);
        j.suspend = false;
        let prev = Previous { conditions: s.conditions, ..Default::default() };
        let s = step(&j, &[], &prev, 120);
        assert_eq!(types(&s), [("Suspended", "False")]);
        assert_eq!((s.create.len(), s.start_time, s.events[0].reason.as_str()), (2, Some(120), "Resumed"));
    }

    #[test]
    fn indexed_jobs_create_missing_indexes() {
        let mut j = job(Some(4), 2);
        j.indexed = true;
        let mut done = pod("a", PodPhase::Succeeded, 10);
        done.index = Some(0);
        let mut running = pod("b", PodPhase::Active, 0);
        running.index = Some(1);
        let s = step(&j, &[done, running], &Previous::default(), 20);
        assert_eq!(s.create, [Some(2)]);
        assert_eq!(s.completed_indexes.as_deref(), Some("0"));
        assert_eq!(format_indexes(&[5, 1, 2, 3, 7]), "1-3,5,7");
    }

    #[test]
    fn on_failure_counts_restarts() {
        let mut j = job(Some(1), 1);
        j.on_failure = true;
        j.backoff_limit = 2;
        let mut p = pod("a", PodPhase::Active, 0);
        p.restarts = 1;
        assert!(step(&j, std::slice::from_ref(&p), &Previous::default(), 10).conditions.is_empty());
        p.restarts = 2;
        let s = step(&j, &[p], &Previous::default(), 10);
        assert_eq!(s.delete, ["a"]);
        assert_eq!(s.conditions[0].reason, "BackoffLimitExceeded");
    }

    #[test]
    fn work_queue_completes_when_one_succeeded_and_none_runs() {
        let j = job(None, 2);
        let pods = [pod("a", PodPhase::Succeeded, 10), pod("b", PodPhase::Active, 0)];
        let s = step(&j, &pods, &Previous::default(), 20);
        assert!(s.create.is_empty() && s.conditions.is_empty());
        let pods = [pod("a", PodPhase::Succeeded, 10), pod("b", PodPhase::Succeeded, 15)];
        assert_eq!(types(&step(&j, &pods, &Previous::default(), 20)), [("SuccessCriteriaMet", "True"), ("Complete", "True")]);
    }
}
