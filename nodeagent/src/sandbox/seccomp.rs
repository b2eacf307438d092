//! What confines a container's processes beyond their namespaces and capabilities, as
//! containerd does by default: a seccomp filter (the RuntimeDefault profile) and
//! `no_new_privs`.
//!
//! The agent decides ([`decide`], pure) from the pod's and the container's `securityContext`
//! and writes the answer into the sandbox spec; the container's pid 1 ([`super::container`])
//! and every `emu exec` into it ([`super::nsexec`]) apply it ([`confine`]) just before they
//! drop capabilities and exec.
//!
//! ## The profile
//!
//! containerd's RuntimeDefault (`contrib/seccomp/seccomp_default.go`) is an allowlist of about
//! 360 system calls, some allowed only with a capability in the bounding set. emu writes it the
//! other way round: every call is allowed except those the profile refuses to a container that
//! holds emu's capabilities ([`super::KEPT_CAPS`]: no CAP_SYS_ADMIN, SYS_PTRACE, SYS_MODULE,
//! SYS_BOOT, SYS_TIME, SYS_NICE, SYSLOG, BPF, PERFMON, DAC_READ_SEARCH...), computed once against
//! the kernel's x86_64 table ([`REFUSED`], [`refused_rules`]). They get EPERM, the profile's
//! default action. The short list is what matters and is reviewed here; an allowlist of 360
//! names per architecture breaks a program on the first call it forgets. The cost: a system
//! call newer than this list is allowed where containerd's profile would refuse it, and only
//! the kernel's own capability checks stand behind it.
//!
//! Arguments decide for four calls, as in the profile:
//! - `clone` creating any namespace (CLONE_NEWUSER, NEWNS, NEWPID, NEWNET, NEWUTS, NEWIPC,
//!   NEWCGROUP); `unshare` and `setns` are refused whatever their flags (CAP_SYS_ADMIN only).
//! - `clone3` gets ENOSYS: its flags are in memory a filter cannot read, and ENOSYS makes libc
//!   fall back to `clone`, whose flags it can (Docker's and containerd's answer too).
//! - `personality` only with the harmless personas (0, PER_LINUX32, UNAME26, both, and the
//!   query 0xffffffff); ADDR_NO_RANDOMIZE and the others are refused.
//! - `socket` of AF_ALG (the kernel's crypto API) and AF_VSOCK.
//!
//! `ptrace`, `process_vm_readv` and `process_vm_writev` are allowed, as containerd allows them on
//! kernels from 4.8 (whose seccomp can no longer be bypassed by a tracer): a container may debug
//! its own processes, which the PID namespace bounds. `chroot` is allowed since emu's containers
//! keep CAP_SYS_CHROOT. On x86_64 every refused call is refused through the x32 ABI too (the
//! same call number with bit 30 set, under the same audit arch), which a deny-list must name.

use std::collections::BTreeMap;

use emu_api::typed::k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};
use serde::{Deserialize, Serialize};

/// The seccomp profile a container's processes run under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompMode {
    /// containerd's default profile (see the module's documentation).
    #[default]
    RuntimeDefault,
    /// No filter: `seccompProfile: {type: Unconfined}`.
    Unconfined,
}

/// How a container's processes are confined: its pid 1 and every `emu exec` into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    pub seccomp: SeccompMode,
    /// `no_new_privs`: no exec can add privileges (setuid and setgid bits, file capabilities).
    pub no_new_privs: bool,
    /// What emu did instead of what the manifest asked, logged by the shim at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The most confined: a sandbox spec written before confinement existed gets it too.
impl Default for Confinement {
    fn default() -> Self {
        Confinement { seccomp: SeccompMode::RuntimeDefault, no_new_privs: true, warning: None }
    }
}

