//! The simulated disk of one member: files as inodes with a durable prefix, a directory whose
//! entries are durable only after `SyncDir`, and the disk faults the scenario can inject.
//!
//! Durability follows `engine::api::DiskOp`: appended bytes survive a crash only after a `Sync`
//! of their file completed; a create, rename or remove only after a `SyncDir`. A crash keeps the
//! durable state and may keep a torn part of the unsynced tail. It does not model page sizes or
//! concurrent I/O: operations complete one at a time, in order.
//!
//! NB: `Create` of an existing name makes a fresh inode instead of truncating the old one, so a
//! crash before `SyncDir` brings the old contents back; real file systems may differ here.

use std::collections::BTreeMap;

use engine::api::{DiskFault, DiskImage, DiskOp, FileName};
use engine::types::{Duration, Instant};

use crate::rng::SimRng;

/// Latency and capacity of a disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskConfig {
    /// Latency of a create, append, rename or remove (ns), drawn uniformly.
    pub op_latency_ns_min: u64,
    /// See `op_latency_ns_min`.
    pub op_latency_ns_max: u64,
    /// Latency of a sync (ns), drawn uniformly.
    pub sync_latency_ns_min: u64,
    /// See `sync_latency_ns_min`.
    pub sync_latency_ns_max: u64,
    /// Total bytes the disk holds; appends beyond fail with `NoSpace`.
    pub capacity_bytes_max: u64,
    /// Chance (ppm) that a crash keeps a torn part of the unsynced tail of a file.
    pub torn_tail_ppm: u32,
}

impl DiskConfig {
    /// A disk with slow syncs (2–10 ms, a loaded or rotating disk): the windows in which a
    /// member holds unsynced state are ten times wider, so crashes land in them more often.
    pub fn slow_sync() -> DiskConfig {
        DiskConfig {
            sync_latency_ns_min: 2_000_000,
            sync_latency_ns_max: 10_000_000,
            ..DiskConfig::ssd()
        }
    }

    /// An SSD-like disk: 10–50 µs writes, 0.2–1 ms syncs, 1 GiB.
    pub fn ssd() -> DiskConfig {
        DiskConfig {
            op_latency_ns_min: 10_000,
            op_latency_ns_max: 50_000,
            sync_latency_ns_min: 200_000,
            sync_latency_ns_max: 1_000_000,
            capacity_bytes_max: 1 << 30,
            torn_tail_ppm: 300_000,
        }
    }
}

/// The disk faults a scenario can inject.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DiskFaultKind {
    /// The next sync fails; its data may or may not have become durable.
    FailedSync,
    /// The next append fails with an I/O error and writes nothing.
    WriteError,
    /// One stored byte of a file silently flips a bit.
    BitFlip,
    /// A sector of a file becomes unreadable: the next recovery sees the file cut there.
    LatentReadError,
    /// The next append reports success but its bytes never reach the media (they read as zeros).
    LostWrite,
    /// The next append reports success but lands at an earlier offset of its file.
    MisdirectedWrite,
    /// Operations are slow (x50) for a while.
    LatencySpike,
    /// The disk reports full for a while.
    DiskFull,
}

impl DiskFaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [DiskFaultKind; 8] = [
        DiskFaultKind::FailedSync,
        DiskFaultKind::WriteError,
        DiskFaultKind::BitFlip,
        DiskFaultKind::LatentReadError,
        DiskFaultKind::LostWrite,
        DiskFaultKind::MisdirectedWrite,
        DiskFaultKind::LatencySpike,
        DiskFaultKind::DiskFull,
    ];

    /// The snake_case name used in traces.
    pub fn name(self) -> &'static str {
        match self {
            DiskFaultKind::FailedSync => "failed_sync",
            DiskFaultKind::WriteError => "write_error",
            DiskFaultKind::BitFlip => "bit_flip",
            DiskFaultKind::LatentReadError => "latent_read_error",
            DiskFaultKind::LostWrite => "lost_write",
            DiskFaultKind::MisdirectedWrite => "misdirected_write",
            DiskFaultKind::LatencySpike => "latency_spike",
            DiskFaultKind::DiskFull => "disk_full",
        }
    }

    /// Whether the fault can silently damage data the member already trusted (the fault budget
    /// allows these on a minority of members only).
    pub fn corrupts(self) -> bool {
        matches!(
            self,
            DiskFaultKind::BitFlip
                | DiskFaultKind::LatentReadError
                | DiskFaultKind::LostWrite
                | DiskFaultKind::MisdirectedWrite
        )
    }
}

const SECTOR_BYTES: usize = 512;
const SPIKE_FACTOR: u64 = 50;

#[derive(Clone, Debug, Default)]
struct Inode {
    bytes: Vec<u8>,
    /// Invariant: `durable_len <= bytes.len()`; bytes below it survive a crash.
    durable_len: usize,
}

