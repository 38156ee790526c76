//! The history format's version 2 (auth operations, `user`, `permission_denied`) read, written
//! and checked: a write that succeeded must have been permitted at its place in the order, and a
//! `permission_denied` must have been a refusal at its place. Version 1 histories read, write
//! and check as before.

use checkers::history::{parse_history, write_history, AuthOp, Request};
use checkers::linear::{check_linearizable, LinearConfig};
use checkers::Verdict;

/// Setup lines: root with the root role, alice with role `reader` (read on prefix `a/`) and
/// bob with role `writer` (readwrite on prefix `b/`), then auth enabled at time 100..110.
const SETUP: &str = r#"
{"id":1,"client":0,"call":0,"return":1,"op":{"type":"user_add","name":"root"},"result":{"type":"auth"}}
{"id":2,"client":0,"call":2,"return":3,"op":{"type":"user_grant_role","user":"root","role":"root"},"result":{"type":"auth"}}
{"id":3,"client":0,"call":4,"return":5,"op":{"type":"role_add","name":"reader"},"result":{"type":"auth"}}
{"id":4,"client":0,"call":6,"return":7,"op":{"type":"role_grant_permission","role":"reader","key":"a/","range_end":"a0","permission":"read"},"result":{"type":"auth"}}
{"id":5,"client":0,"call":8,"return":9,"op":{"type":"user_add","name":"alice"},"result":{"type":"auth"}}
{"id":6,"client":0,"call":10,"return":11,"op":{"type":"user_grant_role","user":"alice","role":"reader"},"result":{"type":"auth"}}
{"id":7,"client":0,"call":12,"return":13,"op":{"type":"role_add","name":"writer"},"result":{"type":"auth"}}
{"id":8,"client":0,"call":14,"return":15,"op":{"type":"role_grant_permission","role":"writer","key":"b/","range_end":"b0","permission":"readwrite"},"result":{"type":"auth"}}
{"id":9,"client":0,"call":16,"return":17,"op":{"type":"user_add","name":"bob"},"result":{"type":"auth"}}
{"id":10,"client":0,"call":18,"return":19,"op":{"type":"user_grant_role","user":"bob","role":"writer"},"result":{"type":"auth"}}
{"id":11,"client":0,"call":100,"return":110,"op":{"type":"auth_enable"},"user":"root","result":{"type":"auth"}}
"#;

fn verdict(extra: &str) -> Verdict {
    let text = format!("{SETUP}{extra}");
    let history = parse_history(&text).expect("a valid version 2 history");
    check_linearizable(&history, &LinearConfig::default()).verdict
}

fn is_violation(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Violation { .. })
}

#[test]
fn a_permitted_write_passes_and_a_forbidden_one_is_a_violation() {
    // Goal: the model checks a successful write against the permissions at its place.
    // Method: bob may write b/1 (readwrite on b/), alice may not write a/1 (read only): the
    // first history passes, the second is a violation naming alice's put.
    let bob = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"put","key":"b/1","value":"x"},"user":"bob","result":{"type":"put","revision":2}}"#;
    assert_eq!(verdict(bob), Verdict::Ok);
    let alice = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"put","key":"a/1","value":"x"},"user":"alice","result":{"type":"put","revision":2}}"#;
    let found = verdict(alice);
    assert!(is_violation(&found), "{found:?}");
    if let Verdict::Violation { window, .. } = found {
        assert!(
            window.contains(&20),
            "the window names the forbidden put: {window:?}"
        );
    }
}

#[test]
fn a_write_before_auth_enable_needs_no_permission() {
    // Goal: nothing is checked while auth is disabled. Method: alice's put returns before
    // auth_enable is called: it passes; the same put after enable is a violation.
    let before = r#"{"id":20,"client":1,"call":50,"return":60,"op":{"type":"put","key":"a/1","value":"x"},"user":"alice","result":{"type":"put","revision":2}}"#;
    assert_eq!(verdict(before), Verdict::Ok);
    // Overlapping the enable, the put may be ordered before it.
    let overlapping = r#"{"id":20,"client":1,"call":105,"return":120,"op":{"type":"put","key":"a/1","value":"x"},"user":"alice","result":{"type":"put","revision":2}}"#;
    assert_eq!(verdict(overlapping), Verdict::Ok);
}

