//! Keys and token builders shared by the JWT tests. Tokens are assembled here by hand, not
//! through [`SigningKey::sign`] alone, so tests can forge the headers and signatures an attacker
//! would send.

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaEncoding, RsaKeyPair};
use serde_json::{Value, json};

use super::{Jwk, SigningKey, b64_encode};

/// One ES256 key for the whole test run.
pub(crate) fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap().0)
}

/// One RSA-2048 key for the whole test run: generating one takes a noticeable fraction of a
/// second.
pub(crate) fn rsa_key() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

/// The JWK of an RSA key pair's public half.
pub(crate) fn rsa_jwk(pair: &RsaKeyPair) -> Jwk {
    let public = pair.public_key();
    Jwk {
        kty: "RSA".into(),
        n: Some(b64_encode(
            public.modulus().big_endian_without_leading_zero(),
        )),
        e: Some(b64_encode(
            public.exponent().big_endian_without_leading_zero(),
        )),
        ..Jwk::default()
    }
}

/// A compact JWS of `header` and `claims`, its signature made by `sign` over the signing
/// input.
pub(crate) fn assemble(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        b64_encode(header.to_string().as_bytes()),
        b64_encode(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64_encode(&signature))
}

/// A token over `claims` signed by [`signing_key`].
pub(crate) fn es256_token(claims: Value) -> String {
    signing_key().sign(claims.as_object().unwrap()).unwrap()
}

/// A token over `claims` signed by an RSA key with `padding`, its header naming `alg`.
pub(crate) fn rsa_token(
    pair: &RsaKeyPair,
    alg: &str,
    padding: &'static dyn RsaEncoding,
    claims: &Value,
) -> String {
    assemble(&json!({ "alg": alg, "typ": "JWT" }), claims, |input| {
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(padding, &SystemRandom::new(), input, &mut signature)
            .unwrap();
        signature
    })
}

/// Claims any test validation accepts at [`NOW`].
pub(crate) fn claims() -> Value {
    json!({ "iss": "issuer", "aud": "coffer", "exp": NOW + 300, "sub": "principal" })
}

pub(crate) const NOW: i64 = 1_700_000_000;
