//! The Deployment controller's decisions, as kube-controller-manager makes them
//! (pkg/controller/deployment: `rolling.go`, `recreate.go`, `sync.go`, `progress.go` and
//! `util/deployment_util.go`), as pure functions of the Deployment, its ReplicaSets and their
//! pods' counts. The controller gathers the counts, calls [`plan`] and [`status`], and writes
//! what they return.

use emu_api::typed::IntOrString;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// How a Deployment replaces its pods (`spec.strategy`), resolved against `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    /// `maxSurge` and `maxUnavailable` as pod counts (kube's `ResolveFenceposts`).
    RollingUpdate {
        max_surge: i32,
        max_unavailable: i32,
    },
}

/// An int-or-percent scaled against `total` (`intstr.GetScaledValueFromIntOrPercent`).
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}: must be an integer or percentage"))?;
            let prod = pct * i64::from(total);
            Ok(if round_up { (prod + 99).div_euclid(100) } else { prod.div_euclid(100) } as i32)
        }
    }
}

/// kube's `ResolveFenceposts`: surge rounded up, unavailable rounded down, and 1 unavailable
/// when both come to 0 (validation refuses both 0 explicitly; rounding may still give it).
pub fn resolve_fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, desired: i32) -> (i32, i32) {
    let pct25 = IntOrString::String("25%".into());
    let surge = scaled(surge.unwrap_or(&pct25), desired, true).unwrap_or(0);
    let unavailable = scaled(unavailable.unwrap_or(&pct25), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

impl Strategy {
    pub fn resolve(type_: Option<&str>, surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, desired: i32) -> Self {
        if type_ == Some("Recreate") {
            return Strategy::Recreate;
        }
        let (max_surge, max_unavailable) = resolve_fenceposts(surge, unavailable, desired);
        Strategy::RollingUpdate { max_surge, max_unavailable }
    }

    /// `deploymentutil.MaxUnavailable`: what the Available condition allows.
    pub fn max_unavailable(&self, desired: i32) -> i32 {
        match self {
            Strategy::RollingUpdate { max_unavailable, .. } if desired > 0 => (*max_unavailable).min(desired),
            _ => 0,
        }
    }
}

/// One ReplicaSet of the Deployment as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaSetView {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Its pods that are not terminating nor finished (`status.replicas`).
    pub pods: i32,
    pub ready: i32,
    /// Ready for at least `minReadySeconds`.
    pub available: i32,
    /// Its pods that still run, terminating ones included (what Recreate waits for).
    pub running: i32,
    pub revision: i64,
    /// Creation time (Unix seconds), then name: the order kube scales old ReplicaSets down in.
    pub created: i64,
    /// Its `deployment.kubernetes.io/desired-replicas` and `max-replicas` annotations: the
    /// Deployment's size (and that plus maxSurge) when the controller last scaled it.
    pub desired_annotation: Option<i32>,
    pub max_annotation: Option<i32>,
}

/// What one sync changes: new `spec.replicas` by ReplicaSet name, and ReplicaSets to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub scale: Vec<(String, i32)>,
    pub delete: Vec<String>,
}

/// A pod counts as available when it has been Ready for `min_ready_seconds`
/// (`podutil.IsPodAvailable`); `ready_since` is its Ready condition's lastTransitionTime.
pub fn pod_available(ready: bool, ready_since: Option<i64>, min_ready_seconds: i32, now: i64) -> bool {
    ready && (min_ready_seconds <= 0 || ready_since.is_some_and(|t| t + i64::from(min_ready_seconds) <= now))
}

/// `isScalingEvent`: an active ReplicaSet was last scaled for another Deployment size.
pub fn is_scaling_event(desired: i32, all: &[ReplicaSetView]) -> bool {
    all.iter().any(|rs| rs.replicas > 0 && rs.desired_annotation.is_some_and(|d| d != desired))
}

