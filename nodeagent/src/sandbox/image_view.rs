//! An image's files as its containers see them, under their writable layers: built once per
//! cluster on this machine, when the first pod that uses the image "pulls" it, and shared,
//! read-only (an overlay's lower layer), by every container of the image on every node.
//!
//! A view holds what the image profile names ([`ImageProfile`]) and nothing else of the host:
//! the image's programs, the programs and libraries of the Debian packages it names, its other
//! host files, and what those need at run time: the interpreter of a script, and the dynamic
//! loader and shared libraries of a program, found by running the host's loader with `--list`
//! on each program and shared object (what `ldd` does). The loader resolves libraries exactly
//! as it will when the program runs (its cache, RUNPATH, hwcaps directories, the transitive
//! closure), which parsing `DT_NEEDED` here would have to re-implement; it runs once per file
//! and cluster, at the pull, never at a container's start. Symlinks on the way (merged /usr's
//! /lib -> usr/lib, /etc/alternatives) are kept, with what they point at. Then the image's own
//! layout: the directories every root has, its /etc (users, name service configuration, and the
//! mount points of the pod's hosts, resolv.conf and hostname), busybox's applet links, the
//! profile's files, and the mount points of emu's programs.
//!
//! Host files are hard links into the view when the cluster's runtime directory is on the
//! host's file system; on a tmpfs `/run` (EXDEV) each is copied once into `images/.files/`
//! (named by the host file's device, inode and modification time) and linked from there, so
//! that the views of a cluster share one copy of libc. A view is written into a temporary
//! directory and renamed into place: pods of several nodes that pull an image at once each
//! write one, the first rename wins, and the others use it.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::elf_deps;
use emu_logic::images::{self, FileSource, ImageProfile};
use tracing::{info, warn};

/// The version of the layout [`plan`] makes: part of each view's name, so that a changed
/// builder never uses a view an older one wrote.
const LAYOUT: u32 = 2;

/// Where the copies of host files live when they cannot be linked (under the images' directory).
const STORE_DIR: &str = ".files";

/// The most entries a view may have: far above the largest image (python's, about 9,000), so that
/// a pattern or a symlink that would take half of the host fails instead.
const MAX_ENTRIES: usize = 100_000;

/// Host directories a view never takes anything from: the host's runtime state and users' files,
/// which no image has.
const NEVER: [&str; 7] = ["/proc", "/sys", "/dev", "/run", "/tmp", "/home", "/root"];

/// What building a view reads of the host: narrow, so that unit tests plan views over a fake one.
pub(super) trait HostFiles {
    /// What `path` is, not following a symlink it ends in; None when it does not exist (or is
    /// neither a file, a directory nor a symlink).
    fn kind(&self, path: &Path) -> Option<Kind>;
    /// The names in directory `dir` (none when it cannot be read).
    fn list(&self, dir: &Path) -> Vec<OsString>;
    /// The first bytes of file `path` (up to 4 KiB): its ELF headers or `#!` line.
    fn head(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// What `<loader> --list <object>` prints: the libraries the object loads, as ldd shows them.
    fn list_libraries(&self, loader: &Path, object: &Path) -> Result<String, String>;
    /// dpkg's file list of `package`; None when it is not installed.
    fn package_list(&self, package: &str) -> Option<String>;
    /// `busybox --list` of the host's busybox at `busybox`.
    fn busybox_applets(&self, busybox: &Path) -> Result<Vec<String>, String>;
}

/// What a host path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    File { mode: u32, size: u64 },
    Dir { mode: u32 },
    Symlink(PathBuf),
}

/// One entry of a view, at its path in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Dir {
        mode: u32,
    },
    /// The host's file `source`, as it is (a hard link, or a link to the cluster's copy).
    Host {
        source: PathBuf,
    },
    /// A copy of the host's file `source` with mode `mode`: a file of the image's own that it
    /// takes from the host (its /etc's name databases, nginx's mime.types).
    Copy {
        source: PathBuf,
        mode: u32,
    },
    File {
        content: Vec<u8>,
        mode: u32,
    },
    Symlink(PathBuf),
}

/// An image's files, planned: every path (absolute, as the container sees it) with its entry.
/// Every parent of a path is a directory of the view, so writing the entries in order never
/// passes through a symlink.
#[derive(Debug, Default)]
pub(super) struct View {
    entries: BTreeMap<PathBuf, Entry>,
    /// The size of the host files it holds.
    host_bytes: u64,
    /// Directories of the image owned by one of its users (uid, gid), not root: their homes,
    /// which the image's Dockerfile made with `adduser`.
    owners: BTreeMap<PathBuf, (u32, u32)>,
}

impl View {
    /// Sets `path`'s entry (a later one replaces an earlier one: the image's layout wins over
    /// the host's), making its missing parents directories.
    fn put(&mut self, path: &Path, entry: Entry) -> Result<(), String> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files (at {})", path.display()));
        }
        let mut parents: Vec<&Path> = path.ancestors().skip(1).filter(|p| p.parent().is_some()).collect();
        parents.reverse();
        for parent in parents {
            match self.entries.get(parent) {
                None => {
                    self.entries.insert(parent.to_path_buf(), Entry::Dir { mode: 0o755 });
                }
                Some(Entry::Dir { .. }) => {}
                Some(_) => return Err(format!("{}: {} is not a directory of the image", path.display(), parent.display())),
            }
        }
        if !matches!(entry, Entry::Dir { .. }) && matches!(self.entries.get(path), Some(Entry::Dir { .. })) && self.has_children(path) {
            return Err(format!("{}: a directory of the image is in the way", path.display()));
        }
        self.entries.insert(path.to_path_buf(), entry);
        Ok(())
    }

    fn has_children(&self, dir: &Path) -> bool {
        self.entries.range(dir.to_path_buf()..).nth(1).is_some_and(|(p, _)| p.starts_with(dir))
    }

    /// The entry at `path`.
    #[cfg(test)]
    fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(Path::new(path))
    }
}

/// The directory of `profile`'s files under `images_dir`, built now when this machine has none
/// yet (see the module's comment). `emu_programs`: emu's programs the image runs (bind-mounted
/// at their places): only their libraries go into the view.
pub(super) fn ensure(profile: &ImageProfile, images_dir: &Path, host: &dyn HostFiles, emu_programs: &[PathBuf]) -> Result<PathBuf, String> {
    let dir = images_dir.join(profile.view_name(LAYOUT));
    if dir.is_dir() {
        return Ok(dir);
    }
    // One pull of an image at a time on this machine: the pods that want it meanwhile (on every
    // node) wait for it rather than each writing a view of its own, which on ext4 costs the
    // inodes of its directories and symlinks, and their CPU, several times over.
    fs::create_dir_all(images_dir).map_err(|e| format!("creating {}: {e}", images_dir.display()))?;
    let lock_path = images_dir.join(format!(".{}.lock", dir.file_name().unwrap_or_default().to_string_lossy()));
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    let _pulling = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let started = Instant::now();
    // Shared objects name no loader: theirs is this program's own (the host's).
    let default_loader = std::env::current_exe().ok().and_then(|exe| loader_of(host, &exe));
    let view = plan(profile, host, emu_programs, default_loader.as_deref())?;
    publish(&view, images_dir, &dir)?;
    info!(
        image = profile.name,
        dir = %dir.display(),
        entries = view.entries.len(),
        host_kib = view.host_bytes / 1024,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "image pulled: its files are ready"
    );
    Ok(dir)
}

