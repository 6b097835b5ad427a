//! # fieldflow-snf: stochastic normalizing flows
//!
//! Stochastic normalizing flows (Wu, Köhler & Noé, arXiv 2002.06707;
//! docs/THEORY.md §6.4–§6.5): coupling-flow layers interleaved with stochastic blocks —
//! overdamped Langevin (plain or MALA-corrected) and Gaussian random-walk
//! Metropolis — acting on the interpolated energy
//!
//!   u_λ(x) = (1 − λ) u_base(x) + λ u_target(x),  u_base = ‖x‖²/(2σ²), u_target = −log p̃,
//!
//! with one λ per block from a schedule (linear by default).
//!
//! ## Path weights (conventions)
//! Every stage is a transition y → y′ with a forward kernel q(y′|y) and a
//! backward kernel q̃(y|y′); its path term is ΔS = log q̃(y|y′) − log q(y′|y):
//!
//! | stage | ΔS |
//! |---|---|
//! | flow layer y′ = f(y) | log\|det ∂f/∂y\| |
//! | Langevin step y′ = y − ε∇u_λ(y) + √(2ε)η | ½(‖η‖² − ‖η̃‖²), η̃ = (y − y′ + ε∇u_λ(y′))/√(2ε) |
//! | Metropolis / MALA block (detailed balance w.r.t. e^{−u_λ}) | u_λ(y_out) − u_λ(y_in) |
//!
//! and a sample x reached from z ~ N(0, σ²I) carries
//!
//!   log w = log p̃(x) − log N(z; 0, σ²I) + Σ ΔS,   E\[w\] = Z = ∫ p̃.
//!
//! (With the unnormalized base energy ‖z‖²/(2σ²): log w = Σ ΔS − u_target(x) +
//! u_base(z) and E\[w\] = Z_target/Z_base.) An SNF has no tractable log q(x);
//! importance sampling and IMH use log w in place of log p̃ − log q, which is
//! exact on the extended path space ([`snf`] module docs, [`PathProposal`]).
//!
//! ## Modules
//! * [`energy`]: u_λ, and the optional [`HessianVector`] capability (exact
//!   ∇²u·v; defined in `fieldflow-core`, implemented for every synthetic
//!   target, core's isotropic Gaussian and the lattice φ⁴ action);
//! * [`blocks`]: Langevin / MALA / Metropolis kernels, their ΔS and their
//!   reverse mode (with the treatment of accept decisions);
//! * [`snf`]: [`Snf`] — sampling with path weights
//!   ([`Snf::draw_batch_with_log_w`], [`Snf::sample_paths`]), reverse paths,
//!   [`PathProposal`];
//! * [`train`]: path-KL and path-ML losses with hand-written gradients;
//! * [`config`]: [`SnfConfig`], the TOML/JSON architecture;
//! * [`experiment`]: RealNVP vs RealNVP + stochastic blocks on the double well.
//!
//! ## Example
//! ```
//! use fieldflow_core::{Par, Seed, Target};
//! use fieldflow_snf::SnfConfig;
//! use fieldflow_targets::DoubleWell;
//!
//! let cfg: SnfConfig = serde_json::from_str(r#"{
//!     "flow": { "shape": [2], "n_layers": 2, "mask": "halves",
//!               "conditioner": { "kind": "mlp", "hidden": [8], "activation": "silu" } },
//!     "stages": [ { "flow": { "n_layers": 1 } },
//!                 { "langevin": { "steps": 5, "eps": 0.01, "mala": true } },
//!                 { "flow": { "n_layers": 1 } },
//!                 { "metropolis": { "steps": 5, "width": 0.3 } } ] }"#).unwrap();
//! let snf = cfg.build(DoubleWell::default(), Seed::new(1)).unwrap();
//! // Samples with exact path weights; log Ẑ = LSE(log w) − ln N estimates log Z.
//! let paths = snf.sample_paths(Seed::new(2), 1000, Par::default());
//! let est = fieldflow_stats::log_z(paths.log_w.as_slice().unwrap()).unwrap();
//! assert!(est.log_z.is_finite() && est.ess > 0.0);
//! // Path-KL gradient (plain Langevin and flow stages: exact; MALA /
//! // Metropolis: decisions held fixed).
//! let mut grad = vec![0.0; snf.n_params()];
//! let rep = snf.path_kl_grad_batch(Seed::new(3), 64, &mut grad, Par::default());
//! assert!(rep.loss.is_finite());
//! ```
//!
//! Everything batched is split by core's [`fieldflow_core::Par`]; chunk k
//! draws from `seed.child(k)`, so results are bit-identical for any number
//! of threads.

pub mod blocks;
pub mod config;
pub mod energy;
pub mod experiment;
pub mod snf;
pub mod train;
pub mod trainer;

pub use blocks::{LangevinBlock, MetropolisBlock, StochasticBlock};
pub use config::{FlowStageConfig, LambdaSchedule, LangevinConfig, MetropolisConfig, SnfConfig, StageConfig};
pub use energy::HessianVector;
pub use snf::{PathBatch, PathProposal, ReversePathBatch, Snf, Stage};
pub use train::PathLossReport;
pub use trainer::SnfTrainer;
