//! The run's trace: one readable line per event (`t=1.234s n3 crash`), hashed with a stable
//! 64-bit FNV-1a so that two runs can be compared by one number.
//!
//! Wall time never enters a line. Lines are kept only when asked (to write `trace.jsonl` or a
//! golden snapshot); the hash always covers every line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use engine::types::Instant;

/// A stable 64-bit FNV-1a hasher (the same value on every platform and build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Feeds one line and a line separator, so that `["ab","c"]` and `["a","bc"]` differ.
    pub fn write_line(&mut self, line: &str) {
        self.write(line.as_bytes());
        self.write(b"\n");
    }

    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Feeds one line into a hash piece by piece, numbers in decimal, without the formatting
/// machinery: for the per-operation line, the run's most frequent rendered text. It feeds
/// exactly the bytes `write!` would render for the same pieces (a test checks the digits).
#[derive(Debug)]
pub struct LineHash<'a> {
    hasher: &'a mut Fnv1a,
}

impl LineHash<'_> {
    /// Feeds `text` as is.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.hasher.write(text.as_bytes());
        self
    }

    /// Feeds `value` in decimal, as `{}` renders it.
    pub fn unsigned(&mut self, value: u64) -> &mut Self {
        self.hasher
            .write(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Feeds `value` in decimal with a leading `-` when negative, as `{}` renders it.
    pub fn signed(&mut self, value: i64) -> &mut Self {
        self.hasher
            .write(itoa::Buffer::new().format(value).as_bytes());
        self
    }
}

/// One kept trace line with its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Simulated time in nanoseconds.
    pub time: Instant,
    /// The readable line, starting with `t=`.
    pub text: String,
    /// The trace hash right after this line: it covers this line and everything hashed before
    /// it (hidden history lines and facts too), so two runs' traces first differ at the first
    /// line whose running hash differs (`sim::artifact` compares them on replay).
    pub hash: u64,
}

/// The trace of a run.
#[derive(Debug)]
pub struct Trace {
    hasher: Fnv1a,
    lines_kept: Option<Vec<TraceLine>>,
    lines_kept_max: usize,
    line_count: u64,
    scratch: String,
    /// How many faults of each kind ran (`artifact::fault_label`), for campaign reports.
    fault_kinds: BTreeMap<String, u64>,
}

impl Trace {
    /// A trace that keeps up to `lines_kept_max` lines when `keep` (it hashes all of them anyway).
    pub fn new(keep: bool, lines_kept_max: usize) -> Trace {
        Trace {
            hasher: Fnv1a::default(),
            lines_kept: keep.then(Vec::new),
            lines_kept_max,
            line_count: 0,
            scratch: String::new(),
            fault_kinds: BTreeMap::new(),
        }
    }

    /// Records one event; `what` is everything after the time, e.g. `n3 crash`.
    pub fn event(&mut self, time: Instant, what: std::fmt::Arguments<'_>) {
        self.scratch.clear();
        let millis = time.0 / 1_000_000;
        let _ = write!(self.scratch, "t={}.{:03}s ", millis / 1000, millis % 1000);
        let _ = self.scratch.write_fmt(what);
        self.hasher.write_line(&self.scratch);
        self.line_count += 1;
        let text = self.scratch.split_once(' ').map_or("", |(_, rest)| rest);
        if let Some(label) = crate::artifact::fault_label(text) {
            *self.fault_kinds.entry(label).or_insert(0) += 1;
        }
        if let Some(lines) = &mut self.lines_kept {
            if lines.len() < self.lines_kept_max {
                lines.push(TraceLine {
                    time,
                    text: self.scratch.clone(),
                    hash: self.hasher.finish(),
                });
            }
        }
    }

    /// Feeds a line that is not shown in the trace (a history line) into the hash.
    pub fn hash_only(&mut self, line: &str) {
        self.hasher.write_line(line);
    }

