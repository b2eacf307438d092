//! The cgroup (v2) tree of a cluster: `<cgroup2 mount>/emu-<cluster>/…`. Every process emu starts
//! for a cluster lives in it, so `emu down` can end all of them at once with `cgroup.kill`, even
//! after every emu process was killed, without hunting PIDs.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` on pure v2 hosts, `/sys/fs/cgroup/unified` on
/// hybrid ones).
pub fn cgroup2_root() -> io::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(dir))
        })
        .min_by_key(|p| p.as_os_str().len())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup2 file system is mounted: emu needs cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified)",
            )
        })
}

pub fn cluster_dir(cluster: &str) -> io::Result<PathBuf> {
    Ok(cgroup2_root()?.join(emu_api::naming::cgroup_name(cluster)))
}

/// A node's cgroup under its cluster's: its agent (`agent`) and its pods (`pods/<uid>`), so that
/// freezing or killing the node takes them all.
pub fn node_dir(cluster_dir: &Path, node: &str) -> PathBuf {
    cluster_dir.join(format!("node-{node}"))
}

/// Creates the cgroup directory (and parents) if missing.
pub fn ensure(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Moves a process into a cgroup.
pub fn add_process(dir: &Path, pid: i32) -> io::Result<()> {
    ensure(dir)?;
    std::fs::write(dir.join("cgroup.procs"), pid.to_string())
}

/// Kills every process in the cgroup tree and removes the directories. Returns once the tree is
/// empty (or after `timeout`, with an error naming what is left).
pub fn kill_and_remove(dir: &Path, timeout: Duration) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        std::fs::write(&kill, "1")?;
    } else {
        // Kernels before 5.14: signal each process of the tree ourselves.
        for pid in procs_recursive(dir)? {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    // A killed process leaves the cgroup only once its parent has reaped it. Daemons and shims are
    // orphans, reaped by PID 1, which on some hosts (minimal init systems in VMs) does so only
    // every second or so: wait for `populated 0`, not just for an empty `cgroup.procs`.
    let start = Instant::now();
    loop {
        if procs_recursive(dir)?.is_empty() && !populated(dir) {
            break;
        }
        if start.elapsed() > timeout {
            return Err(io::Error::other(format!("processes still alive in {} after SIGKILL", dir.display())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_tree(dir)
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events")).map(|e| e.lines().any(|l| l == "populated 1")).unwrap_or(false)
}

fn procs_recursive(dir: &Path) -> io::Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&d) {
            stack.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
    }
    Ok(pids)
}

/// cgroup directories are removed with rmdir, children first.
fn remove_tree(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(e.kind(), format!("removing cgroup {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}
