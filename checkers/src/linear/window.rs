//! Turning "no linearization exists" into evidence: a minimal failing window and a plain
//! explanation of which operation cannot be placed and what it saw against what was possible.
//!
//! A window is a set of operations kept as recorded; every other write is relaxed to an unknown
//! outcome and every other read dropped. Relaxing only adds linearizations, so a window that still
//! fails proves the whole history fails. Shrinking is delta debugging under a re-check budget.

use super::prepare::SearchOp;
use super::search::{Ended, Search};
use super::{describe_op, is_read, state_view, Explain, LinearConfig, CHECKER};
use crate::history::HistoryView;
use crate::model::{explain_mismatch, Store, Tables};
use crate::Verdict;

/// Builds the violation verdict for operations (sorted by call) that have no linearization
/// from the empty store; the deciding search placed at most `deepest` definite ones at once.
pub(super) fn violation(
    history: HistoryView<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    deepest: usize,
    config: &LinearConfig,
) -> Verdict {
    let definite: Vec<usize> = (0..ops.len())
        .filter(|&index| !ops[index].unknown)
        .collect();
    let shrinking = config.explain == Explain::Full && definite.len() <= config.window_ops_max;
    let (window_ops, keep, known_deepest) = if shrinking {
        let keep = shrink(history, tables, ops, definite, config);
        (relax(history, ops, &keep), keep, None)
    } else {
        (ops.to_vec(), definite, Some(deepest))
    };
    let stuck = explain(history, tables, &window_ops, known_deepest, config);
    // The window names the history's operations only: a virtual lease expiry has an internal
    // id that means nothing to a reader (the explanation names it as "the expiry of lease N").
    let whole = !shrinking && keep.len() == definite_count(ops);
    let mut window: Vec<u64> = match (&stuck, whole) {
        // A large history is not minimised: show the neighbourhood of the stuck point.
        (Some(stuck), true) => stuck
            .neighbourhood
            .iter()
            .map(|&index| &window_ops[index])
            .filter(|op| op.source.is_some())
            .map(|op| op.id)
            .collect(),
        _ => keep
            .iter()
            .map(|&index| &ops[index])
            .filter(|op| op.source.is_some())
            .map(|op| op.id)
            .collect(),
    };
    window.sort_unstable();
    window.dedup();
    let explanation = stuck.map_or_else(
        || {
            "no order of the window's operations is consistent with real time and the store"
                .to_string()
        },
        |stuck| stuck.text,
    );
    Verdict::Violation {
        checker: CHECKER.to_string(),
        window,
        explanation,
    }
}

fn definite_count(ops: &[SearchOp]) -> usize {
    ops.iter().filter(|op| !op.unknown).count()
}

/// Keeps `keep` (indices into `ops`) as recorded; relaxes other writes, drops other reads.
fn relax(history: HistoryView<'_>, ops: &[SearchOp], keep: &[usize]) -> Vec<SearchOp> {
    let mut kept = vec![false; ops.len()];
    keep.iter().for_each(|&index| kept[index] = true);
    let mut out = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        if kept[index] || op.unknown {
            out.push(op.clone());
            continue;
        }
        let source = op
            .source
            .expect("definite operations come from the history");
        if is_read(&history.ops[source].request) {
            continue;
        }
        let mut relaxed = op.clone();
        relaxed.unknown = true;
        relaxed.rec = None;
        relaxed.ret = i64::MAX;
        relaxed.revision_lo = 0;
        relaxed.revision_hi = i64::MAX;
        out.push(relaxed);
    }
    out
}

fn still_fails(
    history: HistoryView<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    keep: &[usize],
    steps_max: u64,
) -> (bool, u64) {
    let relaxed = relax(history, ops, keep);
    let mut search = Search::new(
        &relaxed,
        Store::new(tables.key_count()),
        state_view(&relaxed),
    );
    let fails = matches!(search.run(steps_max, None), Ended::Impossible { .. });
    (fails, search.steps)
}

