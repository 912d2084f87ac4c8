//! RSA keys: generation (65537 only, as aws-lc generates), JWK import checked for consistency,
//! RSA1_5 / RSA-OAEP / RSA-OAEP-256 encryption, and RS*/PS* signatures over a caller's digest.
//!
//! An imported key is built by aws-lc from its components (`RSA_check_key` checks `n = p·q`,
//! the CRT values and `d` against `e`), and then checked again here, independently of that:
//! the parsed public parts must equal the JWK's `n` and `e`, and a signature made with the
//! private key must verify under a public key built from `n` and `e` alone. A key whose parts
//! belong to different keys is refused before anything is stored.
//!
//! Decryption failures all give one message. That hides why a ciphertext failed, but RSA1_5
//! (PKCS#1 v1.5) decryption still tells a caller whether a ciphertext was well padded, which is
//! Bleichenbacher's oracle; Azure offers the algorithm all the same, and so does Coffer, for
//! compatibility. Callers who can should use RSA-OAEP-256.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair, KeyPairComponents, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::{self, KeyPair as _, ParsedPublicKey, RsaEncoding, RsaParameters};
use coffer_types::{EncryptionAlgorithm, JsonWebKey, KeyFamily, KeyType, SignatureAlgorithm};
use zeroize::Zeroizing;

use super::{key_error, unsupported_encryption, unsupported_signature};
use crate::{CryptoError, SecretBytes};

/// The RSA key sizes Coffer imports, in bits.
pub(super) const MIN_BITS: u32 = 2048;
pub(super) const MAX_BITS: u32 = 4096;
const DEFAULT_EXPONENT: u32 = 65_537;

/// The one message for every failed decryption: a caller learns nothing about why (padding,
/// length or key), so the operation is no padding oracle.
const DECRYPT_FAILED: &str = "The ciphertext could not be decrypted with this key.";
const INCONSISTENT: &str =
    "The RSA key is invalid: its private parts do not form a consistent key with n and e.";

/// The signature algorithms, with aws-lc's signing encoding and verification parameters
/// (PSS: MGF1 with the same hash, salt as long as the hash).
const SIGNATURE_ALGORITHMS: [(SignatureAlgorithm, &dyn RsaEncoding, &RsaParameters); 6] = [
    (
        SignatureAlgorithm::Rs256,
        &signature::RSA_PKCS1_SHA256,
        &signature::RSA_PKCS1_2048_8192_SHA256,
    ),
    (
        SignatureAlgorithm::Rs384,
        &signature::RSA_PKCS1_SHA384,
        &signature::RSA_PKCS1_2048_8192_SHA384,
    ),
    (
        SignatureAlgorithm::Rs512,
        &signature::RSA_PKCS1_SHA512,
        &signature::RSA_PKCS1_2048_8192_SHA512,
    ),
    (
        SignatureAlgorithm::Ps256,
        &signature::RSA_PSS_SHA256,
        &signature::RSA_PSS_2048_8192_SHA256,
    ),
    (
        SignatureAlgorithm::Ps384,
        &signature::RSA_PSS_SHA384,
        &signature::RSA_PSS_2048_8192_SHA384,
    ),
    (
        SignatureAlgorithm::Ps512,
        &signature::RSA_PSS_SHA512,
        &signature::RSA_PSS_2048_8192_SHA512,
    ),
];

fn signing_encoding(alg: SignatureAlgorithm) -> Option<&'static dyn RsaEncoding> {
    SIGNATURE_ALGORITHMS
        .iter()
        .find(|(a, _, _)| *a == alg)
        .map(|(_, encoding, _)| *encoding)
}

/// The public parts, big-endian without leading zeros, as a JWK carries them.
#[derive(Clone)]
struct PublicParts {
    n: Vec<u8>,
    e: Vec<u8>,
    bits: u32,
}

impl PublicParts {
    fn from_pair(pair: &KeyPair) -> Result<Self, ()> {
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let bits = bit_len(&components.n).ok_or(())?;
        Ok(Self {
            n: components.n,
            e: components.e,
            bits,
        })
    }
}

