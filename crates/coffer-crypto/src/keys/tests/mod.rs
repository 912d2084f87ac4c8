//! Unit tests across the key families: generation, the stored form, public JWKs, import and
//! `Debug` here; every algorithm's round trip and refusals in `operations`. Cross-implementation
//! and Wycheproof checks are in `tests/keys_cross.rs` and `tests/keys_wycheproof.rs`.

use std::sync::OnceLock;

use aws_lc_rs::digest;
use coffer_types::SignatureAlgorithm as Sig;
use coffer_types::{CurveName, EncryptionAlgorithm as Enc, JsonWebKey, KeyFamily, KeyType};

use super::*;

mod operations;

fn rsa_2048() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| {
        KeyMaterial::generate(&KeySpec::Rsa {
            bits: 2048,
            public_exponent: 65537,
        })
        .unwrap()
    })
}

fn ec(curve: CurveName) -> KeyMaterial {
    KeyMaterial::generate(&KeySpec::Ec { curve }).unwrap()
}

fn oct(bits: u32) -> KeyMaterial {
    KeyMaterial::generate(&KeySpec::Oct { bits }).unwrap()
}

/// A real digest of `message` with the algorithm's hash.
fn digest_for(alg: Sig, message: &[u8]) -> Vec<u8> {
    let hash = match alg.digest_len() {
        32 => &digest::SHA256,
        48 => &digest::SHA384,
        _ => &digest::SHA512,
    };
    digest::digest(hash, message).as_ref().to_vec()
}

