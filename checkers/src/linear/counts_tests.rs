//! Unit tests of the count check (`counts`).

use super::{leases_seen, RangeCounts};
use crate::linear::needs::tests::{put, search_op};
use crate::linear::needs::PutNeeds;
use crate::linear::pin::leases_gone_by;
use crate::linear::prepare::SearchOp;
use crate::model::{ErrorCode, Op, Rec, RecKv, Store};

fn delete(key: u32) -> Op {
    Op::Delete {
        lo: key,
        hi: key + 1,
        prev_kv: false,
    }
}

/// A read of keys 0..3 (limit 1) that counted 2 at revision 5.
fn counts_two_at_5() -> SearchOp {
    search_op(
        1,
        Op::Range {
            lo: 0,
            hi: 3,
            revision: 0,
            limit: 1,
        },
        Some(Rec::Range {
            revision: Some(5),
            kvs: None,
            count: Some(2),
        }),
    )
}

/// Goal: a count seen ahead holds only while the writes still to come can meet it, alone
/// and with the puts lifetimes owe. Method: keys 0 to 2 live at revision 4, a read of keys
/// 0..3 counting 2 at 5, and, in turn, nothing to remove a key, an unknown delete of key 2
/// (with revision 5 free, or taken by a known put of key 3), a lifetime of key 3 owing the
/// one free revision, and a txn that deletes key 2 and puts key 3 at once.
#[test]
fn a_count_ahead_needs_writes_that_may_still_meet_it() {
    let mut store = Store::new(4);
    for key in 0..3 {
        store.apply(&put(key));
    }
    assert_eq!(store.revision(), 4);
    let read = counts_two_at_5();
    let unknown_delete = search_op(2, delete(2), None);
    let known_put = search_op(
        3,
        put(3),
        Some(Rec::Put {
            revision: Some(5),
            prev_kv: None,
        }),
    );
    let unknown_put = search_op(4, put(3), None);
    let both = search_op(
        5,
        Op::Txn {
            compares: Vec::new(),
            success: vec![delete(2), put(3)],
            failure: Vec::new(),
        },
        None,
    );
    let owes_key_3 = vec![Vec::new(), Vec::new(), Vec::new(), vec![(5, 5, 1)]];
    let hold = |ops: &[SearchOp], lifetimes: &[Vec<(i64, i64, i64)>]| {
        let needs = PutNeeds::build(ops, lifetimes, 4);
        RangeCounts::build(ops, &[], &[], &leases_seen(ops), &leases_gone_by(ops), 4).hold(
            &store,
            &[2],
            &needs,
            0,
        )
    };
    let none = vec![Vec::new(); 4];
    assert!(
        !hold(std::slice::from_ref(&read), &none),
        "no write removes a key"
    );
    assert!(
        hold(&[read.clone(), unknown_delete.clone()], &none),
        "an unknown delete may, in the free revision"
    );
    assert!(
        !hold(&[read.clone(), unknown_delete.clone(), known_put], &none),
        "no revision is free for it"
    );
    assert!(
        !hold(&[read.clone(), unknown_delete, unknown_put], &owes_key_3),
        "the free revision is owed to key 3's put"
    );
    assert!(
        hold(&[read, both], &owes_key_3),
        "a txn may delete key 2 and put key 3 in one revision"
    );
}

/// Goal: a lease that a read showed alive at or past a count's revision cannot end before
/// it and remove a key from the count. Method: keys 0 to 2 live at revision 4, key 2 with
/// lease 7, a read counting 2 of them at 5 and the lease's expiry; then also a read at 6
/// that shows key 2 still attached to lease 7.
#[test]
fn a_lease_seen_alive_later_removes_no_key_before() {
    let mut store = Store::new(3);
    store.apply(&Op::LeaseGrant {
        id: 7,
        ttl_seconds: 10,
    });
    store.apply(&put(0));
    store.apply(&put(1));
    store.apply(&Op::Put {
        key: 2,
        value: 1,
        lease: 7,
        prev_kv: false,
    });
    assert_eq!(store.revision(), 4);
    let count = counts_two_at_5();
    let expiry = search_op(2, Op::Expire { id: 7 }, None);
    let attached = crate::model::RecKv {
        key: 2,
        value: Some(1),
        create_revision: Some(4),
        mod_revision: Some(4),
        version: Some(1),
        lease: Some(7),
    };
    let later = search_op(
        3,
        Op::Range {
            lo: 2,
            hi: 3,
            revision: 0,
            limit: 0,
        },
        Some(Rec::Range {
            revision: Some(6),
            kvs: Some(vec![attached]),
            count: Some(1),
        }),
    );
    let none = vec![Vec::new(); 3];
    let hold = |ops: &[SearchOp]| {
        let needs = PutNeeds::build(ops, &none, 3);
        RangeCounts::build(ops, &[], &[], &leases_seen(ops), &leases_gone_by(ops), 3).hold(
            &store,
            &[2],
            &needs,
            0,
        )
    };
    assert!(
        hold(&[count.clone(), expiry.clone()]),
        "the expiry may remove key 2"
    );
    assert!(
        !hold(&[count, expiry, later]),
        "lease 7 is alive at 6, so at 5"
    );
}

