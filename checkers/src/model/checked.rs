//! Applying an operation and comparing its answer with a recorded result in one pass, without
//! building the `Outcome`: the linearizability search tries every candidate this way, and most
//! of its cost used to be building answers (a prefix range's hundreds of kvs) only to compare
//! them and throw them away.
//!
//! It is an optimisation of `matches(rec, &store.apply(op))` and must agree with it exactly
//! (a property test in `model::tests` holds it to that); it decides nothing `matching` does not.
//! It does not explain mismatches: explanations build the outcome the ordinary way.

use super::auth::NameId;
use super::matching::kv_matches;
use super::{matches, Cmp, ErrorCode, KeyId, Op, Rec, Store};

impl Store {
    /// Applies `op` and reports whether `rec` is what it answered, as
    /// `matches(rec, &self.apply(op))` does; with `rec` `None`, any answer will do. On a
    /// mismatch the store is left unchanged; on a match it holds the operation's effect (none
    /// for an error, as with `apply`).
    pub fn apply_matching(&mut self, op: &Op, rec: Option<&Rec>) -> bool {
        self.apply_matching_as(op, rec, None)
    }

    /// `apply_matching` of a read judged on its keys and values alone, whoever runs it: a read
    /// at an old revision checked ahead of its place (the search's pruning) is checked for
    /// permission at its place, where the auth state may differ.
    pub fn apply_matching_ignoring_auth(&mut self, op: &Op, rec: Option<&Rec>) -> bool {
        let auth = self.auth.take();
        let matched = self.apply_matching(op, rec);
        self.auth = auth;
        matched
    }

    /// `apply_matching` of an operation run as `user` (see `Store::apply_as`).
    pub fn apply_matching_as(&mut self, op: &Op, rec: Option<&Rec>, user: Option<NameId>) -> bool {
        let mark = self.mark();
        if self.auth.is_some() || matches!(op, Op::Auth(_)) {
            if let Some(matched) = self.auth_matching(op, rec, user) {
                return matched;
            }
        }
        // Results that can match an error answer are rare and cheap to build: the ordinary way.
        if let Some(rec @ (Rec::Error(_) | Rec::LeaseKeepAlive { .. })) = rec {
            let matched = matches(rec, &self.apply_as(op, user));
            if !matched {
                self.undo_to(mark);
            }
            return matched;
        }
        let mut wrote = false;
        let matched = match self.check(op, rec, self.revision + 1, &mut wrote) {
            // An error changes nothing, and matches no other kind of result.
            Err(_) => {
                self.undo_to(mark);
                return rec.is_none();
            }
            Ok(matched) => matched,
        };
        if !matched {
            self.undo_to(mark);
            return false;
        }
        if wrote {
            self.set_revision(self.revision + 1);
        }
        // Top-level answers carry the store's revision after the operation.
        if rec
            .and_then(top_revision)
            .is_some_and(|recorded| recorded != self.revision)
        {
            self.undo_to(mark);
            return false;
        }
        true
    }

    /// The auth side of `apply_matching_as`, apart so that histories without auth keep the
    /// search's hottest function as it was: the answer when auth decides it (a refusal, or an
    /// auth request), `None` when the operation is permitted and applies the ordinary way.
    #[cold]
    #[inline(never)]
    fn auth_matching(&mut self, op: &Op, rec: Option<&Rec>, user: Option<NameId>) -> Option<bool> {
        if let Err(code) = self.permit(op, user) {
            return Some(rec.is_none_or(|rec| *rec == Rec::Error(code)));
        }
        if !matches!(op, Op::Auth(_)) {
            return None;
        }
        let mark = self.mark();
        let outcome = self.apply_as(op, user);
        // Auth requests, rare, are matched the ordinary way.
        let matched = rec.is_none_or(|rec| matches(rec, &outcome));
        if !matched {
            self.undo_to(mark);
        }
        Some(matched)
    }

    /// Applies `op` as part of a write at `write_revision` (setting `wrote` when a key changed)
    /// and compares its answer with `rec`, revisions aside (the caller checks the top-level
    /// one). `rec` `None` compares nothing. `Ok(false)` may return early with the operation half
    /// applied: the caller rolls back. `Err` is the error the operation answered.
    fn check(
        &mut self,
        op: &Op,
        rec: Option<&Rec>,
        write_revision: i64,
        wrote: &mut bool,
    ) -> Result<bool, ErrorCode> {
        match op {
            Op::Range {
                lo,
                hi,
                revision,
                limit,
            } => self.check_range(*lo, *hi, *revision, *limit, rec),
            Op::Put {
                key,
                value,
                lease,
                prev_kv,
            } => {
                let prev = self.put(*key, *value, *lease, write_revision)?;
                *wrote = true;
                Ok(match rec {
                    None => true,
                    Some(Rec::Put {
                        prev_kv: Some(recorded),
                        ..
                    }) if *prev_kv => match (recorded, prev) {
                        (None, None) => true,
                        (Some(kv), Some(state)) => kv_matches(kv, *key, &state),
                        _ => false,
                    },
                    Some(Rec::Put { .. }) => true,
                    Some(_) => false,
                })
            }
            Op::Txn {
                compares,
                success,
                failure,
            } => self.check_txn(compares, success, failure, rec, write_revision, wrote),
            Op::Delete { lo, hi, prev_kv } => {
                Ok(self.check_delete(*lo, *hi, *prev_kv, rec, write_revision, wrote))
            }
            Op::LeaseGrant { id, ttl_seconds } => {
                self.grant_lease(*id, *ttl_seconds)?;
                Ok(rec.is_none_or(|rec| matches!(rec, Rec::LeaseGrant { .. })))
            }
            Op::LeaseRevoke { id } | Op::Expire { id } => {
                let deleted_count = self.revoke_lease(*id, write_revision)?;
                *wrote |= deleted_count > 0;
                let revoke = matches!(op, Op::LeaseRevoke { .. });
                Ok(rec.is_none_or(|rec| revoke && matches!(rec, Rec::LeaseRevoke { .. })))
            }
            Op::LeaseKeepAlive { id } => {
                self.leases.get(id).ok_or(ErrorCode::LeaseNotFound)?;
                Ok(rec.is_none_or(|rec| match rec {
                    Rec::LeaseKeepAlive { ttl_seconds } => ttl_seconds.is_none_or(|ttl| ttl > 0),
                    _ => false,
                }))
            }
            Op::Compact { revision } => {
                self.compact_to(*revision)?;
                Ok(rec.is_none_or(|rec| matches!(rec, Rec::Compact { .. })))
            }
            Op::Auth(_) => unreachable!("auth requests are checked by apply_matching_as"),
        }
    }