/// An RSA private key at rest: PKCS#8 DER, wiped on drop, and its public parts.
#[derive(Clone)]
pub(super) struct RsaMaterial {
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicParts,
}

impl RsaMaterial {
    pub(super) fn generate(bits: u32, public_exponent: u32) -> Result<Self, CryptoError> {
        if public_exponent != 0 && public_exponent != DEFAULT_EXPONENT {
            return Err(key_error(format!(
                "Coffer generates RSA keys with the public exponent 65537 only; \
                 {public_exponent} was requested."
            )));
        }
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => {
                return Err(key_error(format!(
                    "Coffer creates RSA keys of 2048, 3072 or 4096 bits; {other} bits were \
                     requested."
                )));
            }
        };
        let pair = KeyPair::generate(size).map_err(|_| CryptoError::Random)?;
        Self::from_pair(&pair).map_err(|_| CryptoError::Random)
    }

    fn from_pair(pair: &KeyPair) -> Result<Self, ()> {
        let der = pair.as_der().map_err(|_| ())?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.as_ref().to_vec()),
            public: PublicParts::from_pair(pair)?,
        })
    }

    /// Imports a private JWK (`n, e, d, p, q, dp, dq, qi`).
    pub(super) fn import(jwk: &JsonWebKey) -> Result<Self, CryptoError> {
        let parts = [
            ("n", &jwk.n),
            ("e", &jwk.e),
            ("d", &jwk.d),
            ("p", &jwk.p),
            ("q", &jwk.q),
            ("dp", &jwk.dp),
            ("dq", &jwk.dq),
            ("qi", &jwk.qi),
        ];
        let missing: Vec<&str> = parts
            .iter()
            .filter(|(_, part)| part.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(key_error(format!(
                "An RSA key import needs n, e, d, p, q, dp, dq and qi; the key lacks {}.",
                missing.join(", ")
            )));
        }
        let n = strip_leading_zeros(field(&jwk.n));
        let e = strip_leading_zeros(field(&jwk.e));
        check_size(n)?;
        if e.is_empty() {
            return Err(key_error("The RSA key's public exponent (e) is zero."));
        }
        let components = KeyPairComponents {
            public_key: PublicKeyComponents { n, e },
            d: field(&jwk.d),
            p: field(&jwk.p),
            q: field(&jwk.q),
            dP: field(&jwk.dp),
            dQ: field(&jwk.dq),
            qInv: field(&jwk.qi),
        };
        let pair = KeyPair::from_components(&components).map_err(|_| key_error(INCONSISTENT))?;
        let public = PublicParts::from_pair(&pair).map_err(|_| key_error(INCONSISTENT))?;
        if public.n != n || public.e != e {
            return Err(key_error(INCONSISTENT));
        }
        self_test(&pair, n, e)?;
        let material = Self::from_pair(&pair).map_err(|_| key_error(INCONSISTENT))?;
        // What is stored must load: parse it back exactly as `load` will.
        material.load().map_err(|_| key_error(INCONSISTENT))?;
        Ok(material)
    }

    /// Reads stored PKCS#8; any failure means the stored material is damaged.
    pub(super) fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| CryptoError::Unseal)?;
        let public = PublicParts::from_pair(&pair).map_err(|_| CryptoError::Unseal)?;
        if !(MIN_BITS..=MAX_BITS).contains(&public.bits) {
            return Err(CryptoError::Unseal);
        }
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            public,
        })
    }

    pub(super) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub(super) fn bits(&self) -> u32 {
        self.public.bits
    }

    pub(super) fn public_jwk(&self) -> JsonWebKey {
        let mut jwk = JsonWebKey::default();
        jwk.kty = Some(KeyType::Rsa);
        jwk.n = Some(self.public.n.clone());
        jwk.e = Some(self.public.e.clone());
        jwk
    }

    pub(super) fn load(&self) -> Result<RsaPrivateKey, CryptoError> {
        let signing = KeyPair::from_pkcs8(&self.pkcs8).map_err(|_| CryptoError::Unseal)?;
        let decrypting =
            PrivateDecryptingKey::from_pkcs8(&self.pkcs8).map_err(|_| CryptoError::Unseal)?;
        let oaep =
            OaepPrivateDecryptingKey::new(decrypting.clone()).map_err(|_| CryptoError::Unseal)?;
        let pkcs1 = Pkcs1PrivateDecryptingKey::new(decrypting).map_err(|_| CryptoError::Unseal)?;
        let public =
            RsaPublicKey::new(&self.public.n, &self.public.e).map_err(|_| CryptoError::Unseal)?;
        Ok(RsaPrivateKey {
            signing,
            oaep,
            pkcs1,
            public,
        })
    }
}

