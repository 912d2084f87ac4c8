//! End-to-end checks of `CofferClient` against an in-process TLS gRPC server with mock services:
//! the TLS trust and server-name set-up, the bearer token on every call, paging, error
//! mapping from status metadata, waiting out `429 Throttled`, the secret cache, the source
//! address, and the network-rule and throttle-limit calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pki, pki};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_client::proto as pb;
use coffer_client::proto::secret_service_server::{SecretService, SecretServiceServer};
use coffer_client::proto::vault_service_server::{VaultService, VaultServiceServer};
use coffer_client::proto::{
    CreateVaultRequest, DeleteVaultRequest, DeleteVaultResponse, GetSecretRequest, GetVaultRequest,
    ListSecretVersionsRequest, ListSecretsRequest, ListSecretsResponse, ListVaultsRequest,
    ListVaultsResponse, Secret, SetSecretRequest, UpdateSecretRequest, UpdateVaultRequest, Vault,
};
use coffer_client::{ClientError, CofferClient, ConnectOptions, Token};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

const TOKEN: &str = "test-token-123";

fn check_auth<T>(request: &Request<T>) -> Result<(), Status> {
    let header = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if header == Some(&format!("Bearer {TOKEN}")) {
        Ok(())
    } else {
        Err(Status::unauthenticated("missing or invalid bearer token"))
    }
}

fn vault(name: &str) -> Vault {
    Vault {
        name: name.to_owned(),
        ..Default::default()
    }
}

struct MockVaults;

#[tonic::async_trait]
impl VaultService for MockVaults {
    async fn create_vault(
        &self,
        request: Request<CreateVaultRequest>,
    ) -> Result<Response<Vault>, Status> {
        check_auth(&request)?;
        Ok(Response::new(vault(&request.into_inner().name)))
    }

    async fn get_vault(
        &self,
        request: Request<GetVaultRequest>,
    ) -> Result<Response<Vault>, Status> {
        check_auth(&request)?;
        // The address the call came from, for the source-address test.
        let peer = request.remote_addr();
        let name = request.into_inner().name;
        if name == "whoami" {
            return Ok(Response::new(Vault {
                location: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
                ..vault(&name)
            }));
        }
        if name == "missing" {
            let mut meta = MetadataMap::new();
            meta.insert("x-coffer-error-code", "VaultNotFound".parse().unwrap());
            return Err(Status::with_metadata(
                tonic::Code::NotFound,
                "Vault missing was not found.",
                meta,
            ));
        }
        Ok(Response::new(vault(&name)))
    }

    async fn list_vaults(
        &self,
        request: Request<ListVaultsRequest>,
    ) -> Result<Response<ListVaultsResponse>, Status> {
        check_auth(&request)?;
        // Three pages: "" -> "p2" -> "p3" -> end.
        let (names, next): (&[&str], &str) = match request.into_inner().page_token.as_str() {
            "" => (&["a", "b"], "p2"),
            "p2" => (&["c", "d"], "p3"),
            "p3" => (&["e"], ""),
            _ => return Err(Status::invalid_argument("bad page token")),
        };
        Ok(Response::new(ListVaultsResponse {
            vaults: names.iter().map(|n| vault(n)).collect(),
            next_page_token: next.to_owned(),
        }))
    }

    async fn update_vault(
        &self,
        _request: Request<UpdateVaultRequest>,
    ) -> Result<Response<Vault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn delete_vault(
        &self,
        request: Request<DeleteVaultRequest>,
    ) -> Result<Response<DeleteVaultResponse>, Status> {
        check_auth(&request)?;
        Ok(Response::new(DeleteVaultResponse {}))
    }

    type BackupVaultStream = tokio_stream::Empty<Result<pb::BackupChunk, Status>>;

