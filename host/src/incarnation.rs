//! A distinct member seed per start (an incarnation), persisted on the member's disk.
//!
//! Why: the member derives its proposal ids from its seed; two starts with one seed would issue
//! the same ids, and deduplication would drop the second start's writes as repeats. The host
//! therefore counts starts in a small file beside the engine's (`INCARNATION`), makes the new
//! count durable before the member starts, and derives the seed from a base and the count: no
//! clock and no global randomness, yet never the same seed twice on one disk.
//!
//! The simulator keeps the same record on each member's simulated disk and takes the seed of
//! start `n` as the `n`-th value of the member's seeded stream (`sim::process`), so a restart
//! from a disk image gets a fresh seed from the count on the disk alone.
//!
//! Disk faults: a record that does not parse (damage: a flipped bit, a lost write) refuses the
//! start with a clear error, never guessed; a failed write of the new count means the member
//! does not start (the server exits; the simulator tries again later). A record that is
//! missing counts as no start yet: the host writes it before the member creates any file, so
//! it goes missing beside the engine's files only by outside damage (deleting the file), which
//! the engine's own recovery partly covers (its incarnation mixes in the recovered last index
//! and term).

use engine::api::{DiskImage, DiskOp, FileName};

/// The file holding the count of starts.
pub const INCARNATION_FILE_NAME: &str = "INCARNATION";
/// Where the new count is written before it replaces the old one.
const INCARNATION_TEMP_FILE_NAME: &str = "INCARNATION.tmp";

/// Whether `name` is the incarnation record or its temp file (the host's, never the engine's).
pub fn is_record(name: &FileName) -> bool {
    *name.0 == *INCARNATION_FILE_NAME || *name.0 == *INCARNATION_TEMP_FILE_NAME
}

/// One start of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnation {
    /// Starts so far, this one included (1 for a new member).
    pub number: u64,
    /// The member's seed for this start.
    pub seed: u64,
}

/// A well-mixed 64-bit hash (splitmix64's finaliser).
pub fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A base seed from text that tells members apart (cluster token and member name): the same
/// member on the same disk gets the same base; its starts differ by their number.
pub fn base_seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Takes the incarnation record out of `image` (the engine never sees it) and returns the next
/// incarnation and the disk operations that make it durable. The host performs them, in order,
/// and waits for them all before it starts the member: a crash after the member issued
/// proposals but before the count was durable would repeat the seed.
pub fn next(image: &mut DiskImage, base: u64) -> Result<(Incarnation, Vec<DiskOp>), String> {
    let name = FileName(INCARNATION_FILE_NAME.into());
    let temp = FileName(INCARNATION_TEMP_FILE_NAME.into());
    // A temp file left by a crash is an unfinished write of a count never used: drop it.
    image.remove(&temp);
    let previous = match image.remove(&name) {
        None => 0,
        Some(bytes) => parse(&bytes)?,
    };
    let number = previous
        .checked_add(1)
        .ok_or_else(|| format!("{INCARNATION_FILE_NAME}: the start count overflowed"))?;
    let ops = vec![
        DiskOp::Create { file: temp.clone() },
        DiskOp::Append {
            file: temp.clone(),
            bytes: format!("{number}\n").into_bytes(),
        },
        DiskOp::Sync { file: temp.clone() },
        DiskOp::Rename {
            from: temp,
            to: name,
        },
        DiskOp::SyncDir,
    ];
    let seed = mix(base ^ mix(number));
    Ok((Incarnation { number, seed }, ops))
}

fn parse(bytes: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.strip_suffix('\n'))
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "{INCARNATION_FILE_NAME} holds {} bytes that are not a start count; it is written \
                 whole by rename, so this is damage: restore the data directory or remove the file \
                 only if no other detcd process has used this directory",
                bytes.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::{next, INCARNATION_FILE_NAME};
    use engine::api::{DiskImage, DiskOp, FileName};

    /// Applies the operations to an image as a disk that never crashes would.
    fn apply(image: &mut DiskImage, ops: &[DiskOp]) {
        for op in ops {
            match op {
                DiskOp::Create { file } => {
                    image.insert(file.clone(), Vec::new());
                }
                DiskOp::Append { file, bytes } => {
                    image.get_mut(file).unwrap().extend_from_slice(bytes);
                }
                DiskOp::Rename { from, to } => {
                    let bytes = image.remove(from).unwrap();
                    image.insert(to.clone(), bytes);
                }
                DiskOp::Remove { file } => {
                    image.remove(file);
                }
                DiskOp::Sync { .. } | DiskOp::SyncDir => {}
            }
        }
    }

    /// Goal: each start gets the next number and a seed no earlier start had; the record is
    /// taken out of the image; damage is refused. Method: start ten times on one image.
    #[test]
    fn counts_starts_and_varies_the_seed() {
        let mut disk = DiskImage::new();
        let mut seeds = std::collections::BTreeSet::new();
        for expected in 1..=10 {
            let mut image = disk.clone();
            let (incarnation, ops) = next(&mut image, 42).unwrap();
            assert!(image.is_empty(), "the engine never sees the record");
            assert_eq!(incarnation.number, expected);
            assert!(seeds.insert(incarnation.seed), "seed repeated");
            apply(&mut disk, &ops);
        }
        disk.insert(FileName(INCARNATION_FILE_NAME.into()), b"x\n".to_vec());
        let error = next(&mut disk, 42).unwrap_err();
        assert!(error.contains("not a start count"), "{error}");
    }
}