/// The loader that program `program` names (PT_INTERP), if it is dynamically linked.
fn loader_of(host: &dyn HostFiles, program: &Path) -> Option<PathBuf> {
    match classify(&host.head(program).ok()?) {
        Class::Dynamic { interpreter } => interpreter.map(PathBuf::from),
        _ => None,
    }
}

/// Plans `profile`'s view over `host`: the host's files it names with what they need, then the
/// image's own layout over them. `default_loader` lists the libraries of shared objects.
pub(super) fn plan(
    profile: &ImageProfile,
    host: &dyn HostFiles,
    emu_programs: &[PathBuf],
    default_loader: Option<&Path>,
) -> Result<View, String> {
    let mut w = Walker { host, view: View::default(), default_loader, examined: HashSet::new(), walked: HashSet::new(), unlisted: 0 };
    // The image's programs must be there and run: a failure to list their libraries fails the pull.
    for program in profile.host_programs {
        let real = w.add(Path::new(program.path), false)?.ok_or_else(|| format!("{} is not installed", program.path))?;
        w.examine(&real, true)?;
    }
    for program in emu_programs {
        w.examine(program, true)?;
    }
    for package in profile.package_names() {
        if let Some(list) = host.package_list(package) {
            for file in images::package_files(&list) {
                w.add(Path::new(file), true)?;
            }
        }
    }
    for pattern in profile.host_files.iter().flat_map(|group| group.iter()) {
        for path in w.expand(pattern) {
            w.add(&path, true)?;
        }
    }
    // Merged /usr's links at the top (/bin -> usr/bin, /lib64 -> usr/lib64, ...) as the host has
    // them: scripts name /bin/sh, programs /lib64's loader, users /bin/bash.
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let path = Path::new("/").join(name);
        if let Some(Kind::Symlink(target)) = host.kind(&path) {
            w.view.put(&path, Entry::Symlink(target))?;
        }
    }
    if w.unlisted > 0 {
        warn!(
            image = profile.name,
            files = w.unlisted,
            "the libraries of some of the image's other files could not be listed; they may not run"
        );
    }
    let mut view = w.view;
    image_layer(&mut view, profile, host)?;
    Ok(view)
}

/// Walks the host's files into a view.
struct Walker<'a> {
    host: &'a dyn HostFiles,
    view: View,
    default_loader: Option<&'a Path>,
    /// Files whose needs were looked at, directories walked.
    examined: HashSet<PathBuf>,
    walked: HashSet<PathBuf>,
    /// Files (not the image's programs) whose libraries could not be listed.
    unlisted: usize,
}

