//! A deliberately dumb in-memory [`EventSource`]: a flat log of every event plus the current
//! key-values, for tests, benchmarks and the simulator's oracles. It is the reference the watch
//! hub is checked against, so it favours obviousness over speed (history reads are linear).
//!
//! It is not the MVCC store: no index, no snapshots, no leases, no encoding.

use std::collections::BTreeMap;

use super::{key_in_range, EventSource};
use crate::kv::{Event, EventType, KeyValue, RequestError};
use crate::types::Revision;

/// One write inside a model transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelWrite {
    /// Put `key = value`.
    Put(Vec<u8>, Vec<u8>),
    /// Delete `key` if it exists.
    Delete(Vec<u8>),
}

/// The model store.
#[derive(Clone, Debug, Default)]
pub struct ModelStore {
    revision: Revision,
    compacted: Revision,
    current: BTreeMap<Vec<u8>, KeyValue>,
    /// Every event ever, in revision order (key order within a revision).
    history: Vec<Event>,
}

impl ModelStore {
    /// An empty store at revision 0.
    pub fn new() -> ModelStore {
        ModelStore::default()
    }

    /// Applies writes as one revision and returns its events (prev_kv filled), or `None` when
    /// nothing changed (no revision is used, as in etcd). Later writes to one key win.
    pub fn apply(&mut self, writes: &[ModelWrite]) -> Option<(Revision, Vec<Event>)> {
        let revision = self.revision.next();
        let mut last_write: BTreeMap<&[u8], &ModelWrite> = BTreeMap::new();
        for write in writes {
            let key = match write {
                ModelWrite::Put(key, _) | ModelWrite::Delete(key) => key,
            };
            last_write.insert(key, write);
        }
        let mut events = Vec::new();
        for (key, write) in last_write {
            let previous = self.current.get(key).cloned();
            match write {
                ModelWrite::Put(_, value) => {
                    let kv = KeyValue {
                        key: key.to_vec(),
                        create_revision: previous
                            .as_ref()
                            .map_or(revision, |kv| kv.create_revision),
                        mod_revision: revision,
                        version: previous.as_ref().map_or(1, |kv| kv.version + 1),
                        value: value.clone(),
                        lease: Default::default(),
                    };
                    self.current.insert(key.to_vec(), kv.clone());
                    events.push(Event {
                        kind: EventType::Put,
                        kv,
                        prev_kv: previous,
                    });
                }
                ModelWrite::Delete(_) => {
                    if previous.is_none() {
                        continue;
                    }
                    self.current.remove(key);
                    let kv = KeyValue {
                        key: key.to_vec(),
                        mod_revision: revision,
                        ..KeyValue::default()
                    };
                    events.push(Event {
                        kind: EventType::Delete,
                        kv,
                        prev_kv: previous,
                    });
                }
            }
        }
        if events.is_empty() {
            return None;
        }
        self.revision = revision;
        self.history.extend(events.iter().cloned());
        Some((revision, events))
    }

    /// Discards history at or below `revision` (clamped to the current revision).
    pub fn compact(&mut self, revision: Revision) {
        let revision = revision.min(self.revision);
        if revision <= self.compacted {
            return;
        }
        self.compacted = revision;
        self.history
            .retain(|event| event.kv.mod_revision > revision);
    }
}

impl EventSource for ModelStore {
    fn current_revision(&self) -> Revision {
        self.revision
    }

    fn compacted_revision(&self) -> Revision {
        self.compacted
    }

    fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to_inclusive: Revision,
        events_count_max: usize,
    ) -> Result<Vec<Event>, RequestError> {
        if from <= self.compacted {
            return Err(RequestError::Compacted {
                requested: from,
                compacted: self.compacted,
            });
        }
        // History is in revision order, so the window starts at a partition point.
        let start_index = self
            .history
            .partition_point(|event| event.kv.mod_revision < from);
        // The trait's contract: whole revisions while fewer than `events_count_max` events are
        // collected, so the last revision may take the answer past the limit.
        let mut events: Vec<Event> = Vec::new();
        for event in self.history[start_index..]
            .iter()
            .take_while(|event| event.kv.mod_revision <= to_inclusive)
            .filter(|event| key_in_range(&event.kv.key, key, range_end))
        {
            let last_revision = events.last().map(|last| last.kv.mod_revision);
            if events.len() >= events_count_max && last_revision != Some(event.kv.mod_revision) {
                break;
            }
            events.push(event.clone());
        }
        Ok(events)
    }
}
