use std::fmt;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use webpki::EndEntityCert;

use super::error::{JwtError, excerpt};
use super::{Algorithm, Jwk, b64_decode, b64_encode};

/// RSA modulus sizes accepted, in bits. Below 2048 is breakable or close to it; above 8192 only
/// makes verification slow enough to be a denial-of-service lever. The same range as the
/// aws-lc-rs and webpki `2048_8192` algorithms used to verify.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// A public key and the algorithms it may verify.
///
/// The algorithm set is fixed when the key is built, from its type and from the JWK's `alg`
/// if it names one; [`Jwt::verify`](super::Jwt::verify) refuses a token whose header names any
/// other algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    material: Material,
    algorithms: Vec<Algorithm>,
}

#[derive(Clone)]
enum Material {
    /// Uncompressed point (0x04 ‖ x ‖ y), already checked to lie on the curve.
    Ec(Vec<u8>),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A whole certificate, re-parsed at each verification: parsing is cheap, and keeping the
    /// DER lets callers compute its thumbprints.
    Certificate(Vec<u8>),
}

fn invalid(reason: &str) -> JwtError {
    JwtError::InvalidKey(reason.into())
}

/// The aws-lc-rs algorithm for an ECDSA JWS algorithm with raw r‖s signatures.
fn ec_fixed(alg: Algorithm) -> Option<&'static signature::EcdsaVerificationAlgorithm> {
    match alg {
        Algorithm::Es256 => Some(&signature::ECDSA_P256_SHA256_FIXED),
        Algorithm::Es384 => Some(&signature::ECDSA_P384_SHA384_FIXED),
        _ => None,
    }
}

/// The aws-lc-rs parameters for an RSA JWS algorithm. The PSS ones use MGF1 with the same hash
/// and a salt as long as the hash, as RFC 7518 §3.5 requires.
fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
    match alg {
        Algorithm::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
        Algorithm::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
        Algorithm::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// The webpki algorithm for verifying a JWS algorithm with a certificate's key. webpki's ECDSA
/// algorithms take DER signatures, so ES* signatures are converted first (see
/// [`ecdsa_fixed_to_der`]); the RSA-PSS ones are for keys of type rsaEncryption, which is what
/// client certificates carry.
fn webpki_alg(alg: Algorithm) -> &'static dyn rustls_pki_types::SignatureVerificationAlgorithm {
    use webpki::aws_lc_rs as w;
    match alg {
        Algorithm::Es256 => w::ECDSA_P256_SHA256,
        Algorithm::Es384 => w::ECDSA_P384_SHA384,
        Algorithm::Rs256 => w::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::Rs384 => w::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::Rs512 => w::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::Ps256 => w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        Algorithm::Ps384 => w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        Algorithm::Ps512 => w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    }
}

fn decode_member(name: &str, value: &Option<String>) -> Result<Vec<u8>, JwtError> {
    let value = value
        .as_deref()
        .ok_or_else(|| JwtError::InvalidKey(format!("the JWK has no {name} member")))?;
    b64_decode(value)
        .ok_or_else(|| JwtError::InvalidKey(format!("the JWK's {name} member is not base64url")))
}

/// `bytes` without leading zero bytes. RFC 7518 forbids them in `n` and `e`, but some encoders
/// emit one before a modulus whose top bit is set; the value is the same, so it is accepted.
fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

