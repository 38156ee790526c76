//! Unit tests of the sequential store: etcd semantics, undo and incremental hashing.

use super::*;
use crate::history::{CompareOp, CompareTarget};

fn put(key: KeyId, value: ValueId) -> Op {
    Op::Put {
        key,
        value,
        lease: 0,
        prev_kv: true,
    }
}

#[test]
fn revisions_versions_and_txn_share_one_revision() {
    // Goal: etcd's counters: each write bumps the revision once, versions count puts since
    // creation, a txn's writes share one revision and its range sees earlier writes.
    let mut store = Store::new(3);
    assert_eq!(store.revision(), 1);
    store.apply(&put(0, 5));
    store.apply(&put(0, 6));
    let state = store.get(0).expect("live");
    assert_eq!(
        (state.create_revision, state.mod_revision, state.version),
        (2, 3, 2)
    );
    let txn = Op::Txn {
        compares: vec![Cmp {
            key: 0,
            target: CompareTarget::Version,
            op: CompareOp::Equal,
            value: 2,
        }],
        success: vec![
            put(1, 1),
            put(2, 2),
            Op::Range {
                lo: 1,
                hi: 2,
                revision: 0,
                limit: 0,
            },
        ],
        failure: vec![],
    };
    let Outcome::Txn {
        revision,
        succeeded,
        responses,
    } = store.apply(&txn)
    else {
        panic!("txn")
    };
    assert!(succeeded);
    assert_eq!(revision, 4);
    assert_eq!(store.get(1).expect("live").mod_revision, 4);
    assert!(matches!(&responses[2], Outcome::Range { kvs, .. } if kvs.len() == 1));
    let Outcome::Delete {
        revision, deleted, ..
    } = store.apply(&Op::Delete {
        lo: 0,
        hi: 3,
        prev_kv: false,
    })
    else {
        panic!()
    };
    assert_eq!((revision, deleted.len()), (5, 3));
    let Outcome::Delete { revision, .. } = store.apply(&Op::Delete {
        lo: 0,
        hi: 3,
        prev_kv: false,
    }) else {
        panic!()
    };
    assert_eq!(revision, 5, "deleting nothing is not a write");
}

#[test]
fn undo_restores_state_and_hash() {
    // Goal: undo is exact, hash included, so memoisation never confuses states. Method: hash,
    // apply a mix of operations, undo, compare; and two orders reaching different states differ.
    let mut store = Store::new(2);
    store.apply(&Op::LeaseGrant {
        id: 7,
        ttl_seconds: 5,
    });
    let before = (store.hash(true), store.revision());
    let mark = store.mark();
    store.apply(&Op::Put {
        key: 0,
        value: 1,
        lease: 7,
        prev_kv: false,
    });
    store.apply(&Op::Compact { revision: 2 });
    store.apply(&Op::LeaseRevoke { id: 7 });
    assert!(store.get(0).is_none(), "revoking the lease deleted its key");
    store.undo_to(mark);
    assert_eq!((store.hash(true), store.revision()), before);
    let mut other = store.clone();
    store.apply(&put(0, 1));
    store.apply(&put(0, 2));
    other.apply(&put(0, 2));
    other.apply(&put(0, 1));
    assert_ne!(store.hash(false), other.hash(false));
}

#[test]
fn hashes_agree_whichever_came_first_the_view_or_the_writes() {
    // Goal: the hash each version keeps is the one its store's view gives, so a store whose
    // view was narrowed after its writes hashes as one narrowed before them, undo included.
    // Method: the same writes in both orders of set_view, in every view, then an undo.
    let write = |store: &mut Store| {
        store.apply(&Op::LeaseGrant {
            id: 3,
            ttl_seconds: 5,
        });
        store.apply(&put(0, 1));
        store.apply(&Op::Put {
            key: 1,
            value: 2,
            lease: 3,
            prev_kv: false,
        });
        store.apply(&put(0, 2));
    };
    for view in [StateView::History, StateView::Latest, StateView::ValuesOnly] {
        let mut early = Store::new(2);
        early.set_view(view);
        write(&mut early);
        let mut late = Store::new(2);
        write(&mut late);
        late.set_view(view);
        assert_eq!(early.hash(true), late.hash(true), "{view:?}");
        let mark = late.mark();
        late.apply(&Op::LeaseRevoke { id: 3 });
        late.apply(&put(1, 4));
        assert_ne!(early.hash(true), late.hash(true), "{view:?}");
        late.undo_to(mark);
        assert_eq!(early.hash(true), late.hash(true), "{view:?}");
    }
}

