//! `emu rollout status|history|undo|restart|pause|resume deployment/NAME`, as kubectl's
//! `rollout` commands do them: status reads the fields the Deployment controller writes
//! (kubectl's `DeploymentStatusViewer`), history lists the Deployment's ReplicaSets by their
//! `deployment.kubernetes.io/revision`, and the others change the Deployment's spec client-side
//! (undo copies a revision's pod template back, restart stamps the template with
//! `kubectl.kubernetes.io/restartedAt`, pause/resume set `spec.paused`).

use crate::context::{api_error, Ctx};
use crate::Globals;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_proto::{Object, ReplaceRequest};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const REVISION: &str = "deployment.kubernetes.io/revision";

mod daemonset;

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: Rollout,
}

#[derive(Subcommand, Debug)]
pub enum Rollout {
    /// Wait for the rollout to finish, printing its progress.
    Status {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Keep watching until the rollout ends (`--watch=false`: print the state once).
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this long (`30s`, `5m`; 0: wait for ever).
        #[arg(long, default_value = "0s")]
        timeout: String,
    },
    /// The Deployment's revisions, with their change-cause.
    History {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Print the pod template of this revision instead of the list.
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// Go back to the previous revision (or `--to-revision`).
    Undo {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// The revision to go back to (0: the one before the current).
        #[arg(long = "to-revision", default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every pod, by stamping the pod template with the time.
    Restart {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
    },
    /// Stop rolling out template changes.
    Pause {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
    },
    /// Roll out again after a pause.
    Resume {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
    },
}

/// The Deployment a `rollout` target names.
fn deployment_name(target: &[String]) -> anyhow::Result<String> {
    let (kind, name) = match target {
        [one] => match one.split_once('/') {
            Some((k, n)) => (k.to_string(), n.to_string()),
            None => bail!("you must provide one or more resources by argument or filename"),
        },
        [k, n] => (k.clone(), n.clone()),
        _ => bail!("rollout takes one resource: TYPE NAME or TYPE/NAME"),
    };
    if !matches!(kind.as_str(), "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps") {
        bail!("no status viewer has been implemented for {kind}: emu rolls out deployments only");
    }
    Ok(name)
}

/// The StatefulSet a `rollout` target names, if it names one.
fn statefulset_name(target: &[String]) -> Option<String> {
    let (kind, name) = match target {
        [one] => one.split_once('/')?,
        [k, n] => (k.as_str(), n.as_str()),
        _ => return None,
    };
    matches!(kind, "statefulset" | "statefulsets" | "sts" | "statefulset.apps" | "statefulsets.apps").then(|| name.to_string())
}

/// kubectl's `StatefulSetStatusViewer.Status`: the line to print, and whether the rollout is
/// done. With the defaulted `rollingUpdate` (partition 0) kubectl reports a "partitioned roll
/// out" whatever the partition: so does this.
pub fn statefulset_status_line(s: &Value) -> Result<(String, bool), String> {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let (spec, status) = (&s["spec"], &s["status"]);
    if spec["updateStrategy"]["type"] != "RollingUpdate" {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    if int(&status["observedGeneration"]) == 0 || int(&s["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Ok(("Waiting for statefulset spec update to be observed...".into(), false));
    }
    let replicas = spec["replicas"].as_i64();
    let (ready, updated) = (int(&status["readyReplicas"]), int(&status["updatedReplicas"]));
    if let Some(want) = replicas.filter(|&r| ready < r) {
        return Ok((format!("Waiting for {} pods to be ready...", want - ready), false));
    }
    if let Some(rolling) = spec["updateStrategy"]["rollingUpdate"].as_object() {
        if let (Some(want), Some(partition)) = (replicas, rolling.get("partition").and_then(Value::as_i64)) {
            if updated < want - partition {
                return Ok((
                    format!(
                        "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                        want - partition
                    ),
                    false,
                ));
            }
        }
        return Ok((format!("partitioned roll out complete: {updated} new pods have been updated..."), true));
    }
    let (current, update) = (status["currentRevision"].as_str().unwrap_or_default(), status["updateRevision"].as_str().unwrap_or_default());
    if update != current {
        return Ok((format!("waiting for statefulset rolling update to complete {updated} pods at revision {update}..."), false));
    }
    Ok((format!("statefulset rolling update complete {} pods at revision {current}...", int(&status["currentReplicas"])), true))
}

/// The StatefulSet and its ControllerRevisions by number.
fn statefulset_revisions(ctx: &Ctx, ns: &str, name: &str) -> anyhow::Result<(Value, Vec<(i64, Value)>)> {
    let mut client = ctx.client.clone();
    let sts = ctx.block_on(crate::verbs::get_one(&mut client, "StatefulSet", ns, name))?;
    let uid = &sts["metadata"]["uid"];
    let mut revs: Vec<(i64, Value)> = ctx
        .block_on(crate::verbs::list(&mut client, "ControllerRevision", ns, ""))?
        .into_iter()
        .filter(|r| r["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| &o["uid"] == uid && o["controller"] == true))
        .map(|r| (r["revision"].as_i64().unwrap_or(0), r))
        .collect();
    revs.sort_by_key(|(r, _)| *r);
    Ok((sts, revs))
}

/// `rollout undo statefulset/NAME [--to-revision=N]` (kubectl's `StatefulSetRollbacker`): the
/// revision's template put back (0: the one before the newest); the controller then rolls it
/// out as any template change.
fn statefulset_undo(ctx: &Ctx, ns: &str, name: &str, to_revision: i64) -> anyhow::Result<i32> {
    let (mut sts, revs) = statefulset_revisions(ctx, ns, name)?;
    let chosen = match to_revision {
        0 if revs.len() > 1 => Some(&revs[revs.len() - 2]),
        0 => None,
        n => revs.iter().find(|(r, _)| *r == n),
    };
    let Some((number, revision)) = chosen else { bail!("unable to find specified revision {to_revision} in history") };
    let template = emu_logic::statefulset::template_of(&revision["data"]);
    if sts["spec"]["template"] == template {
        println!("statefulset.apps/{name} skipped rollback (current template already matches revision {number})");
        return Ok(0);
    }
    sts["spec"]["template"] = template;
    replace(ctx, &sts)?;
    println!("statefulset.apps/{name} rolled back");
    Ok(0)
}

/// `rollout history statefulset/NAME`: the set's ControllerRevisions by number with their
/// change-cause (a revision carries the set's annotations as they were when it was made), or one
/// revision's pod template (`--revision`), as kubectl's `StatefulSetHistoryViewer` prints them.
fn statefulset_history(ctx: &Ctx, ns: &str, name: &str, revision: i64) -> anyhow::Result<i32> {
    let (_, revs) = statefulset_revisions(ctx, ns, name)?;
    if revision > 0 {
        let (_, r) = revs.iter().find(|(r, _)| *r == revision).ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
        let template = emu_logic::statefulset::template_of(&r["data"]);
        print!("statefulset.apps/{name} with revision #{revision}\n{}\n", emu_kubectl::pod_template_text(&template));
        return Ok(0);
    }
    if revs.is_empty() {
        println!("statefulset.apps/{name} \nNo rollout history found.");
        return Ok(0);
    }
    let rows: Vec<(String, &str)> = revs
        .iter()
        .map(|(r, cr)| (r.to_string(), emu_api::object::annotation(cr, "kubernetes.io/change-cause").unwrap_or("<none>")))
        .collect();
    let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0).max("REVISION".len()) + 2;
    println!("statefulset.apps/{name} ");
    println!("{:width$}CHANGE-CAUSE", "REVISION");
    for (r, cause) in rows {
        println!("{r:width$}{cause}");
    }
    println!();
    Ok(0)
}

/// kubectl's `DeploymentStatusViewer.Status`: the line to print, and whether the rollout is done.
pub fn status_line(d: &Value) -> Result<(String, bool), String> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &d["status"];
    if int(&d["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Ok(("Waiting for deployment spec update to be observed...".into(), false));
    }
    let progressing = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Progressing");
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(format!("deployment {name:?} exceeded its progress deadline"));
    }
    let (replicas, updated, available) = (int(&status["replicas"]), int(&status["updatedReplicas"]), int(&status["availableReplicas"]));
    if let Some(want) = d["spec"]["replicas"].as_i64() {
        if updated < want {
            return Ok((
                format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."),
                false,
            ));
        }
    }
    if replicas > updated {
        return Ok((
            format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", replicas - updated),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

/// kubectl's duration flags: `30s`, `5m`, `1h`, or a bare number of seconds.
fn parse_timeout(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| anyhow::anyhow!("invalid argument {s:?} for \"--timeout\" flag"))?;
    Ok(Duration::from_secs(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid argument {s:?} for \"--timeout\" flag"),
    }))
}

/// The Deployment's ReplicaSets by revision.
fn revisions(ctx: &Ctx, ns: &str, d: &Value) -> anyhow::Result<Vec<(i64, Value)>> {
    let mut client = ctx.client.clone();
    let uid = d["metadata"]["uid"].clone();
    let all = ctx.block_on(crate::verbs::list(&mut client, "ReplicaSet", ns, ""))?;
    let mut owned: Vec<(i64, Value)> = all
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid && o["controller"] == true))
        .filter_map(|rs| Some((emu_api::object::annotation(&rs, REVISION)?.parse().ok()?, rs)))
        .collect();
    owned.sort_by_key(|(r, _)| *r);
    Ok(owned)
}

/// A revision's pod template as `rollout history --revision=N` prints it: the ReplicaSet's
/// template, the ReplicaSet's change-cause among its annotations.
fn revision_template(rs: &Value) -> String {
    let mut template = rs["spec"]["template"].clone();
    if let Some(cause) = emu_api::object::annotation(rs, "kubernetes.io/change-cause").filter(|c| !c.is_empty()) {
        if !template["metadata"]["annotations"].is_object() {
            template["metadata"]["annotations"] = json!({});
        }
        template["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!(cause);
    }
    emu_kubectl::pod_template_text(&template)
}

/// Sends the changed Deployment back (the API refuses it if it changed since it was read).
fn replace(ctx: &Ctx, d: &Value) -> anyhow::Result<()> {
    let mut client = ctx.client.clone();
    ctx.block_on(client.replace(ReplaceRequest { objects: vec![Object { json: d.to_string() }] })).map_err(api_error)?;
    Ok(())
}

pub fn rollout(a: RolloutArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let ns = g.namespace_or_default();
    if let Some(code) = daemonset::rollout(&ctx, &ns, &a.command)? {
        return Ok(code);
    }
    let get = |name: &str| {
        let mut client = ctx.client.clone();
        ctx.block_on(crate::verbs::get_one(&mut client, "Deployment", &ns, name))
    };
    match a.command {
        Rollout::Status { target, watch, timeout } => {
            let statefulset = statefulset_name(&target);
            let name = match &statefulset {
                Some(name) => name.clone(),
                None => deployment_name(&target)?,
            };
            let timeout = parse_timeout(&timeout)?;
            let started = Instant::now();
            let mut last = String::new();
            loop {
                let (line, done) = match &statefulset {
                    Some(_) => {
                        let mut client = ctx.client.clone();
                        statefulset_status_line(&ctx.block_on(crate::verbs::get_one(&mut client, "StatefulSet", &ns, &name))?)
                    }
                    None => status_line(&get(&name)?),
                }
                .map_err(anyhow::Error::msg)?;
                if line != last {
                    println!("{line}");
                    last = line;
                }
                if done || !watch {
                    return Ok(0);
                }
                if !timeout.is_zero() && started.elapsed() >= timeout {
                    bail!("timed out waiting for the condition");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Rollout::History { target, revision } if statefulset_name(&target).is_some() => {
            statefulset_history(&ctx, &ns, &statefulset_name(&target).unwrap_or_default(), revision)
        }
        Rollout::History { target, revision } => {
            let name = deployment_name(&target)?;
            let d = get(&name)?;
            let revs = revisions(&ctx, &ns, &d)?;
            if revision > 0 {
                let (_, rs) =
                    revs.iter().find(|(r, _)| *r == revision).ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
                print!("deployment.apps/{name} with revision #{revision}\n{}\n", revision_template(rs));
                return Ok(0);
            }
            // kubectl's tabwriter: columns two spaces apart.
            let rows: Vec<(String, String)> = revs
                .iter()
                .map(|(r, rs)| {
                    (r.to_string(), emu_api::object::annotation(rs, "kubernetes.io/change-cause").unwrap_or("<none>").to_string())
                })
                .collect();
            let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0).max("REVISION".len()) + 2;
            println!("deployment.apps/{name} ");
            println!("{:width$}CHANGE-CAUSE", "REVISION");
            for (r, cause) in rows {
                println!("{r:width$}{cause}");
            }
            println!();
            Ok(0)
        }
        Rollout::Undo { target, to_revision } if statefulset_name(&target).is_some() => {
            statefulset_undo(&ctx, &ns, &statefulset_name(&target).unwrap_or_default(), to_revision)
        }
        Rollout::Undo { target, to_revision } => {
            let name = deployment_name(&target)?;
            let mut d = get(&name)?;
            if d["spec"]["paused"] == true {
                bail!("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again");
            }
            let revs = revisions(&ctx, &ns, &d)?;
            let chosen = if to_revision == 0 {
                // The previous revision: the highest but the current one.
                match revs.len() {
                    0 | 1 => bail!("no rollout history found for deployment {name:?}"),
                    n => &revs[n - 2],
                }
            } else {
                match revs.iter().find(|(r, _)| *r == to_revision) {
                    Some(r) => r,
                    None => bail!("unable to find specified revision {to_revision} in history"),
                }
            };
            let mut template = chosen.1["spec"]["template"].clone();
            if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
                labels.remove("pod-template-hash");
            }
            if d["spec"]["template"] == template {
                println!("deployment.apps/{name} skipped rollback (current template already matches revision {})", chosen.0);
                return Ok(0);
            }
            d["spec"]["template"] = template;
            replace(&ctx, &d)?;
            println!("deployment.apps/{name} rolled back");
            Ok(0)
        }
        Rollout::Restart { target } if statefulset_name(&target).is_some() => {
            let name = statefulset_name(&target).unwrap_or_default();
            let mut client = ctx.client.clone();
            let mut sts = ctx.block_on(crate::verbs::get_one(&mut client, "StatefulSet", &ns, &name))?;
            let annotations = &mut sts["spec"]["template"]["metadata"]["annotations"];
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations["kubectl.kubernetes.io/restartedAt"] = json!(emu_api::time::rfc3339(emu_api::time::now()));
            replace(&ctx, &sts)?;
            println!("statefulset.apps/{name} restarted");
            Ok(0)
        }
        Rollout::Restart { target } => {
            let name = deployment_name(&target)?;
            let mut d = get(&name)?;
            if d["spec"]["paused"] == true {
                bail!("deployments.apps {name:?} can't restart paused deployment (run rollout resume first)");
            }
            let annotations = &mut d["spec"]["template"]["metadata"]["annotations"];
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations["kubectl.kubernetes.io/restartedAt"] = json!(emu_api::time::rfc3339(emu_api::time::now()));
            replace(&ctx, &d)?;
            println!("deployment.apps/{name} restarted");
            Ok(0)
        }
        Rollout::Pause { target } => set_paused(&ctx, &deployment_name(&target)?, true, get),
        Rollout::Resume { target } => set_paused(&ctx, &deployment_name(&target)?, false, get),
    }
}

fn set_paused(ctx: &Ctx, name: &str, paused: bool, get: impl Fn(&str) -> anyhow::Result<Value>) -> anyhow::Result<i32> {
    let mut d = get(name)?;
    let now = d["spec"]["paused"] == true;
    match (paused, now) {
        (true, true) => bail!("deployments.apps {name:?} is already paused"),
        (false, false) => bail!("deployments.apps {name:?} is not paused"),
        _ => {}
    }
    if paused {
        d["spec"]["paused"] = json!(true);
    } else if let Some(spec) = d["spec"].as_object_mut() {
        spec.remove("paused");
    }
    replace(ctx, &d)?;
    println!("deployment.apps/{name} {}", if paused { "paused" } else { "resumed" });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "my-nginx", "generation": generation}, "spec": {"replicas": 4}, "status": status})
    }

    #[test]
    fn statefulset_status_lines_are_kubectls() {
        let sts = |generation: i64, strategy: Value, status: Value| json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status});
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
        let s = |v: Value| statefulset_status_line(&v).unwrap();
        assert_eq!(
            s(sts(2, partitioned.clone(), json!({"observedGeneration": 1}))).0,
            "Waiting for statefulset spec update to be observed..."
        );
        assert_eq!(
            s(sts(1, partitioned.clone(), json!({"observedGeneration": 1, "readyReplicas": 1}))).0,
            "Waiting for 2 pods to be ready..."
        );
        assert_eq!(
            s(sts(1, partitioned.clone(), json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1}))).0,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
        );
        assert_eq!(
            s(sts(1, partitioned, json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 2}))),
            ("partitioned roll out complete: 2 new pods have been updated...".to_string(), true)
        );
        let plain = json!({"type": "RollingUpdate"});
        let rolling = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1, "currentReplicas": 2,
            "currentRevision": "web-a", "updateRevision": "web-b"});
        assert_eq!(s(sts(1, plain.clone(), rolling)).0, "waiting for statefulset rolling update to complete 1 pods at revision web-b...");
        let done = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 3,
            "currentRevision": "web-b", "updateRevision": "web-b"});
        assert_eq!(s(sts(1, plain, done)), ("statefulset rolling update complete 3 pods at revision web-b...".to_string(), true));
        assert_eq!(
            statefulset_status_line(&sts(1, json!({"type": "OnDelete"}), json!({}))).unwrap_err(),
            "rollout status is only available for RollingUpdate strategy type"
        );
        assert_eq!(statefulset_name(&["statefulset/web".into()]).as_deref(), Some("web"));
        assert_eq!(statefulset_name(&["sts".into(), "web".into()]).as_deref(), Some("web"));
        assert_eq!(statefulset_name(&["deployment/web".into()]), None);
    }

    #[test]
    fn status_lines_are_kubectls() {
        let s = |v: Value| status_line(&v).unwrap().0;
        assert_eq!(s(d(2, json!({"observedGeneration": 1}))), "Waiting for deployment spec update to be observed...");
        assert_eq!(
            s(d(2, json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 1}))),
            "Waiting for deployment \"my-nginx\" rollout to finish: 1 out of 4 new replicas have been updated..."
        );
        assert_eq!(
            s(d(2, json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 4}))),
            "Waiting for deployment \"my-nginx\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            s(d(2, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3}))),
            "Waiting for deployment \"my-nginx\" rollout to finish: 3 of 4 updated replicas are available..."
        );
        let done =
            status_line(&d(2, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}))).unwrap();
        assert_eq!(done, ("deployment \"my-nginx\" successfully rolled out".to_string(), true));
        let late = d(2, json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}));
        assert_eq!(status_line(&late).unwrap_err(), "deployment \"my-nginx\" exceeded its progress deadline");
        assert_eq!(deployment_name(&["deployment/web".into()]).unwrap(), "web");
        assert_eq!(deployment_name(&["deploy".into(), "web".into()]).unwrap(), "web");
        assert!(deployment_name(&["pod/web".into()]).is_err());
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn a_revision_prints_its_template_with_its_change_cause() {
        let rs = json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "set image"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "6885666c99"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
        let text = revision_template(&rs);
        assert!(text.starts_with("Pod Template:\n  Labels:\tapp=web\n\tpod-template-hash=6885666c99\n  Annotations:\tkubernetes.io/change-cause: set image\n"), "{text}");
        assert!(text.contains("   nginx:\n    Image:\tnginx:1.26\n"), "{text}");
    }
}
