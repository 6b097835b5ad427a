//! Helpers shared by the integration tests: deterministic fake chains.
#![allow(dead_code)]

use fieldflow_io::{Block, EnsembleSpec, EnsembleWriter, FileKind, Header, IoError, SeriesSpec, SeriesView};
use ndarray::{Array2, Array3};
use std::path::Path;

pub const CONFIG: &str = "[lattice]\nshape = [4, 4]\n[phi4]\nkappa = 0.2\nlambda = 0.02\n\
[hmc]\nstep_size = 0.1\nn_leapfrog = 10\n[run]\nn_chains = 2\n";

pub fn header(kind: FileKind) -> Header {
    Header::new(kind, CONFIG, 42, "phi4 d=2 L=4x4 kappa=0.2 lambda=0.02")
        .with_attr("sampler", "hmc")
        .with_attr("step_size", 0.1)
        .with_attr("n_leapfrog", 10u64)
}

pub fn spec() -> EnsembleSpec {
    EnsembleSpec::new(2, [4, 4])
        .with_series(SeriesSpec::f64("log_p"))
        .with_series(SeriesSpec::u8("accepted"))
        .with_series(SeriesSpec::f64("delta_h"))
}

/// Value of degree of freedom `d` of step `t` of chain `c` (exact in binary).
pub fn value(c: usize, t: usize, d: usize) -> f64 {
    c as f64 * 1000.0 + t as f64 + d as f64 / 64.0
}

pub fn log_p(c: usize, t: usize) -> f64 {
    -((c * 100 + t) as f64) * 0.5
}

pub fn accepted(t: usize) -> u8 {
    u8::from(t.is_multiple_of(3))
}

pub fn delta_h(c: usize, t: usize) -> f64 {
    ((c + 1) * (t + 1)) as f64 * 1e-3
}

pub fn chains_json(t_end: usize) -> String {
    format!("{{\"n_steps\":{t_end},\"step_size\":[0.1,0.12]}}")
}

/// The data of steps `start..start + k` for all chains of [`spec`].
pub struct BlockData {
    pub configs: Array3<f64>,
    pub log_p: Array2<f64>,
    pub accepted: Array2<u8>,
    pub delta_h: Array2<f64>,
    pub state: Array2<f64>,
    pub chains: String,
}

pub fn block_data(start: usize, k: usize) -> BlockData {
    let n = 2;
    let dim = 16;
    BlockData {
        configs: Array3::from_shape_fn((n, k, dim), |(c, t, d)| value(c, start + t, d)),
        log_p: Array2::from_shape_fn((n, k), |(c, t)| log_p(c, start + t)),
        accepted: Array2::from_shape_fn((n, k), |(_, t)| accepted(start + t)),
        delta_h: Array2::from_shape_fn((n, k), |(c, t)| delta_h(c, start + t)),
        state: Array2::from_shape_fn((n, dim), |(c, d)| value(c, start + k - 1, d)),
        chains: chains_json(start + k),
    }
}

/// Appends steps `start..start + k` to `w`.
pub fn append(w: &mut EnsembleWriter, start: usize, k: usize) -> Result<(), IoError> {
    let b = block_data(start, k);
    let series = [
        ("log_p", SeriesView::F64(b.log_p.view())),
        ("accepted", SeriesView::U8(b.accepted.view())),
        ("delta_h", SeriesView::F64(b.delta_h.view())),
    ];
    w.append(&Block {
        configs: b.configs.view(),
        series: &series,
        state: b.state.view(),
        chains: &b.chains,
    })
}

/// Writes a finished ensemble of `blocks` block sizes to `path`.
pub fn write_ensemble(path: &Path, header: &Header, blocks: &[usize], force: bool) {
    let mut w = EnsembleWriter::create(path, header, &spec(), force).unwrap();
    let mut t = 0;
    for &k in blocks {
        append(&mut w, t, k).unwrap();
        t += k;
    }
    w.finish().unwrap();
}