    async fn list_deleted_vaults(
        &self,
        _request: Request<pb::ListDeletedVaultsRequest>,
    ) -> Result<Response<pb::ListDeletedVaultsResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn get_deleted_vault(
        &self,
        _request: Request<pb::GetDeletedVaultRequest>,
    ) -> Result<Response<pb::DeletedVault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn recover_deleted_vault(
        &self,
        _request: Request<pb::RecoverDeletedVaultRequest>,
    ) -> Result<Response<Vault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn purge_deleted_vault(
        &self,
        _request: Request<pb::PurgeDeletedVaultRequest>,
    ) -> Result<Response<pb::PurgeDeletedVaultResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn backup_vault(
        &self,
        _request: Request<pb::BackupVaultRequest>,
    ) -> Result<Response<Self::BackupVaultStream>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn restore_vault(
        &self,
        _request: Request<tonic::Streaming<pb::RestoreVaultChunk>>,
    ) -> Result<Response<Vault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    /// Applies the change to a vault that had no rules and the defaults (Allow,
    /// AzureServices, Enabled), as the server would.
    async fn update_network_rules(
        &self,
        request: Request<pb::UpdateNetworkRulesRequest>,
    ) -> Result<Response<Vault>, Status> {
        check_auth(&request)?;
        let r = request.into_inner();
        let keep = |add: Vec<String>, remove: &[String]| -> Vec<String> {
            add.into_iter().filter(|x| !remove.contains(x)).collect()
        };
        Ok(Response::new(Vault {
            network_acls: Some(pb::NetworkRuleSet {
                default_action: r.default_action.unwrap_or_else(|| "Allow".into()),
                bypass: r.bypass.unwrap_or_else(|| "AzureServices".into()),
                ip_rules: keep(r.add_ip_rules, &r.remove_ip_rules),
                virtual_network_rules: keep(
                    r.add_virtual_network_rules,
                    &r.remove_virtual_network_rules,
                ),
            }),
            public_network_access: r.public_network_access.unwrap_or_else(|| "Enabled".into()),
            ..vault(&r.vault)
        }))
    }

    /// Every class at its default (rate 100), except those the request sets.
    async fn set_throttle_limits(
        &self,
        request: Request<pb::SetThrottleLimitsRequest>,
    ) -> Result<Response<Vault>, Status> {
        check_auth(&request)?;
        let r = request.into_inner();
        let limits = ["secrets", "keys", "certificates", "management"]
            .into_iter()
            .map(|class| {
                match r
                    .limits
                    .iter()
                    .find(|l| l.class == class && !r.reset.iter().any(|c| c == class))
                {
                    Some(set) => pb::ThrottleLimit {
                        burst: if set.burst == 0 { set.rate } else { set.burst },
                        default: false,
                        ..set.clone()
                    },
                    None => pb::ThrottleLimit {
                        class: class.into(),
                        rate: 100,
                        burst: 100,
                        default: true,
                    },
                }
            })
            .collect();
        Ok(Response::new(Vault {
            throttle_limits: limits,
            ..vault(&r.vault)
        }))
    }
}

struct MockSecrets;

/// The request ids of the calls that read each `busy-…` secret, in order.
static BUSY_CALLS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

/// Records a call of a `busy-…` secret; returns how many came before it.
fn busy_call(name: &str, request_id: String) -> usize {
    let mut calls = BUSY_CALLS.lock().unwrap();
    let ids = calls
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_default();
    ids.push(request_id);
    ids.len() - 1
}

fn busy_ids(name: &str) -> Vec<String> {
    BUSY_CALLS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|calls| calls.get(name).cloned())
        .unwrap_or_default()
}

/// The answer of a throttled call, as the gateway sends it.
fn throttled(retry_after_ms: u64) -> Status {
    let mut meta = MetadataMap::new();
    meta.insert("x-coffer-error-code", "Throttled".parse().unwrap());
    meta.insert("retry-after", "1".parse().unwrap());
    meta.insert(
        "x-ms-retry-after-ms",
        retry_after_ms.to_string().parse().unwrap(),
    );
    Status::with_metadata(
        tonic::Code::ResourceExhausted,
        "Request was not processed because too many requests were received. \
         Reason: VaultRequestTypeLimitReached",
        meta,
    )
}

