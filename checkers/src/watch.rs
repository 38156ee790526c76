//! The watch checker: etcd's watch guarantees over recorded streams — ordered (revisions never go
//! back), unique (no change delivered twice), atomic and reliable (every change in range from the
//! start revision up to the last delivered one is there, whole revisions at a time), resumable
//! (a stream starts exactly at its start revision) — and agreement with the linearized history:
//! the write at each event's revision is the one the event shows, prev_kv included, and no event
//! arrives before that write was even called.
//!
//! It needs a linearization (from `linear`) to compare with; without one it checks only the
//! stream-internal guarantees. Bookmarks (progress notifications) are not in the history format,
//! so "bookmarkable" reduces to the ordering checks here.

use crate::history::{EventKind, History, HistoryView, KeyValue, WatchRecord};
use crate::linear::Linearization;
use crate::model::{KeyId, KeyState, Store, Tables};
use crate::Verdict;
use std::collections::{BTreeMap, BTreeSet};

/// The checker's name in verdicts.
pub const CHECKER: &str = "watch";

/// What the replayed linearization says happened at each revision.
struct Replay {
    store: Store,
    changes: BTreeMap<i64, Vec<(KeyId, Option<KeyState>)>>,
    writer: BTreeMap<i64, (u64, i64)>,
}

fn replay(history: HistoryView<'_>, linearization: &Linearization) -> Replay {
    let mut store = Store::new(linearization.tables.key_count());
    let mut writer = BTreeMap::new();
    for (source, op, call) in &linearization.steps {
        let before = store.revision();
        // Only the effect matters here, not the answer: no outcome is built.
        store.apply_matching(op, None);
        store.forget_undo();
        if store.revision() > before {
            let id = source.map_or(u64::MAX, |index| history.ops[index].id);
            writer.insert(store.revision(), (id, *call));
        }
    }
    let mut changes: BTreeMap<i64, Vec<(KeyId, Option<KeyState>)>> = BTreeMap::new();
    for (revision, key, state) in store.change_log() {
        changes.entry(revision).or_default().push((key, state));
    }
    Replay {
        store,
        changes,
        writer,
    }
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
    let mut seen = BTreeSet::new();
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
        last = event.revision;
        if !seen.insert((event.revision, event.kv.key.as_slice())) {
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
            .writer
            .get(&revision)
            .map(|(id, _)| vec![*id])
            .unwrap_or_default()
    };
    let mut delivered = BTreeSet::new();
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
                .changes
                .get(&event.revision)?
                .iter()
                .find(|(changed, _)| *changed == key)
                .map(|(_, state)| (key, *state))
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
        if let Some((id, call)) = replay.writer.get(&event.revision) {
            if event.time < *call {
                return Err(violation(vec![*id], format!("watch {}: event at revision {} arrived at {} before op {id} that wrote it was called at {call}", watch.watch, event.revision, event.time)));
            }
        }
        delivered.insert((event.revision, key));
    }
    let Some(last) = watch.events.last().map(|event| event.revision) else {
        return Ok(());
    };
    let first = if watch.start_revision > 0 {
        watch.start_revision
    } else {
        watch.events[0].revision
    };
    for (revision, changes) in replay.changes.range(first..=last) {
        for (key, _) in changes.iter().filter(|(key, _)| (lo..hi).contains(key)) {
            if !delivered.contains(&(*revision, *key)) {
                return Err(violation(writer(*revision), format!("watch {}: the change of {} at revision {revision} was never delivered, though later revisions were (not reliable)", watch.watch, tables.show_key(*key))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
