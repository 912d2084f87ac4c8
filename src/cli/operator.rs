//! `coffer operator ...`: cluster membership, whole-cluster snapshots, node certificates,
//! geography backup keys.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_client::proto::{JoinPeerRequest, Peer};
use serde_json::{Value, json};

use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// `coffer operator ...`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Raft membership and snapshots.
    #[command(subcommand)]
    Raft(RaftCommand),
    /// Certificates for node-to-node mutual TLS.
    #[command(subcommand)]
    Cert(CertCommand),
    /// The keys that seal secret and vault backups: list, export to and import from another
    /// cluster of the same geography.
    #[command(subcommand)]
    GeographyKey(super::geography::GeographyKeyCommand),
}

#[derive(Debug, Subcommand)]
enum RaftCommand {
    /// List the members: id, address, region, voter or learner, leader, match index, lag.
    ListPeers,
    /// Add the node serving at --address (its client address) to the cluster: first as a
    /// learner that catches up, then as a voter unless --learner.
    Join {
        /// The new node's client address, https://host:port; it is asked for its id and
        /// cluster address.
        #[arg(long)]
        address: String,
        /// The new node's region; must match what the node reports.
        #[arg(long)]
        region: String,
        /// Keep the node a non-voting learner (serves bounded-stale reads).
        #[arg(long)]
        learner: bool,
        /// Accept a voter set in which one region holds a majority.
        #[arg(long)]
        force: bool,
    },
    /// Remove a node from the cluster.
    RemovePeer {
        #[arg(long)]
        id: u64,
        /// Accept a voter set in which one region holds a majority.
        #[arg(long)]
        force: bool,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        #[arg(long)]
        to: u64,
    },
    /// Whole-cluster snapshots for disaster recovery.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Build a Raft snapshot on the node reached now, so it can purge its log (it also builds
    /// one every raft.snapshot-every entries).
    Take,
    /// Save a consistent copy of every vault and secret (values stay sealed).
    Save {
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a saved copy into a cluster that holds no vaults and uses the same root key.
    Restore {
        #[arg(long = "in")]
        input: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Issue a node certificate signed by the cluster CA.
    IssueNode {
        /// Cluster CA certificate and key (made by `coffer dev cluster` or a previous
        /// issue-node run with --new-ca).
        #[arg(long)]
        ca_cert: PathBuf,
        #[arg(long)]
        ca_key: PathBuf,
        /// Create the CA files first if they do not exist.
        #[arg(long)]
        new_ca: bool,
        #[arg(long)]
        id: u64,
        /// Host names or IP addresses the node's cluster address uses.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Where to write the certificate and (mode 0600) the key.
        #[arg(long)]
        cert_out: PathBuf,
        #[arg(long)]
        key_out: PathBuf,
    },
}

fn local(code: &'static str, message: String) -> CliError {
    CliError::Local { code, message }
}

pub async fn run(args: OperatorArgs) -> Result<(), CliError> {
    let global = &args.global;
    match args.command {
        OperatorCommand::Raft(command) => raft(global, command).await,
        OperatorCommand::GeographyKey(command) => super::geography::run(global, command).await,
        OperatorCommand::Cert(CertCommand::IssueNode {
            ca_cert,
            ca_key,
            new_ca,
            id,
            names,
            cert_out,
            key_out,
        }) => issue_node(
            global, &ca_cert, &ca_key, new_ca, id, &names, &cert_out, &key_out,
        ),
    }
}

async fn raft(global: &GlobalArgs, command: RaftCommand) -> Result<(), CliError> {
    let client = global.connect().await?;
    match command {
        RaftCommand::ListPeers => print_peers(global, &client.list_peers().await?),
        RaftCommand::Join {
            address,
            region,
            learner,
            force,
        } => {
            let options = coffer_client::ConnectOptions::from_env_with(
                Some(address.clone()),
                global.ca_cert.clone(),
            )?;
            let node = coffer_client::CofferClient::connect(options)
                .await?
                .node_info()
                .await?;
            if node.region != region {
                return Err(CliError::bad_parameter(format!(
                    "the node at {address} reports region {}, not {region}",
                    node.region
                )));
            }
            let peers = client
                .join_peer(JoinPeerRequest {
                    id: node.id,
                    address: node.address,
                    region,
                    learner,
                    force,
                })
                .await?;
            print_peers(global, &peers)
        }
        RaftCommand::RemovePeer { id, force } => {
            print_peers(global, &client.remove_peer(id, force).await?)
        }
        RaftCommand::TransferLeader { to } => {
            print_peers(global, &client.transfer_leader(to).await?)
        }
        RaftCommand::Snapshot(SnapshotCommand::Take) => {
            let (node, index) = client.take_snapshot().await?;
            output::print(global, &json!({ "node": node, "index": index }), || Table {
                headers: vec!["Node", "Index"],
                rows: vec![vec![node.to_string(), index.to_string()]],
            })
        }
        RaftCommand::Snapshot(SnapshotCommand::Save { out }) => {
            let data = client.save_snapshot().await?;
            write_new_file(&out, &data)?;
            output::print(
                global,
                &json!({ "file": out.display().to_string(), "bytes": data.len() }),
                || Table {
                    headers: vec!["File", "Bytes"],
                    rows: vec![vec![out.display().to_string(), data.len().to_string()]],
                },
            )
        }
        RaftCommand::Snapshot(SnapshotCommand::Restore { input }) => {
            let data = std::fs::read(&input)
                .map_err(|e| local("FileError", format!("reading {}: {e}", input.display())))?;
            let restored = client.restore_snapshot(data).await?;
            output::print(
                global,
                &json!({ "vaults": restored.vaults, "records": restored.records }),
                || Table {
                    headers: vec!["Vaults", "Records"],
                    rows: vec![vec![
                        restored.vaults.to_string(),
                        restored.records.to_string(),
                    ]],
                },
            )
        }
    }
}

fn peer_json(p: &Peer) -> Value {
    json!({
        "id": p.id,
        "address": p.address,
        "region": p.region,
        "suffrage": if p.voter { "voter" } else { "learner" },
        "leader": p.leader,
        "matchIndex": p.match_index,
        "lag": p.lag,
    })
}

fn print_peers(global: &GlobalArgs, peers: &[Peer]) -> Result<(), CliError> {
    let json = Value::Array(peers.iter().map(peer_json).collect());
    output::print(global, &json, || Table {
        headers: vec![
            "Id",
            "Address",
            "Region",
            "Suffrage",
            "Leader",
            "MatchIndex",
            "Lag",
        ],
        rows: peers
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.address.clone(),
                    p.region.clone(),
                    if p.voter { "voter" } else { "learner" }.to_owned(),
                    p.leader.to_string(),
                    p.match_index.map(|i| i.to_string()).unwrap_or_default(),
                    p.lag.map(|i| i.to_string()).unwrap_or_default(),
                ]
            })
            .collect(),
    })
}

