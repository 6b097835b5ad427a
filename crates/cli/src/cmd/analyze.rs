//! `fieldflow analyze FILE...`: physics observables with honest error bars
//! ([`crate::analysis`]): a table or JSON, optionally an analysis file and
//! figures.

use crate::analysis::*;
use crate::output::check_new_output;
use crate::plots;
use anyhow::Result;
use clap::Args;
use fieldflow_io::{AnalysisFile, AnalysisInput, AnalysisRecord, FileKind, Header};
use fieldflow_stats::GammaConfig;
use std::path::{Path, PathBuf};

/// Arguments of `fieldflow analyze`.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Ensemble or sample files (several are shown side by side).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Configurations to drop at the start of every chain (thermalization).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// Wolff's S parameter of the automatic window.
    #[arg(long, default_value_t = 1.5)]
    pub s_tau: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Store the results in an analysis HDF5 file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// Write figures (SVG) into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// Runs `fieldflow analyze`.
pub fn run(args: AnalyzeArgs) -> Result<()> {
    if let Some(out) = &args.out {
        check_new_output(out, args.force)?;
    }
    let cfg = GammaConfig {
        s_tau: args.s_tau,
        ..Default::default()
    };
    cfg.validate()?;
    let analyses: Vec<FileAnalysis> = args
        .files
        .iter()
        .map(|f| analyze_file(f, args.skip, &cfg))
        .collect::<Result<_>>()?;
    if args.json {
        crate::output::emit(&serde_json::to_string_pretty(&analyses)?);
    } else {
        for a in &analyses {
            crate::output::emit(&render_table(a));
        }
        if analyses.len() > 1 {
            crate::output::emit(&side_by_side(&analyses));
        }
    }
    if let Some(dir) = &args.plots {
        for a in &analyses {
            let written = plots::analysis_figures(a, dir)?;
            if !args.json {
                for w in written {
                    crate::output::emit(&format!("figure: {}", w.display()));
                }
            }
        }
    }
    if let Some(out) = &args.out {
        write_analysis(out, &analyses, args.force)?;
    }
    Ok(())
}

/// Stores the analyses in an analysis HDF5 file.
pub fn write_analysis(out: &Path, analyses: &[FileAnalysis], force: bool) -> Result<()> {
    // Group names: the files' base names, made unique by a numeric suffix.
    let mut names: Vec<String> = Vec::new();
    for a in analyses {
        let base = Path::new(&a.file)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "input".into());
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        names.push(name);
    }
    let inputs = analyses
        .iter()
        .zip(names)
        .map(|(a, name)| AnalysisInput {
            name,
            records: a
                .rows
                .iter()
                .map(|r| AnalysisRecord {
                    observable: r.observable.clone(),
                    value: r.value,
                    error: r.error,
                    tau_int: r.tau_int,
                    tau_int_error: r.tau_int_error,
                    window: r.window,
                    n: r.n,
                    gamma: r.rho.clone(),
                })
                .collect(),
        })
        .collect();
    let files: Vec<&str> = analyses.iter().map(|a| a.file.as_str()).collect();
    let header = Header::new(FileKind::Analysis, serde_json::to_string(&files)?, 0, "analysis");
    AnalysisFile { header, inputs }.write(out, force)?;
    Ok(())
}
