//! emu: Kubernetes service networking on one Linux machine. Cluster lifecycle (`up`, `down`,
//! `status`) and kubectl's verbs with kubectl's flags and output formats.

mod addons;
mod context;
mod create;
mod edit;
mod explain;
mod fault;
mod info;
mod ingress_explain;
mod install;
mod join;
mod kubeconfig;
mod labels;
mod lifecycle;
mod portforward;
mod remote;
mod rollout;
mod set;
mod testrun;
mod tls;
mod token;
mod verbs;
mod wait;
mod warnings;
mod watch;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "emu",
    version,
    about = "Kubernetes service networking, emulated on one Linux machine with network namespaces.",
    after_help = "Start with `sudo emu up scenarios/nginx.yaml`, then `emu get pods -o wide`."
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// kubectl's global flags: accepted before the verb (`emu -n kube-system get pods`) as well as
/// after it, by every command.
#[derive(Args, Clone, Debug, Default)]
pub struct Globals {
    /// The cluster to act on (default: $EMU_CLUSTER, else the only running cluster; `emu up`
    /// creates "emu"). `--context` takes the same name, or `emu-NAME` as kubeconfig names it.
    #[arg(long, global = true, visible_alias = "context", value_name = "NAME")]
    pub cluster: Option<String>,
    /// The namespace of the objects the command names (default: default).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The controller's API, e.g. `unix:///run/emu/NAME/controller.sock` (default: $EMU_SERVER,
    /// else the socket of the cluster on this machine): emu then needs nothing else of the
    /// cluster's machine.
    #[arg(long, global = true, value_name = "ENDPOINT")]
    pub server: Option<String>,
}

impl Globals {
    /// Only `--cluster`/`--context`, or `$EMU_CLUSTER`; `emu-NAME` (a kubeconfig context's
    /// name) means NAME.
    pub fn cluster_name(&self) -> Option<String> {
        let given = self.cluster.clone().or_else(|| std::env::var("EMU_CLUSTER").ok().filter(|c| !c.is_empty()))?;
        Some(given.strip_prefix("emu-").map(str::to_string).unwrap_or(given))
    }

    /// `--server`, or `$EMU_SERVER`.
    pub fn server(&self) -> Option<String> {
        self.server.clone().or_else(|| std::env::var("EMU_SERVER").ok().filter(|s| !s.is_empty()))
    }

    /// The namespace flag, or `default`.
    pub fn namespace_or_default(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| "default".into())
    }

    /// The globals naming one cluster (for commands that act on a cluster they created).
    pub fn for_cluster(name: &str) -> Globals {
        Globals { cluster: Some(name.to_string()), namespace: None, server: None }
    }
}

