//! Checks on output paths made before any work starts, so a run that would
//! fail at the end (existing output, missing folder) fails at once.

use anyhow::{bail, Result};
use std::path::Path;

/// Fails if `path` exists and `force` is not set, or its folder does not exist.
pub fn check_new_output(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{}: exists; pass --force to overwrite", path.display());
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            bail!("{}: folder {} does not exist", path.display(), dir.display());
        }
    }
    Ok(())
}

/// Prints `text` and a newline to stdout; a closed pipe (`fieldflow … | head`)
/// ends the program quietly instead of panicking.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// The resume guard of every command: `--resume` continues with what the
/// unfinished `OUT.partial` stores (`what`: its settings or configuration),
/// so any other setting given with it is refused.
pub fn check_resume_only(settings_given: bool, out: &Path, what: &str) -> Result<()> {
    if settings_given {
        bail!(
            "--resume continues with the {what} stored in {}.partial; pass only --out",
            out.display()
        );
    }
    Ok(())
}
