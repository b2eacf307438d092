//! The Vagrantfile of the one-VM lab is valid (`vagrant validate`; scripts/test installs vagrant).

#[test]
fn vagrantfile_validates() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new("vagrant")
        // Validating the provider needs one installed (VirtualBox, libvirt), which a CI machine
        // or a lab's host may not have: the Vagrantfile itself is what is checked here.
        .args(["validate", "--ignore-provider"])
        .current_dir(root)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant must be installed (sudo ./scripts/test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vagrant validate failed: {text}");
    assert!(text.contains("validated successfully"), "{text}");
}
