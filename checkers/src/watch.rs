//! The watch checker: etcd's watch guarantees over recorded streams — ordered (revisions never go
//! back), unique (no change delivered twice), atomic and reliable (every change in range from the
//! start revision up to the last delivered one is there, whole revisions at a time), resumable
//! (a stream starts exactly at its start revision) — and agreement with the linearized history:
//! the write at each event's revision is the one the event shows, prev_kv included, and no event
//! arrives before that write was even called.
//!
//! It needs a linearization (from `linear`) to compare with; without one it checks only the
//! stream-internal guarantees. Bookmarks (progress notifications, the format's optional
//! `progress` list) are checked where recorded: no event at or below a bookmark's revision
//! arrives after it, and every change in range up to it was delivered (etcd #15220).

use crate::history::{EventKind, History, HistoryView, KeyValue, WatchRecord};
use crate::linear::Linearization;
use crate::model::{KeyId, KeyState, Store, Tables};
use crate::Verdict;

/// The checker's name in verdicts.
pub const CHECKER: &str = "watch";

/// What the replayed linearization says happened at each revision.
struct Replay {
    store: Store,
    /// Every change (revision, key, state), by revision then key.
    changes: Vec<(i64, KeyId, Option<KeyState>)>,
    /// (revision, writer's op id, its call), by revision: one per revision written.
    writers: Vec<(i64, u64, i64)>,
}

impl Replay {
    /// The changes made at `revision`, by key.
    fn changes_at(&self, revision: i64) -> &[(i64, KeyId, Option<KeyState>)] {
        self.changes_in(revision, revision)
    }

    /// The changes made at `first..=last`, by revision then key.
    fn changes_in(&self, first: i64, last: i64) -> &[(i64, KeyId, Option<KeyState>)] {
        let start = self.changes.partition_point(|change| change.0 < first);
        let end = self.changes.partition_point(|change| change.0 <= last);
        &self.changes[start..end.max(start)]
    }

    /// The op id and call of the write that made `revision`.
    fn writer(&self, revision: i64) -> Option<(u64, i64)> {
        let index = self.writers.partition_point(|writer| writer.0 < revision);
        self.writers
            .get(index)
            .filter(|writer| writer.0 == revision)
            .map(|&(_, id, call)| (id, call))
    }
}

fn replay(history: HistoryView<'_>, linearization: &Linearization) -> Replay {
    let mut store = Store::new(linearization.tables.key_count());
    let mut writers: Vec<(i64, u64, i64)> = Vec::new();
    let sources = earliest_identical_sources(history, linearization);
    for ((index, op, _), source) in linearization.steps.iter().zip(&sources) {
        let before = store.revision();
        // The user it ran as decides its effect once auth is on (format version 2).
        let user = index
            .and_then(|index| history.ops[index].user.as_deref())
            .and_then(|user| linearization.tables.name(user));
        // Only the effect matters here, not the answer: no outcome is built.
        store.apply_matching_as(op, None, user);
        store.forget_undo();
        if store.revision() > before {
            let (id, call) = source.map_or((u64::MAX, i64::MIN), |index| {
                (history.ops[index].id, history.ops[index].call)
            });
            assert!(
                writers.last().is_none_or(|last| last.0 < store.revision()),
                "the replayed revision only grows"
            );
            writers.push((store.revision(), id, call));
        }
    }
    let changes = store.change_log();
    Replay {
        store,
        changes,
        writers,
    }
}

