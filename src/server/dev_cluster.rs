//! `coffer dev cluster`: a local cluster of real `coffer server` processes on loopback, each with
//! its own data directory, configuration, pid file and log file. A convenience for trying
//! failover and for tests; production nodes are configured and started one by one.
//!
//! Layout of `--data-dir D`:
//! - `D/tls/` client-facing CA and server certificate (one for every node), `D/cluster/` the
//!   cluster CA, `D/root.key` (shared: every node unwraps the same vault keys),
//!   `D/admin-token.sha256`, `D/dev.env` (every node's address in `COFFER_ADDR`);
//! - `D/cluster.json` the nodes' ids, regions and ports;
//! - `D/nodeN/` `coffer.toml`, `node.pem`, `node.key`, `data/`, `coffer.log`, `coffer.pid`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coffer_crypto::pki::ClusterCa;
use coffer_crypto::{RootKey, create_private_file};
use serde::{Deserialize, Serialize};

use super::dev::{self, DEV_DNS_SUFFIX};

/// `coffer dev ...`.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Run a local multi-node cluster (real processes on loopback) until Ctrl-C.
    Cluster(ClusterArgs),
}

#[derive(Debug, Args)]
// `coffer dev cluster stop --data-dir D` takes only its own flags.
#[command(args_conflicts_with_subcommands = true)]
pub struct ClusterArgs {
    #[command(subcommand)]
    action: Option<ClusterAction>,
    /// Number of voters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Non-voting learners added after the voters (they join through node 1 and serve
    /// bounded-stale reads).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=9))]
    learners: u64,
    /// Regions, comma-separated; nodes are placed round-robin.
    #[arg(long, value_delimiter = ',', default_value = "eastus,westus,centralus")]
    regions: Vec<String>,
    /// Directory for everything the cluster writes (reused on the next start).
    #[arg(long, required = true)]
    data_dir: Option<PathBuf>,
    /// Raft timing profile: lan or regions.
    #[arg(long, default_value = "lan")]
    profile: String,
    /// The cluster's geography: its backups restore only in clusters of the same geography.
    #[arg(long, default_value = "dev")]
    geography: String,
    /// Build a Raft snapshot after this many entries.
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Write the configuration and exit without starting the nodes.
    #[arg(long)]
    prepare: bool,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Stop the nodes of a cluster started in another terminal.
    Stop {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// One node as `cluster.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevNode {
    pub id: u64,
    pub region: String,
    pub client: SocketAddr,
    pub cluster: SocketAddr,
    #[serde(default)]
    pub learner: bool,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let DevCommand::Cluster(args) = args.command;
    if let Some(ClusterAction::Stop { data_dir }) = &args.action {
        return stop(data_dir);
    }
    let data_dir = args.data_dir.clone().context("--data-dir is required")?;
    let nodes = prepare(&args, &data_dir)?;
    if args.prepare {
        println!("Cluster prepared in {}", data_dir.display());
        return Ok(());
    }
    let mut children = Vec::new();
    for node in &nodes {
        children.push(start_node(&data_dir, node)?);
    }
    for node in &nodes {
        wait_listening(node.client, Duration::from_secs(60))
            .with_context(|| format!("node {} did not start; see its coffer.log", node.id))?;
    }
    println!("Coffer dev cluster of {} nodes is up:", nodes.len());
    for node in &nodes {
        println!(
            "  node {} ({}{}): https://{}  cluster {}  log {}",
            node.id,
            node.region,
            if node.learner { ", learner" } else { "" },
            node.client,
            node.cluster,
            node_dir(&data_dir, node.id).join("coffer.log").display()
        );
    }
    println!(
        "\nTo use it from a shell:\n\n    source {}\n\nCtrl-C stops the nodes.",
        data_dir.join("dev.env").display()
    );
    // Until Ctrl-C, SIGTERM, or every node has exited (`coffer dev cluster stop` from another
    // shell): the nodes are reaped here, so none lingers as a zombie.
    let all_exited = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if children
                .iter_mut()
                .all(|c| matches!(c.try_wait(), Ok(Some(_))))
            {
                break;
            }
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = all_exited => {
            println!("Every node has stopped.");
        }
    }
    for child in &children {
        signal(child.id(), "TERM");
    }
    for mut child in children {
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }
    for node in &nodes {
        let _ = fs::remove_file(node_dir(&data_dir, node.id).join("coffer.pid"));
    }
    Ok(())
}

