//! The recipes step by step against hand-written answers: what they send, when they wait, and
//! how they finish. (The server's tests run them against a real member.)

use engine::kv::{
    DeleteRangeRequest, Event, EventType, KeyValue, PutResponse, RangeResponse, Request,
    RequestError, RequestOp, Response, ResponseHeader, ResponseOp, TxnResponse, WatchResponse,
};
use engine::types::{LeaseId, Revision};

use super::election::{Campaign, Observe};
use super::lock::{Held, Lock};
use super::*;

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision: Revision(revision),
        ..ResponseHeader::default()
    }
}

fn kv(key: &str, create_revision: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: Revision(create_revision),
        mod_revision: Revision(create_revision),
        version: 1,
        ..KeyValue::default()
    }
}

fn range(kvs: Vec<KeyValue>) -> ResponseOp {
    ResponseOp::Range(RangeResponse {
        count: kvs.len() as i64,
        kvs,
        ..RangeResponse::default()
    })
}

fn txn(
    revision: i64,
    succeeded: bool,
    responses: Vec<ResponseOp>,
) -> Result<Response, RequestError> {
    Ok(Response::Txn(TxnResponse {
        header: header(revision),
        succeeded,
        responses,
    }))
}

fn deleted(key: &str, revision: i64) -> WatchResponse {
    WatchResponse {
        header: header(revision),
        events: vec![Event {
            kind: EventType::Delete,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: Revision(revision),
                ..KeyValue::default()
            },
            prev_kv: None,
        }],
        ..WatchResponse::default()
    }
}

fn put_response(revision: i64) -> ResponseOp {
    ResponseOp::Put(PutResponse {
        header: header(revision),
        prev_kv: None,
    })
}

/// Goal: an uncontended lock takes one txn: put-if-absent with the lease, and the owner read.
#[test]
fn an_uncontended_lock_takes_one_txn() {
    let mut lock = Lock::new(b"job", LeaseId(0x1f)).unwrap();
    let Next::Send(Request::Txn(acquire)) = lock.start() else {
        panic!("the acquiring txn first")
    };
    assert_eq!(
        acquire.compare,
        vec![create_revision_is(b"job/1f", Revision(0))]
    );
    let RequestOp::Put(put) = &acquire.success[0] else {
        panic!("a put")
    };
    assert_eq!(
        (put.key.as_slice(), put.lease),
        (&b"job/1f"[..], LeaseId(0x1f))
    );
    let answer = txn(
        10,
        true,
        vec![put_response(10), range(vec![kv("job/1f", 10)])],
    );
    assert_eq!(
        lock.on_answer(answer),
        Next::Done(Ok(Held {
            header: header(10),
            key: b"job/1f".to_vec(),
            revision: Revision(10),
            lease: LeaseId(0x1f),
        }))
    );
    assert_eq!(lock.abandon(), None, "a held lock is not undone");
}

/// Goal: a contended lock reads the youngest older key, watches deletions, ignores strangers'
/// deletions, re-reads when its predecessor goes, and owns once none older is left; given up
/// while waiting, it deletes its own key.
#[test]
fn a_contended_lock_waits_for_its_predecessor() {
    let mut lock = Lock::new(b"job", LeaseId(5)).unwrap();
    lock.start();
    let answer = txn(
        12,
        true,
        vec![put_response(12), range(vec![kv("job/3", 7)])],
    );
    let Next::Send(Request::Txn(read)) = lock.on_answer(answer) else {
        panic!("a read")
    };
    let RequestOp::Range(older) = &read.success[0] else {
        panic!("a range")
    };
    assert_eq!(older.max_create_revision, Revision(11));
    assert_eq!(older.range_end, b"job0".to_vec());
    let answer = txn(
        12,
        true,
        vec![range(vec![kv("job/4", 9)]), range(vec![kv("job/5", 12)])],
    );
    let Next::Watch(watch) = lock.on_answer(answer) else {
        panic!("a watch")
    };
    assert_eq!(watch.start_revision, Revision(13));
    assert!(watch.filters.no_put);
    assert_eq!(
        lock.on_watch(&deleted("job/3", 13)),
        Next::Wait,
        "not the predecessor"
    );
    assert!(matches!(
        lock.on_watch(&deleted("job/4", 14)),
        Next::Send(_)
    ));
    let mut abandoned = lock.clone();
    assert_eq!(
        abandoned.abandon(),
        Some(Request::DeleteRange(DeleteRangeRequest {
            key: b"job/5".to_vec(),
            ..DeleteRangeRequest::default()
        }))
    );
    let answer = txn(14, true, vec![range(vec![]), range(vec![kv("job/5", 12)])]);
    let Next::Done(Ok(held)) = lock.on_answer(answer) else {
        panic!("owned")
    };
    assert_eq!((held.revision, held.header), (Revision(12), header(14)));
}

