//! TLS material for `emu create secret tls` and `emu gen cert`: the checks kubectl makes before it
//! creates a TLS Secret (CLI-27: the certificate and the key parse and belong together, with Go's
//! `tls.X509KeyPair` messages), and a self-signed certificate in place of the tutorial's
//! `make keys` (which needs go, make and openssl).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};

/// Whether `cert_pem` (one or more certificates, the first being the server's) and `key_pem`
/// form a pair; the error is what kubectl prints after `error: `.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls: failed to parse certificate PEM data: {e}"))?;
    if certs.is_empty() {
        return Err("tls: failed to find any PEM data in certificate input".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| "tls: failed to find any PEM data in key input".to_string())?;
    let provider = CryptoProvider::get_default().cloned().unwrap_or_else(|| rustls::crypto::ring::default_provider().into());
    let signing = provider.key_provider.load_private_key(key).map_err(|e| format!("tls: failed to parse private key: {e}"))?;
    match CertifiedKey::new(certs, signing).keys_match() {
        Ok(()) => Ok(()),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err("tls: private key does not match public key".into()),
        // A key type whose public half cannot be derived here: accepted, as Go would for a
        // key it can use.
        Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => Err(format!("tls: failed to parse certificate: {e}")),
    }
}

/// A self-signed certificate (PEM) for `cn`, valid for `cn` and `sans` as DNS names or IP
/// addresses, with its key (PEM, PKCS#8, ECDSA P-256). Marked as a CA, as `openssl req -x509`
/// marks its certificates, so that clients can trust it with `--cacert`.
pub fn self_signed(cn: &str, sans: &[String]) -> Result<(String, String), String> {
    let usable = |name: &str| {
        name.parse::<std::net::IpAddr>().is_ok()
            || emu_api::syntax::dns1123_subdomain_errors(name.strip_prefix("*.").unwrap_or(name)).is_empty()
    };
    if !usable(cn) {
        return Err(format!(
            "--cn {cn:?}: the certificate is also valid for this name, so it must be a DNS name (lower case letters, digits, '-' and '.') or an IP address"
        ));
    }
    if let Some(bad) = sans.iter().find(|s| !usable(s)) {
        return Err(format!(
            "--san {bad:?}: must be a DNS name (lower case letters, digits, '-' and '.', optionally after \"*.\") or an IP address"
        ));
    }
    let mut names = vec![cn.to_string()];
    names.extend(sans.iter().filter(|s| s.as_str() != cn).cloned());
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| format!("--san: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    // The tutorial's `make keys`: -subj "/CN=my-nginx/O=my-nginx".
    params.distinguished_name.push(rcgen::DnType::OrganizationName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Valid from today for a year (`openssl req -x509 -days 365`), not rcgen's 1975 to 4096.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let day = |unix: i64| {
        let text = emu_api::time::rfc3339(unix);
        let field = |range: std::ops::Range<usize>| text.get(range).and_then(|t| t.parse::<i32>().ok()).unwrap_or(1);
        rcgen::date_time_ymd(field(0..4), field(5..7) as u8, field(8..10) as u8)
    };
    params.not_before = day(now);
    params.not_after = day(now + 365 * 86_400);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("signing the certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_matches_and_a_foreign_key_does_not() {
        let (cert, key) = self_signed("my-nginx", &["10.96.0.20".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        assert_eq!(check_pair(cert.as_bytes(), key.as_bytes()), Ok(()));
        let (_, other_key) = self_signed("other", &[]).unwrap();
        assert_eq!(check_pair(cert.as_bytes(), other_key.as_bytes()), Err("tls: private key does not match public key".into()));
    }

    #[test]
    fn what_is_not_pem_is_named() {
        let (cert, key) = self_signed("my-nginx", &[]).unwrap();
        assert_eq!(check_pair(b"not a certificate", key.as_bytes()), Err("tls: failed to find any PEM data in certificate input".into()));
        assert_eq!(check_pair(cert.as_bytes(), b"not a key"), Err("tls: failed to find any PEM data in key input".into()));
        // The certificate where the key should be.
        assert_eq!(check_pair(cert.as_bytes(), cert.as_bytes()), Err("tls: failed to find any PEM data in key input".into()));
    }

    #[test]
    fn bad_subject_alternative_names_are_refused() {
        let err = self_signed("my-nginx", &["not a name!".into()]).unwrap_err();
        assert!(err.starts_with("--san \"not a name!\": must be a DNS name"), "{err}");
        assert!(self_signed("My Nginx", &[]).unwrap_err().starts_with("--cn \"My Nginx\""));
        assert!(self_signed("my-nginx", &["*.my-nginx.default.svc".into(), "10.96.0.20".into()]).is_ok());
    }
}
