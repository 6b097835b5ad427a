//! The flow trainer: one optimizer step at a time, metrics on demand,
//! plain-data state for checkpoints. It never prints and never
//! touches files; a [`crate::TrainRun`] (or any caller) decides when to
//! step, record metrics and checkpoint.
//!
//! # One step (step index t = 0, 1, …, counting rejected steps too)
//! 1. β = annealing.β(t), η = lr_schedule.η(lr, t), and the FKL weight
//!    times fkl_decay.φ(t) when a decay is configured;
//! 2. data minibatch: `batch_size` distinct rows (all rows if there are
//!    fewer) drawn from stream `seed.child(0).child(t)`;
//!    base noise z: `batch_size` rows from `seed.child(1).child(t)`
//!    ([`Flow::sample_base_batch`]);
//! 3. L and ∂L/∂θ ([`Loss::value_and_grad`]; with the batch shared among
//!    processes, [`Trainer::step_sharded`], bit-identically);
//! 4. **guard**: if L or any gradient entry is non-finite the step is
//!    *rejected*: parameters and Adam state unchanged, the rejection counted
//!    and reported; after `max_consecutive_rejections` consecutive
//!    rejections [`Trainer::step`] returns [`TrainError::TooManyRejections`]
//!    (and keeps doing so), with the last good parameters intact;
//! 5. otherwise the gradient is clipped to `clip_grad_norm` (the pre-clip
//!    norm is reported) and Adam updates θ; should the update itself produce
//!    a non-finite parameter (overflow at absurd learning rates), it is
//!    undone and the step rejected the same way.
//!
//! Because every random draw is a function of (seed, t), the complete
//! trainer state is plain data ([`TrainerState`]: θ, Adam moments, t,
//! rejection counters); restoring it continues bit-identically.
//!
//! # Metrics (docs/THEORY.md §8), [`Trainer::metrics`]
//! A fresh batch of `eval_batch` flow samples from `seed.child(2).child(t)`
//! gives, at β = 1 and with log w = log p̃ − log q:
//! * the normalized ESS (Σw)²/(N Σw²);
//! * the estimated IMH acceptance: the independence-Metropolis rule
//!   accept ⇔ ln u < log w(x′) − log w(x) run sequentially through the batch
//!   (the first sample starts the chain; uniforms from
//!   `seed.child(3).child(t)`), accepted / (N − 1), with the rule for
//!   non-finite weights of [`fieldflow_stats::diagnostics`];
//! * the RKL estimate mean(log q − log p̃) = KL(q‖p) − log Z;
//! * NLL = −mean log q on all held-out rows (when given);
//! * for targets with modes: the flow's mode weights (fractions of the
//!   batch), the total-variation distance ½ Σ|ŵ − w| to the true weights,
//!   collapse per mode (ŵₖ < ½ wₖ) and covering, the fraction of flow
//!   samples whose log p̃ lies below the 0.1 % quantile of log p̃ over the
//!   held-out samples (or, without held-out data, the training data).
//!
//! Unavailable numbers are NaN, so every record has the same columns.

use crate::config::{check_spline_base, minibatch, TrainConfig, TrainData};
use crate::exchange::{Exchange, SingleProcess};
use crate::loss::{Loss, LossError, LossInputs, LossReport};
use crate::metrics::{held_out_nll, TrainerParts};
use crate::records::{MetricsRecord, StepOutcome, TrainError, TrainerState};
use crate::run::TrainLoop;
use fieldflow_core::{ConfigError, Par, Target};
use fieldflow_flows::{Flow, FlowLayer, ScoreLayer};
use ndarray::Array2;

/// Trains a flow (module docs). `L` is the layer type (affine couplings).
pub struct Trainer<'a, L: ScoreLayer = FlowLayer> {
    parts: TrainerParts<'a>,
    loss: Loss,
    flow: Flow<L>,
    target: &'a dyn Target,
}

