//! [`CofferClient`]: one authenticated TLS channel and a method per RPC.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_proto::v1::authorization_service_client::AuthorizationServiceClient;
use coffer_proto::v1::identity_service_client::IdentityServiceClient;
use coffer_proto::v1::key_service_client::KeyServiceClient;
use coffer_proto::v1::operator_service_client::OperatorServiceClient;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_proto::v1::{
    CreateVaultRequest, DeleteVaultRequest, GetSecretRequest, GetVaultRequest,
    ListSecretVersionsRequest, ListSecretsRequest, ListVaultsRequest, Secret, SetSecretRequest,
    SetThrottleLimitsRequest, UpdateNetworkRulesRequest, UpdateSecretRequest, UpdateVaultRequest,
    Vault,
};
use coffer_proto::v1::{
    JoinPeerRequest, ListPeersRequest, NodeInfoRequest, Peer, RemovePeerRequest,
    RestoreSnapshotResponse, SaveSnapshotRequest, SnapshotData, TakeSnapshotRequest,
    TransferLeaderRequest,
};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::{BearerAuth, Refresher};
use crate::cache::SecretCache;
use crate::error::retry_after_of;
use crate::options::Credential;
use crate::tls::{check_ca_pem, invalid_addr, split_addrs, tls_host};
use crate::{ClientError, ConnectOptions};

/// How long to wait for TCP + TLS before giving up on a node; a CLI should fail fast rather
/// than hang on an unreachable address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on pages followed by one list call. A server that keeps returning page tokens
/// beyond this is broken, and looping forever would hang the caller.
const MAX_PAGES: usize = 100_000;

type Transport = InterceptedService<Channel, BearerAuth>;

/// How long one logical call keeps trying other nodes while the cluster elects a leader or a
/// node is down. A LAN election takes about a second; the regions profile up to several.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

/// The stubs of one node.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) vaults: VaultServiceClient<Transport>,
    pub(crate) secrets: SecretServiceClient<Transport>,
    pub(crate) keys: KeyServiceClient<Transport>,
    pub(crate) operator: OperatorServiceClient<Transport>,
    pub(crate) identity: IdentityServiceClient<Transport>,
    pub(crate) authorization: AuthorizationServiceClient<Transport>,
}

/// A connected client. Cheap to clone; clones share the connections.
///
/// It knows every node it was given. A call that finds its node unreachable or unable to serve
/// (`ServiceUnavailable`: no leader, no quorum) is sent to the next node, with back-off, until
/// [`FAILOVER_DEADLINE`]. Each logical call carries one `x-ms-client-request-id` on every
/// attempt, so a write whose answer was lost is applied once however often it is sent.
#[derive(Clone)]
pub struct CofferClient {
    nodes: Arc<Vec<Node>>,
    /// The node that answered last; calls start there.
    preferred: Arc<AtomicUsize>,
    /// `Some`: reads may be served from a node's local copy this far behind the leader.
    max_staleness: Option<Duration>,
    /// How long one logical call keeps failing over.
    failover_deadline: Duration,
    /// `Some` when the client authenticates with a client secret: renews the token before it
    /// expires.
    refresher: Option<Arc<Refresher>>,
    /// How often one call is sent again after a throttled (429) answer.
    throttle_retries: u32,
    /// `Some`: secret reads are answered from here while fresh.
    secret_cache: Option<Arc<SecretCache>>,
}

/// Throttled calls are retried at most this long after they started.
const THROTTLE_DEADLINE: Duration = Duration::from_secs(60);
/// Retries after a throttled answer, by default.
pub const DEFAULT_THROTTLE_RETRIES: u32 = 4;

