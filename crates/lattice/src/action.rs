//! The lattice φ⁴ action as a [`Target`] (docs/THEORY.md §2.2, §2.3).
//!
//! Internally every model is in the standard (Albergo–Kanwar–Shanahan) form
//!
//! S(φ) = Σₓ [ Σ_μ (φ(x+μ̂) − φ(x))² + m² φ(x)² + λ φ(x)⁴ ]      (THEORY §2.2)
//!
//! with force ∂S/∂φ(x) = 2 Σ_μ (2φ(x) − φ(x+μ̂) − φ(x−μ̂)) + 2m² φ(x) + 4λ φ(x)³,
//! both computed in one pass by the kernel of `kernel` (private). As a target,
//! log p̃(φ) = −S(φ) and the score is −∂S/∂φ; the dimension is V.
//!
//! **Hessian-vector products** ([`HessianVector`], energy u = S):
//!
//! (∇²S v)(x) = 2(2d + m²) v(x) − 2 Σ_μ (v(x+μ̂) + v(x−μ̂)) + 12λ φ(x)² v(x),
//!
//! read from the neighbour tables. It holds for every extent: with L_μ = 2,
//! x+μ̂ = x−μ̂ and both terms are summed; with L_μ = 1 the self-links
//! −4v(x) cancel the 4v(x) of the 2·2d. Since a hopping-form model is
//! stored in standard form, the same formula covers it (in the variable φ).
//!
//! **Hopping form (docs/THEORY.md §2.3).** A config may instead give (κ, λ̂) for
//! S(ϕ) = Σₓ [ −2κ Σ_μ ϕ(x)ϕ(x+μ̂) + (1 − 2λ̂) ϕ(x)² + λ̂ ϕ(x)⁴ ].
//! It is converted at the config boundary by φ = √κ ϕ:
//!
//! m² = (1 − 2λ̂)/κ − 2d,   λ = λ̂/κ²,
//!
//! which makes the two actions equal, S_hop(ϕ) = S(√κ ϕ), with no additive
//! constant. The sampled variable is always φ; divide by √κ
//! ([`Phi4::to_hopping_field`]) to get ϕ. The densities differ by the Jacobian
//! dφ = κ^{V/2} dϕ, so log Z_hop = log Z − (V/2) log κ
//! ([`Phi4::log_z_hopping_shift`]).
//!
//! **Admissible couplings.** λ ≥ 0 and finite; if λ = 0 then m² > 0 (else
//! the Gaussian is not normalizable); κ > 0; everything finite.

use crate::free_field::FreeField;
use crate::geometry::Lattice;
use crate::kernel::{action_and_force, KernelCouplings};
use fieldflow_core::{ConfigError, HessianVector, Target};
use ndarray::{ArrayView1, ArrayViewMut1};
use serde::{Deserialize, Serialize};
use std::ops::{Index, IndexMut};

/// User-facing φ⁴ configuration: the lattice shape and EITHER the standard
/// couplings (`m2`, `lambda`) OR the hopping couplings (`kappa`,
/// `lambda_hat`). Validated into a [`Phi4`] by [`Phi4Config::validate`].
///
/// TOML example: `lattice = [8, 8]`, `m2 = -4.0`, `lambda = 8.0`; or
/// `lattice = [16, 16]`, `kappa = 0.27`, `lambda_hat = 0.022`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phi4Config {
    /// Lattice extents [L₀, …, L_{d−1}], d = 1..4.
    pub lattice: Vec<usize>,
    /// Bare mass squared m² (standard form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m2: Option<f64>,
    /// Quartic coupling λ ≥ 0 (standard form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// Hopping parameter κ > 0 (hopping form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa: Option<f64>,
    /// Quartic coupling λ̂ ≥ 0 of the hopping form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_hat: Option<f64>,
}

/// The coupling form a model was specified in (kept for provenance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CouplingForm {
    /// Given as (m², λ).
    Standard,
    /// Given as (κ, λ̂), converted by (2d + m²)κ = 1 − 2λ̂, λ = λ̂/κ².
    Hopping {
        /// κ.
        kappa: f64,
        /// λ̂.
        lambda_hat: f64,
    },
}

