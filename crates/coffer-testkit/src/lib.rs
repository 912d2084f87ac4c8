//! Test harness pieces for Coffer's multi-process cluster tests; nothing in
//! production depends on it. It holds the parts a cluster test needs besides
//! the nodes themselves: a seeded random source so a failing run can be
//! replayed ([`rng`]), a fault-injecting TCP proxy that sits between two nodes
//! on loopback ([`proxy`]), a mesh of such proxies covering every ordered pair
//! of nodes so a test can partition, delay and reset links ([`mesh`]), and a
//! linearizability checker for the key/value histories that clients record
//! while those faults are active ([`linearizability`]), and the process harness that
//! starts `coffer server` nodes behind the mesh ([`cluster`]).

#![forbid(unsafe_code)]

pub mod cluster;
pub mod linearizability;
pub mod mesh;
pub mod ops;
pub mod proxy;
pub mod rng;

pub use cluster::{NodeSpec, TestCluster};
pub use linearizability::{CheckError, History, Op, OpKind, OpToken, Violation, check};
pub use mesh::Mesh;
pub use proxy::{FaultProxy, Mode, Stats};
pub use rng::{Rng, seed_from_env};