/// How long to wait before retry `attempt` (0-based) of a throttled call: what the server
/// asked for, else Azure's documented 1, 2, 4, 8, 16 s; at least an exponential floor from
/// 100 ms, so repeated refusals back off; plus up to half again of random jitter (`unit` in
/// 0..1), so that many throttled clients do not come back in step.
pub(crate) fn throttle_wait(retry_after: Option<Duration>, attempt: u32, unit: f64) -> Duration {
    let doubling = 1u32 << attempt.min(4);
    let base = retry_after
        .unwrap_or(Duration::from_secs(1) * doubling)
        .max(Duration::from_millis(100) * doubling);
    base.mul_f64(1.0 + unit.clamp(0.0, 1.0) / 2.0)
}

/// A number in 0..1 for jitter; it need not be unpredictable, only different between clients
/// and calls.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl fmt::Debug for CofferClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CofferClient").finish_non_exhaustive()
    }
}

/// Whether another node (or the same one, later) may succeed where this attempt failed: the
/// node said it cannot serve now (`Unavailable`), or the failure did not come from a Coffer
/// node at all (a connection reset mid-call surfaces as `Unknown` or `Cancelled` without
/// Coffer's error-code metadata). Retrying a write is safe because every attempt carries the
/// same request id.
fn worth_retrying(status: &Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal => status
            .metadata()
            .get(crate::error::ERROR_CODE_KEY)
            .is_none(),
        _ => false,
    }
}

/// Whether a node refused the call for the vault's request rate (`429 Throttled`), the one
/// `ResourceExhausted` worth waiting out: tonic reports local limits (a message over 4 GiB, a
/// decompression bomb) with the same gRPC code, but with no Coffer error code and no wait.
fn is_throttled(status: &Status) -> bool {
    if status.code() != tonic::Code::ResourceExhausted {
        return false;
    }
    match status.metadata().get(crate::error::ERROR_CODE_KEY) {
        Some(code) => code.to_str().is_ok_and(|code| code.trim() == "Throttled"),
        // A proxy in front of the node may drop Coffer's own metadata but keep the wait.
        None => retry_after_of(status).is_some(),
    }
}

