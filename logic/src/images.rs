//! The image catalog: what an image name means when no registry is reachable.
//!
//! A profile says which host programs an image runs (from Debian's packages), what else of the
//! host's files the image has (the programs of its base system, the data its programs read), its
//! default ENTRYPOINT/CMD/ENV/WORKDIR, and the files the real image has at the same paths, so
//! that the tutorial's volume mounts land where they would. A container sees only these files
//! (and the libraries they load), never the rest of the host's `/usr`: the node builds each
//! image's files once, when a pod first "pulls" it (`nodeagent/src/sandbox/image_view.rs`).
//! This module is pure data plus lookup and the Kubernetes rules that combine a profile with a
//! container spec (command/args, environment, /etc/passwd, the writable layer's size); the shim
//! does the file work.

use emu_api::typed::k8s_openapi::api::core::v1::Container;

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
    /// Files of the image's own layers that emu writes (its configuration, entrypoint scripts).
    pub files: &'static [ImageFile],
    /// `(path, target)` symlinks of the image, e.g. nginx's log files pointing at /dev/stdout.
    pub symlinks: &'static [(&'static str, &'static str)],
    /// Directories the image has (mode 0755, root-owned), created before files and symlinks.
    pub dirs: &'static [&'static str],
    /// Users of the image besides `root` and `nobody`, each with a group of the same name and id.
    pub users: &'static [ImageUser],
    /// USER: who its containers run as without `runAsUser` (`""`: root; a name of `users`, a
    /// number, either with `:group`), as [`crate::identity::container_identity`] reads it.
    pub user: &'static str,
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
    /// Debian packages whose programs and shared libraries the image has besides
    /// `host_programs` (what each installs into /bin, /sbin, /usr/bin and /usr/sbin, and its
    /// `lib*.so*` in the library directories, by dpkg's file list), as far as this machine has
    /// them installed: the base system a Debian- or Ubuntu-based image is built on.
    pub packages: &'static [&'static [&'static str]],
    /// More of the host's files that the image has, in groups: files or directories (with
    /// everything beneath them), where `*` matches within one path component; skipped where
    /// this machine lacks them. Programs the image has beside its main ones, and the data its
    /// programs read at run time (nginx's pages, CA certificates, terminal descriptions, perl's
    /// and python's libraries). Symlinks are kept, and what they point at comes along.
    pub host_files: &'static [&'static [&'static str]],
}

/// A program of the host's (from a Debian package) that an image runs; it is at the same path
/// in the container, with the libraries it loads.
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
const PERL_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/perl", package: "perl" };
const PYTHON_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/python3", package: "python3" };
const IPERF3_PROGRAM: HostProgram = HostProgram { path: "/usr/bin/iperf3", package: "iperf3" };
const DNSMASQ_PROGRAM: HostProgram = HostProgram { path: "/usr/sbin/dnsmasq", package: "dnsmasq-base" };

/// What debian:bookworm-slim has of its essential packages: the programs a shell's user types,
/// and the C and C++ runtime libraries that programs built elsewhere (a Python wheel's
/// extension) expect of every Debian. The base of the Debian-based official images (nginx, perl,
/// python), and close to Ubuntu's.
const DEBIAN_BASE: &[&str] = &[
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "bash",
    "dash",
    "coreutils",
    "grep",
    "sed",
    "findutils",
    "gzip",
    "tar",
    "hostname",
    "mawk",
    "debianutils",
    "diffutils",
    "libc-bin",
    "ncurses-bin",
];
/// ncurses-base's terminal descriptions: a shell on `emu exec -it` (TERM=xterm) and `clear`
/// look them up.
const TERMINFO: &[&str] = &["/usr/lib/terminfo", "/usr/share/terminfo"];
/// ca-certificates: the bundle and hashed links curl and OpenSSL read (their targets, in
/// /usr/share/ca-certificates, come along).
const CA_CERTIFICATES: &[&str] = &["/etc/ssl/certs"];
/// perl-base's modules: perl-base is essential, so every Debian and Ubuntu image has it.
const PERL_BASE_FILES: &[&str] = &["/usr/lib/*/perl-base"];
/// The official perl image's: all of perl's modules.
const PERL_FILES: &[&str] = &["/usr/lib/*/perl/5.*", "/usr/share/perl/5.*", "/usr/lib/*/perl5/5.*", "/usr/share/perl5", "/etc/perl"];
/// The official python image's: the standard library (its compiled modules load their own
/// libraries, which come along).
const PYTHON_FILES: &[&str] = &["/usr/lib/python3.*", "/etc/python3.*"];
/// nginx's default pages; the official image's curl and envsubst. Also procps' ps and
/// iproute2's ip, which the official image lacks: emu's README shows a pod's isolation with them
/// (`ps` sees the pod's processes only, `ip link add` is refused).
const NGINX_FILES: &[&str] = &["/usr/share/nginx/html", "/usr/bin/curl", "/usr/bin/envsubst", "/usr/bin/ps", "/usr/sbin/ip"];
/// What a shell user finds in tutum/dnsutils (Ubuntu 14.04 with dnsutils) beside the base:
/// ps, the BIND tools and Ubuntu's essential perl.
const DNSUTILS_PACKAGES: &[&str] = &["procps", "bind9-dnsutils", "bind9-host", "perl-base"];

/// Alpine's busybox-based images with agnhost's extra packages (bash, curl, iproute2's ip,
/// bind-tools' dig): what e2e tests and users run in an agnhost pod besides agnhost itself.
const AGNHOST_FILES: &[&str] = &["/usr/bin/bash", "/usr/bin/curl", "/usr/sbin/ip", "/usr/bin/dig"];
/// node:7's (buildpack-deps, a full Debian) programs a shell user of the kubia pods reaches for:
/// curl, as the book runs `curl` in a pod, and ps.
const KUBIA_FILES: &[&str] = &["/usr/bin/curl", "/usr/bin/ps"];
/// emu's server program for the test and book images ([agnhost/](/agnhost), like Kubernetes'
/// agnhost): what it serves depends on the name it runs under.
const AGNHOST: &str = "emu-agnhost";

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

/// The official busybox image's printenv applet, which Debian's build of busybox lacks:
/// coreutils' stands in (`kubectl exec POD -- printenv` is how one sees a pod's variables).
const BUSYBOX_STANDINS: &[&str] = &["/usr/bin/printenv"];

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
        user: "",
        busybox_bin: true,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[BUSYBOX_PROGRAM],
        packages: &[],
        host_files: &[BUSYBOX_STANDINS],
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
    user: "",
    busybox_bin: false,
    exposed_ports: &[80],
    emu_mounts: &[],
    host_programs: &[NGINX_PROGRAM],
    packages: &[DEBIAN_BASE],
    host_files: &[NGINX_FILES, CA_CERTIFICATES, TERMINFO],
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

/// The book's kubia app ("Kubernetes in Action", chapter 2), the `luksa/kubia` image's /app.js.
/// emu's `node` (emu-agnhost under that name) serves the app it recognizes in the script.
const KUBIA_APP_JS: &str = r#"const http = require('http');
const os = require('os');

console.log("Kubia server starting...");

var handler = function(request, response) {
  console.log("Received request from " + request.connection.remoteAddress);
  response.writeHead(200);
  response.end("You've hit " + os.hostname() + "\n");
};

var www = http.createServer(handler);
www.listen(8080);
"#;

/// `luksa/kubia-unhealthy`'s /app.js (chapter 4's liveness probe example): from the sixth
/// request on, 500.
const KUBIA_UNHEALTHY_APP_JS: &str = r#"const http = require('http');
const os = require('os');

console.log("Kubia server starting...");

var requestCount = 0;

var handler = function(request, response) {
  console.log("Received request from " + request.connection.remoteAddress);
  requestCount++;
  if (requestCount > 5) {
    response.writeHead(500);
    response.end("I'm not well. Please restart me!");
    return;
  }
  response.writeHead(200);
  response.end("You've hit " + os.hostname() + "\n");
};

var www = http.createServer(handler);
www.listen(8080);
"#;

const KUBIA_FILES_JS: &[ImageFile] = &[ImageFile { path: "/app.js", mode: 0o644, source: FileSource::Inline(KUBIA_APP_JS) }];
const KUBIA_UNHEALTHY_FILES_JS: &[ImageFile] =
    &[ImageFile { path: "/app.js", mode: 0o644, source: FileSource::Inline(KUBIA_UNHEALTHY_APP_JS) }];

/// The book's images: `FROM node:7` (a full Debian), `ADD app.js /app.js`,
/// `ENTRYPOINT ["node", "app.js"]`; emu-agnhost is `node`, where the node image has it.
const fn kubia(name: &'static str, files: &'static [ImageFile]) -> ImageProfile {
    ImageProfile {
        name,
        entrypoint: &["node", "app.js"],
        cmd: &[],
        env: &[("PATH", STD_PATH), ("NPM_CONFIG_LOGLEVEL", "info"), ("NODE_VERSION", "7.10.1")],
        working_dir: "/",
        files,
        symlinks: &[],
        dirs: &["/home/node"],
        users: &[ImageUser { name: "node", uid: 1000, gid: 1000, home: "/home/node", shell: "/bin/bash" }],
        user: "",
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[EmuMount::Program { program: AGNHOST, path: "/usr/local/bin/node" }],
        host_programs: &[],
        packages: &[DEBIAN_BASE],
        host_files: &[KUBIA_FILES, CA_CERTIFICATES, TERMINFO],
    }
}

/// Kubernetes' agnhost test image (Alpine with bash, curl, iproute2 and bind-tools;
/// `ENTRYPOINT ["/agnhost"]`, `CMD ["pause"]`): emu-agnhost is `/agnhost` (and `/agnhost-2`, the
/// link entrypoint tests use), with agnhost's `netexec`, `serve-hostname` and `pause`.
const fn agnhost(name: &'static str) -> ImageProfile {
    ImageProfile {
        entrypoint: &["/agnhost"],
        cmd: &["pause"],
        symlinks: &[("/agnhost-2", "agnhost")],
        dirs: &["/uploads"],
        exposed_ports: &[80, 8080, 8081, 9376],
        emu_mounts: &[EmuMount::Program { program: AGNHOST, path: "/agnhost" }],
        host_files: &[BUSYBOX_STANDINS, AGNHOST_FILES, CA_CERTIFICATES],
        ..busybox_shell(name)
    }
}

/// The pause image (`FROM scratch`, `/pause`, `USER 65535:65535`): emu-agnhost as `/pause`
/// sleeps until SIGTERM or SIGINT, as pause.c does.
const fn pause(name: &'static str) -> ImageProfile {
    ImageProfile {
        name,
        entrypoint: &["/pause"],
        cmd: &[],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &[],
        users: &[],
        user: "65535:65535",
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[EmuMount::Program { program: AGNHOST, path: "/pause" }],
        host_programs: &[],
        packages: &[],
        host_files: &[],
    }
}

/// The serve_hostname image that agnhost's `serve-hostname` replaced (busybox with
/// `ENTRYPOINT ["/serve_hostname"]`, HTTP on 9376; Go's `-udp`, `-tcp`, `-http`, `-port` flags).
const fn serve_hostname(name: &'static str) -> ImageProfile {
    ImageProfile {
        entrypoint: &["/serve_hostname"],
        cmd: &[],
        exposed_ports: &[9376],
        emu_mounts: &[EmuMount::Program { program: AGNHOST, path: "/serve_hostname" }],
        ..busybox_shell(name)
    }
}

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
    ImageProfile {
        host_programs: &[BUSYBOX_PROGRAM, CURL_PROGRAM],
        host_files: &[BUSYBOX_STANDINS, CA_CERTIFICATES],
        ..busybox_shell("radial/busyboxplus:curl")
    },
    ImageProfile {
        entrypoint: &["/entrypoint.sh"],
        cmd: &["curl"],
        working_dir: "/home/curl_user",
        files: &[ImageFile { path: "/entrypoint.sh", mode: 0o755, source: FileSource::Inline(CURL_ENTRYPOINT) }],
        dirs: &["/home/curl_user"],
        host_programs: &[BUSYBOX_PROGRAM, CURL_PROGRAM],
        host_files: &[BUSYBOX_STANDINS, CA_CERTIFICATES],
        // The image's Dockerfile: `adduser -S curl_user -G curl_group`, `USER curl_user`.
        users: &[ImageUser { name: "curl_user", uid: 100, gid: 101, home: "/home/curl_user", shell: "/sbin/nologin" }],
        user: "curl_user",
        ..busybox_shell("curlimages/curl")
    },
    coredns("registry.k8s.io/coredns/coredns"),
    coredns("coredns/coredns"),
    ingress_nginx("registry.k8s.io/ingress-nginx/controller"),
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
        user: "",
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[DIG_PROGRAM, NSLOOKUP_PROGRAM],
        packages: &[DEBIAN_BASE, DNSUTILS_PACKAGES],
        host_files: &[PERL_BASE_FILES, TERMINFO],
    },
    // The official perl image (Debian with all of perl); CMD is its debugger's shell.
    ImageProfile {
        name: "perl",
        entrypoint: &[],
        cmd: &["perl", "-de0"],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &[],
        users: &[],
        user: "",
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[PERL_PROGRAM],
        packages: &[DEBIAN_BASE, &["perl-base", "perl"]],
        host_files: &[PERL_BASE_FILES, PERL_FILES, CA_CERTIFICATES, TERMINFO],
    },
    // The official python image (Debian with python3; `python` names it too).
    ImageProfile {
        name: "python",
        entrypoint: &[],
        cmd: &["python3"],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[("/usr/local/bin/python", "/usr/bin/python3")],
        dirs: &[],
        users: &[],
        user: "",
        busybox_bin: false,
        exposed_ports: &[],
        emu_mounts: &[],
        host_programs: &[PYTHON_PROGRAM],
        packages: &[DEBIAN_BASE],
        host_files: &[PYTHON_FILES, CA_CERTIFICATES, TERMINFO],
    },
    // networkstatic/iperf3 (Debian with iperf3 as ENTRYPOINT: `args: [-s]` serves): the
    // benchmark's throughput server.
    ImageProfile {
        name: "networkstatic/iperf3",
        entrypoint: &["iperf3"],
        cmd: &[],
        env: &[("PATH", STD_PATH)],
        working_dir: "/",
        files: &[],
        symlinks: &[],
        dirs: &[],
        users: &[],
        user: "",
        busybox_bin: false,
        exposed_ports: &[5201],
        emu_mounts: &[],
        host_programs: &[IPERF3_PROGRAM],
        packages: &[DEBIAN_BASE],
        host_files: &[],
    },
    // 4km3/dnsmasq (Alpine with dnsmasq, ENTRYPOINT `dnsmasq -k`): the DNS benchmark's baseline.
    ImageProfile {
        entrypoint: &["dnsmasq", "-k"],
        cmd: &[],
        exposed_ports: &[53],
        host_programs: &[BUSYBOX_PROGRAM, DNSMASQ_PROGRAM],
        ..busybox_shell("4km3/dnsmasq")
    },
    // The book's and Kubernetes' test images, served by emu-agnhost.
    kubia("luksa/kubia", KUBIA_FILES_JS),
    kubia("luksa/kubia-unhealthy", KUBIA_UNHEALTHY_FILES_JS),
    agnhost("registry.k8s.io/e2e-test-images/agnhost"),
    agnhost("k8s.gcr.io/e2e-test-images/agnhost"),
    pause("registry.k8s.io/pause"),
    pause("k8s.gcr.io/pause"),
    serve_hostname("registry.k8s.io/serve_hostname"),
    serve_hostname("k8s.gcr.io/serve_hostname"),
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
        user: "",
        busybox_bin: false,
        exposed_ports: &[53, 9153],
        emu_mounts: &[EmuMount::Program { program: "emu-dns", path: "/coredns" }, EmuMount::ApiSocket { path: API_SOCKET_IN_CONTAINER }],
        host_programs: &[],
        packages: &[],
        host_files: &[],
    }
}

