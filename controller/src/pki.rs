//! The cluster's certificate authority and the API server's serving certificate.
//!
//! Pods reach the API server as `https://kubernetes.default.svc` (Service `default/kubernetes`,
//! 10.96.0.1:443 → the control plane's fabric address :6443). A client checks the server against
//! the cluster CA, as it would in a kubeadm cluster, so the CA has to outlive a controller restart:
//! its certificate and key are kept on disk and reloaded. The serving certificate is cheap and is
//! issued anew at every start (its key never touches the disk). So is the admin's client
//! certificate, for the kubeconfig `emu up` writes: issued at each request, never stored here.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
/// The last serving certificate issued, written only so it can be inspected with `openssl x509`.
pub const SERVER_CERT_FILE: &str = "apiserver.crt";

/// Subject CN of the CA, as kubeadm names its cluster CA.
const CA_COMMON_NAME: &str = "kubernetes";
/// Subject CN of the serving certificate, as kubeadm names it.
const SERVER_COMMON_NAME: &str = "kube-apiserver";
/// Subject CN of the kubeconfig's client certificate: kubeadm's admin user.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// Its group (subject O): members are allowed everything, before and without any RBAC binding.
pub const ADMIN_GROUP: &str = "system:masters";
/// The user name of a node's identity before the node's name, and the group of every node.
pub const NODE_USER_PREFIX: &str = "system:node:";
pub const NODES_GROUP: &str = "system:nodes";
/// The controller's identity towards the agents (kubeadm's `apiserver-kubelet-client`): the only
/// client an agent's endpoint on another machine serves.
pub const KUBELET_CLIENT_USER: &str = emu_proto::transport::CONTROLLER_CLIENT_USER;
pub const KUBELET_CLIENT_GROUP: &str = "kubeadm:cluster-admins";

/// An agent's public key as it sent it: an uncompressed P-256 point.
struct RawP256(Vec<u8>);

