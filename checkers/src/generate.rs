//! Generated linearizable histories: random operations run on the sequential store, each given a
//! linearization point and a real-time interval around it (random overlap between clients), some
//! with unknown outcomes (taken effect or not), plus one watch over every key.
//!
//! Used by the property tests and the bench. Seeded and integer-only: the same config gives the
//! same history. It does not produce faulty histories; tests mutate them.

use crate::history::{
    CompareOp, CompareTarget, CompareValue, EventKind, History, KeyValue, Operation, PutRequest,
    RangeRequest, Request, Response, TxnRequest, WatchEvent, WatchRecord,
};
use crate::model::{KeyState, Op, Outcome, Store};

/// A tiny seeded generator (SplitMix64): reproducible across platforms and versions.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeds it.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::model::mix(self.0.wrapping_sub(0x9e37_79b9_7f4a_7c15))
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        self.next_u64() % bound
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateConfig {
    /// Operations to generate.
    pub ops_count: usize,
    /// Clients issuing concurrently (the concurrency).
    pub clients_count: usize,
    /// Distinct keys.
    pub keys_count: usize,
    /// Percentage of operations whose outcome is unknown.
    pub unknown_percent: u64,
    /// Whether results record revisions (otherwise values and versions only).
    pub revisions: bool,
    /// The seed.
    pub seed: u64,
}

fn key_bytes(key: u32) -> Vec<u8> {
    format!("k{key:04}").into_bytes()
}

fn value_bytes(value: u32) -> Vec<u8> {
    format!("v{value:07}").into_bytes()
}

/// Generates a linearizable history and the watch that saw every change.
pub fn generate(config: &GenerateConfig) -> History {
    generate_shaped(config, false)
}

/// Operations in a Jepsen-shaped history (`generate_jepsen`), about what Jepsen's etcd test
/// records per key.
pub const JEPSEN_OPS_COUNT: usize = 85;

/// A Jepsen-shaped history, as Jepsen's etcd register test records them and Porcupine checks
/// them: one key, reads, writes and compare-and-sets on the value, results with values only (no
/// revisions, versions or previous kvs), 30% unknown outcomes (each such client replaced),
/// `clients_count` clients. Unless `seed % 5 == 0`, one read is then made to return an earlier
/// value, which mostly makes the history not linearizable; the verdict is the checker's to find.
pub fn generate_jepsen(seed: u64, clients_count: usize) -> History {
    let config = GenerateConfig {
        ops_count: JEPSEN_OPS_COUNT,
        clients_count,
        keys_count: 1,
        unknown_percent: 30,
        revisions: false,
        seed,
    };
    let mut history = generate_shaped(&config, true);
    history.watches.clear();
    if !seed.is_multiple_of(5) {
        make_one_read_stale(&mut history, &mut SplitMix::new(seed ^ 0x57a1e));
    }
    history
}

/// Replaces the value one definite read returned with the value of an earlier put.
fn make_one_read_stale(history: &mut History, rng: &mut SplitMix) {
    let reads: Vec<usize> = (0..history.ops.len())
        .filter(|&index| {
            matches!(&history.ops[index].result, Some(Response::Range { kvs: Some(kvs), .. }) if !kvs.is_empty())
        })
        .collect();
    if reads.is_empty() {
        return;
    }
    let read = reads[rng.below(reads.len() as u64) as usize];
    let Some(Response::Range { kvs: Some(kvs), .. }) = &history.ops[read].result else {
        unreachable!("filtered above");
    };
    let current = kvs[0].value.clone();
    let earlier: Vec<Vec<u8>> = history.ops[..read]
        .iter()
        .filter_map(|op| match &op.request {
            Request::Put(put) if Some(&put.value) != current.as_ref() => Some(put.value.clone()),
            _ => None,
        })
        .collect();
    if earlier.is_empty() {
        return;
    }
    let stale = earlier[rng.below(earlier.len() as u64) as usize].clone();
    if let Some(Response::Range { kvs: Some(kvs), .. }) = &mut history.ops[read].result {
        kvs[0].value = Some(stale);
    }
}