/// The confinement of a container from its pod's and its own `securityContext`.
///
/// - The container's `seccompProfile` wins over the pod's, as in Kubernetes. `RuntimeDefault`
///   and no profile at all mean the default profile: kubelet's default is Unconfined unless it
///   runs with `--seccomp-default`, and emu's nodes behave as if they did (issue 19; the
///   restricted Pod Security Standard asks every pod for RuntimeDefault anyway).
/// - `Localhost` runs with the default profile, with a warning in the shim's log. emu's nodes
///   have no directory of profiles (kubelet's `/var/lib/kubelet/seccomp`) to load one from; a
///   Localhost profile is in practice the runtime's default tightened for one program, so the
///   default is the closest emu can come. Refusing to start the pod (what a real node without
///   the file does) would make the manifest unusable in emu for a difference the emulation
///   cannot show.
/// - `no_new_privs` unless the container's `allowPrivilegeEscalation` is true. Kubernetes'
///   default differs: with the field unset the runtime leaves `no_new_privs` off, and only
///   `allowPrivilegeEscalation: false` (which the restricted level requires) sets it. emu sets
///   it unless asked not to (issue 19): its containers run as root, and nothing they run needs
///   a setuid bit or a file capability to gain more.
/// - `privileged` plays no part: admission refuses privileged containers.
pub fn decide(pod: Option<&PodSecurityContext>, container: Option<&SecurityContext>) -> Confinement {
    let (profile, whose) = match container.and_then(|c| c.seccomp_profile.as_ref()) {
        Some(p) => (Some(p), "the container's"),
        None => (pod.and_then(|p| p.seccomp_profile.as_ref()), "the pod's"),
    };
    let mut warning = None;
    let seccomp = match profile.map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") => SeccompMode::RuntimeDefault,
        Some("Unconfined") => SeccompMode::Unconfined,
        Some("Localhost") => {
            let file = profile.and_then(|p| p.localhost_profile.as_deref()).unwrap_or_default();
            warning = Some(format!(
                "{whose} seccompProfile is Localhost {file:?}, which emu does not support (its nodes have no seccomp \
                 profile directory to load it from): running with the RuntimeDefault profile instead"
            ));
            SeccompMode::RuntimeDefault
        }
        // Admission refuses other types; one stored before that runs confined.
        Some(other) => {
            warning = Some(format!("{whose} seccompProfile type {other:?} is unknown: running with the RuntimeDefault profile"));
            SeccompMode::RuntimeDefault
        }
    };
    let no_new_privs = container.and_then(|c| c.allow_privilege_escalation) != Some(true);
    Confinement { seccomp, no_new_privs, warning }
}

/// `(name, number)` of `libc::SYS_*` constants.
macro_rules! calls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name)),*]
    };
}

/// The calls the profile refuses outright (EPERM) on every architecture emu builds for: mounts
/// and the new mount API, namespaces (`unshare`, `setns`), keyrings, BPF, perf events, kernel
/// modules, kexec, reboot, swap, handles (`open_by_handle_at`), userfaultfd, io_uring (refused
/// since containerd 2.0 and Docker 25), the clock, NUMA policy, quotas, accounting, the kernel
/// log, and reaching into other processes beyond ptrace (`kcmp`, `pidfd_getfd`,
/// `process_madvise`).
const REFUSED: &[(&str, i64)] = calls![
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_settime,
    SYS_delete_module,
    SYS_fanotify_init,
    SYS_finit_module,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fsopen,
    SYS_fspick,
    SYS_get_mempolicy,
    SYS_init_module,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_io_uring_setup,
    SYS_kcmp,
    SYS_kexec_file_load,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_lookup_dcookie,
    SYS_mbind,
    SYS_migrate_pages,
    SYS_mount,
    SYS_mount_setattr,
    SYS_move_mount,
    SYS_move_pages,
    SYS_nfsservctl,
    SYS_open_by_handle_at,
    SYS_open_tree,
    SYS_perf_event_open,
    SYS_pidfd_getfd,
    SYS_pivot_root,
    SYS_process_madvise,
    SYS_quotactl,
    SYS_quotactl_fd,
    SYS_reboot,
    SYS_request_key,
    SYS_set_mempolicy,
    SYS_set_mempolicy_home_node,
    SYS_setdomainname,
    SYS_sethostname,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapoff,
    SYS_swapon,
    SYS_syslog,
    SYS_umount2,
    SYS_unshare,
    SYS_userfaultfd,
    SYS_vhangup,
];