#[test]
fn a_write_after_a_revoke_is_a_violation_and_one_racing_it_is_not() {
    // Goal: a revocation takes effect at its place: a write that starts after the revoke
    // returned may not succeed, one that overlaps it may (ordered first).
    // Method: revoke bob's permission at 300..310, bob's put at 320 (after) and at 305 (racing).
    let revoke = r#"{"id":30,"client":0,"call":300,"return":310,"op":{"type":"role_revoke_permission","role":"writer","key":"b/","range_end":"b0"},"user":"root","result":{"type":"auth"}}"#;
    let after = r#"{"id":31,"client":1,"call":320,"return":330,"op":{"type":"put","key":"b/1","value":"x"},"user":"bob","result":{"type":"put","revision":2}}"#;
    let found = verdict(&format!("{revoke}\n{after}"));
    assert!(is_violation(&found), "{found:?}");
    let racing = r#"{"id":31,"client":1,"call":305,"return":330,"op":{"type":"put","key":"b/1","value":"x"},"user":"bob","result":{"type":"put","revision":2}}"#;
    assert_eq!(verdict(&format!("{revoke}\n{racing}")), Verdict::Ok);
    // Refused after the revoke is right.
    let refused = r#"{"id":31,"client":1,"call":320,"return":330,"op":{"type":"put","key":"b/1","value":"x"},"user":"bob","result":{"type":"error","code":"permission_denied"}}"#;
    assert_eq!(verdict(&format!("{revoke}\n{refused}")), Verdict::Ok);
}

#[test]
fn a_refusal_where_the_write_was_permitted_is_a_violation() {
    // Goal: `permission_denied` is checked too: it must be a refusal at its place.
    // Method: bob holds readwrite on b/ throughout; a refusal of his put of b/1 contradicts it,
    // while a refusal of his put of a/1 (no permission there) is right.
    let wrong = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"put","key":"b/1","value":"x"},"user":"bob","result":{"type":"error","code":"permission_denied"}}"#;
    assert!(is_violation(&verdict(wrong)));
    let right = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"put","key":"a/1","value":"x"},"user":"bob","result":{"type":"error","code":"permission_denied"}}"#;
    assert_eq!(verdict(right), Verdict::Ok);
}

#[test]
fn reads_need_read_permission_on_the_whole_range() {
    // Goal: a range is checked over everything it covers. Method: alice reads a/1 (allowed),
    // and a range a/..b/ reaching past her prefix (a violation when it succeeded).
    let inside = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"range","key":"a/1"},"user":"alice","result":{"type":"range","kvs":[],"count":0}}"#;
    assert_eq!(verdict(inside), Verdict::Ok);
    let across = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"range","key":"a/","range_end":"b/"},"user":"alice","result":{"type":"range","kvs":[],"count":0}}"#;
    assert!(is_violation(&verdict(across)));
}

#[test]
fn auth_requests_follow_etcds_rules() {
    // Goal: auth changes are checked like any answer. Method: a second user_add of alice that
    // succeeded is a violation; one answered user_already_exists passes; an auth change by
    // alice (no root role) that succeeded after enable is a violation.
    let twice = r#"{"id":20,"client":0,"call":200,"return":210,"op":{"type":"user_add","name":"alice"},"user":"root","result":{"type":"auth"}}"#;
    assert!(is_violation(&verdict(twice)));
    let refused = r#"{"id":20,"client":0,"call":200,"return":210,"op":{"type":"user_add","name":"alice"},"user":"root","result":{"type":"error","code":"user_already_exists"}}"#;
    assert_eq!(verdict(refused), Verdict::Ok);
    let by_alice = r#"{"id":20,"client":1,"call":200,"return":210,"op":{"type":"role_add","name":"mine"},"user":"alice","result":{"type":"auth"}}"#;
    assert!(is_violation(&verdict(by_alice)));
}

