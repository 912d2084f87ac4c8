//! Identity across a real three-node cluster: a token issued by one node works on every node
//! (the signing keys are replicated), tokens keep being issued and accepted after the leader
//! is killed, a workload's OIDC token from a trusted issuer (JWKS from a file in the node
//! configuration) is exchanged for a Coffer token, and forged tokens are refused over gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use coffer_client::{ClientAuth, Token, request_token};
use coffer_crypto::jwt::SigningKey;
use coffer_proto::v1 as pb;
use coffer_proto::v1::authorization_service_client::AuthorizationServiceClient;
use coffer_proto::v1::identity_service_client::IdentityServiceClient;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_testkit::TestCluster;
use common::with_bearer;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coffer");
const CI_ISSUER: &str = "https://ci.example.test";

async fn channel(cluster: &TestCluster, id: u64) -> Channel {
    let ca = std::fs::read(cluster.dir().join("tls").join("ca.pem")).unwrap();
    Channel::from_shared(format!("https://{}", cluster.spec(id).client))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

fn ca(cluster: &TestCluster) -> Vec<u8> {
    std::fs::read(cluster.dir().join("tls").join("ca.pem")).unwrap()
}

fn authority(cluster: &TestCluster, id: u64) -> String {
    format!("https://{}", cluster.spec(id).client)
}

async fn get_secret(cluster: &TestCluster, id: u64, token: &str) -> Result<String, tonic::Status> {
    SecretServiceClient::new(channel(cluster, id).await)
        .get_secret(with_bearer(
            token,
            pb::GetSecretRequest {
                vault: "fed-kv".into(),
                name: "deploy-key".into(),
                version: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().value)
}

fn external_token(key: &SigningKey, issuer: &str, subject: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange",
        "iat": now, "nbf": now, "exp": now + 300,
    });
    key.sign(claims.as_object().unwrap()).unwrap()
}

fn write_jwks(path: &Path, key: &SigningKey) {
    std::fs::write(
        path,
        serde_json::to_vec(&json!({ "keys": [key.public_jwk()] })).unwrap(),
    )
    .unwrap();
}

/// With the bootstrap token `admin`: tenant `contoso` and its service principal
/// `deployer-app`, trusting the CI issuer's tokens for the main branch.
async fn deployer(identity: &mut IdentityServiceClient<Channel>, admin: &str) -> pb::Principal {
    identity
        .create_tenant(with_bearer(
            admin,
            pb::CreateTenantRequest {
                id: "contoso".into(),
                display_name: "Contoso".into(),
            },
        ))
        .await
        .unwrap();
    let sp = identity
        .create_principal(with_bearer(
            admin,
            pb::CreatePrincipalRequest {
                tenant: "contoso".into(),
                kind: "ServicePrincipal".into(),
                display_name: "deployer".into(),
                client_id: "deployer-app".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    identity
        .add_credential(with_bearer(
            admin,
            pb::AddCredentialRequest {
                principal: "deployer-app".into(),
                credential: Some(pb::add_credential_request::Credential::Federated(
                    pb::FederatedCredential {
                        name: "main".into(),
                        issuer: CI_ISSUER.into(),
                        subject: "repo:contoso/app:ref:refs/heads/main".into(),
                        audiences: Vec::new(),
                    },
                )),
            },
        ))
        .await
        .unwrap();
    sp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_across_the_cluster_and_survive_the_leader() {
    let jwks_dir = tempfile::tempdir().unwrap();
    let (ci_key, _) = SigningKey::generate().unwrap();
    let jwks = jwks_dir.path().join("ci-jwks.json");
    write_jwks(&jwks, &ci_key);
    let tail = format!(
        "[[identity.trusted-issuer]]\nissuer = \"{CI_ISSUER}\"\njwks-file = \"{}\"\n",
        jwks.display()
    );
    let mut cluster =
        TestCluster::start_configured(Path::new(BIN), 3, "eastus,westus,centralus", &[], &tail)
            .await
            .unwrap();
    let admin = cluster.token().to_owned();
    let leader = cluster
        .leader(&cluster.ids(), Duration::from_secs(30))
        .await
        .expect("a leader");

    // Set-up with the bootstrap token: a tenant, a service principal with a secret and a
    // federated credential, a vault with a secret, and a role on that vault.
    let ch = channel(&cluster, leader).await;
    let mut identity = IdentityServiceClient::new(ch.clone());
    let sp = deployer(&mut identity, &admin).await;
    let secret = identity
        .add_credential(with_bearer(
            &admin,
            pb::AddCredentialRequest {
                principal: "deployer-app".into(),
                credential: Some(pb::add_credential_request::Credential::Secret(
                    pb::NewSecret { expires: None },
                )),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    assert!(secret.starts_with("cfs_"));
    coffer_testkit::ops::create_vault(&cluster.client(&[leader]).await.unwrap(), "fed-kv")
        .await
        .unwrap();
    SecretServiceClient::new(ch.clone())
        .set_secret(with_bearer(
            &admin,
            pb::SetSecretRequest {
                vault: "fed-kv".into(),
                name: "deploy-key".into(),
                value: "k-123".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    AuthorizationServiceClient::new(ch)
        .create_role_assignment(with_bearer(
            &admin,
            pb::CreateRoleAssignmentRequest {
                principal: sp.object_id.clone(),
                role: "Key Vault Secrets User".into(),
                scope: "/vaults/fed-kv".into(),
            },
        ))
        .await
        .unwrap();

    // A client-secret token from one follower works on every node.
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let token = request_token(
        &authority(&cluster, follower),
        &ca(&cluster),
        "contoso",
        "deployer-app",
        &ClientAuth::Secret(Token::new(secret.clone())),
        None,
    )
    .await
    .expect("token from a follower");
    for id in cluster.ids() {
        assert_eq!(
            get_secret(&cluster, id, token.token.expose())
                .await
                .unwrap(),
            "k-123"
        );
    }
    // A wrong secret gets no token.
    let wrong = request_token(
        &authority(&cluster, leader),
        &ca(&cluster),
        "contoso",
        "deployer-app",
        &ClientAuth::Secret(Token::new("cfs_wrong".into())),
        None,
    )
    .await
    .unwrap_err();
    assert!(wrong.to_string().contains("invalid_client"), "{wrong}");
    assert!(!wrong.to_string().contains("cfs_wrong"));

    // A forged token (payload changed, signature kept) is refused over gRPC.
    let mut parts: Vec<String> = token.token.expose().split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let forged = parts.join(".");
    let refused = get_secret(&cluster, leader, &forged).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(!refused.message().contains(&forged));
    // The challenge says where to get a token and for which resource, as Key Vault's does.
    let challenge = refused
        .metadata()
        .get("www-authenticate")
        .expect("a challenge")
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with(&format!(
            "Bearer authorization=\"https://{}/common\", resource=\"https://vault.coffer.localhost:",
            cluster.spec(1).client
        )),
        "{challenge}"
    );

    // Workload identity federation: the CI system's token for the main branch is exchanged on
    // any node; another branch, and an untrusted issuer, are refused.
    let exchange = |assertion: String, id: u64| {
        let authority = authority(&cluster, id);
        let ca = ca(&cluster);
        async move {
            request_token(
                &authority,
                &ca,
                "contoso",
                "deployer-app",
                &ClientAuth::Assertion(Token::new(assertion)),
                None,
            )
            .await
        }
    };
    let ci_token = external_token(&ci_key, CI_ISSUER, "repo:contoso/app:ref:refs/heads/main");
    let exchanged = exchange(ci_token, follower).await.expect("exchanged");
    assert_eq!(
        get_secret(&cluster, leader, exchanged.token.expose())
            .await
            .unwrap(),
        "k-123"
    );
    let other_branch = external_token(
        &ci_key,
        CI_ISSUER,
        "repo:contoso/app:ref:refs/heads/feature",
    );
    assert!(exchange(other_branch, leader).await.is_err());
    let untrusted = external_token(
        &ci_key,
        "https://evil.example.test",
        "repo:contoso/app:ref:refs/heads/main",
    );
    assert!(exchange(untrusted, leader).await.is_err());

    // Kill the leader: the survivors still accept the old token and issue new ones.
    cluster.kill(leader);
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    cluster
        .leader(&survivors, Duration::from_secs(30))
        .await
        .expect("a new leader");
    for &id in &survivors {
        assert_eq!(
            get_secret(&cluster, id, token.token.expose())
                .await
                .unwrap(),
            "k-123"
        );
    }
    let fresh = request_token(
        &authority(&cluster, survivors[0]),
        &ca(&cluster),
        "contoso",
        "deployer-app",
        &ClientAuth::Secret(Token::new(secret)),
        None,
    )
    .await
    .expect("a token after the leader died");
    assert_eq!(
        get_secret(&cluster, survivors[1], fresh.token.expose())
            .await
            .unwrap(),
        "k-123"
    );
}

/// Serves `body` as `application/json` over HTTPS on a loopback port (a stand-in for an OIDC
/// issuer's JWKS endpoint); returns the port and the CA to trust. Stops with the runtime.
async fn serve_json(body: String) -> (u16, String) {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = coffer_crypto::pki::generate_dev_pki(&["127.0.0.1".into()]).unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key_pem.expose().as_bytes())
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, pki.ca_cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_issuers_keys_are_fetched_from_its_jwks_url() {
    let (ci_key, _) = SigningKey::generate().unwrap();
    let jwks = serde_json::to_string(&json!({ "keys": [ci_key.public_jwk()] })).unwrap();
    let (port, issuer_ca) = serve_json(jwks).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("issuer-ca.pem");
    std::fs::write(&ca_file, issuer_ca).unwrap();
    let tail = format!(
        "[[identity.trusted-issuer]]\nissuer = \"{CI_ISSUER}\"\n\
         jwks-url = \"https://127.0.0.1:{port}/.well-known/jwks.json\"\njwks-ca-file = \"{}\"\n",
        ca_file.display()
    );
    let cluster = TestCluster::start_configured(Path::new(BIN), 1, "eastus", &[], &tail)
        .await
        .unwrap();
    let admin = cluster.token().to_owned();
    cluster
        .leader(&[1], Duration::from_secs(30))
        .await
        .expect("a leader");
    let mut identity = IdentityServiceClient::new(channel(&cluster, 1).await);
    deployer(&mut identity, &admin).await;
    // The node fetches the keys at start; the exchange works once it has them (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exchanged = loop {
        let assertion = external_token(&ci_key, CI_ISSUER, "repo:contoso/app:ref:refs/heads/main");
        match request_token(
            &authority(&cluster, 1),
            &ca(&cluster),
            "contoso",
            "deployer-app",
            &ClientAuth::Assertion(Token::new(assertion)),
            None,
        )
        .await
        {
            Ok(token) => break token,
            Err(e) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = e;
            }
            Err(e) => panic!("no exchange with fetched keys: {e}\n{}", cluster.log(1)),
        }
    };
    assert!(exchanged.token.expose().split('.').count() == 3);
    // A key the JWKS does not hold is still refused.
    let (other, _) = SigningKey::generate().unwrap();
    let forged = external_token(&other, CI_ISSUER, "repo:contoso/app:ref:refs/heads/main");
    assert!(
        request_token(
            &authority(&cluster, 1),
            &ca(&cluster),
            "contoso",
            "deployer-app",
            &ClientAuth::Assertion(Token::new(forged)),
            None,
        )
        .await
        .is_err()
    );
    assert!(cluster.log(1).contains("trusted issuer keys fetched"));
}
