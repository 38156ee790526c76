//! The seeded discrete-event simulator: virtual time, a network, disks, processes and clients
//! around a cluster of engine members, with fault injection and a recorder of histories and traces.
//!
//! One seed drives one run; every random choice flows from per-component `rand_chacha` streams
//! derived from that seed. It must never read the wall clock inside a run, spawn threads inside a
//! run, or let unordered iteration reach an output. Only `cli` (wall time for reports) and
//! `fuzz` (worker threads, each running whole seeds) step outside that, with a stated reason.
//! May use: `engine` and `checkers` (every run is validated by every checker).

mod aimed;
pub mod artifact;
pub mod auth_traffic;
pub mod bench;
pub mod checking;
pub mod cli;
mod clients;
pub mod clock;
pub mod disk;
pub mod events;
mod faults;
pub mod fuzz;
pub mod history;
mod hosted;
pub mod hunt;
pub mod invariants;
pub mod lock_traffic;
mod membership;
mod nemesis;
pub mod network;
pub mod process;
pub mod queue;
pub mod replay;
pub mod report;
pub mod rng;
pub mod scenario;
mod scripted;
pub mod shrink;
pub mod timeline;
pub mod trace;
pub mod workload;
mod world;

pub use process::HostedMember;
pub use report::{replay_command, run, run_with, Artifacts, RunOptions, RunReport};
pub use scenario::{Scenario, Verdict};
pub use timeline::{TimedFault, Timeline};
