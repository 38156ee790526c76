//! Cluster events as JSON lines for the checkers' raft, durability and liveness checks
//! (`events.jsonl`): leader elections, applied entries, KV hashes, crashes, restarts and the
//! heal, tagged by `"event"` in snake_case, with times in simulated nanoseconds.
//!
//! This module renders only; it does not depend on the checkers crate (which reads any host's
//! events), and it renders nothing the member did not report.

use engine::api::Observation;
use engine::types::{Instant, NodeId};
use serde_json::json;

/// The event line for an observation of `member` at `time`, if the checkers read that kind.
pub fn observation_line(
    member: NodeId,
    time: Instant,
    observation: &Observation,
) -> Option<String> {
    let value = match observation {
        Observation::BecameLeader { term } => {
            json!({"event": "leader_elected", "member": member.0, "term": term.0, "time": time.0})
        }
        Observation::Applied {
            index,
            term,
            digest,
        } => {
            json!({"event": "applied", "member": member.0, "index": index.0, "term": term.0, "digest": digest})
        }
        Observation::KvHash {
            index,
            revision,
            hash,
        } => {
            json!({"event": "kv_hash", "member": member.0, "index": index.0, "revision": revision.0, "hash": hash})
        }
        Observation::Snapshot { .. } => return None,
    };
    Some(value.to_string())
}

/// A crash of `member`.
pub fn crashed_line(member: NodeId, time: Instant) -> String {
    json!({"event": "crashed", "member": member.0, "time": time.0}).to_string()
}

/// A restart of `member` from its disk.
pub fn restarted_line(member: NodeId, time: Instant) -> String {
    json!({"event": "restarted", "member": member.0, "time": time.0}).to_string()
}

/// The heal that ends the safety phase.
pub fn faults_healed_line(time: Instant) -> String {
    json!({"event": "faults_healed", "time": time.0}).to_string()
}

#[cfg(test)]
mod tests {
    use super::{crashed_line, faults_healed_line, observation_line};
    use engine::api::Observation;
    use engine::types::{Instant, LogIndex, NodeId, Term};

    /// Goal: the lines carry the checkers' field names and tags. Method: render one of each
    /// kind and compare with the expected text.
    #[test]
    fn lines_use_the_checkers_tags() {
        let applied = Observation::Applied {
            index: LogIndex(3),
            term: Term(2),
            digest: 9,
        };
        insta::assert_snapshot!(observation_line(NodeId(1), Instant(5), &applied).unwrap(), @r#"{"digest":9,"event":"applied","index":3,"member":1,"term":2}"#);
        let leader = Observation::BecameLeader { term: Term(4) };
        insta::assert_snapshot!(observation_line(NodeId(2), Instant(7), &leader).unwrap(), @r#"{"event":"leader_elected","member":2,"term":4,"time":7}"#);
        insta::assert_snapshot!(crashed_line(NodeId(3), Instant(8)), @r#"{"event":"crashed","member":3,"time":8}"#);
        insta::assert_snapshot!(faults_healed_line(Instant(9)), @r#"{"event":"faults_healed","time":9}"#);
    }
}
