//! The linearizability checker for the etcd model of the history spec: decomposes the history
//! soundly (per-key partitions when no revision couples keys; quiescent segments), searches each
//! part, and on failure shrinks to a minimal failing window with a plain explanation.
//!
//! The search itself is in `search`; the sequential store in `crate::model`. Budgets are steps,
//! never time: the same history always gets the same verdict.

mod absent;
mod by_revision;
mod contradiction;
mod counts;
mod needs;
mod pin;
mod prepare;
mod reduce;
mod runs;
mod search;
mod setup;
mod sightings;
mod window;

use crate::history::CompareTarget;
use crate::history::{describe_request, History, HistoryView, Request};
use crate::model::{ErrorCode, Op, Rec, RecKv, StateView, Store, Tables};
use crate::Verdict;
use prepare::{partition_by_key, prepare, quiescent_segments, SearchOp};
use search::{Ended, Search, UnknownOrder};

/// The checker's name in verdicts.
pub const CHECKER: &str = "linearizability";

/// Search limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearConfig {
    /// Steps the whole search may take before answering "unknown".
    pub steps_max: u64,
    /// Re-checks spent shrinking a failing window.
    pub window_attempts_max: usize,
    /// Steps each re-check may take.
    pub window_steps_max: u64,
    /// Steps all re-checks together may take: the verdict is decided before shrinking starts,
    /// so this bounds only the time spent making the explanation small.
    pub window_steps_total_max: u64,
    /// How much to spend explaining a violation.
    pub explain: Explain,
    /// Above this many definite operations, the window is the neighbourhood of the stuck point
    /// rather than a minimised one.
    pub window_ops_max: usize,
}

/// The budget of `detcd check`, which may spend about a minute on a hard history; `check_all`
/// takes a smaller one by default (`crate::CHECK_ALL_LINEAR_STEPS_MAX`).
impl Default for LinearConfig {
    fn default() -> LinearConfig {
        LinearConfig {
            steps_max: 200_000_000,
            window_attempts_max: 120,
            window_steps_max: 100_000,
            window_steps_total_max: 2_000_000,
            explain: Explain::Full,
            window_ops_max: 2_000,
        }
    }
}

/// How a violation is explained (the verdict is the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explain {
    /// No shrinking: the window is the neighbourhood of the point where every order got stuck,
    /// taken from the search that decided the verdict.
    Fast,
    /// Shrinks the window by delta debugging within `window_steps_total_max` steps.
    Full,
}

/// A linearization found: the operations that took effect, in order.
#[derive(Debug, Clone)]
pub struct Linearization {
    /// Interned keys and values.
    pub tables: Tables,
    /// (history op index, or `None` for a lease expiry; the compiled request; the call time).
    pub steps: Vec<(Option<usize>, Op, i64)>,
}

/// The verdict, the linearization when one was found, and the steps spent.
#[derive(Debug, Clone)]
pub struct LinearReport {
    /// The verdict.
    pub verdict: Verdict,
    /// A witness order when linearizable (and not split per key).
    pub linearization: Option<Linearization>,
    /// Search steps spent.
    pub steps: u64,
}

enum Decision {
    Linear(Vec<usize>),
    /// No order exists for `ops[range]` from the empty store (so none for all of `ops`); the
    /// search reached `deepest` definite operations placed.
    Impossible {
        range: std::ops::Range<usize>,
        deepest: usize,
    },
    GaveUp,
}

/// What of the store the search over `ops` must tell apart (see `StateView`): every version
/// when some read is at an old revision; values alone when nothing can observe a revision.
fn state_view(ops: &[SearchOp]) -> StateView {
    if needs_history(ops) {
        StateView::History
    } else if observes_revisions(ops) {
        StateView::Latest
    } else {
        StateView::ValuesOnly
    }
}

