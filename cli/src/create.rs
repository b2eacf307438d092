//! `emu create deployment` and `emu create service TYPE`: kubectl's generators
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