impl VerifyingKey {
    /// The key a JWK describes: EC P-256 (ES256), EC P-384 (ES384) or RSA of 2048 to 8192 bits
    /// (RS256/384/512, PS256/384/512). If the JWK names an `alg`, only that one is allowed.
    /// A JWK with private members, or with a `use` other than `sig`, is refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwtError> {
        if jwk.has_private_members() {
            return Err(invalid(
                "the JWK holds private key members; a key set must hold public keys only",
            ));
        }
        if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(invalid("the JWK's use is not sig"));
        }
        // An `alg` naming none or HS256 is refused here, not just ignored.
        let named = jwk.alg.as_deref().map(Algorithm::from_name).transpose()?;
        let (material, mut algorithms) = match jwk.kty.as_str() {
            "EC" => {
                let (alg, coordinate_len) = match jwk.crv.as_deref() {
                    Some("P-256") => (Algorithm::Es256, 32),
                    Some("P-384") => (Algorithm::Es384, 48),
                    Some(other) => {
                        return Err(JwtError::InvalidKey(format!(
                            "unsupported curve {:?}",
                            excerpt(other)
                        )));
                    }
                    None => return Err(invalid("the JWK has no crv member")),
                };
                let x = decode_member("x", &jwk.x)?;
                let y = decode_member("y", &jwk.y)?;
                if x.len() != coordinate_len || y.len() != coordinate_len {
                    return Err(invalid("the JWK's coordinates have the wrong length"));
                }
                let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = Self::from_ec_point(alg, point);
                key.check_ec_point()?;
                (key.material, key.algorithms)
            }
            "RSA" => {
                let n = strip_leading_zeros(&decode_member("n", &jwk.n)?);
                let e = strip_leading_zeros(&decode_member("e", &jwk.e)?);
                let bits = match n.first() {
                    Some(top) => n.len() * 8 - top.leading_zeros() as usize,
                    None => 0,
                };
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(JwtError::InvalidKey(format!(
                        "RSA modulus of {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"
                    )));
                }
                RsaPublicKeyComponents { n: &n, e: &e }
                    .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| invalid("the JWK is not a valid RSA public key"))?;
                (Material::Rsa { n, e }, Algorithm::RSA.to_vec())
            }
            other => {
                return Err(JwtError::InvalidKey(format!(
                    "unsupported key type {:?}",
                    excerpt(other)
                )));
            }
        };
        if let Some(named) = named {
            if !algorithms.contains(&named) {
                return Err(invalid("the JWK's alg does not fit its key type"));
            }
            algorithms = vec![named];
        }
        Ok(Self {
            material,
            algorithms,
        })
    }

    /// The key of a client certificate (DER). Its validity period and chain are not checked:
    /// the principal registered this exact certificate, so it is trusted as a key container,
    /// the way a registered JWK is. Keys: ECDSA P-256 (ES256), P-384 (ES384), RSA 2048 to 8192
    /// bits of type rsaEncryption (RS* and PS*).
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, JwtError> {
        let cert_der = CertificateDer::from(der);
        let cert = EndEntityCert::try_from(&cert_der)
            .map_err(|e| JwtError::InvalidKey(format!("not a usable X.509 certificate: {e}")))?;
        // Which algorithms fit the key is decided by webpki itself: it refuses an algorithm
        // whose public-key type (and curve) differ from the certificate's before any
        // cryptography, with a distinct error. An empty signature then fails for any other
        // reason, so this probe costs no real verification.
        let candidates = [Algorithm::Es256, Algorithm::Es384]
            .into_iter()
            .chain(Algorithm::RSA);
        let algorithms: Vec<Algorithm> = candidates
            .filter(|&alg| {
                !matches!(
                    cert.verify_signature(webpki_alg(alg), &[], &[]),
                    Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_))
                )
            })
            .collect();
        if algorithms.is_empty() {
            return Err(invalid("the certificate's key type is not supported"));
        }
        Ok(Self {
            material: Material::Certificate(der.to_vec()),
            algorithms,
        })
    }

    pub(crate) fn from_ec_point(alg: Algorithm, point: Vec<u8>) -> Self {
        Self {
            material: Material::Ec(point),
            algorithms: vec![alg],
        }
    }

    fn check_ec_point(&self) -> Result<(), JwtError> {
        if let (Material::Ec(point), Some(alg)) = (&self.material, self.algorithms.first())
            && let Some(verification) = ec_fixed(*alg)
        {
            UnparsedPublicKey::new(verification, point)
                .parse()
                .map_err(|_| invalid("the JWK's point is not on its curve"))?;
        }
        Ok(())
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    /// The certificate this key came from, if it came from one.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Certificate(der) => Some(der),
            _ => None,
        }
    }

    /// Checks `signature` over `message` with `alg`, which the caller has checked this key
    /// allows.
    pub(crate) fn verify_signature(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), JwtError> {
        if !self.allows(alg) {
            return Err(JwtError::KeyAlgorithmMismatch);
        }
        match &self.material {
            Material::Ec(point) => {
                let verification = ec_fixed(alg).ok_or(JwtError::KeyAlgorithmMismatch)?;
                UnparsedPublicKey::new(verification, point)
                    .verify(message, signature)
                    .map_err(|_| JwtError::BadSignature)
            }
            Material::Rsa { n, e } => {
                let params = rsa_params(alg).ok_or(JwtError::KeyAlgorithmMismatch)?;
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .map_err(|_| JwtError::BadSignature)
            }
            Material::Certificate(der) => {
                let cert_der = CertificateDer::from(der.as_slice());
                let cert = EndEntityCert::try_from(&cert_der)
                    .map_err(|_| invalid("the certificate no longer parses"))?;
                let converted;
                let signature = match alg {
                    Algorithm::Es256 => {
                        converted = ecdsa_fixed_to_der(signature, 32)?;
                        converted.as_slice()
                    }
                    Algorithm::Es384 => {
                        converted = ecdsa_fixed_to_der(signature, 48)?;
                        converted.as_slice()
                    }
                    _ => signature,
                };
                cert.verify_signature(webpki_alg(alg), message, signature)
                    .map_err(|e| match e {
                        webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                            JwtError::KeyAlgorithmMismatch
                        }
                        _ => JwtError::BadSignature,
                    })
            }
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.material {
            Material::Ec(_) => "EC",
            Material::Rsa { .. } => "RSA",
            Material::Certificate(_) => "certificate",
        };
        f.debug_struct("VerifyingKey")
            .field("kind", &kind)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Converts a JWS ECDSA signature (r ‖ s, each `half` bytes) to the DER `ECDSA-Sig-Value` that
/// X.509 verifiers expect. A signature of the wrong length is a bad signature.
fn ecdsa_fixed_to_der(signature: &[u8], half: usize) -> Result<Vec<u8>, JwtError> {
    if signature.len() != 2 * half {
        return Err(JwtError::BadSignature);
    }
    let (r, s) = signature.split_at(half);
    let mut body = Vec::with_capacity(2 * half + 6);
    der_unsigned_integer(&mut body, r)?;
    der_unsigned_integer(&mut body, s)?;
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(der_short_length(body.len())?);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Appends a DER INTEGER holding the unsigned big-endian `value`: minimal length, with a zero
/// byte in front when the top bit is set so it does not read as negative.
fn der_unsigned_integer(out: &mut Vec<u8>, value: &[u8]) -> Result<(), JwtError> {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let digits = &value[start..];
    let pad = digits.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(0x02);
    out.push(der_short_length(digits.len() + usize::from(pad))?);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    Ok(())
}

/// A DER length in short form. For P-256 and P-384 the whole signature is at most 102 bytes,
/// so the long form is never needed; a longer value is refused rather than mis-encoded.
fn der_short_length(len: usize) -> Result<u8, JwtError> {
    u8::try_from(len)
        .ok()
        .filter(|&l| l < 0x80)
        .ok_or(JwtError::BadSignature)
}

/// The `x5t` and `x5t#S256` thumbprints of a certificate: base64url (no padding) of the SHA-1
/// and the SHA-256 of its DER, the values `openssl x509 -fingerprint -sha1/-sha256` prints in
/// hex. SHA-1 is here only because `x5t` is defined with it (RFC 7515 §4.1.7), and clients
/// (Azure's among them) still send it; it identifies a registered certificate, it does not
/// authenticate anything.
pub fn certificate_thumbprints(der: &[u8]) -> (String, String) {
    (
        b64_encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
        b64_encode(digest(&SHA256, der).as_ref()),
    )
}

/// Every certificate in PEM text, as DER; other PEM sections (keys) are skipped. No
/// certificate at all is an error.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, JwtError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .map(|c| {
            c.map(|c| c.to_vec())
                .map_err(|e| JwtError::InvalidKey(format!("not PEM certificates: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err(invalid("no certificate in the PEM text"));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests;
