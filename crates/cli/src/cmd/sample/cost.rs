//! The cost of a sample run: wall-clock time per proposal, and the target
//! and flow evaluations behind each proposal, counted where they happen.
//!
//! **Proposals.** A proposal is a candidate state that a chain step accepts,
//! rejects or selects. Per chain step the global flow move makes G of them
//! (G = 1 for `imh`, `hybrid`, `is` and global-local / adaptive with
//! `global = imh`; G = K for `isir` and `global = isir`; G = 0 for
//! `neutra`), and each of the k local updates one more (k = `local_steps`
//! for `hybrid`, `global-local`, `neutra`, `adaptive`; a φ⁴ Metropolis
//! sweep counts as one update). A run of S new steps on C chains makes
//! N = S·C·(G + k) proposals, and
//!
//! time per proposal = T / N,
//!
//! T the wall-clock seconds of the production blocks (writing included;
//! chains run in parallel, so this is the cost of a proposal to the whole
//! machine). Setting up (loading, the local kernel's warm-up, an adaptive
//! run's adaptation) is reported separately.
//!
//! **Evaluations.** [`CountedTarget`] and [`CountedModel`] forward every
//! call to the target and the model unchanged and count the rows evaluated
//! (one relaxed atomic addition per call, none per row of a batch):
//! log p̃ alone, log p̃ with its score ∇ log p̃, flow draws x = f(z) with
//! log q, flow densities log q(x) (the inverse pass after local moves), and
//! for `neutra` the pulled-back density in z (each a flow pass with its
//! Jacobian, on top of the target evaluation it makes). Counts are those of
//! this process's chains, divided by this process's proposals. The
//! internal target evaluations of a stochastic normalizing flow's Langevin
//! blocks are part of its draws and not counted as target evaluations.

use fieldflow_core::{Par, Proposal, ProposalDensity, Seed, Target};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter of evaluated rows.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Count {
    fn add(&self, rows: usize) {
        self.0.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Rows counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A target whose evaluations are counted.
pub struct CountedTarget<'a> {
    inner: &'a dyn Target,
    /// log p̃ evaluations without the score.
    pub log_prob: Count,
    /// log p̃ evaluations with the score.
    pub with_score: Count,
}

impl<'a> CountedTarget<'a> {
    /// Counts the evaluations of `inner`.
    pub fn new(inner: &'a dyn Target) -> Self {
        CountedTarget {
            inner,
            log_prob: Count::default(),
            with_score: Count::default(),
        }
    }
}

impl Target for CountedTarget<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        self.log_prob.add(1);
        self.inner.log_prob(x)
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, score: ArrayViewMut1<f64>) -> f64 {
        self.with_score.add(1);
        self.inner.log_prob_and_score(x, score)
    }
    fn log_z(&self) -> Option<f64> {
        self.inner.log_z()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn log_prob_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        self.log_prob.add(xs.nrows());
        self.inner.log_prob_batch(xs, out, par)
    }
    fn log_prob_and_score_batch(
        &self,
        xs: ArrayView2<f64>,
        scores: ArrayViewMut2<f64>,
        out: ArrayViewMut1<f64>,
        par: Par,
    ) {
        self.with_score.add(xs.nrows());
        self.inner.log_prob_and_score_batch(xs, scores, out, par)
    }
}

/// A model (flow or SNF) whose draws and densities are counted.
pub struct CountedModel<'a> {
    proposal: &'a dyn Proposal,
    density: Option<&'a dyn ProposalDensity>,
    /// Draws x with log q.
    pub draws: Count,
    /// Densities log q(x) of given states.
    pub log_q: Count,
}

impl<'a> CountedModel<'a> {
    /// Counts the draws of `proposal` and the densities of `density` (the
    /// same model's, where it has one).
    pub fn new(proposal: &'a dyn Proposal, density: Option<&'a dyn ProposalDensity>) -> Self {
        CountedModel {
            proposal,
            density,
            draws: Count::default(),
            log_q: Count::default(),
        }
    }

