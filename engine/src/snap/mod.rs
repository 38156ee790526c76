//! Snapshot files: one file per snapshot, `snap-<term:016x>-<index:016x>.snap`, holding a
//! versioned, checksummed header and the codec-encoded [`Snapshot`]. Writing is atomic (a
//! temporary file, synced, renamed, then the directory synced); loading picks the newest valid
//! snapshot and says so when it had to skip a damaged one.
//!
//! It performs no I/O and keeps nothing in memory. It does not decide when to snapshot or which
//! WAL segments a snapshot makes unnecessary: the member does.
//!
//! Header (28 bytes, little endian):
//! `magic "DETCDSNP" (8) | format version u32 | payload length u64 | payload crc32c u32 |
//! header crc32c u32` where the header CRC covers the 24 bytes before it.

use core::fmt;

use crate::api::{DiskImage, DiskOp, FileName};
use crate::raft::Snapshot;
use crate::types::{LogIndex, Term};

/// The first 8 bytes of every snapshot file.
pub const SNAP_MAGIC: [u8; 8] = *b"DETCDSNP";
/// The snapshot format this build writes and the only one it reads.
pub const SNAP_FORMAT_VERSION: u32 = 1;
/// Bytes in a snapshot file header.
pub const SNAP_HEADER_BYTES: usize = 28;

/// The final name of the snapshot covering `index` (whose entry has `term`).
pub fn snap_name(term: Term, index: LogIndex) -> FileName {
    FileName(format!("snap-{:016x}-{:016x}.snap", term.0, index.0).into())
}

/// Parses a name made by [`snap_name`]; `None` for any other name.
pub fn parse_snap_name(name: &FileName) -> Option<(Term, LogIndex)> {
    let rest = name.0.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (term_hex, index_hex) = rest.split_once('-')?;
    if term_hex.len() != 16 || index_hex.len() != 16 {
        return None;
    }
    let term = Term(u64::from_str_radix(term_hex, 16).ok()?);
    let index = LogIndex(u64::from_str_radix(index_hex, 16).ok()?);
    (snap_name(term, index) == *name).then_some((term, index))
}

/// The whole file content for `snapshot`: header then payload.
pub fn encode_file(snapshot: &Snapshot) -> Vec<u8> {
    let payload = crate::codec::encode(snapshot);
    let mut bytes = Vec::with_capacity(SNAP_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&SNAP_MAGIC);
    bytes.extend_from_slice(&SNAP_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&bytes[0..24]);
    bytes.extend_from_slice(&header_crc.to_le_bytes());
    assert_eq!(bytes.len(), SNAP_HEADER_BYTES);
    bytes.extend_from_slice(&payload);
    bytes
}

/// What is wrong with one snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapProblem {
    /// A `snap-*.snap` name that is not ours.
    BadFileName,
    /// Shorter than its header.
    HeaderTooShort,
    /// Not a detcd snapshot (bad magic bytes).
    BadMagic,
    /// A format version this build does not know.
    UnknownVersion {
        /// The version in the header.
        version: u32,
    },
    /// The header's checksum does not match.
    HeaderChecksum,
    /// The file's length disagrees with the header (cut short, or extra bytes).
    LengthMismatch {
        /// Payload bytes the header promises.
        expected_bytes: u64,
        /// Payload bytes present.
        found_bytes: u64,
    },
    /// The payload's checksum does not match.
    PayloadChecksum,
    /// The payload does not decode.
    PayloadDecode {
        /// The codec's explanation.
        detail: String,
    },
    /// The snapshot's metadata disagrees with its file name.
    NameMismatch,
}

