//! A direct index from a revision to the first entry of a revision-sorted list at or past it,
//! for lists the search looks up at every step (a binary search over tens of thousands of
//! entries was a tenth of a check on watch-heavy simulator histories).

/// Where each revision's entries start in a list sorted by revision.
pub(crate) struct RevisionStarts {
    /// The list's lowest revision.
    base: i64,
    /// `starts[k]`: the first entry whose revision is at least `base + k`, for every revision up
    /// to one past the highest. Empty when the list is empty or spans far more revisions than
    /// it has entries (the caller then searches).
    starts: Vec<u32>,
    /// The list's length.
    len: usize,
}

/// Revisions spanned per entry, beyond a fixed allowance, past which no index is kept.
const SPAN_PER_ENTRY_MAX: usize = 4;
const SPAN_ALLOWANCE: usize = 1024;

impl RevisionStarts {
    /// Indexes `revisions`, which must be sorted (ascending; repeats allowed).
    pub(crate) fn build(revisions: &[i64]) -> RevisionStarts {
        let len = revisions.len();
        let (Some(&base), Some(&highest)) = (revisions.first(), revisions.last()) else {
            return RevisionStarts {
                base: 0,
                starts: Vec::new(),
                len,
            };
        };
        assert!(
            revisions.windows(2).all(|pair| pair[0] <= pair[1]),
            "entries sorted by revision"
        );
        let span = usize::try_from(highest - base)
            .ok()
            .filter(|&span| span <= len.saturating_mul(SPAN_PER_ENTRY_MAX) + SPAN_ALLOWANCE);
        let Some(span) = span.filter(|_| u32::try_from(len).is_ok()) else {
            return RevisionStarts {
                base,
                starts: Vec::new(),
                len,
            };
        };
        let mut starts = Vec::with_capacity(span + 2);
        let mut index = 0;
        for offset in 0..=span as i64 + 1 {
            while index < len && revisions[index] < base + offset {
                index += 1;
            }
            starts.push(index as u32);
        }
        RevisionStarts { base, starts, len }
    }

    /// The first entry whose revision is at least `revision`; `search` finds it when no index
    /// is kept.
    pub(crate) fn first_at(&self, revision: i64, search: impl FnOnce() -> usize) -> usize {
        if self.starts.is_empty() {
            return if self.len == 0 { 0 } else { search() };
        }
        match usize::try_from(revision - self.base) {
            Err(_) => 0,
            Ok(offset) => self
                .starts
                .get(offset)
                .map_or(self.len, |&start| start as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_a_binary_search(
            mut revisions in proptest::collection::vec(-5i64..60, 0..40),
            probe in -10i64..70,
            sparse in any::<bool>(),
        ) {
            if sparse {
                // Spread the revisions past the span allowance, so no index is kept.
                for revision in &mut revisions {
                    *revision *= 1000;
                }
            }
            revisions.sort_unstable();
            let starts = RevisionStarts::build(&revisions);
            let probe = if sparse { probe * 1000 } else { probe };
            let expected = revisions.partition_point(|&at| at < probe);
            prop_assert_eq!(starts.first_at(probe, || expected), expected);
        }
    }

    #[test]
    fn keeps_no_index_for_a_far_wider_span() {
        let starts = RevisionStarts::build(&[1, 2, 1_000_000]);
        assert!(starts.starts.is_empty());
        assert_eq!(starts.first_at(3, || 2), 2);
        let dense = RevisionStarts::build(&[1, 2, 2, 5]);
        assert_eq!(dense.starts, [0, 1, 3, 3, 3, 4]);
        assert_eq!((dense.first_at(0, || 9), dense.first_at(6, || 9)), (0, 4));
    }
}
