//! Hand-written traces: each raft invariant, durability and liveness with both verdicts.

use super::*;
use crate::history::parse_history;

fn entry(index: u64, term: u64, digest: u64) -> LogEntry {
    LogEntry {
        index: LogIndex(index),
        term: Term(term),
        digest,
    }
}

fn log(member: u64, time: i64, entries: Vec<LogEntry>, commit: u64) -> TraceEvent {
    TraceEvent::LogState {
        member: MemberId(member),
        time,
        entries,
        commit_index: LogIndex(commit),
    }
}

fn elected(member: u64, term: u64, time: i64) -> TraceEvent {
    TraceEvent::LeaderElected {
        member: MemberId(member),
        term: Term(term),
        time,
    }
}

fn ok(verdict: Verdict) -> bool {
    verdict == Verdict::Ok
}

#[test]
fn election_safety() {
    // Goal: two leaders in one term are caught; leaders in different terms are fine.
    assert!(ok(check_election_safety(&[
        elected(1, 1, 0),
        elected(2, 2, 5)
    ])));
    assert!(!ok(check_election_safety(&[
        elected(1, 1, 0),
        elected(2, 1, 5)
    ])));
}

#[test]
fn log_matching_and_leader_completeness() {
    // Goal: same index/term with different payloads or prefixes is caught, and a leader missing
    // a committed entry is caught. Method: consistent logs pass; each corruption fails.
    let good = vec![
        log(1, 0, vec![entry(1, 1, 10), entry(2, 1, 20)], 2),
        log(2, 0, vec![entry(1, 1, 10)], 1),
    ];
    assert!(ok(check_log_matching(&good)));
    let payload = vec![
        log(1, 0, vec![entry(1, 1, 10)], 1),
        log(2, 0, vec![entry(1, 1, 11)], 1),
    ];
    assert!(!ok(check_log_matching(&payload)));
    let prefix = vec![
        log(1, 0, vec![entry(1, 1, 10), entry(2, 2, 20)], 0),
        log(2, 0, vec![entry(1, 3, 30), entry(2, 2, 20)], 0),
    ];
    assert!(!ok(check_log_matching(&prefix)));
    let mut complete = good.clone();
    complete.push(elected(2, 2, 5));
    complete.push(log(2, 6, vec![entry(1, 1, 10), entry(2, 1, 20)], 2));
    assert!(ok(check_leader_completeness(&complete)));
    let mut incomplete = good;
    incomplete.push(elected(2, 2, 5));
    incomplete.push(log(2, 6, vec![entry(1, 1, 10)], 1));
    assert!(!ok(check_leader_completeness(&incomplete)));
}

#[test]
fn state_machine_safety_and_kv_hashes() {
    // Goal: different entries applied at one index, or different KV hashes at one applied index,
    // are caught.
    let applied = |member, digest| TraceEvent::Applied {
        member: MemberId(member),
        index: LogIndex(3),
        term: Term(1),
        digest,
    };
    let hashed = |member, hash| TraceEvent::KvHash {
        member: MemberId(member),
        index: LogIndex(3),
        revision: 2,
        hash,
    };
    assert!(ok(check_state_machine_safety(&[
        applied(1, 7),
        applied(2, 7),
        hashed(1, 9),
        hashed(2, 9)
    ])));
    assert!(!ok(check_state_machine_safety(&[
        applied(1, 7),
        applied(2, 8)
    ])));
    assert!(!ok(check_state_machine_safety(&[
        hashed(1, 9),
        hashed(2, 8)
    ])));
}

const HISTORY: &str = r#"{"id":1,"client":1,"call":100,"return":110,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":2}}"#;

fn final_store(value: Option<&str>, reached: i64) -> TraceEvent {
    let mut changes = vec![StoreChange {
        revision: reached,
        key: b"z".to_vec(),
        value: None,
    }];
    if let Some(value) = value {
        changes.push(StoreChange {
            revision: 2,
            key: b"a".to_vec(),
            value: Some(value.as_bytes().to_vec()),
        });
    }
    TraceEvent::FinalStore {
        member: MemberId(1),
        compacted_revision: 0,
        changes,
    }
}

#[test]
fn durability() {
    // Goal: an acknowledged put missing (or different) in a member's final store that reached its
    // revision is caught; a member that never reached it is not blamed.
    let history = parse_history(HISTORY).expect("parses");
    assert!(ok(check_durability(&history, &[final_store(Some("1"), 3)])));
    assert!(!ok(check_durability(&history, &[final_store(None, 3)])));
    assert!(!ok(check_durability(
        &history,
        &[final_store(Some("2"), 3)]
    )));
    assert!(ok(check_durability(&history, &[final_store(None, 1)])));
}

