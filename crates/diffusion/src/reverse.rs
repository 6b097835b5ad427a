//! Reverse-time samplers (docs/THEORY.md §6.11.5): from the prior
//! N(0, v_prior I) at t = 1 down to t_min on a uniform grid of `steps`
//! steps of size h, with the score s(x, t).
//!
//! * Reverse SDE dx = [f x − g² s] dt + g dW̄, by
//!   - [`Integrator::EulerMaruyama`]: x' = x − h (f x − g² s) + g √h ξ;
//!   - [`Integrator::ExponentialEuler`]: the linear drift integrated exactly
//!     with f, g² and s frozen at t: with φ = −f h,
//!     x' = e^φ x + h (e^φ − 1)/φ · g² s + √(h g² (e^{2φ} − 1)/(2φ)) ξ
//!     (= Euler–Maruyama when f = 0).
//! * Probability-flow ODE dx/dt = f x − ½ g² s ([`Integrator::ProbabilityFlowHeun`],
//!   Heun's second-order rule); deterministic, so the density of its output
//!   follows from the Jacobian of the map: log q(x₀) = log N(x₁) − log|det ∂x₀/∂x₁|.
//!
//! For a linear score every step multiplies mode k by a number μ_k and adds
//! independent noise of variance ν (0 for the ODE), so the output is exactly
//! Gaussian with eigenvalues v ← μ_k² v + ν from v = v_prior
//! ([`ReverseSampler::generated_variances`]), and the ODE's log-det is
//! Σ_steps Σ_k ln|μ_k|. Both make the sampler an exact density model: IMH and
//! importance sampling can correct its bias.
//!
//! A non-linear score (the cubic term of [`crate::Architecture::LocalCubic`],
//! the network of [`crate::Architecture::LocalNet`]) has no closed-form
//! law. The ODE's log q then integrates the divergence,
//! log|det ∂x'/∂x| ≈ −(h/2)[div v(x, t) + div v(x̃, t − h)] per Heun step,
//! with div v = V f − ½ g² (tr M + 3c Σ_i x_i² + div n), the network's
//! divergence div n exact ([`crate::net`]): second order in h, not
//! exact, so IMH and importance sampling keep an O(h²) bias (measured in
//! the tests and in docs/RESULTS.md). The SDE integrators give no log q
//! for a non-linear score (NaN).

use crate::model::FieldScore;
use crate::net::NetWork;
use crate::oracle::GaussianField;
use crate::schedule::NoiseSchedule;
use crate::spectrum::SpectrumWork;
use fieldflow_core::{ConfigError, Par, Seed};
use ndarray::{Array1, Array2, ArrayViewMut1, ArrayViewMut2, Axis};
use rand::Rng as _;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// How the reverse process is discretized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
    /// Exponential integrator on the reverse SDE.
    ExponentialEuler,
    /// Heun's rule on the probability-flow ODE.
    ProbabilityFlowHeun,
}

/// A reverse-time sampler.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseSampler {
    /// The forward process being reversed.
    pub schedule: NoiseSchedule,
    /// The discretization.
    pub integrator: Integrator,
    /// Number of steps from t = 1 to t_min.
    pub steps: usize,
    /// Where sampling stops (0 < t_min < 1).
    pub t_min: f64,
}

/// Output of [`ReverseSampler::sample`].
#[derive(Debug, Clone)]
pub struct Generated {
    /// One field per row.
    pub xs: Array2<f64>,
    /// log q of every row (exact for a linear score).
    pub log_q: Array1<f64>,
}

/// s += c x³ (the on-site cubic term of a non-linear score).
fn add_cubic(c: f64, x: &[f64], s: &mut [f64]) {
    if c != 0.0 {
        for (sv, &xv) in s.iter_mut().zip(x) {
            *sv += c * xv * xv * xv;
        }
    }
}

/// Per-step coefficients shared by every row: x' = a x + b·s(x, t) + √ν ξ
/// for the SDE integrators; the ODE uses the drift terms directly.
#[derive(Debug, Clone, Copy)]
struct StepCoeffs {
    t: f64,
    a: f64,
    b: f64,
    noise_var: f64,
}

