use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA512, RsaKeyPair,
};
use rcgen::{CertificateParams, KeyPair};
use serde_json::json;

use super::*;
use crate::jwt::test_support::{NOW, assemble, claims, rsa_jwk, rsa_key, rsa_token, signing_key};
use crate::jwt::{Jwt, SigningKey, Validation};

/// A self-signed RSA-2048 certificate, and a token signed (RS256) by its key, both made with
/// OpenSSL 3.0 so that verification and thumbprints are checked against an independent
/// implementation:
///
/// ```text
/// openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem
/// openssl req -x509 -new -key rsa.pem -subj /CN=coffer-jwt-test -days 36500 -sha256
/// printf %s "$HEADER.$PAYLOAD" | openssl dgst -sha256 -sign rsa.pem | base64url
/// ```
const OPENSSL_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDFzCCAf+gAwIBAgIUKxWV3ZxDhlkgfbfRhVLuh8aK6S8wDQYJKoZIhvcNAQEL
BQAwGjEYMBYGA1UEAwwPY29mZmVyLWp3dC10ZXN0MCAXDTI2MTEyMjA0MTgwMVoY
DzIxMjYxMDI5MDQxODAxWjAaMRgwFgYDVQQDDA9jb2ZmZXItand0LXRlc3QwggEi
MA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCo0wc6DQGDt5QAf4TMa0XA8Zwo
xeq62gUmu9oaNUtDoIKt04tVFlZ/6C54NkvfNX46aLdPUQfWmHmUGgjogpwok5GA
Lf/J0XDl5BG+EzDCXNz+e5sGap0QoqShWPrnek+0H8afDyxp4HIK75f4aTlbRIDg
r8iq3ESVUXlOVQmzeca1FiuL8O0FnLZIdl5Qk8Vsu3eqytl27TUv0hfeBmqlvcco
JG59aPnjSFTofJQaxUOPkjhCcsQH0loIn2v+fS2ynzsHj9AATfPLO7xAvmwbOtO3
IUVCLPf61nnCUuUot+PhT5VEFLlGPdWm5c/ZjKQI0aj5KCE2QwcPYuPMZKKdAgMB
AAGjUzBRMB0GA1UdDgQWBBQ8byovAlUvw3Ym21MCyJc9vwNmPDAfBgNVHSMEGDAW
gBQ8byovAlUvw3Ym21MCyJc9vwNmPDAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3
DQEBCwUAA4IBAQBPUZwvI1DeDOuewCqZkQx4jlwIyGJ6LW6y5W5qFju3Mfmbvhpg
sq5CuymbP/mCrr1WD/pklSMrNsKPcFfmnrFWTjoUYkdfmSvmBbU2gtQIGCS3YObm
h2aGIfrwcY89b3FyzY4UJW4oDiJ1Wldw0Jw+pqpvbGAKsdEvRY6mZNDjgXNUMbtf
YKx//mXnwN9HPWl0nMC3ue7bp3jHDOYd94BvJHl5BfcI8vNI29v8PICH8mCFWHsE
jlQDD5WWNl84dbSC+ZAAKxWey3wgdb5UPTPfRn2OFVw69NXGsFughuqarYPAaJg4
GyFfa8difVeDnirMJ53/vLcCybavXUyDNM/V
-----END CERTIFICATE-----
";
/// `openssl x509 -noout -fingerprint -sha1` / `-sha256` of [`OPENSSL_CERT_PEM`].
const OPENSSL_SHA1: &str = "F0:1E:43:6E:9F:80:4D:47:85:A5:76:19:56:1C:FD:73:90:17:37:21";
const OPENSSL_SHA256: &str = "5D:32:C1:E7:69:6A:40:BD:13:19:59:97:70:A1:E4:3B:1D:6E:23:81:0D:C2:57:6F:61:39:01:F6:D4:2A:97:C9";
/// `openssl rsa -noout -modulus` of the certificate's key, base64url.
const OPENSSL_N: &str = "qNMHOg0Bg7eUAH-EzGtFwPGcKMXqutoFJrvaGjVLQ6CCrdOLVRZWf-gueDZL3zV-Omi3T1EH1ph5lBoI6IKcKJORgC3_ydFw5eQRvhMwwlzc_nubBmqdEKKkoVj653pPtB_Gnw8saeByCu-X-Gk5W0SA4K_IqtxElVF5TlUJs3nGtRYri_DtBZy2SHZeUJPFbLt3qsrZdu01L9IX3gZqpb3HKCRufWj540hU6HyUGsVDj5I4QnLEB9JaCJ9r_n0tsp87B4_QAE3zyzu8QL5sGzrTtyFFQiz3-tZ5wlLlKLfj4U-VRBS5Rj3VpuXP2YykCNGo-SghNkMHD2LjzGSinQ";
/// Header `{"alg":"RS256","typ":"JWT"}`, claims
/// `{"aud":"coffer","exp":4102444800,"iss":"openssl"}`, signed by OpenSSL.
const OPENSSL_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJjb2ZmZXIiLCJleHAiOjQxMDI0NDQ4MDAsImlzcyI6Im9wZW5zc2wifQ.VqQ30gnzL7VWWYgYkiF5H9Yiq49jVkloTE9HiJPIb9yiplmwxKl704B6KnPfhNBABcj_rX6OfR1OjN35ahsheYBQ9FM_P9byWgoi-xnkBK3n_-mD08uWJYGjNLONLbKA4fkJlYQGp-isrgjb7Qwp7ry10lpJcqMiM69VpenD0VkwqrGckRZsQQaHsdlhlbTE6NbTBKS-C7XCdlCbGF25IyCXOFwIfzgcVE7esRg5OHoU1tczbfWUdsnwGZPMrR7q47_WA9y5i49RUXmv0_-JcJj6kLP49YJyQO9FtjwzSjc8xF7cjq2bHktPcsdZX07dHzqsc7Xk7-Rx2JeJlKhSdw";

