//! Jobs and CronJobs run as kube-controller-manager runs them (issue 20, items 2 and 3): a Job of
//! completions 3 and parallelism 2 completes never running more than 2 pods, a failing one stops
//! at its backoffLimit with Kubernetes' conditions and message, activeDeadlineSeconds and
//! ttlSecondsAfterFinished act, an Indexed Job's pods see their index, pods show
//! Completed/Error; `emu create job`/`cronjob` make what kubectl makes, `emu get jobs` and
//! `emu describe job`/`cronjob` print what the real kubectl prints, and a CronJob starts Jobs.

mod kubectl_support;

use emu_tests::Cluster;
use kubectl_support::kubectl;
use serde_json::Value;
use std::time::{Duration, Instant};

fn job_yaml(name: &str, spec: &str, command: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [\"sh\", \"-c\", {command:?}]
"
    )
}

fn get(c: &Cluster, kind: &str, name: &str) -> Option<Value> {
    let r = c.emu(&["get", kind, name, "-o", "json"]);
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True")
}

fn condition_types(job: &Value) -> Vec<String> {
    job["status"]["conditions"].as_array().into_iter().flatten().map(|c| c["type"].as_str().unwrap().to_string()).collect()
}

/// The pods of a Job, as `emu get pods` shows them: name → STATUS column.
fn pod_statuses(c: &Cluster, job: &str) -> Vec<(String, String)> {
    let out = c.emu(&["get", "pods", "-l", &format!("job-name={job}"), "--no-headers"]).ok().stdout;
    out.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[2].to_string())
        })
        .collect()
}

