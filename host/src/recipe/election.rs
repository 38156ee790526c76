//! etcd's election (`v3electionpb.Election`): [`Campaign`], [`Proclaim`], [`Leader`],
//! [`Observe`] and [`Resign`].

use std::collections::VecDeque;

use engine::kv::{
    DeleteRangeRequest, EventType, KeyValue, PutRequest, Request, RequestError, RequestOp,
    Response, ResponseHeader, TxnRequest, WatchCreateRequest, WatchResponse,
};
use engine::types::{LeaseId, Revision};

use super::{
    create_revision_is, first_created, first_kv, granted, lift, name_prefix, owner_key, prefix_end,
    range_of, session_grant, single, txn_of, txn_range, Next, Recipe, RecipeError, WaitDeletes,
    Waited,
};

/// What identifies a leadership (etcd's `LeaderKey`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderKey {
    /// The election's name.
    pub name: Vec<u8>,
    /// The campaign key.
    pub key: Vec<u8>,
    /// The campaign key's create revision (the fencing token).
    pub revision: Revision,
    /// The campaign key's lease.
    pub lease: LeaseId,
}

/// A won campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elected {
    /// The header of the campaign's txn (as etcd answers it).
    pub header: ResponseHeader,
    /// The leadership.
    pub leader: LeaderKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Granting,
    Campaigning,
    Proclaiming,
    Waiting(WaitDeletes),
    Finished,
}

/// Campaigns in the election `name` with `lease` (0: a new lease of [`SESSION_TTL_SECONDS`])
/// and `value`; done once it leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    name: Vec<u8>,
    prefix: Vec<u8>,
    lease: LeaseId,
    value: Vec<u8>,
    revision: Revision,
    header: ResponseHeader,
    phase: Phase,
}

impl Campaign {
    /// A campaign; an empty name is refused.
    pub fn new(name: &[u8], lease: LeaseId, value: Vec<u8>) -> Result<Campaign, RecipeError> {
        if name.is_empty() {
            return Err(RecipeError::EmptyName);
        }
        Ok(Campaign {
            name: name.to_vec(),
            prefix: name_prefix(name),
            lease,
            value,
            revision: Revision(0),
            header: ResponseHeader::default(),
            phase: Phase::Granting,
        })
    }

    fn key(&self) -> Vec<u8> {
        owner_key(&self.prefix, self.lease)
    }

    fn put(&self) -> PutRequest {
        PutRequest {
            key: self.key(),
            value: self.value.clone(),
            lease: self.lease,
            ..PutRequest::default()
        }
    }

    fn campaign(&mut self) -> Next<Elected> {
        self.phase = Phase::Campaigning;
        let key = self.key();
        Next::Send(Request::Txn(TxnRequest {
            compare: vec![create_revision_is(&key, Revision(0))],
            success: vec![RequestOp::Put(self.put())],
            failure: vec![RequestOp::Range(single(&key))],
        }))
    }

    fn wait(&mut self) -> Next<Elected> {
        let mut wait = WaitDeletes::new(self.prefix.clone(), self.key(), self.revision);
        let read = wait.read();
        self.phase = Phase::Waiting(wait);
        Next::Send(read)
    }

    fn on_campaigned(
        &mut self,
        answer: Result<Response, RequestError>,
    ) -> Result<Next<Elected>, RecipeError> {
        let txn = txn_of(answer)?;
        self.header = txn.header.clone();
        if txn.succeeded {
            self.revision = txn.header.revision;
            return Ok(self.wait());
        }
        // This lease campaigned before: keep its key, and its place, with the new value.
        let existing = txn_range(&txn, 0)?
            .kvs
            .first()
            .ok_or_else(|| RecipeError::Unexpected("the existing key is gone".into()))?;
        self.revision = existing.create_revision;
        if existing.value == self.value {
            return Ok(self.wait());
        }
        self.phase = Phase::Proclaiming;
        Ok(Next::Send(proclaim(&self.key(), self.revision, self.put())))
    }

    fn on_waited(&mut self, waited: Waited) -> Next<Elected> {
        match waited {
            Waited::Next(next) => lift(next),
            Waited::Owned(_) => {
                self.phase = Phase::Finished;
                Next::Done(Ok(Elected {
                    header: self.header.clone(),
                    leader: LeaderKey {
                        name: self.name.clone(),
                        key: self.key(),
                        revision: self.revision,
                        lease: self.lease,
                    },
                }))
            }
            Waited::KeyLost => {
                self.phase = Phase::Finished;
                Next::Done(Err(RecipeError::NotLeader))
            }
        }
    }
}

