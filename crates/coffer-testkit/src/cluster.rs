//! [`TestCluster`]: N real `coffer server` processes on loopback, every node-to-node link
//! through a [`Mesh`] proxy so a test can partition, delay and reset links, and kill -9 and
//! restart nodes.
//!
//! The cluster is laid out by `coffer dev cluster --prepare` (the same configuration users
//! get); the harness then points each node's peers at the mesh through the configuration's
//! `peer-addresses` and starts the processes itself.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_client::{CofferClient, ConnectOptions, Token};

use crate::Mesh;

/// One node as `cluster.json` lists it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub region: String,
    pub client: SocketAddr,
    pub cluster: SocketAddr,
    /// Joins as a non-voting learner (`coffer dev cluster --learners`).
    pub learner: bool,
}

/// A running test cluster. Dropping it kills every node and the mesh's tasks end with the
/// runtime.
pub struct TestCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub nodes: Vec<NodeSpec>,
    pub mesh: Mesh,
    children: BTreeMap<u64, Child>,
    token: String,
}

fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("export {key}=")))
        .map(str::to_owned)
}

impl TestCluster {
    /// Prepares and starts `n` voters spread round-robin over `regions`, with extra
    /// `coffer dev cluster` flags (`--profile regions`, `--snapshot-every 500`).
    pub async fn start(bin: &Path, n: u64, regions: &str, extra: &[&str]) -> std::io::Result<Self> {
        Self::start_with_links(bin, n, regions, extra, true, "").await
    }

    /// Like [`TestCluster::start`], with `config_tail` (TOML tables) appended to every node's
    /// configuration file before the nodes start.
    pub async fn start_configured(
        bin: &Path,
        n: u64,
        regions: &str,
        extra: &[&str],
        config_tail: &str,
    ) -> std::io::Result<Self> {
        Self::start_with_links(bin, n, regions, extra, true, config_tail).await
    }

    /// Like [`TestCluster::start`], but nodes reach each other directly, as in production: the
    /// mesh exists but carries nothing (for benchmarks, where the proxies' copying would be
    /// measured too).
    pub async fn start_direct(
        bin: &Path,
        n: u64,
        regions: &str,
        extra: &[&str],
    ) -> std::io::Result<Self> {
        Self::start_with_links(bin, n, regions, extra, false, "").await
    }

