//! Protobuf to JSON and back as etcd's HTTP gateway writes them: grpc-gateway's jsonpb with the
//! proto field names (`create_revision`, `peerURLs`, `TTL`: each as the proto spells it), 64-bit
//! integers as strings, bytes as base64, enums by name, fields at their default left out; on
//! input both the proto names and the lowerCamelCase JSON names are read, unknown fields are
//! ignored and anything after the first JSON value is not read (etcd 3.4 does the same).
//!
//! It works on encoded messages and the descriptors build.rs compiled, so no message type needs
//! a hand-written mapping. It decides nothing about the request.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

/// The descriptors of every proto the server compiles (build.rs writes them).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// The descriptor pool, decoded once.
pub(crate) fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("build.rs wrote a valid descriptor set")
    })
}

/// A JSON body that is not a valid request; the text says where.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadJson(pub(crate) String);

/// The request message of type `descriptor` in `value`, encoded as protobuf.
pub(crate) fn encode_request(
    descriptor: &MessageDescriptor,
    mut value: serde_json::Value,
) -> Result<Vec<u8>, BadJson> {
    // Unknown fields are dropped first, so the strict reading below still refuses an unknown
    // enum name (as etcd does) while a field from a newer client is ignored (as etcd does).
    drop_unknown_fields(descriptor, &mut value);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(descriptor.clone(), value, &options)
        .map_err(|error| BadJson(error.to_string()))?;
    Ok(message.encode_to_vec())
}

/// Removes the members of `value` (a JSON object for a `descriptor` message) that name no field,
/// at every depth.
fn drop_unknown_fields(descriptor: &MessageDescriptor, value: &mut serde_json::Value) {
    let serde_json::Value::Object(members) = value else {
        return;
    };
    members.retain(|name, _| {
        descriptor.get_field_by_name(name).is_some()
            || descriptor.get_field_by_json_name(name).is_some()
    });
    for (name, member) in members.iter_mut() {
        let field = descriptor
            .get_field_by_name(name)
            .or_else(|| descriptor.get_field_by_json_name(name))
            .expect("unknown members were removed");
        let prost_reflect::Kind::Message(inner) = field.kind() else {
            continue;
        };
        if field.is_map() {
            let value_field = inner.map_entry_value_field();
            if let (prost_reflect::Kind::Message(values), serde_json::Value::Object(entries)) =
                (value_field.kind(), &mut *member)
            {
                for entry in entries.values_mut() {
                    drop_unknown_fields(&values, entry);
                }
            }
        } else if let serde_json::Value::Array(items) = member {
            for item in items {
                drop_unknown_fields(&inner, item);
            }
        } else {
            drop_unknown_fields(&inner, member);
        }
    }
}

/// What one read of a request body found.
#[derive(Debug, PartialEq)]
pub(crate) enum NextValue {
    /// A whole JSON value, and how many bytes of the buffer it (and the blanks before it) took.
    Value(serde_json::Value, usize),
    /// Only blanks or the beginning of a value so far: more bytes are needed.
    Incomplete,
    /// Not JSON.
    Bad(BadJson),
}

/// The first JSON value in `buffer`, if it holds a whole one.
pub(crate) fn next_value(buffer: &[u8]) -> NextValue {
    let mut values = serde_json::Deserializer::from_slice(buffer).into_iter::<serde_json::Value>();
    match values.next() {
        None => NextValue::Incomplete,
        Some(Ok(value)) => NextValue::Value(value, values.byte_offset()),
        Some(Err(error)) if error.is_eof() => NextValue::Incomplete,
        Some(Err(error)) => NextValue::Bad(BadJson(error.to_string())),
    }
}

/// The response message of type `descriptor` encoded in `bytes`, as etcd's gateway writes it.
pub(crate) fn render(descriptor: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let message = DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|error| format!("an undecodable {} answer: {error}", descriptor.name()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true)
        .skip_default_fields(true)
        .use_enum_numbers(false);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|error| format!("cannot write {} as JSON: {error}", descriptor.name()))?;
    Ok(serializer.into_inner())
}

