//! emu's programs are installed side by side: whoever starts a daemon (`emu`, or the controller
//! restarting an agent) finds it beside its own executable.

use anyhow::{bail, Context as _};
use emu_logic::images;
use std::path::{Path, PathBuf};

/// The directory of the running program: emu's other programs are installed beside it.
pub fn programs_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    Ok(exe.parent().context("the running executable has no parent directory")?.to_path_buf())
}

/// The path of emu's program `name` (a daemon, or emu-dns), beside the running one.
pub fn companion(name: &str) -> anyhow::Result<PathBuf> {
    let dir = programs_dir()?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{}", missing_message(&[name], &dir));
    }
    Ok(path)
}

/// Fails, naming each missing program and where it was looked for, unless every program emu
/// runs is installed beside the running one: checked before a cluster is made, instead of a daemon
/// that cannot start or a DNS pod in CrashLoopBackOff.
pub fn require_companions() -> anyhow::Result<()> {
    let dir = programs_dir()?;
    let missing: Vec<&str> = images::companion_programs().into_iter().filter(|p| !dir.join(p).is_file()).collect();
    if !missing.is_empty() {
        bail!("{}", missing_message(&missing, &dir));
    }
    Ok(())
}

/// What to say when emu's programs `missing` are not in `dir`.
pub fn missing_message(missing: &[&str], dir: &Path) -> String {
    let listed: Vec<String> = missing.iter().map(|p| dir.join(p).display().to_string()).collect();
    format!(
        "emu's program{} {} {} missing (looked for {}): emu needs {} installed beside it. From emu's source tree, `sudo ./scripts/install` builds and installs them all",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        listed.join(", "),
        images::companion_programs().join(", "),
    )
}
