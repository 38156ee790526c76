//! The detcd engine: one etcd member as a pure, deterministic state machine.
//!
//! It owns raft consensus, the write-ahead log and snapshot formats, the MVCC store, leases,
//! watches and the member that ties them together. A host calls `Member::step(now, input)` and
//! carries out the returned `Actions` (disk operations, messages, replies, watch events).
//!
//! It must never read a clock, touch a file, socket, thread or environment variable, or use a
//! global random source; it depends on no runtime and on no other crate of this workspace.
//! Iteration order that reaches an output is always ordered (BTreeMap, Vec).

pub mod api;
pub mod auth;
pub mod buggify;
pub mod codec;
pub mod kv;
pub mod lease;
pub mod marks;
pub mod member;
pub mod mvcc;
pub mod raft;
pub mod rng;
pub mod snap;
pub mod types;
pub mod wal;
pub mod watch;
pub mod zoo;
