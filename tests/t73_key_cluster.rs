//! Keys in a three-node cluster of real processes: a key created through one node signs and
//! verifies through every node, and survives the loss of the leader; a rotation through a
//! surviving node is used everywhere, while the old version still verifies what it signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use coffer_client::proto::{CreateKeyRequest, CreateVaultRequest, SignRequest, VerifyRequest};
use coffer_testkit::TestCluster;

const VAULT: &str = "cluster-keys";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

fn sign_request(version: &str, digest: &[u8]) -> SignRequest {
    SignRequest {
        vault: VAULT.into(),
        name: "signer".into(),
        version: version.into(),
        alg: "ES384".into(),
        digest: digest.to_vec(),
    }
}

fn verify_request(version: &str, digest: &[u8], signature: &[u8]) -> VerifyRequest {
    VerifyRequest {
        vault: VAULT.into(),
        name: "signer".into(),
        version: version.into(),
        alg: "ES384".into(),
        digest: digest.to_vec(),
        signature: signature.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_replicate_and_survive_the_loss_of_the_leader() {
    let mut cluster = TestCluster::start(bin(), 3, "eastus", &[]).await.unwrap();
    let ids = cluster.ids();
    let deadline = Duration::from_secs(30);
    let first = cluster.client_of(ids[0], deadline).await.unwrap();
    first
        .create_vault(CreateVaultRequest {
            name: VAULT.into(),
            location: "eastus".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let created = first
        .create_key(CreateKeyRequest {
            vault: VAULT.into(),
            name: "signer".into(),
            kty: "EC".into(),
            crv: "P-384".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let v1 = created.version.clone();
    let digest = [7u8; 48];
    // Every node signs with the key, and every node verifies every signature.
    let mut signatures = Vec::new();
    for id in &ids {
        let client = cluster.client_of(*id, deadline).await.unwrap();
        let signed = client.sign(sign_request("", &digest)).await.unwrap();
        assert!(signed.kid.ends_with(&v1), "node {id}: {}", signed.kid);
        signatures.push(signed.value);
    }
    for id in &ids {
        let client = cluster.client_of(*id, deadline).await.unwrap();
        for signature in &signatures {
            assert!(
                client
                    .verify(verify_request("", &digest, signature))
                    .await
                    .unwrap()
            );
        }
        assert!(
            !client
                .verify(verify_request("", &[8u8; 48], &signatures[0]))
                .await
                .unwrap()
        );
    }

    let leader = cluster
        .leader(&ids, Duration::from_secs(20))
        .await
        .expect("a leader");
    cluster.kill(leader);
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != leader).collect();
    let survivor = cluster.client_of(survivors[0], deadline).await.unwrap();
    let rotated = survivor.rotate_key(VAULT, "signer").await.unwrap();
    assert_ne!(rotated.version, v1);
    let other = cluster.client_of(survivors[1], deadline).await.unwrap();
    let signed = other.sign(sign_request("", &digest)).await.unwrap();
    assert!(signed.kid.ends_with(&rotated.version), "{}", signed.kid);
    assert!(
        survivor
            .verify(verify_request(&rotated.version, &digest, &signed.value))
            .await
            .unwrap()
    );
    // The old version still verifies its signatures, and not the new version's.
    assert!(
        other
            .verify(verify_request(&v1, &digest, &signatures[0]))
            .await
            .unwrap()
    );
    assert!(
        !other
            .verify(verify_request(&v1, &digest, &signed.value))
            .await
            .unwrap()
    );
}
