//! Crash tests of the WAL and snapshot files on the in-memory disk: what a crash before or
//! after a batch's sync leaves, torn appends at every byte, repeated incarnations, and a
//! snapshot followed by releasing old segments.

mod common;

use common::MemDisk;
use engine::raft::{ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta};
use engine::snap;
use engine::types::{LogIndex, NodeId, Term};
use engine::wal::{recover, SnapshotMarker, WalConfig, WalRecord, WalWriter};

const CONFIG: WalConfig = WalConfig {
    segment_bytes_max: 2048,
};

fn entry(index: u64) -> Entry {
    Entry {
        term: Term(1 + index / 50),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: vec![index as u8; 90].into(),
    }
}

/// A batch of `count` entries after `last`, followed by a hard state committing them.
fn batch(last: u64, count: u64) -> Vec<WalRecord> {
    let mut records: Vec<WalRecord> = (last + 1..=last + count)
        .map(|index| WalRecord::Entry(entry(index)))
        .collect();
    records.push(WalRecord::HardState(HardState {
        term: Term(1 + (last + count) / 50),
        vote: NodeId(1),
        commit: LogIndex(last + count),
    }));
    records
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|entry| entry.index.0).collect()
}

#[test]
fn crash_before_and_after_sync() {
    // Goal: synced batches survive a crash; an unsynced one is lost (or, if the batch spanned a
    // roll-over, only a prefix survives), never reordered or partial in the middle. Method:
    // write 20 synced batches over several segments, then one batch without its final Sync,
    // crash, recover; then redo the batch with its Sync and check everything is there.
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    for number in 0..20 {
        disk.apply_all(&writer.append_batch(&batch(number * 5, 5)));
    }
    assert!(writer.segment_files().len() >= 4, "batches rolled over");
    let unsynced = writer.append_batch(&batch(100, 5));
    assert!(matches!(
        unsynced.last(),
        Some(engine::api::DiskOp::Sync { .. })
    ));
    disk.apply_all(&unsynced[..unsynced.len() - 1]);
    disk.crash(None);
    let recovered = recover(&disk.image()).expect("recovers after a crash");
    let last = recovered.entries.last().expect("entries").index.0;
    assert!(
        (100..=105).contains(&last),
        "synced prefix kept, got {last}"
    );
    assert_eq!(indexes(&recovered.entries), (1..=last).collect::<Vec<_>>());
    assert_eq!(recovered.entries[99], entry(100));
    assert!(recovered.hard_state.expect("hard state").commit.0 >= 100);

    disk.apply_all(&recovered.repair_ops);
    let mut writer = WalWriter::resume(CONFIG, &recovered);
    disk.apply_all(&writer.append_batch(&batch(last, 5)));
    disk.crash(None);
    let recovered = recover(&disk.image()).expect("recovers after a synced batch");
    assert_eq!(
        indexes(&recovered.entries),
        (1..=last + 5).collect::<Vec<_>>()
    );
    assert_eq!(recovered.hard_state.expect("hard state").commit.0, last + 5);
}

