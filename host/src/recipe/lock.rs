//! etcd's lock (`v3lockpb.Lock`): [`Lock`] acquires, [`Unlock`] releases.

use engine::kv::{
    DeleteRangeRequest, PutRequest, Request, RequestError, RequestOp, Response, ResponseHeader,
    TxnRequest, WatchResponse,
};
use engine::types::{LeaseId, Revision};

use super::{
    create_revision_is, first_created, granted, lift, name_prefix, owner_key, session_grant,
    single, txn_of, txn_range, Next, Recipe, RecipeError, WaitDeletes, Waited,
};

/// A lock held: what `Lock` answers, and the fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The header of the read that found the lock free (or of the acquiring txn).
    pub header: ResponseHeader,
    /// The ownership key; the lock is held while it exists.
    pub key: Vec<u8>,
    /// The key's create revision: the fencing token (compare it in a txn to fence a write).
    pub revision: Revision,
    /// The key's lease.
    pub lease: LeaseId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Granting,
    Acquiring,
    Waiting(WaitDeletes),
    Finished,
}

/// Acquires the lock `name` with `lease` (0: a new lease of [`SESSION_TTL_SECONDS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    prefix: Vec<u8>,
    lease: LeaseId,
    phase: Phase,
}

impl Lock {
    /// A lock of `name` for `lease`; an empty name is refused.
    pub fn new(name: &[u8], lease: LeaseId) -> Result<Lock, RecipeError> {
        if name.is_empty() {
            return Err(RecipeError::EmptyName);
        }
        Ok(Lock {
            prefix: name_prefix(name),
            lease,
            phase: Phase::Granting,
        })
    }

    fn key(&self) -> Vec<u8> {
        owner_key(&self.prefix, self.lease)
    }

    /// Put the key if absent and read the owner, in one txn (etcd's uncontended path is one
    /// round trip). The same lease locking twice finds its key: the lock is re-entrant per lease.
    fn acquire(&mut self) -> Next<Held> {
        self.phase = Phase::Acquiring;
        let key = self.key();
        let put = PutRequest {
            key: key.clone(),
            lease: self.lease,
            ..PutRequest::default()
        };
        Next::Send(Request::Txn(TxnRequest {
            compare: vec![create_revision_is(&key, Revision(0))],
            success: vec![
                RequestOp::Put(put),
                RequestOp::Range(first_created(&self.prefix)),
            ],
            failure: vec![
                RequestOp::Range(single(&key)),
                RequestOp::Range(first_created(&self.prefix)),
            ],
        }))
    }

    fn on_acquired(
        &mut self,
        answer: Result<Response, RequestError>,
    ) -> Result<Next<Held>, RecipeError> {
        let txn = txn_of(answer)?;
        let revision = match txn.succeeded {
            true => txn.header.revision,
            false => txn_range(&txn, 0)?
                .kvs
                .first()
                .map(|kv| kv.create_revision)
                .ok_or_else(|| RecipeError::Unexpected("the existing key is gone".into()))?,
        };
        let owner = txn_range(&txn, 1)?.kvs.first().map(|kv| kv.create_revision);
        if owner.is_none() || owner == Some(revision) {
            self.phase = Phase::Finished;
            return Ok(Next::Done(Ok(self.held(txn.header, revision))));
        }
        let mut wait = WaitDeletes::new(self.prefix.clone(), self.key(), revision);
        let read = wait.read();
        self.phase = Phase::Waiting(wait);
        Ok(Next::Send(read))
    }

    fn held(&self, header: ResponseHeader, revision: Revision) -> Held {
        Held {
            header,
            key: self.key(),
            revision,
            lease: self.lease,
        }
    }

    fn on_waited(&mut self, waited: Waited) -> Next<Held> {
        match waited {
            Waited::Next(next) => lift(next),
            Waited::Owned(header) => {
                let Phase::Waiting(wait) = &self.phase else {
                    unreachable!("waiting answers come while waiting")
                };
                let revision = wait.revision;
                self.phase = Phase::Finished;
                Next::Done(Ok(self.held(header, revision)))
            }
            Waited::KeyLost => {
                self.phase = Phase::Finished;
                Next::Done(Err(RecipeError::SessionExpired))
            }
        }
    }
}

impl Recipe for Lock {
    type Output = Held;

    fn start(&mut self) -> Next<Held> {
        if self.lease == LeaseId(0) {
            self.phase = Phase::Granting;
            return session_grant();
        }
        self.acquire()
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Held> {
        let result = match &mut self.phase {
            Phase::Granting => match granted(answer) {
                Ok(id) => {
                    self.lease = id;
                    return self.acquire();
                }
                Err(error) => Err(error),
            },
            Phase::Acquiring => self.on_acquired(answer),
            Phase::Waiting(wait) => match wait.on_read(answer) {
                Ok(waited) => return self.on_waited(waited),
                Err(error) => Err(error),
            },
            Phase::Finished => Err(RecipeError::Unexpected("an answer after the end".into())),
        };
        result.unwrap_or_else(|error| Next::Done(Err(error)))
    }

    fn on_watch(&mut self, response: &WatchResponse) -> Next<Held> {
        match &mut self.phase {
            Phase::Waiting(wait) => {
                let waited = wait.on_watch(response);
                self.on_waited(waited)
            }
            _ => Next::Wait,
        }
    }

    fn abandon(&mut self) -> Option<Request> {
        match self.phase {
            Phase::Waiting(_) => {
                self.phase = Phase::Finished;
                Some(Request::DeleteRange(DeleteRangeRequest {
                    key: self.key(),
                    ..DeleteRangeRequest::default()
                }))
            }
            _ => None,
        }
    }
}

/// Releases a lock: deletes its ownership key (`v3lockpb.Unlock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlock {
    key: Vec<u8>,
}

impl Unlock {
    /// Releases the lock owned through `key`.
    pub fn new(key: Vec<u8>) -> Unlock {
        Unlock { key }
    }
}

impl Recipe for Unlock {
    type Output = ResponseHeader;

    fn start(&mut self) -> Next<ResponseHeader> {
        Next::Send(Request::DeleteRange(DeleteRangeRequest {
            key: self.key.clone(),
            ..DeleteRangeRequest::default()
        }))
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<ResponseHeader> {
        Next::Done(match answer {
            Ok(Response::DeleteRange(delete)) => Ok(delete.header),
            Ok(other) => Err(RecipeError::Unexpected(format!("{other:?}"))),
            Err(error) => Err(RecipeError::Request(error)),
        })
    }

    fn on_watch(&mut self, _response: &WatchResponse) -> Next<ResponseHeader> {
        Next::Wait
    }
}
