//! Job and CronJob defaults (`SetDefaults_Job`, `SetDefaults_CronJob`, pkg/apis/batch/v1/defaults.go)
//! and the Job strategy's generated selector (`generateSelector`, pkg/registry/batch/job/strategy.go).

use crate::typed::{CronJob, Job, LabelSelector};

/// The labels a Job's pods carry and its generated selector matches (the legacy unprefixed ones
/// too, as Kubernetes still writes both).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";

pub fn job(job: &mut Job) {
    let spec = job.spec.get_or_insert_default();
    // A non-parallel Job may leave both unset: both become 1.
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    let limit = if spec.backoff_limit_per_index.is_some() { i32::MAX } else { 6 };
    spec.backoff_limit.get_or_insert(limit);
    // The Job's labels default to its template's (which is why a stored Job carries the
    // generated pod labels: defaults run again when it is read back).
    if let Some(labels) = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()) {
        if job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            job.metadata.labels = Some(labels);
        }
    }
    spec.completion_mode.get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    let replacement = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
    spec.pod_replacement_policy.get_or_insert_with(|| replacement.into());
    spec.manual_selector.get_or_insert(false);
    super::pod_spec(spec.template.spec.get_or_insert_default());
}

/// The Job strategy's `PrepareForCreate` step (`generateSelectorIfNeeded`): unless
/// `manualSelector`, the template gets the job-name and controller-uid labels (those the user
/// set are kept, for validation to refuse) and the selector matches the controller-uid. Needs the
/// uid, which the API server assigns before this step.
pub fn generate_selector(job: &mut Job) {
    let Some(uid) = job.metadata.uid.clone() else { return };
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_default();
    if spec.manual_selector == Some(true) {
        return;
    }
    let labels = spec.template.metadata.get_or_insert_default().labels.get_or_insert_default();
    for key in [LEGACY_JOB_NAME, JOB_NAME] {
        labels.entry(key.into()).or_insert_with(|| name.clone());
    }
    for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
        labels.entry(key.into()).or_insert_with(|| uid.clone());
    }
    let selector = spec.selector.get_or_insert_with(LabelSelector::default);
    selector.match_labels.get_or_insert_default().entry(CONTROLLER_UID.into()).or_insert(uid);
}

pub fn cron_job(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_default();
    spec.concurrency_policy.get_or_insert_with(|| "Allow".into());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    let template = spec.job_template.spec.get_or_insert_default();
    super::pod_spec(template.template.spec.get_or_insert_default());
}
