//! Goal: the simulated disk keeps the host contract's promises, the same ones the server's real
//! files are held to (`server/tests/host_conformance.rs`).
//! Method: run `host::conformance::run_all` with fresh `SimDisk`s that tear nothing on a crash
//! (a torn unsynced tail is a legal crash, but the suite's own set-up syncs what it relies on).

use sim::disk::{DiskConfig, SimDisk};
use sim::rng::{SimRng, Stream};

#[test]
fn simulated_disk_conforms() {
    let mut disks_made = 0;
    host::conformance::run_all(|| {
        disks_made += 1;
        let config = DiskConfig {
            torn_tail_ppm: 0,
            ..DiskConfig::ssd()
        };
        SimDisk::new(config, SimRng::for_stream(disks_made, Stream::Disk(0)))
    });
    assert!(disks_made >= 5, "every check ran on its own disk");
}
