//! The arguments every long-running command (`generate`, `train`,
//! `sample`) shares, declared once and flattened into each command's
//! arguments.

use clap::Args;
use std::path::PathBuf;

/// Output, seed, resume and verbosity of a run.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output file (an existing one is never replaced without --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Continue the interrupted run in OUT: only --out (and, for train,
    /// --steps) may be given with it.
    #[arg(long)]
    pub resume: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}
