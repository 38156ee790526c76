//! The WAL's byte layout: segment file names, the segment header, and record frames. Pure
//! functions from values to bytes and back; deciding what a bad frame *means* (torn tail or
//! corruption) is recovery's job, not this module's.
//!
//! Segment header (32 bytes, little endian):
//! `magic "DETCDWAL" (8) | format version u32 | segment sequence u64 | first index u64 | crc32c u32`
//! where the CRC covers the 28 bytes before it.
//!
//! Record frame (13-byte header, then the payload):
//! `payload length u32 | record type u8 | payload crc32c u32 | header crc32c u32 | payload`
//! where the header CRC covers the 9 bytes before it. NB: this differs from the plain
//! `[length][type][crc over type+payload]` layout on purpose: with a single CRC, a flipped bit in
//! a length field makes a middle record claim to run past the end of the file, which is exactly
//! what a torn write looks like, and recovery would cut off good, synced records as a "torn tail".
//! A separately checked header means a length is trusted only when it is known to be intact.

use crate::api::FileName;
use crate::types::LogIndex;

/// The first 8 bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DETCDWAL";
/// The segment format this build writes and the only one it reads.
pub const WAL_FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Bytes in a record frame's header.
pub const RECORD_HEADER_BYTES: usize = 13;
/// The largest record payload written or accepted. Entries are bounded far below this by the
/// member's request size limit; the bound keeps a damaged-but-checksummed length from meaning
/// anything absurd.
pub const RECORD_PAYLOAD_BYTES_MAX: u32 = 64 << 20;

/// A segment's identity, as stored both in its name and in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentHeader {
    /// Position of the segment in the log, from 1, without gaps.
    pub sequence: u64,
    /// The log index the writer expected next when it created the segment: every entry that is
    /// still live in an earlier segment has a smaller index.
    pub first_index: LogIndex,
}

/// What is wrong with a segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Fewer than [`SEGMENT_HEADER_BYTES`] bytes.
    Short,
    /// The magic bytes are wrong: not a detcd WAL segment.
    BadMagic,
    /// A version this build does not know.
    UnknownVersion(u32),
    /// The header's checksum does not match.
    Checksum,
}

/// The file name of a segment: lexical order of names is log order.
pub fn segment_name(header: SegmentHeader) -> FileName {
    assert!(header.sequence >= 1, "segment sequences start at 1");
    FileName(
        format!(
            "wal-{:016x}-{:016x}.log",
            header.sequence, header.first_index.0
        )
        .into(),
    )
}

/// Parses a segment name made by [`segment_name`]; `None` for any other name.
pub fn parse_segment_name(name: &FileName) -> Option<SegmentHeader> {
    let rest = name.0.strip_prefix("wal-")?.strip_suffix(".log")?;
    let (sequence_hex, first_hex) = rest.split_once('-')?;
    if sequence_hex.len() != 16 || first_hex.len() != 16 {
        return None;
    }
    let sequence = u64::from_str_radix(sequence_hex, 16).ok()?;
    let first_index = u64::from_str_radix(first_hex, 16).ok()?;
    if sequence == 0 {
        return None;
    }
    let header = SegmentHeader {
        sequence,
        first_index: LogIndex(first_index),
    };
    // Only the canonical spelling (lowercase hex) is ours; a variant could sort out of order.
    (segment_name(header) == *name).then_some(header)
}

/// The 32 header bytes of a segment.
pub(crate) fn encode_segment_header(header: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
    bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
    bytes[8..12].copy_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&header.sequence.to_le_bytes());
    bytes[20..28].copy_from_slice(&header.first_index.0.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(decode_segment_header(&bytes), Ok(header));
    bytes
}

/// Reads a segment header from the start of `bytes`. The version is checked before the CRC so
/// that a segment from a newer format is named as such rather than as damage.
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(HeaderProblem::Short);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let version = read_u32(bytes, 8);
    if version != WAL_FORMAT_VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    if crc32c::crc32c(&bytes[0..28]) != read_u32(bytes, 28) {
        return Err(HeaderProblem::Checksum);
    }
    Ok(SegmentHeader {
        sequence: read_u64(bytes, 12),
        first_index: LogIndex(read_u64(bytes, 20)),
    })
}

/// Appends one record frame to `out`; `write_payload` appends the payload after the header,
/// which is filled in afterwards (so the payload needs no buffer of its own).
pub(crate) fn encode_record_frame(
    record_type: u8,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    assert!(
        record_type != 0,
        "record type 0 is reserved so zeroed bytes never parse"
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    write_payload(out);
    let payload = &out[start + RECORD_HEADER_BYTES..];
    let payload_bytes = u32::try_from(payload.len()).expect("payload length fits u32");
    assert!(
        payload_bytes <= RECORD_PAYLOAD_BYTES_MAX,
        "record payload exceeds RECORD_PAYLOAD_BYTES_MAX"
    );
    let payload_crc = crc32c::crc32c(payload);
    let header = &mut out[start..start + RECORD_HEADER_BYTES];
    header[0..4].copy_from_slice(&payload_bytes.to_le_bytes());
    header[4] = record_type;
    header[5..9].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..9]);
    header[9..13].copy_from_slice(&header_crc.to_le_bytes());
    assert_eq!(
        out.len() - start,
        RECORD_HEADER_BYTES + payload_bytes as usize
    );
}

/// The outcome of reading one frame at some offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameScan<'a> {
    /// The offset is exactly the end of the segment.
    End,
    /// An intact frame.
    Frame {
        /// Its type byte (not yet checked against the known types).
        record_type: u8,
        /// Its payload, checksum verified.
        payload: &'a [u8],
        /// Where the next frame starts.
        next_offset: usize,
    },
    /// Fewer than [`RECORD_HEADER_BYTES`] bytes remain.
    ShortHeader,
    /// The frame header's CRC does not match: its length cannot be trusted.
    HeaderChecksum,
    /// An intact header claims a payload above [`RECORD_PAYLOAD_BYTES_MAX`].
    TooLarge {
        /// The claimed length.
        payload_bytes: u32,
    },
    /// An intact header whose payload runs past the end of the segment.
    ShortPayload,
    /// The payload's CRC does not match; the frame would end at `end_offset`.
    PayloadChecksum {
        /// Where the damaged frame ends.
        end_offset: usize,
    },
}

/// Reads the frame at `offset` of `bytes`.
pub(crate) fn scan_frame(bytes: &[u8], offset: usize) -> FrameScan<'_> {
    assert!(offset <= bytes.len(), "frame offset past the end");
    let remaining = &bytes[offset..];
    if remaining.is_empty() {
        return FrameScan::End;
    }
    if remaining.len() < RECORD_HEADER_BYTES {
        return FrameScan::ShortHeader;
    }
    if crc32c::crc32c(&remaining[0..9]) != read_u32(remaining, 9) {
        return FrameScan::HeaderChecksum;
    }
    let payload_bytes = read_u32(remaining, 0);
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
        return FrameScan::TooLarge { payload_bytes };
    }
    let end = RECORD_HEADER_BYTES + payload_bytes as usize;
    if remaining.len() < end {
        return FrameScan::ShortPayload;
    }
    let payload = &remaining[RECORD_HEADER_BYTES..end];
    if crc32c::crc32c(payload) != read_u32(remaining, 5) {
        return FrameScan::PayloadChecksum {
            end_offset: offset + end,
        };
    }
    FrameScan::Frame {
        record_type: remaining[4],
        payload,
        next_offset: offset + end,
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