/// Goal: a delete of several keys at an unknown revision cannot remove one of them while
/// another it covers is kept from every revision up to the count's. Method: keys 0 to 2
/// live at revision 4, a read counting 2 of them at 5 and an unknown delete of keys 1..3;
/// then also a read showing key 2 unchanged through 5.
#[test]
fn a_range_delete_waits_while_a_key_it_covers_is_kept() {
    let mut store = Store::new(3);
    for key in 0..3 {
        store.apply(&put(key));
    }
    let ops = [
        counts_two_at_5(),
        search_op(
            2,
            Op::Delete {
                lo: 1,
                hi: 3,
                prev_kv: false,
            },
            None,
        ),
    ];
    let needs = PutNeeds::build(&ops, &[], 3);
    let hold = |unchanged: &[Vec<(i64, i64)>]| {
        RangeCounts::build(
            &ops,
            &[],
            unchanged,
            &leases_seen(&ops),
            &leases_gone_by(&ops),
            3,
        )
        .hold(&store, &[2], &needs, 0)
    };
    assert!(hold(&[]), "the delete may remove keys 1 and 2");
    let key_2_kept = vec![Vec::new(), Vec::new(), vec![(5, 5)]];
    assert!(
        !hold(&key_2_kept),
        "key 2 is unchanged at 5, so the delete waits"
    );
}

/// Goal: a put with a lease that a definite operation found gone before the write just
/// placed was called cannot run later, so cannot attach a key to the lease for its expiry
/// to remove; nor can one with a lease its one grant made before that call, once the store
/// no longer holds it. Method: keys 0 to 2 live at revision 4 and lease 7 granted (returned
/// at 10), a read counting 2 of the keys at 5, an unknown put of key 2 with lease 7 and lease
/// 7's expiry, and a put with it that found it missing (called at 20, returned at 30); the
/// write just placed was called at 25, then at 31; then the same at 25 with lease 7 ended.
#[test]
fn a_put_with_a_lease_gone_before_runs_no_more() {
    let mut store = Store::new(3);
    for key in 0..3 {
        store.apply(&put(key));
    }
    store.apply(&Op::LeaseGrant {
        id: 7,
        ttl_seconds: 5,
    });
    let with_lease_7 = Op::Put {
        key: 2,
        value: 2,
        lease: 7,
        prev_kv: false,
    };
    let mut grant = search_op(
        4,
        Op::LeaseGrant {
            id: 7,
            ttl_seconds: 5,
        },
        Some(Rec::LeaseGrant {
            ttl_seconds: Some(5),
        }),
    );
    grant.ret = 10;
    let mut missing = search_op(
        5,
        with_lease_7.clone(),
        Some(Rec::Error(ErrorCode::LeaseNotFound)),
    );
    (missing.call, missing.ret) = (20, 30);
    let ops = [
        counts_two_at_5(),
        search_op(2, with_lease_7, None),
        search_op(3, Op::Expire { id: 7 }, None),
        grant,
        missing,
    ];
    let needs = PutNeeds::build(&ops, &[], 3);
    let counts = RangeCounts::build(&ops, &[], &[], &leases_seen(&ops), &leases_gone_by(&ops), 3);
    assert!(
        counts.hold(&store, &[2], &needs, 25),
        "lease 7 may still be alive: the put and the expiry may remove key 2"
    );
    assert!(
        !counts.hold(&store, &[2], &needs, 31),
        "lease 7 was gone at 30: nothing removes key 2"
    );
    store.apply(&Op::Expire { id: 7 });
    assert!(!store.has_lease(7));
    assert!(
        !counts.hold(&store, &[2], &needs, 25),
        "lease 7, granted once and before 25, is gone from the store: nothing removes key 2"
    );
}