/// `generate`; with `values_only`, compare-and-sets compare values and results record values
/// only (no versions, leases or previous kvs).
fn generate_shaped(config: &GenerateConfig, values_only: bool) -> History {
    assert!(
        config.clients_count > 0 && config.keys_count > 0,
        "need clients and keys"
    );
    let mut rng = SplitMix::new(config.seed);
    let mut store = Store::new(config.keys_count);
    let mut free_at = vec![0i64; config.clients_count];
    let mut client_ids: Vec<u64> = (0..config.clients_count as u64).collect();
    let mut next_client = config.clients_count as u64;
    let spread = 20 * config.clients_count as i64;
    let mut now: i64 = 0;
    let mut ops = Vec::with_capacity(config.ops_count);
    let mut write_times = vec![0i64; config.ops_count + 2];
    for index in 0..config.ops_count {
        now += 1 + rng.below(20) as i64;
        let slot = rng.below(config.clients_count as u64) as usize;
        let call = free_at[slot].max(now - rng.below(spread as u64) as i64);
        let point = call.max(now);
        now = point;
        let ret = point + rng.below(spread as u64) as i64;
        free_at[slot] = ret + 1;
        let (request, op) = random_request(&mut rng, &store, config, index as u32, values_only);
        let unknown = rng.below(100) < config.unknown_percent;
        let applied = !unknown || rng.below(2) == 0;
        let before = store.revision();
        let outcome = if applied {
            Some(store.apply(&op))
        } else {
            None
        };
        store.forget_undo();
        if store.revision() > before {
            write_times[store.revision() as usize - 2] = point;
        }
        let result = if unknown {
            None
        } else {
            outcome.map(|outcome| to_response(&outcome, config.revisions))
        };
        let result = match result {
            Some(response) if values_only => Some(values_only_response(response)),
            other => other,
        };
        ops.push(Operation {
            id: index as u64,
            client: client_ids[slot],
            call,
            ret: if unknown { None } else { Some(ret) },
            request,
            result,
            user: None,
            lock: None,
        });
        if unknown {
            // A client that lost track of its request is replaced, as in Jepsen.
            client_ids[slot] = next_client;
            next_client += 1;
        }
    }
    let watch = watch_of(&store, &write_times);
    History {
        ops,
        watches: vec![watch],
    }
}

fn random_request(
    rng: &mut SplitMix,
    store: &Store,
    config: &GenerateConfig,
    index: u32,
    values_only: bool,
) -> (Request, Op) {
    let key = rng.below(config.keys_count as u64) as u32;
    let range = |key: u32| RangeRequest {
        key: key_bytes(key),
        range_end: None,
        revision: 0,
        limit: 0,
        serializable: false,
    };
    let put = |key: u32| PutRequest {
        key: key_bytes(key),
        value: value_bytes(index),
        lease: 0,
        prev_kv: true,
    };
    match rng.below(20) {
        0..=6 => (
            Request::Put(put(key)),
            Op::Put {
                key,
                value: index,
                lease: 0,
                prev_kv: true,
            },
        ),
        7..=14 => (
            Request::Range(range(key)),
            Op::Range {
                lo: key,
                hi: key + 1,
                revision: 0,
                limit: 0,
            },
        ),
        15 => (
            Request::Delete(crate::history::DeleteRequest {
                key: key_bytes(key),
                range_end: None,
                prev_kv: true,
            }),
            Op::Delete {
                lo: key,
                hi: key + 1,
                prev_kv: true,
            },
        ),
        _ if values_only => value_cas(rng, store, key, index, put(key), range(key)),
        _ => {
            // Compare-and-set on the version, sometimes stale so both branches occur.
            let version = store.get(key).map_or(0, |state| state.version) + rng.below(2) as i64;
            let txn = TxnRequest {
                compare: vec![crate::history::Compare {
                    key: key_bytes(key),
                    target: CompareTarget::Version,
                    op: CompareOp::Equal,
                    value: CompareValue::Int(version),
                }],
                success: vec![Request::Put(put(key))],
                failure: vec![Request::Range(range(key))],
            };
            let op = Op::Txn {
                compares: vec![crate::model::Cmp {
                    key,
                    target: CompareTarget::Version,
                    op: CompareOp::Equal,
                    value: version,
                }],
                success: vec![Op::Put {
                    key,
                    value: index,
                    lease: 0,
                    prev_kv: true,
                }],
                failure: vec![Op::Range {
                    lo: key,
                    hi: key + 1,
                    revision: 0,
                    limit: 0,
                }],
            };
            (Request::Txn(txn), op)
        }
    }
}

/// Jepsen's compare-and-set: if the value is the current one (or, half the time, the value
/// this operation's index would have written: usually absent), write a new one.
fn value_cas(
    rng: &mut SplitMix,
    store: &Store,
    key: u32,
    index: u32,
    put: PutRequest,
    range: RangeRequest,
) -> (Request, Op) {
    let expected = match store.get(key) {
        Some(state) if rng.below(2) == 0 => state.value,
        _ => index,
    };
    let txn = TxnRequest {
        compare: vec![crate::history::Compare {
            key: key_bytes(key),
            target: CompareTarget::Value,
            op: CompareOp::Equal,
            value: CompareValue::Bytes(value_bytes(expected)),
        }],
        success: vec![Request::Put(PutRequest {
            prev_kv: false,
            ..put
        })],
        failure: vec![Request::Range(range)],
    };
    let op = Op::Txn {
        compares: vec![crate::model::Cmp {
            key,
            target: CompareTarget::Value,
            op: CompareOp::Equal,
            value: i64::from(expected),
        }],
        success: vec![Op::Put {
            key,
            value: index,
            lease: 0,
            prev_kv: false,
        }],
        failure: vec![Op::Range {
            lo: key,
            hi: key + 1,
            revision: 0,
            limit: 0,
        }],
    };
    (Request::Txn(txn), op)
}