    /// The counted model as a density, where the model has one.
    pub fn density(&self) -> Option<&dyn ProposalDensity> {
        self.density.map(|_| self as &dyn ProposalDensity)
    }
}

impl Proposal for CountedModel<'_> {
    fn dim(&self) -> usize {
        self.proposal.dim()
    }
    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.draws.add(xs.nrows());
        self.proposal.draw_batch(seed, xs, log_q, par)
    }
}

impl ProposalDensity for CountedModel<'_> {
    fn log_q_batch(&self, xs: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, par: Par) {
        match self.density {
            Some(d) => {
                self.log_q.add(xs.nrows());
                d.log_q_batch(xs, out, par)
            }
            // Not reached: `density()` hands this view out only for a model
            // with a density.
            None => out.fill(f64::NAN),
        }
    }
}

/// A snapshot of the counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evaluations {
    /// log p̃ alone.
    pub log_prob: u64,
    /// log p̃ with the score.
    pub with_score: u64,
    /// Flow draws.
    pub draws: u64,
    /// Flow densities log q(x).
    pub log_q: u64,
    /// Pulled-back densities (neutra).
    pub pullback: u64,
}

impl Evaluations {
    /// The counters of `target`, `model` and (neutra) the counted pull-back.
    pub fn read(target: &CountedTarget, model: &CountedModel, pullback: Option<&CountedTarget>) -> Self {
        Evaluations {
            log_prob: target.log_prob.get(),
            with_score: target.with_score.get(),
            draws: model.draws.get(),
            log_q: model.log_q.get(),
            pullback: pullback.map_or(0, |p| p.log_prob.get() + p.with_score.get()),
        }
    }

    /// The evaluations made between `self` and the later snapshot `later`.
    pub fn since(self, later: Evaluations) -> Evaluations {
        Evaluations {
            log_prob: later.log_prob - self.log_prob,
            with_score: later.with_score - self.with_score,
            draws: later.draws - self.draws,
            log_q: later.log_q - self.log_q,
            pullback: later.pullback - self.pullback,
        }
    }
}

/// The cost of the production of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Flow proposals per chain step (G).
    pub global: u64,
    /// Local updates per chain step (k).
    pub local: u64,
    /// Chain steps of this run on all processes (S·C).
    pub chain_steps: u64,
    /// Chain steps of this process (the denominators of `evaluations`).
    pub own_chain_steps: u64,
    /// Wall-clock seconds of production.
    pub seconds: f64,
    /// Wall-clock seconds before production (loading, warm-up, adaptation).
    pub setup_seconds: f64,
    /// This process's evaluations during production.
    pub evaluations: Evaluations,
}

impl Cost {
    /// Proposals of this run, all processes (N = S·C·(G + k)).
    pub fn proposals(&self) -> u64 {
        self.chain_steps * (self.global + self.local)
    }

    /// Wall-clock seconds per proposal (NaN for a run that made none).
    pub fn seconds_per_proposal(&self) -> f64 {
        match self.proposals() {
            0 => f64::NAN,
            n => self.seconds / n as f64,
        }
    }

    /// The summary lines.
    pub fn render(&self) -> String {
        let per_step = match (self.global, self.local) {
            (g, 0) => format!("{g} flow"),
            (0, k) => format!("{k} local"),
            (g, k) => format!("{g} flow + {k} local"),
        };
        let own = (self.own_chain_steps * (self.global + self.local)) as f64;
        let per = |n: u64| crate::output::or_none(n as f64 / own, |v| format!("{v:.2}"));
        let e = &self.evaluations;
        let mut evals = format!(
            "log p̃ {}, log p̃ + ∇ {}, flow draw {}, flow log q {}",
            per(e.log_prob),
            per(e.with_score),
            per(e.draws),
            per(e.log_q)
        );
        if e.pullback > 0 {
            evals += &format!(", pull-back {}", per(e.pullback));
        }
        format!(
            "proposals         {} ({} chain steps × {per_step} per step)\n\
             time per proposal {} (wall clock, chains in parallel; setup {:.2} s not included)\n\
             per proposal      {evals}",
            self.proposals(),
            self.chain_steps,
            crate::output::or_none(self.seconds_per_proposal(), duration),
            self.setup_seconds
        )
    }
}

