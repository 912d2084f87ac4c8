//! The request pipeline shared by every API: authenticate, run the operation, then audit and
//! count it, whatever the outcome.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use coffer_crypto::SecretString;
use coffer_service::{Authenticator, Caller, Consistency, RequestContext, Service};
use coffer_types::network::{Origin, Verdict};
use coffer_types::{Error, ErrorCode, IpNet, ThrottleClass, VaultRecord};
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditLog, AuditRecord};
use crate::client_addr::{TrustedProxies, forwarded_client};
use crate::metrics::Metrics;

/// Where a connection comes from, attached to each of its requests by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr {
    /// The TCP peer, or the client a trusted proxy named in a PROXY protocol header.
    pub addr: SocketAddr,
    /// Whether the connection arrived on a listener marked private.
    pub private: bool,
}

/// What the transport tells the pipeline about a request besides its body.
#[derive(Debug, Default)]
pub(crate) struct RequestMeta {
    pub bearer: Option<SecretString>,
    pub client: Option<ClientAddr>,
    /// The request's `X-Forwarded-For`, honoured only when the connection comes from a
    /// trusted proxy.
    pub forwarded_for: Option<String>,
    /// The client's own id for the request; retries of a write reuse it.
    pub client_request_id: Option<String>,
    pub consistency: Consistency,
}

/// The guards an operation passes: which throttle class it draws from, and whether the vault's
/// network rules apply. As in Azure, the rules guard the data plane (objects, random bytes,
/// and here vault backups, which carry every object); management requests on the vault itself
/// pass them, so that an administrator can always change the rules.
fn guards_of(operation: &str) -> Option<(ThrottleClass, bool)> {
    match operation {
        "VaultGetRandomBytes" => Some((ThrottleClass::Keys, true)),
        "VaultBackup" => Some((ThrottleClass::Management, true)),
        // A vault being created, restored, recovered or purged is not active: nothing to guard.
        "VaultPut" | "VaultRestore" | "VaultRecover" | "VaultPurge" | "VaultGetDeleted" => None,
        op if op.starts_with("Secret") => Some((ThrottleClass::Secrets, true)),
        op if op.starts_with("Key") => Some((ThrottleClass::Keys, true)),
        op if op.starts_with("Certificate") => Some((ThrottleClass::Certificates, true)),
        op if op.starts_with("Vault") || op.starts_with("RoleAssignment") => {
            Some((ThrottleClass::Management, false))
        }
        _ => None,
    }
}

/// What a request is about, for its audit record.
#[derive(Debug, Default, Clone)]
pub(crate) struct Target {
    pub vault: Option<String>,
    pub id: Option<String>,
}

impl Target {
    pub(crate) fn vault(vault: &str) -> Self {
        Self {
            vault: Some(vault.to_owned()),
            id: None,
        }
    }

    pub(crate) fn object(vault: &str, collection: &str, name: &str, version: &str) -> Self {
        let mut id = format!("{vault}/{collection}/{name}");
        if !version.is_empty() {
            id.push('/');
            id.push_str(version);
        }
        Self {
            vault: Some(vault.to_owned()),
            id: Some(id),
        }
    }
}

/// A successful result that names the object it produced (a new secret version, say), which
/// the audit record then carries instead of what the request named.
pub(crate) trait Audited {
    fn audited_id(&self) -> Option<String> {
        None
    }

    /// The HTTP status the success is answered with (a REST purge answers 204).
    fn http_status(&self) -> u16 {
        200
    }
}

/// A finished request, as metrics and the audit log see it.
pub(crate) struct Outcome<'a> {
    pub operation_name: &'static str,
    pub request_id: &'a str,
    pub caller: String,
    pub client: Option<IpAddr>,
    pub vault: Option<String>,
    pub id: Option<String>,
    pub result_code: &'static str,
    /// Azure's inner error code, when the refusal has one (`ForbiddenByFirewall`).
    pub inner_code: Option<&'static str>,
    pub retry_after_ms: Option<u64>,
    pub http_status: u16,
    pub started: Instant,
}

/// Shared state of the gateway.
pub struct Gateway {
    pub(crate) service: Service,
    authenticator: Arc<dyn Authenticator>,
    audit: AuditLog,
    pub(crate) metrics: Metrics,
    next_request: AtomicU64,
    node_tag: String,
    trusted_proxies: TrustedProxies,
}

