//! The job and cronjob controllers (kube-controller-manager's `job-controller`, `cronjob-controller`
//! and `ttl-after-finished-controller`), and the Job strategy's create step.
//!
//! Each pass: every Job's pods are viewed ([`emu_logic::job::PodView`]), [`emu_logic::job::step`]
//! decides what to create, delete and write, and this module does it; every CronJob's schedule
//! is checked against the time ([`emu_logic::cron`]) and its Jobs against its policies.

use crate::controllers::{
    create_admitted_pod, delete_pod, is_terminating, key, key_of, owner_ref, pod_phase, uid, update, Caches, PodCreateError,
};
use crate::decoded::Obj;
use crate::state::Shared;
use crate::store::Write;
use emu_api::defaults::job::generate_selector;
use emu_api::time::now;
use emu_api::typed::{self, CronJob, Job, Pod};
use emu_api::{defaults, object};
use emu_logic::job::{self as planner, PodPhase};
use emu_logic::scheduler::controller_uid;
use serde_json::{json, Value};

const JOB_COMPONENT: &str = "job-controller";
const CRONJOB_COMPONENT: &str = "cronjob-controller";
/// The annotation a CronJob's Job carries: the scheduled time it runs for.
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The Job strategy's `PrepareForCreate`, run by admission before validation: a new Job gets its
/// uid now (kube-apiserver fills it before the strategy runs) and, unless `manualSelector`, the
/// generated selector and pod labels. A Job that exists (an update) is left as it is.
pub fn prepare_for_create(shared: &Shared, job: &mut Job) {
    let (ns, name) = typed::key(&job.metadata);
    if shared.store.get_shared(&key("Job", ns, name)).is_some() {
        return;
    }
    job.metadata.uid = Some(crate::store::new_uid());
    generate_selector(job);
    // Defaults again, as a read of the stored Job applies them: the Job's labels are its
    // template's when it has none.
    defaults::job::job(job);
}

pub fn sync(shared: &Shared, decoded: &mut Caches) {
    let jobs = decoded.jobs.list(&shared.store, "Job", None);
    let pods = decoded.pods.list(&shared.store, "Pod", None);
    let now = now();
    for job in jobs.iter().filter(|j| !is_terminating(&j.metadata)) {
        let mine: Vec<&Obj<Pod>> = pods.iter().filter(|p| controller_uid(&p.metadata) == Some(uid(&job.metadata))).collect();
        sync_job(shared, job, &mine, now);
    }
    let cronjobs = decoded.cronjobs.list(&shared.store, "CronJob", None);
    for cj in cronjobs.iter().filter(|c| !is_terminating(&c.metadata)) {
        let mine: Vec<&Obj<Job>> = jobs.iter().filter(|j| controller_uid(&j.metadata) == Some(uid(&cj.metadata))).collect();
        sync_cronjob(shared, cj, &mine, now);
    }
}

fn time_of(t: Option<&typed::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_second())
}

fn pod_view(p: &Pod) -> planner::PodView {
    let status = p.status.as_ref();
    let containers = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    let phase = match pod_phase(p) {
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Active,
    };
    let created = time_of(p.metadata.creation_timestamp.as_ref()).unwrap_or(0);
    let finished = containers.iter().filter_map(|c| time_of(c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())).max();
    planner::PodView {
        name: typed::key(&p.metadata).1.to_string(),
        phase,
        terminating: is_terminating(&p.metadata),
        ready: emu_logic::endpoints::pod_is_ready(p),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        finished_at: (phase != PodPhase::Active).then_some(finished.unwrap_or(created)),
        created,
        index: p.metadata.annotations.as_ref().and_then(|a| a.get(planner::COMPLETION_INDEX)).and_then(|i| i.parse().ok()),
    }
}

fn previous(job: &Job) -> planner::Previous {
    let Some(status) = job.status.as_ref() else { return Default::default() };
    planner::Previous {
        start_time: time_of(status.start_time.as_ref()),
        completion_time: time_of(status.completion_time.as_ref()),
        succeeded: status.succeeded.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
        conditions: status
            .conditions
            .iter()
            .flatten()
            .map(|c| planner::Condition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
                last_transition: time_of(c.last_transition_time.as_ref()).unwrap_or(0),
            })
            .collect(),
    }
}

