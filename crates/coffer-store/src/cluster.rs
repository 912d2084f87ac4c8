//! The cluster side of [`Store`]: requests that only the leader may serve (writes, read indexes,
//! membership changes) are handed to it here, and the messages other nodes send are served here.
//!
//! A client may reach any node. A node that does not lead hands the request to the node it
//! believes leads, over the transport; if that node no longer leads, or cannot be reached, the
//! request waits for the next leader and is sent again, until the store's request deadline. A
//! write is sent again under the same request id, so the state machine applies it once however
//! many times it is sent (see `dedup`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::type_config::async_runtime::instant::Instant as _;
use openraft::{ChangeMembers, ReadPolicy, ServerState};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::command::{Applied, Proposal};
use crate::network::SnapshotTransfer;
use crate::store::{Member, Store};
use crate::transport::RpcKind;
use crate::type_config::{NodeInfo, TypeConfig};

/// A request handed to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    Write(Proposal),
    ReadIndex,
    Peers,
    Join {
        id: u64,
        member: Member,
        learner: bool,
        force: bool,
    },
    Remove {
        id: u64,
        force: bool,
    },
    TransferLeader {
        to: u64,
    },
}

impl Forwarded {
    fn is_membership_change(&self) -> bool {
        matches!(
            self,
            Forwarded::Join { .. } | Forwarded::Remove { .. } | Forwarded::TransferLeader { .. }
        )
    }
}

/// The leader's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    Applied(Applied),
    /// Apply up to this log index, then read.
    ReadIndex(Option<u64>),
    Peers(Vec<PeerStatus>),
    Done,
    /// The receiver does not lead; it names the leader it knows of.
    NotLeader(Option<u64>),
    /// Retryable: no quorum, or the outcome of a write is unknown.
    Unavailable(String),
    /// The request was refused and should not be retried as it is.
    Refused(String),
}

impl Reply {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Reply::Applied(_) => "applied",
            Reply::ReadIndex(_) => "read_index",
            Reply::Peers(_) => "peers",
            Reply::Done => "done",
            Reply::NotLeader(_) => "not_leader",
            Reply::Unavailable(_) => "unavailable",
            Reply::Refused(_) => "refused",
        }
    }
}

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: u64,
    pub addr: String,
    pub region: String,
    pub voter: bool,
    pub leader: bool,
    /// The last log index the leader knows this node holds.
    pub matched: Option<u64>,
    /// Entries this node is behind the leader's log.
    pub lag: Option<u64>,
}