#[test]
fn torn_append_at_every_byte() {
    // Goal: a crash that tears the last append at any byte recovers the synced records plus
    // whole records of the torn batch, repairs the file, and the next incarnation's writes
    // recover cleanly after it. Method: for every tear point of one unsynced 3-entry batch,
    // crash, recover, repair, resume, write and sync one more batch, crash, recover again.
    let mut base = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    base.apply_all(&writer.append_batch(&batch(0, 4)));
    let ops = writer.append_batch(&batch(4, 3));
    let append_bytes: usize = ops
        .iter()
        .map(|op| match op {
            engine::api::DiskOp::Append { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    for tear_bytes in 0..=append_bytes {
        let mut disk = base.clone();
        disk.apply_all(&ops[..ops.len() - 1]);
        disk.crash(Some(tear_bytes));
        let recovered = recover(&disk.image()).expect("a torn append is a torn tail");
        let last = recovered.last_index().0;
        assert!((4..=7).contains(&last), "tear {tear_bytes}: last {last}");
        assert_eq!(indexes(&recovered.entries), (1..=last).collect::<Vec<_>>());
        disk.apply_all(&recovered.repair_ops);
        let mut writer = WalWriter::resume(CONFIG, &recovered);
        disk.apply_all(&writer.append_batch(&batch(last, 2)));
        disk.crash(None);
        let again = recover(&disk.image()).expect("the next incarnation recovers");
        assert_eq!(again.report.torn_tail, None, "tear {tear_bytes}");
        assert_eq!(indexes(&again.entries), (1..=last + 2).collect::<Vec<_>>());
    }
}

#[test]
fn crash_during_roll_over_and_repair() {
    // Goal: a crash at any op boundary of a batch that rolls over (and of the repair that
    // follows) never makes the WAL unrecoverable or loses a synced batch. Method: for every
    // prefix of the ops of a batch that crosses a segment boundary, apply it, crash, recover
    // (must succeed, keep the 10 synced entries), then crash again halfway through the repair
    // ops and recover once more.
    let mut base = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    base.apply_all(&writer.append_batch(&batch(0, 10)));
    let ops = writer.append_batch(&batch(10, 30));
    assert!(ops
        .iter()
        .any(|op| matches!(op, engine::api::DiskOp::Create { .. })));
    for applied in 0..=ops.len() {
        let mut disk = base.clone();
        disk.apply_all(&ops[..applied]);
        disk.crash(Some(100));
        let recovered = recover(&disk.image()).expect("recovers at every op boundary");
        assert!(
            recovered.last_index().0 >= 10,
            "synced batch lost at op {applied}"
        );
        let repair = &recovered.repair_ops;
        disk.apply_all(&repair[..repair.len() / 2]);
        disk.crash(None);
        let again = recover(&disk.image()).expect("recovers after a crash mid-repair");
        assert_eq!(again.entries, recovered.entries, "op {applied}");
    }
}

#[test]
fn snapshot_then_release_old_segments() {
    // Goal: after a durable snapshot, releasing segments below it removes files but keeps the
    // hard state, the marker and every entry after the snapshot, across a crash. Method: write
    // 200 entries, write a snapshot at 150 and its marker, release up to 150, write 10 more,
    // crash, load the snapshot and recover the WAL.
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    for number in 0..40 {
        disk.apply_all(&writer.append_batch(&batch(number * 5, 5)));
    }
    let segments_before = writer.segment_files().len();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(150),
            term: entry(150).term,
            conf: ConfState {
                voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                learners: vec![],
            },
        },
        data: b"state at 150".to_vec(),
    };
    disk.apply_all(&snap::write_ops(&snapshot));
    let marker = SnapshotMarker {
        index: LogIndex(150),
        term: snapshot.meta.term,
    };
    disk.apply_all(&writer.append_batch(&[WalRecord::SnapshotMarker(marker)]));
    let released = writer.release_up_to(LogIndex(150));
    disk.apply_all(&released);
    assert!(
        writer.segment_files().len() < segments_before,
        "something released"
    );
    disk.apply_all(&writer.append_batch(&batch(200, 10)));
    disk.crash(None);

    let image = disk.image();
    let loaded = snap::load_newest(&image).expect("snapshot loads");
    assert_eq!(loaded.newest.map(|(_, loaded)| loaded), Some(snapshot));
    let recovered = recover(&image).expect("released WAL recovers");
    assert_eq!(recovered.snapshot_marker, Some(marker));
    assert_eq!(
        recovered.hard_state.expect("hard state").commit,
        LogIndex(210)
    );
    let first = recovered.entries.first().expect("entries").index.0;
    assert!(
        first <= 151,
        "entries after the snapshot kept, first {first}"
    );
    assert!(first > 1, "old entries released");
    assert_eq!(
        indexes(&recovered.entries),
        (first..=210).collect::<Vec<_>>()
    );
    assert_eq!(recovered.report.segment_files, writer.segment_files());
}

#[test]
fn received_snapshot_replaces_a_conflicting_log_but_keeps_what_follows_its_marker() {
    // Goal: a snapshot received from a leader replaces a log whose entry at the snapshot's index
    // is from another term; recovery drops that discarded history but keeps every entry written
    // after the marker (a regression: recovery once dropped those too, by index alone, and a
    // follower lost entries it had acknowledged; seed 228 of the default scenario).
    // Method: write 20 entries, then a marker at 10 whose term differs from entry 10's, then
    // entries 11..=15 of the new history; recover and compare.
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    disk.apply_all(&writer.append_batch(&batch(0, 20)));
    let marker = SnapshotMarker {
        index: LogIndex(10),
        term: Term(7),
    };
    let new_history: Vec<WalRecord> = std::iter::once(WalRecord::SnapshotMarker(marker))
        .chain((11..=15).map(|index| {
            WalRecord::Entry(Entry {
                term: Term(7),
                ..entry(index)
            })
        }))
        .collect();
    disk.apply_all(&writer.append_batch(&new_history));
    disk.crash(None);
    let recovered = recover(&disk.image()).expect("recovers");
    assert_eq!(recovered.snapshot_marker, Some(marker));
    assert_eq!(indexes(&recovered.entries), (11..=15).collect::<Vec<_>>());
    assert!(recovered.entries.iter().all(|entry| entry.term == Term(7)));
    assert_eq!(recovered.last_index(), LogIndex(15));
}

#[test]
fn torn_rewrite_of_synced_entries_keeps_them() {
    // Goal: a batch that writes already-synced entries again (as the batch saving a snapshot
    // does with the log after it) and is torn by a crash never takes the synced entries with
    // it. A regression: replay once let the rewritten first entry truncate everything after
    // it, so a torn rewrite lost entries whose sync had completed (and which were applied).
    // Method: sync entries 1..=10, then write a marker at 5 and entries 6..=10 again without
    // syncing, tear the append at every byte, and recover each time.
    let mut base = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    base.apply_all(&writer.append_batch(&batch(0, 10)));
    let marker = SnapshotMarker {
        index: LogIndex(5),
        term: entry(5).term,
    };
    let rewrite: Vec<WalRecord> = std::iter::once(WalRecord::SnapshotMarker(marker))
        .chain((6..=10).map(|index| WalRecord::Entry(entry(index))))
        .collect();
    let ops = writer.append_batch(&rewrite);
    let append_bytes: usize = ops
        .iter()
        .map(|op| match op {
            engine::api::DiskOp::Append { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    for tear in 0..=append_bytes {
        let mut disk = MemDisk::from_image(&base.image());
        disk.apply_all(&ops[..ops.len() - 1]);
        disk.crash(Some(tear));
        let recovered = recover(&disk.image()).expect("a torn tail recovers");
        assert_eq!(
            indexes(&recovered.entries),
            (1..=10).collect::<Vec<_>>(),
            "torn at {tear}"
        );
    }
}

#[test]
fn marker_written_over_a_stale_history_lets_the_new_log_continue_across_segments() {
    // Goal: when a restarted member finds a received snapshot whose WAL marker was lost, over a
    // WAL holding a discarded history past it, it writes the marker and forgets that history
    // (`WalWriter::forget_after`); the entries it writes next, across segment roll-overs,
    // recover contiguous after the snapshot, and the stale entries never come back. A
    // regression: without the marker the next recovery kept the stale entry at the snapshot's
    // index and dropped everything after it. NB: no old length here makes a roll-over fall
    // right after the marker, where `forget_after` decides the new segment's first index; the
    // writer's own assertions guard that case.
    // Method: for old histories of 25 to 60 entries (roll-overs at many places), resume a writer from their recovery, write the
    // marker at 20 with another term, forget after it, write 21..=60 of the new history in
    // batches of five; recover and compare.
    for old_count in 25..=60 {
        let mut disk = MemDisk::new();
        let mut writer = WalWriter::new(CONFIG);
        disk.apply_all(&writer.append_batch(&batch(0, old_count)));
        let recovered = recover(&disk.image()).expect("recovers");
        let mut writer = WalWriter::resume(CONFIG, &recovered);
        let marker = SnapshotMarker {
            index: LogIndex(20),
            term: Term(9),
        };
        disk.apply_all(&writer.append_batch(&[WalRecord::SnapshotMarker(marker)]));
        writer.forget_after(marker.index);
        for first in (21..=60).step_by(5) {
            let records: Vec<WalRecord> = (first..first + 5)
                .map(|index| {
                    WalRecord::Entry(Entry {
                        term: Term(9),
                        ..entry(index)
                    })
                })
                .collect();
            disk.apply_all(&writer.append_batch(&records));
        }
        disk.crash(None);
        let recovered = recover(&disk.image())
            .unwrap_or_else(|error| panic!("old history of {old_count}: {error}"));
        assert_eq!(
            indexes(&recovered.entries),
            (21..=60).collect::<Vec<_>>(),
            "old history of {old_count}"
        );
        assert!(recovered.entries.iter().all(|entry| entry.term == Term(9)));
        assert_eq!(recovered.snapshot_marker, Some(marker));
    }
}

#[test]
fn roll_over_inside_a_rewrite_of_the_log_recovers() {
    // Goal: a batch that writes already-synced entries again (the batch saving a snapshot
    // rewrites the log after it) and rolls over to a new segment in the middle of the rewrite
    // recovers, with every entry, whether or not a crash tears it. A regression: the writer
    // named the new segment one past the last entry it had written (a rewritten one), replay
    // kept the rewritten entries' successors, and recovery refused the segment as starting
    // below the log's end ("segment starts at index 464 but the log before it ends at 466",
    // the default scenario, seed 1, with buggify's early segment cut).
    // Method: for synced logs of 10 to 30 entries, write a marker at 5 and the log after it
    // again plus five new entries, in one batch that rolls over at some point of the rewrite;
    // recover it whole, then torn at every byte of the unsynced batch.
    for old_count in 10..=30 {
        let mut base = MemDisk::new();
        let mut writer = WalWriter::new(CONFIG);
        base.apply_all(&writer.append_batch(&batch(0, old_count)));
        let marker = SnapshotMarker {
            index: LogIndex(5),
            term: entry(5).term,
        };
        let rewrite: Vec<WalRecord> = std::iter::once(WalRecord::SnapshotMarker(marker))
            .chain((6..=old_count + 5).map(|index| WalRecord::Entry(entry(index))))
            .collect();
        let ops = writer.append_batch(&rewrite);
        let mut whole = MemDisk::from_image(&base.image());
        whole.apply_all(&ops);
        whole.crash(None);
        let recovered = recover(&whole.image())
            .unwrap_or_else(|error| panic!("old log of {old_count}: {error}"));
        assert_eq!(
            indexes(&recovered.entries),
            (1..=old_count + 5).collect::<Vec<_>>(),
            "old log of {old_count}"
        );
        // The writer that resumes from it continues the log, and that recovers too.
        let mut writer = WalWriter::resume(CONFIG, &recovered);
        whole.apply_all(&writer.append_batch(&batch(old_count + 5, 3)));
        whole.crash(None);
        let recovered = recover(&whole.image())
            .unwrap_or_else(|error| panic!("old log of {old_count}, resumed: {error}"));
        assert_eq!(
            indexes(&recovered.entries),
            (1..=old_count + 8).collect::<Vec<_>>(),
            "old log of {old_count}, resumed"
        );
        let append_bytes: usize = ops
            .iter()
            .map(|op| match op {
                engine::api::DiskOp::Append { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        for tear in (0..=append_bytes).step_by(7) {
            let mut disk = MemDisk::from_image(&base.image());
            disk.apply_all(&ops[..ops.len() - 1]);
            disk.crash(Some(tear));
            let recovered = recover(&disk.image())
                .unwrap_or_else(|error| panic!("old log of {old_count}, torn at {tear}: {error}"));
            let got = indexes(&recovered.entries);
            assert_eq!(
                got[..old_count as usize],
                (1..=old_count).collect::<Vec<_>>(),
                "old log of {old_count}, torn at {tear}"
            );
            assert!(got.windows(2).all(|pair| pair[0] + 1 == pair[1]));
        }
    }
}

#[test]
fn a_segment_starting_away_from_the_log_end_is_refused() {
    // Goal: recovery stays strict about segment starts: a segment named past the log's end (a
    // gap) or below both the log's end and the last entry written (an overlap the writer never
    // produces) is refused, naming the file and offset 0.
    // Method: write two segments, then rename the second to claim other first indexes (the
    // header written to match the name, so only the start is wrong).
    use engine::api::FileName;
    use engine::wal::{parse_segment_name, segment_name, SegmentHeader};
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    disk.apply_all(&writer.append_batch(&batch(0, 12)));
    disk.apply_all(&writer.append_batch(&batch(12, 12)));
    disk.crash(None);
    let image = disk.image();
    let names: Vec<FileName> = image.keys().cloned().collect();
    assert!(names.len() >= 2, "the batches span segments: {names:?}");
    let second = parse_segment_name(&names[1]).expect("a segment name");
    for first in [second.first_index.0 - 1, second.first_index.0 + 1] {
        let header = SegmentHeader {
            first_index: LogIndex(first),
            ..second
        };
        let mut image = image.clone();
        let mut bytes = image.remove(&names[1]).expect("present");
        let renamed = segment_name(header);
        // The header as the format lays it out: magic, version, sequence, first index, CRC32C.
        bytes[20..28].copy_from_slice(&first.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        image.insert(renamed.clone(), bytes);
        let error = recover(&image).expect_err("refused").to_string();
        assert!(
            error.contains(&*renamed.0) && error.contains("byte offset 0"),
            "{error}"
        );
    }
}

#[test]
fn roll_over_right_after_a_received_snapshot_marker_recovers() {
    // Goal: a snapshot received from the leader replaces a longer, conflicting log; a segment
    // the writer opens right after its marker (a roll-over, or buggify's early cut) is named
    // after the replaced log's end (the writer knows no terms), past the end of the log replay
    // rebuilt; it recovers, and so does the log written after it. A regression: recovery
    // refused it ("segment starts at index 1266 but the log before it ends at 1261": default
    // scenario, seed 144 with --buggify).
    // Method: for old logs of 20 to 45 entries (term 1), write a received snapshot's marker at
    // 15 with term 9 and the new log 16..=25 in one batch, as `Storage::persist` does; roll-overs
    // fall at many places, among them right after the marker (old log of 36, which recovery
    // refused before the fix); recover and compare.
    for old_count in 20..=45 {
        let mut disk = MemDisk::new();
        let mut writer = WalWriter::new(CONFIG);
        disk.apply_all(&writer.append_batch(&batch(0, old_count)));
        let marker = SnapshotMarker {
            index: LogIndex(15),
            term: Term(9),
        };
        let new_entry = |index| Entry {
            term: Term(9),
            ..entry(index)
        };
        let records: Vec<WalRecord> = std::iter::once(WalRecord::SnapshotMarker(marker))
            .chain((16..=25).map(|index| WalRecord::Entry(new_entry(index))))
            .collect();
        disk.apply_all(&writer.append_batch(&records));
        disk.apply_all(&writer.append_batch(&[WalRecord::Entry(new_entry(26))]));
        disk.crash(None);
        let recovered = recover(&disk.image())
            .unwrap_or_else(|error| panic!("old log of {old_count}: {error}"));
        assert_eq!(
            indexes(&recovered.entries),
            (16..=26).collect::<Vec<_>>(),
            "old log of {old_count}"
        );
        assert!(recovered.entries.iter().all(|entry| entry.term == Term(9)));
    }
}

#[test]
fn rewrite_of_entries_whose_segments_were_released_later_recovers() {
    // Goal: a rewrite of entries the log already held (a restart's batch after a snapshot
    // marker) still recovers once the segments that held the originals are released. A
    // regression: replay compared the rewritten entry with the entries it still held, found
    // none at that index (released), took the rewrite for a conflicting history and dropped
    // every later entry; the next segment then started "at index 889 but the log before it ends
    // at 763" (single_member_crashes, seed 112, with buggify).
    // Method: write a log over several segments; a restart writes a marker and rewrites a few
    // entries after it, crashes; the next incarnation appends more; the writer then releases
    // every segment whose entries are at or below a point after the rewritten ones. Recovery
    // must keep the whole log from the first remaining segment on, at every step.
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(CONFIG);
    for number in 0..10 {
        disk.apply_all(&writer.append_batch(&batch(number * 5, 5)));
    }
    disk.crash(None);
    let recovered = recover(&disk.image()).expect("the first log recovers");
    let mut writer = WalWriter::resume(CONFIG, &recovered);
    let marker = SnapshotMarker {
        index: LogIndex(5),
        term: entry(5).term,
    };
    let rewrite: Vec<WalRecord> = std::iter::once(WalRecord::SnapshotMarker(marker))
        .chain((6..=8).map(|index| WalRecord::Entry(entry(index))))
        .collect();
    disk.apply_all(&writer.append_batch(&rewrite));
    disk.crash(None);
    let recovered = recover(&disk.image()).expect("the rewrite recovers");
    assert_eq!(indexes(&recovered.entries), (1..=50).collect::<Vec<_>>());
    let mut writer = WalWriter::resume(CONFIG, &recovered);
    disk.apply_all(&writer.append_batch(&batch(50, 5)));
    let segments_before = writer.segment_files().len();
    disk.apply_all(&writer.release_up_to(LogIndex(30)));
    assert!(
        writer.segment_files().len() < segments_before,
        "some segment was released"
    );
    disk.crash(None);
    let recovered =
        recover(&disk.image()).unwrap_or_else(|error| panic!("after the release: {error}"));
    let got = indexes(&recovered.entries);
    assert!(got.first().is_some_and(|first| *first > 8), "{got:?}");
    assert_eq!(got.last(), Some(&55), "{got:?}");
    assert!(got.windows(2).all(|pair| pair[0] + 1 == pair[1]), "{got:?}");
    assert_eq!(recovered.last_index(), LogIndex(55));
}
