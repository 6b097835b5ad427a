//! Periodic hypercubic lattices in d = 1..4 dimensions (docs/THEORY.md §2.1).
//!
//! A lattice has extents `shape = [L₀, …, L_{d−1}]` (any positive integers, not
//! necessarily equal) and V = Π_μ L_μ sites. Site x = (x₀, …, x_{d−1}) has the
//! **row-major** index
//!
//! i(x) = Σ_μ x_μ s_μ,  s_{d−1} = 1,  s_μ = s_{μ+1} L_{μ+1},
//!
//! so the last axis runs fastest and a field stored as a flat `Vec<f64>` of
//! length V is exactly an array of shape `[L₀, …, L_{d−1}]` (an HDF5 dataset
//! `[n_chains, n_cfg, L₀, …, L_{d−1}]` reshapes to `[n_chains, n_cfg, V]`
//! without copying). Axis 0 is called "time" by the observables.
//!
//! Boundary conditions are periodic: x + μ̂ wraps x_μ = L_μ − 1 to 0. The
//! forward and backward neighbour tables hold i(x ± μ̂) at `[i·d + μ]`.
//!
//! **Checkerboard parity** is (Σ_μ x_μ) mod 2. It is a proper two-colouring
//! (no two neighbours share a colour) only if every extent is even or equal
//! to 1 ([`Lattice::is_bipartite`]); with an odd extent L_μ ≥ 3 the sites
//! x_μ = L_μ − 1 and x_μ = 0 are neighbours of equal parity. The local
//! Metropolis sweep of this crate visits the even sites, then the odd ones,
//! *one after another with the current neighbour values*, so it is a valid
//! sequential sweep for any extents (for odd extents it is simply a
//! sequential sweep in colour order); see [`crate::metropolis`].

use fieldflow_core::ConfigError;

/// The largest number of dimensions supported.
pub const MAX_DIM: usize = 4;

/// The largest number of sites accepted (neighbour tables are stored as u32).
pub const MAX_VOLUME: usize = u32::MAX as usize;

/// A d-dimensional periodic lattice with row-major site indices and
/// precomputed neighbour tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lattice {
    shape: Vec<usize>,
    strides: Vec<usize>,
    volume: usize,
    fwd: Vec<u32>,
    bwd: Vec<u32>,
}

impl Lattice {
    /// Builds the lattice of extents `shape`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field `lattice` if `shape` is empty, has
    /// more than [`MAX_DIM`] axes, has a zero extent, or more than
    /// [`MAX_VOLUME`] sites.
    pub fn new(shape: &[usize]) -> Result<Self, ConfigError> {
        let shown = format!("{shape:?}");
        if shape.is_empty() {
            return Err(ConfigError::new("lattice", shown, "needs at least one axis"));
        }
        if shape.len() > MAX_DIM {
            return Err(ConfigError::new(
                "lattice",
                shown,
                format!("at most {MAX_DIM} dimensions are supported"),
            ));
        }
        if shape.contains(&0) {
            return Err(ConfigError::new("lattice", shown, "every extent must be >= 1"));
        }
        let volume = shape
            .iter()
            .try_fold(1usize, |v, &l| v.checked_mul(l))
            .filter(|&v| v <= MAX_VOLUME)
            .ok_or_else(|| ConfigError::new("lattice", &shown, format!("more than {MAX_VOLUME} sites")))?;
        let d = shape.len();
        let mut strides = vec![1usize; d];
        for mu in (0..d.saturating_sub(1)).rev() {
            strides[mu] = strides[mu + 1] * shape[mu + 1];
        }
        let mut fwd = vec![0u32; volume * d];
        let mut bwd = vec![0u32; volume * d];
        let mut coords = vec![0usize; d];
        for i in 0..volume {
            for mu in 0..d {
                let l = shape[mu];
                let s = strides[mu];
                let base = i - coords[mu] * s;
                fwd[i * d + mu] = (base + ((coords[mu] + 1) % l) * s) as u32;
                bwd[i * d + mu] = (base + ((coords[mu] + l - 1) % l) * s) as u32;
            }
            // Increment the row-major multi-index (last axis fastest).
            for mu in (0..d).rev() {
                coords[mu] += 1;
                if coords[mu] < shape[mu] {
                    break;
                }
                coords[mu] = 0;
            }
        }
        Ok(Lattice {
            shape: shape.to_vec(),
            strides,
            volume,
            fwd,
            bwd,
        })
    }

    /// Number of dimensions d.
    pub fn dim(&self) -> usize {
        self.shape.len()
    }

    /// Number of sites V = Π_μ L_μ.
    pub fn volume(&self) -> usize {
        self.volume
    }

