//! Mode weights of a multimodal target: the fraction of an IMH chain's
//! samples in every mode (nearest-mean assignment, `fieldflow analyze`'s
//! rows `mode_0`, `mode_1`, … with Γ-method errors) against the exact
//! weights, and their total variation TV = ½ Σ_k |w_k − w_k^exact|.
//! Per run they are values `imh_mode_k`, `imh_mode_k_err`, `true_mode_k`,
//! `imh_tv`, `n_modes`; over seeds a table (mean ± s.e. of every weight and
//! a row of exact weights) and a figure.

use super::cli_json::{num, Analysis};
use super::records::{stat, variants_of, Record, Values};
use super::table::Table;
use fieldflow_plot::{Figure, Series};

/// The mode weights of one analysis of an IMH chain as values.
pub fn values(a: &Analysis) -> Values {
    values_as("imh", a)
}

/// The mode weights of one analysis as values `PREFIX_mode_k`,
/// `PREFIX_mode_k_err`, `PREFIX_tv` (and `true_mode_k`, `n_modes`); the
/// prefix names the sampler ("imh", or "is" for reweighted estimates).
pub fn values_as(prefix: &str, a: &Analysis) -> Values {
    let mut values = Values::new();
    let mut tv = 0.0;
    let mut k = 0;
    while let Some(row) = a.find(&format!("mode_{k}")) {
        let (w, e, exact) = (num(row.value), num(row.error), num(row.exact));
        values.insert(format!("{prefix}_mode_{k}"), w);
        values.insert(format!("{prefix}_mode_{k}_err"), e);
        values.insert(format!("true_mode_{k}"), exact);
        tv += 0.5 * (w - exact).abs();
        k += 1;
    }
    values.insert(format!("{prefix}_tv"), tv);
    values.insert("n_modes".into(), k as f64);
    values
}

/// The number of modes (of the first record).
fn n_modes(records: &[Record]) -> usize {
    records.first().map_or(0.0, |r| r.get("n_modes")) as usize
}

/// One row per variant (first column `first`): mean ± s.e. over seeds of
/// every mode weight; a last row "exact" with the exact weights.
pub fn table(first: &str, records: &[Record]) -> Table {
    let n = n_modes(records);
    let cols: Vec<(String, String)> = (0..n).map(|k| (format!("w{k}"), format!("imh_mode_{k}"))).collect();
    let cols: Vec<(&str, &str)> = cols.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut t = Table::aggregate(first, records, &cols);
    let exact = (0..n).map(|k| format!("{:.3}", records[0].get(&format!("true_mode_{k}"))));
    // The aggregate table's second column is the number of seeds.
    t.rows
        .push(["exact".to_string(), String::new()].into_iter().chain(exact).collect());
    t
}

/// Mode weight against mode index, one series per variant (side by side
/// within a mode so that the error bars stay apart) and the exact weights.
pub fn figure(title: &str, records: &[Record]) -> Figure {
    let n = n_modes(records);
    let mut fig = Figure::new(title, "mode index", "IMH mode weight (mean ± s.e. over seeds)");
    let variants = variants_of(records);
    for (i, v) in variants.iter().enumerate() {
        let dx = 0.08 * (i as f64 - (variants.len() - 1) as f64 / 2.0);
        fig.series.push(Series::points(
            *v,
            (0..n).filter_map(|k| {
                let (m, e) = stat(records, v, &format!("imh_mode_{k}"))?;
                Some((k as f64 + dx, m, e))
            }),
        ));
    }
    let exact = (0..n).filter_map(|k| Some((k as f64, stat(records, "", &format!("true_mode_{k}"))?.0)));
    fig.series.push(Series::line("exact", exact));
    fig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::cli_json::Observable;

    #[test]
    fn weights_and_total_variation() {
        let row = |k: usize, w: f64, exact: f64| Observable {
            observable: format!("mode_{k}"),
            value: Some(w),
            error: Some(0.01),
            tau_int: None,
            exact: Some(exact),
        };
        let a = Analysis {
            rows: vec![row(0, 0.6, 0.5), row(1, 0.4, 0.5), row(3, 0.0, 0.0)],
            ..Default::default()
        };
        let v = values(&a);
        assert_eq!(v["n_modes"], 2.0); // mode_2 absent: the count stops there
        let is = values_as("is", &a);
        assert_eq!(
            (is["is_mode_0"], is["is_tv"], is["true_mode_0"]),
            (0.6, v["imh_tv"], 0.5)
        );
        assert!((v["imh_tv"] - 0.1).abs() < 1e-15);
        assert_eq!(
            (v["imh_mode_1"], v["imh_mode_1_err"], v["true_mode_1"]),
            (0.4, 0.01, 0.5)
        );
        let rec = |variant: &str, seed| Record {
            variant: variant.into(),
            seed,
            values: v.clone(),
        };
        let t = table("loss", &[rec("fkl", 1), rec("fkl", 2)]);
        assert_eq!(t.header, ["loss", "seeds", "w0", "w1"]);
        assert_eq!(t.rows[0], ["fkl", "2", "0.6000", "0.4000"]);
        // The exact row is aligned with the header (empty seeds cell).
        assert_eq!(t.rows[1], ["exact", "", "0.500", "0.500"]);
        assert_eq!(t.rows[1].len(), t.header.len());
    }
}
