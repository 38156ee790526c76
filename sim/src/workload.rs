//! The workload generator: etcd-like client traffic (ranges, puts, deletes, txns, leases with
//! attached keys and keep-alives) over a small hot key space and a large cold one.
//!
//! Each client owns one generator fed by its own stream, so a client's requests depend only on
//! the seed and on what that client was told. It does not send anything or keep time; the
//! world decides when a request goes out and to whom. Watches are opened by the world.

use engine::kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, Request, RequestOp, Response, TxnRequest,
};
use engine::types::{LeaseId, Revision};

use crate::rng::{SimRng, PPM};

/// Capacity reserved for a generated key: room for `l` and five digits without regrowing.
const KEY_BYTES_TYPICAL_MAX: usize = 8;
/// Capacity reserved for a generated value: room for `c`, a client, `-` and a long sequence.
const VALUE_BYTES_TYPICAL_MAX: usize = 24;

/// Appends `number` in decimal, zero-padded to at least `width_digits` digits (as `{:0w}`).
fn push_decimal(out: &mut Vec<u8>, number: u64, width_digits: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(number).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width_digits.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

/// Relative weights of each kind of request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpMix {
    /// Linearizable single-key and prefix ranges.
    pub range: u32,
    /// Serializable ranges (served locally, not linearizable).
    pub range_serializable: u32,
    /// Plain puts.
    pub put: u32,
    /// Deletes of one key.
    pub delete: u32,
    /// Compare-and-swap txns.
    pub txn: u32,
    /// Lease grants.
    pub lease_grant: u32,
    /// Puts attached to a granted lease.
    pub put_with_lease: u32,
    /// Keep-alives of a granted lease.
    pub lease_keepalive: u32,
    /// Revokes of a granted lease.
    pub lease_revoke: u32,
}

impl OpMix {
    /// etcd-like traffic: mostly reads and puts, some txns and leases.
    pub fn etcd_like() -> OpMix {
        OpMix {
            range: 30,
            range_serializable: 5,
            put: 30,
            delete: 5,
            txn: 10,
            lease_grant: 3,
            put_with_lease: 7,
            lease_keepalive: 8,
            lease_revoke: 2,
        }
    }

    fn weights(&self) -> [u32; 9] {
        [
            self.range,
            self.range_serializable,
            self.put,
            self.delete,
            self.txn,
            self.lease_grant,
            self.put_with_lease,
            self.lease_keepalive,
            self.lease_revoke,
        ]
    }
}

/// Who sends what, how often.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadConfig {
    /// Clients issuing requests, each with at most one outstanding.
    pub client_count: u32,
    /// Clients holding a watch over the whole key space.
    pub watcher_count: u32,
    /// Pause between a client's response and its next request (ns), drawn uniformly.
    pub think_ns_min: u64,
    /// See `think_ns_min`.
    pub think_ns_max: u64,
    /// A request without an answer after this long is recorded with unknown outcome (ns).
    pub request_timeout_ns: u64,
    /// Keys in the small, hot key space.
    pub small_keys_count: u32,
    /// Keys in the large, cold key space.
    pub large_keys_count: u32,
    /// Share of requests that go to the small key space (ppm).
    pub small_key_share_ppm: u32,
    /// Lease time to live (s).
    pub lease_ttl_seconds: i64,
    /// Leases a client holds at most.
    pub leases_per_client_max: usize,
    /// The request mix.
    pub mix: OpMix,
}

impl WorkloadConfig {
    /// The default: 10 clients and 2 watchers, about 6 requests per second each, so a
    /// 60-second run records about 3,000 operations even when faults stall the cluster. (The
    /// think time was shorter while clients sent to members at random and lost a timeout at
    /// every dead one; clients that move on from a failing member need less to reach as many
    /// operations, and a seed costs what it did.)
    pub fn etcd_like() -> WorkloadConfig {
        WorkloadConfig {
            client_count: 10,
            watcher_count: 2,
            think_ns_min: 60_000_000,
            think_ns_max: 260_000_000,
            request_timeout_ns: 1_000_000_000,
            small_keys_count: 8,
            large_keys_count: 1_000,
            small_key_share_ppm: 700_000,
            lease_ttl_seconds: 5,
            leases_per_client_max: 4,
            mix: OpMix::etcd_like(),
        }
    }
}

