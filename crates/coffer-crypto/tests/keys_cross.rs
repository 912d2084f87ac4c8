//! Cross-checks of `coffer_crypto::keys` with an independent implementation, Python
//! `cryptography` (OpenSSL), in both directions: signatures made by Coffer verify there and
//! theirs verify in Coffer; ciphertexts and wrapped keys made on either side open on the other;
//! keys generated there import into Coffer with the same public parts.
//!
//! The Python side is `tests/support/keys_cross.py`, run with the interpreter of the project's
//! virtual environment (`$COFFER_VENV/bin/python`, default `/var/tmp/coffer-venv`), which
//! `scripts/install-python-deps` creates with `cryptography` in it. Without it these tests
//! fail: they are part of what CI checks, not optional.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_crypto::keys::{KeyMaterial, KeySpec, LoadedKey, PublicKey};
use coffer_types::SignatureAlgorithm as Sig;
use coffer_types::{CurveName, EncryptionAlgorithm as Enc, JsonWebKey, KeyType};
use serde_json::{Value, json};

const RSA_SIGNATURES: [Sig; 6] = [
    Sig::Rs256,
    Sig::Rs384,
    Sig::Rs512,
    Sig::Ps256,
    Sig::Ps384,
    Sig::Ps512,
];
const EC_SIGNATURES: [(Sig, CurveName); 4] = [
    (Sig::Es256, CurveName::P256),
    (Sig::Es256K, CurveName::P256K),
    (Sig::Es384, CurveName::P384),
    (Sig::Es512, CurveName::P521),
];
const RSA_ENCRYPTIONS: [Enc; 3] = [Enc::Rsa15, Enc::RsaOaep, Enc::RsaOaep256];

fn python() -> PathBuf {
    let venv = std::env::var("COFFER_VENV").unwrap_or_else(|_| "/var/tmp/coffer-venv".into());
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: the key cross-checks need Python with `cryptography` \
         (run scripts/install-python-deps, or set COFFER_VENV)",
        python.display()
    );
    python
}

