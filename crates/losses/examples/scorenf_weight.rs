//! The experiment behind `RKL_SM_DEFAULT_W_SM` (the `rkl_sm` preset): RKL + w·SM on a small
//! ensemble (100 samples) for several w, same flow, seed and budget, judged
//! by the ESS of fresh flow samples and the held-out NLL.
//!
//! `cargo run --release -p fieldflow-losses --example scorenf_weight [steps]`

use fieldflow_core::{ExactSampler, Par, Seed, Target};
use fieldflow_flows::FlowConfig;
use fieldflow_lattice::{hmc, HmcConfig, Phi4Config};
use fieldflow_losses::{Annealing, LossConfig, LrSchedule, SmOn, TrainConfig, TrainData, Trainer};
use fieldflow_targets::GaussianMixture;
use ndarray::Array2;
use rand::Rng as _;
use rand_distr_normal::normal;

mod rand_distr_normal {
    pub fn normal(rng: &mut impl rand::Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

const WS: [f64; 6] = [0.0, 0.01, 0.1, 0.3, 1.0, 3.0];

fn run(
    name: &str,
    flow_cfg: &FlowConfig,
    target: &dyn Target,
    train: &Array2<f64>,
    held_out: &Array2<f64>,
    modes: Option<&dyn fieldflow_targets::Modes>,
    steps: u64,
) {
    let par = Par::default();
    for w in WS {
        let t0 = std::time::Instant::now();
        let mut cfg = TrainConfig::new(LossConfig::weights(0.0, 1.0, w, SmOn::Data), 256, steps, 2e-3);
        cfg.lr_schedule = LrSchedule::Cosine {
            total_steps: steps,
            min_lr: 1e-5,
        };
        cfg.annealing = Annealing::Constant;
        cfg.clip_grad_norm = Some(100.0);
        cfg.eval_batch = 4096;
        cfg.seed = 1;
        let flow = flow_cfg.build(Seed::new(1)).unwrap();
        let data = TrainData {
            train: Some(train.clone()),
            held_out: Some(held_out.clone()),
            modes,
        };
        let mut tr = Trainer::new(&cfg, flow, target, data, par).unwrap();
        let mut rejected = 0;
        for _ in 0..steps {
            if let fieldflow_losses::StepOutcome::Rejected { .. } = tr.step().unwrap() {
                rejected += 1;
            }
        }
        let m = tr.metrics();
        println!(
            "{name:8} w = {w:5}: ESS {:.3}  NLL {:.3}  acc {:.3}  RKL est {:.3}  TV {:.3}  collapsed {}  rejected {rejected}  ({:.1} s)",
            m.ess,
            m.nll,
            m.acceptance,
            m.rkl_estimate,
            m.tv_distance,
            m.n_collapsed,
            t0.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let steps: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1500);
    let only = std::env::args().nth(2).unwrap_or_default();
    let par = Par::default();

    if only.is_empty() || only == "mog4" {
        // (a) MOG-4 with 100 exact samples.
        let mog = GaussianMixture::mog4();
        let mut train = Array2::zeros((100, 2));
        mog.sample_batch(Seed::new(100), train.view_mut(), par);
        let mut held = Array2::zeros((5000, 2));
        mog.sample_batch(Seed::new(101), held.view_mut(), par);
        let mut lp = ndarray::Array1::zeros(5000);
        mog.log_prob_batch(held.view(), lp.view_mut(), par);
        println!("MOG-4 entropy (MC, 5000 exact samples): {:.3}", -lp.mean().unwrap());
        run(
            "MOG-4",
            &FlowConfig::mlp(2, 8, vec![32, 32]),
            &mog,
            &train,
            &held,
            Some(&mog),
            steps,
        );
    }

    if only.is_empty() || only == "phi4" {
        // (b) φ⁴ on 4×4, m² = −4, λ = 8, HMC ensemble.
        let phi4 = Phi4Config::standard(&[4, 4], -4.0, 8.0).validate().unwrap();
        let h = HmcConfig::default().validate().unwrap();
        let d = 16;
        let mut rng = Seed::new(7).rng();
        let mut phi: Vec<f64> = (0..d).map(|_| 0.5 * normal(&mut rng)).collect();
        let mut ws = hmc::HmcWorkspace::new(d);
        let mut acc = 0usize;
        let (therm, sep, n_train, n_held) = (1000, 10, 100, 5000);
        let mut configs = Vec::new();
        for t in 0..therm + sep * (n_train + n_held) {
            let rec = hmc::trajectory(&phi4, &h, 0.1, &mut phi, &mut ws, &mut rng);
            acc += rec.accepted as usize;
            if t >= therm && (t - therm) % sep == 0 {
                configs.push(phi.clone());
            }
            let _ = rng.random::<u8>();
        }
        let all = Array2::from_shape_fn((configs.len(), d), |(i, j)| configs[i][j]);
        let mag: f64 = all.rows().into_iter().map(|r| r.mean().unwrap().abs()).sum::<f64>() / all.nrows() as f64;
        println!(
            "φ⁴ 4×4 m² = −4 λ = 8: HMC acceptance {:.2}, <|M|> = {mag:.3}",
            acc as f64 / (therm + sep * (n_train + n_held)) as f64
        );
        let train = all.slice(ndarray::s![..n_train, ..]).to_owned();
        let held = all.slice(ndarray::s![n_train.., ..]).to_owned();
        let mut fc = FlowConfig::tutorial(4);
        fc.n_layers = 8;
        fc.conditioner.activation = fieldflow_flows::ActivationKind::Silu;
        run("phi4 4x4", &fc, &phi4, &train, &held, None, steps);
    }
}
