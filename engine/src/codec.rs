//! The one place where payloads are turned into bytes and back, so the codec can be swapped
//! without touching callers. Today it is bincode, pinned to `=2.0.1` in the workspace manifest
//! (the crate is flagged unmaintained and 3.0.0 is an empty release); replacing it means changing
//! this file only.
//!
//! Framing, checksums and versions are the WAL's and the snapshot's business, not this module's:
//! a payload that decodes here has already passed its record's CRC32C.

use core::fmt;

/// The largest payload [`decode`] accepts. A length field inside a payload that claims more is
/// rejected before any allocation, so a damaged payload cannot make the member allocate without
/// bound. Snapshots are the largest payloads; 1 GiB leaves room for etcd's default 8 GiB quota
/// to be revisited deliberately rather than silently.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 30;

/// The bincode configuration used everywhere: varint integers, little endian, with a decode limit.
fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<PAYLOAD_BYTES_MAX>,
> {
    bincode::config::standard().with_limit::<PAYLOAD_BYTES_MAX>()
}

/// Why bytes did not decode to the expected value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The payload is longer than [`PAYLOAD_BYTES_MAX`].
    TooLarge {
        /// The payload's length.
        payload_bytes: usize,
    },
    /// The bytes are not a valid encoding of the expected type (the codec's own description).
    Invalid {
        /// What the codec reported.
        detail: String,
    },
    /// A value decoded but did not use every byte: the bytes hold something else.
    TrailingBytes {
        /// Bytes the value used.
        consumed_bytes: usize,
        /// Bytes given.
        payload_bytes: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TooLarge { payload_bytes } => write!(
                formatter,
                "payload of {payload_bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX} bytes"
            ),
            CodecError::Invalid { detail } => write!(formatter, "invalid payload: {detail}"),
            CodecError::TrailingBytes {
                consumed_bytes,
                payload_bytes,
            } => write!(
                formatter,
                "payload has trailing bytes: value used {consumed_bytes} of {payload_bytes} bytes"
            ),
        }
    }
}

/// Encodes `value` to bytes.
///
/// Panics if the value cannot be encoded or is larger than [`PAYLOAD_BYTES_MAX`]: both are
/// programmer errors (every persisted type is plain data, and callers bound their sizes).
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    // One pass into a growing buffer: bincode's own `encode_to_vec` walks the value twice
    // (once to size it), which costs more than the buffer's doublings.
    let mut bytes = Vec::new();
    let _encoded_bytes = encode_into(value, &mut bytes);
    bytes
}

/// Appends the encoding of `value` to `out` and returns its length in bytes: the same bytes as
/// [`encode`], without a buffer of its own (hot paths encode straight into a frame).
///
/// Panics like [`encode`].
pub fn encode_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    if let Err(error) = bincode::encode_into_writer(value, VecWriter(out), config()) {
        panic!("codec: a persisted value failed to encode: {error}");
    }
    let encoded_bytes = out.len() - start;
    assert!(
        encoded_bytes <= PAYLOAD_BYTES_MAX,
        "codec: encoded payload of {encoded_bytes} bytes exceeds PAYLOAD_BYTES_MAX"
    );
    encoded_bytes
}

/// A bincode writer that appends to a borrowed `Vec`.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes exactly one `T` from `bytes`; anything left over is an error, because a payload that
/// holds more than its value is not the payload that was written.
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(CodecError::TooLarge {
            payload_bytes: bytes.len(),
        });
    }
    let (value, consumed_bytes) =
        bincode::decode_from_slice::<T, _>(bytes, config()).map_err(|error| {
            CodecError::Invalid {
                detail: error.to_string(),
            }
        })?;
    assert!(
        consumed_bytes <= bytes.len(),
        "codec: consumed past the end"
    );
    if consumed_bytes != bytes.len() {
        return Err(CodecError::TrailingBytes {
            consumed_bytes,
            payload_bytes: bytes.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind};
    use crate::types::{LogIndex, Term};

    #[test]
    fn round_trip_and_trailing_bytes() {
        // Goal: a value survives encode/decode, and one extra byte or one missing byte is an
        // error rather than a different value. Method: encode an entry, decode it as-is, then
        // with a byte appended and with the last byte removed.
        let entry = Entry {
            term: Term(3),
            index: LogIndex(7),
            kind: EntryKind::Normal,
            data: vec![1, 2, 3].into(),
        };
        let mut bytes = encode(&entry);
        assert_eq!(decode::<Entry>(&bytes), Ok(entry.clone()));
        // encode_into appends the very same bytes after whatever the buffer held.
        let mut appended = vec![9];
        assert_eq!(encode_into(&entry, &mut appended), bytes.len());
        assert_eq!(appended[0], 9);
        assert_eq!(appended[1..], bytes[..]);
        bytes.push(0);
        assert!(matches!(
            decode::<Entry>(&bytes),
            Err(CodecError::TrailingBytes { .. })
        ));
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(
            decode::<Entry>(&bytes),
            Err(CodecError::Invalid { .. })
        ));
    }
}