#[test]
fn errors_change_nothing() {
    // Goal: compaction and lease errors are reported and leave the store untouched.
    let mut store = Store::new(1);
    store.apply(&put(0, 1));
    let hash = store.hash(true);
    assert_eq!(
        store.apply(&Op::Compact { revision: 9 }),
        Outcome::Error(ErrorCode::FutureRevision)
    );
    assert_eq!(
        store.apply(&Op::Put {
            key: 0,
            value: 2,
            lease: 3,
            prev_kv: false
        }),
        Outcome::Error(ErrorCode::LeaseNotFound)
    );
    assert_eq!(store.hash(true), hash);
    store.apply(&Op::Compact { revision: 2 });
    assert_eq!(
        store.apply(&Op::Range {
            lo: 0,
            hi: 1,
            revision: 1,
            limit: 0
        }),
        Outcome::Error(ErrorCode::Compacted)
    );
    assert!(matches!(
        store.apply(&Op::Range {
            lo: 0,
            hi: 1,
            revision: 2,
            limit: 0
        }),
        Outcome::Range { count: 1, .. }
    ));
}

/// Random operations over a few keys and leases, small enough that they often collide.
fn random_op(rng: &mut crate::generate::SplitMix, depth: u32) -> Op {
    let key = rng.below(4) as KeyId;
    let lease = [0, 0, 7, 8][rng.below(4) as usize];
    match rng.below(if depth == 0 { 9 } else { 3 }) {
        0 => {
            let lo = rng.below(4) as KeyId;
            Op::Range {
                lo,
                hi: lo + rng.below(5 - u64::from(lo)) as KeyId,
                revision: [0, 0, 1, 3, 50][rng.below(5) as usize],
                limit: rng.below(3) as i64,
            }
        }
        1 => Op::Put {
            key,
            value: rng.below(3) as ValueId,
            lease,
            prev_kv: rng.below(2) == 0,
        },
        2 => Op::Delete {
            lo: key,
            hi: (key + rng.below(3) as KeyId).min(4),
            prev_kv: rng.below(2) == 0,
        },
        3 => Op::Txn {
            compares: vec![Cmp {
                key,
                target: [CompareTarget::Value, CompareTarget::Version][rng.below(2) as usize],
                op: CompareOp::Equal,
                value: rng.below(3) as i64,
            }],
            success: (0..rng.below(3)).map(|_| random_op(rng, 1)).collect(),
            failure: (0..rng.below(3)).map(|_| random_op(rng, 1)).collect(),
        },
        4 => Op::LeaseGrant {
            id: lease,
            ttl_seconds: 5,
        },
        5 => Op::LeaseRevoke { id: lease },
        6 => Op::Expire { id: lease },
        7 => Op::LeaseKeepAlive { id: lease },
        _ => Op::Compact {
            revision: rng.below(6) as i64,
        },
    }
}

