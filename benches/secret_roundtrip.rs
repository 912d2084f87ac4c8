//! A secret set and a secret get through the whole stack of one node: gRPC over TLS, bearer
//! authentication, sealing, a Raft commit with a synced log append (set), a read-index barrier
//! (get), RocksDB, audit and metrics. The server is the real `coffer` binary in dev mode on a
//! loopback port; the client is one tonic channel, requests one at a time (latency, not
//! throughput).
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
    }
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
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = roundtrip
}
criterion_main!(benches);
