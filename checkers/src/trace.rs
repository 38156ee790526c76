//! Raft invariants, durability and liveness over a cluster trace: the events a host (the
//! simulator) reports about its members, serialisable as trace.jsonl.
//!
//! The checks: election safety (one leader per term), log matching (same index and term, same
//! entry and same prefix), leader completeness (a new leader holds every entry committed before
//! its term), state-machine safety (one entry applied per index), equal KV hashes at equal applied
//! indexes, durability (every acknowledged write is in every member's final store that reached
//! its revision), the persistence contract per member (`acknowledged`: a vote or an append
//! acknowledgement is never lost by a restart, and never sent before its sync), and liveness (after the last fault heals, a leader exists and a write commits
//! within a bound). It does not produce traces, and it trusts the host's digests.

use crate::history::{Bytes, History, Request, Response};
use crate::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A cluster member (never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u64);

/// A raft term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Term(pub u64);

/// A raft log position (1 is the first entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogIndex(pub u64);

/// One raft log entry as sampled: position, term and a digest of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position.
    pub index: LogIndex,
    /// Term.
    pub term: Term,
    /// Digest of the payload.
    pub digest: u64,
}

/// One change in a member's final MVCC store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreChange {
    /// Revision of the change.
    pub revision: i64,
    /// The key.
    pub key: Bytes,
    /// The new value, `None` for a deletion.
    pub value: Option<Bytes>,
}

/// What a host reports about its members. Times are the history's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A member became leader of a term.
    LeaderElected {
        /// Who.
        member: MemberId,
        /// Of which term.
        term: Term,
        /// When.
        time: i64,
    },
    /// A member applied a log entry to its state machine.
    Applied {
        /// Who.
        member: MemberId,
        /// Position.
        index: LogIndex,
        /// The entry's term.
        term: Term,
        /// Digest of the entry.
        digest: u64,
    },
    /// A member's KV hash at an applied index.
    KvHash {
        /// Who.
        member: MemberId,
        /// Applied index.
        index: LogIndex,
        /// MVCC revision there.
        revision: i64,
        /// The hash.
        hash: u64,
    },
    /// A sample of a member's log (from its first retained entry).
    LogState {
        /// Who.
        member: MemberId,
        /// When.
        time: i64,
        /// Entries in index order.
        entries: Vec<LogEntry>,
        /// Its commit index.
        commit_index: LogIndex,
    },
    /// A member crashed.
    Crashed {
        /// Who.
        member: MemberId,
        /// When.
        time: i64,
    },
    /// A member restarted from its disk.
    Restarted {
        /// Who.
        member: MemberId,
        /// When.
        time: i64,
    },
    /// Every fault was healed.
    FaultsHealed {
        /// When.
        time: i64,
    },
    /// A member granted its vote in an election (not a pre-vote) and sent the answer: it
    /// claims that this vote is durable.
    VoteGranted {
        /// Who.
        member: MemberId,
        /// The election's term.
        term: Term,
        /// The candidate it voted for.
        candidate: MemberId,
        /// When the answer left.
        time: i64,
    },
    /// A member sent a successful append acknowledgement in its current term: it claims its
    /// log matches the leader's through `index`, durably. `synced_index` is the highest index
    /// the member had been told was synced when the message left.
    AppendAcked {
        /// Who.
        member: MemberId,
        /// The member's (and the message's) term.
        term: Term,
        /// The acknowledged index.
        index: LogIndex,
        /// The highest index synced on its disk at that moment.
        synced_index: LogIndex,
        /// When the message left.
        time: i64,
    },
    /// What a member held after restarting from its disk: its hard state and the end of its log.
    Recovered {
        /// Who.
        member: MemberId,
        /// The recovered term.
        term: Term,
        /// The recovered vote in that term (0: none).
        vote: MemberId,
        /// The recovered log's last index (the snapshot's if no entry follows it).
        last_index: LogIndex,
        /// That entry's term.
        last_term: Term,
        /// When.
        time: i64,
    },
    /// A member's disk took a fault that may silently lose or damage synced data (a bit flip,
    /// a lost or misdirected write): from then on its acknowledgements no longer bind it.
    DiskDamaged {
        /// Who.
        member: MemberId,
        /// When.
        time: i64,
    },
    /// A member's MVCC change log at the end of the run.
    FinalStore {
        /// Who.
        member: MemberId,
        /// Revisions at or below this were compacted away.
        compacted_revision: i64,
        /// Every retained change.
        changes: Vec<StoreChange>,
    },
}