/// One client's request generator.
#[derive(Debug)]
pub struct Generator {
    config: WorkloadConfig,
    client_index: u32,
    rng: SimRng,
    /// Values are unique per client and request, so a checker can tell writes apart.
    sequence: u64,
    /// Leases granted to this client that it has not revoked.
    leases: Vec<LeaseId>,
}

impl Generator {
    /// The generator of client `client_index`, drawing from `rng`.
    pub fn new(config: WorkloadConfig, client_index: u32, rng: SimRng) -> Generator {
        assert!(config.small_keys_count > 0 && config.large_keys_count > 0);
        Generator {
            config,
            client_index,
            rng,
            sequence: 0,
            leases: Vec::new(),
        }
    }

    /// The stream, for choices the world makes on this client's behalf (which member, think time).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Draws the next request.
    pub fn next_request(&mut self) -> Request {
        self.sequence += 1;
        let kind = self.rng.weighted(&self.config.mix.weights()).unwrap_or(0);
        let lease = self.random_lease();
        match (kind, lease) {
            (0, _) => Request::Range(self.range(false)),
            (1, _) => Request::Range(self.range(true)),
            (3, _) => Request::DeleteRange(DeleteRangeRequest {
                key: self.key(),
                ..Default::default()
            }),
            (4, _) => Request::Txn(self.txn()),
            (5, _) if self.leases.len() < self.config.leases_per_client_max => {
                Request::LeaseGrant(LeaseGrantRequest {
                    ttl_seconds: self.config.lease_ttl_seconds,
                    id: LeaseId(0),
                })
            }
            (6, Some(lease)) => Request::Put(PutRequest {
                lease,
                ..self.put()
            }),
            (7, Some(id)) => Request::LeaseKeepAlive { id },
            (8, Some(id)) => {
                self.leases.retain(|held| *held != id);
                Request::LeaseRevoke { id }
            }
            _ => Request::Put(self.put()),
        }
    }

    /// Learns from a successful response (granted leases) or a definite lease error.
    pub fn observe(&mut self, response: &Response) {
        if let Response::LeaseGrant { id, .. } = response {
            if self.leases.len() < self.config.leases_per_client_max {
                self.leases.push(*id);
            }
        }
    }

    /// Forgets a lease the store says does not exist (expired).
    pub fn forget_lease(&mut self, lease: LeaseId) {
        self.leases.retain(|held| *held != lease);
    }

    fn random_lease(&mut self) -> Option<LeaseId> {
        if self.leases.is_empty() {
            return None;
        }
        Some(self.leases[self.rng.below(self.leases.len() as u64) as usize])
    }

    fn key(&mut self) -> Vec<u8> {
        let small = self
            .rng
            .chance_ppm(self.config.small_key_share_ppm.min(PPM));
        // Written digit by digit: `format!` cost more than the rest of request generation.
        // The bytes equal `format!("s{:02}")` / `format!("l{:05}")`; a test compares them.
        let (prefix, width_digits, count) = if small {
            (b's', 2, self.config.small_keys_count)
        } else {
            (b'l', 5, self.config.large_keys_count)
        };
        let number = self.rng.below(u64::from(count));
        let mut key = Vec::with_capacity(KEY_BYTES_TYPICAL_MAX);
        key.push(prefix);
        push_decimal(&mut key, number, width_digits);
        key
    }

