//! `fieldflow inspect FILE`: schema, target, shapes and provenance of a file.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `fieldflow inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// fieldflow HDF5 files (finished or `.partial`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Prints the summary of every file.
pub fn run(args: InspectArgs) -> Result<()> {
    for (i, f) in args.files.iter().enumerate() {
        if i > 0 {
            crate::output::emit("");
        }
        crate::output::emit(fieldflow_io::inspect(f)?.to_string().trim_end());
    }
    Ok(())
}