impl CofferClient {
    /// Connects over TLS, trusting only `options.ca_cert_pem`, and checks each server
    /// certificate against the host of its address. `options.addr` may list several nodes
    /// separated by commas; the first that accepts a connection is used first, the others are
    /// connected when needed.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let ConnectOptions {
            addr,
            ca_cert_pem,
            credential,
            source_address,
        } = options;
        check_ca_pem(&ca_cert_pem)?;
        let addrs = split_addrs(&addr);
        if addrs.is_empty() {
            return Err(invalid_addr(&addr, "no address given"));
        }
        let mut endpoints = Vec::new();
        for addr in &addrs {
            let host = tls_host(addr)?;
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca_cert_pem))
                .domain_name(host);
            let endpoint = Endpoint::from_shared(addr.clone())
                .map_err(|err| invalid_addr(addr, &err.to_string()))?
                .connect_timeout(CONNECT_TIMEOUT.min(Duration::from_secs(3)))
                .local_address(source_address)
                .tls_config(tls)
                .map_err(|err| ClientError::connect(addr, &err))?;
            endpoints.push(endpoint);
        }
        // Only addresses that parse are sent the client secret.
        let (auth, refresher) = match credential {
            Credential::Bearer(token) => (BearerAuth::new(token.expose())?, None),
            Credential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                let refresher = Refresher::start(
                    addrs.clone(),
                    ca_cert_pem.clone(),
                    tenant,
                    client_id,
                    secret,
                )
                .await?;
                (refresher.auth(), Some(Arc::new(refresher)))
            }
        };
        // One node must answer now, so that a wrong address or CA fails here, not on first use.
        let mut first_error = None;
        let mut live = None;
        for (i, endpoint) in endpoints.iter().enumerate() {
            match endpoint.connect().await {
                Ok(channel) => {
                    live = Some((i, channel));
                    break;
                }
                Err(err) => {
                    first_error.get_or_insert_with(|| ClientError::connect(&addrs[i], &err));
                }
            }
        }
        let Some((live_index, live_channel)) = live else {
            return Err(first_error.unwrap_or_else(|| invalid_addr(&addr, "no address given")));
        };
        let nodes = endpoints
            .iter()
            .enumerate()
            .map(|(i, endpoint)| {
                let channel = if i == live_index {
                    live_channel.clone()
                } else {
                    endpoint.connect_lazy()
                };
                Node {
                    vaults: VaultServiceClient::with_interceptor(channel.clone(), auth.clone()),
                    secrets: SecretServiceClient::with_interceptor(channel.clone(), auth.clone()),
                    keys: KeyServiceClient::with_interceptor(channel.clone(), auth.clone()),
                    identity: IdentityServiceClient::with_interceptor(
                        channel.clone(),
                        auth.clone(),
                    ),
                    authorization: AuthorizationServiceClient::with_interceptor(
                        channel.clone(),
                        auth.clone(),
                    ),
                    operator: OperatorServiceClient::with_interceptor(channel, auth.clone())
                        .max_decoding_message_size(64 * 1024 * 1024),
                }
            })
            .collect();
        Ok(Self {
            nodes: Arc::new(nodes),
            preferred: Arc::new(AtomicUsize::new(live_index)),
            max_staleness: None,
            failover_deadline: FAILOVER_DEADLINE,
            refresher,
            throttle_retries: DEFAULT_THROTTLE_RETRIES,
            secret_cache: None,
        })
    }

    /// How often a call answered `429 Throttled` is sent again, after the wait the server
    /// asked for with jittered exponential backoff (default 4; 0 reports the first 429 at
    /// once, as a load generator needs). A call is never retried more than 60 s after it
    /// started. Retries carry the first attempt's request id, so a write is applied once.
    pub fn with_throttle_retries(mut self, retries: u32) -> Self {
        self.throttle_retries = retries;
        self
    }

    /// Answers [`CofferClient::get_secret`] from a local copy for `ttl` after the server
    /// answered, keeping at most `max_entries` (the read-through cache the throttle limits
    /// call for). Values are wiped from memory when entries go. A set, update or delete of a
    /// secret through this client forgets its copies; changes made elsewhere are seen once the
    /// TTL passes.
    pub fn with_secret_cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.secret_cache = Some(Arc::new(SecretCache::new(ttl, max_entries)));
        self
    }

    /// Forgets cached copies of a secret this client changed (of every secret of the vault
    /// when `name` is `None`).
    pub(crate) fn forget_secret(&self, vault: &str, name: Option<&str>) {
        if let Some(cache) = &self.secret_cache {
            cache.invalidate(vault, name);
        }
    }

    /// Runs a call that changes a secret, forgetting its cached copies before (so that no
    /// read after this starts is answered from them) and after (so that a read that raced the
    /// change is not kept; it is forgotten even if the call failed, which may have been applied
    /// anyway).
    pub(crate) async fn changing_secret<T>(
        &self,
        vault: &str,
        name: Option<&str>,
        change: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        self.forget_secret(vault, name);
        let result = change.await;
        self.forget_secret(vault, name);
        result
    }

    /// A client whose reads may be served by any node whose copy is at most `max` behind the
    /// leader (learners in remote regions serve these); writes are unaffected.
    pub fn with_max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = Some(max);
        self
    }

    /// How long one call keeps trying other nodes before it reports the last failure
    /// (default 30 s).
    pub fn with_failover_deadline(mut self, deadline: Duration) -> Self {
        self.failover_deadline = deadline;
        self
    }

    /// Renews a client-secret token that is about to expire; nothing for a bearer token.
    async fn fresh_token(&self) -> Result<(), ClientError> {
        match &self.refresher {
            Some(refresher) => refresher.ensure_fresh().await,
            None => Ok(()),
        }
    }

    /// Runs one logical call, moving to the next node on a retryable failure.
    pub(crate) async fn call<T, F, Fut>(&self, send: F) -> Result<T, ClientError>
    where
        F: Fn(Node, MetadataMap) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.fresh_token().await?;
        let metadata = self.call_metadata();
        let started = Instant::now();
        let until = started + self.failover_deadline;
        let count = self.nodes.len();
        let mut index = self.preferred.load(Ordering::Relaxed) % count;
        let mut failures = 0u32;
        let mut throttled = 0u32;
        loop {
            let node = self.nodes[index].clone();
            match send(node, metadata.clone()).await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Err(status) if is_throttled(&status) && throttled < self.throttle_retries => {
                    let wait = throttle_wait(retry_after_of(&status), throttled, jitter_unit());
                    if started.elapsed() + wait > THROTTLE_DEADLINE {
                        return Err(status.into());
                    }
                    throttled += 1;
                    tokio::time::sleep(wait).await;
                    // A long wait may outlast a client-secret token.
                    self.fresh_token().await?;
                }
                Err(status) if worth_retrying(&status) && Instant::now() < until => {
                    failures += 1;
                    index = (index + 1) % count;
                    // After trying every node once, wait before the next round: an election
                    // or a restart takes a moment.
                    if (failures as usize).is_multiple_of(count) {
                        let round = failures as usize / count;
                        let pause = Duration::from_millis(100 << round.min(4));
                        tokio::time::sleep(pause.min(Duration::from_secs(1))).await;
                    }
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    /// Runs one logical call on the node that answered last, without failover: for a
    /// client-streaming call whose input can be read only once, so that a failure half-way
    /// through is reported rather than answered by sending the rest of the input elsewhere.
    pub(crate) async fn call_once<T, F, Fut>(&self, send: F) -> Result<T, ClientError>
    where
        F: FnOnce(Node, MetadataMap) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.fresh_token().await?;
        let index = self.preferred.load(Ordering::Relaxed) % self.nodes.len();
        let response = send(self.nodes[index].clone(), self.call_metadata()).await?;
        Ok(response.into_inner())
    }

    /// The metadata every attempt of one logical call carries: one request id, and the
    /// staleness a read may accept.
    fn call_metadata(&self) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Ok(id) = new_request_id().parse() {
            metadata.insert("x-ms-client-request-id", id);
        }
        if let Some(max) = self.max_staleness
            && let Ok(ms) = max.as_millis().max(1).to_string().parse()
        {
            metadata.insert("x-coffer-max-staleness-ms", ms);
        }
        metadata
    }

    /// Creates a vault.
    pub async fn create_vault(&self, request: CreateVaultRequest) -> Result<Vault, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.create_vault(with_meta(r, m)).await }
        })
        .await
    }

    /// Reads a vault by name.
    pub async fn get_vault(&self, name: &str) -> Result<Vault, ClientError> {
        let request = GetVaultRequest {
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.get_vault(with_meta(r, m)).await }
        })
        .await
    }

    /// Lists every vault the token may see, following all pages.
    pub async fn list_vaults(&self) -> Result<Vec<Vault>, ClientError> {
        let mut vaults = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListVaultsRequest {
                max_results: 0,
                page_token,
            };
            let page = self
                .call(|mut n, m| {
                    let r = request.clone();
                    async move { n.vaults.list_vaults(with_meta(r, m)).await }
                })
                .await?;
            vaults.extend(page.vaults);
            pages.record(page.next_page_token);
        }
        Ok(vaults)
    }

    /// Updates a vault's SKU, purge protection or tags.
    pub async fn update_vault(&self, request: UpdateVaultRequest) -> Result<Vault, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.update_vault(with_meta(r, m)).await }
        })
        .await
    }

    /// Deletes a vault: it moves to the deleted state and stays recoverable
    /// ([`CofferClient::recover_deleted_vault`]) until its scheduled purge date.
    pub async fn delete_vault(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteVaultRequest {
            name: name.to_owned(),
        };
        let delete = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.delete_vault(with_meta(r, m)).await }
        });
        self.changing_secret(name, None, delete).await?;
        Ok(())
    }

    /// Sets a secret, creating a new version.
    pub async fn set_secret(&self, request: SetSecretRequest) -> Result<Secret, ClientError> {
        let set = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.set_secret(with_meta(r, m)).await }
        });
        self.changing_secret(&request.vault, Some(&request.name), set)
            .await
    }

    /// Reads a secret with its value; an empty `version` means the latest. With
    /// [`CofferClient::with_secret_cache`], a fresh cached answer is returned without a call.
    pub async fn get_secret(&self, request: GetSecretRequest) -> Result<Secret, ClientError> {
        let cache = self.secret_cache.as_ref();
        let generation = cache.map_or(0, |c| c.generation());
        if let Some(hit) = cache.and_then(|c| {
            c.get(
                &request.vault,
                &request.name,
                &request.version,
                Instant::now(),
            )
        }) {
            return Ok(hit);
        }
        let secret = self
            .call(|mut n, m| {
                let r = request.clone();
                async move { n.secrets.get_secret(with_meta(r, m)).await }
            })
            .await?;
        if let Some(cache) = cache {
            cache.insert(
                &request.vault,
                &request.name,
                &request.version,
                &secret,
                Instant::now(),
                generation,
            );
        }
        Ok(secret)
    }

    /// Changes a vault's network rule set (default action, bypass, public network access, IP
    /// and virtual network rules) in one step.
    pub async fn update_network_rules(
        &self,
        request: UpdateNetworkRulesRequest,
    ) -> Result<Vault, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.update_network_rules(with_meta(r, m)).await }
        })
        .await
    }

    /// Sets or resets a vault's throttle limits (a cluster operator's call).
    pub async fn set_throttle_limits(
        &self,
        request: SetThrottleLimitsRequest,
    ) -> Result<Vault, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.set_throttle_limits(with_meta(r, m)).await }
        })
        .await
    }

    /// Lists the secrets of a vault (latest version of each, without values), following all
    /// pages.
    pub async fn list_secrets(&self, vault: &str) -> Result<Vec<Secret>, ClientError> {
        let mut secrets = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListSecretsRequest {
                vault: vault.to_owned(),
                max_results: 0,
                page_token,
            };
            let page = self
                .call(|mut n, m| {
                    let r = request.clone();
                    async move { n.secrets.list_secrets(with_meta(r, m)).await }
                })
                .await?;
            secrets.extend(page.secrets);
            pages.record(page.next_page_token);
        }
        Ok(secrets)
    }

    /// Lists every version of one secret (without values), following all pages.
    pub async fn list_secret_versions(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Vec<Secret>, ClientError> {
        let mut secrets = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListSecretVersionsRequest {
                vault: vault.to_owned(),
                name: name.to_owned(),
                max_results: 0,
                page_token,
            };
            let page = self
                .call(|mut n, m| {
                    let r = request.clone();
                    async move { n.secrets.list_secret_versions(with_meta(r, m)).await }
                })
                .await?;
            secrets.extend(page.secrets);
            pages.record(page.next_page_token);
        }
        Ok(secrets)
    }

    /// Updates a secret version's attributes, content type or tags (never its value).
    pub async fn update_secret(&self, request: UpdateSecretRequest) -> Result<Secret, ClientError> {
        let update = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.update_secret(with_meta(r, m)).await }
        });
        self.changing_secret(&request.vault, Some(&request.name), update)
            .await
    }

    /// The identity of the node at the first address (not failed over: it asks one node).
    pub async fn node_info(&self) -> Result<Peer, ClientError> {
        self.fresh_token().await?;
        let mut node = self.nodes[0].clone();
        Ok(node
            .operator
            .node_info(NodeInfoRequest {})
            .await?
            .into_inner())
    }

    /// The cluster's members, as the leader sees them.
    pub async fn list_peers(&self) -> Result<Vec<Peer>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.operator
                    .list_peers(with_meta(ListPeersRequest {}, m))
                    .await
            })
            .await?;
        Ok(response.peers)
    }

    /// Adds a node; see `coffer operator raft join`.
    pub async fn join_peer(&self, request: JoinPeerRequest) -> Result<Vec<Peer>, ClientError> {
        let response = self
            .call(|mut n, m| {
                let r = request.clone();
                async move { n.operator.join_peer(with_meta(r, m)).await }
            })
            .await?;
        Ok(response.peers)
    }

    pub async fn remove_peer(&self, id: u64, force: bool) -> Result<Vec<Peer>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.operator
                    .remove_peer(with_meta(RemovePeerRequest { id, force }, m))
                    .await
            })
            .await?;
        Ok(response.peers)
    }

    pub async fn transfer_leader(&self, to: u64) -> Result<Vec<Peer>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.operator
                    .transfer_leader(with_meta(TransferLeaderRequest { to }, m))
                    .await
            })
            .await?;
        Ok(response.peers)
    }

    /// Builds a Raft snapshot on the first node that answers; returns (node, index covered).
    pub async fn take_snapshot(&self) -> Result<(u64, u64), ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.operator
                    .take_snapshot(with_meta(TakeSnapshotRequest {}, m))
                    .await
            })
            .await?;
        Ok((response.node, response.index))
    }

    /// A consistent copy of the whole cluster state (values sealed), as one blob.
    pub async fn save_snapshot(&self) -> Result<Vec<u8>, ClientError> {
        let mut stream = self
            .call(|mut n, m| async move {
                n.operator
                    .save_snapshot(with_meta(SaveSnapshotRequest {}, m))
                    .await
            })
            .await?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    /// Loads a saved copy into a cluster that holds no vaults.
    pub async fn restore_snapshot(
        &self,
        data: Vec<u8>,
    ) -> Result<RestoreSnapshotResponse, ClientError> {
        let chunks: Vec<SnapshotData> = data
            .chunks(1024 * 1024)
            .map(|c| SnapshotData { data: c.to_vec() })
            .collect();
        self.call(|mut n, m| {
            let chunks = chunks.clone();
            async move {
                let mut request = tonic::Request::new(tokio_stream::iter(chunks));
                *request.metadata_mut() = m;
                n.operator.restore_snapshot(request).await
            }
        })
        .await
    }
}

