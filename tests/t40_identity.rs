//! Identity and authorization through the service layer of one real node (RocksDB, openraft,
//! the root key), with an injected clock so that token lifetimes and signing-key overlap are
//! tested by moving time rather than waiting. The gRPC and HTTP surfaces are covered by the
//! process-level tests; this file covers the rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_crypto::jwt::{Jwks, SigningKey};
use coffer_crypto::{RootKey, SecretString};
use coffer_service::{
    Authenticator, Caller, Consistency, CreatePrincipal, CreateRoleAssignment, CreateVault,
    IdentityConfig, NewCredential, RequestContext, Service, SetAccessPolicy, SetSecret, TokenGrant,
    TrustedIssuer, VaultUpdate,
};
use coffer_store::Store;
use coffer_types::authz::AccessPolicyPermissions;
use coffer_types::identity::{PrincipalKind, PrincipalRecord};
use coffer_types::{ErrorCode, InnerCode, ManualClock};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://vault.test";
const ISSUER_BASE: &str = "https://login.test";
const FEDERATED_ISSUER: &str = "https://oidc.ci.test";
const START: i64 = 1_900_000_000;

struct Node {
    service: Service,
    clock: ManualClock,
    store: Store,
    federation_key: SigningKey,
    _dir: tempfile::TempDir,
}

