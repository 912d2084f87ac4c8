//! Test harness: a real `coffer server --dev` process on an ephemeral loopback port, and the
//! real `coffer` CLI pointed at it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");

pub struct DevServer {
    child: Option<Child>,
    pub data_dir: PathBuf,
    /// `host:port` the server listens on.
    pub addr: String,
    pub token: String,
    pub ca_cert: PathBuf,
    /// `https://host:port` of each listener marked private (`--private-listen`).
    pub private_endpoints: Vec<String>,
}

/// Reads `export K=V` lines.
fn read_env(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("dev.env readable");
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

impl DevServer {
    /// Starts a dev server with its data in `data_dir` (created if missing).
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_logged(data_dir, extra, "info")
    }

    /// Starts a dev server whose log (in `{data_dir}.server.log`) is filtered at `level`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], level: &str) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra, level)
    }

    /// Starts a dev server whose main listener binds `listen`.
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str], level: &str) -> Self {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("server.log"))
            .expect("server log");
        let mut child = Command::new(BIN)
            .args(["server", "--dev", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("COFFER_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn coffer server");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining stdout for the life of the process so it never blocks on a pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Coffer dev server listening on https://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data_dir.with_extension("server.log"))
                    .unwrap_or_default();
                panic!("server did not start within 60 s; its log:\n{log}");
            }
        };
        let env = read_env(&data_dir.join("dev.env"));
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            get("COFFER_ADDR"),
            format!("https://{addr}"),
            "dev.env names this start's address"
        );
        Self {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            addr,
            token: get("COFFER_TOKEN"),
            ca_cert: PathBuf::from(get("COFFER_CA_CERT")),
            private_endpoints: get("COFFER_PRIVATE_ENDPOINTS")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// A `coffer` CLI command with the connection environment set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("COFFER_ADDR", format!("https://{}", self.addr))
            .env("COFFER_TOKEN", &self.token)
            .env("COFFER_CA_CERT", &self.ca_cert)
            .stdin(Stdio::null());
        cmd
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run coffer CLI")
    }

    /// Runs the CLI, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.cli(args))
    }

    /// Runs the CLI, asserts failure with one error line, returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        failed_once(args, self.cli(args))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&full)).expect("JSON output")
    }

    /// Stops the server with SIGTERM and waits for it (a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            for _ in 0..300 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not stop within 30 s of SIGTERM");
        }
    }

    /// Kills the server with SIGKILL: a crash, with no chance to flush anything.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Completes a TLS handshake offering only `version`; returns the version agreed on.
    pub fn tls_handshake(
        &self,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Option<rustls::ProtocolVersion> {
        let config = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
        let mut tcp = TcpStream::connect(&self.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                return None;
            }
        }
        conn.protocol_version()
    }

    fn root_store(&self) -> rustls::RootCertStore {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_cert).expect("CA PEM") {
            roots.add(cert.expect("CA cert")).expect("add CA");
        }
        roots
    }

    fn tls_client_config(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    /// A plain HTTP/1.1 GET over TLS; returns (status, body).
    pub fn https_get(&self, path: &str) -> (u16, String) {
        let response = self.https(&HttpRequest::new("GET", "localhost", path));
        (response.status, response.body)
    }

    /// One HTTP/1.1 request over TLS (trusting the dev CA, SNI `localhost`) with the `Host`
    /// the request names, as a client addressing a vault by host would send it.
    pub fn https(&self, request: &HttpRequest) -> HttpResponse {
        let config = self.tls_client_config(b"http/1.1");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
        let tcp = TcpStream::connect(&self.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.method,
            request.path,
            request.host,
            request.content_length.unwrap_or(request.body.len())
        );
        for (name, value) in &request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes()).expect("write request head");
        // A server may answer (a refusal) before reading the whole body and close: then the
        // rest of the body cannot be written, and the answer is still there to read.
        let _ = tls.write_all(&request.body);
        let mut response = Vec::new();
        // A peer that closes without close_notify is fine here: the body is complete.
        let _ = tls.read_to_end(&mut response);
        HttpResponse::parse(&response)
    }

    /// A command running an Azure SDK check program (tests/python/keyvault_sdk.py,
    /// tests/rust-sdk) against `vault` with only the settings a user would give: the vault's
    /// URL, the CA to trust and the dev administrator's client credentials (and PATH).
    pub fn sdk_command(&self, program: impl AsRef<std::ffi::OsStr>, vault: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        let suffix = self.env_value("COFFER_DNS_SUFFIX");
        cmd.env("COFFER_VAULT_URL", format!("https://{vault}.{suffix}"))
            .env("COFFER_CA_CERT", &self.ca_cert);
        for key in ["COFFER_TENANT", "COFFER_CLIENT_ID", "COFFER_CLIENT_SECRET"] {
            cmd.env(key, self.env_value(key));
        }
        cmd
    }

    /// A gRPC channel to the server over TLS, trusting the dev CA.
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        self.endpoint(&format!("https://{}", self.addr))
            .connect()
            .await
            .expect("connect")
    }

    /// A gRPC endpoint (not yet connected) for `url`, over TLS, trusting the dev CA.
    pub fn endpoint(&self, url: &str) -> tonic::transport::Endpoint {
        let ca = std::fs::read(&self.ca_cert).expect("CA PEM");
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca))
            .domain_name("localhost");
        tonic::transport::Channel::from_shared(url.to_owned())
            .expect("URI")
            .tls_config(tls)
            .expect("TLS config")
    }

    /// A gRPC channel to `url` whose connection leaves from `source` (another 127.0.0.0/8
    /// address, say).
    pub async fn grpc_channel_from(
        &self,
        url: &str,
        source: std::net::IpAddr,
    ) -> tonic::transport::Channel {
        self.endpoint(url)
            .local_address(Some(source))
            .connect()
            .await
            .expect("connect")
    }

    /// A value `dev.env` exports.
    pub fn env_value(&self, key: &str) -> String {
        read_env(&self.data_dir.join("dev.env"))
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    /// The main listener's `https://` URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.data_dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.crash();
    }
}

