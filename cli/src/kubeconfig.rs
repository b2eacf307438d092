//! kubectl's kubeconfig, as kind keeps it: `emu up` merges a cluster, a user and a context all
//! named `emu-<cluster>` into the user's kubeconfig and makes the context current; `emu down`
//! takes the three out again; `emu kubeconfig` prints a kubeconfig of the cluster alone. What goes
//! in (the server on the host's 127.0.0.1, the CA, an admin client certificate) comes from the
//! controller's `Kubeconfig` call: the CLI never reads the CA's key.
//!
//! Which file (kind's `paths.go`, plus what kind lacks for sudo): each file of `$KUBECONFIG`
//! (`:`-separated, empty entries and repeats dropped): to merge into, the first that exists, else
//! the last; to remove from, all of them. Without `$KUBECONFIG`, when emu runs as root through
//! sudo, `~<SUDO_USER>/.kube/config`, owned by that user and their primary group (so kubectl works
//! for them without sudo); else `$HOME/.kube/config`.
//!
//! How (kind's `lock.go`, `write.go`): the parent directory is made with mode 0755; `<file>.lock`
//! is created with O_CREAT|O_EXCL while the file is read, changed and written whole, mode 0600
//! (it holds a private key). Entries of other clusters and fields emu does not know are kept as
//! they were. A file that does not parse is left untouched and named in the error.

use base64::Engine as _;
use emu_proto::KubeconfigResponse;
use serde_json::{json, Map, Value};
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The three lists a context's entries go into, each with the key holding an entry's data.
const LISTS: [&str; 3] = ["clusters", "contexts", "users"];

/// How long `<file>.lock` is waited for: several `emu up` at once (the test suite runs clusters in
/// parallel) queue up instead of failing as kind's first attempt would.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig {}: not valid YAML ({reason}); nothing was changed: fix the file, or set KUBECONFIG to another one", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("kubeconfig {}: {field} is {found}, not {expected}; nothing was changed: fix the file, or set KUBECONFIG to another one", path.display())]
    Shape { path: PathBuf, field: String, found: &'static str, expected: &'static str },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {}: still locked after {} s by {} (another emu or kubectl writing it); if none is running, remove {}", path.display(), LOCK_WAIT.as_secs(), lock.display(), lock.display())]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("no kubeconfig to write: $HOME is not set (set KUBECONFIG to the file to use)")]
    NoHome,
    #[error("$SUDO_USER is {0:?}, a user this machine does not know: set KUBECONFIG to the file to use")]
    UnknownSudoUser(String),
}

type Result<T, E = KubeconfigError> = std::result::Result<T, E>;

/// The name of the cluster, user and context of cluster `cluster`: `emu-<cluster>`, as kind
/// names its own `kind-<cluster>`.
pub fn context_name(cluster: &str) -> String {
    format!("emu-{cluster}")
}

// ---- Pure: the document ------------------------------------------------------------------------

/// The three entries of `cluster` with the controller's material, in `LISTS`' order.
fn entries(cluster: &str, k: &KubeconfigResponse) -> [Value; 3] {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let name = context_name(cluster);
    [
        json!({"name": name, "cluster": {"server": k.server, "certificate-authority-data": b64(&k.certificate_authority)}}),
        json!({"name": name, "context": {"cluster": name, "user": name}}),
        json!({"name": name, "user": {"client-certificate-data": b64(&k.client_certificate), "client-key-data": b64(&k.client_key)}}),
    ]
}

/// A kubeconfig holding only `cluster`, current (`emu kubeconfig`).
pub fn document(cluster: &str, k: &KubeconfigResponse) -> Value {
    let mut config = Map::new();
    merge(&mut config, cluster, k);
    Value::Object(config)
}

