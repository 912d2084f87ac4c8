//! Keys against a real node (RocksDB and Raft in-process) whose clock the test moves: every key
//! type and algorithm through the service, Azure's rules on operations, bad input, rotation
//! and rotation policies, the shared lifecycle, backups, and material sealed at rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coffer_service::{
    CreateKey, CreateVault, ImportKey, KeyBundle, KeyOperationInput, KeyUpdate,
    LifetimeActionInput, RequestContext, Service,
};
use coffer_types::keys::{CurveName, JsonWebKey, KeyOperation, KeyType};
use coffer_types::records::DAY_SECONDS;
use coffer_types::{ErrorCode, InnerCode, ManualClock};
use zeroize::Zeroizing;

const START: i64 = common::CLOCK_START;
const V: &str = "keys-vault";

struct Node {
    service: Service,
    clock: ManualClock,
    dir: tempfile::TempDir,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (service, clock) = common::manual_clock_service(dir.path()).await;
    service.ensure_geography_key().await.unwrap();
    let node = Node {
        service,
        clock,
        dir,
    };
    vault(&node, V).await;
    node
}

async fn vault(node: &Node, name: &str) {
    node.service
        .create_vault(
            &admin(),
            CreateVault {
                name: name.into(),
                location: "eastus".into(),
                retention_days: 7,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

fn admin() -> RequestContext {
    RequestContext::internal().unwrap()
}

async fn create(node: &Node, name: &str, kty: &str, size: u32, crv: &str) -> KeyBundle {
    try_create(node, name, kty, size, crv, &[]).await.unwrap()
}

async fn try_create(
    node: &Node,
    name: &str,
    kty: &str,
    size: u32,
    crv: &str,
    ops: &[&str],
) -> Result<KeyBundle, coffer_types::Error> {
    node.service
        .create_key(
            &admin(),
            CreateKey {
                vault: V.into(),
                name: name.into(),
                kty: kty.into(),
                key_size: Some(size).filter(|s| *s != 0),
                crv: Some(crv.to_owned()).filter(|c| !c.is_empty()),
                key_ops: ops.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
        )
        .await
}

fn input(name: &str, alg: &str, value: &[u8]) -> KeyOperationInput {
    KeyOperationInput {
        vault: V.into(),
        name: name.into(),
        alg: alg.into(),
        value: Zeroizing::new(value.to_vec()),
        ..Default::default()
    }
}

async fn sign(
    node: &Node,
    name: &str,
    alg: &str,
    digest: &[u8],
) -> Result<Vec<u8>, coffer_types::Error> {
    node.service
        .sign(&admin(), V, name, None, alg, digest)
        .await
        .map(|o| o.value.to_vec())
}

async fn verify(
    node: &Node,
    name: &str,
    alg: &str,
    digest: &[u8],
    sig: &[u8],
) -> Result<bool, coffer_types::Error> {
    node.service
        .verify(&admin(), V, name, None, alg, digest, sig)
        .await
}

async fn op(
    node: &Node,
    operation: KeyOperation,
    input: KeyOperationInput,
) -> Result<coffer_service::KeyOperationOutcome, coffer_types::Error> {
    node.service.key_operation(&admin(), operation, input).await
}

async fn version_count(node: &Node, name: &str) -> usize {
    node.service
        .list_key_versions(&admin(), V, name, None, None)
        .await
        .unwrap()
        .items
        .len()
}

fn digest(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[tokio::test]
async fn every_key_type_is_created_with_public_parts_only() {
    let node = node().await;
    for bits in [2048u32, 3072, 4096] {
        let b = create(&node, &format!("rsa{bits}"), "RSA", bits, "").await;
        assert_eq!(b.record.kty, KeyType::Rsa);
        assert_eq!(b.record.key_size, Some(bits));
        assert_eq!(b.record.public.n.as_ref().unwrap().len() * 8, bits as usize);
        assert_eq!(b.record.public.e.as_deref(), Some(&[1u8, 0, 1][..]));
        assert!(!b.record.public.has_private_parts());
        assert_eq!(b.record.key_ops.len(), 6);
    }
    for (crv, len) in [("P-256", 32), ("P-384", 48), ("P-521", 66), ("P-256K", 32)] {
        let b = create(&node, &format!("ec{}", crv.replace('-', "")), "EC", 0, crv).await;
        assert_eq!(b.record.public.crv, Some(CurveName::parse(crv).unwrap()));
        assert_eq!(b.record.public.x.as_ref().unwrap().len(), len, "{crv}");
        assert_eq!(b.record.public.y.as_ref().unwrap().len(), len, "{crv}");
        assert!(!b.record.public.has_private_parts());
        assert_eq!(
            b.record.key_ops,
            vec![KeyOperation::Sign, KeyOperation::Verify]
        );
    }
    for bits in [128u32, 192, 256] {
        let b = create(&node, &format!("aes{bits}"), "oct", bits, "").await;
        assert_eq!(b.record.key_size, Some(bits));
        let public = &b.record.public;
        assert_eq!(public.kty, Some(KeyType::Oct));
        assert!(public.n.is_none() && public.x.is_none() && public.crv.is_none());
        assert!(!public.has_private_parts());
    }
    let listed = node
        .service
        .list_keys(&admin(), V, None, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 10);
    let got = node
        .service
        .get_key(&admin(), V, "rsa2048", None)
        .await
        .unwrap();
    assert!(!got.record.public.has_private_parts());
    // HSM key types need a premium vault.
    let e = try_create(&node, "hsm", "RSA-HSM", 2048, "", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
}

#[tokio::test]
async fn every_algorithm_round_trips_through_the_service() {
    let node = node().await;
    create(&node, "rsa", "RSA", 2048, "").await;
    for (name, crv) in [
        ("p256", "P-256"),
        ("p384", "P-384"),
        ("p521", "P-521"),
        ("k256", "P-256K"),
    ] {
        create(&node, name, "EC", 0, crv).await;
    }
    for bits in [128u32, 192, 256] {
        create(&node, &format!("aes{bits}"), "oct", bits, "").await;
    }
    let cases = [
        ("rsa", "RS256", 32),
        ("rsa", "RS384", 48),
        ("rsa", "RS512", 64),
        ("rsa", "PS256", 32),
        ("rsa", "PS384", 48),
        ("rsa", "PS512", 64),
        ("p256", "ES256", 32),
        ("p384", "ES384", 48),
        ("p521", "ES512", 64),
        ("k256", "ES256K", 32),
    ];
    for (name, alg, len) in cases {
        let d = digest(len, 1);
        let sig = sign(&node, name, alg, &d).await.unwrap();
        assert!(verify(&node, name, alg, &d, &sig).await.unwrap(), "{alg}");
        assert!(
            !verify(&node, name, alg, &digest(len, 2), &sig)
                .await
                .unwrap(),
            "{alg}"
        );
    }
    let plaintext = b"attack at dawn".to_vec();
    for alg in ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"] {
        let enc = op(&node, KeyOperation::Encrypt, input("rsa", alg, &plaintext))
            .await
            .unwrap();
        assert_ne!(enc.value.as_slice(), plaintext.as_slice());
        let dec = op(&node, KeyOperation::Decrypt, input("rsa", alg, &enc.value))
            .await
            .unwrap();
        assert_eq!(dec.value.as_slice(), plaintext.as_slice(), "{alg}");
        let key = [9u8; 32];
        let wrapped = op(&node, KeyOperation::WrapKey, input("rsa", alg, &key))
            .await
            .unwrap();
        let unwrapped = op(
            &node,
            KeyOperation::UnwrapKey,
            input("rsa", alg, &wrapped.value),
        )
        .await
        .unwrap();
        assert_eq!(unwrapped.value.as_slice(), &key, "{alg}");
    }
    for bits in [128u32, 192, 256] {
        let name = format!("aes{bits}");
        let alg = format!("A{bits}GCM");
        let mut request = input(&name, &alg, &plaintext);
        request.aad = b"header".to_vec();
        let enc = op(&node, KeyOperation::Encrypt, request).await.unwrap();
        assert_eq!(enc.iv.len(), 12);
        assert_eq!(enc.tag.len(), 16);
        let mut back = input(&name, &alg, &enc.value);
        back.iv = enc.iv.clone();
        back.tag = enc.tag.clone();
        back.aad = b"header".to_vec();
        let dec = op(&node, KeyOperation::Decrypt, back.clone())
            .await
            .unwrap();
        assert_eq!(dec.value.as_slice(), plaintext.as_slice());
        back.aad = b"other".to_vec();
        let e = op(&node, KeyOperation::Decrypt, back).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
        let kw = format!("A{bits}KW");
        let key = [7u8; 24];
        let wrapped = op(&node, KeyOperation::WrapKey, input(&name, &kw, &key))
            .await
            .unwrap();
        assert_eq!(wrapped.value.len(), 32);
        let unwrapped = op(
            &node,
            KeyOperation::UnwrapKey,
            input(&name, &kw, &wrapped.value),
        )
        .await
        .unwrap();
        assert_eq!(unwrapped.value.as_slice(), &key);
    }
}

#[tokio::test]
async fn operations_follow_key_ops_validity_dates_and_enabled() {
    let node = node().await;
    try_create(&node, "signer", "EC", 0, "P-256", &["sign", "verify"])
        .await
        .unwrap();
    try_create(&node, "verifier", "EC", 0, "P-256", &["verify"])
        .await
        .unwrap();
    let d = digest(32, 3);
    let e = sign(&node, "verifier", "ES256", &d).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(e.message.contains("sign"), "{e}");
    // EC keys cannot list encryption operations.
    let e = try_create(&node, "bad", "EC", 0, "P-256", &["encrypt"])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter, "{e}");

    let sig = sign(&node, "signer", "ES256", &d).await.unwrap();
    let update = |enabled, nbf, exp| KeyUpdate {
        enabled,
        not_before: nbf,
        expires: exp,
        ..Default::default()
    };
    // Not yet valid: sign refused, verify still works.
    node.service
        .update_key(
            &admin(),
            V,
            "signer",
            None,
            update(None, Some(START + 100), None),
        )
        .await
        .unwrap();
    let e = sign(&node, "signer", "ES256", &d).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(verify(&node, "signer", "ES256", &d, &sig).await.unwrap());
    node.clock.advance(200);
    sign(&node, "signer", "ES256", &d).await.unwrap();
    // Expired: sign refused, verify still works.
    node.service
        .update_key(
            &admin(),
            V,
            "signer",
            None,
            update(None, None, Some(START + 300)),
        )
        .await
        .unwrap();
    node.clock.advance(100);
    let e = sign(&node, "signer", "ES256", &d).await.unwrap_err();
    assert!(e.message.contains("expired"), "{e}");
    assert!(verify(&node, "signer", "ES256", &d, &sig).await.unwrap());
    // Disabled: everything refused.
    node.service
        .update_key(&admin(), V, "signer", None, update(Some(false), None, None))
        .await
        .unwrap();
    let e = verify(&node, "signer", "ES256", &d, &sig)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert_eq!(e.inner, Some(InnerCode::KeyDisabled));
    // key_ops can be narrowed by an update.
    let narrowed = node
        .service
        .update_key(
            &admin(),
            V,
            "verifier",
            None,
            KeyUpdate {
                key_ops: Some(vec!["sign".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(narrowed.record.key_ops, vec![KeyOperation::Sign]);
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_writes_nothing() {
    let node = node().await;
    create(&node, "rsa", "RSA", 2048, "").await;
    create(&node, "ec", "EC", 0, "P-256").await;
    create(&node, "aes", "oct", 256, "").await;
    let bad = |e: coffer_types::Error| {
        assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
        e.message
    };
    // Digest length, unknown algorithm, algorithm for another key type or curve.
    let m = bad(sign(&node, "rsa", "RS256", &digest(31, 0))
        .await
        .unwrap_err());
    assert!(m.contains("32"), "{m}");
    bad(sign(&node, "rsa", "RS999", &digest(32, 0))
        .await
        .unwrap_err());
    bad(sign(&node, "rsa", "ES256", &digest(32, 0))
        .await
        .unwrap_err());
    bad(sign(&node, "ec", "ES384", &digest(48, 0))
        .await
        .unwrap_err());
    bad(sign(&node, "ec", "PS256", &digest(32, 0))
        .await
        .unwrap_err());
    bad(
        op(&node, KeyOperation::Encrypt, input("ec", "RSA-OAEP", b"x"))
            .await
            .unwrap_err(),
    );
    bad(
        op(&node, KeyOperation::Encrypt, input("aes", "A128GCM", b"x"))
            .await
            .unwrap_err(),
    );
    bad(op(
        &node,
        KeyOperation::WrapKey,
        input("aes", "A256GCM", &[0; 16]),
    )
    .await
    .unwrap_err());
    bad(
        op(&node, KeyOperation::Encrypt, input("aes", "A256CBC", b"x"))
            .await
            .unwrap_err(),
    );
    // Corrupted ciphertext and tag.
    let enc = op(
        &node,
        KeyOperation::Encrypt,
        input("rsa", "RSA-OAEP", b"secret"),
    )
    .await
    .unwrap();
    let mut corrupted = enc.value.to_vec();
    corrupted[10] ^= 1;
    bad(op(
        &node,
        KeyOperation::Decrypt,
        input("rsa", "RSA-OAEP", &corrupted),
    )
    .await
    .unwrap_err());
    let enc = op(
        &node,
        KeyOperation::Encrypt,
        input("aes", "A256GCM", b"secret"),
    )
    .await
    .unwrap();
    let mut back = input("aes", "A256GCM", &enc.value);
    back.iv = enc.iv.clone();
    back.tag = enc.tag.clone();
    back.tag[0] ^= 1;
    bad(op(&node, KeyOperation::Decrypt, back).await.unwrap_err());
    // Oversized payloads.
    let huge = vec![0u8; coffer_service::MAX_KEY_OPERATION_BYTES + 1];
    bad(
        op(&node, KeyOperation::Encrypt, input("aes", "A256GCM", &huge))
            .await
            .unwrap_err(),
    );
    bad(op(
        &node,
        KeyOperation::Encrypt,
        input("rsa", "RSA-OAEP", &[1; 300]),
    )
    .await
    .unwrap_err());
    // Sizes and exponents Coffer does not generate.
    let e = try_create(&node, "small", "RSA", 1024, "", &[])
        .await
        .unwrap_err();
    bad(e);
    let e = node
        .service
        .create_key(
            &admin(),
            CreateKey {
                vault: V.into(),
                name: "e3".into(),
                kty: "RSA".into(),
                public_exponent: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    bad(e);
    bad(try_create(&node, "dsa", "DSA", 0, "", &[])
        .await
        .unwrap_err());
    bad(try_create(&node, "curve", "EC", 0, "P-192", &[])
        .await
        .unwrap_err());
    // Nothing of the above wrote a version.
    for name in ["rsa", "ec", "aes"] {
        assert_eq!(version_count(&node, name).await, 1, "{name}");
    }
    for name in ["small", "e3", "dsa", "curve"] {
        let e = node
            .service
            .get_key(&admin(), V, name, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::KeyNotFound, "{name}");
    }
}

/// A JWK of a fresh key, made by Python's `cryptography` (an independent implementation).
fn python_jwk(kind: &str) -> serde_json::Value {
    let script = format!(
        r#"
import json, base64
from cryptography.hazmat.primitives.asymmetric import rsa, ec
def b(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()
kind = "{kind}"
if kind == "rsa":
    k = rsa.generate_private_key(65537, 2048)
    p = k.private_numbers(); pub = p.public_numbers
    jwk = dict(kty="RSA", n=b(pub.n), e=b(pub.e), d=b(p.d), p=b(p.p), q=b(p.q), dp=b(p.dmp1), dq=b(p.dmq1), qi=b(p.iqmp))
else:
    k = ec.generate_private_key(ec.SECP256R1())
    p = k.private_numbers(); pub = p.public_numbers
    jwk = dict(kty="EC", crv="P-256", x=b(pub.x, 32), y=b(pub.y, 32), d=b(p.private_value, 32))
print(json.dumps(jwk))
"#
    );
    let out = common::python(&script, &[]);
    serde_json::from_str(&out).unwrap()
}

async fn import(
    node: &Node,
    name: &str,
    jwk: JsonWebKey,
) -> Result<KeyBundle, coffer_types::Error> {
    node.service
        .import_key(
            &admin(),
            ImportKey {
                vault: V.into(),
                name: name.into(),
                key: jwk,
                hsm: false,
                enabled: None,
                not_before: None,
                expires: None,
                tags: Vec::new(),
            },
        )
        .await
}

#[tokio::test]
async fn imports_validate_the_key_and_refuse_mismatched_parts() {
    let node = node().await;
    let rsa: JsonWebKey = serde_json::from_value(python_jwk("rsa")).unwrap();
    let other: JsonWebKey = serde_json::from_value(python_jwk("rsa")).unwrap();
    let imported = import(&node, "imported", rsa.clone()).await.unwrap();
    assert_eq!(imported.record.public.n, rsa.n);
    assert!(imported.record.imported);
    // Private parts of another key.
    let mut mixed = rsa.clone();
    mixed.d = other.d.clone();
    let e = import(&node, "mixed-d", mixed).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
    let mut mixed = rsa.clone();
    mixed.p = other.p.clone();
    mixed.q = other.q.clone();
    assert_eq!(
        import(&node, "mixed-pq", mixed).await.unwrap_err().code,
        ErrorCode::BadParameter
    );
    let ec: JsonWebKey = serde_json::from_value(python_jwk("ec")).unwrap();
    let ec_other: JsonWebKey = serde_json::from_value(python_jwk("ec")).unwrap();
    let mut mixed = ec.clone();
    mixed.d = ec_other.d.clone();
    assert_eq!(
        import(&node, "mixed-ec", mixed).await.unwrap_err().code,
        ErrorCode::BadParameter
    );
    // A public key alone, and an AES key of a size AES lacks.
    let e = import(&node, "public", rsa.public_only())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    let odd = {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Oct);
        built.k = Some(vec![1; 20]);
        built
    };
    assert_eq!(
        import(&node, "odd", odd).await.unwrap_err().code,
        ErrorCode::BadParameter
    );
    for name in ["mixed-d", "mixed-pq", "mixed-ec", "public", "odd"] {
        let e = node
            .service
            .get_key(&admin(), V, name, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::KeyNotFound, "{name}");
    }
    // The error never echoes key material.
    let mut mixed = rsa.clone();
    mixed.d = other.d.clone();
    let e = import(&node, "mixed-d", mixed).await.unwrap_err();
    for key in [&rsa, &other] {
        for part in [&key.d, &key.p, &key.q] {
            let bytes = part.as_ref().unwrap();
            assert!(!e.message.contains(&base64_url(bytes)[..16]), "{e}");
            assert!(!e.message.contains(&hex(bytes)[..16]), "{e}");
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn signatures_and_ciphertexts_cross_check_with_python_cryptography() {
    let node = node().await;
    let rsa = create(&node, "rsa", "RSA", 2048, "").await;
    let ec = create(&node, "ec", "EC", 0, "P-384").await;
    let d32 = digest(32, 5);
    let d48 = digest(48, 6);
    let rs = sign(&node, "rsa", "PS256", &d32).await.unwrap();
    let es = sign(&node, "ec", "ES384", &d48).await.unwrap();
    let n = hex(rsa.record.public.n.as_ref().unwrap());
    let x = hex(ec.record.public.x.as_ref().unwrap());
    let y = hex(ec.record.public.y.as_ref().unwrap());
    // Python verifies Coffer's signatures and encrypts to Coffer's key; Coffer decrypts.
    let script = r#"
import sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa, ec, padding, utils
n, x, y, rs, es, d32, d48 = [bytes.fromhex(a) for a in sys.argv[1:8]]
pub = rsa.RSAPublicNumbers(65537, int.from_bytes(n, "big")).public_key()
pub.verify(rs, d32, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), utils.Prehashed(hashes.SHA256()))
ecpub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP384R1()).public_key()
r, s = int.from_bytes(es[:48], "big"), int.from_bytes(es[48:], "big")
ecpub.verify(utils.encode_dss_signature(r, s), d48, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
ct = pub.encrypt(b"from python", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
print(ct.hex())
"#;
    let args = [n, x, y, hex(&rs), hex(&es), hex(&d32), hex(&d48)];
    let out = common::python(script, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let ct = unhex(out.trim());
    let plain = op(
        &node,
        KeyOperation::Decrypt,
        input("rsa", "RSA-OAEP-256", &ct),
    )
    .await
    .unwrap();
    assert_eq!(plain.value.as_slice(), b"from python");
    // A signature Python made with a key imported into Coffer verifies in Coffer.
    let jwk_script = r#"
import json, base64, hashlib
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
k = ec.generate_private_key(ec.SECP256K1())
p = k.private_numbers(); pub = p.public_numbers
b = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
digest = hashlib.sha256(b"message").digest()
r, s = utils.decode_dss_signature(k.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
print(json.dumps(dict(jwk=dict(kty="EC", crv="P-256K", x=b(pub.x), y=b(pub.y), d=b(p.private_value)), digest=digest.hex(), sig=(r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex())))
"#;
    let out: serde_json::Value = serde_json::from_str(&common::python(jwk_script, &[])).unwrap();
    let jwk: JsonWebKey = serde_json::from_value(out["jwk"].clone()).unwrap();
    import(&node, "k1", jwk).await.unwrap();
    let digest = unhex(out["digest"].as_str().unwrap());
    let sig = unhex(out["sig"].as_str().unwrap());
    assert!(verify(&node, "k1", "ES256K", &digest, &sig).await.unwrap());
    let mut forged = sig.clone();
    forged[5] ^= 1;
    assert!(
        !verify(&node, "k1", "ES256K", &digest, &forged)
            .await
            .unwrap()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn rotate_after(days: &str) -> Vec<LifetimeActionInput> {
    vec![LifetimeActionInput {
        action: "Rotate".into(),
        time_after_create: Some(days.into()),
        time_before_expiry: None,
    }]
}

#[tokio::test]
async fn rotation_policies_rotate_due_keys_once() {
    let node = node().await;
    let first = create(&node, "rotating", "RSA", 3072, "").await;
    // A policy below Azure's minimum, and one timed before expiry without an expiryTime.
    let e = node
        .service
        .update_key_rotation_policy(&admin(), V, "rotating", &rotate_after("P6D"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    let before = vec![LifetimeActionInput {
        action: "Rotate".into(),
        time_after_create: None,
        time_before_expiry: Some("P30D".into()),
    }];
    let e = node
        .service
        .update_key_rotation_policy(&admin(), V, "rotating", &before, None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    let set = node
        .service
        .update_key_rotation_policy(&admin(), V, "rotating", &rotate_after("P30D"), Some("P90D"))
        .await
        .unwrap();
    assert_eq!(set.policy.lifetime_actions.len(), 1);
    let shown = node
        .service
        .get_key_rotation_policy(&admin(), V, "rotating")
        .await
        .unwrap();
    assert_eq!(shown.policy.expiry_time.unwrap().to_text(), "P90D");

    node.clock.advance(30 * DAY_SECONDS - 1);
    assert_eq!(node.service.rotate_due_keys().await.unwrap(), 0);
    node.clock.advance(1);
    assert_eq!(node.service.rotate_due_keys().await.unwrap(), 1);
    assert_eq!(node.service.rotate_due_keys().await.unwrap(), 0);
    let latest = node
        .service
        .get_key(&admin(), V, "rotating", None)
        .await
        .unwrap();
    assert_ne!(latest.record.version, first.record.version);
    assert_eq!(latest.record.key_size, Some(3072));
    assert_eq!(latest.record.key_ops, first.record.key_ops);
    assert_ne!(latest.record.public.n, first.record.public.n);
    let now = START + 30 * DAY_SECONDS;
    assert_eq!(latest.record.expires, Some(now + 90 * DAY_SECONDS));
    // The old version still verifies what it signed.
    let d = digest(32, 9);
    let sig = node
        .service
        .sign(
            &admin(),
            V,
            "rotating",
            Some(&first.record.version),
            "RS256",
            &d,
        )
        .await
        .unwrap();
    assert!(
        node.service
            .verify(
                &admin(),
                V,
                "rotating",
                Some(&first.record.version),
                "RS256",
                &d,
                &sig.value
            )
            .await
            .unwrap()
    );
    // A manual rotation of an EC key keeps its curve; a deleted key is not rotated.
    create(&node, "curve", "EC", 0, "P-521").await;
    let rotated = node.service.rotate_key(&admin(), V, "curve").await.unwrap();
    assert_eq!(rotated.record.public.crv, Some(CurveName::P521));
    assert_eq!(version_count(&node, "curve").await, 2);
    node.service
        .delete_key(&admin(), V, "rotating")
        .await
        .unwrap();
    node.clock.advance(60 * DAY_SECONDS);
    assert_eq!(node.service.rotate_due_keys().await.unwrap(), 0);
    node.service
        .recover_deleted_key(&admin(), V, "rotating")
        .await
        .unwrap();
    assert_eq!(
        version_count(&node, "rotating").await,
        2,
        "the deleted key was not rotated"
    );
}

#[tokio::test]
async fn restored_copies_of_a_key_rotate_on_their_own() {
    let node = node().await;
    vault(&node, "second-vault").await;
    create(&node, "shared", "EC", 0, "P-256").await;
    let blob = node
        .service
        .backup_key(&admin(), V, "shared")
        .await
        .unwrap();
    node.service
        .restore_key(&admin(), "second-vault", &blob)
        .await
        .unwrap();
    // Both copies carry the same version id; each rotates by its own policy.
    for vault in [V, "second-vault"] {
        node.service
            .update_key_rotation_policy(&admin(), vault, "shared", &rotate_after("P30D"), None)
            .await
            .unwrap();
    }
    node.clock.advance(30 * DAY_SECONDS);
    assert_eq!(node.service.rotate_due_keys().await.unwrap(), 2);
    for vault in [V, "second-vault"] {
        let versions = node
            .service
            .list_key_versions(&admin(), vault, "shared", None, None)
            .await
            .unwrap();
        assert_eq!(versions.items.len(), 2, "{vault}");
    }
    // A policy whose months could make a year is refused: it would fall due at creation.
    let before = vec![LifetimeActionInput {
        action: "Rotate".into(),
        time_after_create: None,
        time_before_expiry: Some("P12M".into()),
    }];
    let e = node
        .service
        .update_key_rotation_policy(&admin(), V, "shared", &before, Some("P1Y"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
    // An empty operation list does not widen a key's operations.
    let e = node
        .service
        .update_key(
            &admin(),
            V,
            "shared",
            None,
            KeyUpdate {
                key_ops: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter, "{e}");
}

#[tokio::test]
async fn keys_share_the_soft_delete_lifecycle() {
    let node = node().await;
    create(&node, "k", "EC", 0, "P-256").await;
    let d = digest(32, 1);
    let sig = sign(&node, "k", "ES256", &d).await.unwrap();
    let deleted = node.service.delete_key(&admin(), V, "k").await.unwrap();
    assert_eq!(
        deleted.deleted.scheduled_purge_date,
        START + 7 * DAY_SECONDS
    );
    let e = sign(&node, "k", "ES256", &d).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyNotFound, "{e}");
    let listed = node
        .service
        .list_deleted_keys(&admin(), V, None, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let e = try_create(&node, "k", "EC", 0, "P-256", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.inner, Some(InnerCode::ObjectIsDeletedButRecoverable));
    node.service
        .recover_deleted_key(&admin(), V, "k")
        .await
        .unwrap();
    assert!(verify(&node, "k", "ES256", &d, &sig).await.unwrap());
    // Purge frees the name; the purger purges a key at the end of its retention.
    node.service.delete_key(&admin(), V, "k").await.unwrap();
    node.service
        .purge_deleted_key(&admin(), V, "k")
        .await
        .unwrap();
    let fresh = create(&node, "k", "EC", 0, "P-256").await;
    assert_eq!(version_count(&node, "k").await, 1);
    assert!(!verify(&node, "k", "ES256", &d, &sig).await.unwrap());
    node.service.delete_key(&admin(), V, "k").await.unwrap();
    node.clock.advance(7 * DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 1);
    let e = node
        .service
        .get_deleted_key(&admin(), V, "k")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyNotFound, "{e}");
    let e = node
        .service
        .get_key(&admin(), V, "k", Some(&fresh.record.version))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyNotFound);
}

#[tokio::test]
async fn key_and_vault_backups_restore_the_same_material() {
    let node = node().await;
    create(&node, "signer", "RSA", 2048, "").await;
    node.service
        .rotate_key(&admin(), V, "signer")
        .await
        .unwrap();
    create(&node, "wrapper", "oct", 256, "").await;
    let d = digest(32, 4);
    let sig = sign(&node, "signer", "RS256", &d).await.unwrap();
    let wrapped = op(
        &node,
        KeyOperation::WrapKey,
        input("wrapper", "A256KW", &[3; 16]),
    )
    .await
    .unwrap();
    let blob = node
        .service
        .backup_key(&admin(), V, "signer")
        .await
        .unwrap();
    // A key backup is no secret backup.
    let e = node
        .service
        .restore_secret(&admin(), V, &blob)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    let e = node
        .service
        .restore_key(&admin(), V, &blob)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict, "{e}");
    node.service
        .delete_key(&admin(), V, "signer")
        .await
        .unwrap();
    node.service
        .purge_deleted_key(&admin(), V, "signer")
        .await
        .unwrap();
    let restored = node.service.restore_key(&admin(), V, &blob).await.unwrap();
    assert_eq!(restored.record.name, "signer");
    assert_eq!(version_count(&node, "signer").await, 2);
    assert!(verify(&node, "signer", "RS256", &d, &sig).await.unwrap());
    let mut altered = blob.clone();
    let at = altered.len() - 20;
    altered[at] ^= 1;
    node.service
        .delete_key(&admin(), V, "signer")
        .await
        .unwrap();
    node.service
        .purge_deleted_key(&admin(), V, "signer")
        .await
        .unwrap();
    let e = node
        .service
        .restore_key(&admin(), V, &altered)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    assert_eq!(
        node.service
            .get_key(&admin(), V, "signer", None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::KeyNotFound
    );
    node.service.restore_key(&admin(), V, &blob).await.unwrap();

    // A whole-vault backup carries keys with their material; a secret may share a key's name.
    node.service
        .set_secret(
            &admin(),
            coffer_service::SetSecret {
                vault: V.into(),
                name: "signer".into(),
                value: coffer_crypto::SecretString::new("not a key".into()),
                content_type: None,
                enabled: None,
                not_before: None,
                expires: None,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let mut stream = node.service.backup_vault(&admin(), V).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    while let Some(chunk) = stream.recv().await {
        tx.send(chunk).await.unwrap();
    }
    drop(tx);
    node.service
        .restore_vault(&admin(), "copy", None, rx)
        .await
        .unwrap();
    let secret = node
        .service
        .get_secret(&admin(), "copy", "signer", None)
        .await
        .unwrap();
    assert_eq!(secret.value.unwrap().expose(), "not a key");
    let copy_sig = node
        .service
        .sign(&admin(), "copy", "signer", None, "RS256", &d)
        .await
        .unwrap();
    assert_eq!(
        copy_sig.value.to_vec(),
        sig,
        "RSA PKCS#1 v1.5 signatures are deterministic"
    );
    let mut unwrap = input("wrapper", "A256KW", &wrapped.value);
    unwrap.vault = "copy".into();
    let key = op(&node, KeyOperation::UnwrapKey, unwrap).await.unwrap();
    assert_eq!(key.value.as_slice(), &[3; 16]);
}

#[tokio::test]
async fn random_bytes_are_bounded() {
    let node = node().await;
    for count in [0, 129] {
        let e = node
            .service
            .random_bytes(&admin(), V, count)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadParameter);
    }
    let a = node.service.random_bytes(&admin(), V, 128).await.unwrap();
    let b = node.service.random_bytes(&admin(), V, 128).await.unwrap();
    assert_eq!(a.len(), 128);
    assert_ne!(*a, *b);
    assert_eq!(
        node.service
            .random_bytes(&admin(), V, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let e = node
        .service
        .random_bytes(&admin(), "nope", 8)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::VaultNotFound);
}

#[tokio::test]
async fn key_material_is_sealed_at_rest() {
    let node = node().await;
    let k: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let jwk = {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Oct);
        built.k = Some(k.clone());
        built
    };
    import(&node, "known", jwk).await.unwrap();
    let rsa: JsonWebKey = serde_json::from_value(python_jwk("rsa")).unwrap();
    import(&node, "known-rsa", rsa.clone()).await.unwrap();
    // Make the material reach SST files too, not only the write-ahead log.
    node.service.store().snapshot_now().await.unwrap();
    let d = rsa.d.clone().unwrap();
    let needles: Vec<Vec<u8>> = vec![
        k.clone(),
        base64_url(&k).into_bytes(),
        base64_std(&k).into_bytes(),
        d[..32].to_vec(),
        base64_std(&d).as_bytes()[..40].to_vec(),
        base64_url(&d).as_bytes()[..40].to_vec(),
    ];
    let mut files = 0;
    for entry in walk(node.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "key material in {}",
                entry.display()
            );
        }
    }
    assert!(files > 3, "the data directory was read ({files} files)");
    // The material is still usable: wrap with the known key, unwrap with AES-KW elsewhere.
    let wrapped = op(
        &node,
        KeyOperation::WrapKey,
        input("known", "A256KW", &[5; 16]),
    )
    .await
    .unwrap();
    assert_eq!(wrapped.value.len(), 24);
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