#[test]
fn liveness() {
    // Goal: after the heal, a leader and a committed write within the bound pass; a write that
    // commits too late fails; no leader fails.
    let history = parse_history(HISTORY).expect("parses");
    let healed = TraceEvent::FaultsHealed { time: 90 };
    assert!(ok(check_liveness(
        &history,
        &[healed.clone(), elected(1, 1, 95)],
        50,
        None
    )));
    assert!(!ok(check_liveness(
        &history,
        &[healed.clone(), elected(1, 1, 95)],
        10,
        None
    )));
    assert!(!ok(check_liveness(
        &history,
        std::slice::from_ref(&healed),
        50,
        None
    )));
    let round_trip: Vec<TraceEvent> =
        serde_json::from_str(&serde_json::to_string(&vec![healed.clone()]).expect("json"))
            .expect("json");
    assert_eq!(round_trip, vec![healed]);
}

fn voted(member: u64, term: u64, candidate: u64, time: i64) -> TraceEvent {
    TraceEvent::VoteGranted {
        member: MemberId(member),
        term: Term(term),
        candidate: MemberId(candidate),
        time,
    }
}

fn acked(member: u64, term: u64, index: u64, synced_index: u64) -> TraceEvent {
    TraceEvent::AppendAcked {
        member: MemberId(member),
        term: Term(term),
        index: LogIndex(index),
        synced_index: LogIndex(synced_index),
        time: 10,
    }
}

fn recovered(member: u64, term: u64, vote: u64, last_index: u64, last_term: u64) -> TraceEvent {
    TraceEvent::Recovered {
        member: MemberId(member),
        term: Term(term),
        vote: MemberId(vote),
        last_index: LogIndex(last_index),
        last_term: Term(last_term),
        time: 20,
    }
}

#[test]
fn acknowledged_durability() {
    // Goal: a restart that keeps every promise passes; one that loses a vote, changes it, or
    // loses acknowledged entries fails; a newer leader's entries and a damaged disk release the
    // promise; two votes in one term fail even across a restart.
    // Method: hand-written promises followed by a `Recovered` event, one case per rule.
    let cases: Vec<(Vec<TraceEvent>, bool)> = vec![
        (vec![voted(2, 3, 1, 5), recovered(2, 3, 1, 0, 0)], true),
        (vec![voted(2, 3, 1, 5), recovered(2, 4, 0, 0, 0)], true),
        (vec![voted(2, 3, 1, 5), recovered(2, 2, 0, 0, 0)], false),
        (vec![voted(2, 3, 1, 5), recovered(2, 3, 0, 0, 0)], false),
        (vec![voted(2, 3, 1, 5), voted(2, 3, 4, 30)], false),
        (vec![acked(3, 2, 7, 7), recovered(3, 2, 1, 7, 2)], true),
        (vec![acked(3, 2, 7, 7), recovered(3, 2, 1, 6, 2)], false),
        (vec![acked(3, 2, 7, 7), recovered(3, 1, 1, 9, 1)], false),
        (vec![acked(3, 2, 7, 7), recovered(3, 3, 0, 5, 3)], true),
        (
            vec![
                acked(3, 2, 7, 7),
                TraceEvent::DiskDamaged {
                    member: MemberId(3),
                    time: 15,
                },
                recovered(3, 2, 1, 6, 2),
            ],
            true,
        ),
        // Another member's restart says nothing about this one's promises.
        (vec![acked(3, 2, 7, 7), recovered(4, 1, 0, 0, 0)], true),
    ];
    for (trace, expected) in cases {
        assert_eq!(
            ok(check_acknowledged_durability(&trace)),
            expected,
            "{trace:?}"
        );
    }
}

#[test]
fn ack_after_sync() {
    // Goal: an acknowledgement of a synced index passes, one beyond the synced index fails.
    // Method: two one-event traces, and a JSON round trip of the new events.
    assert!(ok(check_ack_after_sync(&[acked(2, 1, 5, 5)])));
    assert!(!ok(check_ack_after_sync(&[acked(2, 1, 6, 5)])));
    let events = vec![
        acked(2, 1, 6, 5),
        voted(1, 2, 3, 4),
        recovered(1, 2, 3, 4, 2),
    ];
    let round_trip: Vec<TraceEvent> =
        serde_json::from_str(&serde_json::to_string(&events).expect("json")).expect("json");
    assert_eq!(round_trip, events);
}
