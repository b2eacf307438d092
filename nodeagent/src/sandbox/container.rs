//! A container's pid 1 between clone and exec: it builds its root filesystem, enters it, drops
//! its capabilities and execs the entrypoint, confined by its seccomp profile and
//! `no_new_privs` ([`seccomp`]).
//!
//! Runs as pid 1 of a fresh PID namespace in a fresh mount namespace, inside the pod's network,
//! UTS and IPC namespaces. Every mount made here lives only in this mount namespace: when the
//! container's last process exits the kernel drops them all, so neither the host nor the shim
//! ever has a container mount to clean up.
//!
//! The root is an overlay, as a container runtime's: the image's files ([`super::image_view`],
//! built once per cluster at the pull, read-only and shared by every container of the image)
//! under a writable layer of the container's own, a tmpfs as large as its ephemeral storage may
//! be (fresh for every run, gone with it; a write beyond its size fails with ENOSPC). Over it:
//! the pod's hosts, resolv.conf and hostname, emu's programs, the pod's volumes, and fresh
//! /proc, /sys (read-only) and /dev.

use std::fs;
use std::os::fd::RawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use emu_logic::identity::Identity;
use nix::mount::{MntFlags, MsFlags};

use super::seccomp::{self, Confinement};
use super::{become_container_user, exec, find_executable, reset_signals};

/// Everything the child needs, prepared by the shim before cloning.
pub(super) struct Plan {
    /// `<pod_dir>/containers/<c>/rootfs`: the mount point of the new root.
    pub rootfs: PathBuf,
    /// `<pod_dir>/containers/<c>/layer`: the mount point of its writable layer.
    pub layer: PathBuf,
    /// The writable layer's size in bytes.
    pub layer_bytes: u64,
    /// The image's files: the overlay's read-only lower layer.
    pub view: PathBuf,
    /// `<pod_dir>/etc`: the pod's hosts, resolv.conf and hostname, shared by its containers.
    pub etc_dir: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// Host paths bind-mounted read-only at container paths (the profile's emu mounts, whose
    /// mount points the image's files have).
    pub emu_binds: Vec<(PathBuf, String)>,
    /// The pod's volumes (or one file or directory of one) bind-mounted read-only at container
    /// paths, parents first; they hide what the image has there (VOL-3).
    pub volume_binds: Vec<(PathBuf, String)>,
    /// Its seccomp profile and `no_new_privs`.
    pub confinement: Confinement,
    /// Who it runs as, and the capabilities it keeps (None: the runtime's default set).
    pub identity: Identity,
    pub capabilities: Option<Vec<String>>,
}

/// Sets up the container and execs it; returns only the reason it could not. Its stdin is
/// `stdin`, its stdout and stderr `log`; on a `terminal`, all three are `stdin`, its controlling
/// terminal.
pub(super) fn run(plan: &Plan, log: RawFd, stdin: RawFd, terminal: bool) -> String {
    let output = if terminal { stdin } else { log };
    match setup(plan, output, stdin, terminal) {
        Ok(program) => exec(&program, &plan.argv, &plan.env),
        Err(e) => e,
    }
}

fn setup(plan: &Plan, output: RawFd, stdin: RawFd, terminal: bool) -> Result<PathBuf, String> {
    // Said while stderr is still the shim's log.
    if let Some(warning) = &plan.confinement.warning {
        // `<pod_dir>/containers/<c>/rootfs`
        let container = plan.rootfs.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy();
        tracing::warn!(%container, "{warning}");
    }
    // SAFETY: prctl, setsid, dup2 and TIOCSCTTY only change this process's attributes and
    // descriptors.
    unsafe {
        // A container must not outlive its supervisor (e.g. a SIGKILLed shim).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::setsid();
        if libc::dup2(stdin, 0) < 0 || libc::dup2(output, 1) < 0 || libc::dup2(output, 2) < 0 {
            return Err(format!("redirecting stdio: {}", std::io::Error::last_os_error()));
        }
        // A shell on a terminal wants it as its controlling terminal (job control, ^C).
        if terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(format!("making the terminal the controlling one: {}", std::io::Error::last_os_error()));
        }
    }
    reset_signals();
    build_rootfs(plan)?;
    enter_root(&plan.rootfs)?;
    let wd = plan.working_dir.as_str();
    // Runtimes create a missing working directory, as Docker's WORKDIR would have.
    let _ = fs::create_dir_all(wd);
    nix::unistd::chdir(wd).map_err(|e| format!("workingDir {wd:?}: {e}"))?;
    // Last, after every mount of the root and before capabilities go (see `confine`).
    seccomp::confine(&plan.confinement)?;
    become_container_user(&plan.identity, plan.capabilities.as_deref())?;
    let program = plan.argv.first().ok_or("no command specified: the image has no ENTRYPOINT/CMD and the container no command/args")?;
    find_executable(program, &plan.env)
}

