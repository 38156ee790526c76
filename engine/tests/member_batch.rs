//! Requests taken as one step (`Member::step_requests_into`): one persist batch for all of
//! them, answered only once it is durable, in the order given; and a halted member answers
//! every request of a batch `Stopping`.

mod common;

use common::MemDisk;
use engine::api::{Actions, DiskFault, DiskOp, DiskOpId, Input};
use engine::kv::{PutRequest, Request, RequestError, Response};
use engine::member::{Member, MemberConfig};
use engine::types::{Duration, Instant, NodeId, RequestId};

const STEP: Duration = Duration::from_millis(10);

/// A single member, elected, with its disk operations performed at once.
fn leader(disk: &mut MemDisk, now: &mut Instant) -> Member {
    let config = MemberConfig::new(NodeId(1), vec![NodeId(1)], 7);
    let mut member = Member::new(config, disk.image()).expect("recovers").0;
    for _ in 0..1000 {
        *now = *now + STEP;
        let mut held = member.step(*now, Input::Timer).disk;
        while !held.is_empty() {
            for (op, disk_op) in std::mem::take(&mut held) {
                disk.apply(&disk_op);
                let result = Ok(());
                held.extend(member.step(*now, Input::DiskDone { op, result }).disk);
            }
        }
        if member.status().is_leader {
            return member;
        }
    }
    panic!("a single member elects itself");
}

fn put(index: usize) -> Request {
    Request::Put(PutRequest {
        key: format!("key{index}").into_bytes(),
        value: vec![b'v'; 16],
        ..PutRequest::default()
    })
}

/// Goal: a batch of puts is one WAL write and one sync, nothing is answered before that sync
/// completes, and one completion of the last operation (as a host's group commit reports it)
/// answers every put, in the order given, with consecutive revisions.
/// Method: eight puts in one step; count the operations; complete only the last.
#[test]
fn a_batch_is_one_persist_and_answers_in_order() {
    let mut disk = MemDisk::new();
    let mut now = Instant(0);
    let mut member = leader(&mut disk, &mut now);
    let requests = (0..8).map(|index| (RequestId(100 + index as u64), put(index), None));
    let mut actions = Actions::default();
    member.step_requests_into(now, requests, &mut actions);
    assert!(
        actions.reply.is_empty(),
        "nothing is answered before its sync"
    );
    let syncs_count = actions
        .disk
        .iter()
        .filter(|(_, op)| matches!(op, DiskOp::Sync { .. }))
        .count();
    assert_eq!(syncs_count, 1, "{:?}", actions.disk);
    for (_, op) in &actions.disk {
        disk.apply(op);
    }
    let last: DiskOpId = actions.disk.last().expect("operations").0;
    let done = member.step(
        now,
        Input::DiskDone {
            op: last,
            result: Ok(()),
        },
    );
    let ids: Vec<u64> = done.reply.iter().map(|(id, _)| id.0).collect();
    assert_eq!(ids, (100..108).collect::<Vec<u64>>());
    let revisions: Vec<i64> = done
        .reply
        .iter()
        .map(|(_, answer)| match answer {
            Ok(Response::Put(put)) => put.header.revision.0,
            other => panic!("a put succeeds: {other:?}"),
        })
        .collect();
    assert!(revisions.windows(2).all(|pair| pair[1] == pair[0] + 1));
}

/// Goal: a member halted by a failed sync answers every request of a later batch `Stopping`.
/// Method: fail the sync of one put, then send a batch of two.
#[test]
fn a_halted_member_refuses_a_batch() {
    let mut disk = MemDisk::new();
    let mut now = Instant(0);
    let mut member = leader(&mut disk, &mut now);
    let first = member.step(
        now,
        Input::Request {
            id: RequestId(1),
            request: put(0),
        },
    );
    let (sync, _) = first
        .disk
        .iter()
        .find(|(_, op)| matches!(op, DiskOp::Sync { .. }))
        .expect("a sync");
    let failed = member.step(
        now,
        Input::DiskDone {
            op: *sync,
            result: Err(DiskFault::Io),
        },
    );
    assert!(failed.halt.is_some());
    let mut actions = Actions::default();
    let batch = [(RequestId(2), put(1), None), (RequestId(3), put(2), None)];
    member.step_requests_into(now, batch, &mut actions);
    assert_eq!(
        actions.reply,
        vec![
            (RequestId(2), Err(RequestError::Stopping)),
            (RequestId(3), Err(RequestError::Stopping)),
        ]
    );
    assert!(actions.halt.is_some() && actions.wake_at.is_none());
}
