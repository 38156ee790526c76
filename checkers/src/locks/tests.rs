//! Small histories around two holders of one lock, times and revisions chosen by hand.

use super::{check_locks, LockSummary};
use crate::history::{
    parse_line, Line, LockNote, LockStep, Operation, PutRequest, Request, Response, TxnRequest,
};
use crate::Verdict;

const KEY_A: &str = "lk/a";
const KEY_B: &str = "lk/b";

fn note(step: LockStep, key: &str, token: i64) -> Option<LockNote> {
    Some(LockNote {
        name: b"lk".to_vec(),
        step,
        key: key.as_bytes().to_vec(),
        token,
    })
}

fn txn() -> Request {
    Request::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![Request::Put(PutRequest {
            key: b"fenced/lk".to_vec(),
            value: b"v".to_vec(),
            lease: 0,
            prev_kv: false,
        })],
        failure: Vec::new(),
    })
}

fn txn_answer(succeeded: bool, revision: i64) -> Option<Response> {
    Some(Response::Txn {
        revision: Some(revision),
        succeeded: Some(succeeded),
        responses: None,
    })
}

/// An operation of client 1 (the checker ignores clients).
fn op(
    id: u64,
    call: i64,
    ret: Option<i64>,
    result: Option<Response>,
    lock: Option<LockNote>,
) -> Operation {
    let request = match lock.as_ref().map(|note| note.step) {
        Some(LockStep::Released) => Request::Delete(crate::history::DeleteRequest {
            key: lock
                .as_ref()
                .map(|note| note.key.clone())
                .unwrap_or_default(),
            range_end: None,
            prev_kv: false,
        }),
        _ => txn(),
    };
    Operation {
        id,
        client: 1,
        call,
        ret,
        request,
        result,
        user: None,
        lock,
    }
}

fn acquired(id: u64, ret: i64, key: &str, token: i64, revision: i64) -> Operation {
    op(
        id,
        ret - 2,
        Some(ret),
        txn_answer(true, revision),
        note(LockStep::Acquired, key, token),
    )
}

fn fenced(id: u64, call: i64, key: &str, token: i64, answer: Option<(bool, i64)>) -> Operation {
    let result = answer.and_then(|(succeeded, revision)| txn_answer(succeeded, revision));
    let ret = answer.map(|_| call + 5);
    op(id, call, ret, result, note(LockStep::Fenced, key, token))
}

fn released(id: u64, call: i64, key: &str, token: i64, deleted: Option<i64>) -> Operation {
    let result = deleted.map(|deleted| Response::Delete {
        revision: Some(100),
        deleted: Some(deleted),
        prev_kvs: None,
    });
    let ret = deleted.map(|_| call + 5);
    op(id, call, ret, result, note(LockStep::Released, key, token))
}

fn finding(verdict: &Verdict) -> Option<&str> {
    match verdict {
        Verdict::Violation { checker, .. } => Some(checker),
        _ => None,
    }
}

/// Goal: a clean hand-over passes, and a holder acquiring while the previous holder's unlock
/// had not yet been called is a `mutual_exclusion` violation. Method: A holds (token 3) and
/// unlocks at 30; B (token 8) acquires at 40, then at 25.
#[test]
fn a_hand_over_passes_and_an_overlap_is_caught() {
    let clean = [
        acquired(1, 10, KEY_A, 3, 3),
        fenced(2, 20, KEY_A, 3, Some((true, 5))),
        released(3, 30, KEY_A, 3, Some(1)),
        acquired(4, 40, KEY_B, 8, 9),
        fenced(5, 45, KEY_B, 8, Some((true, 10))),
    ];
    let report = check_locks(&clean);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(
        report.summary,
        LockSummary {
            holds: 2,
            fenced_ok: 2,
            ..LockSummary::default()
        }
    );
    let mut overlap = clean.clone();
    overlap[3] = acquired(4, 25, KEY_B, 8, 9);
    let verdict = check_locks(&overlap).verdict;
    assert_eq!(finding(&verdict), Some("mutual_exclusion"), "{verdict:?}");
    // Without the unlock's delete and the fenced write, nothing proves A held past 10.
    let unproven = [acquired(1, 10, KEY_A, 3, 3), acquired(4, 25, KEY_B, 8, 9)];
    assert_eq!(check_locks(&unproven).verdict, Verdict::Ok);
}

