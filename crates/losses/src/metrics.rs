//! A metrics record from a fresh batch of model samples (flow or SNF) and
//! their log-weights: the figures of [`fieldflow_stats::diagnostics`] (ESS,
//! IMH acceptance estimate, total variation, collapse, covering), the RKL
//! estimate −mean log w and the held-out NLL the model computed.

use crate::config::{TrainConfig, TrainData};
use crate::records::{MetricsRecord, StepReport};
use crate::stepper::Stepper;
use fieldflow_core::{Par, ProposalDensity, Seed, Target};
use fieldflow_stats::diagnostics::{
    collapsed, covering_fraction, ess_normalized, imh_acceptance, total_variation, COLLAPSE_FRACTION,
};
use ndarray::{Array1, Array2, ArrayView2};

/// The held-out NLL −mean log q of a model with a density (NaN without
/// held-out rows).
pub fn held_out_nll(model: &dyn ProposalDensity, held_out: Option<&Array2<f64>>, par: Par) -> f64 {
    match held_out {
        Some(h) => {
            let mut lq = Array1::zeros(h.nrows());
            model.log_q_batch(h.view(), lq.view_mut(), par);
            -lq.mean().unwrap_or(f64::NAN)
        }
        None => f64::NAN,
    }
}

/// A fresh batch of model samples with everything a metrics record needs.
pub struct SampleMetrics<'b> {
    /// The samples (rows).
    pub xs: ArrayView2<'b, f64>,
    /// Their log-weights log p̃ − log q (for an SNF: path weights).
    pub log_w: &'b [f64],
    /// The held-out NLL (NaN without held-out data).
    pub nll: f64,
    /// Uniforms of the IMH-acceptance estimate.
    pub acceptance_seed: Seed,
}

impl SampleMetrics<'_> {
    /// The metrics record at the stepper's step (see [`crate::trainer`], "Metrics").
    pub fn record(
        &self,
        config: &TrainConfig,
        stepper: &Stepper,
        target: &dyn Target,
        data: &TrainData<'_>,
        covering_threshold: Option<f64>,
        par: Par,
    ) -> MetricsRecord {
        let t = stepper.step;
        let n = self.log_w.len();
        let ess = ess_normalized(self.log_w).unwrap_or(f64::NAN);
        let acceptance = imh_acceptance(self.log_w, self.acceptance_seed);
        let rkl_estimate = -self.log_w.iter().sum::<f64>() / n as f64;
        let covering = match covering_threshold {
            Some(th) => {
                let mut lp = Array1::zeros(n);
                target.log_prob_batch(self.xs, lp.view_mut(), par);
                covering_fraction(lp.as_slice().expect("contiguous"), th)
            }
            None => f64::NAN,
        };
        let (mode_weights, true_weights, tv_distance, collapsed) = match data.modes {
            Some(m) => {
                let w_hat = m.mode_fractions(self.xs);
                match m.true_weights() {
                    Some(w) => {
                        let tv = total_variation(&w_hat, &w);
                        let c = collapsed(&w_hat, &w, COLLAPSE_FRACTION);
                        (w_hat, w, tv, c)
                    }
                    None => (w_hat, Vec::new(), f64::NAN, Vec::new()),
                }
            }
            None => (Vec::new(), Vec::new(), f64::NAN, Vec::new()),
        };
        let n_collapsed = collapsed.iter().filter(|&&c| c).count();
        let last = stepper.last.as_ref();
        let pick = |f: fn(&StepReport) -> f64| last.map(f).unwrap_or(f64::NAN);
        MetricsRecord {
            step: t,
            loss: pick(|r| r.loss),
            fkl: pick(|r| r.fkl),
            rkl: pick(|r| r.rkl),
            sm: pick(|r| r.sm),
            grad_norm: pick(|r| r.grad_norm),
            lr: config.lr_schedule.lr(config.lr, t),
            beta: config.annealing.beta(t),
            ess,
            acceptance,
            nll: self.nll,
            rkl_estimate,
            total_rejections: stepper.total_rejections,
            mode_weights,
            true_weights,
            tv_distance,
            collapsed,
            n_collapsed,
            covering,
        }
    }
}
