//! Soft-delete, recovery, purge protection and the purger, against a real node (RocksDB and
//! Raft in-process) whose clock the test moves: retention periods pass in an instant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coffer_crypto::SecretString;
use coffer_service::{
    Caller, CallerKind, Consistency, CreatePrincipal, CreateVault, RequestContext, Service,
    SetAccessPolicy, SetSecret, VaultUpdate,
};
use coffer_types::authz::AccessPolicyPermissions;
use coffer_types::identity::PrincipalKind;
use coffer_types::records::DAY_SECONDS;
use coffer_types::{ErrorCode, InnerCode, ManualClock};

const START: i64 = common::CLOCK_START;

struct Node {
    service: Service,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (service, clock) = common::manual_clock_service(dir.path()).await;
    Node {
        service,
        clock,
        _dir: dir,
    }
}

fn admin() -> RequestContext {
    RequestContext::internal().unwrap()
}

async fn vault(node: &Node, name: &str, retention_days: u32, purge_protection: bool) {
    node.service
        .create_vault(
            &admin(),
            CreateVault {
                name: name.into(),
                location: "eastus".into(),
                retention_days,
                purge_protection,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn set(node: &Node, vault: &str, name: &str, value: &str) -> String {
    node.service
        .set_secret(
            &admin(),
            SetSecret {
                vault: vault.into(),
                name: name.into(),
                value: SecretString::new(value.into()),
                content_type: None,
                enabled: None,
                not_before: None,
                expires: None,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap()
        .record
        .version
}

async fn get(node: &Node, vault: &str, name: &str) -> Result<String, coffer_types::Error> {
    node.service
        .get_secret(&admin(), vault, name, None)
        .await
        .map(|b| b.value.unwrap().expose().to_owned())
}

async fn deleted_names(node: &Node, vault: &str) -> Vec<String> {
    node.service
        .list_deleted_secrets(&admin(), vault, None, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| b.deleted.name)
        .collect()
}

#[tokio::test]
async fn delete_list_deleted_and_recover_every_version() {
    let node = node().await;
    vault(&node, "kv1", 30, false).await;
    let v1 = set(&node, "kv1", "db-pass", "one").await;
    node.clock.advance(10);
    let v2 = set(&node, "kv1", "db-pass", "two").await;
    set(&node, "kv1", "other", "x").await;

    node.clock.advance(100);
    let deleted = node
        .service
        .delete_secret(&admin(), "kv1", "DB-PASS")
        .await
        .unwrap();
    assert_eq!(deleted.deleted.name, "db-pass");
    assert_eq!(deleted.deleted.deleted_date, START + 110);
    assert_eq!(
        deleted.deleted.scheduled_purge_date,
        START + 110 + 30 * DAY_SECONDS
    );
    assert_eq!(deleted.record.version, v2, "the latest version is shown");
    assert_eq!(
        deleted.vault.recovery_level(),
        "CustomizedRecoverable+Purgeable"
    );

    // Gone from every normal read, including reads of a named version and version lists.
    let e = get(&node, "kv1", "db-pass").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
    let e = node
        .service
        .get_secret(&admin(), "kv1", "db-pass", Some(&v1))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
    let names: Vec<String> = node
        .service
        .list_secrets(&admin(), "kv1", None, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| b.record.name)
        .collect();
    assert_eq!(names, ["other"]);
    assert!(
        node.service
            .list_secret_versions(&admin(), "kv1", "db-pass", None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let e = node
        .service
        .update_secret(
            &admin(),
            "kv1",
            "db-pass",
            Some(&v1),
            coffer_service::SecretUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);

    // Listed and shown as deleted.
    assert_eq!(deleted_names(&node, "kv1").await, ["db-pass"]);
    let shown = node
        .service
        .get_deleted_secret(&admin(), "kv1", "db-pass")
        .await
        .unwrap();
    assert_eq!(shown.deleted, deleted.deleted);

    // Recovered with both versions and their values.
    let recovered = node
        .service
        .recover_deleted_secret(&admin(), "kv1", "db-pass")
        .await
        .unwrap();
    assert_eq!(recovered.record.version, v2);
    assert_eq!(get(&node, "kv1", "db-pass").await.unwrap(), "two");
    let old = node
        .service
        .get_secret(&admin(), "kv1", "db-pass", Some(&v1))
        .await
        .unwrap();
    assert_eq!(old.value.unwrap().expose(), "one");
    assert!(deleted_names(&node, "kv1").await.is_empty());
    let e = node
        .service
        .recover_deleted_secret(&admin(), "kv1", "db-pass")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
}

#[tokio::test]
async fn a_deleted_name_cannot_be_reused_until_purged_and_purge_removes_everything() {
    let node = node().await;
    vault(&node, "kv1", 90, false).await;
    let v1 = set(&node, "kv1", "api-key", "old").await;
    node.service
        .delete_secret(&admin(), "kv1", "api-key")
        .await
        .unwrap();
    let e = node
        .service
        .set_secret(
            &admin(),
            SetSecret {
                vault: "kv1".into(),
                name: "API-KEY".into(),
                value: SecretString::new("new".into()),
                content_type: None,
                enabled: None,
                not_before: None,
                expires: None,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.inner, Some(InnerCode::ObjectIsDeletedButRecoverable));
    assert!(
        e.message
            .contains("is currently in a deleted but recoverable state"),
        "{e}"
    );

    node.service
        .purge_deleted_secret(&admin(), "kv1", "api-key")
        .await
        .unwrap();
    assert!(deleted_names(&node, "kv1").await.is_empty());
    let e = node
        .service
        .get_deleted_secret(&admin(), "kv1", "api-key")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
    // The name is free again, and nothing of the purged secret comes back with it.
    set(&node, "kv1", "api-key", "new").await;
    assert_eq!(get(&node, "kv1", "api-key").await.unwrap(), "new");
    let e = node
        .service
        .get_secret(&admin(), "kv1", "api-key", Some(&v1))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
    let versions = node
        .service
        .list_secret_versions(&admin(), "kv1", "api-key", None, None)
        .await
        .unwrap();
    assert_eq!(versions.items.len(), 1);
}

#[tokio::test]
async fn purge_protection_refuses_purges_and_cannot_be_turned_off() {
    let node = node().await;
    vault(&node, "kv1", 7, false).await;
    set(&node, "kv1", "s", "v").await;
    node.service
        .update_vault(
            &admin(),
            "kv1",
            VaultUpdate {
                purge_protection: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = node
        .service
        .update_vault(
            &admin(),
            "kv1",
            VaultUpdate {
                purge_protection: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);

    let deleted = node
        .service
        .delete_secret(&admin(), "kv1", "s")
        .await
        .unwrap();
    assert_eq!(deleted.vault.recovery_level(), "CustomizedRecoverable");
    let e = node
        .service
        .purge_deleted_secret(&admin(), "kv1", "s")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("purge protection is enabled"), "{e}");
    // Still recoverable.
    node.service
        .recover_deleted_secret(&admin(), "kv1", "s")
        .await
        .unwrap();
    assert_eq!(get(&node, "kv1", "s").await.unwrap(), "v");

    // The purger still removes it once retention has passed.
    node.service
        .delete_secret(&admin(), "kv1", "s")
        .await
        .unwrap();
    node.clock.advance(7 * DAY_SECONDS - 1);
    assert_eq!(node.service.purge_due().await.unwrap(), 0);
    assert_eq!(deleted_names(&node, "kv1").await, ["s"]);
    node.clock.advance(1);
    assert_eq!(node.service.purge_due().await.unwrap(), 1);
    assert!(deleted_names(&node, "kv1").await.is_empty());
}

#[tokio::test]
async fn the_purger_removes_only_what_is_due_and_is_idempotent() {
    let node = node().await;
    vault(&node, "short", 7, false).await;
    vault(&node, "long", 90, false).await;
    for i in 0..3 {
        set(&node, "short", &format!("s{i}"), "v").await;
        set(&node, "long", &format!("l{i}"), "v").await;
    }
    for i in 0..3 {
        node.service
            .delete_secret(&admin(), "short", &format!("s{i}"))
            .await
            .unwrap();
        node.service
            .delete_secret(&admin(), "long", &format!("l{i}"))
            .await
            .unwrap();
    }
    // Recovered and deleted again later: its first deletion's schedule no longer applies.
    node.clock.advance(DAY_SECONDS);
    node.service
        .recover_deleted_secret(&admin(), "short", "s2")
        .await
        .unwrap();
    node.service
        .delete_secret(&admin(), "short", "s2")
        .await
        .unwrap();

    node.clock.advance(6 * DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 2);
    assert_eq!(
        node.service.purge_due().await.unwrap(),
        0,
        "a second pass finds nothing"
    );
    assert_eq!(deleted_names(&node, "short").await, ["s2"]);
    assert_eq!(deleted_names(&node, "long").await.len(), 3);
    node.clock.advance(DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 1);
    assert!(deleted_names(&node, "short").await.is_empty());
    node.clock.advance(83 * DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 3);
    assert!(deleted_names(&node, "long").await.is_empty());
    // The purged names are free again.
    set(&node, "short", "s0", "again").await;
    assert_eq!(get(&node, "short", "s0").await.unwrap(), "again");
}

#[tokio::test]
async fn retention_is_bounded_to_7_through_90_days() {
    let node = node().await;
    for days in [6, 91, 365] {
        let e = node
            .service
            .create_vault(
                &admin(),
                CreateVault {
                    name: format!("kv{days}"),
                    location: "eastus".into(),
                    retention_days: days,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadParameter, "{days} days");
    }
    for days in [7, 90] {
        vault(&node, &format!("kv{days}"), days, false).await;
    }
    let default = node
        .service
        .create_vault(
            &admin(),
            CreateVault {
                name: "kvdefault".into(),
                location: "eastus".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(default.retention_days, 90);
    assert_eq!(default.recovery_level(), "Recoverable+Purgeable");
}

#[tokio::test]
async fn vaults_are_soft_deleted_recovered_and_purged() {
    let node = node().await;
    vault(&node, "kv1", 10, false).await;
    set(&node, "kv1", "a", "alpha").await;
    set(&node, "kv1", "b", "beta").await;
    node.service
        .delete_secret(&admin(), "kv1", "b")
        .await
        .unwrap();

    node.service.delete_vault(&admin(), "kv1").await.unwrap();
    let e = node.service.get_vault(&admin(), "kv1").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::VaultNotFound);
    let e = get(&node, "kv1", "a").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::VaultNotFound);
    let listed = node
        .service
        .list_deleted_vaults(&admin(), None, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].scheduled_purge_date,
        START + 10 * DAY_SECONDS
    );
    // The name stays reserved.
    let e = node
        .service
        .create_vault(
            &admin(),
            CreateVault {
                name: "KV1".into(),
                location: "eastus".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);

    // Recovered with its objects, deleted ones still deleted.
    node.service
        .recover_deleted_vault(&admin(), "kv1")
        .await
        .unwrap();
    assert_eq!(get(&node, "kv1", "a").await.unwrap(), "alpha");
    assert_eq!(deleted_names(&node, "kv1").await, ["b"]);
    let e = node
        .service
        .get_deleted_vault(&admin(), "kv1")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::VaultNotFound);

    // Purged: the name is free, and a new vault of that name holds none of the old objects.
    node.service.delete_vault(&admin(), "kv1").await.unwrap();
    node.service
        .purge_deleted_vault(&admin(), "kv1")
        .await
        .unwrap();
    assert!(
        node.service
            .list_deleted_vaults(&admin(), None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    vault(&node, "kv1", 10, false).await;
    let e = get(&node, "kv1", "a").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SecretNotFound);
    assert!(deleted_names(&node, "kv1").await.is_empty());
    // Nothing of the old vault is left for the purger either.
    node.clock.advance(100 * DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 0);
}

#[tokio::test]
async fn deleted_vaults_are_purged_after_retention_unless_recovered_and_protection_holds() {
    let node = node().await;
    vault(&node, "gone", 7, false).await;
    vault(&node, "guarded", 7, true).await;
    set(&node, "gone", "a", "x").await;
    set(&node, "guarded", "a", "x").await;
    node.service.delete_vault(&admin(), "gone").await.unwrap();
    node.service
        .delete_vault(&admin(), "guarded")
        .await
        .unwrap();
    let e = node
        .service
        .purge_deleted_vault(&admin(), "guarded")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("purge protection"), "{e}");

    node.clock.advance(7 * DAY_SECONDS);
    assert_eq!(node.service.purge_due().await.unwrap(), 2);
    assert!(
        node.service
            .list_deleted_vaults(&admin(), None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    vault(&node, "gone", 7, false).await;
    assert_eq!(
        get(&node, "gone", "a").await.unwrap_err().code,
        ErrorCode::SecretNotFound
    );
}

#[tokio::test]
async fn purge_needs_the_purge_permission() {
    let node = node().await;
    let (deployer, ctx) = principal(&node, "deployer").await;
    node.service
        .create_vault(
            &admin(),
            CreateVault {
                name: "kv1".into(),
                location: "eastus".into(),
                retention_days: 7,
                enable_rbac_authorization: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let policy = |secrets: &[&str]| SetAccessPolicy {
        vault: "kv1".into(),
        principal: deployer.clone(),
        permissions: AccessPolicyPermissions {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    };
    let all_but_purge = [
        "get", "list", "set", "delete", "recover", "backup", "restore",
    ];
    node.service
        .set_access_policy(&admin(), policy(&all_but_purge))
        .await
        .unwrap();
    set(&node, "kv1", "s", "v").await;
    node.service
        .delete_secret(&ctx(), "kv1", "s")
        .await
        .unwrap();
    let e = node
        .service
        .purge_deleted_secret(&ctx(), "kv1", "s")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert_eq!(e.inner, Some(InnerCode::AccessDenied));
    assert!(e.message.contains("secrets purge permission"), "{e}");
    assert_eq!(deleted_names(&node, "kv1").await, ["s"]);

    let mut with_purge = all_but_purge.to_vec();
    with_purge.push("purge");
    node.service
        .set_access_policy(&admin(), policy(&with_purge))
        .await
        .unwrap();
    node.service
        .purge_deleted_secret(&ctx(), "kv1", "s")
        .await
        .unwrap();
    assert!(deleted_names(&node, "kv1").await.is_empty());
}

#[tokio::test]
async fn backups_hold_at_most_500_versions_and_restore_refuses_a_deleted_name() {
    let node = node().await;
    node.service.ensure_geography_key().await.unwrap();
    vault(&node, "kv1", 90, false).await;
    vault(&node, "kv2", 90, false).await;
    for i in 0..501 {
        set(&node, "kv1", "busy", &format!("v{i}")).await;
    }
    let e = node
        .service
        .backup_secret(&admin(), "kv1", "busy")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadParameter);
    assert!(e.message.contains("more than 500 versions"), "{e}");

    let first = set(&node, "kv1", "calm", "one").await;
    set(&node, "kv1", "calm", "two").await;
    let blob = node
        .service
        .backup_secret(&admin(), "kv1", "calm")
        .await
        .unwrap();
    // Restoring where the name is deleted is refused, as in Azure; once purged it works.
    set(&node, "kv2", "calm", "other").await;
    node.service
        .delete_secret(&admin(), "kv2", "calm")
        .await
        .unwrap();
    let e = node
        .service
        .restore_secret(&admin(), "kv2", &blob)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.inner, Some(InnerCode::ObjectIsDeletedButRecoverable));
    node.service
        .purge_deleted_secret(&admin(), "kv2", "calm")
        .await
        .unwrap();
    node.service
        .restore_secret(&admin(), "kv2", &blob)
        .await
        .unwrap();
    assert_eq!(get(&node, "kv2", "calm").await.unwrap(), "two");
    let old = node
        .service
        .get_secret(&admin(), "kv2", "calm", Some(&first))
        .await
        .unwrap();
    assert_eq!(old.value.unwrap().expose(), "one");
}

/// A service principal of tenant t1 (created with the tenant if needed) and a context for it.
async fn principal(node: &Node, name: &str) -> (String, impl Fn() -> RequestContext) {
    let _ = node.service.create_tenant(&admin(), "t1", "T1").await;
    let app = node
        .service
        .create_principal(
            &admin(),
            CreatePrincipal {
                tenant: "t1".into(),
                kind: PrincipalKind::ServicePrincipal,
                display_name: name.into(),
                app_id: None,
            },
        )
        .await
        .unwrap();
    let caller = Caller {
        id: app.object_id.clone(),
        kind: CallerKind::Principal(PrincipalKind::ServicePrincipal),
        tenant: Some("t1".into()),
        app_id: app.app_id.clone(),
        issuer: None,
        groups: Vec::new(),
    };
    (app.object_id, move || {
        RequestContext::new(caller.clone(), None, Consistency::Linearizable).unwrap()
    })
}

async fn assign(node: &Node, principal: &str, role: &str, scope: &str) {
    node.service
        .create_role_assignment(
            &admin(),
            coffer_service::CreateRoleAssignment {
                principal: principal.into(),
                role: role.into(),
                scope: scope.into(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn geography_keys_are_not_for_cluster_operators_and_grants_go_with_a_purged_secret() {
    let node = node().await;
    node.service.ensure_geography_key().await.unwrap();
    let passphrase = SecretString::new("a passphrase of some length".into());

    // Operating the cluster does not include handing out the key that opens every backup.
    let (operator, operator_ctx) = principal(&node, "operator").await;
    assign(&node, &operator, "Coffer Cluster Operator", "/").await;
    let e = node
        .service
        .export_geography_key(&operator_ctx(), &passphrase)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    let (owner, owner_ctx) = principal(&node, "owner").await;
    assign(&node, &owner, "Owner", "/").await;
    let (record, wrapped) = node
        .service
        .export_geography_key(&owner_ctx(), &passphrase)
        .await
        .unwrap();
    assert!(wrapped.contains(&record.id), "the export names its key");
    let e = node
        .service
        .import_geography_key(&operator_ctx(), &wrapped, &passphrase, true)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");

    // A grant on one secret ends when the secret is purged: a new secret of that name does
    // not inherit it.
    vault(&node, "kv1", 7, false).await;
    let (reader, reader_ctx) = principal(&node, "reader").await;
    assign(
        &node,
        &reader,
        "Key Vault Secrets User",
        "/vaults/kv1/secrets/shared",
    )
    .await;
    set(&node, "kv1", "shared", "old").await;
    let read = node
        .service
        .get_secret(&reader_ctx(), "kv1", "shared", None)
        .await
        .unwrap();
    assert_eq!(read.value.unwrap().expose(), "old");
    node.service
        .delete_secret(&admin(), "kv1", "shared")
        .await
        .unwrap();
    node.service
        .purge_deleted_secret(&admin(), "kv1", "shared")
        .await
        .unwrap();
    set(&node, "kv1", "shared", "new").await;
    let e = node
        .service
        .get_secret(&reader_ctx(), "kv1", "shared", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
}

#[tokio::test]
async fn a_vault_restore_without_the_restore_permission_creates_nothing() {
    let node = node().await;
    node.service.ensure_geography_key().await.unwrap();
    vault(&node, "source", 7, false).await;
    set(&node, "source", "a", "alpha").await;
    let mut stream = node.service.backup_vault(&admin(), "source").await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.recv().await {
        chunks.push(chunk.unwrap());
    }
    let feed = |chunks: &Vec<Vec<u8>>| {
        let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
        for chunk in chunks {
            tx.try_send(Ok(chunk.clone())).unwrap();
        }
        rx
    };

    // Key Vault Contributor manages vaults but holds no data actions.
    let (contributor, contributor_ctx) = principal(&node, "contributor").await;
    assign(&node, &contributor, "Key Vault Contributor", "/").await;
    let e = node
        .service
        .restore_vault(&contributor_ctx(), "copy", None, feed(&chunks))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(e.message.contains("secrets/restore"), "{e}");
    assert_eq!(
        node.service
            .get_vault(&admin(), "copy")
            .await
            .unwrap_err()
            .code,
        ErrorCode::VaultNotFound
    );

    let restored = node
        .service
        .restore_vault(&admin(), "copy", Some("westus".into()), feed(&chunks))
        .await
        .unwrap();
    assert_eq!(restored.location, "westus");
    assert_eq!(restored.retention_days, 7);
    assert_eq!(get(&node, "copy", "a").await.unwrap(), "alpha");
}
