//! The LRDS reference (first half): a Gaussian mixture fitted by EM to an
//! MCMC ensemble of MOG-4 (weights 0.1, 0.2, 0.3, 0.4). 256 MALA walkers
//! from N(0, 3² I), 2000 updates each (step 0.2), the last 100 states of
//! every walker kept; EM with K = 4. Prints the fitted weights and means
//! against the exact ones: the means are right, the weights are those of
//! the walkers' starting basins, because MALA does not cross between the
//! modes (data/experiments/slips/README.md).
//!
//! `cargo run --release -p fieldflow-slips --example em_reference`

use fieldflow_core::{LocalKernel, Modes, Seed};
use fieldflow_imh::Mala;
use fieldflow_slips::{fit_mixture, EmSettings};
use fieldflow_targets::GaussianMixture;
use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};

fn main() {
    let target = GaussianMixture::mog4();
    let (walkers, updates, keep) = (256, 2000, 100);
    let kernel = Mala {
        target: &target,
        step: 0.2,
    };
    let mut xs = Array2::zeros((walkers * keep, 2));
    let mut accepted = 0usize;
    for w in 0..walkers {
        let mut rng = Seed::new(5).child(w as u64).rng();
        let mut x: Vec<f64> = (0..2)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                3.0 * z
            })
            .collect();
        let mut scratch = Vec::new();
        for u in 0..updates {
            accepted += usize::from(kernel.update(&mut x, &mut scratch, &mut rng).accepted);
            if u >= updates - keep {
                let row = w * keep + (u - (updates - keep));
                xs[[row, 0]] = x[0];
                xs[[row, 1]] = x[1];
            }
        }
    }
    let ensemble = target.mode_fractions(xs.view());
    let fit = fit_mixture(
        xs.view(),
        &EmSettings {
            components: 4,
            ..EmSettings::default()
        },
        Seed::new(1),
    )
    .expect("EM on a finite ensemble");
    println!(
        "MALA acceptance {:.3}; ensemble mode fractions {:?} (exact {:?})",
        accepted as f64 / (walkers * updates) as f64,
        ensemble.iter().map(|v| (v * 1e3).round() / 1e3).collect::<Vec<_>>(),
        target.true_weights().expect("MOG-4 has weights")
    );
    println!(
        "EM: {} iterations, converged {}, mean log likelihood {:.4}",
        fit.log_likelihood.len(),
        fit.converged,
        fit.log_likelihood.last().expect("one iteration")
    );
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|&a, &b| {
        target
            .assign(fit.means[a].view())
            .cmp(&target.assign(fit.means[b].view()))
    });
    for j in order {
        println!(
            "  component at ({:+.3}, {:+.3}) (mode {}): weight {:.3}, covariance diag ({:.3}, {:.3})",
            fit.means[j][0],
            fit.means[j][1],
            target.assign(fit.means[j].view()),
            fit.weights[j],
            fit.covs[j][[0, 0]],
            fit.covs[j][[1, 1]]
        );
    }
}
