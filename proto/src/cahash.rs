//! kubeadm's `--discovery-token-ca-cert-hash` (issue 18): `sha256:` and the lowercase hex of the
//! SHA-256 of the cluster CA certificate's DER SubjectPublicKeyInfo, what `openssl x509 -pubkey
//! -noout | openssl pkey -pubin -outform der | sha256sum` computes. A joining machine compares it
//! with the CA the control plane presents before it sends its token; `emu token create
//! --print-join-command` prints it.
//!
//! The SubjectPublicKeyInfo is found by a short walk over the certificate's DER (RFC 5280):
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
//! tbsCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE,
//!                               issuer SEQUENCE, validity SEQUENCE, subject SEQUENCE,
//!                               subjectPublicKeyInfo SEQUENCE, … }
//! ```

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The hash's prefix: the only algorithm kubeadm pins with.
pub const PREFIX: &str = "sha256:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaHashError {
    #[error("the CA certificate is not valid DER: {what} at byte {at}")]
    Der { what: &'static str, at: usize },
    #[error("the CA certificate is not valid PEM: {0}")]
    Pem(String),
    #[error("no certificate (-----BEGIN CERTIFICATE-----) in the CA PEM given")]
    NoCertificate,
    #[error(
        "--discovery-token-ca-cert-hash {0:?} is not of the form sha256:<64 lowercase hex digits>: copy it from `emu token create --print-join-command` on the control plane"
    )]
    Format(String),
    #[error(
        "the control plane's CA has hash {actual}, not {expected} as --discovery-token-ca-cert-hash says: this is not the cluster the join command was made for (or the hash was mistyped); nothing was sent"
    )]
    Mismatch { expected: String, actual: String },
}

/// A DER element: its tag and where its content starts and ends.
struct Tlv {
    tag: u8,
    content: std::ops::Range<usize>,
}