#[test]
fn a_lease_answers_for_the_keys_it_holds() {
    // Goal: a lease revoke, and a put attaching a lease, need write permission on every key the
    // lease holds (etcd's `checkLeasePuts`). Method: root grants lease 5 and attaches b/1 to it;
    // alice (read only) revoking it, or attaching a/1 to it, may not succeed (a violation when
    // it did, right when refused); bob (readwrite on b/) may revoke it; a revoke without a user
    // is `user_empty` while the lease holds a key.
    let setup = concat!(
        r#"{"id":20,"client":0,"call":200,"return":210,"op":{"type":"lease_grant","ttl":60,"id":5},"user":"root","result":{"type":"lease_grant","id":5,"ttl":60}}"#,
        "\n",
        r#"{"id":21,"client":0,"call":220,"return":230,"op":{"type":"put","key":"b/1","value":"x","lease":5},"user":"root","result":{"type":"put","revision":2}}"#,
        "\n",
    );
    let revoke = |user: &str, result: &str| {
        let user = if user.is_empty() {
            String::new()
        } else {
            format!(r#","user":"{user}""#)
        };
        format!(
            r#"{setup}{{"id":22,"client":1,"call":300,"return":310,"op":{{"type":"lease_revoke","id":5}}{user},"result":{result}}}"#
        )
    };
    let revoked = r#"{"type":"lease_revoke","revision":3}"#;
    let denied = r#"{"type":"error","code":"permission_denied"}"#;
    assert!(is_violation(&verdict(&revoke("alice", revoked))));
    assert_eq!(verdict(&revoke("alice", denied)), Verdict::Ok);
    assert_eq!(verdict(&revoke("bob", revoked)), Verdict::Ok);
    assert!(is_violation(&verdict(&revoke("bob", denied))));
    let user_empty = r#"{"type":"error","code":"user_empty"}"#;
    assert_eq!(verdict(&revoke("", user_empty)), Verdict::Ok);
    assert!(is_violation(&verdict(&revoke("", revoked))));
    // Bob may write b/3, but a lease that holds a/9 (which he may not write) is not his to
    // attach: his put with it may not succeed.
    let attach = |result: &str| {
        format!(
            r#"{setup}{{"id":22,"client":0,"call":300,"return":310,"op":{{"type":"put","key":"a/9","value":"x","lease":5}},"user":"root","result":{{"type":"put","revision":3}}}}
{{"id":23,"client":1,"call":400,"return":410,"op":{{"type":"put","key":"b/3","value":"y","lease":5}},"user":"bob","result":{result}}}"#
        )
    };
    assert_eq!(verdict(&attach(denied)), Verdict::Ok);
    assert!(is_violation(&verdict(&attach(
        r#"{"type":"put","revision":4}"#
    ))));
}

#[test]
fn version_2_lines_round_trip_and_version_1_lines_are_unchanged() {
    // Goal: the writer writes what the reader reads, and a version 1 history (no auth, no
    // user) writes back without the new fields. Method: parse, write, parse again.
    let history = parse_history(SETUP).expect("valid");
    assert!(matches!(
        history.ops[3].request,
        Request::Auth(AuthOp::RoleGrantPermission { .. })
    ));
    assert_eq!(history.ops[10].user.as_deref(), Some("root"));
    let again = parse_history(&write_history(&history)).expect("valid");
    assert_eq!(again, history);
    let v1 = r#"{"id":7,"client":2,"call":1200,"return":1450,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":2}}"#;
    let parsed = parse_history(v1).expect("valid");
    assert_eq!(parsed.ops[0].user, None);
    let written = write_history(&parsed);
    assert!(!written.contains("user"), "{written}");
    assert_eq!(
        check_linearizable(&parsed, &LinearConfig::default()).verdict,
        Verdict::Ok
    );
}

#[test]
fn bad_auth_fields_name_the_field() {
    // Goal: malformed auth lines are refused with the line and field. Method: a bad permission
    // kind, a missing role.
    let bad_kind = r#"{"id":1,"client":0,"call":0,"return":1,"op":{"type":"role_grant_permission","role":"r","key":"a","permission":"all"},"result":{"type":"auth"}}"#;
    let error = parse_history(bad_kind).expect_err("refused");
    assert_eq!(error.line, 1);
    assert!(error.message.contains("op.permission"), "{}", error.message);
    let missing = r#"{"id":1,"client":0,"call":0,"return":1,"op":{"type":"user_grant_role","user":"a"},"result":{"type":"auth"}}"#;
    let error = parse_history(missing).expect_err("refused");
    assert!(
        error.message.contains("op.role: missing"),
        "{}",
        error.message
    );
}

#[test]
fn a_past_revision_read_is_judged_for_permission_where_it_is_placed() {
    // Goal: the search's early check of reads at old revisions (made when the store reaches
    // the revision) must not refuse a read its user may make only later. Method: root writes
    // x at revision 2 while auth is on; auth is then disabled; carol (no permissions) reads x
    // at revision 2 afterwards: permitted where it is placed, so the history passes. (A
    // simulator history of `permissions_revoked_under_load` found this.)
    let rest = r#"
{"id":20,"client":1,"call":120,"return":130,"op":{"type":"put","key":"x","value":"1"},"user":"root","result":{"type":"put","revision":2}}
{"id":21,"client":0,"call":200,"return":210,"op":{"type":"auth_disable"},"user":"root","result":{"type":"auth"}}
{"id":22,"client":2,"call":300,"return":310,"op":{"type":"range","key":"x","revision":2},"user":"carol","result":{"type":"range","revision":2,"count":1,"kvs":[{"key":"x","value":"1","mod_revision":2}]}}
"#;
    assert_eq!(verdict(rest), Verdict::Ok);
    // The same read before the disable returned is refused by the model: a violation.
    let early = rest.replace(r#""call":300,"return":310"#, r#""call":140,"return":150"#);
    assert!(is_violation(&verdict(&early)));
}
