//! Recovery: reads every segment of a [`DiskImage`] in order and rebuilds the durable raft
//! state. A torn tail (the end of the last segment, cut or garbled by a crash mid-write) is cut
//! off and reported with the operations that repair the file; any other damage is an error.
//!
//! It never guesses: a damaged record followed by data is corruption, not a torn tail, because
//! silently dropping it could drop acknowledged writes.

use std::collections::BTreeMap;

use super::error::{CorruptReason, WalError};
use super::format::{
    decode_segment_header, parse_segment_name, scan_frame, FrameScan, HeaderProblem, SegmentHeader,
    SEGMENT_HEADER_BYTES,
};
use super::{SnapshotMarker, WalRecord};
use crate::api::{DiskImage, DiskOp, FileName};
use crate::raft::{Entry, HardState};
use crate::types::LogIndex;

/// A torn tail that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment (always the last one).
    pub file: FileName,
    /// Where the good prefix ends.
    pub offset: u64,
    /// How many bytes after it were dropped.
    pub dropped_bytes: u64,
}

/// What recovery found and did, for the member's start-up report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalReport {
    /// The segments read, oldest first (a segment removed as torn is not listed).
    pub segment_files: Vec<FileName>,
    /// Intact records read.
    pub records_count: u64,
    /// The torn tail cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Leftover temporary files (an interrupted repair) that the repair ops remove.
    pub stray_files: Vec<FileName>,
}

impl WalReport {
    /// A stable multi-line rendering for logs and golden tests.
    pub fn describe(&self) -> String {
        let mut lines = vec![format!(
            "segments={} records={}",
            self.segment_files.len(),
            self.records_count
        )];
        for file in &self.segment_files {
            lines.push(format!("  segment {}", file.0));
        }
        if let Some(torn) = &self.torn_tail {
            lines.push(format!(
                "torn tail: {} cut at offset {}, {} bytes dropped",
                torn.file.0, torn.offset, torn.dropped_bytes
            ));
        }
        for file in &self.stray_files {
            lines.push(format!("stray file removed: {}", file.0));
        }
        lines.join("\n")
    }
}

/// The durable state a WAL held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest hard state, if one was ever written.
    pub hard_state: Option<HardState>,
    /// The latest snapshot marker, if any.
    pub snapshot_marker: Option<SnapshotMarker>,
    /// The log's entries, contiguous and ascending. They may start at or before the snapshot
    /// marker's index (entries the snapshot also covers are not dropped, so a member that falls
    /// back to an older snapshot still has them).
    pub entries: Vec<Entry>,
    /// What recovery found.
    pub report: WalReport,
    /// Operations the host must perform, in order, before any write of a new [`WalWriter`]:
    /// removing stray temporary files and rewriting a torn segment to its good prefix.
    ///
    /// [`WalWriter`]: super::WalWriter
    pub repair_ops: Vec<DiskOp>,
    /// The segments that remain after repair.
    segments: Vec<SegmentHeader>,
    /// The last index (entry or marker); see [`Recovered::last_index`].
    last_index: LogIndex,
    /// The last index as the writer saw it when it wrote the records so far: the index of the
    /// last entry record, even one that rewrote an entry the log already held (replay keeps
    /// its successors, so `last_index` may be higher), or a later marker's (even one that
    /// replaced a longer log, so `last_index` may be lower). A segment the writer rolled over
    /// to starts one past this; a segment opened at a restart, one past `last_index`.
    written_last_index: LogIndex,
    /// The last index of the released prefix: the first remaining segment starts one past it.
    /// The writer releases only entries a durable snapshot covers, so they were committed.
    released_through: LogIndex,
}

impl Recovered {
    /// The log's last index: the last entry's, or the snapshot marker's if that is later.
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// The segments that remain once the repair ops are done, oldest first.
    pub fn segments(&self) -> &[SegmentHeader] {
        &self.segments
    }
}

