//! The processes of a run: one (default build, or a plain launch) or the
//! ranks of an MPI job (`--features mpi`, launched by `mpirun` / `srun`;
//! docs/MPI.md).
//!
//! Everything rank-dependent in the commands goes through [`Dist`]: with one
//! process its collectives are identities, so the single-process code paths
//! stay exactly as they were. Every failure that could happen on one rank
//! only (rank 0's file writes) is followed by an agreement collective
//! ([`Dist::agree`]), so all ranks stop together and finalize MPI cleanly;
//! only rank 0 prints (see [`Dist::finish`]).

use anyhow::{anyhow, Result};
use fieldflow_losses::Exchange;

/// This process's place among the processes of the run.
pub struct Dist {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    mpi: Option<Mpi>,
}

#[cfg(feature = "mpi")]
struct Mpi {
    world: mpi::topology::SimpleCommunicator,
    // Dropped last: finalizes MPI.
    _universe: mpi::environment::Universe,
}

/// Whether the environment says this process was started by an MPI launcher.
#[cfg(feature = "mpi")]
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

impl Dist {
    /// One process (no MPI).
    pub fn single() -> Self {
        Dist {
            rank: 0,
            size: 1,
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// The processes of this run: the MPI world when built with the `mpi`
    /// feature and started by `mpirun` / `srun`, else one process.
    ///
    /// # Errors
    /// MPI cannot be initialized.
    pub fn init() -> Result<Self> {
        #[cfg(feature = "mpi")]
        if launched_by_mpi() {
            use mpi::traits::Communicator;
            let universe = mpi::initialize().ok_or_else(|| anyhow!("MPI could not be initialized"))?;
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            return Ok(Dist {
                rank,
                size,
                mpi: Some(Mpi {
                    world,
                    _universe: universe,
                }),
            });
        }
        Ok(Dist::single())
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of processes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0 (the one that writes files and prints).
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Whether there is more than one process.
    pub fn is_parallel(&self) -> bool {
        self.size > 1
    }

    /// Contiguous block of `n` items (chains) owned by `rank`.
    pub fn block(&self, n: usize, rank: usize) -> std::ops::Range<usize> {
        (rank * n / self.size)..((rank + 1) * n / self.size)
    }

    /// Agreement after a step that may fail on some ranks only: every rank
    /// passes its own result; all get `Ok` only if all succeeded, otherwise
    /// an error (rank 0's message when rank 0 failed). Collective.
    pub fn agree<T>(&self, r: Result<T>) -> Result<T> {
        if !self.is_parallel() {
            return r;
        }
        let failed = self.any(r.is_err());
        match r {
            Err(e) => Err(e),
            Ok(_) if failed => Err(anyhow!("another rank failed")),
            Ok(v) => Ok(v),
        }
    }

    /// Whether `flag` is true on any rank (collective; logical or).
    pub fn any(&self, flag: bool) -> bool {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let mut out = 0i32;
            m.world
                .all_reduce_into(&i32::from(flag), &mut out, SystemOperation::max());
            return out != 0;
        }
        flag
    }

    /// Gathers every rank's bytes on rank 0 (in rank order; empty elsewhere).
    pub fn gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::datatype::PartitionMut;
            use mpi::traits::{Communicator, Root};
            let root = m.world.process_at_rank(0);
            let n = mine.len() as u64;
            if self.is_root() {
                let mut lens = vec![0u64; self.size];
                root.gather_into_root(&n, &mut lens[..]);
                let (counts, displs) = counts_displs(&lens.iter().map(|&l| l as usize).collect::<Vec<_>>());
                let mut buf = vec![0u8; lens.iter().sum::<u64>() as usize];
                let mut part = PartitionMut::new(&mut buf[..], counts, &displs[..]);
                root.gather_varcount_into_root(mine, &mut part);
                let mut out = Vec::with_capacity(self.size);
                let mut at = 0;
                for l in lens {
                    out.push(buf[at..at + l as usize].to_vec());
                    at += l as usize;
                }
                return out;
            }
            root.gather_into(&n);
            root.gather_varcount_into(mine);
            return Vec::new();
        }
        vec![mine.to_vec()]
    }

