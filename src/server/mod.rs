//! `coffer server`: opens the store, builds the service and gateway, and serves until a
//! shutdown signal. `--dev` generates everything into a data directory; `--config` reads a
//! production configuration.

mod config;
mod dev;
pub mod dev_cluster;
mod dev_identity;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use coffer_cluster::{ClusterTls, GrpcTransport};
use coffer_crypto::{RootKey, SecretString, TokenHash, read_private_file};
use coffer_gateway::{AuditLog, Gateway, Metrics, server_tls_config};
use coffer_service::{IdentityConfig, Service};
use coffer_store::{Bootstrap, Member, NoTransport, RaftTimeouts, Store, StoreConfig, Transport};
use coffer_types::SystemClock;
use tokio::net::TcpListener;

pub use config::Config;

/// Arguments of `coffer server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Start a single-node development server with generated TLS, root key and admin token.
    #[arg(long, conflicts_with = "config")]
    pub dev: bool,
    /// Data directory (dev mode: a new temporary directory when omitted).
    #[arg(long, requires = "dev")]
    pub data_dir: Option<PathBuf>,
    /// Address the TLS listener binds (dev mode default 127.0.0.1:8443; port 0 picks one).
    #[arg(long, requires = "dev")]
    pub listen: Option<SocketAddr>,
    /// Dev mode: build a Raft snapshot after this many log entries (production sets
    /// raft.snapshot-every in the config file).
    #[arg(long, requires = "dev", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,
    /// Dev mode: a further listener marked private (a private endpoint); repeatable.
    #[arg(long, requires = "dev")]
    pub private_listen: Vec<SocketAddr>,
    /// Dev mode: an address or CIDR range of a proxy whose PROXY protocol and
    /// X-Forwarded-For headers are believed; repeatable.
    #[arg(long, requires = "dev")]
    pub trusted_proxy: Vec<String>,
    /// Dev mode: a virtual network, NAME=CIDR[,CIDR...]; repeatable.
    #[arg(long, requires = "dev")]
    pub virtual_network: Vec<String>,
    /// Dev mode: the object id or client id of a trusted service (passes a vault's firewall
    /// when its bypass is AzureServices); repeatable.
    #[arg(long, requires = "dev")]
    pub trusted_service: Vec<String>,
    /// Production configuration file.
    #[arg(long, required_unless_present = "dev")]
    pub config: Option<PathBuf>,
}

/// Network settings of a node, from either mode.
#[derive(Default)]
struct NetworkSettings {
    /// Whether the main listener is private.
    listen_private: bool,
    private_listen: Vec<SocketAddr>,
    trusted_proxies: Vec<coffer_types::IpNet>,
    service: coffer_service::NetworkSettings,
}

impl NetworkSettings {
    fn parse(
        listen_private: bool,
        private_listen: Vec<SocketAddr>,
        trusted_proxies: &[String],
        trusted_services: &[String],
        virtual_networks: impl IntoIterator<Item = (String, Vec<String>)>,
    ) -> anyhow::Result<Self> {
        let nets = |texts: &[String]| -> anyhow::Result<Vec<coffer_types::IpNet>> {
            texts
                .iter()
                .map(|t| coffer_types::IpNet::parse(t).map_err(|e| anyhow::anyhow!(e.message)))
                .collect()
        };
        let mut service = coffer_service::NetworkSettings {
            trusted_services: trusted_services.iter().cloned().collect(),
            ..Default::default()
        };
        for (name, ranges) in virtual_networks {
            coffer_types::network::validate_virtual_network_name(&name)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            service.virtual_networks.insert(name, nets(&ranges)?);
        }
        Ok(Self {
            listen_private,
            private_listen,
            trusted_proxies: nets(trusted_proxies)?,
            service,
        })
    }
}

/// How often nodes exchange their throttle demand (docs/throttling.md).
const DEMAND_EXCHANGE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Answers other members' demand reports and sends this node's, every
/// [`DEMAND_EXCHANGE_INTERVAL`], for as long as the node runs.
async fn throttle_exchange(service: Service) {
    {
        let answering = service.clone();
        service
            .store()
            .set_peer_handler(Arc::new(move |sender, body| {
                answering.answer_demand_report(sender, body)
            }));
    }
    let mut tick = tokio::time::interval(DEMAND_EXCHANGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        service.exchange_throttle_demand().await;
    }
}