fn node_dir(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(format!("node{id}"))
}

/// Ports picked for the nodes, held bound until every node has one so no two nodes share.
///
/// They come from below the kernel's ephemeral range: a port picked by binding port 0 lies
/// inside it, and in the moments before the node binds it for real any outgoing connection on
/// the machine may be handed it as its source port ("Address already in use" at start-up).
struct PortPicker {
    held: Vec<TcpListener>,
    state: u64,
    below: u16,
}

impl PortPicker {
    /// Lowest port considered: above the well-known and registered ports most services use.
    const FLOOR: u16 = 10_000;

    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        let below = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
            .filter(|low| *low > Self::FLOOR + 1_000)
            .unwrap_or(32_768);
        Self {
            held: Vec::new(),
            state: seed | 1,
            below,
        }
    }

    fn next_candidate(&mut self) -> u16 {
        // xorshift64: spread is all that matters here.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Self::FLOOR + (self.state % u64::from(self.below - Self::FLOOR)) as u16
    }

    fn pick(&mut self) -> anyhow::Result<SocketAddr> {
        for _ in 0..500 {
            let port = self.next_candidate();
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                let addr = listener.local_addr()?;
                self.held.push(listener);
                return Ok(addr);
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        self.held.push(listener);
        Ok(addr)
    }
}