impl rcgen::PublicKeyData for RawP256 {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// Whether `key` is an uncompressed P-256 point, as [`ClusterPki::node_cert`] takes it.
pub fn is_p256_point(key: &[u8]) -> bool {
    key.len() == 65 && key[0] == 4
}

/// DNS names the API server answers to from inside the cluster, whatever the caller adds.
const SERVER_DNS_NAMES: [&str; 5] =
    ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"];

/// kubeadm's CA lives ten years; an emu cluster's runtime directory never comes close.
const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// kubeadm's leaf lifetime (serving and admin client certificates). The serving certificate is
/// re-issued at every controller start anyway.
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Certificates start a little in the past so a client whose clock lags slightly (or that
/// truncates to whole seconds) doesn't see them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {}: {source}", path.display())]
    Cert {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("{} is not a PEM certificate: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} exists but {} is missing; remove {} to make a new cluster CA (clients must then be given the new ca.crt)",
        dir.join(CA_CERT_FILE).display(), dir.join(CA_KEY_FILE).display(), dir.display())]
    MissingKey { dir: PathBuf },
    #[error("the cluster CA in {} does not sign verifiable certificates ({source}); ca.crt and ca.key probably do not belong together: remove {} to make a new CA",
        dir.display(), dir.display())]
    Unusable {
        dir: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the client certificate for {user:?} does not verify against the cluster CA in {} ({source}): remove {} to make a new CA",
        dir.display(), dir.display())]
    ClientUnusable {
        user: String,
        dir: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("subject alternative name {0:?} is neither an IP address nor a DNS name")]
    InvalidSan(String),
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// The cluster CA, loaded from (or first created in) its directory.
pub struct ClusterPki {
    dir: PathBuf,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterPki {
    // Hand-written so the CA's private key can never end up in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the CA kept in `dir`, or creates one there (and `dir`, mode 0700) if there is none.
    ///
    /// `ca.crt` is written last and is what marks a complete CA: without it a new CA is made
    /// (overwriting a stray key of a creation cut short). With it but without `ca.key`, or with a
    /// key that does not match, this fails rather than silently replacing a CA that clients may
    /// already trust.
    pub fn load_or_create(dir: &Path) -> Result<ClusterPki> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("creating", dir))?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match fs::read_to_string(&cert_path) {
            Ok(ca_pem) => {
                let key_pem = match fs::read_to_string(&key_path) {
                    Ok(pem) => pem,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PkiError::MissingKey { dir: dir.to_owned() }),
                    Err(source) => return Err(PkiError::Io { action: "reading", path: key_path, source }),
                };
                let key = KeyPair::from_pem(&key_pem).map_err(|source| PkiError::Cert { what: "parsing key", path: key_path, source })?;
                let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
                    .map_err(|source| PkiError::Pem { path: cert_path.clone(), source })?;
                // Only the subject, key identifier method and key usages of the issuer go into
                // issued certificates; they come from the same parameters that made ca.crt. The
                // self-check below proves that ca.crt and the rebuilt issuer really agree.
                let pki = ClusterPki { dir: dir.to_owned(), ca_pem, ca_der, issuer: Issuer::new(ca_params(SystemTime::now()), key) };
                pki.issue(&["kubernetes".to_owned()])?;
                Ok(pki)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(dir),
            Err(source) => Err(PkiError::Io { action: "reading", path: cert_path, source }),
        }
    }

    /// Loads the CA kept in `dir`, which must exist (the controller made it at start): unlike
    /// [`ClusterPki::load_or_create`], never makes a new CA that the serving certificate in use
    /// was not signed by.
    pub fn load(dir: &Path) -> Result<ClusterPki> {
        let cert_path = dir.join(CA_CERT_FILE);
        match fs::metadata(&cert_path) {
            Ok(_) => Self::load_or_create(dir),
            Err(source) => Err(PkiError::Io { action: "reading", path: cert_path, source }),
        }
    }

    fn create(dir: &Path) -> Result<ClusterPki> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key =
            KeyPair::generate().map_err(|source| PkiError::Cert { what: "generating the CA key for", path: cert_path.clone(), source })?;
        let params = ca_params(SystemTime::now());
        let cert = params.self_signed(&key).map_err(|source| PkiError::Cert { what: "signing", path: cert_path.clone(), source })?;
        write_atomically(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes(), 0o600)?;
        let ca_pem = cert.pem();
        write_atomically(&cert_path, ca_pem.as_bytes(), 0o644)?;
        Ok(ClusterPki { dir: dir.to_owned(), ca_pem, ca_der: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate (PEM), for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues the API server's serving certificate: CN `kube-apiserver`, the in-cluster DNS names
    /// of the `kubernetes` Service and `localhost`, plus `sans` (IP addresses such as the Service's
    /// ClusterIP and the control plane's address, or more DNS names). Returns (certificate PEM,
    /// private key PEM); the certificate is also written to `apiserver.crt` for inspection.
    pub fn server_cert(&self, sans: &[String]) -> Result<(String, String)> {
        let (cert_pem, key_pem) = self.issue(sans)?;
        write_atomically(&self.dir.join(SERVER_CERT_FILE), cert_pem.as_bytes(), 0o644)?;
        Ok((cert_pem, key_pem))
    }

    /// Issues a serving certificate and checks it the way a client will, against the CA
    /// certificate on disk and for every requested name: a CA whose files disagree shows up here,
    /// at start-up, instead of as handshake failures in every pod.
    fn issue(&self, sans: &[String]) -> Result<(String, String)> {
        let cert_path = self.dir.join(SERVER_CERT_FILE);
        let names = server_names(sans)?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, SERVER_COMMON_NAME);
        let mut params = leaf_params(subject, ExtendedKeyUsagePurpose::ServerAuth);
        params.subject_alt_names = names.iter().map(|n| n.san.clone()).collect();
        // The serial defaults to a digest of the (fresh) public key, so every issue differs.
        let key = KeyPair::generate().map_err(|source| PkiError::Cert { what: "generating a key for", path: cert_path.clone(), source })?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|source| PkiError::Cert { what: "signing", path: cert_path, source })?;

        let unusable = |source| PkiError::Unusable { dir: self.dir.clone(), source };
        let verifier = self.verifier().map_err(unusable)?;
        for name in &names {
            verifier.verify_server_cert(cert.der(), &[], &name.server_name, &[], UnixTime::now()).map_err(unusable)?;
        }
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a client certificate for `user` in `group` (subject CN and O, as kube-apiserver
    /// reads a client certificate's user name and groups), valid for a year as kubeadm's
    /// admin.conf. Returns (certificate PEM, private key PEM); checked as the API server will
    /// check it, against this CA.
    pub fn client_cert(&self, user: &str, group: &str) -> Result<(String, String)> {
        let cert_path = self.dir.join(CA_CERT_FILE);
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, group);
        subject.push(DnType::CommonName, user);
        let params = leaf_params(subject, ExtendedKeyUsagePurpose::ClientAuth);
        let what = "generating a client key with the CA of";
        let key = KeyPair::generate().map_err(|source| PkiError::Cert { what, path: cert_path.clone(), source })?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|source| PkiError::Cert {
            what: "signing a client certificate with",
            path: cert_path,
            source,
        })?;
        let unusable = |source| PkiError::ClientUnusable { user: user.to_owned(), dir: self.dir.clone(), source };
        self.client_verifier().map_err(unusable)?.verify_client_cert(cert.der(), &[], UnixTime::now()).map_err(unusable)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues the certificate of a node's agent on another machine: `system:node:NAME` in
    /// `system:nodes` (kubelet's client identity) for `public_key`, the agent's uncompressed P-256
    /// point (its private key never leaves its machine), usable also for serving at `serving_ip`
    /// (kubelet's serving certificate: where the controller reaches the agent). Returns the PEM.
    pub fn node_cert(&self, node: &str, public_key: &[u8], serving_ip: IpAddr) -> Result<String> {
        let cert_path = self.dir.join(CA_CERT_FILE);
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, NODES_GROUP);
        subject.push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node}"));
        let mut params = leaf_params(subject, ExtendedKeyUsagePurpose::ClientAuth);
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        params.subject_alt_names = vec![SanType::IpAddress(serving_ip)];
        let key = RawP256(public_key.to_vec());
        let cert = params.signed_by(&key, &self.issuer).map_err(|source| PkiError::Cert {
            what: "signing a node certificate with",
            path: cert_path,
            source,
        })?;
        Ok(cert.pem())
    }

    /// The controller's client certificate for the agents' endpoints on other machines
    /// (kubeadm's `apiserver-kubelet-client`); with its key, PEM.
    pub fn kubelet_client_cert(&self) -> Result<(String, String)> {
        self.client_cert(KUBELET_CLIENT_USER, KUBELET_CLIENT_GROUP)
    }

    /// A rustls verifier of client certificates trusting exactly this CA.
    fn client_verifier(&self) -> std::result::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(rustls::crypto::ring::default_provider()))
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    /// A rustls verifier trusting exactly this CA.
    fn verifier(&self) -> std::result::Result<Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(rustls::crypto::ring::default_provider()))
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