/// Goal: the Jepsen case (a holder paused past its lease believes it still holds the lock)
/// is not a fault of the store when the fence refuses its write, and is one when the fence
/// lets it through. Method: A acquires at 10 and pauses; B acquires at 50 (revision 9); A's
/// fenced write comes at 60 and its unlock, deleting nothing, at 70.
#[test]
fn a_paused_holder_is_reported_and_its_refused_write_passes() {
    let paused = [
        acquired(1, 10, KEY_A, 3, 3),
        acquired(2, 50, KEY_B, 8, 9),
        fenced(3, 60, KEY_A, 3, Some((false, 9))),
        released(4, 70, KEY_A, 3, Some(0)),
        released(5, 80, KEY_B, 8, Some(1)),
    ];
    let report = check_locks(&paused);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.summary.stale_holds, 1);
    assert_eq!(report.summary.stale_fenced_refused, 1);
    assert_eq!(report.summary.fenced_refused, 1);
    // The stale write succeeding: its call proves A's key existed after B acquired.
    let mut accepted = paused.clone();
    accepted[2] = fenced(3, 60, KEY_A, 3, Some((true, 10)));
    let verdict = check_locks(&accepted).verdict;
    assert_eq!(finding(&verdict), Some("mutual_exclusion"), "{verdict:?}");
    // Called before B acquired but applied after B's acquisition revision: through the fence.
    let mut late = paused.clone();
    late[2] = fenced(3, 45, KEY_A, 3, Some((true, 10)));
    let verdict = check_locks(&late).verdict;
    assert_eq!(finding(&verdict), Some("fenced_write_stale"), "{verdict:?}");
    // An unknown outcome proves nothing either way.
    let mut unknown = paused.clone();
    unknown[2] = fenced(3, 60, KEY_A, 3, None);
    let report = check_locks(&unknown);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.summary.stale_fenced_unknown, 1);
}

/// Goal: a newer token handed out before an older holder's hold is a `fencing_order`
/// violation, and so are two holders sharing a token. Method: B (token 8) holds and unlocks
/// before A (token 3) acquires and writes.
#[test]
fn tokens_out_of_order_are_caught() {
    let inverted = [
        acquired(1, 5, KEY_B, 8, 8),
        released(2, 8, KEY_B, 8, Some(1)),
        acquired(3, 10, KEY_A, 3, 9),
        fenced(4, 20, KEY_A, 3, Some((true, 10))),
    ];
    let verdict = check_locks(&inverted).verdict;
    assert_eq!(finding(&verdict), Some("fencing_order"), "{verdict:?}");
    let shared = [acquired(1, 5, KEY_A, 3, 3), acquired(2, 50, KEY_B, 3, 9)];
    let verdict = check_locks(&shared).verdict;
    assert_eq!(finding(&verdict), Some("fencing_order"), "{verdict:?}");
}