/// The ingress-nginx controller image: its program (`/nginx-ingress-controller`, here emu's
/// emu-ingress) and nginx (Debian's nginx-light, at /usr/sbin/nginx), which the program runs as
/// its child; it reads the cluster's objects through the API socket, as ingress-nginx does
/// through the API server.
const fn ingress_nginx(name: &'static str) -> ImageProfile {
    ImageProfile {
        name,
        entrypoint: &[],
        cmd: &["/nginx-ingress-controller"],
        env: &[("PATH", STD_PATH)],
        working_dir: "/etc/nginx",
        files: &[],
        symlinks: &[],
        dirs: &["/etc/nginx", "/etc/ingress-controller/ssl", "/tmp/nginx"],
        users: &[],
        user: "",
        busybox_bin: false,
        exposed_ports: &[80, 443],
        emu_mounts: &[
            EmuMount::Program { program: "emu-ingress", path: "/nginx-ingress-controller" },
            EmuMount::ApiSocket { path: API_SOCKET_IN_CONTAINER },
        ],
        host_programs: &[NGINX_PROGRAM],
        packages: &[DEBIAN_BASE],
        host_files: &[],
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
/// the programs image profiles run (emu-dns as CoreDNS, emu-ingress as ingress-nginx's
/// controller). The one list the installer (`emu install`), `emu up`'s check and the tests use.
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
    pub fn process_env(&self, hostname: &str, env: &[(String, String)], tty: bool, uid: u32) -> Vec<(String, String)> {
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
            set(&mut out, "HOME", self.home_of(uid));
        }
        out
    }

    /// The home directory of user `uid` in the image's /etc/passwd; `/` for a user it lacks,
    /// as containerd sets HOME.
    pub fn home_of(&self, uid: u32) -> &'static str {
        match uid {
            0 => "/root",
            _ => self.users.iter().find(|u| u.uid == uid).map_or("/", |u| u.home),
        }
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

/// The size of a container's writable layer when it sets no `resources.limits.ephemeral-storage`:
/// 256 MiB. The layer is a tmpfs, so it is the node's memory: the kernel's default size (half
/// of the machine's RAM, for each container) would let one runaway writer take the memory of
/// every node on the machine, while 256 MiB is far more than the catalog's programs write (their
/// logs go to the container's output) and than the tests copy into a pod (the Python client's
/// packages, about 40 MiB). A pod that needs more says so with its limit, as it would to be
/// given the disk space in Kubernetes.
pub const DEFAULT_WRITABLE_LAYER_BYTES: u64 = 256 << 20;

/// The size of the container's writable layer: its `resources.limits.ephemeral-storage`, else
/// [`DEFAULT_WRITABLE_LAYER_BYTES`]. At least a page: a tmpfs of size 0 would have no limit at
/// all, where a limit of 0 means nothing may be written.
pub fn writable_layer_bytes(container: &Container) -> u64 {
    let limit = container.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("ephemeral-storage"));
    match limit.and_then(|q| crate::volumes::quantity_bytes(&q.0)) {
        Some(bytes) => bytes.max(4096),
        None => DEFAULT_WRITABLE_LAYER_BYTES,
    }
}

