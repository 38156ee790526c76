//! Differential test of `engine::mvcc::Store` against a dumb model: the model keeps one full
//! copy of the key space per revision (a `Vec<BTreeMap<key, KeyValue>>`) and the events of each
//! revision, and implements etcd's rules in the most direct way (linear scans, cloning, the
//! duplicate-key rule by enumerating every execution path of a txn). Random sequences of puts,
//! deletes, txns (nested), ranges at random revisions, compactions, lease revocations and event
//! reads must give identical responses, revisions, events and errors.

use std::collections::BTreeMap;

use engine::kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventType, KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestError,
    RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
use engine::mvcc::Store;
use engine::types::{LeaseId, Revision};
use proptest::prelude::*;

type Space = BTreeMap<Vec<u8>, KeyValue>;

/// The only lease that exists in these tests; lease 2 never does.
const LEASE_LIVE: LeaseId = LeaseId(1);

fn lease_exists(lease: LeaseId) -> bool {
    lease == LEASE_LIVE
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

/// The model: `spaces[r]` is the whole key space at revision r (index 0 unused).
struct Model {
    spaces: Vec<Space>,
    events: Vec<Vec<Event>>,
    compacted: i64,
}

/// One write request being applied to the model.
struct Work {
    space: Space,
    events: Vec<Event>,
    revision: i64,
}

impl Work {
    fn read_revision(&self) -> i64 {
        if self.events.is_empty() {
            self.revision - 1
        } else {
            self.revision
        }
    }
}

impl Model {
    fn new() -> Model {
        Model {
            spaces: vec![Space::new(), Space::new()],
            events: vec![vec![], vec![]],
            compacted: 0,
        }
    }

    fn current(&self) -> i64 {
        self.spaces.len() as i64 - 1
    }

    fn begin(&self) -> Work {
        Work {
            space: self.spaces.last().unwrap().clone(),
            events: vec![],
            revision: self.current() + 1,
        }
    }

    fn commit(&mut self, work: Work) -> (Revision, Vec<Event>) {
        if !work.events.is_empty() {
            self.spaces.push(work.space);
            self.events.push(work.events.clone());
        }
        (Revision(self.current()), work.events)
    }

    fn check_revision(&self, requested: Revision) -> Result<(), RequestError> {
        let current = Revision(self.current());
        if requested > current {
            return Err(RequestError::FutureRevision { requested, current });
        }
        if requested.0 > 0 && requested.0 < self.compacted {
            return Err(RequestError::Compacted {
                requested,
                compacted: Revision(self.compacted),
            });
        }
        Ok(())
    }

    fn range_in(&self, request: &RangeRequest, latest: &Space, header: i64) -> RangeResponse {
        let space = if request.revision.0 > 0 {
            &self.spaces[request.revision.0 as usize]
        } else {
            latest
        };
        let matching: Vec<KeyValue> = space
            .values()
            .filter(|kv| in_range(&kv.key, &request.key, &request.range_end))
            .cloned()
            .collect();
        let mut response = RangeResponse {
            count: matching.len() as i64,
            ..Default::default()
        };
        response.header.revision = Revision(header);
        if request.count_only {
            return response;
        }
        let r = request;
        let mut kvs: Vec<KeyValue> = matching
            .into_iter()
            .filter(|kv| r.min_mod_revision.0 == 0 || kv.mod_revision >= r.min_mod_revision)
            .filter(|kv| r.max_mod_revision.0 == 0 || kv.mod_revision <= r.max_mod_revision)
            .filter(|kv| {
                r.min_create_revision.0 == 0 || kv.create_revision >= r.min_create_revision
            })
            .filter(|kv| {
                r.max_create_revision.0 == 0 || kv.create_revision <= r.max_create_revision
            })
            .collect();
        let key_of = |kv: &KeyValue| -> (Vec<u8>, i64) {
            match r.sort_target {
                SortTarget::Key => (kv.key.clone(), 0),
                SortTarget::Version => (vec![], kv.version),
                SortTarget::Create => (vec![], kv.create_revision.0),
                SortTarget::Mod => (vec![], kv.mod_revision.0),
                SortTarget::Value => (kv.value.clone(), 0),
            }
        };
        match r.sort_order {
            SortOrder::Descend => kvs.sort_by_key(|kv| std::cmp::Reverse(key_of(kv))),
            _ => kvs.sort_by_key(key_of),
        }
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            response.more = true;
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        response.kvs = kvs;
        response
    }

    fn put_in(&self, request: &PutRequest, work: &mut Work) -> Result<PutResponse, RequestError> {
        if request.key.is_empty() {
            return Err(RequestError::EmptyKey);
        }
        if request.lease.0 != 0 && !request.ignore_lease && !lease_exists(request.lease) {
            return Err(RequestError::LeaseNotFound {
                lease: request.lease,
            });
        }
        let prev = work.space.get(&request.key).cloned();
        if (request.ignore_value || request.ignore_lease) && prev.is_none() {
            return Err(RequestError::KeyNotFound);
        }
        let kv = KeyValue {
            key: request.key.clone(),
            create_revision: prev
                .as_ref()
                .map_or(Revision(work.revision), |p| p.create_revision),
            mod_revision: Revision(work.revision),
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: if request.ignore_value {
                prev.clone().unwrap().value
            } else {
                request.value.clone()
            },
            lease: if request.ignore_lease {
                prev.clone().unwrap().lease
            } else {
                request.lease
            },
        };
        work.space.insert(request.key.clone(), kv.clone());
        work.events.push(Event {
            kind: EventType::Put,
            kv,
            prev_kv: prev.clone(),
        });
        let mut response = PutResponse {
            prev_kv: prev.filter(|_| request.prev_kv),
            ..Default::default()
        };
        response.header.revision = Revision(work.revision);
        Ok(response)
    }

    fn delete_key(work: &mut Work, key: &[u8]) -> Option<KeyValue> {
        let prev = work.space.remove(key)?;
        let kv = KeyValue {
            key: key.to_vec(),
            mod_revision: Revision(work.revision),
            ..Default::default()
        };
        work.events.push(Event {
            kind: EventType::Delete,
            kv,
            prev_kv: Some(prev.clone()),
        });
        Some(prev)
    }

    fn delete_in(&self, request: &DeleteRangeRequest, work: &mut Work) -> DeleteRangeResponse {
        let keys: Vec<Vec<u8>> = work
            .space
            .keys()
            .filter(|key| in_range(key, &request.key, &request.range_end))
            .cloned()
            .collect();
        let mut response = DeleteRangeResponse {
            deleted: keys.len() as i64,
            ..Default::default()
        };
        for key in keys {
            let prev = Model::delete_key(work, &key).unwrap();
            if request.prev_kv {
                response.prev_kvs.push(prev);
            }
        }
        response.header.revision = Revision(work.read_revision());
        response
    }

    fn compare_holds(space: &Space, compare: &Compare) -> bool {
        let kvs: Vec<&KeyValue> = space
            .values()
            .filter(|kv| in_range(&kv.key, &compare.key, &compare.range_end))
            .collect();
        let zero = KeyValue::default();
        let targets = if kvs.is_empty() {
            if matches!(compare.target, CompareTarget::Value(_)) {
                return false;
            }
            vec![&zero]
        } else {
            kvs
        };
        targets.iter().all(|kv| {
            let ordering = match &compare.target {
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(v) => kv.create_revision.cmp(v),
                CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
                CompareTarget::Value(v) => kv.value.cmp(v),
            };
            match compare.result {
                CompareResult::Equal => ordering.is_eq(),
                CompareResult::NotEqual => ordering.is_ne(),
                CompareResult::Less => ordering.is_lt(),
                CompareResult::Greater => ordering.is_gt(),
            }
        })
    }

    /// Runs a txn against `work`; compares read `before` (the state before the txn).
    fn txn_in(
        &self,
        request: &TxnRequest,
        before: &Space,
        work: &mut Work,
    ) -> Result<TxnResponse, RequestError> {
        let succeeded = request
            .compare
            .iter()
            .all(|compare| Model::compare_holds(before, compare));
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::new();
        for op in ops {
            responses.push(match op {
                RequestOp::Range(range) => {
                    self.check_revision(range.revision)?;
                    let header = work.read_revision();
                    ResponseOp::Range(self.range_in(range, &work.space.clone(), header))
                }
                RequestOp::Put(put) => ResponseOp::Put(self.put_in(put, work)?),
                RequestOp::DeleteRange(delete) => {
                    ResponseOp::DeleteRange(self.delete_in(delete, work))
                }
                RequestOp::Txn(nested) => {
                    let mut response = self.txn_in(nested, before, work)?;
                    response.header.revision = Revision(work.read_revision());
                    ResponseOp::Txn(response)
                }
            });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
            ..Default::default()
        })
    }

    fn events(
        &self,
        start: &[u8],
        end: &[u8],
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Vec<Event>, RequestError> {
        if from <= self.compacted {
            return Err(RequestError::Compacted {
                requested: Revision(from),
                compacted: Revision(self.compacted),
            });
        }
        let mut out = Vec::new();
        for revision in from.max(1)..=to.min(self.current()) {
            let batch: Vec<Event> = self.events[revision as usize]
                .iter()
                .filter(|e| in_range(&e.kv.key, start, end))
                .cloned()
                .collect();
            if batch.is_empty() {
                continue;
            }
            if out.len() >= max {
                break;
            }
            out.extend(batch);
        }
        Ok(out)
    }
}

/// One write of some execution path: a put key or a deleted range.
#[derive(Clone)]
enum Write {
    Put(Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
}

/// Every execution path of a list of operations, as its writes.
fn paths(ops: &[RequestOp]) -> Vec<Vec<Write>> {
    let mut result = vec![vec![]];
    for op in ops {
        let options: Vec<Vec<Write>> = match op {
            RequestOp::Range(_) => vec![vec![]],
            RequestOp::Put(put) => vec![vec![Write::Put(put.key.clone())]],
            RequestOp::DeleteRange(d) => {
                vec![vec![Write::Delete(d.key.clone(), d.range_end.clone())]]
            }
            RequestOp::Txn(nested) => {
                let mut both = paths(&nested.success);
                both.extend(paths(&nested.failure));
                both
            }
        };
        result = result
            .iter()
            .flat_map(|prefix| {
                options
                    .iter()
                    .map(move |option| [prefix.clone(), option.clone()].concat())
            })
            .collect();
    }
    result
}

fn path_writes_twice(path: &[Write]) -> bool {
    path.iter().enumerate().any(|(i, write)| {
        let Write::Put(key) = write else { return false };
        path.iter().enumerate().any(|(j, other)| {
            i != j
                && match other {
                    Write::Put(other_key) => other_key == key,
                    Write::Delete(start, end) => in_range(key, start, end),
                }
        })
    })
}

fn has_empty_key(request: &TxnRequest) -> bool {
    request.compare.iter().any(|c| c.key.is_empty())
        || request
            .success
            .iter()
            .chain(&request.failure)
            .any(|op| match op {
                RequestOp::Range(r) => r.key.is_empty(),
                RequestOp::Put(p) => p.key.is_empty(),
                RequestOp::DeleteRange(d) => d.key.is_empty(),
                RequestOp::Txn(t) => has_empty_key(t),
            })
}

#[derive(Clone, Debug)]
enum Command {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Range(RangeRequest),
    Txn(TxnRequest),
    Compact(i64),
    DeleteKeys(Vec<Vec<u8>>),
    Events(Vec<u8>, Vec<u8>, i64, i64, usize),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["a", "ab", "b", "c", "d", "e"]).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![2 => Just(vec![]), 1 => Just(vec![0]), 3 => key()]
}

fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![2 => Just(0i64), 3 => 1i64..30].prop_map(Revision)
}

