//! The watch hub against both implementations of its `EventSource` boundary: the real MVCC
//! store and the model. Each once passed its own model test while together they crashed a
//! member: the store never splits a revision, so a catch-up read could return more events than
//! the hub's budget, and the hub asserted ("event source ignored its limit") on 1,023 puts
//! followed by one delete-range of 5 keys and a watch from revision 2.
//!
//! Goal: whatever the budget and however many events one revision holds, a lagging watcher is
//! fed every event of its range exactly once, in revision order, without a panic, from the
//! store and from the model alike. Method: write histories that put multi-event revisions
//! (delete-ranges, txns of many keys) right at and across the catch-up budget, open a watch
//! from an old revision, run `catch_up` with that budget until it is synced, and compare what it
//! delivered with the source's full history read without a limit; every revision must come in
//! one piece within one catch-up call.

use engine::kv::{
    DeleteRangeRequest, Event, PutRequest, RequestOp, ResponseHeader, TxnRequest,
    WatchCreateRequest, WatchResponse,
};
use engine::mvcc::Store;
use engine::types::{LeaseId, Revision};
use engine::watch::model::{ModelStore, ModelWrite};
use engine::watch::{EventSource, WatchConfig, WatchHub};

/// The member's catch-up budget per step (engine/src/member/requests.rs).
const MEMBER_BUDGET: usize = 1024;

/// One revision's writes: puts of keys and deletes of whole ranges `[from, to)` of key numbers.
#[derive(Clone, Debug)]
enum Write {
    Put(u32),
    DeleteRange(u32, u32),
}

fn key(number: u32) -> Vec<u8> {
    format!("k{number:05}").into_bytes()
}

/// Applies revisions to the real store (each as one txn, so one revision).
fn apply_store(store: &mut Store, revisions: &[Vec<Write>]) {
    let no_lease = |_: LeaseId| true;
    for writes in revisions {
        let ops = writes
            .iter()
            .map(|write| match write {
                Write::Put(number) => RequestOp::Put(PutRequest {
                    key: key(*number),
                    value: b"v".to_vec(),
                    ..Default::default()
                }),
                Write::DeleteRange(from, to) => RequestOp::DeleteRange(DeleteRangeRequest {
                    key: key(*from),
                    range_end: key(*to),
                    prev_kv: false,
                }),
            })
            .collect();
        let request = TxnRequest {
            compare: Vec::new(),
            success: ops,
            failure: Vec::new(),
        };
        store.txn(&request, &no_lease).expect("valid txn");
    }
}

/// Applies revisions to the model (a delete-range as deletes of its keys).
fn apply_model(model: &mut ModelStore, revisions: &[Vec<Write>]) {
    for writes in revisions {
        let mut model_writes = Vec::new();
        for write in writes {
            match write {
                Write::Put(number) => model_writes.push(ModelWrite::Put(key(*number), b"v".into())),
                Write::DeleteRange(from, to) => {
                    model_writes.extend((*from..*to).map(|number| ModelWrite::Delete(key(number))))
                }
            }
        }
        model.apply(&model_writes);
    }
}

/// Runs a watch from `start` over every key with catch-up budget `budget`; returns the events
/// delivered and, per catch-up call, the revisions whose events it emitted.
fn catch_up_all(source: &dyn EventSource, start: Revision, budget: usize) -> Vec<Event> {
    let mut hub = WatchHub::new(WatchConfig::new(), ResponseHeader::default());
    let id = hub
        .create(
            WatchCreateRequest {
                key: b"\0".to_vec(),
                range_end: b"\0".to_vec(),
                start_revision: start,
                ..Default::default()
            },
            source,
        )
        .expect("watch created");
    let mut delivered: Vec<Event> = Vec::new();
    let mut last_call_revision = Revision(0);
    for _call in 0..10_000 {
        let mut out: Vec<WatchResponse> = Vec::new();
        let lagging = hub.catch_up(source, &mut out, budget);
        let events: Vec<Event> = out
            .into_iter()
            .filter(|response| response.watch_id == id)
            .flat_map(|response| response.events)
            .collect();
        if let Some(first) = events.first() {
            // A revision never continues into the next call: this call starts a new one.
            assert!(
                first.kv.mod_revision > last_call_revision,
                "revision {} split across catch-up calls",
                first.kv.mod_revision
            );
        }
        if let Some(last) = events.last() {
            last_call_revision = last.kv.mod_revision;
        }
        delivered.extend(events);
        if !lagging {
            return delivered;
        }
    }
    panic!("the watch never caught up");
}

fn full_history(source: &dyn EventSource, start: Revision) -> Vec<Event> {
    source
        .events(b"\0", b"\0", start, source.current_revision(), usize::MAX)
        .expect("not compacted")
}

/// The histories: `puts` single-key revisions, then a delete-range of `deleted` keys, then a
/// txn putting `txn_keys` keys, then a few more puts.
fn history(puts: u32, deleted: u32, txn_keys: u32) -> Vec<Vec<Write>> {
    let mut revisions: Vec<Vec<Write>> = (0..puts).map(|number| vec![Write::Put(number)]).collect();
    revisions.push(vec![Write::DeleteRange(0, deleted)]);
    revisions.push(
        (0..txn_keys)
            .map(|number| Write::Put(10_000 + number))
            .collect(),
    );
    revisions.extend((0..3).map(|number| vec![Write::Put(20_000 + number)]));
    revisions
}

fn check_both(revisions: &[Vec<Write>], start: Revision, budget: usize) {
    let mut store = Store::new();
    apply_store(&mut store, revisions);
    let mut model = ModelStore::new();
    apply_model(&mut model, revisions);
    for (name, source) in [("store", &store as &dyn EventSource), ("model", &model)] {
        let expected = full_history(source, start);
        let delivered = catch_up_all(source, start, budget);
        assert_eq!(
            delivered.len(),
            expected.len(),
            "{name}: budget {budget} from {start}: event count"
        );
        assert!(
            delivered
                .iter()
                .zip(&expected)
                .all(|(got, want)| got.kind == want.kind && got.kv == want.kv),
            "{name}: budget {budget} from {start}: events differ"
        );
    }
}

/// The reported crash: 1,023 puts (revisions 2..=1024), one delete-range of 5 keys (revision
/// 1025, five events that take the read from 1,023 events past the member's budget of 1,024),
/// then a watch on every key from revision 2. The store starts at revision 1, the model at 0,
/// so both are asked from their first write.
#[test]
fn delete_range_across_the_member_budget_is_delivered_whole() {
    let revisions = history(1_023, 5, 1);
    check_both(&revisions, Revision(2), MEMBER_BUDGET);
}

/// Goal: the same for multi-event revisions at every position around small budgets, including
/// revisions larger than the budget itself. Method: sweep puts before a 5-key delete-range and
/// a 7-key txn, for budgets 1 to 8, from a few start revisions.
#[test]
fn multi_event_revisions_around_small_budgets() {
    for puts in 5..14 {
        let revisions = history(puts, 5, 7);
        for budget in 1..=8 {
            for start in [1, 2, 3, 5] {
                check_both(&revisions, Revision(start), budget);
            }
        }
    }
}
