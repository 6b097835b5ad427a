//! The lattice φ⁴ target given by flags, shared by `generate` and `train`.
//!
//! The action (docs/THEORY.md §2.2–§2.3) is given in one of two equivalent
//! forms: the standard (Albergo–Kanwar–Shanahan) form with (m², λ),
//!
//! S(φ) = Σₓ [ Σ_μ (φ(x+μ̂) − φ(x))² + m² φ(x)² + λ φ(x)⁴ ],
//!
//! or the hopping form with (κ, λ̂),
//!
//! S(ϕ) = Σₓ [ −2κ Σ_μ ϕ(x)ϕ(x+μ̂) + (1 − 2λ̂) ϕ(x)² + λ̂ ϕ(x)⁴ ],
//!
//! related by φ = √κ ϕ, m² = (1 − 2λ̂)/κ − 2d, λ = λ̂/κ². `--lattice 16x16`
//! gives the extents L₀ × … × L_{d−1}.
//!
//! The flags set single keys of the config's `[phi4]` table, so they
//! override a `--config` file key by key (`--m2 -5` with a file's `[phi4]`
//! keeps its lattice and λ); a flag in one form of the couplings removes the
//! file's couplings of the other form. A config whose target is a `[target]`
//! (a synthetic density) cannot be overridden by φ⁴ flags: that is an error,
//! as are both forms at once. Validation of the values (λ ≥ 0, extents > 0,
//! …) is the target's own ([`fieldflow_lattice::Phi4Config::validate`]).

use crate::config::{self, parse_shape};
use anyhow::{bail, Result};
use clap::Args;

/// The φ⁴ target flags.
#[derive(Args, Debug, Default, Clone)]
pub struct Phi4Args {
    /// Lattice extents, e.g. 16x16 (sets phi4.lattice).
    #[arg(long)]
    pub lattice: Option<String>,
    /// Bare mass squared m² (standard form; sets phi4.m2).
    #[arg(long, allow_hyphen_values = true)]
    pub m2: Option<f64>,
    /// Quartic coupling λ (standard form; sets phi4.lambda).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda: Option<f64>,
    /// Hopping parameter κ (hopping form; sets phi4.kappa).
    #[arg(long, allow_hyphen_values = true)]
    pub kappa: Option<f64>,
    /// Quartic coupling λ̂ (hopping form; sets phi4.lambda_hat).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda_hat: Option<f64>,
}

/// What [`Phi4Args::apply`] tells a command whose config has no target at all.
pub const NO_TARGET_HINT: &str = "pass --lattice, --m2 and --lambda (or --kappa and --lambda-hat)";

impl Phi4Args {
    /// Whether any φ⁴ flag was given.
    pub fn any(&self) -> bool {
        self.lattice.is_some()
            || self.m2.is_some()
            || self.lambda.is_some()
            || self.kappa.is_some()
            || self.lambda_hat.is_some()
    }

    /// Sets the given flags as keys of `t`'s `[phi4]` table (module docs).
    ///
    /// # Errors
    /// A lattice that is not extents like `16x16`; both coupling forms; φ⁴
    /// flags with a `[target]` section in `t`.
    pub fn apply(&self, t: &mut toml::Table) -> Result<()> {
        if !self.any() {
            return Ok(());
        }
        if t.contains_key("target") {
            bail!(
                "--lattice/--m2/--lambda/--kappa/--lambda-hat set a [phi4] target, but the config's target is a \
                 [target] section: give one of the two"
            );
        }
        let standard = self.m2.is_some() || self.lambda.is_some();
        let hopping = self.kappa.is_some() || self.lambda_hat.is_some();
        if standard && hopping {
            bail!("--m2/--lambda and --kappa/--lambda-hat are two forms of the couplings: give one");
        }
        if let Some(l) = &self.lattice {
            let shape: Vec<i64> = parse_shape(l)?.into_iter().map(|v| v as i64).collect();
            config::set(t, "phi4.lattice", shape);
        }
        let forms = [
            ("m2", self.m2),
            ("lambda", self.lambda),
            ("kappa", self.kappa),
            ("lambda_hat", self.lambda_hat),
        ];
        for (i, (key, v)) in forms.iter().enumerate() {
            if let Some(v) = v {
                config::set(t, &format!("phi4.{key}"), *v);
                // A flag in one form replaces the file's couplings of the other form.
                let others = if i < 2 { &forms[2..] } else { &forms[..2] };
                for (k, _) in others {
                    config::remove(t, &format!("phi4.{k}"));
                }
            }
        }
        complete(t)
    }
}

