//! An index from byte strings to their position in a list, for interning a history's keys and
//! values: compiling one history looks up tens of thousands of them, and a binary search over
//! sorted byte strings compares a dozen of them per lookup.
//!
//! Open addressing with a fixed hash (word-at-a-time multiply-rotate, SplitMix finish), like
//! the search's memo: no random seed and nothing iterated, so nothing about it can leak into an
//! order or a verdict.
//! It stores positions only; the caller owns the list and passes it to every call.

use super::mix;

/// Slot value of an empty slot.
const EMPTY: u32 = u32::MAX;

/// Positions of a list's distinct byte strings, by hash of the bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ByteIndex {
    /// A power of two long, at most half full; each slot holds a list position or `EMPTY`.
    slots: Vec<u32>,
    used: usize,
}

/// A word at a time (keys and values run to tens of bytes and are hashed tens of thousands of
/// times per history); the length is mixed in, so a zero-padded tail cannot collide with a
/// longer string by construction, and the SplitMix finish spreads the bits for the mask.
fn hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word: [u8; 8] = word.try_into().expect("chunks of eight bytes");
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let mut tail = [0_u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    hash = (hash.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(0x517c_c1b7_2722_0a95);
    mix(hash)
}

impl ByteIndex {
    /// Indexes every entry of `list` (which must be distinct).
    pub(crate) fn of<T: AsRef<[u8]>>(list: &[T]) -> ByteIndex {
        let mut index = ByteIndex::default();
        for position in 0..list.len() {
            let added = index.add(list, position);
            assert!(added, "indexed entries are distinct");
        }
        index
    }

    /// The position in `list` (the list this indexes) of `bytes`, if it is there.
    pub(crate) fn find<T: AsRef<[u8]>>(&self, list: &[T], bytes: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = (hash(bytes) as usize) & mask;
        loop {
            let position = self.slots[slot];
            if position == EMPTY {
                return None;
            }
            if list[position as usize].as_ref() == bytes {
                return Some(position as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Indexes `list[position]`; false (and nothing changes) if equal bytes are indexed.
    pub(crate) fn add<T: AsRef<[u8]>>(&mut self, list: &[T], position: usize) -> bool {
        assert!(position < EMPTY as usize, "fewer than 2^32 entries");
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow(list);
        }
        let bytes = list[position].as_ref();
        let mask = self.slots.len() - 1;
        let mut slot = (hash(bytes) as usize) & mask;
        loop {
            let existing = self.slots[slot];
            if existing == EMPTY {
                self.slots[slot] = position as u32;
                self.used += 1;
                return true;
            }
            if list[existing as usize].as_ref() == bytes {
                return false;
            }
            slot = (slot + 1) & mask;
        }
    }

    fn grow<T: AsRef<[u8]>>(&mut self, list: &[T]) {
        let length = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; length]);
        self.used = 0;
        for position in old.into_iter().filter(|&position| position != EMPTY) {
            self.add(list, position as usize);
        }
    }
}
