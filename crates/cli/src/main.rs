//! `fieldflow`: the command-line tool.
//!
//! ```text
//! fieldflow generate  [--config FILE] [flags] --out ens.h5     HMC / Metropolis ensembles
//! fieldflow inspect   FILE                                     what a file holds
//! fieldflow train     [--config FILE] [flags] --out m.h5       fit a flow (φ⁴ from flags: --lattice 8x8 --m2 -4 --lambda 8)
//! fieldflow sample    --model m.h5 [flags] --out s.h5           exact sampling with the flow; cost per proposal
//! fieldflow analyze   FILE... [--json] [--out a.h5] [--plots DIR]   observables with Γ-method errors
//! fieldflow demo      --out DIR [--quick]                      the whole pipeline, small
//! ```
//!
//! Errors are printed as one line (`error: …`) with exit code 1; usage errors
//! exit with 2 (clap); a run stopped by Ctrl-C writes its checkpoint and
//! exits with 130.

use clap::{Parser, Subcommand};
use fieldflow::{cmd, interrupt};

/// Sampling lattice field theories and other unnormalized densities, with
/// MCMC and normalizing flows; every stage reads and writes HDF5.
#[derive(Parser)]
#[command(name = "fieldflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an MCMC ensemble (HMC or local Metropolis) of lattice φ⁴.
    Generate(cmd::generate::GenerateArgs),
    /// Print what a fieldflow HDF5 file holds: schema, target, shapes, provenance.
    Inspect(cmd::inspect::InspectArgs),
    /// Train a normalizing flow (FKL, RKL, score matching, ScoreNF; annealing).
    ///
    /// The target comes from flags (as for `generate`), a --config file's
    /// [phi4] or [target] section, or the --data ensemble; flags override
    /// the config's keys. The first training needs no file:
    ///
    ///   fieldflow train --lattice 8x8 --m2 -4 --lambda 8 --loss rkl --out m.h5
    ///
    /// (rkl needs no data; fkl, sm, scorenf and rkl_sm need --data.)
    Train(cmd::train::TrainArgs),
    /// Exact sampling with a flow: IMH, i-SIR, global-local (MALA/HMC/RW + flow move), neutra-MCMC, importance sampling, or adaptive flow-MCMC (trains the flow on its walkers first).
    Sample(cmd::sample::SampleArgs),
    /// Observables with Γ-method errors from ensembles or sample files.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// Two files side by side: estimates, deviation in σ, τ_int ratio, cost per independent sample.
    Compare(cmd::compare::CompareArgs),
    /// Run the complete small pipeline into one results folder.
    Demo(cmd::demo::DemoArgs),
    /// The log ratio of two mode weights by free-energy integration through the
    /// target's phases (resolves weights of 1e-10; 1D φ⁴ chain in a tilt).
    FreeEnergy(cmd::free_energy::FreeEnergyArgs),
}

fn main() {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (please report): {info}");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Sample(a) => cmd::sample::run(a),
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::FreeEnergy(a) => cmd::free_energy::run(a),
    };
    match result {
        Ok(()) => {}
        Err(e) => {
            if let Some(interrupt::Interrupted(msg)) = e.downcast_ref::<interrupt::Interrupted>() {
                eprintln!("{msg}");
                std::process::exit(interrupt::EXIT_INTERRUPTED);
            }
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
