//! Hostile key requests over the network (gRPC over TLS to the real `coffer` binary): each gets
//! a clear client error, none an internal error, nothing is written, and the server keeps
//! serving. Includes a bounded run of random import and operation requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coffer_proto::v1 as pb;
use coffer_proto::v1::key_service_client::KeyServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use common::{DevServer, with_bearer};
use tonic::Code;

const V: &str = "hostile-keys";

/// A small deterministic generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: DevServer,
    keys: KeyServiceClient<tonic::transport::Channel>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("d"));
    let channel = server.grpc_channel().await;
    VaultServiceClient::new(channel.clone())
        .create_vault(with_bearer(
            &server.token,
            pb::CreateVaultRequest {
                name: V.into(),
                location: "eastus".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut keys = KeyServiceClient::new(channel);
    for (name, kty, crv) in [
        ("rsa", "RSA", ""),
        ("ec", "EC", "P-256"),
        ("aes", "oct", ""),
    ] {
        keys.create_key(with_bearer(
            &server.token,
            pb::CreateKeyRequest {
                vault: V.into(),
                name: name.into(),
                kty: kty.into(),
                crv: crv.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    }
    Fixture {
        _dir: dir,
        server,
        keys,
    }
}

impl Fixture {
    fn req<T>(&self, body: T) -> tonic::Request<T> {
        with_bearer(&self.server.token, body)
    }

    /// The names and version counts of every key: what no bad request may change.
    async fn state(&mut self) -> Vec<(String, usize)> {
        let list = self
            .keys
            .list_keys(self.req(pb::ListKeysRequest {
                vault: V.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        for key in list.keys {
            let versions = self
                .keys
                .list_key_versions(self.req(pb::ListKeyVersionsRequest {
                    vault: V.into(),
                    name: key.name.clone(),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            out.push((key.name, versions.keys.len()));
        }
        out.sort();
        out
    }
}

/// A refusal a client can act on: never an internal error or a dropped connection.
fn client_error(status: &tonic::Status, case: &str) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument
                | Code::NotFound
                | Code::PermissionDenied
                | Code::AlreadyExists
                | Code::OutOfRange
                | Code::ResourceExhausted
        ),
        "{case}: {:?} {}",
        status.code(),
        status.message()
    );
    assert!(!status.message().is_empty(), "{case}: empty message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_key_requests_are_client_errors_and_change_nothing() {
    let mut f = fixture().await;
    let before = f.state().await;
    let long_alg = "A".repeat(10_000);
    let sign_cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("rsa", "", vec![0; 32]),
        ("rsa", &long_alg, vec![0; 32]),
        ("rsa", "RS256", Vec::new()),
        ("rsa", "RS256", vec![0; 100_000]),
        ("rsa", "ES256", vec![0; 32]),
        ("ec", "RS256", vec![0; 32]),
        ("ec", "ES256\0", vec![0; 32]),
        ("aes", "RS256", vec![0; 32]),
        ("missing", "RS256", vec![0; 32]),
    ];
    for (name, alg, digest) in sign_cases {
        let case = format!(
            "sign {name} {:?} {}",
            &alg[..alg.len().min(12)],
            digest.len()
        );
        let status = f
            .keys
            .sign(f.req(pb::SignRequest {
                vault: V.into(),
                name: name.into(),
                alg: alg.into(),
                digest,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        client_error(&status, &case);
    }
    // (key, alg, value, iv, tag)
    type OpCase = (&'static str, &'static str, Vec<u8>, Vec<u8>, Vec<u8>);
    let op_cases: Vec<OpCase> = vec![
        ("rsa", "RSA-OAEP", vec![1; 255], Vec::new(), Vec::new()),
        ("rsa", "RSA-OAEP", vec![1; 256], vec![1; 12], Vec::new()),
        ("aes", "A256GCM", vec![1; 40], Vec::new(), Vec::new()),
        ("aes", "A256GCM", vec![1; 40], vec![1; 11], vec![1; 16]),
        ("aes", "A256GCM", vec![1; 40], vec![1; 12], vec![1; 15]),
        ("aes", "A256GCM", vec![1; 70_000], vec![1; 12], vec![1; 16]),
        ("aes", "A128CBC", vec![1; 32], vec![1; 16], Vec::new()),
    ];
    for (name, alg, value, iv, tag) in op_cases {
        let case = format!(
            "decrypt {name} {alg} {} {} {}",
            value.len(),
            iv.len(),
            tag.len()
        );
        let status = f
            .keys
            .decrypt(f.req(pb::KeyOperationRequest {
                vault: V.into(),
                name: name.into(),
                alg: alg.into(),
                value,
                iv,
                tag,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        client_error(&status, &case);
    }
    for (value, case) in [(vec![1; 15], "short"), (vec![1; 17], "not a multiple of 8")] {
        let status = f
            .keys
            .unwrap_key(f.req(pb::KeyOperationRequest {
                vault: V.into(),
                name: "aes".into(),
                alg: "A256KW".into(),
                value,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        client_error(&status, case);
    }
    for (actions, expiry) in [
        (vec![("Rotate", "P99999999999D", "")], ""),
        (vec![("Rotate", "PT1H", "")], ""),
        (vec![("Rotate", "", "")], ""),
        (vec![("Rotate", "P30D", "P30D")], ""),
        (vec![("Explode", "P30D", "")], ""),
        (vec![("Rotate", "P30D", "")], "P1.5Y"),
    ] {
        let status = f
            .keys
            .update_key_rotation_policy(
                f.req(pb::UpdateKeyRotationPolicyRequest {
                    vault: V.into(),
                    name: "rsa".into(),
                    lifetime_actions: actions
                        .iter()
                        .map(|(a, after, before)| pb::LifetimeAction {
                            action: (*a).into(),
                            time_after_create: (*after).into(),
                            time_before_expiry: (*before).into(),
                        })
                        .collect(),
                    expiry_time: expiry.into(),
                }),
            )
            .await
            .unwrap_err();
        client_error(&status, &format!("policy {actions:?} {expiry}"));
    }
    assert_eq!(f.state().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_imports_and_operations_never_fail_inside_the_server() {
    let mut f = fixture().await;
    let before = f.state().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kty = ["RSA", "EC", "oct", "RSA-HSM", "", "rsa", "EC-HSM"];
    let crv = ["P-256", "P-384", "P-521", "P-256K", "", "P-192"];
    let started = std::time::Instant::now();
    let mut cases = 0;
    // Bounded in count and time.
    while cases < 300 && started.elapsed() < std::time::Duration::from_secs(60) {
        cases += 1;
        let key = pb::JsonWebKey {
            kty: rng.pick(&kty).into(),
            crv: rng.pick(&crv).into(),
            n: rng.bytes(600),
            e: rng.bytes(4),
            d: rng.bytes(600),
            p: rng.bytes(300),
            q: rng.bytes(300),
            dp: rng.bytes(300),
            dq: rng.bytes(300),
            qi: rng.bytes(300),
            k: rng.bytes(40),
            x: rng.bytes(70),
            y: rng.bytes(70),
            key_ops: vec![rng.pick(&["sign", "encrypt", "bogus", ""]).into()],
            ..Default::default()
        };
        let imported = f
            .keys
            .import_key(f.req(pb::ImportKeyRequest {
                vault: V.into(),
                name: format!("random-{cases}"),
                key: Some(key),
                ..Default::default()
            }))
            .await;
        match imported {
            // Random bytes of an AES key's length are an AES key; nothing else random is a key.
            Ok(key) => {
                let jwk = key.into_inner().key.unwrap();
                assert_eq!(
                    jwk.kty, "oct",
                    "case {cases}: a random {} key imported",
                    jwk.kty
                );
            }
            Err(status) => client_error(&status, &format!("import case {cases}")),
        }
        let name = rng.pick(&["rsa", "ec", "aes"]);
        let alg = rng.pick(&[
            "RSA1_5",
            "RSA-OAEP",
            "RSA-OAEP-256",
            "A128GCM",
            "A256GCM",
            "A192KW",
            "A256KW",
            "PS256",
        ]);
        let request = pb::KeyOperationRequest {
            vault: V.into(),
            name: name.into(),
            alg: alg.into(),
            value: rng.bytes(600),
            iv: rng.bytes(16),
            tag: rng.bytes(20),
            aad: rng.bytes(8),
            ..Default::default()
        };
        let result = match rng.below(2) {
            0 => f.keys.decrypt(f.req(request)).await,
            _ => f.keys.unwrap_key(f.req(request)).await,
        };
        if let Err(status) = result {
            client_error(&status, &format!("operation case {cases} {name} {alg}"));
        }
        let alg = rng.pick(&["RS256", "PS512", "ES256", "ES256K", "ES512"]);
        let verified = f
            .keys
            .verify(f.req(pb::VerifyRequest {
                vault: V.into(),
                name: name.into(),
                alg: alg.into(),
                digest: rng.bytes(70),
                signature: rng.bytes(600),
                ..Default::default()
            }))
            .await;
        match verified {
            Ok(r) => assert!(
                !r.into_inner().value,
                "case {cases}: random signature verified"
            ),
            Err(status) => client_error(&status, &format!("verify case {cases} {name} {alg}")),
        }
    }
    assert!(cases >= 50, "only {cases} cases ran");
    let mut after = f.state().await;
    after.retain(|(name, _)| !name.starts_with("random-"));
    assert_eq!(after, before);
}
