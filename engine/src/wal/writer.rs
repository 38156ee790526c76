//! The WAL writer: turns batches of records into disk operations, rolls over to a new segment
//! when the current one is full, and releases segments a snapshot has made unnecessary.
//!
//! It never reads the disk and never waits: it only knows what it asked for. It does not decide
//! when a batch is durable; the host's completion of the batch's final `Sync` says so.

use super::format::{
    encode_segment_header, segment_name, SegmentHeader, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::{Recovered, SnapshotMarker, WalRecord, WalRecordRef};
use crate::api::{DiskOp, FileName};
use crate::raft::HardState;
use crate::types::LogIndex;

/// A frame's bytes beyond an entry's data, generously: the frame header plus the encoded
/// term, index, kind and data length (or a whole hard state or snapshot marker).
const RECORD_FRAME_SLACK_BYTES: usize = RECORD_HEADER_BYTES + 40;

/// How the writer lays out segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// Start a new segment once the current one would grow past this many bytes. A single
    /// record larger than this still gets written (alone in a fresh segment).
    pub segment_bytes_max: u64,
}

impl WalConfig {
    /// Checks the configuration; the error says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes_max < 512 {
            return Err("wal segment_bytes_max must be at least 512 bytes".into());
        }
        Ok(())
    }
}

/// Builds the disk operations for appending to the WAL.
///
/// Invariants: `segments` is sorted by sequence without gaps; only the last segment can be the
/// open one; `last_index` is the log's last index including snapshot markers.
#[derive(Clone, Debug)]
pub struct WalWriter {
    config: WalConfig,
    /// The segments on disk (or requested), oldest first.
    segments: Vec<SegmentHeader>,
    /// The name of the last segment if this writer created it and may append to it. Segments
    /// found at recovery are never appended to: their tail may just have been repaired.
    /// Kept rather than re-derived so that appends and syncs do not format it each time.
    open_file: Option<FileName>,
    /// Bytes in the open segment, including those of ops not yet completed.
    open_segment_bytes: u64,
    /// Records in the open segment after its preamble.
    open_segment_records_count: u64,
    /// The log's last index: the last entry written, or a later snapshot marker.
    last_index: LogIndex,
    /// The latest hard state written, repeated at the start of each new segment so that
    /// releasing older segments never loses it.
    hard_state: Option<HardState>,
    /// The latest snapshot marker written, repeated likewise.
    snapshot_marker: Option<SnapshotMarker>,
    /// The WAL's buggify point (a segment cut early); off unless a simulator turns it on.
    buggify: crate::buggify::Buggify,
}

impl WalWriter {
    /// A writer for an empty WAL.
    pub fn new(config: WalConfig) -> WalWriter {
        assert!(config.validate().is_ok(), "invalid WalConfig");
        WalWriter {
            config,
            segments: Vec::new(),
            open_file: None,
            open_segment_bytes: 0,
            open_segment_records_count: 0,
            last_index: LogIndex(0),
            hard_state: None,
            snapshot_marker: None,
            buggify: crate::buggify::Buggify::off(),
        }
    }

    /// Replaces the writer's buggify generator (simulation only).
    pub fn set_buggify(&mut self, buggify: crate::buggify::Buggify) {
        self.buggify = buggify;
    }

    /// A writer that continues the WAL `recovered` describes. Its first batch goes to a new
    /// segment. The host must have performed `recovered.repair_ops` before this writer's ops.
    pub fn resume(config: WalConfig, recovered: &Recovered) -> WalWriter {
        let mut writer = WalWriter::new(config);
        writer.segments = recovered.segments().to_vec();
        writer.last_index = recovered.last_index();
        writer.hard_state = recovered.hard_state;
        writer.snapshot_marker = recovered.snapshot_marker;
        writer
    }

    /// The log's last index as the writer knows it (entries and snapshot markers).
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// The index of the newest snapshot marker written or recovered, if any.
    pub fn snapshot_marker_index(&self) -> Option<LogIndex> {
        self.snapshot_marker.map(|marker| marker.index)
    }