/// x86_64's own: port I/O, the old sysctl, and calls the profile never allowed.
#[cfg(target_arch = "x86_64")]
const REFUSED_ARCH: &[(&str, i64)] = calls![
    SYS__sysctl,
    SYS_afs_syscall,
    SYS_getpmsg,
    SYS_ioperm,
    SYS_iopl,
    SYS_putpmsg,
    SYS_security,
    SYS_sysfs,
    SYS_tuxcall,
    SYS_uselib,
    SYS_ustat,
    SYS_vserver,
];
#[cfg(not(target_arch = "x86_64"))]
const REFUSED_ARCH: &[(&str, i64)] = &[];

/// Refused calls the libc crate has no constant for: on x86_64 the module calls of old kernels
/// (the kernel answers ENOSYS; the profile names them), and `open_tree_attr` (Linux 6.15; calls
/// from 424 on have one number on every architecture).
#[cfg(target_arch = "x86_64")]
const REFUSED_NUMBERS: &[(&str, i64)] = &[("create_module", 174), ("get_kernel_syms", 177), ("query_module", 178), ("open_tree_attr", 467)];
#[cfg(not(target_arch = "x86_64"))]
const REFUSED_NUMBERS: &[(&str, i64)] = &[("open_tree_attr", 467)];

/// The namespace flags `clone` may not carry (the profile's mask without CAP_SYS_ADMIN).
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The personas `personality` may set: Linux, PER_LINUX32, UNAME26, both; 0xffffffff queries.
const SAFE_PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// x32 system calls are x86_64's with this bit set in the number (same audit arch).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// Every refused call, with the names the log and the tests use.
pub fn refused_calls() -> impl Iterator<Item = (&'static str, i64)> {
    REFUSED.iter().chain(REFUSED_ARCH).chain(REFUSED_NUMBERS).map(|(name, nr)| (name.trim_start_matches("SYS_"), *nr))
}

/// The rules of the EPERM filter: a call with no rule is refused whatever its arguments; with
/// rules, when any rule matches (each rule being all of its conditions).
fn refused_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, seccompiler::BackendError> {
    let arg0 = |op, value| SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, value);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = refused_calls().map(|(_, nr)| (nr, vec![])).collect();
    // The kernel reads clone's flags as 32 bits (and the rest of the word as ignored).
    let clone = NAMESPACE_FLAGS.iter().map(|&flag| SeccompRule::new(vec![arg0(SeccompCmpOp::MaskedEq(flag as u64), flag as u64)?]));
    rules.insert(libc::SYS_clone, clone.collect::<Result<_, _>>()?);
    let odd_persona = SAFE_PERSONAS.iter().map(|&p| arg0(SeccompCmpOp::Ne, p)).collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_personality, vec![SeccompRule::new(odd_persona)?]);
    let sockets = [libc::AF_ALG, libc::AF_VSOCK].map(|family| SeccompRule::new(vec![arg0(SeccompCmpOp::Eq, family as u64)?]));
    rules.insert(libc::SYS_socket, sockets.into_iter().collect::<Result<_, _>>()?);
    Ok(with_x32(rules))
}

/// The same rules for the x32 numbers of the same calls, on x86_64.
fn with_x32(rules: BTreeMap<i64, Vec<SeccompRule>>) -> BTreeMap<i64, Vec<SeccompRule>> {
    #[cfg(target_arch = "x86_64")]
    {
        let x32: Vec<(i64, Vec<SeccompRule>)> = rules.iter().map(|(nr, r)| (nr | X32_SYSCALL_BIT, r.clone())).collect();
        let mut rules = rules;
        rules.extend(x32);
        // x32 has numbers of its own for the calls that take pointers to structures; of the
        // refused ones, kexec_load (528) and move_pages (533).
        rules.insert(528 | X32_SYSCALL_BIT, vec![]);
        rules.insert(533 | X32_SYSCALL_BIT, vec![]);
        rules
    }
    #[cfg(not(target_arch = "x86_64"))]
    rules
}

