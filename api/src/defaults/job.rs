//! Job and CronJob defaults (`SetDefaults_Job`, `SetDefaults_CronJob`, pkg/apis/batch/v1/defaults.go).

use crate::typed::{CronJob, Job};

pub fn job(job: &mut Job) {
    let spec = job.spec.get_or_insert_default();
    super::pod_spec(spec.template.spec.get_or_insert_default());
}

pub fn cron_job(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_default();
    let template = spec.job_template.spec.get_or_insert_default();
    super::pod_spec(template.template.spec.get_or_insert_default());
}