fn sync_job(shared: &Shared, job: &Obj<Job>, pods: &[&Obj<Pod>], now: i64) {
    let spec = job.spec.clone().unwrap_or_default();
    let view = planner::JobView {
        completions: spec.completions,
        parallelism: spec.parallelism.unwrap_or(1),
        backoff_limit: spec.backoff_limit.unwrap_or(6),
        indexed: spec.completion_mode.as_deref() == Some("Indexed"),
        suspend: spec.suspend.unwrap_or(false),
        active_deadline_seconds: spec.active_deadline_seconds,
        on_failure: spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure"),
        ttl_seconds_after_finished: spec.ttl_seconds_after_finished,
    };
    let views: Vec<planner::PodView> = pods.iter().map(|p| pod_view(p)).collect();
    let prev = previous(job);
    let step = planner::step(&view, &views, &prev, now);
    if step.delete_job {
        // The TTL-after-finished controller; the garbage collector takes the pods.
        let _ = shared.store.delete(&key_of("Job", &job.metadata));
        return;
    }
    for name in &step.delete {
        if let Some(p) = pods.iter().find(|p| typed::key(&p.metadata).1 == name) {
            delete_pod(shared, p);
            record(shared, &job.json, JOB_COMPONENT, "Normal", "SuccessfulDelete", &format!("Deleted pod: {name}"));
        }
    }
    let mut created = 0;
    for index in &step.create {
        match create_pod(shared, job, *index) {
            Ok(name) => {
                created += 1;
                record(shared, &job.json, JOB_COMPONENT, "Normal", "SuccessfulCreate", &format!("Created pod: {name}"));
            }
            Err(e) => {
                record(shared, &job.json, JOB_COMPONENT, "Warning", "FailedCreate", &format!("Error creating: {e}"));
                break;
            }
        }
    }
    for e in &step.events {
        record(shared, &job.json, JOB_COMPONENT, if e.warning { "Warning" } else { "Normal" }, &e.reason, &e.message);
    }
    // The status as `kubectl get job -o yaml` shows it: counts that are 0 left out but `ready`
    // and `terminating` (pointers in Go), and an empty `uncountedTerminatedPods`.
    let c = step.counts;
    let mut status = json!({ "ready": c.ready, "terminating": c.terminating, "uncountedTerminatedPods": {} });
    for (k, n) in [("active", c.active + created), ("succeeded", c.succeeded), ("failed", c.failed)] {
        if n > 0 {
            status[k] = json!(n);
        }
    }
    if let Some(t) = step.start_time {
        status["startTime"] = json!(object::rfc3339(t));
    }
    if let Some(t) = step.completion_time {
        status["completionTime"] = json!(object::rfc3339(t));
    }
    if let Some(ix) = step.completed_indexes.as_ref().filter(|ix| !ix.is_empty()) {
        status["completedIndexes"] = json!(ix);
    }
    if !step.conditions.is_empty() {
        let old = job.json["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let conditions: Vec<Value> = step
            .conditions
            .iter()
            .map(|c| {
                // An unchanged condition keeps its probe time; a changed one is probed now.
                let same = old.iter().find(|o| o["type"] == c.type_ && o["status"] == c.status && o["reason"] == c.reason.as_str());
                let probe = same.map_or(json!(object::rfc3339(now)), |o| o["lastProbeTime"].clone());
                json!({"type": c.type_, "status": c.status, "lastProbeTime": probe,
                    "lastTransitionTime": object::rfc3339(c.last_transition), "reason": c.reason, "message": c.message})
            })
            .collect();
        status["conditions"] = json!(conditions);
    }
    if job.json["status"] != status {
        let mut j = (*job.json).clone();
        j["status"] = status;
        update(shared, j);
    }
}

/// Creates one pod of the Job (`CreatePodsWithGenerateName`): the template with its labels and
/// the Job as controller; an Indexed Job's pod named `<job>-<index>-<suffix>` with its index as
/// annotation, label and `JOB_COMPLETION_INDEX`. Answers the pod's name, or why it could not.
fn create_pod(shared: &Shared, job: &Obj<Job>, index: Option<i32>) -> Result<String, String> {
    let (ns, name) = typed::key(&job.metadata);
    let template = &job.json["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    let mut spec = template["spec"].clone();
    let base = match index {
        Some(i) => {
            annotations[planner::COMPLETION_INDEX] = json!(i.to_string());
            labels[planner::COMPLETION_INDEX] = json!(i.to_string());
            for c in spec["containers"].as_array_mut().into_iter().flatten() {
                let old = c["env"].as_array().cloned().unwrap_or_default();
                let mut list: Vec<Value> = old.into_iter().filter(|e| e["name"] != "JOB_COMPLETION_INDEX").collect();
                list.push(json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                    "fieldPath": format!("metadata.annotations['{}']", planner::COMPLETION_INDEX)}}}));
                c["env"] = json!(list);
            }
            // The pod's hostname is `<job>-<index>` (with a subdomain, its DNS name).
            spec["hostname"] = json!(format!("{name}-{i}"));
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "generateName": base, "namespace": ns, "labels": labels,
            "ownerReferences": owner_ref(&job.metadata, "batch/v1", "Job") },
        "spec": spec,
        "status": { "phase": "Pending", "qosClass": "BestEffort" },
    });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        pod["metadata"]["annotations"] = annotations;
    }
    create_admitted_pod(shared, pod, &base).map_err(|e| match e {
        PodCreateError::Refused(e) | PodCreateError::Store(e) => e,
    })
}