/// `DeploymentController.scale`: a Deployment resized (or paused) keeps its ReplicaSets'
/// proportions. Every ReplicaSet it returns is scaled (its annotations updated), changed or not.
/// `new` is None when the new template has no ReplicaSet yet (a paused Deployment).
pub fn scale(desired: i32, strategy: Strategy, all: &[ReplicaSetView], new: Option<usize>) -> Plan {
    let mut plan = Plan::default();
    let active: Vec<usize> = (0..all.len()).filter(|&i| all[i].replicas > 0).collect();
    // FindActiveOrLatest: the one active ReplicaSet, or the new (else the newest) when none is.
    let lone = match active.as_slice() {
        [i] => Some(*i),
        [] => new.or_else(|| (0..all.len()).max_by_key(|&i| (all[i].created, &all[i].name))),
        _ => None,
    };
    if let Some(i) = lone {
        if all[i].replicas != desired {
            plan.scale.push((all[i].name.clone(), desired));
        }
        return plan;
    }
    // IsSaturated: the new ReplicaSet holds every pod, all available; the old go to 0.
    if let Some(n) = new.map(|n| &all[n]) {
        if n.replicas == desired && n.desired_annotation == Some(desired) && n.available == desired {
            plan.scale.extend(active.iter().filter(|&&i| Some(i) != new).map(|&i| (all[i].name.clone(), 0)));
            return plan;
        }
    }
    let Strategy::RollingUpdate { max_surge, .. } = strategy else { return plan };
    let total: i32 = active.iter().map(|&i| all[i].replicas).sum();
    let allowed = if desired > 0 { desired + max_surge } else { 0 };
    let to_add = allowed - total;
    let mut order = active.clone();
    // ReplicaSetsBySizeNewer when growing, BySizeOlder when shrinking: largest first.
    order.sort_by(|&a, &b| {
        let (a, b) = (&all[a], &all[b]);
        let by_age =
            if to_add > 0 { (b.created, &b.name).cmp(&(a.created, &a.name)) } else { (a.created, &a.name).cmp(&(b.created, &b.name)) };
        b.replicas.cmp(&a.replicas).then(by_age)
    });
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::new();
    for &i in &order {
        let rs = &all[i];
        let proportion = if to_add == 0 || to_add == added {
            0
        } else {
            // getReplicaSetFraction, rounded half away from zero as Go's math.Round.
            let fraction = if desired == 0 {
                -rs.replicas
            } else {
                let annotated = rs.max_annotation.filter(|&m| m > 0).unwrap_or(total.max(1));
                (f64::from(rs.replicas * allowed) / f64::from(annotated)).round() as i32 - rs.replicas
            };
            let left = to_add - added;
            if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            }
        };
        added += proportion;
        sizes.push(rs.replicas + proportion);
    }
    if let Some(first) = sizes.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    plan.scale = order.iter().zip(sizes).map(|(&i, size)| (all[i].name.clone(), size)).collect();
    plan
}

