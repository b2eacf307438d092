//! The multi-VM lab on real kernels (issue 18, item 4): three Debian 12 VMs under QEMU, each with
//! its own kernel, on a private network (192.168.56.0/24, no route anywhere else), provisioned
//! with `scripts/lab` as the Vagrantfile's lab is: `emu-1` runs `scripts/lab control-plane
//! 192.168.56.11`, which writes the join command (mode 0600) into a folder every VM shares, and
//! `emu-2`, `emu-3` run `scripts/lab join`. Checked across VMs: every node Ready with its host
//! label; a Deployment's pods on every VM; pod to pod across VMs (HTTP 200, the client's pod IP in
//! nginx's log); a ClusterIP and a DNS name from a pod; a NodePort of a node of each other VM from
//! the outside world (`emu outside -- curl`); `emu leave` on one VM replaces its pods on the others.
//!
//! The image (tests/vm-lab/build-rootfs: debootstrap, emu's system packages through
//! scripts/deps.sh, a kernel and initrd) is cached under /var/cache/emu-vm-lab, keyed by a hash
//! of its inputs; the emu programs of this build are installed into it with `emu install` and the
//! disk image made with `mkfs.ext4 -d`, cached by the hash of those too. The VMs' bridge and taps
//! live in a network namespace of this test's own (`emu-vmlab<pid>`); the host's namespace is
//! not touched. The VMs boot under KVM where a 10 s probe shows a guest kernel gets going, else
//! with `-accel tcg -cpu max` (a Linux guest under KVM hangs on the machines this was written
//! on; EMU_VM_LAB_ACCEL=kvm|tcg skips the probe), 1 vCPU and 1 GiB each, and tini plus
//! tests/vm-lab/init instead of systemd. The test runs its commands in the guests through a 9p
//! folder per VM (tests/vm-lab/init). A hard limit of 12 minutes kills the VMs and fails; a
//! failure anywhere removes the namespace, the VMs and the temporary files (Drop and the
//! watchdog). QEMU, debootstrap and e2fsprogs come from scripts/test-tools.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CACHE: &str = "/var/cache/emu-vm-lab";
/// The whole test, image build included; then the watchdog kills the VMs and fails it
/// (EMU_VM_LAB_HARD_LIMIT, in seconds, shortens it to check that path).
fn hard_limit() -> Duration {
    Duration::from_secs(std::env::var("EMU_VM_LAB_HARD_LIMIT").ok().and_then(|s| s.parse().ok()).unwrap_or(12 * 60))
}
const VMS: [(&str, &str); 3] = [("emu-1", "192.168.56.11"), ("emu-2", "192.168.56.12"), ("emu-3", "192.168.56.13")];
const MEMORY_MB: u32 = 1024;

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: big}
data: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
        volumeMounts: [{name: big, mountPath: /usr/share/nginx/html}]
      volumes: [{name: big, configMap: {name: big}}]
"#;

/// Bytes of the file nginx serves across VMs: many full-size segments through the overlay.
const BIG: usize = 600_000;

/// What must go when the test ends, however it ends: QEMU processes (by the PIDs this test
/// started), the lab's network namespace, its temporary directory. Shared by Drop and the watchdog.
#[derive(Default)]
struct Leftovers {
    pids: Vec<i32>,
    netns: Option<String>,
    dirs: Vec<PathBuf>,
}

