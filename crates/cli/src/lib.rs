//! The library behind the `fieldflow` command-line tool: the pipeline's
//! stages (generate, train, sample, analyze) as functions over a run's
//! config, so the command line and the Python package (python/, issue 19)
//! share one implementation. The binary (`src/main.rs`) only parses flags.

pub mod analysis;
pub mod blocks;
pub mod cmd;
pub mod config;
pub mod interrupt;
pub mod model;
pub mod mpi_dist;
pub mod output;
pub mod plots;
pub mod progress;
pub mod target;
