//! Prometheus metrics of the gateway. Label values come from closed sets (operation names,
//! result codes): never a vault, object name or caller, whose cardinality is unbounded.

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
        Self {
            registry,
            requests,
            durations,
            tls_failures,
            audit_failures,
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