/// Signs a fixed digest with the private key and verifies it with a key built from `n` and `e`
/// alone: a private key that does not belong to `n` cannot pass.
fn self_test(pair: &KeyPair, n: &[u8], e: &[u8]) -> Result<(), CryptoError> {
    let digest = digest::digest(&digest::SHA256, b"coffer.rsa-import.self-test");
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign_digest(&signature::RSA_PKCS1_SHA256, &digest, &mut sig)
        .map_err(|_| key_error(INCONSISTENT))?;
    let verifier = PublicKeyComponents { n, e }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| key_error(INCONSISTENT))?;
    verifier
        .verify_digest_sig(&digest, &sig)
        .map_err(|_| key_error(INCONSISTENT))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn field(part: &Option<Vec<u8>>) -> &[u8] {
    part.as_deref().unwrap_or_default()
}

/// The bit length of a big-endian integer without leading zero bytes.
fn bit_len(n: &[u8]) -> Option<u32> {
    let first = n.first()?;
    let bytes = u32::try_from(n.len()).ok()?;
    Some((bytes - 1) * 8 + (8 - first.leading_zeros()))
}

fn check_size(n: &[u8]) -> Result<u32, CryptoError> {
    let bits = bit_len(n).unwrap_or(0);
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(key_error(format!(
            "Coffer accepts RSA keys of {MIN_BITS} to {MAX_BITS} bits; this key has {bits} bits."
        )));
    }
    Ok(bits)
}

/// A loaded RSA private key.
pub(super) struct RsaPrivateKey {
    signing: KeyPair,
    oaep: OaepPrivateDecryptingKey,
    pkcs1: Pkcs1PrivateDecryptingKey,
    public: RsaPublicKey,
}

impl RsaPrivateKey {
    pub(super) fn public(&self) -> &RsaPublicKey {
        &self.public
    }

    pub(super) fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let modulus_len = self.oaep.key_size_bytes();
        if ciphertext.len() != modulus_len {
            return Err(key_error(DECRYPT_FAILED));
        }
        let mut out = Zeroizing::new(vec![0u8; modulus_len]);
        let len = match alg {
            EncryptionAlgorithm::Rsa15 => self.pkcs1.decrypt(ciphertext, &mut out).map(|p| p.len()),
            EncryptionAlgorithm::RsaOaep | EncryptionAlgorithm::RsaOaep256 => self
                .oaep
                .decrypt(oaep_algorithm(alg), ciphertext, &mut out, None)
                .map(|p| p.len()),
            other => return Err(unsupported_encryption(other, KeyFamily::Rsa)),
        }
        .map_err(|_| key_error(DECRYPT_FAILED))?;
        out.truncate(len);
        Ok(SecretBytes::new(std::mem::take(&mut *out)))
    }

    /// Signs `digest`, whose algorithm the caller matched to `alg`.
    pub(super) fn sign(
        &self,
        alg: SignatureAlgorithm,
        digest: &Digest,
    ) -> Result<Vec<u8>, CryptoError> {
        let encoding =
            signing_encoding(alg).ok_or_else(|| unsupported_signature(alg, KeyFamily::Rsa))?;
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign_digest(encoding, digest, &mut sig)
            .map_err(|_| CryptoError::Seal)?;
        Ok(sig)
    }
}

