//! Deployments roll out as kube-controller-manager rolls them (issue 20): a rolling update behind
//! a Service loses no request, `emu rollout status` (and the real kubectl's) prints kubectl's
//! lines, `rollout undo` brings revision 1's image back, `maxSurge: 0` never runs more pods than
//! `replicas`, and a new template whose pods never turn ready stops at the surge and reports
//! ProgressDeadlineExceeded.

mod kubectl_support;

use emu_tests::{is_ready, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

fn web(name: &str, replicas: u32, image: &str, strategy: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 600
{strategy}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet: {{path: /, port: 80}}
          periodSeconds: 1
{extra}"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
";

fn deployment(c: &Cluster, name: &str) -> Value {
    serde_json::from_str(&c.emu(&["get", "deployment", name, "-o", "json"]).ok().stdout).unwrap()
}

fn image_of(c: &Cluster, name: &str) -> String {
    deployment(c, name)["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string()
}

/// The pods of `app` that are not terminating.
fn live_pods(c: &Cluster, app: &str) -> Vec<Value> {
    c.pods(&format!("app={app}")).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
}

#[test]
fn rolling_update_serves_every_request_and_undo_goes_back() {
    let (c, dir) = kubectl_support::cluster("troll");
    // Pods count as available 2 s after turning ready: the update takes a few seconds.
    let slow = "  minReadySeconds: 2\n";
    c.apply("web.yaml", &web("web", 4, "nginx:1.25", slow, "")).ok();
    c.apply("svc.yaml", SERVICE).ok();
    let done = c.emu(&["rollout", "status", "deployment/web", "--timeout", "60s"]).ok().stdout;
    assert!(done.ends_with("deployment \"web\" successfully rolled out\n"), "{done}");
    let d = deployment(&c, "web");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1", "{d}");
    let ip = c.cluster_ip("web");
    // A client in a pod: ~20 requests a second (curl's own time and 30 ms) through the ClusterIP, one line per answer.
    let script = format!("while true; do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' http://{ip}/ || echo fail; sleep 0.03; done");
    c.emu(&["run", "client", "--image=radial/busyboxplus:curl", "--", "sh", "-c", &script]).ok();
    c.ready_pod("client");
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    c.apply("web.yaml", &web("web", 4, "nginx:1.27", slow, "")).ok();
    let status = c.emu(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let took = started.elapsed();
    assert_eq!(status.code, 0, "{}{}\n{}", status.stdout, status.stderr, c.logs());
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"deployment \"web\" successfully rolled out"), "{}", status.stdout);
    assert!(
        lines.iter().any(|l| l.starts_with("Waiting for deployment \"web\" rollout to finish: ")
            && (l.ends_with(" new replicas have been updated...")
                || l.ends_with(" old replicas are pending termination...")
                || l.ends_with(" updated replicas are available..."))),
        "{}",
        status.stdout
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = c.emu(&["logs", "client"]).ok().stdout;
    let answers: Vec<&str> = log.lines().collect();
    let failed = answers.iter().filter(|l| **l != "200").count();
    eprintln!("rolling update of 4 took {took:?}; {} requests, {failed} failed\n{}", answers.len(), status.stdout);
    assert!(answers.len() as f64 > took.as_secs_f64() * 10.0, "{log}");
    assert_eq!(failed, 0, "{log}");
    let pods = live_pods(&c, "web");
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27" && is_ready(p)));
    let d = deployment(&c, "web");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2", "{d}");
    let conds = d["status"]["conditions"].as_array().unwrap();
    let progressing = conds.iter().find(|c| c["type"] == "Progressing").unwrap();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{d}");
    assert!(progressing["message"].as_str().unwrap().ends_with("has successfully progressed."), "{d}");
    let available = conds.iter().find(|c| c["type"] == "Available").unwrap();
    assert_eq!(available["message"], "Deployment has minimum availability.");

    // The real kubectl reads the same fields.
    let k = kubectl_support::kubectl(&dir.0, Duration::from_secs(30), &["rollout", "status", "deployment/web"]);
    assert_eq!(k.code, 0, "{}{}", k.stdout, k.stderr);
    assert_eq!(k.stdout, "deployment \"web\" successfully rolled out\n");

    let history = c.emu(&["rollout", "history", "deployment/web"]).ok().stdout;
    assert_eq!(history, "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n");
    assert_eq!(c.emu(&["rollout", "undo", "deployment/web"]).ok().stdout, "deployment.apps/web rolled back\n");
    c.emu(&["rollout", "status", "deployment/web", "--timeout", "120s"]).ok();
    assert_eq!(image_of(&c, "web"), "nginx:1.25");
    let pods = live_pods(&c, "web");
    assert!(pods.len() == 4 && pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.25"));
    // Revision 1's ReplicaSet came back as revision 3.
    let history = c.emu(&["rollout", "history", "deployment/web"]).ok().stdout;
    assert_eq!(history, "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n");

    // Pause holds a template change; resume rolls it out; restart replaces every pod.
    assert_eq!(c.emu(&["rollout", "pause", "deployment/web"]).ok().stdout, "deployment.apps/web paused\n");
    assert_eq!(c.emu(&["rollout", "pause", "deployment/web"]).stderr, "error: deployments.apps \"web\" is already paused\n");
    c.apply("web.yaml", &web("web", 4, "nginx:1.27", slow, "")).ok();
    std::thread::sleep(Duration::from_secs(2));
    assert!(live_pods(&c, "web").iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.25"));
    let d = deployment(&c, "web");
    let progressing = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!((progressing["reason"].as_str(), progressing["message"].as_str()), (Some("DeploymentPaused"), Some("Deployment is paused")));
    assert_eq!(c.emu(&["rollout", "resume", "deployment/web"]).ok().stdout, "deployment.apps/web resumed\n");
    c.emu(&["rollout", "status", "deployment/web", "--timeout", "120s"]).ok();
    assert!(live_pods(&c, "web").iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27"));
    let before: Vec<String> = live_pods(&c, "web").iter().map(emu_tests::name).collect();
    assert_eq!(c.emu(&["rollout", "restart", "deployment/web"]).ok().stdout, "deployment.apps/web restarted\n");
    c.emu(&["rollout", "status", "deployment/web", "--timeout", "120s"]).ok();
    let after: Vec<String> = live_pods(&c, "web").iter().map(emu_tests::name).collect();
    assert!(after.len() == 4 && after.iter().all(|p| !before.contains(p)), "{before:?} {after:?}");

    // The real kubectl's rollout verbs, over the REST API: restart, then status watching it.
    let k = kubectl_support::kubectl(&dir.0, Duration::from_secs(30), &["rollout", "restart", "deployment/web"]);
    assert_eq!((k.code, k.stdout.as_str()), (0, "deployment.apps/web restarted\n"), "{}", k.stderr);
    let k = kubectl_support::kubectl(&dir.0, Duration::from_secs(120), &["rollout", "status", "deployment/web"]);
    assert_eq!(k.code, 0, "{}{}", k.stdout, k.stderr);
    let lines: Vec<&str> = k.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"deployment \"web\" successfully rolled out"), "{}", k.stdout);
    assert!(lines.len() > 1 && lines[..lines.len() - 1].iter().all(|l| l.starts_with("Waiting for deployment")), "{}", k.stdout);
    // Revisions now: 3 (1.25, undone to), 4 (1.27, resumed), 5 and 6 (the restarts).
    let k = kubectl_support::kubectl(&dir.0, Duration::from_secs(30), &["rollout", "history", "deployment/web"]);
    assert_eq!(
        k.stdout,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n3         <none>\n4         <none>\n5         <none>\n6         <none>\n\n"
    );
    assert_eq!(k.stdout, c.emu(&["rollout", "history", "deployment/web"]).ok().stdout);
    let k = kubectl_support::kubectl(&dir.0, Duration::from_secs(30), &["rollout", "undo", "deployment/web", "--to-revision=3"]);
    assert_eq!((k.code, k.stdout.as_str()), (0, "deployment.apps/web rolled back\n"), "{}", k.stderr);
    c.emu(&["rollout", "status", "deployment/web", "--timeout", "120s"]).ok();
    assert_eq!(image_of(&c, "web"), "nginx:1.25");
}

#[test]
fn no_surge_and_a_rollout_that_never_turns_ready() {
    let c = Cluster::up("troll2", &[]);
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}\n";
    c.apply("calm.yaml", &web("calm", 4, "nginx:1.25", strategy, "")).ok();
    c.emu(&["rollout", "status", "deployment/calm", "--timeout", "60s"]).ok();
    c.apply("calm.yaml", &web("calm", 4, "nginx:1.27", strategy, "")).ok();
    let mut most = 0;
    c.wait_for("calm rolled out", Duration::from_secs(120), || {
        let pods = live_pods(&c, "calm");
        most = most.max(pods.len());
        let d = deployment(&c, "calm");
        let s = &d["status"];
        (pods.len() == 4 && s["updatedReplicas"] == 4 && s["availableReplicas"] == 4 && s["replicas"] == 4).then_some(())
    });
    eprintln!("maxSurge 0: at most {most} pods");
    assert!(most <= 4, "{most} pods at once");
    // The deployment controller's events, as kube words them.
    let events: Value = serde_json::from_str(&c.emu(&["get", "events", "-o", "json"]).ok().stdout).unwrap();
    let scaling: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "ScalingReplicaSet" && e["involvedObject"]["name"] == "calm")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(scaling.iter().any(|m| m.starts_with("Scaled down replica set calm-") && m.ends_with(" from 4 to 3")), "{scaling:?}");
    assert!(scaling.iter().any(|m| m.starts_with("Scaled up replica set calm-") && m.ends_with(" from 0 to 1")), "{scaling:?}");
    // Both fenceposts 0: refused with Kubernetes' message.
    let zero = "  strategy:\n    rollingUpdate: {maxSurge: 0, maxUnavailable: 0}\n";
    let r = c.apply("zero.yaml", &web("zero", 1, "nginx", zero, ""));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"),
        "{}",
        r.stderr
    );

    // Recreate: no new pod while an old one is there (terminating ones too); with
    // revisionHistoryLimit 1, one old ReplicaSet is kept.
    let recreate = "  revisionHistoryLimit: 1\n  strategy:\n    type: Recreate\n";
    // Created with the default RollingUpdate and switched by apply, as one would.
    c.apply("redo.yaml", &web("redo", 2, "nginx:1.25", "", "")).ok();
    c.emu(&["rollout", "status", "deployment/redo", "--timeout", "60s"]).ok();
    for image in ["nginx:1.26", "nginx:1.27"] {
        // The change-cause the Deployment carries goes to its new ReplicaSet, and into history.
        let cause = format!("name: redo\n  annotations: {{kubernetes.io/change-cause: \"to {image}\"}}\n");
        c.apply("redo.yaml", &web("redo", 2, image, recreate, "").replacen("name: redo\n", &cause, 1)).ok();
        let mut mixed = false;
        c.wait_for("redo recreated", Duration::from_secs(60), || {
            let pods = c.pods("app=redo");
            let images: std::collections::BTreeSet<&str> =
                pods.iter().filter_map(|p| p["spec"]["containers"][0]["image"].as_str()).collect();
            mixed |= images.len() > 1;
            let d = deployment(&c, "redo");
            let s = &d["status"];
            (pods.len() == 2 && images.len() == 1 && images.contains(image) && s["availableReplicas"] == 2 && s["updatedReplicas"] == 2)
                .then_some(())
        });
        assert!(!mixed, "old and new pods of a Recreate Deployment at once");
    }
    assert_eq!(deployment(&c, "redo")["spec"]["strategy"], serde_json::json!({"type": "Recreate"}));
    let rs = c.emu(&["get", "rs", "-l", "app=redo", "-o", "name"]).ok().stdout;
    assert_eq!(rs.lines().count(), 2, "{rs}");
    let history = c.emu(&["rollout", "history", "deployment/redo"]).ok().stdout;
    assert_eq!(history, "deployment.apps/redo \nREVISION  CHANGE-CAUSE\n2         to nginx:1.26\n3         to nginx:1.27\n\n");

    // A template whose pods never turn ready: the rollout stops at the surge (2 of 25 % → 1 more
    // pod, none unavailable) and the deadline is reported.
    c.apply("stuck.yaml", &web("stuck", 2, "nginx:1.25", "", "").replace("600", "6")).ok();
    c.emu(&["rollout", "status", "deployment/stuck", "--timeout", "60s"]).ok();
    let never = web("stuck", 2, "nginx:1.27", "", "")
        .replace("600", "6")
        .replace("httpGet: {path: /, port: 80}", "exec: {command: [sh, -c, 'exit 1']}");
    c.apply("stuck.yaml", &never).ok();
    let status = c.emu(&["rollout", "status", "deployment/stuck", "--timeout", "60s"]);
    assert_eq!(status.code, 1, "{}{}", status.stdout, status.stderr);
    assert_eq!(status.stderr, "error: deployment \"stuck\" exceeded its progress deadline\n");
    assert!(
        status.stdout.contains("Waiting for deployment \"stuck\" rollout to finish: 1 out of 2 new replicas have been updated..."),
        "{}",
        status.stdout
    );
    let d = deployment(&c, "stuck");
    let progressing = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!((progressing["status"].as_str(), progressing["reason"].as_str()), (Some("False"), Some("ProgressDeadlineExceeded")), "{d}");
    assert!(progressing["message"].as_str().unwrap().ends_with("has timed out progressing."), "{d}");
    let pods = live_pods(&c, "stuck");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(pods.iter().filter(|p| is_ready(p)).count(), 2);

    // Resized in the middle of the rollout, the ReplicaSets keep their proportions (kube's
    // DeploymentController.scale): 4 + 1 surge = 5 allowed, old 2*5/3 → 3, new 1*5/3 → 2.
    assert_eq!(c.emu(&["scale", "deployment", "stuck", "--replicas=4"]).ok().stdout, "deployment.apps/stuck scaled\n");
    c.wait_for("stuck's ReplicaSets at 3 and 2", Duration::from_secs(30), || {
        let list: Value = serde_json::from_str(&c.emu(&["get", "rs", "-l", "app=stuck", "-o", "json"]).ok().stdout).unwrap();
        let mut sizes: Vec<(String, i64)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rs| {
                (
                    rs["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string(),
                    rs["spec"]["replicas"].as_i64().unwrap(),
                )
            })
            .collect();
        sizes.sort();
        (sizes == [("nginx:1.25".to_string(), 3), ("nginx:1.27".to_string(), 2)]).then_some(())
    });
}