/// Each test reads its own `busy-…` secret, so tests running at once do not share counts.
const BUSY_WAIT_MS: u64 = 20;
/// Calls that read the cached secret from the server.
static CACHED_GETS: AtomicU64 = AtomicU64::new(0);

#[tonic::async_trait]
impl SecretService for MockSecrets {
    async fn delete_secret(
        &self,
        _request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn get_deleted_secret(
        &self,
        _request: Request<pb::GetDeletedSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn list_deleted_secrets(
        &self,
        _request: Request<pb::ListDeletedSecretsRequest>,
    ) -> Result<Response<pb::ListDeletedSecretsResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn recover_deleted_secret(
        &self,
        _request: Request<pb::RecoverDeletedSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn purge_deleted_secret(
        &self,
        _request: Request<pb::PurgeDeletedSecretRequest>,
    ) -> Result<Response<pb::PurgeDeletedSecretResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn backup_secret(
        &self,
        _request: Request<pb::BackupSecretRequest>,
    ) -> Result<Response<pb::BackupSecretResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn restore_secret(
        &self,
        _request: Request<pb::RestoreSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn set_secret(
        &self,
        request: Request<SetSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        check_auth(&request)?;
        let request = request.into_inner();
        Ok(Response::new(Secret {
            name: request.name,
            ..Default::default()
        }))
    }

    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        check_auth(&request)?;
        let request_id = request
            .metadata()
            .get("x-ms-client-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let name = request.get_ref().name.clone();
        // `busy-twice-…`: throttled twice, then served. `busy-always-…`: always throttled.
        if name.starts_with("busy-") {
            let before = busy_call(&name, request_id);
            if name.starts_with("busy-always-") || before < 2 {
                return Err(throttled(BUSY_WAIT_MS));
            }
            return Ok(Response::new(Secret {
                name,
                value: "served".into(),
                ..Default::default()
            }));
        }
        // A new value on every read, so that a cached answer can be told apart.
        if name == "cached" {
            let n = CACHED_GETS.fetch_add(1, Ordering::SeqCst);
            return Ok(Response::new(Secret {
                name,
                value: format!("value-{n}"),
                ..Default::default()
            }));
        }
        let mut meta = MetadataMap::new();
        meta.insert("x-coffer-error-code", "Forbidden".parse().unwrap());
        meta.insert(
            "x-coffer-inner-error-code",
            "SecretDisabled".parse().unwrap(),
        );
        Err(Status::with_metadata(
            tonic::Code::PermissionDenied,
            "Operation get is not allowed on a disabled secret.",
            meta,
        ))
    }

    async fn list_secrets(
        &self,
        _request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn list_secret_versions(
        &self,
        request: Request<ListSecretVersionsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        check_auth(&request)?;
        let request = request.into_inner();
        let (version, next) = match request.page_token.as_str() {
            "" => ("v1", "next"),
            _ => ("v2", ""),
        };
        Ok(Response::new(ListSecretsResponse {
            secrets: vec![Secret {
                name: request.name,
                version: version.to_owned(),
                ..Default::default()
            }],
            next_page_token: next.to_owned(),
        }))
    }

    async fn update_secret(
        &self,
        _request: Request<UpdateSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }
}

async fn start_server(pki: &Pki) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&pki.cert_pem, &pki.key_pem));
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(VaultServiceServer::new(MockVaults))
        .add_service(SecretServiceServer::new(MockSecrets));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    addr
}

fn options(addr: String, ca_pem: &str, token: &str) -> ConnectOptions {
    ConnectOptions::new(addr, ca_pem.as_bytes(), Token::new(token.to_owned()))
}

#[tokio::test]
async fn calls_carry_the_token_and_lists_follow_pages() {
    let pki = pki();
    let addr = start_server(&pki).await;
    // Both names in the certificate work as the TLS server name.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", addr.port());
        let client = CofferClient::connect(options(url, &pki.ca_pem, TOKEN))
            .await
            .unwrap();

        let names: Vec<String> = client
            .list_vaults()
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);

        let versions: Vec<String> = client
            .list_secret_versions("kv", "db")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(versions, ["v1", "v2"]);

        let created = client
            .create_vault(CreateVaultRequest {
                name: "kv1".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(created.name, "kv1");
        client.delete_vault("kv1").await.unwrap();
    }
}

#[tokio::test]
async fn service_errors_carry_azure_codes() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let client = CofferClient::connect(options(url, &pki.ca_pem, TOKEN))
        .await
        .unwrap();

    let err = client.get_vault("missing").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "(VaultNotFound) Vault missing was not found."
    );

