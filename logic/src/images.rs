//! The image catalog: what an image name means when no registry is reachable.
//!
//! A profile says which host programs an image runs (from Debian's packages, visible in every
//! container under a read-only `/usr`), its default ENTRYPOINT/CMD/ENV/WORKDIR, and the files the
//! real image has at the same paths, so that the tutorial's volume mounts land where they would.
//! This module is pure data plus lookup and the Kubernetes rules that combine a profile with a
//! container spec (command/args, environment, /etc/passwd); the shim does the file work.

/// One image of the catalog.
#[derive(Debug)]
pub struct ImageProfile {
    /// `repo` (any tag matches, e.g. `nginx`) or `repo:tag` (only that tag, e.g.
    /// `radial/busyboxplus:curl`), with Docker Hub's `docker.io/library/` prefix removed.
    pub name: &'static str,
    /// ENTRYPOINT; replaced by the container's `command`.
    pub entrypoint: &'static [&'static str],
    /// CMD; replaced by the container's `args`, dropped when only `command` is given.
    pub cmd: &'static [&'static str],
    /// ENV, in image order; PATH first.
    pub env: &'static [(&'static str, &'static str)],
    /// WORKDIR (`/` when the image sets none).
    pub working_dir: &'static str,
    /// Files of the image's own layers (outside the host's `/usr`).
    pub files: &'static [ImageFile],
    /// `(path, target)` symlinks of the image, e.g. nginx's log files pointing at /dev/stdout.
    pub symlinks: &'static [(&'static str, &'static str)],
    /// Directories the image has (mode 0755, root-owned), created before files and symlinks.
    pub dirs: &'static [&'static str],
    /// Users of the image besides `root` and `nobody`, each with a group of the same name and id.
    pub users: &'static [ImageUser],
    /// `/bin` is a directory of busybox applet links (busybox-based images) instead of Debian's
    /// merged-usr symlink to `/usr/bin`; PATH then starts with `/bin`.
    pub busybox_bin: bool,
    /// EXPOSE.
    pub exposed_ports: &'static [u16],
    /// What emu itself puts into the container (an emu program standing in for the image's own,
    /// access to the cluster's API).
    pub emu_mounts: &'static [EmuMount],
    /// The host's programs the image cannot do without: on a machine that lacks one, the image
    /// cannot be "pulled" (ErrImagePull, naming the package to install).
    pub host_programs: &'static [HostProgram],
}

/// A program of the host's (from a Debian package) that an image runs; containers see it under
/// the read-only `/usr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostProgram {
    pub path: &'static str,
    /// The Debian package that installs it (what `scripts/deps.sh` installs).
    pub package: &'static str,
}

const NGINX_PROGRAM: HostProgram = HostProgram { path: "/usr/sbin/nginx", package: "nginx-light" };
const BUSYBOX_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/busybox", package: "busybox" };
const CURL_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/curl", package: "curl" };
const DIG_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/dig", package: "dnsutils" };
const NSLOOKUP_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/nslookup", package: "dnsutils" };

/// Why an image of the catalog cannot start on this machine: a program it runs is missing. The
/// message names the program, where it was looked for, and the command that installs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingProgram {
    #[error(
        "failed to pull image \"{image}\": emu runs it with this machine's {path}, which is not installed: \
         install it with `sudo apt-get install {package}`"
    )]
    Host { image: String, path: &'static str, package: &'static str },
    #[error(
        "failed to pull image \"{image}\": emu runs it with its own program {program}, which is not in {dir} \
         (beside emu-nodeagent): install all of emu's programs together with `sudo emu install` \
         (from emu's source tree: `sudo ./scripts/install`)"
    )]
    Emu { image: String, program: &'static str, dir: String },
}

impl ImageProfile {
    /// The first program of the image's that `exists` denies, host programs before emu's
    /// (`emu_dir`: where emu's programs are installed).
    pub fn missing_program(
        &self,
        image: &str,
        emu_dir: &std::path::Path,
        exists: impl Fn(&std::path::Path) -> bool,
    ) -> Option<MissingProgram> {
        if let Some(p) = self.host_programs.iter().find(|p| !exists(std::path::Path::new(p.path))) {
            return Some(MissingProgram::Host { image: image.to_string(), path: p.path, package: p.package });
        }
        self.emu_programs().find(|program| !exists(&emu_dir.join(program))).map(|program| MissingProgram::Emu {
            image: image.to_string(),
            program,
            dir: emu_dir.display().to_string(),
        })
    }

