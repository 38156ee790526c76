//! Regression tests on prefixes of two simulator histories checked standalone (without their
//! watch streams, as a history from another system comes), on which the revision-directed
//! witness gave up and the general search ran out of its whole budget:
//! - disk_faults seed 9: s02 is put with no lease at 727 and a latest read at 744 finds it
//!   gone, with no definite delete in between; only an unknown-outcome put of s02 with lease 36
//!   and then lease 36's expiry explain it. The witness filled the revision gaps below 744 with
//!   other unknown writes and found out only at the read. Now "absent at S" observations make
//!   it keep two revisions free for the removal.
//! - single_member_crashes seed 655 with buggify: put l00178 (no lease) succeeded at 366 after
//!   two identical unknown-outcome retries; the witness let a retry create the key earlier,
//!   which the recorded lifetime (create revision 366) forbids only at 366. Now the lifetime
//!   says "absent at 365", and a key nothing can remove may not exist before that.
//! - default seed 3: a key put with no lease at 682 lives until a definite put attaches it to a
//!   lease and the lease's end removes it before a read at 984 finds it gone. The absence
//!   windows once counted that pinned put as taking a revision away from the removal, pruned
//!   the true order, and the witness fell back to the general search (4.2M steps on this
//!   prefix; the whole history gave up).
//!
//! The prefixes were cut soundly: operations called before the cut time, those still running at
//! it turned into unknown outcomes.

use checkers::history::parse_history;
use checkers::linear::{check_linearizable, LinearConfig};
use checkers::Verdict;

#[test]
fn absences_let_the_witness_decide_every_prefix() {
    // Goal: every prefix is linearizable and the witness finds that, rather than the general
    // search (which gives up on both). Method: check without watches with a budget of 10M
    // steps (the general search needs more than 200M); require Ok and a linearization, in
    // fewer steps than a small multiple of the operation count.
    let samples = [
        (
            "disk_faults 9",
            include_str!("data/sim_disk_faults9_prefix.history.jsonl"),
        ),
        (
            "default 3",
            include_str!("data/sim_default3_prefix.history.jsonl"),
        ),
        (
            "single_member_crashes 655 buggify",
            include_str!("data/sim_single_member_crashes655_buggify_prefix.history.jsonl"),
        ),
    ];
    for (name, text) in samples {
        let (steps, ops) = linearized_standalone(name, text);
        assert!(steps < 20 * ops as u64, "{name}: steps {steps}");
    }
}

/// compaction_heavy seed 67, checked standalone (the run's first 61 s): a delete at 1055
/// returned the prev_kvs of s04..s07, showing s04 untouched since 1015 and s05 since 1036; ten
/// revisions below it (1042-1051) were made by unknown-outcome writes during an outage. The
/// witness filled those gaps with old unknown puts of s04 and s05 (retries pending since an
/// earlier crash) and found out only at the delete, 50M steps later; the general search then
/// gave up after 200M. A write's prev_kv now marks its key unchanged below the write, as a
/// latest read's kv does, so such a filler is refused at once.
#[test]
fn write_prev_kvs_keep_old_retries_out_of_the_gaps_below() {
    let history = parse_history(include_str!(
        "data/sim_compaction_heavy67_prefix.history.jsonl"
    ))
    .expect("the sample parses");
    assert!(history.watches.is_empty(), "checked standalone");
    let config = LinearConfig {
        steps_max: 10_000_000,
        ..LinearConfig::default()
    };
    let report = check_linearizable(&history, &config);
    assert_eq!(report.verdict, Verdict::Ok);
    assert!(report.linearization.is_some());
}

/// Two more simulator histories checked standalone, each cut soundly after the point where the
/// witness got lost (both gave up after 200M steps before):
/// - leader_isolated_during_compaction seed 1 (the first 47.95 s): revisions 636-642 were made
///   by unknown-outcome writes during the leader's isolation, one of them a put of s04 with
///   lease 26 that the lease's expiry then removed at 642. The expiry is mandatory (a put with
///   lease 26 at 47.9 s found it gone), and the search placed it first, at 634, where it
///   deleted nothing: every later put with lease 26 became a no-op, and the search tried every
///   order of the revisions above before backing out. A key-less expiry now waits until an
///   operation needs the lease gone, or until nothing else definite may come first.
/// - watch_heavy_with_compaction seed 2 (the first 45.3 s): a read at 714 showed s01 created
///   at 707, while eight unknown puts filled 706-713. The witness learnt that 707 was not
///   s01's only at 714; now a recorded create revision names the key its write created.
#[test]
fn key_less_expiries_wait_and_create_revisions_pin_their_writes() {
    let samples = [
        (
            "leader_isolated_during_compaction 1",
            include_str!("data/sim_lidc1_prefix.history.jsonl"),
        ),
        (
            "watch_heavy_with_compaction 2",
            include_str!("data/sim_watch_heavy2_prefix.history.jsonl"),
        ),
    ];
    for (name, text) in samples {
        let (steps, _) = linearized_standalone(name, text);
        // A few hundred thousand steps (leader_isolated_during_compaction 1: 382k), where
        // 200M were not enough.
        assert!(steps < 100_000, "{name}: steps {steps}");
    }
}

