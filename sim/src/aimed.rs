//! Aimed faults: crash points at durability boundaries, and a bit flip in the synced middle of
//! the newest WAL segment.
//!
//! A random crash rarely lands in the few hundred microseconds between a member releasing a
//! promise (a vote, an acknowledgement) and the sync that backs it, which is where durability-
//! order bugs do their harm. A crash point is armed on one member (drawn from the fault stream,
//! within the fault budget) and fires when that member next reaches its boundary: the world sees
//! every `Actions` it carries out, so it knows when a vote or an acknowledgement leaves, when a
//! sync is issued and when it will complete. When exactly the crash comes inside the window is
//! drawn from the aim stream, so the fault schedule does not shift with the members' timing.
//!
//! This module does not decide how often faults come (`faults` does) and never looks inside the
//! member: it reads only the actions a host must carry out anyway.

use engine::api::DiskOp;
use engine::raft::MessageBody;
use engine::types::{Duration, Instant, LogIndex, NodeId};

use crate::process::HostedMember;
use crate::world::{Event, World};

/// Where an armed crash point fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AimTrigger {
    /// Right after the member sends a granted vote.
    VoteSent,
    /// Right after it sends a successful append acknowledgement.
    AckSent,
    /// Right after it (as leader) sends a snapshot.
    SnapshotSent,
    /// While a sync it issued is in flight (between a write and its sync, or during the sync).
    SyncInFlight,
    /// Between a snapshot save and the WAL release around it: inside the disk operations that
    /// write a snapshot file or remove a WAL segment.
    SnapshotRelease,
}

impl AimTrigger {
    const ALL: [AimTrigger; 5] = [
        AimTrigger::VoteSent,
        AimTrigger::AckSent,
        AimTrigger::SnapshotSent,
        AimTrigger::SyncInFlight,
        AimTrigger::SnapshotRelease,
    ];

    fn name(self) -> &'static str {
        match self {
            AimTrigger::VoteSent => "vote_sent",
            AimTrigger::AckSent => "ack_sent",
            AimTrigger::SnapshotSent => "snapshot_sent",
            AimTrigger::SyncInFlight => "sync_in_flight",
            AimTrigger::SnapshotRelease => "snapshot_release",
        }
    }

    /// Whether `message` is the one this trigger waits for.
    fn matches_send(self, message: &MessageBody) -> bool {
        matches!(
            (self, message),
            (
                AimTrigger::VoteSent,
                MessageBody::VoteResponse {
                    pre_vote: false,
                    granted: true,
                },
            ) | (
                AimTrigger::AckSent,
                MessageBody::AppendResponse { success: true, .. }
            ) | (
                AimTrigger::SnapshotSent,
                MessageBody::InstallSnapshot { .. }
            )
        )
    }

    /// Whether `op` opens this trigger's window.
    fn matches_disk(self, op: &DiskOp) -> bool {
        match (self, op) {
            (AimTrigger::SyncInFlight, DiskOp::Sync { .. }) => true,
            (AimTrigger::SnapshotRelease, DiskOp::Create { file }) => file.0.starts_with("snap-"),
            (AimTrigger::SnapshotRelease, DiskOp::Remove { file }) => file.0.starts_with("wal-"),
            _ => false,
        }
    }
}

/// A crash point armed on one process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aim {
    trigger: AimTrigger,
    armed_at: Instant,
}

impl Aim {
    /// Whether disk operation `op` opens this crash point's window.
    pub(crate) fn matches_disk(self, op: &DiskOp) -> bool {
        self.trigger.matches_disk(op)
    }
}

/// An armed crash point that the member has not reached within this is dropped: a member that
/// never votes again must not hold a crash for the rest of the run.
const AIM_EXPIRY_NS: u64 = 10_000_000_000;

/// Bytes of synced WAL that must follow an aimed bit flip: more than any record, so that intact
/// records follow the damaged one and a correct recovery refuses instead of cutting a torn tail.
pub(crate) const WAL_FLIP_MARGIN_BYTES: usize = 16 * 1024;