/// An Event of a Job or CronJob, as the controllers' recorders write it.
fn record(shared: &Shared, obj: &Value, component: &str, type_: &str, reason: &str, message: &str) {
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let event =
        emu_logic::events::new_event(obj, type_, reason, message, component, "", &object::rfc3339(at.as_secs() as i64), at.as_nanos());
    if let Err(e) = shared.store.create(event) {
        tracing::debug!(error = %e, "recording {reason}");
    }
}

/// A Job's finished condition (`Complete` or `Failed`), if it has one.
fn finished(job: &Job) -> Option<&str> {
    let conditions = job.status.as_ref()?.conditions.as_deref()?;
    conditions.iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True").map(|c| c.type_.as_str())
}

fn sync_cronjob(shared: &Shared, cj: &Obj<CronJob>, jobs: &[&Obj<Job>], now: i64) {
    let ns = typed::key(&cj.metadata).0;
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.json["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let time_at = |k: &str| status[k].as_str().and_then(emu_api::time::parse_rfc3339);
    let schedule = emu_api::cron::parse(&spec.schedule).ok();
    let offset = emu_api::cron::time_zone_offset(spec.time_zone.as_deref()).ok();
    let view = emu_logic::cron::CronJobView {
        name: typed::key(&cj.metadata).1,
        schedule: schedule.as_ref().zip(offset),
        suspend: spec.suspend.unwrap_or(false),
        concurrency_policy: spec.concurrency_policy.as_deref().unwrap_or("Allow"),
        starting_deadline_seconds: spec.starting_deadline_seconds,
        successful_jobs_history_limit: spec.successful_jobs_history_limit.unwrap_or(3),
        failed_jobs_history_limit: spec.failed_jobs_history_limit.unwrap_or(1),
        created: time_of(cj.metadata.creation_timestamp.as_ref()).unwrap_or(now),
        last_schedule_time: time_at("lastScheduleTime"),
        last_successful_time: time_at("lastSuccessfulTime"),
        active: status["active"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str().map(str::to_string)).collect(),
    };
    let views: Vec<emu_logic::cron::JobView> = jobs
        .iter()
        .map(|j| {
            let s = j.status.as_ref();
            emu_logic::cron::JobView {
                name: typed::key(&j.metadata).1.to_string(),
                started: time_of(s.and_then(|s| s.start_time.as_ref())).or(time_of(j.metadata.creation_timestamp.as_ref())).unwrap_or(0),
                outcome: match finished(j) {
                    Some("Complete") => Some(emu_logic::cron::Outcome::Complete(time_of(s.and_then(|s| s.completion_time.as_ref())))),
                    Some(_) => Some(emu_logic::cron::Outcome::Failed),
                    None => None,
                },
                terminating: is_terminating(&j.metadata),
            }
        })
        .collect();
    let step = emu_logic::cron::step(&view, &views, now);
    for (name, condition) in &step.saw_completed {
        record(
            shared,
            &cj.json,
            CRONJOB_COMPONENT,
            "Normal",
            "SawCompletedJob",
            &format!("Saw completed job: {name}, condition: {condition}"),
        );
    }
    for name in &step.delete {
        if shared.store.delete(&key("Job", ns, name)).is_ok() {
            record(shared, &cj.json, CRONJOB_COMPONENT, "Normal", "SuccessfulDelete", &format!("Deleted job {name}"));
        }
    }
    if step.too_many_missed {
        let msg = "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew";
        record(shared, &cj.json, CRONJOB_COMPONENT, "Warning", "TooManyMissedTimes", msg);
    }
    let mut last_schedule = step.last_schedule_time;
    if let Some((name, scheduled)) = &step.create {
        match create_job(shared, cj, name, *scheduled, offset.unwrap_or(0)) {
            Ok(()) => record(shared, &cj.json, CRONJOB_COMPONENT, "Normal", "SuccessfulCreate", &format!("Created job {name}")),
            Err(e) => {
                last_schedule = view.last_schedule_time;
                record(shared, &cj.json, CRONJOB_COMPONENT, "Warning", "FailedCreate", &format!("Error creating job: {e}"));
            }
        }
    }
    // `status.active`: references to the running Jobs.
    let refs: Vec<Value> = step
        .active
        .iter()
        .filter_map(|name| jobs.iter().find(|j| typed::key(&j.metadata).1 == name))
        .map(|j| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "name": typed::key(&j.metadata).1, "namespace": ns,
                "resourceVersion": j.metadata.resource_version, "uid": uid(&j.metadata)})
        })
        .collect();
    let m = status.as_object_mut().expect("status is an object");
    let mut set = |k: &str, v: Option<Value>| match v {
        Some(v) => m.insert(k.into(), v),
        None => m.remove(k),
    };
    set("active", (!refs.is_empty()).then(|| json!(refs)));
    set("lastScheduleTime", last_schedule.map(|t| json!(object::rfc3339(t))));
    set("lastSuccessfulTime", step.last_successful_time.map(|t| json!(object::rfc3339(t))));
    if cj.json["status"] != status && !(status == json!({}) && cj.json.get("status").is_none()) {
        let mut c = (*cj.json).clone();
        c["status"] = status;
        update(shared, c);
    }
}