    /// The segments the writer considers present, oldest first.
    pub fn segment_files(&self) -> Vec<FileName> {
        self.segments.iter().copied().map(segment_name).collect()
    }

    /// The operations that append `records` in order and make them durable: one `Append` per
    /// touched segment and a final `Sync`. Rolling over syncs the full segment first, so a
    /// segment that exists on disk implies all earlier segments are complete.
    pub fn append_batch(&mut self, records: &[WalRecord]) -> Vec<DiskOp> {
        self.append_records(records.iter().map(WalRecord::as_ref))
    }

    /// [`WalWriter::append_batch`] for borrowed records, so a caller can append the entries it
    /// holds without building a list of records. `records` is walked twice (once to size the
    /// pending bytes), hence `Clone`: pass a cheap iterator over borrowed data.
    pub fn append_records<'a, I>(&mut self, records: I) -> Vec<DiskOp>
    where
        I: Iterator<Item = WalRecordRef<'a>> + Clone,
    {
        // Room for the usual worst case without a rollover (create, directory sync, append,
        // sync), so the list is allocated once; a rollover just grows it.
        let mut ops = Vec::with_capacity(4);
        self.append_records_into(records, &mut ops);
        ops
    }

    /// [`WalWriter::append_records`] pushing the operations onto `ops` (which must be empty),
    /// so a caller can reuse one list for every batch.
    pub fn append_records_into<'a, I>(&mut self, records: I, ops: &mut Vec<DiskOp>)
    where
        I: Iterator<Item = WalRecordRef<'a>> + Clone,
    {
        assert!(ops.is_empty(), "the operation list starts empty");
        if records.clone().next().is_none() {
            return;
        }
        // Sized for the usual case (one segment, no rollover) so the bytes are not regrown
        // record by record; only an estimate: a wrong guess costs a reallocation, nothing else.
        let estimated_bytes: usize = records
            .clone()
            .map(|record| match record {
                WalRecordRef::Entry(entry) => RECORD_FRAME_SLACK_BYTES + entry.data.len(),
                WalRecordRef::HardState(_) | WalRecordRef::SnapshotMarker(_) => {
                    RECORD_FRAME_SLACK_BYTES
                }
            })
            .sum();
        let mut pending = Vec::with_capacity(
            estimated_bytes + SEGMENT_HEADER_BYTES + 2 * RECORD_FRAME_SLACK_BYTES,
        );
        for record in records {
            if self.open_file.is_none() {
                self.open_segment(ops, &mut pending);
            }
            // Encoded straight into the pending bytes; moved aside only on a rollover.
            let frame_start = pending.len();
            record.encode_frame(&mut pending);
            let frame_bytes = (pending.len() - frame_start) as u64;
            // Buggify: a segment cut before its size limit, so recovery and segment release
            // meet many segment boundaries (the cut is at a record boundary, as every cut is).
            let full = self.open_segment_bytes + frame_bytes > self.config.segment_bytes_max;
            if (full || self.buggify.fires(crate::buggify::Point::WalSegmentCut))
                && self.open_segment_records_count > 0
            {
                let frame = pending.split_off(frame_start);
                self.flush(ops, &mut pending);
                ops.push(DiskOp::Sync {
                    file: self.open_file(),
                });
                self.open_segment(ops, &mut pending);
                pending.extend_from_slice(&frame);
            }
            self.note_record(record);
            self.open_segment_bytes += frame_bytes;
            self.open_segment_records_count += 1;
        }
        self.flush(ops, &mut pending);
        ops.push(DiskOp::Sync {
            file: self.open_file(),
        });
        assert!(pending.is_empty());
    }

