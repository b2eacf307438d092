//! `emu set image`: kubectl's `set image (-f FILE | TYPE NAME…) CONTAINER=IMAGE…`, on pods and
//! on the pod templates of workloads (a Deployment's change starts a rolling update). Each
//! object is read, its containers' images changed here (a pure function), and written back
//! whole with the resourceVersion read (started over if it changed meanwhile); an object
//! whose images are already those prints nothing, as kubectl's empty patch does.

use crate::context::{api_error, Ctx};
use crate::Globals;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_api::kinds::{self, ResourceKind};
use emu_api::object;
use serde_json::Value;
use std::path::PathBuf;

/// How often an update starts over when the object changed under it.
const ATTEMPTS: usize = 5;

#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(subcommand)]
    pub command: SetCommand,
}

#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Update the images of containers of pods or of workloads' pod templates.
    Image(ImageArgs),
}

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The objects (`TYPE NAME...` or `TYPE/NAME...`), then the changes: `CONTAINER=IMAGE`
    /// (`*=IMAGE`: every container).
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
    /// The objects a manifest file, directory or `-` (stdin) names, as they are in the cluster.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Every object of the type matching this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Output format: name (`deployment.apps/x`), yaml or json (the updated object), instead of
    /// `deployment.apps/x image updated`.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Update the objects of the -f files here and print them, without a cluster.
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub dry_run: crate::labels::DryRunArg,
}

/// `CONTAINER=IMAGE` pairs, in the order given.
pub type Images = Vec<(String, String)>;

/// kubectl's `GetResourcesAndPairs` and `ParsePairs` for images: the objects first, then
/// `NAME=IMAGE` pairs (in the order given; a name given twice keeps its last image).
pub fn split_args(args: &[String]) -> anyhow::Result<(Vec<String>, Images)> {
    let mut resources = Vec::new();
    let mut images: Images = Vec::new();
    for arg in args {
        // `=IMAGE` is no pair: kubectl takes it for an object.
        if !arg.contains('=') || arg.starts_with('=') {
            if !images.is_empty() {
                bail!("all resources must be specified before image changes: {arg}");
            }
            resources.push(arg.clone());
            continue;
        }
        match arg.split_once('=') {
            Some((name, image)) if !image.is_empty() => {
                images.retain(|(n, _)| n != name);
                images.push((name.to_string(), image.to_string()));
            }
            _ => bail!("invalid image format: {arg}"),
        }
    }
    Ok((resources, images))
}

/// kubectl's checks before it reads any object: its resource builder's (no object named), then
/// `Validate`'s errors together, one alone as itself, several as `[a, b]`.
pub fn validate(resources: &[String], files: usize, images: &[(String, String)], all: bool, selector: bool) -> anyhow::Result<()> {
    if resources.is_empty() && files == 0 {
        bail!(
            "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   \
             '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'"
        );
    }
    let mut errors = Vec::new();
    if all && selector {
        errors.push("cannot set --all and --selector at the same time");
    }
    if images.is_empty() {
        errors.push("at least one image update is required");
    } else if images.len() > 1 && images.iter().any(|(n, _)| n == "*") {
        errors.push("all containers are already specified by *, but saw more than one container_name=container_image pairs");
    }
    match errors.as_slice() {
        [] => Ok(()),
        [one] => bail!("{one}"),
        many => bail!("[{}]", many.join(", ")),
    }
}

/// The pod spec of `obj`: a Pod's own, or the pod template's of a workload.
fn pod_spec_mut<'a>(obj: &'a mut Value, kind: &str) -> Option<&'a mut Value> {
    let path: &[&str] = match kind {
        "Pod" => &["spec"],
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    };
    path.iter().try_fold(obj, |v, key| v.get_mut(*key))
}

/// What an image update did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    pub changed: bool,
    /// kubectl's error for each name no container has (the others are set all the same).
    pub missing: Vec<String>,
}

