//! The openraft type configuration: what a log entry carries and what applying it returns.

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Proposal};

/// A cluster member as Raft's membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Address other nodes reach this one at (for the cluster transport).
    pub addr: String,
    /// The region the node runs in.
    pub region: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.addr, self.region)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        Node = NodeInfo,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type NodeId = u64;
