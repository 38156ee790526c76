//! WAL append+sync throughput on the in-memory disk: encodes records, frames them, builds the
//! disk ops and applies them, for 100-byte and 4 KiB entries in batches of 1 and 64. Prints one
//! JSON object. It measures the engine's CPU cost per record, not a real disk's fsync latency.
//!
//! The reference in the same run is a plain `memcpy` of the same payload bytes, so the figures
//! can be read as a ratio that is stable across machines.

// A benchmark measures wall time and prints its result; the engine itself never does either.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use engine::raft::{Entry, EntryKind};
use engine::types::{LogIndex, Term};
use engine::wal::{WalConfig, WalRecord, WalWriter};

/// Bytes of payload each configuration writes, so small entries get many records.
const BYTES_PER_RUN: usize = 64 << 20;

struct Figures {
    records_per_second: f64,
    megabytes_per_second: f64,
    memcpy_ratio: f64,
}

fn run(entry_bytes: usize, batch_count: usize) -> Figures {
    let records_count = (BYTES_PER_RUN / entry_bytes).max(batch_count);
    let data = vec![0xabu8; entry_bytes];
    let mut writer = WalWriter::new(WalConfig {
        segment_bytes_max: 64 << 20,
    });
    let mut disk = common::MemDisk::new();
    let started = Instant::now();
    let mut index = 0u64;
    while (index as usize) < records_count {
        let batch: Vec<WalRecord> = (0..batch_count)
            .map(|_| {
                index += 1;
                WalRecord::Entry(Entry {
                    term: Term(1),
                    index: LogIndex(index),
                    kind: EntryKind::Normal,
                    data: data.as_slice().into(),
                })
            })
            .collect();
        disk.apply_all(&writer.append_batch(&batch));
        // Release now and then so the in-memory disk does not hold the whole run.
        if index % 65_536 < batch_count as u64 {
            disk.apply_all(&writer.release_up_to(LogIndex(index)));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let written_bytes = index as f64 * entry_bytes as f64;

    let copy_started = Instant::now();
    let mut sink: Vec<u8> = Vec::with_capacity(1 << 20);
    for _ in 0..index {
        if sink.len() + entry_bytes > sink.capacity() {
            sink.clear();
        }
        sink.extend_from_slice(std::hint::black_box(&data));
    }
    std::hint::black_box(&sink);
    let copy_seconds = copy_started.elapsed().as_secs_f64().max(1e-9);
    Figures {
        records_per_second: index as f64 / seconds,
        megabytes_per_second: written_bytes / seconds / 1e6,
        memcpy_ratio: seconds / copy_seconds,
    }
}

fn main() {
    let mut parts = Vec::new();
    for entry_bytes in [100usize, 4096] {
        for batch_count in [1usize, 64] {
            let figures = run(entry_bytes, batch_count);
            parts.push(format!(
                "\"entry_{entry_bytes}B_batch_{batch_count}\":{{\"records_per_second\":{:.0},\
                 \"megabytes_per_second\":{:.1},\"time_vs_memcpy\":{:.1}}}",
                figures.records_per_second, figures.megabytes_per_second, figures.memcpy_ratio
            ));
        }
    }
    println!(
        "{{\"bench\":\"wal_append_sync_in_memory\",{}}}",
        parts.join(",")
    );
}
