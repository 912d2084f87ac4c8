//! A [`FaultProxy`] for every ordered pair of cluster nodes.
//!
//! Links are directional because a node's outgoing connections are the ones
//! it dials: node `i` reaches node `j` through `addr(i, j)`, which is a
//! different proxy from the one `j` uses to reach `i`. A real partition cuts
//! both, so every control here sets both directions of a link together.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::proxy::{FaultProxy, Mode};

/// Proxies between every ordered pair of distinct nodes.
#[derive(Debug)]
pub struct Mesh {
    links: BTreeMap<(u64, u64), FaultProxy>,
    nodes: BTreeSet<u64>,
}

impl Mesh {
    /// Start `n * (n - 1)` proxies, all passing traffic with no delay.
    /// `targets` maps each node id to the address its cluster listener
    /// really binds.
    pub async fn start(targets: &BTreeMap<u64, SocketAddr>) -> io::Result<Mesh> {
        let mut links = BTreeMap::new();
        for &from in targets.keys() {
            for (&to, &target) in targets {
                if from != to {
                    links.insert((from, to), FaultProxy::start(target).await?);
                }
            }
        }
        Ok(Mesh {
            links,
            nodes: targets.keys().copied().collect(),
        })
    }

    pub fn nodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes.iter().copied()
    }

    /// The address node `from` must dial to reach node `to`.
    ///
    /// # Panics
    /// If either node is unknown or `from == to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.link(from, to).addr()
    }

    /// The proxy carrying `from`'s connections to `to`, for finer control
    /// (a one-way fault, stats).
    ///
    /// # Panics
    /// If either node is unknown or `from == to`.
    pub fn link(&self, from: u64, to: u64) -> &FaultProxy {
        match self.links.get(&(from, to)) {
            Some(proxy) => proxy,
            None => panic!("mesh has no link {from} -> {to}"),
        }
    }

    /// Peer address overrides for node `from`: every other node, mapped to
    /// the proxy `from` should dial to reach it.
    pub fn peer_addresses(&self, from: u64) -> BTreeMap<u64, SocketAddr> {
        self.links
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|((_, to), proxy)| (*to, proxy.addr()))
            .collect()
    }

    /// Nodes in the same group talk; nodes in different groups do not, in
    /// either direction. A node listed in no group is cut off from all.
    ///
    /// # Panics
    /// If a node appears in two groups: that is not a partition, and
    /// guessing which group was meant would make the test lie.
    pub fn partition(&self, groups: &[&[u64]]) {
        let mut group_of = BTreeMap::new();
        for (g, members) in groups.iter().enumerate() {
            for &node in *members {
                if group_of.insert(node, g).is_some_and(|prev| prev != g) {
                    panic!("node {node} is in more than one partition group");
                }
            }
        }
        for (&(from, to), proxy) in &self.links {
            let together = match (group_of.get(&from), group_of.get(&to)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            proxy.set_mode(if together {
                Mode::Pass
            } else {
                Mode::Blackhole
            });
        }
        tracing::info!(?groups, "mesh partitioned");
    }

    /// Cut `node` off from everyone, leaving other links as they are.
    pub fn isolate(&self, node: u64) {
        for (&(from, to), proxy) in &self.links {
            if from == node || to == node {
                proxy.set_mode(Mode::Blackhole);
            }
        }
        tracing::info!(node, "mesh isolated node");
    }

    /// Every link back to Pass. Latency set with [`Mesh::set_latency`]
    /// stays: regions do not move closer when a partition heals.
    ///
    /// Connections that lived through a blackhole lost bytes, which real TCP would have
    /// retransmitted; they are reset so that both ends reconnect, instead of resuming a stream
    /// (TLS, HTTP/2) with a hole in it that neither end can recover from.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            if proxy.mode() == Mode::Blackhole {
                proxy.set_mode(Mode::Reset);
            }
            proxy.set_mode(Mode::Pass);
        }
        tracing::info!("mesh healed");
    }

    /// One-way latency on every link between a node in `a` and a node in
    /// `b`, both directions, e.g. to place the two sets in distant regions.
    pub fn set_latency(&self, a: &[u64], b: &[u64], one_way: Duration) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.link(x, y).set_delay(one_way);
                    self.link(y, x).set_delay(one_way);
                }
            }
        }
    }

    /// Reset every connection to and from `node`, then put each link back in
    /// the mode it had, so a partition in force is not silently healed. Use
    /// it after killing a node, so peers notice at once instead of waiting
    /// on a half-open connection.
    pub fn reset_links_of(&self, node: u64) {
        for (&(from, to), proxy) in &self.links {
            if from == node || to == node {
                let before = proxy.mode();
                proxy.set_mode(Mode::Reset);
                // A link already in Reset goes to Pass: Reset is a transient
                // action here, never a state the mesh is left in.
                proxy.set_mode(if before == Mode::Blackhole {
                    Mode::Blackhole
                } else {
                    Mode::Pass
                });
            }
        }
        tracing::info!(node, "mesh reset links");
    }

    /// Stop every proxy and wait until all their ports are closed.
    pub async fn shutdown(self) {
        for proxy in self.links.into_values() {
            proxy.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::tests::{connect, echo_server, read_stalls, round_trip};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn three_node_mesh() -> (Mesh, BTreeMap<u64, SocketAddr>) {
        let mut targets = BTreeMap::new();
        for id in 1..=3 {
            targets.insert(id, echo_server().await);
        }
        (Mesh::start(&targets).await.unwrap(), targets)
    }

    #[tokio::test]
    async fn addresses_cover_every_ordered_pair() {
        let (mesh, targets) = three_node_mesh().await;
        assert_eq!(mesh.nodes().collect::<Vec<_>>(), [1, 2, 3]);
        let mut seen = BTreeSet::new();
        for from in 1..=3 {
            let peers = mesh.peer_addresses(from);
            assert_eq!(peers.keys().copied().collect::<Vec<_>>(), {
                let mut v: Vec<u64> = (1..=3).filter(|&n| n != from).collect();
                v.sort();
                v
            });
            for (&to, &addr) in &peers {
                assert_eq!(addr, mesh.addr(from, to));
                assert_eq!(mesh.link(from, to).target(), targets[&to]);
                assert!(seen.insert(addr), "address shared by two links");
            }
        }
        assert_eq!(seen.len(), 6);
    }

    #[tokio::test]
    #[should_panic(expected = "no link 1 -> 1")]
    async fn self_link_panics() {
        let (mesh, _) = three_node_mesh().await;
        mesh.addr(1, 1);
    }

    #[tokio::test]
    async fn partition_then_heal() {
        let (mesh, _) = three_node_mesh().await;
        let mut one_two = connect(mesh.addr(1, 2)).await;
        assert_eq!(round_trip(&mut one_two, b"pre").await, b"pre");

        mesh.partition(&[&[1], &[2, 3]]);
        one_two.write_all(b"lost").await.unwrap();
        assert!(
            read_stalls(&mut one_two).await,
            "1->2 crossed the partition"
        );
        let mut two_one = connect(mesh.addr(2, 1)).await;
        two_one.write_all(b"lost").await.unwrap();
        assert!(
            read_stalls(&mut two_one).await,
            "2->1 crossed the partition"
        );
        let mut two_three = connect(mesh.addr(2, 3)).await;
        assert_eq!(round_trip(&mut two_three, b"23").await, b"23");
        let mut three_two = connect(mesh.addr(3, 2)).await;
        assert_eq!(round_trip(&mut three_two, b"32").await, b"32");

        mesh.heal();
        // Connections that lost bytes in the blackhole are reset, not resumed with a hole.
        let mut buf = [0u8; 8];
        let after = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = one_two.write_all(b"post").await;
            one_two.read(&mut buf).await
        })
        .await
        .expect("a reset connection answers at once");
        assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
        let mut fresh = connect(mesh.addr(1, 2)).await;
        assert_eq!(round_trip(&mut fresh, b"new").await, b"new");
        let mut fresh = connect(mesh.addr(2, 1)).await;
        assert_eq!(round_trip(&mut fresh, b"21").await, b"21");
        // Links that were never cut keep their connections.
        assert_eq!(round_trip(&mut two_three, b"23").await, b"23");
        drop(two_one);
        mesh.shutdown().await;
    }

    #[tokio::test]
    async fn isolate_cuts_only_that_node() {
        let (mesh, _) = three_node_mesh().await;
        mesh.isolate(3);
        let mut c = connect(mesh.addr(1, 3)).await;
        c.write_all(b"x").await.unwrap();
        assert!(read_stalls(&mut c).await);
        let mut c = connect(mesh.addr(3, 2)).await;
        c.write_all(b"x").await.unwrap();
        assert!(read_stalls(&mut c).await);
        let mut c = connect(mesh.addr(1, 2)).await;
        assert_eq!(round_trip(&mut c, b"12").await, b"12");
    }

    #[tokio::test]
    async fn latency_between_sets_only() {
        let (mesh, _) = three_node_mesh().await;
        mesh.set_latency(&[1], &[2, 3], Duration::from_millis(40));
        assert_eq!(mesh.link(2, 1).delay(), Duration::from_millis(40));
        assert_eq!(mesh.link(2, 3).delay(), Duration::ZERO);

        let mut far = connect(mesh.addr(1, 3)).await;
        let start = std::time::Instant::now();
        round_trip(&mut far, b"far").await;
        assert!(start.elapsed() >= Duration::from_millis(80));

        mesh.partition(&[&[1, 2, 3]]);
        mesh.heal();
        assert_eq!(mesh.link(1, 3).delay(), Duration::from_millis(40));
    }

    #[tokio::test]
    async fn reset_links_keeps_partition() {
        let (mesh, _) = three_node_mesh().await;
        let mut a = connect(mesh.addr(1, 2)).await;
        round_trip(&mut a, b"a").await;
        mesh.partition(&[&[1, 2], &[3]]);
        mesh.reset_links_of(1);

        let mut buf = [0u8; 8];
        let closed = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut a, &mut buf),
        )
        .await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

        assert_eq!(mesh.link(1, 2).mode(), Mode::Pass);
        assert_eq!(mesh.link(1, 3).mode(), Mode::Blackhole);
        assert_eq!(mesh.link(3, 1).mode(), Mode::Blackhole);
        let mut b = connect(mesh.addr(2, 1)).await;
        assert_eq!(round_trip(&mut b, b"b").await, b"b");
    }
}