fn hex_fingerprint_to_b64url(fingerprint: &str) -> String {
    let bytes: Vec<u8> = fingerprint
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    b64_encode(&bytes)
}

fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = CertificateParams::new(vec!["client.example".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.der().to_vec(), key)
}

#[test]
fn openssl_certificate_token_and_thumbprints_cross_check() {
    let certs = certificates_from_pem(OPENSSL_CERT_PEM.as_bytes()).unwrap();
    assert_eq!(certs.len(), 1);
    let (x5t, x5t_s256) = certificate_thumbprints(&certs[0]);
    assert_eq!(x5t, hex_fingerprint_to_b64url(OPENSSL_SHA1));
    assert_eq!(x5t_s256, hex_fingerprint_to_b64url(OPENSSL_SHA256));

    let jwt = Jwt::parse(OPENSSL_TOKEN).unwrap();
    let validation = Validation::new("openssl", "coffer", NOW);
    let from_cert = VerifyingKey::from_certificate_der(&certs[0]).unwrap();
    assert_eq!(from_cert.algorithms(), Algorithm::RSA);
    assert_eq!(from_cert.certificate_der(), Some(certs[0].as_slice()));
    assert_eq!(jwt.verify(&from_cert), Ok(()));
    assert_eq!(jwt.validate(&validation), Ok(()));
    let jwk = Jwk {
        kty: "RSA".into(),
        n: Some(OPENSSL_N.into()),
        e: Some("AQAB".into()),
        ..Jwk::default()
    };
    assert_eq!(jwt.verify(&VerifyingKey::from_jwk(&jwk).unwrap()), Ok(()));
    // A key that is not the certificate's does not verify it.
    let other = VerifyingKey::from_jwk(&rsa_jwk(rsa_key())).unwrap();
    assert_eq!(jwt.verify(&other), Err(JwtError::BadSignature));
}

