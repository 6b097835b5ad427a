//! What the diffusion examples share: the forward process they use and the
//! handling of their command line's outcome and output file.

use fieldflow_diffusion::NoiseSchedule;
use std::fs::File;

/// The VP schedule of the examples (β 0.1 → 20, the crate's default).
pub const VP: NoiseSchedule = NoiseSchedule::VariancePreserving {
    beta_min: 0.1,
    beta_max: 20.0,
};

/// The parsed arguments, or a one-line error and exit status 2.
pub fn args_or_exit<T>(parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    })
}

/// `path` opened for appending JSON lines (created if missing), or a
/// one-line error and exit status 2.
pub fn append_to(path: Option<&String>) -> Option<File> {
    path.map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap_or_else(|e| {
                eprintln!("error: cannot open {p}: {e}");
                std::process::exit(2)
            })
    })
}
