//! Reproducible random streams.
//!
//! A run has one master seed (`root`). Every independent consumer of
//! randomness (a chain, a chunk of a batch, a training step, the accept/reject
//! decisions of an IMH chain) gets its own *stream* number and draws from
//! `Seed { root, stream }.rng()`, an Xoshiro256++ generator. The generator of a
//! stream depends only on (root, stream), never on which thread runs it, so a
//! result is bit-identical for any number of threads.
//!
//! **Stream derivation (ours, docs/THEORY.md §1.3).** The usual recipe is one
//! Xoshiro `jump()` per stream.
//! Jumping to stream k costs O(k) jumps, and training needs streams indexed by
//! (step, chunk) up to ~10⁸, so instead the 256-bit state of stream k is filled
//! by SplitMix64 from a 64-bit key that mixes `root` and `stream` through the
//! SplitMix64 finalizer (a bijection of u64). Distinct (root, stream) pairs give
//! unrelated states; an overlap of two streams within 2⁶⁴ draws has probability
//! ~2⁻¹²⁸. Nested streams (step → chunk) use [`Seed::child`].

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// The random generator used throughout fieldflow.
pub type Rng = Xoshiro256PlusPlus;

/// A position in the tree of random streams of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seed {
    /// The run's master seed (or a derived key for nested streams).
    pub root: u64,
    /// The stream index under `root`.
    pub stream: u64,
}

/// SplitMix64 step: advances `state` and returns a well-mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// The SplitMix64 finalizer, a bijection on u64 with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Seed {
    /// Stream 0 of master seed `root`.
    pub fn new(root: u64) -> Self {
        Seed { root, stream: 0 }
    }

    /// The sibling stream `stream` under the same root.
    ///
    /// This *replaces* the stream index: `s.child(a).with_stream(b)` equals
    /// `s.child(b)`'s sibling family, not a stream below `a`. To go one level
    /// deeper use [`Seed::child`]: `s.child(a).child(b)`.
    pub fn with_stream(self, stream: u64) -> Self {
        Seed {
            root: self.root,
            stream,
        }
    }

    /// A fresh family of streams owned by this stream: `child(k)` for k = 0, 1, …
    /// are independent of each other and of every other stream of the run.
    pub fn child(self, stream: u64) -> Self {
        Seed {
            root: self.key(),
            stream,
        }
    }

    /// 64-bit key identifying (root, stream).
    fn key(self) -> u64 {
        let a = mix64(self.root ^ 0x6A09_E667_F3BC_C908);
        mix64(a ^ mix64(self.stream.wrapping_add(0xBB67_AE85_84CA_A73B)))
    }

    /// The Xoshiro256++ generator of this stream.
    pub fn rng(self) -> Rng {
        let mut state = self.key();
        let mut bytes = [0u8; 32];
        for word in bytes.chunks_exact_mut(8) {
            word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        Xoshiro256PlusPlus::from_seed(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn same_seed_same_bits_and_streams_differ() {
        let draw = |seed: Seed| -> Vec<u64> {
            let mut rng = seed.rng();
            (0..4).map(|_| rng.random()).collect()
        };
        assert_eq!(draw(Seed::new(7).with_stream(3)), draw(Seed::new(7).with_stream(3)));
        assert_ne!(draw(Seed::new(7).with_stream(3)), draw(Seed::new(7).with_stream(4)));
        assert_ne!(draw(Seed::new(7).child(0)), draw(Seed::new(7).with_stream(0)));
    }

    #[test]
    fn adjacent_streams_are_uncorrelated() {
        // Sample correlation of uniforms from streams k and k+1 over many k:
        // for independent streams it is N(0, 1/n); |r| < 4/sqrt(n) must hold.
        let n = 20_000;
        let (mut sxy, mut sx, mut sy, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for k in 0..n {
            let x: f64 = Seed::new(1).with_stream(k).rng().random();
            let y: f64 = Seed::new(1).with_stream(k + 1).rng().random();
            sxy += x * y;
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
        }
        let nf = n as f64;
        let cov = sxy / nf - sx / nf * sy / nf;
        let r = cov / ((sxx / nf - (sx / nf).powi(2)) * (syy / nf - (sy / nf).powi(2))).sqrt();
        assert!(r.abs() < 4.0 / nf.sqrt(), "r = {r}");
    }
}