/// The Job a CronJob starts for `scheduled` (`getJobFromTemplate2`): the template's labels and
/// annotations, the scheduled time as annotation (in the CronJob's zone), the CronJob as
/// controller; admitted as the API server admits a Job (defaults, generated selector).
fn create_job(shared: &Shared, cj: &Obj<CronJob>, name: &str, scheduled: i64, offset: i64) -> Result<(), String> {
    let ns = typed::key(&cj.metadata).0;
    let template = &cj.json["spec"]["jobTemplate"];
    let mut meta = json!({"name": name, "namespace": ns, "ownerReferences": owner_ref(&cj.metadata, "batch/v1", "CronJob")});
    if let Some(l) = template["metadata"].get("labels") {
        meta["labels"] = l.clone();
    }
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations[SCHEDULED_TIMESTAMP] = json!(rfc3339_in(scheduled, offset));
    meta["annotations"] = annotations;
    let v = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]});
    let mut job: Job = typed::decode(&v).map_err(|e| e.to_string())?;
    defaults::job::job(&mut job);
    job.metadata.uid = Some(crate::store::new_uid());
    generate_selector(&mut job);
    defaults::job::job(&mut job);
    shared.store.write_all(vec![Write::CreateWithUid(typed::encode(&job))]).map(|_| ()).map_err(|e| e.to_string())
}

/// RFC 3339 in a zone `offset` seconds east of UTC (`Z` for UTC), as Go formats a time.Time.
fn rfc3339_in(t: i64, offset: i64) -> String {
    if offset == 0 {
        return object::rfc3339(t);
    }
    let local = object::rfc3339(t + offset);
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'), o / 3600, o % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_timestamps_carry_the_zone() {
        assert_eq!(rfc3339_in(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_in(0, -5 * 3600), "1969-12-31T19:00:00-05:00");
    }
}
