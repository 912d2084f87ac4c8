//! End-to-end checks of `CofferClient` against an in-process TLS gRPC server with mock services:
//! the TLS trust and server-name set-up, the bearer token on every call, paging, and error
//! mapping from status metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pki, pki};
use std::net::SocketAddr;
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
        let name = request.into_inner().name;
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

    async fn update_network_rules(
        &self,
        _request: Request<pb::UpdateNetworkRulesRequest>,
    ) -> Result<Response<Vault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }

    async fn set_throttle_limits(
        &self,
        _request: Request<pb::SetThrottleLimitsRequest>,
    ) -> Result<Response<Vault>, Status> {
        Err(Status::unimplemented("not in this mock"))
    }
}

struct MockSecrets;

/// Calls of the throttled secret and the request ids they carried.
static BUSY_GETS: AtomicU64 = AtomicU64::new(0);
static BUSY_IDS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
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
        match name.as_str() {
            // Throttled twice, then served; every attempt must carry one request id.
            "busy" => {
                let n = BUSY_GETS.fetch_add(1, Ordering::SeqCst);
                BUSY_IDS.lock().unwrap().push(request_id);
                if n < 2 {
                    let mut meta = MetadataMap::new();
                    meta.insert("x-coffer-error-code", "Throttled".parse().unwrap());
                    meta.insert("retry-after", "1".parse().unwrap());
                    meta.insert("x-ms-retry-after-ms", "20".parse().unwrap());
                    return Err(Status::with_metadata(
                        tonic::Code::ResourceExhausted,
                        "Request was not processed because too many requests were received. \
                         Reason: VaultRequestTypeLimitReached",
                        meta,
                    ));
                }
                return Ok(Response::new(Secret {
                    name,
                    value: "served".into(),
                    ..Default::default()
                }));
            }
            "cached" => {
                let n = CACHED_GETS.fetch_add(1, Ordering::SeqCst);
                return Ok(Response::new(Secret {
                    name,
                    value: format!("value-{n}"),
                    ..Default::default()
                }));
            }
            _ => {}
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

#[tokio::test]
async fn throttled_calls_are_retried_after_the_wait_the_server_asks() {
    let pki = pki();
    let addr = start_server(&pki).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let get = GetSecretRequest {
        vault: "kv".into(),
        name: "busy".into(),
        ..Default::default()
    };
    // Without retries the first 429 is reported, with the server's wait.
    let impatient = CofferClient::connect(options(url.clone(), &pki.ca_pem, TOKEN))
        .await
        .unwrap()
        .with_throttle_retries(0);
    let err = impatient.get_secret(get.clone()).await.unwrap_err();
    assert_eq!(err.code(), "Throttled");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(20)));
    assert!(err.to_string().ends_with("Retry after 20 ms."), "{err}");

    let client = CofferClient::connect(options(url, &pki.ca_pem, TOKEN))
        .await
        .unwrap();
    let started = Instant::now();
    let secret = client.get_secret(get).await.unwrap();
    assert_eq!(secret.value, "served");
    // Two more calls: one refused (after the first client's), one served; the refusal was
    // waited out for at least the 100 ms backoff floor.
    assert_eq!(BUSY_GETS.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_millis(100));
    let ids = BUSY_IDS.lock().unwrap().clone();
    assert_eq!(ids[1], ids[2], "a retry reuses the request id");
    assert_ne!(ids[0], ids[1]);
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