/// The txn that replaces the value of `key` if it still has create revision `revision`.
fn proclaim(key: &[u8], revision: Revision, put: PutRequest) -> Request {
    Request::Txn(TxnRequest {
        compare: vec![create_revision_is(key, revision)],
        success: vec![RequestOp::Put(put)],
        failure: Vec::new(),
    })
}

impl Recipe for Campaign {
    type Output = Elected;

    fn start(&mut self) -> Next<Elected> {
        if self.lease == LeaseId(0) {
            self.phase = Phase::Granting;
            return session_grant();
        }
        self.campaign()
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Elected> {
        let result = match &mut self.phase {
            Phase::Granting => match granted(answer) {
                Ok(id) => {
                    self.lease = id;
                    return self.campaign();
                }
                Err(error) => Err(error),
            },
            Phase::Campaigning => self.on_campaigned(answer),
            Phase::Proclaiming => match txn_of(answer) {
                Ok(txn) if txn.succeeded => Ok(self.wait()),
                Ok(_) => Err(RecipeError::NotLeader),
                Err(error) => Err(error),
            },
            Phase::Waiting(wait) => match wait.on_read(answer) {
                Ok(waited) => return self.on_waited(waited),
                Err(error) => Err(error),
            },
            Phase::Finished => Err(RecipeError::Unexpected("an answer after the end".into())),
        };
        result.unwrap_or_else(|error| Next::Done(Err(error)))
    }

    fn on_watch(&mut self, response: &WatchResponse) -> Next<Elected> {
        match &mut self.phase {
            Phase::Waiting(wait) => {
                let waited = wait.on_watch(response);
                self.on_waited(waited)
            }
            _ => Next::Wait,
        }
    }

    /// A campaign given up while waiting resigns (etcd's campaign does on cancellation).
    fn abandon(&mut self) -> Option<Request> {
        match self.phase {
            Phase::Waiting(_) => {
                self.phase = Phase::Finished;
                Some(resign(&self.key(), self.revision))
            }
            _ => None,
        }
    }
}

/// The txn that deletes `key` if it still has create revision `revision`.
fn resign(key: &[u8], revision: Revision) -> Request {
    Request::Txn(TxnRequest {
        compare: vec![create_revision_is(key, revision)],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        })],
        failure: Vec::new(),
    })
}

/// The header of a txn answer, or the error.
fn txn_header(
    answer: Result<Response, RequestError>,
    not_done: Option<RecipeError>,
) -> Result<ResponseHeader, RecipeError> {
    let txn = txn_of(answer)?;
    match (txn.succeeded, not_done) {
        (false, Some(error)) => Err(error),
        _ => Ok(txn.header),
    }
}

/// Replaces the leader's value if `leader` still leads (`Election.Proclaim`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proclaim {
    leader: LeaderKey,
    value: Vec<u8>,
}

impl Proclaim {
    /// Proclaims `value` for `leader` (etcd refuses a request without one).
    pub fn new(leader: Option<LeaderKey>, value: Vec<u8>) -> Result<Proclaim, RecipeError> {
        let leader = leader.ok_or(RecipeError::MissingLeaderKey)?;
        Ok(Proclaim { leader, value })
    }
}

impl Recipe for Proclaim {
    type Output = ResponseHeader;

    fn start(&mut self) -> Next<ResponseHeader> {
        let put = PutRequest {
            key: self.leader.key.clone(),
            value: self.value.clone(),
            lease: self.leader.lease,
            ..PutRequest::default()
        };
        Next::Send(proclaim(&self.leader.key, self.leader.revision, put))
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<ResponseHeader> {
        Next::Done(txn_header(answer, Some(RecipeError::NotLeader)))
    }

    fn on_watch(&mut self, _response: &WatchResponse) -> Next<ResponseHeader> {
        Next::Wait
    }
}

/// Gives up `leader`'s leadership or campaign (`Election.Resign`); a leadership already gone is
/// no error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resign {
    leader: LeaderKey,
}

impl Resign {
    /// Resigns `leader` (etcd refuses a request without one).
    pub fn new(leader: Option<LeaderKey>) -> Result<Resign, RecipeError> {
        let leader = leader.ok_or(RecipeError::MissingLeaderKey)?;
        Ok(Resign { leader })
    }
}

impl Recipe for Resign {
    type Output = ResponseHeader;