/// The CA's parameters. Rebuilt on every load: the issuer of each certificate is taken from them,
/// so they must stay what they were when an existing ca.crt was made (the subject above all).
fn ca_params(now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    params
}

/// A leaf certificate's parameters, for a server or a client (`usage`): kubeadm's key usages and
/// lifetime (from a little in the past).
fn leaf_params(subject: DistinguishedName, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + SERVER_VALIDITY).into();
    params
}

/// One name of the serving certificate, both as it is written into the certificate and as a
/// client asks for it.
struct ServerNameSan {
    san: SanType,
    server_name: ServerName<'static>,
}

/// The built-in DNS names followed by `extra`, without duplicates, each parsed as an IP address
/// or else a DNS name.
fn server_names(extra: &[String]) -> Result<Vec<ServerNameSan>> {
    let mut seen = Vec::<String>::new();
    let mut out = Vec::new();
    for raw in SERVER_DNS_NAMES.iter().map(|s| s.to_string()).chain(extra.iter().cloned()) {
        let s = raw.trim().to_owned();
        if seen.contains(&s) {
            continue;
        }
        let name = match s.parse::<IpAddr>() {
            Ok(ip) => ServerNameSan { san: SanType::IpAddress(ip), server_name: ServerName::IpAddress(ip.into()) },
            Err(_) => {
                let dns = DnsName::try_from(s.clone()).map_err(|_| PkiError::InvalidSan(raw.clone()))?;
                let ia5 = s.as_str().try_into().map_err(|_| PkiError::InvalidSan(raw.clone()))?;
                ServerNameSan { san: SanType::DnsName(ia5), server_name: ServerName::DnsName(dns) }
            }
        };
        seen.push(s);
        out.push(name);
    }
    Ok(out)
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PkiError + 'a {
    move |source| PkiError::Io { action, path: path.to_owned(), source }
}

