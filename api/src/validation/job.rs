//! Job and CronJob validation (`ValidateJob`, `ValidateJobUpdate`, `ValidateCronJobCreate`,
//! pkg/apis/batch/validation), with Kubernetes' messages.

use super::{go_label_selector, go_quote, go_string_map, or_default, FieldErrorKind, Invalid, V};
use crate::defaults::job::CONTROLLER_UID;
use crate::selector::Selector;
use crate::typed::{CronJob, Job, JobSpec, LabelSelector};
use std::collections::BTreeMap;

/// The most pods an Indexed Job may run at once.
const MAX_PARALLELISM_INDEXED: i32 = 100_000;

pub(super) fn job(v: &mut V, job: &Job) {
    let spec = or_default(&job.spec);
    // ValidateGeneratedSelector: an auto-generated selector must be the generated one. A Job
    // without a uid is one no server admitted yet (the CLI's offline check): nothing to compare.
    let generated = spec.manual_selector != Some(true);
    let uid = job.metadata.uid.as_deref();
    if generated && uid.is_some() {
        if let Some(sel) = &spec.selector {
            let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
            if labels.and_then(|l| l.get(CONTROLLER_UID)).map(String::as_str) != uid {
                v.invalid("spec.template.metadata.labels", go_string_map(labels), "`selector` not auto-generated");
            }
            if sel.match_labels.as_ref().and_then(|l| l.get(CONTROLLER_UID)).map(String::as_str) != uid {
                v.invalid("spec.selector", go_label_selector(sel), "`selector` not auto-generated");
            }
        }
    }
    job_spec(v, &spec, "spec");
    match &spec.selector {
        None if generated && uid.is_none() => {}
        None => v.required("spec.selector", ""),
        Some(sel) => selector(v, sel),
    }
    // Whether manual or generated, the selector must match the pods it makes.
    if let Ok(sel) = Selector::from_typed(spec.selector.as_ref()) {
        let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        if spec.selector.is_some() && !sel.matches(labels.unwrap_or(&BTreeMap::new())) {
            v.invalid("spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`");
        }
    }
}

fn selector(v: &mut V, sel: &LabelSelector) {
    v.label_map(sel.match_labels.as_ref(), "spec.selector.matchLabels");
    v.label_selector_requirements(sel.match_expressions.as_deref().unwrap_or_default());
}

