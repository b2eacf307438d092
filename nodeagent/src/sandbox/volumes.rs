//! Secret and ConfigMap volumes on the node: where they live and how their files are written.
//!
//! The shim mounts one tmpfs at `<pod_dir>/volumes` in a mount namespace of its own and makes a
//! directory per volume in it, so the bytes never reach a disk and the mount is invisible to the
//! host and vanishes with the pod. The agent fills and updates the directories through
//! `/proc/<shim pid>/root`, which resolves paths in the shim's mount namespace. Containers
//! bind-mount them read-only.
//!
//! Files are written as kubelet's atomic writer does (VOL-4): a new hidden version directory,
//! `..data_tmp` → it renamed over `..data`, user-visible `<name>` → `..data/<name>` symlinks,
//! then the old version removed; a reader that opens `<name>` sees the old or the new file whole.
//!
//! The tmpfs is as large as the pod may use memory ([`emu_logic::volumes::memory_volume_size`]):
//! the agent writes the size to `<pod_dir>/volumes.size` before it starts the shim.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emu_logic::volumes::{self, FileProjection, Payload};

/// `<pod_dir>/volumes`: the tmpfs mount point (an empty directory as the host sees it).
pub const VOLUMES_DIR: &str = "volumes";

/// `<pod_dir>/volumes.size`: the tmpfs's size in bytes, decided by the agent and read by the shim.
const SIZE_FILE: &str = "volumes.size";

/// Records the size the shim gives the pod's volume tmpfs.
pub fn write_size(pod_dir: &Path, bytes: u64) -> io::Result<()> {
    let path = pod_dir.join(SIZE_FILE);
    fs::write(&path, format!("{bytes}\n")).map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// The size [`write_size`] recorded; None when there is none (a sandbox of an agent from before
/// sizes were recorded: the tmpfs then gets the kernel's default, half of the host's memory).
pub fn read_size(pod_dir: &Path) -> io::Result<Option<u64>> {
    let path = pod_dir.join(SIZE_FILE);
    match fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
        Ok(text) => {
            text.trim().parse().map(Some).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {text:?} is not a size in bytes: {e}", path.display()))
            })
        }
    }
}

/// A volume's directory as the shim (and containers before pivot_root) see it.
pub fn volume_dir(pod_dir: &Path, volume: &str) -> PathBuf {
    pod_dir.join(VOLUMES_DIR).join(volume)
}

/// The same directory reached from outside the shim's mount namespace.
pub fn volume_dir_via_shim(shim_pid: i32, pod_dir: &Path, volume: &str) -> PathBuf {
    let inside = volume_dir(pod_dir, volume);
    Path::new(&format!("/proc/{shim_pid}/root")).join(inside.strip_prefix("/").unwrap_or(&inside))
}

/// Mode of a volume's top directory: a secret volume's tmpfs is world-writable and sticky in
/// kubelet (`drwxrwxrwt`), a ConfigMap's directory `drwxrwxrwx`; both are mounted read-only.
pub fn top_dir_mode(is_secret: bool) -> u32 {
    if is_secret {
        0o1777
    } else {
        0o777
    }
}

