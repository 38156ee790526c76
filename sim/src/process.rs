//! The one module that touches the engine member: a simulated process that hosts one `Member`
//! through the host contract (`host::Hosting`, the same carrying-out of actions, timer, disk
//! queue and routing as the real server's), with its disk and clock; it prepares a start from
//! what the disk holds, catches a member's panics, and crashes, pauses and resumes it.
//!
//! It does not decide when anything happens (the world does, `world` and `hosted`). The rules
//! it shares with the real server come from `host`: the hosting, the FIFO disk queue, the
//! incarnation record (`host::incarnation`), the history lines (`host::history`), and the
//! conformance suite its disk passes (`sim/tests/host_conformance.rs`).

use std::cell::{Ref, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::rng::SimRng;
use crate::scenario::MemberTuning;
use engine::api::{Actions, DiskImage, DiskOp, Input};
use engine::member::{DurableFacts, Member, MemberConfig, RecoveryError, RecoveryReport};
use engine::types::{Instant, LogIndex, NodeId, Term};
use host::timer::TimerSlot;

/// Inputs buffered while a process is paused, at most; later ones are dropped (a full socket).
pub const INBOX_COUNT_MAX: usize = 4096;

/// A raft log sample: (index, term, payload digest) per retained entry, and the commit index.
pub type LogSample = (Vec<(LogIndex, Term, u64)>, LogIndex);

/// What the simulator needs from a member. The engine's `Member` is the one real implementation;
/// tests host small stand-ins through it to exercise the simulator's own paths (replies,
/// durability, recovery, the inline checks) end to end.
pub trait HostedMember: Sized {
    /// Starts a member from what its disk held.
    fn start(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Self, RecoveryReport), RecoveryError>;
    /// Feeds one input at the member's local time `now`.
    fn step(&mut self, now: Instant, input: Input) -> Actions;
    /// Like `step`, but into `out`, which arrives empty; a member may keep `out`'s emptied
    /// buffers for reuse. The default simply replaces `out`.
    fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions) {
        *out = self.step(now, input);
    }
    /// Its raft log as (index, term, digest) and its commit index, for the log checks; `None`
    /// for members without a raft log (stand-ins), which the log checks then skip.
    fn log_sample(&self) -> Option<LogSample> {
        None
    }
    /// What it holds as durable (hard state, end of log, synced index), for the checks of the
    /// persistence contract; `None` for members without a raft log.
    fn durable_facts(&self) -> Option<DurableFacts> {
        None
    }
    /// Its MVCC change log (compacted revision, retained changes), for the durability check;
    /// `None` for members without one.
    fn final_store(&self) -> Option<(i64, Vec<checkers::trace::StoreChange>)> {
        None
    }
}

impl HostedMember for Member {
    fn start(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Member, RecoveryReport), RecoveryError> {
        Member::new(config, image)
    }

    fn step(&mut self, now: Instant, input: Input) -> Actions {
        Member::step(self, now, input)
    }

    fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions) {
        Member::step_into(self, now, input, out);
    }

    fn log_sample(&self) -> Option<LogSample> {
        Some(self.raft_log_sample())
    }

    fn final_store(&self) -> Option<(i64, Vec<checkers::trace::StoreChange>)> {
        Some(crate::checking::final_store(self.store()))
    }

    fn durable_facts(&self) -> Option<DurableFacts> {
        Some(Member::durable_facts(self))
    }
}

/// A hosted member behind a panic guard, shared between the process's hosting (which steps it)
/// and the world (which reads it, also while the hosting carries out a step: a new leader's log
/// is sampled as it is observed). Single-threaded: a run never leaves its thread.
#[derive(Debug)]
pub struct Guarded<M> {
    inner: Rc<RefCell<GuardedMember<M>>>,
}

#[derive(Debug)]
struct GuardedMember<M> {
    member: M,
    /// Set when a step panicked: the member is not stepped again; the world kills the process.
    panicked: Option<String>,
}

impl<M> Guarded<M> {
    /// Takes the reason of a panic in the last step, if there was one.
    pub fn take_panic(&mut self) -> Option<String> {
        self.inner.borrow_mut().panicked.take()
    }
}

impl<M: HostedMember> host::Hosted for Guarded<M> {
    fn recover(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Guarded<M>, RecoveryReport), RecoveryError> {
        let (member, report) = M::start(config, image)?;
        let inner = Rc::new(RefCell::new(GuardedMember {
            member,
            panicked: None,
        }));
        Ok((Guarded { inner }, report))
    }

    fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions) {
        let mut guarded = self.inner.borrow_mut();
        if guarded.panicked.is_some() {
            return;
        }
        let member = &mut guarded.member;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| member.step_into(now, input, out))) {
            // Nothing of a step that panicked leaves the process.
            out.clear();
            guarded.panicked = Some(format!("member panicked: {}", panic_text(&panic)));
        }
    }
}

/// The host contract's hosting as the simulator uses it: requests and watch streams are named
/// by the world's operation ids.
pub type SimHosting<M> = host::Hosting<u64, u64, Guarded<M>>;

/// Where a process is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Running a member.
    Up,
    /// Stopped mid-flight; inputs are buffered; resumes with its state and stale timers.
    Paused,
    /// Crashed or halted; its disk lost what was not durable. May restart.
    Down,
    /// The member panicked or refused to recover; it stays down for the rest of the run.
    Dead {
        /// Why.
        reason: String,
    },
}

/// What a start needs, read from the disk: the member's configuration (seeded for this start)
/// and the engine's files.
#[derive(Debug)]
pub struct Prepared {
    /// The member's configuration.
    pub config: MemberConfig,
    /// The engine's files (the incarnation record taken out).
    pub image: DiskImage,
    /// Bytes of the engine's files, for the trace.
    pub engine_bytes: u64,
}

/// One simulated member process.
#[derive(Debug)]
pub struct Process<M: HostedMember = Member> {
    id: NodeId,
    voters: Vec<NodeId>,
    tuning: MemberTuning,
    /// The hosting while the process runs; the world takes it out for the length of a step.
    /// Boxed: a step moves it out and back, and moving the whole struct twice per step was a
    /// tenth of a run's instructions.
    hosting: Option<Box<SimHosting<M>>>,
    /// The member the hosting steps, for reading (`member`).
    member: Option<Guarded<M>>,
    state: ProcessState,
    /// Bumped at each crash, so events of an earlier life are recognised and ignored. Not the
    /// persisted start count (`host::incarnation`), which lives on the disk.
    incarnation: u32,
    /// The member's disk.
    pub disk: SimDisk,
    /// The member's clock.
    pub clock: SimClock,
    inbox: VecDeque<Input>,
    inbox_dropped_count: u64,
    /// The host contract's disk queue, for completion times: operations complete one at a
    /// time, in issue order (the hosting checks the completions against its own).
    disk_queue: host::disk::DiskQueue,
    /// The member's pending timer event in true time (the member asks in its local time).
    pub(crate) timer: TimerSlot,
    /// A crash point armed on this process (`aimed`), until it fires or the process crashes.
    pub(crate) aim: Option<crate::aimed::Aim>,
    /// The highest (term, index) acknowledgement recorded for the checkers in this life, so
    /// that only acknowledgements that extend the promise become trace events.
    pub(crate) acked_recorded: Option<(Term, LogIndex)>,
    /// The member's seed stream, never advanced: the seed of the start numbered `n` on this
    /// disk is its `n`-th value (`seed_of`), so a start's seed follows from the count on the
    /// disk alone, not from anything the host remembers.
    seed_stream: SimRng,
}

/// Why a start did not happen.
#[derive(Debug)]
pub enum StartFailure {
    /// The member will not run again (an unreadable disk, a damaged incarnation record, a
    /// refused recovery); the process is dead.
    Refused(String),
    /// The incarnation record could not be made durable (a write or sync failed, the disk was
    /// full): the member did not start; the process stays down and may try again later.
    NotRecorded(String),
}

impl<M: HostedMember> Process<M> {
    /// A process for member `id` of `voters`, not yet started. A member not among `voters`
    /// joins the running cluster when started (`MemberConfig::joining`).
    pub fn new(
        id: NodeId,
        voters: Vec<NodeId>,
        tuning: MemberTuning,
        disk: SimDisk,
        clock: SimClock,
        rng: SimRng,
    ) -> Process<M> {
        Process {
            id,
            voters,
            tuning,
            hosting: None,
            member: None,
            state: ProcessState::Down,
            incarnation: 0,
            disk,
            clock,
            inbox: VecDeque::new(),
            inbox_dropped_count: 0,
            disk_queue: host::disk::DiskQueue::new(),
            timer: TimerSlot::new(),
            aim: None,
            acked_recorded: None,
            seed_stream: rng,
        }
    }

