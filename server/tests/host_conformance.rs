//! Goal: real files keep the host contract's promises, the same ones the simulated disk is held
//! to (`sim/tests/host_conformance.rs`).
//! Method: run `host::conformance::run_all` with fresh data directories under the system's
//! temporary directory, removed afterwards.

use server::disk::DataDir;

#[test]
fn real_files_conform() {
    let root = std::env::temp_dir().join(format!("detcd-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut dirs_made = 0;
    host::conformance::run_all(|| {
        dirs_made += 1;
        DataDir::open(&root.join(format!("disk-{dirs_made}"))).expect("a data dir opens")
    });
    assert!(dirs_made >= 5, "every check ran on its own directory");
    std::fs::remove_dir_all(&root).expect("cleans up");
}