    async fn start_with_links(
        bin: &Path,
        n: u64,
        regions: &str,
        extra: &[&str],
        proxied: bool,
        config_tail: &str,
    ) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let status = Command::new(bin)
            .args([
                "dev",
                "cluster",
                "--prepare",
                "--nodes",
                &n.to_string(),
                "--regions",
                regions,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other("coffer dev cluster --prepare failed"));
        }
        let layout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("cluster.json"))?)
                .map_err(std::io::Error::other)?;
        let parse = |v: &serde_json::Value, k: &str| -> std::io::Result<SocketAddr> {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("cluster.json lacks {k}")))
        };
        let mut nodes = Vec::new();
        for v in layout.as_array().into_iter().flatten() {
            nodes.push(NodeSpec {
                id: v["id"].as_u64().unwrap_or(0),
                region: v["region"].as_str().unwrap_or_default().to_owned(),
                client: parse(v, "client")?,
                cluster: parse(v, "cluster")?,
                learner: v["learner"].as_bool().unwrap_or(false),
            });
        }
        let targets: BTreeMap<u64, SocketAddr> = nodes.iter().map(|n| (n.id, n.cluster)).collect();
        let mesh = Mesh::start(&targets).await?;
        for node in &nodes {
            let config = dir
                .path()
                .join(format!("node{}", node.id))
                .join("coffer.toml");
            let mut text = std::fs::read_to_string(&config)?;
            if proxied {
                text.push_str("\n[cluster.peer-addresses]\n");
                for (peer, addr) in mesh.peer_addresses(node.id) {
                    text.push_str(&format!("\"{peer}\" = \"{addr}\"\n"));
                }
            }
            text.push('\n');
            text.push_str(config_tail);
            std::fs::write(&config, text)?;
        }
        let env = std::fs::read_to_string(dir.path().join("dev.env"))?;
        let token = env_value(&env, "COFFER_TOKEN")
            .ok_or_else(|| std::io::Error::other("dev.env lacks the token"))?;
        let mut cluster = Self {
            bin: bin.to_owned(),
            dir,
            nodes,
            mesh,
            children: BTreeMap::new(),
            token,
        };
        for id in cluster.ids() {
            cluster.start_node(id)?;
        }
        for id in cluster.ids() {
            if let Err(e) = cluster.wait_listening(id, Duration::from_secs(60)) {
                return Err(std::io::Error::other(format!(
                    "{e}\n--- its log ---\n{}",
                    cluster.log(id)
                )));
            }
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's bootstrap token (every right).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A plain gRPC channel to node `id` over TLS, trusting the cluster's CA: for calls that
    /// must not go through the client library's failover and throttling retries.
    pub async fn grpc_channel(&self, id: u64) -> std::io::Result<tonic::transport::Channel> {
        let ca = std::fs::read(self.dir.path().join("tls").join("ca.pem"))?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca))
            .domain_name("localhost");
        tonic::transport::Channel::from_shared(format!("https://{}", self.spec(id).client))
            .map_err(std::io::Error::other)?
            .tls_config(tls)
            .map_err(std::io::Error::other)?
            .connect()
            .await
            .map_err(std::io::Error::other)
    }

    /// `body` as a gRPC request carrying the bootstrap token.
    pub fn authorized<T>(&self, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    pub fn spec(&self, id: u64) -> &NodeSpec {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Starts (or restarts) node `id`; its output goes to `nodeN/coffer.log`.
    pub fn start_node(&mut self, id: u64) -> std::io::Result<()> {
        let nd = self.dir.path().join(format!("node{id}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(nd.join("coffer.log"))?;
        let child = Command::new(&self.bin)
            .arg("server")
            .arg("--config")
            .arg(nd.join("coffer.toml"))
            .env("COFFER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Starts node `id` again and waits until it listens.
    pub fn restart(&mut self, id: u64) -> std::io::Result<()> {
        self.start_node(id)?;
        self.wait_listening(id, Duration::from_secs(30))
    }

    /// A client of node `id` alone, which keeps retrying it for `deadline`.
    pub async fn client_of(
        &self,
        id: u64,
        deadline: Duration,
    ) -> Result<CofferClient, coffer_client::ClientError> {
        Ok(self.client(&[id]).await?.with_failover_deadline(deadline))
    }

    pub fn wait_listening(&self, id: u64, timeout: Duration) -> std::io::Result<()> {
        let addr = self.spec(id).client;
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(format!(
            "node {id} did not listen on {addr}"
        )))
    }

    /// kill -9: no flush, no goodbye.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Connections through the mesh to the dead node would otherwise linger half-open.
        self.mesh.reset_links_of(id);
    }

    /// The process id of node `id`, while it runs (for memory measurements).
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(|child| child.id())
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.children.contains_key(&id)
    }

    /// The log a node wrote, for a failing test's message.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{id}")).join("coffer.log"))
            .unwrap_or_default()
    }

    fn options(&self, ids: &[u64]) -> ConnectOptions {
        let addrs: Vec<String> = ids
            .iter()
            .map(|id| format!("https://{}", self.spec(*id).client))
            .collect();
        ConnectOptions::new(
            addrs.join(","),
            std::fs::read(self.dir.path().join("tls").join("ca.pem")).unwrap_or_default(),
            Token::new(self.token.clone()),
        )
    }

    /// A `coffer` CLI command connected to the cluster as `dev.env` describes it (every
    /// node's address, the CA and the bootstrap token), as an operator would run it.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        let env = std::fs::read_to_string(self.dir.path().join("dev.env")).unwrap_or_default();
        for line in env.lines() {
            if let Some((key, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('='))
                && key != "PATH"
            {
                command.env(key, value);
            }
        }
        command.args(args).stdin(Stdio::null());
        command
    }

    /// A client that knows only the nodes `ids` (fails over among them).
    pub async fn client(&self, ids: &[u64]) -> Result<CofferClient, coffer_client::ClientError> {
        CofferClient::connect(self.options(ids)).await
    }

    /// The leader as node `via` reports it (through list-peers), if any within `timeout`.
    pub async fn leader(&self, via: &[u64], timeout: Duration) -> Option<u64> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(client) = self.client(via).await
                && let Ok(peers) = client.list_peers().await
                && let Some(leader) = peers.iter().find(|p| p.leader)
            {
                return Some(leader.id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