pub(crate) fn with_meta<T>(message: T, metadata: MetadataMap) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata;
    request
}

/// A random id for one logical call (128 bits, hex).
fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per instance; two of them give 128 unpredictable bits,
    // plenty for an id that only has to be unique.
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Page-token bookkeeping shared by the list methods.
#[derive(Default)]
pub(crate) struct Pager {
    /// Token for the next request; `None` once the last page has been read.
    next: Option<String>,
    started: bool,
    pages: usize,
}

impl Pager {
    /// The page token to send next, or `None` when done.
    pub(crate) fn next_request(&mut self) -> Result<Option<String>, ClientError> {
        if !self.started {
            self.started = true;
            return Ok(Some(String::new()));
        }
        self.pages += 1;
        if self.pages >= MAX_PAGES {
            return Err(ClientError::InvalidResponse {
                message: format!("server returned more than {MAX_PAGES} pages"),
            });
        }
        Ok(self.next.take())
    }

    pub(crate) fn record(&mut self, next_page_token: String) {
        // An empty token marks the last page.
        self.next = Some(next_page_token).filter(|token| !token.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Token;

    #[test]
    fn pager_follows_tokens_until_empty() {
        let mut pager = Pager::default();
        assert_eq!(pager.next_request().unwrap(), Some(String::new()));
        pager.record("p2".to_owned());
        assert_eq!(pager.next_request().unwrap(), Some("p2".to_owned()));
        pager.record(String::new());
        assert_eq!(pager.next_request().unwrap(), None);
    }

    #[test]
    fn throttled_calls_wait_what_the_server_asks_and_back_off_with_jitter() {
        let ms = Duration::from_millis;
        // The server's wait is the floor; jitter adds at most half again.
        assert_eq!(throttle_wait(Some(ms(300)), 0, 0.0), ms(300));
        assert_eq!(throttle_wait(Some(ms(300)), 0, 1.0), ms(450));
        // Repeated refusals back off from 100 ms, doubling, even if the server says less.
        assert_eq!(throttle_wait(Some(ms(1)), 0, 0.0), ms(100));
        assert_eq!(throttle_wait(Some(ms(1)), 3, 0.0), ms(800));
        assert_eq!(throttle_wait(Some(ms(1)), 9, 0.0), ms(1_600));
        // Without a Retry-After: Azure's 1, 2, 4, 8, 16 s.
        let azure: Vec<Duration> = (0..6).map(|a| throttle_wait(None, a, 0.0)).collect();
        assert_eq!(
            azure,
            [1, 2, 4, 8, 16, 16].map(Duration::from_secs).to_vec()
        );
        for _ in 0..100 {
            let unit = jitter_unit();
            assert!((0.0..1.0).contains(&unit));
        }
        // Jitter spreads clients out.
        let spread: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| throttle_wait(Some(ms(200)), 0, jitter_unit()).as_micros() as u64)
            .collect();
        assert!(spread.len() > 10);
    }

    #[test]
    fn only_failures_that_may_pass_elsewhere_are_retried() {
        use tonic::metadata::MetadataMap;
        assert!(worth_retrying(&Status::unavailable("no leader")));
        // A reset connection: no Coffer node answered.
        assert!(worth_retrying(&Status::unknown("h2 protocol error")));
        let mut meta = MetadataMap::new();
        meta.insert("x-coffer-error-code", "InternalError".parse().unwrap());
        // A Coffer node answered with an error of its own: sending it elsewhere changes nothing.
        assert!(!worth_retrying(&Status::with_metadata(
            tonic::Code::Internal,
            "store failed",
            meta
        )));
        assert!(!worth_retrying(&Status::not_found("SecretNotFound")));
        assert!(!worth_retrying(&Status::invalid_argument("BadParameter")));
    }

    #[test]
    fn only_the_vaults_rate_limit_is_waited_out() {
        use tonic::metadata::MetadataMap;
        let status = |pairs: &[(&'static str, &str)]| {
            let mut meta = MetadataMap::new();
            for (key, value) in pairs {
                meta.insert(*key, value.parse().unwrap());
            }
            Status::with_metadata(tonic::Code::ResourceExhausted, "busy", meta)
        };
        assert!(is_throttled(&status(&[
            ("x-coffer-error-code", "Throttled"),
            ("retry-after", "1"),
        ])));
        assert!(is_throttled(&status(&[(
            "x-coffer-error-code",
            "Throttled"
        )])));
        assert!(is_throttled(&status(&[("x-ms-retry-after-ms", "250")])));
        // tonic's own limits: no Coffer code, no wait.
        assert!(!is_throttled(&Status::resource_exhausted(
            "Error decompressing: size limit exceeded"
        )));
        assert!(!is_throttled(&status(&[(
            "x-coffer-error-code",
            "QuotaExceeded"
        )])));
        let mut meta = MetadataMap::new();
        meta.insert("x-coffer-error-code", "Throttled".parse().unwrap());
        assert!(!is_throttled(&Status::with_metadata(
            tonic::Code::Unavailable,
            "no leader",
            meta
        )));
    }

    #[tokio::test]
    async fn connect_refused_is_a_connection_error() {
        // Port 1 on loopback is essentially never listening.
        let ca = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        let options = ConnectOptions::new(
            "https://127.0.0.1:1",
            ca.as_bytes(),
            Token::new("t".to_owned()),
        );
        let err = CofferClient::connect(options).await.unwrap_err();
        assert_eq!(err.code(), "ConnectionFailed", "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
