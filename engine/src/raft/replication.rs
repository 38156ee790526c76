//! Log replication: the leader's appends, heartbeats and snapshots with flow control, the commit
//! rule, fast backtracking on rejection, and the follower's handling of all three.
//!
//! Elections and the term rules are in `election.rs`; this code assumes the message's term is
//! the current one.

use crate::raft::conf::quorum_value;
use crate::raft::progress::ProgressState;
use crate::raft::{MessageBody, Raft, Role, Snapshot};
use crate::types::{LogIndex, NodeId, Term};

impl Raft {
    /// Sends whatever each follower may receive now.
    pub(super) fn broadcast_append(&mut self) {
        // Sending changes progress but never adds or removes a member, so positions hold.
        for position in 0..self.progress.len() {
            let peer = self.progress.id_at(position);
            if peer == self.id() {
                continue;
            }
            // Fill the in-flight window (in probe the first send pauses the follower).
            if self.send_append(peer, true) {
                while self.send_append(peer, false) {}
            }
        }
    }

    /// Sends `to` its next append (or a snapshot if its next entry is compacted). Returns whether
    /// something was sent. `send_if_empty` also sends an append without entries (to carry the
    /// commit index or probe).
    pub(super) fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        assert_eq!(self.role, Role::Leader);
        let inflight_max = self.config.inflight_appends_count_max;
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused(inflight_max) {
            return false;
        }
        let next_index = progress.next_index;
        if !send_if_empty && next_index == self.log.last_index().next() {
            // The usual end of a fill loop: the follower has been sent everything. Decided
            // before copying entries; the general path below would find none and send nothing.
            return false;
        }
        let prev_log_index = LogIndex(next_index.0 - 1);
        let prev_term = self.log.term(prev_log_index);
        // Buggify: a one-entry append makes followers see many small, overlapping appends.
        let entries_count_max = if self.buggify.fires(crate::buggify::Point::TinyAppendBatch) {
            1
        } else {
            self.config.append_entries_count_max
        };
        let entries = self.log.entries_from(next_index, entries_count_max);
        let (Some(prev_log_term), Some(entries)) = (prev_term, entries) else {
            return self.send_snapshot(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last_sent = entries.last().map(|entry| entry.index);
        assert!(entries.len() <= self.config.append_entries_count_max);
        let commit_index = self.log.commit_index();
        let progress = self.progress.get_mut(&to).expect("checked above");
        progress.sent_append(last_sent, inflight_max);
        self.send(
            to,
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit_index,
            },
        );
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Some(snapshot) = self.log.snapshot_data().cloned() else {
            // NB: after a restart raft has only the snapshot's metadata until the host passes
            // the bytes again through `compact`; the follower waits until then.
            return false;
        };
        let progress = self.progress.get_mut(&to).expect("caller checked");
        progress.become_snapshot(snapshot.meta.index);
        self.send(to, MessageBody::InstallSnapshot { snapshot });
        crate::marks::hit(crate::marks::Mark::SnapshotSent);
        true
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let read_sequence = self.reads.last_sequence();
        for position in 0..self.progress.len() {
            let peer = self.progress.id_at(position);
            if peer == self.id() {
                continue;
            }
            // Never tell a follower to commit beyond what it is known to match.
            let match_index = self.progress[&peer].match_index;
            let commit_index = self.log.commit_index().min(match_index);
            self.send(
                peer,
                MessageBody::Heartbeat {
                    commit_index,
                    read_sequence,
                },
            );
        }
    }

    /// Advances the commit index to what a quorum holds durably, but only through an entry of
    /// the current term (Raft's Figure 8): earlier entries commit with it, never by counting.
    pub(super) fn maybe_commit(&mut self) -> bool {
        assert_eq!(self.role, Role::Leader);
        let quorum_index = LogIndex(quorum_value(&self.conf, |id| {
            self.progress
                .get(&id)
                .map_or(0, |progress| progress.match_index.0)
        }));
        // Zoo site (raft paper, Figure 8): committing an earlier term's entry by counting.
        let own_term = self.log.term(quorum_index) == Some(self.term);
        if quorum_index <= self.log.commit_index() || !(own_term || crate::bug!(FigureEightCommit))
        {
            return false;
        }
        let was_committed_in_term = self.committed_in_current_term();
        self.log.commit_to(quorum_index);
        if !was_committed_in_term {
            self.on_first_commit_in_term();
        }
        true
    }

