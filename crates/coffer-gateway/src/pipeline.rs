//! The request pipeline shared by every API: authenticate, run the operation, then audit and
//! count it, whatever the outcome.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use coffer_service::{Authenticator, Consistency, RequestContext, Service};
use coffer_types::Error;
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditLog, AuditRecord};
use crate::metrics::Metrics;

/// The client's address as the listener saw it, attached to each request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub SocketAddr);

/// What the transport tells the pipeline about a request besides its body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestMeta<'a> {
    pub bearer: Option<&'a str>,
    pub client: Option<SocketAddr>,
    /// The client's own id for the request; retries of a write reuse it.
    pub client_request_id: Option<&'a str>,
    pub consistency: Consistency,
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
}

/// A finished request, as metrics and the audit log see it.
pub(crate) struct Outcome<'a> {
    pub operation_name: &'static str,
    pub request_id: &'a str,
    pub caller: String,
    pub client: Option<SocketAddr>,
    pub vault: Option<String>,
    pub id: Option<String>,
    pub result_code: &'static str,
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
        }
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
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            vault: outcome.vault,
            id: outcome.id,
            result_code: outcome.result_code,
            http_status: outcome.http_status,
            duration_ms: elapsed.as_secs_f64() * 1_000.0,
        };
        if !self.audit.record(&record) {
            self.metrics.audit_write_failed();
        }
    }

    /// Runs `operation` for an authenticated caller and records the request.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation_name: &'static str,
        request: RequestMeta<'_>,
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
            client_request_id,
            consistency,
        } = request;
        let started = Instant::now();
        let request_id = self.next_request_id();
        let (caller, result) = match self.authenticator.authenticate(bearer) {
            Ok(principal) => {
                let caller = principal.id.clone();
                match RequestContext::new(principal, client_request_id, consistency) {
                    Ok(ctx) => (caller, operation(ctx).await),
                    Err(e) => (caller, Err(e)),
                }
            }
            Err(e) => ("anonymous".to_owned(), Err(e)),
        };
        let (result_code, http_status, id) = match &result {
            Ok(value) => ("OK", 200, value.audited_id().or(target.id)),
            Err(e) => (e.code.as_str(), e.code.http_status(), target.id),
        };
        self.record(Outcome {
            operation_name,
            request_id: &request_id,
            caller,
            client,
            vault: target.vault,
            id,
            result_code,
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
}
