//! The write-ahead log: what raft must make durable (entries, hard state, snapshot markers),
//! framed with a length, a type and CRC32Cs, in segment files of bounded size; the writer that
//! turns batches of records into [`DiskOp`]s, and recovery from the bytes a disk really held.
//!
//! It performs no I/O (the host carries out the operations) and keeps no entries in memory
//! beyond one batch. It does not decide *when* to write, sync or release: raft and the member do.
//!
//! Durability contract: a batch is durable once the host reports that the batch's last op (a
//! `Sync` of the current segment) completed. Recovery returns every record of every durable
//! batch; of an unsynced batch it returns any prefix of records (possibly none).
//!
//! [`DiskOp`]: crate::api::DiskOp

mod error;
mod format;
mod recover;
mod writer;

pub use error::{CorruptReason, WalError};
pub use format::{
    parse_segment_name, segment_name, SegmentHeader, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
    SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, WAL_FORMAT_VERSION,
};
pub use recover::{recover, Recovered, TornTail, WalReport};
pub use writer::{WalConfig, WalWriter};

use crate::raft::{Entry, HardState};
use crate::types::{LogIndex, Term};

/// Says that a snapshot covering the log through `index` (whose entry has `term`) is durable.
/// Written after the snapshot file is durable, so a marker never points at a missing snapshot
/// unless the snapshot file was later damaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotMarker {
    /// The last log index the snapshot includes.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
}

/// One WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// A log entry. An entry at index `i` replaces every entry from `i` on (raft overwrites
    /// conflicting suffixes), so it must satisfy `1 <= i <= last index + 1`.
    Entry(Entry),
    /// The latest hard state (term, vote, commit).
    HardState(HardState),
    /// A snapshot exists at this point; entries up to its index may be gone from the WAL.
    SnapshotMarker(SnapshotMarker),
}

/// A WAL record borrowed for encoding: lets a caller append entries it holds (raft's persist
/// batch) without first moving them into a list of [`WalRecord`]s. Encodes exactly as the
/// [`WalRecord`] it mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalRecordRef<'a> {
    /// A log entry; see [`WalRecord::Entry`].
    Entry(&'a Entry),
    /// The latest hard state; see [`WalRecord::HardState`].
    HardState(HardState),
    /// A snapshot marker; see [`WalRecord::SnapshotMarker`].
    SnapshotMarker(SnapshotMarker),
}

/// The type byte of an entry record. Zero is never a record type, so zeroed bytes never parse.
const RECORD_TYPE_ENTRY: u8 = 1;
/// The type byte of a hard state record.
const RECORD_TYPE_HARD_STATE: u8 = 2;
/// The type byte of a snapshot marker record.
const RECORD_TYPE_SNAPSHOT_MARKER: u8 = 3;

impl WalRecordRef<'_> {
    /// The record's type byte.
    fn record_type(self) -> u8 {
        match self {
            WalRecordRef::Entry(_) => RECORD_TYPE_ENTRY,
            WalRecordRef::HardState(_) => RECORD_TYPE_HARD_STATE,
            WalRecordRef::SnapshotMarker(_) => RECORD_TYPE_SNAPSHOT_MARKER,
        }
    }

    /// Appends the record's payload bytes to `out`.
    fn encode_payload_into(self, out: &mut Vec<u8>) {
        let _payload_bytes = match self {
            WalRecordRef::Entry(entry) => crate::codec::encode_into(entry, out),
            WalRecordRef::HardState(hard_state) => crate::codec::encode_into(&hard_state, out),
            WalRecordRef::SnapshotMarker(marker) => crate::codec::encode_into(&marker, out),
        };
    }

    /// Appends the record's whole frame (header and payload) to `out`.
    pub fn encode_frame(self, out: &mut Vec<u8>) {
        format::encode_record_frame(self.record_type(), out, |out| {
            self.encode_payload_into(out);
        });
    }
}

impl WalRecord {
    /// The record borrowed, as the writer encodes it.
    pub fn as_ref(&self) -> WalRecordRef<'_> {
        match self {
            WalRecord::Entry(entry) => WalRecordRef::Entry(entry),
            WalRecord::HardState(hard_state) => WalRecordRef::HardState(*hard_state),
            WalRecord::SnapshotMarker(marker) => WalRecordRef::SnapshotMarker(*marker),
        }
    }

    /// Appends the record's whole frame (header and payload) to `out`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        self.as_ref().encode_frame(out);
    }

    /// Decodes a record from a checksummed frame's type and payload.
    fn decode(record_type: u8, payload: &[u8]) -> Result<WalRecord, CorruptReason> {
        let decoded = match record_type {
            RECORD_TYPE_ENTRY => crate::codec::decode(payload).map(WalRecord::Entry),
            RECORD_TYPE_HARD_STATE => crate::codec::decode(payload).map(WalRecord::HardState),
            RECORD_TYPE_SNAPSHOT_MARKER => {
                crate::codec::decode(payload).map(WalRecord::SnapshotMarker)
            }
            _ => return Err(CorruptReason::UnknownRecordType { record_type }),
        };
        decoded.map_err(|error| CorruptReason::PayloadDecode {
            detail: error.to_string(),
        })
    }

    /// A one-line stable rendering for traces and golden tests.
    pub fn describe(&self) -> String {
        match self {
            WalRecord::Entry(entry) => format!(
                "entry {}/{} {:?} {}B",
                entry.term,
                entry.index,
                entry.kind,
                entry.data.len()
            ),
            WalRecord::HardState(hard_state) => format!(
                "hard-state term={} vote={} commit={}",
                hard_state.term, hard_state.vote, hard_state.commit
            ),
            WalRecord::SnapshotMarker(marker) => {
                format!("snapshot-marker {}/{}", marker.term, marker.index)
            }
        }
    }
}