fn identity_config(audiences: &[&str], federation_key: &SigningKey) -> IdentityConfig {
    let jwks: Jwks =
        serde_json::from_value(json!({ "keys": [federation_key.public_jwk()] })).expect("jwks");
    IdentityConfig {
        issuer_base: ISSUER_BASE.into(),
        token_endpoint_bases: vec![ISSUER_BASE.into()],
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        token_lifetime_seconds: 3_600,
        leeway_seconds: 60,
        trusted_issuers: vec![TrustedIssuer {
            issuer: FEDERATED_ISSUER.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
            keys: jwks.keys,
        }],
        bootstrap_token: None,
        default_tenant: None,
    }
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = common::single_node_store(dir.path()).await;
    let clock = ManualClock::new(START);
    let (federation_key, _) = SigningKey::generate().unwrap();
    let service = Service::new(
        store.clone(),
        root,
        Arc::new(clock.clone()),
        identity_config(&[AUDIENCE], &federation_key),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Err(e) = service.ensure_signing_key().await {
        assert!(std::time::Instant::now() < deadline, "no leader: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every test works in tenant t1 (some add others).
    service
        .create_tenant(&RequestContext::internal().unwrap(), "t1", "T1")
        .await
        .unwrap();
    Node {
        service,
        clock,
        store,
        federation_key,
        _dir: dir,
    }
}

fn admin() -> RequestContext {
    RequestContext::internal().unwrap()
}

fn as_caller(caller: Caller) -> RequestContext {
    RequestContext::new(caller, None, Consistency::Linearizable).unwrap()
}

/// A service principal with a client secret: (object id, client id, secret).
async fn service_principal(
    node: &Node,
    tenant: &str,
    name: &str,
) -> (String, String, SecretString) {
    let sp = node
        .service
        .create_principal(
            &admin(),
            CreatePrincipal {
                tenant: tenant.into(),
                kind: PrincipalKind::ServicePrincipal,
                display_name: name.into(),
                app_id: None,
            },
        )
        .await
        .unwrap();
    let added = node
        .service
        .add_credential(
            &admin(),
            &sp.object_id,
            NewCredential::Secret { expires: None },
        )
        .await
        .unwrap();
    (
        sp.object_id,
        sp.app_id.unwrap(),
        added.secret.expect("a generated secret"),
    )
}

/// A service principal without credentials, with the client id `app_id`.
async fn application(node: &Node, tenant: &str, app_id: &str) -> PrincipalRecord {
    node.service
        .create_principal(
            &admin(),
            CreatePrincipal {
                tenant: tenant.into(),
                kind: PrincipalKind::ServicePrincipal,
                display_name: app_id.into(),
                app_id: Some(app_id.into()),
            },
        )
        .await
        .unwrap()
}

async fn token_for(node: &Node, tenant: &str, client_id: &str, secret: &SecretString) -> String {
    node.service
        .issue_token(TokenGrant {
            tenant: tenant.into(),
            grant_type: Some("client_credentials".into()),
            client_id: Some(client_id.into()),
            client_secret: Some(secret.clone()),
            scope: Some(format!("{AUDIENCE}/.default")),
            ..TokenGrant::default()
        })
        .await
        .expect("token issued")
        .access_token
        .expose()
        .to_owned()
}

/// An authenticated caller; each operation gets a context of its own, as each gateway request
/// does (one context is one logical request: its writes are applied once).
#[derive(Debug, Clone)]
struct Session(Caller);

impl Session {
    fn ctx(&self) -> RequestContext {
        as_caller(self.0.clone())
    }
}

/// Authenticates `token` as the gateway does for every request.
fn login(node: &Node, token: &str) -> Result<Session, coffer_types::Error> {
    Ok(Session(node.service.authenticate(Some(token))?))
}

async fn vault(node: &Node, name: &str, rbac: bool) {
    node.service
        .create_vault(
            &admin(),
            CreateVault {
                name: name.into(),
                location: "eastus".into(),
                enable_rbac_authorization: Some(rbac),
                ..CreateVault::default()
            },
        )
        .await
        .unwrap();
    for secret in ["s1", "s2"] {
        node.service
            .set_secret(&admin(), set(name, secret, "v"))
            .await
            .unwrap();
    }
}

fn set(vault: &str, name: &str, value: &str) -> SetSecret {
    SetSecret {
        vault: vault.into(),
        name: name.into(),
        value: SecretString::new(value.into()),
        content_type: None,
        enabled: None,
        not_before: None,
        expires: None,
        tags: Vec::new(),
    }
}

async fn assign(node: &Node, principal: &str, role: &str, scope: &str) -> String {
    node.service
        .create_role_assignment(
            &admin(),
            CreateRoleAssignment {
                principal: principal.into(),
                role: role.into(),
                scope: scope.into(),
            },
        )
        .await
        .unwrap()
        .id
}

/// The five secret operations, each Ok(()) or the refusal's code.
#[derive(Debug, PartialEq, Eq)]
struct Outcomes {
    get: bool,
    list: bool,
    versions: bool,
    set: bool,
    update: bool,
}

async fn try_secret_ops(node: &Node, session: &Session, vault: &str) -> Outcomes {
    let s = &node.service;
    let allowed = |r: Result<(), coffer_types::Error>| match r {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
            assert!(
                matches!(
                    e.inner,
                    Some(InnerCode::ForbiddenByRbac | InnerCode::AccessDenied)
                ),
                "{e:?}"
            );
            assert!(!e.message.contains("\"v\""), "{e}");
            false
        }
    };
    Outcomes {
        get: allowed(
            s.get_secret(&session.ctx(), vault, "s1", None)
                .await
                .map(|_| ()),
        ),
        list: allowed(
            s.list_secrets(&session.ctx(), vault, None, None)
                .await
                .map(|_| ()),
        ),
        versions: allowed(
            s.list_secret_versions(&session.ctx(), vault, "s1", None, None)
                .await
                .map(|_| ()),
        ),
        set: allowed(
            s.set_secret(&session.ctx(), set(vault, "s1", "w"))
                .await
                .map(|_| ()),
        ),
        update: allowed(
            s.update_secret(&session.ctx(), vault, "s1", None, Default::default())
                .await
                .map(|_| ()),
        ),
    }
}

const ALL: Outcomes = Outcomes {
    get: true,
    list: true,
    versions: true,
    set: true,
    update: true,
};
const NONE: Outcomes = Outcomes {
    get: false,
    list: false,
    versions: false,
    set: false,
    update: false,
};
const READ_VALUES: Outcomes = Outcomes {
    get: true,
    list: true,
    versions: true,
    set: false,
    update: false,
};
const METADATA_ONLY: Outcomes = Outcomes {
    get: false,
    list: true,
    versions: true,
    set: false,
    update: false,
};

#[tokio::test]
async fn built_in_roles_and_access_policies_decide_secret_operations() {
    let node = node().await;
    node.service
        .create_tenant(&admin(), "contoso", "Contoso")
        .await
        .unwrap();
    vault(&node, "matrix-kv", true).await;
    // The expected outcomes come from Azure's role definitions (rbac-guide), not from Coffer's
    // tables: Secrets User and Certificate User read values, Reader reads metadata only, and
    // the management, crypto and certificate roles reach no secret.
    let expected: &[(&str, Outcomes)] = &[
        ("Key Vault Administrator", ALL),
        ("Key Vault Secrets Officer", ALL),
        ("Key Vault Secrets User", READ_VALUES),
        ("Key Vault Certificate User", READ_VALUES),
        ("Key Vault Reader", METADATA_ONLY),
        ("Key Vault Crypto Officer", NONE),
        ("Key Vault Crypto User", NONE),
        ("Key Vault Crypto Service Encryption User", NONE),
        ("Key Vault Crypto Service Release User", NONE),
        ("Key Vault Certificates Officer", NONE),
        ("Key Vault Data Access Administrator", NONE),
        ("Key Vault Contributor", NONE),
        ("Owner", NONE),
        ("Contributor", NONE),
        ("Reader", NONE),
        ("User Access Administrator", NONE),
    ];
    for (role, outcomes) in expected {
        let (oid, client_id, secret) = service_principal(&node, "contoso", role).await;
        assign(&node, &oid, role, "/vaults/matrix-kv").await;
        let ctx = login(
            &node,
            &token_for(&node, "contoso", &client_id, &secret).await,
        )
        .unwrap();
        let got = try_secret_ops(&node, &ctx, "matrix-kv").await;
        assert_eq!(&got, outcomes, "role {role}");
    }
    // A principal with no role at all.
    let (_, client_id, secret) = service_principal(&node, "contoso", "nobody").await;
    let ctx = login(
        &node,
        &token_for(&node, "contoso", &client_id, &secret).await,
    )
    .unwrap();
    assert_eq!(try_secret_ops(&node, &ctx, "matrix-kv").await, NONE);

    // The access-policy equivalents, on a vault using the access-policy model.
    vault(&node, "policy-kv", false).await;
    let policies: &[(&[&str], Outcomes)] = &[
        (&["all"], ALL),
        (&["Get", "List", "Set"], ALL),
        (&["get", "list"], READ_VALUES),
        (&["list"], METADATA_ONLY),
        (&["delete", "backup"], NONE),
    ];
    for (permissions, outcomes) in policies {
        let (oid, client_id, secret) = service_principal(&node, "contoso", "policy").await;
        node.service
            .set_access_policy(
                &admin(),
                SetAccessPolicy {
                    vault: "policy-kv".into(),
                    principal: oid,
                    permissions: AccessPolicyPermissions {
                        secrets: permissions.iter().map(|p| (*p).to_owned()).collect(),
                        ..AccessPolicyPermissions::default()
                    },
                },
            )
            .await
            .unwrap();
        let ctx = login(
            &node,
            &token_for(&node, "contoso", &client_id, &secret).await,
        )
        .unwrap();
        assert_eq!(
            &try_secret_ops(&node, &ctx, "policy-kv").await,
            outcomes,
            "policy {permissions:?}"
        );
    }
    // An RBAC role does nothing on an access-policy vault.
    let (oid, client_id, secret) = service_principal(&node, "contoso", "rbac-on-policy").await;
    assign(&node, &oid, "Key Vault Administrator", "/vaults/policy-kv").await;
    let ctx = login(
        &node,
        &token_for(&node, "contoso", &client_id, &secret).await,
    )
    .unwrap();
    assert_eq!(try_secret_ops(&node, &ctx, "policy-kv").await, NONE);
    let refused = node
        .service
        .get_secret(&ctx.ctx(), "policy-kv", "s1", None)
        .await
        .unwrap_err();
    assert_eq!(refused.inner, Some(InnerCode::AccessDenied));
    assert!(
        refused.message.contains(
            "does not have secrets get permission on key vault 'policy-kv;location=eastus'"
        ),
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains(&format!("oid={oid}")),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn grants_hold_exactly_where_they_were_given() {
    let node = node().await;
    vault(&node, "vault-a", true).await;
    vault(&node, "vault-b", true).await;

    // Vault scope: A yes, B no.
    let (oid, client_id, secret) = service_principal(&node, "t1", "vault-scoped").await;
    assign(&node, &oid, "Key Vault Secrets User", "/vaults/vault-a").await;
    let ctx = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    assert!(
        node.service
            .get_secret(&ctx.ctx(), "vault-a", "s1", None)
            .await
            .is_ok()
    );
    let e = node
        .service
        .get_secret(&ctx.ctx(), "vault-b", "s1", None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.inner),
        (ErrorCode::Forbidden, Some(InnerCode::ForbiddenByRbac))
    );
    assert!(
        e.message
            .contains("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")
    );

    // Object scope: s1 yes, its neighbour s2 no, and no listing of the vault.
    let (oid, client_id, secret) = service_principal(&node, "t1", "secret-scoped").await;
    assign(
        &node,
        &oid,
        "Key Vault Secrets User",
        "/vaults/vault-a/secrets/S1",
    )
    .await;
    let ctx = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    let got = node
        .service
        .get_secret(&ctx.ctx(), "vault-a", "s1", None)
        .await
        .unwrap();
    assert_eq!(got.value.unwrap().expose(), "v");
    assert!(
        node.service
            .get_secret(&ctx.ctx(), "vault-a", "s2", None)
            .await
            .is_err()
    );
    assert!(
        node.service
            .list_secrets(&ctx.ctx(), "vault-a", None, None)
            .await
            .is_err()
    );

    // Cluster scope reaches every vault, but grants no management rights.
    let (oid, client_id, secret) = service_principal(&node, "t1", "everywhere").await;
    assign(&node, &oid, "Key Vault Secrets Officer", "/").await;
    let ctx = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    assert!(
        node.service
            .set_secret(&ctx.ctx(), set("vault-b", "s3", "x"))
            .await
            .is_ok()
    );
    let e = node
        .service
        .create_vault(
            &ctx.ctx(),
            CreateVault {
                name: "not-mine".into(),
                location: "eastus".into(),
                ..CreateVault::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(node.store.vault("not-mine").unwrap().is_none());

    // Removing the assignment removes the right at once (no token change needed).
    let id = node
        .service
        .list_role_assignments(&admin(), Some("/"), Some(&oid))
        .await
        .unwrap()[0]
        .id
        .clone();
    node.service
        .delete_role_assignment(&admin(), &id)
        .await
        .unwrap();
    assert!(
        node.service
            .set_secret(&ctx.ctx(), set("vault-b", "s3", "y"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn groups_grant_to_their_members() {
    let node = node().await;
    vault(&node, "group-kv", true).await;
    let group = node
        .service
        .create_principal(
            &admin(),
            CreatePrincipal {
                tenant: "t1".into(),
                kind: PrincipalKind::Group,
                display_name: "readers".into(),
                app_id: None,
            },
        )
        .await
        .unwrap();
    assign(
        &node,
        &group.object_id,
        "Key Vault Secrets User",
        "/vaults/group-kv",
    )
    .await;
    let (oid, client_id, secret) = service_principal(&node, "t1", "member").await;
    let token = token_for(&node, "t1", &client_id, &secret).await;
    let ctx = login(&node, &token).unwrap();
    assert!(
        node.service
            .get_secret(&ctx.ctx(), "group-kv", "s1", None)
            .await
            .is_err()
    );

    node.service
        .set_group_membership(&admin(), &group.object_id, &oid, true)
        .await
        .unwrap();
    // The same token: membership is read per request, not baked into the token.
    let ctx = login(&node, &token).unwrap();
    assert!(
        node.service
            .get_secret(&ctx.ctx(), "group-kv", "s1", None)
            .await
            .is_ok()
    );

    // Deleting the group takes its grants and the membership with it.
    node.service
        .delete_principal(&admin(), &group.object_id)
        .await
        .unwrap();
    let ctx = login(&node, &token).unwrap();
    assert!(
        node.service
            .get_secret(&ctx.ctx(), "group-kv", "s1", None)
            .await
            .is_err()
    );
    assert!(
        node.store
            .principal(&oid)
            .unwrap()
            .unwrap()
            .member_of
            .is_empty()
    );
}

#[tokio::test]
async fn switching_the_model_keeps_both_sets_of_entries() {
    let node = node().await;
    vault(&node, "switch-kv", true).await;
    let (rbac_oid, rbac_id, rbac_secret) = service_principal(&node, "t1", "rbac").await;
    let (policy_oid, policy_id, policy_secret) = service_principal(&node, "t1", "policy").await;
    assign(
        &node,
        &rbac_oid,
        "Key Vault Secrets User",
        "/vaults/switch-kv",
    )
    .await;
    node.service
        .set_access_policy(
            &admin(),
            SetAccessPolicy {
                vault: "switch-kv".into(),
                principal: policy_oid.clone(),
                permissions: AccessPolicyPermissions {
                    secrets: vec!["get".into()],
                    ..AccessPolicyPermissions::default()
                },
            },
        )
        .await
        .unwrap();
    let rbac = login(&node, &token_for(&node, "t1", &rbac_id, &rbac_secret).await).unwrap();
    let policy = login(
        &node,
        &token_for(&node, "t1", &policy_id, &policy_secret).await,
    )
    .unwrap();
    let can_get = |ctx: Session| {
        let s = node.service.clone();
        async move {
            s.get_secret(&ctx.ctx(), "switch-kv", "s1", None)
                .await
                .is_ok()
        }
    };
    assert!(can_get(rbac.clone()).await);
    assert!(!can_get(policy.clone()).await);
    let switch = |rbac_on: bool| {
        let s = node.service.clone();
        async move {
            s.update_vault(
                &admin(),
                "switch-kv",
                VaultUpdate {
                    enable_rbac_authorization: Some(rbac_on),
                    ..VaultUpdate::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let v = switch(false).await;
    assert!(!v.enable_rbac_authorization);
    assert!(!can_get(rbac.clone()).await);
    assert!(can_get(policy.clone()).await);
    switch(true).await;
    assert!(can_get(rbac.clone()).await);
    assert!(!can_get(policy.clone()).await);

    // Switching needs the right to change role assignments, not only to write the vault.
    let (oid, client_id, secret) = service_principal(&node, "t1", "contributor").await;
    assign(&node, &oid, "Key Vault Contributor", "/vaults/switch-kv").await;
    let contributor = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    let e = node
        .service
        .update_vault(
            &contributor.ctx(),
            "switch-kv",
            VaultUpdate {
                enable_rbac_authorization: Some(false),
                ..VaultUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(
        e.message
            .contains("Microsoft.Authorization/roleAssignments/write"),
        "{e}"
    );
    assert!(
        node.store
            .vault("switch-kv")
            .unwrap()
            .unwrap()
            .enable_rbac_authorization
    );
}

#[tokio::test]
async fn nobody_grants_more_than_it_holds() {
    let node = node().await;
    vault(&node, "grant-kv", true).await;
    let (target, _, _) = service_principal(&node, "t1", "target").await;

    // User Access Administrator may write role assignments but holds no data actions.
    let (oid, client_id, secret) = service_principal(&node, "t1", "uaa").await;
    assign(&node, &oid, "User Access Administrator", "/vaults/grant-kv").await;
    let uaa = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    let grant = |session: Session, role: &'static str, principal: String| {
        let s = node.service.clone();
        async move {
            s.create_role_assignment(
                &session.ctx(),
                CreateRoleAssignment {
                    principal,
                    role: role.into(),
                    scope: "/vaults/grant-kv".into(),
                },
            )
            .await
        }
    };
    let e = grant(uaa.clone(), "Key Vault Secrets Officer", target.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    // Nor to itself.
    assert!(
        grant(uaa.clone(), "Key Vault Administrator", oid.clone())
            .await
            .is_err()
    );
    assert!(node.store.role_assignments_of(&target).unwrap().is_empty());
    // It may hand out what it holds (Reader's management reads, which it has through */read).
    assert!(grant(uaa, "Reader", target.clone()).await.is_ok());

    // Key Vault Data Access Administrator assigns Key Vault data roles without holding them,
    // and nothing else.
    let (oid, client_id, secret) = service_principal(&node, "t1", "dataadmin").await;
    assign(
        &node,
        &oid,
        "Key Vault Data Access Administrator",
        "/vaults/grant-kv",
    )
    .await;
    let daa = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    assert!(
        grant(daa.clone(), "Key Vault Secrets User", target.clone())
            .await
            .is_ok()
    );
    assert!(grant(daa.clone(), "Owner", target.clone()).await.is_err());
    assert!(
        grant(daa, "User Access Administrator", oid.clone())
            .await
            .is_err()
    );

    // Through access policies: a Key Vault Contributor may write policies, but not ones
    // granting what it does not hold.
    vault(&node, "policy-grant", false).await;
    let (oid, client_id, secret) = service_principal(&node, "t1", "kvc").await;
    assign(&node, &oid, "Key Vault Contributor", "/vaults/policy-grant").await;
    let kvc = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    let e = node
        .service
        .set_access_policy(
            &kvc.ctx(),
            SetAccessPolicy {
                vault: "policy-grant".into(),
                principal: oid.clone(),
                permissions: AccessPolicyPermissions {
                    secrets: vec!["get".into()],
                    ..AccessPolicyPermissions::default()
                },
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(
        node.store
            .vault("policy-grant")
            .unwrap()
            .unwrap()
            .access_policies
            .is_empty()
    );

    // An identity administrator manages credentials and groups, but cannot take over a
    // principal (or join a group) that holds more than it does.
    let (oid, client_id, secret) = service_principal(&node, "t1", "idadmin").await;
    assign(&node, &oid, "Coffer Identity Administrator", "/").await;
    let idadmin = login(&node, &token_for(&node, "t1", &client_id, &secret).await).unwrap();
    let (owner, _, _) = service_principal(&node, "t1", "owner").await;
    assign(&node, &owner, "Owner", "/").await;
    let before = node.store.principal(&owner).unwrap().unwrap().secrets.len();
    let e = node
        .service
        .add_credential(
            &idadmin.ctx(),
            &owner,
            NewCredential::Secret { expires: None },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert_eq!(
        node.store.principal(&owner).unwrap().unwrap().secrets.len(),
        before
    );
    let (plain, _, _) = service_principal(&node, "t1", "plain").await;
    assert!(
        node.service
            .add_credential(
                &idadmin.ctx(),
                &plain,
                NewCredential::Secret { expires: None }
            )
            .await
            .is_ok()
    );
    let admins = node
        .service
        .create_principal(
            &idadmin.ctx(),
            CreatePrincipal {
                tenant: "t1".into(),
                kind: PrincipalKind::Group,
                display_name: "vault-admins".into(),
                app_id: None,
            },
        )
        .await
        .unwrap();
    assign(
        &node,
        &admins.object_id,
        "Key Vault Administrator",
        "/vaults/grant-kv",
    )
    .await;
    let e = node
        .service
        .set_group_membership(&idadmin.ctx(), &admins.object_id, &oid, true)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    // A principal named in an access policy holds that policy's rights too.
    let (policy_holder, _, _) = service_principal(&node, "t1", "policy-holder").await;
    node.service
        .set_access_policy(
            &admin(),
            SetAccessPolicy {
                vault: "policy-grant".into(),
                principal: policy_holder.clone(),
                permissions: AccessPolicyPermissions {
                    secrets: vec!["get".into()],
                    ..AccessPolicyPermissions::default()
                },
            },
        )
        .await
        .unwrap();
    assert!(
        node.service
            .add_credential(
                &idadmin.ctx(),
                &policy_holder,
                NewCredential::Secret { expires: None }
            )
            .await
            .is_err()
    );
}

/// A token's parts, decoded.
fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims, it.next().unwrap().to_owned())
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused_and_change_nothing() {
    let node = node().await;
    node.service
        .create_tenant(&admin(), "t2", "T2")
        .await
        .unwrap();
    let (oid, client_id, secret) = service_principal(&node, "t1", "victim").await;
    let tenant1_vault = RequestContext::new(
        Caller {
            tenant: Some("t1".into()),
            ..Caller::bootstrap()
        },
        None,
        Consistency::Linearizable,
    )
    .unwrap();
    // A vault of tenant t1 (made by a t1 caller), where the principal may write.
    node.service
        .create_vault(
            &tenant1_vault,
            CreateVault {
                name: "attack-kv".into(),
                location: "eastus".into(),
                ..CreateVault::default()
            },
        )
        .await
        .unwrap();
    node.service
        .set_secret(&admin(), set("attack-kv", "s1", "original"))
        .await
        .unwrap();
    assign(
        &node,
        &oid,
        "Key Vault Secrets Officer",
        "/vaults/attack-kv",
    )
    .await;
    let token = token_for(&node, "t1", &client_id, &secret).await;
    assert!(login(&node, &token).is_ok());
    let (header, claims, signature) = parts(&token);

    let refused = |forged: String, what: &str| {
        let e = login(&node, &forged).expect_err(what);
        assert_eq!(e.code, ErrorCode::Unauthorized, "{what}: {e}");
        assert!(!e.message.contains(&forged), "{what}: the token is echoed");
    };
    // Tampered payload, original signature.
    let mut more = claims.clone();
    more["oid"] = json!("00000000-0000-4000-8000-000000000000");
    refused(
        format!("{}.{}.{signature}", encode(&header), encode(&more)),
        "tampered payload",
    );
    // alg none, no signature.
    let none = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    refused(
        format!("{}.{}.", encode(&none), encode(&claims)),
        "alg none",
    );
    // HS256 keyed with the public key the JWKS publishes.
    let hs = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let jwks = serde_json::to_vec(&node.service.jwks().unwrap()).unwrap();
    let mac = URL_SAFE_NO_PAD.encode(&jwks[..32]);
    refused(
        format!("{}.{}.{mac}", encode(&hs), encode(&claims)),
        "HS256 confusion",
    );
    // The right header and claims signed by another key; and a key nobody knows.
    let (other, _) = SigningKey::generate().unwrap();
    let by_other = other.sign(claims.as_object().unwrap()).unwrap();
    let (_, _, other_sig) = parts(&by_other);
    refused(
        format!("{}.{}.{other_sig}", encode(&header), encode(&claims)),
        "wrong key",
    );
    refused(by_other, "unknown kid");
    // Wrong audience: a token signed by this cluster's own key (the same root key opens it)
    // but issued for another audience.
    let (fed_key, _) = SigningKey::generate().unwrap();
    let other_audience = Service::new(
        node.store.clone(),
        RootKey::load(&node._dir.path().join("root.key")).unwrap(),
        Arc::new(node.clock.clone()),
        identity_config(&["https://elsewhere.test"], &fed_key),
    );
    let elsewhere = other_audience
        .issue_token(TokenGrant {
            tenant: "t1".into(),
            grant_type: Some("client_credentials".into()),
            client_id: Some(client_id.clone()),
            client_secret: Some(secret.clone()),
            ..TokenGrant::default()
        })
        .await
        .expect("a token for the other audience");
    assert_eq!(
        parts(elsewhere.access_token.expose()).1["aud"],
        "https://elsewhere.test"
    );
    refused(elsewhere.access_token.expose().to_owned(), "wrong audience");
    // Another tenant's token on this tenant's vault: 401, as Azure's AKV10032.
    let (oid2, client2, secret2) = service_principal(&node, "t2", "outsider").await;
    assign(
        &node,
        &oid2,
        "Key Vault Secrets Officer",
        "/vaults/attack-kv",
    )
    .await;
    let outsider = login(&node, &token_for(&node, "t2", &client2, &secret2).await).unwrap();
    let e = node
        .service
        .set_secret(&outsider.ctx(), set("attack-kv", "s1", "overwritten"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");
    assert!(e.message.contains("AKV10032"), "{e}");

    // Tenants are a boundary for management too: an Owner of t2 can neither delete t1's
    // vault nor manage t1's principals.
    let (owner2, owner2_client, owner2_secret) = service_principal(&node, "t2", "owner2").await;
    assign(&node, &owner2, "Owner", "/").await;
    assign(&node, &owner2, "Coffer Identity Administrator", "/").await;
    let owner2 = login(
        &node,
        &token_for(&node, "t2", &owner2_client, &owner2_secret).await,
    )
    .unwrap();
    let e = node
        .service
        .delete_vault(&owner2.ctx(), "attack-kv")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");
    let e = node
        .service
        .add_credential(&owner2.ctx(), &oid, NewCredential::Secret { expires: None })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(
        node.service
            .create_principal(
                &owner2.ctx(),
                CreatePrincipal {
                    tenant: "t1".into(),
                    kind: PrincipalKind::ServicePrincipal,
                    display_name: "planted".into(),
                    app_id: None,
                },
            )
            .await
            .is_err()
    );
    assert!(node.store.vault("attack-kv").unwrap().is_some());

    // Not yet valid: the clock behind the token's nbf by more than the leeway.
    node.clock.set(START - 120);
    refused(token.clone(), "not yet valid");
    node.clock.set(START);
    assert!(login(&node, &token).is_ok());
    // Expired: after exp plus the leeway, even though the token was cached as verified.
    node.clock.advance(3_600 + 61);
    refused(token.clone(), "expired");
    node.clock.set(START);

    // Replay after the principal is deleted.
    assert!(login(&node, &token).is_ok());
    node.service.delete_principal(&admin(), &oid).await.unwrap();
    refused(token, "principal deleted");

    // Nothing was written by any of it.
    let value = node
        .service
        .get_secret(&admin(), "attack-kv", "s1", None)
        .await
        .unwrap();
    assert_eq!(value.value.unwrap().expose(), "original");
    let versions = node
        .service
        .list_secret_versions(&admin(), "attack-kv", "s1", None, None)
        .await
        .unwrap();
    assert_eq!(versions.items.len(), 1);
}

#[tokio::test]
async fn bad_client_credentials_get_oauth_errors() {
    let node = node().await;
    let (_, client_id, secret) = service_principal(&node, "t1", "app").await;
    let grant = |client: &str, secret: &str, scope: Option<&str>, tenant: &str| TokenGrant {
        tenant: tenant.into(),
        grant_type: Some("client_credentials".into()),
        client_id: Some(client.into()),
        client_secret: Some(SecretString::new(secret.into())),
        scope: scope.map(str::to_owned),
        ..TokenGrant::default()
    };
    let wrong = node
        .service
        .issue_token(grant(&client_id, "cfs_wrong", None, "t1"))
        .await
        .unwrap_err();
    assert_eq!((wrong.status, wrong.error), (401, "invalid_client"));
    assert!(!wrong.description.contains("cfs_wrong"));
    let scope = node
        .service
        .issue_token(grant(
            &client_id,
            secret.expose(),
            Some("https://evil.test/.default"),
            "t1",
        ))
        .await
        .unwrap_err();
    assert_eq!(scope.error, "invalid_scope");
    let tenant = node
        .service
        .issue_token(grant(&client_id, secret.expose(), None, "t2"))
        .await
        .unwrap_err();
    assert_eq!(tenant.status, 400);
    let unknown = node
        .service
        .issue_token(grant("no-such-app", secret.expose(), None, "t1"))
        .await
        .unwrap_err();
    assert_eq!(unknown.error, "unauthorized_client");
    // The right secret works, and the token's claims say who it is for.
    let token = token_for(&node, "t1", &client_id, &secret).await;
    let (header, claims, _) = parts(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], format!("{ISSUER_BASE}/t1/v2.0"));
    assert_eq!(claims["tid"], "t1");
    assert_eq!(claims["appid"], client_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3_600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 36));
}

#[tokio::test]
async fn signing_keys_rotate_with_an_overlap_window() {
    let node = node().await;
    let (_, client_id, secret) = service_principal(&node, "t1", "app").await;
    let old = token_for(&node, "t1", &client_id, &secret).await;
    let first_kid = parts(&old).0["kid"].as_str().unwrap().to_owned();
    let new_kid = node.service.rotate_signing_key(&admin()).await.unwrap();
    assert_ne!(new_kid, first_kid);
    let new = token_for(&node, "t1", &client_id, &secret).await;
    assert_eq!(parts(&new).0["kid"], new_kid.as_str());
    // During the overlap both keys are published and both tokens work.
    let kids: Vec<String> = node
        .service
        .jwks()
        .unwrap()
        .keys
        .iter()
        .filter_map(|k| k.kid.clone())
        .collect();
    assert!(
        kids.contains(&first_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert!(login(&node, &old).is_ok());
    // After it (token lifetime + leeway), the old key is gone; tokens of the new key work.
    node.clock.advance(3_600 + 60 + 1);
    assert_eq!(
        login(&node, &old).unwrap_err().code,
        ErrorCode::Unauthorized
    );
    let fresh = token_for(&node, "t1", &client_id, &secret).await;
    assert!(login(&node, &fresh).is_ok());
    let kids: Vec<String> = node
        .service
        .jwks()
        .unwrap()
        .keys
        .iter()
        .filter_map(|k| k.kid.clone())
        .collect();
    assert_eq!(kids, vec![new_kid.clone()]);

    // The periodic rotation: nothing while the key is young, a new key once it is 30 days old.
    let month = 30 * 24 * 3_600;
    assert_eq!(
        node.service.rotate_signing_key_if_due(month).await.unwrap(),
        None
    );
    node.clock.advance(month);
    let rotated = node.service.rotate_signing_key_if_due(month).await.unwrap();
    assert!(rotated.is_some_and(|kid| kid != new_kid));
}

/// An external OIDC token for `subject`, signed by `key`.
fn external_token(key: &SigningKey, issuer: &str, subject: &str, now: i64) -> String {
    let claims = json!({
        "iss": issuer,
        "sub": subject,
        "aud": "api://AzureADTokenExchange",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    });
    key.sign(claims.as_object().unwrap()).unwrap()
}

#[tokio::test]
async fn federated_tokens_are_exchanged_only_from_trusted_issuers() {
    let node = node().await;
    vault(&node, "fed-kv", true).await;
    let sp = application(&node, "t1", "ci-deployer").await;
    node.service
        .add_credential(
            &admin(),
            "ci-deployer",
            NewCredential::Federated {
                name: "main-branch".into(),
                issuer: FEDERATED_ISSUER.into(),
                subject: "repo:contoso/app:ref:refs/heads/main".into(),
                audiences: Vec::new(),
            },
        )
        .await
        .unwrap();
    assign(
        &node,
        &sp.object_id,
        "Key Vault Secrets User",
        "/vaults/fed-kv",
    )
    .await;
    let exchange = |assertion: String| {
        let s = node.service.clone();
        async move {
            s.issue_token(TokenGrant {
                tenant: "t1".into(),
                grant_type: Some("client_credentials".into()),
                client_id: Some("ci-deployer".into()),
                client_assertion_type: Some(coffer_service::CLIENT_ASSERTION_TYPE.into()),
                client_assertion: Some(SecretString::new(assertion)),
                ..TokenGrant::default()
            })
            .await
        }
    };
    let good = external_token(
        &node.federation_key,
        FEDERATED_ISSUER,
        "repo:contoso/app:ref:refs/heads/main",
        START,
    );
    let issued = exchange(good).await.expect("exchanged");
    let ctx = login(&node, issued.access_token.expose()).unwrap();
    let got = node
        .service
        .get_secret(&ctx.ctx(), "fed-kv", "s1", None)
        .await
        .unwrap();
    assert_eq!(got.value.unwrap().expose(), "v");

    // Another subject of the trusted issuer; an untrusted issuer (even signed by the trusted
    // key); the trusted issuer's name signed by another key; an expired external token.
    let other_branch = external_token(
        &node.federation_key,
        FEDERATED_ISSUER,
        "repo:contoso/app:ref:refs/heads/feature",
        START,
    );
    let untrusted = external_token(
        &node.federation_key,
        "https://evil.test",
        "repo:contoso/app:ref:refs/heads/main",
        START,
    );
    let (other_key, _) = SigningKey::generate().unwrap();
    let forged = external_token(
        &other_key,
        FEDERATED_ISSUER,
        "repo:contoso/app:ref:refs/heads/main",
        START,
    );
    let expired = external_token(
        &node.federation_key,
        FEDERATED_ISSUER,
        "repo:contoso/app:ref:refs/heads/main",
        START - 3_600,
    );
    for (what, assertion) in [
        ("other subject", other_branch),
        ("untrusted issuer", untrusted),
        ("forged signature", forged),
        ("expired", expired),
    ] {
        let e = exchange(assertion).await.expect_err(what);
        assert_eq!(
            (e.status, e.error),
            (401, "invalid_client"),
            "{what}: {e:?}"
        );
    }
}

#[tokio::test]
async fn client_certificate_assertions_are_bound_to_the_endpoint_and_short_lived() {
    let node = node().await;
    let sp = application(&node, "t1", "cert-app").await;
    // A P-256 certificate and its key (the dev PKI's server pair will do).
    let pki = coffer_crypto::pki::generate_dev_pki(&["cert-app".into()]).unwrap();
    node.service
        .add_credential(
            &admin(),
            &sp.object_id,
            NewCredential::Certificate {
                certificate: pki.server_cert_pem.as_bytes().to_vec(),
            },
        )
        .await
        .unwrap();
    let der = coffer_crypto::jwt::certificates_from_pem(pki.server_cert_pem.as_bytes()).unwrap();
    let (_, sha256) = coffer_crypto::jwt::certificate_thumbprints(&der[0]);
    let pkcs8 =
        coffer_client::pkcs8_private_key_from_pem(pki.server_key_pem.expose().as_bytes()).unwrap();
    let key = SigningKey::from_pkcs8(&pkcs8).unwrap();
    let endpoint = format!("{ISSUER_BASE}/t1/oauth2/v2.0/token");
    let assertion = |aud: &str, exp: Value| {
        let header = json!({ "x5t#S256": sha256 });
        let claims = json!({
            "iss": "cert-app", "sub": "cert-app", "aud": aud, "jti": "j1",
            "iat": START, "nbf": START, "exp": exp,
        });
        key.sign_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
            .unwrap()
    };
    let exchange = |assertion: String| {
        let s = node.service.clone();
        let endpoint = endpoint.clone();
        async move {
            s.issue_token(TokenGrant {
                tenant: "t1".into(),
                grant_type: Some("client_credentials".into()),
                client_id: Some("cert-app".into()),
                client_assertion_type: Some(coffer_service::CLIENT_ASSERTION_TYPE.into()),
                client_assertion: Some(SecretString::new(assertion)),
                endpoint_urls: vec![endpoint],
                ..TokenGrant::default()
            })
            .await
        }
    };
    // Ten minutes, fractional seconds as MSAL writes them: accepted.
    let ok = exchange(assertion(&endpoint, json!(START as f64 + 600.25))).await;
    assert!(ok.is_ok(), "{ok:?}");
    // Another endpoint's audience; a lifetime of years (as an integer and as a float).
    for (what, bad) in [
        (
            "other audience",
            assertion(
                "https://elsewhere.test/t1/oauth2/v2.0/token",
                json!(START + 600),
            ),
        ),
        (
            "long-lived",
            assertion(&endpoint, json!(START + 400 * 86_400)),
        ),
        (
            "long-lived float",
            assertion(&endpoint, json!(4.102_444_8e9)),
        ),
        ("absurd float", assertion(&endpoint, json!(1e300))),
    ] {
        let e = exchange(bad).await.expect_err(what);
        assert_eq!(e.error, "invalid_client", "{what}");
    }
    // Signed by a key that is not the certificate's.
    let (other, _) = SigningKey::generate().unwrap();
    let header = json!({ "x5t#S256": sha256 });
    let claims = json!({
        "iss": "cert-app", "sub": "cert-app", "aud": endpoint,
        "iat": START, "nbf": START, "exp": START + 600,
    });
    let forged = other
        .sign_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap();
    assert!(exchange(forged).await.is_err());
}
