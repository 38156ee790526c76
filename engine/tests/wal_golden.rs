//! Golden tests of what recovery reports for hand-made WAL and snapshot directories: torn
//! tails, corruption, missing segments, bad headers, unknown versions and record types, stray
//! files, and snapshot fallback. Each case renders through one stable `describe` helper.

mod common;

use engine::api::{DiskImage, DiskOp, FileName};
use engine::raft::{Entry, EntryKind, HardState, Snapshot, SnapshotMeta};
use engine::snap;
use engine::types::{LogIndex, NodeId, Term};
use engine::wal::{recover, WalConfig, WalRecord, WalWriter};

/// Renders a disk op in one line.
fn describe_op(op: &DiskOp) -> String {
    match op {
        DiskOp::Create { file } => format!("create {}", file.0),
        DiskOp::Append { file, bytes } => format!("append {} {}B", file.0, bytes.len()),
        DiskOp::Sync { file } => format!("sync {}", file.0),
        DiskOp::SyncDir => "sync-dir".to_string(),
        DiskOp::Rename { from, to } => format!("rename {} -> {}", from.0, to.0),
        DiskOp::Remove { file } => format!("remove {}", file.0),
    }
}

/// Recovers `image` and renders the outcome: the report, the state, and the repair ops; or
/// the error's message.
fn check(image: &DiskImage) -> String {
    let recovered = match recover(image) {
        Ok(recovered) => recovered,
        Err(error) => return format!("error: {error}"),
    };
    let mut lines = vec![recovered.report.describe()];
    if let Some(hard_state) = recovered.hard_state {
        lines.push(format!(
            "hard state: term={} vote={} commit={}",
            hard_state.term, hard_state.vote, hard_state.commit
        ));
    }
    if let Some(marker) = recovered.snapshot_marker {
        lines.push(format!("snapshot marker: {}/{}", marker.term, marker.index));
    }
    match (recovered.entries.first(), recovered.entries.last()) {
        (Some(first), Some(last)) => lines.push(format!(
            "entries: {}..={} ({})",
            first.index,
            last.index,
            recovered.entries.len()
        )),
        _ => lines.push("entries: none".to_string()),
    }
    for op in &recovered.repair_ops {
        lines.push(format!("repair: {}", describe_op(op)));
    }
    lines.join("\n")
}

/// Five batches of four 40-byte entries (each batch ends with a hard state), written with
/// 512-byte segments: a log of 20 entries that spans three segments.
fn clean_image() -> DiskImage {
    let mut disk = common::MemDisk::new();
    let mut writer = WalWriter::new(WalConfig {
        segment_bytes_max: 512,
    });
    for number in 0..5u64 {
        let mut records: Vec<WalRecord> = (1..=4)
            .map(|offset| {
                WalRecord::Entry(Entry {
                    term: Term(2),
                    index: LogIndex(number * 4 + offset),
                    kind: EntryKind::Normal,
                    data: vec![7; 40].into(),
                })
            })
            .collect();
        records.push(WalRecord::HardState(HardState {
            term: Term(2),
            vote: NodeId(1),
            commit: LogIndex(number * 4 + 4),
        }));
        disk.apply_all(&writer.append_batch(&records));
    }
    disk.image()
}

fn wal_file(image: &DiskImage, position: usize) -> FileName {
    image
        .keys()
        .filter(|name| name.0.starts_with("wal-"))
        .nth(position)
        .expect("segment exists")
        .clone()
}

fn last_wal_file(image: &DiskImage) -> FileName {
    image
        .keys()
        .rfind(|name| name.0.starts_with("wal-"))
        .expect("segment exists")
        .clone()
}

