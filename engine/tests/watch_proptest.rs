//! Differential property test of the watch hub against the model history: for random writes,
//! compactions, watchers with random ranges, options and start revisions, random slow-consumer
//! pressure (pause/resume), bounded catch-up calls, progress requests and broken streams that are
//! resumed from the last seen revision + 1, every watcher must see exactly the history filtered
//! to its range from its start, and etcd's six watch guarantees must hold.

use std::collections::BTreeMap;

use engine::kv::WatchResponse;
use engine::kv::{Event, EventType, ResponseHeader, WatchCreateRequest, WatchFilters};
use engine::types::{Duration, Revision, WatchId};
use engine::watch::model::{ModelStore, ModelWrite};
use engine::watch::{key_in_range, EventSource, WatchConfig, WatchHub};
use proptest::prelude::*;

const KEYS: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"e"];

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<(bool, usize, u8)>),
    Watch {
        key_index: usize,
        range_kind: u8,
        start_back: Option<u8>,
        prev_kv: bool,
        filter: u8,
        fragment: bool,
    },
    Pause(usize),
    Resume(usize),
    CatchUp(usize),
    Compact(u8),
    Reconnect(usize),
    Progress,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec((any::<bool>(), 0..KEYS.len(), any::<u8>()), 1..4)
            .prop_map(Op::Write),
        2 => (0..KEYS.len(), 0u8..3, prop::option::of(0u8..8), any::<bool>(), 0u8..4, any::<bool>())
            .prop_map(|(key_index, range_kind, start_back, prev_kv, filter, fragment)| Op::Watch {
                key_index, range_kind, start_back, prev_kv, filter, fragment,
            }),
        1 => (0usize..8).prop_map(Op::Pause),
        1 => (0usize..8).prop_map(Op::Resume),
        1 => (1usize..6).prop_map(Op::CatchUp),
        1 => (0u8..4).prop_map(Op::Compact),
        1 => (0usize..8).prop_map(Op::Reconnect),
        1 => Just(Op::Progress),
    ]
}

/// One logical watcher: a client that may re-create its watch after a broken stream.
struct Client {
    request: WatchCreateRequest,
    /// The first revision it wants (a "from now" start resolved at creation).
    start: Revision,
    current_id: WatchId,
    received: Vec<Event>,
    cancelled_at: Option<Revision>,
    paused: bool,
    /// The highest revision the client knows complete: its last event or bookmark.
    high_water: Revision,
    /// The last response was a fragment: the next continues the same revision.
    in_fragment: bool,
}

/// Ordered and unique: revisions never go back, and a revision only continues inside one
/// response or a fragment chain.
fn check_ordered(client: &Client, response: &WatchResponse) {
    let mut previous: Option<Revision> = None;
    for event in &response.events {
        let revision = event.kv.mod_revision;
        match previous {
            Some(last) => assert!(revision >= last, "ordered inside a response"),
            None if client.in_fragment => {
                let last = client.received.last().expect("a fragment carried events");
                assert!(
                    revision == last.kv.mod_revision,
                    "a fragment chain continues its revision"
                )
            }
            None => assert!(
                revision > client.high_water,
                "ordered and unique across responses"
            ),
        }
        previous = Some(revision);
    }
}

/// Atomic: once a response (or fragment chain) ends, every revision it carried is complete.
fn check_atomic(client: &mut Client, response: &WatchResponse, expected: &[Event]) {
    for event in &response.events {
        let revision = event.kv.mod_revision;
        let received = client
            .received
            .iter()
            .filter(|e| e.kv.mod_revision == revision)
            .count();
        let wanted = expected
            .iter()
            .filter(|e| e.kv.mod_revision == revision)
            .count();
        assert_eq!(received, wanted, "atomic: revision {revision} incomplete");
        client.high_water = client.high_water.max(revision);
    }
}