/// Checks a sample without watches within 10M steps, requires a linearization, and returns
/// the steps spent and the operation count.
fn linearized_standalone(name: &str, text: &str) -> (u64, usize) {
    let history = parse_history(text).expect("the sample parses");
    assert!(history.watches.is_empty(), "{name}: checked standalone");
    let config = LinearConfig {
        steps_max: 10_000_000,
        ..LinearConfig::default()
    };
    let report = check_linearizable(&history, &config);
    assert_eq!(report.verdict, Verdict::Ok, "{name}");
    assert!(report.linearization.is_some(), "{name}");
    (report.steps, history.ops.len())
}

/// Goal: a sample where auth is disabled late in the run and unknown-outcome auth requests and
/// writes pile up is decided standalone. Method: the first 59 s of permissions_revoked_under_load
/// seed 8, checked without watches (it gave up after 200M steps before this check learnt two
/// things):
/// - an unknown auth request waits, while auth is disabled, until a definite auth request may
///   come next: before, six unknown grants and revokes were tried at every position between
///   the writes;
/// - a key attached to no lease that only definite writes can remove (no unknown delete of it,
///   no unknown put of it with a lease) must meet one of them before its next absence: before,
///   unknown puts of s01, s02 and s05 were tried in the nine gaps that lease expiries made at
///   769 to 777, each key read absent at 780 to 786 with nothing between to remove it.
#[test]
fn unknown_auth_requests_wait_and_strictly_removable_keys_meet_their_removal() {
    let name = "permissions_revoked_under_load 8";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_permissions8_prefix.history.jsonl"),
    );
    assert_eq!(ops, 2727, "{name}: the sample is the 59 s prefix");
    // 5.0M steps (0.4 s), where 200M were not enough.
    assert!(steps < 8_000_000, "{name}: steps {steps}");
}

/// Goal: a retried put whose first effect nobody read is pinned where its key was created, not
/// where its value was first read. Method: the first 30 s of lease_heavy seed 10, checked
/// without watches. Two unknown-outcome retries put l00461 = c8-14, and reads show it only with
/// mod revision 88, version 2, created at 63. The witness used to pin the first retry to 88, so
/// the creation at 63 had no writer: it failed after 900 steps and the general search gave up
/// after 200M. Every put of l00461 writes c8-14, so the creation sights it at 63.
#[test]
fn a_creation_sights_the_value_every_put_of_its_key_writes() {
    let name = "lease_heavy 10";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_lease_heavy10_prefix.history.jsonl"),
    );
    assert_eq!(ops, 1340, "{name}: the sample is the 30 s prefix");
    assert!(steps < 20 * ops as u64, "{name}: steps {steps}");
}

/// Goal: nine revisions in a row that no result or read shows, filled by retries that each took
/// effect twice and by two lease expiries, are decided standalone. Method: the first 58.7 s of
/// clock_drift_with_leases seed 21, checked without watches. During a leaderless stretch the
/// retries of four clients landed at 996 to 1004 with the expiries at 1000 and 1001, and the
/// first result that tells the fillers apart is a txn's limit-1 range at 1007 counting 160
/// l-keys. The witness's complete order put the two latest-called unknown writes at 996 and
/// 997 and then tried every later filler among hundreds of long-unanswered writes before
/// revisiting them: it gave up after 200M steps. Its beam pass (the 24 latest candidates at
/// each point, expiries among them) finds the order after the first pass's 1M steps.
#[test]
fn a_gap_filled_by_twice_landed_retries_and_expiries_is_decided_standalone() {
    let name = "clock_drift_with_leases 21";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_clock_drift_with_leases21_prefix.history.jsonl"),
    );
    assert_eq!(ops, 2603, "{name}: the sample is the 58.7 s prefix");
    assert!(steps < 2_000_000, "{name}: steps {steps}");
}

/// Goal: a retry that made a revision nobody read is left free to fill it, and a serializable
/// read's kvs count as observations. Method: the first 60.4 s of disk_faults seed 41, checked
/// without watches (it gave up after 200M steps before this check learnt two things):
/// - three retries of s00 = c7-105 are seen only at 509; the first also made 487, overwritten
///   unseen at 490, and only it was called in time for 487. Pinned to 509, it left 487 without
///   a writer; now the latest retry called in time for 509 is pinned there;
/// - only a serializable read shows l00177 at version 2 after the definite put of c0-201 at
///   868, so nothing kept an unknown retry of that put from also taking effect at 861, and the
///   witness found out only through a count at 869. Now the read's lifetime, less the known
///   put still to come, caps the version at 861.
#[test]
fn unseen_effects_of_retries_and_serializable_reads_are_accounted_for() {
    let name = "disk_faults 41";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_disk_faults41_prefix.history.jsonl"),
    );
    assert_eq!(ops, 2266, "{name}: the sample is the 60.4 s prefix");
    assert!(steps < 20 * ops as u64, "{name}: steps {steps}");
}

