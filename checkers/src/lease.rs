//! The lease promise: a lease granted or kept alive with a TTL of `t` seconds, by a request
//! issued at time `c`, must not be gone before `c + t`. etcd's leader starts (or restarts) the
//! lease's clock when it applies the grant or answers the keep-alive, which is after the call,
//! and a new leader extends every lease by a grace period; so on clocks that run true, no
//! correct member expires a lease before every promise made for it ran out. A deposed leader
//! that keeps answering keep-alives (etcd #15247), or a follower that expires leases on its
//! own clock (etcd #12528), breaks exactly this, while linearizability alone cannot see it: an
//! expiry may be placed anywhere in a linearization.
//!
//! The evidence that a lease is gone is a definite `lease_not_found` for a request naming it (a
//! keep-alive, a put with it, a revoke). A lease that a client revoked is skipped: its revoke,
//! not an expiry, may have removed it. The rule holds only where members' clocks run at true
//! speed, so the caller enables it (with a tolerance for its own clocks' error) only then;
//! this module knows nothing of clocks or members.

use std::collections::BTreeMap;

use crate::history::{Operation, Request, Response};
use crate::Verdict;

/// The checker's name in reports.
pub const CHECKER: &str = "lease_promise";

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Checks the lease promise over `ops`, allowing expiries `tolerance_ns` early.
pub fn check_lease_promises(ops: &[Operation], tolerance_ns: i64) -> Verdict {
    // Per lease: the latest promise (its end and the op making it) and the earliest evidence
    // that the lease was gone (its return time and op), and whether a client revoked it.
    let mut promises: BTreeMap<i64, Vec<(i64, u64)>> = BTreeMap::new();
    let mut gone: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
    let mut revoked_at: BTreeMap<i64, i64> = BTreeMap::new();
    for op in ops {
        let lease = match (&op.request, &op.result) {
            (Request::LeaseGrant { .. }, Some(Response::LeaseGrant { id, ttl_seconds })) => {
                if let (Some(id), Some(ttl)) = (id, ttl_seconds) {
                    promise(&mut promises, *id, op, *ttl);
                }
                continue;
            }
            (
                Request::LeaseKeepAlive { id },
                Some(Response::LeaseKeepAlive {
                    ttl_seconds: Some(ttl),
                }),
            ) => {
                promise(&mut promises, *id, op, *ttl);
                continue;
            }
            (Request::LeaseRevoke { id }, _) => {
                let earliest = revoked_at.entry(*id).or_insert(op.call);
                *earliest = (*earliest).min(op.call);
                *id
            }
            (Request::LeaseKeepAlive { id }, _) => *id,
            (Request::Put(put), _) if put.lease != 0 => put.lease,
            _ => continue,
        };
        let not_found =
            matches!(&op.result, Some(Response::Error { code, .. }) if code == "lease_not_found");
        if let (true, Some(ret)) = (not_found, op.ret) {
            let earliest = gone.entry(lease).or_insert((ret, op.id));
            if ret < earliest.0 {
                *earliest = (ret, op.id);
            }
        }
    }
    for (lease, (gone_at, gone_op)) in gone {
        if revoked_at.get(&lease).is_some_and(|call| *call < gone_at) {
            continue;
        }
        let Some(broken) = promises.get(&lease).and_then(|list| {
            list.iter()
                .filter(|(end, _)| gone_at < end - tolerance_ns)
                .max_by_key(|(end, _)| *end)
        }) else {
            continue;
        };
        let (end, promise_op) = *broken;
        return Verdict::Violation {
            checker: CHECKER.to_string(),
            window: vec![promise_op, gone_op],
            explanation: format!(
                "lease {lease} was promised alive until {end} ns by operation {promise_op}, \
                 but operation {gone_op} found it gone by {gone_at} ns ({} ms early)",
                (end - gone_at) / 1_000_000
            ),
        };
    }
    Verdict::Ok
}

/// Records that `op` (answered with `ttl_seconds`) promised `lease` alive until its call plus
/// the TTL. A non-positive TTL promises nothing.
fn promise(promises: &mut BTreeMap<i64, Vec<(i64, u64)>>, lease: i64, op: &Operation, ttl: i64) {
    if ttl <= 0 || lease == 0 {
        return;
    }
    let end = op.call.saturating_add(ttl.saturating_mul(NANOS_PER_SECOND));
    promises.entry(lease).or_default().push((end, op.id));
}

#[cfg(test)]
mod tests {
    use super::check_lease_promises;
    use crate::history::{Operation, Request, Response};
    use crate::Verdict;

    fn op(id: u64, call: i64, ret: i64, request: Request, result: Response) -> Operation {
        Operation {
            id,
            client: 1,
            call,
            ret: Some(ret),
            request,
            result: Some(result),
            user: None,
            lock: None,
        }
    }

    fn keepalive_ok(id: u64, call: i64) -> Operation {
        let response = Response::LeaseKeepAlive {
            ttl_seconds: Some(5),
        };
        op(
            id,
            call,
            call + 1,
            Request::LeaseKeepAlive { id: 7 },
            response,
        )
    }

    fn keepalive_gone(id: u64, call: i64) -> Operation {
        let response = Response::Error {
            code: "lease_not_found".into(),
            message: None,
        };
        op(
            id,
            call,
            call + 1,
            Request::LeaseKeepAlive { id: 7 },
            response,
        )
    }

    /// Goal: a lease found gone while a keep-alive's promise still ran is a violation; found
    /// gone after every promise ran out, or after a client revoked it, is not. Method: three
    /// small histories around one lease with a 5 s TTL, times in nanoseconds.
    #[test]
    fn an_expiry_inside_a_promise_is_caught_and_others_pass() {
        let second = 1_000_000_000;
        let early = [keepalive_ok(1, 10 * second), keepalive_gone(2, 12 * second)];
        let verdict = check_lease_promises(&early, 0);
        assert!(
            matches!(&verdict, Verdict::Violation { window, .. } if window == &vec![1, 2]),
            "{verdict:?}"
        );
        let late = [keepalive_ok(1, 10 * second), keepalive_gone(2, 16 * second)];
        assert_eq!(check_lease_promises(&late, 0), Verdict::Ok);
        assert_eq!(check_lease_promises(&early, 3 * second), Verdict::Ok);
        let revoke = op(
            3,
            11 * second,
            11 * second + 5,
            Request::LeaseRevoke { id: 7 },
            Response::LeaseRevoke { revision: Some(9) },
        );
        let revoked = [early[0].clone(), revoke, early[1].clone()];
        assert_eq!(check_lease_promises(&revoked, 0), Verdict::Ok);
    }
}