    /// The member's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current state.
    pub fn state(&self) -> &ProcessState {
        &self.state
    }

    /// The current incarnation.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Reads what a start needs from the disk and records the start there first: the count of
    /// starts in the incarnation record (`host::incarnation`) is read, bumped and made durable
    /// (temp file, sync, rename, directory sync) before the member exists, and the member's
    /// seed follows from the new count (`seed_of`). A restart from whatever the disk held thus
    /// gets a seed no earlier start on that disk had, even though the process forgot everything.
    ///
    /// NB: the record's operations run at the instant of the start and take no simulated
    /// time, so a start happens when it always did and seeds keep their trace hashes; a crash
    /// between the record and the member's start is not simulated (`host::incarnation`'s tests
    /// cover the temp file such a crash leaves). Likewise faults armed on the disk wait for the
    /// engine's operations (`SimDisk::perform_sheltered`), and random bit flips and read errors
    /// aim at the engine's files only (`SimDisk::random_stored_byte`): a damaged record (one
    /// that does not parse) refuses the start, and a record that cannot be written (a full
    /// disk) is `StartFailure::NotRecorded`, which the world retries later.
    pub fn prepare_start(&mut self, now: Instant) -> Result<Prepared, StartFailure> {
        assert_eq!(self.state, ProcessState::Down, "only a down process starts");
        let mut image = match self.disk.image() {
            Ok(image) => image,
            Err(reason) => {
                let reason = format!("the disk could not be read: {reason}");
                return Err(StartFailure::Refused(self.refuse_start(reason)));
            }
        };
        let (incarnation, ops) = match host::incarnation::next(&mut image, 0) {
            Ok(next) => next,
            Err(reason) => return Err(StartFailure::Refused(self.refuse_start(reason))),
        };
        for op in &ops {
            if let Err(fault) = self.disk.perform_sheltered(op, now) {
                return Err(StartFailure::NotRecorded(format!(
                    "the start count could not be recorded: {fault:?}"
                )));
            }
        }
        let seed = self.seed_of(incarnation.number);
        let mut config = MemberConfig::new(self.id, self.voters.clone(), seed);
        config.joining = !self.voters.contains(&self.id);
        config.snapshot_interval_entries = self.tuning.snapshot_interval_entries;
        config.wal_segment_bytes_max = self.tuning.wal_segment_bytes_max;
        config.kv_hash_interval_entries = self.tuning.kv_hash_interval_entries;
        config.watch_pending_events_count_max = self.tuning.watch_pending_events_count_max;
        config.watch_catch_up_events_per_step_max = self.tuning.watch_catch_up_events_per_step_max;
        config.bugs = self.tuning.bugs;
        config.buggify = self.tuning.buggify;
        let engine_bytes = image.values().map(|bytes| bytes.len() as u64).sum();
        Ok(Prepared {
            config,
            image,
            engine_bytes,
        })
    }

    /// The member's seed for the start numbered `number` (1 for the first) on this disk: the
    /// `number`-th value of the member's stream, the values the process drew per start before
    /// the count was persisted, so existing seeds keep their runs.
    pub fn seed_of(&self, number: u64) -> u64 {
        assert!(number >= 1, "starts are numbered from 1");
        let mut stream = self.seed_stream.clone();
        for _ in 1..number {
            let _ = stream.next_u64();
        }
        stream.next_u64()
    }

    /// Recovers the member from `prepared` (not yet kicked: the world records the recovery
    /// first, then kicks it). Returns recovery notes, or why it refused (the process is then
    /// dead).
    pub fn recover(&mut self, prepared: Prepared) -> Result<Vec<String>, String> {
        let Prepared { config, image, .. } = prepared;
        match catch_unwind(AssertUnwindSafe(|| SimHosting::<M>::recover(config, image))) {
            Ok(Ok((hosting, report))) => {
                self.member = Some(Guarded {
                    inner: Rc::clone(&hosting.member().inner),
                });
                self.hosting = Some(Box::new(hosting));
                self.state = ProcessState::Up;
                Ok(report.notes)
            }
            Ok(Err(error)) => Err(self.refuse_start(format!("recovery refused: {error:?}"))),
            Err(panic) => {
                Err(self.refuse_start(format!("recovery panicked: {}", panic_text(&panic))))
            }
        }
    }

    /// The process will not run again: `reason` says why.
    pub fn refuse_start(&mut self, reason: String) -> String {
        self.die(reason.clone());
        reason
    }