    /// The names of emu's programs the image runs (installed beside emu-nodeagent).
    pub fn emu_programs(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.emu_mounts.iter().filter_map(|m| match m {
            EmuMount::Program { program, .. } => Some(*program),
            EmuMount::ApiSocket { .. } => None,
        })
    }
}

/// Something of emu's bind-mounted into a container, read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmuMount {
    /// The emu program `program` (installed next to emu-nodeagent) at `path`.
    Program { program: &'static str, path: &'static str },
    /// The controller's API socket at `path`: for the cluster's own add-ons (DNS), as their
    /// service account lets them read the API in Kubernetes.
    ApiSocket { path: &'static str },
}

/// Where add-on images find the cluster's API socket (also as /var/run/…, which links to /run).
pub const API_SOCKET_IN_CONTAINER: &str = "/run/emu/api.sock";

/// A file of an image.
#[derive(Debug)]
pub struct ImageFile {
    pub path: &'static str,
    pub mode: u32,
    pub source: FileSource,
}

/// Where a file's content comes from.
#[derive(Debug)]
pub enum FileSource {
    /// This text.
    Inline(&'static str),
    /// A copy of this host file (the Debian package's version of what the image ships); skipped
    /// when the host lacks it.
    Host(&'static str),
}

/// A user (and same-named group) of an image's /etc/passwd and /etc/group.
#[derive(Debug)]
pub struct ImageUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub home: &'static str,
    pub shell: &'static str,
}

/// An image name that the catalog cannot resolve. The message lists the catalog, because that is
/// what the user needs to pick an image that works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to pull image \"{image}\": not in emu's image catalog (no registry is reachable); \
     known images: {known}"
)]
pub struct UnknownImage {
    pub image: String,
    known: String,
}

/// PATH of the Debian- and Alpine-based official images.
const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// PATH for busybox images: busybox's applets in /bin win over the host's programs in /usr/bin.
const BUSYBOX_PATH: &str = "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin";

/// The official image's main config, directive for directive (log format `main` included, so
/// access-log lines look the same).
const NGINX_CONF: &str = r#"user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;

    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
"#;

/// The official image's default server (IPv4 only: its IPv6 listener is added at start-up by an
/// entrypoint script only when the kernel has IPv6, which we do not emulate).
const NGINX_DEFAULT_CONF: &str = r#"server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"#;

/// The official image's entrypoint runs configuration scripts before exec'ing its arguments and
/// says so in the container log; ours has nothing to configure but keeps the log's last line.
const NGINX_ENTRYPOINT: &str = r#"#!/bin/sh
set -e
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    echo "$0: Configuration complete; ready for start up"
fi
exec "$@"
"#;

/// curlimages/curl's entrypoint: arguments that are options, or not a command, go to curl.
const CURL_ENTRYPOINT: &str = r#"#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ]; then
    set -- curl "$@"
fi
exec "$@"
"#;

