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