    let err = client
        .get_secret(GetSecretRequest {
            vault: "kv".to_owned(),
            name: "db".to_owned(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    match err {
        ClientError::Service {
            code,
            inner_code,
            message,
            ..
        } => {
            assert_eq!(code, "Forbidden");
            assert_eq!(inner_code.as_deref(), Some("SecretDisabled"));
            assert_eq!(
                message,
                "Operation get is not allowed on a disabled secret."
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn wrong_token_is_unauthorized_and_not_echoed() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let client = CofferClient::connect(options(url, &pki.ca_pem, "wrong-s3cret"))
        .await
        .unwrap();
    let err = client.get_vault("kv").await.unwrap_err();
    assert_eq!(err.code(), "Unauthorized");
    assert!(!err.to_string().contains("wrong-s3cret"));
    assert!(!format!("{err:?}").contains("wrong-s3cret"));
}

#[tokio::test]
async fn untrusted_server_certificate_is_rejected() {
    let pki = pki();
    let other_ca = self::pki().ca_pem;
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let err = CofferClient::connect(options(url, &other_ca, TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ConnectionFailed", "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(!err.to_string().contains('\n'));
}

fn get(name: &str) -> GetSecretRequest {
    GetSecretRequest {
        vault: "kv".into(),
        name: name.into(),
        ..Default::default()
    }
}

async fn client_of(pki: &Pki, addr: SocketAddr) -> CofferClient {
    let url = format!("https://127.0.0.1:{}", addr.port());
    CofferClient::connect(options(url, &pki.ca_pem, TOKEN))
        .await
        .unwrap()
}

#[tokio::test]
async fn throttled_calls_are_retried_after_the_wait_the_server_asks() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let client = client_of(&pki, addr).await;
    let started = Instant::now();
    let secret = client.get_secret(get("busy-twice-1")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(secret.value, "served");
    let ids = busy_ids("busy-twice-1");
    assert_eq!(ids.len(), 3, "two refusals and the call served");
    assert!(!ids[0].is_empty());
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every attempt carries the first one's request id: {ids:?}"
    );
    // Both advertised waits were waited out, and the backoff floor (100 ms, then 200 ms)
    // on top; the 1 s and 2 s used when the server names no wait were not.
    assert!(
        elapsed >= Duration::from_millis(2 * BUSY_WAIT_MS),
        "{elapsed:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn without_retries_the_first_429_is_reported_with_its_wait() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let impatient = client_of(&pki, addr).await.with_throttle_retries(0);
    let err = impatient.get_secret(get("busy-twice-2")).await.unwrap_err();
    assert_eq!(busy_ids("busy-twice-2").len(), 1);
    assert_eq!(err.code(), "Throttled");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(BUSY_WAIT_MS)));
    assert_eq!(
        err.to_string(),
        "(Throttled) Request was not processed because too many requests were received. \
         Reason: VaultRequestTypeLimitReached. Retry after 20 ms."
    );
}

#[tokio::test]
async fn retries_end_after_the_configured_number() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let client = client_of(&pki, addr).await.with_throttle_retries(2);
    let err = client.get_secret(get("busy-always-1")).await.unwrap_err();
    assert_eq!(
        busy_ids("busy-always-1").len(),
        3,
        "the call and two retries"
    );
    assert_eq!(err.code(), "Throttled");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(BUSY_WAIT_MS)));
}

#[tokio::test]
async fn the_source_address_is_the_one_asked_for() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let client = client_of(&pki, addr).await;
    assert_eq!(
        client.get_vault("whoami").await.unwrap().location,
        "127.0.0.1"
    );
    // Linux answers for all of 127.0.0.0/8 on the loopback interface.
    let mut from_two = options(url, &pki.ca_pem, TOKEN);
    from_two.source_address = Some("127.0.0.2".parse().unwrap());
    let client = CofferClient::connect(from_two).await.unwrap();
    assert_eq!(
        client.get_vault("whoami").await.unwrap().location,
        "127.0.0.2"
    );
}

#[tokio::test]
async fn network_rules_and_throttle_limits_are_sent_as_given() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let client = client_of(&pki, addr).await;
    let vault = client
        .update_network_rules(pb::UpdateNetworkRulesRequest {
            vault: "kv".into(),
            default_action: Some("Deny".into()),
            public_network_access: Some("Disabled".into()),
            add_ip_rules: vec!["203.0.113.0/24".into(), "198.51.100.7".into()],
            remove_ip_rules: vec!["198.51.100.7".into()],
            add_virtual_network_rules: vec!["corp".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(vault.name, "kv");
    assert_eq!(
        vault.network_acls,
        Some(pb::NetworkRuleSet {
            default_action: "Deny".into(),
            bypass: "AzureServices".into(),
            ip_rules: vec!["203.0.113.0/24".into()],
            virtual_network_rules: vec!["corp".into()],
        })
    );
    assert_eq!(vault.public_network_access, "Disabled");

    let vault = client
        .set_throttle_limits(pb::SetThrottleLimitsRequest {
            vault: "kv".into(),
            limits: vec![pb::ThrottleLimit {
                class: "secrets".into(),
                rate: 500,
                burst: 0,
                default: false,
            }],
            reset: vec!["keys".into()],
        })
        .await
        .unwrap();
    let secrets = vault
        .throttle_limits
        .iter()
        .find(|l| l.class == "secrets")
        .unwrap();
    assert_eq!(
        (secrets.rate, secrets.burst, secrets.default),
        (500, 500, false)
    );
    assert!(
        vault
            .throttle_limits
            .iter()
            .filter(|l| l.class != "secrets")
            .all(|l| l.default)
    );
}

#[tokio::test]
async fn the_secret_cache_answers_until_its_ttl_and_forgets_what_this_client_changes() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let client = CofferClient::connect(options(url, &pki.ca_pem, TOKEN))
        .await
        .unwrap()
        .with_secret_cache(Duration::from_millis(300), 16);
    let get = GetSecretRequest {
        vault: "kv".into(),
        name: "cached".into(),
        ..Default::default()
    };
    let first = client.get_secret(get.clone()).await.unwrap();
    let again = client.get_secret(get.clone()).await.unwrap();
    assert_eq!(first.value, again.value);
    assert_eq!(CACHED_GETS.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = client.get_secret(get.clone()).await.unwrap();
    assert_ne!(later.value, first.value);
    assert_eq!(CACHED_GETS.load(Ordering::SeqCst), 2);
    client
        .set_secret(SetSecretRequest {
            vault: "KV".into(),
            name: "Cached".into(),
            value: "new".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client.get_secret(get).await.unwrap();
    assert_eq!(CACHED_GETS.load(Ordering::SeqCst), 3);
}