impl Phi4Config {
    /// Standard-form config.
    pub fn standard(lattice: &[usize], m2: f64, lambda: f64) -> Self {
        Phi4Config {
            lattice: lattice.to_vec(),
            m2: Some(m2),
            lambda: Some(lambda),
            ..Default::default()
        }
    }

    /// Hopping-form config.
    pub fn hopping(lattice: &[usize], kappa: f64, lambda_hat: f64) -> Self {
        Phi4Config {
            lattice: lattice.to_vec(),
            kappa: Some(kappa),
            lambda_hat: Some(lambda_hat),
            ..Default::default()
        }
    }

    /// Checks the config and builds the target.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `phi4.lattice`, `phi4.m2`, `phi4.lambda`,
    /// `phi4.kappa` or `phi4.lambda_hat` for an impossible lattice, a
    /// missing/mixed coupling form, non-finite values, λ < 0, κ ≤ 0, or
    /// m² ≤ 0 with λ = 0.
    pub fn validate(&self) -> Result<Phi4, ConfigError> {
        let lattice = Lattice::new(&self.lattice).map_err(|e| ConfigError {
            field: "phi4.lattice".into(),
            ..e
        })?;
        let d = lattice.dim() as f64;
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(ConfigError::new(name, v, "must be finite"))
            }
        };
        let (m2, lambda, form) = match (self.m2, self.lambda, self.kappa, self.lambda_hat) {
            (Some(m2), Some(lambda), None, None) => (
                finite("phi4.m2", m2)?,
                finite("phi4.lambda", lambda)?,
                CouplingForm::Standard,
            ),
            (None, None, Some(kappa), Some(lambda_hat)) => {
                let kappa = finite("phi4.kappa", kappa)?;
                let lambda_hat = finite("phi4.lambda_hat", lambda_hat)?;
                if kappa <= 0.0 {
                    return Err(ConfigError::new("phi4.kappa", kappa, "must be > 0"));
                }
                if lambda_hat < 0.0 {
                    return Err(ConfigError::new("phi4.lambda_hat", lambda_hat, "must be >= 0"));
                }
                let m2 = (1.0 - 2.0 * lambda_hat) / kappa - 2.0 * d;
                let lambda = lambda_hat / (kappa * kappa);
                (
                    finite("phi4.kappa", m2)?,
                    finite("phi4.kappa", lambda)?,
                    CouplingForm::Hopping { kappa, lambda_hat },
                )
            }
            (m2, lambda, kappa, lambda_hat) => {
                let given: Vec<&str> = [
                    ("m2", m2.is_some()),
                    ("lambda", lambda.is_some()),
                    ("kappa", kappa.is_some()),
                    ("lambda_hat", lambda_hat.is_some()),
                ]
                .iter()
                .filter(|(_, g)| *g)
                .map(|(n, _)| *n)
                .collect();
                let field = if m2.is_some() || lambda.is_some() {
                    "phi4.m2"
                } else {
                    "phi4.kappa"
                };
                return Err(ConfigError::new(
                    field,
                    format!("{{{}}}", given.join(", ")),
                    "give exactly one of (m2, lambda) or (kappa, lambda_hat)",
                ));
            }
        };
        Phi4::with_form(lattice, m2, lambda, form)
    }
}

/// The φ⁴ target in standard form: lattice, m², λ (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Phi4 {
    lattice: Lattice,
    m2: f64,
    lambda: f64,
    form: CouplingForm,
}

impl Phi4 {
    /// A standard-form model; same checks as [`Phi4Config::validate`].
    ///
    /// # Errors
    /// λ < 0, m² ≤ 0 with λ = 0, or non-finite couplings.
    pub fn new(lattice: Lattice, m2: f64, lambda: f64) -> Result<Self, ConfigError> {
        Self::with_form(lattice, m2, lambda, CouplingForm::Standard)
    }