fn oaep_algorithm(alg: EncryptionAlgorithm) -> &'static OaepAlgorithm {
    if alg == EncryptionAlgorithm::RsaOaep256 {
        &OAEP_SHA256_MGF1SHA256
    } else {
        &OAEP_SHA1_MGF1SHA1
    }
}

/// The public half of an RSA key, parsed for encryption and for each signature algorithm.
pub(super) struct RsaPublicKey {
    bits: u32,
    oaep: OaepPublicEncryptingKey,
    pkcs1: Pkcs1PublicEncryptingKey,
    verifiers: Vec<(SignatureAlgorithm, ParsedPublicKey)>,
}

impl RsaPublicKey {
    fn new(n: &[u8], e: &[u8]) -> Result<Self, ()> {
        let bits = bit_len(n).ok_or(())?;
        let components = PublicKeyComponents { n, e };
        let encrypting: PublicEncryptingKey = components.try_into().map_err(|_| ())?;
        let oaep = OaepPublicEncryptingKey::new(encrypting.clone()).map_err(|_| ())?;
        let pkcs1 = Pkcs1PublicEncryptingKey::new(encrypting).map_err(|_| ())?;
        let verifiers = SIGNATURE_ALGORITHMS
            .iter()
            .map(|(alg, _, params)| {
                components
                    .to_parsed_public_key(params)
                    .map(|parsed| (*alg, parsed))
                    .map_err(|_| ())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            bits,
            oaep,
            pkcs1,
            verifiers,
        })
    }

