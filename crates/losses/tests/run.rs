//! The training run ([`TrainRun`]): cadence of metrics and checkpoints,
//! equality with stepping the trainer by hand, interruption and resumption
//! bit-identical to an uninterrupted run, errors of the sink and of the
//! schedule.

use fieldflow_core::Target;
use fieldflow_core::{ExactSampler, Par, Seed};
use fieldflow_flows::FlowConfig;
use fieldflow_losses::{
    CheckpointSink, LossConfig, LossPreset, MetricsRecord, RunError, RunSchedule, SingleProcess, StepOutcome,
    TrainConfig, TrainData, TrainError, TrainLoop, TrainObserver, TrainRun, Trainer, TrainerState,
};
use fieldflow_targets::{GaussianMixture, Modes};
use ndarray::{Array2, ArrayView1, ArrayViewMut1};

/// A target whose log density is NaN everywhere (a broken action).
struct AlwaysNan;

impl Target for AlwaysNan {
    fn dim(&self) -> usize {
        2
    }
    fn log_prob(&self, _: ArrayView1<f64>) -> f64 {
        f64::NAN
    }
    fn log_prob_and_score(&self, _: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        score.fill(0.0);
        f64::NAN
    }
    fn describe(&self) -> String {
        "NaN everywhere".into()
    }
}

/// Keeps every record and checkpoint; fails the save at `fail_at` steps.
#[derive(Default)]
struct Memory {
    records: Vec<MetricsRecord>,
    saves: Vec<TrainerState>,
    fail_at: Option<u64>,
}

impl CheckpointSink for Memory {
    type Error = String;
    fn metrics(&mut self, record: &MetricsRecord) {
        self.records.push(record.clone());
    }
    fn save(&mut self, state: &TrainerState) -> Result<(), String> {
        if self.fail_at == Some(state.step) {
            return Err(format!("disk full at step {}", state.step));
        }
        self.saves.push(state.clone());
        Ok(())
    }
}

/// Counts what observers hear.
#[derive(Default)]
struct Counter {
    started: Vec<(u64, u64)>,
    steps: u64,
    metrics: u64,
    finished: Vec<bool>,
}

impl TrainObserver for Counter {
    fn started(&mut self, first: u64, steps: u64) {
        self.started.push((first, steps));
    }
    fn step(&mut self, _: &StepOutcome) {
        self.steps += 1;
    }
    fn metrics(&mut self, _: &MetricsRecord) {
        self.metrics += 1;
    }
    fn finished(&mut self, completed: bool) {
        self.finished.push(completed);
    }
}

fn data() -> Array2<f64> {
    let mut x = Array2::zeros((40, 2));
    GaussianMixture::mog4().sample_batch(Seed::new(1), x.view_mut(), Par::default());
    x
}

fn config(steps: u64) -> TrainConfig {
    let mut c = TrainConfig::new(LossConfig::preset(LossPreset::Scorenf), 16, steps, 3e-3);
    // The preset's FKL handover within the run, so resuming crosses it.
    c.fkl_decay = Some(fieldflow_losses::scorenf_fkl_decay(steps));
    c.seed = 5;
    c.metrics_every = 3;
    c.eval_batch = 64;
    c
}

fn trainer<'a>(target: &'a GaussianMixture, steps: u64) -> Trainer<'a> {
    let flow = FlowConfig::mlp(2, 4, vec![8]).build(Seed::new(3)).unwrap();
    let d = TrainData {
        train: Some(data()),
        held_out: None,
        modes: Some(target as &dyn Modes),
    };
    Trainer::new(&config(steps), flow, target, d, Par::default()).unwrap()
}