/// Seconds in the unit that makes them readable (ns, µs, ms, s).
pub fn duration(s: f64) -> String {
    if s < 1e-6 {
        format!("{:.1} ns", s * 1e9)
    } else if s < 1e-3 {
        format!("{:.2} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::IsotropicGaussian;
    use ndarray::{Array1, Array2};

    /// A standard normal target in d = 3 (log p̃ = −‖x‖²/2, score −x).
    struct Normal;
    impl Target for Normal {
        fn dim(&self) -> usize {
            3
        }
        fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
            -0.5 * x.dot(&x)
        }
        fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
            score.assign(&x.mapv(|v| -v));
            self.log_prob(x)
        }
        fn describe(&self) -> String {
            "normal".into()
        }
    }

    #[test]
    fn counting_changes_no_value_and_counts_every_row() {
        let t = CountedTarget::new(&Normal);
        let xs = Array2::from_shape_fn((5, 3), |(i, j)| i as f64 - j as f64);
        let (mut a, mut b) = (Array1::zeros(5), Array1::zeros(5));
        t.log_prob_batch(xs.view(), a.view_mut(), Par::default());
        Normal.log_prob_batch(xs.view(), b.view_mut(), Par::default());
        assert_eq!(a, b);
        let mut s = Array2::zeros((5, 3));
        t.log_prob_and_score_batch(xs.view(), s.view_mut(), a.view_mut(), Par::default());
        let mut s1 = Array1::zeros(3);
        assert_eq!(t.log_prob_and_score(xs.row(1), s1.view_mut()), b[1]);
        assert_eq!(s1, s.row(1));
        assert_eq!(t.log_prob(xs.row(2)), b[2]);
        assert_eq!((t.log_prob.get(), t.with_score.get()), (6, 6));

        let g = IsotropicGaussian {
            dim: 3,
            mean: 0.0,
            sigma: 1.0,
        };
        let m = CountedModel::new(&g, None);
        let (mut x1, mut x2) = (Array2::zeros((4, 3)), Array2::zeros((4, 3)));
        let (mut l1, mut l2) = (Array1::zeros(4), Array1::zeros(4));
        m.draw_batch(Seed::new(7), x1.view_mut(), l1.view_mut(), Par::default());
        g.draw_batch(Seed::new(7), x2.view_mut(), l2.view_mut(), Par::default());
        assert_eq!((x1, l1), (x2, l2));
        assert_eq!(m.draws.get(), 4);
        assert!(m.density().is_none());
    }

    #[test]
    fn cost_per_proposal_counts_flow_and_local_proposals() {
        let c = Cost {
            global: 4,
            local: 2,
            chain_steps: 100,
            own_chain_steps: 50,
            seconds: 0.06,
            setup_seconds: 0.5,
            evaluations: Evaluations {
                log_prob: 200,
                with_score: 100,
                draws: 200,
                log_q: 0,
                pullback: 0,
            },
        };
        assert_eq!(c.proposals(), 600);
        assert!((c.seconds_per_proposal() - 1e-4).abs() < 1e-18);
        let text = c.render();
        assert!(
            text.contains("600 (100 chain steps × 4 flow + 2 local per step)"),
            "{text}"
        );
        assert!(text.contains("100.00 µs"), "{text}");
        // 300 proposals on this process: 200/300 log p̃, 100/300 with ∇.
        assert!(
            text.contains("log p̃ 0.67, log p̃ + ∇ 0.33, flow draw 0.67, flow log q 0.00"),
            "{text}"
        );
        assert!(!text.contains("pull-back"));
        assert_eq!(duration(2.5e-9), "2.5 ns");
        assert_eq!(duration(0.25), "250.000 ms");
    }
}