/// Puts `cluster`'s entries into `config` (replacing those of the same name where they are, else
/// appended) and makes its context current; everything else stays. Fills in `apiVersion`, `kind`
/// and `preferences` when missing, as kubectl writes them (some clients need the first two).
/// `config` must have passed [`parse`].
pub fn merge(config: &mut Map<String, Value>, cluster: &str, k: &KubeconfigResponse) {
    let name = context_name(cluster);
    for (key, value) in [("apiVersion", json!("v1")), ("kind", json!("Config")), ("preferences", json!({}))] {
        config.entry(key).or_insert(value);
    }
    for (list, entry) in LISTS.into_iter().zip(entries(cluster, k)) {
        let slot = config.entry(list).or_insert_with(|| json!([]));
        if slot.is_null() {
            *slot = json!([]);
        }
        let Some(items) = slot.as_array_mut() else { continue };
        let mut found = false;
        for item in items.iter_mut().filter(|i| i["name"] == name) {
            *item = entry.clone();
            found = true;
        }
        if !found {
            items.push(entry);
        }
    }
    config.insert("current-context".into(), json!(name));
}

/// Takes `cluster`'s entries out of `config`; a current context that was its own becomes "".
/// Returns whether anything changed.
pub fn remove(config: &mut Map<String, Value>, cluster: &str) -> bool {
    let name = context_name(cluster);
    let mut changed = false;
    for list in LISTS {
        if let Some(items) = config.get_mut(list).and_then(Value::as_array_mut) {
            let before = items.len();
            items.retain(|i| i["name"] != name);
            changed |= items.len() != before;
        }
    }
    if config.get("current-context").is_some_and(|c| *c == name) {
        config.insert("current-context".into(), json!(""));
        changed = true;
    }
    changed
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The kubeconfig in `text` (read from `path`, named in errors), checked far enough for
/// [`merge`] and [`remove`]: a mapping (an empty file is an empty one) whose lists are lists of
/// mappings and whose current context is a string.
pub fn parse(text: &str, path: &Path) -> Result<Map<String, Value>> {
    let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
    let value: Value = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| KubeconfigError::Parse { path: path.into(), reason: e.to_string() })?;
    let shape = |field: String, v: &Value, expected| KubeconfigError::Shape { path: path.into(), field, found: type_name(v), expected };
    let config = match value {
        Value::Null => return Ok(Map::new()),
        Value::Object(m) => m,
        other => return Err(shape("the document".into(), &other, "a mapping")),
    };
    for list in LISTS {
        match config.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if let Some((i, item)) = items.iter().enumerate().find(|(_, i)| !i.is_object()) {
                    return Err(shape(format!("`{list}[{i}]`"), item, "a mapping"));
                }
            }
            Some(other) => return Err(shape(format!("`{list}`"), other, "a list")),
        }
    }
    match config.get("current-context") {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(config),
        Some(other) => Err(shape("`current-context`".into(), other, "a string")),
    }
}

// ---- Pure: which file --------------------------------------------------------------------------

