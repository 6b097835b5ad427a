//! Training a mixture of flows, one per mode (docs/THEORY.md §4.11;
//! the model is [`fieldflow_flows::FlowMixture`]).
//!
//! # Set-up (from the training samples, before step 0)
//! k-means ([`crate::clusters`], 8 restarts from `seed.child(5)`) splits the
//! samples into K clusters; component k gets μₖ = the cluster mean and
//! sₖ = its per-coordinate standard deviation (a coordinate with no spread
//! gets the samples' overall spread there, or 1), and the initial weights
//! are the cluster fractions (with a convolutional flow, μₖ and sₖ are
//! averaged over the sites: the map is translation invariant like the
//! flow). With `affine = "laplace"` the map is instead the Laplace
//! approximation of the mode Newton reaches from the cluster's mean
//! ([`crate::laplace`]: μₖ the mode, TₖTₖᵀ the inverse Hessian of −log p̃).
//! The cluster's rows, mapped to y = Tₖ⁻¹(x − μₖ),
//! are component k's data for the loss terms that use data. Without
//! training samples, `mixture.locate` clusters the end points of MALA
//! walkers instead ([`crate::clusters::walker_ends`], from
//! `seed.child(7)`); only a data-free loss (RKL) may then be used.
//! K itself can come from the same points: [`choose_components`] (BIC over
//! the k-means partitions the set-up would make, docs/THEORY.md §4.11).
//! With `mixture.starts` Newton begins at constant configurations instead,
//! and `mixture.boundary` adds a last component on the mode boundary
//! x_site = value ([`crate::laplace::laplace_on_boundary`], from the most
//! probable of the starts' modes), which is never trained: it stays the
//! boundary's Gaussian (its flow the identity).
//!
//! # One step t
//! Every component takes the configured loss against
//! [`fieldflow_flows::ComponentTarget`] (the target seen through its
//! affine map), with its own data minibatch (`seed.child(0).child(t).child(k)`)
//! and base noise (`seed.child(1).child(t).child(k)`); the total loss is the
//! sum of the K losses, the gradient their concatenation (zero on μ, s, π),
//! and one [`crate::Stepper`] applies the guard, clipping (of the whole gradient)
//! and Adam — per coordinate, so K independent Adams sharing a step count.
//!
//! # The weights
//! After the last step (`steps` reached) the weights are estimated by
//! importance sampling ([`fieldflow_flows::FlowMixture::estimate_weights`],
//! draws from `seed.child(6)`) and written into the parameters.
//!
//! # Metrics
//! As [`crate::Trainer`]'s, with the mixture as the model: `eval_batch`
//! mixture draws from `seed.child(2).child(t)`, IMH-acceptance uniforms
//! from `seed.child(3).child(t)`, held-out NLL under the mixture density.

use crate::clusters::walker_ends;
use crate::config::{minibatch, TrainConfig, TrainData};
use crate::exchange::Exchange;
use crate::laplace::{laplace_from_starts, laplace_new_mode};
use crate::loss::{Loss, LossError, LossInputs, LossReport};
use crate::metrics::{held_out_nll, TrainerParts};
use crate::records::{MetricsRecord, StepOutcome, TrainError, TrainerState};
use crate::run::TrainLoop;
use fieldflow_core::{ConfigError, Par, Proposal, Seed, Target};
use fieldflow_flows::{Affine, ComponentTarget, ConditionerKind, FlowMixture, Locate, MixtureConfig, WeightEstimate};
use fieldflow_stats::kmeans::{choose_k, kmeans, KChoice};
use ndarray::{Array1, Array2, Axis};

/// k-means restarts of the set-up.
const KMEANS_RESTARTS: usize = 8;
/// Seed children of the set-up: k-means, walkers.
const KMEANS_CHILD: u64 = 5;
const WALKERS_CHILD: u64 = 7;

/// The points the set-up clusters: the training samples, else the end
/// points of the `locate` walkers on `target` (module docs).
fn mode_points<'d>(
    train: Option<&'d Array2<f64>>,
    locate: Option<&Locate>,
    target: &dyn Target,
    seed: u64,
) -> Result<std::borrow::Cow<'d, Array2<f64>>, ConfigError> {
    match (train, locate) {
        (Some(t), _) => Ok(std::borrow::Cow::Borrowed(t)),
        (None, Some(l)) => Ok(std::borrow::Cow::Owned(walker_ends(
            target,
            l,
            Seed::new(seed).child(WALKERS_CHILD),
        ))),
        (None, None) => Err(ConfigError::new(
            "data",
            "none",
            "a mixture of flows finds the modes by clustering target samples: give training data, \
             or mixture.locate = { walkers, sigma, steps } to find them with MALA walkers",
        )),
    }
}