#[test]
fn jobs_complete_fail_expire_and_count_as_kubernetes_does() {
    let c = Cluster::up("tjob1", &[]);
    c.apply("par.yaml", &job_yaml("par", "  completions: 3\n  parallelism: 2\n", "sleep 2")).ok();
    c.apply("fail.yaml", &job_yaml("fail", "  backoffLimit: 1\n", "exit 3")).ok();
    c.apply("slow.yaml", &job_yaml("slow", "  activeDeadlineSeconds: 3\n", "sleep 60")).ok();
    c.apply("brief.yaml", &job_yaml("brief", "  ttlSecondsAfterFinished: 2\n", "true")).ok();
    c.apply(
        "idx.yaml",
        &job_yaml("idx", "  completions: 2\n  parallelism: 2\n  completionMode: Indexed\n", "echo index=$JOB_COMPLETION_INDEX"),
    )
    .ok();

    // The generated selector and the pods' labels.
    let par = get(&c, "job", "par").unwrap();
    let uid = par["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(par["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid.as_str());
    let labels = &par["spec"]["template"]["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/job-name", "par"),
        ("job-name", "par"),
    ] {
        assert_eq!(labels[k], v, "{labels}");
    }
    assert_eq!(
        (&par["spec"]["backoffLimit"], &par["spec"]["completionMode"], &par["spec"]["suspend"], &par["spec"]["podReplacementPolicy"]),
        (&Value::from(6), &Value::from("NonIndexed"), &Value::from(false), &Value::from("TerminatingOrFailed"))
    );

    // completions 3, parallelism 2: never more than 2 running, then Complete.
    let start = Instant::now();
    let mut most = 0;
    let done = loop {
        let running = c
            .pods("job-name=par")
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count();
        most = most.max(running);
        let job = get(&c, "job", "par").unwrap();
        if condition(&job, "Complete").is_some() {
            break job;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "par did not complete: {job}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(most, 2, "parallelism 2 runs 2 pods at once");
    assert_eq!(condition_types(&done), ["SuccessCriteriaMet", "Complete"]);
    let complete = condition(&done, "Complete").unwrap();
    assert_eq!(
        (complete["reason"].as_str(), complete["message"].as_str()),
        (Some("CompletionsReached"), Some("Reached expected number of succeeded pods"))
    );
    assert_eq!(done["status"]["succeeded"], 3);
    assert!(done["status"]["completionTime"].is_string() && done["status"]["startTime"].is_string());
    c.emu(&["wait", "--for=condition=complete", "job/par", "--timeout=5s"]).ok();
    let statuses = pod_statuses(&c, "par");
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|(_, s)| s == "Completed"), "{statuses:?}");

    // backoffLimit 1: two failed pods (the second after a 10 s back-off), then FailureTarget and Failed.
    let failed =
        c.wait_for("fail to fail", Duration::from_secs(60), || get(&c, "job", "fail").filter(|j| condition(j, "Failed").is_some()));
    assert_eq!(condition_types(&failed), ["FailureTarget", "Failed"]);
    let f = condition(&failed, "Failed").unwrap();
    assert_eq!(
        (f["reason"].as_str(), f["message"].as_str()),
        (Some("BackoffLimitExceeded"), Some("Job has reached the specified backoff limit"))
    );
    assert_eq!(failed["status"]["failed"], 2);
    let statuses = pod_statuses(&c, "fail");
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|(_, s)| s == "Error"), "{statuses:?}");
    let events = c.emu(&["get", "events", "--field-selector", "involvedObject.name=fail"]).ok().stdout;
    assert!(events.contains("BackoffLimitExceeded") && events.contains("Job has reached the specified backoff limit"), "{events}");

    // activeDeadlineSeconds: the running pod is deleted, the Job fails with DeadlineExceeded.
    let slow = c.wait_for("slow to fail", Duration::from_secs(30), || get(&c, "job", "slow").filter(|j| condition(j, "Failed").is_some()));
    let f = condition(&slow, "Failed").unwrap();
    assert_eq!(
        (f["reason"].as_str(), f["message"].as_str()),
        (Some("DeadlineExceeded"), Some("Job was active longer than specified deadline"))
    );
    // The pod it stopped counts as failed.
    assert_eq!(slow["status"]["failed"], 1, "{slow}");

    // ttlSecondsAfterFinished: the Job and its pods go.
    c.wait_for("brief and its pods to be deleted", Duration::from_secs(30), || {
        (get(&c, "job", "brief").is_none() && c.pods("job-name=brief").is_empty()).then_some(())
    });

    // Indexed: each pod has its index (annotation, label, JOB_COMPLETION_INDEX).
    let idx =
        c.wait_for("idx to complete", Duration::from_secs(30), || get(&c, "job", "idx").filter(|j| condition(j, "Complete").is_some()));
    assert_eq!(idx["status"]["completedIndexes"], "0-1");
    let mut seen: Vec<String> = c
        .pods("job-name=idx")
        .iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap();
            let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().unwrap();
            assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
            assert_eq!(p["spec"]["hostname"], format!("idx-{index}"));
            c.emu(&["logs", name]).ok().stdout.trim().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["index=0", "index=1"]);

    // Validation in Kubernetes' words.
    let bad = job_yaml("bad", "", "true").replace("restartPolicy: Never", "restartPolicy: Always");
    let r = c.apply("bad.yaml", &bad);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(r#"The Job "bad" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#),
        "{}",
        r.stderr
    );
    let changed = job_yaml("par", "  completions: 3\n  parallelism: 2\n", "sleep 3");
    let r = c.apply("par2.yaml", &changed);
    assert!(
        r.stderr.contains(r#"The Job "par" is invalid: spec.template: Invalid value: "#) && r.stderr.contains("field is immutable"),
        "{}",
        r.stderr
    );
}

/// The YAML of an object without what the server adds (status, uid, timestamps, defaults are kept).
fn spec_of(yaml_json: &str) -> Value {
    let v: Value = serde_json::from_str(yaml_json).unwrap();
    v["spec"].clone()
}

/// emu's and the real kubectl's output of the same command, equal (retried a few times: an age
/// may cross a second between the two).
fn assert_same(c: &Cluster, dir: &std::path::Path, args: &[&str]) {
    let mut last = (String::new(), String::new());
    for _ in 0..5 {
        let ours = c.emu(args).ok().stdout;
        let theirs = kubectl(dir, Duration::from_secs(30), args).ok().stdout;
        if ours == theirs {
            return;
        }
        last = (ours, theirs);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, last.1, "emu {args:?} vs kubectl");
}