impl<'a, L: ScoreLayer> Trainer<'a, L> {
    /// A trainer starting from the flow's current parameters.
    ///
    /// # Errors
    /// An invalid `config`; data needed by the loss but absent; data or
    /// held-out rows of the wrong width or empty; flow and target of
    /// different dimensions; spline couplings trained by score matching on
    /// flow samples from a base much narrower than the data
    /// ([`crate::check_spline_base`]) (all before any work is done).
    pub fn new(
        config: &TrainConfig,
        flow: Flow<L>,
        target: &'a dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        let loss = config.validate()?;
        let d = flow.dim();
        if target.dim() != d {
            return Err(ConfigError::new(
                "target",
                format!("dim {}", target.dim()),
                format!("differs from the flow's dimension {d}"),
            )
            .into());
        }
        let parts = TrainerParts::new(config, d, flow.n_params(), target, data, par)?;
        check_spline_base(flow.config(), &loss, parts.data.train.as_ref())?;
        if loss.needs_data() && parts.data.train.is_none() {
            let term = if loss.w_fkl > 0.0 { "fkl" } else { "sm" };
            return Err(LossError::MissingData { term }.into());
        }
        Ok(Trainer {
            parts,
            loss,
            flow,
            target,
        })
    }

    /// The flow being trained.
    pub fn flow(&self) -> &Flow<L> {
        &self.flow
    }

    /// Consumes the trainer, returning the flow.
    pub fn into_flow(self) -> Flow<L> {
        self.flow
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.parts.config
    }

    /// The resolved loss.
    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    /// Next step index (steps attempted so far, rejected ones included).
    pub fn step_index(&self) -> u64 {
        self.parts.step_index()
    }

    /// Rejected steps since the start.
    pub fn total_rejections(&self) -> u64 {
        self.parts.stepper.total_rejections
    }

    /// log p̃ threshold of the covering figure, when target samples exist.
    pub fn covering_threshold(&self) -> Option<f64> {
        self.parts.covering_threshold
    }

    /// Whether training has stopped on too many consecutive rejections.
    pub fn stopped(&self) -> bool {
        self.parts.stepper.stopped(&self.parts.config)
    }

    /// Evaluates the loss of step `t` at the current parameters (no update).
    ///
    /// # Errors
    /// [`TrainError::Loss`] if the loss cannot be evaluated.
    pub fn evaluate(&self, t: u64) -> Result<LossReport, TrainError> {
        self.evaluate_sharded(t, &mut SingleProcess)
    }

    /// [`Trainer::evaluate`] with the batch shared among the processes of
    /// `exchange` ([`Loss::value_and_grad_exchanged`]).
    fn evaluate_sharded(&self, t: u64, exchange: &mut dyn Exchange) -> Result<LossReport, TrainError> {
        let (minibatch, noise) = self.step_inputs(t);
        let inputs = LossInputs {
            data: minibatch.as_ref().map(|x| x.view()),
            noise: noise.as_ref().map(|z| z.view()),
        };
        let beta = self.parts.config.annealing.beta(t);
        Ok(self.parts.config.loss_at(self.loss, t).value_and_grad_exchanged(
            &self.flow,
            self.target,
            inputs,
            beta,
            self.parts.par,
            exchange,
        )?)
    }

    /// The data minibatch and base noise of step `t` (module docs, step 2).
    fn step_inputs(&self, t: u64) -> (Option<Array2<f64>>, Option<Array2<f64>>) {
        let root = self.parts.root();
        let b = self.parts.config.batch_size;
        let minibatch = if self.loss.needs_data() {
            let x = self.parts.data.train.as_ref().expect("checked in new");
            Some(minibatch(x, b, root.child(0).child(t)))
        } else {
            None
        };
        let noise = self.loss.needs_noise().then(|| {
            let mut z = Array2::zeros((b, self.flow.dim()));
            self.flow
                .sample_base_batch(root.child(1).child(t), z.view_mut(), self.parts.par);
            z
        });
        (minibatch, noise)
    }

    /// One training step (module docs).
    ///
    /// # Errors
    /// [`TrainError::TooManyRejections`] once `max_consecutive_rejections`
    /// consecutive steps were rejected (then on every later call);
    /// [`TrainError::Loss`] if the loss cannot be evaluated.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        self.step_sharded(&mut SingleProcess)
    }

    /// One training step whose batch is shared among the processes of
    /// `exchange` (data parallelism, e.g. MPI ranks): every process must
    /// call it with the same trainer state. The result, and so the
    /// parameters, are bit-identical to [`Trainer::step`] whatever the
    /// number of processes ([`crate::exchange`]).
    ///
    /// # Errors
    /// As [`Trainer::step`] (identically on every process).
    pub fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        let t = self.parts.next_step()?;
        let report = self.evaluate_sharded(t, exchange)?;
        Ok(self.parts.apply(t, self.flow.params_mut(), report))
    }

    /// A metrics record at the current parameters (module docs).
    pub fn metrics(&self) -> MetricsRecord {
        let t = self.parts.step_index();
        let root = self.parts.root();
        let n = self.parts.config.eval_batch;
        let d = self.flow.dim();
        let mut z = Array2::zeros((n, d));
        self.flow
            .sample_base_batch(root.child(2).child(t), z.view_mut(), self.parts.par);
        let (xs, log_w) = crate::loss::flow_samples(&self.flow, self.target, z.view(), self.parts.par);
        let nll = held_out_nll(&self.flow, self.parts.data.held_out.as_ref(), self.parts.par);
        self.parts.record(self.target, xs.view(), &log_w, nll)
    }

    /// The complete state (for a checkpoint).
    pub fn state(&self) -> TrainerState {
        self.parts.state(self.flow.params())
    }

    /// Continues from a saved state (the trainer must have been built from
    /// the same configuration, architecture, target and data).
    ///
    /// # Errors
    /// [`TrainError::State`] if the parameter or moment counts or the
    /// chunking differ from this trainer's.
    pub fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.parts.restore(self.flow.params_mut(), state)
    }
}

