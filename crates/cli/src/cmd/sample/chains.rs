//! The chains of a sample run, built from its settings and the pieces it
//! samples with (target, model as proposal / density / flow), without any
//! file: `fieldflow sample` runs them into its output file, the Python
//! package (python/) into arrays.
//!
//! [`with_chains`] resolves the local kernel (the stored step of a resumed
//! run, or a warm-up), neutra's pulled-back density, the global move, and
//! hands the chains this process owns to a closure (the chains borrow the
//! kernel and the pulled-back density, which live in this function).

use super::cost::CountedTarget;
use super::kernels;
use super::settings::{Method, SampleConfig};
use anyhow::{bail, Context, Result};
use fieldflow_core::run::BlockChains;
use fieldflow_core::{IsotropicGaussian, Par, Proposal, ProposalDensity, Seed, Target};
use fieldflow_flowmcmc::{NeutraBlocks, NeutraChain};
use fieldflow_flows::{Flow, Pullback};
use fieldflow_imh::{GlobalMove, ImhBlocks, ImhChain, ImhConfig, ImhState, ImportanceBlocks};
use fieldflow_lattice::Phi4;
use std::ops::Range;

/// What a sample run samples with.
#[derive(Clone, Copy)]
pub struct Sampling<'a> {
    /// The target density.
    pub target: &'a dyn Target,
    /// The target itself when it is lattice φ⁴ (Metropolis sweeps need it).
    pub phi4: Option<&'a Phi4>,
    /// The model as a proposal.
    pub proposal: &'a dyn Proposal,
    /// The model's density q(x), if it has one (flows; not SNFs).
    pub density: Option<&'a dyn ProposalDensity>,
    /// The model as a bijection x = f(z), if it is a flow.
    pub flow: Option<&'a Flow>,
}

/// Refuses a model that `method` cannot use (`name`: how errors name it):
/// neutra and adaptive need a flow, the methods with local moves a density.
///
/// # Errors
/// The method needs what the model does not have.
pub fn check_model(method: Method, has_flow: bool, has_density: bool, name: &str) -> Result<()> {
    if method.needs_flow() && !has_flow {
        let others = if has_density {
            "imh, isir, is, hybrid or global-local"
        } else {
            "imh, isir or is"
        };
        bail!(
            "method = {}: {name} is not a normalizing flow, a bijection x = f(z) (a stochastic normalizing flow, \
             a diffusion model or a mixture of flows); use {others}",
            method.as_str()
        );
    }
    if method.has_local() && !has_density {
        bail!(
            "method = {}: {name} (a stochastic normalizing flow or an LRDS sampler) has no tractable log q(x) \
             to re-weigh the state after local moves; use method imh, isir or is (exact with path weights)",
            method.as_str()
        );
    }
    Ok(())
}

/// What the chains were built with, for the caller's records.
pub struct Prepared<'a> {
    /// The local kernel's step (methods with local moves).
    pub local_step: Option<f64>,
    /// Whether `local_step` was tuned now (not taken from a resumed run).
    pub tuned: bool,
    /// neutra: the pulled-back density, counting its evaluations.
    pub pullback: Option<&'a CountedTarget<'a>>,
    /// Flow proposals per chain step (0 for neutra, K for i-SIR).
    pub flow_proposals: u64,
}

/// The global move of method `c.method`.
fn global_move(c: &SampleConfig) -> GlobalMove {
    match c.method {
        Method::Isir => GlobalMove::Isir {
            proposals: c.sampler.proposals as usize,
        },
        Method::GlobalLocal | Method::Adaptive => super::adaptive::global_move(c),
        _ => GlobalMove::Imh,
    }
}

