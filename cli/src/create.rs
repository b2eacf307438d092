//! `emu create deployment`, `service TYPE`, `job` and `cronjob`: kubectl's generators
//! ([`emu_kubectl::generate`]) and its result lines.

use crate::Globals;
use clap::Args;
use emu_kubectl::generate::{self, ServiceType};

#[derive(Args, Debug)]
pub struct DeploymentArgs {
    /// The Deployment's name (also its label and selector `app=NAME`).
    pub name: String,
    /// The image of a container; several --image make several containers.
    #[arg(long, required = true)]
    pub image: Vec<String>,
    /// Number of replicas.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub replicas: i64,
    /// The containerPort the first container exposes.
    #[arg(long)]
    pub port: Option<i64>,
}

pub fn deployment(a: DeploymentArgs, g: &Globals) -> anyhow::Result<i32> {
    crate::verbs::create_object(generate::deployment(&a.name, &a.image, a.replicas, a.port), g)
}

#[derive(clap::Subcommand, Debug)]
pub enum ServiceKind {
    /// A ClusterIP Service (`--clusterip=None`: headless).
    Clusterip(ServiceArgs),
    /// A NodePort Service.
    Nodeport(ServiceArgs),
    /// A LoadBalancer Service.
    Loadbalancer(ServiceArgs),
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// The Service's name (also its label and selector `app=NAME`).
    pub name: String,
    /// `PORT[:TARGETPORT]`, repeated or comma-separated.
    #[arg(long)]
    pub tcp: Vec<String>,
    /// The node port (nodeport only; default: one allocated).
    #[arg(long = "node-port")]
    pub node_port: Option<i64>,
    /// The ClusterIP to ask for, or None for a headless Service (clusterip only).
    #[arg(long)]
    pub clusterip: Option<String>,
}

pub fn service(kind: ServiceKind, g: &Globals) -> anyhow::Result<i32> {
    let (ty, a) = match kind {
        ServiceKind::Clusterip(a) => (ServiceType::ClusterIp, a),
        ServiceKind::Nodeport(a) => (ServiceType::NodePort, a),
        ServiceKind::Loadbalancer(a) => (ServiceType::LoadBalancer, a),
    };
    let svc = generate::service(ty, &a.name, &a.tcp, a.node_port, a.clusterip.as_deref()).map_err(anyhow::Error::msg)?;
    crate::verbs::create_object(svc, g)
}

#[derive(Args, Debug)]
pub struct JobArgs {
    /// The Job's name (also its container's).
    pub name: String,
    /// The container's image.
    #[arg(long)]
    pub image: Option<String>,
    /// `cronjob/NAME`: a Job from the CronJob's job template, as the CronJob would start it.
    #[arg(long)]
    pub from: Option<String>,
    /// The container's command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn job(a: JobArgs, g: &Globals) -> anyhow::Result<i32> {
    match (&a.image, &a.from) {
        (Some(image), None) => crate::verbs::create_object(generate::job(&a.name, image, &a.command), g),
        (None, Some(from)) => {
            if !a.command.is_empty() {
                anyhow::bail!("cannot specify --from and command");
            }
            let cj_name = match from.split_once('/') {
                Some(("cronjob" | "cronjobs" | "cj" | "cronjob.batch" | "cronjobs.batch", n)) if !n.is_empty() => n,
                _ => anyhow::bail!("from must be an existing cronjob: {from}"),
            };
            let ctx = crate::context::Ctx::open(g)?;
            let mut client = ctx.client.clone();
            let ns = g.namespace_or_default();
            let cj = ctx.block_on(crate::verbs::get_one(&mut client, "CronJob", &ns, cj_name))?;
            crate::verbs::create_object(generate::job_from_cronjob(&a.name, &cj), g)
        }
        _ => anyhow::bail!("either --image or --from must be specified"),
    }
}

#[derive(Args, Debug)]
pub struct CronJobArgs {
    /// The CronJob's name (also its job template's and its container's).
    pub name: String,
    /// The container's image.
    #[arg(long, required = true)]
    pub image: String,
    /// When to run, in cron's five fields (`*/1 * * * *`) or `@hourly` and the like.
    #[arg(long, required = true)]
    pub schedule: String,
    /// The pods' restartPolicy: OnFailure (default) or Never.
    #[arg(long)]
    pub restart: Option<String>,
    /// The container's command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn cronjob(a: CronJobArgs, g: &Globals) -> anyhow::Result<i32> {
    crate::verbs::create_object(generate::cronjob(&a.name, &a.image, &a.schedule, a.restart.as_deref(), &a.command), g)
}

#[derive(Args, Debug)]
pub struct IngressArgs {
    /// The Ingress's name.
    pub name: String,
    /// The IngressClass (`spec.ingressClassName`).
    #[arg(long)]
    pub class: Option<String>,
    /// `host/path=service:port[,tls[=secret]]`, repeated; a path ending in `*` is a Prefix, else Exact.
    #[arg(long)]
    pub rule: Vec<String>,
    /// `service:port`: the backend of requests no rule matches.
    #[arg(long = "default-backend")]
    pub default_backend: Option<String>,
    /// `KEY=VALUE` annotations, repeated.
    #[arg(long)]
    pub annotation: Vec<String>,
}

pub fn ingress(a: IngressArgs, g: &Globals) -> anyhow::Result<i32> {
    let obj = ingress_object(&a).map_err(anyhow::Error::msg)?;
    crate::verbs::create_object(obj, g)
}

