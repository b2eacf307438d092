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

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emu_logic::volumes::{self, FileProjection, Payload};

/// `<pod_dir>/volumes`: the tmpfs mount point (an empty directory as the host sees it).
pub const VOLUMES_DIR: &str = "volumes";

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
pub fn write_payload(dir: &Path, payload: &Payload) -> io::Result<bool> {
    let data_link = dir.join(volumes::DATA_DIR_LINK);
    let old_version = fs::read_link(&data_link).ok();
    if old_version.is_some() && read_payload(&data_link).as_ref() == Some(payload) {
        return Ok(false);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let version = volumes::version_dir_name(now.as_secs() as i64, now.subsec_nanos() ^ std::process::id());
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir)?;
    fs::set_permissions(&version_dir, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let at = version_dir.join(path);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&at, &file.data)?;
        fs::set_permissions(&at, fs::Permissions::from_mode(file.mode))?;
    }
    let tmp_link = dir.join(volumes::NEW_DATA_DIR_LINK);
    let _ = fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&version, &tmp_link)?;
    fs::rename(&tmp_link, &data_link)?;

    let wanted = volumes::top_level_names(payload);
    for name in &wanted {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(volumes::DATA_DIR_LINK).join(name), &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !volumes::is_layout_entry(&name) && !wanted.contains(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old_version.filter(|old| *old != Path::new(&version)) {
        fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
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
    fn an_empty_payload_still_has_data() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(write_payload(tmp.path(), &Payload::new()).unwrap());
        assert!(tmp.path().join("..data").is_dir());
        assert!(!write_payload(tmp.path(), &Payload::new()).unwrap());
    }
}
