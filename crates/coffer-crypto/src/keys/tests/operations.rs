//! Every algorithm's round trip, and the refusals of requests that do not fit the key.

use super::*;

#[test]
fn every_signature_algorithm_signs_and_verifies() {
    let rsa = rsa_2048().load().unwrap();
    let mut cases: Vec<(Sig, LoadedKey)> = Vec::new();
    for alg in Sig::ALL {
        let key = match alg.curve() {
            Some(curve) => ec(curve).load().unwrap(),
            None => rsa_2048().load().unwrap(),
        };
        cases.push((*alg, key));
    }
    assert_eq!(cases.len(), 10);
    for (alg, key) in &cases {
        let alg = *alg;
        let digest = digest_for(alg, b"message");
        let sig = key.sign(alg, &digest).unwrap();
        if let Some(curve) = alg.curve() {
            assert_eq!(sig.len(), 2 * ec::coordinate_len(curve), "{alg}: r || s");
        }
        assert!(key.verify(alg, &digest, &sig).unwrap(), "{alg}");

        let other = digest_for(alg, b"another message");
        assert!(
            !key.verify(alg, &other, &sig).unwrap(),
            "{alg}: other digest"
        );
        let mut flipped = sig.clone();
        flipped[sig.len() / 2] ^= 1;
        assert!(
            !key.verify(alg, &digest, &flipped).unwrap(),
            "{alg}: flipped"
        );
        assert!(
            !key.verify(alg, &digest, &sig[1..]).unwrap(),
            "{alg}: short"
        );
        assert!(!key.verify(alg, &digest, &[]).unwrap(), "{alg}: empty");
        assert!(
            !key.verify(alg, &digest, &[sig.clone(), vec![0]].concat())
                .unwrap(),
            "{alg}: long"
        );

        for len in [0, alg.digest_len() - 1, alg.digest_len() + 1, 20] {
            let wrong = vec![7u8; len];
            let expected = format!(
                "The digest is {len} bytes; {alg} signs a {}-byte digest.",
                alg.digest_len()
            );
            assert_eq!(message(key.sign(alg, &wrong).unwrap_err()), expected);
            assert_eq!(
                message(key.verify(alg, &wrong, &sig).unwrap_err()),
                expected
            );
        }
    }
    // A signature verifies only under the algorithm it was made with.
    let digest = digest_for(Sig::Rs256, b"m");
    let rs = rsa.sign(Sig::Rs256, &digest).unwrap();
    assert!(!rsa.verify(Sig::Ps256, &digest, &rs).unwrap());
    let ps = rsa.sign(Sig::Ps256, &digest).unwrap();
    assert!(!rsa.verify(Sig::Rs256, &digest, &ps).unwrap());
    // PKCS#1 v1.5 is deterministic; PSS and ECDSA are randomised.
    assert_eq!(rsa.sign(Sig::Rs256, &digest).unwrap(), rs);
    assert_ne!(rsa.sign(Sig::Ps256, &digest).unwrap(), ps);
}