/// Whether any operation could tell two stores apart that hold the same keys, values and
/// leases: a recorded revision, version, create or mod revision; a compare on one of them; a
/// compaction or a modelled error about revisions.
fn observes_revisions(ops: &[SearchOp]) -> bool {
    fn op_observes(op: &Op) -> bool {
        match op {
            Op::Compact { .. } => true,
            Op::Range { revision, .. } => *revision != 0,
            Op::Txn {
                compares,
                success,
                failure,
            } => {
                compares.iter().any(|compare| {
                    !matches!(compare.target, CompareTarget::Value | CompareTarget::Lease)
                }) || success.iter().chain(failure).any(op_observes)
            }
            _ => false,
        }
    }
    fn kv_observes(kv: &RecKv) -> bool {
        kv.create_revision.is_some() || kv.mod_revision.is_some() || kv.version.is_some()
    }
    fn rec_observes(rec: &Rec) -> bool {
        match rec {
            Rec::Range { revision, kvs, .. } => {
                revision.is_some() || kvs.iter().flatten().any(kv_observes)
            }
            Rec::Put { revision, prev_kv } => {
                revision.is_some() || prev_kv.iter().flatten().any(kv_observes)
            }
            Rec::Delete {
                revision, prev_kvs, ..
            } => revision.is_some() || prev_kvs.iter().flatten().any(kv_observes),
            Rec::Txn {
                revision,
                responses,
                ..
            } => revision.is_some() || responses.iter().flatten().any(rec_observes),
            Rec::LeaseRevoke { revision } | Rec::Compact { revision } => revision.is_some(),
            Rec::LeaseGrant { .. } | Rec::LeaseKeepAlive { .. } | Rec::Auth => false,
            Rec::Error(code) => matches!(code, ErrorCode::Compacted | ErrorCode::FutureRevision),
        }
    }
    ops.iter()
        .any(|op| op_observes(&op.op) || op.rec.as_deref().is_some_and(rec_observes))
}

fn needs_history(ops: &[SearchOp]) -> bool {
    ops.iter().any(|op| reads_history(&op.op))
}

/// Whether `op` reads some revision other than the latest (a range with a revision, or a txn
/// holding one).
pub(super) fn reads_history(op: &Op) -> bool {
    match op {
        Op::Range { revision, .. } => *revision != 0,
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).any(reads_history),
        _ => false,
    }
}

/// Decides ops (sorted by call): quiescent segments first (a pass is a pass), and the whole search
/// when a segment fails (another end state of an earlier segment might have worked). The first
/// segment starts from the empty store, the one start state there is, so its failure is the
/// history's: it is neither searched again as part of the whole nor later to explain it.
fn decide(
    ops: &[SearchOp],
    key_count: usize,
    steps_max: u64,
    steps: &mut u64,
    observed: Option<&pin::Observations>,
    unknown_order: UnknownOrder,
) -> Decision {
    Decider::new(ops, key_count, observed, unknown_order).run(steps_max, steps)
}

/// `decide` in steps: after it gave up, `run` with a larger budget goes on where it stopped
/// (the witness's complete order resumes after the other orders had their turn instead of
/// starting over).
struct Decider<'a> {
    ops: &'a [SearchOp],
    key_count: usize,
    view: StateView,
    observed: Option<&'a pin::Observations>,
    unknown_order: UnknownOrder,
    segments: Vec<std::ops::Range<usize>>,
    /// The segment `search` works on (or the next to start); `segments.len()` once the whole
    /// history is searched.
    segment: usize,
    /// The linearization of the segments done.
    order: Vec<usize>,
    /// The store after the segments done, while no search holds it.
    store: Option<Store>,
    /// The search in progress: of `segments[segment]`, or of the whole history.
    search: Option<Search<'a>>,
}

impl<'a> Decider<'a> {
    fn new(
        ops: &'a [SearchOp],
        key_count: usize,
        observed: Option<&'a pin::Observations>,
        unknown_order: UnknownOrder,
    ) -> Decider<'a> {
        Decider {
            ops,
            key_count,
            view: state_view(ops),
            observed,
            unknown_order,
            segments: quiescent_segments(ops),
            segment: 0,
            order: Vec::with_capacity(ops.len()),
            store: Some(Store::new(key_count)),
            search: None,
        }
    }

    fn search_of(&self, ops: &'a [SearchOp], store: Store) -> Search<'a> {
        Search::new(ops, store, self.view)
            .with_observations(self.observed)
            .with_unknown_order(self.unknown_order)
    }

    /// Searches on until it decides or `steps` reaches `steps_max`.
    fn run(&mut self, steps_max: u64, steps: &mut u64) -> Decision {
        while self.segment < self.segments.len() {
            let segment = self.segments[self.segment].clone();
            let search = match self.search.take() {
                Some(search) => search,
                None => {
                    let store = self.store.take().expect("the segments' store");
                    self.search_of(&self.ops[segment.clone()], store)
                }
            };
            let search = self.search.insert(search);
            let ended = run_counted(search, steps_max, steps);
            match ended {
                Ended::Linearized(placed) => {
                    let start = segment.start;
                    self.order
                        .extend(placed.into_iter().map(|index| index + start));
                    let mut store = self.search.take().expect("searched").into_store();
                    store.forget_undo();
                    self.store = Some(store);
                    self.segment += 1;
                }
                Ended::GaveUp => return Decision::GaveUp,
                Ended::Impossible { deepest } if segment.start == 0 => {
                    return Decision::Impossible {
                        range: segment,
                        deepest,
                    }
                }
                Ended::Impossible { .. } | Ended::Stopped => {
                    self.segment = self.segments.len();
                    let whole = self.search_of(self.ops, Store::new(self.key_count));
                    self.search = Some(whole);
                    return self.run_whole(steps_max, steps);
                }
            }
        }
        if self.search.is_none() {
            return Decision::Linear(std::mem::take(&mut self.order));
        }
        self.run_whole(steps_max, steps)
    }

    /// Searches the whole history on (a segment failed).
    fn run_whole(&mut self, steps_max: u64, steps: &mut u64) -> Decision {
        let search = self.search.as_mut().expect("the whole history's search");
        match run_counted(search, steps_max, steps) {
            Ended::Linearized(placed) => Decision::Linear(placed),
            Ended::Impossible { deepest } => Decision::Impossible {
                range: 0..self.ops.len(),
                deepest,
            },
            Ended::GaveUp | Ended::Stopped => Decision::GaveUp,
        }
    }
}