/// The RuntimeDefault profile for the architecture emu was built for, as BPF programs to
/// install together: one answers EPERM, one ENOSYS (for clone3); a filter program has only one
/// action on a match.
pub fn runtime_default() -> Result<Vec<BpfProgram>, String> {
    let fail = |e: seccompiler::BackendError| format!("building the seccomp profile RuntimeDefault: {e}");
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(fail)?;
    let eperm = SeccompFilter::new(refused_rules().map_err(fail)?, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch);
    let clone3 = with_x32([(libc::SYS_clone3, vec![])].into());
    let enosys = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch);
    [eperm, enosys].into_iter().map(|f| f.and_then(BpfProgram::try_from).map_err(fail)).collect()
}

/// Confines the calling process as `c` says: `no_new_privs`, then the filters. Without
/// `no_new_privs` the kernel takes a filter only from a process with CAP_SYS_ADMIN, so call it
/// before dropping capabilities; the filters refuse nothing that dropping them and exec use.
/// A single-threaded process only (the filters bind the calling thread and its children).
pub(super) fn confine(c: &Confinement) -> Result<(), String> {
    let programs = match c.seccomp {
        SeccompMode::RuntimeDefault => runtime_default()?,
        SeccompMode::Unconfined => vec![],
    };
    install(&programs, c.no_new_privs).map_err(|(what, e)| format!("{what}: {e}"))
}