impl Walker<'_> {
    /// Puts the host's `path` into the view (a directory with everything beneath it), with the
    /// symlinks on its way; with `examine`, also what programs in it need. Its path without
    /// symlinks, or None when the host lacks it.
    fn add(&mut self, path: &Path, examine: bool) -> Result<Option<PathBuf>, String> {
        let Some((real, kind)) = self.resolve(path, true)? else { return Ok(None) };
        if NEVER.iter().any(|dir| real.starts_with(dir)) {
            return Ok(None);
        }
        match kind {
            Kind::File { size, .. } => {
                self.put_host(&real, size)?;
                if examine {
                    self.examine(&real, false)?;
                }
            }
            Kind::Dir { .. } => {
                let root = real.clone();
                self.walk(&real, examine, &root)?;
            }
            Kind::Symlink(_) => unreachable!("resolve follows every symlink"),
        }
        Ok(Some(real))
    }

    fn put_host(&mut self, path: &Path, size: u64) -> Result<(), String> {
        if !matches!(self.view.entries.get(path), Some(Entry::Host { .. })) {
            self.view.host_bytes += size;
            self.view.put(path, Entry::Host { source: path.to_path_buf() })?;
        }
        Ok(())
    }

    /// Follows `path` on the host as the kernel does, putting each symlink met into the view when
    /// `record`: the path without symlinks and what it is, or None when a part is missing.
    fn resolve(&mut self, path: &Path, record: bool) -> Result<Option<(PathBuf, Kind)>, String> {
        let mut pending: Vec<OsString> = parts(path);
        pending.reverse();
        let mut at = PathBuf::from("/");
        let mut kind = Kind::Dir { mode: 0o755 };
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                at.pop();
                kind = Kind::Dir { mode: 0o755 };
                continue;
            }
            let candidate = at.join(&part);
            match self.host.kind(&candidate) {
                None => return Ok(None),
                Some(Kind::Symlink(target)) => {
                    links += 1;
                    if links > 40 {
                        return Err(format!("{}: too many levels of symbolic links", path.display()));
                    }
                    if record {
                        self.view.put(&candidate, Entry::Symlink(target.clone()))?;
                    }
                    if target.is_absolute() {
                        at = PathBuf::from("/");
                    }
                    pending.extend(parts(&target).into_iter().rev());
                }
                // A file has nothing beneath it.
                Some(Kind::File { .. }) if !pending.is_empty() => return Ok(None),
                Some(found) => {
                    at = candidate;
                    kind = found;
                }
            }
        }
        Ok(Some((at, kind)))
    }

    /// Puts directory `dir` and everything beneath it into the view. A symlink in it comes with
    /// what it points at when that is a file, or a directory inside `root` (the directory the
    /// profile named): a link out to another directory stays a link alone, so that no link
    /// takes a view into the rest of the host.
    fn walk(&mut self, dir: &Path, examine: bool, root: &Path) -> Result<(), String> {
        if !self.walked.insert(dir.to_path_buf()) {
            return Ok(());
        }
        // `/` and `/usr`, `/etc`...: a mistake in a profile, never an image's files.
        if dir.components().count() < 3 {
            return Err(format!("{}: an image never has all of a top-level directory", dir.display()));
        }
        let mode = match self.host.kind(dir) {
            Some(Kind::Dir { mode }) => mode,
            _ => 0o755,
        };
        self.view.put(dir, Entry::Dir { mode })?;
        let mut names = self.host.list(dir);
        names.sort();
        for name in names {
            let path = dir.join(&name);
            match self.host.kind(&path) {
                Some(Kind::File { mode, size }) => {
                    self.put_host(&path, size)?;
                    // Programs, and shared objects (dlopen'ed modules are not executable).
                    if examine && (mode & 0o111 != 0 || name.to_string_lossy().contains(".so")) {
                        self.examine(&path, false)?;
                    }
                }
                Some(Kind::Dir { .. }) => self.walk(&path, examine, root)?,
                Some(Kind::Symlink(target)) => {
                    self.view.put(&path, Entry::Symlink(target.clone()))?;
                    let target = dir.join(&target);
                    match self.resolve(&target, false)? {
                        Some((_, Kind::File { .. })) => {
                            self.add(&target, examine)?;
                        }
                        Some((real, Kind::Dir { .. })) if real.starts_with(root) => {
                            self.add(&target, examine)?;
                        }
                        _ => {}
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Puts what file `path` needs to run into the view: a script's interpreter, an ELF
    /// object's loader and libraries. `required`: a failure to list its libraries fails the view
    /// (the image's programs); otherwise it is counted.
    fn examine(&mut self, path: &Path, required: bool) -> Result<(), String> {
        if !self.examined.insert(path.to_path_buf()) {
            return Ok(());
        }
        let head = self.host.head(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        match classify(&head) {
            Class::Script(interpreter) => {
                self.add(Path::new(&interpreter), true)?;
            }
            Class::Dynamic { interpreter } => {
                let Some(loader) = interpreter.map(PathBuf::from).or_else(|| self.default_loader.map(Path::to_path_buf)) else {
                    return Ok(());
                };
                self.add(&loader, false)?;
                match self.host.list_libraries(&loader, path) {
                    Ok(out) => {
                        let (found, missing) = parse_ld_list(&out);
                        for lib in found {
                            self.add(&lib, false)?;
                        }
                        if !missing.is_empty() {
                            warn!(file = %path.display(), missing = %missing.join(", "), "libraries not found on this machine");
                        }
                    }
                    Err(e) if required => return Err(e),
                    Err(_) => self.unlisted += 1,
                }
            }
            Class::Static | Class::Other => {}
        }
        Ok(())
    }

    /// The host paths that `pattern` names (see [`ImageProfile::host_files`]) and that exist.
    fn expand(&self, pattern: &str) -> Vec<PathBuf> {
        let mut paths = vec![PathBuf::from("/")];
        for part in parts(Path::new(pattern)) {
            let part = part.to_string_lossy().into_owned();
            if !part.contains('*') {
                paths.iter_mut().for_each(|p| p.push(&part));
                continue;
            }
            let mut matched = Vec::new();
            for dir in &paths {
                let mut names = self.host.list(dir);
                names.sort();
                matched.extend(names.into_iter().filter(|n| images::matches_component(&part, &n.to_string_lossy())).map(|n| dir.join(n)));
            }
            paths = matched;
        }
        paths.retain(|p| self.host.kind(p).is_some());
        paths
    }
}

/// A path's parts after the root: names and `..`.
fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// The directories every root has, as an image's base layer has them.
const ROOT_DIRS: [(&str, u32); 16] = [
    ("/etc", 0o755),
    ("/var/log", 0o755),
    ("/var/lib", 0o755),
    ("/var/cache", 0o755),
    ("/var/tmp", 0o1777),
    ("/tmp", 0o1777),
    ("/run/lock", 0o755),
    ("/root", 0o700),
    ("/home", 0o755),
    ("/mnt", 0o755),
    ("/opt", 0o755),
    ("/srv", 0o755),
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/dev", 0o755),
    ("/usr", 0o755),
];

/// The image's own layout over the host's files: its root's directories, busybox's applets,
/// /etc, the profile's directories, files and symlinks, and the mount points of emu's mounts.
fn image_layer(view: &mut View, profile: &ImageProfile, host: &dyn HostFiles) -> Result<(), String> {
    let path = Path::new;
    for (dir, mode) in ROOT_DIRS {
        view.put(path(dir), Entry::Dir { mode })?;
    }
    view.put(path("/var/run"), Entry::Symlink("/run".into()))?;
    view.put(path("/var/lock"), Entry::Symlink("/run/lock".into()))?;
    if profile.busybox_bin {
        // Busybox's applets in /bin, instead of merged /usr's link to /usr/bin.
        view.put(path("/bin"), Entry::Dir { mode: 0o755 })?;
        view.put(path("/bin/busybox"), Entry::Symlink("/usr/bin/busybox".into()))?;
        match host.busybox_applets(path("/usr/bin/busybox")) {
            Ok(applets) => {
                for applet in applets.iter().filter(|a| !a.contains('/') && *a != "busybox") {
                    view.put(&path("/bin").join(applet), Entry::Symlink("busybox".into()))?;
                }
            }
            Err(e) => warn!(image = profile.name, "listing busybox's applets: {e}; the image gets only /bin/busybox"),
        }
    }
    let file = |text: &str| Entry::File { content: text.as_bytes().to_vec(), mode: 0o644 };
    view.put(path("/etc/passwd"), file(&profile.passwd()))?;
    view.put(path("/etc/group"), file(&profile.group()))?;
    let nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n\
                    protocols: files\nservices: files\nethers: files\nrpc: files\n";
    view.put(path("/etc/nsswitch.conf"), file(nsswitch))?;
    view.put(path("/etc/mtab"), Entry::Symlink("/proc/self/mounts".into()))?;
    // The dynamic linker's cache and the name databases of the host's glibc, which runs everything.
    for name in ["ld.so.cache", "services", "protocols"] {
        let source = path("/etc").join(name);
        if let Some(Kind::File { .. }) = host.kind(&source) {
            view.put(&source, Entry::Copy { source: source.clone(), mode: 0o644 })?;
        }
    }
    // Mount points of the pod's files, which kubelet bind-mounts into every container.
    for name in ["hosts", "resolv.conf", "hostname"] {
        view.put(&path("/etc").join(name), file(""))?;
    }
    for dir in profile.dirs {
        view.put(path(dir), Entry::Dir { mode: 0o755 })?;
    }
    // A user's home that the image has is the user's (curlimages/curl's /home/curl_user).
    for user in profile.users {
        if matches!(view.entries.get(path(user.home)), Some(Entry::Dir { .. })) {
            view.owners.insert(path(user.home).to_path_buf(), (user.uid, user.gid));
        }
    }
    for f in profile.files {
        let entry = match &f.source {
            FileSource::Inline(text) => Entry::File { content: text.as_bytes().to_vec(), mode: f.mode },
            FileSource::Host(source) if host.kind(path(source)).is_some() => Entry::Copy { source: source.into(), mode: f.mode },
            // The Debian package's version of the file, when this machine has it.
            FileSource::Host(_) => continue,
        };
        view.put(path(f.path), entry)?;
    }
    for (link, target) in profile.symlinks {
        view.put(path(link), Entry::Symlink(target.into()))?;
    }
    for mount in profile.emu_mounts {
        let at = match mount {
            images::EmuMount::Program { path, .. } | images::EmuMount::ApiSocket { path } => path,
        };
        view.put(path(at), file(""))?;
    }
    Ok(())
}

/// Writes `view` into a temporary directory beside `dir` and renames it to `dir`; when another
/// pull renamed its copy first, ours goes and theirs stays.
fn publish(view: &View, images_dir: &Path, dir: &Path) -> Result<(), String> {
    static BUILDS: AtomicU32 = AtomicU32::new(0);
    fs::create_dir_all(images_dir).map_err(|e| format!("creating {}: {e}", images_dir.display()))?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let tmp = images_dir.join(format!(".{name}.{}.{}", std::process::id(), BUILDS.fetch_add(1, Ordering::Relaxed)));
    let written = fs::create_dir(&tmp)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("creating {}: {e}", tmp.display()))
        .and_then(|()| write(view, &tmp, &images_dir.join(STORE_DIR)))
        .and_then(|()| fs::rename(&tmp, dir).map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), dir.display())));
    match written {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            // Another pull's rename came first (ours then fails, as its target is not empty).
            if dir.is_dir() {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Writes `view`'s entries into the empty directory `dir`, parents first.
fn write(view: &View, dir: &Path, store: &Path) -> Result<(), String> {
    for (path, entry) in &view.entries {
        let dst = dir.join(path.strip_prefix("/").unwrap_or(path));
        let chmod = |mode: u32| fs::set_permissions(&dst, fs::Permissions::from_mode(mode));
        let done = match entry {
            Entry::Dir { mode } => match fs::create_dir(&dst) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                _ => chmod(*mode),
            },
            Entry::Host { source } => link_or_copy(source, &dst, store),
            Entry::Copy { source, mode } => fs::copy(source, &dst).and_then(|_| chmod(*mode)),
            Entry::File { content, mode } => fs::write(&dst, content).and_then(|()| chmod(*mode)),
            // A link to one of the host's files is written as a hard link to that file (what
            // the busybox image's applets are): a symlink costs an inode, and on an ext4 that
            // churns (clusters made and removed all day) allocating one took 0.8 ms, most of
            // an nginx pull's 0.4 s. Past the file system's link count, a symlink after all.
            Entry::Symlink(target) => match host_file_behind(view, path, target) {
                Some(source) => match link_or_copy(source, &dst, store) {
                    Err(e) if e.raw_os_error() == Some(libc::EMLINK) => symlink(target, &dst),
                    other => other,
                },
                None => symlink(target, &dst),
            },
        };
        done.map_err(|e| format!("writing {}: {e}", dst.display()))?;
        if let Some((uid, gid)) = view.owners.get(path) {
            std::os::unix::fs::lchown(&dst, Some(*uid), Some(*gid)).map_err(|e| format!("giving {} to {uid}:{gid}: {e}", dst.display()))?;
        }
    }
    Ok(())
}

/// The host file that the view's symlink `link` (pointing at `target`) ends at, following the
/// view's own symlinks; None when it ends at a directory, at one of the image's own files,
/// outside the view (`/dev/stdout`), or passes through a linked directory (then the symlink is
/// kept as it is).
fn host_file_behind<'v>(view: &'v View, link: &Path, target: &Path) -> Option<&'v Path> {
    let mut at = lexical(&link.parent()?.join(target));
    for _ in 0..16 {
        match view.entries.get(&at)? {
            Entry::Host { source } => return Some(source),
            Entry::Symlink(next) => at = lexical(&at.parent()?.join(next)),
            _ => return None,
        }
    }
    None
}

/// `path` with `.` and `..` resolved by name (a `..` at the root stays there).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Hard-links the host's file `source` at `dst`; across file systems, links the cluster's copy
/// of it in `store` instead (made now if it has none).
fn link_or_copy(source: &Path, dst: &Path, store: &Path) -> io::Result<()> {
    match fs::hard_link(source, dst) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => fs::hard_link(stored_copy(source, store)?, dst),
        other => other,
    }
}

