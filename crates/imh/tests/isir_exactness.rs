//! i-SIR is exact whatever the proposal (docs/THEORY.md §6.7): the selection
//! rule against an exact discrete transition matrix, chains against exact
//! moments and mode weights (determinism: `imh_exactness.rs`).

use fieldflow_core::{IsotropicGaussian, Seed};
use fieldflow_imh::{
    isir_probabilities, isir_select, tune_step, GlobalMove, ImhChain, ImhConfig, ImhRun, ImhState, LocalKernel, Mala,
    RandomWalk, StepTuning,
};
use fieldflow_stats::{gamma_primary, GammaConfig};
use fieldflow_targets::{GaussianMixture, Modes};
use ndarray::Axis;
use rand::Rng as _;

fn run(chain: &ImhChain, states: &mut [ImhState], n: usize) -> ImhRun {
    let out = chain.run(states, n, &|_| {});
    assert!(out.log_p.iter().all(|v| v.is_finite()));
    out
}

fn isir(batch: usize, proposals: usize) -> ImhConfig {
    ImhConfig {
        batch,
        global: GlobalMove::Isir { proposals },
        ..Default::default()
    }
}

/// Γ-method mean and error of one series.
fn gamma(x: &[f64]) -> (f64, f64) {
    let r = gamma_primary(&[x], &GammaConfig::default()).expect("a finite series");
    (r.value, r.error)
}

fn acceptance(out: &ImhRun) -> f64 {
    out.accepted.iter().map(|&a| a as f64).sum::<f64>() / out.accepted.len() as f64
}

// ---------------------------------------------------------------------------
// The selection rule on a finite state space.

/// The i-SIR transition matrix P(x → y) on a finite space with target ∝ `p`
/// and proposal `q`, by enumerating all K-tuples of proposals; `select`
/// turns the K + 1 log-weights into the selection probabilities.
fn transition_matrix(p: &[f64], q: &[f64], k: usize, select: &dyn Fn(&[f64], &mut [f64])) -> Vec<Vec<f64>> {
    let n = p.len();
    let log_w: Vec<f64> = p.iter().zip(q).map(|(p, q)| (p / q).ln()).collect();
    let mut mat = vec![vec![0.0; n]; n];
    let (mut lw, mut probs) = (vec![0.0; k + 1], vec![0.0; k + 1]);
    for (x, row) in mat.iter_mut().enumerate() {
        for tuple in 0..n.pow(k as u32) {
            // The tuple's proposals y₁ … y_K (digits of `tuple` in base n).
            let ys: Vec<usize> = (0..k).map(|i| tuple / n.pow(i as u32) % n).collect();
            let q_tuple: f64 = ys.iter().map(|&y| q[y]).product();
            lw[0] = log_w[x];
            for (l, &y) in lw[1..].iter_mut().zip(&ys) {
                *l = log_w[y];
            }
            select(&lw, &mut probs);
            row[x] += q_tuple * probs[0];
            for (&y, &pr) in ys.iter().zip(&probs[1..]) {
                row[y] += q_tuple * pr;
            }
        }
    }
    mat
}

/// max over x, y of |p(x)P(x→y) − p(y)P(y→x)| and of |(pP)(y) − p(y)|, and
/// the largest deviation of a row sum from 1.
fn balance_defects(p: &[f64], mat: &[Vec<f64>]) -> (f64, f64, f64) {
    let n = p.len();
    let (mut db, mut st, mut rows) = (0.0_f64, 0.0_f64, 0.0_f64);
    for x in 0..n {
        rows = rows.max((mat[x].iter().sum::<f64>() - 1.0).abs());
        for y in 0..n {
            db = db.max((p[x] * mat[x][y] - p[y] * mat[y][x]).abs());
        }
        let py: f64 = (0..n).map(|z| p[z] * mat[z][x]).sum();
        st = st.max((py - p[x]).abs());
    }
    (db, st, rows)
}