/// Waits until the shim has mounted its tmpfs and made `volume`'s directory in it, so nothing
/// is ever written to the host's disk under the mount point.
pub fn wait_mounted(shim_pid: i32, pod_dir: &Path, volume: &str, timeout: Duration) -> io::Result<PathBuf> {
    let dir = volume_dir_via_shim(shim_pid, pod_dir, volume);
    let pod_dir_dev = fs::metadata(pod_dir)?.dev();
    let deadline = Instant::now() + timeout;
    loop {
        // The volume directory exists only inside the tmpfs, whose device differs from the pod
        // directory's.
        if let Ok(m) = fs::metadata(&dir) {
            if m.is_dir() && m.dev() != pod_dir_dev {
                return Ok(dir);
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("volume {volume:?} of {} was not mounted", pod_dir.display())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Makes `dir` hold exactly `payload`; returns false when it already did (nothing written).
///
/// Errors read like kubelet's (Go's `*PathError`, `write conf/app.ini: no space left on
/// device`, naming the path as `<volume>/<path>` without the version directory, so a retry
/// fails with the same words) and keep the error's kind. A version that could not be written
/// whole is removed, so a failed attempt leaves the volume as it was and its space free.
pub fn write_payload(dir: &Path, payload: &Payload) -> io::Result<bool> {
    let data_link = dir.join(volumes::DATA_DIR_LINK);
    let old_version = fs::read_link(&data_link).ok();
    if old_version.is_some() && read_payload(&data_link).as_ref() == Some(payload) {
        return Ok(false);
    }
    let volume = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let shown = |path: &str| format!("{volume}/{path}");
    // What an earlier attempt left (an agent killed while writing): not the current version.
    for entry in fs::read_dir(dir).map_err(path_error("open", shown("")))?.flatten() {
        let name = entry.file_name();
        let current = old_version.as_deref() == Some(Path::new(&name));
        if volumes::is_layout_entry(&name.to_string_lossy()) && entry.file_type().is_ok_and(|t| t.is_dir()) && !current {
            fs::remove_dir_all(entry.path()).map_err(path_error("unlinkat", shown(&name.to_string_lossy())))?;
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let version = volumes::version_dir_name(now.as_secs() as i64, now.subsec_nanos() ^ std::process::id());
    let version_dir = dir.join(&version);
    let tmp_link = dir.join(volumes::NEW_DATA_DIR_LINK);
    let swapped = (|| {
        fs::create_dir(&version_dir).map_err(path_error("mkdir", shown(&version)))?;
        fs::set_permissions(&version_dir, fs::Permissions::from_mode(0o755)).map_err(path_error("chmod", shown(&version)))?;
        for (path, file) in payload {
            let at = version_dir.join(path);
            if let Some(parent) = at.parent() {
                fs::create_dir_all(parent).map_err(path_error("mkdir", shown(path)))?;
            }
            fs::write(&at, &file.data).map_err(path_error("write", shown(path)))?;
            fs::set_permissions(&at, fs::Permissions::from_mode(file.mode)).map_err(path_error("chmod", shown(path)))?;
        }
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&version, &tmp_link).map_err(path_error("symlink", shown(volumes::NEW_DATA_DIR_LINK)))?;
        fs::rename(&tmp_link, &data_link).map_err(path_error("rename", shown(volumes::NEW_DATA_DIR_LINK)))
    })();
    if let Err(e) = swapped {
        let _ = fs::remove_file(&tmp_link);
        let _ = fs::remove_dir_all(&version_dir);
        return Err(e);
    }

    let wanted = volumes::top_level_names(payload);
    for name in &wanted {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(volumes::DATA_DIR_LINK).join(name), &link).map_err(path_error("symlink", shown(name)))?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !volumes::is_layout_entry(&name) && !wanted.contains(&name) {
            fs::remove_file(entry.path()).map_err(path_error("unlinkat", shown(&name)))?;
        }
    }
    if let Some(old) = old_version.filter(|old| *old != Path::new(&version)) {
        fs::remove_dir_all(dir.join(&old)).map_err(path_error("unlinkat", shown(&old.to_string_lossy())))?;
    }
    Ok(true)
}

/// An I/O error as Go's `*PathError` prints it (`write PATH: no space left on device`), which is
/// what kubelet's FailedMount message quotes; its kind is kept (`StorageFull` for ENOSPC).
fn path_error(op: &'static str, path: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| {
        let why = match e.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
            None => e.to_string(),
        };
        io::Error::new(e.kind(), format!("{op} {}: {why}", path.trim_end_matches('/')))
    }
}

/// The files under `root` (a version directory, through `..data`), or None when unreadable.
fn read_payload(root: &Path) -> Option<Payload> {
    fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, FileProjection>) -> io::Result<()> {
        for entry in fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                let data = fs::read(entry.path())?;
                out.insert(path, FileProjection { data, mode: meta.mode() & 0o7777 });
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(root, "", &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection { data: data.as_bytes().to_vec(), mode }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn writes_the_atomic_layout_and_swaps_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let first = Payload::from([("tls.crt".to_string(), file("CERT", 0o644)), ("conf/a.ini".to_string(), file("a", 0o400))]);
        assert!(write_payload(dir, &first).unwrap());
        let names = entries(dir);
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].starts_with("..20"), "{names:?}");
        assert_eq!(&names[1..], ["..data", "conf", "tls.crt"]);
        assert_eq!(fs::read_link(dir.join("tls.crt")).unwrap(), Path::new("..data/tls.crt"));
        assert_eq!(fs::read_to_string(dir.join("conf/a.ini")).unwrap(), "a");
        assert_eq!(fs::metadata(dir.join("tls.crt")).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::metadata(dir.join("conf/a.ini")).unwrap().mode() & 0o777, 0o400);

        // The same payload again writes nothing.
        assert!(!write_payload(dir, &first).unwrap());
        assert_eq!(entries(dir), names);

        // A change: a new version, the old one gone, a dropped key's link gone.
        let second = Payload::from([("tls.crt".to_string(), file("NEW", 0o644))]);
        assert!(write_payload(dir, &second).unwrap());
        let after = entries(dir);
        assert_eq!(after.len(), 3, "{after:?}");
        assert_ne!(after[0], names[0]);
        assert_eq!(&after[1..], ["..data", "tls.crt"]);
        assert_eq!(fs::read_to_string(dir.join("tls.crt")).unwrap(), "NEW");

        // A mode change alone is a change too.
        let third = Payload::from([("tls.crt".to_string(), file("NEW", 0o600))]);
        assert!(write_payload(dir, &third).unwrap());
        assert_eq!(fs::metadata(dir.join("tls.crt")).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_failed_write_leaves_the_volume_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("conf");
        fs::create_dir(&dir).unwrap();
        let first = Payload::from([("app.ini".to_string(), file("v1", 0o644))]);
        assert!(write_payload(&dir, &first).unwrap());
        let before = entries(&dir);
        // "a" is a file, so "a/b" cannot be written below it: the attempt fails midway.
        let bad = Payload::from([("a".to_string(), file("x", 0o644)), ("a/b".to_string(), file("y", 0o644))]);
        let e = write_payload(&dir, &bad).unwrap_err();
        assert_eq!(e.to_string(), "mkdir conf/a/b: file exists");
        assert_eq!(entries(&dir), before, "the half-written version is gone");
        assert_eq!(fs::read_to_string(dir.join("app.ini")).unwrap(), "v1");
        // A version left by an attempt that never finished (an agent killed) is removed too.
        fs::create_dir(dir.join("..2026_01_01_00_00_00.1")).unwrap();
        fs::write(dir.join("..2026_01_01_00_00_00.1/big"), "x").unwrap();
        let second = Payload::from([("app.ini".to_string(), file("v2", 0o644))]);
        assert!(write_payload(&dir, &second).unwrap());
        assert_eq!(entries(&dir).len(), 3, "{:?}", entries(&dir));
    }

    #[test]
    fn errors_read_like_kubelets() {
        let full = path_error("write", "conf/app.ini".into())(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.to_string(), "write conf/app.ini: no space left on device");
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn the_size_is_handed_to_the_shim() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_size(tmp.path()).unwrap(), None);
        write_size(tmp.path(), 64 << 20).unwrap();
        assert_eq!(read_size(tmp.path()).unwrap(), Some(64 << 20));
        fs::write(tmp.path().join(SIZE_FILE), "lots").unwrap();
        assert!(read_size(tmp.path()).is_err());
    }

    #[test]
    fn an_empty_payload_still_has_data() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(write_payload(tmp.path(), &Payload::new()).unwrap());
        assert!(tmp.path().join("..data").is_dir());
        assert!(!write_payload(tmp.path(), &Payload::new()).unwrap());
    }
}