/// The number of components (at most `k_max`) that the set-up's points —
/// the training samples `train`, else the `locate` walkers' end points —
/// call for, by BIC over the very k-means partitions the set-up makes
/// ([`fieldflow_stats::kmeans::choose_k`]; `seed`: `train.seed`).
///
/// # Errors
/// No points (neither samples nor `locate`); too few points or a value
/// that is not finite.
pub fn choose_components(
    train: Option<&Array2<f64>>,
    locate: Option<&Locate>,
    target: &dyn Target,
    k_max: usize,
    seed: u64,
) -> Result<KChoice, ConfigError> {
    let points = mode_points(train, locate, target, seed)?;
    choose_k(
        points.view(),
        k_max,
        KMEANS_RESTARTS,
        Seed::new(seed).child(KMEANS_CHILD),
    )
}

/// Component k's map: the Laplace approximation from `start`, a mode the
/// components before it do not have.
fn set_laplace(
    model: &mut FlowMixture,
    k: usize,
    target: &dyn Target,
    start: ndarray::ArrayView1<f64>,
) -> Result<(), ConfigError> {
    let earlier: Vec<_> = (0..k).map(|j| model.shift(j)).collect();
    let lap = laplace_new_mode(target, start, k, &earlier).map_err(|mut e| {
        if e.problem.contains("same mode") {
            e.problem.push_str(
                " (clusters that split one mode, or walkers that all fell into one basin): use fewer components, \
                 more or wider mixture.locate walkers, or mixture.starts",
            );
        }
        e
    })?;
    model.set_affine_full(k, lap.mode.view(), lap.t.view());
    Ok(())
}

/// Trains a [`FlowMixture`] (module docs).
pub struct MixtureTrainer<'a> {
    parts: TrainerParts<'a>,
    loss: Loss,
    mixture: FlowMixture,
    target: &'a dyn Target,
    component_data: Vec<Array2<f64>>,
    params: Vec<f64>,
    /// The weight estimate of the last step (made in this process).
    weights: Option<WeightEstimate>,
}