/// The element starting at `at` in `der` (only definite lengths, as DER has), read by
/// [`crate::x509::der`].
fn tlv(der: &[u8], at: usize) -> Result<Tlv, CaHashError> {
    let (tag, content, _) =
        der.get(at..).and_then(crate::x509::der).ok_or(CaHashError::Der { what: "a truncated or malformed element", at })?;
    // `content` lies inside `der`: its offset there.
    let start = content.as_ptr() as usize - der.as_ptr() as usize;
    Ok(Tlv { tag, content: start..start + content.len() })
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, constructed

/// The DER SubjectPublicKeyInfo (its whole element, tag and length included) of the DER
/// certificate `cert`.
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], CaHashError> {
    let expect = |t: &Tlv, tag: u8, what: &'static str, at: usize| if t.tag == tag { Ok(()) } else { Err(CaHashError::Der { what, at }) };
    let certificate = tlv(cert, 0)?;
    expect(&certificate, SEQUENCE, "the certificate is not a SEQUENCE", 0)?;
    let tbs_at = certificate.content.start;
    let tbs = tlv(cert, tbs_at)?;
    expect(&tbs, SEQUENCE, "tbsCertificate is not a SEQUENCE", tbs_at)?;
    let mut at = tbs.content.start;
    // The next element of tbsCertificate, as its tag and its whole span (tag and length too).
    let next = |at: &mut usize| -> Result<Tlv, CaHashError> {
        if *at >= tbs.content.end {
            return Err(CaHashError::Der { what: "tbsCertificate ends before its subjectPublicKeyInfo", at: *at });
        }
        let t = tlv(cert, *at)?;
        let start = *at;
        *at = t.content.end;
        Ok(Tlv { tag: t.tag, content: start..t.content.end })
    };
    let mut element = next(&mut at)?;
    if element.tag == VERSION {
        element = next(&mut at)?;
    }
    expect(&element, INTEGER, "serialNumber is not an INTEGER", element.content.start)?;
    for what in ["signature is not a SEQUENCE", "issuer is not a SEQUENCE", "validity is not a SEQUENCE", "subject is not a SEQUENCE"] {
        let e = next(&mut at)?;
        expect(&e, SEQUENCE, what, e.content.start)?;
    }
    let spki = next(&mut at)?;
    expect(&spki, SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE", spki.content.start)?;
    // Its own shape: an AlgorithmIdentifier SEQUENCE, then the key as a BIT STRING.
    let inner = tlv(cert, spki.content.start)?.content;
    let algorithm = tlv(cert, inner.start)?;
    expect(&algorithm, SEQUENCE, "subjectPublicKeyInfo's algorithm is not a SEQUENCE", inner.start)?;
    let key = tlv(cert, algorithm.content.end)?;
    expect(&key, BIT_STRING, "subjectPublicKeyInfo's key is not a BIT STRING", algorithm.content.end)?;
    Ok(&cert[spki.content])
}

/// `sha256:<hex>` of the DER certificate `cert`.
pub fn ca_cert_hash(cert: &[u8]) -> Result<String, CaHashError> {
    let digest = ring::digest::digest(&ring::digest::SHA256, subject_public_key_info(cert)?);
    Ok(format!("{PREFIX}{}", digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// `sha256:<hex>` of the first certificate of `pem` (the cluster CA as ClusterInfo sends it).
pub fn ca_cert_hash_pem(pem: &str) -> Result<String, CaHashError> {
    let first = CertificateDer::pem_slice_iter(pem.as_bytes()).next().ok_or(CaHashError::NoCertificate)?;
    ca_cert_hash(&first.map_err(|e| CaHashError::Pem(e.to_string()))?)
}

/// Checks that `expected` has the form `sha256:<64 hex digits>` (uppercase hex is accepted, as
/// kubeadm decodes either) and returns it lowercased.
pub fn parse_hash(expected: &str) -> Result<String, CaHashError> {
    let hex = expected.strip_prefix(PREFIX).ok_or_else(|| CaHashError::Format(expected.to_string()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CaHashError::Format(expected.to_string()));
    }
    Ok(format!("{PREFIX}{}", hex.to_ascii_lowercase()))
}

/// Whether the DER certificate `cert` is the CA `expected` (`sha256:<hex>`) pins: the joining
/// side's check before it sends anything.
pub fn verify(expected: &str, cert: &[u8]) -> Result<(), CaHashError> {
    let expected = parse_hash(expected)?;
    let actual = ca_cert_hash(cert)?;
    if actual != expected {
        return Err(CaHashError::Mismatch { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn ca() -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap()
    }

    /// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`, as kubeadm's
    /// documentation computes the hash.
    fn openssl_hash(pem: &str) -> String {
        let run = |argv: &[&str], input: &[u8]| -> Vec<u8> {
            let mut child = Command::new(argv[0]).args(&argv[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect(argv[0]);
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{argv:?}");
            out.stdout
        };
        let public = run(&["openssl", "x509", "-pubkey", "-noout"], pem.as_bytes());
        let der = run(&["openssl", "pkey", "-pubin", "-outform", "der"], &public);
        let sum = String::from_utf8(run(&["sha256sum"], &der)).unwrap();
        format!("sha256:{}", sum.split_whitespace().next().unwrap())
    }

    #[test]
    fn the_hash_is_what_openssl_computes() {
        for _ in 0..3 {
            let cert = ca();
            let pem = cert.pem();
            let hash = ca_cert_hash_pem(&pem).unwrap();
            assert_eq!(hash, openssl_hash(&pem));
            assert_eq!(ca_cert_hash(cert.der()).unwrap(), hash);
            assert!(verify(&hash, cert.der()).is_ok());
            assert!(verify(&hash.to_uppercase().replace("SHA256:", "sha256:"), cert.der()).is_ok());
            // Another CA: refused, naming both hashes.
            let other = ca();
            let e = verify(&hash, other.der()).unwrap_err();
            assert!(matches!(e, CaHashError::Mismatch { .. }), "{e}");
            assert!(e.to_string().contains(&hash), "{e}");
        }
    }

    /// Fixed certificates made with openssl 3 (`openssl req -x509 -newkey ec …`, version 3; and
    /// `openssl x509 -req -signkey …`, version 1, without the optional `[0] version`) and the
    /// hashes `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`
    /// printed for them.
    #[test]
    fn fixed_certificates_have_fixed_hashes() {
        let v3 = "-----BEGIN CERTIFICATE-----
MIIBezCCASGgAwIBAgIUHhkP/0PGyPutGFQeRBnxzWbQHRAwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIZW11LXRlc3QwHhcNMjYxMjA3MTAzODE4WhcNMzYxMjA0MTAz
ODE4WjATMREwDwYDVQQDDAhlbXUtdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABLiJjvXFO1iyGiP4GYMtnUxJtxJ4ZElR8MXdxArhh4E7NJCaGsL7VyBqom28
pGcOp0gF79NhzgcR2rr5w5Js6UWjUzBRMB0GA1UdDgQWBBT3xC6CXvD7zlwnPKC+
q5OLg/b+SjAfBgNVHSMEGDAWgBT3xC6CXvD7zlwnPKC+q5OLg/b+SjAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIEhvGtkO6kJAzfxqSLGKWPsEO0Mr
LbkseOkZTSTpfI+MAiEAl9q/BGY7zigjJ+nRseKB4x8T1v/Lt80IvnYGpxRbGxU=
-----END CERTIFICATE-----
";
        let v1 = "-----BEGIN CERTIFICATE-----
MIIBHDCBwwIUH9rwO1I5E/z5ML2UfMEi8V13SIwwCgYIKoZIzj0EAwIwETEPMA0G
A1UEAwwGZW11LXYxMB4XDTI2MTIwNzEwMzgyMVoXDTM2MTIwNDEwMzgyMVowETEP
MA0GA1UEAwwGZW11LXYxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+clUDChP
++rGgzIzXInSqJIM4ncmZ/7f1xKC6THZMzU42Ue5Ff2esoDNCCPjKr9G05Hcng3t
NYLsBm3Qgj71xjAKBggqhkjOPQQDAgNIADBFAiAuMUTH5h6uuzUiAs+TLtN/hp3v
G5X8XXMrSnGQEG86EgIhAKI265IH0rD9khX+0Y+iglRYQycXPlXS8XGeEJJrwRy2
-----END CERTIFICATE-----
";
        assert_eq!(ca_cert_hash_pem(v3).unwrap(), "sha256:d1d97a1fffded0435ebd08473aa0ba810c7e24cf2a71a88eb80b213fd1277739");
        assert_eq!(ca_cert_hash_pem(v1).unwrap(), "sha256:615e9c8c6a126ccf82f5652ab7b3cdc8e54a5685665ff1b828bdba1d644a9ebe");
        // The SubjectPublicKeyInfo of a P-256 key: 91 bytes, starting SEQUENCE(89) SEQUENCE(19).
        let der = CertificateDer::from_pem_slice(v3.as_bytes()).unwrap();
        let spki = subject_public_key_info(&der).unwrap();
        assert_eq!((spki.len(), &spki[..4]), (91, &[0x30, 0x59, 0x30, 0x13][..]));
        // A bundle: the first certificate counts.
        assert_eq!(ca_cert_hash_pem(&format!("{v1}{v3}")).unwrap(), ca_cert_hash_pem(v1).unwrap());
    }

    #[test]
    fn broken_input_is_refused_with_where() {
        assert_eq!(ca_cert_hash_pem("no pem here"), Err(CaHashError::NoCertificate));
        let cert = ca();
        let der = cert.der().to_vec();
        for cut in [0, 1, 2, 10, 100, der.len() / 2] {
            assert!(ca_cert_hash(&der[..cut]).is_err(), "cut at {cut}");
        }
        let mut not_a_sequence = der.clone();
        not_a_sequence[0] = 0x31;
        assert_eq!(ca_cert_hash(&not_a_sequence), Err(CaHashError::Der { what: "the certificate is not a SEQUENCE", at: 0 }));
        for bad in ["", "sha256:", "sha1:abcd", "sha256:xyz", &format!("sha256:{}", "0".repeat(63)), &format!("md5:{}", "0".repeat(64))] {
            assert!(matches!(parse_hash(bad), Err(CaHashError::Format(_))), "{bad}");
        }
        let e = CaHashError::Format("sha256:1".into()).to_string();
        assert!(e.contains("emu token create --print-join-command"), "{e}");
    }
}
