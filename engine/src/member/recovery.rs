//! Starting a member from the bytes its disk held: the newest valid snapshot, then the WAL
//! after it. A torn WAL tail is repaired and reported; anything else that is wrong refuses to
//! start with a message that names the file and the offset, because starting anyway could
//! silently lose acknowledged writes.

use core::fmt;

use super::apply::{decode_state, DecodedState};
use super::storage::{Completion, Storage};
use super::{AppliedState, Member, MemberConfig};
use crate::api::{DiskFault, DiskImage, DiskOpId, FileName};
use crate::kv::ResponseHeader;
use crate::lease::{Lessor, LessorConfig};
use crate::mvcc::Store;
use crate::raft::{self, ConfState, Restored};
use crate::rng::Rng;

/// Mixed into the member's seed for the WAL's buggify generator ("buggywal").
const BUGGIFY_WAL_SALT: u64 = 0x6275_6767_7977_616c;
/// Mixed into the member's seed for the member's own buggify generator ("buggmemb").
const BUGGIFY_MEMBER_SALT: u64 = 0x6275_6767_6d65_6d62;
use crate::snap;
use crate::types::{Instant, LogIndex, Term};
use crate::wal;
use crate::watch::{WatchConfig, WatchHub};

/// What recovery found and did, for the host to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the disk was empty and a new member was started.
    pub fresh: bool,
    /// The index of the snapshot recovered from, if any.
    pub snapshot_index: Option<LogIndex>,
    /// Entries recovered from the WAL after the snapshot.
    pub entries_count: u64,
    /// Human-readable notes: a torn tail cut off, a corrupt snapshot skipped.
    pub notes: Vec<String>,
}

/// Why a member refused to start. Its `Display` says what happened and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryError {
    /// The configuration is invalid.
    Config(String),
    /// The WAL is corrupt beyond a torn tail.
    Wal(String),
    /// The snapshot files are unusable.
    Snapshot(String),
    /// The WAL does not reach back to the snapshot: entries in between are missing.
    Gap {
        /// The snapshot's index.
        snapshot_index: LogIndex,
        /// The first entry the WAL holds.
        first_wal_index: LogIndex,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Config(reason) => write!(formatter, "invalid configuration: {reason}"),
            RecoveryError::Wal(reason) => write!(
                formatter,
                "the write-ahead log is corrupt: {reason}; refusing to start so that nothing \
                 acknowledged is lost: restore this member's data directory from a backup, or \
                 remove the member and add it back empty so it catches up from the leader"
            ),
            RecoveryError::Snapshot(reason) => write!(formatter, "no usable snapshot: {reason}"),
            RecoveryError::Gap {
                snapshot_index,
                first_wal_index,
            } => write!(
                formatter,
                "the WAL starts at entry {first_wal_index} but the newest usable snapshot ends at \
                 {snapshot_index}: entries in between are missing; restore the data directory or \
                 re-add the member empty"
            ),
        }
    }
}

