//! The contract of hosting one engine member, shared by the simulator (`sim`) and the real
//! server (`server`), so that the two hosts cannot drift apart:
//!
//! - [`hosting::Hosting`] carries out a step's `Actions` in the one order (observations, disk
//!   operations queued, messages sent, replies and watch responses routed, then a halt takes
//!   effect, and only a member still running re-arms its timer), keeps one timer as the
//!   earliest wake ([`timer::TimerSlot`]), kicks a started member with `Input::Timer`
//!   (`engine::member::Member::start`), and routes replies and watch responses;
//! - [`disk::DiskQueue`]: disk operations complete first in, first out, one at a time;
//! - [`incarnation`]: a distinct member seed per start, persisted on the member's disk (both
//!   hosts: real files and the simulated disk);
//! - [`history`]: engine requests and answers as the lines of `docs/history-format.md`;
//! - [`conformance`]: one suite a host runs against its own disk (simulated or real files);
//! - [`recipe`]: etcd's lock and election recipes as state machines over the client API, which
//!   the server's Lock and Election services drive (and the simulator can drive too).
//!
//! It performs no I/O: no clock, no files, no sockets, no threads (`host/clippy.toml`). Hosts
//! supply time, the disk and the network. May use: `engine`, `checkers`.

pub mod conformance;
pub mod disk;
pub mod history;
pub mod history_auth;
pub mod hosting;
pub mod incarnation;
pub mod recipe;
pub mod timer;

pub use hosting::{Answer, Hosted, Hosting, Io, Route};