    fn with_form(lattice: Lattice, m2: f64, lambda: f64, form: CouplingForm) -> Result<Self, ConfigError> {
        let (m2_field, lambda_field) = match form {
            CouplingForm::Standard => ("phi4.m2", "phi4.lambda"),
            CouplingForm::Hopping { .. } => ("phi4.kappa", "phi4.lambda_hat"),
        };
        if !m2.is_finite() {
            return Err(ConfigError::new(m2_field, m2, "must be finite"));
        }
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(ConfigError::new(lambda_field, lambda, "must be finite and >= 0"));
        }
        if lambda == 0.0 && m2 <= 0.0 {
            return Err(ConfigError::new(
                m2_field,
                m2,
                "with lambda = 0 the mass squared must be > 0 (the action is unbounded below)",
            ));
        }
        Ok(Phi4 {
            lattice,
            m2,
            lambda,
            form,
        })
    }

    /// The lattice.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// m² (standard form).
    pub fn m2(&self) -> f64 {
        self.m2
    }

    /// λ (standard form).
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The form the couplings were given in.
    pub fn form(&self) -> CouplingForm {
        self.form
    }

    fn couplings(&self) -> KernelCouplings {
        KernelCouplings {
            a: 2.0 * self.lattice.dim() as f64 + self.m2,
            lambda: self.lambda,
        }
    }

    /// S(φ) of a field stored as a slice of length V.
    ///
    /// # Panics
    /// If `phi.len() != V`.
    pub fn action(&self, phi: &[f64]) -> f64 {
        action_and_force(&self.lattice, self.couplings(), phi, None, 1.0)
    }

    /// Writes ∂S/∂φ into `force` and returns S(φ), in one pass.
    ///
    /// # Panics
    /// If `phi` or `force` do not have length V.
    pub fn action_and_force(&self, phi: &[f64], force: &mut [f64]) -> f64 {
        action_and_force(&self.lattice, self.couplings(), phi, Some(force), 1.0)
    }

    /// Writes the score −∂S/∂φ into `score` and returns S(φ), in one pass.
    ///
    /// # Panics
    /// If `phi` or `score` do not have length V.
    pub fn action_and_score(&self, phi: &[f64], score: &mut [f64]) -> f64 {
        action_and_force(&self.lattice, self.couplings(), phi, Some(score), -1.0)
    }

    /// Kinetic part Σₓ Σ_μ (φ(x+μ̂) − φ(x))² and potential part
    /// Σₓ (m² φ² + λ φ⁴) of the action (they add up to S).
    ///
    /// # Panics
    /// If `phi.len() != V`.
    pub fn action_parts(&self, phi: &[f64]) -> (f64, f64) {
        assert_eq!(phi.len(), self.lattice.volume(), "field length differs from V");
        let d = self.lattice.dim();
        let mut kinetic = 0.0;
        let mut potential = 0.0;
        for (i, &x) in phi.iter().enumerate() {
            for mu in 0..d {
                let diff = phi[self.lattice.fwd(i, mu)] - x;
                kinetic += diff * diff;
            }
            let x2 = x * x;
            potential += x2 * (self.m2 + self.lambda * x2);
        }
        (kinetic, potential)
    }

    /// The free-field oracle of this model if λ = 0 (then m² > 0).
    pub fn free_field(&self) -> Option<FreeField> {
        (self.lambda == 0.0).then(|| {
            FreeField::new(self.lattice.shape(), self.m2)
                .expect("validated: lattice is valid and m2 > 0 when lambda = 0")
        })
    }

    /// ϕ = φ/√κ for a hopping-form model (identity for the standard form).
    pub fn to_hopping_field(&self, phi: &[f64], out: &mut [f64]) {
        let s = match self.form {
            CouplingForm::Standard => 1.0,
            CouplingForm::Hopping { kappa, .. } => 1.0 / kappa.sqrt(),
        };
        for (o, &p) in out.iter_mut().zip(phi) {
            *o = s * p;
        }
    }

    /// log Z_hop − log Z = −(V/2) log κ for a hopping-form model (0 for the
    /// standard form): add it to the log Z of φ to get that of ϕ.
    pub fn log_z_hopping_shift(&self) -> f64 {
        match self.form {
            CouplingForm::Standard => 0.0,
            CouplingForm::Hopping { kappa, .. } => -0.5 * self.lattice.volume() as f64 * kappa.ln(),
        }
    }
}