#[test]
fn exact_transition_matrix_satisfies_detailed_balance() {
    // Four states with weight, one (index 4) with target mass 0: its weight
    // is zero (log w = −∞) and it must never be entered.
    let p = [0.1, 0.2, 0.3, 0.4, 0.0];
    let q = [0.4, 0.3, 0.1, 0.1, 0.1];
    for k in 1..=3 {
        let mat = transition_matrix(&p, &q, k, &isir_probabilities);
        let (db, st, rows) = balance_defects(&p, &mat);
        assert!(
            db < 1e-12 && st < 1e-12 && rows < 1e-12,
            "K = {k}: {db:e} {st:e} {rows:e}"
        );
        assert!(
            (0..4).all(|x| mat[x][4] == 0.0),
            "K = {k}: a zero-weight state is entered"
        );
        // The chain moves: the matrix is not the identity.
        assert!((0..4).all(|x| mat[x][x] < 0.9), "K = {k}");
    }
    // K = 1 is Barker's rule: P(x → y) = q(y) w(y)/(w(x) + w(y)) for y ≠ x.
    let mat = transition_matrix(&p, &q, 1, &isir_probabilities);
    for x in 0..4 {
        for y in (0..4).filter(|&y| y != x) {
            let (wx, wy) = (p[x] / q[x], p[y] / q[y]);
            assert!((mat[x][y] - q[y] * wy / (wx + wy)).abs() < 1e-15);
        }
    }
    // Control: resampling among the proposals only (plain SIR, current state
    // left out) is not p-invariant, and the oracle sees it.
    let sir_only = |lw: &[f64], out: &mut [f64]| {
        isir_probabilities(&lw[1..], &mut out[1..]);
        out[0] = 0.0;
    };
    let (db, st, _) = balance_defects(&p, &transition_matrix(&p, &q, 2, &sir_only));
    assert!(
        db > 1e-3 && st > 1e-3,
        "the oracle cannot tell a wrong rule: {db:e} {st:e}"
    );
}

#[test]
fn selection_frequencies_match_the_normalized_weights() {
    // Weights ∝ (0.1, 0.4, 0, 0.2, 0.3) at a large common offset; index 2 is NaN.
    let w = [0.1, 0.4, f64::NAN, 0.2, 0.3];
    let lw: Vec<f64> = w.iter().map(|v: &f64| v.ln() + 900.0).collect();
    let mut probs = vec![0.0; w.len()];
    isir_probabilities(&lw, &mut probs);
    let mut rng = Seed::new(11).rng();
    let n = 100_000;
    let mut counts = vec![0usize; w.len()];
    for _ in 0..n {
        counts[isir_select(&lw, rng.random::<f64>())] += 1;
    }
    assert_eq!(counts[2], 0, "a NaN weight was selected");
    for (j, (&c, &pj)) in counts.iter().zip(&probs).enumerate() {
        let (f, sigma) = (c as f64 / n as f64, (pj * (1.0 - pj) / n as f64).sqrt());
        let exact = if j == 2 { 0.0 } else { w[j] };
        assert!((pj - exact).abs() < 1e-12, "probability {j}: {pj} vs {exact}");
        assert!(
            (f - pj).abs() <= 4.0 * sigma,
            "index {j}: frequency {f} vs {pj} ± {sigma}"
        );
    }
}

// ---------------------------------------------------------------------------
// Chains.

#[test]
fn exact_proposal_moves_with_probability_k_over_k_plus_one() {
    // q = p: all weights are equal, so P(J ≠ 0) = K/(K + 1) exactly
    // (K = 1: Barker's ½ where IMH would accept everything).
    let p = IsotropicGaussian {
        dim: 2,
        mean: 0.5,
        sigma: 1.3,
    };
    for (k, seed) in [(1, 1), (4, 2)] {
        let chain = ImhChain::new(&p, &p, Seed::new(seed), isir(128, k));
        let mut states = chain.initial_states(1);
        let n = 40_000;
        let a = acceptance(&run(&chain, &mut states, n));
        let exact = k as f64 / (k as f64 + 1.0);
        let sigma = (exact * (1.0 - exact) / n as f64).sqrt();
        assert!((a - exact).abs() < 4.0 * sigma, "K = {k}: {a} vs {exact} ± {sigma}");
    }
}

/// The target N(1, 0.5²) in `dim` dimensions and the proposal N(0, 2²),
/// too wide and off-centre.
fn poor_proposal_fixture(dim: usize) -> (IsotropicGaussian, IsotropicGaussian) {
    let target = IsotropicGaussian {
        dim,
        mean: 1.0,
        sigma: 0.5,
    };
    let proposal = IsotropicGaussian {
        dim,
        mean: 0.0,
        sigma: 2.0,
    };
    (target, proposal)
}

/// Mean 1 and variance 0.25 of every coordinate of `out` (the target of
/// [`poor_proposal_fixture`]) within 4 Γ-method errors, errors below 0.01.
fn assert_exact_moments(out: &ImhRun, what: &str) {
    for coord in 0..out.configs.dim().2 {
        let x: Vec<f64> = out.configs.index_axis(Axis(2), coord).iter().copied().collect();
        let (m, dm) = gamma(&x);
        let sq: Vec<f64> = x.iter().map(|v| (v - 1.0).powi(2)).collect();
        let (v, dv) = gamma(&sq);
        assert!(
            (m - 1.0).abs() < 4.0 * dm && dm < 0.01,
            "{what}, x{coord}: mean {m} ± {dm}"
        );
        assert!(
            (v - 0.25).abs() < 4.0 * dv && dv < 0.01,
            "{what}, x{coord}: variance {v} ± {dv}"
        );
    }
}

