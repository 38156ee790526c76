//! The linearizability search, in the manner of Wing & Gong, Lowe and Porcupine: depth-first
//! over "which pending operation takes effect next", with real-time pruning (only operations
//! called before the earliest pending return are candidates), memoisation of (linearized set,
//! store state) by incremental hashes, and three reductions:
//! - an operation that leaves the store unchanged is placed at once without branching (moving it
//!   earlier never breaks a linearization);
//! - recorded revisions bound the store's revision before each operation, so writes with recorded
//!   revisions have a forced order, and a store past some pending operation's bound is dead;
//! - unknown outcomes are tried only after definite ones, and never when they change nothing;
//! - a lease expiry is tried only after every definite operation that found the lease alive is
//!   placed (an expiry is final, so any order with it earlier fails at that operation anyway;
//!   without this the search tries every subset of key-less expiries at each dead end).
//!
//! Budgets count steps, never time. It decides one segment from one start state; decomposition
//! and explanations live in the parent module.

use super::pin::Observations;
use super::prepare::SearchOp;
use super::setup::{
    expiry_precedence, historical_reads, lease_users, past_matters, writes_keys_only,
};
use crate::model::{mix, Mark, Rec, StateView, Store};

/// Dancing-links list over operation indices; index `len` is the sentinel.
struct Links {
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl Links {
    fn new(count: usize, order: &[u32]) -> Links {
        let sentinel = count as u32;
        let mut links = Links {
            next: vec![sentinel; count + 1],
            prev: vec![sentinel; count + 1],
        };
        let mut last = sentinel;
        for &node in order {
            links.next[last as usize] = node;
            links.prev[node as usize] = last;
            last = node;
        }
        links.next[last as usize] = sentinel;
        links.prev[sentinel as usize] = last;
        links
    }

    fn remove(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        self.prev[next as usize] = prev;
    }

    /// Re-inserts `node`; valid only in the reverse order of removals.
    fn restore(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = node;
        self.prev[next as usize] = node;
    }
}

/// Open-addressing set of 128-bit keys with a fixed hash: deterministic and compact. With
/// `exact`, each slot also names the exact key (placed set and store fingerprint) in `arena`,
/// and two keys are the same only when those words are equal: a hash collision then costs a
/// probe, never an unexplored subtree.
struct Memo {
    slots: Vec<((u64, u64), u32)>,
    used: usize,
    exact: bool,
    /// Exact keys, back to back; entry `i` is `arena[ends[i - 1]..ends[i]]` (from 0 for the first).
    arena: Vec<u64>,
    ends: Vec<usize>,
    /// Inserts that found their hash already present (with `exact`, their exact key).
    hits: u64,
}

impl Memo {
    const EMPTY: ((u64, u64), u32) = ((0, 0), u32::MAX);

    fn new(exact: bool) -> Memo {
        Memo {
            slots: vec![Self::EMPTY; 1024],
            used: 0,
            exact,
            arena: Vec::new(),
            ends: Vec::new(),
            hits: 0,
        }
    }

    fn entry(&self, index: u32) -> &[u64] {
        let index = index as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.arena[start..self.ends[index]]
    }

    fn slot_of(&self, key: (u64, u64)) -> usize {
        (mix(key.0 ^ key.1.rotate_left(29)) as usize) & (self.slots.len() - 1)
    }