/// With the flags applied, the `[phi4]` table must name a lattice and one
/// complete pair of couplings; what is missing is named as the flag that
/// gives it.
fn complete(t: &toml::Table) -> Result<()> {
    let phi4 = t.get("phi4").and_then(toml::Value::as_table);
    let has = |k: &str| phi4.is_some_and(|p| p.contains_key(k));
    if !has("lattice") {
        bail!("phi4.lattice missing: pass --lattice, e.g. --lattice 8x8");
    }
    for (a, b) in [("m2", "lambda"), ("kappa", "lambda_hat")] {
        if has(a) != has(b) {
            let (given, missing) = if has(a) { (a, b) } else { (b, a) };
            bail!(
                "phi4.{missing} missing: phi4.{given} is given, pass --{} with it",
                missing.replace('_', "-")
            );
        }
    }
    if !has("m2") && !has("kappa") {
        bail!("phi4 couplings missing: pass --m2 and --lambda (or --kappa and --lambda-hat)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn flags_override_single_keys_and_replace_the_other_coupling_form() {
        let mut t = table("[phi4]\nlattice = [8, 8]\nkappa = 0.3\nlambda_hat = 0.02\n");
        Phi4Args {
            m2: Some(-5.0),
            lambda: Some(3.0),
            ..Default::default()
        }
        .apply(&mut t)
        .unwrap();
        assert_eq!(t, table("[phi4]\nlattice = [8, 8]\nm2 = -5.0\nlambda = 3.0\n"));
        Phi4Args {
            lattice: Some("4x6".into()),
            lambda: Some(8.0),
            ..Default::default()
        }
        .apply(&mut t)
        .unwrap();
        assert_eq!(t, table("[phi4]\nlattice = [4, 6]\nm2 = -5.0\nlambda = 8.0\n"));
        // No flags: the table is untouched, a [target] included.
        let mut s = table("[target]\nkind = \"mog4\"\n");
        Phi4Args::default().apply(&mut s).unwrap();
        assert_eq!(s, table("[target]\nkind = \"mog4\"\n"));
    }

    #[test]
    fn conflicting_flags_are_refused_naming_the_conflict() {
        let err = |a: Phi4Args, text: &str| a.apply(&mut table(text)).unwrap_err().to_string();
        let both = Phi4Args {
            m2: Some(1.0),
            kappa: Some(0.1),
            ..Default::default()
        };
        assert!(err(both, "").contains("two forms"));
        let on_synthetic = Phi4Args {
            m2: Some(1.0),
            ..Default::default()
        };
        assert!(err(on_synthetic, "[target]\nkind = \"mog4\"\n").contains("[target] section"));
        let bad = Phi4Args {
            lattice: Some("8y8".into()),
            ..Default::default()
        };
        assert!(err(bad, "").contains("--lattice 8y8"));
        // What the flags leave incomplete is named by the flag that gives it.
        let m2 = |v| Phi4Args {
            m2: Some(v),
            ..Default::default()
        };
        assert!(err(m2(1.0), "").contains("phi4.lattice missing: pass --lattice"));
        assert!(err(m2(1.0), "[phi4]\nlattice = [4]\n").contains("phi4.lambda missing"));
        let kappa = Phi4Args {
            kappa: Some(0.2),
            ..Default::default()
        };
        let e = err(kappa, "[phi4]\nlattice = [4]\nm2 = 1.0\nlambda = 1.0\n");
        assert!(
            e.contains("phi4.lambda_hat missing") && e.contains("--lambda-hat"),
            "{e}"
        );
        let lattice = Phi4Args {
            lattice: Some("4".into()),
            ..Default::default()
        };
        assert!(err(lattice, "").contains("couplings missing"));
    }
}