/// Goal: a revision spent on a write no recorded lifetime needs is pruned at once, when the
/// puts the lifetimes still owe no longer fit in the revisions left. Method: the first 12 s
/// of single_member_crashes seed 38, checked without watches. After a crash, 13 retried puts
/// of seven keys had to fill revisions 133 to 145 (reads after them showed every one landed),
/// but the witness placed a mandatory lease expiry first, at 133, and tried every order of
/// the puts after it before backing out (4 s, tens of millions of steps; each key's own
/// version floor still held until the last revisions).
#[test]
fn the_puts_lifetimes_owe_must_fit_together_in_the_revisions_left() {
    let name = "single_member_crashes 38";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_single_member_crashes38_prefix.history.jsonl"),
    );
    assert_eq!(ops, 532, "{name}: the sample is the 12 s prefix");
    assert!(steps < 20 * ops as u64, "{name}: steps {steps}");
}

/// Goal: lease revokes of unknown outcome that delete no key, and compactions of unknown
/// outcome, wait until a definite request that may see them can come next. Method: the first
/// 59 s of lease_heavy seed 63, checked without watches. The witness's first order put an
/// unknown put of s03 at 663 that a read at 665 shows never happened; before backing out of
/// it, the search tried every subset of retried revokes of key-less leases and of two
/// compactions at each point between, and gave up after 200M steps.
#[test]
fn key_less_revokes_and_compactions_of_unknown_outcome_wait_for_their_readers() {
    let name = "lease_heavy 63";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_lease_heavy63_prefix.history.jsonl"),
    );
    assert_eq!(ops, 2274, "{name}: the sample is the 59 s prefix");
    // 4.8M steps: the witness's first pass and its beam still spend their budgets near the
    // wrong put, and its third pass finds the order.
    assert!(steps < 6_000_000, "{name}: steps {steps}");
}

/// Goal: a read's count of a range it lists only in part holds which unknown-outcome puts
/// may create keys. Method: 61.75 s of membership_churn_on_an_even_cluster seed 89, checked
/// without watches. A txn read at 595 counted 123 keys under "l" (limit 2); the witness
/// created l00318 with a retried put in the gap at 586 and only the count at 595 said it
/// never landed, so it tried the orders of the twenty writes between and gave up after 200M
/// steps. It now backs out at the fill: one key too many, and the only way to lose one (the
/// lease of l00768 ending) needs a revision the puts the lifetimes owe already take.
#[test]
fn read_counts_bound_the_keys_unknown_puts_create() {
    let name = "membership_churn_on_an_even_cluster 89";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_membership_churn89_prefix.history.jsonl"),
    );
    assert_eq!(ops, 1642, "{name}: the sample is the 61.75 s prefix");
    assert!(steps < 6_000_000, "{name}: steps {steps}");
}

/// Goal: a put with a lease that a definite request found gone cannot take effect later, so
/// it cannot attach a key to that lease for the lease's end to remove. Method: the whole of
/// clock_drift_with_leases seed 84, checked without watches. The witness created s06 (lease
/// 94) at 865 with a retried put that never landed; a read at 878 shows s06 absent. Lease 94
/// was seen alive past 878, and the only other way out was an unknown put of s06 with lease
/// 50 and then lease 50's expiry, though a put with lease 50 had got lease_not_found at 35.9 s,
/// long before 865 was made. So the count at 878 let the fill through and the witness tried
/// the orders of the dozen retried writes between, giving up after 200M steps; it now backs
/// out at the fill.
#[test]
fn a_lease_found_gone_removes_no_key_later() {
    let name = "clock_drift_with_leases 84";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_clock_drift_with_leases84.history.jsonl"),
    );
    assert_eq!(ops, 2283, "{name}: the sample is the whole run");
    assert!(steps < 100_000, "{name}: steps {steps}");
}

/// Goal: a read that failed with future_revision bounds the store's revision when it ran, so
/// the witness backs out as soon as it passes that bound. Method: the whole of
/// single_member_crashes seed 182, checked without watches. The one member restarted at
/// revision 989, and a read at revision 990 called then got future_revision; the witness placed
/// the lease expiries of 990 to 997 before that read, could no longer place it, and found out
/// only at the end: it tried the orders of the twenty writes after and gave up after 200M steps.
#[test]
fn a_read_in_the_future_bounds_the_revision_it_ran_at() {
    let name = "single_member_crashes 182";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_single_member_crashes182.history.jsonl"),
    );
    assert_eq!(ops, 3039, "{name}: the sample is the whole run");
    assert!(steps < 100_000, "{name}: steps {steps}");
}