/// One sync of a Deployment whose new ReplicaSet is `new` (an index into `all`): the scaling the
/// strategy does now. A paused or resized Deployment only keeps its proportions ([`scale`]).
pub fn plan(desired: i32, strategy: Strategy, paused: bool, all: &[ReplicaSetView], new: usize) -> Plan {
    if paused || is_scaling_event(desired, all) {
        return scale(desired, strategy, all, Some(new));
    }
    let mut plan = Plan::default();
    let newrs = &all[new];
    let mut old: Vec<&ReplicaSetView> = all.iter().enumerate().filter(|(i, _)| *i != new).map(|(_, rs)| rs).collect();
    old.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    match strategy {
        Strategy::Recreate => {
            // recreate.go: old ReplicaSets to 0, wait until none of their pods runs, then the new one.
            let mut scaled_down = false;
            for rs in old.iter().filter(|rs| rs.replicas != 0) {
                plan.scale.push((rs.name.clone(), 0));
                scaled_down = true;
            }
            if scaled_down || old.iter().any(|rs| rs.running > 0) {
                return plan;
            }
            if newrs.replicas != desired {
                plan.scale.push((newrs.name.clone(), desired));
            }
        }
        Strategy::RollingUpdate { max_surge, max_unavailable } => {
            // reconcileNewReplicaSet.
            let total_spec: i32 = all.iter().map(|rs| rs.replicas).sum();
            let mut new_replicas = newrs.replicas;
            if newrs.replicas > desired {
                new_replicas = desired;
            } else if newrs.replicas < desired {
                let max_total = desired + max_surge;
                if total_spec < max_total {
                    new_replicas = newrs.replicas + (max_total - total_spec).min(desired - newrs.replicas);
                }
            }
            if new_replicas != newrs.replicas {
                plan.scale.push((newrs.name.clone(), new_replicas));
                // The old ReplicaSets wait for the next sync, as in kube (it returns after scaling).
                return plan;
            }
            // reconcileOldReplicaSets.
            let old_pods: i32 = old.iter().map(|rs| rs.replicas).sum();
            if old_pods == 0 {
                return plan;
            }
            let min_available = desired - max_unavailable;
            let new_unavailable = newrs.replicas - newrs.available;
            let max_scaled_down = total_spec - min_available - new_unavailable;
            if max_scaled_down <= 0 {
                return plan;
            }
            let mut replicas: Vec<i32> = old.iter().map(|rs| rs.replicas).collect();
            // cleanupUnhealthyReplicas: unavailable old pods go first.
            let mut cleaned = 0;
            for (i, rs) in old.iter().enumerate() {
                if cleaned >= max_scaled_down {
                    break;
                }
                let unhealthy = replicas[i] - rs.available;
                if replicas[i] == 0 || unhealthy <= 0 {
                    continue;
                }
                let down = unhealthy.min(max_scaled_down - cleaned);
                replicas[i] -= down;
                cleaned += down;
            }
            // scaleDownOldReplicaSetsForRollingUpdate: then available ones, down to minAvailable.
            let available: i32 = newrs.available + old.iter().enumerate().map(|(i, rs)| rs.available.min(replicas[i])).sum::<i32>();
            if available > min_available {
                let mut remaining = available - min_available;
                for r in replicas.iter_mut() {
                    if remaining <= 0 {
                        break;
                    }
                    let down = (*r).min(remaining);
                    *r -= down;
                    remaining -= down;
                }
            }
            for (rs, r) in old.iter().zip(replicas) {
                if r != rs.replicas {
                    plan.scale.push((rs.name.clone(), r));
                }
            }
        }
    }
    plan
}

/// `cleanupDeployment`: old ReplicaSets with no replicas and no pods beyond
/// `revisionHistoryLimit`, oldest revision first.
pub fn history_to_delete(all: &[ReplicaSetView], new: usize, limit: i32) -> Vec<String> {
    let mut cleanable: Vec<&ReplicaSetView> = all
        .iter()
        .enumerate()
        .filter(|(i, rs)| *i != new && rs.replicas == 0 && rs.pods == 0 && rs.running == 0)
        .map(|(_, rs)| rs)
        .collect();
    let excess = cleanable.len() as i64 - i64::from(limit.max(0));
    if excess <= 0 {
        return Vec::new();
    }
    cleanable.sort_by(|a, b| (a.revision, a.created, &a.name).cmp(&(b.revision, b.created, &b.name)));
    cleanable.iter().take(excess as usize).map(|rs| rs.name.clone()).collect()
}

/// The revision a Deployment's new ReplicaSet takes: one past the highest of the old ones
/// (`deploymentutil.MaxRevision` + 1), unless it already is the highest.
pub fn next_revision(all: &[ReplicaSetView], new: Option<usize>) -> i64 {
    let max_old = all.iter().enumerate().filter(|(i, _)| Some(*i) != new).map(|(_, rs)| rs.revision).max().unwrap_or(0);
    match new.map(|i| all[i].revision) {
        Some(r) if r > max_old => r,
        _ => max_old + 1,
    }
}

