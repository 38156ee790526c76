//! `detcd bench serve` in its smallest form: one detcd member, one-second phases, etcd left out
//! (`--no-etcd`, so the run is the same with or without etcd installed). It checks the JSON's
//! shape and that every phase completed requests; the figures themselves are not judged here
//! (speed is read from the JSON, never asserted by a timed test).

use std::process::Command;

/// Goal: the benchmark runs end to end and reports every figure the issue lists. Method: run it
/// small, parse its JSON, look up each figure.
#[test]
fn bench_serve_reports_every_figure_for_detcd_alone() {
    let output = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(["bench", "serve", "--members", "1", "--phase-seconds", "1"])
        .args(["--sequential", "20", "--rounds", "2", "--no-etcd"])
        .output()
        .expect("detcd bench serve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("measuring detcd alone"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(report["etcd"]["found"], false, "{report}");
    assert_eq!(report["rounds"], 2, "{report}");
    let results = report["results"].as_array().expect("a results list");
    assert_eq!(results.len(), 1, "{report}");
    let detcd = &results[0];
    assert_eq!(detcd["system"], "detcd");
    assert_eq!(detcd["members"], 1);
    assert_eq!(detcd["rounds"], 2);
    assert_eq!(detcd["sequential_put"]["requests"], 20);
    let puts = detcd["put"].as_array().expect("put phases");
    let client_counts: Vec<u64> = puts
        .iter()
        .map(|phase| phase["clients"].as_u64().expect("clients"))
        .collect();
    assert_eq!(client_counts, [8, 64, 256]);
    for phase in puts
        .iter()
        .chain([&detcd["range_linearizable"], &detcd["range_serializable"]])
    {
        assert!(phase["requests"].as_u64().expect("requests") > 0, "{phase}");
        for figure in ["ops_per_second", "p50_ms", "p99_ms"] {
            assert!(phase[figure].as_f64().is_some(), "{figure} in {phase}");
        }
        // The servers' CPU per request is read from /proc on Linux, where this test runs.
        assert!(
            phase["server_cpu_us_per_request"]
                .as_f64()
                .is_some_and(|us| us > 0.0),
            "{phase}"
        );
        // A single member is its own leader from the start: no phase sees a change.
        assert_eq!(phase["leader_changes_seen"], 0, "{phase}");
    }
    assert_eq!(detcd["range_linearizable"]["clients"], 64);
    assert_eq!(detcd["put_to_watch_event"]["events"], 20);
    assert!(detcd["put_to_watch_event"]["p99_ms"].as_f64().is_some());
    assert!(detcd["disk"]["wal_fsyncs_per_put_per_member"]
        .as_f64()
        .is_some());
}

/// Goal: bad settings are refused before anything starts. Method: zero and too many rounds;
/// each exits 2 naming the flag.
#[test]
fn bench_serve_refuses_bad_rounds() {
    for rounds in ["0", "21"] {
        let output = Command::new(env!("CARGO_BIN_EXE_detcd"))
            .args(["bench", "serve", "--no-etcd", "--rounds", rounds])
            .output()
            .expect("detcd bench serve runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--rounds"), "{stderr}");
    }
}
