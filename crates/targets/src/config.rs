//! Configuration of a synthetic target: a serde enum tagged by `kind`, checked
//! once by [`TargetConfig::validate`] into a runnable target.
//!
//! In TOML, one table per target (field names exactly as below; unknown
//! fields are refused; the double-well and φ⁴ fields are optional and default
//! to the values of docs/THEORY.md §3.4–§3.5; `separated_mixture` needs `dim`
//! and `separation`, and defaults to σ = 1, two equal weights and the
//! diagonal axis):
//!
//! ```
//! use fieldflow_targets::TargetConfig;
//! let examples = [
//!     r#"kind = "mog4""#,
//!     r#"kind = "mog8""#,
//!     r#"kind = "two_modes"
//!        dim = 32"#,
//!     r#"kind = "separated_mixture"
//!        dim = 16
//!        separation = 6.0
//!        sigma = 1.0
//!        weights = [0.6666666666666666, 0.3333333333333334]
//!        axis = "diagonal""#,
//!     r#"kind = "gaussian"
//!        mean = [0.0, 1.0]
//!        cov = [[1.0, 0.5], [0.5, 2.0]]"#,
//!     r#"kind = "mixture"
//!        means = [[-2.0, 0.0], [2.0, 0.0]]
//!        covs = [0.5, [[1.0, 0.2], [0.2, 1.0]]]
//!        weights = [0.3, 0.7]"#,
//!     r#"kind = "double_well"
//!        a = -0.5
//!        b = -6.0
//!        c = 1.0"#,
//!     r#"kind = "phi4_1d"
//!        n = 100
//!        a = 0.1
//!        beta = 20.0
//!        b = 0.0"#,
//! ];
//! for s in examples {
//!     let config: TargetConfig = toml::from_str(s).unwrap();
//!     let target = config.validate().unwrap();
//!     println!("{}", target.describe());
//! }
//! ```
//!
//! A covariance is written as a number σ² (σ²I), a list of variances
//! (diagonal) or a list of rows (full matrix). Errors name the offending
//! field relative to the target table (`weights`, `covs[1]`, `cov[0][1]`,
//! `dim`, …); a caller that nests the table may prefix the field
//! (`ConfigError::field` is public).

use crate::double_well::{self, DoubleWell};
use crate::gaussian::Gaussian;
use crate::linalg::{format_vec, vec1};
use crate::mixture::{Covariance, GaussianMixture};
use crate::modes::SyntheticTarget;
use crate::phi4_1d::{self, Phi4Field1d};
use crate::presets::SeparationAxis;
use fieldflow_core::ConfigError;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// A covariance as written in a config: σ², diagonal variances, or rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CovarianceConfig {
    /// σ² I.
    Isotropic(f64),
    /// diag(v).
    Diagonal(Vec<f64>),
    /// A full matrix, one inner list per row.
    Full(Vec<Vec<f64>>),
}

impl CovarianceConfig {
    /// The [`Covariance`] it describes; ragged rows are an error naming
    /// `field[i]`.
    pub fn to_covariance(&self, field: &str) -> Result<Covariance, ConfigError> {
        Ok(match self {
            CovarianceConfig::Isotropic(v) => Covariance::Isotropic(*v),
            CovarianceConfig::Diagonal(v) => Covariance::Diagonal(vec1(v)),
            CovarianceConfig::Full(rows) => Covariance::Full(matrix(rows, field)?),
        })
    }
}

/// Rows → a dense matrix, refusing ragged or empty input.
fn matrix(rows: &[Vec<f64>], field: &str) -> Result<Array2<f64>, ConfigError> {
    let n = rows.len();
    if n == 0 {
        return Err(ConfigError::new(field, "[]", "needs at least one row"));
    }
    let m = rows[0].len();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != m {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format_vec(r),
                format!("has {} entries but {field}[0] has {m}", r.len()),
            ));
        }
    }
    Ok(Array2::from_shape_fn((n, m), |(i, j)| rows[i][j]))
}

