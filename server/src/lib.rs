//! The thin real-network adapter behind `detcd serve`: hosts the engine over tokio and tonic with
//! the etcd v3 gRPC services, a peer transport, and real files with fsync. It carries out the
//! engine's actions and adds no consensus or storage logic of its own. May use: `engine`,
//! `checkers` (to record histories). (Work on this crate comes after the simulator.)
