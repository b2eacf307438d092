//! What emu reads of an X.509 certificate itself: the subject's names (a client certificate's
//! user and groups, as kube-apiserver takes them). The handshake has verified the certificate;
//! this only walks its DER.

/// The subject's common name and organizations of a DER certificate (what kube-apiserver takes
/// as a client certificate's user and groups), or None if it does not parse. The handshake has
/// verified the certificate already; this only reads its subject.
pub fn subject_names(cert: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    const ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];
    let (SEQUENCE, certificate, _) = der(cert)? else { return None };
    let (SEQUENCE, mut tbs, _) = der(certificate)? else { return None };
    // An explicit version ([0]) may come first; then serial, signature algorithm, issuer and
    // validity precede the subject.
    if der(tbs)?.0 == 0xa0 {
        tbs = der(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = der(tbs)?.2;
    }
    let (SEQUENCE, mut names, _) = der(tbs)? else { return None };
    let (mut common_name, mut organizations) = (None, Vec::new());
    while !names.is_empty() {
        let (SET, mut set, rest) = der(names)? else { return None };
        names = rest;
        while !set.is_empty() {
            let (SEQUENCE, attribute, rest) = der(set)? else { return None };
            set = rest;
            let (OID, oid, value) = der(attribute)? else { return None };
            // UTF8String or PrintableString, both read as UTF-8.
            let value = String::from_utf8_lossy(der(value)?.1).into_owned();
            if oid == COMMON_NAME {
                common_name = Some(value);
            } else if oid == ORGANIZATION {
                organizations.push(value);
            }
        }
    }
    Some((common_name, organizations))
}

/// One DER element at the start of `input`: (tag, contents, what follows).
pub fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |len, b| len << 8 | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}
