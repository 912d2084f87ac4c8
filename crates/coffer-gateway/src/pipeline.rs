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
        let request_id = format!(
            "{}-{}",
            self.node_tag,
            self.next_request.fetch_add(1, Ordering::Relaxed)
        );
        let (caller, result) = match self.authenticator.authenticate(bearer) {
            Ok(principal) => {
                let caller = principal.id.clone();
                match RequestContext::new(&principal, client_request_id, consistency) {
                    Ok(ctx) => (caller, operation(ctx).await),
                    Err(e) => (caller, Err(e)),
                }
            }
            Err(e) => ("anonymous".to_owned(), Err(e)),
        };
        let elapsed = started.elapsed();
        let (result_code, http_status, id) = match &result {
            Ok(value) => ("OK", 200, value.audited_id().or(target.id)),
            Err(e) => (e.code.as_str(), e.code.http_status(), target.id),
        };
        self.metrics
            .observe_request(operation_name, result_code, elapsed.as_secs_f64());
        let record = AuditRecord {
            time: time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            request_id: request_id.clone(),
            operation_name,
            caller,
            caller_ip_address: client.map(|a| a.ip().to_string()).unwrap_or_default(),
            vault: target.vault,
            id,
            result_code,
            http_status,
            duration_ms: elapsed.as_secs_f64() * 1_000.0,
        };
        if !self.audit.record(&record) {
            self.metrics.audit_write_failed();
        }
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