/// Runs `search` on until `steps` (which counts every search's steps) reaches `steps_max`.
fn run_counted(search: &mut Search<'_>, steps_max: u64, steps: &mut u64) -> Ended {
    let before = search.steps;
    let ended = search.run(before + steps_max.saturating_sub(*steps), None);
    *steps += search.steps - before;
    ended
}

/// Checks a history for linearizability.
pub fn check_linearizable(history: &History, config: &LinearConfig) -> LinearReport {
    check_view(HistoryView::of(history), config)
}

/// `check_linearizable` of a history in parts.
pub(crate) fn check_view(history: HistoryView<'_>, config: &LinearConfig) -> LinearReport {
    if let Some((window, explanation)) = contradiction::find(history) {
        return LinearReport {
            verdict: Verdict::Violation {
                checker: CHECKER.to_string(),
                window,
                explanation,
            },
            linearization: None,
            steps: 0,
        };
    }
    let tables = Tables::build_view(history);
    let mut ops = prepare(history.ops, &tables);
    // Sorting keys and then permuting moves each (large) operation once.
    ops.sort_by_cached_key(|op| (op.call, op.id));
    let mut steps = 0;
    if let Some(report) = revision_witness(history, &tables, &ops, config, &mut steps) {
        return report;
    }
    // The search runs on `searched`; a linearization reports the operations as recorded.
    let mut merged = ops.clone();
    let searched = if history.watches.is_empty() && reduce::merge_unobserved_values(&mut merged) {
        &merged
    } else {
        &ops
    };
    if let Some(parts) =
        partition_by_key(searched).filter(|parts| parts.len() > 1 && history.watches.is_empty())
    {
        for part in &parts {
            match decide(
                part,
                tables.key_count(),
                config.steps_max,
                &mut steps,
                None,
                UnknownOrder::Lists,
            ) {
                Decision::Linear(_) => {}
                Decision::GaveUp => return gave_up(steps),
                Decision::Impossible { range, deepest } => {
                    let verdict =
                        window::violation(history, &tables, &part[range], deepest, config);
                    return LinearReport {
                        verdict,
                        linearization: None,
                        steps,
                    };
                }
            }
        }
        return LinearReport {
            verdict: Verdict::Ok,
            linearization: None,
            steps,
        };
    }
    match decide(
        searched,
        tables.key_count(),
        config.steps_max,
        &mut steps,
        None,
        UnknownOrder::Lists,
    ) {
        Decision::Linear(order) => {
            let steps_list = order
                .iter()
                .map(|&index| (ops[index].source, ops[index].op.clone(), ops[index].call));
            let linearization = Linearization {
                steps: steps_list.collect(),
                tables,
            };
            LinearReport {
                verdict: Verdict::Ok,
                linearization: Some(linearization),
                steps,
            }
        }
        Decision::GaveUp => gave_up(steps),
        Decision::Impossible { range, deepest } => {
            let verdict = window::violation(history, &tables, &searched[range], deepest, config);
            LinearReport {
                verdict,
                linearization: None,
                steps,
            }
        }
    }
}

/// Steps the revision-directed witness attempt may take before the general search runs. The
/// witness decides simulator histories the general search cannot (seed 123 of compaction_heavy
/// with buggify, checked alone: 37M witness steps, while the general search gives up after
/// 200M); a history it cannot linearize pays this much before the general search.
const WITNESS_STEPS_MAX: u64 = 50_000_000;