/// Writes everything the nodes need, keeping what a previous run wrote.
pub fn prepare(args: &ClusterArgs, dir: &Path) -> anyhow::Result<Vec<DevNode>> {
    let dir = &dir.to_path_buf();
    if args.regions.is_empty() || args.regions.iter().any(|r| r.is_empty()) {
        bail!("--regions needs at least one region name");
    }
    if !["lan", "regions"].contains(&args.profile.as_str()) {
        bail!("--profile must be lan or regions");
    }
    let files = dev::DevFiles::in_dir(dir.clone());
    dev::prepare(&files, &SocketAddr::from(([127, 0, 0, 1], 0)))?;
    RootKey::load_or_generate(&files.root_key)?;
    let (_, new_token) = dev::admin_token(&files)?;

    let layout = dir.join("cluster.json");
    let nodes: Vec<DevNode> = if layout.exists() {
        serde_json::from_slice(&fs::read(&layout)?).context("reading cluster.json")?
    } else {
        let mut ports = PortPicker::new();
        let nodes = (1..=args.nodes + args.learners)
            .map(|id| {
                Ok(DevNode {
                    id,
                    region: args.regions[((id - 1) as usize) % args.regions.len()].clone(),
                    client: ports.pick()?,
                    cluster: ports.pick()?,
                    learner: id > args.nodes,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        fs::write(&layout, serde_json::to_vec_pretty(&nodes)?)?;
        nodes
    };

    let ca_cert = dir.join("cluster").join("ca.pem");
    let ca_key = dir.join("cluster").join("ca.key");
    fs::create_dir_all(dir.join("cluster"))?;
    let ca = if ca_cert.exists() {
        let key = coffer_crypto::read_private_file(&ca_key)?;
        ClusterCa::load(
            &fs::read_to_string(&ca_cert)?,
            std::str::from_utf8(&key).context("cluster CA key is not PEM")?,
        )?
    } else {
        let (ca, key) = ClusterCa::generate()?;
        create_private_file(&ca_key, key.expose().as_bytes())?;
        fs::write(&ca_cert, ca.cert_pem())?;
        ca
    };

    let members: Vec<String> = nodes
        .iter()
        .filter(|n| !n.learner)
        .map(|n| {
            format!(
                "  {{ id = {}, address = \"{}\", region = \"{}\" }},",
                n.id, n.cluster, n.region
            )
        })
        .collect();
    for node in &nodes {
        let nd = node_dir(dir, node.id);
        fs::create_dir_all(nd.join("data"))?;
        let cert = nd.join("node.pem");
        if !cert.exists() {
            let (pem, key) = ca.issue_node(node.id, &["127.0.0.1".into(), "localhost".into()])?;
            create_private_file(&nd.join("node.key"), key.expose().as_bytes())?;
            fs::write(&cert, pem)?;
        }
        let abs =
            |p: &Path| -> anyhow::Result<String> { Ok(fs::canonicalize(p)?.display().to_string()) };
        let config = format!(
            r#"# Written by `coffer dev cluster`.
[node]
id = {id}
data-dir = "{data}"
region = "{region}"
geography = "{geography}"

[listen]
address = "{client}"
dns-suffix = "{suffix}:{port}"

[tls]
cert-file = "{server_cert}"
key-file = "{server_key}"

[seal]
root-key-file = "{root_key}"

[auth]
admin-token-sha256-file = "{token_hash}"

# One issuer and one set of audiences for the whole cluster, so that a token from any node
# works on every node.
[identity]
issuer-url = "https://{issuer}"
audiences = [{audiences}]

[raft]
snapshot-every = {snapshot_every}

[log]
level = "info,openraft=warn"

[cluster]
listen = "{cluster}"
advertise = "{cluster}"
ca-file = "{ca}"
cert-file = "{node_cert}"
key-file = "{node_key}"
profile = "{profile}"
{membership}
"#,
            id = node.id,
            data = abs(&nd.join("data"))?,
            region = node.region,
            client = node.client,
            suffix = DEV_DNS_SUFFIX,
            port = node.client.port(),
            server_cert = abs(&files.server_cert)?,
            server_key = abs(&files.server_key)?,
            root_key = abs(&files.root_key)?,
            token_hash = abs(&files.token_hash)?,
            issuer = nodes
                .first()
                .map(|n| n.client.to_string())
                .unwrap_or_default(),
            audiences = nodes
                .iter()
                .map(|n| format!("\"https://{DEV_DNS_SUFFIX}:{}\"", n.client.port()))
                .collect::<Vec<_>>()
                .join(", "),
            snapshot_every = args.snapshot_every,
            cluster = node.cluster,
            ca = abs(&ca_cert)?,
            node_cert = abs(&cert)?,
            node_key = abs(&nd.join("node.key"))?,
            profile = args.profile,
            geography = args.geography,
            membership = if node.learner {
                // A learner asks the first voter to add it.
                format!(
                    "join = [\"{}\"]\nlearner = true",
                    nodes
                        .first()
                        .map(|n| n.cluster.to_string())
                        .unwrap_or_default()
                )
            } else {
                format!("initial-members = [\n{}\n]", members.join("\n"))
            },
        );
        let config_path = nd.join("coffer.toml");
        if !config_path.exists() {
            fs::write(&config_path, config)?;
        }
    }
    let clients: Vec<SocketAddr> = nodes.iter().map(|n| n.client).collect();
    dev::write_env(&files, &clients, new_token.as_ref(), &[])?;
    Ok(nodes)
}

fn start_node(data_dir: &Path, node: &DevNode) -> anyhow::Result<Child> {
    let nd = node_dir(data_dir, node.id);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(nd.join("coffer.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("server")
        .arg("--config")
        .arg(nd.join("coffer.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {}", node.id))?;
    fs::write(nd.join("coffer.pid"), format!("{}\n", child.id()))?;
    Ok(child)
}

fn wait_listening(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{addr} is not listening after {timeout:?}")
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Stops the nodes whose pid files are under `data_dir`, waiting up to 20 s for each.
fn stop(data_dir: &Path) -> anyhow::Result<()> {
    let layout: Vec<DevNode> = serde_json::from_slice(
        &fs::read(data_dir.join("cluster.json")).context("no cluster.json: not a dev cluster")?,
    )?;
    let mut stopped = 0;
    for node in &layout {
        let pid_file = node_dir(data_dir, node.id).join("coffer.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        signal(pid, "TERM");
        let until = Instant::now() + Duration::from_secs(20);
        while running(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = fs::remove_file(&pid_file);
        stopped += 1;
    }
    println!("Stopped {stopped} node(s).");
    Ok(())
}

/// Whether `pid` is a live process (an exited one not yet reaped by its parent is a zombie,
/// state `Z`, and counts as stopped).
fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

async fn shutdown_signal() {
    super::shutdown_signal().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_below_the_ephemeral_range() {
        let mut ports = PortPicker::new();
        let picked: Vec<SocketAddr> = (0..40).map(|_| ports.pick().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = picked.iter().map(|a| a.port()).collect();
        assert_eq!(distinct.len(), picked.len(), "{picked:?}");
        for addr in &picked {
            assert!(addr.ip().is_loopback(), "{addr}");
            assert!(
                (PortPicker::FLOOR..ports.below).contains(&addr.port()),
                "{addr} is outside {}..{}",
                PortPicker::FLOOR,
                ports.below
            );
        }
    }
}
