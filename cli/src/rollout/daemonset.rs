//! `emu rollout status|history|undo|restart daemonset/NAME`, as kubectl's do them: status reads
//! the counts the DaemonSet controller writes (kubectl's `DaemonSetStatusViewer`), history lists
//! the DaemonSet's ControllerRevisions, undo copies a revision's template back client-side and
//! restart stamps the template with `kubectl.kubernetes.io/restartedAt`.

use super::{parse_timeout, replace, Rollout};
use crate::context::Ctx;
use anyhow::bail;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The DaemonSet a `rollout` target names, if it names one.
fn daemon_set_name(target: &[String]) -> Option<String> {
    let (kind, name) = match target {
        [one] => one.split_once('/')?,
        [k, n] => (k.as_str(), n.as_str()),
        _ => return None,
    };
    matches!(kind, "daemonset" | "daemonsets" | "ds" | "daemonset.apps" | "daemonsets.apps").then(|| name.to_string())
}

/// kubectl's `DaemonSetStatusViewer.Status`: the line to print, and whether the rollout is done.
pub fn status_line(ds: &Value) -> Result<(String, bool), String> {
    let name = ds["metadata"]["name"].as_str().unwrap_or_default();
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &ds["status"];
    if ds["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    if int(&ds["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Ok(("Waiting for daemon set spec update to be observed...".into(), false));
    }
    let (desired, updated, available) =
        (int(&status["desiredNumberScheduled"]), int(&status["updatedNumberScheduled"]), int(&status["numberAvailable"]));
    if updated < desired {
        return Ok((
            format!("Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."),
            false,
        ));
    }
    if available < desired {
        return Ok((
            format!("Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."),
            false,
        ));
    }
    Ok((format!("daemon set {name:?} successfully rolled out"), true))
}

/// The DaemonSet's ControllerRevisions by revision.
fn revisions(ctx: &Ctx, ns: &str, ds: &Value) -> anyhow::Result<Vec<(i64, Value)>> {
    let mut client = ctx.client.clone();
    let uid = ds["metadata"]["uid"].clone();
    let all = ctx.block_on(crate::verbs::list(&mut client, "ControllerRevision", ns, ""))?;
    let mut owned: Vec<(i64, Value)> = all
        .into_iter()
        .filter(|r| r["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid && o["controller"] == true))
        .map(|r| (r["revision"].as_i64().unwrap_or(0), r))
        .collect();
    owned.sort_by_key(|(r, _)| *r);
    Ok(owned)
}

/// A revision's template (its data is the patch that puts it back).
fn template_of(revision: &Value) -> Value {
    let mut template = revision["data"]["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    template
}

/// Runs `command` when its target is a DaemonSet; None when it is not one.
pub(super) fn rollout(ctx: &Ctx, ns: &str, command: &Rollout) -> anyhow::Result<Option<i32>> {
    let target = match command {
        Rollout::Status { target, .. }
        | Rollout::History { target, .. }
        | Rollout::Undo { target, .. }
        | Rollout::Restart { target }
        | Rollout::Pause { target }
        | Rollout::Resume { target } => target,
    };
    let Some(name) = daemon_set_name(target) else { return Ok(None) };
    let get = || {
        let mut client = ctx.client.clone();
        ctx.block_on(crate::verbs::get_one(&mut client, "DaemonSet", ns, &name))
    };
    match command {
        Rollout::Status { watch, timeout, .. } => {
            let timeout = parse_timeout(timeout)?;
            let started = Instant::now();
            let mut last = String::new();
            loop {
                let (line, done) = status_line(&get()?).map_err(anyhow::Error::msg)?;
                if line != last {
                    println!("{line}");
                    last = line;
                }
                if done || !watch {
                    return Ok(Some(0));
                }
                if !timeout.is_zero() && started.elapsed() >= timeout {
                    bail!("timed out waiting for the condition");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Rollout::History { revision, .. } => {
            let revs = revisions(ctx, ns, &get()?)?;
            if *revision > 0 {
                let (_, r) =
                    revs.iter().find(|(r, _)| r == revision).ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
                print!("daemonset.apps/{name} with revision #{revision}\n{}\n", emu_kubectl::pod_template_text(&template_of(r)));
                return Ok(Some(0));
            }
            let rows: Vec<(String, String)> = revs
                .iter()
                .map(|(r, cr)| {
                    (r.to_string(), emu_api::object::annotation(cr, "kubernetes.io/change-cause").unwrap_or("<none>").to_string())
                })
                .collect();
            let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0).max("REVISION".len()) + 2;
            println!("daemonset.apps/{name} ");
            println!("{:width$}CHANGE-CAUSE", "REVISION");
            for (r, cause) in rows {
                println!("{r:width$}{cause}");
            }
            println!();
            Ok(Some(0))
        }
        Rollout::Undo { to_revision, .. } => {
            let mut ds = get()?;
            let revs = revisions(ctx, ns, &ds)?;
            let chosen = if *to_revision == 0 {
                match revs.len() {
                    0 | 1 => bail!("no rollout history found for daemonset {name:?}"),
                    n => &revs[n - 2],
                }
            } else {
                match revs.iter().find(|(r, _)| r == to_revision) {
                    Some(r) => r,
                    None => bail!("unable to find specified revision {to_revision} in history"),
                }
            };
            let template = template_of(&chosen.1);
            if ds["spec"]["template"] == template {
                println!("daemonset.apps/{name} skipped rollback (current template already matches revision {})", chosen.0);
                return Ok(Some(0));
            }
            ds["spec"]["template"] = template;
            replace(ctx, &ds)?;
            println!("daemonset.apps/{name} rolled back");
            Ok(Some(0))
        }
        Rollout::Restart { .. } => {
            let mut ds = get()?;
            let annotations = &mut ds["spec"]["template"]["metadata"]["annotations"];
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations["kubectl.kubernetes.io/restartedAt"] = json!(emu_api::time::rfc3339(emu_api::time::now()));
            replace(ctx, &ds)?;
            println!("daemonset.apps/{name} restarted");
            Ok(Some(0))
        }
        // kubectl's objectpauser and objectresumer know Deployments only.
        Rollout::Pause { .. } => bail!("daemonsets.apps {name:?} pausing is not supported"),
        Rollout::Resume { .. } => bail!("daemonsets.apps {name:?} resuming is not supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "agent", "generation": generation}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}, "status": status})
    }

    #[test]
    fn status_lines_are_kubectls() {
        let s = |v: Value| status_line(&v).unwrap().0;
        assert_eq!(s(ds(2, json!({"observedGeneration": 1}))), "Waiting for daemon set spec update to be observed...");
        assert_eq!(
            s(ds(2, json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1}))),
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated..."
        );
        assert_eq!(
            s(ds(2, json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}))),
            "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available..."
        );
        let done = ds(2, json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}));
        assert_eq!(status_line(&done).unwrap(), ("daemon set \"agent\" successfully rolled out".into(), true));
        let mut on_delete = done;
        on_delete["spec"]["updateStrategy"]["type"] = json!("OnDelete");
        assert_eq!(status_line(&on_delete).unwrap_err(), "rollout status is only available for RollingUpdate strategy type");
        assert_eq!(daemon_set_name(&["ds/agent".into()]), Some("agent".into()));
        assert_eq!(daemon_set_name(&["daemonset".into(), "agent".into()]), Some("agent".into()));
        assert_eq!(daemon_set_name(&["deployment/agent".into()]), None);
    }
}