/// A store at revision 4 holding keys 0 to 2, attached to `leases` in turn, with unknown
/// expiries of those leases, and the ops that made them (definite puts with the leases at
/// revisions 2 to 4).
pub(in crate::linear) fn leased_keys(leases: [i64; 3]) -> (Store, Vec<SearchOp>) {
    let mut store = Store::new(4);
    let mut ops = Vec::new();
    for (key, &lease) in leases.iter().enumerate() {
        if !store.lease_ids().contains(&lease) {
            store.apply(&Op::LeaseGrant {
                id: lease,
                ttl_seconds: 5,
            });
            ops.push(search_op(20 + lease as u64, Op::Expire { id: lease }, None));
        }
        let with_lease = Op::Put {
            key: key as u32,
            value: 1,
            lease,
            prev_kv: false,
        };
        store.apply(&with_lease);
        let made = Rec::Put {
            revision: Some(store.revision()),
            prev_kv: None,
        };
        ops.push(search_op(10 + key as u64, with_lease, Some(made)));
    }
    assert_eq!(store.revision(), 4);
    (store, ops)
}

/// A latest read of keys 0..3 at revision 6 that found none of them, listing `kvs` (none, or
/// an empty list).
pub(in crate::linear) fn finds_none_of_keys_0_to_2_at_6(kvs: Option<Vec<RecKv>>) -> SearchOp {
    finds_none_of_keys_0_to_2_at(6, kvs)
}

/// A latest read of keys 0..3 at `revision` that found none of them, listing `kvs`.
fn finds_none_of_keys_0_to_2_at(revision: i64, kvs: Option<Vec<RecKv>>) -> SearchOp {
    search_op(
        1,
        Op::Range {
            lo: 0,
            hi: 3,
            revision: 0,
            limit: 0,
        },
        Some(Rec::Range {
            revision: Some(revision),
            kvs,
            count: Some(0),
        }),
    )
}

/// Goal: keys that only their leases' ends can remove need one revision per distinct lease,
/// not one in all. Method: keys 0 to 2 live at revision 4 on three leases, or on two, and a
/// read at 6 counting none of them: two free revisions hold two lease ends, not three.
#[test]
fn keys_on_distinct_leases_need_a_revision_each_to_leave() {
    let counts_none_at_6 = finds_none_of_keys_0_to_2_at_6(None);
    let hold = |leases: [i64; 3]| {
        let (store, mut ops) = leased_keys(leases);
        ops.push(counts_none_at_6.clone());
        let needs = PutNeeds::build(&ops, &[], 3);
        let counts =
            RangeCounts::build(&ops, &[], &[], &leases_seen(&ops), &leases_gone_by(&ops), 3);
        counts.hold(&store, &[2], &needs, 0)
    };
    assert!(!hold([7, 8, 9]), "three lease ends in two free revisions");
    assert!(hold([7, 7, 8]), "two lease ends fit in two free revisions");
}

/// Goal: a key that a delete may remove lowers the keys lease ends must remove by one, and
/// no more: the other keys still need their own leases' ends. Method: keys 0 to 2 live at
/// revision 4 on three leases (or two, keys 0 and 1 sharing one), an unknown delete of key 2,
/// and a read at 5 counting none of them: one free revision holds one lease end, which
/// removes keys 0 and 1 only when they share the lease.
#[test]
fn a_key_a_delete_may_remove_spares_one_key_not_every_lease_end() {
    let counts_none_at_5 = finds_none_of_keys_0_to_2_at(5, None);
    let hold = |leases: [i64; 3]| {
        let (store, mut ops) = leased_keys(leases);
        ops.push(counts_none_at_5.clone());
        ops.push(search_op(2, delete(2), None));
        let needs = PutNeeds::build(&ops, &[], 3);
        let counts =
            RangeCounts::build(&ops, &[], &[], &leases_seen(&ops), &leases_gone_by(&ops), 3);
        counts.hold(&store, &[2], &needs, 0)
    };
    assert!(
        !hold([7, 8, 9]),
        "keys 0 and 1 need two lease ends, and one revision is free"
    );
    assert!(hold([7, 7, 9]), "one lease end removes keys 0 and 1");
}
