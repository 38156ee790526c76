//! The one module that touches the engine member: a simulated process that hosts one `Member`
//! with its disk and clock, starts it from what the disk holds, steps it (catching panics), and
//! crashes, pauses and resumes it.
//!
//! It does not decide when anything happens (the world does) and does not interpret `Actions`
//! beyond queueing disk operations. The rules it shares with the real server come from the host
//! contract (`host`): the FIFO disk queue here, the history lines (`host::history`), and the
//! conformance suite its disk passes (`sim/tests/host_conformance.rs`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use engine::api::{Actions, DiskImage, DiskOp, Input};
use engine::member::{DurableFacts, Member, MemberConfig, RecoveryError, RecoveryReport};
use engine::types::{Instant, LogIndex, NodeId, Term};

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::rng::SimRng;
use crate::scenario::MemberTuning;

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

/// What a step produced.
#[derive(Debug)]
pub enum StepOutcome {
    /// The member ran and wrote what it asks into the caller's `Actions`.
    Ran,
    /// The process is paused: the input was buffered (or dropped when the inbox was full).
    Buffered,
    /// The process is down or dead: the input was lost.
    NotRunning,
    /// The member panicked; the process is now dead.
    Panicked(String),
}

/// One simulated member process.
#[derive(Debug)]
pub struct Process<M: HostedMember = Member> {
    id: NodeId,
    voters: Vec<NodeId>,
    tuning: MemberTuning,
    member: Option<M>,
    state: ProcessState,
    /// Bumped at each crash, so events of an earlier life are recognised and ignored.
    incarnation: u32,
    /// The member's disk.
    pub disk: SimDisk,
    /// The member's clock.
    pub clock: SimClock,
    inbox: VecDeque<Input>,
    inbox_dropped_count: u64,
    /// The host contract's disk queue: operations complete one at a time, in issue order.
    disk_queue: host::disk::DiskQueue,
    /// True time of the member's pending timer event, if one is scheduled.
    pub timer_at: Option<Instant>,
    /// A crash point armed on this process (`aimed`), until it fires or the process crashes.
    pub(crate) aim: Option<crate::aimed::Aim>,
    /// The highest (term, index) acknowledgement recorded for the checkers in this life, so
    /// that only acknowledgements that extend the promise become trace events.
    pub(crate) acked_recorded: Option<(Term, LogIndex)>,
    rng: SimRng,
}

