//! Deterministic pseudo-random numbers for tests: the one generator the property, mutation and
//! robustness tests of every crate share (a dev-dependency; `no_std` + `alloc`, so the `no_std`
//! crates' host tests can use it too).
//!
//! xorshift64* (Marsaglia's xorshift with Vigna's multiplier): small, fast, and the same
//! sequence on every machine, so a failing case is reproduced from its seed. Not for anything
//! that needs unpredictability.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

/// xorshift64*. The state must not be 0 (it would stay 0): use [`Rng::seeded`] for arbitrary
/// seeds; `Rng(x)` with a non-zero `x` is the raw generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator for any seed (0 included); different seeds give different sequences.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index in `0..len` (0 when `len` is 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_sequence_is_xorshift64_star() {
        // From state 1: 1 ^ 1 >> 12 = 1; 1 ^ 1 << 25 = 0x200_0001; 0x200_0001 >> 27 = 0.
        let mut r = Rng(1);
        let a = r.next();
        assert_eq!(r.0, 0x200_0001);
        assert_eq!(a, 0x200_0001u64.wrapping_mul(0x2545_f491_4f6c_dd1d));
        assert_ne!(r.next(), a);
    }

    #[test]
    fn seeds_are_reproducible_and_distinct() {
        assert_eq!(Rng::seeded(7).bytes(100), Rng::seeded(7).bytes(100));
        assert_ne!(Rng::seeded(7).bytes(16), Rng::seeded(8).bytes(16));
        assert_ne!(Rng::seeded(0).0, 0);
        assert_eq!(Rng::seeded(3).bytes(13).len(), 13);
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::seeded(1);
        for n in [1u64, 2, 7, 1000] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.index(0), 0);
        assert!(r.index(5) < 5);
    }
}