/// Reads the WAL in `image` (files named `wal-*`; other files are ignored).
pub fn recover(image: &DiskImage) -> Result<Recovered, WalError> {
    let mut recovered = Recovered::default();
    let segments = list_segments(image, &mut recovered)?;
    let segments_count = segments.len();
    for (position, (header, file)) in segments.into_iter().enumerate() {
        let bytes = &image[&file];
        let is_last = position + 1 == segments_count;
        let expected_first = (position > 0).then(|| ExpectedFirst {
            log_end: recovered.last_index.next(),
            written_end: recovered.written_last_index.next(),
        });
        match check_segment_header(&file, bytes, header, is_last, expected_first)? {
            HeaderCheck::Torn => {
                recovered
                    .repair_ops
                    .push(DiskOp::Remove { file: file.clone() });
                recovered.repair_ops.push(DiskOp::SyncDir);
                recovered.report.torn_tail = Some(TornTail {
                    file,
                    offset: 0,
                    dropped_bytes: bytes.len() as u64,
                });
                break;
            }
            HeaderCheck::Good => {}
        }
        if position == 0 {
            // Earlier segments may have been released; the log before this one ended here.
            recovered.last_index = LogIndex(header.first_index.0.saturating_sub(1));
            recovered.released_through = recovered.last_index;
        }
        // The writer names a segment after its own view of the log's end, so that view
        // continues from the name (whichever of the two accepted starts it was).
        recovered.written_last_index = LogIndex(header.first_index.0.saturating_sub(1));
        recovered.segments.push(header);
        recovered.report.segment_files.push(file.clone());
        read_segment_records(&file, bytes, is_last, &mut recovered)?;
    }
    assert!(recovered
        .entries
        .windows(2)
        .all(|pair| pair[0].index.next() == pair[1].index));
    Ok(recovered)
}

/// Finds the segments in sequence order, checks there is no hole, and queues removal of stray
/// temporary files.
fn list_segments(
    image: &DiskImage,
    recovered: &mut Recovered,
) -> Result<Vec<(SegmentHeader, FileName)>, WalError> {
    let mut by_sequence: BTreeMap<u64, (SegmentHeader, FileName)> = BTreeMap::new();
    for name in image.keys().filter(|name| name.0.starts_with("wal-")) {
        if name.0.ends_with(".tmp") {
            recovered.report.stray_files.push(name.clone());
            recovered
                .repair_ops
                .push(DiskOp::Remove { file: name.clone() });
            recovered.repair_ops.push(DiskOp::SyncDir);
            continue;
        }
        let corrupt = |reason| WalError::Corrupt {
            file: name.clone(),
            offset: 0,
            reason,
        };
        let header = parse_segment_name(name).ok_or_else(|| corrupt(CorruptReason::BadFileName))?;
        if by_sequence
            .insert(header.sequence, (header, name.clone()))
            .is_some()
        {
            return Err(corrupt(CorruptReason::DuplicateSequence));
        }
    }
    let segments: Vec<_> = by_sequence.into_values().collect();
    for pair in segments.windows(2) {
        if pair[0].0.sequence + 1 != pair[1].0.sequence {
            return Err(WalError::MissingSegment {
                file: pair[1].1.clone(),
                expected_sequence: pair[0].0.sequence + 1,
            });
        }
    }
    Ok(segments)
}

/// Where a segment after the first may start. The writer names a segment one past the log's
/// last index as *it* knows it, which is not always where replay's log ends, because the writer
/// knows no terms. Within one incarnation it is the last entry record written, or a later
/// marker (`written_end`). That is below replay's end after a rewrite of entries the log
/// already held (the batch saving a snapshot rewrites the log after it, a roll-over or a
/// buggified cut can fall inside it, and replay keeps the rewritten entries' successors, by log
/// matching: default scenario, seed 1), and above it right after the marker of a received
/// snapshot that replaced a longer log (seed 144 with `--buggify`). After a restart the writer
/// resumes from replay's end (`log_end`) and opens a new segment there. Any other start is a
/// gap or an overlap the writer never produces, and is refused.
#[derive(Clone, Copy)]
struct ExpectedFirst {
    log_end: LogIndex,
    written_end: LogIndex,
}

/// Whether a segment's header is usable or the whole segment is a torn creation.
enum HeaderCheck {
    Good,
    Torn,
}