#[test]
fn poor_proposal_gives_exact_mean_and_variance_for_every_k() {
    let (target, proposal) = poor_proposal_fixture(1);
    for (k, seed) in [(1, 21), (4, 22), (16, 23)] {
        let chain = ImhChain::new(&target, &proposal, Seed::new(seed), isir(256, k));
        let mut states = chain.initial_states(1);
        assert_exact_moments(&run(&chain, &mut states, 60_000), &format!("K = {k}"));
    }
}

#[test]
fn mode_weights_are_exact_and_acceptance_grows_with_k() {
    // ⅔ N(−⅔, 0.05) + ⅓ N(4/3, 0.05): the modes are 8.9σ apart; the
    // proposal N(⅓, 1.5²) covers both but wastes most draws between them.
    let target = GaussianMixture::two_modes(1).unwrap();
    let exact = target.true_weights().unwrap()[1];
    let proposal = IsotropicGaussian {
        dim: 1,
        mean: 1.0 / 3.0,
        sigma: 1.5,
    };
    let mut rates = Vec::new();
    for (k, seed) in [(1, 31), (4, 32), (16, 33)] {
        let chain = ImhChain::new(&target, &proposal, Seed::new(seed), isir(256, k));
        let mut states = chain.initial_states(1);
        let out = run(&chain, &mut states, 40_000);
        let modes = target.assign_batch(out.configs.index_axis(Axis(0), 0));
        let upper: Vec<f64> = modes.iter().map(|&m| m as f64).collect();
        let (w, dw) = gamma(&upper);
        assert!(
            (w - exact).abs() < 4.0 * dw && dw < 0.02,
            "K = {k}: weight {w} ± {dw} vs {exact}"
        );
        rates.push(acceptance(&out));
    }
    // Selecting among more proposals moves more often, by a wide margin.
    assert!(
        rates[0] + 0.1 < rates[1] && rates[1] + 0.1 < rates[2],
        "acceptance for K = 1, 4, 16: {rates:?}"
    );
}

/// i-SIR with K = 4 and three updates of `kernel` per step on the 2D
/// fixture: exact moments, and the global move does act.
fn assert_global_local_exact(
    target: &IsotropicGaussian,
    proposal: &IsotropicGaussian,
    kernel: &dyn LocalKernel,
    seed: u64,
) {
    let chain = ImhChain::new(target, proposal, Seed::new(seed), isir(128, 4)).with_local(kernel, 3, proposal);
    let mut states = chain.initial_states(1);
    let out = run(&chain, &mut states, 30_000);
    assert_exact_moments(&out, "global-local");
    let a = acceptance(&out);
    assert!(a > 0.2 && a < 0.95, "i-SIR acceptance {a}");
}

#[test]
fn global_local_with_isir_and_random_walk_is_exact() {
    let (target, proposal) = poor_proposal_fixture(2);
    let rw = RandomWalk {
        target: &target,
        width: 0.4,
    };
    assert_global_local_exact(&target, &proposal, &rw, 41);
}

#[test]
fn global_local_with_isir_and_tuned_mala_is_exact() {
    let (target, proposal) = poor_proposal_fixture(2);
    // The MALA step from a warm-up aiming at acceptance 0.57, started from draws of q.
    let mut warm: Vec<Vec<f64>> = ImhChain::new(&target, &proposal, Seed::new(50), isir(8, 4))
        .initial_states(4)
        .into_iter()
        .map(|s| s.x)
        .collect();
    let tuning = StepTuning {
        initial: 0.05,
        target_acceptance: 0.57,
        updates: 300,
    };
    let step = tune_step(|step| Mala { target: &target, step }, &mut warm, tuning, Seed::new(51));
    assert!(step.is_finite() && step > 0.0, "tuned step {step}");
    assert_global_local_exact(&target, &proposal, &Mala { target: &target, step }, 52);
}

#[test]
fn isir_config_is_validated_and_defaults_to_imh() {
    let bad = isir(16, 0);
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("global.proposals") && err.contains('0'), "{err}");
    assert!(ImhConfig {
        batch: 0,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string()
    .contains("batch"));
    assert!(isir(16, 4).validate().is_ok());
    // A configuration written before i-SIR existed reads as IMH.
    let old = r#"{"batch":64,"local_steps":0,"par":{"chunk_rows":64,"parallel":true}}"#;
    let cfg: ImhConfig = serde_json::from_str(old).unwrap();
    assert_eq!(cfg.global, GlobalMove::Imh);
    let round: ImhConfig = serde_json::from_str(&serde_json::to_string(&isir(8, 5)).unwrap()).unwrap();
    assert_eq!(round, isir(8, 5));
    let tagged: GlobalMove = serde_json::from_str(r#"{"kind":"isir","proposals":7}"#).unwrap();
    assert_eq!(tagged, GlobalMove::Isir { proposals: 7 });
}