impl Leftovers {
    fn clean(&mut self) {
        for pid in self.pids.drain(..) {
            // SAFETY: waitpid on our own child; a null status pointer is allowed. Nonzero: it
            // has ended and is reaped now, or was reaped already (its PID may be reused): no kill.
            if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } != 0 {
                continue;
            }
            // SAFETY: kill has no memory preconditions; the PID is a QEMU this test started and
            // has not reaped (so it cannot have been reused), the leader of its own group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        if let Some(ns) = self.netns.take() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        for d in self.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

struct Guard(Arc<Mutex<Leftovers>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clean();
    }
}

/// After the hard limit, kill the VMs and everything else of the lab, and end the test process
/// (the main thread may be blocked in a wait on a guest that will never answer).
fn watchdog(leftovers: Arc<Mutex<Leftovers>>, started: Instant) {
    std::thread::spawn(move || {
        std::thread::sleep(hard_limit().saturating_sub(started.elapsed()));
        eprintln!("vm_lab: FAILED: the hard limit of {:?} was reached; the VMs are killed and the lab removed", hard_limit());
        leftovers.lock().unwrap_or_else(|e| e.into_inner()).clean();
        std::process::exit(101);
    });
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a long host command in a process group of its own, killed at `deadline`.
fn run_until(cmd: &mut Command, deadline: Instant, what: &str) {
    use std::os::unix::process::CommandExt;
    let mut child = cmd.process_group(0).spawn().unwrap_or_else(|e| panic!("{what}: {cmd:?}: {e}"));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed ({status}): {cmd:?}");
            return;
        }
        if Instant::now() > deadline {
            // SAFETY: kill has no memory preconditions; the group is our own child's.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{what} did not finish before the test's hard limit");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// sha256 of the given files' contents (and of `extra`), as one hex string.
fn hash_of(files: &[PathBuf], extra: &str) -> String {
    let mut listing = sh(Command::new("sha256sum").args(files));
    // The files by content only: where the checkout lies does not matter.
    listing = listing.lines().map(|l| l.split_whitespace().next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    listing.push_str(extra);
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(listing.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..16].to_string()
}

struct Image {
    disk: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

/// The root file system (cached by its inputs), with this build's emu installed, as a disk image
/// (cached by the programs' hash too; only the newest is kept).
fn image(deadline: Instant) -> Image {
    let root = PathBuf::from(ROOT);
    std::fs::create_dir_all(CACHE).unwrap();
    let build = root.join("tests/vm-lab/build-rootfs");
    let key = hash_of(&[build.clone(), root.join("scripts/deps.sh")], "bookworm");
    let rootfs = PathBuf::from(format!("{CACHE}/rootfs-{key}"));
    let started = Instant::now();
    if rootfs.join(".complete").exists() {
        println!("image: root file system cached ({})", rootfs.display());
    } else {
        remove_cached("rootfs-", &rootfs);
        let tmp = PathBuf::from(format!("{}.tmp", rootfs.display()));
        let _ = std::fs::remove_dir_all(&tmp);
        run_until(Command::new(&build).arg(&tmp), deadline, "building the VMs' root file system (tests/vm-lab/build-rootfs)");
        std::fs::write(tmp.join(".complete"), "").unwrap();
        std::fs::rename(&tmp, &rootfs).unwrap();
        println!("image: root file system built in {:.0?} ({})", started.elapsed(), rootfs.display());
    }

    // This build's programs, installed as on any machine; stripped of debug info (a smaller image).
    let local = rootfs.join("usr/local");
    sh(Command::new(emu_tests::emu_path()).args(["install", "--prefix"]).arg(&local));
    let programs: Vec<PathBuf> = std::fs::read_dir(local.join("bin")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(programs.iter().any(|p| p.ends_with("emu-nodeagent")), "emu install put no emu-nodeagent in {}", local.display());
    for p in &programs {
        let _ = Command::new("strip").arg("--strip-debug").arg(p).status();
    }
    let init = root.join("tests/vm-lab/init");
    std::fs::copy(&init, rootfs.join("sbin/emu-vm-init")).unwrap();
    let mut inputs = programs.clone();
    inputs.push(init);
    let disk = PathBuf::from(format!("{CACHE}/disk-{}.ext4", hash_of(&inputs, &key)));
    if disk.exists() {
        println!("image: disk with these emu programs cached ({})", disk.display());
    } else {
        remove_cached("disk-", &disk);
        let started = Instant::now();
        let du = sh(Command::new("du").args(["-sm"]).arg(&rootfs));
        let mb: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
        let tmp = PathBuf::from(format!("{}.tmp", disk.display()));
        let _ = std::fs::remove_file(&tmp);
        run_until(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "emu-root", "-d"])
                .arg(&rootfs)
                .arg(&tmp)
                .arg(format!("{}M", mb + 768))
                .stdout(Stdio::null()),
            deadline,
            "making the disk image (mkfs.ext4 -d)",
        );
        std::fs::rename(&tmp, &disk).unwrap();
        println!("image: disk made in {:.1?} ({} MiB of files)", started.elapsed(), mb);
    }
    let boot = |prefix: &str| {
        std::fs::read_dir(rootfs.join("boot"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in {}/boot", rootfs.display()))
    };
    Image { disk, kernel: boot("vmlinuz-"), initrd: boot("initrd.img-") }
}

/// KVM where a guest kernel gets going under it, else TCG. On the machines this was written on,
/// a Linux guest under KVM hangs after the real-mode set-up (`-cpu host` aborts at once on MSR
/// 0x10a), so a 10 s probe decides: the kernel alone, with no disk, must reach its root-mount
/// panic. EMU_VM_LAB_ACCEL=kvm or tcg skips the probe.
fn accelerator(kernel: &Path, dir: &Path, leftovers: &Arc<Mutex<Leftovers>>) -> (String, &'static str) {
    let cpu = |accel: &str| if accel == "kvm" { "host" } else { "max" };
    if let Ok(accel) = std::env::var("EMU_VM_LAB_ACCEL") {
        let c = cpu(&accel);
        return (accel, c);
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        println!("accel: TCG (no usable /dev/kvm)");
        return ("tcg".into(), "max");
    }
    use std::os::unix::process::CommandExt;
    let log = dir.join("kvm-probe.log");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-accel", "kvm", "-cpu", "host", "-m", "256"])
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=7"])
        .args(["-serial", &format!("file:{}", log.display())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("starting qemu-system-x86_64");
    let pid = child.id() as i32;
    leftovers.lock().unwrap().pids.push(pid);
    let started = Instant::now();
    let (works, why) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Kernel panic") || text.contains("VFS:") {
            break (true, "");
        }
        if let Some(status) = child.try_wait().unwrap() {
            break (false, if status.success() { "QEMU ended before the kernel said anything" } else { "QEMU failed at once" });
        }
        if started.elapsed() > Duration::from_secs(10) {
            break (false, "the kernel hung");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill has no memory preconditions; the group is the probe's, not yet reaped.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
    leftovers.lock().unwrap().pids.retain(|p| *p != pid);
    if works {
        println!("accel: KVM (a guest kernel booted under it in {:.1?})", started.elapsed());
        ("kvm".into(), "host")
    } else {
        println!("accel: TCG (under KVM {why} within {:.1?})", started.elapsed());
        ("tcg".into(), "max")
    }
}

/// Removes the cache's older entries named `prefix…` other than `keep`.
fn remove_cached(prefix: &str, keep: &Path) {
    for e in std::fs::read_dir(CACHE).unwrap().flatten() {
        let p = e.path();
        if p != keep && e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

struct Vm {
    name: &'static str,
    addr: &'static str,
    dir: PathBuf,
    child: Child,
    seq: std::cell::Cell<u32>,
}

/// What a guest command printed and returned.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Vm {
    fn ctl(&self) -> PathBuf {
        self.dir.join("ctl")
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- console of {} (last lines)\n{}", self.name, lines[lines.len().saturating_sub(25)..].join("\n"))
    }

    /// Starts `script` (bash, as root) in the guest; `wait` collects it.
    fn start(&self, script: &str) -> u32 {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let tmp = self.ctl().join(format!("{n}.tmp"));
        std::fs::write(&tmp, script).unwrap();
        std::fs::rename(&tmp, self.ctl().join(format!("{n}.sh"))).unwrap();
        n
    }

    fn wait(&mut self, n: u32, timeout: Duration) -> Out {
        let started = Instant::now();
        let rc = self.ctl().join(format!("{n}.rc"));
        loop {
            if let Ok(code) = std::fs::read_to_string(&rc) {
                let read = |ext: &str| std::fs::read_to_string(self.ctl().join(format!("{n}.{ext}"))).unwrap_or_default();
                return Out { code: code.trim().parse().unwrap_or(-1), stdout: read("out"), stderr: read("err") };
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("QEMU of {} exited ({status})\n{}", self.name, self.console_tail());
            }
            if started.elapsed() > timeout {
                let partial = std::fs::read_to_string(self.ctl().join(format!("{n}.out"))).unwrap_or_default();
                let err = std::fs::read_to_string(self.ctl().join(format!("{n}.err"))).unwrap_or_default();
                panic!(
                    "command {n} in {} did not finish in {timeout:?}\nstdout so far:\n{partial}\nstderr:\n{err}\n{}",
                    self.name,
                    self.console_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn run(&mut self, script: &str, timeout: Duration) -> Out {
        let n = self.start(script);
        self.wait(n, timeout)
    }

    /// Runs `script`, asserting success; returns its standard output.
    fn ok(&mut self, script: &str) -> String {
        let out = self.run(script, Duration::from_secs(120));
        assert_eq!(out.code, 0, "in {}: {script}\nstdout:\n{}\nstderr:\n{}\n{}", self.name, out.stdout, out.stderr, self.console_tail());
        out.stdout
    }

    /// `emu ARGS` in the guest (shell words), its standard output.
    fn emu(&mut self, args: &str) -> String {
        self.ok(&format!("emu {args}"))
    }

    fn json(&mut self, args: &str) -> Value {
        serde_json::from_str(&self.emu(&format!("{args} -o json"))).unwrap()
    }
}

/// Polls `f` every second until it gives a value.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Deletes namespaces of earlier runs of this test that died without cleaning up (their PID is
/// gone and nothing runs in them any more).
fn remove_stale_labs() {
    let list = sh(Command::new("ip").args(["netns", "list"]));
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = ns.strip_prefix("emu-vmlab").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pids = sh(Command::new("ip").args(["netns", "pids", ns]));
        if pids.trim().is_empty() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        } else {
            eprintln!(
                "vm_lab: namespace {ns} of an earlier run still holds processes {}; not touching it",
                pids.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
}

fn need_tools() {
    for tool in ["qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "sha256sum"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool} || [ -x /usr/sbin/{tool} ] || [ -x /sbin/{tool} ]")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{tool} is missing: the VM lab test needs QEMU, debootstrap and e2fsprogs; install them with sudo ./scripts/test-tools"
        );
    }
}

fn host_of(node: &Value) -> String {
    node["metadata"]["labels"]["emu.dev/host"].as_str().unwrap_or_default().to_string()
}

fn is_ready(node_or_pod: &Value) -> bool {
    node_or_pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

#[test]
fn three_vms_make_one_cluster() {
    emu_tests::require_root();
    need_tools();
    let started = Instant::now();
    let deadline = started + hard_limit().saturating_sub(Duration::from_secs(20));
    let leftovers = Arc::new(Mutex::new(Leftovers::default()));
    let _guard = Guard(leftovers.clone());
    watchdog(leftovers.clone(), started);
    remove_stale_labs();

    let image = image(deadline);
    let image_time = started.elapsed();

    // The lab's network: a bridge and one tap per VM, in a namespace of the test's own.
    let ns = format!("emu-vmlab{}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lab")).unwrap();
    leftovers.lock().unwrap().dirs.push(dir.clone());
    sh(Command::new("ip").args(["netns", "add", &ns]));
    leftovers.lock().unwrap().netns = Some(ns.clone());
    let in_ns = |args: &[&str]| sh(Command::new("ip").args(["netns", "exec", &ns]).args(args));
    in_ns(&["ip", "link", "set", "lo", "up"]);
    in_ns(&["ip", "link", "add", "br0", "type", "bridge"]);
    in_ns(&["ip", "link", "set", "br0", "up"]);

    let (accel, cpu) = accelerator(&image.kernel, &dir, &leftovers);
    let booting = Instant::now();
    let mut vms: Vec<Vm> = Vec::new();
    for (i, (name, addr)) in VMS.iter().enumerate() {
        let vm_dir = dir.join(name);
        std::fs::create_dir_all(vm_dir.join("ctl")).unwrap();
        let overlay = vm_dir.join("disk.qcow2");
        sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(&image.disk).arg(&overlay));
        let tap = format!("tap{i}");
        in_ns(&["ip", "tuntap", "add", &tap, "mode", "tap"]);
        in_ns(&["ip", "link", "set", &tap, "master", "br0", "up"]);
        let share = |id: &str, path: &Path, ro: bool| {
            [
                "-fsdev".to_string(),
                format!("local,id={id},path={},security_model=none{}", path.display(), if ro { ",readonly=on" } else { "" }),
                "-device".into(),
                format!("virtio-9p-pci,fsdev={id},mount_tag={id}"),
            ]
        };
        let append = format!("root=/dev/vda rw console=ttyS0 panic=-1 loglevel=4 net.ifnames=0 init=/usr/bin/tini emu.host={name} emu.addr={addr}/24 -- /sbin/emu-vm-init");
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns, "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
            .args(["-accel", &accel, "-cpu", cpu, "-smp", "1", "-m", &MEMORY_MB.to_string()])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .args(["-append", &append])
            .args(["-drive", &format!("file={},if=virtio,format=qcow2,cache=unsafe", overlay.display())])
            .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
            .args(["-device", &format!("virtio-net-pci,netdev=n0,mac=52:54:00:56:00:{}", 11 + i)])
            .args(["-device", "virtio-rng-pci"])
            .args(["-serial", &format!("file:{}", vm_dir.join("console.log").display())])
            .args(share("emu", Path::new(ROOT), true))
            .args(share("lab", &dir.join("lab"), false))
            .args(share("ctl", &vm_dir.join("ctl"), false))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(vm_dir.join("qemu.log")).unwrap())
            .process_group(0);
        let child = cmd.spawn().expect("starting qemu-system-x86_64");
        leftovers.lock().unwrap().pids.push(child.id() as i32);
        vms.push(Vm { name, addr, dir: vm_dir, child, seq: Default::default() });
    }
    for vm in &mut vms {
        let ready = vm.ctl().join("ready");
        wait_for(&format!("{} to boot", vm.name), Duration::from_secs(240), || {
            if let Some(status) = vm.child.try_wait().unwrap() {
                let qemu = std::fs::read_to_string(vm.dir.join("qemu.log")).unwrap_or_default();
                panic!("QEMU of {} exited ({status}): {qemu}\n{}", vm.name, vm.console_tail());
            }
            ready.exists().then_some(())
        });
    }
    let boot_time = booting.elapsed();
    println!("boot: 3 VMs ({accel}, 1 vCPU, {MEMORY_MB} MiB each) ready in {boot_time:.1?}");
    for vm in &mut vms {
        let uname = vm.ok("uname -r; ip -4 -o addr show dev eth0; ip route");
        assert!(uname.contains(vm.addr), "{}: {uname}", vm.name);
        assert!(!uname.contains("default"), "{} has no route to the world: {uname}", vm.name);
    }

    // Provisioning, as the Vagrantfile's multi-VM lab does it.
    let joining = Instant::now();
    let lab = "/emu/scripts/lab";
    let script = format!("{lab} control-plane {} --join-file /lab/join --nodes 1 --timeout 300", vms[0].addr);
    let out = vms[0].run(&script, Duration::from_secs(360));
    assert_eq!(
        out.code,
        0,
        "scripts/lab control-plane on emu-1\nstdout:\n{}\nstderr:\n{}\n{}",
        out.stdout,
        out.stderr,
        vms[0].console_tail()
    );
    let control_plane_time = joining.elapsed();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("lab/join")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the join command (it holds the token) is written mode 0600");
    let join_command = std::fs::read_to_string(dir.join("lab/join")).unwrap();
    assert!(join_command.starts_with("emu join 192.168.56.11:6444 --token "), "{join_command}");

    let joins_started = Instant::now();
    let started_cmds: Vec<u32> =
        vms[1..].iter().map(|vm| vm.start(&format!("{lab} join --join-file /lab/join --nodes 1 --timeout 300"))).collect();
    let mut join_times = Vec::new();
    for (vm, n) in vms[1..].iter_mut().zip(started_cmds) {
        let out = vm.wait(n, Duration::from_secs(360));
        assert_eq!(out.code, 0, "scripts/lab join on {}\nstdout:\n{}\nstderr:\n{}\n{}", vm.name, out.stdout, out.stderr, vm.console_tail());
        assert!(!out.stdout.contains(join_command.split_whitespace().nth(4).unwrap()), "the token is never printed");
        // emu join's own figure: "This machine (emu-2, …) joined cluster "emu" in 16.98 s: …".
        let joined = out.stdout.lines().find(|l| l.contains("joined cluster")).unwrap_or_default();
        let own = joined.rsplit(" in ").next().and_then(|t| t.split(" s").next()).unwrap_or("?").to_string();
        join_times.push((vm.name, joins_started.elapsed(), own));
    }
    println!(
        "join: emu-1's control plane (emu up + token) in {control_plane_time:.1?}; {} (joined in parallel; command start to nodes Ready)",
        join_times.iter().map(|(n, t, own)| format!("{n} in {t:.1?} (emu join: {own} s)")).collect::<Vec<_>>().join(", ")
    );

    // Every node Ready, with its machine's host label.
    let nodes = vms[0].json("get nodes");
    let nodes = nodes["items"].as_array().unwrap().clone();
    let node_host: BTreeMap<String, String> = nodes.iter().map(|n| (emu_tests::name(n), host_of(n))).collect();
    assert_eq!(node_host.values().cloned().collect::<BTreeSet<_>>(), ["emu-1", "emu-2", "emu-3"].map(String::from).into(), "{node_host:?}");
    assert!(nodes.iter().all(is_ready), "{}", vms[0].emu("get nodes -o wide"));
    println!("{}", vms[0].emu("get nodes -o wide -L emu.dev/host"));

    // A Deployment with a pod on every VM (the Service exists first, so they are spread).
    let web = WEB.replace("data: {}", &format!("data: {{index.html: hello, big: {}}}", "x".repeat(BIG)));
    std::fs::write(dir.join("lab/web.yaml"), web).unwrap();
    vms[0].emu("apply -f /lab/web.yaml");
    let pods = wait_for("3 web pods Ready on 3 VMs", Duration::from_secs(180), || {
        let pods = vms[0].json("get pods -l app=web");
        let pods: Vec<Value> = pods["items"].as_array().unwrap().iter().filter(|p| is_ready(p)).cloned().collect();
        let hosts: BTreeSet<&String> = pods.iter().filter_map(|p| node_host.get(p["spec"]["nodeName"].as_str()?)).collect();
        (hosts.len() == 3).then_some(pods)
    });
    let on = |host: &str| pods.iter().find(|p| node_host[p["spec"]["nodeName"].as_str().unwrap()] == host).unwrap().clone();
    let (p1, p2, p3) = (on("emu-1"), on("emu-2"), on("emu-3"));
    println!("{}", vms[0].emu("get pods -o wide -A"));

    // Pod to pod across VMs, NAT-free: nginx logs the client pod's own address.
    let curl = "curl -s -m 10 -o /dev/null -w %{http_code}";
    for (client, server) in [(&p1, &p2), (&p2, &p3), (&p3, &p1)] {
        let (c, s) = (emu_tests::name(client), emu_tests::name(server));
        let code = vms[0].emu(&format!("exec {c} -- {curl} http://{}/", emu_tests::pod_ip(server)));
        assert_eq!(code, "200", "{c} → {s}");
        let logs = vms[0].emu(&format!("logs {s}"));
        assert!(
            logs.lines().any(|l| l.starts_with(&format!("{} ", emu_tests::pod_ip(client)))),
            "nginx's log of {s} names the client {}:\n{logs}",
            emu_tests::pod_ip(client)
        );
    }

    // Full-size segments cross the overlay between real kernels (no MTU black hole): 600 kB.
    for (client, server) in [(&p1, &p3), (&p3, &p2)] {
        let url = format!("http://{}/big", emu_tests::pod_ip(server));
        let got = vms[0].emu(&format!("exec {} -- curl -s -m 20 -o /dev/null -w %{{size_download}} {url}", emu_tests::name(client)));
        assert_eq!(got, BIG.to_string(), "{} → {}", emu_tests::name(client), emu_tests::name(server));
    }

    println!("checked: pod to pod across VMs (emu-1 → emu-2 → emu-3 → emu-1) with the client's IP in nginx's log, {BIG} bytes across the overlay");

    // A ClusterIP and the Service's DNS name, from the pod on emu-3.
    let cluster_ip = vms[0].emu("get svc web -o jsonpath={.spec.clusterIP}");
    for target in [cluster_ip.as_str(), "web", "web.default.svc.cluster.local"] {
        let code = vms[0].emu(&format!("exec {} -- {curl} http://{target}/", emu_tests::name(&p3)));
        assert_eq!(code, "200", "{target} from a pod on emu-3");
    }

    // The NodePort from the outside world, on a node of each other VM.
    for host in ["emu-2", "emu-3"] {
        let node = nodes.iter().find(|n| host_of(n) == host).unwrap();
        let external = node["status"]["addresses"].as_array().unwrap().iter().find(|a| a["type"] == "ExternalIP").unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string();
        let code = vms[0].emu(&format!("outside -- {curl} http://{external}:30080/"));
        assert_eq!(code, "200", "NodePort 30080 of {} on {host} from the outside world", emu_tests::name(node));
    }
    let lb = wait_for("a LoadBalancer address", Duration::from_secs(30), || {
        let ip = vms[0].emu("get svc web -o jsonpath={.status.loadBalancer.ingress[0].ip}");
        (!ip.is_empty()).then_some(ip)
    });
    wait_for(&format!("LoadBalancer {lb} to answer from the outside world"), Duration::from_secs(30), || {
        let out = vms[0].run(&format!("emu outside -- {curl} http://{lb}/"), Duration::from_secs(60));
        (out.stdout == "200").then_some(())
    });

    println!("checked: ClusterIP {cluster_ip}, web and web.default.svc.cluster.local from a pod on emu-3; NodePort 30080 on emu-2's and emu-3's nodes and LoadBalancer {lb} from the outside world");

    // emu-3 leaves: its node goes, its pod is replaced on the others.
    let left = Instant::now();
    let out = vms[2].run(&format!("{lab} leave"), Duration::from_secs(180));
    assert_eq!(out.code, 0, "scripts/lab leave on emu-3\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let remaining = vms[0].json("get nodes");
    let remaining: BTreeSet<String> = remaining["items"].as_array().unwrap().iter().map(host_of).collect();
    assert_eq!(remaining, ["emu-1", "emu-2"].map(String::from).into());
    wait_for("3 web pods Ready on emu-1 and emu-2", Duration::from_secs(120), || {
        let pods = vms[0].json("get pods -l app=web");
        let ready: Vec<&Value> = pods["items"].as_array().unwrap().iter().filter(|p| is_ready(p)).collect();
        let elsewhere =
            ready.iter().all(|p| node_host.get(p["spec"]["nodeName"].as_str().unwrap_or_default()).is_some_and(|h| h != "emu-3"));
        (ready.len() == 3 && elsewhere).then_some(())
    });
    println!("leave: emu-3 left and its pod was replaced in {:.1?}", left.elapsed());

    println!(
        "vm_lab figures: image {image_time:.1?}, boot {boot_time:.1?}, control plane {control_plane_time:.1?}, joins {:.1?}, total {:.1?}",
        join_times.iter().map(|t| t.1).max().unwrap_or_default(),
        started.elapsed()
    );
}
