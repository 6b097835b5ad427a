//! The densities the estimators sample: a target with an external linear
//! field, restricted to a half-space, with one coordinate clamped
//! (docs/THEORY.md §6.13).
//!
//! For a target p̃ on ℝᴰ, a linear collective variable g·x, a field h, a
//! region R (an intersection of half-spaces {x : c·x ≥ 0} or {c·x < 0} of
//! linear variables c) and a clamp x_k = u,
//!
//! log π(y) = log p̃(x) + h g·x   if x ∈ R,   −∞ otherwise,
//!
//! with x = (y₁ … y_{k−1}, u, y_k … y_{D−1}) ∈ ℝᴰ when a coordinate is clamped
//! (π then lives on ℝᴰ⁻¹) and x = y otherwise. Its score is the score of
//! p̃ e^{h g·x} without the clamped component; outside R the score is the
//! unrestricted one, so that an HMC trajectory may pass through the
//! excluded region and is rejected only if it ends there (the leapfrog map is
//! a reversible, volume-preserving proposal whatever the density, so
//! Metropolis with π = p̃ e^{h g·x} 1_R is exact).
//!
//! A region is how a metastable phase is sampled *exactly*: a chain in a
//! phase separated by a barrier of tens of nats would practically never
//! leave it, but "practically" is not a statement about the stationary law;
//! the restriction makes the restricted law the chain's stationary law, and
//! the chain runner ([`crate::chains`]) counts the proposals rejected for
//! ending outside R, so a run shows whether the restriction ever acted.

use fieldflow_core::Target;
use ndarray::{ArrayView1, ArrayViewMut1};
use std::cell::RefCell;

/// A linear collective variable ξ(x) = Σᵢ wᵢ xᵢ.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearCv {
    /// The weights w (length D).
    pub weights: Vec<f64>,
}

impl LinearCv {
    /// ξ(x) = xₖ in D dimensions.
    pub fn coordinate(dim: usize, k: usize) -> Self {
        let mut weights = vec![0.0; dim];
        weights[k] = 1.0;
        LinearCv { weights }
    }

    /// ξ(x) = Σᵢ xᵢ (the magnetization of a field) in D dimensions.
    pub fn sum(dim: usize) -> Self {
        LinearCv {
            weights: vec![1.0; dim],
        }
    }

    /// ξ(x).
    pub fn value(&self, x: &[f64]) -> f64 {
        self.weights.iter().zip(x).map(|(w, v)| w * v).sum()
    }
}

/// Which side of ξ = 0 a half-space keeps. As in the `Modes` of the targets,
/// ξ = 0 belongs to the positive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// ξ < 0.
    Negative,
    /// ξ ≥ 0.
    Positive,
}

impl Side {
    /// Whether the value ξ is on this side.
    pub fn contains(self, xi: f64) -> bool {
        match self {
            Side::Negative => xi < 0.0,
            Side::Positive => xi >= 0.0,
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Negative => Side::Positive,
            Side::Positive => Side::Negative,
        }
    }
}

/// A half-space {x : ξ(x) on `side` of 0}.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfSpace {
    /// The variable whose sign defines the region.
    pub cv: LinearCv,
    /// The side kept.
    pub side: Side,
}

impl HalfSpace {
    /// Whether x lies in the region.
    pub fn contains(&self, x: &[f64]) -> bool {
        self.side.contains(self.cv.value(x))
    }
}

/// An external linear field: log p̃ gains h·(g·x).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Strength h.
    pub h: f64,
    /// Direction g.
    pub g: LinearCv,
}

/// A clamped coordinate x_k = u.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    /// The coordinate k.
    pub site: usize,
    /// Its value u.
    pub value: f64,
}

thread_local! {
    /// Per-thread buffers (the full state x and the full score), so that a
    /// clamped density allocates nothing per evaluation.
    static FULL: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A target with a field, a region and a clamp (see the module docs).
pub struct Conditioned<'a> {
    base: &'a dyn Target,
    field: Option<Field>,
    region: Vec<HalfSpace>,
    clamp: Option<Clamp>,
}

impl<'a> Conditioned<'a> {
    /// `base` itself.
    pub fn new(base: &'a dyn Target) -> Self {
        Conditioned {
            base,
            field: None,
            region: Vec::new(),
            clamp: None,
        }
    }