    /// The member died (a panic, a refused start): it stays down for the rest of the run.
    pub fn die(&mut self, reason: String) {
        self.hosting = None;
        self.member = None;
        self.state = ProcessState::Dead { reason };
    }

    /// Takes the hosting out for one step (the world lends itself to it as the `host::Io`).
    /// `None` unless the process is up.
    pub fn take_hosting(&mut self) -> Option<Box<SimHosting<M>>> {
        if self.state != ProcessState::Up {
            return None;
        }
        self.hosting.take()
    }

    /// Puts the hosting back after a step, unless the process crashed or died meanwhile (its
    /// member's life is over, and with it the hosting).
    pub fn put_hosting(&mut self, hosting: Box<SimHosting<M>>, incarnation: u32) {
        let running = matches!(self.state, ProcessState::Up | ProcessState::Paused);
        if running && self.incarnation == incarnation && self.member.is_some() {
            self.hosting = Some(hosting);
        }
    }

    /// Holds `input` while paused; it is dropped when the inbox is full (a full socket), except
    /// a disk completion: the disk completes whether or not the process reads, and the hosting
    /// checks that completions come in issue order.
    pub fn buffer(&mut self, input: Input) {
        if self.inbox.len() < INBOX_COUNT_MAX || matches!(input, Input::DiskDone { .. }) {
            self.inbox.push_back(input);
        } else {
            self.inbox_dropped_count += 1;
        }
    }

    /// Crashes the process: the member's memory is gone, and so is every write its disk had not
    /// made durable. Returns false if it was not running.
    pub fn crash(&mut self) -> bool {
        if !matches!(self.state, ProcessState::Up | ProcessState::Paused) {
            return false;
        }
        self.hosting = None;
        self.member = None;
        self.state = ProcessState::Down;
        self.incarnation += 1;
        self.inbox.clear();
        self.timer.clear();
        self.aim = None;
        self.acked_recorded = None;
        self.disk.crash();
        true
    }

    /// Pauses a running process. Returns false if it was not running.
    pub fn pause(&mut self) -> bool {
        if self.state != ProcessState::Up {
            return false;
        }
        self.state = ProcessState::Paused;
        true
    }

    /// Resumes a paused process and hands back the inputs that arrived meanwhile, in order.
    pub fn resume(&mut self) -> Vec<Input> {
        if self.state != ProcessState::Paused {
            return Vec::new();
        }
        self.state = ProcessState::Up;
        self.inbox.drain(..).collect()
    }

    /// Reserves the disk for `op` issued at `now` and returns when it completes (after every
    /// earlier operation of this process: the host contract's FIFO disk queue).
    pub fn disk_completion_time(&mut self, op: &DiskOp, now: Instant) -> Instant {
        // The latency is drawn at the time the disk frees up, as it always was here.
        let start = self.disk_queue.reserve(now, engine::types::Duration(0));
        let latency = self.disk.latency(op, start);
        self.disk_queue.reserve(start, latency)
    }

    /// Whether the process counts as down for the fault budget.
    pub fn is_down(&self) -> bool {
        self.state != ProcessState::Up
    }