    /// The operations that remove every segment whose live entries are all at or below `index`
    /// (a durable snapshot covers them). The open segment is never removed.
    ///
    /// NB: call this with the index of the *oldest* snapshot the member keeps, not the newest:
    /// if the newest snapshot file turns out corrupt at the next start, recovery falls back to
    /// an older one and needs the entries after it.
    pub fn release_up_to(&mut self, index: LogIndex) -> Vec<DiskOp> {
        let mut ops = Vec::new();
        // Segment k holds no live entry above first_index(k+1) - 1, because every entry written
        // to it became the log's last index at the time, and k+1 started just after that.
        while self.segments.len() >= 2 && self.segments[1].first_index.0 <= index.0 + 1 {
            let released = self.segments.remove(0);
            assert!(released.sequence + 1 == self.segments[0].sequence);
            ops.push(DiskOp::Remove {
                file: segment_name(released),
            });
            // One directory sync per removal, so a crash can only lose removals from the end of
            // the released prefix, never leave a hole in the sequence.
            ops.push(DiskOp::SyncDir);
        }
        ops
    }

    /// Starts a new segment: create it, make its name durable, and queue its header and the
    /// preamble (latest hard state and snapshot marker) as the start of the pending bytes.
    fn open_segment(&mut self, ops: &mut Vec<DiskOp>, pending: &mut Vec<u8>) {
        assert!(
            pending.is_empty(),
            "pending bytes belong to the previous segment"
        );
        let sequence = self.segments.last().map_or(1, |last| last.sequence + 1);
        let header = SegmentHeader {
            sequence,
            first_index: self.last_index.next(),
        };
        self.segments.push(header);
        let file = segment_name(header);
        ops.push(DiskOp::Create { file: file.clone() });
        ops.push(DiskOp::SyncDir);
        pending.extend_from_slice(&encode_segment_header(header));
        if let Some(hard_state) = self.hard_state {
            WalRecordRef::HardState(hard_state).encode_frame(pending);
        }
        if let Some(marker) = self.snapshot_marker {
            WalRecordRef::SnapshotMarker(marker).encode_frame(pending);
        }
        self.open_file = Some(file);
        self.open_segment_bytes = pending.len() as u64;
        self.open_segment_records_count = 0;
    }

    /// Moves the pending bytes into one `Append` to the open segment.
    fn flush(&mut self, ops: &mut Vec<DiskOp>, pending: &mut Vec<u8>) {
        assert!(
            self.open_file.is_some(),
            "bytes pending without an open segment"
        );
        if !pending.is_empty() {
            ops.push(DiskOp::Append {
                file: self.open_file(),
                bytes: core::mem::take(pending),
            });
        }
    }

    fn open_file(&self) -> FileName {
        let file = self.open_file.clone().expect("an open segment exists");
        debug_assert_eq!(
            Some(&file),
            self.segments.last().copied().map(segment_name).as_ref()
        );
        file
    }

    /// The log after `index` was replaced by a snapshot whose marker was just written: the
    /// next entry written is `index + 1`, and a segment opened after this starts there, as
    /// replay expects (the marker ends the replaced history at `index`).
    pub fn forget_after(&mut self, index: LogIndex) {
        assert!(
            index <= self.last_index,
            "forgetting after {index}, beyond the last index {}",
            self.last_index
        );
        assert!(
            self.snapshot_marker
                .is_some_and(|marker| marker.index == index),
            "the marker at {index} is written first"
        );
        self.last_index = index;
    }

    /// Tracks what a written record changes: the last index, hard state and marker.
    fn note_record(&mut self, record: WalRecordRef<'_>) {
        match record {
            WalRecordRef::Entry(entry) => {
                assert!(entry.index.0 >= 1, "entry index 0 does not exist");
                assert!(
                    entry.index.0 <= self.last_index.0 + 1,
                    "entry {} would leave a gap after {}",
                    entry.index,
                    self.last_index
                );
                self.last_index = entry.index;
            }
            WalRecordRef::HardState(hard_state) => self.hard_state = Some(hard_state),
            WalRecordRef::SnapshotMarker(marker) => {
                if let Some(previous) = self.snapshot_marker {
                    assert!(
                        previous.index <= marker.index,
                        "snapshot markers go backwards"
                    );
                }
                self.snapshot_marker = Some(marker);
                self.last_index = self.last_index.max(marker.index);
            }
        }
    }
}
