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
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => coffer_types::Error::unavailable(m),
            other => coffer_types::Error::internal(other.to_string()),
        }
    }
}
