//! A secret set and a secret get through the whole stack of one node: gRPC over TLS, bearer
//! authentication, sealing, a Raft commit with a synced log append (set), a read-index barrier
//! (get), RocksDB, audit and metrics. The server is the real `coffer` binary in dev mode on a
//! loopback port; the client is one tonic channel, requests one at a time (latency, not
//! throughput).
//!
//! `secret_get_1k` authenticates with the bootstrap token (one SHA-256 compare, no roles);
//! `secret_get_1k_access_token` with an access token of the dev administrator from the token
//! endpoint: the verified-token cache, the principal and role-assignment reads and the RBAC
//! decision are all on its path.
//!
//! Run: `cargo bench --profile dev --bench secret_roundtrip`

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_proto::v1::{CreateVaultRequest, GetSecretRequest, SetSecretRequest};
use criterion::{Criterion, criterion_group, criterion_main};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
    token: String,
    ca: Vec<u8>,
    env: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coffer");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("stdout line");
        if let Some(addr) = line.strip_prefix("Coffer dev server listening on https://") {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let env = std::fs::read_to_string(data.join("dev.env")).expect("dev.env");
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("export COFFER_TOKEN="))
        .expect("token in dev.env")
        .to_owned();
    let ca = std::fs::read(data.join("tls").join("ca.pem")).expect("CA");
    Server {
        child,
        _dir: dir,
        addr,
        token,
        ca,
        env,
    }
}

fn env_value(env: &str, key: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("export {key}=")))
        .unwrap_or_else(|| panic!("{key} in dev.env"))
        .to_owned()
}

/// An access token of the dev administrator, from the node's token endpoint (client
/// credentials over HTTPS, as any SDK would ask for it).
fn access_token(server: &Server) -> String {
    use rustls_pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let tenant = env_value(&server.env, "COFFER_TENANT");
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        env_value(&server.env, "COFFER_CLIENT_ID"),
        env_value(&server.env, "COFFER_CLIENT_SECRET")
    );
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::pem_slice_iter(&server.ca)
        .next()
        .expect("a CA certificate")
        .expect("CA PEM");
    roots.add(ca).expect("CA");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS");
    let tcp = std::net::TcpStream::connect(&server.addr).expect("connect");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "POST /{tenant}/oauth2/v2.0/token HTTP/1.1\r\nHost: {}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        server.addr,
        form.len()
    )
    .expect("request");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("token response JSON");
    json["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

fn with_auth<T>(token: &str, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    let value = format!("Bearer {token}").parse().expect("header value");
    request.metadata_mut().insert("authorization", value);
    request
}

fn roundtrip(c: &mut Criterion) {
    let server = start_server();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let channel = runtime.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&server.ca))
            .domain_name("localhost");
        Channel::from_shared(format!("https://{}", server.addr))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect")
    });
    let token = server.token.clone();
    runtime.block_on(async {
        VaultServiceClient::new(channel.clone())
            .create_vault(with_auth(
                &token,
                CreateVaultRequest {
                    name: "bench-kv".into(),
                    location: "eastus".into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("create vault");
    });
    let mut secrets = SecretServiceClient::new(channel);
    let value_1k = "v".repeat(1_024);

    c.bench_function("secret_set_1k", |b| {
        b.to_async(&runtime).iter(|| {
            let mut client = secrets.clone();
            let request = with_auth(
                &token,
                SetSecretRequest {
                    vault: "bench-kv".into(),
                    name: "bench-secret".into(),
                    value: value_1k.clone(),
                    ..Default::default()
                },
            );
            async move { client.set_secret(request).await.expect("set") }
        })
    });

    runtime.block_on(async {
        secrets
            .set_secret(with_auth(
                &token,
                SetSecretRequest {
                    vault: "bench-kv".into(),
                    name: "bench-get".into(),
                    value: value_1k.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("seed");
    });
    c.bench_function("secret_get_1k", |b| {
        b.to_async(&runtime).iter(|| {
            let mut client = secrets.clone();
            let request = with_auth(
                &token,
                GetSecretRequest {
                    vault: "bench-kv".into(),
                    name: "bench-get".into(),
                    version: String::new(),
                },
            );
            async move { client.get_secret(request).await.expect("get") }
        })
    });

    let access = access_token(&server);
    c.bench_function("secret_get_1k_access_token", |b| {
        b.to_async(&runtime).iter(|| {
            let mut client = secrets.clone();
            let request = with_auth(
                &access,
                GetSecretRequest {
                    vault: "bench-kv".into(),
                    name: "bench-get".into(),
                    version: String::new(),
                },
            );
            async move { client.get_secret(request).await.expect("get") }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = roundtrip
}
criterion_main!(benches);