impl<M: HostedMember> World<M> {
    /// Arms a crash point on a random running member, if the budget allows one more down.
    pub(crate) fn arm_crash_point(&mut self, now: Instant) {
        if self.down_count() >= self.down_members_allowed() {
            return self.refuse(now, "crash_point", "budget");
        }
        let up = self.up_nodes();
        let Some(node) = self.random_node(&up) else {
            return;
        };
        let trigger_index = self.fault_rng.below(AimTrigger::ALL.len() as u64) as usize;
        self.arm_crash_point_on(
            now,
            node,
            crate::timeline::CrashPointTrigger::ALL[trigger_index],
        );
    }

    /// Arms a crash point at `trigger` on member `node`, and records it.
    pub(crate) fn arm_crash_point_on(
        &mut self,
        now: Instant,
        node: usize,
        trigger: crate::timeline::CrashPointTrigger,
    ) {
        let position = crate::timeline::CrashPointTrigger::ALL
            .iter()
            .position(|candidate| *candidate == trigger)
            .expect("every trigger is listed");
        let aim_trigger = AimTrigger::ALL[position];
        self.processes[node].aim = Some(Aim {
            trigger: aim_trigger,
            armed_at: now,
        });
        let id = self.processes[node].id();
        self.trace.event(
            now,
            format_args!("n{id} crash point armed at {}", aim_trigger.name()),
        );
        self.record_ran(
            now,
            crate::timeline::ScriptedFault::CrashPoint {
                target: crate::timeline::member_target(id),
                trigger,
            },
        );
    }

    /// Looks at the messages member `node` is about to send (the hosting asks before it sends:
    /// `host::Io::before_send`) for its armed send trigger and the facts the checkers need:
    /// granted votes and acknowledgements. `disk_window_end` is when the last disk operation of
    /// the same step completes, given only when one of them matched the armed disk trigger.
    pub(crate) fn inspect_actions(
        &mut self,
        now: Instant,
        node: usize,
        messages: &[engine::api::Envelope],
        disk_window_end: Option<Instant>,
    ) {
        if let Some(aim) = self.processes[node].aim {
            if now.0 > aim.armed_at.0.saturating_add(AIM_EXPIRY_NS) {
                self.processes[node].aim = None;
            } else {
                let sent = messages
                    .iter()
                    .any(|envelope| aim.trigger.matches_send(&envelope.message.body));
                let window_end = if sent {
                    Some(now + Duration(self.scenario.disk.sync_latency_ns_max))
                } else {
                    disk_window_end
                };
                if let Some(end) = window_end {
                    self.fire_crash_point_later(now, node, aim.trigger, end);
                }
            }
        }
        let id = self.processes[node].id();
        for envelope in messages {
            match envelope.message.body {
                MessageBody::VoteResponse {
                    pre_vote: false,
                    granted: true,
                } => self.record_vote(now, id, envelope.to, envelope.message.term),
                MessageBody::AppendResponse {
                    success: true,
                    index,
                    ..
                } => {
                    self.record_ack(now, node, envelope.message.term, index);
                    self.figure_eight_on_ack(node, envelope.to, index);
                }
                _ => {}
            }
        }
    }

    fn fire_crash_point_later(
        &mut self,
        now: Instant,
        node: usize,
        trigger: AimTrigger,
        window_end: Instant,
    ) {
        self.processes[node].aim = None;
        let span_ns = window_end.0.saturating_sub(now.0);
        let at = now + Duration(self.aim_rng.range_inclusive(0, span_ns));
        let id = self.processes[node].id();
        self.trace.event(
            now,
            format_args!(
                "n{id} crash point reached {} fires_in_ns={}",
                trigger.name(),
                at.0 - now.0
            ),
        );
        let incarnation = self.processes[node].incarnation();
        self.queue
            .schedule(at, Event::CrashPoint { node, incarnation });
    }

    /// The armed crash point fires, if the member is still in the life that reached it and the
    /// budget still allows it.
    pub(crate) fn crash_point(&mut self, now: Instant, node: usize, incarnation: u32) {
        let stale = self.processes[node].incarnation() != incarnation;
        if stale || self.processes[node].is_down() || self.phase != crate::world::Phase::Safety {
            return;
        }
        if self.down_count() >= self.down_members_allowed() {
            return self.refuse(now, "crash_point", "budget");
        }
        self.crash_member(now, node);
    }

