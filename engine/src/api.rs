//! The member's boundary with its host (sans-I/O): the [`Input`]s a host feeds into
//! `Member::step`, the [`Actions`] it must carry out, the disk operations it performs on the
//! member's behalf, and the [`DiskImage`] a restarted member recovers from.
//!
//! Nothing here performs I/O. The simulator implements these operations on an in-memory disk with
//! faults; the server implements them with real files and fsync.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::kv::{Request, RequestError, Response, WatchResponse};
use crate::raft::Message;
use crate::types::{Instant, LogIndex, NodeId, RequestId, Revision, Term, WatchId};

/// A message between members. Inside the simulator it travels as a value.
pub type PeerMessage = Message;

/// A file in the member's data directory, named relative to it (no separators).
/// Shared (`Arc`): every disk operation and every operation in flight names its file, so a
/// clone must not copy the name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(pub Arc<str>);

/// Identifies one disk operation the member asked for, so its completion can be reported.
/// Ids grow by one per operation within one member incarnation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskOpId(pub u64);

/// A disk operation. The host performs a member's operations in the order given (a later one
/// never overtakes an earlier one) and reports each completion with [`Input::DiskDone`].
///
/// Durability: appended bytes are durable only after a later `Sync` of that file completes;
/// a `Create`, `Rename` or `Remove` is durable only after a later `SyncDir` completes. A crash
/// may lose anything not yet durable, and may tear the last unsynced append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// Create the file empty (truncating it if it exists).
    Create {
        /// The file.
        file: FileName,
    },
    /// Append bytes at the end of the file.
    Append {
        /// The file.
        file: FileName,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// fsync the file: every append before this is durable once it completes.
    Sync {
        /// The file.
        file: FileName,
    },
    /// fsync the directory: every create, rename and remove before this is durable.
    SyncDir,
    /// Atomically rename `from` to `to`, replacing `to`.
    Rename {
        /// Old name.
        from: FileName,
        /// New name.
        to: FileName,
    },
    /// Remove the file.
    Remove {
        /// The file.
        file: FileName,
    },
}

/// A disk error as the engine sees it: a closed set, never an `io::Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// The operation failed (EIO). After a failed sync nothing about durability is known.
    Io,
    /// The disk is full.
    NoSpace,
}

/// The files a host found in the member's data directory at start, with their bytes.
/// An empty image starts a new member.
pub type DiskImage = BTreeMap<FileName, Vec<u8>>;

/// Everything the outside world can tell a member. `now` comes with every step.
#[derive(Clone, Debug)]
pub enum Input {
    /// Woken at or after `Actions::wake_at` (or any time: spurious wakes are harmless).
    Timer,
    /// A message from a peer.
    Receive {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A client request.
    Request {
        /// The host's handle, echoed in the reply.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// A client request with the credentials it came with (a token, or the user of a verified
    /// client certificate). Checked by the member once auth is enabled; ignored until then.
    RequestAs {
        /// The host's handle, echoed in the reply.
        id: RequestId,
        /// The request.
        request: Request,
        /// Who the client says it is.
        credentials: crate::auth::Credentials,
    },
    /// The client stream of a watch is full (`slow: true`: the host cannot deliver more now)
    /// or has drained (`slow: false`). A slow watch's events are buffered up to a limit and then
    /// fed later from MVCC history: never skipped. Unknown watches are ignored.
    WatchBackpressure {
        /// The watch.
        watch_id: WatchId,
        /// Whether its stream is full.
        slow: bool,
    },
    /// A disk operation completed.
    DiskDone {
        /// The operation.
        op: DiskOpId,
        /// Its outcome.
        result: Result<(), DiskFault>,
    },
}

/// A message to send to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The recipient.
    pub to: NodeId,
    /// The message.
    pub message: PeerMessage,
}

/// Why a member stopped itself (fail-stop). The server exits with a distinct code per reason;
/// the simulator records a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaltReason {
    /// A sync failed: durability of acknowledged state is unknown, so the member must restart
    /// from what its disk holds.
    SyncFailed {
        /// The file whose sync failed, or `None` for the directory.
        file: Option<FileName>,
    },
    /// A write failed.
    WriteFailed {
        /// The file.
        file: FileName,
        /// The fault.
        fault: DiskFault,
    },
    /// The member was removed from the cluster.
    Removed,
}

/// Facts about the member's progress that hosts record in their trace and that the checkers'
/// raft invariants read. They never influence the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// This member became leader of `term`.
    BecameLeader {
        /// The term.
        term: Term,
    },
    /// This member applied the entry at `index` from `term`; `digest` hashes its payload.
    Applied {
        /// The log index.
        index: LogIndex,
        /// The entry's term.
        term: Term,
        /// A hash of the entry's payload.
        digest: u64,
    },
    /// The state machine's hash after applying through `index`.
    KvHash {
        /// The applied index.
        index: LogIndex,
        /// The MVCC revision.
        revision: Revision,
        /// The hash of the key-value state.
        hash: u64,
    },
    /// A snapshot was taken (or installed) at `index`.
    Snapshot {
        /// The index the snapshot covers.
        index: LogIndex,
        /// Whether it was received from the leader rather than taken locally.
        installed: bool,
    },
}

/// Everything one step asks of the outside world.
#[must_use]
#[derive(Clone, Debug, Default)]
pub struct Actions {
    /// Disk operations, to be performed in order.
    pub disk: Vec<(DiskOpId, DiskOp)>,
    /// Messages safe to send now (durability-gated ones are held inside until their sync).
    pub send: Vec<Envelope>,
    /// Replies to client requests.
    pub reply: Vec<(RequestId, Result<Response, RequestError>)>,
    /// Watch responses, in order.
    pub notify: Vec<WatchResponse>,
    /// Wake the member with `Input::Timer` at or after this time.
    pub wake_at: Option<Instant>,
    /// Fail-stop: the host must stop the member.
    pub halt: Option<HaltReason>,
    /// Facts for the host's trace.
    pub observe: Vec<Observation>,
}

impl Actions {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.disk.is_empty()
            && self.send.is_empty()
            && self.reply.is_empty()
            && self.notify.is_empty()
            && self.halt.is_none()
            && self.observe.is_empty()
    }

    /// Empties every list and option but keeps the lists' capacity, so a host can hand the same
    /// value to the next step (`Member::step_into`). Destructured in full: a new field must be
    /// cleared here or this stops compiling.
    pub fn clear(&mut self) {
        let Actions {
            disk,
            send,
            reply,
            notify,
            wake_at,
            halt,
            observe,
        } = self;
        disk.clear();
        send.clear();
        reply.clear();
        notify.clear();
        *wake_at = None;
        *halt = None;
        observe.clear();
    }
}
