//! Plain HTTP endpoints on the TLS listener: `/metrics` (Prometheus text) and `/healthz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::pipeline::Gateway;

pub(crate) fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(gateway)
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.metrics.encode(),
    )
}

/// 200 while this node has a leader to commit through, 503 otherwise.
async fn healthz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let status = gateway.service.store().status();
    let body = serde_json::json!({
        "status": if status.leader.is_some() { "ok" } else { "no-leader" },
        "node_id": status.node_id,
        "leader": status.leader,
        "term": status.term,
        "last_applied": status.last_applied,
    });
    let code = if status.leader.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}
