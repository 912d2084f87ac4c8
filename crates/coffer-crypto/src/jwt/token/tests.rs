use aws_lc_rs::hmac;
use aws_lc_rs::signature;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
use serde_json::json;

use super::*;
use crate::jwt::test_support::{
    NOW, assemble, claims, es256_token, rsa_jwk, rsa_key, rsa_token, signing_key,
};
use crate::jwt::{Jwk, SigningKey, Validation, b64_encode};

fn validation() -> Validation {
    Validation::new("issuer", "coffer", NOW)
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

#[test]
fn es256_sign_then_verify_round_trip() {
    let key = signing_key();
    let token = es256_token(claims());
    let jwt = Jwt::parse(&token).unwrap();
    assert_eq!(jwt.header().alg, "ES256");
    assert_eq!(jwt.header().typ.as_deref(), Some("JWT"));
    assert_eq!(jwt.header().kid.as_deref(), Some(key.kid()));
    assert_eq!(jwt.unverified_issuer(), Some("issuer"));
    assert_eq!(jwt.claims().get("sub"), Some(&json!("principal")));
    assert_eq!(jwt.verify(&key.verifying_key()), Ok(()));
    // Through the published JWK, as a relying party would.
    let published = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
    assert_eq!(jwt.verify(&published), Ok(()));
    assert_eq!(jwt.validate(&validation()), Ok(()));
    // The signature is the fixed 64-byte r‖s form JWS requires, not DER.
    assert_eq!(b64_decode(&parts(&token)[2]).unwrap().len(), 64);
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let token = es256_token(claims());
    let p = parts(&token);
    let mut forged_claims = claims();
    forged_claims["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        p[0],
        b64_encode(forged_claims.to_string().as_bytes()),
        p[2]
    );
    let jwt = Jwt::parse(&forged).unwrap();
    assert_eq!(jwt.claims().get("sub"), Some(&json!("admin")));
    assert_eq!(
        jwt.verify(&signing_key().verifying_key()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn tampered_signature_is_a_bad_signature() {
    let token = es256_token(claims());
    let p = parts(&token);
    let mut signature = b64_decode(&p[2]).unwrap();
    signature[10] ^= 0x01;
    let key = signing_key().verifying_key();
    let flipped = format!("{}.{}.{}", p[0], p[1], b64_encode(&signature));
    assert_eq!(
        Jwt::parse(&flipped).unwrap().verify(&key),
        Err(JwtError::BadSignature)
    );
    let truncated = format!("{}.{}.{}", p[0], p[1], b64_encode(&signature[..63]));
    assert_eq!(
        Jwt::parse(&truncated).unwrap().verify(&key),
        Err(JwtError::BadSignature)
    );
    let empty = format!("{}.{}.", p[0], p[1]);
    assert_eq!(
        Jwt::parse(&empty).unwrap().verify(&key),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn alg_none_is_refused() {
    let token = assemble(&json!({ "alg": "none", "typ": "JWT" }), &claims(), |_| {
        Vec::new()
    });
    assert!(token.ends_with('.'));
    let jwt = Jwt::parse(&token).unwrap();
    for key in [
        signing_key().verifying_key(),
        VerifyingKey::from_jwk(&rsa_jwk(rsa_key())).unwrap(),
    ] {
        assert_eq!(
            jwt.verify(&key),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    // The classic confusion: a verifier that takes `alg` from the header and the "key" from
    // its configuration would check this HMAC with the public key as secret, and accept it.
    let key = signing_key();
    let jwk = key.public_jwk();
    let point = [
        vec![0x04],
        b64_decode(jwk.x.as_deref().unwrap()).unwrap(),
        b64_decode(jwk.y.as_deref().unwrap()).unwrap(),
    ]
    .concat();
    let jwk_json = serde_json::to_vec(&jwk).unwrap();
    for secret in [point, jwk_json] {
        for alg in ["HS256", "HS384", "HS512"] {
            let mac_alg = match alg {
                "HS256" => hmac::HMAC_SHA256,
                "HS384" => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            let header = json!({ "alg": alg, "typ": "JWT", "kid": key.kid() });
            let token = assemble(&header, &claims(), |input| {
                hmac::sign(&hmac::Key::new(mac_alg, &secret), input)
                    .as_ref()
                    .to_vec()
            });
            assert_eq!(
                Jwt::parse(&token).unwrap().verify(&key.verifying_key()),
                Err(JwtError::UnsupportedAlgorithm(alg.into()))
            );
        }
    }
}

#[test]
fn a_token_signed_by_another_key_is_a_bad_signature() {
    let (other, _) = SigningKey::generate().unwrap();
    let token = other.sign(claims().as_object().unwrap()).unwrap();
    assert_eq!(
        Jwt::parse(&token)
            .unwrap()
            .verify(&signing_key().verifying_key()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn rs256_and_ps256_verify_against_an_rsa_jwk() {
    let pair = rsa_key();
    let key = VerifyingKey::from_jwk(&rsa_jwk(pair)).unwrap();
    assert_eq!(key.algorithms(), Algorithm::RSA);
    let cases: [(&str, &'static dyn signature::RsaEncoding); 6] = [
        ("RS256", &signature::RSA_PKCS1_SHA256),
        ("RS384", &signature::RSA_PKCS1_SHA384),
        ("RS512", &signature::RSA_PKCS1_SHA512),
        ("PS256", &signature::RSA_PSS_SHA256),
        ("PS384", &signature::RSA_PSS_SHA384),
        ("PS512", &signature::RSA_PSS_SHA512),
    ];
    for (alg, padding) in cases {
        let token = rsa_token(pair, alg, padding, &claims());
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(jwt.verify(&key), Ok(()), "{alg}");
        assert_eq!(jwt.validate(&validation()), Ok(()), "{alg}");
    }
    // The header's algorithm is the one used: a PKCS#1 signature labelled PS256 fails.
    let mislabelled = rsa_token(pair, "PS256", &signature::RSA_PKCS1_SHA256, &claims());
    assert_eq!(
        Jwt::parse(&mislabelled).unwrap().verify(&key),
        Err(JwtError::BadSignature)
    );
    // An ES256 token is not checked against an RSA key at all.
    let es = Jwt::parse(&es256_token(claims())).unwrap();
    assert_eq!(es.verify(&key), Err(JwtError::KeyAlgorithmMismatch));
}

#[test]
fn a_jwk_naming_an_alg_allows_only_that_alg() {
    let pair = rsa_key();
    let jwk = Jwk {
        alg: Some("PS256".into()),
        ..rsa_jwk(pair)
    };
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(key.algorithms(), [Algorithm::Ps256]);
    let ps = rsa_token(pair, "PS256", &signature::RSA_PSS_SHA256, &claims());
    assert_eq!(Jwt::parse(&ps).unwrap().verify(&key), Ok(()));
    let rs = rsa_token(pair, "RS256", &signature::RSA_PKCS1_SHA256, &claims());
    assert_eq!(
        Jwt::parse(&rs).unwrap().verify(&key),
        Err(JwtError::KeyAlgorithmMismatch)
    );
}

#[test]
fn es384_verifies_against_a_p384_jwk() {
    let pair =
        signature::EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let point = signature::KeyPair::public_key(&pair).as_ref().to_vec();
    assert_eq!(point.len(), 97);
    let jwk = Jwk {
        kty: "EC".into(),
        crv: Some("P-384".into()),
        x: Some(b64_encode(&point[1..49])),
        y: Some(b64_encode(&point[49..])),
        ..Jwk::default()
    };
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(key.algorithms(), [Algorithm::Es384]);
    let sign = |input: &[u8]| {
        pair.sign(&aws_lc_rs::rand::SystemRandom::new(), input)
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let token = assemble(&json!({ "alg": "ES384" }), &claims(), sign);
    let jwt = Jwt::parse(&token).unwrap();
    assert_eq!(jwt.verify(&key), Ok(()));
    assert_eq!(
        jwt.verify(&signing_key().verifying_key()),
        Err(JwtError::KeyAlgorithmMismatch)
    );
    // The same signature claimed as ES256 does not pass the P-384 key.
    let p = parts(&token);
    let relabelled = format!("{}.{}.{}", b64_encode(br#"{"alg":"ES256"}"#), p[1], p[2]);
    assert_eq!(
        Jwt::parse(&relabelled).unwrap().verify(&key),
        Err(JwtError::KeyAlgorithmMismatch)
    );
}

#[test]
fn malformed_tokens_are_refused() {
    let token = es256_token(claims());
    let p = parts(&token);
    let malformed = |t: &str| matches!(Jwt::parse(t), Err(JwtError::Malformed(_)));

    assert!(malformed(&format!("{}.{}", p[0], p[1])));
    assert!(malformed(&format!("{token}.{}", p[2])));
    assert!(malformed(""));
    assert!(malformed(".."));
    // Oversized, even though otherwise well-formed.
    let mut big = claims();
    big["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
    assert!(malformed(&es256_token(big)));
    // Padding and the standard alphabet are not base64url-without-padding. The header is
    // chosen so that its encoding needs padding and uses the alphabets' differing characters;
    // unpadded base64url of it parses, so what is refused below is the encoding alone.
    let header_json = br#"{"alg":"ES256","kid":"????"}"#;
    let url = b64_encode(header_json);
    assert!(url.contains('_'));
    assert!(Jwt::parse(&format!("{url}.{}.{}", p[1], p[2])).is_ok());
    let padded = URL_SAFE.encode(header_json);
    assert!(padded.ends_with('='));
    assert!(malformed(&format!("{padded}.{}.{}", p[1], p[2])));
    let standard = STANDARD_NO_PAD.encode(header_json);
    assert!(standard.contains('/'));
    assert!(malformed(&format!("{standard}.{}.{}", p[1], p[2])));
    assert!(malformed(&format!("{}.{}.{}=", p[0], p[1], p[2])));
    assert!(malformed(&format!("{}.{}.{}", p[0], p[1], "a+b/")));
    // JSON, but not an object; an object without a string alg; crit.
    let enc = |v: serde_json::Value| b64_encode(v.to_string().as_bytes());
    assert!(malformed(&format!(
        "{}.{}.{}",
        enc(json!(["ES256"])),
        p[1],
        p[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}",
        p[0],
        enc(json!("claims")),
        p[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}",
        enc(json!({ "typ": "JWT" })),
        p[1],
        p[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}",
        enc(json!({ "alg": 256 })),
        p[1],
        p[2]
    )));
    let crit = json!({ "alg": "ES256", "crit": ["exp"], "exp": 1 });
    assert!(malformed(&format!("{}.{}.{}", enc(crit), p[1], p[2])));
    // Not JSON at all.
    assert!(malformed(&format!(
        "{}.{}.{}",
        b64_encode(b"{"),
        p[1],
        p[2]
    )));
}

#[test]
fn error_messages_and_debug_carry_no_token_text() {
    let token = es256_token(claims());
    let p = parts(&token);
    let jwt = Jwt::parse(&token).unwrap();
    let shown = format!("{jwt:?}");
    assert!(!shown.contains(&p[2]), "{shown}");
    assert!(!shown.contains("principal"), "{shown}");
    assert!(shown.contains("ES256"), "{shown}");
    let forged = format!("{}.{}.{}", p[0], p[1], &p[2][..p[2].len() - 4]);
    for bad in [
        format!("{}.{}", p[0], p[1]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        forged.clone(),
    ] {
        let message = match Jwt::parse(&bad) {
            Err(e) => e.to_string(),
            Ok(jwt) => jwt
                .verify(&signing_key().verifying_key())
                .unwrap_err()
                .to_string(),
        };
        for part in &p {
            assert!(!message.contains(part.as_str()), "{message}");
        }
    }
}