    /// Extents [L₀, …, L_{d−1}].
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Row-major strides: i(x) = Σ_μ x_μ `strides[μ]`.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Site index of coordinates `x` (each reduced modulo its extent).
    ///
    /// # Panics
    /// If `x.len() != d`.
    pub fn index(&self, x: &[usize]) -> usize {
        assert_eq!(x.len(), self.dim(), "coordinate length differs from d");
        x.iter()
            .zip(&self.shape)
            .zip(&self.strides)
            .map(|((&c, &l), &s)| (c % l) * s)
            .sum()
    }

    /// Coordinates of site `i` written into `x` (length d).
    ///
    /// # Panics
    /// If `x.len() != d` or `i >= V`.
    pub fn coords(&self, i: usize, x: &mut [usize]) {
        assert_eq!(x.len(), self.dim(), "coordinate length differs from d");
        assert!(i < self.volume, "site index out of range");
        for mu in 0..self.dim() {
            x[mu] = (i / self.strides[mu]) % self.shape[mu];
        }
    }

    /// Index of x + μ̂ (periodic).
    #[inline]
    pub fn fwd(&self, i: usize, mu: usize) -> usize {
        self.fwd[i * self.shape.len() + mu] as usize
    }

    /// Index of x − μ̂ (periodic).
    #[inline]
    pub fn bwd(&self, i: usize, mu: usize) -> usize {
        self.bwd[i * self.shape.len() + mu] as usize
    }

    /// The forward neighbour table: entry `[i·d + μ]` is i(x + μ̂).
    pub fn fwd_table(&self) -> &[u32] {
        &self.fwd
    }

    /// The backward neighbour table: entry `[i·d + μ]` is i(x − μ̂).
    pub fn bwd_table(&self) -> &[u32] {
        &self.bwd
    }

    /// Checkerboard parity (Σ_μ x_μ) mod 2 of site `i`.
    pub fn parity(&self, i: usize) -> usize {
        (0..self.dim())
            .map(|mu| (i / self.strides[mu]) % self.shape[mu])
            .sum::<usize>()
            % 2
    }

    /// True if the parity colouring is proper (no neighbours of equal
    /// parity): every extent is even or 1 (an axis of extent 1 only links a
    /// site to itself, which the action treats as no link at all).
    pub fn is_bipartite(&self) -> bool {
        self.shape.iter().all(|&l| l == 1 || l % 2 == 0)
    }

    /// Site indices of parity 0 followed by those of parity 1 (each in
    /// increasing order): the visiting order of a checkerboard sweep.
    pub fn checkerboard_order(&self) -> Vec<usize> {
        let mut even: Vec<usize> = (0..self.volume).filter(|&i| self.parity(i) == 0).collect();
        even.extend((0..self.volume).filter(|&i| self.parity(i) == 1));
        even
    }

    /// A short description, e.g. `8x16`.
    pub fn describe(&self) -> String {
        self.shape.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_shapes_are_config_errors_naming_lattice() {
        for bad in [vec![], vec![4, 0], vec![2, 2, 2, 2, 2], vec![usize::MAX, 3]] {
            let e = Lattice::new(&bad).unwrap_err();
            assert_eq!(e.field, "lattice", "{e}");
        }
    }

    #[test]
    fn row_major_index_and_neighbours_of_a_non_square_lattice() {
        let lat = Lattice::new(&[3, 4, 5]).unwrap();
        assert_eq!(lat.volume(), 60);
        assert_eq!(lat.strides(), &[20, 5, 1]);
        assert_eq!(lat.index(&[1, 2, 3]), 20 + 10 + 3);
        let mut x = [0usize; 3];
        for i in 0..lat.volume() {
            lat.coords(i, &mut x);
            assert_eq!(lat.index(&x), i);
            for mu in 0..3 {
                let mut y = x;
                y[mu] = (x[mu] + 1) % lat.shape()[mu];
                assert_eq!(lat.fwd(i, mu), lat.index(&y));
                assert_eq!(lat.bwd(lat.fwd(i, mu), mu), i);
            }
        }
    }

    #[test]
    fn parity_is_a_proper_colouring_only_for_even_extents() {
        let even = Lattice::new(&[4, 6]).unwrap();
        assert!(even.is_bipartite());
        for i in 0..even.volume() {
            for mu in 0..2 {
                assert_ne!(even.parity(i), even.parity(even.fwd(i, mu)));
            }
        }
        let odd = Lattice::new(&[3, 4]).unwrap();
        assert!(!odd.is_bipartite());
        let order = odd.checkerboard_order();
        assert_eq!(order.len(), 12);
        let mut seen = order.clone();
        seen.sort();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        assert!(Lattice::new(&[1, 8]).unwrap().is_bipartite());
    }
}