/// A Deployment's status counts (`calculateStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
}

pub fn counts(all: &[ReplicaSetView], new: Option<usize>) -> Counts {
    let spec: i32 = all.iter().map(|rs| rs.replicas).sum();
    let available = all.iter().map(|rs| rs.available).sum();
    Counts {
        replicas: all.iter().map(|rs| rs.pods).sum(),
        updated: new.map_or(0, |i| all[i].pods),
        ready: all.iter().map(|rs| rs.ready).sum(),
        available,
        unavailable: (spec - available).max(0),
    }
}

/// A Deployment condition as the controller decides it (timestamps are the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// The Deployment's previous Progressing condition, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub status: String,
    pub reason: String,
    pub last_update: i64,
}

/// What decides the conditions of one sync.
pub struct Inputs<'a> {
    pub name: &'a str,
    pub desired: i32,
    pub strategy: Strategy,
    pub paused: bool,
    pub progress_deadline_seconds: Option<i32>,
    pub new_rs: &'a str,
    /// This sync created the new ReplicaSet.
    pub created_new: bool,
    pub old: Counts,
    pub new: Counts,
    pub progressing: Option<Previous>,
    pub now: i64,
}

/// What the Progressing condition becomes, and whether its lastUpdateTime must be refreshed even
/// if its reason stays (kube does that for ReplicaSetUpdated on any progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub condition: Condition,
    pub touch: bool,
}

pub fn available_condition(i: &Inputs) -> Condition {
    if i.new.available >= i.desired - i.strategy.max_unavailable(i.desired) {
        Condition {
            type_: "Available",
            status: "True",
            reason: "MinimumReplicasAvailable",
            message: "Deployment has minimum availability.".into(),
        }
    } else {
        Condition {
            type_: "Available",
            status: "False",
            reason: "MinimumReplicasUnavailable",
            message: "Deployment does not have minimum availability.".into(),
        }
    }
}

/// `DeploymentComplete` (the status written is always of the current generation).
pub fn complete(desired: i32, c: &Counts) -> bool {
    c.updated == desired && c.replicas == desired && c.available == desired
}