#[test]
fn algorithms_must_match_the_key() {
    let p256 = ec(CurveName::P256).load().unwrap();
    let d48 = digest_for(Sig::Es384, b"m");
    assert_eq!(
        message(p256.sign(Sig::Es384, &d48).unwrap_err()),
        "Algorithm ES384 needs a P-384 key; this key is on P-256."
    );
    let d32 = digest_for(Sig::Es256, b"m");
    assert_eq!(
        message(p256.verify(Sig::Es256K, &d32, &[0; 64]).unwrap_err()),
        "Algorithm ES256K needs a P-256K key; this key is on P-256."
    );
    assert_eq!(
        message(p256.sign(Sig::Rs256, &d32).unwrap_err()),
        "Algorithm RS256 is not supported by a key of type EC."
    );
    let rsa = rsa_2048().load().unwrap();
    assert_eq!(
        message(rsa.sign(Sig::Es256, &d32).unwrap_err()),
        "Algorithm ES256 is not supported by a key of type RSA."
    );
    let aes = oct(256).load().unwrap();
    for alg in Sig::ALL {
        let d = digest_for(*alg, b"m");
        assert!(
            matches!(aes.sign(*alg, &d), Err(CryptoError::Key(_))),
            "{alg}"
        );
        assert!(
            matches!(aes.verify(*alg, &d, &[1]), Err(CryptoError::Key(_))),
            "{alg}"
        );
    }
    for alg in Enc::ALL {
        let err = message(p256.encrypt(*alg, b"data", None).unwrap_err());
        assert_eq!(
            err,
            format!("Algorithm {alg} is not supported by a key of type EC.")
        );
        assert!(p256.decrypt(*alg, &[0; 32], None, None, None).is_err());
        assert!(p256.wrap_key(*alg, &[0; 32]).is_err());
        assert!(p256.unwrap_key(*alg, &[0; 40]).is_err());
    }
    for alg in [Enc::A128Gcm, Enc::A256Kw] {
        assert_eq!(
            message(rsa.encrypt(alg, b"data", None).unwrap_err()),
            format!("Algorithm {alg} is not supported by a key of type RSA.")
        );
        assert!(rsa.wrap_key(alg, &[0; 32]).is_err());
    }
    for alg in [Enc::Rsa15, Enc::RsaOaep, Enc::RsaOaep256] {
        assert_eq!(
            message(aes.encrypt(alg, b"data", None).unwrap_err()),
            format!("Algorithm {alg} is not supported by a key of type oct.")
        );
        assert!(aes.unwrap_key(alg, &[0; 40]).is_err());
    }
}

#[test]
fn rsa_encryption_round_trips_and_limits() {
    let key = rsa_2048().load().unwrap();
    let public = PublicKey::from_jwk(&rsa_2048().public_jwk()).unwrap();
    // Maximum plaintext: k - 11 for PKCS#1 v1.5, k - 2·hLen - 2 for OAEP (RFC 8017 §7).
    for (alg, max) in [
        (Enc::Rsa15, 256 - 11),
        (Enc::RsaOaep, 256 - 2 * 20 - 2),
        (Enc::RsaOaep256, 256 - 2 * 32 - 2),
    ] {
        for len in [0, 1, 32, max] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let enc = key.encrypt(alg, &plaintext, None).unwrap();
            assert!(enc.iv.is_none() && enc.tag.is_none());
            assert_eq!(enc.ciphertext.len(), 256);
            let back = key.decrypt(alg, &enc.ciphertext, None, None, None).unwrap();
            assert_eq!(back.expose(), plaintext.as_slice(), "{alg} {len}");
            let by_public = public.encrypt(alg, &plaintext).unwrap();
            assert_ne!(
                by_public.ciphertext, enc.ciphertext,
                "{alg}: randomised padding"
            );
            let back = key.decrypt(alg, &by_public.ciphertext, None, None, None);
            assert_eq!(back.unwrap().expose(), plaintext.as_slice());

            if len >= 16 {
                let wrapped = key.wrap_key(alg, &plaintext).unwrap();
                assert_eq!(
                    key.unwrap_key(alg, &wrapped).unwrap().expose(),
                    &plaintext[..]
                );
                let wrapped = public.wrap_key(alg, &plaintext).unwrap();
                assert_eq!(
                    key.unwrap_key(alg, &wrapped).unwrap().expose(),
                    &plaintext[..]
                );
            }
        }
        let too_long = vec![1u8; max + 1];
        assert_eq!(
            message(key.encrypt(alg, &too_long, None).unwrap_err()),
            format!(
                "The plaintext is {} bytes; {alg} with this 2048-bit key encrypts at most \
                 {max} bytes.",
                max + 1
            )
        );
        let err = message(key.wrap_key(alg, &too_long).unwrap_err());
        assert!(err.starts_with("The key to wrap is"), "{err}");

        let enc = key.encrypt(alg, b"secret", None).unwrap();
        let generic = "The ciphertext could not be decrypted with this key.";
        for i in [0, 100, 255] {
            let mut bad = enc.ciphertext.clone();
            bad[i] ^= 0x01;
            // PKCS#1 v1.5 padding has no integrity: a flipped bit may still decrypt to other
            // bytes. It must never decrypt to the original plaintext.
            match key.decrypt(alg, &bad, None, None, None) {
                Err(err) => assert_eq!(message(err), generic, "{alg} flip at {i}"),
                Ok(p) => assert!(alg == Enc::Rsa15 && p.expose() != b"secret"),
            }
        }
        for len in [0, 255, 257] {
            let err = key
                .decrypt(alg, &vec![1u8; len], None, None, None)
                .unwrap_err();
            assert_eq!(message(err), generic, "{alg} length {len}");
        }
        let err = message(
            key.decrypt(alg, &enc.ciphertext, Some(&[0; 12]), None, None)
                .unwrap_err(),
        );
        assert!(err.contains("takes no iv"), "{err}");
        let err = message(key.encrypt(alg, b"x", Some(b"aad")).unwrap_err());
        assert!(err.contains("takes no iv"), "{err}");
    }
    // A ciphertext opens only under the padding it was made with.
    let oaep = key.encrypt(Enc::RsaOaep, b"secret", None).unwrap();
    assert!(
        key.decrypt(Enc::RsaOaep256, &oaep.ciphertext, None, None, None)
            .is_err()
    );
    // And only with its own key.
    let other = KeyMaterial::generate(&KeySpec::Rsa {
        bits: 2048,
        public_exponent: 65537,
    })
    .unwrap()
    .load()
    .unwrap();
    assert!(
        other
            .decrypt(Enc::RsaOaep, &oaep.ciphertext, None, None, None)
            .is_err()
    );
}

