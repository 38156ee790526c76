//! Helpers shared by the regression tests on real simulator histories: loading a sample (its
//! operations and its watch streams) and the two checks every sample must pass.

use checkers::history::{parse_history, History};
use checkers::linear::{check_linearizable, LinearConfig};
use checkers::watch::check_watches;
use checkers::{check_all, CheckConfig, Verdict};

/// A sample history with the watch streams of its second file.
pub fn sample(ops: &str, watches: &str) -> History {
    let mut history = parse_history(ops).expect("the sample history parses");
    let watch_file = parse_history(watches).expect("the sample watches parse");
    history.watches.extend(watch_file.watches);
    history
}

/// The sample is a real one (unknown outcomes, watches), the revision-directed witness passes it
/// within a small multiple of its operation count (not the general search's budget), and the
/// linearization agrees with every watch.
pub fn assert_witnessed_directly(name: &str, history: &History) {
    assert!(history.ops.iter().any(|op| op.result.is_none()), "{name}");
    assert!(!history.watches.is_empty(), "{name}");
    let report = check_linearizable(history, &LinearConfig::default());
    assert_eq!(report.verdict, Verdict::Ok, "{name}");
    assert!(
        report.steps < 10 * history.ops.len() as u64,
        "{name}: steps {}",
        report.steps
    );
    let watch = check_watches(history, report.linearization.as_ref());
    assert_eq!(watch, Verdict::Ok, "{name}");
}

/// `check_all` with its default (the simulator's, smaller) budget passes the linearizability and
/// watch checks.
pub fn assert_check_all_passes(name: &str, history: &History) {
    let results = check_all(history, &[], &[], &CheckConfig::default());
    for checker in ["linearizability", "watch"] {
        let result = results
            .iter()
            .find(|result| result.checker == checker)
            .expect("every checker reports");
        assert_eq!(result.verdict, Verdict::Ok, "{name} {checker}");
    }
}