/// Which synthetic target to build (docs/THEORY.md §3.6), tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// MOG-4: [`GaussianMixture::mog4`].
    Mog4 {},
    /// MOG-8: [`GaussianMixture::mog8`].
    Mog8 {},
    /// Two modes in `dim` dimensions: [`GaussianMixture::two_modes`].
    TwoModes {
        /// Dimension d ≥ 1 (the benchmarks use 8, 16, 32, 64, 128).
        dim: usize,
    },
    /// K isotropic modes on a line, neighbouring means `separation` σ apart:
    /// [`GaussianMixture::separated`].
    SeparatedMixture {
        /// Dimension d ≥ 1.
        dim: usize,
        /// Distance s > 0 between neighbouring means in units of σ.
        separation: f64,
        /// Standard deviation σ > 0 of every component (default 1).
        #[serde(default = "default_sigma")]
        sigma: f64,
        /// Component weights, > 0, summing to 1; their number is K
        /// (default [0.5, 0.5]).
        #[serde(default = "default_separated_weights")]
        weights: Vec<f64>,
        /// Direction of the line: "diagonal" (𝟙/√d, default) or "first" (e₁).
        #[serde(default)]
        axis: SeparationAxis,
    },
    /// N(mean, cov), unnormalized with exact log Z: [`Gaussian`].
    Gaussian {
        /// The mean μ; its length is the dimension.
        mean: Vec<f64>,
        /// The covariance Σ (σ², variances or rows).
        cov: CovarianceConfig,
    },
    /// Σₖ `weights[k]` N(`means[k]`, `covs[k]`), normalized: [`GaussianMixture`].
    Mixture {
        /// One mean per component, all of the same length.
        means: Vec<Vec<f64>>,
        /// One covariance per component (σ², variances or rows).
        covs: Vec<CovarianceConfig>,
        /// Component weights, > 0, summing to 1.
        weights: Vec<f64>,
    },
    /// The 2D double well a x₁ + b x₁² + c x₁⁴ + ½ x₂²: [`DoubleWell`].
    DoubleWell {
        /// Linear coefficient (default −0.5).
        #[serde(default = "default_dw_a")]
        a: f64,
        /// Quadratic coefficient (default −6).
        #[serde(default = "default_dw_b")]
        b: f64,
        /// Quartic coefficient, > 0 (default 1).
        #[serde(default = "default_dw_c")]
        c: f64,
    },
    /// The 1D φ⁴ / Allen–Cahn field: [`Phi4Field1d`].
    #[serde(rename = "phi4_1d")]
    Phi4Field1d {
        /// Number of sites N (default 100).
        #[serde(default = "default_phi4_n")]
        n: usize,
        /// Spacing parameter a > 0 (default 0.1).
        #[serde(default = "default_phi4_a")]
        a: f64,
        /// Inverse temperature β > 0 (default 20).
        #[serde(default = "default_phi4_beta")]
        beta: f64,
        /// Tilt b ≥ 0 (default 0).
        #[serde(default = "default_phi4_b")]
        b: f64,
    },
}

fn default_sigma() -> f64 {
    1.0
}
fn default_separated_weights() -> Vec<f64> {
    vec![0.5, 0.5]
}
fn default_dw_a() -> f64 {
    double_well::DEFAULT_A
}
fn default_dw_b() -> f64 {
    double_well::DEFAULT_B
}
fn default_dw_c() -> f64 {
    double_well::DEFAULT_C
}
fn default_phi4_n() -> usize {
    phi4_1d::DEFAULT_N
}
fn default_phi4_a() -> f64 {
    phi4_1d::DEFAULT_A
}
fn default_phi4_beta() -> f64 {
    phi4_1d::DEFAULT_BETA
}
fn default_phi4_b() -> f64 {
    phi4_1d::DEFAULT_B
}