/// A recorded result shaped like `outcome`, with fields randomly left out or nudged (so it
/// sometimes matches and sometimes not), or now and then a result of another kind.
fn random_rec(rng: &mut crate::generate::SplitMix, outcome: &Outcome) -> Rec {
    let mut field = |value: i64| match rng.below(6) {
        0 => None,
        1 => Some(value + 1),
        _ => Some(value),
    };
    let kv = |rng: &mut crate::generate::SplitMix, key: KeyId, state: &KeyState| RecKv {
        key,
        value: Some(state.value + u32::from(rng.below(8) == 0)),
        create_revision: Some(state.create_revision),
        mod_revision: (rng.below(3) > 0).then_some(state.mod_revision),
        version: Some(state.version),
        lease: Some(state.lease),
    };
    let list = |rng: &mut crate::generate::SplitMix, kvs: &[(KeyId, KeyState)]| {
        let mut list: Vec<RecKv> = kvs
            .iter()
            .map(|(key, state)| kv(rng, *key, state))
            .collect();
        if rng.below(6) == 0 {
            list.pop();
        }
        (rng.below(5) > 0).then_some(list)
    };
    match outcome {
        Outcome::Range {
            revision,
            kvs,
            count,
        } => Rec::Range {
            revision: field(*revision),
            count: field(*count),
            kvs: list(rng, kvs),
        },
        Outcome::Put { revision, prev, .. } => Rec::Put {
            revision: field(*revision),
            prev_kv: match rng.below(4) {
                0 => None,
                1 => Some(None),
                _ => Some(prev.map(|(key, state)| kv(rng, key, &state))),
            },
        },
        Outcome::Delete {
            revision, deleted, ..
        } => Rec::Delete {
            revision: field(*revision),
            deleted: field(deleted.len() as i64),
            prev_kvs: list(rng, deleted),
        },
        Outcome::Txn {
            revision,
            succeeded,
            responses,
        } => Rec::Txn {
            revision: field(*revision),
            succeeded: (rng.below(4) > 0).then_some(*succeeded != (rng.below(8) == 0)),
            responses: (rng.below(4) > 0).then(|| {
                responses
                    .iter()
                    .map(|inner| random_rec(rng, inner))
                    .collect()
            }),
        },
        Outcome::LeaseGrant { ttl_seconds } => Rec::LeaseGrant {
            ttl_seconds: Some(*ttl_seconds),
        },
        Outcome::LeaseRevoke { revision } => Rec::LeaseRevoke {
            revision: field(*revision),
        },
        Outcome::LeaseKeepAlive { ttl_seconds } => Rec::LeaseKeepAlive {
            ttl_seconds: field(*ttl_seconds),
        },
        Outcome::Compact { revision } => Rec::Compact {
            revision: field(*revision),
        },
        Outcome::Expire => Rec::LeaseRevoke { revision: None },
        Outcome::Auth => Rec::Auth,
        Outcome::Error(code) => match rng.below(3) {
            0 => Rec::Error(ErrorCode::LeaseNotFound),
            1 => Rec::LeaseKeepAlive {
                ttl_seconds: Some(0),
            },
            _ => Rec::Error(*code),
        },
    }
}

#[test]
fn apply_matching_agrees_with_building_the_outcome() {
    // Goal: the search's one-pass `apply_matching` is exactly `matches(rec, &apply(op))`, and
    // leaves the store as `apply` does on a match and unchanged otherwise. Method: random
    // stores built by random operations (a few keys and leases, so ranges, deletes, txns,
    // lease revocations and errors all occur); at each step, a result derived from the real
    // outcome with fields dropped or nudged (so both answers occur, and we count both), or
    // none, is judged both ways on clones of the same store.
    let mut rng = crate::generate::SplitMix::new(0x5eed);
    let (mut agreed_true, mut agreed_false) = (0, 0);
    for _ in 0..200 {
        let mut store = Store::new(4);
        for _ in 0..40 {
            let op = random_op(&mut rng, 0);
            let mut built = store.clone();
            let outcome = built.apply(&op);
            let rec = (rng.below(8) > 0).then(|| random_rec(&mut rng, &outcome));
            let expected = rec.as_ref().is_none_or(|rec| matches(rec, &outcome));
            let mut checked = store.clone();
            let matched = checked.apply_matching(&op, rec.as_ref());
            assert_eq!(
                matched, expected,
                "{op:?} answered {outcome:?}, recorded {rec:?}"
            );
            let reference = if matched { &built } else { &store };
            assert_eq!(checked.revision(), reference.revision());
            assert_eq!(checked.hash(true), reference.hash(true));
            assert_eq!(checked.mark(), reference.mark());
            if matched {
                agreed_true += 1;
            } else {
                agreed_false += 1;
            }
            store = built;
        }
    }
    assert!(
        agreed_true > 1000 && agreed_false > 1000,
        "{agreed_true} {agreed_false}"
    );
}