/// With recorded revisions, tries the pinned and pruned operations first (see `pin`): a complete
/// order found there is a witness for the whole history, since every definite operation is in it
/// and every included unknown-outcome operation may legally take effect. Anything else says
/// nothing, and the general search decides.
///
/// The first attempt holds the order to the watch events' prev_kvs too, so that the watch
/// checker judges them against an order they allow when one exists; when none does (a wrong
/// prev_kv), the second attempt leaves them out, so that the watch checker still gets a
/// witness to report the prev_kv against.
fn revision_witness(
    history: HistoryView<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    config: &LinearConfig,
    steps: &mut u64,
) -> Option<LinearReport> {
    let with_revisions = ops
        .iter()
        .any(|op| !op.unknown && op.revision_lo == op.revision_hi && op.revision_hi > 0);
    if !with_revisions {
        return None;
    }
    let stale_kvs = sightings::serializable_kvs(history.ops, tables);
    let with_prev_kvs = history
        .watches
        .iter()
        .flat_map(|watch| &watch.events)
        .any(|event| event.prev_kv.is_some());
    let attempt = |steps: &mut u64, with_prev_kvs| {
        witness_attempt(
            history,
            &stale_kvs,
            tables,
            ops,
            config,
            steps,
            with_prev_kvs,
        )
    };
    if with_prev_kvs {
        if let Some(report) = attempt(steps, true) {
            return Some(report);
        }
    }
    attempt(steps, false)
}

/// The witness attempt's first pass: the complete order (`UnknownOrder::Lists`) for this many
/// steps, which decides nearly every simulator history.
const WITNESS_FIRST_STEPS_MAX: u64 = 1_000_000;

/// The second pass, when the first ran out: the complete order with the unknown-outcome key
/// writes taken from the frontier on, earliest call first (`UnknownOrder::FromNow`), for this
/// many steps. The first pass tries the latest-called writes first, which after an outage are
/// the last retries; the writes that fill the revisions an outage left unobserved are mostly
/// those in flight when it began, in about the order they were called (standalone
/// watch_heavy_with_compaction seed 131: revisions 98 to 106 made by writes called at 6.5 s,
/// three of them twice through their retries, while the first pass tried writes called up to
/// 9.3 s first; 4.09M steps in all before, now 1.01M, of which this pass took 12k).
const WITNESS_FROM_NOW_STEPS_MAX: u64 = 100_000;

/// The third pass, when the second found nothing: every unknown-outcome candidate latest call
/// first, expiries among the writes, and only the `WITNESS_BEAM_WIDTH` latest at each point,
/// for this many steps. A revision gap the first pass fills wrongly at its start is otherwise
/// revisited only after every later filler has been tried with it, among hundreds of
/// long-unanswered writes that could fill any gap (standalone clock_drift_with_leases seed 21:
/// nine unobserved revisions, told apart only by a count six revisions later, gave up after
/// 200M steps; the beam decides it in under 1M). Trying expiries by call, not after every write, decides
/// leader_isolated_during_compaction seed 15 (five expiries in a row) in 10 ms instead of 2 s.
/// Incomplete by design: when it and the fourth pass find nothing, the first pass's search goes
/// on where it stopped, with the rest of the witness budget.
const WITNESS_BEAM_STEPS_MAX: u64 = 1_000_000;

/// The fourth pass, when the beam found nothing: the complete order again, but with the
/// mandatory lease expiries tried after every other candidate instead of first among the
/// definite ones, for this many steps. The first pass places such an expiry in the first free
/// revision it may take; where the run made it later, behind puts the reads cannot place
/// alone, the first pass tries every order of the revisions between before backing out of it
/// (standalone clock_drift_with_leases seed 151: gave up after 200M steps, decided in this
/// pass in about 1 s).
const WITNESS_EXPIRIES_LAST_STEPS_MAX: u64 = 1_000_000;

/// Candidates tried at each point in the witness's beam pass. Measured on the standalone
/// histories of seeds 1 to 24 of every library scenario: 8 and 12 are too narrow for
/// clock_drift_with_leases seed 21 (it gives up), 20 to 32 decide it in 0.1 to 0.2 s.
const WITNESS_BEAM_WIDTH: u32 = 24;