fn message(err: CryptoError) -> String {
    match err {
        CryptoError::Key(m) => m,
        other => panic!("expected a Key error, got {other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The private JWK of an RSA material, read from its stored PKCS#8.
fn rsa_private_jwk(material: &KeyMaterial) -> JsonWebKey {
    let stored = material.to_bytes();
    let parts = rsa::tests::pkcs8_rsa_parts(&stored.expose()[2..]);
    let [n, e, d, p, q, dp, dq, qi] = <[Vec<u8>; 8]>::try_from(parts).unwrap();
    {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Rsa);
        built.n = Some(n);
        built.e = Some(e);
        built.d = Some(d);
        built.p = Some(p);
        built.q = Some(q);
        built.dp = Some(dp);
        built.dq = Some(dq);
        built.qi = Some(qi);
        built
    }
}

fn assert_round_trips(material: &KeyMaterial) {
    let bytes = material.to_bytes();
    let back = KeyMaterial::from_bytes(bytes.expose()).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.public_jwk(), material.public_jwk());
    assert_eq!(back.family(), material.family());
    assert_eq!(back.key_size(), material.key_size());
    assert_eq!(back.curve(), material.curve());
}
#[test]
fn rsa_keys_of_each_size() {
    for bits in [2048u32, 3072, 4096] {
        let key = if bits == 2048 {
            rsa_2048().clone()
        } else {
            KeyMaterial::generate(&KeySpec::Rsa {
                bits,
                public_exponent: 0,
            })
            .unwrap()
        };
        assert_eq!(key.family(), KeyFamily::Rsa);
        assert_eq!(key.key_size(), Some(bits));
        assert_eq!(key.curve(), None);
        let jwk = key.public_jwk();
        assert_eq!(jwk.kty, Some(KeyType::Rsa));
        assert_eq!(jwk.n.as_ref().unwrap().len() * 8, bits as usize);
        assert!(
            jwk.n.as_ref().unwrap()[0] & 0x80 != 0,
            "n has its top bit set"
        );
        assert_eq!(jwk.e.as_deref(), Some(&[1u8, 0, 1][..]));
        assert!(!jwk.has_private_parts() && jwk.kid.is_none() && jwk.key_ops.is_empty());
        assert!(jwk.crv.is_none() && jwk.x.is_none() && jwk.k.is_none());
        assert_eq!(key.to_bytes().expose()[..2], [1, 1]);
        assert_round_trips(&key);
        let loaded = key.load().unwrap();
        let digest = digest_for(Sig::Ps512, b"sized");
        let sig = loaded.sign(Sig::Ps512, &digest).unwrap();
        assert_eq!(sig.len() * 8, bits as usize);
        assert!(loaded.verify(Sig::Ps512, &digest, &sig).unwrap());
    }
}

#[test]
fn ec_keys_on_each_curve() {
    for (curve, len, id) in [
        (CurveName::P256, 32, 1),
        (CurveName::P256K, 32, 2),
        (CurveName::P384, 48, 3),
        (CurveName::P521, 66, 4),
    ] {
        let key = ec(curve);
        assert_eq!(key.family(), KeyFamily::Ec);
        assert_eq!(key.key_size(), None);
        assert_eq!(key.curve(), Some(curve));
        let jwk = key.public_jwk();
        assert_eq!(jwk.kty, Some(KeyType::Ec));
        assert_eq!(jwk.crv, Some(curve));
        assert_eq!(jwk.x.as_ref().unwrap().len(), len, "{curve}");
        assert_eq!(jwk.y.as_ref().unwrap().len(), len, "{curve}");
        assert!(!jwk.has_private_parts() && jwk.n.is_none() && jwk.kid.is_none());
        assert_eq!(key.to_bytes().expose()[..3], [1, 2, id]);
        assert_round_trips(&key);
        assert_ne!(ec(curve).public_jwk(), jwk, "two keys differ");
    }
}

#[test]
fn oct_keys_of_each_size() {
    for bits in [128u32, 192, 256] {
        let key = oct(bits);
        assert_eq!(key.family(), KeyFamily::Oct);
        assert_eq!(key.key_size(), Some(bits));
        assert_eq!(key.curve(), None);
        assert_eq!(key.public_jwk(), {
            let mut built = JsonWebKey::default();
            built.kty = Some(KeyType::Oct);
            built
        });
        let bytes = key.to_bytes();
        assert_eq!(bytes.expose()[..2], [1, 3]);
        assert_eq!(bytes.len(), 2 + bits as usize / 8);
        assert_round_trips(&key);
        assert_ne!(oct(bits).to_bytes(), bytes, "two keys differ");
    }
    for bits in [0, 64, 127, 512] {
        let err = message(KeyMaterial::generate(&KeySpec::Oct { bits }).unwrap_err());
        assert!(err.contains("128, 192 or 256"), "{err}");
    }
}

#[test]
fn damaged_stored_material_is_refused() {
    let rsa = rsa_2048().to_bytes();
    let ec = ec(CurveName::P384).to_bytes();
    let mut bad_curve = ec.expose().to_vec();
    bad_curve[2] = 9;
    let mut other_curve = ec.expose().to_vec();
    other_curve[2] = 1;
    let mut other_version = rsa.expose().to_vec();
    other_version[0] = 2;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("format only", vec![1]),
        ("unknown family", vec![1, 4, 0, 0]),
        ("other version", other_version),
        ("truncated RSA", rsa.expose()[..rsa.len() / 2].to_vec()),
        ("EC as RSA", [&[1, 1][..], &ec.expose()[3..]].concat()),
        ("unknown curve", bad_curve),
        ("P-384 DER as P-256", other_curve),
        (
            "short oct",
            vec![1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (what, bytes) in cases {
        let err = KeyMaterial::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, CryptoError::Unseal), "{what}: {err:?}");
    }
}
#[test]
fn import_dispatches_on_kty() {
    let missing = {
        let mut built = JsonWebKey::default();
        built.k = Some(vec![0; 16]);
        built
    };
    assert_eq!(
        message(KeyMaterial::import(&missing).unwrap_err()),
        "The key to import has no kty."
    );
    for (len, ok) in [
        (16, true),
        (24, true),
        (32, true),
        (0, false),
        (20, false),
        (64, false),
    ] {
        let jwk = {
            let mut built = JsonWebKey::default();
            built.kty = Some(KeyType::OctHsm);
            built.k = Some(vec![9u8; len]);
            built
        };
        let result = KeyMaterial::import(&jwk);
        assert_eq!(result.is_ok(), ok, "{len}");
        if let Ok(key) = result {
            assert_eq!(key.key_size(), Some(len as u32 * 8));
            assert_eq!(&key.to_bytes().expose()[2..], &vec![9u8; len][..]);
        }
    }
    // An RSA import of a generated key's own parts gives back its public key.
    let jwk = rsa_private_jwk(rsa_2048());
    let imported = KeyMaterial::import(&jwk).unwrap();
    assert_eq!(imported.public_jwk(), rsa_2048().public_jwk());
    let digest = digest_for(Sig::Rs384, b"m");
    let sig = imported.load().unwrap().sign(Sig::Rs384, &digest).unwrap();
    assert!(
        rsa_2048()
            .load()
            .unwrap()
            .verify(Sig::Rs384, &digest, &sig)
            .unwrap()
    );
    // An RSA JWK sent as kty EC is read as EC, and refused as such.
    let as_ec = {
        let mut built = jwk.clone();
        built.kty = Some(KeyType::Ec);
        built
    };
    let err = message(KeyMaterial::import(&as_ec).unwrap_err());
    assert!(err.contains("EC key import needs crv, x, y and d"), "{err}");
    let public_only = rsa_2048().public_jwk();
    let err = message(KeyMaterial::import(&public_only).unwrap_err());
    assert!(err.ends_with("the key lacks d, p, q, dp, dq, qi."), "{err}");
    let small = {
        let mut built = jwk;
        built.n = Some(vec![0xff; 128]);
        built
    };
    let err = message(KeyMaterial::import(&small).unwrap_err());
    assert_eq!(
        err,
        "Coffer accepts RSA keys of 2048 to 4096 bits; this key has 1024 bits."
    );
}

#[test]
fn public_keys_verify_and_encrypt_like_loaded_keys() {
    for material in [
        rsa_2048().clone(),
        ec(CurveName::P521),
        ec(CurveName::P256K),
    ] {
        let loaded = material.load().unwrap();
        let public = PublicKey::from_jwk(&material.public_jwk()).unwrap();
        assert_eq!(public.family(), material.family());
        let alg = match material.curve() {
            Some(CurveName::P521) => Sig::Es512,
            Some(_) => Sig::Es256K,
            None => Sig::Ps384,
        };
        let digest = digest_for(alg, b"m");
        let sig = loaded.sign(alg, &digest).unwrap();
        assert!(public.verify(alg, &digest, &sig).unwrap());
        assert!(!public.verify(alg, &digest_for(alg, b"n"), &sig).unwrap());
    }
    let oct_jwk = {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Oct);
        built.k = Some(vec![0; 16]);
        built
    };
    assert!(PublicKey::from_jwk(&oct_jwk).is_err());
    let ec_public = PublicKey::from_jwk(&ec(CurveName::P256).public_jwk()).unwrap();
    assert!(ec_public.encrypt(Enc::RsaOaep, b"x").is_err());
}

