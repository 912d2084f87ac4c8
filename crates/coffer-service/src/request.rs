//! What the service needs to know about a request besides its arguments: the idempotency key
//! its writes are proposed under, and how fresh its reads must be.

use std::time::Duration;

use coffer_types::Error;

use std::sync::Arc;

use crate::Caller;

/// The longest client request id accepted (Azure SDKs send a 36-character UUID).
const MAX_CLIENT_REQUEST_ID: usize = 64;

/// How current a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (the default).
    #[default]
    Linearizable,
    /// Served from this node's copy if that copy is at most this far behind the leader; refused
    /// as unavailable otherwise. For learners in remote regions and read-heavy workloads.
    Stale { max: Duration },
}

/// One client request as the service sees it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The key under which the request's write is applied at most once.
    request_id: String,
    pub consistency: Consistency,
    caller: Arc<Caller>,
}

impl RequestContext {
    /// A context for `principal`'s request. `client_request_id` is the id the client sent
    /// (gRPC metadata or the `x-ms-client-request-id` header): a client that retries a write
    /// with the same id gets the first attempt's answer instead of a second write. Ids are
    /// scoped by principal, so one caller cannot answer another's retries. Without one, the
    /// request gets a fresh random id, which still makes the cluster's own retries (forwarding
    /// across a leader change) safe.
    pub fn new(
        caller: Caller,
        client_request_id: Option<&str>,
        consistency: Consistency,
    ) -> Result<Self, Error> {
        let own = match client_request_id {
            Some(id) => {
                if id.is_empty()
                    || id.len() > MAX_CLIENT_REQUEST_ID
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(Error::bad_parameter(format!(
                        "The client request id must be 1 to {MAX_CLIENT_REQUEST_ID} letters, \
                         digits, hyphens or underscores."
                    )));
                }
                id.to_owned()
            }
            None => coffer_crypto::new_version()
                .map_err(|e| Error::internal(e.to_string()))?
                .to_string(),
        };
        Ok(Self {
            request_id: format!("{}/{own}", caller.id),
            consistency,
            caller: Arc::new(caller),
        })
    }

    /// A context for work the server starts itself, not a client.
    pub fn internal() -> Result<Self, Error> {
        Self::new(Caller::internal(), None, Consistency::Linearizable)
    }

    /// A context for one step of a request that proposes several writes: the same caller and
    /// consistency, and a request id derived from this one, so a retry of the whole request
    /// repeats each step under the same id. The separator is one client ids cannot contain,
    /// so no client id names another request's step.
    pub fn step(&self, step: &str) -> Self {
        Self {
            request_id: format!("{}:{step}", self.request_id),
            consistency: self.consistency,
            caller: self.caller.clone(),
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_scoped_by_principal_and_validated() {
        let alice = Caller {
            id: "alice".into(),
            ..Caller::internal()
        };
        let bob = Caller {
            id: "bob".into(),
            ..Caller::internal()
        };
        let a = RequestContext::new(alice.clone(), Some("r-1"), Consistency::Linearizable).unwrap();
        let b = RequestContext::new(bob, Some("r-1"), Consistency::Linearizable).unwrap();
        assert_ne!(a.request_id(), b.request_id());
        assert_eq!(a.request_id(), "alice/r-1");
        for bad in ["", "has space", "a/b", &"x".repeat(65)] {
            let e = RequestContext::new(alice.clone(), Some(bad), Consistency::Linearizable)
                .unwrap_err();
            assert_eq!(e.code, coffer_types::ErrorCode::BadParameter);
        }
        let fresh1 = RequestContext::new(alice.clone(), None, Consistency::Linearizable).unwrap();
        let fresh2 = RequestContext::new(alice, None, Consistency::Linearizable).unwrap();
        assert_ne!(fresh1.request_id(), fresh2.request_id());
    }
}