/// A busybox-based image that starts a shell; busybox's applets stand in for its tools.
const fn busybox_shell(name: &'static str) -> ImageProfile {
    ImageProfile {
        name,
        entrypoint: &[],
        cmd: &["sh"],
        env: &[("PATH", BUSYBOX_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &[],
        users: &[],
        busybox_bin: true,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[BUSYBOX_PROGRAM],
    }
}

/// The official nginx image's files: its entrypoint script if it has one (images before nginx
/// 1.19 have none), and `$default_conf` as its default server (images built `FROM nginx` replace
/// just that file).
macro_rules! nginx_files {
    ($(entrypoint: $entrypoint:expr,)? default_conf: $default_conf:expr) => {
        &[
            $(ImageFile { path: "/docker-entrypoint.sh", mode: 0o755, source: FileSource::Inline($entrypoint) },)?
            ImageFile { path: "/etc/nginx/nginx.conf", mode: 0o644, source: FileSource::Inline(NGINX_CONF) },
            ImageFile { path: "/etc/nginx/conf.d/default.conf", mode: 0o644, source: FileSource::Inline($default_conf) },
            ImageFile { path: "/etc/nginx/mime.types", mode: 0o644, source: FileSource::Host("/etc/nginx/mime.types") },
            ImageFile { path: "/etc/nginx/fastcgi_params", mode: 0o644, source: FileSource::Host("/etc/nginx/fastcgi_params") },
            ImageFile { path: "/etc/nginx/scgi_params", mode: 0o644, source: FileSource::Host("/etc/nginx/scgi_params") },
            ImageFile { path: "/etc/nginx/uwsgi_params", mode: 0o644, source: FileSource::Host("/etc/nginx/uwsgi_params") },
        ]
    };
}

const NGINX: ImageProfile = ImageProfile {
    name: "nginx",
    entrypoint: &["/docker-entrypoint.sh"],
    cmd: &["nginx", "-g", "daemon off;"],
    env: &[("PATH", STD_PATH)],
    working_dir: "/",
    files: nginx_files!(entrypoint: NGINX_ENTRYPOINT, default_conf: NGINX_DEFAULT_CONF),
    // The real image sends its logs to the container's stdout/stderr this way.
    symlinks: &[("/var/log/nginx/access.log", "/dev/stdout"), ("/var/log/nginx/error.log", "/dev/stderr")],
    // /var/lib/nginx: temp dirs of Debian's build; /var/cache/nginx: the official image's.
    dirs: &["/etc/nginx/conf.d", "/var/log/nginx", "/var/cache/nginx", "/var/lib/nginx", "/docker-entrypoint.d"],
    users: &[ImageUser { name: "nginx", uid: 101, gid: 101, home: "/nonexistent", shell: "/bin/false" }],
    busybox_bin: false,
    exposed_ports: &[80],
    emu_mounts: &[],
    host_programs: &[NGINX_PROGRAM],
};

/// The default server of kubernetes/examples' staging/https-nginx, which its Dockerfile copies
/// over nginx's: HTTP on 80 (also IPv6) and HTTPS on 443 with the certificate and key that the
/// tutorial's Secret volume puts into /etc/nginx/ssl. (The tutorial now replaces this file with a
/// ConfigMap whose server uses `tls.crt`/`tls.key`, the keys of a `kubernetes.io/tls` Secret.)
const NGINXHTTPS_DEFAULT_CONF: &str = r#"server {
        listen 80 default_server;
        listen [::]:80 default_server ipv6only=on;

        listen 443 ssl;

        root /usr/share/nginx/html;
        index index.html;

        server_name localhost;
        ssl_certificate /etc/nginx/ssl/nginx.crt;
        ssl_certificate_key /etc/nginx/ssl/nginx.key;

        location / {
                try_files $uri $uri/ =404;
        }
}
"#;

static CATALOG: &[ImageProfile] = &[
    NGINX,
    // The tutorial's HTTPS server ("Securing the Service"): nginx of its time (before the
    // official image had /docker-entrypoint.sh) with the https-nginx example's default server.
    // Only tag 1.0: later builds of that example run a reload script instead of nginx.
    ImageProfile {
        name: "bprashanth/nginxhttps:1.0",
        entrypoint: &[],
        files: nginx_files!(default_conf: NGINXHTTPS_DEFAULT_CONF),
        dirs: &["/etc/nginx/conf.d", "/var/log/nginx", "/var/cache/nginx", "/var/lib/nginx"],
        exposed_ports: &[80, 443],
        ..NGINX
    },
    busybox_shell("busybox"),
    ImageProfile { host_programs: &[BUSYBOX_PROGRAM, CURL_PROGRAM], ..busybox_shell("radial/busyboxplus:curl") },
    ImageProfile {
        entrypoint: &["/entrypoint.sh"],
        cmd: &["curl"],
        working_dir: "/home/curl_user",
        files: &[ImageFile { path: "/entrypoint.sh", mode: 0o755, source: FileSource::Inline(CURL_ENTRYPOINT) }],
        dirs: &["/home/curl_user"],
        host_programs: &[BUSYBOX_PROGRAM, CURL_PROGRAM],
        ..busybox_shell("curlimages/curl")
    },
    coredns("registry.k8s.io/coredns/coredns"),
    coredns("coredns/coredns"),
    // tutum/dnsutils: Ubuntu with dig and nslookup (README.md's DNS section runs `sleep infinity` in it).
    ImageProfile {
        name: "tutum/dnsutils",
        entrypoint: &[],
        cmd: &["/bin/bash"],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &[],
        users: &[],
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[DIG_PROGRAM, NSLOOKUP_PROGRAM],
    },
];

/// The CoreDNS image (distroless: just `/coredns`), with emu's DNS server as `/coredns`; it
/// reads the cluster's Services and endpoints through the API socket, as CoreDNS does through
/// the API server.
const fn coredns(name: &'static str) -> ImageProfile {
    ImageProfile {
        name,
        entrypoint: &["/coredns"],
        cmd: &[],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &["/etc/coredns"],
        users: &[],
        busybox_bin: false,
        exposed_ports: &[53, 9153],
        emu_mounts: &[EmuMount::Program { program: "emu-dns", path: "/coredns" }, EmuMount::ApiSocket { path: API_SOCKET_IN_CONTAINER }],
        host_programs: &[],
    }
}

/// Every profile, in catalog order.
pub fn catalog() -> &'static [ImageProfile] {
    CATALOG
}