impl TargetConfig {
    /// The `kind` tag as written in a config.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Mog4 {} => "mog4",
            TargetConfig::Mog8 {} => "mog8",
            TargetConfig::TwoModes { .. } => "two_modes",
            TargetConfig::SeparatedMixture { .. } => "separated_mixture",
            TargetConfig::Gaussian { .. } => "gaussian",
            TargetConfig::Mixture { .. } => "mixture",
            TargetConfig::DoubleWell { .. } => "double_well",
            TargetConfig::Phi4Field1d { .. } => "phi4_1d",
        }
    }

    /// Checks the configuration and builds the target.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field: a non-positive-definite,
    /// asymmetric or wrongly sized covariance, weights that are ≤ 0 or do not
    /// sum to 1, means of different lengths, `dim` = 0, c ≤ 0, …
    pub fn validate(&self) -> Result<Box<dyn SyntheticTarget>, ConfigError> {
        Ok(match self {
            TargetConfig::Mog4 {} => Box::new(GaussianMixture::mog4()),
            TargetConfig::Mog8 {} => Box::new(GaussianMixture::mog8()),
            TargetConfig::TwoModes { dim } => Box::new(GaussianMixture::two_modes(*dim)?),
            TargetConfig::SeparatedMixture {
                dim,
                separation,
                sigma,
                weights,
                axis,
            } => Box::new(GaussianMixture::separated(
                *dim,
                *separation,
                *sigma,
                weights.clone(),
                *axis,
            )?),
            TargetConfig::Gaussian { mean, cov } => {
                let d = mean.len();
                let cov = match cov.to_covariance("cov")? {
                    Covariance::Isotropic(v) => {
                        if !(v.is_finite() && v > 0.0) {
                            return Err(ConfigError::new("cov", v, "variance must be finite and > 0"));
                        }
                        Array2::eye(d) * v
                    }
                    Covariance::Diagonal(v) => {
                        if v.len() != d {
                            return Err(ConfigError::new(
                                "cov",
                                format_vec(&v.to_vec()),
                                format!("needs {d} variances (got {})", v.len()),
                            ));
                        }
                        if let Some(j) = v.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
                            return Err(ConfigError::new(
                                format!("cov[{j}]"),
                                v[j],
                                "variance must be finite and > 0",
                            ));
                        }
                        Array2::from_diag(&v)
                    }
                    Covariance::Full(m) => m,
                };
                Box::new(Gaussian::new(vec1(mean), cov)?)
            }
            TargetConfig::Mixture { means, covs, weights } => {
                let covs = covs
                    .iter()
                    .enumerate()
                    .map(|(k, c)| c.to_covariance(&format!("covs[{k}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Box::new(GaussianMixture::new(
                    means.iter().map(|m| vec1(m)).collect(),
                    covs,
                    weights.clone(),
                )?)
            }
            TargetConfig::DoubleWell { a, b, c } => Box::new(DoubleWell::new(*a, *b, *c)?),
            TargetConfig::Phi4Field1d { n, a, beta, b } => Box::new(Phi4Field1d::new(*n, *a, *beta, *b)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    fn parse(s: &str) -> Result<TargetConfig, String> {
        toml::from_str(s).map_err(|e| e.to_string())
    }

    fn err(s: &str) -> ConfigError {
        match parse(s).unwrap().validate() {
            Ok(t) => panic!("{s} should fail, built {}", t.describe()),
            Err(e) => e,
        }
    }

    #[test]
    fn every_kind_parses_and_builds() {
        let cases = [
            ("kind = \"mog4\"", 2, "MOG-4"),
            ("kind = \"mog8\"", 2, "MOG-8"),
            ("kind = \"two_modes\"\ndim = 8", 8, "two modes"),
            ("kind = \"separated_mixture\"\ndim = 8\nseparation = 5.0", 8, "separated (K = 2, s = 5"),
            (
                "kind = \"separated_mixture\"\ndim = 3\nseparation = 3.0\nsigma = 0.5\nweights = [0.2, 0.3, 0.5]\naxis = \"first\"",
                3,
                "K = 3, s = 3, sigma = 0.5, axis = First",
            ),
            ("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 0.5], [0.5, 2.0]]", 2, "Gaussian"),
            ("kind = \"gaussian\"\nmean = [0.0, 1.0, 2.0]\ncov = 0.5", 3, "Gaussian"),
            ("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [1.0, 2.0]", 2, "Gaussian"),
            (
                "kind = \"mixture\"\nmeans = [[-2.0, 0.0], [2.0, 0.0]]\ncovs = [0.5, [[1.0, 0.2], [0.2, 1.0]]]\nweights = [0.3, 0.7]",
                2,
                "general",
            ),
            ("kind = \"double_well\"", 2, "double well"),
            ("kind = \"double_well\"\na = 0.0\nb = -4.0\nc = 1.0", 2, "a = 0"),
            ("kind = \"phi4_1d\"", 100, "phi^4"),
            ("kind = \"phi4_1d\"\nn = 20\nb = 0.05", 20, "b = 0.05"),
        ];
        for (s, dim, word) in cases {
            let cfg = parse(s).unwrap();
            let t = cfg.validate().unwrap();
            assert_eq!(t.dim(), dim, "{s}");
            assert!(t.describe().contains(word), "{}", t.describe());
            // Round trip through TOML.
            let back: TargetConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
            assert_eq!(back, cfg);
        }
        // Every synthetic target offers exact Hessian-vector products.
        for (s, _, _) in cases {
            let t = parse(s).unwrap().validate().unwrap();
            let h = t
                .hessian_vector()
                .expect("every synthetic target implements HessianVector");
            let x = Array1::from_shape_fn(t.dim(), |i| 0.3 * i as f64 - 0.4);
            let v = Array1::from_shape_fn(t.dim(), |i| (0.7 * i as f64).sin() + 0.2);
            let err = crate::testing::hvp_error(h, x.view(), v.view());
            assert!(err < 1e-6, "{s}: relative error {err:e}");
        }
        let dw = parse("kind = \"double_well\"").unwrap();
        assert_eq!(
            dw,
            TargetConfig::DoubleWell {
                a: -0.5,
                b: -6.0,
                c: 1.0
            }
        );
        assert_eq!(dw.kind(), "double_well");
        assert!(parse("kind = \"phi4_1d\"")
            .unwrap()
            .validate()
            .unwrap()
            .exact_sampler()
            .is_none());
        assert!(parse("kind = \"mog4\"")
            .unwrap()
            .validate()
            .unwrap()
            .exact_sampler()
            .is_some());
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(parse("kind = \"mog4\"\ndim = 3").is_err());
        assert!(parse("kind = \"two_modes\"\ndim = 3\nsigma = 1.0").is_err());
        assert!(parse("kind = \"double_well\"\nd = 1.0").is_err());
        assert!(parse("kind = \"separated_mixture\"\ndim = 2").is_err());
        assert!(parse("kind = \"separated_mixture\"\ndim = 2\nseparation = 4.0\naxis = \"x\"").is_err());
        assert!(parse("kind = \"banana\"").is_err());
        assert!(parse("dim = 3").is_err());
    }

    #[test]
    fn invalid_values_name_the_field() {
        let e = err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 2.0], [2.0, 1.0]]");
        assert_eq!(e.field, "cov");
        assert!(e.problem.contains("positive definite"), "{e}");
        let e =
            err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]");
        assert_eq!(e.field, "cov");
        let e = err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 0.1], [0.0, 1.0]]");
        assert_eq!(e.field, "cov[1][0]");
        let e = err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 0.1], [0.0]]");
        assert_eq!(e.field, "cov[1]");
        let e = err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = -1.0");
        assert_eq!(e.field, "cov");
        let e = err("kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [1.0, 0.0]");
        assert_eq!(e.field, "cov[1]");
        let mix = |covs: &str, weights: &str| {
            format!("kind = \"mixture\"\nmeans = [[0.0, 0.0], [1.0, 1.0]]\ncovs = {covs}\nweights = {weights}")
        };
        let e = err(&mix("[1.0, 1.0]", "[0.5, 0.6]"));
        assert_eq!(e.field, "weights");
        assert_eq!(e.to_string(), "weights = [0.5, 0.6]: must sum to 1 (they sum to 1.1)");
        assert_eq!(err(&mix("[1.0, 1.0]", "[1.2, -0.2]")).field, "weights[1]");
        assert_eq!(err(&mix("[1.0, 1.0]", "[1.0]")).field, "weights");
        assert_eq!(err(&mix("[1.0]", "[0.5, 0.5]")).field, "covs");
        assert_eq!(
            err(&mix("[1.0, [[1.0, 3.0], [3.0, 1.0]]]", "[0.5, 0.5]")).field,
            "covs[1]"
        );
        assert_eq!(err(&mix("[1.0, [[1.0, 0.0, 0.0]]]", "[0.5, 0.5]")).field, "covs[1]");
        let e = err("kind = \"mixture\"\nmeans = [[0.0, 0.0], [1.0]]\ncovs = [1.0, 1.0]\nweights = [0.5, 0.5]");
        assert_eq!(e.field, "means[1]");
        assert_eq!(err("kind = \"two_modes\"\ndim = 0").field, "dim");
        let sep = |rest: &str| err(&format!("kind = \"separated_mixture\"\n{rest}"));
        assert_eq!(sep("dim = 0\nseparation = 4.0").field, "dim");
        assert_eq!(sep("dim = 2\nseparation = -4.0").field, "separation");
        assert_eq!(sep("dim = 2\nseparation = 4.0\nsigma = 0.0").field, "sigma");
        assert_eq!(sep("dim = 2\nseparation = 4.0\nweights = []").field, "weights");
        assert_eq!(sep("dim = 2\nseparation = 4.0\nweights = [0.5, 0.6]").field, "weights");
        assert_eq!(
            sep("dim = 2\nseparation = 4.0\nweights = [1.5, -0.5]").field,
            "weights[1]"
        );
        assert_eq!(
            sep("dim = 2\nseparation = 4.0\nsigma = -2.0").to_string(),
            "sigma = -2: must be finite and > 0"
        );
        assert_eq!(err("kind = \"double_well\"\nc = -1.0").field, "c");
        assert_eq!(err("kind = \"phi4_1d\"\nbeta = 0.0").field, "beta");
        assert_eq!(err("kind = \"phi4_1d\"\nb = -0.5").field, "b");
        assert_eq!(err("kind = \"phi4_1d\"\nn = 0").field, "n");
    }
}
