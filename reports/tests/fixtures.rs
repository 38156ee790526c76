//! Fixed inputs for the report tests: campaign shards and one failure artifact, written by
//! hand so that reports are tested without running a simulation (and stay the same when the
//! simulator's behaviour changes).

#![allow(dead_code, reason = "each test binary uses part of the fixtures")]

use std::path::{Path, PathBuf};

/// A fresh temporary directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detcd-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `campaign.json` of a shard of `scenario` with the given failing seeds.
pub fn shard_json(
    scenario: &str,
    shard_index: u64,
    shard_count: u64,
    seeds_run: u64,
    failing: &[u64],
) -> String {
    let failures: Vec<serde_json::Value> = failing
        .iter()
        .map(|seed| {
            serde_json::json!({
                "seed": seed,
                "checks": ["linearizability"],
                "explanation": format!("no order explains read op 4 <of seed {seed}> & its value"),
                "artifact": format!("seed-{seed}"),
                "replay": format!("detcd sim replay out/seed-{seed}"),
                "run_command": format!("detcd sim run --scenario {scenario} --seed {seed}"),
                "trace_hash": "00000000000000aa",
            })
        })
        .collect();
    serde_json::json!({
        "format_version": 1,
        "scenario": scenario,
        "first_seed": 0,
        "shard_index": shard_index,
        "shard_count": shard_count,
        "seeds_run": seeds_run,
        "seeds_failed": failing.len(),
        "failed_as_expected": 0,
        "ops": seeds_run * 1000,
        "failures": failures,
        "fault_kinds": {"crash": seeds_run * 3, "partition isolate_leader": seeds_run},
        "marks": {"snapshot_installed": seeds_run * 2, "proposal_deduplicated": 0},
        "wall_seconds": 10.0,
        "seeds_per_second": seeds_run as f64 / 10.0,
        "jobs": 2,
        "interrupted": false,
        "build": {"version": "0.1.0", "git_hash": "abc", "profile": "release", "bug_zoo": false},
    })
    .to_string()
}

/// Writes a shard directory `dir` holding `campaign_json`.
pub fn write_shard(dir: &Path, campaign_json: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("campaign.json"), campaign_json).unwrap();
}

/// Writes a failure artifact into `dir`: three clients, two members' faults, a partition, two
/// leaders, and a linearizability failure whose window holds operations 4 and 5.
pub fn write_artifact(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let meta = serde_json::json!({
        "format_version": 1,
        "seed": 7,
        "scenario_name": "default",
        "scenario": {"name": "default", "member_count": 3},
        "build": {"version": "0.1.0", "git_hash": "abc", "profile": "release", "bug_zoo": false},
        "trace_hash": "00000000000000aa",
        "verdict": {
            "verdict": "fail", "checks_verdict": "fail", "expected_verdict": "pass",
            "failures": [{"check": "linearizability", "time_ns": 9_000_000_000_u64,
                          "window": [4, 5], "explanation": "read op 5 saw <stale> value 1"}]
        },
        "ops_count": 6, "faults_count": 3, "sim_ms": 10_000,
        "run_command": "detcd sim run --scenario default --seed 7",
        "replay_command": "detcd sim replay out/seed-7",
    });
    std::fs::write(dir.join("artifact.json"), meta.to_string()).unwrap();
    let second = 1_000_000_000_i64;
    let op = |id: u64, client: u64, call: i64, ret: Option<i64>, result: &str| {
        let result = match (ret, result) {
            (None, _) => serde_json::Value::Null,
            (Some(_), "error") => serde_json::json!({"type": "error", "code": "unavailable"}),
            (Some(_), kind) => serde_json::json!({"type": kind}),
        };
        serde_json::json!({"id": id, "client": client, "call": call, "return": ret,
            "op": {"type": "put", "key": "a", "value": "1"}, "result": result})
        .to_string()
    };
    let history = [
        op(1, 0, second, Some(2 * second), "put"),
        op(2, 1, second / 2, Some(3 * second), "error"),
        op(3, 2, 2 * second, None, "put"),
        op(4, 0, 6 * second, Some(7 * second), "put"),
        op(5, 1, 6 * second + second / 2, Some(8 * second), "range"),
        op(6, 2, 8 * second, Some(9 * second), "put"),
    ];
    std::fs::write(dir.join("history.jsonl"), history.join("\n") + "\n").unwrap();
    let faults = [
        r#"{"kind":"crash","member":2,"start_ns":3000000000,"end_ns":5000000000,"detail":"n2 crash"}"#,
        r#"{"kind":"partition","member":null,"start_ns":4000000000,"end_ns":6000000000,"detail":"partition isolate_leader cut=n1->n3"}"#,
        r#"{"kind":"disk","member":3,"start_ns":7000000000,"end_ns":null,"detail":"n3 disk bit_flip"}"#,
    ];
    std::fs::write(dir.join("faults.jsonl"), faults.join("\n") + "\n").unwrap();
    let events = [
        r#"{"event":"leader_elected","member":1,"term":1,"time":500000000}"#,
        r#"{"event":"leader_elected","member":3,"term":2,"time":4500000000}"#,
    ];
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
}
