//! The shared libraries an ELF object loads, found as glibc's dynamic loader finds them but
//! without running it: its `DT_NEEDED` names, transitively, each looked up in the object's
//! `DT_RPATH` or `DT_RUNPATH`, then the directories of `/etc/ld.so.conf` (what `ldconfig` puts in
//! the loader's cache), then the loader's system directories, skipping a file of another class
//! or machine as the loader does.
//!
//! Why not `ld.so --list` (what ldd runs)? It costs a process per object: an image of Debian's
//! base system has some 400 programs and libraries, and pulling nginx's took half a second of
//! `emu up`'s quarter second. Reading the few headers needed takes microseconds. The loader
//! stays the reference: a test compares both on this machine's programs, and a machine with
//! glibc-hwcaps subdirectories (libraries built for newer CPUs, which the loader prefers) is
//! left to the loader ([`Resolver::new`] answers None there).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The loader's built-in search path on Debian's x86-64 and similar multiarch systems, after
/// its cache.
const SYSTEM_DIRS: [&str; 4] = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];

/// What the loader reads of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Dynamic {
    class: u8,
    machine: u16,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// Resolves libraries for one pull; remembers every object it read.
pub(super) struct Resolver {
    dirs: Vec<PathBuf>,
    read: HashMap<PathBuf, Option<Dynamic>>,
}

impl Resolver {
    /// The resolver of this machine's loader configuration; None where it would not give the
    /// loader's answers (glibc-hwcaps subdirectories present).
    pub(super) fn new() -> Option<Resolver> {
        let mut dirs = Vec::new();
        conf_dirs(Path::new("/etc/ld.so.conf"), &mut dirs, 0);
        dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
        let mut seen = HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        if dirs.iter().any(|d| d.join("glibc-hwcaps").exists()) {
            return None;
        }
        Some(Resolver { dirs, read: HashMap::new() })
    }

    /// The libraries `object` loads, transitively, in `ld.so --list`'s format (`name => path`,
    /// `name => not found`), so that both answers read the same.
    pub(super) fn list(&mut self, object: &Path) -> Result<String, String> {
        let Some(root) = self.dynamic(object).map_err(|e| format!("reading {}: {e}", object.display()))? else {
            return Ok(String::from("\tstatically linked\n"));
        };
        let mut out = String::new();
        let mut loaded: HashSet<String> = HashSet::new();
        // Breadth first, as the loader loads: (the name, who needs it, the RPATHs in force).
        let mut queue: VecDeque<(String, PathBuf, Vec<String>)> = VecDeque::new();
        let origin_rpaths = if root.runpath.is_empty() { expand_origin(&root.rpath, object) } else { Vec::new() };
        for name in &root.needed {
            queue.push_back((name.clone(), object.to_path_buf(), origin_rpaths.clone()));
        }
        while let Some((name, needer, rpaths)) = queue.pop_front() {
            if !loaded.insert(name.clone()) {
                continue;
            }
            let needer_dyn = self.dynamic(&needer).ok().flatten().unwrap_or_default();
            let Some(path) = self.find(&name, &needer, &needer_dyn, &rpaths, &root) else {
                out += &format!("\t{name} => not found\n");
                continue;
            };
            out += &format!("\t{name} => {} (0x0)\n", path.display());
            let Ok(Some(lib)) = self.dynamic(&path) else { continue };
            // An object's DT_RPATH applies to what it and its dependents load, unless it has a
            // DT_RUNPATH, which applies to its own direct needs only.
            let mut chain = rpaths.clone();
            if lib.runpath.is_empty() {
                chain.extend(expand_origin(&lib.rpath, &path));
            }
            for next in &lib.needed {
                queue.push_back((next.clone(), path.clone(), chain.clone()));
            }
        }
        Ok(out)
    }