    /// Whether the leader has committed an entry of its own term.
    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit_index()) == Some(self.term)
    }

    pub(super) fn on_append_request(
        &mut self,
        leader: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: &[crate::raft::Entry],
        leader_commit: LogIndex,
    ) {
        let commit_index = self.log.commit_index();
        if prev_log_index < commit_index {
            // Everything through our commit index matches the leader's log already.
            let body = MessageBody::AppendResponse {
                success: true,
                index: commit_index,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            };
            self.send(leader, body);
            return;
        }
        match self.log.try_append(prev_log_index, prev_log_term, entries) {
            Some(last_new) => {
                self.log.commit_to(leader_commit.min(last_new));
                let body = MessageBody::AppendResponse {
                    success: true,
                    index: last_new,
                    hint_index: LogIndex(0),
                    hint_term: Term(0),
                };
                self.send(leader, body);
            }
            None => {
                let (hint_index, hint_term) = if prev_log_index > self.log.last_index() {
                    (self.log.last_index(), Term(0))
                } else {
                    let term = self
                        .log
                        .term(prev_log_index)
                        .expect("beyond commit, so not compacted");
                    (self.log.first_index_of_term_at(prev_log_index), term)
                };
                let body = MessageBody::AppendResponse {
                    success: false,
                    index: prev_log_index,
                    hint_index,
                    hint_term,
                };
                self.send(leader, body);
            }
        }
    }

    pub(super) fn on_heartbeat(
        &mut self,
        leader: NodeId,
        leader_commit: LogIndex,
        read_sequence: u64,
    ) {
        // The leader sends at most our match index, which our log holds.
        self.log.commit_to(leader_commit.min(self.log.last_index()));
        self.send(leader, MessageBody::HeartbeatResponse { read_sequence });
    }

    pub(super) fn on_install_snapshot(&mut self, leader: NodeId, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if index <= self.log.commit_index() || self.snapshot_to_apply.is_some() {
            let commit_index = self.log.commit_index();
            self.send(
                leader,
                MessageBody::InstallSnapshotResponse {
                    index: commit_index,
                },
            );
            return;
        }
        if self.log.term(index) == Some(snapshot.meta.term) {
            // Our log already holds the snapshot's last entry: just learn that it is committed.
            self.log.commit_to(index);
        } else {
            crate::marks::hit(crate::marks::Mark::SnapshotInstalled);
            self.log.restore(snapshot.clone());
            self.unbatched_snapshot = Some(snapshot.clone());
            self.snapshot_to_apply = Some((self.next_persist_id, snapshot));
        }
        self.send(leader, MessageBody::InstallSnapshotResponse { index });
    }

    pub(super) fn on_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if !success {
            crate::marks::hit(crate::marks::Mark::AppendRejected);
            let candidate_next = self.next_index_from_hint(hint_index, hint_term);
            let progress = self.progress.get_mut(&from).expect("checked above");
            if progress.rejected(index, candidate_next) {
                self.send_append(from, true);
            }
            return;
        }
        if !progress.update_match(index) {
            return;
        }
        if progress.state != ProgressState::Replicate {
            progress.become_replicate();
        }
        if self.maybe_commit() {
            // Followers learn the new commit index at the next `ready`, in one round.
            self.append_broadcast_pending = true;
        }
        // Fill the in-flight window.
        while self.send_append(from, false) {}
        self.maybe_send_timeout_now(from);
    }

    /// The first index to retry after a rejection, from the follower's hint (the thesis's fast
    /// backtracking: skip a whole conflicting term per round trip).
    fn next_index_from_hint(&self, hint_index: LogIndex, hint_term: Term) -> LogIndex {
        if hint_term.0 == 0 {
            // The follower's log is shorter: continue right after its last entry.
            return hint_index.next();
        }
        // If we hold entries of the follower's conflicting term, retry after our last one.
        let last_of_term = (self.log.first_index().0..=self.log.last_index().0)
            .rev()
            .map(LogIndex)
            .find(|index| self.log.term(*index) == Some(hint_term));
        match last_of_term {
            Some(index) => index.next(),
            None => hint_index,
        }
    }

    pub(super) fn on_heartbeat_response(&mut self, from: NodeId, read_sequence: u64) {
        if self.role != Role::Leader {
            return;
        }
        let inflight_max = self.config.inflight_appends_count_max;
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if let ProgressState::Probe { paused } = &mut progress.state {
            *paused = false;
        }
        // A full window with nothing acknowledged for a heartbeat round suggests lost appends.
        if progress.state == ProgressState::Replicate && progress.is_paused(inflight_max) {
            progress.become_probe();
        }
        // The follower answers heartbeats but not the snapshot: the snapshot or its answer was
        // lost (a host reports no delivery failures). After an election timeout of heartbeats,
        // probe again; the probe is refused and leads to a fresh snapshot if still needed.
        if let ProgressState::Snapshot {
            heartbeats_answered_count,
            ..
        } = &mut progress.state
        {
            *heartbeats_answered_count += 1;
            if *heartbeats_answered_count >= self.config.election_timeout_ticks {
                progress.become_probe();
            }
        }
        if progress.match_index < last_index {
            self.send_append(from, true);
        }
        self.on_read_ack(from, read_sequence);
    }

    pub(super) fn on_install_snapshot_response(&mut self, from: NodeId, index: LogIndex) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        progress.update_match(index);
        progress.become_probe();
        self.send_append(from, true);
        self.maybe_send_timeout_now(from);
    }

    /// Hand over leadership once the transfer target has caught up.
    fn maybe_send_timeout_now(&mut self, from: NodeId) {
        let caught_up = self
            .progress
            .get(&from)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if self.transfer_target == Some(from) && caught_up {
            self.send(from, MessageBody::TimeoutNow);
        }
    }
}
