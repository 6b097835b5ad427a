//! How the processes of a data-parallel run share a batch.
//!
//! A batch of N rows is cut into K = ⌈N/c⌉ chunks of c = `Par::chunk_rows`
//! rows (chunk k holds rows k·c .. min((k+1)·c, N)). Process `rank` of
//! `size` evaluates the contiguous chunks [`shard`]`(K, rank, size)` =
//! ⌊rank·K/size⌋ .. ⌊(rank+1)·K/size⌋, so the union over processes is the
//! whole batch. One all-gather then gives every process every chunk's
//! contribution, which each adds up in chunk order: the result is the one a
//! single process computes, bit for bit, whatever `size`
//! ([`crate::Loss::value_and_grad_exchanged`]).
//!
//! A single process is the trivial exchange ([`SingleProcess`]); MPI ranks
//! (the CLI's `Dist`) and threads (the tests) are others.

use std::ops::Range;

/// The collectives of a data-parallel run (module docs). Every process
/// calls every collective, in the same order.
pub trait Exchange {
    /// Index of this process (0-based).
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// All-gather: every process passes `mine` (`counts[rank]` values);
    /// returns the concatenation of all processes' buffers in rank order
    /// (`counts` is the same on every process).
    fn all_gather(&mut self, mine: Vec<f64>, counts: &[usize]) -> Vec<f64>;
    /// Whether `flag` is true on any process (logical or).
    fn any(&mut self, flag: bool) -> bool {
        let counts = vec![1; self.size()];
        let all = self.all_gather(vec![f64::from(u8::from(flag))], &counts);
        all.iter().any(|&v| v != 0.0)
    }
}

/// The exchange of a single process: its collectives are identities.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Exchange for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&mut self, mine: Vec<f64>, _counts: &[usize]) -> Vec<f64> {
        mine
    }
    fn any(&mut self, flag: bool) -> bool {
        flag
    }
}

/// The chunks of `n_chunks` that process `rank` of `size` evaluates.
pub fn shard(n_chunks: usize, rank: usize, size: usize) -> Range<usize> {
    (rank * n_chunks / size)..((rank + 1) * n_chunks / size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_chunk_once_in_order() {
        for size in 1..9 {
            for k in 0..20 {
                let all: Vec<usize> = (0..size).flat_map(|r| shard(k, r, size)).collect();
                assert_eq!(all, (0..k).collect::<Vec<_>>(), "size {size}, {k} chunks");
            }
        }
    }

    #[test]
    fn single_process_any_is_the_flag() {
        assert!(SingleProcess.any(true));
        assert!(!SingleProcess.any(false));
        assert_eq!(SingleProcess.all_gather(vec![1.0, 2.0], &[2]), vec![1.0, 2.0]);
    }
}