    /// Where the loader finds `name` for `needer`.
    fn find(&mut self, name: &str, needer: &Path, needer_dyn: &Dynamic, rpaths: &[String], root: &Dynamic) -> Option<PathBuf> {
        if name.contains('/') {
            return Path::new(name).exists().then(|| PathBuf::from(name));
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        if needer_dyn.runpath.is_empty() {
            dirs.extend(expand_origin(rpaths, needer).into_iter().map(PathBuf::from));
        } else {
            dirs.extend(expand_origin(&needer_dyn.runpath, needer).into_iter().map(PathBuf::from));
        }
        dirs.extend(self.dirs.iter().cloned());
        for dir in dirs {
            let candidate = dir.join(name);
            if !candidate.is_file() {
                continue;
            }
            // A library of another class or machine (a 32-bit one in /usr/lib) is passed over.
            match self.dynamic(&candidate) {
                Ok(Some(lib)) if lib.class == root.class && lib.machine == root.machine => return Some(candidate),
                _ => continue,
            }
        }
        None
    }

    fn dynamic(&mut self, path: &Path) -> io::Result<Option<Dynamic>> {
        if let Some(known) = self.read.get(path) {
            return Ok(known.clone());
        }
        let read = read_dynamic(path)?;
        self.read.insert(path.to_path_buf(), read.clone());
        Ok(read)
    }
}

/// `$ORIGIN` (and `${ORIGIN}`) in search paths: the directory of the object that names them.
fn expand_origin(paths: &[String], object: &Path) -> Vec<String> {
    let origin = object.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    paths.iter().map(|p| p.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin)).collect()
}

/// The directories of an ld.so.conf, following its `include` globs (one `*` per name, as
/// Debian's `include /etc/ld.so.conf.d/*.conf`), in order.
fn conf_dirs(conf: &Path, dirs: &mut Vec<PathBuf>, depth: usize) {
    let Ok(text) = std::fs::read_to_string(conf) else { return };
    if depth > 8 {
        return;
    }
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            let pattern = Path::new(pattern);
            let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name().and_then(|n| n.to_str())) else { continue };
            let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix)))
                .collect();
            files.sort();
            for file in files {
                conf_dirs(&file, dirs, depth + 1);
            }
        } else if line.starts_with('/') {
            dirs.push(PathBuf::from(line));
        }
    }
}

