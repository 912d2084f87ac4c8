/// Failures of the store itself (as opposed to a command refused by the state machine, which
/// is an [`crate::Applied::Failed`] carrying a client error).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB or the file system failed. Fatal for the node.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A persisted record could not be decoded. Fatal: the data is damaged or newer than us.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Raft cannot serve the request now (no leader, no quorum, shutting down). Retryable.
    #[error("the replicated store is unavailable: {0}")]
    Unavailable(String),
    /// The request was refused as given (a membership change that would weaken the cluster,
    /// a malformed message). The message is the store's own and safe to show.
    #[error("refused: {0}")]
    Refused(String),
    /// Raft itself stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl StoreError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        StoreError::Storage(e.to_string())
    }

    pub(crate) fn corrupt(e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<StoreError> for coffer_types::Error {
    /// Clients learn that the store failed, not how: the detail (paths, decoder messages that
    /// may quote stored bytes) goes to the server log only.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                coffer_types::Error::unavailable(
                    "The vault store cannot serve this request now; retry later.",
                )
            }
            StoreError::Refused(m) => coffer_types::Error::bad_parameter(m),
            other => {
                tracing::error!(error = %other, "store failure");
                coffer_types::Error::internal(
                    "The vault store failed; the server log has the detail.",
                )
            }
        }
    }
}