/// Runs the requests through the Python side; one response for each.
fn run(requests: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/keys_cross.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(requests).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Python side failed (is `cryptography` installed?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let responses: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(responses.len(), requests.len());
    responses
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn bytes(value: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(
            value
                .as_str()
                .unwrap_or_else(|| panic!("not a string: {value}")),
        )
        .unwrap()
}

fn jwk_json(jwk: &JsonWebKey) -> Value {
    serde_json::to_value(jwk).unwrap()
}

fn digest_for(alg: Sig, message: &[u8]) -> Vec<u8> {
    let hash = match alg.digest_len() {
        32 => &digest::SHA256,
        48 => &digest::SHA384,
        _ => &digest::SHA512,
    };
    digest::digest(hash, message).as_ref().to_vec()
}

fn random(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    coffer_crypto::fill_random(&mut out).unwrap();
    out
}

fn generate(spec: KeySpec) -> KeyMaterial {
    KeyMaterial::generate(&spec).unwrap()
}

fn rsa_2048() -> KeyMaterial {
    generate(KeySpec::Rsa {
        bits: 2048,
        public_exponent: 65537,
    })
}

fn oct_key(k: &[u8]) -> LoadedKey {
    let jwk = {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Oct);
        built.k = Some(k.to_vec());
        built
    };
    KeyMaterial::import(&jwk).unwrap().load().unwrap()
}

/// Coffer signs; Python verifies the signature against the right digest (true) and a wrong one
/// (false, so the check on the other side is not vacuous).
#[test]
fn coffer_signatures_verify_in_python() {
    let rsa = rsa_2048();
    let mut cases: Vec<(Sig, KeyMaterial)> = RSA_SIGNATURES
        .iter()
        .map(|alg| (*alg, rsa.clone()))
        .collect();
    for (alg, curve) in EC_SIGNATURES {
        cases.push((alg, generate(KeySpec::Ec { curve })));
    }
    let mut requests = Vec::new();
    for (alg, material) in &cases {
        let digest = digest_for(*alg, b"signed by coffer");
        let signature = material.load().unwrap().sign(*alg, &digest).unwrap();
        for digest in [digest, digest_for(*alg, b"something else")] {
            requests.push(json!({
                "op": "verify",
                "jwk": jwk_json(&material.public_jwk()),
                "alg": alg.as_str(),
                "digest": b64(&digest),
                "signature": b64(&signature),
            }));
        }
    }
    let responses = run(&requests);
    for ((alg, _), pair) in cases.iter().zip(responses.chunks(2)) {
        assert_eq!(pair[0]["valid"], json!(true), "{alg}: Coffer's signature");
        assert_eq!(pair[1]["valid"], json!(false), "{alg}: with another digest");
    }
}

/// Python generates keys; Coffer imports them (same public parts), verifies Python's
/// signatures (and refuses them on another digest), and signs with the imported key for
/// Python to verify.
#[test]
fn python_keys_import_and_signatures_verify_in_coffer() {
    let mut requests = vec![json!({"op": "generate_rsa", "bits": 3072})];
    for (_, curve) in EC_SIGNATURES {
        requests.push(json!({"op": "generate_ec", "crv": curve.as_str()}));
    }
    let generated = run(&requests);
    let mut cases: Vec<(Sig, JsonWebKey)> = Vec::new();
    let rsa_jwk: JsonWebKey = serde_json::from_value(generated[0]["jwk"].clone()).unwrap();
    for alg in RSA_SIGNATURES {
        cases.push((alg, rsa_jwk.clone()));
    }
    for ((alg, _), response) in EC_SIGNATURES.iter().zip(&generated[1..]) {
        cases.push((
            *alg,
            serde_json::from_value(response["jwk"].clone()).unwrap(),
        ));
    }

    let mut requests = Vec::new();
    let mut imported = Vec::new();
    for (alg, jwk) in &cases {
        let material = KeyMaterial::import(jwk).unwrap();
        let public = material.public_jwk();
        assert_eq!(
            (&public.n, &public.e, public.crv, &public.x, &public.y),
            (&jwk.n, &jwk.e, jwk.crv, &jwk.x, &jwk.y),
            "{alg}: the imported key's public parts"
        );
        match alg.curve() {
            Some(curve) => assert_eq!(material.curve(), Some(curve)),
            None => assert_eq!(material.key_size(), Some(3072)),
        }
        let digest = digest_for(*alg, b"signed by python");
        requests.push(json!({
            "op": "sign", "jwk": jwk_json(jwk), "alg": alg.as_str(), "digest": b64(&digest),
        }));
        let ours = material.load().unwrap().sign(*alg, &digest).unwrap();
        requests.push(json!({
            "op": "verify", "jwk": jwk_json(&jwk.public_only()), "alg": alg.as_str(),
            "digest": b64(&digest), "signature": b64(&ours),
        }));
        imported.push((material.load().unwrap(), digest));
    }
    let responses = run(&requests);
    for (((alg, jwk), (loaded, digest)), pair) in
        cases.iter().zip(&imported).zip(responses.chunks(2))
    {
        let theirs = bytes(&pair[0]["signature"]);
        assert!(
            loaded.verify(*alg, digest, &theirs).unwrap(),
            "{alg}: Python's signature"
        );
        let public = PublicKey::from_jwk(&jwk.public_only()).unwrap();
        assert!(
            public.verify(*alg, digest, &theirs).unwrap(),
            "{alg}: by the public key"
        );
        let other = digest_for(*alg, b"something else");
        assert!(
            !loaded.verify(*alg, &other, &theirs).unwrap(),
            "{alg}: another digest"
        );
        assert_eq!(
            pair[1]["valid"],
            json!(true),
            "{alg}: the imported key's signature"
        );
    }
}

/// RSA1_5, RSA-OAEP and RSA-OAEP-256 across: Python encrypts to Coffer's key and Coffer
/// decrypts; Coffer encrypts (and wraps) to a Python key it imported and Python decrypts.
#[test]
fn rsa_ciphertexts_open_on_the_other_side() {
    let coffer_key = rsa_2048();
    let loaded = coffer_key.load().unwrap();
    let python_jwk: JsonWebKey = serde_json::from_value(
        run(&[json!({"op": "generate_rsa", "bits": 2048})])[0]["jwk"].clone(),
    )
    .unwrap();
    let imported = KeyMaterial::import(&python_jwk).unwrap().load().unwrap();

    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for alg in RSA_ENCRYPTIONS {
        for len in [1usize, 32, 190] {
            let plaintext = random(len);
            requests.push(json!({
                "op": "encrypt", "jwk": jwk_json(&coffer_key.public_jwk()), "alg": alg.as_str(),
                "plaintext": b64(&plaintext),
            }));
            let ciphertext = imported.encrypt(alg, &plaintext, None).unwrap().ciphertext;
            requests.push(json!({
                "op": "decrypt", "jwk": jwk_json(&python_jwk), "alg": alg.as_str(),
                "ciphertext": b64(&ciphertext),
            }));
            let wrapped = imported.wrap_key(alg, &plaintext).unwrap();
            requests.push(json!({
                "op": "decrypt", "jwk": jwk_json(&python_jwk), "alg": alg.as_str(),
                "ciphertext": b64(&wrapped),
            }));
            expected.push((alg, plaintext));
        }
    }
    let responses = run(&requests);
    for ((alg, plaintext), triple) in expected.iter().zip(responses.chunks(3)) {
        let theirs = bytes(&triple[0]["ciphertext"]);
        let opened = loaded.decrypt(*alg, &theirs, None, None, None).unwrap();
        assert_eq!(
            opened.expose(),
            plaintext.as_slice(),
            "{alg}: Python's ciphertext"
        );
        let unwrapped = loaded.unwrap_key(*alg, &theirs).unwrap();
        assert_eq!(
            unwrapped.expose(),
            plaintext.as_slice(),
            "{alg}: as a wrapped key"
        );
        assert_eq!(
            bytes(&triple[1]["plaintext"]),
            *plaintext,
            "{alg}: Coffer's ciphertext"
        );
        assert_eq!(
            bytes(&triple[2]["plaintext"]),
            *plaintext,
            "{alg}: Coffer's wrapped key"
        );
    }
    // The other side is not vacuous: Coffer's OAEP ciphertext does not open as OAEP-256.
    let ciphertext = imported
        .encrypt(Enc::RsaOaep, b"x", None)
        .unwrap()
        .ciphertext;
    let response = run(&[json!({
        "op": "decrypt", "jwk": jwk_json(&python_jwk), "alg": "RSA-OAEP-256",
        "ciphertext": b64(&ciphertext),
    })]);
    assert!(response[0].get("error").is_some(), "{}", response[0]);
}

/// AES-GCM across, with and without additional data, for each key size.
#[test]
fn aes_gcm_ciphertexts_open_on_the_other_side() {
    let mut requests = Vec::new();
    let mut cases = Vec::new();
    for (alg, len) in [(Enc::A128Gcm, 16), (Enc::A192Gcm, 24), (Enc::A256Gcm, 32)] {
        for aad in [None, Some(random(20))] {
            let k = random(len);
            let key = oct_key(&k);
            let jwk = json!({"kty": "oct", "k": b64(&k)});
            let plaintext = random(100);
            let ours = key.encrypt(alg, &plaintext, aad.as_deref()).unwrap();
            let aad_json = aad.as_deref().map(b64);
            requests.push(json!({
                "op": "decrypt", "jwk": jwk, "alg": alg.as_str(),
                "ciphertext": b64(&ours.ciphertext), "iv": b64(ours.iv.as_deref().unwrap()),
                "tag": b64(ours.tag.as_deref().unwrap()), "aad": aad_json,
            }));
            let mut bad_tag = ours.tag.clone().unwrap();
            bad_tag[0] ^= 1;
            requests.push(json!({
                "op": "decrypt", "jwk": jwk, "alg": alg.as_str(),
                "ciphertext": b64(&ours.ciphertext), "iv": b64(ours.iv.as_deref().unwrap()),
                "tag": b64(&bad_tag), "aad": aad_json,
            }));
            requests.push(json!({
                "op": "encrypt", "jwk": jwk, "alg": alg.as_str(), "plaintext": b64(&plaintext),
                "aad": aad_json,
            }));
            cases.push((alg, key, plaintext, aad));
        }
    }
    let responses = run(&requests);
    for ((alg, key, plaintext, aad), triple) in cases.iter().zip(responses.chunks(3)) {
        assert_eq!(
            bytes(&triple[0]["plaintext"]),
            *plaintext,
            "{alg}: Coffer's ciphertext"
        );
        assert_eq!(
            triple[1]["error"],
            json!("InvalidTag"),
            "{alg}: a changed tag"
        );
        let theirs = &triple[2];
        let opened = key
            .decrypt(
                *alg,
                &bytes(&theirs["ciphertext"]),
                Some(&bytes(&theirs["iv"])),
                Some(&bytes(&theirs["tag"])),
                aad.as_deref(),
            )
            .unwrap();
        assert_eq!(
            opened.expose(),
            plaintext.as_slice(),
            "{alg}: Python's ciphertext"
        );
    }
}

/// AES key wrap across for 128-, 192- and 256-bit keys: both sides make the same wrapped key
/// (RFC 3394 is deterministic), and each unwraps the other's.
#[test]
fn aes_key_wrap_matches_python() {
    let mut requests = Vec::new();
    let mut cases = Vec::new();
    for (alg, len) in [(Enc::A128Kw, 16), (Enc::A192Kw, 24), (Enc::A256Kw, 32)] {
        for data_len in [16, 24, 32, 40, 256] {
            let k = random(len);
            let key = oct_key(&k);
            let jwk = json!({"kty": "oct", "k": b64(&k)});
            let data = random(data_len);
            let ours = key.wrap_key(alg, &data).unwrap();
            requests.push(json!({"op": "wrap", "jwk": jwk, "key": b64(&data)}));
            requests.push(json!({"op": "unwrap", "jwk": jwk, "wrapped": b64(&ours)}));
            let mut tampered = ours.clone();
            tampered[3] ^= 1;
            requests.push(json!({"op": "unwrap", "jwk": jwk, "wrapped": b64(&tampered)}));
            cases.push((alg, key, data, ours));
        }
    }
    let responses = run(&requests);
    for ((alg, key, data, ours), triple) in cases.iter().zip(responses.chunks(3)) {
        let theirs = bytes(&triple[0]["wrapped"]);
        assert_eq!(theirs, *ours, "{alg}: the same wrapped key");
        assert_eq!(
            key.unwrap_key(*alg, &theirs).unwrap().expose(),
            data.as_slice()
        );
        assert_eq!(
            bytes(&triple[1]["key"]),
            *data,
            "{alg}: Python unwraps Coffer's"
        );
        assert_eq!(
            triple[2]["error"],
            json!("InvalidUnwrap"),
            "{alg}: tampered"
        );
    }
}
