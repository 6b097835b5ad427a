//! Binary coupling masks (docs/THEORY.md §4.3).
//!
//! A mask m ∈ {0, 1}ᴰ splits x into the *frozen* part A = {i : mᵢ = 1},
//! which conditions the layer and passes through unchanged, and the
//! *transformed* part B = {i : mᵢ = 0}. Consecutive layers alternate the
//! roles so that every coordinate is transformed.
//!
//! * checkerboard (lattices, any d): site x is frozen in layer k when
//!   (Σ_μ x_μ + k) is even, coordinates row-major;
//! * halves (vectors): layer k freezes the first ⌊D/2⌋ coordinates when k
//!   is even, the others when k is odd;
//! * random (vectors): layer pair (2j, 2j+1) draws a fixed random subset of
//!   ⌊D/2⌋ coordinates from stream j of the mask seed; layer 2j freezes it,
//!   layer 2j+1 its complement.

use fieldflow_core::Seed;
use rand::seq::SliceRandom;

/// Checkerboard mask of layer `layer` on a periodic lattice of extents `shape`.
pub fn checkerboard(shape: &[usize], layer: usize) -> Vec<bool> {
    let d = shape.len();
    let v: usize = shape.iter().product();
    (0..v)
        .map(|site| {
            let mut rem = site;
            let mut parity = layer;
            for mu in (0..d).rev() {
                parity += rem % shape[mu];
                rem /= shape[mu];
            }
            parity.is_multiple_of(2)
        })
        .collect()
}

/// Alternating-halves mask of layer `layer` in `dim` dimensions.
pub fn halves(dim: usize, layer: usize) -> Vec<bool> {
    (0..dim).map(|i| (i < dim / 2) == layer.is_multiple_of(2)).collect()
}

/// Fixed random mask of layer `layer` in `dim` dimensions from `seed`.
pub fn random(dim: usize, layer: usize, seed: u64) -> Vec<bool> {
    let mut perm: Vec<usize> = (0..dim).collect();
    let mut rng = Seed::new(seed).child(0x6d61_736b).with_stream((layer / 2) as u64).rng();
    perm.shuffle(&mut rng);
    let mut m = vec![layer % 2 == 1; dim];
    for &i in &perm[..dim / 2] {
        m[i] = layer.is_multiple_of(2);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_alternate_and_cover_every_coordinate() {
        let cb0 = checkerboard(&[4, 4], 0);
        let cb1 = checkerboard(&[4, 4], 1);
        assert_eq!(cb0.iter().filter(|&&m| m).count(), 8);
        assert!(cb0.iter().zip(&cb1).all(|(a, b)| a != b));
        assert!(cb0[0] && !cb0[1] && !cb0[4] && cb0[5]);
        let cb3 = checkerboard(&[2, 2, 2], 0);
        assert_eq!(cb3, vec![true, false, false, true, false, true, true, false]);
        let h0 = halves(5, 0);
        assert_eq!(h0, vec![true, true, false, false, false]);
        assert!(h0.iter().zip(&halves(5, 1)).all(|(a, b)| a != b));
        let r0 = random(10, 2, 7);
        let r1 = random(10, 3, 7);
        assert_eq!(r0.iter().filter(|&&m| m).count(), 5);
        assert!(r0.iter().zip(&r1).all(|(a, b)| a != b));
        assert_eq!(r0, random(10, 2, 7));
        assert_ne!(r0, random(10, 0, 7));
    }
}