pub(super) fn recover(
    config: MemberConfig,
    image: DiskImage,
) -> Result<(Member, RecoveryReport), RecoveryError> {
    config.validate().map_err(RecoveryError::Config)?;
    let mut report = RecoveryReport {
        fresh: image.is_empty(),
        ..RecoveryReport::default()
    };

    let loaded =
        snap::load_newest(&image).map_err(|error| RecoveryError::Snapshot(error.to_string()))?;
    let recovered = wal::recover(&image).map_err(|error| RecoveryError::Wal(error.to_string()))?;
    if !loaded.report.skipped.is_empty() {
        crate::marks::hit(crate::marks::Mark::SnapshotSkippedAtRecovery);
        report.notes.push(loaded.report.describe());
    }
    if let Some(torn) = &recovered.report.torn_tail {
        crate::marks::hit(crate::marks::Mark::TornTailRepaired);
        report.notes.push(format!(
            "cut off a torn WAL tail: {} bytes at offset {} of {}",
            torn.dropped_bytes, torn.offset, torn.file.0
        ));
    }
    let skipped: Vec<&FileName> = loaded.report.skipped.iter().map(|(file, _)| file).collect();
    let mut kept_snapshots: Vec<(LogIndex, FileName)> = image
        .keys()
        .filter(|file| !skipped.contains(file))
        .filter_map(|file| snap::parse_snap_name(file).map(|(_, index)| (index, file.clone())))
        .collect();
    kept_snapshots.sort();

    let (state, snapshot_meta) = match &loaded.newest {
        Some((_file, snapshot)) => {
            let state = decode_state(&snapshot.data).map_err(RecoveryError::Snapshot)?;
            report.snapshot_index = Some(snapshot.meta.index);
            (state, Some(snapshot.meta.clone()))
        }
        None => (
            DecodedState {
                store: Store::new(),
                lessor: Lessor::new(LessorConfig::default()),
                applied_proposals: Default::default(),
                contexts: Default::default(),
                auth: Default::default(),
            },
            None,
        ),
    };
    let DecodedState {
        store,
        lessor,
        applied_proposals,
        contexts,
        auth,
    } = state;
    let snapshot_index = snapshot_meta
        .as_ref()
        .map_or(LogIndex(0), |meta| meta.index);
    // A snapshot received from the leader replaces the whole log. The WAL keeps entries written
    // before its marker; if the one at the snapshot's index is from another term, everything
    // after it belongs to a discarded history and must not come back.
    let stale_suffix = snapshot_meta.as_ref().is_some_and(|meta| {
        recovered
            .entries
            .iter()
            .any(|entry| entry.index == meta.index && entry.term != meta.term)
    });
    if stale_suffix {
        report.notes.push(format!(
            "dropped WAL entries after snapshot {snapshot_index} that it replaced"
        ));
    }
    let entries: Vec<_> = recovered
        .entries
        .iter()
        .filter(|entry| entry.index > snapshot_index && !stale_suffix)
        .cloned()
        .collect();
    if let Some(first) = entries.first() {
        if first.index != snapshot_index.next() {
            return Err(RecoveryError::Gap {
                snapshot_index,
                first_wal_index: first.index,
            });
        }
    }
    report.entries_count = entries.len() as u64;

    let conf = match &snapshot_meta {
        Some(meta) => meta.conf.clone(),
        None => ConfState {
            voters: config.voters.clone(),
            learners: Vec::new(),
        },
    };
    let mut hard_state = recovered.hard_state.unwrap_or_default();
    hard_state.commit = hard_state.commit.max(snapshot_index);
    let raft_config = raft::Config {
        id: config.id,
        election_timeout_ticks: config.election_timeout_ticks,
        heartbeat_interval_ticks: config.heartbeat_interval_ticks,
        pre_vote: true,
        check_quorum: true,
        inflight_appends_count_max: 64,
        append_entries_count_max: 64,
        uncommitted_entries_count_max: config.pending_requests_count_max as usize,
        seed: config.seed,
        buggify: config.buggify,
    };
    raft_config.validate().map_err(RecoveryError::Config)?;
    let last_index = entries.last().map_or(snapshot_index, |entry| entry.index);
    let restored = Restored {
        hard_state,
        snapshot: snapshot_meta.clone(),
        entries,
        conf: conf.clone(),
    };
    let mut raft = raft::Raft::new(raft_config, restored);
    if let Some((_file, snapshot)) = loaded.newest {
        // Raft needs the snapshot's bytes to serve followers behind it.
        raft.compact(snapshot);
    }

    let mut rng = Rng::new(config.seed ^ 0x6d65_6d62_6572);
    // NB: the incarnation is random per seed, so hosts must vary the seed across restarts.
    // Mixing in what was recovered keeps two incarnations with one seed apart as well.
    let incarnation = rng.next_u64() ^ last_index.0.rotate_left(32) ^ hard_state.term.0;
    let wal_config = wal::WalConfig {
        segment_bytes_max: config.wal_segment_bytes_max,
    };
    wal_config.validate().map_err(RecoveryError::Config)?;
    let mut writer = wal::WalWriter::resume(wal_config, &recovered);
    writer.set_buggify(crate::buggify::Buggify::new(
        config.buggify,
        config.seed ^ BUGGIFY_WAL_SALT,
    ));
    let mut repair_ops = recovered.repair_ops.clone();
    if snapshot_index > writer.last_index() || stale_suffix {
        // A snapshot received from the leader reached its file but the crash came before its
        // WAL marker was synced. Writing the marker now lets the log continue after it. When
        // the WAL holds a discarded history past the snapshot (`stale_suffix`), the marker is
        // what tells the next replay that this history ends at the snapshot: without it the
        // stale entry at the snapshot's index stayed, and the next recovery dropped every
        // entry written after this restart as part of the discarded history (default seed 210
        // with the Figure-8 schedule drawn four times a minute, acknowledged_durability).
        // The marker goes first (a segment it opens continues the stale history's numbering,
        // as replay expects); after it the writer forgets the stale history.
        let marker = wal::SnapshotMarker {
            index: snapshot_index,
            term: snapshot_meta.as_ref().map_or(Term(0), |meta| meta.term),
        };
        repair_ops.extend(writer.append_batch(&[wal::WalRecord::SnapshotMarker(marker)]));
        if stale_suffix {
            writer.forget_after(snapshot_index);
        }
        if !stale_suffix {
            report.notes.push(format!(
                "the WAL ended before snapshot {snapshot_index}: marked it"
            ));
        }
    }
    let mut storage = Storage::new(writer, kept_snapshots);
    let mut member = Member {
        raft,
        store,
        lessor,
        auth,
        tokens: crate::auth::token::Tokens::new(config.auth_token_ttl),
        watches: WatchHub::new(
            WatchConfig {
                pending_events_count_max: config.watch_pending_events_count_max,
                ..WatchConfig::default()
            },
            ResponseHeader {
                cluster_id: config.cluster_id,
                member_id: config.id,
                ..ResponseHeader::default()
            },
        ),
        incarnation,
        next_sequence: 0,
        next_read_context: 0,
        now: Instant(0),
        next_tick_at: None,
        was_leader: false,
        applied: AppliedState {
            index: snapshot_index,
            term: snapshot_meta.as_ref().map_or(Term(0), |meta| meta.term),
            conf,
            contexts,
            snapshot_index,
        },
        applied_proposals,
        pending_writes: Default::default(),
        pending_reads: Default::default(),
        pending_deadline_earliest: None,
        read_index_lowest: None,
        pending_keepalives: Vec::new(),
        pending_member_change: None,
        halted: None,
        buggify: crate::buggify::Buggify::new(config.buggify, config.seed ^ BUGGIFY_MEMBER_SALT),
        out: Default::default(),
        storage: Storage::new(wal::WalWriter::new(wal_config), Vec::new()),
        config,
    };
    storage.repair(repair_ops, &mut member.out.disk);
    member.storage = storage;
    Ok((member, report))
}

impl Member {
    /// Takes a disk completion: releases raft's held messages once their batch is durable,
    /// releases the WAL below a durable snapshot, and halts on any failure.
    pub(super) fn on_disk_done(&mut self, op: DiskOpId, result: Result<(), DiskFault>) {
        if let Err(reason) = self.storage.on_done(op, result) {
            self.halt(reason);
            return;
        }
        while let Some(completion) = self.storage.pop_completion() {
            match completion {
                Completion::Persisted(id, received) => {
                    self.raft.on_persisted(id);
                    if let Some((term, index)) = received {
                        self.storage.release(term, index, &mut self.out.disk);
                    }
                }
                Completion::SnapshotSaved(term, index) => {
                    self.storage.release(term, index, &mut self.out.disk);
                }
            }
        }
    }
}
