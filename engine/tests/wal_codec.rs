//! Property tests of the WAL's framing and recovery against a dumb model: random record
//! sequences round-trip, any cut of the final record loses exactly that record, and any single
//! flipped bit is either repaired as a torn tail of the last record or refused as corruption.

mod common;

use std::collections::BTreeMap;

use common::MemDisk;
use engine::api::{DiskImage, FileName};
use engine::raft::{Entry, EntryKind, HardState};
use engine::types::{LogIndex, NodeId, Term};
use engine::wal::{recover, Recovered, SnapshotMarker, WalConfig, WalRecord, WalWriter};
use proptest::prelude::*;

/// A step of a random history, turned into a valid record by [`build_records`].
#[derive(Clone, Debug)]
enum Step {
    /// Append an entry after the last one, with this many data bytes.
    Append(usize),
    /// Overwrite: an entry this many positions back from the end (raft truncation).
    Overwrite(u64),
    HardState(u64),
    /// A snapshot marker this many indexes ahead of the last (0 = at the last index).
    Marker(u64),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..300).prop_map(Step::Append),
        1 => (0u64..5).prop_map(Step::Overwrite),
        2 => (0u64..1000).prop_map(Step::HardState),
        1 => (0u64..4).prop_map(Step::Marker),
    ]
}

/// Turns steps into records that obey the writer's rules, batched in groups.
fn build_records(steps: &[Step], batch_sizes: &[usize]) -> Vec<Vec<WalRecord>> {
    let mut last_index = 0u64;
    let mut marker_index = 0u64;
    let mut term = 1u64;
    let mut records = Vec::new();
    for step in steps {
        let record = match *step {
            Step::Append(length) => {
                last_index += 1;
                entry(last_index, term, length)
            }
            Step::Overwrite(back) => {
                term += 1;
                // Raft never overwrites what a snapshot covers (snapshots are committed).
                last_index = (last_index.saturating_sub(back)).max(marker_index + 1);
                entry(last_index, term, 7)
            }
            Step::HardState(commit) => WalRecord::HardState(HardState {
                term: Term(term),
                vote: NodeId(commit % 3),
                commit: LogIndex(commit),
            }),
            Step::Marker(ahead) => {
                marker_index = marker_index.max(last_index + ahead);
                last_index = last_index.max(marker_index);
                WalRecord::SnapshotMarker(SnapshotMarker {
                    index: LogIndex(marker_index),
                    term: Term(term),
                })
            }
        };
        records.push(record);
    }
    let mut batches = Vec::new();
    let mut rest = records.as_slice();
    for size in batch_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (*size).clamp(1, rest.len());
        batches.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    batches
}

fn entry(index: u64, term: u64, length: usize) -> WalRecord {
    WalRecord::Entry(Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: (0..length)
            .map(|byte| (byte as u8) ^ (index as u8))
            .collect(),
    })
}

/// The dumb model: what recovery must return for records applied in order.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    hard_state: Option<HardState>,
    marker: Option<SnapshotMarker>,
    entries: Vec<Entry>,
}

fn model<'a>(records: impl IntoIterator<Item = &'a WalRecord>) -> Expected {
    let mut log: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut last_index = 0;
    let mut expected = Expected {
        hard_state: None,
        marker: None,
        entries: Vec::new(),
    };
    for record in records {
        match record {
            WalRecord::Entry(entry) => {
                log.retain(|index, _| *index < entry.index.0);
                log.insert(entry.index.0, entry.clone());
                last_index = entry.index.0;
            }
            WalRecord::HardState(hard_state) => expected.hard_state = Some(*hard_state),
            WalRecord::SnapshotMarker(marker) => {
                if marker.index.0 > last_index {
                    log.clear();
                    last_index = marker.index.0;
                }
                expected.marker = Some(*marker);
            }
        }
    }
    expected.entries = log.into_values().collect();
    expected
}

fn observed(recovered: &Recovered) -> Expected {
    Expected {
        hard_state: recovered.hard_state,
        marker: recovered.snapshot_marker,
        entries: recovered.entries.clone(),
    }
}

/// Writes the batches to a fresh disk, every op completed.
fn write_all(batches: &[Vec<WalRecord>], segment_bytes_max: u64) -> MemDisk {
    let mut disk = MemDisk::new();
    let mut writer = WalWriter::new(WalConfig { segment_bytes_max });
    for batch in batches {
        disk.apply_all(&writer.append_batch(batch));
    }
    disk
}