/// `get`/`describe`/`delete` target flags as kubectl has them.
#[derive(Args, Clone, Debug, Default)]
pub struct Scope {
    /// List across all namespaces (a NAMESPACE column comes first).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector, e.g. `run=my-nginx` or `app in (a,b),tier!=db`.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a cluster (nodes, control plane, agents), apply a scenario's manifests and wait until every pod runs.
    Up {
        /// Scenario file (`nodes:` and `manifests:`); without it, an empty cluster.
        file: Option<PathBuf>,
        /// Number of nodes when no scenario names them (default 2).
        #[arg(long)]
        nodes: Option<usize>,
        /// Keep what was created when a step fails (for inspection).
        #[arg(long)]
        retain: bool,
        /// Seconds to wait for pods to be Running.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Emulated hosts (machines as namespaces on a LAN of their own, 192.0.2.0/24): the first
        /// runs the control plane, the others join it with `emu join`; the nodes are spread over them.
        #[arg(long, default_value_t = 1)]
        hosts: usize,
        /// This machine's address where other machines join (`emu token create
        /// --print-join-command` prints it): the control plane listens there, and the fabric
        /// is stretched to the machines that join by VXLAN from there.
        #[arg(long = "advertise-address")]
        advertise_address: Option<std::net::Ipv4Addr>,
    },
    /// Join this machine's nodes to a cluster whose control plane runs on another machine
    /// (the command `emu token create --print-join-command` prints there).
    Join(join::JoinArgs),
    /// Leave the cluster this machine joined: its nodes are drained (their pods replaced on
    /// other nodes) and removed, and everything `emu join` made here goes.
    Leave {
        /// Seconds to wait for the nodes' pods to stop.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Delete a cluster: every namespace, link, process and file it created.
    Down {
        /// Delete every emu cluster on this machine.
        #[arg(long)]
        all: bool,
    },
    /// List clusters and the health of their daemons.
    Status,
    /// Print the cluster's kubeconfig for kubectl (server on 127.0.0.1, cluster CA, an admin
    /// client certificate); `emu up` already merges it into your kubeconfig.
    Kubeconfig {
        /// Merge it into $KUBECONFIG (else ~/.kube/config of $SUDO_USER under sudo, else of
        /// $HOME) and make its context current, as `emu up` does, instead of printing it.
        #[arg(long)]
        merge: bool,
        /// Print a node's kubeconfig instead (kubelet's: user `system:node:NODE` in group
        /// `system:nodes`, which may do what the Node authorizer lets a node do).
        #[arg(long, value_name = "NODE", conflicts_with = "merge")]
        node: Option<String>,
    },
    /// Run scenarios' steps, each on a fresh cluster, and report every step (✓/✗, JUnit XML);
    /// `--cluster NAME` names the cluster (NAME1, NAME2, … with several files).
    Test(testrun::TestArgs),
    /// Restart a cluster's controller or a node's agent (pods keep running).
    Restart {
        /// `controller` or `agent`.
        what: String,
        /// Node, for `agent`.
        node: Option<String>,
    },
    /// Apply manifests (create or update).
    Apply(verbs::FileArgs),
    /// Create objects from manifests (fails if they exist).
    Create(verbs::CreateArgs),
    /// Display one or many resources.
    Get(verbs::GetArgs),
    /// Show details of a resource.
    Describe(verbs::DescribeArgs),
    /// Describe the fields of a resource type, from the API server's OpenAPI schemas:
    /// `emu explain deployment.spec.strategy`, `emu explain pods --recursive`.
    Explain(explain::ExplainArgs),
    /// Delete resources by file, by name or by label.
    Delete(verbs::DeleteArgs),
    /// Edit a resource in $KUBE_EDITOR, $EDITOR or vi, and save it back whole.
    Edit(edit::EditArgs),
    /// Update fields of a resource with a strategic merge, JSON merge or JSON patch.
    Patch(edit::PatchArgs),
    /// Set a new size for a Deployment or ReplicaSet.
    Scale(verbs::ScaleArgs),
    /// Manage a Deployment's rollout: status, history, undo, restart, pause, resume.
    Rollout(rollout::RolloutArgs),
    /// Change a field of objects: `emu set image deployment/web web=nginx:1.27`.
    Set(set::SetArgs),
    /// Expose a deployment, replicaset, pod or service as a new Service.
    Expose(verbs::ExposeArgs),
    /// Run a pod with one container.
    Run(verbs::RunArgs),
    /// Run a command in a container.
    Exec(verbs::ExecArgs),
    /// Attach to a container's own process (its output; its stdin with -i; its terminal with -t).
    Attach(verbs::AttachArgs),
    /// Print the logs of a container.
    Logs(verbs::LogsArgs),
    /// A shell or a command on a node (in the node's network namespace).
    Ssh(verbs::SshArgs),
    /// A shell or a command as the external client, in the outside world (where the nodes'
    /// ExternalIPs are).
    Outside(verbs::OutsideArgs),
    /// Network faults: partitions, delay, loss, … on the emulated links (`emu fault list`, `clear`).
    Fault(fault::FaultArgs),
    /// Stop or start a node (`emu node stop NODE`: its agent and pods frozen, links down).
    Node(fault::NodeArgs),
    /// Stop or start an emulated host (`emu host stop host-2`: its LAN link down, its nodes frozen).
    Host(fault::HostArgs),
    /// Forward local ports (on 127.0.0.1) to a pod, or to a pod of a Service or Deployment.
    PortForward(portforward::PortForwardArgs),
    /// Install this emu and every program it runs into PREFIX/bin, with its man pages and shell
    /// completions (what `scripts/up` and `scripts/install` do after building).
    Install(install::InstallArgs),
    /// Print a shell completion script: `source <(emu completion bash)` (or zsh, fish); `emu
    /// install` puts them where the shells look.
    Completion {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Bootstrap tokens, with which another machine joins the cluster (kubeadm's `token create`,
    /// `list`, `delete`): `emu token create --print-join-command`.
    Token(token::TokenArgs),
    /// Update the labels of objects: `KEY=VALUE` to set, `KEY-` to remove.
    Label(labels::LabelArgs),
    /// Update the annotations of objects: `KEY=VALUE` to set, `KEY-` to remove.
    Annotate(labels::LabelArgs),
    /// Wait until objects meet a condition: `--for=condition=Ready`, `--for=delete`,
    /// `--for=jsonpath={.status.phase}=Running`.
    Wait(wait::WaitArgs),
    /// Print the client's and the server's Kubernetes version.
    Version(info::VersionArgs),
    /// Print the resource types the API server serves.
    ApiResources(info::ApiResourcesArgs),
    /// The cluster's optional add-ons, as minikube's command: `emu addons enable ingress`.
    Addons(addons::AddonsArgs),
    /// What the ingress controller does with a request: `emu ingress explain http://kubia.example.com/foo`.
    Ingress(ingress_explain::IngressArgs),
    /// Generate files (no cluster needed).
    Gen {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand)]
enum Generate {
    /// A self-signed certificate and its key (PEM), the tutorial's `make keys` without go, make
    /// or openssl: `emu gen cert --cn my-nginx --key /tmp/nginx.key --cert /tmp/nginx.crt`.
    Cert {
        /// Common name; the certificate is valid for it as a DNS name too.
        #[arg(long)]
        cn: String,
        /// More DNS names or IP addresses the certificate is valid for.
        #[arg(long)]
        san: Vec<String>,
        /// Where to write the private key (mode 0600).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the certificate.
        #[arg(long)]
        cert: PathBuf,
    },
}

fn gen_cert(cn: &str, sans: &[String], key_path: &std::path::Path, cert_path: &std::path::Path) -> anyhow::Result<i32> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (cert, key) = tls::self_signed(cn, sans).map_err(anyhow::Error::msg)?;
    let write = |path: &std::path::Path, mode: u32, text: &str| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
        f.write_all(text.as_bytes())?;
        Ok(())
    };
    write(key_path, 0o600, &key).map_err(|e| anyhow::anyhow!("writing the key to {}: {e}", key_path.display()))?;
    write(cert_path, 0o644, &cert).map_err(|e| anyhow::anyhow!("writing the certificate to {}: {e}", cert_path.display()))?;
    println!("certificate {} and key {} written (CN {cn}, self-signed)", cert_path.display(), key_path.display());
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    let g = &cli.globals;
    let result = match cli.command {
        Command::Up { file, nodes, retain, timeout, hosts, advertise_address } => {
            lifecycle::up(file, nodes, (hosts, advertise_address), retain, timeout, g)
        }
        Command::Join(a) => join::join(a),
        Command::Leave { timeout } => join::leave(g.cluster_name(), timeout),
        Command::Down { all } => lifecycle::down(all, g),
        Command::Status => lifecycle::status(),
        Command::Kubeconfig { merge, node } => lifecycle::kubeconfig(merge, node.as_deref(), g),
        Command::Test(a) => testrun::test(a, g),
        Command::Restart { what, node } => lifecycle::restart(&what, node.as_deref(), g),
        Command::Apply(a) => verbs::apply(a, g, false),
        Command::Create(a) => verbs::create(a, g),
        Command::Get(a) => verbs::get(a, g),
        Command::Describe(a) => verbs::describe(a, g),
        Command::Explain(a) => explain::explain(a, g),
        Command::Addons(a) => addons::addons(a, g),
        Command::Ingress(a) => ingress_explain::ingress(a, g),
        Command::Delete(a) => verbs::delete(a, g),
        Command::Edit(a) => edit::edit(a, g),
        Command::Patch(a) => edit::patch(a, g),
        Command::Scale(a) => verbs::scale(a, g),
        Command::Rollout(a) => rollout::rollout(a, g),
        Command::Set(a) => set::set(a, g),
        Command::Expose(a) => verbs::expose(a, g),
        Command::Run(a) => verbs::run(a, g),
        Command::Exec(a) => verbs::exec(a, g),
        Command::Attach(a) => verbs::attach(a, g),
        Command::Logs(a) => verbs::logs(a, g),
        Command::Ssh(a) => verbs::ssh(a, g),
        Command::Outside(a) => verbs::outside(a, g),
        Command::PortForward(a) => portforward::port_forward(a, g),
        Command::Fault(a) => fault::fault(a, g),
        Command::Node(a) => fault::node(a, g),
        Command::Host(a) => fault::host(a, g),
        Command::Token(a) => token::token(a, g),
        Command::Gen { what: Generate::Cert { cn, san, key, cert } } => gen_cert(&cn, &san, &key, &cert),
        Command::Label(a) => labels::label(a, labels::Field::Labels, g),
        Command::Annotate(a) => labels::label(a, labels::Field::Annotations, g),
        Command::Wait(a) => wait::wait(a, g),
        Command::Version(a) => info::version(a, g),
        Command::ApiResources(a) => info::api_resources(a, g),
        Command::Install(a) => install::install(a),
        Command::Completion { shell } => install::completion(shell),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("{}", context::render_error(&e));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command, flag and argument says what it is for in `--help`, the man pages and the
    /// shell completions.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set() || path == "emu") {
                if matches!(a.get_id().as_str(), "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    let name = a.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| a.get_id().to_string().to_uppercase());
                    missing.push(format!("{path} {name}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "emu", &mut missing);
        assert!(missing.is_empty(), "{} without a help line:\n{}", missing.len(), missing.join("\n"));
    }
}