    fn record_vote(
        &mut self,
        now: Instant,
        id: NodeId,
        candidate: NodeId,
        term: engine::types::Term,
    ) {
        self.check_trace
            .push(checkers::trace::TraceEvent::VoteGranted {
                member: crate::checking::member(id),
                term: checkers::trace::Term(term.0),
                candidate: crate::checking::member(candidate),
                time: crate::checking::time_of(now),
            });
    }

    /// Records an acknowledgement that extends what the member promised in this life, or one
    /// beyond what it had synced (a violation either way it is counted).
    fn record_ack(
        &mut self,
        now: Instant,
        node: usize,
        term: engine::types::Term,
        index: LogIndex,
    ) {
        let process = &self.processes[node];
        let Some(facts) = process.member().and_then(|member| member.durable_facts()) else {
            return;
        };
        // A stale acknowledgement (the member has moved to a later term since it was held
        // back) promises nothing its leader will count.
        if facts.term != term {
            return;
        }
        let extends = process
            .acked_recorded
            .is_none_or(|recorded| recorded < (term, index));
        if !extends && index <= facts.synced_index {
            return;
        }
        self.processes[node].acked_recorded = Some((term, index));
        let id = self.processes[node].id();
        self.check_trace
            .push(checkers::trace::TraceEvent::AppendAcked {
                member: crate::checking::member(id),
                term: checkers::trace::Term(term.0),
                index: checkers::trace::LogIndex(index.0),
                synced_index: checkers::trace::LogIndex(facts.synced_index.0),
                time: crate::checking::time_of(now),
            });
    }

    /// What member `node` recovered at a restart, for `acknowledged_durability`.
    pub(crate) fn record_recovered(&mut self, now: Instant, node: usize) {
        let id = self.processes[node].id();
        let Some(facts) = self.processes[node]
            .member()
            .and_then(|member| member.durable_facts())
        else {
            return;
        };
        self.check_trace
            .push(checkers::trace::TraceEvent::Recovered {
                member: crate::checking::member(id),
                term: checkers::trace::Term(facts.term.0),
                vote: crate::checking::member(facts.vote),
                last_index: checkers::trace::LogIndex(facts.last_index.0),
                last_term: checkers::trace::Term(facts.last_term.0),
                time: crate::checking::time_of(now),
            });
    }

    /// Flips a bit in the synced middle of a member's newest WAL segment, then crashes it so its
    /// recovery reads the damage. A correct member refuses to start (a fair fail-stop, since the
    /// member counts as corrupted); one that cuts intact records as a torn tail loses what it
    /// acknowledged, which `acknowledged_durability` sees.
    pub(crate) fn wal_flip_fault(&mut self, now: Instant) {
        let eligible: Vec<usize> = self
            .up_nodes()
            .into_iter()
            .filter(|node| self.wal_flip_allowed(*node))
            .collect();
        let Some(node) = self.random_node(&eligible) else {
            return self.refuse(now, "wal_flip", "budget");
        };
        self.wal_flip_on(now, node);
    }

    /// Whether member `node` may take a WAL flip within the corruption budget.
    pub(crate) fn wal_flip_allowed(&self, node: usize) -> bool {
        (self.corrupted.len() as u32) < self.corrupted_members_allowed()
            || self.corrupted.contains(&self.processes[node].id())
    }

    /// Flips a bit in the synced middle of member `node`'s WAL and crashes it (the caller
    /// checked the budget), and records it.
    pub(crate) fn wal_flip_on(&mut self, now: Instant, node: usize) {
        let Some(description) = self.processes[node]
            .disk
            .flip_synced_wal_middle(WAL_FLIP_MARGIN_BYTES)
        else {
            return;
        };
        let id = self.processes[node].id();
        if !self.corrupted.contains(&id) {
            self.corrupted.push(id);
        }
        self.counts.disk_faults += 1;
        self.trace
            .event(now, format_args!("n{id} disk {description}"));
        self.record_ran(
            now,
            crate::timeline::ScriptedFault::WalFlip {
                target: crate::timeline::member_target(id),
            },
        );
        if self.down_count() < self.down_members_allowed() {
            self.crash_member(now, node);
        }
    }
}