#[test]
fn kubectl_agrees_on_jobs_and_cronjobs() {
    let (c, dir) = kubectl_support::cluster("tjob2");
    let limit = Duration::from_secs(30);

    // `create job` and `create cronjob` print kubectl's line and send what kubectl sends.
    let r = c.emu(&["create", "job", "hello", "--image=busybox", "--", "echo", "hi"]).ok();
    assert_eq!(r.stdout, "job.batch/hello created\n");
    let r = c.emu(&["create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "echo", "tick"]).ok();
    assert_eq!(r.stdout, "cronjob.batch/tick created\n");
    let k =
        kubectl(&dir.0, limit, &["create", "job", "hello", "--image=busybox", "--dry-run=client", "-o", "json", "--", "echo", "hi"]).ok();
    let ours = get(&c, "job", "hello").unwrap();
    let sent = spec_of(&k.stdout);
    assert_eq!(ours["spec"]["template"]["spec"]["containers"][0]["command"], sent["template"]["spec"]["containers"][0]["command"]);
    assert_eq!(ours["spec"]["template"]["spec"]["containers"][0]["name"], sent["template"]["spec"]["containers"][0]["name"]);
    assert_eq!(ours["spec"]["template"]["spec"]["restartPolicy"], sent["template"]["spec"]["restartPolicy"]);
    let k = kubectl(
        &dir.0,
        limit,
        &["create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--dry-run=client", "-o", "json", "--", "echo", "tick"],
    )
    .ok();
    let ours = get(&c, "cronjob", "tick").unwrap();
    let sent = spec_of(&k.stdout);
    assert_eq!(ours["spec"]["schedule"], sent["schedule"]);
    assert_eq!(ours["spec"]["jobTemplate"]["metadata"]["name"], sent["jobTemplate"]["metadata"]["name"]);
    let (o, s) = (&ours["spec"]["jobTemplate"]["spec"]["template"]["spec"], &sent["jobTemplate"]["spec"]["template"]["spec"]);
    assert_eq!((&o["restartPolicy"], &o["containers"][0]["command"]), (&s["restartPolicy"], &s["containers"][0]["command"]));
    assert_eq!(
        (&ours["spec"]["concurrencyPolicy"], &ours["spec"]["successfulJobsHistoryLimit"], &ours["spec"]["failedJobsHistoryLimit"]),
        (&Value::from("Allow"), &Value::from(3), &Value::from(1))
    );
    // The real kubectl's own create goes through (protobuf bodies), errors are kubectl's.
    kubectl(&dir.0, limit, &["create", "job", "kj", "--image=busybox", "--", "true"]).ok();
    let r = c.emu(&["create", "job", "nothing"]);
    assert_eq!((r.code != 0, r.stderr.trim()), (true, "error: either --image or --from must be specified"));
    let r = c.emu(&["create", "cronjob", "x", "--image=busybox", "--schedule=x"]);
    assert!(
        r.stderr.contains(r#"The CronJob "x" is invalid: spec.schedule: Invalid value: "x": expected exactly 5 fields, found 1: [x]"#),
        "{}",
        r.stderr
    );

    // `create job --from=cronjob/...` by both: the CronJob's template, marked manual, owned by it.
    c.emu(&["create", "job", "now", "--from=cronjob/tick"]).ok();
    kubectl(&dir.0, limit, &["create", "job", "know", "--from=cronjob/tick"]).ok();
    for name in ["now", "know"] {
        let j = get(&c, "job", name).unwrap();
        assert_eq!(j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual", "{j}");
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(j["metadata"]["ownerReferences"][0]["name"], "tick");
    }

    // Every Job done: get and describe as the real kubectl prints them.
    for name in ["hello", "kj", "now", "know"] {
        c.emu(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=30s"]).ok();
    }
    assert_same(&c, &dir.0, &["get", "jobs", "-o", "wide"]);
    assert_same(&c, &dir.0, &["describe", "job", "hello"]);
    // One a CronJob controls says so (`Controlled By:  CronJob/tick`).
    assert_same(&c, &dir.0, &["describe", "job", "know"]);

    // The CronJob starts a Job at the next minute, named after the scheduled minute.
    let job = c.wait_for("the CronJob's Job", Duration::from_secs(75), || {
        let list: Value = serde_json::from_str(&c.emu(&["get", "jobs", "-o", "json"]).ok().stdout).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].is_string())
            .cloned()
    });
    let name = job["metadata"]["name"].as_str().unwrap();
    let scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].as_str().unwrap();
    let minutes = emu_api::time::parse_rfc3339(scheduled).unwrap() / 60;
    assert_eq!(name, format!("tick-{minutes}"));
    c.emu(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=30s"]).ok();
    let cj = c.wait_for("lastSuccessfulTime", Duration::from_secs(10), || {
        get(&c, "cronjob", "tick").filter(|cj| cj["status"]["lastSuccessfulTime"].is_string())
    });
    assert_eq!(cj["status"]["lastScheduleTime"], scheduled);
    assert_same(&c, &dir.0, &["describe", "cronjob", "tick"]);
    assert_same(&c, &dir.0, &["get", "cronjobs", "-o", "wide"]);
}
