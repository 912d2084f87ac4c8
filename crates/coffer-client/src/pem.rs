//! Reading the private key of a client certificate, for callers that sign their own client
//! assertions (`coffer login --cert --key`). Only the parsing lives here, next to the other PEM
//! handling of this crate; the signing belongs to the caller.

use rustls_pki_types::pem::{PemObject, SectionKind};
use zeroize::Zeroizing;

use crate::ClientError;

/// The PKCS#8 document of the first private key in `pem` (`-----BEGIN PRIVATE KEY-----`).
///
/// Keys in other containers are refused with a message that says how to convert them, rather
/// than a bare "no key found": a PKCS#1 RSA key, a SEC1 EC key, and an encrypted PKCS#8 key
/// (which would need a passphrase prompt this client does not have).
pub fn pkcs8_private_key_from_pem(pem: &[u8]) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let invalid = |message: String| ClientError::InvalidConfiguration { message };
    let convert = "convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8.pem`";
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        // The parser's message never quotes the key: it reports positions and labels only.
        let (kind, der) =
            section.map_err(|err| invalid(format!("the key file is not PEM: {err}")))?;
        let der = Zeroizing::new(der);
        match kind {
            SectionKind::PrivateKey => return Ok(der),
            SectionKind::RsaPrivateKey => {
                return Err(invalid(format!(
                    "the key file holds a PKCS#1 RSA key; only PKCS#8 keys are read ({convert})"
                )));
            }
            SectionKind::EcPrivateKey => {
                return Err(invalid(format!(
                    "the key file holds a SEC1 EC key; only PKCS#8 keys are read ({convert})"
                )));
            }
            _ => {}
        }
    }
    if String::from_utf8_lossy(pem).contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(invalid(
            "the key file holds an encrypted key; decrypt it with `openssl pkcs8 -in KEY -out \
             KEY.pk8.pem` and keep the result mode 0600"
                .to_owned(),
        ));
    }
    Err(invalid(
        "the key file holds no private key (-----BEGIN PRIVATE KEY-----)".to_owned(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pem(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    #[test]
    fn pkcs8_is_read_and_other_containers_are_explained() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = pkcs8_private_key_from_pem(key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(der.as_slice(), key.serialize_der().as_slice());
        // A certificate before the key is skipped.
        let both = format!("{}{}", pem("CERTIFICATE", "MAA="), key.serialize_pem());
        assert!(pkcs8_private_key_from_pem(both.as_bytes()).is_ok());

        for (label, expected) in [
            ("RSA PRIVATE KEY", "PKCS#1"),
            ("EC PRIVATE KEY", "SEC1"),
            ("ENCRYPTED PRIVATE KEY", "encrypted"),
            ("CERTIFICATE", "no private key"),
        ] {
            let err = pkcs8_private_key_from_pem(pem(label, "MAA=").as_bytes()).unwrap_err();
            assert_eq!(err.code(), "InvalidConfiguration");
            assert!(err.to_string().contains(expected), "{label}: {err}");
        }
        assert!(pkcs8_private_key_from_pem(b"").is_err());
    }
}