/// The daemons `emu` starts: the API server, and the node agent (also the pods' shim and the
/// cloud load balancer).
pub const DAEMON_PROGRAMS: &[&str] = &["emu-controller", "emu-nodeagent"];

/// Every program of emu's besides `emu` itself, which must be installed beside it: the daemons and
/// the programs image profiles run (emu-dns as CoreDNS). The one list the installer
/// (`emu install`), `emu up`'s check and the tests use.
pub fn companion_programs() -> Vec<&'static str> {
    let mut programs: Vec<&'static str> = DAEMON_PROGRAMS.to_vec();
    for program in CATALOG.iter().flat_map(ImageProfile::emu_programs) {
        if !programs.contains(&program) {
            programs.push(program);
        }
    }
    programs
}

/// Resolves an image reference as a container runtime would normalize it: `nginx`, `nginx:1.25`,
/// `docker.io/library/nginx:latest`, `nginx@sha256:…`, `radial/busyboxplus:curl`.
pub fn resolve(image: &str) -> Result<&'static ImageProfile, UnknownImage> {
    let (repo, tag) = normalize(image);
    CATALOG
        .iter()
        .find(|p| match p.name.split_once(':') {
            Some((r, t)) => r == repo && t == tag,
            None => p.name == repo,
        })
        .ok_or_else(|| UnknownImage { image: image.to_string(), known: known_images() })
}

/// `(repository without Docker Hub's domain and library/ prefix, tag)`; the tag defaults to
/// `latest` and a digest is ignored (the catalog has one build per name).
fn normalize(image: &str) -> (&str, &str) {
    let image = image.split_once('@').map_or(image, |(name, _digest)| name);
    // A tag is a ':' after the last '/', so `localhost:5000/x` keeps its port.
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    };
    let repo = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"].iter().find_map(|d| repo.strip_prefix(d)).unwrap_or(repo);
    (repo.strip_prefix("library/").unwrap_or(repo), tag)
}

fn known_images() -> String {
    let names: Vec<String> =
        CATALOG.iter().map(|p| if p.name.contains(':') { p.name.to_string() } else { format!("{} (any tag)", p.name) }).collect();
    names.join(", ")
}