/// The cluster's copy of the host's file `source` in `store`, one per version of the file
/// (device, inode, modification time), made when missing; written under a temporary name and
/// renamed, so a copy is whole whenever it exists.
fn stored_copy(source: &Path, store: &Path) -> io::Result<PathBuf> {
    let meta = fs::metadata(source)?;
    let name = format!("{:x}-{:x}-{:x}.{:09}", meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
    let stored = store.join(&name);
    if !stored.exists() {
        fs::create_dir_all(store)?;
        static COPIES: AtomicU32 = AtomicU32::new(0);
        let tmp = store.join(format!(".{name}.{}.{}", std::process::id(), COPIES.fetch_add(1, Ordering::Relaxed)));
        // fs::copy gives the copy the source's permissions.
        let copied = fs::copy(source, &tmp).and_then(|_| fs::rename(&tmp, &stored));
        if copied.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        copied?;
    }
    Ok(stored)
}

/// What a file is to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    /// A script: `#!` and its interpreter's path.
    Script(String),
    /// A dynamically linked ELF object: a program names its loader (PT_INTERP), a shared
    /// object none.
    Dynamic {
        interpreter: Option<String>,
    },
    /// A statically linked ELF program: it needs nothing.
    Static,
    Other,
}

/// Classifies a file by its first bytes (its ELF header and program headers, or `#!` line).
fn classify(head: &[u8]) -> Class {
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        return match String::from_utf8_lossy(line).split_whitespace().next() {
            Some(interpreter) if interpreter.starts_with('/') => Class::Script(interpreter.to_string()),
            _ => Class::Other,
        };
    }
    if head.len() < 52 || !head.starts_with(b"\x7fELF") {
        return Class::Other;
    }
    let (wide, big_endian) = match (head[4], head[5]) {
        (1 | 2, 1 | 2) => (head[4] == 2, head[5] == 2),
        _ => return Class::Other,
    };
    let num = |at: usize, len: usize| -> Option<usize> {
        let bytes = head.get(at..at.checked_add(len)?)?;
        let fold = |n: u64, b: &u8| (n << 8) | u64::from(*b);
        let n = if big_endian { bytes.iter().fold(0, fold) } else { bytes.iter().rev().fold(0, fold) };
        usize::try_from(n).ok()
    };
    let header = if wide { (num(32, 8), num(54, 2), num(56, 2)) } else { (num(28, 4), num(42, 2), num(44, 2)) };
    let (Some(phoff), Some(phentsize), Some(phnum)) = header else { return Class::Other };
    let (mut dynamic, mut interpreter) = (false, None);
    for i in 0..phnum {
        // Program headers beyond what was read (never for a usual program): those read count.
        let Some(at) = i.checked_mul(phentsize).and_then(|o| o.checked_add(phoff)) else { break };
        let Some(p_type) = num(at, 4) else { break };
        const PT_DYNAMIC: usize = 2;
        const PT_INTERP: usize = 3;
        match p_type {
            PT_DYNAMIC => dynamic = true,
            PT_INTERP => {
                dynamic = true;
                let (offset, size) = if wide { (num(at + 8, 8), num(at + 32, 8)) } else { (num(at + 4, 4), num(at + 16, 4)) };
                interpreter = offset
                    .zip(size)
                    .and_then(|(o, s)| head.get(o..o.checked_add(s)?))
                    .map(|b| String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned())
                    .filter(|p| p.starts_with('/'));
            }
            _ => {}
        }
    }
    if dynamic {
        Class::Dynamic { interpreter }
    } else {
        Class::Static
    }
}

/// The libraries in `ld.so --list`'s output (ldd's format): each line's path after `=>`, or its
/// own path (the loader); and the names it could not find.
fn parse_ld_list(out: &str) -> (Vec<PathBuf>, Vec<String>) {
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for line in out.lines().map(str::trim) {
        let (name, target) = line.split_once(" => ").unwrap_or((line, line));
        if target.starts_with("not found") {
            missing.push(name.to_string());
            continue;
        }
        // `linux-vdso.so.1 (0x…)` has no file; `statically linked` names none.
        let path = target.split(" (0x").next().unwrap_or(target).trim();
        if path.starts_with('/') {
            found.push(PathBuf::from(path));
        }
    }
    (found, missing)
}

/// dpkg's file lists of the installed packages.
const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// The host as it is.
pub(super) struct RealHost {
    /// Libraries found by reading the objects' headers ([`elf_deps`]); None where only the
    /// loader itself gives its answers, which `list_libraries` then asks.
    resolver: std::cell::RefCell<Option<elf_deps::Resolver>>,
}

impl RealHost {
    pub(super) fn new() -> RealHost {
        RealHost { resolver: std::cell::RefCell::new(elf_deps::Resolver::new()) }
    }
}