    /// From a JWK's `n` and `e`.
    pub(super) fn from_jwk(jwk: &JsonWebKey) -> Result<Self, CryptoError> {
        let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
            return Err(key_error("An RSA public key needs n and e."));
        };
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        check_size(n)?;
        Self::new(n, e).map_err(|_| key_error("The RSA public key (n, e) is invalid."))
    }

    pub(super) fn bits(&self) -> u32 {
        self.bits
    }

    /// Encrypts `plaintext`; `what` names it in a refusal ("plaintext", "key to wrap").
    pub(super) fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        what: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let max = match alg {
            EncryptionAlgorithm::Rsa15 => self.pkcs1.max_plaintext_size(),
            EncryptionAlgorithm::RsaOaep | EncryptionAlgorithm::RsaOaep256 => {
                self.oaep.max_plaintext_size(oaep_algorithm(alg))
            }
            other => return Err(unsupported_encryption(other, KeyFamily::Rsa)),
        };
        if plaintext.len() > max {
            return Err(key_error(format!(
                "The {what} is {} bytes; {alg} with this {}-bit key encrypts at most {max} bytes.",
                plaintext.len(),
                self.bits
            )));
        }
        let mut out = vec![0u8; self.oaep.ciphertext_size()];
        let len = if alg == EncryptionAlgorithm::Rsa15 {
            self.pkcs1.encrypt(plaintext, &mut out).map(|c| c.len())
        } else {
            self.oaep
                .encrypt(oaep_algorithm(alg), plaintext, &mut out, None)
                .map(|c| c.len())
        }
        .map_err(|_| CryptoError::Seal)?;
        out.truncate(len);
        Ok(out)
    }

    /// Whether `sig` is a valid `alg` signature of `digest` (whose algorithm the caller matched
    /// to `alg`).
    pub(super) fn verify(&self, alg: SignatureAlgorithm, digest: &Digest, sig: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_digest_sig(digest, sig).is_ok())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0x80, 0]), Some(16));
        assert_eq!(bit_len(&[0x01]), Some(1));
        assert_eq!(bit_len(&[0x7f, 0, 0]), Some(23));
        assert_eq!(bit_len(&[]), None);
        assert_eq!(strip_leading_zeros(&[0, 0, 5, 0]), &[5, 0]);
        assert!(strip_leading_zeros(&[0, 0]).is_empty());
    }

    #[test]
    fn generation_refuses_other_sizes_and_exponents() {
        for bits in [1024, 2047, 8192, 0] {
            let err = RsaMaterial::generate(bits, 65537).err().unwrap();
            assert!(matches!(err, CryptoError::Key(_)), "{bits}");
        }
        let err = RsaMaterial::generate(2048, 3).err().unwrap().to_string();
        assert!(err.contains("65537"), "{err}");
    }

    /// A key whose CRT values were swapped with another key's is refused, and the message
    /// carries none of the key's bytes.
    #[test]
    fn import_refuses_parts_of_another_key() {
        let a = RsaMaterial::generate(2048, 0).unwrap();
        let b = RsaMaterial::generate(2048, 0).unwrap();
        let jwk_a = private_jwk(&a);
        let jwk_b = private_jwk(&b);
        assert!(RsaMaterial::import(&jwk_a).is_ok());
        type Mix = fn(&mut JsonWebKey, &JsonWebKey);
        let mixes: [(&str, Mix); 4] = [
            ("d", |t, s| t.d = s.d.clone()),
            ("p and q", |t, s| {
                t.p = s.p.clone();
                t.q = s.q.clone();
            }),
            ("crt", |t, s| {
                t.dp = s.dp.clone();
                t.dq = s.dq.clone();
                t.qi = s.qi.clone();
            }),
            ("n", |t, s| t.n = s.n.clone()),
        ];
        for (what, mix) in mixes {
            let mut jwk = jwk_a.clone();
            mix(&mut jwk, &jwk_b);
            let err = RsaMaterial::import(&jwk).err().unwrap();
            assert!(
                matches!(&err, CryptoError::Key(m) if m == INCONSISTENT),
                "{what}: {err}"
            );
        }
        let mut lacking = jwk_a.clone();
        lacking.dq = None;
        lacking.qi = None;
        let err = RsaMaterial::import(&lacking).err().unwrap().to_string();
        assert!(err.ends_with("lacks dq, qi."), "{err}");
    }

    /// The private JWK of a material (what a caller would send), read from its PKCS#8.
    fn private_jwk(material: &RsaMaterial) -> JsonWebKey {
        let parts = pkcs8_rsa_parts(material.pkcs8());
        {
            let mut built = JsonWebKey::default();
            built.kty = Some(KeyType::Rsa);
            built.n = Some(parts[0].clone());
            built.e = Some(parts[1].clone());
            built.d = Some(parts[2].clone());
            built.p = Some(parts[3].clone());
            built.q = Some(parts[4].clone());
            built.dp = Some(parts[5].clone());
            built.dq = Some(parts[6].clone());
            built.qi = Some(parts[7].clone());
            built
        }
    }

    /// n, e, d, p, q, dp, dq, qi from PKCS#8 DER (a test-only DER reader).
    pub(crate) fn pkcs8_rsa_parts(der: &[u8]) -> Vec<Vec<u8>> {
        fn read(input: &[u8]) -> (u8, &[u8], &[u8]) {
            let tag = input[0];
            let (len, header) = match input[1] {
                l if l < 0x80 => (l as usize, 2),
                0x81 => (input[2] as usize, 3),
                0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
                other => panic!("length form {other:#x}"),
            };
            (tag, &input[header..header + len], &input[header + len..])
        }
        let (_, info, _) = read(der); // PrivateKeyInfo
        let (_, _, rest) = read(info); // version
        let (_, _, rest) = read(rest); // algorithm
        let (_, octets, _) = read(rest); // privateKey OCTET STRING
        let (_, mut body, _) = read(octets); // RSAPrivateKey
        let (_, _, rest) = read(body); // version
        body = rest;
        let mut out = Vec::new();
        while !body.is_empty() {
            let (tag, value, rest) = read(body);
            assert_eq!(tag, 0x02);
            out.push(strip_leading_zeros(value).to_vec());
            body = rest;
        }
        assert_eq!(out.len(), 8);
        out
    }
}
