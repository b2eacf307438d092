//! StatefulSets run as kube-controller-manager runs them (issue 20, items 2 and 4): a set of 3
//! starts web-0, web-1, web-2 in order, each once the one before is Ready; `web-1.nginx` resolves
//! from a pod to web-1's address; web-1 deleted comes back as web-1 (a new pod, the same name and
//! DNS name); scale-down removes the highest ordinal first; a rolling update replaces pods from
//! the highest ordinal down, and stops at a partition; `get`, `describe` and `rollout status`
//! print what the real kubectl prints against the same cluster.

mod kubectl_support;

use emu_tests::{is_ready, name, pod_ip, table_cells, Cluster};
use kubectl_support::kubectl;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// The tutorial's headless Service and StatefulSet (scenarios/statefulset.yaml), with `image`
/// and `extra` lines under `spec:`.
fn manifest(image: &str, extra: &str) -> String {
    let text = std::fs::read_to_string(emu_tests::scenario_path("statefulset.yaml")).unwrap();
    let text = text.replace("        image: nginx\n", &format!("        image: {image}\n"));
    text.replace("  serviceName: \"nginx\"\n", &format!("  serviceName: \"nginx\"\n{extra}"))
}

/// The set's pods by name, terminating ones included.
fn set_pods(c: &Cluster) -> BTreeMap<String, Value> {
    c.pods("app=nginx").into_iter().map(|p| (name(&p), p)).collect()
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

fn sts(c: &Cluster) -> Value {
    serde_json::from_str(&c.emu(&["get", "statefulset", "web", "-o", "json"]).ok().stdout).unwrap()
}

/// The addresses busybox's nslookup answers for `host` (after the server's own).
fn nslookup(c: &Cluster, pod: &str, host: &str) -> Vec<String> {
    let out = c.emu(&["exec", pod, "--", "nslookup", host]).stdout;
    let answer = out.split_once("Name:").map_or("", |(_, a)| a);
    answer.lines().filter_map(|l| l.strip_prefix("Address:")).map(|a| a.trim().to_string()).collect()
}

/// Polls the pods until `done` holds of them, checking `invariant` of every snapshot.
fn watch(
    c: &Cluster,
    what: &str,
    mut invariant: impl FnMut(&BTreeMap<String, Value>),
    mut done: impl FnMut(&BTreeMap<String, Value>) -> bool,
) {
    let start = Instant::now();
    loop {
        let pods = set_pods(c);
        invariant(&pods);
        if done(&pods) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "timed out waiting for {what}: {pods:?}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_ready(pods: &BTreeMap<String, Value>, names: &[&str]) -> bool {
    pods.len() == names.len() && names.iter().all(|n| pods.get(*n).is_some_and(|p| is_ready(p) && live(p)))
}

#[test]
fn statefulset_ordered_stable_names_dns_scaling_and_rolling_update() {
    let (c, dir) = kubectl_support::cluster("tsts1");
    // Readiness a second after start, so that the order shows.
    let slow = |image: &str, extra: &str| {
        manifest(image, extra).replace("          periodSeconds: 1\n", "          periodSeconds: 1\n          initialDelaySeconds: 1\n")
    };
    c.apply("web.yaml", &slow("nginx:1.25", "")).ok();

    // web-1 is created only once web-0 is Ready, web-2 once web-1 is.
    watch(
        &c,
        "web-0..2 ready",
        |pods| {
            for (later, before) in [("web-1", "web-0"), ("web-2", "web-1")] {
                if pods.contains_key(later) {
                    assert!(pods.get(before).is_some_and(is_ready), "{later} exists before {before} is Ready: {pods:?}");
                }
            }
        },
        |pods| all_ready(pods, &["web-0", "web-1", "web-2"]),
    );
    let pods = set_pods(&c);
    let web1 = &pods["web-1"];
    assert_eq!(web1["spec"]["hostname"], "web-1");
    assert_eq!(web1["spec"]["subdomain"], "nginx");
    let labels = &web1["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let s = sts(&c);
    let revision = s["status"]["updateRevision"].as_str().unwrap().to_string();
    assert_eq!(labels["controller-revision-hash"], revision.as_str());
    assert!(revision.starts_with("web-"), "{revision}");
    let status = &s["status"];
    assert_eq!(
        (
            &status["replicas"],
            &status["readyReplicas"],
            &status["currentReplicas"],
            &status["updatedReplicas"],
            &status["availableReplicas"]
        ),
        (&3.into(), &3.into(), &3.into(), &3.into(), &3.into()),
        "{s}"
    );
    assert_eq!((&status["currentRevision"], &status["collisionCount"]), (&Value::from(revision.clone()), &0.into()), "{s}");
    assert_eq!(status["observedGeneration"], s["metadata"]["generation"]);
    let owner = &c.emu(&["get", "controllerrevision", &revision, "-o", "json"]).ok().stdout;
    let owner: Value = serde_json::from_str(owner).unwrap();
    assert_eq!((&owner["revision"], &owner["metadata"]["ownerReferences"][0]["name"]), (&1.into(), &"web".into()), "{owner}");

    // web-1.nginx from a pod: web-1's address. busybox ≥ 1.28 applies the search list only to
    // names without a dot (the tutorial pins busybox:1.28 for this), so it asks for the full
    // name; glibc (curl) and bind's nslookup (dnsutils) take the short one.
    c.emu(&["run", "dns", "--image=busybox", "--", "sleep", "3600"]).ok();
    c.emu(&["run", "dnsutils", "--image=tutum/dnsutils", "--command", "--", "sleep", "infinity"]).ok();
    c.ready_pod("dns");
    c.ready_pod("dnsutils");
    let ip1 = pod_ip(web1);
    assert_eq!(nslookup(&c, "dns", "web-1.nginx.default.svc.cluster.local"), vec![ip1.clone()]);
    assert_eq!(nslookup(&c, "dnsutils", "web-1.nginx"), vec![ip1.clone()]);
    assert_eq!(nslookup(&c, "dnsutils", "web-0.nginx"), vec![pod_ip(&pods["web-0"])]);
    // The headless Service itself answers with every pod.
    let mut all = nslookup(&c, "dnsutils", "nginx");
    all.sort();
    let mut ips: Vec<String> = pods.values().map(pod_ip).collect();
    ips.sort();
    assert_eq!(all, ips);

    // web-1 deleted: a new pod named web-1, the same DNS name.
    let old_uid = uid(web1);
    c.emu(&["delete", "pod", "web-1"]).ok();
    let back = c.wait_for("web-1 back", Duration::from_secs(60), || {
        set_pods(&c).remove("web-1").filter(|p| uid(p) != old_uid && is_ready(p) && live(p))
    });
    let ip1 = pod_ip(&back);
    c.wait_for("web-1.nginx at the new web-1", Duration::from_secs(10), || {
        (nslookup(&c, "dnsutils", "web-1.nginx") == vec![ip1.clone()]).then_some(())
    });
    assert_eq!(back["spec"]["hostname"], "web-1");

    // get and describe as kubectl prints them.
    same_as_kubectl(&c, &dir.0, &["get", "sts"]);
    same_as_kubectl(&c, &dir.0, &["get", "statefulsets", "-o", "wide"]);
    same_as_kubectl(&c, &dir.0, &["describe", "sts", "web"]);
    same_as_kubectl(&c, &dir.0, &["rollout", "status", "statefulset/web"]);
    let done = c.emu(&["rollout", "status", "statefulset/web"]).ok().stdout;
    assert_eq!(done, "partitioned roll out complete: 3 new pods have been updated...\n");

    // Scale down to 1: web-2 goes first, web-1 only once web-2 is gone.
    let scaled = c.emu(&["scale", "statefulset", "web", "--replicas=1"]).ok().stdout;
    assert_eq!(scaled, "statefulset.apps/web scaled\n");
    watch(
        &c,
        "scale down to web-0",
        |pods| {
            if pods.get("web-1").is_none_or(|p| !live(p)) {
                assert!(!pods.contains_key("web-2"), "web-1 goes while web-2 is still there: {pods:?}");
            }
        },
        |pods| all_ready(pods, &["web-0"]),
    );
    // The real kubectl scales through the scale subresource.
    assert_eq!(kubectl(&dir.0, LIMIT, &["scale", "statefulset", "web", "--replicas=3"]).ok().stdout, "statefulset.apps/web scaled\n");
    watch(&c, "scale up to 3", |_| {}, |pods| all_ready(pods, &["web-0", "web-1", "web-2"]));

    // A new image: pods replaced from web-2 down to web-0, one at a time.
    c.apply("web.yaml", &manifest("nginx:1.27", "")).ok();
    let mut order: Vec<String> = vec![];
    watch(
        &c,
        "the rolling update",
        |pods| {
            for (n, p) in pods {
                let image = p["spec"]["containers"][0]["image"].as_str().unwrap_or_default();
                if image == "nginx:1.27" && !order.contains(n) {
                    order.push(n.clone());
                }
            }
            let replaced = pods.values().filter(|p| !live(p)).count();
            assert!(replaced <= 1, "more than one pod replaced at once: {pods:?}");
        },
        |pods| all_ready(pods, &["web-0", "web-1", "web-2"]) && pods.values().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27"),
    );
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    let out = c.emu(&["rollout", "status", "statefulset/web", "--timeout", "60s"]).ok().stdout;
    assert!(out.ends_with("partitioned roll out complete: 3 new pods have been updated...\n"), "{out}");
    let s = sts(&c);
    let new_revision = s["status"]["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(new_revision, revision);
    c.wait_for("the update revision current", Duration::from_secs(10), || {
        (sts(&c)["status"]["currentRevision"] == new_revision.as_str()).then_some(())
    });

    // A partition: only ordinals at or above it are updated.
    c.apply("web.yaml", &slow("nginx:1.25", "  updateStrategy:\n    rollingUpdate: {partition: 2}\n")).ok();
    watch(
        &c,
        "web-2 updated",
        |_| {},
        |pods| all_ready(pods, &["web-0", "web-1", "web-2"]) && pods["web-2"]["spec"]["containers"][0]["image"] == "nginx:1.25",
    );
    std::thread::sleep(Duration::from_secs(2));
    let pods = set_pods(&c);
    assert_eq!(pods["web-1"]["spec"]["containers"][0]["image"], "nginx:1.27", "below the partition: unchanged");
    let out = c.emu(&["rollout", "status", "statefulset/web", "--timeout", "30s"]).ok().stdout;
    assert!(out.ends_with("partitioned roll out complete: 1 new pods have been updated...\n"), "{out}");
    same_as_kubectl(&c, &dir.0, &["describe", "statefulset", "web"]);
    // Back to the first template: its revision (1) renumbered 3, after 1.27's (2).
    let history = c.emu(&["rollout", "history", "statefulset/web"]).ok().stdout;
    assert_eq!(history, "statefulset.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n");
    same_as_kubectl(&c, &dir.0, &["rollout", "history", "statefulset/web"]);
    same_as_kubectl(&c, &dir.0, &["get", "controllerrevisions"]);
    same_as_kubectl(&c, &dir.0, &["rollout", "history", "statefulset/web", "--revision=2"]);

    // Undo: revision 2's template back (renumbered 4); restart: a new template, a new revision.
    assert_eq!(c.emu(&["rollout", "undo", "statefulset/web"]).ok().stdout, "statefulset.apps/web rolled back\n");
    assert_eq!(sts(&c)["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    let mut history = String::new();
    let start = Instant::now();
    while !history.ends_with("REVISION  CHANGE-CAUSE\n3         <none>\n4         <none>\n\n") {
        assert!(start.elapsed() < Duration::from_secs(10), "revision 2 renumbered 4: {history}");
        std::thread::sleep(Duration::from_millis(100));
        history = c.emu(&["rollout", "history", "sts/web"]).ok().stdout;
    }
    let skipped = c.emu(&["rollout", "undo", "sts/web", "--to-revision=4"]).ok().stdout;
    assert_eq!(skipped, "statefulset.apps/web skipped rollback (current template already matches revision 4)\n");
    let missing = c.emu(&["rollout", "undo", "sts/web", "--to-revision=9"]);
    assert!(missing.code != 0 && missing.stderr.contains("unable to find specified revision 9 in history"), "{}", missing.stderr);
    assert_eq!(c.emu(&["rollout", "restart", "statefulset/web"]).ok().stdout, "statefulset.apps/web restarted\n");
    assert!(sts(&c)["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());

    // The spec beyond the fields Kubernetes lets change is refused with its words.
    let other = slow("nginx:1.25", "  podManagementPolicy: Parallel\n  updateStrategy:\n    rollingUpdate: {partition: 2}\n");
    let refused = c.apply("web.yaml", &other);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(
            "The StatefulSet \"web\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', \
             'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
             'minReadySeconds' are forbidden"
        ),
        "{}",
        refused.stderr
    );
}

/// A StatefulSet with `podManagementPolicy: Parallel` starts every pod at once; claim templates
/// are refused, naming the field and what to do.
#[test]
fn statefulset_parallel_and_claims_refused() {
    let (c, dir) = kubectl_support::cluster("tsts2");
    let parallel = manifest("nginx", "  podManagementPolicy: Parallel\n")
        .replace("          periodSeconds: 1\n", "          periodSeconds: 1\n          initialDelaySeconds: 2\n");
    c.apply("web.yaml", &parallel).ok();
    // All three exist before any is Ready.
    c.wait_for("three pods", Duration::from_secs(20), || {
        let pods = set_pods(&c);
        (pods.len() == 3).then_some(())
    });
    assert!(set_pods(&c).values().filter(|p| is_ready(p)).count() < 3, "created at once, not one after another");
    c.ready_pods("app=nginx", 3);

    // Deleted leaving its pods (and revisions), the set made again takes them back: the same
    // pods, the same revision, nothing restarted.
    let before: BTreeMap<String, String> = set_pods(&c).iter().map(|(n, p)| (n.clone(), uid(p))).collect();
    let revision = sts(&c)["status"]["updateRevision"].clone();
    kubectl(&dir.0, LIMIT, &["delete", "statefulset", "web", "--cascade=orphan"]).ok();
    assert_eq!(set_pods(&c).len(), 3, "the pods stay");
    c.apply("web.yaml", &parallel).ok();
    let new_uid = sts(&c)["metadata"]["uid"].clone();
    c.wait_for("the pods adopted", Duration::from_secs(10), || {
        let s = sts(&c);
        let pods = set_pods(&c);
        let adopted = pods.values().all(|p| p["metadata"]["ownerReferences"][0]["uid"] == new_uid);
        (adopted && s["status"]["readyReplicas"] == 3).then_some(())
    });
    let after: BTreeMap<String, String> = set_pods(&c).iter().map(|(n, p)| (n.clone(), uid(p))).collect();
    assert_eq!(after, before);
    assert_eq!(sts(&c)["status"]["updateRevision"], revision);

    // OnDelete: a new template replaces nothing until a pod is deleted; that one comes back new.
    // (The defaulted rollingUpdate is cleared by hand: a StatefulSet's updateStrategy has no
    // retainKeys, so apply keeps it and validation refuses it beside OnDelete, as in Kubernetes.)
    let on_delete = parallel.replace(
        "  podManagementPolicy: Parallel\n",
        "  podManagementPolicy: Parallel\n  updateStrategy: {type: OnDelete, rollingUpdate: null}\n",
    );
    c.apply("web.yaml", &on_delete.replace("image: nginx\n", "image: nginx:1.27\n")).ok();
    c.wait_for("the new revision seen", Duration::from_secs(10), || {
        let s = sts(&c);
        (s["status"]["observedGeneration"] == s["metadata"]["generation"] && s["status"]["updateRevision"] != revision).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let after: BTreeMap<String, String> = set_pods(&c).iter().map(|(n, p)| (n.clone(), uid(p))).collect();
    assert_eq!(after, before, "OnDelete replaces nothing by itself");
    c.emu(&["delete", "pod", "web-0"]).ok();
    let web0 = c.wait_for("web-0 back", Duration::from_secs(30), || {
        set_pods(&c).remove("web-0").filter(|p| uid(p) != before["web-0"] && is_ready(p) && live(p))
    });
    assert_eq!(web0["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(set_pods(&c)["web-1"]["spec"]["containers"][0]["image"], "nginx");
    let s = sts(&c);
    assert_eq!((&s["status"]["currentReplicas"], &s["status"]["updatedReplicas"]), (&2.into(), &1.into()), "{s}");

    // Deleted, the set takes its pods and revisions with it (the garbage collector).
    c.emu(&["delete", "statefulset", "web"]).ok();
    c.wait_for("the pods and revisions gone", Duration::from_secs(30), || {
        let revisions = c.emu(&["get", "controllerrevisions", "-o", "name"]).ok().stdout;
        (set_pods(&c).is_empty() && revisions.trim().is_empty()).then_some(())
    });
    let claims = manifest("nginx", "").replace("web", "db").replace("app: nginx", "app: db")
        + "  volumeClaimTemplates:\n  - metadata: {name: www}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}\n";
    let refused = c.apply("db.yaml", &claims);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(
            "The StatefulSet \"db\" is invalid: spec.volumeClaimTemplates: Forbidden: emu does not support PersistentVolumeClaims"
        ),
        "{}",
        refused.stderr
    );
}

/// `ARGS` print the same with emu and with kubectl: byte for byte (tried again when an age may
/// have ticked between the two), and cell for cell with ages aside.
fn same_as_kubectl(c: &Cluster, dir: &std::path::Path, args: &[&str]) {
    let mut last = None;
    for _ in 0..3 {
        let theirs = kubectl(dir, LIMIT, args);
        let ours = c.emu(args);
        assert_eq!(theirs.code, 0, "kubectl {args:?}: {}", theirs.stderr);
        if (ours.code, &ours.stdout) == (theirs.code, &theirs.stdout) {
            println!("kubectl {}:\n{}", args.join(" "), theirs.stdout);
            return;
        }
        last = Some((ours, theirs));
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ours, theirs) = last.unwrap();
    assert_eq!(
        (ours.code, table_cells(&ours.stdout)),
        (theirs.code, table_cells(&theirs.stdout)),
        "{args:?}\nemu:\n{}\nkubectl:\n{}",
        ours.stdout,
        theirs.stdout
    );
    assert_eq!(ours.stdout, theirs.stdout, "{args:?}: the same cells, laid out differently");
}