/// The version id at the end of a secret id URL.
pub fn version_of(id: &str) -> String {
    id.rsplit('/').next().expect("id has a version").to_owned()
}

/// Creates vault `vault` (in eastus) holding secret `name` = `value`, over gRPC as the
/// bootstrap administrator.
pub async fn vault_with_secret(
    server: &DevServer,
    channel: tonic::transport::Channel,
    vault: &str,
    name: &str,
    value: &str,
) {
    use coffer_proto::v1 as pb;
    coffer_proto::v1::vault_service_client::VaultServiceClient::new(channel.clone())
        .create_vault(with_bearer(
            &server.token,
            pb::CreateVaultRequest {
                name: vault.into(),
                location: "eastus".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("vault created");
    coffer_proto::v1::secret_service_client::SecretServiceClient::new(channel)
        .set_secret(with_bearer(
            &server.token,
            pb::SetSecretRequest {
                vault: vault.into(),
                name: name.into(),
                value: value.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("secret set");
}

/// A gRPC request carrying `token` as its bearer credential.
pub fn with_bearer<T>(token: &str, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// Asserts that the CLI run `args` succeeded; returns its stdout.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "coffer {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Asserts that the CLI run `args` failed with one error line; returns that line.
pub fn failed_once(args: &[&str], out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(
        !out.status.success(),
        "coffer {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one error line expected, got: {stderr}"
    );
    stderr
}

/// A one-node store under `dir/data` (RocksDB and Raft in-process), leading once this returns,
/// and a root key in `dir/root.key`: the parts of an in-process node.
pub async fn single_node_store(dir: &Path) -> (coffer_store::Store, coffer_crypto::RootKey) {
    let store = coffer_store::Store::open(coffer_store::StoreConfig {
        node_id: 1,
        data_dir: dir.join("data"),
        advertise_addr: "127.0.0.1:1".into(),
        region: "local".into(),
        snapshot_every: 10_000,
        timeouts: coffer_store::RaftTimeouts::LAN,
        bootstrap: coffer_store::Bootstrap::Alone,
        transport: Arc::new(coffer_store::NoTransport),
    })
    .await
    .unwrap();
    let root = coffer_crypto::RootKey::generate(&dir.join("root.key")).unwrap();
    (store, root)
}

/// 2026-01-01T00:00:00Z: where the manual clock of in-process nodes starts.
pub const CLOCK_START: i64 = 1_767_225_600;

/// An in-process node's service over [`single_node_store`], on a manual clock starting at
/// [`CLOCK_START`] that the test moves, with vault restores spooled under `dir/spool`.
pub async fn manual_clock_service(
    dir: &Path,
) -> (coffer_service::Service, coffer_types::ManualClock) {
    let (store, root) = single_node_store(dir).await;
    let clock = coffer_types::ManualClock::new(CLOCK_START);
    let identity = coffer_service::IdentityConfig {
        issuer_base: "https://127.0.0.1:1".into(),
        token_endpoint_bases: Vec::new(),
        audiences: vec!["https://vault.coffer.test".into()],
        token_lifetime_seconds: 3_600,
        leeway_seconds: 60,
        trusted_issuers: Vec::new(),
        bootstrap_token: None,
        default_tenant: None,
    };
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let service = coffer_service::Service::new(store, root, Arc::new(clock.clone()), identity)
        .with_spool_dir(&spool);
    (service, clock)
}

/// The Python interpreter of the environment `scripts/install-python-deps` creates (it holds
/// `cryptography`, an implementation independent of Coffer's); `COFFER_VENV` names it if it is
/// not in /var/tmp/coffer-venv.
pub fn python_interpreter() -> PathBuf {
    let venv = std::env::var("COFFER_VENV").unwrap_or_else(|_| "/var/tmp/coffer-venv".into());
    let python = PathBuf::from(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-python-deps",
        python.display()
    );
    python
}

/// Runs a Python script with arguments and returns its standard output; fails the test with
/// its standard error if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python_interpreter())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python prints UTF-8")
}

/// A request for [`DevServer::https`].
pub struct HttpRequest {
    pub method: String,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The `Content-Length` sent, when it is not the body's (a body announced, not sent).
    pub content_length: Option<usize>,
}

impl HttpRequest {
    pub fn new(method: &str, host: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// What [`DevServer::https`] read: the status, the headers (names in lower case) and the body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("HTTP status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if size == 0 || after.len() < size {
                    break;
                }
                out.push_str(&after[..size]);
                rest = after[size..].trim_start_matches("\r\n");
            }
            out
        } else {
            body.to_owned()
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// Runs an SDK check program's `scenario` and returns the steps it reported ("ok …" lines);
/// fails the test with its output if it fails.
pub fn sdk_steps(mut cmd: Command, scenario: &str) -> Vec<String> {
    let out = cmd.output().expect("run the SDK check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario} failed after:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// Every `expected` step is among the reported `steps`.
pub fn assert_steps(steps: &[String], expected: &[&str]) {
    for step in expected {
        assert!(
            steps.iter().any(|s| s == &format!("ok {step}")),
            "step {step:?} missing from {steps:#?}"
        );
    }
}
