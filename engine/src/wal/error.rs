//! Why the WAL cannot be recovered, with messages that tell an operator what to do. A torn tail
//! is not an error (it is cut off and reported); everything here makes the member refuse to start.

use core::fmt;

use crate::api::FileName;

/// A WAL that must not be recovered from: the member refuses to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalError {
    /// Damage that is not a torn tail: acting on this WAL could lose or invent acknowledged data.
    Corrupt {
        /// The segment.
        file: FileName,
        /// Byte offset in the segment where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// A segment written in a format version this build does not know.
    UnknownVersion {
        /// The segment.
        file: FileName,
        /// The version in its header.
        version: u32,
    },
    /// A segment in the middle of the sequence is missing.
    MissingSegment {
        /// The segment found after the gap.
        file: FileName,
        /// The sequence number that should have come before it.
        expected_sequence: u64,
    },
}

/// What exactly is corrupt. A closed set, so tests and hosts can match on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorruptReason {
    /// A `wal-*.log` file whose name is not a segment name.
    BadFileName,
    /// Two segments with the same sequence number.
    DuplicateSequence,
    /// The segment is shorter than its header and is not the last one.
    HeaderTooShort,
    /// The segment does not start with the WAL magic bytes.
    BadMagic,
    /// The segment header's checksum does not match.
    HeaderChecksum,
    /// The header's sequence or first index disagrees with the file name.
    HeaderNameMismatch,
    /// The segment's first index disagrees with where the previous segment's log ended (or,
    /// after a rewrite of entries the log held, with the last entry written).
    FirstIndexMismatch {
        /// One past the log's last index after the previous segments.
        expected: u64,
        /// The first index in the header.
        found: u64,
    },
    /// A record header's checksum does not match, and more data follows it.
    RecordHeaderChecksum,
    /// An intact record header claims an impossible payload length.
    RecordTooLarge {
        /// The claimed length.
        payload_bytes: u32,
    },
    /// A record is cut short in a segment that is not the last one.
    RecordTruncated,
    /// A record payload's checksum does not match, and more data follows it.
    PayloadChecksum,
    /// An intact record of a type this build does not know.
    UnknownRecordType {
        /// The type byte.
        record_type: u8,
    },
    /// An intact record whose payload does not decode.
    PayloadDecode {
        /// The codec's explanation.
        detail: String,
    },
    /// An entry that would leave a hole in the log.
    EntryGap {
        /// The largest index the entry could have had.
        index_max: u64,
        /// Its index.
        found: u64,
    },
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptReason::BadFileName => write!(formatter, "file name is not a segment name"),
            CorruptReason::DuplicateSequence => write!(formatter, "duplicate segment sequence"),
            CorruptReason::HeaderTooShort => write!(formatter, "segment header is cut short"),
            CorruptReason::BadMagic => write!(formatter, "not a detcd WAL segment (bad magic)"),
            CorruptReason::HeaderChecksum => write!(formatter, "segment header checksum mismatch"),
            CorruptReason::HeaderNameMismatch => {
                write!(formatter, "segment header disagrees with the file name")
            }
            CorruptReason::FirstIndexMismatch { expected, found } => write!(
                formatter,
                "segment starts at index {found} but the log before it ends at {}",
                expected.saturating_sub(1)
            ),
            CorruptReason::RecordHeaderChecksum => write!(
                formatter,
                "record header checksum mismatch with more data after it"
            ),
            CorruptReason::RecordTooLarge { payload_bytes } => {
                write!(formatter, "record claims {payload_bytes} payload bytes")
            }
            CorruptReason::RecordTruncated => {
                write!(
                    formatter,
                    "record cut short before the end of a sealed segment"
                )
            }
            CorruptReason::PayloadChecksum => write!(
                formatter,
                "record payload checksum mismatch with more data after it"
            ),
            CorruptReason::UnknownRecordType { record_type } => {
                write!(formatter, "unknown record type {record_type}")
            }
            CorruptReason::PayloadDecode { detail } => {
                write!(formatter, "record payload does not decode: {detail}")
            }
            CorruptReason::EntryGap { index_max, found } => write!(
                formatter,
                "entry {found} leaves a gap (at most {index_max} could follow)"
            ),
        }
    }
}

/// What an operator can do about a member whose log cannot be trusted.
const REMEDY: &str = "The member refuses to start, because acknowledged writes may be damaged. \
Keep a copy of the data directory for diagnosis, then either restore it from a backup or remove \
this member from the cluster and add it back with an empty data directory so that it catches up \
from the leader.";

impl fmt::Display for WalError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                formatter,
                "WAL segment {} is corrupt at byte offset {offset}: {reason}. {REMEDY}",
                file.0
            ),
            WalError::UnknownVersion { file, version } => write!(
                formatter,
                "WAL segment {} has format version {version}, but this build reads only \
                 version {}. Run a detcd build that understands version {version}; if no such \
                 build exists the header is damaged. {REMEDY}",
                file.0,
                super::WAL_FORMAT_VERSION
            ),
            WalError::MissingSegment {
                file,
                expected_sequence,
            } => write!(
                formatter,
                "WAL segment with sequence {expected_sequence} is missing before {}: the log \
                 has a hole. Look for the missing file (was it moved or deleted by hand?). \
                 {REMEDY}",
                file.0
            ),
        }
    }
}