/// One witness attempt (see `revision_witness`).
fn witness_attempt(
    history: HistoryView<'_>,
    stale_kvs: &[pin::KvFields],
    tables: &Tables,
    ops: &[SearchOp],
    config: &LinearConfig,
    steps: &mut u64,
    with_prev_kvs: bool,
) -> Option<LinearReport> {
    let witness = |watches, steps: &mut u64, with_prev_kvs| {
        witness_with(
            watches,
            stale_kvs,
            tables,
            ops,
            config,
            steps,
            with_prev_kvs,
        )
    };
    witness(history.watches, steps, with_prev_kvs).or_else(|| {
        // Watch streams only narrow the candidate; one that contradicts the operations (an
        // event at a shifted revision) must not keep the history from its verdict. Without
        // them the witness is still a linearization of the operations, and the watch checker
        // then names the event that disagrees with it.
        (!history.watches.is_empty())
            .then(|| witness(&[], steps, false))
            .flatten()
    })
}

/// `revision_witness` with the given watch streams as observations.
fn witness_with(
    watches: &[crate::history::WatchRecord],
    stale_kvs: &[pin::KvFields],
    tables: &Tables,
    ops: &[SearchOp],
    config: &LinearConfig,
    steps: &mut u64,
    with_prev_kvs: bool,
) -> Option<LinearReport> {
    let (narrowed, observed) =
        pin::pin_by_revisions(ops, watches, stale_kvs, tables, with_prev_kvs);
    // `decide` caps the steps counted so far, which include an earlier try's.
    let budget = steps
        .saturating_add(WITNESS_STEPS_MAX)
        .min(config.steps_max);
    let passes = [
        (WITNESS_FIRST_STEPS_MAX, UnknownOrder::Lists),
        (WITNESS_FROM_NOW_STEPS_MAX, UnknownOrder::FromNow),
        (
            WITNESS_BEAM_STEPS_MAX,
            UnknownOrder::Merged {
                beam: WITNESS_BEAM_WIDTH,
            },
        ),
        (WITNESS_EXPIRIES_LAST_STEPS_MAX, UnknownOrder::ExpiriesLast),
        (u64::MAX, UnknownOrder::Lists),
    ];
    // The complete order's passes are one search: the last goes on where the first stopped.
    let mut lists = Decider::new(
        &narrowed,
        tables.key_count(),
        Some(&observed),
        UnknownOrder::Lists,
    );
    let mut decision = Decision::GaveUp;
    for (pass_steps, order) in passes {
        let pass_budget = steps.saturating_add(pass_steps).min(budget);
        decision = match order {
            UnknownOrder::Lists => lists.run(pass_budget, steps),
            _ => decide(
                &narrowed,
                tables.key_count(),
                pass_budget,
                steps,
                Some(&observed),
                order,
            ),
        };
        // A complete order finding no witness settles it; the beam's subset has none either.
        let settled = !matches!(order, UnknownOrder::Merged { .. })
            && matches!(decision, Decision::Impossible { .. });
        if matches!(decision, Decision::Linear(_)) || settled || *steps >= budget {
            break;
        }
    }
    let Decision::Linear(order) = decision else {
        return None;
    };
    // Pinning may delay a virtual operation's call; the witness reports the original one.
    let original_call: std::collections::BTreeMap<u64, i64> =
        ops.iter().map(|op| (op.id, op.call)).collect();
    let steps_list = order.iter().map(|&index| {
        let op = &narrowed[index];
        (op.source, op.op.clone(), original_call[&op.id])
    });
    Some(LinearReport {
        verdict: Verdict::Ok,
        linearization: Some(Linearization {
            steps: steps_list.collect(),
            tables: tables.clone(),
        }),
        steps: *steps,
    })
}

fn gave_up(steps: u64) -> LinearReport {
    LinearReport {
        verdict: Verdict::Unknown {
            reason: format!("linearizability search gave up after {steps} steps"),
        },
        linearization: None,
        steps,
    }
}

/// Renders an operation for explanations: `op 7 (client 2, put "a"="1")`.
fn describe_op(history: HistoryView<'_>, op: &SearchOp) -> String {
    match op.source {
        Some(index) => {
            let source = &history.ops[index];
            format!(
                "op {} (client {}, {})",
                source.id,
                source.client,
                describe_request(&source.request)
            )
        }
        None => match op.op {
            Op::Expire { id } => format!("the expiry of lease {id}"),
            _ => "a virtual operation".to_string(),
        },
    }
}

/// Whether a request can never change the store (a relaxed read constrains nothing).
pub fn is_read_request(request: &Request) -> bool {
    is_read(request)
}

fn is_read(request: &Request) -> bool {
    match request {
        Request::Range(_) | Request::LeaseKeepAlive { .. } => true,
        Request::Txn(txn) => txn.success.iter().chain(&txn.failure).all(is_read),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