/// The Progressing condition after this sync (None: leave it as it is), from `getNewReplicaSet`,
/// `checkPausedConditions` and `syncRolloutStatus`.
pub fn progressing_condition(i: &Inputs) -> Option<Progress> {
    let cond = |status, reason, message: String| Condition { type_: "Progressing", status, reason, message };
    let prev = i.progressing.as_ref();
    let prev_reason = prev.map(|p| p.reason.as_str());
    i.progress_deadline_seconds?;
    if i.paused {
        return (prev_reason != Some("DeploymentPaused"))
            .then(|| Progress { condition: cond("Unknown", "DeploymentPaused", "Deployment is paused".into()), touch: false });
    }
    if prev_reason == Some("DeploymentPaused") {
        return Some(Progress { condition: cond("Unknown", "DeploymentResumed", "Deployment is resumed".into()), touch: false });
    }
    let mut base = None;
    if i.created_new {
        base = Some(Progress {
            condition: cond("True", "NewReplicaSetCreated", format!("Created new replica set {:?}", i.new_rs)),
            touch: false,
        });
    } else if prev.is_none() {
        base =
            Some(Progress { condition: cond("True", "FoundNewReplicaSet", format!("Found new replica set {:?}", i.new_rs)), touch: false });
    }
    let prev_reason = base.as_ref().map(|b| b.condition.reason).or(prev_reason);
    let is_complete = i.new.replicas == i.new.updated && prev_reason == Some("NewReplicaSetAvailable");
    if is_complete {
        return base;
    }
    if complete(i.desired, &i.new) {
        return Some(Progress {
            condition: cond("True", "NewReplicaSetAvailable", format!("ReplicaSet {:?} has successfully progressed.", i.new_rs)),
            touch: false,
        });
    }
    let (o, n) = (&i.old, &i.new);
    let progressed =
        n.updated > o.updated || n.replicas - n.updated < o.replicas - o.updated || n.ready > o.ready || n.available > o.available;
    if progressed {
        return Some(Progress {
            condition: cond("True", "ReplicaSetUpdated", format!("ReplicaSet {:?} is progressing.", i.new_rs)),
            touch: true,
        });
    }
    if base.is_some() {
        return base;
    }
    let timed_out = match (prev, i.progress_deadline_seconds) {
        (Some(p), Some(deadline)) => match p.reason.as_str() {
            "NewReplicaSetAvailable" => false,
            "ProgressDeadlineExceeded" => true,
            _ => p.last_update + i64::from(deadline) < i.now,
        },
        _ => false,
    };
    timed_out.then(|| Progress {
        condition: cond("False", "ProgressDeadlineExceeded", format!("ReplicaSet {:?} has timed out progressing.", i.new_rs)),
        touch: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, replicas: i32, available: i32, created: i64) -> ReplicaSetView {
        ReplicaSetView {
            name: name.into(),
            replicas,
            pods: replicas,
            ready: available,
            available,
            running: replicas,
            revision: created,
            created,
            desired_annotation: Some(4),
            max_annotation: Some(5),
        }
    }
    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_as_kube_does() {
        // 25 % of 4 is 1 either way; of 10: surge up to 3, unavailable down to 2.
        assert_eq!(resolve_fenceposts(None, None, 4), (1, 1));
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        // 25 % of 1: surge 1, unavailable 0.
        assert_eq!(resolve_fenceposts(None, None, 1), (1, 0));
        // Both resolving to 0 (1 % of 3) leaves one unavailable.
        assert_eq!(resolve_fenceposts(Some(&pct("1%")), Some(&pct("1%")), 3), (1, 0));
        assert_eq!(resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&pct("10%")), 3), (0, 1));
        assert_eq!(Strategy::resolve(Some("Recreate"), None, None, 4), Strategy::Recreate);
        assert_eq!(Strategy::RollingUpdate { max_surge: 0, max_unavailable: 9 }.max_unavailable(4), 4);
    }

    #[test]
    fn rolling_update_of_four_surges_one_and_keeps_three_available() {
        let s = Strategy::resolve(None, None, None, 4);
        // Step 1: the new ReplicaSet (0) goes to 1 (4 + 1 surge).
        let all = [rs("old", 4, 4, 1), rs("new", 0, 0, 2)];
        assert_eq!(plan(4, s, false, &all, 1).scale, vec![("new".to_string(), 1)]);
        // Step 2: with the new pod not available, one old pod may go (4 - 1 unavailable = 3).
        let all = [rs("old", 4, 4, 1), rs("new", 1, 0, 2)];
        assert_eq!(plan(4, s, false, &all, 1).scale, vec![("old".to_string(), 3)]);
        // Step 3: 3 + 1 = 4 < 5: the new one grows to 2.
        let all = [rs("old", 3, 3, 1), rs("new", 1, 0, 2)];
        assert_eq!(plan(4, s, false, &all, 1).scale, vec![("new".to_string(), 2)]);
        // Nothing available on the new side: the old stays at 3.
        let all = [rs("old", 3, 3, 1), rs("new", 2, 0, 2)];
        assert_eq!(plan(4, s, false, &all, 1), Plan::default());
        // Both new available: old down to 1 (5 available - 3).
        let all = [rs("old", 3, 3, 1), rs("new", 2, 2, 2)];
        assert_eq!(plan(4, s, false, &all, 1).scale, vec![("old".to_string(), 1)]);
        // Done: nothing to do.
        let all = [rs("old", 0, 0, 1), rs("new", 4, 4, 2)];
        assert_eq!(plan(4, s, false, &all, 1), Plan::default());
    }

    #[test]
    fn no_surge_never_exceeds_the_replicas() {
        let s = Strategy::resolve(None, Some(&IntOrString::Int(0)), Some(&IntOrString::Int(1)), 4);
        let mut all = vec![rs("old", 4, 4, 1), rs("new", 0, 0, 2)];
        for _ in 0..20 {
            let p = plan(4, s, false, &all, 1);
            for (name, r) in p.scale {
                let i = all.iter().position(|x| x.name == name).unwrap();
                all[i].replicas = r;
                all[i].pods = r;
                // Pods become available at once here; the spec total is what is bounded.
                all[i].available = r;
            }
            assert!(all.iter().map(|x| x.replicas).sum::<i32>() <= 4);
        }
        assert_eq!((all[0].replicas, all[1].replicas), (0, 4));
    }

    #[test]
    fn unhealthy_old_pods_go_first_and_recreate_waits() {
        let s = Strategy::resolve(None, None, None, 4);
        // Old ReplicaSets with unavailable pods are cleaned up before scaling available ones.
        let all = [rs("a", 2, 0, 1), rs("b", 2, 2, 2), rs("new", 1, 1, 3)];
        assert_eq!(plan(4, s, false, &all, 2).scale, vec![("a".to_string(), 0)]);
        let all = [rs("old", 4, 4, 1), rs("new", 0, 0, 2)];
        assert_eq!(plan(4, Strategy::Recreate, false, &all, 1).scale, vec![("old".to_string(), 0)]);
        let mut terminating = rs("old", 0, 0, 1);
        terminating.running = 2;
        assert_eq!(plan(4, Strategy::Recreate, false, &[terminating.clone(), rs("new", 0, 0, 2)], 1), Plan::default());
        terminating.running = 0;
        assert_eq!(plan(4, Strategy::Recreate, false, &[terminating, rs("new", 0, 0, 2)], 1).scale, vec![("new".to_string(), 4)]);
        // Paused: no rollout, a lone ReplicaSet still scales.
        let all = [rs("old", 4, 4, 1), rs("new", 0, 0, 2)];
        assert_eq!(plan(4, s, true, &all, 1), Plan::default());
        assert_eq!(plan(6, s, true, &[rs("old", 0, 0, 1), rs("new", 4, 4, 2)], 1).scale, vec![("new".to_string(), 6)]);
    }

    #[test]
    fn a_deployment_resized_mid_rollout_keeps_proportions() {
        // 3 old + 2 new of 4 (max-replicas 5) resized to 8 (+2 surge): 10 allowed, 5 to add,
        // each by its fraction (old 3*10/5 = 6, new 2*10/5 = 4), the larger first.
        let s8 = Strategy::resolve(None, None, None, 8);
        let all = [rs("old", 3, 3, 1), rs("new", 2, 0, 2)];
        assert!(is_scaling_event(8, &all));
        let p = plan(8, s8, false, &all, 1);
        assert_eq!(p.scale, vec![("old".to_string(), 6), ("new".to_string(), 4)]);
        // Shrunk to 2 (+1 surge): 5 - 3 = 2 to remove, older larger first.
        let s2 = Strategy::resolve(None, None, None, 2);
        let p = plan(2, s2, false, &all, 1);
        assert_eq!(p.scale.iter().map(|(_, r)| r).sum::<i32>(), 3);
        // A lone ReplicaSet just takes the size; a saturated new one drains the old.
        assert_eq!(scale(6, s8, &[rs("old", 0, 0, 1), rs("new", 4, 4, 2)], Some(1)).scale, vec![("new".to_string(), 6)]);
        let saturated = [rs("old", 1, 1, 1), rs("new", 4, 4, 2)];
        assert_eq!(scale(4, s8, &saturated, Some(1)).scale, vec![("old".to_string(), 0)]);
        // Not a scaling event when the annotations match.
        assert!(!is_scaling_event(4, &saturated));
    }

    #[test]
    fn history_and_revisions() {
        let all: Vec<ReplicaSetView> = (1..=5).map(|i| rs(&format!("r{i}"), 0, 0, i)).chain([rs("new", 2, 2, 9)]).collect();
        assert_eq!(history_to_delete(&all, 5, 2), vec!["r1", "r2", "r3"]);
        assert!(history_to_delete(&all, 5, 10).is_empty());
        assert_eq!(next_revision(&all, Some(5)), 9);
        assert_eq!(next_revision(&all, None), 10);
        // An old template coming back (undo) takes the next revision.
        assert_eq!(next_revision(&all, Some(0)), 10);
    }

    fn inputs<'a>(old: Counts, new: Counts, prev: Option<(&str, &str, i64)>) -> Inputs<'a> {
        Inputs {
            name: "web",
            desired: 4,
            strategy: Strategy::resolve(None, None, None, 4),
            paused: false,
            progress_deadline_seconds: Some(600),
            new_rs: "web-abc",
            created_new: false,
            old,
            new,
            progressing: prev.map(|(s, r, t)| Previous { status: s.into(), reason: r.into(), last_update: t }),
            now: 1000,
        }
    }

    #[test]
    fn conditions_follow_the_rollout() {
        let c = |replicas, updated, ready, available| Counts { replicas, updated, ready, available, unavailable: 0 };
        let mut i = inputs(c(4, 0, 4, 4), c(5, 1, 4, 4), None);
        i.created_new = true;
        let p = progressing_condition(&i).unwrap();
        // Progress (one more updated) wins over the creation message, as in kube's order.
        assert_eq!((p.condition.reason, p.condition.message.as_str()), ("ReplicaSetUpdated", "ReplicaSet \"web-abc\" is progressing."));
        let i = inputs(c(5, 1, 4, 4), c(5, 1, 4, 4), Some(("True", "NewReplicaSetCreated", 900)));
        assert_eq!(progressing_condition(&i), None);
        let i = inputs(c(5, 1, 4, 4), c(5, 1, 4, 4), Some(("True", "ReplicaSetUpdated", 300)));
        let p = progressing_condition(&i).unwrap().condition;
        assert_eq!(
            (p.status, p.reason, p.message.as_str()),
            ("False", "ProgressDeadlineExceeded", "ReplicaSet \"web-abc\" has timed out progressing.")
        );
        let i = inputs(c(5, 3, 4, 4), c(4, 4, 4, 4), Some(("True", "ReplicaSetUpdated", 900)));
        let p = progressing_condition(&i).unwrap().condition;
        assert_eq!((p.reason, p.message.as_str()), ("NewReplicaSetAvailable", "ReplicaSet \"web-abc\" has successfully progressed."));
        let i = inputs(c(4, 4, 4, 4), c(4, 4, 4, 4), Some(("True", "NewReplicaSetAvailable", 900)));
        assert_eq!(progressing_condition(&i), None);
        assert_eq!(available_condition(&i).message, "Deployment has minimum availability.");
        let i = inputs(c(4, 4, 4, 4), c(4, 4, 2, 2), None);
        assert_eq!(available_condition(&i).reason, "MinimumReplicasUnavailable");
        let mut i = inputs(c(4, 4, 4, 4), c(4, 4, 4, 4), Some(("True", "NewReplicaSetAvailable", 900)));
        i.paused = true;
        assert_eq!(progressing_condition(&i).unwrap().condition.message, "Deployment is paused");
        i.paused = false;
        i.progressing.as_mut().unwrap().reason = "DeploymentPaused".into();
        assert_eq!(progressing_condition(&i).unwrap().condition.reason, "DeploymentResumed");
        assert!(pod_available(true, Some(990), 10, 1000) && !pod_available(true, Some(995), 10, 1000) && pod_available(true, None, 0, 1));
    }
}