/// Everything a node needs to start, from either mode.
struct Settings {
    node_id: u64,
    region: String,
    geography: String,
    data_dir: PathBuf,
    listen: SocketAddr,
    dns_suffix: Option<String>,
    cert_pem: Vec<u8>,
    key_pem: zeroize::Zeroizing<Vec<u8>>,
    root_key: RootKey,
    /// The bootstrap token's hash; `None` when the configuration names none.
    token_hash: Option<TokenHash>,
    identity: IdentitySettings,
    audit_file: PathBuf,
    snapshot_every: u64,
    log_level: String,
    dev: Option<(dev::DevFiles, Option<coffer_crypto::SecretString>)>,
    cluster: Option<ClusterSettings>,
    network: NetworkSettings,
}

/// The node's directory for vault restores in progress, emptied at start: files there belong to
/// restores a crash interrupted (they hold sealed frames only).
fn restore_spool(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("restore-spool");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// How often the leader looks for deleted objects and vaults past their retention.
const PURGE_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Makes sure the geography has a backup key, then runs the purger and the key rotation job
/// for as long as the node runs (they act only while this node leads).
async fn lifecycle_jobs(service: Service) {
    if let Err(e) = dev_identity::ensure_geography_key(&service).await {
        tracing::error!(error = %e, "no geography backup key");
    }
    let mut tick = tokio::time::interval(PURGE_CHECK);
    loop {
        tick.tick().await;
        match service.purge_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged deleted objects past their retention"),
            Err(e) => tracing::warn!(error = %e.message, "the purger failed"),
        }
        service.sweep_key_cache();
        match service.rotate_due_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rotated = n, "rotated keys whose rotation policy fell due"),
            Err(e) => tracing::warn!(error = %e.message, "the key rotation job failed"),
        }
    }
}

/// Token signing keys are rotated after this many seconds (30 days)...
const SIGNING_KEY_MAX_AGE: i64 = 30 * 24 * 3_600;
/// ...checked this often by the leader.
const SIGNING_KEY_CHECK: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How the node issues tokens, before the listener's address is known.
#[derive(Default)]
struct IdentitySettings {
    issuer_url: Option<String>,
    audiences: Vec<String>,
    token_lifetime_seconds: i64,
    trusted_issuers: Vec<coffer_service::TrustedIssuer>,
    managed_identity: Option<ManagedIdentitySettings>,
    /// Trusted issuers whose keys are fetched from a URL.
    jwks_urls: Vec<JwksSource>,
    default_tenant: Option<String>,
    token_endpoint_bases: Vec<String>,
}

/// Where a trusted issuer publishes its keys.
struct JwksSource {
    issuer: String,
    url: String,
    /// PEM of the CAs trusted for the URL.
    ca: Vec<u8>,
}

/// Debian's bundle of public CAs, trusted for JWKS URLs unless a config names other CAs.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How often a trusted issuer's JWKS is fetched again (after a failure: every 30 s).
const JWKS_REFRESH: std::time::Duration = std::time::Duration::from_secs(600);

/// The managed-identity endpoint of a node.
struct ManagedIdentitySettings {
    listen: SocketAddr,
    header: SecretString,
    client_ids: Vec<String>,
}

/// A cluster node's settings (absent for a node that runs alone).
struct ClusterSettings {
    listen: SocketAddr,
    advertise: String,
    tls: ClusterTls,
    bootstrap: Bootstrap,
    join: Vec<String>,
    learner: bool,
    timeouts: RaftTimeouts,
    overrides: BTreeMap<u64, String>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut settings = if args.dev {
        dev_settings(&args)?
    } else {
        config_settings(&args)?
    };
    init_logging(&settings.log_level);

