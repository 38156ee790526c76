//! What the history can hold of the recipes' requests: the reads the format cannot express
//! are recorded with their answers' kvs and count left out, and the lock note is added.

use engine::kv::{RangeRequest, Request, RequestOp, SortOrder, TxnRequest};

/// Whether a range's answer cannot be recorded in the format (it sorts with a limit, or
/// filters by revision): the format's range has neither.
fn unrecordable(range: &RangeRequest) -> bool {
    (range.sort_order != SortOrder::None && range.limit > 0)
        || range.min_create_revision.0 != 0
        || range.max_create_revision.0 != 0
        || range.min_mod_revision.0 != 0
        || range.max_mod_revision.0 != 0
}

/// Leaves out, in a txn's recorded answer, the kvs and count of nested ranges the format
/// cannot express.
pub(crate) fn blind_checked(request: &Request, response: &mut checkers::history::Response) {
    if let Request::Txn(txn) = request {
        blind_checked_txn(txn, response);
    }
}

fn blind_checked_txn(txn: &TxnRequest, response: &mut checkers::history::Response) {
    use checkers::history::Response as R;
    let R::Txn {
        succeeded: Some(succeeded),
        responses: Some(responses),
        ..
    } = response
    else {
        return;
    };
    let branch = if *succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    for (op, answer) in branch.iter().zip(responses.iter_mut()) {
        match (op, answer) {
            (RequestOp::Range(range), R::Range { kvs, count, .. }) if unrecordable(range) => {
                *kvs = None;
                *count = None;
            }
            (RequestOp::Txn(inner), answer) => blind_checked_txn(inner, answer),
            _ => {}
        }
    }
}

/// `blind_checked` on a history line's `result`.
fn blind_json(request: &Request, result: &mut serde_json::Value) {
    if let Request::Txn(txn) = request {
        blind_json_txn(txn, result);
    }
}

fn blind_json_txn(txn: &TxnRequest, result: &mut serde_json::Value) {
    let branch = match result["succeeded"].as_bool() {
        Some(true) => &txn.success,
        Some(false) => &txn.failure,
        None => return,
    };
    let Some(responses) = result["responses"].as_array_mut() else {
        return;
    };
    for (op, answer) in branch.iter().zip(responses.iter_mut()) {
        match op {
            RequestOp::Range(range) if unrecordable(range) => {
                if let Some(object) = answer.as_object_mut() {
                    object.remove("kvs");
                    object.remove("count");
                }
            }
            RequestOp::Txn(inner) => blind_json_txn(inner, answer),
            _ => {}
        }
    }
}

/// A history line with the answers `blind_checked` leaves out removed and the lock note added.
pub(crate) fn noted_line(
    line: String,
    request: &Request,
    note: Option<&checkers::history::LockNote>,
) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&line).expect("a line we rendered");
    blind_json(request, &mut value["result"]);
    if let Some(note) = note {
        value["lock"] = checkers::history::lock_json(note);
    }
    serde_json::to_string(&value).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::kv::{KeyValue, RangeResponse, Response, ResponseOp, SortTarget, TxnResponse};
    use engine::types::Instant;

    /// in both views (the checkers' values and the JSON line), and every other answer is
    /// recorded whole. Method: the lock recipe's acquiring txn, answered on its success branch.
    #[test]
    fn unrecordable_ranges_are_blinded_in_both_views() {
        let prefix = b"/lock/0/".to_vec();
        let key = b"/lock/0/7".to_vec();
        let oldest = host::recipe::first_created(&prefix);
        assert!(unrecordable(&oldest));
        let plain = RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        };
        assert!(!unrecordable(&plain));
        let sorted_unlimited = RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            ..plain.clone()
        };
        assert!(!unrecordable(&sorted_unlimited));
        let request = Request::Txn(TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp::Range(oldest), RequestOp::Range(plain)],
            failure: Vec::new(),
        });
        let kv = KeyValue {
            key: key.clone(),
            create_revision: engine::types::Revision(5),
            ..KeyValue::default()
        };
        let range = RangeResponse {
            kvs: vec![kv],
            count: 1,
            ..RangeResponse::default()
        };
        let response = Response::Txn(TxnResponse {
            succeeded: true,
            responses: vec![ResponseOp::Range(range.clone()), ResponseOp::Range(range)],
            ..TxnResponse::default()
        });
        let mut checked = crate::checking::response(Ok(response.clone())).expect("a txn");
        blind_checked(&request, &mut checked);
        let checkers::history::Response::Txn {
            responses: Some(responses),
            ..
        } = &checked
        else {
            panic!("{checked:?}")
        };
        assert!(matches!(
            &responses[0],
            checkers::history::Response::Range {
                kvs: None,
                count: None,
                ..
            }
        ));
        assert!(matches!(
            &responses[1],
            checkers::history::Response::Range {
                kvs: Some(kvs),
                count: Some(1),
                ..
            } if kvs.len() == 1
        ));
        let op = crate::history::op_json(&request).expect("a txn renders");
        let line = crate::history::operation_line(
            3,
            1,
            Instant(1),
            &op,
            Some((Instant(2), &Ok(response))),
        );
        let note = checkers::history::LockNote {
            name: b"/lock/0".to_vec(),
            step: checkers::history::LockStep::Acquired,
            key,
            token: 5,
        };
        let line = noted_line(line, &request, Some(&note));
        let checkers::history::Line::Op(parsed) =
            checkers::history::parse_line(&line).expect("parses")
        else {
            panic!("{line}")
        };
        assert_eq!(parsed.result, Some(checked));
        assert_eq!(parsed.lock, Some(note));
    }
}
