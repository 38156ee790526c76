//! What differs between a lock and an election in the driver: the recipe that acquires (`Lock`
//! or `Campaign`), the fenced write made while holding (a fenced put of `/fenced/<lock>`, or a
//! `Proclaim`), and the recipe that releases (`Unlock` or `Resign`). Everything else of a cycle
//! (the lease, its keep-alives, the hold's slices and pauses, the watch, the notes) is shared, so
//! the mutual-exclusion checker judges a leadership exactly as a hold: the leader key is the
//! owner key and its create revision the fencing token.

use engine::kv::{PutRequest, Request, RequestError, RequestOp, Response, TxnRequest};
use engine::kv::{ResponseHeader, WatchResponse};
use engine::types::LeaseId;
use host::recipe::election::{Campaign, Elected, LeaderKey, Proclaim, Resign};
use host::recipe::lock::{Held, Lock, Unlock};
use host::recipe::{create_revision_is, Next, Recipe};

/// What a cycle contends for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A lock (`/lock/<n>`).
    Lock,
    /// An election (`/election/<n>`).
    Election,
}

/// The name of lock `index`.
pub fn lock_name(index: u32) -> Vec<u8> {
    format!("/lock/{index}").into_bytes()
}

/// The name of election `index`.
pub fn election_name(index: u32) -> Vec<u8> {
    format!("/election/{index}").into_bytes()
}

/// The key a holder of lock `name` writes under the fence.
pub fn fenced_key(name: &[u8]) -> Vec<u8> {
    let mut key = b"/fenced".to_vec();
    key.extend_from_slice(name);
    key
}

/// The contended name `index` draws: the locks first, then the elections, so that without
/// elections the draw picks the same lock as it always did.
pub(super) fn pick(index: u32, lock_count: u32) -> (Kind, Vec<u8>) {
    match index.checked_sub(lock_count) {
        None => (Kind::Lock, lock_name(index)),
        Some(election) => (Kind::Election, election_name(election)),
    }
}

/// The recipe acquiring a cycle's name, its success told as a lock's `Held` either way.
#[derive(Debug)]
pub(super) enum Acquiring {
    Lock(Lock),
    Campaign(Campaign),
}

impl Acquiring {
    /// The recipe of `kind` for `name` with `lease`; a campaign proclaims `value` first.
    pub(super) fn new(kind: Kind, name: &[u8], lease: LeaseId, value: Vec<u8>) -> Acquiring {
        // Names come from `pick`, never empty.
        let named = "lock and election names are never empty";
        match kind {
            Kind::Lock => Acquiring::Lock(Lock::new(name, lease).expect(named)),
            Kind::Election => Acquiring::Campaign(Campaign::new(name, lease, value).expect(named)),
        }
    }

    pub(super) fn start(&mut self) -> Next<Held> {
        match self {
            Acquiring::Lock(lock) => lock.start(),
            Acquiring::Campaign(campaign) => as_held(campaign.start()),
        }
    }

    pub(super) fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Held> {
        match self {
            Acquiring::Lock(lock) => lock.on_answer(answer),
            Acquiring::Campaign(campaign) => as_held(campaign.on_answer(answer)),
        }
    }

    pub(super) fn on_watch(&mut self, response: &WatchResponse) -> Next<Held> {
        match self {
            Acquiring::Lock(lock) => lock.on_watch(response),
            Acquiring::Campaign(campaign) => as_held(campaign.on_watch(response)),
        }
    }

    pub(super) fn abandon(&mut self) -> Option<Request> {
        match self {
            Acquiring::Lock(lock) => lock.abandon(),
            Acquiring::Campaign(campaign) => campaign.abandon(),
        }
    }
}

/// A leadership is a hold: the leader key owns the election as the owner key owns a lock.
fn as_held(next: Next<Elected>) -> Next<Held> {
    let held = |elected: Elected| Held {
        header: elected.header,
        key: elected.leader.key,
        revision: elected.leader.revision,
        lease: elected.leader.lease,
    };
    match next {
        Next::Send(request) => Next::Send(request),
        Next::Watch(create) => Next::Watch(create),
        Next::Wait => Next::Wait,
        Next::Emit(elected) => Next::Emit(held(elected)),
        Next::Done(result) => Next::Done(result.map(held)),
    }
}

fn leader_key(name: &[u8], held: &Held) -> LeaderKey {
    LeaderKey {
        name: name.to_vec(),
        key: held.key.clone(),
        revision: held.revision,
        lease: held.lease,
    }
}

/// The recipe releasing a hold.
#[derive(Debug)]
pub(super) enum Releasing {
    Unlock(Unlock),
    Resign(Resign),
}

impl Releasing {
    /// The release of `held` on `name`, and its one request.
    pub(super) fn new(kind: Kind, name: &[u8], held: &Held) -> (Releasing, Request) {
        let (releasing, next) = match kind {
            Kind::Lock => {
                let mut unlock = Unlock::new(held.key.clone());
                let next = unlock.start();
                (Releasing::Unlock(unlock), next)
            }
            Kind::Election => {
                let mut resign =
                    Resign::new(Some(leader_key(name, held))).expect("a leader key is given");
                let next = resign.start();
                (Releasing::Resign(resign), next)
            }
        };
        let Next::Send(request) = next else {
            unreachable!("an unlock and a resign start with their request")
        };
        (releasing, request)
    }

    /// The answer to the release; the checker reads its outcome from the history, so the
    /// recipe's verdict changes nothing here.
    pub(super) fn on_answer(&mut self, answer: Result<Response, RequestError>) {
        let _done: Next<ResponseHeader> = match self {
            Releasing::Unlock(unlock) => unlock.on_answer(answer),
            Releasing::Resign(resign) => resign.on_answer(answer),
        };
    }
}

/// The fenced write of `held` on `name`: for a lock, a txn putting `/fenced/<name>` if the
/// owner key still has the token; for an election, `Proclaim`'s txn, which puts `value` on the
/// leader key under the same compare.
pub(super) fn fenced_write(kind: Kind, name: &[u8], held: &Held, value: Vec<u8>) -> Request {
    match kind {
        Kind::Lock => Request::Txn(TxnRequest {
            compare: vec![create_revision_is(&held.key, held.revision)],
            success: vec![RequestOp::Put(PutRequest {
                key: fenced_key(name),
                value,
                ..PutRequest::default()
            })],
            failure: Vec::new(),
        }),
        Kind::Election => {
            let mut proclaim =
                Proclaim::new(Some(leader_key(name, held)), value).expect("a leader key is given");
            let Next::Send(request) = proclaim.start() else {
                unreachable!("a proclaim starts with its txn")
            };
            request
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a draw among locks and elections names the locks first, so without elections every
    /// draw names the lock it always did. Method: the names of a few indices.
    #[test]
    fn locks_come_first_then_elections() {
        assert_eq!(pick(0, 1), (Kind::Lock, b"/lock/0".to_vec()));
        assert_eq!(pick(1, 2), (Kind::Lock, b"/lock/1".to_vec()));
        assert_eq!(pick(1, 1), (Kind::Election, b"/election/0".to_vec()));
        assert_eq!(pick(3, 1), (Kind::Election, b"/election/2".to_vec()));
        assert_eq!(pick(0, 0), (Kind::Election, b"/election/0".to_vec()));
    }
}