    /// A txn: the branch taken and each answer of it compared in turn.
    fn check_txn(
        &mut self,
        compares: &[Cmp],
        success: &[Op],
        failure: &[Op],
        rec: Option<&Rec>,
        write_revision: i64,
        wrote: &mut bool,
    ) -> Result<bool, ErrorCode> {
        let succeeded = compares
            .iter()
            .all(|compare| self.compare(compare, write_revision));
        let branch = if succeeded { success } else { failure };
        let responses = match rec {
            None => None,
            Some(Rec::Txn {
                succeeded: recorded,
                responses,
                ..
            }) => {
                if recorded.is_some_and(|flag| flag != succeeded)
                    || responses
                        .as_ref()
                        .is_some_and(|list| list.len() != branch.len())
                {
                    return Ok(false);
                }
                responses.as_deref()
            }
            Some(_) => return Ok(false),
        };
        for (index, inner) in branch.iter().enumerate() {
            let inner_rec = responses.map(|list| &list[index]);
            if !self.check(inner, inner_rec, write_revision, wrote)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A range compared kv by kv as the keys are visited, stopping at the first difference.
    fn check_range(
        &self,
        lo: KeyId,
        hi: KeyId,
        revision: i64,
        limit: i64,
        rec: Option<&Rec>,
    ) -> Result<bool, ErrorCode> {
        let (kvs, count) = match rec {
            // Nothing to compare: the range still answers its revision errors.
            None => {
                return self
                    .range_each(lo, hi, revision, |_, _| false)
                    .map(|()| true)
            }
            Some(Rec::Range { kvs, count, .. }) => (kvs.as_deref(), *count),
            // Another kind of result never matches, whatever the range answers.
            Some(_) => return Ok(false),
        };
        if kvs.is_none() && count.is_none() {
            return self
                .range_each(lo, hi, revision, |_, _| false)
                .map(|()| true);
        }
        let mut seen_count: i64 = 0;
        let mut listed_count: usize = 0;
        let mut agrees = true;
        self.range_each(lo, hi, revision, |key, state| {
            seen_count += 1;
            if let Some(list) = kvs {
                if limit <= 0 || (listed_count as i64) < limit {
                    agrees = list
                        .get(listed_count)
                        .is_some_and(|kv| kv_matches(kv, key, state));
                    listed_count += 1;
                }
            }
            // Without a recorded count, nothing past the limit can change the answer.
            agrees && (count.is_some() || limit <= 0 || (listed_count as i64) < limit)
        })?;
        Ok(agrees
            && count.is_none_or(|count| count == seen_count)
            && kvs.is_none_or(|list| list.len() == listed_count))
    }

    /// A delete compared (count and, when asked, each deleted kv) as it deletes.
    fn check_delete(
        &mut self,
        lo: KeyId,
        hi: KeyId,
        prev_kv: bool,
        rec: Option<&Rec>,
        write_revision: i64,
        wrote: &mut bool,
    ) -> bool {
        let (deleted, listed) = match rec {
            None => (None, None),
            Some(Rec::Delete {
                deleted, prev_kvs, ..
            }) => (*deleted, prev_kvs.as_deref().filter(|_| prev_kv)),
            Some(_) => return false,
        };
        let mut deleted_count: usize = 0;
        let mut agrees = true;
        self.delete_span(lo, hi, write_revision, |key, state| {
            if let Some(list) = listed {
                agrees = list
                    .get(deleted_count)
                    .is_some_and(|kv| kv_matches(kv, key, state));
            }
            deleted_count += 1;
            agrees
        });
        *wrote |= deleted_count > 0;
        agrees
            && deleted.is_none_or(|count| count == deleted_count as i64)
            && listed.is_none_or(|list| list.len() == deleted_count)
    }
}

/// The revision a top-level recorded result states (results without one: `None`).
fn top_revision(rec: &Rec) -> Option<i64> {
    match rec {
        Rec::Range { revision, .. }
        | Rec::Put { revision, .. }
        | Rec::Delete { revision, .. }
        | Rec::Txn { revision, .. }
        | Rec::LeaseRevoke { revision }
        | Rec::Compact { revision } => *revision,
        _ => None,
    }
}
