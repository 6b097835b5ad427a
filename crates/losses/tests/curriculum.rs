//! The lattice curriculum (docs/THEORY.md §5.7): stage k is exactly a
//! trainer on its lattice for its steps, the state passes on unchanged,
//! metrics concern the target's lattice, and a run resumed in any stage is
//! bit-identical to a straight one.

use fieldflow_core::{Par, Seed};
use fieldflow_flows::{Flow, FlowConfig};
use fieldflow_lattice::{Phi4, Phi4Config};
use fieldflow_losses::{
    Curriculum, CurriculumStage, LossConfig, LossPreset, LrSchedule, TrainConfig, TrainData, TrainLoop, Trainer,
    TrainerState,
};

const SMALL: usize = 4;
const FULL: usize = 6;
const FIRST: u64 = 7;
const STEPS: u64 = 16;

fn phi4(l: usize) -> Phi4 {
    Phi4Config::standard(&[l, l], -4.0, 8.0).validate().unwrap()
}

fn config() -> TrainConfig {
    let mut c = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 16, STEPS, 4e-3);
    c.seed = 3;
    c.eval_batch = 64;
    // The schedule runs over the whole run, across the stage boundary.
    c.lr_schedule = LrSchedule::WarmupStableDecay {
        warmup_steps: 3,
        decay_steps: 5,
        total_steps: STEPS,
        min_lr: 1e-5,
    };
    c.curriculum = vec![CurriculumStage {
        lattice: vec![SMALL, SMALL],
        steps: FIRST,
    }];
    c
}

fn flow_config(l: usize) -> FlowConfig {
    let mut f = FlowConfig::tutorial(l);
    f.n_layers = 4;
    f.conditioner.hidden = vec![4];
    f
}

fn trainer<'a>(target: &'a Phi4, l: usize, c: &TrainConfig) -> Trainer<'a> {
    let flow = flow_config(l).build(Seed::new(5)).unwrap();
    Trainer::new(c, flow, target, TrainData::default(), Par::default()).unwrap()
}

fn curriculum<'a>(small: &'a Phi4, full: &'a Phi4) -> Curriculum<'a> {
    let c = config();
    Curriculum::new(vec![
        (trainer(small, SMALL, &c), FIRST),
        (trainer(full, FULL, &c), STEPS - FIRST),
    ])
    .unwrap()
}

/// Equal states (the last step's report has NaN parts: compared as text).
fn same_state(a: &TrainerState, b: &TrainerState) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn bits(p: &[f64]) -> Vec<u64> {
    p.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn each_stage_is_a_plain_trainer_on_its_lattice_and_the_state_passes_on() {
    let (small, full) = (phi4(SMALL), phi4(FULL));
    let mut cur = curriculum(&small, &full);
    // Stage 0 = a trainer on the small lattice, same config and seed.
    let mut plain = trainer(&small, SMALL, &config());
    for _ in 0..FIRST {
        cur.step().unwrap();
        plain.step().unwrap();
    }
    assert_eq!(cur.step_index(), FIRST);
    assert_eq!(bits(cur.params()), bits(plain.flow().params()));
    // Stage 1 = a trainer on the full lattice restored from that state.
    let mut next = trainer(&full, FULL, &config());
    next.restore(plain.state()).unwrap();
    for _ in FIRST..STEPS {
        cur.step().unwrap();
        next.step().unwrap();
    }
    assert_eq!(bits(cur.params()), bits(next.flow().params()));
    assert!(same_state(&cur.state(), &next.state()));
    // The stages did train: stage 1 moved the parameters on.
    assert_ne!(bits(plain.flow().params()), bits(next.flow().params()));
}

#[test]
fn metrics_in_an_early_stage_are_those_of_the_target_lattice() {
    let (small, full) = (phi4(SMALL), phi4(FULL));
    let mut cur = curriculum(&small, &full);
    for _ in 0..3 {
        cur.step().unwrap();
    }
    let m = cur.metrics();
    // The same θ and step on the full lattice.
    let mut on_full = trainer(&full, FULL, &config());
    on_full.restore(cur.state()).unwrap();
    assert_eq!(format!("{m:?}"), format!("{:?}", on_full.metrics()));
    assert_eq!(m.step, 3);
    // Taking the record changed nothing: the run goes on as without it.
    let mut quiet = curriculum(&small, &full);
    for _ in 0..STEPS {
        quiet.step().unwrap();
    }
    for _ in 3..STEPS {
        cur.step().unwrap();
    }
    assert_eq!(bits(cur.params()), bits(quiet.params()));
}

#[test]
fn a_run_resumed_in_either_stage_is_bit_identical() {
    let (small, full) = (phi4(SMALL), phi4(FULL));
    let mut straight = curriculum(&small, &full);
    for _ in 0..STEPS {
        straight.step().unwrap();
    }
    for stop in [2, FIRST, FIRST + 4] {
        let mut first = curriculum(&small, &full);
        for _ in 0..stop {
            first.step().unwrap();
        }
        // A fresh curriculum (all stages at the initial parameters) given
        // the saved state, as after reading a checkpoint.
        let mut second = curriculum(&small, &full);
        second.restore(first.state()).unwrap();
        for _ in stop..STEPS {
            second.step().unwrap();
        }
        assert_eq!(bits(second.params()), bits(straight.params()), "resumed at step {stop}");
        assert!(
            same_state(&second.state(), &straight.state()),
            "state after resuming at {stop}"
        );
    }
}

#[test]
fn a_flow_whose_parameters_depend_on_the_lattice_is_refused() {
    let (small, full) = (phi4(SMALL), phi4(FULL));
    let c = config();
    let mlp = |l: usize| FlowConfig::mlp(l * l, 2, vec![4]);
    let build = |cfg: FlowConfig, target| {
        let flow: Flow = cfg.build(Seed::new(1)).unwrap();
        Trainer::new(&c, flow, target, TrainData::default(), Par::default()).unwrap()
    };
    let err = Curriculum::new(vec![
        (build(mlp(SMALL), &small), FIRST),
        (build(mlp(FULL), &full), STEPS - FIRST),
    ])
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("curriculum[0].lattice") && err.contains("convolutional"),
        "{err}"
    );
}

#[test]
fn curriculum_settings_are_checked() {
    let mut c = config();
    c.curriculum[0].steps = STEPS;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("curriculum") && e.contains("fewer than steps"), "{e}");
    let mut c = config();
    c.curriculum[0].steps = 0;
    assert!(c.validate().unwrap_err().to_string().contains("curriculum[0].steps"));
    let mut c = config();
    c.loss = LossConfig::preset(LossPreset::Fkl);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("data term"), "{e}");
    let c: TrainConfig = toml::from_str(
        "loss = { preset = \"rkl\" }\nbatch_size = 8\nsteps = 10\nlr = 1e-3\n\
         curriculum = [{ lattice = [4, 4], steps = 3 }]",
    )
    .unwrap();
    assert_eq!(c.curriculum_steps(), 3);
    assert!(c.validate().is_ok());
}
