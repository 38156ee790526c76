//! Runs of revisions: sorted, disjoint revision spans looked up by binary search, and suffix
//! minima of (revision, time) pairs. The witness (`pin`) keeps its observations in these forms
//! so that each check during the search is a binary search rather than a scan. Nothing here
//! knows about operations or the store.

/// Per revision with a (revision, time) pair, the least time among pairs at that revision or
/// later, revision-sorted (a later revision observed implies every earlier one was made).
pub(super) fn suffix_minima(mut pairs: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    // Stable sort: each watch's events come in revision order, and merging those runs is cheap.
    pairs.sort();
    // Sorted, so the first pair kept per revision has that revision's least time.
    pairs.dedup_by_key(|&mut (revision, _)| revision);
    let mut running = i64::MAX;
    for (_, time) in pairs.iter_mut().rev() {
        running = running.min(*time);
        *time = running;
    }
    pairs
}

/// The suffix minimum (see `suffix_minima`) covering `revision`: that of the first revision at
/// or after it.
pub(super) fn minimum_from(minima: &[(i64, i64)], revision: i64) -> Option<i64> {
    let at = minima.partition_point(|&(listed, _)| listed < revision);
    minima.get(at).map(|&(_, time)| time)
}

/// Whether `revision` lies in one of `runs` (sorted, disjoint runs (first, last)).
pub(super) fn in_runs(runs: &[(i64, i64)], revision: i64) -> bool {
    let after = runs.partition_point(|&(first, _)| first <= revision);
    after > 0 && revision <= runs[after - 1].1
}

/// Appends a run, or widens the last one when the two overlap or touch (successive reads of
/// an unchanged key mostly give the same or a longer span): the union is the same, and far
/// fewer runs are left to sort.
pub(super) fn push_run(runs: &mut Vec<(i64, i64)>, (first, last): (i64, i64)) {
    assert!(first <= last, "a run holds a revision");
    match runs.last_mut() {
        Some(previous)
            if first <= previous.1.saturating_add(1) && previous.0 <= last.saturating_add(1) =>
        {
            *previous = (previous.0.min(first), previous.1.max(last));
        }
        _ => runs.push((first, last)),
    }
}

/// Sorts runs of revisions (first, last) and merges those that overlap or touch.
pub(super) fn merge_runs(runs: &mut Vec<(i64, i64)>) {
    runs.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(runs.len());
    for &(first, last) in runs.iter() {
        assert!(first <= last, "a run holds a revision");
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    *runs = merged;
}

#[cfg(test)]
mod tests {
    use super::merge_runs;

    #[test]
    fn merged_runs_hold_exactly_the_revisions_of_the_spans() {
        // Goal: merging a key's unchanged spans loses and adds no revision, so the binary
        // search over runs answers as a scan of every span did. Method: random spans (M, S]
        // over a small range (so they overlap, nest and touch), merged; every revision of the
        // range is looked up both ways.
        let mut rng = crate::generate::SplitMix::new(11);
        for _ in 0..200 {
            let spans: Vec<(i64, i64)> = (0..rng.below(8))
                .map(|_| {
                    let modified = rng.below(30) as i64;
                    (modified, modified + 1 + rng.below(6) as i64)
                })
                .collect();
            let mut runs: Vec<(i64, i64)> = spans.iter().map(|&(m, s)| (m + 1, s)).collect();
            merge_runs(&mut runs);
            assert!(runs.windows(2).all(|pair| pair[0].1 + 1 < pair[1].0));
            for revision in 0..40 {
                let scanned = spans.iter().any(|&(m, s)| m < revision && revision <= s);
                let after = runs.partition_point(|&(first, _)| first <= revision);
                let searched = after > 0 && revision <= runs[after - 1].1;
                assert_eq!(scanned, searched, "{spans:?} at {revision}");
            }
        }
    }
}
