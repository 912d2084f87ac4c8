//! The audit log: one JSON line per request, allowed or refused.
//!
//! Records name the operation, caller, client address, vault, object id, result and duration,
//! in the spirit of Azure Key Vault's `AuditEvent`. They never hold a value, a token or key
//! material: the record type has no field that could carry one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audited request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub request_id: String,
    /// Azure's operation vocabulary: `SecretGet`, `SecretSet`, `VaultPut`, ...
    pub operation_name: &'static str,
    /// The authenticated principal, or `anonymous` when authentication failed.
    pub caller: String,
    pub caller_ip_address: String,
    pub vault: Option<String>,
    /// Object identifier (`{vault}/secrets/{name}/{version}`), when the request names one.
    pub id: Option<String>,
    /// `OK` or the Azure error code.
    pub result_code: &'static str,
    /// Azure's inner error code of a refusal, such as `ForbiddenByFirewall`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_code: Option<&'static str>,
    /// For a throttled request: when a token will be free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    pub http_status: u16,
    pub duration_ms: f64,
}

/// Appends audit records to a file (created 0600, opened in append mode).
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Writes one record as one line. A failure is logged, not returned: the request has
    /// already been served, and the operator is told through the log and the metric.
    pub fn record(&self, record: &AuditRecord) -> bool {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record did not serialize");
                return false;
            }
        };
        line.push(b'\n');
        // One write call per line on an O_APPEND file keeps concurrent lines whole.
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match file.write_all(&line) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be written");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let record = AuditRecord {
            time: "2026-01-01T00:00:00Z".into(),
            request_id: "r1".into(),
            operation_name: "SecretGet",
            caller: "admin".into(),
            caller_ip_address: "127.0.0.1".into(),
            vault: Some("kv".into()),
            id: Some("kv/secrets/a".into()),
            result_code: "OK",
            inner_code: None,
            retry_after_ms: None,
            http_status: 200,
            duration_ms: 1.5,
        };
        assert!(log.record(&record));
        assert!(log.record(&AuditRecord {
            result_code: "Unauthorized",
            ..record
        }));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["operationName"], "SecretGet");
        assert_eq!(lines[1]["resultCode"], "Unauthorized");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