impl fmt::Display for SnapProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapProblem::BadFileName => write!(formatter, "file name is not a snapshot name"),
            SnapProblem::HeaderTooShort => write!(formatter, "header is cut short"),
            SnapProblem::BadMagic => write!(formatter, "not a detcd snapshot (bad magic)"),
            SnapProblem::UnknownVersion { version } => write!(
                formatter,
                "format version {version}, this build reads only {SNAP_FORMAT_VERSION}"
            ),
            SnapProblem::HeaderChecksum => write!(formatter, "header checksum mismatch"),
            SnapProblem::LengthMismatch {
                expected_bytes,
                found_bytes,
            } => write!(
                formatter,
                "payload is {found_bytes} bytes but the header says {expected_bytes}"
            ),
            SnapProblem::PayloadChecksum => write!(formatter, "payload checksum mismatch"),
            SnapProblem::PayloadDecode { detail } => {
                write!(formatter, "payload does not decode: {detail}")
            }
            SnapProblem::NameMismatch => {
                write!(formatter, "snapshot metadata disagrees with the file name")
            }
        }
    }
}

/// Why no snapshot could be loaded although snapshot files exist: the member refuses to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapError {
    /// The newest snapshot is damaged and no older valid one exists.
    Corrupt {
        /// The newest snapshot file.
        file: FileName,
        /// What is wrong with it.
        problem: SnapProblem,
    },
    /// The newest snapshot has a format this build does not know; falling back to an older one
    /// would hide a downgrade, so loading stops.
    UnknownVersion {
        /// The file.
        file: FileName,
        /// Its version.
        version: u32,
    },
}

impl fmt::Display for SnapError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapError::Corrupt { file, problem } => write!(
                formatter,
                "snapshot {} is corrupt ({problem}) and no older valid snapshot exists. The \
                 member refuses to start. Keep a copy of the data directory for diagnosis, then \
                 restore it from a backup or remove this member from the cluster and add it \
                 back with an empty data directory so that it receives a snapshot from the \
                 leader.",
                file.0
            ),
            SnapError::UnknownVersion { file, version } => write!(
                formatter,
                "snapshot {} has format version {version}, but this build reads only version \
                 {SNAP_FORMAT_VERSION}. Run the detcd build that wrote it (was the binary \
                 downgraded?).",
                file.0
            ),
        }
    }
}

/// What loading found, for the member's start-up report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapReport {
    /// Newer snapshot files that were skipped because they are damaged, newest first.
    pub skipped: Vec<(FileName, SnapProblem)>,
}