impl Target for Phi4 {
    fn dim(&self) -> usize {
        self.lattice.volume()
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        match x.as_slice() {
            Some(s) => -self.action(s),
            None => -self.action(&x.to_vec()),
        }
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let owned;
        let phi = match x.as_slice() {
            Some(s) => s,
            None => {
                owned = x.to_vec();
                &owned
            }
        };
        match score.as_slice_mut() {
            Some(out) => -self.action_and_score(phi, out),
            None => {
                let mut tmp = vec![0.0; phi.len()];
                let s = self.action_and_score(phi, &mut tmp);
                for (o, t) in score.iter_mut().zip(tmp) {
                    *o = t;
                }
                -s
            }
        }
    }

    /// Exact for the free field (λ = 0), in the variable φ: docs/THEORY.md §2.4.
    fn log_z(&self) -> Option<f64> {
        self.free_field().map(|f| f.log_z())
    }

    fn describe(&self) -> String {
        let hop = match self.form {
            CouplingForm::Standard => String::new(),
            CouplingForm::Hopping { kappa, lambda_hat } => {
                format!(" (from kappa = {kappa}, lambda_hat = {lambda_hat})")
            }
        };
        format!(
            "phi4: L = {}, d = {}, m2 = {}, lambda = {}{}",
            self.lattice.describe(),
            self.lattice.dim(),
            self.m2,
            self.lambda,
            hop
        )
    }
}

impl HessianVector for Phi4 {
    /// (∇²S v)(x) = 2(2d + m²) v(x) − 2 Σ_μ (v(x+μ̂) + v(x−μ̂)) + 12λ φ(x)² v(x)
    /// (see the module docs); no allocation, contiguous views take a slice
    /// fast path.
    ///
    /// # Panics
    /// If `x`, `v` or `out` do not have length V.
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        let vol = self.lattice.volume();
        assert_eq!(x.len(), vol, "field length differs from V");
        assert_eq!(v.len(), vol, "v length differs from V");
        assert_eq!(out.len(), vol, "out length differs from V");
        match (x.as_slice(), v.as_slice()) {
            (Some(xs), Some(vs)) => match out.as_slice_mut() {
                Some(os) => self.hvp_into(xs, vs, os),
                None => self.hvp_into(xs, vs, &mut out),
            },
            _ => self.hvp_into(&x, &v, &mut out),
        }
    }
}

