//! Reads of the MVCC store: etcd's Range (revision checks, limit, count, revision filters,
//! sort, keys_only, count_only) and the evaluation of txn compares.
//!
//! This module only reads; it never changes the store. Like etcd, `count` is the number of
//! keys in the range at the read revision before the revision filters and the limit apply, and
//! the limit is applied after filtering and sorting.

use core::cmp::Ordering;

use super::index::{key_value, KeyRange, PutRecord};
use super::Store;
use crate::kv::{
    Compare, CompareResult, CompareTarget, KeyValue, RangeRequest, RangeResponse, RequestError,
    SortOrder, SortTarget,
};
use crate::types::{LeaseId, Revision};

/// Rejects an empty key, a revision above `current` and a revision below `compacted`.
pub(super) fn check_range(
    request: &RangeRequest,
    current: i64,
    compacted: i64,
) -> Result<(), RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    let requested = request.revision;
    if requested.0 > current {
        return Err(RequestError::FutureRevision {
            requested,
            current: Revision(current),
        });
    }
    if requested.0 > 0 && requested.0 < compacted {
        return Err(RequestError::Compacted {
            requested,
            compacted: Revision(compacted),
        });
    }
    Ok(())
}

/// The effective sort: a non-key target with no order sorts ascending (etcd's rule); `None`
/// when the natural key order already is the answer.
fn effective_sort(request: &RangeRequest) -> Option<(SortTarget, SortOrder)> {
    let order = match (request.sort_target, request.sort_order) {
        (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => return None,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, order) => order,
    };
    Some((request.sort_target, order))
}

fn has_revision_filters(request: &RangeRequest) -> bool {
    request.min_mod_revision.0 != 0
        || request.max_mod_revision.0 != 0
        || request.min_create_revision.0 != 0
        || request.max_create_revision.0 != 0
}

/// Whether `kv` passes the request's min/max mod and create revision filters.
fn passes_filters(request: &RangeRequest, kv: &KeyValue) -> bool {
    let mod_ok = (request.max_mod_revision.0 == 0 || kv.mod_revision <= request.max_mod_revision)
        && (request.min_mod_revision.0 == 0 || kv.mod_revision >= request.min_mod_revision);
    let create_ok = (request.max_create_revision.0 == 0
        || kv.create_revision <= request.max_create_revision
            && !(crate::bug!(MaxCreateRevisionExclusive)
                && kv.create_revision == request.max_create_revision))
        && (request.min_create_revision.0 == 0
            || kv.create_revision >= request.min_create_revision);
    mod_ok && create_ok
}

fn compare_by(target: SortTarget, left: &KeyValue, right: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => left.key.cmp(&right.key),
        SortTarget::Version => left.version.cmp(&right.version),
        SortTarget::Create => left.create_revision.cmp(&right.create_revision),
        SortTarget::Mod => left.mod_revision.cmp(&right.mod_revision),
        SortTarget::Value => left.value.cmp(&right.value),
    }
}

impl Store {
    /// Serves a checked range; `latest` is the main revision a `revision == 0` read sees (the
    /// current revision, or the running txn's own revision once it has written).
    pub(super) fn range_at(&self, request: &RangeRequest, latest: i64) -> RangeResponse {
        let at = if request.revision.0 > 0 {
            request.revision.0
        } else {
            latest
        };
        let sort = effective_sort(request);
        let filtered = has_revision_filters(request);
        // Without sort or filters the first limit+1 keys decide both `kvs` and `more`.
        let collect_max = match request.limit {
            limit if limit > 0 && sort.is_none() && !filtered => limit as usize + 1,
            // Zoo: the limit goes into the key-order scan, so only the first `limit` keys by
            // name are sorted.
            limit if limit > 0 && !filtered && crate::bug!(LimitBeforeSort) => limit as usize,
            _ => usize::MAX,
        };
        let with_value = !request.keys_only || request.sort_target == SortTarget::Value;
        let mut response = RangeResponse::default();
        response.header.revision = Revision(latest);
        let Some(bounds) = KeyRange::new(&request.key, &request.range_end).bounds() else {
            return response;
        };
        for (key, history) in self.keys.range::<[u8], _>(bounds) {
            let Some((revision, put)) = history.live_at(at) else {
                continue;
            };
            response.count += 1;
            if !request.count_only && response.kvs.len() < collect_max {
                response.kvs.push(key_value(key, revision, put, with_value));
            }
        }
        if filtered {
            response.kvs.retain(|kv| passes_filters(request, kv));
        }
        if let Some((target, order)) = sort {
            // Stable sorts from key order: ties stay in ascending key order either way.
            match order {
                SortOrder::Descend => response.kvs.sort_by(|a, b| compare_by(target, b, a)),
                _ => response.kvs.sort_by(|a, b| compare_by(target, a, b)),
            }
        }
        if request.limit > 0 && response.kvs.len() > request.limit as usize {
            response.kvs.truncate(request.limit as usize);
            response.more = true;
        }
        if crate::bug!(CountCutByLimit) && request.limit > 0 {
            // Zoo: `count` should be every key in range; here it stops at the limit.
            response.count = response.count.min(request.limit);
        }
        if request.keys_only {
            response.kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        response
    }

    /// Whether `compare` holds at main revision `at`. Every key in the compare's range must
    /// satisfy it; an empty range compares as a key with every field zero, except that a
    /// value compare against no key is false (etcd: a missing value cannot be represented).
    pub(super) fn compare_holds(&self, compare: &Compare, at: i64) -> bool {
        let mut seen_any = false;
        if let Some(bounds) = KeyRange::new(&compare.key, &compare.range_end).bounds() {
            for (_, history) in self.keys.range::<[u8], _>(bounds) {
                if let Some((revision, put)) = history.live_at(at) {
                    seen_any = true;
                    if !compare_record(compare, Some((revision.main, put))) {
                        return false;
                    }
                }
            }
        }
        if seen_any {
            return true;
        }
        if matches!(compare.target, CompareTarget::Value(_)) {
            return false;
        }
        compare_record(compare, None)
    }
}

/// Compares one key's state (`None` = missing, all fields zero) against the compare's operand.
fn compare_record(compare: &Compare, record: Option<(i64, &PutRecord)>) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(operand) => record.map_or(0, |(_, put)| put.version).cmp(operand),
        CompareTarget::Create(operand) => record
            .map_or(0, |(_, put)| put.create_revision)
            .cmp(&operand.0),
        CompareTarget::Mod(operand) if crate::bug!(TxnCompareWrongField) => {
            // Zoo: a `mod` compare reads the create revision.
            record
                .map_or(0, |(_, put)| put.create_revision)
                .cmp(&operand.0)
        }
        CompareTarget::Mod(operand) => record.map_or(0, |(main, _)| main).cmp(&operand.0),
        CompareTarget::Lease(operand) => {
            record.map_or(LeaseId(0), |(_, put)| put.lease).cmp(operand)
        }
        CompareTarget::Value(operand) => {
            let value: &[u8] = record.map_or(&[], |(_, put)| put.value.as_slice());
            value.cmp(operand.as_slice())
        }
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Less => ordering == Ordering::Less,
        CompareResult::Greater => ordering == Ordering::Greater,
    }
}