#[test]
fn certificate_assertion_with_ecdsa_p256() {
    let (der, key) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let verifying = VerifyingKey::from_certificate_der(&der).unwrap();
    assert_eq!(verifying.algorithms(), [Algorithm::Es256]);
    let signer = SigningKey::from_pkcs8(&key.serialize_der()).unwrap();
    let token = signer.sign(claims().as_object().unwrap()).unwrap();
    let jwt = Jwt::parse(&token).unwrap();
    assert_eq!(jwt.verify(&verifying), Ok(()));
    // Signed by another key, or tampered: refused.
    let other = signing_key().sign(claims().as_object().unwrap()).unwrap();
    assert_eq!(
        Jwt::parse(&other).unwrap().verify(&verifying),
        Err(JwtError::BadSignature)
    );
    let (sig_input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = b64_decode(sig).unwrap();
    bytes[0] ^= 0x80;
    let flipped = format!("{sig_input}.{}", b64_encode(&bytes));
    assert_eq!(
        Jwt::parse(&flipped).unwrap().verify(&verifying),
        Err(JwtError::BadSignature)
    );
    let rs = rsa_token(rsa_key(), "RS256", &RSA_PKCS1_SHA256, &claims());
    assert_eq!(
        Jwt::parse(&rs).unwrap().verify(&verifying),
        Err(JwtError::KeyAlgorithmMismatch)
    );
    // The thumbprints are digests of exactly this DER.
    let (x5t, x5t_s256) = certificate_thumbprints(&der);
    assert_eq!(b64_decode(&x5t).unwrap().len(), 20);
    assert_eq!(b64_decode(&x5t_s256).unwrap().len(), 32);
    assert_ne!(certificate_thumbprints(&der[..der.len() - 1]).0, x5t);
}

#[test]
fn certificate_assertion_with_ecdsa_p384() {
    let (der, key) = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
    let verifying = VerifyingKey::from_certificate_der(&der).unwrap();
    assert_eq!(verifying.algorithms(), [Algorithm::Es384]);
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &key.serialize_der()).unwrap();
    // Many signatures, so r or s with a leading zero byte or a high bit (the DER conversion's
    // edge cases) come up.
    for _ in 0..32 {
        let token = assemble(&json!({ "alg": "ES384" }), &claims(), |input| {
            pair.sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec()
        });
        assert_eq!(Jwt::parse(&token).unwrap().verify(&verifying), Ok(()));
    }
}

#[test]
fn certificate_assertion_with_rsa() {
    let (der, key) = self_signed(&rcgen::PKCS_RSA_SHA256);
    let verifying = VerifyingKey::from_certificate_der(&der).unwrap();
    assert_eq!(verifying.algorithms(), Algorithm::RSA);
    let pair = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
    let rs256 = rsa_token(&pair, "RS256", &RSA_PKCS1_SHA256, &claims());
    assert_eq!(Jwt::parse(&rs256).unwrap().verify(&verifying), Ok(()));
    let ps512 = rsa_token(&pair, "PS512", &RSA_PSS_SHA512, &claims());
    assert_eq!(Jwt::parse(&ps512).unwrap().verify(&verifying), Ok(()));
    let es = signing_key().sign(claims().as_object().unwrap()).unwrap();
    assert_eq!(
        Jwt::parse(&es).unwrap().verify(&verifying),
        Err(JwtError::KeyAlgorithmMismatch)
    );
}

#[test]
fn unusable_certificates_and_pem_are_refused() {
    assert!(matches!(
        VerifyingKey::from_certificate_der(b"not a certificate"),
        Err(JwtError::InvalidKey(_))
    ));
    let (ed_der, _) = self_signed(&rcgen::PKCS_ED25519);
    assert!(matches!(
        VerifyingKey::from_certificate_der(&ed_der),
        Err(JwtError::InvalidKey(_))
    ));
    assert!(matches!(
        certificates_from_pem(b"no pem here"),
        Err(JwtError::InvalidKey(_))
    ));
    let key_only = KeyPair::generate().unwrap().serialize_pem();
    assert!(matches!(
        certificates_from_pem(key_only.as_bytes()),
        Err(JwtError::InvalidKey(_))
    ));
    let two = format!("{key_only}{OPENSSL_CERT_PEM}{OPENSSL_CERT_PEM}");
    assert_eq!(certificates_from_pem(two.as_bytes()).unwrap().len(), 2);
}

fn ec_jwk() -> Jwk {
    signing_key().public_jwk()
}