/// Writes `data` to a file that must not exist yet, so a saved snapshot is never overwritten.
fn write_new_file(path: &std::path::Path, data: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| local("FileError", format!("creating {}: {e}", path.display())))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| local("FileError", format!("writing {}: {e}", path.display())))
}

#[allow(clippy::too_many_arguments)]
fn issue_node(
    global: &GlobalArgs,
    ca_cert: &std::path::Path,
    ca_key: &std::path::Path,
    new_ca: bool,
    id: u64,
    names: &[String],
    cert_out: &std::path::Path,
    key_out: &std::path::Path,
) -> Result<(), CliError> {
    use coffer_crypto::pki::ClusterCa;
    let pki = |e: coffer_crypto::CryptoError| local("CertificateError", e.to_string());
    let file = |p: &std::path::Path, e: std::io::Error| {
        local("FileError", format!("{}: {e}", p.display()))
    };
    if new_ca && !ca_cert.exists() {
        let (ca, key) = ClusterCa::generate().map_err(pki)?;
        coffer_crypto::create_private_file(ca_key, key.expose().as_bytes())
            .map_err(|e| local("FileError", format!("{}: {e}", ca_key.display())))?;
        std::fs::write(ca_cert, ca.cert_pem()).map_err(|e| file(ca_cert, e))?;
    }
    let cert_pem = std::fs::read_to_string(ca_cert).map_err(|e| file(ca_cert, e))?;
    let key_pem = coffer_crypto::read_private_file(ca_key)
        .map_err(|e| local("FileError", format!("{}: {e}", ca_key.display())))?;
    let key_pem = std::str::from_utf8(&key_pem)
        .map_err(|_| local("CertificateError", "the CA key is not PEM".into()))?;
    let ca = ClusterCa::load(&cert_pem, key_pem).map_err(pki)?;
    let (cert, key) = ca.issue_node(id, names).map_err(pki)?;
    coffer_crypto::create_private_file(key_out, key.expose().as_bytes())
        .map_err(|e| local("FileError", format!("{}: {e}", key_out.display())))?;
    std::fs::write(cert_out, cert).map_err(|e| file(cert_out, e))?;
    output::print(
        global,
        &json!({ "id": id, "cert": cert_out.display().to_string(), "key": key_out.display().to_string() }),
        || Table {
            headers: vec!["Id", "Certificate", "Key"],
            rows: vec![vec![
                id.to_string(),
                cert_out.display().to_string(),
                key_out.display().to_string(),
            ]],
        },
    )
}