impl<L: ScoreLayer> TrainLoop for Trainer<'_, L> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        Trainer::step(self)
    }
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        Trainer::step_sharded(self, exchange)
    }
    fn metrics(&mut self) -> MetricsRecord {
        Trainer::metrics(self)
    }
    fn state(&self) -> TrainerState {
        Trainer::state(self)
    }
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        Trainer::restore(self, state)
    }
    fn step_index(&self) -> u64 {
        Trainer::step_index(self)
    }
    fn total_rejections(&self) -> u64 {
        Trainer::total_rejections(self)
    }
    fn params(&self) -> &[f64] {
        self.flow.params()
    }
}

#[cfg(test)]
mod sharded_tests {
    use super::*;
    use crate::loss::{LossConfig, SmOn};
    use crate::SingleProcess;
    use fieldflow_core::Seed;
    use fieldflow_flows::FlowConfig;
    use fieldflow_targets::GaussianMixture;
    use std::sync::{Arc, Barrier, Mutex};

    /// R "processes" as threads: the all-gather of [`Exchange`].
    struct Threads {
        rank: usize,
        size: usize,
        shared: Arc<(Mutex<Vec<Vec<f64>>>, Barrier)>,
    }

    impl Exchange for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_gather(&mut self, mine: Vec<f64>, counts: &[usize]) -> Vec<f64> {
            let (slots, barrier) = &*self.shared;
            slots.lock().unwrap()[self.rank] = mine;
            barrier.wait();
            let out: Vec<f64> = slots.lock().unwrap().concat();
            barrier.wait();
            assert_eq!(out.len(), counts.iter().sum::<usize>());
            out
        }
    }

    /// Runs `steps` steps with `make` on `size` threads sharing the batch
    /// and returns every thread's reports and final parameters.
    fn sharded<F>(size: usize, steps: usize, make: F) -> Vec<(Vec<StepOutcome>, Vec<f64>)>
    where
        F: Fn(&mut dyn FnMut(&mut Trainer<'_>) -> (Vec<StepOutcome>, Vec<f64>)) -> (Vec<StepOutcome>, Vec<f64>) + Sync,
    {
        let shared = Arc::new((Mutex::new(vec![Vec::new(); size]), Barrier::new(size)));
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let shared = shared.clone();
                    let make = &make;
                    s.spawn(move || {
                        let mut ex = Threads { rank, size, shared };
                        make(&mut |tr: &mut Trainer<'_>| {
                            let out = (0..steps).map(|_| tr.step_sharded(&mut ex).unwrap()).collect();
                            (out, tr.flow().params().to_vec())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn check_identical<F>(steps: usize, make: F)
    where
        F: Fn(&mut dyn FnMut(&mut Trainer<'_>) -> (Vec<StepOutcome>, Vec<f64>)) -> (Vec<StepOutcome>, Vec<f64>) + Sync,
    {
        let reference = make(&mut |tr: &mut Trainer<'_>| {
            let out = (0..steps).map(|_| tr.step().unwrap()).collect();
            (out, tr.flow().params().to_vec())
        });
        assert!(reference.0.iter().all(|o| matches!(o, StepOutcome::Accepted(_))));
        let single = make(&mut |tr: &mut Trainer<'_>| {
            let out = (0..steps)
                .map(|_| tr.step_sharded(&mut SingleProcess).unwrap())
                .collect();
            (out, tr.flow().params().to_vec())
        });
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let summary = |o: &[StepOutcome]| format!("{o:?}");
        assert_eq!(summary(&single.0), summary(&reference.0), "single process");
        assert!(
            bits(&single.1) == bits(&reference.1),
            "single process: parameters differ"
        );
        for size in [2, 3, 7] {
            for (rank, got) in sharded(size, steps, &make).into_iter().enumerate() {
                assert_eq!(summary(&got.0), summary(&reference.0), "size {size} rank {rank}");
                assert!(
                    bits(&got.1) == bits(&reference.1),
                    "size {size} rank {rank}: parameters differ"
                );
            }
        }
    }

    #[test]
    fn sharded_rkl_on_phi4_is_bit_identical_for_any_process_count() {
        check_identical(3, |run| {
            let lattice = fieldflow_lattice::Lattice::new(&[4, 4]).unwrap();
            let target = fieldflow_lattice::Phi4::new(lattice, -4.0, 8.0).unwrap();
            let flow = FlowConfig::tutorial(4).build(Seed::new(2)).unwrap();
            let mut cfg = TrainConfig::new(LossConfig::preset(crate::LossPreset::Rkl), 70, 3, 1e-2);
            cfg.seed = 9;
            cfg.clip_grad_norm = Some(5.0);
            let par = Par {
                chunk_rows: 16,
                parallel: true,
            };
            let mut tr = Trainer::new(&cfg, flow, &target, TrainData::default(), par).unwrap();
            run(&mut tr)
        });
    }

    #[test]
    fn sharded_fkl_rkl_sm_is_bit_identical_for_any_process_count() {
        for sm_on in [SmOn::Data, SmOn::Flow] {
            check_identical(3, |run| {
                let mog = GaussianMixture::mog4();
                let mut x = Array2::zeros((50, 2));
                fieldflow_core::ExactSampler::sample_batch(&mog, Seed::new(1), x.view_mut(), Par::default());
                let flow = FlowConfig::mlp(2, 4, vec![16]).build(Seed::new(4)).unwrap();
                let loss = LossConfig {
                    w_fkl_is: Some(0.2),
                    ..LossConfig::weights(0.5, 1.0, 0.3, sm_on)
                };
                let mut cfg = TrainConfig::new(loss, 40, 3, 3e-3);
                cfg.seed = 6;
                let data = TrainData {
                    train: Some(x),
                    held_out: None,
                    modes: None,
                };
                let par = Par {
                    chunk_rows: 8,
                    parallel: true,
                };
                let mut tr = Trainer::new(&cfg, flow, &mog, data, par).unwrap();
                run(&mut tr)
            });
        }
    }

    #[test]
    fn fkl_decay_scales_the_fkl_weight_of_each_step_and_nothing_else() {
        let mog = GaussianMixture::mog4();
        let mut x = Array2::zeros((50, 2));
        fieldflow_core::ExactSampler::sample_batch(&mog, Seed::new(1), x.view_mut(), Par::default());
        let decay = crate::FklDecay {
            start: 10,
            steps: 20,
            factor: 0.01,
        };
        let eval = |w_fkl: f64, fkl_decay: Option<crate::FklDecay>, t: u64| {
            let flow = FlowConfig::mlp(2, 4, vec![16]).build(Seed::new(4)).unwrap();
            let mut cfg = TrainConfig::new(LossConfig::weights(w_fkl, 0.3, 0.2, SmOn::Flow), 40, 40, 3e-3);
            cfg.seed = 6;
            cfg.fkl_decay = fkl_decay;
            let data = TrainData {
                train: Some(x.clone()),
                ..Default::default()
            };
            let tr = Trainer::new(&cfg, flow, &mog, data, Par::default()).unwrap();
            tr.evaluate(t).unwrap()
        };
        for t in [0, 10, 15, 30, 39] {
            let decayed = eval(1.0, Some(decay), t);
            let explicit = eval(decay.factor(t), None, t);
            assert_eq!(decayed.grad, explicit.grad, "step {t}");
            assert_eq!(decayed.total.to_bits(), explicit.total.to_bits(), "step {t}");
        }
        assert_ne!(eval(1.0, Some(decay), 15).grad, eval(1.0, None, 15).grad);
        let mut cfg = TrainConfig::new(LossConfig::preset(crate::LossPreset::Rkl), 40, 40, 3e-3);
        cfg.fkl_decay = Some(decay);
        let e = cfg.validate().unwrap_err();
        assert!(e.to_string().contains("fkl_decay"), "{e}");
    }
}
