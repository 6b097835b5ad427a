//! Checks on output paths made before any work starts, so a run that would
//! fail at the end (existing output, missing folder) fails at once; the
//! printing of results to stdout, and how printed numbers show a value
//! that does not exist.

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

/// What a summary or table prints in place of a number that does not
/// exist: a part a loss does not use, a held-out NLL without held-out data
/// (stored as NaN in files, docs/FORMATS.md).
pub const NONE: &str = "–";

/// `v` with `digits` decimals, or [`NONE`] where it is NaN.
pub fn num(v: f64, digits: usize) -> String {
    or_none(v, |v| format!("{v:.digits$}"))
}

/// `show(v)`, or [`NONE`] where `v` is NaN.
pub fn or_none(v: f64, show: impl FnOnce(f64) -> String) -> String {
    if v.is_nan() {
        NONE.to_string()
    } else {
        show(v)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_number_prints_as_a_dash_and_others_unchanged() {
        assert_eq!(num(f64::NAN, 4), "–");
        assert_eq!(num(-8.5812, 2), "-8.58");
        assert_eq!(num(f64::INFINITY, 2), "inf");
        assert_eq!(or_none(0.5, |v| format!("{v:+.1}")), "+0.5");
    }
}