fn build_rootfs(plan: &Plan) -> Result<(), String> {
    let r = plan.rootfs.as_path();
    let at = |p: &str| r.join(p.trim_start_matches('/'));
    // Nothing we mount may propagate back to the host.
    mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    // The writable layer, then the root: the image's files under it.
    let layer = plan.layer.as_path();
    let size = format!("mode=0755,size={}", plan.layer_bytes);
    mount(Some("tmpfs"), layer, Some("tmpfs"), MsFlags::MS_NOSUID, Some(&size))?;
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    make_dir(&upper, 0o755)?;
    make_dir(&work, 0o755)?;
    mount(Some("overlay"), r, Some("overlay"), MsFlags::MS_NOSUID, Some(&overlay_options(&plan.view, &upper, &work)?))?;

    // Kubelet bind-mounts these from the pod's directory, so all containers share them.
    for name in ["hosts", "resolv.conf", "hostname"] {
        bind(&plan.etc_dir.join(name), &at(&format!("/etc/{name}")), false)?;
    }
    for (host, path) in &plan.emu_binds {
        bind(host, &at(path), true)?;
    }

    for (source, path) in &plan.volume_binds {
        let dst = resolve_in_root(r, path)?;
        let is_dir = fs::metadata(source).map_err(|e| format!("volume source {}: {e}", source.display()))?.is_dir();
        // `dst` has no symlink left in it: creating what is missing stays inside the root.
        if is_dir {
            fs::create_dir_all(&dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
        } else if !dst.exists() {
            write_file(&dst, b"", 0o644)?;
        }
        bind(source, &dst, true)?;
    }

    mount(Some("proc"), &at("proc"), Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, None)?;
    // Root without CAP_NET_ADMIN may still write the netns's sysctls (the files are root's), so
    // /proc/sys is read-only, as container runtimes make it.
    for p in ["proc/sys", "proc/sysrq-trigger"] {
        // Kernels without magic SysRq have no sysrq-trigger.
        if at(p).exists() {
            bind(&at(p), &at(p), true)?;
        }
    }
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("sysfs"), &at("sys"), Some("sysfs"), ro, None)?;
    build_dev(&at("dev"))
}

/// The overlay's options: the image's files as its lower layer, the writable layer's `upper`
/// and `work` directories. Its option syntax has no escape for `,` and `:` in a path.
fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Result<String, String> {
    let mut options = Vec::new();
    for (key, path) in [("lowerdir", lower), ("upperdir", upper), ("workdir", work)] {
        match path.to_str() {
            Some(text) if !text.contains([',', ':', '\\']) => options.push(format!("{key}={text}")),
            _ => return Err(format!("{key} {}: overlayfs takes no path with ',', ':' or '\\'", path.display())),
        }
    }
    Ok(options.join(","))
}

/// A minimal /dev: the usual character devices bound from the host, a private devpts, /dev/shm.
fn build_dev(dev: &Path) -> Result<(), String> {
    mount(Some("tmpfs"), dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        write_file(&dev.join(name), b"", 0o666)?;
        bind(&Path::new("/dev").join(name), &dev.join(name), false)?;
    }
    make_dir(&dev.join("pts"), 0o755)?;
    mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    link("pts/ptmx", &dev.join("ptmx"))?;
    make_dir(&dev.join("shm"), 0o1777)?;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("shm"), &dev.join("shm"), Some("tmpfs"), nosuid_nodev_noexec, Some("mode=1777,size=65536k"))?;
    for (name, target) in
        [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
    {
        link(target, &dev.join(name))?;
    }
    Ok(())
}

