//! The start-decided diagnostic: did anything after SLIPS's start move a
//! particle from one mode to another?
//!
//! Each particle's first denoiser estimate, made at its start draw y₀
//! ([`crate::SlipsBatch::starts`]), lies in the posterior basin its MCMC
//! chains fell into. With a target's mode assignment, let sᵢ be the mode of
//! that estimate and fᵢ the mode of the particle's sample. The kept fraction
//!
//!   κ = #{i : fᵢ = sᵢ} / n
//!
//! is 1 when nothing after the first call (the initial Langevin steps, the
//! time evolution) changed a particle's mode: then the output weights are
//! the shares #{sᵢ = k}/n of the first call, set by where the start draws
//! fell. Warm-started MCMC chains do not cross between posterior basins, so
//! this is what SLIPS does on every multimodal target measured, and those
//! shares do not follow the target's weights (docs/THEORY.md §6.12;
//! data/experiments/slips/README.md: the two-modes answer ≈ ⅔ is the same
//! for target weights ⅓, ½, ⅔ and 0.9). With the exact denoiser the first
//! estimate is an average over the modes and κ is far below 1 (test
//! `start_decided`: 0.51–0.63 against 1.00 with MCMC, two modes in d = 8).
//! κ near 1 does not by itself prove the weights wrong, but it says that
//! the target never had a say in them; the warning says so.

/// Kept fraction above which [`StartDecided::warning`] warns.
pub const WARN_KEPT: f64 = 0.95;

/// Fewest particles for which [`StartDecided::warning`] judges.
pub const MIN_PARTICLES: usize = 20;

/// Start and final modes of SLIPS particles, counted (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartDecided {
    /// Particles whose sample lies in the mode of their start estimate.
    pub kept: usize,
    /// Particles counted.
    pub n: usize,
    /// Particles per start mode.
    pub start_counts: Vec<usize>,
    /// Particles per final mode.
    pub final_counts: Vec<usize>,
}

impl StartDecided {
    /// No particles yet, for a target with `n_modes` modes.
    pub fn new(n_modes: usize) -> Self {
        StartDecided {
            kept: 0,
            n: 0,
            start_counts: vec![0; n_modes],
            final_counts: vec![0; n_modes],
        }
    }

    /// Counts particles with start modes `start` (mode indices as stored in
    /// the series [`crate::START_MODE`]) and final modes `fin`; a start mode
    /// that is not an index below the number of modes (NaN: not recorded)
    /// is skipped.
    pub fn add(&mut self, start: impl IntoIterator<Item = f64>, fin: impl IntoIterator<Item = usize>) {
        let n_modes = self.start_counts.len();
        for (s, f) in start.into_iter().zip(fin) {
            if !(s >= 0.0 && s < n_modes as f64) || f >= n_modes {
                continue;
            }
            let s = s as usize;
            self.n += 1;
            self.kept += usize::from(s == f);
            self.start_counts[s] += 1;
            self.final_counts[f] += 1;
        }
    }

    /// κ, NaN without particles.
    pub fn kept_fraction(&self) -> f64 {
        self.kept as f64 / self.n as f64
    }

    /// One line: κ and the start and final shares.
    pub fn summary(&self) -> String {
        let shares = |c: &[usize]| {
            let v: Vec<String> = c.iter().map(|&k| format!("{:.3}", k as f64 / self.n as f64)).collect();
            v.join("/")
        };
        format!(
            "{:.1} % of {} particles end in the mode of their start estimate (start shares {}, final {})",
            100.0 * self.kept_fraction(),
            self.n,
            shares(&self.start_counts),
            shares(&self.final_counts)
        )
    }

    /// The warning when the start decided the weights: a target with at
    /// least two modes, at least [`MIN_PARTICLES`] particles and κ ≥
    /// [`WARN_KEPT`]; None otherwise.
    pub fn warning(&self) -> Option<String> {
        (self.start_counts.len() >= 2 && self.n >= MIN_PARTICLES && self.kept_fraction() >= WARN_KEPT).then(|| {
            format!(
                "SLIPS's mode weights were fixed by its start draws: {}; nothing after the first denoiser \
                 call moved particles between modes, and SLIPS's start does not see the target's mode weights \
                 (docs/THEORY.md §6.12): check the weights with another method",
                self.summary()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_warns_only_when_kept() {
        let mut d = StartDecided::new(2);
        // 19 kept, 1 moved: κ = 0.95 → warns; shares 0.65/0.35 → 0.60/0.40.
        let start: Vec<f64> = (0..20).map(|i| if i < 13 { 0.0 } else { 1.0 }).collect();
        let mut fin: Vec<usize> = start.iter().map(|&s| s as usize).collect();
        fin[0] = 1;
        d.add(start.clone(), fin.clone());
        assert_eq!((d.kept, d.n), (19, 20));
        assert_eq!(d.start_counts, vec![13, 7]);
        assert_eq!(d.final_counts, vec![12, 8]);
        assert!(
            d.warning().unwrap().contains("95.0 % of 20 particles"),
            "{:?}",
            d.warning()
        );
        // One more kept particle: κ = 20/21 ≈ 0.952 still warns; four
        // moved ones bring κ to 20/25 < 0.95: no warning.
        d.add([1.0], [1]);
        assert!(d.warning().is_some());
        d.add([0.0; 4], [1; 4]);
        assert!(d.kept_fraction() < WARN_KEPT);
        assert_eq!(d.warning(), None);
    }

    #[test]
    fn no_judgement_for_one_mode_few_particles_or_missing_starts() {
        let mut one = StartDecided::new(1);
        one.add([0.0; 50], [0; 50]);
        assert_eq!(one.warning(), None);
        let mut few = StartDecided::new(2);
        few.add([0.0; 19], [0; 19]);
        assert_eq!(few.warning(), None);
        let mut missing = StartDecided::new(2);
        missing.add([f64::NAN, 2.0, -1.0, 0.0], [0, 0, 0, 0]);
        assert_eq!((missing.n, missing.kept), (1, 1));
    }
}
