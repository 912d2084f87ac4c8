//! Prometheus metrics of the gateway. Label values come from closed sets (operation names,
//! result codes, throttle classes): never an object name or caller, whose cardinality is
//! unbounded. The one exception is the vault name on the per-vault guard counters, as Azure
//! Monitor reports per vault: it is set only for vaults that exist, so the label set is bounded
//! by the cluster's vaults.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    vault: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VaultLabels {
    vault: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    tls_failures: Counter,
    audit_failures: Counter,
    throttled: Family<ThrottleLabels, Counter>,
    firewall_refused: Family<VaultLabels, Counter>,
}

fn new_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coffer_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(new_histogram);
        let tls_failures = Counter::default();
        let audit_failures = Counter::default();
        registry.register(
            "requests",
            "Requests by operation and result code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by operation",
            durations.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Connections refused during the TLS handshake",
            tls_failures.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            audit_failures.clone(),
        );
        let throttled = Family::<ThrottleLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "Requests refused with 429 by vault and operation class",
            throttled.clone(),
        );
        let firewall_refused = Family::<VaultLabels, Counter>::default();
        registry.register(
            "firewall_refused_requests",
            "Requests refused by a vault's network rules",
            firewall_refused.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            tls_failures,
            audit_failures,
            throttled,
            firewall_refused,
        }
    }

    pub fn observe_request(&self, operation: &'static str, result: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { operation, result })
            .inc();
        self.durations
            .get_or_create(&OperationLabels { operation })
            .observe(seconds);
    }

    pub(crate) fn throttled(&self, vault: &str, class: coffer_types::ThrottleClass) {
        self.throttled
            .get_or_create(&ThrottleLabels {
                vault: vault.to_owned(),
                class: class.as_str(),
            })
            .inc();
    }

    pub(crate) fn firewall_refused(&self, vault: &str) {
        self.firewall_refused
            .get_or_create(&VaultLabels {
                vault: vault.to_owned(),
            })
            .inc();
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_failures.inc();
    }

    pub fn audit_write_failed(&self) {
        self.audit_failures.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics did not encode");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_by_operation_and_result() {
        let m = Metrics::new();
        m.observe_request("SecretGet", "OK", 0.001);
        m.observe_request("SecretGet", "OK", 0.002);
        m.observe_request("SecretGet", "SecretNotFound", 0.001);
        let text = m.encode();
        assert!(
            text.contains(r#"coffer_gateway_requests_total{operation="SecretGet",result="OK"} 2"#),
            "{text}"
        );
        assert!(text.contains(
            r#"coffer_gateway_requests_total{operation="SecretGet",result="SecretNotFound"} 1"#
        ));
        assert!(
            text.contains(
                r#"coffer_gateway_request_duration_seconds_count{operation="SecretGet"} 3"#
            )
        );
    }
}
