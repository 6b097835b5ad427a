//! One run's numbers ([`Record`]: a variant, a seed, named values), the grid
//! of runs over methods × seeds that produces them, and the raw per-run CSV.

use super::stats::mean_err;
use super::table::csv_cell;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Named numbers of one run (NaN where a number is not available).
pub type Values = BTreeMap<String, f64>;

/// One run's numbers (one seed of one variant).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub variant: String,
    pub seed: u64,
    pub values: Values,
}

impl Record {
    /// The value of `key` (NaN if absent).
    pub fn get(&self, key: &str) -> f64 {
        self.values.get(key).copied().unwrap_or(f64::NAN)
    }
}

/// Runs `run(method, seed)` for seeds 1..=`seeds` (outer) and every method
/// (inner), in that order, and collects each run's values as a record of
/// variant `method`.
pub fn grid<M: AsRef<str>>(
    seeds: u64,
    methods: &[M],
    mut run: impl FnMut(&str, u64) -> Result<Values>,
) -> Result<Vec<Record>> {
    let mut records = vec![];
    for seed in 1..=seeds {
        for m in methods {
            let values = run(m.as_ref(), seed)?;
            records.push(Record {
                variant: m.as_ref().to_string(),
                seed,
                values,
            });
        }
    }
    Ok(records)
}

/// The records of several groups (e.g. targets) in one list, each variant
/// prefixed "group/variant".
pub fn flatten(groups: &[(String, Vec<Record>)]) -> Vec<Record> {
    groups
        .iter()
        .flat_map(|(group, rs)| {
            rs.iter().map(move |r| Record {
                variant: format!("{group}/{}", r.variant),
                ..r.clone()
            })
        })
        .collect()
}

/// The records' variants in order of first appearance.
pub fn variants_of(records: &[Record]) -> Vec<&str> {
    let mut variants: Vec<&str> = vec![];
    for r in records {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    variants
}

/// The values of `key` over the records of `variant` (all records for "").
pub fn values_of(records: &[Record], variant: &str, key: &str) -> Vec<f64> {
    records
        .iter()
        .filter(|r| variant.is_empty() || r.variant == variant)
        .map(|r| r.get(key))
        .collect()
}

/// Mean and standard error over seeds of `key` in the records of `variant`
/// (all records for ""), as in the tables; None without a finite value.
pub fn stat(records: &[Record], variant: &str, key: &str) -> Option<(f64, f64)> {
    mean_err(&values_of(records, variant, key)).map(|(m, e, _)| (m, e))
}

/// All records with every value, one row per (variant, seed).
pub fn write_raw(path: &Path, records: &[Record]) -> Result<()> {
    let mut keys: Vec<&String> = records.iter().flat_map(|r| r.values.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut s = format!(
        "variant,seed,{}\n",
        keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
    );
    for r in records {
        let vals: Vec<String> = keys
            .iter()
            .map(|k| r.values.get(*k).map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(s, "{},{},{}", csv_cell(&r.variant), r.seed, vals.join(","));
    }
    std::fs::write(path, s).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(variant: &str, seed: u64, v: f64) -> Record {
        Record {
            variant: variant.into(),
            seed,
            values: [("ess".to_string(), v)].into_iter().collect(),
        }
    }

    #[test]
    fn stat_aggregates_a_variant_over_seeds() {
        let rs = [rec("a", 1, 1.0), rec("a", 2, 3.0), rec("b", 1, 10.0)];
        assert_eq!(stat(&rs, "a", "ess"), Some((2.0, 1.0)));
        assert_eq!(stat(&rs, "b", "ess"), Some((10.0, 0.0)));
        assert_eq!(stat(&rs, "c", "ess"), None);
        assert_eq!(stat(&rs, "a", "nll"), None);
        assert_eq!(variants_of(&rs), ["a", "b"]);
    }

    #[test]
    fn grid_runs_seeds_outer_methods_inner() {
        let rs = grid(2, &["x", "y"], |m, s| {
            Ok([("v".to_string(), s as f64 + if m == "y" { 0.5 } else { 0.0 })]
                .into_iter()
                .collect())
        })
        .unwrap();
        let order: Vec<(&str, u64, f64)> = rs.iter().map(|r| (r.variant.as_str(), r.seed, r.get("v"))).collect();
        assert_eq!(order, [("x", 1, 1.0), ("y", 1, 1.5), ("x", 2, 2.0), ("y", 2, 2.5)]);
        assert!(rs[0].get("w").is_nan());
        let err = grid(1, &["x"], |_, _| anyhow::bail!("boom")).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let flat = flatten(&[("t".into(), rs)]);
        assert_eq!(flat[3].variant, "t/y");
    }

    #[test]
    fn raw_csv_has_every_key() {
        let mut r = rec("a,b", 1, 0.5);
        r.values.insert("nll".into(), 2.0);
        let path = std::env::temp_dir().join(format!("xtask-raw-{}.csv", std::process::id()));
        write_raw(&path, &[r, rec("c", 2, 1.0)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text, "variant,seed,ess,nll\n\"a,b\",1,0.5,2\nc,2,1,\n");
    }
}