/// Seconds a forwarded call may take before the forwarding node tries again.
const HOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Runs `request` on the leader, wherever it is, retrying across leader changes until the
    /// request deadline.
    pub(crate) async fn on_leader(&self, request: Forwarded) -> Result<Reply, StoreError> {
        let until = Instant::now() + self.request_deadline;
        let mut last_problem;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            let leader = self.with_metrics(|m| m.current_leader);
            let reply = match leader {
                Some(id) if id == self.node_id => {
                    Some(self.serve_forwarded(request.clone(), remaining).await)
                }
                Some(id) => match self.member(id) {
                    Some(member) => self.forward_to(id, &member.addr, &request, remaining).await,
                    None => None,
                },
                None => None,
            };
            match reply {
                // A membership change that timed out may still be in flight; proposing it again
                // would only be refused as "already undergoing a change". Say so instead.
                Some(Reply::Unavailable(why)) if request.is_membership_change() => {
                    return Err(StoreError::Unavailable(format!(
                        "{why}; the membership change may still complete (check list-peers)"
                    )));
                }
                Some(Reply::NotLeader(hint)) => {
                    tracing::debug!(believed = ?leader, hint = ?hint, "the believed leader does not lead");
                    last_problem = "leadership moved".into()
                }
                Some(Reply::Unavailable(why)) => last_problem = why,
                Some(reply) => return Ok(reply),
                None => last_problem = format!("leader {leader:?} did not answer"),
            }
            if Instant::now() >= until {
                return Err(StoreError::Unavailable(last_problem));
            }
            tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
        }
    }

    async fn forward_to(
        &self,
        id: u64,
        addr: &str,
        request: &Forwarded,
        remaining: Duration,
    ) -> Option<Reply> {
        let body = serde_json::to_vec(request).ok()?;
        let timeout = remaining.min(HOP_TIMEOUT).max(Duration::from_millis(100));
        match self
            .transport
            .call(id, addr, RpcKind::Forward, body, timeout)
            .await
        {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(reply) => Some(reply),
                Err(e) => {
                    tracing::warn!(leader = id, error = %e, "undecodable reply from the leader");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(leader = id, error = %e, "forwarding to the leader failed");
                None
            }
        }
    }

    pub(crate) fn member(&self, id: u64) -> Option<NodeInfo> {
        self.with_metrics(|m| m.membership_config.membership().get_node(&id).cloned())
    }

    /// Serves a forwarded request if this node leads; answers [`Reply::NotLeader`] otherwise.
    async fn serve_forwarded(&self, request: Forwarded, budget: Duration) -> Reply {
        let budget = budget.max(Duration::from_millis(100));
        match tokio::time::timeout(budget, self.serve_forwarded_inner(request)).await {
            Ok(reply) => reply,
            Err(_) => Reply::Unavailable(
                "the leader could not commit within the deadline (no quorum?)".into(),
            ),
        }
    }

    async fn serve_forwarded_inner(&self, request: Forwarded) -> Reply {
        match request {
            Forwarded::Write(proposal) => match self.raft.client_write(proposal).await {
                Ok(response) => Reply::Applied(response.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Reply::NotLeader(f.leader_id)
                }
                Err(e) => Reply::Unavailable(e.to_string()),
            },
            Forwarded::ReadIndex => {
                match self.raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
                    Ok(linearizer) => Reply::ReadIndex(Some(linearizer.read_log_id().index())),
                    Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                        Reply::NotLeader(f.leader_id)
                    }
                    Err(e) => Reply::Unavailable(e.to_string()),
                }
            }
            Forwarded::Peers => match self.leader_view() {
                Some(peers) => Reply::Peers(peers),
                None => Reply::NotLeader(None),
            },
            Forwarded::Join {
                id,
                member,
                learner,
                force,
            } => self.join_on_leader(id, member, learner, force).await,
            Forwarded::Remove { id, force } => self.remove_on_leader(id, force).await,
            Forwarded::TransferLeader { to } => self.transfer_on_leader(to).await,
        }
    }

    /// The members with their replication progress; `None` unless this node leads.
    fn leader_view(&self) -> Option<Vec<PeerStatus>> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader {
            return None;
        }
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last = metrics.last_log_index;
        let progress = metrics.replication.clone().unwrap_or_default();
        Some(
            membership
                .nodes()
                .map(|(id, node)| {
                    let matched = if *id == self.node_id {
                        last
                    } else {
                        progress.get(id).cloned().flatten().map(|l| l.index())
                    };
                    PeerStatus {
                        id: *id,
                        addr: node.addr.clone(),
                        region: node.region.clone(),
                        voter: voters.contains(id),
                        leader: *id == self.node_id,
                        matched,
                        lag: last.map(|l| l.saturating_sub(matched.unwrap_or(0))),
                    }
                })
                .collect(),
        )
    }

    async fn join_on_leader(&self, id: u64, member: Member, learner: bool, force: bool) -> Reply {
        if id == 0 {
            return Reply::Refused("node id 0 is reserved".into());
        }
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        if let Some(existing) = membership.get_node(&id)
            && existing.addr != member.addr
        {
            return Reply::Refused(format!(
                "node {id} is already a member at {}; remove it first",
                existing.addr
            ));
        }
        let mut regions: BTreeMap<u64, String> = membership
            .voter_ids()
            .filter_map(|v| membership.get_node(&v).map(|n| (v, n.region.clone())))
            .collect();
        if !learner {
            regions.insert(id, member.region.clone());
            if let Err(why) = spread_check(&regions, force) {
                return Reply::Refused(why);
            }
        }
        let node = NodeInfo {
            addr: member.addr,
            region: member.region,
        };
        // Blocking: the learner catches up (by snapshot if need be) before it can vote, so a
        // new voter never slows commits while it fetches the log.
        if let Err(e) = self.raft.add_learner(id, node, true).await {
            return write_error(e);
        }
        if learner {
            return Reply::Done;
        }
        match self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
        {
            Ok(_) => Reply::Done,
            Err(e) => write_error(e),
        }
    }

    async fn remove_on_leader(&self, id: u64, force: bool) -> Reply {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Reply::Refused(format!("node {id} is not a member"));
        }
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        if voters.contains(&id) {
            let remaining: BTreeMap<u64, String> = voters
                .iter()
                .filter(|v| **v != id)
                .filter_map(|v| membership.get_node(v).map(|n| (*v, n.region.clone())))
                .collect();
            if remaining.is_empty() {
                return Reply::Refused("the last voter cannot be removed".into());
            }
            if let Err(why) = spread_check(&remaining, force) {
                return Reply::Refused(why);
            }
            if let Err(why) = self.quorum_check(&remaining) {
                return Reply::Refused(why);
            }
            if let Err(e) = self
                .raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
            {
                return write_error(e);
            }
            return Reply::Done;
        }
        match self
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
        {
            Ok(_) => Reply::Done,
            Err(e) => write_error(e),
        }
    }

    /// Refuses a voter set that this leader could not commit with now: a membership change
    /// commits only with a majority of the new voters as well, and one that cannot would leave
    /// the group stuck in the joint configuration until the missing voters return.
    fn quorum_check(&self, voters: &BTreeMap<u64, String>) -> Result<(), String> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let heartbeats = metrics.heartbeat.clone().unwrap_or_default();
        // A voter counts as reachable if it acknowledged one of the last few heartbeats. A node
        // that died moments ago still passes; that window is a few heartbeats wide.
        let recent = self.heartbeat * 3;
        let reachable: Vec<u64> = voters
            .keys()
            .copied()
            .filter(|id| {
                *id == self.node_id
                    || heartbeats
                        .get(id)
                        .cloned()
                        .flatten()
                        .is_some_and(|at| (*at).elapsed() <= recent)
            })
            .collect();
        if reachable.len() * 2 > voters.len() {
            return Ok(());
        }
        let missing: Vec<String> = voters
            .keys()
            .filter(|id| !reachable.contains(id))
            .map(u64::to_string)
            .collect();
        Err(format!(
            "only {} of the {} voters that would remain answer the leader (not answering: {}); \
             the change could not commit. Bring those nodes back first",
            reachable.len(),
            voters.len(),
            missing.join(", ")
        ))
    }

    async fn transfer_on_leader(&self, to: u64) -> Reply {
        if to == self.node_id {
            return Reply::Done;
        }
        if !self.with_metrics(|m| {
            m.membership_config
                .membership()
                .voter_ids()
                .any(|v| v == to)
        }) {
            return Reply::Refused(format!("node {to} is not a voter"));
        }
        if let Err(e) = self.raft.trigger().transfer_leader(to).await {
            return Reply::Unavailable(e.to_string());
        }
        match self
            .raft
            .wait(Some(self.request_deadline))
            .current_leader(to, "leadership transfer")
            .await
        {
            Ok(_) => Reply::Done,
            Err(e) => Reply::Unavailable(format!("node {to} did not take over: {e}")),
        }
    }

    /// The other members, voters and learners, as this node has applied the membership: id
    /// and cluster address.
    pub fn other_members(&self) -> Vec<(u64, String)> {
        self.with_metrics(|m| {
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(id, member)| (*id, member.addr.clone()))
                .collect()
        })
    }

    /// Sets who answers [`RpcKind::Peer`] messages from other members.
    pub fn set_peer_handler(&self, handler: crate::PeerHandler) {
        *self.peer_handler.write().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Sends `body` to member `id` at `addr` as a [`RpcKind::Peer`] message, over the cluster
    /// transport (mutual TLS), and returns its handler's answer.
    pub async fn call_peer(
        &self,
        id: u64,
        addr: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, crate::TransportError> {
        self.transport
            .call(id, addr, RpcKind::Peer, body, timeout)
            .await
    }

    /// The members as the leader sees them (asked of the leader, wherever it is).
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, StoreError> {
        match self.on_leader(Forwarded::Peers).await? {
            Reply::Peers(peers) => Ok(peers),
            other => Err(unexpected(other)),
        }
    }

    /// Adds node `id` (reachable at `member.addr`) as a learner, and unless `learner`, promotes it
    /// to voter once it has caught up. Refused if that leaves one region holding a majority of
    /// voters, unless `force`.
    pub async fn join(
        &self,
        id: u64,
        member: Member,
        learner: bool,
        force: bool,
    ) -> Result<(), StoreError> {
        done(
            self.on_leader(Forwarded::Join {
                id,
                member,
                learner,
                force,
            })
            .await?,
        )
    }

    /// Removes node `id` from the group; refused if the voters left would have one region
    /// holding a majority, unless `force`.
    pub async fn remove_peer(&self, id: u64, force: bool) -> Result<(), StoreError> {
        done(self.on_leader(Forwarded::Remove { id, force }).await?)
    }

    /// Hands leadership to voter `to` and waits until it leads.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), StoreError> {
        done(self.on_leader(Forwarded::TransferLeader { to }).await?)
    }

    /// Asks the group reachable at `seed` (a cluster address) to add this node. Used on first
    /// start by a node configured with join targets instead of an initial member list.
    pub async fn request_join(&self, seed: &str, learner: bool) -> Result<(), StoreError> {
        let request = Forwarded::Join {
            id: self.node_id,
            member: self.self_member.clone(),
            learner,
            force: false,
        };
        let body = serde_json::to_vec(&request).map_err(StoreError::storage)?;
        // Node id 0 is never a member: the seed is addressed by address alone.
        let bytes = self
            .transport
            .call(0, seed, RpcKind::Forward, body, self.request_deadline)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reply: Reply = serde_json::from_slice(&bytes).map_err(StoreError::corrupt)?;
        match reply {
            // The seed does not lead: it forwards nothing itself, so point it at the leader.
            Reply::NotLeader(_) => Err(StoreError::Unavailable(
                "the join target does not lead; retrying".into(),
            )),
            other => done(other),
        }
    }

    /// Serves a message from another node. Raft messages go to openraft; forwarded client
    /// requests run on this node if it leads, or go on towards the leader.
    ///
    /// `from` is the sender's node id as the transport authenticated it (its certificate);
    /// a Raft message that claims to come from another node is refused.
    pub async fn serve_rpc(
        &self,
        kind: RpcKind,
        body: &[u8],
        from: Option<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        let bad = |e: serde_json::Error| StoreError::Refused(format!("malformed request: {e}"));
        let encoded = match kind {
            RpcKind::AppendEntries => {
                let rpc: AppendEntriesRequest<TypeConfig> =
                    serde_json::from_slice(body).map_err(bad)?;
                check_sender(rpc.vote.leader_id().node_id, from)?;
                let answer = self.raft.append_entries(rpc).await;
                if answer.as_ref().is_ok_and(|r| r.is_success()) {
                    *self
                        .leader_contact
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
                serde_json::to_vec(&answer)
            }
            RpcKind::Vote => {
                let rpc: VoteRequest<TypeConfig> = serde_json::from_slice(body).map_err(bad)?;
                check_sender(rpc.vote.leader_id().node_id, from)?;
                serde_json::to_vec(&self.raft.vote(rpc).await)
            }
            RpcKind::PreVote => {
                let rpc: VoteRequest<TypeConfig> = serde_json::from_slice(body).map_err(bad)?;
                check_sender(rpc.vote.leader_id().node_id, from)?;
                serde_json::to_vec(&self.raft.pre_vote(rpc).await)
            }
            RpcKind::TransferLeader => {
                let rpc: TransferLeaderRequest<TypeConfig> =
                    serde_json::from_slice(body).map_err(bad)?;
                check_sender(rpc.from_leader().leader_id().node_id, from)?;
                let answer = self
                    .raft
                    .handle_transfer_leader(rpc)
                    .await
                    .map_err(RaftError::<TypeConfig>::Fatal);
                serde_json::to_vec(&answer)
            }
            RpcKind::Peer => {
                let Some(sender) = from else {
                    return Err(StoreError::Refused("a peer message names no sender".into()));
                };
                let handler = self
                    .peer_handler
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                return match handler {
                    Some(handle) => handle(sender, body).map_err(StoreError::Refused),
                    None => Err(StoreError::Unavailable(
                        "this node does not take peer messages yet".into(),
                    )),
                };
            }
            RpcKind::Forward => {
                let request: Forwarded = serde_json::from_slice(body).map_err(bad)?;
                // A join request from a new node may arrive at any member: send it on.
                let reply = match request {
                    Forwarded::Join { .. } => self
                        .on_leader(request)
                        .await
                        .unwrap_or_else(|e| Reply::Unavailable(e.to_string())),
                    other => self.serve_forwarded(other, self.request_deadline).await,
                };
                serde_json::to_vec(&reply)
            }
        };
        encoded.map_err(StoreError::storage)
    }

    /// Installs a snapshot streamed from the leader.
    pub async fn serve_snapshot(
        &self,
        header: &[u8],
        data: Vec<u8>,
        from: Option<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        let header: SnapshotTransfer = serde_json::from_slice(header)
            .map_err(|e| StoreError::Refused(format!("malformed snapshot header: {e}")))?;
        check_sender(header.vote.leader_id().node_id, from)?;
        let index = header
            .meta
            .last_log_id
            .as_ref()
            .map(|id| id.index())
            .unwrap_or(0);
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, std::io::Cursor<Vec<u8>>> {
            meta: header.meta,
            snapshot: std::io::Cursor::new(data),
        };
        let answer = self.raft.install_full_snapshot(header.vote, snapshot).await;
        if answer.is_ok() {
            tracing::info!(index, "installed a snapshot sent by the leader");
            *self
                .leader_contact
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        serde_json::to_vec(&answer).map_err(StoreError::storage)
    }
}

/// Refuses a Raft message whose claimed sender is not the node the transport authenticated.
fn check_sender(claimed: u64, from: Option<u64>) -> Result<(), StoreError> {
    match from {
        Some(sender) if sender != claimed => Err(StoreError::Refused(format!(
            "node {sender} sent a message in the name of node {claimed}"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a voter set in which one region holds a majority (losing that region would lose the
/// quorum), unless forced. One voter is allowed: there is nothing to spread.
fn spread_check(voters: &BTreeMap<u64, String>, force: bool) -> Result<(), String> {
    if force || voters.len() < 2 {
        return Ok(());
    }
    let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
    for region in voters.values() {
        *per_region.entry(region).or_default() += 1;
    }
    match per_region.iter().find(|(_, n)| **n * 2 > voters.len()) {
        Some((region, n)) => Err(format!(
            "region {region} would hold {n} of {} voters, a majority: losing that one region \
             would stop the cluster. Add voters in other regions first, or force the change",
            voters.len()
        )),
        None => Ok(()),
    }
}

fn write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Reply {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Reply::NotLeader(f.leader_id),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Reply::Refused(c.to_string())
        }
        RaftError::Fatal(f) => Reply::Unavailable(f.to_string()),
    }
}

fn unexpected(reply: Reply) -> StoreError {
    StoreError::Unavailable(format!("unexpected reply {}", reply.name()))
}

fn done(reply: Reply) -> Result<(), StoreError> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Refused(why) => Err(StoreError::Refused(why)),
        Reply::Unavailable(why) => Err(StoreError::Unavailable(why)),
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(regions: &[&str]) -> BTreeMap<u64, String> {
        regions
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, (*r).to_owned()))
            .collect()
    }

    #[test]
    fn a_node_may_not_speak_for_another() {
        assert!(check_sender(2, Some(2)).is_ok());
        assert!(check_sender(2, None).is_ok());
        let e = check_sender(1, Some(3)).unwrap_err();
        assert!(
            e.to_string()
                .contains("node 3 sent a message in the name of node 1"),
            "{e}"
        );
    }

    #[test]
    fn one_region_may_not_hold_a_majority_of_voters() {
        assert!(spread_check(&voters(&["eastus"]), false).is_ok());
        assert!(spread_check(&voters(&["eastus", "westus"]), false).is_ok());
        assert!(spread_check(&voters(&["eastus", "westus", "centralus"]), false).is_ok());
        let why = spread_check(&voters(&["eastus", "eastus", "westus"]), false).unwrap_err();
        assert!(why.contains("eastus would hold 2 of 3"), "{why}");
        assert!(spread_check(&voters(&["eastus", "eastus"]), false).is_err());
        assert!(spread_check(&voters(&["eastus", "eastus", "westus"]), true).is_ok());
        // Five voters over three regions, two two one: no majority anywhere.
        assert!(
            spread_check(
                &voters(&["eastus", "eastus", "westus", "westus", "centralus"]),
                false
            )
            .is_ok()
        );
    }
}