/// Sets `no_new_privs` if asked and installs `programs`. Only system calls, not even on
/// failure, so that a test may call it in a child forked from a threaded process.
fn install(programs: &[BpfProgram], no_new_privs: bool) -> Result<(), (&'static str, std::io::Error)> {
    // SAFETY: prctl with integer arguments changes only this process's attributes.
    if no_new_privs && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(("setting no_new_privs", std::io::Error::last_os_error()));
    }
    for program in programs {
        let fprog =
            libc::sock_fprog { len: program.len() as libc::c_ushort, filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut() };
        // SAFETY: seccompiler's `sock_filter` is #[repr(C)] with the fields of the kernel's
        // `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k), as libc's is; `fprog` points at
        // `program.len()` of them, and the kernel copies the program without writing to it or
        // keeping the pointer.
        let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog) };
        if rc != 0 {
            return Err(("installing the seccomp filter", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::typed::k8s_openapi::api::core::v1::SeccompProfile;

    fn profile(kind: &str) -> Option<SeccompProfile> {
        Some(SeccompProfile { type_: kind.into(), localhost_profile: (kind == "Localhost").then(|| "profiles/audit.json".into()) })
    }
    fn pod(kind: &str) -> PodSecurityContext {
        PodSecurityContext { seccomp_profile: profile(kind), ..Default::default() }
    }
    fn container(kind: Option<&str>, escalation: Option<bool>) -> SecurityContext {
        SecurityContext { seccomp_profile: kind.and_then(profile), allow_privilege_escalation: escalation, ..Default::default() }
    }
    fn confinement(seccomp: SeccompMode, no_new_privs: bool) -> Confinement {
        Confinement { seccomp, no_new_privs, warning: None }
    }
    use SeccompMode::{RuntimeDefault, Unconfined};

    #[test]
    fn unset_and_runtime_default_confine_with_no_new_privs() {
        assert_eq!(decide(None, None), confinement(RuntimeDefault, true));
        assert_eq!(decide(Some(&PodSecurityContext::default()), Some(&SecurityContext::default())), confinement(RuntimeDefault, true));
        assert_eq!(decide(Some(&pod("RuntimeDefault")), None), confinement(RuntimeDefault, true));
        assert_eq!(decide(None, Some(&container(Some("RuntimeDefault"), Some(false)))), confinement(RuntimeDefault, true));
        assert_eq!(decide(None, None), Confinement::default());
    }

    #[test]
    fn unconfined_lifts_the_filter_and_the_container_wins_over_the_pod() {
        assert_eq!(decide(Some(&pod("Unconfined")), None), confinement(Unconfined, true));
        assert_eq!(decide(None, Some(&container(Some("Unconfined"), None))), confinement(Unconfined, true));
        assert_eq!(decide(Some(&pod("Unconfined")), Some(&container(Some("RuntimeDefault"), None))), confinement(RuntimeDefault, true));
        assert_eq!(decide(Some(&pod("RuntimeDefault")), Some(&container(Some("Unconfined"), None))), confinement(Unconfined, true));
        // A container context without a profile leaves the pod's.
        assert_eq!(decide(Some(&pod("Unconfined")), Some(&container(None, Some(false)))), confinement(Unconfined, true));
    }

    #[test]
    fn only_an_explicit_allow_privilege_escalation_leaves_no_new_privs_off() {
        assert_eq!(decide(None, Some(&container(None, Some(true)))), confinement(RuntimeDefault, false));
        assert_eq!(decide(Some(&pod("Unconfined")), Some(&container(None, Some(true)))), confinement(Unconfined, false));
        assert!(decide(None, Some(&container(None, Some(false)))).no_new_privs);
        assert!(decide(None, Some(&container(None, None))).no_new_privs);
    }

    #[test]
    fn a_localhost_profile_runs_with_the_default_and_says_so() {
        let c = decide(Some(&pod("Localhost")), None);
        assert_eq!((c.seccomp, c.no_new_privs), (RuntimeDefault, true));
        assert_eq!(
            c.warning.as_deref(),
            Some(
                "the pod's seccompProfile is Localhost \"profiles/audit.json\", which emu does not support (its nodes have no \
                 seccomp profile directory to load it from): running with the RuntimeDefault profile instead"
            )
        );
        let c = decide(Some(&pod("Unconfined")), Some(&container(Some("Localhost"), None)));
        assert_eq!(c.seccomp, RuntimeDefault);
        assert!(c.warning.is_some_and(|w| w.starts_with("the container's seccompProfile is Localhost")));
    }

    #[test]
    fn the_decision_survives_the_sandbox_spec() {
        let c = decide(Some(&pod("Localhost")), Some(&container(None, Some(true))));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Confinement>(&json).unwrap(), c);
        let plain = serde_json::to_string(&Confinement::default()).unwrap();
        assert_eq!(plain, r#"{"seccomp":"RuntimeDefault","no_new_privs":true}"#);
    }

    #[test]
    fn the_profile_refuses_what_containerd_refuses_without_cap_sys_admin() {
        let names: Vec<&str> = refused_calls().map(|(name, _)| name).collect();
        for call in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "reboot",
            "swapon",
            "swapoff",
            "open_by_handle_at",
            "userfaultfd",
            "fsopen",
            "open_tree",
            "move_mount",
            "io_uring_setup",
        ] {
            assert!(names.contains(&call), "{call} is not refused");
        }
        for allowed in ["ptrace", "chroot", "clone", "clone3", "personality", "socket"] {
            assert!(!names.contains(&allowed), "{allowed} is refused outright");
        }
        let rules = refused_rules().unwrap();
        assert_eq!(rules[&libc::SYS_clone].len(), NAMESPACE_FLAGS.len());
        assert_eq!(rules[&libc::SYS_socket].len(), 2);
        #[cfg(target_arch = "x86_64")]
        for nr in rules.keys().filter(|nr| *nr & X32_SYSCALL_BIT == 0) {
            assert!(rules.contains_key(&(nr | X32_SYSCALL_BIT)), "syscall {nr} has no x32 twin");
        }
        let programs = runtime_default().unwrap();
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() < 4096));
    }

    /// The profile is containerd's for emu's capabilities: with one of these kept, containerd
    /// would allow calls that [`REFUSED`] refuses (CAP_SYS_CHROOT: chroot, allowed here).
    #[test]
    fn the_profile_matches_the_capabilities_containers_keep() {
        use caps::Capability::*;
        for cap in [
            CAP_SYS_ADMIN,
            CAP_SYS_BOOT,
            CAP_SYS_MODULE,
            CAP_SYS_PACCT,
            CAP_SYS_PTRACE,
            CAP_SYS_RAWIO,
            CAP_SYS_TIME,
            CAP_SYS_TTY_CONFIG,
            CAP_SYS_NICE,
            CAP_SYSLOG,
            CAP_BPF,
            CAP_PERFMON,
            CAP_DAC_READ_SEARCH,
        ] {
            assert!(!super::super::KEPT_CAPS.contains(&cap), "containers keep {cap}: revisit the seccomp profile");
        }
        assert!(super::super::KEPT_CAPS.contains(&CAP_SYS_CHROOT));
    }

    /// The filters on this kernel, in a forked child (no root needed: `no_new_privs` lets any
    /// process install a filter). The child only makes system calls, as a fork of the threaded
    /// test runner must; each wrong answer sets one bit of its exit code.
    #[test]
    fn the_filters_refuse_namespaces_and_mounts_and_leave_the_rest() {
        let programs = runtime_default().unwrap();
        let checks: [Check; 9] = [
            // First: unfiltered, an unshare before it would leave the child where it may not.
            ("clone(CLONE_NEWUSER): EPERM", || (clone(libc::CLONE_NEWUSER), libc::EPERM)),
            ("unshare(CLONE_NEWUSER): EPERM", || (sys(libc::SYS_unshare, libc::CLONE_NEWUSER as _), libc::EPERM)),
            ("unshare(CLONE_NEWNS): EPERM", || (sys(libc::SYS_unshare, libc::CLONE_NEWNS as _), libc::EPERM)),
            ("clone3: ENOSYS", || (sys(libc::SYS_clone3, 0), libc::ENOSYS)),
            ("mount: EPERM", || (sys(libc::SYS_mount, 0), libc::EPERM)),
            ("personality(ADDR_NO_RANDOMIZE): EPERM", || (sys(libc::SYS_personality, 0x0040000), libc::EPERM)),
            ("unshare(CLONE_NEWUSER) through x32: EPERM", || (sys(x32(libc::SYS_unshare), libc::CLONE_NEWUSER as _), libc::EPERM)),
            ("personality(query): allowed", || (sys(libc::SYS_personality, 0xffff_ffff), 0)),
            ("clone without namespaces: allowed", || (clone(0), 0)),
        ];
        // SAFETY: the child makes only system calls (no allocation, no lock) and leaves by _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut wrong = 0;
            if install(&programs, true).is_err() {
                unsafe { libc::_exit(255) };
            }
            for (i, (_, check)) in checks.iter().enumerate() {
                let (rc, want) = check();
                // SAFETY: reads this thread's errno.
                let errno = unsafe { *libc::__errno_location() };
                // The filter answers before the kernel looks the call up: EPERM for x32 also
                // where the kernel has no x32.
                let ok = if want == 0 { rc >= 0 } else { rc < 0 && errno == want };
                if !ok {
                    wrong |= 1 << i;
                }
            }
            // SAFETY: leaves the forked child without running the test runner's exit path.
            unsafe { libc::_exit(wrong) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "the child died: status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        assert_ne!(code, 255, "installing the filters failed");
        let failed: Vec<&str> = checks.iter().enumerate().filter(|(i, _)| code & (1 << i) != 0).map(|(_, (name, _))| *name).collect();
        assert!(failed.is_empty(), "wrong answers: {failed:?}");
    }

    /// What a check is called, and a call with the errno it must fail with (0: must succeed).
    type Check = (&'static str, fn() -> (libc::c_long, i32));

    fn sys(nr: libc::c_long, arg: libc::c_ulong) -> libc::c_long {
        // SAFETY: the calls tested take integers or fail before reading a pointer argument.
        unsafe { libc::syscall(nr, arg, 0usize, 0usize, 0usize, 0usize) }
    }

    /// A fork-like clone with `flags` whose child leaves at once; returns clone's answer.
    fn clone(flags: libc::c_int) -> libc::c_long {
        let rc = sys(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong);
        if rc == 0 {
            // SAFETY: the clone's child leaves at once.
            unsafe { libc::_exit(0) };
        }
        if rc > 0 {
            // SAFETY: reaps our own child.
            unsafe { libc::waitpid(rc as i32, std::ptr::null_mut(), 0) };
        }
        rc
    }

    fn x32(nr: libc::c_long) -> libc::c_long {
        #[cfg(target_arch = "x86_64")]
        return nr | X32_SYSCALL_BIT;
        #[cfg(not(target_arch = "x86_64"))]
        nr
    }
}
