//! Regression test on a real history from the simulator (a prefix of a five-member run under
//! faults: concurrent clients, unknown outcomes, txns, leases, two watches over every key), kept
//! under tests/data. Before the revision-directed witness, its watch check failed falsely: the
//! one linearization found put a different unknown-outcome write at revision 237 than the one
//! the watch saw.
//!
//! The prefix was cut soundly: operations called before the cut time, those still running at it
//! turned into unknown outcomes, watch events that arrived before it.

use checkers::history::{parse_history, History};
use checkers::linear::{check_linearizable, LinearConfig};
use checkers::watch::check_watches;
use checkers::Verdict;

fn sample() -> History {
    let ops = include_str!("data/sim_seed3_prefix.history.jsonl");
    let watches = include_str!("data/sim_seed3_prefix.watches.jsonl");
    let mut history = parse_history(ops).expect("the sample history parses");
    let watch_file = parse_history(watches).expect("the sample watches parse");
    history.watches.extend(watch_file.watches);
    history
}

#[test]
fn simulator_history_with_unknown_outcomes_and_watches_passes_fast() {
    // Goal: a real history with ~10% unknown outcomes gets a definite pass from both the
    // linearizability and the watch checker, without the general search's exploration. Method:
    // check the committed sample; require Ok from both, and a step count close to the number of
    // operations (the revision-directed witness placed nearly everything directly).
    let history = sample();
    assert!(
        history.ops.iter().any(|op| op.result.is_none()),
        "has unknown outcomes"
    );
    assert_eq!(history.watches.len(), 2);
    let report = check_linearizable(&history, &LinearConfig::default());
    assert_eq!(report.verdict, Verdict::Ok);
    assert!(
        report.steps < 10 * history.ops.len() as u64,
        "steps {}",
        report.steps
    );
    let watch = check_watches(&history, report.linearization.as_ref());
    assert_eq!(watch, Verdict::Ok);
}

#[test]
fn simulator_history_with_a_dropped_or_altered_event_is_rejected() {
    // Goal: using watch events as constraints does not make the watch checker lenient. Method:
    // drop one event from the middle of a stream, and separately change one event's value; each
    // must be reported as a watch violation (the history itself stays linearizable).
    let mut dropped = sample();
    let middle = dropped.watches[0].events.len() / 2;
    dropped.watches[0].events.remove(middle);
    let report = check_linearizable(&dropped, &LinearConfig::default());
    assert_eq!(report.verdict, Verdict::Ok);
    let verdict = check_watches(&dropped, report.linearization.as_ref());
    assert!(matches!(verdict, Verdict::Violation { .. }), "{verdict:?}");

    let mut altered = sample();
    let event = altered.watches[1]
        .events
        .iter_mut()
        .find(|event| event.revision == 237)
        .expect("the stream saw revision 237");
    event.kv.value = Some(b"never-written".to_vec());
    let report = check_linearizable(&altered, &LinearConfig::default());
    assert_eq!(report.verdict, Verdict::Ok);
    let verdict = check_watches(&altered, report.linearization.as_ref());
    assert!(matches!(verdict, Verdict::Violation { .. }), "{verdict:?}");
}