#[test]
fn wal_recovery_cases() {
    // Goal: pin down, for each hand-made damage, what recovery says and which repair it asks
    // for, so that a change in behaviour shows up as a reviewed diff. Method: start from a
    // clean three-segment log, apply one damage per case, render with `check`.
    let mut cases: Vec<(&str, DiskImage)> = Vec::new();
    cases.push(("empty directory", DiskImage::new()));
    let clean = clean_image();
    assert_eq!(clean.len(), 3, "the cases below assume three segments");
    cases.push(("clean three segments", clean));

    let mut image = clean_image();
    let last = last_wal_file(&image);
    let bytes = image.get_mut(&last).expect("bytes");
    bytes.truncate(bytes.len() - 5);
    cases.push(("partial last record", image));

    let mut image = clean_image();
    let bytes = image.get_mut(&last).expect("bytes");
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    bytes.extend_from_slice(&[0; 16]);
    cases.push(("bad checksum on the last record, zeros after", image));

    let mut image = clean_image();
    let bytes = image.get_mut(&last).expect("bytes");
    bytes[32 + 13 + 2] ^= 0x01;
    cases.push(("bad checksum on a middle record", image));

    let mut image = clean_image();
    let middle = wal_file(&image, 1);
    image.remove(&middle);
    cases.push(("missing middle segment", image));

    let mut image = clean_image();
    let first = wal_file(&image, 0);
    image.get_mut(&first).expect("bytes")[0] = b'X';
    cases.push(("bad magic", image));

    let mut image = clean_image();
    image.get_mut(&first).expect("bytes")[8] = 2;
    cases.push(("unknown format version", image));

    let mut image = clean_image();
    let payload = [1u8, 2, 3];
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.push(9);
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&frame);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(&payload);
    image
        .get_mut(&last)
        .expect("bytes")
        .extend_from_slice(&frame);
    cases.push(("unknown record type", image));

    let mut image = clean_image();
    image.insert(FileName(format!("{}.tmp", last.0).into()), vec![1, 2, 3]);
    // The next segment a writer would create after the 20 entries: sequence 4, index 21.
    image.insert(
        FileName("wal-0000000000000004-0000000000000015.log".into()),
        vec![],
    );
    cases.push(("stray temp file and an empty new segment", image));

    let rendered: Vec<String> = cases
        .iter()
        .map(|(name, image)| format!("## {name}\n{}", check(image)))
        .collect();
    insta::assert_snapshot!("wal_recovery_cases", rendered.join("\n\n"));
}

fn snapshot_at(index: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(3),
            conf: Default::default(),
        },
        data: vec![5; 10],
    }
}

fn image_with(snapshots: &[u64]) -> DiskImage {
    let mut disk = common::MemDisk::new();
    for index in snapshots {
        disk.apply_all(&snap::write_ops(&snapshot_at(*index)));
    }
    disk.image()
}

fn check_snap(image: &DiskImage) -> String {
    match snap::load_newest(image) {
        Err(error) => format!("error: {error}"),
        Ok(load) => {
            let newest = load.newest.map_or("none".to_string(), |(file, snapshot)| {
                format!("{} (index {})", file.0, snapshot.meta.index)
            });
            format!("loaded: {newest}\n{}", load.report.describe())
        }
    }
}

#[test]
fn snapshot_loading_cases() {
    // Goal: pin down snapshot loading: the newest valid one wins, a damaged newest one falls
    // back with a note only if an older valid one exists, a newer format refuses; and cleanup
    // keeps the newest and removes temp files. Method: write snapshots with `write_ops` on
    // the in-memory disk, damage files by hand, render each outcome.
    let newest = snap::snap_name(Term(3), LogIndex(20));
    let mut cases: Vec<(&str, DiskImage)> = Vec::new();
    cases.push(("no snapshot", DiskImage::new()));
    cases.push(("two valid", image_with(&[10, 20])));
    let mut image = image_with(&[10, 20]);
    *image
        .get_mut(&newest)
        .expect("bytes")
        .last_mut()
        .expect("byte") ^= 1;
    cases.push(("newest damaged, older valid", image));
    let mut image = image_with(&[20]);
    image.get_mut(&newest).expect("bytes").truncate(30);
    cases.push(("only snapshot cut short", image));
    let mut image = image_with(&[10, 20]);
    image.get_mut(&newest).expect("bytes")[8] = 7;
    cases.push(("newest has an unknown version", image));

    let mut rendered: Vec<String> = cases
        .iter()
        .map(|(name, image)| format!("## {name}\n{}", check_snap(image)))
        .collect();
    let mut files: Vec<FileName> = image_with(&[10, 20, 30]).into_keys().collect();
    files.push(FileName(
        "snap-0000000000000003-0000000000000028.snap.tmp".into(),
    ));
    let cleanup: Vec<String> = snap::cleanup_ops(&files, 2)
        .iter()
        .map(describe_op)
        .collect();
    rendered.push(format!("## cleanup keeping 2\n{}", cleanup.join("\n")));
    insta::assert_snapshot!("snapshot_loading_cases", rendered.join("\n\n"));
}