    fn start(&mut self) -> Next<ResponseHeader> {
        Next::Send(resign(&self.leader.key, self.leader.revision))
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<ResponseHeader> {
        Next::Done(txn_header(answer, None))
    }

    fn on_watch(&mut self, _response: &WatchResponse) -> Next<ResponseHeader> {
        Next::Wait
    }
}

/// The leader's key and value (`Election.Leader`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    prefix: Vec<u8>,
}

impl Leader {
    /// The leader of the election `name`.
    pub fn new(name: &[u8]) -> Leader {
        Leader {
            prefix: name_prefix(name),
        }
    }
}

impl Recipe for Leader {
    type Output = (ResponseHeader, KeyValue);

    fn start(&mut self) -> Next<Self::Output> {
        Next::Send(Request::Range(first_created(&self.prefix)))
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Self::Output> {
        Next::Done(range_of(answer).and_then(|range| match first_kv(&range) {
            Some(kv) => Ok((range.header.clone(), kv.clone())),
            None => Err(RecipeError::NoLeader),
        }))
    }

    fn on_watch(&mut self, _response: &WatchResponse) -> Next<Self::Output> {
        Next::Wait
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Observing {
    /// Reading the leader.
    Reading,
    /// No leader: watching the prefix for the first put.
    AwaitingLeader,
    /// Following the leader's key until it is deleted.
    Following,
}

/// Every leader and every value it proclaims, in order (`Election.Observe`): a stream that
/// ends only on an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observe {
    prefix: Vec<u8>,
    phase: Observing,
    /// Steps to hand out after the current emit.
    queued: VecDeque<Next<(ResponseHeader, KeyValue)>>,
}

impl Observe {
    /// Observes the election `name`.
    pub fn new(name: &[u8]) -> Observe {
        Observe {
            prefix: name_prefix(name),
            phase: Observing::Reading,
            queued: VecDeque::new(),
        }
    }

    fn read(&mut self) -> Next<(ResponseHeader, KeyValue)> {
        self.phase = Observing::Reading;
        self.queued.clear();
        Next::Send(Request::Range(first_created(&self.prefix)))
    }

    /// Emits the leader `kv` as of `header`, then follows its key from the next revision.
    fn lead(&mut self, header: ResponseHeader, kv: KeyValue) -> Next<(ResponseHeader, KeyValue)> {
        self.phase = Observing::Following;
        let follow = WatchCreateRequest {
            key: kv.key.clone(),
            start_revision: Revision(header.revision.0 + 1),
            ..WatchCreateRequest::default()
        };
        self.queued.push_back(Next::Watch(follow));
        Next::Emit((header, kv))
    }
}

impl Recipe for Observe {
    type Output = (ResponseHeader, KeyValue);

    fn start(&mut self) -> Next<Self::Output> {
        self.read()
    }

    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Self::Output> {
        let range = match range_of(answer) {
            Ok(range) => range,
            Err(error) => return Next::Done(Err(error)),
        };
        match first_kv(&range) {
            Some(kv) => {
                let kv = kv.clone();
                self.lead(range.header, kv)
            }
            None => {
                self.phase = Observing::AwaitingLeader;
                Next::Watch(WatchCreateRequest {
                    key: self.prefix.clone(),
                    range_end: prefix_end(&self.prefix),
                    start_revision: range.header.revision,
                    ..WatchCreateRequest::default()
                })
            }
        }
    }

    fn on_watch(&mut self, response: &WatchResponse) -> Next<Self::Output> {
        if response.canceled {
            return self.read();
        }
        match self.phase {
            Observing::Reading => Next::Wait,
            Observing::AwaitingLeader => {
                // The first put is the new leader (a delete would only be an older campaign's).
                let Some(put) = response
                    .events
                    .iter()
                    .find(|event| event.kind == EventType::Put)
                else {
                    return Next::Wait;
                };
                let mut header = response.header.clone();
                header.revision = put.kv.mod_revision;
                self.lead(header, put.kv.clone())
            }
            Observing::Following => {
                for event in &response.events {
                    if event.kind == EventType::Delete {
                        // Leadership moved on: read the new leader after the emits before.
                        self.phase = Observing::Reading;
                        let read = Request::Range(first_created(&self.prefix));
                        self.queued.push_back(Next::Send(read));
                        break;
                    }
                    self.queued
                        .push_back(Next::Emit((response.header.clone(), event.kv.clone())));
                }
                self.resume()
            }
        }
    }

    fn resume(&mut self) -> Next<Self::Output> {
        self.queued.pop_front().unwrap_or(Next::Wait)
    }
}