/// Checks a segment's header against its name and the log so far. A last segment whose
/// header never fully reached the disk (short, or all zeros) is a torn creation.
fn check_segment_header(
    file: &FileName,
    bytes: &[u8],
    named: SegmentHeader,
    is_last: bool,
    expected_first: Option<ExpectedFirst>,
) -> Result<HeaderCheck, WalError> {
    let corrupt = |reason| WalError::Corrupt {
        file: file.clone(),
        offset: 0,
        reason,
    };
    let header_absent = bytes.len() < SEGMENT_HEADER_BYTES || bytes.iter().all(|byte| *byte == 0);
    if header_absent {
        return if is_last {
            Ok(HeaderCheck::Torn)
        } else {
            Err(corrupt(CorruptReason::HeaderTooShort))
        };
    }
    let header = match decode_segment_header(bytes) {
        Ok(header) => header,
        Err(HeaderProblem::Short) => unreachable!("length checked above"),
        Err(HeaderProblem::BadMagic) => return Err(corrupt(CorruptReason::BadMagic)),
        Err(HeaderProblem::Checksum) => return Err(corrupt(CorruptReason::HeaderChecksum)),
        Err(HeaderProblem::UnknownVersion(version)) => {
            return Err(WalError::UnknownVersion {
                file: file.clone(),
                version,
            })
        }
    };
    if header != named {
        return Err(corrupt(CorruptReason::HeaderNameMismatch));
    }
    if let Some(expected) = expected_first {
        if header.first_index != expected.log_end && header.first_index != expected.written_end {
            return Err(corrupt(CorruptReason::FirstIndexMismatch {
                expected: expected.log_end.0,
                found: header.first_index.0,
            }));
        }
    }
    Ok(HeaderCheck::Good)
}

/// Reads every record of one segment into `recovered`, cutting a torn tail of the last one.
fn read_segment_records(
    file: &FileName,
    bytes: &[u8],
    is_last: bool,
    recovered: &mut Recovered,
) -> Result<(), WalError> {
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        let corrupt = |reason| WalError::Corrupt {
            file: file.clone(),
            offset: offset as u64,
            reason,
        };
        let (torn, reason) = match scan_frame(bytes, offset) {
            FrameScan::End => return Ok(()),
            FrameScan::Frame {
                record_type,
                payload,
                next_offset,
            } => {
                let record = WalRecord::decode(record_type, payload).map_err(corrupt)?;
                apply_record(record, recovered).map_err(corrupt)?;
                recovered.report.records_count += 1;
                offset = next_offset;
                continue;
            }
            // A partial frame can only be the end of a write that never completed.
            FrameScan::ShortHeader | FrameScan::ShortPayload => {
                (true, CorruptReason::RecordTruncated)
            }
            // Damage is a torn tail only if nothing but zeros follows the damaged bytes.
            FrameScan::HeaderChecksum => (
                all_zero(&bytes[offset..]),
                CorruptReason::RecordHeaderChecksum,
            ),
            FrameScan::PayloadChecksum { end_offset } => (
                all_zero(&bytes[end_offset..]),
                CorruptReason::PayloadChecksum,
            ),
            FrameScan::TooLarge { payload_bytes } => {
                (false, CorruptReason::RecordTooLarge { payload_bytes })
            }
        };
        // Zoo site (etcd #10346-style repair): any damaged record of the last segment taken
        // for a torn tail, so the intact records after it are cut away with it.
        let torn = torn || (crate::bug!(CorruptRecordAsTornTail) && is_last);
        if !(torn && is_last) {
            return Err(corrupt(reason));
        }
        cut_torn_tail(file, bytes, offset, recovered);
        return Ok(());
    }
}

/// Records the torn tail at `offset` and the ops that rewrite the file to its good prefix
/// (there is no truncate op: a temporary copy is synced and renamed over the segment).
fn cut_torn_tail(file: &FileName, bytes: &[u8], offset: usize, recovered: &mut Recovered) {
    assert!(offset >= SEGMENT_HEADER_BYTES && offset < bytes.len());
    let temporary = FileName(format!("{}.tmp", file.0).into());
    recovered.repair_ops.extend([
        DiskOp::Create {
            file: temporary.clone(),
        },
        DiskOp::Append {
            file: temporary.clone(),
            bytes: bytes[..offset].to_vec(),
        },
        DiskOp::Sync {
            file: temporary.clone(),
        },
        DiskOp::Rename {
            from: temporary,
            to: file.clone(),
        },
        DiskOp::SyncDir,
    ]);
    recovered.report.torn_tail = Some(TornTail {
        file: file.clone(),
        offset: offset as u64,
        dropped_bytes: (bytes.len() - offset) as u64,
    });
}