impl Phi4 {
    /// The kernel of [`HessianVector::hvp`] for any indexable storage.
    fn hvp_into<X, V, O>(&self, x: &X, v: &V, out: &mut O)
    where
        X: Index<usize, Output = f64> + ?Sized,
        V: Index<usize, Output = f64> + ?Sized,
        O: IndexMut<usize, Output = f64> + ?Sized,
    {
        let d = self.lattice.dim();
        let two_a = 2.0 * (2.0 * d as f64 + self.m2);
        let twelve_lambda = 12.0 * self.lambda;
        let fwd = self.lattice.fwd_table();
        let bwd = self.lattice.bwd_table();
        for i in 0..self.lattice.volume() {
            let mut nsum = 0.0;
            for mu in 0..d {
                nsum += v[fwd[i * d + mu] as usize] + v[bwd[i * d + mu] as usize];
            }
            let p = x[i];
            out[i] = (two_a + twelve_lambda * p * p) * v[i] - 2.0 * nsum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::Seed;
    use rand::Rng as _;

    /// Direct transcription of the difference form of docs/THEORY.md §2.2.
    fn reference_action(lat: &Lattice, m2: f64, lambda: f64, phi: &[f64]) -> f64 {
        let mut s = 0.0;
        for i in 0..lat.volume() {
            for mu in 0..lat.dim() {
                s += (phi[lat.fwd(i, mu)] - phi[i]).powi(2);
            }
            s += m2 * phi[i].powi(2) + lambda * phi[i].powi(4);
        }
        s
    }

    /// Direct transcription of the hopping form of docs/THEORY.md §2.3.
    fn hopping_action(lat: &Lattice, kappa: f64, lambda_hat: f64, varphi: &[f64]) -> f64 {
        let mut s = 0.0;
        for i in 0..lat.volume() {
            for mu in 0..lat.dim() {
                s -= 2.0 * kappa * varphi[i] * varphi[lat.fwd(i, mu)];
            }
            s += (1.0 - 2.0 * lambda_hat) * varphi[i].powi(2) + lambda_hat * varphi[i].powi(4);
        }
        s
    }

    fn random_field(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Seed::new(seed).rng();
        (0..n).map(|_| rng.random_range(-1.5..1.5)).collect()
    }

    const SHAPES: [&[usize]; 10] = [
        &[7],
        &[2],
        &[1, 5],
        &[8, 16],
        &[5, 3],
        &[4, 4],
        &[3, 4, 5],
        &[2, 2, 6],
        &[2, 3, 4, 5],
        &[4, 1, 3, 6],
    ];

    #[test]
    fn kernel_action_equals_difference_form_and_parts_add_up() {
        for (k, shape) in SHAPES.iter().enumerate() {
            let t = Phi4Config::standard(shape, -1.3, 0.7).validate().unwrap();
            let phi = random_field(t.dim(), k as u64);
            let s = t.action(&phi);
            let r = reference_action(t.lattice(), -1.3, 0.7, &phi);
            assert!((s - r).abs() < 1e-12 * r.abs().max(1.0), "{shape:?}: {s} vs {r}");
            let (kin, pot) = t.action_parts(&phi);
            assert!((kin + pot - r).abs() < 1e-12 * r.abs().max(1.0));
            let mut f = vec![0.0; t.dim()];
            assert_eq!(t.action_and_force(&phi, &mut f), s);
        }
    }

    #[test]
    fn force_matches_central_finite_differences_in_d_1_to_4() {
        for (k, shape) in SHAPES.iter().enumerate() {
            let t = Phi4Config::standard(shape, 0.4, 1.1).validate().unwrap();
            let phi = random_field(t.dim(), 100 + k as u64);
            let mut force = vec![0.0; t.dim()];
            let mut score = vec![0.0; t.dim()];
            t.action_and_force(&phi, &mut force);
            t.action_and_score(&phi, &mut score);
            let fd = fieldflow_testkit::central_gradient(
                |p| reference_action(t.lattice(), 0.4, 1.1, p),
                &phi,
                fieldflow_testkit::FD_STEP,
            );
            for (i, &fd) in fd.iter().enumerate() {
                let rel = (force[i] - fd).abs() / force[i].abs().max(1.0);
                assert!(rel < 1e-7, "{shape:?} site {i}: {} vs {fd}", force[i]);
                assert_eq!(score[i], -force[i]);
            }
        }
    }

    #[test]
    fn hessian_vector_products_match_score_differences() {
        use ndarray::Array1;
        // d = 1, 2, 3 (with extents 1 and 2), broken and symmetric phases,
        // the free field and two hopping-form models.
        let models = [
            Phi4Config::standard(&[7], -1.3, 0.7),
            Phi4Config::standard(&[2], 0.4, 1.1),
            Phi4Config::standard(&[6, 4], -4.0, 8.0),
            Phi4Config::standard(&[2, 2], 0.5, 0.0),
            Phi4Config::standard(&[1, 5], -1.0, 0.3),
            Phi4Config::standard(&[3, 4, 5], 0.4, 1.1),
            Phi4Config::standard(&[2, 2, 6], -2.0, 2.5),
            Phi4Config::hopping(&[6, 4], 0.21, 0.035),
            Phi4Config::hopping(&[2, 3, 2], 0.27, 0.022),
        ];
        let mut worst: f64 = 0.0;
        for (k, cfg) in models.iter().enumerate() {
            let t = cfg.validate().unwrap();
            for j in 0..5 {
                let seed = 1000 + 10 * k as u64 + j;
                let x = Array1::from(random_field(t.dim(), seed));
                let v = Array1::from(random_field(t.dim(), seed + 500));
                let err = fieldflow_testkit::hvp_rel_err(
                    x.as_slice().unwrap(),
                    v.as_slice().unwrap(),
                    |out| t.hvp(x.view(), v.view(), out.into()),
                    |y, s| t.log_prob_and_score(y.into(), s.into()),
                );
                assert!(err < 1e-6, "{}: relative error {err:e}", t.describe());
                worst = worst.max(err);
                // Non-contiguous views take the generic path, bit for bit.
                let mut out = Array1::zeros(t.dim());
                t.hvp(x.view(), v.view(), out.view_mut());
                let mut x2 = ndarray::Array2::zeros((t.dim(), 2));
                let mut v2 = ndarray::Array2::zeros((t.dim(), 2));
                x2.column_mut(1).assign(&x);
                v2.column_mut(1).assign(&v);
                let mut out2 = ndarray::Array2::from_elem((t.dim(), 2), f64::NAN);
                t.hvp(x2.column(1), v2.column(1), out2.column_mut(1));
                assert_eq!(out2.column(1), out);
                let mut out3 = ndarray::Array2::from_elem((t.dim(), 2), f64::NAN);
                t.hvp(x.view(), v.view(), out3.column_mut(0));
                assert_eq!(out3.column(0), out);
            }
        }
        println!("lattice phi4: max hvp relative error {worst:e}");
    }

    #[test]
    fn hopping_and_standard_forms_give_the_same_action() {
        for shape in [&[6usize, 4][..], &[3, 4, 5], &[5]] {
            let (kappa, lambda_hat) = (0.21, 0.035);
            let t = Phi4Config::hopping(shape, kappa, lambda_hat).validate().unwrap();
            let d = shape.len() as f64;
            assert!(((2.0 * d + t.m2()) * kappa - (1.0 - 2.0 * lambda_hat)).abs() < 1e-14);
            assert!((t.lambda() - lambda_hat / kappa.powi(2)).abs() < 1e-12);
            let varphi = random_field(t.dim(), 7);
            let phi: Vec<f64> = varphi.iter().map(|v| kappa.sqrt() * v).collect();
            let s_hop = hopping_action(t.lattice(), kappa, lambda_hat, &varphi);
            let s_std = t.action(&phi);
            assert!(
                (s_hop - s_std).abs() < 1e-11 * s_hop.abs().max(1.0),
                "{s_hop} vs {s_std}"
            );
            let mut back = vec![0.0; t.dim()];
            t.to_hopping_field(&phi, &mut back);
            assert!(back.iter().zip(&varphi).all(|(a, b)| (a - b).abs() < 1e-14));
            assert!(t.describe().contains("kappa"));
        }
    }

    #[test]
    fn invalid_couplings_are_config_errors() {
        let l = [4usize, 4];
        let field = |c: Phi4Config| c.validate().unwrap_err().field;
        assert_eq!(field(Phi4Config::standard(&l, 1.0, -0.1)), "phi4.lambda");
        assert_eq!(field(Phi4Config::standard(&l, 0.0, 0.0)), "phi4.m2");
        assert_eq!(field(Phi4Config::standard(&l, -1.0, 0.0)), "phi4.m2");
        assert_eq!(field(Phi4Config::standard(&l, f64::NAN, 1.0)), "phi4.m2");
        assert_eq!(field(Phi4Config::hopping(&l, 0.0, 0.1)), "phi4.kappa");
        assert_eq!(field(Phi4Config::hopping(&l, -0.2, 0.1)), "phi4.kappa");
        assert_eq!(field(Phi4Config::hopping(&l, 0.2, -0.1)), "phi4.lambda_hat");
        assert_eq!(field(Phi4Config::standard(&[], 1.0, 1.0)), "phi4.lattice");
        let mixed = Phi4Config {
            kappa: Some(0.1),
            ..Phi4Config::standard(&l, 1.0, 1.0)
        };
        assert!(mixed.validate().is_err());
        assert!(Phi4Config {
            lattice: vec![4],
            ..Default::default()
        }
        .validate()
        .is_err());
        // Valid: broken phase, and the free field.
        let t = Phi4Config::standard(&[8, 8], -4.0, 8.0).validate().unwrap();
        assert_eq!(t.describe(), "phi4: L = 8x8, d = 2, m2 = -4, lambda = 8");
        assert!(t.log_z().is_none());
        assert!(Phi4Config::standard(&l, 0.5, 0.0).validate().unwrap().log_z().is_some());
    }

    #[test]
    fn toml_like_configs_deserialize_and_reject_unknown_fields() {
        let c: Phi4Config = serde_json::from_str(r#"{"lattice": [8, 16], "kappa": 0.2, "lambda_hat": 0.01}"#).unwrap();
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<Phi4Config>(r#"{"lattice": [8], "mass": 1}"#).is_err());
    }
}