fn schedule(steps: u64) -> RunSchedule {
    RunSchedule {
        steps,
        metrics_every: 3,
        checkpoint_every: 4,
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Equality with NaN fields equal (Debug prints every f64 exactly).
fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn a_run_steps_records_and_checkpoints_on_schedule_like_stepping_by_hand() {
    let target = GaussianMixture::mog4();
    let mut by_hand = trainer(&target, 10);
    for _ in 0..10 {
        assert!(matches!(by_hand.step().unwrap(), StepOutcome::Accepted(_)));
    }
    let mut tr = trainer(&target, 10);
    let (mut sink, mut obs) = (Memory::default(), Counter::default());
    let summary = TrainRun::new(&mut tr, schedule(10))
        .unwrap()
        .run(&mut SingleProcess, &mut [&mut obs], &mut sink)
        .unwrap();
    assert_eq!(bits(TrainLoop::params(&tr)), bits(TrainLoop::params(&by_hand)));
    // Records at 0, every 3 steps and at the end; checkpoints every 4 and
    // at the end (twice at the end: the cadence and the final save).
    let at: Vec<u64> = sink.records.iter().map(|r| r.step).collect();
    assert_eq!(at, vec![0, 3, 6, 9, 10]);
    let saved: Vec<u64> = sink.saves.iter().map(|s| s.step).collect();
    assert_eq!(saved, vec![4, 8, 10, 10]);
    assert!(same(sink.saves.last().unwrap(), &TrainLoop::state(&by_hand)));
    assert!(same(&summary.last, sink.records.last().unwrap()));
    assert!(same(&summary.last, &TrainLoop::metrics(&mut by_hand)));
    assert_eq!(summary.rejections, 0);
    assert_eq!(
        (obs.started, obs.steps, obs.metrics, obs.finished),
        (vec![(0, 10)], 10, 5, vec![true])
    );
}

#[test]
fn an_interrupted_run_resumes_bit_identically() {
    let target = GaussianMixture::mog4();
    let mut whole = trainer(&target, 11);
    let mut all = Memory::default();
    TrainRun::new(&mut whole, schedule(11))
        .unwrap()
        .run(&mut SingleProcess, &mut [], &mut all)
        .unwrap();

    let mut first = trainer(&target, 11);
    let mut part1 = Memory::default();
    let stop = |t: u64| t >= 5;
    let mut obs = Counter::default();
    let err = TrainRun::new(&mut first, schedule(11))
        .unwrap()
        .with_stop(&stop)
        .run(&mut SingleProcess, &mut [&mut obs], &mut part1)
        .unwrap_err();
    assert!(matches!(err, RunError::Interrupted { step: 5, steps: 11 }), "{err}");
    assert_eq!(obs.finished, vec![false]);
    let checkpoint = part1.saves.last().unwrap().clone();
    assert_eq!(checkpoint.step, 5);

    let mut second = trainer(&target, 11);
    let mut part2 = Memory::default();
    let mut run = TrainRun::new(&mut second, schedule(11)).unwrap();
    run.resume(checkpoint).unwrap();
    let summary = run.run(&mut SingleProcess, &mut [], &mut part2).unwrap();
    assert_eq!(bits(TrainLoop::params(&second)), bits(TrainLoop::params(&whole)));
    // No fresh record at the resumed start; together the records are the
    // uninterrupted run's.
    let joined: Vec<MetricsRecord> = part1.records.iter().chain(&part2.records).cloned().collect();
    assert!(same(&joined, &all.records));
    assert!(same(&summary.last, all.records.last().unwrap()));
}

#[test]
fn sink_failures_and_trainer_errors_end_the_run_with_a_checkpoint() {
    let target = GaussianMixture::mog4();
    let mut tr = trainer(&target, 10);
    let mut sink = Memory {
        fail_at: Some(8),
        ..Memory::default()
    };
    let err = TrainRun::new(&mut tr, schedule(10))
        .unwrap()
        .run(&mut SingleProcess, &mut [], &mut sink)
        .unwrap_err();
    assert_eq!(err.to_string(), "disk full at step 8");
    assert!(matches!(err, RunError::Sink(_)));

    // A target whose density is NaN everywhere: every step is rejected;
    // the run stops with the trainer's error after checkpointing the last
    // good state (the attempts counted, the original parameters).
    let flow = FlowConfig::mlp(2, 4, vec![8]).build(Seed::new(3)).unwrap();
    let start = flow.params().to_vec();
    let mut c = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 16, 50, 1e-2);
    c.max_consecutive_rejections = 2;
    let mut tr = Trainer::new(&c, flow, &AlwaysNan, TrainData::default(), Par::default()).unwrap();
    let mut sink = Memory::default();
    let err = TrainRun::new(&mut tr, schedule(50))
        .unwrap()
        .run(&mut SingleProcess, &mut [], &mut sink)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Train(TrainError::TooManyRejections { consecutive: 2, .. })
        ),
        "{err}"
    );
    let last = sink.saves.last().unwrap();
    assert_eq!((last.step, last.total_rejections), (2, 2));
    assert_eq!(bits(&last.params), bits(&start));
}

#[test]
fn a_zero_cadence_is_a_config_error_naming_the_field() {
    let target = GaussianMixture::mog4();
    let mut tr = trainer(&target, 10);
    let mut s = schedule(10);
    s.checkpoint_every = 0;
    let err = TrainRun::new(&mut tr, s).err().unwrap();
    assert!(err.to_string().contains("checkpoint_every"), "{err}");
}
