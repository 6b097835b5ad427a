//! Training and held-out samples of `fieldflow train`: exact draws of a
//! synthetic target, or configurations picked evenly spaced over the chains
//! of an ensemble file (after `skip`), so a small `n_train` still spans the
//! whole ensemble.

use super::settings::TrainRunConfig;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use fieldflow_core::{Par, Seed};
use fieldflow_io::EnsembleReader;
use ndarray::{Array2, Axis};

/// Evenly spaced picks: `n` indices out of `total`, avoiding `taken`.
fn spaced(total: usize, n: usize, offset: f64) -> Vec<usize> {
    (0..n)
        .map(|i| (((i as f64 + offset) * total as f64 / n as f64) as usize).min(total - 1))
        .collect()
}

/// Training and held-out samples (rows), each optional.
pub type Samples = (Option<Array2<f64>>, Option<Array2<f64>>);

/// Training and held-out samples.
pub fn load_data(c: &TrainRunConfig, target: &RunTarget) -> Result<Samples> {
    let d = &c.data;
    if d.exact {
        let RunTarget::Synthetic(t) = target else {
            bail!("data.exact: the lattice target has no exact sampler")
        };
        let sampler = t
            .exact_sampler()
            .context("data.exact: this target has no exact sampler")?;
        let draw = |n: u64, stream: u64| {
            let mut xs = Array2::zeros((n as usize, t.dim()));
            sampler.sample_batch(Seed::new(c.seed).child(100 + stream), xs.view_mut(), Par::default());
            xs
        };
        return Ok((Some(draw(d.n_train, 0)), Some(draw(d.n_heldout, 1))));
    }
    let Some(file) = &d.file else { return Ok((None, None)) };
    let r = EnsembleReader::open(file)?;
    let all = r.configs_flat()?;
    let skip = d.skip as usize;
    if skip >= r.n_cfg() {
        bail!(
            "data.skip = {skip}: leaves nothing of {} configurations per chain in {file}",
            r.n_cfg()
        );
    }
    if r.dim() != target.as_target().dim() {
        bail!(
            "{file}: configurations have {} sites, the target {}",
            r.dim(),
            target.as_target().dim()
        );
    }
    let per_chain = r.n_cfg() - skip;
    let pool: Vec<_> = (0..r.n_chains())
        .flat_map(|ch| (skip..r.n_cfg()).map(move |i| (ch, i)))
        .collect();
    let total = pool.len();
    let (nt, nh) = (d.n_train as usize, d.n_heldout as usize);
    if nt + nh > total {
        bail!(
            "data: n_train + n_heldout = {} exceeds the {total} configurations ({per_chain} per chain) in {file}",
            nt + nh
        );
    }
    let pick = |idx: &[usize]| {
        let mut x = Array2::zeros((idx.len(), r.dim()));
        for (row, &k) in idx.iter().enumerate() {
            let (ch, i) = pool[k];
            x.row_mut(row).assign(&all.index_axis(Axis(0), ch).row(i));
        }
        x
    };
    let train_idx = spaced(total, nt, 0.0);
    let mut used = vec![false; total];
    train_idx.iter().for_each(|&i| used[i] = true);
    let free: Vec<usize> = (0..total).filter(|&i| !used[i]).collect();
    let held_idx: Vec<usize> = spaced(free.len(), nh, 0.5).into_iter().map(|i| free[i]).collect();
    Ok(((nt > 0).then(|| pick(&train_idx)), (nh > 0).then(|| pick(&held_idx))))
}
