//! Installing emu: its programs side by side (`emu install`, the one install step that
//! `scripts/up`, `scripts/install` and the Vagrantfile share), its man pages and shell completions
//! (`emu completion`), all generated from the same command-line definitions as the parser; and
//! the check that every program emu runs is installed beside it.

use anyhow::{bail, Context as _};
use clap::{Args, CommandFactory};
use emu_logic::images;
use emu_provider::programs::{missing_message, programs_dir};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Install into PREFIX/bin (the programs), PREFIX/share/man/man1 (man pages) and
    /// PREFIX/share/bash-completion, zsh and fish (completions).
    #[arg(long, default_value = "/usr/local", value_name = "PREFIX")]
    pub prefix: PathBuf,
}

/// `emu install`: copies this `emu` and its programs into PREFIX/bin, and writes the man pages
/// and completions. Each program replaces the installed one by a rename, so clusters running the
/// old one keep running.
pub fn install(a: InstallArgs) -> anyhow::Result<i32> {
    let from = programs_dir()?;
    let mut programs = vec!["emu"];
    programs.extend(images::companion_programs());
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !from.join(p).is_file()).collect();
    if !missing.is_empty() {
        bail!("{}", missing_message(&missing, &from));
    }
    let bin = a.prefix.join("bin");
    create_dir(&bin)?;
    let same_dir = std::fs::canonicalize(&from).ok() == std::fs::canonicalize(&bin).ok();
    for p in programs.iter().filter(|_| !same_dir) {
        replace_file(&bin.join(p), 0o755, &std::fs::read(from.join(p)).with_context(|| format!("reading {}", from.join(p).display()))?)?;
    }
    println!("installed {} into {}", programs.join(", "), bin.display());

    let man = a.prefix.join("share/man/man1");
    create_dir(&man)?;
    clap_mangen::generate_to(crate::Cli::command(), &man).with_context(|| format!("writing man pages to {}", man.display()))?;
    println!("installed the man pages (`man emu`, `man emu-get`, …) into {}", man.display());

    for (shell, dir, file) in [
        (clap_complete::Shell::Bash, "share/bash-completion/completions", "emu"),
        (clap_complete::Shell::Zsh, "share/zsh/site-functions", "_emu"),
        (clap_complete::Shell::Fish, "share/fish/vendor_completions.d", "emu.fish"),
    ] {
        let dir = a.prefix.join(dir);
        create_dir(&dir)?;
        replace_file(&dir.join(file), 0o644, &completion_script(shell))?;
    }
    println!("installed shell completions for bash, zsh and fish under {}", a.prefix.join("share").display());
    Ok(0)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes `bytes` beside `path` and renames it over `path`: a running program keeps its old file.
fn replace_file(path: &Path, mode: u32, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.installing"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))
}

/// The completion script for `shell`, as `emu completion SHELL` prints it.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::Cli::command(), "emu", &mut out);
    out
}

/// `emu completion SHELL`, as `kubectl completion`: `source <(emu completion bash)`.
pub fn completion(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    use std::io::Write as _;
    std::io::stdout().write_all(&completion_script(shell))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named_with_where_it_was_looked_for() {
        let msg = missing_message(&["emu-dns"], Path::new("/opt/emu/bin"));
        assert_eq!(
            msg,
            "emu's program emu-dns is missing (looked for /opt/emu/bin/emu-dns): emu needs emu-controller, emu-nodeagent, emu-dns, emu-ingress, emu-agnhost installed beside it. From emu's source tree, `sudo ./scripts/install` builds and installs them all"
        );
        let msg = missing_message(&["emu-controller", "emu-dns"], Path::new("/x"));
        assert!(msg.starts_with("emu's programs emu-controller, emu-dns are missing (looked for /x/emu-controller, /x/emu-dns)"), "{msg}");
    }

    #[test]
    fn the_bash_completion_knows_the_verbs_and_resource_types() {
        let script = String::from_utf8(completion_script(clap_complete::Shell::Bash)).expect("utf-8");
        for word in [
            "get",
            "describe",
            "exec",
            "fault",
            "completion",
            "pods",
            "services",
            "deployments",
            "endpointslices",
            "--namespace",
            "--cluster",
        ] {
            assert!(script.contains(word), "{word} missing from the bash completion");
        }
    }
}