    let (transport, bootstrap, timeouts, advertise): (Arc<dyn Transport>, _, _, _) =
        match &settings.cluster {
            Some(c) => (
                Arc::new(GrpcTransport::new(
                    settings.node_id,
                    c.tls.clone(),
                    c.overrides.clone(),
                )),
                c.bootstrap.clone(),
                c.timeouts,
                c.advertise.clone(),
            ),
            None => (
                Arc::new(NoTransport),
                Bootstrap::Alone,
                RaftTimeouts::LAN,
                settings.listen.to_string(),
            ),
        };
    let store = Store::open(StoreConfig {
        node_id: settings.node_id,
        data_dir: settings.data_dir.clone(),
        advertise_addr: advertise,
        region: settings.region.clone(),
        snapshot_every: settings.snapshot_every,
        timeouts,
        bootstrap,
        transport,
    })
    .await
    .context("opening the store")?;
    let (stop_cluster, cluster_task) = match settings.cluster.as_ref() {
        Some(c) => {
            let (stop, task) = start_cluster(c, &store).await?;
            (Some(stop), Some(task))
        }
        None => (None, None),
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let local = listener.local_addr()?;
    let mut private_listeners = Vec::new();
    for addr in &settings.network.private_listen {
        let private = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the private listener {addr}"))?;
        tracing::info!(address = %private.local_addr()?, "private listener up");
        private_listeners.push(private);
    }
    let dns_suffix = match &settings.dns_suffix {
        Some(suffix) => suffix.clone(),
        None => format!("{}:{}", dev::DEV_DNS_SUFFIX, local.port()),
    };
    let identity = identity_config(&settings, local, &dns_suffix);
    let service = Service::new(
        store.clone(),
        settings.root_key,
        Arc::new(SystemClock),
        identity,
    )
    .with_geography(&settings.geography)
    .with_spool_dir(&restore_spool(&settings.data_dir)?)
    .with_network(std::mem::take(&mut settings.network.service));
    tokio::spawn(lifecycle_jobs(service.clone()));
    tokio::spawn(throttle_exchange(service.clone()));
    {
        // Every node makes sure a signing key exists; the first proposal wins. After that the
        // leader rotates the key when it is older than SIGNING_KEY_MAX_AGE.
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = dev_identity::ensure_signing_key(&service).await {
                tracing::error!(error = %e, "no token signing key");
            }
            let mut tick = tokio::time::interval(SIGNING_KEY_CHECK);
            loop {
                tick.tick().await;
                if !service.store().status().is_leader {
                    continue;
                }
                match service.rotate_signing_key_if_due(SIGNING_KEY_MAX_AGE).await {
                    Ok(Some(kid)) => tracing::info!(kid = %kid, "token signing key rotated"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "signing key rotation failed"),
                }
            }
        });
    }
    for source in std::mem::take(&mut settings.identity.jwks_urls) {
        tokio::spawn(refresh_jwks(service.clone(), source));
    }
    let audit = AuditLog::open(&settings.audit_file)
        .with_context(|| format!("opening the audit log {}", settings.audit_file.display()))?;
    let authenticator = Arc::new(service.clone());
    let gateway = Arc::new(
        Gateway::new(service, authenticator, audit, Metrics::new())
            .with_trusted_proxies(std::mem::take(&mut settings.network.trusted_proxies)),
    );
    let tls = server_tls_config(&settings.cert_pem, &settings.key_pem)?;

    let mut extra_env = Vec::new();
    let mut managed = settings.identity.managed_identity;
    if let Some((files, _)) = &settings.dev {
        let dev = dev_identity::dev_identity(gateway.service(), &files.identity).await?;
        extra_env.push(("COFFER_TENANT".to_owned(), dev.tenant.clone()));
        extra_env.push(("COFFER_CLIENT_ID".to_owned(), dev.client_id.clone()));
        extra_env.push(("COFFER_CLIENT_SECRET".to_owned(), dev.client_secret.clone()));
        managed = Some(ManagedIdentitySettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            header: coffer_gateway::generate_identity_header()?,
            client_ids: vec![dev.managed_identity_client_id.clone()],
        });
    }
    if let Some(mi) = managed {
        let mi_listener = TcpListener::bind(mi.listen)
            .await
            .with_context(|| format!("binding the managed-identity endpoint {}", mi.listen))?;
        let mi_addr = mi_listener.local_addr()?;
        if settings.dev.is_some() {
            extra_env.push((
                "IDENTITY_ENDPOINT".to_owned(),
                format!("http://{mi_addr}/msi/token"),
            ));
            extra_env.push(("IDENTITY_HEADER".to_owned(), mi.header.expose().to_owned()));
        }
        let endpoint = coffer_gateway::ManagedIdentitySettings {
            header: TokenHash::of(mi.header.expose()),
            client_ids: mi.client_ids,
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            if let Err(e) = coffer_gateway::serve_managed_identity(
                mi_listener,
                gateway,
                endpoint,
                shutdown_signal(),
            )
            .await
            {
                tracing::error!(error = %e, "managed-identity endpoint failed");
            }
        });
        tracing::info!(address = %mi_addr, "managed-identity endpoint up");
    }
    if let Some((files, new_token)) = &settings.dev {
        let private: Vec<String> = private_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| format!("https://{a}"))
            .collect();
        if !private.is_empty() {
            extra_env.push(("COFFER_PRIVATE_ENDPOINTS".to_owned(), private.join(",")));
        }
        let env = dev::write_env(files, &[local], new_token.as_ref(), &extra_env)?;
        println!("Coffer dev server listening on https://{local}");
        println!("Data directory: {}", files.data_dir.display());
        println!(
            "To use it from a shell:\n\n    source {}\n",
            files.dev_env.display()
        );
        if new_token.is_some() {
            println!("These are the exports (the admin token is shown this once):\n\n{env}");
        } else {
            let shown: Vec<&str> = env
                .lines()
                .filter(|l| {
                    !l.starts_with("export COFFER_TOKEN=")
                        && !l.starts_with("export COFFER_CLIENT_SECRET=")
                        && !l.starts_with("export IDENTITY_HEADER=")
                })
                .collect();
            println!(
                "These are the exports (the admin token is unchanged; dev.env holds it):\n\n{}\n",
                shown.join("\n")
            );
        }
    }
    tracing::info!(address = %local, node_id = settings.node_id, "serving");
    let mut private_listener_tasks = Vec::new();
    for private in private_listeners {
        let (tls, gateway, suffix) = (tls.clone(), gateway.clone(), dns_suffix.clone());
        private_listener_tasks.push(tokio::spawn(async move {
            if let Err(e) =
                coffer_gateway::serve(private, true, tls, gateway, suffix, shutdown_signal()).await
            {
                tracing::error!(error = %e, "a private listener failed");
            }
        }));
    }

    coffer_gateway::serve(
        listener,
        settings.network.listen_private,
        tls,
        gateway,
        dns_suffix,
        shutdown_signal(),
    )
    .await?;
    for task in private_listener_tasks {
        let _ = task.await;
    }
    tracing::info!("shutting down");
    if let (Some(stop), Some(task)) = (stop_cluster, cluster_task) {
        let _ = stop.send(());
        let _ = task.await;
    }
    store.shutdown().await;
    Ok(())
}

