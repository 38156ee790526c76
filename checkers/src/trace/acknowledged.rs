//! The persistence contract, judged per member from what it sent and what it came back with:
//! a vote or an append acknowledgement is a promise that the state behind it is durable, so a
//! restart must never take it back, and an acknowledgement must never leave before its sync.
//!
//! These checks see the harm of a durability-order bug directly, at the member that broke its
//! promise, instead of waiting for the rarer schedule in which the broken promise also costs
//! the cluster a committed entry. They read only trace events; they know nothing of the engine.

use std::collections::BTreeMap;

use super::{violation, LogIndex, MemberId, Term, TraceEvent};
use crate::Verdict;

/// What one member has promised so far.
#[derive(Default)]
struct Promises {
    /// The latest vote granted: (term, candidate, time).
    vote: Option<(Term, MemberId, i64)>,
    /// The highest acknowledgement, by (term, index), with its time.
    acked: Option<(Term, LogIndex, i64)>,
    /// The disk took damage the design allows on a minority: promises no longer bind.
    excused: bool,
}

/// Nothing a member acknowledged as durable is missing after it restarts: its recovered term
/// is at least that of every vote and acknowledgement it sent; in the term of its last vote it
/// recovers that same vote; in the term of its highest acknowledgement its log reaches that
/// index. A member never grants two votes in one term, across restarts too.
///
/// NB: an acknowledgement binds only while no later leader could have replaced the entries
/// behind it: a recovered log whose last term is past the acknowledgement's term, or a
/// recovered term past it, releases the promise (a newer leader may legally cut the log).
pub fn check_acknowledged_durability(trace: &[TraceEvent]) -> Verdict {
    const CHECKER: &str = "acknowledged_durability";
    let mut promises: BTreeMap<MemberId, Promises> = BTreeMap::new();
    for event in trace {
        match event {
            TraceEvent::VoteGranted {
                member,
                term,
                candidate,
                time,
            } => {
                let promise = promises.entry(*member).or_default();
                if let Some((voted_term, voted_for, voted_at)) = promise.vote {
                    if voted_term == *term && voted_for != *candidate && !promise.excused {
                        return violation(
                            CHECKER,
                            vec![],
                            format!(
                                "member {} voted twice in term {}: for {} at time {voted_at}, \
                                 then for {} at time {time}",
                                member.0, term.0, voted_for.0, candidate.0
                            ),
                        );
                    }
                }
                if promise
                    .vote
                    .is_none_or(|(voted_term, _, _)| voted_term <= *term)
                {
                    promise.vote = Some((*term, *candidate, *time));
                }
            }
            TraceEvent::AppendAcked {
                member,
                term,
                index,
                time,
                ..
            } => {
                let promise = promises.entry(*member).or_default();
                if promise.acked.is_none_or(|(acked_term, acked_index, _)| {
                    (acked_term, acked_index) < (*term, *index)
                }) {
                    promise.acked = Some((*term, *index, *time));
                }
            }
            TraceEvent::DiskDamaged { member, .. } => {
                promises.entry(*member).or_default().excused = true;
            }
            TraceEvent::Recovered {
                member,
                term,
                vote,
                last_index,
                last_term,
                time,
            } => {
                let Some(promise) = promises.get(member) else {
                    continue;
                };
                if promise.excused {
                    continue;
                }
                if let Some(broken) = broken_promise(promise, *term, *vote, *last_index, *last_term)
                {
                    return violation(
                        CHECKER,
                        vec![],
                        format!("member {} restarted at time {time} {broken}", member.0),
                    );
                }
            }
            _ => {}
        }
    }
    Verdict::Ok
}

/// How the recovered state breaks one of `promise`'s claims, if it does.
fn broken_promise(
    promise: &Promises,
    term: Term,
    vote: MemberId,
    last_index: LogIndex,
    last_term: Term,
) -> Option<String> {
    if let Some((voted_term, candidate, voted_at)) = promise.vote {
        if term < voted_term {
            return Some(format!(
                "in term {}, but it had voted for {} in term {} at time {voted_at}",
                term.0, candidate.0, voted_term.0
            ));
        }
        if term == voted_term && vote != candidate {
            return Some(format!(
                "with vote {} in term {}, but it had voted for {} at time {voted_at}",
                vote.0, term.0, candidate.0
            ));
        }
    }
    if let Some((acked_term, acked_index, acked_at)) = promise.acked {
        if term < acked_term {
            return Some(format!(
                "in term {}, but it had acknowledged entries in term {} at time {acked_at}",
                term.0, acked_term.0
            ));
        }
        let replaceable = term > acked_term || last_term > acked_term;
        if !replaceable && last_index < acked_index {
            return Some(format!(
                "with its log ending at {} (term {}), but in term {} it had acknowledged index {} \
                 at time {acked_at}",
                last_index.0, last_term.0, acked_term.0, acked_index.0
            ));
        }
    }
    None
}

/// A member never acknowledges an index before its disk has synced it: every acknowledgement's
/// index is at most the synced index it was sent with. Judged at the moment the message left,
/// so the bug shows on the first acknowledgement, with or without a crash.
pub fn check_ack_after_sync(trace: &[TraceEvent]) -> Verdict {
    for event in trace {
        if let TraceEvent::AppendAcked {
            member,
            term,
            index,
            synced_index,
            time,
        } = event
        {
            if index > synced_index {
                return violation(
                    "ack_after_sync",
                    vec![],
                    format!(
                        "member {} acknowledged index {} in term {} at time {time} with only \
                         {} synced",
                        member.0, index.0, term.0, synced_index.0
                    ),
                );
            }
        }
    }
    Verdict::Ok
}