/// The user who ran `sudo emu …`, from the user database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// What decides the kubeconfig's file.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `$KUBECONFIG`.
    pub kubeconfig: Option<OsString>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$SUDO_USER` when emu runs as root through sudo for another user.
    pub sudo_user: Option<Owner>,
}

/// A kubeconfig file, and who must own it (and any directory made for it) when written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub owner: Option<Owner>,
}

/// The files of a `$KUBECONFIG` list, without empty entries and repeats.
pub fn kubeconfig_list(value: &OsStr) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in std::env::split_paths(value).filter(|p| !p.as_os_str().is_empty()) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn default_target(env: &Env) -> Result<Target> {
    match &env.sudo_user {
        Some(owner) => Ok(Target { path: owner.home.join(".kube").join("config"), owner: Some(owner.clone()) }),
        None => {
            let home = env.home.as_ref().filter(|h| !h.as_os_str().is_empty()).ok_or(KubeconfigError::NoHome)?;
            Ok(Target { path: home.join(".kube").join("config"), owner: None })
        }
    }
}

/// The file `emu up` merges into: of `$KUBECONFIG`'s, the first that `exists`, else the last;
/// without it, the default one.
pub fn merge_target(env: &Env, exists: impl Fn(&Path) -> bool) -> Result<Target> {
    let list = env.kubeconfig.as_deref().map(kubeconfig_list).unwrap_or_default();
    match list.iter().find(|p| exists(p)).or(list.last()) {
        Some(path) => Ok(Target { path: path.clone(), owner: None }),
        None => default_target(env),
    }
}

/// The files `emu down` removes from: every one of `$KUBECONFIG`, else the default one.
pub fn remove_targets(env: &Env) -> Result<Vec<Target>> {
    let list = env.kubeconfig.as_deref().map(kubeconfig_list).unwrap_or_default();
    if list.is_empty() {
        return Ok(vec![default_target(env)?]);
    }
    Ok(list.into_iter().map(|path| Target { path, owner: None }).collect())
}

// ---- The edge: environment and files -----------------------------------------------------------

impl Env {
    /// This process's: `$SUDO_USER` counts when emu runs as root for a user other than root.
    pub fn current() -> Result<Env> {
        let sudo_user = match std::env::var("SUDO_USER") {
            Ok(name) if !name.is_empty() && name != "root" && nix::unistd::geteuid().is_root() => {
                let user =
                    nix::unistd::User::from_name(&name).ok().flatten().ok_or_else(|| KubeconfigError::UnknownSudoUser(name.clone()))?;
                Some(Owner { name, home: user.dir, uid: user.uid.as_raw(), gid: user.gid.as_raw() })
            }
            _ => None,
        };
        Ok(Env {
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            sudo_user,
        })
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KubeconfigError + 'a {
    move |source| KubeconfigError::Io { action, path: path.to_owned(), source }
}

/// `<file>.lock`, held while the file is read, changed and written; removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn acquire(path: &Path) -> Result<Lock> {
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&lock) {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if start.elapsed() > LOCK_WAIT {
                        return Err(KubeconfigError::Locked { path: path.to_owned(), lock });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io_err("creating the lock file", &lock)(e)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn chown(path: &Path, owner: &Owner) -> Result<()> {
    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid)).map_err(io_err("giving to its user", path))
}

/// The file's directory, made (mode 0755) with any missing parent, each handed to the target's
/// owner.
fn make_parent(target: &Target) -> Result<()> {
    let Some(parent) = target.path.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
    let missing: Vec<&Path> = parent.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).collect();
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(io_err("creating", parent))?;
    if let Some(owner) = &target.owner {
        for dir in missing.iter().rev() {
            chown(dir, owner)?;
        }
    }
    Ok(())
}

/// Writes `config` whole to the target's file, mode 0600, through a temporary file beside it and
/// a rename (a crash leaves the old file, not half of one); a symlinked kubeconfig is written
/// where the link points. Owned by the target's owner, else by the old file's.
fn write(target: &Target, config: &Map<String, Value>) -> Result<()> {
    let real = std::fs::canonicalize(&target.path).unwrap_or_else(|_| target.path.clone());
    let previous = std::fs::metadata(&real).ok().map(|m| (m.uid(), m.gid()));
    let mut tmp = real.as_os_str().to_owned();
    tmp.push(format!(".emu-{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let text = emu_kubectl::to_yaml(&Value::Object(config.clone()));
    let result = (|| {
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err("creating", &tmp))?;
        // The mode given to open is filtered by the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_err("setting the mode of", &tmp))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io_err("writing", &tmp))?;
        let mine = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let owner = target.owner.as_ref().map(|o| (o.uid, o.gid)).or(previous).filter(|o| *o != mine);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(io_err("giving to its user", &tmp))?;
        }
        std::fs::rename(&tmp, &real).map_err(io_err("replacing", &real))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads the target's file (a missing one is empty), lets `change` edit it, and writes it back
/// if it says it changed something; all under the lock.
fn update(target: &Target, change: impl FnOnce(&mut Map<String, Value>) -> bool) -> Result<bool> {
    make_parent(target)?;
    let _lock = Lock::acquire(&target.path)?;
    let text = match std::fs::read_to_string(&target.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err("reading kubeconfig", &target.path)(e)),
    };
    let mut config = parse(&text, &target.path)?;
    if !change(&mut config) {
        return Ok(false);
    }
    write(target, &config)?;
    Ok(true)
}

/// `emu up`: the cluster's context into the user's kubeconfig, made current. Returns the file.
pub fn export(cluster: &str, k: &KubeconfigResponse) -> Result<PathBuf> {
    let target = merge_target(&Env::current()?, Path::exists)?;
    update(&target, |config| {
        merge(config, cluster, k);
        true
    })?;
    Ok(target.path)
}

/// `emu down`: the cluster's entries out of every kubeconfig they may be in. A file that does
/// not exist is left so (no directory is made for it).
pub fn forget(cluster: &str) -> Result<()> {
    // No file `emu up` could have written (no $HOME, an unknown $SUDO_USER): nothing to take out,
    // and no reason to fail a `down`.
    let Ok(targets) = Env::current().and_then(|env| remove_targets(&env)) else { return Ok(()) };
    for target in targets {
        if target.path.exists() {
            update(&target, |config| remove(config, cluster))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(port: u16) -> KubeconfigResponse {
        KubeconfigResponse {
            server: format!("https://127.0.0.1:{port}"),
            certificate_authority: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
            client_certificate: "-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n".into(),
            client_key: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n".into(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn parsed(text: &str) -> Map<String, Value> {
        parse(text, Path::new("/home/u/.kube/config")).unwrap()
    }

    /// What `emu kubeconfig` prints: kubectl's layout (keys sorted, lists at their key's
    /// indentation), the PEMs base64-encoded.
    #[test]
    fn a_clusters_own_kubeconfig_reads_as_kubectl_writes_it() {
        let k = material(40443);
        let text = emu_kubectl::to_yaml(&document("demo", &k));
        let expected = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:40443\n  name: emu-demo\n\
             contexts:\n- context:\n    cluster: emu-demo\n    user: emu-demo\n  name: emu-demo\ncurrent-context: emu-demo\nkind: Config\n\
             preferences: {{}}\nusers:\n- name: emu-demo\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&k.certificate_authority),
            b64(&k.client_certificate),
            b64(&k.client_key)
        );
        assert_eq!(text, expected);
        // And reads back as the same document.
        assert_eq!(Value::Object(parsed(&text)), document("demo", &k));
    }

    #[test]
    fn merging_replaces_the_clusters_entries_in_place_and_keeps_everything_else() {
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: kind-kind\nextensions: [{name: x, extension: {a: 1}}]\n\
            clusters:\n- name: kind-kind\n  cluster: {server: 'https://127.0.0.1:1', certificate-authority-data: QQ==, proxy-url: 'http://p'}\n\
            - name: emu-demo\n  cluster: {server: 'https://127.0.0.1:2'}\n\
            users:\n- name: kind-kind\n  user: {token: abc}\n\
            contexts:\n- name: kind-kind\n  context: {cluster: kind-kind, user: kind-kind, namespace: dev}\n";
        let mut config = parsed(text);
        let before = config.clone();
        merge(&mut config, "demo", &material(3));
        assert_eq!(config["current-context"], "emu-demo");
        let names =
            |list: &str| config[list].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        // Replaced where it was, not appended: one emu-demo cluster, second as before.
        assert_eq!(names("clusters"), ["kind-kind", "emu-demo"]);
        assert_eq!(config["clusters"][1]["cluster"]["server"], "https://127.0.0.1:3");
        assert_eq!(names("users"), ["kind-kind", "emu-demo"]);
        assert_eq!(names("contexts"), ["kind-kind", "emu-demo"]);
        // Other entries, their unknown fields and unknown top-level fields: untouched.
        for (list, i) in [("clusters", 0), ("users", 0), ("contexts", 0)] {
            assert_eq!(config[list][i], before[list][i], "{list}[{i}]");
        }
        assert_eq!(config["extensions"], before["extensions"]);
        // No preferences before: kubectl's empty one added, as it writes it.
        assert_eq!(config["preferences"], json!({}));
        // Merging again changes nothing but the material.
        let once = config.clone();
        merge(&mut config, "demo", &material(3));
        assert_eq!(config, once);
    }

    #[test]
    fn removing_takes_out_only_the_clusters_entries() {
        let mut config = parsed("clusters: [{name: kind-kind, cluster: {server: x}}]\ncurrent-context: kind-kind\n");
        merge(&mut config, "demo", &material(3));
        merge(&mut config, "lab", &material(4));
        assert_eq!(config["current-context"], "emu-lab");
        // Not the current context: it stays current.
        assert!(remove(&mut config, "demo"));
        assert_eq!(config["current-context"], "emu-lab");
        assert!(remove(&mut config, "lab"));
        assert_eq!(config["current-context"], "");
        for list in LISTS {
            let left = config[list].as_array().unwrap();
            assert!(left.iter().all(|i| i["name"] == "kind-kind"), "{list}: {left:?}");
        }
        assert_eq!(config["clusters"].as_array().unwrap().len(), 1);
        // Nothing of it left: nothing changes, so the file is not written.
        assert!(!remove(&mut config, "lab"));
        assert!(!remove(&mut Map::new(), "lab"));
    }

    #[test]
    fn kubeconfigs_that_cannot_be_merged_into_are_named_with_what_is_wrong() {
        let err = |text: &str| parse(text, Path::new("/home/u/.kube/config")).unwrap_err().to_string();
        let e = err("clusters: [\n");
        assert!(e.starts_with("kubeconfig /home/u/.kube/config: not valid YAML ("), "{e}");
        assert!(e.ends_with("nothing was changed: fix the file, or set KUBECONFIG to another one"), "{e}");
        assert_eq!(
            err("clusters: none\n"),
            "kubeconfig /home/u/.kube/config: `clusters` is a string, not a list; nothing was changed: fix the file, or set KUBECONFIG to another one"
        );
        assert!(err("users: [a]\n").contains("`users[0]` is a string, not a mapping"));
        assert!(err("current-context: [a]\n").contains("`current-context` is a list, not a string"));
        assert!(err("- a\n").contains("the document is a list, not a mapping"));
        // Empty files, comments only, and null lists are empty kubeconfigs.
        assert!(parsed("").is_empty());
        assert!(parsed("# nothing yet\n").is_empty());
        let mut config = parsed("clusters:\ncontexts: null\n");
        merge(&mut config, "demo", &material(1));
        assert_eq!(config["clusters"].as_array().unwrap().len(), 1);
    }

    fn owner() -> Owner {
        Owner { name: "alice".into(), home: "/home/alice".into(), uid: 1000, gid: 1000 }
    }

    #[test]
    fn the_file_follows_kubeconfig_then_sudo_user_then_home() {
        let env = |kubeconfig: Option<&str>, sudo: bool| Env {
            kubeconfig: kubeconfig.map(OsString::from),
            home: Some("/root".into()),
            sudo_user: sudo.then(owner),
        };
        let none = |_: &Path| false;
        let path = |t: Target| t.path.to_string_lossy().into_owned();
        assert_eq!(merge_target(&env(None, false), none).unwrap(), Target { path: "/root/.kube/config".into(), owner: None });
        assert_eq!(merge_target(&env(None, true), none).unwrap(), Target { path: "/home/alice/.kube/config".into(), owner: Some(owner()) });
        // $KUBECONFIG wins over sudo: the user chose the file (and keeps its owner).
        assert_eq!(merge_target(&env(Some("/tmp/k"), true), none).unwrap(), Target { path: "/tmp/k".into(), owner: None });
        // A list: the first file that exists, else the last; empties and repeats dropped.
        let list = env(Some("/a::/b:/a:/c:"), false);
        assert_eq!(path(merge_target(&list, none).unwrap()), "/c");
        assert_eq!(path(merge_target(&list, |p: &Path| p == Path::new("/b") || p == Path::new("/c")).unwrap()), "/b");
        let all: Vec<String> = remove_targets(&list).unwrap().into_iter().map(path).collect();
        assert_eq!(all, ["/a", "/b", "/c"]);
        assert_eq!(remove_targets(&env(None, true)).unwrap(), [Target { path: "/home/alice/.kube/config".into(), owner: Some(owner()) }]);
        let homeless = Env { home: None, ..Default::default() };
        assert_eq!(merge_target(&homeless, none).unwrap_err().to_string(), KubeconfigError::NoHome.to_string());
    }

    /// Under sudo: the file, and the directories made for it, are the user's (needs root to
    /// give them away; skipped without).
    #[test]
    fn a_sudo_users_kubeconfig_and_the_directories_made_for_it_are_theirs() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = std::env::temp_dir().join(format!("emu-kubeconfig-sudo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let nobody = Owner { name: "nobody".into(), home: tmp.join("home"), uid: 65534, gid: 65534 };
        let env = Env { kubeconfig: None, home: Some("/root".into()), sudo_user: Some(nobody.clone()) };
        let target = merge_target(&env, Path::exists).unwrap();
        update(&target, |c| {
            merge(c, "demo", &material(5));
            true
        })
        .unwrap();
        let owner = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        for p in [tmp.join("home"), tmp.join("home/.kube"), tmp.join("home/.kube/config")] {
            assert_eq!(owner(&p), (65534, 65534), "{}", p.display());
        }
        assert_eq!(owner(&tmp), (0, 0), "a directory that was there is left as it was");
        assert_eq!(mode(&tmp.join("home/.kube/config")), 0o600);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The edge without root: a file made with its directory, merged into, locked against a
    /// second writer, removed from; a broken file is left as it was.
    #[test]
    fn files_are_written_whole_0600_under_a_lock() {
        let tmp = std::env::temp_dir().join(format!("emu-kubeconfig-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let target = Target { path: tmp.join("home/.kube/config"), owner: None };
        update(&target, |c| {
            merge(c, "demo", &material(5));
            true
        })
        .unwrap();
        assert_eq!(mode(&target.path), 0o600);
        assert_eq!(mode(&tmp.join("home/.kube")), 0o755);
        assert!(!tmp.join("home/.kube/config.lock").exists());
        let text = std::fs::read_to_string(&target.path).unwrap();
        assert!(text.contains("current-context: emu-demo\n"), "{text}");

        // Someone else holds the lock: the writer waits, then says who to blame.
        std::fs::write(tmp.join("home/.kube/config.lock"), "").unwrap();
        let waiter = {
            let target = target.clone();
            std::thread::spawn(move || update(&target, |c| remove(c, "demo")))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(std::fs::read_to_string(&target.path).unwrap().contains("emu-demo"), "written while locked");
        std::fs::remove_file(tmp.join("home/.kube/config.lock")).unwrap();
        assert!(waiter.join().unwrap().unwrap());
        let text = std::fs::read_to_string(&target.path).unwrap();
        assert!(!text.contains("emu-demo\n") && text.contains("current-context: \"\"\n"), "{text}");
        assert!(!update(&target, |c| remove(c, "demo")).unwrap(), "nothing to remove, yet written");

        // A kubeconfig kubectl could not read either: unchanged, and the error names it.
        std::fs::write(&target.path, "clusters: {oops\n").unwrap();
        std::fs::set_permissions(&target.path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = update(&target, |c| {
            merge(c, "demo", &material(5));
            true
        })
        .unwrap_err();
        assert!(e.to_string().contains(&target.path.display().to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(&target.path).unwrap(), "clusters: {oops\n");
        assert_eq!(mode(&target.path), 0o644);
        assert!(!tmp.join("home/.kube/config.lock").exists());

        // A symlinked kubeconfig is written where it points; the link stays a link.
        let real = tmp.join("real-config");
        std::fs::write(&real, "").unwrap();
        std::fs::remove_file(&target.path).unwrap();
        std::os::unix::fs::symlink(&real, &target.path).unwrap();
        update(&target, |c| {
            merge(c, "demo", &material(5));
            true
        })
        .unwrap();
        assert!(std::fs::symlink_metadata(&target.path).unwrap().file_type().is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("emu-demo"));
        assert_eq!(mode(&real), 0o600);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