    /// The hosted member while it is up or paused (a down process holds only its disk).
    pub fn member(&self) -> Option<Ref<'_, M>> {
        match self.state {
            ProcessState::Up | ProcessState::Paused => self
                .member
                .as_ref()
                .map(|guarded| Ref::map(guarded.inner.borrow(), |inner| &inner.member)),
            ProcessState::Down | ProcessState::Dead { .. } => None,
        }
    }

    /// Inputs dropped because the inbox was full during a pause.
    pub fn inbox_dropped_count(&self) -> u64 {
        self.inbox_dropped_count
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{Process, ProcessState};
    use crate::clock::SimClock;
    use crate::disk::{DiskConfig, SimDisk};
    use crate::rng::{SimRng, Stream};
    use engine::api::{DiskOp, FileName, Input};
    use engine::types::{Instant, NodeId};

    fn process() -> Process {
        let config = DiskConfig {
            torn_tail_ppm: 0,
            ..DiskConfig::ssd()
        };
        let disk = SimDisk::new(config, SimRng::for_stream(1, Stream::Disk(0)));
        let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        Process::new(
            NodeId(1),
            voters,
            crate::scenario::MemberTuning::frequent_snapshots(),
            disk,
            SimClock::new(0),
            SimRng::for_stream(1, Stream::Member(0)),
        )
    }

    fn start(process: &mut Process) {
        let prepared = process.prepare_start(Instant(0)).expect("the disk reads");
        process.recover(prepared).expect("the member recovers");
    }

    /// Goal: the life cycle works as the world relies on: a paused process buffers inputs and
    /// hands them back in order on resume; a crash bumps the incarnation, drops the inbox, the
    /// hosting and the unsynced disk state; a down process cannot crash again and restarts.
    /// Method: drive one process through start, pause, crash and restart.
    #[test]
    fn life_cycle_pause_crash_restart() {
        let mut process = process();
        start(&mut process);
        assert_eq!(process.state(), &ProcessState::Up);
        assert!(process.member().is_some());
        assert!(process.pause());
        assert!(
            process.take_hosting().is_none(),
            "a paused process is not stepped"
        );
        process.buffer(Input::Timer);
        process.buffer(Input::Timer);
        assert_eq!(process.resume().len(), 2);
        assert_eq!(process.state(), &ProcessState::Up);
        let file = FileName("wal".into());
        process
            .disk
            .perform(&DiskOp::Create { file: file.clone() }, Instant(4))
            .unwrap();
        process.disk.perform(&DiskOp::SyncDir, Instant(4)).unwrap();
        process
            .disk
            .perform(
                &DiskOp::Append {
                    file,
                    bytes: vec![1; 10],
                },
                Instant(4),
            )
            .unwrap();
        let hosting = process
            .take_hosting()
            .expect("an up process has its hosting");
        assert!(process.pause());
        assert!(process.crash());
        process.put_hosting(hosting, 0);
        assert!(
            process.take_hosting().is_none(),
            "a crashed life's hosting is dropped"
        );
        assert_eq!(process.incarnation(), 1);
        assert!(process.member().is_none());
        assert!(process.resume().is_empty());
        assert!(!process.crash(), "a down process cannot crash again");
        start(&mut process);
        assert!(process.take_hosting().is_some());
    }

    /// Goal: the seed of a start follows from the count on the disk, not from the process's
    /// memory: a fresh process on the disk of an earlier one (the host lost everything) gets
    /// the next seed, never a repeat; a damaged record refuses the start.
    /// Method: start and crash one process twice, move its disk to a new process, start that;
    /// then damage the record and start again.
    #[test]
    fn the_start_count_lives_on_the_disk() {
        let mut first = process();
        let mut seeds = Vec::new();
        for _ in 0..2 {
            let prepared = first.prepare_start(Instant(0)).expect("the disk reads");
            seeds.push(prepared.config.seed);
            assert!(
                prepared.image.is_empty(),
                "the engine never sees the record"
            );
            first.recover(prepared).expect("recovers");
            assert!(first.crash());
        }
        let mut fresh = process();
        fresh.disk = std::mem::replace(&mut first.disk, process().disk);
        let prepared = fresh.prepare_start(Instant(0)).expect("the disk reads");
        assert_eq!(prepared.config.seed, fresh.seed_of(3));
        assert!(!seeds.contains(&prepared.config.seed), "{seeds:?}");
        assert_eq!(seeds, vec![fresh.seed_of(1), fresh.seed_of(2)]);
        fresh.recover(prepared).expect("recovers");
        assert!(fresh.crash());
        let record = FileName(host::incarnation::INCARNATION_FILE_NAME.into());
        for op in [
            DiskOp::Create {
                file: record.clone(),
            },
            DiskOp::Append {
                file: record.clone(),
                bytes: b"\0\0".to_vec(),
            },
            DiskOp::Sync { file: record },
            DiskOp::SyncDir,
        ] {
            fresh.disk.perform(&op, Instant(1)).unwrap();
        }
        fresh.disk.crash();
        match fresh.prepare_start(Instant(2)) {
            Err(super::StartFailure::Refused(reason)) => {
                assert!(reason.contains("not a start count"), "{reason}");
            }
            other => panic!("a damaged record must refuse the start: {other:?}"),
        }
        assert!(matches!(fresh.state(), ProcessState::Dead { .. }));
    }

    /// Goal: disk operations of one process complete in issue order, never overlapping.
    /// Method: issue several operations at one instant and check completion times increase.
    #[test]
    fn disk_operations_complete_in_order() {
        let mut process = process();
        let ops = [DiskOp::SyncDir, DiskOp::SyncDir, DiskOp::SyncDir];
        let times: Vec<Instant> = ops
            .iter()
            .map(|op| process.disk_completion_time(op, Instant(100)))
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
        assert!(times[0] > Instant(100));
    }
}