/// One member's disk.
#[derive(Debug)]
pub struct SimDisk {
    config: DiskConfig,
    inodes: BTreeMap<u64, Inode>,
    /// The directory as the member sees it now.
    volatile_dir: BTreeMap<FileName, u64>,
    /// The directory as a crash would leave it.
    durable_dir: BTreeMap<FileName, u64>,
    /// The last name resolved through `volatile_dir` and its inode: a member appends to and
    /// syncs one file over and over, and this spares the map search with its name comparisons.
    /// Invariant: agrees with `volatile_dir` (cleared whenever `volatile_dir` changes).
    recent_file: Option<(FileName, u64)>,
    inode_next: u64,
    used_bytes: u64,
    fail_next_sync: bool,
    fail_next_append: bool,
    lose_next_append: bool,
    misdirect_next_append: bool,
    /// Offsets where each file becomes unreadable at the next recovery.
    unreadable_from: BTreeMap<FileName, usize>,
    spike_until: Instant,
    full_until: Instant,
    rng: SimRng,
}

impl SimDisk {
    /// An empty disk.
    pub fn new(config: DiskConfig, rng: SimRng) -> SimDisk {
        assert!(config.op_latency_ns_min <= config.op_latency_ns_max);
        assert!(config.sync_latency_ns_min <= config.sync_latency_ns_max);
        SimDisk {
            config,
            inodes: BTreeMap::new(),
            volatile_dir: BTreeMap::new(),
            durable_dir: BTreeMap::new(),
            recent_file: None,
            inode_next: 1,
            used_bytes: 0,
            fail_next_sync: false,
            fail_next_append: false,
            lose_next_append: false,
            misdirect_next_append: false,
            unreadable_from: BTreeMap::new(),
            spike_until: Instant(0),
            full_until: Instant(0),
            rng,
        }
    }

    /// How long `op` takes if issued at `now`.
    pub fn latency(&mut self, op: &DiskOp, now: Instant) -> Duration {
        let (low, high) = match op {
            DiskOp::Sync { .. } | DiskOp::SyncDir => (
                self.config.sync_latency_ns_min,
                self.config.sync_latency_ns_max,
            ),
            _ => (self.config.op_latency_ns_min, self.config.op_latency_ns_max),
        };
        let mut latency_ns = self.rng.range_inclusive(low, high);
        if now < self.spike_until {
            latency_ns = latency_ns.saturating_mul(SPIKE_FACTOR);
        }
        Duration(latency_ns)
    }

    /// Performs `op` at `now`, as the member's disk would, and returns what the member is told.
    pub fn perform(&mut self, op: &DiskOp, now: Instant) -> Result<(), DiskFault> {
        if matches!(
            op,
            DiskOp::Create { .. } | DiskOp::Rename { .. } | DiskOp::Remove { .. }
        ) {
            self.recent_file = None;
        }
        match op {
            DiskOp::Create { file } => {
                let inode = self.inode_next;
                self.inode_next += 1;
                self.inodes.insert(inode, Inode::default());
                if let Some(old) = self.volatile_dir.insert(file.clone(), inode) {
                    self.release_if_unreferenced(old);
                }
                Ok(())
            }
            DiskOp::Append { file, bytes } => self.append(file, bytes, now),
            DiskOp::Sync { file } => self.sync(Some(file)),
            DiskOp::SyncDir => self.sync(None),
            DiskOp::Rename { from, to } => {
                let Some(inode) = self.volatile_dir.remove(from) else {
                    return Err(DiskFault::Io);
                };
                if let Some(old) = self.volatile_dir.insert(to.clone(), inode) {
                    self.release_if_unreferenced(old);
                }
                Ok(())
            }
            DiskOp::Remove { file } => {
                let Some(inode) = self.volatile_dir.remove(file) else {
                    return Err(DiskFault::Io);
                };
                self.release_if_unreferenced(inode);
                Ok(())
            }
        }
    }

    /// Performs `op` for the host's incarnation record (`sim::process`): armed one-shot faults
    /// and a full-disk window stay armed for the engine's next operations instead of taking the
    /// record. Why: the record's writes were added after many seeds were pinned; letting them
    /// take the engine's faults moved those seeds' runs. The record's failure paths are held
    /// by tests of their own (`host::incarnation`, the conformance suite).
    pub fn perform_sheltered(&mut self, op: &DiskOp, now: Instant) -> Result<(), DiskFault> {
        let armed = (
            std::mem::take(&mut self.fail_next_sync),
            std::mem::take(&mut self.fail_next_append),
            std::mem::take(&mut self.lose_next_append),
            std::mem::take(&mut self.misdirect_next_append),
            std::mem::replace(&mut self.full_until, Instant(0)),
        );
        let result = self.perform(op, now);
        (
            self.fail_next_sync,
            self.fail_next_append,
            self.lose_next_append,
            self.misdirect_next_append,
            self.full_until,
        ) = armed;
        result
    }

