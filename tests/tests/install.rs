//! emu as a user installs it: `scripts/deps.sh`'s `emu_install` (the step `scripts/up`,
//! `scripts/install` and the Vagrantfile share) into a prefix of the test's own, then the
//! installed `emu` with the build tree out of reach. Also what happens when a program emu runs is
//! missing: `emu up` says which and how to fix it, at once; and the shell completion and man
//! pages `emu install` writes.

use emu_tests::{emu, require_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A directory of the test's own under /tmp, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("emu-install-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes cluster `name` with the build tree's emu, in case a script below died before its own
/// `emu down` ran.
struct DownOnDrop(&'static str);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        emu(&["down", "--cluster", self.0]);
    }
}

/// Installs emu into `prefix` exactly as scripts/up does (it runs scripts/install, whose last step
/// is this function of scripts/deps.sh).
fn install_as_scripts_do(prefix: &Path) {
    let out = Command::new("bash")
        .args(["-c", r#"set -euo pipefail; . scripts/deps.sh; emu_install "$1""#, "install"])
        .arg(prefix)
        .current_dir(REPO)
        .output()
        .expect("bash");
    assert!(out.status.success(), "emu_install failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Runs `script` with bash in a mount namespace of its own (`unshare -m`, mounts of the host
/// propagating in and none out), so that what it hides with mounts stays hidden from it alone.
/// Everything the script starts lives in that namespace too, so it must also remove what it makes.
fn run_in_own_mount_namespace(script: &str, env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "slave", "bash", "-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // `emu up` writes kubectl's context: into the suite's kubeconfig, not the user's.
    let out = cmd.env_remove("EMU_CLUSTER").env("KUBECONFIG", emu_tests::suite_kubeconfig()).output().expect("unshare");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The tutorial's first steps with the installed emu, from a directory that has only the
/// scenarios, with the build tree (`target/`) hidden under an empty tmpfs.
#[test]
fn the_installed_emu_brings_up_the_tutorial_without_the_build_tree() {
    require_root();
    let _down = DownOnDrop("inst");
    let prefix = TempDir::new("prefix");
    install_as_scripts_do(&prefix.0);
    let work = TempDir::new("work");
    let copied = Command::new("cp").args(["-r", &format!("{REPO}/scenarios")]).arg(&work.0).status().expect("cp");
    assert!(copied.success());
    let target = PathBuf::from(REPO).join("target");
    let script = r#"
        set -euo pipefail
        mount -t tmpfs -o size=1m emu-test-hides-target "$TARGET"
        test -z "$(ls -A "$TARGET")"
        cd "$WORK"
        export PATH="$PREFIX/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        trap 'emu down --cluster inst >/dev/null 2>&1 || true' EXIT
        echo "emu is $(command -v emu)"
        emu up --cluster inst scenarios/nginx.yaml
        export EMU_CLUSTER=inst
        echo "controller runs $(readlink /proc/$(cat /run/emu/inst/controller.pid)/exe)"
        emu get pods -l run=my-nginx -o wide
        pods=($(emu get pods -l run=my-nginx -o jsonpath='{.items[*].metadata.name}'))
        ips=($(emu get pods -l run=my-nginx -o jsonpath='{.items[*].status.podIP}'))
        echo "pod to pod: $(emu exec "${pods[0]}" -- curl -s "http://${ips[1]}/" | grep -m1 -o 'Welcome to nginx!')"
        emu expose deployment/my-nginx
        # The DNS pods learn of the new Service within moments (as CoreDNS does): ask until then.
        for i in $(seq 50); do
            page=$(emu exec "${pods[0]}" -- curl -s --max-time 2 http://my-nginx/ | grep -m1 -o 'Welcome to nginx!') && break
            sleep 0.1
        done
        echo "by name: $page"
        emu down --cluster inst
    "#;
    let (code, stdout, stderr) = run_in_own_mount_namespace(script, &[("PREFIX", &prefix.0), ("WORK", &work.0), ("TARGET", &target)]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let bin = prefix.0.join("bin");
    assert!(stdout.contains(&format!("emu is {}", bin.join("emu").display())), "{stdout}");
    assert!(stdout.contains(&format!("controller runs {}", bin.join("emu-controller").display())), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("my-nginx-") && l.contains(" Running ")).count(), 2, "{stdout}");
    assert!(stdout.contains("pod to pod: Welcome to nginx!"), "{stdout}");
    assert!(stdout.contains("service/my-nginx exposed"), "{stdout}");
    // The name goes through the cluster DNS, the installed emu-dns in the coredns pods.
    assert!(stdout.contains("by name: Welcome to nginx!"), "{stdout}");
    assert!(stdout.contains("Deleted cluster \"inst\""), "{stdout}");
}

/// A program of emu's missing from the installation: `emu up` names it and where it looked, and
/// creates nothing (it used to end in a CrashLoopBackOff of the DNS pods).
#[test]
fn emu_up_refuses_to_start_without_all_of_its_programs() {
    require_root();
    let _down = DownOnDrop("instmiss");
    let prefix = TempDir::new("missing");
    install_as_scripts_do(&prefix.0);
    let dns = prefix.0.join("bin/emu-dns");
    std::fs::remove_file(&dns).expect("remove emu-dns");
    let out = Command::new(prefix.0.join("bin/emu"))
        .args(["up", "--cluster", "instmiss", &format!("{REPO}/scenarios/nginx.yaml")])
        .env_remove("EMU_CLUSTER")
        .output()
        .expect("emu");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("emu's program emu-dns is missing (looked for {})", dns.display())), "{stderr}");
    assert!(stderr.contains("sudo ./scripts/install"), "{stderr}");
    assert!(!Path::new("/run/emu/instmiss").exists(), "nothing may be created");
    assert!(!std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("emu-instmiss-")));
}

/// A pod whose image's program is missing from the machine (nginx, hidden here by an empty,
/// non-executable file mounted over it): `emu up` stops waiting at once and prints the pod, the
/// reason and the command that installs the program; a pod created later starts by itself once
/// the program is there (the shim pulls again after its back-off, as kubelet does).
#[test]
fn a_missing_image_program_stops_emu_up_at_once_and_says_how_to_fix_it() {
    require_root();
    let _down = DownOnDrop("instprog");
    let work = TempDir::new("prog");
    let empty = work.0.join("not-a-program");
    std::fs::write(&empty, "").expect("empty file");
    let nginx_copy = work.0.join("nginx");
    std::fs::copy("/usr/sbin/nginx", &nginx_copy).expect("copying nginx");
    let script = r#"
        set -uo pipefail
        mount --bind "$EMPTY" /usr/sbin/nginx
        trap 'emu down --cluster instprog >/dev/null 2>&1 || true' EXIT
        start=$(date +%s%N)
        emu up --cluster instprog --timeout 120 "$REPO/scenarios/nginx.yaml"
        echo "emu up exited $? after $(( ($(date +%s%N) - start) / 1000000 )) ms"
        test ! -e /run/emu/instprog && echo "torn down"
        emu up --cluster instprog --nodes 1
        emu run web --image nginx --cluster instprog
        for i in $(seq 50); do
            reason=$(emu get pod web --cluster instprog -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')
            [ "$reason" = ErrImagePull ] && break
            sleep 0.1
        done
        echo "waiting: $reason"
        # "Installing" nginx: the file mounted over it becomes the program. (Unmounting would not
        # do: each pod's shim has a private copy of the mounts it started with.)
        cat "$NGINX_COPY" > "$EMPTY" && chmod 755 "$EMPTY"
        for i in $(seq 400); do
            phase=$(emu get pod web --cluster instprog -o jsonpath='{.status.phase}')
            [ "$phase" = Running ] && break
            sleep 0.1
        done
        echo "after install: $phase"
        emu down --cluster instprog
    "#;
    let repo = PathBuf::from(REPO);
    let bin = emu_tests::bin_dir();
    let path = PathBuf::from(format!("{}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()));
    let started = Instant::now();
    let (code, stdout, stderr) =
        run_in_own_mount_namespace(script, &[("EMPTY", &empty), ("NGINX_COPY", &nginx_copy), ("REPO", &repo), ("PATH", &path)]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("emu up exited 1 after"), "{stdout}");
    // Well before the 120 s it would wait for pods that start late.
    let waited_ms: u64 =
        stdout.split("emu up exited 1 after ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("duration");
    assert!(waited_ms < 30_000, "emu up waited {waited_ms} ms before giving up");
    assert!(stdout.contains("✗ Waiting for pods to be Running: pod default/my-nginx-"), "{stdout}");
    assert!(
        stderr.contains(
            ": ErrImagePull: failed to pull image \"nginx\": emu runs it with this machine's /usr/sbin/nginx, which is not installed: install it with `sudo apt-get install nginx-light`"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("torn down"), "{stdout}");
    assert!(stdout.contains("waiting: ErrImagePull"), "{stdout}");
    assert!(stdout.contains("after install: Running"), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(90));
}

/// What `emu install` writes besides the programs: bash completion that completes verbs, resource
/// types and flags, and man pages with every flag's help.
#[test]
fn completion_and_man_pages_are_installed() {
    let prefix = TempDir::new("docs");
    install_as_scripts_do(&prefix.0);
    let completion = prefix.0.join("share/bash-completion/completions/emu");
    // What bash does on TAB: the completion function fills COMPREPLY for the words so far.
    let complete = |line: &str| -> Vec<String> {
        let script = r#"
            source "$COMPLETION"
            read -ra COMP_WORDS <<< "$LINE"
            [[ "$LINE" == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            _emu emu "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        let out = Command::new("bash").args(["-c", script]).env("COMPLETION", &completion).env("LINE", line).output().expect("bash");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    };
    assert_eq!(complete("emu desc"), ["describe"]);
    assert!(complete("emu ").iter().any(|w| w == "port-forward"));
    assert_eq!(complete("emu get po"), ["pods"]);
    assert_eq!(complete("emu describe endpoints"), ["endpoints", "endpointslices"]);
    assert!(complete("emu get pods --sh").contains(&"--show-labels".to_string()));
    assert_eq!(complete("emu -n kube-system get se"), ["services", "secrets", "serviceaccounts"]);
    assert!(complete("emu completion ").contains(&"zsh".to_string()));

    let man = prefix.0.join("share/man/man1");
    for page in ["emu.1", "emu-get.1", "emu-fault-delay.1", "emu-completion.1", "emu-install.1"] {
        assert!(man.join(page).is_file(), "{page} missing");
    }
    let roff = std::fs::read_to_string(man.join("emu-get.1")).expect("emu-get.1");
    assert!(roff.contains("Leave out the header line of a table"), "{roff}");
    assert!(roff.contains("The namespace of the objects the command names"), "{roff}");
    if Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let out =
            Command::new("man").arg("-l").arg(man.join("emu-get.1")).env("MANWIDTH", "200").env("MANPAGER", "cat").output().expect("man");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--show-labels") && text.contains("Leave out the header line of a table"), "{text}");
    }
}
