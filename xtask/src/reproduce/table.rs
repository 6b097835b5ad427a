//! Result tables: a header and rows of text cells, written as Markdown and
//! CSV; [`Table::aggregate`] makes one row per variant with mean ± s.e. over
//! seeds of chosen values.

use super::records::{values_of, variants_of, Record};
use super::stats::mean_se;
use std::fmt::Write as _;

pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: vec![],
        }
    }

    /// One row per variant (in order of first appearance): its name, its
    /// number of runs, and for every (title, key) of `cols` mean ± s.e. over
    /// seeds of the value `key`.
    pub fn aggregate(first: &str, records: &[Record], cols: &[(&str, &str)]) -> Self {
        let mut h = vec![first, "seeds"];
        h.extend(cols.iter().map(|(t, _)| *t));
        let mut t = Table::new(&h);
        for v in variants_of(records) {
            let mut row = vec![
                v.to_string(),
                records.iter().filter(|r| r.variant == v).count().to_string(),
            ];
            row.extend(cols.iter().map(|(_, key)| mean_se(&values_of(records, v, key))));
            t.rows.push(row);
        }
        t
    }

    pub fn markdown(&self) -> String {
        let esc = |r: &[String]| r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ");
        let mut s = format!("| {} |\n|{}\n", esc(&self.header), "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", esc(r));
        }
        s
    }

    pub fn csv(&self) -> String {
        std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n")
            .collect()
    }

    /// The CSV with a first column `name` that holds `value` in every row
    /// (to concatenate the tables of several groups in one file).
    pub fn csv_with_column(&self, name: &str, value: &str) -> String {
        self.csv()
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{},{l}\n", if i == 0 { name } else { value }))
            .collect()
    }
}

/// A CSV cell, quoted if it holds a comma or a quote.
pub fn csv_cell(c: &str) -> String {
    if c.contains(',') || c.contains('"') {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_writes_markdown_and_csv() {
        let rec = |variant: &str, seed, v: f64| Record {
            variant: variant.into(),
            seed,
            values: [("ess".to_string(), v)].into_iter().collect(),
        };
        let rs = [rec("a|b", 1, 1.0), rec("a|b", 2, 3.0), rec("c,d", 1, 0.5)];
        let t = Table::aggregate("loss", &rs, &[("ESS", "ess"), ("NLL", "nll")]);
        assert_eq!(
            t.markdown(),
            "| loss | seeds | ESS | NLL |\n|---|---|---|---|\n| a\\|b | 2 | 2.0 ± 1.0 | — |\n| c,d | 1 | 0.5000 | — |\n"
        );
        assert_eq!(t.csv(), "loss,seeds,ESS,NLL\na|b,2,2.0 ± 1.0,—\n\"c,d\",1,0.5000,—\n");
        assert_eq!(
            t.csv_with_column("set", "e1").lines().take(2).collect::<Vec<_>>(),
            ["set,loss,seeds,ESS,NLL", "e1,a|b,2,2.0 ± 1.0,—"]
        );
    }
}