    fn append(&mut self, file: &FileName, bytes: &[u8], now: Instant) -> Result<(), DiskFault> {
        let Some(inode_id) = self.resolve(file) else {
            return Err(DiskFault::Io);
        };
        if now < self.full_until
            || self.used_bytes + bytes.len() as u64 > self.config.capacity_bytes_max
        {
            return Err(DiskFault::NoSpace);
        }
        if std::mem::take(&mut self.fail_next_append) {
            return Err(DiskFault::Io);
        }
        let lose = std::mem::take(&mut self.lose_next_append);
        let misdirect = std::mem::take(&mut self.misdirect_next_append);
        let inode = self
            .inodes
            .get_mut(&inode_id)
            .expect("directory entry without inode");
        let start = inode.bytes.len();
        if lose || misdirect {
            // The intended region reads back as zeros: the write never landed there.
            inode.bytes.resize(start + bytes.len(), 0);
        } else {
            inode.bytes.extend_from_slice(bytes);
        }
        if misdirect && start > 0 {
            let offset = self.rng.below(start as u64) as usize;
            let end = (offset + bytes.len()).min(start);
            inode.bytes[offset..end].copy_from_slice(&bytes[..end - offset]);
        }
        self.used_bytes += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self, file: Option<&FileName>) -> Result<(), DiskFault> {
        let failed = std::mem::take(&mut self.fail_next_sync);
        // A failed sync may or may not have made the data durable: flip a coin.
        let make_durable = !failed || self.rng.chance_ppm(500_000);
        if make_durable {
            match file {
                Some(name) => {
                    let Some(inode_id) = self.resolve(name) else {
                        return Err(DiskFault::Io);
                    };
                    let inode = self
                        .inodes
                        .get_mut(&inode_id)
                        .expect("directory entry without inode");
                    inode.durable_len = inode.bytes.len();
                }
                None => self.durable_dir = self.volatile_dir.clone(),
            }
        }
        if failed {
            Err(DiskFault::Io)
        } else {
            Ok(())
        }
    }

    /// The inode `file` names in the directory as the member sees it.
    fn resolve(&mut self, file: &FileName) -> Option<u64> {
        if let Some((name, inode)) = &self.recent_file {
            if name == file {
                debug_assert_eq!(self.volatile_dir.get(file), Some(inode));
                return Some(*inode);
            }
        }
        let inode = self.volatile_dir.get(file).copied()?;
        self.recent_file = Some((file.clone(), inode));
        Some(inode)
    }

    fn release_if_unreferenced(&mut self, inode: u64) {
        let referenced = self.volatile_dir.values().any(|id| *id == inode)
            || self.durable_dir.values().any(|id| *id == inode);
        if !referenced {
            if let Some(removed) = self.inodes.remove(&inode) {
                self.used_bytes -= removed.bytes.len() as u64;
            }
        }
    }

    /// Loses every write that was not durable; a file's unsynced tail may survive torn.
    pub fn crash(&mut self) {
        self.volatile_dir = self.durable_dir.clone();
        self.recent_file = None;
        let live: Vec<u64> = self.durable_dir.values().copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
        for inode in self.inodes.values_mut() {
            let unsynced = inode.bytes.len() - inode.durable_len;
            let mut keep = inode.durable_len;
            if unsynced > 0 && self.rng.chance_ppm(self.config.torn_tail_ppm) {
                keep += self.rng.below(unsynced as u64) as usize;
            }
            inode.bytes.truncate(keep);
            // What survived is on the media now, so it stays after the next crash too.
            inode.durable_len = keep;
        }
        self.used_bytes = self
            .inodes
            .values()
            .map(|inode| inode.bytes.len() as u64)
            .sum();
        self.fail_next_sync = false;
        self.fail_next_append = false;
        self.lose_next_append = false;
        self.misdirect_next_append = false;
    }

    /// What a starting member's host reads: every file of the directory with its bytes. A latent
    /// read error makes the read fail (EIO), as a real disk does: the host cannot hand the member
    /// a truthful image, so it reports the file and offset instead of guessing. The error is
    /// consumed either way (the sector is remapped once read).
    pub fn image(&mut self) -> Result<DiskImage, String> {
        let mut image = DiskImage::new();
        let mut unreadable = None;
        for (name, inode_id) in &self.volatile_dir {
            let inode = &self.inodes[inode_id];
            if let Some(offset) = self.unreadable_from.get(name) {
                if *offset < inode.bytes.len() && unreadable.is_none() {
                    unreadable = Some(format!("read error in {} at offset {offset}", name.0));
                }
            }
            image.insert(name.clone(), inode.bytes.clone());
        }
        self.unreadable_from.clear();
        match unreadable {
            Some(reason) => Err(reason),
            None => Ok(image),
        }
    }

