//! The bounded `detcd chaos` run CI makes: a real 3-member cluster of `detcd serve` processes
//! under SIGKILL and restart (the leader too), SIGSTOP/SIGCONT and partitions through the peer
//! proxies, with gRPC clients whose history must be linearizable and whose watches must keep
//! etcd's guarantees, every acknowledged write still there after healing. About 35 seconds.

use std::process::Command;

/// The number after `prefix` on the output line that starts with it.
fn figure(output: &str, prefix: &str) -> u64 {
    let line = output
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?} in:\n{output}"));
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?}: {line}"))
}

/// Goal: the server keeps its promises under real faults. Method: `detcd chaos` for 25 s of
/// load on seed 1; it must pass, having injected faults and checked thousands of operations and
/// a final read on every member.
#[test]
fn a_three_member_cluster_passes_a_bounded_chaos_run() {
    let out = std::env::temp_dir().join(format!("detcd-chaos-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(["chaos", "--seed", "1", "--time", "25s", "--members", "3"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("detcd chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "detcd chaos failed ({:?}); its directory is kept at {}\n{stdout}\n{stderr}",
        output.status,
        out.display()
    );
    assert!(stdout.contains("verdict: pass"), "{stdout}");
    assert!(
        figure(&stdout, "faults injected: ") >= 5,
        "{stdout}\n{stderr}"
    );
    assert!(figure(&stdout, "operations checked: ") >= 1_000, "{stdout}");
    assert!(
        stdout.contains("members read after healing: 3/3"),
        "{stdout}"
    );
    assert!(!out.exists(), "a passing run removes its directory");
}
