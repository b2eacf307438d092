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

/// The multi-VM lab: emu-1, emu-2 and emu-3 on the private network 192.168.56.11-13, not started
/// by a plain `vagrant up` (the one-VM lab stays what it was), provisioned through scripts/install
/// and scripts/lab, the join command passed through a shared folder and never on a command line.
#[test]
fn vagrantfile_defines_the_multi_vm_lab() {
    let vagrantfile = std::fs::read_to_string(format!("{ROOT}/Vagrantfile")).expect("Vagrantfile");
    assert!(vagrantfile.contains(r#"config.vm.define "default", primary: true"#), "the one-VM lab keeps its machine name");
    for (name, ip) in [("emu-1", "192.168.56.11"), ("emu-2", "192.168.56.12"), ("emu-3", "192.168.56.13")] {
        assert!(vagrantfile.contains(&format!(r#""{name}" => "{ip}""#)), "{name} at {ip}");
    }
    assert!(vagrantfile.contains("config.vm.define name, autostart: false"), "a plain `vagrant up` starts the one-VM lab only");
    assert!(vagrantfile.contains(r#"m.vm.network "private_network", ip: ip"#));
    assert!(vagrantfile.contains("./scripts/lab control-plane #{ip} --join-file /emu-lab/join"));
    assert!(vagrantfile.contains("./scripts/lab join --join-file /emu-lab/join"));
    assert!(vagrantfile.contains(r#"synced_folder ".lab", "/emu-lab""#), "the join command travels in a shared folder");
    assert!(!vagrantfile.contains("--token") && !vagrantfile.contains("emu join"), "the Vagrantfile never handles the token itself");
}

/// A fake `emu` that records its arguments and EMU_JOIN_TOKEN, for running scripts/lab without a
/// cluster: `emu get` fails (no cluster yet), `emu token create` prints a join command.
fn fake_emu(dir: &std::path::Path) {
    let script = r#"#!/bin/sh
echo "argv: $*" >>"$FAKE_EMU_LOG"
echo "token: ${EMU_JOIN_TOKEN:-}" >>"$FAKE_EMU_LOG"
case "$1" in
  get) exit 1 ;;
  token) echo "emu join 192.0.2.1:6444 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:$(printf '%064d' 7)" ;;
esac
exit 0
"#;
    let path = dir.join("emu");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// scripts/lab writes the join command mode 0600 and joins with the token in EMU_JOIN_TOKEN,
/// never in emu's arguments (which any user of the machine can read).
#[test]
fn lab_script_passes_the_token_through_a_0600_file_and_the_environment() {
    // scripts/lab refuses to run but as root.
    emu_tests::require_root();
    let dir = std::env::temp_dir().join(format!("emu-lab-script-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fake_emu(&dir);
    let log = dir.join("log");
    let join_file = dir.join("shared/join");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(format!("{ROOT}/scripts/lab"))
            .args(args)
            .arg("--join-file")
            .arg(&join_file)
            .env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("FAKE_EMU_LOG", &log)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "scripts/lab {args:?}: {text}");
        text
    };
    run(&["control-plane", "192.0.2.1", "--nodes", "2"]);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("argv: up --advertise-address 192.0.2.1 --nodes 2"), "{calls}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&join_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&join_file).unwrap().starts_with("emu join 192.0.2.1:6444 --token abcdef."));

    std::fs::remove_file(&log).unwrap();
    let text = run(&["join", "--nodes", "2"]);
    let calls = std::fs::read_to_string(&log).unwrap();
    let join = calls.lines().position(|l| l.starts_with("argv: join ")).unwrap_or_else(|| panic!("{calls}"));
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines[join],
        format!("argv: join 192.0.2.1:6444 --discovery-token-ca-cert-hash sha256:{:064} --nodes 2", 7),
        "the token is not in emu's arguments"
    );
    assert_eq!(lines[join + 1], "token: abcdef.0123456789abcdef");
    assert!(!text.contains("0123456789abcdef"), "scripts/lab never prints the token's secret: {text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