    /// Injects a fault at `now`, lasting `window` where it is timed. Returns a description for
    /// the trace, or `None` when there was nothing to hit (a bit flip on an empty disk).
    pub fn inject(
        &mut self,
        kind: DiskFaultKind,
        now: Instant,
        window: Duration,
    ) -> Option<String> {
        match kind {
            DiskFaultKind::FailedSync => self.fail_next_sync = true,
            DiskFaultKind::WriteError => self.fail_next_append = true,
            DiskFaultKind::LostWrite => self.lose_next_append = true,
            DiskFaultKind::MisdirectedWrite => self.misdirect_next_append = true,
            DiskFaultKind::LatencySpike => self.spike_until = now + window,
            DiskFaultKind::DiskFull => self.full_until = now + window,
            DiskFaultKind::BitFlip => {
                let (name, offset) = self.random_stored_byte()?;
                let bit = self.rng.below(8) as u32;
                let inode_id = self.volatile_dir[&name];
                let inode = self
                    .inodes
                    .get_mut(&inode_id)
                    .expect("directory entry without inode");
                inode.bytes[offset] ^= 1 << bit;
                return Some(format!(
                    "{} file={} offset={offset} bit={bit}",
                    kind.name(),
                    name.0
                ));
            }
            DiskFaultKind::LatentReadError => {
                let (name, offset) = self.random_stored_byte()?;
                let sector_start = offset / SECTOR_BYTES * SECTOR_BYTES;
                self.unreadable_from.insert(name.clone(), sector_start);
                return Some(format!(
                    "{} file={} offset={sector_start}",
                    kind.name(),
                    name.0
                ));
            }
        }
        Some(kind.name().to_string())
    }

    /// Flips one bit of the newest WAL segment at a synced offset that at least `margin_bytes`
    /// of synced bytes follow (so intact records follow the damaged one). `None` when no segment
    /// is long enough. An aimed fault: it corrupts, so it counts against the corruption budget.
    pub fn flip_synced_wal_middle(&mut self, margin_bytes: usize) -> Option<String> {
        // Segment names carry their sequence in fixed-width hex: the last name is the newest.
        let (name, inode_id) = self
            .volatile_dir
            .iter()
            .rfind(|(name, _)| name.0.starts_with("wal-") && !name.0.ends_with(".tmp"))
            .map(|(name, id)| (name.clone(), *id))?;
        // The segment header (and the preamble right after it) is left alone: only records.
        const HEADER_SKIP_BYTES: usize = 64;
        let inode = self.inodes.get_mut(&inode_id)?;
        let end = inode.durable_len.checked_sub(margin_bytes)?;
        if end <= HEADER_SKIP_BYTES {
            return None;
        }
        let offset =
            self.rng
                .range_inclusive(HEADER_SKIP_BYTES as u64, end as u64 - 1) as usize;
        let bit = self.rng.below(8) as u32;
        inode.bytes[offset] ^= 1 << bit;
        Some(format!(
            "wal_middle_bit_flip file={} offset={offset} bit={bit}",
            name.0
        ))
    }

    fn random_stored_byte(&mut self) -> Option<(FileName, usize)> {
        // The engine's files only: the host's incarnation record is written whole at each
        // start, and its damage is a test of its own (a refused start), not a random draw.
        let candidates: Vec<(FileName, usize)> = self
            .volatile_dir
            .iter()
            .filter(|(name, _)| !host::incarnation::is_record(name))
            .map(|(name, id)| (name.clone(), self.inodes[id].bytes.len()))
            .filter(|(_, len)| *len > 0)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (name, len) = candidates[self.rng.below(candidates.len() as u64) as usize].clone();
        let offset = self.rng.below(len as u64) as usize;
        Some((name, offset))
    }

    /// Ends every timed fault (the liveness phase heals disks) and disarms pending ones.
    pub fn heal(&mut self) {
        self.spike_until = Instant(0);
        self.full_until = Instant(0);
        self.fail_next_sync = false;
        self.fail_next_append = false;
        self.lose_next_append = false;
        self.misdirect_next_append = false;
    }

    /// Bytes currently stored.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;

/// The host contract's disk (`host::conformance` runs against it). Operations happen at time
/// zero: outside a run no fault window is open.
impl host::disk::HostDisk for SimDisk {
    fn perform(&mut self, op: &DiskOp) -> Result<(), DiskFault> {
        SimDisk::perform(self, op, Instant(0))
    }

    fn image(&mut self) -> Result<DiskImage, String> {
        SimDisk::image(self)
    }

    fn crash(&mut self) {
        SimDisk::crash(self);
    }
}