#[cfg(test)]
mod tests {
    //! The mapping on etcd's own examples: what etcd 3.4's gateway answered for the same
    //! messages (recorded from a real etcd), byte for byte.

    use super::*;
    use crate::proto::etcdserverpb as pb;
    use crate::proto::mvccpb;

    fn descriptor(name: &str) -> MessageDescriptor {
        pool().get_message_by_name(name).expect("a known message")
    }

    fn render_message(name: &str, message: &impl prost::Message) -> String {
        String::from_utf8(render(&descriptor(name), &message.encode_to_vec()).expect("renders"))
            .expect("UTF-8")
    }

    fn header() -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: 14841639068965178418,
            member_id: 10276657743932975437,
            revision: 2,
            raft_term: 2,
        })
    }

    #[test]
    fn range_response_as_etcd_writes_it() {
        let response = pb::RangeResponse {
            header: header(),
            kvs: vec![mvccpb::KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            render_message("etcdserverpb.RangeResponse", &response),
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn lease_and_member_names_keep_the_proto_spelling() {
        let lease = pb::LeaseTimeToLiveResponse {
            header: header(),
            id: 7,
            ttl: 29,
            granted_ttl: 30,
            keys: Vec::new(),
        };
        assert_eq!(
            render_message("etcdserverpb.LeaseTimeToLiveResponse", &lease),
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"ID":"7","TTL":"29","grantedTTL":"30"}"#
        );
        let member = pb::Member {
            id: 775983292087213976,
            name: String::new(),
            peer_ur_ls: vec!["http://127.0.0.1:23801".into()],
            client_ur_ls: Vec::new(),
            is_learner: true,
        };
        assert_eq!(
            render_message("etcdserverpb.Member", &member),
            r#"{"ID":"775983292087213976","peerURLs":["http://127.0.0.1:23801"],"isLearner":true}"#
        );
    }

    #[test]
    fn requests_read_both_spellings_strings_for_integers_and_enum_names() {
        let txn = serde_json::json!({
            "compare": [{"target": "VALUE", "key": "Zm9v", "value": "YmFy"}],
            "success": [{"requestPut": {"key": "Zm9v", "value": "YmF6"}}],
            "failure": [{"request_range": {"key": "Zm9v", "limit": "3", "newer": true}}],
            "unknown_field": 1
        });
        let bytes = encode_request(&descriptor("etcdserverpb.TxnRequest"), txn).expect("valid");
        let txn = pb::TxnRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(txn.compare[0].target(), pb::compare::CompareTarget::Value);
        assert_eq!(txn.compare[0].key, b"foo");
        use pb::request_op::Request as Op;
        assert!(
            matches!(&txn.success[0].request, Some(Op::RequestPut(put)) if put.value == b"baz")
        );
        assert!(
            matches!(&txn.failure[0].request, Some(Op::RequestRange(range)) if range.limit == 3)
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let range = descriptor("etcdserverpb.RangeRequest");
        for bad in [
            serde_json::json!({"key": "Zm9v!!"}),
            serde_json::json!({"key": 12}),
            serde_json::json!({"sort_order": "BOGUS"}),
            serde_json::json!({"limit": "1x"}),
            serde_json::json!([]),
        ] {
            let refused = encode_request(&range, bad.clone());
            assert!(refused.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_body_is_read_one_value_at_a_time() {
        assert_eq!(next_value(b"  "), NextValue::Incomplete);
        assert_eq!(next_value(br#"{"key":"#), NextValue::Incomplete);
        assert!(matches!(next_value(b"{bad"), NextValue::Bad(_)));
        let two = br#"{"a":1} {"b":2}"#;
        let NextValue::Value(first, used) = next_value(two) else {
            panic!("a value")
        };
        assert_eq!(first, serde_json::json!({"a": 1}));
        assert!(
            matches!(next_value(&two[used..]), NextValue::Value(second, _) if second == serde_json::json!({"b": 2}))
        );
    }
}
