use std::fmt;

use super::error::{JwtError, excerpt};

/// The JWS algorithms Coffer verifies (RFC 7518 §3.1). Deliberately absent: `none` (no
/// signature at all) and `HS256`/`HS384`/`HS512`, which use a shared secret. A verifier that
/// accepted HS256 with an asymmetric key's public bytes as the MAC key would let anyone who knows
/// the public key forge tokens; not having the variant makes that impossible to get wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256, signature r‖s (64 bytes).
    Es256,
    /// ECDSA P-384 with SHA-384, signature r‖s (96 bytes).
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    Rs384,
    Rs512,
    /// RSASSA-PSS with SHA-256, MGF1 SHA-256 and a 32-byte salt.
    Ps256,
    Ps384,
    Ps512,
}

impl Algorithm {
    /// Every algorithm an RSA key may verify.
    pub(crate) const RSA: [Self; 6] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
    ];

    /// The `alg` value naming this algorithm.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
        }
    }

    /// The algorithm an `alg` value names. Names are case-sensitive (RFC 7515 §4.1.1), so
    /// `es256` is refused like `none` and `HS256`.
    pub fn from_name(name: &str) -> Result<Self, JwtError> {
        Ok(match name {
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            _ => return Err(JwtError::UnsupportedAlgorithm(excerpt(name))),
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_symmetric_or_absent_algorithms_are_refused() {
        for alg in [Algorithm::Es256, Algorithm::Es384]
            .into_iter()
            .chain(Algorithm::RSA)
        {
            assert_eq!(Algorithm::from_name(alg.name()), Ok(alg));
        }
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "es256", "EdDSA", "",
        ] {
            assert_eq!(
                Algorithm::from_name(name),
                Err(JwtError::UnsupportedAlgorithm(name.into())),
                "{name}"
            );
        }
        let long = "A".repeat(1000);
        let Err(JwtError::UnsupportedAlgorithm(named)) = Algorithm::from_name(&long) else {
            panic!("a long unknown name must be refused");
        };
        assert_eq!(named.len(), super::super::error::EXCERPT_CHARS);
    }
}