/// The history op each step of the linearization stands for, with identical unknown-outcome
/// requests handed out earliest call first.
///
/// The linearization search may place any one of several identical unknown-outcome requests
/// (a client's retries of one put or delete): for linearizability they are interchangeable.
/// A watch event, though, is judged against the call of the op that wrote its revision, and a
/// retry called after the event arrived would be a false violation. Giving the k placed steps
/// of a class the k earliest calls, in step order, is still a linearization: the op at the j-th
/// placed step is called no later than one of the ops originally at the first j, so whatever
/// real time put before it was already before that step (an unknown outcome has no return,
/// so nothing has to come after it).
fn earliest_identical_sources(
    history: HistoryView<'_>,
    linearization: &Linearization,
) -> Vec<Option<usize>> {
    let mut sources: Vec<Option<usize>> = linearization
        .steps
        .iter()
        .map(|(source, _, _)| *source)
        .collect();
    let unknown: Vec<usize> = (0..history.ops.len())
        .filter(|&index| history.ops[index].result.is_none())
        .collect();
    // Classes of identical requests, each sorted by call (then index): first-seen order.
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for &index in &unknown {
        let request = &history.ops[index].request;
        match classes
            .iter_mut()
            .find(|class| history.ops[class[0]].request == *request)
        {
            Some(class) => class.push(index),
            None => classes.push(vec![index]),
        }
    }
    for class in classes.iter_mut().filter(|class| class.len() > 1) {
        class.sort_by_key(|&index| (history.ops[index].call, index));
        let placed: Vec<usize> = sources
            .iter()
            .enumerate()
            .filter(|(_, source)| source.is_some_and(|index| class.contains(&index)))
            .map(|(step, _)| step)
            .collect();
        for (step, &index) in placed.iter().zip(class.iter()) {
            sources[*step] = Some(index);
        }
    }
    sources
}

fn violation(window: Vec<u64>, explanation: String) -> Verdict {
    Verdict::Violation {
        checker: CHECKER.to_string(),
        window,
        explanation,
    }
}

/// Checks every watch of the history against its guarantees and the linearization.
pub fn check_watches(history: &History, linearization: Option<&Linearization>) -> Verdict {
    check_view(HistoryView::of(history), linearization)
}

/// `check_watches` of a history in parts.
pub(crate) fn check_view(
    history: HistoryView<'_>,
    linearization: Option<&Linearization>,
) -> Verdict {
    for watch in history.watches {
        if let Err(verdict) = check_stream(watch) {
            return verdict;
        }
    }
    let Some(linearization) = linearization else {
        if history.watches.is_empty() {
            return Verdict::Ok;
        }
        return Verdict::Unknown {
            reason: "no linearization of the history to compare watch events with".into(),
        };
    };
    let replay = replay(history, linearization);
    for watch in history.watches {
        if let Err(verdict) = check_against(watch, &linearization.tables, &replay) {
            return verdict;
        }
    }
    Verdict::Ok
}

/// Ordered, unique and resumable: properties of the stream alone.
fn check_stream(watch: &WatchRecord) -> Result<(), Verdict> {
    // Revisions never go back (checked first), so a change delivered twice is twice among the
    // events of one revision: only the current revision's keys are kept.
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut last = i64::MIN;
    for event in &watch.events {
        if event.revision < last {
            return Err(violation(
                vec![],
                format!(
                    "watch {}: not ordered: revision {} delivered after revision {last}",
                    watch.watch, event.revision
                ),
            ));
        }
        if event.revision != last {
            seen.clear();
        }
        last = event.revision;
        if seen.contains(&event.kv.key.as_slice()) {
            return Err(violation(
                vec![],
                format!(
                    "watch {}: not unique: the change of {} at revision {} delivered twice",
                    watch.watch,
                    crate::history::show_bytes(&event.kv.key),
                    event.revision
                ),
            ));
        }
        seen.push(event.kv.key.as_slice());
        if watch.start_revision > 0 && event.revision < watch.start_revision {
            return Err(violation(
                vec![],
                format!(
                    "watch {}: event at revision {} is before the start revision {}",
                    watch.watch, event.revision, watch.start_revision
                ),
            ));
        }
    }
    check_bookmarks(watch)
}

/// A bookmark at revision R says every event up to R was sent: none may arrive after it. Events
/// arrive in revision order (checked before), so the first event after the bookmark decides.
fn check_bookmarks(watch: &WatchRecord) -> Result<(), Verdict> {
    for progress in &watch.progress {
        let Some(next) = watch.events.get(progress.events_before) else {
            continue;
        };
        if next.revision <= progress.revision {
            return Err(violation(
                vec![],
                format!(
                    "watch {}: progress notification at revision {} (time {}) was followed by an event at revision {} (bookmark ahead of events)",
                    watch.watch, progress.revision, progress.time, next.revision
                ),
            ));
        }
    }
    Ok(())
}