/// `validateJobSpec` at `at` (`spec`, or a CronJob's `spec.jobTemplate.spec`).
fn job_spec(v: &mut V, spec: &JobSpec, at: &str) {
    v.nonnegative(spec.parallelism, &format!("{at}.parallelism"));
    v.nonnegative(spec.completions, &format!("{at}.completions"));
    if let Some(d) = spec.active_deadline_seconds.filter(|&d| d < 0) {
        v.invalid(format!("{at}.activeDeadlineSeconds"), d.to_string(), "must be greater than or equal to 0");
    }
    v.nonnegative(spec.backoff_limit, &format!("{at}.backoffLimit"));
    v.nonnegative(spec.ttl_seconds_after_finished, &format!("{at}.ttlSecondsAfterFinished"));
    if let Some(mode) = spec.completion_mode.as_deref() {
        v.one_of(Some(mode), &format!("{at}.completionMode"), &["NonIndexed", "Indexed"]);
        if mode == "Indexed" {
            if spec.completions.is_none() {
                v.required(format!("{at}.completions"), "when completion mode is Indexed");
            }
            if let Some(p) = spec.parallelism.filter(|&p| p > MAX_PARALLELISM_INDEXED) {
                let msg = format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed");
                v.invalid(format!("{at}.parallelism"), p.to_string(), msg);
            }
        }
    }
    v.one_of(spec.pod_replacement_policy.as_deref(), &format!("{at}.podReplacementPolicy"), &["TerminatingOrFailed", "Failed"]);
    // ValidatePodTemplateSpec.
    let meta = or_default(&spec.template.metadata);
    v.label_map(meta.labels.as_ref(), &format!("{at}.template.metadata.labels"));
    v.annotations(meta.annotations.as_ref(), &format!("{at}.template.metadata.annotations"));
    let pod = or_default(&spec.template.spec);
    v.pod_spec(&pod, &format!("{at}.template.spec"));
    // Defaults make an unset restartPolicy Always: both are "required".
    match pod.restart_policy.as_deref().unwrap_or("Always") {
        "Always" | "" => v.required(format!("{at}.template.spec.restartPolicy"), r#"valid values: "OnFailure", "Never""#),
        "OnFailure" | "Never" => {}
        other => v.unsupported(format!("{at}.template.spec.restartPolicy"), other, &["OnFailure", "Never"]),
    }
}

pub(super) fn cron_job(v: &mut V, cj: &CronJob) {
    let spec = or_default(&cj.spec);
    if spec.schedule.is_empty() {
        v.required("spec.schedule", "");
    } else {
        if let Err(e) = crate::cron::parse(&spec.schedule) {
            v.invalid("spec.schedule", go_quote(&spec.schedule), e);
        }
        if spec.schedule.contains("TZ") {
            v.invalid("spec.schedule", go_quote(&spec.schedule), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
        }
    }
    if let Some(d) = spec.starting_deadline_seconds.filter(|&d| d < 0) {
        v.invalid("spec.startingDeadlineSeconds", d.to_string(), "must be greater than or equal to 0");
    }
    if let Some(tz) = spec.time_zone.as_deref() {
        if tz.is_empty() {
            v.invalid("spec.timeZone", go_quote(tz), "timeZone must be nil or non-empty string");
        } else if tz.eq_ignore_ascii_case("Local") {
            v.invalid(
                "spec.timeZone",
                go_quote(tz),
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            );
        } else if let Err(e) = crate::cron::time_zone_offset(Some(tz)) {
            v.invalid("spec.timeZone", go_quote(tz), e);
        }
    }
    match spec.concurrency_policy.as_deref() {
        None | Some("") => v.required("spec.concurrencyPolicy", ""),
        Some(p) => v.one_of(Some(p), "spec.concurrencyPolicy", &["Allow", "Forbid", "Replace"]),
    }
    // ValidateJobTemplateSpec: the selector is always generated.
    let template = or_default(&spec.job_template.spec);
    job_spec(v, &template, "spec.jobTemplate.spec");
    if let Some(sel) = &template.selector {
        v.invalid("spec.jobTemplate.spec.selector", go_label_selector(sel), "`selector` will be auto-generated");
    }
    if template.manual_selector == Some(true) {
        v.push(
            "spec.jobTemplate.spec.manualSelector",
            FieldErrorKind::Unsupported("true".into(), vec!["nil".into(), "false".into()]),
            r#"supported values: "nil", "false""#,
        );
    }
    v.nonnegative(spec.successful_jobs_history_limit, "spec.successfulJobsHistoryLimit");
    v.nonnegative(spec.failed_jobs_history_limit, "spec.failedJobsHistoryLimit");
    // The controller appends an 11-character `-<minutes>` to name its Jobs (63 at most).
    let name = cj.metadata.name.as_deref().unwrap_or_default();
    if name.len() > 52 {
        v.invalid("metadata.name", go_quote(name), "must be no more than 52 characters");
    }
}

/// `ValidateJobSpecUpdate`: what a Job keeps for life.
pub fn job_update(old: &Job, new: &Job) -> Result<(), Invalid> {
    let mut v = V::default();
    let (o, n) = (or_default(&old.spec), or_default(&new.spec));
    if o.completions != n.completions {
        let value = n.completions.map_or("null".to_string(), |c| c.to_string());
        v.invalid("spec.completions", value, "field is immutable");
    }
    if o.selector != n.selector {
        let value = n.selector.as_ref().map_or("null".to_string(), go_label_selector);
        v.invalid("spec.selector", value, "field is immutable");
    }
    // A suspended Job that never started may change its pods' scheduling directives; emu keeps
    // the whole template (its Go value is abbreviated: emu has no Go struct to print).
    if o.template != n.template {
        v.invalid("spec.template", "core.PodTemplateSpec{...}".into(), "field is immutable");
    }
    if o.completion_mode != n.completion_mode {
        v.invalid("spec.completionMode", go_quote(n.completion_mode.as_deref().unwrap_or_default()), "field is immutable");
    }
    v.finish("Job", new.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_update, Undecoded};
    use crate::typed::Object;
    use serde_json::{json, Value};

    /// Admission's steps without a server: decode, defaults, then (with a uid, as the API server
    /// assigns it) the generated selector, then validation.
    fn admitted(v: &Value, uid: Option<&str>) -> Object {
        let mut o = Object::decode(crate::object::kind(v), v).unwrap();
        crate::defaults::object(&mut o);
        if let (Object::Job(job), Some(uid)) = (&mut o, uid) {
            job.metadata.uid = Some(uid.into());
            crate::defaults::job::generate_selector(job);
            crate::defaults::job::job(job);
        }
        o
    }

    fn message(v: &Value) -> String {
        validate(&admitted(v, Some("u1")), Undecoded::of(v)).unwrap_err().to_string()
    }

    fn job(restart: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}}})
    }

    #[test]
    fn defaults_and_the_generated_selector() {
        let o = admitted(&job("Never"), Some("u1"));
        validate(&o, Undecoded::of(&job("Never"))).unwrap();
        let v = o.to_json();
        let spec = &v["spec"];
        assert_eq!((&spec["completions"], &spec["parallelism"], &spec["backoffLimit"]), (&json!(1), &json!(1), &json!(6)));
        assert_eq!(
            (&spec["completionMode"], &spec["suspend"], &spec["manualSelector"]),
            (&json!("NonIndexed"), &json!(false), &json!(false))
        );
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}));
        let labels = json!({"batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u1", "job-name": "pi"});
        assert_eq!((&spec["template"]["metadata"]["labels"], &v["metadata"]["labels"]), (&labels, &labels));
        // Parallelism alone leaves completions unset (a work queue).
        let mut q = job("Never");
        q["spec"]["parallelism"] = json!(3);
        let q = admitted(&q, None).to_json();
        assert_eq!((q["spec"].get("completions"), &q["spec"]["parallelism"]), (None, &json!(3)));
    }

    #[test]
    fn jobs_are_refused_in_kubernetes_words() {
        let always = r#"The Job "pi" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#;
        assert_eq!(message(&job("Always")), always);
        assert_eq!(
            message(&job("Sometimes")),
            // The pod spec's own check, then the Job's (ValidatePodTemplateSpec, then validateJobSpec).
            "The Job \"pi\" is invalid: \n* spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"\n* spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\""
        );
        let mut j = job("Never");
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["completions"] = Value::Null;
        j["spec"]["parallelism"] = json!(2);
        j["spec"]["backoffLimit"] = json!(-1);
        assert_eq!(
            message(&j),
            "The Job \"pi\" is invalid: \n* spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0\n* spec.completions: Required value: when completion mode is Indexed"
        );
        let mut j = job("Never");
        j["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}});
        assert!(message(&j).contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated"), "{}", message(&j));
    }

    #[test]
    fn a_job_keeps_its_template_and_selector() {
        let old = admitted(&job("Never"), Some("u1")).to_json();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
        new["spec"]["completions"] = json!(5);
        let err = validate_update(&old, &Object::decode("Job", &new).unwrap()).unwrap_err().to_string();
        assert_eq!(
            err,
            "The Job \"pi\" is invalid: \n* spec.completions: Invalid value: 5: field is immutable\n* spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"
        );
        let mut scaled = old.clone();
        scaled["spec"]["parallelism"] = json!(4);
        scaled["spec"]["suspend"] = json!(true);
        validate_update(&old, &Object::decode("Job", &scaled).unwrap()).unwrap();
    }

    #[test]
    fn cronjobs_are_refused_in_kubernetes_words() {
        let cj = |schedule: &str, restart: &str| {
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"}, "spec": {"schedule": schedule,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}}}}})
        };
        let ok = admitted(&cj("*/1 * * * *", "OnFailure"), None);
        validate(&ok, Undecoded::of(&cj("", ""))).unwrap();
        let v = ok.to_json();
        assert_eq!((&v["spec"]["concurrencyPolicy"], &v["spec"]["suspend"]), (&json!("Allow"), &json!(false)));
        assert_eq!((&v["spec"]["successfulJobsHistoryLimit"], &v["spec"]["failedJobsHistoryLimit"]), (&json!(3), &json!(1)));
        assert_eq!(
            message(&cj("x", "OnFailure")),
            r#"The CronJob "tick" is invalid: spec.schedule: Invalid value: "x": expected exactly 5 fields, found 1: [x]"#
        );
        assert_eq!(
            message(&cj("@hourly", "Always")),
            r#"The CronJob "tick" is invalid: spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#
        );
        let mut bad = cj("@hourly", "Never");
        bad["spec"]["concurrencyPolicy"] = json!("Sometimes");
        bad["spec"]["timeZone"] = json!("Local");
        assert_eq!(
            message(&bad),
            "The CronJob \"tick\" is invalid: \n* spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones\n* spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        );
    }
}