/// Writes `path` through a temporary file and a rename, so a reader (or a restarted controller)
/// never sees half a key, and with exactly `mode` whatever the umask.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io_err("creating", &tmp))?;
    // `mode` above only applies to a new file and is filtered by the umask.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err("setting the mode of", &tmp))?;
    file.write_all(contents).map_err(io_err("writing", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err("renaming to", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans() -> Vec<String> {
        ["10.96.0.1", "172.18.0.1", "127.0.0.1"].map(String::from).to_vec()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_the_ca_once_and_reloads_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let first = ClusterPki::load_or_create(&dir).unwrap();
        assert!(first.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o644);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
        assert_eq!(fs::read_to_string(dir.join(CA_CERT_FILE)).unwrap(), first.ca_pem());

        let again = ClusterPki::load_or_create(&dir).unwrap();
        assert_eq!(again.ca_pem(), first.ca_pem());
        // A certificate issued by the reloaded CA is trusted by a client holding the first ca.crt.
        let (cert, _) = again.server_cert(&sans()).unwrap();
        let verifier = first.verifier().unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let name = ServerName::try_from("kubernetes.default.svc").unwrap();
        verifier.verify_server_cert(&der, &[], &name, &[], UnixTime::now()).unwrap();
    }

    #[test]
    fn server_cert_verifies_for_every_in_cluster_name_and_no_other() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(tmp.path()).unwrap();
        let (cert, key) = pki.server_cert(&sans()).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert_eq!(fs::read_to_string(tmp.path().join(SERVER_CERT_FILE)).unwrap(), cert);
        assert!(!tmp.path().join("apiserver.key").exists());

        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let verifier = pki.verifier().unwrap();
        let check = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            verifier.verify_server_cert(&der, &[], &name, &[], UnixTime::now())
        };
        for name in SERVER_DNS_NAMES.iter().copied().chain(["10.96.0.1", "172.18.0.1", "127.0.0.1"]) {
            check(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in ["kubernetes.example.com", "10.96.0.2", "::1"] {
            assert!(check(name).is_err(), "{name} should not be accepted");
        }
    }

    #[test]
    fn server_cert_from_another_ca_is_rejected() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (ClusterPki::load_or_create(a.path()).unwrap(), ClusterPki::load_or_create(b.path()).unwrap());
        assert_ne!(a.ca_pem(), b.ca_pem());
        let (cert, _) = b.server_cert(&sans()).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let name = ServerName::try_from("kubernetes").unwrap();
        let err = a.verifier().unwrap().verify_server_cert(&der, &[], &name, &[], UnixTime::now()).unwrap_err();
        // Every cluster's CA is named `kubernetes` (as in kubeadm), so the other CA is found by
        // name and it is the signature that fails.
        assert!(err.to_string().contains("BadSignature"), "{err}");
    }

    #[test]
    fn extra_dns_names_are_added_and_bad_ones_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(tmp.path()).unwrap();
        // Duplicates of the built-in names are dropped, not written twice.
        let (cert, _) = pki.server_cert(&["api.emu.local".to_owned(), "kubernetes".to_owned()]).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let name = ServerName::try_from("api.emu.local").unwrap();
        pki.verifier().unwrap().verify_server_cert(&der, &[], &name, &[], UnixTime::now()).unwrap();

        let err = pki.server_cert(&["not a name".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "subject alternative name \"not a name\" is neither an IP address nor a DNS name");
    }

    #[test]
    fn a_ca_with_a_missing_or_foreign_key_is_refused_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pki = ClusterPki::load_or_create(dir).unwrap();

        fs::remove_file(dir.join(CA_KEY_FILE)).unwrap();
        let err = ClusterPki::load_or_create(dir).unwrap_err();
        assert!(matches!(err, PkiError::MissingKey { .. }), "{err}");
        assert!(err.to_string().contains("ca.key is missing"), "{err}");

        fs::write(dir.join(CA_KEY_FILE), KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let err = ClusterPki::load_or_create(dir).unwrap_err();
        assert!(matches!(err, PkiError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
        // The CA that clients may trust is left as it was.
        assert_eq!(fs::read_to_string(dir.join(CA_CERT_FILE)).unwrap(), pki.ca_pem());
    }

    #[test]
    fn a_key_without_its_certificate_is_replaced() {
        // ca.key alone is what a creation cut short leaves behind; nobody can trust it yet.
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(CA_KEY_FILE), "garbage").unwrap();
        let pki = ClusterPki::load_or_create(tmp.path()).unwrap();
        assert!(KeyPair::from_pem(&fs::read_to_string(tmp.path().join(CA_KEY_FILE)).unwrap()).is_ok());
        pki.server_cert(&sans()).unwrap();
    }

    #[test]
    fn the_admin_client_certificate_is_signed_by_the_ca_for_clients_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(ClusterPki::load(dir).unwrap_err().to_string().contains("ca.crt"));
        assert!(!dir.join(CA_CERT_FILE).exists(), "load made a CA");
        let pki = ClusterPki::load_or_create(dir).unwrap();
        let (cert, key) = ClusterPki::load(dir).unwrap().client_cert(ADMIN_USER, ADMIN_GROUP).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        pki.client_verifier().unwrap().verify_client_cert(&der, &[], UnixTime::now()).unwrap();
        // Not a serving certificate: no server may present it.
        let name = ServerName::try_from("kubernetes").unwrap();
        assert!(pki.verifier().unwrap().verify_server_cert(&der, &[], &name, &[], UnixTime::now()).is_err());
        // Another cluster's CA does not vouch for it.
        let other = tempfile::tempdir().unwrap();
        let other = ClusterPki::load_or_create(other.path()).unwrap();
        assert!(other.client_verifier().unwrap().verify_client_cert(&der, &[], UnixTime::now()).is_err());
        // Nothing of it is kept beside the CA.
        let mut files: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        assert_eq!(files, ["ca.crt", "ca.key"]);
    }

    /// What an operator would look at: openssl's view of the files (skipped without openssl).
    #[test]
    fn a_node_certificate_is_for_the_key_sent_and_verifies_as_client_and_server() {
        let dir = std::env::temp_dir().join(format!("emu-pki-node-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let pki = ClusterPki::load_or_create(&dir).unwrap();
        let agent_key = KeyPair::generate().unwrap();
        assert!(is_p256_point(agent_key.public_key_raw()));
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        let pem = pki.node_cert("node-3", agent_key.public_key_raw(), ip).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        pki.client_verifier().unwrap().verify_client_cert(&der, &[], UnixTime::now()).unwrap();
        let name = ServerName::IpAddress(ip.into());
        pki.verifier().unwrap().verify_server_cert(&der, &[], &name, &[], UnixTime::now()).unwrap();
        let other = ServerName::IpAddress("192.0.2.3".parse::<IpAddr>().unwrap().into());
        assert!(pki.verifier().unwrap().verify_server_cert(&der, &[], &other, &[], UnixTime::now()).is_err());
        // The subject kube-apiserver reads: CN system:node:node-3, O system:nodes.
        let text = String::from_utf8_lossy(&der);
        assert!(text.contains("system:node:node-3") && text.contains("system:nodes"), "{pem}");
        // The certificate holds the agent's key, usable by a TLS client with the agent's private key.
        let client = emu_proto::transport::client_config(pki.ca_pem(), Some((&pem, &agent_key.serialize_pem())));
        assert!(client.is_ok(), "{:?}", client.err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn openssl_agrees() {
        let Ok(out) = std::process::Command::new("openssl").arg("version").output() else { return };
        if !out.status.success() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(tmp.path()).unwrap();
        pki.server_cert(&sans()).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl").args(args).current_dir(tmp.path()).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let verified = run(&["verify", "-purpose", "sslserver", "-CAfile", CA_CERT_FILE, SERVER_CERT_FILE]);
        assert!(verified.contains(": OK"), "{verified}");
        let ca = run(&["x509", "-in", CA_CERT_FILE, "-noout", "-subject", "-ext", "basicConstraints"]);
        assert!(ca.contains("CN = kubernetes") || ca.contains("CN=kubernetes"), "{ca}");
        assert!(ca.contains("CA:TRUE"), "{ca}");
        let server = run(&["x509", "-in", SERVER_CERT_FILE, "-noout", "-subject", "-ext", "subjectAltName"]);
        assert!(server.contains("kube-apiserver"), "{server}");
        let (client, _) = pki.client_cert(ADMIN_USER, ADMIN_GROUP).unwrap();
        fs::write(tmp.path().join("admin.crt"), client).unwrap();
        let verified = run(&["verify", "-purpose", "sslclient", "-CAfile", CA_CERT_FILE, "admin.crt"]);
        assert!(verified.contains(": OK"), "{verified}");
        let subject = run(&["x509", "-in", "admin.crt", "-noout", "-subject", "-nameopt", "RFC2253"]);
        assert_eq!(subject.trim(), "subject=CN=kubernetes-admin,O=system:masters");
        for san in [
            "DNS:kubernetes,",
            "DNS:kubernetes.default,",
            "DNS:kubernetes.default.svc,",
            "DNS:kubernetes.default.svc.cluster.local",
            "DNS:localhost",
            "IP Address:10.96.0.1",
            "IP Address:172.18.0.1",
            "IP Address:127.0.0.1",
        ] {
            assert!(server.contains(san), "{san} missing from {server}");
        }
    }
}