    /// `c<client>-<sequence>`, as `format!("c{}-{}")` renders it.
    fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(VALUE_BYTES_TYPICAL_MAX);
        value.push(b'c');
        push_decimal(&mut value, u64::from(self.client_index), 1);
        value.push(b'-');
        push_decimal(&mut value, self.sequence, 1);
        value
    }

    fn put(&mut self) -> PutRequest {
        PutRequest {
            key: self.key(),
            value: self.value(),
            ..Default::default()
        }
    }

    fn range(&mut self, serializable: bool) -> RangeRequest {
        let key = self.key();
        // One range in four scans the key's whole space (prefix `s` or `l`).
        let range_end = if self.rng.below(4) == 0 {
            vec![key[0] + 1]
        } else {
            Vec::new()
        };
        let key = if range_end.is_empty() {
            key
        } else {
            vec![key[0]]
        };
        RangeRequest {
            key,
            range_end,
            serializable,
            limit: 0,
            revision: Revision(0),
            ..Default::default()
        }
    }

    fn txn(&mut self) -> TxnRequest {
        let key = self.key();
        let version = self.rng.below(3) as i64;
        TxnRequest {
            compare: vec![Compare {
                key: key.clone(),
                range_end: Vec::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Version(version),
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: key.clone(),
                value: self.value(),
                ..Default::default()
            })],
            failure: vec![RequestOp::Range(RangeRequest {
                key,
                ..Default::default()
            })],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{push_decimal, Generator, WorkloadConfig};
    use crate::rng::{SimRng, Stream};
    use engine::kv::{Request, Response, ResponseHeader};
    use engine::types::LeaseId;

    /// Goal: the hand-written decimal writer renders exactly what `format!` did for keys and
    /// values, since those bytes reach the trace hash. Method: compare with `format!` over
    /// numbers around every power of ten, with the widths keys use and no padding.
    #[test]
    fn push_decimal_matches_format() {
        let mut numbers = vec![0_u64, u64::MAX];
        for power in 0..20 {
            let ten = 10_u64.pow(power);
            numbers.extend([ten - 1, ten, ten + 1]);
        }
        for number in numbers {
            for (width_digits, expected) in [
                (1, format!("{number}")),
                (2, format!("{number:02}")),
                (5, format!("{number:05}")),
            ] {
                let mut out = b"x".to_vec();
                push_decimal(&mut out, number, width_digits);
                assert_eq!(out, format!("x{expected}").into_bytes());
            }
        }
    }

    fn requests(seed: u64, count: usize) -> Vec<Request> {
        let mut generator = Generator::new(
            WorkloadConfig::etcd_like(),
            0,
            SimRng::for_stream(seed, Stream::Client(0)),
        );
        generator.observe(&Response::LeaseGrant {
            header: ResponseHeader::default(),
            id: LeaseId(7),
            ttl_seconds: 5,
        });
        (0..count).map(|_| generator.next_request()).collect()
    }

    /// Goal: the generator is a function of its seed, and the mix covers every kind.
    /// Method: generate twice with one seed and once with another; classify 2,000 requests.
    #[test]
    fn generator_is_deterministic_and_covers_the_mix() {
        assert_eq!(requests(11, 500), requests(11, 500));
        assert_ne!(requests(11, 500), requests(12, 500));
        let mut kinds = std::collections::BTreeSet::new();
        for request in requests(3, 2_000) {
            kinds.insert(match request {
                Request::Range(range) if range.serializable => "range_serializable",
                Request::Range(_) => "range",
                Request::Put(put) if put.lease.0 != 0 => "put_with_lease",
                Request::Put(_) => "put",
                Request::DeleteRange(_) => "delete",
                Request::Txn(_) => "txn",
                Request::LeaseGrant(_) => "lease_grant",
                Request::LeaseKeepAlive { .. } => "lease_keepalive",
                Request::LeaseRevoke { .. } => "lease_revoke",
                _ => "other",
            });
        }
        assert!(!kinds.contains("other"));
        assert!(kinds.len() >= 8, "{kinds:?}");
    }

    /// Goal: keys stay within the configured key spaces. Method: parse every put key.
    #[test]
    fn keys_stay_in_their_spaces() {
        for request in requests(5, 2_000) {
            if let Request::Put(put) = request {
                let key = String::from_utf8(put.key).unwrap();
                let number: u32 = key[1..].parse().unwrap();
                match &key[..1] {
                    "s" => assert!(number < 8),
                    "l" => assert!(number < 1_000),
                    other => panic!("unexpected key space {other}"),
                }
            }
        }
    }
}