#[test]
fn a_jwk_carrying_private_members_is_refused() {
    let mut json = serde_json::to_value(ec_jwk()).unwrap();
    json["d"] = json!("c2VjcmV0");
    let jwk: Jwk = serde_json::from_value(json).unwrap();
    let err = VerifyingKey::from_jwk(&jwk).unwrap_err();
    assert!(
        matches!(&err, JwtError::InvalidKey(m) if m.contains("private")),
        "{err}"
    );
    assert!(!err.to_string().contains("c2VjcmV0"));
    let mut json = serde_json::to_value(rsa_jwk(rsa_key())).unwrap();
    json["k"] = json!("c2VjcmV0");
    let jwk: Jwk = serde_json::from_value(json).unwrap();
    assert!(matches!(
        VerifyingKey::from_jwk(&jwk),
        Err(JwtError::InvalidKey(_))
    ));
}

#[test]
fn rsa_moduli_outside_2048_to_8192_bits_are_refused() {
    let jwk = |n: Vec<u8>| Jwk {
        kty: "RSA".into(),
        n: Some(b64_encode(&n)),
        e: Some("AQAB".into()),
        ..Jwk::default()
    };
    for (n, bits) in [
        (vec![0xC7; 128], 1024),
        ([vec![0x7F], vec![0xFF; 255]].concat(), 2047),
        ([vec![0x01], vec![0xFF; 1024]].concat(), 8193),
    ] {
        let err = VerifyingKey::from_jwk(&jwk(n)).unwrap_err();
        assert!(
            matches!(&err, JwtError::InvalidKey(m) if m.contains(&format!("{bits} bits"))),
            "{err}"
        );
    }
    // A leading zero byte before a 2048-bit modulus is tolerated.
    let mut padded = rsa_jwk(rsa_key());
    let n = b64_decode(padded.n.as_deref().unwrap()).unwrap();
    padded.n = Some(b64_encode(&[vec![0], n].concat()));
    assert!(VerifyingKey::from_jwk(&padded).is_ok());
}

#[test]
fn malformed_or_unsuitable_jwks_are_refused() {
    let invalid = |jwk: Jwk| matches!(VerifyingKey::from_jwk(&jwk), Err(JwtError::InvalidKey(_)));
    let good = ec_jwk();
    assert!(VerifyingKey::from_jwk(&good).is_ok());
    assert!(invalid(Jwk {
        x: Some(b64_encode(&[1; 31])),
        ..good.clone()
    }));
    // Right length, not on the curve.
    assert!(invalid(Jwk {
        y: Some(b64_encode(&[1; 32])),
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        x: Some("not base64!".into()),
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        crv: Some("P-521".into()),
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        crv: None,
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        key_use: Some("enc".into()),
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        alg: Some("RS256".into()),
        ..good.clone()
    }));
    assert!(invalid(Jwk {
        kty: "oct".into(),
        ..good.clone()
    }));
    assert_eq!(
        VerifyingKey::from_jwk(&Jwk {
            alg: Some("HS256".into()),
            ..good.clone()
        })
        .unwrap_err(),
        JwtError::UnsupportedAlgorithm("HS256".into())
    );
    assert!(invalid(Jwk {
        e: None,
        ..rsa_jwk(rsa_key())
    }));
}

#[test]
fn ecdsa_fixed_signatures_convert_to_minimal_der() {
    let mut fixed = [0u8; 64];
    fixed[31] = 0x01; // r = 1
    fixed[32] = 0x80; // s has its top bit set
    let der = ecdsa_fixed_to_der(&fixed, 32).unwrap();
    let mut expected = vec![0x30, 3 + 35, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00, 0x80];
    expected.extend_from_slice(&[0; 31]);
    assert_eq!(der, expected);
    let zero = ecdsa_fixed_to_der(&[0; 64], 32).unwrap();
    assert_eq!(zero, [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
    assert_eq!(
        ecdsa_fixed_to_der(&[0xFF; 96], 48).unwrap().len(),
        2 + 2 * (2 + 49)
    );
    assert_eq!(
        ecdsa_fixed_to_der(&[1; 63], 32),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn debug_names_the_key_kind_only() {
    let key = VerifyingKey::from_jwk(&rsa_jwk(rsa_key())).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("RSA"), "{shown}");
    assert!(shown.len() < 200, "{shown}");
}
