//! The local provider: every node of the cluster on this machine. A node's machine is a network
//! namespace `emu-<cluster>-node-<name>` plugged into the fabric and the outside world by veths,
//! a cgroup `emu-<cluster>/node-<name>` holding its agent and pods, and a directory
//! `/run/emu/<cluster>/nodes/<name>`. Everything is named after the cluster, so
//! [`Local::delete_cluster`] finds it all, also after every emu process was killed.

use crate::daemon::{self, Spawn};
use crate::{programs, Daemon, Provider};
use anyhow::{bail, Context};
use emu_api::naming;
use emu_host::{cgroup, net};
use emu_logic::cluster::{ClusterConfig, NodeConfig, Paths, RUNTIME_ROOT};
use emu_logic::ipam;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A cluster whose nodes all run on this machine.
pub struct Local {
    name: String,
    paths: Paths,
    /// Held while `emu up` creates the cluster through this handle ([`Local::claim`]).
    claim: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Clusters with a runtime directory on this machine.
pub fn clusters() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(RUNTIME_ROOT)
        .map(|d| {
            d.flatten().filter(|e| e.path().join("cluster.json").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// [`clusters`], and those whose runtime directory is gone but whose namespaces are left.
pub fn all_clusters() -> anyhow::Result<Vec<String>> {
    let mut names = clusters();
    for ns in net::list_named_netns("emu-")? {
        if let Some(c) = ns.strip_prefix("emu-").and_then(|r| r.split('-').next()) {
            if !names.iter().any(|x| x == c) {
                names.push(c.to_string());
            }
        }
    }
    Ok(names)
}

/// Runs a netlink operation to its end on a runtime of its own (callers are synchronous: the
/// CLI, or the controller on a blocking thread).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f))
}

fn cidr(text: &str, what: &str) -> anyhow::Result<ipam::Ipv4Cidr> {
    text.parse().map_err(|e| anyhow::anyhow!("{what} {text:?}: {e}"))
}

impl Local {
    pub fn new(cluster: &str) -> Local {
        Local { name: cluster.to_string(), paths: Paths::new(cluster), claim: None }
    }

    fn cgroup_dir(&self) -> anyhow::Result<PathBuf> {
        cgroup::cluster_dir(&self.name).context("emu needs cgroup v2 to keep track of a cluster's processes")
    }

    /// The node's cgroup: its agent, shims and containers.
    fn node_cgroup(&self, node: &str) -> anyhow::Result<PathBuf> {
        Ok(cgroup::node_dir(&self.cgroup_dir()?, node))
    }

    fn node_netns(&self, node: &str) -> PathBuf {
        net::netns_path(&naming::netns_node(&self.name, node))
    }

    /// The pid file and program name of a daemon; an agent's node must be in the cluster.
    fn pid_file(&self, daemon: &Daemon) -> anyhow::Result<(PathBuf, &'static str)> {
        match daemon {
            Daemon::Controller => Ok((self.paths.controller_pid(), "emu-controller")),
            Daemon::Cloud => Ok((self.paths.root.join("cloud.pid"), "emu-nodeagent")),
            Daemon::Agent(node) => {
                if self.config()?.node(node).is_none() {
                    bail!("node {node:?} is not part of cluster {:?}", self.name);
                }
                Ok((self.paths.agent_pid(node), "emu-nodeagent"))
            }
        }
    }

    /// The node's links (eth0 to the fabric, eth1 to the outside world) down or up.
    fn set_links(&self, node: &str, up: bool) -> anyhow::Result<()> {
        let ns = self.node_netns(node);
        block_on(async {
            net::set_link_up(&ns, net::ETH0, up).await?;
            net::set_link_up(&ns, net::ETH1, up).await
        })??;
        Ok(())
    }

    /// Freezes or thaws everything of the node: its agent and its pods' shims and containers (the
    /// node's cgroup). With `wait`, until the kernel says it is done (`frozen` in `cgroup.events`:
    /// freezing a busy cgroup takes a while).
    pub(crate) fn freeze(&self, node: &str, frozen: bool, wait: Option<Duration>) -> anyhow::Result<()> {
        let dir = self.node_cgroup(node)?;
        let doing = if frozen { "freezing" } else { "thawing" };
        std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
            .map_err(|e| anyhow::anyhow!("{doing} the processes of node {node} ({}): {e}", dir.display()))?;
        let Some(timeout) = wait else { return Ok(()) };
        let deadline = Instant::now() + timeout;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        loop {
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
            if events.lines().any(|l| l == want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{doing} the processes of node {node}: not done within {} ({}: {})",
                    duration(timeout),
                    dir.join("cgroup.events").display(),
                    events.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL to every process of the cluster found by pid files (no cgroup v2).
    fn kill_by_pid_files(&self) {
        let paths = &self.paths;
        let mut pids = vec![];
        pids.extend(daemon::read_pid(&paths.controller_pid()));
        pids.extend(daemon::read_pid(&paths.root.join("cloud.pid")));
        if let Ok(nodes) = std::fs::read_dir(paths.root.join("nodes")) {
            for n in nodes.flatten() {
                pids.extend(daemon::read_pid(&n.path().join("agent.pid")));
                if let Ok(pods) = std::fs::read_dir(n.path().join("pods")) {
                    pids.extend(pods.flatten().filter_map(|p| daemon::read_pid(&p.path().join("shim.pid"))));
                }
            }
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Local {
    /// Pins the network namespace `underlay` (a namespace file: `/proc/self/ns/net`, an emulated
    /// host's) as the cluster's underlay on this machine (`Paths::underlay_netns`): the daemons
    /// make their sockets to other machines there, and the VXLAN devices theirs.
    pub fn pin_underlay(&self, underlay: &Path) -> anyhow::Result<()> {
        let pin = self.paths.underlay_netns();
        std::fs::create_dir_all(&self.paths.root)?;
        if !pin.exists() {
            std::fs::File::create(&pin).with_context(|| format!("creating {}", pin.display()))?;
            nix::mount::mount(Some(underlay), &pin, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
                .with_context(|| format!("pinning the underlay namespace {} at {}", underlay.display(), pin.display()))?;
        }
        Ok(())
    }

    /// Joins this machine's fabric and outside world to the other machines' by VXLAN over the
    /// underlay (pinned first, [`Local::pin_underlay`]), from the machine's advertise address, with
    /// `peers` (the other machines' addresses) as the first head-end replication list; the node
    /// agents keep it up to date as machines join and leave.
    pub fn stretch(&self, config: &ClusterConfig, peers: &[std::net::Ipv4Addr]) -> anyhow::Result<()> {
        let local: std::net::Ipv4Addr =
            config.advertise_address.parse().with_context(|| format!("advertise address {:?}", config.advertise_address))?;
        let underlay = self.paths.underlay_netns();
        let mtu = config.mtu;
        for (ns, device, vni, bridge) in [
            (naming::netns_fabric(&self.name), emu_logic::cluster::FABRIC_VXLAN, emu_logic::cluster::FABRIC_VNI, net::FABRIC_BRIDGE),
            (naming::netns_outside(&self.name), emu_logic::cluster::OUTSIDE_VXLAN, emu_logic::cluster::OUTSIDE_VNI, net::OUTSIDE_BRIDGE),
        ] {
            let ns = net::netns_path(&ns);
            block_on(emu_host::overlay::create_vxlan(&underlay, &ns, device, vni, local, emu_host::overlay::VXLAN_PORT, bridge, mtu))?
                .with_context(|| format!("the VXLAN device {device} of {}", ns.display()))?;
            block_on(emu_host::overlay::sync_vxlan_peers(&ns, device, peers))??;
        }
        Ok(())
    }

    /// The machine of a cluster this machine joins (`emu join`): the runtime directory with the
    /// machine's view of the cluster (`cluster.json`: ranges, its own nodes, where the control
    /// plane is), the cluster CA it pinned, its cgroup, and its own fabric and outside world
    /// (switches without addresses: the control plane and the external client live on the
    /// control plane's machine), stretched to the others over the underlay `underlay`.
    pub fn create_joined_machine(
        &self,
        config: &ClusterConfig,
        ca_pem: &str,
        underlay: &Path,
        peers: &[std::net::Ipv4Addr],
    ) -> anyhow::Result<()> {
        let paths = &self.paths;
        std::fs::create_dir_all(paths.root.join("pki"))?;
        std::fs::set_permissions(&paths.root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        std::fs::write(paths.config(), serde_json::to_vec_pretty(config)?)?;
        std::fs::write(paths.ca_cert(), ca_pem)?;
        cgroup::ensure(&self.cgroup_dir()?)?;
        for ns in [naming::netns_fabric(&self.name), naming::netns_outside(&self.name)] {
            net::create_named_netns(&ns)?;
        }
        block_on(net::setup_fabric(&net::netns_path(&naming::netns_fabric(&self.name))))??;
        block_on(net::setup_outside_switch(&net::netns_path(&naming::netns_outside(&self.name))))??;
        self.pin_underlay(underlay)?;
        self.stretch(config, peers)
    }

    /// This machine leaves the cluster it joined: its nodes' processes (their cgroups only: on
    /// emulated hosts the cluster's cgroup holds the other hosts' too), its nodes, its fabric and
    /// outside world (the VXLAN devices with them), the underlay's pin and its runtime directory.
    pub fn remove_joined_machine(&self) -> anyhow::Result<()> {
        let config = self.config()?;
        if config.control_plane.is_empty() {
            bail!("cluster {:?} runs its control plane on this machine: `emu down` removes it", self.name);
        }
        for n in &config.nodes {
            self.kill_node(&n.name)?;
            self.remove_node(&n.name)?;
        }
        for (ns, device) in [
            (naming::netns_fabric(&self.name), emu_logic::cluster::FABRIC_VXLAN),
            (naming::netns_outside(&self.name), emu_logic::cluster::OUTSIDE_VXLAN),
        ] {
            block_on(emu_host::overlay::delete_vxlan(&net::netns_path(&ns), device))??;
            net::delete_named_netns(&ns)?;
        }
        unmount_under(&self.paths.root);
        std::fs::remove_dir_all(&self.paths.root).with_context(|| format!("removing {}", self.paths.root.display()))?;
        // The cluster's cgroup, if no other machine of it runs here.
        if let Ok(dir) = self.cgroup_dir() {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    /// A joined node's certificate (from the control plane) and private key (made here, mode
    /// 0600), where its agent reads them.
    pub fn write_node_identity(&self, node: &str, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(self.paths.node_dir(node))?;
        std::fs::write(self.paths.agent_cert(node), cert_pem)?;
        let key = self.paths.agent_key(node);
        let _ = std::fs::remove_file(&key);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .with_context(|| format!("creating {}", key.display()))?;
        f.write_all(key_pem.as_bytes())?;
        Ok(())
    }
}

/// The API server's listener on the host's 127.0.0.1, bound here, in the namespace the provider
/// runs in (the controller, in its own namespace, cannot), and handed to the controller. The port
/// recorded in `port_file` if it is free, so that a restarted controller keeps the kubeconfig that
/// `emu up` wrote valid; else one the kernel picks, then recorded. A listening socket on loopback
/// is the only thing emu adds to the host's network namespace (docs/architecture.md,
/// "Namespaces and addresses").
fn host_listener(port_file: &Path) -> anyhow::Result<std::net::TcpListener> {
    let recorded: Option<u16> = std::fs::read_to_string(port_file).ok().and_then(|t| t.trim().parse().ok()).filter(|p| *p != 0);
    // A recorded port someone else took meanwhile: a new one (the CLI, which compares the
    // recorded port before and after, tells the user their kubeconfig needs writing again).
    let listener = match recorded.and_then(|port| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).ok()) {
        Some(l) => l,
        None => {
            std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).context("binding the API server's listener on 127.0.0.1")?
        }
    };
    let port = listener.local_addr()?.port();
    std::fs::write(port_file, format!("{port}\n")).with_context(|| format!("writing {}", port_file.display()))?;
    Ok(listener)
}

/// Detaches any mount left under `root` in the host's mount namespace (deepest first).
fn unmount_under(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<PathBuf> =
        info.lines().filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from)).filter(|p| p.starts_with(root)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `30s`, `500ms`, `1.5s`, `2m`: as `--timeout` is written.
fn duration(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms as f64 / 1000.0),
    }
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > timeout {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// `emu down` during `emu up` (or during `emu test`'s bring-up), without a race:
//
// - The creator claims the name: `mkdir /run/emu/<cluster>` (which fails if it exists, so two
//   creators never share a name), then creates `creation.lock` in it, flock()s it and keeps it
//   open until the cluster is made; then it removes the file and lets go.
// - A deletion first unlinks `creation.lock`: that instant is when the cluster counts as deleted.
//   Then it waits for the lock, that is for the creator to let go, before it removes anything.
// - The creator checks between its steps and while it waits that its file is still linked
//   (`st_nlink` of the open file). Once it is not, it stops, removes what it made (still holding
//   the lock) and says the cluster was deleted while it was being created: whatever step failed
//   meanwhile failed because of that.
//
// So a creator and a deletion never make and remove things at the same time, what the creator
// made after the deletion began is removed by the creator, and a creator that was killed holds
// no lock (the kernel drops it with the process).

/// The file in a cluster's runtime directory its creator holds locked (see above).
const CREATION_LOCK: &str = "creation.lock";

/// How long a deletion waits for the creator to stop. `up` looks between its steps and while it
/// waits, so it stops within a step; one stuck in a step is not waited for longer (the deletion
/// then goes ahead, and the creator stops at its next look).
const CREATOR_STOP_WAIT: Duration = Duration::from_secs(30);

impl Local {
    /// The handle `emu up` creates cluster `cluster` through: it holds the name (see above) until
    /// [`Local::release_claim`] or until it is dropped. Fails with `AlreadyExists` when the
    /// cluster's runtime directory exists, with `NotFound` when a deletion came in between.
    pub fn claim(cluster: &str) -> io::Result<Local> {
        Local::new(cluster).claim_name()
    }

    fn claim_name(mut self) -> io::Result<Local> {
        use nix::fcntl::{Flock, FlockArg};
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let root = &self.paths.root;
        fn with_path(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
            move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent).map_err(with_path(parent))?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(root).map_err(with_path(root))?;
        let path = root.join(CREATION_LOCK);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(with_path(&path))?;
        let _ = writeln!(file, "emu up (pid {}) is creating cluster {:?}", std::process::id(), self.name);
        let deleted = || io::Error::new(io::ErrorKind::NotFound, format!("{}: the cluster was deleted meanwhile", path.display()));
        // Only a deletion, which opened the file since, can hold the lock already.
        self.claim = Some(Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| match e {
            nix::errno::Errno::EWOULDBLOCK => deleted(),
            e => with_path(&path)(e.into()),
        })?);
        if self.claim_lost() {
            return Err(deleted());
        }
        Ok(self)
    }

    /// Whether this handle's claim on the cluster was lost: a deletion of the cluster began, and
    /// waits for the creator to stop. False for a handle that claimed nothing.
    pub fn claim_lost(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.claim.as_ref().is_some_and(|f| f.metadata().map_or(true, |m| m.nlink() == 0))
    }

    /// The cluster is made: from now on a deletion removes it without waiting for this handle.
    /// (The file goes first, then the lock: a deletion that opened the file meanwhile waits for
    /// the lock, then deletes the cluster as made.)
    pub fn release_claim(&mut self) {
        if self.claim.take().is_some() {
            let _ = std::fs::remove_file(self.paths.root.join(CREATION_LOCK));
        }
    }

    /// Stops the creation of the cluster if one is in progress, the first thing a deletion does
    /// (`emu down` before it removes the kubeconfig's context, which the creator may have
    /// written): the cluster counts as deleted, and this returns once the creator has let go of
    /// it (and removed what it made), or after [`CREATOR_STOP_WAIT`]. Nothing to do for the
    /// creator's own handle. True if a creation was in progress or had just ended (the creator
    /// may have removed everything since), or one was given up (`emu up --retain`).
    pub fn stop_creation(&self) -> anyhow::Result<bool> {
        self.stop_creation_within(CREATOR_STOP_WAIT)
    }

    fn stop_creation_within(&self, timeout: Duration) -> anyhow::Result<bool> {
        use nix::fcntl::{Flock, FlockArg};
        if self.claim.is_some() {
            return Ok(false);
        }
        let path = self.paths.root.join(CREATION_LOCK);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        // Gone meanwhile: another deletion stopped the creation (wait with it all the same), or
        // the creator finished (its lock goes next).
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).with_context(|| format!("removing {}", path.display())),
            _ => {}
        }
        let deadline = Instant::now() + timeout;
        loop {
            // Got: the creator let go, or had already (the lock goes again with the file).
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(_) => return Ok(true),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() >= deadline => return Ok(true),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => file = f,
                Err((_, e)) => return Err(e).with_context(|| format!("waiting for the lock on {}", path.display())),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Provider for Local {
    fn cluster(&self) -> &str {
        &self.name
    }

    fn exists(&self) -> anyhow::Result<bool> {
        Ok(self.paths.root.exists() || !net::list_named_netns(&format!("emu-{}-", self.name))?.is_empty())
    }

    fn config(&self) -> anyhow::Result<ClusterConfig> {
        let path = self.paths.config();
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    fn create_cluster(&self, config: &ClusterConfig) -> anyhow::Result<()> {
        let name = &self.name;
        let paths = &self.paths;
        let cgroup_dir = self.cgroup_dir()?;
        std::fs::create_dir_all(&paths.root)?;
        std::fs::set_permissions(&paths.root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        std::fs::write(paths.config(), serde_json::to_vec_pretty(config)?)?;
        cgroup::ensure(&cgroup_dir)?;
        let fabric = cidr(&config.fabric_cidr, "fabric CIDR")?;
        let fabric_name = naming::netns_fabric(name);
        net::create_named_netns(&fabric_name)?;
        let fabric_ns = net::netns_path(&fabric_name);
        block_on(net::setup_fabric(&fabric_ns))??;
        let control = naming::netns_control(name);
        net::create_named_netns(&control)?;
        let control_ip = ipam::control_plane_ip(fabric);
        block_on(net::connect_node(&fabric_ns, &net::netns_path(&control), naming::CONTROL_FABRIC_PORT, control_ip, fabric.prefix))??;
        // The outside world: the external client's address, then each node's ExternalIP.
        let outside = cidr(&config.outside_cidr, "outside CIDR")?;
        let pool = cidr(&config.load_balancer_cidr, "load balancer CIDR")?;
        let outside_name = naming::netns_outside(name);
        net::create_named_netns(&outside_name)?;
        let outside_ns = net::netns_path(&outside_name);
        block_on(net::setup_outside(&outside_ns, ipam::outside_client_ip(outside), outside.prefix, (pool.network(), pool.prefix)))??;
        Ok(())
    }

    fn create_node(&self, config: &ClusterConfig, n: &NodeConfig) -> anyhow::Result<()> {
        let fabric = cidr(&config.fabric_cidr, "fabric CIDR")?;
        let outside = cidr(&config.outside_cidr, "outside CIDR")?;
        let fabric_ns = net::netns_path(&naming::netns_fabric(&self.name));
        let outside_ns = net::netns_path(&naming::netns_outside(&self.name));
        let ns_name = naming::netns_node(&self.name, &n.name);
        net::create_named_netns(&ns_name)?;
        std::fs::create_dir_all(self.paths.node_dir(&n.name))?;
        let (node_ns, ip, external) = (net::netns_path(&ns_name), n.internal_ip.parse()?, n.external_ip.parse()?);
        // Across machines the fabric and the outside world are VXLAN overlays: the links leave
        // room for the encapsulation.
        let mtu = (config.mtu > 0).then_some(config.mtu);
        block_on(net::connect_node_mtu(&fabric_ns, &node_ns, &naming::fabric_port(n.index), ip, fabric.prefix, mtu))??;
        block_on(net::connect_outside_mtu(&outside_ns, &node_ns, &naming::outside_port(n.index), external, outside.prefix, mtu))??;
        Ok(())
    }

    fn start_daemon(&self, d: &Daemon) -> anyhow::Result<()> {
        let (name, paths, cgroup_dir) = (&self.name, &self.paths, self.cgroup_dir()?);
        match d {
            Daemon::Controller => {
                let exe = programs::companion("emu-controller")?;
                let listener = host_listener(&paths.api_port())?;
                daemon::spawn(Spawn {
                    exe: &exe,
                    args: vec!["--cluster".into(), name.clone()],
                    log: &paths.controller_log(),
                    cgroup: Some(&cgroup_dir.join("controller")),
                    // Its own namespace on the fabric: the API server's HTTPS port answers there,
                    // behind the `kubernetes` Service.
                    netns: Some(&net::netns_path(&naming::netns_control(name))),
                    // And on the host's loopback, for kubectl (the kubeconfig's server).
                    listener: Some(&listener),
                })
                // The parent's copy of the listener closes here; the controller holds its own.
            }
            // In the outside world: it forwards there, and health-checks the nodes from there.
            Daemon::Cloud => daemon::spawn(Spawn {
                exe: &programs::companion("emu-nodeagent")?,
                args: vec!["cloud".into(), "--cluster".into(), name.clone()],
                log: &paths.root.join("cloud.log"),
                cgroup: Some(&cgroup_dir.join("cloud")),
                netns: Some(&net::netns_path(&naming::netns_outside(name))),
                listener: None,
            }),
            Daemon::Agent(node) => {
                std::fs::create_dir_all(paths.node_dir(node))?;
                daemon::spawn(Spawn {
                    exe: &programs::companion("emu-nodeagent")?,
                    args: vec!["agent".into(), "--cluster".into(), name.clone(), "--node".into(), node.clone()],
                    log: &paths.agent_log(node),
                    cgroup: Some(&cgroup::node_dir(&cgroup_dir, node).join("agent")),
                    netns: Some(&self.node_netns(node)),
                    listener: None,
                })
            }
        }?;
        Ok(())
    }

    fn stop_daemon(&self, d: &Daemon) -> anyhow::Result<()> {
        let (pidfile, program) = self.pid_file(d)?;
        if let Some(pid) = daemon::read_pid(&pidfile).filter(|p| daemon::alive(*p, program)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            let _ = wait_until(Duration::from_secs(5), program, || !daemon::alive(pid, program));
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        Ok(())
    }

    fn kill_daemon(&self, d: &Daemon) -> anyhow::Result<i32> {
        let (pidfile, program) = self.pid_file(d)?;
        let pid = daemon::read_pid(&pidfile)
            .filter(|p| daemon::alive(*p, program))
            .ok_or_else(|| anyhow::anyhow!("the {} is not running (pid file {})", d.describe(), pidfile.display()))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .with_context(|| format!("kill -9 {pid} ({program})"))?;
        wait_until(Duration::from_secs(5), program, || !daemon::alive(pid, program))?;
        Ok(pid)
    }

    fn daemon_running(&self, d: &Daemon) -> bool {
        self.pid_file(d).is_ok_and(|(pidfile, program)| daemon::read_pid(&pidfile).is_some_and(|p| daemon::alive(p, program)))
    }

    fn stop_node(&self, node: &str, kill: bool, wait: Option<Duration>) -> anyhow::Result<()> {
        self.set_links(node, false)?;
        if kill {
            self.kill_node(node)
        } else {
            self.freeze(node, true, wait)
        }
    }

    fn start_node(&self, node: &str, killed: bool, wait: Option<Duration>) -> anyhow::Result<()> {
        self.set_links(node, true)?;
        if killed {
            self.stop_daemon(&Daemon::Agent(node.to_string()))?;
            self.start_daemon(&Daemon::Agent(node.to_string()))
        } else {
            self.freeze(node, false, wait)
        }
    }

    fn kill_node(&self, node: &str) -> anyhow::Result<()> {
        let dir = self.node_cgroup(node)?;
        // A frozen process cannot die: thaw first (a node stopped, then removed).
        if dir.join("cgroup.freeze").exists() {
            let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        }
        cgroup::kill_and_remove(&dir, Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("killing the processes of node {node} ({}): {e}", dir.display()))
    }

    fn remove_node(&self, node: &str) -> anyhow::Result<()> {
        // The pods' namespaces (their sandboxes are listed in the node's directory), then the
        // node's: the links die with them.
        if let Ok(entries) = std::fs::read_dir(self.paths.pods_dir(node)) {
            for uid in entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()) {
                net::delete_named_netns(&naming::netns_pod(&self.name, &uid))?;
            }
        }
        net::delete_named_netns(&naming::netns_node(&self.name, node))?;
        let mut config = self.config()?;
        config.nodes.retain(|n| n.name != node);
        std::fs::write(self.paths.config(), serde_json::to_vec_pretty(&config)?)?;
        let _ = std::fs::remove_dir_all(self.paths.node_dir(node));
        Ok(())
    }

    fn delete_cluster(&self) -> anyhow::Result<()> {
        self.stop_creation()?;
        let name = &self.name;
        match cgroup::cluster_dir(name) {
            Ok(dir) => cgroup::kill_and_remove(&dir, Duration::from_secs(10))
                .with_context(|| format!("stopping the processes of cluster {name:?}"))?,
            Err(_) => self.kill_by_pid_files(),
        }
        for ns in net::list_named_netns(&format!("emu-{name}-"))? {
            net::delete_named_netns(&ns)?;
        }
        unmount_under(&self.paths.root);
        // Another deletion may be removing it too (two `emu down` at once).
        match std::fs::remove_dir_all(&self.paths.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", self.paths.root.display())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_they_are_written() {
        let d = |ms| duration(Duration::from_millis(ms));
        assert_eq!([d(500), d(1500), d(30_000), d(120_000)], ["500ms", "1.5s", "30s", "2m"]);
    }

    /// A handle on cluster "demo" whose runtime directory is `root`.
    fn at(root: &Path) -> Local {
        Local { name: "demo".into(), paths: Paths { root: root.to_path_buf() }, claim: None }
    }

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("emu-claim-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_name_is_claimed_once() {
        let tmp = scratch("once");
        let root = tmp.join("demo");
        let creator = at(&root).claim_name().unwrap();
        assert!(root.join(CREATION_LOCK).exists());
        assert!(!creator.claim_lost());
        assert_eq!(at(&root).claim_name().err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
        // The creator's own handle does not wait for itself, and keeps its claim.
        creator.stop_creation_within(Duration::from_secs(5)).unwrap();
        assert!(!creator.claim_lost());
        // A handle that claimed nothing lost nothing.
        assert!(!at(&root).claim_lost());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_deletion_takes_the_claim_then_waits_for_the_creator_to_let_go() {
        let tmp = scratch("wait");
        let root = tmp.join("demo");
        let creator = at(&root).claim_name().unwrap();
        let deleting = root.clone();
        let deletion = std::thread::spawn(move || {
            let start = Instant::now();
            at(&deleting).stop_creation_within(Duration::from_secs(20)).unwrap();
            start.elapsed()
        });
        let start = Instant::now();
        while !creator.claim_lost() {
            assert!(start.elapsed() < Duration::from_secs(5), "the creator never saw the deletion");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!root.join(CREATION_LOCK).exists());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!deletion.is_finished(), "the deletion goes ahead while the creator holds on");
        drop(creator);
        let waited = deletion.join().unwrap();
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(10), "{waited:?}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_deletion_waits_for_no_creator_that_is_done_and_not_long_for_one_that_is_stuck() {
        let tmp = scratch("done");
        let quick = |root: &Path| {
            let start = Instant::now();
            at(root).stop_creation_within(Duration::from_secs(20)).unwrap();
            start.elapsed()
        };
        // Nothing was ever claimed.
        assert!(quick(&tmp.join("none")) < Duration::from_secs(1));
        // The creation finished.
        let mut creator = at(&tmp.join("done")).claim_name().unwrap();
        creator.release_claim();
        assert!(!tmp.join("done").join(CREATION_LOCK).exists());
        assert!(quick(&tmp.join("done")) < Duration::from_secs(1));
        // A creator that does not let go: the deletion goes ahead after its wait.
        let stuck = at(&tmp.join("stuck")).claim_name().unwrap();
        let start = Instant::now();
        at(&tmp.join("stuck")).stop_creation_within(Duration::from_millis(200)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(200) && start.elapsed() < Duration::from_secs(5));
        assert!(stuck.claim_lost());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn the_host_listener_keeps_its_recorded_port_while_it_is_free() {
        let _forking = crate::FORKING.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = std::env::temp_dir().join(format!("emu-host-listener-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("api-port");
        let first = host_listener(&file).unwrap();
        let port = first.local_addr().unwrap().port();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{port}\n"));
        assert_eq!(first.local_addr().unwrap().ip(), std::net::Ipv4Addr::LOCALHOST);
        // Taken (the first listener still holds it): another port, recorded.
        let second = host_listener(&file).unwrap();
        let other = second.local_addr().unwrap().port();
        assert_ne!(other, port);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{other}\n"));
        // Free again (a controller restarted): the recorded one.
        drop(second);
        assert_eq!(host_listener(&file).unwrap().local_addr().unwrap().port(), other);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