    /// Feeds a line that is not shown in the trace into the hash, as `render` feeds its pieces
    /// (the same hash as `hash_only` of the whole line's text, without building it).
    pub fn hash_only_pieces(&mut self, render: impl FnOnce(&mut LineHash<'_>)) {
        render(&mut LineHash {
            hasher: &mut self.hasher,
        });
        self.hasher.write(b"\n");
    }

    /// Feeds a structured fact (integers, then byte strings) without formatting it: for the
    /// run's most frequent facts, where formatting a line would cost more than the step.
    pub fn hash_fact(&mut self, words: &[u64], byte_strings: &[&[u8]]) {
        for word in words {
            self.hasher.write(&word.to_le_bytes());
        }
        for bytes in byte_strings {
            // Length first, so that ["ab", "c"] and ["a", "bc"] differ.
            self.hasher.write(&(bytes.len() as u64).to_le_bytes());
            self.hasher.write(bytes);
        }
        self.hasher.write(b"\n");
    }

    /// The hash over every line so far.
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// How many lines were recorded.
    pub fn line_count(&self) -> u64 {
        self.line_count
    }

    /// How many faults of each kind ran so far, by label (`disk bit_flip`, `crash`, ...).
    pub fn fault_kinds(&self) -> &BTreeMap<String, u64> {
        &self.fault_kinds
    }

    /// The kept lines (empty unless kept).
    pub fn take_lines(&mut self) -> Vec<TraceLine> {
        self.lines_kept.take().unwrap_or_default()
    }
}

/// A hash as the 16 hex digits shown to users.
pub fn hash_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

impl host::history::FactHasher for Trace {
    fn hash_fact(&mut self, words: &[u64], byte_strings: &[&[u8]]) {
        Trace::hash_fact(self, words, byte_strings);
    }
}

#[cfg(test)]
mod tests {
    use super::{Fnv1a, Trace};
    use engine::types::Instant;

    /// Goal: FNV-1a matches its published test vectors, so the hash is the standard one.
    /// Method: the 64-bit vectors for "" and "a" from the FNV reference.
    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(Fnv1a::default().finish(), 0xcbf2_9ce4_8422_2325);
        let mut hasher = Fnv1a::default();
        hasher.write(b"a");
        assert_eq!(hasher.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    /// Goal: a line fed piece by piece hashes exactly like the same line formatted with `{}`.
    /// Method: feed text and boundary numbers (zero, one digit, extremes, negatives) both ways.
    #[test]
    fn pieces_hash_like_formatted_text() {
        let unsigned = [
            0_u64,
            7,
            10,
            99,
            100,
            101,
            999,
            1_000,
            12_345,
            1_000_000_007,
            u64::MAX,
        ];
        let signed = [
            0_i64,
            -1,
            42,
            -1_000,
            5,
            -99,
            100,
            7_777,
            i64::MAX,
            i64::MIN,
            -10,
        ];
        let mut pieces = Trace::new(false, 0);
        pieces.hash_only_pieces(|line| {
            for (value, other) in unsigned.iter().zip(signed) {
                line.text(" u=").unsigned(*value).text(" s=").signed(other);
            }
        });
        let mut text = String::new();
        for (value, other) in unsigned.iter().zip(signed) {
            text.push_str(&format!(" u={value} s={other}"));
        }
        let mut formatted = Trace::new(false, 0);
        formatted.hash_only(&text);
        assert_eq!(pieces.hash(), formatted.hash());
    }

    /// Goal: a line's time is rendered in seconds with milliseconds and the hash depends on
    /// line boundaries. Method: render a line, and hash two splits of the same bytes.
    #[test]
    fn renders_time_and_separates_lines() {
        let mut trace = Trace::new(true, 10);
        trace.event(Instant(1_234_567_890), format_args!("n3 crash"));
        assert_eq!(trace.take_lines()[0].text, "t=1.234s n3 crash");
        let mut first = Fnv1a::default();
        first.write_line("ab");
        first.write_line("c");
        let mut second = Fnv1a::default();
        second.write_line("a");
        second.write_line("bc");
        assert_ne!(first.finish(), second.finish());
    }
}
