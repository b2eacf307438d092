//! `emu version` and `emu api-resources`, as kubectl prints them.

use crate::context::{api_error, Ctx};
use crate::Globals;
use clap::Args;
use emu_kubectl::info;

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only the client's version (no need for a cluster).
    #[arg(long)]
    pub client: bool,
    /// Output format: yaml or json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

/// The Kubernetes version whose kubectl the CLI mirrors (and whose API the controller serves):
/// what `emu version` calls the client's. emu's own release is `emu --version`.
const CLIENT_VERSION: &str = emu_logic::cluster::KUBERNETES_VERSION;

pub fn version(a: VersionArgs, g: &Globals) -> anyhow::Result<i32> {
    let output = a.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "yaml" | "json") {
        anyhow::bail!("--output must be 'yaml' or 'json'");
    }
    let server = if a.client {
        None
    } else {
        match server_version(g) {
            Ok(v) => Some(v),
            Err(e) => {
                // kubectl prints what it knows, then why the server did not answer.
                if output.is_empty() {
                    print!("{}", info::version_text(CLIENT_VERSION, None));
                }
                return Err(e);
            }
        }
    };
    match output {
        "json" => print!("{}", info::version_json(CLIENT_VERSION, server.as_deref())),
        "yaml" => print!("{}", emu_kubectl::to_yaml(&info::version_document(CLIENT_VERSION, server.as_deref()))),
        _ => print!("{}", info::version_text(CLIENT_VERSION, server.as_deref())),
    }
    Ok(0)
}

/// The Kubernetes version the controller serves (`/version`'s gitVersion).
fn server_version(g: &Globals) -> anyhow::Result<String> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let resp = ctx.block_on(client.cluster_info(emu_proto::ClusterInfoRequest {})).map_err(api_error)?.into_inner();
    Ok(resp.version)
}

#[derive(Args, Debug)]
pub struct ApiResourcesArgs {
    /// Output format: wide (adds VERBS and CATEGORIES) or name.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Only namespaced resources (`--namespaced=false`: only cluster-scoped ones).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub namespaced: Option<bool>,
    /// Only the resources of this API group (`--api-group=` for the core group).
    #[arg(long = "api-group", value_name = "GROUP")]
    pub api_group: Option<String>,
    /// Leave out the header line.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Only the resources that support all these verbs (`--verbs=list,watch`).
    #[arg(long, value_delimiter = ',', value_name = "VERBS")]
    pub verbs: Vec<String>,
    /// Sort by `name` or `kind` (default: by group, then name).
    #[arg(long = "sort-by", value_name = "FIELD")]
    pub sort_by: Option<String>,
}

pub fn api_resources(a: ApiResourcesArgs, g: &Globals) -> anyhow::Result<i32> {
    let output = a.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "wide" | "name") {
        anyhow::bail!("--output {output} is not available");
    }
    if !matches!(a.sort_by.as_deref(), None | Some("name" | "kind")) {
        anyhow::bail!("--sort-by accepts only name or kind");
    }
    // The list is what the API server's discovery serves (both come from the same kinds); ask
    // the server anyway, so that a cluster that does not answer is an error here as in kubectl.
    server_version(g)?;
    let filter = info::ResourceFilter { namespaced: a.namespaced, api_group: a.api_group };
    let kinds = choose(info::served(&filter), &a.verbs, a.sort_by.as_deref());
    print!("{}", info::api_resources_of(&kinds, output, !a.no_headers));
    Ok(0)
}

/// The kinds `--verbs` keeps (those that support every verb named), in `--sort-by`'s order: a
/// stable sort of kubectl's default order by name or by kind.
fn choose(
    mut kinds: Vec<&'static emu_api::kinds::ResourceKind>,
    verbs: &[String],
    sort_by: Option<&str>,
) -> Vec<&'static emu_api::kinds::ResourceKind> {
    kinds.retain(|k| verbs.iter().all(|v| info::verbs(k).contains(&v.as_str())));
    match sort_by {
        Some("name") => kinds.sort_by_key(|k| k.plural),
        Some("kind") => kinds.sort_by_key(|k| k.kind),
        _ => {}
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_keep_and_sort_by_orders_the_kinds() {
        let all = info::served(&info::ResourceFilter::default());
        let names = |kinds: &[&emu_api::kinds::ResourceKind]| kinds.iter().map(|k| k.plural).collect::<Vec<_>>();
        let by_name = names(&choose(all.clone(), &[], Some("name")));
        assert!(by_name.windows(2).all(|w| w[0] <= w[1]), "{by_name:?}");
        let by_kind = choose(all.clone(), &[], Some("kind"));
        assert!(by_kind.windows(2).all(|w| w[0].kind <= w[1].kind));
        // Namespaces cannot be deleted as a collection.
        let collections = names(&choose(all.clone(), &["deletecollection".into(), "list".into()], None));
        assert!(!collections.contains(&"namespaces") && collections.contains(&"pods"));
        assert!(choose(all, &["bogus".into()], None).is_empty());
    }
}
