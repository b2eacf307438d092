//! Named network namespaces (compatible with `ip netns`) and work done inside a namespace on a
//! dedicated thread.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::{NetError, Result};

/// `ip netns`' directory.
const NETNS_DIR: &str = "/run/netns";

/// `/run/netns/NAME`: where `ip netns` and emu keep the namespace called `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn netns_err(ns: impl std::fmt::Display, op: &str, cause: io::Error) -> NetError {
    NetError::Netns { ns: ns.to_string(), op: op.to_string(), cause }
}

/// True if `path` is a namespace bind mount (an nsfs inode), not a leftover empty file.
fn is_netns(path: &Path) -> io::Result<bool> {
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net")?.dev();
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == nsfs_dev),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the named network namespace `name` (a bind mount at `/run/netns/NAME`, visible to
/// `ip netns`). Succeeds if it already exists.
pub fn create_named_netns(name: &str) -> Result<()> {
    let path = netns_path(name);
    if is_netns(&path).map_err(|e| netns_err(path.display(), "inspect", e))? {
        return Ok(());
    }
    shared_netns_dir().map_err(|e| netns_err(NETNS_DIR, "prepare", e))?;
    std::fs::File::create(&path).map_err(|e| netns_err(path.display(), "create", e))?;
    // Unshared on a thread of its own, so the caller's thread keeps its namespace; the bind mount
    // keeps the namespace alive after the thread ends.
    let target = path.clone();
    let made = std::thread::Builder::new()
        .name("emu-netns-new".into())
        .spawn(move || -> io::Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
            nix::mount::mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            Ok(())
        })
        .map_err(|e| netns_err(path.display(), "spawn namespace thread", e))?
        .join()
        .map_err(|_| netns_err(path.display(), "create", io::Error::other("namespace thread panicked")))?;
    made.map_err(|e| {
        let _ = std::fs::remove_file(&path);
        netns_err(path.display(), "create", e)
    })
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so that a namespace's bind
/// mount made later shows in every mount namespace that shares it (it is bound onto itself first
/// when it is not a mount point yet).
fn shared_netns_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    let shared = || nix::mount::mount(None::<&str>, NETNS_DIR, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match shared() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            nix::mount::mount(Some(NETNS_DIR), NETNS_DIR, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
            Ok(shared()?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves the calling thread into the network namespace at `path` for good: only on a thread
/// made for it (never a tokio worker).
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let ns = std::fs::File::open(path).map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("entering {}: {e}", path.display())))
}

/// Deletes the named network namespace `name`: unmounts and removes `/run/netns/NAME`. The
/// kernel frees the namespace (and its links) once no process or open file holds it. Succeeds if
/// it does not exist.
pub fn delete_named_netns(name: &str) -> Result<()> {
    let path = netns_path(name);
    match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a leftover file); ENOENT: already gone.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(netns_err(path.display(), "unmount", e.into())),
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(netns_err(path.display(), "remove", e)),
        _ => Ok(()),
    }
}

/// Names of the named network namespaces that start with `prefix`, sorted.
pub fn list_named_netns(prefix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(netns_err(NETNS_DIR, "list", e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| netns_err(NETNS_DIR, "list", e))?;
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(prefix) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Runs `f` once inside each namespace of `paths`, in order, on one new std thread (never on a
/// tokio worker: `setns` changes the calling thread for good). The thread ends afterwards.
pub(super) async fn in_each_netns<T: Send + 'static>(
    paths: &[&Path],
    op: &'static str,
    mut f: impl FnMut() -> io::Result<T> + Send + 'static,
) -> Result<Vec<T>> {
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("emu-netns".into()).spawn(move || {
        let mut out = Vec::with_capacity(paths.len());
        for path in &paths {
            let entered = enter_netns(path).map_err(|e| netns_err(path.display(), "enter", e));
            match entered.and_then(|()| f().map_err(|e| netns_err(path.display(), op, e))) {
                Ok(v) => out.push(v),
                Err(e) => return tx.send(Err(e)),
            }
        }
        tx.send(Ok(out))
    });
    spawned.map_err(|e| netns_err("(current)", "spawn namespace thread", e))?;
    rx.await.map_err(|_| netns_err("(current)", op, io::Error::other("namespace thread died")))?
}

/// Writes sysctls (`("net/ipv4/ip_forward", "1")`, relative to `/proc/sys`) inside namespace
/// `ns`. `/proc/sys/net` shows the namespace of the thread that opens it, hence the thread.
pub async fn write_sysctls(ns: &Path, kv: &[(&str, &str)]) -> Result<()> {
    let kv: Vec<(String, String)> = kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    in_each_netns(&[ns], "write sysctls", move || {
        for (k, v) in &kv {
            let path = Path::new("/proc/sys").join(k);
            std::fs::write(&path, v).map_err(|e| io::Error::new(e.kind(), format!("{} = {v}: {e}", path.display())))?;
        }
        Ok(())
    })
    .await
    .map(drop)
}

/// Node sysctls: forward IPv4 and send no ICMP redirects (on `all`, `default` and every existing
/// interface, since the effective value is `all OR <interface>`).
pub(super) async fn configure_node_sysctls(ns: &Path) -> Result<()> {
    in_each_netns(&[ns], "write sysctls", || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
        for dir in std::fs::read_dir("/proc/sys/net/ipv4/conf")? {
            std::fs::write(dir?.path().join("send_redirects"), "0")?;
        }
        Ok(())
    })
    .await
    .map(drop)
}