/// Goal: the `lock` note survives writing and reading a line, and a bad step names the field.
#[test]
fn the_lock_note_round_trips() {
    let op = fenced(3, 60, KEY_A, 3, Some((false, 9)));
    let line = crate::history::operation_to_json(&op).to_string();
    assert!(
        line.contains(r#""lock":{"key":"lk/a","name":"lk","step":"fenced","token":3}"#),
        "{line}"
    );
    match parse_line(&line).expect("parses") {
        Line::Op(read) => assert_eq!(read, op),
        other => panic!("{other:?}"),
    }
    let bad = line.replace("fenced\"", "held\"");
    let error = parse_line(&bad).expect_err("unknown step");
    assert!(error.contains("lock.step"), "{error}");
}

/// An election's release: a resign, the txn comparing the leader key's create revision with
/// `token` and deleting the key; `succeeded` is its compare's outcome (None: unknown).
fn resigned(id: u64, call: i64, key: &str, token: i64, succeeded: Option<bool>) -> Operation {
    let result = succeeded.and_then(|succeeded| txn_answer(succeeded, 100));
    let ret = succeeded.map(|_| call + 5);
    Operation {
        request: txn(),
        ..op(id, call, ret, result, note(LockStep::Released, key, token))
    }
}

/// Goal: an election is judged as a lock: a resign that succeeded proves the leader key existed
/// with its token at the resign's call, so a second leader elected before that call is a
/// `mutual_exclusion` violation; without that proof (the resign's outcome unknown) nothing is
/// claimed. Method: A leads (token 3), proclaims at 20 and resigns at 30; B (token 8) is
/// elected at 40, then at 25.
#[test]
fn a_resign_that_succeeded_proves_the_leadership_until_its_call() {
    let clean = [
        acquired(1, 10, KEY_A, 3, 3),
        fenced(2, 20, KEY_A, 3, Some((true, 5))),
        resigned(3, 30, KEY_A, 3, Some(true)),
        acquired(4, 40, KEY_B, 8, 9),
        fenced(5, 45, KEY_B, 8, Some((true, 10))),
    ];
    let report = check_locks(&clean);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.summary.holds, 2);
    assert_eq!(report.summary.stale_holds, 0);
    let mut overlap = clean.clone();
    overlap[3] = acquired(4, 25, KEY_B, 8, 9);
    let verdict = check_locks(&overlap).verdict;
    assert_eq!(finding(&verdict), Some("mutual_exclusion"), "{verdict:?}");
    // Only the resign proves A led past 20: unknown, it proves nothing.
    let mut unknown = overlap.clone();
    unknown[2] = resigned(3, 30, KEY_A, 3, None);
    assert_eq!(check_locks(&unknown).verdict, Verdict::Ok);
}

/// Goal: a resign whose compare failed shows the leader key lost, as an unlock that deleted
/// nothing does: it proves nothing, and the paused leader it belongs to is reported, not
/// failed. Method: A is elected at 10 and pauses; B is elected at 50; A's proclaim at 60 and
/// resign at 70 fail. A resign of A that succeeded after the failed one proves nothing either,
/// since the key was shown lost.
#[test]
fn a_failed_resign_shows_the_leadership_lost() {
    let paused = [
        acquired(1, 10, KEY_A, 3, 3),
        acquired(2, 50, KEY_B, 8, 9),
        fenced(3, 60, KEY_A, 3, Some((false, 9))),
        resigned(4, 70, KEY_A, 3, Some(false)),
        resigned(5, 80, KEY_B, 8, Some(true)),
    ];
    let report = check_locks(&paused);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.summary.stale_holds, 1);
    assert_eq!(report.summary.stale_fenced_refused, 1);
    // Without the refused proclaim, the failed resign alone marks the key lost.
    let lost = [
        acquired(1, 10, KEY_A, 3, 3),
        acquired(2, 50, KEY_B, 8, 9),
        resigned(3, 60, KEY_A, 3, Some(false)),
        resigned(4, 65, KEY_A, 3, Some(true)),
    ];
    assert_eq!(check_locks(&lost).verdict, Verdict::Ok);
    // Had that first resign succeeded, A's key existed at 60, after B was elected.
    let mut proven = lost.clone();
    proven[2] = resigned(3, 60, KEY_A, 3, Some(true));
    let verdict = check_locks(&proven).verdict;
    assert_eq!(finding(&verdict), Some("mutual_exclusion"), "{verdict:?}");
}
