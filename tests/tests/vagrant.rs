//! The Vagrantfile of the one-VM lab is valid (`vagrant validate`; scripts/test installs vagrant)
//! and provisions through the project's own scripts, so it cannot drift from them.

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn vagrantfile_validates() {
    let out = std::process::Command::new("vagrant")
        // Validating the provider needs one installed (VirtualBox, libvirt), which a CI machine
        // or a lab's host may not have: the Vagrantfile itself is what is checked here.
        .args(["validate", "--ignore-provider"])
        .current_dir(ROOT)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant must be installed (sudo ./scripts/test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vagrant validate failed: {text}");
    assert!(text.contains("validated successfully"), "{text}");
}

/// The VM gets emu's packages and programs from scripts/install (scripts/deps.sh, `emu install`),
/// never from lists of its own: a list there missed emu-dns, iptables and conntrack.
#[test]
fn vagrantfile_installs_through_the_scripts() {
    let vagrantfile = std::fs::read_to_string(format!("{ROOT}/Vagrantfile")).expect("Vagrantfile");
    assert!(vagrantfile.contains("./scripts/install"), "the Vagrantfile must install emu with scripts/install");
    for program in ["emu-controller", "emu-nodeagent", "emu-dns", "target/debug"] {
        assert!(!vagrantfile.contains(program), "the Vagrantfile names {program:?}: install through scripts/install instead");
    }
    for line in vagrantfile.lines().filter(|l| l.contains("apt-get install")) {
        for package in ["nftables", "iproute2", "nginx", "busybox", "dnsutils", "conntrack", "iptables"] {
            assert!(!line.contains(package), "the Vagrantfile installs {package:?} itself: scripts/deps.sh does that\n{line}");
        }
    }
}
