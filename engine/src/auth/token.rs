//! etcd's simple tokens: a table from token to user, kept by each member, filled when an
//! `Authenticate` entry applies, each token expiring after a TTL without use on that member's
//! clock (the leader's, for requests the leader serves).
//!
//! Member-local on purpose: it is not replicated state and never reaches a snapshot or the
//! MVCC store, so a restart forgets every token (as etcd's do) and clients authenticate again.

use std::collections::BTreeMap;

use crate::types::{Duration, Instant};

/// Most tokens a member keeps; past it the token closest to expiry is dropped (its client
/// then gets `InvalidAuthToken` and authenticates again).
pub const TOKENS_COUNT_MAX: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
struct TokenEntry {
    user: String,
    expires_at: Instant,
}

/// The token table.
#[derive(Clone, Debug)]
pub struct Tokens {
    ttl: Duration,
    /// Invariant: at most `TOKENS_COUNT_MAX` entries.
    entries: BTreeMap<String, TokenEntry>,
}

impl Tokens {
    /// An empty table whose tokens live `ttl` after their last use.
    pub fn new(ttl: Duration) -> Tokens {
        assert!(ttl.0 > 0, "a token TTL is positive");
        Tokens {
            ttl,
            entries: BTreeMap::new(),
        }
    }

    /// Issues `token` to `user` at `now`.
    pub fn assign(&mut self, token: String, user: String, now: Instant) {
        if self.entries.len() >= TOKENS_COUNT_MAX && !self.entries.contains_key(&token) {
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.expires_at)
                .map(|(token, _)| token.clone())
                .expect("the table is full");
            let _dropped = self.entries.remove(&soonest);
        }
        let expires_at = now + self.ttl;
        let _replaced = self.entries.insert(token, TokenEntry { user, expires_at });
        assert!(self.entries.len() <= TOKENS_COUNT_MAX);
    }

    /// The user of a live token, renewing its TTL (etcd's simple tokens are idle-timed); an
    /// expired token is forgotten.
    pub fn resolve(&mut self, token: &str, now: Instant) -> Option<String> {
        let entry = self.entries.get_mut(token)?;
        if entry.expires_at <= now {
            let _expired = self.entries.remove(token);
            return None;
        }
        entry.expires_at = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn revoke_user(&mut self, user: &str) {
        self.entries.retain(|_, entry| entry.user != user);
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    //! A token lives its TTL after its last use, and not a nanosecond more.
    use super::*;

    #[test]
    fn a_token_expires_a_ttl_after_its_last_use() {
        let mut tokens = Tokens::new(Duration::from_secs(10));
        tokens.assign("t".into(), "alice".into(), Instant(0));
        let nine = Instant(Duration::from_secs(9).0);
        assert_eq!(tokens.resolve("t", nine).as_deref(), Some("alice"));
        let eighteen = Instant(Duration::from_secs(18).0);
        assert_eq!(tokens.resolve("t", eighteen).as_deref(), Some("alice"));
        let twenty_eight = Instant(Duration::from_secs(28).0);
        assert_eq!(tokens.resolve("t", twenty_eight), None);
        assert!(tokens.is_empty());
        assert_eq!(tokens.resolve("unknown", Instant(0)), None);
    }
}