    /// Rank 0's bytes on every rank (the argument is ignored elsewhere).
    pub fn broadcast_bytes(&self, root_data: Vec<u8>) -> Vec<u8> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::{Communicator, Root};
            let root = m.world.process_at_rank(0);
            let mut n = root_data.len() as u64;
            root.broadcast_into(&mut n);
            let mut buf = if self.is_root() {
                root_data
            } else {
                vec![0u8; n as usize]
            };
            root.broadcast_into(&mut buf[..]);
            return buf;
        }
        root_data
    }

    /// Ends a command: the result on rank 0 (and single processes) goes to
    /// `main`, which prints it; other ranks finalize MPI and exit silently
    /// (code 1 on error) so an error is printed once.
    pub fn finish(self, r: Result<()>) -> Result<()> {
        if self.rank == 0 {
            return r;
        }
        let code = match &r {
            Ok(()) => 0,
            Err(e) => match e.downcast_ref::<crate::interrupt::Interrupted>() {
                Some(_) => crate::interrupt::EXIT_INTERRUPTED,
                None => 1,
            },
        };
        // Finalize MPI (all ranks got here through agreed collectives).
        #[cfg(feature = "mpi")]
        drop(self.mpi);
        std::process::exit(code);
    }
}

/// One rank's part of a block as one message: the number of arrays, each
/// array's length and values (little-endian f64), then a JSON text
/// (inverse: [`unpack_arrays`]).
pub fn pack_arrays(arrays: &[&[f64]], json: &str) -> Vec<u8> {
    let n: usize = arrays.iter().map(|a| a.len()).sum();
    let mut out = Vec::with_capacity(8 * (1 + arrays.len() + n) + json.len());
    out.extend_from_slice(&(arrays.len() as u64).to_le_bytes());
    for a in arrays {
        out.extend_from_slice(&(a.len() as u64).to_le_bytes());
        for v in *a {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(json.as_bytes());
    out
}

/// Inverse of [`pack_arrays`].
///
/// # Errors
/// The message is truncated or its JSON part is not UTF-8.
pub fn unpack_arrays(bytes: &[u8]) -> Result<(Vec<Vec<f64>>, &str)> {
    let mut at = 0;
    let word = |at: &mut usize| -> Result<[u8; 8]> {
        let w = bytes
            .get(*at..*at + 8)
            .ok_or_else(|| anyhow!("MPI block message too short"))?;
        *at += 8;
        Ok(w.try_into().expect("8 bytes"))
    };
    let n_arrays = u64::from_le_bytes(word(&mut at)?) as usize;
    let mut arrays = Vec::with_capacity(n_arrays);
    for _ in 0..n_arrays {
        let len = u64::from_le_bytes(word(&mut at)?) as usize;
        let mut a = Vec::with_capacity(len);
        for _ in 0..len {
            a.push(f64::from_le_bytes(word(&mut at)?));
        }
        arrays.push(a);
    }
    let json = std::str::from_utf8(&bytes[at..]).map_err(|_| anyhow!("MPI block message: JSON part is not UTF-8"))?;
    Ok((arrays, json))
}

/// MPI counts and displacements of consecutive blocks of the given lengths.
#[cfg(feature = "mpi")]
fn counts_displs(lens: &[usize]) -> (Vec<mpi::Count>, Vec<mpi::Count>) {
    let counts: Vec<mpi::Count> = lens.iter().map(|&l| l as mpi::Count).collect();
    let displs = counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect();
    (counts, displs)
}

/// The ranks as the exchange of data-parallel training
/// ([`fieldflow_losses::exchange`]).
impl Exchange for &Dist {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&mut self, mine: Vec<f64>, counts: &[usize]) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::datatype::PartitionMut;
            use mpi::traits::CommunicatorCollectives;
            let (c, d) = counts_displs(counts);
            let mut buf = vec![0.0; counts.iter().sum()];
            let mut part = PartitionMut::new(&mut buf[..], c, &d[..]);
            m.world.all_gather_varcount_into(&mine[..], &mut part);
            return buf;
        }
        let _ = counts;
        mine
    }

    fn any(&mut self, flag: bool) -> bool {
        Dist::any(self, flag)
    }
}