#[test]
fn aes_gcm_round_trips_and_refusals() {
    for (alg, bits) in [
        (Enc::A128Gcm, 128),
        (Enc::A192Gcm, 192),
        (Enc::A256Gcm, 256),
    ] {
        let key = oct(bits).load().unwrap();
        for (plaintext, aad) in [
            (&b""[..], None),
            (&b"attack at dawn"[..], None),
            (&b"attack at dawn"[..], Some(&b"header"[..])),
            (&[0x5a; 1000][..], Some(&b""[..])),
        ] {
            let enc = key.encrypt(alg, plaintext, aad).unwrap();
            let (iv, tag) = (enc.iv.clone().unwrap(), enc.tag.clone().unwrap());
            assert_eq!((iv.len(), tag.len()), (12, 16));
            assert_eq!(enc.ciphertext.len(), plaintext.len());
            let back = key
                .decrypt(alg, &enc.ciphertext, Some(&iv), Some(&tag), aad)
                .unwrap();
            assert_eq!(back.expose(), plaintext);
        }
        let aad = Some(&b"header"[..]);
        let enc = key.encrypt(alg, b"attack at dawn", aad).unwrap();
        let again = key.encrypt(alg, b"attack at dawn", aad).unwrap();
        assert_ne!(enc.iv, again.iv, "a fresh iv for every encryption");
        let (ct, iv, tag) = (&enc.ciphertext, enc.iv.as_deref(), enc.tag.as_deref());
        let invalid = "The ciphertext or its authentication tag is invalid.";
        let mut bad_ct = ct.clone();
        bad_ct[0] ^= 1;
        let mut bad_tag = tag.unwrap().to_vec();
        bad_tag[15] ^= 1;
        let mut bad_iv = iv.unwrap().to_vec();
        bad_iv[0] ^= 1;
        for (what, result) in [
            ("ciphertext", key.decrypt(alg, &bad_ct, iv, tag, aad)),
            ("tag", key.decrypt(alg, ct, iv, Some(&bad_tag), aad)),
            ("iv", key.decrypt(alg, ct, Some(&bad_iv), tag, aad)),
            ("aad", key.decrypt(alg, ct, iv, tag, Some(b"other"))),
            ("no aad", key.decrypt(alg, ct, iv, tag, None)),
        ] {
            assert_eq!(message(result.unwrap_err()), invalid, "{alg}: {what}");
        }
        let refusals = [
            (key.decrypt(alg, ct, None, tag, aad), "needs the iv"),
            (
                key.decrypt(alg, ct, iv, None, aad),
                "needs the authentication tag",
            ),
            (
                key.decrypt(alg, ct, Some(&[0; 16]), tag, aad),
                "The iv is 16 bytes",
            ),
            (
                key.decrypt(alg, ct, iv, Some(&[0; 12]), aad),
                "tag is 12 bytes",
            ),
        ];
        for (result, expected) in refusals {
            let err = message(result.unwrap_err());
            assert!(err.contains(expected), "{alg}: {err}");
        }
        let other = oct(bits).load().unwrap();
        assert!(other.decrypt(alg, ct, iv, tag, aad).is_err(), "another key");
        // The algorithm's key length must be the key's.
        for wrong in [Enc::A128Gcm, Enc::A192Gcm, Enc::A256Gcm] {
            if wrong != alg {
                let err = message(key.encrypt(wrong, b"x", None).unwrap_err());
                assert_eq!(
                    err,
                    format!(
                        "Algorithm {wrong} needs a {}-bit key; this key has {bits} bits.",
                        wrong.aes_key_len().unwrap() * 8
                    )
                );
            }
        }
        let too_big = vec![0u8; MAX_DATA_LEN + 1];
        assert!(message(key.encrypt(alg, &too_big, None).unwrap_err()).contains("at most"));
        assert!(key.wrap_key(alg, &[0; 32]).is_err(), "GCM does not wrap");
    }
}