#[test]
fn debug_output_holds_no_key_bytes() {
    let keys = [rsa_2048().clone(), ec(CurveName::P256), oct(256)];
    for key in keys {
        let stored = key.to_bytes();
        let loaded = key.load().unwrap();
        let outputs = [
            format!("{key:?}"),
            format!("{loaded:?}"),
            format!("{stored:?}"),
        ];
        // The private material is at the end of each stored form (the key, or the end of the
        // DER); every 6-byte window of it must be absent in hex and in Rust's list form.
        let tail = &stored.expose()[stored.len() - 16..];
        for window in tail.windows(6) {
            let list = format!("{window:?}");
            let list = list.trim_end_matches(']');
            for out in &outputs {
                assert!(!out.contains(&hex(window)), "{out}");
                assert!(!out.contains(list), "{out}");
            }
        }
        assert!(outputs[0].contains("family") && outputs[1].contains("family"));
        assert!(outputs.iter().all(|o| o.len() < 120), "{outputs:?}");
    }
    let aes = oct(128).load().unwrap();
    let enc = aes
        .encrypt(Enc::A128Gcm, b"plaintext bytes!", None)
        .unwrap();
    let debug = format!("{enc:?}");
    assert_eq!(
        debug,
        "Encrypted { ciphertext_len: 16, iv_len: Some(12), tag_len: Some(16) }"
    );
}

#[test]
fn loaded_keys_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoadedKey>();
    assert_send_sync::<PublicKey>();
    assert_send_sync::<KeyMaterial>();
    let key = std::sync::Arc::new(ec(CurveName::P384).load().unwrap());
    let digest = digest_for(Sig::Es384, b"threads");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let key = key.clone();
            let digest = digest.clone();
            std::thread::spawn(move || key.sign(Sig::Es384, &digest).unwrap())
        })
        .collect();
    for handle in handles {
        let sig = handle.join().unwrap();
        assert!(key.verify(Sig::Es384, &digest, &sig).unwrap());
    }
}