/// Applies one intact record to the recovered state, with raft's overwrite rule for entries.
fn apply_record(record: WalRecord, recovered: &mut Recovered) -> Result<(), CorruptReason> {
    match record {
        WalRecord::Entry(entry) => {
            let index_max = recovered.last_index.0 + 1;
            if entry.index.0 == 0 || entry.index.0 > index_max {
                return Err(CorruptReason::EntryGap {
                    index_max,
                    found: entry.index.0,
                });
            }
            // The same entry written again (a batch that saves a snapshot re-writes the log
            // after it) replaces nothing: by log matching, an entry with the same index and term
            // is the same entry with the same successors. Truncating here let a torn tail of
            // the rewrite take synced entries after it with it (found by a crash point in the
            // single-member scenario, seed 97).
            let existing = recovered.entries.first().and_then(|first| {
                let offset = entry.index.0.checked_sub(first.index.0)?;
                recovered.entries.get(usize::try_from(offset).ok()?)
            });
            // Either way the writer now takes this entry for the log's last one.
            recovered.written_last_index = entry.index;
            // A rewrite of an entry whose segment was released since: the original is gone, but
            // a durable snapshot covered it, so it was committed and the rewrite (written while
            // the original was still held) is the same entry. Taking it for a conflicting one
            // dropped every later entry (single_member_crashes, seed 112, with buggify).
            let rewrites_released = entry.index <= recovered.released_through
                && recovered
                    .entries
                    .first()
                    .is_some_and(|first| entry.index < first.index);
            if rewrites_released {
                return Ok(());
            }
            if existing.is_some_and(|existing| existing.term == entry.term) {
                assert_eq!(existing.map(|existing| existing.index), Some(entry.index));
                return Ok(());
            }
            // An entry at i with another term replaces every entry from i on.
            match recovered.entries.first().map(|first| first.index) {
                Some(first) if first <= entry.index => {
                    let keep = (entry.index.0 - first.0) as usize;
                    recovered.entries.truncate(keep);
                }
                _ => recovered.entries.clear(),
            }
            if let Some(last) = recovered.entries.last() {
                assert!(last.index.next() == entry.index, "entries stay contiguous");
            }
            recovered.last_index = entry.index;
            recovered.entries.push(entry);
        }
        WalRecord::HardState(hard_state) => recovered.hard_state = Some(hard_state),
        // Each segment repeats the latest marker in its preamble; a repeat changes nothing.
        WalRecord::SnapshotMarker(marker) if recovered.snapshot_marker == Some(marker) => {}
        WalRecord::SnapshotMarker(marker) => {
            // A snapshot received from the leader replaces the whole log. Its marker follows
            // entries of the discarded history; if the one at the marker's index is from another
            // term, those entries must not come back, but the entries written after the marker
            // belong to the new log and must (dropping them later, by index alone, lost acknowledged
            // entries: found by the acknowledged_durability check).
            let replaced = recovered
                .entries
                .iter()
                .any(|entry| entry.index == marker.index && entry.term != marker.term);
            if marker.index > recovered.last_index || replaced {
                // The log was replaced by the snapshot: nothing before it is contiguous with
                // what comes next.
                recovered.entries.clear();
                recovered.last_index = marker.index;
            }
            // The writer knows no terms: a marker raises its last index but never lowers it, so
            // a segment it opens right after a marker that replaced a longer log is named past
            // that log's end. Only at a restart does it forget a replaced history
            // (`WalWriter::forget_after`); the next segment then starts one past the marker,
            // where `last_index` ends.
            recovered.written_last_index = recovered.written_last_index.max(marker.index);
            recovered.snapshot_marker = Some(marker);
        }
    }
    Ok(())
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| *byte == 0)
}
