//! emu: Kubernetes service networking on one Linux machine. Cluster lifecycle (`up`, `down`,
//! `status`) and kubectl's verbs with kubectl's flags and output formats.

mod context;
mod daemon;
mod edit;
mod fault;
mod lifecycle;
mod portforward;
mod testrun;
mod tls;
mod verbs;

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
    #[command(subcommand)]
    command: Command,
}

/// Flags every cluster command shares.
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterFlag {
    /// Cluster to act on (default: $EMU_CLUSTER, else the only running cluster).
    #[arg(long, global = true, env = "EMU_CLUSTER")]
    pub cluster: Option<String>,
}

/// `get`/`describe`/`delete` target flags as kubectl has them.
#[derive(Args, Clone, Debug, Default)]
pub struct Scope {
    /// Namespace (default: default).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector, e.g. `run=my-nginx`.
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
        #[command(flatten)]
        cluster: ClusterFlag,
    },
    /// Delete a cluster: every namespace, link, process and file it created.
    Down {
        /// Delete every emu cluster on this machine.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        cluster: ClusterFlag,
    },
    /// List clusters and the health of their daemons.
    Status,
    /// Run scenarios' steps, each on a fresh cluster, and report every step (✓/✗, JUnit XML).
    Test(testrun::TestArgs),
    /// Restart a cluster's controller or a node's agent (pods keep running).
    Restart {
        /// `controller` or `agent`.
        what: String,
        /// Node, for `agent`.
        node: Option<String>,
        #[command(flatten)]
        cluster: ClusterFlag,
    },
    /// Apply manifests (create or update).
    Apply(verbs::FileArgs),
    /// Create objects from manifests (fails if they exist).
    Create(verbs::CreateArgs),
    /// Display one or many resources.
    Get(verbs::GetArgs),
    /// Show details of a resource.
    Describe(verbs::DescribeArgs),
    /// Delete resources by file, by name or by label.
    Delete(verbs::DeleteArgs),
    /// Edit a resource in $KUBE_EDITOR, $EDITOR or vi, and save it back whole.
    Edit(edit::EditArgs),
    /// Update fields of a resource with a strategic merge, JSON merge or JSON patch.
    Patch(edit::PatchArgs),
    /// Set a new size for a Deployment or ReplicaSet.
    Scale(verbs::ScaleArgs),
    /// Expose a deployment, replicaset, pod or service as a new Service.
    Expose(verbs::ExposeArgs),
    /// Run a pod with one container.
    Run(verbs::RunArgs),
    /// Run a command in a container.
    Exec(verbs::ExecArgs),
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
    /// Forward local ports (on 127.0.0.1) to a pod, or to a pod of a Service or Deployment.
    PortForward(portforward::PortForwardArgs),
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
    let result = match cli.command {
        Command::Up { file, nodes, retain, timeout, cluster } => lifecycle::up(file, nodes, retain, timeout, cluster),
        Command::Down { all, cluster } => lifecycle::down(all, cluster),
        Command::Status => lifecycle::status(),
        Command::Test(a) => testrun::test(a),
        Command::Restart { what, node, cluster } => lifecycle::restart(&what, node.as_deref(), cluster),
        Command::Apply(a) => verbs::apply(a, false),
        Command::Create(a) => verbs::create(a),
        Command::Get(a) => verbs::get(a),
        Command::Describe(a) => verbs::describe(a),
        Command::Delete(a) => verbs::delete(a),
        Command::Edit(a) => edit::edit(a),
        Command::Patch(a) => edit::patch(a),
        Command::Scale(a) => verbs::scale(a),
        Command::Expose(a) => verbs::expose(a),
        Command::Run(a) => verbs::run(a),
        Command::Exec(a) => verbs::exec(a),
        Command::Logs(a) => verbs::logs(a),
        Command::Ssh(a) => verbs::ssh(a),
        Command::Outside(a) => verbs::outside(a),
        Command::PortForward(a) => portforward::port_forward(a),
        Command::Fault(a) => fault::fault(a),
        Command::Node(a) => fault::node(a),
        Command::Gen { what: Generate::Cert { cn, san, key, cert } } => gen_cert(&cn, &san, &key, &cert),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("{}", context::render_error(&e));
            std::process::exit(1);
        }
    }
}