impl<M: HostedMember> Process<M> {
    /// A process for member `id` of `voters`, not yet started.
    pub fn new(
        id: NodeId,
        voters: Vec<NodeId>,
        tuning: MemberTuning,
        disk: SimDisk,
        clock: SimClock,
        rng: SimRng,
    ) -> Process<M> {
        assert!(voters.contains(&id));
        Process {
            id,
            voters,
            tuning,
            member: None,
            state: ProcessState::Down,
            incarnation: 0,
            disk,
            clock,
            inbox: VecDeque::new(),
            inbox_dropped_count: 0,
            disk_queue: host::disk::DiskQueue::new(),
            timer_at: None,
            aim: None,
            acked_recorded: None,
            rng,
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

    /// Starts the member from what its disk holds. Returns recovery notes, or why it refused
    /// (the process is then dead).
    pub fn start(&mut self) -> Result<Vec<String>, String> {
        assert_eq!(self.state, ProcessState::Down, "only a down process starts");
        let mut config = MemberConfig::new(self.id, self.voters.clone(), self.rng.next_u64());
        config.snapshot_interval_entries = self.tuning.snapshot_interval_entries;
        config.wal_segment_bytes_max = self.tuning.wal_segment_bytes_max;
        config.kv_hash_interval_entries = self.tuning.kv_hash_interval_entries;
        config.watch_pending_events_count_max = self.tuning.watch_pending_events_count_max;
        config.watch_catch_up_events_per_step_max = self.tuning.watch_catch_up_events_per_step_max;
        config.bugs = self.tuning.bugs;
        config.buggify = self.tuning.buggify;
        let image = match self.disk.image() {
            Ok(image) => image,
            Err(reason) => {
                let reason = format!("the disk could not be read: {reason}");
                self.state = ProcessState::Dead {
                    reason: reason.clone(),
                };
                return Err(reason);
            }
        };
        match catch_unwind(AssertUnwindSafe(|| M::start(config, image))) {
            Ok(Ok((member, report))) => {
                self.member = Some(member);
                self.state = ProcessState::Up;
                Ok(report.notes)
            }
            Ok(Err(error)) => {
                let reason = format!("recovery refused: {error:?}");
                self.state = ProcessState::Dead {
                    reason: reason.clone(),
                };
                Err(reason)
            }
            Err(panic) => {
                let reason = format!("recovery panicked: {}", panic_text(&panic));
                self.state = ProcessState::Dead {
                    reason: reason.clone(),
                };
                Err(reason)
            }
        }
    }

    /// Feeds `input` at true time `true_now`; the member sees its local clock. `out` must arrive
    /// empty; after `Ran` it holds the member's actions. Inlined into the world's one caller,
    /// which saves copying the input once more per step.
    #[inline]
    pub fn step(&mut self, true_now: Instant, input: Input, out: &mut Actions) -> StepOutcome {
        match self.state {
            ProcessState::Up => {}
            ProcessState::Paused => {
                if self.inbox.len() < INBOX_COUNT_MAX {
                    self.inbox.push_back(input);
                } else {
                    self.inbox_dropped_count += 1;
                }
                return StepOutcome::Buffered;
            }
            ProcessState::Down | ProcessState::Dead { .. } => return StepOutcome::NotRunning,
        }
        let local_now = self.clock.local(true_now);
        let member = self.member.as_mut().expect("an up process has a member");
        match catch_unwind(AssertUnwindSafe(|| member.step_into(local_now, input, out))) {
            Ok(()) => StepOutcome::Ran,
            Err(panic) => {
                let reason = format!("member panicked: {}", panic_text(&panic));
                self.member = None;
                self.state = ProcessState::Dead {
                    reason: reason.clone(),
                };
                StepOutcome::Panicked(reason)
            }
        }
    }

    /// Crashes the process: the member's memory is gone, and so is every write its disk had not
    /// made durable. Returns false if it was not running.
    pub fn crash(&mut self) -> bool {
        if !matches!(self.state, ProcessState::Up | ProcessState::Paused) {
            return false;
        }
        self.member = None;
        self.state = ProcessState::Down;
        self.incarnation += 1;
        self.inbox.clear();
        self.timer_at = None;
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
    pub fn member(&self) -> Option<&M> {
        match self.state {
            ProcessState::Up | ProcessState::Paused => self.member.as_ref(),
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
    use super::{Process, ProcessState, StepOutcome};
    use crate::clock::SimClock;
    use crate::disk::{DiskConfig, SimDisk};
    use crate::rng::{SimRng, Stream};
    use engine::api::{Actions, DiskOp, FileName, Input};
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

    /// Goal: the life cycle works as the world relies on: a paused process buffers inputs and
    /// hands them back in order on resume; a crash bumps the incarnation, drops the inbox and
    /// the unsynced disk state; a down process ignores inputs until restarted.
    /// Method: drive one process through start, pause, crash and restart.
    #[test]
    fn life_cycle_pause_crash_restart() {
        let mut process = process();
        assert!(process.start().is_ok());
        assert!(matches!(
            process.step(Instant(1), Input::Timer, &mut Actions::default()),
            StepOutcome::Ran
        ));
        assert!(process.pause());
        assert!(matches!(
            process.step(Instant(2), Input::Timer, &mut Actions::default()),
            StepOutcome::Buffered
        ));
        assert!(matches!(
            process.step(Instant(3), Input::Timer, &mut Actions::default()),
            StepOutcome::Buffered
        ));
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
        assert!(process.pause());
        assert!(process.crash());
        assert_eq!(process.incarnation(), 1);
        assert_eq!(process.disk.used_bytes(), 0, "unsynced bytes are lost");
        assert!(matches!(
            process.step(Instant(5), Input::Timer, &mut Actions::default()),
            StepOutcome::NotRunning
        ));
        assert!(process.resume().is_empty());
        assert!(!process.crash(), "a down process cannot crash again");
        assert!(process.start().is_ok());
        assert!(matches!(
            process.step(Instant(6), Input::Timer, &mut Actions::default()),
            StepOutcome::Ran
        ));
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