impl ImageProfile {
    /// The process argv, as Kubernetes combines a container's `command`/`args` with the image:
    /// `command` replaces ENTRYPOINT and (without `args`) drops CMD; `args` replaces CMD.
    pub fn argv(&self, command: &[String], args: &[String]) -> Vec<String> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut argv = if command.is_empty() { owned(self.entrypoint) } else { command.to_vec() };
        if !args.is_empty() {
            argv.extend_from_slice(args);
        } else if command.is_empty() {
            argv.extend(owned(self.cmd));
        }
        argv
    }

    /// The process environment in the order a container runtime builds it: the image's PATH,
    /// HOSTNAME, the rest of the image's ENV, then the container's env (a container value replaces
    /// an image value in place), TERM for a tty, HOME last when nobody set it.
    pub fn process_env(&self, hostname: &str, env: &[(String, String)], tty: bool) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let set = |out: &mut Vec<(String, String)>, k: &str, v: &str| match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        };
        let path = self.env.iter().find(|(k, _)| *k == "PATH").map_or(STD_PATH, |(_, v)| *v);
        set(&mut out, "PATH", path);
        set(&mut out, "HOSTNAME", hostname);
        for (k, v) in self.env {
            set(&mut out, k, v);
        }
        for (k, v) in env {
            set(&mut out, k, v);
        }
        if tty && !out.iter().any(|(k, _)| k == "TERM") {
            set(&mut out, "TERM", "xterm");
        }
        if !out.iter().any(|(k, _)| k == "HOME") {
            set(&mut out, "HOME", "/root");
        }
        out
    }

    /// /etc/passwd: root, the image's users, nobody.
    pub fn passwd(&self) -> String {
        let mut s = String::from("root:x:0:0:root:/root:/bin/sh\n");
        for u in self.users {
            s += &format!("{}:x:{}:{}:{}:{}:{}\n", u.name, u.uid, u.gid, u.name, u.home, u.shell);
        }
        s + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    }

    /// /etc/group: root, one group per image user, nogroup.
    pub fn group(&self) -> String {
        let mut s = String::from("root:x:0:\n");
        for u in self.users {
            s += &format!("{}:x:{}:\n", u.name, u.gid);
        }
        s + "nogroup:x:65534:\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn resolves_docker_hub_spellings() {
        for name in ["nginx", "nginx:1.25", "nginx:latest", "docker.io/library/nginx:latest", "library/nginx", "nginx@sha256:abc"] {
            assert_eq!(resolve(name).map(|p| p.name), Ok("nginx"), "{name}");
        }
        assert_eq!(resolve("busybox:1.37").map(|p| p.name), Ok("busybox"));
        assert_eq!(resolve("radial/busyboxplus:curl").map(|p| p.name), Ok("radial/busyboxplus:curl"));
        assert_eq!(resolve("docker.io/curlimages/curl:8.5.0").map(|p| p.name), Ok("curlimages/curl"));
    }

    #[test]
    fn unknown_images_list_the_catalog() {
        for name in
            ["radial/busyboxplus", "quay.io/nginx", "nginxx", "localhost:5000/nginx", "bprashanth/nginxhttps", "bprashanth/nginxhttps:2.0"]
        {
            let err = resolve(name).expect_err(name);
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("failed to pull image \"{name}\"")), "{msg}");
            assert!(msg.contains("nginx (any tag), bprashanth/nginxhttps:1.0, busybox (any tag), radial/busyboxplus:curl"), "{msg}");
        }
    }

    #[test]
    fn nginxhttps_is_tag_1_0_only() {
        for name in ["bprashanth/nginxhttps:1.0", "docker.io/bprashanth/nginxhttps:1.0", "index.docker.io/bprashanth/nginxhttps:1.0"] {
            assert_eq!(resolve(name).map(|p| p.name), Ok("bprashanth/nginxhttps:1.0"), "{name}");
        }
        assert!(resolve("bprashanth/nginxhttps").is_err(), "`latest` is a later build that runs a reload script");
    }

    #[test]
    fn nginxhttps_is_nginx_with_the_https_example_server() {
        let https = resolve("bprashanth/nginxhttps:1.0").expect("nginxhttps");
        let nginx = resolve("nginx").expect("nginx");
        // No /docker-entrypoint.sh in the nginx image of its time: CMD runs nginx directly.
        assert_eq!(https.argv(&[], &[]), s(&["nginx", "-g", "daemon off;"]));
        assert_eq!(https.argv(&s(&["sh"]), &[]), s(&["sh"]));
        assert_eq!(https.exposed_ports, &[80, 443]);
        let file = |p: &ImageProfile, path: &str| match p.files.iter().find(|f| f.path == path).map(|f| &f.source) {
            Some(FileSource::Inline(text)) => Some(text.to_string()),
            Some(FileSource::Host(host)) => Some(format!("host:{host}")),
            None => None,
        };
        let conf = file(https, "/etc/nginx/conf.d/default.conf").expect("default.conf");
        assert!(conf.contains("        listen 443 ssl;\n"), "{conf}");
        assert!(conf.contains("        listen [::]:80 default_server ipv6only=on;\n"), "{conf}");
        assert!(
            conf.contains("        ssl_certificate /etc/nginx/ssl/nginx.crt;\n        ssl_certificate_key /etc/nginx/ssl/nginx.key;\n"),
            "{conf}"
        );
        assert!(conf.contains("        root /usr/share/nginx/html;\n        index index.html;\n"), "{conf}");
        assert!(conf.contains("                try_files $uri $uri/ =404;\n"), "{conf}");
        assert_eq!(file(https, "/docker-entrypoint.sh"), None);
        // Everything else is nginx's.
        for path in [
            "/etc/nginx/nginx.conf",
            "/etc/nginx/mime.types",
            "/etc/nginx/fastcgi_params",
            "/etc/nginx/scgi_params",
            "/etc/nginx/uwsgi_params",
        ] {
            assert_eq!(file(https, path), file(nginx, path), "{path}");
            assert!(file(https, path).is_some(), "{path}");
        }
        assert_eq!(https.passwd(), nginx.passwd());
        assert_eq!(https.symlinks, nginx.symlinks);
        assert!(!https.dirs.contains(&"/docker-entrypoint.d"));
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let nginx = resolve("nginx").expect("nginx");
        assert_eq!(nginx.argv(&[], &[]), s(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]));
        assert_eq!(nginx.argv(&s(&["sleep"]), &[]), s(&["sleep"]));
        assert_eq!(nginx.argv(&[], &s(&["nginx-debug"])), s(&["/docker-entrypoint.sh", "nginx-debug"]));
        assert_eq!(nginx.argv(&s(&["sh", "-c"]), &s(&["echo"])), s(&["sh", "-c", "echo"]));
        assert_eq!(resolve("busybox").expect("busybox").argv(&[], &[]), s(&["sh"]));
    }

    #[test]
    fn env_order_and_overrides() {
        let bb = resolve("busybox").expect("busybox");
        let env = bb.process_env("pod-a", &[("A".into(), "1".into()), ("PATH".into(), "/x".into())], true);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "HOSTNAME", "A", "TERM", "HOME"]);
        assert_eq!(env[0].1, "/x");
        assert_eq!(env[1].1, "pod-a");
        assert!(bb.process_env("p", &[], false)[0].1.starts_with("/bin:"));
    }

    #[test]
    fn emu_needs_its_daemons_and_the_dns_server_beside_it() {
        assert_eq!(companion_programs(), ["emu-controller", "emu-nodeagent", "emu-dns"]);
    }

    #[test]
    fn a_missing_program_names_itself_and_its_fix() {
        let dir = std::path::Path::new("/opt/emu/bin");
        let nginx = resolve("nginx").expect("nginx");
        assert_eq!(nginx.missing_program("nginx:1.25", dir, |_| true), None);
        let err = nginx.missing_program("nginx:1.25", dir, |p| p != std::path::Path::new("/usr/sbin/nginx")).expect("missing");
        assert_eq!(
            err.to_string(),
            "failed to pull image \"nginx:1.25\": emu runs it with this machine's /usr/sbin/nginx, which is not installed: install it with `sudo apt-get install nginx-light`"
        );
        let dns = resolve("registry.k8s.io/coredns/coredns:v1.11.1").expect("coredns");
        let err = dns.missing_program("registry.k8s.io/coredns/coredns:v1.11.1", dir, |p| p != dir.join("emu-dns")).expect("missing");
        let msg = err.to_string();
        assert!(msg.contains("its own program emu-dns, which is not in /opt/emu/bin (beside emu-nodeagent)"), "{msg}");
        assert!(msg.contains("`sudo emu install`"), "{msg}");
        // Host programs are checked first: the package is the likelier fix.
        let curl = resolve("curlimages/curl").expect("curl");
        let err = curl.missing_program("curlimages/curl", dir, |p| !p.starts_with("/usr/bin")).expect("missing");
        assert!(err.to_string().contains("/usr/bin/busybox"), "{err}");
        // Every profile names what it runs from the host, except the ones emu provides.
        for p in catalog() {
            assert!(!p.host_programs.is_empty() || p.emu_programs().count() > 0, "{}", p.name);
        }
    }

    #[test]
    fn passwd_has_root_image_users_and_nobody() {
        let nginx = resolve("nginx").expect("nginx");
        let passwd = nginx.passwd();
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("\nnginx:x:101:101:"));
        assert!(passwd.ends_with("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
        assert!(nginx.group().contains("\nnginx:x:101:\n"));
    }
}
