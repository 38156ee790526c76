//! The history recorder lives in the host contract (`host::history`), since the real server
//! records histories by the same rules; re-exported here under its old path.

pub use host::history::*;