/// Bookmarkable: a progress revision is no lower than what was seen, and every wanted event up
/// to it has been delivered.
fn check_bookmark(client: &mut Client, response: &WatchResponse, expected: &[Event]) {
    let bookmark = response.header.revision;
    assert!(
        bookmark >= client.high_water,
        "bookmark below a delivered event"
    );
    let owed = expected
        .iter()
        .filter(|e| e.kv.mod_revision <= bookmark)
        .count();
    let received = client
        .received
        .iter()
        .filter(|e| e.kv.mod_revision <= bookmark)
        .count();
    assert_eq!(
        received, owed,
        "progress at {bookmark} past an undelivered event"
    );
    client.high_water = bookmark;
}

struct World {
    store: ModelStore,
    history: Vec<Event>,
    hub: WatchHub,
    clients: Vec<Client>,
    owner: BTreeMap<WatchId, usize>,
}

impl World {
    fn new() -> World {
        let config = WatchConfig {
            watchers_count_max: 64,
            pending_events_count_max: 2,
            response_bytes_max: 120,
            progress_interval: Duration::from_secs(1),
        };
        World {
            store: ModelStore::new(),
            history: Vec::new(),
            hub: WatchHub::new(config, ResponseHeader::default()),
            clients: Vec::new(),
            owner: BTreeMap::new(),
        }
    }

    /// Delivers responses to their clients, checking the guarantees as a client would see them.
    fn route(&mut self, out: Vec<WatchResponse>) {
        for response in out {
            let client_index = self.owner[&response.watch_id];
            let expected = self.expected(&self.clients[client_index]);
            let client = &mut self.clients[client_index];
            assert_eq!(
                client.current_id, response.watch_id,
                "response to a cancelled watch"
            );
            assert!(client.cancelled_at.is_none(), "response after cancellation");
            check_ordered(client, &response);
            client.received.extend(response.events.iter().cloned());
            client.in_fragment = response.fragment;
            if !response.fragment {
                check_atomic(client, &response, &expected);
            }
            if response.events.is_empty() && !response.canceled {
                check_bookmark(client, &response, &expected);
            }
            if response.canceled {
                assert!(response.compact_revision <= self.store.compacted_revision());
                client.cancelled_at = Some(response.compact_revision);
            }
        }
    }

    fn create(&mut self, client_index: usize) {
        let client = &self.clients[client_index];
        let id = self
            .hub
            .create(client.request.clone(), &self.store)
            .expect("room for watches");
        self.owner.insert(id, client_index);
        self.clients[client_index].current_id = id;
    }

    fn step(&mut self, op: Op) {
        let mut out = Vec::new();
        match op {
            Op::Write(writes) => {
                let writes: Vec<ModelWrite> = writes
                    .into_iter()
                    .map(|(put, key, value)| {
                        let key = KEYS[key].to_vec();
                        if put {
                            ModelWrite::Put(key, vec![b'v'; usize::from(value % 40)])
                        } else {
                            ModelWrite::Delete(key)
                        }
                    })
                    .collect();
                if let Some((revision, events)) = self.store.apply(&writes) {
                    self.history.extend(events.iter().cloned());
                    self.hub.on_apply(revision, &events, &mut out);
                }
            }
            Op::Watch {
                key_index,
                range_kind,
                start_back,
                prev_kv,
                filter,
                fragment,
            } => self.add_client(key_index, range_kind, start_back, prev_kv, filter, fragment),
            Op::Pause(index) => {
                if let Some(client) = self.clients.get_mut(index) {
                    if client.cancelled_at.is_none() {
                        client.paused = true;
                        self.hub.pause(client.current_id).unwrap();
                    }
                }
            }
            Op::Resume(index) => {
                if let Some(client) = self.clients.get_mut(index) {
                    if client.cancelled_at.is_none() {
                        client.paused = false;
                        self.hub.resume(client.current_id, &mut out).unwrap();
                    }
                }
            }
            Op::CatchUp(budget) => {
                self.hub.catch_up(&self.store, &mut out, budget);
            }
            Op::Compact(back) => {
                let current = self.store.current_revision().0;
                self.store.compact(Revision(current - i64::from(back)));
            }
            Op::Reconnect(index) => self.reconnect(index),
            Op::Progress => self.hub.request_progress(&mut out),
        }
        self.route(out);
    }