/// Makes the built tree the root and detaches the host's, so no host path is reachable.
fn enter_root(rootfs: &Path) -> Result<(), String> {
    nix::unistd::chdir(rootfs).map_err(|e| format!("chdir {}: {e}", rootfs.display()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    // detaches it, leaving the new root (no put_old directory needed).
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root {}: {e}", rootfs.display()))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the host root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

fn mount(src: Option<&str>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<(), String> {
    nix::mount::mount(src, target, fstype, flags, data)
        .map_err(|e| format!("mounting {} on {}: {e}", src.or(fstype).unwrap_or("(remount)"), target.display()))
}

/// Bind-mounts `src` on `dst`, read-only if asked (a bind mount takes its read-only flag only
/// from a second, remounting call).
fn bind(src: &Path, dst: &Path, readonly: bool) -> Result<(), String> {
    nix::mount::mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("bind-mounting {} on {}: {e}", src.display(), dst.display()))?;
    if readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, dst, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("making {} read-only: {e}", dst.display()))?;
    }
    Ok(())
}

/// Where the container path `path` is under `root`, following symlinks of the container's tree
/// as the container will see them (an absolute link target starts again at `root`), so that a
/// mount at `/var/run/secrets/…` lands in `/run/secrets/…` as in a container runtime, and never
/// outside `root`. Missing parts are left as they are (to be created).
fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, String> {
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_os_string()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut at: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            at.pop();
            continue;
        }
        let candidate: PathBuf = root.join(at.iter().collect::<PathBuf>()).join(&part);
        match fs::read_link(&candidate) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(format!("{path}: too many levels of symbolic links in the container's root"));
                }
                if target.is_absolute() {
                    at.clear();
                }
                for c in target.components().rev() {
                    match c {
                        std::path::Component::Normal(p) => pending.push(p.to_os_string()),
                        std::path::Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => at.push(part),
        }
    }
    Ok(root.join(at.iter().collect::<PathBuf>()))
}

fn make_dir(path: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::write(path, content)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn link(target: &str, path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    match symlink(target, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(format!("linking {} -> {target}: {e}", path.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_follow_the_containers_own_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("run")).unwrap();
        fs::create_dir_all(r.join("etc/nginx")).unwrap();
        symlink("/run", r.join("var-run")).unwrap();
        symlink("../etc/nginx", r.join("run/conf")).unwrap();
        symlink("/../../..", r.join("escape")).unwrap();
        assert_eq!(resolve_in_root(r, "/var-run/secrets/x").unwrap(), r.join("run/secrets/x"));
        assert_eq!(resolve_in_root(r, "/var-run/conf/ssl").unwrap(), r.join("etc/nginx/ssl"));
        assert_eq!(resolve_in_root(r, "/etc/nginx/conf.d").unwrap(), r.join("etc/nginx/conf.d"));
        // `..` cannot climb out of the root, through a link or not.
        assert_eq!(resolve_in_root(r, "/escape/etc").unwrap(), r.join("etc"));
        assert_eq!(resolve_in_root(r, "/../../etc").unwrap(), r.join("etc"));
        assert_eq!(resolve_in_root(r, "/etc/x/../nginx").unwrap(), r.join("etc/nginx"));
        symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, "/loop/x").is_err());
    }

    #[test]
    fn the_overlay_takes_the_images_files_under_the_writable_layer() {
        let p = Path::new;
        let options = overlay_options(p("/run/emu/c/images/nginx-0123"), p("/l/upper"), p("/l/work"));
        assert_eq!(options.as_deref(), Ok("lowerdir=/run/emu/c/images/nginx-0123,upperdir=/l/upper,workdir=/l/work"));
        let err = overlay_options(p("/run/emu/a,b/images/x"), p("/l/upper"), p("/l/work")).unwrap_err();
        assert_eq!(err, "lowerdir /run/emu/a,b/images/x: overlayfs takes no path with ',', ':' or '\\'");
        assert!(overlay_options(p("/x"), p("/pods/a:b/upper"), p("/l/work")).is_err());
    }
}