/// kubectl's image update of one object: each `NAME=IMAGE` sets the image of the init and
/// regular containers of that name (`*`: of all of them). What changed, or kubectl's reason
/// why the object cannot be updated at all.
pub fn set_images(obj: &mut Value, kind: &str, images: &[(String, String)]) -> Result<Updated, String> {
    let before = obj.clone();
    let type_name = kinds::by_kind(kind).map_or_else(|| format!("*{kind}"), |rk| format!("*{}.{kind}", rk.version));
    let spec = pod_spec_mut(obj, kind).ok_or_else(|| format!("the object is not a pod or does not have a pod template: {type_name}"))?;
    let mut missing = Vec::new();
    for (name, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if name == "*" || c["name"] == name.as_str() {
                    found = true;
                    c["image"] = Value::String(image.clone());
                }
            }
        }
        if !found {
            missing.push(format!("unable to find container named {name:?}"));
        }
    }
    Ok(Updated { changed: *obj != before, missing })
}

pub fn set(a: SetArgs, g: &Globals) -> anyhow::Result<i32> {
    match a.command {
        SetCommand::Image(i) => image(i, g),
    }
}

fn image(a: ImageArgs, g: &Globals) -> anyhow::Result<i32> {
    let (resources, images) = split_args(&a.args)?;
    validate(&resources, a.files.len(), &images, a.all, a.selector.is_some())?;
    let dry_run = a.dry_run.strategy()?;
    let output = a.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "name" | "yaml" | "json") {
        bail!("unable to match a printer suitable for the output format {output:?}, allowed formats are: json,name,yaml");
    }
    let mut printer = Printer { output, suffix: dry_run.suffix(), printed: 0 };
    if a.local {
        return local(&a.files, &images, &mut printer);
    }
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let mut targets: Vec<(&'static ResourceKind, String, String)> = Vec::new();
    for file in &a.files {
        for (_, docs) in crate::verbs::read_manifests(file)? {
            for d in docs {
                let rk = kinds::by_kind(object::kind(&d)).ok_or_else(|| anyhow::anyhow!("unknown kind {:?}", object::kind(&d)))?;
                let ns = match (rk.namespaced, object::namespace(&d)) {
                    (false, _) => String::new(),
                    (true, "") => g.namespace_or_default(),
                    (true, ns) => ns.to_string(),
                };
                targets.push((rk, ns, object::name(&d).to_string()));
            }
        }
    }
    if !resources.is_empty() {
        let groups = crate::verbs::parse_targets(&resources)?;
        let how = crate::verbs::Selection { selector: a.selector.as_deref(), all: a.all, all_namespaces: false, until_found: None };
        targets.extend(crate::verbs::select_targets(&ctx, &mut client, &groups, g, &how)?);
    }
    // As kubectl: an object that cannot be updated does not stop the others, nor does a
    // container missing in one; the failures are told at the end, a line each.
    let mut failures = Vec::new();
    for (rk, ns, name) in targets {
        for attempt in 1..=ATTEMPTS {
            let mut live = ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?;
            let updated = match set_images(&mut live, rk.kind, &images) {
                Ok(updated) => updated,
                Err(why) => {
                    failures.push(format!("error: {}/{name} {why}", rk.qualified_plural()));
                    break;
                }
            };
            failures.extend(updated.missing.iter().map(|m| format!("error: {m}")));
            if !updated.changed {
                break;
            }
            match dry_run.replace(&ctx, &mut client, &live) {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::Aborted && attempt < ATTEMPTS => continue,
                Err(s) => {
                    let e = crate::context::render_error(&api_error(s));
                    failures.push(format!("failed to patch image update to pod template: {e}"));
                    break;
                }
            }
            // The object as stored (its new resourceVersion), as the API server answers a patch.
            if matches!(output, "yaml" | "json") && dry_run == crate::labels::DryRun::None {
                live = ctx.block_on(crate::verbs::get_one(&mut client, rk.kind, &ns, &name))?;
            }
            printer.print(&live);
            break;
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// How each updated object is told: its result line, its name, or the object itself (YAML
/// documents separated by `---`, as kubectl's YAML printer separates them).
struct Printer<'a> {
    output: &'a str,
    suffix: &'static str,
    printed: usize,
}

impl Printer<'_> {
    fn print(&mut self, object: &Value) {
        let name = emu_kubectl::resource_name(object::kind(object), object::name(object));
        match self.output {
            "name" => println!("{name}"),
            "yaml" => print!("{}{}", if self.printed > 0 { "---\n" } else { "" }, emu_kubectl::to_yaml(object)),
            "json" => print!("{}", emu_kubectl::to_json(object)),
            _ => println!("{name} image updated{}", self.suffix),
        }
        self.printed += 1;
    }
}

/// `set image --local -f FILE`: the files' objects updated here and printed, none sent.
fn local(files: &[PathBuf], images: &[(String, String)], printer: &mut Printer) -> anyhow::Result<i32> {
    if files.is_empty() {
        bail!("you must specify resources by --filename when --local is set.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'");
    }
    let mut failures = Vec::new();
    for file in files {
        for (_, docs) in crate::verbs::read_manifests(file)? {
            for mut d in docs {
                let kind = object::kind(&d).to_string();
                match set_images(&mut d, &kind, images) {
                    Err(why) => {
                        let plural = kinds::by_kind(&kind).map_or_else(|| kind.to_lowercase(), |rk| rk.qualified_plural());
                        failures.push(format!("error: {plural}/{} {why}", object::name(&d)));
                    }
                    Ok(updated) => {
                        failures.extend(updated.missing.iter().map(|m| format!("error: {m}")));
                        if updated.changed {
                            printer.print(&d);
                        }
                    }
                }
            }
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments_split_into_objects_and_images_as_kubectl_splits_them() {
        let (r, i) = split_args(&strings(&["deployment/web", "web=nginx:1.27", "side=busybox"])).unwrap();
        assert_eq!(r, ["deployment/web"]);
        assert_eq!(i, [("web".to_string(), "nginx:1.27".to_string()), ("side".to_string(), "busybox".to_string())]);
        assert_eq!(
            split_args(&strings(&["web=nginx", "deployment/web"])).unwrap_err().to_string(),
            "all resources must be specified before image changes: deployment/web"
        );
        assert_eq!(split_args(&strings(&["d/w", "=nginx"])).unwrap().0, ["d/w", "=nginx"]);
        assert!(validate(&[], 0, &[], false, false).unwrap_err().to_string().starts_with("You must provide one or more resources"));
        assert_eq!(
            validate(&strings(&["pods"]), 0, &[], true, true).unwrap_err().to_string(),
            "[cannot set --all and --selector at the same time, at least one image update is required]"
        );
        let two = [("*".to_string(), "a".to_string()), ("x".to_string(), "b".to_string())];
        assert_eq!(
            validate(&strings(&["d/w"]), 0, &two, false, false).unwrap_err().to_string(),
            "all containers are already specified by *, but saw more than one container_name=container_image pairs"
        );
    }

    #[test]
    fn images_change_in_pods_and_pod_templates() {
        let template = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "web", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}}});
        let set = |obj: &Value, kind: &str, pairs: &[(&str, &str)]| {
            let mut o = obj.clone();
            let pairs: Vec<(String, String)> = pairs.iter().map(|(n, i)| (n.to_string(), i.to_string())).collect();
            set_images(&mut o, kind, &pairs).map(|u| (u.changed, u.missing, o))
        };
        let (changed, _, d) = set(&template, "Deployment", &[("web", "nginx:1.27")]).unwrap();
        assert!(changed);
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][1]["image"], "busybox");
        let (changed, _, _) = set(&template, "Deployment", &[("web", "nginx")]).unwrap();
        assert!(!changed, "the same image is no change");
        let (_, _, all) = set(&template, "ReplicaSet", &[("*", "perl")]).unwrap();
        let images: Vec<&str> = ["initContainers", "containers"]
            .iter()
            .flat_map(|l| all["spec"]["template"]["spec"][*l].as_array().unwrap().iter().map(|c| c["image"].as_str().unwrap()))
            .collect();
        assert_eq!(images, ["perl", "perl", "perl"]);
        // A missing container is told, and the others are set all the same.
        let (changed, missing, _) = set(&template, "Deployment", &[("x", "nginx"), ("web", "nginx:1.27")]).unwrap();
        assert_eq!((changed, missing), (true, vec!["unable to find container named \"x\"".to_string()]));
        let pod = json!({"spec": {"containers": [{"name": "p", "image": "busybox"}]}});
        assert_eq!(set(&pod, "Pod", &[("p", "busybox:1.37")]).unwrap().2["spec"]["containers"][0]["image"], "busybox:1.37");
        assert_eq!(
            set(&json!({"spec": {}}), "Service", &[("p", "x")]).unwrap_err(),
            "the object is not a pod or does not have a pod template: *v1.Service"
        );
    }
}