fn kv_agrees(kv: &KeyValue, key: KeyId, state: &KeyState, tables: &Tables) -> bool {
    kv.key == tables.key_bytes(key)
        && kv
            .value
            .as_ref()
            .is_none_or(|value| value.as_slice() == tables.value_bytes(state.value))
        && kv
            .create_revision
            .is_none_or(|revision| revision == state.create_revision)
        && kv
            .mod_revision
            .is_none_or(|revision| revision == state.mod_revision)
        && kv.version.is_none_or(|version| version == state.version)
        && kv.lease.is_none_or(|lease| lease == state.lease)
}

/// Every event is the write at its revision; nothing in range is missing (reliable, atomic).
fn check_against(watch: &WatchRecord, tables: &Tables, replay: &Replay) -> Result<(), Verdict> {
    let (lo, hi) = tables.span(&watch.key, watch.range_end.as_deref());
    let writer = |revision: i64| {
        replay
            .writer(revision)
            .map(|(id, _)| vec![id])
            .unwrap_or_default()
    };
    // (revision, key) of every event judged; sorted once they are all in.
    let mut delivered: Vec<(i64, KeyId)> = Vec::new();
    // NB: unknown-outcome writes after the last recorded revision may be left out of the witness
    // linearization though a watch saw them; events past its final revision are not judged.
    // (Feeding watch events into the search as constraints would close this gap.)
    let final_revision = replay.store.revision();
    for event in watch
        .events
        .iter()
        .filter(|event| event.revision <= final_revision)
    {
        let key_known = tables.find_key(&event.kv.key);
        let change = key_known.and_then(|key| {
            replay
                .changes_at(event.revision)
                .iter()
                .find(|(_, changed, _)| *changed == key)
                .map(|(_, _, state)| (key, *state))
        });
        let Some((key, state)) = change else {
            return Err(violation(writer(event.revision), format!("watch {}: event for {} at revision {} matches no write in the linearized history", watch.watch, crate::history::show_bytes(&event.kv.key), event.revision)));
        };
        let agrees = match (event.kind, &state) {
            (EventKind::Put, Some(state)) => kv_agrees(&event.kv, key, state, tables),
            (EventKind::Delete, None) => true,
            _ => false,
        };
        if !agrees {
            return Err(violation(writer(event.revision), format!("watch {}: event for {} at revision {} does not show the write made at that revision", watch.watch, tables.show_key(key), event.revision)));
        }
        if watch.prev_kv {
            let before = replay.store.get_at(key, event.revision - 1);
            let prev_ok = match (&event.prev_kv, &before) {
                (None, None) => true,
                (Some(kv), Some(state)) => kv_agrees(kv, key, state, tables),
                _ => false,
            };
            if !prev_ok {
                return Err(violation(writer(event.revision), format!("watch {}: prev_kv of {} at revision {} is not the key's state before that write", watch.watch, tables.show_key(key), event.revision)));
            }
        }
        if let Some((id, call)) = replay.writer(event.revision) {
            if event.time < call {
                return Err(violation(vec![id], format!("watch {}: event at revision {} arrived at {} before op {id} that wrote it was called at {call}", watch.watch, event.revision, event.time)));
            }
        }
        delivered.push((event.revision, key));
    }
    delivered.sort_unstable();
    let last_event = watch.events.last().map(|event| event.revision);
    // A bookmark vouches for every revision up to its own (a stream's events are all in by
    // then, as `check_bookmarks` showed), as far as the linearization reaches.
    let bookmark = watch
        .progress
        .iter()
        .map(|progress| progress.revision.min(final_revision))
        .max();
    let first = match (watch.start_revision, watch.events.first()) {
        (start, _) if start > 0 => start,
        (_, Some(event)) => event.revision,
        // From "now" with nothing delivered: where it started is unknown.
        (_, None) => return Ok(()),
    };
    let Some(last) = last_event.max(bookmark) else {
        return Ok(());
    };
    for (revision, key, _) in replay.changes_in(first, last) {
        if (lo..hi).contains(key) && delivered.binary_search(&(*revision, *key)).is_err() {
            let vouched = last_event.is_none_or(|last_event| *revision > last_event);
            let why = if vouched {
                "though a progress notification vouched for its revision"
            } else {
                "though later revisions were"
            };
            return Err(violation(writer(*revision), format!("watch {}: the change of {} at revision {revision} was never delivered, {why} (not reliable)", watch.watch, tables.show_key(*key))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