fn violation(checker: &str, window: Vec<u64>, explanation: String) -> Verdict {
    Verdict::Violation {
        checker: checker.to_string(),
        window,
        explanation,
    }
}

/// At most one leader per term.
pub fn check_election_safety(trace: &[TraceEvent]) -> Verdict {
    let mut leaders: BTreeMap<Term, MemberId> = BTreeMap::new();
    for event in trace {
        if let TraceEvent::LeaderElected { member, term, time } = event {
            if let Some(other) = leaders
                .insert(*term, *member)
                .filter(|other| other != member)
            {
                return violation("election_safety", vec![], format!("term {} has two leaders: member {} and member {} (the latter at time {time})", term.0, other.0, member.0));
            }
        }
    }
    Verdict::Ok
}

fn samples(trace: &[TraceEvent]) -> Vec<(MemberId, i64, &[LogEntry], LogIndex)> {
    trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::LogState {
                member,
                time,
                entries,
                commit_index,
            } => Some((*member, *time, entries.as_slice(), *commit_index)),
            _ => None,
        })
        .collect()
}

/// A sampled log's entries by index: by offset when the indices are consecutive (as a raft
/// log's are), else through a map (the last entry of an index wins, as when collecting one).
enum LogLookup<'a> {
    Consecutive(&'a [LogEntry]),
    Map(BTreeMap<LogIndex, &'a LogEntry>),
}

impl<'a> LogLookup<'a> {
    fn new(entries: &'a [LogEntry]) -> LogLookup<'a> {
        let consecutive = entries
            .windows(2)
            .all(|pair| pair[0].index.0.checked_add(1) == Some(pair[1].index.0));
        if consecutive {
            LogLookup::Consecutive(entries)
        } else {
            LogLookup::Map(entries.iter().map(|entry| (entry.index, entry)).collect())
        }
    }

    fn get(&self, index: &LogIndex) -> Option<&'a LogEntry> {
        match self {
            LogLookup::Consecutive(entries) => {
                let first = entries.first()?.index.0;
                let offset = usize::try_from(index.0.checked_sub(first)?).ok()?;
                let entry = entries.get(offset)?;
                assert!(entry.index == *index, "consecutive indices");
                Some(entry)
            }
            LogLookup::Map(map) => map.get(index).copied(),
        }
    }
}

/// Two logs with an entry of the same index and term hold the same entry and the same prefix.
pub fn check_log_matching(trace: &[TraceEvent]) -> Verdict {
    let samples = samples(trace);
    // Most traces agree: a sort finds whether any (index, term) has two digests, and only then
    // does the map walk below find the first disagreement in trace order for the report.
    let mut all: Vec<(LogIndex, Term, u64)> = samples
        .iter()
        .flat_map(|sample| sample.2.iter())
        .map(|entry| (entry.index, entry.term, entry.digest))
        .collect();
    // Stable: each sampled log is in index order, and merging those runs is cheap.
    all.sort();
    all.dedup();
    let digests_agree = all
        .windows(2)
        .all(|pair| (pair[0].0, pair[0].1) != (pair[1].0, pair[1].1));
    let mut digests: BTreeMap<(LogIndex, Term), u64> = BTreeMap::new();
    for (member, time, entries, _) in samples.iter().filter(|_| !digests_agree) {
        for entry in entries.iter() {
            if let Some(digest) = digests
                .insert((entry.index, entry.term), entry.digest)
                .filter(|d| *d != entry.digest)
            {
                return violation("log_matching", vec![], format!("entry {}/{} differs between logs (digest {digest:x} vs {:x} on member {} at time {time})", entry.index.0, entry.term.0, entry.digest, member.0));
            }
        }
    }
    // Prefix property: where two samples agree at an index, they agree on every index below it.
    for (left_index, left) in samples.iter().enumerate() {
        let by_index = LogLookup::new(left.2);
        for right in &samples[left_index + 1..] {
            let mut agreed = false;
            for entry in right.2.iter().rev() {
                match by_index.get(&entry.index) {
                    Some(other) if other.term == entry.term => agreed = true,
                    Some(other) if agreed => {
                        return violation("log_matching", vec![], format!("members {} and {} agree on a later entry but differ at index {} (terms {} and {})", left.0 .0, right.0 .0, entry.index.0, other.term.0, entry.term.0));
                    }
                    _ => {}
                }
            }
        }
    }
    Verdict::Ok
}

/// A leader of term T holds every entry committed (as sampled) before its election.
pub fn check_leader_completeness(trace: &[TraceEvent]) -> Verdict {
    let samples = samples(trace);
    for event in trace {
        let TraceEvent::LeaderElected { member, term, time } = event else {
            continue;
        };
        let Some(leader_log) = samples
            .iter()
            .find(|sample| sample.0 == *member && sample.1 >= *time)
        else {
            continue;
        };
        let first = leader_log
            .2
            .first()
            .map_or(LogIndex(u64::MAX), |entry| entry.index);
        let held = LogLookup::new(leader_log.2);
        for sample in samples.iter().filter(|sample| sample.1 <= *time) {
            for entry in sample.2.iter().filter(|entry| {
                entry.index <= sample.3 && entry.term < *term && entry.index >= first
            }) {
                if held
                    .get(&entry.index)
                    .is_none_or(|mine| mine.term != entry.term || mine.digest != entry.digest)
                {
                    return violation("leader_completeness", vec![], format!("member {} leads term {} but lacks entry {}/{} committed at time {} on member {}", member.0, term.0, entry.index.0, entry.term.0, sample.1, sample.0 .0));
                }
            }
        }
    }
    Verdict::Ok
}

/// The first value recorded per log index. Applied indices are dense from 1, so those below
/// `DENSE_INDEX_MAX` live in a Vec (one slot per index, no tree insert per applied entry); a
/// larger index, which a host could report, falls back to a map rather than a huge Vec.
struct FirstByIndex<V> {
    dense: Vec<Option<V>>,
    sparse: BTreeMap<LogIndex, V>,
}

impl<V> Default for FirstByIndex<V> {
    fn default() -> Self {
        Self {
            dense: Vec::new(),
            sparse: BTreeMap::new(),
        }
    }
}

impl<V: Copy> FirstByIndex<V> {
    /// Bounds the dense table to 8M slots; indices beyond use the map.
    const DENSE_INDEX_MAX: u64 = 1 << 23;

    /// The value first recorded at `index`, recording `value` if there was none.
    fn first_or_insert(&mut self, index: LogIndex, value: V) -> V {
        if index.0 >= Self::DENSE_INDEX_MAX {
            return *self.sparse.entry(index).or_insert(value);
        }
        let slot_index = index.0 as usize;
        if slot_index >= self.dense.len() {
            self.dense.resize(slot_index + 1, None);
        }
        *self.dense[slot_index].get_or_insert(value)
    }
}

/// No two members apply different entries at one index; equal applied indexes, equal KV hashes.
pub fn check_state_machine_safety(trace: &[TraceEvent]) -> Verdict {
    let mut applied: FirstByIndex<(Term, u64, MemberId)> = FirstByIndex::default();
    let mut hashes: FirstByIndex<(i64, u64, MemberId)> = FirstByIndex::default();
    for event in trace {
        match event {
            TraceEvent::Applied {
                member,
                index,
                term,
                digest,
            } => {
                let first = applied.first_or_insert(*index, (*term, *digest, *member));
                if (first.0, first.1) != (*term, *digest) {
                    return violation("state_machine_safety", vec![], format!("index {}: member {} applied {}/{:x} but member {} applied {}/{digest:x}", index.0, first.2 .0, first.0 .0, first.1, member.0, term.0));
                }
            }
            TraceEvent::KvHash {
                member,
                index,
                revision,
                hash,
            } => {
                let first = hashes.first_or_insert(*index, (*revision, *hash, *member));
                if (first.0, first.1) != (*revision, *hash) {
                    return violation("kv_hash", vec![], format!("applied index {}: member {} has revision {} hash {:x} but member {} has revision {revision} hash {hash:x}", index.0, first.2 .0, first.0, first.1, member.0));
                }
            }
            _ => {}
        }
    }
    Verdict::Ok
}

/// A retained change, borrowed: (revision, key, value or `None` for a deletion).
type ChangeRef<'a> = (i64, &'a [u8], Option<&'a [u8]>);

/// Every acknowledged put is in the final store of every member that reached its revision.
pub fn check_durability(history: &History, trace: &[TraceEvent]) -> Verdict {
    let acknowledged: Vec<(u64, i64, &Bytes, &Bytes)> = history
        .ops
        .iter()
        .filter_map(|op| match (&op.request, &op.result) {
            (
                Request::Put(put),
                Some(Response::Put {
                    revision: Some(revision),
                    ..
                }),
            ) => Some((op.id, *revision, &put.key, &put.value)),
            _ => None,
        })
        .collect();
    for event in trace {
        let TraceEvent::FinalStore {
            member,
            compacted_revision,
            changes,
        } = event
        else {
            continue;
        };
        let reached = changes
            .iter()
            .map(|change| change.revision)
            .max()
            .unwrap_or(0);
        // Sorted (stably: of equal changes the last one counts, as it would in a map), and
        // usually already in order.
        let mut index: Vec<ChangeRef> = changes
            .iter()
            .map(|change| {
                (
                    change.revision,
                    change.key.as_slice(),
                    change.value.as_deref(),
                )
            })
            .collect();
        index.sort_by(|left, right| (left.0, left.1).cmp(&(right.0, right.1)));
        let stored = |revision: i64, key: &[u8]| {
            let end = index.partition_point(|entry| (entry.0, entry.1) <= (revision, key));
            end.checked_sub(1)
                .map(|last| index[last])
                .filter(|entry| (entry.0, entry.1) == (revision, key))
                .map(|entry| entry.2)
        };
        for (id, revision, key, value) in &acknowledged {
            if *revision <= *compacted_revision || *revision > reached {
                continue;
            }
            if stored(*revision, key.as_slice()) != Some(Some(value.as_slice())) {
                return violation("durability", vec![*id], format!("op {id} put {}={} was acknowledged at revision {revision}, but member {} reached revision {reached} without it (lost or rolled back)", crate::history::show_bytes(key), crate::history::show_bytes(value), member.0));
            }
        }
    }
    Verdict::Ok
}

/// After the last `FaultsHealed`, a leader exists and some write commits within `bound`.
pub fn check_liveness(
    history: &History,
    trace: &[TraceEvent],
    bound: i64,
    units_per_ms: Option<i64>,
) -> Verdict {
    let show = |time: i64| match units_per_ms {
        Some(units) if units > 0 => format!("{} ms", time / units),
        _ => time.to_string(),
    };
    let Some(healed) = trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::FaultsHealed { time } => Some(*time),
            _ => None,
        })
        .max()
    else {
        return Verdict::Ok;
    };
    let deadline = healed.saturating_add(bound);
    let leader = trace
        .iter()
        .any(|event| matches!(event, TraceEvent::LeaderElected { time, .. } if *time <= deadline));
    if !leader {
        return violation(
            "liveness",
            vec![],
            format!(
                "no leader elected by {} (faults healed at {}, bound {})",
                show(deadline),
                show(healed),
                show(bound)
            ),
        );
    }
    let writes_after: Vec<_> = history
        .ops
        .iter()
        .filter(|op| op.call >= healed && !crate::linear::is_read_request(&op.request))
        .collect();
    if writes_after.is_empty() {
        return Verdict::Unknown {
            reason: format!(
                "no write was attempted after the faults healed at {}",
                show(healed)
            ),
        };
    }
    let committed = writes_after.iter().any(|op| {
        op.ret.is_some_and(|ret| ret <= deadline)
            && !matches!(op.result, Some(Response::Error { .. }))
    });
    if committed {
        Verdict::Ok
    } else {
        let window = writes_after.iter().take(5).map(|op| op.id).collect();
        violation(
            "liveness",
            window,
            format!(
                "no write committed between the heal at {} and {} (bound {})",
                show(healed),
                show(deadline),
                show(bound)
            ),
        )
    }
}

mod acknowledged;
pub use acknowledged::{check_ack_after_sync, check_acknowledged_durability};

#[cfg(test)]
mod tests;
