//! The member's disk: turns raft's persist batches and snapshots into WAL and snapshot-file
//! operations, numbers every operation, and reports which persist batches have become durable
//! as the host reports completions.
//!
//! It relies on the host performing operations in order and reporting completions in order
//! (`api::DiskOp`'s contract), so "operation N done" means every earlier one is done too. Any
//! failed operation halts the member: after a failed fsync nothing about durability is known.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::api::{DiskFault, DiskOp, DiskOpId, FileName, HaltReason};
use crate::raft::{PersistBatch, PersistId, Snapshot};
use crate::snap;
use crate::types::{LogIndex, Term};
use crate::wal::{SnapshotMarker, WalRecord, WalRecordRef, WalWriter};

/// Snapshots kept on disk: the newest, and one older to fall back on if the newest is damaged.
/// The WAL is released only below the oldest kept one, so the fall-back has its entries.
const SNAPSHOTS_KEPT_COUNT: usize = 2;

/// Most operations in flight before the member is fail-stopped: a host that never completes
/// disk work would otherwise grow this queue without bound.
const INFLIGHT_OPS_COUNT_MAX: usize = 1 << 16;

/// What becomes true when an operation completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Completion {
    /// Raft's persist batch is durable; it carried a received snapshot at (term, index) if set.
    Persisted(PersistId, Option<(Term, LogIndex)>),
    /// The snapshot at this index is durable; the WAL below it can go.
    SnapshotSaved(Term, LogIndex),
}

#[derive(Debug)]
struct Inflight {
    id: DiskOpId,
    /// The file a failure would be blamed on (`None` for the directory).
    file: Option<FileName>,
    is_sync: bool,
    completion: Option<Completion>,
}

/// The WAL writer plus the bookkeeping of operations in flight.
#[derive(Debug)]
pub(super) struct Storage {
    wal: WalWriter,
    /// Durable, valid snapshots, oldest first.
    snapshots: Vec<(LogIndex, FileName)>,
    next_op_id: u64,
    /// Invariant: ids strictly increase from front to back.
    inflight: VecDeque<Inflight>,
    /// What the last `on_done` made true, oldest first, until taken by `pop_completion`. Kept
    /// between calls so its buffer is reused: most completions carry nothing to report.
    completed: VecDeque<Completion>,
    /// The WAL operations of the batch being persisted; always empty between calls, kept so
    /// its buffer is reused rather than allocated per batch. Bounded by one batch's operations.
    wal_ops: Vec<DiskOp>,
}

impl Storage {
    pub(super) fn new(wal: WalWriter, snapshots: Vec<(LogIndex, FileName)>) -> Storage {
        assert!(
            snapshots.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "oldest first"
        );
        Storage {
            wal,
            snapshots,
            next_op_id: 0,
            inflight: VecDeque::new(),
            completed: VecDeque::new(),
            wal_ops: Vec::new(),
        }
    }

    fn push(
        &mut self,
        op: DiskOp,
        completion: Option<Completion>,
        out: &mut Vec<(DiskOpId, DiskOp)>,
    ) {
        assert!(
            self.inflight.len() < INFLIGHT_OPS_COUNT_MAX,
            "disk operations are not completing"
        );
        self.next_op_id += 1;
        let id = DiskOpId(self.next_op_id);
        let (file, is_sync) = match &op {
            DiskOp::Create { file } | DiskOp::Append { file, .. } | DiskOp::Remove { file } => {
                (Some(file.clone()), false)
            }
            DiskOp::Sync { file } => (Some(file.clone()), true),
            DiskOp::SyncDir => (None, true),
            DiskOp::Rename { to, .. } => (Some(to.clone()), false),
        };
        self.inflight.push_back(Inflight {
            id,
            file,
            is_sync,
            completion,
        });
        out.push((id, op));
    }

    fn push_all<I>(
        &mut self,
        ops: I,
        completion: Option<Completion>,
        out: &mut Vec<(DiskOpId, DiskOp)>,
    ) where
        I: IntoIterator<Item = DiskOp>,
        I::IntoIter: ExactSizeIterator,
    {
        let ops = ops.into_iter();
        let count = ops.len();
        out.reserve(count);
        for (position, op) in ops.enumerate() {
            let last = position + 1 == count;
            self.push(op, if last { completion } else { None }, out);
        }
    }

    /// Operations that repair what recovery found (a torn tail); nothing waits on them but
    /// they go first, before any new append.
    pub(super) fn repair(&mut self, ops: Vec<DiskOp>, out: &mut Vec<(DiskOpId, DiskOp)>) {
        self.push_all(ops, None, out);
    }

