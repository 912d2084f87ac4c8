//! A disaster-recovery drill across three clusters of real node processes: A (three nodes) and
//! B (one node) in geography `us`, C (one node) in geography `europe`. Backups made in A
//! restore in B once A's geography key has been moved there, with identical versions and
//! values; C, of another geography, refuses them; altered backups are refused with nothing
//! written. The CLI drives the operator steps, as an operator would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coffer_client::proto::{CreateVaultRequest, GetSecretRequest, SetSecretRequest};
use coffer_client::{ClientError, CofferClient, Token};
use coffer_testkit::TestCluster;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

async fn cluster(nodes: u64, regions: &str, geography: &str) -> (TestCluster, CofferClient) {
    let cluster = TestCluster::start(bin(), nodes, regions, &["--geography", geography])
        .await
        .unwrap();
    let client = cluster.client(&cluster.ids()).await.unwrap();
    // Each cluster creates its geography key right after start.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match client.list_geography_keys().await {
            Ok(keys) if !keys.is_empty() => {
                assert!(keys.iter().all(|k| k.geography == geography));
                break;
            }
            other => {
                assert!(Instant::now() < until, "no geography key: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    (cluster, client)
}

async fn create_vault(client: &CofferClient, name: &str, location: &str) {
    client
        .create_vault(CreateVaultRequest {
            name: name.into(),
            location: location.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn set(client: &CofferClient, vault: &str, name: &str, value: &str, tag: &str) -> String {
    client
        .set_secret(SetSecretRequest {
            vault: vault.into(),
            name: name.into(),
            value: value.into(),
            content_type: "text/plain".into(),
            tags: [("release".to_owned(), tag.to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .version
}

async fn value(client: &CofferClient, vault: &str, name: &str, version: &str) -> String {
    client
        .get_secret(GetSecretRequest {
            vault: vault.into(),
            name: name.into(),
            version: version.into(),
        })
        .await
        .unwrap()
        .value
}

/// Every version of a secret as (version → enabled, tags, content type, created), and the
/// value of each.
async fn versions(
    client: &CofferClient,
    vault: &str,
    name: &str,
) -> BTreeMap<String, (bool, Vec<(String, String)>, String, i64, String)> {
    let mut out = BTreeMap::new();
    for v in client.list_secret_versions(vault, name).await.unwrap() {
        let attributes = v.attributes.clone().unwrap();
        let mut tags: Vec<(String, String)> = v.tags.into_iter().collect();
        tags.sort();
        let value = if attributes.enabled {
            value(client, vault, name, &v.version).await
        } else {
            String::new()
        };
        out.insert(
            v.version,
            (
                attributes.enabled,
                tags,
                v.content_type,
                attributes.created,
                value,
            ),
        );
    }
    out
}

/// Runs a CLI command off the runtime's threads: the test's runtime also runs the clusters'
/// fault-injecting proxies, which must keep forwarding meanwhile.
async fn run(mut command: std::process::Command, env: &[(&str, &str)]) -> std::process::Output {
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn assert_refused(result: Result<impl std::fmt::Debug, ClientError>, code: &str, text: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(text), "{e}");
        }
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_move_between_clusters_of_one_geography_only() {
    let (a, at_a) = cluster(3, "eastus,westus,centralus", "us").await;
    let (b, at_b) = cluster(1, "westus", "us").await;
    let (_c, at_c) = cluster(1, "westeurope", "europe").await;

    // In A: a secret with three versions (one disabled), tags and a content type.
    create_vault(&at_a, "payments", "eastus").await;
    let v1 = set(&at_a, "payments", "db-pass", "first", "r1").await;
    let v2 = set(&at_a, "payments", "db-pass", "second", "r2").await;
    let v3 = set(&at_a, "payments", "db-pass", "third", "r3").await;
    at_a.update_secret(coffer_client::proto::UpdateSecretRequest {
        vault: "payments".into(),
        name: "db-pass".into(),
        version: v1.clone(),
        enabled: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let before = versions(&at_a, "payments", "db-pass").await;
    assert_eq!(before.len(), 3);
    let blob = at_a.backup_secret("payments", "db-pass").await.unwrap();
    for plain in ["first", "second", "third"] {
        assert!(
            !blob.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "the blob holds {plain} in plaintext"
        );
    }

    // B holds only its own us key: the blob does not open there yet.
    create_vault(&at_b, "payments-dr", "westus").await;
    assert_refused(
        at_b.restore_secret("payments-dr", blob.clone()).await,
        "BadParameter",
        "does not hold",
    );

    // The operator moves A's key to B with the CLI; a wrong passphrase is refused.
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("us.key");
    let passphrase = "correct horse battery staple";
    let out = run(
        a.cli(&[
            "operator",
            "geography-key",
            "export",
            "--out",
            key_file.to_str().unwrap(),
        ]),
        &[("COFFER_GEOGRAPHY_KEY_PASSPHRASE", passphrase)],
    )
    .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.ids()
            .iter()
            .map(|id| a.log(*id))
            .filter(|l| l.contains("unavailable"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let wrapped = std::fs::read_to_string(&key_file).unwrap();
    assert!(wrapped.contains("\"geography\":\"us\""), "{wrapped}");
    let out = run(
        b.cli(&[
            "operator",
            "geography-key",
            "import",
            "--in",
            key_file.to_str().unwrap(),
        ]),
        &[(
            "COFFER_GEOGRAPHY_KEY_PASSPHRASE",
            "not the passphrase at all",
        )],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BadParameter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        b.cli(&[
            "operator",
            "geography-key",
            "import",
            "--activate",
            "--in",
            key_file.to_str().unwrap(),
        ]),
        &[("COFFER_GEOGRAPHY_KEY_PASSPHRASE", passphrase)],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // C, in another geography, refuses the us key.
    assert_refused(
        at_c.import_geography_key(
            &Token::new(wrapped.clone()),
            &Token::new(passphrase.into()),
            true,
        )
        .await,
        "BadParameter",
        "geography",
    );

    // Now B restores the secret with identical versions, attributes and values.
    let restored = at_b
        .restore_secret("payments-dr", blob.clone())
        .await
        .unwrap();
    assert_eq!(restored.name, "db-pass");
    assert_eq!(restored.version, v3);
    assert!(
        restored.value.is_empty(),
        "a restore does not return the value"
    );
    assert_eq!(versions(&at_b, "payments-dr", "db-pass").await, before);
    assert_eq!(value(&at_b, "payments-dr", "db-pass", "").await, "third");
    assert_eq!(value(&at_b, "payments-dr", "db-pass", &v2).await, "second");
    // A name in use is refused.
    assert_refused(
        at_b.restore_secret("payments-dr", blob.clone()).await,
        "Conflict",
        "already exists",
    );

    // C refuses the blob for its geography, before anything is written.
    create_vault(&at_c, "payments-eu", "westeurope").await;
    assert_refused(
        at_c.restore_secret("payments-eu", blob.clone()).await,
        "BadParameter",
        "made in geography us",
    );
    assert!(at_c.list_secrets("payments-eu").await.unwrap().is_empty());

    // B refuses the blob altered by one byte, anywhere, and writes nothing.
    create_vault(&at_b, "tamper-kv", "westus").await;
    for position in [0, 10, blob.len() / 2, blob.len() - 1] {
        let mut altered = blob.clone();
        altered[position] ^= 0x01;
        let e = at_b.restore_secret("tamper-kv", altered).await.unwrap_err();
        assert_eq!(e.code(), "BadParameter", "byte {position}: {e}");
    }
    assert!(at_b.list_secrets("tamper-kv").await.unwrap().is_empty());

    // A whole-vault backup of A (200 more secrets, one of them deleted) restores into B.
    for i in 0..200 {
        set(
            &at_a,
            "payments",
            &format!("s{i:03}"),
            &format!("value-{i}"),
            "bulk",
        )
        .await;
    }
    at_a.delete_secret("payments", "s007").await.unwrap();
    // Into a directory: the CLI names the file after the vault.
    let backup_file = work.path().join("payments.backup");
    let out = run(
        a.cli(&[
            "vault",
            "backup",
            "--name",
            "payments",
            "--out",
            work.path().to_str().unwrap(),
        ]),
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vault_blob = std::fs::read(&backup_file).unwrap();
    assert!(
        !vault_blob
            .windows("value-123".len())
            .any(|w| w == b"value-123")
    );

    // C refuses it; B refuses it altered, and creates no vault.
    assert_refused(
        at_c.restore_vault_from(
            "payments-eu2",
            None,
            std::io::Cursor::new(vault_blob.clone()),
        )
        .await,
        "BadParameter",
        "made in geography us",
    );
    let mut altered = vault_blob.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x80;
    assert_refused(
        at_b.restore_vault_from("payments-bad", None, std::io::Cursor::new(altered))
            .await,
        "BadParameter",
        "damaged",
    );
    let truncated = vault_blob[..vault_blob.len() - 100].to_vec();
    assert_refused(
        at_b.restore_vault_from("payments-bad", None, std::io::Cursor::new(truncated))
            .await,
        "BadParameter",
        "damaged",
    );
    assert_eq!(
        at_b.get_vault("payments-bad").await.unwrap_err().code(),
        "VaultNotFound"
    );

    let out = run(
        b.cli(&[
            "vault",
            "restore",
            "--name",
            "payments-copy",
            "--in",
            backup_file.to_str().unwrap(),
        ]),
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = at_b.get_vault("payments-copy").await.unwrap();
    assert_eq!(copy.location, "eastus");
    let listed = at_b.list_secrets("payments-copy").await.unwrap();
    assert_eq!(listed.len(), 200, "db-pass and 199 active bulk secrets");
    assert_eq!(versions(&at_b, "payments-copy", "db-pass").await, before);
    for i in [0, 99, 199] {
        let name = format!("s{i:03}");
        assert_eq!(
            value(&at_b, "payments-copy", &name, "").await,
            value(&at_a, "payments", &name, "").await
        );
    }
    let deleted = at_b
        .list_deleted_secrets("payments-copy", None)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    at_b.recover_deleted_secret("payments-copy", "s007")
        .await
        .unwrap();
    assert_eq!(value(&at_b, "payments-copy", "s007", "").await, "value-7");

    // With the key active in B, B's backups open in A too.
    set(&at_b, "payments-copy", "from-b", "made in B", "r9").await;
    let from_b = at_b.backup_secret("payments-copy", "from-b").await.unwrap();
    at_a.restore_secret("payments", from_b).await.unwrap();
    assert_eq!(value(&at_a, "payments", "from-b", "").await, "made in B");
}
