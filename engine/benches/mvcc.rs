//! Throughput benchmark of the MVCC store with 100k keys: puts (creation and overwrite),
//! single-key gets, 100-key ranges, compaction and a snapshot round trip, each next to a plain
//! `BTreeMap` doing the nearest equivalent work in the same run, so the ratio is comparable
//! across machines. Prints one JSON object on stdout.
//!
//! This is a measurement, not a test: it asserts only that the answers are right, never a speed.

// A benchmark runs on the host, outside the engine: it may read the wall clock and print.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use engine::kv::{PutRequest, RangeRequest};
use engine::mvcc::Store;
use engine::types::{LeaseId, Revision};

const KEY_COUNT: usize = 100_000;
const VALUE_BYTES: usize = 100;
const GET_COUNT: usize = 200_000;
const RANGE_COUNT: usize = 20_000;
const RANGE_KEYS: usize = 100;

/// A fixed linear congruential sequence: the same key order on every run.
struct Sequence(u64);

impl Sequence {
    fn next_below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

fn key(index: usize) -> Vec<u8> {
    format!("key-{index:08}").into_bytes()
}

fn per_second(count: usize, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let no_lease = |_: LeaseId| false;
    let value = vec![b'v'; VALUE_BYTES];
    let mut store = Store::new();

    let started = Instant::now();
    for index in 0..KEY_COUNT {
        let request = PutRequest {
            key: key(index),
            value: value.clone(),
            ..Default::default()
        };
        black_box(store.put(&request, &no_lease).expect("put"));
    }
    let put_create_per_sec = per_second(KEY_COUNT, started);

    let mut sequence = Sequence(1);
    let started = Instant::now();
    for _ in 0..KEY_COUNT {
        let request = PutRequest {
            key: key(sequence.next_below(KEY_COUNT)),
            value: value.clone(),
            ..Default::default()
        };
        black_box(store.put(&request, &no_lease).expect("put"));
    }
    let put_overwrite_per_sec = per_second(KEY_COUNT, started);
    assert_eq!(store.revision(), Revision(1 + 2 * KEY_COUNT as i64));

    let started = Instant::now();
    for _ in 0..GET_COUNT {
        let request = RangeRequest {
            key: key(sequence.next_below(KEY_COUNT)),
            ..Default::default()
        };
        let response = store.range(&request).expect("get");
        assert_eq!(response.kvs.len(), 1);
    }
    let get_per_sec = per_second(GET_COUNT, started);

    let started = Instant::now();
    for _ in 0..RANGE_COUNT {
        let start = sequence.next_below(KEY_COUNT - RANGE_KEYS);
        let request = RangeRequest {
            key: key(start),
            range_end: key(start + RANGE_KEYS),
            ..Default::default()
        };
        let response = store.range(&request).expect("range");
        assert_eq!(response.kvs.len(), RANGE_KEYS);
    }
    let range_100_per_sec = per_second(RANGE_COUNT, started);

    let started = Instant::now();
    let bytes = store.encode_snapshot();
    let decoded = Store::decode_snapshot(&bytes).expect("decode");
    let snapshot_round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(decoded.hash(), store.hash());

    let started = Instant::now();
    store.compact(store.revision()).expect("compact");
    let compact_ms = started.elapsed().as_secs_f64() * 1000.0;

    // The reference: the same key and value traffic into a plain BTreeMap.
    let mut reference = BTreeMap::new();
    let started = Instant::now();
    for index in 0..KEY_COUNT {
        reference.insert(key(index), value.clone());
    }
    let reference_insert_per_sec = per_second(KEY_COUNT, started);
    let started = Instant::now();
    for _ in 0..GET_COUNT {
        let found = reference.get(&key(sequence.next_below(KEY_COUNT))).cloned();
        assert!(black_box(found).is_some());
    }
    let reference_get_per_sec = per_second(GET_COUNT, started);

    println!(
        "{{\"bench\":\"mvcc\",\"key_count\":{KEY_COUNT},\"value_bytes\":{VALUE_BYTES},\
         \"put_create_per_sec\":{put_create_per_sec:.0},\"put_overwrite_per_sec\":{put_overwrite_per_sec:.0},\
         \"get_per_sec\":{get_per_sec:.0},\"range_100_keys_per_sec\":{range_100_per_sec:.0},\
         \"snapshot_bytes\":{},\"snapshot_round_trip_ms\":{snapshot_round_trip_ms:.1},\"compact_ms\":{compact_ms:.1},\
         \"reference_btreemap_insert_per_sec\":{reference_insert_per_sec:.0},\"reference_btreemap_get_per_sec\":{reference_get_per_sec:.0},\
         \"put_create_ratio\":{:.3},\"get_ratio\":{:.3}}}",
        bytes.len(),
        put_create_per_sec / reference_insert_per_sec,
        get_per_sec / reference_get_per_sec,
    );
}