/// Goal: the write that made revision R was called before any definite request whose result
/// header shows R or later returned, a txn's included. Method: the whole of
/// clock_drift_with_leases seed 145, checked without watches. Counting a txn's sighting as one
/// revision lower (where it ran if it wrote) let a retry called after such a txn returned be
/// pinned to the revision the txn showed, and the witness stuck below it gave up after 200M
/// steps (crash_during_snapshot_install seed 132 the same: three identical retried txns could
/// make 302, a failed txn read at 302, and the third retry, called after that read returned,
/// was pinned there).
#[test]
fn a_txn_header_bounds_when_the_write_it_saw_was_called() {
    let name = "clock_drift_with_leases 145";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_clock_drift_with_leases145.history.jsonl"),
    );
    assert_eq!(ops, 2679, "{name}: the sample is the whole run");
    assert!(steps < 100_000, "{name}: steps {steps}");
}

/// Goal: keys read absent that only their leases' ends can remove need a free revision per
/// distinct lease before the absence, on top of the puts lifetimes owe. Method: the whole of
/// lease_heavy seed 125, checked without watches. Eleven revisions, 942 to 952, were made
/// unobserved during an outage; the witness placed lease 23's expiry at 942 (the run made it
/// at 948), and a read at 963 showed the keys of leases 84, 77 and 83 gone, with 953 to 962
/// all known writes. Checked one key at a time, each still had a free revision until 952, so
/// the witness tried every order of the revisions between and gave up after 200M steps.
#[test]
fn keys_of_distinct_leases_read_absent_need_a_revision_each() {
    let name = "lease_heavy 125";
    let (steps, ops) =
        linearized_standalone(name, include_str!("data/sim_lease_heavy125.history.jsonl"));
    assert_eq!(ops, 2497, "{name}: the sample is the whole run");
    assert!(steps < 100_000, "{name}: steps {steps}");
}

/// Goal: the witness decides a history where the run made mandatory lease expiries later than
/// the first free revision they may take. Method: the whole of clock_drift_with_leases seed
/// 151, checked without watches; its first two passes (mandatory expiries first, then the
/// beam) run out, and the pass that tries those expiries after every other candidate finds
/// the order (it gave up after 200M steps before that pass).
#[test]
fn mandatory_expiries_tried_last_find_a_late_expiry() {
    let name = "clock_drift_with_leases 151";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_clock_drift_with_leases151.history.jsonl"),
    );
    assert_eq!(ops, 2628, "{name}: the sample is the whole run");
    assert!(steps < 5_000_000, "{name}: steps {steps}");
}

/// Goal: a put with a lease that has ended for good cannot remove a key, and an absence a
/// recorded creation shows is a count the leases and the deletes must meet. Method: the whole
/// of clock_drift_with_leases seed 159, checked without watches. s06, put at 716, was put again
/// with lease 74 by a write of unknown outcome, which the run made at 723 before that lease
/// expired at 729; a put at 750 shows s06 absent at 749. The witness ended lease 74 at 723,
/// before the put, which left s06 nothing that could remove it (the one delete of its range
/// would remove s07 too, which reads show unchanged), and gave up after 200M steps.
#[test]
fn a_put_with_a_lease_gone_for_good_removes_nothing() {
    let name = "clock_drift_with_leases 159";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_clock_drift_with_leases159.history.jsonl"),
    );
    assert_eq!(ops, 2328, "{name}: the sample is the whole run");
    assert!(steps < 100_000, "{name}: steps {steps}");
}

/// Goal: writes in flight when an outage began fill the revisions it left unobserved in about
/// the order they were called. Method: the whole of watch_heavy_with_compaction seed 131,
/// checked without watches. Nine revisions (98 to 106) were made by unknown-outcome writes
/// called as the outage began (6.5 s), three of them landing twice through their retries; the
/// complete order, which tries the latest-called writes first (up to 9.3 s), took 2.1M steps
/// to place them, and the whole check 4.09M. The frontier-first pass decides it in about 12k
/// steps after the first pass's 1M.
#[test]
fn writes_in_flight_when_an_outage_began_fill_its_gap_first() {
    let name = "watch_heavy_with_compaction 131";
    let (steps, ops) = linearized_standalone(
        name,
        include_str!("data/sim_watch_heavy_with_compaction131.history.jsonl"),
    );
    assert_eq!(ops, 2937, "{name}: the sample is the whole run");
    assert!(steps < 1_100_000, "{name}: steps {steps}");
}
