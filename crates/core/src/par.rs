//! Deterministic data parallelism over the rows of a batch.
//!
//! A batch is an `Array2<f64>` with one sample per row. Work is split into
//! fixed chunks of [`Par::chunk_rows`] rows; chunk k always holds rows
//! `k·c .. (k+1)·c` whatever the number of threads, and reductions over chunks
//! are summed in chunk order. Together with one random stream per chunk
//! ([`crate::Seed`]) this makes every batched result bit-identical for 1 or N
//! rayon threads (`RAYON_NUM_THREADS`).

use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How a batched computation is split: rows per chunk, and whether chunks run
/// on the rayon pool (`parallel`) or one after another on the calling thread
/// (for callers that are themselves inside a parallel loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Par {
    /// Rows per chunk (≥ 1). The chunking, not the thread count, fixes the result.
    pub chunk_rows: usize,
    /// Run chunks on the rayon pool.
    pub parallel: bool,
}

impl Default for Par {
    fn default() -> Self {
        Par {
            chunk_rows: 32,
            parallel: true,
        }
    }
}

impl Par {
    /// Sequential execution with the given chunking.
    pub fn serial(chunk_rows: usize) -> Self {
        Par {
            chunk_rows: chunk_rows.max(1),
            parallel: false,
        }
    }

    /// Number of chunks for `n` rows.
    pub fn n_chunks(&self, n: usize) -> usize {
        n.div_ceil(self.chunk_rows.max(1))
    }

    /// Calls `f(chunk_index, first_row, rows, out)` for every chunk of `xs`
    /// and the matching rows of `out` (one value per row).
    ///
    /// # Panics
    /// If `xs` and `out` disagree on the number of rows.
    pub fn rows_to_values<F>(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, f: F)
    where
        F: Fn(usize, usize, ArrayView2<f64>, ArrayViewMut1<f64>) + Sync + Send,
    {
        assert_eq!(
            xs.nrows(),
            out.len(),
            "rows of the batch and length of the output differ"
        );
        let c = self.chunk_rows.max(1);
        let xs_chunks: Vec<_> = xs.axis_chunks_iter(Axis(0), c).collect();
        let out_chunks = split_1d(out, c);
        let body = |(k, (x, o)): (usize, (ArrayView2<f64>, ArrayViewMut1<f64>))| f(k, k * c, x, o);
        if self.parallel {
            xs_chunks.into_par_iter().zip(out_chunks).enumerate().for_each(body);
        } else {
            xs_chunks.into_iter().zip(out_chunks).enumerate().for_each(body);
        }
    }

    /// Calls `f(chunk_index, first_row, rows)` for every chunk of the mutable
    /// batch `xs` together with the matching entries of `out`.
    ///
    /// # Panics
    /// If `xs` and `out` disagree on the number of rows.
    pub fn rows_mut_to_values<F>(&self, mut xs: ArrayViewMut2<f64>, out: ArrayViewMut1<f64>, f: F)
    where
        F: Fn(usize, usize, ArrayViewMut2<f64>, ArrayViewMut1<f64>) + Sync + Send,
    {
        assert_eq!(
            xs.nrows(),
            out.len(),
            "rows of the batch and length of the output differ"
        );
        let c = self.chunk_rows.max(1);
        let xs_chunks: Vec<_> = xs.axis_chunks_iter_mut(Axis(0), c).collect();
        let out_chunks = split_1d(out, c);
        let body = |(k, (x, o)): (usize, (ArrayViewMut2<f64>, ArrayViewMut1<f64>))| f(k, k * c, x, o);
        if self.parallel {
            xs_chunks.into_par_iter().zip(out_chunks).enumerate().for_each(body);
        } else {
            xs_chunks.into_iter().zip(out_chunks).enumerate().for_each(body);
        }
    }

    /// Maps every chunk of `n` rows to a value `f(chunk_index, rows)` and
    /// returns the values in chunk order (for reductions that must not depend
    /// on the thread count: fold the returned vector sequentially).
    pub fn map_chunks<T, F>(&self, n: usize, f: F) -> Vec<T>
    where
        T: Send,
        F: Fn(usize, std::ops::Range<usize>) -> T + Sync + Send,
    {
        let c = self.chunk_rows.max(1);
        let ranges: Vec<_> = (0..self.n_chunks(n))
            .map(|k| (k, k * c..((k + 1) * c).min(n)))
            .collect();
        if self.parallel {
            ranges.into_par_iter().map(|(k, r)| f(k, r)).collect()
        } else {
            ranges.into_iter().map(|(k, r)| f(k, r)).collect()
        }
    }
}

/// Splits a 1-D view into consecutive chunks of `c` entries.
fn split_1d(mut v: ArrayViewMut1<'_, f64>, c: usize) -> Vec<ArrayViewMut1<'_, f64>> {
    let mut parts = Vec::new();
    loop {
        if v.len() <= c {
            parts.push(v);
            return parts;
        }
        let (head, tail) = v.split_at(Axis(0), c);
        parts.push(head);
        v = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn chunks_cover_every_row_once_in_order() {
        let xs = Array2::from_shape_fn((10, 2), |(i, j)| (i * 2 + j) as f64);
        let mut out = Array1::zeros(10);
        Par {
            chunk_rows: 3,
            parallel: true,
        }
        .rows_to_values(xs.view(), out.view_mut(), |_, first, x, mut o| {
            for (i, row) in x.rows().into_iter().enumerate() {
                o[i] = row.sum() + 1000.0 * (first + i) as f64;
            }
        });
        for i in 0..10 {
            assert_eq!(out[i], (4 * i + 1) as f64 + 1000.0 * i as f64);
        }
        let sums = Par::serial(4).map_chunks(10, |k, r| (k, r.len()));
        assert_eq!(sums, vec![(0, 4), (1, 4), (2, 2)]);
    }

    #[test]
    fn mutable_rows_are_visited_once() {
        let mut xs = Array2::<f64>::zeros((7, 3));
        let mut out = Array1::zeros(7);
        Par {
            chunk_rows: 2,
            parallel: true,
        }
        .rows_mut_to_values(xs.view_mut(), out.view_mut(), |k, first, mut x, mut o| {
            x += 1.0;
            o.fill((k * 100 + first) as f64);
        });
        assert_eq!(xs.sum(), 21.0);
        assert_eq!(out.to_vec(), vec![0.0, 0.0, 102.0, 102.0, 204.0, 204.0, 306.0]);
    }
}