/// A backend from `service:port` (a number is `port.number`, else `port.name`).
fn ingress_backend(svc: &str, port: &str) -> serde_json::Value {
    let port = match port.parse::<i64>() {
        Ok(n) => serde_json::json!({"number": n}),
        Err(_) => serde_json::json!({"name": port}),
    };
    serde_json::json!({"service": {"name": svc, "port": port}})
}

fn is_word(s: &str, extra: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || extra.contains(c))
}

/// kubectl's `create ingress` generator (`CreateIngressOptions`): rules grouped by host in the
/// order given, a TLS entry per host, with kubectl's refusals.
pub fn ingress_object(a: &IngressArgs) -> Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    if a.default_backend.is_none() && a.rule.is_empty() {
        return Err("not enough information provided: every ingress has to either specify a default-backend (which catches all traffic) or a list of rules (which catch specific paths)".into());
    }
    let mut rules: Vec<(String, Vec<Value>)> = Vec::new();
    let mut tls: Vec<(String, Vec<String>)> = Vec::new();
    let mut tls_hosts: Vec<&str> = Vec::new();
    for rule in &a.rule {
        let invalid = || format!("rule {rule} is invalid and should be in format host/path=svcname:svcport[,tls[=secret]]");
        let (main, tls_part) = match rule.split_once(",tls") {
            Some((m, t)) => (m, Some(t.strip_prefix('=').unwrap_or(t))),
            None => (rule.as_str(), None),
        };
        let (host_path, backend) = main.rsplit_once('=').ok_or_else(invalid)?;
        let slash = host_path.find('/').ok_or_else(invalid)?;
        let (host, path) = host_path.split_at(slash);
        let (svc, port) = backend.split_once(':').ok_or_else(invalid)?;
        if !(host.is_empty() || is_word(host, "*-.")) || !is_word(svc, "-") || !is_word(port, "-") {
            return Err(invalid());
        }
        if let Some(secret) = tls_part {
            if !secret.is_empty() && !is_word(secret, "-") {
                return Err(invalid());
            }
            // One entry per host, with the secret of its first tls rule (kubectl's buildTLSRules).
            if !tls_hosts.contains(&host) {
                tls_hosts.push(host);
                tls.push((secret.to_string(), (!host.is_empty()).then(|| host.to_string()).into_iter().collect()));
            }
        }
        let (path, path_type) = match path.strip_suffix('*') {
            Some(p) => (p, "Prefix"),
            None => (path, "Exact"),
        };
        let entry = json!({"path": path, "pathType": path_type, "backend": ingress_backend(svc, port)});
        match rules.iter_mut().find(|(h, _)| h == host) {
            Some((_, paths)) => paths.push(entry),
            None => rules.push((host.to_string(), vec![entry])),
        }
    }
    let mut spec = serde_json::Map::new();
    if let Some(class) = &a.class {
        spec.insert("ingressClassName".into(), json!(class));
    }
    if let Some(d) = &a.default_backend {
        let (svc, port) =
            d.split_once(':').ok_or_else(|| format!("default-backend {d} is invalid and should be in format svcname:svcport"))?;
        spec.insert("defaultBackend".into(), ingress_backend(svc, port));
    }
    if !rules.is_empty() {
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|(host, paths)| {
                let mut r = json!({"http": {"paths": paths}});
                if !host.is_empty() {
                    r["host"] = json!(host);
                }
                r
            })
            .collect();
        spec.insert("rules".into(), json!(rules));
    }
    if !tls.is_empty() {
        let tls: Vec<Value> = tls
            .into_iter()
            .map(|(secret, hosts)| {
                let mut t = json!({});
                if !hosts.is_empty() {
                    t["hosts"] = json!(hosts);
                }
                if !secret.is_empty() {
                    t["secretName"] = json!(secret);
                }
                t
            })
            .collect();
        spec.insert("tls".into(), json!(tls));
    }
    let mut annotations = serde_json::Map::new();
    for kv in &a.annotation {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("annotation {kv} is invalid and should be in format key=[value]"))?;
        annotations.insert(k.into(), json!(v));
    }
    let mut meta = json!({"name": a.name});
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }
    Ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(rules: &[&str], class: Option<&str>, default: Option<&str>) -> IngressArgs {
        IngressArgs {
            name: "simple".into(),
            class: class.map(String::from),
            rule: rules.iter().map(|r| r.to_string()).collect(),
            default_backend: default.map(String::from),
            annotation: vec![],
        }
    }

    #[test]
    fn create_ingress_as_kubectl_generates_it() {
        let obj = ingress_object(&args(
            &["foo.com/bar*=svc1:8080,tls=my-cert", "foo.com/exact=svc2:http", "/any=svc1:80,tls"],
            Some("nginx"),
            None,
        ))
        .unwrap();
        assert_eq!(
            obj["spec"],
            json!({"ingressClassName": "nginx",
                   "rules": [{"host": "foo.com", "http": {"paths": [
                                {"path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}},
                                {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "svc2", "port": {"name": "http"}}}}]}},
                             {"http": {"paths": [{"path": "/any", "pathType": "Exact", "backend": {"service": {"name": "svc1", "port": {"number": 80}}}}]}}],
                   "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}, {}]})
        );
        let only_default = ingress_object(&args(&[], None, Some("web:80"))).unwrap();
        assert_eq!(only_default["spec"], json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}));
        assert_eq!(
            ingress_object(&args(&["foo.com=svc:80"], None, None)).unwrap_err(),
            "rule foo.com=svc:80 is invalid and should be in format host/path=svcname:svcport[,tls[=secret]]"
        );
        assert!(ingress_object(&args(&[], None, None)).unwrap_err().starts_with("not enough information provided"));
    }
}