impl SnapReport {
    /// A stable multi-line rendering for logs and golden tests.
    pub fn describe(&self) -> String {
        self.skipped
            .iter()
            .map(|(file, problem)| {
                format!(
                    "skipped damaged snapshot {} ({problem}); fell back to an older one",
                    file.0
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The outcome of [`load_newest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapLoad {
    /// The newest valid snapshot and its file, or `None` when there is no snapshot file.
    pub newest: Option<(FileName, Snapshot)>,
    /// What was skipped to get there.
    pub report: SnapReport,
}

/// The operations that write `snapshot` atomically: a crash leaves either no file under the
/// final name or the complete one. The snapshot is durable once the final `SyncDir` completes.
pub fn write_ops(snapshot: &Snapshot) -> Vec<DiskOp> {
    let file = snap_name(snapshot.meta.term, snapshot.meta.index);
    let temporary = FileName(format!("{}.tmp", file.0).into());
    let bytes = encode_file(snapshot);
    debug_assert_eq!(decode_file(&file, &bytes).as_ref(), Ok(snapshot));
    vec![
        DiskOp::Create {
            file: temporary.clone(),
        },
        DiskOp::Append {
            file: temporary.clone(),
            bytes,
        },
        DiskOp::Sync {
            file: temporary.clone(),
        },
        DiskOp::Rename {
            from: temporary,
            to: file,
        },
        DiskOp::SyncDir,
    ]
}

/// Decodes one snapshot file, checking its header, length, checksums and name.
pub fn decode_file(file: &FileName, bytes: &[u8]) -> Result<Snapshot, SnapProblem> {
    let (term, index) = parse_snap_name(file).ok_or(SnapProblem::BadFileName)?;
    if bytes.len() < SNAP_HEADER_BYTES {
        return Err(SnapProblem::HeaderTooShort);
    }
    if bytes[0..8] != SNAP_MAGIC {
        return Err(SnapProblem::BadMagic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != SNAP_FORMAT_VERSION {
        return Err(SnapProblem::UnknownVersion { version });
    }
    let header_crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[0..24]) != header_crc {
        return Err(SnapProblem::HeaderChecksum);
    }
    let expected_bytes = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[SNAP_HEADER_BYTES..];
    if payload.len() as u64 != expected_bytes {
        return Err(SnapProblem::LengthMismatch {
            expected_bytes,
            found_bytes: payload.len() as u64,
        });
    }
    let payload_crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc32c::crc32c(payload) != payload_crc {
        return Err(SnapProblem::PayloadChecksum);
    }
    let snapshot: Snapshot =
        crate::codec::decode(payload).map_err(|error| SnapProblem::PayloadDecode {
            detail: error.to_string(),
        })?;
    if snapshot.meta.term != term || snapshot.meta.index != index {
        return Err(SnapProblem::NameMismatch);
    }
    Ok(snapshot)
}

/// Snapshot names among `files`, newest (highest index, then term) first.
fn snapshots_newest_first<'a>(
    files: impl IntoIterator<Item = &'a FileName>,
) -> Vec<(Term, LogIndex, &'a FileName)> {
    let mut found: Vec<_> = files
        .into_iter()
        .filter_map(|file| parse_snap_name(file).map(|(term, index)| (term, index, file)))
        .collect();
    found.sort_by_key(|(term, index, _)| core::cmp::Reverse((*index, *term)));
    found
}

/// Loads the newest valid snapshot in `image`. A damaged newest snapshot is skipped (and
/// reported) only if an older valid one exists; otherwise loading fails.
pub fn load_newest(image: &DiskImage) -> Result<SnapLoad, SnapError> {
    let mut load = SnapLoad::default();
    let candidates = snapshots_newest_first(image.keys());
    for (_, _, file) in candidates {
        match decode_file(file, &image[file]) {
            Ok(snapshot) => {
                load.newest = Some((file.clone(), snapshot));
                return Ok(load);
            }
            Err(SnapProblem::UnknownVersion { version }) if load.report.skipped.is_empty() => {
                return Err(SnapError::UnknownVersion {
                    file: file.clone(),
                    version,
                });
            }
            Err(problem) => load.report.skipped.push((file.clone(), problem)),
        }
    }
    match load.report.skipped.first() {
        None => Ok(load),
        Some((file, problem)) => Err(SnapError::Corrupt {
            file: file.clone(),
            problem: problem.clone(),
        }),
    }
}

/// The operations that remove all but the `keep_count` newest snapshots among `files`, and any
/// leftover temporary snapshot files, followed by one directory sync.
///
/// NB: pass only files known to be valid snapshots (exclude those [`load_newest`] skipped),
/// otherwise a damaged newer file could count as kept while a valid older one is removed.
pub fn cleanup_ops<'a>(
    files: impl IntoIterator<Item = &'a FileName>,
    keep_count: usize,
) -> Vec<DiskOp> {
    assert!(keep_count >= 1, "keep at least the snapshot in use");
    let files: Vec<&FileName> = files.into_iter().collect();
    let mut ops: Vec<DiskOp> = files
        .iter()
        .filter(|file| file.0.starts_with("snap-") && file.0.ends_with(".tmp"))
        .map(|file| DiskOp::Remove {
            file: (*file).clone(),
        })
        .collect();
    for (_, _, file) in snapshots_newest_first(files.iter().copied())
        .into_iter()
        .skip(keep_count)
    {
        ops.push(DiskOp::Remove { file: file.clone() });
    }
    if !ops.is_empty() {
        ops.push(DiskOp::SyncDir);
    }
    ops
}