impl ImageProfile {
    /// The name of the directory that holds the image's files once pulled: its name made a
    /// file name, and a hash of the whole profile and of `layout` (the version of the
    /// builder's layout), so that an emu with another profile or layout never uses an older copy.
    pub fn view_name(&self, layout: u32) -> String {
        let name: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash =
            format!("{layout}\n{self:?}").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        format!("{name}-{hash:016x}")
    }

    /// The host paths the image's files start from, in order: its programs, then its other
    /// files' patterns (see [`ImageProfile::host_files`]).
    pub fn host_paths(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.host_programs.iter().map(|p| p.path).chain(self.host_files.iter().flat_map(|group| group.iter().copied()))
    }

    /// The Debian packages whose programs the image has, each once, in order.
    pub fn package_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for name in self.packages.iter().flat_map(|group| group.iter().copied()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// The directories whose entries are a package's programs.
const PROGRAM_DIRS: [&str; 4] = ["/bin", "/sbin", "/usr/bin", "/usr/sbin"];
/// The directories of shared libraries, besides their multiarch subdirectories
/// (/usr/lib/x86_64-linux-gnu).
const LIBRARY_DIRS: [&str; 4] = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/// The programs and shared libraries in a Debian package's file list (dpkg's
/// `/var/lib/dpkg/info/<package>.list`, one path a line), as dpkg names them (on a merged-/usr
/// system /bin/cat is /usr/bin/cat reached through the /bin link): its entries directly in
/// /bin, /sbin, /usr/bin or /usr/sbin, and its `lib*.so*` directly in a library directory or
/// its multiarch subdirectory (not a program's modules deeper down).
pub fn package_files(list: &str) -> Vec<&str> {
    let is_library_dir = |dir: &str| {
        LIBRARY_DIRS.contains(&dir)
            || dir.rsplit_once('/').is_some_and(|(parent, sub)| !sub.is_empty() && ["/lib", "/usr/lib"].contains(&parent))
    };
    list.lines()
        .map(str::trim_end)
        .filter(|line| {
            line.rsplit_once('/').is_some_and(|(dir, name)| {
                !name.is_empty()
                    && (PROGRAM_DIRS.contains(&dir) || (name.starts_with("lib") && name.contains(".so") && is_library_dir(dir)))
            })
        })
        .collect()
}

/// Whether the file name `name` matches `pattern`, one component of a host-file pattern, in
/// which `*` stands for any run of characters (also none) and everything else for itself.
pub fn matches_component(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(tail) = name.strip_prefix(prefix) else { return false };
            // The star takes 0..=len characters; the rest must match what remains.
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| matches_component(rest, &tail[i..]))
        }
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
    fn the_book_and_test_images_resolve_with_any_tag() {
        let name = |image: &str| resolve(image).map(|p| p.name).unwrap_or_else(|e| panic!("{e}"));
        for image in ["luksa/kubia", "luksa/kubia:latest", "docker.io/luksa/kubia:v1"] {
            assert_eq!(name(image), "luksa/kubia", "{image}");
        }
        assert_eq!(name("luksa/kubia-unhealthy"), "luksa/kubia-unhealthy");
        for image in ["registry.k8s.io/e2e-test-images/agnhost:2.39", "registry.k8s.io/e2e-test-images/agnhost:2.53"] {
            assert_eq!(name(image), "registry.k8s.io/e2e-test-images/agnhost", "{image}");
        }
        assert_eq!(name("k8s.gcr.io/e2e-test-images/agnhost:2.21"), "k8s.gcr.io/e2e-test-images/agnhost");
        assert_eq!(name("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause");
        assert_eq!(name("k8s.gcr.io/pause:3.2"), "k8s.gcr.io/pause");
        assert_eq!(name("registry.k8s.io/serve_hostname:v1.4"), "registry.k8s.io/serve_hostname");
        assert_eq!(name("k8s.gcr.io/serve_hostname"), "k8s.gcr.io/serve_hostname");
        assert!(resolve("agnhost").is_err() && resolve("kubia").is_err() && resolve("pause").is_err());
    }

    #[test]
    fn the_book_and_test_images_run_emu_agnhost_under_their_programs_names() {
        let image = |name: &str| resolve(name).expect(name);
        let mount = |p: &ImageProfile| match p.emu_mounts {
            [EmuMount::Program { program, path }] => (*program, *path),
            other => panic!("{}: {other:?}", p.name),
        };
        // luksa/kubia: `ENTRYPOINT ["node", "app.js"]` in node:7's Debian, with bash and curl.
        let kubia = image("luksa/kubia");
        assert_eq!(kubia.argv(&[], &[]), s(&["node", "app.js"]));
        assert_eq!(kubia.argv(&s(&["bash"]), &[]), s(&["bash"]));
        assert_eq!(mount(kubia), ("emu-agnhost", "/usr/local/bin/node"));
        assert!(kubia.package_names().contains(&"bash"));
        assert!(kubia.host_paths().any(|p| p == "/usr/bin/curl"));
        let app_js = |p: &ImageProfile| match p.files {
            [ImageFile { path: "/app.js", source: FileSource::Inline(text), .. }] => text.to_string(),
            other => panic!("{}: {other:?}", p.name),
        };
        assert!(app_js(kubia).contains("response.end(\"You've hit \" + os.hostname() + \"\\n\");"), "{}", app_js(kubia));
        assert!(!app_js(kubia).contains("I'm not well"));
        let unhealthy = image("luksa/kubia-unhealthy");
        assert!(app_js(unhealthy).contains("if (requestCount > 5) {"));
        assert!(app_js(unhealthy).contains("response.end(\"I'm not well. Please restart me!\");"));
        assert_eq!(unhealthy.argv(&[], &[]), s(&["node", "app.js"]));

        // agnhost: `ENTRYPOINT ["/agnhost"]`, `CMD ["pause"]`; args replace CMD, command ENTRYPOINT.
        let agnhost = image("registry.k8s.io/e2e-test-images/agnhost:2.53");
        assert_eq!(agnhost.argv(&[], &[]), s(&["/agnhost", "pause"]));
        assert_eq!(
            agnhost.argv(&[], &s(&["netexec", "--http-port=8080", "--udp-port=8081"])),
            s(&["/agnhost", "netexec", "--http-port=8080", "--udp-port=8081"])
        );
        assert_eq!(agnhost.argv(&s(&["/agnhost"]), &[]), s(&["/agnhost"]), "no command: agnhost prints its usage");
        assert_eq!(
            agnhost.argv(&s(&["/agnhost", "serve-hostname"]), &s(&["--port", "9377"])),
            s(&["/agnhost", "serve-hostname", "--port", "9377"])
        );
        assert_eq!(mount(agnhost), ("emu-agnhost", "/agnhost"));
        assert_eq!(agnhost.exposed_ports, &[80, 8080, 8081, 9376]);
        assert!(agnhost.busybox_bin && agnhost.host_paths().any(|p| p == "/usr/bin/bash"));

        // pause: `/pause` as 65535:65535, nothing else in the image.
        let pause = image("registry.k8s.io/pause:3.10");
        assert_eq!(pause.argv(&[], &[]), s(&["/pause"]));
        assert_eq!((mount(pause), pause.user), (("emu-agnhost", "/pause"), "65535:65535"));
        assert_eq!(pause.host_paths().count() + pause.package_names().len(), 0);

        let serve = image("registry.k8s.io/serve_hostname:v1.4");
        assert_eq!(serve.argv(&[], &s(&["-udp", "-http=false"])), s(&["/serve_hostname", "-udp", "-http=false"]));
        assert_eq!((mount(serve), serve.exposed_ports), (("emu-agnhost", "/serve_hostname"), &[9376][..]));
    }

    #[test]
    fn env_order_and_overrides() {
        let bb = resolve("busybox").expect("busybox");
        let env = bb.process_env("pod-a", &[("A".into(), "1".into()), ("PATH".into(), "/x".into())], true, 0);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "HOSTNAME", "A", "TERM", "HOME"]);
        assert_eq!(env[0].1, "/x");
        assert_eq!(env[1].1, "pod-a");
        assert!(bb.process_env("p", &[], false, 0)[0].1.starts_with("/bin:"));
    }

    #[test]
    fn emu_needs_its_daemons_and_the_dns_server_beside_it() {
        assert_eq!(companion_programs(), ["emu-controller", "emu-nodeagent", "emu-dns", "emu-ingress", "emu-agnhost"]);
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

    #[test]
    fn an_image_names_its_programs_and_the_host_files_it_has() {
        let paths = |image: &str| resolve(image).expect(image).host_paths().collect::<Vec<_>>();
        assert_eq!(paths("busybox"), ["/usr/bin/busybox", "/usr/bin/printenv"]);
        assert_eq!(paths("radial/busyboxplus:curl"), ["/usr/bin/busybox", "/usr/bin/curl", "/usr/bin/printenv", "/etc/ssl/certs"]);
        let nginx = paths("nginx");
        assert_eq!(nginx[..2], ["/usr/sbin/nginx", "/usr/share/nginx/html"]);
        assert!(nginx.contains(&"/usr/lib/terminfo") && nginx.contains(&"/etc/ssl/certs"), "{nginx:?}");
        assert_eq!(paths("registry.k8s.io/coredns/coredns:v1.12.0"), Vec::<&str>::new());
        // The Debian-based images have Debian's base system, busybox images only busybox.
        let packages = |image: &str| resolve(image).expect(image).package_names();
        for image in ["nginx", "bprashanth/nginxhttps:1.0", "perl", "python:3.11", "networkstatic/iperf3", "tutum/dnsutils"] {
            let names = packages(image);
            assert!(["bash", "dash", "coreutils", "grep", "tar"].iter().all(|p| names.contains(p)), "{image}: {names:?}");
        }
        assert_eq!(packages("tutum/dnsutils")[DEBIAN_BASE.len()..], ["procps", "bind9-dnsutils", "bind9-host", "perl-base"]);
        assert_eq!(packages("perl").iter().filter(|p| **p == "perl-base").count(), 1, "each package once");
        for image in ["busybox", "radial/busyboxplus:curl", "curlimages/curl", "coredns/coredns"] {
            assert!(packages(image).is_empty(), "{image}");
        }
        // Nothing of a package manager or an interpreter the image does not have.
        for p in catalog() {
            for path in p.host_paths() {
                assert!(!path.contains("apt") && !path.contains("dpkg"), "{}: {path}", p.name);
            }
            assert!(!p.package_names().iter().any(|n| n.starts_with("apt") || *n == "dpkg"), "{}", p.name);
        }
    }

    #[test]
    fn view_names_are_file_names_unique_per_profile_and_layout() {
        let mut names: Vec<String> = catalog().iter().map(|p| p.view_name(1)).collect();
        for name in &names {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{name}");
        }
        assert!(names[2].starts_with("busybox-") && names[3].starts_with("radial_busyboxplus_curl-"), "{names:?}");
        let nginx = resolve("nginx").expect("nginx");
        assert_eq!(nginx.view_name(1), nginx.view_name(1), "stable");
        assert_ne!(nginx.view_name(1), nginx.view_name(2), "a new layout is a new copy");
        names.sort();
        names.dedup();
        assert_eq!(names.len(), catalog().len());
    }

    #[test]
    fn a_packages_files_are_its_programs_and_shared_libraries() {
        let list = "/.\n/bin\n/bin/cat\n/usr\n/usr/bin\n/usr/bin/[\n/usr/bin/env\n/usr/sbin/chroot\n/sbin/x\n\
                    /usr/share/man/man1/cat.1.gz\n/usr/lib/x86_64-linux-gnu/coreutils/libstdbuf.so\n/usr/bin/sub/dir\n/usr/local/bin/y\n";
        assert_eq!(package_files(list), ["/bin/cat", "/usr/bin/[", "/usr/bin/env", "/usr/sbin/chroot", "/sbin/x"]);
        assert!(package_files("").is_empty());
        // libc6's and libstdc++6's: libraries, not gconv's modules or gdb's scripts.
        let list = "/lib/x86_64-linux-gnu/libc.so.6\n/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n/usr/lib/x86_64-linux-gnu/gconv/IBM1047.so\n\
                    /usr/lib/x86_64-linux-gnu/libstdc++.so.6\n/usr/share/gdb/auto-load/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30-gdb.py\n\
                    /lib64/ld-linux-x86-64.so.2\n/usr/lib/libfoo.so.1\n/usr/lib/x86_64-linux-gnu/perl-base/auto/POSIX/libPOSIX.so\n/usr/lib/locale/C.utf8/LC_CTYPE\n";
        assert_eq!(
            package_files(list),
            ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/libfoo.so.1"]
        );
    }

    #[test]
    fn a_star_matches_any_run_within_a_component() {
        assert!(matches_component("perl-base", "perl-base"));
        assert!(!matches_component("perl-base", "perl-base2"));
        assert!(matches_component("*", "x86_64-linux-gnu"));
        assert!(matches_component("5.*", "5.36"));
        assert!(matches_component("5.*", "5."));
        assert!(!matches_component("5.*", "55"));
        assert!(matches_component("python3.*", "python3.11"));
        assert!(!matches_component("python3.*", "python3"));
        assert!(matches_component("lib*.so*", "libc.so.6"));
        assert!(!matches_component("lib*.so*", "ld.so.cache"));
        assert!(matches_component("*-gnu", "x86_64-linux-gnu"));
        assert!(!matches_component("*-gnu", "x86_64-linux-gnux32"));
    }

    #[test]
    fn the_writable_layer_is_the_ephemeral_storage_limit_or_256_mebibytes() {
        let container = |limits: &str| -> Container {
            serde_json::from_str(&format!(r#"{{"name": "c", "resources": {{"limits": {{{limits}}}}}}}"#)).expect("container")
        };
        assert_eq!(writable_layer_bytes(&container("")), 256 << 20);
        assert_eq!(writable_layer_bytes(&container(r#""memory": "64Mi""#)), DEFAULT_WRITABLE_LAYER_BYTES);
        assert_eq!(writable_layer_bytes(&container(r#""ephemeral-storage": "4Mi""#)), 4 << 20);
        assert_eq!(writable_layer_bytes(&container(r#""ephemeral-storage": "2G""#)), 2_000_000_000);
        // 0 is "nothing may be written", not tmpfs's "no limit".
        assert_eq!(writable_layer_bytes(&container(r#""ephemeral-storage": "0""#)), 4096);
        assert_eq!(writable_layer_bytes(&serde_json::from_str(r#"{"name": "c"}"#).expect("container")), DEFAULT_WRITABLE_LAYER_BYTES);
    }
}
