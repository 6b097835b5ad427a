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
/// (inner) and collects each run's values as a record of variant `method`,
/// in that order. `jobs` runs go at once (each a thread here, its stages
/// child processes); with `jobs` = 1 they run one after the other. A failed
/// run stops the handing out of new ones; the error returned is the first
/// failed run's in grid order.
pub fn grid<M: AsRef<str> + Sync>(
    jobs: usize,
    seeds: u64,
    methods: &[M],
    run: impl Fn(&str, u64) -> Result<Values> + Sync,
) -> Result<Vec<Record>> {
    let cells: Vec<(&str, u64)> = (1..=seeds)
        .flat_map(|seed| methods.iter().map(move |m| (m.as_ref(), seed)))
        .collect();
    // Each cell is written once, by the worker that took it.
    let results: Vec<std::sync::OnceLock<Result<Values>>> = cells.iter().map(|_| std::sync::OnceLock::new()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = || loop {
        use std::sync::atomic::Ordering::SeqCst;
        let i = next.fetch_add(1, SeqCst);
        if i >= cells.len() || failed.load(SeqCst) {
            return;
        }
        let (method, seed) = cells[i];
        let result = run(method, seed);
        if result.is_err() {
            failed.store(true, SeqCst);
        }
        // Cell i is handed out once (the counter), so it is still empty.
        let _ = results[i].set(result);
    };
    std::thread::scope(|s| {
        for _ in 1..jobs.max(1) {
            s.spawn(worker);
        }
        worker();
    });
    let mut records = vec![];
    for ((method, seed), result) in cells.into_iter().zip(results) {
        match result.into_inner() {
            Some(Ok(values)) => records.push(Record {
                variant: method.to_string(),
                seed,
                values,
            }),
            Some(Err(e)) => return Err(e),
            None => {}
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
        let rs = grid(1, 2, &["x", "y"], |m, s| {
            Ok([("v".to_string(), s as f64 + if m == "y" { 0.5 } else { 0.0 })]
                .into_iter()
                .collect())
        })
        .unwrap();
        let order: Vec<(&str, u64, f64)> = rs.iter().map(|r| (r.variant.as_str(), r.seed, r.get("v"))).collect();
        assert_eq!(order, [("x", 1, 1.0), ("y", 1, 1.5), ("x", 2, 2.0), ("y", 2, 2.5)]);
        assert!(rs[0].get("w").is_nan());
        let err = grid(1, 1, &["x"], |_, _| anyhow::bail!("boom")).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        // Three at a time: the same records in the same order, and the
        // first failure in grid order is the one reported.
        let methods = ["a", "b", "c", "d", "e"];
        let value = |m: &str, s: u64| (s * 10) as f64 + methods.iter().position(|x| *x == m).unwrap() as f64;
        let par = grid(3, 3, &methods, |m, s| {
            Ok([("v".to_string(), value(m, s))].into_iter().collect())
        })
        .unwrap();
        let seq = grid(1, 3, &methods, |m, s| {
            Ok([("v".to_string(), value(m, s))].into_iter().collect())
        })
        .unwrap();
        let key = |rs: &[Record]| {
            rs.iter()
                .map(|r| (r.variant.clone(), r.seed, r.get("v")))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&par), key(&seq));
        let err = grid(3, 2, &methods, |m, s| {
            if s == 1 && (m == "b" || m == "d") {
                anyhow::bail!("{m} failed")
            }
            Ok(Values::new())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "b failed");
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