/// Builds the chains `mine` of the run `c` on `s` and calls `run` with
/// them. `resumed`: the chains' JSON checkpoint of a resumed run, and
/// `stored_step` its local step (otherwise the step is `local_width`, or
/// tuned by the warm-up, module `kernels`).
///
/// # Errors
/// A model or kernel the method cannot use, a bad checkpoint, `run`'s error.
pub fn with_chains<R>(
    c: &SampleConfig,
    s: &Sampling<'_>,
    mine: Range<usize>,
    resumed: Option<&str>,
    stored_step: Option<f64>,
    run: impl FnOnce(&mut dyn BlockChains, &Prepared<'_>) -> Result<R>,
) -> Result<R> {
    check_model(c.method, s.flow.is_some(), s.density.is_some(), "the model")?;
    let kind = c.local_kind(s.phi4.is_some());
    // neutra: the kernel acts on the pulled-back density in z.
    let pullback = match (c.method, s.flow) {
        (Method::Neutra, Some(flow)) => Some(Pullback::new(flow, s.target)?),
        _ => None,
    };
    let counted_pullback = pullback.as_ref().map(|p| CountedTarget::new(p));
    let (space, space_phi4): (&dyn Target, _) = match &counted_pullback {
        Some(p) => (p, None),
        None => (s.target, s.phi4),
    };
    let (step, tuned) = match (c.method.has_local(), stored_step) {
        (false, _) => (None, false),
        (true, Some(step)) => (Some(step), false),
        (true, None) => {
            let base = s.flow.map(|f| IsotropicGaussian {
                dim: f.dim(),
                mean: 0.0,
                sigma: f.base_sigma(),
            });
            let start: &dyn Proposal = match (&pullback, &base) {
                (Some(_), Some(b)) => b,
                _ => s.proposal,
            };
            (Some(kernels::warm_up(c, kind, space, space_phi4, start)?), true)
        }
    };
    let kernel = step
        .map(|st| kernels::kernel(kind, st, c.sampler.hmc_length, space, space_phi4))
        .transpose()?;
    let seed = Seed::new(c.seed);
    let global = global_move(c);
    let flow_proposals = match (c.method, global) {
        (Method::Neutra, _) => 0,
        (_, GlobalMove::Imh) => 1,
        (_, GlobalMove::Isir { proposals }) => proposals as u64,
    };
    let mut chains: Box<dyn BlockChains + '_> = match (c.method, &pullback, kernel.as_deref()) {
        (Method::Is, _, _) => Box::new(ImportanceBlocks {
            target: s.target,
            proposal: s.proposal,
            seed,
            first: mine.start as u64,
            n: mine.len(),
        }),
        (Method::Neutra, Some(pullback), Some(k)) => {
            let chain =
                NeutraChain::new(pullback, k, c.local_steps as usize, seed)?.with_first_chain(mine.start as u64);
            let states = match resumed {
                Some(json) => serde_json::from_str(json).context("checkpoint unreadable")?,
                None => chain.initial_states(mine.len()),
            };
            Box::new(NeutraBlocks::new(chain, states)?)
        }
        (Method::Neutra, ..) => unreachable!("neutra has a flow (check_model) and a kernel (has_local)"),
        _ => {
            let config = ImhConfig {
                batch: c.batch as usize,
                local_steps: 0,
                par: Par::default(),
                global,
            };
            config.validate()?;
            let mut chain = ImhChain::new(s.target, s.proposal, seed, config).with_first_chain(mine.start as u64);
            if let (Some(k), Some(density)) = (kernel.as_deref(), s.density) {
                chain = chain.with_local(k, c.local_steps as usize, density);
            }
            let states: Vec<ImhState> = match resumed {
                Some(json) => serde_json::from_str(json).context("checkpoint unreadable")?,
                None => chain.initial_states(mine.len()),
            };
            Box::new(ImhBlocks::new(chain, states))
        }
    };
    let prepared = Prepared {
        local_step: step,
        tuned,
        pullback: counted_pullback.as_ref(),
        flow_proposals,
    };
    run(chains.as_mut(), &prepared)
}