/// Delta debugging over the kept operations: drop chunks while the rest still fails, within
/// `window_attempts_max` re-checks and `window_steps_total_max` steps in all.
fn shrink(
    history: HistoryView<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    mut keep: Vec<usize>,
    config: &LinearConfig,
) -> Vec<usize> {
    let mut steps_left = config.window_steps_total_max;
    let mut attempts = 0;
    let mut chunks = 2;
    while keep.len() >= 2 && attempts < config.window_attempts_max {
        let chunk_len = keep.len().div_ceil(chunks);
        let mut reduced = false;
        for start in (0..keep.len()).step_by(chunk_len) {
            if attempts >= config.window_attempts_max || steps_left == 0 {
                attempts = config.window_attempts_max;
                break;
            }
            attempts += 1;
            let candidate: Vec<usize> = keep[..start]
                .iter()
                .chain(keep[(start + chunk_len).min(keep.len())..].iter())
                .copied()
                .collect();
            let budget = config.window_steps_max.min(steps_left);
            let (fails, spent) = still_fails(history, tables, ops, &candidate, budget);
            steps_left -= spent.min(steps_left);
            if fails {
                keep = candidate;
                chunks = (chunks - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if chunks >= keep.len() {
                break;
            }
            chunks = (chunks * 2).min(keep.len());
        }
    }
    keep
}

struct Stuck {
    text: String,
    neighbourhood: Vec<usize>,
}

/// Finds the deepest point the search reaches (`known_deepest` when the deciding search already
/// found it on these very operations) and says why nothing can go next there.
fn explain(
    history: HistoryView<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    known_deepest: Option<usize>,
    config: &LinearConfig,
) -> Option<Stuck> {
    let view = state_view(ops);
    let deepest = match known_deepest {
        Some(deepest) => deepest,
        None => {
            let mut search = Search::new(ops, Store::new(tables.key_count()), view);
            let Ended::Impossible { deepest } = search.run(config.steps_max, None) else {
                return None;
            };
            deepest
        }
    };
    let mut search = Search::new(ops, Store::new(tables.key_count()), view);
    if !matches!(search.run(config.steps_max, Some(deepest)), Ended::Stopped) {
        return None;
    }
    let placed = search.placed();
    let candidates = search.candidates();
    let mut reasons = Vec::new();
    for &candidate in candidates.iter().take(3) {
        reasons.push(format!(
            "{} cannot take effect next: {}",
            describe_op(history, &ops[candidate]),
            reason(history, &mut search, tables, ops, candidate)
        ));
    }
    let recent: Vec<String> = placed
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|&index| describe_op(history, &ops[index]))
        .collect();
    let text = format!(
        "after {} operations in the only orders real time allows (last: {}), with the store at revision {}: {}",
        placed.len(),
        if recent.is_empty() { "none".to_string() } else { recent.join(", ") },
        search.store().revision(),
        reasons.join("; and ")
    );
    let neighbourhood = placed
        .iter()
        .rev()
        .take(20)
        .chain(candidates.iter())
        .copied()
        .collect();
    Some(Stuck {
        text,
        neighbourhood,
    })
}

fn reason(
    history: HistoryView<'_>,
    search: &mut Search<'_>,
    tables: &Tables,
    ops: &[SearchOp],
    candidate: usize,
) -> String {
    let op = &ops[candidate];
    let revision = search.store().revision();
    if revision < op.revision_lo || revision > op.revision_hi {
        let bound = if op.revision_lo == op.revision_hi {
            format!("{}", op.revision_lo)
        } else {
            format!("between {} and {}", op.revision_lo, op.revision_hi)
        };
        return format!("its result needs the store at revision {bound} before it, but the store is at revision {revision}");
    }
    let mark = search.store().mark();
    if search.try_apply(candidate).is_ok() {
        let after = search.store().revision();
        search.undo_to(mark);
        if let Some(bound) = search
            .tightest_bound_except(candidate)
            .filter(|&other| ops[other].revision_hi < after)
        {
            return format!(
                "it would move the store to revision {after}, but {} must still take effect and needs the store at revision {} at most",
                describe_op(history, &ops[bound]),
                ops[bound].revision_hi
            );
        }
        return "it can take effect here, but then some later operation cannot (every order was tried)".to_string();
    }
    let mut scratch = search.store().clone();
    let outcome = scratch.apply_as(&op.op, op.user);
    match op.rec.as_deref() {
        Some(rec) => explain_mismatch(rec, &outcome, tables),
        None => "it cannot take effect".to_string(),
    }
}
