//! What identity costs per request, in-process on one real node (RocksDB, openraft, the root
//! key; no network, so the figures are not drowned by TLS and scheduling noise):
//! - authenticating a bootstrap token, an access token already verified (the cache), and an
//!   access token seen for the first time (ES256 signature and claims);
//! - a secret get through the service layer as the bootstrap caller (no roles consulted) and
//!   as a principal whose roles decide it (cached grants).
//!
//! Run: `cargo bench --profile dev --bench identity`

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::{RootKey, SecretString, TokenHash};
use coffer_service::{
    Authenticator, Caller, Consistency, CreatePrincipal, CreateRoleAssignment, CreateVault,
    IdentityConfig, NewCredential, RequestContext, Service, SetSecret, TokenGrant,
};
use coffer_store::{Bootstrap, NoTransport, RaftTimeouts, Store, StoreConfig};
use coffer_types::SystemClock;
use coffer_types::identity::PrincipalKind;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const BOOTSTRAP: &str = "cft_bench-bootstrap-token";

fn setup(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> (Service, String) {
    runtime.block_on(async {
        let store = Store::open(StoreConfig {
            node_id: 1,
            data_dir: dir.join("data"),
            advertise_addr: "127.0.0.1:1".into(),
            region: "local".into(),
            snapshot_every: 100_000,
            timeouts: RaftTimeouts::LAN,
            bootstrap: Bootstrap::Alone,
            transport: Arc::new(NoTransport),
        })
        .await
        .expect("store");
        let service = Service::new(
            store,
            RootKey::generate(&dir.join("root.key")).expect("root key"),
            Arc::new(SystemClock),
            IdentityConfig {
                issuer_base: "https://bench.test".into(),
                token_endpoint_bases: vec!["https://bench.test".into()],
                audiences: vec!["https://vault.bench.test".into()],
                token_lifetime_seconds: 3_600,
                leeway_seconds: 60,
                trusted_issuers: Vec::new(),
                bootstrap_token: Some(TokenHash::of(BOOTSTRAP)),
                default_tenant: None,
            },
        );
        while service.ensure_signing_key().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = || RequestContext::internal().expect("context");
        service
            .create_tenant(&admin(), "bench", "Bench")
            .await
            .expect("tenant");
        service
            .create_vault(
                &admin(),
                CreateVault {
                    name: "bench-kv".into(),
                    location: "eastus".into(),
                    ..CreateVault::default()
                },
            )
            .await
            .expect("vault");
        service
            .set_secret(
                &admin(),
                SetSecret {
                    vault: "bench-kv".into(),
                    name: "bench-get".into(),
                    value: SecretString::new("v".repeat(1_024)),
                    content_type: None,
                    enabled: None,
                    not_before: None,
                    expires: None,
                    tags: Vec::new(),
                },
            )
            .await
            .expect("secret");
        let sp = service
            .create_principal(
                &admin(),
                CreatePrincipal {
                    tenant: "bench".into(),
                    kind: PrincipalKind::ServicePrincipal,
                    display_name: "reader".into(),
                    app_id: Some("reader".into()),
                },
            )
            .await
            .expect("principal");
        let secret = service
            .add_credential(&admin(), "reader", NewCredential::Secret { expires: None })
            .await
            .expect("secret credential")
            .secret
            .expect("generated secret");
        service
            .create_role_assignment(
                &admin(),
                CreateRoleAssignment {
                    principal: sp.object_id,
                    role: "Key Vault Secrets User".into(),
                    scope: "/vaults/bench-kv".into(),
                },
            )
            .await
            .expect("role");
        (service, secret.expose().to_owned())
    })
}

async fn token(service: &Service, secret: &str) -> String {
    service
        .issue_token(TokenGrant {
            tenant: "bench".into(),
            grant_type: Some("client_credentials".into()),
            client_id: Some("reader".into()),
            client_secret: Some(SecretString::new(secret.to_owned())),
            ..TokenGrant::default()
        })
        .await
        .expect("token")
        .access_token
        .expose()
        .to_owned()
}

fn identity(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (service, secret) = setup(&runtime, dir.path());
    let access = runtime.block_on(token(&service, &secret));

    c.bench_function("authenticate_bootstrap_token", |b| {
        b.iter(|| service.authenticate(Some(BOOTSTRAP)).expect("bootstrap"))
    });
    c.bench_function("authenticate_access_token_cached", |b| {
        b.iter(|| service.authenticate(Some(&access)).expect("cached"))
    });
    c.bench_function("authenticate_access_token_first_use", |b| {
        b.iter_batched(
            || runtime.block_on(token(&service, &secret)),
            |fresh| service.authenticate(Some(&fresh)).expect("fresh"),
            BatchSize::SmallInput,
        )
    });

    let get = |caller: Caller| {
        let service = service.clone();
        async move {
            let ctx = RequestContext::new(caller, None, Consistency::Linearizable).expect("ctx");
            service
                .get_secret(&ctx, "bench-kv", "bench-get", None)
                .await
                .expect("get")
        }
    };
    c.bench_function("secret_get_service_bootstrap", |b| {
        b.to_async(&runtime).iter(|| get(Caller::bootstrap()))
    });
    c.bench_function("secret_get_service_access_token", |b| {
        b.to_async(&runtime)
            .iter(|| get(service.authenticate(Some(&access)).expect("caller")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = identity
}
criterion_main!(benches);