/// Drops everything but keys and values from a result, as Jepsen records them.
fn values_only_response(response: Response) -> Response {
    let strip = |kv: KeyValue| KeyValue {
        key: kv.key,
        value: kv.value,
        ..KeyValue::default()
    };
    match response {
        Response::Range { kvs, .. } => Response::Range {
            revision: None,
            kvs: kvs.map(|kvs| kvs.into_iter().map(strip).collect()),
            count: None,
        },
        Response::Put { .. } => Response::Put {
            revision: None,
            prev_kv: None,
        },
        Response::Txn {
            succeeded,
            responses,
            ..
        } => Response::Txn {
            revision: None,
            succeeded,
            responses: responses.map(|inner| inner.into_iter().map(values_only_response).collect()),
        },
        Response::Delete { deleted, .. } => Response::Delete {
            revision: None,
            deleted,
            prev_kvs: None,
        },
        other => other,
    }
}

fn kv_of(key: u32, state: &KeyState, revisions: bool) -> KeyValue {
    KeyValue {
        key: key_bytes(key),
        value: Some(value_bytes(state.value)),
        create_revision: revisions.then_some(state.create_revision),
        mod_revision: revisions.then_some(state.mod_revision),
        version: Some(state.version),
        lease: Some(state.lease),
    }
}

/// Renders what the store answered as a recorded result.
fn to_response(outcome: &Outcome, revisions: bool) -> Response {
    let revision = |value: i64| revisions.then_some(value);
    let list = |kvs: &[(u32, KeyState)]| {
        kvs.iter()
            .map(|(key, state)| kv_of(*key, state, revisions))
            .collect()
    };
    match outcome {
        Outcome::Range {
            revision: at,
            kvs,
            count,
        } => Response::Range {
            revision: revision(*at),
            kvs: Some(list(kvs)),
            count: Some(*count),
        },
        Outcome::Put {
            revision: at, prev, ..
        } => Response::Put {
            revision: revision(*at),
            prev_kv: Some(prev.map(|(key, state)| kv_of(key, &state, revisions))),
        },
        Outcome::Delete {
            revision: at,
            deleted,
            ..
        } => Response::Delete {
            revision: revision(*at),
            deleted: Some(deleted.len() as i64),
            prev_kvs: Some(list(deleted)),
        },
        Outcome::Txn {
            revision: at,
            succeeded,
            responses,
        } => Response::Txn {
            revision: revision(*at),
            succeeded: Some(*succeeded),
            responses: Some(
                responses
                    .iter()
                    .map(|inner| to_response(inner, revisions))
                    .collect(),
            ),
        },
        Outcome::LeaseGrant { ttl_seconds } => Response::LeaseGrant {
            id: None,
            ttl_seconds: Some(*ttl_seconds),
        },
        Outcome::LeaseRevoke { revision: at } => Response::LeaseRevoke {
            revision: revision(*at),
        },
        Outcome::LeaseKeepAlive { ttl_seconds } => Response::LeaseKeepAlive {
            ttl_seconds: Some(*ttl_seconds),
        },
        Outcome::Compact { revision: at } => Response::Compact {
            revision: revision(*at),
        },
        Outcome::Expire => Response::Compact { revision: None },
        Outcome::Auth => Response::Auth { revision: None },
        Outcome::Error(code) => Response::Error {
            code: code.name().to_string(),
            message: None,
        },
    }
}

fn watch_of(store: &Store, write_times: &[i64]) -> WatchRecord {
    let events = store
        .change_log()
        .into_iter()
        .map(|(revision, key, state)| {
            let time = write_times[revision as usize - 2] + 1;
            match state {
                Some(state) => WatchEvent {
                    time,
                    revision,
                    kind: EventKind::Put,
                    kv: kv_of(key, &state, true),
                    prev_kv: None,
                },
                None => WatchEvent {
                    time,
                    revision,
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key_bytes(key),
                        mod_revision: Some(revision),
                        ..KeyValue::default()
                    },
                    prev_kv: None,
                },
            }
        })
        .collect();
    WatchRecord {
        watch: 0,
        client: u64::MAX,
        call: 0,
        key: Vec::new(),
        range_end: Some(vec![0]),
        start_revision: 1,
        prev_kv: false,
        events,
        progress: Vec::new(),
        canceled: None,
    }
}