#[test]
fn aes_key_wrap_round_trips_and_refusals() {
    for (alg, bits) in [(Enc::A128Kw, 128), (Enc::A192Kw, 192), (Enc::A256Kw, 256)] {
        let key = oct(bits).load().unwrap();
        for len in [16usize, 24, 32, 64, 512] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let wrapped = key.wrap_key(alg, &data).unwrap();
            assert_eq!(wrapped.len(), len + 8);
            assert_eq!(
                key.wrap_key(alg, &data).unwrap(),
                wrapped,
                "{alg}: deterministic"
            );
            assert_eq!(
                key.unwrap_key(alg, &wrapped).unwrap().expose(),
                data.as_slice()
            );
            let mut bad = wrapped.clone();
            bad[len / 2] ^= 1;
            assert_eq!(
                message(key.unwrap_key(alg, &bad).unwrap_err()),
                "The wrapped key could not be unwrapped with this key.",
                "{alg}"
            );
        }
        for len in [0, 8, 15, 17, 30] {
            let err = message(key.wrap_key(alg, &vec![1u8; len]).unwrap_err());
            assert!(
                err.starts_with(&format!("The key to wrap is {len} bytes")),
                "{err}"
            );
        }
        for len in [0, 16, 23, 25] {
            let err = message(key.unwrap_key(alg, &vec![1u8; len]).unwrap_err());
            assert!(
                err.starts_with(&format!("The wrapped key is {len} bytes")),
                "{err}"
            );
        }
        let wrapped = key.wrap_key(alg, &[3u8; 32]).unwrap();
        assert!(oct(bits).load().unwrap().unwrap_key(alg, &wrapped).is_err());
        for wrong in [Enc::A128Kw, Enc::A192Kw, Enc::A256Kw] {
            if wrong != alg {
                assert!(key.wrap_key(wrong, &[0; 32]).is_err(), "{alg} key, {wrong}");
                assert!(
                    key.unwrap_key(wrong, &wrapped).is_err(),
                    "{alg} key, {wrong}"
                );
            }
        }
        let err = message(key.encrypt(alg, b"data", None).unwrap_err());
        assert!(err.contains("wraps keys"), "{err}");
    }
}