    /// Inserts `key` (with `exact`, the words `exact_key` too); false if it was already there.
    fn insert(&mut self, key: (u64, u64), exact_key: &[u64]) -> bool {
        let key = if key == (0, 0) { (1, 0) } else { key };
        if (self.used + 1) * 2 > self.slots.len() {
            let doubled = vec![Self::EMPTY; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, doubled);
            for entry in old.into_iter().filter(|entry| *entry != Self::EMPTY) {
                let mut slot = self.slot_of(entry.0);
                while self.slots[slot] != Self::EMPTY {
                    slot = (slot + 1) & (self.slots.len() - 1);
                }
                self.slots[slot] = entry;
            }
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.slot_of(key);
        loop {
            if self.slots[slot] == Self::EMPTY {
                let index = if self.exact {
                    self.arena.extend_from_slice(exact_key);
                    self.ends.push(self.arena.len());
                    assert!(self.ends.len() < u32::MAX as usize, "memo overflow");
                    (self.ends.len() - 1) as u32
                } else {
                    0
                };
                self.slots[slot] = (key, index);
                self.used += 1;
                return true;
            }
            let (present, index) = self.slots[slot];
            if present == key && (!self.exact || self.entry(index) == exact_key) {
                self.hits += 1;
                return false;
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// Above this many operations, a search memoises by hash only (the exact key's placed set
/// grows with the operations) and repeats itself with exact keys only when it found no order
/// after some hash hit: only then could a collision have changed the verdict.
const EXACT_MEMO_OPS_MAX: usize = 4_096;

/// Likewise above this many keys: the store's fingerprint grows with the keys, and keeping one
/// per memo entry made a simulator history of a thousand keys page through gigabytes.
const EXACT_MEMO_KEYS_MAX: usize = 64;

/// `Cursor::At`'s list for `UnknownOrder::FromNow`'s key writes called before the frontier.
const BEFORE_FRONTIER_LIST: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// The next candidate follows `after` in the definite (0), unknown key-writing (1) or other
    /// unknown (2) list, or, with `expiries_last`, among the definite expiries held back (3),
    /// or, with `from_now`, among the unknown key writes called before the frontier (4; list 1
    /// then walks forward from the frontier).
    At {
        list: u8,
        after: u32,
    },
    /// The next candidates of the two unknown lists, taken latest call first across both
    /// (`u32::MAX`: not yet looked up), and how many were tried so far (see
    /// `UnknownOrder::Merged`).
    Merged {
        next: [u32; 2],
        yielded: u32,
    },
    Exhausted,
}

struct Frame {
    op: u32,
    mark: Mark,
    greedy: bool,
    parent_cursor: Cursor,
    /// The search's `frontier` before `op` was placed.
    parent_frontier: i64,
}

/// How the search orders the unknown-outcome candidates after the definite ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownOrder {
    /// Key writes latest call first, then the rest (expiries, grants, revokes) latest call first:
    /// complete.
    Lists,
    /// All of them latest call first, at most `beam` at each point: incomplete, so only for a
    /// witness attempt, which may miss an order but never claims there is none.
    Merged { beam: u32 },
    /// `Lists`, with the definite lease expiries (the mandatory ones a witness makes) tried
    /// after every other candidate rather than first among the definite ones: complete.
    ExpiriesLast,
    /// `Lists`, with the key writes taken from the frontier on (the latest call of a placed
    /// definite operation), earliest call first, and only then those called before it, latest
    /// first: complete. After an outage the writes in flight when it began land first, in
    /// about the order they were called, and their retries after them.
    FromNow,
}

/// How a search ended.
pub(crate) enum Ended {
    /// Every definite operation placed; the order of placed operations (indices into the slice).
    Linearized(Vec<usize>),
    /// No order exists; the greatest number of definite operations ever placed.
    Impossible { deepest: usize },
    /// The step budget ran out.
    GaveUp,
    /// Stopped on reaching the requested depth (for explanations).
    Stopped,
}

/// One search over a slice of operations from a start state.
pub(crate) struct Search<'a> {
    ops: &'a [SearchOp],
    store: Store,
    /// Whether the memo must tell apart two stores that differ only in their past: see
    /// `past_matters`.
    with_history: bool,
    definite: Links,
    by_return: Links,
    by_bound: Links,
    unknown: Links,
    unknown_other: Links,
    /// The two unknown lists' members sorted by call, to find where a backward scan starts.
    unknown_sorted: [Vec<u32>; 2],
    placed_flags: Vec<bool>,
    /// `placed_flags` as bits, for the memo's exact keys.
    placed_bits: Vec<u64>,
    frames: Vec<Frame>,
    op_hash: Vec<u64>,
    definite_count: usize,
    /// How many definite operations there are (`definite_count` with none placed).
    definite_total: usize,
    /// Per operation, the lease expiries (indices) that must come after it.
    precedes_expiry: Vec<Vec<u32>>,
    /// `UnknownOrder::FromNow`: key writes from the frontier on first.
    from_now: bool,
    /// The latest call of a placed definite operation (`i64::MIN` with none placed).
    frontier: i64,
    /// Per lease expiry, how many operations that must come before it are still unplaced.
    expiry_waits: Vec<u32>,
    /// Per lease expiry, the other operations that name its lease (by call).
    lease_users: Vec<Vec<u32>>,
    /// What other observations (watch events, kvs) show each revision changed; a write must agree.
    observed: Option<&'a Observations>,
    /// Per operation, the next unknown-outcome one with the same request (see
    /// `reduce::identical_successors`), `u32::MAX` for none; empty with observations, which
    /// tell operations apart by their call.
    identical_next: Vec<u32>,
    /// Definite reads at an old revision, as (that revision, operation, its result without the
    /// header revision), sorted: see `historical_reads_agree`.
    historical: Vec<(i64, u32, Rec)>,
    /// Whether unknown-outcome candidates come from both lists at once, latest call first
    /// (`UnknownOrder::Merged`), and how many of them are tried at each point.
    merge_unknown: bool,
    /// Definite lease expiries are tried after every other candidate (see
    /// `UnknownOrder::ExpiriesLast`).
    expiries_last: bool,
    beam: u32,
    /// The greatest number of definite operations placed at once so far.
    pub deepest: usize,
    /// Steps taken so far.
    pub steps: u64,
    /// Where a run that gave up stopped, so the next run goes on from there instead of
    /// starting over; `None` before the first run and after one that decided.
    progress: Option<Progress>,
}

/// The state of a run between steps: the memo, where in the candidate lists the current
/// point stands, and the set hash of what is placed.
struct Progress {
    memo: Memo,
    cursor: Cursor,
    set_hash: u64,
    /// Scratch for the exact memo's keys.
    exact_key: Vec<u64>,
    /// The greatest number of definite operations placed at once in this run.
    deepest: usize,
}

impl Progress {
    fn new(exact: bool, sentinel: u32) -> Progress {
        Progress {
            memo: Memo::new(exact),
            cursor: Cursor::At {
                list: 0,
                after: sentinel,
            },
            set_hash: 0,
            exact_key: Vec::new(),
            deepest: 0,
        }
    }
}

impl<'a> Search<'a> {
    /// Prepares a search of `ops` from `store`.
    pub(crate) fn new(ops: &'a [SearchOp], mut store: Store, view: StateView) -> Search<'a> {
        store.set_view(view);
        let with_history = view == StateView::History && past_matters(ops);
        assert!(ops.len() < u32::MAX as usize, "too many operations");
        let order = |filter: &dyn Fn(&SearchOp) -> bool, key: &dyn Fn(&SearchOp) -> i64| {
            let mut keyed: Vec<(i64, u32)> = (0..ops.len() as u32)
                .filter(|&i| filter(&ops[i as usize]))
                .map(|i| (key(&ops[i as usize]), i))
                .collect();
            // The index makes keys unique, so an unstable sort gives the one order.
            keyed.sort_unstable();
            keyed.into_iter().map(|(_, i)| i).collect::<Vec<u32>>()
        };
        let definite = order(&|op| !op.unknown, &|op| op.call);
        let by_return = order(&|op| !op.unknown, &|op| op.ret);
        let by_bound = order(&|op| !op.unknown, &|op| op.revision_hi);
        let unknown = order(&|op| op.unknown && writes_keys_only(op), &|op| op.call);
        let unknown_other = order(&|op| op.unknown && !writes_keys_only(op), &|op| op.call);
        let (precedes_expiry, expiry_waits) = expiry_precedence(ops);
        let lease_users = lease_users(ops);
        Search {
            ops,
            store,
            with_history,
            definite_count: definite.len(),
            definite_total: definite.len(),
            definite: Links::new(ops.len(), &definite),
            by_return: Links::new(ops.len(), &by_return),
            by_bound: Links::new(ops.len(), &by_bound),
            unknown: Links::new(ops.len(), &unknown),
            unknown_other: Links::new(ops.len(), &unknown_other),
            unknown_sorted: [unknown, unknown_other],
            placed_flags: vec![false; ops.len()],
            placed_bits: vec![0; ops.len().div_ceil(64)],
            frames: Vec::new(),
            op_hash: (0..ops.len()).map(|i| mix(i as u64 ^ 0x5eed)).collect(),
            precedes_expiry,
            expiry_waits,
            lease_users,
            observed: None,
            identical_next: super::reduce::identical_successors(ops),
            historical: historical_reads(ops),
            merge_unknown: false,
            expiries_last: false,
            from_now: false,
            frontier: i64::MIN,
            beam: u32::MAX,
            deepest: 0,
            steps: 0,
            progress: None,
        }
    }

    /// Makes every write agree with what is observed at the revision it makes.
    pub(crate) fn with_observations(mut self, observed: Option<&'a Observations>) -> Search<'a> {
        self.observed = observed;
        // Without watch events nothing ties a revision to a call, and retries stay
        // interchangeable (standalone disk_faults 9 gives up when every retry is tried).
        if observed.is_some_and(|observed| observed.ties_calls()) {
            // Observations tie a revision to an operation by its call (a watch event may not
            // arrive before the write is called), so identical requests are no longer
            // interchangeable: every one is tried.
            self.identical_next.clear();
        }
        self
    }

    /// Tries unknown-outcome operations in one list by call, latest first, and only the first
    /// `beam` of them at each point: see `UnknownOrder`.
    pub(crate) fn with_unknown_order(mut self, order: UnknownOrder) -> Search<'a> {
        match order {
            UnknownOrder::Lists => {
                self.merge_unknown = false;
                self.beam = u32::MAX;
            }
            UnknownOrder::ExpiriesLast => {
                self.merge_unknown = false;
                self.expiries_last = true;
                self.beam = u32::MAX;
            }
            UnknownOrder::Merged { beam } => {
                self.merge_unknown = true;
                self.beam = beam;
            }
            UnknownOrder::FromNow => {
                self.merge_unknown = false;
                self.from_now = true;
                self.beam = u32::MAX;
            }
        }
        self
    }

    /// Whether an unplaced unknown-outcome operation with the same request and a later call
    /// may come next instead of `node`: then trying `node` here finds nothing new.
    fn dominated(&self, node: u32, limit: i64) -> bool {
        let Some(&first) = self.identical_next.get(node as usize) else {
            return false;
        };
        let mut next = first;
        while next != u32::MAX && self.ops[next as usize].call <= limit {
            if !self.placed_flags[next as usize] {
                return true;
            }
            next = self.identical_next[next as usize];
        }
        false
    }

    fn sentinel(&self) -> u32 {
        self.ops.len() as u32
    }

    /// The store (at the end state after `Linearized`, at the stop point after `Stopped`).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Gives back the store (at the end state after `Linearized`).
    pub(crate) fn into_store(self) -> Store {
        self.store
    }

    /// Rolls the store back to `mark` (after a `try_apply` made for explaining).
    pub(crate) fn undo_to(&mut self, mark: Mark) {
        self.store.undo_to(mark);
    }

    /// Operations placed so far, in order.
    pub(crate) fn placed(&self) -> Vec<usize> {
        self.frames.iter().map(|frame| frame.op as usize).collect()
    }

    /// Definite operations that may be placed next (by real time), earliest return first.
    pub(crate) fn candidates(&self) -> Vec<usize> {
        let limit = self.earliest_return();
        let mut out = Vec::new();
        let mut node = self.definite.next[self.sentinel() as usize];
        while node != self.sentinel() && self.ops[node as usize].call <= limit {
            out.push(node as usize);
            node = self.definite.next[node as usize];
        }
        out.sort_by_key(|&index| (self.ops[index].ret, index));
        out
    }

    fn earliest_return(&self) -> i64 {
        let head = self.by_return.next[self.sentinel() as usize];
        if head == self.sentinel() {
            i64::MAX
        } else {
            self.ops[head as usize].ret
        }
    }

    fn revision_ceiling(&self) -> i64 {
        let head = self.by_bound.next[self.sentinel() as usize];
        if head == self.sentinel() {
            i64::MAX
        } else {
            self.ops[head as usize].revision_hi
        }
    }

    /// The pending definite operation with the lowest revision bound, other than `node`.
    pub(crate) fn tightest_bound_except(&self, node: usize) -> Option<usize> {
        let mut head = self.by_bound.next[self.sentinel() as usize];
        if head as usize == node {
            head = self.by_bound.next[head as usize];
        }
        (head != self.sentinel()).then_some(head as usize)
    }

    /// Candidates in order: definite ones by call; then unknown ones latest call first (an
    /// operation whose outcome is unknown most likely took effect soon after its call), or,
    /// with `from_now`, the key writes from the frontier on first (see `UnknownOrder::FromNow`).
    fn next_candidate(&self, cursor: &mut Cursor) -> Option<u32> {
        let limit = self.earliest_return();
        loop {
            if let Cursor::Merged { mut next, yielded } = *cursor {
                if yielded >= self.beam {
                    *cursor = self.after_unknown();
                    continue;
                }
                if next[0] == u32::MAX {
                    // Every unknown key write bumps the revision; at the ceiling all would be
                    // pruned.
                    next[0] = if self.store.revision() >= self.revision_ceiling() {
                        self.sentinel()
                    } else {
                        self.latest_unplaced(1, limit)
                    };
                    next[1] = self.latest_unplaced(2, limit);
                }
                let call = |node: u32| {
                    (node != self.sentinel()).then(|| (self.ops[node as usize].call, node))
                };
                let list = match (call(next[0]), call(next[1])) {
                    (None, None) => {
                        *cursor = self.after_unknown();
                        continue;
                    }
                    (Some(_), None) => 0,
                    (None, Some(_)) => 1,
                    (Some(first), Some(second)) => usize::from(second > first),
                };
                let node = next[list];
                next[list] = if list == 0 {
                    self.unknown.prev[node as usize]
                } else {
                    self.unknown_other.prev[node as usize]
                };
                let skip = self.expiry_waits[node as usize] > 0 || self.dominated(node, limit);
                *cursor = Cursor::Merged {
                    next,
                    yielded: yielded + u32::from(!skip),
                };
                if skip {
                    continue;
                }
                return Some(node);
            }
            let Cursor::At { list, after } = *cursor else {
                return None;
            };
            if list == 3 {
                let node = self.definite.next[after as usize];
                if node == self.sentinel() || self.ops[node as usize].call > limit {
                    *cursor = Cursor::Exhausted;
                    return None;
                }
                *cursor = Cursor::At { list, after: node };
                if !self.is_expiry(node) || self.expiry_waits[node as usize] > 0 {
                    continue;
                }
                return Some(node);
            }
            if list == 0 {
                let node = self.definite.next[after as usize];
                if node == self.sentinel() || self.ops[node as usize].call > limit {
                    *cursor = if self.merge_unknown {
                        Cursor::Merged {
                            next: [u32::MAX; 2],
                            yielded: 0,
                        }
                    } else {
                        Cursor::At {
                            list: 1,
                            after: self.sentinel(),
                        }
                    };
                    continue;
                }
                *cursor = Cursor::At { list, after: node };
                // A mandatory expiry (the witness makes some so) still waits for its users.
                if self.expiry_waits[node as usize] > 0
                    || (self.expiries_last && self.is_expiry(node))
                {
                    continue;
                }
                return Some(node);
            }
            // Every unknown key write bumps the revision; at the ceiling all would be pruned.
            if list == 1
                && after == self.sentinel()
                && self.store.revision() >= self.revision_ceiling()
            {
                *cursor = Cursor::At {
                    list: 2,
                    after: self.sentinel(),
                };
                continue;
            }
            if self.from_now && list == 1 {
                // Forward from the frontier: the first unplaced key write called at or after
                // it, then the next ones by call, up to `limit`.
                let node = if after == self.sentinel() {
                    self.first_unplaced_from(self.frontier)
                } else {
                    self.unknown.next[after as usize]
                };
                if node == self.sentinel() || self.ops[node as usize].call > limit {
                    *cursor = Cursor::At {
                        list: BEFORE_FRONTIER_LIST,
                        after: self.sentinel(),
                    };
                    continue;
                }
                *cursor = Cursor::At { list, after: node };
                if self.expiry_waits[node as usize] > 0 || self.dominated(node, limit) {
                    continue;
                }
                return Some(node);
            }
            // `FromNow`'s second part walks list 1 backwards, only below the frontier; the
            // cursor keeps its own list number.
            let cursor_list = list;
            let (list, bound) = if list == BEFORE_FRONTIER_LIST {
                (1, limit.min(self.frontier.saturating_sub(1)))
            } else {
                (list, limit)
            };
            let links = if list == 1 {
                &self.unknown
            } else {
                &self.unknown_other
            };
            let node = if after == self.sentinel() {
                self.latest_unplaced(list, bound)
            } else {
                links.prev[after as usize]
            };
            if node == self.sentinel() {
                *cursor = if list == 1 {
                    Cursor::At {
                        list: 2,
                        after: self.sentinel(),
                    }
                } else {
                    self.after_unknown()
                };
                continue;
            }
            *cursor = Cursor::At {
                list: cursor_list,
                after: node,
            };
            if self.expiry_waits[node as usize] > 0 || self.dominated(node, limit) {
                continue;
            }
            return Some(node);
        }
    }

    /// The first unplaced unknown key write called at or after `from`.
    fn first_unplaced_from(&self, from: i64) -> u32 {
        let sorted = &self.unknown_sorted[0];
        let start = sorted.partition_point(|&node| self.ops[node as usize].call < from);
        sorted[start..]
            .iter()
            .copied()
            .find(|&node| !self.placed_flags[node as usize])
            .unwrap_or(self.sentinel())
    }

    /// Where the candidates go once the unknown-outcome ones are done: to the definite
    /// expiries held back (`expiries_last`), or nowhere.
    fn after_unknown(&self) -> Cursor {
        if self.expiries_last {
            Cursor::At {
                list: 3,
                after: self.sentinel(),
            }
        } else {
            Cursor::Exhausted
        }
    }

    /// Whether `node` is a lease expiry.
    fn is_expiry(&self, node: u32) -> bool {
        matches!(self.ops[node as usize].op, crate::model::Op::Expire { .. })
    }

    /// For a lease end (see `lease_ended_by`) that deleted no key (so it changed only the lease
    /// table), whether it
    /// may be placed here: when an unplaced operation whose outcome depends on the lease being
    /// gone may come next (a definite one naming the lease, or a grant of its id), or when the
    /// expiry is mandatory and no other definite operation may come next (it can wait no
    /// longer). Otherwise it is not tried here: in any linearization, an expiry that deletes no
    /// key can move later (past operations that do not name the lease, whose results it cannot
    /// change, and past unknown-outcome puts, revokes or txns naming it, which it would only
    /// turn into no-ops, the same as leaving them out) until just before the next operation
    /// that needs it gone, or its own return, or be left out when neither comes; at that point
    /// this operation is a candidate. So skipping it loses no linearization, and the search
    /// stops trying every subset of key-less expiries at each dead end (seed 77 of the
    /// simulator: a 200M-step give-up), and stops placing a mandatory expiry early, which
    /// turned every later put with its lease into a no-op and left the search to try every
    /// order of the revisions between before backing out of it (standalone
    /// leader_isolated_during_compaction seed 1: a lease expiry was due only at a failed put
    /// 2,000 s later, but the put that had to attach a key to it came at revision 637). A
    /// revoke of unknown outcome that deleted no key is the same kind of end and waits the same
    /// way (standalone lease_heavy seed 63: revokes of key-less leases tried at every point of
    /// a gap the witness had filled wrongly; it gave up after 200M steps). True for anything
    /// else.
    fn lease_user_ready(&self, node: u32) -> bool {
        let users = &self.lease_users[node as usize];
        if lease_ended_by(&self.ops[node as usize]).is_none() {
            return true;
        }
        let limit = self.earliest_return();
        let user_next = users
            .iter()
            .take_while(|&&user| self.ops[user as usize].call <= limit)
            .any(|&user| !self.placed_flags[user as usize]);
        user_next || (!self.ops[node as usize].unknown && self.only_definite_candidate(node, limit))
    }

    /// An unknown-outcome auth request changes only what later requests see of the auth state.
    /// While auth is disabled only auth requests see it, so until a definite one may come next
    /// the request can wait: placed later, after requests that ignore the auth state, it has
    /// the same effect (standalone permissions_revoked_under_load seed 8: with auth disabled,
    /// six unknown grants and revokes were tried at every position between the writes). An
    /// `auth_enable` never waits: requests that were refused need it before them. True for
    /// anything else.
    fn auth_reader_ready(&self, node: u32) -> bool {
        let op = &self.ops[node as usize];
        let crate::model::Op::Auth(cmd) = &op.op else {
            return true;
        };
        if !op.unknown
            || matches!(cmd, crate::model::auth::AuthCmd::Enable)
            || self.store.auth_enabled()
        {
            return true;
        }
        let limit = self.earliest_return();
        let mut candidate = self.definite.next[self.sentinel() as usize];
        while candidate != self.sentinel() && self.ops[candidate as usize].call <= limit {
            if matches!(self.ops[candidate as usize].op, crate::model::Op::Auth(_)) {
                return true;
            }
            candidate = self.definite.next[candidate as usize];
        }
        false
    }

    /// An unknown-outcome compaction changes only what later requests see of old revisions:
    /// until a definite one that may see it (a read at an old revision, a compaction, a txn
    /// holding such a read) may come next, it can wait, placed later with the same effect
    /// (an unknown txn it would fail then may succeed instead, which is only one more choice).
    /// So the search stops trying every subset of unknown compactions at each dead end
    /// (standalone lease_heavy seed 63: two compactions tried at every point of a gap the
    /// witness had filled wrongly). True for anything else.
    fn compaction_reader_ready(&self, node: u32) -> bool {
        let op = &self.ops[node as usize];
        if !op.unknown || !matches!(op.op, crate::model::Op::Compact { .. }) {
            return true;
        }
        let limit = self.earliest_return();
        let mut candidate = self.definite.next[self.sentinel() as usize];
        while candidate != self.sentinel() && self.ops[candidate as usize].call <= limit {
            if sees_compaction(&self.ops[candidate as usize].op) {
                return true;
            }
            candidate = self.definite.next[candidate as usize];
        }
        false
    }

    /// Whether `node` is the one unplaced definite operation called by `limit`.
    fn only_definite_candidate(&self, node: u32, limit: i64) -> bool {
        let mut candidate = self.definite.next[self.sentinel() as usize];
        while candidate != self.sentinel() && self.ops[candidate as usize].call <= limit {
            if candidate != node {
                return false;
            }
            candidate = self.definite.next[candidate as usize];
        }
        true
    }

    /// A lease end (see `lease_ended_by`) that would delete no key while no user of its lease
    /// may come next: the placement below would apply it, see the revision unchanged and
    /// `lease_user_ready` false, and undo it; deciding that first spares the apply and the undo
    /// (the search tries such expiries at nearly every step).
    fn idle_expiry(&self, node: u32) -> bool {
        let Some(id) = lease_ended_by(&self.ops[node as usize]) else {
            return false;
        };
        !self.store.lease_has_keys(id) && !self.lease_user_ready(node)
    }

    /// The unplaced operation of unknown list `list` with the latest call not after `limit`.
    fn latest_unplaced(&self, list: u8, limit: i64) -> u32 {
        let sorted = &self.unknown_sorted[usize::from(list - 1)];
        let mut position = sorted.partition_point(|&node| self.ops[node as usize].call <= limit);
        while position > 0 {
            position -= 1;
            let node = sorted[position];
            if !self.placed_flags[node as usize] {
                return node;
            }
        }
        self.sentinel()
    }

    fn unknown_links(&mut self, node: u32) -> &mut Links {
        if writes_keys_only(&self.ops[node as usize]) {
            &mut self.unknown
        } else {
            &mut self.unknown_other
        }
    }

    fn unlink(&mut self, node: u32) {
        self.placed_flags[node as usize] = true;
        self.placed_bits[node as usize / 64] ^= 1 << (node % 64);
        for &expiry in &self.precedes_expiry[node as usize] {
            self.expiry_waits[expiry as usize] -= 1;
        }
        if self.ops[node as usize].unknown {
            self.unknown_links(node).remove(node);
        } else {
            self.definite.remove(node);
            self.by_return.remove(node);
            self.by_bound.remove(node);
            self.definite_count -= 1;
        }
    }

    fn relink(&mut self, node: u32) {
        self.placed_flags[node as usize] = false;
        self.placed_bits[node as usize / 64] ^= 1 << (node % 64);
        for &expiry in &self.precedes_expiry[node as usize] {
            self.expiry_waits[expiry as usize] += 1;
        }
        if self.ops[node as usize].unknown {
            self.unknown_links(node).restore(node);
        } else {
            self.by_bound.restore(node);
            self.by_return.restore(node);
            self.definite.restore(node);
            self.definite_count += 1;
        }
    }

    /// Applies `node` and checks its recorded result; on failure the store is unchanged.
    pub(crate) fn try_apply(&mut self, node: usize) -> Result<bool, ()> {
        let op = &self.ops[node];
        let revision = self.store.revision();
        if revision < op.revision_lo || revision > op.revision_hi {
            return Err(());
        }
        let mark = self.store.mark();
        if !self
            .store
            .apply_matching_as(&op.op, op.rec.as_deref(), op.user)
        {
            return Err(());
        }
        if let Some(observed) = self.observed {
            let made = self.store.revision();
            if made > revision
                && (!observed.called_in_time(made, op.call)
                    || !observed.admits(&self.store, mark, op.call))
            {
                self.store.undo_to(mark);
                return Err(());
            }
        }
        Ok(self.store.mark() != mark)
    }

    /// Whether every unplaced read at an old revision in `(revision_before, now]` still gets
    /// its recorded kvs and count. Once the store is at revision R, the state at R is final
    /// (the next write makes R + 1), so a read of R that disagrees now disagrees wherever it
    /// is placed later; checking it here prunes the wrong filler of a revision gap at once
    /// rather than after every order of the writes up to the read's own header revision
    /// (seed 2 of default: a keys-only read at 376 placed at 387).
    fn historical_reads_agree(&mut self, revision_before: i64) -> bool {
        let now = self.store.revision();
        let start = self
            .historical
            .partition_point(|(revision, _, _)| *revision <= revision_before);
        for index in start..self.historical.len() {
            let (revision, node, _) = &self.historical[index];
            if *revision > now {
                break;
            }
            if self.placed_flags[*node as usize] {
                continue;
            }
            let mark = self.store.mark();
            let (_, node, rec) = &self.historical[index];
            // Its permission is judged where it is placed, not here.
            let read = &self.ops[*node as usize].op;
            let agrees = self.store.apply_matching_ignoring_auth(read, Some(rec));
            self.store.undo_to(mark);
            if !agrees {
                return false;
            }
        }
        true
    }

    /// Runs until every definite operation is placed, none can be, the budget runs out, or
    /// (with `stop_at`) that many definite operations are placed. "Impossible" is exact: the
    /// memo compares whole keys, or (above `EXACT_MEMO_OPS_MAX` operations) hashes first and
    /// whole keys in a second run when the first found no order after a hash hit (and likewise
    /// above `EXACT_MEMO_KEYS_MAX` keys). A run that gave up or stopped goes on from where it
    /// was when called again, exploring in the same order as one run would; `steps_max`
    /// bounds `steps`, which counts every run's steps.
    pub(crate) fn run(&mut self, steps_max: u64, stop_at: Option<usize>) -> Ended {
        let exact =
            self.ops.len() <= EXACT_MEMO_OPS_MAX && self.store.key_count() <= EXACT_MEMO_KEYS_MAX;
        let sentinel = self.sentinel();
        let mut progress = (self.progress.take()).unwrap_or_else(|| Progress::new(exact, sentinel));
        let mut ended = self.run_search(&mut progress, steps_max, stop_at);
        if matches!(ended, Ended::Impossible { .. })
            && !progress.memo.exact
            && progress.memo.hits > 0
        {
            // A hash-only memo may have skipped a state it never explored: confirm with an
            // exact one, from the start.
            progress = Progress::new(true, sentinel);
            ended = self.run_search(&mut progress, steps_max, stop_at);
        }
        if matches!(ended, Ended::GaveUp | Ended::Stopped) {
            self.progress = Some(progress);
        }
        ended
    }

    /// Searches on from `progress` until it decides, stops at `stop_at` placed, or has taken
    /// `steps_max` steps in all.
    fn run_search(
        &mut self,
        progress: &mut Progress,
        steps_max: u64,
        stop_at: Option<usize>,
    ) -> Ended {
        let Progress {
            memo,
            cursor,
            set_hash,
            exact_key,
            deepest,
        } = progress;
        loop {
            let placed = self.definite_total - self.definite_count;
            if self.definite_count == 0 {
                return Ended::Linearized(self.placed());
            }
            if stop_at == Some(placed) {
                return Ended::Stopped;
            }
            *deepest = (*deepest).max(placed);
            self.deepest = *deepest;
            // Checked before counting: the step not taken is taken by the run that resumes.
            if self.steps >= steps_max {
                return Ended::GaveUp;
            }
            self.steps += 1;
            let Some(node) = self.next_candidate(cursor) else {
                let Some(frame) = self.frames.pop() else {
                    return Ended::Impossible { deepest: *deepest };
                };
                self.relink(frame.op);
                self.store.undo_to(frame.mark);
                self.frontier = frame.parent_frontier;
                *set_hash ^= self.op_hash[frame.op as usize];
                *cursor = if frame.greedy {
                    Cursor::Exhausted
                } else {
                    frame.parent_cursor
                };
                continue;
            };
            if self.idle_expiry(node)
                || !self.auth_reader_ready(node)
                || !self.compaction_reader_ready(node)
            {
                continue;
            }
            let mark = self.store.mark();
            let revision_before = self.store.revision();
            let Ok(changed) = self.try_apply(node as usize) else {
                continue;
            };
            let unknown = self.ops[node as usize].unknown;
            if unknown && !changed {
                continue;
            }
            // An unknown outcome that leaves what the view keeps as it was is "not taken".
            if unknown && self.store.view_unchanged_since(mark, revision_before) {
                self.store.undo_to(mark);
                continue;
            }
            if self.store.revision() == revision_before && !self.lease_user_ready(node) {
                self.store.undo_to(mark);
                continue;
            }
            self.unlink(node);
            if self.store.revision() > self.revision_ceiling()
                || (self.store.revision() > revision_before
                    && !self.historical_reads_agree(revision_before))
            {
                self.relink(node);
                self.store.undo_to(mark);
                continue;
            }
            // Greedy placements still enter the set hash: a set with a read placed and one
            // without it are different nodes.
            // Only a recorded result pins what the operation does; a mandatory operation of
            // unknown outcome may act differently elsewhere, so it always branches.
            let greedy = !changed && self.ops[node as usize].rec.is_some();
            let next_set_hash = *set_hash ^ self.op_hash[node as usize];
            if memo.exact && !greedy {
                exact_key.clear();
                exact_key.extend_from_slice(&self.placed_bits);
                self.store.fingerprint(self.with_history, exact_key);
            }
            if !greedy
                && !memo.insert(
                    (next_set_hash, self.store.hash(self.with_history)),
                    exact_key,
                )
            {
                self.relink(node);
                self.store.undo_to(mark);
                continue;
            }
            *set_hash = next_set_hash;
            self.frames.push(Frame {
                op: node,
                mark,
                greedy,
                parent_cursor: *cursor,
                parent_frontier: self.frontier,
            });
            if !unknown {
                self.frontier = self.frontier.max(self.ops[node as usize].call);
            }
            *cursor = Cursor::At {
                list: 0,
                after: self.sentinel(),
            };
        }
    }
}

/// Whether the outcome of `op` may depend on the compacted revision.
fn sees_compaction(op: &crate::model::Op) -> bool {
    use crate::model::Op;
    match op {
        Op::Range { revision, .. } => *revision > 0,
        Op::Compact { .. } => true,
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).any(sees_compaction),
        _ => false,
    }
}

/// The lease `op` ends whenever it changes anything: an expiry, or a revoke of unknown
/// outcome (a definite revoke's result already says whether it found the lease).
fn lease_ended_by(op: &SearchOp) -> Option<i64> {
    match op.op {
        crate::model::Op::Expire { id } => Some(id),
        crate::model::Op::LeaseRevoke { id } if op.unknown => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod memo_tests {
    use super::Memo;

    #[test]
    fn exact_memo_tells_colliding_keys_apart() {
        // Goal: a memo hit means the same placed set and store, never merely the same hash, so
        // a collision cannot prune an unexplored subtree. Method: insert two different exact
        // keys under one hash pair; the exact memo must take both and refuse only a true repeat,
        // while the hash-only memo (kept for large histories, confirmed by an exact rerun)
        // refuses the second.
        let mut exact = Memo::new(true);
        assert!(exact.insert((7, 9), &[1, 2, 3]));
        assert!(exact.insert((7, 9), &[1, 2, 4]));
        assert!(!exact.insert((7, 9), &[1, 2, 3]));
        assert_eq!(exact.hits, 1);
        for word in 0..5_000_u64 {
            assert!(exact.insert((word, word), &[word]), "growth keeps entries");
        }
        assert!(!exact.insert((7, 9), &[1, 2, 4]));
        let mut hashed = Memo::new(false);
        assert!(hashed.insert((7, 9), &[]));
        assert!(!hashed.insert((7, 9), &[]));
        assert_eq!(hashed.hits, 1);
    }
}