impl<'a> MixtureTrainer<'a> {
    /// A fresh mixture of architecture `mixture` set up from the training
    /// samples (module docs), flows initialized from `init_seed`.
    ///
    /// # Errors
    /// Invalid settings; no training samples; fewer than 2 samples per
    /// component; data of the wrong width; flow and target of different
    /// dimensions.
    pub fn new(
        config: &TrainConfig,
        mixture: &MixtureConfig,
        init_seed: u64,
        target: &'a dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        let loss = config.validate()?;
        let mut model = FlowMixture::new(mixture.clone(), Seed::new(init_seed))?;
        let d = model.layout().d;
        if target.dim() != d {
            return Err(ConfigError::new(
                "target",
                format!("dim {}", target.dim()),
                format!("differs from the mixture's flows' dimension {d}"),
            )
            .into());
        }
        let parts = TrainerParts::new(config, d, model.params().len(), target, data, par)?;
        // Walker end points (mixture.locate) are locations, not samples.
        if loss.needs_data() && parts.data.train.is_none() {
            let term = if loss.w_fkl > 0.0 { "fkl" } else { "sm" };
            return Err(LossError::MissingData { term }.into());
        }
        if !mixture.starts.is_empty() {
            return Self::from_starts(parts, loss, model, target, mixture);
        }
        let train = mode_points(parts.data.train.as_ref(), mixture.locate.as_ref(), target, config.seed)?;
        let clusters = kmeans(
            train.view(),
            mixture.components,
            KMEANS_RESTARTS,
            Seed::new(config.seed).child(KMEANS_CHILD),
        )?;
        let overall = train.std_axis(Axis(0), 1.0);
        let mut component_data = Vec::with_capacity(mixture.components);
        // A convolutional flow is translation invariant on its periodic
        // lattice: so is its affine map (site averages of the cluster's
        // mean and variance), or the noise of per-site estimates from a few
        // configurations would break the symmetry the flow relies on.
        let lattice = mixture.flow.conditioner.kind == ConditionerKind::Conv;
        for k in 0..mixture.components {
            if mixture.affine == Affine::Laplace {
                // The full map of the mode Newton reaches from the cluster's mean.
                set_laplace(&mut model, k, target, clusters.means[k].view())?;
            } else {
                let mut scale: Array1<f64> = clusters.stds[k]
                    .iter()
                    .zip(&overall)
                    .map(|(&s, &o)| {
                        if s > 0.0 {
                            s
                        } else if o > 0.0 {
                            o
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let mut mu = clusters.means[k].clone();
                if lattice {
                    let n = d as f64;
                    let (m, v) = (mu.sum() / n, scale.mapv(|v| v * v).sum() / n);
                    mu.fill(m);
                    scale.fill(v.sqrt());
                }
                model.set_affine(k, mu.view(), scale.view());
            }
            let rows: Vec<usize> = (0..train.nrows()).filter(|&i| clusters.labels[i] == k).collect();
            component_data.push(model.affine_map(k).batch_to_y(train.select(Axis(0), &rows).view()));
        }
        let counts: Vec<f64> = clusters.counts.iter().map(|&c| c as f64).collect();
        model.set_weights(&counts);
        Ok(Self::assembled(parts, loss, model, target, component_data))
    }

    /// The trainer of a set-up mixture and its components' data.
    fn assembled(
        parts: TrainerParts<'a>,
        loss: Loss,
        model: FlowMixture,
        target: &'a dyn Target,
        component_data: Vec<Array2<f64>>,
    ) -> Self {
        let params = model.params().to_vec();
        MixtureTrainer {
            parts,
            loss,
            mixture: model,
            target,
            component_data,
            params,
            weights: None,
        }
    }

    /// The set-up from `mixture.starts`: Newton from c·𝟙 per component, and
    /// with `mixture.boundary` a last component on the boundary (Newton from
    /// the most probable of those modes, [`laplace_on_boundary`]); equal
    /// initial weights, no data (a data term is refused).
    fn from_starts(
        parts: TrainerParts<'a>,
        loss: Loss,
        mut model: FlowMixture,
        target: &'a dyn Target,
        mixture: &MixtureConfig,
    ) -> Result<Self, TrainError> {
        if loss.needs_data() {
            return Err(ConfigError::new(
                "mixture.starts",
                format!("{:?}", mixture.starts),
                "components from starts have no data: use a data-free loss (rkl)",
            )
            .into());
        }
        let d = model.layout().d;
        let gaussians = laplace_from_starts(target, d, &mixture.starts, mixture.boundary).map_err(|mut e| {
            if e.field == "boundary" {
                e.field = "mixture.boundary".into();
            }
            e
        })?;
        for (k, lap) in gaussians.iter().enumerate() {
            model.set_affine_full(k, lap.mode.view(), lap.t.view());
        }
        model.set_weights(&vec![1.0; mixture.components]);
        let no_data = vec![Array2::zeros((0, d)); mixture.components];
        Ok(Self::assembled(parts, loss, model, target, no_data))
    }

    /// The mixture being trained.
    pub fn mixture(&self) -> &FlowMixture {
        &self.mixture
    }

    /// The summed loss of step `t` over the components (module docs).
    fn evaluate(&self, t: u64) -> Result<LossReport, TrainError> {
        let root = self.parts.root();
        let beta = self.parts.config.annealing.beta(t);
        let b = self.parts.config.batch_size;
        let layout = self.mixture.layout();
        let loss = self.parts.config.loss_at(self.loss, t);
        let mut total = LossReport {
            total: 0.0,
            fkl: 0.0,
            rkl: 0.0,
            sm: 0.0,
            fkl_is: 0.0,
            grad: vec![0.0; layout.len()],
            log_w: Vec::new(),
        };
        // A boundary component (the last) keeps its Gaussian: reverse KL
        // would slide it off the boundary, down into the heavier mode.
        let trained = layout.k - usize::from(self.mixture.config().boundary.is_some());
        for k in 0..trained {
            let flow = self.mixture.flow(k);
            let data = self
                .loss
                .needs_data()
                .then(|| minibatch(&self.component_data[k], b, root.child(0).child(t).child(k as u64)));
            let noise = self.loss.needs_noise().then(|| {
                let mut z = Array2::zeros((b, layout.d));
                flow.sample_base_batch(root.child(1).child(t).child(k as u64), z.view_mut(), self.parts.par);
                z
            });
            let inputs = LossInputs {
                data: data.as_ref().map(|x| x.view()),
                noise: noise.as_ref().map(|z| z.view()),
            };
            let component = ComponentTarget::new(self.target, &self.mixture, k);
            let r = loss.value_and_grad(flow, &component, inputs, beta, self.parts.par)?;
            total.total += r.total;
            total.fkl += r.fkl;
            total.rkl += r.rkl;
            total.sm += r.sm;
            total.fkl_is += r.fkl_is;
            total.grad[layout.theta(k)].copy_from_slice(&r.grad);
        }
        Ok(total)
    }

    /// One training step (module docs); after the last one, the weights.
    ///
    /// # Errors
    /// As [`crate::Trainer::step`]; a [`ConfigError`] if no component draw
    /// has a finite target density at the weight estimate.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let t = self.parts.next_step()?;
        let report = self.evaluate(t)?;
        let outcome = self.parts.apply(t, &mut self.params, report);
        self.mixture.set_params(&self.params);
        if self.parts.step_index() == self.parts.config.steps {
            self.update_weights()?;
        }
        Ok(outcome)
    }

    /// Estimates the weights with the current components and stores them.
    fn update_weights(&mut self) -> Result<(), TrainError> {
        let est = self.mixture.estimate_weights(
            self.target,
            self.parts.data.modes,
            self.parts.root().child(6),
            self.parts.par,
        )?;
        self.mixture.set_weights(&est.weights);
        self.params.copy_from_slice(self.mixture.params());
        self.weights = Some(est);
        Ok(())
    }

    /// A metrics record at the current parameters (module docs).
    pub fn metrics(&self) -> MetricsRecord {
        let t = self.parts.step_index();
        let root = self.parts.root();
        let n = self.parts.config.eval_batch;
        let d = self.mixture.layout().d;
        let mut xs = Array2::zeros((n, d));
        let mut lq = Array1::zeros(n);
        self.mixture
            .draw_batch(root.child(2).child(t), xs.view_mut(), lq.view_mut(), self.parts.par);
        let mut lp = Array1::zeros(n);
        self.target.log_prob_batch(xs.view(), lp.view_mut(), self.parts.par);
        let log_w: Vec<f64> = lp.iter().zip(&lq).map(|(p, q)| p - q).collect();
        let nll = held_out_nll(&self.mixture, self.parts.data.held_out.as_ref(), self.parts.par);
        self.parts.record(self.target, xs.view(), &log_w, nll)
    }
}

impl TrainLoop for MixtureTrainer<'_> {
    fn mixture_weights(&self) -> Option<&WeightEstimate> {
        self.weights.as_ref()
    }
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        MixtureTrainer::step(self)
    }
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        if exchange.size() > 1 {
            return Err(TrainError::NotDistributed("a mixture of flows"));
        }
        MixtureTrainer::step(self)
    }
    fn metrics(&mut self) -> MetricsRecord {
        MixtureTrainer::metrics(self)
    }
    fn state(&self) -> TrainerState {
        self.parts.state(&self.params)
    }
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.parts.restore(&mut self.params, state)?;
        self.mixture.set_params(&self.params);
        Ok(())
    }
    fn step_index(&self) -> u64 {
        self.parts.step_index()
    }
    fn total_rejections(&self) -> u64 {
        self.parts.stepper.total_rejections
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LossConfig, LossPreset};
    use fieldflow_flows::FlowConfig;

    /// Two clusters of 4 × 4 fields around ±0.8 with site-dependent noise:
    /// with a convolutional flow every component's affine map is uniform
    /// over the sites (translation invariant), with the clusters' site
    /// averages; the weights start at the cluster fractions.
    #[test]
    fn a_lattice_mixture_has_translation_invariant_affine_maps() {
        let lattice = fieldflow_lattice::Lattice::new(&[4, 4]).unwrap();
        let target = fieldflow_lattice::Phi4::new(lattice, -4.0, 4.0).unwrap();
        let mut rng = Seed::new(4).rng();
        let xs = Array2::from_shape_fn((30, 16), |(i, j)| {
            let sign = if i < 20 { 1.0 } else { -1.0 };
            sign * 0.8 + 0.1 * (1.0 + j as f64 / 8.0) * (rand::Rng::random::<f64>(&mut rng) - 0.5)
        });
        let cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 8, 2, 1e-3);
        let mixture = MixtureConfig {
            components: 2,
            flow: FlowConfig::tutorial(4),
            weight_samples: 16,
            locate: None,
            affine: Default::default(),
            starts: Vec::new(),
            boundary: None,
        };
        let data = TrainData {
            train: Some(xs.clone()),
            held_out: None,
            modes: None,
        };
        let t = MixtureTrainer::new(&cfg, &mixture, 1, &target, data, Par::serial(8)).unwrap();
        let m = t.mixture();
        for k in 0..2 {
            let (mu, ls) = (m.shift(k), m.log_scale(k));
            assert!(
                mu.iter().all(|v| *v == mu[0]) && ls.iter().all(|v| *v == ls[0]),
                "{mu} {ls}"
            );
            assert!((mu[0].abs() - 0.8).abs() < 0.02, "site-averaged mean {}", mu[0]);
        }
        let mut w: Vec<f64> = m.log_weights().iter().map(|l| l.exp()).collect();
        w.sort_by(f64::total_cmp);
        assert!(
            (w[0] - 1.0 / 3.0).abs() < 1e-12 && (w[1] - 2.0 / 3.0).abs() < 1e-12,
            "{w:?}"
        );
    }
}