    /// With the external field `field`.
    ///
    /// # Panics
    /// If the field's direction does not have the base's dimension.
    pub fn with_field(mut self, field: Field) -> Self {
        assert_eq!(
            field.g.weights.len(),
            self.base.dim(),
            "field direction of the wrong dimension"
        );
        self.field = Some(field);
        self
    }

    /// Restricted to the intersection of `region` with any region given
    /// before.
    ///
    /// # Panics
    /// If a half-space's variable does not have the base's dimension.
    pub fn with_region(mut self, region: &[HalfSpace]) -> Self {
        for h in region {
            assert_eq!(
                h.cv.weights.len(),
                self.base.dim(),
                "region variable of the wrong dimension"
            );
            self.region.push(h.clone());
        }
        self
    }

    /// With coordinate `clamp.site` fixed at `clamp.value`.
    ///
    /// # Panics
    /// If the site is not a coordinate of the base.
    pub fn with_clamp(mut self, clamp: Clamp) -> Self {
        assert!(clamp.site < self.base.dim(), "clamped site out of range");
        self.clamp = Some(clamp);
        self
    }

    /// The full state x ∈ ℝᴰ of a state y of this density.
    pub fn embed(&self, y: &[f64], x: &mut Vec<f64>) {
        x.clear();
        match self.clamp {
            None => x.extend_from_slice(y),
            Some(c) => {
                x.extend_from_slice(&y[..c.site]);
                x.push(c.value);
                x.extend_from_slice(&y[c.site..]);
            }
        }
    }

    /// The state y of this density for a full state x (drops the clamped
    /// coordinate).
    pub fn project(&self, x: &[f64]) -> Vec<f64> {
        match self.clamp {
            None => x.to_vec(),
            Some(c) => x
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != c.site)
                .map(|(_, v)| *v)
                .collect(),
        }
    }

    /// Whether the full state x lies in the region (true without one).
    pub fn in_region(&self, x: &[f64]) -> bool {
        self.region.iter().all(|r| r.contains(x))
    }

    /// Calls `f(x, log p̃(x) + h g·x, ∇ₓ[log p̃ + h g·x])` at the full state of y
    /// (per-thread buffers, no allocation after the first call).
    pub fn with_full<R>(&self, y: &[f64], f: impl FnOnce(&[f64], f64, &[f64]) -> R) -> R {
        FULL.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (x, s) = &mut *bufs;
            self.embed(y, x);
            s.resize(x.len(), 0.0);
            let mut lp = self
                .base
                .log_prob_and_score(ArrayView1::from(&x[..]), ArrayViewMut1::from(&mut s[..]));
            if let Some(field) = &self.field {
                lp += field.h * field.g.value(x);
                for (si, gi) in s.iter_mut().zip(&field.g.weights) {
                    *si += field.h * gi;
                }
            }
            f(x, lp, s)
        })
    }
}

impl Target for Conditioned<'_> {
    fn dim(&self) -> usize {
        self.base.dim() - usize::from(self.clamp.is_some())
    }

    fn log_prob(&self, y: ArrayView1<f64>) -> f64 {
        let y = y.as_slice().expect("contiguous state");
        self.with_full(y, |x, lp, _| if self.in_region(x) { lp } else { f64::NEG_INFINITY })
    }

    fn log_prob_and_score(&self, y: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let y = y.as_slice().expect("contiguous state");
        let skip = self.clamp.map(|c| c.site);
        self.with_full(y, |x, lp, s| {
            let mut j = 0;
            for (i, v) in s.iter().enumerate() {
                if Some(i) != skip {
                    score[j] = *v;
                    j += 1;
                }
            }
            if self.in_region(x) {
                lp
            } else {
                f64::NEG_INFINITY
            }
        })
    }

    fn describe(&self) -> String {
        let mut d = self.base.describe();
        if let Some(f) = &self.field {
            d.push_str(&format!("; external field h = {}", f.h));
        }
        for r in &self.region {
            d.push_str(&format!("; restricted to the {:?} side of a linear variable", r.side));
        }
        if let Some(c) = self.clamp {
            d.push_str(&format!("; x[{}] clamped at {}", c.site, c.value));
        }
        d
    }
}
