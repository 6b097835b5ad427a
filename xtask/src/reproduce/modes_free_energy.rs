//! Free-energy integration in `reproduce modes` (crate fieldflow-freeenergy,
//! docs/THEORY.md §6.13): `fieldflow free-energy` on the tilted 1D φ⁴ chain,
//! one run per seed, as the method "free-energy" of each φ⁴ table. It
//! samples no configuration of the full chain, so its columns are its own:
//! the log-ratio error against the transfer operator, its replica error, the
//! deviation in those errors and the wall time. Settings: the command's
//! defaults (8 replicas × 2000 HMC trajectories per node), 300 trajectories
//! with `--quick`.

use super::modes::Spec;
use super::records::{Record, Values};
use super::runner::Runner;
use anyhow::{Context, Result};

/// The method's name in the tables and in `--methods`.
pub const NAME: &str = "free-energy";

/// The method's runs on `t` (none unless it is the φ⁴ chain), one per seed.
pub fn records(r: &Runner, t: &Spec) -> Result<Vec<Record>> {
    if t.family != "phi4_1d" {
        return Ok(vec![]);
    }
    let settings = if r.scale.quick {
        "[free_energy]\nsamples = 300\nwarmup = 150\n"
    } else {
        ""
    };
    let text = format!("[target]\n{}\n{settings}", t.section);
    let mut records = vec![];
    for seed in 1..=r.scale.seeds {
        let name = format!("modes_{}_free_energy_s{seed}", t.name);
        let cfg = r.path("configs", &format!("{name}.toml"));
        std::fs::write(&cfg, &text).with_context(|| format!("{}: cannot write", cfg.display()))?;
        let out = r.path("samples", &format!("{name}.json"));
        let args: Vec<String> = [
            "free-energy",
            "--config",
            &cfg.display().to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            &out.display().to_string(),
            "--force",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let key = format!("{}\n{text}", args.join(" "));
        r.stage(&format!("free_energy_{name}"), &name, &[&out], &args, &key)?;
        let json = std::fs::read_to_string(&out).with_context(|| format!("{}: cannot read", out.display()))?;
        records.push(Record {
            variant: NAME.into(),
            seed,
            values: values(&json).with_context(|| format!("{}: unreadable result", out.display()))?,
        });
    }
    Ok(records)
}

/// The table's values of one `fieldflow free-energy --out` JSON.
pub fn values(json: &str) -> Result<Values> {
    let r: serde_json::Value = serde_json::from_str(json)?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let (value, error) = (num(&r["log_ratio"]["value"]), num(&r["log_ratio"]["error"]));
    let exact = num(&r["exact_log_ratio"]);
    let mut v = Values::new();
    v.insert("fe_log_ratio_err".into(), value - exact);
    v.insert("fe_log_ratio_sigma".into(), error);
    v.insert(
        "fe_dev_sigma".into(),
        if error > 0.0 { (value - exact) / error } else { f64::NAN },
    );
    v.insert("fe_seconds".into(), num(&r["seconds"]));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_a_result_file() {
        let json = r#"{"log_ratio": {"value": -15.56, "error": 0.01, "replicas": []},
            "exact_log_ratio": -15.5665, "seconds": 30.5}"#;
        let v = values(json).unwrap();
        assert!((v["fe_log_ratio_err"] - 0.0065).abs() < 1e-12);
        assert!((v["fe_dev_sigma"] - 0.65).abs() < 1e-9);
        assert_eq!(v["fe_seconds"], 30.5);
        // b = 0: exact by symmetry, zero error: no deviation in σ.
        let v = values(r#"{"log_ratio": {"value": 0.0, "error": 0.0}, "exact_log_ratio": 0.0, "seconds": 1}"#).unwrap();
        assert!(v["fe_dev_sigma"].is_nan());
    }
}