fn wal_files(image: &DiskImage) -> Vec<FileName> {
    image
        .keys()
        .filter(|name| name.0.starts_with("wal-"))
        .cloned()
        .collect()
}

fn frame_bytes(record: &WalRecord) -> usize {
    let mut frame = Vec::new();
    record.encode_frame(&mut frame);
    frame.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn records_round_trip(
        steps in prop::collection::vec(step_strategy(), 1..120),
        batch_sizes in prop::collection::vec(1usize..20, 1..5),
    ) {
        // Goal: whatever valid records are written, recovery returns exactly what the model
        // says, across segment roll-overs. Method: random steps -> records -> batches, written
        // with small segments, recovered from the full image and compared with the model.
        let batches = build_records(&steps, &batch_sizes);
        let disk = write_all(&batches, 4096);
        let recovered = recover(&disk.image()).expect("a cleanly written WAL recovers");
        prop_assert_eq!(&recovered.report.torn_tail, &None);
        prop_assert!(recovered.repair_ops.is_empty());
        prop_assert_eq!(observed(&recovered), model(batches.iter().flatten()));
    }

    #[test]
    fn any_cut_of_the_final_record_loses_only_it(
        steps in prop::collection::vec(step_strategy(), 1..60),
        cut_fraction in 0.0f64..1.0,
    ) {
        // Goal: a crash in the middle of the last record is a torn tail that costs exactly that
        // record. Method: write everything in one batch into one big segment, cut the file at a
        // random point strictly inside the final frame, recover, compare with the model of all
        // records but the last, then apply the repair ops and check the file recovers cleanly.
        let batches = build_records(&steps, &[1000]);
        let records: Vec<WalRecord> = batches.concat();
        let mut disk_image = write_all(&batches, 1 << 30).image();
        let file = wal_files(&disk_image).pop().expect("one segment");
        let bytes = disk_image.get_mut(&file).expect("segment bytes");
        let last_frame = frame_bytes(records.last().expect("a record"));
        let frame_start = bytes.len() - last_frame;
        let cut = frame_start + 1 + ((last_frame - 1) as f64 * cut_fraction) as usize;
        prop_assume!(cut < bytes.len());
        bytes.truncate(cut);
        let recovered = recover(&disk_image).expect("a torn tail is not corruption");
        let torn = recovered.report.torn_tail.clone().expect("torn tail reported");
        prop_assert_eq!(torn.offset as usize, frame_start);
        prop_assert_eq!(torn.dropped_bytes as usize, cut - frame_start);
        prop_assert_eq!(observed(&recovered), model(&records[..records.len() - 1]));
        let mut repaired = MemDisk::from_image(&disk_image);
        repaired.apply_all(&recovered.repair_ops);
        let again = recover(&repaired.image()).expect("the repaired WAL recovers");
        prop_assert_eq!(&again.report.torn_tail, &None);
        prop_assert_eq!(observed(&again), observed(&recovered));
    }

    #[test]
    fn any_flipped_bit_is_detected(
        steps in prop::collection::vec(step_strategy(), 1..60),
        batch_sizes in prop::collection::vec(1usize..10, 1..4),
        file_pick in any::<prop::sample::Index>(),
        bit_pick in any::<prop::sample::Index>(),
    ) {
        // Goal: damage is never silently accepted as different data. Method: flip one random
        // bit of one random segment; recovery must either fail, or (only when the bit lies in
        // the final record of the last segment) report a torn tail and return the model of all
        // records but the last.
        let batches = build_records(&steps, &batch_sizes);
        let records: Vec<WalRecord> = batches.concat();
        let mut image = write_all(&batches, 1024).image();
        let files = wal_files(&image);
        let file = file_pick.get(&files).clone();
        let is_last_file = Some(&file) == files.last();
        let bytes = image.get_mut(&file).expect("segment bytes");
        let bit = bit_pick.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let in_last_record =
            is_last_file && bit / 8 >= bytes.len() - frame_bytes(records.last().expect("record"));
        match recover(&image) {
            Err(_) => {}
            Ok(recovered) => {
                prop_assert!(in_last_record, "a flip outside the last record was accepted");
                prop_assert!(recovered.report.torn_tail.is_some());
                prop_assert_eq!(observed(&recovered), model(&records[..records.len() - 1]));
            }
        }
    }
}