/// The dynamic section of ELF file `path`: None for a file that is not a dynamic ELF object.
fn read_dynamic(path: &Path) -> io::Result<Option<Dynamic>> {
    let mut file = File::open(path)?;
    let mut header = [0u8; 64];
    if file.read(&mut header)? < 52 || !header.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let (wide, big) = match (header[4], header[5]) {
        (1 | 2, 1 | 2) => (header[4] == 2, header[5] == 2),
        _ => return Ok(None),
    };
    let num = |bytes: &[u8]| -> u64 {
        let fold = |n: u64, b: &u8| (n << 8) | u64::from(*b);
        if big {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        }
    };
    let machine = num(&header[18..20]) as u16;
    let (phoff, phentsize, phnum) = if wide {
        (num(&header[32..40]), num(&header[54..56]), num(&header[56..58]))
    } else {
        (num(&header[28..32]), num(&header[42..44]), num(&header[44..46]))
    };
    // An object without program headers (a relocatable .o) loads nothing.
    if phentsize < if wide { 56 } else { 32 } || phnum == 0 {
        return Ok(None);
    }
    let mut table = vec![0u8; usize::try_from(phentsize * phnum).unwrap_or(0).min(64 * 1024)];
    file.seek(SeekFrom::Start(phoff))?;
    file.read_exact(&mut table)?;
    // (vaddr, offset, filesz) of each PT_LOAD, and the PT_DYNAMIC segment.
    let (mut loads, mut dynamic) = (Vec::new(), None);
    for entry in table.chunks_exact(phentsize as usize) {
        let p_type = num(&entry[0..4]);
        let (offset, vaddr, filesz) = if wide {
            (num(&entry[8..16]), num(&entry[16..24]), num(&entry[32..40]))
        } else {
            (num(&entry[4..8]), num(&entry[8..12]), num(&entry[16..20]))
        };
        match p_type {
            1 => loads.push((vaddr, offset, filesz)),
            2 => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let Some((dyn_offset, dyn_size)) = dynamic else { return Ok(None) };
    let mut section = vec![0u8; usize::try_from(dyn_size).unwrap_or(0).min(1 << 20)];
    file.seek(SeekFrom::Start(dyn_offset))?;
    file.read_exact(&mut section)?;
    let entry_size = if wide { 16 } else { 8 };
    let (mut strtab, mut strsz) = (None, 0u64);
    let (mut needed, mut rpath, mut runpath) = (Vec::new(), Vec::new(), Vec::new());
    for entry in section.chunks_exact(entry_size) {
        let half = entry_size / 2;
        let (tag, value) = (num(&entry[..half]), num(&entry[half..]));
        match tag {
            0 => break,
            1 => needed.push(value),
            5 => strtab = Some(value),
            10 => strsz = value,
            15 => rpath.push(value),
            29 => runpath.push(value),
            _ => {}
        }
    }
    // DT_STRTAB is an address: the file offset is where its PT_LOAD puts it.
    let Some(offset) =
        strtab.and_then(|addr| loads.iter().find(|(v, _, size)| addr >= *v && addr < v + size).map(|(v, o, _)| addr - v + o))
    else {
        return Ok(None);
    };
    let mut strings = vec![0u8; usize::try_from(strsz).unwrap_or(0).min(16 << 20)];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut strings)?;
    let string = |at: u64| -> String {
        let bytes = strings.get(at as usize..).unwrap_or_default();
        String::from_utf8_lossy(bytes.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
    };
    let paths = |list: Vec<u64>| list.into_iter().flat_map(|at| string(at).split(':').map(String::from).collect::<Vec<_>>()).collect();
    Ok(Some(Dynamic {
        class: header[4],
        machine,
        needed: needed.into_iter().map(string).collect(),
        rpath: paths(rpath),
        runpath: paths(runpath),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::process::Command;

    /// The paths in ldd's format, without the vDSO (no file) and the loader (ld.so lists it
    /// with the others; emu adds the loader from PT_INTERP).
    fn paths(listing: &str) -> BTreeSet<String> {
        listing
            .lines()
            .filter_map(|l| l.trim().split_once(" => ").map(|(_, p)| p.split(" (0x").next().unwrap_or(p).to_string()))
            .filter(|p| !p.contains("ld-linux"))
            .collect()
    }

    /// Every 64-bit program and library of this machine's /usr/bin, /usr/sbin and multiarch
    /// library directory (over a thousand on Debian's base system with emu's packages): the same
    /// libraries as `ld.so --list` lists, where the loader can list them.
    #[test]
    fn the_same_libraries_as_the_loader_lists() {
        let Some(mut resolver) = Resolver::new() else { return };
        let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
        let (mut compared, mut differing) = (0, Vec::new());
        for dir in ["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"] {
            for object in std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()) {
                if object.is_symlink() || !object.is_file() || !matches!(read_dynamic(&object), Ok(Some(d)) if d.class == 2) {
                    continue;
                }
                let out = Command::new(loader).arg("--list").arg(&object).env_clear().output().unwrap();
                let theirs = String::from_utf8_lossy(&out.stdout).into_owned();
                if !out.status.success() && !theirs.contains(" => ") {
                    continue;
                }
                let ours = resolver.list(&object).unwrap();
                compared += 1;
                if paths(&ours) != paths(&theirs) {
                    differing.push(format!("{}:\nours:\n{ours}ld.so --list:\n{theirs}", object.display()));
                }
            }
        }
        assert!(differing.is_empty(), "{} of {compared} differ:\n{}", differing.len(), differing.join("\n"));
        assert!(compared >= 100, "only {compared} objects to compare here");
    }

    #[test]
    fn not_an_elf_object_is_none_and_a_missing_library_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(read_dynamic(&script).unwrap(), None);
        let mut resolver = Resolver { dirs: vec![dir.path().to_path_buf()], read: HashMap::new() };
        // /usr/bin/ls needs libc.so.6, which the lone directory lacks.
        if Path::new("/usr/bin/ls").exists() {
            assert!(resolver.list(Path::new("/usr/bin/ls")).unwrap().contains("libc.so.6 => not found"));
        }
    }

    #[test]
    fn ld_so_conf_includes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(d.join("conf.d/b.conf"), "/b\n").unwrap();
        std::fs::write(d.join("conf.d/a.conf"), "# comment\n/a1\n/a2 # trailing\n").unwrap();
        std::fs::write(d.join("conf.d/ignored.txt"), "/x\n").unwrap();
        std::fs::write(d.join("ld.so.conf"), format!("/first\ninclude {}/conf.d/*.conf\n", d.display())).unwrap();
        let mut dirs = Vec::new();
        conf_dirs(&d.join("ld.so.conf"), &mut dirs, 0);
        assert_eq!(dirs, ["/first", "/a1", "/a2", "/b"].map(PathBuf::from));
    }
}
