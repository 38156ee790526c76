//! The engine's own small seeded generator (splitmix64 seeding a xoshiro256**), so that election
//! jitter is reproducible from `Config::seed` without a dependency whose algorithm might change
//! between versions. It is never seeded from the environment.

/// A deterministic pseudo-random generator. Same seed, same sequence, on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut splitmix_state = seed;
        let mut next_splitmix = || {
            splitmix_state = splitmix_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = splitmix_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let state = [
            next_splitmix(),
            next_splitmix(),
            next_splitmix(),
            next_splitmix(),
        ];
        // xoshiro's only forbidden state is all zeros; splitmix64 cannot produce four zeros in a row.
        assert!(state.iter().any(|word| *word != 0));
        Rng { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = self.state[1] << 17;
        self.state[2] ^= self.state[0];
        self.state[3] ^= self.state[1];
        self.state[1] ^= self.state[2];
        self.state[0] ^= self.state[3];
        self.state[2] ^= shifted;
        self.state[3] = self.state[3].rotate_left(45);
        result
    }

    /// A value uniformly drawn from `low..high` (`high` exclusive). Panics if the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty range {low}..{high}");
        let span = high - low;
        // Multiply-shift keeps the bias below 2^-64 per draw, which no test can observe.
        let wide = (self.next_u64() as u128) * (span as u128);
        low + (wide >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// The same seed must give the same sequence, and different seeds different ones; the range
    /// helper must stay inside its bounds.
    #[test]
    fn sequence_is_fixed_by_seed_and_range_is_bounded() {
        let mut first = Rng::new(7);
        let mut second = Rng::new(7);
        let mut other = Rng::new(8);
        let a: Vec<u64> = (0..16).map(|_| first.next_u64()).collect();
        let b: Vec<u64> = (0..16).map(|_| second.next_u64()).collect();
        let c: Vec<u64> = (0..16).map(|_| other.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let value = rng.range(10, 20);
            assert!((10..20).contains(&value));
        }
    }
}