fn filter_revision() -> impl Strategy<Value = Revision> {
    prop_oneof![12 => Just(0i64), 1 => 1i64..30].prop_map(Revision)
}

fn put() -> impl Strategy<Value = PutRequest> {
    let flags = (
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    );
    (
        key(),
        prop::sample::select(vec!["", "x", "y", "zz"]),
        0i64..3,
        flags,
    )
        .prop_map(
            |(key, value, lease, (prev_kv, ignore_value, ignore_lease))| PutRequest {
                key,
                value: value.as_bytes().to_vec(),
                lease: LeaseId(if lease == 2 && !ignore_lease {
                    2
                } else {
                    lease.min(1)
                }),
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete() -> impl Strategy<Value = DeleteRangeRequest> {
    let delete_end = prop_oneof![4 => Just(vec![]), 1 => range_end()];
    (key(), delete_end, any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range() -> impl Strategy<Value = RangeRequest> {
    let sort = (
        prop::sample::select(vec![SortOrder::None, SortOrder::Ascend, SortOrder::Descend]),
        prop::sample::select(vec![
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ]),
    );
    let filters = (
        filter_revision(),
        filter_revision(),
        filter_revision(),
        filter_revision(),
    );
    let flags = (prop::bool::weighted(0.2), prop::bool::weighted(0.2));
    (
        key(),
        range_end(),
        0i64..4,
        revision(),
        sort,
        flags,
        filters,
    )
        .prop_map(
            |(
                key,
                range_end,
                limit,
                revision,
                (sort_order, sort_target),
                (keys_only, count_only),
                f,
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                serializable: false,
                keys_only,
                count_only,
                min_mod_revision: f.0,
                max_mod_revision: f.1,
                min_create_revision: f.2,
                max_create_revision: f.3,
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (0i64..4).prop_map(CompareTarget::Version),
        (0i64..20).prop_map(|r| CompareTarget::Create(Revision(r))),
        (0i64..20).prop_map(|r| CompareTarget::Mod(Revision(r))),
        (0i64..3).prop_map(|l| CompareTarget::Lease(LeaseId(l))),
        prop::sample::select(vec!["", "x", "y"])
            .prop_map(|v| CompareTarget::Value(v.as_bytes().to_vec())),
    ];
    let result = prop::sample::select(vec![
        CompareResult::Equal,
        CompareResult::NotEqual,
        CompareResult::Less,
        CompareResult::Greater,
    ]);
    (
        key(),
        prop_oneof![3 => Just(vec![]), 1 => range_end()],
        result,
        target,
    )
        .prop_map(|(key, range_end, result, target)| Compare {
            key,
            range_end,
            result,
            target,
        })
}

fn txn(depth: u32) -> BoxedStrategy<TxnRequest> {
    let leaf = prop_oneof![
        range().prop_map(RequestOp::Range),
        put().prop_map(RequestOp::Put),
        delete().prop_map(RequestOp::DeleteRange)
    ];
    let op = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![3 => leaf, 1 => txn(depth - 1).prop_map(RequestOp::Txn)].boxed()
    };
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
        .boxed()
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        10 => put().prop_map(Command::Put),
        2 => delete().prop_map(Command::Delete),
        4 => range().prop_map(Command::Range),
        4 => txn(2).prop_map(Command::Txn),
        1 => (0i64..30).prop_map(Command::Compact),
        1 => prop::collection::vec(key(), 0..3).prop_map(Command::DeleteKeys),
        2 => (key(), range_end(), 1i64..30, 0i64..10, 1usize..5).prop_map(|(k, e, from, span, max)| Command::Events(k, e, from, from + span, max)),
    ]
}

/// Makes a generated command fit the current store: a generated revision `v > 0` becomes
/// `current + 1 - (v - 1) % (current + 1)` (so 1 is the future, 2 the latest, larger ones
/// older, wrapping over `1..=current + 1`), and an
/// inverted key range is put the right way round (inverted ranges are covered by the scripts).
fn resolve(command: &Command, current: i64) -> Command {
    let relative = |revision: Revision| match revision.0 {
        0 => Revision(0),
        v => Revision(current + 1 - (v - 1) % (current + 1)),
    };
    let order = |key: &mut Vec<u8>, end: &mut Vec<u8>| {
        if !end.is_empty() && end.as_slice() != [0] && end < key {
            std::mem::swap(key, end);
        }
    };
    let fix_range = |request: &mut RangeRequest| {
        request.revision = relative(request.revision);
        request.min_mod_revision = relative(request.min_mod_revision);
        request.max_mod_revision = relative(request.max_mod_revision);
        request.min_create_revision = relative(request.min_create_revision);
        request.max_create_revision = relative(request.max_create_revision);
        order(&mut request.key, &mut request.range_end);
    };
    fn fix_txn(
        request: &mut TxnRequest,
        fix_range: &dyn Fn(&mut RangeRequest),
        order: &dyn Fn(&mut Vec<u8>, &mut Vec<u8>),
    ) {
        for compare in &mut request.compare {
            order(&mut compare.key, &mut compare.range_end);
        }
        for op in request.success.iter_mut().chain(request.failure.iter_mut()) {
            match op {
                RequestOp::Range(range) => fix_range(range),
                RequestOp::DeleteRange(delete) => order(&mut delete.key, &mut delete.range_end),
                RequestOp::Put(_) => {}
                RequestOp::Txn(nested) => fix_txn(nested, fix_range, order),
            }
        }
    }
    let mut command = command.clone();
    match &mut command {
        Command::Range(request) => fix_range(request),
        Command::Delete(request) => order(&mut request.key, &mut request.range_end),
        Command::Txn(request) => fix_txn(request, &fix_range, &order),
        Command::Events(key, end, from, to, _) => {
            order(key, end);
            let span = *to - *from;
            *from = relative(Revision(*from)).0;
            *to = *from + span;
        }
        Command::Compact(revision) => *revision = relative(Revision(*revision)).0,
        Command::Put(_) | Command::DeleteKeys(_) => {}
    }
    command
}

/// Applies one command to both and asserts identical outcomes.
fn step(store: &mut Store, model: &mut Model, command: &Command) {
    let command = &resolve(command, model.current());
    match command {
        Command::Put(request) => {
            let mut work = model.begin();
            let expected = model
                .put_in(request, &mut work)
                .map(|response| (response, model.commit(work)));
            let actual = store
                .put(request, &lease_exists)
                .map(|w| (w.response, (w.revision, w.events)));
            assert_eq!(actual, expected);
        }
        Command::Delete(request) => {
            let mut work = model.begin();
            let response = model.delete_in(request, &mut work);
            let expected = Ok((response, model.commit(work)));
            let actual = store
                .delete_range(request)
                .map(|w| (w.response, (w.revision, w.events)));
            assert_eq!(actual, expected);
        }
        Command::Range(request) => {
            let expected = model
                .check_revision(request.revision)
                .map(|()| model.range_in(request, model.spaces.last().unwrap(), model.current()));
            assert_eq!(store.range(request), expected);
        }
        Command::Txn(request) => {
            let expected = if has_empty_key(request) {
                Err(RequestError::EmptyKey)
            } else if [&request.success, &request.failure]
                .iter()
                .any(|ops| paths(ops).iter().any(|p| path_writes_twice(p)))
            {
                Err(RequestError::DuplicateKey)
            } else {
                let before = model.spaces.last().unwrap().clone();
                let mut work = model.begin();
                model
                    .txn_in(request, &before, &mut work)
                    .map(|mut response| {
                        response.header.revision = Revision(work.read_revision());
                        (response, model.commit(work))
                    })
            };
            let actual = store
                .txn(request, &lease_exists)
                .map(|w| (w.response, (w.revision, w.events)));
            assert_eq!(actual, expected);
        }
        Command::Compact(revision) => {
            let requested = Revision(*revision);
            let expected = if *revision <= model.compacted {
                Err(RequestError::Compacted {
                    requested,
                    compacted: Revision(model.compacted),
                })
            } else if *revision > model.current() {
                Err(RequestError::FutureRevision {
                    requested,
                    current: Revision(model.current()),
                })
            } else {
                model.compacted = *revision;
                Ok(())
            };
            assert_eq!(store.compact(requested), expected);
        }
        Command::DeleteKeys(keys) => {
            let mut work = model.begin();
            for key in keys {
                Model::delete_key(&mut work, key);
            }
            let expected = model.commit(work);
            let written = store.delete_keys(keys);
            assert_eq!((written.revision, written.events), expected);
        }
        Command::Events(key, end, from, to, max) => {
            let expected = model.events(key, end, *from, *to, *max);
            assert_eq!(
                store.events(key, end, Revision(*from), Revision(*to), *max),
                expected
            );
        }
    }
    assert_eq!(store.revision(), Revision(model.current()));
    assert_eq!(store.compacted_revision(), Revision(model.compacted));
    store.check_invariants();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Goal: every store response equals the dumb model's, over random histories. Method: run
    /// a random command sequence through both, comparing each response, revision, event list
    /// and error; at the end, a full read of every surviving revision must agree, and the
    /// snapshot round trip must give an equal store with an equal hash.
    #[test]
    fn store_matches_model(commands in prop::collection::vec(command(), 1..80)) {
        let mut store = Store::new();
        let mut model = Model::new();
        for command in &commands {
            step(&mut store, &mut model, command);
        }
        for revision in model.compacted.max(1)..=model.current() {
            let request = RangeRequest { key: vec![0], range_end: vec![0], revision: Revision(revision), ..Default::default() };
            let expected = model.range_in(&request, &model.spaces[revision as usize], model.current());
            prop_assert_eq!(store.range(&request), Ok(expected));
        }
        let decoded = Store::decode_snapshot(&store.encode_snapshot()).expect("own snapshot decodes");
        prop_assert_eq!(decoded.hash(), store.hash());
        prop_assert!(decoded == store);
    }
}