/// Starts the cluster listener and, for a node configured to join, asks the seeds to admit it
/// until it is a member. Returns the listener's stop switch and task.
async fn start_cluster(
    c: &ClusterSettings,
    store: &Store,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = TcpListener::bind(c.listen)
        .await
        .with_context(|| format!("binding the cluster listener {}", c.listen))?;
    tracing::info!(address = %c.listen, advertise = %c.advertise, "cluster listener up");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = store.clone();
    let tls = c.tls.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = coffer_cluster::serve(listener, tls, serving, shutdown).await {
            tracing::error!(error = %e, "cluster listener failed");
        }
    });
    if !c.join.is_empty() {
        let joining = store.clone();
        let seeds = c.join.clone();
        let learner = c.learner;
        tokio::spawn(async move {
            let mut attempt = 0usize;
            while !joining.is_member() {
                let seed = &seeds[attempt % seeds.len()];
                match joining.request_join(seed, learner).await {
                    Ok(()) => tracing::info!(seed = %seed, "admitted to the cluster"),
                    Err(e) => {
                        tracing::warn!(seed = %seed, error = %e, "join request failed; retrying")
                    }
                }
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        });
    }
    Ok((stop, task))
}

fn dev_settings(args: &ServerArgs) -> anyhow::Result<Settings> {
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        // Kept after exit (the path is printed), so a dev session can be restarted.
        None => tempfile::Builder::new()
            .prefix("coffer-dev-")
            .tempdir()?
            .keep(),
    };
    let files = dev::DevFiles::in_dir(data_dir);
    dev::prepare(&files, &listen)?;
    let root_key = RootKey::load_or_generate(&files.root_key)?;
    let (token_hash, new_token) = dev::admin_token(&files)?;
    Ok(Settings {
        node_id: 1,
        region: "local".into(),
        geography: coffer_service::DEFAULT_GEOGRAPHY.into(),
        data_dir: files.data_dir.clone(),
        listen,
        dns_suffix: None,
        cert_pem: std::fs::read(&files.server_cert)?,
        key_pem: read_private_file(&files.server_key)?,
        root_key,
        token_hash: Some(token_hash),
        identity: IdentitySettings {
            token_lifetime_seconds: 3_600,
            default_tenant: Some(dev_identity::DEV_TENANT.to_owned()),
            ..IdentitySettings::default()
        },
        audit_file: files.audit.clone(),
        snapshot_every: args.snapshot_every,
        log_level: std::env::var("COFFER_LOG").unwrap_or_else(|_| "warn".into()),
        dev: Some((files, new_token)),
        cluster: None,
        network: NetworkSettings::parse(
            false,
            args.private_listen.clone(),
            &args.trusted_proxy,
            &args.trusted_service,
            args.virtual_network
                .iter()
                .map(|spec| {
                    let (name, ranges) = spec.split_once('=').with_context(|| {
                        format!("--virtual-network {spec}: expected NAME=CIDR[,CIDR...]")
                    })?;
                    Ok((
                        name.to_owned(),
                        ranges.split(',').map(str::to_owned).collect(),
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        )?,
    })
}

fn config_settings(args: &ServerArgs) -> anyhow::Result<Settings> {
    let path = args
        .config
        .as_ref()
        .context("--config is required without --dev")?;
    let config = Config::load(path)?;
    let token_hash = match &config.auth.admin_token_sha256_file {
        Some(path) => {
            let hash_text = read_private_file(path)?;
            Some(
                std::str::from_utf8(&hash_text)
                    .ok()
                    .and_then(TokenHash::from_hex)
                    .with_context(|| format!("{} must hold a SHA-256 in hex", path.display()))?,
            )
        }
        None => None,
    };
    let identity = identity_settings(&config.identity)?;
    std::fs::create_dir_all(&config.node.data_dir)?;
    Ok(Settings {
        node_id: config.node.id,
        region: config.node.region.clone(),
        geography: config.node.geography.clone(),
        listen: config.listen.address,
        dns_suffix: Some(config.listen.dns_suffix.clone()),
        cert_pem: std::fs::read(&config.tls.cert_file)
            .with_context(|| format!("reading {}", config.tls.cert_file.display()))?,
        key_pem: read_private_file(&config.tls.key_file)?,
        root_key: RootKey::load(&config.seal.root_key_file)?,
        token_hash,
        identity,
        audit_file: config
            .audit
            .file
            .clone()
            .unwrap_or_else(|| config.node.data_dir.join("audit.log")),
        snapshot_every: config.raft.snapshot_every,
        log_level: config.log.level.clone(),
        cluster: config.cluster.as_ref().map(cluster_settings).transpose()?,
        network: NetworkSettings::parse(
            config.listen.private,
            config.network.private_listen.clone(),
            &config.network.trusted_proxies,
            &config.network.trusted_services,
            config.network.virtual_networks.clone(),
        )
        .context("in [network]")?,
        data_dir: config.node.data_dir,
        dev: None,
    })
}

/// Keeps a trusted issuer's keys current: fetched at start, then every [`JWKS_REFRESH`].
async fn refresh_jwks(service: Service, source: JwksSource) {
    loop {
        let fetched = coffer_client::fetch_https(&source.url, &source.ca)
            .await
            .map_err(|e| e.to_string())
            .and_then(|body| {
                serde_json::from_slice::<coffer_crypto::jwt::Jwks>(&body)
                    .map_err(|e| format!("not a JWKS document: {e}"))
            })
            .and_then(|jwks| {
                service
                    .set_trusted_issuer_keys(&source.issuer, jwks)
                    .map_err(|e| e.to_string())
            });
        let wait = match fetched {
            Ok(count) => {
                tracing::info!(issuer = %source.issuer, keys = count, "trusted issuer keys fetched");
                JWKS_REFRESH
            }
            Err(e) => {
                tracing::warn!(issuer = %source.issuer, url = %source.url, error = %e, "fetching a trusted issuer's keys failed");
                std::time::Duration::from_secs(30)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn identity_settings(c: &config::IdentityConfig) -> anyhow::Result<IdentitySettings> {
    let mut trusted_issuers = Vec::new();
    let mut jwks_urls = Vec::new();
    for t in &c.trusted_issuer {
        let keys = match (&t.jwks_file, &t.jwks_url) {
            (Some(file), _) => {
                let text =
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let jwks: coffer_crypto::jwt::Jwks = serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not a JWKS document", file.display()))?;
                for key in &jwks.keys {
                    coffer_crypto::jwt::VerifyingKey::from_jwk(key).with_context(|| {
                        format!("{} holds a key that cannot verify tokens", file.display())
                    })?;
                }
                jwks.keys
            }
            (None, Some(url)) => {
                let ca_file = t
                    .jwks_ca_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
                let ca = std::fs::read(&ca_file)
                    .with_context(|| format!("reading {}", ca_file.display()))?;
                jwks_urls.push(JwksSource {
                    issuer: t.issuer.clone(),
                    url: url.clone(),
                    ca,
                });
                // Until the first fetch, no key of this issuer is trusted.
                Vec::new()
            }
            (None, None) => anyhow::bail!("a trusted issuer needs jwks-file or jwks-url"),
        };
        let audiences = if t.audiences.is_empty() {
            vec![coffer_types::identity::FEDERATION_AUDIENCE.to_owned()]
        } else {
            t.audiences.clone()
        };
        trusted_issuers.push(coffer_service::TrustedIssuer {
            issuer: t.issuer.clone(),
            audiences,
            keys,
        });
    }
    let managed_identity = match &c.managed_identity {
        Some(mi) => {
            let header = read_private_file(&mi.header_file)?;
            let header = std::str::from_utf8(&header)
                .ok()
                .map(str::trim)
                .filter(|h| h.len() >= 16)
                .with_context(|| {
                    format!(
                        "{} must hold the identity header, at least 16 characters",
                        mi.header_file.display()
                    )
                })?;
            Some(ManagedIdentitySettings {
                listen: mi.listen,
                header: SecretString::new(header.to_owned()),
                client_ids: mi.client_ids.clone(),
            })
        }
        None => None,
    };
    Ok(IdentitySettings {
        issuer_url: c.issuer_url.clone(),
        audiences: c.audiences.clone(),
        token_lifetime_seconds: c.token_lifetime_seconds,
        trusted_issuers,
        managed_identity,
        jwks_urls,
        default_tenant: c.default_tenant.clone(),
        token_endpoint_bases: c.token_endpoint_urls.clone(),
    })
}

/// The token issuer's settings once the listener's address (and so the dev DNS suffix's
/// port) is known.
fn identity_config(settings: &Settings, local: SocketAddr, dns_suffix: &str) -> IdentityConfig {
    let issuer_base = match (&settings.identity.issuer_url, &settings.dev) {
        (Some(url), _) => url.clone(),
        // Dev: the address the SDKs are pointed at as authority.
        (None, Some(_)) => format!("https://{local}"),
        (None, None) => format!("https://{dns_suffix}"),
    };
    let mut audiences = vec![
        format!("https://{dns_suffix}"),
        "https://vault.azure.net".to_owned(),
    ];
    audiences.extend(settings.identity.audiences.iter().cloned());
    let mut token_endpoint_bases = vec![issuer_base.clone(), format!("https://{local}")];
    token_endpoint_bases.extend(settings.identity.token_endpoint_bases.iter().cloned());
    token_endpoint_bases.dedup();
    IdentityConfig {
        issuer_base,
        token_endpoint_bases,
        audiences,
        token_lifetime_seconds: settings.identity.token_lifetime_seconds,
        leeway_seconds: 60,
        trusted_issuers: settings.identity.trusted_issuers.clone(),
        bootstrap_token: settings.token_hash.clone(),
        default_tenant: settings.identity.default_tenant.clone(),
    }
}

fn cluster_settings(c: &config::ClusterConfig) -> anyhow::Result<ClusterSettings> {
    let ca = ClusterTls::read_ca(&c.ca_file)?;
    let cert = std::fs::read(&c.cert_file)
        .with_context(|| format!("reading {}", c.cert_file.display()))?;
    let key = read_private_file(&c.key_file)?;
    let bootstrap = if c.initial_members.is_empty() {
        Bootstrap::Join
    } else {
        Bootstrap::Members(
            c.initial_members
                .iter()
                .map(|m| {
                    (
                        m.id,
                        Member {
                            addr: m.address.clone(),
                            region: m.region.clone(),
                        },
                    )
                })
                .collect(),
        )
    };
    Ok(ClusterSettings {
        listen: c.listen,
        advertise: c.advertise.clone(),
        tls: ClusterTls::from_pem(ca, cert, key.to_vec()),
        bootstrap,
        join: c.join.clone(),
        learner: c.learner,
        timeouts: c.timeouts().context("cluster timing is invalid")?,
        overrides: c
            .peer_addresses
            .iter()
            .filter_map(|(id, addr)| Some((id.parse().ok()?, addr.clone())))
            .collect(),
    })
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only what the user is told to read.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "SIGTERM handler unavailable");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
}