/// Goal: a waiter whose key vanishes (its lease expired) fails at once, not after the holder
/// leaves, and also when the loss is only seen by the read.
#[test]
fn a_waiter_whose_key_goes_fails() {
    let mut lock = Lock::new(b"job", LeaseId(5)).unwrap();
    lock.start();
    lock.on_answer(txn(
        12,
        true,
        vec![put_response(12), range(vec![kv("job/3", 7)])],
    ));
    let mut by_read = lock.clone();
    lock.on_answer(txn(
        12,
        true,
        vec![range(vec![kv("job/3", 7)]), range(vec![kv("job/5", 12)])],
    ));
    assert_eq!(
        lock.on_watch(&deleted("job/5", 20)),
        Next::Done(Err(RecipeError::SessionExpired))
    );
    assert_eq!(lock.abandon(), None);
    let answer = txn(20, true, vec![range(vec![kv("job/3", 7)]), range(vec![])]);
    assert_eq!(
        by_read.on_answer(answer),
        Next::Done(Err(RecipeError::SessionExpired))
    );
}

/// Goal: no lease means a 60-second lease is granted first and named in the key; an empty
/// name is refused; a failed request finishes with its error.
#[test]
fn lease_zero_grants_and_empty_names_are_refused() {
    let mut lock = Lock::new(b"job", LeaseId(0)).unwrap();
    assert_eq!(
        lock.start(),
        Next::Send(Request::LeaseGrant(engine::kv::LeaseGrantRequest {
            ttl_seconds: SESSION_TTL_SECONDS,
            id: LeaseId(0),
        }))
    );
    let granted = Ok(Response::LeaseGrant {
        header: header(1),
        id: LeaseId(0x694d_a248_06b1_e305),
        ttl_seconds: 60,
    });
    let Next::Send(Request::Txn(acquire)) = lock.on_answer(granted) else {
        panic!("the acquiring txn")
    };
    assert_eq!(acquire.compare[0].key, b"job/694da24806b1e305".to_vec());
    let failed = Err(RequestError::LeaseNotFound { lease: LeaseId(9) });
    assert!(matches!(
        lock.on_answer(failed),
        Next::Done(Err(RecipeError::Request(_)))
    ));
    assert_eq!(Lock::new(b"", LeaseId(1)), Err(RecipeError::EmptyName));
    assert_eq!(
        Campaign::new(b"", LeaseId(1), Vec::new()),
        Err(RecipeError::EmptyName)
    );
}

/// Goal: campaigning again with the same lease and another value proclaims it, keeping the
/// key's place; a lost proclaim is "not leader".
#[test]
fn a_second_campaign_proclaims_its_value() {
    let mut campaign = Campaign::new(b"e", LeaseId(2), b"new".to_vec()).unwrap();
    campaign.start();
    let mut old = kv("e/2", 4);
    old.value = b"old".to_vec();
    let Next::Send(Request::Txn(proclaim)) =
        campaign.on_answer(txn(9, false, vec![range(vec![old])]))
    else {
        panic!("a proclaim")
    };
    assert_eq!(
        proclaim.compare,
        vec![create_revision_is(b"e/2", Revision(4))]
    );
    assert_eq!(
        campaign.on_answer(txn(9, false, vec![])),
        Next::Done(Err(RecipeError::NotLeader))
    );
}

/// Goal: Observe emits the leader, follows its key's puts in order, and reads the next leader
/// once it is deleted (after emitting the puts before the delete).
#[test]
fn observe_follows_leaders() {
    let mut observe = Observe::new(b"e");
    assert!(matches!(observe.start(), Next::Send(Request::Range(_))));
    let answer = Ok(Response::Range(RangeResponse {
        header: header(5),
        kvs: vec![kv("e/1", 3)],
        more: false,
        count: 1,
    }));
    assert_eq!(
        observe.on_answer(answer),
        Next::Emit((header(5), kv("e/1", 3)))
    );
    let Next::Watch(follow) = observe.resume() else {
        panic!("follows the key")
    };
    assert_eq!(
        (follow.key.as_slice(), follow.start_revision),
        (&b"e/1"[..], Revision(6))
    );
    let mut updated = kv("e/1", 3);
    updated.mod_revision = Revision(8);
    let mut both = deleted("e/1", 9);
    both.events.insert(
        0,
        Event {
            kind: EventType::Put,
            kv: updated.clone(),
            prev_kv: None,
        },
    );
    assert_eq!(observe.on_watch(&both), Next::Emit((header(9), updated)));
    assert!(matches!(observe.resume(), Next::Send(Request::Range(_))));
}

/// Goal: keys and prefixes are etcd's: `name/` plus the lease id in hex; a prefix's end.
#[test]
fn keys_are_etcds() {
    assert_eq!(
        owner_key(b"a/", LeaseId(-1)),
        b"a/ffffffffffffffff".to_vec()
    );
    assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
    assert_eq!(prefix_end(&[0xff]), vec![0]);
    assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
}