impl Gateway {
    pub fn new(
        service: Service,
        authenticator: Arc<dyn Authenticator>,
        audit: AuditLog,
        metrics: Metrics,
    ) -> Self {
        let node_tag = format!("n{}", service.store().status().node_id);
        Self {
            service,
            authenticator,
            audit,
            metrics,
            next_request: AtomicU64::new(1),
            node_tag,
            trusted_proxies: TrustedProxies::new(Vec::new()),
        }
    }

    /// The proxies and load balancers whose PROXY protocol headers and `X-Forwarded-For`
    /// headers are believed. From any other peer they change nothing.
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = TrustedProxies::new(proxies);
        self
    }

    pub(crate) fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// A new id for a request this node serves.
    pub(crate) fn next_request_id(&self) -> String {
        format!(
            "{}-{}",
            self.node_tag,
            self.next_request.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Counts a finished request and writes its audit record.
    pub(crate) fn record(&self, outcome: Outcome<'_>) {
        let elapsed = outcome.started.elapsed();
        self.metrics.observe_request(
            outcome.operation_name,
            outcome.result_code,
            elapsed.as_secs_f64(),
        );
        let record = AuditRecord {
            time: time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            request_id: outcome.request_id.to_owned(),
            operation_name: outcome.operation_name,
            caller: outcome.caller,
            caller_ip_address: outcome
                .client
                .map(|a| coffer_types::net::canonical_ip(a).to_string())
                .unwrap_or_default(),
            vault: outcome.vault,
            id: outcome.id,
            result_code: outcome.result_code,
            inner_code: outcome.inner_code,
            retry_after_ms: outcome.retry_after_ms,
            http_status: outcome.http_status,
            duration_ms: elapsed.as_secs_f64() * 1_000.0,
        };
        if !self.audit.record(&record) {
            self.metrics.audit_write_failed();
        }
    }

    /// Runs `operation` for an authenticated caller, once the vault's network rules and
    /// throttle admit it, and records the request; returns the request's id and the result.
    /// It runs in a task of its own: if the client goes away and the transport drops its
    /// handler, a write already proposed still completes and is still audited.
    pub(crate) async fn call<T, F, Fut>(
        self: &Arc<Self>,
        operation_name: &'static str,
        request: RequestMeta,
        target: Target,
        operation: F,
    ) -> (String, Result<T, Error>)
    where
        T: Audited + Send + 'static,
        F: FnOnce(RequestContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let gateway = self.clone();
        let task = tokio::spawn(async move {
            gateway
                .call_here(operation_name, request, target, operation)
                .await
        });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(operation = operation_name, error = %e, "request task failed");
                (
                    String::new(),
                    Err(Error::internal("The request failed inside the server.")),
                )
            }
        }
    }

    async fn call_here<T, F, Fut>(
        &self,
        operation_name: &'static str,
        request: RequestMeta,
        target: Target,
        operation: F,
    ) -> (String, Result<T, Error>)
    where
        T: Audited,
        F: FnOnce(RequestContext) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let RequestMeta {
            bearer,
            client,
            forwarded_for,
            client_request_id,
            consistency,
        } = request;
        let bearer = bearer.as_ref().map(SecretString::expose);
        let forwarded_for = forwarded_for.as_deref();
        let client_request_id = client_request_id.as_deref();
        let started = Instant::now();
        let request_id = self.next_request_id();
        let origin = client.map(|c| Origin {
            addr: forwarded_client(c.addr.ip(), forwarded_for, &self.trusted_proxies),
            private_listener: c.private,
        });
        let guarded = self
            .guarded(operation_name, target.vault.as_deref())
            .await
            .inspect_err(|e| tracing::warn!(error = %e.message, "reading a vault's guards failed"));
        let (caller, result) = match self.authenticator.authenticate(bearer) {
            Ok(principal) => {
                let caller = principal.id.clone();
                let admitted = guarded
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|guarded| self.admit(&principal, guarded.as_ref(), origin.as_ref()));
                match admitted {
                    Err(e) => (caller, Err(e)),
                    Ok(()) => {
                        match RequestContext::new(principal, client_request_id, consistency) {
                            Ok(ctx) => (caller, operation(ctx).await),
                            Err(e) => (caller, Err(e)),
                        }
                    }
                }
            }
            Err(e) => {
                // An address the rules refuse hears so before it hears about its credential.
                let refused = guarded
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .zip(origin.as_ref())
                    .and_then(|(g, origin)| {
                        self.firewall(&g.vault, g.firewalled, origin, "anonymous", false)
                            .err()
                    });
                ("anonymous".to_owned(), Err(refused.unwrap_or(e)))
            }
        };
        let (result_code, http_status, id) = match &result {
            Ok(value) => ("OK", value.http_status(), value.audited_id().or(target.id)),
            Err(e) => (e.code.as_str(), e.code.http_status(), target.id),
        };
        let error = result.as_ref().err();
        self.record(Outcome {
            operation_name,
            request_id: &request_id,
            caller,
            client: origin.map(|o| o.addr),
            vault: target.vault,
            id,
            result_code,
            inner_code: error.and_then(|e| e.inner).map(|i| i.as_str()),
            retry_after_ms: error.and_then(|e| e.retry_after_ms),
            http_status,
            started,
        });
        if let Err(e) = &result {
            tracing::debug!(
                request_id,
                operation = operation_name,
                code = e.code.as_str(),
                "request refused"
            );
        }
        (request_id, result)
    }

    /// The vault an operation is guarded by, as this node has applied it. A vault this node
    /// has not applied yet (just created, restored or recovered elsewhere) is looked up again
    /// after a read barrier, so that the operation's own barrier cannot find it unguarded. A
    /// failed read refuses the request rather than skip the guards.
    async fn guarded(
        &self,
        operation: &str,
        vault: Option<&str>,
    ) -> Result<Option<Guarded>, Error> {
        let Some((class, firewalled)) = guards_of(operation) else {
            return Ok(None);
        };
        let Some(name) = vault else {
            return Ok(None);
        };
        let mut found = self.service.guarded_vault(name)?;
        if found.is_none() && coffer_types::VaultName::parse(name).is_ok() {
            self.service.store().read_barrier().await?;
            found = self.service.guarded_vault(name)?;
        }
        Ok(found.map(|vault| Guarded {
            vault,
            class,
            firewalled,
        }))
    }

    /// The network rules, then the throttle (DESIGN.md §2).
    fn admit(
        &self,
        caller: &Caller,
        guarded: Option<&Guarded>,
        origin: Option<&Origin>,
    ) -> Result<(), Error> {
        let Some(g) = guarded else {
            return Ok(());
        };
        if let Some(origin) = origin {
            let trusted = self.service.is_trusted_service(caller);
            self.firewall(&g.vault, g.firewalled, origin, &caller.describe(), trusted)?;
        }
        self.service.throttle(&g.vault, g.class).inspect_err(|e| {
            if e.code == ErrorCode::Throttled {
                self.metrics.throttled(&g.vault.name, g.class);
            }
        })
    }

    fn firewall(
        &self,
        vault: &VaultRecord,
        firewalled: bool,
        origin: &Origin,
        caller: &str,
        trusted_service: bool,
    ) -> Result<(), Error> {
        if !firewalled {
            return Ok(());
        }
        let verdict = self.service.judge_origin(vault, origin);
        if verdict == Verdict::Admit || (trusted_service && verdict.bypassable()) {
            return Ok(());
        }
        self.metrics.firewall_refused(&vault.name);
        Err(verdict
            .error(origin, caller, &vault.name)
            .unwrap_or_else(|| Error::internal("The firewall refused without a reason.")))
    }
}

/// A request's vault and the guards its operation passes.
struct Guarded {
    vault: VaultRecord,
    class: ThrottleClass,
    firewalled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_operations_are_firewalled_and_management_ones_are_not() {
        assert_eq!(guards_of("SecretGet"), Some((ThrottleClass::Secrets, true)));
        assert_eq!(guards_of("KeySign"), Some((ThrottleClass::Keys, true)));
        assert_eq!(
            guards_of("VaultGetRandomBytes"),
            Some((ThrottleClass::Keys, true))
        );
        assert_eq!(
            guards_of("VaultBackup"),
            Some((ThrottleClass::Management, true))
        );
        assert_eq!(
            guards_of("VaultUpdateNetworkRules"),
            Some((ThrottleClass::Management, false))
        );
        assert_eq!(guards_of("VaultPut"), None);
        assert_eq!(guards_of("PrincipalCreate"), None);
    }
}
