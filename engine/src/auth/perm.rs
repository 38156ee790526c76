//! Permissions and the range arithmetic behind them: whether the ranges a user was granted
//! cover the whole of a requested range (etcd merges a user's ranges the same way, so a range
//! read across two adjacent grants is allowed and one that pokes past them is not).
//!
//! It knows nothing of users or roles; `AuthStore::check` collects the ranges.

/// What a permission allows (etcd's `authpb.Permission_Type`, same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
pub enum PermissionKind {
    /// Range, watch, compare.
    Read,
    /// Put, delete.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionKind {
    /// Whether a permission of this kind allows an access of kind `wanted` (`Read` or `Write`).
    pub fn allows(self, wanted: PermissionKind) -> bool {
        self == PermissionKind::ReadWrite || self == wanted
    }

    /// etcd's name, as etcdctl prints it.
    pub fn name(self) -> &'static str {
        match self {
            PermissionKind::Read => "READ",
            PermissionKind::Write => "WRITE",
            PermissionKind::ReadWrite => "READWRITE",
        }
    }
}

/// A key or a range with etcd's conventions: `range_end` empty is the single key `key`,
/// `range_end == [0]` every key from `key` on, otherwise `[key, range_end)`.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, bincode::Encode, bincode::Decode,
)]
pub struct KeyRange {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range, exclusive; see the type's doc.
    pub range_end: Vec<u8>,
}

impl KeyRange {
    /// The single key `key`.
    pub fn key(key: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            range_end: Vec::new(),
        }
    }

    /// `[key, range_end)` with etcd's conventions.
    pub fn range(key: &[u8], range_end: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    /// The half-open interval this range stands for; `None` as the end is "no end". A range
    /// whose end is not past its key is empty.
    fn interval(&self) -> (&[u8], End) {
        let end = if self.range_end.is_empty() {
            let mut next = self.key.clone();
            next.push(0);
            End::Key(next)
        } else if self.range_end == [0] {
            End::Infinity
        } else {
            End::Key(self.range_end.clone())
        };
        (&self.key, end)
    }
}

/// A permission of a role.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Permission {
    /// What it allows.
    pub kind: PermissionKind,
    /// Where.
    pub range: KeyRange,
}

/// The end of an interval. `Key` sorts below `Infinity`, so `max` works on ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Infinity,
}

/// Whether the union of `granted` covers all of `wanted`. A wanted range that is empty (its
/// end not past its key) still needs its first key, so an odd range proves nothing.
pub(crate) fn covered(wanted: &KeyRange, granted: &[KeyRange]) -> bool {
    let (start, wanted_end) = wanted.interval();
    let wanted_end = match wanted_end {
        End::Key(end) if end.as_slice() <= start => KeyRange::key(start).interval().1,
        end => end,
    };
    let mut intervals: Vec<(&[u8], End)> = granted
        .iter()
        .map(KeyRange::interval)
        .filter(|(key, end)| matches!(end, End::Infinity) || End::Key(key.to_vec()) < *end)
        .collect();
    intervals.sort();
    // Walk the grants in start order, extending the covered prefix of `wanted`; a grant that
    // starts past the prefix leaves a gap no later grant (starting later still) can fill.
    let mut reached = End::Key(start.to_vec());
    for (key, end) in intervals {
        if End::Key(key.to_vec()) > reached {
            break;
        }
        if end > reached {
            reached = end;
        }
        if reached >= wanted_end {
            return true;
        }
    }
    reached >= wanted_end
}

#[cfg(test)]
mod tests {
    //! Coverage against a brute-force oracle over a tiny alphabet: every key of up to three
    //! bytes from {0, 'a', 'b', 'c'} inside the wanted range must be in some grant.
    use super::*;
    use proptest::prelude::*;

    fn contains(range: &KeyRange, key: &[u8]) -> bool {
        let (start, end) = range.interval();
        key >= start
            && match end {
                End::Key(end) => key < end.as_slice(),
                End::Infinity => true,
            }
    }

    fn keys() -> Vec<Vec<u8>> {
        let alphabet = [0u8, b'a', b'b', b'c'];
        let mut keys = vec![Vec::new()];
        for length in 1..=3 {
            let mut next = Vec::new();
            for key in keys.iter().filter(|key| key.len() == length - 1) {
                for byte in alphabet {
                    let mut longer = key.clone();
                    longer.push(byte);
                    next.push(longer);
                }
            }
            keys.extend(next);
        }
        keys
    }

    fn range_strategy() -> impl Strategy<Value = KeyRange> {
        let key = proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 1..3);
        let end = prop_oneof![
            Just(Vec::new()),
            Just(vec![0u8]),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 1..3),
        ];
        (key, end).prop_map(|(key, range_end)| KeyRange { key, range_end })
    }

    proptest! {
        // Every gap in the grants starts at the wanted key or at a grant's end, which are all
        // enumerated keys, so the enumeration decides coverage exactly.
        #[test]
        fn coverage_matches_brute_force(
            wanted in range_strategy(),
            granted in proptest::collection::vec(range_strategy(), 0..4),
        ) {
            let (start, end) = wanted.interval();
            let empty = matches!(&end, End::Key(end) if end.as_slice() <= start);
            let probe = if empty { KeyRange::key(start) } else { wanted.clone() };
            let oracle = keys()
                .iter()
                .filter(|key| contains(&probe, key))
                .all(|key| granted.iter().any(|grant| contains(grant, key)));
            prop_assert_eq!(covered(&wanted, &granted), oracle, "{:?} by {:?}", wanted, granted);
        }
    }

    #[test]
    fn adjacent_grants_cover_a_range_across_them_and_a_gap_does_not() {
        let granted = vec![KeyRange::range(b"a", b"c"), KeyRange::range(b"c", b"e")];
        assert!(covered(&KeyRange::range(b"b", b"d"), &granted));
        assert!(!covered(&KeyRange::range(b"b", b"f"), &granted));
        assert!(covered(&KeyRange::key(b"d"), &granted));
        assert!(!covered(&KeyRange::range(b"a", &[0]), &granted));
        assert!(covered(
            &KeyRange::range(b"x", &[0]),
            &[KeyRange::range(b"w", &[0])]
        ));
        assert!(!covered(&KeyRange::key(b"a"), &[KeyRange::key(b"ab")]));
    }
}