    /// Writes a raft persist batch: a received snapshot's file first, then the WAL records,
    /// then one sync whose completion makes the batch durable.
    pub(super) fn persist(&mut self, batch: PersistBatch, out: &mut Vec<(DiskOpId, DiskOp)>) {
        let mut marker = None;
        if let Some(snapshot) = &batch.snapshot {
            self.push_all(snap::write_ops(snapshot), None, out);
            marker = Some(SnapshotMarker {
                index: snapshot.meta.index,
                term: snapshot.meta.term,
            });
        }
        // Borrowed straight from the batch: the entries are encoded, never moved into records.
        let records = marker
            .map(WalRecordRef::SnapshotMarker)
            .into_iter()
            .chain(batch.entries.iter().map(WalRecordRef::Entry))
            .chain(batch.hard_state.map(WalRecordRef::HardState));
        // A received snapshot is also one to keep, and to release the WAL below once durable.
        let received = marker.map(|marker| (marker.term, marker.index));
        let completion = Completion::Persisted(batch.id, received);
        let mut ops = core::mem::take(&mut self.wal_ops);
        self.wal.append_records_into(records, &mut ops);
        assert!(!ops.is_empty(), "a persist batch always writes something");
        self.push_all(ops.drain(..), Some(completion), out);
        self.wal_ops = ops;
    }

    /// Whether a local snapshot at `index` may be marked in the WAL: not below the newest
    /// marker. A member whose newest snapshot file was damaged recovers from an older one while
    /// the WAL still marks the newer; until its apply passes that marker, a snapshot would mark
    /// the WAL backwards. Skipping it loses nothing: the WAL still holds the entries after the
    /// snapshot the member recovered from (found by buggify's "snapshot now").
    pub(super) fn may_snapshot_at(&self, index: LogIndex) -> bool {
        self.wal
            .snapshot_marker_index()
            .is_none_or(|marked| marked <= index)
    }

    /// Writes a snapshot taken locally, atomically, and marks it in the WAL.
    pub(super) fn save_snapshot(&mut self, snapshot: &Snapshot, out: &mut Vec<(DiskOpId, DiskOp)>) {
        let index = snapshot.meta.index;
        if crate::bug!(WalReleasedBeforeSnapshotSync) {
            // etcd #10219: the WAL below the new snapshot is purged before the snapshot file is
            // durable; a crash in between leaves neither.
            let release = self.wal.release_up_to(index);
            self.push_all(release, None, out);
        }
        self.push_all(snap::write_ops(snapshot), None, out);
        let marker = SnapshotMarker {
            index,
            term: snapshot.meta.term,
        };
        let ops = self.wal.append_batch(&[WalRecord::SnapshotMarker(marker)]);
        self.push_all(
            ops,
            Some(Completion::SnapshotSaved(marker.term, index)),
            out,
        );
    }

    /// Once a snapshot is durable, the WAL segments and older snapshots below it can go.
    pub(super) fn release(
        &mut self,
        term: Term,
        index: LogIndex,
        out: &mut Vec<(DiskOpId, DiskOp)>,
    ) {
        if self
            .snapshots
            .last()
            .is_some_and(|(newest, _)| *newest >= index)
        {
            return;
        }
        self.snapshots.push((index, snap::snap_name(term, index)));
        let cleanup = snap::cleanup_ops(
            self.snapshots.iter().map(|(_, file)| file),
            SNAPSHOTS_KEPT_COUNT,
        );
        let excess_count = self.snapshots.len().saturating_sub(SNAPSHOTS_KEPT_COUNT);
        self.snapshots.drain(..excess_count);
        self.push_all(cleanup, None, out);
        let oldest_kept = self.snapshots[0].0;
        let release = self.wal.release_up_to(oldest_kept);
        self.push_all(release, None, out);
    }

    /// Takes a completion report: queues what became true for `pop_completion`, or returns
    /// why the member must halt.
    pub(super) fn on_done(
        &mut self,
        op: DiskOpId,
        result: Result<(), DiskFault>,
    ) -> Result<(), HaltReason> {
        assert!(
            self.completed.is_empty(),
            "the previous report's completions were all taken"
        );
        let Some(position) = self.inflight.iter().position(|inflight| inflight.id == op) else {
            // A completion from before a restart, or a duplicate: nothing waits on it.
            return Ok(());
        };
        if let Err(fault) = result {
            let failed = &self.inflight[position];
            return Err(if failed.is_sync {
                HaltReason::SyncFailed {
                    file: failed.file.clone(),
                }
            } else {
                HaltReason::WriteFailed {
                    file: failed.file.clone().unwrap_or(FileName(Arc::from("."))),
                    fault,
                }
            });
        }
        // Completions arrive in order, so everything up to `op` is done.
        for _ in 0..=position {
            let done = self.inflight.pop_front().expect("position is in the queue");
            if let Some(completion) = done.completion {
                self.completed.push_back(completion);
            }
        }
        Ok(())
    }

    /// The next thing the last `on_done` made true, oldest first.
    pub(super) fn pop_completion(&mut self) -> Option<Completion> {
        self.completed.pop_front()
    }
}
