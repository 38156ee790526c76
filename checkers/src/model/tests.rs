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