impl HostFiles for RealHost {
    fn kind(&self, path: &Path) -> Option<Kind> {
        let meta = fs::symlink_metadata(path).ok()?;
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            fs::read_link(path).ok().map(Kind::Symlink)
        } else if meta.is_dir() {
            Some(Kind::Dir { mode })
        } else if meta.is_file() {
            Some(Kind::File { mode, size: meta.len() })
        } else {
            None
        }
    }

    fn list(&self, dir: &Path) -> Vec<OsString> {
        fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
    }

    fn head(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut head = Vec::with_capacity(4096);
        fs::File::open(path)?.take(4096).read_to_end(&mut head)?;
        Ok(head)
    }

    fn list_libraries(&self, loader: &Path, object: &Path) -> Result<String, String> {
        if let Some(resolver) = self.resolver.borrow_mut().as_mut() {
            return resolver.list(object);
        }
        let argv = format!("{} --list {}", loader.display(), object.display());
        // No LD_LIBRARY_PATH or LD_PRELOAD of ours may change what it finds.
        let out = Command::new(loader)
            .arg("--list")
            .arg(object)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {argv}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // It fails when a library is missing, and still lists the others.
        if out.status.success() || stdout.contains(" => ") {
            Ok(stdout)
        } else {
            Err(format!("{argv}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn package_list(&self, package: &str) -> Option<String> {
        let info = Path::new(DPKG_INFO);
        fs::read_to_string(info.join(format!("{package}.list"))).ok().or_else(|| {
            // A `Multi-Arch: same` package's list is `<package>:<arch>.list`.
            let prefix = format!("{package}:");
            let mut lists: Vec<OsString> = self
                .list(info)
                .into_iter()
                .filter(|n| n.to_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".list")))
                .collect();
            lists.sort();
            lists.first().and_then(|n| fs::read_to_string(info.join(n)).ok())
        })
    }

    fn busybox_applets(&self, busybox: &Path) -> Result<Vec<String>, String> {
        let out = Command::new(busybox)
            .arg("--list")
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {} --list: {e}", busybox.display()))?;
        if !out.status.success() {
            return Err(format!("{} --list: {}", busybox.display(), out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_host_files_resolve_through_the_views_own_links() {
        let mut view = View::default();
        let host = |p: &str| Entry::Host { source: PathBuf::from(format!("/host{p}")) };
        view.put(Path::new("/usr/lib/libssl.so.3"), host("/usr/lib/libssl.so.3")).unwrap();
        view.put(Path::new("/usr/lib/libssl.so"), Entry::Symlink("libssl.so.3".into())).unwrap();
        view.put(Path::new("/usr/bin/busybox"), host("/usr/bin/busybox")).unwrap();
        view.put(Path::new("/bin/busybox"), Entry::Symlink("/usr/bin/busybox".into())).unwrap();
        view.put(Path::new("/bin/sh"), Entry::Symlink("busybox".into())).unwrap();
        view.put(Path::new("/etc/motd"), Entry::File { content: vec![], mode: 0o644 }).unwrap();
        view.put(Path::new("/var/log/x.log"), Entry::Symlink("/dev/stdout".into())).unwrap();
        view.put(Path::new("/loop"), Entry::Symlink("loop".into())).unwrap();
        let behind = |link: &str, target: &str| host_file_behind(&view, Path::new(link), Path::new(target)).map(Path::to_path_buf);
        assert_eq!(behind("/usr/lib/libssl.so", "libssl.so.3"), Some(PathBuf::from("/host/usr/lib/libssl.so.3")));
        assert_eq!(behind("/bin/sh", "busybox"), Some(PathBuf::from("/host/usr/bin/busybox")));
        assert_eq!(behind("/usr/lib/other", "../../usr/lib/./libssl.so"), Some(PathBuf::from("/host/usr/lib/libssl.so.3")));
        // The image's own file, a path outside the view, a directory, a loop: kept as symlinks.
        assert_eq!(behind("/etc/issue", "motd"), None);
        assert_eq!(behind("/var/log/x.log", "/dev/stdout"), None);
        assert_eq!(behind("/lib", "usr/lib"), None);
        assert_eq!(behind("/loop", "loop"), None);
    }
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A host of a few files: a merged-/usr Debian with busybox, nginx and coreutils' cat, apt
    /// (which no image has) and an /etc/alternatives link.
    struct FakeHost {
        files: BTreeMap<PathBuf, Kind>,
        heads: BTreeMap<PathBuf, Vec<u8>>,
        libraries: BTreeMap<PathBuf, String>,
        packages: BTreeMap<String, String>,
        /// The objects `list_libraries` was asked about.
        listed: RefCell<Vec<PathBuf>>,
    }

    const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
    const GNU: &str = "/usr/lib/x86_64-linux-gnu";

    /// An ELF64 little-endian header with one program header: PT_INTERP naming `interpreter`,
    /// or PT_DYNAMIC (a shared object) without one, or PT_LOAD only (static).
    fn elf(interpreter: Option<&str>, dynamic: bool) -> Vec<u8> {
        let mut h = vec![0u8; 64 + 56];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // 64-bit
        h[5] = 1; // little-endian
        h[16] = if interpreter.is_some() { 2 } else { 3 };
        h[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        h[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        h[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let p_type: u32 = match (interpreter, dynamic) {
            (Some(_), _) => 3,
            (None, true) => 2,
            (None, false) => 1,
        };
        h[64..68].copy_from_slice(&p_type.to_le_bytes());
        if let Some(interp) = interpreter {
            let offset = h.len() as u64;
            h[64 + 8..64 + 16].copy_from_slice(&offset.to_le_bytes());
            h[64 + 32..64 + 40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
            h.extend_from_slice(interp.as_bytes());
            h.push(0);
        }
        h
    }

    fn ld_list(libs: &[&str]) -> String {
        let mut out = String::from("\tlinux-vdso.so.1 (0x00007ffd0cbd2000)\n");
        for lib in libs {
            let name = Path::new(lib).file_name().unwrap().to_string_lossy();
            out += &format!("\t{name} => /lib/x86_64-linux-gnu/{name} (0x00007f0a60301000)\n");
        }
        out + &format!("\t{LOADER} (0x00007f0a60488000)\n")
    }

    impl FakeHost {
        fn new() -> FakeHost {
            let mut host = FakeHost {
                files: BTreeMap::new(),
                heads: BTreeMap::new(),
                libraries: BTreeMap::new(),
                packages: BTreeMap::new(),
                listed: RefCell::new(Vec::new()),
            };
            for (link, target) in [("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin")] {
                host.link(link, target);
            }
            // As Debian has it: /lib64 -> usr/lib64, whose loader links to the multiarch one.
            host.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
            for lib in ["ld-linux-x86-64.so.2", "libc.so.6", "libresolv.so.2", "libpcre2-8.so.0", "libtinfo.so.6"] {
                host.file(&format!("{GNU}/{lib}"), 0o644, elf(None, true));
            }
            host.program("/usr/bin/busybox", &["libresolv.so.2", "libc.so.6"]);
            host.program("/usr/sbin/nginx", &["libpcre2-8.so.0", "libc.so.6"]);
            host.program("/usr/bin/cat", &["libc.so.6"]);
            host.program("/usr/bin/dash", &["libc.so.6"]);
            host.program("/usr/bin/bash", &["libtinfo.so.6", "libc.so.6"]);
            host.program("/usr/bin/apt", &["libc.so.6"]);
            host.program("/usr/bin/mawk", &["libc.so.6"]);
            host.link("/usr/bin/sh", "dash");
            host.link("/usr/bin/awk", "/etc/alternatives/awk");
            host.link("/etc/alternatives/awk", "/usr/bin/mawk");
            host.file("/usr/bin/egrep", 0o755, b"#!/bin/sh\nexec grep -E \"$@\"\n".to_vec());
            host.file("/usr/share/nginx/html/index.html", 0o644, b"<h1>Welcome to nginx!</h1>".to_vec());
            host.file("/usr/share/ca-certificates/mozilla/Root_CA.crt", 0o644, b"-----BEGIN".to_vec());
            host.file("/etc/ssl/certs/ca-certificates.crt", 0o644, b"-----BEGIN".to_vec());
            host.link("/etc/ssl/certs/Root_CA.pem", "/usr/share/ca-certificates/mozilla/Root_CA.crt");
            // A link out of the named directory to another one: the link alone.
            host.link("/etc/ssl/certs/private", "/etc/ssl/private");
            host.file("/etc/ssl/private/snakeoil.key", 0o600, b"secret".to_vec());
            host.file("/etc/ld.so.cache", 0o644, b"cache".to_vec());
            host.file("/etc/nginx/mime.types", 0o644, b"types {}".to_vec());
            host.file("/usr/lib/terminfo/x/xterm", 0o644, b"terminfo".to_vec());
            host.packages.insert("dash".into(), "/.\n/bin\n/bin/dash\n/usr/share/man/man1/dash.1.gz\n".into());
            host.packages.insert("coreutils".into(), "/.\n/bin\n/bin/cat\n/usr/bin\n/usr/bin/awk\n".into());
            host.packages.insert("grep".into(), "/.\n/bin/egrep\n".into());
            host
        }

        fn file(&mut self, path: &str, mode: u32, head: Vec<u8>) {
            self.files.insert(path.into(), Kind::File { mode, size: head.len() as u64 });
            self.heads.insert(path.into(), head);
            for dir in Path::new(path).ancestors().skip(1) {
                self.files.entry(dir.to_path_buf()).or_insert(Kind::Dir { mode: 0o755 });
            }
        }

        fn link(&mut self, path: &str, target: &str) {
            self.files.insert(path.into(), Kind::Symlink(target.into()));
            for dir in Path::new(path).ancestors().skip(1) {
                self.files.entry(dir.to_path_buf()).or_insert(Kind::Dir { mode: 0o755 });
            }
        }

        fn program(&mut self, path: &str, libs: &[&str]) {
            self.file(path, 0o755, elf(Some(LOADER), true));
            self.libraries.insert(path.into(), ld_list(libs));
        }
    }

    impl HostFiles for FakeHost {
        fn kind(&self, path: &Path) -> Option<Kind> {
            self.files.get(path).cloned()
        }
        fn list(&self, dir: &Path) -> Vec<OsString> {
            self.files.keys().filter(|p| p.parent() == Some(dir)).map(|p| p.file_name().unwrap().to_os_string()).collect()
        }
        fn head(&self, path: &Path) -> io::Result<Vec<u8>> {
            self.heads.get(path).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn list_libraries(&self, loader: &Path, object: &Path) -> Result<String, String> {
            assert_eq!(loader, Path::new(LOADER));
            self.listed.borrow_mut().push(object.to_path_buf());
            // A shared object's own libraries: libc's are none but the loader.
            Ok(self.libraries.get(object).cloned().unwrap_or_else(|| ld_list(&[])))
        }
        fn package_list(&self, package: &str) -> Option<String> {
            self.packages.get(package).cloned()
        }
        fn busybox_applets(&self, busybox: &Path) -> Result<Vec<String>, String> {
            assert_eq!(busybox, Path::new("/usr/bin/busybox"));
            Ok(["sh", "ls", "busybox", "wget"].map(String::from).to_vec())
        }
    }

    fn host(path: &str) -> Entry {
        Entry::Host { source: path.into() }
    }

    fn link(target: &str) -> Entry {
        Entry::Symlink(target.into())
    }

    fn plan_of(image: &str, host: &FakeHost) -> View {
        plan(images::resolve(image).expect("image"), host, &[], Some(Path::new(LOADER))).expect("plan")
    }

    #[test]
    fn a_busybox_image_has_busybox_its_libraries_and_applets_and_nothing_else_of_the_host() {
        let fake = FakeHost::new();
        let view = plan_of("busybox", &fake);
        assert_eq!(view.get("/usr/bin/busybox"), Some(&host("/usr/bin/busybox")));
        // The libraries where the loader found them (through merged /usr's /lib link), the loader.
        assert_eq!(view.get("/lib"), Some(&link("usr/lib")));
        for lib in ["libc.so.6", "libresolv.so.2", "ld-linux-x86-64.so.2"] {
            let path = format!("{GNU}/{lib}");
            assert_eq!(view.get(&path), Some(&host(&path)), "{lib}");
        }
        assert_eq!(view.get("/lib64"), Some(&link("usr/lib64")));
        assert_eq!(view.get("/usr/lib64/ld-linux-x86-64.so.2"), Some(&link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")));
        // Busybox's /bin: applets link to it, instead of merged /usr's /bin link.
        assert_eq!(view.get("/bin"), Some(&Entry::Dir { mode: 0o755 }));
        assert_eq!(view.get("/bin/busybox"), Some(&link("/usr/bin/busybox")));
        assert_eq!(view.get("/bin/sh"), Some(&link("busybox")));
        assert_eq!(view.get("/bin/wget"), Some(&link("busybox")));
        // Nothing the image does not name.
        let hosts: Vec<&PathBuf> = view.entries.iter().filter(|(_, e)| matches!(e, Entry::Host { .. })).map(|(p, _)| p).collect();
        assert_eq!(hosts.len(), 4, "{hosts:?}");
        for absent in ["/usr/bin/apt", "/usr/sbin/nginx", "/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/etc/ssl/certs"] {
            assert_eq!(view.get(absent), None, "{absent}");
        }
        // busybox and three libraries (the loader among them).
        assert_eq!(view.host_bytes, (elf(Some(LOADER), true).len() + 3 * elf(None, true).len()) as u64);
        // Each object's libraries listed once.
        assert_eq!(*fake.listed.borrow(), [PathBuf::from("/usr/bin/busybox")]);
    }

    #[test]
    fn a_view_has_the_roots_directories_etc_and_the_mount_points() {
        let view = plan_of("busybox", &FakeHost::new());
        assert_eq!(view.get("/tmp"), Some(&Entry::Dir { mode: 0o1777 }));
        assert_eq!(view.get("/root"), Some(&Entry::Dir { mode: 0o700 }));
        assert_eq!(view.get("/var/run"), Some(&link("/run")));
        let Some(Entry::File { content, mode: 0o644 }) = view.get("/etc/passwd") else { panic!("no /etc/passwd") };
        assert!(content.starts_with(b"root:x:0:0:"));
        for mount_point in ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] {
            assert_eq!(view.get(mount_point), Some(&Entry::File { content: vec![], mode: 0o644 }), "{mount_point}");
        }
        assert_eq!(view.get("/etc/ld.so.cache"), Some(&Entry::Copy { source: "/etc/ld.so.cache".into(), mode: 0o644 }));
        assert_eq!(view.get("/etc/mtab"), Some(&link("/proc/self/mounts")));
        // CoreDNS: emu's program and the API socket are mounted on files the view has; the
        // program's libraries are in it, the program itself is not.
        let mut fake = FakeHost::new();
        fake.program("/opt/emu/bin/emu-dns", &["libc.so.6"]);
        let dns = images::resolve("coredns/coredns").unwrap();
        let view = plan(dns, &fake, &[PathBuf::from("/opt/emu/bin/emu-dns")], Some(Path::new(LOADER))).unwrap();
        assert_eq!(view.get("/coredns"), Some(&Entry::File { content: vec![], mode: 0o644 }));
        assert_eq!(view.get("/run/emu/api.sock"), Some(&Entry::File { content: vec![], mode: 0o644 }));
        assert!(view.get(&format!("{GNU}/libc.so.6")).is_some());
        assert_eq!(view.get("/opt/emu/bin/emu-dns"), None);
        assert_eq!(view.get("/etc/coredns"), Some(&Entry::Dir { mode: 0o755 }));
        // Merged /usr's /bin: users and scripts name /bin/sh.
        assert_eq!(view.get("/bin"), Some(&link("usr/bin")));
    }

    #[test]
    fn a_debian_image_has_its_packages_programs_files_and_what_they_need() {
        let fake = FakeHost::new();
        let view = plan_of("nginx", &fake);
        assert_eq!(view.get("/usr/sbin/nginx"), Some(&host("/usr/sbin/nginx")));
        assert!(view.get(&format!("{GNU}/libpcre2-8.so.0")).is_some());
        // Package programs, named by dpkg through /bin, are reached through merged /usr's link.
        assert_eq!(view.get("/bin"), Some(&link("usr/bin")));
        assert_eq!(view.get("/usr/bin/dash"), Some(&host("/usr/bin/dash")));
        assert_eq!(view.get("/usr/bin/cat"), Some(&host("/usr/bin/cat")));
        // /etc/alternatives' links come along with their targets.
        assert_eq!(view.get("/usr/bin/awk"), Some(&link("/etc/alternatives/awk")));
        assert_eq!(view.get("/etc/alternatives/awk"), Some(&link("/usr/bin/mawk")));
        assert_eq!(view.get("/usr/bin/mawk"), Some(&host("/usr/bin/mawk")));
        // A script brings its interpreter (/bin/sh -> dash).
        assert_eq!(view.get("/usr/bin/egrep"), Some(&host("/usr/bin/egrep")));
        assert_eq!(view.get("/usr/bin/sh"), Some(&link("dash")));
        // Named directories with all beneath, links to files followed, links to other
        // directories kept as links only: the host's private keys stay out.
        assert_eq!(view.get("/usr/share/nginx/html/index.html"), Some(&host("/usr/share/nginx/html/index.html")));
        assert_eq!(view.get("/usr/lib/terminfo/x/xterm"), Some(&host("/usr/lib/terminfo/x/xterm")));
        assert_eq!(view.get("/etc/ssl/certs/Root_CA.pem"), Some(&link("/usr/share/ca-certificates/mozilla/Root_CA.crt")));
        assert!(view.get("/usr/share/ca-certificates/mozilla/Root_CA.crt").is_some());
        assert_eq!(view.get("/etc/ssl/certs/private"), Some(&link("/etc/ssl/private")));
        assert_eq!(view.get("/etc/ssl/private/snakeoil.key"), None);
        // The profile's own files; the host's mime.types copied at its place.
        assert_eq!(view.get("/etc/nginx/mime.types"), Some(&Entry::Copy { source: "/etc/nginx/mime.types".into(), mode: 0o644 }));
        assert!(matches!(view.get("/docker-entrypoint.sh"), Some(Entry::File { mode: 0o755, .. })));
        assert_eq!(view.get("/var/log/nginx/access.log"), Some(&link("/dev/stdout")));
        // What the host lacks (curl, ps, ip, most packages) is left out; apt never comes in.
        for absent in ["/usr/bin/curl", "/usr/bin/apt", "/usr/bin/busybox"] {
            assert_eq!(view.get(absent), None, "{absent}");
        }
        // Each object's libraries listed once, data files never.
        let mut listed = fake.listed.borrow().clone();
        listed.sort();
        let mut unique = listed.clone();
        unique.dedup();
        assert_eq!(listed, unique);
        assert!(!listed.iter().any(|p| p.starts_with("/usr/share")), "{listed:?}");
    }

    #[test]
    fn a_missing_program_or_an_unlistable_one_fails_the_pull() {
        let mut fake = FakeHost::new();
        fake.files.remove(Path::new("/usr/bin/busybox"));
        let err = plan(images::resolve("busybox").unwrap(), &fake, &[], Some(Path::new(LOADER))).unwrap_err();
        assert_eq!(err, "/usr/bin/busybox is not installed");

        struct Unlistable(FakeHost);
        impl HostFiles for Unlistable {
            fn kind(&self, path: &Path) -> Option<Kind> {
                self.0.kind(path)
            }
            fn list(&self, dir: &Path) -> Vec<OsString> {
                self.0.list(dir)
            }
            fn head(&self, path: &Path) -> io::Result<Vec<u8>> {
                self.0.head(path)
            }
            fn list_libraries(&self, loader: &Path, object: &Path) -> Result<String, String> {
                Err(format!("{} --list {}: exit status: 127", loader.display(), object.display()))
            }
            fn package_list(&self, package: &str) -> Option<String> {
                self.0.package_list(package)
            }
            fn busybox_applets(&self, busybox: &Path) -> Result<Vec<String>, String> {
                self.0.busybox_applets(busybox)
            }
        }
        let err = plan(images::resolve("nginx").unwrap(), &Unlistable(FakeHost::new()), &[], None).unwrap_err();
        assert_eq!(err, "/lib64/ld-linux-x86-64.so.2 --list /usr/sbin/nginx: exit status: 127");
    }

    #[test]
    fn the_image_layout_wins_but_never_writes_through_a_link() {
        let mut view = View::default();
        view.put(Path::new("/bin"), link("usr/bin")).unwrap();
        view.put(Path::new("/bin"), Entry::Dir { mode: 0o755 }).unwrap();
        view.put(Path::new("/bin/sh"), link("busybox")).unwrap();
        view.put(Path::new("/var/run"), link("/run")).unwrap();
        let err = view.put(Path::new("/var/run/emu/api.sock"), host("/x")).unwrap_err();
        assert_eq!(err, "/var/run/emu/api.sock: /var/run is not a directory of the image");
        let err = view.put(Path::new("/bin"), link("usr/bin")).unwrap_err();
        assert_eq!(err, "/bin: a directory of the image is in the way");
        assert_eq!(view.get("/var"), Some(&Entry::Dir { mode: 0o755 }), "parents are made");
    }

    #[test]
    fn patterns_match_within_components() {
        let mut fake = FakeHost::new();
        fake.file("/usr/lib/x86_64-linux-gnu/perl-base/strict.pm", 0o644, b"1;".to_vec());
        fake.file("/usr/lib/python3.11/os.py", 0o644, b"import abc".to_vec());
        fake.file("/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", 0o644, elf(None, true));
        fake.file("/usr/lib/python3/dist-packages/apt/__init__.py", 0o644, b"".to_vec());
        fake.program("/usr/bin/python3.11", &["libc.so.6"]);
        fake.link("/usr/bin/python3", "python3.11");
        let w = Walker {
            host: &fake,
            view: View::default(),
            default_loader: None,
            examined: HashSet::new(),
            walked: HashSet::new(),
            unlisted: 0,
        };
        assert_eq!(w.expand("/usr/lib/*/perl-base"), [PathBuf::from("/usr/lib/x86_64-linux-gnu/perl-base")]);
        assert_eq!(w.expand("/usr/lib/python3.*"), [PathBuf::from("/usr/lib/python3.11")]);
        assert_eq!(w.expand("/usr/share/perl/5.*"), Vec::<PathBuf>::new());
        assert_eq!(w.expand("/etc/ssl/certs"), [PathBuf::from("/etc/ssl/certs")]);
        // A shared object in a named directory (a module python loads) brings its libraries.
        let view = plan_of("python", &fake);
        let module = PathBuf::from("/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so");
        assert!(view.get(module.to_str().unwrap()).is_some());
        assert!(fake.listed.borrow().contains(&module), "{:?}", fake.listed.borrow());
        assert_eq!(view.get("/usr/lib/python3/dist-packages/apt/__init__.py"), None);
        assert_eq!(view.get("/usr/bin/python3"), Some(&link("python3.11")));
        assert_eq!(view.get("/usr/local/bin/python"), Some(&link("/usr/bin/python3")));
    }

    #[test]
    fn top_level_directories_and_the_hosts_private_places_are_never_taken() {
        let mut fake = FakeHost::new();
        fake.link("/usr/share/nginx/html/all", "/usr");
        fake.link("/usr/share/nginx/html/state", "/run/emu/x");
        fake.file("/run/emu/x", 0o600, b"state".to_vec());
        let view = plan_of("nginx", &fake);
        assert_eq!(view.get("/usr/share/nginx/html/all"), Some(&link("/usr")));
        assert_eq!(view.get("/usr/share/nginx/html/state"), Some(&link("/run/emu/x")));
        assert_eq!(view.get("/run/emu/x"), None);
        assert_eq!(view.get("/usr/bin/apt"), None);
        let mut w = Walker {
            host: &fake,
            view: View::default(),
            default_loader: None,
            examined: HashSet::new(),
            walked: HashSet::new(),
            unlisted: 0,
        };
        assert_eq!(w.add(Path::new("/usr"), false).unwrap_err(), "/usr: an image never has all of a top-level directory");
    }

    #[test]
    fn elf_headers_tell_programs_shared_objects_and_static_programs_apart() {
        assert_eq!(classify(&elf(Some(LOADER), true)), Class::Dynamic { interpreter: Some(LOADER.into()) });
        assert_eq!(classify(&elf(None, true)), Class::Dynamic { interpreter: None });
        assert_eq!(classify(&elf(None, false)), Class::Static);
        assert_eq!(classify(b"#!/bin/sh\nexec grep -E \"$@\"\n"), Class::Script("/bin/sh".into()));
        assert_eq!(classify(b"#! /usr/bin/env python3\n"), Class::Script("/usr/bin/env".into()));
        assert_eq!(classify(b"#!sh\n"), Class::Other);
        assert_eq!(classify(b"<html>"), Class::Other);
        // Truncated or foreign headers are no program.
        assert_eq!(classify(&elf(Some(LOADER), true)[..40]), Class::Other);
        let mut odd = elf(Some(LOADER), true);
        odd[4] = 3;
        assert_eq!(classify(&odd), Class::Other);
        // An interpreter beyond what was read: dynamic, with the default loader.
        let cut = elf(Some(LOADER), true);
        assert_eq!(classify(&cut[..64 + 56]), Class::Dynamic { interpreter: None });
    }

    #[test]
    fn ld_list_output_gives_paths_and_missing_names() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd3a1f2000)\n\tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007fc5ceb64000)\n\
                   \tlibgone.so.1 => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x00007fc5cec6c000)\n\tstatically linked\n";
        let (found, missing) = parse_ld_list(out);
        assert_eq!(found, [PathBuf::from("/lib/x86_64-linux-gnu/libcurl.so.4"), PathBuf::from(LOADER)]);
        assert_eq!(missing, ["libgone.so.1"]);
    }

    #[test]
    fn a_view_is_written_with_links_and_published_once_by_concurrent_pulls() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("host");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("prog"), b"program").unwrap();
        fs::set_permissions(src.join("prog"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut view = View::default();
        view.put(Path::new("/usr/bin/prog"), Entry::Host { source: src.join("prog") }).unwrap();
        view.put(Path::new("/tmp"), Entry::Dir { mode: 0o1777 }).unwrap();
        view.put(Path::new("/etc/passwd"), Entry::File { content: b"root:x:0:0::/root:/bin/sh\n".to_vec(), mode: 0o644 }).unwrap();
        view.put(Path::new("/etc/prog.conf"), Entry::Copy { source: src.join("prog"), mode: 0o600 }).unwrap();
        view.put(Path::new("/bin"), link("usr/bin")).unwrap();
        let images_dir = tmp.path().join("images");
        let dir = images_dir.join("img-0123");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| publish(&view, &images_dir, &dir).unwrap());
            }
        });
        let mode = |p: &str| fs::symlink_metadata(dir.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(fs::read(dir.join("bin/prog")).unwrap(), b"program");
        assert_eq!(fs::metadata(dir.join("usr/bin/prog")).unwrap().ino(), fs::metadata(src.join("prog")).unwrap().ino(), "a hard link");
        assert_eq!(mode("usr/bin/prog"), 0o755);
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("etc/prog.conf"), 0o600);
        assert_ne!(fs::metadata(dir.join("etc/prog.conf")).unwrap().ino(), fs::metadata(src.join("prog")).unwrap().ino(), "a copy");
        assert_eq!(fs::read_link(dir.join("bin")).unwrap(), Path::new("usr/bin"));
        // One view, no temporary directory left by the pulls that lost.
        let names: Vec<String> =
            fs::read_dir(&images_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["img-0123"]);
    }

    #[test]
    fn a_copy_is_made_once_per_version_of_a_host_file() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("libc.so.6");
        fs::write(&source, b"v1").unwrap();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o755)).unwrap();
        let store = tmp.path().join(STORE_DIR);
        let first = stored_copy(&source, &store).unwrap();
        assert_eq!(stored_copy(&source, &store).unwrap(), first);
        assert_eq!(fs::read(&first).unwrap(), b"v1");
        assert_eq!(fs::metadata(&first).unwrap().mode() & 0o7777, 0o755);
        // A new version (another inode: dpkg writes it beside and renames it over) is another copy.
        fs::write(tmp.path().join("libc.so.6.dpkg-new"), b"v2").unwrap();
        fs::rename(tmp.path().join("libc.so.6.dpkg-new"), &source).unwrap();
        let second = stored_copy(&source, &store).unwrap();
        assert_ne!(second, first);
        assert_eq!(fs::read(&second).unwrap(), b"v2");
        assert_eq!(fs::read_dir(&store).unwrap().count(), 2);
    }
}