#[test]
fn byte_index_finds_exactly_what_it_holds() {
    // Goal: the interning index answers every held string's position and nothing else, across
    // growth. Method: random short byte strings (many collisions of prefix and length), added
    // one by one with duplicates refused; then every held string is found at its position and
    // strings never added are not found.
    let mut rng = crate::generate::SplitMix::new(7);
    let random_bytes = |rng: &mut crate::generate::SplitMix| -> Vec<u8> {
        (0..rng.below(4))
            .map(|_| b'a' + rng.below(3) as u8)
            .collect()
    };
    let mut list: Vec<Vec<u8>> = Vec::new();
    let mut index = intern::ByteIndex::default();
    for _ in 0..300 {
        list.push(random_bytes(&mut rng));
        let fresh = !list[..list.len() - 1].contains(list.last().expect("pushed"));
        assert_eq!(index.add(&list, list.len() - 1), fresh);
        if !fresh {
            list.pop();
        }
    }
    assert!(list.len() > 30, "enough distinct strings: {}", list.len());
    for (position, bytes) in list.iter().enumerate() {
        assert_eq!(index.find(&list, bytes), Some(position));
    }
    assert_eq!(index.find(&list, b"zz"), None);
    assert_eq!(intern::ByteIndex::of(&list).find(&list, &list[3]), Some(3));
}

#[test]
fn nested_txn_compares_see_the_state_before_the_whole_txn() {
    // Goal: as in etcd (the whole branch path is chosen before any write), a nested txn's
    // compare reads the store as it was before its parent txn, not after the parent's earlier
    // put; both the plain and the checked apply agree. Method: key 0 absent; a txn puts key 0
    // and then runs a nested txn comparing key 0's version with 0: it must take the nested
    // success branch (version 0 before the txn), which puts key 1.
    let nested = Op::Txn {
        compares: vec![Cmp {
            key: 0,
            target: CompareTarget::Version,
            op: CompareOp::Equal,
            value: 0,
        }],
        success: vec![put(1, 1)],
        failure: vec![],
    };
    let txn = Op::Txn {
        compares: vec![],
        success: vec![put(0, 5), nested],
        failure: vec![],
    };
    let mut plain = Store::new(2);
    let Outcome::Txn { responses, .. } = plain.apply(&txn) else {
        panic!("txn")
    };
    assert!(matches!(
        &responses[1],
        Outcome::Txn {
            succeeded: true,
            ..
        }
    ));
    assert_eq!(plain.get(1).map(|state| state.mod_revision), Some(2));
    let mut checked = Store::new(2);
    assert!(checked.apply_matching(&txn, None));
    assert_eq!(checked.get(1).map(|state| state.mod_revision), Some(2));
}

#[test]
fn live_counts_follow_puts_deletes_and_undo() {
    // Goal: the live bits agree with the keys' versions across word edges, after deletes
    // of ranges and after undo.
    let key_count = 150;
    let mut store = Store::new(key_count);
    let walk = |store: &Store, lo: KeyId, hi: KeyId| {
        (lo..hi).filter(|&key| store.get(key).is_some()).count() as i64
    };
    let ranges = [
        (0, 150),
        (0, 1),
        (63, 65),
        (64, 128),
        (1, 130),
        (127, 129),
        (5, 5),
    ];
    let agree = |store: &Store| {
        for (lo, hi) in ranges {
            assert_eq!(
                store.live_in(lo, hi),
                walk(store, lo, hi),
                "live keys of {lo}..{hi}"
            );
        }
    };
    for key in (0..key_count as KeyId).step_by(3) {
        store.apply(&put(key, 1));
    }
    agree(&store);
    assert_eq!(store.live_in(0, 150), 50);
    let mark = store.mark();
    store.apply(&Op::Delete {
        lo: 60,
        hi: 130,
        prev_kv: false,
    });
    store.apply(&put(64, 2));
    agree(&store);
    assert_eq!(store.live_in(60, 130), 1);
    store.undo_to(mark);
    agree(&store);
    assert_eq!(store.live_in(60, 130), 24);
}