impl ReverseSampler {
    /// Checks steps ≥ 1, 0 < t_min < 1 and the schedule.
    ///
    /// # Errors
    /// Naming the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.schedule.validate()?;
        if self.steps == 0 {
            return Err(ConfigError::new("sampler.steps", self.steps, "must be > 0"));
        }
        if !(self.t_min > 0.0 && self.t_min < 1.0) {
            return Err(ConfigError::new("sampler.t_min", self.t_min, "must be in (0, 1)"));
        }
        Ok(())
    }

    fn h(&self) -> f64 {
        (1.0 - self.t_min) / self.steps as f64
    }

    /// Start time of step `i` (i = 0 starts at t = 1).
    fn time(&self, i: usize) -> f64 {
        1.0 - i as f64 * self.h()
    }

    fn sde_coeffs(&self, i: usize) -> StepCoeffs {
        let (t, h) = (self.time(i), self.h());
        let (f, g2) = (self.schedule.drift(t), self.schedule.g2(t));
        match self.integrator {
            Integrator::EulerMaruyama | Integrator::ProbabilityFlowHeun => StepCoeffs {
                t,
                a: 1.0 - h * f,
                b: h * g2,
                noise_var: h * g2,
            },
            Integrator::ExponentialEuler => {
                let phi = -f * h;
                let (e1, e2) = if phi == 0.0 {
                    (1.0, 1.0)
                } else {
                    (phi.exp_m1() / phi, (2.0 * phi).exp_m1() / (2.0 * phi))
                };
                StepCoeffs {
                    t,
                    a: phi.exp(),
                    b: h * e1 * g2,
                    noise_var: h * g2 * e2,
                }
            }
        }
    }

    /// κ_k(t) = f(t) − ½ g²(t) m_k(t), the ODE's drift per mode.
    fn ode_rate(&self, t: f64, m: f64) -> f64 {
        self.schedule.drift(t) - 0.5 * self.schedule.g2(t) * m
    }

    /// Eigenvalues of the covariance of the generated fields (exact for the
    /// discrete sampler with this linear score).
    ///
    /// # Panics
    /// For a non-linear score.
    pub fn generated_variances(&self, score: &impl FieldScore) -> Vec<f64> {
        assert!(score.is_linear(), "a non-linear score generates a non-Gaussian law");
        let v = score.spectrum().volume();
        let mut var = vec![self.schedule.prior_variance(); v];
        let (mut m, mut m2) = (vec![0.0; v], vec![0.0; v]);
        for i in 0..self.steps {
            self.mode_factors(score, i, &mut m, &mut m2, |k, mu, nu| var[k] = mu * mu * var[k] + nu);
        }
        var
    }

    /// log|det ∂x₀/∂x₁| of the ODE sampler (Σ over steps and modes of ln|μ_k|).
    ///
    /// # Panics
    /// If the integrator is not the probability-flow ODE.
    pub fn ode_log_det(&self, score: &impl FieldScore) -> f64 {
        assert_eq!(
            self.integrator,
            Integrator::ProbabilityFlowHeun,
            "only the ODE is a bijection"
        );
        let v = score.spectrum().volume();
        let (mut m, mut m2) = (vec![0.0; v], vec![0.0; v]);
        let mut total = 0.0;
        for i in 0..self.steps {
            self.mode_factors(score, i, &mut m, &mut m2, |_, mu, _| total += mu.abs().ln());
        }
        total
    }

    /// Calls `f(k, μ_k, ν)` for step i.
    fn mode_factors(
        &self,
        score: &impl FieldScore,
        i: usize,
        m: &mut [f64],
        m_next: &mut [f64],
        mut f: impl FnMut(usize, f64, f64),
    ) {
        let c = self.sde_coeffs(i);
        score.multipliers(c.t, m);
        if self.integrator == Integrator::ProbabilityFlowHeun {
            let t_next = c.t - self.h();
            score.multipliers(t_next, m_next);
            let h = self.h();
            for k in 0..m.len() {
                let k1 = self.ode_rate(c.t, m[k]);
                let k2 = self.ode_rate(t_next, m_next[k]);
                f(k, 1.0 - 0.5 * h * (k1 + k2 * (1.0 - h * k1)), 0.0);
            }
        } else {
            for (k, &mk) in m.iter().enumerate() {
                f(k, c.a + c.b * mk, c.noise_var);
            }
        }
    }

    /// Draws `n` fields with their log q. Row noise comes from one stream
    /// per (step, chunk) of `par`: bit-identical for any thread count.
    pub fn sample(&self, score: &impl FieldScore, n: usize, seed: Seed, par: Par) -> Generated {
        let spectrum = score.spectrum();
        let v = spectrum.volume();
        let prior_sd = self.schedule.prior_variance().sqrt();
        let mut xs = Array2::<f64>::zeros((n, v));
        let mut log_q = Array1::<f64>::zeros(n);
        // Prior draws (stream 0 of the seed's children).
        let init = seed.child(0);
        par.rows_mut_to_values(xs.view_mut(), log_q.view_mut(), |chunk, _, mut rows, mut lq| {
            let mut rng = init.child(chunk as u64).rng();
            for (mut row, l) in rows.axis_iter_mut(Axis(0)).zip(lq.iter_mut()) {
                let mut q = 0.0;
                for x in row.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *x = prior_sd * z;
                    q += z * z;
                }
                *l = -0.5 * q - v as f64 * (prior_sd.ln() + 0.5 * std::f64::consts::TAU.ln());
            }
        });
        self.transport(score, xs.view_mut(), log_q.view_mut(), seed, par);
        Generated { xs, log_q }
    }

    /// Runs the reverse process on prior draws `xs` (rows, modified in
    /// place) whose log prior density is in `log_q`; on return `log_q`
    /// holds log q of the outputs (see the module docs; NaN for a
    /// non-linear score with an SDE integrator). SDE noise from the streams
    /// `seed.child(1 + step).child(chunk)`.
    pub fn transport(
        &self,
        score: &impl FieldScore,
        mut xs: ArrayViewMut2<f64>,
        mut log_q: ArrayViewMut1<f64>,
        seed: Seed,
        par: Par,
    ) {
        let spectrum = score.spectrum();
        let v = spectrum.volume();
        let linear = score.is_linear();
        // Rows are independent: each chunk runs all steps with buffers of its
        // own (no allocation per step); the multipliers of a step are
        // recomputed per chunk, a cost of O(V) against the chunk's FFTs.
        par.rows_mut_to_values(xs.view_mut(), log_q.view_mut(), |chunk, _, mut rows, mut lq| {
            let mut work = SpectrumWork::default();
            let mut net = NetWork::default();
            let (mut m, mut m_next) = (vec![0.0; v], vec![0.0; v]);
            let (mut s, mut tmp, mut v1) = (vec![0.0; v], vec![0.0; v], vec![0.0; v]);
            for i in 0..self.steps {
                let c = self.sde_coeffs(i);
                score.multipliers(c.t, &mut m);
                let t_next = c.t - self.h();
                if self.integrator == Integrator::ProbabilityFlowHeun {
                    score.multipliers(t_next, &mut m_next);
                }
                let (c1, c2) = (score.cubic(c.t), score.cubic(t_next));
                // tr M(t) = Σ_k m_k(t), for the divergence of a non-linear score.
                let (tr1, tr2) = (m.iter().sum::<f64>(), m_next.iter().sum::<f64>());
                let mut rng = seed.child(1 + i as u64).child(chunk as u64).rng();
                for (mut row, l) in rows.axis_iter_mut(Axis(0)).zip(lq.iter_mut()) {
                    let x = row.as_slice_mut().expect("rows are contiguous");
                    spectrum.apply(&m, x, &mut s, &mut work);
                    add_cubic(c1, x, &mut s);
                    let net1 = score.add_network(c.t, x, &mut s, &mut net);
                    if self.integrator == Integrator::ProbabilityFlowHeun {
                        let h = self.h();
                        let (f1, g1) = (self.schedule.drift(c.t), self.schedule.g2(c.t));
                        let (f2, g2) = (self.schedule.drift(t_next), self.schedule.g2(t_next));
                        // tmp = x̃ = x − h v(x, t); s ← v(x, t).
                        for ((tm, sv), &xv) in tmp.iter_mut().zip(s.iter_mut()).zip(x.iter()) {
                            *sv = f1 * xv - 0.5 * g1 * *sv;
                            *tm = xv - h * *sv;
                        }
                        v1.copy_from_slice(&s);
                        spectrum.apply(&m_next, &tmp, &mut s, &mut work);
                        add_cubic(c2, &tmp, &mut s);
                        let net2 = score.add_network(t_next, &tmp, &mut s, &mut net);
                        if !linear {
                            // log|det| of the step by the trapezoid rule on the
                            // divergence: div v = V f − ½ g² (tr M + 3c Σ x² + div n).
                            let div = |f: f64, g2: f64, tr: f64, c: f64, dn: f64, y: &[f64]| {
                                v as f64 * f - 0.5 * g2 * (tr + 3.0 * c * y.iter().map(|a| a * a).sum::<f64>() + dn)
                            };
                            *l += 0.5 * h * (div(f1, g1, tr1, c1, net1, x) + div(f2, g2, tr2, c2, net2, &tmp));
                        }
                        for ((xv, &v1k), (&tk, &sk)) in x.iter_mut().zip(&v1).zip(tmp.iter().zip(&s)) {
                            let v2 = f2 * tk - 0.5 * g2 * sk;
                            *xv -= 0.5 * h * (v1k + v2);
                        }
                    } else {
                        let sd = c.noise_var.sqrt();
                        for (xv, &sv) in x.iter_mut().zip(&s) {
                            let z: f64 = rng.sample(StandardNormal);
                            *xv = c.a * *xv + c.b * sv + sd * z;
                        }
                    }
                }
            }
        });
        match (self.integrator, linear) {
            (Integrator::ProbabilityFlowHeun, true) => {
                let log_det = self.ode_log_det(score);
                log_q.mapv_inplace(|l| l - log_det);
            }
            // Non-linear ODE: the divergence integral is already in log_q.
            (Integrator::ProbabilityFlowHeun, false) => {}
            // Non-linear SDE: no tractable density.
            (_, false) => log_q.fill(f64::NAN),
            (_, true) => {
                let var = self.generated_variances(score);
                par.rows_to_values(xs.view(), log_q.view_mut(), |_, _, rows, mut lq| {
                    let mut work = SpectrumWork::default();
                    for (row, l) in rows.axis_iter(Axis(0)).zip(lq.iter_mut()) {
                        let x = row.as_slice().expect("rows are contiguous");
                        *l = GaussianField::gaussian_log_density(spectrum, &var, x, &mut work);
                    }
                });
            }
        }
    }
}