    /// A new client watching a random range with random options and start revision.
    fn add_client(
        &mut self,
        key_index: usize,
        range_kind: u8,
        start_back: Option<u8>,
        prev_kv: bool,
        filter: u8,
        fragment: bool,
    ) {
        if self.clients.len() >= 8 {
            return;
        }
        let key = KEYS[key_index].to_vec();
        let range_end = match range_kind {
            0 => Vec::new(),
            1 => vec![key[0] + 2],
            _ => vec![0],
        };
        let current = self.store.current_revision();
        let start_revision = match start_back {
            None => Revision(0),
            Some(back) => Revision((current.0 + 2 - i64::from(back)).max(1)),
        };
        let request = WatchCreateRequest {
            key,
            range_end,
            start_revision,
            prev_kv,
            fragment,
            filters: WatchFilters {
                no_put: filter == 1,
                no_delete: filter == 2,
            },
            ..WatchCreateRequest::default()
        };
        let start = if start_revision.0 == 0 {
            current.next()
        } else {
            start_revision
        };
        self.clients.push(Client {
            request,
            start,
            current_id: WatchId(0),
            received: Vec::new(),
            cancelled_at: None,
            paused: false,
            high_water: Revision(0),
            in_fragment: false,
        });
        self.create(self.clients.len() - 1);
    }

    /// A broken stream: cancel, then watch again from the last received revision + 1.
    fn reconnect(&mut self, index: usize) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        if client.cancelled_at.is_some() {
            return;
        }
        self.hub.cancel(client.current_id).unwrap();
        let resume_from = client
            .received
            .last()
            .map_or(client.start, |event| event.kv.mod_revision.next());
        client.request.start_revision = resume_from;
        client.paused = false;
        client.in_fragment = false;
        self.create(index);
    }

    /// Resumes everyone and catches up until no watcher lags.
    fn drain(&mut self) {
        let mut out = Vec::new();
        for client in &mut self.clients {
            if client.cancelled_at.is_none() && client.paused {
                client.paused = false;
                self.hub.resume(client.current_id, &mut out).unwrap();
            }
        }
        self.route(std::mem::take(&mut out));
        let mut rounds = 0;
        while self.hub.catch_up(&self.store, &mut out, 3) {
            self.route(std::mem::take(&mut out));
            rounds += 1;
            assert!(rounds < 10_000, "catch-up makes no progress");
        }
        self.route(out);
    }

    fn expected(&self, client: &Client) -> Vec<Event> {
        let request = &client.request;
        self.history
            .iter()
            .filter(|event| event.kv.mod_revision >= client.start)
            .filter(|event| key_in_range(&event.kv.key, &request.key, &request.range_end))
            .filter(|event| match event.kind {
                EventType::Put => !request.filters.no_put,
                EventType::Delete => !request.filters.no_delete,
            })
            .map(|event| {
                let mut event = event.clone();
                if !request.prev_kv {
                    event.prev_kv = None;
                }
                event
            })
            .collect()
    }

    fn check(&self) {
        for client in &self.clients {
            let expected = self.expected(client);
            match client.cancelled_at {
                None => assert_eq!(
                    client.received, expected,
                    "reliable: exact filtered history"
                ),
                Some(_) => assert!(
                    expected.starts_with(&client.received),
                    "prefix before cancel"
                ),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Goal: each watcher sees exactly the MVCC history filtered to its range from its start,
    /// whatever the interleaving of writes, compactions, slow consumers and reconnects, and the
    /// six etcd guarantees hold. Method: run random operations against the hub and the model
    /// store, drain everything at the end, and compare every watcher with the model history.
    #[test]
    fn watchers_see_exactly_their_filtered_history(ops in prop::collection::vec(op_strategy(), 1..80)) {
        let mut world = World::new();
        for op in ops {
            world.step(op);
        }
        world.drain();
        world.check();
    }
}
