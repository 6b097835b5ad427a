//! The `--json` outputs of `fieldflow analyze` and `fieldflow compare`, as
//! far as reproduce reads them. serde_json writes non-finite numbers as
//! `null`; every number here is therefore optional and reads as NaN when
//! null or absent ([`num`]), and an absent field reads as its default.

use anyhow::{Context, Result};
use serde::Deserialize;

/// A JSON number: NaN for null or absent.
pub fn num(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

/// One file of `fieldflow analyze --json` (an array of them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Analysis {
    /// The target's description, e.g. "phi4: L = 8x8, …".
    pub target: String,
    pub chains: Option<u64>,
    pub n_per_chain: Option<u64>,
    /// Wall-clock seconds of generation or sampling (if timed).
    pub seconds: Option<f64>,
    /// Pareto k̂ of the importance weights (of the proposals, for IMH).
    pub pareto_k: Option<f64>,
    /// SLIPS: the share of particles that kept the mode of their first
    /// denoiser estimate (`fieldflow_slips::start_decided`).
    pub start_decided: Option<f64>,
    pub rows: Vec<Observable>,
}

/// One observable of an analysis.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Observable {
    pub observable: String,
    pub value: Option<f64>,
    pub error: Option<f64>,
    pub tau_int: Option<f64>,
    /// The exact value, where the target has one.
    pub exact: Option<f64>,
}

impl Analysis {
    /// The first analysis of `analyze --json` output (an empty one if none).
    pub fn parse_first(json: &str) -> Result<Self> {
        let all: Vec<Analysis> = serde_json::from_str(json)?;
        Ok(all.into_iter().next().unwrap_or_default())
    }

    /// The row of `observable` (an all-NaN row if absent).
    pub fn row(&self, observable: &str) -> Observable {
        self.find(observable).cloned().unwrap_or_default()
    }

    pub fn find(&self, observable: &str) -> Option<&Observable> {
        self.rows.iter().find(|r| r.observable == observable)
    }

    /// The lattice size L from the target description "phi4: L = 8x8, …"
    /// ("" if there is none).
    pub fn lattice(&self) -> String {
        self.target
            .split("L = ")
            .nth(1)
            .and_then(|r| r.split(&[',', 'x'][..]).next())
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Configurations in the file (chains × per chain; 0 if unknown).
    pub fn total(&self) -> u64 {
        self.chains.unwrap_or(0) * self.n_per_chain.unwrap_or(0)
    }
}

/// One observable of `fieldflow compare A B --json` (an array of them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Comparison {
    pub observable: String,
    /// (value, error, τ_int) in A.
    pub a: [Option<f64>; 3],
    /// (value, error, τ_int) in B.
    pub b: [Option<f64>; 3],
    /// (a − b)/√(σ_a² + σ_b²).
    pub deviation_sigma: Option<f64>,
    /// τ_B/τ_A.
    pub tau_ratio: Option<f64>,
    /// Seconds per independent sample in A and B (null if untimed).
    pub cost: [Option<f64>; 2],
}

impl Comparison {
    pub fn parse_all(json: &str) -> Result<Vec<Self>> {
        serde_json::from_str(json).context("not a list of comparisons")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fieldflow_output() {
        let c = Comparison::parse_all(
            r#"[{"observable": "abs_M", "a": [0.5, 1e-3, 2.5], "b": [0.4, null, 1.0],
                 "deviation_sigma": 1.5, "tau_ratio": 0.4, "cost": [null, 3.0], "extra": "x\"y\u00e9"}]"#,
        )
        .unwrap();
        assert_eq!(c[0].observable, "abs_M");
        assert_eq!(num(c[0].a[2]), 2.5);
        assert!(num(c[0].b[1]).is_nan());
        assert!(num(c[0].cost[0]).is_nan());
        assert_eq!(num(c[0].cost[1]), 3.0);
        assert!(Comparison::parse_all("[1, 2").is_err());

        let a = Analysis::parse_first(
            r#"[{"target": "phi4: L = 16x16, \"m\u00b2\" = -4", "chains": 2, "n_per_chain": 500,
                 "rows": [{"observable": "mode_0", "value": 0.25, "error": 0.01, "tau_int": 1.5, "exact": null}]}]"#,
        )
        .unwrap();
        assert_eq!(a.target, "phi4: L = 16x16, \"m²\" = -4");
        assert_eq!(a.lattice(), "16");
        assert_eq!(a.total(), 1000);
        assert_eq!(num(a.row("mode_0").value), 0.25);
        assert!(num(a.row("mode_0").exact).is_nan());
        assert!(a.find("mode_1").is_none() && num(a.row("mode_1").value).is_nan());
        let empty = Analysis::parse_first("[]").unwrap();
        assert_eq!((empty.lattice().as_str(), empty.total()), ("", 0));
    }
}
