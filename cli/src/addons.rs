//! `emu addons list|enable|disable NAME`: minikube's commands for the cluster's optional
//! add-ons. One so far, `ingress` (ingress-nginx's controller, see `emu_logic::ingress::
//! addon_objects`). Whether an add-on is enabled is read from the cluster (its Deployment
//! exists), not from a file of the CLI's: a cluster enabled with kubectl shows as enabled too.

use crate::context::{api_error, Ctx};
use crate::Globals;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_logic::ingress;
use emu_proto::{ApplyRequest, DeleteRequest, Object, ObjectRef};
use emu_scenario::scenario::{addon_names, ADDONS};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct AddonsArgs {
    #[command(subcommand)]
    command: AddonsCommand,
}

#[derive(Subcommand, Debug)]
enum AddonsCommand {
    /// List the add-ons and whether each is enabled.
    List,
    /// Enable an add-on: `emu addons enable ingress`.
    Enable {
        /// The add-on (`emu addons list` lists them).
        name: String,
    },
    /// Disable an add-on (its objects are deleted).
    Disable {
        /// The add-on (`emu addons list` lists them).
        name: String,
    },
}

fn known(name: &str) -> anyhow::Result<()> {
    if !ADDONS.iter().any(|(n, _)| *n == name) {
        bail!("Exiting due to MK_ADDON_ENABLE: run callbacks: {name} is not a valid addon (known: {})", addon_names());
    }
    Ok(())
}

/// The objects `emu addons enable NAME` applies (also a scenario's `addons:` at `emu up`).
pub(crate) fn objects(name: &str) -> anyhow::Result<Vec<Value>> {
    known(name)?;
    Ok(ingress::addon_objects())
}

fn enabled(ctx: &Ctx) -> anyhow::Result<bool> {
    let mut client = ctx.client.clone();
    let r = ObjectRef { kind: "Deployment".into(), namespace: ingress::ADDON_NAMESPACE.into(), name: "ingress-nginx-controller".into() };
    match ctx.block_on(client.get(r)) {
        Ok(_) => Ok(true),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
        Err(s) => Err(api_error(s)),
    }
}

pub fn addons(a: AddonsArgs, g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    match a.command {
        AddonsCommand::List => {
            let on = enabled(&ctx)?;
            println!("{:<12} {:<10} DESCRIPTION", "ADDON NAME", "STATUS");
            for (name, what) in ADDONS {
                println!("{:<12} {:<10} {what}", name, if on { "enabled" } else { "disabled" });
            }
        }
        AddonsCommand::Enable { name } => {
            let objects = objects(&name)?.iter().map(|v| Object { json: v.to_string() }).collect();
            ctx.block_on(client.apply(ApplyRequest { objects, create_only: false, dry_run: false })).map_err(api_error)?;
            println!("🌟  The '{name}' addon is enabled");
        }
        AddonsCommand::Disable { name } => {
            known(&name)?;
            let namespace = ObjectRef { kind: "Namespace".into(), namespace: String::new(), name: ingress::ADDON_NAMESPACE.into() };
            let refs = std::iter::once(namespace).chain(ingress::ADDON_CLUSTER_OBJECTS.iter().map(|(kind, n)| ObjectRef {
                kind: kind.to_string(),
                namespace: String::new(),
                name: n.to_string(),
            }));
            for r in refs {
                let request = DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: -1 };
                match ctx.block_on(client.delete(request)) {
                    Ok(_) => {}
                    Err(s) if s.code() == tonic::Code::NotFound => {}
                    Err(s) => return Err(api_error(s)),
                }
            }
            println!("🌑  \"The '{name}' addon is disabled\"");
        }
    }
    Ok(0)
}
